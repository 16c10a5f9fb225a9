-- Secrets (PyAirbyte's airbyte/secrets): the face, one API over lookup
-- (secret_sources.lua), references in configs (secret_refs.lua) and masking
-- (secret_mask.lua), which keeps secret values out of every text we print.
--
--   local secrets = require "airbyte.secrets"
--   local key = secrets.get_secret("GITHUB_TOKEN")       -- env, .env, prompt
--   local key = secrets.get_secret("X", { default = "dummy", allow_prompt = false })
--   secrets.hydrate({ token = "secret_reference::GITHUB_TOKEN" })
--   secrets.mask("token is ghp_...")  -> "token is ****"
--
-- Secret values live in the runtime's masker, which errors.mask (and so
-- every error text and progress line) and the process layer's connector
-- logs use as well.
local dotenv = require "airbyte.dotenv"
local spec_secrets = require "airbyte.spec_secrets"
local sources = require "airbyte.secret_sources"
local refs = require "airbyte.secret_refs"
local mask = require "airbyte.secret_mask"

local M = {}

-- secret_sources: looking secrets up
M.SecretSourceEnum = sources.SecretSourceEnum
M.REFERENCE_PREFIX = sources.REFERENCE_PREFIX
M.is_interactive = sources.is_interactive
M.register_secret_manager = sources.register_secret_manager
M.disable_secret_source = sources.disable_secret_source
M.enable_secret_source = sources.enable_secret_source
M.try_get_secret = sources.try_get_secret
M.get_secret = sources.get_secret
M.is_secret_available = sources.is_secret_available

-- secret_refs: references in configs
M.CLI_PREFIX = refs.CLI_PREFIX
M.resolve_references = refs.resolve_references
M.hydrate = refs.hydrate
M.secret_values = refs.secret_values

-- secret_mask: the values to mask
M.MIN_LENGTH = mask.MIN_LENGTH
M.register = mask.register
M.values = mask.values
M.clear = mask.clear
M.mask = mask.mask

-- .env files: parsed by airbyte.dotenv.
M.parse_dotenv = dotenv.parse
M.dotenv_path = dotenv.path

-- spec_secret_values(connection_specification, config): airbyte.spec_secrets.
M.spec_secret_values = spec_secrets.values

return M
