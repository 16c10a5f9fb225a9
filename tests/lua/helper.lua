-- Shared by the busted specs (loaded through tests/lua/.busted).
-- Specs run inside a luabyte task, so they can wait on processes.
local core = require "airbyte.core"

local H = {}

H.exe = core.exe_path()
H.root = os.getenv("PWD")
H.fixtures = H.root .. "/tests/fixtures"
H.shared = H.root .. "/../shared"

-- true when ../shared (reference fixtures, conformance suites) is beside the clone
function H.have_shared()
  local f = io.open(H.shared .. "/DESIGN.md", "r")
  if f then f:close() return true end
  return false
end

-- Marks a test pending with the reason when ../shared is missing; returns
-- true when the test can go on.
function H.need_shared(pending)
  if H.have_shared() then return true end
  pending("skip: ../shared is not beside this clone (reference fixtures missing)")
  return false
end

function H.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function H.exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

-- Lines in a file (0 when it does not exist).
function H.count_lines(path)
  local f = io.open(path)
  if not f then return 0 end
  local n = 0
  for _ in f:lines() do n = n + 1 end
  f:close()
  return n
end

function H.write_file(path, content)
  local f = assert(io.open(path, "wb"))
  f:write(content)
  f:close()
end

function H.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- A fresh empty directory, removed by H.rm_rf.
function H.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p " .. H.shell_quote(p)))
  return p
end

function H.rm_rf(path)
  if path and #path > 5 then os.execute("rm -rf " .. H.shell_quote(path)) end
end

-- H.capture_stderr(fn) -> fn's pcall results (table.pack) and what was
-- written to io.stderr meanwhile.
function H.capture_stderr(fn)
  local dir = H.tmpdir()
  local path = dir .. "/stderr.txt"
  local saved = io.stderr
  local f = assert(io.open(path, "w"))
  io.stderr = f
  local res = table.pack(pcall(fn))
  io.stderr = saved
  f:close()
  local text = H.read_file(path)
  H.rm_rf(dir)
  return res, text
end

-- Runs a command line through luabyte's process layer and returns
-- stdout (string), exit code, signal, the process object.
function H.run(argv, opts)
  local proc = require "airbyte.process"
  opts = opts or {}
  local spec = { argv = argv, env = opts.env, cwd = opts.cwd, stdin = opts.stdin ~= nil,
                 idle_timeout = opts.idle_timeout, timeout = opts.timeout, name = opts.name }
  local p = assert(proc.spawn(spec))
  if opts.stdin then
    p:write(opts.stdin)
    p:close_stdin()
  end
  return H.finish(p)
end

