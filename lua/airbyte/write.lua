-- Destination:write(): the host's side of the protocol (DESIGN §6,
-- protocol.md §5).
--
-- Messages reach the destination in order: RECORD (selected streams only),
-- STATE and stream-status TRACE. Its stdin is written while its stdout is
-- read by a second task, so a destination that talks before it reads
-- never deadlocks. A state is stored in _airbyte_destination_state only
-- once the destination echoes it, and never behind one already stored; the
-- record counts of sourceStats/destinationStats are checked against what
-- was sent. Fed from a cache, a destination gets only the rows it has not
-- confirmed before (append, merge), or the whole table (replace).
local core = require "airbyte.core"
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local catalog = require "airbyte.catalog"
local pump = require "airbyte.pump"
local progress = require "airbyte.progress"
local options = require "airbyte.options"

local M = {}

-- --- what a destination has confirmed, per stream --------------------------
-- The highest _airbyte_raw_id (time-ordered UUIDv7) a destination confirmed
-- by echoing the state that followed it. Kept in the cache beside
-- _airbyte_destination_state.
local PROGRESS_DDL = [[CREATE TABLE IF NOT EXISTS _luabyte_destination_progress (
  destination_name VARCHAR NOT NULL, source_name VARCHAR NOT NULL, stream_name VARCHAR NOT NULL,
  last_raw_id VARCHAR NOT NULL, last_updated TIMESTAMP WITH TIME ZONE,
  PRIMARY KEY (destination_name, source_name, stream_name))]]

local function sent_watermark(cache, dest, source, stream)
  local db = cache:_db()
  db:exec(PROGRESS_DDL)
  local rows = db:query("SELECT last_raw_id FROM _luabyte_destination_progress WHERE destination_name = ?"
    .. " AND source_name = ? AND stream_name = ?", { dest, source, stream })
  return rows[1] and rows[1].last_raw_id or nil
end

local function set_sent_watermark(cache, dest, source, stream, raw_id)
  local db = cache:_db()
  db:exec(PROGRESS_DDL)
  db:query("INSERT INTO _luabyte_destination_progress VALUES (?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ'))"
    .. " ON CONFLICT DO UPDATE SET last_raw_id = excluded.last_raw_id, last_updated = excluded.last_updated"
    .. " WHERE excluded.last_raw_id > last_raw_id", { dest, source, stream, raw_id })
end

-- A configured catalog for cached streams, from _airbyte_streams: the JSON
-- schema only (no primary key, no cursor), as PyAirbyte rebuilds it.
local function catalog_from_cache(cache, names)
  local streams = {}
  for _, name in ipairs(names) do
    local rows = cache:_db():query("SELECT catalog_metadata FROM _airbyte_streams WHERE table_name = ?",
      { cache:table_name(name) })
    local schema = rows[1] and rows[1].catalog_metadata and json.decode(rows[1].catalog_metadata) or { type = "object" }
    streams[#streams + 1] = { stream = { name = name, json_schema = schema,
      supported_sync_modes = json.array({ "full_refresh" }) }, sync_mode = "full_refresh",
      destination_sync_mode = "overwrite" }
  end
  return { streams = json.array(streams) }
end

local function state_key(st)
  local t = st.type or "LEGACY"
  if t == "STREAM" then
    local d = st.stream and st.stream.stream_descriptor
    return d and d.name or "", t
  end
  return "", t
end

-- What identifies a state whatever a destination adds to the message
-- (destinationStats, an id): its type and its blob.
local function state_identity(st)
  local t = st.type or "LEGACY"
  local blob = t == "STREAM" and st.stream or t == "GLOBAL" and st.global or st.data
  return t .. ":" .. json.encode(blob == nil and json.null or blob)
end

-- Tracks states sent to the destination and what its echoes confirm.
local Ledger = {}
Ledger.__index = Ledger

local function new_ledger(dest_name, source_name, state_cache, run)
  return setmetatable({ dest = dest_name, source = source_name, cache = state_cache, run = run,
                        windows = {}, confirmed = {} }, Ledger)
end

