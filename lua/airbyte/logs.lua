-- Log files, where PyAirbyte puts them: one per connector object under
-- <AIRBYTE_LOGGING_ROOT or /tmp/airbyte/logs>/<name>/<name>-log-<id>.log.
local core = require "airbyte.core"

local M = {}

-- A short time-ordered id: 9 characters, like PyAirbyte's ULID suffix
-- (made by the runtime's one id generator, runtime/src/ids.c).
M.short_id = core.short_id

function M.root()
  local r = os.getenv("AIRBYTE_LOGGING_ROOT")
  if r and r ~= "" then return r end
  return "/tmp/airbyte/logs"
end

-- Path of a new log file for connector `name`, its directory created; nil
-- (logs kept in memory only) when the directory cannot be made.
function M.connector_log_file(name)
  local dir = M.root() .. "/" .. name
  if not core.mkdir_p(dir) then return nil end
  return ("%s/%s-log-%s.log"):format(dir, name, M.short_id())
end

return M
