-- Runs a benchmark connector module from scripts/bench as a child process.
local dir = arg[0]:match("^(.*)/[^/]*$") or "."
local name = table.remove(arg, 1)
package.path = dir .. "/?.lua;" .. package.path
local code = require("airbyte.cdk").main(require(name), arg)
io.stdout:flush()
if code ~= 0 then os.exit(code) end
