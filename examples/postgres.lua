-- source-faker -> a PostgresCache -> destination-local-json.
--   eval "$(scripts/pg.sh start)"          # or any server: PGHOST, PGPORT, ...
--   build/luabyte examples/postgres.lua [COUNT] [OUT_DIR]
-- Connection parameters are PyAirbyte's; left out, they come from libpq's
-- environment (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD).
local ab = require "airbyte"

local count = tonumber(arg and arg[1]) or 1000
local out = arg and arg[2] or "/tmp/luabyte_postgres_example"

local cache = ab.PostgresCache{
  host = os.getenv("PGHOST") or "127.0.0.1",
  port = tonumber(os.getenv("PGPORT") or "5432"),
  database = os.getenv("PGDATABASE") or "postgres",
  username = os.getenv("PGUSER") or "postgres",
  password = ab.get_secret("PGPASSWORD"),        -- masked in every message and log
  schema_name = "faker_example",                 -- created when missing
}

local source = ab.get_source("source-faker", { config = { count = count, seed = 42 } })
source:select_streams({ "users", "purchases" })
local result = source:read{ cache = cache }      -- records and their state commit together

print(("users in the cache: %d, older than 60: %d"):format(#cache.users, #cache.users:with_filter("age > 60")))
for _, row in ipairs(cache:run_sql_query(
    "SELECT gender, count(*) AS n FROM users GROUP BY gender ORDER BY gender")) do
  print(("  %-8s %6d"):format(tostring(row.gender), row.n))
end

local destination = ab.get_destination("destination-local-json", { config = { destination_path = out } })
local written = destination:write(result)        -- fed from the cache's cursor; the ledger stays in it
print(("wrote %d records to %s"):format(written.processed_records, out))
cache:close()
