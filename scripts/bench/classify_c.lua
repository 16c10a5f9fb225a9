-- Benchmark: read a connector's stdout (cat FILE) and classify every line
-- in C (pump.count), as the hot paths do. prints: <records> <seconds>
local proc = require "airbyte.process"
local pump = require "airbyte.pump"
local core = require "airbyte.core"
local t0 = core.now()
local p = assert(proc.spawn{ argv = { "cat", arg[1] }, name = "cat" })
local totals = pump.count(p)
assert(p:wait() == 0)
print(totals.by_type.RECORD, (core.now() - t0) / 1000)
