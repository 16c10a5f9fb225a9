-- connectors.destination-sqlite: Airbyte's SQLite destination
-- (airbyte/destination-sqlite 0.1/0.2, legacy raw layout, protocol.md §8.1).
--
-- One table per configured stream, as the real connector creates it:
--   CREATE TABLE IF NOT EXISTS _airbyte_raw_<stream> (
--     _airbyte_ab_id TEXT PRIMARY KEY, _airbyte_emitted_at TEXT, _airbyte_data TEXT)
-- _airbyte_ab_id is a UUID v4, _airbyte_data the record's data as JSON text
-- (the record line's bytes, so integers keep every digit; the Python
-- connector re-serializes with json.dumps). Two deliberate differences:
--   * _airbyte_emitted_at is the record's emitted_at as ISO-8601 UTC text
--     ("2022-11-29T00:35:07.441+00:00"); the Python connector stores the
--     load time (datetime.now().isoformat()), which says nothing about the record.
--   * table names are quoted identifiers (the Python connector pastes the
--     stream name into the SQL as is, so it only ever worked with plain names,
--     which come out the same).
--
-- destination_path is the database file: absolute, or relative to the
-- current directory (the real connector forces it under /local). Missing
-- parent directories are created.
--
-- Sync modes:
--   overwrite     records go to _airbyte_tmp_raw_<stream>, which replaces the
--                 final table (DROP + RENAME in one transaction) when the stream
--                 ends COMPLETE or the input ends; until then readers see the
--                 old rows. A stream ending INCOMPLETE, or a failed write,
--                 drops the new table and keeps the old one.
--   append        records are inserted into the final table.
--   append_dedup  written as append (no deduplication), with a warning.
-- Records are inserted in batches inside one open transaction, committed
-- before each STATE is echoed (and when a stream is swapped), so a state
-- is never echoed ahead of its records and a crash loses only records the
-- host will send again.

local cdk = require "airbyte.cdk"
local sqlite = require "airbyte.sqlite"

local format, gsub, match = string.format, string.gsub, string.match
local concat = table.concat

local BATCH_ROWS = 200       -- rows per INSERT statement (3 parameters each)

local SPEC = cdk.obj(
  "documentationUrl", "https://docs.airbyte.com/integrations/destinations/sqlite",
  "supported_destination_sync_modes", cdk.array { "overwrite", "append" },
  "supportsIncremental", true,
  "supportsDBT", false,
  "supportsNormalization", false,
  "connectionSpecification", cdk.obj(
    "$schema", "http://json-schema.org/draft-07/schema#",
    "title", "Destination Sqlite",
    "type", "object",
    "required", cdk.array { "destination_path" },
    "additionalProperties", false,
    "properties", cdk.obj(
      "destination_path", cdk.obj(
        "type", "string",
        "description", "Path to the sqlite.db file: absolute, or relative to the current directory " ..
          "(the real connector puts it under its /local mount). Missing directories are created.",
        "example", "/local/sqlite.db")))
)

local function quote_ident(name)
  return '"' .. gsub(name, '"', '""') .. '"'
end

local function db_path(config)
  local path = config.destination_path
  if type(path) ~= "string" or path == "" then cdk.config_error("destination_path must be a non-empty string") end
  local dir = match(path, "^(.*)/[^/]*$")
  if dir and dir ~= "" then cdk.mkdir_p(dir) end
  return path
end

-- airbyte.sqlite opens databases as luabyte caches: WAL journal (kept:
-- the binding checkpoints from a second connection, so the mode cannot be
-- switched back), synchronous=NORMAL and its bookkeeping tables. Here
-- synchronous=FULL makes each commit (made before a state is echoed)
-- survive a power loss, and the bookkeeping tables are dropped on close
-- while empty, so the file holds only the destination's tables.
local CACHE_TABLES = { "_airbyte_streams", "_airbyte_state", "_airbyte_destination_state" }

local function open_db(path)
  local db, err = sqlite.open(path)
  if not db then cdk.config_error(format("cannot open the database %s: %s", path, tostring(err))) end
  db:exec("PRAGMA synchronous=FULL")
  return db
end

local function close_db(db)
  for _, t in ipairs(CACHE_TABLES) do
    local ok, rows = pcall(db.query, db, "SELECT 1 AS x FROM " .. t .. " LIMIT 1")
    if ok and #rows == 0 then pcall(db.exec, db, "DROP TABLE " .. t) end
  end
  db:close()
end

local function create_sql(table_name)
  return "CREATE TABLE IF NOT EXISTS " .. quote_ident(table_name) ..
    " (_airbyte_ab_id TEXT PRIMARY KEY, _airbyte_emitted_at TEXT, _airbyte_data TEXT)"
end

