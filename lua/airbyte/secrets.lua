-- Secrets (PyAirbyte's airbyte/secrets): look secrets up, resolve
-- references to them in configs, and keep their values out of every text
-- we print or log.
--
--   local secrets = require "airbyte.secrets"
--   local key = secrets.get_secret("GITHUB_TOKEN")       -- env, .env, prompt
--   local key = secrets.get_secret("X", { default = "dummy", allow_prompt = false })
--   secrets.hydrate({ token = "secret_reference::GITHUB_TOKEN" })
--   secrets.mask("token is ghp_...")  -> "token is ****"
--
-- Sources, in order: environment variables ("env"), the .env file of the
-- project directory ("dotenv"), secret managers registered with
-- register_secret_manager, and last an interactive prompt ("prompt") when
-- stdin and stderr are terminals. get_secret returns a plain string (Lua
-- has no str subclass to hide it) but registers it, so it is masked
-- wherever it would be shown.
--
-- airbyte.connector requires this module: hydrate resolves
-- "secret_reference::NAME" just before a config file is written, and
-- secret_values lists the values the process layer masks in connector
-- logs. The values live in the runtime's masker, which errors.mask (and so
-- every error text and progress line) uses as well.
local core = require "airbyte.core"
local errors = require "airbyte.errors"
local options = require "airbyte.options"
local dotenv = require "airbyte.dotenv"
local spec_secrets = require "airbyte.spec_secrets"
local log = require "airbyte.log"

local M = {}

-- The values SecretSourceEnum has in PyAirbyte; only these three exist here
-- (no Colab, and Google Secret Manager is a manager one registers).
M.SecretSourceEnum = { ENV = "env", DOTENV = "dotenv", PROMPT = "prompt" }

M.REFERENCE_PREFIX = "secret_reference::"   -- airbyte/secrets/hydration.py
M.CLI_PREFIX = "SECRET:"                     -- pyab's --config values
M.MIN_LENGTH = core.MASK_MIN                 -- shorter values would mask ordinary text

-- --- the values to mask -------------------------------------------------------
-- They live in the runtime's masker (runtime/src/mask.c), which the process
-- layer uses for connector logs too: one set of values, one set of rules
-- (shorter than MIN_LENGTH bytes: not masked; longest first; every JSON
-- spelling of a value: \uXXXX escapes in either case, surrogate pairs,
-- \/ and the short escapes, in any mix).

-- register(value): value (a string, or a number written as a connector
-- would print it) is masked from now on.
function M.register(value)
  if type(value) == "number" then value = tostring(math.tointeger(value) or value) end
  if type(value) ~= "string" then return end
  core.mask_add(value)
end

-- values() -> the registered values, longest first (a copy).
M.values = core.mask_values

-- Forgets every registered value; for tests.
M.clear = core.mask_clear

-- mask(text) -> text with every spelling of a registered value replaced by
-- "****". Anything but a string is returned unchanged.
M.mask = core.mask

-- .env files: parsed by airbyte.dotenv.
M.parse_dotenv = dotenv.parse
M.dotenv_path = dotenv.path

-- spec_secret_values(connection_specification, config): airbyte.spec_secrets.
M.spec_secret_values = spec_secrets.values

-- --- secret sources ---------------------------------------------------------------
-- A source (a "secret manager") is a table { name = "...",
-- get_secret = function(self, name) -> string | nil }.

local env_source = { name = "env" }
function env_source:get_secret(name)
  return os.getenv(name)
end

