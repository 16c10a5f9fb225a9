-- connectors.destination-local-json: Airbyte's Local JSON destination
-- (airbyte/destination-local-json, legacy raw layout, protocol.md §8.1).
--
-- Each configured stream goes to <destination_path>/_airbyte_raw_<stream>.jsonl,
-- one JSON object per record:
--   {"_airbyte_ab_id":"<uuid v4>","_airbyte_emitted_at":<record.emitted_at, ms>,"_airbyte_data":{...}}
-- with _airbyte_data copied from the record line's bytes (integers keep all
-- their digits, keys their order).
--
-- destination_path: the real connector puts it under its /local mount; here
-- it is used as given: absolute, or relative to the current directory. The
-- directory is created when missing. The stream name becomes a file name
-- the way the real connector's name transformer does it: every character
-- but ASCII letters, digits and '_' becomes '_'.
--
-- Sync modes (destination_sync_mode):
--   overwrite     records go to a temporary file beside the final one, which
--                 replaces the final file (rename) when the stream ends
--                 COMPLETE or the input ends; a stream that ends INCOMPLETE,
--                 or a failed write, removes it and the old file stays.
--   append        records are appended to the existing file.
--   append_dedup  treated as append (no deduplication), with a warning.
-- Before a STATE is echoed every file written since the previous one is
-- flushed and fsynced. A record of a stream that ended INCOMPLETE in
-- overwrite mode is dropped (counted as rejected).

local cdk = require "airbyte.cdk"

return cdk.file_destination {
  extension = ".jsonl",
  title = "Local Json Destination Spec",
  documentation_url = "https://docs.airbyte.com/integrations/destinations/local-json",
  noun = "json",
  example = "/json_data",
  row = function()
    return function(id, emitted_at, data_json)
      return '{"_airbyte_ab_id":"', id, '","_airbyte_emitted_at":', emitted_at, ',"_airbyte_data":', data_json, "}\n"
    end
  end,
}
