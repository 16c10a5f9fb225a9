/*
** cache.h - the storage interface: a cache laid out the way PyAirbyte lays
** out its caches, whichever database keeps it.
**
** Every backend implements it (cache_backend.h says how; cache_sqlite.c is
** SQLite, cache_pg.c PostgreSQL): callers (the pump, the Lua binding, the
** tests) see only this file. cache.c implements each function once, with
** what is common to all backends (argument checks, the table prefix, the
** UUIDv7 generator, the error message, the stream -> table rules, state
** keys and the state rules) and calls the backend for the rest. The layout
** below is the same on every backend; types are SQLite's where it says so.
**
** One table per stream, named by PyAirbyte's normalizer (lb_cache_normalize)
** as "Stream names" below says, with one typed column per top-level property
** of the stream's JSON schema, in schema order, followed by
**   _airbyte_raw_id        VARCHAR                   UUIDv7 text, time-ordered
**   _airbyte_extracted_at  TIMESTAMP WITH TIME ZONE  emitted_at as ISO-8601 text,
**                                                    "2022-11-29T00:35:07.441+00:00"
**   _airbyte_meta          JSON                      '{}' unless the caller says
** and the bookkeeping tables (PyAirbyte's names and columns):
**   _airbyte_streams(stream_name, source_name, table_name, catalog_metadata,
**                    stream_namespace, table_prefix)
**   _airbyte_state(source_name, stream_name, table_name, state_json, last_updated,
**                  + stream_namespace)
**   _airbyte_destination_state(destination_name, source_name, stream_name,
**                              state_json, last_updated,
**                              + stream_namespace, destination_config_hash)
** and ours: _luabyte_destination_progress, the delivery ledger (below).
**
** Stream names.  A stream is (namespace, name); its table is decided once,
** here, and kept in _airbyte_streams (one row per table: table_name is the
** real table, stream_namespace "" when there is none, table_prefix the
** cache's prefix then; PyAirbyte stores table_prefix + stream_name there).
** Everything else (the Lua layer, datasets, writes from the cache) asks
** lb_cache_table_name instead of normalizing a name itself. The rules:
**   1. a stream that has a row keeps its table;
**   2. else its table is normalize(table_prefix + name), names counted in
**      bytes (a NUL byte is a character like any other, and becomes '_');
**   3. the reserved space - names starting "_airbyte_", "_luabyte_" or
**      "sqlite_" - is ours (bookkeeping tables, the "_airbyte_replace_"
**      shadow tables, the "_airbyte_pk_" indexes, SQLite's own tables); a
**      name that lands in it gets "stream_" in front ("_airbyte_state" ->
**      "stream__airbyte_state"), so no stream name reaches any of them;
**   4. when that table belongs to a stream of the same name in another
**      namespace, the stream's table is normalize(table_prefix + namespace
**      + "_" + name) (so one name in two namespaces makes two tables; the
**      first to be read keeps the plain name);
**   5. any other clash (users / Users, a table taken by another stream or
**      by an index or view) is a PyAirbyteNameNormalizationError naming
**      both streams and the table, raised by lb_cache_stream_open before
**      it writes anything. A table that exists without a row is adopted.
** Streams of different sources with one name share one table (as in
** PyAirbyte). Files made before this layout are migrated when opened.
**
** Column types (the kinds are cache_columns.c's, for every backend; the
** SQL types and binding rules below are SQLite's).  SQLite keeps a type per value; a column's declared type only
** chooses an "affinity" that converts some values on the way in.  We declare
** PyAirbyte's types where that conversion is a harmless cast towards the
** declared type and avoid them where it would change data:
**   integer -> BIGINT, number -> DECIMAL(38,9), boolean -> BOOLEAN,
**   object/array -> JSON, string -> VARCHAR (also with format date, date-time
**   or time: a DATE or TIMESTAMP column would have NUMERIC affinity and turn a
**   digits-only string such as "20210102" into a number), anything else
**   (unions of several types, no type) -> VARCHAR, as PyAirbyte does.
** Values are bound by their JSON type, in one pass over the record:
**   VARCHAR columns: strings as their decoded text; any other non-null value
**     as its exact JSON text (numbers keep their spelling, true stays "true").
**   other columns: integers as int64, other numbers as double, true/false as
**     1/0, strings as TEXT, objects and arrays as their JSON text as received.
**   Integers that do not fit in int64 are stored as a BLOB of their digits:
**     NUMERIC affinity would turn TEXT digits into a REAL and drop digits,
**     while a BLOB is never converted.  (The Lua layer turns them into BigInt.)
**   null and missing properties are NULL; keys not in the schema are dropped
**   (PyAirbyte prunes them); a key that is not a property name but normalizes
**   to a column's name fills that column (PyAirbyte's records are
**   case-insensitive dicts).
**
** Durability (SQLite).  The database runs with journal_mode=WAL and synchronous=NORMAL:
** a committed transaction may be lost if the machine loses power before the
** next WAL checkpoint syncs, but the file is always consistent, and a crash
** of the process (the failure luabyte guarantees against: connector or host
** killed mid-sync) loses nothing that was committed, because the WAL is
** already in the OS page cache.  Records and the STATE that follows them are
** committed in one transaction by the caller, so state never runs ahead of
** data.  Readers in other connections see the last commit while a sync runs.
**
** Functions return 0 or a negative code: LB_ENOMEM, LB_EINVAL (misuse, bad
** input), LB_CACHE_ESQL (the database failed: lb_cache_errmsg tells why).  Nothing
** here exits, aborts or raises.  One lb_cache is used by one thread at a time.
*/
#ifndef LB_CACHE_H
#define LB_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "luabyte.h"
#include "jskim.h"

