-- airbyte.cdk.errors: the kit's structured errors. A connector raises them
-- with error() / config_error(); capture() is the xpcall handler that turns
-- any error into one, with a stack trace, for the TRACE ERROR message.
local M = {}

local type, tostring, error, setmetatable, getmetatable = type, tostring, error, setmetatable, getmetatable

local ConnectorError = {}
ConnectorError.__index = ConnectorError
ConnectorError.__tostring = function(e) return e.message end

function M.error(message, failure_type, internal)
  error(setmetatable({ message = tostring(message), failure_type = failure_type or "system_error",
                       internal_message = internal }, ConnectorError), 2)
end

function M.config_error(message)
  error(setmetatable({ message = tostring(message), failure_type = "config_error" }, ConnectorError), 2)
end

-- xpcall handler: every error becomes a ConnectorError with a stack trace.
function M.capture(err)
  local e
  if getmetatable(err) == ConnectorError then
    e = err
  elseif type(err) == "table" and type(err.message) == "string" then
    e = setmetatable({ message = err.message, failure_type = err.failure_type or "system_error",
                       internal_message = err.internal_message }, ConnectorError)
  else
    e = setmetatable({ message = tostring(err), failure_type = "system_error" }, ConnectorError)
  end
  e.stack_trace = e.stack_trace or debug.traceback(tostring(e.message), 2)
  return e
end


return M
