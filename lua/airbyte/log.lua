-- airbyte.log: where the Lua layer's words for the user go (warnings,
-- "Completed ..." summaries, progress, prompts, usage): the runtime's log
-- sink. runtime/src/log.c makes io.stderr the sink's stream when a host
-- gives lb_options.log (each line handed over with a level read from its
-- first word: "error"/"luabyte:" ERROR, "warning" WARN, else INFO), and
-- leaves it the process's stderr otherwise. Library modules write through
-- here, never to io.stderr themselves; the stream is looked up at each call
-- so that a caller (a test) that swaps io.stderr is obeyed.
local M = {}

-- write(...) -> the stream: the strings written as file:write writes them.
function M.write(...)
  local out = io.stderr
  out:write(...)
  return out
end

function M.flush()
  io.stderr:flush()
end

-- stream() -> the file-like sink stream itself (for writers that keep one,
-- such as the progress display).
function M.stream()
  return io.stderr
end

return M
