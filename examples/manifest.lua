-- A declarative (manifest-only) Airbyte source run natively, no Python, no
-- Docker: source-pokeapi's manifest.yaml read into the default SQLite cache.
--   build/luabyte examples/manifest.lua [MANIFEST] [POKEMON]
-- MANIFEST defaults to ../shared/fixtures/manifests/source-pokeapi/manifest.yaml.
-- To run it offline, point the manifest's host at a local server without
-- editing the file: LUABYTE_URL_REWRITE="https://pokeapi.co/=http://127.0.0.1:PORT/"
local ab = require "airbyte"

local manifest = arg and arg[1] or "../shared/fixtures/manifests/source-pokeapi/manifest.yaml"
local pokemon = arg and arg[2] or "ditto"

local source = ab.get_source("source-pokeapi", {
  source_manifest = manifest,                 -- or true: AIRBYTE_MANIFESTS_DIR/<name>/manifest.yaml
  config = { pokemon_name = pokemon },
})
print(("manifest version %s, streams: %s"):format(source.executor:get_installed_version(),
  table.concat(source:get_available_streams(), ", ")))
source:check()
source:select_all_streams()
local result = source:read()
for row in result["pokemon"]:rows() do
  print(("%s: id %s, height %s, weight %s"):format(row.name, tostring(row.id), tostring(row.height),
    tostring(row.weight)))
end
