-- airbyte.cdk.args: a connector's command line (spec, check, discover,
-- read, write and their file options), as the Airbyte protocol names them.
-- parse(argv, kind) -> opts | nil, why; USAGE is the text shown with why.
local M = {}

local format = string.format
local pairs, tostring = pairs, tostring

M.USAGE = [[
usage: <connector> spec
       <connector> check --config CONFIG
       <connector> discover --config CONFIG
       <connector> read --config CONFIG --catalog CATALOG [--state STATE]
       <connector> write --config CONFIG --catalog CATALOG
]]

local COMMAND_OPTIONS = {
  spec = {}, check = { config = true }, discover = { config = true },
  read = { config = true, catalog = true, state = false },
  write = { config = true, catalog = true },
}

local KIND_COMMANDS = {
  source = { spec = true, check = true, discover = true, read = true },
  destination = { spec = true, check = true, write = true },
}

local function parse_args(argv)
  local cmd = argv[1]
  local allowed = COMMAND_OPTIONS[cmd or ""]
  if not allowed then return nil, cmd and ("unknown command '" .. tostring(cmd) .. "'") or "no command" end
  local opts = { command = cmd }
  local i = 2
  while argv[i] ~= nil do
    local a = argv[i]
    if a == "--debug" then
      opts.debug = true
      i = i + 1
    else
      local name, value = a:match("^%-%-(%w+)=(.*)$")
      if not name then name = a:match("^%-%-(%w+)$"); value = argv[i + 1]; i = i + 1 end
      if not name or allowed[name] == nil then return nil, "unexpected argument '" .. tostring(a) .. "'" end
      if value == nil then return nil, "--" .. name .. " needs a file" end
      opts[name] = value
      i = i + 1
    end
  end
  for name, required in pairs(allowed) do
    if required and not opts[name] then return nil, cmd .. " needs --" .. name end
  end
  return opts
end

-- parse(argv, kind): the options of a command this kind of connector
-- ("source", "destination") supports.
function M.parse(argv, kind)
  local args, why = parse_args(argv or {})
  if args and not KIND_COMMANDS[kind][args.command] then
    return nil, format("a %s does not support '%s'", kind, args.command)
  end
  return args, why
end

return M