/* LB_CACHE_ESQL (the database failed, see lb_cache_errmsg) and
** LB_CACHE_EBUSY (lb_cache_lock_stream: another runner holds the stream)
** are in luabyte.h's one error table. */

typedef struct lb_cache lb_cache;
typedef struct lb_cache_stream lb_cache_stream;
typedef struct lb_cache_cursor lb_cache_cursor;
typedef struct lb_cache_query lb_cache_query;

typedef enum {
  LB_WRITE_APPEND,    /* plain INSERT */
  LB_WRITE_MERGE,     /* upsert on the primary key (unique index) */
  LB_WRITE_REPLACE    /* into a shadow table swapped in by _finish */
} lb_write_strategy;

/* SQLite: open or create the database file at path (its directory must
** exist) and the _airbyte_* tables. ":memory:" works. On failure *out is
** NULL and err says why. (PostgreSQL: lb_cache_pg_open, cache_pg.h.) */
int  lb_cache_sqlite_open(const char *path, lb_cache **out, char *err, size_t errlen);
/* Closes the streams still open (their statements; unfinished REPLACE shadow
** tables stay and are dropped by the next open of that stream), rolls back an
** open transaction and closes the database. NULL is fine. */
void lb_cache_close(lb_cache *c);
/* The backend: "sqlite" or "postgres". */
const char *lb_cache_kind(const lb_cache *c);

/* Transactions: BEGIN IMMEDIATE (takes the write lock now, so a concurrent
** writer waits up to the busy timeout here rather than failing later).
** Nesting is not supported: begin inside a transaction is LB_EINVAL.
** Rollback with no transaction open is 0: SQLite ends the transaction by
** itself on a full disk or an I/O error, and the caller's rollback must not
** replace that error. A full disk's message names the cache file. */
int  lb_cache_begin(lb_cache *c);
int  lb_cache_commit(lb_cache *c);
int  lb_cache_rollback(lb_cache *c);
int  lb_cache_in_transaction(const lb_cache *c);

