/**
 * Keys under the storage root key (SRK): create one from a template, and certify / decrypt /
 * agree with one. The SRK (TCG ECC P-256 template) is derived for each operation and flushed as
 * soon as the child is loaded; the child is flushed when the operation ends, so nothing stays in
 * the TPM between calls (a TPM without a resource manager has three object slots). Decryptions
 * and key agreements run with a session salted with the SRK that encrypts the TPM's answer, so
 * the unwrapped key never crosses the TPM interface in clear.
 * Callers hold the EsysContext exclusively.
 */
import { TpmError } from '../../errors.js';
import type { PcrPolicy, SrkChildBlob, TpmCertification } from '../device.js';
import { decodePublicArea } from '../public-area.js';
import { srkTemplate } from '../templates.js';
import { ESYS_TR, isTpmRc, type EsysContext } from './esys-context.js';
import { TpmReader, TpmWriter } from './tpm-bytes.js';
import { hashAlgOfName, pcrSelectionBytes, TPM_ALG } from './tpm-alg.js';

const EMPTY_SENSITIVE = Uint8Array.of(0x00, 0x04, 0x00, 0x00, 0x00, 0x00);
const EMPTY_TPM2B = Uint8Array.of(0x00, 0x00);
const EMPTY_PCR_SELECTION = Uint8Array.of(0, 0, 0, 0);
/** TPMT_SIG_SCHEME TPM_ALG_NULL: sign with the key's own scheme. */
const SIG_SCHEME_NULL = Uint8Array.of(0x00, 0x10);
/** TPMT_RSA_DECRYPT: OAEP with SHA-256 (what RSA-OAEP-256 JWEs use). */
const RSA_DECRYPT_OAEP_SHA256 = new TpmWriter().u16(TPM_ALG.OAEP).u16(TPM_ALG.SHA256).finish();
/** TPM_RC_POLICY_FAIL (format one, session number masked off): the policy digest does not match authPolicy. */
const TPM_RC_POLICY_FAIL = 0x09d;
/** Largest RSA ciphertext / ECC coordinate accepted (RSA 4096; P-521). */
export const MAX_RSA_BYTES = 512;
export const MAX_ECC_COORDINATE_BYTES = 66;

/** Derive the SRK in the owner hierarchy; the caller flushes it. */
async function createSrk(esys: EsysContext): Promise<number> {
  const obj = [0];
  const pub: unknown[] = [null];
  await esys.call('Esys_CreatePrimary', [
    ESYS_TR.RH_OWNER,
    ESYS_TR.PASSWORD,
    ESYS_TR.NONE,
    ESYS_TR.NONE,
    esys.in('TPM2B_SENSITIVE_CREATE', EMPTY_SENSITIVE),
    esys.in('TPM2B_PUBLIC', srkTemplate()),
    esys.in('TPM2B_DATA', EMPTY_TPM2B),
    esys.in('TPML_PCR_SELECTION', EMPTY_PCR_SELECTION),
    obj,
    pub,
    null,
    null,
    null,
  ]);
  esys.free(pub[0]);
  return obj[0]!;
}

/** Esys_Create under the SRK: the child's blobs (nothing is loaded afterwards). */
export async function createSrkChild(esys: EsysContext, template: Uint8Array): Promise<SrkChildBlob> {
  const inPublic = esys.in('TPM2B_PUBLIC', template);
  const srk = await createSrk(esys);
  try {
    const priv: unknown[] = [null];
    const pub: unknown[] = [null];
    await esys.call('Esys_Create', [
      srk,
      ESYS_TR.PASSWORD,
      ESYS_TR.NONE,
      ESYS_TR.NONE,
      esys.in('TPM2B_SENSITIVE_CREATE', EMPTY_SENSITIVE),
      inPublic,
      esys.in('TPM2B_DATA', EMPTY_TPM2B),
      esys.in('TPML_PCR_SELECTION', EMPTY_PCR_SELECTION),
      priv,
      pub,
      null,
      null,
      null,
    ]);
    let privateBlob: Uint8Array;
    try {
      privateBlob = esys.out('TPM2B_PRIVATE', priv[0]);
    } catch (err) {
      esys.free(pub[0]);
      throw err;
    }
    const publicArea = esys.out('TPM2B_PUBLIC', pub[0]);
    decodePublicArea(publicArea);
    return { privateBlob, publicArea };
  } finally {
    await esys.flush(srk).catch(() => undefined);
  }
}

