/**
 * Decoder for TPM2B_PUBLIC / TPMT_PUBLIC (TPM 2.0 Library Part 2 §12.2) for RSA and ECC keys.
 *
 * This only decodes: it says nothing about whether the key lives in a TPM. The result is
 * unverified until a credential activation or EK certificate ties it to a genuine TPM.
 * Every length is checked against the bytes left before anything is copied; every algorithm
 * identifier must be one the spec allows in that position; the structure must consume its
 * buffer exactly. Hostile input raises IdentityError('TPM_PUBLIC_MALFORMED' | 'TPM_PUBLIC_UNSUPPORTED').
 */
import { IdentityError } from '../identity/errors.js';
import { ByteReader } from '../identity/internal/byte-reader.js';
import { TPM_ALG, curveInfo, hashInfo, type TpmEccCurve, type TpmHashName } from '../identity/internal/tpm-alg.js';

export type { TpmEccCurve, TpmHashName };

/** TPMA_OBJECT (Part 2 §8.3), decoded bit by bit. `raw` keeps the wire value. */
export interface TpmObjectAttributes {
  readonly raw: number;
  readonly fixedTPM: boolean;
  readonly stClear: boolean;
  readonly fixedParent: boolean;
  readonly sensitiveDataOrigin: boolean;
  readonly userWithAuth: boolean;
  readonly adminWithPolicy: boolean;
  /** Library spec 1.83+: object bound to the firmware secret. */
  readonly firmwareLimited: boolean;
  /** Library spec 1.83+: object bound to the firmware SVN secret. */
  readonly svnLimited: boolean;
  readonly noDA: boolean;
  readonly encryptedDuplication: boolean;
  readonly restricted: boolean;
  readonly decrypt: boolean;
  readonly sign: boolean;
  readonly x509sign: boolean;
}

const ATTRIBUTE_BITS = {
  fixedTPM: 1 << 1,
  stClear: 1 << 2,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  firmwareLimited: 1 << 8,
  svnLimited: 1 << 9,
  noDA: 1 << 10,
  encryptedDuplication: 1 << 11,
  restricted: 1 << 16,
  decrypt: 1 << 17,
  sign: 1 << 18,
  x509sign: 1 << 19,
} as const;
const DEFINED_ATTRIBUTE_MASK = Object.values(ATTRIBUTE_BITS).reduce((a, b) => a | b, 0);

export type TpmSymDefObject =
  | { readonly algorithm: 'null' }
  | { readonly algorithm: 'aes' | 'sm4' | 'camellia'; readonly keyBits: number; readonly mode: 'ctr' | 'ofb' | 'cbc' | 'cfb' | 'ecb' | 'null' };

export type TpmRsaSchemeName = 'null' | 'rsassa' | 'rsaes' | 'rsapss' | 'oaep';
export type TpmEccSchemeName = 'null' | 'ecdsa' | 'ecdh' | 'ecdaa' | 'sm2' | 'ecschnorr' | 'ecmqv';
export type TpmKdfSchemeName = 'null' | 'mgf1' | 'kdf1_sp800_56a' | 'kdf2' | 'kdf1_sp800_108';

export interface TpmScheme<N extends string> {
  readonly scheme: N;
  /** Hash of the scheme; absent for 'null' and 'rsaes'. */
  readonly hashAlg?: TpmHashName;
  /** ECDAA commit count. */
  readonly count?: number;
}

interface TpmPublicCommon {
  readonly nameAlg: TpmHashName;
  readonly objectAttributes: TpmObjectAttributes;
  readonly authPolicy: Uint8Array;
  /** The exact TPMT_PUBLIC bytes this was decoded from (what the object's name hashes). */
  readonly tpmtPublic: Uint8Array;
}

export interface TpmRsaPublic extends TpmPublicCommon {
  readonly type: 'rsa';
  readonly parameters: {
    readonly symmetric: TpmSymDefObject;
    readonly scheme: TpmScheme<TpmRsaSchemeName>;
    readonly keyBits: number;
    /** Public exponent; the wire value 0 means the default 65537 and is reported as 65537. */
    readonly exponent: number;
  };
  /** RSA modulus, big-endian, exactly keyBits/8 bytes. */
  readonly unique: Uint8Array;
}

