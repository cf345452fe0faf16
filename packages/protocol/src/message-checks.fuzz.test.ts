import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ProtocolError } from './errors.js';
import { checkAttestation, checkKbsRequest, checkTeePubkey } from './message-checks.js';
import { AttestationSchema, RequestSchema, TeePubkeySchema } from './messages.js';

/**
 * Differential fuzz properties: the hand-written hot-path checks (message-checks.ts) accept exactly
 * the JSON the zod schemas accept and return equal values (same members, same order), and refuse
 * everything else with a ProtocolError naming a member. Inputs are JSON values built around valid
 * messages: members dropped, retyped, added, or replaced by arbitrary JSON, so both acceptance and
 * every kind of refusal are reached. The unit run does 200 cases per property (`pnpm fuzz` runs more).
 */

const RUNS = { numRuns: 200 };

const anyJson = fc.jsonValue({ maxDepth: 3 });
const b64u = fc.stringMatching(/^[A-Za-z0-9_-]{0,8}$/);
const almost = <T>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 3, arbitrary: valid }, { weight: 1, arbitrary: anyJson });

const ecKey = fc.record(
  { kty: fc.constantFrom('EC', 'RSA', 'ec'), crv: almost(fc.constantFrom('P-256', 'P-384', 'P-521', 'P-192')), alg: almost(fc.constantFrom('ECDH-ES+A256KW', 'RSA1_5')), x: almost(b64u), y: almost(b64u), d: b64u, extra: anyJson },
  { requiredKeys: ['kty', 'crv', 'x', 'y'] },
);
const rsaKey = fc.record({ kty: fc.constantFrom('RSA', 'EC'), alg: almost(fc.constant('RSA-OAEP-256')), n: almost(b64u), e: almost(b64u), p: b64u }, { requiredKeys: ['kty', 'n', 'e'] });
const validTeeKey = fc.oneof(
  fc.record({ kty: fc.constant('EC'), crv: fc.constantFrom('P-256', 'P-384', 'P-521'), alg: fc.string({ maxLength: 16 }), x: b64u.filter((x) => x !== ''), y: b64u.filter((x) => x !== '') }, { requiredKeys: ['kty', 'crv', 'x', 'y'] }),
  fc.record({ kty: fc.constant('RSA'), alg: fc.string({ maxLength: 16 }), n: b64u.filter((x) => x !== ''), e: b64u.filter((x) => x !== '') }, { requiredKeys: ['kty', 'n', 'e'] }),
);
const teeKey = fc.oneof({ weight: 4, arbitrary: validTeeKey }, ecKey, rsaKey, anyJson);

const request = fc.record(
  {
    version: almost(fc.constantFrom('0.4.0', '0.1.0')),
    tee: almost(fc.constantFrom('tpm', 'sample')),
    'extra-params': fc.oneof(fc.string(), fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), fc.constant('__proto__')), anyJson, { maxKeys: 4 }), anyJson),
    other: anyJson,
  },
  { requiredKeys: [] },
);

/** Mostly well-formed members (each may still be refused), sometimes missing or arbitrary. */
const attestationMembers = {
  'init-data': fc.oneof(fc.constant(null), fc.record({ format: almost(fc.constant('toml')), body: almost(fc.string()), more: anyJson }, { requiredKeys: [] }), anyJson),
  'runtime-data': almost(fc.record({ nonce: almost(fc.string()), 'tee-pubkey': teeKey, more: anyJson }, { requiredKeys: ['nonce', 'tee-pubkey'] })),
  'tee-evidence': almost(fc.record({ primary_evidence: anyJson, additional_evidence: almost(fc.string()), more: anyJson }, { requiredKeys: ['primary_evidence'] })),
  other: anyJson,
};
const attestation = fc.oneof(
  { weight: 3, arbitrary: fc.record(attestationMembers, { requiredKeys: ['runtime-data', 'tee-evidence'] }) },
  { weight: 1, arbitrary: fc.record(attestationMembers, { requiredKeys: [] }) },
);

