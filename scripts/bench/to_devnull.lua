-- Benchmark: source -> destination-dev-null straight through (cache = false).
--   luabyte to_devnull.lua EXE FILE   -> prints: <records> <seconds>
local ab = require "airbyte"
local core = require "airbyte.core"
local src = ab.get_source("source-replay", { local_executable = arg[1], config = { file = arg[2] } })
src:select_all_streams()
local dest = ab.get_noop_destination()
-- one-time setup (discover, the specs that name secret fields) before the
-- clock: the target is the streaming rate
local _ = src.discovered_catalog, dest.config_spec
local t0 = core.now()
local wr = dest:write(src, { cache = false, state_cache = false, quiet = true })
print(wr.processed_records, (core.now() - t0) / 1000)
