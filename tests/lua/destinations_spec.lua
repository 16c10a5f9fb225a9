-- The built-in destinations (local-json, csv, sqlite, dev-null) run as real
-- child processes (`luabyte connector NAME write ...`), and the kit's
-- destination helpers in-process.
local H = require "helper"
local json = require "airbyte.json"
local proc = require "airbyte.process"

local FILE_DESTS = { "destination-local-json", "destination-csv", "destination-sqlite" }

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local function lines_of(text)
  local out = {}
  for line in (text .. "\n"):gmatch("(.-)\n") do
    if line ~= "" then out[#out + 1] = line end
  end
  return out
end

local function messages_of(text, kind)
  local out = {}
  for _, line in ipairs(lines_of(text)) do
    local ok, m = pcall(json.decode, line)
    if ok and type(m) == "table" and (kind == nil or m.type == kind) then
      out[#out + 1] = { msg = m, line = line }
    end
  end
  return out
end

local function write_json(path, value)
  H.write_file(path, json.encode(value))
  return path
end

-- A configured catalog: { {name, destination_sync_mode [, namespace]}, ... }
local function catalog(streams)
  local list = {}
  for i, s in ipairs(streams) do
    list[i] = {
      stream = { name = s[1], namespace = s[3], json_schema = { type = "object" },
                 supported_sync_modes = json.array { "full_refresh", "incremental" } },
      sync_mode = "full_refresh",
      destination_sync_mode = s[2] or "append",
    }
  end
  return { streams = list }
end

local function record(stream, data, emitted_at, namespace)
  return ('{"type":"RECORD","record":{"stream":"%s",%s"data":%s,"emitted_at":%d}}'):format(
    stream, namespace and ('"namespace":"' .. namespace .. '",') or "", data, emitted_at or 1700000000000)
end

local function stream_state(stream, blob, extra)
  return ('{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"%s"},"stream_state":%s}%s}}')
    :format(stream, blob, extra or "")
end

local function status(stream, st)
  return ('{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1700000000000.0,'
    .. '"stream_status":{"stream_descriptor":{"name":"%s","namespace":null},"status":"%s"}}}'):format(stream, st)
end

local function stdin_of(list)
  return table.concat(list, "\n") .. "\n"
end

-- Runs `luabyte connector NAME ARGS...`; returns stdout, exit code, stderr tail.
local function connector(name, args, opts)
  opts = opts or {}
  local argv = { H.exe, "connector", name }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local out, code, _, p = H.run(argv, { stdin = opts.stdin, cwd = opts.cwd, timeout = 60000 })
  return out, code, table.concat(p:tail() or {}, "\n")
end

-- The config for a destination writing under dir.
local function config_for(name, dir, extra)
  local c = { destination_path = name == "destination-sqlite" and (dir .. "/out/dest.sqlite") or (dir .. "/out") }
  for k, v in pairs(extra or {}) do c[k] = v end
  return write_json(dir .. "/config.json", c)
end

local function run_write(name, dir, streams, input, opts)
  opts = opts or {}
  local cfg = config_for(name, dir, opts.config)
  local cat = write_json(dir .. "/catalog.json", catalog(streams))
  return connector(name, { "write", "--config", cfg, "--catalog", cat }, { stdin = stdin_of(input), cwd = opts.cwd })
end

local function sqlite_rows(path, stream)
  local sqlite = require "airbyte.sqlite"
  local db = assert(sqlite.open(path))
  local ok, rows = pcall(db.query, db,
    'SELECT _airbyte_ab_id, _airbyte_emitted_at, _airbyte_data FROM "_airbyte_raw_' .. stream .. '" ORDER BY rowid')
  db:close()
  if not ok then return nil, rows end
  return rows
end

-- What a destination holds for a stream: a list of { id, emitted_at, data }
-- (data as the text written), or nil when there is no file/table.
local function stored(name, dir, stream)
  if name == "destination-sqlite" then
    local rows = sqlite_rows(dir .. "/out/dest.sqlite", stream)
    if not rows then return nil end
    local out = {}
    for i, r in ipairs(rows) do
      out[i] = { id = r._airbyte_ab_id, emitted_at = r._airbyte_emitted_at, data = r._airbyte_data }
    end
    return out
  end
  local ext = name == "destination-csv" and ".csv" or ".jsonl"
  local f = io.open(dir .. "/out/_airbyte_raw_" .. stream .. ext, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local out = {}
  for i, line in ipairs(lines_of(text)) do
    if name == "destination-csv" then
      if i == 1 then
        assert.equal("_airbyte_ab_id,_airbyte_emitted_at,_airbyte_data", line)
      else
        local id, at, data = line:match('^([^,]*),([^,]*),"(.*)"$')
        assert.truthy(id, "bad csv row: " .. line)
        out[#out + 1] = { id = id, emitted_at = at, data = data:gsub('""', '"') }
      end
    else
      local row = json.decode(line)
      local data = line:match('"_airbyte_data":(.*)}$')
      out[#out + 1] = { id = row._airbyte_ab_id, emitted_at = row._airbyte_emitted_at, data = data }
    end
  end
  return out
end

local function data_of(rows)
  local out = {}
  for i, r in ipairs(rows or {}) do out[i] = r.data end
  return out
end

local function ls(dir)
  local names = {}
  local p = io.popen("ls -A " .. H.shell_quote(dir) .. " 2>/dev/null")
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  table.sort(names)
  return names
end

---------------------------------------------------------------------------
-- The file/table destinations
---------------------------------------------------------------------------

for _, name in ipairs(FILE_DESTS) do
  describe(name, function()
    local dir
    before_each(function() dir = H.tmpdir() end)
    after_each(function() H.rm_rf(dir) end)

    it("prints its spec with the sync modes it supports", function()
      local out, code = connector(name, { "spec" })
      assert.equal(0, code)
      local spec = json.decode(out).spec
      assert.equal("object", spec.connectionSpecification.type)
      assert.same({ "destination_path" }, spec.connectionSpecification.required)
      assert.same({ "overwrite", "append" }, spec.supported_destination_sync_modes)
    end)

    it("checks a writable destination_path and reports a bad one", function()
      local out, code = connector(name, { "check", "--config", config_for(name, dir) })
      assert.equal(0, code)
      assert.equal("SUCCEEDED", json.decode(out).connectionStatus.status)
      -- a path below a regular file can never be created
      H.write_file(dir .. "/file", "x")
      local bad = write_json(dir .. "/bad.json", { destination_path = dir .. "/file/sub/x.db" })
      out, code = connector(name, { "check", "--config", bad })
      assert.equal(0, code)
      local st = json.decode(lines_of(out)[#lines_of(out)]).connectionStatus
      assert.equal("FAILED", st.status)
      -- a config the spec rejects
      local extra = write_json(dir .. "/extra.json", { destination_path = dir, bogus = 1 })
      out = connector(name, { "check", "--config", extra })
      assert.equal("FAILED", json.decode(lines_of(out)[#lines_of(out)]).connectionStatus.status)
    end)

    it("writes records and echoes each STATE after them, in order, with destinationStats", function()
      local input = {
        record("users", '{"id":1,"big":123456789012345678901234567890,"name":"a"}'),
        "this line is not JSON",
        record("ghosts", '{"id":99}'),                       -- not in the catalog
        record("users", '{"id":2,"nested":{"s":"}{"},"arr":[1,2.5,null]}'),
        record("orders", '{"id":10}'),
        stream_state("users", '{"cursor":2}', ',"sourceStats":{"recordCount":2.0}'),
        '{"type":"LOG","log":{"level":"INFO","message":"hello"}}',
        record("orders", '{"id":11}'),
        stream_state("orders", '{"cursor":11}'),
        record("users", '{"id":3}'),
        '{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{"lsn":5},"stream_states":[]}},"id":42}',
        status("users", "COMPLETE"),
        status("orders", "COMPLETE"),
      }
      local out, code, err = run_write(name, dir, { { "users", "overwrite" }, { "orders", "append" } }, input)
      assert.equal(0, code, err)
      local states = messages_of(out, "STATE")
      assert.equal(3, #states)
      -- the lines come back byte for byte, destinationStats added at the end of state
      assert.equal(stream_state("users", '{"cursor":2}',
        ',"sourceStats":{"recordCount":2.0},"destinationStats":{"recordCount":2.0}'), states[1].line)
      assert.equal(stream_state("orders", '{"cursor":11}', ',"destinationStats":{"recordCount":2.0}'), states[2].line)
      assert.equal('{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{"lsn":5},"stream_states":[]},'
        .. '"destinationStats":{"recordCount":5.0}},"id":42}', states[3].line)
      -- the non-JSON line and the unknown stream were reported, not fatal
      assert.matches("not an Airbyte message", out)
      assert.matches("ghosts", out)
      local users = stored(name, dir, "users")
      assert.same({ '{"id":1,"big":123456789012345678901234567890,"name":"a"}',
                    '{"id":2,"nested":{"s":"}{"},"arr":[1,2.5,null]}', '{"id":3}' }, data_of(users))
      assert.same({ '{"id":10}', '{"id":11}' }, data_of(stored(name, dir, "orders")))
      assert.is_nil(stored(name, dir, "ghosts"))
      -- ids are distinct UUID v4s; emitted_at is the record's
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", users[1].id)
      assert.not_equal(users[1].id, users[2].id)
      if name == "destination-sqlite" then
        assert.equal("2023-11-14T22:13:20.000+00:00", users[1].emitted_at)
      else
        assert.equal("1700000000000", tostring(users[1].emitted_at))
      end
    end)

    it("overwrites or appends by destination_sync_mode", function()
      local function run(mode, ids)
        local input = {}
        for _, id in ipairs(ids) do input[#input + 1] = record("s", '{"id":' .. id .. '}') end
        input[#input + 1] = stream_state("s", '{"n":' .. #ids .. '}')
        input[#input + 1] = status("s", "COMPLETE")
        local out, code, err = run_write(name, dir, { { "s", mode } }, input)
        assert.equal(0, code, err)
        assert.equal(1, #messages_of(out, "STATE"))
      end
      run("overwrite", { 1, 2 })
      assert.same({ '{"id":1}', '{"id":2}' }, data_of(stored(name, dir, "s")))
      run("append", { 3 })
      run("append_dedup", { 4 })                -- written as append
      assert.same({ '{"id":1}', '{"id":2}', '{"id":3}', '{"id":4}' }, data_of(stored(name, dir, "s")))
      run("overwrite", { 5 })
      assert.same({ '{"id":5}' }, data_of(stored(name, dir, "s")))
      -- nothing temporary is left behind
      if name == "destination-sqlite" then
        local sqlite = require "airbyte.sqlite"
        local db = assert(sqlite.open(dir .. "/out/dest.sqlite"))
        local rows = db:query("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%tmp%'")
        db:close()
        assert.same({}, rows)
      else
        local ext = name == "destination-csv" and ".csv" or ".jsonl"
        assert.same({ "_airbyte_raw_s" .. ext }, ls(dir .. "/out"))
      end
    end)

    it("overwrites at the end of input when no stream status came", function()
      run_write(name, dir, { { "s", "overwrite" } }, { record("s", '{"id":1}'), status("s", "COMPLETE") })
      local _, code = run_write(name, dir, { { "s", "overwrite" } }, { record("s", '{"id":2}') })
      assert.equal(0, code)
      assert.same({ '{"id":2}' }, data_of(stored(name, dir, "s")))
    end)

    it("keeps the old data when an overwritten stream ends INCOMPLETE", function()
      run_write(name, dir, { { "s", "overwrite" } }, { record("s", '{"id":1}'), status("s", "COMPLETE") })
      local out, code = run_write(name, dir, { { "s", "overwrite" }, { "t", "overwrite" } }, {
        record("s", '{"id":2}'),
        record("t", '{"id":7}'),
        stream_state("s", '{"n":1}'),
        status("s", "INCOMPLETE"),
        record("s", '{"id":3}'),                  -- after INCOMPLETE: dropped
        stream_state("s", '{"n":2}'),
        status("t", "COMPLETE"),
      })
      assert.equal(0, code)
      assert.same({ '{"id":1}' }, data_of(stored(name, dir, "s")))
      assert.same({ '{"id":7}' }, data_of(stored(name, dir, "t")))
      local states = messages_of(out, "STATE")
      assert.equal(2, #states)
      assert.equal(1, states[1].msg.state.destinationStats.recordCount)
      assert.equal(0, states[2].msg.state.destinationStats.recordCount)
      assert.equal(1, states[2].msg.state.destinationStats.rejectedRecordCount)
    end)

    it("keeps the old data when the write fails", function()
      run_write(name, dir, { { "s", "overwrite" } }, { record("s", '{"id":1}'), status("s", "COMPLETE") })
      -- an unsupported sync mode fails the write after the first stream started
      local out, code = run_write(name, dir, { { "s", "overwrite" }, { "u", "soft_delete" } },
        { record("s", '{"id":2}') })
      assert.equal(1, code)
      assert.matches('"failure_type":"config_error"', out)
      assert.same({ '{"id":1}' }, data_of(stored(name, dir, "s")))
      if name ~= "destination-sqlite" then
        local ext = name == "destination-csv" and ".csv" or ".jsonl"
        assert.same({ "_airbyte_raw_s" .. ext }, ls(dir .. "/out"))
      end
      -- a destination_path that cannot exist
      H.write_file(dir .. "/file", "x")
      local cat = write_json(dir .. "/catalog.json", catalog { { "s", "overwrite" } })
      local bad = write_json(dir .. "/bad.json", { destination_path = dir .. "/file/sub/x.db" })
      out, code = connector(name, { "write", "--config", bad, "--catalog", cat },
        { stdin = stdin_of { record("s", '{"id":3}') } })
      assert.equal(1, code)
      assert.matches('"type":"TRACE"', out)
      assert.same({ '{"id":1}' }, data_of(stored(name, dir, "s")))
    end)

    it("has made the records durable when it echoes a state, and a killed write keeps the old data", function()
      run_write(name, dir, { { "a", "overwrite" } }, { record("a", '{"id":0}'), status("a", "COMPLETE") })
      local cfg = config_for(name, dir)
      local cat = write_json(dir .. "/catalog.json", catalog { { "a", "overwrite" }, { "b", "append" } })
      local p = assert(proc.spawn { argv = { H.exe, "connector", name, "write", "--config", cfg, "--catalog", cat },
                                    stdin = true, timeout = 60000 })
      p:write(stdin_of { record("a", '{"id":1}'), record("b", '{"id":1}'), record("b", '{"id":2}'),
                         stream_state("b", '{"n":2}') })
      local line = p:read_line()
      assert.truthy(line and line:find('"STATE"', 1, true), line)
      -- the process still runs and waits for input: what it echoed the
      -- state for is in the file (committed, for SQLite) already
      assert.same({ '{"id":1}', '{"id":2}' }, data_of(stored(name, dir, "b")))
      assert.same({ '{"id":0}' }, data_of(stored(name, dir, "a")))
      p:kill(9)
      p:wait()
      assert.same({ '{"id":0}' }, data_of(stored(name, dir, "a")))
      assert.same({ '{"id":1}', '{"id":2}' }, data_of(stored(name, dir, "b")))
    end)

    it("copes with lines longer than its read buffer and Python-style spacing", function()
      local long = string.rep("x", 200000)
      local input = {
        record("s", '{"long":"' .. long .. '"}'),
        '{"type": "RECORD", "record": {"stream": "s", "emitted_at": 5, "data": { "a": 1, "b": [1, 2] }}}',
        '{"type": "STATE", "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": "s"}, "stream_state": {}}}}',
      }
      local out, code = run_write(name, dir, { { "s", "append" } }, input)
      assert.equal(0, code)
      local states = messages_of(out, "STATE")
      assert.equal(1, #states)
      assert.equal(2, states[1].msg.state.destinationStats.recordCount)
      assert.same({ '{"long":"' .. long .. '"}', '{ "a": 1, "b": [1, 2] }' }, data_of(stored(name, dir, "s")))
    end)
  end)
end

describe("destination-csv options", function()
  it("writes with the configured delimiter and quotes the data", function()
    local dir = H.tmpdir()
    local _, code = run_write("destination-csv", dir, { { "s", "append" } },
      { record("s", '{"a":"x;y","q":"say \\"hi\\""}') }, { config = { delimiter = "Semicolon: ;" } })
    assert.equal(0, code)
    local lines = lines_of(H.read_file(dir .. "/out/_airbyte_raw_s.csv"))
    assert.equal("_airbyte_ab_id;_airbyte_emitted_at;_airbyte_data", lines[1])
    assert.matches('^[%x%-]+;1700000000000;"{""a"":""x;y"",""q"":""say \\""hi\\""""}"$', lines[2])
    H.rm_rf(dir)
  end)
end)

---------------------------------------------------------------------------
-- Reference configs (../shared fixtures)
---------------------------------------------------------------------------

describe("destinations with the reference fixtures", function()
  local fixtures = H.shared .. "/fixtures"

  it("destination-sqlite accepts the fixture config and catalog", function()
    if not H.need_shared(pending) then return end
    local dir = H.tmpdir()
    local cfg = fixtures .. "/destination-sqlite/integration_tests/config.json"
    local cat = fixtures .. "/destination-sqlite/integration_tests/configured_catalog.json"
    local msgs = H.read_file(fixtures .. "/destination-duckdb/tests/integration_tests/messages.jsonl")
    local out, code = connector("destination-sqlite", { "check", "--config", cfg }, { cwd = dir })
    assert.equal(0, code)
    assert.equal("SUCCEEDED", json.decode(out).connectionStatus.status)
    out, code = connector("destination-sqlite", { "write", "--config", cfg, "--catalog", cat },
      { stdin = msgs .. stream_state("airbyte_acceptance_table", "{}") .. "\n", cwd = dir })
    assert.equal(0, code, out)
    local rows = assert(sqlite_rows(dir .. "/sqlite.db", "airbyte_acceptance_table"))
    assert.equal(1, #rows)
    assert.same({ column1 = "test", column2 = 222, column3 = "2022-06-20T18:56:18", column4 = 33.33,
                  column5 = { 1, 2, json.null } }, json.decode(rows[1]._airbyte_data))
    assert.equal("2022-10-02T10:06:38.575+00:00", rows[1]._airbyte_emitted_at)
    assert.equal(1, json.decode(lines_of(out)[1]).state.destinationStats.recordCount)
    H.rm_rf(dir)
  end)

  it("local-json, csv and sqlite specs cover the reference specs", function()
    if not H.need_shared(pending) then return end
    local cdk = require "airbyte.cdk"
    local refs = {
      ["destination-local-json"] = { "destination-local-json/spec.json", { destination_path = "/json_data" } },
      ["destination-csv"] = { "destination-csv/spec.json", { destination_path = "/local", delimiter = "Tab: \\t" } },
      ["destination-sqlite"] = { "destination-sqlite/destination_sqlite/spec.json",
                                 json.decode(H.read_file(fixtures .. "/destination-sqlite/integration_tests/config.json")) },
    }
    for name, ref in pairs(refs) do
      local theirs = json.decode(H.read_file(fixtures .. "/" .. ref[1])).connectionSpecification
      local ours = require("connectors." .. name).spec.connectionSpecification
      for prop in pairs(theirs.properties) do
        assert.truthy(ours.properties[prop], name .. " lacks " .. prop)
      end
      assert.same(theirs.required, ours.required)
      assert.is_nil(cdk.validate(ours, ref[2]), name)
    end
  end)
end)

---------------------------------------------------------------------------
-- destination-dev-null
---------------------------------------------------------------------------

describe("destination-dev-null", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  local function dev_null(input, raw)
    local cfg = write_json(dir .. "/c.json", {})
    local cat = write_json(dir .. "/k.json", catalog { { "users" }, { "orders" } })
    return connector("destination-dev-null", { "write", "--config", cfg, "--catalog", cat },
      { stdin = raw or stdin_of(input) })
  end

  it("prints a spec and accepts any config, such as destination-e2e-test's", function()
    local out, code = connector("destination-dev-null", { "spec" })
    assert.equal(0, code)
    assert.equal("object", json.decode(out).spec.connectionSpecification.type)
    local cfg = write_json(dir .. "/c.json", { test_destination = { test_destination_type = "SILENT" } })
    out, code = connector("destination-dev-null", { "check", "--config", cfg })
    assert.equal(0, code)
    assert.equal("SUCCEEDED", json.decode(out).connectionStatus.status)
  end)

  it("echoes every state with per-stream and global counts", function()
    local input = {
      record("users", '{"id":1}'), record("users", '{"id":2}'),
      record("orders", '{"id":1}'),
      record("users", '{"id":3}', nil, "ns1"),             -- another stream: users in ns1
      "garbage {",
      '{"type": "RECORD", "record": {"stream": "orders", "data": {}}}',
      stream_state("users", "{}"),
      ('{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"users","namespace":"ns1"},'
        .. '"stream_state":{}}}}'),
      stream_state("orders", '{"x":[1,{"y":2}]}', ',"sourceStats":{"recordCount":2.0}'),
      record("users", '{"id":4}'),
      '{"type":"STATE","state":{"type":"LEGACY","data":{"users":{}}}}',
      stream_state("users", "{}"),
    }
    local out, code = dev_null(input)
    assert.equal(0, code)
    local states = messages_of(out, "STATE")
    local counts = {}
    for i, s in ipairs(states) do counts[i] = s.msg.state.destinationStats.recordCount end
    assert.same({ 2, 1, 2, 6, 1 }, counts)
    assert.equal(stream_state("orders", '{"x":[1,{"y":2}]}',
      ',"sourceStats":{"recordCount":2.0},"destinationStats":{"recordCount":2.0}'), states[3].line)
    assert.matches("not an Airbyte message", out)
  end)

  it("counts many records across read blocks, and a last line without a newline", function()
    local parts = {}
    for i = 1, 20000 do
      parts[#parts + 1] = record(i % 3 == 0 and "orders" or "users", ('{"id":%d,"pad":"%s"}'):format(i, ("p"):rep(i % 50)))
      if i % 7000 == 0 then parts[#parts + 1] = stream_state("users", '{"i":' .. i .. '}') end
    end
    local raw = table.concat(parts, "\n") .. "\n" .. stream_state("orders", "{}")   -- no final newline
    local out, code = dev_null(nil, raw)
    assert.equal(0, code)
    local states = messages_of(out, "STATE")
    assert.equal(3, #states)
    -- users: i % 3 ~= 0 in (0, 7000], (7000, 14000]; orders: all 6666 multiples of 3
    assert.equal(4667, states[1].msg.state.destinationStats.recordCount)
    assert.equal(4667, states[2].msg.state.destinationStats.recordCount)
    assert.equal(6666, states[3].msg.state.destinationStats.recordCount)
  end)
end)

---------------------------------------------------------------------------
-- Kit helpers, in-process
---------------------------------------------------------------------------

describe("cdk destination helpers", function()
  local cdk = require "airbyte.cdk"

  it("finds the data text of a record line exactly, whatever its layout", function()
    assert.equal('{"a":1}', cdk.record_data_json('{"type":"RECORD","record":{"stream":"s","data":{"a":1},"emitted_at":1}}'))
    assert.equal('{ "a" : [1, {"b": "x"}] }', cdk.record_data_json(
      '{"type": "RECORD", "record": {"stream": "s", "namespace": null, "emitted_at": 1.5e3, "data": { "a" : [1, {"b": "x"}] }}}'))
    -- the C scanner reads strings, so a brace inside one does not mislead it:
    -- the bytes stay as written (every digit, the keys' order)
    assert.equal('{"n":12345678901234567890,"k":"{"}',
      cdk.record_data_json('{"type":"RECORD","record":{"stream":"s","data":{"n":12345678901234567890,"k":"{"}}}'))
    -- "type" last, "data" before "stream": the same bytes
    assert.equal('{"a" :1}', cdk.record_data_json('{"record":{"data":{"a" :1},"stream":"s"},"type":"RECORD"}'))
    -- a line that is not a RECORD raises
    assert.has_error(function() cdk.record_data_json('{"type":"LOG","log":{}}') end)
  end)

  it("adds destinationStats to a state line, keeping everything else", function()
    local line = '{"type":"STATE","state":{"type":"LEGACY","data":{"n":99999999999999999999}},"id":1}'
    assert.equal('{"type":"STATE","state":{"type":"LEGACY","data":{"n":99999999999999999999},'
      .. '"destinationStats":{"recordCount":3.0,"rejectedRecordCount":1.0}},"id":1}',
      cdk.with_destination_stats(line, json.decode(line), 3, 1))
    local empty = '{"type":"STATE","state":{}}'
    assert.equal('{"type":"STATE","state":{"destinationStats":{"recordCount":0.0}}}',
      cdk.with_destination_stats(empty, json.decode(empty), 0))
    -- "state" before "type", white space: the bytes kept, the stats appended in the state object
    local odd = '{ "state" : { "type": "GLOBAL", "x": "}" } , "type": "STATE" }'
    assert.equal('{ "state" : { "type": "GLOBAL", "x": "}" ,"destinationStats":{"recordCount":5.0}} , "type": "STATE" }',
      cdk.with_destination_stats(odd, json.decode(odd), 5))
    -- destinationStats already there: replaced, the rest kept
    local again = '{"type":"STATE","state":{"type":"GLOBAL","destinationStats":{"recordCount":7.0,"x":1}}}'
    local res = json.decode(cdk.with_destination_stats(again, json.decode(again), 2))
    assert.same({ recordCount = 2.0, x = 1 }, res.state.destinationStats)
  end)

  it("runs write() through cdk.main with an input iterator", function()
    local seen = {}
    local dest = cdk.destination {
      spec = { connectionSpecification = { type = "object" } },
      write = function(_, _, input, _)
        local commits = 0
        input:on_commit(function() commits = commits + 1 end)
        for msg in input do
          if msg.type == "RECORD" then
            seen[#seen + 1] = msg.record.stream .. ":" .. msg.data_json .. ":" .. tostring(msg.record.data.id)
            if msg.record.data.id == 2 then
              input:reject()
              -- every field resolves for pairs(), nothing but protocol fields show
              seen[#seen + 1] = cdk.encode(msg.record)
            end
          else
            seen[#seen + 1] = "status:" .. select(3, cdk.stream_status(msg)) .. ":" .. commits
          end
        end
      end,
    }
    local dir = H.tmpdir()
    local cfg = write_json(dir .. "/c.json", {})
    local cat = write_json(dir .. "/k.json", catalog { { "s" } })
    local input = { record("s", '{"id":1}'), record("s", '{"id":2}'), stream_state("s", "{}"), status("s", "COMPLETE") }
    local i = 0
    local buf = {}
    local out = { write = function(self, ...) for _, s in ipairs { ... } do buf[#buf + 1] = s end return self end,
                  flush = function() end }
    local code = cdk.main(dest, { "write", "--config", cfg, "--catalog", cat },
      { out = out, input = function() i = i + 1; return input[i] end })
    assert.equal(0, code)
    assert.same({ 's:{"id":1}:1', 's:{"id":2}:2', '{"data":{"id":2},"emitted_at":1700000000000,"stream":"s"}',
                  "status:COMPLETE:1" }, seen)
    local echoed = json.decode(lines_of(table.concat(buf))[1])
    assert.same({ recordCount = 1.0, rejectedRecordCount = 1.0 }, echoed.state.destinationStats)
    H.rm_rf(dir)
  end)

  it("makes distinct version 4 UUIDs", function()
    local seen = {}
    for _ = 1, 1000 do
      local id = cdk.uuid4()
      assert.matches("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$", id)
      assert.is_nil(seen[id])
      seen[id] = true
    end
  end)
end)
