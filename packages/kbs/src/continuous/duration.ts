import ms from 'ms';
import { z } from 'zod';

/** A duration in config: `"60s"`, `"1h"`, `"500ms"` (the `ms` package's grammar) or a number of milliseconds. */
export const DURATION = z.union([z.string().min(1).max(32), z.number().int().positive()]);

/** Milliseconds of a configured duration; throws an operator-readable Error naming `key`. */
export function durationMs(value: string | number, key: string, bounds: { readonly minMs: number; readonly maxMs: number }): number {
  const v = typeof value === 'number' ? value : (ms(value as ms.StringValue) as number | undefined);
  if (typeof v !== 'number' || !Number.isFinite(v) || !Number.isInteger(v)) throw new Error(`${key} must be a duration like "60s", "5m" or "1h" (got ${JSON.stringify(value).slice(0, 40)})`);
  if (v < bounds.minMs || v > bounds.maxMs) throw new Error(`${key} must be between ${ms(bounds.minMs, { long: true })} and ${ms(bounds.maxMs, { long: true })}`);
  return v;
}
