-- ReadResult and CachedDataset (airbyte/results.py, airbyte/datasets/).
--
--   result["users"]           -> CachedDataset (unknown name: error listing the streams)
--   #dataset                  -> rows in the cache table (the whole table, as PyAirbyte)
--   for row in dataset:rows() -> typed rows: integers stay integers, JSON columns decoded
--   dataset:to_table()        -> array of rows
--   dataset:with_filter("age > 30") -> a narrower dataset (SQL expressions, ANDed)
--   result.streams, result.processed_records, result.cache, result.source_name
--   result:get_dataset(name [, namespace]) -> CachedDataset of one (namespace, name)
-- A stream is (namespace, name). A name read in several namespaces is
-- ambiguous: result[name] raises PyAirbyteInputError (use get_dataset),
-- pairs(result) yields it once per namespace (dataset.namespace says which)
-- and result.streams lists it as "<namespace>.<name>".
local errors = require "airbyte.errors"
local json = require "airbyte.json"
local class = require "airbyte.class"

local M = {}

local Dataset = class.new()

function M.dataset(cache, stream_name, filters, namespace)
  return setmetatable({ cache = cache, stream_name = stream_name, namespace = namespace,
                        table_name = cache:table_name(stream_name, namespace), _filters = filters or {} }, Dataset)
end

function Dataset:_sql(select)
  local sql = ("SELECT %s FROM \"%s\""):format(select, self.table_name)
  if #self._filters > 0 then
    local parts = {}
    for i, f in ipairs(self._filters) do parts[i] = "(" .. f .. ")" end
    sql = sql .. " WHERE " .. table.concat(parts, " AND ")
  end
  return sql
end

function Dataset:__len()
  local rows = self.cache:run_sql_query(self:_sql("count(*) AS n"))
  return rows[1].n
end

-- rows(): iterator over typed rows; closing the loop early finalizes the query.
function Dataset:rows()
  return self.cache:_rows(self:_sql("*"))
end

function Dataset:to_table()
  local out = {}
  for row in self:rows() do out[#out + 1] = row end
  return out
end

function Dataset:with_filter(...)
  local f = {}
  for i, x in ipairs(self._filters) do f[i] = x end
  for _, x in ipairs({ ... }) do
    if type(x) ~= "string" then errors.raise("PyAirbyteInputError", "with_filter takes SQL expressions (strings)") end
    f[#f + 1] = x
  end
  return M.dataset(self.cache, self.stream_name, f, self.namespace)
end

function Dataset:column_names()
  return self.cache:column_names(self.stream_name, self.namespace)
end

function Dataset:__tostring()
  return ("CachedDataset(%s)"):format(self.stream_name)
end

function Dataset:__eq(other)
  return getmetatable(other) == Dataset and other.cache == self.cache and other.stream_name == self.stream_name
    and other.namespace == self.namespace
end

M.CachedDataset = Dataset

-- The namespaces the read's catalog has for `name` (nil entries for none).
local function namespaces_of(result, name)
  local out = {}
  local cat = result.catalog
  for _, cs in ipairs(cat and cat.streams or {}) do
    if cs.stream.name == name then
      local ns = cs.stream.namespace
      if ns == json.null then ns = nil end
      out[#out + 1] = ns or false
    end
  end
  return out
end

local function dataset_of(result, name)
  local nss = namespaces_of(result, name)
  if #nss > 1 then
    local shown = {}
    for i, ns in ipairs(nss) do shown[i] = ns or "(none)" end
    errors.raise("PyAirbyteInputError",
      ("stream '%s' was read from several namespaces (%s): use result:get_dataset(name, namespace)"):format(
        name, table.concat(shown, ", ")), { stream_name = name })
  end
  return M.dataset(result.cache, name, nil, nss[1] or nil)
end

-- One entry per (namespace, name) of the read: key, name, namespace.
local function entries(result)
  local out = {}
  for _, n in ipairs(result.processed_streams) do
    local nss = namespaces_of(result, n)
    if #nss <= 1 then out[#out + 1] = { n, n, nss[1] or nil }
    else
      for _, ns in ipairs(nss) do out[#out + 1] = { (ns or "") .. "." .. n, n, ns or nil } end
    end
  end
  return out
end

-- The fields of a ReadResult (read.lua's); any may be nil for a result
-- made by hand (no catalog: the tables come from _airbyte_streams).
local FIELDS = { "source_name", "processed_streams", "cache", "processed_records", "totals", "warnings",
  "invalid_records", "since_raw_id", "stream_statuses", "elapsed_ms", "catalog" }

-- result.streams: name (or "namespace.name") -> dataset; result[name]: the
-- dataset of a stream of the read, else AirbyteStreamNotFoundError.
local Result = class.new{
  fields = FIELDS,
  properties = {
    streams = function(self)
      local t = {}
      for _, e in ipairs(entries(self)) do t[e[1]] = M.dataset(self.cache, e[2], nil, e[3]) end
      return t
    end,
  },
  lookup = function(self, key)
    if type(key) ~= "string" then return nil end
    for _, n in ipairs(self.processed_streams) do
      if n == key then return dataset_of(self, n) end
    end
    errors.raise("AirbyteStreamNotFoundError",
      ("stream '%s' was not part of this read; available: %s"):format(key,
        table.concat(self.processed_streams, ", ")),
      { stream_name = key, available_streams = self.processed_streams })
  end,
}

-- result:check(spec [, { scope = "all" | "new" }]) -> report (airbyte.checks);
-- "new" checks only the rows this read wrote.
function Result:check(spec, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  if o.scope == "new" then o.since = self.since_raw_id end
  return require("airbyte.checks").run(self.cache, spec, o)
end

function Result:get_dataset(name, namespace)
  if namespace == nil then return self[name] end
  return M.dataset(self.cache, name, nil, namespace)
end

function Result:__len()
  return #self.processed_streams
end

-- pairs(result) -> stream name, dataset
function Result:__pairs()
  local list, i = entries(self), 0
  return function()
    i = i + 1
    local e = list[i]
    if e then return e[2], M.dataset(self.cache, e[2], nil, e[3]) end
  end, self, nil
end

function Result:__tostring()
  return ("ReadResult(%s: %d records, streams %s)"):format(self.source_name,
    self.processed_records, table.concat(self.processed_streams, ", "))
end

function Result:contains(name)
  for _, n in ipairs(self.processed_streams) do if n == name then return true end end
  return false
end

function M.new(fields)
  local self = {}
  for k, v in pairs(fields) do self[k] = v end
  return setmetatable(self, Result)
end

M.ReadResult = Result
return M
