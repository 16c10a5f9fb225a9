-- airbyte.cdk.clock: the kit's clock, in epoch milliseconds. A host replaces
-- cdk.clock (the face forwards it here), e.g. with airbyte.core.time_ms;
-- os.time() has only seconds.
local M = {}

local tointeger = math.tointeger

function M.clock()
  return os.time() * 1000
end

-- now_ms() -> the clock as an integer (0 when the clock returns nonsense).
function M.now_ms() return tointeger(M.clock()) or 0 end

return M
