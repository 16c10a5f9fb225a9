-- Starts tests/fixtures/http/server.py (the scripted local HTTP server) as
-- a real process, for specs:
--
--   local server = require "http_server"
--   local srv = server.start{ { path = "/p", responses = { { json = { a = 1 } } } } }
--   http.request{ url = srv.base .. "/p" }
--   srv:requests()   -- the log: one table per request received, in order
--   srv:stop()
--
-- routes is a Lua table (written to routes.json in a fresh directory) or the
-- path of a routes file (body_file paths are relative to its folder).
local proc = require "airbyte.process"
local json = require "airbyte.json"
local H = require "helper"

local M = {}

M.script = H.fixtures .. "/http/server.py"

local Server = {}
Server.__index = Server

function M.start(routes)
  local dir = H.tmpdir()
  local routes_path = routes
  if type(routes) == "table" then
    routes_path = dir .. "/routes.json"
    local f = assert(io.open(routes_path, "wb"))
    f:write(json.encode(routes))
    f:close()
  end
  local log = dir .. "/requests.jsonl"
  local p = assert(proc.spawn{ argv = { "python3", M.script, routes_path, log }, name = "http-server" })
  local line, err = p:read_line()
  if not line or not line:match("^%d+$") then
    p:kill()
    error("the test HTTP server did not start: " .. tostring(line or err) .. "\n"
      .. table.concat(p:tail(), "\n"))
  end
  return setmetatable({ proc = p, port = tonumber(line), base = "http://127.0.0.1:" .. line,
                        dir = dir, log = log }, Server)
end

-- Every request the server got so far, decoded from its log.
function Server:requests()
  local out = {}
  local f = io.open(self.log, "rb")
  if not f then return out end
  for l in f:lines() do out[#out + 1] = json.decode(l) end
  f:close()
  return out
end

function Server:stop()
  if self.proc then
    self.proc:kill()
    self.proc:wait()
    self.proc = nil
  end
  H.rm_rf(self.dir)
end

return M
