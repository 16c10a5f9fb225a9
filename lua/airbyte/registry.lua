-- The connector registry (PyAirbyte's airbyte/registry.py): which
-- connectors exist, in which language, on PyPI or only as Docker images.
--
--   registry.get_available_connectors([install_type]) -> sorted names
--   registry.get_connector_metadata(name) -> metadata, or raises
--       AirbyteConnectorNotRegisteredError
--   registry.lookup(name) -> metadata or nil (never raises for a miss)
--
-- The registry is Airbyte's format ({ sources = [...], destinations = [...] }).
-- By default it is the one bundled with luabyte (airbyte.registry_data);
-- AIRBYTE_LOCAL_REGISTRY=<file> replaces it and "0", "F" or "FALSE"
-- disables it. luabyte never downloads a registry: a URL there is an error,
-- so nothing reaches the network unless an executor is asked to install.
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local log = require "airbyte.log"

local M = {}

-- Environment lookups go through here so tests can swap them (Lua cannot
-- set the environment of the running process).
M.getenv = os.getenv

local function env(k)
  local v = M.getenv(k)
  if v == "" then return nil end
  return v
end
M.env = env   -- the executors read the environment through it too

-- Install types, PyAirbyte's InstallType plus "builtin" (shipped with luabyte).
M.install_types = { "builtin", "python", "yaml", "docker", "java" }

local loaded = {}   -- registry source ("<bundled>" or a path) -> { list, by_name }

function M.reset()
  loaded = {}
end

-- Where the registry comes from: "<bundled>", false (disabled) or a path.
local function origin()
  local v = env("AIRBYTE_LOCAL_REGISTRY")
  if not v then return "<bundled>" end
  local u = v:upper()
  if u == "0" or u == "F" or u == "FALSE" then return false end
  return v
end

local function registry_error(msg, path)
  errors.raise("AirbyteConnectorRegistryError", msg, {
    context = path and { registry_file = path } or nil,
    guidance = "AIRBYTE_LOCAL_REGISTRY must name a JSON file in Airbyte's registry format "
      .. "({\"sources\": [...], \"destinations\": [...]}), or be unset to use the bundled registry.",
  })
end

local function read_registry_file(path)
  if path:match("^https?://") then
    registry_error(("AIRBYTE_LOCAL_REGISTRY is a URL (%s): luabyte reads the registry from a local "
      .. "file and never downloads it; save the file and point AIRBYTE_LOCAL_REGISTRY at it"):format(path), path)
  end
  local f, err = io.open(path, "rb")
  if not f then
    registry_error(("cannot read the connector registry file %s (AIRBYTE_LOCAL_REGISTRY): %s"):format(path, err), path)
  end
  local text = f:read("a")
  f:close()
  local ok, data = pcall(json.decode, text or "")
  if not ok then
    registry_error(("the connector registry file %s (AIRBYTE_LOCAL_REGISTRY) is not valid JSON: %s")
      :format(path, tostring(data)), path)
  end
  return data
end

local function is_list(v)
  if type(v) ~= "table" then return false end
  local n = #v
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
  end
  return true
end

-- The language of an entry: its `language` field, else a `language:` tag.
local function language_of(entry)
  if type(entry.language) == "string" then return entry.language end
  if is_list(entry.tags) then
    for _, t in ipairs(entry.tags) do
      local l = type(t) == "string" and t:match("^language:(.+)$")
      if l then return l end
    end
  end
  return nil
end

-- PyAirbyte's ConnectorMetadata, from one registry entry, plus what luabyte
-- adds (builtin, docker image, the raw entry, its spec).
local function metadata_of(entry, kind)
  local name = entry.dockerRepository:gsub("^airbyte/", "")
  local pypi = type(entry.remoteRegistries) == "table" and entry.remoteRegistries.pypi
  local package
  if type(pypi) == "table" and pypi.enabled == true and type(pypi.packageName) == "string" then
    package = pypi.packageName
  end
  local language = language_of(entry)
  local builtin = type(entry.luabyte) == "table" and entry.luabyte.builtin == true
  local types = {}
  if builtin then types[#types + 1] = "builtin" end
  if package and language == "python" then types[#types + 1] = "python" end
  if language == "manifest-only" then types[#types + 1] = "yaml" end
  types[#types + 1] = "docker"   -- every registry connector has an image
  if language == "java" then types[#types + 1] = "java" end
  local tag = type(entry.dockerImageTag) == "string" and entry.dockerImageTag or nil
  local suggested = type(entry.suggestedStreams) == "table" and entry.suggestedStreams.streams or nil
  return {
    name = name,
    connector_type = kind,
    display_name = entry.name,
    latest_available_version = tag,
    pypi_package_name = package,
    language = language,
    install_types = types,
    -- luabyte runs a built-in before anything else; then YAML > PYTHON > DOCKER as PyAirbyte
    default_install_type = types[1],
    builtin = builtin,
    docker_repository = entry.dockerRepository,
    docker_image = entry.dockerRepository .. ":" .. (tag or "latest"),
    definition_id = entry.sourceDefinitionId or entry.destinationDefinitionId,
    documentation_url = entry.documentationUrl,
    release_stage = entry.releaseStage,
    support_level = entry.supportLevel,
    suggested_streams = is_list(suggested) and suggested or nil,
    spec = type(entry.spec) == "table" and entry.spec or nil,
    entry = entry,
  }
end

-- Checks the shape and indexes the entries by connector name.
local function index(data, path)
  local where = path or "the bundled registry"
  if type(data) ~= "table" or is_list(data) and next(data) ~= nil then
    registry_error(("the connector registry %s is not a JSON object with 'sources' and 'destinations'")
      :format(where), path)
  end
  if data.sources == nil and data.destinations == nil then
    registry_error(("the connector registry %s has neither 'sources' nor 'destinations'"):format(where), path)
  end
  local list, by_name = {}, {}
  for _, kind in ipairs({ "source", "destination" }) do
    local key = kind .. "s"
    local entries = data[key]
    if entries ~= nil and not is_list(entries) then
      registry_error(("the connector registry %s: '%s' must be an array"):format(where, key), path)
    end
    for i, entry in ipairs(entries or {}) do
      if type(entry) ~= "table" or type(entry.dockerRepository) ~= "string" or entry.dockerRepository == "" then
        registry_error(("the connector registry %s: %s[%d] has no dockerRepository"):format(where, key, i - 1), path)
      end
      local m = metadata_of(entry, kind)
      if not by_name[m.name] then list[#list + 1] = m end
      by_name[m.name] = m
    end
  end
  return { list = list, by_name = by_name }
end

local function load()
  local from = origin()
  if from == false then return { list = {}, by_name = {} } end
  local reg = loaded[from]
  if reg then return reg end
  if from == "<bundled>" then
    reg = index(require("airbyte.registry_data"), nil)
  else
    reg = index(read_registry_file(from), from)
  end
  loaded[from] = reg
  return reg
end

-- The metadata of `name`, or nil when the registry does not list it.
function M.lookup(name)
  return load().by_name[name]
end

function M.get_connector_metadata(name)
  local reg = load()
  local m = reg.by_name[name]
  if m then return m end
  local from = origin()
  errors.raise("AirbyteConnectorNotRegisteredError",
    ("connector '%s' is not in the connector registry (%s)"):format(name,
      from == false and "the registry is disabled by AIRBYTE_LOCAL_REGISTRY"
      or from == "<bundled>" and "the one bundled with luabyte" or from),
    { connector_name = name,
      guidance = "Check the name. A connector outside the registry can still run with "
        .. "local_executable, pip_url or docker_image, or from an executable of that name on PATH.",
      context = { registry = from == false and "disabled" or from } })
end

-- Is `docker` on PATH? (asked of executors, which own PATH lookups)
local function have_docker()
  return require("airbyte.executors").which("docker") ~= nil
end

local function has(m, t)
  for _, x in ipairs(m.install_types) do
    if x == t then return true end
  end
  return false
end

-- get_available_connectors(install_type): names of registry connectors, sorted.
--   "installable" (default): all when docker is on PATH, else those luabyte
--     can run without it (built-in and Python ones)
--   "python", "yaml" (manifest-only), "java", "builtin": of that kind
--   "docker", "any", "all": all of them
function M.get_available_connectors(install_type)
  local t = install_type == nil and "installable" or install_type
  if type(t) ~= "string" then
    errors.raise("PyAirbyteInputError", "install_type must be a string", { input_value = tostring(t) })
  end
  t = t:lower()
  local want
  if t == "installable" then
    if have_docker() then
      want = function() return true end
    else
      want = function(m) return has(m, "python") or has(m, "builtin") end
    end
  elseif t == "docker" or t == "any" or t == "all" then
    want = function() return true end
  elseif t == "python" or t == "yaml" or t == "java" or t == "builtin" then
    if t == "java" then
      log.write("Warning: Java connectors run as Docker images; docker must be on PATH to use them.\n")
    end
    want = function(m) return has(m, t) end
  else
    errors.raise("PyAirbyteInputError",
      ("unknown install_type '%s'"):format(t),
      { input_value = t, guidance = "Use one of: installable, python, yaml, java, docker, builtin, any." })
  end
  local names = {}
  for _, m in ipairs(load().list) do
    if want(m) then names[#names + 1] = m.name end
  end
  table.sort(names)
  return names
end

return M
