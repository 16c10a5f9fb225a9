-- DeclarativeStream and SimpleRetriever: partitions × cursor slices, the page
-- loop (request, decode, select, observe, paginate) and the stream's state,
-- shaped like the CDK's (reference §3). The schema loaders are in
-- schema_loaders.lua, the response decoders in decoders.lua.
--
--   s = M.DeclarativeStream(node, path, F)
--   s.name, s.primary_key, s.cursor_field, s.schema(), s.catalog_entry()
--   s.read(config, stream_state, on_record, on_state, opts)
--   s.read_records(config, fn(record, slice))     full refresh (parents, check)
local json = require "airbyte.json"
local interp = require "airbyte.declarative.interpolation"
local manifest = require "airbyte.declarative.manifest"
local ro = require "airbyte.declarative.request_options"
local cursors = require "airbyte.declarative.cursors"
local routers = require "airbyte.declarative.routers"

local M = {}

local NONE = json.null
local object = manifest.object
local function array(t) return setmetatable(t or {}, json.array_mt) end

-- The final state of a full-refresh stream, as the CDK's FinalStateCursor emits it.
M.NO_CURSOR_STATE = "__ab_no_cursor_state_message"

-- SimpleRetriever ----------------------------------------------------------------------

function M.SimpleRetriever(node, path, F)
  manifest.fields(node, "SimpleRetriever", path,
    "requester record_selector paginator partition_router decoder ignore_stream_slicer_parameters_on_paginated_requests")
  local r = {}
  r.requester = F.build(node.requester or {}, path .. ".requester", "requester")
  r.selector = F.build(node.record_selector or {}, path .. ".record_selector", "RecordSelector")
  r.paginator = F.build(node.paginator or { type = "NoPagination" }, path .. ".paginator", "paginator")
  r.decoder = F.build(node.decoder or { type = "JsonDecoder" }, path .. ".decoder", "decoder")
  local pr = node.partition_router
  if pr ~= nil and pr ~= NONE then
    local list = manifest.is_list(pr) and pr or { pr }
    local built = {}
    for i, x in ipairs(list) do
      local sub = manifest.is_list(pr) and ("%s.partition_router[%d]"):format(path, i - 1) or path .. ".partition_router"
      built[i] = F.build(x, sub, "partition_router")
    end
    if #built > 0 then r.router = routers.product(built) end
  end
  r.ignore_slicer_on_pages = node.ignore_stream_slicer_parameters_on_paginated_requests == true
  return r
end

-- DeclarativeStream ----------------------------------------------------------------------

local function primary_key_of(pk)
  if pk == nil or pk == NONE or pk == "" then return nil end
  if type(pk) == "string" then return array{ array{ pk } } end
  local out = array()
  for i, k in ipairs(pk) do
    if type(k) == "table" then out[i] = array{ table.unpack(k) } else out[i] = array{ k } end
  end
  if #out == 0 then return nil end
  return out
end

local Stop = {}

