import type { ResourcePath } from '@keyhold/protocol';
import type { NodeSession } from '../node-session.js';
import type { KekSource } from './unwrap-service.js';

/** A {@link KekSource} over a node session opened on first use and kept until `close()`. */
export interface NodeKekSource extends KekSource {
  /** Whether a session was opened (the TPM was touched). */
  readonly opened: boolean;
  close(): Promise<void>;
}

/**
 * Fetch KEKs through the node's KBS client. The session (TPM, AK, KBS client with its cached
 * token) is opened lazily, so commands that need no KEK never touch the TPM; a failed open is
 * retried on the next call. Concurrent first calls share one open.
 */
export function nodeKekSource(open: () => Promise<NodeSession>): NodeKekSource {
  let session: Promise<NodeSession> | undefined;
  let opened = false;
  const get = (): Promise<NodeSession> => {
    session ??= open().then(
      (s) => {
        opened = true;
        return s;
      },
      (err: unknown) => {
        session = undefined;
        throw err;
      },
    );
    return session;
  };
  return {
    get opened() {
      return opened;
    },
    async getResource(path: ResourcePath, opts: { version?: number } = {}) {
      return (await get()).client.getResource(path, opts);
    },
    async close() {
      const s = session;
      session = undefined;
      if (s !== undefined) await (await s.catch(() => undefined))?.close();
    },
  };
}