local dotenv_source = { name = "dotenv" }
function dotenv_source:get_secret(name)
  local f = io.open(dotenv.path(), "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return dotenv.parse(text or "")[name]
end

local function truthy_env(name)
  local v = os.getenv(name)
  return v ~= nil and v ~= "" and v ~= "0" and v:lower() ~= "false"
end

-- A prompt needs someone to answer it: stdin and stderr on a terminal, and
-- not a CI job (where a prompt would hang until the job times out).
function M.is_interactive()
  return core.isatty(0) and core.isatty(2) and not truthy_env("CI")
end

local prompted = {}   -- a value typed once is not asked for again

local prompt_source = { name = "prompt" }
function prompt_source:get_secret(name)
  if prompted[name] then return prompted[name] end
  if not M.is_interactive() then return nil end
  log.write(("Enter the value of secret '%s' (input is hidden): "):format(name))
  log.flush()
  -- stty acts on the shell's stdin, which is our terminal
  local hidden = os.execute("stty -echo 2>/dev/null")
  local ok, line = pcall(io.read, "l")
  if hidden then os.execute("stty echo 2>/dev/null") end
  log.write("\n")
  if not ok or line == nil or line == "" then return nil end
  prompted[name] = line
  return line
end

local builtin_sources = { env = env_source, dotenv = dotenv_source, prompt = prompt_source }
local disabled = {}
local managers = {}   -- registered with register_secret_manager, in lookup order

-- register_secret_manager(manager, {as_backup =, replace_existing =}):
-- manager = { name =, get_secret = fn(self, name) }. It is asked before
-- env/.env, or after them with as_backup; replace_existing drops the
-- managers registered before.
local REGISTER_SECRET_MANAGER_OPTIONS = options.allow{ "as_backup", "replace_existing" }
function M.register_secret_manager(manager, opts)
  opts = options.check(opts, REGISTER_SECRET_MANAGER_OPTIONS, "register_secret_manager")
  if type(manager) ~= "table" or type(manager.get_secret) ~= "function" then
    errors.raise("PyAirbyteInputError", "a secret manager is a table with a get_secret(self, name) method")
  end
  manager.name = manager.name or "custom"
  if opts.replace_existing then managers = {} end
  for i = #managers, 1, -1 do
    if managers[i] == manager then table.remove(managers, i) end
  end
  if opts.as_backup then
    managers[#managers + 1] = manager
    manager._backup = true
  else
    table.insert(managers, 1, manager)
    manager._backup = false
  end
  disabled[manager.name] = nil
end

-- disable_secret_source(name_or_manager): it is no longer asked by default.
function M.disable_secret_source(source)
  local name = type(source) == "table" and source.name or source
  disabled[name] = true
  for i = #managers, 1, -1 do
    if managers[i] == source or managers[i].name == name then table.remove(managers, i) end
  end
end

-- enable_secret_source(name): undoes disable_secret_source for a built-in source.
function M.enable_secret_source(name)
  disabled[name] = nil
end

-- The default lookup order: front managers, env, .env, backup managers, prompt.
local function default_sources()
  local out = {}
  for _, m in ipairs(managers) do if not m._backup then out[#out + 1] = m end end
  for _, n in ipairs({ "env", "dotenv" }) do
    if not disabled[n] then out[#out + 1] = builtin_sources[n] end
  end
  for _, m in ipairs(managers) do if m._backup then out[#out + 1] = m end end
  if not disabled.prompt then out[#out + 1] = prompt_source end
  return out
end

local function resolve_sources(sources)
  if sources == nil then return default_sources() end
  if type(sources) == "string" or (type(sources) == "table" and sources.get_secret) then
    sources = { sources }
  end
  local out, prompt = {}, nil
  for _, s in ipairs(sources) do
    if type(s) == "string" then
      local b = builtin_sources[s]
      if not b then
        errors.raise("PyAirbyteInputError", ("unknown secret source '%s' (known: env, dotenv, prompt)"):format(s),
          { input_value = s })
      end
      s = b
    elseif type(s) ~= "table" or type(s.get_secret) ~= "function" then
      errors.raise("PyAirbyteInputError", "a secret source is a name or a table with get_secret(self, name)")
    end
    -- the prompt always comes last, as in PyAirbyte: every quiet source first
    if s == prompt_source then prompt = s else out[#out + 1] = s end
  end
  if prompt then out[#out + 1] = prompt end
  return out
end

-- try_get_secret(name, opts) -> value | nil: get_secret without the error.
local GET_SECRET_OPTIONS = options.allow{ "sources", "default", "allow_prompt" }
function M.try_get_secret(name, opts)
  options.check(opts, GET_SECRET_OPTIONS, "try_get_secret")
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.default = nil
  local ok, v = pcall(M.get_secret, name, o)
  if ok then return v end
  if errors.is(v, "PyAirbyteSecretNotFoundError") then return (opts or {}).default end
  error(v, 0)
end

-- get_secret(name, {sources =, default =, allow_prompt = true}) -> string.
-- Raises PyAirbyteSecretNotFoundError (secret_name, sources) when no
-- source has it and there is no default. A default is returned without
-- prompting: the caller has said what to use.
function M.get_secret(name, opts)
  opts = options.check(opts, GET_SECRET_OPTIONS, "get_secret")
  if type(name) ~= "string" or name == "" then
    errors.raise("PyAirbyteInputError", "get_secret needs a secret name", { input_value = tostring(name) })
  end
  if name:sub(1, #M.REFERENCE_PREFIX) == M.REFERENCE_PREFIX then name = name:sub(#M.REFERENCE_PREFIX + 1) end
  local tried = {}
  local may_prompt = opts.allow_prompt ~= false and opts.default == nil
  for _, src in ipairs(resolve_sources(opts.sources)) do
    if src ~= prompt_source or may_prompt then
      if src == prompt_source and not prompted[name] and not M.is_interactive() then
        tried[#tried + 1] = "prompt (skipped: not an interactive terminal)"
      else
        tried[#tried + 1] = src == dotenv_source and ("dotenv (" .. M.dotenv_path() .. ")") or src.name
        local v = src:get_secret(name)
        if type(v) == "number" then v = tostring(v) end
        if type(v) == "string" and v ~= "" then
          M.register(v)
          return v
        end
      end
    end
  end
  if opts.default ~= nil then return opts.default end
  errors.raise("PyAirbyteSecretNotFoundError",
    ("secret '%s' was not found (looked in: %s)"):format(name, table.concat(tried, ", ")),
    { secret_name = name, sources = tried,
      guidance = ("Set the environment variable %s, or add a line %s=... to %s."):format(
        name, name, M.dotenv_path()) })
end

-- is_secret_available(name, opts) -> boolean; never prompts.
function M.is_secret_available(name, opts)
  options.check(opts, GET_SECRET_OPTIONS, "is_secret_available")
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.allow_prompt, o.default = false, nil
  local ok = pcall(M.get_secret, name, o)
  return ok
end

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
    if v:sub(1, #prefix) == prefix then return M.get_secret(v:sub(#prefix + 1), opts) end
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
    for _, v in ipairs(spec_secrets.values(spec.connectionSpecification, hydrated)) do M.register(v) end
  end
  return M.values()
end

return M