function M.DeclarativeStream(node, path, F)
  manifest.fields(node, "DeclarativeStream", path,
    "name retriever incremental_sync primary_key schema_loader transformations state_migrations")
  local s = { name = node.name, path = path }
  if type(s.name) ~= "string" or s.name == "" then manifest.config_error(path .. " has no name") end
  if type(node.state_migrations) == "table" and #node.state_migrations > 0 then
    manifest.config_error(path .. ".state_migrations are not supported by luabyte")
  end
  local params = node["$parameters"] or object()
  s.primary_key = primary_key_of(node.primary_key)
  local loader = F.build(node.schema_loader or { type = "JsonFileSchemaLoader" }, path .. ".schema_loader",
    "schema_loader", s.name)
  -- the retriever and the cursor are built on first use: a stream that needs
  -- custom Python components still has a schema for discover
  local built, build_err
  local retriever, cursor, transformations
  local function build()
    if built then return end
    if build_err then error(build_err, 0) end
    local ok, err = pcall(function()
      retriever = F.build(node.retriever or {}, path .. ".retriever", "retriever")
      local inc = node.incremental_sync
      if inc ~= nil and inc ~= NONE then cursor = F.build(inc, path .. ".incremental_sync", "incremental_sync") end
      transformations = {}
      for i, t in ipairs(node.transformations or {}) do
        transformations[i] = F.build(t, ("%s.transformations[%d]"):format(path, i - 1), "transformation")
      end
    end)
    if not ok then build_err = err; error(err, 0) end
    built = true
  end
  s.build = build
  local incremental = node.incremental_sync ~= nil and node.incremental_sync ~= NONE
  if incremental then
    local cf = node.incremental_sync.cursor_field
    s.cursor_field = cf and interp.str(cf)
  end

  local schema_cache
  function s.schema(config)
    if not schema_cache then schema_cache = loader.load({ config = config, parameters = params }) end
    return schema_cache
  end

  function s.catalog_entry(config)
    local e = object{ name = s.name, json_schema = s.schema(config),
                      supported_sync_modes = array{ "full_refresh" } }
    if incremental then
      e.supported_sync_modes[2] = "incremental"
      e.source_defined_cursor = true
      if s.cursor_field and not s.cursor_field:find("{{", 1, true) then
        e.default_cursor_field = array{ s.cursor_field }
      else
        e.default_cursor_field = array{ interp.str(interp.eval(s.cursor_field or "", { config = config, parameters = params }) or "") }
      end
    end
    e.source_defined_primary_key = s.primary_key
    e.is_resumable = incremental
    return e
  end

  -- Reads one slice of one partition: every page.
  local function read_slice(config, partition, cslice, c, stream_state, on_record, log)
    local slice = object()
    for k, v in pairs(partition) do slice[k] = v end
    for k, v in pairs(cslice) do slice[k] = v end
    local base = { config = config, parameters = params, stream_slice = slice, stream_partition = slice,
                   stream_interval = slice, stream_state = stream_state or object(), next_page_token = NONE }
    local pag = retriever.paginator.new(base)
    local token = pag.first_token()
    local schema = s.schema(config)
    while true do
      local ctx = {}
      for k, v in pairs(base) do ctx[k] = v end
      if token ~= nil then ctx.next_page_token = object{ next_page_token = token } end
      local opts = ro.new()
      if token == nil or not retriever.ignore_slicer_on_pages then
        if retriever.router then retriever.router.inject(opts, partition, ctx) end
        if c then c.inject(opts, cslice, ctx) end
      end
      pag.inject(opts, token, ctx)
      local resp = retriever.requester.fetch(ctx, opts, pag.path(token))
      if not resp then break end
      local body = retriever.decoder.decode(resp, F.env)
      local records, count = retriever.selector.select(body, ctx, transformations, schema)
      local older = false
      local last
      for _, rec in ipairs(records) do
        if not c or c.observe(rec, log) then on_record(rec, slice) end
        if c and cursor.is_data_feed and c.older_than_state(rec) then older = true end
        last = rec
      end
      if older then break end
      local pctx = {}
      for k, v in pairs(ctx) do pctx[k] = v end
      pctx.response = type(body) == "table" and body or object()
      pctx.headers = require("airbyte.declarative.requester").header_ctx(resp)
      pctx.last_record = last or NONE
      pctx.last_page_size = count
      token = pag.next_token({ ctx = pctx, count = count, records = records })
      if token == nil then break end
    end
  end

  -- read(config, stream_state, on_record(record, slice), on_state(state), opts)
  --   opts.full_refresh: ignore the cursor; opts.log(level, msg)
  function s.read(config, stream_state, on_record, on_state, opts)
    build()
    opts = opts or {}
    local log = opts.log
    local ctx = { config = config, parameters = params, stream_state = stream_state or object() }
    local partitions = retriever.router and retriever.router.partitions(ctx) or { object() }
    local use_cursor = cursor and not opts.full_refresh
    if use_cursor and retriever.router then
      local pstate = cursors.partitioned(cursor, stream_state, ctx)
      for _, p in ipairs(partitions) do
        local c = pstate.for_partition(p)
        for _, cs in ipairs(c.slices()) do
          read_slice(config, p, cs, c, stream_state, on_record, log)
          c.close_slice()
        end
        pstate.close(p)
        if on_state then on_state(pstate.state()) end
      end
      if on_state and #partitions == 0 then on_state(pstate.state()) end
    elseif use_cursor then
      local c = cursor.new(stream_state, ctx)
      local slices = c.slices()
      for _, cs in ipairs(slices) do
        read_slice(config, partitions[1], cs, c, stream_state, on_record, log)
        c.close_slice()
        if on_state then on_state(c.state()) end
      end
      -- nothing to read (a state ahead of the end): the state stands
      if on_state and #slices == 0 then on_state(c.state()) end
    else
      for _, p in ipairs(partitions) do
        read_slice(config, p, object(), nil, stream_state, on_record, log)
      end
      if on_state then on_state(object{ [M.NO_CURSOR_STATE] = true }) end
    end
  end

  function s.read_records(config, fn)
    s.read(config, nil, fn, nil, { full_refresh = true })
  end

  -- check: the first record of the first slice, or none (both succeed)
  function s.check_read(config)
    build()
    local ok, err = pcall(s.read, config, nil, function() error(Stop, 0) end, nil, {})
    if not ok and err ~= Stop then error(err, 0) end
  end
  return s
end

return M
