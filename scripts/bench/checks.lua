-- Bench: the dataset check suite of issue 10 on a cache filled beforehand.
--   luabyte scripts/bench/checks.lua fill CACHE N    -- N faker users (and their purchases)
--   luabyte scripts/bench/checks.lua run CACHE       -- prints "<seconds> <checks>"
local ab = require "airbyte"
local core = require "airbyte.core"
local mode, path, n = arg[1], arg[2], tonumber(arg[3])
local cache = ab.SQLiteCache{ db_path = path }
if mode == "fill" then
  local src = ab.get_source("source-faker", { config = { count = n, seed = 1, parallelism = 1 } })
  src:select_streams({ "users", "purchases" })
  src:read{ cache = cache, quiet = true }
  return
end
local spec = {
  users = { id = { "not_null", "unique" }, age = { between = { 0, 130 } },
            email = { matches = "^[^@]+@[^@]+$" },
            gender = { accepted_values = { "Male", "Female", "Fluid", "Other" } },
            _rows = { min = 1 }, _fresh = { max_age = "1d" } },
  purchases = { user_id = { relationships = { stream = "users", column = "id" } } },
}
local t0 = core.now()
local report = cache:check(spec)
local secs = (core.now() - t0) / 1000
assert(report.passed, tostring(report))
print(("%.4f %d"):format(secs, #report.results))
