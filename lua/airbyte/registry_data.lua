-- The registry bundled with luabyte, in Airbyte's registry format
-- (ConnectorRegistryV0: { sources = {...}, destinations = {...} }, one
-- entry per connector as in oss_registry.json). It lists the connectors
-- shipped with luabyte (marked `luabyte = { builtin = true }`, an extra
-- field the format allows) and a set of well-known Airbyte connectors, so
-- that get_source("source-github") knows it is a PyPI package and
-- get_source("source-postgres") a Docker image without any network access.
--
-- Facts (definition ids, names, languages, PyPI packages) are Airbyte's;
-- the image tags are a snapshot and may lag behind the live registry:
-- AIRBYTE_LOCAL_REGISTRY=/path/to/oss_registry.json replaces this table.
-- Specs are included where luabyte can use them: the built-ins' specs come
-- from their modules (registry.lua fills them in on demand).
local function pypi(package)
  return { pypi = { enabled = true, packageName = package } }
end

local function docs(kind, slug)
  return ("https://docs.airbyte.com/integrations/%s/%s"):format(kind, slug)
end

local function source(t)
  t.documentationUrl = t.documentationUrl or docs("sources", t.dockerRepository:match("source%-(.*)$"))
  t.remoteRegistries = t.remoteRegistries or {}
  t.tags = t.tags or { "language:" .. t.language }
  t.tombstone, t.public, t.custom = false, true, false
  return t
end

local function destination(t)
  t.documentationUrl = t.documentationUrl or docs("destinations", t.dockerRepository:match("destination%-(.*)$"))
  t.remoteRegistries = t.remoteRegistries or {}
  t.tags = t.tags or { "language:" .. t.language }
  t.tombstone, t.public, t.custom = false, true, false
  return t
end

local BUILTIN = { builtin = true }

