-- Executors: how get_source/get_destination choose one (explicit options,
-- built-ins, PATH, the registry), and each of them run for real: a Python
-- connector installed into a venv from tests/fixtures/python-connector
-- (offline), the Docker command run through the fake docker in
-- tests/fixtures/docker, and no_executor answering spec from the registry.
local H = require "helper"
local ab = require "airbyte"
local json = require "airbyte.json"
local core = require "airbyte.core"
local errors = require "airbyte.errors"
local registry = require "airbyte.registry"
local executors = require "airbyte.executors"

local PYTHON_CONNECTOR = H.fixtures .. "/python-connector"
local FAKE_DOCKER_DIR = H.fixtures .. "/docker"

local kind_of = H.error_kind

local with_env = H.with_env

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() return true end
  return false
end

local function make_executable(path, body)
  H.write_file(path, body or "#!/bin/sh\nexit 0\n")
  assert(os.execute("chmod +x " .. H.shell_quote(path)))
  return path
end

local function contains(list, x)
  for _, v in ipairs(list) do
    if v == x then return true end
  end
  return false
end

local dir
before_each(function() dir = H.tmpdir() end)
after_each(function() H.rm_rf(dir) end)

describe("executor selection", function()
  it("runs a built-in connector before an executable of that name on PATH", function()
    make_executable(dir .. "/source-faker")
    make_executable(dir .. "/source-onpath")
    with_env({ PATH = dir }, function()
      local src = ab.get_source("source-faker")
      assert.equal("builtin", src.executor.kind)
      assert.same({ H.exe, "connector", "source-faker", "spec" }, src.executor:argv({ "spec" }))
      assert.equal("builtin", ab.get_source("source-faker", { version = "latest" }).executor.kind)
      local other = ab.get_source("source-onpath")
      assert.equal("local", other.executor.kind)
      assert.equal(dir .. "/source-onpath", other.executor.path)
    end)
  end)

  it("installs the real connector when a version of a built-in is pinned", function()
    with_env({ AIRBYTE_LOCAL_REGISTRY = false }, function()
      local src = ab.get_source("source-faker", { version = "6.2.20", install_root = dir, install_if_missing = false })
      assert.equal("venv", src.executor.kind)
      assert.equal("airbyte-source-faker==6.2.20", src.executor.pip_url)
    end)
  end)

  it("follows the registry: PyPI packages into a venv, the rest as Docker images", function()
    with_env({ AIRBYTE_LOCAL_REGISTRY = false, AIRBYTE_INSTALL_DIR = dir .. "/installs",
               AIRBYTE_PROJECT_DIR = dir, PATH = FAKE_DOCKER_DIR }, function()
      local gh = ab.get_source("source-github", { install_if_missing = false })
      assert.equal("venv", gh.executor.kind)
      assert.equal(dir .. "/installs/.venv-source-github", gh.executor.venv_dir)
      assert.equal(dir .. "/installs/.venv-source-github/bin/source-github", gh.executor.path)
      assert.equal("airbyte-source-github", gh.executor.pip_url)
      assert.same({ gh.executor.path, "spec" }, gh.executor:argv({ "spec" }))
      assert.is_false(exists(dir .. "/installs"))             -- nothing installed, nothing made
      local latest = ab.get_source("source-github", { version = "latest", install_root = dir .. "/r",
                                                       install_if_missing = false })
      assert.equal("airbyte-source-github==" .. ab.get_connector_metadata("source-github").latest_available_version,
        latest.executor.pip_url)
      assert.equal(dir .. "/r/.venv-source-github", latest.executor.venv_dir)
      local duck = ab.get_destination("destination-duckdb", { install_if_missing = false })
      assert.equal("venv", duck.executor.kind)
      assert.equal("airbyte-destination-duckdb", duck.executor.package_name)

      local pg = ab.get_source("source-postgres")
      assert.equal("docker", pg.executor.kind)
      assert.equal("airbyte/source-postgres:latest", pg.executor.image)
      assert.equal("airbyte/source-postgres:3.7.0", ab.get_source("source-postgres", { version = "3.7.0" }).executor.image)
      assert.equal("docker", ab.get_source("source-pokeapi").executor.kind)
      assert.equal("docker", ab.get_destination("destination-snowflake").executor.kind)
    end)
  end)

  it("explains when a Docker-only connector cannot run without docker", function()
    with_env({ AIRBYTE_LOCAL_REGISTRY = false, PATH = "/nonexistent" }, function()
      local kind, e = kind_of(function() ab.get_source("source-postgres") end)
      assert.equal("AirbyteConnectorExecutableNotFoundError", kind)
      assert.matches("docker is not on PATH", e.message)
      assert.matches("java", e.message)
      local _, e2 = kind_of(function() ab.get_source("source-hubspot") end)
      assert.matches("manifest%-only", e2.message)
    end)
  end)

  it("raises AirbyteConnectorNotRegisteredError for an unknown connector not on PATH", function()
    with_env({ AIRBYTE_LOCAL_REGISTRY = false, PATH = dir }, function()
      local kind, e = kind_of(function() ab.get_source("source-does-not-exist") end)
      assert.equal("AirbyteConnectorNotRegisteredError", kind)
      assert.equal("source-does-not-exist", e.connector_name)
      assert.matches("local_executable", e.guidance)
    end)
  end)

  it("rejects conflicting options, naming them", function()
    local cases = {
      { { local_executable = "x", docker_image = true }, "local_executable, docker_image" },
      { { local_executable = "x", pip_url = "y" }, "local_executable, pip_url" },
      { { docker_image = "img", pip_url = "y" }, "docker_image, pip_url" },
      { { use_python = false, pip_url = "y" }, "use_python = false, pip_url" },
      { { use_python = true, docker_image = true }, "docker_image, use_python" },
      { { no_executor = true, local_executable = "x" }, "local_executable, no_executor" },
      { { no_executor = true, pip_url = "y", docker_image = true }, "docker_image, pip_url, no_executor" },
      { { local_executable = "x", version = "1.0.0" }, "version cannot be used with local_executable" },
      { { pip_url = "y", version = "1.0.0" }, "version cannot be used with pip_url" },
      { { docker_image = "airbyte/source-faker:1.0", version = "2.0" }, "has a tag already" },
      { { source_manifest = true, docker_image = true }, "docker_image, source_manifest" },
      { { source_manifest = "https://example.com/manifest.yaml" }, "never downloads manifests" },
      { { use_python = 3.11 }, "use_python must be" },
    }
    for _, c in ipairs(cases) do
      local kind, e = kind_of(function() ab.get_source("source-faker", c[1]) end)
      assert.equal("PyAirbyteInputError", kind)
      assert.matches(c[2], e.message)
    end
  end)

  it("honours explicit options: use_python = false means Docker, true the venv", function()
    with_env({ AIRBYTE_LOCAL_REGISTRY = false, AIRBYTE_PROJECT_DIR = dir }, function()
      local d = ab.get_source("source-faker", { use_python = false })
      assert.equal("docker", d.executor.kind)
      assert.equal("airbyte/source-faker:latest", d.executor.image)
      local v = ab.get_source("source-faker", { use_python = true, install_root = dir, install_if_missing = false })
      assert.equal("venv", v.executor.kind)
      assert.equal("airbyte-source-faker", v.executor.pip_url)
      local kind = kind_of(function() ab.get_source("source-postgres", { use_python = true }) end)
      assert.equal("AirbyteConnectorNotPyPiPublishedError", kind)
      -- an unregistered connector with use_python: PyAirbyte's airbyte-<name>
      local u = ab.get_source("source-unlisted", { use_python = true, install_root = dir, install_if_missing = false })
      assert.equal("airbyte-source-unlisted", u.executor.pip_url)
    end)
  end)

  it("reports a missing local executable, also when it disappears later", function()
    local kind, e = kind_of(function() ab.get_source("source-x", { local_executable = dir .. "/missing" }) end)
    assert.equal("AirbyteConnectorExecutableNotFoundError", kind)
    assert.equal("source-x", e.connector_name)
    local exe = H.fixture_executable(dir, "crasher")
    local src = ab.get_source("source-crasher", { local_executable = exe, config = { records = 1 } })
    assert.equal("AirbyteConnectorInstallationError", (kind_of(function() src:install() end)))
    os.remove(exe)
    assert.equal("AirbyteConnectorExecutableNotFoundError", (kind_of(function() src:check() end)))
  end)
end)

