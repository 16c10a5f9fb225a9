-- airbyte.cdk.host: the luabyte runtime's modules the kit uses beyond
-- airbyte.json (which it needs to load at all, so they are there too):
-- airbyte.process (the C protocol-line classifier, which destinations need)
-- and airbyte.core (read_stdin, fsync, mkdir_p, uuid4), loaded on first use.
local M = {}

local pcall, error, require = pcall, error, require

local process_mod

-- process() -> airbyte.process; raises outside the luabyte runtime.
function M.process()
  if not process_mod then
    local ok, p = pcall(require, "airbyte.process")
    if not ok then error("destinations need the luabyte runtime (airbyte.json, airbyte.process)", 0) end
    process_mod = p
  end
  return process_mod
end

-- core() -> airbyte.core.
function M.core()
  return require "airbyte.core"
end

return M
