/**
 * The tee-key residency extension on evidence from a real TPM (swtpm through the agent's tpm2-tss
 * device): keys created under the SRK and certified with TPM2_Certify, good and deliberately bad
 * (signing keys, duplicable keys, another AK, another key's public area, a seal that does not match
 * the quoted PCRs, a tee-pubkey that is not the certified key). Each refusal names its reason.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  collectTpmEvidence,
  loadOrCreateAk,
  openTpmDevice,
  OBJECT_ATTRIBUTE,
  TEE_KEY_ATTRIBUTES,
  teeKeyTemplate,
  type LoadedAk,
  type TpmDevice,
  type TpmKey,
} from '@keyhold/attestation-agent';
import { appraiseTpmEvidence, parseTpm2bPublic, policyPcrDigest, tpmPublicToKeyObject } from '@keyhold/verifier';
import { startSwtpm, type RunningSwtpm } from '@keyhold/test-harness';
import { KbsError } from '../../errors.js';
import { TeeKeyResidencyExtension, TEE_KEY_FIELD } from './tee-key-residency-extension.js';
import type { TpmExtensionInput } from './tpm-extension.js';

let swtpm: RunningSwtpm;
let tpm: TpmDevice;
let ak: LoadedAk;
let otherAk: LoadedAk;
const ext = new TeeKeyResidencyExtension();
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

function jwkOf(publicArea: Uint8Array): Record<string, unknown> {
  const pub = parseTpm2bPublic(publicArea);
  const jwk = tpmPublicToKeyObject(pub).export({ format: 'jwk' });
  return { ...jwk, alg: pub.type === 'rsa' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW' };
}

interface Case {
  template?: Uint8Array;
  certifier?: TpmKey;
  sealedPcrs?: number[];
  /** Runs after the key was created and before the quote (e.g. a PCR extend). */
  between?: () => Promise<void>;
  /** Replace the public area sent (another key's). */
  publicArea?: Uint8Array;
  teePubkey?: unknown;
  member?: (m: Record<string, unknown>) => unknown;
}

/** Evidence as the agent builds it (quote + certification with the same qualifying data), appraised by the extension. */
async function appraise(c: Case = {}) {
  const reportData = new Uint8Array(randomBytes(32));
  const blob = await tpm.createUnderSrk(c.template ?? teeKeyTemplate('rsa'));
  await c.between?.();
  const cert = await tpm.certify(blob, c.certifier ?? ak.ak, reportData);
  const evidence = await collectTpmEvidence(tpm, ak.ak, reportData);
  const member: Record<string, unknown> = {
    tpm2b_public: b64(c.publicArea ?? blob.publicArea),
    certify_info: b64(cert.certifyInfo),
    signature: b64(cert.signature),
    ...(c.sealedPcrs !== undefined ? { sealed_pcrs: c.sealedPcrs } : {}),
  };
  const primary = { ...evidence, [TEE_KEY_FIELD]: c.member ? c.member(member) : member };
  const input: TpmExtensionInput = {
    verified: appraiseTpmEvidence(primary, { expectedReportData: reportData, akTrust: { mode: 'not-checked' } }),
    evidence: primary,
    // The extension reads neither the session nor the reference values.
    session: {} as TpmExtensionInput['session'],
    references: {} as TpmExtensionInput['references'],
    challengeState: undefined,
    now: new Date(),
    initDataBound: false,
    ...('teePubkey' in c ? (c.teePubkey === undefined ? {} : { teePubkey: c.teePubkey }) : { teePubkey: jwkOf(blob.publicArea) }),
  };
  return ext.appraise(input);
}

async function refusal(c: Case): Promise<string> {
  const err = await appraise(c).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KbsError);
  expect((err as KbsError).code).toBe('ATTESTATION_FAILED');
  return (err as KbsError).message;
}

async function sealedPolicy(indices: number[]): Promise<Uint8Array> {
  const values = await tpm.readPcrs('sha256', indices);
  return policyPcrDigest({ hashAlg: 'sha256', bank: 'sha256', values: new Map(indices.map((i, k) => [i, values[k]!])) });
}

beforeAll(async () => {
  swtpm = await startSwtpm();
  tpm = await openTpmDevice({ tcti: swtpm.tcti });
  ak = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
  otherAk = await loadOrCreateAk(tpm, { persistentHandle: 0x81010003, persist: true });
}, 60_000);

afterAll(async () => {
  await ak?.release();
  await otherAk?.release();
  await tpm?.close();
  await swtpm?.stop();
});

