import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { decodeJwt } from 'jose';
import { PROTOCOL_VERSION } from '@keyhold/protocol';
import { openTpmDevice, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';
import { SWTPM_LOCALCA_DIR, SWTPM_LOCALCA_ISSUER_CERT, SWTPM_LOCALCA_ROOT_CERT, type RunningSwtpm } from '@keyhold/test-harness';
import { parseTpm2bPublic } from '@keyhold/verifier';
import { attest, auth, buildAttestation, type HttpAnswer } from './raw-flow.js';

const run = promisify(execFile);

/** The TCG NV index of the ECC NIST P-256 EK certificate (template L-2). */
export const ECC_P256_EK_CERT_INDEX = 0x01c0000a;

/**
 * Give a swtpm an ECC P-256 EK certificate at the TCG L-2 index, issued by swtpm's local CA with
 * swtpm_cert — the tool and CA swtpm_setup itself uses. Needed because swtpm 0.7's swtpm_setup only
 * certifies an ECC P-384 EK (high-range template H-3 at 0x01c00016, whose PolicyOR/SHA-384
 * authPolicy the agent's TPM device does not satisfy yet), while the agent names the L-2 P-256 EK.
 */
export async function provisionEccP256EkCert(swtpm: RunningSwtpm, workDir: string): Promise<Uint8Array> {
  const tpm = await openTpmDevice({ tcti: swtpm.tcti });
  let ek: TpmKey;
  try {
    ek = await tpm.createEk('ecc');
  } finally {
    await tpm.close();
  }
  const pub = parseTpm2bPublic(ek.publicArea);
  if (pub.type !== 'ecc') throw new Error('ECC EK expected');
  const out = join(workDir, `ecc-ek-${swtpm.port}.der`);
  await run('swtpm_cert', [
    '--type', 'ek', '--tpm2', '--decryption',
    '--ecc-x', Buffer.from(pub.unique.x).toString('hex'), '--ecc-y', Buffer.from(pub.unique.y).toString('hex'), '--ecc-curveid', 'secp256r1',
    '--signkey', join(SWTPM_LOCALCA_DIR, 'signkey.pem'), '--issuercert', SWTPM_LOCALCA_ISSUER_CERT,
    '--serial', String(Date.now()), '--days', '30',
    '--tpm-manufacturer', 'id:00001014', '--tpm-model', 'swtpm', '--tpm-version', 'id:20191023',
    '--tpm-spec-family', '2.0', '--tpm-spec-level', '0', '--tpm-spec-revision', '164',
    '--subject', 'CN=keyhold-e2e-ecc-ek', '--out-cert', out,
  ]);
  const cert = new Uint8Array(await readFile(out));
  const env = { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti };
  const index = `0x${ECC_P256_EK_CERT_INDEX.toString(16)}`;
  await run('tpm2_nvdefine', [index, '-C', 'o', '-s', String(cert.length), '-a', 'ownerread|ownerwrite|authread|authwrite|no_da'], { env });
  await run('tpm2_nvwrite', [index, '-C', 'o', '-i', out], { env });
  return cert;
}

/** The two certificates of swtpm's local CA (root and EK-issuing intermediate) copied into `dir`. */
export async function swtpmLocalCaFiles(dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = [join(dir, 'swtpm-localca-root.pem'), join(dir, 'swtpm-localca-issuer.pem')];
  await copyFile(SWTPM_LOCALCA_ROOT_CERT, files[0]!);
  await copyFile(SWTPM_LOCALCA_ISSUER_CERT, files[1]!);
  return files;
}

export interface IdentityRun {
  auth: HttpAnswer;
  challengeExtra: Record<string, unknown>;
  attest?: HttpAnswer;
  token?: string;
}

/**
 * One hand-driven handshake with hardware identity: `identity` goes into the Request's
 * extra-params, `answer` computes the activation answer from the challenge (undefined: none),
 * the quote is made by `quoteTpm`/`quoteAk`.
 */
export async function identityHandshake(
  kbs: string,
  o: {
    identity: Record<string, unknown>;
    quoteTpm: TpmDevice;
    quoteAk: TpmKey;
    answer?: (challenge: { credential_blob: string; encrypted_secret: string }) => Promise<string | undefined>;
    evidence?: (e: Record<string, unknown>) => Record<string, unknown>;
  },
): Promise<IdentityRun> {
  const a = await auth(kbs, { version: PROTOCOL_VERSION, tee: 'tpm', 'extra-params': { 'tpm-identity': o.identity } });
  if (a.answer.status !== 200) return { auth: a.answer, challengeExtra: {} };
  const ch = (a.answer.json as { 'extra-params': unknown })['extra-params'];
  const challengeExtra = typeof ch === 'object' && ch !== null ? (ch as Record<string, unknown>) : {};
  const cred = challengeExtra['tpm-credential'] as { credential_blob: string; encrypted_secret: string } | undefined;
  const answer = cred !== undefined && o.answer !== undefined ? await o.answer(cred) : undefined;
  const parts = await buildAttestation(o.quoteTpm, o.quoteAk, a.nonce);
  const te = parts.body['tee-evidence'] as { primary_evidence: Record<string, unknown> };
  let primary: Record<string, unknown> = { ...o.identity, ...(answer !== undefined ? { activated_credential: answer } : {}), ...te.primary_evidence };
  if (o.evidence !== undefined) primary = o.evidence(primary);
  const res = await attest(kbs, a.cookie, { ...parts.body, 'tee-evidence': { ...te, primary_evidence: primary } });
  const token = res.status === 200 ? (res.json as { token: string }).token : undefined;
  return { auth: a.answer, challengeExtra, attest: res, ...(token !== undefined ? { token } : {}) };
}

/** The Keyhold identity members of an EAR token's annotated evidence. */
export function identityClaims(token: string): { nodeId: unknown; spiffeId: unknown; ekTrust: unknown; tpm: Record<string, unknown>; vector: Record<string, number>; status: unknown } {
  const cpu0 = (decodeJwt(token) as { submods: { cpu0: Record<string, any> } }).submods.cpu0;
  const ev = cpu0['ear.veraison.annotated-evidence'];
  return { nodeId: ev['node_id'], spiffeId: ev['spiffe_id'], ekTrust: ev['ek_trust'], tpm: ev['tpm'], vector: cpu0['ear.trustworthiness-vector'], status: cpu0['ear.status'] };
}
