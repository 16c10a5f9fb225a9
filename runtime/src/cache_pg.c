/*
** cache_pg.c - the PostgreSQL cache backend (see cache_pg.h for the layout,
** cache_backend.h for the ops it implements).
**
** The hot path is pgs_write: one pass over the record's members puts each
** value in its column's slot (the schema's hash tables find the column),
** checks that the column's type can hold it (else the column widens at
** once, see cache_pg.h), then the row is appended to the stream's COPY
** buffer in column order, escaped for COPY's text format. Full buffers go
** to the server with PQputCopyData while the COPY stays open, so the
** server parses and inserts one batch while this side scans the next.
*/
#define _GNU_SOURCE        /* gethostname, usleep under -std=c99 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "cache_backend.h"
#include "cache_pg.h"
#include "digest.h"
#include "jsonenc.h"

#define COPY_CHUNK (256u * 1024u)   /* bytes of COPY text per PQputCopyData */
#define FETCH_ROWS 1000             /* rows per FETCH of a server-side cursor */
#define LOCK_POLL_US 50000          /* between tries of a stream lock */

/* type OIDs of pg_type.h (stable across versions) */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_OID 26
#define OID_JSON 114
#define OID_FLOAT4 700
#define OID_FLOAT8 701
#define OID_NUMERIC 1700
#define OID_JSONB 3802
#define OID_TIMESTAMPTZ 1184

static const char *const kind_sql[] = { "VARCHAR", "BIGINT", "NUMERIC", "BOOLEAN", "JSON" };

typedef struct pg_stream pg_stream;
typedef struct pg_cursor pg_cursor;

typedef struct pg_cache {
  lb_cache base;
  lb_pg_params p;               /* copies, for the reader connection and messages */
  char *pstr[7];                /* their storage */
  PGconn *conn;                 /* writes, DDL, state, the caller's transactions */
  PGconn *rconn;                /* server-side cursors outside a transaction */
  int rcursors;                 /* cursors open on rconn (its transaction) */
  unsigned cursor_seq;
  char *schema;                 /* as given */
  char *qschema;                /* quoted */
  pg_stream *streams;
  pg_stream *copying;           /* the stream whose COPY is open on conn */
  int failed;                   /* a COPY or merge failed: sticky until begin/rollback */
  long long changes;
  PGresult *owner_res;          /* table_owner's strings live here */
  uint64_t held[64];            /* stream locks this cache holds */
  int nheld;
  int want_tx;                  /* the caller began a transaction and has not ended it */
  pg_cursor *cursors;           /* open cursors and queries (detached at close) */
  /* REPLACE swaps finished in the caller's transaction, done by its commit
  ** (so readers of the old table never wait on the swap's lock meanwhile) */
  struct swap { char *table, *qtable, *qtarget; } *swaps;
  int nswaps;
} pg_cache;

struct pg_stream {
  lb_cache_stream base;
  pg_cache *pc;
  pg_stream *prev, *next;
  lb_write_strategy strategy;
  lb_cache_schema *sch;
  int *kind;                    /* each column's type now (lb_col_kind) */
  int *pk;
  int npk;
  char *target;                 /* table written to: final or shadow (unquoted) */
  char *qtable;                 /* "schema"."table" */
  char *qtarget;                /* "schema"."target", or the staging table for MERGE */
  char *stage;                  /* MERGE: the temporary staging table (quoted) */
  int staged;                   /* MERGE: rows in the staging table to merge */
  char *copy_sql;               /* COPY <target> (<cols>) FROM STDIN */
  lb_cache_buf buf;             /* COPY text not yet sent */
  lb_jval *vals;                /* the current record, per column */
  const char **dec;             /* decoded string per column (NULL = raw) */
  size_t *declen;
  char *arena;                  /* decoded strings of the current record */
  size_t arena_cap;
  int guess;
  int finished;
  lb_cache_ts ts;               /* _airbyte_extracted_at text of the last record */
};

struct pg_cursor {
  lb_cache_cursor base;
  pg_cache *pc;                 /* NULL once the cache is closed under it */
  pg_cursor *prev, *next;       /* the cache's open cursors and queries */
  PGconn *conn;
  char name[32];
  int on_reader;
  PGresult *res;
  int row, nrows, done;
  int ncols, col_raw, col_ts;
  unsigned char *ckind;         /* per column: how it is written */
  char *keys;                   /* per column ",\"name\":" back to back */
  size_t *key_off;
  char *head;                   /* {"type":"RECORD","record":{"stream":..[,"namespace":..],"data":{ */
  size_t head_len;
};

typedef struct pg_query {
  lb_cache_query base;
  pg_cursor cur;                /* cur.name[0] == 0: a materialized result */
  lb_cache_value *vals;
  int *kinds;
  lb_cache_ts *ts;              /* per column: timestamps in the cache's spelling */
} pg_query;

enum { CK_TEXT, CK_NUM, CK_BOOL, CK_JSON, CK_INTERNAL };

/* --- small helpers ---------------------------------------------------------------- */

#define PC(c) ((pg_cache *)(void *)(c))
#define PS(s) ((pg_stream *)(void *)(s))

static char *dupn(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) { memcpy(p, s, n); p[n] = '\0'; }
  return p;
}

static int oom(pg_cache *pc) {
  lb__cache_seterr(&pc->base, "out of memory");
  return LB_ENOMEM;
}

/* The server's words for a failed result, or the connection's. */
static int pgerr(pg_cache *pc, PGresult *res, const char *what) {
  if (res && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY))
    lb__pg_result_error(&pc->p, res, what, pc->base.errmsg, sizeof pc->base.errmsg);
  else
    lb__pg_error(&pc->p, pc->conn, what, NULL, pc->base.errmsg, sizeof pc->base.errmsg);
  return LB_CACHE_ESQL;
}

/* A statement on conn; NULL (message set) unless it succeeded. */
static PGresult *run(pg_cache *pc, PGconn *conn, const char *sql, int n, const char *const *vals,
                     const char *what) {
  PGresult *res = n ? PQexecParams(conn, sql, n, NULL, vals, NULL, NULL, 0) : PQexec(conn, sql);
  ExecStatusType st = PQresultStatus(res);
  if (res && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) return res;
  if (conn != pc->conn && (res == NULL || !PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)))
    lb__pg_error(&pc->p, conn, what ? what : sql, NULL, pc->base.errmsg, sizeof pc->base.errmsg);
  else
    pgerr(pc, res, what ? what : sql);
  PQclear(res);
  return NULL;
}

static int exec1(pg_cache *pc, const char *sql, int n, const char *const *vals) {
  PGresult *res = run(pc, pc->conn, sql, n, vals, NULL);
  if (res == NULL) return LB_CACHE_ESQL;
  PQclear(res);
  return 0;
}

/* "schema"."name" */
static void sb_qual(lb_sbuf *b, pg_cache *pc, const char *name) {
  lb__sb_add(b, pc->qschema);
  lb__sb_add(b, ".");
  lb__sb_ident(b, name);
}

static int sb_done(pg_cache *pc, lb_sbuf *b) {
  if (b->oom || b->p == NULL) return oom(pc);
  return 0;
}

/* Runs the statement built in b and frees b (ready for reuse). */
static int exec_sb(pg_cache *pc, lb_sbuf *b) {
  int rc = sb_done(pc, b);
  if (rc == 0) rc = exec1(pc, b->p, 0, NULL);
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
  b->oom = 0;
  return rc;
}

/* a .. b as a fresh string, cut to PostgreSQL's 63 bytes by the cache's
** one rule for long names */
static char *pg_name2(pg_cache *pc, const char *a, const char *b) {
  lb_sbuf t = {0};
  lb__sb_add(&t, a);
  lb__sb_add(&t, b);
  if (t.oom) { free(t.p); return NULL; }
  lb__cache_fit_ident(&pc->base, t.p);
  return t.p;
}

/* PostgreSQL text cannot hold a NUL byte: names with one are refused. */
static int no_nul(pg_cache *pc, const char *s, size_t n, const char *what) {
  if (s && memchr(s, '\0', n)) {
    lb__cache_seterr(&pc->base, "PyAirbyteCacheError: PostgreSQL cannot store %s holding a NUL byte (\\u0000)", what);
    return LB_EINVAL;
  }
  return 0;
}

/* A 64-bit key for an advisory lock: the first bytes of a digest. */
static int64_t lock_key(const char *const *parts, const size_t *lens, int n) {
  lb__sha256 sh;
  unsigned char d[32];
  uint64_t k = 0;
  int i;
  lb__sha256_init(&sh);
  for (i = 0; i < n; i++) {
    lb__sha256_update(&sh, parts[i], lens[i]);
    lb__sha256_update(&sh, "", 1);
  }
  lb__sha256_final(&sh, d);
  for (i = 0; i < 8; i++) k = (k << 8) | d[i];
  return (int64_t)k;
}

/* pg_advisory_xact_lock on what: DDL on one table (or the bookkeeping
** tables) by one runner at a time, held to the end of the transaction. */
static int xact_lock(pg_cache *pc, const char *what) {
  const char *parts[3] = { "luabyte ddl", pc->schema, what };
  size_t lens[3] = { 11, strlen(pc->schema), strlen(what) };
  char key[32];
  const char *v[1] = { key };
  snprintf(key, sizeof key, "%lld", (long long)lock_key(parts, lens, 3));
  return exec1(pc, "SELECT pg_advisory_xact_lock($1::int8)", 1, v);
}

static int in_tx(const pg_cache *pc) {
  PGTransactionStatusType t = PQtransactionStatus(pc->conn);
  return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

/* Runs f in the caller's transaction, or in one of its own. */
typedef int (*tx_fn)(pg_cache *pc, void *ud);
static int with_tx(pg_cache *pc, tx_fn f, void *ud) {
  int rc, own = !in_tx(pc);
  if (own && (rc = exec1(pc, "BEGIN", 0, NULL)) < 0) return rc;
  rc = f(pc, ud);
  if (own) {
    if (rc < 0) {
      char msg[sizeof pc->base.errmsg];
      memcpy(msg, pc->base.errmsg, sizeof msg);
      PQclear(PQexec(pc->conn, "ROLLBACK"));
      memcpy(pc->base.errmsg, msg, sizeof msg);
    } else {
      rc = exec1(pc, "COMMIT", 0, NULL);
    }
  }
  return rc;
}

/* --- COPY ----------------------------------------------------------------------------- */

/* Ends the open COPY, if any: the server reports how it went. */
static int end_copy(pg_cache *pc) {
  pg_stream *s = pc->copying;
  PGresult *res;
  int rc = 0;
  if (s == NULL) return 0;
  pc->copying = NULL;
  if (PQputCopyEnd(pc->conn, NULL) != 1) {
    lb__pg_error(&pc->p, pc->conn, "ending COPY", NULL, pc->base.errmsg, sizeof pc->base.errmsg);
    rc = LB_CACHE_ESQL;
  }
  while ((res = PQgetResult(pc->conn)) != NULL) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK && rc == 0) {
      char what[200];
      snprintf(what, sizeof what, "writing to table '%.100s'", s->target);
      rc = pgerr(pc, res, what);
    }
    PQclear(res);
  }
  return rc;
}

/* Sends what the stream has buffered, starting its COPY when another (or
** none) is open. */
static int flush_stream(pg_stream *s) {
  pg_cache *pc = s->pc;
  int rc;
  if (s->buf.len == 0) return 0;
  if (pc->copying != s) {
    PGresult *res;
    if ((rc = end_copy(pc)) < 0) return rc;
    if (s->stage) {
      /* made per COPY: a rolled-back transaction takes a new temporary table with it */
      lb_sbuf b = {0};
      lb__sb_add(&b, "CREATE TEMP TABLE IF NOT EXISTS ");
      lb__sb_add(&b, s->stage);
      lb__sb_add(&b, " (LIKE ");
      lb__sb_add(&b, s->qtable);
      lb__sb_add(&b, ")");
      rc = exec_sb(pc, &b);
      if (rc < 0) return rc;
    }
    res = PQexec(pc->conn, s->copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
      char what[200];
      snprintf(what, sizeof what, "writing to table '%.100s'", s->target);
      rc = pgerr(pc, res, what);
      PQclear(res);
      return rc;
    }
    PQclear(res);
    pc->copying = s;
  }
  if (PQputCopyData(pc->conn, s->buf.p, (int)s->buf.len) != 1) {
    char what[200];
    snprintf(what, sizeof what, "writing to table '%.100s'", s->target);
    lb__pg_error(&pc->p, pc->conn, what, NULL, pc->base.errmsg, sizeof pc->base.errmsg);
    pc->copying = NULL;
    return LB_CACHE_ESQL;
  }
  s->buf.len = 0;
  if (s->stage) s->staged = 1;
  return 0;
}

static void sb_cols(lb_sbuf *b, pg_stream *s, const char *prefix) {
  int i;
  for (i = 0; i < s->sch->ncols + 3; i++) {
    static const char *const internal[3] = {
      LB_CACHE_RAW_ID_COL, LB_CACHE_EXTRACTED_AT_COL, LB_CACHE_META_COL };
    if (i) lb__sb_add(b, ", ");
    if (prefix) lb__sb_add(b, prefix);
    lb__sb_ident(b, i < s->sch->ncols ? s->sch->cols[i].name : internal[i - s->sch->ncols]);
  }
}

/* The key columns, each followed by `after` and separated by `sep`:
** ("a", "b") as "a, b", or "a IS NOT NULL AND b IS NOT NULL". */
static void sb_pk(lb_sbuf *b, const pg_stream *s, const char *after, const char *sep) {
  int i;
  for (i = 0; i < s->npk; i++) {
    if (i) lb__sb_add(b, sep);
    lb__sb_ident(b, s->sch->cols[s->pk[i]].name);
    lb__sb_add(b, after);
  }
}

