-- airbyte.checks: dataset checks compiled to SQL over a cache.
--
--   local report = checks.run(cache, spec [, { scope = "all" | "new", since = raw_id }])
--   result:check(spec [, opts]), cache:check(spec [, opts])   -- the same
--
-- spec: stream name -> { column -> checks, _rows = {min=, max=},
--                        _fresh = {column=, max_age=}, _sql = expr or {expr, ...} }
-- column checks (one value or a list of them):
--   "not_null", "unique"                 dbt's checks of the same names
--   { accepted_values = { ... } }        the value is one of these
--   { relationships = { stream =, column = } }  the value exists in another stream's column
--   { between = { lo, hi } }, { min = lo }, { max = hi }   ranges, bounds included
--   { matches = "^[^@]+@[^@]+$" }        POSIX extended regular expression (REGEXP)
--   { sql = "age >= 18 or country <> 'US'" }   an SQL expression that must be true
-- NULL passes every check but not_null, as in dbt; a row fails an `sql` check
-- when its expression is false or NULL.
--
-- Each stream is checked with one SQL query: every row check is a SUM over
-- one scan of the table (uniqueness and relationships are non-correlated
-- IN subqueries, which SQLite builds once), the row count and freshness are
-- aggregates of the same scan. Only failing checks run a second query, for
-- up to five sample values. scope = "new" checks only the rows written after
-- `since` (a ReadResult passes the mark of its read); uniqueness still
-- counts duplicates against the whole table.
--
-- report.passed, report.results (every check), report.failures (the failing
-- ones: stream, column, check, failing_rows, samples, message),
-- tostring(report) (a line per check), report:to_json().
local json = require "airbyte.json"
local errors = require "airbyte.errors"
local class = require "airbyte.class"

local M = {}

local SAMPLES = 5

local quote_ident = require("airbyte.caches").quote_ident

local function fail_input(msg, extra)
  errors.raise("PyAirbyteInputError", msg, extra)
end

-- "90s", "15m", "2h", "1d", "1w" or a number of seconds -> seconds
local UNITS = { s = 1, m = 60, h = 3600, d = 86400, w = 604800 }
local function seconds(v, where)
  if type(v) == "number" and v >= 0 then return v end
  if type(v) == "string" then
    local n, u = v:match("^%s*(%d+%.?%d*)%s*([smhdw]?)%s*$")
    if n then return tonumber(n) * UNITS[u ~= "" and u or "s"] end
  end
  fail_input(("%s: max_age must be seconds or a duration like \"1d\", \"6h\", \"30m\" (got %s)"):format(
    where, tostring(v)))
end

-- The checks of one column as a list of { kind, arg }.
local KINDS = { not_null = true, unique = true, accepted_values = true, relationships = true,
                between = true, min = true, max = true, matches = true, sql = true }
