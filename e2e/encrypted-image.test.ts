/**
 * Issue 7 end to end: encrypted container images. A real swtpm node, the KBS as its own process,
 * the owner CLI (`keyhold image encrypt --upload`), the agent CLI (`keyhold-agent image decrypt`,
 * `keyhold-agent keyprovider grpc|cmd`) as processes; test images built with umoci; skopeo 1.9
 * (Go ocicrypt) for the jwe interop. Refusals must give a clear message and leave no plaintext.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdtemp } from 'node:fs/promises';
import { status, type ServiceError } from '@grpc/grpc-js';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnProcess, startSwtpm, waitForPort, type RunningSwtpm } from '@keyhold/test-harness';
import { createAdminKeys } from './harness/admin-keys.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { callKeyProvider, goUnwrapRequest } from './harness/keyprovider-client.js';
import { AGENT_BIN, CLI_BIN } from './harness/repo.js';
import { buildTestImage, filesWithDigest, HAVE_IMAGE_TOOLS, run, unpackRootfs, type RootfsEntry } from './harness/rootfs.js';
import { runNodeCli } from './harness/run-cli.js';

const AK_HANDLE = '0x81010002';
const KID = 'kbs:///default/image-kek/app1';
const PROVIDER_ANNOTATION = 'org.opencontainers.image.enc.keys.provider.attestation-agent';
if (!HAVE_IMAGE_TOOLS) console.warn('skipping encrypted-image e2e: umoci and skopeo must be on PATH (apt-get install umoci skopeo)');

let dir: string;
let swtpm: RunningSwtpm;
let kbs: KbsProcess;
let tokenFile: string;
let plain: string;
let enc: string;
let expected: RootfsEntry[];
let plainLayerDigests: Set<string>;
let pcr7: string;

const agentArgs = (...extra: string[]): string[] => ['--url', kbs.url, '--tcti', swtpm.tcti, '--ak-handle', AK_HANDLE, ...extra];
const owner = (...args: string[]) => runNodeCli(CLI_BIN, ['config', '--url', kbs.url, '--admin-token-file', tokenFile, ...args]);
const decrypt = (input: string, output: string, ...extra: string[]) => runNodeCli(AGENT_BIN, ['image', 'decrypt', '--input', `oci:${input}:latest`, '--output', `oci:${output}:latest`, ...extra]);

interface Manifest {
  layers: { mediaType: string; digest: string; annotations?: Record<string, string> }[];
}
async function manifestOf(layout: string): Promise<Manifest> {
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
  return JSON.parse(await readFile(join(layout, 'blobs', 'sha256', (index.manifests[0]?.digest ?? '').slice(7)), 'utf8')) as Manifest;
}

/** A failed decrypt: exit 1, one clear line, and no output, no staging dir, no plaintext layer. */
async function expectRefused(r: { code: number | null; stdout: string; stderr: string }, failDir: string, message: RegExp): Promise<void> {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toMatch(message);
  expect(r.stdout).toBe('');
  expect(await readdir(failDir)).toEqual([]);
  expect(await filesWithDigest(failDir, plainLayerDigests)).toEqual([]);
}

