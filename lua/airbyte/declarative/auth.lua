-- Authenticators: NoAuth, ApiKeyAuthenticator, BearerAuthenticator,
-- BasicHttpAuthenticator, OAuthAuthenticator (refresh-token grant, token in
-- memory, rotated refresh tokens written back to the config and announced
-- with a CONTROL message as the CDK does) and SelectiveAuthenticator.
--
-- An authenticator: auth.apply(opts, ctx) adds its header or parameter to a
-- request's options (request_options.lua); secrets(): values to mask.
local json = require "airbyte.json"
local interp = require "airbyte.declarative.interpolation"
local manifest = require "airbyte.declarative.manifest"
local ro = require "airbyte.declarative.request_options"
local dt = require "airbyte.declarative.datetime"

local M = {}

local function token_of(tpl, ctx)
  local v = tpl:eval(ctx)
  if v == nil or v == interp.NONE then return "" end
  return interp.str(v)
end

function M.NoAuth(node, path)
  return { apply = function() end, secrets = function() return {} end }
end

local function header_auth(name, value_fn)
  return function(opts, ctx) ro.put(opts, "headers", name, value_fn(ctx), "the authenticator") end
end

function M.ApiKeyAuthenticator(node, path, F)
  manifest.fields(node, "ApiKeyAuthenticator", path, "api_token header inject_into")
  local tpl = interp.compile(tostring(node.api_token or ""), path .. ".api_token")
  local opt
  if type(node.inject_into) == "table" then
    opt = ro.build(node.inject_into, path .. ".inject_into")
  elseif node.header then
    opt = ro.build({ inject_into = "header", field_name = node.header }, path .. ".header")
  else
    manifest.config_error(path .. " needs inject_into (or header)")
  end
  return {
    apply = function(opts, ctx) opt:inject(opts, token_of(tpl, ctx), ctx, "the authenticator") end,
    secrets = function(ctx) return { token_of(tpl, ctx) } end,
  }
end

function M.BearerAuthenticator(node, path)
  manifest.fields(node, "BearerAuthenticator", path, "api_token")
  local tpl = interp.compile(tostring(node.api_token or ""), path .. ".api_token")
  return {
    apply = header_auth("Authorization", function(ctx) return "Bearer " .. token_of(tpl, ctx) end),
    secrets = function(ctx) return { token_of(tpl, ctx) } end,
  }
end

function M.BasicHttpAuthenticator(node, path)
  manifest.fields(node, "BasicHttpAuthenticator", path, "username password")
  local user = interp.compile(tostring(node.username or ""), path .. ".username")
  local pass = interp.compile(tostring(node.password or ""), path .. ".password")
  local function value(ctx)
    return "Basic " .. interp.base64encode(token_of(user, ctx) .. ":" .. token_of(pass, ctx))
  end
  return {
    apply = header_auth("Authorization", value),
    secrets = function(ctx) return { token_of(pass, ctx), value(ctx):sub(7) } end,
  }
end

function M.SelectiveAuthenticator(node, path, F)
  manifest.fields(node, "SelectiveAuthenticator", path, "authenticator_selection_path authenticators")
  local sel = node.authenticator_selection_path
  local auths = {}
  for name, sub in pairs(node.authenticators or {}) do
    auths[name] = F.build(sub, path .. ".authenticators." .. name, "authenticator")
  end
  local function pick(ctx)
    local v = ctx.config
    for _, k in ipairs(sel or {}) do v = type(v) == "table" and v[k] or nil end
    local a = auths[v]
    if not a then
      manifest.config_error(("%s: no authenticator for '%s' (config path %s)"):format(path, interp.str(v),
        table.concat(sel or {}, ".")))
    end
    return a
  end
  return {
    apply = function(opts, ctx) return pick(ctx).apply(opts, ctx) end,
    secrets = function(ctx) return pick(ctx).secrets(ctx) end,
  }
end

-- OAuth ------------------------------------------------------------------------

local function get_path(t, p)
  for _, k in ipairs(p) do
    if type(t) ~= "table" then return nil end
    t = t[k]
  end
  return t
end

