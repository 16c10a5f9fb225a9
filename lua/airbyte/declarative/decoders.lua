-- The response decoders of a SimpleRetriever: JsonDecoder and JsonlDecoder
-- (a response body into the value the record selector reads).
local json = require "airbyte.json"
local manifest = require "airbyte.declarative.manifest"

local M = {}

local object = manifest.object
local function array(t) return setmetatable(t or {}, json.array_mt) end

local function json_body(resp, env)
  if resp.json ~= nil then return resp.json end
  local body = resp.body or ""
  if body:match("^%s*$") then return object() end
  local ok, data = pcall(json.decode, body)
  if ok then return data end
  error({ message = env.mask(("the response of %s is not valid JSON (%s): %s"):format(resp.url or "the request",
    tostring(data):gsub("^JSON error", "error"), body:sub(1, 120):gsub("%s+", " "))), failure_type = "system_error" }, 0)
end

function M.JsonDecoder() return { decode = json_body } end

function M.JsonlDecoder()
  return {
    decode = function(resp, env)
      local out = array()
      for line in (resp.body or ""):gmatch("[^\n]+") do
        if line:find("%S") then
          local ok, v = pcall(json.decode, line)
          if not ok then
            error({ message = env.mask(("a line of %s is not valid JSON: %s"):format(resp.url, line:sub(1, 120))),
                    failure_type = "system_error" }, 0)
          end
          out[#out + 1] = v
        end
      end
      return out
    end,
  }
end

return M