export interface TpmEccPublic extends TpmPublicCommon {
  readonly type: 'ecc';
  readonly parameters: {
    readonly symmetric: TpmSymDefObject;
    readonly scheme: TpmScheme<TpmEccSchemeName>;
    readonly curve: TpmEccCurve;
    readonly kdf: TpmScheme<TpmKdfSchemeName>;
  };
  readonly unique: { readonly x: Uint8Array; readonly y: Uint8Array };
}

export type TpmPublic = TpmRsaPublic | TpmEccPublic;

/** Largest TPMT_PUBLIC Keyhold accepts (RSA-4096 with a 64-byte policy is ~600 bytes). */
const MAX_TPMT_PUBLIC_BYTES = 1024;
const MAX_DIGEST_BYTES = 64;
const RSA_KEY_BITS: ReadonlySet<number> = new Set([1024, 2048, 3072, 4096]);

const malformed = (msg: string): IdentityError => new IdentityError('TPM_PUBLIC_MALFORMED', `TPM public area: ${msg}`);
const unsupported = (msg: string): IdentityError => new IdentityError('TPM_PUBLIC_UNSUPPORTED', `TPM public area: ${msg}`);

/** Decode a TPM2B_PUBLIC (u16 size || TPMT_PUBLIC); the size must cover the rest of `bytes` exactly. */
export function parseTpm2bPublic(bytes: Uint8Array): TpmPublic {
  const r = new ByteReader(bytes, 'TPM_PUBLIC_MALFORMED', 'TPM2B_PUBLIC');
  const inner = r.tpm2b(MAX_TPMT_PUBLIC_BYTES, 'size');
  r.end();
  return parseTpmtPublic(inner);
}

/** Decode a bare TPMT_PUBLIC that must span `bytes` exactly. */
export function parseTpmtPublic(bytes: Uint8Array): TpmPublic {
  // SECURITY: bound the whole structure before decoding so hostile sizes cannot drive work
  // (TPM 2.0 Part 2 §12.2.5: TPM2B_PUBLIC is bounded by sizeof(TPMT_PUBLIC)).
  if (bytes.length > MAX_TPMT_PUBLIC_BYTES) throw malformed(`${bytes.length} bytes exceeds ${MAX_TPMT_PUBLIC_BYTES}`);
  const tpmtPublic = bytes.slice();
  const r = new ByteReader(tpmtPublic, 'TPM_PUBLIC_MALFORMED', 'TPMT_PUBLIC');
  const type = r.u16('type');
  const nameAlgId = r.u16('nameAlg');
  const nameAlg = hashInfo(nameAlgId)?.name;
  // SECURITY: the name (and so credential activation) depends on nameAlg; an unknown or NULL
  // nameAlg would make the object unnameable (TPM 2.0 Part 1 §16: object names).
  if (nameAlg === undefined) throw unsupported(`nameAlg 0x${nameAlgId.toString(16)}`);
  const objectAttributes = decodeAttributes(r.u32('objectAttributes'));
  const authPolicy = r.tpm2b(MAX_DIGEST_BYTES, 'authPolicy');
  const common = { nameAlg, objectAttributes, authPolicy, tpmtPublic };

  let result: TpmPublic;
  if (type === TPM_ALG.RSA) {
    const symmetric = readSymDefObject(r);
    const scheme = readRsaScheme(r);
    const keyBits = r.u16('keyBits');
    const rawExponent = r.u32('exponent');
    // SECURITY: only standard modulus sizes; odd sizes are a sign of a forged area (Part 2 §12.2.3.5).
    if (!RSA_KEY_BITS.has(keyBits)) throw unsupported(`RSA keyBits ${keyBits}`);
    const unique = r.tpm2b(512, 'unique.rsa');
    // SECURITY: the modulus length must match keyBits so a short key cannot claim to be 2048-bit.
    if (unique.length !== keyBits / 8) throw malformed(`RSA modulus is ${unique.length} bytes, keyBits says ${keyBits}`);
    // SECURITY: an even or tiny public exponent is not a valid RSA key (TPM 2.0 Part 2 §12.2.3.5).
    if (rawExponent !== 0 && (rawExponent < 3 || rawExponent % 2 === 0)) throw malformed('invalid RSA exponent');
    result = { type: 'rsa', ...common, parameters: { symmetric, scheme, keyBits, exponent: rawExponent === 0 ? 65537 : rawExponent }, unique };
  } else if (type === TPM_ALG.ECC) {
    const symmetric = readSymDefObject(r);
    const scheme = readEccScheme(r);
    const curveId = r.u16('curveID');
    const curve = curveInfo(curveId);
    if (curve === undefined) throw unsupported(`ECC curve 0x${curveId.toString(16)}`);
    const kdf = readKdfScheme(r);
    // SECURITY: coordinates longer than the curve's field size cannot be a point on it.
    const x = r.tpm2b(curve.size, 'unique.ecc.x');
    const y = r.tpm2b(curve.size, 'unique.ecc.y');
    result = { type: 'ecc', ...common, parameters: { symmetric, scheme, curve: curve.name, kdf }, unique: { x, y } };
  } else {
    throw unsupported(`object type 0x${type.toString(16)} (only RSA and ECC keys)`);
  }
  r.end();
  return result;
}

