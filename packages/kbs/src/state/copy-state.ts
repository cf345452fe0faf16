import { verifyParsedAuditLog } from '@keyhold/audit';
import { StateError } from './errors.js';
import type { KbsState } from './ports.js';
import { stateImporterOf } from './state-importer.js';

export type CopyStoreName = 'policies' | 'referenceValues' | 'ekAllowlist' | 'ekCa' | 'nodes' | 'nodeCa' | 'audit';

export interface CopyProgress {
  readonly store: CopyStoreName;
  readonly done: number;
  readonly total?: number;
}

export interface CopySummary {
  /** Node records written (version restarts at 1); `skipped`: already in the target (merge). */
  readonly nodes: { readonly copied: number; readonly skipped: number };
  readonly referenceValues: { readonly copied: number };
  readonly ekAllowlist: { readonly copied: number };
  /** Every certificate of the source's CA snapshot (its configured directory included). */
  readonly ekCa: { readonly copied: number; readonly alreadyPresent: number };
  /** Policies with their versions; `skipped`: the target slot was taken (merge). */
  readonly policies: { readonly copied: number; readonly skipped: number };
  /** The generated node CA (1 when copied; 0 when the source has none or the target kept its own). */
  readonly nodeCa: { readonly copied: number };
  /**
   * Audit records: identical (same seq and hashes) into an empty trail, re-chained onto a
   * non-empty one (merge). `sourceChainOk`: the source chain verified before the copy.
   */
  readonly audit: { readonly copied: number; readonly rechained: boolean; readonly sourceChainOk: boolean };
}

export interface CopyStateOptions {
  /** Copy into a target that already holds state (default: refuse with STATE_CONFLICT). */
  readonly merge?: boolean;
  readonly onProgress?: (p: CopyProgress) => void;
}

const PAGE = 1000;
const REFERENCE_CHUNK = 100;

/**
 * Copy the durable state of `from` into `to` (`keyhold-kbs migrate-state`): policies (versions
 * kept), reference values, the EK allowlist, EK CA certificates, node records, the generated node CA
 * (its key stays wrapped: both sides must use the same token signing key) and the audit trail.
 * Sessions, nonces, IMA checkpoints, rate-limit buckets, events, delivery cursors and leases are not
 * copied (short-lived by design; webhook cursors start again at the newest event).
 * Run with no KBS using either side. Unless `merge`, the target must hold none of these
 * (STATE_CONFLICT otherwise); with `merge`, existing target records win and are counted as skipped.
 */
export async function copyState(from: KbsState, to: KbsState, options: CopyStateOptions = {}): Promise<CopySummary> {
  const importer = stateImporterOf(to);
  const progress = options.onProgress ?? (() => undefined);
  if (options.merge !== true) {
    const busy = await nonEmptyStores(to, await importer.uploadedCaCount());
    if (busy.length > 0) throw new StateError('STATE_CONFLICT', `the target state is not empty (${busy.join(', ')}); use merge to copy into it anyway`);
  }

  const policies = await importer.importPolicies(await from.policies.list());
  progress({ store: 'policies', done: policies.imported + policies.skipped });

  const refs = Object.entries((await from.referenceValues.snapshot()).all());
  for (let i = 0; i < refs.length; i += REFERENCE_CHUNK) {
    await to.referenceValues.set(Object.fromEntries(refs.slice(i, i + REFERENCE_CHUNK)));
    progress({ store: 'referenceValues', done: Math.min(i + REFERENCE_CHUNK, refs.length), total: refs.length });
  }

  const allow = await from.ekAllowlist.list();
  for (const [i, e] of allow.entries()) {
    const at = new Date(e.addedAt);
    await to.ekAllowlist.add(e.ekHash, { ...(e.note !== undefined ? { note: e.note } : {}), ...(Number.isNaN(at.getTime()) ? {} : { now: at }) });
    if ((i + 1) % PAGE === 0 || i === allow.length - 1) progress({ store: 'ekAllowlist', done: i + 1, total: allow.length });
  }

  const ca = await from.ekCa.snapshot();
  let caCopied = 0;
  let caPresent = 0;
  for (const [i, c] of ca.certificates.entries()) {
    const r = await to.ekCa.add(new Uint8Array(Buffer.from(`${c.toString('pem')}\n`)));
    caCopied += r.added.length;
    caPresent += r.alreadyPresent.length;
    progress({ store: 'ekCa', done: i + 1, total: ca.certificates.length });
  }

  let nodesCopied = 0;
  let nodesSkipped = 0;
  for (let after: string | undefined, done = 0; ; ) {
    const page = await from.nodes.list({ limit: PAGE, ...(after !== undefined ? { after } : {}) });
    for (const r of page.nodes) {
      const { version: _version, ...input } = r;
      if ((await to.nodes.compareAndSwap(r.nodeId, 0, input)) !== undefined) nodesCopied++;
      else nodesSkipped++;
    }
    done += page.nodes.length;
    progress({ store: 'nodes', done });
    if (page.next === undefined) break;
    after = page.next;
  }

  const sourceCa = await from.nodeCa.get();
  let nodeCaCopied = 0;
  if (sourceCa !== undefined && (await to.nodeCa.createIfAbsent(sourceCa)).wrappedKey === sourceCa.wrappedKey) nodeCaCopied = 1;
  progress({ store: 'nodeCa', done: nodeCaCopied });

  const trail = await from.audit.read();
  const sourceChainOk = verifyParsedAuditLog(trail).ok;
  const audit = await importer.importAudit(trail.records);
  progress({ store: 'audit', done: audit.appended, total: trail.records.length });

  return {
    nodes: { copied: nodesCopied, skipped: nodesSkipped },
    referenceValues: { copied: refs.length },
    ekAllowlist: { copied: allow.length },
    ekCa: { copied: caCopied, alreadyPresent: caPresent },
    policies: { copied: policies.imported, skipped: policies.skipped },
    nodeCa: { copied: nodeCaCopied },
    audit: { copied: audit.appended, rechained: audit.rechained, sourceChainOk },
  };
}

async function nonEmptyStores(s: KbsState, uploadedCa: number): Promise<string[]> {
  const busy: string[] = [];
  if ((await s.nodes.list({ limit: 1 })).nodes.length > 0) busy.push('nodes');
  if (Object.keys((await s.referenceValues.snapshot()).all()).length > 0) busy.push('reference values');
  if ((await s.ekAllowlist.list()).length > 0) busy.push('EK allowlist');
  if (uploadedCa > 0) busy.push('EK CA uploads');
  if ((await s.policies.list()).length > 0) busy.push('policies');
  if ((await s.audit.last()) !== undefined) busy.push('audit trail');
  if ((await s.nodeCa.get()) !== undefined) busy.push('node CA');
  return busy;
}
