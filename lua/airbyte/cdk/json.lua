-- airbyte.cdk.json: the kit's JSON values and their text.
--
-- Key order and array-ness are not visible in a Lua table, so tables built
-- with obj() / array() carry them on the side (weakly). Numbers and strings
-- are written by the runtime's one JSON writer (runtime/src/jsonenc.c,
-- through airbyte.json), the one json.encode and the cache feed use, so a
-- value reads back the same whichever path it took: escape(s) is s itself
-- when it needs no escaping; number_text(v) is the shortest text that reads
-- back as the same double, always with a '.' or an exponent, nil for NaN
-- and the infinities (JSON has neither: the kit writes null).
-- The walk over tables stays here, not in airbyte.json.encode: it keeps
-- the declared key order of obj() tables and the array marks, goes through
-- __index/__pairs (the records of a destination's input resolve lazily),
-- and passes string bytes through unchecked, as the kit always has.
local cjson = require "cjson"
local ajson = require "airbyte.json"

local M = {}

local concat, sort = table.concat, table.sort
local mtype = math.type
local type, pairs, ipairs, select, tostring, tonumber, error, setmetatable, getmetatable, rawget =
  type, pairs, ipairs, select, tostring, tonumber, error, setmetatable, getmetatable, rawget

local NULL = cjson.null
M.null = NULL

local escape, number_text = ajson.escape, ajson.number
M.escape = escape

local function encode_float(v)
  return number_text(v) or "null"
end

-- Key order and array-ness can't be seen in a Lua table, so they are kept on
-- the side, weakly, for tables built with M.obj / M.array.
local key_order = setmetatable({}, { __mode = "k" })
local array_mark = setmetatable({}, { __mode = "k" })

function M.obj(...)
  local n = select("#", ...)
  local args, t, keys = { ... }, {}, {}
  for i = 1, n, 2 do
    local k = args[i]
    keys[#keys + 1] = k
    t[k] = args[i + 1]
  end
  key_order[t] = keys
  return t
end

function M.array(t)
  t = t or {}
  array_mark[t] = true
  return t
end

-- airbyte.json's decoder marks arrays (and its objects) with named metatables
local function json_mt_name(t)
  local mt = getmetatable(t)
  return type(mt) == "table" and rawget(mt, "__name") or nil
end

local function is_array(t)
  if array_mark[t] then return true end
  if t[1] == nil then -- empty tables encode as {} unless marked as arrays
    return json_mt_name(t) == "airbyte.json.array"
  end
  local n = #t
  for k in pairs(t) do
    if mtype(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

-- Keys of an object in encoding order: the declared order first, then any
-- other keys sorted so output is deterministic.
local function ordered_keys(t)
  local declared = key_order[t]
  local keys, seen = {}, {}
  if declared then
    for _, k in ipairs(declared) do
      if t[k] ~= nil and not seen[k] then keys[#keys + 1] = k; seen[k] = true end
    end
  end
  local extra
  for k in pairs(t) do
    if not seen[k] then
      extra = extra or {}
      extra[#extra + 1] = k
    end
  end
  if extra then
    for i, k in ipairs(extra) do extra[i] = tostring(k) end
    sort(extra)
    for _, k in ipairs(extra) do keys[#keys + 1] = k end
  end
  return keys
end

local encode_value

local function encode_table(t, buf, n, depth)
  if depth > 200 then error("cannot encode: nesting too deep (a cycle?)", 0) end
  if is_array(t) then
    n = n + 1; buf[n] = "["
    for i = 1, #t do
      if i > 1 then n = n + 1; buf[n] = "," end
      n = encode_value(t[i], buf, n, depth + 1)
    end
    n = n + 1; buf[n] = "]"
    return n
  end
  n = n + 1; buf[n] = "{"
  for i, k in ipairs(ordered_keys(t)) do
    local v = t[k]
    if v == nil then v = t[tonumber(k)] end -- numeric keys were stringified
    n = n + 1; buf[n] = (i > 1 and ',"' or '"') .. escape(k) .. '":'
    n = encode_value(v, buf, n, depth + 1)
  end
  n = n + 1; buf[n] = "}"
  return n
end

function encode_value(v, buf, n, depth)
  local tv = type(v)
  n = n + 1
  if tv == "string" then
    buf[n] = '"'; buf[n + 1] = escape(v); buf[n + 2] = '"'
    return n + 2
  elseif tv == "number" then
    buf[n] = mtype(v) == "integer" and tostring(v) or encode_float(v)
  elseif tv == "boolean" then
    buf[n] = v and "true" or "false"
  elseif v == nil or v == NULL then
    buf[n] = "null"
  elseif tv == "table" then
    return encode_table(v, buf, n - 1, depth or 0)
  elseif tv == "userdata" and json_mt_name(v) == "airbyte.BigInt" then
    buf[n] = tostring(v) -- airbyte.json's BigInt: its digits
  else
    error("cannot encode a " .. tv .. " as JSON", 0)
  end
  return n
end

function M.encode(v)
  local buf = {}
  local n = encode_value(v, buf, 0, 0)
  return concat(buf, "", 1, n)
end

-- For the kit's own modules: the declared key order of a table built with
-- obj(), or given one (keys outside it follow, sorted).
function M.declared_keys(t) return key_order[t] end
function M.set_key_order(t, keys) key_order[t] = keys end

M.encode_float = encode_float
M.encode_value = encode_value
M.encode_table = encode_table
M.is_array = is_array
M.json_mt_name = json_mt_name
M.ordered_keys = ordered_keys

return M