/* MERGE: the staged rows into the table, the last of each key winning;
** rows with a NULL key part never conflict and go in as they are. */
static int merge_stage(pg_stream *s) {
  pg_cache *pc = s->pc;
  lb_sbuf b = {0};
  int i, j, first = 1, rc;
  if (!s->staged) return 0;
  lb__sb_add(&b, "INSERT INTO ");
  lb__sb_add(&b, s->qtable);
  lb__sb_add(&b, " (");
  sb_cols(&b, s, NULL);
  lb__sb_add(&b, ") SELECT DISTINCT ON (");
  sb_pk(&b, s, "", ", ");
  lb__sb_add(&b, ") ");
  sb_cols(&b, s, NULL);
  lb__sb_add(&b, " FROM ");
  lb__sb_add(&b, s->stage);
  lb__sb_add(&b, " WHERE ");
  sb_pk(&b, s, " IS NOT NULL", " AND ");
  lb__sb_add(&b, " ORDER BY ");
  sb_pk(&b, s, ", ", "");
  lb__sb_add(&b, "\"" LB_CACHE_RAW_ID_COL "\" COLLATE \"C\" DESC ON CONFLICT (");
  sb_pk(&b, s, "", ", ");
  lb__sb_add(&b, ") DO UPDATE SET ");
  for (i = 0; i < s->sch->ncols + 3; i++) {
    static const char *const internal[3] = {
      LB_CACHE_RAW_ID_COL, LB_CACHE_EXTRACTED_AT_COL, LB_CACHE_META_COL };
    const char *name = i < s->sch->ncols ? s->sch->cols[i].name : internal[i - s->sch->ncols];
    int is_pk = 0;
    for (j = 0; j < s->npk; j++) if (s->pk[j] == i) is_pk = 1;
    if (is_pk) continue;
    if (!first) lb__sb_add(&b, ", ");
    first = 0;
    lb__sb_ident(&b, name);
    lb__sb_add(&b, " = EXCLUDED.");
    lb__sb_ident(&b, name);
  }
  lb__sb_add(&b, "; INSERT INTO ");
  lb__sb_add(&b, s->qtable);
  lb__sb_add(&b, " (");
  sb_cols(&b, s, NULL);
  lb__sb_add(&b, ") SELECT ");
  sb_cols(&b, s, NULL);
  lb__sb_add(&b, " FROM ");
  lb__sb_add(&b, s->stage);
  lb__sb_add(&b, " WHERE ");
  sb_pk(&b, s, " IS NULL", " OR ");
  lb__sb_add(&b, "; TRUNCATE ");
  lb__sb_add(&b, s->stage);
  if ((rc = sb_done(pc, &b)) == 0) {
    PGresult *res = run(pc, pc->conn, b.p, 0, NULL, "merging into the table");
    if (res == NULL) rc = LB_CACHE_ESQL;
    PQclear(res);
  }
  free(b.p);
  if (rc == 0) s->staged = 0;
  return rc;
}

/* Everything written so far is in the database (in the caller's
** transaction): every COPY ended, every staging table merged. */
static void revive(pg_cache *pc);

static int barrier(pg_cache *pc) {
  pg_stream *s;
  int rc;
  if (pc->failed) return pc->failed;
  revive(pc);
  for (s = pc->streams; s; s = s->next)
    if ((rc = flush_stream(s)) < 0) goto fail;
  if ((rc = end_copy(pc)) < 0) goto fail;
  for (s = pc->streams; s; s = s->next)
    if (s->stage && (rc = merge_stage(s)) < 0) goto fail;
  return 0;
fail:
  pc->failed = rc;
  return rc;
}

/* Drops what is buffered (the caller rolls back or gives up). */
static void discard(pg_cache *pc) {
  pg_stream *s;
  if (pc->copying) {
    PGresult *res;
    pc->copying = NULL;
    PQputCopyEnd(pc->conn, "discarded");
    while ((res = PQgetResult(pc->conn)) != NULL) PQclear(res);
  }
  for (s = pc->streams; s; s = s->next) { s->buf.len = 0; s->staged = 0; }
}

/* --- opening, closing, transactions ------------------------------------------------ */

static const char *const bookkeeping_sql =
  "CREATE TABLE IF NOT EXISTS %1$s._airbyte_streams ("
  " stream_name VARCHAR, source_name VARCHAR,"
  " table_name VARCHAR NOT NULL PRIMARY KEY, catalog_metadata VARCHAR,"
  " stream_namespace VARCHAR, table_prefix VARCHAR);"
  "CREATE TABLE IF NOT EXISTS %1$s._airbyte_state ("
  " source_name VARCHAR NOT NULL, stream_name VARCHAR, table_name VARCHAR NOT NULL,"
  " state_json VARCHAR, last_updated TIMESTAMP WITH TIME ZONE,"
  " stream_namespace VARCHAR NOT NULL DEFAULT '',"
  " PRIMARY KEY (source_name, table_name, stream_namespace));"
  "CREATE TABLE IF NOT EXISTS %1$s._airbyte_destination_state ("
  " destination_name VARCHAR NOT NULL, source_name VARCHAR NOT NULL,"
  " stream_name VARCHAR NOT NULL, state_json VARCHAR, last_updated TIMESTAMP WITH TIME ZONE,"
  " stream_namespace VARCHAR NOT NULL DEFAULT '',"
  " destination_config_hash VARCHAR NOT NULL DEFAULT '',"
  " PRIMARY KEY (destination_name, destination_config_hash, source_name, stream_namespace,"
  " stream_name));"
  "CREATE TABLE IF NOT EXISTS %1$s._luabyte_destination_progress ("
  " destination_name VARCHAR NOT NULL, source_name VARCHAR NOT NULL,"
  " stream_name VARCHAR NOT NULL, last_raw_id VARCHAR NOT NULL,"
  " last_updated TIMESTAMP WITH TIME ZONE,"
  " stream_namespace VARCHAR NOT NULL DEFAULT '',"
  " destination_config_hash VARCHAR NOT NULL DEFAULT '',"
  " PRIMARY KEY (destination_name, destination_config_hash, source_name, stream_namespace,"
  " stream_name));"
  "CREATE TABLE IF NOT EXISTS %1$s._luabyte_stream_locks ("
  " source_name VARCHAR NOT NULL, stream_namespace VARCHAR NOT NULL, stream_name VARCHAR NOT NULL,"
  " holder VARCHAR NOT NULL, since TIMESTAMP WITH TIME ZONE NOT NULL,"
  " PRIMARY KEY (source_name, stream_namespace, stream_name))";

/* Session settings every statement here relies on: timestamps in UTC ISO,
** floats with every digit, unqualified names in the cache's schema (for
** run_sql_query), UTF-8. */
static int session_setup(pg_cache *pc, PGconn *conn) {
  lb_sbuf b = {0};
  PGresult *res;
  int rc;
  lb__sb_add(&b, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET extra_float_digits = 3;"
             " SET client_encoding = 'UTF8'; SET search_path = ");
  lb__sb_add(&b, pc->qschema);
  lb__sb_add(&b, ", public");
  if ((rc = sb_done(pc, &b)) < 0) return rc;
  res = run(pc, conn, b.p, 0, NULL, "setting up the PostgreSQL session");
  free(b.p);
  if (res == NULL) return LB_CACHE_ESQL;
  PQclear(res);
  return 0;
}

static int create_bookkeeping(pg_cache *pc, void *ud) {
  char *sql;
  size_t n = strlen(bookkeeping_sql) + 8 * strlen(pc->qschema) + 64;
  int rc;
  (void)ud;
  if ((rc = xact_lock(pc, "")) < 0) return rc;
  if ((sql = malloc(n)) == NULL) return oom(pc);
  snprintf(sql, n, "CREATE SCHEMA IF NOT EXISTS %s", pc->qschema);
  rc = exec1(pc, sql, 0, NULL);
  if (rc == 0) {
    snprintf(sql, n, bookkeeping_sql, pc->qschema);
    rc = exec1(pc, sql, 0, NULL);
  }
  free(sql);
  return rc;
}

static const lb_cache_ops pg_ops;
static int do_swaps(pg_cache *pc);
static void drop_swaps(pg_cache *pc);

static void pg_close(lb_cache *c) {
  pg_cache *pc = PC(c);
  int i;
  while (pc->streams) {
    pg_stream *s = pc->streams;
    pc->streams = s->next;
    s->pc = NULL;            /* the stream's struct stays for its owner to close */
    s->prev = s->next = NULL;
  }
  while (pc->cursors) {
    pg_cursor *cur = pc->cursors;
    pc->cursors = cur->next;
    PQclear(cur->res);               /* its rows go with the connection */
    cur->res = NULL;
    cur->pc = NULL;
    cur->conn = NULL;
    cur->name[0] = '\0';
    cur->on_reader = 0;
    cur->done = 1;
    cur->nrows = 0;
    cur->row = -1;
    cur->prev = cur->next = NULL;
  }
  if (pc->conn) PQfinish(pc->conn);     /* rolls back an open transaction, ends its locks */
  if (pc->rconn) PQfinish(pc->rconn);
  PQclear(pc->owner_res);
  drop_swaps(pc);
  free(pc->swaps);
  for (i = 0; i < 7; i++) free(pc->pstr[i]);
  free(pc->schema);
  free(pc->qschema);
  lb__cache_fini(c);
  free(pc);
}

static char *keep(pg_cache *pc, int i, const char *s) {
  if (s == NULL) return NULL;
  return pc->pstr[i] = dupn(s, strlen(s));
}

int lb_cache_pg_open(const lb_pg_params *p, const char *schema_name, lb_cache **out,
                     char *err, size_t errlen) {
  pg_cache *pc;
  size_t qn;
  int rc;
  *out = NULL;
  if (p == NULL) { snprintf(err, errlen, "PostgreSQL connection parameters required"); return LB_EINVAL; }
  if (schema_name == NULL || *schema_name == '\0') schema_name = LB_CACHE_PG_DEFAULT_SCHEMA;
  if ((pc = calloc(1, sizeof *pc)) == NULL || lb__cache_init(&pc->base, &pg_ops) != 0) {
    free(pc);
    snprintf(err, errlen, "out of memory");
    return LB_ENOMEM;
  }
  pc->p = *p;
  pc->p.host = keep(pc, 0, p->host);
  pc->p.port = keep(pc, 1, p->port);
  pc->p.database = keep(pc, 2, p->database);
  pc->p.username = keep(pc, 3, p->username);
  pc->p.password = keep(pc, 4, p->password);
  pc->p.dsn = keep(pc, 5, p->dsn);
  pc->p.application_name = keep(pc, 6, p->application_name);
  {
    char cut[LB_PG_NAMEDATALEN + 1];
    lb__pg_name(schema_name, strlen(schema_name), cut);
    pc->schema = dupn(cut, strlen(cut));
    qn = lb__pg_quote_ident(cut, strlen(cut), NULL, 0) + 1;
    if ((pc->qschema = malloc(qn)) != NULL) lb__pg_quote_ident(cut, strlen(cut), pc->qschema, qn);
  }
  if (pc->schema == NULL || pc->qschema == NULL) {
    pg_close(&pc->base);
    snprintf(err, errlen, "out of memory");
    return LB_ENOMEM;
  }
  if ((pc->conn = lb__pg_connect(&pc->p, err, errlen)) == NULL) {
    pg_close(&pc->base);
    return LB_CACHE_ESQL;
  }
  if ((rc = session_setup(pc, pc->conn)) < 0 || (rc = with_tx(pc, create_bookkeeping, NULL)) < 0) {
    snprintf(err, errlen, "opening the PostgreSQL cache in schema '%s': %s", pc->schema,
             pc->base.errmsg);
    pg_close(&pc->base);
    return rc;
  }
  *out = &pc->base;
  return 0;
}

const char *lb_cache_pg_schema(lb_cache *c) {
  return c->ops == &pg_ops ? PC(c)->schema : NULL;
}

/* A connection the server ended (the error went to whoever was using it
** then) is opened again for the next transaction: its session state (the
** locks, temporary tables) went with it. */
static void revive(pg_cache *pc) {
  pg_stream *s;
  if (PQstatus(pc->conn) != CONNECTION_BAD || pc->want_tx || pc->copying) return;
  for (s = pc->streams; s; s = s->next)
    if (s->buf.len || s->staged) return;   /* rows not in yet: the caller must hear of the loss */
  pc->failed = 0;
  pc->nheld = 0;
  PQreset(pc->conn);
  if (PQstatus(pc->conn) == CONNECTION_OK) session_setup(pc, pc->conn);
}

static int pg_begin(lb_cache *c) {
  pg_cache *pc = PC(c);
  int rc;
  pc->want_tx = 0;
  drop_swaps(pc);
  revive(pc);
  if (in_tx(pc)) { lb__cache_seterr(c, "a transaction is already open"); return LB_EINVAL; }
  discard(pc);
  pc->failed = 0;
  if ((rc = exec1(pc, "BEGIN", 0, NULL)) == 0) pc->want_tx = 1;
  return rc;
}

static int pg_commit(lb_cache *c) {
  pg_cache *pc = PC(c);
  int rc = barrier(pc);
  if (rc < 0) return rc;
  if (!in_tx(pc)) {
    if (pc->want_tx) {   /* the server ended the session under the transaction */
      lb__pg_error(&pc->p, pc->conn, "committing to PostgreSQL", NULL, c->errmsg, sizeof c->errmsg);
      return LB_CACHE_ESQL;
    }
    return 0;
  }
  if (PQtransactionStatus(pc->conn) == PQTRANS_INERROR) {
    lb__cache_seterr(c, "the transaction failed earlier: roll it back");
    return LB_CACHE_ESQL;
  }
  if ((rc = do_swaps(pc)) < 0) return rc;
  if ((rc = exec1(pc, "COMMIT", 0, NULL)) == 0) pc->want_tx = 0;
  return rc;
}

