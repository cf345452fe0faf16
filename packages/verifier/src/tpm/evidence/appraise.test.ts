import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePorts, spawnProcess, waitForPort, type SpawnedProcess } from '@keyhold/test-harness';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VerifierError } from '../../errors.js';
import { appraiseTpmEvidence, isVerifiedTpmClaims, type AppraiseTpmEvidenceOptions } from './appraise.js';
import { decodeUnverifiedTpmEvidence } from './decode.js';

/**
 * Trustee-shape `tpm` evidence built the way guest-components builds it, with tpm2-tools on a real
 * swtpm: init-data digest extended into PCR8, RSASSA-SHA256 AK, quote of SHA-256 PCRs 0..23 with
 * the 32-byte report data as qualifying data, ak_public = DER SPKI from `tpm2_readpublic -f der`.
 */

const haveTools = existsSync('/usr/bin/swtpm') && existsSync('/usr/bin/tpm2_quote');
if (!haveTools) console.warn('skipping tpm evidence appraisal tests: swtpm or tpm2-tools missing');

/** Test-side reader of the tpm2-tools PCR file (see quote/verify.test.ts), single bank, values in order. */
function readPcrFileValues(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let l = 0; l < buf.readUInt32LE(132); l++) {
    const base = 136 + l * 532;
    for (let d = 0; d < buf.readUInt32LE(base); d++) {
      const slot = base + 4 + d * 66;
      out.push(Buffer.from(buf.subarray(slot + 2, slot + 2 + buf.readUInt16LE(slot))));
    }
  }
  return out;
}

