import { createHash } from 'node:crypto';
import { parse as parseToml } from 'smol-toml';
import { ProtocolError } from './errors.js';
import type { InitData } from './messages.js';

/** Largest init-data body accepted (it travels inside the attestation request). */
export const MAX_INIT_DATA_BYTES = 256 * 1024;

const ALGORITHMS = { sha256: 'sha256', sha384: 'sha384', sha512: 'sha512' } as const;

export interface ParsedInitData {
  /** Hash algorithm named by the TOML `algorithm` key (default sha256). */
  algorithm: keyof typeof ALGORITHMS;
  version: string | undefined;
  /** The TOML `[data]` table: these become `init_data_claims`. */
  data: Record<string, unknown>;
  /** HASH(body) with `algorithm`. */
  digest: Uint8Array;
}

/**
 * Parse and hash CoCo init-data (`{"format":"toml","body":"..."}`). The digest is over the exact body
 * bytes, so the attester and the KBS agree on it without re-serialising TOML.
 */
export function parseInitData(initData: InitData): ParsedInitData {
  if (initData.format !== 'toml') throw new ProtocolError('PROTOCOL_INVALID_INIT_DATA', 'init-data format must be "toml"');
  const bytes = Buffer.from(initData.body, 'utf8');
  // SECURITY: bounds the work a client can make the KBS do on a TOML parse (resource exhaustion).
  if (bytes.length > MAX_INIT_DATA_BYTES) throw new ProtocolError('PROTOCOL_INVALID_INIT_DATA', 'init-data body is too large');
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(initData.body) as Record<string, unknown>;
  } catch (cause) {
    throw new ProtocolError('PROTOCOL_INVALID_INIT_DATA', 'init-data body is not valid TOML', { cause });
  }
  const algName = doc['algorithm'] ?? 'sha256';
  if (typeof algName !== 'string' || !(algName in ALGORITHMS)) {
    throw new ProtocolError('PROTOCOL_INVALID_INIT_DATA', 'init-data algorithm must be sha256, sha384 or sha512');
  }
  const algorithm = algName as keyof typeof ALGORITHMS;
  const version = typeof doc['version'] === 'string' ? doc['version'] : undefined;
  const data = doc['data'];
  return {
    algorithm,
    version,
    data: data !== null && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>) : {},
    digest: new Uint8Array(createHash(ALGORITHMS[algorithm]).update(bytes).digest()),
  };
}

/** The 32-byte value a TPM attester extends into PCR8 (the init-data digest fitted to SHA-256 size). */
export function tpmInitDataDigest(digest: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  out.set(digest.subarray(0, 32));
  return out;
}

/** PCR8 of a freshly reset SHA-256 bank after the init-data digest was extended: sha256(0^32 || d). */
export function expectedInitDataPcr8(digest32: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(new Uint8Array(32)).update(digest32).digest());
}
