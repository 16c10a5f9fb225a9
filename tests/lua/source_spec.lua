-- Sources: get_source, the Source members, read into the SQLite cache,
-- incremental state, write strategies, hooks, failures.
local H = require "helper"
local ab = require "airbyte"
local json = require "airbyte.json"
local errors = require "airbyte.errors"

local kind_of = H.error_kind

local function faker(count, extra)
  local cfg = { count = count or 100, seed = 7, always_updated = false }
  for k, v in pairs(extra or {}) do cfg[k] = v end
  return ab.get_source("source-faker", { config = cfg })
end

describe("get_source", function()
  it("finds the built-in faker and rejects unknown connectors", function()
    local src = faker()
    assert.equal("source-faker", src.name)
    assert.equal("builtin", src.executor.kind)
    -- not built in, not on PATH, not in the registry: PyAirbyte's error
    assert.equal("AirbyteConnectorNotRegisteredError",
      (kind_of(function() ab.get_source("source-does-not-exist") end)))
  end)

  it("runs a local executable", function()
    local dir = H.tmpdir()
    local exe = H.fixture_executable(dir, "crasher")
    local src = ab.get_source("source-crasher", { local_executable = exe, config = { records = 3 } })
    assert.equal("local", src.executor.kind)
    assert.same({ "items" }, src:get_available_streams())
    assert.equal("AirbyteConnectorExecutableNotFoundError",
      (kind_of(function() ab.get_source("x", { local_executable = dir .. "/missing" }) end)))
    H.rm_rf(dir)
  end)

  it("selects streams given with the options", function()
    local src = ab.get_source("source-faker", { config = { count = 5 }, streams = { "users" } })
    assert.same({ "users" }, src:get_selected_streams())
  end)
end)

