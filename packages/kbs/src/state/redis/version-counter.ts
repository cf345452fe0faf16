/** The version counters of the cached Redis stores (reference values, EK CA uploads). */

/**
 * The version counter starts at a random base the first time it is written, so that after a loss of
 * Redis data a new history never repeats a version a replica has cached with other content.
 */
export const BUMP_VERSION = `
local function bump(ver, base)
  if redis.call('EXISTS', ver) == 0 then redis.call('SET', ver, base) end
  return redis.call('INCR', ver)
end
`;

/** A random start for a version counter (see BUMP_VERSION). */
export function versionBase(): string {
  return String(1 + Math.floor(Math.random() * 2 ** 40));
}