-- sent(st_table, text, count): a state forwarded after `count` records of its window.
function Ledger:sent(st, text, count, on_confirm)
  local key = state_key(st)
  local list = self.windows[key]
  if not list then list = {}; self.windows[key] = list end
  list[#list + 1] = { id = state_identity(st), text = text, count = count, on_confirm = on_confirm }
end

function Ledger:warn(msg)
  self.run.warnings[#self.run.warnings + 1] = msg
end

-- echoed(st_table): the destination says everything before this state is durable.
function Ledger:echoed(st)
  local key = state_key(st)
  local list = self.windows[key] or {}
  local id = state_identity(st)
  local from = (self.confirmed[key] or 0) + 1
  for i = #list, 1, -1 do
    if list[i].id == id then
      if i < from then
        self:warn(("destination echoed an older state of stream %s again (out of order); ignored"):format(
          key == "" and "(global)" or key))
        return
      end
      -- records confirmed: everything sent in the windows up to this state
      local expected = 0
      for j = from, i do expected = expected + list[j].count end
      local ds = st.destinationStats and tonumber(st.destinationStats.recordCount)
      if ds and math.floor(ds) ~= list[i].count and math.floor(ds) ~= expected then
        self:warn(("stream %s: the destination reports %d records for a state after %d were sent"):format(
          key == "" and "(global)" or key, math.floor(ds), list[i].count))
      end
      self.confirmed[key] = i
      self.run.confirmed_states = (self.run.confirmed_states or 0) + 1
      if self.cache then
        self.cache:_db():put_destination_state(self.dest, self.source, key, list[i].text)
      end
      for j = from, i do if list[j].on_confirm then list[j].on_confirm() end end
      return
    end
  end
  self:warn(("destination echoed a state for stream %s that was never sent to it; ignored"):format(
    key == "" and "(global)" or key))
end

function Ledger:unconfirmed()
  local n = 0
  for key, list in pairs(self.windows) do n = n + #list - (self.confirmed[key] or 0) end
  return n
end

-- --- stream prefix (an Airbyte connection's "stream prefix") ----------------
-- The destination sees prefix .. name in its catalog and in every message;
-- its echoes are renamed back, so destination states and the ledger keep
-- the source's names. Where a message carries stream names is the C
-- protocol layer's rule (pump.prefix_streams / unprefix_streams).

local function prefixed_catalog(cat, prefix)
  if not prefix then return cat end
  local out = {}
  for i, cs in ipairs(cat.streams) do
    local copy, stream = {}, {}
    for k, v in pairs(cs) do copy[k] = v end
    for k, v in pairs(cs.stream) do stream[k] = v end
    stream.name = prefix .. cs.stream.name
    copy.stream = stream
    out[i] = copy
  end
  return { streams = json.array(out) }
end

local function prefixed(line, prefix)
  return prefix and pump.prefix_streams(line, prefix) or line
end

-- Reads the destination's output in its own task until it closes stdout.
local function start_reader(dest, p, ledger, run, prefix)
  return core.spawn(function()
    for msg in p:messages() do
      if msg.type == "STATE" then
        ledger:echoed(prefix and json.decode(pump.unprefix_streams(msg.line, prefix)).state or msg.state)
      elseif not dest:_common_message(msg, run) and msg.type == "TRACE" then
        -- stream statuses and estimates from a destination are informational
      end
    end
  end)
end

local function stored_destination_states(state_cache, dest_name, source_name, selected)
  if not state_cache then return {} end
  local keep = {}
  for _, n in ipairs(selected) do keep[n] = true end
  local out = {}
  for _, text in ipairs(state_cache:_db():get_destination_states(dest_name, source_name)) do
    local st = json.decode(text)
    local key = state_key(st)
    if key == "" or keep[key] then out[#out + 1] = st end
  end
  return out
end

local function with_strategy(cat, strategy)
  local methods = {}
  for _, cs in ipairs(cat.streams) do
    local m = catalog.resolve_write_method(cs, strategy)
    methods[cs.stream.name] = m
    cs.destination_sync_mode = catalog.destination_sync_mode(m)
  end
  return methods
end

local function kind_of(v)
  local src = require "airbyte.source"
  local rr = require "airbyte.read_result"
  if getmetatable(v) == src.Source then return "source" end
  if getmetatable(v) == rr.ReadResult then return "result" end
  return nil
end

local function finish_write(dest, p, reader, run, ledger)
  local ok, err = pcall(reader.wait, reader)
  -- raises on a TRACE ERROR too, whatever the exit code
  local ok2, err2 = pcall(dest._finish, dest, p, run, "AirbyteConnectorWriteError", "write")
  p:close()
  if not ok2 then error(err2, 0) end
  if not ok then
    errors.raise("AirbyteConnectorWriteError", ("reading the output of '%s' failed: %s"):format(dest.name, tostring(err)),
      { connector_name = dest.name })
  end
  local missing = ledger:unconfirmed()
  if missing > 0 then
    run.warnings[#run.warnings + 1] = ("destination '%s' did not echo %d state(s): they were not stored, "
      .. "the next write sends their records again"):format(dest.name, missing)
  end
end

-- Straight through: the source's output goes to the destination as printed.
local function write_direct(dest, source, opts, state_cache, run)
  local cat = source:get_configured_catalog{ streams = opts.streams, force_full_refresh = opts.force_full_refresh }
  with_strategy(cat, opts.write_strategy)
  local selected, set = {}, {}
  for i, cs in ipairs(cat.streams) do selected[i] = cs.stream.name; set[cs.stream.name] = true end
  local state_in = require("airbyte.read").state_file(opts.force_full_refresh and {} or
    stored_destination_states(state_cache, dest.name, source.name, selected))
  local ledger = new_ledger(dest.name, source.name, state_cache, run)
  local tracker = progress.new{ job = ("Write `%s` -> `%s`"):format(source.name, dest.name),
                                quiet = opts.quiet, mask = errors.mask }
  local prefix = opts.stream_prefix
  local dp, dfiles <close> = dest:_start("write", { config = dest:get_config(), catalog = prefixed_catalog(cat, prefix) },
                                         { stdin = true })
  local reader = start_reader(dest, dp, ledger, run, prefix)
  local sp, sfiles <close> = source:_start("read", { config = source:get_config(), catalog = cat, state = state_in })
  local src_run = { trace_errors = {} }
  local pumped, totals = pcall(pump.to_process, sp, dp, {
    streams = set, on_record = opts.on_record, hooks = opts.hooks, stream_prefix = prefix,
    on_progress = function(t) tracker:update(t) end,
    on_message = function(msg, since)
      if msg.type == "STATE" and require("airbyte.read").is_side_channel_state(msg) then
        return   -- forwarded (the destination decides), but no checkpoint to track
      elseif msg.type == "STATE" then
        local st = msg.state
        local ss = st.sourceStats and tonumber(st.sourceStats.recordCount)
        if ss and math.floor(ss) ~= since then
          run.warnings[#run.warnings + 1] = ("the source says %d records before a state, %d arrived"):format(math.floor(ss), since)
        end
        ledger:sent(st, json.encode(st), since)
      elseif msg.type ~= "TRACE" or not (msg.trace and msg.trace.type == "STREAM_STATUS") then
        source:_common_message(msg, src_run)
      end
    end })
  dp:close_stdin()
  if not pumped then
    local dlog = dp:log_file()
    sp:terminate()
    pcall(sp.wait, sp)
    sp:close()
    local fok, ferr = pcall(finish_write, dest, dp, reader, run, ledger)
    tracker:finish(nil, "Failed")
    if not fok then error(ferr, 0) end   -- the destination's own failure explains best
    error(errors.is_error(totals) and totals or errors.new("AirbyteConnectorWriteError",
      ("writing from '%s' to '%s' failed: %s"):format(source.name, dest.name, tostring(totals)),
      { connector_name = dest.name, log_file = dlog }), 0)
  end
  local sok, serr = pcall(source._finish, source, sp, src_run, "AirbyteConnectorReadError", "read")
  require("airbyte.read").warn_invalid(run, totals.invalid, source.name, sp:log_file())
  sp:close()
  finish_write(dest, dp, reader, run, ledger)
  if not sok then error(serr, 0) end
  tracker:finish(totals)
  return totals
end

-- From a cache: per stream, the rows the destination has not confirmed
-- (append/merge) or all rows (replace), then the stream's cached state
-- and a COMPLETE status.
local function write_from_cache(dest, source_name, cache, names, cat, opts, state_cache, run)
  local methods = with_strategy(cat, opts.write_strategy)
  local ledger = new_ledger(dest.name, source_name, state_cache, run)
  local db = cache:_db()
  local tracker = progress.new{ job = ("Write cache -> `%s`"):format(dest.name), quiet = opts.quiet, mask = errors.mask }
  local cached_states = {}
  local texts, streams = db:get_states(source_name)
  for i, text in ipairs(texts) do cached_states[streams[i]] = text end
  local prefix = opts.stream_prefix
  local dp, dfiles <close> = dest:_start("write", { config = dest:get_config(), catalog = prefixed_catalog(cat, prefix) },
                                         { stdin = true })
  local reader = start_reader(dest, dp, ledger, run, prefix)
  local totals = { records = 0, bytes = 0, streams = {} }
  local ok, err = pcall(function()
    for _, name in ipairs(names) do
      local method = methods[name]
      local after = nil
      if method ~= "replace" and not opts.force_full_refresh then
        after = sent_watermark(cache, dest.name, source_name, name)
      end
      local sent = pump.from_cache(db, dp, {
        stream = (prefix or "") .. name, table = cache:table_name(name), after = after,
        on_progress = function(t)
          totals.streams[name] = { records = t.records }
          tracker:update({ records = totals.records + t.records, bytes = totals.bytes + t.bytes, streams = totals.streams })
        end })
      totals.records = totals.records + sent.records
      totals.bytes = totals.bytes + sent.bytes
      totals.streams[name] = { records = sent.records }
      local last_id = sent.last_raw_id
      local function confirm()
        if last_id then set_sent_watermark(cache, dest.name, source_name, name, last_id) end
      end
      local st_text = cached_states[name]
      if st_text then
        local st = json.decode(st_text)
        ledger:sent(st, st_text, sent.records, confirm)
        assert(dp:write(prefixed(('{"type":"STATE","state":%s}'):format(st_text), prefix) .. "\n"))
      else
        run.after_success = run.after_success or {}
        run.after_success[#run.after_success + 1] = confirm
      end
      assert(dp:write(('{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":%d.0,'
        .. '"stream_status":{"stream_descriptor":{"name":%s},"status":"COMPLETE"}}}\n'):format(
        core.time_ms(), json.encode((prefix or "") .. name))))
    end
  end)
  dp:close_stdin()
  local fok, ferr = pcall(finish_write, dest, dp, reader, run, ledger)
  if not ok then
    tracker:finish(nil, "Failed")
    if not fok then error(ferr, 0) end
    error(errors.is_error(err) and err or errors.new("AirbyteConnectorWriteError",
      ("writing to '%s' failed: %s"):format(dest.name, tostring(err)), { connector_name = dest.name }), 0)
  end
  if not fok then tracker:finish(nil, "Failed") error(ferr, 0) end
  for _, fn in ipairs(run.after_success or {}) do fn() end
  tracker:finish(totals)
  return totals
end

-- The configured streams of `cat` named in `names`.
function M.subset(cat, names)
  local want, out = {}, {}
  for _, n in ipairs(names) do want[n] = true end
  for _, cs in ipairs(cat.streams) do
    if want[cs.stream.name] then
      local copy = {}
      for k, v in pairs(cs) do copy[k] = v end
      out[#out + 1] = copy
    end
  end
  return { streams = json.array(out) }
end

M.OPTIONS = options.allow{ "cache", "state_cache", "streams", "write_strategy", "force_full_refresh",
                           "quiet", "on_record", "hooks", "stream_prefix" }
function M.write(dest, source_data, opts)
  opts = options.check(opts, M.OPTIONS, "Destination:write")
  local kind = kind_of(source_data)
  if not kind then
    errors.raise("PyAirbyteInputError", "write() takes a Source or a ReadResult",
      { input_value = tostring(source_data) })
  end
  local caches = require "airbyte.caches"
  local source_name = kind == "source" and source_data.name or source_data.source_name
  local cache = opts.cache
  if cache ~= false then
    if kind == "result" then cache = source_data.cache end
    cache = cache or caches.get_default_cache()
  end
  if opts.stream_prefix ~= nil and (type(opts.stream_prefix) ~= "string" or opts.stream_prefix == "") then
    errors.raise("PyAirbyteInputError", "stream_prefix must be a non-empty string",
      { input_value = tostring(opts.stream_prefix) })
  end
  local state_cache = opts.state_cache
  if state_cache == nil then state_cache = cache or caches.get_default_cache() end
  local run = { trace_errors = {}, warnings = {} }
  local totals, invalid
  if kind == "source" and cache == false then
    totals = write_direct(dest, source_data, opts, state_cache, run)
    invalid = totals.invalid
  else
    local names, cat
    if kind == "source" then
      local result = source_data:read{ cache = cache, streams = opts.streams, write_strategy = opts.write_strategy,
                                       force_full_refresh = opts.force_full_refresh, quiet = opts.quiet,
                                       on_record = opts.on_record, hooks = opts.hooks }
      names = {}
      for i, n in ipairs(result.processed_streams) do names[i] = n end
      cat = result.catalog
      invalid = result.invalid_records
    else
      names = {}
      local want = opts.streams
      if want == nil or want == "*" then
        for i, n in ipairs(source_data.processed_streams) do names[i] = n end
      else
        if type(want) == "string" then want = { want } end
        for _, n in ipairs(want) do
          if not source_data:contains(n) then
            errors.raise("AirbyteStreamNotFoundError", ("stream '%s' is not in this read result"):format(n),
              { stream_name = n, available_streams = source_data.processed_streams })
          end
          names[#names + 1] = n
        end
      end
      local known = rawget(source_data, "_fields").catalog   -- not result.catalog: that is a stream lookup
      cat = known and M.subset(known, names) or catalog_from_cache(cache, names)
    end
    totals = write_from_cache(dest, source_name, cache, names, cat, opts, state_cache, run)
  end
  for i, w in ipairs(run.warnings) do run.warnings[i] = errors.mask(w); io.stderr:write("warning: ", run.warnings[i], "\n") end
  return require("airbyte.write_result").new{
    destination = dest, source_name = source_name, processed_records = totals.records,
    totals = totals, state_cache = state_cache, warnings = run.warnings,
    confirmed_states = run.confirmed_states or 0, invalid_records = invalid or {},
  }
end

return M
