-- Destination:write(): every option, the host's side of the protocol, and
-- destinations that misbehave. Everything that involves a cache (feeding
-- from it, the ledger, destination states, resume, cache = false with a
-- state cache) runs on every storage backend (H.each_backend).
local H = require "helper"
local ab = require "airbyte"
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local proc = require "airbyte.process"
local core = require "airbyte.core"

local count_lines = H.count_lines

local function faker(count)
  return ab.get_source("source-faker", { config = { count = count, seed = 3, always_updated = false } })
end

describe("get_destination", function()
  it("finds built-ins, local executables, and the no-op destination", function()
    local d = ab.get_destination("destination-local-json", { config = { destination_path = "/tmp/x" } })
    assert.equal("builtin", d.executor.kind)
    assert.equal("https://docs.airbyte.com/integrations/destinations/local-json", d.docs_url)
    assert.is_table(d.config_spec.properties.destination_path)
    local noop = ab.get_noop_destination()
    assert.equal("destination-dev-null", noop.name)
    assert.is_true(noop:check())
    local ok, e = pcall(ab.get_destination, "destination-nowhere")
    assert.is_false(ok)
    assert.equal("AirbyteConnectorNotRegisteredError", e.kind)
  end)
end)

describe("Destination:write without any cache", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  it("does not deadlock with a destination that talks before it reads", function()
    local src = faker(3000)
    src:select_streams({ "users" })
    local dest = ab.get_destination("bad-destination", { local_executable = H.fixture_executable(dir, "bad_destination"),
      config = { out = dir .. "/r.jsonl", mode = "chatty" } })
    local wr = dest:write(src, { cache = false, state_cache = false })
    assert.equal(3000, wr.processed_records)
  end)

  it("merges CONTROL config updates and calls config_change_callback", function()
    local src = faker(10)
    src:select_streams({ "users" })
    local seen
    local dest = ab.get_destination("bad-destination", { local_executable = H.fixture_executable(dir, "bad_destination"),
      config = { out = dir .. "/r.jsonl", mode = "control" },
      config_change_callback = function(cfg) seen = cfg end })
    dest:write(src, { cache = false, state_cache = false })
    assert.equal("token-2", seen.rotated)
    assert.equal("token-2", dest:get_config().rotated)
    assert.equal(dir .. "/r.jsonl", dest:get_config().out)
  end)
end)

