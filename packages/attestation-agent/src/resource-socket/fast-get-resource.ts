/**
 * `keyhold-agent get-resource --resource-socket PATH RESOURCE [--raw|--base64]` without the CLI
 * parser or the TPM layer: bin/keyhold-agent.js tries this first when the command line names
 * `get-resource` and `--resource-socket`, from its own small bundle (dist/bundle/fast-get-resource.cjs),
 * so that a workload fetching a secret through the daemon pays little more than node's own start.
 *
 * Only that narrow form is handled here. Anything else — another flag, `-o`, `--json`, `--help`, a
 * repeated option, a resource that does not parse — returns undefined before any effect, and the
 * full CLI runs, which fetches through the socket the same way (cli.ts; a test runs both on the same
 * command lines and compares exit code, stdout and stderr).
 */
import { CliError, writeError, type CliIo } from '@keyhold/command-line/reporting';
import type { ResourcePath } from '@keyhold/protocol/resource-path';
import { fetchFromResourceSocket } from './client.js';
import { printSecret, type SecretEncoding } from './print-secret.js';
import { resourceFromArgument } from './wire.js';

interface FastArgs {
  socket: string;
  resource: ResourcePath & { version?: number };
  encoding: SecretEncoding;
}

/** The arguments after `keyhold-agent`, when they are exactly the form handled here. */
export function fastArgs(args: readonly string[]): FastArgs | undefined {
  if (args[0] !== 'get-resource') return undefined;
  let socket: string | undefined;
  let positional: string | undefined;
  let path: string | undefined;
  let encoding: SecretEncoding | undefined;
  for (let i = 1; i < args.length; i++) {
    const a = args[i] as string;
    let name: string;
    let value: string | undefined;
    if (a === '--raw' || a === '--base64') {
      if (encoding !== undefined) return undefined;
      encoding = a === '--raw' ? 'raw' : 'base64';
      continue;
    } else if (!a.startsWith('-')) {
      if (positional !== undefined) return undefined;
      positional = a;
      continue;
    } else if (a === '--resource-socket' || a === '--path') {
      name = a;
      value = args[++i];
    } else if (a.startsWith('--resource-socket=') || a.startsWith('--path=')) {
      name = a.slice(0, a.indexOf('='));
      value = a.slice(a.indexOf('=') + 1);
    } else {
      return undefined;
    }
    if (value === undefined || value === '' || value.startsWith('-')) return undefined;
    if (name === '--path') {
      if (path !== undefined) return undefined;
      path = value;
    } else {
      if (socket !== undefined) return undefined;
      socket = value;
    }
  }
  if (socket === undefined || (positional === undefined) === (path === undefined)) return undefined;
  try {
    return { socket, resource: resourceFromArgument((positional ?? path) as string), encoding: encoding ?? 'raw' };
  } catch {
    return undefined;
  }
}

/**
 * Run `get-resource` through the socket when `args` (after `keyhold-agent`) are the form handled
 * here: the exit code. Undefined, having done nothing, otherwise.
 */
export function fastGetResource(args: readonly string[], io: CliIo): Promise<number> | undefined {
  const parsed = fastArgs(args);
  if (parsed === undefined) return undefined;
  return (async () => {
    let secret: Buffer | undefined;
    try {
      secret = await fetchFromResourceSocket(parsed.socket, parsed.resource);
      await printSecret(secret, parsed.encoding, io);
      return 0;
    } catch (err) {
      const reported = err instanceof CliError ? err : new CliError('OUTPUT_FAILED', `cannot write the secret: ${(err as Error).message ?? err}`);
      writeError(io, 'keyhold-agent get-resource', reported, false);
      return reported.exitCode;
    } finally {
      secret?.fill(0);
    }
  })();
}