/* Queued transactions, for a caller that must not wait (an event loop):
** begin_queued and commit_queued hand BEGIN IMMEDIATE, COMMIT and the state
** stored in the transaction before it to the writer thread (async mode),
** after the rows written so far, and return at once; lb_cache_wait_idle
** says when they are done, lb_cache_sync then returns how they went. It is
** the writer thread that waits for the write lock (up to 60 s), for a
** commit's writes, and for the checkpoint a large WAL needs first. With a
** state (state_json non-NULL: an AirbyteStateMessage, checked here, kept
** under its key as lb_cache_put_state does), the state goes into the
** transaction first; begin_again queues BEGIN after the COMMIT, taken
** lazily: the write lock is taken when the next rows reach the writer, or
** by lb_cache_wait_idle or any call that uses the connection, so a source
** that is slow between two states does not keep other writers out. Errors
** show up as queued rows' do: at the next call (roll back then). Without
** the writer thread (sync mode) they run at once.
** Writers of one file take turns: one that commits while another waits for
** the lock lets that one go first (see cache_sqlite_writer.c, "Taking turns").
** PostgreSQL sends the state, COMMIT and BEGIN as one query and returns:
** a row lock another session holds is waited for on the server, and
** lb_cache_wait_idle / wait_room say 0 (without blocking) until it is done.
** A backend without queued transactions runs them at once: begin;
** put_state, commit, then begin when begin_again. */
int  lb_cache_begin_queued(lb_cache *c);
int  lb_cache_commit_queued(lb_cache *c, const char *source_name, const char *state_json,
                            size_t len, int begin_again);

/* Async mode (on by default): lb_cache_stream_write scans the record on
** the caller's thread, copies what is to be bound into a batch and returns;
** a writer thread (started on the first write, one per cache) binds and
** inserts batches, 32 rows per statement, while the caller scans the next
** records, so parsing and SQLite overlap on two cores. Every other function
** first waits until the queued rows are in the database, so order is kept:
** records, then the state after them, then commit. A failed insert is
** reported by a later write or by the next commit/finish/put_state (the
** rows after it are dropped; roll back); begin and rollback clear it.
** Memory: at most four batches of about 1.6 MB. If the thread cannot
** start, writes stay on the caller's thread.
** Also in async mode, for a file in WAL mode, a checkpointer thread with
** its own connection copies the WAL back into the database after commits
** (SQLite would do it inside the commit that crosses 1000 pages, fsyncs
** included); begin waits for it only when the WAL has passed 64 MB, so the
** WAL stays bounded. Because of that second connection the journal mode
** cannot be changed while async mode is on.
** set_async(c, 0) waits for the queue, stops both threads (SQLite's own
** checkpoints resume) and returns the writer's error if any; set_async(c,
** 1) turns them on again. lb_cache_sync waits for the queue and returns
** the writer's error. */
int  lb_cache_set_async(lb_cache *c, int on);
int  lb_cache_sync(lb_cache *c);
/* For a caller with a time budget (uv_hrtime() deadline_ns, 0 = none):
** wait_room returns 1 once a record of data_len bytes can be written
** without waiting for the writer thread, wait_idle once the writer has
** written every row (the next barrier is immediate); 0 when deadline_ns
** passed first. Neither waits past the deadline. */
int  lb_cache_wait_room(lb_cache *c, size_t data_len, uint64_t deadline_ns);
int  lb_cache_wait_idle(lb_cache *c, uint64_t deadline_ns);

/* Waiting for the write lock without holding the caller's thread (issue 9
** section 4). With nowait on (the Lua binding turns it on for every cache
** it opens), a call on the caller's thread that needs the write lock while
** another connection (another process, or another cache object of this
** one) holds it fails at once with LB_CACHE_EBUSY instead of waiting in
** SQLite's busy handler; lb_cache_errmsg names the file. Nothing of the
** call has happened then, except for exec: calling again with the same
** arguments goes on where it stopped (exec resumes after the statements
** that ran). The caller retries after yielding (the binding does, with a
** timer, for up to the lock timeout). Steps of the writer thread (BEGIN
** IMMEDIATE of a queued transaction) still wait, on that thread, for up to
** the lock timeout. lb_cache_busy_reset goes before the first try of a call
** (it forgets a stopped exec), lb_cache_was_busy after a failed try: 1 when
** it failed on the lock (the flag is cleared). Backends without such a
** lock (Postgres) never report it.
** The lock timeout (default LB_CACHE_LOCK_TIMEOUT_MS) bounds every wait
** for the write lock, on the writer thread and by the binding's retries. */
#define LB_CACHE_LOCK_TIMEOUT_MS 60000
void lb_cache_set_nowait(lb_cache *c, int on);

