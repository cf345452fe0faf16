import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import { pino, type Logger } from 'pino';
import { RotationScheduler } from '@keyhold/kms-adapter';
import { createApp } from './app.js';
import type { KbsDeps } from './app-env.js';
import type { KbsConfig } from './config.js';
import { TpmAppraiser } from './attestation/tpm/tpm-appraiser.js';
import { MeasuredBootExtension } from './attestation/tpm/measured-boot-extension.js';
import { ImaExtension } from './attestation/tpm/ima-extension.js';
import { InMemoryImaCheckpointStore } from './attestation/tpm/ima-checkpoint-store.js';
import { openIdentity } from './attestation/tpm/identity-services.js';
import { ReferenceValueStore } from './reference-values/reference-value-store.js';
import { kmsResourceStore } from './release/kms-resource-store.js';
import { InMemorySessionStore } from './session/session-store.js';
import { loadOrCreateSigningKey } from './signing-key.js';
import { openSecretStore } from './storage/open-secret-store.js';
import { EarSigner } from './token/ear-signer.js';
import { openOwnerServices } from './owners/open-owner-services.js';
import { CONSOLE_ASSETS_DIR } from '@keyhold/console';
import { registerConsole } from './console/serve-console.js';

export const BUILD = 'keyhold-kbs 0.1.0';

export interface RunningKbs {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Wire the real adapters from a parsed config and start the HTTP server. */
export async function startKbs(config: KbsConfig, logger: Logger = pino({ level: config.logLevel })): Promise<RunningKbs> {
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const signer = await EarSigner.create({
    privateKey: await loadOrCreateSigningKey(config.tokenSigningKeyFile, join(config.dataDir, 'token-signing-key.pem')),
    issuer: config.tokenIssuer,
    lifetimeMs: config.tokenLifetimeMs,
  });
  const owners = await openOwnerServices(config.owners, { adminPublicKeyFile: config.adminPublicKeyFile, logger });
  const adminAuth = owners.adminAuth;
  const store = await openSecretStore(config);
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
  const references = await ReferenceValueStore.open(join(config.dataDir, 'reference-values.json'));
  const sessions = new InMemorySessionStore({ ttlMs: config.sessionTtlMs, maxSessions: config.maxSessions });
  const boot = config.tpm.measuredBoot;
  const measuredBootExtensions = [
    new MeasuredBootExtension({ requireEventLog: boot.requireEventLog, allowSha1: boot.allowSha1EventLog }),
    new ImaExtension({
      checkpoints: new InMemoryImaCheckpointStore({ maxNodes: boot.imaCheckpointMaxNodes }),
      requireImaLog: boot.requireImaLog,
      allowSha1: boot.allowSha1EventLog,
      allowViolations: boot.allowImaViolations,
    }),
  ];
  const identity = await openIdentity(config.tpmIdentity, { trustedAkList: config.tpm.trustedAkList });
  const tpm = new TpmAppraiser({ trustedAkList: config.tpm.trustedAkList, extensions: [identity.extension, ...measuredBootExtensions] });
  const deps: KbsDeps = {
    sessions,
    signer,
    appraisers: new Map([[tpm.tee, tpm]]),
    attestationPolicy: owners.attestationPolicy,
    resourcePolicy: owners.resourcePolicy,
    resources: kmsResourceStore(store),
    references,
    adminAuth,
    logger,
    maxBodyBytes: config.maxBodyBytes,
    build: BUILD,
    identity: identity.services,
    owners: owners.services,
  };
  const app = createApp(deps);
  registerConsole(app, { enabled: config.console.enabled, assetsDir: CONSOLE_ASSETS_DIR });
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, () => resolve(s));
    s.once('error', reject);
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : config.port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${host}:${port}`;
  logger.info({ url, dataDir: config.dataDir, storage: store.backend }, 'keyhold-kbs listening');
  return {
    url,
    port,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      sessions.close();
      rotation.stop();
      await store.close();
      await owners.close();
    },
  };
}
