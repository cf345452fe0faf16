/**
 * Issue 3 end to end: hardware identity with real swtpm TPMs whose EK certificates come from
 * swtpm's local CA, the KBS as its own process (trusted_ak switched off, so only EK-bound AKs
 * count), the agent CLI as its own process, the owner CLI for admin calls. Refusals are driven by
 * hand with the agent library against the real TPM and checked for status, error type, detail code
 * and that nothing was released.
 */
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSoftwareTpm, EK_CERT_NV_INDEX, IdentityContributor, loadOrCreateAk, openTpmDevice, tpm2bPublicToSpkiDer, type LoadedAk, type TpmDevice } from '@keyhold/attestation-agent';
import { startSwtpm, type RunningSwtpm } from '@keyhold/test-harness';
import { parseTpm2bPublic, tpmPublicToSpkiDer } from '@keyhold/verifier';
import { createAdminKeys, type AdminKeys } from './harness/admin-keys.js';
import { identityClaims, identityHandshake, provisionEccP256EkCert, swtpmLocalCaFiles } from './harness/hardware-identity.js';
import { startKbsProcess, type KbsProcess } from './harness/kbs-process.js';
import { getResource, http, variantOf, type HttpAnswer } from './harness/raw-flow.js';
import { AGENT_BIN, CLI_BIN, CORPUS_DIR, HAVE_CORPUS } from './harness/repo.js';
import { runNodeCli } from './harness/run-cli.js';

const run = promisify(execFile);
const SECRET = 'keyhold-identity-secret-5c2e81';
const SECRET_PATH = 'default/key/identity';
const VENDOR_STORE = join(CORPUS_DIR, 'ek-certs', 'tpm_cert_store');
const TRUST_DOMAIN = 'e2e.keyhold.test';

let dir: string;
let tpmA: RunningSwtpm; // the node under test (RSA and ECC EKs, certificates from swtpm's local CA)
let tpmB: RunningSwtpm; // another TPM, whose certificate is presented with A's EK
let admin: AdminKeys;
let tokenFile: string;
let kbs: KbsProcess; // CA store = swtpm local CA (uploaded with `keyhold ca add`), trusted_ak off
let kbsVendor: KbsProcess; // CA store = the TPM vendor store from the corpus only
let kbsAllow: KbsProcess; // CA store = swtpm local CA, and require_ek_allowlist
let rsaNode: string;
let eccNode: string;

function agentRun(cmd: string[], url: string, swtpm: RunningSwtpm, ...flags: string[]) {
  return runNodeCli(AGENT_BIN, [...cmd, '--url', url, '--tcti', swtpm.tcti, ...flags]);
}

function cli(url: string, ...args: string[]) {
  const [group, ...rest] = args;
  return runNodeCli(CLI_BIN, [group!, '--url', url, '--admin-token-file', tokenFile, ...rest]);
}

function expectNoSecret(a: { text?: string; stdout?: string; stderr?: string }): void {
  const all = `${a.text ?? ''}${a.stdout ?? ''}${a.stderr ?? ''}`;
  expect(all).not.toContain(SECRET);
  expect(all).not.toContain(Buffer.from(SECRET).toString('base64'));
}

function expectRefused(a: HttpAnswer, status: number, variant: string, detail: RegExp): void {
  expect({ status: a.status, variant: variantOf(a) }).toEqual({ status, variant });
  expect((a.json as { detail: string }).detail).toMatch(detail);
  expectNoSecret(a);
}

