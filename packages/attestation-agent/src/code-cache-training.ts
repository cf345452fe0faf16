/**
 * For scripts/bundle-cli.mjs only, which makes each bundle's V8 code cache by running it against its
 * in-memory software TPM: a session opener over the TPM device the script passes in. Only code that
 * loads a bundle itself can reach it; no command line can pass a device.
 */
import type { SessionOpener } from './node-commands.js';
import type { TpmDevice } from './tpm/device.js';

export const trainingOpener =
  (tpm: TpmDevice): SessionOpener =>
  async (config, opts) =>
    (await import('./node-session.js')).openNodeSession(config, { ...opts, tpm });
