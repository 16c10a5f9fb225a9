-- airbyte.cdk: a small kit for writing Airbyte connectors in Lua.
--
-- A connector module returns `cdk.source{...}` (or `cdk.destination{...}`) and
-- a host runs it with `cdk.main(connector, argv)`, which speaks the Airbyte
-- protocol: it parses the command line, loads the JSON files, validates the
-- config against the spec, calls the connector and prints one protocol
-- message per stdout line.
--
-- API (all functions, no globals):
--   cdk.source{ spec = tbl, check = fn(config) -> ok, msg,
--               discover = fn(config) -> { stream, ... },
--               read = fn(config, configured_catalog, state_array, emit) }
--       -> connector { kind = "source", spec, check, discover, read }
--   cdk.destination{ spec = tbl, check = fn(config) -> ok, msg,
--                    write = fn(config, configured_catalog, input, emit) }
--       -> connector { kind = "destination", spec, check, write }
--   cdk.main(connector, argv [, opts]) -> exit code
--       opts.out: a file-like object with :write/:flush (default io.stdout)
--       opts.input: an iterator of stdin lines for `write` (default: stdin)
--   cdk.obj(k1, v1, k2, v2, ...) -> table whose keys encode in that order
--   cdk.array([t])                -> t, always encoded as a JSON array
--   cdk.null                      -> JSON null (cjson.null)
--   cdk.encode(value) -> JSON text (ordered objects, integers stay integers)
--   cdk.escape(s)     -> s with JSON string escapes applied (no quotes)
--   cdk.validate(schema, value) -> nil | { "path: problem", ... } (draft-07 subset)
--   cdk.stream_state(state_array, name [, namespace]) -> stream_state | nil
--   cdk.error(message [, failure_type [, internal]]) raises a structured error
--   cdk.config_error(message) raises one with failure_type "config_error"
--   cdk.clock() -> epoch milliseconds (integer); replaceable by a host
--
-- The emitter handed to read():
--   emit.stream(name [, opts]) -> handle        opts.schema: the stream's JSON
--       schema whose property order the records follow (default: the configured
--       catalog's), opts.exact_fields: records never carry keys outside the schema
--       (skips the per-record check for extra keys), opts.safe_strings: the
--       record strings never need JSON escaping (no '"', '\\' or control
--       bytes: skips scanning them; only for generated data), opts.namespace.
--   handle:started()            STARTED status (implicit on first use)
--   handle:record(data)         RECORD; RUNNING status at the first record
--   handle:state(stream_state)  STREAM state with sourceStats.recordCount =
--                               records of this stream since its previous state
--   handle:estimate(rows [, bytes])   ESTIMATE trace
--   handle:complete() / handle:incomplete()
--   emit.log(level, message)    LOG message
--   emit.message(msg)           any protocol message: a table to encode, or a
--                               line of JSON written as is (destinations echo
--                               STATE lines with it)
--   emit.record(name, data), emit.state(name, stream_state): shortcuts
-- Streams started but not finished get COMPLETE when read() returns, or
-- INCOMPLETE when it raises (followed by a TRACE ERROR and exit code 1).
--
-- The input handed to write() (the kit echoes STATEs, see "Destinations"):
--   for msg, line in input do ... end   RECORDs of configured streams and
--       TRACEs, in stdin order. A RECORD msg is { type = "RECORD", record =
--       { stream, namespace, emitted_at, data, ... } , data_json = the data's
--       JSON text as received }; data and the other fields decode on first
--       use. A TRACE msg is the decoded message.
--   input:on_commit(fn)  fn(state, message) makes everything written so far
--                        durable; runs before each STATE is echoed
--   input:on_abort(fn)   fn(err) cleans up when write() raises
--   input:reject([n])    the last n (1) records were not written
--   input:status(name [, namespace]) -> last stream status received
--   input.streams[name], input.stream_names: the configured streams
--       ({ name, namespace, sync_mode, destination_sync_mode, primary_key,
--       cursor_field, stream, configured })
--   input:blocks()       raw stdin chunks, for hand-written loops
-- The emitter handed to write(): emit.log(level, message), emit.message(msg),
--   emit.state(line, counter) (echo a STATE read by a hand-written loop),
--   emit.flush(), emit.now_ms().
-- Destination helpers: cdk.file_destination{...} (one raw file per stream,
--   as destination-local-json and destination-csv), cdk.output_file(path,
--   opts) (durable overwrite/append files), cdk.uuid4(), cdk.fsync(path), cdk.mkdir_p(path),
--   cdk.record_counter(), cdk.parse_message(line), cdk.record_data_json(line),
--   cdk.with_destination_stats(line, message, n [, rejected]),
--   cdk.stream_status(msg) -> name, namespace, status.

local cjson = require "cjson"

local M = {}

local concat, sort = table.concat, table.sort
local find, gsub, format = string.find, string.gsub, string.format
local mtype, tointeger, huge = math.type, math.tointeger, math.huge
local type, pairs, ipairs, next, select, tostring, tonumber, error, setmetatable, getmetatable =
  type, pairs, ipairs, next, select, tostring, tonumber, error, setmetatable, getmetatable

local NULL = cjson.null
M.null = NULL

---------------------------------------------------------------------------
-- JSON encoding
---------------------------------------------------------------------------

-- Numbers and strings are written by the runtime's one JSON writer (C,
-- runtime/src/jsonenc.c), the one json.encode and the cache feed use, so a
-- value reads back the same whichever path it took: escape(s) is s itself
-- when it needs no escaping; number_text(v) is the shortest text that reads
-- back as the same double, always with a '.' or an exponent, nil for NaN
-- and the infinities (JSON has neither: the kit writes null).
local ajson = require "airbyte.json"
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

---------------------------------------------------------------------------
-- Record encoding: a stream schema compiled into pre-escaped key pieces
---------------------------------------------------------------------------

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

---------------------------------------------------------------------------
-- Config validation: the draft-07 subset connector specs use
---------------------------------------------------------------------------

local function json_type_of(v)
  local tv = type(v)
  if tv == "string" or tv == "boolean" then return tv end
  if tv == "number" then
    if mtype(v) == "integer" or (v == v and v % 1 == 0 and v ~= huge and v ~= -huge) then
      return "integer"
    end
    return "number"
  end
  if v == NULL or v == nil then return "null" end
  if tv == "table" then return is_array(v) and "array" or "object" end
  return tv
end

local function type_matches(allowed, actual, v)
  if allowed == actual then return true end
  if allowed == "number" and actual == "integer" then return true end
  -- an empty Lua table may have come from a JSON []
  if allowed == "array" and actual == "object" and next(v) == nil then return true end
  return false
end

