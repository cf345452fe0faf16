/**
 * The node:crypto floor of the KBS's crypto in one complete flow, and the same operations as the
 * KBS does them (the old jose path and the new hot-path modules), measured in one process.
 * Reused by the flow benchmarks: `measureCryptoFloor()` is the per-flow floor they print their
 * KBS CPU per flow against.
 *
 * One flow's KBS crypto (issue 11): verify the AK's ECDSA P-256 quote signature, sign the EAR token
 * (ES256), import the tee key from its JWK, and encrypt the secret to it (ECDH-ES+A256KW with an
 * ephemeral key, Concat KDF, AES-KW, A256GCM). The bearer-token check on /resource (ES256 verify) and
 * RSA-OAEP-256 wrapping are measured as extra rows, outside the floor.
 */
import { constants, createCipheriv, createECDH, createHash, createPublicKey, generateKeyPairSync, publicEncrypt, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { FlattenedEncrypt, SignJWT, importJWK, jwtVerify, type CryptoKey } from 'jose';
import { TeePubkeySchema } from '@keyhold/protocol';
import { Es256CompactSigner } from '../src/hot-path/es256-sign.js';
import { verifyEs256Jwt } from '../src/hot-path/es256-verify.js';
import { encryptEcdhEsA256kw } from '../src/hot-path/jwe-ecdh-es-a256kw.js';
import { encryptRsaOaep256 } from '../src/hot-path/jwe-rsa-oaep-256.js';
import { importTeeKey } from '../src/hot-path/tee-key-import.js';

export type Variant = 'floor' | 'jose' | 'new';
export const FLOOR_OPS = ['quote-verify', 'es256-sign', 'tee-key-import', 'jwe-ecdh-es'] as const;
export const EXTRA_OPS = ['bearer-verify', 'jwe-rsa-oaep'] as const;
export type Op = (typeof FLOOR_OPS)[number] | (typeof EXTRA_OPS)[number];

/** Inputs shaped like one real flow: a TPM-sized quote, Trustee-shaped EAR claims, an agent tee key. */
export interface FlowFixture {
  akPublic: KeyObject;
  quote: Buffer;
  quoteSignatureDer: Buffer;
  signingKey: KeyObject;
  signingPublic: KeyObject;
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
  teeJwk: { kty: 'EC'; crv: 'P-256'; alg: 'ECDH-ES+A256KW'; x: string; y: string };
  teePoint: Buffer;
  rsaJwk: { kty: 'RSA'; alg: 'RSA-OAEP-256'; n: string; e: string };
  secret: Buffer;
  token: string;
}

export function makeFlowFixture(): FlowFixture {
  const ak = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  // TPMS_ATTEST of a quote over 24 PCRs: magic, type, signer name, 48-byte qualifying data, clock
  // info, firmware version, PCR selection and digest: about 150 bytes.
  const quote = randomBytes(151);
  const signing = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const sjwk = signing.publicKey.export({ format: 'jwk' });
  const tee = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 3072 }).publicKey.export({ format: 'jwk' });
  const teeJwk = { kty: 'EC' as const, crv: 'P-256' as const, alg: 'ECDH-ES+A256KW' as const, x: tee.x!, y: tee.y! };
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    eat_profile: 'tag:github.com,2024:confidential-containers/Trustee',
    'ear.verifier-id': { developer: 'https://keyhold.dev', build: 'bench' },
    submods: {
      cpu0: {
        'ear.status': 'affirming',
        'ear.trustworthiness-vector': { 'instance-identity': 2, configuration: 2, executables: 2, 'file-system': 0, hardware: 2, 'runtime-opaque': 0, 'storage-opaque': 0, 'sourced-data': 0 },
        'ear.appraisal-policy-id': 'default@1',
        'ear.veraison.annotated-evidence': {
          tpm: { pcrs: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`sha256:${i}`, randomBytes(32).toString('hex')])), ak_name: randomBytes(34).toString('hex') },
          report_data: randomBytes(48).toString('hex'),
          runtime_data_claims: { nonce: randomBytes(32).toString('base64'), 'tee-pubkey': teeJwk },
          init_data: null,
          init_data_claims: null,
          node_id: randomBytes(32).toString('hex'),
        },
      },
    },
  };
  const header = { alg: 'ES256', typ: 'JWT', jwk: { kty: 'EC', crv: 'P-256', x: sjwk.x, y: sjwk.y, alg: 'ES256' }, kid: 'bench' };
  const signer = new Es256CompactSigner(signing.privateKey, header);
  return {
    akPublic: ak.publicKey,
    quote,
    quoteSignatureDer: sign('sha256', quote, ak.privateKey),
    signingKey: signing.privateKey,
    signingPublic: signing.publicKey,
    header,
    claims,
    teeJwk,
    teePoint: Buffer.concat([Buffer.from([4]), Buffer.from(teeJwk.x, 'base64url'), Buffer.from(teeJwk.y, 'base64url')]),
    rsaJwk: { kty: 'RSA', alg: 'RSA-OAEP-256', n: rsa.n!, e: rsa.e! },
    secret: randomBytes(64),
    token: signer.sign({ ...claims, iat: now, exp: now + 3600, iss: 'bench' }),
  };
}

