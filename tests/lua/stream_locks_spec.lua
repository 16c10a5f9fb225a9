-- Many runners, one SQLite cache (issue 9 §4): luabyte processes reading
-- the same stream into one cache take turns through its stream lock (the
-- second waits, up to lock_timeout, then fails naming the holder); runners
-- on different streams go on; a runner killed with SIGKILL loses its lock
-- with its process, and the rows are each there once.
local H = require "helper"
local proc = require "airbyte.process"
local ab = require "airbyte"

local runner = H.fixtures .. "/stream_runner.lua"

local function start(path, stream, strategy, count, gate, timeout)
  return assert(proc.spawn{ argv = { H.exe, runner, path, stream, strategy, tostring(count), gate or "-",
                                     tostring(timeout or 120) }, name = "runner-" .. stream })
end

local finish = H.finish

local function q(path, sql)
  local cache = ab.SQLiteCache{ db_path = path }
  local v = cache:run_sql_query(sql)[1].n
  cache:close()
  return v
end

describe("stream locks across processes", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  it("keeps each primary key once through 4 runners, a timeout and a kill -9", function()
    local path, gate = dir .. "/c.sqlite", dir .. "/gate"
    local USERS = 3000
    -- 1: users (append), held in the middle of its read
    local p1 = start(path, "users", "append", USERS, gate)
    assert.is_true(H.wait_until(function() return H.exists(gate .. ".waiting") end, 60000))
    -- 2: users (append) too: waits for 1's stream lock
    local p2 = start(path, "users", "append", USERS)
    -- 3 and 4: purchases (merge), both at once: the other stream does not wait for 1
    local p3, p4 = start(path, "purchases", "merge", 200), start(path, "purchases", "merge", 200)
    local out3, code3 = finish(p3)
    local out4, code4 = finish(p4)
    assert.equal(0, code3, out3)
    assert.equal(0, code4, out4)
    assert.is_true(p1:running() and p2:running())   -- 1 still holds users; 2 still waits
    -- a fifth runner with a short lock_timeout gives up, naming the stream and the holder
    local out5, code5 = finish(start(path, "users", "append", USERS, nil, 0.2))
    assert.equal(3, code5)
    assert.matches("stream 'users' of source 'source-faker' is being read into this cache by pid "
      .. p1:pid() .. "@", out5, 1, true)
    assert.matches("lock_timeout", out5, 1, true)
    -- 1 dies mid-read: 2 gets the lock and goes on from 1's last committed state
    assert.is_true(p1:kill(9))
    local _, _, sig1 = finish(p1)
    assert.equal(9, sig1)
    local out2, code2 = finish(p2)
    assert.equal(0, code2, out2)
    local took = tonumber(out2:match("^ok (%d+)$"))
    assert.is_true(took > 0 and took <= USERS - 900, out2)   -- 1 committed at least 900 rows
    -- the rerun of the killed runner resumes from the state: nothing is left to read
    local out1 = finish(start(path, "users", "append", USERS))
    assert.equal("ok 0", out1)
    assert.equal(USERS, q(path, "SELECT count(*) AS n FROM users"))
    assert.equal(USERS, q(path, "SELECT count(DISTINCT id) AS n FROM users"))
    local purchases = q(path, "SELECT count(*) AS n FROM purchases")
    assert.is_true(purchases > 0)
    assert.equal(purchases, q(path, "SELECT count(DISTINCT id) AS n FROM purchases"))
    -- of 3 and 4, one read them all and the other started from its state
    local n3, n4 = tonumber(out3:match("^ok (%d+)$")), tonumber(out4:match("^ok (%d+)$"))
    assert.equal(purchases, n3 + n4)
    assert.is_true(n3 == 0 or n4 == 0)
  end)

  it("never makes runners of different streams wait for each other's stream lock", function()
    local path, gate = dir .. "/c.sqlite", dir .. "/gate"
    local p1 = start(path, "users", "merge", 3000, gate)
    assert.is_true(H.wait_until(function() return H.exists(gate .. ".waiting") end, 60000))
    local out, code = finish(start(path, "products", "merge", 100, nil, 0))   -- no waiting allowed
    assert.equal(0, code, out)
    assert.equal("ok 100", out)
    H.write_file(gate, "")
    local out1, code1 = finish(p1)
    assert.equal(0, code1, out1)
    assert.equal("ok 3000", out1)
  end)
end)
