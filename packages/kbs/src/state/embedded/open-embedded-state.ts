import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { acquireDirLock, AtomicFileError, removeStaleTempFiles, type DirLock } from '@keyhold/atomic-file';
import { createMemoryAuditSink, type AuditSink } from '../../audit/sink.js';
import { openFileAuditSink } from '../../audit/file-audit-sink.js';
import { DEFAULT_IMA_CHECKPOINT_MAX_NODES, InMemoryImaCheckpointStore, type ImaCheckpointRecord } from '../../attestation/tpm/ima-checkpoint-store.js';
import { StateError } from '../errors.js';
import { checkImaNodeKey } from '../ima-record.js';
import type { ImaCheckpointState, KbsState, NodeRecord, SessionLimits } from '../ports.js';
import { checkSessionLimits } from '../session-record.js';
import { registerStateImporter } from '../state-importer.js';
import { createDiscardAuditSink, importAuditInto } from './audit-import.js';
import { DirectoryEkAllowlist, MemoryEkAllowlist } from './embedded-ek-allowlist.js';
import { EmbeddedEkCa } from './embedded-ek-ca.js';
import { EmbeddedNodeState, NODE_CODEC } from './embedded-nodes.js';
import { EmbeddedPolicies } from './embedded-policies.js';
import { EmbeddedReferenceValues } from './embedded-reference-values.js';
import { JournalStore } from './journal-store.js';
import { importLegacyEnrolments } from './legacy-enrolments.js';
import { MemoryRateLimits } from './memory-rate-limits.js';
import { MemorySessionState } from './memory-sessions.js';
import { EmbeddedEvents } from './embedded-events.js';
import { EmbeddedNodeCa } from './embedded-node-ca.js';
import { MemoryLeases } from './memory-leases.js';
import { checkRetention, DEFAULT_EVENT_RETENTION } from '../event-record.js';

export interface EmbeddedStateOptions {
  /** The KBS data directory (absolute); locked for the lifetime of the state. */
  readonly dataDir: string;
  readonly sessionLimits: SessionLimits;
  /** Most nodes whose IMA checkpoint is remembered (LRU beyond). Default 10 000. */
  readonly imaCheckpointMaxNodes?: number;
  /** `[tpm] ek_ca_dir`: read at open; uploads are written here. Default `<dataDir>/ek-ca`. */
  readonly ekCaDir?: string;
  /** `ekCaDir` was configured explicitly: it must exist (STATE_UNAVAILABLE otherwise). Default false. */
  readonly ekCaDirRequired?: boolean;
  /** `[tpm] ek_allowlist_dir`. Default `<dataDir>/ek-allowlist`. */
  readonly ekAllowlistDir?: string;
  /** `[tpm] enrolment_dir`: legacy enrolment records, imported once into the node store. Default `<dataDir>/enrolments`. */
  readonly enrolmentDir?: string;
  /** The audit trail (JSON lines). Default `<dataDir>/audit.jsonl`; null: audit disabled (nothing kept). */
  readonly auditFile?: string | null;
  /** Default `<dataDir>/policies.json`. */
  readonly policyFile?: string;
  /** Milliseconds clock for session expiry (tests). */
  readonly now?: () => number;
  /** Journal size that triggers node-store compaction (tests). Default 4 MiB. */
  readonly nodeCompactMinBytes?: number;
  /** Events retained (the newest N). Default 10 000. */
  readonly eventRetention?: number;
}

export interface EmbeddedKbsState extends KbsState {
  readonly backend: 'embedded';
  readonly dataDir: string;
  /** Bytes of a torn last audit line cut at open (0 when clean); the caller records it in the trail. */
  readonly auditTruncatedTornBytes: number;
  /** Temp files of interrupted writes removed at open. */
  readonly removedTempFiles: readonly string[];
}

export interface MemoryStateOptions {
  readonly sessionLimits: SessionLimits;
  readonly imaCheckpointMaxNodes?: number;
  /** A CA directory to read at open (uploads then stay in memory). */
  readonly ekCaDir?: string;
  /** `ekCaDir` must exist. Default false. */
  readonly ekCaDirRequired?: boolean;
  readonly now?: () => number;
  /** Events retained (the newest N). Default 10 000. */
  readonly eventRetention?: number;
}

/** Lock file of the embedded state in the data dir. */
export const STATE_LOCK_FILE = 'kbs-state.lock';

