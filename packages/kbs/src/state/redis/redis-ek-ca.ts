import type { CaStoreEntry } from '../../identity/ca-store.js';
import { IdentityStoreError } from '../../identity/errors.js';
import { caSnapshot, certificatePem, decodeCaUpload, isSha256Hex, MAX_CA_CERTIFICATES, uploadFileName, type CaCertificate } from '../ca-certificates.js';
import type { EkCaSnapshot, EkCaState } from '../ports.js';
import { corrupt, type RedisContext } from './redis-connection.js';
import { VersionedSnapshot } from './versioned-snapshot.js';
import { BUMP_VERSION, versionBase } from './version-counter.js';

/**
 * EK CA certificates: the configured directory (read by each replica at open) plus uploads under
 * `{P:ekca}`: `:c` HASH sha256 → PEM, `:ver` version (from a random base, as for reference values). Each process caches the parsed uploads with
 * their version; a snapshot costs one GET and certificates are parsed only when the version moved.
 */
/** KEYS c ver; ARGV max base sha1 pem1 ... Returns {version, addedShas} or {-1} beyond the cap. */
const ADD_LUA = `${BUMP_VERSION}
local added = {}
local n = redis.call('HLEN', KEYS[1])
for i = 3, #ARGV - 1, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then n = n + 1 end
end
if n > tonumber(ARGV[1]) then return {-1} end
for i = 3, #ARGV - 1, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then table.insert(added, ARGV[i]) end
end
local ver = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if #added > 0 then ver = bump(KEYS[2], ARGV[2]) end
return {ver, added}
`;

/** KEYS c ver; ARGV sha base. */
const REMOVE_LUA = `${BUMP_VERSION}
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
bump(KEYS[2], ARGV[2])
return 1
`;

const READ_LUA = `
return {tonumber(redis.call('GET', KEYS[2]) or '0') or 0, redis.call('HGETALL', KEYS[1])}
`;

interface Commands {
  khCaAdd(c: string, ver: string, max: number, base: string, ...pairs: string[]): Promise<[number, string[]?]>;
  khCaRemove(c: string, ver: string, sha: string, base: string): Promise<number>;
  khCaRead(c: string, ver: string): Promise<[number, string[]]>;
}

export class RedisEkCa implements EkCaState {
  readonly #ctx: RedisContext;
  readonly #client: Commands;
  readonly #c: string;
  readonly #ver: string;
  readonly #configured: ReadonlyMap<string, CaCertificate[]>;
  readonly #snapshot: VersionedSnapshot<EkCaSnapshot>;

  constructor(ctx: RedisContext, configured: ReadonlyMap<string, CaCertificate[]>) {
    this.#ctx = ctx;
    ctx.client.defineCommand('khCaAdd', { numberOfKeys: 2, lua: ADD_LUA });
    ctx.client.defineCommand('khCaRemove', { numberOfKeys: 2, lua: REMOVE_LUA });
    ctx.client.defineCommand('khCaRead', { numberOfKeys: 2, lua: READ_LUA });
    this.#client = ctx.client as unknown as Commands;
    const tag = ctx.tag('ekca');
    this.#c = `${tag}:c`;
    this.#ver = `${tag}:ver`;
    this.#snapshot = new VersionedSnapshot(ctx, this.#ver, 'EK CA', () => this.#load());
    this.#configured = configured;
  }

  snapshot(): Promise<EkCaSnapshot> {
    return this.#snapshot.get();
  }

  async #load(): Promise<EkCaSnapshot> {
    const [version, flat] = await this.#ctx.op(() => this.#client.khCaRead(this.#c, this.#ver));
    const files = new Map(this.#configured);
    for (let i = 0; i < flat.length; i += 2) {
      const sha = flat[i]!;
      let certs: CaCertificate[];
      try {
        certs = decodeCaUpload(new Uint8Array(Buffer.from(flat[i + 1]!, 'utf8')), 'stored upload');
      } catch (cause) {
        throw corrupt(`EK CA upload ${sha.slice(0, 64)}`, cause);
      }
      // SECURITY: an upload stored under another certificate's hash is tampering: fail closed.
      if (certs.length !== 1 || certs[0]!.sha256 !== sha) throw corrupt(`EK CA upload ${sha.slice(0, 64)} does not match its hash`);
      files.set(uploadFileName(sha), certs);
    }
    const snap = caSnapshot(Number(version), files);
    return snap;
  }

  async add(upload: Uint8Array): Promise<{ readonly added: readonly CaStoreEntry[]; readonly alreadyPresent: readonly CaStoreEntry[] }> {
    const certs = decodeCaUpload(upload, 'upload');
    const before = await this.snapshot();
    const present = new Map(before.entries.map((e) => [e.sha256, e]));
    const alreadyPresent: CaStoreEntry[] = [];
    const pairs: string[] = [];
    for (const c of certs) {
      const e = present.get(c.sha256);
      if (e !== undefined) alreadyPresent.push(e);
      else if (!pairs.includes(c.sha256)) pairs.push(c.sha256, certificatePem(c.certificate));
    }
    if (pairs.length === 0) return { added: [], alreadyPresent };
    const r = await this.#ctx.op(() => this.#client.khCaAdd(this.#c, this.#ver, MAX_CA_CERTIFICATES, versionBase(), ...pairs));
    // SECURITY: bounded, so uploads cannot grow the trust store (and every snapshot) without limit.
    if (r[0] === -1) throw new IdentityStoreError('CA_STORE_INVALID', `the EK CA store holds at most ${MAX_CA_CERTIFICATES} certificates`);
    const addedShas = new Set(r[1] ?? []);
    const after = new Map((await this.snapshot()).entries.map((e) => [e.sha256, e]));
    const added: CaStoreEntry[] = [];
    for (let i = 0; i < pairs.length; i += 2) {
      const e = after.get(pairs[i]!);
      if (e === undefined) continue;
      // In upload order; one added meanwhile by another replica counts as already present.
      if (addedShas.has(e.sha256)) added.push(e);
      else alreadyPresent.push(e);
    }
    return { added, alreadyPresent };
  }

  async remove(sha256: string): Promise<boolean> {
    const h = typeof sha256 === 'string' ? sha256.toLowerCase() : '';
    // SECURITY: only 64 hex characters reach the backend as a field name.
    if (!isSha256Hex(h)) throw new IdentityStoreError('CA_STORE_INVALID', 'certificate hash must be 64 hex characters');
    return (await this.#ctx.op(() => this.#client.khCaRemove(this.#c, this.#ver, h, versionBase()))) === 1;
  }

  /** Uploaded certificates (not the configured directory's). */
  async uploadCount(): Promise<number> {
    return this.#ctx.op(() => this.#ctx.client.hlen(this.#c));
  }
}
