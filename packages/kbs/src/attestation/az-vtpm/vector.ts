import type { TrustworthinessVector } from '../../token/ear-claims.js';

/** AR4SI tier of a claim value: 0 none, 1 affirming (2..31), 2 warning (32..95), 3 contraindicated (96..127). */
function tier(v: number): number {
  return v >= 96 ? 3 : v >= 32 ? 2 : v >= 2 ? 1 : 0;
}

/** Merge `add` into `into`: per claim the worse value (higher tier; within a tier the higher value) wins. */
export function worseVector(into: Partial<TrustworthinessVector>, add: Partial<TrustworthinessVector>): void {
  for (const [k, v] of Object.entries(add) as [keyof TrustworthinessVector, number][]) {
    const cur = into[k];
    into[k] = cur === undefined ? v : tier(v) > tier(cur) || (tier(v) === tier(cur) && v > cur) ? v : cur;
  }
}
