/*
** cache_backend.h - what a cache backend implements (internal).
**
** cache.h is the interface callers see; cache.c implements it once, doing
** what is the same for every backend (argument checks, the table prefix,
** the UUIDv7 generator, the error buffer, the stream -> table rules of
** cache_names.c, state keys and the state rules), and calls the backend
** through the ops table below for what is not. A backend is one file
** (cache_sqlite.c, cache_pg.c) with:
**   - a constructor (lb_cache_sqlite_open, lb_cache_pg_open) that allocates
**     its cache struct, whose FIRST member is `lb_cache base`, and calls
**     lb__cache_init(&x->base, &its_ops) before anything else;
**   - streams whose struct starts with `lb_cache_stream base`, filled by
**     lb__cache_stream_init; cursors and queries likewise start with
**     `lb_cache_cursor base` / `lb_cache_query base`.
** The ops get arguments cache.c has already checked (non-NULL where the
** public function requires it); they report failures by returning a
** negative code after setting the message with lb__cache_seterr.
**
** Threading: one lb_cache is used by one thread at a time (a backend may
** run threads of its own behind it, as SQLite's writer thread does).
*/
#ifndef LB_CACHE_BACKEND_H
#define LB_CACHE_BACKEND_H

#include <stdarg.h>
#include <stdio.h>
#include "cache.h"
#include "textbuf.h"
#include "ids.h"
#include "background.h"

/* --- the schema -> columns mapping (cache_columns.c, shared) --------------- */

/* Column kinds, from a JSON schema property (PyAirbyte's airbyte/types.py
** resolution: airbyte_type, then "type", then well-known $refs). Each
** backend maps a kind to its SQL type name (SQLite: VARCHAR, BIGINT,
** DECIMAL(38,9), BOOLEAN, JSON; see cache.h "Column types"). */
typedef enum {
  LB_COL_STRING = 0,     /* also unions, no type, dates and times */
  LB_COL_INTEGER,
  LB_COL_NUMBER,
  LB_COL_BOOLEAN,
  LB_COL_JSON            /* object, array */
} lb_col_kind;

/* The kind of one property definition (a JSON schema object). */
lb_col_kind lb__col_kind_of(const lb_jval *def);

/* One column of a stream's table: a normalized property name. is_text:
** values go in as text (every JSON value as its text, strings decoded):
** the loader sets it for LB_COL_STRING, a backend corrects it from the
** column an existing table has (SQLite: TEXT affinity). */
typedef struct lb_cache_col {
  const char *name;       /* normalized, NUL-terminated, in the schema's pool */
  size_t namelen;
  int kind;               /* lb_col_kind */
  int is_text;
} lb_cache_col;

/* A property of the schema as the source spells it, and its column:
** several properties may map to one column when they normalize alike. */
typedef struct lb_cache_prop {
  const char *name;
  size_t len;
  int col;
} lb_cache_prop;

/* The columns of a stream from its JSON schema: top-level properties in
** schema order, normalized by lb_cache_normalize, duplicates merged, the
** three _airbyte_* names skipped; hash tables for the lookups of the
** record scanner. */
typedef struct lb_cache_schema {
  char *pool;
  lb_cache_col *cols;
  int ncols;
  lb_cache_prop *props;
  int nprops;
  int *pht;               /* property hash table: index + 1, 0 = empty */
  unsigned pmask;
  int *cht;               /* column-name hash table */
  unsigned cmask;
} lb_cache_schema;

/* Fills *sch (zeroed by the caller) from schema[0..len) (NULL or "" = no
** properties). Negative with the message in err on invalid JSON, a
** property that normalizes to nothing (PyAirbyteNameNormalizationError) or
** no memory; free *sch with lb__cache_schema_free either way. */
int  lb__cache_schema_load(lb_cache_schema *sch, const char *schema, size_t len,
                           char *err, size_t errlen);
void lb__cache_schema_free(lb_cache_schema *sch);
/* Index of the column / property of that exact name, or -1. */
int  lb__cache_schema_col(const lb_cache_schema *sch, const char *name, size_t len);
int  lb__cache_schema_prop(const lb_cache_schema *sch, const char *name, size_t len);
/* A value of a record, scanned and ready to bind or copy: its bytes in the
** record (or decoded beside it). TEXT is a decoded string, or the JSON text
** of an object/array, or of any value when the column is_text; BIGINT the
** digits of an integer beyond int64 (stored as such, never rounded). */
enum { LB_WV_NULL, LB_WV_INT, LB_WV_DBL, LB_WV_TEXT, LB_WV_BIGINT };
typedef struct lb_cache_wval {
  int kind;
  int len;
  const char *p;
  union { long long i; double d; } u;
} lb_cache_wval;

