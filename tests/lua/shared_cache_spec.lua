-- Many readers, one SQLite cache (issue 9 §4): tasks of one script that
-- read into the same cache file take turns at its write lock, and a task
-- waiting for it yields, so the other tasks (and the host's steps) go on.
local ab = require "airbyte"
local core = require "airbyte.core"
local H = require "helper"

local function faker_read(cache, seed, stream, count)
  local s = ab.get_source("source-faker", { config = { count = count, seed = seed, records_per_slice = 100 } })
  s:select_streams({ stream })
  return s:read{ cache = cache, quiet = true }.processed_records
end

local function count(cache, table)
  return cache:run_sql_query(("SELECT count(*) AS n FROM %s"):format(table))[1].n
end

describe("one cache, several reading tasks", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  it("completes two tasks reading different sources into one cache file", function()
    local path = dir .. "/c.sqlite"
    local a = core.spawn(faker_read, ab.SQLiteCache{ db_path = path }, 1, "users", 3000)
    local b = core.spawn(faker_read, ab.SQLiteCache{ db_path = path }, 2, "products", 100)
    assert.equal(3000, a:wait())
    assert.equal(100, b:wait())
    local cache = ab.SQLiteCache{ db_path = path }
    assert.equal(3000, count(cache, "users"))
    assert.equal(100, count(cache, "products"))
    cache:close()
  end)

  it("completes two tasks reading into the default cache (a script of its own)", function()
    -- os.getenv cannot be set from Lua: the script runs in a child luabyte
    local script = [[
      local ab = require "airbyte"
      local core = require "airbyte.core"
      local function read(seed, stream)
        local s = ab.get_source("source-faker", { config = { count = 2000, seed = seed, records_per_slice = 100 } })
        s:select_streams({ stream })
        return s:read{ cache = ab.get_default_cache(), quiet = true }.processed_records
      end
      local a, b = core.spawn(read, 1, "users"), core.spawn(read, 2, "products")
      print(a:wait(), b:wait())
      local cache = ab.get_default_cache()
      print(cache:run_sql_query("SELECT count(*) AS n FROM users")[1].n,
            cache:run_sql_query("SELECT count(*) AS n FROM products")[1].n)
    ]]
    local out, code = H.run({ "env", "AIRBYTE_CACHE_ROOT=" .. dir, H.exe, "-e", script })
    assert.equal(0, code)
    assert.equal("2000\t100\n2000\t100", out)
  end)

  it("completes two tasks reading through one cache object, in a file or in memory", function()
    for _, path in ipairs({ dir .. "/one.sqlite", ":memory:" }) do
      local shared = ab.SQLiteCache{ db_path = path }
      local a = core.spawn(faker_read, shared, 1, "users", 2000)
      local b = core.spawn(faker_read, shared, 2, "products", 100)
      assert.equal(2000, a:wait())
      assert.equal(100, b:wait())
      assert.equal(2000, count(shared, "users"))
      assert.equal(100, count(shared, "products"))
      shared:close()
    end
  end)

  it("completes two tasks reading through one PostgresCache object (a connection each)", function()
    if not H.need_pg(pending) then return end
    local shared = H.new_pg_cache()
    local a = core.spawn(faker_read, shared, 1, "users", 500)
    local b = core.spawn(faker_read, shared, 2, "products", 100)
    assert.equal(500, a:wait())
    assert.equal(100, b:wait())
    assert.equal(500, count(shared, "users"))
    assert.equal(100, count(shared, "products"))
    H.drop_pg_cache(shared)
  end)

  it("keeps the loop going while a task waits for the write lock another task holds", function()
    local path, gate = dir .. "/c.sqlite", dir .. "/gate"
    -- a holds the write lock in the middle of a transaction until the gate opens
    local holder = ab.get_source("source-stateful", { local_executable = H.fixture_executable(dir, "stateful"),
      config = { records = 40, state_every = 20, gate = gate } })
    holder:select_all_streams()
    local a = core.spawn(function() return holder:read{ cache = ab.SQLiteCache{ db_path = path }, quiet = true } end)
    assert.is_true(H.wait_until(function() return H.exists(gate .. ".waiting") end))
    local b = core.spawn(faker_read, ab.SQLiteCache{ db_path = path }, 2, "users", 500)
    -- while b waits for a's lock, the loop runs other tasks: this one
    -- counts its turns, and b is still unfinished after all of them
    local turns, waiting = 0, 0
    for _ = 1, 50 do
      core.sleep(2)
      turns = turns + 1
      if b:status() == "waiting" or b:status() == "ready" then waiting = waiting + 1 end
    end
    assert.equal(50, turns)
    assert.equal(50, waiting)
    H.write_file(gate, "")
    assert.equal(40, a:wait().processed_records)
    assert.equal(500, b:wait())
    local cache = ab.SQLiteCache{ db_path = path }
    assert.equal(40, count(cache, "items"))
    assert.equal(500, count(cache, "users"))
    cache:close()
  end)

  it("makes a second task on the same stream wait for the first, then resume from its state", function()
    local path = dir .. "/c.sqlite"
    local function read()
      local s = ab.get_source("source-faker", { config = { count = 2000, seed = 3, records_per_slice = 100,
                                                            always_updated = false } })
      s:select_streams({ "users" })
      return s:read{ cache = ab.SQLiteCache{ db_path = path }, write_strategy = "append", quiet = true }
        .processed_records
    end
    local a, b = core.spawn(read), core.spawn(read)
    local na, nb = a:wait(), b:wait()
    assert.equal(2000, na + nb)          -- one read them all, the other started from its state
    local cache = ab.SQLiteCache{ db_path = path }
    assert.equal(2000, count(cache, "users"))
    cache:close()
  end)

  it("refuses a lock_timeout that is not a number of seconds", function()
    local s = ab.get_source("source-faker", { config = { count = 10, seed = 1 } })
    s:select_streams({ "users" })
    for _, bad in ipairs({ "5", -1 }) do
      local kind = H.error_kind(function()
        s:read{ cache = ab.SQLiteCache{ db_path = dir .. "/c.sqlite" }, quiet = true, lock_timeout = bad }
      end)
      assert.equal("PyAirbyteInputError", kind)
    end
  end)
end)
