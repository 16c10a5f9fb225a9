-- airbyte.cdk.state: the state a source is started with. normalize() turns
-- the --state file into an array of AirbyteStateMessage; stream_state()
-- finds one stream's state in it.
local json = require "airbyte.cdk.json"

local M = {}

local type, ipairs, next = type, ipairs, next

local NULL, is_array = json.null, json.is_array

-- The --state file is an array of AirbyteStateMessage; older sources got a
-- bare per-stream object (LEGACY), which becomes { {type="LEGACY", data=obj} }.
function M.normalize(v)
  if type(v) ~= "table" or v == NULL or next(v) == nil then return {} end
  if is_array(v) then return v end
  if type(v.type) == "string" and (v.stream or v.global or v.data) then return { v } end
  return { { type = "LEGACY", data = v } }
end

function M.stream_state(state_array, name, namespace)
  for i = #(state_array or {}), 1, -1 do -- the last one wins
    local s = state_array[i]
    if type(s) == "table" then
      local kind = s.type or ((s.stream and "STREAM") or (s.global and "GLOBAL") or "LEGACY")
      if kind == "STREAM" and type(s.stream) == "table" then
        local d = s.stream.stream_descriptor or {}
        if d.name == name and (namespace == nil or d.namespace == namespace) then
          local st = s.stream.stream_state
          if st == NULL then return nil end
          return st
        end
      elseif kind == "GLOBAL" and type(s.global) == "table" then
        for _, ss in ipairs(s.global.stream_states or {}) do
          local d = type(ss) == "table" and ss.stream_descriptor or {}
          if d.name == name and (namespace == nil or d.namespace == namespace) then
            local st = ss.stream_state
            if st == NULL then return nil end
            return st
          end
        end
      elseif kind == "LEGACY" and type(s.data) == "table" then
        local st = s.data[name]
        if st ~= nil and st ~= NULL then return st end
      end
    end
  end
  return nil
end


return M
