-- airbyte.dv2.typing: Destinations V2 typing, as the warehouse destinations
-- type a raw record into its final table (protocol.md §7, §8.2).
--
-- A stream's JSON schema gives one column per top-level property, of a
-- kind (the DV2 types):
--   string, integer, number, boolean, date, timestamp_with_timezone,
--   timestamp_without_timezone, time_with_timezone, time_without_timezone,
--   object, array, unknown (unions, oneOf/anyOf, no type: any JSON)
-- and each value is cast to its column's kind. A value that does not fit
-- becomes null with a change { field, change = "NULLED", reason =
-- "DESTINATION_TYPECAST_ERROR" }; the raw table keeps what came.
--
-- This is the destinations' rule, not the cache's (PyAirbyte's, in
-- cache_sqlite.c): DV2 keeps dates and times as typed columns and rejects
-- a value that is not of its type instead of storing its text.
--
--   typing.columns(json_schema) -> { { name = property, kind = kind }, ... }
--                                  in property-name order
--   typing.cast(kind, value) -> text | nil [, false when the value was
--       nulled]. text is what PostgreSQL's input function of the column
--       type accepts (JSON text for object, array and unknown); the checks
--       are never looser than PostgreSQL's, so a text always loads.
local cdk = require "airbyte.cdk"
local json = require "airbyte.json"

local M = {}

local type, tostring, tonumber, getmetatable = type, tostring, tonumber, getmetatable
local match, find, format, lower, gsub = string.match, string.find, string.format, string.lower, string.gsub
local mtype, tointeger, huge = math.type, math.tointeger, math.huge

local NULL = json.null
local encode = json.encode      -- the C encoder: objects' keys sorted, big integers' digits kept
local number_text = json.number

---------------------------------------------------------------------------
-- Schema -> kinds
---------------------------------------------------------------------------

local WELL_KNOWN = {
  String = "string", BinaryData = "string", Date = "date",
  TimestampWithTimezone = "timestamp_with_timezone",
  TimestampWithoutTimezone = "timestamp_without_timezone",
  TimeWithTimezone = "time_with_timezone", TimeWithoutTimezone = "time_without_timezone",
  Number = "number", Integer = "integer", Boolean = "boolean",
}

local function string_kind(def)
  local at, fmt = def.airbyte_type, def.format
  if fmt == "date-time" then
    return at == "timestamp_without_timezone" and at or "timestamp_with_timezone"
  elseif fmt == "date" then
    return "date"
  elseif fmt == "time" then
    return at == "time_with_timezone" and at or "time_without_timezone"
  end
  if at == "timestamp_with_timezone" or at == "timestamp_without_timezone" or at == "date" or
     at == "time_with_timezone" or at == "time_without_timezone" then
    return at
  end
  return "string"
end

local function kind_of(def)
  if type(def) ~= "table" then return "unknown" end
  local ref = def["$ref"]
  if type(ref) == "string" then
    return WELL_KNOWN[match(ref, "WellKnownTypes%.json#/definitions/(%w+)$") or ""] or "unknown"
  end
  if def.oneOf ~= nil or def.anyOf ~= nil then return "unknown" end
  local t = def.type
  if type(t) == "table" then      -- ["null", "x"] is x; any other union is unknown
    local one
    for _, name in ipairs(t) do
      if name ~= "null" then
        if one then return "unknown" end
        one = name
      end
    end
    t = one
  end
  if t == "string" then return string_kind(def)
  elseif t == "integer" then return "integer"
  elseif t == "number" then return def.airbyte_type == "integer" and "integer" or "number"
  elseif t == "boolean" then return "boolean"
  elseif t == "object" then return "object"
  elseif t == "array" then return "array"
  elseif t == nil and type(def.properties) == "table" then return "object"
  end
  return "unknown"
end
M.kind_of = kind_of

