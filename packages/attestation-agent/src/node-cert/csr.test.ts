import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import 'reflect-metadata';
import { Pkcs10CertificateRequest } from '@peculiar/x509';
import { afterAll, describe, expect, it } from 'vitest';
import { buildNodeCsr } from './csr.js';
import { ensureNodeCertDir, loadOrCreateNodeKey } from './node-key.js';

const run = promisify(execFile);
const root = await mkdtemp(join(tmpdir(), 'kh-csr-'));
afterAll(() => rm(root, { recursive: true, force: true }));

describe('node CSR', () => {
  it('is a PKCS#10 request for the node key, self-signed ECDSA-SHA256, that openssl verifies', async () => {
    await ensureNodeCertDir(root);
    const key = await loadOrCreateNodeKey(root);
    const pem = await buildNodeCsr(key, 'ab'.repeat(32));
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----/);
    const csr = new Pkcs10CertificateRequest(pem);
    expect(csr.subject).toBe(`CN=${'ab'.repeat(32)}`);
    expect(createHash('sha256').update(new Uint8Array(csr.publicKey.rawData)).digest('hex')).toBe(key.spkiSha256);
    expect(await csr.verify()).toBe(true);
    const file = join(root, 'req.pem');
    await writeFile(file, pem);
    const out = await run('openssl', ['req', '-in', file, '-noout', '-verify', '-text']);
    expect(`${out.stdout}${out.stderr}`).toMatch(/verify OK/i);
    expect(out.stdout).toMatch(/ecdsa-with-SHA256/);
    expect(out.stdout).toMatch(/NIST CURVE: P-256|prime256v1/);
  });

  it('takes a plain label of at most 64 characters (X.520 ub-common-name) and refuses DN syntax in it', async () => {
    const key = await loadOrCreateNodeKey(root);
    await expect(buildNodeCsr(key, 'keyhold-node')).resolves.toMatch(/CERTIFICATE REQUEST/);
    for (const bad of ['a,O=evil', 'a=b', 'a+b', '', `ak:${'cd'.repeat(32)}`]) await expect(buildNodeCsr(key, bad)).rejects.toBeInstanceOf(TypeError);
  });
});
