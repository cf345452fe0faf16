/**
 * The node CA that signs node certificates (issue 13): the owner's CA from `[node_ca]` (read and
 * checked at start), or one generated on first use and stored once through the state port
 * (`NodeCaState.createIfAbsent`), so every replica sharing the state signs under the same CA.
 */
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { KbsError } from '../errors.js';
import type { NodeCaState } from '../state/ports.js';
import { nodeCaWrapKey, unwrapNodeCaKey, wrapNodeCaKey } from './node-ca-key-wrap.js';
import type { NodeCaConfig } from './node-ca-config.js';
import {
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  PemConverter,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from './x509.js';

type CreateParams = Extract<Parameters<typeof X509CertificateGenerator.create>[0], { signingKey: unknown }>;
type SelfSignedParams = Parameters<typeof X509CertificateGenerator.createSelfSigned>[0];
/** node's WebCrypto, typed as the library's provider (the project has no DOM lib). */
export type X509Crypto = NonNullable<Parameters<typeof X509CertificateGenerator.create>[1]>;
export const X509_CRYPTO = webcrypto as unknown as X509Crypto;
export type SigningAlgorithm = NonNullable<CreateParams['signingAlgorithm']>;
type X509SigningKey = CreateParams['signingKey'];

export interface NodeCa {
  readonly certificate: X509Certificate;
  readonly signingKey: X509SigningKey;
  readonly signingAlgorithm: SigningAlgorithm;
  /** The node CA certificate, then the configured chain (PEM): `GET /kbs/v0/node-ca` and the certificate answer's `chain`. */
  readonly bundlePem: string;
  readonly source: 'configured' | 'generated';
}

export interface NodeCaProvider {
  /** Lifetime of node certificates (`[node_ca] ttl`). */
  readonly ttlMs: number;
  /** The CA; a generated one is loaded (or created) on first use and then kept. Throws 503 while the state is down. */
  get(): Promise<NodeCa>;
}

/** Validity of a generated node CA. */
const GENERATED_CA_YEARS = 10;

export async function openNodeCaProvider(options: {
  readonly config: NodeCaConfig;
  readonly state: NodeCaState;
  /** The token signing key: derives the key that wraps a generated CA's private key. */
  readonly signingKey: KeyObject;
  readonly trustDomain: string;
  readonly now?: () => number;
}): Promise<NodeCaProvider> {
  const { config } = options;
  if (config.files !== undefined) {
    const ca = await loadConfiguredCa(config.files, options.now?.() ?? Date.now());
    return { ttlMs: config.ttlMs, get: async () => ca };
  }
  const wrapKey = nodeCaWrapKey(options.signingKey);
  let loading: Promise<NodeCa> | undefined;
  return {
    ttlMs: config.ttlMs,
    get() {
      loading ??= loadOrCreateGenerated(options.state, wrapKey, options.trustDomain, options.now?.() ?? Date.now()).catch((err: unknown) => {
        loading = undefined;
        throw err;
      });
      return loading;
    },
  };
}

async function loadOrCreateGenerated(state: NodeCaState, wrapKey: Buffer, trustDomain: string, nowMs: number): Promise<NodeCa> {
  let stored = await state.get();
  if (stored === undefined) {
    const made = await generateCa(trustDomain, nowMs);
    stored = await state.createIfAbsent({ certificatePem: made.certificate.toString('pem'), wrappedKey: wrapNodeCaKey(wrapKey, made.pkcs8, new Uint8Array(made.certificate.rawData)), createdAt: new Date(nowMs).toISOString() });
    made.pkcs8.fill(0);
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(stored.certificatePem);
  } catch (cause) {
    throw new KbsError('INTERNAL', 'the stored node CA certificate does not parse', { cause });
  }
  const pkcs8 = unwrapNodeCaKey(wrapKey, stored.wrappedKey, new Uint8Array(certificate.rawData));
  // SECURITY: a wrapped key that does not open under this KBS's token signing key (another key, or
  // a record swapped in the state) is never used, and never replaced silently (fail closed).
  if (pkcs8 === undefined) throw new KbsError('INTERNAL', 'the stored node CA key cannot be unwrapped: the token signing key differs from the one it was created with');
  try {
    const signingKey = (await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])) as unknown as X509SigningKey;
    checkKeyMatches(createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }), certificate, 'the stored node CA');
    return { certificate, signingKey, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as SigningAlgorithm, bundlePem: `${certificate.toString('pem')}\n`, source: 'generated' };
  } finally {
    pkcs8.fill(0);
  }
}

