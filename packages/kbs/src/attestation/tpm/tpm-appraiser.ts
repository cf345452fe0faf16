import { fitReportData, tpmInitDataDigest, TPM_REPORT_DATA_BYTES } from '@keyhold/protocol';
import { appraiseTpmEvidence, type TpmAppraisal } from '@keyhold/verifier';
import { akNodeId } from '../../continuous/node-identity.js';
import { KbsError } from '../../errors.js';
import { AR4SI, type TrustworthinessVector } from '../../token/ear-claims.js';
import type { ChallengeInput, ChallengeResult, TeeAppraisal, TeeAppraisalInput, TeeAppraiser } from '../tee-appraiser.js';
import type { TpmExtension } from './tpm-extension.js';

/** The annotated-evidence member naming the node (identity-extension.ts NODE_ID_CLAIM). */
const NODE_ID = 'node_id';

/** Reference value holding the owner's trusted AKs (standard base64 DER SPKI), as in Trustee. */
export const TRUSTED_AK_REFERENCE = 'trusted_ak';

export interface TpmAppraiserOptions {
  /** Accept AKs listed in the `trusted_ak` reference value (Trustee compatible). */
  trustedAkList: boolean;
  /** Further appraisal steps (hardware identity, measured boot, IMA), run in order. */
  extensions?: readonly TpmExtension[];
}

/**
 * Appraises `tpm` evidence: Trustee's checks in the pure verifier (shape, signature, nonce binding,
 * PCR digest, init-data), then each extension. The AK must be trusted by the owner's `trusted_ak`
 * list or by an identity extension (EK-bound); otherwise nothing attests (fail closed).
 */
export class TpmAppraiser implements TeeAppraiser {
  readonly tee = 'tpm';
  readonly #opts: TpmAppraiserOptions;

  constructor(opts: TpmAppraiserOptions) {
    const names = new Set<string>();
    for (const ext of opts.extensions ?? []) {
      if (names.has(ext.name)) throw new TypeError(`two TPM extensions are named ${ext.name}`);
      names.add(ext.name);
    }
    this.#opts = opts;
  }

  /** Each extension's challenge; their states are kept in the session under the extension's name. */
  async challenge(input: ChallengeInput): Promise<ChallengeResult> {
    const extraParams: Record<string, unknown> = {};
    const state: Record<string, unknown> = {};
    for (const ext of this.#opts.extensions ?? []) {
      if (ext.challenge === undefined) continue;
      const r = await ext.challenge(input);
      Object.assign(extraParams, r.extraParams ?? {});
      if (r.state !== undefined) state[ext.name] = r.state;
    }
    return {
      ...(Object.keys(extraParams).length > 0 ? { extraParams } : {}),
      ...(Object.keys(state).length > 0 ? { state } : {}),
    };
  }

  async appraise(input: TeeAppraisalInput): Promise<TeeAppraisal> {
    let verified: TpmAppraisal;
    try {
      verified = appraiseTpmEvidence(input.evidence, {
        expectedReportData: fitReportData(input.expectedReportData, TPM_REPORT_DATA_BYTES),
        // AK trust is decided below, from the owner's list or an identity extension.
        akTrust: { mode: 'not-checked' },
        ...(input.initDataDigest !== undefined ? { initDataDigest: tpmInitDataDigest(input.initDataDigest) } : {}),
      });
    } catch (err) {
      throw asAttestationFailure(err);
    }
    const { claims } = verified;
    const listed = this.#opts.trustedAkList && isListed(claims.ak_public, input.references.get(TRUSTED_AK_REFERENCE) ?? []);

    const vector: Partial<TrustworthinessVector> = {};
    const teeClaims: Record<string, unknown> = { ...claims };
    const extra: Record<string, unknown> = {};
    let ekBound = false;
    const evidence = input.evidence as Record<string, unknown>;
    const extensions = this.#opts.extensions ?? [];
    const runExtension = async (ext: TpmExtension): Promise<void> => {
      let r;
      try {
        r = await ext.appraise({
          verified,
          evidence,
          session: input.session,
          challengeState: ownState(input.session.challenge, ext.name),
          references: input.references,
          now: input.now,
          initDataBound: input.initDataDigest !== undefined,
          ...(input.teePubkey !== undefined ? { teePubkey: input.teePubkey } : {}),
        });
      } catch (err) {
        throw asAttestationFailure(err);
      }
      mergeVector(vector, r.vector ?? {});
      Object.assign(teeClaims, r.claims ?? {});
      Object.assign(extra, r.extra ?? {});
      if (r.akTrusted === 'ek-bound') ekBound = true;
    };
    for (const ext of extensions) if (ext.establishesIdentity === true) await runExtension(ext);
    // SECURITY: quotes from an AK neither listed by the owner nor bound to a trusted TPM's EK prove
    // nothing — a software key can sign a perfect quote (AK substitution). Fail closed, before any
    // further (costlier) appraisal of what the untrusted node sent.
    if (!listed && !ekBound) throw new KbsError('ATTESTATION_FAILED', 'AK is not trusted (not in trusted_ak and not bound to a trusted EK)');
    // The node is identified from here on: by its EK (identity extension) or by the owner-listed AK.
    // The AK's DER bytes equal an owner-listed value byte for byte (isListed), so hashing them as
    // sent is stable (no re-encoding: importing the key costs a millisecond per attestation).
    if (!ekBound) extra[NODE_ID] = akNodeId(new Uint8Array(Buffer.from(claims.ak_public, 'base64')));
    if (typeof extra[NODE_ID] === 'string') input.identified?.({ nodeId: extra[NODE_ID] });
    for (const ext of extensions) if (ext.establishesIdentity !== true) await runExtension(ext);
    mergeVector(vector, { 'instance-identity': AR4SI.TRUSTED_INSTANCE });
    return {
      teeClaims,
      reportDataHex: claims.report_data,
      initDataHex: claims.init_data,
      vector,
      ...(Object.keys(extra).length > 0 ? { extra } : {}),
    };
  }
}

/** An extension's own challenge state (own properties only: the record was parsed from storage). */
function ownState(challenge: Readonly<Record<string, unknown>> | undefined, name: string): unknown {
  return challenge !== undefined && Object.hasOwn(challenge, name) ? challenge[name] : undefined;
}

/** Compare the AK (standard base64 DER SPKI) with the owner's list, tolerant of base64 padding/format. */
function isListed(akB64: string, list: readonly string[]): boolean {
  const ak = Buffer.from(akB64, 'base64');
  return list.some((v) => {
    const b = Buffer.from(v, 'base64');
    return b.length === ak.length && b.equals(ak);
  });
}

/** AR4SI: for each claim the worst (highest tier) value wins. */
function mergeVector(into: Partial<TrustworthinessVector>, add: Partial<TrustworthinessVector>): void {
  for (const [k, v] of Object.entries(add) as [keyof TrustworthinessVector, number][]) {
    const cur = into[k];
    into[k] = cur === undefined ? v : tier(v) > tier(cur) || (tier(v) === tier(cur) && v > cur) ? v : cur;
  }
}

function tier(v: number): number {
  return v >= 96 ? 3 : v >= 32 ? 2 : v >= 2 ? 1 : 0;
}

function asAttestationFailure(err: unknown): KbsError {
  if (err instanceof KbsError) return err;
  const code = (err as { code?: unknown }).code;
  const msg = err instanceof Error ? err.message : 'invalid evidence';
  return new KbsError('ATTESTATION_FAILED', typeof code === 'string' ? `${code}: ${msg}` : msg, { cause: err });
}
