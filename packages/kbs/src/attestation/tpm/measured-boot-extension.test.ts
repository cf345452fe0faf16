import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { collectTpmEvidence, createSoftwareTpm, loadOrCreateAk, type TpmDevice, type TpmKey } from '@keyhold/attestation-agent';
import { createMeasuredBootReferenceState, parseEventLog, type MeasuredBootReferenceState } from '@keyhold/verifier';
import { KbsError } from '../../errors.js';
import { affirmingResourcePolicy } from '../../release/resource-policy.js';
import { openMemoryState } from '../../state/index.js';
import type { ReferenceSnapshot, SessionRecord } from '../../state/ports.js';
import { earClaims } from '../../token/ear-claims.js';
import { defaultAttestationPolicy } from '../attestation-policy.js';
import { MEASURED_BOOT_REFERENCE, MeasuredBootExtension } from './measured-boot-extension.js';
import { TpmAppraiser, TRUSTED_AK_REFERENCE } from './tpm-appraiser.js';

// Fixture: ../shared/corpus/eventlogs/rhel8-uefi.bin (google/go-tpm-tools internal/test/eventlogs):
// crypto-agile, SHA-256 digests in every event, no StartupLocality, Secure Boot on, grub command line.
const repoRoot = fileURLToPath(new URL('../../../../../', import.meta.url));
const corpusLog = path.resolve(repoRoot, '../shared/corpus/eventlogs/rhel8-uefi.bin');
const haveCorpus = existsSync(corpusLog);
if (!haveCorpus) console.warn(`skipping measured-boot extension tests: ${corpusLog} is absent`);

const EV_NO_ACTION = 3;

interface Node {
  tpm: TpmDevice;
  ak: TpmKey;
}

/** A software TPM whose SHA-256 PCRs hold exactly what the log's events extended. */
async function bootedNode(log: Buffer): Promise<Node> {
  const tpm = createSoftwareTpm();
  const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
  for (const ev of parseEventLog(log).events) {
    if (ev.type === EV_NO_ACTION) continue;
    const d = ev.digests.find((x) => x.bank === 'sha256');
    if (d === undefined) throw new Error('fixture event without a sha256 digest');
    await tpm.extendPcr(ev.pcr, [{ alg: 'sha256', digest: d.digest }]);
  }
  return { tpm, ak };
}

/** The reference values as the KBS reads them: a snapshot of a (memory-only) state's store. */
async function references(node: Node, extra: Record<string, string[]> = {}): Promise<ReferenceSnapshot> {
  const state = await openMemoryState({ sessionLimits: { maxSessions: 10, maxSessionBytes: 1 << 20 } });
  try {
    const ev = await collectTpmEvidence(node.tpm, node.ak, new Uint8Array(32));
    await state.referenceValues.set({ [TRUSTED_AK_REFERENCE]: [ev.ak_public], ...extra });
    return await state.referenceValues.snapshot();
  } finally {
    await state.close();
  }
}

const SESSION: SessionRecord = { id: '0'.repeat(32), tee: 'tpm', nonce: '', hashAlgorithm: 'sha384', expiresAtMs: 0, nonceConsumed: true };

