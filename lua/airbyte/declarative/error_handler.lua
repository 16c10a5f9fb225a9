-- DefaultErrorHandler, HttpResponseFilter, CompositeErrorHandler and the
-- backoff strategies, deciding what a response means (reference §5):
--   handler.resolve(resp, ctx) -> { action, failure_type, message }
--   handler.backoff(resp, attempt, ctx) -> seconds | nil   (nil: the default)
--   handler.max_retries(ctx)
-- Actions: SUCCESS, FAIL, RETRY, IGNORE, RATE_LIMITED. Filters apply to 2xx
-- too; unmatched statuses use the CDK's default map.
local interp = require "airbyte.declarative.interpolation"
local manifest = require "airbyte.declarative.manifest"
local dt = require "airbyte.declarative.datetime"

local M = {}

local DEFAULT = {
  [400] = { "FAIL", "system_error" }, [401] = { "FAIL", "config_error" }, [403] = { "FAIL", "config_error" },
  [404] = { "FAIL", "system_error" }, [405] = { "FAIL", "system_error" }, [408] = { "RETRY", "transient_error" },
  [429] = { "RATE_LIMITED", "transient_error" }, [500] = { "RETRY", "transient_error" },
  [502] = { "RETRY", "transient_error" }, [503] = { "RETRY", "transient_error" },
  [504] = { "RETRY", "transient_error" },
}

function M.default_resolution(status)
  local d = DEFAULT[status]
  if d then return { action = d[1], failure_type = d[2] } end
  if status >= 200 and status < 400 then return { action = "SUCCESS" } end
  if status >= 500 then return { action = "RETRY", failure_type = "transient_error" } end
  return { action = "FAIL", failure_type = "system_error" }
end

local ACTIONS = { SUCCESS = true, FAIL = true, RETRY = true, IGNORE = true, RATE_LIMITED = true }

function M.HttpResponseFilter(node, path)
  manifest.fields(node, "HttpResponseFilter", path,
    "action failure_type error_message error_message_contains http_codes predicate")
  if node.action ~= nil and not ACTIONS[node.action] then
    manifest.config_error(("%s.action '%s' is not one of SUCCESS, FAIL, RETRY, IGNORE, RATE_LIMITED")
      :format(path, tostring(node.action)))
  end
  local codes
  if type(node.http_codes) == "table" then
    codes = {}
    for _, c in ipairs(node.http_codes) do codes[math.tointeger(c) or c] = true end
  end
  local predicate = node.predicate and interp.compile(tostring(node.predicate), path .. ".predicate")
  local message = node.error_message and interp.compile(tostring(node.error_message), path .. ".error_message")
  local contains = node.error_message_contains
  return {
    match = function(resp, ctx)
      local hit = false
      if codes and codes[resp.status] then hit = true end
      if not hit and predicate and interp.truthy(predicate:eval(ctx)) then hit = true end
      if not hit and contains and (resp.body or ""):find(tostring(contains), 1, true) then hit = true end
      if not hit then return nil end
      local action = node.action
      if action == nil then
        action = M.default_resolution(resp.status).action
        if codes and codes[resp.status] and resp.status < 400 then action = "IGNORE" end
      end
      return {
        action = action,
        failure_type = node.failure_type or M.default_resolution(resp.status).failure_type,
        message = message and interp.str(message:eval(ctx) or "") or nil,
      }
    end,
  }
end

local function jitter(node)
  local j = tonumber(node.jitter_range_in_seconds)
  if j and j > 0 then return math.random() * j end
  return 0
end

function M.ConstantBackoffStrategy(node, path)
  manifest.fields(node, "ConstantBackoffStrategy", path, "backoff_time_in_seconds jitter_range_in_seconds")
  local t = interp.compile(tostring(node.backoff_time_in_seconds or 0), path .. ".backoff_time_in_seconds")
  return { backoff = function(_, _, ctx) return (tonumber(t:eval(ctx)) or 0) + jitter(node) end }
end

function M.ExponentialBackoffStrategy(node, path)
  manifest.fields(node, "ExponentialBackoffStrategy", path, "factor jitter_range_in_seconds")
  local t = interp.compile(tostring(node.factor or 5), path .. ".factor")
  return {
    backoff = function(_, attempt, ctx) return (tonumber(t:eval(ctx)) or 5) * 2 ^ (attempt - 1) + jitter(node) end,
  }
