-- YAML both ways: decode(text [, name]) parses one document with libyaml
-- (airbyte.libyaml, lua_yaml.c: PyYAML's scalar typing, anchors, merges);
-- encode(value) is a small emitter for printing specs (print_config_spec):
-- block style, keys sorted, strings quoted when YAML would read them as
-- something else.
local json = require "airbyte.json"

local M = {}

local plain_ok = "^[%a_][%w_%-%.%s/]*$"
local reserved = { ["true"] = 1, ["false"] = 1, ["null"] = 1, ["yes"] = 1, ["no"] = 1, ["on"] = 1,
                   ["off"] = 1, ["~"] = 1 }

local function scalar(v)
  if v == json.null then return "null" end
  local t = type(v)
  if t == "boolean" then return tostring(v) end
  if t == "number" then return json.encode(v) end
  if json.is_bigint(v) then return tostring(v) end
  local s = tostring(v)
  if s:match(plain_ok) and not reserved[s:lower()] and not s:match("%s$") and not s:find(": ", 1, true) then
    return s
  end
  return json.encode(s)   -- a JSON string is a valid YAML double-quoted scalar
end

local function is_array(t)
  return getmetatable(t) == json.array_mt or (next(t) ~= nil and #t > 0 and t[1] ~= nil)
end

local function emit(v, indent, out)
  local pad = string.rep("  ", indent)
  if type(v) ~= "table" or json.is_bigint(v) then
    out[#out + 1] = pad .. scalar(v)
    return
  end
  if is_array(v) then
    if #v == 0 then out[#out + 1] = pad .. "[]" return end
    for _, x in ipairs(v) do
      if type(x) == "table" and not json.is_bigint(x) and next(x) ~= nil then
        out[#out + 1] = pad .. "-"
        emit(x, indent + 1, out)
      else
        out[#out + 1] = pad .. "- " .. (type(x) == "table" and not json.is_bigint(x) and "{}" or scalar(x))
      end
    end
    return
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  if #keys == 0 then out[#out + 1] = pad .. "{}" return end
  for _, k in ipairs(keys) do
    local x = v[k]
    if x == nil then x = v[tonumber(k)] end
    if type(x) == "table" and not json.is_bigint(x) and next(x) ~= nil then
      out[#out + 1] = pad .. scalar(k) .. ":"
      emit(x, indent + 1, out)
    elseif type(x) == "table" and not json.is_bigint(x) then
      out[#out + 1] = pad .. scalar(k) .. ": " .. (getmetatable(x) == json.array_mt and "[]" or "{}")
    else
      out[#out + 1] = pad .. scalar(k) .. ": " .. scalar(x)
    end
  end
end

-- decode(text [, name]) -> value; raises "name:line:col: problem".
function M.decode(text, name)
  return require("airbyte.libyaml").load(text, name)
end

function M.encode(v)
  local out = {}
  emit(v, 0, out)
  return table.concat(out, "\n") .. "\n"
end

return M
