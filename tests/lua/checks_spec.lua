-- airbyte.checks: dataset checks compiled to SQL over a real cache filled
-- by a real source-faker read.
local H = require "helper"
local ab = require "airbyte"
local json = require "airbyte.json"

local function find(report, stream, column, check)
  for _, r in ipairs(report.results) do
    if r.stream == stream and r.column == column and r.check:find(check, 1, true) == 1 then return r end
  end
  error(("no result for %s.%s %s"):format(stream, tostring(column), check))
end

-- every kind of check, compiled for each backend's SQL
describe("dataset checks on each backend", function()
  H.each_backend(function(b)
    local cache, src
    before_each(function()
      cache = b.fresh_cache()
      src = ab.get_source("source-faker", { config = { count = 300, seed = 11 } })
      src:select_streams({ "users", "purchases" })
    end)
    after_each(function() cache:close() end)

    it("passes a suite the faker data meets, one result per check", function()
      local r = src:read{ cache = cache }
      local report = r:check{
        users = { id = { "not_null", "unique" }, age = { between = { 0, 130 } },
                  email = { matches = "^[^@]+@[^@]+$" },
                  gender = { accepted_values = { "Male", "Female", "Fluid", "Other" } },
                  _rows = { min = 1 }, _fresh = { max_age = "1d" } },
        purchases = { user_id = { relationships = { stream = "users", column = "id" } } },
      }
      assert.is_true(report.passed, tostring(report))
      assert.equal(8, #report.results)
      assert.same({}, report.failures)
      assert.matches("PASS users.id not_null", tostring(report))
      assert.matches("8 checks, 0 failed", tostring(report))
      local j = json.decode(report:to_json())
      assert.is_true(j.passed)
      assert.equal(8, #j.results)
    end)

    it("reports failing rows with samples for every kind of check", function()
      local r = src:read{ cache = cache, write_strategy = "append", hooks = { users = function(u)
        if u.id % 50 == 0 then u.age = -5; u.email = "broken"; u.gender = "Robot" end
        if u.id % 100 == 1 then u.id = 2 end                    -- duplicates of id 2
        return u
      end } }
      local report = r:check{
        users = { id = { "unique" }, age = { between = { 0, 130 }, sql = "age >= 0" },
                  email = { matches = "^[^@]+@[^@]+$" }, gender = { accepted_values = { "Male", "Female", "Fluid", "Other" } },
                  _rows = { max = 10 }, _sql = "age <> -5" },
        purchases = { user_id = { relationships = { stream = "users", column = "id" } } },
      }
      assert.is_false(report.passed)
      local age = find(report, "users", "age", "between")
      assert.equal(6, age.failing_rows)
      assert.equal(5, #age.samples)
      assert.equal(-5, age.samples[1])
      assert.equal(6, find(report, "users", "age", "sql").failing_rows)
      assert.equal(6, find(report, "users", "email", "matches").failing_rows)
      assert.equal("broken", find(report, "users", "email", "matches").samples[1])
      assert.equal(6, find(report, "users", "gender", "accepted_values").failing_rows)
      assert.equal(4, find(report, "users", "id", "unique").failing_rows)   -- ids 1, 101, 201 became 2, and 2
      assert.is_false(find(report, "users", nil, "_rows").passed)
      assert.equal(6, find(report, "users", nil, "sql").failing_rows)
      -- purchases of users 1, 101 and 201 point at ids that no longer exist
      assert.is_true(find(report, "purchases", "user_id", "relationships").failing_rows > 0)
      assert.matches("FAIL users.age between%(0, 130%): 6 failing rows %(e%.g%. %-5", tostring(report))
      local j = json.decode(report:to_json())
      assert.equal(#report.failures, #j.failures)
      assert.equal("purchases", j.failures[1].stream)      -- streams in name order
    end)
  end)
end)

describe("dataset checks", function()
  local dir, cache, src
  before_each(function()
    dir, cache = H.open_test_cache()
    src = ab.get_source("source-faker", { config = { count = 300, seed = 11 } })
    src:select_streams({ "users", "purchases" })
  end)
  after_each(function() H.close_test_cache(dir, cache) end)

  it("checks only the rows of this read with scope = new", function()
    src:select_streams({ "users" })
    src:read{ cache = cache, write_strategy = "append", hooks = { users = function(u) u.age = -1; return u end } }
    local r2 = src:read{ cache = cache, write_strategy = "append", force_full_refresh = true }
    assert.equal(600, #r2["users"])
    local spec = { users = { age = { min = 0 } } }
    assert.is_false(r2:check(spec).passed)
    local new = r2:check(spec, { scope = "new" })
    assert.is_true(new.passed, tostring(new))
    assert.equal(0, new.results[1].failing_rows)
  end)

  it("runs on a cache opened later, and refuses what it cannot check", function()
    src:read{ cache = cache }
    local again = ab.SQLiteCache{ db_path = cache.db_path }
    assert.is_true(again:check{ users = { id = "not_null", _rows = { min = 300, max = 300 } } }.passed)
    local ok, err = pcall(again.check, again, { users = { agee = { "not_null" } } })
    assert.is_false(ok)
    assert.equal("PyAirbyteInputError", err.kind)
    assert.matches("no column 'agee'", err.message)
    assert.matches("columns: .*age", err.message)
    ok, err = pcall(again.check, again, { users = { id = { "unqiue" } } })
    assert.matches("unknown check 'unqiue'", tostring(err))
    ok, err = pcall(again.check, again, { nope = { id = "not_null" } })
    assert.equal("AirbyteStreamNotFoundError", err.kind)
    ok, err = pcall(again.check, again, { users = { id = "not_null" } }, { scope = "new" })
    assert.matches("needs the rows of a read", tostring(err))
    ok, err = pcall(again.check, again, { users = { email = { matches = "(" } } })
    assert.is_false(ok)
    assert.equal("PyAirbyteInputError", err.kind)
    assert.matches("check of stream 'users': the cache refused its SQL: invalid regular expression", err.message)
    ok, err = pcall(again.check, again, { users = { _sql = "age >>> 3" } })
    assert.is_false(ok)
    assert.equal("PyAirbyteInputError", err.kind)
    assert.matches("check of stream 'users'", err.message)
    ok, err = pcall(again.check, again, { users = { _fresh = { max_age = "soon" } } })
    assert.matches("max_age must be", tostring(err))
    again:close()
  end)

  it("fails freshness on old data", function()
    src:select_streams({ "users" })
    local r = src:read{ cache = cache }
    -- faker's created_at values are years old
    assert.is_false(r:check{ users = { _fresh = { column = "created_at", max_age = "1d" } } }.passed)
    assert.is_true(r:check{ users = { _fresh = { max_age = "1h" } } }.passed)   -- extracted just now
  end)

  it("keeps a write from sending anything when a check fails", function()
    src:select_streams({ "users" })
    local dest = ab.get_destination("destination-local-json", { config = { destination_path = dir .. "/out" } })
    local r = src:read{ cache = cache, hooks = { users = function(u) if u.id == 7 then u.age = 999 end; return u end } }
    local ok, err = pcall(dest.write, dest, r, { checks = { users = { age = { between = { 0, 130 } } } } })
    assert.is_false(ok)
    assert.equal("AirbyteDataCheckFailedError", err.kind)
    assert.matches("1 of 1 data checks failed", err.message)
    assert.is_false(err.report.passed)
    assert.is_nil(io.open(dir .. "/out/_airbyte_raw_users.jsonl"))
    -- a passing suite lets it through
    local wr = dest:write(r, { checks = { users = { id = { "not_null", "unique" } } } })
    assert.equal(300, wr.processed_records)
    ok, err = pcall(dest.write, dest, src, { cache = false, checks = { users = { id = "not_null" } } })
    assert.equal("PyAirbyteInputError", err.kind)
  end)
end)
