-- DatetimeBasedCursor (with MinMaxDatetime) and the per-partition state the
-- CDK keeps when a partition router is present (reference §5):
--   cursor = M.DatetimeBasedCursor(node, path, F)
--   c = cursor.new(stream_state, ctx)       one sync of one partition
--   c.slices() -> list of cursor slices      { start_time = "...", end_time = "..." }
--   c.inject(opts, slice, ctx)
--   c.observe(record) -> keep?               tracks the highest cursor value
--   c.close_slice(); c.state() -> { <cursor_field> = value }
--   c.stop_paging(records) -> bool           is_data_feed: older records reached
--   M.partitioned(cursor, stream_state, ctx) the same for many partitions:
--     :for_partition(partition) -> c; :state() -> { states = [...], ... }
local json = require "airbyte.json"
local interp = require "airbyte.declarative.interpolation"
local manifest = require "airbyte.declarative.manifest"
local dt = require "airbyte.declarative.datetime"
local ro = require "airbyte.declarative.request_options"

local M = {}

local object = manifest.object
local DEFAULT_FORMAT = "%Y-%m-%dT%H:%M:%S.%f%z"

local function parse_with(text, formats)
  if dt.is(text) then return text end
  if text == nil or text == json.null then return nil end
  local s = interp.str(text)
  for _, f in ipairs(formats) do
    local d = dt.parse(s, f)
    if d then return d end
  end
  return nil
end

function M.MinMaxDatetime(node, path, F, parent_format)
  if type(node) ~= "table" then node = { datetime = node } end
  manifest.fields(node, "MinMaxDatetime", path, "datetime datetime_format min_datetime max_datetime")
  local fmt = node.datetime_format
  if fmt == nil or fmt == json.null or fmt == "" then fmt = parent_format or DEFAULT_FORMAT end
  local tpl = interp.compile(interp.str(node.datetime or ""), path .. ".datetime")
  local min_t = node.min_datetime and interp.compile(interp.str(node.min_datetime), path .. ".min_datetime")
  local max_t = node.max_datetime and interp.compile(interp.str(node.max_datetime), path .. ".max_datetime")
  local function read(t, ctx, what)
    local v = t:eval(ctx)
    if v == nil then return nil end
    local d = parse_with(v, { fmt }) or dt.parse_iso(interp.str(v))
    if not d then
      manifest.config_error(("%s.%s: '%s' does not match the datetime format '%s'")
        :format(path, what, interp.str(v), fmt))
    end
    return d
  end
  return {
    get = function(ctx)
      local d = read(tpl, ctx, "datetime")
      if not d then manifest.config_error(("%s.datetime is empty (%s)"):format(path, tpl.text)) end
      local lo = min_t and read(min_t, ctx, "min_datetime")
      local hi = max_t and read(max_t, ctx, "max_datetime")
      if lo and d < lo then d = lo end
      if hi and hi < d then d = hi end
      return d
    end,
  }
end

local function duration_of(v, path, what, ctx)
  if v == nil or v == json.null then return nil end
  local s = interp.eval(interp.str(v), ctx or {})
  if s == nil then return nil end
  local d, err = dt.duration(interp.str(s))
  if not d then manifest.config_error(("%s.%s: %s"):format(path, what, err)) end
  return d
end

