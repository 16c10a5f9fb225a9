-- connectors.destination-dev-null: a destination that keeps nothing, like
-- the "SILENT" mode of airbyte/destination-e2e-test. It still does what the
-- protocol asks of a destination with its input: every STATE is echoed, in
-- order, with destinationStats.recordCount (records of that stream since its
-- previous state; all records since the previous one for GLOBAL/LEGACY),
-- and lines that are not Airbyte messages are skipped.
--
-- It is the yardstick of the host's write path (about a million ~600-byte
-- records a second), so it frames stdin itself, in blocks, and creates no
-- string per record: a record line that starts with the exact bytes of the
-- previous record line, up to its data, is counted by a plain find at the
-- line start; a record of another stream laid out the same way costs one
-- anchored match. Any other line (a STATE, a record with a namespace or
-- laid out otherwise) is parsed by the C scanner.
-- Consequences: records are counted whatever stream they belong to (the
-- configured catalog is not consulted: nothing is written anyway), and a
-- record line is not validated beyond its first bytes.

local cdk = require "airbyte.cdk"

local find, sub = string.find, string.sub

local MAX_SKIP_LOGS = 10
local CANONICAL_HEAD = '^{"type":"RECORD","record":{"stream":"([^"\\]*)","data":'

local SPEC = cdk.obj(
  "documentationUrl", "https://docs.airbyte.com/integrations/destinations/e2e-test",
  "supportsIncremental", true,
  "supportsNormalization", false,
  "supportsDBT", false,
  "supported_destination_sync_modes", cdk.array { "overwrite", "append", "append_dedup" },
  "connectionSpecification", cdk.obj(
    "$schema", "http://json-schema.org/draft-07/schema#",
    "title", "Dev Null Destination Spec",
    "type", "object",
    "additionalProperties", true,
    "properties", cdk.obj(
      "test_destination", cdk.obj(
        "title", "Test Destination",
        "description", "Accepted for compatibility with destination-e2e-test; every mode discards the data.",
        "type", "object",
        "additionalProperties", true,
        "properties", cdk.obj(
          "test_destination_type", cdk.obj("type", "string", "default", "SILENT")))))
)

-- The bytes every record of this stream (and namespace) starts with when
-- it is laid out as connectors usually write it: type, stream, namespace,
-- then data. nil when the line is laid out otherwise.
local function record_prefix(line)
  local _, p = find(line, '^{"type":"RECORD","record":{"stream":"[^"\\]*",')
  if not p then return nil end
  local _, q = find(line, '^"namespace":"[^"\\]*",', p + 1)
  if not q then _, q = find(line, '^"namespace":null,', p + 1) end
  local _, d = find(line, '^"data":', (q or p) + 1)
  return d and sub(line, 1, d) or nil
end

local ok_core, core = pcall(require, "airbyte.core")
local count_run = ok_core and core.count_prefixed_lines or nil

local function write(_, _, input, emit)
  local counter = cdk.record_counter()
  local fast, fast_key, fast_n = nil, nil, 0
  local skipped = 0

  -- Any line the fast path did not take.
  local function slow(line)
    local m, why = cdk.parse_message(line)
    if not m then
      if find(line, "%S") then
        skipped = skipped + 1
        if skipped <= MAX_SKIP_LOGS then
          emit.log("WARN", ("skipped a line that is not an Airbyte message (%s): %s"):format(why, sub(line, 1, 200)))
        end
      end
      return
    end
    local t = m.type
    if t == "RECORD" then
      local name, ns = m.stream, m.namespace
      local key = ns and (name .. "\0" .. ns) or name
      counter:add_key(key, 1)
      local prefix = record_prefix(line)
      if prefix then fast, fast_key = prefix, key end
    elseif t == "STATE" then
      emit.state(line, counter)
    end
  end

  local rest = ""
  for blk in input:blocks() do
    if rest ~= "" then blk = rest .. blk end
    local pos = 1
    while true do
      if fast and count_run then            -- a run of records of the last stream, in C
        local n, after = count_run(blk, pos, fast)
        fast_n, pos = fast_n + n, after
      end
      local e = find(blk, "\n", pos, true)
      if not e then break end
      if fast and find(blk, fast, pos, true) == pos then
        fast_n = fast_n + 1
      else
        if fast_n > 0 then counter:add_key(fast_key, fast_n); fast_n = 0 end
        -- another stream without a namespace: its name from the line start
        local _, pe, name = find(blk, CANONICAL_HEAD, pos)
        if name and pe < e then
          counter:add_key(name, 1)
          fast, fast_key = sub(blk, pos, pe), name
        else
          slow(sub(blk, pos, e - 1))
        end
      end
      pos = e + 1
    end
    rest = sub(blk, pos)
  end
  if fast_n > 0 then counter:add_key(fast_key, fast_n) end
  if rest ~= "" then slow(rest) end      -- a last line without a newline
  if skipped > MAX_SKIP_LOGS then
    emit.log("WARN", ("skipped %d lines that were not Airbyte messages"):format(skipped))
  end
end

return cdk.destination {
  spec = SPEC,
  check = function() return true end,
  write = write,
}