/* Scans the members of a jskim-validated object (p just after '{', end at
** its '}') into vals (one per column of sch, all set here): keys are
** matched to columns through the properties (a key that is not a property
** but normalizes to a column's name fills it), keys not in the schema are
** dropped, booleans become 1/0 unless the column is_text. Decoded strings
** go to dec, which has room for end - p bytes. *guess is the scanner's
** position hint, 0 to start (keep one per stream). 0, or -1 when the bytes
** are not the JSON they should be. */
int  lb__cache_scan_row(const lb_cache_schema *sch, int *guess, const char *p, const char *end,
                        lb_cache_wval *vals, char *dec);

/* 1 for _airbyte_raw_id, _airbyte_extracted_at, _airbyte_meta. */
int  lb__cache_is_internal_col(const char *name);

#define LB_CACHE_RAW_ID_COL "_airbyte_raw_id"
#define LB_CACHE_EXTRACTED_AT_COL "_airbyte_extracted_at"
#define LB_CACHE_META_COL "_airbyte_meta"
#define LB_CACHE_SHADOW_PREFIX "_airbyte_replace_"   /* REPLACE shadow tables */
#define LB_CACHE_PK_INDEX_PREFIX "_airbyte_pk_"      /* MERGE unique indexes */

/* --- names (cache_names.c, shared) ------------------------------------------ */

/* Who holds a table name, as a backend's lookup answers it. */
typedef enum {
  LB_NAME_FREE = 0,      /* nothing, or a table no stream row claims (adopted) */
  LB_NAME_STREAM,        /* a row of _airbyte_streams claims it: fields below */
  LB_NAME_OBJECT         /* an object that is not a table (index, view...): `what` */
} lb_name_owner_kind;

typedef struct lb_cache_name_owner {
  lb_name_owner_kind kind;
  /* LB_NAME_STREAM: the row's stream name, namespace ("" none), table prefix */
  const char *name, *ns, *prefix;
  size_t name_len, ns_len, prefix_len;
  const char *what;      /* LB_NAME_OBJECT: "index", "view", ... */
} lb_cache_name_owner;

/* A row of _airbyte_streams: lb_cache_stream_row of cache.h. */
typedef lb_cache_streams_cb lb_cache_stream_row_cb;

/* --- the common heads ---------------------------------------------------------- */

struct lb_cache_ops;

struct lb_cache {
  const struct lb_cache_ops *ops;
  char *prefix;                 /* table prefix, never NULL */
  lb_rng rng;                   /* the _airbyte_raw_id generator (ids.h) */
  lb_uuid7 uuid;
  char errmsg[512];
  /* the write lock (cache.h, lb_cache_set_nowait): set by cache.c; a
  ** backend that fails on it sets busy, and exec_ran to the bytes of its
  ** SQL whose statements ran */
  int nowait;
  int busy;
  long lock_timeout_ms;
  size_t exec_ran;
  /* a stopped exec: its text and how much of it ran (cache.c) */
  const char *exec_sql;
  size_t exec_len, exec_done;
  lb_cpus background;           /* where the backend's threads run (lb_cache_set_background) */
};

struct lb_cache_stream {
  lb_cache *c;
  char *name, *ns;              /* the stream's identity (ns "" = none) */
  size_t name_len, ns_len;
  char *table;                  /* final table name */
  lb_write_strategy strategy;
  long long rows;               /* accepted by write */
};

/* A cursor may outlive its cache (a feed's userdata collected after the
** cache was closed): its close goes through its own ops pointer and must
** not touch the cache. Queries are closed by the cache's close. */
struct lb_cache_cursor {
  lb_cache *c;
  const struct lb_cache_ops *ops;
};

struct lb_cache_query {
  lb_cache *c;
};

/* What cache.c hands to a backend's stream_open: the identity checked, the
** table decided by cache_names.c, the schema's columns mapped, the primary
** key as column indexes. */
typedef struct lb_cache_stream_spec {
  const char *source_name;                  /* "" when none */
  const lb_cache_stream_id *id;             /* ns "" = none */
  const char *table;                        /* final table (free or the stream's) */
  const char *json_schema;                  /* as given (catalog_metadata) */
  size_t schema_len;
  lb_cache_schema *schema;                  /* the backend takes it over (frees it) */
  lb_write_strategy strategy;
  const int *pk;                            /* column indexes into schema->cols */
  int npk;
} lb_cache_stream_spec;

/* A state row to store, its key derived by cache.c (lb_state_key_of). */
typedef struct lb_cache_state_row {
  const char *source_name;
  const char *key_name, *key_ns;            /* "_GLOBAL"/"_LEGACY" or the stream's; ns "" */
  size_t key_name_len, key_ns_len;
  const char *state_json;
  size_t len;
  /* destination states only: */
  const char *destination_name, *config_hash;   /* config_hash "" = none */
} lb_cache_state_row;

