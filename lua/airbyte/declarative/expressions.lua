-- The expression language of templates, a small Python/Jinja subset: the
-- tokenizer, the parser (text -> tree), Python's literal_eval, and the
-- evaluator. User text is never handed to `load`, and nothing is in reach
-- but the context variables and the macros and filters of macros.lua.
local dt = require "airbyte.declarative.datetime"
local V = require "airbyte.declarative.pyvalues"
local macros = require "airbyte.declarative.macros"

local M = {}

local NONE, UNDEF = V.NONE, V.UNDEFINED
local list, dict = V.list, V.dict
local fail, undefined, truthy, py_str = V.fail, V.undefined, V.truthy, V.str
local type_name, getitem, compare, contains = V.type_name, V.getitem, V.compare, V.contains
local arith, call_method = V.arith, V.call_method
local concat = table.concat
local MACROS, MACRO_KW, FILTERS, TESTS = macros.MACROS, macros.MACRO_KW, macros.FILTERS, macros.TESTS

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

M.parse, M.evaluate = parse, evaluate

return M