static int pg_rollback(lb_cache *c) {
  pg_cache *pc = PC(c);
  discard(pc);
  drop_swaps(pc);
  pc->failed = 0;
  pc->want_tx = 0;
  if (!in_tx(pc)) return 0;
  if (PQstatus(pc->conn) != CONNECTION_OK) return 0;   /* nothing left to roll back */
  return exec1(pc, "ROLLBACK", 0, NULL);
}

static int pg_in_transaction(const lb_cache *c) {
  return in_tx((const pg_cache *)(const void *)c);
}

/* No writer thread: the server is the other core. */
static int pg_set_async(lb_cache *c, int on) { (void)on; return barrier(PC(c)); }
static int pg_sync(lb_cache *c) { return barrier(PC(c)); }
static int pg_wait_room(lb_cache *c, size_t n, uint64_t d) { (void)c; (void)n; (void)d; return 1; }
static int pg_wait_idle(lb_cache *c, uint64_t d) { (void)c; (void)d; return 1; }

/* Hands each _airbyte_streams row of res (columns stream_name, namespace,
** table_name, source_name, catalog_metadata) to cb, then frees res. */
static int each_stream_row(PGresult *res, int (*cb)(void *, const lb_cache_stream_row *), void *ud) {
  int i, rc = 0;
  for (i = 0; i < PQntuples(res) && rc == 0; i++) {
    lb_cache_stream_row r;
    r.name = PQgetvalue(res, i, 0); r.name_len = (size_t)PQgetlength(res, i, 0);
    r.ns = PQgetvalue(res, i, 1); r.ns_len = (size_t)PQgetlength(res, i, 1);
    r.table = PQgetvalue(res, i, 2);
    r.source_name = PQgetvalue(res, i, 3);
    r.catalog_json = PQgetvalue(res, i, 4); r.catalog_len = (size_t)PQgetlength(res, i, 4);
    rc = cb(ud, &r);
  }
  PQclear(res);
  return rc;
}

/* --- names -------------------------------------------------------------------------- */

static int pg_stream_rows(lb_cache *c, const char *prefix, const char *name, size_t name_len,
                          const char *ns, size_t ns_len, lb_cache_stream_row_cb cb, void *ud) {
  pg_cache *pc = PC(c);
  char sql[512], *nm = NULL, *nsd = NULL;
  const char *v[3];
  PGresult *res;
  int rc;
  if ((rc = no_nul(pc, name, name_len, "a stream name")) < 0 ||
      (rc = no_nul(pc, ns, ns_len, "a namespace")) < 0)
    return rc;
  if ((rc = barrier(pc)) < 0) return rc;
  snprintf(sql, sizeof sql,
           "SELECT stream_name, stream_namespace, table_name, source_name, catalog_metadata"
           " FROM %s._airbyte_streams WHERE table_prefix = $1 AND stream_name = $2"
           " AND ($3::varchar IS NULL OR stream_namespace = $3)"
           " ORDER BY stream_namespace COLLATE \"C\"", pc->qschema);
  if ((nm = dupn(name, name_len)) == NULL || (ns && (nsd = dupn(ns, ns_len)) == NULL)) {
    free(nm);
    return oom(pc);
  }
  v[0] = prefix; v[1] = nm; v[2] = nsd;
  res = run(pc, pc->conn, sql, 3, v, "looking up a stream");
  free(nm); free(nsd);
  if (res == NULL) return LB_CACHE_ESQL;
  return each_stream_row(res, cb, ud);
}

static int pg_table_owner(lb_cache *c, const char *table, lb_cache_name_owner *out) {
  pg_cache *pc = PC(c);
  char sql[512];
  const char *v[2] = { table, pc->schema };
  PGresult *res;
  memset(out, 0, sizeof *out);
  PQclear(pc->owner_res);
  pc->owner_res = NULL;
  snprintf(sql, sizeof sql, "SELECT stream_name, stream_namespace, table_prefix FROM"
           " %s._airbyte_streams WHERE table_name = $1", pc->qschema);
  if ((res = run(pc, pc->conn, sql, 1, v, "looking up a table")) == NULL) return LB_CACHE_ESQL;
  if (PQntuples(res) > 0) {
    pc->owner_res = res;
    out->kind = LB_NAME_STREAM;
    out->name = PQgetvalue(res, 0, 0); out->name_len = (size_t)PQgetlength(res, 0, 0);
    out->ns = PQgetvalue(res, 0, 1); out->ns_len = (size_t)PQgetlength(res, 0, 1);
    out->prefix = PQgetvalue(res, 0, 2); out->prefix_len = (size_t)PQgetlength(res, 0, 2);
    return 0;
  }
  PQclear(res);
  /* relation names share one space in a schema: tables, indexes, views,
  ** sequences; a table no stream claims is adopted */
  if ((res = run(pc, pc->conn,
                 "SELECT CASE k.relkind WHEN 'i' THEN 'index' WHEN 'I' THEN 'index'"
                 " WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'"
                 " WHEN 'f' THEN 'foreign table' WHEN 'c' THEN 'type' ELSE 'table' END"
                 " FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace"
                 " WHERE k.relname = $1 AND n.nspname = $2", 2, v, "looking up a table")) == NULL)
    return LB_CACHE_ESQL;
  if (PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), "table") != 0) {
    pc->owner_res = res;
    out->kind = LB_NAME_OBJECT;
    out->what = PQgetvalue(res, 0, 0);
    return 0;
  }
  PQclear(res);
  out->kind = LB_NAME_FREE;
  return 0;
}

/* --- opening a stream ------------------------------------------------------------------ */

static int kind_of_type(const char *t) {
  if (strcmp(t, "bigint") == 0 || strcmp(t, "integer") == 0 || strcmp(t, "smallint") == 0)
    return LB_COL_INTEGER;
  if (strncmp(t, "numeric", 7) == 0 || strcmp(t, "double precision") == 0 || strcmp(t, "real") == 0)
    return LB_COL_NUMBER;
  if (strcmp(t, "boolean") == 0) return LB_COL_BOOLEAN;
  if (strcmp(t, "json") == 0 || strcmp(t, "jsonb") == 0) return LB_COL_JSON;
  if (strncmp(t, "character varying", 17) == 0 || strcmp(t, "text") == 0) return LB_COL_STRING;
  return -1;
}

#define COLUMNS_SQL                                                                         \
  "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"            \
  " JOIN pg_class k ON k.oid = a.attrelid JOIN pg_namespace n ON n.oid = k.relnamespace"  \
  " WHERE n.nspname = $1 AND k.relname = $2 AND k.relkind IN ('r', 'p') AND a.attnum > 0" \
  " AND NOT a.attisdropped ORDER BY a.attnum"

static void sb_coldef(lb_sbuf *b, const char *name, int kind) {
  lb__sb_ident(b, name);
  lb__sb_add(b, " ");
  lb__sb_add(b, kind_sql[kind]);
}

static const char *const internal_defs[3] = {
  "\"" LB_CACHE_RAW_ID_COL "\" VARCHAR",
  "\"" LB_CACHE_EXTRACTED_AT_COL "\" TIMESTAMP WITH TIME ZONE",
  "\"" LB_CACHE_META_COL "\" JSON"
};

/* Creates the target table when missing; else adds the columns that are
** new and learns the types of the existing ones (never changed here). */
static int ensure_table(pg_stream *s, const char *table, int fresh) {
  pg_cache *pc = s->pc;
  lb_sbuf b = {0};
  const char *v[2] = { pc->schema, table };
  char *found = NULL;
  int have_internal = 0, exists = 0, i, rc = 0;
  PGresult *res = NULL;
  if (!fresh) {
    if ((res = run(pc, pc->conn, COLUMNS_SQL, 2, v, "reading a table's columns")) == NULL)
      return LB_CACHE_ESQL;
    if ((found = calloc((size_t)s->sch->ncols + 1, 1)) == NULL) { PQclear(res); return oom(pc); }
    for (i = 0; i < PQntuples(res); i++) {
      const char *name = PQgetvalue(res, i, 0);
      int ci, k;
      exists = 1;
      if (strcmp(name, LB_CACHE_RAW_ID_COL) == 0) have_internal |= 1;
      else if (strcmp(name, LB_CACHE_EXTRACTED_AT_COL) == 0) have_internal |= 2;
      else if (strcmp(name, LB_CACHE_META_COL) == 0) have_internal |= 4;
      else if ((ci = lb__cache_schema_col(s->sch, name, strlen(name))) >= 0) {
        found[ci] = 1;
        k = kind_of_type(PQgetvalue(res, i, 1));
        s->kind[ci] = k < 0 ? LB_COL_STRING : k;
      }
    }
    PQclear(res);
  }
  if (!exists) {
    lb__sb_add(&b, "CREATE TABLE ");
    sb_qual(&b, pc, table);
    lb__sb_add(&b, " (");
    for (i = 0; i < s->sch->ncols; i++) { sb_coldef(&b, s->sch->cols[i].name, s->kind[i]); lb__sb_add(&b, ", "); }
    lb__sb_add(&b, internal_defs[0]); lb__sb_add(&b, ", ");
    lb__sb_add(&b, internal_defs[1]); lb__sb_add(&b, ", ");
    lb__sb_add(&b, internal_defs[2]); lb__sb_add(&b, ")");
    rc = exec_sb(pc, &b);
  } else {
    for (i = 0; i < s->sch->ncols + 3 && rc == 0; i++) {
      if (i < s->sch->ncols ? found[i] : (have_internal & (1 << (i - s->sch->ncols)))) continue;
      lb__sb_reset(&b);
      lb__sb_add(&b, "ALTER TABLE ");
      sb_qual(&b, pc, table);
      lb__sb_add(&b, " ADD COLUMN IF NOT EXISTS ");
      if (i < s->sch->ncols) sb_coldef(&b, s->sch->cols[i].name, s->kind[i]);
      else lb__sb_add(&b, internal_defs[i - s->sch->ncols]);
      rc = exec_sb(pc, &b);
    }
  }
  free(b.p);
  free(found);
  return rc;
}

/* MERGE: a unique index on exactly the key columns (ON CONFLICT needs one);
** rows appended earlier may repeat a key: all but the last go first. */
static int ensure_pk_index(pg_stream *s) {
  pg_cache *pc = s->pc;
  char *idx = pg_name2(pc, LB_CACHE_PK_INDEX_PREFIX, s->base.table);
  const char *v[2];
  lb_sbuf b = {0};
  PGresult *res;
  int i, n, same = 1, rc = 0;
  if (idx == NULL) return oom(pc);
  v[0] = pc->schema; v[1] = idx;
  res = run(pc, pc->conn,
            "SELECT a.attname FROM pg_index i JOIN pg_class k ON k.oid = i.indexrelid"
            " JOIN pg_namespace n ON n.oid = k.relnamespace"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey::int2[])"
            " WHERE n.nspname = $1 AND k.relname = $2"
            " ORDER BY array_position(i.indkey::int2[], a.attnum)", 2, v, "reading an index");
  if (res == NULL) { free(idx); return LB_CACHE_ESQL; }
  n = PQntuples(res);
  for (i = 0; i < n; i++)
    if (i >= s->npk || strcmp(PQgetvalue(res, i, 0), s->sch->cols[s->pk[i]].name) != 0) same = 0;
  PQclear(res);
  if (n == s->npk && same) { free(idx); return 0; }
  lb__sb_add(&b, "DROP INDEX IF EXISTS ");
  sb_qual(&b, pc, idx);
  lb__sb_add(&b, "; DELETE FROM ");
  lb__sb_add(&b, s->qtable);
  lb__sb_add(&b, " WHERE ctid IN (SELECT ctid FROM (SELECT ctid, row_number() OVER (PARTITION BY ");
  sb_pk(&b, s, "", ", ");
  lb__sb_add(&b, " ORDER BY \"" LB_CACHE_RAW_ID_COL "\" COLLATE \"C\" DESC NULLS LAST) AS rn FROM ");
  lb__sb_add(&b, s->qtable);
  lb__sb_add(&b, " WHERE ");
  sb_pk(&b, s, " IS NOT NULL", " AND ");
  lb__sb_add(&b, ") d WHERE rn > 1); CREATE UNIQUE INDEX ");
  lb__sb_ident(&b, idx);
  lb__sb_add(&b, " ON ");
  lb__sb_add(&b, s->qtable);
  lb__sb_add(&b, " (");
  sb_pk(&b, s, "", ", ");
  lb__sb_add(&b, ")");
  rc = exec_sb(pc, &b);
  free(idx);
  return rc;
}

static int drop_pk_index(pg_stream *s) {
  pg_cache *pc = s->pc;
  char *idx = pg_name2(pc, LB_CACHE_PK_INDEX_PREFIX, s->base.table);
  lb_sbuf b = {0};
  int rc;
  if (idx == NULL) return oom(pc);
  lb__sb_add(&b, "DROP INDEX IF EXISTS ");
  sb_qual(&b, pc, idx);
  free(idx);
  rc = exec_sb(pc, &b);
  return rc;
}

static int register_stream(pg_stream *s, const lb_cache_stream_spec *spec) {
  pg_cache *pc = s->pc;
  char sql[512], *catalog;
  const char *v[6];
  int rc;
  snprintf(sql, sizeof sql,
           "INSERT INTO %s._airbyte_streams (stream_name, source_name, table_name, catalog_metadata,"
           " stream_namespace, table_prefix) VALUES ($1, $2, $3, $4, $5, $6)"
           " ON CONFLICT (table_name) DO UPDATE SET source_name = EXCLUDED.source_name,"
           " catalog_metadata = EXCLUDED.catalog_metadata", pc->qschema);
  if (spec->json_schema && spec->schema_len) catalog = dupn(spec->json_schema, spec->schema_len);
  else catalog = dupn("{}", 2);
  if (catalog == NULL) return oom(pc);
  v[0] = s->base.name; v[1] = spec->source_name ? spec->source_name : "";
  v[2] = s->base.table; v[3] = catalog; v[4] = s->base.ns; v[5] = pc->base.prefix;
  rc = exec1(pc, sql, 6, v);
  free(catalog);
  return rc;
}

