-- connectors.destination-postgres: Airbyte's Postgres destination, built in
-- (the config of airbyte/destination-postgres 2.x; the Destinations V2
-- layout, protocol.md §8.2).
--
-- Per configured stream, with schema = the stream's namespace or
-- config.schema:
--   <raw_data_schema>."<schema>_raw__stream_<stream>"  every record as it
--       came (_airbyte_data jsonb), with its id, extracted_at, loaded_at,
--       meta and generation id;
--   <schema>."<stream>"  the typed final table (airbyte.dv2.typing): a value
--       that does not fit its column is null there, with a NULLED change in
--       _airbyte_meta.changes; the raw table keeps the value.
-- Both are written in the same transaction, by COPY in batches; the
-- transaction commits before each STATE is echoed, so a state is never
-- echoed ahead of its rows and a crash loses only rows the host sends again.
--
-- Sync modes:
--   append        rows are added to both tables.
--   append_dedup  the final table keeps one row per primary key: the latest
--                 by the cursor field, then _airbyte_extracted_at, then
--                 arrival; a latest row with _ab_cdc_deleted_at set deletes
--                 its key (CDC). The raw table keeps every record.
--   overwrite     (or minimum_generation_id == generation_id > 0) both
--                 tables are written as "<name>_airbyte_tmp" and swapped in,
--                 in one transaction, when the stream ends COMPLETE or the
--                 input ends; until then readers see the old rows. INCOMPLETE
--                 drops the new tables and keeps the old ones.
-- disable_type_dedupe = true writes only the raw tables (loaded_at null).
--
-- Not supported (a clear config error): SSH tunnels, ssl_mode verify-ca and
-- verify-full (certificates). jdbc_url_params (JDBC-only) is ignored with a
-- warning; unconstrained_number changes nothing (numbers are numeric).
local cdk = require "airbyte.cdk"
local json = require "airbyte.json"
local pg = require "airbyte.pg"
local typing = require "airbyte.dv2.typing"
local sql = require "airbyte.dv2.postgres"

local format, find = string.format, string.find
local concat = table.concat
local mtype, floor, tostring, type = math.type, math.floor, tostring, type

local NULL = json.null
local BATCH_ROWS = 5000         -- rows per COPY (per table)
local BATCH_BYTES = 8 << 20     -- or this many bytes of raw data

local SSL_MODES = { disable = true, allow = true, prefer = true, require = true }

local function ssl_mode_option(mode, title, extra)
  local props = cdk.obj("mode", cdk.obj("type", "string", "const", mode, "enum", cdk.array { mode },
    "default", mode, "order", 0))
  for i = 1, #(extra or {}), 2 do props[extra[i]] = extra[i + 1] end
  return cdk.obj("title", title, "type", "object", "additionalProperties", true,
    "required", cdk.array { "mode" }, "properties", props)
end