describe("Source", function()
  it("keeps the config and validates it", function()
    local src = ab.get_source("source-faker")
    local kind = kind_of(function() src:get_config() end)
    assert.equal("AirbyteConnectorConfigurationMissingError", kind)
    src:set_config({ count = 10 })
    assert.same({ count = 10 }, src:get_config())
    local k2, e2 = kind_of(function() src:set_config({ count = "many" }) end)
    assert.equal("AirbyteConnectorValidationFailedError", k2)
    assert.matches("count", tostring(e2))
  end)

  it("exposes the spec", function()
    local src = faker()
    local spec = src.config_spec
    assert.equal("object", spec.type)
    assert.is_table(spec.properties.count)
    local dir = H.tmpdir()
    src:print_config_spec("json", { output_file = dir .. "/spec.json" })
    assert.same(spec, json.decode(H.read_file(dir .. "/spec.json")))
    local yaml = src:print_config_spec("yaml", { output_file = dir .. "/spec.yaml" })
    assert.matches("properties:", yaml)
    assert.matches("count:", yaml)
    H.rm_rf(dir)
  end)

  it("checks connections", function()
    assert.is_true(faker():check())
    local bad = ab.get_source("source-faker")
    bad:set_config({ count = -5 }, { validate = false })
    local kind, e = kind_of(function() bad:check() end)
    assert.equal("AirbyteConnectorCheckFailedError", kind)
    assert.is_string(e.failure_reason)
  end)

  it("discovers streams and builds configured catalogs", function()
    local src = faker()
    assert.same({ "users", "products", "purchases" }, src:get_available_streams())
    assert.equal("object", src:get_stream_json_schema("users").type)
    assert.equal("AirbyteStreamNotFoundError", (kind_of(function() src:get_stream_json_schema("nope") end)))
    local kind, e = kind_of(function() src:select_streams({ "users", "nope" }) end)
    assert.equal("AirbyteStreamNotFoundError", kind)
    assert.same({ "users", "products", "purchases" }, e.available_streams)
    src:select_streams("users")
    assert.same({ "users" }, src:get_selected_streams())
    local cat = src.configured_catalog
    assert.equal(1, #cat.streams)
    assert.equal("incremental", cat.streams[1].sync_mode)
    assert.equal("overwrite", cat.streams[1].destination_sync_mode)
    assert.same({ { "id" } }, cat.streams[1].primary_key)
    local full = src:get_configured_catalog{ streams = "*", force_full_refresh = true }
    assert.equal(3, #full.streams)
    assert.equal("full_refresh", full.streams[1].sync_mode)
    src:select_all_streams()
    assert.equal(3, #src:get_selected_streams())
  end)

  it("applies cursor and primary key overrides", function()
    local src = faker()
    src:set_primary_key("users", { "email" })
    src:set_cursor_key("Users", "created_at")
    local cs = src:get_configured_catalog{ streams = { "users" } }.streams[1]
    assert.same({ { "email" } }, cs.primary_key)
    assert.same({ "created_at" }, cs.cursor_field)
    src:set_primary_keys{ products = "id" }
    assert.same({ { "id" } }, src:get_configured_catalog{ streams = { "products" } }.streams[1].primary_key)
  end)

  it("streams records lazily and stops the connector when the loop ends early", function()
    local src = faker(100000)
    local n = 0
    for rec in src:get_records("users", { limit = 5 }) do
      n = n + 1
      assert.equal("integer", math.type(rec.id))
    end
    assert.equal(5, n)
    local m = 0
    for _ in src:get_records("products") do
      m = m + 1
      if m == 3 then break end
    end
    assert.equal(3, m)
  end)

  it("gets and prints samples", function()
    local src = faker(50)
    local samples = src:get_samples{ streams = { "users", "products" }, limit = 3 }
    assert.equal(3, #samples.users)
    assert.equal(3, #samples.products)
    src:print_samples{ streams = "users", limit = 2 }
  end)
end)

describe("Source:read", function()
  local dir, cache
  before_each(function() dir, cache = H.open_test_cache() end)
  after_each(function() H.close_test_cache(dir, cache) end)

  it("needs selected streams", function()
    local src = faker()
    assert.equal("PyAirbyteNoStreamsSelectedError", (kind_of(function() src:read{ cache = cache } end)))
  end)

  it("reads every stream into typed tables", function()
    local src = faker(200)
    src:select_all_streams()
    local result = src:read{ cache = cache }
    assert.equal(200, #result["users"])
    assert.equal(100, #result["products"])
    assert.is_true(#result["purchases"] > 0)
    assert.equal(result.processed_records, #result["users"] + #result["products"] + #result["purchases"])
    local row = result["users"]:with_filter("id = 1"):to_table()[1]
    assert.equal("integer", math.type(row.id))
    assert.equal("integer", math.type(row.age))
    assert.is_string(row.email)
    assert.is_table(row.address)                  -- object column decoded
    assert.matches("^[0-9a-f-]+$", row._airbyte_raw_id)
    assert.is_string(row._airbyte_extracted_at)
    local n = cache:run_sql_query("select count(*) as n from users where age >= 0")[1].n
    assert.equal(200, n)
    local kind, e = kind_of(function() return result["nope"] end)
    assert.equal("AirbyteStreamNotFoundError", kind)
    assert.matches("users", tostring(e))
    local names = {}
    for name in pairs(result) do names[#names + 1] = name end
    table.sort(names)
    assert.same({ "products", "purchases", "users" }, names)
  end)

  it("reads incrementally: a second read brings only what is new", function()
    local src = faker(100)
    src:select_streams({ "users" })
    local r1 = src:read{ cache = cache }
    assert.equal(100, r1.processed_records)
    local r2 = src:read{ cache = cache }
    assert.equal(0, r2.processed_records)
    assert.equal(100, #r2["users"])
    src:set_config({ count = 150, seed = 7, always_updated = false })
    local r3 = src:read{ cache = cache }
    assert.equal(50, r3.processed_records)
    assert.equal(150, #r3["users"])
    local full = src:read{ cache = cache, force_full_refresh = true }
    assert.equal(150, full.processed_records)
    assert.equal(150, #full["users"])      -- merge: one row per primary key
    assert.equal(0, cache:run_sql_query(
      "select count(*) as n from (select id from users group by id having count(*) > 1)")[1].n)
  end)

  it("honours write strategies", function()
    local src = faker(30)
    src:select_streams({ "users" })
    src:read{ cache = cache, write_strategy = "append" }
    src:read{ cache = cache, write_strategy = "append", force_full_refresh = true }
    assert.equal(60, cache:run_sql_query("select count(*) as n from users")[1].n)
    src:read{ cache = cache, write_strategy = "replace", force_full_refresh = true }
    assert.equal(30, cache:run_sql_query("select count(*) as n from users")[1].n)
    src:read{ cache = cache, write_strategy = "merge", force_full_refresh = true }
    assert.equal(30, cache:run_sql_query("select count(*) as n from users")[1].n)
    assert.equal("PyAirbyteInputError", (kind_of(function()
      src:read{ cache = cache, write_strategy = "sideways" } end)))
  end)

  it("runs on_record hooks: keep, drop, replace", function()
    local src = faker(100)
    src:select_streams({ "users" })
    local seen = 0
    local result = src:read{ cache = cache, on_record = function(rec, stream)
      seen = seen + 1
      assert.equal("users", stream)
      assert.equal("integer", math.type(rec.id))
      if rec.id % 2 == 0 then return false end         -- drop even ids
      if rec.id == 1 then rec.name = "REPLACED" return rec end
    end }
    assert.equal(100, seen)
    assert.equal(50, result.processed_records)
    assert.equal(50, #result["users"])
    assert.equal("REPLACED", result["users"]:with_filter("id = 1"):to_table()[1].name)
  end)

  it("fails a read whose hook raises, keeping nothing of it", function()
    local src = faker(50)
    src:select_streams({ "users" })
    local ok, e = pcall(src.read, src, { cache = cache, on_record = function(rec)
      if rec.id == 10 then error("bad record 10") end end })
    assert.is_false(ok)
    assert.matches("bad record 10", tostring(e))
  end)

  it("reports a crashing source with its exit code, errors and logs; keeps committed state only", function()
    local exe = H.fixture_executable(dir, "crasher")
    local src = ab.get_source("source-crasher", { local_executable = exe,
      config = { records = 25, state_every = 10, crash = "exit" } })
    src:select_all_streams()
    local kind, e = kind_of(function() src:read{ cache = cache } end)
    assert.equal("AirbyteConnectorFailedError", kind)
    assert.equal(1, e.exit_code)
    assert.matches("the items API went away", tostring(e))
    assert.is_string(e.log_file)
    assert.matches("giving up on purpose", H.read_file(e.log_file))
    -- 20 records were followed by a state: committed; the last 5 were not
    assert.equal(20, cache:run_sql_query("select count(*) as n from items")[1].n)
    local states = cache:_db():get_states("source-crasher")
    assert.equal(1, #states)
    assert.equal(20, json.decode(states[1]).stream.stream_state.last_id)
    -- the rerun continues from the committed state
    src:set_config({ records = 5, state_every = 10, crash = "none" })
    local r = src:read{ cache = cache }
    assert.equal(5, r.processed_records)
    assert.equal(25, #r["items"])
  end)

  it("survives kill -9 of luabyte mid-read: rerun gives consistent data and state", function()
    local script = dir .. "/read.lua"
    local exe = H.fixture_executable(dir, "crasher")
    H.write_file(script, ([[
      local ab = require "airbyte"
      local src = ab.get_source("source-crasher", { local_executable = %q,
        config = { records = 1000, state_every = 7, slow_ms = 2 } })
      src:select_all_streams()
      src:read{ cache = ab.SQLiteCache{ db_path = %q }, write_strategy = arg[1] }
    ]]):format(exe, dir .. "/cache.sqlite"))
    for _, strategy in ipairs({ "append", "merge" }) do
      local proc = require "airbyte.process"
      local p = assert(proc.spawn{ argv = { H.exe, script, strategy }, name = "luabyte" })
      -- kill it once some state is committed (however slow the machine is)
      assert.is_true(H.wait_until(function() return #cache:_db():get_states("source-crasher") > 0 end))
      require("airbyte.core").sleep(50)
      p:kill(9)
      p:wait()
      local n = cache:run_sql_query("select count(*) as n from items")[1].n
      local states = cache:_db():get_states("source-crasher")
      local last = #states > 0 and json.decode(states[1]).stream.stream_state.last_id or 0
      -- no records past the last committed state
      assert.equal(cache:run_sql_query("select max(id) as m from items")[1].m or 0, last)
      assert.is_true(n > 0)
      -- the rerun finishes the job: no duplicate keys, state and data agree
      local _, code = H.run({ H.exe, script, strategy })
      assert.equal(0, code)
      assert.equal(0, cache:run_sql_query(
        "select count(*) as n from (select id from items group by id having count(*) > 1)")[1].n)
      states = cache:_db():get_states("source-crasher")
      last = json.decode(states[1]).stream.stream_state.last_id
      assert.equal(cache:run_sql_query("select max(id) as m from items")[1].m, last)
      cache:execute_sql({ "drop table items", "delete from _airbyte_state" })
    end
  end)

  it("accepts the fixture's configured catalog", function()
    if not H.need_shared(pending) then return end
    local cat = H.shared .. "/fixtures/source-faker/integration_tests/configured_catalog.json"
    local cfg = dir .. "/config.json"
    H.write_file(cfg, '{"count": 20, "seed": 1}')
    local out, code = H.run({ H.exe, "connector", "source-faker", "read", "--config", cfg, "--catalog", cat })
    assert.equal(0, code)
    local records = 0
    for line in out:gmatch("[^\n]+") do
      if line:find('"type":"RECORD"', 1, true) then records = records + 1 end
    end
    assert.is_true(records >= 20)
  end)
end)
