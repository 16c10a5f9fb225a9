-- Interpolation of manifest strings ("{{ ... }}"), with the CDK's rules
-- (reference/declarative.md §4): the template is rendered, then the text is
-- read back as a Python literal when it is one ("30" -> 30, "['a']" ->
-- list, "None" -> None); an empty render or an undefined value gives the
-- field's default. Expressions are a small Python/Jinja subset evaluated
-- here: user text is never handed to `load`, and nothing is in reach but
-- the context variables and the macros and filters below.
--
--   local t = M.compile(text [, where])    -> template (cached per text)
--   t:eval(ctx [, default [, valid]])       -> value (valid: "string" keeps
--                                             strings unless the literal is a
--                                             string or a list, as request
--                                             options do)
--   t:render(ctx) -> text (no literal step), t.plain (no {{ }} in it)
--   M.eval(text, ctx, default, valid)      one-shot
--   M.truthy(v), M.str(v) (Python str()), M.NONE, M.UNDEFINED
--   M.clock: epoch milliseconds for now_utc() (tests replace it)
local json = require "airbyte.json"
local dt = require "airbyte.declarative.datetime"

local M = {}

local NONE = json.null
local UNDEF = setmetatable({}, { __name = "Undefined", __tostring = function() return "" end })
M.NONE, M.UNDEFINED = NONE, UNDEF
M.clock = nil

local array_mt, object_mt = json.array_mt, json.object_mt
local mtype, floor, concat = math.type, math.floor, table.concat

local function list(t) return setmetatable(t or {}, array_mt) end
local function dict(t) return setmetatable(t or {}, object_mt) end
M.list, M.dict = list, dict

-- An error in a template: its text and where it comes from.
local TemplateError = { __name = "TemplateError" }
TemplateError.__tostring = function(e) return e.message end
local UndefinedError = {}

local function fail(msg)
  error(setmetatable({ message = msg }, TemplateError), 0)
end
local function undefined(what)
  error(setmetatable({ message = what }, UndefinedError), 0)
end

