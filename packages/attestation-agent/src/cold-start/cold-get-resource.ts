/**
 * `keyhold-agent get-resource RESOURCE [agent flags]` — attest and fetch one secret, as ocicrypt's
 * cmd mode and scripts start the agent, once per key — without commander and the rest of the CLI:
 * bin/keyhold-agent.js runs this first for a `get-resource` command line, from its own bundle with
 * its own code cache (dist/bundle/cold-get-resource.cjs, ~1/6 of the full CLI's), so a cold start
 * loads and initialises only what this command uses.
 *
 * The same code does the work as in the full CLI — agentConfigFrom, node-commands' resourceArgument
 * and getResource, the node session, describeAgentError — in the same order, and errors are
 * reported the same way (writeError, exit codes 0/1/2/3/4). Only the narrow forms of cold-args.ts
 * are taken; for anything else this returns undefined having done nothing, and the full CLI runs
 * (a test runs both on the same command lines and compares exit code, stdout and stderr).
 */
import { CliError, writeError, type CliIo } from '@keyhold/command-line/reporting';
import type { AgentConfig } from '../config.js';
import type { SessionOpener } from '../node-commands.js';
import { markPhase } from '../phase-channel.js';
import { trainingOpener } from '../code-cache-training.js';
import { coldArgs, type ColdArgs } from './cold-args.js';

/**
 * Run `get-resource` when `args` (after `keyhold-agent`) are a form taken here: the exit code.
 * Undefined, having done nothing, otherwise. `opener`: the node session (tests and the code-cache
 * training pass their own TPM); the real one by default.
 */
export function coldGetResource(args: readonly string[], io: CliIo, env: NodeJS.ProcessEnv, opener?: SessionOpener): Promise<number> | undefined {
  const parsed = coldArgs(args);
  if (parsed === undefined) return undefined;
  return run(parsed, io, env, opener);
}

async function run(p: ColdArgs, io: CliIo, env: NodeJS.ProcessEnv, opener: SessionOpener | undefined): Promise<number> {
  markPhase('cli:init');
  let config: AgentConfig | undefined;
  try {
    // As cli.ts's get-resource action: the resource is checked before the configuration.
    const m = await import('../node-commands.js');
    const path = m.resourceArgument(p.resource);
    config = (await import('../config.js')).agentConfigFrom(p.values, env);
    return await m.getResource(path, { file: undefined, encoding: p.encoding }, config, io, opener ?? (await import('../node-session.js')).openNodeSession);
  } catch (err) {
    // As runProgram with the agent's describeError.
    const { describeAgentError } = await import('../cli-errors.js');
    const described = (await describeAgentError(err, config)) ?? (err instanceof CliError ? err : undefined) ?? new CliError('INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    writeError(io, 'keyhold-agent get-resource', described, p.json);
    return described.exitCode;
  }
}

/**
 * For scripts/bundle-cli.mjs only, which makes this bundle's code cache by running it against its
 * in-memory TPM (see src/bin/keyhold-agent.ts): a session opener over the TPM device it passes in.
 * Not reachable from the command line.
 */
export const codeCacheTraining = { coldGetResource, opener: trainingOpener };