typedef struct ddl_ctx { pg_stream *s; const lb_cache_stream_spec *spec; } ddl_ctx;

static int stream_ddl(pg_cache *pc, void *ud) {
  pg_stream *s = ((ddl_ctx *)ud)->s;
  lb_sbuf b = {0};
  int rc;
  if ((rc = xact_lock(pc, s->base.table)) < 0) return rc;
  if (s->strategy == LB_WRITE_REPLACE) {
    /* a shadow table left by a run that died is stale: start afresh */
    lb__sb_add(&b, "DROP TABLE IF EXISTS ");
    lb__sb_add(&b, s->qtarget);
    rc = exec_sb(pc, &b);
    if (rc == 0) rc = ensure_table(s, s->target, 1);
  } else {
    rc = ensure_table(s, s->base.table, 0);
    if (rc == 0) rc = s->strategy == LB_WRITE_MERGE ? ensure_pk_index(s) : drop_pk_index(s);
  }
  if (rc == 0) rc = register_stream(s, ((ddl_ctx *)ud)->spec);
  return rc;
}

static void stream_free(pg_stream *s) {
  if (s->sch) { lb__cache_schema_free(s->sch); free(s->sch); }
  free(s->kind);
  free(s->pk);
  free(s->target);
  free(s->qtable);
  free(s->qtarget);
  free(s->stage);
  free(s->copy_sql);
  free(s->buf.p);
  free(s->vals);
  free(s->dec);
  free(s->declen);
  free(s->arena);
  lb__cache_stream_fini(&s->base);
  free(s);
}

static char *qualified(pg_cache *pc, const char *name) {
  lb_sbuf b = {0};
  sb_qual(&b, pc, name);
  if (b.oom) { free(b.p); return NULL; }
  return b.p;
}

/* COPY <target> (<columns>) FROM STDIN */
static int make_copy_sql(pg_stream *s) {
  lb_sbuf b = {0};
  lb__sb_add(&b, "COPY ");
  lb__sb_add(&b, s->qtarget);
  lb__sb_add(&b, " (");
  sb_cols(&b, s, NULL);
  lb__sb_add(&b, ") FROM STDIN");
  if (b.oom) { free(b.p); return oom(s->pc); }
  free(s->copy_sql);
  s->copy_sql = b.p;
  return 0;
}

static lb_cache_stream *pg_stream_open(lb_cache *c, const lb_cache_stream_spec *spec) {
  pg_cache *pc = PC(c);
  pg_stream *s;
  ddl_ctx ctx;
  int i, n;
  if ((s = calloc(1, sizeof *s)) == NULL) {
    lb__cache_schema_free(spec->schema);   /* ours now, success or not */
    free(spec->schema);
    oom(pc);
    return NULL;
  }
  s->sch = spec->schema;
  s->pc = pc;
  s->strategy = spec->strategy;
  if (s->sch == NULL || lb__cache_stream_init(&s->base, c, spec) != 0) goto nomem;
  if (no_nul(pc, s->base.name, s->base.name_len, "a stream name") < 0 ||
      no_nul(pc, s->base.ns, s->base.ns_len, "a namespace") < 0)
    goto fail;
  if (barrier(pc) < 0) goto fail;
  n = s->sch->ncols;
  s->kind = calloc((size_t)n + 1, sizeof *s->kind);
  s->pk = calloc((size_t)spec->npk + 1, sizeof *s->pk);
  s->vals = calloc((size_t)n + 1, sizeof *s->vals);
  s->dec = calloc((size_t)n + 1, sizeof *s->dec);
  s->declen = calloc((size_t)n + 1, sizeof *s->declen);
  if (!s->kind || !s->pk || !s->vals || !s->dec || !s->declen) goto nomem;
  for (i = 0; i < n; i++) s->kind[i] = s->sch->cols[i].kind;
  for (i = 0; i < spec->npk; i++) s->pk[i] = spec->pk[i];
  s->npk = spec->npk;
  if ((s->qtable = qualified(pc, s->base.table)) == NULL) goto nomem;
  if (s->strategy == LB_WRITE_REPLACE) {
    if ((s->target = pg_name2(pc, LB_CACHE_SHADOW_PREFIX, s->base.table)) == NULL) goto nomem;
  } else if ((s->target = dupn(s->base.table, strlen(s->base.table))) == NULL) {
    goto nomem;
  }
  if ((s->qtarget = qualified(pc, s->target)) == NULL) goto nomem;
  ctx.s = s;
  ctx.spec = spec;
  if (with_tx(pc, stream_ddl, &ctx) < 0) goto fail;
  if (s->strategy == LB_WRITE_MERGE) {
    char name[40];
    lb_sbuf b = {0};
    snprintf(name, sizeof name, "_luabyte_stage_%u", ++pc->cursor_seq);
    lb__sb_add(&b, "pg_temp.");
    lb__sb_ident(&b, name);
    if (b.oom) { free(b.p); goto nomem; }
    s->stage = b.p;
    free(s->qtarget);
    if ((s->qtarget = dupn(s->stage, strlen(s->stage))) == NULL) goto nomem;
  }
  if (make_copy_sql(s) < 0) goto fail;
  s->next = pc->streams;
  if (pc->streams) pc->streams->prev = s;
  pc->streams = s;
  return &s->base;
nomem:
  oom(pc);
fail:
  stream_free(s);
  return NULL;
}

/* --- writing ---------------------------------------------------------------------- */

/* The column kind a value needs when the column's kind cannot hold it,
** else -1 (see cache_pg.h). */
static int widen_for(const pg_stream *s, int ci, const lb_jval *v) {
  int k = s->kind[ci];
  long long i64;
  if (v->type == LB_JNULL || v->type == LB_JNONE) return -1;
  switch (k) {
    case LB_COL_INTEGER:
      if (v->type == LB_JNUMBER) return lb_jnum_to_int64(v, &i64) ? -1 : LB_COL_NUMBER;
      return LB_COL_JSON;
    case LB_COL_NUMBER:
      return v->type == LB_JNUMBER ? -1 : LB_COL_JSON;
    case LB_COL_BOOLEAN:
      return v->type == LB_JTRUE || v->type == LB_JFALSE ? -1 : LB_COL_JSON;
    case LB_COL_STRING:
      return v->type == LB_JSTRING && s->dec[ci] && memchr(s->dec[ci], '\0', s->declen[ci])
             ? LB_COL_JSON : -1;
    default:
      return -1;
  }
}

/* ALTER the column to kind k (and the staging table's), after sending
** every row before this one with the old type. */
static int widen(pg_stream *s, int ci, int k) {
  pg_cache *pc = s->pc;
  lb_sbuf b = {0};
  const char *name = s->sch->cols[ci].name;
  int rc, pass, i, keyed = 0;
  /* a key column keeps its unique index: JSONB has the btree operators
  ** JSON lacks (key values are scalars: nothing of their text is lost) */
  for (i = 0; i < s->npk; i++) if (s->pk[i] == ci) keyed = 1;
  if ((rc = flush_stream(s)) < 0 || (rc = end_copy(pc)) < 0) return rc;
  for (pass = 0; pass < 2; pass++) {
    /* APPEND: the table; MERGE: the table and its staging table (if made
    ** yet); REPLACE: the shadow table only (the old one goes at finish) */
    const char *t = pass == 0 ? (s->strategy == LB_WRITE_REPLACE ? s->qtarget : s->qtable) : s->stage;
    if (t == NULL) continue;
    lb__sb_reset(&b);
    lb__sb_add(&b, pass == 1 ? "ALTER TABLE IF EXISTS " : "ALTER TABLE ");
    lb__sb_add(&b, t);
    lb__sb_add(&b, " ALTER COLUMN ");
    lb__sb_ident(&b, name);
    lb__sb_add(&b, " TYPE ");
    lb__sb_add(&b, k == LB_COL_JSON && keyed ? "JSONB" : kind_sql[k]);
    lb__sb_add(&b, " USING ");
    if (k == LB_COL_JSON) lb__sb_add(&b, keyed ? "to_jsonb(" : "to_json(");
    lb__sb_ident(&b, name);
    lb__sb_add(&b, k == LB_COL_JSON ? ")" : "::NUMERIC");
    rc = exec_sb(pc, &b);
    if (rc < 0) { free(b.p); pc->failed = rc; return rc; }
  }
  free(b.p);
  s->kind[ci] = k;
  return 0;
}

static int reserve_buf(pg_stream *s, size_t more) {
  if (lb_cache_buf_reserve(&s->buf, more) != 0) return oom(s->pc);
  return 0;
}

/* Text for COPY's text format: backslash, newline, carriage return and tab
** escaped (room: 2 * n reserved). */
static void copy_text(lb_cache_buf *b, const char *p, size_t n) {
  char *o = b->p + b->len;
  size_t i;
  for (i = 0; i < n; i++) {
    char ch = p[i];
    switch (ch) {
      case '\\': *o++ = '\\'; *o++ = '\\'; break;
      case '\n': *o++ = '\\'; *o++ = 'n'; break;
      case '\r': *o++ = '\\'; *o++ = 'r'; break;
      case '\t': *o++ = '\\'; *o++ = 't'; break;
      default: *o++ = ch; break;
    }
  }
  b->len = (size_t)(o - b->p);
}

/* A number for a NUMERIC column: its value exactly, as written; a float
** spelling (a '.' or an exponent) keeps a fraction digit ("1e308" goes in
** as 1000...0.0, "1E2" as 100.0), since NUMERIC would otherwise store an
** integer and the read side could not tell it was a float (room: 2 * n +
** the exponent's zeros, reserved here). */
static int copy_number(pg_stream *s, const char *p, size_t n) {
  lb_cache_buf *b = &s->buf;
  const char *e = NULL, *dot = NULL;
  size_t i, frac = 0, lead;
  long ex = 0, zeros;
  int neg;
  for (i = 0; i < n; i++) {
    if (p[i] == '.') dot = p + i;
    else if (p[i] == 'e' || p[i] == 'E') { e = p + i; break; }
  }
  if (dot == NULL && e == NULL) { memcpy(b->p + b->len, p, n); b->len += n; return 0; }
  if (dot) frac = (size_t)((e ? e : p + n) - dot - 1);
  if (e) ex = strtol(e + 1, NULL, 10);
  if (ex > 100000 || ex < -100000 || (long)frac - ex > 0) {   /* a fraction already (or beyond NUMERIC) */
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
  }
  zeros = ex - (long)frac;                                    /* >= 0 */
  if (reserve_buf(s, n + (size_t)zeros + 4) < 0) return LB_ENOMEM;
  neg = p[0] == '-';
  if (neg) b->p[b->len++] = '-';
  lead = (size_t)neg;
  for (i = lead; i < n && p + i != e; i++) if (p[i] != '.') b->p[b->len++] = p[i];
  memset(b->p + b->len, '0', (size_t)zeros);
  b->len += (size_t)zeros;
  memcpy(b->p + b->len, ".0", 2);
  b->len += 2;
  return 0;
}

/* One pass over the members: each value into its column's slot; strings
** with escapes decoded into the arena. */
static int scan(pg_stream *s, const lb_jval *data) {
  lb_cache_schema *sch = s->sch;
  lb_jiter it;
  lb_jval k, v;
  size_t used = 0;
  int i;
  if (s->arena_cap < data->n) {
    size_t cap = s->arena_cap ? s->arena_cap : 1024;
    char *np;
    while (cap < data->n) cap *= 2;
    if ((np = realloc(s->arena, cap)) == NULL) return oom(s->pc);
    s->arena = np;
    s->arena_cap = cap;
  }
  for (i = 0; i < sch->ncols; i++) { s->vals[i].type = LB_JNONE; s->dec[i] = NULL; }
  lb_jiter_init(&it, data);
  while (lb_jobj_next(&it, &k, &v)) {
    const char *kp = k.p + 1;
    size_t kl = k.n - 2;
    int pi = s->guess, ci;
    if (lb_jstr_has_escapes(&k)) {
      kl = lb_jstr_decode(&k, s->arena + used, k.n);
      kp = s->arena + used;
    }
    if (pi < sch->nprops && sch->props[pi].len == kl && memcmp(sch->props[pi].name, kp, kl) == 0) {
      ci = sch->props[pi].col;
    } else if ((pi = lb__cache_schema_prop(sch, kp, kl)) >= 0) {
      ci = sch->props[pi].col;
    } else {
      /* not a property, but it may normalize to a column's name */
      char norm[256];
      long nn = lb_cache_normalize(kp, kl, norm, sizeof norm);
      if (nn < 0 || (size_t)nn >= sizeof norm || (ci = lb__cache_schema_col(sch, norm, (size_t)nn)) < 0)
        continue;
      pi = s->guess - 1;
    }
    s->guess = pi + 1;
    s->vals[ci] = v;
    if (v.type == LB_JSTRING) {
      if (lb_jstr_has_escapes(&v)) {
        s->declen[ci] = lb_jstr_decode(&v, s->arena + used, v.n);
        s->dec[ci] = s->arena + used;
        used += s->declen[ci];
      } else {
        s->dec[ci] = v.p + 1;
        s->declen[ci] = v.n - 2;
      }
    }
  }
  s->guess = 0;
  return 0;
}