/* The CPUs a backend's own threads (SQLite's writer and checkpointer) run
** on when they start (background.h), copied; NULL or an empty set: where
** the opening thread runs. Set before the first write. */
struct lb_cpus;
void lb_cache_set_background(lb_cache *c, const struct lb_cpus *cpus);
void lb_cache_busy_reset(lb_cache *c);
int  lb_cache_was_busy(lb_cache *c);
void lb_cache_set_lock_timeout(lb_cache *c, long ms);
long lb_cache_lock_timeout(const lb_cache *c);

/* Message of the last failure on this cache (never NULL). */
const char *lb_cache_errmsg(lb_cache *c);
/* SQLite only (NULL for other backends): the sqlite3 connection, for C
** tests that look at the file (waits for queued rows first). Everything
** else uses the interface. */
struct sqlite3 *lb_cache_db(lb_cache *c);

/* Table prefix prepended to stream names (PyAirbyte's table_prefix), "" by
** default. It names the tables and keys the state rows. */
int  lb_cache_set_table_prefix(lb_cache *c, const char *prefix);
const char *lb_cache_table_prefix(const lb_cache *c);

/* Opens a stream for writing: finds its table (see "Stream names"; the
** name is NUL-terminated, no namespace), creates it when missing (typed columns
** from the JSON schema), adds columns for properties that are new since the
** table was made (types of existing columns never change), records the stream
** in _airbyte_streams, and prepares the one INSERT statement used by every
** write. REPLACE writes into the shadow table "_airbyte_replace_<table>"
** (recreated empty; readers keep seeing the old table until _finish). MERGE
** needs primary_key and keeps a unique index "_airbyte_pk_<table>" on it
** (existing duplicate keys are reduced to their last row first); APPEND drops
** that index, since appended duplicates are legal. primary_key holds top-level
** property names (normalized here), NULL-terminated; NULL = none. Runs its DDL
** in the caller's transaction if one is open. NULL on failure, err says why. */
lb_cache_stream *lb_cache_stream_open(lb_cache *c, const char *source_name,
                                      const char *stream_name,
                                      const char *json_schema, size_t schema_len,
                                      lb_write_strategy strategy,
                                      const char *const *primary_key,
                                      char *err, size_t errlen);

/* A stream's identity with explicit lengths (names may hold any byte).
** ns NULL or "" = no namespace. */
typedef struct lb_cache_stream_id {
  const char *name;
  size_t name_len;
  const char *ns;
  size_t ns_len;
} lb_cache_stream_id;

/* lb_cache_stream_open for a (namespace, name) stream. */
lb_cache_stream *lb_cache_stream_open_id(lb_cache *c, const char *source_name,
                                         const lb_cache_stream_id *id,
                                         const char *json_schema, size_t schema_len,
                                         lb_write_strategy strategy,
                                         const char *const *primary_key,
                                         char *err, size_t errlen);

/* The table of stream (ns, name) under the current table prefix, by the
** rules of "Stream names" (the one it has, or the one it would get; nothing
** is written). ns NULL (not "") = whichever namespace the stream was cached
** under, LB_EINVAL when there are several. Writes a NUL-terminated name
** into out (cap bytes) and returns its length (call again with more room
** when it is >= cap); negative on errors (lb_cache_errmsg says why,
** starting with the PyAirbyte error kind for a clash). */
long lb_cache_table_name(lb_cache *c, const char *name, size_t name_len,
                         const char *ns, size_t ns_len, char *out, size_t cap);

