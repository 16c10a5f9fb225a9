-- Stream names can never destroy or merge data (issue 8, items 1, 2 and the
-- table side of 18): internal tables are out of reach of stream names, names
-- that normalize alike get their own tables or fail before anything is
-- written, and a stream is (namespace, name).
local H = require "helper"
local ab = require "airbyte"
local sqlite = require "airbyte.sqlite"

local function names_source(dir, streams)
  local exe = dir .. "/names_source"
  local f = io.open(exe)
  if f then f:close() else H.fixture_executable(dir, "names_source") end
  return ab.get_source("source-names", { local_executable = exe, config = { streams = streams } })
end

local function read(src, cache, strategy)
  src:select_all_streams()
  return src:read{ cache = cache, write_strategy = strategy, quiet = true }
end

local function tags(cache, sql)
  local out = {}
  for _, r in ipairs(cache:run_sql_query(sql)) do out[#out + 1] = r.tag end
  table.sort(out)
  return out
end

-- the bookkeeping every cache holds, and that no stream may touch
local function seed_bookkeeping(cache)
  cache:put_state("source-other", "orders", { type = "STREAM", stream = {
    stream_descriptor = { name = "orders" }, stream_state = { cursor = 41 } } })
  cache:put_destination_state("destination-x", "source-other", "orders", { type = "STREAM", stream = {
    stream_descriptor = { name = "orders" }, stream_state = { cursor = 40 } } })
  cache:_db():put_delivered("destination-x", "source-other", nil, "orders", "r1")   -- the ledger
end

local function assert_bookkeeping(cache)
  local st = cache:get_state("source-other")
  assert.equal(1, #st)
  assert.equal(41, st[1].stream.stream_state.cursor)
  local ds = cache:get_destination_state("destination-x", "source-other")
  assert.equal(1, #ds)
  assert.equal(40, ds[1].stream.stream_state.cursor)
  local p = cache:run_sql_query("SELECT last_raw_id FROM _luabyte_destination_progress"
    .. " WHERE source_name = 'source-other'")
  assert.same({ { last_raw_id = "r1" } }, p)
  local cols = {}
  for _, c in ipairs(cache:_db():columns("_airbyte_streams")) do cols[c.name] = true end
  assert.is_true(cols.stream_name and cols.table_name and cols.catalog_metadata and true)
end

describe("stream names", function()
 H.each_backend(function(b)
  local dir, cache
  before_each(function() dir = H.tmpdir(); cache = b.fresh_cache() end)
  after_each(function() H.close_test_cache(dir, cache) end)
  -- the backend's own reserved space: SQLite's sqlite_* tables, PostgreSQL's pg_*
  local own = b.name == "postgres" and "pg_" or "sqlite_"
  -- PostgreSQL keeps no NUL byte in a text value: streams named with one are refused there
  local nul_ok = b.name ~= "postgres"

  local hostile = { "_airbyte_state", "_airbyte_streams", "_airbyte_destination_state",
                    "_luabyte_destination_progress", "_airbyte_replace_users", own .. "master",
                    own .. "sequence", "_AIRBYTE_RAW", "_Luabyte_Ledger", own:upper() .. "STAT1" }
  for _, strategy in ipairs({ "replace", "merge", "append" }) do
    it("never reach an internal table (" .. strategy .. ")", function()
      seed_bookkeeping(cache)
      local streams = {}
      for i, n in ipairs(hostile) do streams[i] = { name = n, records = 3, tag = n } end
      local src = names_source(dir, streams)
      local result = read(src, cache, strategy)
      assert_bookkeeping(cache)
      for _, n in ipairs(hostile) do
        local t = cache:table_name(n)
        assert.is_nil(t:find("^_airbyte_"), t)
        assert.is_nil(t:find("^_luabyte_"), t)
        assert.is_nil(t:find("^" .. own), t)
        assert.equal(3, #result[n])
        for row in result[n]:rows() do assert.equal(n, row.tag) end
      end
      -- the source's own state is kept, and later reads still work
      assert.equal(#hostile, #cache:get_state("source-names"))
      local again = read(src, cache, strategy)
      assert_bookkeeping(cache)
      for _, n in ipairs(hostile) do
        assert.equal(strategy == "append" and 6 or 3, #again[n])
      end
      assert.equal(#hostile, #cache.streams)
    end)
  end

  it("named like internal tables are written from the cache to a destination", function()
    seed_bookkeeping(cache)
    local streams = {}
    for i, n in ipairs(hostile) do streams[i] = { name = n, records = i, tag = n } end
    local result = read(names_source(dir, streams), cache, "merge")
    local dest = ab.get_destination("destination-local-json", { config = { destination_path = dir .. "/out" } })
    local function check(wr)
      local total = 0
      for i, n in ipairs(hostile) do
        local lines = 0
        for line in io.lines(dir .. "/out/_airbyte_raw_" .. n .. ".jsonl") do
          lines = lines + 1
          assert.truthy(line:find(n, 1, true), line)
        end
        assert.equal(i, lines)
        total = total + i
      end
      assert.equal(total, wr.processed_records)
      assert_bookkeeping(cache)
    end
    check(dest:write(result, { quiet = true }))
    -- a ReadResult with no catalog (the catalog comes from _airbyte_streams) finds the same tables
    local bare = require("airbyte.read_result").new{ source_name = "source-names", cache = cache,
      processed_streams = hostile, processed_records = 0 }
    check(dest:write(bare, { quiet = true, force_full_refresh = true }))
  end)

  it("keep a replace stream apart from a stream named like its shadow table", function()
    local src = names_source(dir, { { name = "users", tag = "plain", records = 2 },
                                    { name = "_airbyte_replace_users", tag = "shadow", records = 3 } })
    for _ = 1, 2 do
      local result = read(src, cache, "replace")
      assert.same({ "plain", "plain" }, tags(cache, 'SELECT tag FROM "' .. cache:table_name("users") .. '"'))
      assert.equal(3, #result["_airbyte_replace_users"])
      for row in result["_airbyte_replace_users"]:rows() do assert.equal("shadow", row.tag) end
    end
  end)

  it("with a NUL byte are not cut short, in C as in Lua", function()
    if not nul_ok then
      local src = names_source(dir, { { name = "a\0b", tag = "nul", records = 3 } })
      local kind, e = H.error_kind(function() read(src, cache, "merge") end)
      assert.truthy(kind, "a NUL byte in a stream name must be refused on " .. b.name)
      assert.truthy(e.message:find("NUL", 1, true) or e.message:find("\\u0000", 1, false), e.message)
      return
    end
    local src = names_source(dir, { { name = "a\0b", tag = "nul", records = 3 },
                                    { name = "a", tag = "plain", records = 2 } })
    local result = read(src, cache, "merge")
    assert.equal("a_b", cache:table_name("a\0b"))
    assert.equal("a_b", sqlite.normalize("a\0b"))
    assert.same({ "nul", "nul", "nul" }, tags(cache, "SELECT tag FROM a_b"))
    assert.same({ "plain", "plain" }, tags(cache, "SELECT tag FROM a"))
    assert.equal(3, #result["a\0b"])
    assert.equal(2, #result["a"])
    local names = cache.streams
    table.sort(names)
    assert.same({ "a", "a\0b" }, names)
  end)

  local pairs_ = { { "users", "Users" }, { "users", "USERS" }, { "a b", "a-b" }, { "a\0b", "a_b" },
                   { "café", "caf\xc3\xa8" } }
  for _, pair in ipairs(pairs_) do
    if nul_ok or not (pair[1]:find("%z") or pair[2]:find("%z")) then
    it(("that normalize alike fail before anything is written (%q, %q)"):format(pair[1], pair[2]), function()
      seed_bookkeeping(cache)
      local src = names_source(dir, { { name = pair[1] }, { name = pair[2] } })
      local kind, e = H.error_kind(function() read(src, cache, "merge") end)
      assert.equal("PyAirbyteNameNormalizationError", kind)
      local table_name = sqlite.normalize(pair[1])
      assert.truthy(e.message:find(("'%s'"):format(pair[1]:gsub("%z", "\\u0000")), 1, true), e.message)
      assert.truthy(e.message:find(("'%s'"):format(pair[2]:gsub("%z", "\\u0000")), 1, true), e.message)
      assert.truthy(e.message:find(("table '%s'"):format(table_name), 1, true), e.message)
      -- nothing written: no table, no stream row, no state
      assert.is_false(cache:_db():has_table(table_name))
      assert.same({}, cache:run_sql_query("SELECT * FROM _airbyte_streams"))
      assert.same({}, cache:get_state("source-names"))
      assert_bookkeeping(cache)
    end)
    end
  end

  it("that normalize like an already cached stream fail and leave it intact", function()
    local first = names_source(dir, { { name = "users", tag = "first", records = 2 } })
    read(first, cache, "merge")
    local second = names_source(dir, { { name = "Users", tag = "second", records = 5 } })
    local kind, e = H.error_kind(function() read(second, cache, "replace") end)
    assert.equal("PyAirbyteNameNormalizationError", kind)
    assert.truthy(e.message:find("'Users'", 1, true) and e.message:find("'users'", 1, true), e.message)
    assert.same({ "first", "first" }, tags(cache, "SELECT tag FROM users"))
    assert.same({ "users" }, cache.streams)
    -- the first stream still reads fine afterwards
    local again = read(first, cache, "merge")
    assert.equal(2, #again["users"])
  end)

  it("of other sources share a table, as in PyAirbyte", function()
    read(names_source(dir, { { name = "users", tag = "one", records = 2 } }), cache, "append")
    local other = ab.get_source("source-names-2", { local_executable = dir .. "/names_source",
      config = { streams = { { name = "users", tag = "two", records = 1 } } } })
    read(other, cache, "append")
    assert.same({ "one", "one", "two" }, tags(cache, "SELECT tag FROM users"))
  end)

  it("in two namespaces are two streams with two tables", function()
    local src = names_source(dir, { { name = "users", namespace = "a", tag = "A", records = 2 },
                                    { name = "users", namespace = "b", tag = "B", records = 3 },
                                    { name = "items", tag = "I", records = 1 } })
    for _ = 1, 2 do
      local result = read(src, cache, "merge")
      local ta, tb = cache:table_name("users", "a"), cache:table_name("users", "b")
      assert.are_not.equal(ta, tb)
      assert.equal("users", ta)
      assert.equal("b_users", tb)
      assert.same({ "A", "A" }, tags(cache, 'SELECT tag FROM "' .. ta .. '"'))
      assert.same({ "B", "B", "B" }, tags(cache, 'SELECT tag FROM "' .. tb .. '"'))
      assert.equal(2, #result:get_dataset("users", "a"))
      assert.equal(3, #result:get_dataset("users", "b"))
      assert.equal(1, #result["items"])
      -- the plain name is ambiguous: an error that says so, not one of them
      local kind, e = H.error_kind(function() return #result["users"] end)
      assert.equal("PyAirbyteInputError", kind)
      assert.truthy(e.message:find("namespace", 1, true), e.message)
    end
  end)
 end)
end)