function M.DatetimeBasedCursor(node, path, F)
  manifest.fields(node, "DatetimeBasedCursor", path,
    "cursor_field datetime_format cursor_datetime_formats start_datetime end_datetime step cursor_granularity "
    .. "lookback_window start_time_option end_time_option partition_field_start partition_field_end "
    .. "is_data_feed is_client_side_incremental is_compare_strictly")
  if node.datetime_format == nil then manifest.config_error(path .. ".datetime_format is required") end
  local fmt = node.datetime_format
  local field_t = interp.compile(interp.str(node.cursor_field or ""), path .. ".cursor_field")
  local formats = {}
  for _, f in ipairs(node.cursor_datetime_formats or {}) do formats[#formats + 1] = f end
  local record_formats = #formats > 0 and formats or { fmt }
  local state_formats = { fmt }
  for _, f in ipairs(formats) do state_formats[#state_formats + 1] = f end
  if node.start_datetime == nil then manifest.config_error(path .. ".start_datetime is required") end
  local start = M.MinMaxDatetime(node.start_datetime, path .. ".start_datetime", F, fmt)
  local finish = node.end_datetime and M.MinMaxDatetime(node.end_datetime, path .. ".end_datetime", F, fmt)
  if (node.step == nil) ~= (node.cursor_granularity == nil) then
    manifest.config_error(path .. ": step and cursor_granularity must be given together")
  end
  local start_opt = node.start_time_option and ro.build(node.start_time_option, path .. ".start_time_option")
  local end_opt = node.end_time_option and ro.build(node.end_time_option, path .. ".end_time_option")
  local pstart = interp.compile(interp.str(node.partition_field_start or "start_time"), path .. ".partition_field_start")
  local pend = interp.compile(interp.str(node.partition_field_end or "end_time"), path .. ".partition_field_end")
  local strict = node.is_compare_strictly == true
  local cursor = { is_data_feed = node.is_data_feed == true, client_side = node.is_client_side_incremental == true }

  function cursor.field(ctx) return field_t:render(ctx) end

  function cursor.new(stream_state, ctx)
    local field = field_t:render(ctx)
    local c = {}
    local lower_sync = start.get(ctx)
    local now = dt.now(interp.clock)
    local upper = finish and finish.get(ctx) or now
    if now < upper then upper = now end
    local state_value
    if type(stream_state) == "table" and stream_state[field] ~= nil then
      state_value = parse_with(stream_state[field], state_formats)
      if not state_value then
        manifest.config_error(("%s: the state value '%s' of '%s' matches none of the datetime formats")
          :format(path, interp.str(stream_state[field]), field))
      end
    end
    local highest = state_value      -- the value the state reports
    local slice_max                  -- highest record value in the open slice
    local step = duration_of(node.step, path, "step", ctx)
    local granularity = duration_of(node.cursor_granularity, path, "cursor_granularity", ctx)
    local lookback = duration_of(node.lookback_window, path, "lookback_window", ctx)

    function c.slices()
      local lo = lower_sync
      if upper < lo then lo = upper end
      if state_value then
        local from = lookback and dt.add(state_value, lookback, -1) or state_value
        if lo < from then lo = from end
      end
      local ks, ke = pstart:render(ctx), pend:render(ctx)
      local out = {}
      local s = lo
      while (strict and s < upper) or (not strict and s <= upper) do
        local e, nxt = upper, nil
        if step then
          nxt = dt.add(s, step)
          local cand = granularity and dt.add(nxt, granularity, -1) or nxt
          if cand < e then e = cand end
        end
        out[#out + 1] = object{ [ks] = dt.format(s, fmt), [ke] = dt.format(e, fmt) }
        if not step then break end
        if not (s < nxt) then break end
        s = nxt
      end
      return out
    end

    function c.inject(opts, slice, c2)
      if start_opt then start_opt:inject(opts, slice[pstart:render(c2)], c2, path .. ".start_time_option") end
      if end_opt then end_opt:inject(opts, slice[pend:render(c2)], c2, path .. ".end_time_option") end
    end

    -- keep the record? (within the sync window; a record without the field is kept)
    function c.observe(record, log)
      local raw = record[field]
      if raw == nil or raw == json.null then
        if log then log("WARN", ("record without cursor field '%s' kept"):format(field)) end
        return true
      end
      local v = parse_with(raw, record_formats)
      if not v then
        if log then log("WARN", ("cursor value '%s' of '%s' matches none of the formats; record kept")
          :format(interp.str(raw), field)) end
        return true
      end
      if v < lower_sync or upper < v then return false end
      if cursor.client_side and state_value and v < state_value then return false end
      if not slice_max or slice_max < v then slice_max = v end
      return true
    end

    function c.older_than_state(record)
      if not state_value then return false end
      local v = parse_with(record[field], record_formats)
      return v ~= nil and v < state_value
    end

    function c.close_slice()
      if slice_max and (not highest or highest < slice_max) then highest = slice_max end
      slice_max = nil
    end

    function c.state()
      local v = highest or lower_sync
      return object{ [field] = dt.format(v, fmt) }
    end

    function c.has_value() return highest ~= nil end
    return c
  end
  return cursor
end

-- Partitioned state ----------------------------------------------------------------

local function partition_key(p)
  local clean = {}
  for k, v in pairs(p) do clean[k] = v end
  return json.encode(setmetatable(clean, json.object_mt))
end

function M.partitioned(cursor, stream_state, ctx)
  local states = {}       -- key -> { partition, cursor_state }
  local order = {}
  local global
  if type(stream_state) == "table" then
    if type(stream_state.states) == "table" then
      for _, s in ipairs(stream_state.states) do
        if type(s) == "table" and type(s.partition) == "table" then
          local k = partition_key(s.partition)
          states[k] = { partition = s.partition, state = s.cursor }
          order[#order + 1] = k
        end
      end
    end
    if type(stream_state.state) == "table" then global = stream_state.state end
    -- a plain cursor state (no partitions yet): every partition starts from it
    if stream_state.states == nil and next(stream_state) ~= nil then global = stream_state end
  end
  local self = { open = {} }
  function self.for_partition(partition)
    local k = partition_key(partition)
    local entry = states[k]
    if not entry then
      entry = { partition = partition }
      states[k] = entry
      order[#order + 1] = k
    end
    local c = cursor.new(entry.state or global, ctx)
    entry.cursor = c
    return c
  end
  function self.close(partition)
    local entry = states[partition_key(partition)]
    if entry and entry.cursor then entry.state = entry.cursor.state() end
  end
  function self.state()
    local list = setmetatable({}, json.array_mt)
    local field = cursor.field(ctx)
    local min
    for _, k in ipairs(order) do
      local e = states[k]
      if e.state then
        local p = {}
        for pk, pv in pairs(e.partition) do p[pk] = pv end
        list[#list + 1] = object{ partition = object(p), cursor = e.state }
        local v = e.state[field]
        if v ~= nil and (min == nil or tostring(v) < tostring(min)) then min = v end
      end
    end
    local out = object{ states = list, use_global_cursor = false }
    if min ~= nil then out.state = object{ [field] = min }
    elseif global then out.state = global end
    return out
  end
  return self
end

return M
