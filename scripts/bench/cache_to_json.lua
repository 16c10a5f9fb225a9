-- Benchmark: cache -> destination-local-json (the write phase only).
--   luabyte cache_to_json.lua EXE FILE DB OUTDIR -> prints: <records> <seconds>
local ab = require "airbyte"
local core = require "airbyte.core"
local src = ab.get_source("source-replay", { local_executable = arg[1], config = { file = arg[2] } })
src:select_all_streams()
local cache = ab.SQLiteCache{ db_path = arg[3] }
local result = src:read{ cache = cache, write_strategy = "append", force_full_refresh = true, quiet = true }
-- closing lets the read's checkpoint finish first: the clock is for the feed
cache:close()
local dest = ab.get_destination("destination-local-json", { config = { destination_path = arg[4] } })
local _ = dest.config_spec   -- one-time setup before the clock: the target is the streaming rate
local t0 = core.now()
local wr = dest:write(result, { write_strategy = "replace", quiet = true })
print(wr.processed_records, (core.now() - t0) / 1000)
