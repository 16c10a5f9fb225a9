-- airbyte.cdk.emitter: the emit table a source's read() gets, which writes
-- one protocol message per stdout line: records (through the compiled
-- record encoder), states with sourceStats, stream statuses, logs, traces.
local json = require "airbyte.cdk.json"
local record_encoder = require "airbyte.cdk.record_encoder"
local clock = require "airbyte.cdk.clock"

local M = {}

local concat = table.concat
local type, ipairs, tostring, error, setmetatable = type, ipairs, tostring, error, setmetatable

local NULL, obj, escape = json.null, json.obj, json.escape
local now_ms = clock.now_ms

local function descriptor(name, namespace)
  return obj("name", name, "namespace", namespace)
end

local function trace(kind, payload_key, payload)
  return obj("type", "TRACE", "trace",
    obj("type", kind, "emitted_at", now_ms() + 0.0, payload_key, payload))
end

local Emitter = {}
Emitter.__index = Emitter

local Stream = {}
Stream.__index = Stream

local CLOCK_EVERY = 1024 -- records between clock reads

-- put(out, ...): out:write(...), or an error once the output is closed: a
-- source whose reader is gone (its host killed, `| head`) stops, instead
-- of making every record of its run for nobody.
local function put(out, ...)
  local ok, why = out:write(...)
  if ok == nil and why ~= nil then     -- as io's write says a failure
    error({ message = "the connector's output is closed (" .. tostring(why) .. "): its reader is gone",
            failure_type = "system_error" }, 0)
  end
  return ok
end
M.put = put

function M.new(out, catalog)
  local configured = {}
  for _, cs in ipairs(type(catalog) == "table" and catalog.streams or {}) do
    if type(cs) == "table" and type(cs.stream) == "table" and cs.stream.name then
      configured[cs.stream.name] = cs
    end
  end
  local self = setmetatable({ out = out, configured = configured, handles = {}, order = {},
                              ticks = 0 }, Emitter)
  self:refresh_clock()
  return self
end

function Emitter:write(msg)
  put(self.out, json.encode(msg), "\n")
end

function Emitter:refresh_clock()
  self.ms = now_ms()
  self.suffix = ',"emitted_at":' .. self.ms .. "}}\n"
  self.ticks = 0
end

function Emitter:log(level, message)
  self:write(obj("type", "LOG", "log", obj("level", level, "message", tostring(message))))
end

function Emitter:stream(name, opts)
  local h = self.handles[name]
  if h then return h end
  local cs = self.configured[name]
  if not cs then error("stream '" .. tostring(name) .. "' is not in the configured catalog", 2) end
  opts = opts or {}
  local namespace = opts.namespace or cs.stream.namespace
  if namespace == NULL then namespace = nil end
  local schema = opts.schema or cs.stream.json_schema
  local prefix = '{"type":"RECORD","record":{"stream":"' .. escape(name) .. '",'
  if namespace then prefix = prefix .. '"namespace":"' .. escape(namespace) .. '",' end
  local enc = record_encoder.compile(schema, opts.safe_strings)
  h = setmetatable({
    emitter = self, name = name, namespace = namespace, status = nil, count = 0,
    enc = enc, write_data = record_encoder.writer(enc), exact = opts.exact_fields and true or false,
    buf = { prefix .. '"data":' },
  }, Stream)
  self.handles[name] = h
  self.order[#self.order + 1] = h
  return h
end

function Emitter:record(name, data) return self:stream(name):record(data) end
function Emitter:state(name, stream_state) return self:stream(name):state(stream_state) end

function Stream:set_status(status)
  self.status = status
  self.emitter:write(trace("STREAM_STATUS", "stream_status",
    obj("stream_descriptor", descriptor(self.name, self.namespace), "status", status)))
end

function Stream:started()
  if self.status == nil then self:set_status("STARTED") end
end

-- First record: STARTED if the connector didn't say so, then RUNNING.
function Stream:running()
  if self.status == "COMPLETE" or self.status == "INCOMPLETE" then
    error("stream '" .. self.name .. "': record after its " .. self.status .. " status", 3)
  end
  self:started()
  self:set_status("RUNNING")
end

function Stream:record(data)
  if self.status ~= "RUNNING" then self:running() end
  local e = self.emitter
  local buf = self.buf
  local n = self.write_data(self.enc, data, buf, 1, self.exact, 0)
  local ticks = e.ticks + 1
  if ticks >= CLOCK_EVERY then e:refresh_clock() else e.ticks = ticks end
  n = n + 1
  buf[n] = e.suffix
  put(e.out, concat(buf, "", 1, n))
  self.count = self.count + 1
end

function Stream:state(stream_state)
  self:started()
  local count = self.count
  self.count = 0
  local e = self.emitter
  e:write(obj("type", "STATE", "state", obj(
    "type", "STREAM",
    "stream", obj("stream_descriptor", descriptor(self.name, self.namespace),
                    "stream_state", stream_state == nil and NULL or stream_state),
    "sourceStats", obj("recordCount", count + 0.0))))
end

function Stream:estimate(rows, bytes)
  self.emitter:write(trace("ESTIMATE", "estimate", obj("name", self.name, "type", "STREAM",
    "namespace", self.namespace, "row_estimate", rows, "byte_estimate", bytes)))
end

function Stream:complete()
  self:started()
  if self.status ~= "COMPLETE" and self.status ~= "INCOMPLETE" then self:set_status("COMPLETE") end
end

function Stream:incomplete()
  self:started()
  if self.status ~= "COMPLETE" and self.status ~= "INCOMPLETE" then self:set_status("INCOMPLETE") end
end

-- After read(): close what the connector left open.
function Emitter:finish(ok)
  for _, h in ipairs(self.order) do
    if ok then h:complete() else h:incomplete() end
  end
end

-- The emitter is used with '.' from read functions (emit.log(...)), so bind
-- the methods to the instance.
function M.bound(emitter)
  return {
    stream = function(name, opts) return emitter:stream(name, opts) end,
    record = function(name, data) return emitter:record(name, data) end,
    state = function(name, st) return emitter:state(name, st) end,
    log = function(level, msg) return emitter:log(level, msg) end,
    message = function(msg)
      if type(msg) == "string" then return put(emitter.out, msg, "\n") end
      return emitter:write(msg)
    end,
    now_ms = function() return emitter.ms end,
  }
end

-- trace(kind, payload_key, payload) -> a TRACE message emitted now.
M.trace = trace

-- write(e, msg): one message as a line on e.out (e needs only .out).
M.write = Emitter.write

return M
