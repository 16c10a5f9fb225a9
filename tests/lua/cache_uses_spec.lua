-- Everything a cache offers, on every storage backend (H.each_backend:
-- SQLite, and PostgreSQL when a server is reachable): reading a source into
-- it, datasets (rows, with_filter, #), run_sql_query and execute_sql,
-- state and incremental reruns, force_full_refresh, every write strategy,
-- and feeding a destination from it with the destination's state kept in
-- it. Real connector processes, a real database.
local H = require "helper"
local ab = require "airbyte"
local json = require "airbyte.json"

local function faker(count)
  local src = ab.get_source("source-faker", { config = { count = count, seed = 3 } })
  src:select_streams({ "users", "purchases" })
  return src
end

local function stateful(dir, config) return H.local_source(dir, "stateful", "source-stateful", config) end

local function ids(cache)
  local r = cache:run_sql_query("SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM items")[1]
  return { n = r.n, d = r.d, lo = r.lo, hi = r.hi }
end

H.each_backend(function(b)
  describe("what a cache offers", function()
    local dir
    before_each(function() dir = H.tmpdir() end)
    after_each(function() H.rm_rf(dir) end)

    it("reads a source into it: datasets, rows, with_filter, #, run_sql_query, execute_sql", function()
      local cache = b.new_cache("uses_read")
      local res = faker(60):read{ cache = cache, quiet = true }
      assert.equal(60, #res["users"])
      assert.equal(60, #cache.users)
      assert.same({ "purchases", "users" }, cache.streams)
      local older = cache:run_sql_query("SELECT count(*) AS n FROM users WHERE age > 40")[1].n
      assert.equal(older, #cache.users:with_filter("age > 40"))
      local n, first = 0, nil
      for row in cache.users:rows() do
        n = n + 1
        first = first or row
      end
      assert.equal(60, n)
      assert.equal("integer", math.type(first.id))
      assert.equal("table", type(first.address))
      assert.equal("string", type(first.address.city))
      assert.same({}, first._airbyte_meta)
      cache:execute_sql({ "CREATE TABLE extra_t (a integer)", "INSERT INTO extra_t VALUES (7)" })
      assert.equal(7, cache:run_sql_query("SELECT a FROM extra_t")[1].a)
      assert.equal(2, #cache:run_sql_query("SELECT id FROM users ORDER BY id", { max_records = 2 }))
      cache:close()
    end)

    it("keeps state, resumes incrementally, and force_full_refresh reads everything again", function()
      local cache = b.new_cache("uses_state")
      stateful(dir, { records = 10, state_every = 3 }):read{ cache = cache, quiet = true }
      local st = cache:get_state("source-stateful")
      assert.equal(1, #st)
      assert.equal(10, st[1].stream.stream_state.last_id)
      stateful(dir, { records = 10 }):read{ cache = cache, quiet = true }
      assert.same({ n = 20, d = 20, lo = 1, hi = 20 }, ids(cache))
      assert.equal(20, cache:get_state("source-stateful")[1].stream.stream_state.last_id)
      -- from scratch: ids 1..10 again, merged on the primary key (auto)
      stateful(dir, { records = 10 }):read{ cache = cache, quiet = true, force_full_refresh = true }
      assert.same({ n = 20, d = 20, lo = 1, hi = 20 }, ids(cache))
      assert.equal(10, cache:get_state("source-stateful")[1].stream.stream_state.last_id)
      cache:close()
    end)

    it("writes with every strategy", function()
      local cache = b.new_cache("uses_strategies")
      local function read(strategy)
        stateful(dir, { records = 10 }):read{ cache = cache, quiet = true, force_full_refresh = true,
                                             write_strategy = strategy }
      end
      read("append"); read("append")
      assert.same({ n = 20, d = 10, lo = 1, hi = 10 }, ids(cache))
      read("merge")
      assert.same({ n = 10, d = 10, lo = 1, hi = 10 }, ids(cache))
      read("append")
      read("replace")
      assert.same({ n = 10, d = 10, lo = 1, hi = 10 }, ids(cache))
      read("auto")                                            -- a primary key: merge
      assert.same({ n = 10, d = 10, lo = 1, hi = 10 }, ids(cache))
      cache:close()
    end)

    it("feeds a destination from the cache and keeps the destination's state in it", function()
      local cache = b.new_cache("uses_feed")
      local res = stateful(dir, { records = 25, state_every = 10 }):read{ cache = cache, quiet = true }
      local out = dir .. "/json"
      local dst = ab.get_destination("destination-local-json", { config = { destination_path = out } })
      local wr = dst:write(res, { quiet = true })
      assert.equal(25, wr.processed_records)
      local got = {}
      for line in io.lines(out .. "/_airbyte_raw_items.jsonl") do
        got[json.decode(line)._airbyte_data.id] = true
      end
      for id = 1, 25 do assert.is_true(got[id], "id " .. id) end
      local dstates = cache:get_destination_state("destination-local-json")
      assert.is_true(#dstates >= 1)
      -- nothing new: a second write sends nothing (the ledger is in the cache)
      assert.equal(0, dst:write(res, { quiet = true }).processed_records)
      cache:close()
    end)
  end)
end)
