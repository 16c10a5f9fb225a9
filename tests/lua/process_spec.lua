-- Child processes: exit codes, signals, timeouts, floods, backpressure.
local H = require "helper"
local proc = require "airbyte.process"
local core = require "airbyte.core"

describe("process", function()
  it("reports exit codes", function()
    local out, code, sig = H.run({ "sh", "-c", "echo hello; exit 3" })
    assert.equal("hello", out)
    assert.equal(3, code)
    assert.is_nil(sig)
    local _, code0 = H.run({ "true" })
    assert.equal(0, code0)
  end)

  it("reports death by signal", function()
    local _, code, sig, p = H.run({ "sh", "-c", "kill -9 $$" })
    assert.is_nil(code)
    assert.equal(9, sig)
    assert.matches("SIGKILL", p:exit_description())
  end)

  it("returns nil, message, code when the program cannot start", function()
    local p, err, code = proc.spawn{ argv = { "/nonexistent/source-x" }, name = "source-x" }
    assert.is_nil(p)
    assert.matches("source%-x", err)
    assert.equal("ENOENT", code)
  end)

  it("passes env and cwd", function()
    local out = H.run({ "sh", "-c", "echo $LB_TEST_VAR; pwd" }, { env = { LB_TEST_VAR = "v1" }, cwd = "/tmp" })
    assert.equal("v1\n/tmp", out)
    local out2 = H.run({ "sh", "-c", "echo ${HOME:-unset}" }, { env = { HOME = false } })
    assert.equal("unset", out2)
  end)

  it("times out a silent connector and kills it", function()
    local p = assert(proc.spawn{ argv = { "sleep", "30" }, name = "slowpoke", idle_timeout = 100 })
    local t0 = core.now()
    local line, err, code = p:read_line()
    assert.is_nil(line)
    assert.equal("timeout", code)
    assert.matches("slowpoke", err)
    assert.matches("no output for 100 ms", err)
    local c, sig = p:wait()
    assert.is_nil(c)
    assert.equal(15, sig)
    assert.is_true(core.now() - t0 < 5000)
    assert.equal("idle", p:timed_out())
  end)

  it("says why a connector's output ended the same way in the pump as in the binding", function()
    local pump = require "airbyte.pump"
    local p = assert(proc.spawn{ argv = { "sleep", "30" }, name = "slowpoke", idle_timeout = 100 })
    local ok, err = pcall(pump.count, p)
    assert.is_false(ok)
    assert.matches("connector 'slowpoke' timed out: no output for 100 ms", tostring(err), 1, true)
    p:wait()
  end)

  it("applies an overall timeout even to a chatty connector", function()
    -- 2 s: long enough that even a loaded machine has it print before the
    -- timeout (at 200 ms, under ASan on busy cores, it sometimes had not)
    local p = assert(proc.spawn{ argv = { "sh", "-c", "while true; do echo tick; sleep 0.01; done" },
                                 name = "chatty", timeout = 2000 })
    local n, err, code = 0
    while true do
      local line, e, c = p:read_line()
      if not line then err, code = e, c break end
      n = n + 1
    end
    assert.equal("timeout", code)
    assert.matches("still running after 2000 ms", err)
    assert.is_true(n > 0)
    p:wait()
  end)

  it("keeps memory bounded when a child floods stderr", function()
    local p = assert(proc.spawn{ argv = { "sh", "-c",
      "i=0; while [ $i -lt 200 ]; do { head -c 200000 /dev/zero | tr '\\0' 'e' | fold -w 200; echo; } >&2; i=$((i+1)); done; echo done" },
      name = "flooder" })
    assert.equal("done", p:read_line())
    assert.equal(0, p:wait())
    local st = p:stats()
    assert.equal(200000, st.stderr_lines)
    local tail = p:tail()
    assert.equal(40, #tail)
    assert.matches("^%[stderr%] e+$", tail[#tail])
  end)

  it("gives EPIPE to a writer whose child never reads stdin", function()
    local p = assert(proc.spawn{ argv = { "sh", "-c", "sleep 0.2" }, stdin = true, name = "deaf" })
    local chunk = string.rep("x", 256 * 1024)
    local ok, err, code
    for _ = 1, 400 do   -- queued until the pipe and the 1 MiB mark are full, then waits
      ok, err, code = p:write(chunk)
      if not ok then break end
    end
    assert.is_nil(ok)
    assert.equal("EPIPE", code)
    assert.matches("deaf", err)
    assert.equal(0, p:wait())
  end)

  it("streams through cat with backpressure both ways", function()
    local p = assert(proc.spawn{ argv = { "cat" }, stdin = true, name = "cat" })
    local writer = core.spawn(function()
      local chunk = {}
      for i = 1, 1000 do chunk[i] = ('{"n":%d,"pad":"%s"}'):format(i, string.rep("p", 200)) end
      chunk = table.concat(chunk, "\n") .. "\n"
      for _ = 1, 200 do assert(p:write(chunk)) end
      p:close_stdin()
    end)
    local n = 0
    while p:read_line() do n = n + 1 end
    writer:wait()
    assert.equal(200000, n)
    assert.equal(0, p:wait())
  end)

  -- what a connector may write before it blocks is how long it can hold the
  -- host's CPU once a read wakes it (proc.c, OUTPUT_PIPE_BYTES)
  it("gives a connector's output a 64 KiB pipe, not a socket with a deeper buffer", function()
    if os.execute("command -v python3 >/dev/null") ~= true then
      return pending("skip: python3 is not installed (it asks the kernel for the pipe's size)")
    end
    local out, code = H.run({ "python3", "-c",
      "import fcntl, os; print(os.readlink('/proc/self/fd/1').split(':')[0], fcntl.fcntl(1, 1032))" })
    assert.equal(0, code)
    assert.equal("pipe 65536", out)   -- 1032: F_GETPIPE_SZ
  end)

  -- out of file descriptors, a start fails at the output pipe (proc.c) or
  -- inside uv_spawn: each says so, gives its code, and leaks nothing (the
  -- same start fails the same way twice, and works once they are back)
  it("says why a connector cannot start when no file descriptors are left, and recovers", function()
    local out, code = H.run({ "sh", "-c", ("ulimit -n 64 && exec %s %s"):format(
      H.shell_quote(H.exe), H.shell_quote(H.fixtures .. "/spawn_until_no_fds.lua")) })
    assert.equal(0, code, out)
    local pipe = "cannot start connector 'echoer' (echo): no pipe for its output: too many open files EMFILE"
    local spawn = "cannot start connector 'echoer' (echo): too many open files EMFILE"
    assert.equal(table.concat({ "first: ok 0", "one free: " .. pipe, "one free: " .. pipe,
                                "two free: " .. spawn, "two free: " .. spawn, "all free: ok 0" }, "\n"), out)
  end)

  it("runs two connectors at once", function()
    local function count(n)
      local p = assert(proc.spawn{ argv = H.fixture_connector("printer.lua", "repeat:" .. n .. ":line") })
      local c = 0
      while p:read_line() do c = c + 1 end
      return c
    end
    local a = core.spawn(count, 5000)
    local b = core.spawn(count, 7000)
    assert.equal(5000, a:wait())
    assert.equal(7000, b:wait())
  end)

  it("raises on a line longer than max_line, naming the connector", function()
    local p = assert(proc.spawn{ argv = H.fixture_connector("printer.lua", '{"type":"LOG","log":{"level":"INFO","message":"a"}}', "long:5000"),
                                 name = "source-long", max_line = 1000 })
    local ok, err = pcall(function()
      for _ in p:messages() do end
    end)
    assert.is_false(ok)
    assert.matches("source%-long", tostring(err))
    assert.matches("longer than the limit of 1000 bytes", tostring(err))
    p:close()
  end)

  it("terminates with a grace period", function()
    local p = assert(proc.spawn{ argv = { "sh", "-c", "trap '' TERM; echo ready; sleep 30" }, name = "stubborn" })
    assert.equal("ready", p:read_line())
    local t0 = core.now()
    p:terminate()
    local code, sig = p:wait()
    assert.equal(9, sig)       -- SIGTERM ignored, SIGKILL after the grace period
    assert.is_true(core.now() - t0 >= 1500)
  end)

  it("is safe to close twice and raises on use after close", function()
    local p = assert(proc.spawn{ argv = { "true" } })
    p:close()
    p:close()
    assert.has_error(function() p:read_line() end, "attempt to use a closed process")
  end)

  it("refuses to wait outside a task context", function()
    local p = assert(proc.spawn{ argv = { "sleep", "1" } })
    local ok, err = pcall(table.sort, { 1, 2, 3 }, function() p:read_line() return false end)
    assert.is_false(ok)
    assert.matches("not allowed here", err)
    p:close()
  end)
end)