/* --- the ops ----------------------------------------------------------------------- */

typedef struct lb_cache_ops {
  const char *kind;             /* "sqlite", "postgres": lb_cache_kind */
  /* reserved name prefixes of the backend itself beyond "_airbyte_" and
  ** "_luabyte_" (SQLite: "sqlite_"; Postgres: "pg_"), NULL-terminated */
  const char *const *reserved;
  /* identifiers longer than this many bytes are cut by cache_names.c
  ** (deterministically, with a digest: Postgres' 63); 0 = no limit */
  size_t max_ident;

  void (*close)(lb_cache *c);   /* frees everything, `c` included */

  int  (*begin)(lb_cache *c);
  int  (*commit)(lb_cache *c);
  int  (*rollback)(lb_cache *c);
  int  (*in_transaction)(const lb_cache *c);

  /* A backend without a writer thread: set_async/sync return 0 (after a
  ** failed earlier write, its error), wait_room/wait_idle 1 at once. */
  int  (*set_async)(lb_cache *c, int on);
  int  (*sync)(lb_cache *c);
  int  (*wait_room)(lb_cache *c, size_t data_len, uint64_t deadline_ns);
  int  (*wait_idle)(lb_cache *c, uint64_t deadline_ns);

  /* Name lookups for cache_names.c. stream_rows: the _airbyte_streams
  ** rows of (prefix, name) in namespace ns (NULL = any), in namespace
  ** order. table_owner: who holds table name `table` (names compared as
  ** the backend's catalog compares them); the strings it points to stay
  ** valid until the next call on the cache. */
  int  (*stream_rows)(lb_cache *c, const char *prefix, const char *name, size_t name_len,
                      const char *ns, size_t ns_len, lb_cache_stream_row_cb cb, void *ud);
  int  (*table_owner)(lb_cache *c, const char *table, lb_cache_name_owner *out);

  /* Streams: open (create or evolve the table, record the stream in
  ** _airbyte_streams with spec->table, prepare writing; REPLACE into the
  ** shadow table), write one record (data: a jskim-validated object;
  ** emitted_at_ms already clamped; meta NULL = "{}"), finish (REPLACE
  ** swap, in the caller's transaction), abort, close (frees). The backend
  ** increments base.rows per accepted record. */
  lb_cache_stream *(*stream_open)(lb_cache *c, const lb_cache_stream_spec *spec);
  int  (*stream_write)(lb_cache_stream *s, const lb_jval *data, long long emitted_at_ms,
                       const char *meta_json);
  int  (*stream_finish)(lb_cache_stream *s);
  int  (*stream_abort)(lb_cache_stream *s);
  void (*stream_close)(lb_cache_stream *s);

  /* State, destination state, the ledger, quarantine: rows with their keys
  ** derived; get_states lists the source's rows whose key starts with the
  ** prefix, in (namespace, key name) order. */
  int  (*put_state)(lb_cache *c, const lb_cache_state_row *row);
  int  (*get_states)(lb_cache *c, const char *source_name, const char *prefix,
                     lb_cache_state_cb cb, void *ud);
  int  (*put_destination_state)(lb_cache *c, const lb_cache_state_row *row);
  int  (*get_destination_states)(lb_cache *c, const char *destination_name,
                                 const char *config_hash, const char *source_name,
                                 lb_cache_state_cb cb, void *ud);
  int  (*get_delivered)(lb_cache *c, const lb_cache_delivery *d, char *raw_id, size_t cap);
  int  (*put_delivered)(lb_cache *c, const lb_cache_delivery *d, const char *raw_id);
  int  (*move_destination)(lb_cache *c, const char *destination_name, const char *from_hash,
                           const char *to_hash);
  int  (*put_quarantine)(lb_cache *c, const lb_cache_quarantine *q);

  /* Stream locks (issue 9 §4): see lb_cache_lock_stream. */
  int  (*lock_stream)(lb_cache *c, const char *source_name, const lb_cache_stream_id *id,
                      long timeout_ms, char *err, size_t errlen);
  void (*unlock_stream)(lb_cache *c, const char *source_name, const lb_cache_stream_id *id);

  /* The read side: see lb_cache_cursor_open. */
  lb_cache_cursor *(*cursor_open)(lb_cache *c, const lb_cache_cursor_spec *spec);
  int  (*cursor_next)(lb_cache_cursor *cur, lb_cache_buf *out, const char **raw_id,
                      size_t *raw_id_len);
  void (*cursor_close)(lb_cache_cursor *cur);

  /* Ad-hoc SQL and introspection: see lb_cache_exec, lb_cache_query_open,
  ** lb_cache_has_table, lb_cache_columns, lb_cache_streams. */
  int  (*exec)(lb_cache *c, const char *sql, size_t len);
  long long (*changes)(lb_cache *c);
  lb_cache_query *(*query_open)(lb_cache *c, const char *sql, size_t len,
                                const lb_cache_value *params, int nparams);
  int  (*query_ncols)(lb_cache_query *q);
  const char *(*query_col_name)(lb_cache_query *q, int i);
  int  (*query_col_kind)(lb_cache_query *q, int i);
  int  (*query_next)(lb_cache_query *q, const lb_cache_value **row);
  void (*query_close)(lb_cache_query *q);
  int  (*has_table)(lb_cache *c, const char *table);
  int  (*columns)(lb_cache *c, const char *table, lb_cache_column_cb cb, void *ud);
  int  (*streams)(lb_cache *c, const char *prefix, lb_cache_stream_row_cb cb, void *ud);

  /* Queued transactions (lb_cache_begin_queued / lb_cache_commit_queued),
  ** OPTIONAL: NULL runs them at once through begin, put_state and commit.
  ** commit_queued gets the state row with its key derived (NULL = no
  ** state) and queues it, COMMIT and, when begin_again, a BEGIN after. */
  int  (*begin_queued)(lb_cache *c);
  int  (*commit_queued)(lb_cache *c, const lb_cache_state_row *state, int begin_again);
} lb_cache_ops;

