-- Interpolation of manifest strings ("{{ ... }}"), with the CDK's rules
-- (reference/declarative.md §4): the template is rendered, then the text is
-- read back as a Python literal when it is one ("30" -> 30, "['a']" ->
-- list, "None" -> None); an empty render or an undefined value gives the
-- field's default. Expressions are a small Python/Jinja subset, evaluated
-- by expressions.lua over pyvalues.lua's values, with macros.lua's macros
-- and filters: user text is never handed to `load`. This file is also the
-- face the declarative components use for all of them.
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
local dt = require "airbyte.declarative.datetime"
local V = require "airbyte.declarative.pyvalues"
local expressions = require "airbyte.declarative.expressions"
local macros = require "airbyte.declarative.macros"

local M = {}

local NONE, UNDEF = V.NONE, V.UNDEFINED
M.NONE, M.UNDEFINED = NONE, UNDEF
M.clock = nil

local concat = table.concat
local TemplateError, UndefinedError = V.TemplateError, V.UndefinedError
local fail, py_str, is_list = V.fail, V.str, V.is_list
local parse, evaluate = expressions.parse, expressions.evaluate

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

-- The template language's other pieces, for the declarative components.
M.list, M.dict, M.truthy, M.str, M.repr, M.headers = V.list, V.dict, V.truthy, V.str, V.repr, V.headers
M.literal = expressions.literal
M.base64encode, M.quote, M.urlencode = macros.base64encode, macros.quote, macros.urlencode
M.TemplateError = TemplateError
M.is_list, M.is_dict, M.equal = V.is_list, V.is_dict, V.equal
M.to_datetime = macros.to_datetime

return M
