/**
 * What `copyState` needs beyond the port: writing policies with their versions and audit records
 * as they are. Each backend registers one for the KbsState objects it opens; the port itself stays
 * free of migration-only operations.
 */
import type { AuditRecord } from '@keyhold/audit';
import type { StoredPolicy } from '@keyhold/policy';
import type { KbsState } from './ports.js';

export interface StateImporter {
  /**
   * Store each policy with its version and metadata as given. A slot that already holds a policy
   * is left alone (counted in `skipped`). Run with no other writer on the target.
   */
  importPolicies(policies: readonly StoredPolicy[]): Promise<{ readonly imported: number; readonly skipped: number }>;
  /**
   * Append records to the audit trail: exactly as given (same seq, time and hashes) when the trail
   * is empty, else re-chained onto its head (same kind, fields and time; new seq and hashes).
   */
  importAudit(records: readonly AuditRecord[]): Promise<{ readonly appended: number; readonly rechained: boolean }>;
  /** Uploaded EK CA certificates (the configured directory excluded), as PEM, for emptiness checks and copies. */
  uploadedCaCount(): Promise<number>;
}

const importers = new WeakMap<KbsState, StateImporter>();

export function registerStateImporter(state: KbsState, importer: StateImporter): void {
  importers.set(state, importer);
}

export function stateImporterOf(state: KbsState): StateImporter {
  const i = importers.get(state);
  if (i === undefined) throw new TypeError('copyState: the target was not opened by openEmbeddedState, openMemoryState or openRedisState');
  return i;
}
