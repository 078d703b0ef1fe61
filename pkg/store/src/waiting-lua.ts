/**
 * Lua shared by the scripts that make a task wait for its dependencies (saveTask's, and the revival of a cancelled
 * dependent): included in each script's text, since a script cannot call another.
 */

/**
 * `registerWaiting(id, release, ttl, finishing, first, stride)`: enters task `id` in the task_dependents hash of each
 * dependency that has not finished as it needs (SUCCEEDED; or any terminal state when `finishing`, the all-finished
 * policy), its value the release time (ms, "0" for none) with " finished" for that policy, and answers how many it
 * entered. The dependencies' keys start at KEYS[first], `stride` apart: its task_status, then its task_dependents.
 */
export const REGISTER_WAITING = `
local function registerWaiting(id, release, ttl, finishing, first, stride)
  local waiting = 0
  for i = first, #KEYS, stride do
    local state = redis.call('HGET', KEYS[i], 'state')
    local done = state == 'SUCCEEDED' or (finishing and (state == 'FAILED' or state == 'CANCELLED'))
    if not done then
      redis.call('HSET', KEYS[i + 1], id, finishing and (release .. ' finished') or release)
      redis.call('EXPIRE', KEYS[i + 1], ttl)
      waiting = waiting + 1
    end
  end
  return waiting
end
`;
