-- require "airbyte" in hosts that own their Lua state: stock lua5.4 runs
-- the scripts in tests/fixtures/hosts as real processes, loading the
-- airbyte.so built next to the luabyte binary under test.
local H = require "helper"

local build_dir = H.build_dir
local module = build_dir .. "/airbyte.so"
local hosts = H.fixtures .. "/hosts/"

local function lua54(script, args, env)
  env = H.host_env(env)
  local argv = { "lua5.4", hosts .. script }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return H.run(argv, { env = env, timeout = 120000 })
end

-- A copy of the module in DIR/lib/lua/5.4, with no luabyte command near it.
local function module_alone(dir)
  local lib = dir .. "/lib/lua/5.4"
  assert(os.execute(("mkdir -p %s && cp %s %s/"):format(H.shell_quote(lib), H.shell_quote(module),
                                                       H.shell_quote(lib))))
  return lib
end

local function has(out, line)
  for l in (out .. "\n"):gmatch("(.-)\n") do
    if l == line then return true end
  end
  return false
end

describe("the Lua module in stock lua5.4", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  it("is built next to the luabyte command, with luaopen_airbyte its only entry point", function()
    assert.is_true(require("airbyte.core").executable(module) or
                   io.open(module, "rb") ~= nil)
    local p = assert(io.popen("nm -D --defined-only " .. H.shell_quote(module)))
    local syms = p:read("a")
    p:close()
    assert.truthy(syms:find(" luaopen_airbyte\n", 1, true), syms)
    -- the inner modules load through require "airbyte", never on their own
    assert.falsy(syms:find("luaopen_airbyte_", 1, true))
  end)

  it("runs a plain script whose blocking calls run the loop until they are done", function()
    local out, code = lua54("plain_script.lua", { dir })
    assert.are.equal(0, code, out)
    assert.is_true(has(out, "cached users 500"), out)
    assert.is_true(has(out, "written 500"), out)
    assert.is_true(has(out, "check failed true AirbyteConnectorCheckFailedError"), out)
    -- built-in connectors ran as the luabyte command next to the module, not as lua5.4
    assert.is_true(has(out, "exe " .. H.exe), out)
    assert.is_true(has(out, "slept outside a task"), out)
    local f = assert(io.open(dir .. "/out/_airbyte_raw_users.jsonl", "r"), "no output file")
    local n = 0
    for _ in f:lines() do n = n + 1 end
    f:close()
    assert.are.equal(500, n)
  end)

  it("advances spawned tasks only in ab.step, within a frame loop", function()
    local out, code = lua54("frame_loop.lua", { dir })
    assert.are.equal(0, code, out)
    assert.is_true(has(out, "synced 3000 users"), out)
    assert.is_true(has(out, "ticks 5"), out)
    assert.is_true(has(out, "frames>1 true"), out)
    assert.is_true(has(out, "step after the end false"), out)
    assert.is_true(has(out, "step inside a task raises true"), out)
    assert.truthy(out:match("backend_fd integer"), out)
  end)

  it("runs tasks on luv's loop with ab.use_loop, while the host's timers fire", function()
    local out, code = lua54("luv_host.lua", { dir })
    assert.are.equal(0, code, out)
    assert.is_true(has(out, "blocking outside a task raises true"), out)
    assert.is_true(has(out, "synced 20000"), out)
    assert.is_true(has(out, "timer ticked during the sync true"), out)
  end)

  it("is driven by a host's own poller through backend_fd and backend_timeout", function()
    local out, code = lua54("poll_host.lua", { dir })
    assert.are.equal(0, code, out)
    assert.is_true(has(out, "synced 2000"), out)
    assert.is_true(has(out, "woken by the fd true"), out)
    assert.is_true(has(out, "steps>1 true"), out)
  end)

  it("closes safely when luv is required after airbyte and ab.use_loop(uv) is called", function()
    local out, code = lua54("luv_after_airbyte.lua", {})
    assert.are.equal(0, code, out)
    assert.is_true(has(out, "task done true"), out)
  end)

  it("finds the luabyte command on PATH when none is installed beside the module", function()
    local lib = module_alone(dir)
    local out, code = lua54("which_luabyte.lua", {}, {
      LUA_CPATH = lib .. "/?.so;;", PATH = build_dir .. ":/usr/bin:/bin", LUABYTE_EXE = false })
    assert.are.equal(0, code, out)
    assert.is_true(has(out, "exe " .. build_dir .. "/luabyte"), out)
  end)

  it("says how to point at the luabyte command when there is none to find", function()
    local lib = module_alone(dir)
    local out, code = lua54("no_luabyte.lua", {}, {
      LUA_CPATH = lib .. "/?.so;;", PATH = "/usr/bin:/bin", LUABYTE_EXE = false })
    assert.are.equal(0, code, out)
    assert.is_true(has(out, "false AirbyteConnectorExecutableNotFoundError"), out)
    assert.truthy(out:find("set LUABYTE_EXE", 1, true), out)
  end)
end)
