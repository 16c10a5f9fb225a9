-- Source: a source connector, with PyAirbyte's members (airbyte/sources/base.py).
--
--   local src = ab.get_source("source-faker", { config = {...} })
--   src:check(); src:select_all_streams()
--   local result = src:read{ cache = cache, write_strategy = "auto",
--                            force_full_refresh = false, on_record = fn }
local core = require "airbyte.core"
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local connector = require "airbyte.connector"
local catalog = require "airbyte.catalog"
local options = require "airbyte.options"
local log = require "airbyte.log"

local M = {}

local props = {}
---@class airbyte.Source: airbyte.Connector
---@field discovered_catalog table      computed: the connector's catalog (discovered once)
---@field configured_catalog table      computed: get_configured_catalog()
local Source = {}

-- --- catalog and streams -------------------------------------------------------

props.discovered_catalog = function(self)
  if self._discovered then return self._discovered end
  local msg = self:_execute_for("discover", { config = self:get_config() }, "CATALOG",
                                "AirbyteConnectorDiscoverFailedError")
  if not msg or type(msg.catalog) ~= "table" then
    errors.raise("AirbyteConnectorMissingCatalogError",
      ("connector '%s' printed no CATALOG message"):format(self.name), { connector_name = self.name })
  end
  self._discovered = msg.catalog
  return msg.catalog
end

props.configured_catalog = function(self)
  return self:get_configured_catalog()
end