describe("the Docker executor", function()
  local function docker_env(extra)
    local vars = { PATH = FAKE_DOCKER_DIR .. ":/usr/bin:/bin", AIRBYTE_PROJECT_DIR = dir,
                   AIRBYTE_LOCAL_REGISTRY = false }
    for k, v in pairs(extra or {}) do vars[k] = v end
    return vars
  end

  it("builds PyAirbyte's docker run command", function()
    with_env(docker_env(), function()
      local tmp = executors.temp_dir()
      local fake = FAKE_DOCKER_DIR .. "/docker"
      local src = ab.get_source("source-faker", { docker_image = true })
      assert.same({ fake, "run", "--rm", "-i", "--volume", dir .. "/source-faker:/local",
                    "--volume", tmp .. ":/airbyte/tmp", "airbyte/source-faker:latest", "spec" },
                  src.executor:argv({ "spec" }))
      assert.is_true(exists(dir .. "/source-faker"))      -- the /local mount is made
      local pinned = ab.get_source("source-faker", { docker_image = true, version = "6.2.20",
                                                     use_host_network = true })
      -- a temp file (config, catalog, state) becomes /airbyte/tmp/<its name>
      local f = assert(core.tempfile("{}", ".json"))
      local base = f.path:match("[^/]+$")
      assert.same({ fake, "run", "--rm", "-i", "--volume", dir .. "/source-faker:/local",
                    "--volume", tmp .. ":/airbyte/tmp", "--network", "host", "airbyte/source-faker:6.2.20",
                    "check", "--config", "/airbyte/tmp/" .. base },
                  pinned.executor:argv({ "check", "--config", f.path }))
      f:remove()
      assert.equal("6.2.20", pinned.connector_version)
      local own = ab.get_destination("destination-x", { docker_image = "ghcr.io/me/dest:dev" })
      assert.equal("ghcr.io/me/dest:dev", own.executor.image)
      assert.equal("localhost:5000/me/dest:latest",
        ab.get_destination("destination-x", { docker_image = "localhost:5000/me/dest" }).executor.image)
      -- a file under the project's /local mount, and one outside every mount
      H.write_file(dir .. "/source-faker/in.csv", "a\n")
      local argv = src.executor:argv({ "read", "--x", dir .. "/source-faker/in.csv", "--y", "/etc/hostname", "plain" })
      assert.same({ "read", "--x", "/local/in.csv", "--y", "/etc/hostname", "plain" },
                  { table.unpack(argv, #argv - 5) })
    end)
  end)

  it("runs a source and a destination end to end through the docker command", function()
    with_env(docker_env(), function()
      local log = dir .. "/docker.log"
      local child_env = { LUABYTE_EXE = H.exe, FAKE_DOCKER_LOG = log }
      local src = ab.get_source("source-faker", { docker_image = true, use_host_network = true,
                                                  config = { count = 25, seed = 3 } })
      src.executor.env = child_env
      assert.equal("integer", src.config_spec.properties.count.type)
      assert.is_true(src:check())
      assert.is_true(contains(src:get_available_streams(), "users"))
      src:select_streams({ "users" })
      local cache = H.new_cache(dir)
      local result = src:read{ cache = cache }
      assert.equal(25, #result["users"])
      local dest = ab.get_destination("destination-dev-null", { docker_image = true,
        config = { test_destination = { test_destination_type = "SILENT" } } })
      dest.executor.env = child_env
      local wr = dest:write(result)
      assert.equal(25, wr.processed_records)
      cache:close()
      local lines = {}
      for l in io.lines(log) do lines[#lines + 1] = l end
      assert.matches("^run %-%-rm %-i %-%-volume .*:/local %-%-volume .*:/airbyte/tmp %-%-network host "
        .. "airbyte/source%-faker:latest spec$", lines[1])
      assert.is_true(#lines >= 5)
      local commands = {}
      for _, l in ipairs(lines) do commands[#commands + 1] = l:match(":latest (%a+)") end
      for _, c in ipairs({ "spec", "check", "discover", "read", "write" }) do
        assert.is_true(contains(commands, c), c)
      end
      assert.matches("airbyte/destination%-dev%-null:latest write %-%-config /airbyte/tmp/[^ ]+%.json "
        .. "%-%-catalog /airbyte/tmp/[^ ]+%.json$", lines[#lines])
      -- uninstall removes the image
      src:uninstall()
      local last
      for l in io.lines(log) do last = l end
      assert.equal("rmi airbyte/source-faker:latest", last)
    end)
  end)

  it("fails loudly on a connector error or without docker", function()
    with_env(docker_env(), function()
      local src = ab.get_source("source-faker", { docker_image = true, config = { count = -1 } })
      src.executor.env = { LUABYTE_EXE = H.exe }
      src:set_config({ count = -1 }, { validate = false })
      assert.equal("AirbyteConnectorCheckFailedError", (kind_of(function() src:check() end)))
      -- an image the fake does not know: docker's own failure (exit 125)
      local other = ab.get_source("source-unknown", { docker_image = true })
      local kind, e = kind_of(function() return other.config_spec end)
      assert.equal("AirbyteConnectorSpecFailedError", kind)
      assert.matches("fake docker: no built%-in connector behind image 'airbyte/source%-unknown:latest'",
        table.concat(e.log_text or {}, "\n"))
      with_env(docker_env({ PATH = "/nonexistent" }), function()
        local kind2, e2 = kind_of(function() src:check() end)
        assert.equal("AirbyteConnectorExecutableNotFoundError", kind2)
        assert.matches("docker is not on PATH", e2.message)
      end)
    end)
  end)

  it("has a fake docker that rejects anything unexpected", function()
    local fake = FAKE_DOCKER_DIR .. "/docker"
    local bad = {
      { "ps" },
      { "run", "-i", "--rm", "airbyte/source-faker:latest", "spec" },
      { "run", "--rm", "-i", "--volume", "rel:/local" },
      { "run", "--rm", "-i", "--volume", dir .. ":/local", "--volume", dir .. ":/airbyte/tmp",
        "airbyte/source-faker:latest", "check", "--config", "/etc/passwd" },
      { "run", "--rm", "-i", "--volume", dir .. ":/local", "--volume", dir .. ":/airbyte/tmp",
        "--network", "bridge", "airbyte/source-faker:latest", "spec" },
      { "run", "--rm", "-i", "--volume", dir .. ":/local", "--volume", dir .. ":/airbyte/tmp",
        "airbyte/source-faker", "spec" },
    }
    for _, args in ipairs(bad) do
      local argv = { fake }
      for _, a in ipairs(args) do argv[#argv + 1] = a end
      local out, code, _, p = H.run(argv, { env = { LUABYTE_EXE = H.exe } })
      assert.equal(125, code, table.concat(args, " "))
      assert.equal("", out)
      assert.matches("^%[stderr%] fake docker: ", p:tail()[1])
      p:close()
    end
  end)
end)

describe("no_executor", function()
  it("answers spec from the built-in module and refuses everything else", function()
    local src = ab.get_source("source-faker", { no_executor = true })
    assert.equal("noop", src.executor.kind)
    assert.equal("integer", src.config_spec.properties.count.type)
    assert.equal("AirbyteConnectorValidationFailedError",
      (kind_of(function() src:set_config({ count = "many" }) end)))
    src:set_config({ count = 5 })
    local kind, e = kind_of(function() src:check() end)
    assert.equal("AirbyteConnectorExecutableNotFoundError", kind)
    assert.matches("only its spec", e.message)
    assert.equal("AirbyteConnectorExecutableNotFoundError",
      (kind_of(function() src:get_available_streams() end)))
  end)

  it("answers spec from the registry entry", function()
    with_env({ AIRBYTE_LOCAL_REGISTRY = false }, function()
      local dest = ab.get_destination("destination-duckdb", { no_executor = true })
      assert.same({ "destination_path" }, dest.config_spec.required)
      local kind, e = kind_of(function() dest:set_config({ schema = "main" }) end)
      assert.equal("AirbyteConnectorValidationFailedError", kind)
      assert.matches("destination_path", tostring(e))
      dest:set_config({ destination_path = "/local/x.duckdb" })
      assert.equal(ab.get_connector_metadata("destination-duckdb").latest_available_version,
        dest.connector_version)
      assert.equal("AirbyteConnectorMissingSpecError",
        (kind_of(function() return ab.get_source("source-postgres", { no_executor = true }).config_spec end)))
      assert.equal("AirbyteConnectorMissingSpecError",
        (kind_of(function() return ab.get_source("source-unlisted", { no_executor = true }).config_spec end)))
    end)
  end)
end)

describe("the Python venv executor", function()
  -- One venv for the whole block (creating one takes seconds).
  local shared = {}

  local function python3()
    return executors.which("python3")
  end

  -- Installs source-pytiny from its local path once; false (and the test
  -- marked pending) when this machine cannot make venvs.
  local function ready(pending)
    if shared.skip then pending(shared.skip) return false end
    if shared.source then return true end
    local py = python3()
    if not py then
      shared.skip = "skip: no python3 on PATH"
    else
      local _, code = H.run({ py, "-c", "import venv, ensurepip" })
      if code ~= 0 then
        shared.skip = "skip: python3 cannot create venvs here (no venv/ensurepip; on Debian: apt-get install python3-venv)"
      end
    end
    if shared.skip then pending(shared.skip) return false end
    shared.root = H.tmpdir()
    with_env({ AIRBYTE_NO_UV = "1" }, function()
      shared.source = ab.get_source("source-pytiny", { pip_url = PYTHON_CONNECTOR, install_root = shared.root,
                                                       config = { count = 4 } })
    end)
    return true
  end

  teardown(function()
    if shared.root then H.rm_rf(shared.root) end
  end)

  it("installs a local package offline and runs every command", function()
    if not ready(pending) then return end
    local src = shared.source
    local ex = src.executor
    assert.equal("venv", ex.kind)
    assert.equal(shared.root .. "/.venv-source-pytiny", ex.venv_dir)
    assert.equal(shared.root .. "/.venv-source-pytiny/bin/source-pytiny", ex.path)
    assert.is_true(core.executable(ex.path))
    assert.equal("airbyte-source-pytiny", ex.package_name)
    assert.equal("0.1.0", src.connector_version)
    assert.equal("integer", src.config_spec.properties.count.type)
    assert.is_true(src:check())
    assert.same({ "numbers" }, src:get_available_streams())
    src:select_all_streams()
    local cache = H.new_cache(dir)
    local result = src:read{ cache = cache }
    assert.equal(4, #result["numbers"])
    assert.equal(9, result["numbers"]:with_filter("id = 3"):to_table()[1].square)
    cache:close()
    local bad = ab.get_source("source-pytiny", { pip_url = PYTHON_CONNECTOR, install_root = shared.root,
                                                 config = { fail = true } })
    local kind, e = kind_of(function() bad:check() end)
    assert.equal("AirbyteConnectorCheckFailedError", kind)
    assert.matches("asked to fail", tostring(e))
  end)

  it("reinstalls on a version mismatch", function()
    if not ready(pending) then return end
    -- wheels of two versions, built by the fixture's own backend, as a
    -- local package index (PIP_FIND_LINKS) for `airbyte-source-pytiny==V`
    local wheels = dir .. "/wheels"
    assert(core.mkdir_p(wheels))
    for _, v in ipairs({ "0.1.0", "0.2.0" }) do
      local out, code = H.run({ python3(), "-B", "-c", "import sys, pytiny_build; print(pytiny_build.build_wheel(sys.argv[1]))",
                                wheels }, { cwd = PYTHON_CONNECTOR, env = { PYTINY_VERSION = v } })
      assert.equal(0, code, out)
    end
    local reg = dir .. "/registry.json"
    H.write_file(reg, json.encode({ destinations = {}, sources = { {
      sourceDefinitionId = "00000000-0000-4000-8000-000000000001", name = "Pytiny",
      dockerRepository = "airbyte/source-pytiny", dockerImageTag = "0.2.0",
      documentationUrl = "https://example.invalid/source-pytiny", language = "python",
      remoteRegistries = { pypi = { enabled = true, packageName = "airbyte-source-pytiny" } },
    } } }))
    -- the environment pip needs can only be given to a child: run one luabyte per version
    local script = dir .. "/get.lua"
    H.write_file(script, [[
      local ab = require "airbyte"
      local src = ab.get_source("source-pytiny", { version = arg[1], config = { count = 2 } })
      src:check()
      io.write(src.executor.kind, " ", src.executor.pip_url, " ", src.connector_version)
    ]])
    local env = { AIRBYTE_LOCAL_REGISTRY = reg, AIRBYTE_INSTALL_DIR = shared.root, AIRBYTE_NO_UV = "1",
                  PIP_NO_INDEX = "1", PIP_FIND_LINKS = wheels }
    local out, code = H.run({ H.exe, script, "0.2.0" }, { env = env })
    assert.equal(0, code, out)
    assert.equal("venv airbyte-source-pytiny==0.2.0 0.2.0", out)
    assert.equal("0.2.0", shared.source.executor:get_installed_version())

    -- without auto-fix (install_if_missing = false) a mismatch raises
    with_env({ AIRBYTE_LOCAL_REGISTRY = reg }, function()
      local src = ab.get_source("source-pytiny", { version = "0.1.0", install_root = shared.root,
                                                   install_if_missing = false, config = { count = 1 } })
      local kind, e = kind_of(function() src:check() end)
      assert.equal("AirbyteConnectorInstallationError", kind)
      assert.matches("version 0.2.0 is installed, 0.1.0 was asked for", e.message)
      local latest = ab.get_source("source-pytiny", { version = "latest", install_root = shared.root,
                                                      install_if_missing = false })
      assert.equal("airbyte-source-pytiny==0.2.0", latest.executor.pip_url)
    end)

    out, code = H.run({ H.exe, script, "0.1.0" }, { env = env })
    assert.equal(0, code, out)
    assert.equal("venv airbyte-source-pytiny==0.1.0 0.1.0", out)
  end)

  it("reports pip's output when an install fails, and keeps a venv that was there", function()
    if not ready(pending) then return end
    with_env({ AIRBYTE_NO_UV = "1" }, function()
      local ex = executors.venv("source-pytiny", { pip_url = dir .. "/no-such-package", install_root = shared.root })
      local kind, e = kind_of(function() ex:install() end)
      assert.equal("AirbyteConnectorInstallationError", kind)
      assert.equal("source-pytiny", e.connector_name)
      assert.matches("installing connector 'source%-pytiny' failed", e.message)
      local text = table.concat(e.log_text, "\n")
      assert.matches("no%-such%-package", text)
      assert.matches("does not exist", text)
      assert.is_string(e.log_file)
      -- not made by this install: left as it was, still working
      assert.is_true(core.executable(shared.source.executor.path))
      assert.equal("0.1.0", shared.source.executor:get_installed_version())
    end)
  end)

  it("removes a half-made venv when the install fails", function()
    -- An interpreter whose venv has a pip that fails (a real venv takes
    -- seconds to make; the shared one is not half-made).
    local fake_python = make_executable(dir .. "/fake-python", [[#!/bin/sh
[ "$1" = "-m" ] && [ "$2" = "venv" ] || exit 2
mkdir -p "$3/bin" && ln -s /bin/true "$3/bin/python" || exit 1
printf '#!/bin/sh\necho "Processing $4"\necho "ERROR: fake pip cannot install $4" >&2\nexit 1\n' > "$3/bin/pip"
chmod +x "$3/bin/pip"
]])
    local root = dir .. "/installs"
    with_env({ AIRBYTE_NO_UV = "1" }, function()
      local kind, e = kind_of(function()
        ab.get_source("source-pytiny", { pip_url = PYTHON_CONNECTOR, install_root = root, use_python = fake_python })
      end)
      assert.equal("AirbyteConnectorInstallationError", kind)
      assert.matches("installing connector 'source%-pytiny' failed .*exit", e.message)
      local text = table.concat(e.log_text, "\n")
      assert.matches("Processing " .. PYTHON_CONNECTOR:gsub("%p", "%%%0"), text)
      assert.matches("ERROR: fake pip cannot install", text)
      assert.is_true(exists(root))
      assert.is_false(exists(root .. "/.venv-source-pytiny"))
      -- an interpreter that cannot make a venv at all: nothing is left either
      local k2, e2 = kind_of(function()
        ab.get_source("source-pytiny", { pip_url = PYTHON_CONNECTOR, install_root = root, use_python = "/bin/false" })
      end)
      assert.equal("AirbyteConnectorInstallationError", k2)
      assert.matches("cannot create the virtual environment", e2.message)
      assert.is_false(exists(root .. "/.venv-source-pytiny"))
    end)
  end)

  it("raises when not installed and install_if_missing is false", function()
    local src = ab.get_source("source-pytiny", { pip_url = PYTHON_CONNECTOR, install_root = dir,
                                                 install_if_missing = false, config = {} })
    assert.is_nil(src.connector_version)
    local kind, e = kind_of(function() src:check() end)
    assert.equal("AirbyteConnectorExecutableNotFoundError", kind)
    assert.matches("not installed", e.message)
    assert.matches("install_if_missing", e.guidance)
  end)

  it("chooses the interpreter from use_python", function()
    local py = python3()
    if not py then pending("skip: no python3 on PATH") return end
    local function venv(use_python)
      return executors.venv("source-pytiny", { pip_url = PYTHON_CONNECTOR, install_root = dir, use_python = use_python })
    end
    with_env({ AIRBYTE_NO_UV = "1" }, function()
      assert.equal(py, venv(true):install_commands().create[1])
      assert.equal(py, venv(nil):install_commands().create[1])
      assert.equal("/bin/sh", venv("/bin/sh"):install_commands().create[1])
      local out = H.run({ py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])" })
      local versioned = executors.which("python" .. out)
      if versioned then
        assert.same({ versioned, "-m", "venv", dir .. "/.venv-source-pytiny" }, venv(out):install_commands().create)
      end
      for _, bad in ipairs({ "9.99", "/nonexistent/python", "no-such-python" }) do
        local kind, e = kind_of(function() venv(bad):install() end)
        assert.equal("AirbyteConnectorInstallationError", kind)
        assert.matches(bad:gsub("%p", "%%%0"), e.message)
      end
      assert.is_false(exists(dir .. "/.venv-source-pytiny"))
    end)
  end)

  it("installs with uv when it is on PATH, unless AIRBYTE_NO_UV", function()
    local uv = make_executable(dir .. "/uv")
    local ex = executors.venv("source-github", { install_root = dir, use_python = "3.11" })
    local py = dir .. "/.venv-source-github/bin/python"
    with_env({ PATH = dir, AIRBYTE_NO_UV = false }, function()
      local cmds = ex:install_commands()
      assert.same({ uv, "venv", dir .. "/.venv-source-github", "--python", "3.11" }, cmds.create)
      assert.same({ uv, "pip", "install", "--python", py, "airbyte-source-github" }, cmds.install)
    end)
    with_env({ PATH = dir .. ":" .. (os.getenv("PATH") or ""), AIRBYTE_NO_UV = "yes" }, function()
      local py311 = executors.which("python3.11")
      if not py311 then return end
      local cmds = ex:install_commands()
      assert.same({ py311, "-m", "venv", dir .. "/.venv-source-github" }, cmds.create)
      assert.same({ dir .. "/.venv-source-github/bin/pip", "install", "airbyte-source-github" }, cmds.install)
    end)
  end)

  it("passes several requirements, offline only when all are local", function()
    if not python3() then pending("skip: no python3 on PATH") return end
    with_env({ AIRBYTE_NO_UV = "1" }, function()
      local ex = executors.venv("source-x", { install_root = dir,
        pip_url = "airbyte-source-x==1.2.3  airbyte-cdk<7\n" })
      assert.same({ "airbyte-source-x==1.2.3", "airbyte-cdk<7" }, ex.requirements)
      local cmd = ex:install_commands().install
      assert.same({ "install", "airbyte-source-x==1.2.3", "airbyte-cdk<7" }, { table.unpack(cmd, 2) })
      local loc = executors.venv("source-x", { install_root = dir, pip_url = PYTHON_CONNECTOR .. " ./other" })
      assert.same({ "install", "--no-index", "--no-build-isolation", PYTHON_CONNECTOR, "./other" },
                  { table.unpack(loc:install_commands().install, 2) })
    end)
  end)

  it("uninstalls", function()
    if not ready(pending) then return end
    local src = shared.source
    src:uninstall()
    assert.is_false(exists(src.executor.venv_dir))
    assert.is_nil(src.connector_version)
    assert.equal("AirbyteConnectorExecutableNotFoundError", (kind_of(function() src:check() end)))
  end)
end)
