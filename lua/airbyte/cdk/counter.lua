-- airbyte.cdk.counter: records per stream between the states that cover
-- them, for the destinationStats a destination echoes with each STATE.
local json = require "airbyte.cdk.json"

local M = {}

local type, setmetatable = type, setmetatable

local NULL = json.null

-- stream_key(name, namespace) -> the key a stream is counted under.
local function stream_key(name, namespace)
  if namespace == nil or namespace == NULL then return name end
  return name .. "\0" .. namespace
end
M.stream_key = stream_key

-- STREAM, GLOBAL or LEGACY; "If not set, assume the state object is type LEGACY".
local function state_kind(state)
  local t = type(state) == "table" and state.type
  if t == "STREAM" or t == "GLOBAL" then return t end
  return "LEGACY"
end


local Counter = {}
Counter.__index = Counter

-- cdk.record_counter(): records per stream (name + namespace) and in total
-- since the last state that covers them.
function M.new()
  return setmetatable({ by = {}, rejected = {}, total = 0, total_rejected = 0 }, Counter)
end

function Counter:add(name, namespace, n)
  self:add_key(stream_key(name, namespace), n or 1)
end

function Counter:add_key(key, n)
  local by = self.by
  by[key] = (by[key] or 0) + n
  self.total = self.total + n
end

-- n records already counted under key were not written after all.
function Counter:reject_key(key, n)
  self.by[key] = (self.by[key] or 0) - n
  self.rejected[key] = (self.rejected[key] or 0) + n
  self.total = self.total - n
  self.total_rejected = self.total_rejected + n
end

-- counter:take(state) -> records, rejected for this state's window, which
-- restarts: the state's stream for STREAM, all streams for GLOBAL/LEGACY.
function Counter:take(state)
  if state_kind(state) == "STREAM" then
    local d = type(state.stream) == "table" and state.stream.stream_descriptor
    if type(d) ~= "table" or type(d.name) ~= "string" then return 0, 0 end
    local key = stream_key(d.name, d.namespace)
    local n, r = self.by[key] or 0, self.rejected[key] or 0
    self.by[key], self.rejected[key] = nil, nil
    return n, r
  end
  local n, r = self.total, self.total_rejected
  self.total, self.total_rejected = 0, 0
  return n, r
end


return M
