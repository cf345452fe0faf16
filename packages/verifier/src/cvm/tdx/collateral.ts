import { verify as cryptoVerify, type X509Certificate } from 'node:crypto';
import { z } from 'zod';
import { CvmError } from '../errors.js';
import type { PckPlatform } from './pck-extensions.js';
import type { SgxReportBody } from './quote.js';
import type { TdxTrustAnchors } from './trust-anchors.js';
import { verifyIntelChain } from './verify-chain.js';

/** Intel's TCB statuses, best first; `unknown` when no collateral applies. */
export const TDX_TCB_STATUSES = [
  'UpToDate',
  'SWHardeningNeeded',
  'ConfigurationNeeded',
  'ConfigurationAndSWHardeningNeeded',
  'OutOfDate',
  'OutOfDateConfigurationNeeded',
  'NotSupported',
  'Revoked',
] as const;
export type TdxTcbStatus = (typeof TDX_TCB_STATUSES)[number] | 'unknown';

const MAX_TEXT = 512 * 1024;
const hex = (bytes: number) => z.string().regex(new RegExp(`^[0-9a-fA-F]{${2 * bytes}}$`));
const status = z.enum(TDX_TCB_STATUSES);
const svnList = z.array(z.looseObject({ svn: z.number().int().min(0).max(255) })).length(16);
const isoDate = z.string().max(40).refine((s) => !Number.isNaN(Date.parse(s)), 'not a date');

/** Intel PCS TDX TCB info (`tdx/certification/v4/tcb`, the `tcbInfo` object, version 3). */
const tcbInfoSchema = z.looseObject({
  id: z.literal('TDX'),
  version: z.literal(3),
  issueDate: isoDate,
  nextUpdate: isoDate,
  fmspc: hex(6),
  pceId: hex(2),
  tcbEvaluationDataNumber: z.number().int().min(0).optional(),
  tcbLevels: z
    .array(
      z.looseObject({
        tcb: z.looseObject({ sgxtcbcomponents: svnList, pcesvn: z.number().int().min(0).max(0xffff), tdxtcbcomponents: svnList }),
        tcbDate: isoDate.optional(),
        tcbStatus: status,
        advisoryIDs: z.array(z.string().max(64)).max(256).optional(),
      }),
    )
    .min(1)
    .max(256),
});
/** Intel PCS TD QE identity (`tdx/certification/v4/qe/identity`, the `enclaveIdentity` object). */
const qeIdentitySchema = z.looseObject({
  id: z.literal('TD_QE'),
  issueDate: isoDate,
  nextUpdate: isoDate,
  mrsigner: hex(32),
  isvprodid: z.number().int(),
  tcbLevels: z.array(z.looseObject({ tcb: z.looseObject({ isvsvn: z.number().int().min(0).max(0xffff) }), tcbStatus: status })).min(1).max(256),
});
/**
 * One platform's collateral, in the JSON layout dcap-qvl and Phala's tools use for
 * `QuoteCollateralV3`: the signed JSON texts exactly as Intel PCS returned them, their hex ECDSA
 * signatures, and the PEM issuer chains (from the `TCB-Info-Issuer-Chain` / `SGX-Enclave-Identity-Issuer-Chain` headers).
 */
const collateralSchema = z.looseObject({
  tcb_info_issuer_chain: z.string().max(MAX_TEXT),
  tcb_info: z.string().max(MAX_TEXT),
  tcb_info_signature: hex(64),
  qe_identity_issuer_chain: z.string().max(MAX_TEXT).optional(),
  qe_identity: z.string().max(MAX_TEXT).optional(),
  qe_identity_signature: hex(64).optional(),
});

export type TdxCollateral = z.infer<typeof collateralSchema>;

/** The result of a TCB evaluation. */
export interface TdxTcbEvaluation {
  readonly status: TdxTcbStatus;
  /** Platform TCB level's status and date (from TCB info). */
  readonly platformStatus?: TdxTcbStatus;
  readonly tcbDate?: string;
  readonly advisoryIds?: readonly string[];
  /** QE TCB status, when the collateral has a QE identity. */
  readonly qeStatus?: TdxTcbStatus;
  readonly tcbEvaluationDataNumber?: number;
  /** Why the status is `unknown`, when it is. */
  readonly reason?: string;
}

/**
 * Parse the owner's collateral file (already JSON-parsed): one collateral object or an array of
 * them (one per FMSPC). Signatures are checked when a quote is evaluated (they need `now`).
 *
 * @throws CvmError `TDX_COLLATERAL_INVALID`.
 */
export function parseTdxCollateral(json: unknown): readonly TdxCollateral[] {
  const parsed = z.union([collateralSchema, z.array(collateralSchema).min(1).max(64)]).safeParse(json);
  // SECURITY: validate once at the boundary (owner input, but still bounded and typed).
  if (!parsed.success) throw new CvmError('TDX_COLLATERAL_INVALID', 'TDX collateral does not have the expected shape', { cause: parsed.error });
  return Array.isArray(parsed.data) ? parsed.data : [parsed.data];
}

