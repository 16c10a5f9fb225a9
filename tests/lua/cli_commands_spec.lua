-- The luabyte subcommands (pyab's): validate, sync, benchmark, connectors,
-- each run as a real child process.
local H = require "helper"
local json = require "airbyte.json"

local SECRET = "cli-secret-value-2718"
local PASSWORD = "cli-password-value-1618"

local dir
before_each(function() dir = H.tmpdir() end)
after_each(function() H.rm_rf(dir) end)

-- luabyte ARGS... in dir with a clean environment for secrets, logs and
-- caches; returns stdout, exit code, stderr (its last lines).
local function luabyte(args, env)
  local e = { AIRBYTE_PROJECT_DIR = dir, AIRBYTE_LOGGING_ROOT = dir .. "/logs", CI = false,
              NO_LIVE_PROGRESS = "1" }
  for k, v in pairs(env or {}) do e[k] = v end
  local argv = { H.exe }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local out, code, _, p = H.run(argv, { cwd = dir, env = e, timeout = 120000 })
  return out, code, table.concat(p:tail(), "\n")
end

local function echo_source()
  local path = dir .. "/source-secret-echo"
  H.write_file(path, ("#!/bin/sh\nexec %s %s secret_echo \"$@\"\n"):format(H.shell_quote(H.exe),
    H.shell_quote(H.fixtures .. "/connectors/run_connector.lua")))
  assert(os.execute("chmod +x " .. H.shell_quote(path)))
  return path
end

local function lines_of(path)
  local out = {}
  for l in io.lines(path) do out[#out + 1] = l end
  return out
end

local function contains(haystack, needle)
  return haystack:find(needle, 1, true) ~= nil
end

-- every log file written under dir/logs, concatenated
local function all_logs()
  local p = io.popen("cat " .. H.shell_quote(dir) .. "/logs/*/*.log 2>/dev/null")
  local s = p:read("a")
  p:close()
  return s
end

describe("luabyte SUBCOMMAND --help", function()
  it("prints the usage of each subcommand and exits 0", function()
    for _, sub in ipairs({ "validate", "sync", "benchmark", "connectors" }) do
      for _, flag in ipairs({ "--help", "-h" }) do
        local out, code = luabyte({ sub, flag })
        assert.equal(0, code, sub .. " " .. flag)
        assert.matches("^usage: luabyte " .. sub, out)
      end
    end
  end)

  it("exits 2 with the usage on stderr for usage errors", function()
    local cases = {
      { "validate" },
      { "validate", "--connector" },
      { "validate", "--connector", "source-faker", "--bogus" },
      { "validate", "--connector", "faker" },
      { "validate", "--connector", "source-faker", "stray" },
      { "sync", "--source", "source-faker" },
      { "sync", "--source", "destination-x", "--destination", "destination-dev-null", "--Sconfig", "{}", "--Dconfig", "{}" },
      { "sync", "--source", "source-faker", "--destination", "destination-dev-null", "--Sconfig", "{}",
        "--Dconfig", "{}", "--cache=yes" },
      { "benchmark", "--source", "source-faker", "--destination", "destination-dev-null" },
      { "benchmark", "--num-records", "lots" },
      { "benchmark", "--num-records", "1.5" },
      { "benchmark", "--config", "{}" },
      { "connectors", "--type", "bogus" },
    }
    for _, args in ipairs(cases) do
      local out, code, err = luabyte(args)
      local what = table.concat(args, " ")
      assert.equal(2, code, what)
      assert.equal("", out, what)
      assert.matches("usage: luabyte " .. args[1], err, 1, false)
    end
  end)
end)

describe("luabyte validate", function()
  it("prints the spec without a config", function()
    local out, code, err = luabyte({ "validate", "--connector", "source-faker" })
    assert.equal(0, code, err)
    assert.matches("title: Faker Source Spec", err)
    assert.matches("pass %-%-config", out)
  end)

  it("validates a config (inline or a file) and runs check", function()
    local out, code, err = luabyte({ "validate", "--connector", "source-faker", "--config", '{"count": 5}' })
    assert.equal(0, code, err)
    assert.equal("Config of `source-faker` is valid.\nConnection check of `source-faker` succeeded.", out)
    H.write_file(dir .. "/dest.json", json.encode({ destination_path = dir .. "/out" }))
    local out2, code2, err2 = luabyte({ "validate", "--connector", "destination-local-json", "--config=" .. dir .. "/dest.json" })
    assert.equal(0, code2, err2)
    assert.matches("succeeded", out2)
  end)

  it("exits 1 with the error for a bad config, a missing file or a failing check", function()
    local _, code, err = luabyte({ "validate", "--connector", "source-faker", "--config", '{"count": "many"}' })
    assert.equal(1, code)
    assert.matches("AirbyteConnectorValidationFailedError", err)
    assert.matches("%$%.count: expected integer", err)
    local _, code2, err2 = luabyte({ "validate", "--connector", "source-faker", "--config", dir .. "/nope.json" })
    assert.equal(1, code2)
    assert.matches("cannot read config file", err2)
    local _, code3, err3 = luabyte({ "validate", "--connector", "source-faker", "--config", "{not json" })
    assert.equal(1, code3)
    assert.matches("not a JSON object", err3)
    -- a local executable, a SECRET: value, and a check that quotes it
    local _, code4, err4 = luabyte({ "validate", "--connector", echo_source(), "--config",
      '{"api_key": "SECRET:LB_CLI_KEY", "fail": "check"}' }, { LB_CLI_KEY = SECRET })
    assert.equal(1, code4)
    assert.matches("AirbyteConnectorCheckFailedError", err4)
    assert.truthy(contains(err4, "the API rejected key=****"), err4)
    assert.is_nil(err4:find(SECRET, 1, true))
    assert.is_nil(all_logs():find(SECRET, 1, true))
  end)

  it("fails clearly, without prompting, when a SECRET: value has no secret", function()
    local _, code, err = luabyte({ "validate", "--connector", "source-faker", "--config",
      '{"count": 5, "seed": "SECRET:LB_CLI_NOT_SET"}' }, { LB_CLI_NOT_SET = false })
    assert.equal(1, code)
    assert.matches("secret 'LB_CLI_NOT_SET' was not found", err)
    assert.matches("PyAirbyteSecretNotFoundError", err)
    assert.is_nil(err:find("Enter the value", 1, true))
  end)
end)

describe("luabyte sync", function()
  it("syncs a source to a destination, with --streams as a list or repeated", function()
    local out, code, err = luabyte({ "sync", "--source", "source-faker", "--destination", "destination-local-json",
      "--Sconfig", '{"count": 20, "seed": 1}', "--Dconfig", json.encode({ destination_path = dir .. "/out" }),
      "--streams", "users,products" })
    assert.equal(0, code, err)
    assert.matches("^Sync completed: 120 records from `source%-faker` to `destination%-local%-json`", out)
    assert.matches("%[products 100, users 20%]", out)
    assert.equal(20, #lines_of(dir .. "/out/_airbyte_raw_users.jsonl"))
    assert.is_nil(io.open(dir .. "/out/_airbyte_raw_purchases.jsonl"))
    local out2, code2, err2 = luabyte({ "sync", "--source", "source-faker", "--destination", "destination-local-json",
      "--Sconfig", '{"count": 7, "seed": 1}', "--Dconfig", json.encode({ destination_path = dir .. "/out2" }),
      "--streams", "users", "--streams", "products", "--cache" })
    assert.equal(0, code2, err2)
    assert.matches("Sync completed: 107 records", out2)
    -- --cache went through the default cache of the project directory
    assert.truthy(io.open(dir .. "/.cache/default_cache/default_cache.sqlite"))
  end)

  it("resolves SECRET: and secret_reference:: values; the data has them, the output and logs do not", function()
    H.write_file(dir .. "/.env", "LB_CLI_PASSWORD='" .. PASSWORD .. "'\n")
    H.write_file(dir .. "/source.json", json.encode({ api_key = "SECRET:LB_CLI_KEY",
      auth = { method = "password", password = "secret_reference::LB_CLI_PASSWORD" } }))
    local out, code, err = luabyte({ "sync", "--source", echo_source(), "--destination", "destination-local-json",
      "--Sconfig", dir .. "/source.json", "--Dconfig", json.encode({ destination_path = dir .. "/out" }) },
      { LB_CLI_KEY = SECRET })
    assert.equal(0, code, err)
    assert.matches("Sync completed: 1 records from `source%-secret%-echo`", out)
    local data = H.read_file(dir .. "/out/_airbyte_raw_echo.jsonl")
    assert.truthy(contains(data, SECRET))
    assert.truthy(contains(data, PASSWORD))
    local logs = all_logs()
    assert.truthy(contains(logs, "key=**** password=****"), logs)
    for _, text in ipairs({ out, err, logs }) do
      assert.is_nil(text:find(SECRET, 1, true))
      assert.is_nil(text:find(PASSWORD, 1, true))
    end
  end)

  it("exits 1 with a masked error when the source fails", function()
    local _, code, err = luabyte({ "sync", "--source", echo_source(), "--destination", "destination-dev-null",
      "--Sconfig", '{"api_key": "SECRET:LB_CLI_KEY", "fail": "read"}', "--Dconfig", "{}" }, { LB_CLI_KEY = SECRET })
    assert.equal(1, code)
    assert.matches("luabyte sync: error: ", err)
    assert.truthy(contains(err, "the API went away for key=****"), err)
    assert.is_nil(err:find(SECRET, 1, true))
    assert.is_nil(all_logs():find(SECRET, 1, true))
    local _, code2, err2 = luabyte({ "sync", "--source", "source-faker", "--destination", "destination-dev-null",
      "--Sconfig", '{"count": 3}', "--Dconfig", "{}", "--streams", "nope" })
    assert.equal(1, code2)
    assert.matches("AirbyteStreamNotFoundError", err2)
  end)
end)

describe("luabyte benchmark", function()
  it("times source-faker into destination-dev-null by default", function()
    local out, code, err = luabyte({ "benchmark", "--num-records", "1_000" })
    assert.equal(0, code, err)
    assert.matches("^Benchmark: 1000 records from `source%-faker` to `destination%-dev%-null` in [%d.]+ s: %d+ records/s", out)
  end)

  it("benchmarks a given destination or a given source", function()
    local out, code, err = luabyte({ "benchmark", "--num-records", "2e3", "--destination", "destination-local-json",
      "--config", json.encode({ destination_path = dir .. "/out" }) })
    assert.equal(0, code, err)
    assert.matches("^Benchmark: 2000 records from `source%-faker` to `destination%-local%-json`", out)
    assert.equal(2000, #lines_of(dir .. "/out/_airbyte_raw_users.jsonl"))
    local out2, code2, err2 = luabyte({ "benchmark", "--source", "source-faker", "--config", '{"count": 30}',
      "--streams", "users,products" })
    assert.equal(0, code2, err2)
    assert.matches("^Benchmark: 130 records from `source%-faker` to `destination%-dev%-null`", out2)
  end)

  it("reads --num-records as 5e5, 1_000_000 or 2.4e6", function()
    local cli = require "airbyte.cli"
    assert.equal(500000, cli.parse_count("5e5"))
    assert.equal(1000000, cli.parse_count("1_000_000"))
    assert.equal(2400000, cli.parse_count("2.4e6"))
    assert.is_nil(cli.parse_count("0"))
    assert.is_nil(cli.parse_count("-5"))
    assert.is_nil(cli.parse_count("2.5"))
    assert.is_nil(cli.parse_count("many"))
  end)
end)

describe("luabyte connectors", function()
  it("lists connectors one per line", function()
    local out, code, err = luabyte({ "connectors" })
    assert.equal(0, code, err)
    local set = {}
    for l in out:gmatch("[^\n]+") do set[l] = true end
    assert.is_true(set["source-faker"])
    assert.is_true(set["destination-dev-null"])
    local out2, code2 = luabyte({ "connectors", "--type", "builtin" })
    assert.equal(0, code2)
    local names = {}
    for l in out2:gmatch("[^\n]+") do names[#names + 1] = l end
    -- the same binary: its embedded connectors.* modules
    assert.same(require("airbyte.cli").builtin_connectors(), names)
    assert.is_true(#names >= 5)
  end)
end)

describe("connector arguments", function()
  it("are names, Docker images or paths, as pyab reads them", function()
    local cli = require "airbyte.cli"
    local name, opts = cli.resolve_connector("airbyte/source-faker:6.2.0")
    assert.equal("source-faker", name)
    assert.same({ docker_image = "airbyte/source-faker:6.2.0" }, opts)
    name, opts = cli.resolve_connector("./bin/source-mine.py")
    assert.equal("source-mine", name)
    assert.same({ local_executable = "./bin/source-mine.py" }, opts)
    name, opts = cli.resolve_connector("destination-duckdb")
    assert.equal("destination-duckdb", name)
    assert.same({}, opts)
  end)
end)
