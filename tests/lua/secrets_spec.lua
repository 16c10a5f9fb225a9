-- Secrets: get_secret's sources (env, .env, prompt), secret_reference::
-- hydration reaching a connector, and masking in logs, errors and output.
local H = require "helper"
local ab = require "airbyte"
local secrets = require "airbyte.secrets"
local errors = require "airbyte.errors"

-- Values unlikely to turn up anywhere else: the registry is process-wide.
local API_KEY = "s3cr3t-api-key-4711"
local PASSWORD = "hunter2-password-0815"
local TOKEN = "tok-XYZZY-plugh-42"

-- Runs `code` as a script in a child luabyte (cwd = dir unless opts.cwd);
-- returns stdout, exit code and stderr (its last lines).
local function child(dir, code, opts)
  opts = opts or {}
  local script = dir .. "/child_script.lua"
  H.write_file(script, code)
  local env = { AIRBYTE_PROJECT_DIR = false, CI = false }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  local out, rc, _, p = H.run({ H.exe, script }, { cwd = opts.cwd or dir, env = env })
  return out, rc, table.concat(p:tail(), "\n")
end

-- An executable that runs the secret_echo fixture source.
local function echo_source(dir)
  local path = dir .. "/source-secret-echo"
  H.write_file(path, ("#!/bin/sh\nexec %s %s secret_echo \"$@\"\n"):format(H.shell_quote(H.exe),
    H.shell_quote(H.fixtures .. "/connectors/run_connector.lua")))
  assert(os.execute("chmod +x " .. H.shell_quote(path)))
  return path
end

local function contains(haystack, needle)
  return haystack:find(needle, 1, true) ~= nil
end

describe("secrets.parse_dotenv", function()
  it("reads KEY=VALUE lines the way python-dotenv does", function()
    local t = secrets.parse_dotenv(table.concat({
      "# a comment",
      "PLAIN=value # trailing comment",
      "export EXPORTED=yes",
      'DOUBLE="a \\"quoted\\" \\n value" # comment',
      "SINGLE='kept # as is \\n'",
      'MULTI="first',
      'second"',
      "  SPACED  =  padded  ",
      "EMPTY=",
      "HASH=a#b",
      "EXPANDED=${PLAIN}-more",
      "FALLBACK=${LB_SURELY_UNSET_VAR:-fallback}",
      "not an assignment",
      "CRLF=windows\r",
      "",
    }, "\n"))
    assert.equal("value", t.PLAIN)
    assert.equal("yes", t.EXPORTED)
    assert.is_nil(t.export)
    assert.equal('a "quoted" \n value', t.DOUBLE)
    assert.equal("kept # as is \\n", t.SINGLE)
    assert.equal("first\nsecond", t.MULTI)
    assert.equal("padded", t.SPACED)
    assert.equal("", t.EMPTY)
    assert.equal("a#b", t.HASH)
    assert.equal("value-more", t.EXPANDED)
    assert.equal("fallback", t.FALLBACK)
    assert.equal("windows", t.CRLF)
  end)
end)

