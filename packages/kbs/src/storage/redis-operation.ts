/** Options shared by the KBS's own Redis-backed stores (audit trail, policies). */
export interface RedisStoreOptions {
  /** Key namespace (default `kh`). */
  readonly keyPrefix?: string;
  /** Bound on one operation end to end (default 1500 ms). */
  readonly operationTimeoutMs?: number;
}

const PREFIX = /^[A-Za-z0-9_.-]{1,32}$/;

/** Validate the options once at construction (programmer/operator error → TypeError). */
export function checkRedisStoreOptions(component: string, options: RedisStoreOptions): { prefix: string; timeoutMs: number } {
  const prefix = options.keyPrefix ?? 'kh';
  if (!PREFIX.test(prefix)) throw new TypeError(`${component}: keyPrefix must match ^[A-Za-z0-9_.-]{1,32}$`);
  const timeoutMs = options.operationTimeoutMs ?? 1500;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 600_000) throw new TypeError(`${component}: operationTimeoutMs is an integer in 1..600000`);
  return { prefix, timeoutMs };
}

/**
 * Run one Redis operation with a deadline, so a hung server turns into an error quickly instead of
 * a request that never answers. Failures (including the timeout) reach `onError`, which maps them
 * to the caller's typed error.
 */
export async function withRedisDeadline<T>(timeoutMs: number, fn: () => Promise<T>, onError: (cause: unknown) => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('redis operation timed out')), timeoutMs);
  });
  try {
    return await Promise.race([fn(), deadline]);
  } catch (cause) {
    throw onError(cause);
  } finally {
    clearTimeout(timer);
  }
}
