-- connectors.destination-csv: Airbyte's Local CSV destination
-- (airbyte/destination-csv, legacy raw layout, protocol.md §8.1).
--
-- Each configured stream goes to <destination_path>/_airbyte_raw_<stream>.csv:
--   _airbyte_ab_id,_airbyte_emitted_at,_airbyte_data
--   <uuid v4>,<record.emitted_at, ms>,"<the record's data as JSON, quotes doubled>"
-- The data field is always quoted (RFC 4180: '"' inside becomes '""'); the
-- JSON text is the record line's bytes (integers keep all their digits).
-- `delimiter` takes the values of the real connector's spec ("Comma: ,",
-- "Semicolon: ;", "Tab: \t", "Space: ' '", "Pipe: |"); its default is a
-- comma. (The real spec's default is "," which its own enum rejects: ours
-- is "Comma: ,"; a bare character is still understood by the writer.)
--
-- destination_path: the real connector puts it under its /local mount; here
-- it is used as given: absolute, or relative to the current directory
-- (created when missing). Stream names become file names with every
-- character but ASCII letters, digits and '_' turned into '_'.
--
-- Sync modes: overwrite writes a temporary file that replaces the final one
-- when the stream ends COMPLETE or the input ends (a stream ending
-- INCOMPLETE or a failed write leaves the old file as it was); append adds
-- rows to the existing file (the header only goes into a new or empty
-- file); append_dedup is written as append. Files are flushed and fsynced
-- before each STATE is echoed.

local cdk = require "airbyte.cdk"

local gsub, find = string.gsub, string.find

local DELIMITERS = {
  ["Comma: ,"] = ",", ["Semicolon: ;"] = ";", ["Tab: \\t"] = "\t", ["Space: ' '"] = " ", ["Pipe: |"] = "|",
}

local function delimiter_of(config)
  local d = config.delimiter
  if d == nil then return "," end
  if DELIMITERS[d] then return DELIMITERS[d] end
  if type(d) == "string" and #d == 1 and not find(d, '["\r\n]') then return d end
  cdk.config_error("delimiter must be one of the spec's values or a single character other than '\"'")
end

return cdk.file_destination {
  extension = ".csv",
  title = "CSV Destination Spec",
  documentation_url = "https://docs.airbyte.com/integrations/destinations/local-csv",
  noun = "csv",
  example = "/local",
  extra_properties = cdk.obj(
    "delimiter", cdk.obj(
      "description", "The character delimiting individual cells in the CSV data.",
      "type", "string",
      "default", "Comma: ,",
      "enum", cdk.array { "Comma: ,", "Semicolon: ;", "Tab: \\t", "Space: ' '", "Pipe: |" })),
  header = function(config)
    local d = delimiter_of(config)
    return "_airbyte_ab_id" .. d .. "_airbyte_emitted_at" .. d .. "_airbyte_data\n"
  end,
  row = function(config)
    local d = delimiter_of(config)
    return function(id, emitted_at, data_json)
      return id, d, emitted_at, d, '"', (gsub(data_json, '"', '""')), '"\n'
    end
  end,
}
