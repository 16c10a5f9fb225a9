-- airbyte.cdk.commands: the protocol's commands run against a connector
-- (spec, check, discover, read, write): each loads its files, calls the
-- connector under the kit's error handler and writes the command's
-- messages. run() returns the exit code or raises a kit error.
local json = require "airbyte.cdk.json"
local errors = require "airbyte.cdk.errors"
local files = require "airbyte.cdk.config"
local start_state = require "airbyte.cdk.state"
local emitter = require "airbyte.cdk.emitter"
local input = require "airbyte.cdk.input"
local destination_emit = require "airbyte.cdk.destination_emit"

local M = {}

local type, pairs, ipairs, error, xpcall, pcall = type, pairs, ipairs, error, xpcall, pcall

local obj, array = json.obj, json.array
local capture, load_config, read_json = errors.capture, files.load, files.read

local function connection_status(e, status, message)
  e:write(obj("type", "CONNECTION_STATUS", "connectionStatus", obj("status", status, "message", message)))
end

local function run_check(connector, opts, e)
  local ok, res = xpcall(load_config, capture, connector, opts.config)
  if ok and connector.check then
    local msg
    ok, res, msg = xpcall(connector.check, capture, res)
    if ok then
      if res then connection_status(e, "SUCCEEDED", msg) else connection_status(e, "FAILED", msg) end
      return 0
    end
  elseif ok then
    connection_status(e, "SUCCEEDED")
    return 0
  end
  if res.failure_type == "config_error" then
    connection_status(e, "FAILED", res.message)
    return 0
  end
  error(res, 0)
end

-- Streams in discover output: the usual keys first, in the protocol's order.
local STREAM_KEYS = { "name", "namespace", "json_schema", "supported_sync_modes", "source_defined_cursor",
                      "default_cursor_field", "source_defined_primary_key", "is_resumable" }

local function catalog_stream(s)
  if json.declared_keys(s) then return s end
  local o, keys = {}, {}
  for _, k in ipairs(STREAM_KEYS) do
    if s[k] ~= nil then keys[#keys + 1] = k end
  end
  for k, v in pairs(s) do o[k] = v end
  json.set_key_order(o, keys) -- keys outside STREAM_KEYS follow, sorted
  return o
end

local function run_discover(connector, opts, e)
  if not connector.discover then error("this connector does not support discover", 0) end
  local config = load_config(connector, opts.config)
  local streams = array()
  for i, s in ipairs(connector.discover(config) or {}) do streams[i] = catalog_stream(s) end
  e:write(obj("type", "CATALOG", "catalog", obj("streams", streams)))
  return 0
end

local function run_read(connector, opts, e)
  if connector.kind ~= "source" then error("read needs a source connector", 0) end
  local config = load_config(connector, opts.config)
  local catalog, err = read_json(opts.catalog, "catalog")
  if catalog == nil then error(err, 0) end
  local state = {}
  if opts.state then
    local raw, serr = read_json(opts.state, "state")
    if raw == nil then error(serr, 0) end
    state = start_state.normalize(raw)
  end
  local em = emitter.new(e.out, catalog)
  local ok, res = xpcall(connector.read, capture, config, catalog, state, emitter.bound(em))
  em:finish(ok)
  if not ok then error(res, 0) end
  return 0
end

-- Runs `write`: the config and catalog are loaded, write() gets the input
-- and emit tables; when it raises, the abort hooks run before the error is
-- reported (TRACE ERROR, exit code 1).
local function run_write(connector, opts, e, lines)
  if connector.kind ~= "destination" then error("write needs a destination connector", 0) end
  local config = load_config(connector, opts.config)
  local catalog, err = read_json(opts.catalog, "catalog")
  if catalog == nil then error(err, 0) end
  if type(catalog) ~= "table" or type(catalog.streams) ~= "table" then
    errors.config_error("the configured catalog has no streams array")
  end
  local inp = input.new(lines, catalog, e.out)
  local ok, res = xpcall(connector.write, capture, config, catalog, inp, destination_emit.new(e.out))
  if not ok then
    for i = #inp.abort_hooks, 1, -1 do pcall(inp.abort_hooks[i], res) end
    error(res, 0)
  end
  inp:summary()
  return 0
end

-- run(connector, opts, e [, lines]): opts from airbyte.cdk.args, e the
-- writer (e.out, e:write(msg)), lines the input iterator of `write`.
function M.run(connector, opts, e, lines)
  local cmd = opts.command
  if cmd == "spec" then
    e:write(obj("type", "SPEC", "spec", connector.spec))
    return 0
  elseif cmd == "check" then
    return run_check(connector, opts, e)
  elseif cmd == "discover" then
    return run_discover(connector, opts, e)
  elseif cmd == "read" then
    return run_read(connector, opts, e)
  else
    return run_write(connector, opts, e, lines)
  end
end

-- trace_error(e, err): the TRACE ERROR message for a captured error.
function M.trace_error(e, err)
  e:write(emitter.trace("ERROR", "error", obj(
    "message", err.message,
    "internal_message", err.internal_message or err.message,
    "stack_trace", err.stack_trace,
    "failure_type", err.failure_type or "system_error")))
end


return M