/** Same verdict and same value: key order included (JSON.stringify), `undefined` members never. */
function agrees(check: (v: unknown) => unknown, schema: { safeParse(v: unknown): { success: boolean; data?: unknown } }, input: unknown): void {
  // Both sides see the value JSON.parse would give them (what the KBS validates).
  const json: unknown = JSON.parse(JSON.stringify(input) ?? 'null');
  const expected = schema.safeParse(json);
  let got: unknown;
  let error: unknown;
  try {
    got = check(json);
  } catch (err) {
    error = err;
  }
  if (expected.success) {
    expect(error).toBeUndefined();
    expect(JSON.stringify(got)).toBe(JSON.stringify(expected.data));
    expect(got).toEqual(expected.data);
  } else {
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe('PROTOCOL_MALFORMED');
    expect((error as Error).message).toMatch(/^[A-Za-z_.-]+: expected /);
  }
}

describe('hot-path message checks agree with the zod schemas', () => {
  it('Request (/auth)', () => {
    fc.assert(fc.property(fc.oneof({ weight: 4, arbitrary: request }, { weight: 1, arbitrary: anyJson }), (v) => agrees(checkKbsRequest, RequestSchema, v)), RUNS);
  });

  it('Attestation (/attest)', () => {
    fc.assert(fc.property(fc.oneof({ weight: 6, arbitrary: attestation }, { weight: 1, arbitrary: anyJson }), (v) => agrees(checkAttestation, AttestationSchema, v)), RUNS);
  });

  it('tee public key', () => {
    fc.assert(
      fc.property(teeKey, (v) => {
        const json: unknown = JSON.parse(JSON.stringify(v) ?? 'null');
        const expected = TeePubkeySchema.safeParse(json);
        const got = checkTeePubkey(json);
        expect(got === undefined).toBe(!expected.success);
        if (expected.success) expect(JSON.stringify(got)).toBe(JSON.stringify(expected.data));
      }),
      { numRuns: 400 },
    );
  });

  it('reach both verdicts (the generators are not one-sided)', () => {
    const outcomes = fc.sample(attestation, { numRuns: 400, seed: 7 }).map((v) => AttestationSchema.safeParse(JSON.parse(JSON.stringify(v))).success);
    expect(outcomes.filter(Boolean).length).toBeGreaterThan(10);
    expect(outcomes.filter((x) => !x).length).toBeGreaterThan(10);
  });

  it('refuse what the schemas refuse, naming the member (examples)', () => {
    // SECURITY: a private member in the tee key is refused (key confusion), not stripped.
    expect(checkTeePubkey({ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA', d: 'AA' })).toBeUndefined();
    expect(() => checkAttestation({ 'runtime-data': { nonce: 1 } })).toThrow(/^runtime-data\.nonce: expected a string$/);
    expect(() => checkAttestation({ 'runtime-data': { nonce: 'n', 'tee-pubkey': { kty: 'oct' } }, 'tee-evidence': {} })).toThrow(/^runtime-data\.tee-pubkey: /);
    expect(() => checkAttestation({ 'runtime-data': { nonce: 'n', 'tee-pubkey': { kty: 'RSA', n: 'AQ', e: 'AQ' } }, 'tee-evidence': {} })).toThrow(/^tee-evidence\.primary_evidence: /);
    expect(() => checkKbsRequest([])).toThrow(/^body: expected an object$/);
    // SECURITY: `__proto__` in extra-params stays data (prototype pollution).
    const r = checkKbsRequest(JSON.parse('{"version":"0.4.0","tee":"tpm","extra-params":{"__proto__":{"polluted":1},"a":1}}'));
    expect(Object.getPrototypeOf(r['extra-params'])).toBe(Object.prototype);
    expect(r['extra-params']).toEqual({ a: 1 });
  });
});
