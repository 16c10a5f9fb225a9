-- What sources and destinations share (PyAirbyte's ConnectorBase): the
-- config, the spec, check, and running one connector command as a child
-- process with its config/catalog/state in temporary files.
local core = require "airbyte.core"
local proc = require "airbyte.process"
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local logs = require "airbyte.logs"
local options = require "airbyte.options"
local secrets = require "airbyte.secrets"
local log = require "airbyte.log"
local class = require "airbyte.class"

local M = {}

-- The members every connector object has (PyAirbyte's ConnectorBase).
---@class airbyte.Connector
---@field name string
---@field executor table
---@field config_spec table             computed: the spec's connectionSpecification
---@field docs_url string               computed
---@field connector_version string|nil  computed: the installed version
---@field log_file string|nil           computed: this connector's log file
local Connector = {}
M.Connector = Connector

local function init(self, executor, name, config, opts)
  opts = opts or {}
  self.name = name
  self.executor = executor
  self._config = nil
  self._config_change_callback = opts.config_change_callback
  self._log_file = logs.connector_log_file(name)
  if config ~= nil then self:set_config(config, { validate = opts.validate or false }) end
  return self
end

-- new(cls, executor, name, config, opts) -> an object of cls (a class()).
function M.new(cls, executor, name, config, opts)
  return init(setmetatable({}, cls), executor, name, config, opts)
end

-- Properties: computed on access, as PyAirbyte's @property members.
M.properties = {
  config_spec = function(self) return self:_spec(true).connectionSpecification end,
  docs_url = function(self)
    local kind = self.name:match("^destination%-") and "destinations" or "sources"
    return ("https://docs.airbyte.com/integrations/%s/%s"):format(kind,
      (self.name:gsub("^source%-", ""):gsub("^destination%-", "")))
  end,
  connector_version = function(self) return self.executor:get_installed_version() end,
  log_file = function(self) return self._log_file end,
}

-- A connector class (airbyte.class): Connector's methods and the given
-- ones, M.properties and the given props.
function M.class(props, methods)
  local all = {}
  for k, v in pairs(M.properties) do all[k] = v end
  for k, v in pairs(props or {}) do all[k] = v end
  local cls = class.new{ properties = all }
  for k, v in pairs(Connector) do cls[k] = v end
  for k, v in pairs(methods or {}) do cls[k] = v end
  return cls
end

-- --- config ------------------------------------------------------------------

local SET_CONFIG_OPTIONS = options.allow{ "validate" }
---@param config table
---@param opts? { validate?: boolean }
function Connector:set_config(config, opts)
  opts = options.check(opts, SET_CONFIG_OPTIONS, "set_config")
  if type(config) ~= "table" then
    errors.raise("PyAirbyteInputError", "config must be a table", { input_value = tostring(config) })
  end
  if opts.validate ~= false then self:validate_config(config) end
  self._config = config
  if self._on_config_set then self:_on_config_set() end
end

---@return table
function Connector:get_config()
  if self._config == nil then
    errors.raise("AirbyteConnectorConfigurationMissingError",
      ("connector '%s' has no config: call set_config() first"):format(self.name),
      { connector_name = self.name })
  end
  return self._config
end

-- Raises AirbyteConnectorValidationFailedError naming every failing path.
---@param config? table                defaults to the config set
function Connector:validate_config(config)
  config = config or self:get_config()
  local spec = self:_spec(false)
  -- registers the config's secret values before anything could quote them
  secrets.secret_values(self, config)
  local problems = M.validate(spec.connectionSpecification or {}, secrets.hydrate(config))
  if problems and #problems > 0 then
    errors.raise("AirbyteConnectorValidationFailedError",
      ("config of connector '%s' is not valid: %s"):format(self.name, table.concat(problems, "; ")),
      { connector_name = self.name, context = { errors = problems } })
  end
end

-- Validates a config with the draft-07 validator in C (jsonschema.c);
-- returns nil or a list of "path: problem" strings. Compiled specs are
-- kept per spec table, so a connector's config is checked cheaply.
local compiled = setmetatable({}, { __mode = "k" })
M.validate = function(schema, value)
  local js = require "airbyte.jsonschema"
  local s = compiled[schema]
  if not s then
    local err
    s, err = js.compile(schema)
    if not s then return { "the connector's spec is not a valid JSON schema: " .. tostring(err) } end
    compiled[schema] = s
  end
  local ok, problems = s:validate_value(value)
  if ok then return nil end
  return problems
end

-- --- running commands -----------------------------------------------------

local function tempjson(value)
  local f, err = core.tempfile(json.encode(value), ".json")
  if not f then errors.raise("PyAirbyteInternalError", err) end
  return f
end

-- Starts one command. files = { config = tbl, catalog = tbl, state = tbl }
-- become --config/--catalog/--state temp files (mode 0600, removed when the
-- returned `files` table is closed). Returns the process and the files.
function Connector:_start(command, files, opts)
  opts = opts or {}
  self.executor:ensure_installation()
  local args, keep = { command }, {}
  for _, flag in ipairs({ "config", "catalog", "state" }) do
    local v = files and files[flag]
    if v ~= nil then
      if flag == "config" then v = secrets.hydrate(v) end
      local f = tempjson(v)
      keep[#keep + 1] = f
      args[#args + 1] = "--" .. flag
      args[#args + 1] = f.path
    end
  end
  local p, err = proc.spawn{
    argv = self.executor:argv(args), name = self.name, log_file = self._log_file,
    secrets = files and files.config and secrets.secret_values(self, files.config) or nil,
    env = self.executor.env, stdin = opts.stdin, idle_timeout = opts.idle_timeout,
    timeout = opts.timeout, max_line = opts.max_line,
  }
  if not p then
    for _, f in ipairs(keep) do f:remove() end
    errors.raise("AirbyteConnectorExecutableNotFoundError", err, { connector_name = self.name })
  end
  return p, setmetatable(keep, { __close = function(t) for _, f in ipairs(t) do f:remove() end end })
end

-- Handles the messages every command may print: TRACE ERROR (kept to put in
-- errors), CONTROL config updates (merged, callback). Returns true when the
-- message was one of those. A FAILED CONNECTION_STATUS is noted too (false
-- is returned: it is the answer `check` looks for).
function Connector:_common_message(msg, state)
  if msg.type == "TRACE" then
    local tr = msg.trace
    if tr and tr.type == "ERROR" and tr.error then
      local te = errors.mask_all(tr.error)   -- masked here: it is shown and kept
      state.trace_errors[#state.trace_errors + 1] = te
      log.write(errors.mask(("ERROR: %s: %s\n"):format(self.name, tostring(te.message))))
      return true
    end
  elseif msg.type == "CONNECTION_STATUS" then
    local cs = msg.connectionStatus
    if type(cs) == "table" and cs.status == "FAILED" then state.failed_status = cs end
  elseif msg.type == "CONTROL" then
    local c = msg.control
    if c and c.type == "CONNECTOR_CONFIG" and c.connectorConfig and type(c.connectorConfig.config) == "table" then
      self:_apply_config_update(c.connectorConfig.config)
      return true
    end
  end
  return false
end

function Connector:_apply_config_update(update)
  local merged = {}
  for k, v in pairs(self._config or {}) do merged[k] = v end
  for k, v in pairs(update) do merged[k] = v end
  self._config = merged
  if self._config_change_callback then self._config_change_callback(merged) end
end

-- Waits for the exit; raises `kind` (with exit code, connector errors, the
-- last log lines and the log file) unless the command succeeded. A TRACE
-- ERROR or a FAILED connection status (outside `check`, whose answer it is)
-- is a failure whatever the exit code: connectors that report and exit 0
-- are common, and their message is the one the user needs.
function Connector:_finish(p, state, kind, what)
  local code, sig = p:wait()
  state.exit_code, state.signal = code, sig
  local first = state.trace_errors[1]
  local status = what ~= "check" and state.failed_status or nil
  if code == 0 and not first and not status then return end
  local tail = p:tail()
  local keep = {}
  for i = math.max(1, #tail - 19), #tail do keep[#keep + 1] = tail[i] end
  local why
  if code ~= 0 then
    why = p:exit_description() .. (first and (": " .. tostring(first.message)) or "")
  elseif first then
    why = tostring(first.message)
  else
    why = "connection status FAILED: " .. tostring(status.message or "no message")
  end
  errors.raise(kind or "AirbyteConnectorFailedError",
    ("connector '%s' failed during %s: %s"):format(self.name, what or "a command", why),
    { connector_name = self.name, exit_code = code or ("signal " .. tostring(sig)),
      failure_reason = status and status.message or nil,
      trace_errors = state.trace_errors, log_text = keep, log_file = p:log_file() })
end

-- Runs a short command and returns the first message of `want` type (or
-- nil); raises `kind` on failure.
function Connector:_execute_for(command, files, want, kind)
  local p, tmp <close> = self:_start(command, files)
  local state = { trace_errors = {} }
  local found
  local ok, err = pcall(function()
    for msg in p:messages() do
      if not self:_common_message(msg, state) and msg.type == want and not found then
        found = msg
      end
    end
  end)
  if not ok then
    p:close()
    errors.raise(kind, ("connector '%s' failed during %s: %s"):format(self.name, command, tostring(err)),
      { connector_name = self.name, log_file = self._log_file })
  end
  self:_finish(p, state, kind, command)
  p:close()
  return found, state
end

function Connector:_spec(force)
  if self._spec_cache and not force then return self._spec_cache end
  if self.executor.spec then   -- e.g. no_executor: the spec without a process
    self._spec_cache = self.executor:spec()
    return self._spec_cache
  end
  local msg = self:_execute_for("spec", nil, "SPEC", "AirbyteConnectorSpecFailedError")
  if not msg then
    errors.raise("AirbyteConnectorMissingSpecError",
      ("connector '%s' printed no SPEC message"):format(self.name), { connector_name = self.name })
  end
  self._spec_cache = msg.spec
  return msg.spec
end

-- print_config_spec(format, {output_file=, stderr=}): "yaml" (default) or "json"
local PRINT_CONFIG_SPEC_OPTIONS = options.allow{ "output_file", "stderr" }
---@param format? "yaml"|"json"
---@param opts? { output_file?: string, stderr?: boolean }
---@return string
function Connector:print_config_spec(format, opts)
  opts = options.check(opts, PRINT_CONFIG_SPEC_OPTIONS, "print_config_spec")
  format = format or "yaml"
  local spec = self.config_spec
  local text
  if format == "json" then text = json.encode(spec) .. "\n"
  elseif format == "yaml" then text = require("airbyte.yaml").encode(spec)
  else errors.raise("PyAirbyteInputError", "format must be 'yaml' or 'json'", { input_value = format }) end
  if opts.output_file then
    local f = assert(io.open(opts.output_file, "w"))
    f:write(text)
    f:close()
  elseif opts.stderr then log.write(text)
  else io.stdout:write(text) end
  return text
end

---@return true                        raises AirbyteConnectorCheckFailedError
function Connector:check()
  local config = self:get_config()
  local msg = self:_execute_for("check", { config = config }, "CONNECTION_STATUS",
                                "AirbyteConnectorCheckFailedError")
  local status = msg and msg.connectionStatus
  if not status or status.status == "FAILED" then
    errors.raise("AirbyteConnectorCheckFailedError",
      ("connection check failed for '%s'%s"):format(self.name,
        status and status.message and (": " .. tostring(status.message)) or ": no status"),
      { connector_name = self.name, failure_reason = status and status.message,
        log_file = self._log_file })
  end
  log.write(("Connection check succeeded for `%s`.\n"):format(self.name))
  return true
end

function Connector:install() return self.executor:install() end
function Connector:uninstall() return self.executor:uninstall() end

function Connector:__tostring()
  return ("%s(%s)"):format(self._class_name or "Connector", self.name)
end

return M
