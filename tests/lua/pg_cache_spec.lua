-- The Postgres cache's own behaviour (issue 9 section 2): PyAirbyte's
-- parameters, a secret and a dsn; the layout in its schema; and the
-- failure paths: a refused connection, a wrong password (masked), statement
-- errors, and a server session that ends in the middle of a read (what was
-- committed stays; the rerun resumes from it). Against the real server of
-- scripts/pg.sh; pending with the reason when there is none.
local H = require "helper"
local ab = require "airbyte"
local errors = require "airbyte.errors"

local function crasher(dir, config) return H.local_source(dir, "crasher", "source-crasher", config) end

describe("PostgresCache", function()
  local dir, cache
  before_each(function() dir = H.tmpdir() end)
  after_each(function()
    H.drop_pg_cache(cache)
    cache = nil
    H.rm_rf(dir)
  end)

  it("takes PyAirbyte's parameters, a secret for the password, or a dsn", function()
    if not H.need_pg(pending) then return end
    cache = H.new_pg_cache{ host = os.getenv("PGHOST"), port = tonumber(os.getenv("PGPORT")),
      database = os.getenv("PGDATABASE"), username = os.getenv("PGUSER"), password = ab.get_secret("PGPASSWORD") }
    assert.equal("PostgresCache", cache.name)
    assert.is_nil(tostring(cache):find(os.getenv("PGPASSWORD"), 1, true))
    assert.is_nil(rawget(cache, "password"))
    -- the bookkeeping tables are in the cache's schema, created at once
    local rows = cache:run_sql_query(("SELECT table_name FROM information_schema.tables WHERE table_schema = '%s'"
      .. " ORDER BY table_name"):format(cache.schema_name))
    local names = {}
    for _, r in ipairs(rows) do names[#names + 1] = r.table_name end
    for _, t in ipairs{ "_airbyte_destination_state", "_airbyte_state", "_airbyte_streams",
                        "_luabyte_destination_progress" } do
      assert.is_truthy(table.concat(names, " "):find(t, 1, true), t)
    end
    local dsn = ("postgresql://%s:%s@%s:%s/%s"):format(os.getenv("PGUSER"), os.getenv("PGPASSWORD"),
      os.getenv("PGHOST"), os.getenv("PGPORT"), os.getenv("PGDATABASE"))
    local other = ab.PostgresCache{ dsn = dsn, schema_name = cache.schema_name }
    assert.equal(1, #other:run_sql_query("SELECT 1 AS one FROM _airbyte_streams LIMIT 1") + 1)
    assert.is_nil(tostring(other):find(os.getenv("PGPASSWORD"), 1, true))
    other:close()
  end)

  it("defaults to schema airbyte_raw, created when missing", function()
    if not H.need_pg(pending) then return end
    local c = ab.PostgresCache{}
    assert.equal("airbyte_raw", c.schema_name)
    assert.equal(1, #c:run_sql_query("SELECT 1 AS x FROM information_schema.schemata WHERE schema_name = 'airbyte_raw'"))
    c:close()
  end)

  it("reports a refused connection as a PyAirbyteCacheError", function()
    if not H.need_pg(pending) then return end
    local kind, e = H.error_kind(function() ab.PostgresCache{ host = "127.0.0.1", port = 1, connect_timeout = 2 } end)
    assert.equal("PyAirbyteCacheError", kind)
    assert.is_truthy(e.message:find("127.0.0.1:1", 1, true))
    assert.is_truthy(e.message:lower():find("refused", 1, true))
  end)

  it("reports a wrong password with the server's words and the password masked", function()
    if not H.need_pg(pending) then return end
    local bad = "wrong-password-93751"
    local kind, e = H.error_kind(function() ab.PostgresCache{ password = bad, schema_name = H.pg_schema() } end)
    assert.equal("PyAirbyteCacheError", kind)
    assert.is_truthy(e.message:find("password authentication failed", 1, true))
    assert.is_nil(tostring(e):find(bad, 1, true))
    local dsn = ("postgresql://%s:%s@%s:%s/%s"):format(os.getenv("PGUSER"), bad, os.getenv("PGHOST"),
      os.getenv("PGPORT"), os.getenv("PGDATABASE"))
    kind, e = H.error_kind(function() ab.PostgresCache{ dsn = dsn, schema_name = H.pg_schema() } end)
    assert.is_truthy(e.message:find("password authentication failed", 1, true))
    assert.is_nil(tostring(e):find(bad, 1, true))
  end)

  it("raises statement errors with the server's message and keeps what committed", function()
    if not H.need_pg(pending) then return end
    cache = H.new_pg_cache()
    cache:execute_sql({ "CREATE TABLE extra (a integer)", "INSERT INTO extra VALUES (1)" })
    local kind, e = H.error_kind(function() cache:execute_sql({ "INSERT INTO extra VALUES (2)", "BROKEN SQL" }) end)
    assert.equal("PyAirbyteCacheError", kind)
    assert.is_truthy(e.message:find("syntax error", 1, true))
    assert.equal(1, cache:run_sql_query("SELECT count(*) AS n FROM extra")[1].n)    -- rolled back
    kind, e = H.error_kind(function() cache:run_sql_query("SELECT * FROM no_such_table") end)
    assert.is_truthy(e.message:find('relation "no_such_table" does not exist', 1, true))
    assert.equal(2, cache:run_sql_query("SELECT count(*) + 1 AS n FROM extra")[1].n) -- still usable
  end)

  it("takes the Lua layer's ?N parameters, and keeps quarantined records", function()
    if not H.need_pg(pending) then return end
    cache = H.new_pg_cache()
    assert.equal(5, cache:run_sql_query("SELECT ?1::int + ?2::int AS n", { params = { 2, 3 } })[1].n)
    assert.equal(5, cache:run_sql_query("SELECT $1::int + $2::int AS n", { params = { 2, 3 } })[1].n)
    assert.equal("a?b", cache:run_sql_query("SELECT 'a?b' AS s WHERE ?1", { params = { true } })[1].s)
    local hooks = { items = function(r) if r.id == 4 or r.id == 9 then r.name = r.id * 1.5; return r end end }
    local r = crasher(dir, { records = 20 }):read{ cache = cache, quiet = true, hooks = hooks,
      validate = { schema = true, on_invalid = "quarantine" } }
    assert.equal(18, #r["items"])
    local q = cache:get_quarantine("items")
    assert.equal(2, #q)
    assert.equal(4, q[1].record.id)
    assert.equal(9, q[2].record.id)
    assert.equal("schema", q[1].reasons[1].check)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", q[1]._airbyte_extracted_at)
    assert.same({}, cache:get_quarantine("other"))
  end)

  it("waits for a state row another session holds by yielding: the loop runs on meanwhile", function()
    if not H.need_pg(pending) then return end
    local core = require "airbyte.core"
    local sq = require "airbyte.sqlite"
    cache = H.new_pg_cache()
    crasher(dir, { records = 10, state_every = 5 }):read{ cache = cache, quiet = true }
    local blocker = assert(sq.open_pg{ schema_name = cache.schema_name })
    local watcher = assert(sq.open_pg{ schema_name = cache.schema_name })
    blocker:begin()
    -- a safety valve only: a loop that stopped could never release the lock
    blocker:exec("SET LOCAL idle_in_transaction_session_timeout = '60s'")
    blocker:exec("UPDATE _airbyte_state SET last_updated = now()")     -- holds the state row
    local done, ok, err = false, nil, nil
    core.spawn(function()
      ok, err = pcall(function() crasher(dir, { records = 10, state_every = 5 }):read{ cache = cache, quiet = true } end)
      done = true
    end)
    -- this task runs only while the loop does: it sees the read's commit
    -- wait on the lock, ticks 20 times, then lets it go
    local saw_wait, ticks, released = false, 0, false
    while not done do
      if not released then
        saw_wait = saw_wait or watcher:query("SELECT count(*) AS n FROM pg_stat_activity"
          .. " WHERE wait_event_type = 'Lock' AND datname = current_database()")[1].n > 0
        if saw_wait then
          ticks = ticks + 1
          if ticks == 20 then blocker:rollback(); released = true end
        end
      end
      core.sleep(1)
    end
    assert(ok, tostring(err))
    assert.is_true(saw_wait)
    assert.is_true(released)
    assert.equal(20, ticks)
    assert.equal(20, cache:get_state("source-crasher")[1].stream.stream_state.last_id)
    assert.equal(20, cache:run_sql_query("SELECT count(*) AS n FROM items")[1].n)
    blocker:close()
    watcher:close()
  end)

  it("fails a read whose server session ends, keeps what committed, and the rerun resumes", function()
    if not H.need_pg(pending) then return end
    cache = H.new_pg_cache()
    local admin = ab.PostgresCache{ schema_name = cache.schema_name }
    local src = crasher(dir, { records = 2000, state_every = 10, slow_ms = 5 })
    local done, ok, err = false, nil, nil
    require("airbyte.core").spawn(function()
      ok, err = pcall(src.read, src, { cache = cache, quiet = true })
      done = true
    end)
    -- some states committed: then the server ends every other session
    assert.is_true(H.wait_until(function()
      local r = admin:run_sql_query("SELECT count(*) AS n FROM _airbyte_state")
      return r[1].n > 0 and admin:run_sql_query("SELECT count(*) AS n FROM items")[1].n >= 50
    end, 60000))
    admin:run_sql_query("SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
      .. " AND datname = current_database() AND backend_type = 'client backend'")
    assert.is_true(H.wait_until(function() return done end, 60000))
    assert.is_false(ok)
    local text = tostring(err)
    assert.is_truthy(text:find("terminat", 1, true) or text:find("server closed the connection", 1, true), text)
    -- state never ahead of data, data never ahead of state
    local st = cache:get_state("source-crasher")
    assert.equal(1, #st)
    local last = st[1].stream.stream_state.last_id
    assert.equal(last, admin:run_sql_query("SELECT count(*) AS n FROM items")[1].n)
    assert.is_true(last < 2000)
    -- the rerun (a fresh cache object, as a new process would) resumes
    local again = ab.PostgresCache{ schema_name = cache.schema_name }
    crasher(dir, { records = 100, state_every = 10 }):read{ cache = again, quiet = true }
    local r = admin:run_sql_query("SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM items")[1]
    assert.same({ n = last + 100, d = last + 100, lo = 1, hi = last + 100 }, r)
    again:close()
    admin:close()
    assert.is_true(errors.is_error(err) or type(err) == "string")
  end)
end)
