#!/usr/bin/env node
import { runAgentCli } from '../cli.js';

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
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`keyhold-agent: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
