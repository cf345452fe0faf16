/**
 * Phase marks of one agent command (bench/time-to-secret.bench.ts subscribes and timestamps them):
 * published on the `keyhold:agent:phase` diagnostics channel, each naming the phase that just ended.
 * Nothing is published, timed or kept when nobody subscribes.
 */
import { channel } from 'node:diagnostics_channel';

/** The channel's name; `bin/keyhold-agent.js` publishes its own loader marks on it too. */
export const PHASE_CHANNEL = 'keyhold:agent:phase';

const phases = channel(PHASE_CHANNEL);

/** Mark the end of a phase (`koffi`, `esys`, `attest`, ...). */
export function markPhase(name: string): void {
  if (phases.hasSubscribers) phases.publish(name);
}
