-- airbyte.cdk.record_encoder: a stream schema compiled into pre-escaped key
-- pieces, so that a source's records are written without walking a generic
-- encoder per value (the hot path of `read`). Values the schema does not
-- describe go through airbyte.cdk.json.
local json = require "airbyte.cdk.json"

local M = {}

local concat, sort = table.concat, table.sort
local gsub, format = string.gsub, string.format
local mtype = math.type
local type, pairs, ipairs, next, tostring, tonumber, error, load =
  type, pairs, ipairs, next, tostring, tonumber, error, load

local NULL = json.null
local escape, encode_float, encode_value, encode_table = json.escape, json.encode_float, json.encode_value,
  json.encode_table
local is_array, json_mt_name, ordered_keys = json.is_array, json.json_mt_name, json.ordered_keys

local function schema_types(schema)
  local t = schema.type
  if type(t) == "string" then return { [t] = true } end
  local set = {}
  if type(t) == "table" then for _, name in ipairs(t) do set[name] = true end end
  return set
end

-- Fields drawn from small vocabularies repeat the same strings: each field
-- remembers up to SAFE_CACHE strings it found safe (a hash hit is much
-- cheaper than a scan). High-cardinality fields fill theirs once and stop.
local SAFE_CACHE = 512

-- compile(schema) -> encoder for objects of that schema, or nil when the
-- schema declares no properties. Field i has names[i], subs[i] (encoder of a
-- nested object), items[i] (encoder of array items, true for untyped items), safe[i] / room[i] (its
-- cache of safe strings), and its pre-escaped key in six variants, by what
-- comes before it and whether its value is a string (then the piece also
-- opens the value's quote):
--   first field  '{"k":'   '{"k":"'       k0, ks0
--   after value  ',"k":'   ',"k":"'       k1, ks1
--   after string '","k":'  '","k":"'      k2, ks2   (closes the previous string)
local function compile(schema)
  if type(schema) ~= "table" or type(schema.properties) ~= "table" then return nil end
  local props = schema.properties
  local enc = { names = {}, subs = {}, items = {}, safe = {}, room = {}, count = 0, index = {},
                k0 = {}, ks0 = {}, k1 = {}, ks1 = {}, k2 = {}, ks2 = {} }
  for i, name in ipairs(ordered_keys(props)) do
    local prop = props[name]
    local quoted = '"' .. escape(name) .. '":'
    enc.names[i] = name
    enc.k0[i], enc.ks0[i] = "{" .. quoted, "{" .. quoted .. '"'
    enc.k1[i], enc.ks1[i] = "," .. quoted, "," .. quoted .. '"'
    enc.k2[i], enc.ks2[i] = '",' .. quoted, '",' .. quoted .. '"'
    enc.safe[i], enc.room[i] = {}, SAFE_CACHE
    enc.index[name] = true
    if type(prop) == "table" then
      local types = schema_types(prop)
      if types.object or prop.properties then enc.subs[i] = compile(prop) or false end
      if types.array then enc.items[i] = compile(prop.items) or true end
    end
    enc.count = i
  end
  return enc
end

local encode_fields

-- The piece that starts a key: what precedes it depends on the state
-- (0 nothing yet, 1 after a value, 2 after a string whose quote is open).
local KEY_LEAD = { [0] = '{"', ',"', '","' }

-- Extra keys (not in the schema) go after the schema's keys, sorted.
local function encode_extra(enc, data, buf, n, state, depth)
  local extra
  for k in pairs(data) do
    if not enc.index[k] then extra = extra or {}; extra[#extra + 1] = tostring(k) end
  end
  if not extra then return n, state end
  sort(extra)
  for _, k in ipairs(extra) do
    n = n + 1
    buf[n] = KEY_LEAD[state] .. escape(k) .. '":'
    state = 1
    local v = data[k]
    if v == nil then v = data[tonumber(k)] end
    n = encode_value(v, buf, n, depth + 1)
  end
  return n, state
end

-- An array-typed field; sub is the items' encoder, or true if they have none.
local function encode_array_items(sub, arr, buf, n, depth)
  if next(arr) == nil then n = n + 1; buf[n] = "[]"; return n end
  if not is_array(arr) then return encode_table(arr, buf, n, depth) end
  n = n + 1; buf[n] = "["
  for i = 1, #arr do
    if i > 1 then n = n + 1; buf[n] = "," end
    local v = arr[i]
    if sub ~= true and type(v) == "table" and v ~= NULL and not is_array(v) then
      n = (sub.fast or encode_fields)(sub, v, buf, n, false, depth + 1)
    else
      n = encode_value(v, buf, n, depth + 1)
    end
  end
  n = n + 1; buf[n] = "]"
  return n
end

local OBJECT_END = { [0] = "{}", "}", '"}' }

-- A string value that was not in field i's cache: scan it, remember it if
-- safe and there is room, else escape it.
local function checked_string(enc, i, v)
  local e = enc.trusted and v or escape(v)
  if e == v then   -- the same string back: nothing needed escaping
    local r = enc.room[i]
    if r > 0 then enc.safe[i][v] = true; enc.room[i] = r - 1 end
  end
  return e
end

-- Any value but a string or an integer, after its key piece at buf[n].
local function encode_other(enc, i, v, tv, buf, n, exact, depth)
  n = n + 1
  if tv == "number" then
    if mtype(v) == "integer" then buf[n] = v else buf[n] = encode_float(v) end
  elseif tv == "table" then
    local s, it = enc.subs[i], enc.items[i]
    if s and not is_array(v) then
      return (s.fast or encode_fields)(s, v, buf, n - 1, exact, depth + 1)
    elseif it then
      return encode_array_items(it, v, buf, n - 1, depth + 1)
    end
    return encode_table(v, buf, n - 1, depth + 1)
  elseif tv == "boolean" then
    buf[n] = v and "true" or "false"
  elseif v == NULL then
    buf[n] = "null"
  elseif tv == "userdata" and json_mt_name(v) == "airbyte.BigInt" then
    buf[n] = tostring(v)
  else
    error("field " .. enc.names[i] .. ": cannot encode a " .. tv .. " as JSON", 0)
  end
  return n
end

-- The hot path: append the pieces of one object to buf, return the new top.
-- A string value costs two pieces (key-and-open-quote, text): its closing
-- quote travels with the next piece. This loop serves any schema; compiled
-- schemas of a usual width get a specialised copy (below).
function encode_fields(enc, data, buf, n, exact, depth)
  local names, safe = enc.names, enc.safe
  local K, KS = enc.k0, enc.ks0
  local state = 0
  for i = 1, enc.count do
    local v = data[names[i]]
    if v ~= nil then
      local tv = safe[i][v] or type(v) -- a cached string is known safe: skip type()
      if tv == true or tv == "string" then
        if tv ~= true then v = checked_string(enc, i, v) end
        buf[n + 1] = KS[i]; buf[n + 2] = v
        n = n + 2
        if state ~= 2 then state = 2; K, KS = enc.k2, enc.ks2 end
      else
        buf[n + 1] = K[i]
        if state ~= 1 then state = 1; K, KS = enc.k1, enc.ks1 end
        if tv == "number" and mtype(v) == "integer" then
          buf[n + 2] = v
          n = n + 2
        else
          n = encode_other(enc, i, v, tv, buf, n + 1, exact, depth)
        end
      end
    end
  end
  if not exact then n, state = encode_extra(enc, data, buf, n, state, depth) end
  n = n + 1
  buf[n] = OBJECT_END[state]
  return n
end

-- Specialisation: the same loop unrolled into Lua source with each field's
-- name and key pieces as constants and its cache as an upvalue, which
-- removes most table lookups per field (records are encoded ~2x faster).
-- Wide schemas keep the loop: a function has at most 255 upvalues.
local SPECIALISE_MAX_FIELDS = 120

local FIELD_TEMPLATE = [[
  v = data[$NAME]
  if v ~= nil then
    tv = S$I[v] or type(v)
    if tv == true or tv == "string" then
      if tv ~= true then v = checked_string(enc, $I, v) end
      if state == 1 then buf[n + 1] = $KS1 elseif state == 2 then buf[n + 1] = $KS2 else buf[n + 1] = $KS0 end
      buf[n + 2] = v
      n = n + 2
      state = 2
    else
      if state == 1 then buf[n + 1] = $K1 elseif state == 2 then buf[n + 1] = $K2 else buf[n + 1] = $K0 end
      if tv == "number" and mtype(v) == "integer" then
        buf[n + 2] = v
        n = n + 2
      else
        n = encode_other(enc, $I, v, tv, buf, n + 1, exact, depth)
      end
      state = 1
    end
  end
]]

local function specialise(enc)
  if enc.count > SPECIALISE_MAX_FIELDS then return nil end
  local src = { "local enc, type, mtype, checked_string, encode_other, encode_extra, OBJECT_END = ...\n" }
  for i = 1, enc.count do src[#src + 1] = format("local S%d = enc.safe[%d]\n", i, i) end
  src[#src + 1] = "return function(_, data, buf, n, exact, depth)\n  local state, v, tv = 0\n"
  for i = 1, enc.count do
    local subst = { NAME = format("%q", enc.names[i]), I = tostring(i),
                    K0 = format("%q", enc.k0[i]), K1 = format("%q", enc.k1[i]), K2 = format("%q", enc.k2[i]),
                    KS0 = format("%q", enc.ks0[i]), KS1 = format("%q", enc.ks1[i]), KS2 = format("%q", enc.ks2[i]) }
    src[#src + 1] = (gsub(FIELD_TEMPLATE, "%$(%u+%d?)", subst))
  end
  src[#src + 1] = [[
  if not exact then n, state = encode_extra(enc, data, buf, n, state, depth) end
  n = n + 1
  buf[n] = OBJECT_END[state]
  return n
end
]]
  local chunk = assert(load(concat(src), "=(cdk record encoder)", "t", {}))
  return chunk(enc, type, mtype, checked_string, encode_other, encode_extra, OBJECT_END)
end

-- compile + specialise, for the top level and every nested object.
-- trusted: the connector promises its strings need no escaping.
local function compile_fast(schema, trusted)
  local enc = compile(schema)
  local function walk(e)
    if not e then return end
    e.fast = specialise(e)
    e.trusted = trusted
    for i = 1, e.count do
      if e.subs[i] then walk(e.subs[i]) end
      if type(e.items[i]) == "table" then walk(e.items[i]) end
    end
  end
  walk(enc)
  return enc
end

-- compile(schema [, trusted]) -> encoder | nil (no properties declared).
M.compile = compile_fast

-- writer(enc) -> fn(enc, data, buf, n, exact, depth) -> n, which appends
-- the pieces of one record's data to buf after buf[n]; for a nil enc (no
-- schema) it writes any table.
local function any_table(_, data, buf, n, _, depth) return encode_table(data, buf, n, depth) end
function M.writer(enc)
  if enc then return enc.fast or encode_fields end
  return any_table
end

return M
