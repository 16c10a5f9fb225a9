-- Values arrive as they were read (issue 8, items 7 and 20): a corpus of
-- records (the faker streams and edge values) goes from a real source
-- process through the real SQLite cache into the built-in
-- destination-local-json, and straight through; the destination's
-- _airbyte_data must equal the source's data as JSON values, numbers
-- compared exactly (integers by their digits, floats as the doubles they
-- parse to). Also: out-of-range emitted_at values are clamped with a
-- warning and never reach undefined behaviour (this spec runs under the
-- ASan/UBSan build too).
local H = require "helper"
local ab = require "airbyte"
local json = require "airbyte.json"

local NULL = json.null
local EMITTED = 1669682107441

---------------------------------------------------------------------------
-- The corpus
---------------------------------------------------------------------------

local EDGE_SCHEMA = [[{"type":"object","properties":{
  "id":{"type":"integer"},"i":{"type":"integer"},"n":{"type":["null","number"]},
  "s":{"type":"string"},"b":{"type":"boolean"},"o":{"type":"object"},"a":{"type":"array"}}}]]

-- Data texts, spelled exactly as the source prints them.
local INTEGERS = { "0", "-0", "1", "-1", "9007199254740991", "9007199254740992", "9007199254740993",
  "-9007199254740993", "9223372036854775807", "9223372036854775808", "9223372036854775809",
  "-9223372036854775808", "-9223372036854775809", "12345678901234567890", "-12345678901234567890",
  "99999999999999999999", "123456789012345678901234567890" }
local NUMBERS = { "0.0", "-0.0", "0", "1.1", "0.30000000000000004", "0.1", "1e308", "1.7976931348623157e308",
  "-1e308", "1e-308", "2.2250738585072014e-308", "5e-324", "-5e-324", "4.9406564584124654e-324",
  "9007199254740991", "9007199254740993", "9007199254740993.0", "9223372036854775807", "9223372036854775809",
  "12345678901234567890", "-12345678901234567890", "0.1000000000000000055511151231257827",
  "3.141592653589793238462643383279", "1E2", "-1.5e-7", "123456789.123456789", "1e22", "1e15", "1e16",
  "100.0", "2.5", "1.0000000000000002", "0.000001", "1e-7", "-0", "6.02214076e23" }
local STRINGS = { '""', '"plain"', '"é ü 日本 😀"', '"\\u00e9\\u65e5\\ud83d\\ude00"',
  '"quote \\" back \\\\ slash \\/"', '"\\b\\f\\n\\r\\t"', '"\\u0000 nul \\u001f \\u007f"',
  '"line\\u2028sep\\u2029"', '"<script>alert(1)</script>"', '"' .. string.rep("long ", 2000) .. '"',
  '"20210102"', '"1.10"', '"null"' }
local OTHERS = {
  '"b":true', '"b":false',
  '"o":{"x":1.10,"y":[1,2.50,"a",-0.0],"z":{"w":null},"big":12345678901234567890,"e":1E400}',
  '"o":{}', '"a":[]', '"a":[1e308,-0.0,9223372036854775808,5e-324,"\\u00e9",{"k":[]}]',
  '"i":null,"n":null,"s":null',
  -- against the schema: strings in object/array columns stay strings
  '"o":"not an object","a":"not an array"', '"o":"{not json","a":"[\\"x\\""',
  '"o":5,"a":-2.5',
}

