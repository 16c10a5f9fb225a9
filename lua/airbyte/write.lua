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
-- confirmed before (append, merge), or the whole table (replace). A
-- destination is known by its identity (name and config digest), and the
-- rules of state (its key, its identity, the record-count check) are C's
-- (airbyte.sqlite.state_identity, state_count_mismatch): no state is
-- decoded on the way to the destination nor on the way back.
local core = require "airbyte.core"
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local log = require "airbyte.log"
local catalog = require "airbyte.catalog"
local pump = require "airbyte.pump"
local progress = require "airbyte.progress"
local options = require "airbyte.options"

local sqlite = require "airbyte.sqlite"
local read = require "airbyte.read"

local M = {}

-- --- who a destination is ---------------------------------------------------
-- A destination is its name and the digest of its config (secrets
-- included, so another account is another destination; only the digest is
-- stored). Taken once per write: a CONTROL config update during the write
-- makes the next write a new identity, whose first write sends everything.
local function identity(dest)
  local cfg = dest:get_config()
  return { name = dest.name, config_hash = json.digest(cfg == nil and {} or cfg) }
end

-- A configured catalog for cached streams, from _airbyte_streams: the JSON
-- schema only (no primary key, no cursor), as PyAirbyte rebuilds it.
local function catalog_from_cache(cache, names)
  local streams = {}
  for _, name in ipairs(names) do
    local schema = cache:_stream_schema(name) or { type = "object" }
    streams[#streams + 1] = { stream = { name = name, json_schema = schema,
      supported_sync_modes = json.array({ "full_refresh" }) }, sync_mode = "full_refresh",
      destination_sync_mode = "overwrite" }
  end
  return { streams = json.array(streams) }
end

-- What identifies a state, from its JSON text (the state object or its
-- STATE message), by the C rule (cache.h lb_cache_state_identity): its key
-- as one table key, its name for messages, and the digest of its blob,
-- which neither what a destination adds (destinationStats, an id) nor how
-- it spells it (member order, spacing, escapes, 1.0 for 1) changes.
local function state_identity(text)
  local t, name, ns, digest = sqlite.state_identity(text)
  return read.stream_id(name, ns), t == "STREAM" and (ns and ns .. "." .. name or name) or "(global)", digest
end

-- Tracks states sent to the destination and what its echoes confirm.
-- Per key, sends are kept in order; an echo confirms the first send of its
-- payload after the last one confirmed (so the k-th echo of a state sent k
-- times in a row confirms the k-th send), and everything of that key
-- before it.
local Ledger = {}
Ledger.__index = Ledger

local function new_ledger(who, source_name, state_cache, run)
  return setmetatable({ who = who, source = source_name, cache = state_cache, run = run,
                        windows = {}, confirmed = {} }, Ledger)
end

