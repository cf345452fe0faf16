import { CliError, describeFileError, EXIT, explainConnectionError, UsageError } from '@keyhold/command-line';
import type { AgentConfig } from './config.js';
import { AgentError, TpmError } from './errors.js';
import { KbsClientError } from './kbs-client/errors.js';

/**
 * Typed errors of the key provider, OCI and protocol layers, recognised by name and code so that
 * reporting an error (a usage error included) does not load gRPC, zod or the OCI code.
 */
const CODED_ERROR_NAMES = new Set(['KeyProviderError', 'OcicryptError', 'ProtocolError']);

const SWTPM_HINT = 'for swtpm: swtpm socket --tpm2 --tpmstate dir=DIR --server type=tcp,port=2321 --ctrl type=tcp,port=2322 --flags startup-clear, then --tcti swtpm:host=127.0.0.1,port=2321';

/**
 * What a `keyhold-agent` failure means for its user: one line `CODE: message`, the exit code
 * (2 for a bad flag or config, 3 when the KBS refused, 4 when the resource does not exist, 1
 * otherwise) and a hint where one helps (the TCTI a TPM error came from, an https/http mismatch).
 * Loaded only when a command failed.
 */
export async function describeAgentError(err: unknown, config: AgentConfig | undefined): Promise<CliError | undefined> {
  if (err instanceof CliError) return err;
  if (err instanceof TpmError || (err instanceof AgentError && err.code.startsWith('TPM_'))) {
    const tcti = config?.tcti;
    const where = tcti !== undefined ? ` (TCTI ${tcti})` : '';
    return new CliError(err.code, `${err.code}: ${err.message}${where}`, {
      cause: err,
      ...(err.code === 'TPM_UNAVAILABLE' ? { hint: `is the TPM reachable there? choose it with --tcti or KEYHOLD_TCTI; ${SWTPM_HINT}` } : {}),
    });
  }
  if (err instanceof AgentError) {
    if (err.code === 'CONFIG_INVALID') return new UsageError(err.message, { cause: err });
    return new CliError(err.code, `${err.code}: ${err.message}`, { cause: err });
  }
  if (err instanceof KbsClientError) {
    if (err.code === 'KBS_UNREACHABLE' && config !== undefined) {
      const why = await explainConnectionError(config.url, err.cause ?? err);
      return new CliError(why.code, `KBS_UNREACHABLE: ${why.message}`, { cause: err, ...(why.hint !== undefined ? { hint: why.hint } : {}) });
    }
    const exitCode = err.code === 'RESOURCE_NOT_FOUND' ? EXIT.NOT_FOUND : err.status === 401 || err.status === 403 ? EXIT.DENIED : EXIT.FAIL;
    return new CliError(err.code, `${err.code}: ${err.message}`, { cause: err, exitCode });
  }
  const coded = err as { name?: unknown; code?: unknown; message?: unknown };
  if (err instanceof Error && CODED_ERROR_NAMES.has(String(coded.name)) && typeof coded.code === 'string') {
    return new CliError(coded.code, `${coded.code}: ${err.message}`, { cause: err });
  }
  return describeFileError(err);
}
