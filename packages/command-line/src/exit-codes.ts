/**
 * Exit codes every Keyhold binary uses: 0 ok, 1 failure (or a negative verdict), 2 usage error
 * (bad flags, a missing or malformed argument, an unusable config), 3 refused by the KBS (401/403:
 * token, role or attestation), 4 not found (404).
 */
export const EXIT = { OK: 0, FAIL: 1, USAGE: 2, DENIED: 3, NOT_FOUND: 4 } as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