async function ekHashOf(swtpm: RunningSwtpm, alg: 'rsa' | 'ecc'): Promise<string> {
  const r = await runNodeCli(CLI_BIN, ['ek-hash', '--tcti', swtpm.tcti, '--alg', alg, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { ekHash: string }).ekHash;
}

/** Open TPM A with the AK at `handle` (created under the EK and persisted when absent). */
async function withTpm<T>(swtpm: RunningSwtpm, handle: number, fn: (tpm: TpmDevice, ak: LoadedAk) => Promise<T>): Promise<T> {
  const tpm = await openTpmDevice({ tcti: swtpm.tcti });
  const ak = await loadOrCreateAk(tpm, { persistentHandle: handle, persist: true });
  try {
    return await fn(tpm, ak);
  } finally {
    await ak.release();
    await tpm.close();
  }
}

async function setSecret(k: KbsProcess): Promise<void> {
  const r = await runNodeCli(CLI_BIN, ['config', '--url', k.url, '--admin-token-file', tokenFile, 'set-resource', '--path', SECRET_PATH, '--resource-file', join(dir, 'secret.bin')]);
  expect(r.code, r.stderr).toBe(0);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keyhold-e2e-identity-'));
  [tpmA, tpmB] = await Promise.all([startSwtpm({ ekCert: true }), startSwtpm({ ekCert: true })]);
  await provisionEccP256EkCert(tpmA, dir);
  admin = await createAdminKeys(dir);
  tokenFile = join(dir, 'admin.jwt');
  await writeFile(tokenFile, await admin.token({ lifetimeS: 600 }));
  await writeFile(join(dir, 'secret.bin'), SECRET);
  const caDir = join(dir, 'localca');
  await swtpmLocalCaFiles(caDir);
  await Promise.all(['kbs', 'kbs-vendor', 'kbs-allow'].map((d) => mkdir(join(dir, d))));
  const base = `[tpm]\ntrusted_ak_list = false\ntrust_domain = "${TRUST_DOMAIN}"\n`;
  [kbs, kbsVendor, kbsAllow] = await Promise.all([
    startKbsProcess({ dataDir: join(dir, 'kbs', 'data'), adminPublicKeyFile: admin.publicKeyFile, configToml: base }),
    startKbsProcess({ dataDir: join(dir, 'kbs-vendor', 'data'), adminPublicKeyFile: admin.publicKeyFile, configToml: `${base}ek_ca_dir = "${VENDOR_STORE}"\n` }),
    startKbsProcess({ dataDir: join(dir, 'kbs-allow', 'data'), adminPublicKeyFile: admin.publicKeyFile, configToml: `${base}ek_ca_dir = "${caDir}"\nrequire_ek_allowlist = true\n` }),
  ]);
  // The owner trusts swtpm's local CA on the main KBS through the CLI.
  const caAdd = await cli(kbs.url, 'ca', '--json', 'add', ...(await swtpmLocalCaFiles(join(dir, 'upload'))));
  expect(caAdd.code, caAdd.stderr).toBe(0);
  expect((JSON.parse(caAdd.stdout) as { added: unknown[] }).added).toHaveLength(2);
  await Promise.all([setSecret(kbs), setSecret(kbsVendor), setSecret(kbsAllow)]);
  rsaNode = await ekHashOf(tpmA, 'rsa');
  eccNode = await ekHashOf(tpmA, 'ecc');
}, 120_000);