local SPEC = cdk.obj(
  "documentationUrl", "https://docs.airbyte.com/integrations/destinations/postgres",
  "supportsIncremental", true,
  "supportsNormalization", false,
  "supportsDBT", false,
  "supported_destination_sync_modes", cdk.array { "overwrite", "append", "append_dedup" },
  "connectionSpecification", cdk.obj(
    "$schema", "http://json-schema.org/draft-07/schema#",
    "title", "Postgres Destination Spec",
    "type", "object",
    "required", cdk.array { "host", "port", "username", "database", "schema" },
    "additionalProperties", true,
    "properties", cdk.obj(
      "host", cdk.obj("title", "Host", "type", "string", "order", 0,
        "description", "Hostname of the database."),
      "port", cdk.obj("title", "Port", "type", "integer", "minimum", 0, "maximum", 65536,
        "default", 5432, "examples", cdk.array { "5432" }, "order", 1,
        "description", "Port of the database."),
      "database", cdk.obj("title", "DB Name", "type", "string", "order", 2,
        "description", "Name of the database."),
      "schema", cdk.obj("title", "Default Schema", "type", "string", "default", "public",
        "examples", cdk.array { "public" }, "order", 3,
        "description", "The schema tables are written to when the source does not name one (namespace)."),
      "username", cdk.obj("title", "User", "type", "string", "order", 4,
        "description", "Username to use to access the database."),
      "password", cdk.obj("title", "Password", "type", "string", "airbyte_secret", true, "order", 5,
        "description", "Password associated with the username."),
      "ssl", cdk.obj("title", "SSL Connection", "type", "boolean", "default", false, "order", 6,
        "description", "Encrypt data using SSL (sslmode=require when ssl_mode is not given)."),
      "ssl_mode", cdk.obj("title", "SSL modes", "type", "object", "order", 7,
        "description", "libpq's sslmode: disable, allow, prefer or require (verify-ca and " ..
          "verify-full are not supported by the built-in connector).",
        "oneOf", cdk.array {
          ssl_mode_option("disable", "disable"), ssl_mode_option("allow", "allow"),
          ssl_mode_option("prefer", "prefer"), ssl_mode_option("require", "require"),
          ssl_mode_option("verify-ca", "verify-ca", { "ca_certificate",
            cdk.obj("type", "string", "title", "CA certificate", "airbyte_secret", true, "multiline", true),
            "client_key_password", cdk.obj("type", "string", "title", "Client key password", "airbyte_secret", true) }),
          ssl_mode_option("verify-full", "verify-full", { "ca_certificate",
            cdk.obj("type", "string", "title", "CA certificate", "airbyte_secret", true, "multiline", true),
            "client_certificate", cdk.obj("type", "string", "title", "Client certificate", "airbyte_secret", true, "multiline", true),
            "client_key", cdk.obj("type", "string", "title", "Client key", "airbyte_secret", true, "multiline", true),
            "client_key_password", cdk.obj("type", "string", "title", "Client key password", "airbyte_secret", true) }),
        }),
      "jdbc_url_params", cdk.obj("title", "JDBC URL Params", "type", "string", "order", 8,
        "description", "Accepted for compatibility with the Java connector and ignored (no JDBC here)."),
      "raw_data_schema", cdk.obj("title", "Raw Table Schema Name", "type", "string", "order", 9,
        "description", "The schema of the raw tables (default airbyte_internal)."),
      "disable_type_dedupe", cdk.obj("title", "Disable Final Tables", "type", "boolean", "default", false,
        "order", 10, "description", "Write only the raw tables."),
      "drop_cascade", cdk.obj("title", "Drop tables with CASCADE", "type", "boolean", "default", false,
        "order", 11, "description", "Drop replaced tables with CASCADE (views on them go too)."),
      "unconstrained_number", cdk.obj("title", "Unconstrained numeric columns", "type", "boolean",
        "default", false, "order", 12, "description", "Accepted; number columns are always numeric."),
      "tunnel_method", cdk.obj("title", "SSH Tunnel Method", "type", "object", "order", 13,
        "description", "Only NO_TUNNEL: connect directly.")))
)

---------------------------------------------------------------------------
-- Config and connection
---------------------------------------------------------------------------

local function settings(config, log)
  local s = {
    schema = config.schema ~= nil and config.schema ~= NULL and config.schema or "public",
    raw_schema = config.raw_data_schema, typing = config.disable_type_dedupe ~= true,
    cascade = config.drop_cascade == true,
  }
  if type(s.raw_schema) ~= "string" or s.raw_schema == "" then s.raw_schema = "airbyte_internal" end
  if type(s.schema) ~= "string" or s.schema == "" then cdk.config_error("schema must be a non-empty string") end
  local tunnel = config.tunnel_method
  if type(tunnel) == "table" and tunnel.tunnel_method ~= nil and tunnel.tunnel_method ~= "NO_TUNNEL" then
    cdk.config_error(format("tunnel_method %s is not supported by the built-in destination-postgres " ..
      "(only NO_TUNNEL); open the tunnel yourself and point host/port at it", tostring(tunnel.tunnel_method)))
  end
  if log and type(config.jdbc_url_params) == "string" and config.jdbc_url_params ~= "" then
    log("WARN", "jdbc_url_params is ignored: the built-in destination-postgres connects with libpq, not JDBC")
  end
  return s
end

local function sslmode_of(config)
  local m = config.ssl_mode
  local mode = type(m) == "table" and m.mode or nil
  if mode == nil or mode == NULL then return config.ssl == true and "require" or nil end
  if not SSL_MODES[mode] then
    cdk.config_error(format("ssl_mode %s is not supported by the built-in destination-postgres " ..
      "(disable, allow, prefer, require)", tostring(mode)))
  end
  return mode
