-- airbyte.validation: the `validate` option of read and write (record
-- checks during the read; the checking itself is C, in pump.c).
--
--   src:read{ validate = {
--     schema = true,                     -- every record against its stream's JSON schema
--     rules = { users = function(u) ... return ok, message, field end },  -- or a sandbox validator
--     on_invalid = "fail",               -- "fail" | "drop" | "null" | "quarantine"
--     max_invalid = 1000,                -- fail past this many (per run); nil = no limit
--   } }
--
-- M.prepare(validate, catalog, quarantine_db, source_name, where) turns
-- that into the pump's option: compiled schemas, rules by stream, the
-- policy, and for "quarantine" a function storing into the cache's
-- _airbyte_quarantine table (lb_cache_put_quarantine).
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local options = require "airbyte.options"
local jsonschema = require "airbyte.jsonschema"

local M = {}

M.OPTIONS = options.allow{ "schema", "rules", "on_invalid", "max_invalid" }
local POLICIES = { fail = true, drop = true, null = true, quarantine = true }

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

function M.prepare(validate, cat, quarantine_db, source_name, where)
  if validate == nil then return nil end
  if type(validate) ~= "table" then
    errors.raise("PyAirbyteInputError", where .. ": validate must be a table")
  end
  validate = options.check(validate, M.OPTIONS, where .. " validate")
  local policy = validate.on_invalid or "fail"
  if not POLICIES[policy] then
    errors.raise("PyAirbyteInputError", ("%s: on_invalid must be fail, drop, null or quarantine (got %s)"):format(
      where, tostring(policy)))
  end
  if validate.max_invalid ~= nil and math.type(validate.max_invalid) ~= "integer" then
    errors.raise("PyAirbyteInputError", where .. ": max_invalid must be an integer")
  end
  local names, schemas, rules = {}, {}, {}
  for _, cs in ipairs(cat.streams) do names[cs.stream.name] = cs.stream end
  if validate.schema then
    for name, stream in pairs(names) do
      local s, msg = jsonschema.compile(json.encode(stream.json_schema or { type = "object" }))
      if not s then
        errors.raise("PyAirbyteInputError", ("%s: the JSON schema of stream '%s' does not compile: %s"):format(
          where, name, tostring(msg)))
      end
      schemas[name] = s
    end
  end
  for name, rule in pairs(validate.rules or {}) do
    if not names[name] then
      local list = {}
      for n in pairs(names) do list[#list + 1] = n end
      table.sort(list)
      errors.raise("PyAirbyteInputError", ("%s: a rule for stream '%s', which is not read (streams: %s)"):format(
        where, tostring(name), table.concat(list, ", ")))
    end
    if not callable(rule) then
      errors.raise("PyAirbyteInputError", ("%s: the rule of stream '%s' must be a function or a sandbox validator"):format(
        where, name))
    end
    rules[name] = rule
  end
  local out = { schemas = schemas, rules = rules, on_invalid = policy, max_invalid = validate.max_invalid }
  if policy == "quarantine" then
    if not quarantine_db then
      errors.raise("PyAirbyteInputError", where .. ": on_invalid = \"quarantine\" needs a cache to keep the records in")
    end
    out.on_quarantine = function(stream, ns, data_json, reasons, ms)
      quarantine_db:put_quarantine(source_name, stream, ns, data_json, json.encode(json.array(reasons)), ms)
    end
  end
  return out
end

return M
