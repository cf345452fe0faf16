#!/usr/bin/env node
import { runKeyhold } from '../program.js';

runKeyhold(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin }, process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`keyhold: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
