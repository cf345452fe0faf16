import { expect } from 'vitest';
import { KbsClientError } from './errors.js';

/** The message of the JWE_DECRYPT_FAILED error a decryption fails with (the test fails if it succeeds or fails otherwise). */
export async function jweRefusal(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KbsClientError);
  expect((err as KbsClientError).code).toBe('JWE_DECRYPT_FAILED');
  return (err as Error).message;
}