afterAll(async () => {
  await Promise.all([kbs?.stop(), kbsVendor?.stop(), kbsAllow?.stop()]);
  await Promise.all([tpmA?.stop(), tpmB?.stop()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('enrolment by credential activation (EK certificate from swtpm local CA)', () => {
  it('RSA EK: the first attestation activates and releases; the next skips activation; the token names the node', async () => {
    const r = await agentRun(['get-resource', `kbs:///${SECRET_PATH}`], kbs.url, tpmA);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(SECRET);
    const list = await cli(kbs.url, 'node', '--json', 'list');
    expect(list.code, list.stderr).toBe(0);
    const nodes = (JSON.parse(list.stdout) as { nodes: { nodeId: string; akName: string; revoked: boolean; ekTrust: string }[] }).nodes;
    expect(nodes).toEqual([expect.objectContaining({ nodeId: rsaNode, revoked: false, ekTrust: 'ca' })]);

    const t = await agentRun(['token'], kbs.url, tpmA);
    expect(t.code, t.stderr).toBe(0);
    const c = identityClaims(t.stdout.trim());
    expect(c.status).toBe('affirming');
    expect(c.nodeId).toBe(rsaNode);
    expect(c.spiffeId).toBe(`spiffe://${TRUST_DOMAIN}/keyhold/node/tpm/${rsaNode}`);
    expect(c.ekTrust).toBe('ca');
    expect(c.vector['hardware']).toBe(2);
    expect(c.vector['instance-identity']).toBe(2);
    expect(c.tpm['credential_activation']).toBe('enrolled');
    expect(c.tpm['ak_name']).toBe(nodes[0]!.akName);
    expect((c.tpm['ek_certificate'] as { issuer: string }).issuer).toContain('swtpm-localca');
  });

  it('a changed AK on the same TPM activates again and replaces the binding', async () => {
    const before = (JSON.parse((await cli(kbs.url, 'node', '--json', 'list')).stdout) as { nodes: { akName: string }[] }).nodes[0]!.akName;
    const t = await agentRun(['token'], kbs.url, tpmA, '--ak-handle', '0x81010003');
    expect(t.code, t.stderr).toBe(0);
    const c = identityClaims(t.stdout.trim());
    expect(c.nodeId).toBe(rsaNode);
    expect(c.tpm['credential_activation']).toBe('performed');
    const after = (JSON.parse((await cli(kbs.url, 'node', '--json', 'list')).stdout) as { nodes: { akName: string }[] }).nodes[0]!.akName;
    expect(after).not.toBe(before);
    expect(after).toBe(c.tpm['ak_name']);
  });

  it('ECC P-256 EK (certificate from swtpm local CA at 0x01c0000a): enrolment and release', async () => {
    const r = await agentRun(['get-resource', `kbs:///${SECRET_PATH}`], kbs.url, tpmA, '--ek-alg', 'ecc', '--ak-handle', '0x81010005', '--ak-alg', 'ecc');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(SECRET);
    const t = await agentRun(['token'], kbs.url, tpmA, '--ek-alg', 'ecc', '--ak-handle', '0x81010005');
    expect(t.code, t.stderr).toBe(0);
    const c = identityClaims(t.stdout.trim());
    expect(c.nodeId).toBe(eccNode);
    expect(eccNode).not.toBe(rsaNode);
    expect(c.ekTrust).toBe('ca');
    expect(c.tpm['credential_activation']).toBe('enrolled');
  });

  it('ECC P-384 EK (high-range H-3, swtpm_setup\'s own certificate at 0x01c00016): enrolment and release', async () => {
    // The node identity is the hash of the key that swtpm's certificate certifies.
    const tpm = await openTpmDevice({ tcti: tpmA.tcti });
    const { ekNode, cert } = await (async () => {
      try {
        const ek = await tpm.createEk('ecc384');
        return { ekNode: createHash('sha256').update(tpm2bPublicToSpkiDer(ek.publicArea)).digest('hex'), cert: await tpm.readNv(EK_CERT_NV_INDEX.ecc384) };
      } finally {
        await tpm.close();
      }
    })();
    expect(cert.length).toBeGreaterThan(0);
    const r = await agentRun(['get-resource', `kbs:///${SECRET_PATH}`], kbs.url, tpmA, '--ek-alg', 'ecc384', '--ak-handle', '0x81010007', '--ak-alg', 'ecc');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(SECRET);
    const t = await agentRun(['token'], kbs.url, tpmA, '--ek-alg', 'ecc384', '--ak-handle', '0x81010007');
    expect(t.code, t.stderr).toBe(0);
    const c = identityClaims(t.stdout.trim());
    expect(c.nodeId).toBe(ekNode);
    expect([rsaNode, eccNode]).not.toContain(ekNode);
    expect(c.ekTrust).toBe('ca');
    expect(c.tpm['credential_activation']).toBe('enrolled');
    expect((c.tpm['ek_certificate'] as { issuer: string }).issuer).toContain('swtpm-localca');
  });
});

describe('refusals: nothing is released, the error says why', () => {
  it('EK certificate from an unknown CA (the vendor store is the only CA store)', async () => {
    if (!HAVE_CORPUS) return void console.warn(`skipping: ${VENDOR_STORE} is absent`);
    const r = await agentRun(['get-resource', `kbs:///${SECRET_PATH}`], kbsVendor.url, tpmA);
    expect(r.code).toBe(3); // refused by the KBS (401)
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/EK_CERT_UNKNOWN_CA.*AttestationFailed/);
    expectNoSecret(r);
  });

  it("EK certificate that does not match the EK public key (another TPM's certificate)", async () => {
    const foreign = await withTpm(tpmB, 0x81010002, async (tpm) => tpm.readNv(0x01c00002));
    const r = await withTpm(tpmA, 0x81010002, async (tpm, ak) => {
      const c = new IdentityContributor({ tpm, ak: ak.ak });
      try {
        const id = { ...(await c.identity()), ek_cert: Buffer.from(foreign).toString('base64') };
        return await identityHandshake(kbs.url, { identity: id, quoteTpm: tpm, quoteAk: ak.ak });
      } finally {
        await c.close();
      }
    });
    expectRefused(r.auth, 401, 'AttestationFailed', /^EK_CERT_KEY_MISMATCH/);
    expect(r.attest).toBeUndefined();
  });

  it('EK not in the allowlist when the allowlist is required; allowed by the owner with `keyhold node allow`', async () => {
    const r = await agentRun(['get-resource', `kbs:///${SECRET_PATH}`], kbsAllow.url, tpmA);
    expect(r.code).toBe(3); // refused by the KBS (401)
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/EK_NOT_ALLOWLISTED/);
    const allow = await cli(kbsAllow.url, 'node', 'allow', rsaNode, '--note', 'e2e node A');
    expect(allow.code, allow.stderr).toBe(0);
    const ok = await agentRun(['get-resource', `kbs:///${SECRET_PATH}`], kbsAllow.url, tpmA);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toBe(SECRET);
    const t = await agentRun(['token'], kbsAllow.url, tpmA);
    expect(identityClaims(t.stdout.trim()).ekTrust).toBe('ca+allowlist');
  });

  it('a software key presented as the AK with the genuine EK: the activation cannot be answered', async () => {
    const soft = createSoftwareTpm();
    const softAk = await loadOrCreateAk(soft, { persistentHandle: 0x81010002, persist: true });
    const r = await withTpm(tpmA, 0x81010002, async (tpm, realAk) => {
      const c = new IdentityContributor({ tpm, ak: realAk.ak });
      try {
        const genuine = await c.identity();
        // Genuine EK and certificate, software AK: the KBS binds the credential to the software AK's name.
        const id = { ...genuine, ak_tpm2b_public: Buffer.from(softAk.ak.publicArea).toString('base64') };
        let tpmRefused = false;
        const run = await identityHandshake(kbs.url, {
          identity: id,
          quoteTpm: soft,
          quoteAk: softAk.ak,
          answer: async (cred) => {
            // The real TPM will not open a credential made for another object's name...
            const ek = await tpm.createEk('rsa');
            try {
              await tpm.activateCredential(realAk.ak, ek, Buffer.from(cred.credential_blob, 'base64'), Buffer.from(cred.encrypted_secret, 'base64'));
            } catch {
              tpmRefused = true;
            } finally {
              await tpm.flushKey(ek);
            }
            // ...so the attacker can only guess.
            return randomBytes(32).toString('base64');
          },
        });
        expect(tpmRefused).toBe(true);
        return run;
      } finally {
        await c.close();
      }
    });
    expect(Object.keys(r.challengeExtra)).toEqual(['tpm-credential']);
    expectRefused(r.attest!, 401, 'AttestationFailed', /^CREDENTIAL_ACTIVATION_FAILED/);
    expect(r.token).toBeUndefined();
  });

  it('an AK with the decrypt attribute, or without restricted, is refused at /auth', async () => {
    await withTpm(tpmA, 0x81010002, async (tpm, ak) => {
      const c = new IdentityContributor({ tpm, ak: ak.ak });
      try {
        const id = await c.identity();
        for (const [set, clear, what] of [[1 << 17, 0, /decrypt/], [0, 1 << 16, /not restricted/]] as const) {
          const b = Buffer.from(id.ak_tpm2b_public, 'base64');
          b.writeUInt32BE(((b.readUInt32BE(6) | set) & ~clear) >>> 0, 6); // TPMA_OBJECT after size, type, nameAlg
          const r = await identityHandshake(kbs.url, { identity: { ...id, ak_tpm2b_public: b.toString('base64') }, quoteTpm: tpm, quoteAk: ak.ak });
          expectRefused(r.auth, 401, 'AttestationFailed', /^AK_ATTRIBUTES_INVALID/);
          expect((r.auth.json as { detail: string }).detail).toMatch(what);
        }
      } finally {
        await c.close();
      }
    });
  });

  it('a wrong activation answer from the genuine TPM and AK', async () => {
    const r = await withTpm(tpmA, 0x81010004, async (tpm, ak) => {
      const c = new IdentityContributor({ tpm, ak: ak.ak });
      try {
        return await identityHandshake(kbs.url, {
          identity: { ...(await c.identity()) },
          quoteTpm: tpm,
          quoteAk: ak.ak,
          answer: async (cred) => {
            const ek = await tpm.createEk('rsa');
            try {
              const secret = await tpm.activateCredential(ak.ak, ek, Buffer.from(cred.credential_blob, 'base64'), Buffer.from(cred.encrypted_secret, 'base64'));
              secret[0] = secret[0]! ^ 1; // one flipped bit
              return Buffer.from(secret).toString('base64');
            } finally {
              await tpm.flushKey(ek);
            }
          },
        });
      } finally {
        await c.close();
      }
    });
    expectRefused(r.attest!, 401, 'AttestationFailed', /^CREDENTIAL_ACTIVATION_FAILED/);
    expect(r.token).toBeUndefined();
  });

  it('a node cannot add its own EK: a self-made CA chain is refused and the attestation path writes no allowlist', async () => {
    // The node makes its own "vendor" CA and certifies its EK with it, sending the CA along.
    const own = join(dir, 'own-ca');
    await mkdir(own);
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(own, 'ca.key'), '-out', join(own, 'ca.pem'),
      '-subj', '/CN=Totally Genuine TPM CA', '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
    await run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(own, 'x.key'), '-subj', '/CN=ek', '-out', join(own, 'ek.csr')]);
    const r = await withTpm(tpmB, 0x81010002, async (tpm, ak) => {
      const c = new IdentityContributor({ tpm, ak: ak.ak });
      try {
        const id = await c.identity();
        const ekPem = join(own, 'ek.pub.pem');
        const spki = tpmPublicToSpkiDer(parseTpm2bPublic(Buffer.from(id.ek_tpm2b_public, 'base64')));
        await writeFile(ekPem, `-----BEGIN PUBLIC KEY-----\n${Buffer.from(spki).toString('base64').replace(/.{64}/g, '$&\n')}\n-----END PUBLIC KEY-----\n`);
        await run('openssl', ['x509', '-req', '-in', join(own, 'ek.csr'), '-CA', join(own, 'ca.pem'), '-CAkey', join(own, 'ca.key'), '-CAcreateserial', '-force_pubkey', ekPem, '-days', '1', '-outform', 'DER', '-out', join(own, 'ek.der')]);
        const selfCert = await readFile(join(own, 'ek.der'));
        const caPem = await readFile(join(own, 'ca.pem'), 'utf8');
        return await identityHandshake(kbs.url, {
          identity: { ...id, ek_cert: selfCert.toString('base64'), ek_ca: caPem, 'ek-allowlist': 'add' },
          quoteTpm: tpm,
          quoteAk: ak.ak,
        });
      } finally {
        await c.close();
      }
    });
    // Unknown members of tpm-identity are refused outright; without them the self-made chain is unknown.
    expectRefused(r.auth, 401, 'AttestationFailed', /^TPM_IDENTITY_MALFORMED/);
    const again = await withTpm(tpmB, 0x81010002, async (tpm, ak) => {
      const c = new IdentityContributor({ tpm, ak: ak.ak });
      try {
        const id = { ...(await c.identity()), ek_cert: (await readFile(join(own, 'ek.der'))).toString('base64') };
        return await identityHandshake(kbs.url, { identity: id, quoteTpm: tpm, quoteAk: ak.ak });
      } finally {
        await c.close();
      }
    });
    expectRefused(again.auth, 401, 'AttestationFailed', /^EK_CERT_UNKNOWN_CA/);
    // The admin API that writes the allowlist needs the owner's key.
    const tpmBNode = await ekHashOf(tpmB, 'rsa');
    const noToken = await http(`${kbs.url}/kbs/v0/admin/ek-allowlist`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ekHash: tpmBNode }) });
    expect({ status: noToken.status, variant: variantOf(noToken) }).toEqual({ status: 401, variant: 'AdminAuthAccess' });
    const forged = await admin.token({ key: generateKeyPairSync('ed25519').privateKey });
    const wrongKey = await http(`${kbs.url}/kbs/v0/admin/ek-allowlist`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${forged}` }, body: JSON.stringify({ ekHash: tpmBNode }) });
    expect(wrongKey.status).toBe(401);
    const list = await cli(kbs.url, 'node', '--json', 'list');
    const listed = JSON.parse(list.stdout) as { nodes: { nodeId: string }[]; allowlist: string[] };
    expect(listed.allowlist).toEqual([]);
    expect(listed.nodes.map((n) => n.nodeId)).not.toContain(tpmBNode);
  });

  it('a revoked node: its still-valid bearer token and new attestations get nothing (NodeRevoked)', async () => {
    const t = await agentRun(['token'], kbs.url, tpmA);
    expect(t.code, t.stderr).toBe(0);
    const bearer = t.stdout.trim();
    expect((await getResource(kbs.url, SECRET_PATH, { bearer })).status).toBe(200);

    const rev = await cli(kbs.url, 'node', 'revoke', rsaNode);
    expect(rev.code, rev.stderr).toBe(0);
    const withToken = await getResource(kbs.url, SECRET_PATH, { bearer });
    expectRefused(withToken, 403, 'NodeRevoked', /revoked/);
    const again = await agentRun(['get-resource', `kbs:///${SECRET_PATH}`], kbs.url, tpmA);
    expect(again.code).toBe(3); // refused by the KBS (403 NodeRevoked)
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/NodeRevoked/);
    expectNoSecret(again);
    const nodes = (JSON.parse((await cli(kbs.url, 'node', '--json', 'list')).stdout) as { nodes: { nodeId: string; revoked: boolean }[] }).nodes;
    expect(nodes.find((n) => n.nodeId === rsaNode)?.revoked).toBe(true);
    // The ECC EK is another node identity and is unaffected.
    const ecc = await agentRun(['get-resource', `kbs:///${SECRET_PATH}`], kbs.url, tpmA, '--ek-alg', 'ecc', '--ak-handle', '0x81010005');
    expect(ecc.code, ecc.stderr).toBe(0);
  });
});
