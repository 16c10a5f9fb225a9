-- airbyte.cdk.file_destination: one raw file per stream, the legacy layout
-- of destination-local-json and destination-csv (protocol.md §8.1), built
-- on airbyte.cdk.files: cdk.file_destination{...} and cdk.raw_sync_mode.
local options = require "airbyte.options"
local json = require "airbyte.cdk.json"
local errors = require "airbyte.cdk.errors"
local fs = require "airbyte.cdk.files"
local lines = require "airbyte.cdk.lines"
local connector = require "airbyte.cdk.connector"
local clock = require "airbyte.cdk.clock"
local host = require "airbyte.cdk.host"

local M = {}

local format, gsub = string.format, string.gsub
local type, pairs, ipairs, tostring, assert = type, pairs, ipairs, tostring, assert

local obj, array = json.obj, json.array
local now_ms = clock.now_ms

-- Stream name -> file name part, the way Airbyte's name transformer does
-- it for these destinations: anything but ASCII letters, digits and '_'
-- becomes '_' (which also keeps a name from leaving the directory).
local function file_stem(name)
  return (gsub(name, "[^%w_]", "_"))
end

-- overwrite and append; append_dedup becomes append (there is no key to
-- deduplicate on in a raw file or table), other modes are not supported.
-- cdk.raw_sync_mode(stream, emit), for the raw-layout destinations.
local function file_mode(s, emit)
  local mode = s.destination_sync_mode
  if mode == "overwrite" or mode == "append" then return mode end
  if mode == "append_dedup" then
    emit.log("WARN", format("stream '%s': append_dedup is written as append (no deduplication)", s.name))
    return "append"
  end
  errors.config_error(format("stream '%s': destination_sync_mode '%s' is not supported (overwrite, append)",
    s.name, tostring(mode)))
end

M.raw_sync_mode = file_mode

local function destination_dir(config)
  local dir = config.destination_path
  if type(dir) ~= "string" or dir == "" then errors.config_error("destination_path must be a non-empty string") end
  dir = gsub(dir, "(.)/+$", "%1")
  return dir
end

-- cdk.file_destination{ spec, extension = ".jsonl", header = fn(config) -> text | nil,
--                       row = fn(config) -> fn(ab_id, emitted_at_ms, data_json) -> pieces... }
-- -> a destination writing <destination_path>/_airbyte_raw_<stream><extension>
-- with cdk.output_file: overwrite streams are published when they end
-- COMPLETE or when the input ends, and dropped (the old file stays) when they
-- end INCOMPLETE or the write fails; every file is committed before a STATE
-- is echoed. check() creates the directory and writes a probe file in it.
-- The spec every raw-file destination shares: destination_path, then
-- def.extra_properties (a cdk.obj), under def.title and def.documentation_url.
local function file_destination_spec(def)
  local pairs_list = {
    "destination_path", obj(
      "description", "Path to the directory where " .. def.noun .. " files will be written: absolute, " ..
        "or relative to the current directory (the real connector puts it under its /local mount). " ..
        "Created when missing. Each stream goes to _airbyte_raw_<stream>" .. def.extension .. ".",
      "type", "string",
      "examples", array { def.example }) }
  local extra = def.extra_properties
  for _, k in ipairs(extra and json.declared_keys(extra) or {}) do
    pairs_list[#pairs_list + 1] = k
    pairs_list[#pairs_list + 1] = extra[k]
  end
  local props = obj(table.unpack(pairs_list))
  return obj(
    "documentationUrl", def.documentation_url,
    "supportsIncremental", true,
    "supportsNormalization", false,
    "supportsDBT", false,
    "supported_destination_sync_modes", array { "overwrite", "append" },
    "connectionSpecification", obj(
      "$schema", "http://json-schema.org/draft-07/schema#",
      "title", def.title,
      "type", "object",
      "required", array { "destination_path" },
      "additionalProperties", false,
      "properties", props))
end

local FILE_DESTINATION_KEYS = options.allow{ "spec", "check", "row", "header", "extension", "noun",
                                            "title", "documentation_url", "example", "extra_properties" }
function M.file_destination(def)
  options.check(def, FILE_DESTINATION_KEYS, "cdk.file_destination")
  assert(type(def.row) == "function", "cdk.file_destination: row is required")
  local extension = def.extension or ""
  def.spec = def.spec or file_destination_spec(def)

  local function check(config)
    local dir = destination_dir(config)
    fs.mkdir_p(dir)
    local probe = format("%s/_airbyte_check_%s.tmp", dir, fs.tmp_id())
    local f, err = io.open(probe, "wb")
    if not f then return false, format("cannot write in %s: %s", dir, tostring(err)) end
    f:close()
    os.remove(probe)
    return true
  end

  local function write(config, _, input, emit)
    local dir = destination_dir(config)
    fs.mkdir_p(dir)
    local header = def.header and def.header(config) or nil
    local row = def.row(config)
    local files, by_path = {}, {}
    input:on_abort(function()
      for _, out in pairs(files) do out:abort() end
    end)
    for _, name in ipairs(input.stream_names) do
      local path = dir .. "/_airbyte_raw_" .. file_stem(name) .. extension
      if by_path[path] then
        errors.config_error(format("streams '%s' and '%s' would both be written to %s", by_path[path], name, path))
      end
      by_path[path] = name
      files[name] = fs.output_file(path, { mode = file_mode(input.streams[name], emit), header = header })
    end
    input:on_commit(function()
      for _, out in pairs(files) do out:commit() end
    end)
    local uuid4 = host.core().uuid4
    while true do
      local is_record, name, _, at, data_json = input:next_raw()
      if is_record == nil then break end
      if is_record then
        local out = files[name]
        if out.aborted then
          input:reject()                -- after INCOMPLETE: nowhere to go
        else
          out:write(row(uuid4(), clock.record_ms(at, now_ms), data_json))
        end
      else
        local msg = name                -- a TRACE message
        local sname, _, status = lines.stream_status(msg)
        local out = sname and files[sname]
        if out and status == "COMPLETE" then
          out:finish()
        elseif out and status == "INCOMPLETE" then
          if out.mode == "overwrite" then
            out:abort()
            emit.log("WARN", format("stream '%s' ended INCOMPLETE: %s was left as it was", sname, out.path))
          else
            out:commit()
          end
        end
      end
    end
    for _, name in ipairs(input.stream_names) do
      local out = files[name]
      if not out.aborted then out:finish() end
    end
  end

  return connector.destination { spec = def.spec, check = def.check or check, write = write }
end

return M
