/*
** cache_pg.h - the PostgreSQL cache: the layout of cache.h in a schema of a
** PostgreSQL database, as PyAirbyte's PostgresCache lays it out.
**
** Everything lives in schema `schema_name` (default "airbyte_raw", created
** when missing): one table per stream with typed columns and the three
** _airbyte_* columns, _airbyte_streams, _airbyte_state,
** _airbyte_destination_state, the ledger _luabyte_destination_progress,
** _airbyte_quarantine (on first use) and _luabyte_stream_locks (who holds a
** stream lock, for the message of a runner that waits). Names over 63 bytes
** are cut with a digest (pg.h).
**
** Column types: integer BIGINT, number NUMERIC (exact: every digit and
** exponent a source sends reads back as the same value), boolean BOOLEAN,
** object/array JSON (the text as received, key order and spelling kept),
** string VARCHAR. A value the column's type cannot hold widens the column
** once, never losing it: an integer beyond int64 or a fraction in a BIGINT
** column makes it NUMERIC; a string, object or boolean in a number or
** boolean column, or a string holding U+0000 (PostgreSQL text cannot) in a
** VARCHAR column, makes it JSON (the existing values converted with
** to_json). VARCHAR columns hold strings decoded and other values as their
** JSON text, as in SQLite.
**
** Writing: rows are sent with COPY ... FROM STDIN (text format) while the
** next records are scanned, one COPY kept open across batches of 256 KB
** per stream; a barrier (state, commit, finish, any read) ends it. MERGE
** copies into a temporary staging table and upserts from it with INSERT
** ... ON CONFLICT on the unique index "_airbyte_pk_<table>" at the barrier
** (the last record of a key wins). REPLACE copies into the shadow table
** "_airbyte_replace_<table>", swapped in by finish in the caller's
** transaction. DDL on a stream's table takes a transaction-level advisory
** lock on it, so runners opening one table at once do it one after another.
**
** Reading: cursors and SELECT queries outside a transaction run as
** server-side cursors (DECLARE/FETCH, 1000 rows at a time) on a second
** connection, so a feed or a dataset loop never holds the first one while
** the caller writes states and ledger entries; inside a caller's
** transaction they run on its connection and see its uncommitted rows.
**
** Stream locks: a session-level advisory lock on a digest of (schema,
** source, namespace, stream), taken with pg_try_advisory_lock (never the
** server's blocking wait), released by unlock, close, or the death of the
** process (the server ends its session). With timeout_ms 0 it is one try
** (the read layer retries by yielding); a positive timeout polls every
** 50 ms on the calling thread. The holder (pid@host, since) is kept in
** _luabyte_stream_locks for the message of the runner that gives up.
** A stream already locked through this same cache (another task of the
** process) is refused at once: session locks would nest, not exclude.
*/
#ifndef LB_CACHE_PG_H
#define LB_CACHE_PG_H

#include "cache.h"
#include "pg.h"

#define LB_CACHE_PG_DEFAULT_SCHEMA "airbyte_raw"

/* Connects with p (pg.h: PyAirbyte's parameter names or a dsn), creates the
** schema (NULL = "airbyte_raw") and the bookkeeping tables when missing.
** On failure *out is NULL and err says what failed and what the server
** said, the password masked. */
int lb_cache_pg_open(const lb_pg_params *p, const char *schema_name, lb_cache **out,
                     char *err, size_t errlen);

/* The schema the cache lives in. */
const char *lb_cache_pg_schema(lb_cache *c);

#endif
