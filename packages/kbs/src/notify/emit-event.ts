import { depsOf, type ScopeSource } from '../request-scope.js';
import type { EmittedEvent } from './event-publisher.js';

/** Queue an event for the admin stream and webhooks; never blocks, throws or fails the request. */
export function emitEvent(source: ScopeSource, event: EmittedEvent): void {
  depsOf(source).continuous?.events?.emit(event);
}
