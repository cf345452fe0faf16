/**
 * Stable codes for everything the attestation agent can fail with. Messages never carry keys,
 * evidence or secret values; TSS return codes are kept as a number on {@link TpmError}.
 */
export type AgentErrorCode =
  /** The TPM (or its TCTI, or the tpm2-tss libraries) cannot be reached or loaded. */
  | 'TPM_UNAVAILABLE'
  /** A TPM command returned an error code. */
  | 'TPM_COMMAND_FAILED'
  /** No attestation key exists where one was expected (persistent handle empty, no stored blob). */
  | 'TPM_NO_AK'
  /** The NV index does not exist or is not readable. */
  | 'TPM_NV_NOT_FOUND'
  /** The TPM (or a stored blob) produced bytes that do not parse as the structure expected. */
  | 'TPM_BAD_RESPONSE'
  /** A PCR changed between reading it and quoting it, twice in a row. */
  | 'TPM_PCR_CHANGED'
  /** A key sealed to PCR values (PolicyPCR) was used after those PCRs changed. */
  | 'TPM_POLICY_FAILED'
  /** The operation is not offered by this TPM implementation (e.g. the software TPM). */
  | 'TPM_UNSUPPORTED'
  /** The device was used after close(). */
  | 'TPM_CLOSED'
  /** Reading or writing the agent's AK state files failed. */
  | 'AK_STORE_FAILED'
  /** PCR8 already holds a different init-data binding since the last TPM reset. */
  | 'INIT_DATA_CONFLICT'
  /** The agent's flags, environment or config file are invalid. */
  | 'CONFIG_INVALID'
  /** The sealed JWE cache (`--cache-dir`) has no usable entry or cannot be written. */
  | 'CACHE_FAILED'
  /** The confidential-VM platform (Azure IMDS) did not provide the VCEK or TD quote. */
  | 'CVM_PLATFORM_UNAVAILABLE'
  /** The node-certificate directory, key or certificate files cannot be used (`run --node-cert-dir`). */
  | 'NODE_CERT_FILES'
  /** The KBS answered the node-certificate request with something that is not the certificate asked for. */
  | 'NODE_CERT_INVALID'
  /** The `run --resource-socket` path cannot be served (in use, not a socket, an unsafe directory). */
  | 'RESOURCE_SOCKET';

export class AgentError extends Error {
  override readonly name: string = 'AgentError';
  readonly code: AgentErrorCode;
  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** An error from the TPM layer; `rc` is the TSS2_RC when one was returned. */
export class TpmError extends AgentError {
  override readonly name: string = 'TpmError';
  readonly rc: number | undefined;
  constructor(code: AgentErrorCode, message: string, options?: { cause?: unknown; rc?: number }) {
    super(code, message, options);
    this.rc = options?.rc;
  }
}