static int pg_stream_write(lb_cache_stream *bs, const lb_jval *data, long long emitted_at_ms,
                           const char *meta_json) {
  pg_stream *s = PS(bs);
  pg_cache *pc = s->pc;
  char uuid[37];
  size_t need, mlen = meta_json ? strlen(meta_json) : 2;
  int i, rc;
  if (pc == NULL) return LB_EINVAL;   /* its cache was closed (and freed): nothing to tell */
  if (s->finished) { lb__cache_seterr(&pc->base, "stream '%s' is finished", s->base.table); return LB_EINVAL; }
  if (pc->failed) return pc->failed;
  if ((rc = scan(s, data)) < 0) return rc;
  for (i = 0; i < s->sch->ncols; i++) {
    int k = widen_for(s, i, &s->vals[i]);
    if (k >= 0 && (rc = widen(s, i, k)) < 0) return rc;
  }
  /* the longest a row can get: every byte escaped, plus separators */
  need = 2 * data->n + 2 * mlen + (size_t)s->sch->ncols * (4 + LB_JSON_NUM_ROOM) + 128;
  if ((rc = reserve_buf(s, need)) < 0) return rc;
  for (i = 0; i < s->sch->ncols; i++) {
    const lb_jval *v = &s->vals[i];
    lb_cache_buf *b = &s->buf;
    switch (v->type) {
      case LB_JNONE: case LB_JNULL:
        memcpy(b->p + b->len, "\\N", 2); b->len += 2;
        break;
      case LB_JSTRING:
        if (s->kind[i] == LB_COL_JSON) copy_text(b, v->p, v->n);
        else copy_text(b, s->dec[i], s->declen[i]);
        break;
      case LB_JTRUE: case LB_JFALSE:
        if (s->kind[i] == LB_COL_BOOLEAN) b->p[b->len++] = v->type == LB_JTRUE ? 't' : 'f';
        else copy_text(b, v->p, v->n);
        break;
      case LB_JNUMBER:
        if (s->kind[i] == LB_COL_INTEGER) {
          long long i64 = 0;
          lb_jnum_to_int64(v, &i64);
          b->len += lb__json_fmt_int(i64, b->p + b->len);
        } else if (s->kind[i] == LB_COL_NUMBER) {
          if ((rc = copy_number(s, v->p, v->n)) < 0) return rc;
          b = &s->buf;                  /* it may have moved */
        } else {
          copy_text(b, v->p, v->n);
        }
        break;
      default:
        copy_text(b, v->p, v->n);
        break;
    }
    b->p[b->len++] = '\t';
  }
  lb_cache_uuid7(&pc->base, uuid);
  lb__cache_ts(&s->ts, emitted_at_ms);
  memcpy(s->buf.p + s->buf.len, uuid, 36); s->buf.len += 36;
  s->buf.p[s->buf.len++] = '\t';
  memcpy(s->buf.p + s->buf.len, s->ts.text, (size_t)s->ts.len); s->buf.len += (size_t)s->ts.len;
  s->buf.p[s->buf.len++] = '\t';
  copy_text(&s->buf, meta_json ? meta_json : "{}", mlen);
  s->buf.p[s->buf.len++] = '\n';
  s->base.rows++;
  if (s->buf.len >= COPY_CHUNK && (rc = flush_stream(s)) < 0) { pc->failed = rc; return rc; }
  return 0;
}

static int swap_in(pg_cache *pc, void *ud) {
  pg_stream *s = ud;
  lb_sbuf b = {0};
  int rc;
  if ((rc = xact_lock(pc, s->base.table)) < 0) return rc;
  lb__sb_add(&b, "DROP TABLE IF EXISTS ");
  lb__sb_add(&b, s->qtable);
  lb__sb_add(&b, "; ALTER TABLE ");
  lb__sb_add(&b, s->qtarget);
  lb__sb_add(&b, " RENAME TO ");
  lb__sb_ident(&b, s->base.table);
  rc = exec_sb(pc, &b);
  return rc;
}

static int pg_stream_finish(lb_cache_stream *bs) {
  pg_stream *s = PS(bs);
  pg_cache *pc = s->pc;
  struct swap *sw;
  int rc;
  if (s->finished) return 0;
  if (pc == NULL) return LB_EINVAL;   /* its cache was closed (and freed): nothing to tell */
  if ((rc = barrier(pc)) < 0) return rc;
  s->finished = 1;
  if (s->strategy != LB_WRITE_REPLACE) return 0;
  if (!in_tx(pc)) return with_tx(pc, swap_in, s);
  /* in the caller's transaction: the swap is the last thing its commit does */
  if ((sw = realloc(pc->swaps, (size_t)(pc->nswaps + 1) * sizeof *sw)) == NULL) return oom(pc);
  pc->swaps = sw;
  sw += pc->nswaps;
  sw->table = dupn(s->base.table, strlen(s->base.table));
  sw->qtable = dupn(s->qtable, strlen(s->qtable));
  sw->qtarget = dupn(s->qtarget, strlen(s->qtarget));
  if (!sw->table || !sw->qtable || !sw->qtarget) {
    free(sw->table); free(sw->qtable); free(sw->qtarget);
    return oom(pc);
  }
  pc->nswaps++;
  return 0;
}

static void drop_swaps(pg_cache *pc) {
  int i;
  for (i = 0; i < pc->nswaps; i++) {
    free(pc->swaps[i].table); free(pc->swaps[i].qtable); free(pc->swaps[i].qtarget);
  }
  pc->nswaps = 0;
}

/* DROP the old tables and RENAME the shadows in their place, in the
** caller's transaction, just before its COMMIT. */
static int do_swaps(pg_cache *pc) {
  int i, rc = 0;
  for (i = 0; i < pc->nswaps && rc == 0; i++) {
    lb_sbuf b = {0};
    if ((rc = xact_lock(pc, pc->swaps[i].table)) < 0) break;
    lb__sb_add(&b, "DROP TABLE IF EXISTS ");
    lb__sb_add(&b, pc->swaps[i].qtable);
    lb__sb_add(&b, "; ALTER TABLE ");
    lb__sb_add(&b, pc->swaps[i].qtarget);
    lb__sb_add(&b, " RENAME TO ");
    lb__sb_ident(&b, pc->swaps[i].table);
    rc = exec_sb(pc, &b);
  }
  drop_swaps(pc);
  return rc;
}

static int pg_stream_abort(lb_cache_stream *bs) {
  pg_stream *s = PS(bs);
  pg_cache *pc = s->pc;
  lb_sbuf b = {0};
  int rc = 0;
  if (s->finished || pc == NULL) return 0;
  s->buf.len = 0;                 /* its rows are being dropped anyway */
  if (pc->copying == s) discard(pc);
  s->staged = 0;
  s->finished = 1;
  if (s->strategy != LB_WRITE_REPLACE) return 0;
  if (PQtransactionStatus(pc->conn) == PQTRANS_INERROR) return 0;   /* the rollback drops it */
  lb__sb_add(&b, "DROP TABLE IF EXISTS ");
  lb__sb_add(&b, s->qtarget);
  rc = exec_sb(pc, &b);
  return rc;
}

static void pg_stream_close(lb_cache_stream *bs) {
  pg_stream *s = PS(bs);
  pg_cache *pc = s->pc;
  if (pc) {
    barrier(pc);                /* rows written stay written, as in SQLite */
    if (pc->copying == s) discard(pc);
    if (s->prev) s->prev->next = s->next;
    else pc->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    if (s->stage && PQtransactionStatus(pc->conn) == PQTRANS_IDLE) {
      lb_sbuf b = {0};
      lb__sb_add(&b, "DROP TABLE IF EXISTS ");
      lb__sb_add(&b, s->stage);
      if (!b.oom) PQclear(PQexec(pc->conn, b.p));
      free(b.p);
    }
  }
  stream_free(s);
}

/* --- state, destination state, the ledger, quarantine ---------------------------------- */

static int put_state_row(pg_cache *pc, const lb_cache_state_row *r, int dest) {
  char sql[768], *name = NULL, *ns = NULL, *json = NULL, *table = NULL;
  const char *v[6];
  int rc;
  if ((rc = no_nul(pc, r->key_name, r->key_name_len, "a state's stream name")) < 0 ||
      (rc = no_nul(pc, r->key_ns, r->key_ns_len, "a state's namespace")) < 0)
    return rc;
  if ((rc = barrier(pc)) < 0) return rc;     /* state must not run ahead of data */
  name = dupn(r->key_name, r->key_name_len);
  ns = dupn(r->key_ns ? r->key_ns : "", r->key_ns ? r->key_ns_len : 0);
  json = dupn(r->state_json, r->len);
  if (name) {
    lb_sbuf t = {0};
    lb__sb_add(&t, pc->base.prefix);
    lb__sb_add(&t, name);
    table = t.oom ? (free(t.p), NULL) : t.p;
  }
  if (!name || !ns || !json || !table) { rc = oom(pc); goto done; }
  if (!dest && strcmp(name, "_GLOBAL") == 0) {   /* cache.c's merge, in this transaction */
    lb_sbuf merged = {0};
    PGresult *res;
    snprintf(sql, sizeof sql, "SELECT state_json FROM %s._airbyte_state WHERE source_name = $1"
             " AND table_name = $2 AND stream_namespace = $3 FOR UPDATE", pc->qschema);
    v[0] = r->source_name; v[1] = table; v[2] = ns;
    if ((res = run(pc, pc->conn, sql, 3, v, NULL)) == NULL) { rc = LB_CACHE_ESQL; goto done; }
    rc = PQntuples(res) == 1 ? lb__cache_merge_global(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0),
                                                    json, strlen(json), &merged) : 0;
    PQclear(res);
    if (rc < 0) { free(merged.p); rc = oom(pc); goto done; }
    if (rc > 0) { free(json); json = merged.p; }
  }
  if (!dest) {
    snprintf(sql, sizeof sql,
             "INSERT INTO %s._airbyte_state (source_name, stream_name, table_name, state_json,"
             " last_updated, stream_namespace) VALUES ($1, $2, $3, $4, now(), $5)"
             " ON CONFLICT (source_name, table_name, stream_namespace) DO UPDATE SET"
             " stream_name = EXCLUDED.stream_name, state_json = EXCLUDED.state_json,"
             " last_updated = EXCLUDED.last_updated", pc->qschema);
    v[0] = r->source_name; v[1] = name; v[2] = table; v[3] = json; v[4] = ns;
    rc = exec1(pc, sql, 5, v);
  } else {
    snprintf(sql, sizeof sql,
             "INSERT INTO %s._airbyte_destination_state (destination_name, source_name, stream_name,"
             " state_json, last_updated, stream_namespace, destination_config_hash)"
             " VALUES ($1, $2, $3, $4, now(), $5, $6) ON CONFLICT (destination_name,"
             " destination_config_hash, source_name, stream_namespace, stream_name) DO UPDATE SET"
             " state_json = EXCLUDED.state_json, last_updated = EXCLUDED.last_updated", pc->qschema);
    v[0] = r->destination_name; v[1] = r->source_name; v[2] = name; v[3] = json; v[4] = ns;
    v[5] = r->config_hash ? r->config_hash : "";
    rc = exec1(pc, sql, 6, v);
  }
done:
  free(name); free(ns); free(json); free(table);
  return rc;
}

static int pg_put_state(lb_cache *c, const lb_cache_state_row *r) { return put_state_row(PC(c), r, 0); }
static int pg_put_destination_state(lb_cache *c, const lb_cache_state_row *r) {
  return put_state_row(PC(c), r, 1);
}

static int each_state(pg_cache *pc, const char *sql, int n, const char *const *v,
                      lb_cache_state_cb cb, void *ud) {
  PGresult *res;
  int i, rc = 0;
  if ((rc = barrier(pc)) < 0) return rc;
  if ((res = run(pc, pc->conn, sql, n, v, "reading states")) == NULL) return LB_CACHE_ESQL;
  for (i = 0; i < PQntuples(res) && rc == 0; i++) {
    if (PQgetisnull(res, i, 1)) continue;
    rc = cb(ud, PQgetvalue(res, i, 0), PQgetvalue(res, i, 2), PQgetvalue(res, i, 1),
            (size_t)PQgetlength(res, i, 1));
  }
  PQclear(res);
  return rc;
}

static int pg_get_states(lb_cache *c, const char *source_name, const char *prefix,
                         lb_cache_state_cb cb, void *ud) {
  pg_cache *pc = PC(c);
  char sql[512];
  const char *v[2] = { source_name, prefix ? prefix : "" };
  snprintf(sql, sizeof sql,
           "SELECT stream_name, state_json, stream_namespace FROM %s._airbyte_state"
           " WHERE source_name = $1 AND left(table_name, length($2)) = $2"
           " ORDER BY stream_namespace COLLATE \"C\", stream_name COLLATE \"C\"", pc->qschema);
  return each_state(pc, sql, 2, v, cb, ud);
}

static int pg_get_destination_states(lb_cache *c, const char *destination_name,
                                     const char *config_hash, const char *source_name,
                                     lb_cache_state_cb cb, void *ud) {
  pg_cache *pc = PC(c);
  char sql[640];
  const char *v[3] = { destination_name, config_hash, source_name };
  snprintf(sql, sizeof sql,
           "SELECT stream_name, state_json, stream_namespace FROM %s._airbyte_destination_state"
           " WHERE destination_name = $1 AND ($2::varchar IS NULL OR destination_config_hash = $2)"
           " AND ($3::varchar IS NULL OR source_name = $3) ORDER BY destination_config_hash COLLATE \"C\","
           " source_name COLLATE \"C\", stream_namespace COLLATE \"C\", stream_name COLLATE \"C\"",
           pc->qschema);
  return each_state(pc, sql, 3, v, cb, ud);
}

static void ledger_key(const lb_cache_delivery *d, const char **v) {
  v[0] = d->destination_name;
  v[1] = d->config_hash ? d->config_hash : "";
  v[2] = d->source_name;
  v[3] = d->stream_namespace ? d->stream_namespace : "";
  v[4] = d->stream_name;
}

