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

---@class airbyte.ExecutorOptions
---@field version? string               connector version to install or run
---@field local_executable? string      run this executable
---@field install_if_missing? boolean
---@field install_root? string
---@field pip_url? string
---@field use_python? boolean|string
---@field docker_image? boolean|string
---@field use_host_network? boolean
---@field no_executor? boolean
---@field source_manifest? boolean|string|table  a declarative manifest

---@class airbyte.GetSourceOptions: airbyte.ExecutorOptions
---@field config? table
---@field config_change_callback? fun(config: table)
---@field streams? string|string[]      streams to select ("*" for all)

---@class airbyte.GetDestinationOptions: airbyte.ExecutorOptions
---@field config? table
---@field config_change_callback? fun(config: table)

---@class airbyte
---@field version string
---@field errors airbyte.errors
---@field json table                   airbyte.json
---@field sandbox table                airbyte.sandbox
---@field secrets table                airbyte.secrets
---@field SecretSourceEnum table<string, string>
local M = {}

M.version = require("airbyte.core").version
M.errors = errors
M.json = require "airbyte.json"
M.sandbox = require "airbyte.sandbox"     -- validators for untrusted code (validate.rules)

-- The executor of connector name, and opts checked against allowed (what
-- names the function in messages).
local function executor_for(name, opts, allowed, what)
  if type(name) ~= "string" or name == "" then
    errors.raise("PyAirbyteInputError", what .. " needs a connector name", { input_value = tostring(name) })
  end
  opts = options.check(opts, allowed, what)
  return executors.get_executor(name, opts), opts
end

-- get_source(name, opts): opts = { config, config_change_callback, streams,
-- version, local_executable, install_if_missing, install_root, pip_url,
-- use_python, docker_image, use_host_network, no_executor }
local GET_SOURCE_OPTIONS = options.allow(executors.OPTIONS, { "config", "config_change_callback", "streams" })
---@param name string                 a connector name, Docker image or path
---@param opts? airbyte.GetSourceOptions
---@return airbyte.Source
function M.get_source(name, opts)
  local executor
  executor, opts = executor_for(name, opts, GET_SOURCE_OPTIONS, "get_source")
  return require("airbyte.source").new(executor, name, opts.config, {
    config_change_callback = opts.config_change_callback, streams = opts.streams })
end

-- get_destination(name, opts): opts = { config, config_change_callback,
-- version, use_python, pip_url, local_executable, docker_image,
-- use_host_network, install_if_missing, install_root, no_executor }
local GET_DESTINATION_OPTIONS = options.allow(executors.OPTIONS, { "config", "config_change_callback" })
---@param name string
---@param opts? airbyte.GetDestinationOptions
---@return airbyte.Destination
function M.get_destination(name, opts)
  local executor
  executor, opts = executor_for(name, opts, GET_DESTINATION_OPTIONS, "get_destination")
  return require("airbyte.destination").new(executor, name, opts.config, {
    config_change_callback = opts.config_change_callback })
end

-- The registry: get_available_connectors(install_type) -> sorted names
-- ("installable" by default: all when docker is on PATH, else the built-in
-- and Python ones; or "python", "yaml", "java", "docker", "builtin", "any");
-- get_connector_metadata(name) -> metadata table, or raises
-- AirbyteConnectorNotRegisteredError.
---@param install_type? "installable"|"python"|"yaml"|"java"|"docker"|"builtin"|"any"
---@return string[]
function M.get_available_connectors(install_type)
  return require("airbyte.registry").get_available_connectors(install_type)
end

---@param name string
---@return table
function M.get_connector_metadata(name)
  return require("airbyte.registry").get_connector_metadata(name)
end

-- The built-in destination-dev-null: accepts everything, echoes states.
---@param opts? airbyte.GetDestinationOptions
---@return airbyte.Destination
function M.get_noop_destination(opts)
  opts = options.check(opts, GET_DESTINATION_OPTIONS, "get_noop_destination")
  local o = { config = { test_destination = { test_destination_type = "SILENT" } } }
  for k, v in pairs(opts) do o[k] = v end
  return M.get_destination("destination-dev-null", o)
end

-- Caches: get_default_cache(), new_local_cache{cache_name=, cache_dir=}, SQLiteCache{db_path=},
-- PostgresCache{host=, port=, database=, username=, password=, schema_name=, dsn=}
local function caches() return require "airbyte.caches" end
---@return airbyte.Cache
function M.get_default_cache() return caches().get_default_cache() end
---@param opts? { cache_name?: string, cache_dir?: string }
---@return airbyte.Cache
function M.new_local_cache(opts) return caches().new_local_cache(opts) end
---@param opts { db_path: string }
---@return airbyte.Cache
function M.SQLiteCache(opts) return caches().SQLiteCache(opts) end
function M.PostgresCache(opts) return caches().PostgresCache(opts) end

-- Tasks: run functions concurrently inside a script.
local core = require "airbyte.core"
M.spawn = core.spawn
-- Driving from a Lua host (require "airbyte" in lua5.4, a game, a server):
-- step(timeout_ms, budget_us) -> true while tasks remain; backend_fd() and
-- backend_timeout() for the host's own poll; use_loop(uv[, {budget_us=}])
-- runs tasks on luv's loop while the host's uv.run() runs;
-- background_cpus("1-3") keeps the cache's threads and the connectors
-- started from then on off a pinned host thread's CPU.
M.step = core.step
M.backend_fd = core.backend_fd
M.backend_timeout = core.backend_timeout
M.use_loop = core.use_loop
M.background_cpus = core.background_cpus
M.sleep = core.sleep

-- Secrets: get_secret(name, {sources=, default=, allow_prompt=}); the
-- connectors hydrate secret_reference:: values and mask them through it.
local secrets = require "airbyte.secrets"
M.secrets = secrets
M.get_secret = secrets.get_secret
M.SecretSourceEnum = secrets.SecretSourceEnum

return M
