-- .env files as python-dotenv reads them (PyAirbyte's "dotenv" secret
-- source): parse(text) -> { KEY = value }, path() -> where the file is.
local M = {}

local escapes = { n = "\n", t = "\t", r = "\r", a = "\a", b = "\b", f = "\f", v = "\v",
                  ['"'] = '"', ["'"] = "'", ["\\"] = "\\" }

-- ${NAME} and ${NAME:-default} in unquoted and double-quoted values, as
-- python-dotenv expands them: earlier keys of the file win over the
-- environment.
local function expand(value, seen)
  return (value:gsub("%${([%a_][%w_]*)(:?%-?)([^}]*)}", function(name, op, default)
    local v = seen[name] or os.getenv(name)
    if (v == nil or v == "") and op == ":-" then return default end
    return v or ""
  end))
end

-- parse(text) -> { KEY = value }: KEY=VALUE lines, "export KEY=..."
-- too, "#" comments (whole lines, or after a space in an unquoted value),
-- 'single quotes' taken literally, "double quotes" with backslash escapes;
-- quoted values may span lines. Lines that are not assignments are skipped,
-- as python-dotenv skips them.
function M.parse(text)
  local values = {}
  local pos, n = 1, #text
  while pos <= n do
    local eol = text:find("\n", pos, true) or n + 1
    local line = text:sub(pos, eol - 1)
    local key, vat = line:match("^%s*export%s+([%a_][%w_%.%-]*)%s*=[ \t]*()")
    if not key then key, vat = line:match("^%s*([%a_][%w_%.%-]*)%s*=[ \t]*()") end
    local next_pos = eol + 1
    if key then
      local start = pos + vat - 1
      local q = text:sub(start, start)
      if q == '"' or q == "'" then
        local buf, i, closed = {}, start + 1, false
        while i <= n do
          local c = text:sub(i, i)
          if c == q then closed = true break end
          if q == '"' and c == "\\" and i < n then
            local e = text:sub(i + 1, i + 1)
            buf[#buf + 1] = escapes[e] or ("\\" .. e)
            i = i + 2
          else
            buf[#buf + 1] = c
            i = i + 1
          end
        end
        if closed then
          local value = table.concat(buf)
          values[key] = q == '"' and expand(value, values) or value
          next_pos = (text:find("\n", i + 1, true) or n) + 1   -- the rest of that line is a comment
        end
        -- an unterminated quote: the line is skipped
      else
        local value = line:sub(vat)
        if value:sub(1, 1) == "#" then value = "" end
        value = value:gsub("%s+#.*$", ""):gsub("%s+$", "")
        values[key] = expand(value, values)
      end
    end
    pos = next_pos
  end
  return values
end

-- Where the .env file is: in AIRBYTE_PROJECT_DIR, else the current directory.
function M.path()
  local dir = os.getenv("AIRBYTE_PROJECT_DIR")
  if dir and dir ~= "" then return (dir:gsub("/+$", "")) .. "/.env" end
  return ".env"
end

return M