/* The emitted_at range _airbyte_extracted_at can hold: years 0001 to 9999
** (four-digit ISO-8601 years), in epoch milliseconds. */
#define LB_CACHE_MIN_MS (-62135596800000LL)     /* 0001-01-01T00:00:00.000Z */
#define LB_CACHE_MAX_MS 253402300799999LL       /* 9999-12-31T23:59:59.999Z */

/* Writes one record. data is the record's "data" object, validated by jskim
** (its bytes must stay valid for the call only). emitted_at_ms outside
** LB_CACHE_MIN_MS..LB_CACHE_MAX_MS is stored as the nearest end of that
** range (the pump warns: see lb__emitted_ms). meta_json is the
** _airbyte_meta text (NULL = "{}"), not checked. No allocation per record
** once the stream (sync) or the batches (async) have seen the largest
** record. LB_EINVAL if data is not an object; in async mode an insert
** error may show up here for an earlier record. */
int  lb_cache_stream_write(lb_cache_stream *s, const lb_jval *data,
                           long long emitted_at_ms, const char *meta_json);

/* REPLACE: drops the old table and renames the shadow table in its place, in
** the caller's transaction (so the swap commits with the state that follows).
** Other strategies: nothing. The stream stays open for nothing but close. */
int  lb_cache_stream_finish(lb_cache_stream *s, char *err, size_t errlen);
/* REPLACE: drops the shadow table, keeping the old one. Others: nothing. */
int  lb_cache_stream_abort(lb_cache_stream *s, char *err, size_t errlen);
/* Finalizes the statements and frees the stream. NULL is fine. */
void lb_cache_stream_close(lb_cache_stream *s);

/* Stream locks (issue 9 section 4): a per-(table prefix, source, stream)
** lock a runner holds for the whole read of that stream, so that two
** runners of the same source and stream (processes on one machine or
** many, tasks of one script) never interleave their rows and states;
** runners of other streams never wait. Tries for up to timeout_ms (0 =
** once); refused, it returns LB_CACHE_EBUSY with err naming the stream and
** the other holder ("pid 12@host since 2026-01-01T00:00:00Z", or another
** reader in this process). 0 = acquired. A lock is released by unlock, by
** closing the cache, or when its process dies (kill -9 included).
** SQLite: a flock'd file per stream in "<file>-lbstreams/"; Postgres: an
** advisory lock (cache_pg.h). A positive timeout waits on the calling
** thread, so an event loop passes 0 and retries after yielding (read.lua);
** an in-memory SQLite cache has no other runner: always 0. */
int  lb_cache_lock_stream(lb_cache *c, const char *source_name, const lb_cache_stream_id *id,
                          long timeout_ms, char *err, size_t errlen);
void lb_cache_unlock_stream(lb_cache *c, const char *source_name, const lb_cache_stream_id *id);

/* Records accepted by lb_cache_stream_write (in async mode some may still
** be queued). */
long long lb_cache_stream_rows_written(const lb_cache_stream *s);
const char *lb_cache_stream_table(const lb_cache_stream *s);   /* final table name */
/* The stream's name and namespace ("" = none), with their lengths. */
const char *lb_cache_stream_name(const lb_cache_stream *s, size_t *len);
const char *lb_cache_stream_namespace(const lb_cache_stream *s, size_t *len);
lb_cache *lb_cache_stream_cache(const lb_cache_stream *s);
lb_write_strategy lb_cache_stream_strategy(const lb_cache_stream *s);

/* State.  A state is kept under its key (lb_state_key_of, protocol.h): a
** STREAM state under its stream's (namespace, name), GLOBAL and LEGACY
** (also a message without "type") under "_GLOBAL" / "_LEGACY", as
** PyAirbyte names them. One row per (source, table_prefix + key name,
** namespace): the last message wins. state_json is the AirbyteStateMessage
** and must be valid JSON (LB_EINVAL otherwise). stream_name may be NULL or
** ""; a name given must be the message's own (LB_EINVAL otherwise). */
int  lb_cache_put_state(lb_cache *c, const char *source_name, const char *stream_name,
                        const char *state_json, size_t len);