beforeAll(async () => {
  if (!HAVE_IMAGE_TOOLS) return;
  dir = await mkdtemp(join(tmpdir(), 'keyhold-e2e-image-'));
  swtpm = await startSwtpm({ ekCert: true });
  const admin = await createAdminKeys(dir);
  // One node walks through deliberate refusals here; bans on failure (issue 13, on by default) are
  // e2e/continuous-*.test.ts's subject.
  kbs = await startKbsProcess({ dataDir: join(dir, 'kbs'), adminPublicKeyFile: admin.publicKeyFile, configToml: '[continuous]\nban_on_failure = false\n' });
  tokenFile = join(dir, 'admin.jwt');
  await writeFile(tokenFile, await admin.token({ lifetimeS: 600 }));
  // The node's AK, trusted by the owner (as in attested-release.test.ts).
  const ak = await runNodeCli(AGENT_BIN, ['ak', '--json', ...agentArgs()]);
  expect(ak.code, ak.stderr).toBe(0);
  const trust = await owner('set-reference-value', '--name', 'trusted_ak', '--value', (JSON.parse(ak.stdout) as { ak_public: string }).ak_public);
  expect(trust.code, trust.stderr).toBe(0);
  // The test image, built with umoci.
  plain = join(dir, 'plain');
  await mkdir(join(dir, 'scratch'));
  await buildTestImage(plain, join(dir, 'scratch'));
  expected = await unpackRootfs(plain, 'latest', join(dir, 'scratch'));
  plainLayerDigests = new Set((await manifestOf(plain)).layers.map((l) => l.digest.slice(7)));
  expect(plainLayerDigests.size).toBe(2);
  // The owner encrypts for the node key provider with a fresh KEK, uploaded to the KBS.
  enc = join(dir, 'enc');
  const r = await runNodeCli(CLI_BIN, ['image', 'encrypt', '--input', `oci:${plain}:latest`, '--output', `oci:${enc}:latest`, '--kid', KID, '--generate', '--upload', '--url', kbs.url, '--admin-token-file', tokenFile, '--json']);
  expect(r.code, r.stderr).toBe(0);
  expect((JSON.parse(r.stdout) as { kek_uploaded: boolean }).kek_uploaded).toBe(true);
  await mkdir(join(dir, 'node'));
  await mkdir(join(dir, 'fail'));
}, 120_000);

