/**
 * Lua scripts run atomically by Redis. Both keys of a resource carry the same hash tag
 * (`{kh:repo/type/tag}`), so the scripts are valid on Redis Cluster (one slot per resource).
 *
 * KEYS[1] = `{prefix:name}:i`  sorted set of retained version numbers (score = version)
 * KEYS[2] = `{prefix:name}:r`  hash version → sealed record JSON
 */

/** ARGV: expected latest, record, keep. Returns the new version, or 0 if `expected` is stale. */
export const COMMIT_LUA = `
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local latest = 0
if #top == 2 then latest = tonumber(top[2]) end
if latest ~= tonumber(ARGV[1]) then return 0 end
local v = latest + 1
redis.call('ZADD', KEYS[1], v, tostring(v))
redis.call('HSET', KEYS[2], tostring(v), ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
local keep = tonumber(ARGV[3])
if n > keep then
  local old = redis.call('ZRANGE', KEYS[1], 0, n - keep - 1)
  for _, m in ipairs(old) do redis.call('HDEL', KEYS[2], m) end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - keep - 1)
end
return v
`;

/** Returns {version, record} of the latest version, or nil. */
export const READ_LATEST_LUA = `
local top = redis.call('ZRANGE', KEYS[1], -1, -1)
if #top == 0 then return false end
return {top[1], redis.call('HGET', KEYS[2], top[1])}
`;
