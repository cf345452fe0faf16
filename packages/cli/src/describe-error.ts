import { CliError, describeFileError, UsageError } from '@keyhold/command-line';
import { OcicryptError } from '@keyhold/ocicrypt';
import { PolicyError } from '@keyhold/policy';
import { ProtocolError } from '@keyhold/protocol';
import { EventLogError, IdentityError } from '@keyhold/verifier';

/**
 * What a `keyhold` failure means for its user (loaded only when a command failed): typed errors
 * of the libraries as `message (CODE)` or `CODE: message`, exit 1; a resource path or URI that
 * does not parse is a usage error (exit 2); file-system errors name the file.
 */
export function describeKeyholdError(err: unknown): CliError | undefined {
  if (err instanceof CliError) return err;
  if (err instanceof EventLogError) return new CliError(err.code, `${err.message} (${err.code})`, { cause: err });
  if (err instanceof IdentityError) return new CliError(err.code, `${err.message} (${err.code})`, { cause: err });
  if (err instanceof OcicryptError) return new CliError(err.code, `${err.code}: ${err.message}`, { cause: err });
  if (err instanceof PolicyError) return new CliError(err.code, `${err.message} (${err.code})`, { cause: err });
  if (err instanceof ProtocolError) return new UsageError(err.message, { cause: err });
  return describeFileError(err);
}