function decodeAttributes(raw: number): TpmObjectAttributes {
  // SECURITY: reserved TPMA_OBJECT bits are never set on a TPM-created object; a set bit means a
  // forged or corrupted area (TPM 2.0 Part 2 §8.3.2, TPM_RC_RESERVED_BITS).
  if ((raw & ~DEFINED_ATTRIBUTE_MASK) >>> 0 !== 0) throw malformed('reserved objectAttributes bits set');
  const bit = (m: number): boolean => (raw & m) !== 0;
  return {
    raw,
    fixedTPM: bit(ATTRIBUTE_BITS.fixedTPM),
    stClear: bit(ATTRIBUTE_BITS.stClear),
    fixedParent: bit(ATTRIBUTE_BITS.fixedParent),
    sensitiveDataOrigin: bit(ATTRIBUTE_BITS.sensitiveDataOrigin),
    userWithAuth: bit(ATTRIBUTE_BITS.userWithAuth),
    adminWithPolicy: bit(ATTRIBUTE_BITS.adminWithPolicy),
    firmwareLimited: bit(ATTRIBUTE_BITS.firmwareLimited),
    svnLimited: bit(ATTRIBUTE_BITS.svnLimited),
    noDA: bit(ATTRIBUTE_BITS.noDA),
    encryptedDuplication: bit(ATTRIBUTE_BITS.encryptedDuplication),
    restricted: bit(ATTRIBUTE_BITS.restricted),
    decrypt: bit(ATTRIBUTE_BITS.decrypt),
    sign: bit(ATTRIBUTE_BITS.sign),
    x509sign: bit(ATTRIBUTE_BITS.x509sign),
  };
}

const SYM_ALGS: ReadonlyMap<number, 'aes' | 'sm4' | 'camellia'> = new Map([
  [TPM_ALG.AES, 'aes'],
  [TPM_ALG.SM4, 'sm4'],
  [TPM_ALG.CAMELLIA, 'camellia'],
]);
const SYM_MODES: ReadonlyMap<number, 'ctr' | 'ofb' | 'cbc' | 'cfb' | 'ecb' | 'null'> = new Map([
  [TPM_ALG.CTR, 'ctr'],
  [TPM_ALG.OFB, 'ofb'],
  [TPM_ALG.CBC, 'cbc'],
  [TPM_ALG.CFB, 'cfb'],
  [TPM_ALG.ECB, 'ecb'],
  [TPM_ALG.NULL, 'null'],
]);

