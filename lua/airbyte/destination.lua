-- Destination: a destination connector, with PyAirbyte's members
-- (airbyte/destinations/base.py) and write() as DESIGN §6 describes it.
--
--   local dest = ab.get_destination("destination-local-json", { config = {...} })
--   local wr = dest:write(source)                        -- via the default cache
--   local wr = dest:write(read_result, { streams = { "users" } })
--   local wr = dest:write(source, { cache = false })     -- straight through
local connector = require "airbyte.connector"

local M = {}

---@class airbyte.Destination: airbyte.Connector
local Destination = {}

-- source_data: a Source, a ReadResult or a Cache; opts as write.lua's
-- OPTIONS: cache, state_cache, streams, write_strategy, force_full_refresh,
-- quiet, on_record, hooks, stream_prefix, checks, validate.
---@param source_data airbyte.Source|airbyte.ReadResult|airbyte.Cache
---@param opts? table
---@return airbyte.WriteResult
function Destination:write(source_data, opts)
  return require("airbyte.write").write(self, source_data, opts or {})
end

local cls = connector.class({}, Destination)
cls._class_name = "Destination"
M.Destination = cls

---@return airbyte.Destination
function M.new(executor, name, config, opts)
  return connector.new(cls, executor, name, config, opts)
end

---@return boolean
function M.is_destination(v)
  return getmetatable(v) == cls
end

return M
