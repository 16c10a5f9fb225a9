-- airbyte.cdk.connector: the two connector shapes a module returns,
-- checked when they are built: cdk.source{...} and cdk.destination{...}.
local options = require "airbyte.options"

local M = {}

local type, assert = type, assert

local SOURCE_KEYS = options.allow{ "spec", "check", "discover", "read" }
function M.source(def)
  assert(type(def) == "table", "cdk.source expects a table")
  options.check(def, SOURCE_KEYS, "cdk.source")
  assert(type(def.spec) == "table", "cdk.source: spec is required")
  assert(type(def.read) == "function", "cdk.source: read is required")
  return { kind = "source", spec = def.spec, check = def.check, discover = def.discover, read = def.read }
end

-- A destination: spec, check(config) -> ok, msg (optional) and
-- write(config, configured_catalog, input, emit); see "Destinations" below.
local DESTINATION_KEYS = options.allow{ "spec", "check", "write" }
function M.destination(def)
  assert(type(def) == "table", "cdk.destination expects a table")
  options.check(def, DESTINATION_KEYS, "cdk.destination")
  assert(type(def.spec) == "table", "cdk.destination: spec is required")
  assert(type(def.write) == "function", "cdk.destination: write is required")
  assert(def.check == nil or type(def.check) == "function", "cdk.destination: check must be a function")
  return { kind = "destination", spec = def.spec, check = def.check, write = def.write }
end


return M
