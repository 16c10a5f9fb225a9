-- The luabyte subcommands, after PyAirbyte's `pyab` (airbyte/cli/pyab.py):
--
--   luabyte validate --connector X [--config FILE_OR_JSON]
--   luabyte sync --source X --destination Y --Sconfig C --Dconfig C [--streams a,b] [--cache|--no-cache]
--   luabyte benchmark [--source X | --destination Y] [--config C] [--streams a,b] [--num-records 5e5]
--   luabyte connectors [--type builtin|python|docker|yaml|java|any|installable]
--
-- runtime/cli/main.c calls M.main(subcommand, args). Exit status: 0 done,
-- 1 failed (the error on stderr), 2 usage error (the usage on stderr).
local core = require "airbyte.core"
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local secrets = require "airbyte.secrets"
local log = require "airbyte.log"
local class = require "airbyte.class"

local M = {}

local CONNECTOR_HELP = [[
A connector is a name (source-faker, destination-duckdb), a Docker image
(anything with ':', e.g. airbyte/source-faker:6.2.0; the name is the image's
base name), or a path to an executable (anything starting with '.' or
containing '/'; the name is the file's name without its extension).
A config is a path to a JSON file or inline JSON starting with '{'. String
values "SECRET:NAME" anywhere in it are replaced by the secret NAME (from the
environment, the .env file of the project directory, or a prompt).
]]

local usages = {
  validate = [[
usage: luabyte validate --connector CONNECTOR [--config CONFIG]

Prints the connector's spec (YAML, on stderr). With --config: checks the
config against the spec, then runs the connector's check.

options:
  --connector CONNECTOR   the connector to validate
  --config CONFIG         its config
  -h, --help              print this help
]] .. "\n" .. CONNECTOR_HELP,
  sync = [[
usage: luabyte sync --source SOURCE --destination DESTINATION
                    --Sconfig CONFIG --Dconfig CONFIG [--streams NAMES] [--cache | --no-cache]

Reads the source and writes its records to the destination (full refresh:
no state is loaded or kept unless --cache is given).

options:
  --source SOURCE            the source connector
  --destination DESTINATION  the destination connector
  --Sconfig CONFIG           the source's config
  --Dconfig CONFIG           the destination's config
  --streams NAMES            streams to sync: a,b or repeated (default: all)
  --cache                    go through the default cache, keeping states
  --no-cache                 straight from source to destination (default)
  -h, --help                 print this help
]] .. "\n" .. CONNECTOR_HELP,
  benchmark = [[
usage: luabyte benchmark [--source SOURCE | --destination DESTINATION] [--config CONFIG]
                         [--streams NAMES] [--num-records N]

Times a write with no cache. Without --source the source is the built-in
source-faker generating N users; without --destination the destination is
destination-dev-null. --config is the config of the connector given.

options:
  --source SOURCE            benchmark this source (into destination-dev-null)
  --destination DESTINATION  benchmark this destination (fed by source-faker)
  --config CONFIG            the config of that connector
  --streams NAMES            streams to read: a,b or repeated (default: users
                             of source-faker, all of another source)
  --num-records N            records source-faker generates: 5e5 (default),
                             1_000_000, 2.4e6
  -h, --help                 print this help
]] .. "\n" .. CONNECTOR_HELP,
  connectors = [[
usage: luabyte connectors [--type TYPE]

Lists connectors, one name per line. TYPE: builtin (shipped with luabyte),
installable (default), python, docker, java, yaml, any (or all). Without the
connector registry only the built-in connectors are known.

options:
  --type TYPE   which connectors
  -h, --help    print this help
]],
}

local USAGE = "usage: luabyte {validate|sync|benchmark|connectors} [--help]\n"

-- A usage error: main() prints the message and the usage, exit status 2.
local Usage = class.new()

local function usage_error(fmt, ...)
  error(setmetatable({ message = fmt:format(...) }, Usage), 0)
end

-- --- arguments ------------------------------------------------------------------

-- parse(args, spec): spec[name] = { value = true } (takes a value),
-- { multi = true } (may repeat; a list), { flag = key, set = v } (no value:
-- stores v under key). "--name value" and "--name=value" both work.
local function parse(args, spec)
  local out, i = { help = false }, 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then
      out.help = true
    elseif a:sub(1, 2) == "--" and #a > 2 then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or a:sub(3)
      local o = spec[name]
      if not o then usage_error("unknown option '--%s'", name) end
      if o.flag then
        if value then usage_error("option '--%s' takes no value", name) end
        out[o.flag] = o.set
      else
        if value == nil then
          i = i + 1
          value = args[i]
          if value == nil then usage_error("option '--%s' needs a value", name) end
        end
        if o.multi then
          out[name] = out[name] or {}
          table.insert(out[name], value)
        else
          out[name] = value
        end
      end
    else
      usage_error("unexpected argument '%s'", a)
    end
    i = i + 1
  end
  return out
end

-- "--streams a,b --streams c" -> { "a", "b", "c" }; nil when not given.
local function stream_list(values)
  if not values then return nil end
  local out = {}
  for _, v in ipairs(values) do
    for name in v:gmatch("[^,]+") do
      name = name:match("^%s*(.-)%s*$")
      if name ~= "" then out[#out + 1] = name end
    end
  end
  if #out == 0 then usage_error("--streams names no stream") end
  if #out == 1 and out[1] == "*" then return "*" end
  return out
end

-- "5e5", "1_000_000", "2.4e6" -> a positive integer.
function M.parse_count(text)
  local n = tonumber((tostring(text):gsub("_", "")))
  local i = n and math.tointeger(n) or (n and n == math.floor(n) and n < 2^53 and math.tointeger(math.floor(n)))
  if not i or i < 1 then return nil end
  return i
end

-- --- connectors and configs ----------------------------------------------------

-- resolve_connector(text) -> name, get_source/get_destination options, as
-- pyab resolves --connector/--source/--destination.
function M.resolve_connector(text)
  if text:find(":", 1, true) then
    local base = text:match("([^/]+)$")
    return (base:gsub(":.*$", "")), { docker_image = text }
  end
  if text:sub(1, 1) == "." or text:find("/", 1, true) then
    local base = text:match("([^/]+)$") or text
    local stem = base:match("^(.+)%.[^.]*$") or base
    return stem, { local_executable = text }
  end
  return text, {}
end

-- load_config(text) -> config table: a JSON file, or inline JSON starting
-- with '{'; "SECRET:NAME" values resolved with get_secret.
function M.load_config(text, what)
  local raw, origin
  if text:match("^%s*{") then
    raw, origin = text, "inline JSON"
  else
    local f, err = io.open(text, "rb")
    if not f then
      errors.raise("PyAirbyteInputError", ("cannot read %s file: %s"):format(what, err), { input_value = text })
    end
    raw, origin = f:read("a"), text
    f:close()
  end
  local ok, config = pcall(json.decode, raw)
  if not ok or type(config) ~= "table" then
    errors.raise("PyAirbyteInputError", ("%s (%s) is not a JSON object%s"):format(what, origin,
      ok and "" or (": " .. tostring(config))),
      { guidance = "Pass a path to a JSON file, or inline JSON starting with '{'." })
  end
  return secrets.resolve_references(config, secrets.CLI_PREFIX)
end

local function ab() return require "airbyte" end

-- A Source or a Destination for `text`; kind "source", "destination" or
-- nil (decided by the name's prefix). The config is checked against the
-- spec here, so a bad config fails before anything runs.
local function open_connector(text, kind, config_text, what)
  local name, opts = M.resolve_connector(text)
  local is_source = name:match("^source%-") ~= nil
  local is_dest = name:match("^destination%-") ~= nil
  if kind == "source" and not is_source then
    usage_error("'%s' is not a source: a source's name starts with 'source-'", text)
  elseif kind == "destination" and not is_dest then
    usage_error("'%s' is not a destination: a destination's name starts with 'destination-'", text)
  elseif not kind and not is_source and not is_dest then
    usage_error("'%s' is neither a source nor a destination: the name must start with 'source-' or 'destination-'", text)
  end
  local conn = is_source and ab().get_source(name, opts) or ab().get_destination(name, opts)
  if config_text then conn:set_config(M.load_config(config_text, what or "config"), { validate = true }) end
  return conn
end

local function select_streams(source, streams)
  if streams then source:select_streams(streams) else source:select_all_streams() end
end

local function stream_summary(wr)
  local names = {}
  for name in pairs(wr.streams or {}) do names[#names + 1] = name end
  table.sort(names)
  local parts = {}
  for i, n in ipairs(names) do parts[i] = ("%s %d"):format(n, wr.streams[n].records or 0) end
  return table.concat(parts, ", ")
end

-- --- commands ---------------------------------------------------------------------

local commands = {}

function commands.validate(args)
  local o = parse(args, { connector = { value = true }, config = { value = true } })
  if o.help then io.stdout:write(usages.validate) return 0 end
  if not o.connector then usage_error("--connector is required") end
  local conn = open_connector(o.connector, nil)
  conn:print_config_spec("yaml", { stderr = true })
  if o.config then
    conn:set_config(M.load_config(o.config, "config"), { validate = true })
    io.stdout:write(("Config of `%s` is valid.\n"):format(conn.name))
    io.stdout:flush()
    conn:check()
    io.stdout:write(("Connection check of `%s` succeeded.\n"):format(conn.name))
  else
    io.stdout:write(("Spec of `%s` printed; pass --config to validate a config and run check.\n"):format(conn.name))
  end
  return 0
end

function commands.sync(args)
  local o = parse(args, {
    source = { value = true }, destination = { value = true },
    Sconfig = { value = true }, Dconfig = { value = true }, streams = { multi = true },
    cache = { flag = "use_cache", set = true }, ["no-cache"] = { flag = "use_cache", set = false },
  })
  if o.help then io.stdout:write(usages.sync) return 0 end
  for _, k in ipairs({ "source", "destination", "Sconfig", "Dconfig" }) do
    if not o[k] then usage_error("--%s is required", k) end
  end
  local streams = stream_list(o.streams)
  local source = open_connector(o.source, "source", o.Sconfig, "source config")
  local dest = open_connector(o.destination, "destination", o.Dconfig, "destination config")
  select_streams(source, streams)
  local started = core.now()
  -- pyab syncs with cache=False, state_cache=False: full refresh, nothing kept
  local wopts = { cache = false, state_cache = false }
  if o.use_cache then wopts = {} end   -- the default cache, which keeps states
  local wr = dest:write(source, wopts)
  local secs = (core.now() - started) / 1000
  io.stdout:write(secrets.mask(("Sync completed: %d records from `%s` to `%s` in %.2f s [%s]\n"):format(
    wr.processed_records, source.name, dest.name, secs, stream_summary(wr))))
  return 0
end

function commands.benchmark(args)
  local o = parse(args, {
    source = { value = true }, destination = { value = true }, config = { value = true },
    streams = { multi = true }, ["num-records"] = { value = true },
  })
  if o.help then io.stdout:write(usages.benchmark) return 0 end
  if o.source and o.destination then
    usage_error("give --source or --destination, not both (the other side is the benchmark's)")
  end
  if o.config and not (o.source or o.destination) then
    usage_error("--config is the config of --source or --destination: give one of them")
  end
  local n = M.parse_count(o["num-records"] or "5e5")
  if not n then usage_error("--num-records must be a positive whole number, such as 5e5 or 1_000_000") end
  local streams = stream_list(o.streams)
  local source, dest
  if o.source then
    source = open_connector(o.source, "source", o.config or "{}", "source config")
  else
    -- source-faker stands in for pyab's source-e2e-test: built in, so it
    -- needs neither Docker nor the network; its users stream has exactly n
    source = ab().get_source("source-faker", { config = { count = n, seed = 1, always_updated = false } })
    streams = streams or { "users" }
  end
  if o.destination then
    dest = open_connector(o.destination, "destination", o.config or "{}", "destination config")
  else
    dest = ab().get_noop_destination()
  end
  select_streams(source, streams)
  local started = core.now()
  local wr = dest:write(source, { cache = false, state_cache = false })
  local ms = core.now() - started
  local rate = ms > 0 and wr.processed_records / (ms / 1000) or 0
  io.stdout:write(secrets.mask(("Benchmark: %d records from `%s` to `%s` in %.2f s: %.0f records/s [%s]\n"):format(
    wr.processed_records, source.name, dest.name, ms / 1000, rate, stream_summary(wr))))
  return 0
end

local connector_types = { builtin = true, installable = true, python = true, docker = true,
                          java = true, yaml = true, any = true, all = true }

-- The connectors shipped in the binary: the embedded connectors.* modules
-- (helper modules such as source_faker_schemas have no source-/destination- name).
function M.builtin_connectors()
  local out = {}
  for mod in pairs(package.preload) do
    local name = mod:match("^connectors%.(.+)$")
    if name and (name:match("^source%-") or name:match("^destination%-")) then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

function commands.connectors(args)
  local o = parse(args, { type = { value = true } })
  if o.help then io.stdout:write(usages.connectors) return 0 end
  local kind = o.type and o.type:lower()
  if kind and not connector_types[kind] then
    usage_error("unknown connector type '%s' (builtin, installable, python, docker, java, yaml, any)", o.type)
  end
  local names
  local available = ab().get_available_connectors
  if type(available) ~= "function" then   -- the registry module, before init.lua exports it
    local ok, registry = pcall(require, "airbyte.registry")
    available = ok and type(registry) == "table" and registry.get_available_connectors or nil
  end
  if kind == "builtin" or type(available) ~= "function" then
    if kind and kind ~= "builtin" and kind ~= "any" and kind ~= "all" and kind ~= "installable" then
      log.write(("luabyte connectors: no connector registry here; listing no %s connectors\n"):format(kind))
      names = {}
    else
      names = M.builtin_connectors()
    end
  else
    names = {}
    for i, c in ipairs(available(kind)) do names[i] = type(c) == "table" and c.name or tostring(c) end
    table.sort(names)
  end
  for _, n in ipairs(names) do io.stdout:write(n, "\n") end
  return 0
end

-- --- entry point ----------------------------------------------------------------

local function on_error(e)
  if getmetatable(e) == Usage or errors.is_error(e) then return e end
  return debug.traceback(tostring(e), 2)   -- a bug: where it happened helps
end

-- main(subcommand, args) -> the exit status (after flushing), which
-- runtime/cli/main.c exits with.
function M.main(sub, args)
  local cmd = commands[sub]
  local code
  if not cmd then
    log.write(("luabyte: unknown subcommand '%s'\n"):format(tostring(sub)), USAGE)
    code = 2
  else
    local ok, res = xpcall(cmd, on_error, args or {})
    -- Ctrl-C: main.c reports it and exits 130, which returning 1 would hide
    if not ok and core.interrupted() then error(res, 0) end
    if ok then
      code = res or 0
    elseif getmetatable(res) == Usage then
      log.write(("luabyte %s: %s\n\n"):format(sub, res.message), usages[sub])
      code = 2
    else
      -- error text is masked: a connector's message may quote its config
      log.write(("luabyte %s: error: %s\n"):format(sub, secrets.mask(tostring(res))))
      code = 1
    end
  end
  io.stdout:flush()
  log.flush()
  return code
end

return M
