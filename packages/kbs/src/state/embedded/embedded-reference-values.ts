import { readFile, stat } from 'node:fs/promises';
import { writeFileAtomic } from '@keyhold/atomic-file';
import { KbsError } from '../../errors.js';
import { StateError } from '../errors.js';
import type { ReferenceSnapshot, ReferenceValueState } from '../ports.js';
import { checkReferenceEntries, checkReferenceName, decodeStoredReference, MAX_REFERENCE_TOTAL_CHARS, referenceSnapshot } from '../reference-values.js';

type Op = { readonly kind: 'set'; readonly entries: ReadonlyMap<string, readonly string[]> } | { readonly kind: 'delete'; readonly name: string };

interface Pending {
  readonly op: Op;
  readonly resolve: (changed: boolean) => void;
  readonly reject: (e: unknown) => void;
}

/** Characters one name takes in the JSON file. */
function entryChars(name: string, values: readonly string[]): number {
  return JSON.stringify(name).length + JSON.stringify(values).length + 2;
}

/**
 * Reference values of one process, in `reference-values.json` (`{name: [values]}`, the format the
 * KBS always used) or in memory. Mutations queue; each batch is applied in call order to the
 * committed map (never to a copy taken before an earlier write finished), written once atomically
 * (temp, fsync, rename, fsync dir), and committed only when durable. A snapshot is immutable and
 * costs nothing to take.
 */
export class EmbeddedReferenceValues implements ReferenceValueState {
  readonly #file: string | undefined;
  #values: ReadonlyMap<string, readonly string[]>;
  /** Characters of the JSON file (approximately: names and values). */
  #chars: number;
  #snapshot: ReferenceSnapshot;
  #pending: Pending[] = [];
  #draining = false;

  private constructor(file: string | undefined, values: Map<string, readonly string[]>) {
    this.#file = file;
    this.#values = values;
    this.#chars = [...values].reduce((n, [k, v]) => n + entryChars(k, v), 2);
    this.#snapshot = referenceSnapshot(1, values);
  }

  static async open(file: string | undefined): Promise<EmbeddedReferenceValues> {
    return new EmbeddedReferenceValues(file, file === undefined ? new Map() : await load(file));
  }

  async snapshot(): Promise<ReferenceSnapshot> {
    return this.#snapshot;
  }

  async set(entries: Readonly<Record<string, readonly string[]>>): Promise<void> {
    const checked = checkReferenceEntries(entries);
    if (checked.size === 0) return;
    await this.#mutate({ kind: 'set', entries: checked });
  }

  async delete(name: string): Promise<boolean> {
    checkReferenceName(name);
    return this.#mutate({ kind: 'delete', name });
  }

  #mutate(op: Op): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#pending.push({ op, resolve, reject });
      if (!this.#draining) {
        this.#draining = true;
        void this.#drain();
      }
    });
  }

  async #drain(): Promise<void> {
    await Promise.resolve();
    while (this.#pending.length > 0) {
      const batch = this.#pending;
      this.#pending = [];
      // Every mutation of the batch applies to the committed state, in call order.
      const next = new Map(this.#values);
      let chars = this.#chars;
      const results = batch.map(({ op }): boolean | KbsError => {
        if (op.kind === 'delete') {
          const prev = next.get(op.name);
          if (prev === undefined) return false;
          chars -= entryChars(op.name, prev);
          next.delete(op.name);
          return true;
        }
        let after = chars;
        for (const [k, v] of op.entries) {
          const prev = next.get(k);
          after += entryChars(k, v) - (prev === undefined ? 0 : entryChars(k, prev));
        }
        // SECURITY: the stored total stays under the bound the loader enforces, so an accepted
        // write can never make the next start fail (resource exhaustion / self-inflicted outage).
        if (after > MAX_REFERENCE_TOTAL_CHARS) return new KbsError('PAYLOAD_TOO_LARGE', 'reference values would exceed 64 MiB in total');
        for (const [k, v] of op.entries) next.set(k, v);
        chars = after;
        return true;
      });
      const changed = results.some((r) => r === true);
      try {
        if (changed && this.#file !== undefined) {
          const json = JSON.stringify(Object.fromEntries(next));
          await writeFileAtomic(this.#file, json);
        }
      } catch (cause) {
        const err = new StateError('STATE_UNAVAILABLE', 'reference values cannot be written', { cause });
        for (const op of batch) op.reject(err);
        continue;
      }
      if (changed) {
        this.#values = next;
        this.#chars = chars;
        this.#snapshot = referenceSnapshot(this.#snapshot.version + 1, next);
      }
      batch.forEach((p, i) => {
        const r = results[i]!;
        if (r instanceof KbsError) p.reject(r);
        else p.resolve(r);
      });
    }
    this.#draining = false;
  }
}

async function load(file: string): Promise<Map<string, readonly string[]>> {
  let text: string;
  try {
    // SECURITY: size checked before reading (a planted huge file cannot exhaust memory at start).
    if ((await stat(file)).size > MAX_REFERENCE_TOTAL_CHARS) throw new StateError('STATE_CORRUPT', 'reference-values.json is too large');
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof StateError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw new StateError('STATE_UNAVAILABLE', 'reference-values.json cannot be read', { cause: err });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new StateError('STATE_CORRUPT', 'reference-values.json is not JSON', { cause });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new StateError('STATE_CORRUPT', 'reference-values.json is not an object');
  const out = new Map<string, readonly string[]>();
  for (const [k, v] of Object.entries(parsed)) out.set(k, decodeStoredReference(k, v));
  return out;
}