local function is_list(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == array_mt then return true end
  if mt ~= nil then return false end
  return v[1] ~= nil
end

local function is_dict(v)
  if type(v) ~= "table" then return false end
  local mt = getmetatable(v)
  if mt == object_mt then return true end
  if mt ~= nil then return false end
  return v[1] == nil
end

local function truthy(v)
  if v == nil or v == NONE or v == false or v == UNDEF or v == 0 or v == "" then return false end
  if type(v) == "table" and (is_list(v) or is_dict(v)) then return next(v) ~= nil end
  if dt.is_duration(v) then return v.months ~= 0 or v.seconds ~= 0 or v.us ~= 0 end
  return true
end
M.truthy = truthy

-- Python repr()/str() -------------------------------------------------------

local function py_float(v)
  if v ~= v then return "nan" end
  if v == math.huge then return "inf" elseif v == -math.huge then return "-inf" end
  if v == floor(v) and math.abs(v) < 1e16 then return string.format("%.1f", v) end
  for p = 15, 17 do
    local s = string.format("%." .. p .. "g", v)
    if tonumber(s) == v then
      return (s:gsub("e%+?(%-?)0*(%d)", "e%1%2"):gsub("e(%d)", "e+%1"))
    end
  end
  return tostring(v)
end

local repr

local function py_str(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return mtype(v) == "integer" and tostring(v) or py_float(v) end
  if t == "boolean" then return v and "True" or "False" end
  if v == nil or v == NONE then return "None" end
  if v == UNDEF then return "" end
  if dt.is(v) or dt.is_duration(v) then return tostring(v) end
  if json.is_bigint(v) then return tostring(v) end
  return repr(v)
end
M.str = py_str

local function repr_string(s)
  local q = (s:find("'", 1, true) and not s:find('"', 1, true)) and '"' or "'"
  local out = s:gsub("[\\\n\r\t" .. q .. "]", function(c)
    if c == "\n" then return "\\n" elseif c == "\r" then return "\\r" elseif c == "\t" then return "\\t" end
    return "\\" .. c
  end)
  return q .. out .. q
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

function repr(v)
  if type(v) == "string" then return repr_string(v) end
  if dt.is(v) then
    local y, m, d, H, Mi, S = v:fields()
    if v.date_only then return ("datetime.date(%d, %d, %d)"):format(y, m, d) end
    return ("datetime.datetime(%d, %d, %d, %d, %d, %d)"):format(y, m, d, H, Mi, S)
  end
  if type(v) == "table" and is_list(v) then
    local parts = {}
    for i = 1, #v do parts[i] = repr(v[i]) end
    return "[" .. concat(parts, ", ") .. "]"
  end
  if type(v) == "table" and is_dict(v) then
    local parts = {}
    for _, k in ipairs(sorted_keys(v)) do parts[#parts + 1] = repr(k) .. ": " .. repr(v[k]) end
    return "{" .. concat(parts, ", ") .. "}"
  end
  return py_str(v)
end
M.repr = repr

-- Tokens ---------------------------------------------------------------------

local KEYWORDS = { ["and"] = true, ["or"] = true, ["not"] = true, ["in"] = true, ["is"] = true,
                   ["if"] = true, ["else"] = true }
local OPS3 = { ["**"] = true, ["//"] = true, ["=="] = true, ["!="] = true, ["<="] = true, [">="] = true }

local ESC = { n = "\n", t = "\t", r = "\r", ["\\"] = "\\", ["'"] = "'", ['"'] = '"', ["0"] = "\0" }

local function tokenize(src)
  local toks, i, n = {}, 1, #src
  while i <= n do
    local c = src:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c:match("[%a_]") then
      local w = src:match("^[%w_]+", i)
      toks[#toks + 1] = { k = KEYWORDS[w] and "kw" or "name", v = w }
      i = i + #w
    elseif c:match("%d") or (c == "." and src:sub(i + 1, i + 1):match("%d")) then
      local num = src:match("^%d[%d_]*%.?[%d_]*[eE][+-]?%d+", i) or src:match("^%d[%d_]*%.[%d_]*", i)
        or src:match("^%.%d+[eE][+-]?%d+", i) or src:match("^%.%d+", i) or src:match("^%d[%d_]*", i)
      local clean = num:gsub("_", "")
      local v
      if clean:find("[.eE]") then v = tonumber(clean) + 0.0
      else
        if #clean > 1 and clean:sub(1, 1) == "0" and clean:match("[^0]") then return nil, "leading zeros in '" .. num .. "'" end
        v = math.tointeger(tonumber(clean)) or tonumber(clean)
      end
      toks[#toks + 1] = { k = "num", v = v }
      i = i + #num
    elseif c == "'" or c == '"' then
      local j, buf = i + 1, {}
      while true do
        local ch = src:sub(j, j)
        if ch == "" then return nil, "unterminated string" end
        if ch == c then break end
        if ch == "\\" then
          local e = src:sub(j + 1, j + 1)
          if e == "u" then
            local hex = src:sub(j + 2, j + 5)
            buf[#buf + 1] = utf8.char(tonumber(hex, 16) or 63)
            j = j + 6
          else
            buf[#buf + 1] = ESC[e] or ("\\" .. e)
            j = j + 2
          end
        else
          buf[#buf + 1] = ch
          j = j + 1
        end
      end
      toks[#toks + 1] = { k = "str", v = concat(buf) }
      i = j + 1
    else
      local two = src:sub(i, i + 1)
      if OPS3[two] then
        toks[#toks + 1] = { k = "op", v = two }
        i = i + 2
      elseif ("()[]{},:.|~+-*/%<>="):find(c, 1, true) then
        toks[#toks + 1] = { k = "op", v = c }
        i = i + 1
      else
        return nil, "unexpected character '" .. c .. "'"
      end
    end
  end
  toks[#toks + 1] = { k = "eof", v = "" }
  return toks
end

-- Parser (precedence as Jinja's: if-else < or < and < not < comparisons/in/is
-- < ~ < + - < * / // % < unary < ** < postfix . [] () | filters) -------------

local P = {}
P.__index = P

function P:peek(k, v)
  local t = self.toks[self.i]
  return t.k == k and (v == nil or t.v == v)
end
function P:accept(k, v)
  if self:peek(k, v) then self.i = self.i + 1; return self.toks[self.i - 1] end
end
function P:expect(k, v)
  local t = self:accept(k, v)
  if not t then
    local got = self.toks[self.i]
    fail(("expected '%s' but found '%s'"):format(v or k, got.v ~= "" and tostring(got.v) or "end"))
  end
  return t
end

function P:expr()
  local e = self:or_expr()
  if self:accept("kw", "if") then
    local cond = self:or_expr()
    local other = { op = "const", v = UNDEF }
    if self:accept("kw", "else") then other = self:expr() end
    return { op = "ifelse", cond = cond, a = e, b = other }
  end
  return e
end

function P:or_expr()
  local e = self:and_expr()
  while self:accept("kw", "or") do e = { op = "or", a = e, b = self:and_expr() } end
  return e
end

function P:and_expr()
  local e = self:not_expr()
  while self:accept("kw", "and") do e = { op = "and", a = e, b = self:not_expr() } end
  return e
end

function P:not_expr()
  if self:accept("kw", "not") then return { op = "not", a = self:not_expr() } end
  return self:compare()
end

local CMP = { ["=="] = true, ["!="] = true, ["<"] = true, [">"] = true, ["<="] = true, [">="] = true }

function P:compare()
  local e = self:concat_expr()
  while true do
    local t = self.toks[self.i]
    if t.k == "op" and CMP[t.v] then
      self.i = self.i + 1
      e = { op = "cmp", cmp = t.v, a = e, b = self:concat_expr() }
    elseif self:accept("kw", "in") then
      e = { op = "in", a = e, b = self:concat_expr() }
    elseif self:peek("kw", "not") and self.toks[self.i + 1].k == "kw" and self.toks[self.i + 1].v == "in" then
      self.i = self.i + 2
      e = { op = "not", a = { op = "in", a = e, b = self:concat_expr() } }
    else
      return e
    end
  end
end

function P:concat_expr()
  local e = self:arith()
  while self:accept("op", "~") do e = { op = "concat", a = e, b = self:arith() } end
  return e
end

function P:arith()
  local e = self:term()
  while true do
    local t = self.toks[self.i]
    if t.k == "op" and (t.v == "+" or t.v == "-") then
      self.i = self.i + 1
      e = { op = "bin", bin = t.v, a = e, b = self:term() }
    else
      return e
    end
  end
end

function P:term()
  local e = self:unary()
  while true do
    local t = self.toks[self.i]
    if t.k == "op" and (t.v == "*" or t.v == "/" or t.v == "//" or t.v == "%") then
      self.i = self.i + 1
      e = { op = "bin", bin = t.v, a = e, b = self:unary() }
    else
      return e
    end
  end
end

function P:unary()
  if self:accept("op", "-") then return { op = "neg", a = self:unary() } end
  if self:accept("op", "+") then return self:unary() end
  local e = self:postfix(self:primary())
  if self:accept("op", "**") then e = { op = "bin", bin = "**", a = e, b = self:unary() } end
  return e
end

function P:args()
  local args, kwargs = {}, {}
  if not self:accept("op", ")") then
    repeat
      if self:peek("name") and self.toks[self.i + 1].k == "op" and self.toks[self.i + 1].v == "=" then
        local name = self:expect("name").v
        self:expect("op", "=")
        kwargs[name] = self:expr()
      else
        args[#args + 1] = self:expr()
      end
    until not self:accept("op", ",")
    self:expect("op", ")")
  end
  return args, kwargs
end

function P:postfix(e)
  while true do
    if self:accept("op", ".") then
      local name = self:expect("name").v
      e = { op = "attr", obj = e, name = name }
    elseif self:accept("op", "[") then
      local lo, hi
      if not self:peek("op", ":") then lo = self:expr() end
      if self:accept("op", ":") then
        if not self:peek("op", "]") then hi = self:expr() end
        self:expect("op", "]")
        e = { op = "slice", obj = e, lo = lo, hi = hi }
      else
        self:expect("op", "]")
        e = { op = "item", obj = e, key = lo }
      end
    elseif self:accept("op", "(") then
      local args, kwargs = self:args()
      e = { op = "call", fn = e, args = args, kwargs = kwargs }
    elseif self:accept("op", "|") then
      local name = self:expect("name").v
      local args, kwargs = {}, {}
      if self:accept("op", "(") then args, kwargs = self:args() end
      e = { op = "filter", name = name, a = e, args = args, kwargs = kwargs }
    elseif self:accept("kw", "is") then
      local negate = self:accept("kw", "not") and true or false
      local name = self:accept("name") or self:accept("kw", "in")
      if not name then fail("expected a test name after 'is'") end
      local args = {}
      if self:accept("op", "(") then args = self:args() elseif self:peek("str") or self:peek("num") then
        args = { self:primary() }
      end
      e = { op = "test", name = name.v, a = e, args = args, negate = negate }
    else
      return e
    end
  end
end

local CONSTS = { True = true, False = false, None = NONE, ["true"] = true, ["false"] = false,
                 none = NONE }

function P:primary()
  local t = self.toks[self.i]
  self.i = self.i + 1
  if t.k == "num" or t.k == "str" then
    if t.k == "str" then
      while self:peek("str") do t = { v = t.v .. self.toks[self.i].v }; self.i = self.i + 1 end
    end
    return { op = "const", v = t.v }
  end
  if t.k == "name" then
    local c = CONSTS[t.v]
    if c ~= nil then return { op = "const", v = c } end
    return { op = "var", name = t.v }
  end
  if t.k == "op" and t.v == "(" then
    if self:accept("op", ")") then return { op = "list", items = {}, tuple = true } end
    local e = self:expr()
    if self:accept("op", ",") then
      local items = { e }
      while not self:peek("op", ")") do
        items[#items + 1] = self:expr()
        if not self:accept("op", ",") then break end
      end
      e = { op = "list", items = items, tuple = true }
    end
    self:expect("op", ")")
    return e
  end
  if t.k == "op" and t.v == "[" then
    local items = {}
    while not self:peek("op", "]") do
      items[#items + 1] = self:expr()
      if not self:accept("op", ",") then break end
    end
    self:expect("op", "]")
    return { op = "list", items = items }
  end
  if t.k == "op" and t.v == "{" then
    local keys, vals = {}, {}
    while not self:peek("op", "}") do
      keys[#keys + 1] = self:expr()
      self:expect("op", ":")
      vals[#vals + 1] = self:expr()
      if not self:accept("op", ",") then break end
    end
    self:expect("op", "}")
    return { op = "dict", keys = keys, vals = vals }
  end
  fail(("unexpected '%s'"):format(t.v ~= "" and tostring(t.v) or "end of expression"))
end

local function parse(src)
  local toks, err = tokenize(src)
  if not toks then fail(err) end
  local p = setmetatable({ toks = toks, i = 1 }, P)
  local e = p:expr()
  if not p:peek("eof") then fail(("unexpected '%s'"):format(tostring(p.toks[p.i].v))) end
  return e
end

-- Python's ast.literal_eval: the text as a literal, or nil.
local function literal_node(e)
  local op = e.op
  if op == "const" then return true end
  if op == "neg" then return e.a.op == "const" and type(e.a.v) == "number" end
  if op == "list" then
    for _, x in ipairs(e.items) do if not literal_node(x) then return false end end
    return true
  end
  if op == "dict" then
    for i = 1, #e.keys do
      if not literal_node(e.keys[i]) or not literal_node(e.vals[i]) then return false end
    end
    return true
  end
  return false
end

local evaluate

function M.literal(text)
  text = text:gsub("^[ \t]+", "")
  if text == "" or text:find("^[%a_]") and not CONSTS[text:match("^[%a_][%w_]*")] then return nil end
  if text:find("^%s") then return nil end     -- literal_eval only strips spaces and tabs
  local ok, e = pcall(parse, text)
  if not ok or not literal_node(e) then return nil end
  if e.op == "const" and (e.v == true or e.v == false or e.v == NONE) then
    -- only Python's spelling is a literal
    if text:match("^%s*(%a+)%s*$") ~= (e.v == true and "True" or e.v == false and "False" or "None") then
      return nil
    end
  end
  return evaluate(e, {}), true
end

-- Evaluation -------------------------------------------------------------------

local function type_name(v)
  if v == NONE or v == nil then return "NoneType" end
  if v == UNDEF then return "Undefined" end
  if type(v) == "table" then
    if dt.is(v) then return "datetime" end
    if dt.is_duration(v) then return "timedelta" end
    return is_list(v) and "list" or "dict"
  end
  if type(v) == "number" then return mtype(v) == "integer" and "int" or "float" end
  if type(v) == "boolean" then return "bool" end
  return type(v) == "string" and "str" or type(v)
end

-- Response headers look up names case-insensitively, as requests' do.
local case_insensitive = setmetatable({}, { __mode = "k" })
function M.headers(t)
  case_insensitive[t] = true
  return t
end

local function getitem(obj, key)
  if obj == UNDEF then undefined("indexing an undefined value") end
  if type(obj) == "string" and mtype(key) == "integer" then
    local n = #obj
    local i = key < 0 and n + key + 1 or key + 1
    if i < 1 or i > n then return UNDEF end
    return obj:sub(i, i)
  end
  if type(obj) ~= "table" or dt.is(obj) or dt.is_duration(obj) then return UNDEF end
  if is_list(obj) then
    if type(key) == "boolean" then key = key and 1 or 0 end
    if mtype(key) ~= "integer" then return UNDEF end
    local i = key < 0 and #obj + key + 1 or key + 1
    local v = obj[i]
    if v == nil then return UNDEF end
    return v
  end
  local v = obj[key]
  if v == nil and mtype(key) == "integer" then v = obj[tostring(key)] end
  if v == nil and case_insensitive[obj] and type(key) == "string" then v = obj[key:lower()] end
  if v == nil then return UNDEF end
  return v
end

local function equal(a, b)
  if a == b then return true end
  if type(a) == "number" and type(b) == "number" then return a == b end
  if type(a) == "boolean" and type(b) == "number" then return (a and 1 or 0) == b end
  if type(b) == "boolean" and type(a) == "number" then return (b and 1 or 0) == a end
  if type(a) == "table" and type(b) == "table" then
    if dt.is(a) or dt.is(b) then return dt.is(a) and dt.is(b) and a.t == b.t and a.us == b.us end
    for k, v in pairs(a) do if not equal(v, b[k]) then return false end end
    for k in pairs(b) do if a[k] == nil then return false end end
    return true
  end
  if json.is_bigint(a) or json.is_bigint(b) then return tostring(a) == tostring(b) end
  return false
end

local function compare(op, a, b)
  if op == "==" then return equal(a, b) end
  if op == "!=" then return not equal(a, b) end
  local ta, tb = type(a), type(b)
  if ta == "boolean" then a = a and 1 or 0; ta = "number" end
  if tb == "boolean" then b = b and 1 or 0; tb = "number" end
  local ok = (ta == "number" and tb == "number") or (ta == "string" and tb == "string")
    or (dt.is(a) and dt.is(b))
  if not ok then
    fail(("'%s' not supported between instances of '%s' and '%s'"):format(op, type_name(a), type_name(b)))
  end
  if op == "<" then return a < b elseif op == ">" then return b < a
  elseif op == "<=" then return a <= b else return b <= a end
end

local function contains(container, item)
  if type(container) == "string" then
    if type(item) ~= "string" then fail("'in <string>' requires string as left operand, not " .. type_name(item)) end
    return container:find(item, 1, true) ~= nil
  end
  if container == UNDEF or container == NONE then
    if container == UNDEF then return false end
    fail("argument of type 'NoneType' is not iterable")
  end
  if type(container) ~= "table" then fail("argument of type '" .. type_name(container) .. "' is not iterable") end
  if is_list(container) then
    for _, v in ipairs(container) do if equal(v, item) then return true end end
    return false
  end
  return container[item] ~= nil
end

local function to_int(v)
  if mtype(v) == "integer" then return v end
  if type(v) == "number" then return v >= 0 and floor(v) or -floor(-v) end
  if type(v) == "boolean" then return v and 1 or 0 end
  if type(v) == "string" then
    local n = tonumber((v:gsub("_", "")))
    if n and math.tointeger(n) then return math.tointeger(n) end
  end
  return nil
end

local function arith(op, a, b)
  if op == "+" then
    if type(a) == "number" and type(b) == "number" then return a + b end
    if type(a) == "string" and type(b) == "string" then return a .. b end
    if dt.is(a) and dt.is_duration(b) then return dt.add(a, b, 1) end
    if dt.is_duration(a) and dt.is(b) then return dt.add(b, a, 1) end
    if dt.is_duration(a) and dt.is_duration(b) then
      return dt.new_duration(a.months + b.months, a.seconds + b.seconds, a.us + b.us)
    end
    if type(a) == "table" and type(b) == "table" and is_list(a) and is_list(b) then
      local out = list()
      for _, v in ipairs(a) do out[#out + 1] = v end
      for _, v in ipairs(b) do out[#out + 1] = v end
      return out
    end
  elseif op == "-" then
    if type(a) == "number" and type(b) == "number" then return a - b end
    if dt.is(a) and dt.is_duration(b) then return dt.add(a, b, -1) end
    if dt.is(a) and dt.is(b) then return dt.diff(a, b) end
  elseif op == "*" then
    if type(a) == "number" and type(b) == "number" then return a * b end
    if type(a) == "string" and mtype(b) == "integer" then return a:rep(math.max(b, 0)) end
    if dt.is_duration(a) and mtype(b) == "integer" then
      return dt.new_duration(a.months * b, a.seconds * b, a.us * b)
    end
  elseif op == "/" then
    if type(a) == "number" and type(b) == "number" then
      if b == 0 then fail("division by zero") end
      return a / b
    end
  elseif op == "//" then
    if type(a) == "number" and type(b) == "number" then
      if b == 0 then fail("integer division by zero") end
      return a // b
    end
  elseif op == "%" then
    if type(a) == "number" and type(b) == "number" then
      if b == 0 then fail("modulo by zero") end
      return a % b
    end
  elseif op == "**" then
    if type(a) == "number" and type(b) == "number" then
      if mtype(a) == "integer" and mtype(b) == "integer" and b >= 0 then
        local r = 1
        for _ = 1, b do r = r * a end
        return r
      end
      return a ^ b
    end
  end
  if a == UNDEF or b == UNDEF then undefined("arithmetic on an undefined value") end
  fail(("unsupported operand type(s) for %s: '%s' and '%s'"):format(op, type_name(a), type_name(b)))
end

-- Methods of strings, dicts, lists and datetimes that manifests call.
local function str_method(s, name, args)
  if name == "join" then
    local parts = {}
    local it = args[1]
    if type(it) ~= "table" then fail("join() expects a list") end
    for i, v in ipairs(it) do
      if type(v) ~= "string" then fail(("sequence item %d: expected str instance, %s found"):format(i - 1, type_name(v))) end
      parts[i] = v
    end
    return concat(parts, s)
  elseif name == "lower" then return s:lower()
  elseif name == "upper" then return s:upper()
  elseif name == "strip" or name == "lstrip" or name == "rstrip" then
    local chars = args[1] and args[1] ~= NONE and args[1]:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0") or "%s"
    if name ~= "rstrip" then s = s:gsub("^[" .. chars .. "]+", "") end
    if name ~= "lstrip" then s = s:gsub("[" .. chars .. "]+$", "") end
    return s
  elseif name == "startswith" then return s:sub(1, #args[1]) == args[1]
  elseif name == "endswith" then return args[1] == "" or s:sub(-#args[1]) == args[1]
  elseif name == "replace" then
    local old, new = args[1], args[2]
    if old == "" then return s end
    local out, i = {}, 1
    while true do
      local a, b = s:find(old, i, true)
      if not a then break end
      out[#out + 1] = s:sub(i, a - 1)
      out[#out + 1] = new
      i = b + 1
    end
    out[#out + 1] = s:sub(i)
    return concat(out)
  elseif name == "split" then
    local sep = args[1]
    local out = list()
    if sep == nil or sep == NONE then
      for w in s:gmatch("%S+") do out[#out + 1] = w end
      return out
    end
    local i = 1
    while true do
      local a, b = s:find(sep, i, true)
      if not a then break end
      out[#out + 1] = s:sub(i, a - 1)
      i = b + 1
    end
    out[#out + 1] = s:sub(i)
    return out
  elseif name == "format" then
    local n = 0
    return (s:gsub("{(%d*)}", function(idx)
      n = n + 1
      local v = args[idx ~= "" and tonumber(idx) + 1 or n]
      return py_str(v)
    end))
  elseif name == "isdigit" then return s ~= "" and not s:find("%D")
  elseif name == "title" then return (s:gsub("(%a)([%w]*)", function(a, b) return a:upper() .. b:lower() end))
  elseif name == "capitalize" then return s:sub(1, 1):upper() .. s:sub(2):lower()
  elseif name == "count" then
    local c, i = 0, 1
    while true do
      local a, b = s:find(args[1], i, true)
      if not a then return c end
      c = c + 1; i = b + 1
    end
  elseif name == "find" then
    local a = s:find(args[1], 1, true)
    return a and a - 1 or -1
  end
  fail(("'str' object has no attribute '%s'"):format(name))
end

local function call_method(obj, name, args, kwargs)
  if obj == UNDEF then undefined(("'%s' of an undefined value"):format(name)) end
  if type(obj) == "string" then return str_method(obj, name, args) end
  if dt.is(obj) then
    if name == "strftime" then return dt.format(obj, args[1]) end
    if name == "isoformat" then return obj:isoformat(args[1]) end
    if name == "timestamp" then return obj:timestamp() end
    if name == "date" then return obj:date() end
    if name == "replace" then
      local y, m, d, H, Mi, S = obj:fields()
      local k = kwargs
      if k.tzinfo ~= nil then
        return dt.from_civil(y, m, d, H, Mi, S, obj.us, 0)
      end
      return dt.from_civil(k.year or y, k.month or m, k.day or d, k.hour or H, k.minute or Mi,
                           k.second or S, k.microsecond or obj.us, obj.off)
    end
    if name == "astimezone" then return dt.new(obj.t, obj.us, 0) end
    fail(("'datetime' object has no attribute '%s'"):format(name))
  end
  if dt.is_duration(obj) then
    if name == "total_seconds" then return obj:total_seconds() end
    fail(("'timedelta' object has no attribute '%s'"):format(name))
  end
  if type(obj) == "table" and is_dict(obj) then
    if name == "get" then
      local v = obj[args[1]]
      if v == nil and case_insensitive[obj] and type(args[1]) == "string" then v = obj[args[1]:lower()] end
      if v == nil then
        if args[2] == nil then return NONE end
        return args[2]
      end
      return v
    elseif name == "keys" or name == "values" or name == "items" then
      local out = list()
      for _, k in ipairs(sorted_keys(obj)) do
        if name == "keys" then out[#out + 1] = k
        elseif name == "values" then out[#out + 1] = obj[k]
        else out[#out + 1] = list{ k, obj[k] } end
      end
      return out
    end
    fail(("'dict' object has no attribute '%s'"):format(name))
  end
  if type(obj) == "table" and is_list(obj) then
    if name == "index" then
      for i, v in ipairs(obj) do if equal(v, args[1]) then return i - 1 end end
      fail("value is not in list")
    elseif name == "count" then
      local c = 0
      for _, v in ipairs(obj) do if equal(v, args[1]) then c = c + 1 end end
      return c
    end
    fail(("'list' object has no attribute '%s'"):format(name))
  end
  if obj == NONE then fail(("'NoneType' object has no attribute '%s'"):format(name)) end
  fail(("'%s' object has no attribute '%s'"):format(type_name(obj), name))
end

-- Macros (the CDK's global functions) -----------------------------------------

local function to_datetime(v, input_format)
  if dt.is(v) then return v end
  if type(v) == "number" then
    if input_format then return dt.parse(tostring(math.tointeger(v) or v), input_format) end
    local t = floor(v)
    return dt.new(t, floor((v - t) * 1e6 + 0.5), 0)
  end
  if type(v) == "string" then
    if input_format then return dt.parse(v, input_format) end
    return dt.parse_iso(v) or (tonumber(v) and to_datetime(tonumber(v)))
  end
  return nil
end

local function format_datetime(v, fmt, input_format)
  if input_format == NONE then input_format = nil end
  local d = to_datetime(v, input_format)
  if not d then fail(("format_datetime: cannot read '%s' as a datetime"):format(py_str(v))) end
  return dt.format(d, fmt)
end

local MACROS = {}

function MACROS.now_utc() return dt.now(M.clock) end
function MACROS.today_utc() return dt.today(M.clock) end
function MACROS.today_with_timezone(tz)
  if tz ~= "UTC" and tz ~= "Etc/UTC" then fail("today_with_timezone: only 'UTC' is supported, not " .. py_str(tz)) end
  return dt.today(M.clock)
end
function MACROS.timestamp(v)
  if type(v) == "number" then return to_int(v) end
  local d = to_datetime(v)
  if not d then fail(("timestamp: cannot read '%s' as a datetime"):format(py_str(v))) end
  return d.t
end
function MACROS.str_to_datetime(s)
  local d = dt.parse_iso(s)
  if not d then fail(("str_to_datetime: '%s' is not a datetime"):format(py_str(s))) end
  return d
end
function MACROS.max(...)
  local args = { ... }
  if #args == 1 and type(args[1]) == "table" and is_list(args[1]) then args = args[1] end
  local best = args[1]
  for i = 2, #args do if compare(">", args[i], best) then best = args[i] end end
  return best
end
function MACROS.min(...)
  local args = { ... }
  if #args == 1 and type(args[1]) == "table" and is_list(args[1]) then args = args[1] end
  local best = args[1]
  for i = 2, #args do if compare("<", args[i], best) then best = args[i] end end
  return best
end
function MACROS.day_delta(n, fmt)
  local d = dt.add(dt.now(M.clock), dt.new_duration(0, floor(n * 86400), 0))
  return dt.format(d, fmt or "%Y-%m-%dT%H:%M:%S.%f%z")
end
function MACROS.duration(s)
  local d, err = dt.duration(s)
  if not d then fail("duration: " .. err) end
  return d
end
MACROS.format_datetime = format_datetime
function MACROS.sanitize_url(s)
  return M.quote(py_str(s), "", true)
end
function MACROS.camel_case_to_snake_case(s)
  s = py_str(s):gsub("(.)(%u%l)", "%1_%2"):gsub("(%l)(%u)", "%1_%2"):gsub("(%d)(%u)", "%1_%2")
  return s:lower()
end
function MACROS.generate_uuid()
  local b = {}
  for i = 1, 16 do b[i] = math.random(0, 255) end
  b[7] = (b[7] & 0x0f) | 0x40
  b[9] = (b[9] & 0x3f) | 0x80
  local h = string.format(string.rep("%02x", 16), table.unpack(b))
  return h:sub(1, 8) .. "-" .. h:sub(9, 12) .. "-" .. h:sub(13, 16) .. "-" .. h:sub(17, 20) .. "-" .. h:sub(21)
end
local MACRO_KW = { day_delta = { "n", "format" }, format_datetime = { "dt", "format", "input_format" } }

-- Filters ------------------------------------------------------------------------

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64encode(s)
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end
M.base64encode = base64encode

local function base64decode(s)
  s = s:gsub("[^" .. b64chars .. "=]", "")
  return (s:gsub(".", function(x)
    if x == "=" then return "" end
    local r, f = "", (b64chars:find(x, 1, true) - 1)
    for i = 6, 1, -1 do r = r .. (f % 2 ^ i - f % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end):gsub("%d%d%d?%d?%d?%d?%d?%d?", function(x)
    if #x ~= 8 then return "" end
    local c = 0
    for i = 1, 8 do c = c + (x:sub(i, i) == "1" and 2 ^ (8 - i) or 0) end
    return string.char(c)
  end))
end

-- Percent-encoding as Python's urllib.parse.quote: letters, digits and
-- "-._~" stay, plus the characters of `safe`; plus = quote_plus (space -> +).
function M.quote(s, safe, plus)
  return (s:gsub("[^%w%-%._~" .. (safe or "") .. "]", function(c)
    if plus and c == " " then return "+" end
    return string.format("%%%02X", c:byte())
  end))
end

local function urlencode(v)
  if type(v) == "table" and is_dict(v) then
    local parts = {}
    for _, k in ipairs(sorted_keys(v)) do parts[#parts + 1] = urlencode(k) .. "=" .. urlencode(v[k]) end
    return concat(parts, "&")
  end
  return M.quote(py_str(v), "/")
end
M.urlencode = urlencode

local FILTERS = {}
FILTERS.urlencode = urlencode
function FILTERS.default(v, d, boolean)
  if v == UNDEF or (boolean and not truthy(v)) then return d == nil and "" or d end
  return v
end
FILTERS.d = FILTERS.default
function FILTERS.join(v, sep, attr)
  if v == UNDEF then return "" end
  local parts = {}
  for i, x in ipairs(v) do parts[i] = py_str(attr and getitem(x, attr) or x) end
  return concat(parts, sep or "")
end
function FILTERS.lower(v) return py_str(v):lower() end
function FILTERS.upper(v) return py_str(v):upper() end
function FILTERS.trim(v) return (py_str(v):gsub("^%s+", ""):gsub("%s+$", "")) end
function FILTERS.string(v) return py_str(v) end
function FILTERS.int(v, d)
  local n = to_int(v)
  if n == nil and type(v) == "string" and tonumber(v) then n = to_int(tonumber(v)) end
  if n == nil then return d or 0 end
  return n
end
function FILTERS.float(v, d)
  local n = tonumber(type(v) == "string" and v or (type(v) == "number" and v or nil))
  if n == nil then return d or 0.0 end
  return n + 0.0
end
function FILTERS.length(v)
  if type(v) == "string" then return utf8.len(v) or #v end
  if type(v) == "table" then
    if is_list(v) then return #v end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return n
  end
  if v == UNDEF then return 0 end
  fail("object of type '" .. type_name(v) .. "' has no len()")
end
FILTERS.count = FILTERS.length
function FILTERS.first(v) return getitem(v, 0) end
function FILTERS.last(v) return getitem(v, -1) end
function FILTERS.replace(v, old, new) return str_method(py_str(v), "replace", { old, new }) end
function FILTERS.list(v)
  if type(v) == "string" then
    local out = list()
    for ch in v:gmatch(utf8.charpattern) do out[#out + 1] = ch end
    return out
  end
  if type(v) == "table" and is_dict(v) then return call_method(v, "keys", {}, {}) end
  return v
end
function FILTERS.tojson(v) return json.encode(v) end
function FILTERS.base64encode(v) return base64encode(py_str(v)) end
function FILTERS.base64decode(v) return base64decode(py_str(v)) end
FILTERS.base64binascii_decode = FILTERS.base64decode
function FILTERS.abs(v) return math.abs(v) end
function FILTERS.round(v, p)
  local m = 10 ^ (p or 0)
  return floor(v * m + 0.5) / m
end
function FILTERS.hash(v, kind, salt)
  kind = kind or "md5"
  local ok, core = pcall(require, "airbyte.core")
  if kind == "md5" and ok and core.md5 then return core.md5(py_str(v) .. (salt or "")) end
  fail(("hash: the '%s' digest is not available in luabyte"):format(kind))
end
function FILTERS.regex_search()
  fail("the regex_search filter (Python regular expressions) is not supported by luabyte")
end
function FILTERS.regex_replace()
  fail("the regex_replace filter (Python regular expressions) is not supported by luabyte")
end
function FILTERS.hmac()
  fail("the hmac filter is not supported by luabyte")
end

local TESTS = {
  defined = function(v) return v ~= UNDEF end,
  undefined = function(v) return v == UNDEF end,
  none = function(v) return v == NONE or v == nil end,
  string = function(v) return type(v) == "string" end,
  number = function(v) return type(v) == "number" end,
  mapping = function(v) return type(v) == "table" and is_dict(v) end,
  sequence = function(v) return type(v) == "string" or (type(v) == "table" and is_list(v)) end,
  ["true"] = function(v) return v == true end,
  ["false"] = function(v) return v == false end,
  eq = function(v, o) return equal(v, o) end,
  ["in"] = function(v, o) return contains(o, v) end,
}

-- The evaluator -------------------------------------------------------------------

local function eval_args(nodes, ctx)
  local out = {}
  for i, n in ipairs(nodes) do out[i] = evaluate(n, ctx) end
  return out
end

local function eval_kwargs(map, ctx)
  local out = {}
  for k, n in pairs(map) do out[k] = evaluate(n, ctx) end
  return out
end

function evaluate(e, ctx)
  local op = e.op
  if op == "const" then return e.v end
  if op == "var" then
    local v = ctx[e.name]
    if v == nil then
      if MACROS[e.name] then return MACROS[e.name] end
      fail(("undefined variable '%s'"):format(e.name))
    end
    return v
  end
  if op == "item" then
    return getitem(evaluate(e.obj, ctx), evaluate(e.key, ctx))
  end
  if op == "attr" then
    local obj = evaluate(e.obj, ctx)
    if obj == UNDEF then undefined(("'%s' of an undefined value"):format(e.name)) end
    if type(obj) == "table" and not dt.is(obj) and not dt.is_duration(obj) then
      local v = obj[e.name]
      if v ~= nil then return v end
      return UNDEF
    end
    if dt.is(obj) then
      local y, m, d, H, Mi, S = obj:fields()
      local f = ({ year = y, month = m, day = d, hour = H, minute = Mi, second = S, microsecond = obj.us })[e.name]
      if f then return f end
    end
    return UNDEF
  end
  if op == "call" then
    local args = eval_args(e.args, ctx)
    local kwargs = eval_kwargs(e.kwargs, ctx)
    if e.fn.op == "attr" then
      local obj = evaluate(e.fn.obj, ctx)
      -- a dict key holding a value wins over a method only when it is callable: never here
      return call_method(obj, e.fn.name, args, kwargs)
    end
    local fn = evaluate(e.fn, ctx)
    if type(fn) ~= "function" then fail(("'%s' is not callable"):format(type_name(fn))) end
    local names = e.fn.op == "var" and MACRO_KW[e.fn.name]
    if names then
      for i, k in ipairs(names) do if kwargs[k] ~= nil then args[i] = kwargs[k] end end
    end
    return fn(table.unpack(args, 1, math.max(#args, names and #names or 0)))
  end
  if op == "filter" then
    local f = FILTERS[e.name]
    if not f then fail(("no filter named '%s'"):format(e.name)) end
    local v = evaluate(e.a, ctx)
    local args = eval_args(e.args, ctx)
    local kwargs = eval_kwargs(e.kwargs, ctx)
    if e.name == "hash" then args[1] = args[1] or kwargs.type; args[2] = args[2] or kwargs.salt end
    return f(v, table.unpack(args, 1, #args))
  end
  if op == "test" then
    local t = TESTS[e.name]
    if not t then fail(("no test named '%s'"):format(e.name)) end
    local r = t(evaluate(e.a, ctx), table.unpack(eval_args(e.args, ctx)))
    if e.negate then return not r end
    return r
  end
  if op == "or" then
    local a = evaluate(e.a, ctx)
    if truthy(a) then return a end
    return evaluate(e.b, ctx)
  end
  if op == "and" then
    local a = evaluate(e.a, ctx)
    if not truthy(a) then return a end
    return evaluate(e.b, ctx)
  end
  if op == "not" then return not truthy(evaluate(e.a, ctx)) end
  if op == "ifelse" then
    if truthy(evaluate(e.cond, ctx)) then return evaluate(e.a, ctx) end
    return evaluate(e.b, ctx)
  end
  if op == "cmp" then return compare(e.cmp, evaluate(e.a, ctx), evaluate(e.b, ctx)) end
  if op == "in" then return contains(evaluate(e.b, ctx), evaluate(e.a, ctx)) end
  if op == "concat" then return py_str(evaluate(e.a, ctx)) .. py_str(evaluate(e.b, ctx)) end
  if op == "bin" then return arith(e.bin, evaluate(e.a, ctx), evaluate(e.b, ctx)) end
  if op == "neg" then
    local v = evaluate(e.a, ctx)
    if type(v) ~= "number" then fail("bad operand type for unary -: '" .. type_name(v) .. "'") end
    return -v
  end
  if op == "list" then
    local out = list()
    for i, n in ipairs(e.items) do out[i] = evaluate(n, ctx) end
    return out
  end
  if op == "dict" then
    local out = dict()
    for i = 1, #e.keys do out[evaluate(e.keys[i], ctx)] = evaluate(e.vals[i], ctx) end
    return out
  end
  if op == "slice" then
    local obj = evaluate(e.obj, ctx)
    local lo = e.lo and evaluate(e.lo, ctx) or nil
    local hi = e.hi and evaluate(e.hi, ctx) or nil
    local n = type(obj) == "string" and #obj or #obj
    lo = lo and (lo < 0 and math.max(n + lo, 0) or math.min(lo, n)) or 0
    hi = hi and (hi < 0 and math.max(n + hi, 0) or math.min(hi, n)) or n
    if type(obj) == "string" then return obj:sub(lo + 1, hi) end
    local out = list()
    for i = lo + 1, hi do out[#out + 1] = obj[i] end
    return out
  end
  fail("cannot evaluate " .. tostring(op))
end

-- Templates ------------------------------------------------------------------------

local Template = {}
Template.__index = Template

local cache = setmetatable({}, { __mode = "v" })

-- Splits text into literal parts and {{ }} expressions ({# #} comments dropped;
-- {% %} statements are not supported and say so).
local function split(text, where)
  local parts, i = {}, 1
  while true do
    local a, b, kind = text:find("{([{%%#])", i)
    if not a then
      if i <= #text then parts[#parts + 1] = text:sub(i) end
      break
    end
    local close = kind == "{" and "}}" or kind == "%" and "%}" or "#}"
    local c, d = text:find(close, b + 1, true)
    if not c then fail(("%s: unclosed '{%s' in template %q"):format(where, kind, text)) end
    local lit = text:sub(i, a - 1)
    local inner = text:sub(b + 1, c - 1)
    if inner:sub(1, 1) == "-" then lit = lit:gsub("%s+$", ""); inner = inner:sub(2) end
    local trim_after = false
    if inner:sub(-1) == "-" then trim_after = true; inner = inner:sub(1, -2) end
    if lit ~= "" then parts[#parts + 1] = lit end
    if kind == "%" then
      fail(("%s: Jinja statements ({%% %s %%}) are not supported by luabyte, only {{ expressions }}")
        :format(where, inner:match("^%s*(.-)%s*$")))
    elseif kind == "{" then
      local ok, ast = pcall(parse, inner)
      if not ok then
        fail(("%s: cannot parse template %q: %s"):format(where, text, tostring(ast.message or ast)))
      end
      parts[#parts + 1] = { ast = ast, src = inner }
    end
    i = d + 1
    if trim_after then
      local _, e2 = text:find("^%s+", i)
      if e2 then i = e2 + 1 end
    end
  end
  return parts
end

function M.compile(text, where)
  if type(text) ~= "string" then text = py_str(text) end
  local t = cache[text]
  if t then return t end
  local parts = split(text, where or "template")
  t = setmetatable({ text = text, parts = parts, plain = true }, Template)
  for _, p in ipairs(parts) do if type(p) == "table" then t.plain = false end end
  t.single = #parts == 1 and type(parts[1]) == "table" and parts[1].ast or nil
  cache[text] = t
  return t
end

local function wrap_error(self, err)
  if getmetatable(err) == TemplateError then
    if not err.template then
      err.template = self.text
      err.message = ("%s (in template %q)"):format(err.message, self.text)
    end
    error(err, 0)
  end
  error(err, 0)
end

-- Renders to text; returns nil when something was undefined.
function Template:render(ctx)
  if self.plain then return self.text end
  local out = {}
  for i, p in ipairs(self.parts) do
    if type(p) == "string" then out[i] = p
    else
      local ok, v = pcall(evaluate, p.ast, ctx)
      if not ok then
        if getmetatable(v) == UndefinedError then return nil end
        wrap_error(self, v)
      end
      out[i] = py_str(v)
    end
  end
  return concat(out)
end

-- valid = "request": as request options (strings and lists kept, other
-- literals stay text); nil: any literal
local function literal_of(text, valid)
  local v, ok = M.literal(text)
  if not ok then return text end
  if valid == "request" and not (type(v) == "string" or (type(v) == "table" and is_list(v))) then
    return text
  end
  return v
end

function Template:eval(ctx, default, valid)
  local result
  if self.single then
    local ok, v = pcall(evaluate, self.single, ctx)
    if not ok then
      if getmetatable(v) ~= UndefinedError then wrap_error(self, v) end
      v = UNDEF
    end
    if v == UNDEF or v == "" then result = nil
    elseif type(v) == "string" then return literal_of(v, valid)
    elseif dt.is(v) or dt.is_duration(v) then return literal_of(tostring(v), valid)
    elseif valid == "request" and (type(v) == "number" or type(v) == "boolean" or v == NONE) then
      return py_str(v)
    else return v end
  else
    result = self:render(ctx)
    if result ~= nil and result ~= "" then return literal_of(result, valid) end
  end
  if default == nil then return nil end
  return M.compile(default):eval(ctx, nil, valid)
end

function M.eval(text, ctx, default, valid)
  return M.compile(text):eval(ctx, default, valid)
end

M.TemplateError = TemplateError
M.is_list, M.is_dict, M.equal = is_list, is_dict, equal
M.to_datetime = to_datetime

return M