-- Reads a started process's stdout to its end and waits for it: stdout
-- (string), exit code, signal, the process object.
function H.finish(p)
  local out = {}
  while true do
    local line = p:read_line()
    if not line then break end
    out[#out + 1] = line
  end
  local code, sig = p:wait()
  return table.concat(out, "\n"), code, sig, p
end

-- The environment for a host that loads the airbyte.so built next to H.exe
-- (stock lua5.4, a C host linked with that build's libluabyte): the
-- sanitizer build's libraries need the sanitizer runtimes loaded first.
H.build_dir = H.exe:match("^(.*)/[^/]+$")
function H.host_env(env)
  env = env or {}
  if os.getenv("LB_ASAN") then
    local p = io.popen("gcc -print-file-name=libasan.so; gcc -print-file-name=libubsan.so")
    local asan, ubsan = p:read("l"), p:read("l")
    p:close()
    env.LD_PRELOAD = asan .. " " .. ubsan
    env.ASAN_OPTIONS = "detect_leaks=0"
  end
  if env.LUA_CPATH == nil then env.LUA_CPATH = H.build_dir .. "/?.so;;" end
  return env
end

-- argv for running a luabyte script from tests/fixtures/connectors.
function H.fixture_connector(name, ...)
  return { H.exe, H.fixtures .. "/connectors/" .. name, ... }
end

-- An executable file that runs fixture connector `name` (for local_executable).
function H.fixture_executable(dir, name)
  local path = dir .. "/" .. name
  H.write_file(path, ("#!/bin/sh\nexec %s %s %s \"$@\"\n"):format(H.shell_quote(H.exe),
    H.shell_quote(H.fixtures .. "/connectors/run_connector.lua"), H.shell_quote(name)))
  assert(os.execute("chmod +x " .. H.shell_quote(path)))
  return path
end

-- A fresh SQLite cache in its own directory.
function H.new_cache(dir)
  local ab = require "airbyte"
  return ab.SQLiteCache{ db_path = dir .. "/cache.sqlite" }
end

-- --- storage backends ---------------------------------------------------------
-- A backend for the cache specs: { name =, new_cache(name [, opts]) -> a
-- cache object (airbyte.caches), open_db(name) -> the binding's db
-- (airbyte.sqlite userdata) on the same storage, cache_lua(name) -> Lua
-- source text of an expression that opens that cache (for a child script
-- that has `ab = require "airbyte"`), fresh_cache() -> a cache on storage
-- no other call uses }; the same name is the same storage (a file, a
-- Postgres schema) within one run. nil and the reason when the backend
-- cannot run here.
local backends = {}

function backends.sqlite(dir)
  local caches = require "airbyte.caches"
  local sqlite = require "airbyte.sqlite"
  return {
    name = "sqlite",
    new_cache = function(name, opts)
      opts = opts or {}
      return caches.SQLiteCache{ db_path = dir .. "/" .. name .. ".sqlite", table_prefix = opts.table_prefix }
    end,
    open_db = function(name) return assert(sqlite.open(dir .. "/" .. name .. ".sqlite")) end,
    cache_lua = function(name) return ("ab.SQLiteCache{ db_path = %q }"):format(dir .. "/" .. name .. ".sqlite") end,
  }
end

-- PostgreSQL: when the backend is built in (caches.PostgresCache and the
-- binding's open_pg) and a server is reachable through libpq's variables
-- (PGHOST...; scripts/pg.sh start prints them). Each run uses schemas of
-- its own.
function backends.postgres()
  local caches = require "airbyte.caches"
  local sqlite = require "airbyte.sqlite"
  if not caches.PostgresCache or not sqlite.open_pg then
    return nil, "the PostgreSQL backend is not built into this luabyte"
  end
  if (os.getenv("PGHOST") or "") == "" then
    return nil, "no PostgreSQL server: set PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE (scripts/pg.sh start)"
  end
  local run = require("airbyte.core").ulid():lower()
  local function params(name)
    return { host = os.getenv("PGHOST"), port = tonumber(os.getenv("PGPORT") or ""),
             database = os.getenv("PGDATABASE"), username = os.getenv("PGUSER"),
             password = os.getenv("PGPASSWORD"), schema_name = "lbt_" .. run .. "_" .. name }
  end
  return {
    name = "postgres",
    new_cache = function(name, opts)
      local p = params(name)
      p.table_prefix = opts and opts.table_prefix
      return caches.PostgresCache(p)
    end,
    open_db = function(name) return assert(sqlite.open_pg(params(name))) end,
    cache_lua = function(name)
      local p, out = params(name), {}
      for _, k in ipairs({ "host", "port", "database", "username", "password", "schema_name" }) do
        if p[k] ~= nil then out[#out + 1] = ("%s = %q"):format(k, p[k]) end
      end
      return "ab.PostgresCache{ " .. table.concat(out, ", ") .. " }"
    end,
  }
end

H.backend_names = { "sqlite", "postgres" }

-- Runs a cache spec once per backend: fn(b) registers its tests (it,
-- describe) inside a describe named after the backend; a backend that
-- cannot run here is one pending test saying why.
--   H.each_backend(function(b)
--     it("keeps state", function() local cache = b.new_cache("state") ... end)
--   end)
function H.each_backend(fn)
  local busted = require "busted"      -- the spec's describe/pending/teardown
  local describe, pending, teardown = busted.describe, busted.pending, busted.teardown
  for _, name in ipairs(H.backend_names) do
    describe("[" .. name .. "]", function()
      local dir = H.tmpdir()
      local b, why = backends[name](dir)
      teardown(function() H.rm_rf(dir) end)
      if not b then
        pending(name .. ": " .. why)
        return
      end
      local seq = 0
      function b.fresh_cache()
        seq = seq + 1
        return b.new_cache("fresh" .. seq)
      end
      fn(b)
    end)
  end
end

-- Polls cond every 20 ms until it is true (true) or timeout_ms pass (false).
function H.wait_until(cond, timeout_ms)
  local core = require "airbyte.core"
  local deadline = core.now() + (timeout_ms or 30000)
  while core.now() < deadline do
    if cond() then return true end
    core.sleep(20)
  end
  return false
end

-- A fresh directory with a SQLite cache in it, for one test; and its removal.
function H.open_test_cache()
  local dir = H.tmpdir()
  return dir, H.new_cache(dir)
end

function H.close_test_cache(dir, cache)
  if cache then cache:close() end
  H.rm_rf(dir)
end

-- Runs fn, which must raise a structured error; returns its kind and the error.
function H.error_kind(fn)
  local errors = require "airbyte.errors"
  local ok, e = pcall(fn)
  assert(not ok, "expected an error")
  assert(errors.is_error(e), "expected a structured error, got " .. tostring(e))
  return e.kind, e
end

-- Runs fn with some environment variables replaced as the registry and the
-- executors see them (Lua cannot set the process environment; children
-- keep the real one); false unsets a variable.
function H.with_env(vars, fn)
  local registry = require "airbyte.registry"
  local saved = registry.getenv
  registry.getenv = function(k)
    local v = vars[k]
    if v == false then return nil end
    if v ~= nil then return v end
    return os.getenv(k)
  end
  registry.reset()
  local ok, err = pcall(fn)
  registry.getenv = saved
  registry.reset()
  if not ok then error(err, 0) end
end

-- A fixture connector (tests/fixtures/connectors/<fixture>.lua) as source
-- `name` with config, every stream selected.
function H.local_source(dir, fixture, name, config)
  local src = require("airbyte").get_source(name, { local_executable = H.fixture_executable(dir, fixture),
    config = config })
  src:select_all_streams()
  return src
end

-- --- PostgreSQL (issue 9) -----------------------------------------------------------
-- The server is the one scripts/test.sh starts (scripts/pg.sh), named by the
-- libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE).
-- H.pg_skip_reason() -> nil when it answers, else why the Postgres specs skip;
-- H.need_pg(pending) marks a test pending with that reason;
-- H.new_pg_cache(opts) -> a PostgresCache in a fresh schema, and
-- H.drop_pg_cache(cache) drops that schema.
local pg_reason
function H.pg_skip_reason()
  if pg_reason ~= nil then return pg_reason or nil end
  if os.getenv("LB_PG_SKIP") then
    pg_reason = "skip: " .. os.getenv("LB_PG_SKIP")
  elseif not os.getenv("PGPORT") then
    pg_reason = "skip: no PostgreSQL server for the tests (run scripts/pg.sh start and eval its output)"
  else
    local db, err = require("airbyte.sqlite").open_pg{ schema_name = "public", connect_timeout = 5 }
    if db then db:close(); pg_reason = false else pg_reason = "skip: PostgreSQL not reachable: " .. tostring(err) end
  end
  return pg_reason or nil
end

function H.need_pg(pending)
  local why = H.pg_skip_reason()
  if why == nil then return true end
  pending(why)
  return false
end

local pg_schemas = 0
function H.pg_schema()
  pg_schemas = pg_schemas + 1
  local pid = io.open("/proc/self/stat"):read("n")
  return ("t_%d_%d"):format(pid, pg_schemas)
end

function H.new_pg_cache(opts)
  local o = { schema_name = H.pg_schema() }
  for k, v in pairs(opts or {}) do o[k] = v end
  return require("airbyte").PostgresCache(o)
end

function H.drop_pg_cache(cache)
  if cache == nil then return end
  pcall(cache.execute_sql, cache, ('DROP SCHEMA IF EXISTS "%s" CASCADE'):format(cache.schema_name))
  cache:close()
end

return H
