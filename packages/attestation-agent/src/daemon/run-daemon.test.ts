// The daemon loop with a stand-in KBS (scripted answers) on a fake clock, and real files: the node
// key, CSR, certificate checks and cert.pem/key.pem handling are the real code; the CA that signs is
// a test CA made with @peculiar/x509. The real KBS and TPM are covered by e2e/continuous-attestation.
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { access, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pkcs10CertificateRequest } from '@peculiar/x509';
import { afterAll, describe, expect, it } from 'vitest';
import { KbsClientError } from '../kbs-client/errors.js';
import { NodeCertificates } from '../node-cert/node-certificates.js';
import { createTestCa, type TestCa } from '../node-cert/test-ca.test-support.js';
import type { AttestationStatus } from './attestation-status.js';
import { runDaemon, type DaemonKbs } from './run-daemon.js';

const root = await mkdtemp(join(tmpdir(), 'kh-daemon-'));
afterAll(() => rm(root, { recursive: true, force: true }));
const NODE = 'ab'.repeat(32);
const exists = (f: string) => access(f).then(() => true, () => false);

type Outcome = 'ok' | KbsClientError | Error;
const banned = () => new KbsClientError('POLICY_DENY', '/kbs/v0/attest: PCR 10 differs from tpm_pcr10 (NodeBanned)', { status: 403, errorType: 'NodeBanned' });

/** A fake clock whose sleep advances time; the run stops after `cycles` sleeps. */
function clock(cycles: number) {
  const controller = new AbortController();
  let t = Date.now();
  let sleeps = 0;
  const slept: number[] = [];
  return {
    signal: controller.signal,
    now: () => t,
    slept,
    async sleep(ms: number) {
      slept.push(ms);
      t += ms;
      if (++sleeps >= cycles) controller.abort();
    },
  };
}

/** A KBS stand-in: attestations answer from `script` in turn; certificates are issued by `ca` for bound keys only. */
function fakeKbs(script: Outcome[], ca: TestCa, now: () => number, certs?: () => NodeCertificates | undefined, certOutcome?: () => Outcome | undefined) {
  const calls = { attest: 0, forget: 0, csr: 0, release: 0, bound: [] as string[] };
  let bound = '';
  const kbs: DaemonKbs = {
    async attest() {
      const o = script[Math.min(calls.attest, script.length - 1)] as Outcome;
      calls.attest++;
      if (o !== 'ok') throw o;
      bound = certs?.()?.additionalEvidence() ?? '';
      calls.bound.push(bound);
      const payload = { exp: Math.floor(now() / 1000) + 300, submods: { cpu0: { 'ear.status': 'affirming', 'ear.veraison.annotated-evidence': { node_id: NODE } } } };
      return `e30.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.sig`;
    },
    forgetToken() {
      calls.forget++;
    },
    async release() {
      calls.release++;
    },
    async requestNodeCertificate(_token, csrPem) {
      calls.csr++;
      const o = certOutcome?.();
      if (o !== undefined && o !== 'ok') throw o;
      const csr = new Pkcs10CertificateRequest(csrPem);
      expect(await csr.verify()).toBe(true);
      const spki = new Uint8Array(csr.publicKey.rawData);
      // As the KBS: only the key bound into the attestation is certified.
      if (!bound.includes(createHash('sha256').update(spki).digest('hex'))) throw new KbsClientError('POLICY_DENY', 'CSR key not bound (PolicyDeny)', { status: 403, errorType: 'PolicyDeny' });
      const notBefore = new Date(now() - 1000);
      const leaf = await ca.issue(spki, { notBefore, notAfter: new Date(notBefore.getTime() + 90_000), serial: `0${calls.csr}` });
      return { certificate: leaf.toString('pem'), chain: ca.pem, serial: leaf.serialNumber, spiffeId: `spiffe://t/keyhold/node/tpm/${NODE}` };
    },
  };
  return { kbs, calls };
}

