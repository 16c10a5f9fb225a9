-- One rule in one place (issue 13): library code reports through
-- airbyte.log and returns exit statuses instead of exiting; the kit's face
-- keeps its API over lua/airbyte/cdk/*.lua, cdk.clock included.
local H = require "helper"

local capture_stderr = H.capture_stderr

describe("airbyte.log", function()
  local log = require "airbyte.log"

  it("writes to the stream io.stderr is at the time of the call", function()
    local res, text = capture_stderr(function()
      return log.write("warning: ", "one", "\n") == io.stderr
    end)
    assert.is_true(res[1])
    assert.is_true(res[2])
    assert.equal("warning: one\n", text)
  end)
end)

describe("entry points return exit statuses", function()
  it("airbyte.builtin.run: an unknown connector is status 2 with a message, not an exit", function()
    local res, text = capture_stderr(function()
      return require("airbyte.builtin").run("no-such-connector", { "spec" })
    end)
    assert.is_true(res[1])
    assert.equal(2, res[2])
    assert.matches("no built%-in connector 'no%-such%-connector'", text)
  end)

  it("airbyte.cli.main: an unknown subcommand is status 2 with the usage", function()
    local res, text = capture_stderr(function() return require("airbyte.cli").main("frobnicate", {}) end)
    assert.is_true(res[1])
    assert.equal(2, res[2])
    assert.matches("unknown subcommand 'frobnicate'", text)
  end)

  it("cdk.main: a command the connector does not support is status 2 with the usage", function()
    local cdk = require "airbyte.cdk"
    local src = cdk.source { spec = { connectionSpecification = { type = "object" } }, read = function() end }
    local out = { write = function() end, flush = function() end }
    local res, text = capture_stderr(function() return cdk.main(src, { "write", "--config", "c", "--catalog", "k" }, { out = out }) end)
    assert.is_true(res[1])
    assert.equal(2, res[2])
    assert.matches("a source does not support 'write'", text)
    assert.matches("usage: <connector> spec", text)
  end)
end)

describe("the cdk face", function()
  local cdk = require "airbyte.cdk"

  it("keeps the kit's API", function()
    for _, name in ipairs({ "null", "obj", "array", "encode", "escape", "validate", "error", "config_error",
                            "clock", "stream_state", "source", "destination", "main", "parse_message",
                            "record_data_json", "with_destination_stats", "stream_status", "record_counter",
                            "uuid4", "fsync", "mkdir_p", "output_file", "file_destination", "raw_sync_mode" }) do
      assert.is_not_nil(cdk[name], name)
    end
  end)

  it("passes a host's cdk.clock to the emitter", function()
    local saved = cdk.clock
    cdk.clock = function() return 1234 end
    local lines = {}
    local out = { write = function(_, ...) lines[#lines + 1] = table.concat({ ... }) end, flush = function() end }
    local dir = H.tmpdir()
    H.write_file(dir .. "/c.json", "{}")
    H.write_file(dir .. "/k.json", '{"streams":[{"stream":{"name":"s","json_schema":{}},"sync_mode":"full_refresh"}]}')
    local src = cdk.source { spec = { connectionSpecification = { type = "object" } },
      read = function(_, _, _, emit) emit.record("s", { a = 1 }) end }
    local ok, code = pcall(cdk.main, src, { "read", "--config", dir .. "/c.json", "--catalog", dir .. "/k.json" },
                           { out = out })
    cdk.clock = saved
    H.rm_rf(dir)
    assert.is_true(ok, code)
    assert.equal(0, code)
    local text = table.concat(lines)
    assert.matches('{"type":"RECORD","record":{"stream":"s","data":{"a":1},"emitted_at":1234}}', text, 1, true)
    assert.matches('"emitted_at":1234.0', text, 1, true)
    assert.equal(saved, cdk.clock)
  end)

  it("stamps rows with one rule for every destination of the kit (record_ms, iso_utc)", function()
    local cdk = require "airbyte.cdk"
    local now = function() return 5000 end
    assert.equal(1234, cdk.record_ms(1234, now))
    assert.equal(1234, cdk.record_ms(1234.9, now))   -- a float is floored
    assert.equal(5000, cdk.record_ms(nil, now))      -- none: now
    assert.equal("1970-01-01T00:00:01.234Z", cdk.iso_utc(1234, "Z"))
    assert.equal("1970-01-01T00:00:01.999+00:00", cdk.iso_utc(1999, "+00:00"))
    assert.equal("2022-11-29T00:35:07.441Z", cdk.iso_utc(1669682107441, "Z"))
  end)
end)

-- The map (issue 13): every file of the runtime and the Lua layer has its line
-- in docs/architecture.md's "Every file, one line" and opens with a comment.
describe("docs/architecture.md names every file", function()
  local FOLDERS = {                    -- folder, and which of its files count
    { "runtime/src", "%.[ch]$" },
    { "runtime/cli", "" },
    { "lua/airbyte", "" },
    { "lua/connectors", "" },
  }
  local map_path = H.root .. "/docs/architecture.md"

  -- The files of FOLDERS as { folder, name } (name relative to the folder,
  -- e.g. "cdk/args.lua"); nil, with the test marked pending, when the
  -- sources are not beside the binary's working directory.
  local function source_files(pending)
    if not H.exists(H.root .. "/runtime/src/jskim.c") or not H.exists(map_path) then
      pending("skip: the sources (runtime/src, docs/architecture.md) are not beside " .. H.root)
      return nil
    end
    local files = {}
    for _, f in ipairs(FOLDERS) do
      local p = assert(io.popen("cd " .. H.shell_quote(H.root .. "/" .. f[1]) .. " && find . -type f | sort"))
      for line in p:lines() do
        local name = line:gsub("^%./", "")
        if name:match(f[2]) then files[#files + 1] = { f[1], name } end
      end
      p:close()
    end
    return files
  end

  -- The backticked names of the section "## Every file, one line".
  local function named_in_map()
    local text = H.read_file(map_path)
    local section = text:match("\n## Every file, one line\n(.-)\n## ") or text:match("\n## Every file, one line\n(.*)$")
    assert(section, "docs/architecture.md has no section '## Every file, one line'")
    local names = {}
    for line in section:gmatch("[^\n]+") do
      local head = line:match("^%- (.-) — ")      -- "- `a.c` / `a.h` — its concern"
      if head then for name in head:gmatch("`([^`]+)`") do names[name] = true end end
    end
    return names
  end

  it("gives each file of runtime/src, runtime/cli, lua/airbyte and lua/connectors a line", function()
    local files = source_files(pending)
    if not files then return end
    assert.is_true(#files > 100, "found only " .. #files .. " files")
    local names, missing = named_in_map(), {}
    for _, f in ipairs(files) do
      if not names[f[2]] then missing[#missing + 1] = f[1] .. "/" .. f[2] end
    end
    assert.same({}, missing)
  end)

  it("finds a file without its line", function()
    local names = named_in_map()
    assert.is_true(names["jskim.c"] and names["jskim.h"] and names["cdk/args.lua"] and names["main.c"])
    assert.is_nil(names["no_such_file.c"])
  end)

  it("each of those files opens with a comment (its concern)", function()
    local files = source_files(pending)
    if not files then return end
    local bad = {}
    for _, f in ipairs(files) do
      local path = f[1] .. "/" .. f[2]
      local first = H.read_file(H.root .. "/" .. path):match("^%s*([^\n]*)")
      local opener = path:match("%.lua$") and "^%-%-" or "^/%*"
      if not first:match(opener) then bad[#bad + 1] = path .. ": " .. first end
    end
    assert.same({}, bad)
  end)
end)