/* Calls cb for every state row of the source under the current table
** prefix, in (namespace, key name) order; namespace is "" for none. A
** non-zero return from cb stops and is returned. */
typedef int (*lb_cache_state_cb)(void *ud, const char *stream_name, const char *stream_namespace,
                                 const char *state_json, size_t len);
int  lb_cache_get_states(lb_cache *c, const char *source_name,
                         lb_cache_state_cb cb, void *ud);
/* Destination-echoed states, keyed by the destination's identity (its name
** and config_hash, the digest of its config: lb__json_digest; NULL = ""),
** the source and the state's key (stream_name as for put_state). */
int  lb_cache_put_destination_state(lb_cache *c, const char *destination_name,
                                    const char *config_hash, const char *source_name,
                                    const char *stream_name, const char *state_json, size_t len);
/* config_hash NULL = every identity of that name, source_name NULL = every
** source. */
int  lb_cache_get_destination_states(lb_cache *c, const char *destination_name,
                                     const char *config_hash, const char *source_name,
                                     lb_cache_state_cb cb, void *ud);

/* The delivery ledger: per destination identity, source and stream, the
** highest _airbyte_raw_id (UUIDv7 text, time-ordered) the destination has
** confirmed. Kept beside the destination states, so whichever cache keeps
** a destination's states keeps its ledger. */
typedef struct lb_cache_delivery {
  const char *destination_name, *config_hash;   /* config_hash NULL = "" */
  const char *source_name;
  const char *stream_namespace, *stream_name;   /* namespace NULL = "" */
} lb_cache_delivery;
/* 1 and the id into raw_id (cap bytes), 0 when nothing was confirmed yet
** (raw_id ""), or a negative code. */
int  lb_cache_get_delivered(lb_cache *c, const lb_cache_delivery *d, char *raw_id, size_t cap);
/* Records raw_id as confirmed; a lower id than the one kept changes nothing. */
int  lb_cache_put_delivered(lb_cache *c, const lb_cache_delivery *d, const char *raw_id);

/* A destination whose config changed under it (a CONTROL update it sent
** itself, such as a rotated token) is still that destination: its states
** and ledger move from from_hash to to_hash, in one step. */
int  lb_cache_move_destination(lb_cache *c, const char *destination_name, const char *from_hash,
                               const char *to_hash);

/* The rules of state, once (Lua calls them through the binding).
**
** When a state commits: a STATE that follows records commits with them
** (LB_STATE_COMMIT), except that a REPLACE stream's own state is held until
** its table is swapped in (LB_STATE_HOLD_STREAM), and a GLOBAL or LEGACY
** state is held until the end when any stream of the read is replaced
** (LB_STATE_HOLD_GLOBAL), since it speaks for those streams too. A state
** with no checkpoint (the Faros kit's side channel: a message carrying
** redactedConfig or logs) is never stored (LB_STATE_SKIP); neither is a
** state after the read has failed (failed != 0). stream_replaced: the
** state's stream (a STREAM state with no namespace) is written with
** REPLACE. */
typedef enum {
  LB_STATE_COMMIT = 0,
  LB_STATE_HOLD_STREAM,
  LB_STATE_HOLD_GLOBAL,
  LB_STATE_SKIP
} lb_state_disposition;
struct lb_state_key;
lb_state_disposition lb_cache_state_disposition(const lb_jval *state_msg,
                                                const struct lb_state_key *key,
                                                int stream_replaced, int any_replaced,
                                                int failed);
/* The record-count check: a state's sourceStats.recordCount (field
** "sourceStats") or destinationStats.recordCount ("destinationStats")
** against the records that arrived before it. Returns 1 when the state
** carries a count that differs (*expected set to it), 0 when it agrees or
** carries none. */
int  lb_cache_state_count_mismatch(const lb_jval *state, const char *field, long long arrived,
                                   long long *expected);

