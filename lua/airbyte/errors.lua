-- Structured errors, named as PyAirbyte names its exception classes.
--
-- Raised values are tables { kind = "AirbyteConnectorCheckFailedError",
-- message = ..., connector_name = ..., exit_code = ..., log_file = ...,
-- log_text = {...}, trace_errors = {...}, context = {...} } whose
-- tostring() is a readable report. errors.is(e, "AirbyteConnectorError")
-- follows PyAirbyte's class hierarchy.
---@class airbyte.errors
---@field hierarchy table<string, string>  class -> parent class
---@field mask fun(text: any): any          the runtime's secret masker
local class = require "airbyte.class"

local M = {}

-- child -> parent, after airbyte/exceptions.py
local parent = {
  PyAirbyteInternalError = "PyAirbyteError",
  PyAirbyteInputError = "PyAirbyteError",
  PyAirbyteNoStreamsSelectedError = "PyAirbyteInputError",
  PyAirbyteNameNormalizationError = "PyAirbyteError",
  PyAirbyteCacheError = "PyAirbyteError",
  PyAirbyteCacheTableValidationError = "PyAirbyteCacheError",
  AirbyteDataCheckFailedError = "PyAirbyteError",   -- luabyte: dataset checks (airbyte.checks)
  AirbyteRecordValidationError = "PyAirbyteError",  -- luabyte: record checks (validate option)
  AirbyteConnectorConfigurationMissingError = "PyAirbyteCacheError",
  AirbyteSubprocessError = "PyAirbyteError",
  AirbyteSubprocessFailedError = "AirbyteSubprocessError",
  AirbyteConnectorRegistryError = "PyAirbyteError",
  AirbyteConnectorNotRegisteredError = "AirbyteConnectorRegistryError",
  AirbyteConnectorNotPyPiPublishedError = "AirbyteConnectorRegistryError",
  AirbyteConnectorError = "PyAirbyteError",
  AirbyteConnectorExecutableNotFoundError = "AirbyteConnectorError",
  AirbyteConnectorInstallationError = "AirbyteConnectorError",
  AirbyteConnectorReadError = "AirbyteConnectorError",
  AirbyteConnectorWriteError = "AirbyteConnectorError",
  AirbyteConnectorSpecFailedError = "AirbyteConnectorError",
  AirbyteConnectorDiscoverFailedError = "AirbyteConnectorError",
  AirbyteNoDataFromConnectorError = "AirbyteConnectorError",
  AirbyteConnectorMissingCatalogError = "AirbyteConnectorError",
  AirbyteConnectorMissingSpecError = "AirbyteConnectorError",
  AirbyteConnectorValidationFailedError = "AirbyteConnectorError",
  AirbyteConnectorCheckFailedError = "AirbyteConnectorError",
  AirbyteConnectorFailedError = "AirbyteConnectorError",
  AirbyteStreamNotFoundError = "AirbyteConnectorError",
  AirbyteStateNotFoundError = "AirbyteConnectorError",
  PyAirbyteSecretNotFoundError = "PyAirbyteError",
}
M.hierarchy = parent

---@class airbyte.Error
---@field kind string
---@field message string
---@field connector_name? string
---@field exit_code? integer
---@field log_file? string
---@field context? table
local Error = class.new()

local order = { "connector_name", "stream_name", "exit_code", "available_streams", "input_value",
                "failure_reason", "violation", "secret_name" }

-- Text that hides secrets: the runtime's masker (runtime/src/mask.c), the
-- one airbyte.secrets registers values in.
M.mask = require("airbyte.core").mask

local function show(v)
  if type(v) == "table" then
    local parts = {}
    for i, x in ipairs(v) do parts[i] = tostring(x) end
    return "[" .. table.concat(parts, ", ") .. "]"
  end
  return tostring(v)
end

function Error:__tostring()
  local out = { ("%s (%s)"):format(self.message or "error", self.kind) }
  for _, k in ipairs(order) do
    if self[k] ~= nil then out[#out + 1] = ("    %s: %s"):format(k, show(self[k])) end
  end
  if self.context then
    local keys = {}
    for k in pairs(self.context) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do out[#out + 1] = ("    %s: %s"):format(k, show(self.context[k])) end
  end
  if self.trace_errors and #self.trace_errors > 0 then
    out[#out + 1] = "    connector errors:"
    for _, e in ipairs(self.trace_errors) do
      out[#out + 1] = "      - " .. tostring(e.message)
        .. (e.failure_type and (" [" .. e.failure_type .. "]") or "")
        .. (e.internal_message and ("\n        " .. tostring(e.internal_message)) or "")
    end
  end
  if self.log_text and #self.log_text > 0 then
    out[#out + 1] = "    last log lines:"
    for _, l in ipairs(self.log_text) do out[#out + 1] = "      " .. l end
  end
  if self.log_file then out[#out + 1] = "    log file: " .. self.log_file end
  if self.guidance then out[#out + 1] = "    guidance: " .. self.guidance end
  if self.original_error then out[#out + 1] = "    caused by: " .. tostring(self.original_error) end
  return M.mask(table.concat(out, "\n"))
end

-- A copy of v with every string masked: data tables are copied (a
-- metatable such as a JSON array mark is kept); objects (an __index) and
-- errors (masked when they were made) are left as they are.
local function masked(v, depth, seen)
  if type(v) == "string" then return M.mask(v) end
  if type(v) ~= "table" or depth > 32 then return v end
  local mt = getmetatable(v)
  if mt ~= nil and (type(mt) ~= "table" or mt.__index ~= nil) then return v end
  if seen[v] then return seen[v] end
  local copy = setmetatable({}, getmetatable(v))
  seen[v] = copy
  for k, x in pairs(v) do copy[k] = masked(x, depth + 1, seen) end
  return copy
end

-- mask_all(v) -> v with every string in it masked (a copy when v is a table).
---@generic T
---@param v T
---@return T
function M.mask_all(v)
  return masked(v, 0, {})
end

-- An error's fields leave the connector layer as they are (e.message,
-- e.failure_reason, e.trace_errors[i].message, e.log_text...): each string
-- is masked here, not only in tostring(e).
---@param kind string                 PyAirbyte's exception class name
---@param message string
---@param fields? table
---@return airbyte.Error
function M.new(kind, message, fields)
  assert(parent[kind] or kind == "PyAirbyteError", "unknown error kind " .. tostring(kind))
  local e, seen = {}, {}
  for k, v in pairs(fields or {}) do e[k] = masked(v, 0, seen) end
  e.kind = kind
  e.message = masked(message, 0, seen)
  return setmetatable(e, Error)
end

-- raise(kind, message, fields): raises a structured error.
---@param kind string
---@param message string
---@param fields? table
function M.raise(kind, message, fields)
  error(M.new(kind, message, fields), 2)
end

-- is(e, kind): true when e is a structured error of that kind or a subkind.
---@param e any
---@param kind string                   matches subclasses too
---@return boolean
function M.is(e, kind)
  if getmetatable(e) ~= Error then return false end
  local k = e.kind
  while k do
    if k == kind then return true end
    k = parent[k]
  end
  return false
end

---@param e any
---@return boolean
function M.is_error(e)
  return getmetatable(e) == Error
end

return M