static int pg_get_delivered(lb_cache *c, const lb_cache_delivery *d, char *raw_id, size_t cap) {
  pg_cache *pc = PC(c);
  char sql[512];
  const char *v[5];
  PGresult *res;
  int rc;
  if ((rc = barrier(pc)) < 0) return rc;
  ledger_key(d, v);
  snprintf(sql, sizeof sql,
           "SELECT last_raw_id FROM %s._luabyte_destination_progress WHERE destination_name = $1"
           " AND destination_config_hash = $2 AND source_name = $3 AND stream_namespace = $4"
           " AND stream_name = $5", pc->qschema);
  if ((res = run(pc, pc->conn, sql, 5, v, "reading the delivery ledger")) == NULL) return LB_CACHE_ESQL;
  raw_id[0] = '\0';
  if (PQntuples(res) > 0) snprintf(raw_id, cap, "%s", PQgetvalue(res, 0, 0));
  PQclear(res);
  return raw_id[0] != '\0';
}

static int pg_put_delivered(lb_cache *c, const lb_cache_delivery *d, const char *raw_id) {
  pg_cache *pc = PC(c);
  char sql[768];
  const char *v[6];
  int rc;
  if ((rc = barrier(pc)) < 0) return rc;
  ledger_key(d, v);
  v[5] = raw_id;
  /* never backwards: an older confirmation arriving late changes nothing */
  snprintf(sql, sizeof sql,
           "INSERT INTO %1$s._luabyte_destination_progress AS p (destination_name,"
           " destination_config_hash, source_name, stream_namespace, stream_name, last_raw_id,"
           " last_updated) VALUES ($1, $2, $3, $4, $5, $6, now()) ON CONFLICT (destination_name,"
           " destination_config_hash, source_name, stream_namespace, stream_name) DO UPDATE SET"
           " last_raw_id = EXCLUDED.last_raw_id, last_updated = EXCLUDED.last_updated"
           " WHERE EXCLUDED.last_raw_id COLLATE \"C\" > p.last_raw_id COLLATE \"C\"", pc->qschema);
  return exec1(pc, sql, 6, v);
}

typedef struct move_ctx { const char *v[3]; } move_ctx;

static int move_rows(pg_cache *pc, void *ud) {
  move_ctx *m = ud;
  static const char *const tables[2] = { "_airbyte_destination_state", "_luabyte_destination_progress" };
  char sql[768];
  int i, rc = 0;
  for (i = 0; i < 2 && rc == 0; i++) {
    /* rows already under the new identity give way, as UPDATE OR REPLACE would */
    snprintf(sql, sizeof sql,
             "DELETE FROM %1$s.%2$s t WHERE destination_name = $1 AND destination_config_hash = $3"
             " AND $2 <> $3 AND EXISTS (SELECT 1 FROM %1$s.%2$s f WHERE f.destination_name = $1"
             " AND f.destination_config_hash = $2 AND f.source_name = t.source_name"
             " AND f.stream_namespace = t.stream_namespace AND f.stream_name = t.stream_name)",
             pc->qschema, tables[i]);
    if ((rc = exec1(pc, sql, 3, m->v)) < 0) break;
    snprintf(sql, sizeof sql, "UPDATE %s.%s SET destination_config_hash = $3"
             " WHERE destination_name = $1 AND destination_config_hash = $2", pc->qschema, tables[i]);
    rc = exec1(pc, sql, 3, m->v);
  }
  return rc;
}

static int pg_move_destination(lb_cache *c, const char *destination_name, const char *from_hash,
                               const char *to_hash) {
  pg_cache *pc = PC(c);
  move_ctx m;
  int rc;
  if ((rc = barrier(pc)) < 0) return rc;
  m.v[0] = destination_name; m.v[1] = from_hash; m.v[2] = to_hash;
  if (!in_tx(pc)) return with_tx(pc, move_rows, &m);
  /* both tables or neither, inside the caller's transaction */
  if ((rc = exec1(pc, "SAVEPOINT lb_move_destination", 0, NULL)) < 0) return rc;
  if ((rc = move_rows(pc, &m)) < 0) {
    char msg[sizeof pc->base.errmsg];
    memcpy(msg, pc->base.errmsg, sizeof msg);
    PQclear(PQexec(pc->conn, "ROLLBACK TO SAVEPOINT lb_move_destination"));
    PQclear(PQexec(pc->conn, "RELEASE SAVEPOINT lb_move_destination"));
    memcpy(pc->base.errmsg, msg, sizeof msg);
    return rc;
  }
  return exec1(pc, "RELEASE SAVEPOINT lb_move_destination", 0, NULL);
}

static int pg_put_quarantine(lb_cache *c, const lb_cache_quarantine *q) {
  pg_cache *pc = PC(c);
  lb_cache_ts ts = {0};
  char sql[768], *stream = NULL, *ns = NULL, *rec = NULL, *why = NULL;
  const char *v[6];
  int rc;
  if ((rc = no_nul(pc, q->stream, q->stream_len, "a stream name")) < 0) return rc;
  if ((rc = barrier(pc)) < 0) return rc;   /* after the rows queued before it, in their transaction */
  snprintf(sql, sizeof sql,
           "CREATE TABLE IF NOT EXISTS %s._airbyte_quarantine (source_name VARCHAR NOT NULL,"
           " stream_name VARCHAR NOT NULL, stream_namespace VARCHAR NOT NULL DEFAULT '',"
           " record_json JSON NOT NULL, reasons JSON NOT NULL,"
           " _airbyte_extracted_at TIMESTAMP WITH TIME ZONE,"
           " quarantined_at TIMESTAMP WITH TIME ZONE)", pc->qschema);
  if ((rc = exec1(pc, sql, 0, NULL)) < 0) return rc;
  lb__cache_ts(&ts, q->emitted_at_ms);
  stream = dupn(q->stream, q->stream_len);
  ns = dupn(q->ns ? q->ns : "", q->ns ? q->ns_len : 0);
  rec = dupn(q->record_json, q->record_len);
  why = dupn(q->reasons_json, q->reasons_len);
  if (!stream || !ns || !rec || !why) { rc = oom(pc); goto done; }
  snprintf(sql, sizeof sql,
           "INSERT INTO %s._airbyte_quarantine (source_name, stream_name, stream_namespace,"
           " record_json, reasons, _airbyte_extracted_at, quarantined_at)"
           " VALUES ($1, $2, $3, $4, $5, $6, now())", pc->qschema);
  v[0] = q->source_name; v[1] = stream; v[2] = ns; v[3] = rec; v[4] = why; v[5] = ts.text;
  rc = exec1(pc, sql, 6, v);
done:
  free(stream); free(ns); free(rec); free(why);
  return rc;
}

/* --- stream locks -------------------------------------------------------------------- */

static int64_t stream_lock_key(pg_cache *pc, const char *source, const lb_cache_stream_id *id) {
  const char *parts[5] = { "luabyte stream lock", pc->schema, source, id->ns ? id->ns : "", id->name };
  size_t lens[5] = { 19, strlen(pc->schema), strlen(source), id->ns ? id->ns_len : 0, id->name_len };
  return lock_key(parts, lens, 5);
}

static int held_index(pg_cache *pc, int64_t key) {
  int i;
  for (i = 0; i < pc->nheld; i++) if (pc->held[i] == (uint64_t)key) return i;
  return -1;
}

static int pg_lock_stream(lb_cache *c, const char *source_name, const lb_cache_stream_id *id,
                          long timeout_ms, char *err, size_t errlen) {
  pg_cache *pc = PC(c);
  int64_t key = stream_lock_key(pc, source_name, id);
  char keytxt[32], holder[300], host[256], sql[640], *name = NULL, *ns = NULL;
  const char *v[5];
  long waited = 0;
  int rc = 0;
  if ((rc = no_nul(pc, id->name, id->name_len, "a stream name")) < 0 ||
      (rc = no_nul(pc, id->ns, id->ns ? id->ns_len : 0, "a namespace")) < 0) {
    snprintf(err, errlen, "%s", pc->base.errmsg);
    return rc;
  }
  if ((rc = barrier(pc)) < 0) { snprintf(err, errlen, "%s", pc->base.errmsg); return rc; }
  name = dupn(id->name, id->name_len);
  ns = dupn(id->ns ? id->ns : "", id->ns ? id->ns_len : 0);
  if (!name || !ns) { free(name); free(ns); snprintf(err, errlen, "out of memory"); return LB_ENOMEM; }
  snprintf(keytxt, sizeof keytxt, "%lld", (long long)key);
  v[0] = keytxt;
  if (held_index(pc, key) >= 0) {
    /* session locks nest: another task of this process holds it on this connection */
    snprintf(err, errlen, "stream '%s' of source '%s' is being read by another task of this"
             " process (pid %ld)", name, source_name, (long)getpid());
    free(name); free(ns);
    return LB_CACHE_EBUSY;
  }
  for (;;) {
    PGresult *res = run(pc, pc->conn, "SELECT pg_try_advisory_lock($1::int8)", 1, v, "taking a stream lock");
    int got;
    if (res == NULL) { snprintf(err, errlen, "%s", pc->base.errmsg); rc = LB_CACHE_ESQL; break; }
    got = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (got) break;
    if (waited >= timeout_ms) {
      const char *w[3] = { source_name, ns, name };
      snprintf(sql, sizeof sql, "SELECT holder, to_char(since, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
               " FROM %s._luabyte_stream_locks WHERE source_name = $1 AND stream_namespace = $2"
               " AND stream_name = $3", pc->qschema);
      res = run(pc, pc->conn, sql, 3, w, "reading a stream lock");
      if (res && PQntuples(res) > 0)
        snprintf(holder, sizeof holder, "%s since %s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
      else
        snprintf(holder, sizeof holder, "another runner");
      PQclear(res);
      snprintf(err, errlen, "stream '%s'%s%s%s of source '%s' is locked by %s (waited %ld ms):"
               " another runner is reading it into this cache", name, *ns ? " (namespace '" : "",
               ns, *ns ? "')" : "", source_name, holder, waited);
      rc = LB_CACHE_EBUSY;
      break;
    }
    usleep(LOCK_POLL_US);
    waited += LOCK_POLL_US / 1000;
  }
  if (rc == 0) {
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown-host");
    host[sizeof host - 1] = '\0';
    snprintf(holder, sizeof holder, "%ld@%s", (long)getpid(), host);
    snprintf(sql, sizeof sql,
             "INSERT INTO %s._luabyte_stream_locks (source_name, stream_namespace, stream_name,"
             " holder, since) VALUES ($1, $2, $3, $4, now()) ON CONFLICT (source_name,"
             " stream_namespace, stream_name) DO UPDATE SET holder = EXCLUDED.holder,"
             " since = EXCLUDED.since", pc->qschema);
    v[0] = source_name; v[1] = ns; v[2] = name; v[3] = holder;
    /* who holds it is news for the waiters now, not at the caller's commit */
    if (!in_tx(pc) && exec1(pc, sql, 4, v) < 0) {
      PGresult *r;
      const char *k[1] = { keytxt };
      snprintf(err, errlen, "%s", pc->base.errmsg);
      r = run(pc, pc->conn, "SELECT pg_advisory_unlock($1::int8)", 1, k, NULL);
      PQclear(r);
      rc = LB_CACHE_ESQL;
    } else if (pc->nheld < (int)(sizeof pc->held / sizeof pc->held[0])) {
      pc->held[pc->nheld++] = (uint64_t)key;
    }
  }
  free(name); free(ns);
  return rc;
}

static void pg_unlock_stream(lb_cache *c, const char *source_name, const lb_cache_stream_id *id) {
  pg_cache *pc = PC(c);
  int64_t key = stream_lock_key(pc, source_name, id);
  char keytxt[32];
  const char *v[1] = { keytxt };
  int i = held_index(pc, key);
  if (i < 0) return;
  pc->held[i] = pc->held[--pc->nheld];
  snprintf(keytxt, sizeof keytxt, "%lld", (long long)key);
  if (PQstatus(pc->conn) == CONNECTION_OK) PQclear(run(pc, pc->conn, "SELECT pg_advisory_unlock($1::int8)", 1, v, NULL));
}

/* --- the read side: server-side cursors --------------------------------------------- */

/* The connection a read runs on: the caller's while it has a transaction
** open (the read sees its rows), else the reader connection, in a
** read-only transaction of its own while cursors are open. */
static PGconn *reader(pg_cache *pc, int *on_reader) {
  PGresult *res;
  *on_reader = 0;
  if (in_tx(pc)) return pc->conn;
  if (pc->rconn && PQstatus(pc->rconn) != CONNECTION_OK && pc->rcursors == 0) {
    PQfinish(pc->rconn);                  /* the server went away: a new session */
    pc->rconn = NULL;
  }
  if (pc->rconn == NULL) {
    char err[sizeof pc->base.errmsg];
    if ((pc->rconn = lb__pg_connect(&pc->p, err, sizeof err)) == NULL) {
      lb__cache_seterr(&pc->base, "%s", err);
      return NULL;
    }
    if (session_setup(pc, pc->rconn) < 0) { PQfinish(pc->rconn); pc->rconn = NULL; return NULL; }
    /* a read never waits long on a writer's lock (DDL of another runner,
    ** or of this very process on its other connection) */
    PQclear(PQexec(pc->rconn, "SET lock_timeout = '60s'"));
  }
  if (pc->rcursors == 0) {
    res = run(pc, pc->rconn, "BEGIN READ ONLY", 0, NULL, "starting a read");
    if (res == NULL && PQstatus(pc->rconn) == CONNECTION_BAD) {
      /* it was ended while idle (a restart, pg_terminate_backend): once more */
      PQreset(pc->rconn);
      if (PQstatus(pc->rconn) == CONNECTION_OK && session_setup(pc, pc->rconn) == 0)
        res = run(pc, pc->rconn, "BEGIN READ ONLY", 0, NULL, "starting a read");
    }
    if (res == NULL) return NULL;
    PQclear(res);
  }
  pc->rcursors++;
  *on_reader = 1;
  return pc->rconn;
}

static void reader_done(pg_cache *pc) {
  if (--pc->rcursors == 0 && pc->rconn && PQstatus(pc->rconn) == CONNECTION_OK)
    PQclear(PQexec(pc->rconn, "COMMIT"));
}

static void link_cursor(pg_cache *pc, pg_cursor *cur) {
  cur->prev = NULL;
  cur->next = pc->cursors;
  if (pc->cursors) pc->cursors->prev = cur;
  pc->cursors = cur;
}

static void unlink_cursor(pg_cursor *cur) {
  pg_cache *pc = cur->pc;
  if (pc == NULL) return;
  if (cur->prev) cur->prev->next = cur->next;
  else if (pc->cursors == cur) pc->cursors = cur->next;
  if (cur->next) cur->next->prev = cur->prev;
  cur->prev = cur->next = NULL;
}

/* DECLAREs cur->name for sql on a reader and fetches the first rows. */
static int cursor_start(pg_cache *pc, pg_cursor *cur, const char *sql, int n, const char *const *v,
                        const Oid *types, const char *what) {
  lb_sbuf b = {0};
  PGresult *res;
  char fetch[64];
  int rc = 0;
  cur->pc = pc;
  if ((cur->conn = reader(pc, &cur->on_reader)) == NULL) return LB_CACHE_ESQL;
  snprintf(cur->name, sizeof cur->name, "lb_cursor_%u", ++pc->cursor_seq);
  lb__sb_add(&b, "DECLARE ");
  lb__sb_add(&b, cur->name);
  lb__sb_add(&b, " NO SCROLL CURSOR FOR ");
  lb__sb_add(&b, sql);
  if ((rc = sb_done(pc, &b)) < 0) goto fail;
  res = PQexecParams(cur->conn, b.p, n, types, v, NULL, NULL, 0);
  free(b.p);
  b.p = NULL;
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    if (res && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY))
      lb__pg_result_error(&pc->p, res, what, pc->base.errmsg, sizeof pc->base.errmsg);
    else
      lb__pg_error(&pc->p, cur->conn, what, NULL, pc->base.errmsg, sizeof pc->base.errmsg);
    PQclear(res);
    rc = LB_CACHE_ESQL;
    goto fail;
  }
  PQclear(res);
  snprintf(fetch, sizeof fetch, "FETCH FORWARD %d FROM %s", FETCH_ROWS, cur->name);
  if ((cur->res = run(pc, cur->conn, fetch, 0, NULL, what)) == NULL) { rc = LB_CACHE_ESQL; goto fail; }
  cur->nrows = PQntuples(cur->res);
  cur->ncols = PQnfields(cur->res);
  cur->row = 0;
  link_cursor(pc, cur);
  return 0;
