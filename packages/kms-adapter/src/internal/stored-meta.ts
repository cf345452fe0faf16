import { KmsError } from '../errors.js';
import type { SecretMetadata } from '../secret-store.js';
import { checkKeepVersions, checkLabels, checkRotationPeriod, checkKeyBytes } from './write-options.js';

/** Metadata as stored beside a value (JSON). Field names are part of the on-disk format. */
export interface StoredMeta {
  readonly createdAt: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly keep: number;
  readonly gen?: { readonly bytes: number; readonly periodMs?: number };
}

const MAX_META_CHARS = 64 * 1024;

export function toStoredMeta(m: Omit<SecretMetadata, 'name' | 'version'>): StoredMeta {
  const gen = m.generated === undefined ? undefined : { bytes: m.generated.bytes, ...(m.generated.rotationPeriodMs === undefined ? {} : { periodMs: m.generated.rotationPeriodMs }) };
  return { createdAt: m.createdAt.toISOString(), labels: m.labels, keep: m.keepVersions, ...(gen === undefined ? {} : { gen }) };
}

/** Parse stored metadata JSON; KMS_CORRUPT when it is malformed. */
export function decodeMetadata(name: string, version: number, json: string): SecretMetadata {
  const bad = (): KmsError => new KmsError('KMS_CORRUPT', `stored metadata for ${name} v${version} is malformed`);
  // SECURITY: bound backend-supplied JSON before parsing it (resource exhaustion).
  if (json.length > MAX_META_CHARS) throw bad();
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw bad();
  }
  if (typeof raw !== 'object' || raw === null) throw bad();
  const o = raw as Record<string, unknown>;
  const createdAt = typeof o.createdAt === 'string' ? new Date(o.createdAt) : undefined;
  if (createdAt === undefined || Number.isNaN(createdAt.getTime())) throw bad();
  try {
    const labels = checkLabels(o.labels);
    const keepVersions = checkKeepVersions(o.keep);
    let generated: SecretMetadata['generated'];
    if (o.gen !== undefined) {
      if (typeof o.gen !== 'object' || o.gen === null) throw bad();
      const g = o.gen as Record<string, unknown>;
      const bytes = checkKeyBytes(g.bytes);
      const rotationPeriodMs = g.periodMs === undefined ? undefined : checkRotationPeriod(g.periodMs);
      generated = rotationPeriodMs === undefined ? { bytes } : { bytes, rotationPeriodMs };
    }
    return { name, version, createdAt, labels, keepVersions, ...(generated === undefined ? {} : { generated }) };
  } catch (err) {
    if (err instanceof KmsError && err.code === 'KMS_INVALID_ARGUMENT') throw bad();
    throw err;
  }
}