return {
  sources = {
    source {
      sourceDefinitionId = "dfd88b22-b603-4c3d-aad7-3701784586b1", name = "Sample Data (Faker)",
      dockerRepository = "airbyte/source-faker", dockerImageTag = "6.2.20",
      documentationUrl = docs("sources", "faker"),
      sourceType = "api", language = "python", releaseStage = "beta", supportLevel = "community",
      remoteRegistries = pypi("airbyte-source-faker"),
      suggestedStreams = { streams = { "users", "products", "purchases" } },
      luabyte = BUILTIN,
    },
    source {
      sourceDefinitionId = "ef69ef6e-aa7f-4af1-a01d-ef775033524e", name = "GitHub",
      dockerRepository = "airbyte/source-github", dockerImageTag = "3.0.0",
      sourceType = "api", language = "python", releaseStage = "generally_available", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-source-github"),
      suggestedStreams = { streams = { "branches", "comments", "issues", "organizations", "pull_requests",
                                       "repositories", "stargazers", "tags", "teams", "users" } },
    },
    source {
      sourceDefinitionId = "e094cb9a-26de-4645-8761-65c0c425d1de", name = "Stripe",
      dockerRepository = "airbyte/source-stripe", dockerImageTag = "5.2.0",
      sourceType = "api", language = "python", releaseStage = "generally_available", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-source-stripe"),
      suggestedStreams = { streams = { "customers", "invoices", "charges", "subscriptions", "refunds" } },
    },
    source {
      sourceDefinitionId = "36c891d9-4bd9-43ac-bad2-10e12756272c", name = "HubSpot",
      dockerRepository = "airbyte/source-hubspot", dockerImageTag = "6.0.1",
      sourceType = "api", language = "manifest-only", releaseStage = "generally_available",
      supportLevel = "certified",
      -- still named on PyPI, but no longer published there since the move to a manifest
      remoteRegistries = { pypi = { enabled = false, packageName = "airbyte-source-hubspot" } },
      tags = { "language:manifest-only", "cdk:low-code" },
      suggestedStreams = { streams = { "contacts", "companies", "deals" } },
    },
    source {
      sourceDefinitionId = "6371b14b-bc68-4236-bfbd-468e8df8e968", name = "PokeAPI",
      dockerRepository = "airbyte/source-pokeapi", dockerImageTag = "0.3.16",
      sourceType = "api", language = "manifest-only", releaseStage = "alpha", supportLevel = "community",
      tags = { "language:manifest-only", "cdk:low-code" },
    },
    source {
      sourceDefinitionId = "69589781-7828-43c5-9f63-8925b1c1ccc2", name = "S3",
      dockerRepository = "airbyte/source-s3", dockerImageTag = "4.4.0",
      sourceType = "file", language = "python", releaseStage = "generally_available", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-source-s3"),
    },
    source {
      sourceDefinitionId = "778daa7c-feaf-4db6-96f3-70fd645acc77", name = "File (CSV, JSON, Excel, Feather, Parquet)",
      dockerRepository = "airbyte/source-file", dockerImageTag = "0.5.13",
      sourceType = "file", language = "python", releaseStage = "generally_available", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-source-file"),
    },
    source {
      sourceDefinitionId = "71607ba1-c0ac-4799-8049-7f4b90dd50f7", name = "Google Sheets",
      dockerRepository = "airbyte/source-google-sheets", dockerImageTag = "0.9.4",
      sourceType = "file", language = "python", releaseStage = "generally_available", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-source-google-sheets"),
    },
    source {
      sourceDefinitionId = "b117307c-14b6-41aa-9422-947e34922962", name = "Salesforce",
      dockerRepository = "airbyte/source-salesforce", dockerImageTag = "2.6.2",
      sourceType = "api", language = "python", releaseStage = "generally_available", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-source-salesforce"),
    },
    source {
      sourceDefinitionId = "9da77001-af33-4bcd-be46-6252bf9342b9", name = "Shopify",
      dockerRepository = "airbyte/source-shopify", dockerImageTag = "2.5.12",
      sourceType = "api", language = "python", releaseStage = "generally_available", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-source-shopify"),
    },
    source {
      sourceDefinitionId = "68e63de2-bb83-4c7e-93fa-a8a9051e3993", name = "Jira",
      dockerRepository = "airbyte/source-jira", dockerImageTag = "3.4.4",
      sourceType = "api", language = "python", releaseStage = "generally_available", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-source-jira"),
    },
    source {
      sourceDefinitionId = "79c1aa37-dae3-42ae-b333-d1c105477715", name = "Zendesk Support",
      dockerRepository = "airbyte/source-zendesk-support", dockerImageTag = "4.4.2",
      sourceType = "api", language = "python", releaseStage = "generally_available", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-source-zendesk-support"),
    },
    source {
      sourceDefinitionId = "c2281cee-86f9-4a86-bb48-d23286b4c7bd", name = "Slack",
      dockerRepository = "airbyte/source-slack", dockerImageTag = "1.3.4",
      sourceType = "api", language = "python", releaseStage = "generally_available", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-source-slack"),
    },
    source {
      sourceDefinitionId = "3cc2eafd-84aa-4dca-93af-322d9dfeec1a", name = "Google Analytics 4 (GA4)",
      dockerRepository = "airbyte/source-google-analytics-data-api", dockerImageTag = "2.6.3",
      sourceType = "api", language = "python", releaseStage = "generally_available", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-source-google-analytics-data-api"),
    },
    source {
      sourceDefinitionId = "decd338e-5647-4c0b-adf4-da0e75f5a750", name = "Postgres",
      dockerRepository = "airbyte/source-postgres", dockerImageTag = "3.7.0",
      sourceType = "database", language = "java", releaseStage = "generally_available", supportLevel = "certified",
    },
    source {
      sourceDefinitionId = "435bb9a5-7887-4809-aa58-28c27df0d7ad", name = "MySQL",
      dockerRepository = "airbyte/source-mysql", dockerImageTag = "3.11.1",
      sourceType = "database", language = "java", releaseStage = "generally_available", supportLevel = "certified",
    },
    source {
      sourceDefinitionId = "b5ea17b1-f170-46dc-bc31-cc744ca984c1", name = "Microsoft SQL Server (MSSQL)",
      dockerRepository = "airbyte/source-mssql", dockerImageTag = "4.1.15",
      sourceType = "database", language = "java", releaseStage = "generally_available", supportLevel = "certified",
    },
    source {
      sourceDefinitionId = "b2e713cd-cc36-4c0a-b5bd-b47cb8a0561e", name = "MongoDb",
      dockerRepository = "airbyte/source-mongodb-v2", dockerImageTag = "1.5.12",
      sourceType = "database", language = "java", releaseStage = "generally_available", supportLevel = "certified",
      documentationUrl = docs("sources", "mongodb-v2"),
    },
    source {
      sourceDefinitionId = "d53f9084-fa6b-4a5a-976c-5b8392f4ad8a", name = "E2E Testing",
      dockerRepository = "airbyte/source-e2e-test", dockerImageTag = "2.2.3",
      sourceType = "api", language = "java", releaseStage = "alpha", supportLevel = "community",
    },
  },
  destinations = {
    destination {
      destinationDefinitionId = "a7bcc9d8-13b3-4e49-b80d-d020b90045e3", name = "End-to-End Testing (/dev/null)",
      dockerRepository = "airbyte/destination-dev-null", dockerImageTag = "0.7.19",
      documentationUrl = docs("destinations", "dev-null"),
      language = "java", releaseStage = "alpha", supportLevel = "community",
      luabyte = BUILTIN,
    },
    destination {
      destinationDefinitionId = "a625d593-bba5-4a1c-a53d-2d246268a816", name = "Local JSON",
      dockerRepository = "airbyte/destination-local-json", dockerImageTag = "0.2.11",
      language = "java", releaseStage = "alpha", supportLevel = "community",
      luabyte = BUILTIN,
    },
    destination {
      destinationDefinitionId = "8be1cf83-fde1-477f-a4ad-318d23c9f3c6", name = "Local CSV",
      dockerRepository = "airbyte/destination-csv", dockerImageTag = "1.0.0",
      language = "java", releaseStage = "alpha", supportLevel = "community",
      luabyte = BUILTIN,
    },
    destination {
      destinationDefinitionId = "b76be0a6-27dc-4560-95f6-2623da0bd7b6", name = "Local SQLite",
      dockerRepository = "airbyte/destination-sqlite", dockerImageTag = "0.1.2",
      language = "python", releaseStage = "alpha", supportLevel = "community",
      luabyte = BUILTIN,
    },
    destination {
      destinationDefinitionId = "94bd199c-2ff0-4aa2-b98e-17f0acb72610", name = "DuckDB",
      dockerRepository = "airbyte/destination-duckdb", dockerImageTag = "0.6.0",
      language = "python", releaseStage = "alpha", supportLevel = "community",
      remoteRegistries = pypi("airbyte-destination-duckdb"),
      -- destination_duckdb/spec.json of the connector (MIT)
      spec = {
        documentationUrl = "https://docs.airbyte.io/integrations/destinations/duckdb",
        supported_destination_sync_modes = { "overwrite", "append" },
        supportsIncremental = true, supportsDBT = true, supportsNormalization = true,
        connectionSpecification = {
          ["$schema"] = "http://json-schema.org/draft-07/schema#",
          title = "Destination Duckdb", type = "object",
          required = { "destination_path" }, additionalProperties = true,
          properties = {
            motherduck_api_key = { type = "string", writeOnly = true,
              description = "API key to use for authentication to a MotherDuck database." },
            destination_path = { type = "string",
              description = "Path to the .duckdb file. The file will be placed inside that local mount. "
                .. "For more information check out our <a href=\"https://docs.airbyte.io/integrations/destinations/duckdb\">docs</a>",
              examples = { "/local/destination.duckdb", "md:", "motherduck:" } },
            schema = { type = "string", description = "database schema, default for duckdb is main", example = "main" },
          },
        },
      },
    },
    destination {
      destinationDefinitionId = "042ee9b5-eb98-4e99-a4e5-3f0d573bee66", name = "MotherDuck",
      dockerRepository = "airbyte/destination-motherduck", dockerImageTag = "0.1.17",
      language = "python", releaseStage = "alpha", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-destination-motherduck"),
    },
    destination {
      destinationDefinitionId = "3d2b6f84-7f0d-4e3f-a5e5-7c7d4b50eabd", name = "Pinecone",
      dockerRepository = "airbyte/destination-pinecone", dockerImageTag = "0.1.38",
      language = "python", releaseStage = "beta", supportLevel = "certified",
      remoteRegistries = pypi("airbyte-destination-pinecone"),
    },
    destination {
      destinationDefinitionId = "25c5221d-dce2-4163-ade9-739ef790f503", name = "Postgres",
      dockerRepository = "airbyte/destination-postgres", dockerImageTag = "2.4.7",
      language = "java", releaseStage = "generally_available", supportLevel = "certified",
      luabyte = BUILTIN,    -- lua/connectors/destination-postgres.lua (Destinations V2 layout)
    },
    destination {
      destinationDefinitionId = "ca81ee7c-3163-4246-af40-094cc31e5e42", name = "MySQL",
      dockerRepository = "airbyte/destination-mysql", dockerImageTag = "1.0.3",
      language = "java", releaseStage = "alpha", supportLevel = "community",
    },
    destination {
      destinationDefinitionId = "424892c4-daac-4491-b35d-c6688ba547ba", name = "Snowflake",
      dockerRepository = "airbyte/destination-snowflake", dockerImageTag = "4.0.33",
      language = "java", releaseStage = "generally_available", supportLevel = "certified",
    },
    destination {
      destinationDefinitionId = "22f6c74f-5699-40ff-833c-4a879ea40133", name = "BigQuery",
      dockerRepository = "airbyte/destination-bigquery", dockerImageTag = "3.0.3",
      language = "java", releaseStage = "generally_available", supportLevel = "certified",
    },
    destination {
      destinationDefinitionId = "4816b78f-1489-44c1-9060-4b19d5fa9362", name = "S3",
      dockerRepository = "airbyte/destination-s3", dockerImageTag = "1.5.6",
      language = "java", releaseStage = "generally_available", supportLevel = "certified",
    },
    destination {
      destinationDefinitionId = "2eb65e87-983a-4fd7-b3e3-9d9dc6eb8537", name = "E2E Testing",
      dockerRepository = "airbyte/destination-e2e-test", dockerImageTag = "0.7.0",
      language = "java", releaseStage = "alpha", supportLevel = "community",
    },
  },
}
