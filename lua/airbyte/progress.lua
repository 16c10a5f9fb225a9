-- Progress of a read or a write on stderr: a live line on a terminal,
-- plain periodic lines otherwise (or with NO_LIVE_PROGRESS / CI set), and
-- always a final summary.
local core = require "airbyte.core"
local log = require "airbyte.log"
local class = require "airbyte.class"

local M = {}
local Tracker = class.new()

local PLAIN_EVERY_MS = 10000

local function live_allowed()
  if os.getenv("NO_LIVE_PROGRESS") or os.getenv("CI") then return false end
  return core.isatty(2)
end

-- new{job = "source-faker -> SQLiteCache", out = log.stream(), mask = fn}
function M.new(opts)
  local self = setmetatable({
    job = opts.job, out = opts.out or log.stream(), live = live_allowed(),
    started = core.now(), first_record = nil, last_plain = core.now(),
    records = 0, bytes = 0, streams = {}, mask = opts.mask or function(s) return s end,
    quiet = opts.quiet,
  }, Tracker)
  return self
end

local function rate(n, ms)
  if ms <= 0 then return 0 end
  return n / (ms / 1000)
end

local function stream_list(streams)
  local names = {}
  for name in pairs(streams) do names[#names + 1] = name end
  table.sort(names)
  local parts = {}
  for i, name in ipairs(names) do parts[i] = ("%s %d"):format(name, streams[name].records or 0) end
  return table.concat(parts, ", ")
end

-- Records dropped as invalid, from a pump's totals.invalid ({ [stream] =
-- { [reason] = n } }): the total and a text such as "users: 2 invalid_utf8,
-- 1 not_a_number" (0, nil when there are none).
-- The records the source printed broken, and those that failed the read's
-- own checks (validate: reasons "schema" and "rule"), apart.
local CHECKED = { schema = true, rule = true }
function M.split_invalid(invalid)
  local broken, checked = {}, {}
  for stream, reasons in pairs(invalid or {}) do
    for r, n in pairs(reasons) do
      local into = CHECKED[r] and checked or broken
      into[stream] = into[stream] or {}
      into[stream][r] = n
    end
  end
  return broken, checked
end

function M.invalid_summary(invalid)
  local names, total = {}, 0
  for name in pairs(invalid or {}) do names[#names + 1] = name end
  table.sort(names)
  local parts = {}
  for _, name in ipairs(names) do
    local reasons, bits = {}, {}
    for r in pairs(invalid[name]) do reasons[#reasons + 1] = r end
    table.sort(reasons)
    for _, r in ipairs(reasons) do
      total = total + invalid[name][r]
      bits[#bits + 1] = ("%d %s"):format(invalid[name][r], r)
    end
    parts[#parts + 1] = ("%s: %s"):format(name == "" and "(stream unknown)" or name, table.concat(bits, ", "))
  end
  if total == 0 then return 0, nil end
  return total, table.concat(parts, "; ")
end

function Tracker:text()
  local elapsed = core.now() - self.started
  return ("%s: %d records in %.1f s (%.0f records/s, %.2f MB/s) [%s]"):format(
    self.job, self.records, elapsed / 1000, rate(self.records, elapsed),
    rate(self.bytes, elapsed) / 1e6, stream_list(self.streams))
end

-- update(totals): totals = { records =, bytes =, streams = { name = { records = } } }
function Tracker:update(totals)
  self.records, self.bytes, self.streams = totals.records or 0, totals.bytes or 0, totals.streams or {}
  if self.quiet then return end
  local now = core.now()
  if self.live then
    self.out:write("\r\27[K", self.mask(self:text()))
    self.out:flush()
  elseif now - self.last_plain >= PLAIN_EVERY_MS then
    self.last_plain = now
    self.out:write(self.mask(self:text()), "\n")
  end
end

-- finish(totals, verb): the summary line, e.g. "Completed ... sync".
function Tracker:finish(totals, status)
  local invalid, why, failed, fwhy = 0, nil, 0, nil
  if totals then
    self.records, self.bytes, self.streams = totals.records or 0, totals.bytes or 0, totals.streams or {}
    local broken, checked = M.split_invalid(totals.invalid)
    invalid, why = M.invalid_summary(broken)
    failed, fwhy = M.invalid_summary(checked)
  end
  self.elapsed_ms = core.now() - self.started
  if self.quiet then return end
  if self.live then self.out:write("\r\27[K") end
  self.out:write(self.mask(("%s %s: %d records in %.2f s (%.0f records/s, %.2f MB/s)%s%s%s\n"):format(
    status or "Completed", self.job, self.records, self.elapsed_ms / 1000,
    rate(self.records, self.elapsed_ms), rate(self.bytes, self.elapsed_ms) / 1e6,
    next(self.streams) and (" [" .. stream_list(self.streams) .. "]") or "",
    invalid > 0 and ("; %d invalid records dropped (%s)"):format(invalid, why) or "",
    failed > 0 and ("; %d records failed their checks (%s)"):format(failed, fwhy) or "")))
  self.out:flush()
end

return M
