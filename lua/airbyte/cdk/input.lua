-- airbyte.cdk.input: the input a destination's write() gets: stdin framed
-- into lines, each classified by the C scanner; RECORDs of configured
-- streams and TRACEs handed out, STATEs committed (the commit hooks) and
-- echoed with destinationStats in the order received, other lines skipped.
-- The emit table write() gets is airbyte.cdk.destination_emit's.
local ajson = require "airbyte.json"
local json = require "airbyte.cdk.json"
local host = require "airbyte.cdk.host"
local lines = require "airbyte.cdk.lines"
local counter = require "airbyte.cdk.counter"
local destination_emit = require "airbyte.cdk.destination_emit"

local M = {}

local concat, sort = table.concat, table.sort
local find, format, sub = string.find, string.format, string.sub
local type, pairs, ipairs, next, error, setmetatable, pcall, rawget, rawset =
  type, pairs, ipairs, next, error, setmetatable, pcall, rawget, rawset

local NULL, obj = json.null, json.obj
local stream_key = counter.stream_key

M.BLOCK = 1 << 18              -- stdin read size
local BLOCK = M.BLOCK
local MAX_SKIP_LOGS = 10       -- non-protocol lines logged one by one

-- airbyte.process's classifiers, set when the first input is made.
local parse_line, parse_parts

