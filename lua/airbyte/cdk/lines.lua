-- airbyte.cdk.lines: the protocol lines a destination reads, classified by
-- the runtime's C scanner (airbyte.process.parse over protocol.c, the one
-- the pump uses), never by Lua patterns: the message of a line, the exact
-- text of a RECORD's data, a STATE line echoed with destinationStats.
local ajson = require "airbyte.json"
local host = require "airbyte.cdk.host"

local M = {}

local format, sub = string.format, string.sub
local type, next = type, next

local NULL = ajson.null

-- parse_message(line) -> message (a userdata from the C scanner: .type,
-- and for RECORDs .stream, .namespace, .emitted_at without decoding the
-- data) | nil, why. The line is validated as JSON on the way.
function M.parse_message(line)
  return host.process().parse(line)
end

-- record_data_json(line) -> the JSON text of a RECORD line's data: the
-- bytes of the line as the scanner located them (integers keep every
-- digit, keys their order, whatever the layout); a line that is not a
-- RECORD raises, as decoding it would.
function M.record_data_json(line)
  local m = host.process().parse(line)
  if m and m.type == "RECORD" then return m.data_json end
  return ajson.encode(ajson.decode(line).record.data)
end

-- with_destination_stats(line, message, count [, rejected]) -> the STATE
-- line with state.destinationStats set; message is the decoded line. The
-- line is kept byte for byte (unknown fields such as the platform's id,
-- sourceStats, big integers) and the stats inserted at the end of the state
-- object the scanner located; a line that already carries destinationStats
-- is re-encoded (same content, keys sorted).
function M.with_destination_stats(line, message, count, rejected)
  rejected = rejected or 0
  local state = message.state
  if state.destinationStats == nil then
    local m = host.process().parse(line)
    if m and m.type == "STATE" then
      local _, e = m:payload_span()
      local stats = format('"destinationStats":{"recordCount":%d.0%s}', count,
        rejected > 0 and format(',"rejectedRecordCount":%d.0', rejected) or "")
      return sub(line, 1, e - 1) .. (next(state) == nil and "" or ",") .. stats .. sub(line, e)
    end
  end
  local ds = type(state.destinationStats) == "table" and state.destinationStats or {}
  ds.recordCount = count + 0.0
  if rejected > 0 then ds.rejectedRecordCount = rejected + 0.0 end
  state.destinationStats = ds
  return ajson.encode(message)
end

-- cdk.stream_status(msg) -> name, namespace, status for a stream-status
-- TRACE message (a decoded table), else nil.
function M.stream_status(msg)
  local tr = type(msg) == "table" and msg.type == "TRACE" and msg.trace
  local ss = type(tr) == "table" and tr.type == "STREAM_STATUS" and tr.stream_status
  local d = type(ss) == "table" and ss.stream_descriptor
  if type(d) ~= "table" or type(d.name) ~= "string" then return nil end
  local ns = d.namespace
  if ns == NULL then ns = nil end
  return d.name, ns, ss.status
end

return M
