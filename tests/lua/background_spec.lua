-- Where luabyte's own work runs: ab.background_cpus puts the cache's
-- threads and the connectors on the CPUs a host names (a host that pins
-- its loop thread keeps them off its CPU), at a lower priority.
local H = require "helper"
local ab = require "airbyte"
local proc = require "airbyte.process"

local function ncpu()
  local f = io.popen("nproc")
  local n = tonumber(f:read("l"))
  f:close()
  return n or 1
end

-- this process's id (io.open runs here; a shell from io.popen is another)
local function pid()
  local f = io.open("/proc/self/stat")
  local n = f:read("n")
  f:close()
  return math.tointeger(n)
end

-- Cpus_allowed_list and nice of every thread of this process
local function threads()
  local out = {}
  local ls = io.popen("ls /proc/" .. pid() .. "/task")
  for tid in ls:lines() do
    local st = io.open("/proc/" .. pid() .. "/task/" .. tid .. "/status")
    local stat = io.open("/proc/" .. pid() .. "/task/" .. tid .. "/stat")
    if st and stat then
      local cpus = st:read("a"):match("Cpus_allowed_list:%s*(%S+)")
      -- field 19 of stat is nice; the name (field 2) may hold spaces
      local rest = stat:read("a"):match("%) (.*)$")
      local fields = {}
      for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
      out[#out + 1] = { tid = tid, cpus = cpus, nice = tonumber(fields[17]) }
    end
    if st then st:close() end
    if stat then stat:close() end
  end
  ls:close()
  return out
end

describe("background_cpus", function()
  after_each(function() ab.background_cpus(nil) end)

  it("rejects a list that is not a CPU list, saying what it takes", function()
    for _, bad in ipairs({ "x", "1-", "3-1", "1,,2", "-1", "99999" }) do
      local ok, err = pcall(ab.background_cpus, bad)
      assert.is_false(ok, bad)
      assert.matches("background_cpus '" .. bad:gsub("%p", "%%%0") .. "' is not a CPU list", err)
    end
  end)

  it("puts a connector started afterwards on those CPUs", function()
    if ncpu() < 2 then return pending("skip: needs 2 CPUs, this machine has " .. ncpu()) end
    ab.background_cpus("0")
    -- the child waits for a line first, so what it reports is after the pin
    local p = assert(proc.spawn{ argv = { "sh", "-c", "read x; grep Cpus_allowed_list /proc/self/status" },
                                 stdin = true, name = "where" })
    assert(p:write("go\n"))
    p:close_stdin()
    assert.equal("Cpus_allowed_list:\t0", p:read_line())
    assert.equal(0, p:wait())
    -- and none once the list is cleared: the child runs where this thread may
    ab.background_cpus(nil)
    local mine = io.open("/proc/" .. pid() .. "/status"):read("a"):match("Cpus_allowed_list:%s*(%S+)")
    local q = assert(proc.spawn{ argv = { "sh", "-c", "read x; grep Cpus_allowed_list /proc/self/status" },
                                 stdin = true, name = "where" })
    assert(q:write("go\n"))
    q:close_stdin()
    assert.equal("Cpus_allowed_list:\t" .. mine, q:read_line())
    assert.equal(0, q:wait())
  end)

  it("puts the cache's writer thread on those CPUs, at nice 10", function()
    if ncpu() < 2 then return pending("skip: needs 2 CPUs, this machine has " .. ncpu()) end
    ab.background_cpus("0")
    local dir = H.tmpdir()
    local seen
    local source = ab.get_source("source-faker", { config = { count = 3000, seed = 1 } })
    source:select_streams({ "users" })
    local n = 0
    source:read({ cache = ab.new_local_cache{ cache_name = "bg", cache_dir = dir }, quiet = true,
      on_record = function()
        n = n + 1
        if n % 500 == 0 and not seen then
          for _, t in ipairs((threads())) do
            if t.cpus == "0" and t.nice == 10 then seen = t end
          end
        end
      end })
    assert.is_truthy(seen, "no thread on CPU 0 at nice 10 while the cache was written")
  end)
end)
