-- Record checks during the read (the `validate` option): the stream's JSON
-- schema in C, Lua rules and sandboxed validators, and the four policies,
-- with real connectors and a real SQLite cache.
local H = require "helper"
local ab = require "airbyte"
local json = require "airbyte.json"

describe("record checks", function()
  local dir, cache
  before_each(function() dir, cache = H.open_test_cache() end)
  after_each(function() H.close_test_cache(dir, cache) end)

  -- items 1..n with a STATE every 10; the hook turns the names of the
  -- given ids into numbers, which the stream's schema (name: string) refuses
  local function items(n)
    local src = ab.get_source("source-crasher", { local_executable = H.fixture_executable(dir, "crasher"),
      config = { records = n, state_every = 10 } })
    src:select_all_streams()
    return src
  end
  local function break_names(ids)
    local set = {}
    for _, id in ipairs(ids) do set[id] = true end
    return { items = function(r) if set[r.id] then r.name = r.id * 1.5; return r end end }
  end

  it("fails the read on the first invalid record, keeping only what was committed (fail)", function()
    local ok, err = pcall(items(25).read, items(25), { cache = cache, hooks = break_names({ 15 }),
      validate = { schema = true } })
    assert.is_false(ok)
    assert.equal("AirbyteRecordValidationError", err.kind)
    assert.equal("items", err.stream)
    assert.equal(15, err.record_number)
    assert.equal("$.name", err.path)
    assert.matches("expected string", err.validation_message)
    assert.matches("stream 'items' record 15 is invalid: %$%.name: expected string", err.message)
    -- the rows and state of the first ten (committed at the state after id 10) only
    assert.equal(10, #cache["items"])
    assert.equal(10, cache:get_state("source-crasher")[1].stream.stream_state.last_id)
  end)

  it("drops invalid records and counts them per stream and reason (drop)", function()
    local r = items(30):read{ cache = cache, hooks = break_names({ 3, 4, 5 }),
      validate = { schema = true, on_invalid = "drop",
                   rules = { items = function(rec) if rec.id == 20 then return false, "no twenties", "id" end end } } }
    assert.equal(26, #r["items"])
    assert.same({ items = { schema = 3, rule = 1 } }, r.invalid_records)
    assert.equal(0, #r["items"]:with_filter("id IN (3, 4, 5, 20)"):to_table())
    -- the source's state is kept: the next read continues after 30
    assert.equal(30, cache:get_state("source-crasher")[1].stream.stream_state.last_id)
  end)

  it("nulls the failing fields and records the change in _airbyte_meta (null)", function()
    local r = items(12):read{ cache = cache, hooks = break_names({ 2 }),
      validate = { schema = true, on_invalid = "null",
                   rules = { items = function(rec) if rec.id == 7 then return false, "seven is taken", "name" end end } } }
    assert.equal(12, #r["items"])
    local rows = cache:run_sql_query("SELECT id, name, extra, _airbyte_meta FROM items WHERE id IN (2, 7, 8) ORDER BY id")
    assert.is_nil(rows[1].name)
    assert.equal(2, rows[1].id)
    local meta = json.decode(rows[1]._airbyte_meta)
    assert.equal(1, #meta.changes)
    assert.same({ field = "name", change = "NULLED", reason = "SOURCE_RETRIEVAL_ERROR",
                  message = "expected string, got number" }, meta.changes[1])
    assert.is_nil(rows[2].name)
    assert.equal("seven is taken", json.decode(rows[2]._airbyte_meta).changes[1].message)
    assert.equal("item 8", rows[3].name)                   -- valid records are untouched
    assert.equal("{}", rows[3]._airbyte_meta)
    assert.same({ items = { schema = 1, rule = 1 } }, r.invalid_records)
  end)

  it("keeps invalid records aside, never sending them to a destination (quarantine)", function()
    local r = items(20):read{ cache = cache, hooks = break_names({ 4, 9 }),
      validate = { schema = true, on_invalid = "quarantine" } }
    assert.equal(18, #r["items"])
    local q = cache:get_quarantine("items")
    assert.equal(2, #q)
    assert.equal(4, q[1].record.id)
    assert.equal(6, q[1].record.name)
    assert.equal("schema", q[1].reasons[1].check)
    assert.equal("name", q[1].reasons[1].field)
    assert.equal("source-crasher", q[1].source_name)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", q[1]._airbyte_extracted_at)
    assert.same({}, cache:get_quarantine("other"))
    -- readable by any SQL tool, and absent downstream
    assert.equal(2, cache:run_sql_query("SELECT count(*) AS n FROM _airbyte_quarantine")[1].n)
    local dest = ab.get_destination("destination-local-json", { config = { destination_path = dir .. "/out" } })
    assert.equal(18, dest:write(r).processed_records)
    for line in io.lines(dir .. "/out/_airbyte_raw_items.jsonl") do
      local id = json.decode(line)._airbyte_data.id
      assert.is_true(id ~= 4 and id ~= 9)
    end
  end)

  it("runs sandboxed validators; a hostile one fails its records, not the host", function()
    local v = ab.sandbox.from_string([[return function(r)
      if r.id % 5 == 0 then while true do end end          -- a loop on every fifth record
      return r.id ~= 3, "three", "id"
    end]], { memory = "4MB", instructions = 1e5 })
    local r = items(10):read{ cache = cache, validate = { rules = { items = v }, on_invalid = "quarantine" } }
    assert.equal(7, #r["items"])
    local reasons = {}
    for _, q in ipairs(cache:get_quarantine("items")) do reasons[q.record.id] = q.reasons[1].message end
    assert.equal("three", reasons[3])
    assert.matches("sandbox: instruction limit exceeded", reasons[5])
    assert.matches("sandbox: instruction limit exceeded", reasons[10])
  end)

  it("fails past max_invalid", function()
    local ok, err = pcall(items(40).read, items(40), { cache = cache, hooks = break_names({ 1, 2, 3, 4 }),
      validate = { schema = true, on_invalid = "drop", max_invalid = 3 } })
    assert.is_false(ok)
    assert.equal("AirbyteRecordValidationError", err.kind)
    assert.matches("more than 3 records failed their checks", err.message)
  end)

  it("checks straight through too (cache = false), quarantining into the state cache", function()
    local dest = ab.get_destination("destination-local-json", { config = { destination_path = dir .. "/out" } })
    local wr = dest:write(items(15), { cache = false, state_cache = cache, hooks = break_names({ 6 }),
      validate = { schema = true, on_invalid = "quarantine" } })
    assert.equal(14, wr.processed_records)
    assert.same({ items = { schema = 1 } }, wr.invalid_records)
    assert.equal(6, cache:get_quarantine("items")[1].record.id)
    local n = 0
    for _ in io.lines(dir .. "/out/_airbyte_raw_items.jsonl") do n = n + 1 end
    assert.equal(14, n)
    local ok, err = pcall(dest.write, dest, items(5), { cache = false, state_cache = false,
      validate = { schema = true, on_invalid = "quarantine" } })
    assert.is_false(ok)
    assert.matches("needs a cache", err.message)
  end)

  it("refuses what it cannot do, with the names", function()
    local src = items(5)
    local ok, err = pcall(src.read, src, { cache = cache, validate = { shcema = true } })
    assert.equal("PyAirbyteInputError", err.kind)
    assert.matches("schema", err.message)
    ok, err = pcall(src.read, src, { cache = cache, validate = { schema = true, on_invalid = "ignore" } })
    assert.matches("on_invalid must be", err.message)
    ok, err = pcall(src.read, src, { cache = cache, validate = { rules = { users = function() end } } })
    assert.matches("a rule for stream 'users', which is not read %(streams: items%)", err.message)
    ok, err = pcall(src.read, src, { cache = cache, validate = { rules = { items = 42 } } })
    assert.matches("must be a function or a sandbox validator", err.message)
  end)
end)
