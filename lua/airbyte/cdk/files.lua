-- airbyte.cdk.files: what a destination needs to write files durably:
-- ids (uuid4), fsync, mkdir_p and output files that are published whole
-- (overwrite) or appended to, committed before a STATE is echoed.
local options = require "airbyte.options"
local errors = require "airbyte.cdk.errors"
local host = require "airbyte.cdk.host"

local M = {}

local format, match, sub = string.format, string.match, string.sub
local tostring, setmetatable, pcall = tostring, setmetatable, pcall

local BLOCK = 1 << 18          -- write buffer size

-- Ids come from the runtime's one generator (runtime/src/ids.c).
-- tmp_id() -> 8 random hex digits, for names of temporary files.
function M.tmp_id()
  return sub(host.core().uuid4(), 1, 8)
end

-- cdk.uuid4() -> a random (version 4) UUID string.
function M.uuid4()
  return host.core().uuid4()
end

-- cdk.fsync(path): the file (or directory) reaches the disk; raises on
-- failure.
function M.fsync(path)
  local ok, err = host.core().fsync(path)
  if not ok then errors.error(err) end
end

-- cdk.mkdir_p(path): creates the directory and its parents; raises a
-- config error when it cannot (the path comes from the config).
function M.mkdir_p(path)
  local ok, err = host.core().mkdir_p(path)
  if not ok then errors.config_error(err) end
end

local Output = {}
Output.__index = Output

-- cdk.output_file(path, { mode = "overwrite" | "append", header = text })
-- -> a file written with the protocol's guarantees:
--   overwrite: written to _airbyte_tmp_<random>_<name> beside path; finish()
--     renames it over path, so readers see the old file or the new one,
--     never a partial one; abort() removes it and the old file stays.
--   append: appended to path (header only when the file is empty; a last
--     line left unterminated by a crash is terminated first).
--   out:write(...)  like file:write
--   out:commit()    flush + fsync what was written (call before echoing a state)
--   out:finish()    commit; overwrite: publish (rename + fsync the directory);
--                   later writes append to the published file
--   out:abort()     close; overwrite: remove the temporary file
local OUTPUT_FILE_OPTIONS = options.allow{ "mode", "header" }
function M.output_file(path, opts)
  opts = options.check(opts, OUTPUT_FILE_OPTIONS, "cdk.output_file")
  local dir, base = match(path, "^(.*)/([^/]*)$")
  if not dir then dir, base = ".", path end
  if dir == "" then dir = "/" end
  local self = setmetatable({ path = path, dir = dir, mode = opts.mode or "append",
                              header = opts.header, dirty = false }, Output)
  if self.mode == "overwrite" then
    self.tmp = format("%s/_airbyte_tmp_%s_%s", dir, M.tmp_id(), base)
    local f, err = io.open(self.tmp, "wb")
    if not f then errors.error("cannot create " .. self.tmp .. ": " .. tostring(err)) end
    self.f = f
    if self.header then f:write(self.header); self.dirty = true end
  else
    self:open_append()
  end
  self.f:setvbuf("full", BLOCK)
  return self
end

function Output:open_append()
  local f, err = io.open(self.path, "a+b")
  if not f then errors.error("cannot open " .. self.path .. ": " .. tostring(err)) end
  local size = f:seek("end")
  if size == 0 then
    if self.header then f:write(self.header); self.dirty = true end
  else
    f:seek("set", size - 1)
    local last = f:read(1)
    f:seek("end")
    if last ~= "\n" then f:write("\n"); self.dirty = true end
  end
  self.f = f
end

function Output:write(...)
  local f = self.f
  if not f then
    if self.aborted then errors.error("write to an aborted file: " .. self.path) end
    self:open_append()
    f = self.f
    f:setvbuf("full", BLOCK)
  end
  local ok, err = f:write(...)
  if not ok then errors.error("cannot write " .. (self.tmp or self.path) .. ": " .. tostring(err)) end
  self.dirty = true
end

function Output:commit()
  if not self.dirty or not self.f then return end
  local ok, err = self.f:flush()
  if not ok then errors.error("cannot write " .. (self.tmp or self.path) .. ": " .. tostring(err)) end
  M.fsync(self.tmp or self.path)
  self.dirty = false
end

function Output:finish()
  if not self.f then return end
  self.dirty = true          -- a new file is synced even when empty
  self:commit()
  self.f:close()
  self.f = nil
  if self.tmp then
    local ok, err = os.rename(self.tmp, self.path)
    if not ok then errors.error("cannot rename " .. self.tmp .. " to " .. self.path .. ": " .. tostring(err)) end
    self.tmp = nil
    self.mode = "append"
    M.fsync(self.dir)         -- the rename itself survives a crash
  end
end

function Output:abort()
  if self.f then pcall(self.f.close, self.f) end
  self.f = nil
  if self.tmp then os.remove(self.tmp); self.tmp = nil end
  self.aborted = true
end


return M
