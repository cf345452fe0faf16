import { z } from 'zod';
import { CvmError } from '../errors.js';

/** The two Azure confidential-VM vTPM evidence types Trustee accepts. */
export type CvmTee = 'az-snp-vtpm' | 'az-tdx-vtpm';
export const CVM_TEES: readonly CvmTee[] = ['az-snp-vtpm', 'az-tdx-vtpm'];

const PCR_COUNT = 24;
const MAX_MESSAGE_BYTES = 2048;
const MAX_SIGNATURE_BYTES = 512;
const MAX_HCL_BYTES = 16 * 1024;
const MAX_VCEK_BYTES = 4096;
const MAX_TD_QUOTE_BYTES = 32 * 1024;

const hex = (maxBytes: number) => z.string().max(2 * maxBytes).regex(/^(?:[0-9a-fA-F]{2})*$/);
const b64url = (maxBytes: number) => z.string().max(4 * Math.ceil(maxBytes / 3)).regex(/^[A-Za-z0-9_-]*={0,2}$/);
const byteArray = (maxBytes: number) => z.array(z.number().int().min(0).max(255)).max(maxBytes);

/** v1/v2 `tpm_quote`: hex strings (guest-components `TpmQuote`). */
const tpmQuoteHex = z.looseObject({
  signature: hex(MAX_SIGNATURE_BYTES).min(2),
  message: hex(MAX_MESSAGE_BYTES).min(2),
  pcrs: z.array(hex(32).length(64)).length(PCR_COUNT),
});
/** v0 quote: serde's encoding of az-cvm-vtpm's `Quote` (arrays of numbers). */
const tpmQuoteBytes = z.looseObject({
  signature: byteArray(MAX_SIGNATURE_BYTES).min(1),
  message: byteArray(MAX_MESSAGE_BYTES).min(1),
  pcrs: z.array(byteArray(32).length(32)).length(PCR_COUNT),
});
const version = z.union([z.literal(1), z.literal(2)]);

const SCHEMAS = {
  'az-snp-vtpm': {
    v0: z.looseObject({ quote: tpmQuoteBytes, report: byteArray(MAX_HCL_BYTES), vcek: z.string().max(2 * MAX_VCEK_BYTES) }),
    v1: z.looseObject({ version, tpm_quote: tpmQuoteHex, hcl_report: b64url(MAX_HCL_BYTES), vcek: b64url(MAX_VCEK_BYTES) }),
  },
  'az-tdx-vtpm': {
    v0: z.looseObject({ tpm_quote: tpmQuoteBytes, hcl_report: byteArray(MAX_HCL_BYTES), td_quote: byteArray(MAX_TD_QUOTE_BYTES) }),
    v1: z.looseObject({ version, tpm_quote: tpmQuoteHex, hcl_report: b64url(MAX_HCL_BYTES), td_quote: b64url(MAX_TD_QUOTE_BYTES) }),
  },
} as const;

/** Decoded az-*-vtpm evidence. **Unverified.** */
export interface UnverifiedCvmEvidence {
  readonly tee: CvmTee;
  /** 0 (legacy, no `version`), 1, or 2 (HCL `user-data` carries the report data). */
  readonly version: 0 | 1 | 2;
  readonly tpmQuote: {
    /** TPMS_ATTEST. */
    readonly message: Uint8Array;
    /** The raw RSASSA-PKCS1-v1_5 SHA-256 signature (not a TPMT_SIGNATURE). */
    readonly signature: Uint8Array;
    /** SHA-256 PCR0..PCR23. */
    readonly pcrs: readonly Uint8Array[];
  };
  readonly hclReport: Uint8Array;
  /** SNP: the VCEK, DER. */
  readonly vcekDer?: Uint8Array;
  /** TDX: the TD quote. */
  readonly tdQuote?: Uint8Array;
  /** The evidence object with every member (Keyhold's optional `event_log`, `ima_log`, ...). */
  readonly fields: Readonly<Record<string, unknown>>;
}