local function check(config)
  local path = db_path(config)
  local db = open_db(path)
  local ok, err = pcall(function()
    db:begin()
    db:exec(create_sql("_airbyte_check_connection"))
    db:exec("DROP TABLE _airbyte_check_connection")
    db:commit()
  end)
  close_db(db)
  if not ok then return false, format("cannot write to %s: %s", path, tostring(err)) end
  return true
end

local record_ms, iso_utc = cdk.record_ms, cdk.iso_utc

local sync_mode = cdk.raw_sync_mode   -- overwrite, append (append_dedup as append)

local function write(config, _, input, emit)
  local db = open_db(db_path(config))
  local tables = {}          -- stream name -> { final, target, mode, rows = {params}, n, done }
  local insert_sql = {}      -- "table\0rows" -> INSERT statement text

  local function insert(t, params, n)
    local key = t.target .. "\0" .. n
    local sql = insert_sql[key]
    if not sql then
      local values = {}
      for i = 1, n do values[i] = "(?,?,?)" end
      sql = "INSERT INTO " .. quote_ident(t.target) ..
        " (_airbyte_ab_id, _airbyte_emitted_at, _airbyte_data) VALUES " .. concat(values, ",")
      insert_sql[key] = sql
    end
    params.n = n * 3
    db:query(sql, params)
  end

  local function flush(t)
    if t.n > 0 then
      insert(t, t.rows, t.n)
      t.rows, t.n = {}, 0
    end
  end

  local function flush_all()
    for _, name in ipairs(input.stream_names) do flush(tables[name]) end
  end

  -- The new table replaces the old one: one transaction, committed.
  local function swap(t)
    flush(t)
    if t.target ~= t.final then
      db:exec("DROP TABLE IF EXISTS " .. quote_ident(t.final))
      db:exec("ALTER TABLE " .. quote_ident(t.target) .. " RENAME TO " .. quote_ident(t.final))
      t.target = t.final
    end
    db:commit()
    db:begin()
  end

  local function drop_new(t)
    t.rows, t.n = {}, 0
    if t.target ~= t.final then
      db:exec("DROP TABLE IF EXISTS " .. quote_ident(t.target))
      db:commit()
      db:begin()
    end
    t.dropped = true
  end

  input:on_abort(function()
    -- records after the last echoed state go away; tables of overwrite
    -- streams that were not swapped in are dropped, the old ones stay
    pcall(function()
      if db:in_transaction() then db:rollback() end
      db:begin()
      for _, t in pairs(tables) do
        if t.target ~= t.final then db:exec("DROP TABLE IF EXISTS " .. quote_ident(t.target)) end
      end
      db:commit()
    end)
    pcall(close_db, db)
  end)

  db:begin()
  for _, name in ipairs(input.stream_names) do
    local mode = sync_mode(input.streams[name], emit)
    local final = "_airbyte_raw_" .. name
    local t = { final = final, target = final, mode = mode, rows = {}, n = 0 }
    if mode == "overwrite" then
      t.target = "_airbyte_tmp_raw_" .. name
      db:exec("DROP TABLE IF EXISTS " .. quote_ident(t.target))   -- left by a crashed run
    end
    db:exec(create_sql(t.target))
    tables[name] = t
  end
  db:commit()
  db:begin()

  input:on_commit(function()
    flush_all()
    db:commit()
    db:begin()
  end)

  local uuid4 = cdk.uuid4
  for msg in input do
    if msg.type == "RECORD" then
      local rec = msg.record
      local t = tables[rec.stream]
      if t.dropped then
        input:reject()                  -- after INCOMPLETE: its table is gone
      else
        local rows, i = t.rows, t.n * 3
        rows[i + 1], rows[i + 2], rows[i + 3] = uuid4(), iso_utc(record_ms(rec.emitted_at, emit.now_ms), "+00:00"),
          msg.data_json
        t.n = t.n + 1
        if t.n >= BATCH_ROWS then flush(t) end
      end
    else
      local name, _, status = cdk.stream_status(msg)
      local t = name and tables[name]
      if t and not t.dropped then
        if status == "COMPLETE" then
          swap(t)
        elseif status == "INCOMPLETE" and t.target ~= t.final then
          drop_new(t)
          emit.log("WARN", format("stream '%s' ended INCOMPLETE: table %s was left as it was", name, t.final))
        end
      end
    end
  end

  -- End of input: what is left is committed, new tables swapped in.
  flush_all()
  for _, name in ipairs(input.stream_names) do
    local t = tables[name]
    if not t.dropped and t.target ~= t.final then
      db:exec("DROP TABLE IF EXISTS " .. quote_ident(t.final))
      db:exec("ALTER TABLE " .. quote_ident(t.target) .. " RENAME TO " .. quote_ident(t.final))
      t.target = t.final
    end
  end
  db:commit()
  close_db(db)
end

return cdk.destination {
  spec = SPEC,
  check = check,
  write = write,
}