function readSymDefObject(r: ByteReader): TpmSymDefObject {
  const alg = r.u16('symmetric.algorithm');
  if (alg === TPM_ALG.NULL) return { algorithm: 'null' };
  const algorithm = SYM_ALGS.get(alg);
  // SECURITY: TPMI_ALG_SYM_OBJECT admits only block ciphers or NULL (Part 2 §11.1.6).
  if (algorithm === undefined) throw malformed(`symmetric algorithm 0x${alg.toString(16)}`);
  const keyBits = r.u16('symmetric.keyBits');
  if (keyBits !== 128 && keyBits !== 192 && keyBits !== 256) throw malformed(`symmetric keyBits ${keyBits}`);
  const modeId = r.u16('symmetric.mode');
  const mode = SYM_MODES.get(modeId);
  if (mode === undefined) throw malformed(`symmetric mode 0x${modeId.toString(16)}`);
  return { algorithm, keyBits, mode };
}

function readHash(r: ByteReader, field: string): TpmHashName {
  const id = r.u16(field);
  const h = hashInfo(id);
  // SECURITY: a scheme's hash must be a real hash algorithm (TPMI_ALG_HASH, Part 2 §9.27).
  if (h === undefined) throw malformed(`${field} 0x${id.toString(16)}`);
  return h.name;
}

const RSA_SCHEMES: ReadonlyMap<number, TpmRsaSchemeName> = new Map([
  [TPM_ALG.NULL, 'null'],
  [TPM_ALG.RSASSA, 'rsassa'],
  [TPM_ALG.RSAES, 'rsaes'],
  [TPM_ALG.RSAPSS, 'rsapss'],
  [TPM_ALG.OAEP, 'oaep'],
]);

function readRsaScheme(r: ByteReader): TpmScheme<TpmRsaSchemeName> {
  const id = r.u16('scheme');
  const scheme = RSA_SCHEMES.get(id);
  // SECURITY: only TPMI_ALG_RSA_SCHEME values; anything else is not an RSA key area (Part 2 §11.2.4.2).
  if (scheme === undefined) throw malformed(`RSA scheme 0x${id.toString(16)}`);
  if (scheme === 'null' || scheme === 'rsaes') return { scheme };
  return { scheme, hashAlg: readHash(r, 'scheme.hashAlg') };
}

const ECC_SCHEMES: ReadonlyMap<number, TpmEccSchemeName> = new Map([
  [TPM_ALG.NULL, 'null'],
  [TPM_ALG.ECDSA, 'ecdsa'],
  [TPM_ALG.ECDH, 'ecdh'],
  [TPM_ALG.ECDAA, 'ecdaa'],
  [TPM_ALG.SM2, 'sm2'],
  [TPM_ALG.ECSCHNORR, 'ecschnorr'],
  [TPM_ALG.ECMQV, 'ecmqv'],
]);

function readEccScheme(r: ByteReader): TpmScheme<TpmEccSchemeName> {
  const id = r.u16('scheme');
  const scheme = ECC_SCHEMES.get(id);
  // SECURITY: only TPMI_ALG_ECC_SCHEME values (Part 2 §11.2.5.4).
  if (scheme === undefined) throw malformed(`ECC scheme 0x${id.toString(16)}`);
  if (scheme === 'null') return { scheme };
  const hashAlg = readHash(r, 'scheme.hashAlg');
  if (scheme === 'ecdaa') return { scheme, hashAlg, count: r.u16('scheme.count') };
  return { scheme, hashAlg };
}

const KDF_SCHEMES: ReadonlyMap<number, TpmKdfSchemeName> = new Map([
  [TPM_ALG.NULL, 'null'],
  [TPM_ALG.MGF1, 'mgf1'],
  [TPM_ALG.KDF1_SP800_56A, 'kdf1_sp800_56a'],
  [TPM_ALG.KDF2, 'kdf2'],
  [TPM_ALG.KDF1_SP800_108, 'kdf1_sp800_108'],
]);

function readKdfScheme(r: ByteReader): TpmScheme<TpmKdfSchemeName> {
  const id = r.u16('kdf');
  const scheme = KDF_SCHEMES.get(id);
  // SECURITY: only TPMI_ALG_KDF values (Part 2 §11.2.3).
  if (scheme === undefined) throw malformed(`KDF scheme 0x${id.toString(16)}`);
  if (scheme === 'null') return { scheme };
  return { scheme, hashAlg: readHash(r, 'kdf.hashAlg') };
}