-- Lines from a source of chunks (next_chunk() -> bytes | nil at the end):
-- splitting blocks is about twice as fast as io.lines, which copies a line
-- byte by byte. A line longer than a chunk is gathered in pieces.
local function chunk_lines(next_chunk)
  local buf, pos = "", 1
  return function()
    local e = find(buf, "\n", pos, true)
    if e then
      local line = sub(buf, pos, e - 1)
      pos = e + 1
      return line
    end
    local parts = { sub(buf, pos) }
    buf, pos = "", 1
    while true do
      local blk = next_chunk()
      if not blk then
        local line = concat(parts)
        if line == "" then return nil end
        return line                                 -- last line, no newline
      end
      e = find(blk, "\n", 1, true)
      if e then
        parts[#parts + 1] = sub(blk, 1, e - 1)
        buf, pos = blk, e + 1
        return concat(parts)
      end
      parts[#parts + 1] = blk
    end
  end
end

-- stdin in chunks that come back as soon as bytes are there: core.read_stdin
-- makes one read(2) (io.read(n) would wait for n bytes, holding back the
-- echo of a STATE while the source is quiet).
local function stdin_chunks()
  local read = host.core().read_stdin
  return function() return read(BLOCK) end
end

-- Records: the record table resolves data and any other field from the C
-- message on first use, pairs() resolves them all. What they come from is
-- kept on the side, so the tables hold only protocol fields.
-- The message is kept in the record under a private key (a weak table
-- would make every record an ephemeron the collector must revisit).
local ORIGIN = setmetatable({}, { __tostring = function() return "cdk.origin" end })

local function resolve_record(rec)
  local m = rawget(rec, ORIGIN)
  if not m then return end                          -- resolved already
  rawset(rec, ORIGIN, nil)
  local full = m:decode().record
  for k, v in pairs(full) do
    if rawget(rec, k) == nil then rawset(rec, k, v) end
  end
end

-- A record table resolves data and its other fields from the C message it
-- came from (kept under ORIGIN), on first use.
local RecordMT = {}
function RecordMT.__index(rec, k)
  if type(k) ~= "string" then return nil end
  local m = rawget(rec, ORIGIN)
  if not m then return nil end
  if k == "data" then
    local d = m.data
    rawset(rec, "data", d)
    return d
  end
  resolve_record(rec)
  return rawget(rec, k)
end
function RecordMT.__pairs(rec)
  resolve_record(rec)
  return next, rec, nil
end

local Input = {}
Input.__index = Input
Input.__call = function(self) return self:next() end

local function configured_streams(catalog)
  local streams, names = {}, {}
  for _, cs in ipairs(type(catalog) == "table" and catalog.streams or {}) do
    local s = type(cs) == "table" and cs.stream
    if type(s) == "table" and type(s.name) == "string" then
      if not streams[s.name] then names[#names + 1] = s.name end
      local ns = s.namespace
      if ns == NULL then ns = nil end
      streams[s.name] = {
        name = s.name, namespace = ns, stream = s, configured = cs,
        sync_mode = cs.sync_mode ~= NULL and cs.sync_mode or "full_refresh",
        destination_sync_mode = cs.destination_sync_mode ~= NULL and cs.destination_sync_mode or "append",
        primary_key = cs.primary_key ~= NULL and cs.primary_key or nil,
        cursor_field = cs.cursor_field ~= NULL and cs.cursor_field or nil,
      }
    end
  end
  return streams, names
end

function M.new(given, catalog, out)
  local process = host.process()
  parse_line, parse_parts = process.parse, process.parse_parts
  local streams, names = configured_streams(catalog)
  return setmetatable({
    given_lines = given, read_line = nil, out = out,
    streams = streams, stream_names = names, statuses = {},
    counter = counter.new(), last_key = nil,
    commit_hooks = {}, abort_hooks = {},
    skipped = 0, ignored = {}, states = 0, eof = false,
  }, Input)
end

function Input:log(level, message)
  self.out:write(json.encode(obj("type", "LOG", "log", obj("level", level, "message", message))), "\n")
end

function Input:on_commit(fn) self.commit_hooks[#self.commit_hooks + 1] = fn end
function Input:on_abort(fn) self.abort_hooks[#self.abort_hooks + 1] = fn end

-- The last n records handed out were not written (default 1).
function Input:reject(n)
  if self.last_key then self.counter:reject_key(self.last_key, n or 1) end
end

function Input:status(name, namespace)
  return self.statuses[stream_key(name, namespace)] or
    (namespace == nil and self.statuses[name]) or nil
end

-- Raw chunks of stdin for a destination that frames lines itself.
function Input:blocks()
  if self.read_line then error("input:blocks() after messages were read", 2) end
  self.read_line = function() return nil end
  local given = self.given_lines
  if given then
    return function()
      local line = given()
      return line and line .. "\n"
    end
  end
  return stdin_chunks()
end

function Input:checkpoint(line)
  local ok, message = pcall(ajson.decode, line)
  if not ok then return end    -- cannot happen: the C scanner validated it
  for _, fn in ipairs(self.commit_hooks) do fn(message.state, message) end
  local n, rejected = self.counter:take(message.state)
  local out = self.out
  out:write(lines.with_destination_stats(line, message, n, rejected), "\n")
  out:flush()
  self.states = self.states + 1
end

function Input:skip(line, why)
  self.skipped = self.skipped + 1
  if self.skipped <= MAX_SKIP_LOGS then
    if #line > 200 then line = sub(line, 1, 200) .. "..." end
    self:log("WARN", format("skipped a line that is not an Airbyte message (%s): %s", why or "?", line))
  end
end

-- next() -> msg, line for the next RECORD of a configured stream or TRACE;
-- nil at the end of stdin. STATEs are committed and echoed on the way.
-- The line source: given lines (tests), else stdin in chunks.
function Input:reader()
  local read_line = self.read_line
  if not read_line then
    read_line = self.given_lines or chunk_lines(stdin_chunks())
    self.read_line = read_line
  end
  return read_line
end

-- The next line, nil (and eof set) at the end of the input.
function Input:line()
  local line = self.read_line()
  if line == nil then self.eof = true end
  return line
end

-- A RECORD of stream name: true when the stream is configured (then it
-- counts for the next state), else false (counted as ignored).
function Input:take(name, ns)
  if not self.streams[name] then
    self.ignored[name] = (self.ignored[name] or 0) + 1
    return false
  end
  local key = ns and (name .. "\0" .. ns) or name
  self.counter:add_key(key, 1)
  self.last_key = key
  return true
end

-- A line not handed out: a STATE is committed and echoed, a line that is
-- not a message (type nil) logged; LOG, CONTROL, SPEC, ...: nothing for a
-- destination to do.
function Input:aside(t, line, why)
  if t == "STATE" then
    self:checkpoint(line)
  elseif t == nil and find(line, "%S") then
    self:skip(line, why)
  end
end

function Input:next()
  self:reader()
  local parse = parse_line
  while true do
    local line = self:line()
    if line == nil then return nil end
    local m, why = parse(line)
    local t = m and m.type
    if t == "RECORD" then
      local name, ns = m.stream, m.namespace
      if self:take(name, ns) then
        local rec = setmetatable({ stream = name, namespace = ns, emitted_at = m.emitted_at, [ORIGIN] = m },
                                 RecordMT)
        -- data_json: the bytes the scanner found, no second pass over the line
        return { type = "RECORD", record = rec, data_json = m.data_json }, line
      end
    elseif t == "TRACE" then
      return self:trace(line), line
    else
      self:aside(t, line, why)
    end
  end
end

-- A TRACE line: decoded, and a stream status noted (input:status()).
function Input:trace(line)
  local msg = ajson.decode(line)
  local tr = msg.trace
  local ss = type(tr) == "table" and tr.type == "STREAM_STATUS" and tr.stream_status
  if type(ss) == "table" and type(ss.stream_descriptor) == "table" and
     type(ss.stream_descriptor.name) == "string" then
    self.statuses[stream_key(ss.stream_descriptor.name, ss.stream_descriptor.namespace)] = ss.status
  end
  self.last_key = nil
  return msg
end

-- The fast path for destinations that write records as they came:
-- returns true, stream, namespace, emitted_at, data_json for a record of a
-- configured stream; false, message for a TRACE; nil at the end. STATE
-- lines are checkpointed as in next(); other lines as well.
function Input:next_raw()
  self:reader()
  local parts = parse_parts
  while true do
    local line = self:line()
    if line == nil then return nil end
    local t, name, ns, at, data = parts(line)
    if t == "RECORD" then
      if self:take(name, ns) then return true, name, ns, at, data end
    elseif t == "TRACE" then
      return false, self:trace(line)
    else
      self:aside(t, line, name)
    end
  end
end

function Input:summary()
  if self.skipped > MAX_SKIP_LOGS then
    self:log("WARN", format("skipped %d lines that were not Airbyte messages", self.skipped))
  end
  local names = {}
  for name in pairs(self.ignored) do names[#names + 1] = name end
  sort(names)
  for _, name in ipairs(names) do
    self:log("WARN", format("ignored %d records of stream '%s': it is not in the configured catalog",
      self.ignored[name], name))
  end
end

-- emit(out): the emit table handed to write(), for callers of this module.
M.emit = destination_emit.new

return M