H.each_backend(function(b)
  describe("Destination:write", function()
    local dir, cache
    before_each(function() dir, cache = H.tmpdir(), b.fresh_cache() end)
    after_each(function() cache:close(); H.rm_rf(dir) end)

    local function local_json()
      return ab.get_destination("destination-local-json", { config = { destination_path = dir .. "/out" } })
    end

    -- the misbehaving fixture destination, writing to dir/r.jsonl
    local function bad_destination(mode, config)
      config = config or {}
      config.out, config.mode = dir .. "/r.jsonl", mode
      return ab.get_destination("bad-destination", { local_executable = H.fixture_executable(dir, "bad_destination"),
        config = config })
    end

    it("writes a source through the cache, then only new rows", function()
      local src = faker(200)
      src:select_all_streams()
      local dest = local_json()
      local wr = dest:write(src, { cache = cache })
      local total = 200 + 100 + cache:run_sql_query("select count(*) as n from purchases")[1].n
      assert.equal(total, wr.processed_records)
      assert.equal(200, count_lines(dir .. "/out/_airbyte_raw_users.jsonl"))
      assert.equal(3, wr.confirmed_states)
      local states = wr:get_state_provider()
      assert.is_table(states.users)
      -- a second write after an incremental read sends only the new rows
      src:set_config({ count = 250, seed = 3, always_updated = false })
      local wr2 = dest:write(src, { cache = cache })
      assert.equal(50 + (wr2.streams.purchases and wr2.streams.purchases.records or 0), wr2.processed_records)
      assert.equal(250, count_lines(dir .. "/out/_airbyte_raw_users.jsonl"))
      -- replace: the whole table
      local wr3 = dest:write(src, { cache = cache, write_strategy = "replace", streams = { "users" },
                                 force_full_refresh = true })
      assert.equal(250, wr3.processed_records)
      assert.equal(250, count_lines(dir .. "/out/_airbyte_raw_users.jsonl"))
    end)

    it("lets go of what a feed read once it ends: a replace read right after does not wait on it", function()
      -- the feed's objects stay alive (as they may in any script until a
      -- collection): what they hold in the cache must already be released
      collectgarbage("stop")
      local ok, err = pcall(function()
        local src = faker(20)
        src:select_streams({ "users" })
        local dest = local_json()
        assert.equal(20, dest:write(src, { cache = cache }).processed_records)
        local wr = dest:write(src, { cache = cache, write_strategy = "replace", force_full_refresh = true })
        assert.equal(20, wr.processed_records)
        assert.equal(20, #cache.users)
      end)
      collectgarbage("restart")
      assert(ok, err)
    end)

    it("writes a ReadResult, limited to some streams", function()
      local src = faker(50)
      src:select_all_streams()
      local result = src:read{ cache = cache }
      local wr = local_json():write(result, { streams = { "users" } })
      assert.equal(50, wr.processed_records)
      assert.equal(0, count_lines(dir .. "/out/_airbyte_raw_products.jsonl"))
      local line = json.decode(io.open(dir .. "/out/_airbyte_raw_users.jsonl"):read("l"))
      assert.equal("integer", math.type(line._airbyte_data.id))
      assert.is_table(line._airbyte_data.address)
      assert.is_true(line._airbyte_emitted_at > 1e12)   -- milliseconds
      local ok, e = pcall(local_json().write, local_json(), result, { streams = { "nope" } })
      assert.is_false(ok)
      assert.equal("AirbyteStreamNotFoundError", e.kind)
      assert.equal("PyAirbyteInputError", select(2, pcall(local_json().write, local_json(), 42)).kind)
    end)

    it("streams straight through with cache = false, byte for byte", function()
      local src = faker(100)
      src:select_streams({ "users" })
      local out = dir .. "/received.jsonl"
      local dest = ab.get_destination("bad-destination", { local_executable = H.fixture_executable(dir, "bad_destination"),
        config = { out = out, mode = "good" } })
      local wr = dest:write(src, { cache = false, state_cache = cache })
      assert.equal(100, wr.processed_records)
      assert.equal(100, count_lines(out))
      -- the lines are the source's own bytes: compare with a direct read
      local cfg = dir .. "/faker.json"
      H.write_file(cfg, '{"count":100,"seed":3,"always_updated":false}')
      H.write_file(dir .. "/cat.json", json.encode(src:get_configured_catalog{ streams = { "users" } }))
      local raw = H.run({ H.exe, "connector", "source-faker", "read", "--config", cfg, "--catalog", dir .. "/cat.json" })
      local first_src = raw:match('({"type":"RECORD".-)\n')
      local first_dst = io.open(out):read("l")
      -- identical apart from emitted_at (a different run)
      assert.equal((first_src:gsub('"emitted_at":%d+', "")), (first_dst:gsub('"emitted_at":%d+', "")))
      -- the destination's state is stored and given back to the source next time
      local wr2 = dest:write(src, { cache = false, state_cache = cache })
      assert.equal(0, wr2.processed_records)
      local wr3 = dest:write(src, { cache = false, state_cache = cache, force_full_refresh = true })
      assert.equal(100, wr3.processed_records)
    end)

    it("raises AirbyteConnectorWriteError when the destination crashes mid-write", function()
      local src = faker(500)
      src:select_streams({ "users" })
      local dest = bad_destination("crash", { after = 120 })
      local ok, e = pcall(dest.write, dest, src, { cache = false, state_cache = cache })
      assert.is_false(ok)
      assert.equal("AirbyteConnectorWriteError", e.kind)
      assert.equal(2, e.exit_code)
      assert.matches("disk on fire", tostring(e))
      -- only echoed states are stored: none were
      assert.equal(0, #cache:_db():get_destination_states("bad-destination"))
    end)

    it("stores nothing for a destination that never echoes, and says so", function()
      local src = faker(50)
      src:select_streams({ "users" })
      local dest = bad_destination("no_echo")
      local wr = dest:write(src, { cache = false, state_cache = cache })
      assert.equal(50, wr.processed_records)
      assert.equal(0, wr.confirmed_states)
      assert.equal(0, #cache:_db():get_destination_states("bad-destination"))
      assert.matches("did not echo", table.concat(wr.warnings, "\n"))
    end)

    it("never lets state go backwards when echoes come out of order or unasked", function()
      local exe = H.fixture_executable(dir, "crasher")
      local src = ab.get_source("source-crasher", { local_executable = exe, config = { records = 30, state_every = 10 } })
      src:select_all_streams()
      for _, mode in ipairs({ "reverse", "extra" }) do
        local dest = ab.get_destination("bad-destination-" .. mode, { local_executable = H.fixture_executable(dir, "bad_destination"),
          config = { out = dir .. "/r.jsonl", mode = mode } })
        local wr = dest:write(src, { cache = false, state_cache = cache })
        assert.equal(30, wr.processed_records)
        local texts = cache:_db():get_destination_states("bad-destination-" .. mode)
        assert.equal(1, #texts)
        -- the newest state the source sent, never an older one nor an invented one
        assert.equal(30, json.decode(texts[1]).stream.stream_state.last_id)
        assert.is_true(#wr.warnings > 0)
      end
    end)

    it("feeds two destinations of one kind with two configs from one cache, each in full", function()
      local src = faker(60)
      src:select_streams({ "users" })
      local result = src:read{ cache = cache }
      local one = ab.get_destination("destination-local-json", { config = { destination_path = dir .. "/one" } })
      local two = ab.get_destination("destination-local-json", { config = { destination_path = dir .. "/two" } })
      assert.equal(60, one:write(result).processed_records)
      local wr = two:write(result)
      assert.equal(60, wr.processed_records)
      assert.equal(60, count_lines(dir .. "/two/_airbyte_raw_users.jsonl"))
      -- each one's ledger is its own: a second write sends nothing new to either
      assert.equal(0, one:write(result).processed_records)
      assert.equal(0, two:write(result).processed_records)
      assert.equal(60, count_lines(dir .. "/one/_airbyte_raw_users.jsonl"))
      -- the identity is a digest: no config value is stored in clear
      -- (SQLite: anywhere in the file; PostgreSQL: in any row of the schema)
      if b.name == "sqlite" then
        local path = cache.db_path
        cache:close()
        for _, f in ipairs({ path, path .. "-wal" }) do
          local fh = io.open(f, "rb")
          if fh then
            local bytes = fh:read("a")
            fh:close()
            assert.is_nil(bytes:find(dir .. "/two", 1, true))
          end
        end
      else
        local tables = cache:run_sql_query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        assert.is_true(#tables >= 5)
        for _, t in ipairs(tables) do
          local q = ('SELECT count(*) AS n FROM "%s" x WHERE x::text LIKE ?1'):format(t.table_name)
          assert.equal(0, cache:run_sql_query(q, { params = { "%" .. dir .. "/two%" } })[1].n, t.table_name)
        end
      end
    end)

    it("keeps the ledger with the destination states: in the state cache, or nowhere", function()
      local src = faker(20)
      src:select_streams({ "users" })
      local result = src:read{ cache = cache }
      local states = b.fresh_cache()
      local dest = local_json()
      assert.equal(20, dest:write(result, { state_cache = states }).processed_records)
      assert.equal(0, dest:write(result, { state_cache = states }).processed_records)
      assert.equal(0, cache:run_sql_query("SELECT count(*) AS n FROM _luabyte_destination_progress")[1].n)
      assert.equal(1, states:run_sql_query("SELECT count(*) AS n FROM _luabyte_destination_progress")[1].n)
      -- state_cache = false: no ledger, no stored state, so everything again
      assert.equal(20, dest:write(result, { state_cache = false }).processed_records)
      assert.equal(20, dest:write(result, { state_cache = false }).processed_records)
      assert.equal(0, cache:run_sql_query("SELECT count(*) AS n FROM _luabyte_destination_progress")[1].n)
      states:close()
    end)

    it("resumes from a straight-through write's state when the next write goes through a fresh cache", function()
      local exe = H.fixture_executable(dir, "crasher")
      local src = ab.get_source("source-crasher", { local_executable = exe, config = { records = 10, state_every = 5 } })
      src:select_all_streams()
      local out = dir .. "/received.jsonl"
      local dest = ab.get_destination("bad-destination", { local_executable = H.fixture_executable(dir, "bad_destination"),
        config = { out = out, mode = "good" } })
      local states = b.fresh_cache()
      assert.equal(10, dest:write(src, { cache = false, state_cache = states }).processed_records)
      local fresh = b.fresh_cache()
      local wr = dest:write(src, { cache = fresh, state_cache = states })
      assert.equal(10, wr.processed_records)              -- ids 11..20, none again
      local seen = {}
      for line in io.lines(out) do
        local id = json.decode(line).record.data.id
        assert.is_nil(seen[id], "record " .. id .. " delivered twice")
        seen[id] = true
      end
      for id = 1, 20 do assert.is_true(seen[id]) end
      fresh:close()
      states:close()
    end)

    it("needs selected streams on both paths, and leaves the source's selection alone", function()
      local src = faker(10)
      for _, opts in ipairs({ { cache = false, state_cache = false }, { cache = cache } }) do
        local kind = H.error_kind(function() local_json():write(src, opts) end)
        assert.equal("PyAirbyteNoStreamsSelectedError", kind)
      end
      local wr = local_json():write(src, { cache = false, state_cache = false, streams = { "users" } })
      assert.equal(10, wr.processed_records)
      wr = local_json():write(src, { cache = cache, streams = { "products" } })
      assert.is_true(wr.processed_records > 0)
      assert.same({}, src:get_selected_streams())
      src:select_streams({ "users" })
      local_json():write(src, { cache = cache, streams = { "products" } })
      assert.same({ "users" }, src:get_selected_streams())
    end)

    it("writes a ReadResult with cache = false from the result's own cache", function()
      local src = faker(15)
      src:select_streams({ "users" })
      local result = src:read{ cache = cache }
      local wr = local_json():write(result, { cache = false })
      assert.equal(15, wr.processed_records)
      assert.equal(15, count_lines(dir .. "/out/_airbyte_raw_users.jsonl"))
    end)

    it("keeps a destination's states and ledger when it changes its own config (CONTROL)", function()
      local src = faker(10)
      src:select_streams({ "users" })
      local dest = bad_destination("control")
      local wr = dest:write(src, { cache = false, state_cache = cache })
      assert.equal("token-2", dest:get_config().rotated)
      assert.is_table(wr:get_state_provider().users)
      -- the updated config is the same destination: the next write resumes
      assert.equal(0, dest:write(src, { cache = false, state_cache = cache }).processed_records)
    end)

    it("keeps every record at least once across kill -9 of luabyte mid-write", function()
      local exe = H.fixture_executable(dir, "crasher")
      local dexe = H.fixture_executable(dir, "bad_destination")
      local out = dir .. "/received.jsonl"
      local script = dir .. "/w.lua"
      H.write_file(script, ([[
        local ab = require "airbyte"
        local src = ab.get_source("source-crasher", { local_executable = %q,
          config = { records = 400, state_every = 10, slow_ms = 2 } })
        src:select_all_streams()
        local dest = ab.get_destination("bad-destination", { local_executable = %q,
          config = { out = %q, mode = "good" } })
        dest:write(src, { cache = false, state_cache = %s })
      ]]):format(exe, dexe, out, b.cache_lua("killed_write")))
      cache:close()
      cache = b.new_cache("killed_write")
      local p = assert(proc.spawn{ argv = { H.exe, script }, name = "luabyte" })
      -- kill it once the destination has confirmed something (however slow the machine is)
      assert.is_true(H.wait_until(function() return #cache:_db():get_destination_states("bad-destination") > 0 end))
      core.sleep(50)
      p:kill(9)
      p:wait()
      -- stored state never runs ahead of what the destination has
      local texts = cache:_db():get_destination_states("bad-destination")
      local stored = #texts > 0 and json.decode(texts[1]).stream.stream_state.last_id or 0
      local got = {}
      for line in io.lines(out) do got[json.decode(line).record.data.id] = true end
      for id = 1, stored do assert.is_true(got[id], "record " .. id .. " before the stored state is missing") end
      -- the rerun sends the rest: every record arrives at least once
      local _, code = H.run({ H.exe, script })
      assert.equal(0, code)
      got = {}
      for line in io.lines(out) do got[json.decode(line).record.data.id] = true end
      for id = 1, 400 do assert.is_true(got[id], "record " .. id .. " never arrived") end
    end)
  end)
end)
