/**
 * Hardware identity for `tpm` evidence: EK trust, credential activation piggybacked on the KBS
 * handshake, and enrolment records (issue 3).
 *
 * At `/auth` (challenge), when the agent named its EK and AK:
 *  1. the AK's attributes must describe a TPM-resident restricted signing key (checkAkAttributes);
 *  2. the EK must be trusted by the owner (CA store and/or allowlist, see ek-trust.ts); otherwise
 *     the request is refused — unless the owner's `trusted_ak` list (when enabled) names the AK,
 *     in which case the Trustee-compatible path decides and no identity is claimed;
 *  3. a revoked node is refused (NODE_REVOKED);
 *  4. an AK already bound to this EK skips activation; any other AK gets a TPM2_MakeCredential
 *     blob for (EK public, AK name) with 32 fresh random bytes; the session keeps only digests (of
 *     the named identity fields and of the expected answer) and these decisions, never raw
 *     extra-params nor the secret itself.
 * At `/attest` (appraise), after the quote verified:
 *  5. the quote's AK must be the AK named at `/auth`, and identity fields repeated in the evidence
 *     must be the ones named at `/auth`;
 *  6. the activation answer must equal the secret (SHA-256 digests compared in constant time); only then is the AK → EK binding
 *     stored in the node record (compare-and-swap: a concurrent revocation wins); the node is
 *     re-checked for revocation;
 *  7. the result says `akTrusted: 'ek-bound'`, the node id (hex SHA-256 of the EK SPKI), a SPIFFE ID
 *     and how the EK was trusted (hardware = genuine when a CA vouched for it).
 * It does NOT appraise PCRs or logs (other extensions and the attestation policy do).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import {
  canonicalSpkiDer,
  checkAkAttributes,
  IdentityError,
  makeCredential,
  nameOfPublic,
  tpmPublicToSpkiDer,
} from '@keyhold/verifier';
import { KbsError } from '../../errors.js';
import { IdentityStoreError } from '../../identity/errors.js';
import { enrolNode, isRefusedNode, nodeRefusal } from '../../identity/node-records.js';
import type { EkAllowlistState, EkCaState, NodeRecord, NodeState } from '../../state/ports.js';
import { StateError } from '../../state/errors.js';
import { AR4SI, type TrustworthinessVector } from '../../token/ear-claims.js';
import type { ChallengeInput } from '../tee-appraiser.js';
import { ekTrustHint, evaluateEkTrust } from './ek-trust.js';

/** EK refusals no owner act should excuse (the certificate speaks of another key, or is garbage): no trust hint. */
const HARD_EK_FAILURES = new Set(['EK_CERT_KEY_MISMATCH', 'EK_CERT_MALFORMED']);
import {
  ACTIVATED_CREDENTIAL_FIELD,
  canonicalBase64,
  CREDENTIAL_PARAM,
  decodeUnverifiedIdentity,
  IDENTITY_EVIDENCE_FIELDS,
  MAX_CREDENTIAL_BYTES,
  type IdentityWire,
} from './identity-params.js';
import { TRUSTED_AK_REFERENCE } from './tpm-appraiser.js';
import type { TpmExtension, TpmExtensionChallenge, TpmExtensionInput, TpmExtensionResult } from './tpm-extension.js';

export interface IdentityExtensionOptions {
  /** The owner's EK CA store (a snapshot is read on each challenge that presents a certificate, so uploads apply at once). */
  readonly ekCa: Pick<EkCaState, 'snapshot'>;
  readonly ekAllowlist: Pick<EkAllowlistState, 'has'>;
  /** Node records: enrolment (AK binding) and revocation. */
  readonly nodes: NodeState;
  readonly requireEkCertificate: boolean;
  readonly requireEkAllowlist: boolean;
  /** Whether the owner's `trusted_ak` list is honoured (TpmAppraiser's `trustedAkList`). */
  readonly trustedAkList: boolean;
  /** SPIFFE trust domain of node IDs: spiffe://<trustDomain>/keyhold/node/tpm/<ek-hash>. */
  readonly trustDomain: string;
  /** Credential size in bytes (default 32). */
  readonly credentialBytes?: number;
}

const HEX = (n: number) => z.string().regex(new RegExp(`^[0-9a-f]{${n}}$`));
const EK_TRUST_VIA = z.enum(['ca', 'allowlist', 'ca+allowlist']);