end

local function connect(config)
  local port = config.port
  if mtype(port) == "float" then port = floor(port) end
  local ok, conn = pcall(pg.connect, {
    host = config.host, port = port and tostring(port), database = config.database,
    username = config.username, password = config.password ~= NULL and config.password or nil,
    sslmode = sslmode_of(config), application_name = "luabyte destination-postgres",
  })
  if not ok then cdk.config_error(tostring(conn)) end
  conn:exec("SET TimeZone = 'UTC'")   -- timestamps without an offset are UTC
  return conn
end

local function check(config)
  local s = settings(config)
  local conn = connect(config)
  local name = sql.qualified(s.schema, "_airbyte_connection_test_" .. cdk.uuid4():gsub("%-", ""))
  local ok, err = pcall(function()
    conn:exec("BEGIN")
    conn:exec("CREATE SCHEMA IF NOT EXISTS " .. pg.quote_ident(s.schema))
    conn:exec("CREATE TABLE " .. name .. " (test integer)")
    conn:exec("INSERT INTO " .. name .. " VALUES (1)")
    conn:exec("DROP TABLE " .. name)
    conn:exec("COMMIT")
  end)
  pcall(conn.close, conn)
  if not ok then return false, format("cannot write to schema %s: %s", s.schema, tostring(err)) end
  return true
end

---------------------------------------------------------------------------
-- Streams
---------------------------------------------------------------------------

local record_ms, iso = cdk.record_ms, cdk.iso_utc
local function iso_utc(ms) return iso(ms, "Z") end

local function int_or_nil(v)
  if type(v) == "number" then return math.tointeger(v) end
  return nil
end

local function mode_of(st)
  local cs = st.configured
  local gen, min_gen = int_or_nil(cs.generation_id), int_or_nil(cs.minimum_generation_id)
  local mode = st.destination_sync_mode
  if mode ~= "append" and mode ~= "overwrite" and mode ~= "append_dedup" then
    cdk.config_error(format("stream '%s': destination_sync_mode '%s' is not supported (append, overwrite, append_dedup)",
      st.name, tostring(mode)))
  end
  if mode ~= "append_dedup" and gen and gen > 0 and min_gen == gen then mode = "overwrite" end
  return mode, gen, int_or_nil(cs.sync_id)
end

-- the top-level field of a configured key or cursor path, as its column
local function column_of(columns, path, stream, what)
  local field = type(path) == "table" and path[1] or path
  for _, c in ipairs(columns) do
    if c.name == field then return c end
  end
  if what then
    cdk.config_error(format("stream '%s': %s field '%s' is not a property of its schema", stream, what, tostring(field)))
  end
end

local function meta_json(sync_id, changes)
  return cdk.encode(cdk.obj("sync_id", sync_id or NULL, "changes", cdk.array(changes)))
end

