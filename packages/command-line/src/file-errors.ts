import { CliError } from './errors.js';

const WHAT: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory, not a file',
  ENOTDIR: 'a part of the path is not a directory',
  EEXIST: 'already exists',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'name too long',
};

/**
 * A file-system error (node's `ENOENT: no such file or directory, open 'x'`) as one line naming the
 * file and what is wrong with it, e.g. `cannot read admin.jwt: no such file or directory`.
 * Undefined when `err` is not a file-system error.
 */
export function describeFileError(err: unknown): CliError | undefined {
  const e = err as NodeJS.ErrnoException | undefined;
  if (e === undefined || e === null || typeof e !== 'object' || typeof e.code !== 'string' || typeof e.path !== 'string') return undefined;
  const what = WHAT[e.code] ?? e.code;
  const verb = e.syscall === 'open' || e.syscall === 'read' || e.syscall === 'stat' || e.syscall === 'lstat' || e.syscall === 'opendir' || e.syscall === 'scandir' ? 'cannot read' : `cannot ${e.syscall ?? 'use'}`;
  return new CliError('FILE_UNREADABLE', `${verb} ${e.path}: ${what}`, { cause: err });
}
