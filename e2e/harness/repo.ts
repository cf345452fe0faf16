import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (e2e/ is one level below it). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Shared real TPM artifacts, read in place (never copied into the repo). */
export const CORPUS_DIR = resolve(REPO_ROOT, '..', 'shared', 'corpus');
export const HAVE_CORPUS = existsSync(CORPUS_DIR);

export const KBS_BIN = resolve(REPO_ROOT, 'packages/kbs/bin/keyhold-kbs.js');
export const AGENT_BIN = resolve(REPO_ROOT, 'packages/attestation-agent/bin/keyhold-agent.js');
export const CLI_BIN = resolve(REPO_ROOT, 'packages/cli/bin/keyhold.js');
