-- airbyte.cdk.host: the luabyte binary's modules the kit uses beyond
-- airbyte.json, loaded on first use so that a source also runs under a
-- stock lua5.4: airbyte.process (the C protocol-line classifier, which
-- destinations need) and airbyte.core (read_stdin, fsync, mkdir_p, uuid4).
local M = {}

local pcall, error = pcall, error

local process_mod, core_mod

-- process() -> airbyte.process; raises outside the luabyte runtime.
function M.process()
  if not process_mod then
    local ok, p = pcall(require, "airbyte.process")
    if not ok then error("destinations need the luabyte runtime (airbyte.json, airbyte.process)", 0) end
    process_mod = p
  end
  return process_mod
end

-- core() -> airbyte.core, or false under a stock lua5.4.
function M.core()
  if core_mod == nil then
    local ok, core = pcall(require, "airbyte.core")
    core_mod = ok and core or false
  end
  return core_mod
end

return M