-- One name per stream name (a name in several namespaces is listed once).
---@return string[]
function Source:get_available_streams()
  local names, seen = {}, {}
  for _, s in ipairs(self.discovered_catalog.streams) do
    if not seen[s.name] then seen[s.name] = true; names[#names + 1] = s.name end
  end
  return names
end

local function normalize_selection(self, streams)
  if streams == "*" then return self:get_available_streams() end
  if type(streams) == "string" then streams = { streams } end
  if type(streams) ~= "table" then
    errors.raise("PyAirbyteInputError", "streams must be a name, a list of names or '*'",
      { input_value = tostring(streams) })
  end
  local available = self:get_available_streams()
  local set = {}
  for _, n in ipairs(available) do set[n] = true end
  local out = {}
  for _, n in ipairs(streams) do
    if not set[n] then
      errors.raise("AirbyteStreamNotFoundError",
        ("stream '%s' is not one of the streams of '%s'"):format(tostring(n), self.name),
        { connector_name = self.name, stream_name = n, available_streams = available })
    end
    out[#out + 1] = n
  end
  return out
end

---@param streams string|string[]      names, or "*" for all
function Source:select_streams(streams)
  if self._config == nil then   -- deferred until set_config, as PyAirbyte does
    self._deferred_streams = streams
    log.write(("Stream selection for '%s' deferred until the config is set.\n"):format(self.name))
    return
  end
  self._selected = normalize_selection(self, streams)
end

function Source:select_all_streams()
  self:select_streams("*")
end

---@return string[]
function Source:get_selected_streams()
  local out = {}
  for i, n in ipairs(self._selected or {}) do out[i] = n end
  return out
end

-- The streams a read or a write takes: those given (the source's own
-- selection stays as it is), else the selected ones. None is an error on
-- every path: PyAirbyte's rule, streams are selected on the source or
-- given to the call.
function Source:_streams_for(streams)
  local names = streams ~= nil and normalize_selection(self, streams) or self:get_selected_streams()
  if #names == 0 then
    errors.raise("PyAirbyteNoStreamsSelectedError",
      ("no streams are selected for '%s': call select_streams() or select_all_streams(), "
       .. "or pass streams"):format(self.name),
      { connector_name = self.name, available_streams = self:get_available_streams() })
  end
  return names
end

function Source:_on_config_set()
  if self._deferred_streams then
    local s = self._deferred_streams
    self._deferred_streams = nil
    self:select_streams(s)
  end
end

-- get_configured_catalog{streams = nil|"*"|list, force_full_refresh = false}
local GET_CONFIGURED_CATALOG_OPTIONS = options.allow{ "streams", "force_full_refresh" }
---@param opts? { streams?: string|string[], force_full_refresh?: boolean }
---@return table
function Source:get_configured_catalog(opts)
  opts = options.check(opts, GET_CONFIGURED_CATALOG_OPTIONS, "get_configured_catalog")
  local names
  if opts.streams ~= nil then names = normalize_selection(self, opts.streams)
  elseif self._selected and #self._selected > 0 then names = self._selected
  else names = self:get_available_streams() end
  return catalog.configure(self.discovered_catalog, names, {
    force_full_refresh = opts.force_full_refresh,
    primary_keys = self._pk_overrides, cursor_keys = self._cursor_overrides })
end

---@param stream string
---@return table
function Source:get_stream_json_schema(stream)
  for _, s in ipairs(self.discovered_catalog.streams) do
    if s.name == stream then return s.json_schema end
  end
  errors.raise("AirbyteStreamNotFoundError", ("stream '%s' not found"):format(tostring(stream)),
    { connector_name = self.name, stream_name = stream, available_streams = self:get_available_streams() })
end

---@param stream string
---@param key string
function Source:set_cursor_key(stream, key)
  self._cursor_overrides = self._cursor_overrides or {}
  self._cursor_overrides[stream:lower()] = key
end

---@param keys table<string, string>
function Source:set_cursor_keys(keys)
  for k, v in pairs(keys) do self:set_cursor_key(k, v) end
end

---@param stream string
---@param pk string|string[]|string[][]
function Source:set_primary_key(stream, pk)
  self._pk_overrides = self._pk_overrides or {}
  self._pk_overrides[stream:lower()] = pk
end

---@param keys table<string, string|string[]>
function Source:set_primary_keys(keys)
  for k, v in pairs(keys) do self:set_primary_key(k, v) end
end

-- --- records without a cache -------------------------------------------------

-- get_records(stream, {limit=}) -> lazy iterator of records (data tables
-- plus _airbyte_* fields). Reads with no state. Usable in a generic for:
-- breaking out of the loop (or closing the iterator) stops the connector.
local GET_RECORDS_OPTIONS = options.allow{ "limit" }
---@param stream string
---@param opts? { limit?: integer }
---@return fun(): table?                 records, until the stream ends
function Source:get_records(stream, opts)
  opts = options.check(opts, GET_RECORDS_OPTIONS, "get_records")
  local cat = self:get_configured_catalog{ streams = { stream }, force_full_refresh = true }
  local p, files = self:_start("read", { config = self:get_config(), catalog = cat })
  local state = { trace_errors = {} }
  local n, limit, done = 0, opts.limit, false
  local next_msg = p:messages()
  local function finish(abandoned)
    if done then return end
    done = true
    if abandoned then p:terminate() end
    local ok, err = pcall(function()
      if not abandoned then self:_finish(p, state, "AirbyteConnectorReadError", "read") end
    end)
    p:close()
    getmetatable(files).__close(files)
    if not ok then error(err, 0) end
  end
  local closer = setmetatable({}, { __close = function() finish(true) end })
  local function iter()
    if done then return nil end
    if limit and n >= limit then finish(true) return nil end
    while true do
      local msg = next_msg()
      if msg == nil then finish(false) return nil end
      if not self:_common_message(msg, state) and msg.type == "RECORD" and msg.stream == stream then
        n = n + 1
        local rec = msg.data
        rec._airbyte_extracted_at = msg.emitted_at
        return rec
      end
    end
  end
  return iter, nil, nil, closer
end

-- get_samples{streams = nil|"*"|list, limit = 5, on_error = "raise"|"ignore"|"log"}
local GET_SAMPLES_OPTIONS = options.allow{ "streams", "limit", "on_error" }
---@param opts? { limit?: integer, streams?: string|string[], on_error?: "raise"|"ignore"|"log" }
---@return table<string, table[]|false>
function Source:get_samples(opts)
  opts = options.check(opts, GET_SAMPLES_OPTIONS, "get_samples")
  local limit = opts.limit or 5
  local names = opts.streams and normalize_selection(self, opts.streams) or
    ((self._selected and #self._selected > 0) and self._selected or self:get_available_streams())
  local out = {}
  for _, name in ipairs(names) do
    local ok, err = pcall(function()
      local rows = {}
      for rec in self:get_records(name, { limit = limit }) do rows[#rows + 1] = rec end
      out[name] = rows
    end)
    if not ok then
      if opts.on_error == "ignore" then out[name] = false
      elseif opts.on_error == "log" then
        log.write(("Failed to get samples for stream '%s': %s\n"):format(name, tostring(err)))
        out[name] = false
      else error(err, 0) end
    end
  end
  return out
end

---@param opts? { limit?: integer, streams?: string|string[], on_error?: "raise"|"ignore"|"log" }
function Source:print_samples(opts)
  local samples = self:get_samples(opts)
  local names = {}
  for n in pairs(samples) do names[#names + 1] = n end
  table.sort(names)
  for _, name in ipairs(names) do
    io.stdout:write(("Stream: %s\n"):format(name))
    local rows = samples[name]
    if not rows then io.stdout:write("  (failed)\n")
    else require("airbyte.tables").print(rows, io.stdout) end
  end
end

-- --- read --------------------------------------------------------------------

props.__class_name = function() return "Source" end

-- opts as read.lua's OPTIONS: cache, streams, write_strategy,
-- force_full_refresh, skip_validation, quiet, on_record, hooks, validate.
---@param opts? table
---@return airbyte.ReadResult
function Source:read(opts)
  return require("airbyte.read").read(self, opts or {})
end

local cls = connector.class(props, Source)
cls._class_name = "Source"
M.Source = cls

---@return airbyte.Source
function M.new(executor, name, config, opts)
  local self = connector.new(cls, executor, name, config, opts)
  if opts and opts.streams then self:select_streams(opts.streams) end
  return self
end

return M