local function column_checks(spec, where)
  local out = {}
  local function add(kind, arg)
    if not KINDS[kind] then
      local valid = {}
      for k in pairs(KINDS) do valid[#valid + 1] = k end
      table.sort(valid)
      fail_input(("%s: unknown check '%s' (valid: %s)"):format(where, tostring(kind), table.concat(valid, ", ")))
    end
    out[#out + 1] = { kind, arg }
  end
  if type(spec) == "string" then add(spec, true); return out end
  if type(spec) ~= "table" then fail_input(("%s: checks must be a name or a table"):format(where)) end
  for _, v in ipairs(spec) do
    if type(v) == "string" then add(v, true)
    elseif type(v) == "table" then for k, a in pairs(v) do add(k, a) end
    else fail_input(("%s: checks must be names or tables"):format(where)) end
  end
  local keys = {}
  for k in pairs(spec) do if type(k) == "string" then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do add(k, spec[k]) end
  return out
end

-- The few pieces of check SQL that differ between the cache backends
-- (db:kind()); everything else is standard SQL both run.
local DIALECTS = {
  sqlite = {
    matches = function(pattern, col) return ("regexp(%s, %s)"):format(pattern, col) end,   -- sql_regexp.c
    age_seconds = function(col) return ("(julianday('now') - julianday(max(%s))) * 86400.0"):format(col) end,
    truth = function(expr) return ("coalesce((%s), 0)"):format(expr) end,
  },
  postgres = {
    matches = function(pattern, col) return ("(CAST(%s AS TEXT) ~ %s)"):format(col, pattern) end,
    age_seconds = function(col)
      return ("EXTRACT(EPOCH FROM (now() - max(CAST(%s AS TIMESTAMPTZ))))"):format(col)
    end,
    truth = function(expr) return ("coalesce(CAST((%s) AS INTEGER), 0)"):format(expr) end,
  },
}

-- One compiled check: the SQL condition of a failing row (cond), or an
-- aggregate (agg) with a verdict on its value.
local function compile_column(c, stream_table, col, kind, arg, where, resolve, params, dialect)
  local q = quote_ident(col)
  local function p(v) params[#params + 1] = v; return "?" .. #params end
  if kind == "not_null" then
    c.cond = q .. " IS NULL"
  elseif kind == "unique" then
    c.cond = ("%s IN (SELECT %s FROM %s WHERE %s IS NOT NULL GROUP BY %s HAVING count(*) > 1)"):format(
      q, q, stream_table, q, q)
  elseif kind == "accepted_values" then
    if type(arg) ~= "table" or #arg == 0 then fail_input(where .. ": accepted_values needs a list of values") end
    local list = {}
    for i, v in ipairs(arg) do list[i] = p(v) end
    c.cond = ("%s IS NOT NULL AND %s NOT IN (%s)"):format(q, q, table.concat(list, ", "))
  elseif kind == "relationships" then
    if type(arg) ~= "table" or type(arg.stream) ~= "string" or type(arg.column) ~= "string" then
      fail_input(where .. ": relationships needs { stream = ..., column = ... }")
    end
    local other = resolve(arg.stream, arg.column, where .. ".relationships")
    local oq = quote_ident(arg.column)
    c.cond = ("%s IS NOT NULL AND %s NOT IN (SELECT %s FROM %s WHERE %s IS NOT NULL)"):format(
      q, q, oq, other, oq)
  elseif kind == "between" then
    if type(arg) ~= "table" or type(arg[1]) ~= "number" or type(arg[2]) ~= "number" then
      fail_input(where .. ": between needs { low, high } numbers")
    end
    c.cond = ("%s IS NOT NULL AND (%s < %s OR %s > %s)"):format(q, q, p(arg[1]), q, p(arg[2]))
  elseif kind == "min" or kind == "max" then
    if type(arg) ~= "number" then fail_input(("%s: %s needs a number"):format(where, kind)) end
    c.cond = ("%s IS NOT NULL AND %s %s %s"):format(q, q, kind == "min" and "<" or ">", p(arg))
  elseif kind == "matches" then
    if type(arg) ~= "string" then fail_input(where .. ": matches needs a pattern string") end
    c.cond = ("%s IS NOT NULL AND NOT %s"):format(q, dialect.matches(p(arg), q))
  elseif kind == "sql" then
    if type(arg) ~= "string" then fail_input(where .. ": sql needs an SQL expression string") end
    c.cond = dialect.truth(arg) .. " = 0"
  end
end

local function describe_check(kind, arg)
  if arg == true then return kind end
  if kind == "relationships" then return ("relationships(%s.%s)"):format(arg.stream, arg.column) end
  if kind == "between" then return ("between(%s, %s)"):format(tostring(arg[1]), tostring(arg[2])) end
  if kind == "accepted_values" then
    local s = {}
    for i, v in ipairs(arg) do s[i] = tostring(v) end
    return ("accepted_values(%s)"):format(table.concat(s, ", "))
  end
  return ("%s(%s)"):format(kind, tostring(arg))
end

-- --- the report ---------------------------------------------------------------

local Report = class.new()

function Report:__tostring()
  local lines = {}
  for _, r in ipairs(self.results) do
    local where = r.column and (r.stream .. "." .. r.column) or r.stream
    local line = ("%s %s %s"):format(r.passed and "PASS" or "FAIL", where, r.check)
    if not r.passed then
      line = line .. ": " .. r.message
      if r.samples and #r.samples > 0 then
        local s = {}
        for i, v in ipairs(r.samples) do s[i] = v == json.null and "null" or tostring(v) end
        line = line .. " (e.g. " .. table.concat(s, ", ") .. ")"
      end
    end
    lines[#lines + 1] = line
  end
  lines[#lines + 1] = ("%d checks, %d failed"):format(#self.results, #self.failures)
  return table.concat(lines, "\n")
end

function Report:to_json()
  local function plain(r)
    local samples = {}
    for i, v in ipairs(r.samples or {}) do samples[i] = v end
    return { stream = r.stream, column = r.column or json.null, check = r.check, passed = r.passed,
             failing_rows = r.failing_rows or json.null, message = r.message or json.null,
             samples = json.array(samples) }
  end
  local results, failures = {}, {}
  for i, r in ipairs(self.results) do results[i] = plain(r) end
  for i, r in ipairs(self.failures) do failures[i] = plain(r) end
  return json.encode({ passed = self.passed, results = json.array(results), failures = json.array(failures) })
end

-- --- running ------------------------------------------------------------------

-- A check's SQL failing (a user's `sql` expression, a bad pattern) names
-- the stream and what SQLite said.
-- sql with only the ?N it uses, renumbered from ?1, and those parameters:
-- PostgreSQL refuses a statement with a parameter it cannot type because
-- nothing uses it (one sample query uses one check's parameters).
local function used_params(sql, params)
  local map, used = {}, {}
  sql = sql:gsub("%?(%d+)", function(n)
    n = tonumber(n)
    if not map[n] then used[#used + 1] = params[n]; map[n] = #used end
    return "?" .. map[n]
  end)
  return sql, used
end

local function query(cache, stream, sql, params)
  sql, params = used_params(sql, params)
  local ok, rows = pcall(cache.run_sql_query, cache, sql, { params = params })
  if not ok then
    local why = tostring(rows):gsub("^[^:\n]+:%d+: ", "")   -- not where in our Lua it surfaced
    errors.raise("PyAirbyteInputError", ("check of stream '%s': the cache refused its SQL: %s"):format(
      stream, why), { stream_name = stream })
  end
  return rows
end

local RUN_OPTIONS = { scope = true, since = true }

function M.run(cache, spec, opts)
  opts = opts or {}
  for k in pairs(opts) do
    if not RUN_OPTIONS[k] then fail_input(("check: unknown option '%s' (valid: scope, since)"):format(tostring(k))) end
  end
  if type(spec) ~= "table" then fail_input("check: the spec must be a table of streams") end
  local scope = opts.scope or "all"
  if scope ~= "all" and scope ~= "new" then fail_input("check: scope must be \"all\" or \"new\"") end
  if scope == "new" and type(opts.since) ~= "string" then
    fail_input("check: scope = \"new\" needs the rows of a read: use result:check(spec, { scope = \"new\" })")
  end
  local dialect = DIALECTS[cache:_db():kind()]
  if not dialect then fail_input(("check: no check SQL for a %s cache"):format(cache:_db():kind())) end
  local known = {}
  for _, n in ipairs(cache.streams) do known[n] = true end
  local columns = {}
  local function resolve(stream, column, where)
    if not known[stream] then
      local list = {}
      for n in pairs(known) do list[#list + 1] = n end
      table.sort(list)
      errors.raise("AirbyteStreamNotFoundError", ("%s: stream '%s' is not in the cache (streams: %s)"):format(
        where, stream, table.concat(list, ", ")), { stream_name = stream, available_streams = list })
    end
    if not columns[stream] then
      local set = {}
      local names = cache:column_names(stream)
      for _, c in ipairs(names) do set[c] = true end
      columns[stream] = { set = set, list = names }
    end
    if column and not columns[stream].set[column] then
      fail_input(("%s: stream '%s' has no column '%s' (columns: %s)"):format(
        where, stream, column, table.concat(columns[stream].list, ", ")),
        { stream_name = stream, column = column, columns = columns[stream].list })
    end
    return quote_ident(cache:table_name(stream))
  end

  local streams = {}
  for name in pairs(spec) do
    if type(name) ~= "string" then fail_input("check: stream names must be strings") end
    streams[#streams + 1] = name
  end
  table.sort(streams)
  local report = setmetatable({ results = {}, failures = {}, passed = true }, Report)
  for _, stream in ipairs(streams) do
    local sspec = spec[stream]
    if type(sspec) ~= "table" then fail_input(("check: the checks of stream '%s' must be a table"):format(stream)) end
    local tbl = resolve(stream, nil, stream)
    local params, list = {}, {}
    local scope_sql = "1 = 1"
    if scope == "new" then
      params[1] = opts.since
      scope_sql = "_airbyte_raw_id > ?1"
    end
    local cols = {}
    for k in pairs(sspec) do
      if type(k) ~= "string" then fail_input(("check: stream '%s': keys must be column names"):format(stream)) end
      cols[#cols + 1] = k
    end
    table.sort(cols)
    for _, col in ipairs(cols) do
      local v = sspec[col]
      local where = stream .. "." .. col
      if col == "_rows" then
        if type(v) ~= "table" then fail_input(where .. " must be { min =, max = }") end
        for k in pairs(v) do if k ~= "min" and k ~= "max" then fail_input(where .. ": unknown key " .. tostring(k)) end end
        list[#list + 1] = { stream = stream, check = "_rows", arg = v, agg = "count(*)" }
      elseif col == "_fresh" then
        if type(v) ~= "table" then fail_input(where .. " must be { column =, max_age = }") end
        local fc = v.column or "_airbyte_extracted_at"
        resolve(stream, fc, where)
        list[#list + 1] = { stream = stream, column = fc, check = "_fresh", arg = v,
                            max_age = seconds(v.max_age, where),
                            agg = dialect.age_seconds(quote_ident(fc)) }
      elseif col == "_sql" then
        local exprs = type(v) == "string" and { v } or v
        if type(exprs) ~= "table" then fail_input(where .. " must be an SQL expression or a list of them") end
        for _, e in ipairs(exprs) do
          local c = { stream = stream, check = "sql(" .. tostring(e) .. ")" }
          compile_column(c, tbl, nil, "sql", e, where, resolve, params, dialect)
          list[#list + 1] = c
        end
      else
        resolve(stream, col, where)
        for _, ck in ipairs(column_checks(v, where)) do
          local c = { stream = stream, column = col, check = describe_check(ck[1], ck[2]), kind = ck[1] }
          compile_column(c, tbl, col, ck[1], ck[2], where, resolve, params, dialect)
          list[#list + 1] = c
        end
      end
    end
    -- one scan for every check of the stream
    local select = {}
    for i, c in ipairs(list) do
      if c.cond then
        select[i] = ("coalesce(sum(CASE WHEN %s THEN 1 ELSE 0 END), 0) AS c%d"):format(c.cond, i)
      else
        select[i] = ("%s AS c%d"):format(c.agg, i)
      end
    end
    if #select > 0 then
      local sql = ("SELECT %s FROM %s WHERE %s"):format(table.concat(select, ", "), tbl, scope_sql)
      local row = query(cache, stream, sql, params)[1]
      for i, c in ipairs(list) do
        local v = row["c" .. i]
        local r = { stream = c.stream, column = c.column, check = c.check, samples = {} }
        if c.cond then
          r.failing_rows = v
          r.passed = v == 0
          if not r.passed then
            r.message = ("%d failing row%s"):format(v, v == 1 and "" or "s")
            local target = c.column and quote_ident(c.column) or "*"
            local srows = query(cache, stream, ("SELECT %s FROM %s WHERE %s AND (%s) LIMIT %d"):format(
              target, tbl, scope_sql, c.cond, SAMPLES), params)
            for j, sr in ipairs(srows) do
              if c.column then r.samples[j] = sr[c.column] == nil and json.null or sr[c.column]
              else r.samples[j] = sr end
            end
          end
        elseif c.check == "_rows" then
          local lo, hi = c.arg.min, c.arg.max
          r.passed = (lo == nil or v >= lo) and (hi == nil or v <= hi)
          r.check = ("_rows(%s..%s)"):format(lo or "", hi or "")
          if not r.passed then r.message = ("%d rows"):format(v) end
        else   -- _fresh
          r.check = ("_fresh(%s)"):format(tostring(c.arg.max_age))
          r.passed = v ~= nil and v <= c.max_age
          if not r.passed then
            r.message = v == nil and "no timestamps" or ("newest value is %.0f s old"):format(v)
          end
        end
        report.results[#report.results + 1] = r
        if not r.passed then
          report.passed = false
          report.failures[#report.failures + 1] = r
        end
      end
    end
  end
  return report
end

-- Raises AirbyteDataCheckFailedError with the report when a check fails.
function M.require_passing(cache, spec, opts, what)
  local report = M.run(cache, spec, opts)
  if not report.passed then
    errors.raise("AirbyteDataCheckFailedError",
      ("%s: %d of %d data checks failed:\n%s"):format(what, #report.failures, #report.results, tostring(report)),
      { report = report, failures = #report.failures })
  end
  return report
end

return M