const A6 = Buffer.from('a6a6a6a6a6a6a6a6', 'hex');
const KDF_OTHER_INFO = Buffer.concat([Buffer.from([0, 0, 0, 14]), Buffer.from('ECDH-ES+A256KW'), Buffer.alloc(8), Buffer.from([0, 0, 1, 0])]);

/**
 * The node:crypto floor of each operation: the bare synchronous primitives, no JSON, no base64,
 * no checks beyond what OpenSSL does anyway. Nothing the KBS does can be cheaper.
 */
export function floorOps(f: FlowFixture): Record<Op, () => void> {
  const payload = Buffer.from(JSON.stringify(f.claims));
  const rsaKey = createPublicKey({ key: f.rsaJwk, format: 'jwk' });
  const [h, p, s] = f.token.split('.') as [string, string, string];
  const tokenInput = Buffer.from(`${h}.${p}`);
  const tokenSig = Buffer.from(s, 'base64url');
  return {
    'quote-verify': () => void verify('sha256', f.quote, f.akPublic, f.quoteSignatureDer),
    'es256-sign': () => void sign('sha256', payload, { key: f.signingKey, dsaEncoding: 'ieee-p1363' }),
    'tee-key-import': () => void createPublicKey({ key: f.teeJwk, format: 'jwk' }),
    'jwe-ecdh-es': () => {
      const e = createECDH('prime256v1');
      e.generateKeys();
      const z = e.computeSecret(f.teePoint);
      const kek = createHash('sha256').update(Buffer.from([0, 0, 0, 1])).update(z).update(KDF_OTHER_INFO).digest();
      const cek = randomBytes(32);
      const kw = createCipheriv('id-aes256-wrap', kek, A6);
      Buffer.concat([kw.update(cek), kw.final()]);
      const gcm = createCipheriv('aes-256-gcm', cek, randomBytes(12));
      gcm.setAAD(KDF_OTHER_INFO);
      Buffer.concat([gcm.update(f.secret), gcm.final()]);
      gcm.getAuthTag();
    },
    'bearer-verify': () => void verify('sha256', tokenInput, { key: f.signingPublic, dsaEncoding: 'ieee-p1363' }, tokenSig),
    'jwe-rsa-oaep': () => {
      const cek = randomBytes(32);
      publicEncrypt({ key: rsaKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek);
      const gcm = createCipheriv('aes-256-gcm', cek, randomBytes(12));
      Buffer.concat([gcm.update(f.secret), gcm.final()]);
      gcm.getAuthTag();
    },
  };
}


/** The KBS's operations before issue 11: jose (WebCrypto), as the KBS called it. */
export function joseOps(f: FlowFixture): Record<Op, () => unknown> {
  const nowS = Math.floor(Date.now() / 1000);
  const importTee = async (jwk: unknown): Promise<{ key: CryptoKey | Uint8Array; alg: string }> => {
    const parsed = TeePubkeySchema.parse(jwk);
    const alg = parsed.kty === 'EC' ? 'ECDH-ES+A256KW' : 'RSA-OAEP-256';
    return { key: await importJWK({ ...parsed, alg }, alg), alg };
  };
  const encrypt = async (jwk: unknown) => {
    const { key, alg } = await importTee(jwk);
    return new FlattenedEncrypt(f.secret).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(key);
  };
  return {
    'quote-verify': () => verify('sha256', f.quote, f.akPublic, f.quoteSignatureDer),
    'es256-sign': () => new SignJWT(f.claims).setProtectedHeader(f.header as { alg: 'ES256' }).setIssuedAt(nowS).setExpirationTime(nowS + 300).setIssuer('bench').sign(f.signingKey),
    'tee-key-import': () => importTee(f.teeJwk),
    // jose's JWE step as wrapSecret ran it: import plus encrypt (the import is also counted above,
    // as it was paid once per /resource; subtract it for the encryption alone).
    'jwe-ecdh-es': () => encrypt(f.teeJwk),
    'bearer-verify': () => jwtVerify(f.token, f.signingPublic, { algorithms: ['ES256'], issuer: 'bench', requiredClaims: ['exp', 'iat'] }),
    'jwe-rsa-oaep': () => encrypt(f.rsaJwk),
  };
}

/** The hot-path modules the KBS uses now (src/hot-path), called as the KBS calls them. */
export function newOps(f: FlowFixture): Record<Op, () => unknown> {
  const nowS = Math.floor(Date.now() / 1000);
  const signer = new Es256CompactSigner(f.signingKey, f.header);
  return {
    'quote-verify': () => verify('sha256', f.quote, f.akPublic, f.quoteSignatureDer),
    'es256-sign': () => signer.sign({ ...f.claims, iat: nowS, exp: nowS + 300, iss: 'bench' }),
    'tee-key-import': () => importTeeKey(f.teeJwk),
    'jwe-ecdh-es': () => {
      const key = importTeeKey(f.teeJwk);
      if (key.kty !== 'EC') throw new Error('unreachable');
      return encryptEcdhEsA256kw(f.secret, key);
    },
    'bearer-verify': () => verifyEs256Jwt(f.token, { publicKey: f.signingPublic, issuer: 'bench', requiredClaims: ['exp', 'iat'], nowMs: Date.now() }),
    'jwe-rsa-oaep': () => {
      const key = importTeeKey(f.rsaJwk);
      if (key.kty !== 'RSA') throw new Error('unreachable');
      return encryptRsaOaep256(f.secret, key);
    },
  };
}

export interface OpCost {
  /** Wall-clock µs per operation, run back to back. */
  wallUs: number;
  /** Process CPU µs per operation, all threads (WebCrypto's thread pool included). */
  cpuUs: number;
}

/** Time `n` sequential runs of `fn` (awaiting it when it returns a promise). */
export async function timeOp(fn: () => unknown, n: number): Promise<OpCost> {
  const warm = Math.max(20, Math.floor(n / 10));
  for (let i = 0; i < warm; i++) await fn();
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const r = fn();
    if (r instanceof Promise) await r;
  }
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000 / n;
  const c = process.cpuUsage(c0);
  return { wallUs, cpuUs: (c.user + c.system) / n };
}

