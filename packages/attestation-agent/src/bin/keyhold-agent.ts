#!/usr/bin/env node
import { runAgentCli } from '../cli.js';
import { trainingOpener } from '../code-cache-training.js';

// tpm2-tss logs TPM error responses to stderr itself; the agent reports errors as one typed line.
// TSS2_LOG is read at the first log call, so setting it here (before any TPM call) is enough.
process.env['TSS2_LOG'] ??= 'all+NONE';

// stdin on demand: process.stdin builds a stream (and loads its modules) on first access, which only
// `keyprovider cmd` needs.
const io = {
  stdout: process.stdout,
  stderr: process.stderr,
  get stdin() {
    return process.stdin;
  },
};
runAgentCli(process.argv.slice(2), io, process.env).then(
  (code) => exitWhenWritten(code),
  (err: unknown) => {
    process.stderr.write(`keyhold-agent: ${err instanceof Error ? err.message : String(err)}\n`);
    exitWhenWritten(1);
  },
);

/**
 * The command is over (its TPM session, KBS connections and files closed): exit as soon as what it
 * wrote to stdout and stderr has been handed to the OS, instead of letting node tear the heap down
 * piece by piece (~8 ms of a one-shot get-resource; the kernel frees the memory at once). A write's
 * callback runs after the writes queued before it, so nothing printed is lost when the stream is
 * asynchronous (a pipe on some platforms).
 */
function exitWhenWritten(code: number): void {
  process.exitCode = code;
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

/**
 * For scripts/bundle-cli.mjs only, which makes the bundle's V8 code cache by running the bundle: the
 * CLI entry, and a session opener over a TPM device the script passes in (its in-memory stand-in,
 * as no TPM is there at build time), so that a whole `get-resource` — handshake, HTTP, the KBS's
 * answers parsed, evidence, JWE — runs once and is compiled into the cache. Nothing here is
 * reachable from the command line: only code that loads this module itself can pass a device.
 */
export const codeCacheTraining = { runAgentCli, opener: trainingOpener };