local function check_type(schema, v, path, errs)
  local allowed = schema.type
  if allowed == nil then return true end
  local actual = json_type_of(v)
  local list = type(allowed) == "table" and allowed or { allowed }
  for _, a in ipairs(list) do
    if type_matches(a, actual, v) then return true end
  end
  local names = {}
  for i, a in ipairs(list) do names[i] = tostring(a) end
  errs[#errs + 1] = format("%s: expected %s, got %s", path, concat(names, " or "), actual)
  return false
end

local function validate(schema, v, path, errs)
  if type(schema) ~= "table" then return end
  if not check_type(schema, v, path, errs) then return end
  if schema.enum then
    local found = false
    for _, e in ipairs(schema.enum) do if e == v then found = true break end end
    if not found then errs[#errs + 1] = path .. ": not one of the allowed values" end
  end
  if schema.const ~= nil and schema.const ~= v and type(v) ~= "table" then
    errs[#errs + 1] = path .. ": must be " .. tostring(schema.const)
  end
  if type(v) == "number" then
    if schema.minimum and v < schema.minimum then
      errs[#errs + 1] = format("%s: %s is less than the minimum of %s", path, tostring(v), tostring(schema.minimum))
    end
    if schema.maximum and v > schema.maximum then
      errs[#errs + 1] = format("%s: %s is greater than the maximum of %s", path, tostring(v), tostring(schema.maximum))
    end
    if type(schema.exclusiveMinimum) == "number" and v <= schema.exclusiveMinimum then
      errs[#errs + 1] = format("%s: %s must be greater than %s", path, tostring(v), tostring(schema.exclusiveMinimum))
    end
    if type(schema.exclusiveMaximum) == "number" and v >= schema.exclusiveMaximum then
      errs[#errs + 1] = format("%s: %s must be less than %s", path, tostring(v), tostring(schema.exclusiveMaximum))
    end
  elseif type(v) == "string" then
    local len = utf8.len(v) or #v
    if schema.minLength and len < schema.minLength then errs[#errs + 1] = path .. ": string too short" end
    if schema.maxLength and len > schema.maxLength then errs[#errs + 1] = path .. ": string too long" end
  elseif type(v) == "table" and v ~= NULL then
    if is_array(v) or (next(v) == nil and schema.type == "array") then
      if type(schema.items) == "table" then
        for i, item in ipairs(v) do validate(schema.items, item, path .. "[" .. i .. "]", errs) end
      end
      if schema.minItems and #v < schema.minItems then errs[#errs + 1] = path .. ": too few items" end
      if schema.maxItems and #v > schema.maxItems then errs[#errs + 1] = path .. ": too many items" end
    else
      for _, key in ipairs(schema.required or {}) do
        if v[key] == nil then errs[#errs + 1] = format("%s: '%s' is a required property", path, key) end
      end
      local props = schema.properties or {}
      for key, sub_schema in pairs(props) do
        if v[key] ~= nil then validate(sub_schema, v[key], path .. "." .. key, errs) end
      end
      if schema.additionalProperties == false then
        for key in pairs(v) do
          if props[key] == nil then errs[#errs + 1] = format("%s: unexpected property '%s'", path, tostring(key)) end
        end
      end
    end
  end
end

function M.validate(schema, value)
  local errs = {}
  validate(schema, value, "config", errs)
  if #errs == 0 then return nil end
  return errs
end

---------------------------------------------------------------------------
-- Errors
---------------------------------------------------------------------------

local ConnectorError = {}
ConnectorError.__index = ConnectorError
ConnectorError.__tostring = function(e) return e.message end

function M.error(message, failure_type, internal)
  error(setmetatable({ message = tostring(message), failure_type = failure_type or "system_error",
                       internal_message = internal }, ConnectorError), 2)
end

function M.config_error(message)
  error(setmetatable({ message = tostring(message), failure_type = "config_error" }, ConnectorError), 2)
end

-- xpcall handler: every error becomes a ConnectorError with a stack trace.
local function capture(err)
  local e
  if getmetatable(err) == ConnectorError then
    e = err
  elseif type(err) == "table" and type(err.message) == "string" then
    e = setmetatable({ message = err.message, failure_type = err.failure_type or "system_error",
                       internal_message = err.internal_message }, ConnectorError)
  else
    e = setmetatable({ message = tostring(err), failure_type = "system_error" }, ConnectorError)
  end
  e.stack_trace = e.stack_trace or debug.traceback(tostring(e.message), 2)
  return e
end

---------------------------------------------------------------------------
-- Files, clock, state helpers
---------------------------------------------------------------------------

function M.clock()
  return os.time() * 1000
end

local function now_ms() return tointeger(M.clock()) or 0 end

-- cjson decodes every number as a float; integral ones become integers so
-- connectors see config.count == 10, not 10.0.
local function integralize(v)
  if type(v) == "number" then
    if mtype(v) == "float" and v % 1 == 0 and v >= -2^63 and v < 2^63 then return tointeger(v) end
    return v
  end
  if type(v) == "table" and v ~= NULL then
    for k, x in pairs(v) do v[k] = integralize(x) end
  end
  return v
end

local function read_json(path, what)
  local f, err = io.open(path, "rb")
  if not f then return nil, format("cannot open %s file: %s", what, err) end
  local text = f:read("a")
  f:close()
  local ok, v = pcall(cjson.decode, text)
  if not ok then return nil, format("%s file %s is not valid JSON: %s", what, path, tostring(v)) end
  return integralize(v)
end

-- The --state file is an array of AirbyteStateMessage; older sources got a
-- bare per-stream object (LEGACY), which becomes { {type="LEGACY", data=obj} }.
local function normalize_state(v)
  if type(v) ~= "table" or v == NULL or next(v) == nil then return {} end
  if is_array(v) then return v end
  if type(v.type) == "string" and (v.stream or v.global or v.data) then return { v } end
  return { { type = "LEGACY", data = v } }
end

function M.stream_state(state_array, name, namespace)
  for i = #(state_array or {}), 1, -1 do -- the last one wins
    local s = state_array[i]
    if type(s) == "table" then
      local kind = s.type or ((s.stream and "STREAM") or (s.global and "GLOBAL") or "LEGACY")
      if kind == "STREAM" and type(s.stream) == "table" then
        local d = s.stream.stream_descriptor or {}
        if d.name == name and (namespace == nil or d.namespace == namespace) then
          local st = s.stream.stream_state
          if st == NULL then return nil end
          return st
        end
      elseif kind == "GLOBAL" and type(s.global) == "table" then
        for _, ss in ipairs(s.global.stream_states or {}) do
          local d = type(ss) == "table" and ss.stream_descriptor or {}
          if d.name == name and (namespace == nil or d.namespace == namespace) then
            local st = ss.stream_state
            if st == NULL then return nil end
            return st
          end
        end
      elseif kind == "LEGACY" and type(s.data) == "table" then
        local st = s.data[name]
        if st ~= nil and st ~= NULL then return st end
      end
    end
  end
  return nil
end

---------------------------------------------------------------------------
-- Emitting protocol messages
---------------------------------------------------------------------------

local function descriptor(name, namespace)
  return M.obj("name", name, "namespace", namespace)
end

local function trace(kind, payload_key, payload)
  return M.obj("type", "TRACE", "trace",
    M.obj("type", kind, "emitted_at", now_ms() + 0.0, payload_key, payload))
end

local Emitter = {}
Emitter.__index = Emitter

local Stream = {}
Stream.__index = Stream

local CLOCK_EVERY = 1024 -- records between clock reads

local function new_emitter(out, catalog)
  local configured = {}
  for _, cs in ipairs(type(catalog) == "table" and catalog.streams or {}) do
    if type(cs) == "table" and type(cs.stream) == "table" and cs.stream.name then
      configured[cs.stream.name] = cs
    end
  end
  local self = setmetatable({ out = out, configured = configured, handles = {}, order = {},
                              ticks = 0 }, Emitter)
  self:refresh_clock()
  return self
end

function Emitter:write(msg)
  self.out:write(M.encode(msg), "\n")
end

function Emitter:refresh_clock()
  self.ms = now_ms()
  self.suffix = ',"emitted_at":' .. self.ms .. "}}\n"
  self.ticks = 0
end

function Emitter:log(level, message)
  self:write(M.obj("type", "LOG", "log", M.obj("level", level, "message", tostring(message))))
end

function Emitter:stream(name, opts)
  local h = self.handles[name]
  if h then return h end
  local cs = self.configured[name]
  if not cs then error("stream '" .. tostring(name) .. "' is not in the configured catalog", 2) end
  opts = opts or {}
  local namespace = opts.namespace or cs.stream.namespace
  if namespace == NULL then namespace = nil end
  local schema = opts.schema or cs.stream.json_schema
  local prefix = '{"type":"RECORD","record":{"stream":"' .. escape(name) .. '",'
  if namespace then prefix = prefix .. '"namespace":"' .. escape(namespace) .. '",' end
  h = setmetatable({
    emitter = self, name = name, namespace = namespace, status = nil, count = 0,
    enc = compile_fast(schema, opts.safe_strings), exact = opts.exact_fields and true or false,
    buf = { prefix .. '"data":' },
  }, Stream)
  self.handles[name] = h
  self.order[#self.order + 1] = h
  return h
end

function Emitter:record(name, data) return self:stream(name):record(data) end
function Emitter:state(name, stream_state) return self:stream(name):state(stream_state) end

function Stream:set_status(status)
  self.status = status
  self.emitter:write(trace("STREAM_STATUS", "stream_status",
    M.obj("stream_descriptor", descriptor(self.name, self.namespace), "status", status)))
end

function Stream:started()
  if self.status == nil then self:set_status("STARTED") end
end

-- First record: STARTED if the connector didn't say so, then RUNNING.
function Stream:running()
  if self.status == "COMPLETE" or self.status == "INCOMPLETE" then
    error("stream '" .. self.name .. "': record after its " .. self.status .. " status", 3)
  end
  self:started()
  self:set_status("RUNNING")
end

function Stream:record(data)
  if self.status ~= "RUNNING" then self:running() end
  local e = self.emitter
  local buf = self.buf
  local n
  if self.enc then
    local enc = self.enc
    n = (enc.fast or encode_fields)(enc, data, buf, 1, self.exact, 0)
  else
    n = encode_table(data, buf, 1, 0)
  end
  local ticks = e.ticks + 1
  if ticks >= CLOCK_EVERY then e:refresh_clock() else e.ticks = ticks end
  n = n + 1
  buf[n] = e.suffix
  e.out:write(concat(buf, "", 1, n))
  self.count = self.count + 1
end

function Stream:state(stream_state)
  self:started()
  local count = self.count
  self.count = 0
  local e = self.emitter
  e:write(M.obj("type", "STATE", "state", M.obj(
    "type", "STREAM",
    "stream", M.obj("stream_descriptor", descriptor(self.name, self.namespace),
                    "stream_state", stream_state == nil and NULL or stream_state),
    "sourceStats", M.obj("recordCount", count + 0.0))))
end

function Stream:estimate(rows, bytes)
  self.emitter:write(trace("ESTIMATE", "estimate", M.obj("name", self.name, "type", "STREAM",
    "namespace", self.namespace, "row_estimate", rows, "byte_estimate", bytes)))
end

function Stream:complete()
  self:started()
  if self.status ~= "COMPLETE" and self.status ~= "INCOMPLETE" then self:set_status("COMPLETE") end
end

function Stream:incomplete()
  self:started()
  if self.status ~= "COMPLETE" and self.status ~= "INCOMPLETE" then self:set_status("INCOMPLETE") end
end

-- After read(): close what the connector left open.
function Emitter:finish(ok)
  for _, h in ipairs(self.order) do
    if ok then h:complete() else h:incomplete() end
  end
end

-- The emitter is used with '.' from read functions (emit.log(...)), so bind
-- the methods to the instance.
local function bound(emitter)
  return {
    stream = function(name, opts) return emitter:stream(name, opts) end,
    record = function(name, data) return emitter:record(name, data) end,
    state = function(name, st) return emitter:state(name, st) end,
    log = function(level, msg) return emitter:log(level, msg) end,
    message = function(msg)
      if type(msg) == "string" then return emitter.out:write(msg, "\n") end
      return emitter:write(msg)
    end,
    now_ms = function() return emitter.ms end,
  }
end

---------------------------------------------------------------------------
-- Connectors
---------------------------------------------------------------------------

local options = require "airbyte.options"

local SOURCE_KEYS = options.allow{ "spec", "check", "discover", "read" }
function M.source(def)
  assert(type(def) == "table", "cdk.source expects a table")
  options.check(def, SOURCE_KEYS, "cdk.source")
  assert(type(def.spec) == "table", "cdk.source: spec is required")
  assert(type(def.read) == "function", "cdk.source: read is required")
  return { kind = "source", spec = def.spec, check = def.check, discover = def.discover, read = def.read }
end

-- A destination: spec, check(config) -> ok, msg (optional) and
-- write(config, configured_catalog, input, emit); see "Destinations" below.
local DESTINATION_KEYS = options.allow{ "spec", "check", "write" }
function M.destination(def)
  assert(type(def) == "table", "cdk.destination expects a table")
  options.check(def, DESTINATION_KEYS, "cdk.destination")
  assert(type(def.spec) == "table", "cdk.destination: spec is required")
  assert(type(def.write) == "function", "cdk.destination: write is required")
  assert(def.check == nil or type(def.check) == "function", "cdk.destination: check must be a function")
  return { kind = "destination", spec = def.spec, check = def.check, write = def.write }
end

---------------------------------------------------------------------------
-- Command line
---------------------------------------------------------------------------

local USAGE = [[
usage: <connector> spec
       <connector> check --config CONFIG
       <connector> discover --config CONFIG
       <connector> read --config CONFIG --catalog CATALOG [--state STATE]
       <connector> write --config CONFIG --catalog CATALOG
]]

local COMMAND_OPTIONS = {
  spec = {}, check = { config = true }, discover = { config = true },
  read = { config = true, catalog = true, state = false },
  write = { config = true, catalog = true },
}

local KIND_COMMANDS = {
  source = { spec = true, check = true, discover = true, read = true },
  destination = { spec = true, check = true, write = true },
}

local function parse_args(argv)
  local cmd = argv[1]
  local allowed = COMMAND_OPTIONS[cmd or ""]
  if not allowed then return nil, cmd and ("unknown command '" .. tostring(cmd) .. "'") or "no command" end
  local opts = { command = cmd }
  local i = 2
  while argv[i] ~= nil do
    local a = argv[i]
    if a == "--debug" then
      opts.debug = true
      i = i + 1
    else
      local name, value = a:match("^%-%-(%w+)=(.*)$")
      if not name then name = a:match("^%-%-(%w+)$"); value = argv[i + 1]; i = i + 1 end
      if not name or allowed[name] == nil then return nil, "unexpected argument '" .. tostring(a) .. "'" end
      if value == nil then return nil, "--" .. name .. " needs a file" end
      opts[name] = value
      i = i + 1
    end
  end
  for name, required in pairs(allowed) do
    if required and not opts[name] then return nil, cmd .. " needs --" .. name end
  end
  return opts
end

local function connection_status(e, status, message)
  e:write(M.obj("type", "CONNECTION_STATUS", "connectionStatus", M.obj("status", status, "message", message)))
end

-- Load and validate the config; problems raise config errors.
local function load_config(connector, path)
  local config, err = read_json(path, "config")
  if config == nil then M.config_error(err) end
  if type(config) ~= "table" or is_array(config) then M.config_error("config must be a JSON object") end
  local cs = connector.spec.connectionSpecification
  local errs = cs and M.validate(cs, config)
  if errs then M.config_error("Config validation error: " .. concat(errs, "; ")) end
  return config
end

local function run_check(connector, opts, e)
  local ok, res = xpcall(load_config, capture, connector, opts.config)
  if ok and connector.check then
    local msg
    ok, res, msg = xpcall(connector.check, capture, res)
    if ok then
      if res then connection_status(e, "SUCCEEDED", msg) else connection_status(e, "FAILED", msg) end
      return 0
    end
  elseif ok then
    connection_status(e, "SUCCEEDED")
    return 0
  end
  if res.failure_type == "config_error" then
    connection_status(e, "FAILED", res.message)
    return 0
  end
  error(res, 0)
end

-- Streams in discover output: the usual keys first, in the protocol's order.
local STREAM_KEYS = { "name", "namespace", "json_schema", "supported_sync_modes", "source_defined_cursor",
                      "default_cursor_field", "source_defined_primary_key", "is_resumable" }

local function catalog_stream(s)
  if key_order[s] then return s end
  local o, keys = {}, {}
  for _, k in ipairs(STREAM_KEYS) do
    if s[k] ~= nil then keys[#keys + 1] = k end
  end
  for k, v in pairs(s) do o[k] = v end
  key_order[o] = keys -- keys outside STREAM_KEYS follow, sorted
  return o
end

local function run_discover(connector, opts, e)
  if not connector.discover then error("this connector does not support discover", 0) end
  local config = load_config(connector, opts.config)
  local streams = M.array()
  for i, s in ipairs(connector.discover(config) or {}) do streams[i] = catalog_stream(s) end
  e:write(M.obj("type", "CATALOG", "catalog", M.obj("streams", streams)))
  return 0
end

local function run_read(connector, opts, e)
  if connector.kind ~= "source" then error("read needs a source connector", 0) end
  local config = load_config(connector, opts.config)
  local catalog, err = read_json(opts.catalog, "catalog")
  if catalog == nil then error(err, 0) end
  local state = {}
  if opts.state then
    local raw, serr = read_json(opts.state, "state")
    if raw == nil then error(serr, 0) end
    state = normalize_state(raw)
  end
  local emitter = new_emitter(e.out, catalog)
  local ok, res = xpcall(connector.read, capture, config, catalog, state, bound(emitter))
  emitter:finish(ok)
  if not ok then error(res, 0) end
  return 0
end

---------------------------------------------------------------------------
-- Destinations
---------------------------------------------------------------------------
-- The kit owns the protocol duties of `write` (protocol.md §5, destination
-- side), so a destination only writes records and makes them durable:
--   * STATE messages never reach the destination's code. When one is read,
--     every message before it has been handed to write() and processed
--     (write() asked for the next one), so the kit runs the commit hooks
--     (flush + fsync / COMMIT), then echoes the STATE line unchanged except
--     for state.destinationStats, and flushes stdout: states go out in the
--     order received, only after the records before them are durable.
--   * destinationStats.recordCount = records handed to write() since the
--     previous state of the same stream (STREAM) or since the previous
--     GLOBAL/LEGACY state (all streams), minus those write() rejected.
--   * RECORDs of streams missing from the configured catalog, messages a
--     destination has no use for (LOG, CONTROL, ...) and lines that are not
--     Airbyte messages are skipped; the last kind is logged.

local sub, match = string.sub, string.match
local rawget, rawset = rawget, rawset

local BLOCK = 1 << 18          -- stdin read size
local MAX_SKIP_LOGS = 10       -- non-protocol lines logged one by one

-- airbyte.json and airbyte.process live in the luabyte binary (the kit's
-- writer above needs airbyte.json already); airbyte.process loads on first use.
local json_mod, parse_line, parse_parts, core_mod
local function dest_libs()
  if not json_mod then
    local ok, j = pcall(require, "airbyte.json")
    local ok2, p = pcall(require, "airbyte.process")
    if not (ok and ok2) then
      error("destinations need the luabyte runtime (airbyte.json, airbyte.process)", 0)
    end
    json_mod, parse_line, parse_parts = j, p.parse, p.parse_parts
  end
  return json_mod, parse_line
end

-- airbyte.core (the binary's read_stdin, fsync and mkdir_p), or false under a stock lua5.4.
local function load_core()
  if core_mod == nil then
    local ok, core = pcall(require, "airbyte.core")
    core_mod = ok and core or false
  end
  return core_mod
end

-- cdk.parse_message(line) -> message (a userdata from the C scanner: .type,
-- and for RECORDs .stream, .namespace, .emitted_at without decoding the
-- data) | nil, why. The line is validated as JSON on the way.
function M.parse_message(line)
  local _, parse = dest_libs()
  return parse(line)
end

-- true when text is one valid JSON value. The C scanner validates before it
-- looks for a message, so anything but an "invalid JSON" verdict is valid.
local function is_json(text)
  local m, why = parse_line(text)
  return m ~= nil or not find(why, "^invalid JSON")
end

local function stream_key(name, namespace)
  if namespace == nil or namespace == NULL then return name end
  return name .. "\0" .. namespace
end

-- A balanced {...} starting exactly at p, checked: a span found by brace
-- matching alone would be wrong when a string holds a brace, and then it
-- ends inside a string or runs past the value, which is never valid JSON.
local function object_at(line, p)
  local s, e = find(line, "^%b{}", p)
  if not s then return nil end
  local text = sub(line, s, e)
  if is_json(text) then return text, e end
  return nil
end

local RECORD_HEAD = '^%s*{%s*"type"%s*:%s*"RECORD"%s*,%s*"record"%s*:%s*{%s*'
local CANONICAL_RECORD_HEAD = '^{"type":"RECORD","record":{"stream":"[^"\\]*","data":'
local STATE_HEAD = '^%s*{%s*"type"%s*:%s*"STATE"%s*,%s*"state"%s*:%s*'

-- The text of record.data in a RECORD line, or nil. Handles the
-- layouts connectors write ("type" first; the record's scalar fields such
-- as stream, namespace and emitted_at in any order before "data").
local function data_span(line)
  local _, p = find(line, CANONICAL_RECORD_HEAD)    -- how our sources and host write
  if p then return object_at(line, p + 1) end
  _, p = find(line, RECORD_HEAD)
  if not p then return nil end
  p = p + 1
  for _ = 1, 8 do
    local _, ke, key = find(line, '^"([%w_]*)"%s*:%s*', p)
    if not ke then return nil end
    p = ke + 1
    if key == "data" then return object_at(line, p) end
    local _, ve = find(line, '^"[^"\\]*"%s*,%s*', p)         -- a plain string
    if not ve then _, ve = find(line, '^[%w.+-]+%s*,%s*', p) end -- number, null, true, false
    if not ve then return nil end
    p = ve + 1
  end
  return nil
end

-- cdk.record_data_json(line) -> the JSON text of a RECORD line's data: the
-- bytes of the line when they can be located exactly (integers keep every
-- digit, keys their order), else the data re-encoded (same values, keys
-- sorted).
function M.record_data_json(line)
  local json = dest_libs()
  local text = data_span(line)
  if text then return text end
  return json.encode(json.decode(line).record.data)
end

-- cdk.with_destination_stats(line, message, count [, rejected]) -> the
-- STATE line with state.destinationStats set; message is the decoded line.
-- The line is kept byte for byte (unknown fields such as the platform's
-- id, sourceStats, big integers) and the stats inserted at the end of the
-- state object; a line laid out otherwise, or that already carries
-- destinationStats, is re-encoded (same content, keys sorted).
function M.with_destination_stats(line, message, count, rejected)
  local json = dest_libs()
  rejected = rejected or 0
  local state = message.state
  if state.destinationStats == nil then
    local _, p = find(line, STATE_HEAD)
    if p then
      local _, e = object_at(line, p + 1)
      if e then
        local stats = format('"destinationStats":{"recordCount":%d.0%s}', count,
          rejected > 0 and format(',"rejectedRecordCount":%d.0', rejected) or "")
        return sub(line, 1, e - 1) .. (next(state) == nil and "" or ",") .. stats .. sub(line, e)
      end
    end
  end
  local ds = type(state.destinationStats) == "table" and state.destinationStats or {}
  ds.recordCount = count + 0.0
  if rejected > 0 then ds.rejectedRecordCount = rejected + 0.0 end
  state.destinationStats = ds
  return json.encode(message)
end

-- STREAM, GLOBAL or LEGACY; "If not set, assume the state object is type LEGACY".
local function state_kind(state)
  local t = type(state) == "table" and state.type
  if t == "STREAM" or t == "GLOBAL" then return t end
  return "LEGACY"
end

---------------------------------------------------------------------------
-- Record counts between states
---------------------------------------------------------------------------

local Counter = {}
Counter.__index = Counter

-- cdk.record_counter(): records per stream (name + namespace) and in total
-- since the last state that covers them.
function M.record_counter()
  return setmetatable({ by = {}, rejected = {}, total = 0, total_rejected = 0 }, Counter)
end

function Counter:add(name, namespace, n)
  self:add_key(stream_key(name, namespace), n or 1)
end

function Counter:add_key(key, n)
  local by = self.by
  by[key] = (by[key] or 0) + n
  self.total = self.total + n
end

-- n records already counted under key were not written after all.
function Counter:reject_key(key, n)
  self.by[key] = (self.by[key] or 0) - n
  self.rejected[key] = (self.rejected[key] or 0) + n
  self.total = self.total - n
  self.total_rejected = self.total_rejected + n
end

-- counter:take(state) -> records, rejected for this state's window, which
-- restarts: the state's stream for STREAM, all streams for GLOBAL/LEGACY.
function Counter:take(state)
  if state_kind(state) == "STREAM" then
    local d = type(state.stream) == "table" and state.stream.stream_descriptor
    if type(d) ~= "table" or type(d.name) ~= "string" then return 0, 0 end
    local key = stream_key(d.name, d.namespace)
    local n, r = self.by[key] or 0, self.rejected[key] or 0
    self.by[key], self.rejected[key] = nil, nil
    return n, r
  end
  local n, r = self.total, self.total_rejected
  self.total, self.total_rejected = 0, 0
  return n, r
end

---------------------------------------------------------------------------
-- Reading stdin
---------------------------------------------------------------------------

-- Lines from a source of chunks (next_chunk() -> bytes | nil at the end):
-- splitting blocks is about twice as fast as io.lines, which copies a line
-- byte by byte. A line longer than a chunk is gathered in pieces.
local function chunk_lines(next_chunk)
  local buf, pos = "", 1
  return function()
    local e = find(buf, "\n", pos, true)
    if e then
      local line = sub(buf, pos, e - 1)
      pos = e + 1
      return line
    end
    local parts = { sub(buf, pos) }
    buf, pos = "", 1
    while true do
      local blk = next_chunk()
      if not blk then
        local line = concat(parts)
        if line == "" then return nil end
        return line                                 -- last line, no newline
      end
      e = find(blk, "\n", 1, true)
      if e then
        parts[#parts + 1] = sub(blk, 1, e - 1)
        buf, pos = blk, e + 1
        return concat(parts)
      end
      parts[#parts + 1] = blk
    end
  end
end

-- stdin in chunks that come back as soon as bytes are there: core.read_stdin
-- makes one read(2). io.read(n) would wait for n bytes, holding back the
-- echo of a STATE while the source is quiet, so without read_stdin (stock
-- lua5.4) each chunk is one line.
local function stdin_chunks()
  load_core()
  local read = core_mod and core_mod.read_stdin
  if read then return function() return read(BLOCK) end end
  local stdin = io.stdin
  return function() return stdin:read("L") end
end

-- Records: the record table resolves data and any other field from the C
-- message on first use, pairs() resolves them all. What they come from is
-- kept on the side, so the tables hold only protocol fields.
-- The message is kept in the record under a private key (a weak table
-- would make every record an ephemeron the collector must revisit).
local ORIGIN = setmetatable({}, { __tostring = function() return "cdk.origin" end })

local function resolve_record(rec)
  local m = rawget(rec, ORIGIN)
  if not m then return end                          -- resolved already
  rawset(rec, ORIGIN, nil)
  local full = m:decode().record
  for k, v in pairs(full) do
    if rawget(rec, k) == nil then rawset(rec, k, v) end
  end
end

-- A record table resolves data and its other fields from the C message it
-- came from (kept under ORIGIN), on first use.
local RecordMT = {}
function RecordMT.__index(rec, k)
  if type(k) ~= "string" then return nil end
  local m = rawget(rec, ORIGIN)
  if not m then return nil end
  if k == "data" then
    local d = m.data
    rawset(rec, "data", d)
    return d
  end
  resolve_record(rec)
  return rawget(rec, k)
end
function RecordMT.__pairs(rec)
  resolve_record(rec)
  return next, rec, nil
end

local Input = {}
Input.__index = Input
Input.__call = function(self) return self:next() end

local function configured_streams(catalog)
  local streams, names = {}, {}
  for _, cs in ipairs(type(catalog) == "table" and catalog.streams or {}) do
    local s = type(cs) == "table" and cs.stream
    if type(s) == "table" and type(s.name) == "string" then
      if not streams[s.name] then names[#names + 1] = s.name end
      local ns = s.namespace
      if ns == NULL then ns = nil end
      streams[s.name] = {
        name = s.name, namespace = ns, stream = s, configured = cs,
        sync_mode = cs.sync_mode ~= NULL and cs.sync_mode or "full_refresh",
        destination_sync_mode = cs.destination_sync_mode ~= NULL and cs.destination_sync_mode or "append",
        primary_key = cs.primary_key ~= NULL and cs.primary_key or nil,
        cursor_field = cs.cursor_field ~= NULL and cs.cursor_field or nil,
      }
    end
  end
  return streams, names
end

local function new_input(lines, catalog, out)
  dest_libs()
  local streams, names = configured_streams(catalog)
  return setmetatable({
    given_lines = lines, read_line = nil, out = out,
    streams = streams, stream_names = names, statuses = {},
    counter = M.record_counter(), last_key = nil,
    commit_hooks = {}, abort_hooks = {},
    skipped = 0, ignored = {}, states = 0, eof = false,
  }, Input)
end

function Input:log(level, message)
  self.out:write(M.encode(M.obj("type", "LOG", "log", M.obj("level", level, "message", message))), "\n")
end

function Input:on_commit(fn) self.commit_hooks[#self.commit_hooks + 1] = fn end
function Input:on_abort(fn) self.abort_hooks[#self.abort_hooks + 1] = fn end

-- The last n records handed out were not written (default 1).
function Input:reject(n)
  if self.last_key then self.counter:reject_key(self.last_key, n or 1) end
end

function Input:status(name, namespace)
  return self.statuses[stream_key(name, namespace)] or
    (namespace == nil and self.statuses[name]) or nil
end

-- Raw chunks of stdin for a destination that frames lines itself.
function Input:blocks()
  if self.read_line then error("input:blocks() after messages were read", 2) end
  self.read_line = function() return nil end
  local given = self.given_lines
  if given then
    return function()
      local line = given()
      return line and line .. "\n"
    end
  end
  return stdin_chunks()
end

function Input:checkpoint(line)
  local json = json_mod
  local ok, message = pcall(json.decode, line)
  if not ok then return end    -- cannot happen: the C scanner validated it
  for _, fn in ipairs(self.commit_hooks) do fn(message.state, message) end
  local n, rejected = self.counter:take(message.state)
  local out = self.out
  out:write(M.with_destination_stats(line, message, n, rejected), "\n")
  out:flush()
  self.states = self.states + 1
end

function Input:skip(line, why)
  self.skipped = self.skipped + 1
  if self.skipped <= MAX_SKIP_LOGS then
    if #line > 200 then line = sub(line, 1, 200) .. "..." end
    self:log("WARN", format("skipped a line that is not an Airbyte message (%s): %s", why or "?", line))
  end
end

-- next() -> msg, line for the next RECORD of a configured stream or TRACE;
-- nil at the end of stdin. STATEs are committed and echoed on the way.
-- The line source: given lines (tests), else stdin in chunks.
function Input:reader()
  local read_line = self.read_line
  if not read_line then
    read_line = self.given_lines or chunk_lines(stdin_chunks())
    self.read_line = read_line
  end
  return read_line
end

function Input:next()
  local read_line = self:reader()
  local parse, streams = parse_line, self.streams
  while true do
    local line = read_line()
    if line == nil then
      self.eof = true
      return nil
    end
    local m, why = parse(line)
    if m then
      local t = m.type
      if t == "RECORD" then
        local name = m.stream
        if streams[name] then
          local ns = m.namespace
          local key = ns and (name .. "\0" .. ns) or name
          self.counter:add_key(key, 1)
          self.last_key = key
          local rec = setmetatable({ stream = name, namespace = ns, emitted_at = m.emitted_at, [ORIGIN] = m },
                                   RecordMT)
          -- data_json: the bytes the scanner found, no second pass over the line
          local msg = { type = "RECORD", record = rec, data_json = m.data_json }
          return msg, line
        end
        self.ignored[name] = (self.ignored[name] or 0) + 1
      elseif t == "STATE" then
        self:checkpoint(line)
      elseif t == "TRACE" then
        return self:trace(line), line
      end
      -- LOG, CONTROL, SPEC, ...: nothing for a destination to do
    elseif find(line, "%S") then
      self:skip(line, why)
    end
  end
end

-- A TRACE line: decoded, and a stream status noted (input:status()).
function Input:trace(line)
  local msg = json_mod.decode(line)
  local tr = msg.trace
  local ss = type(tr) == "table" and tr.type == "STREAM_STATUS" and tr.stream_status
  if type(ss) == "table" and type(ss.stream_descriptor) == "table" and
     type(ss.stream_descriptor.name) == "string" then
    self.statuses[stream_key(ss.stream_descriptor.name, ss.stream_descriptor.namespace)] = ss.status
  end
  self.last_key = nil
  return msg
end

-- The fast path for destinations that write records as they came:
-- returns true, stream, namespace, emitted_at, data_json for a record of a
-- configured stream; false, message for a TRACE; nil at the end. STATE
-- lines are checkpointed as in next(); other lines as well.
function Input:next_raw()
  local read_line = self:reader()
  local parts, streams, counter = parse_parts, self.streams, self.counter
  while true do
    local line = read_line()
    if line == nil then
      self.eof = true
      return nil
    end
    local t, name, ns, at, data = parts(line)
    if t == "RECORD" then
      if streams[name] then
        local key = ns and (name .. "\0" .. ns) or name
        counter:add_key(key, 1)
        self.last_key = key
        return true, name, ns, at, data
      end
      self.ignored[name] = (self.ignored[name] or 0) + 1
    elseif t == "STATE" then
      self:checkpoint(line)
    elseif t == "TRACE" then
      return false, self:trace(line)
    elseif t == nil and find(line, "%S") then
      self:skip(line, name)
    end
  end
end

function Input:summary()
  if self.skipped > MAX_SKIP_LOGS then
    self:log("WARN", format("skipped %d lines that were not Airbyte messages", self.skipped))
  end
  local names = {}
  for name in pairs(self.ignored) do names[#names + 1] = name end
  sort(names)
  for _, name in ipairs(names) do
    self:log("WARN", format("ignored %d records of stream '%s': it is not in the configured catalog",
      self.ignored[name], name))
  end
end

-- cdk.stream_status(msg) -> name, namespace, status for a stream-status
-- TRACE message (a decoded table), else nil.
function M.stream_status(msg)
  local tr = type(msg) == "table" and msg.type == "TRACE" and msg.trace
  local ss = type(tr) == "table" and tr.type == "STREAM_STATUS" and tr.stream_status
  local d = type(ss) == "table" and ss.stream_descriptor
  if type(d) ~= "table" or type(d.name) ~= "string" then return nil end
  local ns = d.namespace
  if ns == NULL then ns = nil end
  return d.name, ns, ss.status
end

-- The emit table handed to write().
local function destination_emit(out)
  local function write_line(s)
    out:write(s, "\n")
  end
  return {
    log = function(level, message)
      write_line(M.encode(M.obj("type", "LOG", "log", M.obj("level", level, "message", tostring(message)))))
    end,
    message = function(msg)
      if type(msg) == "string" then return write_line(msg) end
      return write_line(M.encode(msg))
    end,
    -- Echo a STATE line read by a hand-written loop, with destinationStats
    -- taken from counter (a cdk.record_counter) or 0.
    state = function(line, counter)
      local json = dest_libs()
      local message = json.decode(line)
      local n, rejected = 0, 0
      if counter then n, rejected = counter:take(message.state) end
      write_line(M.with_destination_stats(line, message, n, rejected))
      out:flush()
    end,
    flush = function() out:flush() end,
    now_ms = now_ms,
  }
end

---------------------------------------------------------------------------
-- Destination helpers: ids, durable files
---------------------------------------------------------------------------

local seeded = false

-- math.random seeded from the kernel once: ids must not repeat across the
-- destination processes of several syncs started in the same second.
local function seed_random()
  seeded = true
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(16)
  if f then f:close() end
  if bytes and #bytes == 16 then
    math.randomseed(string.unpack("<i8i8", bytes))
  end
end

-- cdk.uuid4() -> a random (version 4) UUID string.
function M.uuid4()
  local core = load_core()
  if core and core.uuid4 then
    M.uuid4 = core.uuid4            -- the binary's, from the OS's randomness
    return core.uuid4()
  end
  if not seeded then seed_random() end
  local random = math.random
  local a, b = random(0), random(0)
  return format("%08x-%04x-4%03x-%04x-%012x", (a >> 32) & 0xffffffff, (a >> 16) & 0xffff, a & 0xfff,
    0x8000 | ((b >> 48) & 0x3fff), b & 0xffffffffffff)
end

-- cdk.fsync(path): the file (or directory) reaches the disk; raises on
-- failure. A no-op where the runtime has no fsync (stock lua5.4).
function M.fsync(path)
  load_core()
  if core_mod and core_mod.fsync then
    local ok, err = core_mod.fsync(path)
    if not ok then M.error(err) end
  end
end

-- cdk.mkdir_p(path): creates the directory and its parents; raises a
-- config error when it cannot (the path comes from the config).
function M.mkdir_p(path)
  load_core()
  if core_mod and core_mod.mkdir_p then
    local ok, err = core_mod.mkdir_p(path)
    if not ok then M.config_error(err) end
  else
    os.execute("mkdir -p '" .. gsub(path, "'", "'\\''") .. "'")
  end
end

local Output = {}
Output.__index = Output

-- cdk.output_file(path, { mode = "overwrite" | "append", header = text })
-- -> a file written with the protocol's guarantees:
--   overwrite: written to _airbyte_tmp_<random>_<name> beside path; finish()
--     renames it over path, so readers see the old file or the new one,
--     never a partial one; abort() removes it and the old file stays.
--   append: appended to path (header only when the file is empty; a last
--     line left unterminated by a crash is terminated first).
--   out:write(...)  like file:write
--   out:commit()    flush + fsync what was written (call before echoing a state)
--   out:finish()    commit; overwrite: publish (rename + fsync the directory);
--                   later writes append to the published file
--   out:abort()     close; overwrite: remove the temporary file
local OUTPUT_FILE_OPTIONS = options.allow{ "mode", "header" }
function M.output_file(path, opts)
  opts = options.check(opts, OUTPUT_FILE_OPTIONS, "cdk.output_file")
  local dir, base = match(path, "^(.*)/([^/]*)$")
  if not dir then dir, base = ".", path end
  if dir == "" then dir = "/" end
  local self = setmetatable({ path = path, dir = dir, mode = opts.mode or "append",
                              header = opts.header, dirty = false }, Output)
  if self.mode == "overwrite" then
    if not seeded then seed_random() end
    self.tmp = format("%s/_airbyte_tmp_%08x_%s", dir, math.random(0) & 0xffffffff, base)
    local f, err = io.open(self.tmp, "wb")
    if not f then M.error("cannot create " .. self.tmp .. ": " .. tostring(err)) end
    self.f = f
    if self.header then f:write(self.header); self.dirty = true end
  else
    self:open_append()
  end
  self.f:setvbuf("full", BLOCK)
  return self
end

function Output:open_append()
  local f, err = io.open(self.path, "a+b")
  if not f then M.error("cannot open " .. self.path .. ": " .. tostring(err)) end
  local size = f:seek("end")
  if size == 0 then
    if self.header then f:write(self.header); self.dirty = true end
  else
    f:seek("set", size - 1)
    local last = f:read(1)
    f:seek("end")
    if last ~= "\n" then f:write("\n"); self.dirty = true end
  end
  self.f = f
end

function Output:write(...)
  local f = self.f
  if not f then
    if self.aborted then M.error("write to an aborted file: " .. self.path) end
    self:open_append()
    f = self.f
    f:setvbuf("full", BLOCK)
  end
  local ok, err = f:write(...)
  if not ok then M.error("cannot write " .. (self.tmp or self.path) .. ": " .. tostring(err)) end
  self.dirty = true
end

function Output:commit()
  if not self.dirty or not self.f then return end
  local ok, err = self.f:flush()
  if not ok then M.error("cannot write " .. (self.tmp or self.path) .. ": " .. tostring(err)) end
  M.fsync(self.tmp or self.path)
  self.dirty = false
end

function Output:finish()
  if not self.f then return end
  self.dirty = true          -- a new file is synced even when empty
  self:commit()
  self.f:close()
  self.f = nil
  if self.tmp then
    local ok, err = os.rename(self.tmp, self.path)
    if not ok then M.error("cannot rename " .. self.tmp .. " to " .. self.path .. ": " .. tostring(err)) end
    self.tmp = nil
    self.mode = "append"
    M.fsync(self.dir)         -- the rename itself survives a crash
  end
end

function Output:abort()
  if self.f then pcall(self.f.close, self.f) end
  self.f = nil
  if self.tmp then os.remove(self.tmp); self.tmp = nil end
  self.aborted = true
end

---------------------------------------------------------------------------
-- One file per stream: the legacy raw layout of destination-local-json and
-- destination-csv (protocol.md §8.1)
---------------------------------------------------------------------------

-- Stream name -> file name part, the way Airbyte's name transformer does
-- it for these destinations: anything but ASCII letters, digits and '_'
-- becomes '_' (which also keeps a name from leaving the directory).
local function file_stem(name)
  return (gsub(name, "[^%w_]", "_"))
end

-- overwrite and append; append_dedup becomes append (there is no key to
-- deduplicate on in a raw file or table), other modes are not supported.
-- cdk.raw_sync_mode(stream, emit), for the raw-layout destinations.
local function file_mode(s, emit)
  local mode = s.destination_sync_mode
  if mode == "overwrite" or mode == "append" then return mode end
  if mode == "append_dedup" then
    emit.log("WARN", format("stream '%s': append_dedup is written as append (no deduplication)", s.name))
    return "append"
  end
  M.config_error(format("stream '%s': destination_sync_mode '%s' is not supported (overwrite, append)",
    s.name, tostring(mode)))
end

M.raw_sync_mode = file_mode

local function destination_dir(config)
  local dir = config.destination_path
  if type(dir) ~= "string" or dir == "" then M.config_error("destination_path must be a non-empty string") end
  dir = gsub(dir, "(.)/+$", "%1")
  return dir
end

-- cdk.file_destination{ spec, extension = ".jsonl", header = fn(config) -> text | nil,
--                       row = fn(config) -> fn(ab_id, emitted_at_ms, data_json) -> pieces... }
-- -> a destination writing <destination_path>/_airbyte_raw_<stream><extension>
-- with cdk.output_file: overwrite streams are published when they end
-- COMPLETE or when the input ends, and dropped (the old file stays) when they
-- end INCOMPLETE or the write fails; every file is committed before a STATE
-- is echoed. check() creates the directory and writes a probe file in it.
-- The spec every raw-file destination shares: destination_path, then
-- def.extra_properties (a cdk.obj), under def.title and def.documentation_url.
local function file_destination_spec(def)
  local pairs_list = {
    "destination_path", M.obj(
      "description", "Path to the directory where " .. def.noun .. " files will be written: absolute, " ..
        "or relative to the current directory (the real connector puts it under its /local mount). " ..
        "Created when missing. Each stream goes to _airbyte_raw_<stream>" .. def.extension .. ".",
      "type", "string",
      "examples", M.array { def.example }) }
  local extra = def.extra_properties
  for _, k in ipairs(extra and key_order[extra] or {}) do
    pairs_list[#pairs_list + 1] = k
    pairs_list[#pairs_list + 1] = extra[k]
  end
  local props = M.obj(table.unpack(pairs_list))
  return M.obj(
    "documentationUrl", def.documentation_url,
    "supportsIncremental", true,
    "supportsNormalization", false,
    "supportsDBT", false,
    "supported_destination_sync_modes", M.array { "overwrite", "append" },
    "connectionSpecification", M.obj(
      "$schema", "http://json-schema.org/draft-07/schema#",
      "title", def.title,
      "type", "object",
      "required", M.array { "destination_path" },
      "additionalProperties", false,
      "properties", props))
end

local FILE_DESTINATION_KEYS = options.allow{ "spec", "check", "row", "header", "extension", "noun",
                                            "title", "documentation_url", "example", "extra_properties" }
function M.file_destination(def)
  options.check(def, FILE_DESTINATION_KEYS, "cdk.file_destination")
  assert(type(def.row) == "function", "cdk.file_destination: row is required")
  local extension = def.extension or ""
  def.spec = def.spec or file_destination_spec(def)

  local function check(config)
    local dir = destination_dir(config)
    M.mkdir_p(dir)
    if not seeded then seed_random() end
    local probe = format("%s/_airbyte_check_%08x.tmp", dir, math.random(0) & 0xffffffff)
    local f, err = io.open(probe, "wb")
    if not f then return false, format("cannot write in %s: %s", dir, tostring(err)) end
    f:close()
    os.remove(probe)
    return true
  end

  local function write(config, _, input, emit)
    local dir = destination_dir(config)
    M.mkdir_p(dir)
    local header = def.header and def.header(config) or nil
    local row = def.row(config)
    local files, by_path = {}, {}
    input:on_abort(function()
      for _, out in pairs(files) do out:abort() end
    end)
    for _, name in ipairs(input.stream_names) do
      local path = dir .. "/_airbyte_raw_" .. file_stem(name) .. extension
      if by_path[path] then
        M.config_error(format("streams '%s' and '%s' would both be written to %s", by_path[path], name, path))
      end
      by_path[path] = name
      files[name] = M.output_file(path, { mode = file_mode(input.streams[name], emit), header = header })
    end
    input:on_commit(function()
      for _, out in pairs(files) do out:commit() end
    end)
    local core = load_core()
    local uuid4, floor = core and core.uuid4 or M.uuid4, math.floor
    while true do
      local is_record, name, _, at, data_json = input:next_raw()
      if is_record == nil then break end
      if is_record then
        local out = files[name]
        if out.aborted then
          input:reject()                -- after INCOMPLETE: nowhere to go
        else
          if mtype(at) ~= "integer" then at = at and floor(at) or now_ms() end
          out:write(row(uuid4(), at, data_json))
        end
      else
        local msg = name                -- a TRACE message
        local sname, _, status = M.stream_status(msg)
        local out = sname and files[sname]
        if out and status == "COMPLETE" then
          out:finish()
        elseif out and status == "INCOMPLETE" then
          if out.mode == "overwrite" then
            out:abort()
            emit.log("WARN", format("stream '%s' ended INCOMPLETE: %s was left as it was", sname, out.path))
          else
            out:commit()
          end
        end
      end
    end
    for _, name in ipairs(input.stream_names) do
      local out = files[name]
      if not out.aborted then out:finish() end
    end
  end

  return M.destination { spec = def.spec, check = def.check or check, write = write }
end

-- Runs `write`: the config and catalog are loaded, write() gets the input
-- and emit tables; when it raises, the abort hooks run before the error is
-- reported (TRACE ERROR, exit code 1).
local function run_write(connector, opts, e, lines)
  if connector.kind ~= "destination" then error("write needs a destination connector", 0) end
  local config = load_config(connector, opts.config)
  local catalog, err = read_json(opts.catalog, "catalog")
  if catalog == nil then error(err, 0) end
  if type(catalog) ~= "table" or type(catalog.streams) ~= "table" then
    M.config_error("the configured catalog has no streams array")
  end
  local input = new_input(lines, catalog, e.out)
  local ok, res = xpcall(connector.write, capture, config, catalog, input, destination_emit(e.out))
  if not ok then
    for i = #input.abort_hooks, 1, -1 do pcall(input.abort_hooks[i], res) end
    error(res, 0)
  end
  input:summary()
  return 0
end

local function dispatch(connector, opts, e, input)
  local cmd = opts.command
  if cmd == "spec" then
    e:write(M.obj("type", "SPEC", "spec", connector.spec))
    return 0
  elseif cmd == "check" then
    return run_check(connector, opts, e)
  elseif cmd == "discover" then
    return run_discover(connector, opts, e)
  elseif cmd == "read" then
    return run_read(connector, opts, e)
  else
    return run_write(connector, opts, e, input)
  end
end

local function trace_error(e, err)
  e:write(trace("ERROR", "error", M.obj(
    "message", err.message,
    "internal_message", err.internal_message or err.message,
    "stack_trace", err.stack_trace,
    "failure_type", err.failure_type or "system_error")))
end

local MAIN_OPTIONS = options.allow{ "out", "input" }
function M.main(connector, argv, opts)
  opts = options.check(opts, MAIN_OPTIONS, "cdk.main")
  local out = opts.out or io.stdout
  if out == io.stdout then out:setvbuf("full", 65536) end
  local args, why = parse_args(argv or {})
  if args and not KIND_COMMANDS[connector.kind][args.command] then
    args, why = nil, format("a %s does not support '%s'", connector.kind, args.command)
  end
  if not args then
    io.stderr:write("error: ", why, "\n", USAGE)
    return 2
  end
  local e = { out = out }
  e.write = Emitter.write
  local ok, res = xpcall(dispatch, capture, connector, args, e, opts.input)
  if not ok then
    trace_error(e, res)
    res = 1
  end
  out:flush()
  return res
end

return M