end

local function header_number(resp, name, regex)
  local v = resp.headers and resp.headers[name:lower()]
  if v == nil then return nil end
  if regex then
    -- the simple regexes manifests use: a capture of digits
    local lua_pat = regex:gsub("\\d", "%%d"):gsub("\\.", "%%."):gsub("\\s", "%%s")
    v = v:match(lua_pat) or v:match("([%d.]+)")
  end
  return tonumber(v)
end

-- The number in the response header a WaitTimeFromHeader / WaitUntilTimeFromHeader
-- node names (node.header, interpolated; node.regex picks it out): a
-- function of (resp, ctx) -> number | nil.
local function header_reader(node, path)
  local h = interp.compile(tostring(node.header or ""), path .. ".header")
  return function(resp, ctx)
    return header_number(resp, interp.str(h:eval(ctx) or ""), node.regex)
  end
end

function M.WaitTimeFromHeader(node, path)
  manifest.fields(node, "WaitTimeFromHeader", path, "header regex max_waiting_time_in_seconds")
  local header = header_reader(node, path)
  return {
    backoff = function(resp, _, ctx)
      local s = header(resp, ctx)
      if s == nil then return nil end
      local max = tonumber(node.max_waiting_time_in_seconds)
      if max and s > max then
        error({ message = ("%s: the API asks to wait %s s, more than max_waiting_time_in_seconds (%s)")
          :format(path, s, max), failure_type = "transient_error" }, 0)
      end
      return s
    end,
  }
end

function M.WaitUntilTimeFromHeader(node, path)
  manifest.fields(node, "WaitUntilTimeFromHeader", path, "header regex min_wait max_waiting_time_in_seconds")
  local header = header_reader(node, path)
  return {
    backoff = function(resp, _, ctx)
      local at = header(resp, ctx)
      if at == nil then return nil end
      local wait = at - dt.now(interp.clock):timestamp()
      local min = tonumber(node.min_wait)
      if min and wait < min then wait = min end
      if wait < 0 then wait = 0 end
      return wait
    end,
  }
end

function M.DefaultErrorHandler(node, path, F)
  manifest.fields(node, "DefaultErrorHandler", path, "backoff_strategies max_retries response_filters")
  local filters = {}
  for i, f in ipairs(node.response_filters or {}) do
    filters[i] = F.build(f, ("%s.response_filters[%d]"):format(path, i - 1), "HttpResponseFilter")
  end
  local strategies = {}
  for i, s in ipairs(node.backoff_strategies or {}) do
    strategies[i] = F.build(s, ("%s.backoff_strategies[%d]"):format(path, i - 1), "backoff_strategy")
  end
  local max_retries = interp.compile(tostring(node.max_retries or 5), path .. ".max_retries")
  return {
    resolve = function(resp, ctx)
      for _, f in ipairs(filters) do
        local r = f.match(resp, ctx)
        if r then return r end
      end
      return M.default_resolution(resp.status)
    end,
    backoff = function(resp, attempt, ctx)
      for _, s in ipairs(strategies) do
        local t = s.backoff(resp, attempt, ctx)
        if t then return t end
      end
      return nil
    end,
    max_retries = function(ctx) return math.tointeger(tonumber(max_retries:eval(ctx))) or 5 end,
  }
end

function M.CompositeErrorHandler(node, path, F)
  manifest.fields(node, "CompositeErrorHandler", path, "error_handlers")
  local handlers = {}
  for i, h in ipairs(node.error_handlers or {}) do
    handlers[i] = F.build(h, ("%s.error_handlers[%d]"):format(path, i - 1), "error_handler")
  end
  return {
    resolve = function(resp, ctx)
      local first
      for _, h in ipairs(handlers) do
        local r = h.resolve(resp, ctx)
        if r.action ~= "SUCCESS" then return r end
        first = first or r
      end
      return first or M.default_resolution(resp.status)
    end,
    backoff = function(resp, attempt, ctx)
      for _, h in ipairs(handlers) do
        local t = h.backoff(resp, attempt, ctx)
        if t then return t end
      end
    end,
    max_retries = function(ctx) return handlers[1] and handlers[1].max_retries(ctx) or 5 end,
  }
end

return M
