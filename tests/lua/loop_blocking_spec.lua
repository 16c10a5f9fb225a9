-- No storage call blocks the loop thread on a lock (issue 9 §4): while
-- another process holds a cache file's write lock, a call that must write
-- waits by yielding, so the other tasks go on meanwhile.
--
-- The handshake, without clocks: a child process takes BEGIN IMMEDIATE on
-- the file and keeps it until a release file appears; task 1 makes the
-- storage call; task 2 counts N turns of a timer and then creates the
-- release file. A call that waited in SQLite's busy handler on the loop
-- thread would keep task 2 from ever counting, so the holder would never
-- let go and the call would fail with "database is locked".
local ab = require "airbyte"
local core = require "airbyte.core"
local proc = require "airbyte.process"
local H = require "helper"

local HOLDER = [[
import os, sqlite3, sys, time
path, held, release = sys.argv[1], sys.argv[2], sys.argv[3]
con = sqlite3.connect(path, isolation_level=None, timeout=30)
con.execute("BEGIN IMMEDIATE")
open(held, "w").close()
while not os.path.exists(release):
    time.sleep(0.002)
con.execute("COMMIT")
con.close()
]]

local TURNS = 20

-- Runs call (in task 1) while a child process holds path's write lock,
-- released after task 2 has had TURNS turns (counted once ready(), if
-- given, is true). Returns call's results, the turns task 2 had when call
-- returned, and the holder's exit code.
local function while_locked(dir, path, call, ready)
  local held, release = dir .. "/held", dir .. "/release"
  os.remove(held); os.remove(release)
  local holder = assert(proc.spawn{ argv = { "python3", "-c", HOLDER, path, held, release } })
  assert.is_true(H.wait_until(function() return H.exists(held) end))
  local turns = 0
  local t1 = core.spawn(function()
    local r = table.pack(pcall(call))
    return turns, r
  end)
  local t2 = core.spawn(function()
    while ready and not ready() do core.sleep(1) end
    for _ = 1, TURNS do core.sleep(1); turns = turns + 1 end
    H.write_file(release, "")
  end)
  local at, r = t1:wait()
  t2:wait()
  local code = holder:wait()
  return r, at, code
end

