import { randomBytes, type KeyObject } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { RotationScheduler } from '@keyhold/kms-adapter';
import { createApp } from './app.js';
import type { KbsDeps } from './app-env.js';
import { ConfigError, type KbsConfig } from './config.js';
import { NO_TRANSPORT_MESSAGE } from './http-server/http-server-config.js';
import { TpmAppraiser } from './attestation/tpm/tpm-appraiser.js';
import { MeasuredBootExtension } from './attestation/tpm/measured-boot-extension.js';
import { ImaExtension } from './attestation/tpm/ima-extension.js';
import { IdentityExtension } from './attestation/tpm/identity-extension.js';
import { TeeKeyResidencyExtension } from './attestation/tpm/tee-key-residency-extension.js';
import { openAzVtpmAppraisers } from './attestation/az-vtpm/open-az-vtpm.js';
import type { TeeAppraiser } from './attestation/tee-appraiser.js';
import { kmsResourceStore } from './release/kms-resource-store.js';
import { loadOrCreateSigningKey } from './signing-key.js';
import { openSecretStore } from './storage/open-secret-store.js';
import { EarSigner } from './token/ear-signer.js';
import { openOwnerServices } from './owners/open-owner-services.js';
import { openConfiguredState } from './state-wiring/open-state.js';
import { CONSOLE_ASSETS_DIR } from '@keyhold/console';
import { registerConsole } from './console/serve-console.js';
import { EventPublisher } from './notify/event-publisher.js';
import { readWebhookSecret } from './notify/notify-config.js';
import { WebhookNotifier, type WebhookTarget } from './notify/webhook-notifier.js';
import { openNodeCaProvider } from './node-ca/node-ca-provider.js';
import { StaleSweeper } from './continuous/stale-sweeper.js';
import { NodeRecordCache } from './continuous/record-attestation.js';
import type { ContinuousDeps } from './continuous/continuous-deps.js';
import { listenKbs } from './http-server/listen.js';
import { storageCauses, storageEndpointsOf } from './storage/storage-failure.js';
import type { TlsMaterial } from './http-server/tls-material.js';

export const BUILD = 'keyhold-kbs 0.1.0';

export interface RunningKbs {
  url: string;
  port: number;
  /**
   * Read `[http_server] certificate` / `private_key` (and `[admin] client_ca`) again and serve new
   * connections with them, without closing the listener (SIGHUP). Rejects and keeps the running
   * material when the files do not check out; resolves undefined on plain HTTP.
   */
  reloadTls(): Promise<TlsMaterial['summary'] | undefined>;
  close(): Promise<void>;
}

/** Where the generated token signing key is kept when `token_signing_key` is not configured. */
export function generatedSigningKeyPath(config: KbsConfig): string {
  return join(config.dataDir, 'token-signing-key.pem');
}

/**
 * Wire the real adapters from a parsed config and start the HTTP server. With embedded state the
 * data dir's lock is taken first: a second process on the same dir fails here with
 * StateError('STATE_LOCKED') before it listens.
 */
