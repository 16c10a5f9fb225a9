-- Partition routers: ListPartitionRouter, SubstreamPartitionRouter (the
-- parent stream read completely, one partition per parent record) and a
-- list of routers (their cartesian product).
--
--   router.partitions(ctx) -> list of partitions (mappings)
--   router.inject(opts, partition, ctx)      the routers' request options
--   router.parent_state() -> mapping | nil   (incremental_dependency parents)
local json = require "airbyte.json"
local interp = require "airbyte.declarative.interpolation"
local manifest = require "airbyte.declarative.manifest"
local ro = require "airbyte.declarative.request_options"
local records = require "airbyte.declarative.records"

local M = {}

local object = manifest.object

function M.ListPartitionRouter(node, path)
  manifest.fields(node, "ListPartitionRouter", path, "values cursor_field request_option")
  local field = interp.compile(tostring(node.cursor_field or ""), path .. ".cursor_field")
  local opt = node.request_option and ro.build(node.request_option, path .. ".request_option")
  local values = node.values
  return {
    partitions = function(ctx)
      local vals = values
      if type(vals) == "string" then vals = interp.eval(vals, ctx) end
      if type(vals) == "string" then
        local v = {}
        for s in vals:gmatch("[^,]+") do v[#v + 1] = s end
        vals = v
      end
      if type(vals) ~= "table" then
        manifest.config_error(("%s.values must be a list (or a template giving one), got %s")
          :format(path, interp.repr(vals)))
      end
      local key = field:render(ctx)
      local out = {}
      for i, v in ipairs(vals) do out[i] = object{ [key] = v } end
      return out
    end,
    inject = function(opts, partition, ctx)
      if opt then opt:inject(opts, partition[field:render(ctx)], ctx, path .. ".request_option") end
    end,
  }
end

local function dpath(record, keys, ctx)
  local rendered = {}
  for i, k in ipairs(keys) do rendered[i] = interp.str(interp.eval(tostring(k), ctx) or k) end
  return records.dpath(record, rendered)
end

function M.ParentStreamConfig(node, path, F)
  manifest.fields(node, "ParentStreamConfig", path,
    "stream parent_key partition_field request_option incremental_dependency extra_fields lazy_read_pointer")
  if type(node.stream) ~= "table" then manifest.config_error(path .. ".stream is required") end
  if node.incremental_dependency then
    manifest.config_error(path .. ".incremental_dependency is not supported by luabyte (parents are read in full)")
  end
  local stream = F.stream(node.stream, path .. ".stream")
  local key = type(node.parent_key) == "table" and node.parent_key or { node.parent_key }
  local pfield = interp.compile(tostring(node.partition_field or ""), path .. ".partition_field")
  local opt = node.request_option and ro.build(node.request_option, path .. ".request_option")
  local extra = node.extra_fields
  return {
    partitions = function(ctx)
      local out = {}
      local field = pfield:render(ctx)
      stream.read_records(ctx.config, function(record, slice)
        local v = dpath(record, key, ctx)
        if v ~= nil and v ~= json.null then
          local p = object{ [field] = v, parent_slice = object(slice and slice.partition or {}) }
          for _, ef in ipairs(extra or {}) do
            local keys = type(ef) == "table" and ef or { ef }
            p[keys[#keys]] = dpath(record, keys, ctx)
          end
          out[#out + 1] = p
        end
      end)
      return out
    end,
    inject = function(opts, partition, ctx)
      if opt then opt:inject(opts, partition[pfield:render(ctx)], ctx, path .. ".request_option") end
    end,
  }
end

function M.SubstreamPartitionRouter(node, path, F)
  manifest.fields(node, "SubstreamPartitionRouter", path, "parent_stream_configs")
  local parents = {}
  for i, c in ipairs(node.parent_stream_configs or {}) do
    parents[i] = F.build(c, ("%s.parent_stream_configs[%d]"):format(path, i - 1), "ParentStreamConfig")
  end
  if #parents == 0 then manifest.config_error(path .. ".parent_stream_configs is empty") end
  local owner = setmetatable({}, { __mode = "k" })   -- partition -> its parent config
  return {
    partitions = function(ctx)
      local out = {}
      for _, p in ipairs(parents) do
        for _, part in ipairs(p.partitions(ctx)) do
          out[#out + 1] = part
          owner[part] = p
        end
      end
      return out
    end,
    inject = function(opts, partition, ctx)
      local p = owner[partition] or parents[1]
      p.inject(opts, partition, ctx)
    end,
  }
end

-- Several routers: every combination of their partitions, merged.
function M.product(routers)
  if #routers == 1 then return routers[1] end
  local parts_of = setmetatable({}, { __mode = "k" })   -- merged partition -> its parts
  return {
    partitions = function(ctx)
      local combos = { { parts = {}, merged = object() } }
      for ri, r in ipairs(routers) do
        local nxt = {}
        for _, c in ipairs(combos) do
          for _, p in ipairs((r.partitions(ctx))) do
            local merged = object()
            for k, v in pairs(c.merged) do merged[k] = v end
            for k, v in pairs(p) do merged[k] = v end
            local parts = { table.unpack(c.parts) }
            parts[ri] = p
            nxt[#nxt + 1] = { parts = parts, merged = merged }
          end
        end
        combos = nxt
      end
      local out = {}
      for i, c in ipairs(combos) do
        out[i] = c.merged
        parts_of[c.merged] = c.parts
      end
      return out
    end,
    inject = function(opts, partition, ctx)
      local parts = parts_of[partition]
      for i, r in ipairs(routers) do
        if parts and parts[i] then r.inject(opts, parts[i], ctx) end
      end
    end,
  }
end

return M
