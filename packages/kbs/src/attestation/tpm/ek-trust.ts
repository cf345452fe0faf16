/**
 * EK trust: does the owner vouch for this TPM? Only the owner's out-of-band acts count — a CA
 * store of TPM vendor (or swtpm local) CAs, and an allowlist of EK hashes written through the admin
 * API or by the owner. Nothing the node sends can add to either (issue 3: "a node can never enrol
 * itself").
 *
 * evaluateEkTrust guarantees, when it returns `trusted: true`:
 *  - via `ca`: the EK certificate chains to the CA store and certifies exactly this EK public key;
 *  - via `allowlist`: the hex SHA-256 of this EK's DER SPKI is in the owner's allowlist;
 *  - the deployment's requirements (`requireEkCertificate`, `requireEkAllowlist`) hold.
 * It does NOT prove the TPM holds the EK private key, nor that the AK lives beside it: credential
 * activation does (identity-extension.ts).
 */
import {
  ekHash,
  IdentityError,
  stripEkCertPadding,
  tpmPublicToSpkiDer,
  verifyEkCertificate,
  type TpmPublic,
  type VerifiedEkCertificate,
  type X509Certificate,
} from '@keyhold/verifier';
import { KbsError } from '../../errors.js';
import type { EkAllowlistState } from '../../state/ports.js';

export type EkTrustVia = 'ca' | 'allowlist' | 'ca+allowlist';

export interface EkTrustPolicy {
  /** The owner's EK CA store (current contents); read only when the TPM presents a certificate. */
  readonly caCertificates: () => Promise<readonly X509Certificate[]>;
  readonly allowlist: Pick<EkAllowlistState, 'has'> | undefined;
  /** The EK must carry a certificate that chains to the CA store. */
  readonly requireEkCertificate: boolean;
  /** The EK must be in the allowlist (with or without a certificate). */
  readonly requireEkAllowlist: boolean;
}

export interface EkCertificateSummary {
  readonly subject: string;
  readonly issuer: string;
  readonly tpmManufacturer?: string;
  readonly tpmModel?: string;
  readonly tpmVersion?: string;
}

export type EkTrustResult =
  | { readonly trusted: true; readonly ekHash: string; readonly via: EkTrustVia; readonly certificate?: EkCertificateSummary }
  | { readonly trusted: false; readonly ekHash: string; readonly code: string; readonly reason: string };

/** Certificate failures that no allowlist entry excuses: the certificate speaks of another key or is garbage. */
const HARD_CERT_FAILURES = new Set(['EK_CERT_KEY_MISMATCH', 'EK_CERT_MALFORMED']);

function summary(c: VerifiedEkCertificate): EkCertificateSummary {
  return {
    subject: c.subject,
    issuer: c.issuer,
    ...(c.tpmManufacturer !== undefined ? { tpmManufacturer: c.tpmManufacturer } : {}),
    ...(c.tpmModel !== undefined ? { tpmModel: c.tpmModel } : {}),
    ...(c.tpmVersion !== undefined ? { tpmVersion: c.tpmVersion } : {}),
  };
}

async function isAllowlisted(allowlist: Pick<EkAllowlistState, 'has'>, hash: string): Promise<boolean> {
  try {
    return await allowlist.has(hash);
  } catch (err) {
    // SECURITY: an unreadable allowlist neither admits nor silently ignores a TPM; the request fails
    // (503) until the owner repairs it (issue 3: "any error reading it fails closed").
    throw new KbsError('STORAGE_UNAVAILABLE', 'EK allowlist is unavailable', { cause: err });
  }
}

