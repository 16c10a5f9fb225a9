-- Pagination: NoPagination, DefaultPaginator and its strategies
-- (PageIncrement, OffsetIncrement, CursorPagination) with the CDK's stop rules.
--
-- A paginator (one per partition read: p = paginator.new()):
--   p:first_token()                       token for the first request (usually nil)
--   p:next_token(page) -> token | nil     page = { response, headers, records,
--                                         count (before filtering), last_record }
--   p:inject(opts, token, ctx)            page size and token into the request
--   p:path(token) -> url | nil            RequestPath: the token is the next URL
local interp = require "airbyte.declarative.interpolation"
local manifest = require "airbyte.declarative.manifest"
local ro = require "airbyte.declarative.request_options"

local M = {}

local function int_of(v, path, what)
  local n = math.tointeger(tonumber(v))
  if n == nil then manifest.config_error(("%s.%s must be an integer, not %s"):format(path, what, interp.repr(v))) end
  return n
end

-- page_size: an integer or a template (OffsetIncrement may read `response`)
local function page_size_of(node, path, F)
  local ps = node.page_size
  if ps == nil or ps == interp.NONE then return nil end
  if type(ps) == "number" then return function() return math.tointeger(ps) or ps end, true end
  local t = interp.compile(tostring(ps), path .. ".page_size")
  return function(ctx)
    local v = t:eval(ctx)
    if v == nil then return nil end
    return int_of(v, path, "page_size")
  end, t.plain
end

function M.NoPagination(node, path)
  return {
    new = function()
      return {
        first_token = function() return nil end,
        next_token = function() return nil end,
        inject = function() end,
        path = function() return nil end,
      }
    end,
  }
end

function M.PageIncrement(node, path, F)
  manifest.fields(node, "PageIncrement", path, "page_size start_from_page inject_on_first_request")
  local page_size = page_size_of(node, path, F)
  local start = node.start_from_page and int_of(node.start_from_page, path, "start_from_page") or 0
  return {
    has_page_size = page_size ~= nil,
    page_size = page_size,
    new = function(ctx)
      local size = page_size and page_size(ctx)
      local page = start
      return {
        first_token = function()
          if node.inject_on_first_request then return start end
          return nil
        end,
        next_token = function(pg)
          if (size and pg.count < size) or pg.count == 0 then return nil end
          page = page + 1
          return page
        end,
        size = size,
      }
    end,
  }
end

function M.OffsetIncrement(node, path, F)
  manifest.fields(node, "OffsetIncrement", path, "page_size inject_on_first_request")
  local page_size = page_size_of(node, path, F)
  return {
    has_page_size = page_size ~= nil,
    page_size = page_size,
    new = function(ctx)
      local offset = 0
      local st = { size = page_size and page_size(ctx) }
      st.first_token = function()
        if node.inject_on_first_request then return 0 end
        return nil
      end
      st.next_token = function(pg)
        local size = page_size and page_size(pg.ctx)
        if (size and pg.count < size) or pg.count == 0 then return nil end
        offset = offset + pg.count
        return offset
      end
      return st
    end,
  }
end

function M.CursorPagination(node, path, F)
  manifest.fields(node, "CursorPagination", path, "cursor_value stop_condition page_size")
  if node.cursor_value == nil then manifest.config_error(path .. ".cursor_value is required") end
  local cursor = interp.compile(tostring(node.cursor_value), path .. ".cursor_value")
  local stop = node.stop_condition and interp.compile(tostring(node.stop_condition), path .. ".stop_condition")
  local page_size = page_size_of(node, path, F)
  return {
    has_page_size = page_size ~= nil,
    page_size = page_size,
    new = function(ctx)
      return {
        size = page_size and page_size(ctx),
        first_token = function() return nil end,
        next_token = function(pg)
          local c = pg.ctx
          if stop and interp.truthy(stop:eval(c)) then return nil end
          local token = cursor:eval(c)
          if not interp.truthy(token) then return nil end
          return token
        end,
      }
    end,
  }
end

function M.DefaultPaginator(node, path, F)
  manifest.fields(node, "DefaultPaginator", path, "pagination_strategy page_token_option page_size_option")
  if type(node.pagination_strategy) ~= "table" then
    manifest.config_error(path .. ".pagination_strategy is required")
  end
  local strategy = F.build(node.pagination_strategy, path .. ".pagination_strategy", "pagination_strategy")
  local token_opt = node.page_token_option and ro.build(node.page_token_option, path .. ".page_token_option")
  local size_opt = node.page_size_option and ro.build(node.page_size_option, path .. ".page_size_option")
  if size_opt and not strategy.has_page_size then
    manifest.config_error(path .. ".page_size_option needs a pagination strategy with a page_size")
  end
  return {
    new = function(ctx)
      local st = strategy.new(ctx)
      return {
        first_token = st.first_token,
        next_token = st.next_token,
        inject = function(opts, token, c)
          if size_opt and st.size then size_opt:inject(opts, st.size, c, path .. ".page_size_option") end
          if token ~= nil and token_opt and not token_opt.path_token then
            token_opt:inject(opts, token, c, path .. ".page_token_option")
          end
        end,
        path = function(token)
          if token ~= nil and token_opt and token_opt.path_token then return interp.str(token) end
          return nil
        end,
      }
    end,
  }
end

return M