/** Run the real appraiser with the extension, then the default policies, as the KBS does. */
async function attest(node: Node, refs: ReferenceSnapshot, fields: Record<string, unknown>, ext = new MeasuredBootExtension({ requireEventLog: false, allowSha1: false })) {
  const reportData = randomBytes(32);
  const evidence = { ...fields, ...(await collectTpmEvidence(node.tpm, node.ak, reportData)) };
  const appraisal = await new TpmAppraiser({ trustedAkList: true, extensions: [ext] }).appraise({
    evidence,
    expectedReportData: reportData,
    session: SESSION,
    references: refs,
    now: new Date(),
  });
  const verdict = await defaultAttestationPolicy.evaluate({ tee: 'tpm', appraisal, references: refs });
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
  return { appraisal, verdict, decision, mb: appraisal.teeClaims['measured_boot'] as Record<string, any> | undefined };
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

describe.skipIf(!haveCorpus)('MeasuredBootExtension', () => {
  let log: Buffer;
  let node: Node;
  let state: MeasuredBootReferenceState;
  const b64 = (b: Buffer): string => b.toString('base64');

  beforeAll(async () => {
    log = readFileSync(corpusLog);
    node = await bootedNode(log);
    state = createMeasuredBootReferenceState(parseEventLog(log), { bank: 'sha256' });
  });

  it('affirms a log that replays to the quote and matches the reference state', async () => {
    const refs = await references(node, { [MEASURED_BOOT_REFERENCE]: [JSON.stringify(state)] });
    const r = await attest(node, refs, { event_log: b64(log) });
    expect(r.mb).toMatchObject({ ok: true, appraised: true, bank: 'sha256', failures: [] });
    expect(r.mb?.['verified_pcrs']).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14]);
    expect(r.appraisal.vector).toMatchObject({ configuration: 2, executables: 2 });
    expect(r.verdict.status).toBe('affirming');
    expect(r.decision.allow).toBe(true);
  });

  it('verifies the replay but claims nothing when no reference state is stored', async () => {
    const r = await attest(node, await references(node), { event_log: b64(log) });
    expect(r.mb).toMatchObject({ ok: true, appraised: false });
    expect(r.appraisal.vector.configuration).toBeUndefined();
    expect(r.decision.allow).toBe(true);
  });

  it('denies, naming the event, when one boot application digest differs from the reference', async () => {
    const apps = [...(state.bootApplications?.sha256 ?? [])];
    apps[apps.length - 1] = 'ab'.repeat(32);
    const refs = await references(node, { [MEASURED_BOOT_REFERENCE]: [JSON.stringify({ ...state, bootApplications: { sha256: apps } })] });
    const r = await attest(node, refs, { event_log: b64(log) });
    expect(r.appraisal.vector.executables).toBe(96);
    expect(r.verdict.status).toBe('contraindicated');
    expect(r.mb?.['reason']).toMatch(/^measured boot: bootApplications: boot application at event \d+ is not in the reference$/);
    expect(r.decision.allow).toBe(false);
    expect(r.decision.reason).toContain(r.mb?.['reason']);
  });

  it('denies when the kernel command line matches no pattern', async () => {
    const refs = await references(node, { [MEASURED_BOOT_REFERENCE]: [JSON.stringify({ ...state, kernelCmdline: ['.* lockdown=integrity'] })] });
    const r = await attest(node, refs, { event_log: b64(log) });
    expect(r.appraisal.vector.configuration).toBe(96);
    expect(r.mb?.['failures'][0]).toMatchObject({ check: 'kernelCmdline' });
    expect(r.decision.reason).toMatch(/kernel command line at event \d+ matches no pattern/);
  });

  it('refuses a log whose replay does not match the quote, naming the PCR (one digest altered)', async () => {
    const parsed = parseEventLog(log);
    const app = parsed.events.find((e) => e.pcr === 4 && e.type === 0x80000003)!;
    const d = app.digests.find((x) => x.bank === 'sha256')!;
    const forged = Buffer.from(log);
    const at = d.digest.byteOffset - log.byteOffset;
    forged[at] = forged[at]! ^ 0x01;
    const msg = await refusal(attest(node, await references(node), { event_log: b64(forged) }));
    expect(msg).toBe('event_log: EVENTLOG_REPLAY_MISMATCH: replayed sha256 PCR 4 does not match the quote');
  });

  it('refuses a log from another boot (a fresh TPM holds none of it)', async () => {
    const tpm = createSoftwareTpm();
    const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
    const other = { tpm, ak };
    const msg = await refusal(attest(other, await references(other), { event_log: b64(log) }));
    expect(msg).toMatch(/EVENTLOG_REPLAY_MISMATCH: replayed sha256 PCR 0 does not match the quote/);
  });

  it('refuses truncated, non-base64, non-string and oversized logs', async () => {
    const refs = await references(node);
    expect(await refusal(attest(node, refs, { event_log: b64(log.subarray(0, log.length - 7)) }))).toMatch(/EVENTLOG_(TRUNCATED|LENGTH_EXCEEDED)/);
    expect(await refusal(attest(node, refs, { event_log: `${b64(log)}!` }))).toMatch(/not standard base64/);
    expect(await refusal(attest(node, refs, { event_log: `-${b64(log).slice(1)}` }))).toMatch(/not standard base64/);
    expect(await refusal(attest(node, refs, { event_log: 42 }))).toMatch(/must be a base64 string/);
    const small = new MeasuredBootExtension({ requireEventLog: false, allowSha1: false, maxEventLogBytes: 1024 });
    expect(await refusal(attest(node, refs, { event_log: b64(log) }, small))).toMatch(/exceeds 1024 bytes/);
  });

  it('without a log: refused when required, contraindicated when a reference state is stored', async () => {
    const required = new MeasuredBootExtension({ requireEventLog: true, allowSha1: false });
    expect(await refusal(attest(node, await references(node), {}, required))).toMatch(/require_event_log/);
    const r = await attest(node, await references(node, { [MEASURED_BOOT_REFERENCE]: [JSON.stringify(state)] }), {});
    expect(r.appraisal.vector.configuration).toBe(96);
    expect(r.decision.reason).toMatch(/no event_log was sent/);
    const none = await attest(node, await references(node), {});
    expect(none.mb).toBeUndefined();
    expect(none.decision.allow).toBe(true);
  });

  it('refuses on an invalid or ambiguous reference state (fail closed)', async () => {
    const cases: string[][] = [['{'], [JSON.stringify({ version: 1 })], [JSON.stringify(state), JSON.stringify(state)]];
    for (const values of cases) {
      const msg = await refusal(attest(node, await references(node, { [MEASURED_BOOT_REFERENCE]: values }), { event_log: b64(log) }));
      expect(msg).toMatch(/tpm_measured_boot/);
    }
  });

  it('with init-data bound, PCR8 is the init-data binding and is left out of the log replay', async () => {
    // A node whose firmware/boot events (except PCR8's) replay from the log, and whose PCR8 holds only
    // the init-data binding, as a CVM attester leaves it.
    const tpm = createSoftwareTpm();
    const { ak } = await loadOrCreateAk(tpm, { persistentHandle: 0x81010002, persist: true });
    for (const ev of parseEventLog(log).events) {
      if (ev.type === EV_NO_ACTION || ev.pcr === 8) continue;
      await tpm.extendPcr(ev.pcr, [{ alg: 'sha256', digest: ev.digests.find((x) => x.bank === 'sha256')!.digest }]);
    }
    const initDigest = randomBytes(32);
    await tpm.extendPcr(8, [{ alg: 'sha256', digest: initDigest }]);
    const cvm: Node = { tpm, ak };
    const refs = await references(cvm);
    const ext = new MeasuredBootExtension({ requireEventLog: false, allowSha1: false });
    const run = async (initDataDigest?: Uint8Array) => {
      const reportData = randomBytes(32);
      const evidence = { event_log: b64(log), ...(await collectTpmEvidence(tpm, ak, reportData)) };
      return new TpmAppraiser({ trustedAkList: true, extensions: [ext] }).appraise({
        evidence,
        expectedReportData: reportData,
        ...(initDataDigest !== undefined ? { initDataDigest } : {}),
        session: SESSION,
        references: refs,
        now: new Date(),
      });
    };
    const ok = await run(initDigest);
    expect((ok.teeClaims['measured_boot'] as Record<string, unknown>)['appraised']).not.toBe(true);
    expect(ok.teeClaims['pcr08']).toBe(ok.initDataHex);
    // Without init-data the same PCR8 must replay from the log, and it does not.
    expect(await refusal(run())).toMatch(/PCR 8/);
  });

  it('an untrusted AK is refused before its event log is even parsed', async () => {
    const stranger = createSoftwareTpm();
    const { ak } = await loadOrCreateAk(stranger, { persistentHandle: 0x81010002, persist: true });
    const msg = await refusal(attest({ tpm: stranger, ak }, await references(node), { event_log: b64(Buffer.from('not an event log')) }));
    expect(msg).toMatch(/AK is not trusted/);
  });

  it('refuses a log whose Spec ID declares the quoted bank but whose events carry no digest for it', async () => {
    // Some firmware (and tpm2-tools' fixtures) declare more banks than their events carry digests
    // for; `keyhold eventlog` prints the banks it can replay, but a bank without digests cannot appraise.
    const parsed = parseEventLog(log);
    const parts: Buffer[] = [log.subarray(0, parsed.events[1]!.offset)];
    for (const ev of parsed.events.slice(1)) {
      const kept = ev.digests.filter((d) => d.bank !== 'sha256');
      const head = Buffer.alloc(12);
      head.writeUInt32LE(ev.pcr, 0);
      head.writeUInt32LE(ev.type, 4);
      head.writeUInt32LE(kept.length, 8);
      parts.push(head);
      for (const d of kept) parts.push(Buffer.from([d.algId & 0xff, d.algId >> 8]), Buffer.from(d.digest));
      const size = Buffer.alloc(4);
      size.writeUInt32LE(ev.data.byteLength);
      parts.push(size, Buffer.from(ev.data));
    }
    const sha256Less = Buffer.concat(parts);
    expect(parseEventLog(sha256Less).banks).toContain('sha256');
    const msg = await refusal(attest(node, await references(node), { event_log: b64(sha256Less) }));
    expect(msg).toMatch(/^event_log: EVENTLOG_MISSING_DIGEST: event 1 has no sha256 digest$/);
  });

  it('rejects bad options at construction', () => {
    expect(() => new MeasuredBootExtension({ requireEventLog: false, allowSha1: false, maxEventLogBytes: 0 })).toThrow(TypeError);
  });
});
