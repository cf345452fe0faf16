// Fixtures: ../shared/corpus/ek-certs/tpm_cert_store (Keylime's vendor store; Alibaba_Cloud_vTPM_EK.pem
// and Nationz_TPM_EK.pem carry leading text before the PEM block).
import 'reflect-metadata';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as x509 from '@peculiar/x509';
import { describe, expect, it } from 'vitest';
import { decodeCaCertificates } from './ca-certificates.js';
import { IdentityError } from './errors.js';

const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
const dir = path.resolve(repoRoot, '../shared/corpus/ek-certs/tpm_cert_store');
const haveCorpus = existsSync(dir);
const read = (f: string): Uint8Array => new Uint8Array(readFileSync(path.join(dir, f)));

function code(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof IdentityError) return e.code;
    throw e;
  }
  return undefined;
}

describe.skipIf(!haveCorpus)('decodeCaCertificates (skipped when ../shared/corpus is absent)', () => {
  it('decodes each of the 51 vendor files to exactly one CA certificate, leading text included', () => {
    const files = readdirSync(dir);
    expect(files.length).toBe(51);
    for (const f of files) expect(decodeCaCertificates(read(f), f)).toHaveLength(1);
    expect(Buffer.from(read('Alibaba_Cloud_vTPM_EK.pem')).toString('latin1').startsWith('-----BEGIN')).toBe(false);
  });

  it('decodes several certificates in one PEM file and a DER file', () => {
    const bundle = Buffer.concat([Buffer.from(read('STM_RSA_RT.pem')), Buffer.from('\nsome text\n'), Buffer.from(read('GS_TPM_RT.pem'))]);
    const certs = decodeCaCertificates(bundle);
    expect(certs.map((c) => c.subject)).toEqual([decodeCaCertificates(read('STM_RSA_RT.pem'))[0]?.subject, decodeCaCertificates(read('GS_TPM_RT.pem'))[0]?.subject]);
    const der = new Uint8Array((certs[0] as x509.X509Certificate).rawData);
    expect(decodeCaCertificates(der)[0]?.subject).toBe(certs[0]?.subject);
  });

  it('refuses garbage, truncated PEM, truncated DER and oversized files with CA_CERT_INVALID', () => {
    const pem = Buffer.from(read('GS_TPM_RT.pem')).toString('latin1');
    expect(code(() => decodeCaCertificates(new Uint8Array(Buffer.from('hello'))))).toBe('CA_CERT_INVALID');
    expect(code(() => decodeCaCertificates(new Uint8Array(Buffer.from(pem.slice(0, pem.length - 40), 'latin1'))))).toBe('CA_CERT_INVALID');
    expect(code(() => decodeCaCertificates(new Uint8Array(Buffer.from(pem.replace(/MII/, 'MII!'), 'latin1'))))).toBe('CA_CERT_INVALID');
    const der = new Uint8Array(decodeCaCertificates(read('GS_TPM_RT.pem'))[0]?.rawData ?? new ArrayBuffer(0));
    expect(code(() => decodeCaCertificates(der.subarray(0, der.length - 10)))).toBe('CA_CERT_INVALID');
    expect(code(() => decodeCaCertificates(new Uint8Array(1024 * 1024 + 1)))).toBe('CA_CERT_INVALID');
  });
});

describe('decodeCaCertificates on a non-CA certificate', () => {
  it('refuses an end-entity certificate as a CA store entry', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
    const keys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const ee = await x509.X509CertificateGenerator.createSelfSigned({ name: 'CN=leaf', keys, signingAlgorithm: alg, extensions: [new x509.BasicConstraintsExtension(false)] });
    expect(code(() => decodeCaCertificates(new Uint8Array(Buffer.from(ee.toString('pem')))))).toBe('CA_CERT_INVALID');
  });
});