export async function evaluateEkTrust(input: { ekPublic: TpmPublic; ekCertDer: Uint8Array | undefined; now: Date }, policy: EkTrustPolicy): Promise<EkTrustResult> {
  const spki = tpmPublicToSpkiDer(input.ekPublic);
  const hash = ekHash(spki);
  const untrusted = (code: string, reason: string): EkTrustResult => ({ trusted: false, ekHash: hash, code, reason });

  let certificate: EkCertificateSummary | undefined;
  let certFailure: { code: string; reason: string } | undefined;
  const caCerts = input.ekCertDer === undefined ? [] : await caCertificatesOf(policy);
  if (input.ekCertDer === undefined) {
    certFailure = { code: 'EK_CERT_MISSING', reason: 'the TPM presented no EK certificate' };
  } else if (caCerts.length === 0) {
    certFailure = { code: 'EK_CERT_UNKNOWN_CA', reason: 'no EK CA store is configured' };
  } else {
    try {
      const verified = await verifyEkCertificate({ ekCertDer: stripEkCertPadding(input.ekCertDer), caCerts, ekPublicSpkiDer: spki, now: input.now });
      certificate = summary(verified);
    } catch (err) {
      if (!(err instanceof IdentityError)) throw err;
      // SECURITY: a certificate for another key (a genuine certificate paired with a software EK, as
      // SPIRE's TPM plugin once accepted) or an undecodable one is refused outright, allowlisted or
      // not: an honest TPM never presents one (TCG EK Credential Profile §2.1).
      if (HARD_CERT_FAILURES.has(err.code)) return untrusted(err.code, err.message);
      certFailure = { code: err.code, reason: err.message };
    }
  }
  const allowlisted = policy.allowlist !== undefined && (await isAllowlisted(policy.allowlist, hash));

  // SECURITY: where the owner demands a manufacturer certificate, an allowlist entry alone is not
  // enough (deployment policy: "both required").
  if (policy.requireEkCertificate && certificate === undefined) return untrusted(certFailure?.code ?? 'EK_CERT_MISSING', certFailure?.reason ?? 'EK certificate required');
  // SECURITY: where the owner demands an allowlist entry, a valid vendor certificate alone is not
  // enough: any TPM from that vendor could otherwise enrol (issue 3, EK allowlist).
  if (policy.requireEkAllowlist && !allowlisted) return untrusted('EK_NOT_ALLOWLISTED', 'the EK is not in the owner\'s allowlist');
  // SECURITY: neither owner act vouches for this EK: a node cannot make itself trusted (issue 3).
  if (certificate === undefined && !allowlisted) {
    return certFailure !== undefined && certFailure.code !== 'EK_CERT_MISSING'
      ? untrusted(certFailure.code, certFailure.reason)
      : untrusted('EK_UNTRUSTED', 'the EK has no certificate from the CA store and is not in the allowlist');
  }
  const via: EkTrustVia = certificate !== undefined ? (allowlisted ? 'ca+allowlist' : 'ca') : 'allowlist';
  return { trusted: true, ekHash: hash, via, ...(certificate !== undefined ? { certificate } : {}) };
}

async function caCertificatesOf(policy: EkTrustPolicy): Promise<readonly X509Certificate[]> {
  try {
    return await policy.caCertificates();
  } catch (err) {
    // SECURITY: an unreadable CA store neither admits nor silently ignores a TPM (fail closed, 503).
    throw new KbsError('STORAGE_UNAVAILABLE', 'EK CA store is unavailable', { cause: err });
  }
}

/**
 * What the owner can do about an untrusted EK at first contact, for the refusal's detail: the ways to
 * trust a node that this KBS's configuration leaves open — list its AK (`trusted_ak`), trust the CA
 * that issued its EK certificate (`keyhold ca add`), allow this one EK (`keyhold node allow`).
 * Names the EK hash (a public identifier of the node's own TPM), never key material.
 */
export function ekTrustHint(code: string, ekHashHex: string, opts: { trustedAkList: boolean; requireEkCertificate: boolean; requireEkAllowlist: boolean }): string {
  const ways: string[] = [];
  if (opts.trustedAkList) ways.push('list its AK: keyhold config set-reference-value --name trusted_ak --value "$(keyhold-agent ak)" (run on the node)');
  if (!opts.requireEkAllowlist || opts.requireEkCertificate) ways.push("trust its TPM's maker: keyhold ca add CA.pem (the CA that issued its EK certificate)");
  if (!opts.requireEkCertificate) ways.push(`trust this TPM: keyhold node allow ${ekHashHex}`);
  const both = opts.requireEkCertificate && opts.requireEkAllowlist ? ' (this KBS requires both the CA and the allowlist)' : '';
  return `${code === 'EK_NOT_ALLOWLISTED' ? 'to admit this node' : 'to trust this node'}, an owner can ${ways.length > 1 ? 'either ' : ''}${ways.join('; or ')}${both}`;
}
