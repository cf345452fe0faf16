/**
 * EK CA store entries: TPM vendor roots and intermediates the owner trusts, as the admin API lists
 * them. The store itself is the state port's `EkCaState` (the configured `ek_ca_dir`, read at start,
 * plus admin uploads), in `state/`.
 */
export interface CaStoreEntry {
  readonly file: string;
  readonly subject: string;
  readonly issuer: string;
  readonly notAfter: string;
  /** Hex SHA-256 of the certificate DER. */
  readonly sha256: string;
}
