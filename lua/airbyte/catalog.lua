-- Catalogs: the configured catalog PyAirbyte builds for a read or a write,
-- and the write method a stream resolves to.
local errors = require "airbyte.errors"
local json = require "airbyte.json"

local M = {}

-- first element of a PK/cursor path list, for top-level keys
local function top_level(path, what, stream)
  if type(path) == "string" then return path end
  if type(path) == "table" and #path == 1 then return path[1] end
  errors.raise("PyAirbyteInputError",
    ("stream '%s': nested %s are not supported (%s)"):format(stream, what, json.encode(path)))
end

-- Primary key columns of a configured stream, as a list of top-level names.
function M.primary_key(cs)
  local pk = {}
  for i, path in ipairs(cs.primary_key or {}) do pk[i] = top_level(path, "primary keys", cs.stream.name) end
  return pk
end

function M.cursor_field(cs)
  local c = cs.cursor_field
  if c == nil or #c == 0 then return nil end
  return top_level(c, "cursor fields", cs.stream.name)
end

local methods = { append = "append", merge = "merge", replace = "replace", auto = "auto" }
local sync_modes = { append = "append", merge = "append_dedup", replace = "overwrite" }

-- auto: primary key -> merge, cursor -> append, else replace (PyAirbyte).
function M.resolve_write_method(cs, strategy)
  strategy = strategy or "auto"
  if not methods[strategy] then
    errors.raise("PyAirbyteInputError",
      ("write_strategy must be one of auto, append, merge, replace (got '%s')"):format(tostring(strategy)),
      { input_value = tostring(strategy) })
  end
  local pk = M.primary_key(cs)
  if strategy == "merge" and #pk == 0 then
    errors.raise("PyAirbyteInputError", "Cannot use merge strategy on a stream with no primary keys.",
      { stream_name = cs.stream.name })
  end
  if strategy ~= "auto" then return strategy end
  if #pk > 0 then return "merge" end
  if M.cursor_field(cs) then return "append" end
  return "replace"
end

function M.destination_sync_mode(method)
  return sync_modes[method]
end

local function supports(stream, mode)
  for _, m in ipairs(stream.supported_sync_modes or {}) do
    if m == mode then return true end
  end
  return false
end

-- Builds the ConfiguredAirbyteCatalog for `names` from a discovered catalog.
-- sync_mode is incremental unless force_full_refresh (and the stream can do
-- full_refresh) or the stream cannot do incremental; destination_sync_mode
-- overwrite; PK and cursor from the overrides or the source's defaults.
function M.configure(discovered, names, opts)
  opts = opts or {}
  -- a stream is (namespace, name): a selected name brings the streams of
  -- that name in every namespace, once
  local by_name, selected, seen = {}, {}, {}
  for _, s in ipairs(discovered.streams) do
    by_name[s.name] = by_name[s.name] or {}
    table.insert(by_name[s.name], s)
  end
  for _, name in ipairs(names) do
    for _, s in ipairs(not seen[name] and by_name[name] or {}) do selected[#selected + 1] = s end
    seen[name] = true
  end
  local out = {}
  for _, s in ipairs(selected) do
    local name = s.name
    local mode = "incremental"
    if (opts.force_full_refresh and supports(s, "full_refresh")) or not supports(s, "incremental") then
      mode = "full_refresh"
    end
    local pk = opts.primary_keys and opts.primary_keys[name:lower()]
    if pk then
      pk = type(pk) == "string" and { { pk } } or (function()
        local t = {}
        for i, k in ipairs(pk) do t[i] = { k } end
        return t
      end)()
    else
      pk = s.source_defined_primary_key
    end
    local cursor = opts.cursor_keys and opts.cursor_keys[name:lower()]
    cursor = cursor and { cursor } or s.default_cursor_field
    local cs = {
      stream = s, sync_mode = mode, destination_sync_mode = "overwrite",
      primary_key = pk and json.array(pk) or nil,
      cursor_field = cursor and json.array(cursor) or nil,
      generation_id = 1, minimum_generation_id = 1, sync_id = 1,
    }
    out[#out + 1] = cs
  end
  return { streams = json.array(out) }
end

return M
