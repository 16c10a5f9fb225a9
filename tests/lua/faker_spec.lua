-- The built-in source-faker against the protocol: every line it prints
-- validates against the official AirbyteMessage schema (and records against
-- the faker stream schemas), its output is deterministic for a seed, and it
-- reads incrementally.
local H = require "helper"
local json = require "airbyte.json"

local function shared(path) return H.shared .. path end

-- Runs `luabyte connector source-faker ARGS` through the validator; returns
-- the validator's summary and exit code.
local function validate(args, extra)
  local cmd = ("%s connector source-faker %s | python3 %s --protocol %s --schemas %s %s 2>&1"):format(
    H.shell_quote(H.exe), args, H.shell_quote(H.fixtures .. "/validate_protocol.py"),
    H.shell_quote(shared("/protocol/airbyte_protocol.schema.json")),
    H.shell_quote(shared("/fixtures/source-faker/source_faker/schemas")), extra or "")
  local out, code = H.run({ "sh", "-c", cmd })
  return out, code
end

local function records_of(out)
  local recs = {}
  for line in out:gmatch("[^\n]+") do
    if line:find('"type":"RECORD"', 1, true) then
      recs[#recs + 1] = (line:gsub('"emitted_at":%d+', ""))
    end
  end
  return recs
end

describe("source-faker", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  local function files(config)
    H.write_file(dir .. "/config.json", json.encode(config))
    return " --config " .. H.shell_quote(dir .. "/config.json")
  end

  it("prints only valid protocol messages for every command", function()
    if not H.need_shared(pending) then return end
    local cat = " --catalog " .. H.shell_quote(shared("/fixtures/source-faker/integration_tests/configured_catalog.json"))
    local cfg = files({ count = 120, seed = 5, records_per_slice = 50 })
    for _, args in ipairs({ "spec", "check" .. cfg, "discover" .. cfg, "read" .. cfg .. cat }) do
      local out, code = validate(args)
      assert.equal(0, code, args .. ": " .. out)
      assert.matches("^OK", out)
    end
    -- an invalid config: CONNECTION_STATUS FAILED, still valid protocol
    local bad = files(json.decode(H.read_file(shared("/fixtures/source-faker/integration_tests/invalid_config.json"))))
    local out, code = validate("check" .. bad)
    assert.equal(0, code, out)
  end)

  it("resumes from its own state and from the fixture states", function()
    if not H.need_shared(pending) then return end
    local cat = shared("/fixtures/source-faker/integration_tests/configured_catalog.json")
    local cfg = files({ count = 40, seed = 9, always_updated = false })
    local first = H.run({ H.exe, "connector", "source-faker", "read", "--config", dir .. "/config.json", "--catalog", cat })
    local states = {}
    for line in first:gmatch("[^\n]+") do
      if line:find('"type":"STATE"', 1, true) then
        local st = json.decode(line).state
        states[st.stream.stream_descriptor.name] = st   -- the last per stream
      end
    end
    local arr = {}
    for _, st in pairs(states) do arr[#arr + 1] = st end
    H.write_file(dir .. "/state.json", json.encode(arr))
    local again = H.run({ H.exe, "connector", "source-faker", "read", "--config", dir .. "/config.json",
                          "--catalog", cat, "--state", dir .. "/state.json" })
    -- users and purchases are incremental in the fixture catalog: nothing new;
    -- products is full_refresh there: all 100 again
    local by_stream = {}
    for _, r in ipairs(records_of(again)) do
      local name = r:match('"stream":"([^"]+)"')
      by_stream[name] = (by_stream[name] or 0) + 1
    end
    assert.same({ products = 100 }, by_stream)
    local out, code = validate("read" .. cfg .. " --catalog " .. H.shell_quote(cat) .. " --state " ..
                               H.shell_quote(dir .. "/state.json"))
    assert.equal(0, code, out)
    for _, f in ipairs({ "sample_state.json", "abnormal_state.json" }) do
      local o, c = validate("read" .. cfg .. " --catalog " .. H.shell_quote(cat) .. " --state " ..
                            H.shell_quote(shared("/fixtures/source-faker/integration_tests/" .. f)))
      assert.equal(0, c, f .. ": " .. o)
    end
  end)

  it("is deterministic for a seed", function()
    local cat = dir .. "/cat.json"
    H.write_file(cat, '{"streams":[{"stream":{"name":"users","json_schema":{},"supported_sync_modes":["full_refresh"]},'
      .. '"sync_mode":"full_refresh","destination_sync_mode":"overwrite"}]}')
    files({ count = 30, seed = 11 })
    local a = H.run({ H.exe, "connector", "source-faker", "read", "--config", dir .. "/config.json", "--catalog", cat })
    local b = H.run({ H.exe, "connector", "source-faker", "read", "--config", dir .. "/config.json", "--catalog", cat })
    local ra, rb = records_of(a), records_of(b)
    assert.equal(30, #ra)
    -- always_updated (the default) moves updated_at to now: compare the rest
    for i = 1, #ra do
      assert.equal((ra[i]:gsub('"updated_at":"[^"]*"', "")), (rb[i]:gsub('"updated_at":"[^"]*"', "")))
    end
    files({ count = 30, seed = 12 })
    local c = records_of(H.run({ H.exe, "connector", "source-faker", "read", "--config", dir .. "/config.json", "--catalog", cat }))
    assert.are_not.equal(ra[1], c[1])
  end)
end)

-- A source whose reader is gone (its host killed, `| head`) stops with an
-- error instead of making every record of its run for nobody: a faker of a
-- billion users behind `head -n 1` ends at once (exit 1, the reason on
-- stderr). Before, it ran on until `timeout` killed the pipeline (124).
describe("source-faker whose reader is gone", function()
  it("stops, exits 1 and says why on stderr", function()
    local dir = H.tmpdir()
    H.write_file(dir .. "/config.json", '{"count": 1000000000, "seed": 1}')
    H.write_file(dir .. "/catalog.json", '{"streams":[{"stream":{"name":"users","json_schema":{"type":"object"},'
      .. '"supported_sync_modes":["full_refresh"]},"sync_mode":"full_refresh","destination_sync_mode":"overwrite"}]}')
    local cmd = ("cd %s && timeout 120 bash -c '%s connector source-faker read --config config.json"
      .. " --catalog catalog.json 2>err.txt | head -n 1 >/dev/null; echo ${PIPESTATUS[0]} >rc.txt'"):format(
      H.shell_quote(dir), H.exe)
    local out, code = H.run({ "sh", "-c", cmd })
    assert.equal(0, code, out)
    assert.equal("1", H.read_file(dir .. "/rc.txt"):match("%d+"))
    assert.matches("output is closed", H.read_file(dir .. "/err.txt"), 1, true)
    H.rm_rf(dir)
  end)
end)
