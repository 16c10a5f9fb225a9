-- luarocks make (from the clone) builds and installs require "airbyte"
-- (airbyte.so) and the luabyte command its built-in connectors run as.
-- Needs cmake and the Debian -dev packages listed in scripts/setup.sh.
rockspec_format = "3.0"
package = "luabyte"
version = "0.1.0-1"
source = { url = "git+file://." }
description = {
  summary = "Airbyte connectors run from Lua 5.4 (PyAirbyte without Python)",
  license = "MIT",
}
dependencies = { "lua == 5.4" }
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "RelWithDebInfo",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    -- luarocks deploys the rock's lib/ into the tree's lib/lua/5.4
    LB_LUA_CMOD_DIR = "lib",
    LB_INSTALL_LIBRARY = "OFF",
    LB_BUILD_TESTS = "OFF",
    LB_BUILD_EXAMPLES = "OFF",
  },
}
