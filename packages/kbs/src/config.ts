import { readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { TPM_IDENTITY_CONFIG_FIELDS, tpmIdentityConfigFrom, type TpmIdentityConfig } from './attestation/tpm/identity-config.js';
import { OWNER_CONFIG_FIELDS, ownerConfigFrom, type OwnerConfig } from './owners/owner-config.js';
import { STATE_CONFIG_FIELDS, stateConfigFrom, type StateConfig } from './state-wiring/state-config.js';
import { CVM_CONFIG_SCHEMA, cvmConfigFrom, type CvmConfig } from './attestation/az-vtpm/cvm-config.js';
import { formatConfigIssue, formatTomlSyntaxError } from './config-location.js';
import { CONTINUOUS_CONFIG_FIELDS, continuousConfigFrom, type ContinuousSettings } from './continuous/continuous-config.js';
import { NOTIFY_CONFIG_FIELDS, notifyConfigFrom, type WebhookConfig } from './notify/notify-config.js';
import { NODE_CA_CONFIG_FIELDS, nodeCaConfigFrom, type NodeCaConfig } from './node-ca/node-ca-config.js';
import { HTTP_SERVER_CONFIG_FIELDS, httpServerConfigFrom, type HttpServerConfig } from './http-server/http-server-config.js';
import { policyLimitsFrom } from './owners/policy-limits-config.js';
import type { PolicyLimits } from '@keyhold/policy';

/** Secret storage backend settings (see the README's "Storage backends"). */
const StorageSchema = z.discriminatedUnion('backend', [
  z.object({ backend: z.literal('embedded'), dir: z.string().optional(), master_key_file: z.string().optional() }).strict(),
  z
    .object({
      backend: z.literal('redis'),
      /** Standalone server URL (redis:// or rediss://). */
      url: z.string().optional(),
      /** Redis Cluster seed nodes as "host:port" (instead of url). */
      cluster_nodes: z.array(z.string().regex(/^.+:\d{1,5}$/)).min(1).optional(),
      /** 32-byte master key that wraps per-value data keys; created 0600 in the data dir by default. */
      master_key_file: z.string().optional(),
      key_prefix: z.string().optional(),
      username: z.string().optional(),
      password_file: z.string().optional(),
      tls_ca_file: z.string().optional(),
      command_timeout_ms: z.number().int().positive().optional(),
      operation_timeout_ms: z.number().int().positive().optional(),
    })
    .strict()
    .refine((r) => (r.url === undefined) !== (r.cluster_nodes === undefined), 'give exactly one of url or cluster_nodes'),
  z
    .object({
      backend: z.literal('vault'),
      address: z.string(),
      mount: z.string().optional(),
      path_prefix: z.string().optional(),
      kv_version: z.union([z.literal(1), z.literal(2)]).optional(),
      token_file: z.string().optional(),
      approle_role_id: z.string().optional(),
      approle_secret_id_file: z.string().optional(),
      approle_mount: z.string().optional(),
      namespace: z.string().optional(),
      ca_file: z.string().optional(),
      request_timeout_ms: z.number().int().positive().optional(),
    })
    .strict()
    .refine((v) => (v.token_file !== undefined) !== (v.approle_role_id !== undefined), 'give exactly one of token_file or approle_role_id (+ approle_secret_id_file)'),
]);

const FileSchema = z
  .object({
    listen: z.string().optional(),
    data_dir: z.string().optional(),
    admin_public_key: z.string().optional(),
    log_level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
    session_ttl_ms: z.number().int().positive().optional(),
    max_sessions: z.number().int().positive().optional(),
    max_body_bytes: z.number().int().positive().optional(),
    /** Bytes a `POST /kbs/v0/auth` body (version, tee, extra-params) may have; 413 beyond. */
    max_auth_body_bytes: z.number().int().min(1024).max(16 * 1024 * 1024).optional(),
    token_lifetime_ms: z.number().int().positive().optional(),
    token_signing_key: z.string().optional(),
    token_issuer: z.string().optional(),
    storage: StorageSchema.optional(),
    /** How often (at most) the KBS checks generated keys for scheduled rotation. */
    rotation_check_interval_ms: z.number().int().min(100).optional(),
    tpm: z
      .object({
        /** Accept AKs listed in the `trusted_ak` reference value (Trustee compatible). */
        trusted_ak_list: z.boolean().optional(),
        /** Refuse `tpm` evidence without an `event_log` (measured boot). */
        require_event_log: z.boolean().optional(),
        /** Accept event-log / IMA replay against a SHA-1 quote (never by default). */
        allow_sha1_event_log: z.boolean().optional(),
        /** Refuse `tpm` evidence without an `ima_log`. */
        require_ima_log: z.boolean().optional(),
        /** Accept IMA ToMToU / open-writers violations. */
        allow_ima_violations: z.boolean().optional(),
        /** Nodes whose IMA checkpoint is kept in memory (incremental appraisal). */
        ima_checkpoint_max_nodes: z.number().int().positive().optional(),
        /** Hardware identity: EK CA store, EK allowlist, enrolments, SPIFFE trust domain (issue 3). */
        ...TPM_IDENTITY_CONFIG_FIELDS,
      })
      .strict()
      .optional(),
    /** Azure confidential-VM vTPMs: trust anchors and TDX collateral (see attestation/az-vtpm/cvm-config.ts). */
    cvm: CVM_CONFIG_SCHEMA.optional(),
    /** Workload owners: [admin], [rate_limit], [metrics], [audit], [policy] (see owners/owner-config.ts). */
    ...OWNER_CONFIG_FIELDS,
    /** Where the KBS's state lives: [state] and max_session_bytes (see state-wiring/state-config.ts). */
    ...STATE_CONFIG_FIELDS,
    /** TLS, plain HTTP by choice, slow-client timeouts, connection cap (see http-server/http-server-config.ts). */
    ...HTTP_SERVER_CONFIG_FIELDS,
    /** The owner console at /console (issue 16). */
    console: z.object({ enabled: z.boolean().optional() }).strict().optional(),
    /** Continuous attestation (issue 13): [continuous], [[notify.webhook]], [node_ca]. */
    ...CONTINUOUS_CONFIG_FIELDS,
    ...NOTIFY_CONFIG_FIELDS,
    ...NODE_CA_CONFIG_FIELDS,
  })
  .strict();

export type StorageConfig = z.infer<typeof StorageSchema>;

export interface KbsConfig {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly adminPublicKeyFile: string | undefined;
  readonly logLevel: string;
  readonly sessionTtlMs: number;
  readonly maxSessions: number;
  readonly maxBodyBytes: number;
  /** Cap on a `/auth` body (its extra-params), below maxBodyBytes: 413 beyond. */
  readonly maxAuthBodyBytes: number;
  /** `[http_server]` and `--insecure-http`: TLS or plain HTTP, timeouts, connection cap. */
  readonly httpServer: HttpServerConfig;
  /** `[policy] max_*`: cost bounds of CEL policies (upload and evaluation). */
  readonly policyLimits: PolicyLimits;
  readonly tokenLifetimeMs: number;
  readonly tokenSigningKeyFile: string | undefined;
  readonly tokenIssuer: string;
  readonly storage: StorageConfig;
  readonly rotationCheckIntervalMs: number;
  readonly tpm: { readonly trustedAkList: boolean; readonly measuredBoot: TpmMeasuredBootConfig };
  /** Hardware identity settings (`[tpm]` keys ek_ca_dir, ek_allowlist_dir, ...; see identity-config.ts). */
  readonly tpmIdentity: TpmIdentityConfig;
  /** Admin identities and roles, rate limits, metrics, audit trail, policies (issue 5). */
  readonly owners: OwnerConfig;
  /** The state backend (`[state]`, issue 10). */
  readonly state: StateConfig;
  /** `serve --workers N`: KBS processes on this host (node:cluster); more than 1 needs a shared state backend. */
  readonly workers: number;
  /** `[cvm]`: az-snp-vtpm / az-tdx-vtpm trust anchors and collateral (issue 17). */
  readonly cvm: CvmConfig;
  /** `[console] enabled` (default true): serve the owner console at /console. */
  readonly console: { readonly enabled: boolean };
  /** `[continuous]`: bans, staleness, sweeping, event retention (issue 13). */
  readonly continuous: ContinuousSettings;
  /** `[[notify.webhook]]` (issue 13). */
  readonly webhooks: readonly WebhookConfig[];
  /** `[node_ca]`: node certificates for SPIRE x509pop (issue 13). */
  readonly nodeCa: NodeCaConfig;
}

/** Measured boot and IMA settings (`[tpm]` keys; see the README's "Measured boot and IMA"). */
export interface TpmMeasuredBootConfig {
  readonly requireEventLog: boolean;
  readonly allowSha1EventLog: boolean;
  readonly requireImaLog: boolean;
  readonly allowImaViolations: boolean;
  readonly imaCheckpointMaxNodes: number;
}

export const DEFAULTS = {
  listen: '127.0.0.1:8080',
  dataDir: './.keyhold/kbs',
  logLevel: 'info',
  sessionTtlMs: 5 * 60_000,
  maxSessions: 100_000,
  maxBodyBytes: 1024 * 1024,
  maxAuthBodyBytes: 64 * 1024,
  tokenLifetimeMs: 5 * 60_000,
  tokenIssuer: 'keyhold-kbs',
} as const;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'CONFIG_INVALID' as const;
}

