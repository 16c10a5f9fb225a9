-- Classification of every Airbyte message type, from the reference examples
-- and the real fixtures, and what happens to lines that are not messages.
local H = require "helper"
local proc = require "airbyte.process"
local json = require "airbyte.json"

local function parse(line)
  return proc.parse(line)
end

describe("protocol", function()
  it("classifies every message type of the schema", function()
    local cases = {
      RECORD = '{"type":"RECORD","record":{"stream":"users","data":{"id":1,"name":"Reda"},"emitted_at":1669682107441}}',
      STATE = '{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"users"},"stream_state":{"c":1}},"sourceStats":{"recordCount":1.0}}}',
      LOG = '{"type":"LOG","log":{"level":"INFO","message":"hello"}}',
      SPEC = '{"type":"SPEC","spec":{"connectionSpecification":{"type":"object"}}}',
      CONNECTION_STATUS = '{"type":"CONNECTION_STATUS","connectionStatus":{"status":"SUCCEEDED"}}',
      CATALOG = '{"type":"CATALOG","catalog":{"streams":[]}}',
      TRACE = '{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1700000000000.0,"stream_status":{"stream_descriptor":{"name":"users","namespace":null},"status":"COMPLETE"}}}',
      CONTROL = '{"type":"CONTROL","control":{"type":"CONNECTOR_CONFIG","emitted_at":1.0,"connectorConfig":{"config":{"k":1}}}}',
      DESTINATION_CATALOG = '{"type":"DESTINATION_CATALOG","destination_catalog":{"operations":[]}}',
    }
    for typ, line in pairs(cases) do
      local msg, why = parse(line)
      assert.is_truthy(msg, typ .. ": " .. tostring(why))
      assert.equal(typ, msg.type)
    end
  end)

  it("exposes record fields without decoding, and decodes the rest on demand", function()
    local msg = parse('{"type":"RECORD","record":{"namespace":"pub","stream":"us\\u00e9rs","data":{"id":99999999999999999999,"n":1,"f":1.5},"emitted_at":1669682107441}}')
    assert.equal("usérs", msg.stream)
    assert.equal("pub", msg.namespace)
    assert.equal(1669682107441, msg.emitted_at)
    assert.equal("integer", math.type(msg.emitted_at))
    assert.equal("integer", math.type(msg.data.n))
    assert.equal("float", math.type(msg.data.f))
    assert.equal("99999999999999999999", tostring(msg.data.id))
    assert.equal('{"f":1.5,"id":99999999999999999999,"n":1}', json.encode(msg.data))
  end)

  it("treats non-messages as log lines", function()
    local bad = {
      "plain text from a connector",
      "[1,2,3]",
      '{"type":"NOPE","nope":{}}',
      '{"type":"RECORD","record":{"stream":"s"}}',            -- no data
      '{"type":"RECORD","record":{"stream":"s","data":[]}}',  -- data not an object
      '{"type":"STATE"}',                                      -- no payload
      '{"type":"RECORD","record":{"stream":"s","data":{}}',    -- truncated
      '{"type":"LOG","log":{"level":"INFO","message":"\255"}}', -- invalid UTF-8
      '{"type":"LOG","log":{"level":"INFO","message":"a"}} trailing',
    }
    for _, line in ipairs(bad) do
      local msg, why = parse(line)
      assert.is_nil(msg, line)
      assert.is_string(why)
    end
  end)

  it("keeps log lines out of the message stream but in the log", function()
    local dir = H.tmpdir()
    local log = dir .. "/conn.log"
    local p = assert(proc.spawn{ argv = H.fixture_connector("printer.lua",
      "hello, I am not JSON",
      '{"type":"LOG","log":{"level":"WARN","message":"careful"}}',
      '{"type":"RECORD","record":{"stream":"s","data":{"a":1},"emitted_at":1}}',
      "stderr:oops"), name = "mixed", log_file = log })
    local types = {}
    for msg in p:messages() do types[#types + 1] = msg.type end
    assert.equal(0, p:wait())
    assert.same({ "LOG", "RECORD" }, types)
    local st = p:stats()
    assert.equal(2, st.log_lines)   -- the text line and the LOG message
    local text = H.read_file(log)
    assert.matches("hello, I am not JSON", text)
    assert.matches("%[WARN%] careful", text)
    assert.matches("%[stderr%] oops", text)
    H.rm_rf(dir)
  end)

  it("returns log lines when asked", function()
    local p = assert(proc.spawn{ argv = H.fixture_connector("printer.lua", "not json") })
    local got
    for msg in p:messages{ logs = true } do got = msg end
    assert.equal("LOG_LINE", got.type)
    assert.equal("not json", got.line)
    p:wait()
  end)

  it("classifies the reference examples of protocol.md", function()
    if not H.need_shared(pending) then return end
    local text = H.read_file(H.shared .. "/reference/protocol.md")
    local n = 0
    for row in text:gmatch("[^\n]+") do
      local line = row:match('^({"type":"[A-Z_]+".*})$') or row:match('`({"type":"[A-Z_]+".*})`')
      if line then
      local msg, why = parse(line)
      assert.is_truthy(msg, line .. " : " .. tostring(why))
      assert.equal(line:match('^{"type":"([A-Z_]+)"'), msg.type)
      n = n + 1
      end
    end
    assert.is_true(n >= 5)
  end)

  it("classifies every line of the real message fixtures", function()
    if not H.need_shared(pending) then return end
    local files = {
      "/fixtures/destination-duckdb/tests/integration_tests/messages.jsonl",
      "/fixtures/destinations-v2-typing-deduping/base-typing-deduping-test/sync1_messages.jsonl",
      "/fixtures/destinations-v2-typing-deduping/java-cdk-typing-deduping/dat/sync1_messages.jsonl",
    }
    local seen = {}
    for _, f in ipairs(files) do
      -- these files carry // comment lines, and records without the
      -- required "stream" (their test harness adds it): both are log lines
      local comments = 0
      for row in H.read_file(H.shared .. f):gmatch("[^\n]+") do
        if row:match("^//") or (row:match('"RECORD"') and not row:match('"stream"')) then
          comments = comments + 1
        end
      end
      -- through a real child process, as a connector's output would come
      local p = assert(proc.spawn{ argv = { "cat", H.shared .. f }, name = "cat" })
      for msg in p:messages() do
        seen[msg.type] = (seen[msg.type] or 0) + 1
        if msg.type == "RECORD" then
          assert.is_string(msg.stream)
          assert.is_table(msg.data)
        end
      end
      assert.equal(comments, p:stats().log_lines, f)
      p:wait()
    end
    assert.is_true((seen.RECORD or 0) >= 1)
  end)

  it("classifies the records of source-faker's expected output", function()
    if not H.need_shared(pending) then return end
    local text = H.read_file(H.shared .. "/fixtures/source-faker/integration_tests/expected_records.jsonl")
    local n = 0
    for line in text:gmatch("[^\n]+") do
      local obj = json.decode(line)
      -- the fixture holds bare records: wrap them as the connector prints them
      local msg = assert(parse(json.encode({ type = "RECORD", record = obj })))
      assert.equal("RECORD", msg.type)
      assert.equal(obj.stream, msg.stream)
      n = n + 1
    end
    assert.is_true(n > 0)
  end)

  it("builds SPEC and CATALOG messages from the connector fixtures", function()
    if not H.need_shared(pending) then return end
    local spec = H.read_file(H.shared .. "/fixtures/source-faker/source_faker/spec.json")
    local msg = assert(parse('{"type":"SPEC","spec":' .. spec:gsub("\n", "") .. '}'))
    assert.equal("SPEC", msg.type)
    assert.is_table(msg.spec.connectionSpecification)
    local cat = json.decode(H.read_file(H.shared .. "/fixtures/source-faker/integration_tests/configured_catalog.json"))
    local streams = {}
    for i, s in ipairs(cat.streams) do streams[i] = s.stream end
    local cmsg = assert(parse(json.encode({ type = "CATALOG", catalog = { streams = streams } })))
    assert.equal("CATALOG", cmsg.type)
    assert.equal(#streams, #cmsg.catalog.streams)
  end)
end)

describe("stream prefix", function()
  local pump = require "airbyte.pump"

  it("renames every stream name a message carries, and back", function()
    local lines = {
      '{"type":"RECORD","record":{"data":{"stream":"not me"},"stream":"builds","emitted_at":1}}',
      '{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"builds","namespace":"ns"},"stream_state":{"name":"x"}}}}',
      '{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{},"stream_states":['
        .. '{"stream_descriptor":{"name":"a"},"stream_state":{}},{"stream_descriptor":{"name":"b\\u00e9"},"stream_state":{}}]}}}',
      '{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":"jobs"},"status":"COMPLETE"}}}',
      '{"type":"TRACE","trace":{"type":"ESTIMATE","emitted_at":1,"estimate":{"name":"jobs","type":"STREAM","row_estimate":3}}}',
    }
    local want = {
      { stream = 'my"pre__builds', data_stream = "not me" },
    }
    local rec = json.decode(pump.prefix_streams(lines[1], 'my"pre__'))
    assert.equal(want[1].stream, rec.record.stream)
    assert.equal("not me", rec.record.data.stream)          -- data is never renamed
    local st = json.decode(pump.prefix_streams(lines[2], "p_")).state
    assert.equal("p_builds", st.stream.stream_descriptor.name)
    assert.equal("ns", st.stream.stream_descriptor.namespace)
    assert.equal("x", st.stream.stream_state.name)
    local g = json.decode(pump.prefix_streams(lines[3], "p_")).state.global.stream_states
    assert.equal("p_a", g[1].stream_descriptor.name)
    assert.equal("p_b\u{e9}", g[2].stream_descriptor.name)
    assert.equal("p_jobs", json.decode(pump.prefix_streams(lines[4], "p_")).trace.stream_status.stream_descriptor.name)
    assert.equal("p_jobs", json.decode(pump.prefix_streams(lines[5], "p_")).trace.estimate.name)
    for _, l in ipairs(lines) do
      assert.equal(l, pump.unprefix_streams(pump.prefix_streams(l, 'my"pre__'), 'my"pre__'))
    end
    -- an echo that spells the prefix with other escapes still loses it
    local echo = '{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"\\u0070_builds"}}}}'
    assert.equal("builds", json.decode(pump.unprefix_streams(echo, "p_")).state.stream.stream_descriptor.name)
    -- names without the prefix, and lines that are not messages, stay as they are
    assert.equal(lines[2], pump.unprefix_streams(lines[2], "zz"))
    assert.equal("not json", pump.prefix_streams("not json", "p_"))
  end)

  it("prefixes the streams a destination receives, straight through and from a cache, hooks included", function()
    local dir = H.tmpdir()
    local ab = require "airbyte"
    local src = ab.get_source("source-faker", { config = { count = 5, seed = 1 } })
    src:select_streams({ "users" })
    local dest = ab.get_destination("destination-local-json", { config = { destination_path = dir .. "/out" } })
    local wr = dest:write(src, { cache = false, state_cache = false, stream_prefix = "pre_",
      hooks = { users = function(u) return { id = u.id, renamed = true } end } })
    assert.equal(5, wr.processed_records)
    local n = 0
    for line in io.lines(dir .. "/out/_airbyte_raw_pre_users.jsonl") do
      local d = json.decode(line)._airbyte_data
      assert.is_true(d.renamed)
      n = n + 1
    end
    assert.equal(5, n)
    local cache = ab.SQLiteCache{ db_path = dir .. "/c.sqlite" }
    assert.equal(5, dest:write(src, { cache = cache, stream_prefix = "cached_" }).processed_records)
    n = 0
    for _ in io.lines(dir .. "/out/_airbyte_raw_cached_users.jsonl") do n = n + 1 end
    assert.equal(5, n)
    assert.same({ "users" }, cache.streams)                  -- the cache keeps the source's names
    cache:close()
    H.rm_rf(dir)
  end)
end)
