/**
 * `keyprovider --resource-socket PATH`: KEKs fetched through the resident daemon (`keyhold-agent run
 * --resource-socket PATH`) instead of a TPM session and a handshake in this process — ocicrypt's cmd
 * mode starts the key provider once per layer key. The daemon's refusals keep their meaning: its
 * KBS error codes become the KBS client's errors (and so the same key-provider codes as a direct
 * fetch), its TPM errors mean the node cannot attest, and a daemon that cannot be reached is
 * KBS_UNAVAILABLE (nothing can be fetched now).
 */
import type { ResourcePath } from '@keyhold/protocol';
import { KbsClientError, type KbsClientErrorCode } from '../kbs-client/errors.js';
import { fetchFromResourceSocket, ResourceSocketError } from '../resource-socket/client.js';
import { KeyProviderError } from './errors.js';
import type { KekSource } from './unwrap-service.js';

const KBS_CODES = new Set<string>(['KBS_UNREACHABLE', 'KBS_PROTOCOL', 'KBS_REFUSED', 'ATTESTATION_FAILED', 'POLICY_DENY', 'RESOURCE_NOT_FOUND', 'UNAUTHORIZED', 'KBS_UNAVAILABLE', 'JWE_DECRYPT_FAILED', 'EVIDENCE_FAILED'] satisfies KbsClientErrorCode[]);

function translated(err: unknown): unknown {
  if (!(err instanceof ResourceSocketError)) return err;
  if (KBS_CODES.has(err.code)) return new KbsClientError(err.code as KbsClientErrorCode, err.detail, { ...(err.status !== undefined ? { status: err.status } : {}), cause: err });
  if (err.code.startsWith('TPM_')) return new KeyProviderError('ATTESTER_UNAVAILABLE', `cannot attest: ${err.message}`, { cause: err });
  return new KeyProviderError('KBS_UNAVAILABLE', `cannot fetch the KEK through the agent: ${err.message}`, { cause: err });
}

export function socketKekSource(socketPath: string): KekSource & { close(): Promise<void> } {
  return {
    async getResource(path: ResourcePath, opts: { version?: number } = {}) {
      try {
        return await fetchFromResourceSocket(socketPath, { ...path, ...(opts.version !== undefined ? { version: opts.version } : {}) });
      } catch (err) {
        throw translated(err);
      }
    },
    async close() {},
  };
}
