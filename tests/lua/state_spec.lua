-- State as the platform keeps it: every state a source emits, keyed by its
-- stream's (namespace, name) or as GLOBAL / LEGACY, stored, handed back on
-- the next read, sent to destinations and confirmed by their echoes.
local H = require "helper"
local ab = require "airbyte"
local json = require "airbyte.json"

local function stateful(dir, config)
  return ab.get_source("source-stateful", { local_executable = H.fixture_executable(dir, "stateful"),
    config = config })
end

local function echoing(dir, name)
  return ab.get_destination(name or "bad-destination", { local_executable = H.fixture_executable(dir, "bad_destination"),
    config = { out = dir .. "/received.jsonl", mode = "good" } })
end

local function received_ids(path)
  local ids = {}
  local f = io.open(path)
  if not f then return ids end
  for line in f:lines() do ids[#ids + 1] = json.decode(line).record.data.id end
  f:close()
  return ids
end

local function noop_state(name, namespace, v)
  return { type = "STREAM", stream = { stream_descriptor = { name = name, namespace = namespace },
           stream_state = { v = v } } }
end

H.each_backend(function(b)
  describe("state", function()
    local dir, cache
    before_each(function() dir, cache = H.tmpdir(), b.fresh_cache() end)
    after_each(function() H.close_test_cache(dir, cache) end)

    for _, kind in ipairs({ "GLOBAL", "LEGACY", "typeless" }) do
      it("sends a " .. kind .. " state from the cache to the destination, which confirms it", function()
        local src = stateful(dir, { records = 10, state_type = kind })
        src:select_all_streams()
        local dest = echoing(dir)
        local wr = dest:write(src, { cache = cache })
        assert.equal(10, wr.processed_records)
        assert.equal(1, wr.confirmed_states)
        assert.same({}, wr.warnings)
        local stored = wr:get_state_provider()
        local key = kind == "GLOBAL" and "_GLOBAL" or "_LEGACY"
        assert.is_table(stored[key])
        assert.equal(10, (stored[key].global and stored[key].global.shared_state or stored[key].data).last_id)
        -- the next write: the source resumes, the destination gets the new rows only
        local wr2 = dest:write(src, { cache = cache })
        assert.equal(10, wr2.processed_records)
        assert.equal(1, wr2.confirmed_states)
        local ids = received_ids(dir .. "/received.jsonl")
        assert.equal(20, #ids)
        for i = 1, 20 do assert.equal(i, ids[i]) end
      end)
    end

    it("keeps every state the source emits, by (namespace, name), and passes them all back", function()
      local out = dir .. "/state_in.json"
      local extra = { noop_state("__noop__", "__faros__", 1),
                      noop_state("__stream_freshness_state", "__faros_shared_state__", 2),
                      noop_state("items", "other", 3) }
      local src = stateful(dir, { records = 3, extra_states = extra, state_out = out })
      src:select_all_streams()
      src:read{ cache = cache }
      local states = cache:get_state("source-stateful")
      assert.equal(4, #states)
      src:read{ cache = cache }
      local passed = json.decode(H.read_file(out))
      assert.equal(4, #passed)
      local seen = {}
      for _, st in ipairs(passed) do
        local d = st.stream.stream_descriptor
        seen[(d.namespace or "") .. "/" .. d.name] = st.stream.stream_state
      end
      assert.equal(3, seen["/items"].last_id)
      assert.equal(1, seen["__faros__/__noop__"].v)
      assert.equal(2, seen["__faros_shared_state__/__stream_freshness_state"].v)
      assert.equal(3, seen["other/items"].v)
    end)

    it("stores a destination's confirmed states by (namespace, name) and passes them back straight through", function()
      local out = dir .. "/state_in.json"
      local extra = { noop_state("__noop__", "__faros__", 1), noop_state("items", "other", 3) }
      local src = stateful(dir, { records = 3, extra_states = extra, state_out = out })
      src:select_all_streams()
      local dest = echoing(dir)
      local wr = dest:write(src, { cache = false, state_cache = cache })
      assert.equal(3, wr.confirmed_states)
      assert.same({}, wr.warnings)
      assert.equal(3, #cache:get_destination_state("bad-destination", "source-stateful"))
      dest:write(src, { cache = false, state_cache = cache })
      local passed = json.decode(H.read_file(out))
      assert.equal(3, #passed)
      local ids = received_ids(dir .. "/received.jsonl")
      assert.same({ 1, 2, 3, 4, 5, 6 }, ids)
    end)

    for _, path in ipairs({ "straight", "cached" }) do
      it("confirms states a destination echoes in its own spelling, with its own counts (" .. path .. ")", function()
        local src = stateful(dir, { records = 12, state_every = 4 })
        src:select_all_streams()
        local dest = ab.get_destination("bad-destination", { local_executable = H.fixture_executable(dir, "bad_destination"),
          config = { out = dir .. "/received.jsonl", mode = "respell" } })
        local wr = dest:write(src, path == "straight" and { cache = false, state_cache = cache } or { cache = cache })
        assert.same({}, wr.warnings)
        assert.equal(path == "straight" and 3 or 1, wr.confirmed_states)
        -- what is stored is the state sent, not the destination's spelling of it
        local texts = cache:_db():get_destination_states("bad-destination")
        assert.equal(1, #texts)
        assert.matches('"last_id":12[,}]', texts[1])
      end)

      it("confirms repeated identical states one echo each, in order, with no warning (" .. path .. ")", function()
        local src = stateful(dir, { records = 12, state_every = 4, ["repeat"] = 3 })
        src:select_all_streams()
        local dest = echoing(dir)
        local opts = path == "straight" and { cache = false, state_cache = cache } or { cache = cache }
        local wr = dest:write(src, opts)
        assert.equal(12, wr.processed_records)
        assert.same({}, wr.warnings)
        assert.equal(path == "straight" and 9 or 1, wr.confirmed_states)
        assert.equal(12, wr:get_state_provider().items.stream.stream_state.last_id)
      end)
    end
  end)
end)

-- The state rules are C's (cache.h): the pump hands each STATE's key,
-- disposition, claimed count and own text to on_message.
describe("state rules in the pump", function()
  local sqlite = require "airbyte.sqlite"
  local proc, pump = require "airbyte.process", require "airbyte.pump"

  local function source_printing(dir, lines)
    H.write_file(dir .. "/lines.jsonl", table.concat(lines, "\n") .. "\n")
    return assert(proc.spawn{ argv = { "cat", dir .. "/lines.jsonl" } })
  end

  it("decides commit, hold and skip, checks counts, and passes the state's own text", function()
    local dir = H.tmpdir()
    local db = assert(sqlite.open(dir .. "/c.sqlite"))
    local schema = '{"properties": {"id": {"type": "integer"}}}'
    local kept = db:stream_open{ source = "s", stream = "kept", schema = schema, strategy = "append" }
    local swapped = db:stream_open{ source = "s", stream = "swapped", schema = schema, strategy = "replace" }
    local rec = '{"type":"RECORD","record":{"stream":"%s","data":{"id":1},"emitted_at":1}}'
    local p = source_printing(dir, {
      rec:format("kept"), rec:format("kept"),
      '{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"kept"}},'
        .. '"sourceStats":{"recordCount":2.0}}}',
      rec:format("swapped"),
      '{"type":"STATE","state":{"type":"STREAM", "stream":{"stream_descriptor":{"name":"swapped"}},'
        .. '"sourceStats":{"recordCount":5}}}',
      '{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{}}}}',
      '{"type":"STATE","state":{"data":{}},"redactedConfig":{"x":1}}',
    })
    local seen = {}
    db:begin()
    pump.to_cache(p, { streams = { kept = kept, swapped = swapped },
      on_message = function(msg, since, type, name, ns, disposition, expected, text)
        seen[#seen + 1] = { since, type, name, ns, disposition, expected, text }
      end })
    db:rollback()
    p:wait()
    assert.same({ 2, "STREAM", "kept", nil, "commit", nil,
                  '{"type":"STREAM","stream":{"stream_descriptor":{"name":"kept"}},"sourceStats":{"recordCount":2.0}}' },
                seen[1])
    assert.same({ 1, "STREAM", "swapped", nil, "hold_stream", 5,
                  '{"type":"STREAM", "stream":{"stream_descriptor":{"name":"swapped"}},"sourceStats":{"recordCount":5}}' },
                seen[2])
    assert.equal("hold_global", seen[3][5])
    assert.equal("_GLOBAL", seen[3][3])
    assert.equal("skip", seen[4][5])
    assert.equal(4, #seen)
    kept:close(); swapped:close(); db:close()
    H.rm_rf(dir)
  end)
end)

-- The write path matches echoes with C's state identity (sqlite.state_identity):
-- no state is decoded in Lua, however many a source sends. json.decode and
-- the decoded fields of a STATE message are counted while the write runs.
describe("echo matching without decoding states", function()
  local dir, cache
  before_each(function() dir, cache = H.open_test_cache() end)
  after_each(function() H.close_test_cache(dir, cache) end)

  local function counting(f)
    local decode, n = json.decode, 0
    local mt = debug.getregistry()["airbyte.Message"]
    local index = mt.__index
    local cheap = { type = true, line = true, payload_span = true }
    json.decode = function(s, ...)
      if type(s) == "string" and s:find('"last_id"', 1, true) then n = n + 1 end
      return decode(s, ...)
    end
    mt.__index = function(m, k)
      if not cheap[k] and index(m, "type") == "STATE" then n = n + 1 end
      return index(m, k)
    end
    local ok, r = pcall(f)
    json.decode, mt.__index = decode, index
    assert(ok, r)
    return r, n
  end

  for _, case in ipairs({ { "straight", { cache = false } }, { "straight, prefixed", { cache = false, stream_prefix = "p_" } },
                          { "cached", {} }, { "cached, prefixed", { stream_prefix = "p_" } } }) do
    it("confirms 200 states with no state decoded (" .. case[1] .. ")", function()
      local src = stateful(dir, { records = 200, state_every = 1 })
      src:select_all_streams()
      local opts = { state_cache = cache, cache = case[2].cache == false and false or cache,
                     stream_prefix = case[2].stream_prefix }
      local cached = opts.cache ~= false
      local input = cached and src:read{ cache = cache } or src
      local wr, decoded = counting(function() return echoing(dir):write(input, opts) end)
      assert.equal(0, decoded)
      assert.same({}, wr.warnings)
      assert.equal(cached and 1 or 200, wr.confirmed_states)
      assert.equal(200, wr:get_state_provider().items.stream.stream_state.last_id)
    end)
  end
end)
