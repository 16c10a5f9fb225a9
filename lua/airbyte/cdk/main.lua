-- airbyte.cdk.main: cdk.main(connector, argv [, opts]) -> exit code: the
-- command line parsed, the command run, a failure reported as a TRACE
-- ERROR (exit code 1), a bad command line as usage (exit code 2). The
-- caller decides what to do with the code.
local options = require "airbyte.options"
local args = require "airbyte.cdk.args"
local errors = require "airbyte.cdk.errors"
local emitter = require "airbyte.cdk.emitter"
local commands = require "airbyte.cdk.commands"
local log = require "airbyte.log"

local M = {}

local xpcall = xpcall

local MAIN_OPTIONS = options.allow{ "out", "input" }
function M.main(connector, argv, opts)
  opts = options.check(opts, MAIN_OPTIONS, "cdk.main")
  local out = opts.out or io.stdout
  if out == io.stdout then out:setvbuf("full", 65536) end
  local parsed, why = args.parse(argv, connector.kind)
  if not parsed then
    log.write("error: ", why, "\n", args.USAGE)
    return 2
  end
  local e = { out = out }
  e.write = emitter.write
  local ok, res = xpcall(commands.run, errors.capture, connector, parsed, e, opts.input)
  if not ok then
    -- as a TRACE ERROR; where the output is gone, on stderr instead
    if not pcall(commands.trace_error, e, res) then log.write("error: ", res.message, "\n") end
    res = 1
  end
  -- the last buffered lines too: output that never arrived is a failure
  local flushed, why = out:flush()
  if flushed == nil and why ~= nil then   -- as io's flush says a failure
    log.write("error: the connector's output is closed (", tostring(why), "): its reader is gone\n")
    if res == 0 then res = 1 end
  end
  return res
end

return M
