/**
 * Enrolment records: the AK → EK binding made after a successful credential activation.
 * node id = hex SHA-256 of the EK DER SPKI. A record is created only by the KBS after
 * activation succeeded; the owner can revoke it, and a revoked node stays revoked through later
 * attestations (re-enrolment of a revoked node throws NODE_REVOKED).
 */
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from './atomic-write.js';
import { IdentityStoreError } from './errors.js';
import { normaliseEkHash } from './ek-hash.js';

export interface EnrolmentRecord {
  /** Hex SHA-256 of the EK's DER SPKI. */
  readonly nodeId: string;
  /** Hex TPM name of the AK (nameAlg || digest); null for a node revoked before it ever enrolled. */
  readonly akName: string | null;
  /** ISO 8601. */
  readonly enrolledAt: string;
  readonly revoked: boolean;
  readonly revokedAt?: string;
  /** How the EK was trusted at enrolment. */
  readonly ekTrust?: 'ca' | 'allowlist' | 'ca+allowlist';
}

export interface EnrolmentStore {
  get(nodeId: string): Promise<EnrolmentRecord | undefined>;
  /**
   * Bind `akName` to the node (new node, or a changed AK after re-activation). Keeps nothing of an
   * earlier AK. Throws NODE_REVOKED if the node is revoked.
   */
  enrol(input: { nodeId: string; akName: string; now: Date; ekTrust?: EnrolmentRecord['ekTrust'] }): Promise<EnrolmentRecord>;
  /** Mark the node revoked (creating a revoked record if it never enrolled). */
  revoke(nodeId: string, now: Date): Promise<EnrolmentRecord>;
  /** Remove the record entirely (owner re-admits a node; it must re-activate). */
  remove(nodeId: string): Promise<boolean>;
  list(): Promise<EnrolmentRecord[]>;
}

