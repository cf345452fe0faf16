/**
 * `keyhold-kbs migrate-state --from embedded --to redis --config FILE [--data-dir DIR] [--merge]`:
 * copy a data dir's state (node records, reference values, EK allowlist, uploaded EK CA
 * certificates, policies, the audit trail) into the configured Redis (`[state]` url /
 * cluster_nodes, else the `[storage]` Redis), or back with `--from redis --to embedded`. The
 * embedded side is opened with its lock held, so the KBS using that data dir must be stopped.
 * Sessions, nonces, rate-limit buckets and IMA checkpoints are not copied (short-lived by design).
 * The target must hold no KBS state unless `--merge` is given. Progress goes to stderr, the summary
 * (JSON) to stdout. Exit 0 on success, 2 on usage or configuration errors (a held lock, a non-empty
 * target), 1 when the copy failed.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadKbsConfig, type KbsConfig } from '../config.js';
import { copyState, openEmbeddedState, openRedisState } from '../state/index.js';
import { StateError } from '../state/errors.js';
import type { KbsState } from '../state/ports.js';
import { redisConnection } from './open-state.js';

export const MIGRATE_USAGE = 'keyhold-kbs migrate-state --from embedded|redis --to redis|embedded --config FILE [--data-dir DIR] [--merge]';

export interface MigrateIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

type Backend = 'embedded' | 'redis';

async function openSide(config: KbsConfig, backend: Backend): Promise<KbsState> {
  const sessionLimits = { maxSessions: config.maxSessions, maxSessionBytes: config.state.maxSessionBytes };
  const id = config.tpmIdentity;
  if (backend === 'redis') {
    return openRedisState({ ...redisConnection(config.state.redis!), sessionLimits, ekCaDir: id.ekCaDir, ekCaDirRequired: !id.ekCaDirIsDefault });
  }
  return openEmbeddedState({
    dataDir: config.dataDir,
    sessionLimits,
    ekCaDir: id.ekCaDir,
    ekCaDirRequired: !id.ekCaDirIsDefault,
    ekAllowlistDir: id.ekAllowlistDir,
    enrolmentDir: id.enrolmentDir,
    auditFile: config.owners.auditFile ?? null,
  });
}

export async function runMigrateState(argv: string[], env: NodeJS.ProcessEnv, io: MigrateIo): Promise<number> {
  let from: Backend;
  let to: Backend;
  let merge: boolean;
  let config: KbsConfig;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        from: { type: 'string' },
        to: { type: 'string' },
        config: { type: 'string', short: 'c' },
        'data-dir': { type: 'string' },
        merge: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    });
    const isBackend = (v: string | undefined): v is Backend => v === 'embedded' || v === 'redis';
    if (!isBackend(values.from) || !isBackend(values.to) || values.from === values.to) {
      throw new ConfigError(`give --from and --to, one embedded and one redis\nUsage: ${MIGRATE_USAGE}`);
    }
    from = values.from;
    to = values.to;
    merge = values.merge === true;
    config = await loadKbsConfig(
      [...(values.config !== undefined ? ['--config', values.config] : []), ...(values['data-dir'] !== undefined ? ['--data-dir', values['data-dir']] : [])],
      env,
    );
    if (config.state.redis === undefined) throw new ConfigError('migrate-state needs a Redis: give [state] url or cluster_nodes, or use [storage] backend = "redis"');
  } catch (err) {
    io.stderr(`keyhold-kbs migrate-state: ${(err as Error).message}\n`);
    return 2;
  }

  let source: KbsState | undefined;
  let target: KbsState | undefined;
  try {
    source = await openSide(config, from);
    target = await openSide(config, to);
    io.stderr(`copying state from ${from} (${from === 'embedded' ? config.dataDir : 'redis'}) to ${to}\n`);
    const summary = await copyState(source, target, {
      merge,
      onProgress: (p) => io.stderr(`  ${p.store}: ${p.done}${p.total !== undefined ? `/${p.total}` : ''}\n`),
    });
    io.stdout(`${JSON.stringify({ from, to, ...summary })}\n`);
    return 0;
  } catch (err) {
    // A held lock or a non-empty target (without --merge) is the operator's to resolve: exit 2.
    const operator = err instanceof StateError && (err.code === 'STATE_LOCKED' || err.code === 'STATE_CONFLICT');
    io.stderr(`keyhold-kbs migrate-state: ${(err as Error).message}\n`);
    return operator || err instanceof ConfigError ? 2 : 1;
  } finally {
    await target?.close().catch(() => undefined);
    await source?.close().catch(() => undefined);
  }
}
