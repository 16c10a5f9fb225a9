-- The connector registry: the bundled one, AIRBYTE_LOCAL_REGISTRY files
-- (good, malformed, missing, disabled), get_available_connectors and
-- get_connector_metadata as PyAirbyte has them.
local H = require "helper"
local ab = require "airbyte"
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local registry = require "airbyte.registry"
local executors = require "airbyte.executors"

local kind_of = H.error_kind

local with_env = H.with_env

local function contains(list, x)
  for _, v in ipairs(list) do
    if v == x then return true end
  end
  return false
end

local BUILTINS = { "destination-csv", "destination-dev-null", "destination-local-json",
                   "destination-postgres", "destination-sqlite", "source-faker" }

local dir
before_each(function() dir = H.tmpdir() end)
after_each(function() H.rm_rf(dir) end)

describe("the bundled registry", function()
  it("is in Airbyte's registry format", function()
    local data = require "airbyte.registry_data"
    assert.is_true(#data.sources >= 10)
    assert.is_true(#data.destinations >= 10)
    for kind, list in pairs({ source = data.sources, destination = data.destinations }) do
      for _, e in ipairs(list) do
        local what = e.dockerRepository
        assert.matches("^airbyte/" .. kind .. "%-[%w%-]+$", what)
        assert.matches("^[%x%-]+$", e[kind .. "DefinitionId"], what)
        assert.equal(36, #e[kind .. "DefinitionId"], what)
        assert.is_string(e.name, what)
        assert.matches("^%d+%.%d+%.%d+", e.dockerImageTag, what)
        assert.matches("^https://docs%.airbyte%.com/integrations/", e.documentationUrl, what)
        assert.is_string(e.language, what)
        assert.is_table(e.remoteRegistries, what)
        local pypi = e.remoteRegistries.pypi
        if pypi and pypi.enabled then
          assert.equal("airbyte-" .. what:gsub("^airbyte/", ""), pypi.packageName)
        end
      end
    end
    -- the whole table survives a JSON round trip, as a registry file would
    local again = json.decode(json.encode(data))
    assert.equal(#data.sources, #again.sources)
  end)

  it("lists connectors by install type", function()
    with_env({ AIRBYTE_LOCAL_REGISTRY = false }, function()
      assert.same(BUILTINS, ab.get_available_connectors("builtin"))
      local python = ab.get_available_connectors("python")
      for _, n in ipairs({ "source-github", "source-stripe", "source-s3", "source-faker", "destination-duckdb" }) do
        assert.is_true(contains(python, n), n)
      end
      for _, n in ipairs({ "source-postgres", "destination-snowflake", "source-hubspot", "destination-sqlite" }) do
        assert.is_false(contains(python, n), n)
      end
      local java = ab.get_available_connectors("java")
      assert.is_true(contains(java, "source-postgres"))
      assert.is_true(contains(java, "destination-bigquery"))
      assert.is_false(contains(java, "source-github"))
      assert.same({ "source-hubspot", "source-pokeapi" }, ab.get_available_connectors("yaml"))
      local all = ab.get_available_connectors("any")
      assert.is_true(#all >= 25)
      assert.same(all, ab.get_available_connectors("docker"))
      assert.same(all, ab.get_available_connectors("ALL"))
      local sorted = { table.unpack(all) }
      table.sort(sorted)
      assert.same(sorted, all)
      assert.equal("PyAirbyteInputError", (kind_of(function() ab.get_available_connectors("rust") end)))
    end)
  end)

  it("lists what can run here as installable: everything only with docker on PATH", function()
    local all = registry.get_available_connectors("any")
    with_env({ PATH = H.fixtures .. "/docker:/usr/bin:/bin" }, function()
      assert.same(all, ab.get_available_connectors())
      assert.same(all, ab.get_available_connectors("installable"))
    end)
    with_env({ PATH = "/nonexistent" }, function()
      local here = ab.get_available_connectors()
      assert.is_true(contains(here, "source-faker"))
      assert.is_true(contains(here, "destination-sqlite"))     -- built in, though not on PyPI
      assert.is_true(contains(here, "source-github"))
      assert.is_false(contains(here, "source-postgres"))
      assert.is_false(contains(here, "source-pokeapi"))        -- manifest-only: Docker here
    end)
  end)

  it("describes connectors", function()
    local gh = ab.get_connector_metadata("source-github")
    assert.equal("source-github", gh.name)
    assert.equal("source", gh.connector_type)
    assert.equal("GitHub", gh.display_name)
    assert.equal("airbyte-source-github", gh.pypi_package_name)
    assert.equal("python", gh.language)
    assert.equal("python", gh.default_install_type)
    assert.same({ "python", "docker" }, gh.install_types)
    assert.equal(gh.latest_available_version, gh.entry.dockerImageTag)
    assert.equal("airbyte/source-github:" .. gh.latest_available_version, gh.docker_image)
    assert.is_false(gh.builtin)
    assert.is_true(contains(gh.suggested_streams, "issues"))

    local pg = ab.get_connector_metadata("source-postgres")
    assert.is_nil(pg.pypi_package_name)
    assert.same({ "docker", "java" }, pg.install_types)
    assert.equal("docker", pg.default_install_type)

    local hs = ab.get_connector_metadata("source-hubspot")
    assert.is_nil(hs.pypi_package_name)          -- listed on PyPI, but not enabled
    assert.equal("yaml", hs.default_install_type)

    local faker = ab.get_connector_metadata("source-faker")
    assert.is_true(faker.builtin)
    assert.same({ "builtin", "python", "docker" }, faker.install_types)
    assert.equal("builtin", faker.default_install_type)
    local sqlite = ab.get_connector_metadata("destination-sqlite")
    assert.equal("destination", sqlite.connector_type)
    assert.same({ "builtin", "docker" }, sqlite.install_types)

    assert.same({ "destination_path" }, ab.get_connector_metadata("destination-duckdb").spec
      .connectionSpecification.required)

    local kind, e = kind_of(function() ab.get_connector_metadata("source-nope") end)
    assert.equal("AirbyteConnectorNotRegisteredError", kind)
    assert.equal("source-nope", e.connector_name)
    assert.is_true(errors.is(e, "AirbyteConnectorRegistryError"))
  end)
end)

describe("AIRBYTE_LOCAL_REGISTRY", function()
  it("replaces the bundled registry with a file (PyAirbyte's test registry)", function()
    if not H.need_shared(pending) then return end
    local file = H.shared .. "/fixtures/pyairbyte/tests/integration_tests/fixtures/registry.json"
    with_env({ AIRBYTE_LOCAL_REGISTRY = file }, function()
      assert.same({ "source-docker-only", "source-test" }, ab.get_available_connectors("any"))
      assert.same({ "source-test" }, ab.get_available_connectors("python"))
      assert.same({}, ab.get_available_connectors("builtin"))
      local t = ab.get_connector_metadata("source-test")
      assert.equal("airbyte-source-test", t.pypi_package_name)
      assert.equal("0.0.1", t.latest_available_version)
      assert.equal("9f32dab3-77cb-45a1-9d33-347aa5fbe363", t.definition_id)
      assert.same({ "python", "docker" }, t.install_types)       -- language from the tags
      assert.is_table(t.spec.connectionSpecification.properties.apiKey)
      local d = ab.get_connector_metadata("source-docker-only")
      assert.equal("java", d.language)
      assert.same({ "docker", "java" }, d.install_types)
      assert.equal("AirbyteConnectorNotRegisteredError",
        (kind_of(function() ab.get_connector_metadata("source-github") end)))
    end)
  end)

  it("raises AirbyteConnectorRegistryError naming a malformed file and the JSON error", function()
    local file = dir .. "/registry.json"
    H.write_file(file, '{"sources": [{"dockerRepository": "airbyte/source-x",}], "destinations": []}')
    with_env({ AIRBYTE_LOCAL_REGISTRY = file }, function()
      local kind, e = kind_of(function() ab.get_available_connectors("any") end)
      assert.equal("AirbyteConnectorRegistryError", kind)
      assert.matches(file, e.message, 1, true)
      assert.matches("not valid JSON: JSON error at offset %d+", e.message)
      assert.equal(file, e.context.registry_file)
      -- and connector lookups through get_source report the same
      assert.equal("AirbyteConnectorRegistryError",
        (kind_of(function() ab.get_source("source-x") end)))
    end)
  end)

  it("raises AirbyteConnectorRegistryError for a missing file, a URL or a wrong shape", function()
    local cases = {
      { dir .. "/missing.json", "cannot read the connector registry file .*missing%.json" },
      { "https://connectors.airbyte.com/files/registries/v0/oss_registry.json", "never downloads" },
    }
    local shapes = {
      { '[1, 2]', "not a JSON object" },
      { '{"connectors": []}', "neither 'sources' nor 'destinations'" },
      { '{"sources": {"a": 1}}', "'sources' must be an array" },
      { '{"sources": [], "destinations": [{"name": "x"}]}', "destinations%[0%] has no dockerRepository" },
    }
    for i, s in ipairs(shapes) do
      local f = ("%s/shape%d.json"):format(dir, i)
      H.write_file(f, s[1])
      cases[#cases + 1] = { f, s[2] }
    end
    for _, c in ipairs(cases) do
      with_env({ AIRBYTE_LOCAL_REGISTRY = c[1] }, function()
        local kind, e = kind_of(function() ab.get_connector_metadata("source-faker") end)
        assert.equal("AirbyteConnectorRegistryError", kind)
        assert.matches(c[2], e.message)
      end)
    end
  end)

  it("is disabled by 0, F or FALSE: no connector is registered, built-ins still run", function()
    for _, off in ipairs({ "0", "F", "false" }) do
      with_env({ AIRBYTE_LOCAL_REGISTRY = off }, function()
        assert.same({}, ab.get_available_connectors("any"))
        local kind, e = kind_of(function() ab.get_connector_metadata("source-faker") end)
        assert.equal("AirbyteConnectorNotRegisteredError", kind)
        assert.matches("disabled", e.message)
        assert.equal("builtin", ab.get_source("source-faker").executor.kind)
      end)
    end
  end)

  it("is read once per file", function()
    local file = dir .. "/registry.json"
    H.write_file(file, json.encode({ sources = { { dockerRepository = "airbyte/source-one", dockerImageTag = "1.0.0" } },
                                     destinations = {} }))
    with_env({ AIRBYTE_LOCAL_REGISTRY = file }, function()
      assert.same({ "source-one" }, ab.get_available_connectors("any"))
      H.write_file(file, "garbage")
      assert.same({ "source-one" }, ab.get_available_connectors("any"))   -- cached
      registry.reset()
      assert.equal("AirbyteConnectorRegistryError",
        (kind_of(function() ab.get_available_connectors("any") end)))
    end)
  end)
end)
