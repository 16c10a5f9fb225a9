-- Quickstart: source-faker -> the default SQLite cache -> a Lua validation
-- pass over the users -> a summary.
--   build/luabyte examples/quickstart.lua [COUNT]
local ab = require "airbyte"

local count = tonumber(arg and arg[1]) or 5000
local source = ab.get_source("source-faker", { config = { count = count, seed = 42 } })
source:check()
source:select_all_streams()

local result = source:read()          -- ./.cache/default_cache/default_cache.sqlite
print(("Read %d records this run into %s"):format(result.processed_records, result.cache.db_path))

-- Validation between read and write: every user must have a sane age and an email.
local checked, problems = 0, {}
for user in result["users"]:rows() do
  checked = checked + 1
  if type(user.age) ~= "number" or user.age < 0 or user.age > 150 then
    problems[#problems + 1] = ("user %s: bad age %s"):format(user.id, tostring(user.age))
  end
  if type(user.email) ~= "string" or not user.email:find("@", 1, true) then
    problems[#problems + 1] = ("user %s: bad email %s"):format(user.id, tostring(user.email))
  end
end
print(("Validated %d users: %d problems"):format(checked, #problems))
for i = 1, math.min(#problems, 10) do print("  " .. problems[i]) end

print("Streams in the cache:")
for name, dataset in pairs(result) do
  print(("  %-10s %8d rows"):format(name, #dataset))
end

-- SQL over the cache works too.
local top = result.cache:run_sql_query(
  "select gender, count(*) as n from users group by gender order by n desc limit 3")
for _, row in ipairs(top) do print(("  %-12s %d"):format(tostring(row.gender), row.n)) end

-- And on to a destination: the built-in destination-local-json writes
-- Airbyte's raw layout (_airbyte_raw_<stream>.jsonl) under ./out. Fed from
-- the cache, it receives only the rows it has not confirmed before.
local dest = ab.get_destination("destination-local-json", { config = { destination_path = "out" } })
local wr = dest:write(result)
print(("Wrote %d records to %s (%d states confirmed by the destination)"):format(
  wr.processed_records, "out/", wr.confirmed_states))
for name, s in pairs(wr.streams) do print(("  %-10s %8d records"):format(name, s.records)) end