-- sent(text, count [, on_confirm [, side]]): a state (its object's JSON
-- text) forwarded after `count` records of its window; `side` marks a
-- side-channel state (no checkpoint of its own: confirming it stores the
-- real state before it).
function Ledger:sent(text, count, on_confirm, side)
  local key, _, id = state_identity(text)
  local list = self.windows[key]
  if not list then list = {}; self.windows[key] = list end
  list[#list + 1] = { id = id, text = text, count = count, on_confirm = on_confirm, side = side }
end

function Ledger:warn(msg)
  self.run.warnings[#self.run.warnings + 1] = msg
end

-- echoed(line, state_text): the destination says everything before this
-- state is durable. line: its STATE message (with the source's stream
-- names); state_text: the state object as the destination wrote it.
function Ledger:echoed(line, state_text)
  local key, label, id = state_identity(line)
  local list = self.windows[key] or {}
  local from = (self.confirmed[key] or 0) + 1
  local i
  for j = from, #list do
    if list[j].id == id then i = j break end
  end
  if not i then
    for j = 1, from - 1 do
      if list[j].id == id then
        self:warn(("destination echoed an older state of stream %s again (out of order); ignored"):format(label))
        return
      end
    end
    self:warn(("destination echoed a state for stream %s that was never sent to it; ignored"):format(label))
    return
  end
  -- records confirmed: everything sent in the windows up to this state
  local expected = 0
  for j = from, i do expected = expected + list[j].count end
  -- the record-count check is C's (cache.h): the count may be the state's
  -- own window or every window it confirms
  local ds = sqlite.state_count_mismatch(state_text, "destinationStats", list[i].count)
  if ds and sqlite.state_count_mismatch(state_text, "destinationStats", expected) then
    self:warn(("stream %s: the destination reports %d records for a state after %d were sent"):format(
      label, ds, list[i].count))
  end
  self.confirmed[key] = i
  self.run.confirmed_states = (self.run.confirmed_states or 0) + 1
  if self.cache then
    for j = i, from, -1 do
      if not list[j].side then
        self.cache:_db():put_destination_state(self.who, self.source, "", list[j].text)
        break
      end
    end
  end
  for j = from, i do if list[j].on_confirm then list[j].on_confirm() end end
end

-- States sent and never confirmed. Repeats of the last confirmed state
-- with no record in between add nothing it does not confirm (a
-- destination may echo one of a run of identical states: the Faros
-- destination's dry run echoes only its last).
function Ledger:unconfirmed()
  local n = 0
  for key, list in pairs(self.windows) do
    local c = self.confirmed[key] or 0
    local j = c + 1
    while c > 0 and list[j] and list[j].id == list[c].id and list[j].count == 0 do j = j + 1 end
    n = n + #list - j + 1
  end
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
-- An echo is matched from its text: renamed back when prefixed, never
-- decoded.
local function start_reader(dest, p, ledger, run, prefix)
  return core.spawn(function()
    for msg in p:messages() do
      if msg.type == "STATE" then
        local line = msg.line
        ledger:echoed(prefix and pump.unprefix_streams(line, prefix) or line, line:sub(msg:payload_span()))
      elseif not dest:_common_message(msg, run) and msg.type == "TRACE" then
        -- stream statuses and estimates from a destination are informational
      end
    end
  end)
end

-- A destination's stored states for this source, as the cache's state reads
-- return them (texts, key names, namespaces), or nil without a state cache.
local function destination_rows(state_cache, who, source_name)
  if not state_cache then return nil end
  return { state_cache:_db():get_destination_states(who, source_name) }
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
-- The source resumes from what the destination confirmed before.
local function write_direct(dest, source, opts, state_cache, run)
  local who = run.who
  local selected = source:_streams_for(opts.streams)
  local cat = source:get_configured_catalog{ streams = selected, force_full_refresh = opts.force_full_refresh }
  with_strategy(cat, opts.write_strategy)
  local set = {}
  for _, cs in ipairs(cat.streams) do set[cs.stream.name] = true end
  local state_in
  if not opts.force_full_refresh then
    local rows = destination_rows(state_cache, who, source.name)
    state_in = rows and read.state_file((read.states_to_pass(source, selected, rows)))
  end
  local ledger = new_ledger(who, source.name, state_cache, run)
  local tracker = progress.new{ job = ("Write `%s` -> `%s`"):format(source.name, dest.name),
                                quiet = opts.quiet, mask = errors.mask }
  local prefix = opts.stream_prefix
  local checks = require("airbyte.validation").prepare(opts.validate, cat, state_cache and state_cache:_db(),
    source.name, "Destination:write")
  local dp, dfiles <close> = dest:_start("write", { config = dest:get_config(), catalog = prefixed_catalog(cat, prefix) },
                                         { stdin = true })
  local reader = start_reader(dest, dp, ledger, run, prefix)
  local sp, sfiles <close> = source:_start("read", { config = source:get_config(), catalog = cat, state = state_in })
  local src_run = { trace_errors = {} }
  local pumped, totals = pcall(pump.to_process, sp, dp, {
    streams = set, on_record = opts.on_record, hooks = opts.hooks, stream_prefix = prefix, validate = checks,
    on_progress = function(t) tracker:update(t) end,
    on_message = function(msg, since, _, _, _, disposition, expected, text)
      if msg.type == "STATE" then
        -- every state is forwarded, so every one is a send the echoes count
        -- against; a side-channel one (the state rules' "skip") carries no
        -- checkpoint of its own
        local side = disposition == "skip"
        if not side and expected then
          run.warnings[#run.warnings + 1] = ("the source says %d records before a state, %d arrived"):format(expected, since)
        end
        ledger:sent(text, since, nil, side)
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
  require("airbyte.read").warn_invalid(run, totals.invalid, source.name, sp:log_file(),
    opts.validate and opts.validate.on_invalid)
  sp:close()
  finish_write(dest, dp, reader, run, ledger)
  if not sok then error(serr, 0) end
  tracker:finish(totals)
  return totals
end

-- From a cache: per stream, the rows the destination has not confirmed
-- (append/merge) or all rows (replace), then the stream's cached state and
-- a COMPLETE status; after every stream, the source's other states
-- (GLOBAL, LEGACY, its bookkeeping states outside the catalog), as the
-- source sent them on its way into the cache. What the destination
-- confirmed is kept in the ledger beside its states, in the state cache;
-- without one (state_cache = false) every row is sent.
local function write_from_cache(dest, source_name, cache, names, cat, opts, state_cache, run)
  local who = run.who
  local methods = with_strategy(cat, opts.write_strategy)
  local ledger = new_ledger(who, source_name, state_cache, run)
  local db = cache:_db()
  local ledger_db = state_cache and state_cache:_db()
  local tracker = progress.new{ job = ("Write cache -> `%s`"):format(dest.name), quiet = opts.quiet, mask = errors.mask }
  -- the source's cached states by key; which keys are streams of this write
  local texts, snames, sns = db:get_states(source_name)
  local cached, order = {}, {}
  for i, text in ipairs(texts) do
    local id = read.stream_id(snames[i], sns[i] ~= "" and sns[i] or nil)
    cached[id] = text
    order[#order + 1] = id
  end
  local stream_ns, written, known = {}, {}, {}
  for _, cs in ipairs(cat.streams) do stream_ns[cs.stream.name] = cs.stream.namespace end
  for _, n in ipairs(names) do written[read.stream_id(n, stream_ns[n])] = true end
  for _, n in ipairs(cache:_stream_names()) do known[read.stream_id(n)] = true end
  local prefix = opts.stream_prefix
  local dp, dfiles <close> = dest:_start("write", { config = dest:get_config(), catalog = prefixed_catalog(cat, prefix) },
                                         { stdin = true })
  local function send_state(text)
    assert(dp:write(prefixed(('{"type":"STATE","state":%s}'):format(text), prefix) .. "\n"))
  end
  local reader = start_reader(dest, dp, ledger, run, prefix)
  local totals = { records = 0, bytes = 0, streams = {} }
  local uncovered = {}      -- streams confirmed by no STREAM state of their own
  local ok, err = pcall(function()
    for _, name in ipairs(names) do
      local method = methods[name]
      local ns = stream_ns[name]
      local after = nil
      if ledger_db and method ~= "replace" and not opts.force_full_refresh then
        after = ledger_db:get_delivered(who, source_name, ns, name)
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
        if last_id and ledger_db then ledger_db:put_delivered(who, source_name, ns, name, last_id) end
      end
      local st_text = cached[read.stream_id(name, stream_ns[name])]
      if st_text then
        ledger:sent(st_text, sent.records, confirm)
        send_state(st_text)
      else
        uncovered[#uncovered + 1] = { confirm = confirm, records = sent.records }
      end
      assert(dp:write(('{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":%d.0,'
        .. '"stream_status":{"stream_descriptor":{"name":%s},"status":"COMPLETE"}}}\n'):format(
        core.time_ms(), json.encode((prefix or "") .. name))))
    end
    -- the other states: all but those of cached streams this write leaves out
    local covered = false
    for _, id in ipairs(order) do
      local text = cached[id]
      if not written[id] and not known[id] then
        local t = sqlite.state_key(text)
        local count, on_confirm = 0, nil
        if t ~= "STREAM" and not covered then
          -- a GLOBAL / LEGACY state covers every stream without its own
          covered = true
          local list = uncovered
          for _, u in ipairs(list) do count = count + u.records end
          on_confirm = function() for _, u in ipairs(list) do u.confirm() end end
          uncovered = {}
        end
        ledger:sent(text, count, on_confirm)
        send_state(text)
      end
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
  -- streams no state covers: confirmed by the destination's clean exit
  for _, u in ipairs(uncovered) do u.confirm() end
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
                           "quiet", "on_record", "hooks", "stream_prefix", "checks", "validate", "lock_timeout" }
local write_any

function M.write(dest, source_data, opts)
  opts = options.check(opts, M.OPTIONS, "Destination:write")
  local kind = kind_of(source_data)
  if not kind then
    errors.raise("PyAirbyteInputError", "write() takes a Source or a ReadResult",
      { input_value = tostring(source_data) })
  end
  local caches = require "airbyte.caches"
  local source_name = kind == "source" and source_data.name or source_data.source_name
  -- A ReadResult is in its cache already: it is written from there whatever
  -- opts.cache says (cache = false only means "do not read into a cache").
  local cache = opts.cache
  if kind == "result" then cache = source_data.cache
  elseif cache ~= false then cache = cache or caches.get_default_cache() end
  if opts.stream_prefix ~= nil and (type(opts.stream_prefix) ~= "string" or opts.stream_prefix == "") then
    errors.raise("PyAirbyteInputError", "stream_prefix must be a non-empty string",
      { input_value = tostring(opts.stream_prefix) })
  end
  if opts.checks ~= nil and cache == false then
    errors.raise("PyAirbyteInputError", "write{checks=} runs its checks in the cache: it cannot be used with cache = false")
  end
  local state_cache = opts.state_cache
  if state_cache == nil then state_cache = cache or caches.get_default_cache() end
  -- the identity as the write starts (a CONTROL update may change the config)
  local run = { trace_errors = {}, warnings = {}, who = identity(dest) }
  local ok, totals, invalid = pcall(write_any, dest, kind, source_data, source_name, cache, opts, state_cache, run)
  -- a config the destination changed itself (CONTROL) is the same destination
  local now = identity(dest)
  if state_cache and now.config_hash ~= run.who.config_hash then
    local moved, merr = pcall(state_cache._db(state_cache).move_destination, state_cache:_db(), dest.name,
                              run.who.config_hash, now.config_hash)
    if moved then run.who = now elseif ok then error(merr, 0) end   -- the write's own error first
  end
  if not ok then error(totals, 0) end
  for i, w in ipairs(run.warnings) do run.warnings[i] = errors.mask(w); log.write("warning: ", run.warnings[i], "\n") end
  return require("airbyte.write_result").new{
    destination = dest, source_name = source_name, processed_records = totals.records,
    totals = totals, state_cache = state_cache, warnings = run.warnings, identity = run.who,
    confirmed_states = run.confirmed_states or 0, invalid_records = invalid or {},
  }
end

-- The write itself, on the path the input and options choose.
write_any = function(dest, kind, source_data, source_name, cache, opts, state_cache, run)
  local totals, invalid
  if kind == "source" and cache == false then
    totals = write_direct(dest, source_data, opts, state_cache, run)
    invalid = totals.invalid
  else
    local names, cat
    if kind == "source" then
      -- the streams given, without selecting them on the source; the cache's
      -- states first, else what this destination confirmed, else from scratch
      local streams = source_data:_streams_for(opts.streams)
      local result = read.read(source_data, { cache = cache, write_strategy = opts.write_strategy,
                                              force_full_refresh = opts.force_full_refresh, quiet = opts.quiet,
                                              on_record = opts.on_record, hooks = opts.hooks,
                                              validate = opts.validate, lock_timeout = opts.lock_timeout },
                               { streams = streams,
                                 fallback_states = destination_rows(state_cache, run.who, source_data.name) })
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
      local known = source_data.catalog
      cat = known and M.subset(known, names) or catalog_from_cache(cache, names)
    end
    if opts.checks then   -- nothing is sent unless the cached data passes
      require("airbyte.checks").require_passing(cache, opts.checks, nil,
        ("write to '%s'"):format(dest.name))
    end
    totals = write_from_cache(dest, source_name, cache, names, cat, opts, state_cache, run)
  end
  return totals, invalid
end

return M
