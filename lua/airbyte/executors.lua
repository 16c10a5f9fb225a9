-- Executors decide how a connector is started (DESIGN §4). Each executor
-- turns protocol arguments ("spec", "check", "--config", path, ...) into
-- the argv of a child process.
--
--   executor.kind         "builtin" | "local" (more come with the registry)
--   executor:argv(args)   full argv for one command
--   executor:ensure_installation()  raises when it cannot run
--   executor:get_installed_version()
local core = require "airbyte.core"
local errors = require "airbyte.errors"

local M = {}

-- Directories of $PATH searched for `name`; nil when nowhere.
function M.which(name)
  if name:find("/", 1, true) then
    return core.executable(name) and name or nil
  end
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local p = dir .. "/" .. name
    if core.executable(p) then return p end
  end
  return nil
end

-- Is `name` a connector shipped with luabyte (lua/connectors/<name>.lua)?
function M.is_builtin(name)
  local mod = "connectors." .. name
  if package.preload[mod] then return true end
  local dir = os.getenv("LUABYTE_LUA_DIR")
  if dir and dir ~= "" then
    local f = io.open(dir .. "/connectors/" .. name .. ".lua", "r")
    if f then f:close() return true end
  end
  return false
end

local Executor = {}
Executor.__index = Executor

function Executor:argv(args)
  local argv = {}
  for i, a in ipairs(self.prefix) do argv[i] = a end
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return argv
end

function Executor:ensure_installation()
  if self.kind == "local" and not core.executable(self.path) then
    errors.raise("AirbyteConnectorExecutableNotFoundError",
      ("the executable of connector '%s' is gone: %s"):format(self.name, self.path),
      { connector_name = self.name })
  end
end

function Executor:get_installed_version()
  return self.version
end

function Executor:install() end
function Executor:uninstall() end

-- builtin: `luabyte connector NAME ...`, a real child process of our own binary
function M.builtin(name)
  local exe = core.exe_path()
  if not exe then
    errors.raise("AirbyteConnectorExecutableNotFoundError",
      "cannot find the luabyte binary to start built-in connector " .. name,
      { connector_name = name })
  end
  return setmetatable({ kind = "builtin", name = name, prefix = { exe, "connector", name },
                        version = core.version }, Executor)
end

function M.local_executable(name, path)
  local resolved = M.which(path)
  if not resolved then
    errors.raise("AirbyteConnectorExecutableNotFoundError",
      ("connector '%s': no executable '%s' (not a path to an executable file, nor on PATH)")
        :format(name, path),
      { connector_name = name, guidance = "Check the local_executable option or your PATH." })
  end
  return setmetatable({ kind = "local", name = name, path = resolved, prefix = { resolved } }, Executor)
end

-- Chooses the executor for get_source / get_destination options. Explicit
-- options win; then a built-in connector; then an executable on PATH.
-- The registry-driven executors (Python venv, Docker) plug in here.
function M.get_executor(name, opts)
  opts = opts or {}
  if opts.executor then return opts.executor end
  if opts.local_executable then
    return M.local_executable(name, opts.local_executable)
  end
  if M.extra then   -- venv / docker / registry selection, when loaded
    local ex = M.extra(name, opts)
    if ex then return ex end
  end
  if M.is_builtin(name) then return M.builtin(name) end
  local path = M.which(name)
  if path then
    return setmetatable({ kind = "local", name = name, path = path, prefix = { path } }, Executor)
  end
  errors.raise("AirbyteConnectorExecutableNotFoundError",
    ("connector '%s' is not built in and no executable of that name is on PATH"):format(name),
    { connector_name = name,
      guidance = "Pass local_executable = '/path/to/" .. name .. "', or put it on PATH." })
end

M.Executor = Executor
return M
