-- Plain-text tables for print_samples: one column per field, _airbyte_*
-- columns hidden, wide cells cut; pivoted (field per line) past 10 columns.
local json = require "airbyte.json"

local M = {}

local MAX_CELL = 30

local function cell(v)
  if v == nil or v == json.null then return "" end
  local s = type(v) == "table" and not json.is_bigint(v) and json.encode(v) or tostring(v)
  s = s:gsub("[\r\n\t]", " ")
  if #s > MAX_CELL then s = s:sub(1, MAX_CELL - 1) .. "…" end
  return s
end

function M.print(rows, out)
  out = out or io.stdout
  local cols, seen = {}, {}
  for _, r in ipairs(rows) do
    for k in pairs(r) do
      if not seen[k] and not tostring(k):match("^_airbyte_") then seen[k] = true; cols[#cols + 1] = k end
    end
  end
  table.sort(cols)
  if #rows == 0 then out:write("  (no records)\n") return end
  if #cols > 10 then
    for i, r in ipairs(rows) do
      out:write(("  record %d\n"):format(i))
      for _, c in ipairs(cols) do out:write(("    %-24s %s\n"):format(c, cell(r[c]))) end
    end
    return
  end
  local width = {}
  for i, c in ipairs(cols) do
    width[i] = #c
    for _, r in ipairs(rows) do width[i] = math.max(width[i], utf8.len(cell(r[c])) or #cell(r[c])) end
  end
  local function line(vals)
    local parts = {}
    for i, v in ipairs(vals) do parts[i] = v .. string.rep(" ", width[i] - (utf8.len(v) or #v)) end
    out:write("  ", table.concat(parts, " | "), "\n")
  end
  line(cols)
  local sep = {}
  for i = 1, #cols do sep[i] = string.rep("-", width[i]) end
  line(sep)
  for _, r in ipairs(rows) do
    local vals = {}
    for i, c in ipairs(cols) do vals[i] = cell(r[c]) end
    line(vals)
  end
end

return M
