-- Executors decide how a connector is started (DESIGN §4, PyAirbyte's
-- airbyte/_executors). Each executor turns protocol arguments ("spec",
-- "check", "--config", path, ...) into the argv of a child process.
--
--   executor.kind          "builtin" | "local" | "manifest" | "venv" | "docker" | "noop"
--   executor.prefix        argv before the protocol arguments
--   executor.env           nil or a table merged into the child's environment
--   executor:argv(args)    full argv for one command
--   executor:ensure_installation(auto_fix)   raises when it cannot run;
--                          with auto_fix a venv is installed or repaired
--   executor:get_installed_version()
--   executor:install(), executor:uninstall()
--   executor:spec()        only the no-op executor: the spec without a process
--
-- get_executor(name, opts) chooses one as PyAirbyte's get_connector_executor
-- does, with luabyte's built-in connectors first (see there).
local core = require "airbyte.core"
local errors = require "airbyte.errors"
local registry = require "airbyte.registry"
local log = require "airbyte.log"
local class = require "airbyte.class"

local M = {}

-- Environment lookups go through the registry's (tests swap
-- registry.getenv: Lua cannot set the running process's environment).
local env = registry.env

local function raise_input(msg, value, guidance)
  errors.raise("PyAirbyteInputError", msg, { input_value = value, guidance = guidance })
end

-- Directories of $PATH searched for `name`; nil when nowhere.
function M.which(name)
  if name:find("/", 1, true) then
    return core.executable(name) and name or nil
  end
  for dir in (env("PATH") or ""):gmatch("[^:]+") do
    local p = dir .. "/" .. name
    if core.executable(p) then return p end
  end
  return nil
end

local function cwd()
  local pwd = env("PWD")
  if pwd and pwd:sub(1, 1) == "/" then return pwd end
  local p = io.popen("pwd")
  local out = p and p:read("l")
  if p then p:close() end
  return out or "."
end

local function abspath(p)
  p = p:gsub("/+$", "")
  if p == "" then return "/" end
  if p:sub(1, 1) == "/" then return p end
  if p == "." then return cwd() end
  return cwd() .. "/" .. p:gsub("^%./", "")
end

-- AIRBYTE_PROJECT_DIR or the working directory: parent of the install
-- directory and of Docker's /local mounts.
function M.project_dir()
  return abspath(env("AIRBYTE_PROJECT_DIR") or ".")
end

-- The directory our temporary config/catalog/state files go to. Asked of
-- the runtime itself (a probe file), so the Docker mount always matches
-- where core.tempfile really writes.
local temp_dir
function M.temp_dir()
  if not temp_dir then
    local f, err = core.tempfile("", ".probe")
    if not f then errors.raise("PyAirbyteInternalError", err) end
    temp_dir = f.path:match("^(.*)/[^/]*$")
    f:remove()
  end
  return temp_dir
end

-- Is `name` a connector shipped with luabyte (lua/connectors/<name>.lua)?
function M.is_builtin(name)
  local mod = "connectors." .. name
  if package.preload[mod] then return true end
  local dir = env("LUABYTE_LUA_DIR")
  if dir then
    local f = io.open(dir .. "/connectors/" .. name .. ".lua", "r")
    if f then f:close() return true end
  end
  return false
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = deep_copy(x) end
  return setmetatable(t, getmetatable(v))
end

-- The spec of a built-in connector, from its module (no process needed).
function M.builtin_spec(name)
  local ok, c = pcall(require, "connectors." .. name)
  if not ok or type(c) ~= "table" or type(c.spec) ~= "table" then return nil end
  return deep_copy(c.spec)
end

