import type { Context } from 'hono';
import type { KbsEnv } from '../app-env.js';
import type { EmittedEvent } from './event-publisher.js';

/** Queue an event for the admin stream and webhooks; never blocks, throws or fails the request. */
export function emitEvent(c: Context<KbsEnv>, event: EmittedEvent): void {
  c.get('deps').continuous?.events?.emit(event);
}
