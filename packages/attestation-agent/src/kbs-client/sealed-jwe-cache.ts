/**
 * Sealed secret cache (`--cache-dir`, off by default): released JWEs kept on disk with the
 * TPM-resident key they are wrapped to, so a node can restart its workloads without the KBS. The
 * entries are useless off this TPM (the key's private blob is wrapped by its SRK), and with a
 * PCR-sealed key they decrypt only while the sealed PCRs still hold their values: after a change
 * the entry no longer opens and the agent goes back to the KBS, which appraises the new state.
 *
 * One file per resource (`<sha256 of the request path>.json`, mode 0600, written atomically, in a
 * 0700 directory): `{"version":1,"resource":path,"jwe":{...},"key":{"alg","tpm2b_public",
 * "tpm2b_private","sealed_pcrs"}}`. The directory must be private to the agent, like its state
 * directory: whoever can write there can plant entries.
 */
import { createHash } from 'node:crypto';
import { mkdir, open } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { ResourceResponseSchema, type ResourceResponse } from '@keyhold/protocol';
import { AgentError } from '../errors.js';
import { writeFileAtomic } from '@keyhold/atomic-file';
import type { TeeKey } from './tee-key.js';
import { TpmTeeKey, type TpmTeeKeySource } from './tpm-tee-key.js';

/** Released resources kept between runs. */
export interface ResourceCache {
  /** The plaintext of the entry for `resource`, or undefined when there is none or it no longer decrypts. */
  read(resource: string): Promise<Uint8Array | undefined>;
  /** Keep `jwe` (wrapped to `teeKey`) as the entry for `resource`. */
  write(resource: string, jwe: ResourceResponse, teeKey: TeeKey): Promise<void>;
}

/** Largest entry read back (a resource of a few MiB, base64url-encoded in a JWE). */
const MAX_ENTRY_BYTES = 16 * 1024 * 1024;
const ENTRY_VERSION = 1;

interface Entry {
  version: number;
  resource: string;
  jwe: ResourceResponse;
  key: { alg: 'rsa' | 'ecc'; tpm2b_public: string; tpm2b_private: string; sealed_pcrs: number[] };
}

const cacheError = (msg: string, cause?: unknown): AgentError => new AgentError('CACHE_FAILED', msg, cause === undefined ? undefined : { cause });

function base64(v: unknown, what: string): Uint8Array {
  if (typeof v !== 'string' || Buffer.from(v, 'base64').toString('base64') !== v) throw cacheError(`cache entry: ${what} is not base64`);
  return new Uint8Array(Buffer.from(v, 'base64'));
}

function validPcrList(v: unknown): boolean {
  return Array.isArray(v) && v.length <= 24 && new Set(v).size === v.length && v.every((i) => Number.isInteger(i) && (i as number) >= 0 && (i as number) < 24);
}

export class SealedJweCache implements ResourceCache {
  readonly #dir: string;
  readonly #keys: TpmTeeKeySource;

  /** `dir` (absolute) is created 0700 on first write; `keys` restores TPM tee keys on this TPM. */
  constructor(opts: { dir: string; keys: TpmTeeKeySource }) {
    if (!isAbsolute(opts.dir)) throw new TypeError('cache dir must be an absolute path');
    this.#dir = opts.dir;
    this.#keys = opts.keys;
  }

  #file(resource: string): string {
    return join(this.#dir, `${createHash('sha256').update(resource).digest('hex')}.json`);
  }

  /**
   * Decrypt the entry for `resource`. Throws TPM_POLICY_FAILED when its key is sealed to PCR values
   * that no longer hold, CACHE_FAILED for a missing or malformed entry, other TPM errors as they come.
   */
  async open(resource: string): Promise<Uint8Array> {
    const entry = await this.#load(resource);
    const key = this.#keys.restore({
      blob: { publicArea: base64(entry.key.tpm2b_public, 'key.tpm2b_public'), privateBlob: base64(entry.key.tpm2b_private, 'key.tpm2b_private') },
      sealedPcrs: entry.key.sealed_pcrs,
    });
    return key.decrypt(entry.jwe);
  }

  async read(resource: string): Promise<Uint8Array | undefined> {
    try {
      return await this.open(resource);
    } catch {
      // No entry, a changed PCR state (sealed key), a corrupt file: the KBS decides again.
      return undefined;
    }
  }

  async write(resource: string, jwe: ResourceResponse, teeKey: TeeKey): Promise<void> {
    // Programmer misuse: only TPM-resident keys can be kept (a software key would have to be written to disk).
    if (!(teeKey instanceof TpmTeeKey)) throw new TypeError('the sealed JWE cache needs a TPM-resident tee key');
    const { blob, sealedPcrs } = teeKey.stored;
    const entry: Entry = {
      version: ENTRY_VERSION,
      resource,
      jwe,
      key: {
        alg: teeKey.publicJwk.kty === 'RSA' ? 'rsa' : 'ecc',
        tpm2b_public: Buffer.from(blob.publicArea).toString('base64'),
        tpm2b_private: Buffer.from(blob.privateBlob).toString('base64'),
        sealed_pcrs: [...sealedPcrs],
      },
    };
    try {
      await mkdir(this.#dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.#file(resource), JSON.stringify(entry), 0o600);
    } catch (err) {
      throw cacheError(`cannot write the cache entry in ${this.#dir}`, err);
    }
  }

  async #load(resource: string): Promise<Entry> {
    let text: string;
    try {
      const fh = await open(this.#file(resource), 'r');
      try {
        // SECURITY: a huge file in the cache directory must not exhaust memory; read a bounded amount.
        const size = (await fh.stat()).size;
        if (size > MAX_ENTRY_BYTES) throw cacheError('cache entry is too large');
        text = (await fh.readFile()).toString('utf8');
      } finally {
        await fh.close();
      }
    } catch (err) {
      if (err instanceof AgentError) throw err;
      throw cacheError('no cache entry', err);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw cacheError('cache entry is not JSON', err);
    }
    const e = raw as Partial<Entry> | null;
    const key = e?.key;
    // SECURITY: a malformed or foreign entry (another resource's file renamed) is not used.
    if (e === null || typeof e !== 'object' || e.version !== ENTRY_VERSION || e.resource !== resource || key === undefined || key === null || typeof key !== 'object' || !validPcrList(key.sealed_pcrs)) {
      throw cacheError('cache entry is malformed or for another resource');
    }
    const jwe = ResourceResponseSchema.safeParse(e.jwe);
    if (!jwe.success) throw cacheError('cache entry holds no JWE');
    return { ...(e as Entry), jwe: jwe.data };
  }
}
