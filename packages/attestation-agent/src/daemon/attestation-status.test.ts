import { describe, expect, it } from 'vitest';
import { initialStatus, isAttested, onAttested, onError, onRefused, onStopped, statusAt, withCertificate } from './attestation-status.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const s = (n: number) => T0 + n * 1000;

describe('attestation status', () => {
  it('is not attested until a token is issued, and only while it is unexpired', () => {
    const start = initialStatus(T0);
    expect(start).toMatchObject({ attested: false, state: 'starting', consecutiveErrors: 0 });
    const ok = onAttested(start, s(1), { tokenExpiresAtMs: s(301), nodeId: 'ab'.repeat(32), earStatus: 'affirming' });
    expect(ok).toMatchObject({ attested: true, state: 'attested', since: new Date(s(1)).toISOString(), validUntil: new Date(s(301)).toISOString(), nodeId: 'ab'.repeat(32) });
    expect(isAttested(ok, s(300))).toBe(true);
    expect(isAttested(ok, s(301))).toBe(false);
    expect(statusAt(ok, s(400)).attested).toBe(false);
    expect(statusAt(ok, s(100))).toBe(ok);
    // A token that is already expired when it arrives does not count.
    expect(onAttested(start, s(10), { tokenExpiresAtMs: s(5) }).attested).toBe(false);
  });

  it('a refusal turns it false at once and forgets the token validity (spire#2700)', () => {
    const ok = onAttested(initialStatus(T0), s(1), { tokenExpiresAtMs: s(301) });
    const no = onRefused(ok, s(2), 'POLICY_DENY: PCR 10 differs (NodeBanned)', true);
    expect(no).toMatchObject({ attested: false, state: 'banned', reason: 'POLICY_DENY: PCR 10 differs (NodeBanned)' });
    expect(no.validUntil).toBeUndefined();
    expect(isAttested(no, s(3))).toBe(false);
    expect(onRefused(ok, s(2), 'x', false).state).toBe('refused');
    // Recovery clears the reason.
    const back = onAttested(no, s(5), { tokenExpiresAtMs: s(305) });
    expect(back.reason).toBeUndefined();
    expect(back).toMatchObject({ attested: true, state: 'attested' });
  });

  it('an error without an answer keeps the node attested only until its token expires; errors are counted', () => {
    const ok = onAttested(initialStatus(T0), s(1), { tokenExpiresAtMs: s(61) });
    const e1 = onError(ok, s(30), 'KBS_UNREACHABLE: ECONNREFUSED');
    expect(e1).toMatchObject({ attested: true, state: 'error', consecutiveErrors: 1 });
    const e2 = onError(e1, s(70), 'KBS_UNREACHABLE: ECONNREFUSED');
    expect(e2).toMatchObject({ attested: false, consecutiveErrors: 2, since: e1.since });
    expect(onError(initialStatus(T0), s(1), 'TPM').attested).toBe(false);
    expect(onAttested(e2, s(80), { tokenExpiresAtMs: s(140) }).consecutiveErrors).toBe(0);
  });

  it('stopped is never attested; the certificate is shown and replaced', () => {
    const ok = onAttested(initialStatus(T0), s(1), { tokenExpiresAtMs: s(301) });
    const withCert = withCertificate(ok, s(2), { serial: '0a', notAfter: 'x', renewAt: 'y' });
    expect(withCert.certificate?.serial).toBe('0a');
    expect(withCertificate(withCert, s(3), undefined).certificate).toBeUndefined();
    const stopped = onStopped(withCert, s(4));
    expect(stopped).toMatchObject({ attested: false, state: 'stopped' });
    expect(stopped.validUntil).toBeUndefined();
  });
});