/**
 * Per-session state kept by the session store between `/auth` and `/attest` (JSON only, well under
 * 1 KiB): SHA-256 digests of the identity fields named at `/auth` (the evidence must repeat the very
 * same strings) and what was decided about them. Parsed again at `/attest`: a record that does not
 * fit fails closed.
 */
const IdentityStateSchema = z.strictObject({
  /** Hex SHA-256 of each identity field's wire string as named at `/auth`. */
  wireSha256: z.strictObject({ ek_tpm2b_public: HEX(64), ek_cert: HEX(64).optional(), ak_tpm2b_public: HEX(64) }),
  ekHash: HEX(64),
  /** Hex SHA-256 of the AK's canonical DER SPKI, and the hex of its TPM name. */
  akSpkiSha256: HEX(64),
  akNameHex: z.string().regex(/^[0-9a-f]{4}(?:[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$/),
  /** `listed`: EK untrusted but the AK is in trusted_ak (Trustee path decides, no identity claimed). */
  mode: z.enum(['activate', 'enrolled', 'listed']),
  via: EK_TRUST_VIA.optional(),
  certificate: z
    .strictObject({
      subject: z.string().max(4096),
      issuer: z.string().max(4096),
      tpmManufacturer: z.string().max(256).optional(),
      tpmModel: z.string().max(256).optional(),
      tpmVersion: z.string().max(256).optional(),
    })
    .optional(),
  untrustedCode: z.string().max(64).optional(),
  /**
   * Hex SHA-256 of the expected activation answer (mode `activate`): whoever can read the session
   * store (a backup, a read-only Redis user) still cannot answer for the TPM. Single use: the nonce
   * is consumed once.
   */
  expectedSha256: HEX(64).optional(),
});

type IdentityState = z.infer<typeof IdentityStateSchema>;

/** Paths of the node identity in EAR claims (beside Trustee's members of annotated-evidence). */
export const NODE_ID_CLAIM = 'node_id';
export const SPIFFE_ID_CLAIM = 'spiffe_id';

const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

export function spiffeIdOf(trustDomain: string, nodeId: string): string {
  return `spiffe://${trustDomain}/keyhold/node/tpm/${nodeId}`;
}

function fail(code: string, message: string, cause?: unknown): KbsError {
  return new KbsError('ATTESTATION_FAILED', `${code}: ${message}`, cause !== undefined ? { cause } : undefined);
}

function asKbsError(err: unknown): unknown {
  if (err instanceof IdentityError) return fail(err.code, err.message, err);
  // SECURITY: an unreadable or corrupt node store never reads as "not revoked" or "enrolled" (fail closed, 503).
  if (err instanceof IdentityStoreError || err instanceof StateError) return new KbsError('STORAGE_UNAVAILABLE', 'identity store is unavailable', { cause: err });
  return err;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function isListed(akSpki: Uint8Array, list: readonly string[]): boolean {
  return list.some((v) => {
    try {
      return Buffer.from(canonicalSpkiDer(new Uint8Array(Buffer.from(v, 'base64')))).equals(Buffer.from(akSpki));
    } catch {
      return false;
    }
  });
}

export class IdentityExtension implements TpmExtension {
  readonly name = 'hardware-identity';
  readonly establishesIdentity = true;
  readonly #o: IdentityExtensionOptions;
  readonly #credentialBytes: number;

  constructor(opts: IdentityExtensionOptions) {
    if (!TRUST_DOMAIN.test(opts.trustDomain)) throw new TypeError('trustDomain must be a SPIFFE trust domain name ([a-z0-9._-]+)');
    const n = opts.credentialBytes ?? 32;
    if (!Number.isInteger(n) || n < 16 || n > 32) throw new TypeError('credentialBytes must be 16..32');
    this.#o = opts;
    this.#credentialBytes = n;
  }

  async challenge(input: ChallengeInput): Promise<TpmExtensionChallenge> {
    try {
      return await this.#challenge(input);
    } catch (err) {
      throw asKbsError(err);
    }
  }

  async #challenge(input: ChallengeInput): Promise<TpmExtensionChallenge> {
    const id = decodeUnverifiedIdentity(input.extraParams);
    if (id === undefined) return {};
    // SECURITY: only a restricted, TPM-generated, non-duplicable signing key can be an AK; anything
    // else could sign a forged quote (TPM 2.0 Part 1 §25.2.1, TCG EK Credential Profile).
    checkAkAttributes(id.akPublic);
    const akSpki = tpmPublicToSpkiDer(id.akPublic);
    const akName = nameOfPublic(id.akPublic);
    const trust = await evaluateEkTrust(
      { ekPublic: id.ekPublic, ekCertDer: id.ekCertDer, now: input.now },
      {
        caCertificates: async () => (await this.#o.ekCa.snapshot()).certificates,
        allowlist: this.#o.ekAllowlist,
        requireEkCertificate: this.#o.requireEkCertificate,
        requireEkAllowlist: this.#o.requireEkAllowlist,
      },
    );
    const base = { wireSha256: wireDigests(id.wire), ekHash: trust.ekHash, akSpkiSha256: sha256Hex(akSpki), akNameHex: hex(akName) };
    if (!trust.trusted) {
      if (this.#o.trustedAkList && isListed(akSpki, (await input.references()).get(TRUSTED_AK_REFERENCE) ?? [])) {
        return { state: toStore({ ...base, mode: 'listed', untrustedCode: trust.code }) };
      }
      // SECURITY: the owner vouches for this TPM neither by CA nor by allowlist, and does not list the
      // AK: nothing the node says can make it trusted (issue 3: a node can never enrol itself).
      throw fail(trust.code, HARD_EK_FAILURES.has(trust.code) ? trust.reason : `${trust.reason}; ${ekTrustHint(trust.code, trust.ekHash, this.#o)}`);
    }
    const record = await this.#o.nodes.get(trust.ekHash);
    // SECURITY: a revoked node gets no challenge and no token (issue 3, enrolment record).
    if (isRefusedNode(record)) throw nodeRefusal(record!);
    const trusted = { ...base, via: trust.via, ...(trust.certificate !== undefined ? { certificate: trust.certificate } : {}) };
    if (record !== undefined && record.akName === base.akNameHex) {
      return { state: toStore({ ...trusted, mode: 'enrolled' }) };
    }
    const secret = new Uint8Array(randomBytes(this.#credentialBytes));
    const made = makeCredential(id.ekPublic, akName, secret);
    return {
      extraParams: {
        [CREDENTIAL_PARAM]: {
          credential_blob: Buffer.from(made.credentialBlob).toString('base64'),
          encrypted_secret: Buffer.from(made.secret).toString('base64'),
        },
      },
      state: toStore({ ...trusted, mode: 'activate', expectedSha256: sha256Hex(secret) }),
    };
  }

  async appraise(input: TpmExtensionInput): Promise<TpmExtensionResult> {
    try {
      return await this.#appraise(input);
    } catch (err) {
      throw asKbsError(err);
    }
  }

  async #appraise(input: TpmExtensionInput): Promise<TpmExtensionResult> {
    const state = parseState(input.challengeState);
    const ev = input.evidence;
    if (state === undefined) {
      // SECURITY: an activation answer without an identity named at /auth binds nothing; refuse it
      // rather than let a client believe it enrolled (the identity must be challenged first).
      if (ev[ACTIVATED_CREDENTIAL_FIELD] !== undefined) throw fail('TPM_IDENTITY_NOT_CHALLENGED', 'activated_credential sent but no tpm-identity was named at /auth');
      return {};
    }
    for (const f of IDENTITY_EVIDENCE_FIELDS) {
      // SECURITY: the identity in the evidence must be the one challenged at /auth, so an attacker
      // cannot answer for one EK/AK and claim another (identity substitution).
      const named = state.wireSha256[f];
      const sent = ev[f];
      if (sent !== undefined && (typeof sent !== 'string' || named === undefined || sha256Hex(sent) !== named)) throw fail('TPM_IDENTITY_MISMATCH', `${f} differs from the identity named at /auth`);
    }
    let quotedAk: Uint8Array;
    try {
      quotedAk = canonicalSpkiDer(canonicalBase64(input.verified.claims.ak_public, 'ak_public'));
    } catch (err) {
      throw fail('TPM_IDENTITY_MISMATCH', 'ak_public is not a valid key', err);
    }
    // SECURITY: the key that signed the quote must be the AK whose attributes were checked and whose
    // name the credential was bound to; otherwise a software key could sign while a real AK answers
    // the activation (AK substitution; TPM 2.0 Part 1 §24).
    if (sha256Hex(quotedAk) !== state.akSpkiSha256) throw fail('TPM_IDENTITY_MISMATCH', 'the quote was not signed by the AK named at /auth');
    if (state.mode === 'listed') {
      return { claims: { ek_trust: 'none', ek_untrusted_reason: state.untrustedCode, ak_name: state.akNameHex } };
    }

    const record = await this.#o.nodes.get(state.ekHash);
    // SECURITY: revocation between /auth and /attest still applies.
    if (isRefusedNode(record)) throw nodeRefusal(record!);
    let activation: 'performed' | 'enrolled';
    if (state.mode === 'activate') {
      // Single use: the session's nonce was consumed (exactly once, across replicas) before this runs.
      const expected = state.expectedSha256;
      const answer = ev[ACTIVATED_CREDENTIAL_FIELD];
      // SECURITY: no answer, no binding: without it the AK may be a software key (issue 3).
      if (expected === undefined || typeof answer !== 'string' || answer.length > Math.ceil(MAX_CREDENTIAL_BYTES / 3) * 4) {
        throw fail('CREDENTIAL_ACTIVATION_FAILED', 'no credential-activation answer');
      }
      const got = createHash('sha256').update(canonicalBase64(answer, ACTIVATED_CREDENTIAL_FIELD)).digest();
      const want = Buffer.from(expected, 'hex');
      // SECURITY: only the TPM holding the EK, with the named AK loaded, can recover the secret
      // (TPM2_ActivateCredential); compared in constant time so the answer cannot be guessed byte
      // by byte (timing side channel).
      if (got.length !== want.length || !timingSafeEqual(got, want)) throw fail('CREDENTIAL_ACTIVATION_FAILED', 'the credential-activation answer is wrong');
      // The binding is written by compare-and-swap: a revocation that lands meanwhile wins (NODE_REVOKED).
      await enrolNode(this.#o.nodes, { nodeId: state.ekHash, akName: state.akNameHex, now: input.now, ...(state.via !== undefined ? { ekTrust: state.via } : {}) });
      activation = 'performed';
    } else {
      // SECURITY: the binding that let this AK skip activation must still hold (re-bound or removed since /auth).
      if (!isBound(record, state.akNameHex)) throw fail('AK_NOT_ENROLLED', 'the AK is no longer bound to this EK; re-attest');
      activation = 'enrolled';
    }

    const hardware: Partial<TrustworthinessVector> = state.via === 'allowlist' ? {} : { hardware: AR4SI.GENUINE_HARDWARE };
    return {
      vector: { 'instance-identity': AR4SI.TRUSTED_INSTANCE, ...hardware },
      claims: {
        ek_hash: state.ekHash,
        ek_trust: state.via,
        ak_name: state.akNameHex,
        credential_activation: activation,
        ...(state.certificate !== undefined ? { ek_certificate: state.certificate } : {}),
      },
      extra: {
        [NODE_ID_CLAIM]: state.ekHash,
        [SPIFFE_ID_CLAIM]: spiffeIdOf(this.#o.trustDomain, state.ekHash),
        ek_trust: state.via,
      },
      akTrusted: 'ek-bound',
    };
  }
}

function isBound(record: NodeRecord | undefined, akNameHex: string): boolean {
  return record !== undefined && !isRefusedNode(record) && record.akName === akNameHex;
}

const sha256Hex = (s: string | Uint8Array): string => createHash('sha256').update(s).digest('hex');

function wireDigests(wire: IdentityWire): IdentityState['wireSha256'] {
  return {
    ek_tpm2b_public: sha256Hex(wire.ek_tpm2b_public),
    ...(wire.ek_cert !== undefined ? { ek_cert: sha256Hex(wire.ek_cert) } : {}),
    ak_tpm2b_public: sha256Hex(wire.ak_tpm2b_public),
  };
}

/** The state to keep in the session, checked against the schema `/attest` will apply (bounded sizes). */
function toStore(state: IdentityState): IdentityState {
  const r = IdentityStateSchema.safeParse(state);
  // SECURITY: what goes into the shared session store is bounded; an over-long certificate subject is
  // refused here rather than stored (resource exhaustion in the state backend).
  if (!r.success) throw fail('TPM_IDENTITY_MALFORMED', `the identity cannot be kept in the session (at "${r.error.issues[0]?.path.join('.') ?? ''}")`);
  return r.data;
}

/** The state this extension stored at `/auth`, checked again: the session store is outside this process. */
function parseState(raw: unknown): IdentityState | undefined {
  if (raw === undefined) return undefined;
  const r = IdentityStateSchema.safeParse(raw);
  // SECURITY: a session record that does not have the shape this extension wrote is corruption or
  // tampering in the state backend; never act on part of it (fail closed).
  if (!r.success) throw new StateError('STATE_CORRUPT', 'the session\'s identity challenge state is malformed');
  return r.data;
}