async function generateCa(trustDomain: string, nowMs: number): Promise<{ certificate: X509Certificate; pkcs8: Buffer }> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const x509Keys = keys as unknown as SelfSignedParams['keys'];
  const notBefore = new Date(nowMs - 5 * 60_000);
  const notAfter = new Date(nowMs);
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + GENERATED_CA_YEARS);
  const certificate = await X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=Keyhold node CA ${randomBytes(4).toString('hex')}, O=${trustDomain}`,
    notBefore,
    notAfter,
    keys: x509Keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as SigningAlgorithm,
    extensions: [
      new BasicConstraintsExtension(true, 0, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      await SubjectKeyIdentifierExtension.create(x509Keys.publicKey, false, X509_CRYPTO),
    ],
  }, X509_CRYPTO);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { certificate, pkcs8 };
}

/** A positive 128-bit serial in hex (first bit cleared, first byte non-zero). */
export function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
}

async function loadConfiguredCa(files: NonNullable<NodeCaConfig['files']>, nowMs: number): Promise<NodeCa> {
  const fail = (why: string, cause?: unknown): Error => new Error(`[node_ca] ${why}`, cause !== undefined ? { cause } : undefined);
  const read = async (p: string, what: string): Promise<string> => {
    try {
      return await readFile(p, 'utf8');
    } catch (cause) {
      throw fail(`cannot read ${what} ${p}`, cause);
    }
  };
  const certPem = await read(files.certificate, 'certificate');
  const keyPem = await read(files.privateKey, 'private_key');
  const chainPem = files.chain === undefined ? '' : await read(files.chain, 'chain');
  let certificate: X509Certificate;
  let chain: X509Certificate[];
  try {
    const blocks = PemConverter.decode(certPem);
    if (blocks.length !== 1) throw new Error('expected exactly one certificate');
    certificate = new X509Certificate(blocks[0]!);
    chain = chainPem === '' ? [] : PemConverter.decode(chainPem).map((b) => new X509Certificate(b));
  } catch (cause) {
    throw fail('certificate and chain must be PEM certificates (certificate: exactly one)', cause);
  }
  const bc = certificate.getExtension(BasicConstraintsExtension);
  // SECURITY: only a CA certificate may sign node certificates; a leaf configured by mistake would
  // issue certificates no verifier accepts, or worse, a key meant for something else.
  if (bc === null || !bc.ca) throw fail('certificate is not a CA certificate (basicConstraints CA:TRUE)');
  const ku = certificate.getExtension(KeyUsagesExtension);
  if (ku !== null && (ku.usages & KeyUsageFlags.keyCertSign) === 0) throw fail('certificate may not sign certificates (keyUsage lacks keyCertSign)');
  if (certificate.notAfter.getTime() <= nowMs) throw fail('certificate has expired');
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (cause) {
    throw fail('private_key is not a PEM private key', cause);
  }
  checkKeyMatches(key, certificate, '[node_ca]');
  const pkcs8 = key.export({ format: 'der', type: 'pkcs8' });
  try {
    let algorithm: SigningAlgorithm;
    let importAlg: { name: string; namedCurve?: string; hash?: string };
    if (key.asymmetricKeyType === 'ec') {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
      if (named === undefined) throw fail('private_key must be EC P-256 or P-384, or RSA 2048..4096');
      importAlg = { name: 'ECDSA', namedCurve: named };
      algorithm = { name: 'ECDSA', hash: named === 'P-256' ? 'SHA-256' : 'SHA-384' } as SigningAlgorithm;
    } else if (key.asymmetricKeyType === 'rsa') {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < 2048 || bits > 4096) throw fail('private_key must be EC P-256 or P-384, or RSA 2048..4096');
      importAlg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
      algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as SigningAlgorithm;
    } else {
      throw fail('private_key must be EC P-256 or P-384, or RSA 2048..4096');
    }
    const signingKey = (await webcrypto.subtle.importKey('pkcs8', pkcs8, importAlg as webcrypto.EcKeyImportParams, false, ['sign'])) as unknown as X509SigningKey;
    const bundlePem = [certificate, ...chain].map((c) => `${c.toString('pem')}\n`).join('');
    return { certificate, signingKey, signingAlgorithm: algorithm, bundlePem, source: 'configured' };
  } finally {
    pkcs8.fill(0);
  }
}

function checkKeyMatches(key: KeyObject, certificate: X509Certificate, what: string): void {
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  // SECURITY: the key must be the certificate's: a mismatched pair would sign certificates that
  // chain to nothing (or to a CA whose key is somewhere else).
  if (!Buffer.from(certificate.publicKey.rawData).equals(spki)) throw new Error(`${what}: private_key does not belong to certificate`);
}