class LruImaCheckpoints implements ImaCheckpointState {
  readonly #store: InMemoryImaCheckpointStore;
  constructor(maxNodes: number) {
    this.#store = new InMemoryImaCheckpointStore({ maxNodes });
  }
  async get(node: string): Promise<ImaCheckpointRecord | undefined> {
    checkImaNodeKey(node);
    return this.#store.get(node);
  }
  async set(node: string, record: ImaCheckpointRecord): Promise<void> {
    checkImaNodeKey(node);
    return this.#store.set(node, record);
  }
  async delete(node: string): Promise<void> {
    checkImaNodeKey(node);
    return this.#store.delete(node);
  }
}

function absolute(p: string, what: string): string {
  if (typeof p !== 'string' || !path.isAbsolute(p)) throw new TypeError(`${what} must be an absolute path`);
  return p;
}

/**
 * The state of a single KBS process: sessions, IMA checkpoints and rate-limit buckets in memory;
 * node records, reference values, the EK allowlist and CA uploads, policies and the audit trail in
 * the data dir, every write durable before it resolves (see each store). The data dir is locked:
 * a second process opening it gets STATE_LOCKED naming the holder's pid. At open, temp files of
 * interrupted writes are removed and legacy enrolment records are imported once.
 */
export async function openEmbeddedState(options: EmbeddedStateOptions): Promise<EmbeddedKbsState> {
  const dataDir = absolute(options.dataDir, 'dataDir');
  const limits = checkSessionLimits(options.sessionLimits);
  const ekCaDir = absolute(options.ekCaDir ?? path.join(dataDir, 'ek-ca'), 'ekCaDir');
  const ekAllowlistDir = absolute(options.ekAllowlistDir ?? path.join(dataDir, 'ek-allowlist'), 'ekAllowlistDir');
  const enrolmentDir = absolute(options.enrolmentDir ?? path.join(dataDir, 'enrolments'), 'enrolmentDir');
  const auditFile = options.auditFile === null ? null : absolute(options.auditFile ?? path.join(dataDir, 'audit.jsonl'), 'auditFile');
  const policyFile = absolute(options.policyFile ?? path.join(dataDir, 'policies.json'), 'policyFile');
  const imaMax = options.imaCheckpointMaxNodes ?? DEFAULT_IMA_CHECKPOINT_MAX_NODES;
  const eventRetention = checkRetention(options.eventRetention ?? DEFAULT_EVENT_RETENTION);

  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
  } catch (cause) {
    throw new StateError('STATE_UNAVAILABLE', `data dir ${dataDir} cannot be created`, { cause });
  }
  let lock: DirLock;
  try {
    lock = await acquireDirLock(dataDir, { fileName: STATE_LOCK_FILE });
  } catch (err) {
    if (err instanceof AtomicFileError && err.code === 'DIR_LOCKED') {
      throw new StateError('STATE_LOCKED', `another KBS (pid ${err.holderPid}) is using the data dir ${dataDir}; stop it first, or give this one its own data dir`, {
        cause: err,
        ...(err.holderPid !== undefined ? { holderPid: err.holderPid } : {}),
      });
    }
    if (err instanceof AtomicFileError) throw new StateError('STATE_LOCKED', err.message, { cause: err });
    throw new StateError('STATE_UNAVAILABLE', `data dir ${dataDir} cannot be locked`, { cause: err });
  }

  const closers: (() => Promise<void> | void)[] = [];
  try {
    const removedTempFiles: string[] = [];
    const nodesDir = path.join(dataDir, 'nodes');
    const eventsDir = path.join(dataDir, 'events');
    try {
      // Issue 12 item 5: leftovers of interrupted atomic writes; we hold the lock, so none is in flight.
      for (const [dir, maxDepth] of [
        [dataDir, 0],
        [nodesDir, 0],
        [eventsDir, 0],
        [ekCaDir, 0],
        [ekAllowlistDir, 1],
        [enrolmentDir, 1],
      ] as const) {
        removedTempFiles.push(...(await removeStaleTempFiles(dir, { maxDepth })));
      }
    } catch (cause) {
      throw new StateError('STATE_UNAVAILABLE', 'stale temp files in the data dir cannot be removed', { cause });
    }

    const nodeStore = await JournalStore.open<NodeRecord>({
      dir: nodesDir,
      name: 'nodes',
      codec: NODE_CODEC,
      initial: () => importLegacyEnrolments(enrolmentDir),
      ...(options.nodeCompactMinBytes !== undefined ? { compactMinBytes: options.nodeCompactMinBytes } : {}),
    });
    closers.push(() => nodeStore.close());
    const leases = new MemoryLeases(options.now);
    const events = await EmbeddedEvents.open({
      dir: eventsDir,
      retention: eventRetention,
      leases,
      ...(options.now !== undefined ? { now: options.now } : {}),
      ...(options.nodeCompactMinBytes !== undefined ? { compactMinBytes: options.nodeCompactMinBytes } : {}),
    });
    closers.push(() => events.close());
    const nodeCa = await EmbeddedNodeCa.open(path.join(dataDir, 'node-ca.json'));
    const referenceValues = await EmbeddedReferenceValues.open(path.join(dataDir, 'reference-values.json'));
    const ekCa = await EmbeddedEkCa.open(ekCaDir, true, options.ekCaDirRequired === true);
    const policies = await EmbeddedPolicies.open(policyFile);
    let audit: AuditSink;
    let auditTruncatedTornBytes = 0;
    if (auditFile === null) audit = createDiscardAuditSink();
    else {
      const sink = await openFileAuditSink({ file: auditFile });
      auditTruncatedTornBytes = sink.truncatedTornBytes;
      audit = sink;
    }
    closers.push(() => audit.close());
    const sessions = new MemorySessionState({ limits, ...(options.now !== undefined ? { now: options.now } : {}) });
    closers.push(() => sessions.close());

    let closed = false;
    const state: EmbeddedKbsState = {
      backend: 'embedded',
      dataDir,
      auditTruncatedTornBytes,
      removedTempFiles,
      sessions,
      nodes: new EmbeddedNodeState(nodeStore),
      referenceValues,
      ekAllowlist: new DirectoryEkAllowlist(ekAllowlistDir),
      ekCa,
      imaCheckpoints: new LruImaCheckpoints(imaMax),
      rateLimits: new MemoryRateLimits(),
      events,
      leases,
      nodeCa,
      audit,
      policies,
      async ping() {
        if (closed) throw new StateError('STATE_UNAVAILABLE', 'state is closed');
      },
      async close() {
        if (closed) return;
        closed = true;
        for (const c of closers.reverse()) await c();
        await lock.release();
      },
    };
    registerStateImporter(state, {
      importPolicies: (p) => policies.importPolicies(p),
      importAudit: (r) => importAuditInto(audit, r),
      uploadedCaCount: async () => (await ekCa.snapshot()).entries.filter((e) => e.file === `${e.sha256}.pem`).length,
    });
    return state;
  } catch (err) {
    for (const c of closers.reverse()) await Promise.resolve(c()).catch(() => undefined);
    await lock.release();
    throw err;
  }
}

