-- The schema loaders of a DeclarativeStream: InlineSchemaLoader and
-- JsonFileSchemaLoader (the stream's JSON schema for discover and reads).
local json = require "airbyte.json"
local interp = require "airbyte.declarative.interpolation"
local manifest = require "airbyte.declarative.manifest"

local M = {}

local object = manifest.object

function M.InlineSchemaLoader(node, path)
  manifest.fields(node, "InlineSchemaLoader", path, "schema")
  local schema = node.schema
  if type(schema) ~= "table" then schema = object{ type = "object", properties = object() } end
  return { load = function() return schema end }
end

function M.JsonFileSchemaLoader(node, path, F, stream_name)
  manifest.fields(node, "JsonFileSchemaLoader", path, "file_path")
  return {
    load = function(ctx)
      local file = node.file_path and interp.str(interp.eval(tostring(node.file_path), ctx) or "")
      if not file or file == "" then file = "schemas/" .. tostring(stream_name) .. ".json" end
      file = file:gsub("^%./", "")
      -- Python-packaged connectors keep schemas under ./<module>/schemas/: try beside the manifest
      local candidates = { file }
      if F.base_dir and file:sub(1, 1) ~= "/" then
        candidates = { F.base_dir .. "/" .. file, F.base_dir .. "/" .. file:gsub("^[^/]+/schemas/", "schemas/") }
      end
      for _, p in ipairs(candidates) do
        local f = io.open(p, "rb")
        if f then
          local text = f:read("a")
          f:close()
          local ok, schema = pcall(json.decode, text)
          if not ok then manifest.config_error(("%s: %s is not valid JSON: %s"):format(path, p, tostring(schema))) end
          return schema
        end
      end
      manifest.config_error(("%s: no schema file %s"):format(path, table.concat(candidates, " or ")))
    end,
  }
end

return M
