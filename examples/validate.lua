-- Validating data between read and write: faker with a seeded fault, record
-- checks (JSON schema + a sandboxed Lua rule) with quarantine, a dataset
-- check suite, and a write that refuses to run when a check fails.
--   build/luabyte examples/validate.lua [output dir]
local ab = require "airbyte"
local sandbox = require "airbyte.sandbox"

local out = arg[1] or "/tmp/luabyte-validate"
local cache = ab.new_local_cache{ cache_name = "validate_example", cache_dir = out .. "/cache" }
local src = ab.get_source("source-faker", { config = { count = 2000, seed = 42 } })
src:select_streams({ "users", "purchases" })

-- the rule comes from someone else: run it with limits
local rule = sandbox.from_string([[
  return function(u)
    if u.age < 0 or u.age > 130 then return false, "age out of range", "age" end
  end]], { memory = "8MB", instructions = 1e6 })

local r = src:read{
  cache = cache, force_full_refresh = true, write_strategy = "replace",
  -- the seeded fault: every 97th user gets a negative age, every 101st a numeric email
  on_record = function(rec, stream)
    if stream ~= "users" then return end
    if rec.id % 97 == 0 then rec.age = -rec.age; return rec end
    if rec.id % 101 == 0 then rec.email = rec.id; return rec end
  end,
  validate = { schema = true, rules = { users = rule }, on_invalid = "quarantine" },
}
print(("%d users cached, %d quarantined"):format(#r["users"], #cache:get_quarantine("users")))
for stream, reasons in pairs(r.invalid_records) do
  for why, n in pairs(reasons) do print(("  %s: %d failed the %s check"):format(stream, n, why)) end
end

local suite = {
  users = { id = { "not_null", "unique" }, age = { between = { 0, 130 } },
            email = { matches = "^[^@]+@[^@]+$" }, _rows = { min = 1 } },
  purchases = { user_id = { relationships = { stream = "users", column = "id" } } },
}
local report = r:check(suite)
print(report)

-- purchases of quarantined users point at nobody: the write refuses to run
local dest = ab.get_destination("destination-local-json", { config = { destination_path = out .. "/json" } })
local ok, err = pcall(dest.write, dest, r, { checks = suite })
print(ok and "written" or ("write refused: " .. err.kind))
-- only the users, whose checks pass, go out
suite.purchases = nil
print(dest:write(r, { streams = { "users" }, checks = suite }).processed_records, "users written")
