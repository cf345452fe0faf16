// `[policy] max_*` reach the KBS's policy engine: a policy the configured limits refuse is refused
// at upload, one the defaults accept is accepted (through openOwnerServices, as main wires it).
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { openMemoryState } from '../state/index.js';
import type { KbsState } from '../state/ports.js';
import { ownerConfigFrom } from './owner-config.js';
import { openOwnerServices } from './open-owner-services.js';
import { policyLimitsFrom } from './policy-limits-config.js';

const states: KbsState[] = [];
afterAll(async () => {
  for (const s of states) await s.close();
});

async function engineWith(limits: Parameters<typeof policyLimitsFrom>[0]) {
  const state = await openMemoryState({ sessionLimits: { maxSessions: 10, maxSessionBytes: 1 << 20 } });
  states.push(state);
  const opened = await openOwnerServices(ownerConfigFrom({}, '/nonexistent', { insecureAdminAllowAll: false }), { state, adminPublicKeyFile: undefined, logger: pino({ level: 'silent' }), policyLimits: policyLimitsFrom(limits) });
  return opened.services.policies!;
}

const doc = { id: 'p', type: 'cel', kind: 'resource', rule: 'ear.status == "affirming" && [1, 2, 3].all(x, x > 0) && [4, 5].exists(y, y == 5)' };

describe('[policy] cost limits reach the engine', () => {
  it('the default limits accept the policy', async () => {
    await expect((await engineWith(undefined)).putResourcePolicy(doc)).resolves.toBeDefined();
  });

  // SECURITY negative test: an operator's tighter bound is enforced at upload.
  it('max_evaluation_cost and max_comprehension_nesting, when set lower, refuse it at upload', async () => {
    const bomb = { ...doc, rule: '[1, 2, 3, 4, 5, 6, 7, 8].all(a, [1, 2, 3, 4, 5, 6, 7, 8].all(b, [1, 2, 3, 4, 5, 6, 7, 8].all(c, a + b + c > 0)))' };
    await expect((await engineWith(undefined)).putResourcePolicy(bomb)).resolves.toBeDefined();
    await expect((await engineWith({ max_comprehension_nesting: 2 })).putResourcePolicy(bomb)).rejects.toThrow(/nest/i);
    await expect((await engineWith({ max_evaluation_cost: 50 })).putResourcePolicy(bomb)).rejects.toThrow(/cost/i);
  });

  it('limits too tight for the built-in policies are a config error, not a start-up crash', () => {
    expect(() => policyLimitsFrom({ max_ast_nodes: 8 })).toThrow(/too tight for the built-in default policies/);
  });
});