fail:
  free(b.p);
  cur->name[0] = '\0';
  if (cur->on_reader) {
    /* a failed DECLARE aborts the reader's transaction: end it */
    if (--pc->rcursors == 0 && PQstatus(cur->conn) == CONNECTION_OK) PQclear(PQexec(cur->conn, "ROLLBACK"));
    cur->on_reader = 0;
  }
  return rc;
}

/* 1 and the next row at cur->row, 0 at the end, negative on failure. */
static int cursor_step(pg_cursor *cur, const char *what) {
  char fetch[64];
  if (cur->row + 1 < cur->nrows) { cur->row++; return 1; }
  if (cur->pc == NULL) return cur->res ? 0 : LB_EINVAL;   /* its cache was closed */
  if (cur->done || cur->name[0] == '\0') { cur->done = 1; return 0; }
  if (cur->nrows < FETCH_ROWS && cur->res) { cur->done = 1; return 0; }
  PQclear(cur->res);
  cur->res = NULL;
  /* on the caller's connection, rows being copied go in first */
  if (cur->conn == cur->pc->conn && barrier(cur->pc) < 0) return LB_CACHE_ESQL;
  snprintf(fetch, sizeof fetch, "FETCH FORWARD %d FROM %s", FETCH_ROWS, cur->name);
  if ((cur->res = run(cur->pc, cur->conn, fetch, 0, NULL, what)) == NULL) return LB_CACHE_ESQL;
  cur->nrows = PQntuples(cur->res);
  cur->row = 0;
  if (cur->nrows == 0) { cur->done = 1; return 0; }
  return 1;
}

static void cursor_end(pg_cursor *cur) {
  pg_cache *pc = cur->pc;
  PQclear(cur->res);
  cur->res = NULL;
  if (pc == NULL) return;            /* the cache (and its connections) are gone */
  unlink_cursor(cur);
  if (cur->name[0] && cur->conn && PQstatus(cur->conn) == CONNECTION_OK &&
      PQtransactionStatus(cur->conn) == PQTRANS_INTRANS) {
    char sql[64];
    snprintf(sql, sizeof sql, "CLOSE %s", cur->name);
    PQclear(PQexec(cur->conn, sql));
  }
  cur->name[0] = '\0';
  if (cur->on_reader) reader_done(pc);
  cur->on_reader = 0;
}

/* JSON string s[0..n) appended (room reserved by the caller) */
static void add_quoted(lb_cache_buf *b, const char *s, size_t n) {
  b->len += (size_t)lb__json_quote(s, n, b->p + b->len, 0);
}

static int add_text(pg_cache *pc, lb_cache_buf *b, const char *s, size_t n) {
  if (lb_cache_buf_reserve(b, LB_JSON_QUOTE_ROOM(n)) != 0) return oom(pc);
  add_quoted(b, s, n);
  return 0;
}

static lb_cache_cursor *pg_cursor_open(lb_cache *c, const lb_cache_cursor_spec *spec) {
  pg_cache *pc = PC(c);
  pg_cursor *cur;
  lb_sbuf q = {0};
  lb_cache_buf h = {NULL, 0, 0};
  const char *v[1] = { spec->after_raw_id };
  char what[200];
  int i, rc;
  size_t total = 0;
  if (barrier(pc) < 0) return NULL;
  if ((cur = calloc(1, sizeof *cur)) == NULL) { oom(pc); return NULL; }
  cur->base.c = c;
  cur->base.ops = &pg_ops;
  cur->col_raw = cur->col_ts = -1;
  lb__sb_add(&q, "SELECT * FROM ");
  sb_qual(&q, pc, spec->table);
  if (spec->after_raw_id) lb__sb_add(&q, " WHERE \"" LB_CACHE_RAW_ID_COL "\" COLLATE \"C\" > $1");
  if (sb_done(pc, &q) < 0) { free(cur); return NULL; }
  snprintf(what, sizeof what, "reading table '%.100s'", spec->table);
  rc = cursor_start(pc, cur, q.p, spec->after_raw_id ? 1 : 0, v, NULL, what);
  free(q.p);
  if (rc < 0) { free(cur); return NULL; }
  /* the line's head and each column's key, once */
  if (add_text(pc, &h, "", 0) < 0) goto fail;
  h.len = 0;
  if (lb_cache_buf_reserve(&h, 64 + LB_JSON_QUOTE_ROOM(spec->stream_len) +
                            (spec->ns ? LB_JSON_QUOTE_ROOM(spec->ns_len) + 16 : 0)) != 0) {
    oom(pc);
    goto fail;
  }
  memcpy(h.p, "{\"type\":\"RECORD\",\"record\":{\"stream\":", 36); h.len = 36;
  add_quoted(&h, spec->stream, spec->stream_len);
  if (spec->ns) {
    memcpy(h.p + h.len, ",\"namespace\":", 13); h.len += 13;
    add_quoted(&h, spec->ns, spec->ns_len);
  }
  memcpy(h.p + h.len, ",\"data\":{", 9); h.len += 9;
  cur->head = h.p;
  cur->head_len = h.len;
  cur->ckind = calloc((size_t)cur->ncols + 1, 1);
  cur->key_off = calloc((size_t)cur->ncols + 1, sizeof *cur->key_off);
  for (i = 0; i < cur->ncols; i++) total += LB_JSON_QUOTE_ROOM(strlen(PQfname(cur->res, i))) + 2;
  if (!cur->ckind || !cur->key_off || (cur->keys = malloc(total + 1)) == NULL) { oom(pc); goto fail; }
  {
    lb_cache_buf k = {cur->keys, 0, total + 1};
    for (i = 0; i < cur->ncols; i++) {
      const char *name = PQfname(cur->res, i);
      Oid t = PQftype(cur->res, i);
      cur->key_off[i] = k.len;
      k.p[k.len++] = ',';
      add_quoted(&k, name, strlen(name));
      k.p[k.len++] = ':';
      if (strcmp(name, LB_CACHE_RAW_ID_COL) == 0) { cur->col_raw = i; cur->ckind[i] = CK_INTERNAL; }
      else if (strcmp(name, LB_CACHE_EXTRACTED_AT_COL) == 0) { cur->col_ts = i; cur->ckind[i] = CK_INTERNAL; }
      else if (strcmp(name, LB_CACHE_META_COL) == 0) cur->ckind[i] = CK_INTERNAL;
      else if (t == OID_INT8 || t == OID_INT4 || t == OID_INT2 || t == OID_NUMERIC || t == OID_FLOAT4 ||
               t == OID_FLOAT8)
        cur->ckind[i] = CK_NUM;
      else if (t == OID_BOOL) cur->ckind[i] = CK_BOOL;
      else if (t == OID_JSON || t == OID_JSONB) cur->ckind[i] = CK_JSON;
      else cur->ckind[i] = CK_TEXT;
    }
    cur->key_off[cur->ncols] = k.len;
  }
  cur->row = -1;
  return &cur->base;
fail:
  free(h.p);
  cur->head = NULL;
  cursor_end(cur);
  free(cur->ckind); free(cur->key_off); free(cur->keys);
  free(cur);
  return NULL;
}

/* A number column's text as JSON: integers as their digits (every one of
** them), floats as the shortest spelling of the double they are (as the
** SQLite backend sends them), NaN as null, infinities as numbers that read
** back as such. Room: n + LB_JSON_NUM_ROOM reserved. */
static void add_number(lb_cache_buf *b, const char *t, size_t n) {
  double d;
  size_t k;
  if (n && t[0] == 'N') { memcpy(b->p + b->len, "null", 4); b->len += 4; return; }
  if (strpbrk(t, ".eEI") == NULL) { memcpy(b->p + b->len, t, n); b->len += n; return; }
  d = strtod(t, NULL);
  if ((k = lb__json_fmt_double(d, b->p + b->len)) == 0) {
    memcpy(b->p + b->len, d > 0 ? "1e999" : "-1e999", d > 0 ? 5 : 6);
    k = d > 0 ? 5 : 6;
  }
  b->len += k;
}

static int pg_cursor_next(lb_cache_cursor *bc, lb_cache_buf *out, const char **raw_id,
                          size_t *raw_id_len) {
  pg_cursor *cur = (pg_cursor *)(void *)bc;
  pg_cache *pc = cur->pc;
  PGresult *r;
  long long ms = 0;
  int i, first = 1, rc;
  *raw_id = NULL;
  *raw_id_len = 0;
  if ((rc = cursor_step(cur, "reading the cache")) <= 0) return rc;
  r = cur->res;
  if (lb_cache_buf_reserve(out, cur->head_len + 64) != 0) return oom(pc);
  memcpy(out->p + out->len, cur->head, cur->head_len);
  out->len += cur->head_len;
  for (i = 0; i < cur->ncols; i++) {
    const char *t = PQgetvalue(r, cur->row, i);
    size_t n = (size_t)PQgetlength(r, cur->row, i), klen = cur->key_off[i + 1] - cur->key_off[i];
    int isnull = PQgetisnull(r, cur->row, i);
    if (cur->ckind[i] == CK_INTERNAL) {
      if (i == cur->col_raw && !isnull) { *raw_id = t; *raw_id_len = n; }
      if (i == cur->col_ts && !isnull) ms = lb__cache_parse_ts(t, n);
      continue;
    }
    if (lb_cache_buf_reserve(out, klen + LB_JSON_QUOTE_ROOM(n) + LB_JSON_NUM_ROOM) != 0) return oom(pc);
    memcpy(out->p + out->len, cur->keys + cur->key_off[i] + first, klen - (size_t)first);
    out->len += klen - (size_t)first;
    first = 0;
    if (isnull) { memcpy(out->p + out->len, "null", 4); out->len += 4; continue; }
    switch (cur->ckind[i]) {
      case CK_NUM: add_number(out, t, n); break;
      case CK_BOOL:
        if (t[0] == 't') { memcpy(out->p + out->len, "true", 4); out->len += 4; }
        else { memcpy(out->p + out->len, "false", 5); out->len += 5; }
        break;
      case CK_JSON: memcpy(out->p + out->len, t, n); out->len += n; break;
      default: add_quoted(out, t, n); break;
    }
  }
  if (lb_cache_buf_reserve(out, 64) != 0) return oom(pc);
  memcpy(out->p + out->len, "},\"emitted_at\":", 15);
  out->len += 15;
  out->len += lb__json_fmt_int(ms, out->p + out->len);
  memcpy(out->p + out->len, "}}\n", 3);
  out->len += 3;
  return 1;
}

static void pg_cursor_close(lb_cache_cursor *bc) {
  pg_cursor *cur = (pg_cursor *)(void *)bc;
  cursor_end(cur);
  free(cur->head);
  free(cur->ckind);
  free(cur->key_off);
  free(cur->keys);
  free(cur);
}

/* --- ad-hoc SQL ------------------------------------------------------------------------- */

static int pg_exec(lb_cache *c, const char *sql, size_t len) {
  pg_cache *pc = PC(c);
  char *s;
  PGresult *res;
  int rc;
  if ((rc = barrier(pc)) < 0) return rc;
  if ((s = dupn(sql, len)) == NULL) return oom(pc);
  res = run(pc, pc->conn, s, 0, NULL, NULL);
  if (res == NULL) { free(s); return LB_CACHE_ESQL; }
  pc->changes = atoll(PQcmdTuples(res));
  PQclear(res);
  free(s);
  return 0;
}

static long long pg_changes(lb_cache *c) { return PC(c)->changes; }

