import { createHash, createPublicKey, timingSafeEqual, verify as cryptoVerify, type KeyObject, type X509Certificate } from 'node:crypto';
import { CvmError } from '../errors.js';
import { certificateExtensions } from '../internal/der-value.js';
import { decodePckPlatform, SGX_EXTENSIONS_OID, type PckPlatform } from './pck-extensions.js';
import type { UnverifiedTdQuote } from './quote.js';
import type { TdxTrustAnchors } from './trust-anchors.js';
import { verifyIntelChain } from './verify-chain.js';

/**
 * Intel's TD Quoting Enclave identity (Intel PCS `tdx/certification/v4/qe/identity`, stable across
 * QE versions): signer, product id and the attribute/misc-select values under their masks.
 */
export const TD_QE_IDENTITY = Object.freeze({
  mrSigner: 'dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5',
  isvProdId: 2,
  attributes: '11000000000000000000000000000000',
  attributesMask: 'fbffffffffffffff0000000000000000',
  miscSelect: 0x00000000,
  miscSelectMask: 0xffffffff,
});

/** What `verifyTdQuote` established. */
export interface VerifiedTdQuoteChain {
  readonly pckLeaf: X509Certificate;
  readonly pckIssuer: X509Certificate;
  readonly platform: PckPlatform;
}

function p256(x: Uint8Array, y: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: Buffer.from(x).toString('base64url'), y: Buffer.from(y).toString('base64url') }, format: 'jwk' });
}

function ecdsaOk(data: Uint8Array, key: KeyObject, sig: Uint8Array): boolean {
  try {
    return cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  } catch {
    return false;
  }
}

function masked(value: Uint8Array, maskHex: string): string {
  const mask = Buffer.from(maskHex, 'hex');
  return Buffer.from(value.map((b, i) => b & (mask[i] ?? 0))).toString('hex');
}

/**
 * Verify a TD quote's signature chain as far as is possible offline. Guarantees: the PCK chain
 * carried in the quote reaches a configured Intel root and is valid at `now`; the QE report is
 * signed by the PCK key; it is a report of Intel's TD QE (signer, product id, attributes);
 * its report_data is SHA-256(attestation key ‖ QE authentication data) ‖ 32 zero bytes; the
 * quote's header and TD body are signed by that attestation key.
 * Not checked here: TCB status (needs Intel's collateral, see `evaluateTdxTcb`), QE TCB levels,
 * PCK CRLs, what the TD measured (policy decides from the claims).
 *
 * @throws CvmError `TDX_PCK_UNTRUSTED`, `TDX_CERT_EXPIRED`, `TDX_QE_REPORT_SIGNATURE_INVALID`,
 *   `TDX_QE_BINDING_INVALID`, `TDX_QUOTE_SIGNATURE_INVALID`, `TDX_NO_TRUST_ANCHORS`.
 */
export function verifyTdQuote(quote: UnverifiedTdQuote, anchors: TdxTrustAnchors, now: Date): VerifiedTdQuoteChain {
  const path = verifyIntelChain(quote.pckChainPem, anchors, now, 'TDX_PCK_UNTRUSTED', 'PCK certificate chain');
  const pckLeaf = path[0] as X509Certificate;
  const pckIssuer = (path[1] ?? pckLeaf) as X509Certificate;
  const details = pckLeaf.publicKey.asymmetricKeyDetails;
  // SECURITY: PCK keys are P-256; another key type cannot have signed the QE report as DCAP defines.
  if (pckLeaf.publicKey.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'prime256v1') throw new CvmError('TDX_PCK_UNTRUSTED', 'PCK key is not EC P-256');
  const ext = certificateExtensions(new Uint8Array(pckLeaf.raw))?.get(SGX_EXTENSIONS_OID);
  // SECURITY: a certificate under Intel's root without the SGX extension is not a PCK certificate
  // (it could be Intel's TCB signing certificate, whose key must not certify QEs).
  if (ext === undefined) throw new CvmError('TDX_PCK_UNTRUSTED', 'PCK certificate has no (well-formed) SGX extension');
  const platform = decodePckPlatform(ext);

  // SECURITY: only the platform's PCK key (held by Intel's PCE) signs QE reports; this is what makes
  // the QE's attestation key an Intel-certified key (DCAP ECDSA quote verification, step "QE report signature").
  if (!ecdsaOk(quote.qeReport.bytes, pckLeaf.publicKey, quote.qeReportSignatureP1363)) {
    throw new CvmError('TDX_QE_REPORT_SIGNATURE_INVALID', 'QE report signature does not verify with the PCK key');
  }
  const qe = quote.qeReport;
  // SECURITY: the PCK key signs reports of any enclave allowed to use the provisioning key; only a
  // report of Intel's TD quoting enclave makes its attestation key Intel's (QE identity).
  if (
    Buffer.from(qe.mrSigner).toString('hex') !== TD_QE_IDENTITY.mrSigner ||
    qe.isvProdId !== TD_QE_IDENTITY.isvProdId ||
    masked(qe.attributes, TD_QE_IDENTITY.attributesMask) !== TD_QE_IDENTITY.attributes ||
    (qe.miscSelect & TD_QE_IDENTITY.miscSelectMask) !== TD_QE_IDENTITY.miscSelect
  ) {
    throw new CvmError('TDX_QE_BINDING_INVALID', "QE report is not from Intel's TD quoting enclave");
  }
  const expected = Buffer.alloc(64);
  createHash('sha256').update(quote.attestationKey).update(quote.qeAuthData).digest().copy(expected);
  // SECURITY: binds the attestation key (and auth data) to the PCK-signed QE report; without it any
  // key could sign the TD body (DCAP: QE report data = SHA-256(attestation key ‖ auth data)).
  if (!timingSafeEqual(expected, qe.reportData)) throw new CvmError('TDX_QE_BINDING_INVALID', 'QE report data does not bind the attestation key');
  let ak: KeyObject;
  try {
    ak = p256(quote.attestationKey.subarray(0, 32), quote.attestationKey.subarray(32));
  } catch (cause) {
    // SECURITY: a point not on P-256 cannot be a QE attestation key.
    throw new CvmError('TDX_QUOTE_SIGNATURE_INVALID', 'attestation key is not a P-256 point', { cause });
  }
  // SECURITY: the attestation key signs header ‖ TD body; any changed byte (measurements,
  // report_data) is refused (DCAP quote signature).
  if (!ecdsaOk(quote.signedBytes, ak, quote.signatureP1363)) throw new CvmError('TDX_QUOTE_SIGNATURE_INVALID', 'TD quote signature does not verify with the attestation key');
  return { pckLeaf, pckIssuer, platform };
}
