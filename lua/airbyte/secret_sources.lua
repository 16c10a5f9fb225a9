-- Secret lookup: get_secret and its sources (environment variables, the
-- project's .env file, registered secret managers, an interactive prompt).
--
-- Sources, in order: environment variables ("env"), the .env file of the
-- project directory ("dotenv"), secret managers registered with
-- register_secret_manager, and last an interactive prompt ("prompt") when
-- stdin and stderr are terminals. get_secret returns a plain string (Lua
-- has no str subclass to hide it) but registers it with secret_mask, so it
-- is masked wherever it would be shown. airbyte.secrets re-exports this API.
local core = require "airbyte.core"
local errors = require "airbyte.errors"
local options = require "airbyte.options"
local dotenv = require "airbyte.dotenv"
local log = require "airbyte.log"
local mask = require "airbyte.secret_mask"

local M = {}

-- The values SecretSourceEnum has in PyAirbyte; only these three exist here
-- (no Colab, and Google Secret Manager is a manager one registers).
M.SecretSourceEnum = { ENV = "env", DOTENV = "dotenv", PROMPT = "prompt" }

M.REFERENCE_PREFIX = "secret_reference::"   -- airbyte/secrets/hydration.py

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
        tried[#tried + 1] = src == dotenv_source and ("dotenv (" .. dotenv.path() .. ")") or src.name
        local v = src:get_secret(name)
        if type(v) == "number" then v = tostring(v) end
        if type(v) == "string" and v ~= "" then
          mask.register(v)
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
        name, name, dotenv.path()) })
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

return M