/* A statement that returns rows a cursor can walk. */
static int is_select(const char *s) {
  for (;;) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '(') s++;
    if (s[0] == '-' && s[1] == '-') { while (*s && *s != '\n') s++; continue; }
    if (s[0] == '/' && s[1] == '*') {
      const char *e = strstr(s + 2, "*/");
      if (e == NULL) return 0;
      s = e + 2;
      continue;
    }
    break;
  }
  return strncasecmp(s, "select", 6) == 0 || strncasecmp(s, "with", 4) == 0 ||
         strncasecmp(s, "values", 6) == 0 || strncasecmp(s, "table", 5) == 0;
}

/* The Lua layer's statements number their parameters SQLite's way (?1,
** or ? in order): with parameters given, those become $1... outside
** quotes and comments (a "?" before '|' or '&', jsonb's operators, is
** left alone). A fresh string, or NULL. */
static char *dollar_params(const char *sql) {
  lb_sbuf b = {0};
  const char *p = sql;
  int next = 0;
  while (*p) {
    char ch = *p;
    if (ch == '\'' || ch == '"') {                 /* a literal or a quoted name */
      const char *q = p + 1;
      while (*q && !(*q == ch && q[1] != ch)) q += (*q == ch) ? 2 : 1;
      if (*q) q++;
      lb__sb_addn(&b, p, (size_t)(q - p));
      p = q;
    } else if (ch == '-' && p[1] == '-') {
      const char *q = strchr(p, '\n');
      if (q == NULL) q = p + strlen(p);
      lb__sb_addn(&b, p, (size_t)(q - p));
      p = q;
    } else if (ch == '/' && p[1] == '*') {
      const char *q = strstr(p + 2, "*/");
      q = q ? q + 2 : p + strlen(p);
      lb__sb_addn(&b, p, (size_t)(q - p));
      p = q;
    } else if (ch == '?' && p[1] >= '0' && p[1] <= '9') {
      lb__sb_addn(&b, "$", 1);
      p++;
    } else if (ch == '?' && p[1] != '|' && p[1] != '&') {
      char num[16];
      snprintf(num, sizeof num, "$%d", ++next);
      lb__sb_add(&b, num);
      p++;
    } else {
      lb__sb_addn(&b, p, 1);
      p++;
    }
  }
  if (b.oom || b.p == NULL) { free(b.p); return NULL; }
  return b.p;
}

static int kind_of_oid(Oid t) {
  switch (t) {
    case OID_INT8: case OID_INT4: case OID_INT2: return LB_COL_INTEGER;
    case OID_NUMERIC: case OID_FLOAT4: case OID_FLOAT8: return LB_COL_NUMBER;
    case OID_BOOL: return LB_COL_BOOLEAN;
    case OID_JSON: case OID_JSONB: return LB_COL_JSON;
    default: return LB_COL_STRING;
  }
}

static void query_free(pg_query *q) {
  cursor_end(&q->cur);
  free(q->vals);
  free(q->kinds);
  free(q->ts);
  free(q);
}

static lb_cache_query *pg_query_open(lb_cache *c, const char *sql, size_t len,
                                     const lb_cache_value *params, int nparams) {
  pg_cache *pc = PC(c);
  pg_query *q;
  char **txt = NULL, *s = NULL;
  Oid *types = NULL;
  int i, rc = 0;
  if (barrier(pc) < 0) return NULL;
  if ((q = calloc(1, sizeof *q)) == NULL) { oom(pc); return NULL; }
  q->base.c = c;
  q->cur.pc = pc;
  q->cur.row = -1;
  if ((s = dupn(sql, len)) == NULL) goto nomem;
  /* a cursor wants one statement without its ';' */
  while (len > 0 && (s[len - 1] == ';' || s[len - 1] == ' ' || s[len - 1] == '\n' ||
                     s[len - 1] == '\t' || s[len - 1] == '\r'))
    s[--len] = '\0';
  if (nparams > 0) {
    char *d = dollar_params(s);
    if (d == NULL) goto nomem;
    free(s);
    s = d;
    txt = calloc((size_t)nparams, sizeof *txt);
    types = calloc((size_t)nparams, sizeof *types);
    if (!txt || !types) goto nomem;
  }
  for (i = 0; i < nparams; i++) {
    const lb_cache_value *p = &params[i];
    char num[64];
    if (p->name) {
      lb__cache_seterr(c, "PostgreSQL takes positional parameters ($1, $2, ...), not '%s'", p->name);
      goto fail;
    }
    switch (p->type) {
      case LB_VAL_NULL: break;
      case LB_VAL_INT: snprintf(num, sizeof num, "%lld", p->i); txt[i] = dupn(num, strlen(num));
        types[i] = OID_INT8; break;
      case LB_VAL_FLOAT: snprintf(num, sizeof num, "%.17g", p->d); txt[i] = dupn(num, strlen(num));
        types[i] = OID_FLOAT8; break;
      case LB_VAL_BOOL: txt[i] = dupn(p->i ? "true" : "false", p->i ? 4 : 5); types[i] = OID_BOOL; break;
      default:
        if (no_nul(pc, p->s, p->n, "a text parameter") < 0) goto fail;
        txt[i] = dupn(p->s, p->n);
        break;
    }
    if (p->type != LB_VAL_NULL && txt[i] == NULL) goto nomem;
  }
  if (is_select(s)) {
    rc = cursor_start(pc, &q->cur, s, nparams, (const char *const *)txt, types, "running the query");
  } else {
    PGresult *res = PQexecParams(pc->conn, s, nparams, types, (const char *const *)txt, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      pgerr(pc, res, "running the query");
      PQclear(res);
      rc = LB_CACHE_ESQL;
    } else {
      pc->changes = atoll(PQcmdTuples(res));
      q->cur.res = res;
      q->cur.nrows = PQntuples(res);
      q->cur.ncols = PQnfields(res);
      q->cur.done = 1;                      /* all of it is here */
      link_cursor(pc, &q->cur);
    }
  }
  if (rc < 0) goto fail;
  q->cur.row = -1;
  q->vals = calloc((size_t)q->cur.ncols + 1, sizeof *q->vals);
  q->kinds = calloc((size_t)q->cur.ncols + 1, sizeof *q->kinds);
  q->ts = calloc((size_t)q->cur.ncols + 1, sizeof *q->ts);
  if (!q->vals || !q->kinds || !q->ts) goto nomem;
  for (i = 0; i < q->cur.ncols; i++)
    q->kinds[i] = PQftable(q->cur.res, i) == InvalidOid ? -1 : kind_of_oid(PQftype(q->cur.res, i));
  goto done;
nomem:
  oom(pc);
fail:
  query_free(q);
  q = NULL;
done:
  for (i = 0; txt && i < nparams; i++) free(txt[i]);
  free(txt);
  free(types);
  free(s);
  return q ? &q->base : NULL;
}

static int pg_query_ncols(lb_cache_query *bq) { return ((pg_query *)(void *)bq)->cur.ncols; }
static const char *pg_query_col_name(lb_cache_query *bq, int i) {
  return PQfname(((pg_query *)(void *)bq)->cur.res, i);
}
static int pg_query_col_kind(lb_cache_query *bq, int i) { return ((pg_query *)(void *)bq)->kinds[i]; }

/* A NUMERIC's text as the value it is: an integer when it has no fraction
** (digits beyond int64 as BIGINT digits), else a double. */
static void numeric_value(lb_cache_value *v, const char *t, size_t n) {
  char *end;
  if (strpbrk(t, ".eEN") == NULL && strchr(t, 'I') == NULL) {
    errno = 0;
    v->i = strtoll(t, &end, 10);
    if (errno == 0 && *end == '\0') { v->type = LB_VAL_INT; return; }
    v->type = LB_VAL_BIGINT; v->s = t; v->n = n;
    return;
  }
  v->type = LB_VAL_FLOAT;
  v->d = strtod(t, NULL);
}

static int pg_query_next(lb_cache_query *bq, const lb_cache_value **row) {
  pg_query *q = (pg_query *)(void *)bq;
  PGresult *r;
  int i, rc;
  if ((rc = cursor_step(&q->cur, "running the query")) <= 0) return rc;
  r = q->cur.res;
  for (i = 0; i < q->cur.ncols; i++) {
    lb_cache_value *v = &q->vals[i];
    const char *t = PQgetvalue(r, q->cur.row, i);
    size_t n = (size_t)PQgetlength(r, q->cur.row, i);
    memset(v, 0, sizeof *v);
    if (PQgetisnull(r, q->cur.row, i)) { v->type = LB_VAL_NULL; continue; }
    switch (PQftype(r, i)) {
      case OID_BOOL: v->type = LB_VAL_BOOL; v->i = t[0] == 't'; break;
      case OID_INT8: case OID_INT4: case OID_INT2: case OID_OID:
        v->type = LB_VAL_INT; v->i = strtoll(t, NULL, 10); break;
      case OID_FLOAT4: case OID_FLOAT8: v->type = LB_VAL_FLOAT; v->d = strtod(t, NULL); break;
      case OID_NUMERIC: numeric_value(v, t, n); break;
      case OID_JSON: case OID_JSONB: v->type = LB_VAL_JSON; v->s = t; v->n = n; break;
      case OID_TIMESTAMPTZ:
        /* as the layout spells _airbyte_extracted_at in every backend
        ** ("2022-11-29T00:35:07.441+00:00"; the session is in UTC) */
        lb__cache_ts(&q->ts[i], lb__cache_parse_ts(t, n));
        v->type = LB_VAL_TEXT; v->s = q->ts[i].text; v->n = (size_t)q->ts[i].len;
        break;
      default: v->type = LB_VAL_TEXT; v->s = t; v->n = n; break;
    }
  }
  *row = q->vals;
  return 1;
}

static void pg_query_close(lb_cache_query *bq) { query_free((pg_query *)(void *)bq); }

/* --- introspection ------------------------------------------------------------------------ */

static int pg_has_table(lb_cache *c, const char *table) {
  pg_cache *pc = PC(c);
  const char *v[2] = { pc->schema, table };
  PGresult *res;
  int rc;
  if ((rc = barrier(pc)) < 0) return rc;
  if ((res = run(pc, pc->conn, "SELECT 1 FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace"
                 " WHERE n.nspname = $1 AND k.relname = $2 AND k.relkind IN ('r', 'p')", 2, v,
                 "looking up a table")) == NULL)
    return LB_CACHE_ESQL;
  rc = PQntuples(res) > 0;
  PQclear(res);
  return rc;
}

static int pg_columns(lb_cache *c, const char *table, lb_cache_column_cb cb, void *ud) {
  pg_cache *pc = PC(c);
  const char *v[2] = { pc->schema, table };
  PGresult *res;
  int i, rc = 0;
  if ((rc = barrier(pc)) < 0) return rc;
  if ((res = run(pc, pc->conn, COLUMNS_SQL, 2, v, "reading a table's columns")) == NULL) return LB_CACHE_ESQL;
  for (i = 0; i < PQntuples(res) && rc == 0; i++)
    rc = cb(ud, PQgetvalue(res, i, 0), kind_of_type(PQgetvalue(res, i, 1)), PQgetvalue(res, i, 1));
  PQclear(res);
  return rc;
}

static int pg_streams(lb_cache *c, const char *prefix, lb_cache_stream_row_cb cb, void *ud) {
  pg_cache *pc = PC(c);
  char sql[768];
  const char *v[2] = { prefix ? prefix : "", pc->schema };
  PGresult *res;
  int rc;
  if ((rc = barrier(pc)) < 0) return rc;
  snprintf(sql, sizeof sql,
           "SELECT s.stream_name, s.stream_namespace, s.table_name, s.source_name, s.catalog_metadata"
           " FROM %s._airbyte_streams s WHERE s.table_prefix = $1 AND EXISTS (SELECT 1 FROM pg_class k"
           " JOIN pg_namespace n ON n.oid = k.relnamespace WHERE n.nspname = $2"
           " AND k.relname = s.table_name AND k.relkind IN ('r', 'p'))"
           " ORDER BY s.stream_name COLLATE \"C\", s.stream_namespace COLLATE \"C\"", pc->qschema);
  if ((res = run(pc, pc->conn, sql, 2, v, "listing the cached streams")) == NULL) return LB_CACHE_ESQL;
  return each_stream_row(res, cb, ud);
}

static const char *const pg_reserved[] = { "pg_", NULL };

static const lb_cache_ops pg_ops = {
  .kind = "postgres", .reserved = pg_reserved, .max_ident = LB_PG_NAMEDATALEN,
  .close = pg_close, .begin = pg_begin, .commit = pg_commit, .rollback = pg_rollback,
  .in_transaction = pg_in_transaction, .set_async = pg_set_async, .sync = pg_sync,
  .wait_room = pg_wait_room, .wait_idle = pg_wait_idle, .stream_rows = pg_stream_rows,
  .table_owner = pg_table_owner, .stream_open = pg_stream_open, .stream_write = pg_stream_write,
  .stream_finish = pg_stream_finish, .stream_abort = pg_stream_abort,
  .stream_close = pg_stream_close, .put_state = pg_put_state, .get_states = pg_get_states,
  .put_destination_state = pg_put_destination_state,
  .get_destination_states = pg_get_destination_states, .get_delivered = pg_get_delivered,
  .put_delivered = pg_put_delivered, .move_destination = pg_move_destination,
  .put_quarantine = pg_put_quarantine, .lock_stream = pg_lock_stream,
  .unlock_stream = pg_unlock_stream, .cursor_open = pg_cursor_open, .cursor_next = pg_cursor_next,
  .cursor_close = pg_cursor_close, .exec = pg_exec, .changes = pg_changes,
  .query_open = pg_query_open, .query_ncols = pg_query_ncols, .query_col_name = pg_query_col_name,
  .query_col_kind = pg_query_col_kind, .query_next = pg_query_next, .query_close = pg_query_close,
  .has_table = pg_has_table, .columns = pg_columns, .streams = pg_streams
};
