-- The built-in destination-postgres (a real child process, `luabyte
-- connector destination-postgres ...`) against a real PostgreSQL server:
-- the Destinations V2 layout checked against Airbyte's own fixtures
-- (../shared/fixtures/destinations-v2-typing-deduping), the three sync
-- modes across two syncs, STATE echoed only after its rows are committed,
-- failure paths, and faker -> destination-postgres through Destination:write.
--
-- The server comes from the environment libpq reads (PGHOST, PGPORT,
-- PGUSER, PGPASSWORD, PGDATABASE; scripts/pg.sh env prints them). Without a
-- reachable server every test is pending with the reason.
local H = require "helper"
local json = require "airbyte.json"
local proc = require "airbyte.process"
local pg = require "airbyte.pg"
local typing = require "airbyte.dv2.typing"

local FIX = H.shared .. "/fixtures/destinations-v2-typing-deduping"
local NULL = json.null

local ENV = {
  host = os.getenv("PGHOST"), port = os.getenv("PGPORT"), database = os.getenv("PGDATABASE"),
  username = os.getenv("PGUSER"), password = os.getenv("PGPASSWORD"),
}

local db, why
if not ENV.host or ENV.host == "" then
  why = "no PostgreSQL server: PGHOST is not set (LB_PG_DIR=/tmp/pg-x scripts/pg.sh start, then " ..
    "eval \"$(LB_PG_DIR=/tmp/pg-x scripts/pg.sh env)\")"
else
  local ok, c = pcall(pg.connect, ENV)
  if ok then
    db = c
    db:exec("SET TimeZone = 'UTC'")
  else
    why = "no PostgreSQL server reachable: " .. tostring(c)
  end
end

local function need_pg()
  if db then return true end
  pending("skip: " .. why)
  return false
