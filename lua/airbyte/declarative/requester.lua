-- HttpRequester: builds one request from the templates and the options of
-- the other components, sends it through airbyte.http and applies the error
-- handler (retries with backoff, Retry-After honoured, IGNORE, FAIL with the
-- HTTP status and the API's message, credentials masked).
--
--   requester.fetch(ctx, opts, path_override) -> resp | nil (IGNOREd)
--       resp.status, resp.headers, resp.body, resp.url, resp.json (decoded)
--   M.client(env_overrides) -> { send, mask, add_secret, ... } (F.env)
local json = require "airbyte.json"
local interp = require "airbyte.declarative.interpolation"
local manifest = require "airbyte.declarative.manifest"
local ro = require "airbyte.declarative.request_options"

local M = {}

-- URL joining as the CDK's HttpRequester: the path loses leading '/', the
-- base gets a trailing '/', then relative resolution (a full URL wins).
function M.join_url(base, path)
  if path == nil or path == "" then return base end
  if path:match("^%a[%w+.-]*://") then return path end
  path = path:gsub("^/+", "")
  if base:sub(-1) ~= "/" then base = base .. "/" end
  return base .. path
end

-- Query strings and form bodies: values as Python's str() writes them
-- (True, None), lists as repeated keys, encoded by airbyte.http.query.
local function encode_query(params)
  local flat = {}
  for k, v in pairs(params) do
    if type(v) == "table" and interp.is_list(v) then
      local list = {}
      for i, x in ipairs(v) do list[i] = interp.str(x) end
      flat[interp.str(k)] = list
    else
      flat[interp.str(k)] = interp.str(v)
    end
  end
  return require("airbyte.http").query(flat)
end
M.encode_query = encode_query

-- The API's own error message, looked for where APIs usually put it.
local MESSAGE_KEYS = { "message", "error_message", "error", "errors", "failures", "failure", "detail", "err",
                       "msg", "reason", "status_message", "Error Message", "Information" }
function M.api_message(body)
  local ok, data = pcall(json.decode, body or "")
  if not ok then
    local s = (body or ""):gsub("%s+", " ")
    return s ~= "" and s:sub(1, 200) or nil
  end
  local function find(v, depth)
    if depth > 4 then return nil end
    if type(v) == "string" and v ~= "" then return v end
    if type(v) ~= "table" then return nil end
    if interp.is_list(v) then
      local parts = {}
      for _, x in ipairs(v) do
        local m = find(x, depth + 1)
        if m then parts[#parts + 1] = m end
      end
      return #parts > 0 and table.concat(parts, ", ") or nil
    end
    for _, k in ipairs(MESSAGE_KEYS) do
      local m = v[k] ~= nil and find(v[k], depth + 1)
      if m then return m end
    end
    return nil
  end
  return find(data, 0)
end

-- The HTTP side shared by every component of one connector run.
--   rewrite: { { from, to }, ... } URL prefixes (LUABYTE_URL_REWRITE)
--   emit: the kit's emitter (for LOG and CONTROL messages)
function M.client(opts)
  local self = { secrets = {}, rewrite = opts.rewrite or {}, emit = opts.emit, sleep = opts.sleep,
                 http = opts.http }
  function self.add_secret(s)
    if type(s) == "string" and #s >= 4 then self.secrets[s] = true end
  end
  function self.mask(s)
    s = tostring(s)
    for secret in pairs(self.secrets) do
      local a = s:find(secret, 1, true)
      while a do
        s = s:sub(1, a - 1) .. "****" .. s:sub(a + #secret)
        a = s:find(secret, a + 4, true)
      end
      local enc = interp.urlencode(secret)
      if enc ~= secret then
        a = s:find(enc, 1, true)
        while a do
          s = s:sub(1, a - 1) .. "****" .. s:sub(a + #enc)
          a = s:find(enc, a + 4, true)
        end
      end
    end
    return s
  end
  function self.rewrite_url(url)
    for _, r in ipairs(self.rewrite) do
      if url:sub(1, #r[1]) == r[1] then return r[2] .. url:sub(#r[1] + 1) end
    end
    return url
  end
  function self.send(req, _)
    local http = self.http or require "airbyte.http"
    local r = { method = req.method, url = self.rewrite_url(req.url), headers = req.headers, body = req.body,
                timeout_ms = req.timeout_ms or 60000 }
    return http.request(r)
  end
  function self.log(level, msg)
    if self.emit then self.emit.log(level, self.mask(msg)) end
  end
  function self.control_config(config)
    if not self.emit then return end
    local cdk = require "airbyte.cdk"
    self.emit.message(cdk.obj("type", "CONTROL", "control", cdk.obj("type", "CONNECTOR_CONFIG",
      "emitted_at", self.emit.now_ms() + 0.0, "connectorConfig", cdk.obj("config", config))))
  end
  return self
end

-- Parses an RFC 5988 Link header the way requests' response.links does:
-- keyed by rel (else url), each entry with url and every parameter.
function M.parse_links(value)
  local links = setmetatable({}, json.object_mt)
  if type(value) ~= "string" then return links end
  for part in (value .. ","):gmatch("%s*(<[^>]*>[^,]*),") do
    local url, params = part:match("^<([^>]*)>(.*)$")
    if url then
      local entry = setmetatable({ url = url }, json.object_mt)
      for k, v in params:gmatch(";%s*([^=;%s]+)%s*=%s*\"?([^\";]*)\"?") do entry[k:lower()] = v end
      links[entry.rel or url] = entry
    end
  end
  return links
end

local function header_ctx(resp)
  local h = setmetatable({}, json.object_mt)
  for k, v in pairs(resp.headers or {}) do h[k] = v end
  h.link = M.parse_links(resp.headers and resp.headers.link)
  return interp.headers(h)
end
M.header_ctx = header_ctx

local function retry_after(resp)
  local v = resp and resp.headers and resp.headers["retry-after"]
  if v == nil then return nil end
  return tonumber(v)
end

local function mapping_of(node, field, path)
  local v = node[field]
  if v == nil or v == json.null then return nil end
  if type(v) == "string" then return interp.compile(v, path .. "." .. field) end
  if type(v) ~= "table" or interp.is_list(v) then
    manifest.config_error(("%s.%s must be a mapping or a template"):format(path, field))
  end
  return v
end

-- Evaluates a mapping of templates (keys and values); None values dropped.
local function eval_mapping(map, ctx, valid)
  local out = {}
  if map == nil then return out end
  if getmetatable(map) and map.eval then
    local v = map:eval(ctx)
    if type(v) ~= "table" then return out end
    map = v
  end
  for k, v in pairs(map) do
    local key = interp.str(interp.eval(tostring(k), ctx, nil, "request") or k)
    local val = v
    if type(v) == "string" then val = interp.eval(v, ctx, nil, valid)
    elseif type(v) == "table" and not interp.is_list(v) then val = eval_mapping(v, ctx, valid) end
    if val ~= nil and val ~= json.null then out[key] = val end
  end
  return out
end
M.eval_mapping = eval_mapping

function M.HttpRequester(node, path, F)
  manifest.fields(node, "HttpRequester", path,
    "authenticator error_handler http_method path request_body_data request_body_json request_headers "
    .. "request_parameters url url_base use_cache request_body")
  local url_base = node.url_base and interp.compile(tostring(node.url_base), path .. ".url_base")
  local url_t = node.url and interp.compile(tostring(node.url), path .. ".url")
  local path_t = node.path and interp.compile(tostring(node.path), path .. ".path")
  if not url_base and not url_t then manifest.config_error(path .. " needs url_base (or url)") end
  local method = (node.http_method or "GET"):upper()
  local params = mapping_of(node, "request_parameters", path)
  local headers = mapping_of(node, "request_headers", path)
  local body_json = node.request_body_json
  local body_data = node.request_body_data
  if type(node.request_body) == "table" then
    local rb = node.request_body
    if rb.type == "RequestBodyJsonObject" then body_json = rb.value
    elseif rb.type == "RequestBodyUrlEncodedForm" then body_data = rb.value
    elseif rb.type == "RequestBodyPlainText" then body_data = rb.value
    else manifest.config_error(("%s.request_body type '%s' is not supported"):format(path, tostring(rb.type))) end
  end
  local auth = node.authenticator and F.build(node.authenticator, path .. ".authenticator", "authenticator")
    or { apply = function() end, secrets = function() return {} end }
  local handler = F.build(node.error_handler or { type = "DefaultErrorHandler" }, path .. ".error_handler",
    "error_handler")
  local env = F.env
  local self = { auth = auth }

  local function build(ctx, opts, url_override)
    local url
    if url_override then
      url = url_override
    elseif url_t then
      url = interp.str(url_t:eval(ctx) or "")
    else
      local p = path_t and path_t:eval(ctx, nil, "request")
      url = M.join_url(interp.str(url_base:eval(ctx) or ""), p and interp.str(p) or "")
    end
    local all = ro.new()
    for k, v in pairs(opts.params) do ro.put(all, "params", k, v, opts.owners["params\0" .. k] or "an option") end
    for k, v in pairs(opts.headers) do ro.put(all, "headers", k, v, opts.owners["headers\0" .. k] or "an option") end
    for k, v in pairs(opts.body_data) do ro.put(all, "body_data", k, v, opts.owners["body_data\0" .. k] or "an option") end
    all.body_json = opts.body_json
    if not url_override then
      ro.add_all(all, "params", eval_mapping(params, ctx, "request"), path .. ".request_parameters")
    end
    ro.add_all(all, "headers", eval_mapping(headers, ctx, "request"), path .. ".request_headers")
    auth.apply(all, ctx)
    local q = encode_query(all.params)
    if q ~= "" then url = url .. (url:find("?", 1, true) and "&" or "?") .. q end
    local hdrs = {}
    for k, v in pairs(all.headers) do hdrs[k] = interp.str(v) end
    local body
    local bj = body_json ~= nil and body_json ~= json.null
    if bj or all.body_json then
      local obj = {}
      if bj then
        if type(body_json) == "string" then obj = interp.eval(body_json, ctx) or {}
        else obj = eval_mapping(body_json, ctx) end
      end
      for k, v in pairs(all.body_json or {}) do obj[k] = v end
      body = json.encode(setmetatable(obj, getmetatable(obj) or json.object_mt))
      hdrs["Content-Type"] = hdrs["Content-Type"] or "application/json"
    else
      local form = {}
      local text
      if body_data ~= nil and body_data ~= json.null then
        if type(body_data) == "string" then
          local v = interp.eval(body_data, ctx)
          if type(v) == "table" then form = v else text = v and interp.str(v) end
        else
          form = eval_mapping(body_data, ctx)
        end
      end
      for k, v in pairs(all.body_data) do form[k] = v end
      if text then body = text
      elseif next(form) then
        body = encode_query(form)
        hdrs["Content-Type"] = hdrs["Content-Type"] or "application/x-www-form-urlencoded"
      end
    end
    return { method = method, url = url, headers = hdrs, body = body }
  end
  self.build = build

  function self.fetch(ctx, opts, url_override)
    for _, s in ipairs(auth.secrets(ctx)) do env.add_secret(s) end
    local attempt, waited = 0, 0
    local max = handler.max_retries(ctx)
    while true do
      local req = build(ctx, opts, url_override)
      local ok, resp = pcall(env.send, req)
      local resolution, fctx
      if not ok then
        local msg = type(resp) == "table" and (resp.message or tostring(resp)) or tostring(resp)
        resolution = { action = "RETRY", failure_type = "transient_error",
                       message = ("%s %s failed: %s"):format(req.method, req.url, msg) }
        resp = nil
      else
        local jok, data = pcall(json.decode, resp.body or "")
        resp.json = jok and data or nil
        fctx = {}
        for k, v in pairs(ctx) do fctx[k] = v end
        fctx.response = jok and data or setmetatable({}, json.object_mt)
        fctx.headers = header_ctx(resp)
        resolution = handler.resolve(resp, fctx)
      end
      local action = resolution.action
      if action == "SUCCESS" then return resp end
      local api = resp and M.api_message(resp.body) or nil
      local function describe()
        if resolution.message and resolution.message ~= "" then return resolution.message end
        if not resp then return ("%s %s failed"):format(req.method, req.url) end
        return ("HTTP %d from %s %s%s"):format(resp.status, req.method, req.url, api and (": " .. api) or "")
      end
      if action == "IGNORE" then
        env.log("INFO", ("Ignoring response (%s) as the error handler says"):format(describe()))
        return nil
      end
      if action == "FAIL" then
        error({ message = env.mask(describe()), failure_type = resolution.failure_type or "system_error",
                status = resp and resp.status }, 0)
      end
      -- RETRY or RATE_LIMITED
      attempt = attempt + 1
      if attempt > max then
        error({ message = env.mask(("%s (giving up after %d retries)"):format(describe(), max)),
                failure_type = resolution.failure_type or "transient_error", status = resp and resp.status }, 0)
      end
      local wait = resp and handler.backoff(resp, attempt, fctx) or nil
      if wait == nil then wait = retry_after(resp) end
      if wait == nil then wait = 2 ^ (attempt - 1) end
      waited = waited + wait
      if waited > 600 then
        error({ message = env.mask(("%s (giving up: retries would wait more than 10 minutes)"):format(describe())),
                failure_type = "transient_error", status = resp and resp.status }, 0)
      end
      env.log("INFO", ("%s; retry %d/%d in %.1f s"):format(describe(), attempt, max, wait))
      if wait > 0 then env.sleep(wait) end
    end
  end
  return self
end

return M
