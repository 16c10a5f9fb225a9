-- Benchmark: read a connector's stdout (cat FILE) and classify every line.
-- prints: <records> <seconds>
local proc = require "airbyte.process"
local core = require "airbyte.core"
local t0 = core.now()
local p = assert(proc.spawn{ argv = { "cat", arg[1] }, name = "cat" })
local records = 0
for msg in p:messages() do
  if msg.type == "RECORD" then records = records + 1 end
end
assert(p:wait() == 0)
print(records, (core.now() - t0) / 1000)