const AK_NAME = /^[0-9a-f]{4}(?:[0-9a-f]{40}|[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$/;

const recordSchema = z.strictObject({
  nodeId: z.string().regex(/^[0-9a-f]{64}$/),
  akName: z.string().regex(AK_NAME).nullable(),
  enrolledAt: z.string(),
  revoked: z.boolean(),
  revokedAt: z.string().optional(),
  ekTrust: z.enum(['ca', 'allowlist', 'ca+allowlist']).optional(),
});

function checkAkName(akName: string): string {
  const n = typeof akName === 'string' ? akName.toLowerCase() : '';
  // SECURITY: only well-formed names (nameAlg || digest) are stored, so a record can never match
  // a different encoding of the same AK or smuggle other data into the store (TPM 2.0 Part 1 §16).
  if (!AK_NAME.test(n)) throw new TypeError('akName must be hex nameAlg || digest');
  return n;
}

function newRecord(prev: EnrolmentRecord | undefined, input: { nodeId: string; akName: string; now: Date; ekTrust?: EnrolmentRecord['ekTrust'] }): EnrolmentRecord {
  // SECURITY: a revoked node must not un-revoke itself by attesting again (issue 3: "after which
  // nothing is released to it").
  if (prev?.revoked) throw new IdentityStoreError('NODE_REVOKED', 'node is revoked');
  return {
    nodeId: normaliseEkHash(input.nodeId),
    akName: checkAkName(input.akName),
    enrolledAt: input.now.toISOString(),
    revoked: false,
    ...(input.ekTrust !== undefined ? { ekTrust: input.ekTrust } : {}),
  };
}

function revokedRecord(prev: EnrolmentRecord | undefined, nodeId: string, now: Date): EnrolmentRecord {
  if (prev?.revoked) return prev;
  const base: EnrolmentRecord = prev ?? { nodeId, akName: null, enrolledAt: now.toISOString(), revoked: false };
  return { ...base, nodeId, revoked: true, revokedAt: now.toISOString() };
}

export class MemoryEnrolmentStore implements EnrolmentStore {
  private readonly records = new Map<string, EnrolmentRecord>();

  async get(nodeId: string): Promise<EnrolmentRecord | undefined> {
    return this.records.get(normaliseEkHash(nodeId));
  }

  async enrol(input: { nodeId: string; akName: string; now: Date; ekTrust?: EnrolmentRecord['ekTrust'] }): Promise<EnrolmentRecord> {
    const id = normaliseEkHash(input.nodeId);
    const rec = newRecord(this.records.get(id), input);
    this.records.set(id, rec);
    return rec;
  }

  async revoke(nodeId: string, now: Date): Promise<EnrolmentRecord> {
    const id = normaliseEkHash(nodeId);
    const rec = revokedRecord(this.records.get(id), id, now);
    this.records.set(id, rec);
    return rec;
  }

  async remove(nodeId: string): Promise<boolean> {
    return this.records.delete(normaliseEkHash(nodeId));
  }

  async list(): Promise<EnrolmentRecord[]> {
    return [...this.records.values()].sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  }
}

/**
 * One JSON file per node at `<dir>/<first two hex>/<nodeId>.json`, written atomically
 * (temp + fsync + rename). Writes are serialised within this process; run one KBS per directory.
 * Any read error other than "no such file", or a record that fails its schema, fails closed.
 */
export class FileEnrolmentStore implements EnrolmentStore {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly dir: string) {
    if (typeof dir !== 'string' || !path.isAbsolute(dir)) throw new TypeError('enrolment directory must be an absolute path');
  }

  private file(id: string): string {
    return path.join(this.dir, id.slice(0, 2), `${id}.json`);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async read(id: string): Promise<EnrolmentRecord | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(id), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new IdentityStoreError('ENROLMENT_STORE_UNAVAILABLE', 'enrolment record cannot be read', { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new IdentityStoreError('ENROLMENT_STORE_UNAVAILABLE', 'enrolment record is corrupt', { cause: err });
    }
    const r = recordSchema.safeParse(parsed);
    // SECURITY: a corrupt or edited record (wrong node id, malformed AK name) must not be trusted
    // as a binding; fail closed so the node re-activates only after the owner repairs the store.
    if (!r.success || r.data.nodeId !== id) throw new IdentityStoreError('ENROLMENT_STORE_UNAVAILABLE', 'enrolment record is corrupt');
    return r.data as EnrolmentRecord;
  }

  private async write(rec: EnrolmentRecord): Promise<void> {
    try {
      await mkdir(path.dirname(this.file(rec.nodeId)), { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.file(rec.nodeId), `${JSON.stringify(rec)}\n`);
    } catch (err) {
      throw new IdentityStoreError('ENROLMENT_STORE_UNAVAILABLE', 'enrolment record cannot be written', { cause: err });
    }
  }

  async get(nodeId: string): Promise<EnrolmentRecord | undefined> {
    return this.read(normaliseEkHash(nodeId));
  }

  async enrol(input: { nodeId: string; akName: string; now: Date; ekTrust?: EnrolmentRecord['ekTrust'] }): Promise<EnrolmentRecord> {
    const id = normaliseEkHash(input.nodeId);
    return this.serial(async () => {
      const rec = newRecord(await this.read(id), input);
      await this.write(rec);
      return rec;
    });
  }

  async revoke(nodeId: string, now: Date): Promise<EnrolmentRecord> {
    const id = normaliseEkHash(nodeId);
    return this.serial(async () => {
      const rec = revokedRecord(await this.read(id), id, now);
      await this.write(rec);
      return rec;
    });
  }

  async remove(nodeId: string): Promise<boolean> {
    const id = normaliseEkHash(nodeId);
    return this.serial(async () => {
      try {
        await unlink(this.file(id));
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw new IdentityStoreError('ENROLMENT_STORE_UNAVAILABLE', 'enrolment record cannot be removed', { cause: err });
      }
    });
  }

  async list(): Promise<EnrolmentRecord[]> {
    const out: EnrolmentRecord[] = [];
    try {
      for (const b of await readdir(this.dir, { withFileTypes: true })) {
        if (!b.isDirectory() || !/^[0-9a-f]{2}$/.test(b.name)) continue;
        for (const f of await readdir(path.join(this.dir, b.name))) {
          const m = /^([0-9a-f]{64})\.json$/.exec(f);
          if (m?.[1]) {
            const rec = await this.read(m[1]);
            if (rec) out.push(rec);
          }
        }
      }
    } catch (err) {
      if (err instanceof IdentityStoreError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new IdentityStoreError('ENROLMENT_STORE_UNAVAILABLE', 'enrolment store cannot be listed', { cause: err });
    }
    return out.sort((a, b) => a.nodeId.localeCompare(b.nodeId));
  }
}