function M.columns(schema)
  local cols = {}
  local props = type(schema) == "table" and schema.properties
  if type(props) ~= "table" then return cols end
  for name, def in pairs(props) do
    if type(name) == "string" then cols[#cols + 1] = { name = name, kind = kind_of(def) } end
  end
  table.sort(cols, function(a, b) return a.name < b.name end)
  return cols
end

---------------------------------------------------------------------------
-- Values -> column text
---------------------------------------------------------------------------

local function json_kind(v)
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  if name == "airbyte.json.array" then return "array" end
  if name == "airbyte.json.object" then return "object" end
  if v[1] ~= nil then return "array" end
  return "object"
end

local function is_bigint(v)
  return type(v) == "userdata" and json.is_bigint and json.is_bigint(v)
end

-- PostgreSQL text cannot hold a NUL byte.
local function text(s)
  if find(s, "\0", 1, true) then s = gsub(s, "%z", "") end
  return s
end

local function leap(y) return (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0 end
local MDAYS = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function valid_date(y, m, d)
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if y < 1 or m < 1 or m > 12 or d < 1 then return false end
  local last = MDAYS[m]
  if m == 2 and leap(y) then last = 29 end
  return d <= last
end

local function valid_time(h, mi, s)
  return tonumber(h) <= 23 and tonumber(mi) <= 59 and (s == nil or s == "" or tonumber(s) <= 59)
end

-- "", "Z", "+HH", "+HHMM", "+HH:MM" (PostgreSQL takes offsets to ±15:59)
local function valid_zone(z)
  if z == "" or z == "Z" or z == "z" then return true end
  local h, m = match(z, "^[+-](%d%d):?(%d%d)$")
  if not h then h = match(z, "^[+-](%d%d)$") end
  if not h then return false end
  return tonumber(h) <= 15 and (m == nil or tonumber(m) <= 59)
end

-- hh:mm[:ss[.frac]] then the rest
local function split_time(s)
  local h, mi, rest = match(s, "^(%d%d):(%d%d)(.*)$")
  if not h then return nil end
  local sec, rest2 = match(rest, "^:(%d%d)(.*)$")
  if sec then
    rest = rest2
    local frac = match(rest, "^%.%d+")
    if frac then rest = rest:sub(#frac + 1) end
  end
  return h, mi, sec, rest
end

local function cast_timestamp(v)
  if type(v) ~= "string" then return nil end
  local y, mo, d, rest = match(v, "^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](.*)$")
  if not y or not valid_date(y, mo, d) then return nil end
  local h, mi, sec, zone = split_time(rest)
  if not h or not valid_time(h, mi, sec) or not valid_zone(zone) then return nil end
  return v
end

local function cast_time(v)
  if type(v) ~= "string" then return nil end
  local h, mi, sec, zone = split_time(v)
  if not h or not valid_time(h, mi, sec) or not valid_zone(zone) then return nil end
  return v
end

local function cast_date(v)
  if type(v) ~= "string" then return nil end
  local y, mo, d = match(v, "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  if not y or not valid_date(y, mo, d) then return nil end
  return v
end

local INT_MIN, INT_MAX_F = math.mininteger, 2.0 ^ 63

local function cast_integer(v)
  local tv = type(v)
  if tv == "number" then
    if mtype(v) == "integer" then return tostring(v) end
    if v == v and v >= -INT_MAX_F and v < INT_MAX_F then
      local i = tointeger(v)
      if i then return tostring(i) end
    end
    return nil
  elseif tv == "string" then
    local digits = match(v, "^%s*([+-]?%d+)%s*$")
    local i = digits and tointeger(tonumber(digits))
    if i and (i ~= INT_MIN or match(digits, "^%-0*9223372036854775808$")) then return tostring(i) end
  end
  return nil   -- booleans, objects, arrays, big integers (beyond bigint)
end

local function cast_number(v)
  local tv = type(v)
  if tv == "number" then
    if mtype(v) == "integer" then return tostring(v) end
    if v ~= v or v == huge or v == -huge then return nil end
    return number_text(v)
  elseif tv == "string" then
    local s = match(v, "^%s*([+-]?%d*%.?%d*[eE]?[+-]?%d*)%s*$")
    if s and find(s, "%d") and (match(s, "^[+-]?%d+%.?%d*$") or match(s, "^[+-]?%d*%.%d+$") or
       match(s, "^[+-]?%d+%.?%d*[eE][+-]?%d+$") or match(s, "^[+-]?%d*%.%d+[eE][+-]?%d+$")) then
      return s
    end
  elseif is_bigint(v) then
    return tostring(v)
  end
  return nil
end

local function cast_boolean(v)
  if v == true then return "true" elseif v == false then return "false" end
  if type(v) == "string" then
    local l = lower(v)
    if l == "true" or l == "false" then return l end
  end
  return nil
end

local function cast_string(v)
  local tv = type(v)
  if tv == "string" then return text(v) end
  return text(encode(v))      -- numbers, booleans, objects, arrays: their JSON text
end

local CAST = {
  string = cast_string,
  integer = cast_integer,
  number = cast_number,
  boolean = cast_boolean,
  date = cast_date,
  timestamp_with_timezone = cast_timestamp,
  timestamp_without_timezone = cast_timestamp,
  time_with_timezone = cast_time,
  time_without_timezone = cast_time,
}

function M.cast(kind, v)
  if v == nil or v == NULL then return nil end
  local f = CAST[kind]
  if f then
    local out = f(v)
    if out == nil then return nil, false end
    return out
  end
  if kind == "object" or kind == "array" then
    if type(v) ~= "table" or json_kind(v) ~= kind then return nil, false end
  end
  local s = encode(v)
  if find(s, "\\u0000", 1, true) then s = M.strip_nul_escapes(s) end
  return s
end

-- JSON text without \u0000 escapes (jsonb refuses them): an escape is one
-- after an odd run of backslashes, so "\\u0000" (a backslash, then
-- u0000) stays.
function M.strip_nul_escapes(s)
  return (gsub(s, "(\\+)u0000", function(bs)
    if #bs % 2 == 1 then return bs:sub(2) end
  end))
end

M.NULLED = function(field)
  return cdk.obj("field", field, "change", "NULLED", "reason", "DESTINATION_TYPECAST_ERROR")
end

return M
