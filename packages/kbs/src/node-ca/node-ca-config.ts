/**
 * The `[node_ca]` section (issue 13), parsed once by config.ts:
 *   certificate  PEM of an owner-supplied CA (intermediate) certificate        default: generated CA
 *   private_key  PEM (PKCS#8 or SEC1/PKCS#1) of its key: EC P-256/P-384 or RSA 2048..4096
 *   chain        PEM of the certificates above it (intermediates, optionally the root), served after it
 *   ttl          lifetime of node certificates                                default "1h", at most "24h"
 * Without certificate/private_key the KBS generates an EC P-256 CA on first use and keeps it in
 * the state (shared by every replica; its key wrapped with a key derived from the token signing key).
 */
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { DURATION, durationMs } from '../continuous/duration.js';

export const NODE_CA_CONFIG_FIELDS = {
  node_ca: z
    .object({
      certificate: z.string().min(1).optional(),
      private_key: z.string().min(1).optional(),
      chain: z.string().min(1).optional(),
      ttl: DURATION.optional(),
    })
    .strict()
    .refine((s) => (s.certificate === undefined) === (s.private_key === undefined), 'give both certificate and private_key, or neither (generated CA)')
    .refine((s) => s.chain === undefined || s.certificate !== undefined, 'chain needs certificate and private_key')
    .optional(),
};

export interface NodeCaConfig {
  /** Owner-supplied CA files (absolute), or undefined for the generated CA. */
  readonly files: { readonly certificate: string; readonly privateKey: string; readonly chain: string | undefined } | undefined;
  readonly ttlMs: number;
}

export const DEFAULT_NODE_CERT_TTL_MS = 3600_000;
export const MAX_NODE_CERT_TTL_MS = 24 * 3600_000;

type FileFields = z.infer<(typeof NODE_CA_CONFIG_FIELDS)['node_ca']>;

export function nodeCaConfigFrom(file: FileFields | undefined): NodeCaConfig {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(p));
  const ttlMs = file?.ttl === undefined ? DEFAULT_NODE_CERT_TTL_MS : durationMs(file.ttl, '[node_ca] ttl', { minMs: 60_000, maxMs: MAX_NODE_CERT_TTL_MS });
  return {
    files:
      file?.certificate !== undefined && file.private_key !== undefined
        ? { certificate: abs(file.certificate), privateKey: abs(file.private_key), chain: file.chain === undefined ? undefined : abs(file.chain) }
        : undefined,
    ttlMs,
  };
}