describe("a storage call while another process holds the write lock", function()
  local dir, path, cache
  before_each(function()
    dir = H.tmpdir()
    path = dir .. "/c.sqlite"
    cache = ab.SQLiteCache{ db_path = path }
    cache:execute_sql("CREATE TABLE t (x INTEGER)")
  end)
  after_each(function()
    if cache then cache:close() end
    H.rm_rf(dir)
  end)

  it("execute_sql yields until the lock is free, and runs every statement once", function()
    local r, at, code = while_locked(dir, path, function()
      cache:execute_sql("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)")
    end)
    assert.is_true(r[1], tostring(r[2]))
    assert.equal(TURNS, at)                 -- it returned only after the release
    assert.equal(0, code)
    assert.equal(2, cache:run_sql_query("SELECT count(*) AS n FROM t")[1].n)
  end)

  it("a query that writes, and exec of several statements, yield until the lock is free", function()
    local db = cache:_db()
    local r, at = while_locked(dir, path, function()
      cache:run_sql_query("INSERT INTO t VALUES (1)")
      db:exec("INSERT INTO t VALUES (2); INSERT INTO t VALUES (3)")
    end)
    assert.is_true(r[1], tostring(r[2]))
    assert.equal(TURNS, at)
    assert.equal(3, cache:run_sql_query("SELECT count(*) AS n FROM t")[1].n)
  end)

  it("stream_open and, without the writer thread, a stream's writes yield until the lock is free", function()
    local db = cache:_db()
    db:set_async(false)
    local schema = { properties = { id = { type = "integer" } } }
    local r, at = while_locked(dir, path, function()
      db:stream_open{ source = "src", stream = "items", schema = schema }:close()
    end)
    assert.is_true(r[1], tostring(r[2]))
    assert.equal(TURNS, at)
    local s = db:stream_open{ source = "src", stream = "users", schema = schema }
    r, at = while_locked(dir, path, function()
      s:write('{"id": 1}', 0)
      s:write('{"id": 2}', 0)
    end)
    assert.is_true(r[1], tostring(r[2]))
    assert.equal(TURNS, at)
    s:close()
    assert.equal(2, cache:run_sql_query("SELECT count(*) AS n FROM users")[1].n)
  end)

  it("put_destination_state and put_delivered yield until the lock is free", function()
    local db = cache:_db()
    local r, at = while_locked(dir, path, function()
      cache:put_destination_state("destination-x", "source-y", "", '{"type":"LEGACY","data":{"n":1}}')
      db:put_delivered("destination-x", "source-y", nil, "users", "0190a000-0000-7000-8000-000000000001")
    end)
    assert.is_true(r[1], tostring(r[2]))
    assert.equal(TURNS, at)
    assert.equal("0190a000-0000-7000-8000-000000000001", db:get_delivered("destination-x", "source-y", nil, "users"))
    local states = db:get_destination_states("destination-x")
    assert.equal(1, #states)
  end)

  it("a write whose destination echoes states yields on the echo until the lock is free", function()
    local src = ab.get_source("source-faker", { config = { count = 50, seed = 1 } })
    src:select_streams({ "users" })
    local result = src:read{ cache = cache, quiet = true }
    -- the destination echoes its states, then stays until the release
    local echoed = dir .. "/echoed"
    local dest = ab.get_destination("bad-destination", { local_executable = H.fixture_executable(dir, "bad_destination"),
      config = { out = dir .. "/out.jsonl", mode = "gated", echoed = echoed, release = dir .. "/release" } })
    local r, at = while_locked(dir, path, function()
      return dest:write(result, { streams = { "users" } })
    end, function() return H.exists(echoed) end)
    assert.is_true(r[1], tostring(r[2]))
    assert.equal(TURNS, at)
    assert.equal(50, r[2].processed_records)
    assert.is_true(r[2].confirmed_states >= 1)
  end)

  it("where nothing may yield, waits on the thread, and still gives up after the lock timeout", function()
    local db = cache:_db()
    db:set_lock_timeout(200)
    local held, release = dir .. "/held", dir .. "/release"
    local holder = assert(proc.spawn{ argv = { "python3", "-c", HOLDER, path, held, release } })
    assert.is_true(H.wait_until(function() return H.exists(held) end))
    local t = core.spawn(function()
      -- a comparator of table.sort runs inside a C function: it cannot yield
      return pcall(table.sort, { 2, 1 }, function(a, b) db:exec("INSERT INTO t VALUES (5)") return a < b end)
    end)
    local ok, e = t:wait()
    H.write_file(release, "")
    assert.equal(0, holder:wait())
    assert.is_false(ok)
    assert.truthy(tostring(e):find("another process holds its write lock", 1, true), tostring(e))
    assert.truthy(tostring(e):find("gave up after 200 ms", 1, true), tostring(e))
  end)

  it("gives up after the cache's lock timeout, naming the file and the other process", function()
    cache:_db():set_lock_timeout(50)
    local held, release = dir .. "/held", dir .. "/release"
    local holder = assert(proc.spawn{ argv = { "python3", "-c", HOLDER, path, held, release } })
    assert.is_true(H.wait_until(function() return H.exists(held) end))
    local ticks = 0
    local ticker = core.spawn(function()
      while not H.exists(release) do core.sleep(1); ticks = ticks + 1 end
    end)
    -- outside any task: the waits run the loop (the ticker's turns)
    local ok, e = pcall(cache.execute_sql, cache, "INSERT INTO t VALUES (3)")      -- the writer thread waits
    local ok2, e2 = pcall(cache.run_sql_query, cache, "INSERT INTO t VALUES (4)")  -- the binding retries
    H.write_file(release, "")
    ticker:wait()
    assert.equal(0, holder:wait())
    assert.is_false(ok)
    assert.truthy(tostring(e):find(path, 1, true), tostring(e))
    assert.truthy(tostring(e):find("another process holds its write lock", 1, true), tostring(e))
    assert.is_false(ok2)
    assert.truthy(tostring(e2):find(path, 1, true), tostring(e2))
    assert.truthy(tostring(e2):find("another process holds its write lock", 1, true), tostring(e2))
    assert.truthy(tostring(e2):find("gave up after 50 ms", 1, true), tostring(e2))
    assert.is_true(ticks > 0)                -- the loop ran while it waited
    assert.equal(0, cache:run_sql_query("SELECT count(*) AS n FROM t")[1].n)
  end)
end)

-- Runners on different streams of one source whose state is GLOBAL each
-- commit the source's one _GLOBAL row: the commit keeps the stored
-- stream_states of the streams the new state does not name (cache.c's
-- rule, on both backends).
describe("a GLOBAL state committed by runners of different streams", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  local function progress(cache)
    local json = require "airbyte.json"
    local rows = cache:run_sql_query("SELECT state_json FROM _airbyte_state WHERE stream_name = '_GLOBAL'")
    assert.equal(1, #rows)
    local st, ids = json.decode(rows[1].state_json), {}
    for _, e in ipairs(st.global.stream_states) do ids[e.stream_descriptor.name] = e.stream_state.last_id end
    return ids, st.global.shared_state.run
  end

  for _, kind in ipairs({ "sqlite", "postgres" }) do
    it("keeps every stream's progress, whichever committed last [" .. kind .. "]", function()
      local schema
      if kind == "postgres" then
        if not H.need_pg(pending) then return end
        schema = H.pg_schema()
      end
      local function open()   -- a cache object (a connection) per runner
        if schema then return ab.PostgresCache{ schema_name = schema } end
        return ab.SQLiteCache{ db_path = dir .. "/c.sqlite" }
      end
      local function read(stream, run)
        local s = ab.get_source("source-global", { local_executable = H.fixture_executable(dir, "global_source"),
          config = { records = 10, run = run } })
        s:select_streams({ stream })
        local cache = open()
        local n = s:read{ cache = cache, quiet = true }.processed_records
        cache:close()
        return n
      end
      local a, b = core.spawn(read, "a", 1), core.spawn(read, "b", 2)
      assert.equal(10, a:wait())
      assert.equal(10, b:wait())
      local cache = open()
      assert.same({ a = 10, b = 10 }, (progress(cache)))
      -- one more read of b: its state wins for b and for the shared state; a's entry stays
      assert.equal(10, read("b", 3))
      local ids, run = progress(cache)
      assert.same({ a = 10, b = 20 }, ids)
      assert.equal(3, run)
      -- and a rerun of a resumes from its own progress
      assert.equal(10, read("a", 4))
      assert.equal(20, cache:run_sql_query("SELECT max(id) AS m FROM a")[1].m)
      assert.equal(20, cache:run_sql_query("SELECT count(*) AS n FROM a")[1].n)
      if schema then H.drop_pg_cache(cache) else cache:close() end
    end)
  end
end)
