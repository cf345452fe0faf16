/** Where a command writes: results on stdout, messages and errors on stderr. */
export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Standard input, for commands that read it. */
  stdin?: NodeJS.ReadableStream;
}

/** A `keyhold` sub-command: returns its exit code (0 ok, 1 failure/negative verdict, 2 usage error). */
export interface CommandModule {
  run(argv: string[], io: CommandIo): Promise<number>;
}

/** Exit codes shared by every command: 0 ok, 1 failure, 2 usage, 3 refused by the KBS (401/403), 4 not found (404). */
export const EXIT = { OK: 0, FAIL: 1, USAGE: 2, DENIED: 3, NOT_FOUND: 4 } as const;
