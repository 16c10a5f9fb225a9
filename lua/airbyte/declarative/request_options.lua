-- RequestOption (where a value goes: query parameter, header, form body or
-- JSON body) and the request-options bag every component adds to. The CDK
-- refuses the same key from two components; so does this.
--
--   local opts = M.new()                    { params, headers, body_data, body_json }
--   local ro = M.build(node, path)          a RequestOption (or RequestPath)
--   ro:inject(opts, value, ctx, who)
--   M.merge(into, from, who)
local json = require "airbyte.json"
local interp = require "airbyte.declarative.interpolation"
local manifest = require "airbyte.declarative.manifest"

local M = {}

function M.new()
  return { params = {}, headers = {}, body_data = {}, body_json = nil, owners = {} }
end

local SLOT = { request_parameter = "params", header = "headers", body_data = "body_data", body_json = "body_json" }

local function put(opts, slot, key, value, who)
  local owner_key = slot .. "\0" .. key
  local prev = opts.owners[owner_key]
  if prev and prev ~= who then
    manifest.config_error(("request option '%s' (%s) is set by both %s and %s"):format(key, slot, prev, who))
  end
  opts.owners[owner_key] = who
  if slot == "body_json" then
    opts.body_json = opts.body_json or setmetatable({}, json.object_mt)
    opts.body_json[key] = value
  else
    opts[slot][key] = value
  end
end
M.put = put

local RO = {}
RO.__index = RO

function M.build(node, path)
  if node.type == "RequestPath" then
    return setmetatable({ path_token = true }, RO)
  end
  manifest.fields(node, "RequestOption", path, "inject_into field_name field_path")
  local slot = SLOT[node.inject_into]
  if not slot then
    manifest.config_error(("%s.inject_into must be request_parameter, header, body_data or body_json, not '%s'")
      :format(path, tostring(node.inject_into)))
  end
  local self = setmetatable({ slot = slot, path = path }, RO)
  if node.field_path ~= nil and node.field_path ~= json.null then
    if slot ~= "body_json" then manifest.config_error(path .. ".field_path is only allowed with inject_into: body_json") end
    self.field_path = {}
    for i, p in ipairs(node.field_path) do self.field_path[i] = interp.compile(tostring(p), path .. ".field_path") end
  else
    if node.field_name == nil then manifest.config_error(path .. " needs field_name (or field_path)") end
    self.field_name = interp.compile(tostring(node.field_name), path .. ".field_name")
  end
  return self
end

function RO:inject(opts, value, ctx, who)
  if self.path_token then return end
  if self.field_path then
    opts.body_json = opts.body_json or setmetatable({}, json.object_mt)
    local target = opts.body_json
    local n = #self.field_path
    for i = 1, n - 1 do
      local k = self.field_path[i]:render(ctx)
      if type(target[k]) ~= "table" then target[k] = setmetatable({}, json.object_mt) end
      target = target[k]
    end
    target[self.field_path[n]:render(ctx)] = value
    return
  end
  put(opts, self.slot, self.field_name:render(ctx), value, who or self.path)
end

-- Adds a mapping of evaluated key -> value into a slot (requester's own options).
function M.add_all(opts, slot, map, who)
  for k, v in pairs(map) do put(opts, slot, k, v, who) end
end

return M
