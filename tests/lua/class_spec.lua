-- airbyte.class: the one object model of the Lua layer (CONTRIBUTING.md).
local class = require "airbyte.class"

describe("airbyte.class", function()
  it("reads own fields, then methods, properties, declared fields, then lookup", function()
    local looked = {}
    local C = class.new{
      properties = { twice = function(self) return self.n * 2 end },
      fields = { "maybe" },
      lookup = function(_, key) looked[#looked + 1] = key; return "looked:" .. key end,
    }
    function C:get() return self.n end
    local o = setmetatable({ n = 21 }, C)
    assert.equal(21, o:get())
    assert.equal(42, o.twice)
    o.n = 5
    assert.equal(10, o.twice)                 -- computed at each read
    assert.is_nil(o.maybe)                    -- declared: nil, never looked up
    assert.equal("looked:users", o.users)
    assert.same({ "users" }, looked)
    o.maybe = "set"
    assert.equal("set", o.maybe)
  end)

  it("without a lookup, an unknown key is nil", function()
    local C = class.new()
    function C:m() return "m" end
    local o = setmetatable({}, C)
    assert.equal("m", o:m())
    assert.is_nil(o.other)
  end)

  it("a lookup may raise for unknown keys", function()
    local C = class.new{ fields = { "catalog" }, lookup = function(_, key) error("no stream " .. key, 0) end }
    local o = setmetatable({}, C)
    assert.is_nil(o.catalog)
    assert.has_error(function() return o.users end, "no stream users")
  end)

  it("a subclass gets its base's methods, properties, fields, lookup and metamethods", function()
    local Base = class.new{
      properties = { p = function() return "p" end },
      fields = { "f" },
      lookup = function(_, key) return "base:" .. key end,
    }
    function Base:m() return "base m" end
    function Base:n() return "base n" end
    function Base:__len() return 7 end
    function Base:__tostring() return "Base" end
    local Sub = class.new{ base = Base, fields = { "g" } }
    function Sub:n() return "sub n" end
    function Sub:__tostring() return "Sub" end
    local o = setmetatable({}, Sub)
    assert.equal("base m", o:m())
    assert.equal("sub n", o:n())
    assert.equal("p", o.p)
    assert.is_nil(o.f)
    assert.is_nil(o.g)
    assert.equal("base:x", o.x)
    assert.equal(7, #o)
    assert.equal("Sub", tostring(o))
    assert.equal("Base", tostring(setmetatable({}, Base)))
  end)
end)
