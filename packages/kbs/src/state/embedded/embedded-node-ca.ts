import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '@keyhold/atomic-file';
import { StateError } from '../errors.js';
import { checkNodeCa, decodeStoredNodeCa, MAX_NODE_CA_CHARS } from '../node-ca-record.js';
import type { NodeCaState, StoredNodeCa } from '../ports.js';

/**
 * The generated node CA of one process: `node-ca.json` in the data dir (written atomically, mode
 * 0600; the private key in it is wrapped anyway), or memory only. The data dir's lock makes this
 * process the only writer, so create-if-absent needs no more than a serial queue.
 */
export class EmbeddedNodeCa implements NodeCaState {
  readonly #file: string | undefined;
  #ca: StoredNodeCa | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(file: string | undefined, ca: StoredNodeCa | undefined) {
    this.#file = file;
    this.#ca = ca;
  }

  static async open(file: string | undefined): Promise<EmbeddedNodeCa> {
    if (file === undefined) return new EmbeddedNodeCa(undefined, undefined);
    let text: string | undefined;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateError('STATE_UNAVAILABLE', 'node-ca.json cannot be read', { cause: err });
    }
    if (text !== undefined && text.length > MAX_NODE_CA_CHARS) throw new StateError('STATE_CORRUPT', 'node-ca.json is too large');
    return new EmbeddedNodeCa(file, text === undefined ? undefined : decodeStoredNodeCa(text));
  }

  async get(): Promise<StoredNodeCa | undefined> {
    return this.#ca;
  }

  createIfAbsent(ca: StoredNodeCa): Promise<StoredNodeCa> {
    let json: string;
    try {
      json = checkNodeCa(ca);
    } catch (err) {
      return Promise.reject(err);
    }
    const run = this.#tail.then(async () => {
      if (this.#ca !== undefined) return this.#ca;
      if (this.#file !== undefined) {
        try {
          await writeFileAtomic(this.#file, json, 0o600);
        } catch (cause) {
          throw new StateError('STATE_UNAVAILABLE', 'node-ca.json cannot be written', { cause });
        }
      }
      this.#ca = decodeStoredNodeCa(json);
      return this.#ca;
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }
}
