-- airbyte.sandbox: validators for code you do not trust, in a Lua state of
-- their own with a memory and an instruction limit that pcall cannot hold off.
local H = require "helper"
local sandbox = require "airbyte.sandbox"
local json = require "airbyte.json"

local LIMITS = { memory = "4MB", instructions = 2e5 }

local function sb(code, limits)
  return sandbox.from_string(code, limits or LIMITS, "=test")
end

describe("sandbox", function()
  it("runs a validator: false means invalid, with a message and a field", function()
    local v = sb([[return function(u)
      if u.age < 0 then return false, "negative age", "age" end
      return true
    end]])
    assert.same({ true }, { (v{ age = 3 }) })
    local ok, msg, field = v{ age = -1 }
    assert.is_false(ok)
    assert.equal("negative age", msg)
    assert.equal("age", field)
    -- returning nothing is valid; a method spelling works too
    local w = sb("return function() end")
    assert.is_true((w:validate{}))
    assert.is_nil(w.last_error)
  end)

  it("sees the record read-only, nested values, null and BigInt digits included", function()
    local v = sb([[return function(r)
      local ok = pcall(function() r.id = 9 end)
      local ok2 = pcall(function() r.tags[1] = "x" end)
      local n = 0
      for k in pairs(r) do n = n + 1 end
      return not ok and not ok2 and r.id == 1 and #r.tags == 2 and r.tags[2] == "b"
        and r.gone == null and r.big == "123456789012345678901234567890" and n == 4, "checked"
    end]])
    local rec = json.decode('{"id":1,"tags":["a","b"],"gone":null,"big":123456789012345678901234567890}')
    assert.same({ true, "checked" }, { v(rec) })
    assert.equal(1, rec.id)
  end)

  it("ends an infinite loop, even inside pcall, and the host goes on", function()
    for _, code in ipairs({
      "return function() while true do end end",
      "return function() while true do pcall(function() while true do end end) end end",
      "return function() local function f() return pcall(f) end while true do f() end end",
      "return function() while true do xpcall(function() while true do end end, function() while true do end end) end end",
    }) do
      local v = sb(code)
      local ok, msg = v{}
      assert.is_false(ok, code)
      assert.matches("sandbox: instruction limit exceeded", msg, 1, true)
      assert.matches("instruction limit", v.last_error)
      -- the validator state is still usable for the next record
      assert.is_false((v{}))
    end
  end)

  it("ends a memory bomb, even inside pcall", function()
    for _, code in ipairs({
      [[return function() return string.rep("x", 1e9) end]],
      [[return function() local t = {} while true do t[#t + 1] = string.rep("y", 1000) .. #t end end]],
      [[return function() while true do pcall(string.rep, "x", 1e8) end end]],
      [[local keep = {} return function() for i = 1, 1e7 do keep[i] = {} end end]],
    }) do
      local v = sb(code, { memory = "4MB", instructions = 1e8 })
      local ok, msg = v{}
      assert.is_false(ok, code)
      assert.matches("sandbox: memory limit exceeded", msg, 1, true)
      assert.is_true(v.memory_used <= 4 * 1024 * 1024)
    end
  end)

  it("turns deep recursion into a failed call", function()
    local v = sb("local function f(n) return f(n + 1) + 1 end return function() return f(1) end",
      { memory = "64MB", instructions = 1e9 })
    local ok, msg = v{}
    assert.is_false(ok)
    assert.matches("sandbox: ", msg, 1, true)
  end)

  it("offers nothing to escape with", function()
    local v = sb([[return function()
      local reach = {}
      for _, name in ipairs({ "io", "os", "require", "debug", "load", "loadfile", "dofile",
                              "collectgarbage", "print", "package", "loadstring", "module" }) do
        if _G[name] ~= nil then reach[#reach + 1] = name end
      end
      if string.dump then reach[#reach + 1] = "string.dump" end
      local ok = pcall(function() getmetatable("").__index = {} end)
      if ok then reach[#reach + 1] = "string metatable" end
      if getmetatable("") ~= false then reach[#reach + 1] = "getmetatable('')" end
      return #reach == 0, table.concat(reach, ",")
    end]])
    local ok, msg = v{}
    assert.is_true(ok, msg)
    -- the host's globals are not there either
    _G.LB_SANDBOX_PROBE = "host"
    assert.is_true((sb("return function() return LB_SANDBOX_PROBE == nil end")({})))
    _G.LB_SANDBOX_PROBE = nil
    -- what the libraries do offer still works
    assert.is_true((sb([[return function(r)
      return utf8.len(r.s) == 3 and math.max(1, 2) == 2 and table.concat({ "a", "b" }) == "ab"
        and ("%d"):format(7) == "7" and ("abc"):upper() == "ABC"
    end]])({ s = "été" })))
  end)

  it("refuses bytecode, a chunk that returns no function, and bad options", function()
    local dumped = string.dump(function() return function() end end)
    assert.has_error(function() sb(dumped) end)
    local ok, err = pcall(sb, "return 42")
    assert.is_false(ok)
    assert.matches("must return the validator function", err)
    ok, err = pcall(sb, "while true do end")     -- the chunk's own top level is limited too
    assert.is_false(ok)
    assert.matches("instruction limit", err)
    ok, err = pcall(sandbox.from_string, "return function() end", { memroy = "1MB" })
    assert.is_false(ok)
    assert.matches("unknown option 'memroy'", err)
    ok, err = pcall(sandbox.from_string, "return function() end", { memory = "lots" })
    assert.is_false(ok)
    assert.matches("is not a size", err)
    ok, err = pcall(sandbox.load, "/nonexistent/rules.lua")
    assert.is_false(ok)
    assert.matches("cannot open /nonexistent/rules.lua", err)
    local v = sb("return function() end")
    v:close()
    assert.has_error(function() v{} end, "the sandbox is closed")
  end)

  it("validates records of a real read from a file, dropping what it rejects", function()
    local dir, cache = H.open_test_cache()
    local rules = dir .. "/users.lua"
    H.write_file(rules, [[
      -- rules for users: ages in range, emails with one @
      return function(u)
        if u.age < 30 then return false, "too young", "age" end
        if not u.email:find("^[^@]+@[^@]+$") then return false, "bad email", "email" end
      end]])
    local v = sandbox.load(rules, { memory = "8MB", instructions = 1e6 })
    local ab = require "airbyte"
    local src = ab.get_source("source-faker", { config = { count = 200, seed = 7 } })
    src:select_streams({ "users" })
    local rejected, young = 0, 0
    local r = src:read{ cache = cache, hooks = { users = function(u)
      local ok, msg = v(u)
      if not ok then
        rejected = rejected + 1
        if msg == "too young" then young = young + 1 end
        return false
      end
    end } }
    assert.is_true(rejected > 0)
    assert.equal(young, rejected)
    assert.equal(200 - rejected, #r["users"])
    assert.equal(0, #r["users"]:with_filter("age < 30"):to_table())
    H.close_test_cache(dir, cache)
  end)
end)
