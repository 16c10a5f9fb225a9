-- A source connector for benchmarks: stream "users" (faker's schema) whose
-- read replays a prepared NDJSON file as fast as the pipe takes it.
-- Run as: luabyte scripts/bench/run_bench_connector.lua replay_source CMD ...
local cdk = require "airbyte.cdk"
local schemas = require "connectors.source_faker_schemas"

return cdk.source{
  spec = { connectionSpecification = { type = "object", required = { "file" },
           properties = { file = { type = "string" } } } },
  check = function() return true end,
  discover = function()
    return { { name = "users", json_schema = schemas.users, supported_sync_modes = { "full_refresh", "incremental" },
               source_defined_cursor = true, default_cursor_field = { "updated_at" },
               source_defined_primary_key = { { "id" } } } }
  end,
  read = function(config)
    local f = assert(io.open(config.file, "rb"))
    io.stdout:setvbuf("full", 1 << 20)
    while true do
      local chunk = f:read(1 << 20)
      if not chunk then break end
      io.stdout:write(chunk)
    end
    f:close()
    io.stdout:flush()
  end,
}