/* The identity of a state, which matches a destination's echo to the state
** that was sent: its key (lb_state_key_of: spans into json) and the digest
** of its blob - "stream", else "global", else "data", null when it has
** none - in the canonical form of digest.h (lb__json_digest), so neither
** member order, white space, escapes, numbers spelled otherwise (1.0 and
** 1) nor what a destination adds beside the blob (destinationStats,
** sourceStats, an id) change it. json[0..len) is an AirbyteStateMessage
** object or a STATE message carrying one; *state (may be NULL) is set to
** the state object's span. Returns 0, LB_EINVAL when the text is not
** JSON or holds no state object, LB_ENOMEM. */
int  lb_cache_state_identity(const char *json, size_t len, struct lb_state_key *key,
                             lb_jval *state, char digest[65]);

/* --- the read side ----------------------------------------------------------- */

/* A growable byte buffer ({0} to start; free p when done).
** lb_cache_buf_reserve makes room for `more` bytes after len: LB_ENOMEM. */
typedef struct lb_cache_buf {
  char *p;
  size_t len, cap;
} lb_cache_buf;
int  lb_cache_buf_reserve(lb_cache_buf *b, size_t more);

/* A cursor over a stream's rows, as protocol RECORD lines:
**   {"type":"RECORD","record":{"stream":<stream>,"data":{...},"emitted_at":N}}\n
** (with "namespace" after the stream when ns is given), the data holding
** the source's columns only (NULL as null; JSON columns as their JSON,
** booleans as true/false, big integers as their digits), built with the
** shared JSON encoder (jsonenc.c); emitted_at from _airbyte_extracted_at.
** Rows come in table order (no sort: a sort of a big table costs more than
** the feed); after_raw_id limits them to _airbyte_raw_id > after (UUIDv7
** text sorts by time), NULL = all. */
typedef struct lb_cache_cursor_spec {
  const char *table;                 /* the stream's table (lb_cache_table_name) */
  const char *stream, *ns;           /* names in the lines; ns NULL = none */
  size_t stream_len, ns_len;
  const char *after_raw_id;          /* NULL = every row */
} lb_cache_cursor_spec;
/* NULL on failure (lb_cache_errmsg says why). */
lb_cache_cursor *lb_cache_cursor_open(lb_cache *c, const lb_cache_cursor_spec *spec);
/* Appends the next row's line to out and points *raw_id at its
** _airbyte_raw_id (valid until the next call; length in *raw_id_len, 0 when
** the row has none). 1 = a row, 0 = no more rows, negative on failure. */
int  lb_cache_cursor_next(lb_cache_cursor *cur, lb_cache_buf *out, const char **raw_id,
                          size_t *raw_id_len);
void lb_cache_cursor_close(lb_cache_cursor *cur);   /* NULL is fine */

/* --- ad-hoc SQL and introspection (the Lua layer's run_sql_query, datasets,
** checks) ----------------------------------------------------------------------- */

typedef enum {
  LB_VAL_NULL = 0,
  LB_VAL_INT,        /* i */
  LB_VAL_FLOAT,      /* d */
  LB_VAL_TEXT,       /* s, n (may hold NUL) */
  LB_VAL_JSON,       /* s, n: JSON text (a backend with a JSON type) */
  LB_VAL_BOOL,       /* i: 0 or 1 */
  LB_VAL_BIGINT      /* s, n: the digits of an integer beyond int64 */
} lb_cache_vtype;

typedef struct lb_cache_value {
  lb_cache_vtype type;
  long long i;
  double d;
  const char *s;
  size_t n;
  const char *name;  /* parameters: ":name", "@name", "$name"; NULL = positional */
} lb_cache_value;

/* Runs one or more statements (no results), in the caller's transaction
** if one is open. */
int  lb_cache_exec(lb_cache *c, const char *sql, size_t len);
/* Rows changed by the last statement. */
long long lb_cache_changes(lb_cache *c);
/* One statement with parameters (positional in order, or named), rows one
** at a time: query_next points *row at ncols values (valid until the next
** call) and returns 1, 0 at the end, negative on failure. col_kind is the
** declared kind of a result column that comes from a table column
** (lb_col_kind of cache_backend.h: the column types of the layout), -1 for
** an expression. NULL on failure (lb_cache_errmsg has the database's
** message and the statement). */
lb_cache_query *lb_cache_query_open(lb_cache *c, const char *sql, size_t len,
                                    const lb_cache_value *params, int nparams);
