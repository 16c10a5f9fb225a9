-- connectors.source_faker_schemas: the connection spec and the stream JSON
-- schemas of source-faker, the same documents as the real connector's
-- spec.json and schemas/*.json. They are built with cdk.obj so discover and
-- spec print keys in the documents' order, and so records follow the schema's
-- property order.

local cdk = require "airbyte.cdk"

local obj, array = cdk.obj, cdk.array

local M = {}

M.spec = obj(
  "documentationUrl", "https://docs.airbyte.com/integrations/sources/faker",
  "connectionSpecification", obj(
    "$schema", "http://json-schema.org/draft-07/schema#",
    "title", "Faker Source Spec",
    "type", "object",
    "required", array { "count" },
    "additionalProperties", true,
    "properties", obj(
      "count", obj(
        "title", "Count",
        "description", "How many users should be generated in total.  This setting does not apply to the purchases or products stream.",
        "type", "integer",
        "minimum", 1,
        "default", 1000,
        "order", 0
      ),
      "seed", obj(
        "title", "Seed",
        "description", "Manually control the faker random seed to return the same values on subsequent runs (leave -1 for random)",
        "type", "integer",
        "default", -1,
        "order", 1
      ),
      "records_per_slice", obj(
        "title", "Records Per Stream Slice",
        "description", "How many fake records will be in each page (stream slice), before a state message is emitted?",
        "type", "integer",
        "minimum", 1,
        "default", 1000,
        "order", 2
      ),
      "always_updated", obj(
        "title", "Always Updated",
        "description", "Should the updated_at values for every record be new each sync?",
        "type", "boolean",
        "default", true
      ),
      "parallelism", obj(
        "title", "Parallelism",
        "description", "How many parallel workers should we use to generate fake data?  Choose a value equal to the number of CPUs you will allocate to this source.",
        "type", "integer",
        "minimum", 1,
        "default", 4,
        "order", 4
      )
    )
  )
)

M.users = obj(
  "$schema", "http://json-schema.org/draft-07/schema#",
  "type", "object",
  "properties", obj(
    "id", obj(
      "description", "The unique identifier of the user.",
      "type", "integer"
    ),
    "created_at", obj(
      "description", "The date and time when the user was created.",
      "type", "string",
      "format", "date-time",
      "airbyte_type", "timestamp_with_timezone"
    ),
    "updated_at", obj(
      "description", "The date and time when the user was last updated.",
      "type", "string",
      "format", "date-time",
      "airbyte_type", "timestamp_with_timezone"
    ),
    "name", obj(
      "description", "The name of the user.",
      "type", "string"
    ),
    "title", obj(
      "description", "The title of the user.",
      "type", "string"
    ),
    "age", obj(
      "description", "The age of the user.",
      "type", "integer"
    ),
    "email", obj(
      "description", "The email address of the user.",
      "type", "string"
    ),
    "telephone", obj(
      "description", "The telephone number of the user.",
      "type", "string"
    ),
    "gender", obj(
      "description", "The gender of the user.",
      "type", "string"
    ),
    "language", obj(
      "description", "The language spoken by the user.",
      "type", "string"
    ),
    "academic_degree", obj(
      "description", "The academic degree held by the user.",
      "type", "string"
    ),
    "nationality", obj(
      "description", "The nationality of the user.",
      "type", "string"
    ),
    "occupation", obj(
      "description", "The occupation of the user.",
      "type", "string"
    ),
    "height", obj(
      "description", "The height of the user.",
      "type", "string"
    ),
    "blood_type", obj(
      "description", "The blood type of the user.",
      "type", "string"
    ),
    "weight", obj(
      "description", "The weight of the user.",
      "type", "integer"
    ),
    "address", obj(
      "type", "object",
      "properties", obj(
        "street_number", obj(
          "description", "The street number of the user's address.",
          "type", "string"
        ),
        "street_name", obj(
          "description", "The name of the street of the user's address.",
          "type", "string"
        ),
        "city", obj(
          "description", "The city of residence of the user.",
          "type", "string"
        ),
        "state", obj(
          "description", "The state of the user's location.",
          "type", "string"
        ),
        "province", obj(
          "description", "The province of the user's location.",
          "type", "string"
        ),
        "postal_code", obj(
          "description", "The postal code of the user's address.",
          "type", "string"
        ),
        "country_code", obj(
          "description", "The country code of the user's location.",
          "type", "string"
        )
      )
    )
  )
)

M.products = obj(
  "$schema", "http://json-schema.org/draft-07/schema#",
  "type", "object",
  "properties", obj(
    "id", obj(
      "type", "integer"
    ),
    "make", obj(
      "type", "string"
    ),
    "model", obj(
      "type", "string"
    ),
    "year", obj(
      "type", "integer"
    ),
    "price", obj(
      "type", "number"
    ),
    "description", obj(
      "type", "string"
    ),
    "created_at", obj(
      "type", "string",
      "format", "date-time",
      "airbyte_type", "timestamp_with_timezone"
    ),
    "updated_at", obj(
      "type", "string",
      "format", "date-time",
      "airbyte_type", "timestamp_with_timezone"
    )
  )
)

M.purchases = obj(
  "$schema", "http://json-schema.org/draft-07/schema#",
  "type", "object",
  "properties", obj(
    "id", obj(
      "description", "Unique identifier for the purchase record.",
      "type", "integer"
    ),
    "user_id", obj(
      "description", "Unique identifier for the user making the purchase.",
      "type", "integer"
    ),
    "product_id", obj(
      "description", "Unique identifier for the product being purchased.",
      "type", "integer"
    ),
    "created_at", obj(
      "description", "The date and time when the purchase record was created.",
      "type", "string",
      "format", "date-time",
      "airbyte_type", "timestamp_with_timezone"
    ),
    "updated_at", obj(
      "description", "The date and time when the purchase record was last updated.",
      "type", "string",
      "format", "date-time",
      "airbyte_type", "timestamp_with_timezone"
    ),
    "added_to_cart_at", obj(
      "description", "The date and time the product was added to the cart by the user.",
      "type", array { "null", "string" },
      "format", "date-time",
      "airbyte_type", "timestamp_with_timezone"
    ),
    "purchased_at", obj(
      "description", "The date and time the purchase was completed.",
      "type", array { "null", "string" },
      "format", "date-time",
      "airbyte_type", "timestamp_with_timezone"
    ),
    "returned_at", obj(
      "description", "The date and time the purchased product was returned by the user.",
      "type", array { "null", "string" },
      "format", "date-time",
      "airbyte_type", "timestamp_with_timezone"
    )
  )
)

return M