local function set_path(t, p, v)
  for i = 1, #p - 1 do
    if type(t[p[i]]) ~= "table" then t[p[i]] = {} end
    t = t[p[i]]
  end
  t[p[#p]] = v
end

function M.OAuthAuthenticator(node, path, F)
  manifest.fields(node, "OAuthAuthenticator", path,
    "access_token_name access_token_value client_id client_id_name client_secret client_secret_name "
    .. "expires_in_name grant_type grant_type_name refresh_request_body refresh_request_headers refresh_token "
    .. "refresh_token_name refresh_token_updater scopes send_refresh_request_as_query_params token_expiry_date "
    .. "token_expiry_date_format token_refresh_endpoint refresh_token_error_status_codes "
    .. "refresh_token_error_key refresh_token_error_values")
  local function t(field, default)
    local v = node[field]
    if v == nil or v == interp.NONE then v = default end
    if v == nil then return nil end
    return interp.compile(tostring(v), path .. "." .. field)
  end
  local endpoint = t("token_refresh_endpoint")
  local client_id, client_secret = t("client_id", ""), t("client_secret", "")
  local refresh_token = t("refresh_token")
  local grant_type = t("grant_type", "refresh_token")
  local access_value = t("access_token_value")
  local names = {
    access = node.access_token_name or "access_token",
    expires = node.expires_in_name or "expires_in",
    refresh = node.refresh_token_name or "refresh_token",
    client_id = node.client_id_name or "client_id",
    client_secret = node.client_secret_name or "client_secret",
    grant = node.grant_type_name or "grant_type",
  }
  local updater = type(node.refresh_token_updater) == "table" and node.refresh_token_updater or nil
  local paths = updater and {
    refresh = updater.refresh_token_config_path or { "credentials", "refresh_token" },
    access = updater.access_token_config_path or { "credentials", "access_token" },
    expiry = updater.token_expiry_date_config_path or { "credentials", "token_expiry_date" },
  }
  local expiry_format = node.token_expiry_date_format
  local state = { token = nil, expires = nil }
  local env = F.env

  local function now() return dt.now(interp.clock) end

  local function current_refresh_token(ctx)
    if paths then
      local v = get_path(ctx.config, paths.refresh)
      if v ~= nil and v ~= interp.NONE and v ~= "" then return interp.str(v) end
    end
    return refresh_token and token_of(refresh_token, ctx) or ""
  end

  -- a token still valid in the config (refresh_token_updater) needs no refresh
  local function from_config(ctx)
    if not paths then return end
    local tok, exp = get_path(ctx.config, paths.access), get_path(ctx.config, paths.expiry)
    if type(tok) == "string" and tok ~= "" and type(exp) == "string" then
      local e = expiry_format and dt.parse(exp, expiry_format) or dt.parse_iso(exp)
      if e and now() < e then state.token, state.expires = tok, e end
    end
  end

  local function refresh(ctx)
    if not endpoint then manifest.config_error(path .. ".token_refresh_endpoint is required") end
    local body = {}
    local function add(k, v) if v ~= nil and v ~= "" then body[#body + 1] = { k, v } end end
    add(names.grant, token_of(grant_type, ctx))
    add(names.client_id, token_of(client_id, ctx))
    add(names.client_secret, token_of(client_secret, ctx))
    add(names.refresh, current_refresh_token(ctx))
    if type(node.scopes) == "table" then
      for _, s in ipairs(node.scopes) do add("scopes", interp.str(s)) end
    end
    for k, v in pairs(node.refresh_request_body or {}) do
      add(k, interp.str(interp.eval(tostring(v), ctx)))
    end
    local headers = {}
    for k, v in pairs(node.refresh_request_headers or {}) do headers[k] = interp.str(interp.eval(tostring(v), ctx)) end
    local parts = {}
    for i, kv in ipairs(body) do parts[i] = interp.quote(kv[1]) .. "=" .. interp.quote(kv[2]) end
    local form = table.concat(parts, "&")
    local url = token_of(endpoint, ctx)
    local req = { method = "POST", url = url, headers = headers }
    if node.send_refresh_request_as_query_params then
      req.url = url .. (url:find("?", 1, true) and "&" or "?") .. form
    else
      headers["Content-Type"] = "application/x-www-form-urlencoded"
      req.body = form
    end
    local resp = env.send(req, { secrets = { token_of(client_secret, ctx), current_refresh_token(ctx) } })
    local ok, data = pcall(json.decode, resp.body or "")
    if resp.status < 200 or resp.status >= 300 or not ok or type(data) ~= "table" then
      local msg = ("OAuth token refresh at %s failed: HTTP %d %s"):format(env.mask(req.url), resp.status,
        env.mask((resp.body or ""):sub(1, 300)))
      error({ message = msg, failure_type = (resp.status >= 400 and resp.status < 500) and "config_error"
              or "system_error" }, 0)
    end
    local tok = data[names.access]
    if type(tok) ~= "string" or tok == "" then
      error({ message = ("OAuth token refresh at %s: the response has no '%s'"):format(env.mask(req.url), names.access),
              failure_type = "system_error" }, 0)
    end
    env.add_secret(tok)
    local exp = data[names.expires]
    local expires
    if expiry_format and exp ~= nil then
      expires = dt.parse(interp.str(exp), expiry_format)
    elseif tonumber(exp) then
      expires = dt.add(now(), dt.new_duration(0, math.floor(tonumber(exp)), 0))
    end
    state.token, state.expires = tok, expires
    if paths then
      local new_refresh = data[names.refresh]
      if type(new_refresh) == "string" and new_refresh ~= "" then
        env.add_secret(new_refresh)
        set_path(ctx.config, paths.refresh, new_refresh)
      end
      set_path(ctx.config, paths.access, tok)
      if expires then
        set_path(ctx.config, paths.expiry, expiry_format and dt.format(expires, expiry_format) or expires:isoformat())
      end
      env.control_config(ctx.config)
    end
  end

  local checked_config = false
  local function token(ctx)
    if access_value then
      local v = token_of(access_value, ctx)
      if v ~= "" then return v end
    end
    if not checked_config then checked_config = true; from_config(ctx) end
    if state.token == nil or (state.expires and not (now() < state.expires)) then refresh(ctx) end
    return state.token
  end
  return {
    apply = function(opts, ctx) ro.put(opts, "headers", "Authorization", "Bearer " .. token(ctx), "the authenticator") end,
    secrets = function(ctx)
      return { token_of(client_secret, ctx), current_refresh_token(ctx), state.token }
    end,
  }
end

return M