/* --- for backends, from cache.c ------------------------------------------------------ */

/* Sets up the head: ops, prefix "", the UUID generator seeded. LB_ENOMEM. */
int  lb__cache_init(lb_cache *c, const lb_cache_ops *ops);
/* Frees what the head owns (not c itself). */
void lb__cache_fini(lb_cache *c);
/* Fills the head of a stream from the spec (copies of the names). */
int  lb__cache_stream_init(lb_cache_stream *s, lb_cache *c, const lb_cache_stream_spec *spec);
void lb__cache_stream_fini(lb_cache_stream *s);

/* --- for backends and the helpers under cache.c ---------------------------------------- */

/* printf into c->errmsg (what lb_cache_errmsg returns). Defined here, not in
** cache.c, so that cache_names.c and cache_columns.c, which cache.c calls,
** never call back up into it. */
static inline void lb__cache_seterr(lb_cache *c, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
static inline void lb__cache_seterr(lb_cache *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
  va_end(ap);
}

/* _airbyte_extracted_at text of an emitted_at, "YYYY-MM-DDTHH:MM:SS.mmm+00:00"
** (clamped to LB_CACHE_MIN_MS..MAX_MS): lb__cache_ts formats ms into t->text
** (t->len bytes), formatting the seconds again only when they change, so
** keep one per stream ({0} to start). lb__cache_parse_ts reads that text
** (or without the fraction or offset) back to epoch ms, 0 when it cannot. */
typedef struct lb_cache_ts {
  long long sec;
  int len;
  char text[48];
} lb_cache_ts;
void lb__cache_ts(lb_cache_ts *t, long long ms);
long long lb__cache_parse_ts(const char *s, size_t n);

/* The GLOBAL merge (issue 9 section 4): runners on different streams of
** one source each commit the source's one GLOBAL state row, so that each
** would drop the others' progress. A backend storing a "_GLOBAL" state
** calls this, in the transaction that stores it, with the row it holds:
** the new state (its shared_state wins) keeps the stored stream_states
** entries of streams it does not name. 1 and the merged text appended to
** out; 0 when the new state is to be stored as it is (either one is no
** GLOBAL state with a stream_states array, or nothing is to be kept);
** LB_ENOMEM. */
int  lb__cache_merge_global(const char *stored, size_t slen, const char *incoming, size_t ilen,
                            lb_sbuf *out);

/* The stream -> table rules (cache_names.c): the table of (ns, name)
** under the cache's prefix, as a fresh string (see cache.h "Stream
** names"); ns NULL = any namespace. */
int  lb__cache_resolve_table(lb_cache *c, const char *name, size_t nlen, const char *ns,
                             size_t nslen, char **out);
/* 1 when t is in the reserved space of this cache's backend. */
int  lb__cache_is_reserved(const lb_cache *c, const char *t);
/* Cuts a NUL-terminated name longer than ops->max_ident in place, keeping
** it unique (a digest of the whole name at its end). */
void lb__cache_fit_ident(const lb_cache *c, char *name);

/* SQL and messages are built in lb_sbuf (textbuf.h), with these
** cache-specific pieces: */
/* A double-quoted SQL identifier (quotes inside doubled). */
void lb__sb_ident(lb_sbuf *b, const char *s);
/* A name for messages: quoted, control bytes (NUL...) as \u00XX, cut at
** 100 bytes; and "stream 'name' (namespace 'ns')". */
void lb__sb_name(lb_sbuf *b, const char *s, size_t n);
void lb__sb_stream(lb_sbuf *b, const char *name, size_t nlen, const char *ns, size_t nslen);

#endif
