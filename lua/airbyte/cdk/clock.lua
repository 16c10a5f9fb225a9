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

-- record_ms(emitted_at [, now]) -> a record's emitted_at as integer
-- milliseconds: a float is floored, a missing one is now (now(), default
-- the clock), as every destination of the kit stamps its rows.
local mtype, floor = math.type, math.floor
function M.record_ms(at, now)
  if mtype(at) == "integer" then return at end
  if at then return floor(at) end
  return (now or M.now_ms)()
end

-- iso_utc(ms, zone) -> "YYYY-MM-DDTHH:MM:SS.mmm" .. zone ("Z", "+00:00");
-- the date part is formatted once a second (rows of a batch share it).
local last_sec, last_text
function M.iso_utc(ms, zone)
  local sec = ms // 1000
  if sec ~= last_sec then last_sec, last_text = sec, os.date("!%Y-%m-%dT%H:%M:%S", sec) end
  return string.format("%s.%03d%s", last_text, ms % 1000, zone)
end

return M
