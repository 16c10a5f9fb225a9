-- airbyte.cdk: a small kit for writing Airbyte connectors in Lua; this file
-- is its face, the one API over lua/airbyte/cdk/*.lua.
--
-- A connector module returns `cdk.source{...}` (or `cdk.destination{...}`) and
-- a host runs it with `cdk.main(connector, argv)`, which speaks the Airbyte
-- protocol: it parses the command line, loads the JSON files, validates the
-- config against the spec, calls the connector and prints one protocol
-- message per stdout line.
--
-- API (all functions, no globals):
--   cdk.source{ spec = tbl, check = fn(config) -> ok, msg,
--               discover = fn(config) -> { stream, ... },
--               read = fn(config, configured_catalog, state_array, emit) }
--       -> connector { kind = "source", spec, check, discover, read }
--   cdk.destination{ spec = tbl, check = fn(config) -> ok, msg,
--                    write = fn(config, configured_catalog, input, emit) }
--       -> connector { kind = "destination", spec, check, write }
--   cdk.main(connector, argv [, opts]) -> exit code
--       opts.out: a file-like object with :write/:flush (default io.stdout)
--       opts.input: an iterator of stdin lines for `write` (default: stdin)
--   cdk.obj(k1, v1, k2, v2, ...) -> table whose keys encode in that order
--   cdk.array([t])                -> t, always encoded as a JSON array
--   cdk.null                      -> JSON null (cjson.null)
--   cdk.encode(value) -> JSON text (ordered objects, integers stay integers)
--   cdk.escape(s)     -> s with JSON string escapes applied (no quotes)
--   cdk.validate(schema, value) -> nil | { "path: problem", ... } (draft-07 subset)
--   cdk.stream_state(state_array, name [, namespace]) -> stream_state | nil
--   cdk.error(message [, failure_type [, internal]]) raises a structured error
--   cdk.config_error(message) raises one with failure_type "config_error"
--   cdk.clock() -> epoch milliseconds (integer); replaceable by a host
--
-- The emitter handed to read():
--   emit.stream(name [, opts]) -> handle        opts.schema: the stream's JSON
--       schema whose property order the records follow (default: the configured
--       catalog's), opts.exact_fields: records never carry keys outside the schema
--       (skips the per-record check for extra keys), opts.safe_strings: the
--       record strings never need JSON escaping (no '"', '\\' or control
--       bytes: skips scanning them; only for generated data), opts.namespace.
--   handle:started()            STARTED status (implicit on first use)
--   handle:record(data)         RECORD; RUNNING status at the first record
--   handle:state(stream_state)  STREAM state with sourceStats.recordCount =
--                               records of this stream since its previous state
--   handle:estimate(rows [, bytes])   ESTIMATE trace
--   handle:complete() / handle:incomplete()
--   emit.log(level, message)    LOG message
--   emit.message(msg)           any protocol message: a table to encode, or a
--                               line of JSON written as is (destinations echo
--                               STATE lines with it)
--   emit.record(name, data), emit.state(name, stream_state): shortcuts
-- Streams started but not finished get COMPLETE when read() returns, or
-- INCOMPLETE when it raises (followed by a TRACE ERROR and exit code 1).
--
-- The input handed to write() (the kit echoes STATEs, see "Destinations"):
--   for msg, line in input do ... end   RECORDs of configured streams and
--       TRACEs, in stdin order. A RECORD msg is { type = "RECORD", record =
--       { stream, namespace, emitted_at, data, ... } , data_json = the data's
--       JSON text as received }; data and the other fields decode on first
--       use. A TRACE msg is the decoded message.
--   input:on_commit(fn)  fn(state, message) makes everything written so far
--                        durable; runs before each STATE is echoed
--   input:on_abort(fn)   fn(err) cleans up when write() raises
--   input:reject([n])    the last n (1) records were not written
--   input:status(name [, namespace]) -> last stream status received
--   input.streams[name], input.stream_names: the configured streams
--       ({ name, namespace, sync_mode, destination_sync_mode, primary_key,
--       cursor_field, stream, configured })
--   input:blocks()       raw stdin chunks, for hand-written loops
-- The emitter handed to write(): emit.log(level, message), emit.message(msg),
--   emit.state(line, counter) (echo a STATE read by a hand-written loop),
--   emit.flush(), emit.now_ms().
-- Destination helpers: cdk.file_destination{...} (one raw file per stream,
--   as destination-local-json and destination-csv), cdk.output_file(path,
--   opts) (durable overwrite/append files), cdk.uuid4(), cdk.fsync(path), cdk.mkdir_p(path),
--   cdk.record_counter(), cdk.parse_message(line), cdk.record_data_json(line),
--   cdk.with_destination_stats(line, message, n [, rejected]),
--   cdk.stream_status(msg) -> name, namespace, status.
--
-- Where each part lives (lua/airbyte/cdk/):
--   json.lua             obj, array, null, encode, escape: ordered JSON values
--   record_encoder.lua   a stream schema compiled into a fast record writer
--   validate.lua         config validation (the draft-07 subset specs use)
--   errors.lua           error, config_error and the kit's error handler
--   clock.lua            clock (replaceable) and now_ms
--   config.lua           the --config/--catalog/--state files, config checked
--   state.lua            the --state file normalized, stream_state
--   emitter.lua          the emit table of read(): records, states, statuses
--   connector.lua        source{...}, destination{...}
--   args.lua             the command line
--   commands.lua         spec, check, discover, read, write
--   main.lua             main: parse, run, report, exit code
--   host.lua             the luabyte binary's modules, loaded on first use
--   lines.lua            protocol lines through the C classifier
--   counter.lua          records per stream between states
--   input.lua            the input and emit tables of write()
--   files.lua            uuid4, fsync, mkdir_p, output_file
--   file_destination.lua file_destination{...}, raw_sync_mode

local json = require "airbyte.cdk.json"
local errors = require "airbyte.cdk.errors"
local clock = require "airbyte.cdk.clock"
local lines = require "airbyte.cdk.lines"
local counter = require "airbyte.cdk.counter"
local files = require "airbyte.cdk.files"
local file_destination = require "airbyte.cdk.file_destination"
local connector = require "airbyte.cdk.connector"

---@class airbyte.cdk
---@field null lightuserdata                        JSON null
---@field obj fun(...): table                        keys encode in the order given
---@field array fun(t?: table): table                always encoded as an array
---@field encode fun(v: any): string
---@field escape fun(s: string): string
---@field validate fun(schema: table, value: any): string[]|nil
---@field error fun(message: string, failure_type?: string, internal?: string)
---@field config_error fun(message: string)
---@field clock fun(): integer                       epoch ms; a host may replace it
---@field record_ms fun(emitted_at: number?, now?: fun(): integer): integer
---@field iso_utc fun(ms: integer, zone: string): string
---@field stream_state fun(state: table[], name: string, namespace?: string): any
---@field source fun(def: { spec: table, check?: function, discover?: function, read: function }): table
---@field destination fun(def: { spec: table, check?: function, write: function }): table
---@field main fun(connector: table, argv: string[], opts?: { out?: file*, input?: function }): integer
---@field parse_message fun(line: string): userdata|nil, string?
---@field record_data_json fun(line: string): string
---@field with_destination_stats fun(line: string, message: table, count: integer, rejected?: integer): string
---@field stream_status fun(msg: table): string?, string?, string?
---@field record_counter fun(): table
---@field uuid4 fun(): string
---@field fsync fun(path: string)
---@field mkdir_p fun(path: string)
---@field output_file fun(path: string, opts?: { mode?: "overwrite"|"append", header?: string }): table
---@field file_destination fun(def: table): table
---@field raw_sync_mode fun(stream: table, emit: table): "overwrite"|"append"
local M = {
  null = json.null, obj = json.obj, array = json.array, encode = json.encode, escape = json.escape,
  validate = require("airbyte.cdk.validate").validate,
  error = errors.error, config_error = errors.config_error,
  stream_state = require("airbyte.cdk.state").stream_state,
  source = connector.source, destination = connector.destination,
  main = require("airbyte.cdk.main").main,
  parse_message = lines.parse_message, record_data_json = lines.record_data_json,
  with_destination_stats = lines.with_destination_stats, stream_status = lines.stream_status,
  record_counter = counter.new, record_ms = clock.record_ms, iso_utc = clock.iso_utc,
  uuid4 = files.uuid4, fsync = files.fsync, mkdir_p = files.mkdir_p, output_file = files.output_file,
  file_destination = file_destination.file_destination, raw_sync_mode = file_destination.raw_sync_mode,
}

-- cdk.clock is the one field a host assigns: it lives in airbyte.cdk.clock,
-- where the kit reads it, and the face passes reads and writes through.
return setmetatable(M, {
  __index = function(_, k) if k == "clock" then return clock.clock end end,
  __newindex = function(t, k, v)
    if k == "clock" then clock.clock = v else rawset(t, k, v) end
  end,
})
