#!/usr/bin/env node
import { runKbsCli } from '../serve-command.js';

runKbsCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr }, process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`keyhold-kbs: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
