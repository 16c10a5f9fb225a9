-- A declarative manifest as a source connector of the kit (airbyte.cdk):
-- spec from the manifest's `spec`, check from `CheckStream`, discover from
-- the schema loaders, read with catalog and state (reference §3).
--
--   local c = M.connector(manifest_source, opts)   -> cdk.source{...}
--   M.run(path, argv) -> exit code     `luabyte connector --manifest FILE CMD ...`
--
-- LUABYTE_URL_REWRITE="FROM=TO [FROM=TO ...]" rewrites the prefix of every
-- request URL (url_base, OAuth endpoints), e.g. to point a manifest at a
-- local test server without editing it.
local json = require "airbyte.json"
local cdk = require "airbyte.cdk"
local manifest = require "airbyte.declarative.manifest"
local factory = require "airbyte.declarative.factory"
local requester = require "airbyte.declarative.requester"
local log = require "airbyte.log"

local M = {}

function M.parse_rewrite(s)
  local out = {}
  for pair in (s or ""):gmatch("%S+") do
    local from, to = pair:match("^(.-)=(.+)$")
    if from and from ~= "" then out[#out + 1] = { from, to } end
  end
  table.sort(out, function(a, b) return #a[1] > #b[1] end)   -- the longest prefix wins
  return out
end

-- config values the spec marks airbyte_secret, for masking
local function secrets_of(schema, config, out)
  if type(schema) ~= "table" or type(config) ~= "table" then return out end
  for k, sub in pairs(schema.properties or {}) do
    local v = config[k]
    if type(sub) == "table" then
      if sub.airbyte_secret == true and type(v) == "string" then out[#out + 1] = v end
      if type(v) == "table" then secrets_of(sub, v, out) end
      for _, alt in ipairs(sub.oneOf or {}) do secrets_of(alt, v, out) end
    end
  end
  return out
end

local function message_of(err)
  if type(err) == "table" then return tostring(err.message or err) end
  return tostring(err)
end

local function spec_of(m)
  local s = m.spec
  if type(s) ~= "table" then
    manifest.config_error("the manifest has no spec: it cannot be configured")
  end
  local cs = s.connection_specification or s.connectionSpecification
  if type(cs) ~= "table" then manifest.config_error("the manifest's spec has no connection_specification") end
  local out = cdk.obj("documentationUrl", s.documentation_url, "connectionSpecification", cs)
  if s.advanced_auth ~= nil then out.advanced_auth = s.advanced_auth end
  return out
end

-- opts: env (LUABYTE_URL_REWRITE), http (a replacement airbyte.http), out (LOG writer), base_dir
function M.connector(source, opts)
  opts = opts or {}
  local m = manifest.load(source)
  local spec = spec_of(m)
  local env = requester.client{
    rewrite = M.parse_rewrite(opts.rewrite or os.getenv("LUABYTE_URL_REWRITE")),
    http = opts.http,
    sleep = opts.sleep or function(seconds) require("airbyte.core").sleep(math.floor(seconds * 1000 + 0.5)) end,
  }
  local F = factory.new(env, opts.base_dir)
  local streams, by_name = {}, {}
  for i, node in ipairs(m.streams or {}) do
    local s = F.stream(node, ("streams[%d]"):format(i - 1))
    streams[#streams + 1] = s
    by_name[s.name] = s
  end
  if m.dynamic_streams ~= nil and next(m.dynamic_streams) ~= nil then
    manifest.config_error("dynamic_streams are not supported by luabyte")
  end

  local function prepare(config, emit)
    env.emit = emit
    for _, s in ipairs(secrets_of(spec.connectionSpecification, config, {})) do env.add_secret(s) end
  end

  local function log_line(level, msg)
    io.stdout:write(cdk.encode(cdk.obj("type", "LOG", "log", cdk.obj("level", level, "message", env.mask(msg)))), "\n")
  end

  local connector = cdk.source{
    spec = spec,
    check = function(config)
      prepare(config, nil)
      local check = m.check
      local names = type(check) == "table" and check.stream_names or nil
      if type(names) ~= "table" or #names == 0 then
        return false, "the manifest's check has no stream_names"
      end
      for _, name in ipairs(names) do
        local s = by_name[name]
        if not s then return false, ("check stream '%s' is not a stream of the manifest"):format(name) end
        local ok, err = pcall(s.check_read, config)
        if not ok then return false, env.mask(("stream '%s': %s"):format(name, message_of(err))) end
      end
      return true
    end,
    discover = function(config)
      prepare(config, nil)
      local out, first_err = {}, nil
      for _, s in ipairs(streams) do
        local ok, err = pcall(s.build)
        if ok then
          out[#out + 1] = s.catalog_entry(config)
        elseif type(err) == "table" and err.custom_component then
          first_err = first_err or err
          log_line("WARN", ("stream '%s' left out of the catalog: %s"):format(s.name, err.message))
        else
          error(err, 0)
        end
      end
      if #out == 0 and first_err then error(first_err, 0) end
      return out
    end,
    read = function(config, catalog, state, emit)
      prepare(config, emit)
      local failures = {}
      for _, cs in ipairs(catalog.streams or {}) do
        local name = cs.stream and cs.stream.name
        local s = by_name[name]
        if not s then
          manifest.config_error(("the configured catalog names stream '%s', which the manifest does not have")
            :format(tostring(name)))
        end
        local h = emit.stream(name)
        h:started()
        local st = cs.sync_mode == "incremental" and cdk.stream_state(state, name) or nil
        local ok, err = pcall(s.read, config, st,
          function(rec) h:record(rec) end,
          function(new_state) h:state(new_state) end,
          { log = env.log })
        if ok then
          h:complete()
        else
          h:incomplete()
          local msg = env.mask(message_of(err))
          emit.log("ERROR", ("stream '%s' failed: %s"):format(name, msg))
          failures[#failures + 1] = { name = name, message = msg,
                                      failure_type = type(err) == "table" and err.failure_type or "system_error" }
        end
      end
      if #failures > 0 then
        local parts = {}
        for i, f in ipairs(failures) do parts[i] = ("stream '%s': %s"):format(f.name, f.message) end
        cdk.error(table.concat(parts, "; "), failures[1].failure_type)
      end
    end,
  }
  connector.manifest = m
  connector.streams = streams
  return connector
end

-- `luabyte connector --manifest FILE COMMAND ...`
function M.run(path, argv)
  local base_dir = path and path:match("^(.*)/[^/]*$") or "."
  local ok, connector = pcall(M.connector, path, { base_dir = base_dir })
  if not ok then
    local msg = message_of(connector)
    io.stdout:write(cdk.encode(cdk.obj("type", "TRACE", "trace", cdk.obj("type", "ERROR",
      "emitted_at", cdk.clock() + 0.0, "error", cdk.obj("message", msg, "failure_type",
      type(connector) == "table" and connector.failure_type or "system_error")))), "\n")
    io.stdout:flush()
    log.write("luabyte: manifest ", tostring(path), ": ", msg, "\n")
    return 1
  end
  return cdk.main(connector, argv)
end

return M
