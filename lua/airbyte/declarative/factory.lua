-- Builds components from resolved manifest nodes by their `type`. Unknown
-- types, types luabyte does not implement and custom Python components are
-- errors naming the component's path.
--
--   local F = M.new(env, base_dir)      env: requester.client(...)
--   F.build(node, path, role, ...) -> component
--   F.stream(node, path) -> stream
local manifest = require "airbyte.declarative.manifest"

local M = {}

local BUILDERS = {}
for _, mod in ipairs({ "records", "paginators", "auth", "error_handler", "requester", "routers", "cursors",
                       "stream", "schema_loaders", "decoders" }) do
  for name, fn in pairs(require("airbyte.declarative." .. mod)) do
    if type(fn) == "function" and name:match("^%u") then BUILDERS[name] = fn end
  end
end
M.supported_types = {}
for name in pairs(BUILDERS) do M.supported_types[#M.supported_types + 1] = name end
table.sort(M.supported_types)

-- A component that needs the connector's components.py.
local function custom_error(node, path)
  local err = {
    message = ("custom Python components are not supported: %s%s at %s needs the connector's components.py")
      :format(node.type, node.class_name and (" '" .. tostring(node.class_name) .. "'") or "", path),
    failure_type = "config_error", custom_component = true,
  }
  error(err, 0)
end

function M.new(env, base_dir)
  local F = { env = env, base_dir = base_dir }
  function F.build(node, path, role, ...)
    if type(node) ~= "table" then
      manifest.config_error(("%s: expected a component (mapping), got %s"):format(path, tostring(node)))
    end
    local t = node.type
    if t == nil then
      if node.class_name then custom_error({ type = "a custom component", class_name = node.class_name }, path) end
      manifest.config_error(("%s: the %s has no type"):format(path, role or "component"))
    end
    if type(t) == "string" and t:match("^Custom") then custom_error(node, path) end
    local b = BUILDERS[t]
    if not b then
      if manifest.known_type(t) then
        manifest.config_error(("%s: component type '%s' is not supported by luabyte"):format(path, t))
      end
      manifest.config_error(("%s: unknown component type '%s'"):format(path, tostring(t)))
    end
    return b(node, path, F, ...)
  end
  function F.stream(node, path)
    return F.build(node, path, "stream")
  end
  return F
end

return M
