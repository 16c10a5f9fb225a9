-- Source:read(): a connector's records into a cache, with incremental state.
--
-- Records and the STATE that follows them commit in one transaction: a
-- crash (or kill -9) leaves the cache at the last committed state, never
-- with state ahead of data. A stream written with `replace` fills a shadow
-- table that is swapped in, together with its state, only when the source
-- has finished successfully.
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local log = require "airbyte.log"
local catalog = require "airbyte.catalog"
local pump = require "airbyte.pump"
local progress = require "airbyte.progress"
local options = require "airbyte.options"
local core = require "airbyte.core"

local M = {}


-- "namespace\0name": a stream, or a state's key, as one table key.
local function stream_id(name, namespace)
  return (namespace or "") .. "\0" .. name
end
M.stream_id = stream_id

-- The states to hand back to a source, from stored rows (texts, names,
-- namespaces as the cache's get_states returns them: keys derived in C).
-- Every state the source emitted goes back, as the platform does: GLOBAL,
-- LEGACY, and STREAM states of streams outside its catalog (a source's own
-- bookkeeping, in namespaces of its own), except the states of catalog
-- streams that are not read this time. `fallback` (rows of the same
-- shape, a destination's stored states) fills the keys the first rows do
-- not have. Returns the decoded states and the names of selected streams
-- that have one.
function M.states_to_pass(source, selected, rows, fallback)
  local catalog_ids, wanted = {}, {}
  for _, s in ipairs(source.discovered_catalog.streams) do catalog_ids[stream_id(s.name, s.namespace)] = s.name end
  for _, n in ipairs(selected) do wanted[n] = true end
  local out, seen, incremental = {}, {}, {}
  for _, set in ipairs({ rows, fallback or { {}, {}, {} } }) do
    local texts, names, namespaces = set[1], set[2], set[3]
    for i, text in ipairs(texts) do
      local id = stream_id(names[i], namespaces[i] ~= "" and namespaces[i] or nil)
      local catalog_name = catalog_ids[id]
      if not seen[id] and (catalog_name == nil or wanted[catalog_name]) then
        seen[id] = true
        out[#out + 1] = json.decode(text)
        if catalog_name then incremental[#incremental + 1] = catalog_name end
      end
    end
  end
  return out, incremental
end

-- What goes into the --state file: a JSON array of state messages, except
-- when the only state is a LEGACY one, whose bare `data` object is passed
-- instead. Sources of the LEGACY era (and the Faros kit today) read the
-- file as that object and silently ignore an array. With no state at all
-- there is no --state argument (nil): the protocol makes it optional, and
-- an empty array given to such a source becomes its state object.
function M.state_file(states)
  if #states == 0 then return nil end
  if #states == 1 and states[1].data ~= nil and require("airbyte.sqlite").state_key(states[1]) == "LEGACY" then
    return states[1].data
  end
  return json.array(states)
end

-- Adds a warning for the records a pump dropped as invalid (they are
-- otherwise only in the connector's log file).
-- Records that failed the read's own checks (validate) are reported apart
-- from those the source printed broken.
local POLICY_DID = { drop = "dropped", null = "kept with the failing fields nulled",
                     quarantine = "kept in _airbyte_quarantine" }

function M.warn_invalid(run, invalid, name, log_file, policy)
  local broken, checked = progress.split_invalid(invalid)
  local n, why = progress.invalid_summary(broken)
  if n > 0 then
    run.warnings[#run.warnings + 1] = ("'%s' printed %d invalid record(s), dropped: %s (the lines are in %s)")
      :format(name, n, why, tostring(log_file))
  end
  n, why = progress.invalid_summary(checked)
  if n > 0 then
    run.warnings[#run.warnings + 1] = ("%d record(s) of '%s' failed their checks, %s: %s")
      :format(n, name, POLICY_DID[policy] or "dropped", why)
  end
end

-- A cache write that failed for want of space (or an I/O error): the
-- cache's own message, which names the file, as a PyAirbyteCacheError.
local function cache_failure(e)
  local why = type(e) == "string" and (e:match("(the disk is full: .*)") or e:match("([^:]* %(cache file .*)"))
  if not why then return nil end
  return errors.new("PyAirbyteCacheError", why, {
    guidance = "Free space for the cache file (or use a cache elsewhere) and read again: what was "
      .. "committed is kept, and the read resumes from its last committed state." })
end

-- Stream locks (issue 9 §4): a read holds the lock of each stream it
-- reads, in the cache, from before it looks up the state until its last
-- commit, so two runners (processes, or tasks of one script) on one
-- stream never both read from the same state: the second waits up to
-- lock_timeout seconds (default 60), yielding, then fails naming the
-- stream and the holder. Streams are taken in (namespace, name) order, so
-- two reads of overlapping stream sets cannot hold one each and wait for
-- the other. Returns the release function.
M.DEFAULT_LOCK_TIMEOUT = 60
local function lock_streams(db, source, cat, timeout_s)
  local list = {}
  for _, cs in ipairs(cat.streams) do
    local ns = cs.stream.namespace
    list[#list + 1] = { cs.stream.name, ns ~= json.null and ns or nil }
  end
  table.sort(list, function(a, b) return stream_id(a[1], a[2]) < stream_id(b[1], b[2]) end)
  local held = {}
  local function release()
    for i = #held, 1, -1 do pcall(db.unlock_stream, db, source.name, held[i][1], held[i][2]) end
    held = {}
  end
  local deadline = core.now() + timeout_s * 1000
  for _, s in ipairs(list) do
    while true do
      local called, ok, why = pcall(db.try_lock_stream, db, source.name, s[1], s[2])
      if not called then     -- not a refusal: the backend cannot lock it (a name it cannot store...)
        release()
        local fields = { connector_name = source.name, context = { stream = s[1], namespace = s[2] } }
        local msg = tostring(ok):gsub("^[^\n:]*:%d+: ", "", 1)
        if msg:match("^%w+Error: ") then require("airbyte.caches").rethrow(msg, fields) end
        errors.raise("PyAirbyteCacheError", msg, fields)
      end
      if ok then held[#held + 1] = s; break end
      local left = deadline - core.now()
      if left <= 0 then
        release()
        errors.raise("PyAirbyteCacheError", ("%s; gave up after waiting %g s (lock_timeout)"):format(why, timeout_s), {
          connector_name = source.name, context = { stream = s[1], namespace = s[2] },
          guidance = "Another runner is reading this stream into the same cache: wait for it to finish, "
            .. "or raise lock_timeout. Runners on different streams do not wait for each other." })
      end
      core.sleep(math.min(25, left))
    end
  end
  return release
end

M.OPTIONS = options.allow{ "cache", "streams", "write_strategy", "force_full_refresh", "skip_validation",
                           "quiet", "on_record", "hooks", "validate", "lock_timeout" }
-- read(source, opts [, internal]): internal, from Destination:write, may
-- give { streams = names } (read those without selecting them on the
-- source) and { fallback_states = rows } (a destination's stored states,
-- used for the keys the cache has no state for: the seed's "cache state
-- first, else the destination's, else a full refresh").
function M.read(source, opts, internal)
  opts = options.check(opts, M.OPTIONS, "Source:read")
  internal = internal or {}
  local caches = require "airbyte.caches"
  local cache = opts.cache or caches.get_default_cache()
  if opts.streams then source:select_streams(opts.streams) end
  local selected = source:_streams_for(internal.streams)
  local strategy = opts.write_strategy or "auto"
  if strategy == "replace" and not opts.force_full_refresh and not opts.quiet then
    -- PyAirbyteDataLossWarning: an incremental read brings only what is new,
    -- and replace keeps only what this read brings
    log.write("warning: write_strategy 'replace' without force_full_refresh keeps only the "
      .. "records this read brings; older cached rows of incremental streams are dropped\n")
  end
  if not opts.skip_validation then source:validate_config() end
  local cat = source:get_configured_catalog{ streams = selected, force_full_refresh = opts.force_full_refresh }
  local lock_timeout = opts.lock_timeout or M.DEFAULT_LOCK_TIMEOUT
  if type(lock_timeout) ~= "number" or lock_timeout < 0 then
    errors.raise("PyAirbyteInputError", "lock_timeout must be a number of seconds >= 0",
      { input_value = tostring(lock_timeout) })
  end
  -- a connection of the read's own while another task reads through this
  -- cache object (caches.lua), its stream locks; both go at the end, also
  -- when the read fails
  local db, release_db = cache:_writer()
  local unlock = function() end
  local _ <close> = setmetatable({}, { __close = function() unlock(); release_db() end })
  unlock = lock_streams(db, source, cat, lock_timeout)
  local since = db:uuid7()     -- every row this read writes has a greater raw id
  local state_in, incremental = nil, {}
  if not opts.force_full_refresh then
    local states
    states, incremental = M.states_to_pass(source, selected, { db:get_states(source.name) },
                                           internal.fallback_states)
    state_in = M.state_file(states)
  end
  if #incremental > 0 and not opts.quiet then
    table.sort(incremental)
    log.write(errors.mask(("The following streams are currently using incremental sync: %s. "
      .. "To perform a full refresh, set 'force_full_refresh=true'.\n"):format(table.concat(incremental, ", "))))
  end

  -- open the cache streams (tables, columns, shadow tables) in one
  -- transaction: a name clash (cache.h "Stream names") rolls all of it back
  -- before the source runs. A stream is (namespace, name): the pump gets
  -- one entry per cache stream (a second namespace of a name is keyed
  -- "<namespace>.<name>" in the totals).
  local streams, methods = {}, {}
  db:begin()
  local ok, err = pcall(function()
    for _, cs in ipairs(cat.streams) do
      local method = catalog.resolve_write_method(cs, strategy)
      local name, ns = cs.stream.name, cs.stream.namespace
      if ns == json.null then ns = nil end
      local key = name
      if streams[key] then key = (ns or "") .. "." .. name end   -- as result.streams names it
      while streams[key] do key = key .. "'" end
      methods[name] = method
      streams[key] = db:stream_open{
        source = source.name, stream = name, namespace = ns, schema = json.encode(cs.stream.json_schema),
        strategy = method, primary_key = catalog.primary_key(cs) }
    end
    db:commit()
  end)
  if not ok then
    pcall(db.rollback, db)   -- never hides err
    for _, s in pairs(streams) do s:close() end
    caches.rethrow(cache_failure(err) or err, { connector_name = source.name })
  end

  local tracker = progress.new{ job = ("Read `%s` -> %s"):format(source.name, cache.name or "cache"),
                                quiet = opts.quiet, mask = errors.mask }
  local run = { trace_errors = {}, statuses = {}, warnings = {}, states = 0 }
  local pending = {}           -- replace streams: state held until the swap
  local pending_global

  -- Every state is kept under its key; the pump applies the state rules of
  -- cache.h (C, once) and passes what they decide: the key, the disposition
  -- (a replaced stream's state is held until its table is swapped in,
  -- GLOBAL and LEGACY ones too when any stream is replaced, side-channel
  -- states are skipped, the others commit with the records before them),
  -- the count a state claims when it differs from what arrived, and the
  -- state's own text, stored as the source wrote it.
  local function on_message(msg, since, stype, sname, sns, disposition, expected, text)
    if msg.type == "STATE" and disposition == "skip" then
      run.side_channel = (run.side_channel or 0) + 1
    elseif msg.type == "STATE" and (run.trace_errors[1] or run.failed_status) then
      -- the read has failed (it raises at the end): nothing after the error commits
    elseif msg.type == "STATE" then
      if expected then
        run.warnings[#run.warnings + 1] = ("stream %s: the source says %d records before this state, %d arrived; "
          .. "the sync appears to have dropped records"):format(stype == "STREAM" and sname or "(global)",
          expected, since)
      end
      run.states = run.states + 1
      if disposition == "hold_stream" then
        pending[stream_id(sname)] = text
      elseif disposition == "hold_global" then
        pending_global = text
      else
        -- queued behind the rows before it: neither the commit nor the
        -- next begin (which may wait for another writer) holds the loop
        db:commit_state(source.name, text, true)
      end
    elseif msg.type == "TRACE" then
      local tr = msg.trace
      if tr and tr.type == "STREAM_STATUS" and tr.stream_status then
        local d = tr.stream_status.stream_descriptor
        if d then run.statuses[d.name] = tr.stream_status.status end
      else
        source:_common_message(msg, run)
      end
    else
      source:_common_message(msg, run)
    end
  end

  local hooks = opts.hooks
  local checks = require("airbyte.validation").prepare(opts.validate, cat, db, source.name, "Source:read")
  local p, files <close> = source:_start("read", { config = source:get_config(), catalog = cat, state = state_in })
  db:begin()
  local pumped, totals = pcall(pump.to_cache, p, {
    streams = streams, on_record = opts.on_record, hooks = hooks, on_message = on_message, validate = checks,
    on_progress = function(t) tracker:update(t) end, progress_ms = 500 })

  local function abort(e)
    p:terminate()
    pcall(p.wait, p)
    p:close()
    pcall(db.rollback, db)   -- never hides e (waits for the writer by yielding)
    for _, s in pairs(streams) do pcall(s.abort, s); s:close() end
    tracker:finish(nil, "Failed")
    error(e, 0)
  end
  if not pumped then
    abort(errors.is_error(totals) and totals or cache_failure(totals) or errors.new("AirbyteConnectorReadError",
      ("reading from '%s' failed: %s"):format(source.name, tostring(totals)),
      { connector_name = source.name, log_file = p:log_file(), log_text = p:tail() }))
  end
  local finished, ferr = pcall(source._finish, source, p, run, "AirbyteConnectorFailedError", "read")
  if not finished then abort(ferr) end
  M.warn_invalid(run, totals.invalid, source.name, p:log_file(), opts.validate and opts.validate.on_invalid)
  p:close()

  -- success: swap replaced tables in with their states, commit the rest
  local swapped, serr = pcall(function()
    db:settle()              -- the rows and commits queued: waited for by yielding
    for name, s in pairs(streams) do
      s:finish()
      if pending[stream_id(name)] then db:put_state(source.name, "", pending[stream_id(name)]) end
    end
    if pending_global then db:put_state(source.name, "", pending_global) end
    db:commit()
  end)
  for _, s in pairs(streams) do s:close() end
  if not swapped then
    pcall(db.rollback, db)
    error(cache_failure(serr) or serr, 0)
  end
  tracker:finish(totals)
  for name, st in pairs(totals.streams) do
    if st.clamped_emitted_at > 0 then
      run.warnings[#run.warnings + 1] = ("stream %s: %d record(s) had an emitted_at outside the years "
        .. "0001-9999 the cache can hold; stored as the nearest end of that range"):format(name, st.clamped_emitted_at)
    end
  end
  for i, w in ipairs(run.warnings) do run.warnings[i] = errors.mask(w); log.write("warning: ", run.warnings[i], "\n") end

  local names, seen = {}, {}
  for _, n in ipairs(selected) do
    if not seen[n] then seen[n] = true; names[#names + 1] = n end
  end
  return require("airbyte.read_result").new{
    source_name = source.name, processed_streams = names, cache = cache,
    processed_records = totals.records, totals = totals, warnings = run.warnings,
    invalid_records = totals.invalid, since_raw_id = since,
    stream_statuses = run.statuses, elapsed_ms = tracker.elapsed_ms, catalog = cat,
  }
end

return M
