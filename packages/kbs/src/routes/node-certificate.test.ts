import 'reflect-metadata';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, webcrypto, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { BasicConstraintsExtension, Pkcs10CertificateRequestGenerator, SubjectAlternativeNameExtension } from '@peculiar/x509';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '@keyhold/test-harness';
import { openNodeCaProvider } from '../node-ca/node-ca-provider.js';
import { openMemoryState, openRedisState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import { earClaims, emptyVector, type EarStatus } from '../token/ear-claims.js';
import { EarSigner } from '../token/ear-signer.js';
import { adminCall, attest, testKbs, trustedAkNode, type TestKbs } from '../continuous/test-kbs.test-support.js';

const run = promisify(execFile);
let dir: string;
let redis: RedisServer | undefined;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kh-node-cert-'));
});
afterAll(async () => {
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

let kbs: TestKbs | undefined;
afterEach(async () => {
  await kbs?.close();
  kbs = undefined;
});

type X509Crypto = NonNullable<Parameters<typeof Pkcs10CertificateRequestGenerator.create>[1]>;
type CsrParams = Parameters<typeof Pkcs10CertificateRequestGenerator.create>[0];
const X509_CRYPTO = webcrypto as unknown as X509Crypto;

interface NodeKey {
  readonly keys: webcrypto.CryptoKeyPair;
  readonly spkiSha256: string;
  readonly alg: CsrParams['signingAlgorithm'];
}

async function nodeKey(kind: 'P-256' | 'P-384' | 'rsa1024' | 'rsa2048' = 'P-256'): Promise<NodeKey> {
  const rsa = kind.startsWith('rsa');
  const keys = (await webcrypto.subtle.generateKey(
    rsa ? { name: 'RSASSA-PKCS1-v1_5', modulusLength: kind === 'rsa1024' ? 1024 : 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: kind },
    true,
    ['sign', 'verify'],
  )) as webcrypto.CryptoKeyPair;
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  return { keys, spkiSha256: createHash('sha256').update(spki).digest('hex'), alg: (rsa ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', hash: kind === 'P-384' ? 'SHA-384' : 'SHA-256' }) as CsrParams['signingAlgorithm'] };
}

async function csr(key: NodeKey, extensions: CsrParams['extensions'] = []): Promise<{ pem: string; der: Uint8Array }> {
  const req = await Pkcs10CertificateRequestGenerator.create({ name: 'CN=node, O=evil', keys: key.keys as unknown as CsrParams['keys'], signingAlgorithm: key.alg, extensions }, X509_CRYPTO);
  return { pem: req.toString('pem'), der: new Uint8Array(req.rawData) };
}

/** A token as /attest would sign it, naming `nodeId` and binding `spki` (for checks that do not need a TPM flow). */
async function token(k: TestKbs, o: { nodeId?: string; spki?: string; status?: EarStatus; signer?: EarSigner }): Promise<string> {
  const extra: Record<string, unknown> = {};
  if (o.nodeId !== undefined) extra['node_id'] = o.nodeId;
  if (o.spki !== undefined) extra['keyhold.node-key'] = { 'spki-sha256': o.spki };
  return (o.signer ?? k.deps.signer).sign(
    earClaims({ tee: 'tpm', status: o.status ?? 'affirming', vector: emptyVector(), policyId: 'default@0', teeClaims: {}, reportDataHex: '00', nonce: 'n', teePubkey: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' } as never, extra, build: 'test' }),
  );
}

async function post(k: TestKbs, tok: string | undefined, body: string | Uint8Array, type = 'application/json') {
  const headers: Record<string, string> = { 'content-type': type };
  if (tok !== undefined) headers['authorization'] = `Bearer ${tok}`;
  const r = await k.app.request('/kbs/v0/node-certificate', { method: 'POST', headers, body });
  const json = (await r.json()) as Record<string, any>;
  return { status: r.status, json, type: String(json['type'] ?? '').split('/').pop() };
}

const jsonCsr = (pem: string): string => JSON.stringify({ csr: pem });

async function activeNode(k: TestKbs, nodeId = 'c'.repeat(64)): Promise<string> {
  const at = new Date(k.now()).toISOString();
  await k.state.nodes.compareAndSwap(nodeId, 0, { nodeId, ekHash: nodeId, akName: null, firstSeenAt: at, lastAttestedAt: at, state: 'active' });
  return nodeId;
}

async function openssl(args: string[]): Promise<string> {
  return (await run('openssl', args)).stdout;
}

describe('POST /kbs/v0/node-certificate', () => {
  it('certifies the key bound into a real attestation: SPIFFE URI SAN, CN, clientAuth, digitalSignature, chains to /node-ca; serial recorded, audited', async () => {
    kbs = await testKbs();
    const node = await trustedAkNode(kbs);
    const key = await nodeKey();
    const att = await attest(kbs, node, { additionalEvidence: JSON.stringify({ 'keyhold.node-key': { 'spki-sha256': key.spkiSha256 } }) });
    expect(att.status).toBe(200);
    const claims = JSON.parse(Buffer.from(att.token!.split('.')[1]!, 'base64url').toString()) as any;
    expect(claims.submods.cpu0['ear.veraison.annotated-evidence']['keyhold.node-key']).toEqual({ 'spki-sha256': key.spkiSha256 });
    const req = await csr(key);
    const r = await post(kbs, att.token, jsonCsr(req.pem));
    expect(r.status).toBe(200);
    const hex = node.nodeId.slice(3);
    expect(r.json).toMatchObject({ spiffeId: `spiffe://example.org/keyhold/node/ak/${hex}`, serial: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(Date.parse(r.json['notAfter']) - Date.parse(r.json['notBefore'])).toBe(3600_000 + 60_000);

    const ca = await kbs.app.request('/kbs/v0/node-ca');
    expect(ca.headers.get('content-type')).toBe('application/pem-certificate-chain');
    const caPem = await ca.text();
    expect(r.json['chain']).toBe(caPem);
    await writeFile(path.join(dir, 'ca.pem'), caPem);
    await writeFile(path.join(dir, 'leaf.pem'), r.json['certificate']);
    expect(await openssl(['verify', '-CAfile', path.join(dir, 'ca.pem'), '-purpose', 'sslclient', path.join(dir, 'leaf.pem')])).toMatch(/leaf\.pem: OK/);
    const text = await openssl(['x509', '-in', path.join(dir, 'leaf.pem'), '-noout', '-text']);
    expect(text).toContain(`URI:spiffe://example.org/keyhold/node/ak/${hex}`);
    expect(text).toMatch(new RegExp(`Subject: CN\\s?=\\s?${hex}, OU\\s?=\\s?ak, O\\s?=\\s?keyhold`));
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s+TLS Web Client Authentication\n/);
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    // The CSR's own subject never reaches the certificate.
    expect(text).not.toContain('evil');

    const rec = await kbs.state.nodes.get(node.nodeId);
    expect(rec!.certificates).toEqual([{ serial: r.json['serial'], notAfter: r.json['notAfter'] }]);
    expect((await kbs.audit.query({ node: node.nodeId, kind: 'release' }))[0]?.fields).toMatchObject({ action: 'node-certificate', verdict: 'issued' });
    // DER as application/pkcs10 works too; serials differ.
    const again = await post(kbs, att.token, req.der, 'application/pkcs10');
    expect(again.status).toBe(200);
    expect(again.json['serial']).not.toBe(r.json['serial']);
    expect((await kbs.state.nodes.get(node.nodeId))!.certificates).toHaveLength(2);
  });

  it('refuses a malformed keyhold.node-key binding at /attest; leaves other additional evidence alone', async () => {
    kbs = await testKbs();
    const node = await trustedAkNode(kbs);
    for (const bad of ['{"keyhold.node-key":{"spki-sha256":"XY"}}', '{"keyhold.node-key":"ab"}', '{"keyhold.node-key":{"spki-sha256":"' + 'a'.repeat(64) + '","x":1}}', 'keyhold.node-key', `{"keyhold.node-key":{"spki-sha256":"${'a'.repeat(64)}"},"pad":"${'x'.repeat(5000)}"}`]) {
      const r = await attest(kbs, node, { additionalEvidence: bad });
      expect({ status: r.status, type: r.type }, bad.slice(0, 60)).toEqual({ status: 400, type: 'InvalidRequest' });
    }
    const other = await attest(kbs, node, { additionalEvidence: '{"device":"gpu0"}' });
    expect(other.status).toBe(200);
    const claims = JSON.parse(Buffer.from(other.token!.split('.')[1]!, 'base64url').toString()) as any;
    expect(claims.submods.cpu0['ear.veraison.annotated-evidence']['keyhold.node-key']).toBeUndefined();
    // Such a token certifies nothing.
    const r = await post(kbs, other.token, jsonCsr((await csr(await nodeKey())).pem));
    expect({ status: r.status, type: r.type }).toEqual({ status: 403, type: 'PolicyDeny' });
  });

  it('refuses: key not bound, bad signature, weak or odd keys, bad bodies (and certifies P-384 and RSA-2048)', async () => {
    kbs = await testKbs();
    const nodeId = await activeNode(kbs);
    const key = await nodeKey();
    const tok = await token(kbs, { nodeId, spki: key.spkiSha256 });
    // SECURITY: another key than the bound one (a stolen token).
    const other = await post(kbs, tok, jsonCsr((await csr(await nodeKey())).pem));
    expect({ status: other.status, type: other.type }).toEqual({ status: 403, type: 'PolicyDeny' });
    expect(other.json['detail']).toMatch(/not the key bound/);
    // SECURITY: a signature that does not verify (one bit flipped in the signature).
    const good = await csr(key);
    const der = Buffer.from(good.der);
    der[der.length - 5] = der[der.length - 5]! ^ 0x01;
    const flipped = await post(kbs, tok, new Uint8Array(der), 'application/pkcs10');
    expect({ status: flipped.status, type: flipped.type }).toEqual({ status: 400, type: 'InvalidRequest' });
    expect(flipped.json['detail']).toMatch(/signature does not verify/);
    for (const kind of ['P-384', 'rsa2048'] as const) {
      const k2 = await nodeKey(kind);
      expect((await post(kbs, await token(kbs, { nodeId, spki: k2.spkiSha256 }), jsonCsr((await csr(k2)).pem))).status, kind).toBe(200);
    }
    const weak = await nodeKey('rsa1024');
    const w = await post(kbs, await token(kbs, { nodeId, spki: weak.spkiSha256 }), jsonCsr((await csr(weak)).pem));
    expect({ status: w.status, type: w.type }).toEqual({ status: 400, type: 'InvalidRequest' });
    expect(w.json['detail']).toMatch(/RSA 2048\.\.4096/);
    const bodies: [string | Uint8Array, string, number][] = [
      ['not a csr', 'application/pkcs10', 400],
      [new Uint8Array([0x30, 0x82, 0xff, 0xff]), 'application/pkcs10', 400],
      [good.pem + good.pem, 'application/pkcs10', 400],
      [JSON.stringify({ csr: good.pem, extra: 1 }), 'application/json', 400],
      ['{', 'application/json', 400],
      [good.pem, 'text/plain', 415],
      ['x'.repeat(20_000), 'application/pkcs10', 400],
    ];
    for (const [body, type, status] of bodies) expect((await post(kbs, tok, body, type)).status, `${type} ${String(body).slice(0, 30)}`).toBe(status);
    expect((await post(kbs, tok, good.pem, 'application/x-pem-file')).status).toBe(200);
  });

  it('ignores requested SANs and extensions (a CA bit, another identity): only the SPIFFE ID, CA:FALSE', async () => {
    kbs = await testKbs();
    const nodeId = await activeNode(kbs);
    const key = await nodeKey();
    const req = await csr(key, [new SubjectAlternativeNameExtension([{ type: 'dns', value: 'kbs.example' }, { type: 'url', value: 'spiffe://example.org/admin' }]), new BasicConstraintsExtension(true, 5, true)]);
    const r = await post(kbs, await token(kbs, { nodeId, spki: key.spkiSha256 }), jsonCsr(req.pem));
    expect(r.status).toBe(200);
    await writeFile(path.join(dir, 'ext.pem'), r.json['certificate']);
    const text = await openssl(['x509', '-in', path.join(dir, 'ext.pem'), '-noout', '-ext', 'subjectAltName,basicConstraints']);
    expect(text).toContain(`URI:spiffe://example.org/keyhold/node/tpm/${nodeId}`);
    expect(text).not.toMatch(/kbs\.example|\/admin/);
    expect(text).toMatch(/CA:FALSE/);
  });

  it('refuses banned, revoked, stale and unknown nodes, unaffirming, nodeless, unbound and expired tokens', async () => {
    kbs = await testKbs({ settings: { staleAfterMs: 60_000 } });
    const key = await nodeKey();
    const req = jsonCsr((await csr(key)).pem);
    const nodeId = await activeNode(kbs);
    const expect403 = async (tok: string, type: string, detail?: RegExp) => {
      const r = await post(kbs!, tok, req);
      expect({ status: r.status, type: r.type }).toEqual({ status: 403, type });
      if (detail !== undefined) expect(r.json['detail']).toMatch(detail);
    };
    const tok = await token(kbs, { nodeId, spki: key.spkiSha256 });
    // SECURITY: an expired token, a token from another signer, no token.
    const past = await EarSigner.create({ privateKey: kbs.signingKey, issuer: 'test', lifetimeMs: 60_000, now: () => Date.now() - 10 * 60_000 });
    expect((await post(kbs, await token(kbs, { nodeId, spki: key.spkiSha256, signer: past }), req)).status).toBe(401);
    const foreign = await EarSigner.create({ privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, issuer: 'test', lifetimeMs: 60_000 });
    expect((await post(kbs, await token(kbs, { nodeId, spki: key.spkiSha256, signer: foreign }), req)).status).toBe(401);
    expect((await post(kbs, undefined, req)).status).toBe(401);
    await expect403(await token(kbs, { nodeId, spki: key.spkiSha256, status: 'warning' }), 'PolicyDeny', /not affirming/);
    await expect403(await token(kbs, { spki: key.spkiSha256 }), 'PolicyDeny', /names no node/);
    await expect403(await token(kbs, { nodeId }), 'PolicyDeny', /bound no node key/);
    await expect403(await token(kbs, { nodeId: 'd'.repeat(64), spki: key.spkiSha256 }), 'PolicyDeny', /no record/);

    kbs.advance(61_000);
    await expect403(tok, 'PolicyDeny', /stale/);
    kbs.advance(-61_000);
    expect((await post(kbs, tok, req)).status).toBe(200);

    // Banned after the token was issued: refused with the ban's reason (the daemon stops renewing).
    const cur = (await kbs.state.nodes.get(nodeId))!;
    const { version, ...rest } = cur;
    await kbs.state.nodes.compareAndSwap(nodeId, version, { ...rest, state: 'banned', banned: { at: new Date().toISOString(), reason: 'pcr07 does not match' } });
    await expect403(tok, 'NodeBanned', /pcr07/);
    expect((await kbs.audit.query({ node: nodeId, kind: 'deny' })).at(-1)?.fields).toMatchObject({ action: 'node-certificate', verdict: 'refused', reason: expect.stringMatching(/^NODE_BANNED/) });
    expect((await adminCall(kbs, 'POST', `/kbs/v0/admin/nodes/${nodeId}/revoke`)).status).toBe(200);
    await expect403(tok, 'NodeRevoked');
    expect((await kbs.state.nodes.get(nodeId))!.certificates).toHaveLength(1);
  });
});

describe('the node CA', () => {
  it('generated once per state: two KBS replicas sharing Redis serve one CA and issue certificates under it', async () => {
    redis = await startRedis({});
    const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const open = (): Promise<KbsState> => openRedisState({ url: redis!.url, keyPrefix: 'nodeca', sessionLimits: { maxSessions: 100, maxSessionBytes: 1 << 20 } });
    const [sa, sb] = [await open(), await open()];
    const [a, b] = await Promise.all([testKbs({ state: sa, signingKey }), testKbs({ state: sb, signingKey })]);
    try {
      const [ca1, ca2] = (await Promise.all([a, b].map(async (k) => (await k.app.request('/kbs/v0/node-ca')).text()))) as [string, string];
      expect(ca1).toBe(ca2);
      expect(ca1).toMatch(/^-----BEGIN CERTIFICATE-----/);
      const nodeId = await activeNode(a);
      const key = await nodeKey();
      const r = await post(b, await token(b, { nodeId, spki: key.spkiSha256 }), jsonCsr((await csr(key)).pem));
      expect(r.status).toBe(200);
      await writeFile(path.join(dir, 'redis-ca.pem'), ca1);
      await writeFile(path.join(dir, 'redis-leaf.pem'), r.json['certificate']);
      expect(await openssl(['verify', '-CAfile', path.join(dir, 'redis-ca.pem'), path.join(dir, 'redis-leaf.pem')])).toMatch(/OK/);
      const caText = await openssl(['x509', '-in', path.join(dir, 'redis-ca.pem'), '-noout', '-text']);
      expect(caText).toMatch(/CA:TRUE, pathlen:0/);
      expect(caText).toMatch(/Certificate Sign, CRL Sign/);
      // SECURITY: a replica with another token signing key cannot unwrap the stored CA key: it refuses rather than replace the CA.
      const stranger = await openNodeCaProvider({ config: { files: undefined, ttlMs: 3600_000 }, state: sa.nodeCa, signingKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, trustDomain: 'example.org' });
      await expect(stranger.get()).rejects.toThrow(/cannot be unwrapped/);
      expect((await sb.nodeCa.get())?.certificatePem.trim()).toBe(ca1.trim());
    } finally {
      await a.close();
      await b.close();
      await sa.close();
      await sb.close();
    }
  });

  it('uses an owner-supplied intermediate with its chain; refuses a leaf as CA and a key that is not the certificate’s', async () => {
    const f = (n: string): string => path.join(dir, n);
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('root.key'), '-out', f('root.pem'), '-subj', '/CN=Owner Root', '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', f('int.key'), '-out', f('int.csr'), '-subj', '/CN=Owner Node CA']);
    await writeFile(f('int.ext'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n');
    await openssl(['x509', '-req', '-in', f('int.csr'), '-CA', f('root.pem'), '-CAkey', f('root.key'), '-CAcreateserial', '-out', f('int.pem'), '-days', '2', '-extfile', f('int.ext')]);
    const state = await openMemoryState({ sessionLimits: { maxSessions: 10, maxSessionBytes: 1 << 20 } });
    const signingKey: KeyObject = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const provider = await openNodeCaProvider({ config: { files: { certificate: f('int.pem'), privateKey: f('int.key'), chain: f('root.pem') }, ttlMs: 600_000 }, state: state.nodeCa, signingKey, trustDomain: 'td.test' });
    const ca = await provider.get();
    expect(ca.source).toBe('configured');
    expect(ca.bundlePem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(await state.nodeCa.get()).toBeUndefined();

    kbs = await testKbs({ state, signingKey, trustDomain: 'td.test' });
    kbs.deps.continuous = { ...kbs.deps.continuous!, nodeCa: provider };
    const nodeId = await activeNode(kbs);
    const key = await nodeKey();
    const r = await post(kbs, await token(kbs, { nodeId, spki: key.spkiSha256 }), jsonCsr((await csr(key)).pem));
    expect(r.status).toBe(200);
    expect(Date.parse(r.json['notAfter']) - Date.parse(r.json['notBefore'])).toBe(660_000);
    await writeFile(f('owner-leaf.pem'), r.json['certificate']);
    await writeFile(f('bundle.pem'), r.json['chain']);
    expect(await openssl(['verify', '-CAfile', f('root.pem'), '-untrusted', f('bundle.pem'), f('owner-leaf.pem')])).toMatch(/OK/);
    expect(await openssl(['x509', '-in', f('owner-leaf.pem'), '-noout', '-ext', 'subjectAltName'])).toContain(`URI:spiffe://td.test/keyhold/node/tpm/${nodeId}`);

    // SECURITY: a leaf certificate is not a CA; a key of another certificate does not sign for it.
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('leaf.key'), '-out', f('leafca.pem'), '-subj', '/CN=Not a CA', '-days', '2', '-addext', 'basicConstraints=critical,CA:FALSE']);
    await expect(openNodeCaProvider({ config: { files: { certificate: f('leafca.pem'), privateKey: f('leaf.key'), chain: undefined }, ttlMs: 600_000 }, state: state.nodeCa, signingKey, trustDomain: 'td.test' })).rejects.toThrow(/not a CA certificate/);
    await expect(openNodeCaProvider({ config: { files: { certificate: f('int.pem'), privateKey: f('root.key'), chain: undefined }, ttlMs: 600_000 }, state: state.nodeCa, signingKey, trustDomain: 'td.test' })).rejects.toThrow(/does not belong/);
  });
});
