-- WriteResult (airbyte/results.py): what a Destination:write() did.
--   wr.processed_records        records sent to the destination
--   wr.streams[name].records    per stream
--   wr.warnings                 count mismatches, unconfirmed states, ...
--   wr.invalid_records          { [stream] = { [reason] = n } } dropped by the read
--   wr:get_state_provider()     the destination states stored for this source
local json = require "airbyte.json"
local class = require "airbyte.class"

local M = {}
---@class airbyte.WriteResult
---@field destination_name string
---@field source_name string
---@field processed_records integer
---@field streams table<string, { records: integer }>
---@field warnings string[]
---@field confirmed_states integer
---@field invalid_records table<string, table<string, integer>>
local WriteResult = class.new()

function M.new(f)
  return setmetatable({
    destination_name = f.destination.name, source_name = f.source_name,
    processed_records = f.processed_records, streams = f.totals.streams or {},
    warnings = f.warnings, confirmed_states = f.confirmed_states, _state_cache = f.state_cache,
    _identity = f.identity,
    invalid_records = f.invalid_records or {},
  }, WriteResult)
end

-- The last state the destination confirmed, per key: { [stream] = state
-- table }, "namespace.stream" for a stream in a namespace, "_GLOBAL" and
-- "_LEGACY" for those. Empty when the write kept no state.
---@return table<string, table>
function WriteResult:get_state_provider()
  local out = {}
  if not self._state_cache then return out end
  local texts, names, namespaces = self._state_cache:_db():get_destination_states(self._identity, self.source_name)
  for i, text in ipairs(texts) do
    out[namespaces[i] ~= "" and namespaces[i] .. "." .. names[i] or names[i]] = json.decode(text)
  end
  return out
end

function WriteResult:__tostring()
  return ("WriteResult(%s -> %s: %d records)"):format(self.source_name, self.destination_name, self.processed_records)
end

return M
