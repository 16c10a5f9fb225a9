-- airbyte.cdk.destination_emit: the emit table a destination's write()
-- gets: LOG lines, protocol messages, and STATE lines echoed with
-- destinationStats by a hand-written loop.
local ajson = require "airbyte.json"
local json = require "airbyte.cdk.json"
local lines = require "airbyte.cdk.lines"
local clock = require "airbyte.cdk.clock"

local M = {}

local type, tostring = type, tostring

local obj = json.obj

-- The emit table handed to write().
function M.new(out)
  local function write_line(s)
    out:write(s, "\n")
  end
  return {
    log = function(level, message)
      write_line(json.encode(obj("type", "LOG", "log", obj("level", level, "message", tostring(message)))))
    end,
    message = function(msg)
      if type(msg) == "string" then return write_line(msg) end
      return write_line(json.encode(msg))
    end,
    -- Echo a STATE line read by a hand-written loop, with destinationStats
    -- taken from counter (a cdk.record_counter) or 0.
    state = function(line, counter)
      local message = ajson.decode(line)
      local n, rejected = 0, 0
      if counter then n, rejected = counter:take(message.state) end
      write_line(lines.with_destination_stats(line, message, n, rejected))
      out:flush()
    end,
    flush = function() out:flush() end,
    now_ms = clock.now_ms,
  }
end

return M
