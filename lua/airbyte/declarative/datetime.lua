-- Datetimes the way the CDK's templates and cursors see them: Python
-- strftime/strptime codes, ISO-8601 durations, UTC arithmetic without the
-- local time zone (civil dates are computed, never asked of os.time).
--
--   dt = M.new(epoch_seconds, micro [, offset_seconds | nil for naive])
--   M.parse(text, format) -> dt | nil, why     (CDK extras: %s, %ms, %s_as_float,
--                                              %epoch_microseconds)
--   M.format(dt, format) -> text               (also %_ms: 3-digit milliseconds)
--   M.parse_iso(text) -> dt | nil              (str_to_datetime, dateutil-like)
--   M.duration(text) -> dur | nil, why         ISO-8601 (PnYnMnDTnHnMnS, PnW)
--   M.add(dt, dur [, sign]) -> dt              months clamp to the month's end
--   M.now() / M.today() / M.is(v) / M.is_duration(v)
--   dt:timestamp(), dt:strftime(f), dt:isoformat(), tostring(dt) (Python's str)
local M = {}

local floor, format, tointeger = math.floor, string.format, math.tointeger

local DT = { __name = "datetime" }
DT.__index = DT
local DUR = { __name = "timedelta" }
DUR.__index = DUR

-- days since 1970-01-01 of a civil date (Howard Hinnant's algorithm)
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  return m <= 2 and y + 1 or y, m, d
end

local function is_leap(y) return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 end
local MDAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }
local function month_days(y, m) return (m == 2 and is_leap(y)) and 29 or MDAYS[m] end

-- t: integer epoch seconds (UTC instant), us: 0..999999, off: nil (naive) or seconds east
function M.new(t, us, off, date_only)
  return setmetatable({ t = tointeger(t) or floor(t), us = us or 0, off = off, date_only = date_only }, DT)
end

function M.is(v) return getmetatable(v) == DT end
function M.is_duration(v) return getmetatable(v) == DUR end

function M.from_civil(y, mo, d, h, mi, s, us, off)
  local t = days_from_civil(y, mo, d) * 86400 + (h or 0) * 3600 + (mi or 0) * 60 + (s or 0) - (off or 0)
  return M.new(t, us or 0, off)
end

-- local civil fields (in the datetime's own offset)
function DT:fields()
  local lt = self.t + (self.off or 0)
  local days = floor(lt / 86400)
  local secs = lt - days * 86400
  local y, m, d = civil_from_days(days)
  return y, m, d, floor(secs / 3600), floor(secs % 3600 / 60), secs % 60, days
end

function DT:timestamp()
  if self.us == 0 then return self.t + 0.0 end
  return self.t + self.us / 1e6
end

-- clock: a function returning epoch milliseconds (default the runtime's)
function M.now(clock)
  local us = floor((clock or require("airbyte.core").time_ms)() * 1000)
  return M.new(us // 1000000, us % 1000000, 0)
end

function M.today(clock)
  local n = M.now(clock)
  return M.new(n.t - n.t % 86400, 0, 0, true)
end

local WEEKDAYS = { "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday" }
local MONTHS = { "January", "February", "March", "April", "May", "June", "July", "August", "September",
                 "October", "November", "December" }

local function offset_text(off, colon)
  if off == nil then return "" end
  local sign = off < 0 and "-" or "+"
  off = math.abs(off)
  return format(colon and "%s%02d:%02d" or "%s%02d%02d", sign, off // 3600, off % 3600 // 60)
end

-- Python strftime plus the CDK's %s, %ms, %s_as_float, %epoch_microseconds, %_ms
function M.format(dt, fmt)
  if fmt == "%s" then return tostring(dt.t) end
  if fmt == "%ms" then return tostring(dt.t * 1000 + dt.us // 1000) end
  if fmt == "%s_as_float" then return tostring(dt:timestamp()) end
  if fmt == "%epoch_microseconds" then return tostring(dt.t * 1000000 + dt.us) end
  local y, m, d, H, Mi, S, days = dt:fields()
  local wd = (days + 3) % 7 + 1                  -- 1970-01-01 was a Thursday
  local out = fmt:gsub("%%(_?)(.)", function(under, c)
    if under == "_" then
      if c == "m" then return nil end             -- handled below (%_ms)
      return nil
    end
    if c == "Y" then return format("%04d", y)
    elseif c == "m" then return format("%02d", m)
    elseif c == "d" then return format("%02d", d)
    elseif c == "H" then return format("%02d", H)
    elseif c == "M" then return format("%02d", Mi)
    elseif c == "S" then return format("%02d", S)
    elseif c == "f" then return format("%06d", dt.us)
    elseif c == "z" then return offset_text(dt.off, false)
    elseif c == "Z" then return dt.off and (dt.off == 0 and "UTC" or offset_text(dt.off, true)) or ""
    elseif c == "y" then return format("%02d", y % 100)
    elseif c == "j" then return format("%03d", days - days_from_civil(y, 1, 1) + 1)
    elseif c == "a" then return WEEKDAYS[wd]:sub(1, 3)
    elseif c == "A" then return WEEKDAYS[wd]
    elseif c == "b" then return MONTHS[m]:sub(1, 3)
    elseif c == "B" then return MONTHS[m]
    elseif c == "p" then return H < 12 and "AM" or "PM"
    elseif c == "I" then return format("%02d", (H + 11) % 12 + 1)
    elseif c == "s" then return tostring(dt.t)
    elseif c == "%" then return "%"
    elseif c == "T" then return format("%02d:%02d:%02d", H, Mi, S)
    elseif c == "F" then return format("%04d-%02d-%02d", y, m, d)
    end
    return nil
  end)
  out = out:gsub("%%_ms", format("%03d", dt.us // 1000))
  return out
end
DT.strftime = M.format

function DT:isoformat(sep)
  sep = sep or "T"
  if self.date_only then return M.format(self, "%Y-%m-%d") end
  local s = M.format(self, "%Y-%m-%d" .. sep .. "%H:%M:%S")
  if self.us ~= 0 then s = s .. format(".%06d", self.us) end
  return s .. offset_text(self.off, true)
end

DT.__tostring = function(self) return self:isoformat(" ") end
DT.__eq = function(a, b) return M.is(a) and M.is(b) and a.t == b.t and a.us == b.us end
DT.__lt = function(a, b) return a.t < b.t or (a.t == b.t and a.us < b.us) end
DT.__le = function(a, b) return not (b < a) end

function DT:date()
  local n = self.t + (self.off or 0)
  return M.new(n - n % 86400, 0, 0, true)
end

-- strptime -------------------------------------------------------------------

local function digits(s, i, min, max)
  local j = i
  while j < i + max and s:sub(j, j):match("%d") do j = j + 1 end
  if j - i < min then return nil end
  return tonumber(s:sub(i, j - 1)), j
end

function M.parse(s, fmt)
  if type(s) ~= "string" then s = tostring(s) end
  if fmt == "%s" or fmt == "%s_as_float" then
    local n = tonumber(s)
    if not n then return nil, "not an epoch timestamp" end
    local t = floor(n)
    return M.new(t, floor((n - t) * 1e6 + 0.5), 0)
  end
  if fmt == "%ms" then
    local n = tonumber(s)
    if not n then return nil, "not an epoch in milliseconds" end
    n = floor(n)
    return M.new(n // 1000, (n % 1000) * 1000, 0)
  end
  if fmt == "%epoch_microseconds" then
    local n = math.tointeger(tonumber(s))
    if not n then return nil, "not an epoch in microseconds" end
    return M.new(n // 1000000, n % 1000000, 0)
  end
  local y, m, d, H, Mi, S, us, off = 1900, 1, 1, 0, 0, 0, 0, nil
  local pm
  local i, f = 1, 1
  while f <= #fmt do
    local c = fmt:sub(f, f)
    if c == "%" then
      local code = fmt:sub(f + 1, f + 1)
      local v
      if fmt:sub(f + 1, f + 3) == "_ms" then
        v, i = digits(s, i, 3, 3); if not v then return nil end
        us = v * 1000; f = f + 4
      else
        if code == "Y" then v, i = digits(s, i, 4, 4); y = v
        elseif code == "m" then v, i = digits(s, i, 1, 2); m = v
        elseif code == "d" then v, i = digits(s, i, 1, 2); d = v
        elseif code == "H" then v, i = digits(s, i, 1, 2); H = v
        elseif code == "I" then v, i = digits(s, i, 1, 2); H = v
        elseif code == "M" then v, i = digits(s, i, 1, 2); Mi = v
        elseif code == "S" then v, i = digits(s, i, 1, 2); S = v
        elseif code == "y" then v, i = digits(s, i, 2, 2); y = v and (v < 69 and 2000 + v or 1900 + v)
        elseif code == "j" then v, i = digits(s, i, 1, 3)
          if v then local yy, mm, dd = civil_from_days(days_from_civil(y, 1, 1) + v - 1); y, m, d = yy, mm, dd end
        elseif code == "f" then
          local j = i
          while j < i + 6 and s:sub(j, j):match("%d") do j = j + 1 end
          if j == i then return nil end
          v = s:sub(i, j - 1)
          us = tonumber(v .. string.rep("0", 6 - #v)); i = j
        elseif code == "z" then
          if s:sub(i, i) == "Z" then off = 0; i = i + 1; v = 0
          else
            local sign, hh, mm2, rest = s:match("^([+-])(%d%d):?(%d%d)()", i)
            if not sign then return nil end
            off = (tonumber(hh) * 3600 + tonumber(mm2) * 60) * (sign == "-" and -1 or 1)
            i = rest; v = off
          end
        elseif code == "Z" then
          local z = s:match("^%a+", i)
          if not z then return nil end
          if z == "UTC" or z == "GMT" or z == "Z" then off = 0 end
          i = i + #z; v = 0
        elseif code == "p" then
          local ap = s:sub(i, i + 1):upper()
          if ap ~= "AM" and ap ~= "PM" then return nil end
          pm = ap == "PM"; i = i + 2; v = 0
        elseif code == "b" or code == "B" then
          local name = s:match("^%a+", i)
          v = nil
          for k, mn in ipairs(MONTHS) do
            if name and (name:lower() == mn:lower() or name:lower() == mn:sub(1, 3):lower()) then v = k end
          end
          if not v then return nil end
          m = v; i = i + #name
        elseif code == "a" or code == "A" then
          local name = s:match("^%a+", i)
          if not name then return nil end
          i = i + #name; v = 0
        elseif code == "%" then
          if s:sub(i, i) ~= "%" then return nil end
          i = i + 1; v = 0
        else
          return nil, "unsupported format code %" .. code
        end
        if v == nil then return nil end
        f = f + 2
      end
    else
      if s:sub(i, i) ~= c then return nil end
      i = i + 1; f = f + 1
    end
  end
  if i <= #s then return nil end
  if pm ~= nil then H = H % 12 + (pm and 12 or 0) end
  if m < 1 or m > 12 or d < 1 or d > month_days(y, m) or H > 23 or Mi > 59 or S > 61 then return nil end
  -- naive values are UTC for the CDK (it replaces tzinfo with UTC)
  return M.from_civil(y, m, d, H, Mi, S, us, off or 0)
end

-- dateutil-like ISO parsing for str_to_datetime and format_datetime
function M.parse_iso(s)
  if type(s) ~= "string" then return nil end
  s = s:match("^%s*(.-)%s*$")
  local y, mo, d, rest = s:match("^(%d%d%d%d)-(%d%d)-(%d%d)(.*)$")
  if not y then
    y, mo, d, rest = s:match("^(%d%d%d%d)(%d%d)(%d%d)(.*)$")
    if not y then return nil end
  end
  local H, Mi, S, us, off = 0, 0, 0, 0, nil
  if rest ~= "" then
    local h, mi, r2 = rest:match("^[T ](%d%d):?(%d%d)(.*)$")
    if not h then return nil end
    H, Mi, rest = tonumber(h), tonumber(mi), r2
    local sec, r3 = rest:match("^:?(%d%d)(.*)$")
    if sec then S, rest = tonumber(sec), r3 end
    local frac, r4 = rest:match("^[.,](%d+)(.*)$")
    if frac then us = tonumber((frac .. "000000"):sub(1, 6)); rest = r4 end
    if rest == "Z" or rest == "z" then off = 0
    elseif rest ~= "" then
      local sign, oh, om = rest:match("^([+-])(%d%d):?(%d%d)$")
      if not sign then
        sign, oh = rest:match("^([+-])(%d%d)$"); om = "00"
      end
      if not sign then return nil end
      off = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
    end
  end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > month_days(y, mo) then return nil end
  return M.from_civil(y, mo, d, H, Mi, S, us, off or 0)
end

-- durations --------------------------------------------------------------------

function M.new_duration(months, seconds, us)
  return setmetatable({ months = months or 0, seconds = seconds or 0, us = us or 0 }, DUR)
end

function M.duration(s)
  if type(s) ~= "string" then return nil, "a duration must be a string" end
  local neg, body = s:match("^([+-]?)P(.+)$")
  if not body then return nil, ("'%s' is not an ISO-8601 duration"):format(s) end
  local date, time = body:match("^([^T]*)T?(.*)$")
  local months, secs = 0, 0.0
  local ok = false
  for n, u in date:gmatch("([%d.]+)([YMWD])") do
    ok = true
    n = tonumber(n)
    if u == "Y" then months = months + n * 12
    elseif u == "M" then months = months + n
    elseif u == "W" then secs = secs + n * 7 * 86400
    else secs = secs + n * 86400 end
  end
  for n, u in time:gmatch("([%d.]+)([HMS])") do
    ok = true
    n = tonumber(n)
    if u == "H" then secs = secs + n * 3600 elseif u == "M" then secs = secs + n * 60 else secs = secs + n end
  end
  if not ok then return nil, ("'%s' is not an ISO-8601 duration"):format(s) end
  local sign = neg == "-" and -1 or 1
  local whole = floor(secs)
  return M.new_duration(sign * floor(months), sign * whole, sign * floor((secs - whole) * 1e6 + 0.5))
end

-- dt + sign * dur
function M.add(dt, dur, sign)
  sign = sign or 1
  local t, us = dt.t, dt.us
  if dur.months ~= 0 then
    local y, m, d, H, Mi, S = dt:fields()
    local total = y * 12 + (m - 1) + sign * dur.months
    y, m = total // 12, total % 12 + 1
    d = math.min(d, month_days(y, m))
    t = days_from_civil(y, m, d) * 86400 + H * 3600 + Mi * 60 + S - (dt.off or 0)
  end
  us = us + sign * dur.us
  t = t + sign * dur.seconds + us // 1000000
  us = us % 1000000
  return M.new(t, us, dt.off, dt.date_only)
end

-- a - b for two datetimes, as a duration
function M.diff(a, b)
  local us = (a.t - b.t) * 1000000 + (a.us - b.us)
  return M.new_duration(0, us // 1000000, us % 1000000)
end

function DUR:total_seconds()
  return self.seconds + self.us / 1e6 + self.months * 30 * 86400
end

DUR.__tostring = function(self)
  local s = self.seconds
  local days = s // 86400
  s = s % 86400
  local out = format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60)
  if self.us ~= 0 then out = out .. format(".%06d", self.us) end
  if days ~= 0 then out = format("%d day%s, ", days, math.abs(days) == 1 and "" or "s") .. out end
  return out
end

return M
