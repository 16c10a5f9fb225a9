-- Runs a connector shipped with luabyte (lua/connectors/<name>.lua) as the
-- current process: `luabyte connector NAME COMMAND ARGS...` lands here, so
-- built-in connectors are real child processes like any other.
-- `luabyte connector --manifest FILE COMMAND ARGS...` runs a declarative
-- (manifest-only) source the same way (airbyte.declarative.source).
-- run() returns the exit status; runtime/cli/main.c exits with it.
local log = require "airbyte.log"

local M = {}

function M.run(name, argv)
  local cdk = require "airbyte.cdk"
  local code
  if name == "--manifest" then
    cdk.clock = require("airbyte.core").time_ms
    code = require("airbyte.declarative.source").run(argv[1], { table.unpack(argv, 2) })
  else
    local ok, connector = pcall(require, "connectors." .. name)
    if not ok then
      log.write(("luabyte: no built-in connector '%s' (%s)\n"):format(name, connector))
      return 2
    end
    cdk.clock = require("airbyte.core").time_ms   -- real milliseconds for emitted_at
    code = cdk.main(connector, argv)
  end
  io.stdout:flush()
  return code
end

return M
