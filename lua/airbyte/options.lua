-- Options tables, checked. PyAirbyte's keyword arguments become one options
-- table per call; Python refuses an unknown keyword, and so do we: a
-- misspelt key (`confg`) would otherwise run with the option unset.
--
--   local READ_OPTIONS = options.allow{ "cache", "streams" }   -- next to the function
--   function M.read(opts)
--     opts = options.check(opts, READ_OPTIONS, "Source:read")
--
-- allow(list, ...) joins several lists (e.g. a function's own keys and the
-- executor options it passes on); a list can be extended later with
-- options.extend(set, { "new_key" }).
local errors = require "airbyte.errors"

local M = {}

-- The edit distance of two strings (insertions, deletions, substitutions,
-- and a swap of two neighbours counting as one).
function M.distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev2, prev, cur = {}, {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur = { [0] = i }
    local ca = a:byte(i)
    for j = 1, lb do
      local cb = b:byte(j)
      local cost = ca == cb and 0 or 1
      local v = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      if i > 1 and j > 1 and ca == b:byte(j - 1) and a:byte(i - 1) == cb then
        v = math.min(v, prev2[j - 2] + 1)
      end
      cur[j] = v
    end
    prev2, prev = prev, cur
  end
  return prev[lb]
end

-- The closest of `names` to `key` (case-insensitive; ties: the first in
-- sort order), nil when names is empty.
function M.closest(key, names)
  local best, best_d
  local lk = key:lower()
  for _, n in ipairs(names) do
    local d = M.distance(lk, n:lower())
    if best_d == nil or d < best_d or (d == best_d and n < best) then best, best_d = n, d end
  end
  return best
end

-- A set of allowed keys from one or more lists of names.
function M.allow(...)
  local set = {}
  for _, list in ipairs({ ... }) do
    for _, k in ipairs(list) do set[k] = true end
  end
  return set
end

function M.extend(set, list)
  for _, k in ipairs(list) do set[k] = true end
  return set
end

local function sorted_keys(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out)
  return out
end

-- check(opts, allowed, where): opts (nil becomes {}) with only keys of the
-- set `allowed`; else raises PyAirbyteInputError naming the key and the
-- closest valid one. Returns opts.
function M.check(opts, allowed, where)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    errors.raise("PyAirbyteInputError", ("%s takes an options table, not a %s"):format(where, type(opts)),
      { input_value = tostring(opts) })
  end
  for k in pairs(opts) do
    if type(k) ~= "string" then
      errors.raise("PyAirbyteInputError",
        ("%s: options are named (key = value); got a %s key"):format(where, type(k)),
        { input_value = tostring(k), context = { valid_options = sorted_keys(allowed) } })
    end
    if not allowed[k] then
      local valid = sorted_keys(allowed)
      local near = M.closest(k, valid)
      errors.raise("PyAirbyteInputError",
        ("%s got an unknown option '%s'%s"):format(where, k, near and ("; did you mean '" .. near .. "'?") or ""),
        { input_value = k, context = { valid_options = valid, closest = near },
          guidance = "Valid options: " .. table.concat(valid, ", ") .. "." })
    end
  end
  return opts
end

return M