describe("get_secret", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  it("finds a secret in the environment first, then in .env of the current directory", function()
    H.write_file(dir .. "/.env", "LB_T_BOTH=from-dotenv\nexport LB_T_FILE=\"dotenv value 123\"\n")
    local out, rc, err = child(dir, [[
      local ab = require "airbyte"
      print(ab.get_secret("LB_T_BOTH"))
      print(ab.get_secret("LB_T_FILE"))
      print(ab.get_secret("secret_reference::LB_T_FILE"))
      print(ab.secrets.mask("both: from-the-env-value, file: dotenv value 123"))
      print(ab.get_secret("LB_T_FILE", { sources = { "env" }, default = "fallback" }))
      print(ab.secrets.is_secret_available("LB_T_NONE"), ab.secrets.try_get_secret("LB_T_NONE"))
    ]], { env = { LB_T_BOTH = "from-the-env-value" } })
    assert.equal(0, rc, err)
    assert.equal(table.concat({ "from-the-env-value", "dotenv value 123", "dotenv value 123",
      "both: ****, file: ****", "fallback", "false\tnil" }, "\n"), out)
  end)

  it("reads .env from AIRBYTE_PROJECT_DIR when it is set", function()
    assert(os.execute("mkdir -p " .. H.shell_quote(dir .. "/project")))
    H.write_file(dir .. "/project/.env", "LB_T_PROJ='project secret'\n")
    H.write_file(dir .. "/.env", "LB_T_PROJ=cwd-secret\n")
    local out, rc, err = child(dir, [[print(require("airbyte").get_secret("LB_T_PROJ"))]],
      { env = { AIRBYTE_PROJECT_DIR = dir .. "/project" } })
    assert.equal(0, rc, err)
    assert.equal("project secret", out)
  end)

  it("raises PyAirbyteSecretNotFoundError without prompting when there is no terminal", function()
    local out, rc, err = child(dir, [[
      local ab = require "airbyte"
      local ok, e = pcall(ab.get_secret, "LB_T_MISSING")
      print(ok, e.kind, e.secret_name, #e.sources)
      print(tostring(e))
      print(ab.get_secret("LB_T_MISSING", { default = "the default" }))
      local ok2, e2 = pcall(ab.get_secret, "LB_T_MISSING", { allow_prompt = false, sources = "env" })
      print(ok2, table.concat(e2.sources, "|"))
    ]])
    assert.equal(0, rc, err)
    local lines = {}
    for l in (out .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
    assert.equal("false\tPyAirbyteSecretNotFoundError\tLB_T_MISSING\t3", lines[1])
    assert.matches("secret 'LB_T_MISSING' was not found %(looked in: env, dotenv %(%.env%), "
      .. "prompt %(skipped: not an interactive terminal%)%)", out)
    assert.matches("guidance: Set the environment variable LB_T_MISSING", out)
    assert.truthy(contains(out, "\nthe default\n"))
    assert.equal("false\tenv", lines[#lines])
    assert.is_nil(err:find("Enter the value", 1, true))
  end)

  it("prompts on a terminal, without echo, and masks what was typed", function()
    if not os.execute("command -v script >/dev/null 2>&1") then
      return pending("skip: util-linux script(1) is needed for a terminal")
    end
    H.write_file(dir .. "/prompt.lua", [[
      local v = require("airbyte").get_secret("LB_T_TYPED")
      print("got <" .. v .. "> masked <" .. require("airbyte.secrets").mask(v) .. ">")
    ]])
    -- script(1) gives the child a terminal and types our stdin into it
    local cmd = ("script -qec %s /dev/null"):format(H.shell_quote(H.shell_quote(H.exe) .. " "
      .. H.shell_quote(dir .. "/prompt.lua")))
    -- typed a second later, once the prompt has turned echo off
    local out, rc = H.run({ "sh", "-c", "(sleep 1; printf 'typed-in-secret\\n') | " .. cmd },
      { env = { CI = false, LB_T_TYPED = false }, timeout = 20000 })
    assert.equal(0, rc, out)
    assert.matches("Enter the value of secret 'LB_T_TYPED'", out)
    assert.matches("got <typed%-in%-secret> masked <%*%*%*%*>", out)
    local _, seen = out:gsub("typed%-in%-secret", "")
    assert.equal(1, seen, "the terminal echoed the secret: " .. out)
  end)
end)

describe("masking", function()
  it("replaces registered values of 4 characters or more, longest first", function()
    secrets.register("abc")            -- too short: would hide ordinary text
    secrets.register("zq-secret-zq")
    secrets.register("zq-secret-zq-longer")
    secrets.register('zq"quoted\\zq')
    assert.equal("abc ****, **** and ****", secrets.mask("abc zq-secret-zq-longer, zq-secret-zq and zq\"quoted\\zq"))
    -- the JSON-escaped form too, as a logged config would show it
    assert.equal('{"k":"****"}', secrets.mask('{"k":"zq\\"quoted\\\\zq"}'))
    assert.equal(secrets.mask, errors.mask)
    local e = errors.new("PyAirbyteInputError", "bad value zq-secret-zq", { input_value = "zq-secret-zq" })
    assert.is_nil(tostring(e):find("zq-secret-zq", 1, true))
  end)

  it("finds airbyte_secret fields in nested objects, arrays, oneOf branches and $refs", function()
    local spec = {
      type = "object",
      definitions = { cred = { type = "object", properties = { key = { type = "string", airbyte_secret = true } } } },
      properties = {
        top = { type = "string", airbyte_secret = true },
        plain = { type = "string" },
        nested = { type = "object", properties = { deep = { type = "object", properties = {
          pin = { type = "integer", airbyte_secret = true } } } } },
        auth = { type = "object", oneOf = {
          { properties = { method = { const = "a" } } },
          { properties = { method = { const = "b" }, password = { type = "string", airbyte_secret = true } } },
        } },
        list = { type = "array", items = { anyOf = { { properties = { v = { airbyte_secret = true } } } } } },
        ref = { ["$ref"] = "#/definitions/cred" },
      },
    }
    local found = secrets.spec_secret_values(spec, {
      top = "t-value", plain = "not a secret", nested = { deep = { pin = 123456 } },
      auth = { method = "b", password = "p-value" }, list = { { v = "l1" }, { v = "l2" } },
      ref = { key = "r-value" } })
    table.sort(found, function(a, b) return tostring(a) < tostring(b) end)
    assert.same({ 123456, "l1", "l2", "p-value", "r-value", "t-value" }, found)
  end)
end)

describe("secret references in connector configs", function()
  local dir, manager
  local values = { LB_T_API_KEY = API_KEY, LB_T_PASSWORD = PASSWORD, LB_T_TOKEN = TOKEN }
  before_each(function()
    dir = H.tmpdir()
    manager = { name = "test-values", get_secret = function(_, name) return values[name] end }
    secrets.register_secret_manager(manager)
  end)
  after_each(function()
    secrets.disable_secret_source(manager)
    H.rm_rf(dir)
  end)

  local function config(fail)
    return { api_key = "secret_reference::LB_T_API_KEY", region = "eu-west",
             auth = { method = "password", password = "secret_reference::LB_T_PASSWORD" },
             tokens = { { value = "secret_reference::LB_T_TOKEN" } }, fail = fail }
  end

  it("resolves nested references in a copy, leaving the config alone", function()
    local c = config()
    local h = secrets.hydrate(c)
    assert.equal(API_KEY, h.api_key)
    assert.equal(PASSWORD, h.auth.password)
    assert.equal(TOKEN, h.tokens[1].value)
    assert.equal("secret_reference::LB_T_API_KEY", c.api_key)
    local plain = { a = { "x", { b = 1 } } }
    assert.equal(plain, secrets.hydrate(plain))   -- nothing to resolve: no copy
    local ok, e = pcall(secrets.hydrate, { x = { "secret_reference::LB_T_NOT_THERE" } })
    assert.is_false(ok)
    assert.equal("PyAirbyteSecretNotFoundError", e.kind)
    assert.equal("LB_T_NOT_THERE", e.secret_name)
  end)

  it("hydrates just before the connector runs; records get the values, logs and errors do not", function()
    local src = ab.get_source("source-secret-echo", { local_executable = echo_source(dir), config = config() })
    src:set_config(config(), { validate = true })   -- validation sees the hydrated config
    assert.equal("secret_reference::LB_T_API_KEY", src:get_config().api_key)
    assert.is_true(src:check())
    local records = {}
    for r in src:get_records("echo") do records[#records + 1] = r end
    assert.equal(1, #records)
    assert.equal(API_KEY, records[1].api_key)
    assert.equal(PASSWORD, records[1].password)
    assert.equal(TOKEN, records[1].token)
    assert.equal("eu-west", records[1].region)

    local log = H.read_file(src.log_file)
    assert.truthy(contains(log, "secret_echo reading with key=**** password=**** token1=****"), log)
    assert.truthy(contains(log, "secret_echo stderr: key=**** password=**** token1=****"), log)
    for _, v in ipairs({ API_KEY, PASSWORD, TOKEN }) do assert.is_nil(log:find(v, 1, true), v) end
    assert.truthy(contains(log, "eu-west"))   -- what is not a secret stays readable

    -- a failing read: the message, the connector's errors and the log tail
    src:set_config(config("read"))
    local ok, e = pcall(function() for _ in src:get_records("echo") do end end)
    assert.is_false(ok)
    local text = tostring(e)
    assert.truthy(contains(text, "the API went away for key=**** password=**** token1=****"), text)
    for _, v in ipairs({ API_KEY, PASSWORD, TOKEN }) do assert.is_nil(text:find(v, 1, true), text) end
    for _, l in ipairs(e.log_text or {}) do assert.is_nil(l:find(API_KEY, 1, true), l) end

    -- a failing check quotes them too
    src:set_config(config("check"))
    local ok2, e2 = pcall(src.check, src)
    assert.is_false(ok2)
    assert.equal("AirbyteConnectorCheckFailedError", e2.kind)
    assert.truthy(contains(tostring(e2), "the API rejected key=****"), tostring(e2))
    assert.is_nil(tostring(e2):find(API_KEY, 1, true))
  end)

  it("masks airbyte_secret fields given as plain values, from the connector's spec", function()
    local literal = "literal-key-value-31337"
    local src = ab.get_source("source-secret-echo", { local_executable = echo_source(dir),
      config = { api_key = literal, region = "us" } })
    for _ in src:get_records("echo") do end
    local log = H.read_file(src.log_file)
    assert.truthy(contains(log, "key=****"), log)
    assert.is_nil(log:find(literal, 1, true))
    assert.equal("key ****", secrets.mask("key " .. literal))
  end)

  it("resolves references from the environment in a child process, and masks them there", function()
    local script = "local exe = " .. ("%q"):format(echo_source(dir)) .. [[

      local ab = require "airbyte"
      local src = ab.get_source("source-secret-echo", { local_executable = exe,
        config = { api_key = "secret_reference::LB_T_ENV_KEY" } })
      for r in src:get_records("echo") do print("record api_key=" .. r.api_key) end
      print("log=" .. src.log_file)
      io.stderr:write(ab.secrets.mask("stderr mentions env-key-value-9876"), "\n")
    ]]
    local out, rc, err = child(dir, script,
      { env = { LB_T_ENV_KEY = "env-key-value-9876", AIRBYTE_LOGGING_ROOT = dir .. "/logs" } })
    assert.equal(0, rc, err)
    assert.truthy(contains(out, "record api_key=env-key-value-9876"), out)
    local log = H.read_file(out:match("log=(%S+)"))
    assert.truthy(contains(log, "key=****"), log)
    assert.is_nil(log:find("env-key-value-9876", 1, true))
    assert.truthy(contains(err, "stderr mentions ****"), err)
  end)
end)

-- Connectors print secrets the way their JSON encoders spell them
-- (spellings.lua: Python's ensure_ascii \u escapes, cjson's \/, upper-case
-- \u, a mix): none of those may show anywhere a string leaves the
-- connector layer.
describe("secrets in escaped spellings", function()
  local spellings = dofile(H.fixtures .. "/connectors/spellings.lua")
  -- a secret with a non-ASCII letter, a slash, a quote, a backslash and a
  -- character beyond the BMP; and a plain one with a slash
  local KEY = "p\u{e4}/ss\"w\\ord\u{1F600}-4711"
  local PW = "a/b-hunter-0815"
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  -- the first spelling of a secret found in text, or nil
  local function leak(text, values)
    for _, secret in ipairs(values or { KEY, PW }) do
      for _, sp in ipairs(spellings.all(secret)) do
        if text:find(sp, 1, true) then return sp end
      end
    end
    if text:find("hunter", 1, true) then return "hunter" end
    return nil
  end

  -- every string reachable from v, with its path
  local function each_string(v, path, fn, seen)
    seen = seen or {}
    if type(v) == "string" then fn(path, v)
    elseif type(v) == "table" and not seen[v] then
      seen[v] = true
      for k, x in pairs(v) do each_string(x, path .. "." .. tostring(k), fn, seen) end
    end
  end

  local function assert_no_leak_in_error(e)
    local n = 0
    each_string(e, "e", function(path, s)
      n = n + 1
      assert.is_nil(leak(s), path .. " = " .. s)
    end)
    assert.is_true(n > 3)
    assert.is_nil(leak(tostring(e)), tostring(e))
  end

  local MASKED = "spelled key: py=**** cj=**** up=**** mix=**** spelled password: py=**** cj=**** "
    .. "up=**** mix=****"

  local function source(extra)
    local config = { api_key = KEY, region = "eu-west", spelled = true,
                     auth = { method = "password", password = PW } }
    for k, v in pairs(extra or {}) do config[k] = v end
    return ab.get_source("source-secret-echo", { local_executable = echo_source(dir), config = config })
  end

  it("masks them in the log file: stdout lines, stderr lines and LOG messages", function()
    local src = source()
    local records = {}
    for r in src:get_records("echo") do records[#records + 1] = r end
    assert.equal(KEY, records[1].api_key)   -- data is data
    local log = H.read_file(src.log_file)
    assert.is_nil(leak(log), log)
    local line = "key=**** password=**** region=eu-west " .. MASKED
    assert.truthy(contains(log, "secret_echo stdout: " .. line), log)
    assert.truthy(contains(log, "[stderr] secret_echo stderr: " .. line), log)
    assert.truthy(contains(log, "[INFO] secret_echo reading with " .. line), log)
  end)

  it("masks them in every field of a read error: message, trace errors, log text", function()
    local src = source({ fail = "read" })
    local ok, e = pcall(function() for _ in src:get_records("echo") do end end)
    assert.is_false(ok)
    assert.truthy(errors.is_error(e), tostring(e))
    assert_no_leak_in_error(e)
    assert.truthy(contains(e.message, "the API went away for key=****"), e.message)
    assert.truthy(contains(e.trace_errors[1].message, MASKED), e.trace_errors[1].message)
    assert.truthy(contains(e.trace_errors[1].internal_message, "internal: key=****"))
    local tail = table.concat(e.log_text, "\n")
    assert.truthy(contains(tail, "secret_echo stderr: key=**** password=****"), tail)
    assert.is_nil(leak(H.read_file(src.log_file)))
  end)

  it("masks them in a failed check's failure_reason and message", function()
    local src = source({ fail = "check" })
    local ok, e = pcall(src.check, src)
    assert.is_false(ok)
    assert.equal("AirbyteConnectorCheckFailedError", e.kind)
    assert_no_leak_in_error(e)
    assert.truthy(contains(e.failure_reason, "the API rejected key=**** password=****"), e.failure_reason)
    assert.truthy(contains(e.failure_reason, MASKED), e.failure_reason)
  end)

  it("masks them in warnings and in the CLI's stderr", function()
    -- values this process never registers: only the child masks them
    local key2, pw2 = "k\u{f6}y/2\"\\x\u{1F511}-5150", "c/d-hunter-2112"
    local exe = echo_source(dir)
    H.write_file(dir .. "/script.lua", ([[
      local ab = require "airbyte"
      local cache = ab.SQLiteCache{ db_path = %q }
      local config = { api_key = %q, region = "eu-west", spelled = true, bad_count = true,
                       stream = "echo-" .. %q, auth = { method = "password", password = %q } }
      local src = ab.get_source("source-secret-echo", { local_executable = %q, config = config })
      src:select_all_streams()
      local result = src:read{ cache = cache }
      print("warnings " .. #result.warnings)
      for _, w in ipairs(result.warnings) do print("result warning: " .. w) end
      config.fail = "read"
      src:set_config(config)
      src:read{ cache = cache }
    ]]):format(dir .. "/cache.sqlite", key2, key2, pw2, exe))
    local err_file = dir .. "/stderr.txt"
    local out, rc = H.run({ "sh", "-c", ("%s %s 2>%s"):format(H.shell_quote(H.exe),
      H.shell_quote(dir .. "/script.lua"), H.shell_quote(err_file)) }, { cwd = dir })
    local err = H.read_file(err_file)
    assert.equal(1, rc, err)
    assert.is_nil(leak(out, { key2, pw2 }), out)
    assert.is_nil(leak(err, { key2, pw2 }), err)
    assert.truthy(contains(out, "warnings 1"), out)
    assert.truthy(contains(out, "result warning: stream echo-****: the source says 5 records"), out)
    assert.truthy(contains(err, "warning: stream echo-****: the source says 5 records"), err)
    assert.truthy(contains(err, "ERROR: source-secret-echo: the API went away for key=****"), err)
    assert.truthy(contains(err, "luabyte: connector 'source-secret-echo' failed during read"), err)
    assert.truthy(contains(err, MASKED), err)
  end)
end)

describe("one masker for the process layer and Lua", function()
  it("masks what proc.spawn was given everywhere, with one rule for short values", function()
    local dir = H.tmpdir()
    finally(function() H.rm_rf(dir) end)
    local log = dir .. "/x.log"
    local proc = require "airbyte.process"
    local p = assert(proc.spawn{ argv = { "sh", "-c", "echo 'short xq7 long lq-spawned-secret-31'; "
      .. "echo 'stderr lq\\u002dspawned-secret-31' >&2" }, name = "echo", log_file = log,
      secrets = { "xq7", "lq-spawned-secret-31" } })
    for _ in p:messages() do end
    assert.equal(0, p:wait())
    p:close()
    local text = H.read_file(log)
    -- under 4 bytes: never masked, in C as in Lua
    assert.truthy(contains(text, "short xq7 long ****"), text)
    assert.truthy(contains(text, "[stderr] stderr ****"), text)
    assert.equal("xq7", secrets.mask("xq7"))
    -- the values given to the process layer are masked by Lua too
    assert.equal("key ****", secrets.mask("key lq-spawned-secret-31"))
    assert.equal("key ****", errors.mask("key lq\\u002Dspawned-secret-31"))
  end)
end)

-- SIGHUP (a closed terminal or ssh session) and SIGQUIT cancel a script as
-- SIGTERM and Ctrl-C do: the connector is terminated and the config file
-- holding the secret is removed from TMPDIR.
describe("a luabyte process that gets SIGHUP or SIGQUIT", function()
  local proc = require "airbyte.process"
  local SECRET = "sighup-secret-value-6502"

  local function alive(pid)
    return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
  end

  -- names of the files in dir holding text
  local function files_with(dir, text)
    local out = {}
    local ls = assert(io.popen("ls -A " .. H.shell_quote(dir)))
    for name in ls:lines() do
      local f = io.open(dir .. "/" .. name, "rb")
      local content = f and f:read("a") or ""
      if f then f:close() end
      if content:find(text, 1, true) then out[#out + 1] = name end
    end
    ls:close()
    return out
  end

  for _, sig in ipairs({ { name = "SIGHUP", num = 1 }, { name = "SIGQUIT", num = 3 } }) do
    it(sig.name .. ": the connector is gone and no config file with the secret stays", function()
      local dir = H.tmpdir()
      local tmp = dir .. "/tmp"
      assert(os.execute("mkdir -p " .. H.shell_quote(tmp)))
      local pid_file = dir .. "/connector.pid"
      local pid
      finally(function()
        if pid and alive(pid) then os.execute("kill -9 " .. pid) end
        H.rm_rf(dir)
      end)
      H.write_file(dir .. "/script.lua", ([[
        local ab = require "airbyte"
        local src = ab.get_source("source-secret-echo", { local_executable = %q,
          config = { api_key = %q, pid_file = %q } })
        for r in src:get_records("echo") do print("record") io.stdout:flush() end
      ]]):format(echo_source(dir), SECRET, pid_file))
      local p = assert(proc.spawn{ argv = { H.exe, dir .. "/script.lua" }, name = "luabyte",
                                   env = { TMPDIR = tmp } })
      assert.is_true(H.wait_until(function() return io.open(pid_file, "r") ~= nil end))
      pid = H.read_file(pid_file)
      assert.truthy(pid:match("^%d+$"), pid)
      assert.is_true(alive(pid))
      -- the config file with the secret is there while the connector runs
      local held = files_with(tmp, SECRET)
      assert.equal(1, #held)
      assert.matches("%.json$", held[1])
      p:kill(sig.num)
      local code, signal = p:wait()
      assert.equal(130, code, "exit code " .. tostring(code) .. ", signal " .. tostring(signal))
      assert.is_true(H.wait_until(function() return not alive(pid) end, 10000), "the connector still runs")
      assert.same({}, files_with(tmp, SECRET))
    end)
  end
end)
