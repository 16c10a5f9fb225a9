-- airbyte.dv2.postgres: the SQL of the Destinations V2 layout on
-- PostgreSQL, for connectors.destination-postgres.
--
--   raw table   <raw_schema>."<schema>_raw__stream_<stream>"
--       _airbyte_raw_id, _airbyte_extracted_at, _airbyte_loaded_at,
--       _airbyte_data (jsonb), _airbyte_meta (jsonb), _airbyte_generation_id
--   final table <schema>."<stream>"
--       _airbyte_raw_id, _airbyte_extracted_at, _airbyte_meta, _airbyte_generation_id,
--       then one typed column per top-level property (airbyte.dv2.typing)
-- Names over 63 bytes are cut as pg.c cuts them (pg.name).
--
--   M.final_columns(json_schema) -> { { name, kind, column, quoted, pg_type }, ... }
--   M.raw_name(schema, stream), M.tmp_name(table), M.qualified(schema, table)
--   M.create_raw(q), M.create_final(q, columns) -> CREATE TABLE IF NOT EXISTS ...
--   M.add_missing_columns(conn, schema, table, columns) (a later schema's new properties)
--   M.dedup(final_q, stage_q, pk_columns, cursor_column, cdc) -> statements
--   M.swap(conn, schema, tmp, final, cascade)   (inside the caller's transaction)
local pg = require "airbyte.pg"
local typing = require "airbyte.dv2.typing"

local M = {}

local concat, format = table.concat, string.format
local name, quote = pg.name, pg.quote_ident

M.PG_TYPE = {
  string = "varchar", integer = "bigint", number = "numeric", boolean = "boolean",
  date = "date", timestamp_with_timezone = "timestamp with time zone",
  timestamp_without_timezone = "timestamp without time zone",
  time_with_timezone = "time with time zone", time_without_timezone = "time without time zone",
  object = "jsonb", array = "jsonb", unknown = "jsonb",
}

-- the columns every final table starts with; a property of the same name
-- gets a "_" in front, as DV2 does
M.META_COLUMNS = { "_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "_airbyte_generation_id" }
local RESERVED = {}
for _, c in ipairs(M.META_COLUMNS) do RESERVED[c] = true end
RESERVED._airbyte_loaded_at = true
RESERVED._airbyte_data = true

function M.final_columns(schema)
  local cols = typing.columns(schema)
  local seen = {}
  for _, c in ipairs(cols) do
    local col = c.name
    while RESERVED[col] or seen[col] do col = "_" .. col end
    col = name(col)
    seen[col] = true
    c.column, c.quoted, c.pg_type = col, quote(col), M.PG_TYPE[c.kind]
  end
  return cols
end

function M.raw_name(schema, stream) return name(schema .. "_raw__stream_" .. stream) end
function M.final_name(stream) return name(stream) end
function M.tmp_name(table_name) return name(table_name .. "_airbyte_tmp") end
function M.qualified(schema, table_name) return quote(schema) .. "." .. quote(table_name) end

function M.create_raw(q)
  return "CREATE TABLE IF NOT EXISTS " .. q .. " (" ..
    "_airbyte_raw_id varchar NOT NULL, " ..
    "_airbyte_extracted_at timestamp with time zone NOT NULL DEFAULT now(), " ..
    "_airbyte_loaded_at timestamp with time zone, " ..
    "_airbyte_data jsonb, _airbyte_meta jsonb, _airbyte_generation_id bigint)"
end

function M.create_final(q, columns)
  local parts = {
    "_airbyte_raw_id varchar NOT NULL",
    "_airbyte_extracted_at timestamp with time zone NOT NULL",
    "_airbyte_meta jsonb NOT NULL",
    "_airbyte_generation_id bigint",
  }
  for _, c in ipairs(columns) do parts[#parts + 1] = c.quoted .. " " .. c.pg_type end
  return "CREATE TABLE IF NOT EXISTS " .. q .. " (" .. concat(parts, ", ") .. ")"
end

-- A table made by an earlier sync lacks the columns of properties added
-- since: they are added (null in the old rows), as DV2's soft reset would.
function M.add_missing_columns(conn, schema, table_name, columns)
  local rows = conn:query("SELECT column_name FROM information_schema.columns " ..
    "WHERE table_schema = $1 AND table_name = $2", { schema, table_name })
  local have = {}
  for _, r in ipairs(rows) do have[r.column_name] = true end
  for _, c in ipairs(columns) do
    if not have[c.column] then
      conn:exec(format("ALTER TABLE %s ADD COLUMN %s %s", M.qualified(schema, table_name), c.quoted, c.pg_type))
    end
  end
end

-- "a beats b": a is the later version of the same key (cursor, then
-- extracted_at; a null cursor is the oldest).
local function beats(a, b, cursor, tie)
  local ea, eb = format("%s._airbyte_extracted_at", a), format("%s._airbyte_extracted_at", b)
  local later = format("(%s > %s%s)", ea, eb, tie and (format(" OR (%s = %s AND %s)", ea, eb, tie)) or "")
  if not cursor then return later end
  local ca, cb = a .. "." .. cursor, b .. "." .. cursor
  return format("(%s > %s OR (%s IS NOT NULL AND %s IS NULL) OR ((%s = %s OR (%s IS NULL AND %s IS NULL)) AND %s))",
    ca, cb, ca, cb, ca, cb, ca, cb, later)
end

-- The statements that fold a staged batch (stage_q, with an arrival order
-- column _lb_ord) into the final table keeping one row per primary key,
-- the latest; with cdc, a latest row whose _ab_cdc_deleted_at is set
-- deletes the key.
function M.dedup(final_q, stage_q, pk, cursor, cdc, columns)
  local on_s, on_f = {}, {}
  for i, k in ipairs(pk) do
    on_s[i] = format("s.%s = t.%s", k, k)
    on_f[i] = format("s.%s = f.%s", k, k)
  end
  local cols = {}
  for i, c in ipairs(M.META_COLUMNS) do cols[i] = c end
  for _, c in ipairs(columns) do cols[#cols + 1] = c.quoted end
  local col_list = concat(cols, ", ")
  return {
    -- within the batch: the latest of each key (ties: the one that came last)
    format("DELETE FROM %s s USING %s t WHERE %s AND %s", stage_q, stage_q, concat(on_s, " AND "),
      beats("t", "s", cursor, "t._lb_ord > s._lb_ord")),
    -- a batch row older than the final table's row of its key goes
    format("DELETE FROM %s s USING %s f WHERE %s AND %s", stage_q, final_q, concat(on_f, " AND "),
      beats("f", "s", cursor, nil)),
    format("DELETE FROM %s f USING %s s WHERE %s", final_q, stage_q, concat(on_f, " AND ")),
    format("INSERT INTO %s (%s) SELECT %s FROM %s%s", final_q, col_list, col_list, stage_q,
      cdc and ' WHERE "_ab_cdc_deleted_at" IS NULL' or ""),
    "TRUNCATE " .. stage_q,
  }
end

function M.swap(conn, schema, tmp, final, cascade)
  conn:exec(format("DROP TABLE IF EXISTS %s%s", M.qualified(schema, final), cascade and " CASCADE" or ""))
  conn:exec(format("ALTER TABLE %s RENAME TO %s", M.qualified(schema, tmp), quote(final)))
end

return M
