-- Selecting and shaping records: RecordSelector, DpathExtractor, RecordFilter,
-- AddFields, RemoveFields and the selector's schema normalization, with the
-- CDK's semantics (reference/declarative.md §5).
local json = require "airbyte.json"
local interp = require "airbyte.declarative.interpolation"
local manifest = require "airbyte.declarative.manifest"

local M = {}

local NONE = json.null
local is_list = interp.is_list

-- DpathExtractor ------------------------------------------------------------------

-- The member of a decoded JSON value at one path key (list indexes count
-- from 0, as in the CDK's dpath), or nil.
local function child(node, key)
  if type(node) ~= "table" then return nil end
  if is_list(node) then
    local n = math.tointeger(tonumber(key))
    return n and node[n + 1]
  end
  return node[key]
end

-- The value at a path of keys, or nil.
function M.dpath(node, keys)
  for _, k in ipairs(keys) do
    node = child(node, k)
    if node == nil then return nil end
  end
  return node
end

local function glob(node, path, i, out)
  if i > #path then
    out[#out + 1] = node
    return
  end
  if type(node) ~= "table" then return end
  local key = path[i]
  if key == "*" then
    if is_list(node) then
      for _, v in ipairs(node) do glob(v, path, i + 1, out) end
    else
      local keys = {}
      for k in pairs(node) do keys[#keys + 1] = k end
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      for _, k in ipairs(keys) do glob(node[k], path, i + 1, out) end
    end
    return
  end
  local v = child(node, key)
  if v ~= nil then glob(v, path, i + 1, out) end
end

-- extractor.extract(body, ctx) -> list of records
function M.DpathExtractor(node, path, F)
  manifest.fields(node, "DpathExtractor", path, "field_path")
  local field_path = node.field_path or {}
  if not is_list(field_path) and next(field_path) ~= nil then
    manifest.config_error(path .. ".field_path must be a list")
  end
  local templates, has_star = {}, false
  for i, p in ipairs(field_path) do
    templates[i] = interp.compile(tostring(p), path .. ".field_path")
    if p == "*" then has_star = true end
  end
  local self = {}
  function self.extract(body, ctx)
    local extracted
    if #templates == 0 then
      extracted = body
    else
      local keys = {}
      for i, t in ipairs(templates) do
        local k = t:render(ctx)
        keys[i] = k
        if k == "*" then has_star = true end
      end
      if has_star then
        local found = {}
        glob(body, keys, 1, found)
        extracted = setmetatable(found, json.array_mt)
        -- a glob collects values: a list among them is flattened like the CDK's
        local flat = {}
        for _, v in ipairs(found) do
          if type(v) == "table" and is_list(v) then
            for _, x in ipairs(v) do flat[#flat + 1] = x end
          else
            flat[#flat + 1] = v
          end
        end
        return flat
      end
      extracted = M.dpath(body, keys)
    end
    if extracted == nil or extracted == NONE then return {} end
    if type(extracted) == "table" and is_list(extracted) then return extracted end
    if type(extracted) == "table" then
      if next(extracted) == nil then return {} end
      return { extracted }
    end
    if interp.truthy(extracted) then return { extracted } end
    return {}
  end
  return self
end

-- RecordFilter ---------------------------------------------------------------------

function M.RecordFilter(node, path)
  manifest.fields(node, "RecordFilter", path, "condition")
  local cond = interp.compile(node.condition or "", path .. ".condition")
  return { keep = function(ctx) return interp.truthy(cond:eval(ctx)) end }
end

-- Transformations ---------------------------------------------------------------------

local function coerce(v, value_type, path)
  if value_type == nil or value_type == NONE then return v end
  if value_type == "string" then return interp.str(v) end
  if value_type == "integer" then
    local n = math.tointeger(tonumber(v))
    if n == nil then manifest.config_error(("%s: cannot make an integer of %s"):format(path, interp.repr(v))) end
    return n
  end
  if value_type == "number" then
    local n = tonumber(v)
    if n == nil then manifest.config_error(("%s: cannot make a number of %s"):format(path, interp.repr(v))) end
    return n
  end
  if value_type == "boolean" then return interp.truthy(v) end
  return v
end

function M.AddedFieldDefinition(node, path)
  manifest.fields(node, "AddedFieldDefinition", path, "path value value_type")
  if type(node.path) ~= "table" or #node.path == 0 then
    manifest.config_error(path .. ".path must be a non-empty list of keys")
  end
  local keys = {}
  for i, k in ipairs(node.path) do keys[i] = interp.compile(tostring(k), path .. ".path") end
  local value = node.value
  local tpl = type(value) == "string" and interp.compile(value, path .. ".value") or nil
  return {
    apply = function(record, ctx)
      local v = value
      if tpl then v = tpl:eval(ctx) end
      if v == nil then v = NONE end
      v = coerce(v, node.value_type, path)
      local target = record
      for i = 1, #keys - 1 do
        local k = keys[i]:render(ctx)
        local nxt = target[k]
        if type(nxt) ~= "table" then nxt = setmetatable({}, json.object_mt); target[k] = nxt end
        target = nxt
      end
      target[keys[#keys]:render(ctx)] = v
    end,
  }
end

function M.AddFields(node, path, F)
  manifest.fields(node, "AddFields", path, "fields condition")
  local fields = {}
  for i, f in ipairs(node.fields or {}) do
    fields[i] = F.build(f, ("%s.fields[%d]"):format(path, i - 1), "AddedFieldDefinition")
  end
  local cond = node.condition and node.condition ~= "" and interp.compile(node.condition, path .. ".condition")
  return {
    transform = function(record, ctx)
      if cond and not interp.truthy(cond:eval(ctx)) then return end
      for _, f in ipairs(fields) do f.apply(record, ctx) end
    end,
  }
end

local function remove_path(node, keys, i)
  if type(node) ~= "table" then return end
  local k = keys[i]
  if i == #keys then
    if k == "*" then
      if is_list(node) then for j = #node, 1, -1 do table.remove(node, j) end
      else for kk in pairs(node) do node[kk] = nil end end
    elseif is_list(node) then
      local n = math.tointeger(tonumber(k))
      if n and node[n + 1] ~= nil then table.remove(node, n + 1) end
    else
      node[k] = nil
    end
    return
  end
  if k == "*" then
    for _, v in pairs(node) do remove_path(v, keys, i + 1) end
  else
    local v = is_list(node) and node[(math.tointeger(tonumber(k)) or -1) + 1] or node[k]
    remove_path(v, keys, i + 1)
  end
end

function M.RemoveFields(node, path)
  manifest.fields(node, "RemoveFields", path, "field_pointers condition")
  local pointers = {}
  for i, p in ipairs(node.field_pointers or {}) do
    if type(p) ~= "table" then
      manifest.config_error(("%s.field_pointers[%d] must be a list of keys"):format(path, i - 1))
    end
    pointers[i] = p
  end
  local cond = node.condition and node.condition ~= "" and interp.compile(node.condition, path .. ".condition")
  return {
    transform = function(record, ctx)
      if cond then
        local c = {}
        for k, v in pairs(ctx) do c[k] = v end
        c.property = record
        if not interp.truthy(cond:eval(c)) then return end
      end
      for _, p in ipairs(pointers) do remove_path(record, p, 1) end
    end,
  }
end

-- Schema normalization (TypeTransformer with DefaultTypeTransform) -----------------

local function schema_type(schema)
  local t = schema.type
  if type(t) == "table" then
    for _, x in ipairs(t) do if x ~= "null" then return x end end
    return nil
  end
  return t
end

local function normalize(value, schema)
  if type(schema) ~= "table" or value == NONE or value == nil then return value end
  local t = schema_type(schema)
  if t == "object" and type(value) == "table" and not is_list(value) then
    for k, sub in pairs(schema.properties or {}) do
      if value[k] ~= nil then value[k] = normalize(value[k], sub) end
    end
    return value
  end
  if t == "array" and type(value) == "table" and is_list(value) then
    for i, v in ipairs(value) do value[i] = normalize(v, schema.items) end
    return value
  end
  if t == "string" and (type(value) == "number" or type(value) == "boolean") then
    return interp.str(value):gsub("^True$", "true"):gsub("^False$", "false")
  end
  if t == "integer" and type(value) == "string" then
    return math.tointeger(tonumber(value)) or value
  end
  if t == "number" and type(value) == "string" then return tonumber(value) or value end
  if t == "boolean" and type(value) == "string" then
    local l = value:lower()
    if l == "true" then return true elseif l == "false" then return false end
  end
  return value
end
M.normalize = normalize

-- RecordSelector --------------------------------------------------------------------

-- selector.select(body, ctx, schema) -> records (filtered, transformed), extracted count
function M.RecordSelector(node, path, F)
  manifest.fields(node, "RecordSelector", path,
    "extractor record_filter schema_normalization transform_before_filtering")
  local extractor = F.build(node.extractor or {}, path .. ".extractor", "extractor")
  local filter = node.record_filter and F.build(node.record_filter, path .. ".record_filter", "RecordFilter")
  local norm = node.schema_normalization
  if norm ~= nil and norm ~= "None" and norm ~= "Default" and norm ~= NONE then
    manifest.config_error(("%s.schema_normalization '%s' is not supported (None or Default)"):format(path, interp.str(norm)))
  end
  local transform_first = node.transform_before_filtering == true
  local self = { extractor = extractor }
  function self.select(body, ctx, transformations, schema)
    local raw = extractor.extract(body, ctx)
    local out = {}
    local function transform(rec)
      if transformations then
        for _, t in ipairs(transformations) do t.transform(rec, ctx) end
      end
    end
    for _, rec in ipairs(raw) do
      if type(rec) == "table" and not is_list(rec) then
        ctx.record = rec
        if transform_first then transform(rec) end
        if not filter or filter.keep(ctx) then
          if not transform_first then transform(rec) end
          if norm == "Default" then normalize(rec, schema) end
          out[#out + 1] = rec
        end
      end
    end
    ctx.record = nil
    return out, #raw
  end
  return self
end

return M