afterAll(async () => {
  await kbs?.stop();
  await swtpm?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!HAVE_IMAGE_TOOLS)('encrypted container images (swtpm node, KBS, agent key provider)', () => {
  it('the owner’s image is ciphertext only: encrypted media types, key-provider packets naming the kid', async () => {
    const m = await manifestOf(enc);
    expect(m.layers.map((l) => l.mediaType)).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip+encrypted', 'application/vnd.oci.image.layer.v1.tar+gzip+encrypted']);
    for (const l of m.layers) {
      const packet = JSON.parse(Buffer.from(l.annotations?.[PROVIDER_ANNOTATION] ?? '', 'base64').toString()) as Record<string, string>;
      expect(packet).toMatchObject({ kid: KID, wrap_type: 'A256GCM' });
      expect(l.annotations?.['org.opencontainers.image.enc.pubopts']).toBeDefined();
    }
    expect(await filesWithDigest(enc, plainLayerDigests)).toEqual([]);
  });

  it('the attested node decrypts it: layer digests verify and the rootfs equals the original', async () => {
    const out = join(dir, 'node', 'dec');
    const r = await decrypt(enc, out, ...agentArgs());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('decrypted 2 of 2 layers');
    const m = await manifestOf(out);
    expect(new Set(m.layers.map((l) => l.digest.slice(7)))).toEqual(plainLayerDigests);
    expect((await filesWithDigest(join(out, 'blobs'), plainLayerDigests)).length).toBe(2);
    expect(await unpackRootfs(out, 'latest', join(dir, 'scratch'))).toEqual(expected);
  });

  it('a node whose AK is not trusted gets no KEK: clear message, nothing on disk', async () => {
    const other = await startSwtpm();
    try {
      const r = await decrypt(enc, join(dir, 'fail', 'out'), '--url', kbs.url, '--tcti', other.tcti, '--ak-handle', AK_HANDLE);
      await expectRefused(r, join(dir, 'fail'), /^keyhold-agent image decrypt: ATTESTATION_FAILED: attestation failed, KEK "kbs:\/\/\/default\/image-kek\/app1" not released/);
    } finally {
      await other.stop();
    }
  });

  it('a changed PCR (owner pins tpm_pcr07 to another value) is denied (403): clear message, nothing on disk', async () => {
    const t = await runNodeCli(AGENT_BIN, ['token', ...agentArgs()]);
    expect(t.code, t.stderr).toBe(0);
    pcr7 = (decodeJwt(t.stdout.trim()) as any)['submods']['cpu0']['ear.veraison.annotated-evidence']['tpm']['pcr07'] as string;
    expect(pcr7).toMatch(/^[0-9a-f]{64}$/);
    expect((await owner('set-reference-value', '--name', 'tpm_pcr07', '--value', 'ab'.repeat(32))).code).toBe(0);
    try {
      const r = await decrypt(enc, join(dir, 'fail', 'out'), ...agentArgs());
      await expectRefused(r, join(dir, 'fail'), /^keyhold-agent image decrypt: KEK_RELEASE_DENIED: the KBS refused to release KEK "kbs:\/\/\/default\/image-kek\/app1" to this node .*403/);
    } finally {
      expect((await owner('set-reference-value', '--name', 'tpm_pcr07', '--value', pcr7)).code).toBe(0);
    }
  });

  it('an unknown kid (404): clear message, nothing on disk', async () => {
    const other = join(dir, 'enc-unknown');
    const kek = join(dir, 'kek.bin');
    await writeFile(kek, randomBytes(32));
    const e = await runNodeCli(CLI_BIN, ['image', 'encrypt', '--input', `oci:${plain}:latest`, '--output', `oci:${other}:latest`, '--kid', 'kbs:///default/image-kek/never-uploaded', '--kek-file', kek]);
    expect(e.code, e.stderr).toBe(0);
    const r = await decrypt(other, join(dir, 'fail', 'out'), ...agentArgs());
    await expectRefused(r, join(dir, 'fail'), /^keyhold-agent image decrypt: KEK_NOT_FOUND: the KBS has no KEK "kbs:\/\/\/default\/image-kek\/never-uploaded"/);
  });

  it('the gRPC key provider answers UnWrapKey as Go ocicrypt sends it, and refuses what it must', async () => {
    const port = await freePort();
    const proc = spawnProcess({ name: 'keyhold-agent-keyprovider', command: process.execPath, args: [AGENT_BIN, 'keyprovider', 'grpc', '--listen', `127.0.0.1:${port}`, ...agentArgs()] });
    try {
      await waitForPort(port, proc, { timeoutMs: 20_000 });
      const address = `127.0.0.1:${port}`;
      const layer = (await manifestOf(enc)).layers[0];
      const annotation = layer?.annotations?.[PROVIDER_ANNOTATION] ?? '';
      const reply = JSON.parse((await callKeyProvider(address, 'UnWrapKey', goUnwrapRequest(annotation))).toString()) as { keyunwrapresults: { optsdata: string } };
      const opts = JSON.parse(Buffer.from(reply.keyunwrapresults.optsdata, 'base64').toString()) as { symkey: string; digest: string; cipheroptions: { nonce: string } };
      expect(Buffer.from(opts.symkey, 'base64').length).toBe(32);
      expect(Buffer.from(opts.cipheroptions.nonce, 'base64').length).toBe(16);
      expect(plainLayerDigests.has(opts.digest.slice(7))).toBe(true);
      // Refusals: a gRPC status with a message, no key.
      const refuse = async (json: string, code: status, text: string): Promise<void> => {
        const err = (await callKeyProvider(address, 'UnWrapKey', json).catch((e: unknown) => e)) as ServiceError;
        expect(err.code, String(err)).toBe(code);
        expect(err.details).toContain(text);
      };
      const packet = JSON.parse(Buffer.from(annotation, 'base64').toString()) as Record<string, string>;
      const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64');
      await refuse(goUnwrapRequest(b64({ ...packet, kid: 'kbs:///default/image-kek/nope' })), status.NOT_FOUND, 'KEK_NOT_FOUND');
      await refuse(goUnwrapRequest(b64({ ...packet, version: '0.1.0', provider: 'aliyun', provider_settings: {}, annotations: {} })), status.INVALID_ARGUMENT, 'PACKET_PROVIDER_UNSUPPORTED');
      await refuse(goUnwrapRequest(b64({ ...packet, wrapped_data: Buffer.from(randomBytes(64)).toString('base64') })), status.INVALID_ARGUMENT, 'UNWRAP_FAILED');
      const wrapErr = (await callKeyProvider(address, 'WrapKey', '{"op":"keywrap","keywrapparams":{"optsdata":"e30="}}').catch((e: unknown) => e)) as ServiceError;
      expect(wrapErr.code).toBe(status.UNIMPLEMENTED);
    } finally {
      await proc.stop();
    }
  });

  it('the cmd key provider answers the same JSON on stdin, and exits 1 with a message on refusal', async () => {
    const annotation = (await manifestOf(enc)).layers[1]?.annotations?.[PROVIDER_ANNOTATION] ?? '';
    const r = await runNodeCli(AGENT_BIN, ['keyprovider', ...agentArgs()], { input: goUnwrapRequest(annotation) });
    expect(r.code, r.stderr).toBe(0);
    const opts = JSON.parse(Buffer.from((JSON.parse(r.stdout) as { keyunwrapresults: { optsdata: string } }).keyunwrapresults.optsdata, 'base64').toString()) as { digest: string };
    expect(plainLayerDigests.has(opts.digest.slice(7))).toBe(true);
    const packet = JSON.parse(Buffer.from(annotation, 'base64').toString()) as Record<string, string>;
    const bad = await runNodeCli(AGENT_BIN, ['keyprovider', 'cmd', ...agentArgs()], { input: goUnwrapRequest(Buffer.from(JSON.stringify({ ...packet, kid: 'kbs:///default/image-kek/nope' })).toString('base64')) });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/^keyhold-agent: KEK_NOT_FOUND: /);
  });

  it('skopeo (Go ocicrypt, jwe) encrypts; the node decrypts with the private key held as a KBS resource', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pub = join(dir, 'pub.pem');
    const priv = join(dir, 'priv.pem');
    await writeFile(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    await writeFile(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const skenc = join(dir, 'skopeo-enc');
    await run('skopeo', ['--insecure-policy', 'copy', '--quiet', '--encryption-key', `jwe:${pub}`, `oci:${plain}:latest`, `oci:${skenc}:latest`]);
    const put = await owner('set-resource', '--path', 'default/image-key/priv', '--resource-file', priv);
    expect(put.code, put.stderr).toBe(0);
    // Without the key: refused, naming the scheme.
    const none = await decrypt(skenc, join(dir, 'fail', 'out'), ...agentArgs());
    await expectRefused(none, join(dir, 'fail'), /jwe.*--decryption-key/);
    const out = join(dir, 'node', 'skopeo-dec');
    const r = await decrypt(skenc, out, '--decryption-key', 'kbs:///default/image-key/priv', ...agentArgs());
    expect(r.code, r.stderr).toBe(0);
    expect(await unpackRootfs(out, 'latest', join(dir, 'scratch'))).toEqual(expected);
  });

  it('keyhold encrypts for a jwe recipient; skopeo decrypts it', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = join(dir, 'ec-pub.pem');
    const priv = join(dir, 'ec-priv.pem');
    await writeFile(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    await writeFile(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const khenc = join(dir, 'keyhold-jwe-enc');
    const e = await runNodeCli(CLI_BIN, ['image', 'encrypt', '--input', `oci:${plain}:latest`, '--output', `oci:${khenc}:latest`, '--recipient', `jwe:${pub}`]);
    expect(e.code, e.stderr).toBe(0);
    const out = join(dir, 'node', 'skopeo-dec2');
    await run('skopeo', ['--insecure-policy', 'copy', '--quiet', '--decryption-key', priv, `oci:${khenc}:latest`, `oci:${out}:latest`]);
    expect(await unpackRootfs(out, 'latest', join(dir, 'scratch'))).toEqual(expected);
  });
});
