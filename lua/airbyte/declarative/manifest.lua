-- Loading a declarative manifest the way the CDK does (reference/declarative.md
-- §2): parse the YAML, resolve `$ref`s, give typeless components the type
-- their parent field implies, and propagate `$parameters` down the tree.
--
--   M.load(source [, name]) -> manifest table   source: a path, YAML text
--                                              (contains a newline) or a table
--   M.resolve(tbl) -> resolved copy             ($ref, default types, $parameters)
--   M.fields(node, type, path, supported)      raises on a schema field of `type`
--                                              that luabyte does not support
--   M.object([t]) -> t (or {}) marked as a JSON object (json.object_mt), for
--                    the values the components build
local yaml = require "airbyte.yaml"
local json = require "airbyte.json"
local SCHEMA = require "airbyte.declarative.schema"

local M = {}

function M.object(t) return setmetatable(t or {}, json.object_mt) end

local function config_error(msg)
  error({ message = msg, failure_type = "config_error" }, 0)
end
M.config_error = config_error

local function is_list(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == json.array_mt then return true end
  if mt == json.object_mt then return false end
  return v[1] ~= nil
end
M.is_list = is_list

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return setmetatable(out, getmetatable(v))
end
M.deep_copy = deep_copy

-- $ref -------------------------------------------------------------------------

local function lookup(root, ref, path)
  local node = root
  local walked = "#"
  for seg in ref:sub(3):gmatch("[^/]+") do
    seg = seg:gsub("~1", "/"):gsub("~0", "~")
    if type(node) ~= "table" then node = nil break end
    local v = node[seg]
    if v == nil and is_list(node) and tonumber(seg) then v = node[tonumber(seg) + 1] end
    node = v
    walked = walked .. "/" .. seg
    if node == nil then break end
  end
  if node == nil then config_error(("%s: $ref '%s' points at nothing (no %s)"):format(path, ref, walked)) end
  return node
end

local function resolve_refs(root, node, path, active)
  if type(node) == "string" then
    if node:match("^#/") and not node:find("%s") then
      if active[node] then config_error(("%s: circular $ref '%s'"):format(path, node)) end
      active[node] = true
      local v = resolve_refs(root, lookup(root, node, path), path, active)
      active[node] = nil
      return deep_copy(v)
    end
    return node
  end
  if type(node) ~= "table" then return node end
  local out
  local ref = node["$ref"]
  if ref ~= nil then
    if type(ref) ~= "string" or not ref:match("^#/") then
      config_error(("%s: $ref must be a '#/...' reference within the manifest, not %s"):format(path, tostring(ref)))
    end
    if active[ref] then config_error(("%s: circular $ref '%s'"):format(path, ref)) end
    active[ref] = true
    local target = resolve_refs(root, lookup(root, ref, path), path, active)
    active[ref] = nil
    out = deep_copy(target)
    if type(out) ~= "table" then
      config_error(("%s: $ref '%s' with sibling keys must point at a mapping"):format(path, ref))
    end
    for k, v in pairs(node) do
      if k ~= "$ref" then out[k] = resolve_refs(root, v, path .. "." .. tostring(k), active) end
    end
    return out
  end
  out = setmetatable({}, getmetatable(node))
  for k, v in pairs(node) do
    local sub = is_list(node) and ("%s[%d]"):format(path, k - 1) or (path == "" and tostring(k) or path .. "." .. tostring(k))
    out[k] = resolve_refs(root, v, sub, active)
  end
  return out
end

-- default types and $parameters ------------------------------------------------

-- The CDK's DEFAULT_MODEL_TYPES (parsers/manifest_component_transformer.py).
local DEFAULT_TYPES = {
  ["DeclarativeSource.streams"] = "DeclarativeStream",
  ["DeclarativeSource.check"] = "CheckStream",
  ["DeclarativeSource.spec"] = "Spec",
  ["DeclarativeSource.concurrency_level"] = "ConcurrencyLevel",
  ["AddFields.fields"] = "AddedFieldDefinition",
  ["CompositeErrorHandler.error_handlers"] = "DefaultErrorHandler",
  ["DeclarativeStream.retriever"] = "SimpleRetriever",
  ["DeclarativeStream.schema_loader"] = "JsonFileSchemaLoader",
  ["DefaultErrorHandler.response_filters"] = "HttpResponseFilter",
  ["DefaultPaginator.decoder"] = "JsonDecoder",
  ["DefaultPaginator.page_size_option"] = "RequestOption",
  ["DefaultPaginator.page_token_option"] = "RequestOption",
  ["DatetimeBasedCursor.end_datetime"] = "MinMaxDatetime",
  ["DatetimeBasedCursor.end_time_option"] = "RequestOption",
  ["DatetimeBasedCursor.start_datetime"] = "MinMaxDatetime",
  ["DatetimeBasedCursor.start_time_option"] = "RequestOption",
  ["HttpRequester.error_handler"] = "DefaultErrorHandler",
  ["ListPartitionRouter.request_option"] = "RequestOption",
  ["ParentStreamConfig.request_option"] = "RequestOption",
  ["ParentStreamConfig.stream"] = "DeclarativeStream",
  ["RecordSelector.extractor"] = "DpathExtractor",
  ["RecordSelector.record_filter"] = "RecordFilter",
  ["SimpleRetriever.paginator"] = "NoPagination",
  ["SimpleRetriever.record_selector"] = "RecordSelector",
  ["SimpleRetriever.requester"] = "HttpRequester",
  ["SimpleRetriever.decoder"] = "JsonDecoder",
  ["SubstreamPartitionRouter.parent_stream_configs"] = "ParentStreamConfig",
  ["ApiKeyAuthenticator.inject_into"] = "RequestOption",
  ["OAuthAuthenticator.refresh_token_updater"] = "RefreshTokenUpdater",
  ["SessionTokenAuthenticator.request_authentication"] = "ApiKey",
  ["SelectiveAuthenticator.authenticators"] = nil,
}

-- With class_name present: the Custom… variant (CUSTOM_COMPONENTS_MAPPING).
local CUSTOM_TYPES = {
  ["CompositeErrorHandler.backoff_strategies"] = "CustomBackoffStrategy",
  ["DeclarativeStream.retriever"] = "CustomRetriever",
  ["DeclarativeStream.transformations"] = "CustomTransformation",
  ["DefaultErrorHandler.backoff_strategies"] = "CustomBackoffStrategy",
  ["DefaultPaginator.pagination_strategy"] = "CustomPaginationStrategy",
  ["HttpRequester.authenticator"] = "CustomAuthenticator",
  ["HttpRequester.error_handler"] = "CustomErrorHandler",
  ["RecordSelector.extractor"] = "CustomRecordExtractor",
  ["SimpleRetriever.partition_router"] = "CustomPartitionRouter",
}

local function is_json_schema_object(node)
  local t = node.type
  if t == "object" then return true end
  return is_list(t) and #t == 2 and t[1] == "null" and t[2] == "object"
end

local function propagate(field_id, node, parent_params)
  local out = setmetatable({}, getmetatable(node))
  for k, v in pairs(node) do out[k] = v end
  if out.type == nil then
    local found = out.class_name ~= nil and CUSTOM_TYPES[field_id] or DEFAULT_TYPES[field_id]
    if found then out.type = found end
  end
  -- not a component (a plain object, a JSON schema): left alone
  if out.type == nil or is_json_schema_object(out) then return out end
  local current = {}
  for k, v in pairs(parent_params) do current[k] = v end
  local own = out["$parameters"]
  out["$parameters"] = nil
  if type(own) == "table" then
    for k, v in pairs(own) do current[k] = v end   -- the component's own parameters win
  end
  -- parameters fill the component's fields unless the field is already truthy
  for k, v in pairs(current) do
    local cur = out[k]
    if cur == nil or cur == false or cur == "" or cur == 0 or cur == json.null then out[k] = v end
  end
  local kind = out.type
  local keys = {}
  for k in pairs(out) do keys[#keys + 1] = k end
  for _, k in ipairs(keys) do
    local v = out[k]
    if type(v) == "table" then
      local excluded = current[k]
      current[k] = nil                     -- never pass a parameter into the field of its own name
      local id = tostring(kind) .. "." .. tostring(k)
      if is_list(v) then
        local copy = setmetatable({}, getmetatable(v))
        for i, el in ipairs(v) do
          copy[i] = (type(el) == "table" and not is_list(el)) and propagate(id, el, current) or el
        end
        out[k] = copy
      elseif next(v) ~= nil or getmetatable(v) ~= json.array_mt then
        out[k] = propagate(id, v, current)
      end
      current[k] = excluded
    end
  end
  if next(current) ~= nil then out["$parameters"] = setmetatable(current, json.object_mt) end
  return out
end

function M.resolve(tbl)
  if type(tbl) ~= "table" or is_list(tbl) then config_error("a manifest must be a mapping") end
  local resolved = resolve_refs(tbl, tbl, "", {})
  resolved.type = resolved.type or "DeclarativeSource"
  if resolved.type ~= "DeclarativeSource" then
    config_error(("the manifest's type is '%s', expected DeclarativeSource"):format(tostring(resolved.type)))
  end
  -- definitions and schemas are libraries, never interpreted by themselves
  local defs, schemas = resolved.definitions, resolved.schemas
  resolved.definitions, resolved.schemas = nil, nil
  local out = propagate("", resolved, {})
  out.definitions, out.schemas = defs, schemas
  return out
end

function M.load(source, name)
  local tbl = source
  if type(source) == "string" then
    local text = source
    if not source:find("\n", 1, true) then
      local f, err = io.open(source, "rb")
      if not f then config_error(("cannot read manifest %s: %s"):format(source, err)) end
      text = f:read("a")
      f:close()
      name = name or source
    end
    local ok, v = pcall(yaml.decode, text, name or "manifest")
    if not ok then config_error(("the manifest is not valid YAML: %s"):format(tostring(v))) end
    tbl = v
  end
  return M.resolve(tbl)
end

-- Field checks -----------------------------------------------------------------

local schema_fields = {}
for t, list in pairs(SCHEMA) do
  local set = {}
  for f in list:gmatch("%S+") do set[f] = true end
  schema_fields[t] = set
end

function M.known_type(t) return schema_fields[t] ~= nil end

-- Checks that `node` (a component of type `kind` at `path`) uses only the
-- schema fields luabyte implements (`supported`: a space-separated list).
-- Keys outside the schema are tolerated, as the CDK does.
local supported_cache = {}
function M.fields(node, kind, path, supported)
  local known = schema_fields[kind]
  if not known then
    config_error(("%s: unknown component type '%s'"):format(path, tostring(kind)))
  end
  local sup = supported_cache[supported]
  if not sup then
    sup = {}
    for f in supported:gmatch("%S+") do sup[f] = true end
    supported_cache[supported] = sup
  end
  for k, v in pairs(node) do
    if known[k] and not sup[k] and v ~= json.null and v ~= false then
      config_error(("%s: field '%s' of %s is not supported by luabyte"):format(path, k, kind))
    end
  end
end

return M
