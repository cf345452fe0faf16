/**
 * The `[continuous]` section (issue 13), parsed once by config.ts:
 *   ban_on_failure   a failed appraisal of an active node bans it            default true
 *   interval         how often agents are expected to attest                 default "60s"
 *   stale_after      no successful attestation for this long: `stale`        default 3 × interval
 *   sweep_interval   how often one replica looks for newly stale nodes       default interval (≥ 1 s)
 *   event_retention  events kept in the state (the newest N)                 default 10 000
 * Durations use the `ms` grammar ("500ms", "60s", "5m", "1h") or a number of milliseconds.
 */
import { z } from 'zod';
import { DEFAULT_EVENT_RETENTION, MAX_EVENT_RETENTION } from '../state/event-record.js';
import { DURATION, durationMs } from './duration.js';

export const CONTINUOUS_CONFIG_FIELDS = {
  continuous: z
    .object({
      ban_on_failure: z.boolean().optional(),
      interval: DURATION.optional(),
      stale_after: DURATION.optional(),
      sweep_interval: DURATION.optional(),
      event_retention: z.number().int().min(100).max(MAX_EVENT_RETENTION).optional(),
    })
    .strict()
    .optional(),
};

export interface ContinuousSettings {
  /** Ban an active node on refused evidence (after its identity was proven) or a `contraindicated` verdict. */
  readonly banOnFailure: boolean;
  readonly intervalMs: number;
  /** A node without a successful (affirming) attestation for this long is `stale` (computed at read time). */
  readonly staleAfterMs: number;
  readonly sweepIntervalMs: number;
  readonly eventRetention: number;
}

const DAY = 24 * 3600_000;

/** The settings a KBS uses when nothing is configured (also for in-process apps without them). */
export const DEFAULT_CONTINUOUS: ContinuousSettings = Object.freeze({
  banOnFailure: true,
  intervalMs: 60_000,
  staleAfterMs: 180_000,
  sweepIntervalMs: 60_000,
  eventRetention: DEFAULT_EVENT_RETENTION,
});

type FileFields = z.infer<(typeof CONTINUOUS_CONFIG_FIELDS)['continuous']>;

export function continuousConfigFrom(file: FileFields | undefined): ContinuousSettings {
  const intervalMs = file?.interval === undefined ? DEFAULT_CONTINUOUS.intervalMs : durationMs(file.interval, '[continuous] interval', { minMs: 1000, maxMs: DAY });
  const staleAfterMs = file?.stale_after === undefined ? 3 * intervalMs : durationMs(file.stale_after, '[continuous] stale_after', { minMs: 1000, maxMs: 30 * DAY });
  const sweepIntervalMs = file?.sweep_interval === undefined ? intervalMs : durationMs(file.sweep_interval, '[continuous] sweep_interval', { minMs: 1000, maxMs: DAY });
  return {
    banOnFailure: file?.ban_on_failure ?? true,
    intervalMs,
    staleAfterMs,
    sweepIntervalMs,
    eventRetention: file?.event_retention ?? DEFAULT_EVENT_RETENTION,
  };
}