export async function startKbs(config: KbsConfig, logger: Logger = pino({ level: config.logLevel })): Promise<RunningKbs> {
  // SECURITY: no silent plain HTTP: TLS material or an explicit insecure_http / --insecure-http.
  if (config.httpServer.tls === undefined && !config.httpServer.insecureHttp) throw new ConfigError(NO_TRANSPORT_MESSAGE);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  for (const notice of config.state.notices) logger.warn(notice);
  if (config.tpmIdentity.ekCaDirIsDefault) await mkdir(config.tpmIdentity.ekCaDir, { recursive: true, mode: 0o700 });
  const opened = await openConfiguredState(config);
  const { state } = opened;
  const closers: (() => Promise<void>)[] = [() => state.close()];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.reverse()) await close().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'close failed'));
  };
  try {
    if (opened.removedTempFiles.length > 0) logger.info({ files: opened.removedTempFiles.length }, 'removed temp files of interrupted writes');
    const storageEndpoints = storageEndpointsOf(config);
    // Not awaited: a KBS may start while Redis is down (requests answer 503 until it is back).
    state.ping().catch((err: unknown) =>
      logger.warn({ state: state.backend, endpoint: storageEndpoints.state, causes: storageCauses(err) }, 'state backend not reachable yet; requests that need it answer 503 until it is'),
    );
    if (state.backend === 'redis' && config.tokenSigningKeyFile === undefined) {
      // Replicas must verify each other's tokens (bearer tokens, /resource on another replica).
      logger.warn(
        { file: generatedSigningKeyPath(config) },
        'redis state with a token signing key generated in the data dir: every replica must use the same key (set token_signing_key to one shared PEM file, or share the data dir)',
      );
    }
    const signingKey = await loadOrCreateSigningKey(config.tokenSigningKeyFile, generatedSigningKeyPath(config));
    const signer = await EarSigner.create({
      privateKey: signingKey,
      issuer: config.tokenIssuer,
      lifetimeMs: config.tokenLifetimeMs,
    });
    const owners = await openOwnerServices(config.owners, {
      state,
      adminPublicKeyFile: config.adminPublicKeyFile,
      logger,
      auditTruncatedTornBytes: opened.auditTruncatedTornBytes,
      policyLimits: config.policyLimits,
    });
    closers.push(() => owners.close());
    const store = await openSecretStore(config);
    closers.push(() => store.close());
    const rotation = new RotationScheduler({
      store,
      checkIntervalMs: config.rotationCheckIntervalMs,
      minIntervalMs: Math.min(1000, config.rotationCheckIntervalMs),
      onTick: (r) => {
        for (const m of r.rotated) logger.info({ resource: m.name, version: m.version }, 'key rotated');
        for (const f of r.failed) logger.warn({ resource: f.name, code: f.code }, 'key rotation failed');
      },
    });
    rotation.start();
    closers.push(async () => rotation.stop());
    const boot = config.tpm.measuredBoot;
    const id = config.tpmIdentity;
    const identity = new IdentityExtension({
      ekCa: state.ekCa,
      ekAllowlist: state.ekAllowlist,
      nodes: state.nodes,
      requireEkCertificate: id.requireEkCertificate,
      requireEkAllowlist: id.requireEkAllowlist,
      trustedAkList: config.tpm.trustedAkList,
      trustDomain: id.trustDomain,
    });
    const measuredBootExtensions = [
      new MeasuredBootExtension({ requireEventLog: boot.requireEventLog, allowSha1: boot.allowSha1EventLog }),
      new ImaExtension({
        checkpoints: state.imaCheckpoints,
        requireImaLog: boot.requireImaLog,
        allowSha1: boot.allowSha1EventLog,
        allowViolations: boot.allowImaViolations,
      }),
    ];
    const tpm = new TpmAppraiser({
      trustedAkList: config.tpm.trustedAkList,
      extensions: [identity, ...measuredBootExtensions, new TeeKeyResidencyExtension()],
    });
    const cvmAppraisers = await openAzVtpmAppraisers(config.cvm, measuredBootExtensions);
    const continuous = await startContinuous(config, { state, signingKey, logger, metrics: owners.services.metrics, closers });
    const deps: KbsDeps = {
      state,
      sessionTtlMs: config.sessionTtlMs,
      signer,
      appraisers: new Map<string, TeeAppraiser>([[tpm.tee, tpm], ...cvmAppraisers.map((a) => [a.tee, a] as const)]),
      attestationPolicy: owners.attestationPolicy,
      resourcePolicy: owners.resourcePolicy,
      resources: kmsResourceStore(store),
      adminAuth: owners.adminAuth,
      logger,
      maxBodyBytes: config.maxBodyBytes,
      maxAuthBodyBytes: config.maxAuthBodyBytes,
      requireAdminClientCertificate: config.owners.admin.clientCaFile !== undefined,
      storageEndpoints,
      build: BUILD,
      owners: owners.services,
      continuous,
    };
    const app = createApp(deps);
    registerConsole(app, { enabled: config.console.enabled, assetsDir: CONSOLE_ASSETS_DIR });
    const listener = await listenKbs({ fetch: app.fetch, host: config.host, port: config.port, http: config.httpServer, clientCaFile: config.owners.admin.clientCaFile });
    const { url, port } = listener;
    if (listener.tls === undefined) {
      logger.warn({ url }, 'INSECURE: serving plain HTTP (--insecure-http / [http_server] insecure_http): tokens, cookies and released secrets cross the network in clear; use TLS ([http_server] certificate and private_key) anywhere but loopback tests');
    } else {
      logger.info({ tls: listener.tls, adminMutualTls: config.owners.admin.clientCaFile !== undefined }, 'TLS certificate loaded');
    }
    const h = config.httpServer;
    logger.info(
      { url, dataDir: config.dataDir, storage: store.backend, state: state.backend, requestTimeoutMs: h.requestTimeoutMs, headersTimeoutMs: h.headersTimeoutMs, maxConnections: h.maxConnections },
      'keyhold-kbs listening',
    );
    return {
      url,
      port,
      reloadTls: () => listener.reloadTls(),
      async close() {
        await listener.close();
        await closeAll();
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * Continuous attestation (issue 13): the event publisher (durable for the events a webhook wants),
 * the node CA, the stale sweeper and the webhook notifier (the last two run on whichever replica
 * holds their lease). Their stop functions are pushed onto `closers`.
 */
async function startContinuous(
  config: KbsConfig,
  o: { state: KbsDeps['state']; signingKey: KeyObject; logger: Logger; metrics: NonNullable<KbsDeps['owners']>['metrics']; closers: (() => Promise<void>)[] },
): Promise<ContinuousDeps> {
  const replica = `${hostname()}/${process.pid}`;
  const holder = `${replica}/${randomBytes(4).toString('hex')}`;
  const trustDomain = config.tpmIdentity.trustDomain;
  const targets: WebhookTarget[] = [];
  for (const h of config.webhooks) targets.push({ name: h.name, url: h.url, secret: await readWebhookSecret(h), events: new Set(h.events), timeoutMs: h.timeoutMs });
  const events = new EventPublisher({
    events: o.state.events,
    replica,
    durable: (e) => targets.some((t) => t.events.has(e.type)),
    ...(o.metrics !== undefined ? { metrics: o.metrics } : {}),
    logger: o.logger,
  });
  o.closers.push(() => events.close());
  const nodeCa = await openNodeCaProvider({ config: config.nodeCa, state: o.state.nodeCa, signingKey: o.signingKey, trustDomain });
  const sweeper = new StaleSweeper({ state: o.state, events, settings: config.continuous, holder, trustDomain, logger: o.logger });
  sweeper.start();
  o.closers.push(() => sweeper.stop());
  const notifier = new WebhookNotifier({ state: o.state, targets, holder, logger: o.logger, ...(o.metrics !== undefined ? { metrics: o.metrics } : {}) });
  notifier.start();
  o.closers.push(() => notifier.stop());
  return { settings: config.continuous, trustDomain, events, nodeCa, nodeCache: new NodeRecordCache() };
}