-- Runs an installer command to the end, its output going to `log_file`.
-- Returns ok, a description of the exit, and the last output lines (stdout
-- and stderr) to put into an error.
local function run(argv, opts)
  local proc = require "airbyte.process"
  local p, err = proc.spawn{ argv = argv, name = opts.name, log_file = opts.log_file, env = opts.env }
  if not p then return false, err, { err } end
  local out = {}
  while true do
    local line, _, code = p:read_line()
    if not line then
      if code ~= "ELINE" then break end
    else
      p:log(line)
      out[#out + 1] = line
      if #out > 40 then table.remove(out, 1) end
    end
  end
  local code = p:wait()
  local how = p:exit_description()
  local lines = {}
  for i = math.max(1, #out - 9), #out do lines[#lines + 1] = out[i] end
  local tail = p:tail()
  for i = math.max(1, #tail - 19), #tail do lines[#lines + 1] = tail[i] end
  p:close()
  return code == 0, how, lines
end

local function quote_argv(argv)
  local parts = {}
  for i, a in ipairs(argv) do
    parts[i] = a:find("[^%w%-_./:=@+,]") and ("'" .. a:gsub("'", "'\\''") .. "'") or a
  end
  return table.concat(parts, " ")
end

-- --- the base executor ------------------------------------------------------

local Executor = class.new()

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

function Executor:install()
  if self.kind == "local" then
    errors.raise("AirbyteConnectorInstallationError",
      ("connector '%s' runs the local executable %s: luabyte does not install it"):format(self.name, self.path),
      { connector_name = self.name })
  end
end
Executor.uninstall = Executor.install

function Executor:_log_file()
  if self.log_file == nil then
    self.log_file = require("airbyte.logs").connector_log_file(self.name) or false
  end
  return self.log_file or nil
end

local function subclass()
  return class.new{ base = Executor }
end

-- builtin: `luabyte connector NAME ...`, a real child process of our own binary
function M.builtin(name)
  local exe = core.exe_path()
  if not exe then
    errors.raise("AirbyteConnectorExecutableNotFoundError",
      "cannot find the luabyte command to start built-in connector " .. name
        .. ": set LUABYTE_EXE (or lb_options.exe_path) to its path, or put luabyte on PATH",
      { connector_name = name })
  end
  return setmetatable({ kind = "builtin", name = name, prefix = { exe, "connector", name },
                        version = core.version }, Executor)
end

-- local: a path, or a name looked up on PATH (true = the connector's name)
function M.local_executable(name, path)
  if path == true then path = name end
  if type(path) ~= "string" then
    raise_input("local_executable must be a path, a program name or true", tostring(path))
  end
  local resolved = M.which(path)
  if not resolved then
    errors.raise("AirbyteConnectorExecutableNotFoundError",
      ("connector '%s': no executable '%s' (not a path to an executable file, nor on PATH)")
        :format(name, path),
      { connector_name = name, guidance = "Check the local_executable option or your PATH." })
  end
  log.write(("Using local `%s` executable: %s\n"):format(name, resolved))
  return setmetatable({ kind = "local", name = name, path = resolved, prefix = { resolved } }, Executor)
end

-- --- Python virtual environments -------------------------------------------

local Venv = subclass()
M.Venv = Venv

local function no_uv()
  local v = env("AIRBYTE_NO_UV")
  v = v and v:lower()
  return v == "1" or v == "true" or v == "yes"
end

-- Is this requirement a local file or directory (not a PyPI name)?
local function is_local_requirement(req)
  if req:match("^file:") or req:match("^%.?%.?/") or req:match("^~/") then return true end
  local f = io.open(req, "r")
  if f then f:close() return true end
  return false
end

-- venv(name, opts): opts = { pip_url, package_name, version, use_python,
-- install_root }. The venv is <install_root or AIRBYTE_INSTALL_DIR or
-- project dir>/.venv-<name>; the connector is <venv>/bin/<name>.
function M.venv(name, opts)
  opts = opts or {}
  local up = opts.use_python
  if up ~= nil and up ~= true and type(up) ~= "string" then
    raise_input("use_python must be true, false, an interpreter path or a version such as '3.11'",
      tostring(up))
  end
  local root = abspath(opts.install_root or env("AIRBYTE_INSTALL_DIR") or M.project_dir())
  local dir = root .. "/.venv-" .. name
  local package = opts.package_name or ("airbyte-" .. name)
  local pip_url = opts.pip_url or (package .. (opts.version and ("==" .. opts.version) or ""))
  if type(pip_url) ~= "string" then raise_input("pip_url must be a string", tostring(pip_url)) end
  local reqs = {}
  for tok in pip_url:gmatch("%S+") do reqs[#reqs + 1] = tok end   -- several requirements allowed
  if #reqs == 0 then raise_input("pip_url is empty", pip_url) end
  local self = setmetatable({
    kind = "venv", name = name, install_root = root, venv_dir = dir,
    bin_dir = dir .. "/bin", path = dir .. "/bin/" .. name, python = dir .. "/bin/python",
    package_name = package, pip_url = pip_url, requirements = reqs,
    target_version = opts.version, use_python = up,
  }, Venv)
  self.prefix = { self.path }
  return self
end

local function install_error(self, msg, lines)
  errors.raise("AirbyteConnectorInstallationError", msg, {
    connector_name = self.name, log_text = lines, log_file = self.log_file or nil,
    context = { venv = self.venv_dir, pip_url = self.pip_url },
  })
end

-- The interpreter that creates the venv: nil lets uv choose.
function Venv:_interpreter(uv)
  local up = self.use_python
  if up == nil or up == true then
    if uv then return nil end
    local py = M.which("python3") or M.which("python")
    if not py then install_error(self, ("cannot install connector '%s': no python3 on PATH"):format(self.name)) end
    return py
  end
  if up:find("/", 1, true) then
    if not core.executable(up) then
      install_error(self, ("use_python = '%s' is not an executable Python interpreter"):format(up))
    end
    return up
  end
  if up:match("^%d+%.%d+[%.%d]*$") or up:match("^%d+$") then
    if uv then return up end     -- uv finds that version (or fetches it)
    local py = M.which("python" .. up)
    if not py then
      install_error(self, ("use_python = '%s': no python%s on PATH (install it, pass the path of an "
        .. "interpreter, or put uv on PATH)"):format(up, up))
    end
    return py
  end
  local py = M.which(up)    -- a program name such as "pypy3"
  if not py then install_error(self, ("use_python = '%s': no such program on PATH"):format(up)) end
  return py
end

-- The two commands install() runs: { create = argv or nil, install = argv }.
-- create is nil when the venv already exists.
function Venv:install_commands()
  local uv = not no_uv() and M.which("uv") or nil
  local interp = self:_interpreter(uv)
  local create
  if not core.executable(self.python) then
    if uv then
      create = { uv, "venv", self.venv_dir }
      if interp then create[#create + 1] = "--python"; create[#create + 1] = interp end
    else
      create = { interp, "-m", "venv", self.venv_dir }
    end
  end
  local install
  if uv then
    install = { uv, "pip", "install", "--python", self.python }
  else
    install = { self.bin_dir .. "/pip", "install" }
  end
  -- A local package must install without PyPI: no index, and no isolated
  -- build env (which would download the build backend).
  local all_local = true
  for _, r in ipairs(self.requirements) do
    if r:sub(1, 1) ~= "-" and not is_local_requirement(r) then all_local = false end
  end
  if all_local then
    install[#install + 1] = "--no-index"
    install[#install + 1] = "--no-build-isolation"
  end
  for _, r in ipairs(self.requirements) do install[#install + 1] = r end
  return { create = create, install = install }
end

function Venv:_remove_venv()
  -- the path always ends in /.venv-<name>: never remove anything else
  assert(self.venv_dir:sub(-#("/.venv-" .. self.name)) == "/.venv-" .. self.name)
  run({ "rm", "-rf", "--", self.venv_dir }, { name = self.name })
end

function Venv:install()
  self._verified = nil
  local cmds = self:install_commands()
  local log = self:_log_file()
  if cmds.create then
    core.mkdir_p(self.install_root)
    local ok, how, lines = run(cmds.create, { name = self.name, log_file = log })
    if not ok then
      self:_remove_venv()
      install_error(self, ("cannot create the virtual environment of connector '%s' (%s): %s")
        :format(self.name, quote_argv(cmds.create), how), lines)
    end
  end
  local ok, how, lines = run(cmds.install, { name = self.name, log_file = log })
  if not ok then
    -- a venv made by this call is half-made: remove it so the next try starts clean
    if cmds.create then self:_remove_venv() end
    install_error(self, ("installing connector '%s' failed (%s): %s")
      :format(self.name, quote_argv(cmds.install), how), lines)
  end
  if not core.executable(self.path) then
    if cmds.create then self:_remove_venv() end
    install_error(self, ("installed '%s' for connector '%s', but it has no executable %s")
      :format(self.pip_url, self.name, self.path), lines)
  end
end

function Venv:uninstall()
  self._verified = nil
  self:_remove_venv()
end

-- The installed version of the package, read with importlib.metadata by the
-- venv's own Python; nil when not installed.
function Venv:get_installed_version()
  if not core.executable(self.python) then return nil end
  local ok, _, lines = run({ self.python, "-c",
    "import sys\nfrom importlib.metadata import version\nprint(version(sys.argv[1]))",
    self.package_name }, { name = self.name })
  if not ok then return nil end
  local v = lines[1]
  return v and v:match("^%s*(.-)%s*$") or nil
end

-- Installs when missing, repairs a venv without the executable, reinstalls
-- on a version mismatch; without auto_fix it raises instead. Checked once
-- per executor (every command calls it).
function Venv:ensure_installation(auto_fix)
  if self._verified then return end
  if not core.executable(self.path) then
    if not auto_fix then
      errors.raise("AirbyteConnectorExecutableNotFoundError",
        ("connector '%s' is not installed: no %s"):format(self.name, self.path),
        { connector_name = self.name,
          guidance = "Call :install(), or get the connector with install_if_missing = true." })
    end
    if core.executable(self.python) then self:_remove_venv() end   -- broken venv: start over
    self:install()
  end
  local want = self.target_version
  if want then
    local have = self:get_installed_version()
    if have ~= want then
      if not auto_fix then
        errors.raise("AirbyteConnectorInstallationError",
          ("connector '%s': version %s is installed, %s was asked for"):format(self.name, tostring(have), want),
          { connector_name = self.name, context = { venv = self.venv_dir },
            guidance = "Call :install() to install the requested version." })
      end
      self:install()
      have = self:get_installed_version()
      if have ~= want then
        install_error(self, ("connector '%s': asked for version %s but %s is installed after reinstalling")
          :format(self.name, want, tostring(have)))
      end
    end
  end
  self._verified = true
end

-- --- Docker -------------------------------------------------------------------

local Docker = subclass()
M.Docker = Docker

-- docker(name, opts): opts = { docker_image = true | "image[:tag]",
-- version, use_host_network }
function M.docker(name, opts)
  opts = opts or {}
  local image = opts.docker_image
  if image == nil or image == true then image = "airbyte/" .. name end
  if type(image) ~= "string" or image == "" then
    raise_input("docker_image must be true or an image name", tostring(image))
  end
  local tagged = image:find("@", 1, true) or image:match(":[^/]*$")
  if tagged then
    if opts.version then
      raise_input(("docker_image '%s' has a tag already: pass either a tagged image or version"):format(image),
        image)
    end
  else
    image = image .. ":" .. (opts.version or "latest")
  end
  local self = setmetatable({
    kind = "docker", name = name, image = image, use_host_network = opts.use_host_network and true or false,
    local_dir = M.project_dir() .. "/" .. name, temp_dir = M.temp_dir(),
  }, Docker)
  self.prefix = self:_prefix()
  return self
end

function Docker:_prefix()
  local p = { M.which("docker") or "docker", "run", "--rm", "-i",
              "--volume", self.local_dir .. ":/local",
              "--volume", self.temp_dir .. ":/airbyte/tmp" }
  if self.use_host_network then p[#p + 1] = "--network"; p[#p + 1] = "host" end
  p[#p + 1] = self.image
  return p
end

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

-- A host path under a mounted directory becomes the container's path (the
-- deepest mount wins: the project may well live under the temp directory).
function Docker:map_arg(a)
  if a:sub(1, 1) ~= "/" or not exists(a) then return a end
  local best
  for _, m in ipairs({ { self.temp_dir, "/airbyte/tmp" }, { self.local_dir, "/local" } }) do
    if a:sub(1, #m[1] + 1) == m[1] .. "/" and (not best or #m[1] > #best[1]) then best = m end
  end
  if best then return best[2] .. a:sub(#best[1] + 1) end
  log.write(("Warning: connector '%s': %s is not under a directory mounted into the container; "
    .. "passed unchanged\n"):format(self.name, a))
  return a
end

function Docker:argv(args)
  -- writes to /local land in <project>/<name>/ on the host: make it exist
  core.mkdir_p(self.local_dir)
  self.prefix = self:_prefix()
  local argv = {}
  for i, a in ipairs(self.prefix) do argv[i] = a end
  for _, a in ipairs(args) do argv[#argv + 1] = self:map_arg(a) end
  return argv
end

function Docker:ensure_installation()
  if not M.which("docker") then
    errors.raise("AirbyteConnectorExecutableNotFoundError",
      ("connector '%s' runs as the Docker image %s, but docker is not on PATH"):format(self.name, self.image),
      { connector_name = self.name,
        guidance = "Install Docker, or run the connector another way (pip_url, local_executable)." })
  end
end

-- Docker pulls the image on the first run: nothing to install.
function Docker:install() end

function Docker:uninstall()
  self:ensure_installation()
  local argv = { M.which("docker"), "rmi", self.image }
  local ok, how, lines = run(argv, { name = self.name, env = self.env, log_file = self:_log_file() })
  if not ok then
    errors.raise("AirbyteConnectorInstallationError",
      ("cannot remove the image of connector '%s' (%s): %s"):format(self.name, quote_argv(argv), how),
      { connector_name = self.name, log_text = lines })
  end
end

function Docker:get_installed_version()
  return self.image:match(":([^/:@]+)$")
end

-- --- declarative manifests ---------------------------------------------------------

local Manifest = subclass()
M.Manifest = Manifest

-- Where source_manifest = true looks for <name>/manifest.yaml, in order:
-- AIRBYTE_MANIFESTS_DIR, then <AIRBYTE_PROJECT_DIR or cwd>/manifests.
function M.manifest_dirs()
  local dirs = {}
  local e = env("AIRBYTE_MANIFESTS_DIR")
  if e then dirs[#dirs + 1] = abspath(e) end
  dirs[#dirs + 1] = M.project_dir() .. "/manifests"
  return dirs
end

-- The manifest file of `name` in the manifests directories, and every path tried.
function M.find_manifest(name)
  local tried = {}
  for _, d in ipairs(M.manifest_dirs()) do
    local p = d .. "/" .. name .. "/manifest.yaml"
    tried[#tried + 1] = p
    local f = io.open(p, "r")
    if f then f:close() return p, tried end
  end
  return nil, tried
end

-- manifest(name, source_manifest): true (find <name>/manifest.yaml), a path,
-- or a manifest as a Lua table. The connector runs as a real child process:
-- `luabyte connector --manifest FILE COMMAND ...`.
function M.manifest(name, source)
  local exe = core.exe_path()
  if not exe then
    errors.raise("AirbyteConnectorExecutableNotFoundError",
      "cannot find the luabyte binary to run the manifest of " .. name, { connector_name = name })
  end
  local path, keep
  if source == true then
    local tried
    path, tried = M.find_manifest(name)
    if not path then
      errors.raise("AirbyteConnectorExecutableNotFoundError",
        ("connector '%s': no declarative manifest found (looked for %s)"):format(name, table.concat(tried, ", ")),
        { connector_name = name,
          guidance = "Put the connector's manifest.yaml at one of those paths (AIRBYTE_MANIFESTS_DIR sets the "
            .. "first), or pass source_manifest = '/path/to/manifest.yaml'. luabyte never downloads manifests." })
    end
  elseif type(source) == "string" then
    if source:match("^https?://") then
      raise_input(("connector '%s': source_manifest is a URL; luabyte never downloads manifests: save the file "
        .. "and pass its path"):format(name), source)
    end
    if source:find("\n", 1, true) then
      raise_input("source_manifest must be a path, a manifest table or true, not YAML text", "<yaml text>")
    end
    local f = io.open(source, "r")
    if not f then
      errors.raise("AirbyteConnectorExecutableNotFoundError",
        ("connector '%s': cannot read the manifest %s"):format(name, source), { connector_name = name })
    end
    f:close()
    path = abspath(source)
  elseif type(source) == "table" then
    -- a YAML parser reads JSON: the table goes to a private temp file for the child
    local json = require "airbyte.json"
    local ok, text = pcall(json.encode, source)
    if not ok then raise_input("source_manifest table cannot be written as JSON: " .. tostring(text), "<table>") end
    local f, err = core.tempfile(text, ".json")
    if not f then errors.raise("PyAirbyteInternalError", err) end
    keep, path = f, f.path
  else
    raise_input("source_manifest must be true, a path or a manifest table", tostring(source))
  end
  return setmetatable({ kind = "manifest", name = name, manifest_path = path, prefix = { exe, "connector",
                        "--manifest", path }, manifest_file = keep }, Manifest)
end

function Manifest:ensure_installation()
  local f = io.open(self.manifest_path, "r")
  if not f then
    errors.raise("AirbyteConnectorExecutableNotFoundError",
      ("connector '%s': the manifest %s is gone"):format(self.name, self.manifest_path), { connector_name = self.name })
  end
  f:close()
end

-- The manifest's `version` field (PyAirbyte reports it as the connector version).
function Manifest:get_installed_version()
  if self.version == nil then
    local f = io.open(self.manifest_path, "rb")
    local text = f and f:read("a")
    if f then f:close() end
    local ok, m = pcall(require("airbyte.yaml").decode, text or "", self.manifest_path)
    self.version = ok and type(m) == "table" and m.version and tostring(m.version) or false
  end
  return self.version or nil
end

function Manifest:install() end
function Manifest:uninstall() end

-- --- no executor ----------------------------------------------------------------

local Noop = subclass()
M.Noop = Noop

-- noop(name, opts): opts = { metadata, version }. Only the spec is
-- available: from the built-in module, else from the registry entry.
function M.noop(name, opts)
  opts = opts or {}
  return setmetatable({ kind = "noop", name = name, prefix = {}, metadata = opts.metadata,
                        version = opts.version }, Noop)
end

local function no_process(self)
  errors.raise("AirbyteConnectorExecutableNotFoundError",
    ("connector '%s' has no executor (no_executor = true): only its spec is available"):format(self.name),
    { connector_name = self.name,
      guidance = "Get the connector without no_executor to run commands other than spec." })
end

function Noop:spec()
  local spec = M.is_builtin(self.name) and M.builtin_spec(self.name)
    or self.metadata and self.metadata.spec
  if not spec then
    errors.raise("AirbyteConnectorMissingSpecError",
      ("connector '%s' has no executor (no_executor = true) and the registry has no spec for it")
        :format(self.name), { connector_name = self.name })
  end
  return spec
end

Noop.argv = no_process
Noop.ensure_installation = no_process
function Noop:install() end
function Noop:uninstall() end

function Noop:get_installed_version()
  return self.version or (self.metadata and self.metadata.latest_available_version)
end

-- --- selection ------------------------------------------------------------------

-- The options of the venv executor for `name` (PyAirbyte: pip_url given,
-- else the registry's PyPI package, else airbyte-<name>).
local function venv_options(name, opts, meta, version)
  if not opts.pip_url and meta and not meta.pypi_package_name then
    errors.raise("AirbyteConnectorNotPyPiPublishedError",
      ("connector '%s' is not published on PyPI (%s connector)"):format(name, meta.language or "a non-Python"),
      { connector_name = name, guidance = "Pass pip_url, or run it with docker_image = true." })
  end
  if version == "latest" then version = meta and meta.latest_available_version or nil end
  return { pip_url = opts.pip_url, version = version, install_root = opts.install_root,
           package_name = meta and meta.pypi_package_name or nil,
           use_python = opts.use_python ~= false and opts.use_python or nil }
end

local function venv_executor(name, opts, meta, version)
  local ex = M.venv(name, venv_options(name, opts, meta, version))
  if opts.install_if_missing ~= false then ex:ensure_installation(true) end
  return ex
end

-- Explicit options, grouped by the executor they ask for.
local function explicit_methods(opts)
  local order, labels = {}, {}
  local function add(method, label)
    if not labels[method] then labels[method] = {}; order[#order + 1] = method end
    table.insert(labels[method], label)
  end
  if opts.local_executable then add("local", "local_executable") end
  if opts.docker_image then add("docker", "docker_image") end
  if opts.use_python == false then add("docker", "use_python = false") end
  if opts.pip_url then add("python", "pip_url") end
  if opts.use_python then add("python", "use_python") end
  if opts.source_manifest then add("manifest", "source_manifest") end
  if opts.no_executor then add("noop", "no_executor") end
  local all = {}
  for _, m in ipairs(order) do
    for _, l in ipairs(labels[m]) do all[#all + 1] = l end
  end
  return order, all
end

-- get_executor(name, opts) chooses how to run connector `name`:
--  1. opts.executor, as is;
--  2. explicit options (local_executable, docker_image / use_python = false,
--     pip_url / use_python, no_executor), only one kind at a time;
--  3. a connector built into luabyte (unless a version other than
--     "latest" is pinned: then the real connector of that version);
--  4. an executable <name> on PATH (not when a version is pinned);
--  5. the registry: manifest-only with <name>/manifest.yaml in a manifests
--     directory (see manifest_dirs) -> the declarative executor; Python
--     with a PyPI package -> venv; otherwise the Docker image when docker
--     is on PATH. Not registered -> AirbyteConnectorNotRegisteredError.
-- opts: version, pip_url, use_python, local_executable, docker_image,
-- use_host_network, install_if_missing (default true), install_root,
-- no_executor, source_manifest (true | path | manifest table).
-- The get_executor options, which get_source and get_destination accept too.
M.OPTIONS = { "executor", "version", "pip_url", "use_python", "local_executable", "docker_image",
              "use_host_network", "install_if_missing", "install_root", "no_executor", "source_manifest" }

function M.get_executor(name, opts)
  opts = opts or {}
  if opts.executor then return opts.executor end
  local version = opts.version
  if version ~= nil and type(version) ~= "string" then
    raise_input("version must be a string", tostring(version))
  end
  local methods, labels = explicit_methods(opts)
  if #methods > 1 then
    raise_input(("connector '%s': conflicting executor options %s"):format(name, table.concat(labels, ", ")),
      table.concat(labels, ", "),
      "Pass only one way to run a connector: local_executable, docker_image (or use_python = false), "
        .. "pip_url/use_python, or no_executor.")
  end
  local method = methods[1]
  if version and opts.local_executable then
    raise_input(("connector '%s': version cannot be used with local_executable"):format(name),
      "version, local_executable")
  end
  if version and opts.pip_url then
    raise_input(("connector '%s': version cannot be used with pip_url (pin the version inside pip_url)")
      :format(name), "version, pip_url")
  end
  if method == "manifest" then
    return M.manifest(name, opts.source_manifest)
  elseif method == "local" then
    return M.local_executable(name, opts.local_executable)
  elseif method == "docker" then
    return M.docker(name, { docker_image = opts.docker_image or true, version = version,
                            use_host_network = opts.use_host_network })
  elseif method == "noop" then
    return M.noop(name, { metadata = registry.lookup(name), version = version })
  elseif method == "python" then
    return venv_executor(name, opts, registry.lookup(name), version)
  end

  local pinned = version ~= nil and version ~= "latest"
  if M.is_builtin(name) and not pinned then return M.builtin(name) end
  if not pinned then
    local path = M.which(name)
    if path then return M.local_executable(name, path) end
  end
  local meta = registry.get_connector_metadata(name)
  local manifest_tried
  if meta.language == "manifest-only" then
    local path, tried = M.find_manifest(name)
    if path then return M.manifest(name, path) end
    manifest_tried = tried
  end
  if meta.pypi_package_name and meta.language == "python" then
    return venv_executor(name, opts, meta, version)
  end
  if M.which("docker") then
    return M.docker(name, { docker_image = meta.docker_repository, version = version ~= "latest" and version or nil,
                            use_host_network = opts.use_host_network })
  end
  local why = meta.language == "manifest-only"
    and ("a manifest-only connector without a local manifest (looked for %s) nor Docker image to run")
      :format(table.concat(manifest_tried or {}, ", "))
    or ("published only as a Docker image (%s connector)"):format(meta.language or "a non-Python")
  errors.raise("AirbyteConnectorExecutableNotFoundError",
    ("connector '%s' is %s, and docker is not on PATH"):format(name, why),
    { connector_name = name,
      guidance = "Install Docker, or pass local_executable = '/path/to/" .. name .. "'." })
end

M.Executor = Executor
return M
