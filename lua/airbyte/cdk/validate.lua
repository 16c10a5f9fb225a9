-- airbyte.cdk.validate: config validation against a connector's spec, the
-- draft-07 subset connector specs use. validate(schema, value) -> nil, or a
-- list of "path: problem" strings.
local json = require "airbyte.cdk.json"

local M = {}

local concat, format = table.concat, string.format
local mtype, huge = math.type, math.huge
local type, pairs, ipairs, next, tostring = type, pairs, ipairs, next, tostring

local NULL, is_array = json.null, json.is_array

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

return M
