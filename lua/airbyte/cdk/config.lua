-- airbyte.cdk.config: the JSON files a command names (--config, --catalog,
-- --state) read into Lua values, and the config checked against the spec.
local cjson = require "cjson"
local json = require "airbyte.cdk.json"
local errors = require "airbyte.cdk.errors"
local validate = require("airbyte.cdk.validate").validate

local M = {}

local concat, format = table.concat, string.format
local mtype, tointeger = math.type, math.tointeger
local type, pairs, tostring, pcall = type, pairs, tostring, pcall

local NULL, is_array = json.null, json.is_array

-- cjson decodes every number as a float; integral ones become integers so
-- connectors see config.count == 10, not 10.0.
local function integralize(v)
  if type(v) == "number" then
    if mtype(v) == "float" and v % 1 == 0 and v >= -2^63 and v < 2^63 then return tointeger(v) end
    return v
  end
  if type(v) == "table" and v ~= NULL then
    for k, x in pairs(v) do v[k] = integralize(x) end
  end
  return v
end

-- read(path, what) -> value | nil, why (what names the file in messages).
function M.read(path, what)
  local f, err = io.open(path, "rb")
  if not f then return nil, format("cannot open %s file: %s", what, err) end
  local text = f:read("a")
  f:close()
  local ok, v = pcall(cjson.decode, text)
  if not ok then return nil, format("%s file %s is not valid JSON: %s", what, path, tostring(v)) end
  return integralize(v)
end

-- load(connector, path) -> config: loaded and validated; problems raise
-- config errors.
function M.load(connector, path)
  local config, err = M.read(path, "config")
  if config == nil then errors.config_error(err) end
  if type(config) ~= "table" or is_array(config) then errors.config_error("config must be a JSON object") end
  local cs = connector.spec.connectionSpecification
  local errs = cs and validate(cs, config)
  if errs then errors.config_error("Config validation error: " .. concat(errs, "; ")) end
  return config
end

return M