int  lb_cache_query_ncols(lb_cache_query *q);
const char *lb_cache_query_col_name(lb_cache_query *q, int i);
int  lb_cache_query_col_kind(lb_cache_query *q, int i);
int  lb_cache_query_next(lb_cache_query *q, const lb_cache_value **row);
void lb_cache_query_close(lb_cache_query *q);      /* NULL is fine */

/* 1 when a table of that name exists, 0 when not, negative on failure. */
int  lb_cache_has_table(lb_cache *c, const char *table);
/* Calls cb for each column of table in table order: its name, its kind
** (lb_col_kind, from the declared type; -1 when it has none of ours) and
** the declared type as the database spells it. 0 for a missing table (no
** calls). A non-zero return from cb stops and is returned. */
typedef int (*lb_cache_column_cb)(void *ud, const char *name, int kind, const char *decl);
int  lb_cache_columns(lb_cache *c, const char *table, lb_cache_column_cb cb, void *ud);
/* Calls cb for each stream cached under the current table prefix whose
** table exists, in (name, namespace) order: name, namespace ("" none),
** table, source, catalog_metadata (the JSON schema it was opened with). */
typedef struct lb_cache_stream_row {
  const char *name, *ns, *table, *source_name, *catalog_json;   /* ns "" = none */
  size_t name_len, ns_len, catalog_len;
} lb_cache_stream_row;
typedef int (*lb_cache_streams_cb)(void *ud, const lb_cache_stream_row *row);
int  lb_cache_streams(lb_cache *c, lb_cache_streams_cb cb, void *ud);

/* PyAirbyte's LowerCaseNormalizer: lower case, every character (code point)
** that is not [a-z0-9] becomes '_' (NUL too: len counts the bytes, never
** strlen), a leading digit gets a '_' in front. The one normalizer: the Lua
** layer calls it too (sqlite.normalize).
** Writes a NUL-terminated result into out (up to cap bytes) and returns its
** length, which may exceed cap - 1 (call again with a larger buffer); returns
** -1 when the name normalizes to nothing but underscores (PyAirbyte's
** PyAirbyteNameNormalizationError). */
long lb_cache_normalize(const char *name, size_t len, char *out, size_t cap);

/* Time-ordered UUIDv7 text (36 chars + NUL) from the cache's generator
** (the one _airbyte_raw_id comes from): strictly increasing within one
** cache. */
void lb_cache_uuid7(lb_cache *c, char out[37]);

/* Quarantine (record checks, on_invalid = "quarantine"): a record that
** failed its checks, kept as the source wrote it, in
**   _airbyte_quarantine(source_name, stream_name, stream_namespace,
**                       record_json, reasons, _airbyte_extracted_at,
**                       quarantined_at, quarantine_id)
** (created on first use; quarantine_id numbers the rows in the order they
** were kept, the order readers sort by), in the caller's transaction after the rows
** queued before it, so it commits with its neighbours. reasons_json is a
** JSON array of {check, field, path, message}. */
int lb_cache_put_quarantine(lb_cache *c, const char *source_name, const char *stream, size_t stream_len,
                            const char *ns, size_t ns_len, const char *record_json, size_t record_len,
                            const char *reasons_json, size_t reasons_len, long long emitted_at_ms);
/* The same, as the backends receive it (emitted_at_ms clamped). */
typedef struct lb_cache_quarantine {
  const char *source_name, *stream, *ns;          /* ns "" = none */
  size_t stream_len, ns_len;
  const char *record_json, *reasons_json;
  size_t record_len, reasons_len;
  long long emitted_at_ms;
} lb_cache_quarantine;

#endif
