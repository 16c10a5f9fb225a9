-- Benchmark: a cat-like connector's records into the SQLite cache.
--   luabyte to_cache.lua EXE FILE DB [hook | schema]
--   (schema: every record checked against the stream's JSON schema)
--   DB "postgres:SCHEMA": the Postgres cache in that schema, connected by
--   the libpq environment (PGHOST, PGPORT, ...)
-- prints: <records> <seconds> <peak RSS KiB>
local ab = require "airbyte"
local core = require "airbyte.core"
local exe, file, db, hook = arg[1], arg[2], arg[3], arg[4]
local src = ab.get_source("source-replay", { local_executable = exe, config = { file = file } })
src:select_all_streams()
local pg_schema = db:match("^postgres:(.+)$")
local cache = pg_schema and ab.PostgresCache{ schema_name = pg_schema } or ab.SQLiteCache{ db_path = db }
local opts = { cache = cache, write_strategy = "append", force_full_refresh = true, quiet = true }
if hook == "schema" then
  opts.validate = { schema = true }
elseif hook then
  local sum = 0
  opts.on_record = function(r) sum = sum + r.id + r.age + #r.email end
end
local t0 = core.now()
local result = src:read(opts)
local secs = (core.now() - t0) / 1000
local hwm = 0
for line in io.lines("/proc/self/status") do
  local v = line:match("^VmHWM:%s+(%d+)")
  if v then hwm = tonumber(v) end
end
print(result.processed_records, secs, hwm)
