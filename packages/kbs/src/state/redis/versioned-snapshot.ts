import { corrupt, type RedisContext } from './redis-connection.js';

/**
 * A per-process snapshot of a Redis store kept behind its version counter (state rule 3: a cache
 * behind a version check): every read costs one GET of the counter, and the whole store is read
 * again only when the counter moved. Concurrent readers that saw the same new version share one
 * reload. Used by the reference values and the EK CA uploads.
 */
export class VersionedSnapshot<S extends { readonly version: number }> {
  readonly #ctx: RedisContext;
  readonly #versionKey: string;
  readonly #what: string;
  readonly #load: () => Promise<S>;
  #cached: S | undefined;
  #reload: { version: number; promise: Promise<S> } | undefined;

  /** `load` reads the whole store and its version in one script; `what` names it in errors. */
  constructor(ctx: RedisContext, versionKey: string, what: string, load: () => Promise<S>) {
    this.#ctx = ctx;
    this.#versionKey = versionKey;
    this.#what = what;
    this.#load = load;
  }

  async get(): Promise<S> {
    const raw = await this.#ctx.op(() => this.#ctx.client.get(this.#versionKey));
    const version = raw === null ? 0 : Number(raw);
    // SECURITY: a counter that is not a version is a damaged or tampered store: fail closed.
    if (!Number.isSafeInteger(version) || version < 0) throw corrupt(`${this.#what} version`);
    if (this.#cached?.version === version) return this.#cached;
    // Join a reload that started after the same version was seen: its read comes later, so it
    // returns that version or a newer one (every write we must observe is in it).
    if (this.#reload?.version !== version) {
      const promise = this.#loadAndKeep().finally(() => {
        if (this.#reload?.promise === promise) this.#reload = undefined;
      });
      this.#reload = { version, promise };
    }
    return this.#reload.promise;
  }

  async #loadAndKeep(): Promise<S> {
    const snap = await this.#load();
    // Keep the newest; version 0 means the store was emptied (Redis data lost): start over.
    if (this.#cached === undefined || snap.version >= this.#cached.version || snap.version === 0) this.#cached = snap;
    return snap;
  }
}
