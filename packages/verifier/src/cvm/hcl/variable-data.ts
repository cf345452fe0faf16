import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { CvmError } from '../errors.js';

/** The key id Azure gives the vTPM's attestation key in the variable data. */
export const HCL_AK_KEY_ID = 'HCLAkPub';
/** `user-data` is the 64 bytes the guest wrote to NV index 0x01400002 before the report was made. */
export const HCL_USER_DATA_BYTES = 64;

const b64url = z.string().min(1).max(1400).regex(/^[A-Za-z0-9_-]+$/);
const jwkSchema = z.looseObject({ kid: z.string().max(64).optional(), kty: z.string().max(16) });
const rsaJwkSchema = z.looseObject({ kty: z.literal('RSA'), n: b64url, e: b64url.max(16) });
const varDataSchema = z.looseObject({
  keys: z.array(jwkSchema).min(1).max(16),
  'vm-configuration': z.record(z.string(), z.unknown()).optional(),
  'user-data': z.string().optional(),
});

/** What the variable data says. **Unverified** until its hash matched a verified hardware report. */
export interface UnverifiedHclVariableData {
  /** The vTPM AK (`HCLAkPub`) as DER SubjectPublicKeyInfo. */
  readonly akSpkiDer: Uint8Array;
  /** `user-data` (64 bytes) when present. */
  readonly userData: Uint8Array | undefined;
  /** Azure's `vm-configuration` object (secure-boot, tpm-enabled, vmUniqueId, ...), when present. */
  readonly vmConfiguration: Readonly<Record<string, unknown>> | undefined;
}

/**
 * Parse the HCL variable data (UTF-8 JSON) and take the AK from the `HCLAkPub` JWK.
 *
 * @throws CvmError `HCL_VAR_DATA_INVALID`.
 */
export function decodeUnverifiedHclVariableData(variableData: Uint8Array): UnverifiedHclVariableData {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(variableData));
  } catch (cause) {
    // SECURITY: stops non-JSON variable data from being half-read (Azure writes UTF-8 JSON).
    throw new CvmError('HCL_VAR_DATA_INVALID', 'HCL variable data is not UTF-8 JSON', { cause });
  }
  const parsed = varDataSchema.safeParse(json);
  // SECURITY: validate once at the boundary: the shape Azure writes, with bounded arrays and strings.
  if (!parsed.success) throw new CvmError('HCL_VAR_DATA_INVALID', 'HCL variable data does not have the expected shape', { cause: parsed.error });
  const aks = parsed.data.keys.filter((k) => k.kid === HCL_AK_KEY_ID);
  // SECURITY: exactly one attestation key: with two, another parser (azure-cvm-tooling takes the
  // first) could pick a different key than this one (parser differential).
  if (aks.length !== 1) throw new CvmError('HCL_VAR_DATA_INVALID', `HCL variable data has ${aks.length} "${HCL_AK_KEY_ID}" keys, expected 1`);
  const ak = rsaJwkSchema.safeParse(aks[0]);
  // SECURITY: the Azure vTPM AK is RSA and the evidence carries a raw RSASSA signature; any other
  // key type cannot have produced it (algorithm confusion).
  if (!ak.success) throw new CvmError('HCL_VAR_DATA_INVALID', `"${HCL_AK_KEY_ID}" is not an RSA JWK`, { cause: ak.error });
  let akSpkiDer: Uint8Array;
  try {
    const key = createPublicKey({ key: { kty: 'RSA', n: ak.data.n, e: ak.data.e }, format: 'jwk' });
    akSpkiDer = new Uint8Array(key.export({ type: 'spki', format: 'der' }));
  } catch (cause) {
    // SECURITY: stops an unusable key (bad modulus/exponent encoding) from reaching signature checks.
    throw new CvmError('HCL_VAR_DATA_INVALID', `"${HCL_AK_KEY_ID}" is not a usable RSA public key`, { cause });
  }
  let userData: Uint8Array | undefined;
  const ud = parsed.data['user-data'];
  if (ud !== undefined) {
    // SECURITY: user-data is compared with the expected report data; a malformed value must not be
    // silently shortened by a lenient hex decoder.
    if (!/^[0-9a-fA-F]*$/.test(ud) || ud.length !== 2 * HCL_USER_DATA_BYTES) {
      throw new CvmError('HCL_VAR_DATA_INVALID', `HCL "user-data" is not ${HCL_USER_DATA_BYTES} bytes of hex`);
    }
    userData = new Uint8Array(Buffer.from(ud, 'hex'));
  }
  return { akSpkiDer, userData, vmConfiguration: parsed.data['vm-configuration'] };
}