local function setup_stream(conn, st, s, index)
  local mode, gen, sync_id = mode_of(st)
  local schema = st.namespace or s.schema
  local t = {
    name = st.name, schema = schema, mode = mode, gen = gen, sync_id = sync_id,
    columns = sql.final_columns(st.stream.json_schema),
    raw = sql.raw_name(schema, st.name), final = sql.final_name(st.name),
    raw_rows = {}, final_rows = {}, n = 0, bytes = 0,
  }
  t.row, t.raw_row, t.gen_text = {}, {}, gen and tostring(gen) or nil
  t.empty_meta = meta_json(sync_id, {})   -- the meta of most rows, made once
  t.raw_target, t.final_target = t.raw, t.final
  if mode == "overwrite" then t.raw_target, t.final_target = sql.tmp_name(t.raw), sql.tmp_name(t.final) end
  t.raw_q = sql.qualified(s.raw_schema, t.raw_target)
  t.final_q = sql.qualified(schema, t.final_target)
  if mode == "overwrite" then
    conn:exec("DROP TABLE IF EXISTS " .. t.raw_q)     -- left by a run that failed
    if s.typing then conn:exec("DROP TABLE IF EXISTS " .. t.final_q) end
  end
  conn:exec(sql.create_raw(t.raw_q))
  if not s.typing then return t end
  conn:exec(sql.create_final(t.final_q, t.columns))
  sql.add_missing_columns(conn, schema, t.final_target, t.columns)
  if mode == "append_dedup" then
    local keys = st.primary_key
    if type(keys) ~= "table" or #keys == 0 then
      cdk.config_error(format("stream '%s': append_dedup needs a primary key", st.name))
    end
    t.pk = {}
    for i, path in ipairs(keys) do t.pk[i] = column_of(t.columns, path, st.name, "primary key").quoted end
    local cursor = st.cursor_field and column_of(t.columns, st.cursor_field, st.name, nil)
    t.cursor = cursor and cursor.quoted
    t.cdc = column_of(t.columns, "_ab_cdc_deleted_at", st.name, nil) ~= nil
    conn:exec(format("CREATE INDEX IF NOT EXISTS %s ON %s (%s)", pg.quote_ident(pg.name(t.final_target .. "_pk")),
      t.final_q, concat(t.pk, ", ")))
    -- the batch is staged, then folded in: a session-local table
    t.stage_q = "pg_temp." .. pg.quote_ident("lb_stage_" .. index)
    conn:exec(format("CREATE TEMP TABLE IF NOT EXISTS %s (LIKE %s)", t.stage_q, t.final_q))
    conn:exec(format("ALTER TABLE %s ADD COLUMN _lb_ord bigserial", t.stage_q))
    t.fold = sql.dedup(t.final_q, t.stage_q, t.pk, t.cursor, t.cdc, t.columns)
  end
  local cols = {}
  for i, c in ipairs(sql.META_COLUMNS) do cols[i] = c end
  for _, c in ipairs(t.columns) do cols[#cols + 1] = c.quoted end
  t.copy_columns = concat(cols, ", ")
  return t
end

local RAW_COLUMNS = "(_airbyte_raw_id, _airbyte_extracted_at, _airbyte_loaded_at, _airbyte_data, " ..
  "_airbyte_meta, _airbyte_generation_id)"

---------------------------------------------------------------------------
-- write
---------------------------------------------------------------------------

local function write(config, _, input, emit)
  local s = settings(config, emit.log)
  local conn = connect(config)
  local tables, names = {}, input.stream_names
  local copy_row, cast, nulled = pg.copy_row, typing.cast, typing.NULLED
  cdk.uuid4()                                 -- resolves cdk.uuid4 to the binary's
  local uuid4, strip_nul = cdk.uuid4, typing.strip_nul_escapes

  local function drop_tmp(t)
    if t.raw_target ~= t.raw then conn:exec("DROP TABLE IF EXISTS " .. t.raw_q) end
    if s.typing and t.final_target ~= t.final then conn:exec("DROP TABLE IF EXISTS " .. t.final_q) end
  end

  input:on_abort(function()
    -- rows after the last echoed state go; new tables of overwrite streams
    -- that were not swapped in are dropped, the old ones stay
    pcall(function()
      conn:exec("ROLLBACK")
      conn:exec("BEGIN")
      for _, t in pairs(tables) do drop_tmp(t) end
      conn:exec("COMMIT")
    end)
    pcall(conn.close, conn)
  end)

  conn:exec("BEGIN")
  local schemas = { [s.raw_schema] = true }
  conn:exec("CREATE SCHEMA IF NOT EXISTS " .. pg.quote_ident(s.raw_schema))
  for i, name in ipairs(names) do
    local st = input.streams[name]
    local schema = st.namespace or s.schema
    if not schemas[schema] then
      schemas[schema] = true
      conn:exec("CREATE SCHEMA IF NOT EXISTS " .. pg.quote_ident(schema))
    end
    tables[name] = setup_stream(conn, st, s, i)
  end
  conn:exec("COMMIT")
  conn:exec("BEGIN")

  local function flush(t)
    if t.n == 0 then return end
    conn:copy("COPY " .. t.raw_q .. " " .. RAW_COLUMNS .. " FROM STDIN", t.raw_rows)
    if s.typing then
      -- (the table is named here: an overwrite stream's changes when it is swapped in)
      conn:copy(format("COPY %s (%s) FROM STDIN", t.stage_q or t.final_q, t.copy_columns), t.final_rows)
      if t.fold then
        for _, stmt in ipairs(t.fold) do conn:exec(stmt) end
      end
    end
    t.raw_rows, t.final_rows, t.n, t.bytes = {}, {}, 0, 0
  end

  local function flush_all()
    for _, name in ipairs(names) do flush(tables[name]) end
  end

  local function commit()
    conn:exec("COMMIT")
    conn:exec("BEGIN")
  end

  -- the new tables replace the old ones, in one transaction
  local function swap(t)
    flush(t)
    if t.raw_target ~= t.raw then
      sql.swap(conn, s.raw_schema, t.raw_target, t.raw, s.cascade)
      if s.typing then sql.swap(conn, t.schema, t.final_target, t.final, s.cascade) end
      t.raw_target, t.final_target = t.raw, t.final
      t.raw_q, t.final_q = sql.qualified(s.raw_schema, t.raw), sql.qualified(t.schema, t.final)
    end
    commit()
  end

  input:on_commit(function()
    flush_all()
    commit()
  end)

  local loaded = nil        -- _airbyte_loaded_at of the batch being built (null without typing)
  for msg, line in input do
    if msg.type == "RECORD" then
      local rec = msg.record
      local t = tables[rec.stream]
      if t.dropped then
        input:reject()                 -- after INCOMPLETE: its tables are gone
      else
        local id, extracted = uuid4(), iso_utc(record_ms(rec.emitted_at, emit.now_ms))
        local data_json = msg.data_json
        if find(data_json, "\\u0000", 1, true) then data_json = strip_nul(data_json) end
        -- the source's own changes (reading meta decodes the whole line: only when it has one)
        local source_changes
        local meta = find(line, '"meta"', 1, true) and rec.meta
        if type(meta) == "table" and type(meta.changes) == "table" and #meta.changes > 0 then
          source_changes = {}
          for i, c in ipairs(meta.changes) do source_changes[i] = c end
        end
        local n = t.n + 1
        if s.typing then
          if n == 1 then loaded = iso_utc(emit.now_ms()) end   -- typed with its batch
          local data = rec.data
          if type(data) ~= "table" then data = {} end
          -- row: the meta columns, then one text (or nil) per column
          local changes, row, cols = nil, t.row, t.columns
          for i = 1, #cols do
            local c = cols[i]
            local v = data[c.name]
            local text, fits
            if v == nil or v == NULL then
              text = nil
            elseif c.kind == "string" and type(v) == "string" then
              text = v                     -- the common case: a string, as it is
            else
              text, fits = cast(c.kind, v)
            end
            if fits == false then
              if not changes then   -- the final row's list: the source's, then the typecasts
                changes = {}
                for j, x in ipairs(source_changes or changes) do changes[j] = x end
              end
              changes[#changes + 1] = nulled(c.name)
            end
            row[i + 4] = text
          end
          changes = changes or source_changes
          row[1], row[2], row[4] = id, extracted, t.gen_text
          row[3] = changes and meta_json(t.sync_id, changes) or t.empty_meta
          t.final_rows[n] = copy_row(row, #cols + 4)
        end
        local raw = t.raw_row
        raw[1], raw[2], raw[3], raw[4] = id, extracted, loaded, data_json
        raw[5] = source_changes and meta_json(t.sync_id, source_changes) or t.empty_meta
        raw[6] = t.gen_text
        t.raw_rows[n] = copy_row(raw, 6)
        t.n, t.bytes = n, t.bytes + #data_json
        if n >= BATCH_ROWS or t.bytes >= BATCH_BYTES then flush(t) end
      end
    else
      local name, _, status = cdk.stream_status(msg)
      local t = name and tables[name]
      if t and not t.dropped then
        if status == "COMPLETE" then
          swap(t)
        elseif status == "INCOMPLETE" and t.raw_target ~= t.raw then
          t.raw_rows, t.final_rows, t.n, t.bytes = {}, {}, 0, 0
          drop_tmp(t)
          commit()
          t.dropped = true
          emit.log("WARN", format("stream '%s' ended INCOMPLETE: its tables were left as they were", name))
        end
      end
    end
  end

  -- end of input: what is left is committed, new tables swapped in
  flush_all()
  for _, name in ipairs(names) do
    local t = tables[name]
    if not t.dropped then swap(t) end
  end
  conn:exec("COMMIT")
  conn:close()
end

return cdk.destination {
  spec = SPEC,
  check = check,
  write = write,
}
