-- The SQLite cache: airbyte.sqlite (the C binding) and airbyte.caches (the
-- PyAirbyte-like cache objects).
local H = require "helper"
local sqlite = require "airbyte.sqlite"
local caches = require "airbyte.caches"
local json = require "airbyte.json"
local errors = require "airbyte.errors"

local users_schema = json.encode{
  type = "object",
  properties = {
    id = { type = "integer" }, name = { type = "string" }, age = { type = "integer" },
    height = { type = "string" }, score = { type = "number" }, active = { type = "boolean" },
    address = { type = "object" }, tags = { type = "array" },
    created_at = { type = "string", format = "date-time" },
  },
}

local function kind_of(fn)
  local ok, e = pcall(fn)
  assert.is_false(ok, "expected an error")
  assert.is_true(errors.is_error(e), "expected a structured error, got " .. tostring(e))
  return e.kind, e
end

local function with_env(vars, fn)
  -- os.getenv cannot be set from Lua: run fn in a child luabyte with the env
  local parts = {}
  for k, v in pairs(vars) do parts[#parts + 1] = k .. "=" .. H.shell_quote(v) end
  return fn(table.concat(parts, " "))
end

local dir
before_each(function() dir = H.tmpdir() end)
after_each(function() H.rm_rf(dir) end)

describe("airbyte.sqlite", function()
  it("normalizes names like PyAirbyte", function()
    assert.equal("hello_world_", sqlite.normalize("Hello World!"))
    assert.equal("_1abc", sqlite.normalize("1abc"))
    assert.equal("users", sqlite.normalize("users"))
    assert.equal("caf_", sqlite.normalize("café"))
    assert.has_error(function() sqlite.normalize("--") end)
  end)

  it("makes directories and ULIDs (airbyte.core, as the caches use them)", function()
    local core = require "airbyte.core"
    assert.is_true(core.mkdir_p(dir .. "/a/b/c"))
    assert.is_true(core.mkdir_p(dir .. "/a/b/c"))      -- again: fine
    H.write_file(dir .. "/file", "x")
    local ok, msg = core.mkdir_p(dir .. "/file/sub")
    assert.is_nil(ok)
    assert.matches("cannot create directory", msg)
    local a, b = core.ulid(), core.ulid()
    assert.equal(26, #a)
    assert.matches("^[0-9A-HJKMNP-TV-Z]+$", a)
    assert.are_not.equal(a, b)
  end)

  it("opens, queries with parameters, iterates and closes twice", function()
    local db = assert(sqlite.open(dir .. "/x.sqlite"))
    assert.matches("airbyte.CacheDB", tostring(db))
    db:exec("CREATE TABLE t (a INTEGER, b TEXT, c REAL, d BLOB); "
      .. "INSERT INTO t VALUES (1, 'one', 1.5, x'6869'); INSERT INTO t VALUES (2, NULL, NULL, NULL)")
    local rows, cols = db:query("SELECT * FROM t ORDER BY a")
    assert.same({ "a", "b", "c", "d" }, cols)
    assert.equal(2, #rows)
    assert.equal(math.type(rows[1].a), "integer")
    assert.same({ a = 1, b = "one", c = 1.5, d = "hi" }, rows[1])
    assert.same({ a = 2 }, rows[2])                          -- NULL: no key
    assert.equal(1, #db:query("SELECT * FROM t", nil, 1))
    assert.equal("one", db:query("SELECT b FROM t WHERE a = ?", { 1 })[1].b)
    assert.equal(2, db:query("SELECT a FROM t WHERE b IS ?", { n = 1 })[1].a)
    assert.equal(1, db:query("SELECT a FROM t WHERE b = :name", { name = "one" })[1].a)
    assert.equal(1, db:query("SELECT ? AS x", { true })[1].x)
    assert.equal(1, db:query("SELECT ?1 IS NULL AS x", { json.null })[1].x)
    local seen = {}
    for row in db:rows("SELECT a FROM t ORDER BY a") do seen[#seen + 1] = row.a end
    assert.same({ 1, 2 }, seen)
    for row in db:rows("SELECT a FROM t") do break end       -- closes the statement early
    db:close()
    db:close()
    assert.matches("closed", tostring(db))
    assert.has_error(function() db:query("SELECT 1") end)
  end)

  it("raises SQL errors with the statement", function()
    local db = assert(sqlite.open(":memory:"))
    local ok, e = pcall(db.exec, db, "SELECT * FROM missing_table")
    assert.is_false(ok)
    assert.matches("no such table: missing_table", e)
    assert.matches("SELECT %* FROM missing_table", e)
    ok, e = pcall(db.query, db, "SELECT 1; SELECT 2")
    assert.is_false(ok)
    assert.matches("one SQL statement", e)
    assert.has_error(function() db:query("SELECT ?") end)      -- parameters missing
    assert.has_error(function() db:query("SELECT ?", { {} }) end) -- a table cannot be bound
    db:close()
  end)

  it("checks the record counts a state carries, in C", function()
    local st = { type = "STREAM", stream = { stream_descriptor = { name = "u" } }, sourceStats = { recordCount = 3.0 } }
    assert.is_nil(sqlite.state_count_mismatch(st, "sourceStats", 3))
    assert.equal(3, sqlite.state_count_mismatch(st, "sourceStats", 2))
    assert.is_nil(sqlite.state_count_mismatch(st, "destinationStats", 2))      -- none carried
    assert.equal(5, sqlite.state_count_mismatch('{"destinationStats": {"recordCount": 5}}', "destinationStats", 0))
    assert.has_error(function() sqlite.state_count_mismatch("{broken", "sourceStats", 0) end)
  end)

  it("gives a state's identity in C: its key and a digest of its blob, whatever the spelling", function()
    local text = '{"type":"STREAM","stream":{"stream_descriptor":{"name":"us\\u0065rs","namespace":"app"},'
      .. '"stream_state":{"cursor":1.0,"tags":["a\\/b"]}}}'
    local t, name, ns, digest = sqlite.state_identity(text)
    assert.same({ "STREAM", "users", "app" }, { t, name, ns })
    -- the digest is json.digest's canonical form of the blob: the C and the
    -- Lua spellings of one state are one identity
    assert.equal(json.digest(json.decode(text).stream), digest)
    assert.equal(digest, select(4, sqlite.state_identity(json.decode(text))))
    -- a destination's echo: another order, spacing, number spelling, stats added, in its message
    local echo = '{"type":"STATE","state":{"destinationStats":{"recordCount":2},"id":9,"stream":'
      .. '{"stream_state":{"tags":["a/b"],"cursor":1},"stream_descriptor":{"namespace":"app","name":"users"}},'
      .. '"type":"STREAM"}}'
    assert.same({ "STREAM", "users", "app", digest }, { sqlite.state_identity(echo) })
    assert.are_not.equal(digest, select(4, sqlite.state_identity(text:gsub("1%.0", "2"))))
    local gt, gname = sqlite.state_identity('{"type":"GLOBAL","global":{"shared_state":{}}}')
    assert.same({ "GLOBAL", "_GLOBAL" }, { gt, gname })
    local _, lname, lns, ld = sqlite.state_identity('{"data":{"n":1}}')
    assert.same({ "_LEGACY", nil, json.digest('{"n":1}') }, { lname, lns, ld })
    assert.equal(ld, select(4, sqlite.state_identity('{"type":"LEGACY","data":{"n":1.0}}')))
    assert.has_error(function() sqlite.state_identity("{broken") end)
    assert.has_error(function() sqlite.state_identity('{"type":"STATE","state":[]}') end)
  end)

  it("returns nil and a message when the file cannot be opened", function()
    local db, msg = sqlite.open(dir .. "/no/such/dir/x.sqlite")
    assert.is_nil(db)
    assert.matches("cannot open", msg)
  end)

end)

describe("airbyte.caches", function()
  it("creates the default cache under AIRBYTE_CACHE_ROOT", function()
    with_env({ AIRBYTE_CACHE_ROOT = dir .. "/root" }, function(envs)
      local out = io.popen(envs .. " " .. H.shell_quote(H.exe) .. " -e "
        .. H.shell_quote('local c = require("airbyte.caches").get_default_cache(); io.write(c.db_path); c:close()'))
      local path = out:read("a")
      out:close()
      assert.equal(dir .. "/root/default_cache/default_cache.sqlite", path)
    end)
    local f = io.open(dir .. "/root/default_cache/default_cache.sqlite", "rb")
    assert.is_not_nil(f)
    if f then f:close() end
  end)

  it("puts the cache root under AIRBYTE_PROJECT_DIR when no root is set", function()
    with_env({ AIRBYTE_CACHE_ROOT = "", AIRBYTE_PROJECT_DIR = dir .. "/proj" }, function(envs)
      local out = io.popen(envs .. " " .. H.shell_quote(H.exe) .. " -e "
        .. H.shell_quote('io.write(require("airbyte.caches").cache_root())'))
      assert.equal(dir .. "/proj/.cache", out:read("a"))
      out:close()
    end)
  end)

  it("names local caches like PyAirbyte", function()
    local c = caches.new_local_cache{ cache_name = "my_cache", cache_dir = dir .. "/lc" }
    assert.equal(dir .. "/lc/db_my_cache.sqlite", c.db_path)
    assert.equal(dir .. "/lc", c.cache_dir)
    c:close()
    assert.equal("PyAirbyteInputError", (kind_of(function() caches.new_local_cache{ cache_name = "has space" } end)))
    assert.equal("PyAirbyteInputError", (kind_of(function() caches.new_local_cache{ cache_name = "bad-name" } end)))
    local u = caches.new_local_cache{ cache_dir = dir .. "/ulid" }
    assert.matches("/db_[0-9A-Z]+%.sqlite$", u.db_path)
    u:close()
  end)

  it("fails with a PyAirbyteCacheError when the file cannot be made", function()
    H.write_file(dir .. "/blocker", "x")
    assert.equal("PyAirbyteCacheError",
      (kind_of(function() caches.SQLiteCache{ db_path = dir .. "/blocker/sub/x.sqlite" } end)))
    assert.equal("PyAirbyteInputError", (kind_of(function() caches.SQLiteCache{} end)))
  end)

end)

-- The same behaviour on every storage backend (tests/lua/helper.lua).
H.each_backend(function(b)
  describe("streams and state", function()
    it("writes typed records through a stream", function()
      local db = b.open_db("c")
      local s = db:stream_open{ source = "src", stream = "Users", schema = users_schema,
                                strategy = "append" }
      assert.equal("users", s:table_name())
      db:begin()
      s:write('{"id": 1, "name": "a\\u00e9", "age": 30, "score": 1.5, "active": true,'
        .. ' "address": {"city": "X"}, "tags": [1, 2], "extra": 1}', 1669682107441)
      s:write({ id = 2, name = "b" }, 1669682107442, '{"changes": []}')
      db:commit()
      assert.equal(2, s:rows_written())
      local r = db:query("SELECT * FROM users ORDER BY id")
      assert.equal("aé", r[1].name)
      assert.is_true(r[1].active == 1 or r[1].active == true)   -- SQLite keeps booleans as 1/0
      assert.equal('{"city": "X"}', r[1].address)
      assert.equal("2022-11-29T00:35:07.441+00:00", r[1]._airbyte_extracted_at)
      assert.equal("{}", r[1]._airbyte_meta)
      assert.equal('{"changes": []}', r[2]._airbyte_meta)
      assert.is_nil(r[1].extra)
      assert.matches("^%x+%-%x+%-7%x+%-[89ab]%x+%-%x+$", r[1]._airbyte_raw_id)
      assert.has_error(function() s:write("{broken") end)
      assert.has_error(function() s:write("[1, 2]") end)
      s:close()
      s:close()
      assert.has_error(function() s:write("{}") end)
      db:close()
    end)

    it("merges on the primary key and refuses merge without one", function()
      local db = b.open_db("m")
      local s = db:stream_open{ stream = "users", schema = users_schema, strategy = "merge",
                                primary_key = { { "id" } } }
      s:write({ id = 1, name = "first" })
      s:write({ id = 1, name = "second" })
      s:close()
      assert.same({ { n = 1, name = "second" } }, db:query("SELECT count(*) AS n, max(name) AS name FROM users"))
      assert.has_error(function() db:stream_open{ stream = "users", schema = users_schema, strategy = "merge" } end)
      assert.has_error(function()
        db:stream_open{ stream = "users", schema = users_schema, strategy = "merge", primary_key = { { "a", "b" } } }
      end)
      -- "auto" is airbyte.catalog's to resolve (PK -> merge, else cursor -> append, else
      -- replace); the binding takes only what it resolves to
      local catalog = require "airbyte.catalog"
      local function cs(extra)
        local t = { stream = { name = "users", json_schema = users_schema }, sync_mode = "incremental" }
        for k, v in pairs(extra) do t[k] = v end
        return t
      end
      assert.equal("merge", catalog.resolve_write_method(cs{ primary_key = { { "id" } } }, "auto"))
      assert.equal("append", catalog.resolve_write_method(cs{ cursor_field = { "id" } }, "auto"))
      assert.equal("replace", catalog.resolve_write_method(cs{}, "auto"))
      assert.has_error(function() db:stream_open{ stream = "users", schema = users_schema, strategy = "auto" } end)
      s = db:stream_open{ stream = "users", schema = users_schema, strategy = "merge", primary_key = { "id" } }
      s:write({ id = 1, name = "third" })
      s:close()
      assert.equal(1, db:query("SELECT count(*) AS n FROM users")[1].n)
      s = db:stream_open{ stream = "users", schema = users_schema, strategy = "append" }
      s:write({ id = 1, name = "appended" })
      s:close()
      assert.equal(2, db:query("SELECT count(*) AS n FROM users")[1].n)
      db:close()
    end)

    it("interleaves reading rows with writing records (writer thread)", function()
      local db = b.open_db("rw")
      db:exec("CREATE TABLE src (id INTEGER)")
      db:begin()
      local vals = {}
      for i = 1, 3000 do vals[i] = "(" .. i .. ")" end
      db:exec("INSERT INTO src VALUES " .. table.concat(vals, ","))
      local s = db:stream_open{ stream = "users", schema = users_schema }
      local n = 0
      for row in db:rows("SELECT id FROM src ORDER BY id") do
        s:write({ id = row.id, name = ("n%d"):format(row.id) })
        n = n + 1
      end
      db:commit()
      assert.equal(3000, n)
      assert.equal(3000, db:query("SELECT count(*) AS n FROM users")[1].n)
      assert.equal("n2999", db:query("SELECT name FROM users WHERE id = 2999")[1].name)
      -- without the threads: same results
      db:set_async(false)
      s:write({ id = 5000 })
      assert.equal(3001, db:query("SELECT count(*) AS n FROM users")[1].n)
      db:set_async(true)
      s:write({ id = 5001 })
      s:close()
      assert.equal(3002, db:query("SELECT count(*) AS n FROM users")[1].n)
      db:close()
    end)

    it("replaces through a shadow table, and abort keeps the old rows", function()
      local db = b.open_db("r")
      local s = db:stream_open{ stream = "users", schema = users_schema }
      s:write({ id = 1 }); s:write({ id = 2 })
      s:close()
      local reader = b.open_db("r")       -- another connection
      db:begin()
      s = db:stream_open{ stream = "users", schema = users_schema, strategy = "replace" }
      s:write({ id = 3 })
      s:abort()
      s:close()
      db:commit()
      assert.equal(2, db:query("SELECT count(*) AS n FROM users")[1].n)
      db:begin()
      s = db:stream_open{ stream = "users", schema = users_schema, strategy = "replace" }
      s:write({ id = 4 })
      assert.equal(2, reader:query("SELECT count(*) AS n FROM users")[1].n)
      s:finish()
      assert.equal(2, reader:query("SELECT count(*) AS n FROM users")[1].n)
      db:commit()
      assert.same({ { id = 4 } }, reader:query("SELECT id FROM users"))
      s:close()
      reader:close()
      db:close()
    end)

    it("keeps the last state per stream, GLOBAL under _GLOBAL", function()
      local db = b.open_db("s")
      local function st(name, v)
        return { type = "STREAM", stream = { stream_descriptor = { name = name }, stream_state = { v = v } } }
      end
      db:put_state("src", "users", st("users", 1))
      db:put_state("src", "users", json.encode(st("users", 2)))
      db:put_state("src", "", { type = "GLOBAL", global = { shared_state = { lsn = 3 } } })
      db:put_state("other", "users", st("users", 9))
      local texts, names = db:get_states("src")
      assert.same({ "_GLOBAL", "users" }, names)
      assert.equal(2, json.decode(texts[2]).stream.stream_state.v)
      db:put_destination_state("destination-x", "src", "users", st("users", 5))
      db:put_destination_state("destination-x", "src", "users", st("users", 6))
      texts, names = db:get_destination_states("destination-x", "src")
      assert.same({ "users" }, names)
      assert.equal(6, json.decode(texts[1]).stream.stream_state.v)
      assert.equal(0, #db:get_destination_states("destination-y"))
      assert.has_error(function() db:put_state("src", "users", "{not json") end)
      db:close()
    end)
  end)

  describe("introspection", function()
    it("lists tables, columns with their kinds and cached streams", function()
      local db = b.open_db("intro")
      assert.equal(b.name, db:kind())
      local s = db:stream_open{ source = "src", stream = "Users", schema = users_schema }
      s:write({ id = 1 })
      s:close()
      assert.is_true(db:has_table("users"))
      assert.is_false(db:has_table("nope"))
      local kinds = {}
      for _, col in ipairs(db:columns("users")) do kinds[col.name] = col.kind end
      assert.same({ id = "integer", name = "string", age = "integer", height = "string", score = "number",
                    active = "boolean", address = "json", tags = "json", created_at = "string",
                    _airbyte_raw_id = "string", _airbyte_extracted_at = kinds._airbyte_extracted_at,
                    _airbyte_meta = "json" }, kinds)
      assert.same({}, db:columns("nope"))
      local streams = db:streams()
      assert.equal(1, #streams)
      assert.equal("Users", streams[1].name)
      assert.equal("", streams[1].namespace)
      assert.equal("users", streams[1].table)
      assert.equal("src", streams[1].source)
      assert.same(json.decode(users_schema), json.decode(streams[1].catalog))
      -- typed rows: the kinds of the columns a query reads
      do
        local iter, _, _, closer <close>, rkinds = db:rows("SELECT id, address, 1 AS one FROM users")
        assert.same({ id = "integer", address = "json" }, rkinds)
        assert.equal(1, iter().id)
        assert.is_not_nil(closer)
      end
      db:close()
    end)

    it("takes and releases a stream lock", function()
      local db = b.open_db("lock")
      assert.is_true(db:lock_stream("src", "users", nil, 1000))
      db:unlock_stream("src", "users")
      assert.has_error(function() db:lock_stream("src", "") end)
      db:close()
    end)
  end)

  describe("cache objects", function()
    it("runs SQL, lists streams and reads typed records", function()
      local cache <close> = b.new_cache("a")
      local db = cache:_db()
      local s = db:stream_open{ source = "source-test", stream = "users", schema = users_schema }
      s:write('{"id": 1, "name": "x", "address": {"city": "Y", "zip": null}, "tags": ["a"],'
        .. ' "score": 2.5, "age": 123456789012345678901234567890}', 1000)
      s:write('{"id": 2}', 2000)
      s:close()
      assert.same({ "users" }, cache.streams)
      assert.is_true(cache:contains("users"))
      assert.is_false(cache:contains("nope"))
      assert.equal(1, #cache)
      assert.equal("users", cache:table_name("users"))
      -- "Users" is another stream, whose table would be the one "users" has
      assert.equal("PyAirbyteNameNormalizationError", (kind_of(function() cache:table_name("Users") end)))
      local cols = cache:column_names("users")
      assert.equal("_airbyte_meta", cols[#cols])

      local rows = cache:run_sql_query("SELECT id FROM users ORDER BY id")
      assert.same({ { id = 1 }, { id = 2 } }, rows)
      assert.equal(1, #cache:run_sql_query("SELECT id FROM users", { max_records = 1 }))

      local got = {}
      for row in cache:get_records("users") do got[#got + 1] = row end
      assert.equal(2, #got)
      local r = got[1]
      assert.equal("integer", math.type(r.id))
      assert.equal("Y", r.address.city)
      assert.equal(json.null, r.address.zip)
      assert.equal("a", r.tags[1])
      assert.equal(2.5, r.score)
      assert.is_true(json.is_bigint(r.age))
      assert.equal("123456789012345678901234567890", tostring(r.age))
      assert.same({}, r._airbyte_meta)
      assert.is_nil(got[2].name)
      assert.equal("AirbyteStreamNotFoundError", (kind_of(function() cache:get_records("nope") end)))

      cache:execute_sql({ "CREATE TABLE extra (a INTEGER)", "INSERT INTO extra VALUES (1)" })
      assert.equal(1, cache:run_sql_query("SELECT count(*) AS n FROM extra")[1].n)
      assert.has_error(function() cache:execute_sql({ "INSERT INTO extra VALUES (2)", "BROKEN SQL" }) end)
      assert.equal(1, cache:run_sql_query("SELECT count(*) AS n FROM extra")[1].n)   -- rolled back
    end)

    it("keeps state, and serves several uses in a row after close", function()
      local cache = b.new_cache("state")
      local st = { type = "STREAM", stream = { stream_descriptor = { name = "users" }, stream_state = { c = 1 } } }
      cache:put_state("source-faker", "users", st)
      cache:close()
      local states = cache:get_state("source-faker")           -- opens again
      assert.equal(1, #states)
      assert.equal(1, states[1].stream.stream_state.c)
      local p = cache:get_state_provider("source-faker")
      assert.same({ "users" }, p.known_stream_names)
      assert.equal(1, p:get_stream_state("users").c)
      assert.equal(1, #json.decode(p.to_state_input_file_text()))
      assert.equal("[]", cache:get_state_provider("nobody").to_state_input_file_text())
      cache:put_destination_state("destination-x", "source-faker", "users", st)
      assert.equal(1, #cache:get_destination_state("destination-x", "source-faker"))
      cache:close()
      cache:close()
    end)

    it("isolates tables and state with a table prefix", function()
      local a = b.new_cache("p", { table_prefix = "a_" })
      local other = b.new_cache("p", { table_prefix = "b_" })
      local s = a:_db():stream_open{ source = "src", stream = "users", schema = users_schema }
      s:write({ id = 1 })
      s:close()
      a:put_state("src", "users", { type = "STREAM", stream = { stream_descriptor = { name = "users" } } })
      assert.same({ "users" }, a.streams)
      assert.same({}, other.streams)
      assert.equal(1, #a:get_state("src"))
      assert.equal(0, #other:get_state("src"))
      assert.equal(1, a:run_sql_query("SELECT count(*) AS n FROM a_users")[1].n)
      a:close()
      other:close()
    end)
  end)
end)
