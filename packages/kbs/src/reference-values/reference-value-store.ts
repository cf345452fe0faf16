import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { KbsError } from '../errors.js';
import { writeFileAtomic } from '../storage/atomic-file.js';

/** Trustee RVPS message: `{"version":"0.1.0","type":"sample","payload":"<base64 JSON {name:[values]}>"}`. */
export const RvpsMessageSchema = z.object({
  version: z.literal('0.1.0'),
  type: z.literal('sample'),
  payload: z.string().max(4 * 1024 * 1024),
});

const PayloadSchema = z.record(z.string().min(1).max(256), z.array(z.string().max(64 * 1024)).max(100_000));

/** Decode the sample RVPS payload (standard base64 of a JSON object, or the JSON itself). */
export function decodeRvpsPayload(payload: string): Record<string, string[]> {
  const text = payload.trimStart().startsWith('{') ? payload : Buffer.from(payload, 'base64').toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new KbsError('BAD_REQUEST', 'reference-value payload is not base64 of a JSON object', { cause });
  }
  const parsed = PayloadSchema.safeParse(json);
  if (!parsed.success) throw new KbsError('BAD_REQUEST', 'reference-value payload must map names to lists of strings');
  return parsed.data;
}

/** Reference values (name → list of accepted values), kept in one JSON file in the data dir. */
export class ReferenceValueStore {
  readonly #path: string | undefined;
  #values = new Map<string, readonly string[]>();
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string | undefined) {
    this.#path = path;
  }

  /** In-memory only (tests); `open(file)` persists. */
  static inMemory(): ReferenceValueStore {
    return new ReferenceValueStore(undefined);
  }

  static async open(path: string): Promise<ReferenceValueStore> {
    const s = new ReferenceValueStore(path);
    try {
      const text = await readFile(path, 'utf8');
      const parsed = PayloadSchema.parse(JSON.parse(text));
      s.#values = new Map(Object.entries(parsed));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return s;
  }

  get(name: string): readonly string[] | undefined {
    return this.#values.get(name);
  }

  all(): Record<string, readonly string[]> {
    return Object.fromEntries(this.#values);
  }

  /** Replace the values of every name in `entries`; other names keep theirs. */
  async set(entries: Record<string, string[]>): Promise<void> {
    const next = new Map(this.#values);
    for (const [k, v] of Object.entries(entries)) next.set(k, Object.freeze([...v]));
    await this.#persist(next);
    this.#values = next;
  }

  async delete(name: string): Promise<boolean> {
    if (!this.#values.has(name)) return false;
    const next = new Map(this.#values);
    next.delete(name);
    await this.#persist(next);
    this.#values = next;
    return true;
  }

  async #persist(next: Map<string, readonly string[]>): Promise<void> {
    if (this.#path === undefined) return;
    const path = this.#path;
    const run = this.#writing.then(() => writeFileAtomic(path, JSON.stringify(Object.fromEntries(next))));
    this.#writing = run.catch(() => undefined);
    await run;
  }
}
