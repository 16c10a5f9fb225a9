-- Secret references in configs: "secret_reference::NAME" values resolved
-- (hydration), and the secret values of a connector's config registered
-- for the process layer to mask.
--
-- airbyte.connector calls these through airbyte.secrets: hydrate resolves
-- "secret_reference::NAME" just before a config file is written, and
-- secret_values lists the values the process layer masks in connector
-- logs.
local sources = require "airbyte.secret_sources"
local mask = require "airbyte.secret_mask"
local spec_secrets = require "airbyte.spec_secrets"

local M = {}

M.REFERENCE_PREFIX = sources.REFERENCE_PREFIX   -- airbyte/secrets/hydration.py
M.CLI_PREFIX = "SECRET:"                     -- pyab's --config values

-- --- references in configs --------------------------------------------------------

local function has_reference(v, prefix, depth)
  if type(v) == "string" then return v:sub(1, #prefix) == prefix end
  if type(v) ~= "table" or depth > 64 then return false end
  for _, x in pairs(v) do
    if has_reference(x, prefix, depth + 1) then return true end
  end
  return false
end

local function resolve(v, prefix, opts, depth)
  if type(v) == "string" then
    if v:sub(1, #prefix) == prefix then return sources.get_secret(v:sub(#prefix + 1), opts) end
    return v
  end
  if type(v) ~= "table" or depth > 64 then return v end
  -- the metatable says whether an empty table is a JSON array: keep it
  local copy = setmetatable({}, getmetatable(v))
  for k, x in pairs(v) do copy[k] = resolve(x, prefix, opts, depth + 1) end
  return copy
end

-- resolve_references(config, prefix, opts) -> config with every string
-- "<prefix>NAME" (in nested tables and arrays too) replaced by
-- get_secret(NAME, opts). The config itself is left alone: a copy is made
-- when something needs resolving, else the same table is returned.
function M.resolve_references(config, prefix, opts)
  prefix = prefix or M.REFERENCE_PREFIX
  if not has_reference(config, prefix, 0) then return config end
  return resolve(config, prefix, opts, 0)
end

-- hydrate(config): "secret_reference::NAME" values resolved (PyAirbyte's
-- hydrate_secrets), the values registered for masking.
function M.hydrate(config)
  return M.resolve_references(config, M.REFERENCE_PREFIX)
end

-- Specs by the command line that starts the connector: several objects of
-- one connector (and a Docker connector's spec costs seconds) share one.
local specs_by_argv = {}

local function spec_of(conn)
  if conn._spec_cache then return conn._spec_cache end
  local key
  if conn.executor and conn.executor.argv then
    local ok, argv = pcall(conn.executor.argv, conn.executor, {})
    if ok then key = table.concat(argv, "\0") end
  end
  if key and specs_by_argv[key] then return specs_by_argv[key] end
  local ok, spec = pcall(conn._spec, conn, false)
  if not ok or type(spec) ~= "table" then return nil end
  if key then specs_by_argv[key] = spec end
  return spec
end

-- connector.secret_values: registers the secret fields of this config (by
-- the connector's spec; a connector whose spec cannot be had only gets the
-- values registered otherwise) and returns everything registered, for the
-- process layer to mask in logs.
function M.secret_values(conn, config)
  local hydrated = M.hydrate(config)
  local spec = spec_of(conn)
  if spec then
    for _, v in ipairs(spec_secrets.values(spec.connectionSpecification, hydrated)) do mask.register(v) end
  end
  return mask.values()
end

return M