end

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local schemas = {}
local function fresh_schema()
  local s = ("lbt_pgdest_%d_%d"):format(os.time() % 100000, math.random(1, 1e9))
  schemas[#schemas + 1] = s
  schemas[#schemas + 1] = s .. "_raw"
  return s
end

local function drop_schemas()
  if not db then return end
  for _, s in ipairs(schemas) do db:exec("DROP SCHEMA IF EXISTS " .. pg.quote_ident(s) .. " CASCADE") end
  schemas = {}
end

local function config(schema, extra)
  -- (the fallbacks serve the tests that need no server)
  local c = { host = ENV.host or "127.0.0.1", port = tonumber(ENV.port) or 5432, database = ENV.database or "luabyte",
              schema = schema, username = ENV.username or "luabyte", password = ENV.password,
              raw_data_schema = schema .. "_raw" }
  for k, v in pairs(extra or {}) do c[k] = v end
  return c
end

local function write_json(path, value)
  H.write_file(path, json.encode(value))
  return path
end

-- A configured catalog of one stream.
local function catalog(name, schema, mode, extra)
  local cs = { stream = { name = name, json_schema = schema,
                          supported_sync_modes = json.array { "full_refresh", "incremental" } },
               sync_mode = "incremental", destination_sync_mode = mode }
  for k, v in pairs(extra or {}) do cs[k] = v end
  return { streams = { cs } }
end

-- JSON lines of a fixture file, "//" comment lines skipped.
local function fixture_lines(rel)
  local out = {}
  for line in io.lines(FIX .. "/" .. rel) do
    if line:match("%S") and not line:match("^%s*//") then out[#out + 1] = json.decode(line) end
  end
  return out
end

-- The fixture's messages with the stream name the harness injects.
local function fixture_messages(rel, stream)
  local out = {}
  for _, m in ipairs(fixture_lines(rel)) do
    if m.type == "RECORD" then m.record.stream = stream end
    out[#out + 1] = json.encode(m)
  end
  return out
end

local function record(stream, data, emitted_at)
  return ('{"type":"RECORD","record":{"stream":"%s","data":%s,"emitted_at":%d}}'):format(
    stream, data, emitted_at or 1000)
end

local function state(stream, n, count)
  return ('{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"%s"},' ..
    '"stream_state":{"n":%d}},"sourceStats":{"recordCount":%d.0}}}'):format(stream, n, count or 0)
end

local function status(stream, st)
  return ('{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1000.0,"stream_status":' ..
    '{"stream_descriptor":{"name":"%s","namespace":null},"status":"%s"}}}'):format(stream, st)
end

-- Runs `luabyte connector destination-postgres ARGS...`; stdout, exit code, stderr tail.
local function connector(args, stdin)
  local argv = { H.exe, "connector", "destination-postgres" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local out, code, _, p = H.run(argv, { stdin = stdin, timeout = 120000 })
  return out, code, table.concat(p:tail() or {}, "\n")
end

local dir
local function write(cfg, cat, lines)
  local c = write_json(dir .. "/config.json", cfg)
  local k = write_json(dir .. "/catalog.json", cat)
  return connector({ "write", "--config", c, "--catalog", k }, table.concat(lines, "\n") .. "\n")
end

local function messages_of(out, kind)
  local list = {}
  for line in (out .. "\n"):gmatch("(.-)\n") do
    local ok, m = pcall(json.decode, line)
    if ok and type(m) == "table" and m.type == kind then list[#list + 1] = m end
  end
  return list
end

local function q(schema, name) return pg.quote_ident(schema) .. "." .. pg.quote_ident(name) end

-- rows of a table as decoded JSON objects (to_jsonb), ordered by `order`
local function rows(schema, name, order)
  local r = db:query(("SELECT to_jsonb(t) AS j FROM %s t ORDER BY %s"):format(q(schema, name), order or "1"))
  local out = {}
  for i, row in ipairs(r) do out[i] = json.decode(row.j) end
  return out
end

local function count(schema, name)
  return tonumber(db:query("SELECT count(*) AS n FROM " .. q(schema, name))[1].n)
end

local function table_exists(schema, name)
  return #db:query("SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2",
    { schema, name }) == 1
end

-- Canonical JSON text (sorted keys) of a value, for comparisons. Values the
-- fixtures call nondeterministic (_airbyte_raw_id, _airbyte_loaded_at) and
-- nulls (absent and null are the same row) are left out; timestamps are
-- compared as instants in one spelling (".000" and "+00:00" as "Z").
local function canon(v, key)
  local tv = type(v)
  if tv == "string" then
    local base, frac, zone = v:match("^(%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d)(%.?%d*)([Zz+]?[0:]*)$")
    if base and (zone == "Z" or zone == "z" or zone == "+00:00" or zone == "+00") then
      frac = frac:gsub("0+$", "")
      if frac == "." then frac = "" end
      v = base .. frac .. "Z"
    end
    return '"' .. json.escape(v) .. '"'
  elseif tv == "table" then
    local mt = getmetatable(v)
    local is_arr = (mt and mt.__name == "airbyte.json.array") or v[1] ~= nil or (key == "changes")
    if is_arr then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = canon(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k, x in pairs(v) do
      if x ~= NULL and k ~= "_airbyte_raw_id" and k ~= "_airbyte_loaded_at" then keys[#keys + 1] = k end
    end
    table.sort(keys)
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = '"' .. json.escape(k) .. '":' .. canon(v[k], k) end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif v == NULL or v == nil then
    return "null"
  end
  return json.encode(v)
end

local function canon_all(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = canon(v) end
  table.sort(out)
  return out
end

local DAT_SCHEMA
local function dat_schema()
  DAT_SCHEMA = DAT_SCHEMA or json.decode(H.read_file(FIX .. "/java-cdk-typing-deduping/dat/schema.json"))
  return DAT_SCHEMA
end

local function nulled(field)
  return { field = field, change = "NULLED", reason = "DESTINATION_TYPECAST_ERROR" }
end

-- The final rows Destinations V2 makes of dat/sync1_messages.jsonl (the
-- fixture's comments say what each record tests): two versions of
-- (1,200), one with no _ab_cdc_deleted_at, a bad age and date, and a name
-- with control characters and quotes.
local function dat_final_rows(meta_extra)
  local function meta(changes)
    local m = { changes = changes or {} }
    for k, v in pairs(meta_extra or {}) do m[k] = v end
    return m
  end
  local base = { _airbyte_extracted_at = "1970-01-01T00:00:01Z", _airbyte_generation_id = 43 }
  local function row(t)
    for k, v in pairs(base) do t[k] = v end
    return t
  end
  return {
    row { id1 = 1, id2 = 200, updated_at = "2000-01-01T00:00:00Z", name = "Alice",
          address = { city = "San Francisco", state = "CA" }, _airbyte_meta = meta() },
    row { id1 = 1, id2 = 200, updated_at = "2000-01-01T00:01:00Z", name = "Alice",
          address = { city = "Los Angeles", state = "CA" }, _airbyte_meta = meta() },
    row { id1 = 1, id2 = 201, updated_at = "2000-01-01T00:02:00Z", name = "Bob",
          address = { city = "Boston", state = "MA" }, _airbyte_meta = meta() },
    row { id1 = 2, id2 = 200, updated_at = "2000-01-01T00:03:00Z", name = "Charlie",
          _airbyte_meta = meta { nulled("age"), nulled("registration_date") } },
    row { id1 = 3, id2 = 200, updated_at = "2000-01-01T00:04:00Z",
          name = "a\bb\fc\nd\re\tf`~!@#$%^&*()_+-=[]\\{}|'\",./<>?", _airbyte_meta = meta() },
  }
end

local PK = json.array { json.array { "id1" }, json.array { "id2" } }
local CURSOR = json.array { "updated_at" }

before_each(function() dir = H.tmpdir() end)
after_each(function()
  H.rm_rf(dir)
  drop_schemas()
end)

---------------------------------------------------------------------------

describe("destination-postgres spec and check", function()
  it("has the config of Airbyte's destination-postgres", function()
    local out, code = connector({ "spec" })
    assert.equal(0, code)
    local spec = messages_of(out, "SPEC")[1].spec
    local cs = spec.connectionSpecification
    for _, k in ipairs({ "host", "port", "database", "schema", "username" }) do
      assert.is_true(cs.required[1] ~= nil and (function()
        for _, r in ipairs(cs.required) do if r == k then return true end end
      end)() or false, k)
    end
    assert.equal("public", cs.properties.schema.default)
    assert.equal(5432, cs.properties.port.default)
    assert.is_true(cs.properties.password.airbyte_secret)
    assert.is_table(cs.properties.ssl_mode.oneOf)
    assert.same({ "overwrite", "append", "append_dedup" }, spec.supported_destination_sync_modes)
  end)

  it("check succeeds against the server and creates the schema", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    local out, code = connector({ "check", "--config", write_json(dir .. "/c.json", config(schema)) })
    assert.equal(0, code)
    local st = messages_of(out, "CONNECTION_STATUS")[1].connectionStatus
    assert.equal("SUCCEEDED", st.status, st.message)
    assert.is_true(#db:query("SELECT 1 FROM information_schema.schemata WHERE schema_name = $1", { schema }) == 1)
  end)

  it("check reports FAILED with the server's reason for a wrong password, the password masked", function()
    if not need_pg() then return end
    local secret = "Wr0ng-pgdest-s3cret"
    local cfg = config(fresh_schema(), { password = secret })
    local out, code = connector({ "check", "--config", write_json(dir .. "/c.json", cfg) })
    assert.equal(0, code)
    local st = messages_of(out, "CONNECTION_STATUS")[1].connectionStatus
    assert.equal("FAILED", st.status)
    assert.truthy(st.message:find("password authentication failed", 1, true), st.message)
    assert.truthy(st.message:find("connecting to PostgreSQL", 1, true), st.message)
    assert.falsy(out:find(secret, 1, true))
  end)

  it("check masks a password the server's message happens to repeat", function()
    if not need_pg() then return end
    -- the server names the user in its message: with the user name as the
    -- password, the masker must hide it there too
    local cfg = config(fresh_schema(), { username = "pgdest_secret_user", password = "pgdest_secret_user" })
    local out = connector({ "check", "--config", write_json(dir .. "/c.json", cfg) })
    local st = messages_of(out, "CONNECTION_STATUS")[1].connectionStatus
    assert.equal("FAILED", st.status)
    assert.falsy(out:find("pgdest_secret_user", 1, true), out)
    assert.truthy(st.message:find("****", 1, true), st.message)
  end)

  it("check reports FAILED for an unreachable server", function()
    -- a port nothing listens on: bind one, then close it
    local cfg = config("public", { host = "127.0.0.1", port = 1 })
    local out, code = connector({ "check", "--config", write_json(dir .. "/c.json", cfg) })
    assert.equal(0, code)
    local st = messages_of(out, "CONNECTION_STATUS")[1].connectionStatus
    assert.equal("FAILED", st.status)
    assert.truthy(st.message:find("127.0.0.1:1", 1, true), st.message)
    assert.truthy(st.message:find("refused", 1, true) or st.message:find("failed", 1, true), st.message)
  end)

  -- scripts/pg.sh starts its server without SSL
  it("ssl and ssl_mode reach libpq: a server without SSL refuses sslmode=require", function()
    if not need_pg() then return end
    for _, extra in ipairs({ { ssl = true }, { ssl_mode = { mode = "require" } } }) do
      local out = connector({ "check", "--config", write_json(dir .. "/c.json", config(fresh_schema(), extra)) })
      local st = messages_of(out, "CONNECTION_STATUS")[1].connectionStatus
      assert.equal("FAILED", st.status)
      assert.truthy(st.message:find("SSL", 1, true), st.message)
    end
    local out = connector({ "check", "--config", write_json(dir .. "/c.json",
      config(fresh_schema(), { ssl = true, ssl_mode = { mode = "disable" } })) })
    assert.equal("SUCCEEDED", messages_of(out, "CONNECTION_STATUS")[1].connectionStatus.status)
  end)

  it("check rejects what the built-in cannot do with a clear reason", function()
    local cfg = config("public", { tunnel_method = { tunnel_method = "SSH_KEY_AUTH" } })
    local out = connector({ "check", "--config", write_json(dir .. "/c.json", cfg) })
    local st = messages_of(out, "CONNECTION_STATUS")[1].connectionStatus
    assert.equal("FAILED", st.status)
    assert.truthy(st.message:find("SSH_KEY_AUTH", 1, true), st.message)
    cfg = config("public", { ssl_mode = { mode = "verify-full" } })
    out = connector({ "check", "--config", write_json(dir .. "/c.json", cfg) })
    st = messages_of(out, "CONNECTION_STATUS")[1].connectionStatus
    assert.equal("FAILED", st.status)
    assert.truthy(st.message:find("verify-full", 1, true), st.message)
  end)
end)

describe("destination-postgres against Airbyte's typing and deduping fixtures", function()
  it("base-typing-deduping-test sync1 (full refresh overwrite): the expected raw and final rows", function()
    if not (H.need_shared(pending) and need_pg()) then return end
    local schema = fresh_schema()
    local msgs = fixture_messages("base-typing-deduping-test/sync1_messages.jsonl", "users")
    local out, code, tail = write(config(schema), catalog("users", dat_schema(), "overwrite"), msgs)
    assert.equal(0, code, tail .. out)
    -- raw: the fixture lists _airbyte_extracted_at and _airbyte_data
    local raw = {}
    for i, r in ipairs(rows(schema .. "_raw", schema .. "_raw__stream_users", "_airbyte_data::text")) do
      raw[i] = { _airbyte_extracted_at = r._airbyte_extracted_at, _airbyte_data = r._airbyte_data }
    end
    assert.same(canon_all(fixture_lines("base-typing-deduping-test/sync1_expectedrecords_fullrefresh_overwrite_raw.jsonl")),
      canon_all(raw))
    -- final: the fixture's early meta shape {"errors": []} is today's {"changes": []}
    local expected = fixture_lines("base-typing-deduping-test/sync1_expectedrecords_fullrefresh_overwrite_final.jsonl")
    for _, e in ipairs(expected) do e._airbyte_meta = { changes = e._airbyte_meta.errors } end
    local final = rows(schema, "users")
    for _, r in ipairs(final) do
      assert.is_true(r._airbyte_generation_id == NULL)   -- no generation_id in this catalog
      r._airbyte_generation_id = nil
      r._airbyte_meta.sync_id = nil
    end
    assert.same(canon_all(expected), canon_all(final))
    assert.is_false(table_exists(schema, "users_airbyte_tmp"))
  end)

  it("dat sync1 (append): a type error nulled with a change, raw keeps it; control characters intact", function()
    if not (H.need_shared(pending) and need_pg()) then return end
    local schema = fresh_schema()
    local msgs = fixture_messages("java-cdk-typing-deduping/dat/sync1_messages.jsonl", "users")
    msgs[#msgs + 1] = state("users", 1, 5)
    local out, code, tail = write(config(schema),
      catalog("users", dat_schema(), "append", { generation_id = 43, minimum_generation_id = 0, sync_id = 42 }), msgs)
    assert.equal(0, code, tail .. out)
    local echoed = messages_of(out, "STATE")
    assert.equal(1, #echoed)
    assert.equal(5, echoed[1].state.destinationStats.recordCount)
    assert.same(canon_all(dat_final_rows { sync_id = 42 }), canon_all(rows(schema, "users")))
    -- the raw table keeps what came, the bad values included
    local charlie = db:query(("SELECT _airbyte_data->>'age' AS age, _airbyte_data->>'registration_date' AS d, " ..
      "_airbyte_loaded_at IS NOT NULL AS loaded, _airbyte_generation_id AS g FROM %s WHERE _airbyte_data->>'name' = 'Charlie'")
      :format(q(schema .. "_raw", schema .. "_raw__stream_users")))[1]
    assert.same({ age = "this is not an integer", d = "this is not a date", loaded = "t", g = "43" }, charlie)
    -- typed columns
    local types = {}
    for _, r in ipairs(db:query("SELECT column_name, data_type FROM information_schema.columns " ..
        "WHERE table_schema = $1 AND table_name = 'users'", { schema })) do
      types[r.column_name] = r.data_type
    end
    assert.same({
      _airbyte_raw_id = "character varying", _airbyte_extracted_at = "timestamp with time zone",
      _airbyte_meta = "jsonb", _airbyte_generation_id = "bigint",
      id1 = "bigint", id2 = "bigint", updated_at = "timestamp with time zone",
      _ab_cdc_deleted_at = "timestamp with time zone", name = "character varying", address = "jsonb",
      age = "bigint", registration_date = "date",
    }, types)
  end)

  it("dat sync1 (append_dedup): one row per primary key, the latest by cursor", function()
    if not (H.need_shared(pending) and need_pg()) then return end
    local schema = fresh_schema()
    local msgs = fixture_messages("java-cdk-typing-deduping/dat/sync1_messages.jsonl", "users")
    local out, code, tail = write(config(schema), catalog("users", dat_schema(), "append_dedup",
      { primary_key = PK, cursor_field = CURSOR, generation_id = 43, minimum_generation_id = 0, sync_id = 42 }), msgs)
    assert.equal(0, code, tail .. out)
    local expected = dat_final_rows { sync_id = 42 }
    table.remove(expected, 1)      -- (1,200) at 00:00 lost to 00:01
    assert.same(canon_all(expected), canon_all(rows(schema, "users")))
    assert.equal(5, count(schema .. "_raw", schema .. "_raw__stream_users"))
  end)

  it("sqlgenerator alltypes: every type, its typecast errors, exact numbers, case-sensitive names", function()
    if not (H.need_shared(pending) and need_pg()) then return end
    local schema = fresh_schema()
    local function t(ty, extra)
      local d = { type = ty }
      for k, v in pairs(extra or {}) do d[k] = v end
      return d
    end
    local js = { type = "object", properties = {
      id1 = t("integer"), id2 = t("integer"), updated_at = t("string", { format = "date-time", airbyte_type = "timestamp_with_timezone" }),
      array = t("array"), struct = t("object"), string = t("string"), number = t("number"), integer = t("integer"),
      boolean = t("boolean"),
      timestamp_with_timezone = t("string", { format = "date-time", airbyte_type = "timestamp_with_timezone" }),
      timestamp_without_timezone = t("string", { format = "date-time", airbyte_type = "timestamp_without_timezone" }),
      time_with_timezone = t("string", { format = "time", airbyte_type = "time_with_timezone" }),
      time_without_timezone = t("string", { format = "time", airbyte_type = "time_without_timezone" }),
      date = t("string", { format = "date" }), unknown = {}, IamACaseSensitiveColumnName = t("string"),
    } }
    -- the fixture's rows are raw-table rows: sent as the records they were
    local msgs = {}
    for _, r in ipairs(fixture_lines("java-cdk-typing-deduping/sqlgenerator/alltypes_inputrecords.jsonl")) do
      msgs[#msgs + 1] = json.encode({ type = "RECORD", record = { stream = "alltypes", data = r._airbyte_data,
        emitted_at = 1672531200000 } })
    end
    local out, code, tail = write(config(schema), catalog("alltypes", js, "append"), msgs)
    assert.equal(0, code, tail .. out)
    local by_id = {}
    for _, r in ipairs(rows(schema, "alltypes", "id1")) do by_id[r.id1] = r end
    local r1 = by_id[1]
    assert.same({}, r1._airbyte_meta.changes)
    assert.equal(canon({ "foo" }), canon(r1.array))
    assert.equal(canon({ foo = "bar" }), canon(r1.struct))
    assert.equal(42.1, r1.number)
    assert.equal(42, r1.integer)
    assert.is_true(r1.boolean)
    assert.equal("2023-01-23T12:34:56+00:00", r1.timestamp_with_timezone)
    assert.equal("2023-01-23T12:34:56", r1.timestamp_without_timezone)
    assert.equal("12:34:56+00", r1.time_with_timezone)        -- timetz as PostgreSQL prints it
    assert.equal("12:34:56", r1.time_without_timezone)
    assert.equal("2023-01-23", r1.date)
    assert.equal(canon({}), canon(r1.unknown))
    -- row 2: explicit nulls are nulls, not errors; row 3: absent
    assert.same({}, by_id[2]._airbyte_meta.changes)
    assert.same({}, by_id[3]._airbyte_meta.changes)
    -- row 4: every value of the wrong type nulled, with its change, in column order
    local want = {}
    for _, f in ipairs({ "array", "boolean", "date", "integer", "number", "struct", "time_with_timezone",
                         "time_without_timezone", "timestamp_with_timezone", "timestamp_without_timezone" }) do
      want[#want + 1] = canon(nulled(f))
      assert.is_true(by_id[4][f] == NULL, f)
    end
    local got = {}
    for i, c in ipairs(by_id[4]._airbyte_meta.changes) do got[i] = canon(c) end
    assert.same(want, got)
    -- row 5: numbers keep their digits
    local r5 = db:query(([[SELECT "number"::text AS n, "struct"->>'nested_number' AS s, "array"->>0 AS a, "unknown"::text AS u ]] ..
      "FROM %s WHERE id1 = 5"):format(q(schema, "alltypes")))[1]
    assert.same({ n = "67.174118", s = "67.174118", a = "67.174118", u = "67.174118" }, r5)
    -- row 6: a case-sensitive column keeps its case
    assert.equal("Case senstive value", by_id[6].IamACaseSensitiveColumnName)
  end)
end)

describe("destination-postgres sync modes across two syncs", function()
  local SCHEMA = { type = "object", properties = {
    id = { type = "integer" }, v = { type = "string" }, updated = { type = "integer" },
    _ab_cdc_deleted_at = { type = { "null", "string" }, format = "date-time" },
  } }

  local function sync(schema, mode, recs, extra)
    local lines = {}
    for i, r in ipairs(recs) do lines[i] = record("items", r, 1000 + i) end
    lines[#lines + 1] = state("items", 1, #recs)
    lines[#lines + 1] = status("items", "COMPLETE")
    local out, code, tail = write(config(schema), catalog("items", SCHEMA, mode, extra), lines)
    assert.equal(0, code, tail .. out)
    assert.equal(1, #messages_of(out, "STATE"))
  end

  local function values(schema)
    local out = {}
    for _, r in ipairs(db:query("SELECT id, v FROM " .. q(schema, "items") .. " ORDER BY id, v")) do
      out[#out + 1] = r.id .. "=" .. r.v
    end
    return out
  end

  it("append adds the second sync's rows to both tables", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    sync(schema, "append", { '{"id":1,"v":"a"}', '{"id":2,"v":"b"}' })
    sync(schema, "append", { '{"id":1,"v":"c"}' })
    assert.same({ "1=a", "1=c", "2=b" }, values(schema))
    assert.equal(3, count(schema .. "_raw", schema .. "_raw__stream_items"))
  end)

  it("overwrite replaces both tables, and a schema change adds its column", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    sync(schema, "overwrite", { '{"id":1,"v":"a"}', '{"id":2,"v":"b"}' })
    sync(schema, "overwrite", { '{"id":3,"v":"c"}' })
    assert.same({ "3=c" }, values(schema))
    assert.equal(1, count(schema .. "_raw", schema .. "_raw__stream_items"))
    assert.is_false(table_exists(schema, "items_airbyte_tmp"))
    assert.is_false(table_exists(schema .. "_raw", schema .. "_raw__stream_items_airbyte_tmp"))
  end)

  it("a refresh (minimum_generation_id = generation_id) truncates like overwrite", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    sync(schema, "append", { '{"id":1,"v":"a"}' }, { generation_id = 1, minimum_generation_id = 0 })
    sync(schema, "append", { '{"id":2,"v":"b"}' }, { generation_id = 2, minimum_generation_id = 2 })
    assert.same({ "2=b" }, values(schema))
    assert.equal("2", db:query("SELECT _airbyte_generation_id AS g FROM " .. q(schema, "items"))[1].g)
  end)

  it("append_dedup keeps the latest row per key by cursor, ignores older ones, and deletes CDC tombstones", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    local dd = { primary_key = json.array { json.array { "id" } }, cursor_field = json.array { "updated" } }
    sync(schema, "append_dedup", { '{"id":1,"v":"a","updated":1}', '{"id":2,"v":"b","updated":1}',
                                   '{"id":3,"v":"c","updated":1}', '{"id":1,"v":"a2","updated":2}' }, dd)
    assert.same({ "1=a2", "2=b", "3=c" }, values(schema))
    sync(schema, "append_dedup", {
      '{"id":2,"v":"b-old","updated":0}',                                   -- older cursor: ignored
      '{"id":1,"v":"a3","updated":5}',                                      -- newer: wins
      '{"id":3,"v":"c","updated":2,"_ab_cdc_deleted_at":"2024-01-01T00:00:00Z"}',   -- deleted
      '{"id":4,"v":"d","updated":1}',
    }, dd)
    assert.same({ "1=a3", "2=b", "4=d" }, values(schema))
    assert.equal(8, count(schema .. "_raw", schema .. "_raw__stream_items"))   -- raw keeps everything
  end)

  it("a NUL character, which PostgreSQL cannot store, is dropped from both tables", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    local out, code, tail = write(config(schema), catalog("items", SCHEMA, "append"),
      { record("items", [[{"id":1,"v":"a\u0000b","x":{"k":"\\u0000 stays"}}]]), state("items", 1, 1) })
    assert.equal(0, code, tail .. out)
    assert.same({ { v = "ab", raw = "ab", k = "\\u0000 stays" } }, db:query("SELECT f.v, r._airbyte_data->>'v' AS raw, " ..
      "r._airbyte_data->'x'->>'k' AS k FROM " .. q(schema, "items") .. " f JOIN " ..
      q(schema .. "_raw", schema .. "_raw__stream_items") .. " r USING (_airbyte_raw_id)"))
  end)

  it("disable_type_dedupe writes only the raw table, its rows not loaded", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    local out, code, tail = write(config(schema, { disable_type_dedupe = true }), catalog("items", SCHEMA, "append"),
      { record("items", '{"id":1,"v":"a"}'), state("items", 1, 1) })
    assert.equal(0, code, tail .. out)
    assert.is_false(table_exists(schema, "items"))
    assert.same({ { id = "1", loaded = "f" } }, db:query("SELECT _airbyte_data->>'id' AS id, " ..
      "_airbyte_loaded_at IS NOT NULL AS loaded FROM " .. q(schema .. "_raw", schema .. "_raw__stream_items")))
  end)

  it("append_dedup without a primary key is a config error naming the stream", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    local out, code = write(config(schema), catalog("items", SCHEMA, "append_dedup"), { record("items", '{"id":1}') })
    assert.is_not.equal(0, code)
    local err = messages_of(out, "TRACE")[1].trace.error
    assert.equal("config_error", err.failure_type)
    assert.truthy(err.message:find("'items'", 1, true) and err.message:find("primary key", 1, true), err.message)
  end)

  it("overwrite: a record after the stream's COMPLETE goes to the swapped-in tables", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    sync(schema, "overwrite", { '{"id":1,"v":"a"}' })
    local out, code, tail = write(config(schema), catalog("items", SCHEMA, "overwrite"),
      { record("items", '{"id":2,"v":"b"}'), status("items", "COMPLETE"), record("items", '{"id":3,"v":"c"}') })
    assert.equal(0, code, tail .. out)
    assert.same({ "2=b", "3=c" }, values(schema))
    assert.equal(2, count(schema .. "_raw", schema .. "_raw__stream_items"))
  end)

  it("overwrite that ends INCOMPLETE keeps the old tables", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    sync(schema, "overwrite", { '{"id":1,"v":"a"}' })
    local out, code, tail = write(config(schema), catalog("items", SCHEMA, "overwrite"),
      { record("items", '{"id":9,"v":"z"}'), status("items", "INCOMPLETE") })
    assert.equal(0, code, tail .. out)
    assert.same({ "1=a" }, values(schema))
    assert.is_false(table_exists(schema, "items_airbyte_tmp"))
  end)
end)

-- A running `write` of stream "items" (append) that was sent records 1..10
-- and a STATE, and has echoed it: the process and the echoed message.
local function writer_past_first_state(schema)
  local p = assert(proc.spawn({ argv = { H.exe, "connector", "destination-postgres", "write",
    "--config", write_json(dir .. "/config.json", config(schema)),
    "--catalog", write_json(dir .. "/catalog.json", catalog("items", { type = "object",
      properties = { id = { type = "integer" } } }, "append")) }, stdin = true, timeout = 120000 }))
  local lines = {}
  for i = 1, 10 do lines[i] = record("items", ('{"id":%d}'):format(i)) end
  lines[#lines + 1] = state("items", 1, 10)
  p:write(table.concat(lines, "\n") .. "\n")
  while true do
    local line = p:read_line()
    assert.is_not_nil(line, "the connector ended before echoing the state")
    if line:find('"STATE"', 1, true) then return p, json.decode(line) end
  end
end

describe("destination-postgres commits before it echoes a STATE", function()
  it("rows before an echoed state are committed; rows after it die with the process", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    local p, echoed = writer_past_first_state(schema)
    assert.equal(10, echoed.state.destinationStats.recordCount)
    -- the echo came while the connector still runs: its rows are visible now
    assert.equal(10, count(schema, "items"))
    assert.equal(10, count(schema .. "_raw", schema .. "_raw__stream_items"))
    -- records without a state, then the connector dies: they were never committed
    local lines = {}
    for i = 11, 15 do lines[#lines + 1] = record("items", ('{"id":%d}'):format(i)) end
    p:write(table.concat(lines, "\n") .. "\n")
    p:kill(9)
    p:wait()
    assert.equal(10, count(schema, "items"))
    assert.equal(10, count(schema .. "_raw", schema .. "_raw__stream_items"))
  end)
end)

describe("destination-postgres when the server goes away", function()
  it("fails with the server's words and keeps what was committed", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    local p = writer_past_first_state(schema)
    -- the server ends the connector's session (as a restart or an admin would)
    local killed = db:query("SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity " ..
      "WHERE application_name = 'luabyte destination-postgres' AND pid <> pg_backend_pid()")
    assert.equal(1, #killed)
    local lines = { record("items", '{"id":11}'), state("items", 2, 1) }
    p:write(table.concat(lines, "\n") .. "\n")
    p:close_stdin()
    local rest = {}
    while true do
      local line = p:read_line()
      if not line then break end
      rest[#rest + 1] = line
    end
    local code = p:wait()
    assert.is_not.equal(0, code)
    local out = table.concat(rest, "\n")
    assert.equal(0, #messages_of(out, "STATE"))          -- the second state is not echoed
    local err = messages_of(out, "TRACE")[1].trace.error
    assert.truthy(err.message:find("^PostgreSQL") and          -- the server's words, no Lua position
      (err.message:find("terminat", 1, true) or err.message:find("connection", 1, true)), err.message)
    assert.equal(10, count(schema, "items"))
  end)
end)

describe("destination-postgres names", function()
  it("a stream's namespace is its schema; names over 63 bytes are cut, across syncs", function()
    if not need_pg() then return end
    local schema = fresh_schema()
    local ns = fresh_schema()
    local long = "a_stream_with_a_name_much_longer_than_sixty_three_bytes_" .. string.rep("x", 20)
    local cat = catalog(long, { type = "object", properties = { id = { type = "integer" } } }, "overwrite")
    cat.streams[1].stream.namespace = ns
    for round = 1, 2 do
      local lines = { ('{"type":"RECORD","record":{"stream":"%s","namespace":"%s","data":{"id":%d},"emitted_at":1}}')
        :format(long, ns, round), status(long, "COMPLETE") }
      local out, code, tail = write(config(schema), cat, lines)
      assert.equal(0, code, tail .. out)
    end
    local final = pg.name(long)
    assert.is_true(#final <= 63)
    assert.same({ { id = "2" } }, db:query("SELECT id FROM " .. q(ns, final)))
    assert.equal(1, count(schema .. "_raw", pg.name(ns .. "_raw__stream_" .. long)))
    assert.is_false(table_exists(schema, final))        -- nothing in the default schema
  end)
end)

describe("destination-postgres through the airbyte API", function()
  it("faker -> destination-postgres with dest:write(source): typed tables, confirmed states", function()
    if not need_pg() then return end
    local ab = require "airbyte"
    local schema = fresh_schema()
    local cache = H.new_cache(dir)
    local src = ab.get_source("source-faker", { config = { count = 300, seed = 7 } })
    src:select_all_streams()
    local dest = ab.get_destination("destination-postgres", { config = config(schema) })
    assert.equal("builtin", dest.executor.kind)
    local wr = dest:write(src, { cache = cache })
    assert.is_true(wr.confirmed_states >= 1)
    assert.equal(300, count(schema, "users"))
    assert.equal(300, count(schema .. "_raw", schema .. "_raw__stream_users"))
    local n_products = count(schema, "products")
    local n_purchases = count(schema, "purchases")
    assert.is_true(n_products > 0 and n_purchases > 0)
    assert.equal(300 + n_products + n_purchases, wr.processed_records)
    -- faker's values all fit their types
    local bad = db:query("SELECT count(*) AS n FROM " .. q(schema, "users") ..
      " WHERE jsonb_array_length(_airbyte_meta->'changes') > 0")[1].n
    assert.equal("0", bad)
    local cached = cache:run_sql_query("select id, age from users order by id limit 1")[1]
    local row = db:query("SELECT id, age FROM " .. q(schema, "users") .. " WHERE id = $1", { cached.id })[1]
    assert.equal(tostring(cached.age), row.age)
    cache:close()
  end)

  it("a wrong password fails the write with the server's reason, the password masked", function()
    if not need_pg() then return end
    local ab = require "airbyte"
    local secret = "Wr0ng-pgdest-wr1te"
    local src = ab.get_source("source-faker", { config = { count = 5, seed = 1 } })
    src:select_streams({ "users" })
    local dest = ab.get_destination("destination-postgres", { config = config(fresh_schema(), { password = secret }) })
    local ok, e = pcall(dest.write, dest, src, { cache = false })
    assert.is_false(ok)
    local text = tostring(e) .. " " .. tostring(type(e) == "table" and e.message or "")
    assert.truthy(text:find("password authentication failed", 1, true), text)
    assert.falsy(text:find(secret, 1, true), text)
  end)
end)

describe("airbyte.dv2.typing", function()
  it("casts values as PostgreSQL's input functions take them, or nulls them", function()
    local cast = typing.cast
    assert.same({ "42" }, { cast("integer", 42) })
    assert.same({ "42" }, { cast("integer", 42.0) })
    assert.same({ "-7" }, { cast("integer", " -7 ") })
    assert.same({ nil, false }, { cast("integer", 4.5) })
    assert.same({ nil, false }, { cast("integer", json.decode("99999999999999999999")) })
    assert.same({ nil, false }, { cast("integer", true) })
    assert.same({ "1e5" }, { cast("number", "1e5") })
    assert.same({ nil, false }, { cast("number", "NaN") })
    assert.same({ "true" }, { cast("boolean", true) })
    assert.same({ nil, false }, { cast("boolean", "yes") })
    assert.same({ "2024-02-29" }, { cast("date", "2024-02-29") })
    assert.same({ nil, false }, { cast("date", "2023-02-29") })
    assert.same({ "2021-10-02 14:54:58+00:00" }, { cast("timestamp_with_timezone", "2021-10-02 14:54:58+00:00") })
    assert.same({ nil, false }, { cast("timestamp_with_timezone", "2021-10-02T25:00:00Z") })
    assert.same({ "12:34:56.789-05:30" }, { cast("time_with_timezone", "12:34:56.789-05:30") })
    assert.same({ '{"a":1}' }, { cast("string", json.decode('{"a":1}')) })
    assert.same({ "ab" }, { cast("string", "a\0b") })
    assert.same({ nil, false }, { cast("object", json.decode("[]")) })
    assert.same({ nil, false }, { cast("array", json.decode("{}")) })
    assert.same({ "[]" }, { cast("array", json.decode("[]")) })
    assert.is_nil(cast("integer", NULL))
    assert.equal('{"a":""}', typing.strip_nul_escapes('{"a":"\\u0000"}'))
    assert.equal('{"a":"\\\\u0000"}', typing.strip_nul_escapes('{"a":"\\\\u0000"}'))
  end)

  it("maps JSON schema types to DV2 kinds", function()
    local k = typing.kind_of
    assert.equal("integer", k({ type = { "null", "integer" } }))
    assert.equal("unknown", k({ type = { "string", "integer" } }))
    assert.equal("integer", k({ type = "number", airbyte_type = "integer" }))
    assert.equal("timestamp_without_timezone", k({ type = "string", format = "date-time", airbyte_type = "timestamp_without_timezone" }))
    assert.equal("timestamp_with_timezone", k({ type = "string", format = "date-time" }))
    assert.equal("date", k({ ["$ref"] = "WellKnownTypes.json#/definitions/Date" }))
    assert.equal("unknown", k({ oneOf = {} }))
    assert.equal("object", k({ properties = {} }))
  end)
end)

describe("airbyte.pg", function()
  it("runs statements, binds parameters, copies rows and says what the server said", function()
    if not need_pg() then return end
    local c = pg.connect(ENV)
    assert.equal(0, c:exec("CREATE TEMP TABLE t (a int, b text, c boolean); SET search_path = pg_temp, public"))
    assert.equal(2, c:copy("COPY t (a, b) FROM STDIN", "1\tone\n2\t\\N\n"))
    assert.equal(2, c:copy("COPY t (a, b) FROM STDIN", { "3\tth\\tree\n", "4\tfour\n" }))
    assert.equal(1, c:exec("UPDATE t SET c = true WHERE a = 1"))
    local rows, cols = c:query("SELECT a, b, c FROM t WHERE a >= $1 AND (b IS NOT DISTINCT FROM $2 OR $3) ORDER BY a",
      { 1, nil, true, n = 3 })
    assert.same({ "a", "b", "c" }, cols)
    assert.same({ { a = "1", b = "one", c = "t" }, { a = "2" }, { a = "3", b = "th\tree" }, { a = "4", b = "four" } }, rows)
    assert.same({ { b = "one" } }, (c:query("SELECT b FROM t WHERE c = $1", { true })))
    -- errors: the server's words and the statement, and the connection stays usable
    local ok, err = pcall(c.copy, c, "COPY t (a, b) FROM STDIN", "x\ty\n")
    assert.is_false(ok)
    assert.truthy(err:find('invalid input syntax for type integer: "x"', 1, true), err)
    assert.truthy(err:find("(in: COPY t (a, b) FROM STDIN)", 1, true), err)
    ok, err = pcall(c.query, c, "SELECT nope FROM t")
    assert.is_false(ok)
    assert.truthy(err:find('column "nope" does not exist', 1, true), err)
    assert.equal("4", c:query("SELECT count(*) AS n FROM t")[1].n)
    ok, err = pcall(c.query, c, "SELECT $1", { {} })
    assert.is_false(ok)
    assert.truthy(err:find("parameter 1 is a table", 1, true), err)
    c:close()
    ok, err = pcall(c.exec, c, "SELECT 1")
    assert.is_false(ok)
    assert.truthy(err:find("closed", 1, true), err)
  end)

  it("masks the password in connection errors and cuts long names like pg.c", function()
    local ok, err = pcall(pg.connect, { host = "127.0.0.1", port = "1", database = "d", password = "hunter2-pgdest" })
    assert.is_false(ok)
    assert.truthy(err:find("connecting to PostgreSQL (127.0.0.1:1/d) failed", 1, true), err)
    assert.falsy(err:find("hunter2-pgdest", 1, true))
    local long = string.rep("n", 70)
    assert.equal(63, #pg.name(long))
    assert.is_not.equal(pg.name(long), pg.name(long .. "x"))
    assert.equal("users", pg.name("users"))
    assert.equal('"a""b"', pg.quote_ident('a"b'))
    assert.equal("a\\\\b\\tc\\nd\\re\t\\N\tf\t\\N\n", pg.copy_row({ "a\\b\tc\nd\re", nil, "f\0", json.null }, 4))
    assert.has_error(function() pg.copy_row({ 1 }) end, "COPY field 1 is a number (strings, nil or json.null)")
  end)
end)