/**
 * State in process memory only: no data dir, no lock, nothing survives `close`. For route tests
 * and tools; same stores and rules as `openEmbeddedState` minus persistence.
 */
export async function openMemoryState(options: MemoryStateOptions): Promise<KbsState> {
  const limits = checkSessionLimits(options.sessionLimits);
  const nodeStore = await JournalStore.open<NodeRecord>({ dir: undefined, name: 'nodes', codec: NODE_CODEC });
  const referenceValues = await EmbeddedReferenceValues.open(undefined);
  const ekCa = await EmbeddedEkCa.open(options.ekCaDir === undefined ? undefined : absolute(options.ekCaDir, 'ekCaDir'), false, options.ekCaDirRequired === true);
  const policies = await EmbeddedPolicies.open(undefined);
  const audit = createMemoryAuditSink();
  const sessions = new MemorySessionState({ limits, ...(options.now !== undefined ? { now: options.now } : {}) });
  const leases = new MemoryLeases(options.now);
  const events = await EmbeddedEvents.open({ dir: undefined, retention: checkRetention(options.eventRetention ?? DEFAULT_EVENT_RETENTION), leases, ...(options.now !== undefined ? { now: options.now } : {}) });
  const nodeCa = await EmbeddedNodeCa.open(undefined);
  const state: KbsState = {
    backend: 'embedded',
    sessions,
    nodes: new EmbeddedNodeState(nodeStore),
    referenceValues,
    ekAllowlist: new MemoryEkAllowlist(),
    ekCa,
    imaCheckpoints: new LruImaCheckpoints(options.imaCheckpointMaxNodes ?? DEFAULT_IMA_CHECKPOINT_MAX_NODES),
    rateLimits: new MemoryRateLimits(),
    events,
    leases,
    nodeCa,
    audit,
    policies,
    async ping() {},
    async close() {
      sessions.close();
      await events.close();
      await nodeStore.close();
    },
  };
  registerStateImporter(state, {
    importPolicies: (p) => policies.importPolicies(p),
    importAudit: (r) => importAuditInto(audit, r),
    uploadedCaCount: async () => (await ekCa.snapshot()).entries.filter((e) => e.file === `${e.sha256}.pem`).length,
  });
  return state;
}
