-- The Lua object model: classes, computed properties, declared fields, the last lookup.
--
-- A class is a table of methods that is also its objects' metatable;
-- computed properties, fields that may be nil and a last lookup are
-- declared, never written as an __index by hand (CONTRIBUTING.md).
--
--   local class = require "airbyte.class"
--   local Cache = class.new{
--     properties = { streams = function(self) return self:_stream_names() end },
--     fields = { "host", "port" },              -- public fields that may be nil
--     lookup = function(self, key) ... end,     -- every other key (cache["users"])
--   }
--   function Cache:close() ... end               -- methods: fields of the class
--   local PgCache = class.new{ base = Cache, fields = { "database" } }
--   local obj = setmetatable({ name = "x" }, Cache)
--
-- obj[key] reads, in this order: the object's own fields (Lua's rule),
-- the methods of the class and its bases, a property (properties[key](self),
-- computed at each read), a declared field (nil when the object has none),
-- then lookup(self, key) when the class or a base has one, else nil. So
-- code reads its own fields as self.x, never with rawget: a key that is no
-- method, property or declared field reaches lookup, which may raise (a
-- ReadResult names the streams it has) or answer for data (a cached
-- stream's dataset). A class gets its base's properties, fields, lookup and
-- the metamethods (__len, __pairs, __close, ...) defined on the base before
-- class.new is called.
local M = {}

local specs = setmetatable({}, { __mode = "k" })   -- class -> { properties, fields, lookup }

---@param spec? { base?: table, properties?: table<string, fun(self): any>, fields?: string[], lookup?: fun(self, key): any }
---@return table
function M.new(spec)
  spec = spec or {}
  local base = spec.base
  local inherited = base and specs[base] or { properties = {}, fields = {} }
  local properties, fields = {}, {}
  for k, v in pairs(inherited.properties) do properties[k] = v end
  for k, v in pairs(spec.properties or {}) do properties[k] = v end
  for k in pairs(inherited.fields) do fields[k] = true end
  for _, k in ipairs(spec.fields or {}) do fields[k] = true end
  local lookup = spec.lookup or inherited.lookup
  local cls = {}
  if base then
    for k, v in pairs(base) do
      if type(k) == "string" and k:sub(1, 2) == "__" and k ~= "__index" then cls[k] = v end
    end
    setmetatable(cls, { __index = base })
  end
  specs[cls] = { properties = properties, fields = fields, lookup = lookup }
  cls.__index = function(self, key)
    local m = cls[key]
    if m ~= nil then return m end
    local p = properties[key]
    if p then return p(self) end
    if fields[key] or not lookup then return nil end
    return lookup(self, key)
  end
  return cls
end

return M
