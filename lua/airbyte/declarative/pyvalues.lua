-- Python's values as the CDK's templates see them: None and Undefined,
-- lists and dicts, str() and repr(), truthiness, equality, ordering,
-- indexing, arithmetic, the methods of str, list and dict, and the errors
-- a template raises (TemplateError, and Undefined for a missing value).
local json = require "airbyte.json"
local dt = require "airbyte.declarative.datetime"

local M = {}

local NONE = json.null
local UNDEF = setmetatable({}, { __name = "Undefined", __tostring = function() return "" end })
M.NONE, M.UNDEFINED = NONE, UNDEF

local array_mt, object_mt = json.array_mt, json.object_mt
local mtype, floor, concat = math.type, math.floor, table.concat

local function list(t) return setmetatable(t or {}, array_mt) end
local function dict(t) return setmetatable(t or {}, object_mt) end
M.list, M.dict = list, dict

-- An error in a template: its text and where it comes from.
local TemplateError = { __name = "TemplateError" }
TemplateError.__tostring = function(e) return e.message end
local UndefinedError = {}

local function fail(msg)
  error(setmetatable({ message = msg }, TemplateError), 0)
end
local function undefined(what)
  error(setmetatable({ message = what }, UndefinedError), 0)
end

local function is_list(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == array_mt then return true end
  if mt ~= nil then return false end
  return v[1] ~= nil
end

local function is_dict(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == object_mt then return true end
  if mt ~= nil then return false end
  return v[1] == nil
end

local function truthy(v)
  if v == nil or v == NONE or v == false or v == UNDEF or v == 0 or v == "" then return false end
  if type(v) == "table" and (is_list(v) or is_dict(v)) then return next(v) ~= nil end
  if dt.is_duration(v) then return v.months ~= 0 or v.seconds ~= 0 or v.us ~= 0 end
  return true
end
M.truthy = truthy

-- Python repr()/str() -------------------------------------------------------

local function py_float(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" elseif v == -math.huge then return "-inf" end
  if v == floor(v) and math.abs(v) < 1e16 then return string.format("%.1f", v) end
  for p = 15, 17 do
    local s = string.format("%." .. p .. "g", v)
    if tonumber(s) == v then
      return (s:gsub("e%+?(%-?)0*(%d)", "e%1%2"):gsub("e(%d)", "e+%1"))
    end
  end
  return tostring(v)
end

local repr

local function py_str(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return mtype(v) == "integer" and tostring(v) or py_float(v) end
  if t == "boolean" then return v and "True" or "False" end
  if v == nil or v == NONE then return "None" end
  if v == UNDEF then return "" end
  if dt.is(v) or dt.is_duration(v) then return tostring(v) end
  if json.is_bigint(v) then return tostring(v) end
  return repr(v)
end
M.str = py_str

local function repr_string(s)
  local q = (s:find("'", 1, true) and not s:find('"', 1, true)) and '"' or "'"
  local out = s:gsub("[\\\n\r\t" .. q .. "]", function(c)
    if c == "\n" then return "\\n" elseif c == "\r" then return "\\r" elseif c == "\t" then return "\\t" end
    return "\\" .. c
  end)
  return q .. out .. q
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

function repr(v)
  if type(v) == "string" then return repr_string(v) end
  if dt.is(v) then
    local y, m, d, H, Mi, S = v:fields()
    if v.date_only then return ("datetime.date(%d, %d, %d)"):format(y, m, d) end
    return ("datetime.datetime(%d, %d, %d, %d, %d, %d)"):format(y, m, d, H, Mi, S)
  end
  if type(v) == "table" and is_list(v) then
    local parts = {}
    for i = 1, #v do parts[i] = repr(v[i]) end
    return "[" .. concat(parts, ", ") .. "]"
  end
  if type(v) == "table" and is_dict(v) then
    local parts = {}
    for _, k in ipairs(sorted_keys(v)) do parts[#parts + 1] = repr(k) .. ": " .. repr(v[k]) end
    return "{" .. concat(parts, ", ") .. "}"
  end
  return py_str(v)
end
M.repr = repr

local function type_name(v)
  if v == NONE or v == nil then return "NoneType" end
  if v == UNDEF then return "Undefined" end
  if type(v) == "table" then
    if dt.is(v) then return "datetime" end
    if dt.is_duration(v) then return "timedelta" end
    return is_list(v) and "list" or "dict"
  end
  if type(v) == "number" then return mtype(v) == "integer" and "int" or "float" end
  if type(v) == "boolean" then return "bool" end
  return type(v) == "string" and "str" or type(v)
end

-- Response headers look up names case-insensitively, as requests' do.
local case_insensitive = setmetatable({}, { __mode = "k" })
function M.headers(t)
  case_insensitive[t] = true
  return t
end

local function getitem(obj, key)
  if obj == UNDEF then undefined("indexing an undefined value") end
  if type(obj) == "string" and mtype(key) == "integer" then
    local n = #obj
    local i = key < 0 and n + key + 1 or key + 1
    if i < 1 or i > n then return UNDEF end
    return obj:sub(i, i)
  end
  if type(obj) ~= "table" or dt.is(obj) or dt.is_duration(obj) then return UNDEF end
  if is_list(obj) then
    if type(key) == "boolean" then key = key and 1 or 0 end
    if mtype(key) ~= "integer" then return UNDEF end
    local i = key < 0 and #obj + key + 1 or key + 1
    local v = obj[i]
    if v == nil then return UNDEF end
    return v
  end
  local v = obj[key]
  if v == nil and mtype(key) == "integer" then v = obj[tostring(key)] end
  if v == nil and case_insensitive[obj] and type(key) == "string" then v = obj[key:lower()] end
  if v == nil then return UNDEF end
  return v
end

local function equal(a, b)
  if a == b then return true end
  if type(a) == "number" and type(b) == "number" then return a == b end
  if type(a) == "boolean" and type(b) == "number" then return (a and 1 or 0) == b end
  if type(b) == "boolean" and type(a) == "number" then return (b and 1 or 0) == a end
  if type(a) == "table" and type(b) == "table" then
    if dt.is(a) or dt.is(b) then return dt.is(a) and dt.is(b) and a.t == b.t and a.us == b.us end
    for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end
  if json.is_bigint(a) or json.is_bigint(b) then return tostring(a) == tostring(b) end
  return false
end

local function compare(op, a, b)
  if op == "==" then return equal(a, b) end
  if op == "!=" then return not equal(a, b) end
  local ta, tb = type(a), type(b)
  if ta == "boolean" then a = a and 1 or 0; ta = "number" end
  if tb == "boolean" then b = b and 1 or 0; tb = "number" end
  local ok = (ta == "number" and tb == "number") or (ta == "string" and tb == "string")
    or (dt.is(a) and dt.is(b))
  if not ok then
    fail(("'%s' not supported between instances of '%s' and '%s'"):format(op, type_name(a), type_name(b)))
  end
  if op == "<" then return a < b elseif op == ">" then return b < a
  elseif op == "<=" then return a <= b else return b <= a end
end

local function contains(container, item)
  if type(container) == "string" then
    if type(item) ~= "string" then fail("'in <string>' requires string as left operand, not " .. type_name(item)) end
    return container:find(item, 1, true) ~= nil
  end
  if container == UNDEF or container == NONE then
    if container == UNDEF then return false end
    fail("argument of type 'NoneType' is not iterable")
  end
  if type(container) ~= "table" then fail("argument of type '" .. type_name(container) .. "' is not iterable") end
  if is_list(container) then
    for _, v in ipairs(container) do if equal(v, item) then return true end end
    return false
  end
  return container[item] ~= nil
end

local function to_int(v)
  if mtype(v) == "integer" then return v end
  if type(v) == "number" then return v >= 0 and floor(v) or -floor(-v) end
  if type(v) == "boolean" then return v and 1 or 0 end
  if type(v) == "string" then
    local n = tonumber((v:gsub("_", "")))
    if n and math.tointeger(n) then return math.tointeger(n) end
  end
  return nil
end

local function arith(op, a, b)
  if op == "+" then
    if type(a) == "number" and type(b) == "number" then return a + b end
    if type(a) == "string" and type(b) == "string" then return a .. b end
    if dt.is(a) and dt.is_duration(b) then return dt.add(a, b, 1) end
    if dt.is_duration(a) and dt.is(b) then return dt.add(b, a, 1) end
    if dt.is_duration(a) and dt.is_duration(b) then
      return dt.new_duration(a.months + b.months, a.seconds + b.seconds, a.us + b.us)
    end
    if type(a) == "table" and type(b) == "table" and is_list(a) and is_list(b) then
      local out = list()
      for _, v in ipairs(a) do out[#out + 1] = v end
      for _, v in ipairs(b) do out[#out + 1] = v end
      return out
    end
  elseif op == "-" then
    if type(a) == "number" and type(b) == "number" then return a - b end
    if dt.is(a) and dt.is_duration(b) then return dt.add(a, b, -1) end
    if dt.is(a) and dt.is(b) then return dt.diff(a, b) end
  elseif op == "*" then
    if type(a) == "number" and type(b) == "number" then return a * b end
    if type(a) == "string" and mtype(b) == "integer" then return a:rep(math.max(b, 0)) end
    if dt.is_duration(a) and mtype(b) == "integer" then
      return dt.new_duration(a.months * b, a.seconds * b, a.us * b)
    end
  elseif op == "/" then
    if type(a) == "number" and type(b) == "number" then
      if b == 0 then fail("division by zero") end
      return a / b
    end
  elseif op == "//" then
    if type(a) == "number" and type(b) == "number" then
      if b == 0 then fail("integer division by zero") end
      return a // b
    end
  elseif op == "%" then
    if type(a) == "number" and type(b) == "number" then
      if b == 0 then fail("modulo by zero") end
      return a % b
    end
  elseif op == "**" then
    if type(a) == "number" and type(b) == "number" then
      if mtype(a) == "integer" and mtype(b) == "integer" and b >= 0 then
        local r = 1
        for _ = 1, b do r = r * a end
        return r
      end
      return a ^ b
    end
  end
  if a == UNDEF or b == UNDEF then undefined("arithmetic on an undefined value") end
  fail(("unsupported operand type(s) for %s: '%s' and '%s'"):format(op, type_name(a), type_name(b)))
end

-- Methods of strings, dicts, lists and datetimes that manifests call.
local function str_method(s, name, args)
  if name == "join" then
    local parts = {}
    local it = args[1]
    if type(it) ~= "table" then fail("join() expects a list") end
    for i, v in ipairs(it) do
      if type(v) ~= "string" then fail(("sequence item %d: expected str instance, %s found"):format(i - 1, type_name(v))) end
      parts[i] = v
    end
    return concat(parts, s)
  elseif name == "lower" then return s:lower()
  elseif name == "upper" then return s:upper()
  elseif name == "strip" or name == "lstrip" or name == "rstrip" then
    local chars = args[1] and args[1] ~= NONE and args[1]:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0") or "%s"
    if name ~= "rstrip" then s = s:gsub("^[" .. chars .. "]+", "") end
    if name ~= "lstrip" then s = s:gsub("[" .. chars .. "]+$", "") end
    return s
  elseif name == "startswith" then return s:sub(1, #args[1]) == args[1]
  elseif name == "endswith" then return args[1] == "" or s:sub(-#args[1]) == args[1]
  elseif name == "replace" then
    local old, new = args[1], args[2]
    if old == "" then return s end
    local out, i = {}, 1
    while true do
      local a, b = s:find(old, i, true)
      if not a then break end
      out[#out + 1] = s:sub(i, a - 1)
      out[#out + 1] = new
      i = b + 1
    end
    out[#out + 1] = s:sub(i)
    return concat(out)
  elseif name == "split" then
    local sep = args[1]
    local out = list()
    if sep == nil or sep == NONE then
      for w in s:gmatch("%S+") do out[#out + 1] = w end
      return out
    end
    local i = 1
    while true do
      local a, b = s:find(sep, i, true)
      if not a then break end
      out[#out + 1] = s:sub(i, a - 1)
      i = b + 1
    end
    out[#out + 1] = s:sub(i)
    return out
  elseif name == "format" then
    local n = 0
    return (s:gsub("{(%d*)}", function(idx)
      n = n + 1
      local v = args[idx ~= "" and tonumber(idx) + 1 or n]
      return py_str(v)
    end))
  elseif name == "isdigit" then return s ~= "" and not s:find("%D")
  elseif name == "title" then return (s:gsub("(%a)([%w]*)", function(a, b) return a:upper() .. b:lower() end))
  elseif name == "capitalize" then return s:sub(1, 1):upper() .. s:sub(2):lower()
  elseif name == "count" then
    local c, i = 0, 1
    while true do
      local a, b = s:find(args[1], i, true)
      if not a then return c end
      c = c + 1; i = b + 1
    end
  elseif name == "find" then
    local a = s:find(args[1], 1, true)
    return a and a - 1 or -1
  end
  fail(("'str' object has no attribute '%s'"):format(name))
end

local function call_method(obj, name, args, kwargs)
  if obj == UNDEF then undefined(("'%s' of an undefined value"):format(name)) end
  if type(obj) == "string" then return str_method(obj, name, args) end
  if dt.is(obj) then
    if name == "strftime" then return dt.format(obj, args[1]) end
    if name == "isoformat" then return obj:isoformat(args[1]) end
    if name == "timestamp" then return obj:timestamp() end
    if name == "date" then return obj:date() end
    if name == "replace" then
      local y, m, d, H, Mi, S = obj:fields()
      local k = kwargs
      if k.tzinfo ~= nil then
        return dt.from_civil(y, m, d, H, Mi, S, obj.us, 0)
      end
      return dt.from_civil(k.year or y, k.month or m, k.day or d, k.hour or H, k.minute or Mi,
                           k.second or S, k.microsecond or obj.us, obj.off)
    end
    if name == "astimezone" then return dt.new(obj.t, obj.us, 0) end
    fail(("'datetime' object has no attribute '%s'"):format(name))
  end
  if dt.is_duration(obj) then
    if name == "total_seconds" then return obj:total_seconds() end
    fail(("'timedelta' object has no attribute '%s'"):format(name))
  end
  if type(obj) == "table" and is_dict(obj) then
    if name == "get" then
      local v = obj[args[1]]
      if v == nil and case_insensitive[obj] and type(args[1]) == "string" then v = obj[args[1]:lower()] end
      if v == nil then
        if args[2] == nil then return NONE end
        return args[2]
      end
      return v
    elseif name == "keys" or name == "values" or name == "items" then
      local out = list()
      for _, k in ipairs(sorted_keys(obj)) do
        if name == "keys" then out[#out + 1] = k
        elseif name == "values" then out[#out + 1] = obj[k]
        else out[#out + 1] = list{ k, obj[k] } end
      end
      return out
    end
    fail(("'dict' object has no attribute '%s'"):format(name))
  end
  if type(obj) == "table" and is_list(obj) then
    if name == "index" then
      for i, v in ipairs(obj) do if equal(v, args[1]) then return i - 1 end end
      fail("value is not in list")
    elseif name == "count" then
      local c = 0
      for _, v in ipairs(obj) do if equal(v, args[1]) then c = c + 1 end end
      return c
    end
    fail(("'list' object has no attribute '%s'"):format(name))
  end
  if obj == NONE then fail(("'NoneType' object has no attribute '%s'"):format(name)) end
  fail(("'%s' object has no attribute '%s'"):format(type_name(obj), name))
end

M.TemplateError, M.UndefinedError = TemplateError, UndefinedError
M.fail, M.undefined = fail, undefined
M.is_list, M.is_dict, M.equal = is_list, is_dict, equal
M.sorted_keys, M.type_name, M.getitem, M.compare, M.contains = sorted_keys, type_name, getitem, compare, contains
M.to_int, M.arith, M.str_method, M.call_method = to_int, arith, str_method, call_method

return M
