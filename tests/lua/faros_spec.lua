-- Interoperability with real third-party Airbyte connectors from npm: the
-- Faros destination (dry run, offline) and a source built on faros-airbyte-cdk.
-- The packages are installed by scripts/npm_fixtures.sh; when npm cannot be
-- reached, these specs report a skip with the reason.
local H = require "helper"
local ab = require "airbyte"
local json = require "airbyte.json"

local FAROS = H.fixtures .. "/faros"
local installed, why

local function need_npm(pending)
  if installed == nil then
    local out, code, _, p = H.run({ "sh", "-c", "scripts/npm_fixtures.sh 2>&1" }, { cwd = H.root })
    installed = code == 0
    why = out ~= "" and out or table.concat(p:tail(), " ")
    if code ~= 3 and code ~= 0 then error("npm_fixtures.sh failed: " .. why) end
  end
  if not installed then pending("skip: npm packages unavailable: " .. tostring(why)) end
  return installed
end

describe("Faros interop", function()
  local dir, cache
  before_each(function() dir, cache = H.open_test_cache() end)
  after_each(function() H.close_test_cache(dir, cache) end)

  it("reads a faros-airbyte-cdk source through get_source, incrementally", function()
    if not need_npm(pending) then return end
    local src = ab.get_source("source-tiny", { local_executable = FAROS .. "/source-tiny/source-tiny",
      config = { count = 7, letters = "xy" } })
    assert.is_true(src:check())
    assert.same({ "numbers", "letters" }, src:get_available_streams())
    src:select_all_streams()
    local r1 = src:read{ cache = cache }
    assert.equal(7, #r1["numbers"])
    assert.equal(2, #r1["letters"])
    assert.equal("integer", math.type(r1["numbers"]:with_filter("id = 7"):to_table()[1].value))
    -- its state is a compressed LEGACY blob with extra keys on the message:
    -- kept as it came, and handed back as the bare object the kit reads
    local states = cache:get_state("source-tiny")
    assert.equal(1, #states)
    assert.equal("base64/gzip", states[1].data.format)
    src:set_config({ count = 10, letters = "xy" })
    local r2 = src:read{ cache = cache }
    assert.equal(3 + 2, r2.processed_records)    -- numbers 8..10, letters again (full refresh)
    assert.equal(10, #r2["numbers"])
  end)

  it("writes to the Faros destination in dry-run mode through Destination:write", function()
    if not need_npm(pending) then return end
    local cfg = json.decode(H.read_file(FAROS .. "/dest_config.json"))
    local dest = ab.get_destination("destination-faros", { local_executable = FAROS .. "/faros-destination",
      config = cfg })
    assert.is_true(dest:check())
    local exe = H.fixture_executable(dir, "crasher")
    local src = ab.get_source("source-crasher", { local_executable = exe,
      config = { records = 25, state_every = 10, stream = "tiny__items" } })
    src:select_all_streams()
    -- straight through: a dry run echoes only the last state; it is stored
    local wr = dest:write(src, { cache = false, state_cache = cache })
    assert.equal(25, wr.processed_records)
    assert.equal(1, wr.confirmed_states)
    local texts = cache:_db():get_destination_states("destination-faros")
    assert.equal(1, #texts)
    assert.equal(25, json.decode(texts[1]).stream.stream_state.last_id)
    assert.matches("Would write 25 records", H.read_file(dest.log_file))
    -- the next write resumes from it: the source continues after id 25
    assert.equal(25, dest:write(src, { cache = false, state_cache = cache }).processed_records)
    texts = cache:_db():get_destination_states("destination-faros")
    assert.equal(50, json.decode(texts[1]).stream.stream_state.last_id)
    -- through the cache as well
    local wr2 = dest:write(src, { cache = cache, force_full_refresh = true })
    assert.equal(25, wr2.processed_records)
  end)

  -- The Faros destination maps streams named <origin>__<source>__<stream>:
  -- an Airbyte connection gives the source's streams that prefix, and so
  -- does write{stream_prefix=}. States go back under the source's names.
  it("writes to the Faros destination with a stream prefix, straight through and from the cache", function()
    if not need_npm(pending) then return end
    local cfg = json.decode(H.read_file(FAROS .. "/dest_config.json"))
    cfg.jsonata_expression = '{"example_Record": {"stream": stream, "data": data}}'
    cfg.jsonata_destination_models = { "example_Record" }
    local dest = ab.get_destination("destination-faros", { local_executable = FAROS .. "/faros-destination",
      config = cfg })
    local src = ab.get_source("source-quirks", { local_executable = FAROS .. "/source-quirks/source-quirks",
      config = { count = 4, jobs = 2 } })
    src:select_all_streams()
    -- without the prefix the destination cannot tell the origin
    local ok, err = pcall(dest.write, dest, src, { cache = false, state_cache = false })
    assert.is_false(ok)
    assert.matches("multiple possible origins", tostring(err))
    local function written(log)
      local text = H.read_file(log)
      return text:match("Would write (%d+) records"), text
    end
    local wr = dest:write(src, { cache = false, state_cache = cache, stream_prefix = "mysrc__example__" })
    assert.equal(6, wr.processed_records)
    local n, log = written(dest.log_file)
    assert.equal("6", n)
    assert.matches("mysrc__example__builds", log)
    assert.matches("mysrc__example__jobs", log)
    assert.equal(1, wr.confirmed_states)
    -- the confirmed state is stored as the source sent it (no prefix anywhere)
    local texts = cache:_db():get_destination_states("destination-faros")
    assert.equal(1, #texts)
    assert.is_nil(texts[1]:find("mysrc__", 1, true))
    -- from the cache: the same names reach the destination
    local wr2 = dest:write(src, { cache = cache, force_full_refresh = true, stream_prefix = "mysrc__example__" })
    assert.equal(6, wr2.processed_records)
    n, log = written(dest.log_file)
    assert.equal("6", n)
    assert.matches("mysrc__example__builds", log)
  end)

  -- source-quirks (faros-airbyte-cdk 0.23), run through a wrapper that
  -- copies the --state file it is given to state_in.json and, with a job
  -- id, sets WORKER_JOB_ID (then the kit emits STREAM states, including
  -- namespaced ones of its own).
  local function quirks(config, job_id)
    local path = dir .. "/source-quirks"
    H.write_file(path, ("#!/bin/sh\nprev=\nfor a in \"$@\"; do [ \"$prev\" = --state ] && cp \"$a\" %s; prev=$a; done\n%s"
      .. "exec %s \"$@\"\n"):format(H.shell_quote(dir .. "/state_in.json"),
      job_id and ("WORKER_JOB_ID=" .. job_id .. " export WORKER_JOB_ID\n") or "",
      H.shell_quote(FAROS .. "/source-quirks/source-quirks")))
    assert(os.execute("chmod +x " .. H.shell_quote(path)))
    local src = ab.get_source("source-quirks", { local_executable = path, config = config })
    src:select_all_streams()
    return src
  end

  local function echoing()
    return ab.get_destination("bad-destination", { local_executable = H.fixture_executable(dir, "bad_destination"),
      config = { out = dir .. "/received.jsonl", mode = "good" } })
  end

  local function received(stream)
    local n = 0
    local f = io.open(dir .. "/received.jsonl")
    if not f then return 0 end
    for line in f:lines() do if json.decode(line).record.stream == stream then n = n + 1 end end
    f:close()
    return n
  end

  it("sends the kit's LEGACY state from the cache, where it is confirmed (item 16)", function()
    if not need_npm(pending) then return end
    local src = quirks({ count = 4, jobs = 2 })
    local dest = echoing()
    local wr = dest:write(src, { cache = cache })
    assert.equal(6, wr.processed_records)
    assert.is_true(wr.confirmed_states >= 1)
    assert.same({}, wr.warnings)
    assert.equal("base64/gzip", wr:get_state_provider()._LEGACY.data.format)
    -- item 20: from the cache, each record holds the source's fields only
    for line in io.lines(dir .. "/received.jsonl") do
      local data = json.decode(line).record.data
      for k in pairs(data) do assert.is_nil(k:find("^_airbyte_"), k) end
      if data.name then assert.matches("^build%-%d$", data.name) end
    end
    -- the next write resumes: two new builds, jobs again (full refresh)
    src:set_config({ count = 6, jobs = 2 })
    local wr2 = dest:write(src, { cache = cache })
    assert.equal(2, wr2.streams.builds.records)
    assert.equal(6, received("builds"))
    -- the real Faros destination confirms it too (dry run: the last state)
    local cfg = json.decode(H.read_file(FAROS .. "/dest_config.json"))
    cfg.jsonata_expression = '{"example_Record": {"stream": stream, "data": data}}'
    cfg.jsonata_destination_models = { "example_Record" }
    local faros = ab.get_destination("destination-faros", { local_executable = FAROS .. "/faros-destination",
      config = cfg })
    local wr3 = faros:write(src, { cache = cache, force_full_refresh = true, stream_prefix = "mysrc__example__" })
    assert.equal(1, wr3.confirmed_states)
  end)

  it("confirms the kit's repeated identical states one echo each, with no warning (item 17)", function()
    if not need_npm(pending) then return end
    for _, job in ipairs({ false, "17" }) do
      local src = quirks({ count = 5, jobs = 2, checkpoint_every = 2 }, job or nil)
      local dest = echoing()
      for _ = 1, 3 do
        local wr = dest:write(src, { cache = false, state_cache = cache, force_full_refresh = true })
        assert.equal(7, wr.processed_records)
        assert.same({}, wr.warnings)
        assert.is_true(wr.confirmed_states >= 6)
      end
    end
  end)

  -- "namespace/name" of each STREAM state in a list of states -> true
  local function state_keys(states)
    local keys = {}
    for _, st in ipairs(states) do
      local d = st.stream.stream_descriptor
      keys[(d.namespace or "") .. "/" .. d.name] = true
    end
    return keys
  end

  it("keeps the kit's namespaced states of its own and passes them back (item 18)", function()
    if not need_npm(pending) then return end
    local src = quirks({ count = 3, jobs = 1 }, "18")
    src:read{ cache = cache }
    local keys = state_keys(cache:get_state("source-quirks"))
    assert.is_true(keys["__faros__/__noop__"])
    assert.is_true(keys["__faros_shared_state__/__stream_freshness_state"])
    assert.is_true(keys["/builds"])
    src:read{ cache = cache }
    local passed = state_keys(json.decode(H.read_file(dir .. "/state_in.json")))
    assert.is_true(passed["__faros__/__noop__"])
    assert.is_true(passed["__faros_shared_state__/__stream_freshness_state"])
    assert.is_true(passed["/builds"])
    -- straight through: the destination's confirmed states, the same way
    os.remove(dir .. "/state_in.json")
    local dest = echoing()
    dest:write(src, { cache = false, state_cache = cache })
    local stored = dest:write(src, { cache = false, state_cache = cache })
    assert.same({}, stored.warnings)
    passed = state_keys(json.decode(H.read_file(dir .. "/state_in.json")))
    assert.is_true(passed["__faros__/__noop__"])
    assert.is_true(passed["__faros_shared_state__/__stream_freshness_state"])
  end)

  -- issue 8 item 19: the kit prints CONNECTION_STATUS FAILED and exits 0
  it("fails a read whose faros-airbyte-cdk source reports a failed connection and exits 0", function()
    if not need_npm(pending) then return end
    local src = ab.get_source("source-quirks", { local_executable = FAROS .. "/source-quirks/source-quirks",
      config = { count = 4, jobs = 2, fail_check = true } })
    src:select_all_streams()
    local ok, err = pcall(src.read, src, { cache = cache })
    assert.is_false(ok)
    assert.equal("AirbyteConnectorFailedError", err.kind)
    assert.equal(0, err.exit_code)
    assert.matches("invalid credentials: the token was rejected", err.message)
    assert.equal("invalid credentials: the token was rejected", err.failure_reason)
    assert.is_false(cache:contains("builds") and #cache["builds"] > 0)
    -- straight through too: nothing reaches the destination as a success
    local dest = ab.get_noop_destination()
    local ok2, err2 = pcall(dest.write, dest, src, { cache = false, state_cache = cache })
    assert.is_false(ok2)
    assert.matches("invalid credentials: the token was rejected", tostring(err2))
  end)
end)