const silent = { info() {}, warn() {}, error() {} };
function recorder() {
  const lines: { level: string; msg: string; obj: Record<string, unknown> }[] = [];
  const at = (level: string) => (obj: Record<string, unknown>, msg: string) => lines.push({ level, msg, obj });
  return { log: { info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

describe('keyhold-agent run loop', () => {
  it('attests every interval (jittered), logs one line per attestation, gets a certificate and renews it at 2/3 of its life', async () => {
    const ca = await createTestCa();
    const dir = join(root, 'renew');
    const certs = await NodeCertificates.open({ dir, deleteKeyOnBan: false });
    const c = clock(7);
    const { kbs, calls } = fakeKbs(['ok'], ca, c.now, () => certs);
    const published: AttestationStatus[] = [];
    const { log, lines } = recorder();
    try {
      const last = await runDaemon({ intervalMs: 10_000, kbs, certs, log, publish: async (s) => void published.push(s), signal: c.signal, now: c.now, sleep: c.sleep, random: () => 0.5 });
      expect(last).toMatchObject({ state: 'stopped', attested: false });
    } finally {
      await certs.close();
    }
    expect(calls.attest).toBe(7);
    // The TPM is let go at the end of every cycle.
    expect(calls.release).toBe(7);
    expect(c.slept).toEqual(Array(7).fill(10_000));
    expect(lines.filter((l) => l.msg === 'attested')).toHaveLength(7);
    // 90 s certificates (from t=-1 s) renewed once 2/3 have passed (t=59 s): issued at t=0 and t=60 s.
    expect(calls.csr).toBe(2);
    expect(lines.filter((l) => l.msg === 'node certificate issued').map((l) => l.obj['serial'])).toEqual(['01', '02']);
    const attested = published.filter((s) => s.state === 'attested');
    expect(attested.at(-1)).toMatchObject({ attested: true, nodeId: NODE, earStatus: 'affirming', certificate: { serial: '02' } });
    expect(await readFile(join(dir, 'cert.pem'), 'utf8')).toContain('BEGIN CERTIFICATE');
    expect(await readFile(join(dir, 'bundle.pem'), 'utf8')).toBe(`${ca.cert.toString('pem')}\n`);
    // Every attestation carried the key binding.
    expect(new Set(calls.bound)).toEqual(new Set([`{"keyhold.node-key":{"spki-sha256":"${certs.key?.spkiSha256}"}}`]));
  });

  it('a ban turns the node not attested at once, drops the token, removes cert.pem and (if asked) key.pem; recovery binds a new key', async () => {
    const ca = await createTestCa();
    const dir = join(root, 'ban');
    const certs = await NodeCertificates.open({ dir, deleteKeyOnBan: true });
    const firstKey = certs.key?.spkiSha256;
    const c = clock(5);
    const { kbs, calls } = fakeKbs(['ok', banned(), banned(), 'ok'], ca, c.now, () => certs);
    const published: AttestationStatus[] = [];
    const { log, lines } = recorder();
    try {
      await runDaemon({
        intervalMs: 2000,
        kbs,
        certs,
        log,
        signal: c.signal,
        now: c.now,
        sleep: c.sleep,
        random: () => 0.5,
        publish: async (s) => {
          published.push(s);
          // The moment the ban is published the files already say so.
          if (s.state === 'banned') {
            expect(s.attested).toBe(false);
            expect(await exists(join(dir, 'cert.pem'))).toBe(false);
            expect(await exists(join(dir, 'key.pem'))).toBe(false);
          }
        },
      });
    } finally {
      await certs.close();
    }
    const states = published.map((s) => s.state);
    expect(states).toContain('banned');
    const ban = published.find((s) => s.state === 'banned');
    expect(ban?.reason).toMatch(/PCR 10/);
    expect(ban?.validUntil).toBeUndefined();
    expect(ban?.certificate).toBeUndefined();
    expect(calls.forget).toBe(2);
    expect(lines.filter((l) => l.msg === 'attestation refused')[0]?.obj).toMatchObject({ banned: true, keyDeleted: true, certRemoved: true, type: 'NodeBanned' });
    // While banned no key is bound; recovery makes a new key and attests again with it before the CSR.
    const binding = (h: string | undefined) => `{"keyhold.node-key":{"spki-sha256":"${h}"}}`;
    expect(certs.key?.spkiSha256).not.toBe(firstKey);
    expect(calls.bound.slice(0, 3)).toEqual([binding(firstKey), '', binding(certs.key?.spkiSha256)]);
    expect(lines.some((l) => l.msg.startsWith('new node key made'))).toBe(true);
    expect(published.at(-2)).toMatchObject({ state: 'attested', attested: true, certificate: { serial: '02' } });
    expect(await exists(join(dir, 'cert.pem'))).toBe(true);
  });

  it('a refused certificate request (401/403) also drops the token and the certificate', async () => {
    const ca = await createTestCa();
    const dir = join(root, 'cert-refused');
    const certs = await NodeCertificates.open({ dir, deleteKeyOnBan: true });
    const c = clock(2);
    let n = 0;
    const { kbs, calls } = fakeKbs(['ok'], ca, c.now, () => certs, () => (++n === 2 ? new KbsClientError('UNAUTHORIZED', 'token expired (TokenVerifierError)', { status: 401, errorType: 'TokenVerifierError' }) : 'ok'));
    const published: AttestationStatus[] = [];
    try {
      // Certificates of 90 s at a 60 s interval: the second cycle renews, and that request is refused.
      await runDaemon({ intervalMs: 60_000, kbs, certs, log: silent, publish: async (s) => void published.push(s), signal: c.signal, now: c.now, sleep: c.sleep, random: () => 0.5 });
    } finally {
      await certs.close();
    }
    expect(calls.forget).toBe(1);
    const refused = published.find((s) => s.state === 'refused');
    expect(refused).toMatchObject({ attested: false, reason: expect.stringMatching(/TokenVerifierError/) });
    expect(await exists(join(dir, 'cert.pem'))).toBe(false);
    // Not a ban: the key stays.
    expect(await exists(join(dir, 'key.pem'))).toBe(true);
  });

  it('backs off on errors, stays attested only until the token expires, and says so when it does', async () => {
    const ca = await createTestCa();
    const c = clock(12);
    const down = new KbsClientError('KBS_UNREACHABLE', 'connect ECONNREFUSED');
    const { kbs } = fakeKbs(['ok', down, down, down, down, down, down, down, down, down, down, down], ca, c.now);
    const published: AttestationStatus[] = [];
    const { log, lines } = recorder();
    await runDaemon({ intervalMs: 60_000, kbs, log, publish: async (s) => void published.push(s), signal: c.signal, now: c.now, sleep: c.sleep, random: () => 0.5 });
    // 60 s, then 1, 2, 4, ... s; the 300 s token expires during the 64 s wait, which is split there.
    expect(c.slept.slice(0, 8)).toEqual([60_000, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000]);
    const expiredAt = published.findIndex((s) => s.state === 'error' && !s.attested);
    expect(expiredAt).toBeGreaterThan(0);
    expect(published.slice(0, expiredAt).filter((s) => s.state === 'error').every((s) => s.attested)).toBe(true);
    expect(lines.some((l) => l.msg === 'token expired before a new attestation: not attested')).toBe(true);
    expect(lines.filter((l) => l.msg === 'attestation failed').at(-1)?.obj).toMatchObject({ code: 'KBS_UNREACHABLE' });
  });

  it('a restart keeps a certificate that is still fresh for the same key (shown at once, not re-requested)', async () => {
    const ca = await createTestCa();
    const dir = join(root, 'restart');
    for (const expectCsr of [1, 0]) {
      const certs = await NodeCertificates.open({ dir, deleteKeyOnBan: false });
      const c = clock(1);
      const { kbs, calls } = fakeKbs(['ok'], ca, c.now, () => certs);
      const published: AttestationStatus[] = [];
      try {
        await runDaemon({ intervalMs: 10_000, kbs, certs, log: silent, publish: async (s) => void published.push(s), signal: c.signal, now: c.now, sleep: c.sleep, random: () => 0.5 });
      } finally {
        await certs.close();
      }
      expect(calls.csr).toBe(expectCsr);
      if (expectCsr === 0) expect(published[0]).toMatchObject({ state: 'starting', certificate: { serial: '01' } });
    }
  });
});
