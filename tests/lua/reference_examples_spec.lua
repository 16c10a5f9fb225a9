-- The host examples of docs/reference.md run as they are written: each
-- ```lua block whose first line names a lua5.4 command runs in stock
-- lua5.4 with the airbyte.so under test, each ```c block whose first line
-- is a cc command is built against the libluabyte.so under test and run.
local H = require "helper"

local function blocks(lang, first_line)
  local text = assert(H.read_file(H.root .. "/docs/reference.md"))
  local found = {}
  for body in text:gmatch("\n```" .. lang .. "\n(.-)\n```") do
    local first = body:match("^[^\n]*")
    if first:find(first_line) then found[#found + 1] = { first = first, body = body } end
  end
  return found
end

-- stdout, exit code and, for messages, stdout with the stderr lines
local function run_in(dir, argv)
  local env = H.host_env()
  env.AIRBYTE_CACHE_ROOT = dir
  local out, code, _, p = H.run(argv, { env = env, cwd = dir, timeout = 120000 })
  return out, code, out .. "\n" .. table.concat(p:tail(), "\n")
end

describe("the reference's host examples", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  local lua_examples = blocks("lua", "lua5%.4 ")
  local c_examples = blocks("c", "^/%* cc ")

  it("are found", function()
    assert.is_true(#lua_examples >= 4, "lua examples: " .. #lua_examples)
    assert.is_true(#c_examples >= 2, "C examples: " .. #c_examples)
  end)

  for i, ex in ipairs(lua_examples) do
    it("run in stock lua5.4: " .. ex.first, function()
      local path = dir .. "/example" .. i .. ".lua"
      H.write_file(path, ex.body .. "\n")
      local out, code, all = run_in(dir, { "lua5.4", path })
      assert.are.equal(0, code, all)
      assert.truthy(out:find("users", 1, true), all)
    end)
  end

  for i, ex in ipairs(c_examples) do
    it("build and run against libluabyte: " .. ex.first, function()
      local src, exe = dir .. "/example" .. i .. ".c", dir .. "/example" .. i
      H.write_file(src, ex.body .. "\n")
      local cc = { "cc", "-Wall", "-Werror", src, "-I" .. H.root .. "/runtime/include",
                   "-L" .. H.build_dir, "-lluabyte", "-Wl,-rpath," .. H.build_dir, "-o", exe }
      if os.getenv("LB_ASAN") then table.insert(cc, 2, "-fsanitize=address,undefined") end
      local _, code, all = run_in(dir, cc)
      assert.are.equal(0, code, all)
      local out
      out, code, all = run_in(dir, { exe })
      assert.are.equal(0, code, all)
      assert.truthy(#out > 0, all)
    end)
  end
end)