function fromB64url(s: string, field: string): Uint8Array {
  const bytes = Buffer.from(s, 'base64url');
  const canonical = bytes.toString('base64').replaceAll('+', '-').replaceAll('/', '_');
  // SECURITY: stops non-canonical base64 (non-zero pad bits, missing padding) giving two encodings
  // of the same bytes; Trustee decodes padded URL-safe base64 (serde_with Base64<UrlSafe>).
  if (canonical !== s) throw new CvmError('CVM_EVIDENCE_MALFORMED', `${field} is not canonical padded URL-safe base64`);
  return new Uint8Array(bytes);
}

const fromHex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

function pemToDer(pem: string): Uint8Array {
  const m = /^\s*-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----\s*$/.exec(pem);
  // SECURITY: exactly one certificate, nothing around it, so the VCEK checked is the one sent.
  if (m === null) throw new CvmError('CVM_EVIDENCE_MALFORMED', 'vcek is not one PEM certificate');
  const body = (m[1] ?? '').replace(/\s+/g, '');
  const der = Buffer.from(body, 'base64');
  if (der.toString('base64') !== body) throw new CvmError('CVM_EVIDENCE_MALFORMED', 'vcek PEM is not canonical base64');
  return new Uint8Array(der);
}

/**
 * Validate the shape of already-JSON-parsed az-snp-vtpm / az-tdx-vtpm primary evidence (Trustee
 * `deps/verifier/src/az_{snp,tdx}_vtpm/compat.rs`: v0 without `version`, v1, v2) and decode its
 * fields. Nothing is verified.
 *
 * @throws CvmError `CVM_EVIDENCE_MALFORMED`.
 */
export function decodeUnverifiedCvmEvidence(tee: CvmTee, evidence: unknown): UnverifiedCvmEvidence {
  const schemas = SCHEMAS[tee];
  if (schemas === undefined) throw new TypeError(`unknown evidence type ${String(tee)}`);
  const versioned = typeof evidence === 'object' && evidence !== null && 'version' in evidence;
  const parsed = (versioned ? schemas.v1 : schemas.v0).safeParse(evidence);
  // SECURITY: validate once at the boundary: Trustee's shapes, with every length bounded before decoding.
  if (!parsed.success) {
    const path = parsed.error.issues[0]?.path.join('.') ?? '';
    throw new CvmError('CVM_EVIDENCE_MALFORMED', `${tee} evidence does not have the expected shape (at "${path}")`, { cause: parsed.error });
  }
  const fields = parsed.data as Record<string, unknown>;
  if (!versioned) {
    const v0 = parsed.data as z.infer<(typeof SCHEMAS)['az-snp-vtpm']['v0']> & z.infer<(typeof SCHEMAS)['az-tdx-vtpm']['v0']>;
    const q = tee === 'az-snp-vtpm' ? v0.quote : v0.tpm_quote;
    return {
      tee,
      version: 0,
      tpmQuote: { message: Uint8Array.from(q.message), signature: Uint8Array.from(q.signature), pcrs: q.pcrs.map((p) => Uint8Array.from(p)) },
      hclReport: Uint8Array.from(tee === 'az-snp-vtpm' ? v0.report : v0.hcl_report),
      ...(tee === 'az-snp-vtpm' ? { vcekDer: pemToDer(v0.vcek) } : { tdQuote: Uint8Array.from(v0.td_quote) }),
      fields,
    };
  }
  const v1 = parsed.data as z.infer<(typeof SCHEMAS)['az-snp-vtpm']['v1']> & z.infer<(typeof SCHEMAS)['az-tdx-vtpm']['v1']>;
  return {
    tee,
    version: v1.version,
    tpmQuote: { message: fromHex(v1.tpm_quote.message), signature: fromHex(v1.tpm_quote.signature), pcrs: v1.tpm_quote.pcrs.map(fromHex) },
    hclReport: fromB64url(v1.hcl_report, 'hcl_report'),
    ...(tee === 'az-snp-vtpm' ? { vcekDer: fromB64url(v1.vcek, 'vcek') } : { tdQuote: fromB64url(v1.td_quote, 'td_quote') }),
    fields,
  };
}
