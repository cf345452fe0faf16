/**
 * The workload-owner config sections (issue 5), parsed once by config.ts:
 *   [admin]      identities = [{name, public_key_file, role}], roles = {<name> = {rules = [{methods, path}],
 *                repositories}}, issuer, audience, max_token_lifetime_s (86400), clock_skew_s (30),
 *                client_ca (mutual TLS for the admin API; needs [http_server] certificate),
 *                insecure_allow_all (honoured only with the --insecure-admin-allow-all flag)
 *   [rate_limit] enabled (true), auth_per_sec (50), auth_burst (100), admin_per_sec (20), admin_burst (50)
 *   [metrics]    enabled (true): unauthenticated GET /metrics
 *   [audit]      enabled (true), file (<data_dir>/audit.jsonl)
 *   [policy]     attestation_policy ("default"): the attestation policy id tokens are appraised with;
 *                max_* cost bounds of CEL policies (owners/policy-limits-config.ts)
 * The audit trail and the policies live in the state backend (`[state]`, see state-wiring/state-config.ts):
 * `<data_dir>/audit.jsonl` and `<data_dir>/policies.json` when embedded, Redis when `[state] backend =
 * "redis"`. `[audit] backend` / `[policy] backend = "storage"` are superseded (state-config.ts says how).
 */
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { POLICY_LIMIT_FIELDS } from './policy-limits-config.js';

const RoleSchema = z
  .object({
    rules: z.array(z.object({ methods: z.array(z.string().regex(/^(\*|[A-Za-z]+)$/)).min(1), path: z.string().min(1).max(1024) }).strict()).min(1),
    repositories: z.array(z.string().regex(/^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/)).min(1).optional(),
  })
  .strict();

export const OWNER_CONFIG_FIELDS = {
  admin: z
    .object({
      identities: z.array(z.object({ name: z.string().min(1).max(128), public_key_file: z.string(), role: z.string().min(1) }).strict()).optional(),
      roles: z.record(z.string().min(1).max(64), RoleSchema).optional(),
      issuer: z.string().optional(),
      audience: z.string().optional(),
      max_token_lifetime_s: z.number().int().positive().max(366 * 86400).optional(),
      clock_skew_s: z.number().int().min(0).max(600).optional(),
      client_ca: z.string().min(1).optional(),
      insecure_allow_all: z.boolean().optional(),
    })
    .strict()
    .optional(),
  rate_limit: z
    .object({
      enabled: z.boolean().optional(),
      auth_per_sec: z.number().positive().optional(),
      auth_burst: z.number().int().positive().optional(),
      admin_per_sec: z.number().positive().optional(),
      admin_burst: z.number().int().positive().optional(),
    })
    .strict()
    .optional(),
  metrics: z.object({ enabled: z.boolean().optional() }).strict().optional(),
  audit: z.object({ enabled: z.boolean().optional(), file: z.string().optional(), backend: z.enum(['file', 'storage']).optional() }).strict().optional(),
  policy: z
    .object({
      attestation_policy: z.string().regex(/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$/).optional(),
      backend: z.enum(['file', 'storage']).optional(),
      /** CEL cost bounds (owners/policy-limits-config.ts). */
      ...POLICY_LIMIT_FIELDS,
    })
    .strict()
    .optional(),
};

type FileFields = { [K in keyof typeof OWNER_CONFIG_FIELDS]?: z.infer<(typeof OWNER_CONFIG_FIELDS)[K]> };

export interface OwnerConfig {
  readonly admin: {
    readonly identities: readonly { readonly name: string; readonly publicKeyFile: string; readonly role: string }[];
    readonly roles: Readonly<Record<string, { readonly rules: readonly { readonly methods: readonly string[]; readonly path: string }[]; readonly repositories?: readonly string[] }>> | undefined;
    readonly issuer: string | undefined;
    readonly audience: string | undefined;
    /** Longest admin token accepted: `exp - iat` (or `exp - now` without `iat`), seconds. */
    readonly maxTokenLifetimeSec: number;
    /** Clock skew tolerated on `exp`, `nbf` and `iat`, seconds. */
    readonly clockSkewSec: number;
    /** CA certificates (PEM) admin clients must present a certificate from (mutual TLS); undefined: tokens only. */
    readonly clientCaFile: string | undefined;
    /** True only when both `insecure_allow_all` and the --insecure-admin-allow-all flag were given. */
    readonly insecureAllowAll: boolean;
  };
  /** undefined when disabled. */
  readonly rateLimit: { readonly authPerSec: number; readonly authBurst: number; readonly adminPerSec: number; readonly adminBurst: number } | undefined;
  readonly metricsEnabled: boolean;
  /** The embedded state's audit file; undefined when the audit trail is disabled (any backend). */
  readonly auditFile: string | undefined;
  readonly attestationPolicyId: string;
}

export const OWNER_DEFAULTS = { authPerSec: 50, authBurst: 100, adminPerSec: 20, adminBurst: 50, maxTokenLifetimeSec: 24 * 3600, clockSkewSec: 30 } as const;

/** Build the owner config; throws Error with a message when insecure_allow_all lacks its flag. */
export function ownerConfigFrom(file: FileFields, dataDir: string, flags: { insecureAdminAllowAll: boolean }): OwnerConfig {
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(p));
  const a = file.admin;
  // SECURITY: turning admin authorization off takes two deliberate acts (config key and command-line
  // flag), so a copied or tampered config file alone cannot open the admin API.
  if (a?.insecure_allow_all === true && !flags.insecureAdminAllowAll) {
    throw new Error('[admin] insecure_allow_all = true also needs the --insecure-admin-allow-all flag');
  }
  const rl = file.rate_limit;
  return {
    admin: {
      identities: (a?.identities ?? []).map((i) => ({ name: i.name, publicKeyFile: abs(i.public_key_file), role: i.role })),
      roles: a?.roles,
      issuer: a?.issuer,
      audience: a?.audience,
      maxTokenLifetimeSec: a?.max_token_lifetime_s ?? OWNER_DEFAULTS.maxTokenLifetimeSec,
      clockSkewSec: a?.clock_skew_s ?? OWNER_DEFAULTS.clockSkewSec,
      clientCaFile: a?.client_ca !== undefined ? abs(a.client_ca) : undefined,
      insecureAllowAll: a?.insecure_allow_all === true,
    },
    rateLimit:
      rl?.enabled === false
        ? undefined
        : {
            authPerSec: rl?.auth_per_sec ?? OWNER_DEFAULTS.authPerSec,
            authBurst: rl?.auth_burst ?? OWNER_DEFAULTS.authBurst,
            adminPerSec: rl?.admin_per_sec ?? OWNER_DEFAULTS.adminPerSec,
            adminBurst: rl?.admin_burst ?? OWNER_DEFAULTS.adminBurst,
          },
    metricsEnabled: file.metrics?.enabled ?? true,
    auditFile: file.audit?.enabled === false ? undefined : file.audit?.file !== undefined ? abs(file.audit.file) : join(dataDir, 'audit.jsonl'),
    attestationPolicyId: file.policy?.attestation_policy ?? 'default',
  };
}
