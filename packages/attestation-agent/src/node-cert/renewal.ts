/**
 * When the node certificate is renewed: at two-thirds of its lifetime (what SPIRE does for SVIDs),
 * so a renewal that fails can be retried for the last third before the certificate lapses.
 */

/** The moment (ms) a certificate valid over [notBefore, notAfter] is due for renewal. */
export function renewalDueAtMs(notBeforeMs: number, notAfterMs: number): number {
  if (!(notAfterMs > notBeforeMs)) return notBeforeMs;
  return notBeforeMs + Math.floor(((notAfterMs - notBeforeMs) * 2) / 3);
}

/** What the daemon knows of the certificate in the directory. */
export interface HeldCertificate {
  readonly notBeforeMs: number;
  readonly notAfterMs: number;
  /** Hex SHA-256 of the certificate's SubjectPublicKeyInfo. */
  readonly spkiSha256: string;
}

/**
 * Whether to request a certificate now: none held, held for another key (the key was replaced),
 * not yet valid (the clock moved back) or expired, or past two-thirds of its lifetime.
 */
export function renewalNeeded(held: HeldCertificate | undefined, keySpkiSha256: string, nowMs: number): boolean {
  if (held === undefined) return true;
  if (held.spkiSha256 !== keySpkiSha256) return true;
  if (nowMs < held.notBeforeMs || nowMs >= held.notAfterMs) return true;
  return nowMs >= renewalDueAtMs(held.notBeforeMs, held.notAfterMs);
}
