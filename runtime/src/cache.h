/*
** cache.h - the SQLite cache, laid out the way PyAirbyte lays out its caches.
**
** One table per stream, named by PyAirbyte's normalizer (lb_cache_normalize),
** with one typed column per top-level property of the stream's JSON schema,
** in schema order, followed by
**   _airbyte_raw_id        VARCHAR                   UUIDv7 text, time-ordered
**   _airbyte_extracted_at  TIMESTAMP WITH TIME ZONE  emitted_at as ISO-8601 text,
**                                                    "2022-11-29T00:35:07.441+00:00"
**   _airbyte_meta          JSON                      '{}' unless the caller says
** and the bookkeeping tables (PyAirbyte's names and columns):
**   _airbyte_streams(stream_name, source_name, table_name, catalog_metadata)
**   _airbyte_state(source_name, stream_name, table_name, state_json, last_updated)
**   _airbyte_destination_state(destination_name, source_name, stream_name,
**                              state_json, last_updated)
**
** Column types.  SQLite keeps a type per value; a column's declared type only
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
** Durability.  The database runs with journal_mode=WAL and synchronous=NORMAL:
** a committed transaction may be lost if the machine loses power before the
** next WAL checkpoint syncs, but the file is always consistent, and a crash
** of the process (the failure luabyte guarantees against: connector or host
** killed mid-sync) loses nothing that was committed, because the WAL is
** already in the OS page cache.  Records and the STATE that follows them are
** committed in one transaction by the caller, so state never runs ahead of
** data.  Readers in other connections see the last commit while a sync runs.
**
** Functions return 0 or a negative code: LB_ENOMEM, LB_EINVAL (misuse, bad
** input), LB_CACHE_ESQL (SQLite failed: lb_cache_errmsg tells why).  Nothing
** here exits, aborts or raises.  One lb_cache is used by one thread at a time.
*/
#ifndef LB_CACHE_H
#define LB_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "luabyte.h"
#include "jskim.h"

#define LB_CACHE_ESQL (-100)   /* SQLite error, see lb_cache_errmsg */

typedef struct lb_cache lb_cache;
typedef struct lb_cache_stream lb_cache_stream;

typedef enum {
  LB_WRITE_APPEND,    /* plain INSERT */
  LB_WRITE_MERGE,     /* upsert on the primary key (unique index) */
  LB_WRITE_REPLACE    /* into a shadow table swapped in by _finish */
} lb_write_strategy;

/* Open or create the database file at path (its directory must exist) and
** the _airbyte_* tables. ":memory:" works. On failure *out is NULL and err
** says why. */
int  lb_cache_sqlite_open(const char *path, lb_cache **out, char *err, size_t errlen);
/* Closes the streams still open (their statements; unfinished REPLACE shadow
** tables stay and are dropped by the next open of that stream), rolls back an
** open transaction and closes the database. NULL is fine. */
void lb_cache_close(lb_cache *c);

/* Transactions: BEGIN IMMEDIATE (takes the write lock now, so a concurrent
** writer waits up to the busy timeout here rather than failing later).
** Nesting is not supported: begin inside a transaction is LB_EINVAL. */
int  lb_cache_begin(lb_cache *c);
int  lb_cache_commit(lb_cache *c);
int  lb_cache_rollback(lb_cache *c);
int  lb_cache_in_transaction(const lb_cache *c);

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

/* Message of the last failure on this cache (never NULL). */
const char *lb_cache_errmsg(lb_cache *c);
/* The sqlite3 connection, for the Lua binding's ad-hoc SQL (waits for
** queued rows first, so the caller may use it right away). */
struct sqlite3 *lb_cache_db(lb_cache *c);

/* Table prefix prepended to stream names (PyAirbyte's table_prefix), "" by
** default. It names the tables and keys the state rows. */
int  lb_cache_set_table_prefix(lb_cache *c, const char *prefix);
const char *lb_cache_table_prefix(const lb_cache *c);

/* Opens a stream for writing: creates its table when missing (typed columns
** from the JSON schema), adds columns for properties that are new since the
** table was made (types of existing columns never change), records the stream
** in _airbyte_streams, and prepares the one INSERT statement used by every
** write. REPLACE writes into the shadow table "_airbyte_replace_<table>"
** (recreated empty; readers keep seeing the old table until _finish). MERGE
** needs primary_key and keeps a unique index "<table>_airbyte_pk" on it
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

/* Writes one record. data is the record's "data" object, validated by jskim
** (its bytes must stay valid for the call only). meta_json is the
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

/* Records accepted by lb_cache_stream_write (in async mode some may still
** be queued). */
long long lb_cache_stream_rows_written(const lb_cache_stream *s);
const char *lb_cache_stream_table(const lb_cache_stream *s);   /* final table name */
lb_cache *lb_cache_stream_cache(const lb_cache_stream *s);

/* State.  stream_name "" (or NULL) means a GLOBAL or LEGACY message: it is
** kept under "_GLOBAL" or "_LEGACY" (from the message's "type"), as PyAirbyte
** names them. One row per (source, table_prefix + stream name): the last
** message wins. state_json is the whole AirbyteStateMessage and must be
** valid JSON (LB_EINVAL otherwise). */
int  lb_cache_put_state(lb_cache *c, const char *source_name, const char *stream_name,
                        const char *state_json, size_t len);
/* Calls cb for every state row of the source under the current table
** prefix, in (stream_name) order; a non-zero return from cb stops and is
** returned. */
typedef int (*lb_cache_state_cb)(void *ud, const char *stream_name,
                                 const char *state_json, size_t len);
int  lb_cache_get_states(lb_cache *c, const char *source_name,
                         lb_cache_state_cb cb, void *ud);
/* Same for destination-echoed states, keyed (destination, source, stream). */
int  lb_cache_put_destination_state(lb_cache *c, const char *destination_name,
                                    const char *source_name, const char *stream_name,
                                    const char *state_json, size_t len);
/* source_name NULL = every source of that destination. */
int  lb_cache_get_destination_states(lb_cache *c, const char *destination_name,
                                     const char *source_name,
                                     lb_cache_state_cb cb, void *ud);

/* PyAirbyte's LowerCaseNormalizer: lower case, every character (code point)
** that is not [a-z0-9] becomes '_', a leading digit gets a '_' in front.
** Writes a NUL-terminated result into out (up to cap bytes) and returns its
** length, which may exceed cap - 1 (call again with a larger buffer); returns
** -1 when the name normalizes to nothing but underscores (PyAirbyte's
** PyAirbyteNameNormalizationError). */
long lb_cache_normalize(const char *name, size_t len, char *out, size_t cap);

/* Time-ordered UUIDv7 text (36 chars + NUL) from the cache's generator
** (the one _airbyte_raw_id comes from): strictly increasing within one
** cache. */
void lb_cache_uuid7(lb_cache *c, char out[37]);

/* For the C pump: the C objects behind the Lua userdata of lua_cache.c
** ("airbyte.SQLiteDB" and "airbyte.SQLiteStream"). Raise if the value is not
** one, or is closed. */
struct lua_State;
lb_cache *lb__cache_check(struct lua_State *L, int idx);
lb_cache_stream *lb__cache_stream_check(struct lua_State *L, int idx);

#endif
