-- Benchmark: fetch pages BASE/items?page=1..N one after the other with
-- airbyte.http (the request loop a paginated manifest stream runs, without
-- the interpreter). prints: <pages> <bytes> <seconds>
local http = require "airbyte.http"
local core = require "airbyte.core"
local base, n = arg[1], tonumber(arg[2])
local bytes = 0
local t0 = core.now()
for page = 1, n do
  local resp = http.request{ url = base .. "/items", query = { page = page } }
  assert(resp.status == 200, "page " .. page .. ": HTTP " .. resp.status)
  bytes = bytes + #resp.body
end
print(n, bytes, (core.now() - t0) / 1000)
