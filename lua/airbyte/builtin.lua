-- Runs a connector shipped with luabyte (lua/connectors/<name>.lua) as the
-- current process: `luabyte connector NAME COMMAND ARGS...` lands here, so
-- built-in connectors are real child processes like any other.
-- `luabyte connector --manifest FILE COMMAND ARGS...` runs a declarative
-- (manifest-only) source the same way (airbyte.declarative.source).
local M = {}

function M.run(name, argv)
  if name == "--manifest" then
    local cdk = require "airbyte.cdk"
    cdk.clock = require("airbyte.core").time_ms
    local code = require("airbyte.declarative.source").run(argv[1], { table.unpack(argv, 2) })
    io.stdout:flush()
    if code ~= 0 then os.exit(code) end
    return
  end
  local ok, connector = pcall(require, "connectors." .. name)
  if not ok then
    io.stderr:write(("luabyte: no built-in connector '%s' (%s)\n"):format(name, connector))
    os.exit(2)
  end
  local cdk = require "airbyte.cdk"
  cdk.clock = require("airbyte.core").time_ms   -- real milliseconds for emitted_at
  local code = cdk.main(connector, argv)
  io.stdout:flush()
  if code ~= 0 then os.exit(code) end
end

return M