/** Parse `keyhold-kbs serve` flags, the optional --config file (TOML or JSON) and the environment, once. */
export async function loadKbsConfig(argv: string[], env: NodeJS.ProcessEnv): Promise<KbsConfig> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      'data-dir': { type: 'string' },
      'admin-public-key': { type: 'string' },
      config: { type: 'string', short: 'c' },
      'log-level': { type: 'string' },
      'insecure-admin-allow-all': { type: 'boolean' },
      'insecure-http': { type: 'boolean' },
      workers: { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  let file: z.infer<typeof FileSchema> = {};
  const configPath = values.config ?? env['KEYHOLD_KBS_CONFIG'];
  if (configPath !== undefined) {
    let text: string;
    try {
      text = await readFile(configPath, 'utf8');
    } catch (cause) {
      throw new ConfigError(`cannot read config file ${configPath}: ${(cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (cause as Error).message}`, { cause });
    }
    const format = configPath.endsWith('.json') ? 'json' : 'toml';
    let raw: unknown;
    try {
      raw = format === 'json' ? JSON.parse(text) : parseToml(text);
    } catch (cause) {
      throw new ConfigError(format === 'json' ? `${configPath}: not valid JSON: ${(cause as Error).message}` : formatTomlSyntaxError(configPath, cause), { cause });
    }
    const parsed = FileSchema.safeParse(raw);
    if (!parsed.success) {
      const i = parsed.error.issues[0];
      throw new ConfigError(i === undefined ? `${configPath}: invalid` : formatConfigIssue(configPath, text, i, format));
    }
    file = parsed.data;
  }
  const listen = values.listen ?? env['KEYHOLD_KBS_LISTEN'] ?? file.listen ?? DEFAULTS.listen;
  const m = /^(.*):(\d{1,5})$/.exec(listen);
  if (m === null || Number(m[2]) > 65535) throw new ConfigError(`--listen must be HOST:PORT, got ${listen}`);
  const dataDir = resolve(values['data-dir'] ?? env['KEYHOLD_KBS_DATA_DIR'] ?? file.data_dir ?? DEFAULTS.dataDir);
  const rel = (p: string | undefined): string | undefined => (p === undefined ? undefined : isAbsolute(p) ? p : resolve(p));
  const state = fromSection(() => stateConfigFrom(file, rel));
  const workersText = values.workers ?? '1';
  if (!/^[1-9][0-9]?$/.test(workersText) || Number(workersText) > 64) throw new ConfigError(`--workers must be an integer in 1..64, got ${workersText.slice(0, 16)}`);
  const workers = Number(workersText);
  // SECURITY: embedded state belongs to one process (its data dir is locked); N processes on it would
  // each keep their own sessions, revocations and limits (split brain), so it is refused.
  if (workers > 1 && state.backend !== 'redis') {
    throw new ConfigError(`--workers ${workers} needs a shared state backend: set [state] backend = "redis" (embedded state belongs to one process)`);
  }
  const httpServer = fromSection(() => httpServerConfigFrom(file, { insecureHttp: values['insecure-http'] === true }, (p) => rel(p)!));
  const owners = fromSection(() => ownerConfigFrom(file, dataDir, { insecureAdminAllowAll: values['insecure-admin-allow-all'] === true }));
  // SECURITY: client certificates can only be asked for inside TLS; a client_ca on plain HTTP would
  // look like mutual TLS while admitting anyone with a token (configuration confusion).
  if (owners.admin.clientCaFile !== undefined && httpServer.tls === undefined) {
    throw new ConfigError('[admin] client_ca (mutual TLS for the admin API) needs TLS: give [http_server] certificate and private_key');
  }
  const config: KbsConfig = {
    host: m[1]!.replace(/^\[(.*)\]$/, '$1'),
    port: Number(m[2]),
    dataDir,
    adminPublicKeyFile: rel(values['admin-public-key'] ?? env['KEYHOLD_KBS_ADMIN_PUBLIC_KEY'] ?? file.admin_public_key),
    logLevel: values['log-level'] ?? env['KEYHOLD_KBS_LOG_LEVEL'] ?? file.log_level ?? DEFAULTS.logLevel,
    sessionTtlMs: file.session_ttl_ms ?? DEFAULTS.sessionTtlMs,
    maxSessions: file.max_sessions ?? DEFAULTS.maxSessions,
    maxBodyBytes: file.max_body_bytes ?? DEFAULTS.maxBodyBytes,
    maxAuthBodyBytes: Math.min(file.max_auth_body_bytes ?? DEFAULTS.maxAuthBodyBytes, file.max_body_bytes ?? DEFAULTS.maxBodyBytes),
    httpServer,
    policyLimits: fromSection(() => policyLimitsFrom(file.policy)),
    tokenLifetimeMs: file.token_lifetime_ms ?? DEFAULTS.tokenLifetimeMs,
    tokenSigningKeyFile: rel(file.token_signing_key),
    tokenIssuer: file.token_issuer ?? DEFAULTS.tokenIssuer,
    storage: file.storage ?? { backend: 'embedded' },
    rotationCheckIntervalMs: file.rotation_check_interval_ms ?? 60_000,
    tpm: {
      trustedAkList: file.tpm?.trusted_ak_list ?? true,
      measuredBoot: {
        requireEventLog: file.tpm?.require_event_log ?? false,
        allowSha1EventLog: file.tpm?.allow_sha1_event_log ?? false,
        requireImaLog: file.tpm?.require_ima_log ?? false,
        allowImaViolations: file.tpm?.allow_ima_violations ?? false,
        imaCheckpointMaxNodes: file.tpm?.ima_checkpoint_max_nodes ?? 10_000,
      },
    },
    tpmIdentity: tpmIdentityConfigFrom(file.tpm, dataDir),
    owners,
    state,
    workers,
    cvm: cvmConfigFrom(file.cvm),
    console: { enabled: file.console?.enabled ?? true },
    continuous: fromSection(() => continuousConfigFrom(file.continuous)),
    webhooks: fromSection(() => notifyConfigFrom(file.notify)),
    nodeCa: fromSection(() => nodeCaConfigFrom(file.node_ca)),
  };
  return deepFreeze(config);
}

/** Run a section's parser, turning its operator-readable Error into a ConfigError. */
function fromSection<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
