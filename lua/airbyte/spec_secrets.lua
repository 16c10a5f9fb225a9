-- The secret fields of a connector's spec: the values of the config fields
-- a connectionSpecification marks airbyte_secret, found by walking the spec
-- and the config together ($ref, oneOf/anyOf/allOf, if/then/else,
-- properties, additionalProperties, items).
local M = {}

local type, pairs, ipairs = type, pairs, ipairs

local function resolve_ref(root, ref)
  if type(ref) ~= "string" or ref:sub(1, 2) ~= "#/" then return nil end
  local node = root
  for part in ref:sub(3):gmatch("[^/]+") do
    part = part:gsub("~1", "/"):gsub("~0", "~")
    if type(node) ~= "table" then return nil end
    node = node[part]
  end
  return node
end

local function all_strings(v, out, depth)
  if type(v) == "string" or type(v) == "number" then out[#out + 1] = v
  elseif type(v) == "table" and depth < 64 then
    for _, x in pairs(v) do all_strings(x, out, depth + 1) end
  end
end

local function walk(root, schema, value, out, depth)
  if type(schema) ~= "table" or value == nil or depth > 64 then return end
  if schema["$ref"] then walk(root, resolve_ref(root, schema["$ref"]), value, out, depth + 1) end
  if schema.airbyte_secret == true then all_strings(value, out, 0) end
  -- every branch: the one the value matches holds the secret markers, and
  -- masking a little too much is the safe mistake
  for _, key in ipairs({ "oneOf", "anyOf", "allOf" }) do
    if type(schema[key]) == "table" then
      for _, branch in ipairs(schema[key]) do walk(root, branch, value, out, depth + 1) end
    end
  end
  for _, key in ipairs({ "then", "else" }) do walk(root, schema[key], value, out, depth + 1) end
  if type(value) ~= "table" then return end
  local props = type(schema.properties) == "table" and schema.properties or {}
  for k, sub in pairs(props) do walk(root, sub, value[k], out, depth + 1) end
  if type(schema.additionalProperties) == "table" then
    for k, x in pairs(value) do
      if type(k) == "string" and props[k] == nil then walk(root, schema.additionalProperties, x, out, depth + 1) end
    end
  end
  local items = schema.items
  if type(items) == "table" then
    if items[1] ~= nil then   -- a tuple: one schema per position
      for i, sub in ipairs(items) do walk(root, sub, value[i], out, depth + 1) end
    else
      for _, x in ipairs(value) do walk(root, items, x, out, depth + 1) end
    end
  end
end

-- values(connection_specification, config) -> the values of
-- config fields the spec marks airbyte_secret (nested objects, arrays and
-- oneOf/anyOf/allOf branches included).
function M.values(spec, config)
  local out = {}
  if type(spec) == "table" and type(config) == "table" then walk(spec, spec, config, out, 0) end
  return out
end

return M
