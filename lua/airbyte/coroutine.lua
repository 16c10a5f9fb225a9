-- Coroutines that let I/O waits pass through to the scheduler.
--
-- A task waits by yielding a private sentinel value. When a user's own
-- coroutine runs code that waits, that yield lands in the user's
-- coroutine.resume instead of the scheduler; the versions below pass it on
-- (yielding it from the enclosing coroutine) and resume the inner coroutine
-- once the scheduler resumes us, so user coroutines keep working around
-- waits. install() puts them in the global `coroutine` table.
local core = require "airbyte.core"

local M = {}

local SENTINEL = core.io_sentinel
local co_create, co_resume, co_yield, co_status = coroutine.create, coroutine.resume,
  coroutine.yield, coroutine.status

local function pass_through(co, ok, first, ...)
  if ok and first == SENTINEL and co_status(co) == "suspended" then
    return pass_through(co, co_resume(co, co_yield(SENTINEL)))
  end
  return ok, first, ...
end

function M.resume(co, ...)
  return pass_through(co, co_resume(co, ...))
end

function M.wrap(fn)
  local co = co_create(fn)
  local function unwrap(ok, ...)
    if not ok then
      coroutine.close(co)   -- runs its pending __close handlers, as wrap does
      error((...), 0)
    end
    return ...
  end
  return function(...)
    return unwrap(pass_through(co, co_resume(co, ...)))
  end
end

function M.install()
  coroutine.resume = M.resume
  coroutine.wrap = M.wrap
end

return M
