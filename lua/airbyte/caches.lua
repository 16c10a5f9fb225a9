-- airbyte.caches: PyAirbyte-like cache objects over the SQLite binding
-- (airbyte.sqlite, runtime/src/lua_cache.c). Layout and types: cache.h.
--
-- Constructors (PyAirbyte's airbyte/caches/util.py; M.PostgresCache below):
--   M.get_default_cache()
--       <AIRBYTE_CACHE_ROOT or <AIRBYTE_PROJECT_DIR or .>/.cache>/default_cache/default_cache.sqlite
--   M.new_local_cache{ cache_name =, cache_dir =, cleanup = }
--       name: letters, digits and '_' only (PyAirbyteInputError), default a ULID;
--       cache_dir default <cache root>/<cache_name>; file <cache_dir>/db_<cache_name>.sqlite
--   M.SQLiteCache{ db_path =, cache_dir =, table_prefix = "", name = }
--       db_path may be ":memory:". Directories are created. Opening fails
--       with a PyAirbyteCacheError.
--
-- Cache fields: db_path, cache_dir, table_prefix, schema_name ("main"),
-- name ("SQLiteCache", PyAirbyte's class-name fallback), cleanup.
-- Cache methods (PyAirbyte's CacheBase):
--   cache:run_sql_query(sql [, { max_records =, params = }]) -> array of rows (raw values)
--   cache:execute_sql(sql_or_list)          -- all in one transaction
--   cache:get_records(stream) -> iterator of typed rows (for row in ... do);
--       typed: JSON columns (objects, arrays, _airbyte_meta) decoded with
--       airbyte.json, integers stay integers, integers too big for int64
--       (kept as digits by the cache) become BigInt; NULL -> no key
--   cache.streams -> array of cached stream names (from _airbyte_streams,
--       under the table prefix, whose table exists)
--   cache[stream_name] -> read_result.dataset (CachedDataset) for a cached stream
--   #cache, pairs(cache) (name, dataset), cache:contains(name)
--   cache:get_state(source_name) -> array of decoded AirbyteStateMessages
--   cache:get_state_json(source_name) -> array of their JSON texts
--   cache:get_state_provider(source_name) -> { state_message_artifacts, known_stream_names,
--       get_stream_state(name), to_state_input_file_text() }
--   cache:put_state(source_name, stream_name_or_"", state)   -- JSON text or table
--   cache:get_destination_state(destination_name [, source_name]) -> decoded messages
--   cache:put_destination_state(destination_name, source_name, stream_name_or_"", state)
--   cache:close(); also <close> and garbage collection. A closed cache opens
--       its database again when used, so one object serves reads in sequence.
-- For the source-reading layer (read.lua) and datasets (read_result.lua):
--   cache:_db() -> the airbyte.CacheDB userdata (any backend) (opened on demand): begin,
--       commit, rollback, stream_open, put_state, get_states, ... and the C
--       pump's lb__cache_check / lb__cache_stream_check
--   cache:table_name(stream [, namespace]) -> the stream's table, as the C
--       cache decides it (cache.h "Stream names"; namespace nil = the one it
--       was cached under); a clash raises PyAirbyteNameNormalizationError
--   cache:column_names(stream [, namespace]) -> array of column names (table order)
--   cache:_rows(sql [, params]) -> typed row iterator over any SELECT (types
--       from the declared types of the columns it reads)
--   cache:_stream_schema(stream [, namespace]) -> the JSON schema it was cached with
--   M.rethrow(err, fields) -> raises a C cache error "Kind: message" as the
--       structured error of that kind (other errors as they are)
local sqlite = require "airbyte.sqlite"
local core = require "airbyte.core"
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local options = require "airbyte.options"
local class = require "airbyte.class"

local M = {}

-- cache.streams: the cached stream names; cache[name]: a cached stream's
-- dataset (airbyte.class: every key that is no method, property or field).
local Cache = class.new{
  properties = { streams = function(self) return self:_stream_names() end },
  lookup = function(self, key)
    if type(key) == "string" and key:sub(1, 1) ~= "_" and self:contains(key) then
      return require("airbyte.read_result").dataset(self, key)
    end
    return nil
  end,
}

local function env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then return nil end
  return v
end

-- PyAirbyte's DEFAULT_CACHE_ROOT, read when needed (tests change the env).
function M.cache_root()
  local root = env("AIRBYTE_CACHE_ROOT")
  if root then return root end
  local project = env("AIRBYTE_PROJECT_DIR")
  return project and (project .. "/.cache") or ".cache"
end

local function dirname(path)
  local d = path:match("^(.*)/[^/]*$")
  if d == nil then return nil end
  if d == "" then return "/" end
  return d
end

local function ensure_dir(dir)
  if dir == nil or dir == "" then return end
  local ok, msg = core.mkdir_p(dir)
  if not ok then errors.raise("PyAirbyteCacheError", msg, { context = { directory = dir } }) end
end

-- An SQL identifier in double quotes (quotes inside doubled); the checks
-- (airbyte.checks) use it too.
local function quote_ident(name)
  return '"' .. tostring(name):gsub('"', '""') .. '"'
end
M.quote_ident = quote_ident

-- --- construction --------------------------------------------------------------

local SQLITE_CACHE_OPTIONS = options.allow{ "db_path", "cache_dir", "table_prefix", "name", "cleanup" }
function M.SQLiteCache(opts)
  opts = options.check(opts, SQLITE_CACHE_OPTIONS, "SQLiteCache")
  local db_path = opts.db_path
  if type(db_path) ~= "string" or db_path == "" then
    errors.raise("PyAirbyteInputError", "SQLiteCache needs a db_path (a file path or \":memory:\")",
      { input_value = tostring(db_path) })
  end
  local self = setmetatable({
    db_path = db_path,
    cache_dir = opts.cache_dir or dirname(db_path) or ".",
    table_prefix = opts.table_prefix or "",
    schema_name = "main",
    name = opts.name or "SQLiteCache",
    cleanup = opts.cleanup ~= false,
  }, Cache)
  self:_db()                           -- create the file and internal tables now, as PyAirbyte does
  return self
end

function M.get_default_cache()
  local dir = M.cache_root() .. "/default_cache"
  return M.SQLiteCache{ db_path = dir .. "/default_cache.sqlite", cache_dir = dir }
end

local NEW_LOCAL_CACHE_OPTIONS = options.allow{ "cache_name", "cache_dir", "cleanup", "table_prefix" }
function M.new_local_cache(opts)
  opts = options.check(opts, NEW_LOCAL_CACHE_OPTIONS, "new_local_cache")
  local name = opts.cache_name
  if name ~= nil and name ~= "" then
    if type(name) ~= "string" then
      errors.raise("PyAirbyteInputError", "cache_name must be a string", { input_value = tostring(name) })
    end
    if name:find(" ", 1, true) then
      errors.raise("PyAirbyteInputError", "Cache name cannot contain spaces.", { input_value = name })
    end
    if name:find("[^%w_]") then
      errors.raise("PyAirbyteInputError",
        "Cache name can only contain alphanumeric characters and underscores.", { input_value = name })
    end
  else
    name = core.ulid()
  end
  local dir = opts.cache_dir or (M.cache_root() .. "/" .. name)
  return M.SQLiteCache{ db_path = dir .. "/db_" .. name .. ".sqlite", cache_dir = dir,
                        cleanup = opts.cleanup, table_prefix = opts.table_prefix }
end

-- --- the database -------------------------------------------------------------------

-- A new connection to the cache's database, its table prefix set (each
-- backend's constructor: PgCache:_open below).
function Cache:_open()
  if self.db_path ~= ":memory:" then ensure_dir(dirname(self.db_path)) end
  local db, err = sqlite.open(self.db_path)
  if not db then
    errors.raise("PyAirbyteCacheError", ("cannot open the cache: %s"):format(err),
      { context = { db_path = self.db_path } })
  end
  db:set_table_prefix(self.table_prefix)
  return db
end

-- The cache's connection, opened on first use.
function Cache:_db()
  local db = self._handle
  if db then return db end
  db = self:_open()
  self._handle = db
  return db
end

-- For a read (read.lua): the cache's connection, or, while another read
-- (a task of this script) uses it, a connection of its own to the same
-- file, so that their transactions stay apart (they take turns at the
-- file's write lock). An in-memory database has no second connection:
-- reads through it take turns (the task waits, yielding). The second
-- value gives it back.
function Cache:_writer()
  local db = self:_db()
  if self.db_path == ":memory:" then
    while (self._writers or 0) > 0 do require("airbyte.core").sleep(5) end
  end
  local users = self._writers or 0
  self._writers = users + 1
  local function done() self._writers = (self._writers or 1) - 1 end
  if users == 0 then return db, done end
  local ok, own = pcall(self._open, self)
  if not ok then done(); error(own, 0) end
  return own, function() own:close(); done() end
end

function Cache:close()
  local db = self._handle
  if db then
    self._handle = nil
    db:close()
  end
end

Cache.__close = Cache.close
Cache.__gc = Cache.close

function Cache:__tostring()
  return ("%s(%s)"):format(self.name, self.db_path)
end

-- The C cache raises "PyAirbyteNameNormalizationError: ..." strings; Lua
-- callers get PyAirbyte's structured errors.
function M.rethrow(err, fields)
  if type(err) == "string" then
    local kind, msg = err:gsub("^[^\n:]*:%d+: ", "", 1):match("^(%w+Error): (.*)$")
    if kind and errors.hierarchy[kind] then errors.raise(kind, msg, fields) end
  end
  error(err, 0)
end

function Cache:table_name(stream_name, namespace)
  local db = self:_db()
  local ok, t = pcall(db.table_name, db, stream_name, namespace)
  if not ok then M.rethrow(t, { stream_name = stream_name }) end
  return t
end

-- --- SQL ------------------------------------------------------------------------------

local RUN_SQL_QUERY_OPTIONS = options.allow{ "params", "max_records" }
-- A failed statement is a PyAirbyteCacheError with the database's words.
local function sql_failed(err, sql)
  if type(err) ~= "string" then error(err, 0) end
  local msg = err:gsub("^[^\n:]*:%d+: ", "", 1)
  if msg:match("^(%w+Error): ") then M.rethrow(err) end
  errors.raise("PyAirbyteCacheError", msg, { context = { sql = sql } })
end

function Cache:run_sql_query(sql, opts)
  opts = options.check(opts, RUN_SQL_QUERY_OPTIONS, "run_sql_query")
  local db = self:_db()
  local ok, rows = pcall(db.query, db, sql, opts.params, opts.max_records)
  if not ok then sql_failed(rows, sql) end
  return rows
end


function Cache:execute_sql(sql)
  local list = type(sql) == "table" and sql or { sql }
  local db = self:_db()
  local own = not db:in_transaction()
  if own then db:begin() end
  local ok, err = pcall(function()
    for _, s in ipairs(list) do db:exec(s) end
  end)
  if not ok then
    if own then pcall(db.rollback, db) end
    sql_failed(err, type(sql) == "table" and table.concat(sql, "; ") or sql)
  end
  if own then
    local cok, cerr = pcall(db.commit, db)
    if not cok then pcall(db.rollback, db); sql_failed(cerr, "COMMIT") end
  end
end

-- --- streams -------------------------------------------------------------------------

-- The names of the streams cached under the table prefix whose table
-- exists (a name cached in several namespaces is listed once), as the
-- storage interface lists them (lb_cache_streams).
function Cache:_stream_names()
  local out, seen = {}, {}
  for _, row in ipairs(self:_db():streams()) do
    local n = row.name
    if not seen[n] then
      seen[n] = true
      out[#out + 1] = n
    end
  end
  return out
end

-- The JSON schema a cached stream was read with (_airbyte_streams'
-- catalog_metadata), decoded; nil when the stream is not cached.
function Cache:_stream_schema(stream_name, namespace)
  for _, row in ipairs(self:_db():streams()) do
    if row.name == stream_name and (namespace == nil or row.namespace == namespace) then
      local ok, schema = pcall(json.decode, row.catalog)
      return ok and schema or nil
    end
  end
  return nil
end

function Cache:contains(name)
  for _, n in ipairs(self:_stream_names()) do
    if n == name then return true end
  end
  return false
end

function Cache:__len()
  return #self:_stream_names()
end

function Cache:__pairs()
  local names, i = self:_stream_names(), 0
  local dataset = require("airbyte.read_result").dataset
  return function()
    i = i + 1
    local n = names[i]
    if n then return n, dataset(self, n) end
  end, self, nil
end

function Cache:column_names(stream_name, namespace)
  local names = {}
  for i, col in ipairs(self:_db():columns(self:table_name(stream_name, namespace))) do names[i] = col.name end
  return names
end

-- Converters per column kind, from the declared types of the columns a
-- query reads (the storage interface reports them): JSON columns hold JSON
-- text, integer and number columns may hold integers beyond int64 as their
-- digits.
local function decode_json(v)
  if type(v) ~= "string" then return v end
  local c = v:sub(1, 1)
  if c ~= "{" and c ~= "[" then return v end
  local ok, r = pcall(json.decode, v)
  if ok then return r end
  return v
end

local function to_bigint(v)
  if type(v) ~= "string" then return v end
  local ok, r = pcall(json.bigint, v)
  if ok then return r end
  return v
end

local CONVERT = { json = decode_json, integer = to_bigint, number = to_bigint }

-- cache:_rows(sql [, params]) -> typed row iterator over any SELECT
function Cache:_rows(sql, params)
  local db = self:_db()
  local iter, _, _, closer, kinds = db:rows(sql, params)
  local conv = {}
  for col, kind in pairs(kinds) do conv[col] = CONVERT[kind] end
  if next(conv) == nil then return iter, nil, nil, closer end
  return function()
    local row = iter()
    if row then
      for col, f in pairs(conv) do
        local v = row[col]
        if v ~= nil then row[col] = f(v) end
      end
    end
    return row
  end, nil, nil, closer
end

function Cache:get_records(stream_name, namespace)
  local tname = self:table_name(stream_name, namespace)
  if not self:_db():has_table(tname) then
    errors.raise("AirbyteStreamNotFoundError",
      ("stream '%s' is not in the cache %s"):format(stream_name, self.db_path),
      { stream_name = stream_name, available_streams = self:_stream_names() })
  end
  return self:_rows("SELECT * FROM " .. quote_ident(tname))
end

-- --- state ------------------------------------------------------------------------------

function Cache:get_state_json(source_name)
  local texts = self:_db():get_states(source_name)
  return texts
end

-- cache:get_quarantine([stream]) -> records kept aside by on_invalid =
-- "quarantine": { source_name, stream_name, stream_namespace, record (the
-- source's data, decoded), reasons, _airbyte_extracted_at, quarantined_at }
function Cache:get_quarantine(stream)
  local db = self:_db()
  if not db:has_table("_airbyte_quarantine") then return {} end
  -- in the order they were kept (SQLite's rowid; PostgreSQL's row position: only ever appended to)
  local order = db:kind() == "postgres" and "ctid" or "rowid"
  local rows = db:query("SELECT * FROM _airbyte_quarantine WHERE CAST(?1 AS VARCHAR) IS NULL OR stream_name = ?1 ORDER BY " .. order,
    { stream == nil and json.null or stream })
  for _, r in ipairs(rows) do
    r.record = json.decode(r.record_json)
    r.reasons = json.decode(r.reasons)
    r.record_json = nil
  end
  return rows
end

-- cache:check(spec [, opts]) -> report: dataset checks in SQL (airbyte.checks)
function Cache:check(spec, opts)
  return require("airbyte.checks").run(self, spec, opts)
end

function Cache:get_state(source_name)
  local out = {}
  for i, text in ipairs(self:get_state_json(source_name)) do out[i] = json.decode(text) end
  return out
end

function Cache:put_state(source_name, stream_name, state)
  self:_db():put_state(source_name, stream_name or "", state)
end

function Cache:get_destination_state(destination_name, source_name)
  local out = {}
  for i, text in ipairs((self:_db():get_destination_states(destination_name, source_name))) do
    out[i] = json.decode(text)
  end
  return out
end

function Cache:put_destination_state(destination_name, source_name, stream_name, state)
  self:_db():put_destination_state(destination_name, source_name, stream_name or "", state)
end

-- PyAirbyte's StateProvider, reduced to what a caller of read() needs.
function Cache:get_state_provider(source_name)
  local texts, keys, namespaces = self:_db():get_states(source_name)
  local states, names, by_name = {}, {}, {}
  for i, text in ipairs(texts) do
    local st = json.decode(text)
    states[i] = st
    -- keys come from C (the one state-key rule); a stream in a namespace
    -- of the source's own is not one of its streams by name
    if namespaces[i] == "" and sqlite.state_key(text) == "STREAM" then
      names[#names + 1] = keys[i]
      by_name[keys[i]] = st
    end
  end
  return {
    source_name = source_name,
    state_message_artifacts = states,
    known_stream_names = names,
    get_stream_state = function(_, name)
      local st = by_name[name]
      return st and st.stream.stream_state
    end,
    to_state_input_file_text = function()
      if #texts == 0 then return "[]" end
      return "[" .. table.concat(texts, "\n, ") .. "]"
    end,
  }
end

-- --- PostgresCache (issue 9) ----------------------------------------------------------
-- M.PostgresCache{ host =, port =, database =, username =, password =,
--                  schema_name = "airbyte_raw", table_prefix = "", dsn =,
--                  name = "PostgresCache", connect_timeout = 10 }
-- PyAirbyte's parameter names (airbyte/caches/postgres.py); dsn is a libpq
-- connection string or postgresql:// URI, the other parameters override
-- it; a parameter left out falls back to libpq's environment (PGHOST,
-- PGPORT, PGDATABASE, PGUSER, PGPASSWORD). The layout and types are
-- cache_pg.h's. The password is registered with the masker and kept out
-- of the object's fields and of every message.
local POSTGRES_CACHE_OPTIONS = options.allow{ "host", "port", "database", "username", "password",
  "dsn", "schema_name", "table_prefix", "name", "cleanup", "connect_timeout" }
-- Its connection fields may be nil (libpq's environment fills them in).
local PgCache = class.new{ base = Cache, fields = { "host", "port", "database", "username" } }

function M.PostgresCache(opts)
  opts = options.check(opts, POSTGRES_CACHE_OPTIONS, "PostgresCache")
  for _, k in ipairs{ "host", "database", "username", "password", "dsn", "schema_name", "table_prefix", "name" } do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      errors.raise("PyAirbyteInputError", ("PostgresCache: %s must be a string"):format(k), { input_value = tostring(opts[k]) })
    end
  end
  if opts.port ~= nil and math.tointeger(tonumber(opts.port)) == nil then
    errors.raise("PyAirbyteInputError", "PostgresCache: port must be a number", { input_value = tostring(opts.port) })
  end
  if opts.password and opts.password ~= "" then require("airbyte.secrets").register(opts.password) end
  local self = setmetatable({
    host = opts.host, port = opts.port and math.tointeger(tonumber(opts.port)), database = opts.database,
    username = opts.username,
    schema_name = opts.schema_name or "airbyte_raw",
    table_prefix = opts.table_prefix or "",
    name = opts.name or "PostgresCache",
    cleanup = opts.cleanup ~= false,
  }, PgCache)
  self._connect = { host = opts.host, port = opts.port and tostring(math.tointeger(tonumber(opts.port))),
    database = opts.database, username = opts.username, password = opts.password, dsn = opts.dsn,
    schema_name = self.schema_name, connect_timeout = opts.connect_timeout }
  self:_db()                           -- connect, create the schema and the internal tables now
  return self
end

function PgCache:_open()
  local db, err = sqlite.open_pg(self._connect)
  if not db then
    errors.raise("PyAirbyteCacheError", ("cannot open the PostgreSQL cache: %s"):format(err),
      { context = { host = self.host, port = self.port, database = self.database,
                    schema_name = self.schema_name } })
  end
  db:set_table_prefix(self.table_prefix)
  return db
end

function PgCache:__tostring()
  return ("%s(%s)"):format(self.name, self:_db():path())
end

M.Cache = Cache
return M