local function edge_records()
  local out, id = {}, 0
  local function add(fields)
    id = id + 1
    out[#out + 1] = ('{"id":%d,%s}'):format(id, fields)
  end
  for _, v in ipairs(INTEGERS) do add('"i":' .. v) end
  for _, v in ipairs(NUMBERS) do add('"n":' .. v) end
  for _, v in ipairs(STRINGS) do add('"s":' .. v) end
  for _, v in ipairs(OTHERS) do add(v) end
  add('"i":1,"n":2.5,"s":"all","b":true,"o":{"k":"v"},"a":[1]')   -- every field
  return out
end

-- Writes the corpus (edge records, plus the faker streams unless
-- opts.no_faker) for corpus_source; returns its config and the source's
-- records by stream: { name = { data_text, ... } }.
local function write_corpus(dir, opts)
  opts = opts or {}
  local streams = { { name = "edge values", json_schema = json.decode(EDGE_SCHEMA) } }
  local lines, by_stream = {}, { ["edge values"] = {} }
  for _, d in ipairs(opts.records or edge_records()) do
    lines[#lines + 1] = ('{"type":"RECORD","record":{"stream":"edge values","emitted_at":%s,"data":%s}}')
      :format(opts.emitted_at or EMITTED, d)
    by_stream["edge values"][#by_stream["edge values"] + 1] = d
  end
  if not opts.no_faker then
    -- the real faker, run as a process: its catalog and its record lines
    local cfg = dir .. "/faker.json"
    H.write_file(cfg, '{"count": 40, "seed": 7}')
    local out, code = H.run({ H.exe, "connector", "source-faker", "discover", "--config", cfg })
    assert.equals(0, code)
    local catalog
    for line in out:gmatch("[^\n]+") do
      local m = json.decode(line)
      if m.type == "CATALOG" then catalog = m.catalog end
    end
    local configured = { streams = {} }
    for _, s in ipairs(catalog.streams) do
      streams[#streams + 1] = { name = s.name, json_schema = s.json_schema }
      by_stream[s.name] = {}
      configured.streams[#configured.streams + 1] = { stream = s, sync_mode = "full_refresh",
                                                      destination_sync_mode = "overwrite" }
    end
    H.write_file(dir .. "/faker_catalog.json", json.encode(configured))
    out, code = H.run({ H.exe, "connector", "source-faker", "read", "--config", cfg,
                        "--catalog", dir .. "/faker_catalog.json" })
    assert.equals(0, code)
    for line in out:gmatch("[^\n]+") do
      local m = json.decode(line)
      if m.type == "RECORD" then
        lines[#lines + 1] = line
        local d = by_stream[m.record.stream]
        d[#d + 1] = json.encode(m.record.data)
      end
    end
    assert.is_true(#by_stream.users >= 40)
  end
  H.write_file(dir .. "/streams.json", json.encode(streams))
  H.write_file(dir .. "/records.jsonl", table.concat(lines, "\n") .. "\n")
  return { streams_file = dir .. "/streams.json", records_file = dir .. "/records.jsonl" }, by_stream
end

---------------------------------------------------------------------------
-- Exact comparison of JSON values
---------------------------------------------------------------------------

-- A number as an exact key: integers (Lua integers, BigInts and integral
-- floats) by their decimal digits, other floats by their bits (%a).
local function number_key(v)
  if json.is_bigint(v) then return "int " .. tostring(v) end
  if math.type(v) == "integer" then return "int " .. v end
  if v == math.floor(v) and v > -math.huge and v < math.huge then
    return "int " .. (("%.0f"):format(v):gsub("^%-0$", "0"))
  end
  return ("float %a"):format(v)
end

local function is_number(v) return type(v) == "number" or json.is_bigint(v) end

-- nil when a and b are the same JSON value, else the path where they differ.
-- top_null_is_absent: a top-level member the source left out may come back null.
local function diff(a, b, path, top_null_is_absent)
  if is_number(a) and is_number(b) then
    if number_key(a) ~= number_key(b) then
      return ("%s: %s ~= %s"):format(path, number_key(a), number_key(b))
    end
    return nil
  end
  if type(a) ~= type(b) then
    return ("%s: %s ~= %s"):format(path, type(a), type(b))
  end
  if type(a) ~= "table" then
    if a ~= b then return ("%s: %q ~= %q"):format(path, tostring(a), tostring(b)) end
    return nil
  end
  if (getmetatable(a) == json.array_mt) ~= (getmetatable(b) == json.array_mt) then
    return path .. ": array ~= object"
  end
  for k, v in pairs(a) do
    local d = diff(v, b[k], path .. "." .. tostring(k))
    if d then return d end
  end
  for k, v in pairs(b) do
    if a[k] == nil and not (top_null_is_absent and v == NULL) then
      return ("%s.%s: absent in the source, %s at the destination"):format(path, tostring(k), tostring(v))
    end
  end
  return nil
end

-- The destination's records of a stream: { { data = value, text = raw data text, line = whole line } }
local function destination_records(out_dir, stream)
  local path = ("%s/_airbyte_raw_%s.jsonl"):format(out_dir, (stream:gsub("[^%w_]", "_")))
  local recs = {}
  for line in io.lines(path) do
    local text = line:match(',"_airbyte_data":(.*)}$')
    recs[#recs + 1] = { data = json.decode(text), text = text, line = line, whole = json.decode(line) }
  end
  return recs
end

local function assert_same(by_stream, out_dir, top_null_is_absent)
  for stream, texts in pairs(by_stream) do
    local got = destination_records(out_dir, stream)
    assert.equals(#texts, #got, "record count of " .. stream)
    for i, text in ipairs(texts) do
      local d = diff(json.decode(text), got[i].data, stream .. "[" .. i .. "]", top_null_is_absent)
      assert(d == nil, (d or "") .. "\n  source:      " .. text:sub(1, 300) .. "\n  destination: " ..
        got[i].text:sub(1, 300))
    end
  end
end

local function corpus_source(dir, config)
  local src = ab.get_source("source-corpus", {
    local_executable = H.fixture_executable(dir, "corpus_source"), config = config })
  src:select_all_streams()
  return src
end

local function local_json(path)
  return ab.get_destination("destination-local-json", { config = { destination_path = path } })
end

---------------------------------------------------------------------------

H.each_backend(function(b)
  describe("values from source to destination", function()
    local dir, cache
    before_each(function() dir, cache = H.tmpdir(), b.fresh_cache() end)
    after_each(function() H.close_test_cache(dir, cache) end)

    it("arrive through the cache as the source sent them (numbers exact, only the source's fields)", function()
      local config, by_stream = write_corpus(dir)
      local wr = local_json(dir .. "/via_cache"):write(corpus_source(dir, config), { cache = cache })
      assert.is_true(wr.processed_records > 100)
      assert_same(by_stream, dir .. "/via_cache", true)
      -- the cache's own columns are not inside the data (they are the destination's)
      for _, stream in ipairs({ "users", "edge values" }) do
        for _, r in ipairs(destination_records(dir .. "/via_cache", stream)) do
          assert.is_nil(r.data._airbyte_raw_id)
          assert.is_nil(r.data._airbyte_extracted_at)
          assert.is_nil(r.data._airbyte_meta)
          if stream == "edge values" then assert.equals(EMITTED, r.whole._airbyte_emitted_at) end
        end
      end
    end)

    it("arrive straight through as the source sent them", function()
      local config, by_stream = write_corpus(dir)
      local wr = local_json(dir .. "/direct"):write(corpus_source(dir, config), { cache = false })
      assert.is_true(wr.processed_records > 100)
      assert_same(by_stream, dir .. "/direct", false)
    end)

    it("keep the shortest spelling of floats and the digits of big integers from the cache", function()
      local config = write_corpus(dir, { no_faker = true, records = {
        '{"id":1,"n":1.1}', '{"id":2,"n":0.30000000000000004}', '{"id":3,"n":12345678901234567890}',
        '{"id":4,"i":12345678901234567890}', '{"id":5,"n":1e308}', '{"id":6,"n":2.5}',
        '{"id":7,"n":0.1000000000000000055511151231257827}' } })
      local_json(dir .. "/out"):write(corpus_source(dir, config), { cache = cache })
      local texts = {}
      for i, r in ipairs(destination_records(dir .. "/out", "edge values")) do texts[i] = r.text end
      assert.matches('"n":1%.1[,}]', texts[1])
      assert.matches('"n":0%.30000000000000004[,}]', texts[2])
      assert.matches('"n":12345678901234567890[,}]', texts[3])     -- a number, not a string
      assert.matches('"i":12345678901234567890[,}]', texts[4])
      assert.matches('"n":1e%+?308[,}]', texts[5])
      assert.matches('"n":2%.5[,}]', texts[6])
      assert.matches('"n":0%.1[,}]', texts[7])                     -- the double it parses to
    end)
  end)
end)

H.each_backend(function(b)
  describe("emitted_at outside what the cache can hold", function()
    local dir, cache
    before_each(function() dir, cache = H.tmpdir(), b.fresh_cache() end)
    after_each(function() H.close_test_cache(dir, cache) end)

    local MIN_MS, MAX_MS = -62135596800000, 253402300799999
    local CASES = {
      { "-9223372036854775808", MIN_MS, "0001-01-01T00:00:00.000+00:00" },
      { "9223372036854775807", MAX_MS, "9999-12-31T23:59:59.999+00:00" },
      { "1e30", MAX_MS, "9999-12-31T23:59:59.999+00:00" },
      { "-1e30", MIN_MS, "0001-01-01T00:00:00.000+00:00" },
      { "12345678901234567890", MAX_MS, "9999-12-31T23:59:59.999+00:00" },
      { "-12345678901234567890", MIN_MS, "0001-01-01T00:00:00.000+00:00" },
      { "1.5e300", MAX_MS, "9999-12-31T23:59:59.999+00:00" },
      { "253402300800000", MAX_MS, "9999-12-31T23:59:59.999+00:00" },
      -- inside the range: kept
      { "253402300799999", MAX_MS, "9999-12-31T23:59:59.999+00:00" },
      { "-62135596800000", MIN_MS, "0001-01-01T00:00:00.000+00:00" },
      { "-1", -1, "1969-12-31T23:59:59.999+00:00" },
      { "1669682107441.9", 1669682107441, "2022-11-29T00:35:07.441+00:00" },
    }

    it("is clamped to the years 0001-9999 with a warning, and the destination gets the clamped value", function()
      local lines = {}
      for i, c in ipairs(CASES) do
        lines[i] = ('{"type":"RECORD","record":{"stream":"edge values","emitted_at":%s,"data":{"id":%d}}}')
          :format(c[1], i)
      end
      H.write_file(dir .. "/streams.json", '[{"name":"edge values","json_schema":' .. EDGE_SCHEMA .. '}]')
      H.write_file(dir .. "/records.jsonl", table.concat(lines, "\n") .. "\n")
      local src = corpus_source(dir, { streams_file = dir .. "/streams.json", records_file = dir .. "/records.jsonl" })
      local result = src:read{ cache = cache }
      local found
      for _, w in ipairs(result.warnings) do
        if w:find("8 record%(s%) had an emitted_at outside the years 0001%-9999") then found = w end
      end
      assert(found, "no warning about the clamped emitted_at values: " .. table.concat(result.warnings, "; "))
      local at = {}
      for row in result["edge values"]:rows() do at[row.id] = row._airbyte_extracted_at end
      for i, c in ipairs(CASES) do assert.equals(c[3], at[i], "emitted_at " .. c[1]) end
      -- and from the cache, the destination gets the clamped milliseconds
      local_json(dir .. "/out"):write(result)
      local got = {}
      for _, r in ipairs(destination_records(dir .. "/out", "edge values")) do
        got[r.data.id] = r.whole._airbyte_emitted_at
      end
      for i, c in ipairs(CASES) do assert.equals(c[2], got[i], "emitted_at " .. c[1]) end
    end)
  end)
end)