/**
 * How a key operation is authorised: `certify` runs the ADMIN role by the empty auth value; `use`
 * runs the USER role by the empty auth value plus a salted session that encrypts the response, or —
 * for a sealed key — by one salted policy session (PolicyPCR) that also encrypts the response.
 */
type ChildAuth = { readonly kind: 'certify' } | { readonly kind: 'use'; readonly policy: PcrPolicy | undefined };

/** Session handles for the command's three authorisation slots. */
type Sessions = readonly [number, number, number];

/**
 * Load a child under a fresh SRK; while the SRK is loaded, start the session `auth` needs, salted
 * with it; flush the SRK; run `fn` with the child's handle and the sessions; flush them all.
 */
async function withLoadedChild<T>(esys: EsysContext, key: SrkChildBlob, auth: ChildAuth, fn: (obj: number, sessions: Sessions) => Promise<T>): Promise<T> {
  // Hostile blobs (e.g. a tampered cache file) are refused by the unmarshalling and by the TPM's
  // integrity check of the private part against the public one (TPM 2.0 Part 1 §23.4).
  const inPrivate = esys.in('TPM2B_PRIVATE', key.privateBlob);
  const inPublic = esys.in('TPM2B_PUBLIC', key.publicArea);
  let session: number | undefined;
  const obj = [0];
  const srk = await createSrk(esys);
  try {
    if (auth.kind === 'use') {
      // The session's hash must be the key's nameAlg for a policy digest to match the authPolicy.
      const hashAlg = hashAlgOfName(decodePublicArea(key.publicArea).nameAlg);
      if (hashAlg === undefined) throw new TpmError('TPM_UNSUPPORTED', 'the key nameAlg cannot run a session');
      session = await esys.encryptingSession(srk, auth.policy === undefined ? 'hmac' : 'policy', hashAlg);
      if (auth.policy !== undefined) await esys.policyPcr(session, pcrSelectionBytes(auth.policy.bank, auth.policy.indices));
    }
    await esys.call('Esys_Load', [srk, ESYS_TR.PASSWORD, ESYS_TR.NONE, ESYS_TR.NONE, inPrivate, inPublic, obj]);
  } catch (err) {
    if (session !== undefined) await esys.flush(session).catch(() => undefined);
    throw err;
  } finally {
    await esys.flush(srk).catch(() => undefined);
  }
  const sessions: Sessions =
    auth.kind === 'certify' ? [ESYS_TR.PASSWORD, ESYS_TR.PASSWORD, ESYS_TR.NONE] : auth.policy === undefined ? [ESYS_TR.PASSWORD, session!, ESYS_TR.NONE] : [session!, ESYS_TR.NONE, ESYS_TR.NONE];
  try {
    return await fn(obj[0]!, sessions);
  } catch (err) {
    // SECURITY: a sealed key refuses to work once its PCRs changed; say so rather than a raw RC (TPM 2.0 Part 3 §23.7).
    if (err instanceof TpmError && err.rc !== undefined && isTpmRc(err.rc, TPM_RC_POLICY_FAIL)) {
      throw new TpmError('TPM_POLICY_FAILED', 'the key is sealed to PCR values that no longer hold', { rc: err.rc, cause: err });
    }
    throw err;
  } finally {
    if (session !== undefined) await esys.flush(session).catch(() => undefined);
    await esys.flush(obj[0]!).catch(() => undefined);
  }
}

