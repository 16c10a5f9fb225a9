-- Declarative (manifest-only) sources: the YAML loader, the interpolation,
-- manifest resolution, every connector of ../shared/fixtures/manifests run
-- as a real child process (`luabyte connector --manifest`) against the local
-- HTTP server (tests/fixtures/http/server.py), and the features no corpus
-- manifest uses, with small manifests of our own.
local H = require "helper"
local json = require "airbyte.json"
local yaml = require "airbyte.yaml"
local interp = require "airbyte.declarative.interpolation"
local manifest = require "airbyte.declarative.manifest"
local cases_mod = require "manifest_cases"

local obj, arr = cases_mod.obj, cases_mod.arr
local MANIFESTS = H.shared .. "/fixtures/manifests"

-- Canonical JSON text of a value (sorted keys), for multiset comparisons.
local function canon(v)
  if type(v) == "table" and not json.is_bigint(v) then
    if interp.is_list(v) or (next(v) == nil and getmetatable(v) == json.array_mt) then
      local parts = {}
      for i, x in ipairs(v) do parts[i] = canon(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for i, k in ipairs(keys) do parts[i] = json.encode(k) .. ":" .. canon(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  if type(v) == "number" and math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2^53 then
    return tostring(math.tointeger(v))      -- 1.0 and 1 are the same JSON number
  end
  return json.encode(v)
end

local function multiset(list)
  local out = {}
  for i, v in ipairs(list) do out[i] = canon(v) end
  table.sort(out)
  return out
end

local function messages(out)
  local msgs = {}
  for line in out:gmatch("[^\n]+") do
    local ok, m = pcall(json.decode, line)
    if ok and type(m) == "table" then msgs[#msgs + 1] = m end
  end
  return msgs
end

local function records_by_stream(msgs)
  local by = {}
  for _, m in ipairs(msgs) do
    if m.type == "RECORD" then
      by[m.record.stream] = by[m.record.stream] or {}
      table.insert(by[m.record.stream], m.record.data)
    end
  end
  return by
end

local function states_of(msgs, stream)
  local out = {}
  for _, m in ipairs(msgs) do
    if m.type == "STATE" and m.state.stream.stream_descriptor.name == stream then out[#out + 1] = m end
  end
  return out
end

local function trace_errors(msgs)
  local out = {}
  for _, m in ipairs(msgs) do
    if m.type == "TRACE" and m.trace.type == "ERROR" then out[#out + 1] = m.trace.error end
  end
  return out
end

-- Tests that talk HTTP need airbyte.http and the scripted server
-- (tests/fixtures/http/server.py, tests/lua/http_server.lua).
local have_http = pcall(require, "airbyte.http") and pcall(require, "http_server")
local function it_http(name, fn)
  if have_http then return it(name, fn) end
  it(name, function() pending("skip: airbyte.http or the test HTTP server (tests/fixtures/http) is missing") end)
end

-- The local server for a case; env that points the manifest's hosts at it.
local function start_server(routes, rewrite)
  local server = require "http_server"
  local srv = server.start(routes)
  local rw = {}
  for _, p in ipairs(rewrite or {}) do rw[#rw + 1] = p .. "=" .. srv.base .. "/" end
  return srv, { LUABYTE_URL_REWRITE = table.concat(rw, " ") }
end

-- Runs `luabyte connector --manifest PATH ARGS...`; returns messages, stdout, exit code.
local function connector(path, args, env, dir)
  local argv = { H.exe, "connector", "--manifest", path }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local out, code = H.run(argv, { env = env, cwd = dir })
  return messages(out), out, code
end

local function write_json(path, v)
  H.write_file(path, json.encode(v))
  return path
end

describe("declarative sources", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rm_rf(dir) end)

  describe("YAML (libyaml)", function()
    it("types scalars as PyYAML's safe_load does", function()
      local v = yaml.decode(table.concat({
        "a: yes", "b: 'no'", "c: 017", "d: 0x1F", "e: 1e5", "f: 1.5", "g: 1.0e+3", "h: ~", "i:", "j: 1_000",
        "k: 1:30", "l: [1, 2]", "m: []", "n: \"123\"", "o: !!str 12", "p: >-", "  folded {{ x }}", "  text",
        "q: Off", "r: 2023-01-01", "s: -7",
      }, "\n"))
      assert.same(true, v.a); assert.same("no", v.b); assert.same(15, v.c); assert.same(31, v.d)
      assert.same("1e5", v.e); assert.same(1.5, v.f); assert.same(1000.0, v.g)
      assert.equal(json.null, v.h); assert.equal(json.null, v.i)
      assert.same(1000, v.j); assert.same(90, v.k); assert.same({ 1, 2 }, v.l)
      assert.equal("[]", json.encode(v.m)); assert.same("123", v.n); assert.same("12", v.o)
      assert.same("folded {{ x }} text", v.p); assert.same(false, v.q); assert.same("2023-01-01", v.r)
      assert.same(-7, v.s)
      assert.equal("integer", math.type(v.c))
    end)

    it("resolves anchors, aliases and merge keys; reports errors with line and column", function()
      local v = yaml.decode("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nlist: [*b]\n")
      assert.same({ x = 1, y = 3 }, v.use)
      assert.same(1, v.list[1].x)
      local ok, err = pcall(yaml.decode, "a: [1, 2\n", "bad.yaml")
      assert.is_false(ok)
      assert.matches("bad.yaml:2:1:", err)
      ok, err = pcall(yaml.decode, "a: *nope\n", "bad.yaml")
      assert.is_false(ok)
      assert.matches("unknown alias", err)
      ok, err = pcall(yaml.decode, "a: 1\n---\nb: 2\n", "two.yaml")
      assert.matches("more than one YAML document", err)
    end)

    it("parses every corpus manifest", function()
      if not H.need_shared(pending) then return end
      for _, name in ipairs({ "source-pokeapi", "source-sentry", "source-polygon-stock-api", "source-open-exchange-rates" }) do
        local m = yaml.decode(H.read_file(MANIFESTS .. "/" .. name .. "/manifest.yaml"), name)
        assert.equal("DeclarativeSource", m.type)
      end
      -- newsdata quotes "no" so that it stays a string
      local m = yaml.decode(H.read_file(MANIFESTS .. "/source-newsdata/manifest.yaml"))
      local found = false
      local function walk(t)
        if type(t) ~= "table" then
          if t == "no" then found = true end
          return
        end
        for _, x in pairs(t) do walk(x) end
      end
      walk(m)
      assert.is_true(found)
    end)
  end)

  describe("interpolation", function()
    local ctx
    before_each(function()
      interp.clock = function() return 1700000000123 end     -- 2023-11-14T22:13:20.123Z
      ctx = { config = { api_key = "k", symbols = arr{ "AAPL", "MSFT" }, lang = arr{ "en", "fr" }, adjusted = false,
                         num = "30", start = "2023-01-05" },
              stream_interval = obj{ start_time = "2023-01-01" }, stream_state = obj(),
              headers = interp.headers(obj{ link = obj{ next = obj{ results = "false", cursor = "c1" } } }),
              response = obj{ Information = "This is a premium endpoint" } }
    end)
    after_each(function() interp.clock = nil end)

    it("evaluates the expressions the corpus uses", function()
      local E = function(t, valid) return interp.eval(t, ctx, nil, valid) end
      assert.equal("k", E("{{ config['api_key'] }}"))
      assert.same({ "AAPL", "MSFT" }, E("{{ config.symbols }}"))
      assert.equal("en,fr", E("{{ ','.join(config['lang']) }}"))
      assert.equal("false", E("{{ 'true' if config.get('adjusted') else 'false' }}"))
      assert.equal(10, E("{{ config.get('num_workers', 10) }}"))
      assert.is_true(E('{{ headers["link"]["next"]["results"] == "false" }}'))
      assert.equal("c1", E('{{ headers["link"].get("next", {}).get("cursor", {}) }}'))
      assert.is_true(E("{{ 'Information' in response and 'This is a premium endpoint' in response['Information'] }}"))
      assert.equal("2023-11-14T22:13:20Z", E("{{ now_utc().strftime('%Y-%m-%dT%H:%M:%SZ') }}"))
      assert.equal("2023-11-14T22:13:20.123000Z", E("{{ format_datetime(now_utc(), '%Y-%m-%dT%H:%M:%S.%fZ') }}"))
      assert.equal("2023-11-14", E("{{ today_utc() }}"))
      assert.equal("historical/2023-01-05.json", E("historical/{{ format_datetime( config['start'] if not stream_state "
        .. "else stream_state['timestamp'], '%Y-%m-%d' ) }}.json"))
      assert.equal("lastSeen:>2023-01-01", E("lastSeen:>{{ stream_interval.get('start_time', '') or '1900' "
        .. "if stream_interval else '1900' }}"))
      assert.equal("2023-11-13", E("{{ (now_utc() - duration('P1D')).strftime('%Y-%m-%d') }}"))
      assert.equal("2023-11-13", E("{{ day_delta(-1, format='%Y-%m-%d') }}"))
      assert.equal(1672531200, E("{{ timestamp('2023-01-01T00:00:00Z') }}"))
      assert.equal(5, E("{{ max(1, 5, 3) }}"))
      assert.equal("2023-01-02T00:00:00+00:00", E("{{ str_to_datetime('2023-01-02').isoformat() }}"))
    end)

    it("reads the render back as a Python literal, with the CDK's defaults and request rules", function()
      assert.equal(30, interp.eval("{{ config.num }}", ctx))
      assert.equal("30", interp.eval("{{ config.num }}", ctx, nil, "request"))
      assert.equal(25, interp.eval("25", ctx))
      assert.equal("true", interp.eval("true", ctx))             -- only Python's True is a literal
      assert.is_true(interp.eval("True", ctx))
      assert.is_nil(interp.eval("{{ config['missing'] }}", ctx))
      assert.is_nil(interp.eval("{{ config['missing'] | urlencode }}", ctx))
      assert.equal("dflt", interp.eval("{{ config['missing'] }}", ctx, "dflt"))
      assert.equal(interp.NONE, interp.eval("{{ config.get('missing') }}", ctx))
      assert.equal("a%20b%2Fc", interp.eval("{{ 'a b/c' | urlencode }}", ctx):gsub("/", "%%2F"))
    end)

    it("has nothing in reach but its names", function()
      for _, t in ipairs({ "{{ os }}", "{{ load('return 1') }}", "{{ require('airbyte.core') }}", "{{ _G }}" }) do
        local ok, err = pcall(interp.eval, t, ctx)
        assert.is_false(ok, t)
        assert.matches("undefined variable", tostring(err.message or err))
      end
      local ok, err = pcall(interp.eval, "{{ config.__index.x }}", ctx)
      assert.is_true(ok)                           -- an undefined attribute: the default
      assert.is_nil(err)
      ok, err = pcall(interp.eval, "{% if x %}y{% endif %}", ctx)
      assert.is_false(ok)
      assert.matches("Jinja statements", err.message)
      ok, err = pcall(interp.eval, "{{ 1 + }}", ctx)
      assert.is_false(ok)
      assert.matches("cannot parse template", err.message)
    end)
  end)

  describe("manifest resolution", function()
    it("resolves $ref with overrides and propagates $parameters as the CDK does", function()
      local m = manifest.resolve(obj{
        version = "6.0.0", type = "DeclarativeSource",
        definitions = obj{ req = obj{ type = "HttpRequester", url_base = "https://x", path = "/a" } },
        streams = arr{ obj{ type = "DeclarativeStream", ["$parameters"] = obj{ name = "things", path = "/things" },
                            retriever = obj{ requester = obj{ ["$ref"] = "#/definitions/req", path = "" },
                                             record_selector = obj{ extractor = obj{ field_path = arr() } } } } },
      })
      local s = m.streams[1]
      assert.equal("things", s.name)                                   -- from $parameters
      assert.equal("SimpleRetriever", s.retriever.type)                 -- default type
      assert.equal("https://x", s.retriever.requester.url_base)         -- from $ref
      assert.equal("/things", s.retriever.requester.path)               -- falsy field filled by $parameters
      assert.equal("DpathExtractor", s.retriever.record_selector.extractor.type)
      assert.equal("things", s.retriever.requester["$parameters"].name)
    end)

    it("names the component path of unknown types, unsupported fields and bad $refs", function()
      local function err_of(tbl)
        local ok, e = pcall(function()
          local m = manifest.resolve(tbl)
          local F = require("airbyte.declarative.factory").new({}, nil)
          for i, s in ipairs(m.streams) do F.stream(s, ("streams[%d]"):format(i - 1)).build() end
        end)
        assert.is_false(ok)
        return e.message
      end
      local function stream(requester)
        return obj{ type = "DeclarativeSource", streams = arr{ obj{ type = "DeclarativeStream", name = "s",
          retriever = obj{ requester = requester, record_selector = obj{ extractor = obj{ field_path = arr() } } } } } }
      end
      assert.matches("streams%[0%]%.retriever%.requester: unknown component type 'FancyRequester'",
        err_of(stream(obj{ type = "FancyRequester" })))
      assert.matches("streams%[0%]%.retriever%.requester: field 'fetch_properties_from_endpoint' of HttpRequester is not supported",
        err_of(stream(obj{ type = "HttpRequester", url_base = "http://x", fetch_properties_from_endpoint = obj{ a = 1 } })))
      assert.matches("CustomRequester 'x.Y' at streams%[0%]%.retriever%.requester",
        err_of(stream(obj{ type = "CustomRequester", class_name = "x.Y" })))
      assert.matches("custom Python components are not supported", err_of(stream(obj{ type = "CustomRequester", class_name = "x.Y" })))
      assert.matches("streams%[0%]%.retriever%.requester: %$ref '#/definitions/nope' points at nothing",
        err_of(stream(obj{ ["$ref"] = "#/definitions/nope" })))
      -- keys outside the schema are tolerated (sentry puts name/path on requesters)
      local m = manifest.resolve(stream(obj{ type = "HttpRequester", url_base = "http://x", primary_key = "id" }))
      local F = require("airbyte.declarative.factory").new({}, nil)
      assert.has_no.errors(function() F.stream(m.streams[1], "streams[0]").build() end)
    end)
  end)

  describe("DatetimeBasedCursor", function()
    local cursors = require "airbyte.declarative.cursors"
    local F = { env = {} }
    before_each(function() interp.clock = function() return 1675209600000 end end)   -- 2023-02-01
    after_each(function() interp.clock = nil end)

    it("slices by step minus cursor_granularity, the last slice ending at the end bound", function()
      local cur = cursors.DatetimeBasedCursor(obj{ cursor_field = "date", datetime_format = "%Y-%m-%d",
        start_datetime = "2022-11-15", step = "P1M", cursor_granularity = "P1D", lookback_window = "P10D" }, "c", F)
      local c = cur.new(nil, { config = obj() })
      local got = {}
      for i, sl in ipairs(c.slices()) do got[i] = sl.start_time .. ".." .. sl.end_time end
      assert.same({ "2022-11-15..2022-12-14", "2022-12-15..2023-01-14", "2023-01-15..2023-02-01" }, got)
      -- records in the sync window count, the state is the highest value seen
      assert.is_true(c.observe(obj{ date = "2022-12-01" }))
      assert.is_false(c.observe(obj{ date = "2021-01-01" }))
      c.close_slice()
      assert.same({ date = "2022-12-01" }, c.state())
      -- resuming: lookback_window before the state
      local c2 = cur.new(obj{ date = "2023-01-20" }, { config = obj() })
      assert.equal("2023-01-10", c2.slices()[1].start_time)
      -- epoch-second formats, and state values in another of the cursor formats (strava's sample_state)
      local ep = cursors.DatetimeBasedCursor(obj{ cursor_field = "t", datetime_format = "%s",
        cursor_datetime_formats = arr{ "%Y-%m-%dT%H:%M:%SZ" }, start_datetime = obj{ datetime = "2023-01-01T00:00:00Z",
        datetime_format = "%Y-%m-%dT%H:%M:%SZ" } }, "c", F)
      assert.equal("1672617600", ep.new(obj{ t = "2023-01-02T00:00:00Z" }, { config = obj() }).slices()[1].start_time)
      local ok, err = pcall(ep.new, obj{ t = "yesterday" }, { config = obj() })
      assert.is_false(ok)
      assert.matches("the state value 'yesterday' of 't' matches none of the datetime formats", err.message)
    end)

    it("reads and writes the CDK's per-partition state", function()
      local cur = cursors.DatetimeBasedCursor(obj{ cursor_field = "d", datetime_format = "%Y-%m-%d",
        start_datetime = "2023-01-01" }, "c", F)
      local ps = cursors.partitioned(cur, obj{ states = arr{ obj{ partition = obj{ id = 1 }, cursor = obj{ d = "2023-01-20" } } },
        state = obj{ d = "2023-01-05" }, use_global_cursor = false }, { config = obj() })
      assert.equal("2023-01-20", ps.for_partition(obj{ id = 1 }).slices()[1].start_time)
      local c2 = ps.for_partition(obj{ id = 2 })           -- new partition: the global state
      assert.equal("2023-01-05", c2.slices()[1].start_time)
      c2.observe(obj{ d = "2023-01-25" }); c2.close_slice(); ps.close(obj{ id = 2 })
      local st = ps.state()
      assert.equal(2, #st.states)                            -- partitions not re-read keep their state
      assert.same({ partition = { id = 1 }, cursor = { d = "2023-01-20" } }, st.states[1])
      assert.same({ partition = { id = 2 }, cursor = { d = "2023-01-25" } }, st.states[2])
      assert.same({ d = "2023-01-20" }, st.state)
      assert.is_false(st.use_global_cursor)
    end)
  end)

  -- The corpus, end to end ------------------------------------------------------------

  describe("corpus connectors", function()
    local C
    local function case(name)
      if not H.need_shared(pending) then return nil end
      C = C or cases_mod.cases(H.shared)
      return C[name]
    end

    local function files(c, name)
      local config = write_json(dir .. "/config.json", c.config)
      local catalog = c.catalog == "published" and (MANIFESTS .. "/" .. name .. "/integration_tests/configured_catalog.json")
        or write_json(dir .. "/catalog.json", c.catalog)
      return config, catalog
    end

    local NAMES = { "source-pokeapi", "source-polygon-stock-api", "source-confluence", "source-newsdata",
                    "source-k6-cloud", "source-sentry", "source-finnhub", "source-alpha-vantage", "source-nasa",
                    "source-strava", "source-open-exchange-rates" }

    for _, name in ipairs(NAMES) do
      it(name .. ": spec validates against the protocol schema", function()
        if not case(name) then return end
        local cmd = ("%s connector --manifest %s spec | python3 %s --protocol %s"):format(H.shell_quote(H.exe),
          H.shell_quote(MANIFESTS .. "/" .. name .. "/manifest.yaml"), H.shell_quote(H.fixtures .. "/validate_protocol.py"),
          H.shell_quote(H.shared .. "/protocol/airbyte_protocol.schema.json"))
        local out, code = H.run({ "sh", "-c", cmd .. " 2>&1" })
        assert.equal(0, code, out)
        local msgs = messages(select(2, connector(MANIFESTS .. "/" .. name .. "/manifest.yaml", { "spec" })))
        assert.equal("SPEC", msgs[1].type)
        assert.equal("object", msgs[1].spec.connectionSpecification.type)
      end)

      it_http(name .. ": discover matches the published catalog and read yields exactly the expected records", function()
        local c = case(name)
        if not c then return end
        local config, catalog = files(c, name)
        local path = MANIFESTS .. "/" .. name .. "/manifest.yaml"
        local srv, env = start_server(c.routes, c.rewrite)
        local ok, err = pcall(function()
          local msgs = connector(path, { "discover", "--config", config }, env)
          local cat
          for _, m in ipairs(msgs) do if m.type == "CATALOG" then cat = m.catalog end end
          assert.is_table(cat, "no CATALOG")
          local discovered = {}
          for _, s in ipairs(cat.streams) do discovered[s.name] = s end
          local published = json.decode(H.read_file(catalog))
          local declared = {}
          for _, st in ipairs(manifest.load(path).streams) do declared[st.name] = st.schema_loader.schema end
          for _, cs in ipairs(published.streams) do
            local d = discovered[cs.stream.name]
            assert.is_table(d, "stream " .. cs.stream.name .. " missing from discover")
            -- the published configured catalogs carry placeholder schemas: the
            -- discovered one must be the manifest's own
            assert.equal(canon(declared[cs.stream.name]), canon(d.json_schema), cs.stream.name .. " schema")
            if cs.sync_mode == "incremental" then
              assert.is_true(d.source_defined_cursor, cs.stream.name)
            end
          end

          local rmsgs, out, code = connector(path, { "read", "--config", config, "--catalog", catalog }, env)
          assert.equal(0, code, out)
          local got = records_by_stream(rmsgs)
          for stream, expected in pairs(c.expected) do
            assert.same(multiset(expected), multiset(got[stream] or {}), name .. " stream " .. stream)
          end
          for stream in pairs(got) do assert.is_table(c.expected[stream], "unexpected stream " .. stream) end
          assert.same({}, trace_errors(rmsgs))
          -- and the whole output is valid protocol
          local vout, vcode = H.run({ "sh", "-c", ("python3 %s --protocol %s 2>&1"):format(
            H.shell_quote(H.fixtures .. "/validate_protocol.py"), H.shell_quote(H.shared .. "/protocol/airbyte_protocol.schema.json")) },
            { stdin = out .. "\n" })
          assert.equal(0, vcode, vout)
        end)
        srv:stop()
        if not ok then error(err, 0) end
      end)
    end

    it_http("source-alpha-vantage: streams needing components.py fail with a clear error naming the component", function()
      local c = case("source-alpha-vantage")
      if not c then return end
      local config = write_json(dir .. "/config.json", c.config)
      local path = MANIFESTS .. "/source-alpha-vantage/manifest.yaml"
      local srv, env = start_server(c.routes, c.rewrite)
      local ok, err = pcall(function()
        local msgs = connector(path, { "discover", "--config", config }, env)
        local names, warnings = {}, {}
        for _, m in ipairs(msgs) do
          if m.type == "CATALOG" then for _, s in ipairs(m.catalog.streams) do names[#names + 1] = s.name end end
          if m.type == "LOG" and m.log.level == "WARN" then warnings[#warnings + 1] = m.log.message end
        end
        assert.same({ "quote" }, names)
        assert.equal(#c.custom_streams, #warnings)
        assert.matches("custom Python components are not supported: CustomRecordExtractor "
          .. "'source_declarative_manifest.components.ObjectDpathExtractor' at streams%[0%]", warnings[1])
        -- the published catalog asks for custom streams too: they fail, `quote` is read
        local rmsgs, out, code = connector(path, { "read", "--config", config, "--catalog",
          MANIFESTS .. "/source-alpha-vantage/integration_tests/configured_catalog.json" }, env)
        assert.equal(1, code)
        assert.equal(1, #(records_by_stream(rmsgs).quote or {}))
        local errs = trace_errors(rmsgs)
        assert.equal(1, #errs, out)
        assert.equal("config_error", errs[1].failure_type)
        assert.matches("stream 'time_series_daily': custom Python components are not supported", errs[1].message)
        assert.matches("ObjectDpathExtractor", errs[1].message)
      end)
      srv:stop()
      if not ok then error(err, 0) end
    end)

    it_http("source-alpha-vantage: a 200 with an Information key is RATE_LIMITED and retried", function()
      local c = case("source-alpha-vantage")
      if not c then return end
      local routes = { { path = "/query", query = c.routes[1].query, responses = {
        { body_file = MANIFESTS .. "/source-alpha-vantage/unit_tests/resource/http/response/information_message.json" },
        c.routes[1].responses[1] } } }
      local config, catalog = write_json(dir .. "/config.json", c.config), write_json(dir .. "/catalog.json", c.catalog)
      local srv, env = start_server(routes, c.rewrite)
      local ok, err = pcall(function()
        local msgs, out, code = connector(MANIFESTS .. "/source-alpha-vantage/manifest.yaml",
          { "read", "--config", config, "--catalog", catalog }, env)
        assert.equal(0, code, out)
        assert.same(multiset(c.expected.quote), multiset(records_by_stream(msgs).quote))
        assert.equal(2, #srv:requests())
        assert.matches("Alpha Vantage rate limit reached", out)
        assert.is_nil(out:find("av-key", 1, true))           -- the api key is masked in logs
      end)
      srv:stop()
      if not ok then error(err, 0) end
    end)

    -- state resumes: the second read starts from the first read's state
    it_http("source-strava: incremental state resumes without duplicates; the rotated refresh token goes out as CONTROL", function()
      local c = case("source-strava")
      if not c then return end
      local config, catalog = files(c, "source-strava")
      local last = c.expected.activities[#c.expected.activities]
      local newer = obj{ id = 999, name = "Evening Run", start_date = "2016-11-01T10:00:00Z", type = "Run" }
      local after_last = tostring(require("airbyte.declarative.datetime").parse(last.start_date, "%Y-%m-%dT%H:%M:%SZ").t)
      local routes = { table.unpack(c.routes) }
      table.insert(routes, 3, { path = "/api/v3/athlete/activities", query = obj{ after = after_last },
                                responses = { { json = arr{ newer } } } })
      local srv, env = start_server(routes, c.rewrite)
      local ok, err = pcall(function()
        local m1, out1, code1 = connector(MANIFESTS .. "/source-strava/manifest.yaml",
          { "read", "--config", config, "--catalog", catalog }, env)
        assert.equal(0, code1, out1)
        local control
        for _, m in ipairs(m1) do if m.type == "CONTROL" then control = m.control end end
        assert.is_table(control, "no CONTROL message")
        assert.equal("CONNECTOR_CONFIG", control.type)
        assert.equal("bbbb2222", control.connectorConfig.config.refresh_token)
        assert.equal("strava-access-1", control.connectorConfig.config.access_token)
        local st = states_of(m1, "activities")
        assert.equal(after_last, st[#st].state.stream.stream_state.start_date)
        write_json(dir .. "/state.json", arr{ st[#st].state })
        local m2, out2, code2 = connector(MANIFESTS .. "/source-strava/manifest.yaml",
          { "read", "--config", config, "--catalog", catalog, "--state", dir .. "/state.json" }, env)
        assert.equal(0, code2, out2)
        local r1, r2 = records_by_stream(m1).activities, records_by_stream(m2).activities
        assert.same({ 999 }, { r2[1].id })
        local seen = {}
        for _, r in ipairs(r1) do seen[r.id] = true end
        for _, r in ipairs(r2) do assert.is_nil(seen[r.id], "duplicate activity " .. r.id) end
        local st2 = states_of(m2, "activities")
        assert.equal("1477994400", st2[#st2].state.stream.stream_state.start_date)
        -- the CDK's legacy state form (sample_state.json) resumes too
        local m3 = connector(MANIFESTS .. "/source-strava/manifest.yaml", { "read", "--config", config, "--catalog",
          catalog, "--state", MANIFESTS .. "/source-strava/integration_tests/sample_state.json" }, env)
        assert.same({}, trace_errors(m3))
      end)
      srv:stop()
      if not ok then error(err, 0) end
    end)

    it_http("source-nasa: the second read starts lookback_window before the state", function()
      local c = case("source-nasa")
      if not c then return end
      local config, catalog = files(c, "source-nasa")
      local srv, env = start_server(c.routes, c.rewrite)
      local ok, err = pcall(function()
        write_json(dir .. "/state.json", json.decode(H.read_file(MANIFESTS .. "/source-nasa/integration_tests/sample_state.json")))
        local msgs, out, code = connector(MANIFESTS .. "/source-nasa/manifest.yaml",
          { "read", "--config", config, "--catalog", catalog, "--state", dir .. "/state.json" }, env)
        assert.equal(0, code, out)
        local reqs = srv:requests()
        assert.equal("2023-09-19", reqs[1].query.start_date)   -- 2023-10-20 - P31D
        local st = states_of(msgs, "nasa_apod")
        assert.equal("2023-10-20", st[#st].state.stream.stream_state.date)
        -- abnormal (future) state: nothing to read, state kept
        local m2 = connector(MANIFESTS .. "/source-nasa/manifest.yaml", { "read", "--config", config, "--catalog",
          catalog, "--state", MANIFESTS .. "/source-nasa/integration_tests/abnormal_state.json" }, env)
        assert.same({}, records_by_stream(m2))
        assert.same({}, trace_errors(m2))
      end)
      srv:stop()
      if not ok then error(err, 0) end
    end)

    it_http("source-open-exchange-rates: legacy states (an epoch integer) resume from their day; a future one reads nothing", function()
      local c = case("source-open-exchange-rates")
      if not c then return end
      local config, catalog = files(c, "source-open-exchange-rates")
      local routes = { table.unpack(c.routes) }
      routes[#routes + 1] = { path = "/api/historical/2023-08-02.json", responses = { { json = obj{ timestamp = 1691020799,
        base = "USD", rates = obj{ EUR = 0.9 } } } } }
      local srv, env = start_server(routes, c.rewrite)
      local ok, err = pcall(function()
        write_json(dir .. "/state.json", obj{ open_exchange_rates = obj{ timestamp = 1691020000 } })
        local msgs, out, code = connector(MANIFESTS .. "/source-open-exchange-rates/manifest.yaml", { "read", "--config",
          config, "--catalog", catalog, "--state", dir .. "/state.json" }, env)
        assert.equal(0, code, out)
        assert.equal("/api/historical/2023-08-02.json", srv:requests()[1].path)
        local st = states_of(msgs, "open_exchange_rates")
        assert.equal("1691020799", st[#st].state.stream.stream_state.timestamp)
        local n = #srv:requests()
        local m2, out2, code2 = connector(MANIFESTS .. "/source-open-exchange-rates/manifest.yaml", { "read", "--config",
          config, "--catalog", catalog, "--state", MANIFESTS .. "/source-open-exchange-rates/integration_tests/abnormal_state.json" }, env)
        assert.equal(0, code2, out2)
        assert.equal(n, #srv:requests())                      -- 2035: nothing to ask for yet
        local st2 = states_of(m2, "open_exchange_rates")
        assert.equal("2052084644", st2[#st2].state.stream.stream_state.timestamp)
      end)
      srv:stop()
      if not ok then error(err, 0) end
    end)

    it_http("source-finnhub: per-partition state resumes each symbol from its own cursor", function()
      local c = case("source-finnhub")
      if not c then return end
      local config = write_json(dir .. "/config.json", c.config)
      local catalog = write_json(dir .. "/catalog.json", cases_mod.catalog{ { "sec_filings", "incremental" } })
      local srv, env = start_server(c.routes, c.rewrite)
      local ok, err = pcall(function()
        local m1, out1, code1 = connector(MANIFESTS .. "/source-finnhub/manifest.yaml",
          { "read", "--config", config, "--catalog", catalog }, env)
        assert.equal(0, code1, out1)
        local st = states_of(m1, "sec_filings")
        local state = st[#st].state.stream.stream_state
        assert.equal(2, #state.states)
        assert.same({ symbol = "AAPL" }, state.states[1].partition)
        assert.equal("2023-02-02 00:00:00", state.states[1].cursor.filedDate)
        assert.is_false(state.use_global_cursor)
        write_json(dir .. "/state.json", arr{ st[#st].state })
        connector(MANIFESTS .. "/source-finnhub/manifest.yaml",
          { "read", "--config", config, "--catalog", catalog, "--state", dir .. "/state.json" }, env)
        local second = {}
        for _, r in ipairs(srv:requests()) do
          if r.path == "/api/v1/stock/filings" then second[#second + 1] = r.query["from"] end
        end
        assert.same({ "2023-01-01 00:00:00", "2023-01-01 00:00:00", "2023-02-02 00:00:00", "2023-02-02 00:00:00" }, second)
      end)
      srv:stop()
      if not ok then error(err, 0) end
    end)

    it_http("check uses CheckStream and reports HTTP failures with the API's message, credentials masked", function()
      local c = case("source-sentry")
      if not c then return end
      local config = write_json(dir .. "/config.json", c.config)
      local srv, env = start_server({ { path = "/api/0/projects/acme/proj/", responses = {
        { status = 401, json = obj{ detail = "Invalid token sentry-token" } } } } }, c.rewrite)
      local ok, err = pcall(function()
        local msgs, out = connector(MANIFESTS .. "/source-sentry/manifest.yaml", { "check", "--config", config }, env)
        local status
        for _, m in ipairs(msgs) do if m.type == "CONNECTION_STATUS" then status = m.connectionStatus end end
        assert.is_table(status, out)
        assert.equal("FAILED", status.status)
        assert.matches("HTTP 401", status.message)
        assert.matches("Invalid token %*%*%*%*", status.message)
        assert.is_nil(out:find("sentry-token", 1, true))
      end)
      srv:stop()
      if not ok then error(err, 0) end
      srv, env = start_server(c.routes, c.rewrite)
      ok, err = pcall(function()
        local msgs = connector(MANIFESTS .. "/source-sentry/manifest.yaml", { "check", "--config", config }, env)
        local status
        for _, m in ipairs(msgs) do if m.type == "CONNECTION_STATUS" then status = m.connectionStatus end end
        assert.equal("SUCCEEDED", status.status)
      end)
      srv:stop()
      if not ok then error(err, 0) end
    end)
  end)

  -- Features no corpus manifest uses: small manifests of our own ------------------------

  describe("features beyond the corpus", function()
    local BASE = "http://api.test/"
    local SPEC = obj{ connection_specification = obj{ type = "object", properties = obj{
      token = obj{ type = "string", airbyte_secret = true } } } }

    local function source_with(streams, extra)
      local m = obj{ version = "6.0.0", type = "DeclarativeSource", check = obj{ type = "CheckStream",
        stream_names = arr{ streams[1].name } }, spec = SPEC, streams = arr(streams) }
      for k, v in pairs(extra or {}) do m[k] = v end
      return write_json(dir .. "/manifest.json", m)
    end

    local function read_all(path, routes, names, config)
      local srv, env = start_server(routes, { BASE })
      local cfg = write_json(dir .. "/config.json", config or obj{ token = "tok-secret-1" })
      local list = {}
      for i, n in ipairs(names) do list[i] = { n } end
      local cat = write_json(dir .. "/catalog.json", cases_mod.catalog(list))
      local ok, msgs, out, code = pcall(connector, path, { "read", "--config", cfg, "--catalog", cat }, env)
      local reqs = srv:requests()
      srv:stop()
      if not ok then error(msgs, 0) end
      return msgs, out, code, reqs
    end

    local function stream(name, requester, extra)
      local s = obj{ type = "DeclarativeStream", name = name, primary_key = "id",
        schema_loader = obj{ type = "InlineSchemaLoader", schema = obj{ type = "object" } },
        retriever = obj{ type = "SimpleRetriever", requester = requester,
          record_selector = obj{ type = "RecordSelector", extractor = obj{ type = "DpathExtractor", field_path = arr{ "data" } } } } }
      for k, v in pairs(extra or {}) do
        if k == "paginator" or k == "record_selector" then s.retriever[k] = v else s[k] = v end
      end
      return s
    end

    it_http("$parameters, request_headers, request_body_json, RemoveFields and next_page_token/last_record templates", function()
      local path = source_with({ stream(nil, obj{ type = "HttpRequester", url_base = BASE, path = "{{ parameters.path }}",
          http_method = "POST",
          request_headers = obj{ ["X-Token"] = "{{ config.token }}", ["X-Page"] = "{{ next_page_token.next_page_token or 'first' }}" },
          request_body_json = obj{ query = "{{ parameters.name }}", nested = obj{ limit = 2 } } },
        { ["$parameters"] = obj{ name = "things", path = "/v1/things" },
          transformations = arr{ obj{ type = "RemoveFields", field_pointers = arr{ arr{ "secret" }, arr{ "meta", "*", "drop" } } } },
          paginator = obj{ type = "DefaultPaginator",
            page_token_option = obj{ type = "RequestOption", inject_into = "request_parameter", field_name = "after" },
            pagination_strategy = obj{ type = "CursorPagination",
              cursor_value = "{{ last_record['id'] if response.more else '' }}" } } }) })
      local routes = {
        { method = "POST", path = "/v1/things", query = obj{ after = json.null }, json = obj{ query = "things" },
          headers = obj{ ["X-Token"] = "tok-secret-1", ["X-Page"] = "first" },
          responses = { { json = obj{ more = true, data = arr{
            obj{ id = 1, secret = "s", meta = obj{ a = obj{ drop = 1, keep = 2 } } },
            obj{ id = 2, secret = "s" } } } } } },
        { method = "POST", path = "/v1/things", query = obj{ after = "2" }, headers = obj{ ["X-Page"] = "2" },
          responses = { { json = obj{ more = false, data = arr{ obj{ id = 3 } } } } } },
      }
      local msgs, out, code, reqs = read_all(path, routes, { "things" })
      assert.equal(0, code, out)
      assert.same(multiset{ obj{ id = 1, meta = obj{ a = obj{ keep = 2 } } }, obj{ id = 2 }, obj{ id = 3 } },
        multiset(records_by_stream(msgs).things))
      assert.equal(2, #reqs)
      assert.same({ query = "things", nested = { limit = 2 } }, json.decode(reqs[1].body))
      assert.equal("application/json", reqs[1].headers["content-type"])
    end)

    it_http("'*' in field_path collects every match; JsonFileSchemaLoader reads schemas beside the manifest", function()
      assert(os.execute("mkdir -p " .. H.shell_quote(dir .. "/schemas")))
      write_json(dir .. "/schemas/items.json", obj{ type = "object", properties = obj{ id = obj{ type = "integer" } } })
      local s = stream("items", obj{ type = "HttpRequester", url_base = BASE, path = "/items" },
        { schema_loader = obj{ type = "JsonFileSchemaLoader" },
          record_selector = obj{ type = "RecordSelector", extractor = obj{ type = "DpathExtractor",
            field_path = arr{ "groups", "*", "items" } } } })
      local path = source_with({ s })
      local msgs, out, code = read_all(path, { { path = "/items", responses = { { json = obj{ groups = arr{
        obj{ items = arr{ obj{ id = 1 }, obj{ id = 2 } } }, obj{ items = arr{ obj{ id = 3 } } }, obj{ other = 1 } } } } } } },
        { "items" })
      assert.equal(0, code, out)
      assert.same(multiset{ obj{ id = 1 }, obj{ id = 2 }, obj{ id = 3 } }, multiset(records_by_stream(msgs).items))
      local dmsgs = connector(path, { "discover", "--config", write_json(dir .. "/config.json", obj{ token = "t" }) })
      local cat
      for _, m in ipairs(dmsgs) do if m.type == "CATALOG" then cat = m.catalog end end
      assert.equal("integer", cat.streams[1].json_schema.properties.id.type)
      assert.same({ { "id" } }, cat.streams[1].source_defined_primary_key)
    end)

    it_http("keeps empty arrays, empty objects and big integers of the API's JSON as they are", function()
      local s = stream("exact", obj{ type = "HttpRequester", url_base = BASE, path = "/exact" })
      local body = '{"data":[{"id":1,"tags":[],"meta":{},"big":123456789012345678901234567890,"f":1.5}]}'
      local _, out, code = read_all(source_with({ s }), { { path = "/exact", responses = { { body = body } } } }, { "exact" })
      assert.equal(0, code, out)
      assert.matches('"data":{"big":123456789012345678901234567890,"f":1.5,"id":1,"meta":{},"tags":%[%]}', out)
    end)

    it_http("parents feed SubstreamPartitionRouter partitions; OffsetIncrement from the first request; RequestPath tokens", function()
      local users = stream("users", obj{ type = "HttpRequester", url_base = BASE, path = "/users" },
        { paginator = obj{ type = "DefaultPaginator",
            page_token_option = obj{ type = "RequestOption", inject_into = "request_parameter", field_name = "offset" },
            page_size_option = obj{ type = "RequestOption", inject_into = "request_parameter", field_name = "limit" },
            pagination_strategy = obj{ type = "OffsetIncrement", page_size = 2, inject_on_first_request = true } } })
      local posts = stream("posts", obj{ type = "HttpRequester", url_base = BASE, path = "/posts" },
        { paginator = obj{ type = "DefaultPaginator", page_token_option = obj{ type = "RequestPath" },
            pagination_strategy = obj{ type = "CursorPagination", cursor_value = "{{ response.get('next', '') }}" } } })
      posts.retriever.partition_router = obj{ type = "SubstreamPartitionRouter", parent_stream_configs = arr{
        obj{ type = "ParentStreamConfig", stream = users, parent_key = "id", partition_field = "user",
             extra_fields = arr{ arr{ "name" } },
             request_option = obj{ type = "RequestOption", inject_into = "request_parameter", field_name = "user_id" } } } }
      -- the next URL carries user_id already (the CDK would send it twice otherwise)
      posts.retriever.ignore_stream_slicer_parameters_on_paginated_requests = true
      posts.transformations = arr{ obj{ type = "AddFields", fields = arr{
        obj{ path = arr{ "author" }, value = "{{ stream_partition.name }}" } } } }
      local srv_base = "http://api.test/"
      local msgs, out, code, reqs = read_all(source_with({ posts }), {
        { path = "/users", query = obj{ offset = "0", limit = "2" }, responses = { { json = obj{ data = arr{
          obj{ id = 1, name = "ann" }, obj{ id = 2, name = "bob" } } } } } },
        { path = "/users", query = obj{ offset = "2", limit = "2" }, responses = { { json = obj{ data = arr{
          obj{ id = 3, name = "cy" } } } } } },
        { path = "/posts", query = obj{ user_id = "1", cursor = json.null }, responses = { { json = obj{
          data = arr{ obj{ id = 10 } }, next = srv_base .. "posts?cursor=2&user_id=1" } } } },
        { path = "/posts", query = obj{ user_id = "1", cursor = "2" }, responses = { { json = obj{ data = arr{ obj{ id = 11 } } } } } },
        { path = "/posts", query = obj{ user_id = "2" }, responses = { { json = obj{ data = arr() } } } },
        { path = "/posts", query = obj{ user_id = "3" }, responses = { { json = obj{ data = arr{ obj{ id = 30 } } } } } },
      }, { "posts" })
      assert.equal(0, code, out)
      assert.same(multiset{ obj{ id = 10, author = "ann" }, obj{ id = 11, author = "ann" }, obj{ id = 30, author = "cy" } },
        multiset(records_by_stream(msgs).posts))
      assert.equal(6, #reqs)
    end)

    it_http("retries 429 honouring Retry-After and a 500 then success; exponential and header backoff strategies", function()
      local s1 = stream("limited", obj{ type = "HttpRequester", url_base = BASE, path = "/limited" })
      local s2 = stream("flaky", obj{ type = "HttpRequester", url_base = BASE, path = "/flaky",
        error_handler = obj{ type = "DefaultErrorHandler", max_retries = 3, backoff_strategies = arr{
          obj{ type = "WaitTimeFromHeader", header = "X-Wait" },
          obj{ type = "ExponentialBackoffStrategy", factor = 0 } } } })
      local path = source_with({ s1, s2 })
      local msgs, out, code, reqs = read_all(path, {
        { path = "/limited", responses = { { status = 429, headers = obj{ ["Retry-After"] = "0" }, json = obj{ message = "slow down" } },
                                           { json = obj{ data = arr{ obj{ id = 1 } } } } } },
        { path = "/flaky", responses = { { status = 500, headers = obj{ ["X-Wait"] = "0" }, body = "oops" },
                                         { status = 503, body = "still" },
                                         { json = obj{ data = arr{ obj{ id = 2 } } } } } },
      }, { "limited", "flaky" })
      assert.equal(0, code, out)
      assert.equal(1, #records_by_stream(msgs).limited)
      assert.equal(1, #records_by_stream(msgs).flaky)
      assert.equal(5, #reqs)
      assert.matches("HTTP 429 from GET http://api.test/limited: slow down; retry 1/5 in 0.0 s", out)
      assert.matches("HTTP 500 from GET http://api.test/flaky: oops; retry 1/3 in 0.0 s", out)
    end)

    it_http("gives up after max_retries with a TRACE ERROR carrying the status and the API's message", function()
      local s = stream("down", obj{ type = "HttpRequester", url_base = BASE, path = "/down",
        error_handler = obj{ type = "DefaultErrorHandler", max_retries = 1,
          backoff_strategies = arr{ obj{ type = "ConstantBackoffStrategy", backoff_time_in_seconds = 0 } } } })
      local msgs, out, code, reqs = read_all(source_with({ s }), { { path = "/down", responses = {
        { status = 502, json = obj{ error = obj{ message = "bad gateway for tok-secret-1" } } } } } }, { "down" })
      assert.equal(1, code)
      assert.equal(2, #reqs)
      local errs = trace_errors(msgs)
      assert.equal(1, #errs)
      assert.matches("HTTP 502 from GET http://api.test/down: bad gateway for %*%*%*%* %(giving up after 1 retries%)", errs[1].message)
      assert.equal("transient_error", errs[1].failure_type)
      assert.is_nil(out:find("tok-secret-1", 1, true))
    end)

    it_http("fails a stream whose response is not JSON, naming the URL", function()
      local s = stream("broken", obj{ type = "HttpRequester", url_base = BASE, path = "/broken" })
      local msgs, out, code = read_all(source_with({ s }), { { path = "/broken", responses = {
        { body = "<html>maintenance</html>" } } } }, { "broken" })
      assert.equal(1, code)
      local errs = trace_errors(msgs)
      assert.matches("the response of http://127%.0%.0%.1:%d+/broken is not valid JSON", errs[1].message)
      assert.matches("maintenance", errs[1].message)
    end)

    it_http("IGNORE and FAIL response filters with templated messages", function()
      local s = stream("filtered", obj{ type = "HttpRequester", url_base = BASE, path = "/f",
        error_handler = obj{ type = "DefaultErrorHandler", response_filters = arr{
          obj{ type = "HttpResponseFilter", http_codes = arr{ 404 }, action = "IGNORE" },
          obj{ type = "HttpResponseFilter", predicate = "{{ response.code == 'quota' }}", action = "FAIL",
               failure_type = "config_error", error_message = "quota exceeded: {{ response.detail }}" } } } },
        { paginator = obj{ type = "DefaultPaginator", pagination_strategy = obj{ type = "PageIncrement", page_size = 1,
            start_from_page = 1 }, page_token_option = obj{ type = "RequestOption", inject_into = "request_parameter",
            field_name = "page" } } })
      local msgs, out, code = read_all(source_with({ s }), {
        { path = "/f", query = obj{ page = json.null }, responses = { { json = obj{ data = arr{ obj{ id = 1 } } } } } },
        { path = "/f", query = obj{ page = "2" }, responses = { { status = 404, body = "gone" } } },
      }, { "filtered" })
      assert.equal(0, code, out)
      assert.equal(1, #records_by_stream(msgs).filtered)
      local msgs2, _, code2 = read_all(source_with({ s }), {
        { path = "/f", responses = { { status = 200, json = obj{ code = "quota", detail = "100/day" } } } } }, { "filtered" })
      assert.equal(1, code2)
      local e = trace_errors(msgs2)[1]
      assert.equal("config_error", e.failure_type)
      assert.matches("quota exceeded: 100/day", e.message)
    end)

    it_http("refreshes an expired OAuth token from the config before the first request", function()
      local s = stream("me", obj{ type = "HttpRequester", url_base = BASE, path = "/me",
        authenticator = obj{ type = "OAuthAuthenticator", token_refresh_endpoint = BASE .. "oauth/token",
          client_id = "{{ config.client_id }}", client_secret = "{{ config.client_secret }}",
          refresh_token = "{{ config.refresh_token }}", refresh_token_updater = obj{} } })
      local config = obj{ client_id = "cid", client_secret = "csecret", credentials = obj{
        refresh_token = "rt-old", access_token = "stale-token", token_expiry_date = "2000-01-01T00:00:00+00:00" } }
      local msgs, out, code, reqs = read_all(source_with({ s }), {
        { method = "POST", path = "/oauth/token", form = obj{ refresh_token = "rt-old", grant_type = "refresh_token" },
          responses = { { json = obj{ access_token = "fresh-token", expires_in = 3600, refresh_token = "rt-new" } } } },
        { path = "/me", headers = obj{ Authorization = "Bearer fresh-token" }, responses = { { json = obj{ data = arr{ obj{ id = 7 } } } } } },
      }, { "me" }, config)
      assert.equal(0, code, out)
      assert.equal(1, #records_by_stream(msgs).me)
      assert.equal("/oauth/token", reqs[1].path)
      local control
      for _, m in ipairs(msgs) do if m.type == "CONTROL" then control = m.control end end
      assert.equal("rt-new", control.connectorConfig.config.credentials.refresh_token)
      assert.equal("fresh-token", control.connectorConfig.config.credentials.access_token)
      -- a valid token in the config is used as is: no refresh
      config.credentials.token_expiry_date = "2999-01-01T00:00:00+00:00"
      local _, out3, code3, reqs3 = read_all(source_with({ s }), {
        { path = "/me", headers = obj{ Authorization = "Bearer stale-token" }, responses = { { json = obj{ data = arr() } } } },
      }, { "me" }, config)
      assert.equal(0, code3, out3)
      assert.equal(1, #reqs3)
    end)
  end)

  describe("get_source", function()
    it_http("runs a manifest by path, by table and from AIRBYTE_MANIFESTS_DIR, saying where it looked", function()
      if not H.need_shared(pending) then return end
      local ab = require "airbyte"
      local cases = cases_mod.cases(H.shared)
      local c = cases["source-pokeapi"]
      local srv, env = start_server(c.routes, c.rewrite)
      local ok, err = pcall(function()
        local path = MANIFESTS .. "/source-pokeapi/manifest.yaml"
        local src = ab.get_source("source-pokeapi", { source_manifest = path, config = c.config })
        src.executor.env = env
        assert.equal("manifest", src.executor.kind)
        assert.equal("4.5.4", src.executor:get_installed_version())
        src:check()
        src:select_all_streams()
        local cache_dir, cache = H.open_test_cache()
        local result = src:read{ cache = cache }
        assert.equal(1, #result["pokemon"])
        H.close_test_cache(cache_dir, cache)

        local tbl = yaml.decode(H.read_file(path))
        local src2 = ab.get_source("source-pokeapi", { source_manifest = tbl, config = c.config })
        assert.same({ "pokemon" }, src2:get_available_streams())

        assert(os.execute("mkdir -p " .. H.shell_quote(dir .. "/m/source-pokeapi") .. " && cp " .. H.shell_quote(path)
          .. " " .. H.shell_quote(dir .. "/m/source-pokeapi/manifest.yaml")))
        H.with_env({ AIRBYTE_MANIFESTS_DIR = dir .. "/m" }, function()
          assert.equal("manifest", ab.get_source("source-pokeapi", { source_manifest = true }).executor.kind)
          -- manifest-only in the registry: the local manifest wins over Docker
          assert.equal("manifest", ab.get_source("source-pokeapi").executor.kind)
        end)
        H.with_env({ AIRBYTE_MANIFESTS_DIR = dir .. "/none", AIRBYTE_PROJECT_DIR = dir }, function()
          local kind, e = H.error_kind(function() ab.get_source("source-pokeapi", { source_manifest = true }) end)
          assert.equal("AirbyteConnectorExecutableNotFoundError", kind)
          assert.matches(dir .. "/none/source%-pokeapi/manifest.yaml", e.message)
          assert.matches(dir .. "/manifests/source%-pokeapi/manifest.yaml", e.message)
        end)
      end)
      srv:stop()
      if not ok then error(err, 0) end
    end)
  end)
end)
