import type { CliIo } from '@keyhold/command-line';
import type { AdminClient, KbsFlags } from './kbs-admin-client.js';

/** What a `keyhold` command gets besides its own flags: streams, environment, the global flags. */
export interface KeyholdRun {
  readonly io: CliIo;
  readonly env: NodeJS.ProcessEnv;
  /** `--json` (global): results as JSON on stdout, errors as JSON on stderr. */
  readonly json: boolean;
  /** The global KBS flags as given (--url, --cert-file, --admin-token-file, --auth-private-key). */
  flags(): KbsFlags;
  /** The KBS admin client of this run, from --url, --cert-file, --admin-token-file / --auth-private-key (made on first use, closed at the end). */
  admin(): Promise<AdminClient>;
  /** The clock (tests pin it). */
  now(): Date;
}