/** TPM2_Certify of the child with the loaded AK `akTr`. */
export function certifySrkChild(esys: EsysContext, key: SrkChildBlob, akTr: number, qualifyingData: Uint8Array): Promise<TpmCertification> {
  return withLoadedChild(esys, key, { kind: 'certify' }, async (obj, sessions) => {
    const info: unknown[] = [null];
    const sig: unknown[] = [null];
    // The object's ADMIN role (certification) by its empty auth value (adminWithPolicy is clear); the AK by its own.
    await esys.call('Esys_Certify', [
      obj,
      akTr,
      ...sessions,
      esys.in('TPM2B_DATA', new TpmWriter().tpm2b(qualifyingData).finish()),
      esys.in('TPMT_SIG_SCHEME', SIG_SCHEME_NULL),
      info,
      sig,
    ]);
    let attest: Uint8Array;
    try {
      attest = esys.out('TPM2B_ATTEST', info[0]);
    } catch (err) {
      esys.free(sig[0]);
      throw err;
    }
    const certifyInfo = new Uint8Array(new TpmReader(attest, 'TPM2B_ATTEST').tpm2b(4096));
    return { certifyInfo, signature: esys.out('TPMT_SIGNATURE', sig[0]) };
  });
}

/** TPM2_RSA_Decrypt, OAEP with SHA-256 and an empty label. */
export function rsaDecryptSrkChild(esys: EsysContext, key: SrkChildBlob, ciphertext: Uint8Array, policy: PcrPolicy | undefined): Promise<Uint8Array> {
  const cipherText = esys.in('TPM2B_PUBLIC_KEY_RSA', new TpmWriter().tpm2b(ciphertext).finish());
  return withLoadedChild(esys, key, { kind: 'use', policy }, async (obj, sessions) => {
    const out: unknown[] = [null];
    await esys.call('Esys_RSA_Decrypt', [obj, ...sessions, cipherText, esys.in('TPMT_RSA_DECRYPT', RSA_DECRYPT_OAEP_SHA256), esys.in('TPM2B_DATA', EMPTY_TPM2B), out]);
    const wire = esys.outSecret('TPM2B_PUBLIC_KEY_RSA', out[0]);
    try {
      return Uint8Array.from(new TpmReader(wire, 'TPM2B_PUBLIC_KEY_RSA').tpm2b(MAX_RSA_BYTES));
    } finally {
      wire.fill(0);
    }
  });
}

/** TPM2_ECDH_ZGen: the x coordinate of d·P. */
export function ecdhZGenSrkChild(esys: EsysContext, key: SrkChildBlob, point: { readonly x: Uint8Array; readonly y: Uint8Array }, policy: PcrPolicy | undefined): Promise<Uint8Array> {
  const inner = new TpmWriter().tpm2b(point.x).tpm2b(point.y).finish();
  // Points off the curve or of the wrong size are refused by the TPM (TPM_RC_ECC_POINT).
  const inPoint = esys.in('TPM2B_ECC_POINT', new TpmWriter().tpm2b(inner).finish());
  return withLoadedChild(esys, key, { kind: 'use', policy }, async (obj, sessions) => {
    const out: unknown[] = [null];
    await esys.call('Esys_ECDH_ZGen', [obj, ...sessions, inPoint, out]);
    const wire = esys.outSecret('TPM2B_ECC_POINT', out[0]);
    try {
      const r = new TpmReader(new TpmReader(wire, 'TPM2B_ECC_POINT').tpm2b(2 * (2 + MAX_ECC_COORDINATE_BYTES)), 'TPMS_ECC_POINT');
      const x = Uint8Array.from(r.tpm2b(MAX_ECC_COORDINATE_BYTES));
      r.tpm2b(MAX_ECC_COORDINATE_BYTES);
      r.end();
      return x;
    } finally {
      wire.fill(0);
    }
  });
}
