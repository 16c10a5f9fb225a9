-- The luabyte command: options, exit statuses, arg, Ctrl-C.
local H = require "helper"
local proc = require "airbyte.process"
local core = require "airbyte.core"

local function luabyte(...)
  local p = assert(proc.spawn{ argv = { H.exe, ... }, name = "luabyte" })
  local out = {}
  while true do
    local line = p:read_line()
    if not line then break end
    out[#out + 1] = line
  end
  local code = p:wait()
  return table.concat(out, "\n"), code, table.concat(p:tail(), "\n")
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

describe("luabyte command", function()
  it("prints its version", function()
    local out, code = luabyte("-v")
    assert.equal(0, code)
    assert.matches("^luabyte %d+%.%d+%.%d+ %(Lua 5%.4", out)
  end)

  it("runs -e code and scripts with arg", function()
    local out, code = luabyte("-e", "print(1 + 1)")
    assert.equal(0, code)
    assert.equal("2", out)
    local dir = H.tmpdir()
    H.write_file(dir .. "/s.lua", "print(arg[0]:match('s.lua$'), arg[1], select('#', ...), ...)")
    local out2 = luabyte(dir .. "/s.lua", "a", "b")
    assert.equal("s.lua\ta\t2\ta\tb", out2)
    H.rm_rf(dir)
  end)

  it("exits 1 with a traceback on a script error", function()
    local _, code, err = luabyte("-e", "local function f() error('kaboom') end f()")
    assert.equal(1, code)
    assert.matches("kaboom", err)
    assert.matches("stack traceback", err)
  end)

  it("exits 1 for a missing script and 2 for usage errors", function()
    local _, code, err = luabyte("/nonexistent/script.lua")
    assert.equal(1, code)
    assert.matches("cannot open", err)
    local _, code2, err2 = luabyte("--bogus")
    assert.equal(2, code2)
    assert.matches("unknown option", err2)
    local _, code3 = luabyte("connector")
    assert.equal(2, code3)
    local _, code4, err4 = luabyte("connector", "source-nope", "spec")
    assert.equal(2, code4)
    assert.matches("no built%-in connector 'source%-nope'", err4)
  end)

  it("loads Lua modules from LUABYTE_LUA_DIR before the embedded ones", function()
    local dir = H.tmpdir()
    assert(require("airbyte.core").mkdir_p(dir .. "/airbyte"))
    H.write_file(dir .. "/airbyte/yaml.lua", "return { encode = function() return 'from the tree' end }")
    H.write_file(dir .. "/dev_only.lua", "return 'dev module'")
    local code = "print(require('airbyte.yaml').encode({}), (require('dev_only')))"
    local out = H.run({ H.exe, "-e", code }, { env = { LUABYTE_LUA_DIR = dir } })
    assert.equal("from the tree\tdev module", out)
    local embedded = H.run({ H.exe, "-e", "print(require('airbyte.yaml').encode({a = 1}))" },
                           { env = { LUABYTE_LUA_DIR = false } })
    assert.equal("a: 1", embedded)
    H.rm_rf(dir)
  end)

  it("starts fast enough to matter", function()
    -- CPU time of 10 starts (the shell's `times`: its children's user and
    -- system seconds), not the wall clock, which a loaded machine stretches;
    -- generous: scripts/bench.sh checks the 10 ms target, this catches regressions
    local out = H.run({ "bash", "-c", ("for i in 1 2 3 4 5 6 7 8 9 10; do %s -e ''; done; times"):format(
      H.shell_quote(H.exe)) })
    local cu_m, cu_s, cs_m, cs_s = out:match("\n(%d+)m([%d.]+)s (%d+)m([%d.]+)s%s*$")
    assert.is_truthy(cu_m, out)
    local cpu = (tonumber(cu_m) + tonumber(cs_m)) * 60 + tonumber(cu_s) + tonumber(cs_s)
    assert.is_true(cpu / 10 < 0.2, ("%.3f s of CPU per start"):format(cpu / 10))
  end)

  it("stops a script busy in a Lua loop on Ctrl-C", function()
    local p = assert(proc.spawn{ argv = { H.exe, "-e", "print('busy'); io.stdout:flush(); while true do end" },
                                 name = "luabyte" })
    assert.equal("busy", p:read_line())
    p:kill(2)
    assert.equal(130, p:wait())
  end)

  it("cancels cleanly on the first Ctrl-C: children killed, temp files removed", function()
    local p = assert(proc.spawn{ argv = { H.exe, H.fixtures .. "/interruptible.lua" }, name = "luabyte" })
    local line = assert(p:read_line())
    local pid, tmp = line:match("^child (%d+) tmp (%S+)$")
    assert.is_truthy(pid)
    assert.is_true(alive(pid))
    assert.is_truthy(io.open(tmp, "r"))
    p:kill(2)                              -- SIGINT
    local code = p:wait()
    assert.equal(130, code)
    core.sleep(50)
    assert.is_false(alive(pid))
    assert.is_nil(io.open(tmp, "r"))
  end)
end)
