-- Secret masking: the values kept out of every text the Lua layer prints
-- or logs, held in the runtime's one masker (runtime/src/mask.c).
--
-- airbyte.secrets re-exports these functions; secret_sources registers
-- every secret it finds, secret_refs the secret fields of a config.
local core = require "airbyte.core"

local M = {}

M.MIN_LENGTH = core.MASK_MIN                 -- shorter values would mask ordinary text

-- --- the values to mask -------------------------------------------------------
-- They live in the runtime's masker (runtime/src/mask.c), which the process
-- layer uses for connector logs too: one set of values, one set of rules
-- (shorter than MIN_LENGTH bytes: not masked; longest first; every JSON
-- spelling of a value: \uXXXX escapes in either case, surrogate pairs,
-- \/ and the short escapes, in any mix).

-- register(value): value (a string, or a number written as a connector
-- would print it) is masked from now on.
function M.register(value)
  if type(value) == "number" then value = tostring(math.tointeger(value) or value) end
  if type(value) ~= "string" then return end
  core.mask_add(value)
end

-- values() -> the registered values, longest first (a copy).
M.values = core.mask_values

-- Forgets every registered value; for tests.
M.clear = core.mask_clear

-- mask(text) -> text with every spelling of a registered value replaced by
-- "****". Anything but a string is returned unchanged.
M.mask = core.mask

return M
