import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { collectTpmEvidence, createSoftwareTpm, loadOrCreateAk, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';
import { createRuntimePolicyFromImaLog, parseImaLog, type RuntimePolicy } from '@keyhold/verifier';
import { KbsError } from '../../errors.js';
import { affirmingResourcePolicy } from '../../release/resource-policy.js';
import { openMemoryState } from '../../state/index.js';
import type { ImaCheckpointState, KbsState, ReferenceSnapshot, SessionRecord } from '../../state/ports.js';
import { earClaims } from '../../token/ear-claims.js';
import { defaultAttestationPolicy } from '../attestation-policy.js';
import { charsAfterLines, ImaExtension, RUNTIME_POLICY_REFERENCE } from './ima-extension.js';
import { TpmAppraiser, TRUSTED_AK_REFERENCE } from './tpm-appraiser.js';

/**
 * A node whose IMA log is generated here, the way the kernel writes ima-ng entries: template data
 * = d-ng ‖ n-ng (ima_template_lib.c), logged with its SHA-1, extended into the SHA-256 bank of PCR10
 * as the SHA-256 of the template data (Linux 5.8+).
 */
class ImaNode {
  lines: string[] = [];
  constructor(
    readonly tpm: TpmDevice,
    readonly ak: TpmKey,
  ) {}

  static async create(): Promise<ImaNode> {
    const tpm = createSoftwareTpm();
    const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
    return new ImaNode(tpm, ak);
  }

  /** Measure a file: append its entry and (unless `extend` is false) extend PCR10. */
  async measure(path: string, content: string, extend = true): Promise<void> {
    const digest = createHash('sha256').update(content).digest();
    const alg = Buffer.from('sha256:\0', 'latin1');
    const name = Buffer.from(path, 'utf8');
    const data = Buffer.concat([u32(alg.length + digest.length), alg, digest, u32(name.length + 1), name, Buffer.alloc(1)]);
    this.lines.push(`10 ${createHash('sha1').update(data).digest('hex')} ima-ng sha256:${digest.toString('hex')} ${path}`);
    if (extend) await this.tpm.extendPcr(10, [{ alg: 'sha256', digest: createHash('sha256').update(data).digest() }]);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

let node: ImaNode;
/** A memory-only state (the embedded backend without files): reference values and IMA checkpoints. */
let state: KbsState;
let checkpoints: ImaCheckpointState;
let ext: ImaExtension;

/** A snapshot of the reference values with the node's AK trusted and, when given, this runtime policy. */
async function refs(policy?: RuntimePolicy | string[]): Promise<ReferenceSnapshot> {
  const ev = await collectTpmEvidence(node.tpm, node.ak, new Uint8Array(32));
  await state.referenceValues.set({ [TRUSTED_AK_REFERENCE]: [ev.ak_public] });
  if (policy === undefined) await state.referenceValues.delete(RUNTIME_POLICY_REFERENCE);
  else await state.referenceValues.set({ [RUNTIME_POLICY_REFERENCE]: Array.isArray(policy) ? policy : [JSON.stringify(policy)] });
  return state.referenceValues.snapshot();
}

/** The checkpoint key of the current node (SHA-256 of its AK's DER SPKI). */
async function nodeKey(): Promise<string> {
  const ev = await collectTpmEvidence(node.tpm, node.ak, new Uint8Array(32));
  return createHash('sha256').update(Buffer.from(ev.ak_public, 'base64')).digest('hex');
}

const SESSION: SessionRecord = { id: '0'.repeat(32), tee: 'tpm', nonce: '', hashAlgorithm: 'sha384', expiresAtMs: 0, nonceConsumed: true };

/** The real appraiser with the extension, then the default policies, as the KBS runs them. */
async function attest(references: ReferenceSnapshot, fields: Record<string, unknown>, extension: ImaExtension = ext) {
  const reportData = randomBytes(32);
  const evidence = { ...fields, ...(await collectTpmEvidence(node.tpm, node.ak, reportData)) };
  const appraisal = await new TpmAppraiser({ trustedAkList: true, extensions: [extension] }).appraise({ evidence, expectedReportData: reportData, session: SESSION, references, now: new Date() });
  const verdict = await defaultAttestationPolicy.evaluate({ tee: 'tpm', appraisal, references });
  const claims = earClaims({
    tee: 'tpm',
    status: verdict.status,
    vector: verdict.vector,
    policyId: verdict.policyId,
    teeClaims: appraisal.teeClaims,
    reportDataHex: appraisal.reportDataHex,
    nonce: 'n',
    teePubkey: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' } as never,
    build: 'test',
  }) as Record<string, unknown>;
  const decision = await affirmingResourcePolicy.evaluate({ claims, plugin: 'resource', path: { repository: 'r', type: 't', tag: 'g' } as never, query: {} });
  return { appraisal, decision, ima: appraisal.teeClaims['ima'] as Record<string, any> | undefined };
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KbsError);
    expect((err as KbsError).code).toBe('ATTESTATION_FAILED');
    return (err as KbsError).message;
  }
  throw new Error('expected ATTESTATION_FAILED');
}

const goodPolicy = (): RuntimePolicy => createRuntimePolicyFromImaLog(parseImaLog(node.text()));

beforeEach(async () => {
  node = await ImaNode.create();
  await node.measure('boot_aggregate', 'aggregate');
  for (let i = 0; i < 20; i++) await node.measure(`/usr/bin/tool-${i}`, `tool ${i}`);
  state = await openMemoryState({ sessionLimits: { maxSessions: 10, maxSessionBytes: 1 << 20 } });
  checkpoints = state.imaCheckpoints;
  ext = new ImaExtension({ checkpoints, requireImaLog: false, allowSha1: false, allowViolations: false });
});

afterEach(async () => {
  await state.close();
});

describe('ImaExtension', () => {
  it('affirms a log that replays to PCR10 and matches the runtime policy', async () => {
    const r = await attest(await refs(goodPolicy()), { ima_log: node.text() });
    expect(r.ima).toMatchObject({ ok: true, appraised: true, entries: 21, from_index: 0, next_index: 21, incremental: false, failures: [] });
    expect(r.appraisal.vector).toMatchObject({ executables: 2, 'file-system': 2 });
    expect(r.decision.allow).toBe(true);
    expect(await checkpoints.get(await nodeKey())).toBeDefined();
  });

  it('denies, naming the file, when a file hash differs from the policy', async () => {
    const policy = goodPolicy();
    const bad = { ...policy, digests: { ...policy.digests, '/usr/bin/tool-7': ['00'.repeat(32)] } };
    const r = await attest(await refs(bad), { ima_log: node.text() });
    expect(r.appraisal.vector.executables).toBe(96);
    expect(r.ima?.['reason']).toBe('IMA: entry 8 (/usr/bin/tool-7): digest-mismatch');
    expect(r.decision.allow).toBe(false);
    expect(r.decision.reason).toContain('IMA: entry 8 (/usr/bin/tool-7): digest-mismatch');
    expect(await checkpoints.get(await nodeKey())).toBeUndefined();
  });

  it('appraises incrementally: the next attestation only appraises entries after the checkpoint', async () => {
    const references = await refs(goodPolicy());
    await attest(references, { ima_log: node.text() });
    await node.measure('/usr/bin/late', 'late');
    const policy = goodPolicy();
    const r2 = await attest(await refs(policy), { ima_log: node.text() });
    // A new policy value: the checkpoint (made under the old one) is not reused.
    expect(r2.ima).toMatchObject({ ok: true, incremental: false, appraised_entries: 22 });
    await node.measure('/usr/bin/later', 'later');
    const merged = [JSON.stringify(policy), JSON.stringify({ meta: { version: 1 }, digests: { '/usr/bin/later': [createHash('sha256').update('later').digest('hex')] } })];
    const r3 = await attest(await refs(merged), { ima_log: node.text() });
    expect(r3.ima).toMatchObject({ ok: true, incremental: false, appraised_entries: 23 });
    await node.measure('/usr/bin/tool-3', 'tool 3');
    const r4 = await attest(await refs(merged), { ima_log: node.text() });
    expect(r4.ima).toMatchObject({ ok: true, incremental: true, entries: 24, from_index: 23, next_index: 24, appraised_entries: 1 });
  });

  it('a failing entry is appraised again next time (the checkpoint never passes it)', async () => {
    const references = await refs(goodPolicy());
    expect((await attest(references, { ima_log: node.text() })).ima?.['ok']).toBe(true);
    await node.measure('/tmp/evil', 'evil');
    const r1 = await attest(references, { ima_log: node.text() });
    expect(r1.ima).toMatchObject({ ok: false, incremental: true, from_index: 21 });
    expect(r1.ima?.['reason']).toBe('IMA: entry 21 (/tmp/evil): not-in-policy');
    await node.measure('/usr/bin/tool-1', 'tool 1');
    const r2 = await attest(references, { ima_log: node.text() });
    expect(r2.ima).toMatchObject({ ok: false, from_index: 21 });
    expect(r2.decision.reason).toContain('/tmp/evil');
  });

  it('does not resume when the log prefix differs from the checkpoint (whole log appraised, forgery refused)', async () => {
    const references = await refs(goodPolicy());
    await attest(references, { ima_log: node.text() });
    // Same number of entries, other content: a log that is not the one the checkpoint covered.
    const forged = [...node.lines];
    forged[3] = node.lines[4]!;
    const msg = await refusal(attest(references, { ima_log: `${forged.join('\n')}\n` }));
    expect(msg).toMatch(/^ima_log: IMA_REPLAY_MISMATCH/);
  });

  it('ignores a checkpoint whose recorded prefix hash differs, and one made under another policy', async () => {
    const references = await refs(goodPolicy());
    await attest(references, { ima_log: node.text() });
    const key = await nodeKey();
    const rec = (await checkpoints.get(key))!;
    expect(rec.checkpoint.nextIndex).toBe(21);
    await checkpoints.set(key, { ...rec, prefixSha256: '00'.repeat(32) });
    expect((await attest(references, { ima_log: node.text() })).ima).toMatchObject({ ok: true, incremental: false });
    await checkpoints.set(key, { ...rec, policyKey: 'other' });
    expect((await attest(references, { ima_log: node.text() })).ima).toMatchObject({ ok: true, incremental: false });
    expect((await attest(references, { ima_log: node.text() })).ima).toMatchObject({ ok: true, incremental: true, appraised_entries: 0 });
  });

  it('uses only the prefix the quote covers (entries logged after the quote wait)', async () => {
    await node.measure('/usr/bin/pending', 'pending', false);
    const r = await attest(await refs(goodPolicy()), { ima_log: node.text() });
    expect(r.ima).toMatchObject({ ok: true, entries: 21, next_index: 21 });
  });

  it('refuses a log that does not replay to the quoted PCR10 (entry dropped, log of another node)', async () => {
    const references = await refs(goodPolicy());
    const dropped = node.lines.filter((_, i) => i !== 5);
    expect(await refusal(attest(references, { ima_log: `${dropped.join('\n')}\n` }))).toMatch(/^ima_log: IMA_REPLAY_MISMATCH/);
    const fresh = await ImaNode.create();
    const other = node;
    node = fresh;
    expect(await refusal(attest(await refs(), { ima_log: other.text() }))).toMatch(/IMA_REPLAY_MISMATCH/);
  });

  it('refuses an entry whose template hash does not match its fields', async () => {
    const lines = [...node.lines];
    lines[2] = lines[2]!.replace('/usr/bin/tool-1', '/usr/bin/tool-X');
    expect(await refusal(attest(await refs(), { ima_log: `${lines.join('\n')}\n` }))).toMatch(/IMA_TEMPLATE_HASH_MISMATCH/);
  });

  it('without a log: refused when required, contraindicated when a policy is stored; bad fields refused', async () => {
    const required = new ImaExtension({ checkpoints, requireImaLog: true, allowSha1: false, allowViolations: false });
    expect(await refusal(attest(await refs(), {}, required))).toMatch(/require_ima_log/);
    const r = await attest(await refs(goodPolicy()), {});
    expect(r.appraisal.vector.executables).toBe(96);
    expect(r.decision.reason).toMatch(/no ima_log was sent/);
    expect((await attest(await refs(), {})).ima).toBeUndefined();
    expect(await refusal(attest(await refs(), { ima_log: ['x'] }))).toMatch(/must be a string/);
    const small = new ImaExtension({ checkpoints, requireImaLog: false, allowSha1: false, allowViolations: false, maxImaLogChars: 100 });
    expect(await refusal(attest(await refs(), { ima_log: node.text() }, small))).toMatch(/exceeds 100 characters/);
    expect(await refusal(attest(await refs(['{']), { ima_log: node.text() }))).toMatch(/tpm_runtime_policy is not JSON/);
    expect(await refusal(attest(await refs([JSON.stringify({ digests: {} })]), { ima_log: node.text() }))).toMatch(/tpm_runtime_policy/);
  });
});

describe('charsAfterLines', () => {
  it('counts non-empty lines and needs the newline of the last one', () => {
    expect(charsAfterLines('a\nb\nc\n', 0, 2)).toBe(4);
    expect(charsAfterLines('a\n\nb\nc', 0, 2)).toBe(5);
    expect(charsAfterLines('a\nb', 0, 2)).toBeUndefined();
    expect(charsAfterLines('xa\nb\n', 1, 1)).toBe(2);
    expect(charsAfterLines('', 0, 0)).toBe(0);
  });
});