/**
 * The node:crypto floor of one complete flow's KBS crypto, in µs (wall and CPU): the sum of the
 * four floor operations, each the median of `rounds` timed runs of `iterations`.
 */
export async function measureCryptoFloor(opts: { iterations?: number; rounds?: number; fixture?: FlowFixture } = {}): Promise<{ perFlow: OpCost; perOp: Record<(typeof FLOOR_OPS)[number], OpCost> }> {
  const f = opts.fixture ?? makeFlowFixture();
  const ops = floorOps(f);
  const perOp = {} as Record<(typeof FLOOR_OPS)[number], OpCost>;
  for (const op of FLOOR_OPS) perOp[op] = await medianCost(ops[op], opts.iterations ?? 1000, opts.rounds ?? 3);
  const perFlow = FLOOR_OPS.reduce((acc, op) => ({ wallUs: acc.wallUs + perOp[op].wallUs, cpuUs: acc.cpuUs + perOp[op].cpuUs }), { wallUs: 0, cpuUs: 0 });
  return { perFlow, perOp };
}

/** Median (by wall time) of `rounds` timings: a shared machine's stray spikes do not set the figure. */
export async function medianCost(fn: () => unknown, iterations: number, rounds: number): Promise<OpCost> {
  const runs: OpCost[] = [];
  for (let r = 0; r < rounds; r++) runs.push(await timeOp(fn, iterations));
  runs.sort((a, b) => a.wallUs - b.wallUs);
  return runs[Math.floor(runs.length / 2)]!;
}
