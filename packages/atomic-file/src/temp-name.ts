import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/**
 * The project's temp-file names, so that crash leftovers can be recognised (and only they removed):
 *   `.<target name>.<pid>.<12 hex>.kh-tmp`        written by this package
 *   `.<target name>.<12 hex>.tmp`                 legacy KBS writers (storage/identity), no pid
 *   `<target name>.tmp-<pid>-<12 hex>`            legacy policy-store writer
 */
const CURRENT = /^\.(.+)\.([1-9][0-9]{0,9})\.([0-9a-f]{12})\.kh-tmp$/;
const LEGACY_NO_PID = /^\.(.+)\.([0-9a-f]{12})\.tmp$/;
const LEGACY_PID = /^(.+)\.tmp-([1-9][0-9]{0,9})-([0-9a-f]{12})$/;

/** A fresh temp path beside `target` (same directory, so the rename is atomic). */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.kh-tmp`);
}

/** `undefined` when `name` is not one of our temp names; else the writer's pid when the name carries one. */
export function parseTempName(name: string): { readonly pid: number | undefined } | undefined {
  const cur = CURRENT.exec(name) ?? LEGACY_PID.exec(name);
  if (cur !== null) return { pid: Number(cur[2]) };
  if (LEGACY_NO_PID.test(name)) return { pid: undefined };
  return undefined;
}