async function swtpmPort(): Promise<number> {
  for (;;) {
    const [p] = (await freePorts(1)) as [number];
    const free = await new Promise<boolean>((resolve) => {
      const srv = createServer();
      srv.once('error', () => resolve(false));
      srv.listen(p + 1, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (free && p < 65535) return p;
  }
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'accepted';
  } catch (err) {
    if (err instanceof VerifierError) return err.code;
    throw err;
  }
}

const reportData = createHash('sha256').update('runtime-data binding').digest();
const initDataDigest = createHash('sha256').update('init-data toml').digest();

type Evidence = { ak_public: string; tpm_quote: { message: string; signature: string; pcrs: string[] }; [k: string]: unknown };

describe.skipIf(!haveTools)('appraiseTpmEvidence (Trustee tpm evidence from swtpm)', () => {
  let dir = '';
  let swtpm: SpawnedProcess | undefined;
  let env: NodeJS.ProcessEnv = {};
  let evidence: Evidence;
  let partial: Evidence; // quote of PCRs 0..7 only, padded to 24 values
  let akDer: Buffer;
  let otherAkDer: Buffer;

  const tpm2 = (...args: string[]): void => {
    const r = spawnSync(args[0] as string, args.slice(1), { cwd: dir, env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  };
  const file = (name: string): Buffer => readFileSync(path.join(dir, name));
  const b64 = (name: string): string => file(name).toString('base64');

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'keyhold-evidence-'));
    const port = await swtpmPort();
    swtpm = spawnProcess({
      name: 'swtpm',
      command: 'swtpm',
      args: ['socket', '--tpm2', '--server', `type=tcp,port=${port}`, '--ctrl', `type=tcp,port=${port + 1}`, '--tpmstate', `dir=${dir}`, '--flags', 'not-need-init,startup-clear'],
    });
    await waitForPort(port, swtpm);
    env = { ...process.env, TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` };
    tpm2('tpm2_pcrextend', `8:sha256=${initDataDigest.toString('hex')}`);
    tpm2('tpm2_createek', '-c', 'ek.ctx', '-G', 'rsa', '-u', 'ek.pub');
    tpm2('tpm2_flushcontext', '-t');
    tpm2('tpm2_createak', '-C', 'ek.ctx', '-c', 'ak.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak.pub', '-n', 'ak.name');
    tpm2('tpm2_flushcontext', '-t');
    tpm2('tpm2_readpublic', '-c', 'ak.ctx', '-f', 'der', '-o', 'ak.der');
    tpm2('tpm2_quote', '-c', 'ak.ctx', '-l', `sha256:${[...Array(24).keys()].join(',')}`, '-q', reportData.toString('hex'), '-m', 'q.msg', '-s', 'q.sig', '-o', 'q.pcrs', '-g', 'sha256');
    tpm2('tpm2_flushcontext', '-t');
    tpm2('tpm2_quote', '-c', 'ak.ctx', '-l', 'sha256:0,1,2,3,4,5,6,7', '-q', reportData.toString('hex'), '-m', 'p.msg', '-s', 'p.sig', '-o', 'p.pcrs', '-g', 'sha256');
    tpm2('tpm2_flushcontext', '-t');
    tpm2('tpm2_createak', '-C', 'ek.ctx', '-c', 'ak2.ctx', '-G', 'rsa', '-g', 'sha256', '-s', 'rsassa', '-u', 'ak2.pub', '-n', 'ak2.name');
    tpm2('tpm2_flushcontext', '-t');
    tpm2('tpm2_readpublic', '-c', 'ak2.ctx', '-f', 'der', '-o', 'ak2.der');
    tpm2('tpm2_flushcontext', '-t');
    akDer = file('ak.der');
    otherAkDer = file('ak2.der');
    const pcrs = readPcrFileValues(file('q.pcrs')).map((v) => v.toString('hex'));
    expect(pcrs).toHaveLength(24);
    // Round-trip through JSON as it arrives on the wire; extra fields as other modules add them.
    evidence = JSON.parse(JSON.stringify({
      ak_public: akDer.toString('base64'),
      tpm_quote: { message: b64('q.msg'), signature: b64('q.sig'), pcrs },
      ek_public: b64('ek.pub'),
      event_log: 'AAAA',
    }));
    const partialPcrs = readPcrFileValues(file('p.pcrs')).map((v) => v.toString('hex'));
    partial = { ...evidence, tpm_quote: { message: b64('p.msg'), signature: b64('p.sig'), pcrs: [...partialPcrs, ...pcrs.slice(8)] } };
  }, 60_000);

  afterAll(async () => {
    await swtpm?.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const listed = (): AppraiseTpmEvidenceOptions => ({
    expectedReportData: reportData,
    akTrust: { mode: 'trusted-list', trustedAkSpkiDer: [otherAkDer, akDer] },
    initDataDigest,
  });

  it('accepts the evidence and returns Trustee-named claims', () => {
    const { claims, akTrusted, quote } = appraiseTpmEvidence(evidence, listed());
    expect(akTrusted).toBe('listed');
    expect(isVerifiedTpmClaims(claims)).toBe(true);
    expect(isVerifiedTpmClaims({ ...claims })).toBe(false);
    for (let i = 0; i < 24; i++) expect(claims[`pcr${String(i).padStart(2, '0')}` as 'pcr00']).toBe(evidence.tpm_quote.pcrs[i]);
    expect(claims.ak_public).toBe(evidence.ak_public);
    expect(claims.report_data).toBe(reportData.toString('hex'));
    const pcr8 = createHash('sha256').update(Buffer.alloc(32)).update(initDataDigest).digest('hex');
    expect(claims.init_data).toBe(pcr8);
    expect(claims.pcr08).toBe(pcr8);
    expect(claims.quote.resetCount).toBe(quote.clockInfo.resetCount);
    expect(claims.quote.clock).toMatch(/^\d+$/);
    expect(claims.quote.firmwareVersion).toMatch(/^[0-9a-f]{16}$/);
    expect(JSON.parse(JSON.stringify(claims))).toEqual({ ...claims });
  });

  it('reports akTrusted "not-checked" only when the caller opts out explicitly', () => {
    const { akTrusted } = appraiseTpmEvidence(evidence, { expectedReportData: reportData, akTrust: { mode: 'not-checked' } });
    expect(akTrusted).toBe('not-checked');
    expect(() => appraiseTpmEvidence(evidence, { expectedReportData: reportData } as unknown as AppraiseTpmEvidenceOptions)).toThrow(TypeError);
  });

  it('rejects a wrong expected report data', () => {
    const wrong = Buffer.from(reportData);
    wrong[31] = (wrong[31] as number) ^ 1;
    expect(codeOf(() => appraiseTpmEvidence(evidence, { ...listed(), expectedReportData: wrong }))).toBe('QUOTE_EXTRA_DATA_MISMATCH');
  });

  it('rejects an AK that is not in the trusted list, and fails closed on an empty list', () => {
    expect(codeOf(() => appraiseTpmEvidence(evidence, { ...listed(), akTrust: { mode: 'trusted-list', trustedAkSpkiDer: [otherAkDer] } }))).toBe('EVIDENCE_AK_NOT_TRUSTED');
    expect(codeOf(() => appraiseTpmEvidence(evidence, { ...listed(), akTrust: { mode: 'trusted-list', trustedAkSpkiDer: [] } }))).toBe('EVIDENCE_AK_NOT_TRUSTED');
    // A trusted AK named in the evidence does not help a quote signed by another key.
    const swapped = { ...evidence, ak_public: otherAkDer.toString('base64') };
    expect(codeOf(() => appraiseTpmEvidence(swapped, listed()))).toBe('QUOTE_SIGNATURE_INVALID');
  });

  it('rejects an altered PCR value', () => {
    for (const i of [0, 8, 23]) {
      const pcrs = [...evidence.tpm_quote.pcrs];
      pcrs[i] = `${(pcrs[i] as string).slice(0, 63)}${(pcrs[i] as string).endsWith('0') ? '1' : '0'}`;
      expect(codeOf(() => appraiseTpmEvidence({ ...evidence, tpm_quote: { ...evidence.tpm_quote, pcrs } }, listed()))).toBe('QUOTE_PCR_DIGEST_MISMATCH');
    }
  });

  it('rejects a quote that does not cover all 24 PCRs', () => {
    expect(codeOf(() => appraiseTpmEvidence(partial, listed()))).toBe('QUOTE_PCR_SELECTION_MISMATCH');
  });

  it('rejects PCR8 that does not hold the init-data digest', () => {
    const other = createHash('sha256').update('other init-data').digest();
    expect(codeOf(() => appraiseTpmEvidence(evidence, { ...listed(), initDataDigest: other }))).toBe('EVIDENCE_INIT_DATA_MISMATCH');
  });

  it('rejects a flipped bit in the message or signature', () => {
    for (const field of ['message', 'signature'] as const) {
      const bytes = Buffer.from(evidence.tpm_quote[field], 'base64');
      bytes[bytes.length - 60] = (bytes[bytes.length - 60] as number) ^ 1;
      const ev = { ...evidence, tpm_quote: { ...evidence.tpm_quote, [field]: bytes.toString('base64') } };
      expect(codeOf(() => appraiseTpmEvidence(ev, listed()))).toBe('QUOTE_SIGNATURE_INVALID');
    }
  });

  it('ignores but preserves extra evidence fields', () => {
    const decoded = decodeUnverifiedTpmEvidence(evidence);
    expect(decoded.fields.ek_public).toBe(evidence.ek_public);
    expect(decoded.fields.event_log).toBe('AAAA');
    expect(Buffer.from(decoded.akPublicDer)).toEqual(akDer);
  });

  it('rejects malformed evidence with EVIDENCE_MALFORMED', () => {
    const q = evidence.tpm_quote;
    const bad: unknown[] = [
      null, 'string', [], {},
      { tpm_quote: q },
      { ak_public: evidence.ak_public },
      { ...evidence, tpm_quote: { ...q, pcrs: q.pcrs.slice(0, 23) } },
      { ...evidence, tpm_quote: { ...q, pcrs: [...q.pcrs, q.pcrs[0]] } },
      { ...evidence, tpm_quote: { ...q, pcrs: q.pcrs.map((p, i) => (i === 3 ? `${p.slice(0, 62)}zz` : p)) } },
      { ...evidence, tpm_quote: { ...q, pcrs: q.pcrs.map((p, i) => (i === 3 ? p.slice(0, 40) : p)) } },
      { ...evidence, tpm_quote: { ...q, message: `${q.message.slice(0, -4)}*AAA` } },
      { ...evidence, tpm_quote: { ...q, message: q.message.replace(/=+$/, '') + (q.message.endsWith('=') ? '' : '=') } },
      { ...evidence, tpm_quote: { ...q, message: 'A'.repeat(4000) } },
      { ...evidence, ak_public: 42 },
      { ...evidence, ak_public: 'AB==' }, // non-canonical: padding bits set
    ];
    for (const [i, ev] of bad.entries()) {
      expect(codeOf(() => appraiseTpmEvidence(ev, listed())), `case ${i}`).toBe('EVIDENCE_MALFORMED');
    }
  });

  it('rejects undecodable binary fields with typed TPM errors', () => {
    expect(codeOf(() => appraiseTpmEvidence({ ...evidence, tpm_quote: { ...evidence.tpm_quote, message: '' } }, listed()))).toBe('TPM_TRUNCATED');
    expect(codeOf(() => appraiseTpmEvidence({ ...evidence, ak_public: 'AAAA' }, { ...listed(), akTrust: { mode: 'not-checked' } }))).toBe('QUOTE_INVALID_AK');
  });

  it('throws TypeError for malformed options', () => {
    expect(() => appraiseTpmEvidence(evidence, { ...listed(), expectedReportData: new Uint8Array(0) })).toThrow(TypeError);
    expect(() => appraiseTpmEvidence(evidence, { ...listed(), expectedReportData: new Uint8Array(65) })).toThrow(TypeError);
    expect(() => appraiseTpmEvidence(evidence, { ...listed(), initDataDigest: new Uint8Array(48) })).toThrow(TypeError);
    expect(() => appraiseTpmEvidence(evidence, { ...listed(), akTrust: { mode: 'trusted-list' } as never })).toThrow(TypeError);
  });
});
