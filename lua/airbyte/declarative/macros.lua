-- The macros, filters and tests templates may call: the CDK's global
-- functions (now_utc(), day_delta(), format_datetime(), ...), its Jinja
-- filters (| default, | join, | urlencode, ...) and Jinja's tests (is defined).
local json = require "airbyte.json"
local dt = require "airbyte.declarative.datetime"
local V = require "airbyte.declarative.pyvalues"

local M = {}

local NONE, UNDEF = V.NONE, V.UNDEFINED
local floor, concat = math.floor, table.concat
local list = V.list
local fail, truthy, py_str = V.fail, V.truthy, V.str
local is_list, is_dict, equal, contains = V.is_list, V.is_dict, V.equal, V.contains
local sorted_keys, type_name, getitem, compare = V.sorted_keys, V.type_name, V.getitem, V.compare
local to_int, str_method, call_method = V.to_int, V.str_method, V.call_method

-- The clock of now_utc() and the other macros that read the time:
-- airbyte.declarative.interpolation's clock (tests replace it), read when
-- a macro runs.
local function clock() return require("airbyte.declarative.interpolation").clock end

-- Macros (the CDK's global functions) -----------------------------------------

local function to_datetime(v, input_format)
  if dt.is(v) then return v end
  if type(v) == "number" then
    if input_format then return dt.parse(tostring(math.tointeger(v) or v), input_format) end
    local t = floor(v)
    return dt.new(t, floor((v - t) * 1e6 + 0.5), 0)
  end
  if type(v) == "string" then
    if input_format then return dt.parse(v, input_format) end
    return dt.parse_iso(v) or (tonumber(v) and to_datetime(tonumber(v)))
  end
  return nil
end

local function format_datetime(v, fmt, input_format)
  if input_format == NONE then input_format = nil end
  local d = to_datetime(v, input_format)
  if not d then fail(("format_datetime: cannot read '%s' as a datetime"):format(py_str(v))) end
  return dt.format(d, fmt)
end

local MACROS = {}

function MACROS.now_utc() return dt.now(clock()) end
function MACROS.today_utc() return dt.today(clock()) end
function MACROS.today_with_timezone(tz)
  if tz ~= "UTC" and tz ~= "Etc/UTC" then fail("today_with_timezone: only 'UTC' is supported, not " .. py_str(tz)) end
  return dt.today(clock())
end
function MACROS.timestamp(v)
  if type(v) == "number" then return to_int(v) end
  local d = to_datetime(v)
  if not d then fail(("timestamp: cannot read '%s' as a datetime"):format(py_str(v))) end
  return d.t
end
function MACROS.str_to_datetime(s)
  local d = dt.parse_iso(s)
  if not d then fail(("str_to_datetime: '%s' is not a datetime"):format(py_str(s))) end
  return d
end
function MACROS.max(...)
  local args = { ... }
  if #args == 1 and type(args[1]) == "table" and is_list(args[1]) then args = args[1] end
  local best = args[1]
  for i = 2, #args do if compare(">", args[i], best) then best = args[i] end end
  return best
end
function MACROS.min(...)
  local args = { ... }
  if #args == 1 and type(args[1]) == "table" and is_list(args[1]) then args = args[1] end
  local best = args[1]
  for i = 2, #args do if compare("<", args[i], best) then best = args[i] end end
  return best
end
function MACROS.day_delta(n, fmt)
  local d = dt.add(dt.now(clock()), dt.new_duration(0, floor(n * 86400), 0))
  return dt.format(d, fmt or "%Y-%m-%dT%H:%M:%S.%f%z")
end
function MACROS.duration(s)
  local d, err = dt.duration(s)
  if not d then fail("duration: " .. err) end
  return d
end
MACROS.format_datetime = format_datetime
function MACROS.sanitize_url(s)
  return M.quote(py_str(s), "", true)
end
function MACROS.camel_case_to_snake_case(s)
  s = py_str(s):gsub("(.)(%u%l)", "%1_%2"):gsub("(%l)(%u)", "%1_%2"):gsub("(%d)(%u)", "%1_%2")
  return s:lower()
end
function MACROS.generate_uuid()
  local b = {}
  for i = 1, 16 do b[i] = math.random(0, 255) end
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  local h = string.format(string.rep("%02x", 16), table.unpack(b))
  return h:sub(1, 8) .. "-" .. h:sub(9, 12) .. "-" .. h:sub(13, 16) .. "-" .. h:sub(17, 20) .. "-" .. h:sub(21)
end
local MACRO_KW = { day_delta = { "n", "format" }, format_datetime = { "dt", "format", "input_format" } }

-- Filters ------------------------------------------------------------------------

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64encode(s)
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end
M.base64encode = base64encode

local function base64decode(s)
  s = s:gsub("[^" .. b64chars .. "=]", "")
  return (s:gsub(".", function(x)
    if x == "=" then return "" end
    local r, f = "", (b64chars:find(x, 1, true) - 1)
    for i = 6, 1, -1 do r = r .. (f % 2 ^ i - f % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end):gsub("%d%d%d?%d?%d?%d?%d?%d?", function(x)
    if #x ~= 8 then return "" end
    local c = 0
    for i = 1, 8 do c = c + (x:sub(i, i) == "1" and 2 ^ (8 - i) or 0) end
    return string.char(c)
  end))
end

-- Percent-encoding as Python's urllib.parse.quote: letters, digits and
-- "-._~" stay, plus the characters of `safe`; plus = quote_plus (space -> +).
function M.quote(s, safe, plus)
  return (s:gsub("[^%w%-%._~" .. (safe or "") .. "]", function(c)
    if plus and c == " " then return "+" end
    return string.format("%%%02X", c:byte())
  end))
end

local function urlencode(v)
  if type(v) == "table" and is_dict(v) then
    local parts = {}
    for _, k in ipairs(sorted_keys(v)) do parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(v[k]) end
    return concat(parts, "&")
  end
  return M.quote(py_str(v), "/")
end
M.urlencode = urlencode

local FILTERS = {}
FILTERS.urlencode = urlencode
function FILTERS.default(v, d, boolean)
  if v == UNDEF or (boolean and not truthy(v)) then return d == nil and "" or d end
  return v
end
FILTERS.d = FILTERS.default
function FILTERS.join(v, sep, attr)
  if v == UNDEF then return "" end
  local parts = {}
  for i, x in ipairs(v) do parts[i] = py_str(attr and getitem(x, attr) or x) end
  return concat(parts, sep or "")
end
function FILTERS.lower(v) return py_str(v):lower() end
function FILTERS.upper(v) return py_str(v):upper() end
function FILTERS.trim(v) return (py_str(v):gsub("^%s+", ""):gsub("%s+$", "")) end
function FILTERS.string(v) return py_str(v) end
function FILTERS.int(v, d)
  local n = to_int(v)
  if n == nil and type(v) == "string" and tonumber(v) then n = to_int(tonumber(v)) end
  if n == nil then return d or 0 end
  return n
end
function FILTERS.float(v, d)
  local n = tonumber(type(v) == "string" and v or (type(v) == "number" and v or nil))
  if n == nil then return d or 0.0 end
  return n + 0.0
end
function FILTERS.length(v)
  if type(v) == "string" then return utf8.len(v) or #v end
  if type(v) == "table" then
    if is_list(v) then return #v end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return n
  end
  if v == UNDEF then return 0 end
  fail("object of type '" .. type_name(v) .. "' has no len()")
end
FILTERS.count = FILTERS.length
function FILTERS.first(v) return getitem(v, 0) end
function FILTERS.last(v) return getitem(v, -1) end
function FILTERS.replace(v, old, new) return str_method(py_str(v), "replace", { old, new }) end
function FILTERS.list(v)
  if type(v) == "string" then
    local out = list()
    for ch in v:gmatch(utf8.charpattern) do out[#out + 1] = ch end
    return out
  end
  if type(v) == "table" and is_dict(v) then return call_method(v, "keys", {}, {}) end
  return v
end
function FILTERS.tojson(v) return json.encode(v) end
function FILTERS.base64encode(v) return base64encode(py_str(v)) end
function FILTERS.base64decode(v) return base64decode(py_str(v)) end
FILTERS.base64binascii_decode = FILTERS.base64decode
function FILTERS.abs(v) return math.abs(v) end
function FILTERS.round(v, p)
  local m = 10 ^ (p or 0)
  return floor(v * m + 0.5) / m
end
function FILTERS.hash(v, kind, salt)
  kind = kind or "md5"
  local ok, core = pcall(require, "airbyte.core")
  if kind == "md5" and ok and core.md5 then return core.md5(py_str(v) .. (salt or "")) end
  fail(("hash: the '%s' digest is not available in luabyte"):format(kind))
end
function FILTERS.regex_search()
  fail("the regex_search filter (Python regular expressions) is not supported by luabyte")
end
function FILTERS.regex_replace()
  fail("the regex_replace filter (Python regular expressions) is not supported by luabyte")
end
function FILTERS.hmac()
  fail("the hmac filter is not supported by luabyte")
end

local TESTS = {
  defined = function(v) return v ~= UNDEF end,
  undefined = function(v) return v == UNDEF end,
  none = function(v) return v == NONE or v == nil end,
  string = function(v) return type(v) == "string" end,
  number = function(v) return type(v) == "number" end,
  mapping = function(v) return type(v) == "table" and is_dict(v) end,
  sequence = function(v) return type(v) == "string" or (type(v) == "table" and is_list(v)) end,
  ["true"] = function(v) return v == true end,
  ["false"] = function(v) return v == false end,
  eq = function(v, o) return equal(v, o) end,
  ["in"] = function(v, o) return contains(o, v) end,
}

M.MACROS, M.MACRO_KW, M.FILTERS, M.TESTS = MACROS, MACRO_KW, FILTERS, TESTS
M.to_datetime = to_datetime

return M