function signedJson<T>(text: string, signatureHex: string, chainPem: string, schema: z.ZodType<T>, anchors: TdxTrustAnchors, now: Date, what: string): T {
  const path = verifyIntelChain(chainPem, anchors, now, 'TDX_COLLATERAL_INVALID', `${what} issuer chain`);
  // SECURITY: Intel's TCB signing certificate is issued by the root itself; a longer path means a
  // platform (PCK) key, which must never be able to sign collateral (PCS certificate profile).
  if (path.length !== 1) throw new CvmError('TDX_COLLATERAL_INVALID', `${what} is not signed by a certificate the Intel root issued directly`);
  const signer = path[0] as X509Certificate;
  let ok = false;
  try {
    ok = cryptoVerify('sha256', Buffer.from(text, 'utf8'), { key: signer.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signatureHex, 'hex'));
  } catch {
    ok = false;
  }
  // SECURITY: only Intel-signed collateral may decide a TCB status (an edited file could mark any platform UpToDate).
  if (!ok) throw new CvmError('TDX_COLLATERAL_INVALID', `${what} signature does not verify`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new CvmError('TDX_COLLATERAL_INVALID', `${what} is not JSON`, { cause });
  }
  const parsed = schema.safeParse(value);
  // SECURITY: signed but of an unknown shape/version: refuse rather than half-read it.
  if (!parsed.success) throw new CvmError('TDX_COLLATERAL_INVALID', `${what} does not have the expected shape`, { cause: parsed.error });
  return parsed.data;
}

function fresh(issueDate: string, nextUpdate: string, now: Date, what: string): void {
  // SECURITY: stale collateral does not reflect revocations Intel published since; fail closed so
  // the owner refreshes it (PCS nextUpdate).
  if (now.getTime() > Date.parse(nextUpdate) || now.getTime() < Date.parse(issueDate)) {
    throw new CvmError('TDX_COLLATERAL_INVALID', `${what} is not current (issued ${issueDate}, next update ${nextUpdate})`);
  }
}

const rank = (s: TdxTcbStatus): number => (s === 'unknown' ? -1 : TDX_TCB_STATUSES.indexOf(s));

/**
 * Evaluate a verified quote's TCB against the owner's collateral, as Intel's QVL does: the first
 * TCB level whose SGX components and PCESVN the PCK certificate meets and whose TDX components the
 * TD's TEE_TCB_SVN meets gives the platform status (indices 0 and 1 are skipped when the TDX module
 * version, TEE_TCB_SVN[1], is not 0); with a QE identity, the first level the QE's ISVSVN meets
 * gives the QE status; the worse of the two is the result. No collateral for the quote's FMSPC →
 * `unknown`.
 * Not checked: the TDX module identity levels (tdxModuleIdentities), PCK CRLs.
 *
 * @throws CvmError `TDX_COLLATERAL_INVALID` (bad signature, wrong signer, stale, wrong PCE id), `TDX_CERT_EXPIRED`.
 */
export function evaluateTdxTcb(
  collateral: readonly TdxCollateral[] | undefined,
  platform: PckPlatform,
  teeTcbSvn: Uint8Array,
  qeReport: SgxReportBody,
  anchors: TdxTrustAnchors,
  now: Date,
): TdxTcbEvaluation {
  if (collateral === undefined || collateral.length === 0) return { status: 'unknown', reason: 'no TDX collateral is configured' };
  for (const c of collateral) {
    const info = signedJson(c.tcb_info, c.tcb_info_signature, c.tcb_info_issuer_chain, tcbInfoSchema, anchors, now, 'TCB info');
    if (info.fmspc.toUpperCase() !== platform.fmspc) continue;
    fresh(info.issueDate, info.nextUpdate, now, 'TCB info');
    // SECURITY: TCB levels are per PCE; another PCE's levels say nothing about this platform.
    if (info.pceId.toUpperCase() !== platform.pceId) throw new CvmError('TDX_COLLATERAL_INVALID', 'TCB info is for another PCE id');
    const skip = (teeTcbSvn[1] ?? 0) > 0 ? 2 : 0;
    const level = info.tcbLevels.find(
      (l) =>
        l.tcb.sgxtcbcomponents.every((comp, i) => (platform.sgxTcbComponents[i] ?? 0) >= comp.svn) &&
        platform.pceSvn >= l.tcb.pcesvn &&
        l.tcb.tdxtcbcomponents.every((comp, i) => i < skip || (teeTcbSvn[i] ?? 0) >= comp.svn),
    );
    const platformStatus: TdxTcbStatus = level?.tcbStatus ?? 'NotSupported';
    let qeStatus: TdxTcbStatus | undefined;
    if (c.qe_identity !== undefined && c.qe_identity_signature !== undefined && c.qe_identity_issuer_chain !== undefined) {
      const qe = signedJson(c.qe_identity, c.qe_identity_signature, c.qe_identity_issuer_chain, qeIdentitySchema, anchors, now, 'QE identity');
      fresh(qe.issueDate, qe.nextUpdate, now, 'QE identity');
      // SECURITY: the identity must describe the QE that signed this quote (signer and product).
      if (qe.mrsigner.toLowerCase() !== Buffer.from(qeReport.mrSigner).toString('hex') || qe.isvprodid !== qeReport.isvProdId) {
        throw new CvmError('TDX_COLLATERAL_INVALID', 'QE identity does not describe the quote\'s QE');
      }
      qeStatus = qe.tcbLevels.find((l) => qeReport.isvSvn >= l.tcb.isvsvn)?.tcbStatus ?? 'NotSupported';
    }
    const statusOut = qeStatus !== undefined && rank(qeStatus) > rank(platformStatus) ? qeStatus : platformStatus;
    return {
      status: statusOut,
      platformStatus,
      ...(level?.tcbDate !== undefined ? { tcbDate: level.tcbDate } : {}),
      ...(level?.advisoryIDs !== undefined ? { advisoryIds: level.advisoryIDs } : {}),
      ...(qeStatus !== undefined ? { qeStatus } : {}),
      ...(info.tcbEvaluationDataNumber !== undefined ? { tcbEvaluationDataNumber: info.tcbEvaluationDataNumber } : {}),
    };
  }
  return { status: 'unknown', reason: `no TDX collateral for FMSPC ${platform.fmspc}` };
}