describe('tee-key residency extension', () => {
  it('no tee_key member: no residency claims (a software tee key)', async () => {
    const reportData = new Uint8Array(randomBytes(32));
    const evidence = await collectTpmEvidence(tpm, ak.ak, reportData);
    const verified = appraiseTpmEvidence(evidence, { expectedReportData: reportData, akTrust: { mode: 'not-checked' } });
    expect(await ext.appraise({ verified, evidence: { ...evidence }, session: {} as never, challengeState: undefined, references: {} as never, now: new Date(), initDataBound: false })).toEqual({});
  });

  it('RSA, unsealed: tee_key_residency "tpm" and no sealed PCRs', async () => {
    const r = await appraise();
    expect(r.extra).toEqual({ tee_key_residency: 'tpm', tee_key_sealed_pcrs: [] });
    expect(r.claims?.['tee_key']).toMatchObject({ residency: 'tpm', type: 'rsa', sealed_pcrs: [] });
  });

  it('ECC, sealed to PCRs 0 and 7: the seal is reported', async () => {
    const r = await appraise({ template: teeKeyTemplate('ecc', { authPolicy: await sealedPolicy([0, 7]) }), sealedPcrs: [7, 0] });
    expect(r.extra).toEqual({ tee_key_residency: 'tpm', tee_key_sealed_pcrs: [0, 7] });
  });

  it('refuses a certification by another AK of the same TPM', async () => {
    expect(await refusal({ certifier: otherAk.ak })).toMatch(/CERTIFY_SIGNATURE_INVALID: .*not signed by the AK that signed the quote/);
  });

  it('refuses a key that can sign', async () => {
    const template = teeKeyTemplate('rsa', { attributes: TEE_KEY_ATTRIBUTES | OBJECT_ATTRIBUTE.sign, scheme: 'null' });
    expect(await refusal({ template })).toMatch(/TEE_KEY_ATTRIBUTES_INVALID: tee key is a signing key/);
  });

  it('refuses a key created duplicable (no fixedTPM, no fixedParent)', async () => {
    const template = teeKeyTemplate('rsa', { attributes: TEE_KEY_ATTRIBUTES & ~OBJECT_ATTRIBUTE.fixedTPM & ~OBJECT_ATTRIBUTE.fixedParent });
    expect(await refusal({ template })).toMatch(/TEE_KEY_ATTRIBUTES_INVALID: tee key is not fixedTPM/);
  });

  it('refuses a certification presented with another key’s public area', async () => {
    const other = await tpm.createUnderSrk(teeKeyTemplate('rsa'));
    expect(await refusal({ publicArea: other.publicArea, teePubkey: jwkOf(other.publicArea) })).toMatch(/CERTIFY_NAME_MISMATCH/);
  });

  it('refuses a seal that does not match the quoted PCRs (PCR extended after the key was sealed)', async () => {
    const template = teeKeyTemplate('rsa', { authPolicy: await sealedPolicy([0, 16]) });
    const between = () => tpm.extendPcr(16, [{ alg: 'sha256', digest: new Uint8Array(randomBytes(32)) }]);
    expect(await refusal({ template, sealedPcrs: [0, 16], between })).toMatch(/TEE_KEY_POLICY_MISMATCH: authPolicy is not PolicyPCR over the quoted values of PCRs 0,16/);
    // A sealed key that claims no seal, and an unsealed key that claims one.
    expect(await refusal({ template: teeKeyTemplate('rsa', { authPolicy: await sealedPolicy([0]) }) })).toMatch(/TEE_KEY_POLICY_MISMATCH/);
    expect(await refusal({ sealedPcrs: [0] })).toMatch(/TEE_KEY_(ATTRIBUTES_INVALID|POLICY_MISMATCH)/);
  });

  it('refuses a tee-pubkey that is not the certified key, and a missing one', async () => {
    const soft = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
    expect(await refusal({ teePubkey: { ...soft, alg: 'RSA-OAEP-256' } })).toMatch(/TEE_KEY_JWK_MISMATCH: tee-pubkey is not the certified TPM key/);
    expect(await refusal({ teePubkey: undefined })).toMatch(/no tee-pubkey/);
  });

  it('refuses malformed members', async () => {
    expect(await refusal({ member: () => 'x' })).toMatch(/tee_key is malformed/);
    expect(await refusal({ member: (m) => ({ ...m, extra: 1 }) })).toMatch(/tee_key is malformed/);
    expect(await refusal({ member: (m) => ({ ...m, sealed_pcrs: [24] }) })).toMatch(/tee_key is malformed \(at "sealed_pcrs.0"\)/);
    expect(await refusal({ member: (m) => ({ ...m, signature: 'AB==' }) })).toMatch(/not canonical base64/);
    expect(await refusal({ member: (m) => ({ ...m, certify_info: (m['certify_info'] as string).slice(0, 40) }) })).toMatch(/TPM_TRUNCATED/);
  });
});
