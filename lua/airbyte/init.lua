-- The airbyte module: PyAirbyte's API for Lua.
--
--   local ab = require "airbyte"
--   local source = ab.get_source("source-faker", { config = { count = 1000 } })
--   source:select_all_streams()
--   local result = source:read()            -- into ab.get_default_cache()
--
-- Keyword arguments of PyAirbyte become one options table; errors are
-- raised tables whose `kind` is PyAirbyte's exception class name.
local executors = require "airbyte.executors"
local errors = require "airbyte.errors"
local options = require "airbyte.options"

local M = {}

M.version = require("airbyte.core").version
M.errors = errors
M.json = require "airbyte.json"
M.sandbox = require "airbyte.sandbox"     -- validators for untrusted code (validate.rules)

-- get_source(name, opts): opts = { config, config_change_callback, streams,
-- version, local_executable, install_if_missing, install_root, pip_url,
-- use_python, docker_image, use_host_network, no_executor }
local GET_SOURCE_OPTIONS = options.allow(executors.OPTIONS, { "config", "config_change_callback", "streams" })
function M.get_source(name, opts)
  if type(name) ~= "string" or name == "" then
    errors.raise("PyAirbyteInputError", "get_source needs a connector name", { input_value = tostring(name) })
  end
  opts = options.check(opts, GET_SOURCE_OPTIONS, "get_source")
  local executor = executors.get_executor(name, opts)
  return require("airbyte.source").new(executor, name, opts.config, {
    config_change_callback = opts.config_change_callback, streams = opts.streams })
end

-- get_destination(name, opts): opts = { config, config_change_callback,
-- version, use_python, pip_url, local_executable, docker_image,
-- use_host_network, install_if_missing, install_root, no_executor }
local GET_DESTINATION_OPTIONS = options.allow(executors.OPTIONS, { "config", "config_change_callback" })
function M.get_destination(name, opts)
  if type(name) ~= "string" or name == "" then
    errors.raise("PyAirbyteInputError", "get_destination needs a connector name", { input_value = tostring(name) })
  end
  opts = options.check(opts, GET_DESTINATION_OPTIONS, "get_destination")
  local executor = executors.get_executor(name, opts)
  return require("airbyte.destination").new(executor, name, opts.config, {
    config_change_callback = opts.config_change_callback })
end

-- The registry: get_available_connectors(install_type) -> sorted names
-- ("installable" by default: all when docker is on PATH, else the built-in
-- and Python ones; or "python", "yaml", "java", "docker", "builtin", "any");
-- get_connector_metadata(name) -> metadata table, or raises
-- AirbyteConnectorNotRegisteredError.
function M.get_available_connectors(install_type)
  return require("airbyte.registry").get_available_connectors(install_type)
end

function M.get_connector_metadata(name)
  return require("airbyte.registry").get_connector_metadata(name)
end

-- The built-in destination-dev-null: accepts everything, echoes states.
function M.get_noop_destination(opts)
  opts = options.check(opts, GET_DESTINATION_OPTIONS, "get_noop_destination")
  local o = { config = { test_destination = { test_destination_type = "SILENT" } } }
  for k, v in pairs(opts) do o[k] = v end
  return M.get_destination("destination-dev-null", o)
end

-- Caches: get_default_cache(), new_local_cache{cache_name=, cache_dir=}, SQLiteCache{db_path=},
-- PostgresCache{host=, port=, database=, username=, password=, schema_name=, dsn=}
local function caches() return require "airbyte.caches" end
function M.get_default_cache() return caches().get_default_cache() end
function M.new_local_cache(opts) return caches().new_local_cache(opts) end
function M.SQLiteCache(opts) return caches().SQLiteCache(opts) end
function M.PostgresCache(opts) return caches().PostgresCache(opts) end

-- Tasks: run functions concurrently inside a script.
local core = require "airbyte.core"
M.spawn = core.spawn
-- Driving from a Lua host (require "airbyte" in lua5.4, a game, a server):
-- step(timeout_ms, budget_us) -> true while tasks remain; backend_fd() and
-- backend_timeout() for the host's own poll; use_loop(uv[, {budget_us=}])
-- runs tasks on luv's loop while the host's uv.run() runs.
M.step = core.step
M.backend_fd = core.backend_fd
M.backend_timeout = core.backend_timeout
M.use_loop = core.use_loop
M.sleep = core.sleep

-- Secrets: get_secret(name, {sources=, default=, allow_prompt=}). Loading
-- airbyte.secrets also turns on secret_reference:: hydration and masking.
local secrets = require "airbyte.secrets"
M.secrets = secrets
M.get_secret = secrets.get_secret
M.SecretSourceEnum = secrets.SecretSourceEnum

return M
