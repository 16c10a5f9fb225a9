/*
** cache_sqlite.c - the SQLite backend of the storage interface (cache.h
** for the layout and types, cache_backend.h for the ops it implements;
** cache.c has done the argument checks, names and state keys).
**
** The hot path is the stream write op. The shared scanner
** (lb__cache_scan_row, cache_columns.c) makes one pass over the members of
** a record's data object, each value becoming a wval that points at its
** bytes in the input; bind_row then binds them all SQLITE_STATIC and the
** stream's one prepared INSERT is stepped. The read side (cursor) turns
** rows back into RECORD lines with jsonenc.c.
**
** In async mode (the default) the record is first copied into a batch and
** scanned there; full batches go to a writer thread that binds and steps
** them, 32 rows per INSERT statement when they belong to one stream, while
** the caller parses the next records. A checkpointer thread with its own
** connection copies the WAL back into the database file, so that neither
** the commit nor the writer waits for it. Nothing is allocated per record:
** batches, arenas and value arrays are reused. The threads, the queued
** transactions and the turnstile are cache_sqlite_writer.c's.
*/
#define _GNU_SOURCE        /* clock_gettime, getrandom, O_CLOEXEC under -std=c99 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#if defined(__linux__)
# include <sys/random.h>
#endif
#include <sqlite3.h>
#include <uv.h>
#include "cache_sqlite_int.h"
#include "sql_regexp.h"
#include "protocol.h"
#include "jsonenc.h"

#define RAW_ID_COL LB_CACHE_RAW_ID_COL
#define EXTRACTED_AT_COL LB_CACHE_EXTRACTED_AT_COL
#define META_COL LB_CACHE_META_COL
#define SHADOW_PREFIX LB_CACHE_SHADOW_PREFIX
#define PK_INDEX_PREFIX LB_CACHE_PK_INDEX_PREFIX
#define LEGACY_PK_INDEX_SUFFIX "_airbyte_pk"   /* older files: "<table>_airbyte_pk" */

/* SQL types of the column kinds (lb_col_kind, cache_columns.c). Only
** is_text changes how values are bound (see cache.h). */
static const char *const kind_sql[] = {
  "VARCHAR", "BIGINT", "DECIMAL(38,9)", "BOOLEAN", "JSON"
};


/* --- small helpers -------------------------------------------------------- */

void lb__sq_seterr(sq_cache *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->base.errmsg, sizeof c->base.errmsg, fmt, ap);
  va_end(ap);
}

static void copyerr(char *err, size_t errlen, const char *msg) {
  if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* SQLite's message for the last failed call on db. "database or disk is
** full" does not say which disk: a full disk and a failed write name the
** cache file (its -wal and -journal files live beside it). */
void lb__sq_sqlite_why(sq_cache *c, sqlite3 *db, char *out, size_t len) {
  int ec = sqlite3_errcode(db);
  if (ec == SQLITE_FULL)
    snprintf(out, len, "the disk is full: cannot write the cache file %.300s (%s)", c->path,
             sqlite3_errmsg(db));
  else if (ec == SQLITE_IOERR)
    snprintf(out, len, "%s (cache file %.300s)", sqlite3_errmsg(db), c->path);
  else
    snprintf(out, len, "%s", sqlite3_errmsg(db));
}

/* A lock another connection holds, met on the caller's thread in nowait
** mode (lb_cache_set_nowait): on_busy gave up at once, and the call is
** LB_CACHE_EBUSY, for the caller to retry after yielding. */
int lb__sq_nowait_busy(sq_cache *c, int ec) {
  return (ec & 0xff) == SQLITE_BUSY && c->base.nowait && !c->writer_step;
}

/* The code of a failure (ec: SQLite's) whose message is set: for a lock,
** the message says whose it is. */
int lb__sq_fail_code(sq_cache *c, int ec, const char *sql, size_t len) {
  if (ec == SQLITE_NOMEM) return LB_ENOMEM;
  if (!lb__sq_nowait_busy(c, ec)) return LB_CACHE_ESQL;
  if (len > 200) len = 200;
  lb__sq_seterr(c, "the cache file %.300s is locked: another process holds its write lock (in: %.*s%s)",
         c->path, (int)len, sql ? sql : "", sql && strlen(sql) > len ? "..." : "");
  c->base.busy = 1;
  return LB_CACHE_EBUSY;
}

/* Records SQLite's message for a failed call on sql (cut to 200 bytes). */
static int sqlerr(sq_cache *c, const char *sql) {
  int n = sql ? (int)strlen(sql) : 0;
  char why[400];
  if (n > 200) n = 200;
  lb__sq_sqlite_why(c, c->db, why, sizeof why);
  if (sql)
    lb__sq_seterr(c, "%s (in: %.*s%s)", why, n, sql, strlen(sql) > 200 ? "..." : "");
  else
    lb__sq_seterr(c, "%s", why);
  return lb__sq_fail_code(c, sqlite3_errcode(c->db), sql, sql ? strlen(sql) : 0);
}

static int exec_sql(sq_cache *c, const char *sql) {
  if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK) return sqlerr(c, sql);
  return 0;
}

char *lb__sq_dupstr(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) { memcpy(p, s, n); p[n] = '\0'; }
  return p;
}

static void locks_release_all(sq_cache *c);

static void bind_len(sqlite3_stmt *st, int i, const char *s, size_t n) {
  sqlite3_bind_text64(st, i, s ? s : "", s ? n : 0, SQLITE_STATIC, SQLITE_UTF8);
}

/* The column as bytes with their length (text may hold NUL). */
static const char *col_bytes(sqlite3_stmt *st, int i, size_t *n) {
  const char *p = (const char *)sqlite3_column_text(st, i);
  *n = p ? (size_t)sqlite3_column_bytes(st, i) : 0;
  return p ? p : "";
}

/* --- opening, closing, transactions ------------------------------------------ */

/* The state tables: PyAirbyte's columns first, then ours. A state is keyed
** by lb_state_key_of (protocol.h): stream_name is the key's name ("_GLOBAL",
** "_LEGACY" or the stream's), stream_namespace its namespace ('' for none).
** PyAirbyte keys _airbyte_state by table_name alone, so two sources with a
** stream of the same name overwrite each other's state: we key by both,
** and by the namespace. A destination is known by its identity: its name
** and the digest of its config (lb__json_digest), so two destinations of
** one kind with two configs are two destinations. The ledger
** (_luabyte_destination_progress) keeps, per destination identity, source
** and stream, the highest _airbyte_raw_id the destination confirmed by
** echoing the state that followed it. */
#define STATE_COLS "source_name, stream_name, table_name, state_json, last_updated"
#define DSTATE_COLS "destination_name, source_name, stream_name, state_json, last_updated"
#define LEDGER_COLS "destination_name, source_name, stream_name, last_raw_id, last_updated"

static const struct state_table {
  const char *name, *create, *cols;
} state_tables[] = {
  { "_airbyte_state",
    " (source_name VARCHAR NOT NULL, stream_name VARCHAR, table_name VARCHAR NOT NULL,"
    " state_json VARCHAR, last_updated TIMESTAMP WITH TIME ZONE,"
    " stream_namespace VARCHAR NOT NULL DEFAULT '',"
    " PRIMARY KEY (source_name, table_name, stream_namespace))", STATE_COLS },
  { "_airbyte_destination_state",
    " (destination_name VARCHAR NOT NULL, source_name VARCHAR NOT NULL,"
    " stream_name VARCHAR NOT NULL, state_json VARCHAR, last_updated TIMESTAMP WITH TIME ZONE,"
    " stream_namespace VARCHAR NOT NULL DEFAULT '',"
    " destination_config_hash VARCHAR NOT NULL DEFAULT '',"
    " PRIMARY KEY (destination_name, destination_config_hash, source_name, stream_namespace,"
    " stream_name))", DSTATE_COLS },
  { "_luabyte_destination_progress",
    " (destination_name VARCHAR NOT NULL, source_name VARCHAR NOT NULL,"
    " stream_name VARCHAR NOT NULL, last_raw_id VARCHAR NOT NULL,"
    " last_updated TIMESTAMP WITH TIME ZONE,"
    " stream_namespace VARCHAR NOT NULL DEFAULT '',"
    " destination_config_hash VARCHAR NOT NULL DEFAULT '',"
    " PRIMARY KEY (destination_name, destination_config_hash, source_name, stream_namespace,"
    " stream_name))", LEDGER_COLS },
};

static const char *const internal_tables_sql =
  /* PyAirbyte's columns, then ours (migrate_streams adds them to older
  ** files): table_name is the stream's real table (see cache.h) */
  "CREATE TABLE IF NOT EXISTS _airbyte_streams ("
  " stream_name VARCHAR, source_name VARCHAR,"
  " table_name VARCHAR NOT NULL PRIMARY KEY, catalog_metadata VARCHAR,"
  " stream_namespace VARCHAR, table_prefix VARCHAR);";

/* 1 when table has the column, 0 when not (or no such table), <0 on error. */
static int has_column(sq_cache *c, const char *table, const char *column) {
  sqlite3_stmt *st = NULL;
  int rc, found = 0;
  if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &st,
                         NULL) != SQLITE_OK)
    return sqlerr(c, "pragma_table_info");
  sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) found = 1;
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return sqlerr(c, "pragma_table_info");
  return found;
}

/* Creates the state tables, or brings a file made before namespaces and
** destination identities to the new keys: the primary key changes, which
** ALTER TABLE cannot do, so the table is rebuilt with its rows (their
** namespace '' and config hash '', an identity no destination has: a
** destination's first write after the upgrade sends its rows once more,
** never fewer). One transaction, the check inside it, so two processes
** opening one old file migrate it once. */
static int create_state_tables(sq_cache *c) {
  char sql[1024];
  size_t i;
  int rc;
  for (i = 0; i < sizeof state_tables / sizeof state_tables[0]; i++) {
    const struct state_table *t = &state_tables[i];
    snprintf(sql, sizeof sql, "CREATE TABLE IF NOT EXISTS %s%s", t->name, t->create);
    if ((rc = exec_sql(c, sql)) < 0) return rc;
    if ((rc = has_column(c, t->name, "stream_namespace")) != 0) {
      if (rc < 0) return rc;
      continue;
    }
    if ((rc = exec_sql(c, "BEGIN IMMEDIATE")) < 0) return rc;
    if ((rc = has_column(c, t->name, "stream_namespace")) == 0) {
      snprintf(sql, sizeof sql,
               "ALTER TABLE %s RENAME TO _luabyte_migrating;"
               "CREATE TABLE %s%s;"
               "INSERT OR REPLACE INTO %s (%s) SELECT %s FROM _luabyte_migrating"
               " WHERE source_name IS NOT NULL;"
               "DROP TABLE _luabyte_migrating;",
               t->name, t->name, t->create, t->name, t->cols, t->cols);
      rc = exec_sql(c, sql);
    }
    if (rc < 0) {
      char msg[sizeof c->base.errmsg];
      memcpy(msg, c->base.errmsg, sizeof msg);
      exec_sql(c, "ROLLBACK");
      memcpy(c->base.errmsg, msg, sizeof msg);
      return rc;
    }
    if ((rc = exec_sql(c, "COMMIT")) < 0) return rc;
  }
  return 0;
}

static int count_rows(sq_cache *c, const char *sql) {
  sqlite3_stmt *st = NULL;
  int n = -1;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return n < 0 ? sqlerr(c, sql) : n;
}

/* Files made before the mapping (table_name was table_prefix + stream_name,
** not normalized; no namespace) get the two columns and their rows the real
** table. Rows that would claim a reserved name, or a table another row
** already claims (streams that were merged into one table), are dropped:
** the stream gets a table of its own, or its clash reported, on its next
** read. A row whose name normalizes to its table already goes first. */
static int migrate_streams(sq_cache *c) {
  const char *cols = "SELECT count(*) FROM pragma_table_info('_airbyte_streams')"
                     " WHERE name IN ('stream_namespace', 'table_prefix')";
  const char *rows = "SELECT rowid, stream_name, table_name FROM _airbyte_streams"
                     " WHERE table_prefix IS NULL ORDER BY rowid";
  const char *upd = "UPDATE OR IGNORE _airbyte_streams SET table_name = ?2,"
                    " table_prefix = ?3, stream_namespace = '' WHERE rowid = ?1";
  sqlite3_stmt *st = NULL, *up = NULL;
  int rc, have, pass;
  /* the usual case, checked without taking the write lock: nothing to do */
  if ((have = count_rows(c, cols)) < 0) return have;
  if (have == 2 && (rc = count_rows(c, "SELECT count(*) FROM _airbyte_streams"
                                       " WHERE table_prefix IS NULL")) <= 0)
    return rc;
  if ((rc = exec_sql(c, "BEGIN IMMEDIATE")) < 0) return rc;
  if ((have = count_rows(c, cols)) < 0) { rc = have; goto done; }
  if (have < 2 &&
      ((rc = exec_sql(c, "ALTER TABLE _airbyte_streams ADD COLUMN stream_namespace VARCHAR")) < 0 ||
       (rc = exec_sql(c, "ALTER TABLE _airbyte_streams ADD COLUMN table_prefix VARCHAR")) < 0))
    goto done;
  if (sqlite3_prepare_v2(c->db, upd, -1, &up, NULL) != SQLITE_OK) { rc = sqlerr(c, upd); goto done; }
  for (pass = 0; pass < 2; pass++) {
    if (sqlite3_prepare_v2(c->db, rows, -1, &st, NULL) != SQLITE_OK) { rc = sqlerr(c, rows); goto done; }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      size_t nn, tn;
      const char *name = col_bytes(st, 1, &nn), *old = col_bytes(st, 2, &tn);
      char buf[256];
      long n = lb_cache_normalize(old, tn, buf, sizeof buf);
      if (n < 0 || (size_t)n >= sizeof buf || lb__cache_is_reserved(&c->base, buf)) continue;
      if (((size_t)n == tn && memcmp(buf, old, tn) == 0) != (pass == 0)) continue;
      sqlite3_bind_int64(up, 1, sqlite3_column_int64(st, 0));
      sqlite3_bind_text(up, 2, buf, (int)n, SQLITE_TRANSIENT);
      /* the prefix is what is left of table_name in front of the name */
      if (tn >= nn && memcmp(old + tn - nn, name, nn) == 0) bind_len(up, 3, old, tn - nn);
      else sqlite3_bind_text(up, 3, "", 0, SQLITE_STATIC);
      rc = sqlite3_step(up);
      sqlite3_reset(up);
      if (rc != SQLITE_DONE) { rc = sqlerr(c, upd); goto done; }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc != SQLITE_DONE) { rc = sqlerr(c, rows); goto done; }
  }
  rc = exec_sql(c, "DELETE FROM _airbyte_streams WHERE table_prefix IS NULL");
done:
  sqlite3_finalize(st);
  sqlite3_finalize(up);
  if (rc < 0) { char msg[sizeof c->base.errmsg]; memcpy(msg, c->base.errmsg, sizeof msg);
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
                memcpy(c->base.errmsg, msg, sizeof msg); return rc; }
  return exec_sql(c, "COMMIT");
}

static const lb_cache_ops sqlite_ops;

int lb_cache_sqlite_open(const char *path, lb_cache **out, char *err, size_t errlen) {
  sq_cache *c;
  int rc;
  *out = NULL;
  if (path == NULL) { copyerr(err, errlen, "no database path"); return LB_EINVAL; }
  if ((c = calloc(1, sizeof *c)) == NULL) { copyerr(err, errlen, "out of memory"); return LB_ENOMEM; }
  if (lb__cache_init(&c->base, &sqlite_ops) < 0) {
    free(c);
    copyerr(err, errlen, "out of memory");
    return LB_ENOMEM;
  }
  c->async = 1;
  c->turn_fd = -1;
  /* NOMUTEX: a connection is only ever used by one thread at a time. */
  rc = sqlite3_open_v2(path, &c->db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    snprintf(c->base.errmsg, sizeof c->base.errmsg, "cannot open %.200s: %s", path,
             c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    goto fail;
  }
  sqlite3_extended_result_codes(c->db, 1);
  sqlite3_busy_handler(c->db, lb__sq_on_busy, c);
  if ((rc = lb__sqlite_add_regexp(c->db)) != SQLITE_OK) {
    snprintf(c->base.errmsg, sizeof c->base.errmsg, "cannot open %.200s: %s", path, sqlite3_errstr(rc));
    goto fail;
  }
  /* WAL + synchronous=NORMAL: see cache.h for why this is crash-safe. The
  ** WAL pragma answers "memory" for :memory: databases, which is fine. */
  if (exec_sql(c, "PRAGMA journal_mode=WAL") < 0 ||
      exec_sql(c, "PRAGMA synchronous=NORMAL") < 0 ||
      exec_sql(c, internal_tables_sql) < 0 || migrate_streams(c) < 0 || create_state_tables(c) < 0) {
    char msg[sizeof c->base.errmsg];
    memcpy(msg, c->base.errmsg, sizeof msg);
    snprintf(c->base.errmsg, sizeof c->base.errmsg, "cannot open %.200s: %.280s", path, msg);
    goto fail;
  }
  if ((c->path = lb__sq_dupstr(path, strlen(path))) == NULL) {
    snprintf(c->base.errmsg, sizeof c->base.errmsg, "out of memory");
    sqlite3_close_v2(c->db);
    lb__cache_fini(&c->base);
    free(c);
    copyerr(err, errlen, "out of memory");
    return LB_ENOMEM;
  }
  lb__sq_ckpt_start(c);
  *out = &c->base;
  return 0;
fail:
  copyerr(err, errlen, c->base.errmsg);
  rc = sqlite3_errcode(c->db) == SQLITE_NOMEM ? LB_ENOMEM : LB_CACHE_ESQL;
  sqlite3_close_v2(c->db);
  lb__cache_fini(&c->base);
  free(c);
  return rc;
}

static void sq_stream_close(lb_cache_stream *base);
static void sq_query_close(lb_cache_query *qb);

static void sq_close(lb_cache *base) {
  sq_cache *c = SQ(base);
  if (c->worker) {              /* a wait for the write lock ends now */
    uv_mutex_lock(&c->mu);
    c->quit = 1;
    uv_mutex_unlock(&c->mu);
  }
  lb__sq_worker_stop(c);               /* queued rows go in first */
  lb__sq_ckpt_stop(c);
  locks_release_all(c);
  if (c->turn_fd >= 0) close(c->turn_fd);
  while (c->streams) sq_stream_close(&c->streams->base);
  while (c->queries) sq_query_close((lb_cache_query *)(void *)c->queries);
  sqlite3_finalize(c->put_state);
  sqlite3_finalize(c->get_state);
  sqlite3_finalize(c->put_dstate);
  sqlite3_finalize(c->get_ledger);
  sqlite3_finalize(c->put_ledger);
  /* sqlite3_close_v2 rolls back an open transaction; statements the Lua
  ** binding has not finalized yet keep the connection alive until they are
  ** (it finalizes them before calling us, so this is immediate). */
  sqlite3_close_v2(c->db);
  lb__cache_fini(&c->base);
  free(c->owner.p);
  free(c->path);
  free(c);
}

int lb__sq_in_transaction(const lb_cache *base) {
  return sqlite3_get_autocommit(((const sq_cache *)(const void *)base)->db) == 0;
}

/* Both run as the queued steps do (see "queued transactions"), and wait. */
static int sq_begin(lb_cache *base) {
  sq_cache *c = SQ(base);
  int rc;
  lb__sq_barrier(c);
  lb__sq_clear_async_err(c);           /* a failure belongs to the transaction it broke */
  if (lb__sq_in_transaction(base)) { lb__sq_seterr(c, "a transaction is already open"); return LB_EINVAL; }
  if ((rc = lb__sq_begin_queued(c)) != 0) return rc;
  return lb__sq_barrier(c);
}

static int sq_commit(lb_cache *base) {
  sq_cache *c = SQ(base);
  int err = lb__sq_barrier(c);
  if (err) return err;          /* rows were lost: the caller must roll back */
  if (!lb__sq_in_transaction(base)) { lb__sq_seterr(c, "no transaction is open"); return LB_EINVAL; }
  if ((err = lb__sq_commit_queued(c, NULL, 0)) != 0) return err;
  return lb__sq_barrier(c);
}

static int sq_rollback(lb_cache *base) {
  sq_cache *c = SQ(base);
  int pending;
  if (c->worker) {              /* a lazy BEGIN not taken yet has nothing to undo */
    lb__sq_drain(c, &pending);
    uv_mutex_lock(&c->mu);
    c->begin_pending = 0;
    uv_mutex_unlock(&c->mu);
  }
  lb__sq_clear_async_err(c);
  /* SQLite rolls back by itself on some errors (a full disk, an I/O
  ** error): nothing is left to undo, and failing here would hide why */
  if (!lb__sq_in_transaction(base)) return 0;
  return exec_sql(c, "ROLLBACK");
}

struct sqlite3 *lb_cache_db(lb_cache *base) {
  sq_cache *c = SQ(base);
  if (base->ops != &sqlite_ops) return NULL;
  lb__sq_barrier(c);                   /* the caller is about to use the connection */
  return c->db;
}

/* --- the JSON schema ------------------------------------------------------- */

/* SQLite's affinity rule 2 (after rule 1, "INT"): CHAR, CLOB or TEXT. */
static int decl_is_text(const char *decl) {
  char up[64];
  size_t i;
  for (i = 0; decl[i] && i + 1 < sizeof up; i++)
    up[i] = (char)(decl[i] >= 'a' && decl[i] <= 'z' ? decl[i] - 32 : decl[i]);
  up[i] = '\0';
  if (strstr(up, "INT")) return 0;
  return strstr(up, "CHAR") || strstr(up, "CLOB") || strstr(up, "TEXT");
}

/* --- opening a stream ------------------------------------------------------- */

/* The declared types of the table's columns: 0 and *exists = 0 when the
** table is missing. Marks schema columns found and their real affinity;
** returns the names of internal columns present in *have_internal (bits). */
static int inspect_table(sq_stream *s, const char *table, int *exists,
                         char *found, int *have_internal) {
  sq_cache *c = s->c;
  sqlite3_stmt *st = NULL;
  const char *sql = "SELECT name, type FROM pragma_table_info(?1)";
  int rc;
  *exists = 0;
  *have_internal = 0;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    const char *decl = (const char *)sqlite3_column_text(st, 1);
    int ci;
    *exists = 1;
    if (name == NULL) continue;
    if (strcmp(name, RAW_ID_COL) == 0) *have_internal |= 1;
    else if (strcmp(name, EXTRACTED_AT_COL) == 0) *have_internal |= 2;
    else if (strcmp(name, META_COL) == 0) *have_internal |= 4;
    else if ((ci = lb__cache_schema_col(&s->sch, name, strlen(name))) >= 0) {
      found[ci] = 1;
      s->sch.cols[ci].is_text = decl_is_text(decl ? decl : "");
    }
  }
  if (rc != SQLITE_DONE) { rc = sqlerr(c, sql); sqlite3_finalize(st); return rc; }
  sqlite3_finalize(st);
  return 0;
}

static const char *const internal_cols_sql[3] = {
  "\"" RAW_ID_COL "\" VARCHAR",
  "\"" EXTRACTED_AT_COL "\" TIMESTAMP WITH TIME ZONE",
  "\"" META_COL "\" JSON"
};

static int create_table(sq_stream *s, lb_sbuf *b, const char *table) {
  int i;
  lb__sb_reset(b);
  lb__sb_add(b, "CREATE TABLE ");
  lb__sb_ident(b, table);
  lb__sb_add(b, " (");
  for (i = 0; i < s->sch.ncols; i++) {
    lb__sb_ident(b, s->sch.cols[i].name);
    lb__sb_add(b, " ");
    lb__sb_add(b, kind_sql[s->sch.cols[i].kind]);
    lb__sb_add(b, ", ");
  }
  lb__sb_add(b, internal_cols_sql[0]);
  lb__sb_add(b, ", ");
  lb__sb_add(b, internal_cols_sql[1]);
  lb__sb_add(b, ", ");
  lb__sb_add(b, internal_cols_sql[2]);
  lb__sb_add(b, ")");
  if (b->oom) { lb__sq_seterr(s->c, "out of memory"); return LB_ENOMEM; }
  return exec_sql(s->c, b->p);
}

/* Schema evolution: add the columns that are new (PyAirbyte never changes
** the type of an existing column, nor drops one). */
static int add_columns(sq_stream *s, lb_sbuf *b, const char *table,
                       const char *found, int have_internal) {
  int i, rc;
  for (i = 0; i < s->sch.ncols + 3; i++) {
    if (i < s->sch.ncols ? found[i] : (have_internal & (1 << (i - s->sch.ncols)))) continue;
    lb__sb_reset(b);
    lb__sb_add(b, "ALTER TABLE ");
    lb__sb_ident(b, table);
    lb__sb_add(b, " ADD COLUMN ");
    if (i < s->sch.ncols) {
      lb__sb_ident(b, s->sch.cols[i].name);
      lb__sb_add(b, " ");
      lb__sb_add(b, kind_sql[s->sch.cols[i].kind]);
    } else {
      lb__sb_add(b, internal_cols_sql[i - s->sch.ncols]);
    }
    if (b->oom) { lb__sq_seterr(s->c, "out of memory"); return LB_ENOMEM; }
    if ((rc = exec_sql(s->c, b->p)) < 0) return rc;
  }
  return 0;
}

/* MERGE needs a unique index on exactly the PK columns for ON CONFLICT. An
** index of that name on other columns (the PK changed) is replaced; rows
** appended earlier may repeat a key, so all but the last row per key go
** first (rows with a NULL key part are left alone: they never conflict). */
/* Older files named the index "<table>_airbyte_pk", a name a stream's table
** could take: it goes (the new one is made in the reserved space). */
static int drop_legacy_pk_index(sq_stream *s, lb_sbuf *b) {
  const char *sql = "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                    " AND name = ?1 || '" LEGACY_PK_INDEX_SUFFIX "' AND tbl_name = ?1";
  sqlite3_stmt *st = NULL;
  int n = 0;
  if (sqlite3_prepare_v2(s->c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(s->c, sql);
  sqlite3_bind_text(st, 1, s->base.table, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (n == 0) return 0;
  lb__sb_reset(b);
  lb__sb_add(b, "DROP INDEX ");
  lb__sb_add(b, "\"");
  lb__sb_add(b, s->base.table);
  lb__sb_add(b, LEGACY_PK_INDEX_SUFFIX "\"");
  if (b->oom) { lb__sq_seterr(s->c, "out of memory"); return LB_ENOMEM; }
  return exec_sql(s->c, b->p);
}

static int ensure_pk_index(sq_stream *s, lb_sbuf *b, const int *pk, int npk) {
  sq_cache *c = s->c;
  sqlite3_stmt *st = NULL;
  const char *sql = "SELECT name FROM pragma_index_info(?1) ORDER BY seqno";
  char *idx;
  int rc, n = 0, same = 1, i;
  if ((rc = drop_legacy_pk_index(s, b)) < 0) return rc;
  lb__sb_reset(b);
  lb__sb_add(b, PK_INDEX_PREFIX);
  lb__sb_add(b, s->base.table);
  if (b->oom || (idx = lb__sq_dupstr(b->p, b->n)) == NULL) { lb__sq_seterr(c, "out of memory"); return LB_ENOMEM; }
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) { free(idx); return sqlerr(c, sql); }
  sqlite3_bind_text(st, 1, idx, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    if (n >= npk || name == NULL || strcmp(name, s->sch.cols[pk[n]].name) != 0) same = 0;
    n++;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) { free(idx); return sqlerr(c, sql); }
  if (n == npk && same) { free(idx); return 0; }
  if (n > 0) {
    lb__sb_reset(b);
    lb__sb_add(b, "DROP INDEX ");
    lb__sb_ident(b, idx);
    if (b->oom) { free(idx); lb__sq_seterr(c, "out of memory"); return LB_ENOMEM; }
    if ((rc = exec_sql(c, b->p)) < 0) { free(idx); return rc; }
  }
  lb__sb_reset(b);
  lb__sb_add(b, "DELETE FROM ");
  lb__sb_ident(b, s->base.table);
  lb__sb_add(b, " WHERE ");
  for (i = 0; i < npk; i++) { lb__sb_ident(b, s->sch.cols[pk[i]].name); lb__sb_add(b, " IS NOT NULL AND "); }
  lb__sb_add(b, "rowid NOT IN (SELECT max(rowid) FROM ");
  lb__sb_ident(b, s->base.table);
  lb__sb_add(b, " GROUP BY ");
  for (i = 0; i < npk; i++) { if (i) lb__sb_add(b, ", "); lb__sb_ident(b, s->sch.cols[pk[i]].name); }
  lb__sb_add(b, ")");
  if (b->oom) { free(idx); lb__sq_seterr(c, "out of memory"); return LB_ENOMEM; }
  if ((rc = exec_sql(c, b->p)) < 0) { free(idx); return rc; }
  lb__sb_reset(b);
  lb__sb_add(b, "CREATE UNIQUE INDEX ");
  lb__sb_ident(b, idx);
  lb__sb_add(b, " ON ");
  lb__sb_ident(b, s->base.table);
  lb__sb_add(b, " (");
  for (i = 0; i < npk; i++) { if (i) lb__sb_add(b, ", "); lb__sb_ident(b, s->sch.cols[pk[i]].name); }
  lb__sb_add(b, ")");
  free(idx);
  if (b->oom) { lb__sq_seterr(c, "out of memory"); return LB_ENOMEM; }
  return exec_sql(c, b->p);
}

static int drop_pk_index(sq_stream *s, lb_sbuf *b) {
  int rc;
  if ((rc = drop_legacy_pk_index(s, b)) < 0) return rc;
  lb__sb_reset(b);
  lb__sb_add(b, "DROP INDEX IF EXISTS ");
  lb__sb_addn(b, "\"", 1);
  lb__sb_add(b, PK_INDEX_PREFIX);
  lb__sb_add(b, s->base.table);
  lb__sb_addn(b, "\"", 1);
  if (b->oom) { lb__sq_seterr(s->c, "out of memory"); return LB_ENOMEM; }
  return exec_sql(s->c, b->p);
}

/* Claims s->base.table for the stream in _airbyte_streams (resolve_table made
** sure it is free or already the stream's). */
static int register_stream(sq_stream *s, const char *source_name,
                           const char *schema, size_t len) {
  sq_cache *c = s->c;
  sqlite3_stmt *st = NULL;
  const char *sql =
    "INSERT INTO _airbyte_streams (stream_name, source_name, table_name, catalog_metadata,"
    " stream_namespace, table_prefix) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    " ON CONFLICT (table_name) DO UPDATE SET source_name = excluded.source_name,"
    " catalog_metadata = excluded.catalog_metadata";
  int rc;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  bind_len(st, 1, s->base.name, s->base.name_len);
  sqlite3_bind_text(st, 2, source_name ? source_name : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, s->base.table, -1, SQLITE_STATIC);
  if (schema && len) sqlite3_bind_text(st, 4, schema, (int)len, SQLITE_STATIC);
  else sqlite3_bind_text(st, 4, "{}", 2, SQLITE_STATIC);
  bind_len(st, 5, s->base.ns, s->base.ns_len);
  sqlite3_bind_text(st, 6, c->base.prefix, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : sqlerr(c, sql);
}

/* Rows per INSERT of the writer thread: one statement with many VALUES
** rows runs SQLite's per-statement work (transaction check, cursor open,
** reset) once for all of them, about a third less SQLite time per row. */
#define MULTI_ROWS 32

/* Prepares INSERT ... VALUES (?...) with `rows` rows into *out. The
** parameters are plain "?": SQLite numbers them in order, row after row,
** as "?NNN" would, but "?NNN" makes it look each number up in a list of
** those seen (sqlite3VListNumToName), quadratic in their count: a 32-row
** INSERT of 15 columns took about 1 ms more to prepare, on the loop thread. */
static int prepare_insert(sq_stream *s, lb_sbuf *b, const int *pk, int npk, int rows,
                          sqlite3_stmt **out) {
  int i, j, r, ntot = s->sch.ncols + 3;
  static const char *const internal[3] = { RAW_ID_COL, EXTRACTED_AT_COL, META_COL };
  lb__sb_reset(b);
  lb__sb_add(b, "INSERT INTO ");
  lb__sb_ident(b, s->target);
  lb__sb_add(b, " (");
  for (i = 0; i < ntot; i++) {
    if (i) lb__sb_add(b, ", ");
    lb__sb_ident(b, i < s->sch.ncols ? s->sch.cols[i].name : internal[i - s->sch.ncols]);
  }
  lb__sb_add(b, ") VALUES ");
  for (r = 0; r < rows; r++) {
    lb__sb_add(b, r ? ", (" : "(");
    for (i = 0; i < ntot; i++) lb__sb_add(b, i ? ", ?" : "?");
    lb__sb_add(b, ")");
  }
  if (s->strategy == LB_WRITE_MERGE) {
    int first = 1;
    lb__sb_add(b, " ON CONFLICT (");
    for (i = 0; i < npk; i++) { if (i) lb__sb_add(b, ", "); lb__sb_ident(b, s->sch.cols[pk[i]].name); }
    lb__sb_add(b, ") DO UPDATE SET ");
    for (i = 0; i < ntot; i++) {
      const char *name = i < s->sch.ncols ? s->sch.cols[i].name : internal[i - s->sch.ncols];
      int is_pk = 0;
      for (j = 0; j < npk; j++) if (pk[j] == i) is_pk = 1;
      if (is_pk) continue;
      if (!first) lb__sb_add(b, ", ");
      first = 0;
      lb__sb_ident(b, name);
      lb__sb_add(b, " = excluded.");
      lb__sb_ident(b, name);
    }
  }
  if (b->oom) { lb__sq_seterr(s->c, "out of memory"); return LB_ENOMEM; }
  if (sqlite3_prepare_v3(s->c->db, b->p, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK)
    return sqlerr(s->c, b->p);
  return 0;
}

static void stream_free(sq_stream *s) {
  sqlite3_finalize(s->ins);
  sqlite3_finalize(s->ins_multi);
  lb__cache_stream_fini(&s->base);
  free(s->target);
  lb__cache_schema_free(&s->sch);
  free(s->arena);
  free(s->vals);
  free(s);
}

/* cache.c has decided the table and mapped the columns: make or evolve
** the table, claim it, prepare the INSERTs. */
static lb_cache_stream *sq_stream_open(lb_cache *base, const lb_cache_stream_spec *spec) {
  sq_cache *c = SQ(base);
  sq_stream *s = NULL;
  lb_sbuf b = {NULL, 0, 0, 0};
  char *found = NULL;
  const int *pk = spec->pk;
  int npk = spec->npk, exists, have_internal, rc;
  lb_write_strategy strategy = spec->strategy;
  if ((rc = lb__sq_barrier(c)) != 0) goto fail;
  if ((s = calloc(1, sizeof *s)) == NULL) { lb__sq_seterr(c, "out of memory"); goto fail; }
  s->c = c;
  s->strategy = strategy;
  s->sch = *spec->schema;                /* taken over */
  free(spec->schema);
  if (lb__cache_stream_init(&s->base, base, spec) < 0) goto fail;
  if ((found = calloc((size_t)s->sch.ncols + 1, 1)) == NULL ||
      (s->vals = calloc((size_t)s->sch.ncols + 1, sizeof *s->vals)) == NULL) {
    lb__sq_seterr(c, "out of memory");
    goto fail;
  }

  if (strategy == LB_WRITE_REPLACE) {
    lb__sb_reset(&b);
    lb__sb_add(&b, SHADOW_PREFIX);
    lb__sb_add(&b, s->base.table);
    if (b.oom || (s->target = lb__sq_dupstr(b.p, b.n)) == NULL) { lb__sq_seterr(c, "out of memory"); goto fail; }
    /* A shadow table left by a run that died is stale: start afresh. */
    lb__sb_reset(&b);
    lb__sb_add(&b, "DROP TABLE IF EXISTS ");
    lb__sb_ident(&b, s->target);
    if (b.oom) { lb__sq_seterr(c, "out of memory"); goto fail; }
    if (exec_sql(c, b.p) < 0 || create_table(s, &b, s->target) < 0) goto fail;
  } else {
    if ((s->target = lb__sq_dupstr(s->base.table, strlen(s->base.table))) == NULL) { lb__sq_seterr(c, "out of memory"); goto fail; }
    if (inspect_table(s, s->base.table, &exists, found, &have_internal) < 0) goto fail;
    if (!exists) rc = create_table(s, &b, s->base.table);
    else rc = add_columns(s, &b, s->base.table, found, have_internal);
    if (rc < 0) goto fail;
    if (strategy == LB_WRITE_MERGE) rc = ensure_pk_index(s, &b, pk, npk);
    else rc = drop_pk_index(s, &b);
    if (rc < 0) goto fail;
  }
  if (register_stream(s, spec->source_name, spec->json_schema, spec->schema_len) < 0) goto fail;
  if (prepare_insert(s, &b, pk, npk, 1, &s->ins) < 0) goto fail;
  {
    /* as many rows as SQLite's parameter limit allows, up to MULTI_ROWS */
    int maxp = sqlite3_limit(c->db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
    s->multi = maxp / (s->sch.ncols + 3);
    if (s->multi > MULTI_ROWS) s->multi = MULTI_ROWS;
    if (s->multi > 1 && prepare_insert(s, &b, pk, npk, s->multi, &s->ins_multi) < 0) goto fail;
  }
  s->next = c->streams;
  if (c->streams) c->streams->prev = s;
  c->streams = s;
  free(b.p);
  free(found);
  return &s->base;
fail:
  if (s == NULL) { lb__cache_schema_free(spec->schema); free(spec->schema); }
  free(b.p);
  free(found);
  if (s) stream_free(s);
  return NULL;
}

/* --- writing ----------------------------------------------------------------- */

/* Binds vals and the internal columns, steps and resets. Runs on the
** caller's thread (sync mode) or the writer thread (async mode): it only
** touches the statement, which the caller leaves alone meanwhile. */
int lb__sq_bind_row(sqlite3_stmt *st, int base, int ncols, const wval *vals, const char *uuid,
                    const char *ts, int ts_len, const char *meta_json) {
  int i, rc = SQLITE_OK;
  for (i = 0; i < ncols && rc == SQLITE_OK; i++) {
    const wval *w = &vals[i];
    switch (w->kind) {
      case V_INT: rc = sqlite3_bind_int64(st, base + i + 1, w->u.i); break;
      case V_DBL: rc = sqlite3_bind_double(st, base + i + 1, w->u.d); break;
      case V_TEXT: rc = sqlite3_bind_text(st, base + i + 1, w->p, w->len, SQLITE_STATIC); break;
      case V_BLOB: rc = sqlite3_bind_blob(st, base + i + 1, w->p, w->len, SQLITE_STATIC); break;
      default: rc = sqlite3_bind_null(st, base + i + 1); break;
    }
  }
  if (rc == SQLITE_OK && (rc = sqlite3_bind_text(st, base + ncols + 1, uuid, 36, SQLITE_STATIC)) == SQLITE_OK &&
      (rc = sqlite3_bind_text(st, base + ncols + 2, ts, ts_len, SQLITE_STATIC)) == SQLITE_OK)
    rc = sqlite3_bind_text(st, base + ncols + 3, meta_json ? meta_json : "{}", -1, SQLITE_STATIC);
  return rc;
}

int lb__sq_step_reset(sqlite3_stmt *st, int rc) {
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  sqlite3_reset(st);
  return rc;
}

int lb__sq_bind_step(sq_stream *s, const wval *vals, const char *uuid, const char *ts,
                     int ts_len, const char *meta_json) {
  return lb__sq_step_reset(s->ins, lb__sq_bind_row(s->ins, 0, s->sch.ncols, vals, uuid, ts, ts_len, meta_json));
}

int lb__sq_write_failed(sq_stream *s, int rc, char *msg, size_t msglen) {
  char why[384];
  lb__sq_sqlite_why(s->c, s->c->db, why, sizeof why);
  snprintf(msg, msglen, "writing to table '%.100s': %s", s->target, why);
  if (lb__sq_nowait_busy(s->c, rc)) {
    rc = lb__sq_fail_code(s->c, rc, "INSERT", 6);            /* into errmsg, which msg may be */
    if (msg != s->c->base.errmsg) snprintf(msg, msglen, "%s", s->c->base.errmsg);
    return rc;
  }
  return rc == SQLITE_NOMEM ? LB_ENOMEM : LB_CACHE_ESQL;
}

/* --- writing ---------------------------------------------------------------------------- */

static int sq_stream_write(lb_cache_stream *sbase, const lb_jval *data,
                           long long emitted_at_ms, const char *meta_json) {
  sq_stream *s = SQS(sbase);
  sq_cache *c = s->c;
  size_t n;
  int rc;
  if (s->ins == NULL) { lb__sq_seterr(c, "stream '%s' is finished", s->base.table); return LB_EINVAL; }
  n = data->n;
  if (c->async && !c->worker && lb__sq_worker_start(c) != 0) c->async = 0;   /* no thread: stay sync */
  if (c->failed) return c->failed;   /* errmsg still holds the writer's message */
  if (c->worker) {
    size_t mlen = meta_json ? strlen(meta_json) + 1 : 0;
    batch *b;
    row_head *h;
    char *copy;
    /* the record is copied (decoded strings follow it, never longer than
    ** it), so the caller's buffer may change as soon as we return */
    if ((rc = lb__sq_reserve(c, s->sch.ncols, 2 * n + mlen)) != 0) return rc;
    b = c->fill;
    h = (row_head *)(void *)(b->rows + b->rows_n);
    copy = b->text + b->text_n;
    memcpy(copy, data->p, n);
    if (lb__cache_scan_row(&s->sch, &s->guess, copy + 1, copy + n - 1, (wval *)(void *)(h + 1), copy + n) != 0) {
      s->guess = 0;
      lb__sq_seterr(c, "record data of stream '%s' is not valid JSON", s->base.table);
      return LB_EINVAL;
    }
    b->text_n += 2 * n;
    h->s = s;
    lb_cache_uuid7(&c->base, h->uuid);
    lb__cache_ts(&s->ts, emitted_at_ms);
    memcpy(h->ts, s->ts.text, (size_t)s->ts.len);
    h->ts_len = s->ts.len;
    h->meta = NULL;
    if (meta_json) {
      memcpy(b->text + b->text_n, meta_json, mlen);
      h->meta = b->text + b->text_n;
      b->text_n += mlen;
    }
    b->rows_n += sizeof *h + (size_t)s->sch.ncols * sizeof(wval);
    b->nrows++;
    s->base.rows++;
    if (b->nrows >= BATCH_ROWS) return lb__sq_submit(c);
    return 0;
  }
  if (s->arena_cap < n) {
    size_t cap = s->arena_cap ? s->arena_cap : 1024;
    char *np;
    while (cap < n) cap *= 2;
    if ((np = realloc(s->arena, cap)) == NULL) { lb__sq_seterr(c, "out of memory"); return LB_ENOMEM; }
    s->arena = np;
    s->arena_cap = cap;
  }
  if (lb__cache_scan_row(&s->sch, &s->guess, data->p + 1, data->p + n - 1, s->vals, s->arena) != 0) {
    s->guess = 0;
    lb__sq_seterr(c, "record data of stream '%s' is not valid JSON", s->base.table);
    return LB_EINVAL;
  }
  lb_cache_uuid7(&c->base, s->uuid);
  lb__cache_ts(&s->ts, emitted_at_ms);
  if ((rc = lb__sq_bind_step(s, s->vals, s->uuid, s->ts.text, s->ts.len, meta_json)) != SQLITE_OK)
    return lb__sq_write_failed(s, rc, c->base.errmsg, sizeof c->base.errmsg);
  s->base.rows++;
  return 0;
}

static int sq_stream_finish(lb_cache_stream *sbase) {
  sq_stream *s = SQS(sbase);
  lb_sbuf b = {NULL, 0, 0, 0};
  int rc;
  if (s->finished) return 0;
  if ((rc = lb__sq_barrier(s->c)) != 0) return rc;
  sqlite3_finalize(s->ins);          /* statements on the shadow table must go */
  sqlite3_finalize(s->ins_multi);
  s->ins = s->ins_multi = NULL;
  s->finished = 1;
  if (s->strategy != LB_WRITE_REPLACE) return 0;
  lb__sb_add(&b, "DROP TABLE IF EXISTS ");
  lb__sb_ident(&b, s->base.table);
  lb__sb_add(&b, "; ALTER TABLE ");
  lb__sb_ident(&b, s->target);
  lb__sb_add(&b, " RENAME TO ");
  lb__sb_ident(&b, s->base.table);
  if (b.oom) { lb__sq_seterr(s->c, "out of memory"); rc = LB_ENOMEM; }
  else rc = exec_sql(s->c, b.p);
  free(b.p);
  return rc;
}

static int sq_stream_abort(lb_cache_stream *sbase) {
  sq_stream *s = SQS(sbase);
  lb_sbuf b = {NULL, 0, 0, 0};
  int rc = 0;
  if (s->finished) return 0;
  lb__sq_barrier(s->c);                /* its rows are being dropped anyway */
  sqlite3_finalize(s->ins);
  sqlite3_finalize(s->ins_multi);
  s->ins = s->ins_multi = NULL;
  s->finished = 1;
  if (s->strategy != LB_WRITE_REPLACE) return 0;
  lb__sb_add(&b, "DROP TABLE IF EXISTS ");
  lb__sb_ident(&b, s->target);
  if (b.oom) { lb__sq_seterr(s->c, "out of memory"); rc = LB_ENOMEM; }
  else rc = exec_sql(s->c, b.p);
  free(b.p);
  return rc;
}

static void sq_stream_close(lb_cache_stream *sbase) {
  sq_stream *s = SQS(sbase);
  lb__sq_barrier(s->c);                /* the writer may still hold rows of it */
  if (s->prev) s->prev->next = s->next;
  else s->c->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  stream_free(s);
}

/* --- state ------------------------------------------------------------------- */

static int prep(sq_cache *c, sqlite3_stmt **st, const char *sql) {
  if (*st) return 0;
  if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
    return sqlerr(c, sql);
  return 0;
}

static int step_done(sq_cache *c, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) return sqlerr(c, sqlite3_sql(st));
  return 0;
}

#define NOW_SQL "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"
#define PUT_STATE_SQL "INSERT OR REPLACE INTO _airbyte_state (" STATE_COLS ", stream_namespace)" \
                      " VALUES (?1, ?3, ?2 || ?3, ?4, " NOW_SQL ", ?5)"

#define GET_STATE_SQL "SELECT state_json FROM _airbyte_state WHERE source_name = ?1" \
                      " AND table_name = ?2 || ?3 AND stream_namespace = ?4"

/* Stores a state row, on whichever thread has the connection (sq_put_state,
** the writer's JOB_STATE): a GLOBAL state is merged with the one stored
** (lb__cache_merge_global), in the same transaction. SQLite's code; *sql
** the statement that failed. */
int lb__sq_store_state(sq_cache *c, const char *source, const char *name, size_t nlen,
                       const char *ns, size_t nslen, const char *json, size_t jlen,
                       const char **sql) {
  lb_sbuf merged = {0};
  int rc;
  if (nlen == 7 && memcmp(name, "_GLOBAL", 7) == 0) {
    *sql = GET_STATE_SQL;
    if (c->get_state == NULL &&
        (rc = sqlite3_prepare_v3(c->db, GET_STATE_SQL, -1, SQLITE_PREPARE_PERSISTENT, &c->get_state,
                                 NULL)) != SQLITE_OK)
      return rc;
    sqlite3_bind_text(c->get_state, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(c->get_state, 2, c->base.prefix, -1, SQLITE_STATIC);
    bind_len(c->get_state, 3, name, nlen);
    bind_len(c->get_state, 4, ns, nslen);
    rc = sqlite3_step(c->get_state);
    if (rc == SQLITE_ROW) {
      size_t slen;
      const char *stored = col_bytes(c->get_state, 0, &slen);
      rc = lb__cache_merge_global(stored, slen, json, jlen, &merged) < 0 ? SQLITE_NOMEM : SQLITE_DONE;
    }
    sqlite3_reset(c->get_state);
    sqlite3_clear_bindings(c->get_state);
    if (rc != SQLITE_DONE) { free(merged.p); return rc == SQLITE_NOMEM ? rc : sqlite3_errcode(c->db); }
    if (merged.n) { json = merged.p; jlen = merged.n; }
  }
  *sql = PUT_STATE_SQL;
  if (c->put_state == NULL &&
      (rc = sqlite3_prepare_v3(c->db, PUT_STATE_SQL, -1, SQLITE_PREPARE_PERSISTENT, &c->put_state,
                               NULL)) != SQLITE_OK) {
    free(merged.p);
    return rc;
  }
  sqlite3_bind_text(c->put_state, 1, source, -1, SQLITE_STATIC);
  sqlite3_bind_text(c->put_state, 2, c->base.prefix, -1, SQLITE_STATIC);
  bind_len(c->put_state, 3, name, nlen);
  bind_len(c->put_state, 4, json, jlen);
  bind_len(c->put_state, 5, ns, nslen);
  rc = sqlite3_step(c->put_state);
  rc = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c->db);
  sqlite3_reset(c->put_state);
  sqlite3_clear_bindings(c->put_state);
  free(merged.p);
  return rc;
}

static int sq_put_state(lb_cache *base, const lb_cache_state_row *r) {
  sq_cache *c = SQ(base);
  const char *sql = NULL;
  int rc;
  if ((rc = lb__sq_barrier(c)) != 0) return rc;         /* state must not run ahead of data */
  rc = lb__sq_store_state(c, r->source_name, r->key_name, r->key_name_len, r->key_ns, r->key_ns_len,
                   r->state_json, r->len, &sql);
  if (rc == SQLITE_NOMEM) { lb__sq_seterr(c, "out of memory"); return LB_ENOMEM; }
  return rc == SQLITE_OK ? 0 : sqlerr(c, sql);
}

static int each_state(sq_cache *c, sqlite3_stmt *st, lb_cache_state_cb cb, void *ud) {
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    const char *json = (const char *)sqlite3_column_text(st, 1);
    const char *ns = (const char *)sqlite3_column_text(st, 2);
    int n = sqlite3_column_bytes(st, 1), r;
    if (json == NULL) continue;
    if ((r = cb(ud, name ? name : "", ns ? ns : "", json, (size_t)n)) != 0) {
      sqlite3_finalize(st);
      return r;
    }
  }
  if (rc != SQLITE_DONE) {
    rc = sqlerr(c, sqlite3_sql(st));
    sqlite3_finalize(st);
    return rc;
  }
  sqlite3_finalize(st);
  return 0;
}

/* PyAirbyte reads back only the rows of the cache's table prefix. */
static const char *const get_states_sql =
  "SELECT stream_name, state_json, stream_namespace FROM _airbyte_state WHERE source_name = ?1"
  " AND substr(table_name, 1, length(?2)) = ?2 ORDER BY stream_namespace, stream_name";

static int sq_get_states(lb_cache *base, const char *source_name, const char *prefix,
                         lb_cache_state_cb cb, void *ud) {
  sq_cache *c = SQ(base);
  sqlite3_stmt *st = NULL;
  lb__sq_barrier(c);
  if (sqlite3_prepare_v2(c->db, get_states_sql, -1, &st, NULL) != SQLITE_OK)
    return sqlerr(c, get_states_sql);
  sqlite3_bind_text(st, 1, source_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, prefix, -1, SQLITE_STATIC);
  return each_state(c, st, cb, ud);
}

static int sq_put_destination_state(lb_cache *base, const lb_cache_state_row *r) {
  sq_cache *c = SQ(base);
  int rc;
  if ((rc = lb__sq_barrier(c)) != 0) return rc;
  if ((rc = prep(c, &c->put_dstate,
                 "INSERT OR REPLACE INTO _airbyte_destination_state (" DSTATE_COLS ","
                 " stream_namespace, destination_config_hash)"
                 " VALUES (?1, ?2, ?3, ?4, " NOW_SQL ", ?5, ?6)")) < 0)
    return rc;
  sqlite3_bind_text(c->put_dstate, 1, r->destination_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(c->put_dstate, 2, r->source_name, -1, SQLITE_STATIC);
  bind_len(c->put_dstate, 3, r->key_name, r->key_name_len);
  bind_len(c->put_dstate, 4, r->state_json, r->len);
  bind_len(c->put_dstate, 5, r->key_ns, r->key_ns_len);
  sqlite3_bind_text(c->put_dstate, 6, r->config_hash, -1, SQLITE_STATIC);
  return step_done(c, c->put_dstate);
}

/* ?1 destination name, ?2 config hash (NULL: any), ?3 source (NULL: any) */
static const char *const get_destination_states_sql =
  "SELECT stream_name, state_json, stream_namespace FROM _airbyte_destination_state"
  " WHERE destination_name = ?1 AND (?2 IS NULL OR destination_config_hash = ?2)"
  " AND (?3 IS NULL OR source_name = ?3)"
  " ORDER BY destination_config_hash, source_name, stream_namespace, stream_name";

static int sq_get_destination_states(lb_cache *base, const char *destination_name,
                                     const char *config_hash, const char *source_name,
                                     lb_cache_state_cb cb, void *ud) {
  sq_cache *c = SQ(base);
  sqlite3_stmt *st = NULL;
  const char *sql = get_destination_states_sql;
  lb__sq_barrier(c);
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  sqlite3_bind_text(st, 1, destination_name, -1, SQLITE_STATIC);
  if (config_hash) sqlite3_bind_text(st, 2, config_hash, -1, SQLITE_STATIC);
  if (source_name) sqlite3_bind_text(st, 3, source_name, -1, SQLITE_STATIC);
  return each_state(c, st, cb, ud);
}

/* --- the delivery ledger -------------------------------------------------------- */

static void bind_ledger_key(sqlite3_stmt *st, const lb_cache_delivery *d) {
  sqlite3_bind_text(st, 1, d->destination_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, d->config_hash ? d->config_hash : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, d->source_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, d->stream_namespace ? d->stream_namespace : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, d->stream_name, -1, SQLITE_STATIC);
}

static int sq_get_delivered(lb_cache *base, const lb_cache_delivery *d, char *raw_id, size_t cap) {
  sq_cache *c = SQ(base);
  int rc;
  if ((rc = lb__sq_barrier(c)) != 0) return rc;
  if ((rc = prep(c, &c->get_ledger,
                 "SELECT last_raw_id FROM _luabyte_destination_progress WHERE destination_name = ?1"
                 " AND destination_config_hash = ?2 AND source_name = ?3 AND stream_namespace = ?4"
                 " AND stream_name = ?5")) < 0)
    return rc;
  bind_ledger_key(c->get_ledger, d);
  raw_id[0] = '\0';
  rc = sqlite3_step(c->get_ledger);
  if (rc == SQLITE_ROW) {
    const char *t = (const char *)sqlite3_column_text(c->get_ledger, 0);
    snprintf(raw_id, cap, "%s", t ? t : "");
  }
  sqlite3_reset(c->get_ledger);
  sqlite3_clear_bindings(c->get_ledger);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sqlerr(c, "reading the delivery ledger");
  return raw_id[0] != '\0';
}

static int sq_put_delivered(lb_cache *base, const lb_cache_delivery *d, const char *raw_id) {
  sq_cache *c = SQ(base);
  int rc;
  if ((rc = lb__sq_barrier(c)) != 0) return rc;
  /* never backwards: an older confirmation arriving late changes nothing */
  if ((rc = prep(c, &c->put_ledger,
                 "INSERT INTO _luabyte_destination_progress (" LEDGER_COLS ", stream_namespace,"
                 " destination_config_hash) VALUES (?1, ?3, ?5, ?6, " NOW_SQL ", ?4, ?2)"
                 " ON CONFLICT DO UPDATE SET last_raw_id = excluded.last_raw_id,"
                 " last_updated = excluded.last_updated WHERE excluded.last_raw_id > last_raw_id")) < 0)
    return rc;
  bind_ledger_key(c->put_ledger, d);
  sqlite3_bind_text(c->put_ledger, 6, raw_id, -1, SQLITE_STATIC);
  return step_done(c, c->put_ledger);
}

/* A few statements as one, inside a transaction of the caller's or not:
** savepoint_begin, then savepoint_end with their outcome, which releases
** the savepoint or rolls it back (keeping the failure's message). */
#define ATOMIC_SAVEPOINT "lb_atomic"

static int savepoint_begin(sq_cache *c) { return exec_sql(c, "SAVEPOINT " ATOMIC_SAVEPOINT); }

static int savepoint_end(sq_cache *c, int rc) {
  char msg[sizeof c->base.errmsg];
  if (rc >= 0) return exec_sql(c, "RELEASE " ATOMIC_SAVEPOINT);
  memcpy(msg, c->base.errmsg, sizeof msg);
  exec_sql(c, "ROLLBACK TO " ATOMIC_SAVEPOINT);
  exec_sql(c, "RELEASE " ATOMIC_SAVEPOINT);
  memcpy(c->base.errmsg, msg, sizeof msg);
  return rc;
}

#define QUARANTINE_OLD "source_name, stream_name, stream_namespace, record_json, reasons," \
  " _airbyte_extracted_at, quarantined_at"
#define QUARANTINE_COLS "source_name VARCHAR NOT NULL, stream_name VARCHAR NOT NULL," \
  " stream_namespace VARCHAR NOT NULL DEFAULT '', record_json JSON NOT NULL, reasons JSON NOT NULL," \
  " _airbyte_extracted_at TIMESTAMP WITH TIME ZONE, quarantined_at TIMESTAMP WITH TIME ZONE," \
  " quarantine_id INTEGER PRIMARY KEY"

static int sq_put_quarantine(lb_cache *base, const lb_cache_quarantine *q) {
  sq_cache *c = SQ(base);
  static const char *const sql =
    "INSERT INTO _airbyte_quarantine (source_name, stream_name, stream_namespace, record_json,"
    " reasons, _airbyte_extracted_at, quarantined_at) VALUES (?1, ?2, ?3, ?4, ?5,"
    " strftime('%Y-%m-%dT%H:%M:%f+00:00', ?6 / 1000.0, 'unixepoch'), " NOW_SQL ")";
  sqlite3_stmt *st = NULL;
  int rc;
  if ((rc = lb__sq_barrier(c)) != 0) return rc;   /* after the rows queued before it, in their transaction */
  /* quarantine_id: the order they were kept in (cache.h); a table made
  ** before it is rebuilt with its rows in rowid order, all or nothing (a
  ** lock met half-way must not leave the old rows behind a new table) */
  if ((rc = exec_sql(c, "CREATE TABLE IF NOT EXISTS _airbyte_quarantine (" QUARANTINE_COLS ")")) < 0 ||
      (rc = has_column(c, "_airbyte_quarantine", "quarantine_id")) < 0)
    return rc;
  if (rc == 0) {
    if ((rc = savepoint_begin(c)) < 0) return rc;
    rc = exec_sql(c, "ALTER TABLE _airbyte_quarantine RENAME TO _luabyte_migrating;"
                     "CREATE TABLE _airbyte_quarantine (" QUARANTINE_COLS ");"
                     "INSERT INTO _airbyte_quarantine (" QUARANTINE_OLD ") SELECT " QUARANTINE_OLD
                     " FROM _luabyte_migrating ORDER BY rowid;"
                     "DROP TABLE _luabyte_migrating");
    if ((rc = savepoint_end(c, rc)) < 0) return rc;
  }
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  sqlite3_bind_text(st, 1, q->source_name, -1, SQLITE_STATIC);
  bind_len(st, 2, q->stream, q->stream_len);
  bind_len(st, 3, q->ns, q->ns_len);
  bind_len(st, 4, q->record_json, q->record_len);
  bind_len(st, 5, q->reasons_json, q->reasons_len);
  sqlite3_bind_int64(st, 6, q->emitted_at_ms);
  rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sqlerr(c, sql);
  sqlite3_finalize(st);
  return rc;
}

static int sq_move_destination(lb_cache *base, const char *destination_name, const char *from_hash,
                               const char *to_hash) {
  sq_cache *c = SQ(base);
  static const char *const sql[] = {
    "UPDATE OR REPLACE _airbyte_destination_state SET destination_config_hash = ?3"
    " WHERE destination_name = ?1 AND destination_config_hash = ?2",
    "UPDATE OR REPLACE _luabyte_destination_progress SET destination_config_hash = ?3"
    " WHERE destination_name = ?1 AND destination_config_hash = ?2",
  };
  size_t i;
  int rc;
  if ((rc = lb__sq_barrier(c)) != 0) return rc;
  /* both tables or neither, inside a transaction of the caller's or not */
  if ((rc = savepoint_begin(c)) < 0) return rc;
  for (i = 0; i < sizeof sql / sizeof sql[0]; i++) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db, sql[i], -1, &st, NULL) != SQLITE_OK) { rc = sqlerr(c, sql[i]); break; }
    sqlite3_bind_text(st, 1, destination_name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, from_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, to_hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sqlerr(c, sql[i]);
    sqlite3_finalize(st);
    if (rc < 0) break;
  }
  return savepoint_end(c, rc);
}

/* --- name lookups (the rules are cache_names.c's) ----------------------------------- */

/* Steps st, whose columns are stream_name, stream_namespace, table_name,
** source_name, catalog_metadata, calling cb per row; finalizes st. */
static int each_stream_row(sq_cache *c, sqlite3_stmt *st, lb_cache_streams_cb cb, void *ud) {
  int rc = SQLITE_DONE, r = 0;
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    lb_cache_stream_row row;
    size_t n;
    row.name = col_bytes(st, 0, &row.name_len);
    row.ns = col_bytes(st, 1, &row.ns_len);
    row.table = col_bytes(st, 2, &n);
    row.source_name = col_bytes(st, 3, &n);
    row.catalog_json = col_bytes(st, 4, &row.catalog_len);
    r = cb(ud, &row);
  }
  if (r == 0 && rc != SQLITE_DONE) r = sqlerr(c, sqlite3_sql(st));
  sqlite3_finalize(st);
  return r;
}

#define STREAM_ROW_COLS "stream_name, stream_namespace, table_name, source_name, catalog_metadata"

static int sq_stream_rows(lb_cache *base, const char *prefix, const char *name, size_t nlen,
                          const char *ns, size_t nslen, lb_cache_streams_cb cb, void *ud) {
  sq_cache *c = SQ(base);
  sqlite3_stmt *st = NULL;
  const char *sql =
    "SELECT " STREAM_ROW_COLS " FROM _airbyte_streams"
    " WHERE table_prefix = ?1 AND stream_name = ?2 AND (?3 IS NULL OR stream_namespace = ?3)"
    " ORDER BY stream_namespace";
  lb__sq_barrier(c);
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
  bind_len(st, 2, name, nlen);
  if (ns) bind_len(st, 3, ns, nslen);
  return each_stream_row(c, st, cb, ud);
}

/* The row claiming t, else what else holds the name (SQLite compares
** names without regard to ASCII case). The strings live in c->owner. */
static int sq_table_owner(lb_cache *base, const char *t, lb_cache_name_owner *o) {
  sq_cache *c = SQ(base);
  sqlite3_stmt *st = NULL;
  const char *sql = "SELECT stream_name, stream_namespace, table_prefix FROM _airbyte_streams"
                    " WHERE table_name = ?1";
  const char *sql2 = "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE";
  int rc;
  lb__sq_barrier(c);
  o->kind = LB_NAME_FREE;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
  if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    size_t n[3];
    const char *v[3];
    int i;
    lb__sb_reset(&c->owner);
    for (i = 0; i < 3; i++) {
      v[i] = col_bytes(st, i, &n[i]);
      lb__sb_addn(&c->owner, v[i], n[i]);
      lb__sb_addn(&c->owner, "", 1);            /* NUL-separated */
    }
    if (c->owner.oom) { sqlite3_finalize(st); lb__sq_seterr(c, "out of memory"); return LB_ENOMEM; }
    o->kind = LB_NAME_STREAM;
    o->name = c->owner.p;
    o->name_len = n[0];
    o->ns = o->name + n[0] + 1;
    o->ns_len = n[1];
    o->prefix = o->ns + n[1] + 1;
    o->prefix_len = n[2];
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sqlerr(c, sql);
  if (o->kind != LB_NAME_FREE) return 0;
  if (sqlite3_prepare_v2(c->db, sql2, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql2);
  sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *type = (const char *)sqlite3_column_text(st, 0);
    if (type == NULL || strcmp(type, "table") != 0) {
      snprintf(c->owner_what, sizeof c->owner_what, "%s", type ? type : "object");
      o->kind = LB_NAME_OBJECT;
      o->what = c->owner_what;
    }
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return sqlerr(c, sql2);
  return 0;
}

/* --- stream locks ---------------------------------------------------------------------
** One file per (table prefix, source, stream) in "<file>-lbstreams/", named by
** a 64-bit hash of the four, held with flock(LOCK_EX) by the runner reading
** that stream: the kernel drops it when the holder exits, kill -9 included,
** and two descriptors conflict even inside one process. The holder writes
** who it is into the file ("pid 12 on host since ..."), which a refused
** runner quotes. Files are never removed: one removed while another runner
** has it open would let a third lock a new file of the same name. */

typedef struct stream_lock {
  struct stream_lock *next;
  uint64_t key;
  int fd;
} stream_lock;

static uint64_t fnv_add(uint64_t h, const char *p, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) { h ^= (unsigned char)p[i]; h *= 1099511628211ULL; }
  h ^= 0xff;                    /* a separator no byte of a name can fake */
  return h * 1099511628211ULL;
}

static uint64_t stream_lock_key(sq_cache *c, const char *source_name, const lb_cache_stream_id *id) {
  uint64_t h = 14695981039346656037ULL;
  h = fnv_add(h, c->base.prefix, strlen(c->base.prefix));
  h = fnv_add(h, source_name, strlen(source_name));
  h = fnv_add(h, id->ns ? id->ns : "", id->ns ? id->ns_len : 0);
  return fnv_add(h, id->name, id->name_len);
}

static void describe_stream(char *out, size_t cap, const char *source_name, const lb_cache_stream_id *id) {
  int nl = id->name_len > 200 ? 200 : (int)id->name_len;
  if (id->ns && id->ns_len)
    snprintf(out, cap, "stream '%.*s.%.*s' of source '%.200s'", id->ns_len > 100 ? 100 : (int)id->ns_len,
             id->ns, nl, id->name, source_name);
  else
    snprintf(out, cap, "stream '%.*s' of source '%.200s'", nl, id->name, source_name);
}

static void holder_text(int fd, char *out, size_t cap) {
  ssize_t n = pread(fd, out, cap - 1, 0);
  if (n <= 0) { snprintf(out, cap, "another runner"); return; }
  out[n] = '\0';
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\0')) out[--n] = '\0';
  if (n == 0) snprintf(out, cap, "another runner");
}

/* cache.c has checked the arguments (a source, a named stream). */
static int sq_lock_stream(lb_cache *base, const char *source_name, const lb_cache_stream_id *id,
                          long timeout_ms, char *err, size_t errlen) {
  sq_cache *c = SQ(base);
  char path[4200], what[400], who[300];
  const char *fn;
  stream_lock *l;
  uint64_t key, until;
  int fd, held_here = 0;
  describe_stream(what, sizeof what, source_name, id);
  key = stream_lock_key(c, source_name, id);
  fn = sqlite3_db_filename(c->db, "main");
  if (fn == NULL || *fn == '\0') return 0;      /* in memory: no other runner can see it */
  if (snprintf(path, sizeof path, "%s-lbstreams", fn) >= (int)sizeof path) {
    lb__sq_seterr(c, "the cache path is too long for its stream locks");
    copyerr(err, errlen, c->base.errmsg);
    return LB_EINVAL;
  }
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    lb__sq_seterr(c, "cannot lock %s: cannot create %.300s: %s", what, path, strerror(errno));
    copyerr(err, errlen, c->base.errmsg);
    return LB_CACHE_ESQL;
  }
  snprintf(path + strlen(path), sizeof path - strlen(path), "/%016llx", (unsigned long long)key);
  if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
    lb__sq_seterr(c, "cannot lock %s: cannot open %.300s: %s", what, path, strerror(errno));
    copyerr(err, errlen, c->base.errmsg);
    return LB_CACHE_ESQL;
  }
  until = uv_hrtime() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
  for (;;) {
    for (l = c->locks; l && l->key != key; l = l->next) {}
    held_here = l != NULL;                      /* this cache holds it: a flock would not refuse */
    if (!held_here && flock(fd, LOCK_EX | LOCK_NB) == 0) break;
    if (!held_here && errno != EWOULDBLOCK && errno != EINTR) {
      lb__sq_seterr(c, "cannot lock %s: %s", what, strerror(errno));
      close(fd);
      copyerr(err, errlen, c->base.errmsg);
      return LB_CACHE_ESQL;
    }
    if (uv_hrtime() >= until) {
      if (held_here) snprintf(who, sizeof who, "another reader in this process (pid %ld)", (long)getpid());
      else holder_text(fd, who, sizeof who);
      lb__sq_seterr(c, "%s is being read into this cache by %s", what, who);
      close(fd);
      copyerr(err, errlen, c->base.errmsg);
      return LB_CACHE_EBUSY;
    }
    uv_sleep(10);
  }
  if ((l = malloc(sizeof *l)) == NULL) {
    close(fd);                                  /* closing drops the lock */
    lb__sq_seterr(c, "out of memory");
    copyerr(err, errlen, c->base.errmsg);
    return LB_ENOMEM;
  }
  {
    char host[256] = "unknown host", since[40], text[400];
    time_t now = time(NULL);
    struct tm tm;
    int n;
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    n = snprintf(text, sizeof text, "pid %ld@%.200s since %s\n", (long)getpid(), host, since);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {}   /* who: best effort */
  }
  l->key = key;
  l->fd = fd;
  l->next = c->locks;
  c->locks = l;
  return 0;
}

static void sq_unlock_stream(lb_cache *base, const char *source_name, const lb_cache_stream_id *id) {
  sq_cache *c = SQ(base);
  stream_lock **pp, *l;
  uint64_t key = stream_lock_key(c, source_name, id);
  for (pp = &c->locks; *pp && (*pp)->key != key; pp = &(*pp)->next) {}
  if ((l = *pp) == NULL) return;                /* not held (an in-memory cache): nothing to do */
  *pp = l->next;
  if (ftruncate(l->fd, 0) != 0) {}              /* nobody holds it now */
  close(l->fd);                                 /* drops the flock */
  free(l);
}

static void locks_release_all(sq_cache *c) {
  while (c->locks) {
    stream_lock *l = c->locks;
    c->locks = l->next;
    close(l->fd);
    free(l);
  }
}

/* --- the read side: rows as RECORD lines --------------------------------------------------- */

/* Per column: what its declared type says about the values it holds. */
enum { F_PLAIN = 0, F_JSON, F_BOOL, F_BIGINT, F_INTERNAL };

typedef struct sq_cursor {
  lb_cache_cursor base;
  sqlite3_stmt *st;
  int ncols, col_raw_id, col_extracted;
  unsigned char *kind;           /* per column */
  char *keys;                    /* per column: ",\"name\":", back to back */
  size_t *key_off;               /* ncols + 1 offsets into keys */
  char *head;                    /* {"type":"RECORD","record":{"stream":...,"data":{ */
  size_t head_len;
} sq_cursor;

/* Never touches the cache, which may be closed already (sqlite3_close_v2
** keeps the connection until its last statement is finalized). */
static void sq_cursor_close(lb_cache_cursor *base) {
  sq_cursor *f = (sq_cursor *)(void *)base;
  sqlite3_finalize(f->st);
  free(f->kind);
  free(f->keys);
  free(f->key_off);
  free(f->head);
  free(f);
}

static lb_cache_cursor *sq_cursor_open(lb_cache *base, const lb_cache_cursor_spec *spec) {
  sq_cache *c = SQ(base);
  sq_cursor *f;
  lb_sbuf sql = {NULL, 0, 0, 0};
  size_t total = 0, klen = 0;
  int i;
  lb__sq_barrier(c);
  if ((f = calloc(1, sizeof *f)) == NULL) { lb__sq_seterr(c, "out of memory"); return NULL; }
  f->base.c = base;
  f->base.ops = &sqlite_ops;
  f->col_raw_id = f->col_extracted = -1;
  /* No ORDER BY: sorting a large table costs more than the whole feed
  ** (there is no index on the raw id, which would slow every insert). The
  ** caller tracks the highest id sent as rows go by instead. */
  lb__sb_add(&sql, "SELECT * FROM ");
  lb__sb_ident(&sql, spec->table);
  if (spec->after_raw_id) lb__sb_add(&sql, " WHERE " RAW_ID_COL " > ?1");
  if (sql.oom) { lb__sq_seterr(c, "out of memory"); goto fail; }
  if (sqlite3_prepare_v2(c->db, sql.p, -1, &f->st, NULL) != SQLITE_OK) {
    char why[400];
    lb__sq_sqlite_why(c, c->db, why, sizeof why);
    lb__sq_seterr(c, "reading stream '%.*s' from the cache failed: %s",
           (int)(spec->stream_len > 200 ? 200 : spec->stream_len), spec->stream, why);
    goto fail;
  }
  if (spec->after_raw_id) sqlite3_bind_text(f->st, 1, spec->after_raw_id, -1, SQLITE_TRANSIENT);
  f->ncols = sqlite3_column_count(f->st);
  if ((f->kind = calloc((size_t)f->ncols + 1, 1)) == NULL ||
      (f->key_off = calloc((size_t)f->ncols + 1, sizeof *f->key_off)) == NULL) {
    lb__sq_seterr(c, "out of memory");
    goto fail;
  }
  for (i = 0; i < f->ncols; i++) total += LB_JSON_QUOTE_ROOM(strlen(sqlite3_column_name(f->st, i))) + 2;
  if ((f->keys = malloc(total + 1)) == NULL) { lb__sq_seterr(c, "out of memory"); goto fail; }
  for (i = 0; i < f->ncols; i++) {
    const char *name = sqlite3_column_name(f->st, i), *decl = sqlite3_column_decltype(f->st, i);
    f->key_off[i] = klen;
    f->keys[klen++] = ',';
    klen += (size_t)lb__json_quote(name, strlen(name), f->keys + klen, 0);
    f->keys[klen++] = ':';
    if (strcmp(name, RAW_ID_COL) == 0) f->col_raw_id = i;
    if (strcmp(name, EXTRACTED_AT_COL) == 0) f->col_extracted = i;
    if (i == f->col_raw_id || i == f->col_extracted || strcmp(name, META_COL) == 0) {
      f->kind[i] = F_INTERNAL;
    } else if (decl) {
      if (strcmp(decl, "JSON") == 0) f->kind[i] = F_JSON;
      else if (strcmp(decl, "BOOLEAN") == 0) f->kind[i] = F_BOOL;
      else if (strcmp(decl, "BIGINT") == 0) f->kind[i] = F_BIGINT;
    }
  }
  f->key_off[f->ncols] = klen;
  /* the line up to the data, with the names JSON-encoded once */
  {
    size_t cap = 64 + LB_JSON_QUOTE_ROOM(spec->stream_len) + LB_JSON_QUOTE_ROOM(spec->ns_len), n = 0;
    if ((f->head = malloc(cap)) == NULL) { lb__sq_seterr(c, "out of memory"); goto fail; }
    memcpy(f->head, "{\"type\":\"RECORD\",\"record\":{\"stream\":", 36);
    n = 36;
    n += (size_t)lb__json_quote(spec->stream, spec->stream_len, f->head + n, 0);
    if (spec->ns && spec->ns_len) {
      memcpy(f->head + n, ",\"namespace\":", 13);
      n += 13;
      n += (size_t)lb__json_quote(spec->ns, spec->ns_len, f->head + n, 0);
    }
    memcpy(f->head + n, ",\"data\":{", 9);
    f->head_len = n + 9;
  }
  free(sql.p);
  return &f->base;
fail:
  free(sql.p);
  sq_cursor_close(&f->base);
  return NULL;
}

static int is_digits(const unsigned char *s, int n) {
  int i = (n > 0 && s[0] == '-') ? 1 : 0;
  if (i >= n) return 0;
  for (; i < n; i++) if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

#define ADD(s_, n_) (memcpy(out->p + out->len, (s_), (n_)), out->len += (n_))
/* room for n_ more bytes: the call only when the buffer must grow */
#define ROOM(n_) (out->len + (n_) <= out->cap ? 0 : lb_cache_buf_reserve(out, (n_)))

/* One row as a RECORD line. The data holds the source's fields only: the
** cache's own columns give the emitted_at and the raw id but are not sent
** as data. */
static int sq_cursor_next(lb_cache_cursor *base, lb_cache_buf *out, const char **raw_id,
                          size_t *raw_id_len) {
  sq_cursor *f = (sq_cursor *)(void *)base;
  sq_cache *c = SQ(base->c);
  int i, first = 1, rc;
  long long ms = 0;
  *raw_id = NULL;
  *raw_id_len = 0;
  rc = sqlite3_step(f->st);
  if (rc == SQLITE_DONE) return 0;
  if (rc != SQLITE_ROW) {
    char why[400];
    lb__sq_sqlite_why(c, c->db, why, sizeof why);
    lb__sq_seterr(c, "reading the cache failed: %s", why);
    return LB_CACHE_ESQL;
  }
  if (ROOM(64 + f->head_len) != 0) goto oom;
  ADD(f->head, f->head_len);
  for (i = 0; i < f->ncols; i++) {
    int t = sqlite3_column_type(f->st, i), n = 0, kind = f->kind[i];
    const unsigned char *txt = NULL;
    size_t klen = f->key_off[i + 1] - f->key_off[i];
    if (t == SQLITE_TEXT || t == SQLITE_BLOB) {
      txt = sqlite3_column_text(f->st, i);
      n = sqlite3_column_bytes(f->st, i);
    }
    if (kind == F_INTERNAL) {
      if (i == f->col_extracted && txt) ms = lb__cache_parse_ts((const char *)txt, (size_t)n);
      if (i == f->col_raw_id && txt) { *raw_id = (const char *)txt; *raw_id_len = (size_t)n; }
      continue;
    }
    if (ROOM(klen + LB_JSON_NUM_ROOM + LB_JSON_QUOTE_ROOM((size_t)n)) != 0) goto oom;
    ADD(f->keys + f->key_off[i] + first, klen - (size_t)first);   /* the ',' */
    first = 0;
    switch (t) {
      case SQLITE_NULL:
        ADD("null", 4);
        break;
      case SQLITE_INTEGER: {
        long long v = sqlite3_column_int64(f->st, i);
        if (kind == F_BOOL && (v == 0 || v == 1)) { if (v) ADD("true", 4); else ADD("false", 5); }
        else out->len += lb__json_fmt_int(v, out->p + out->len);
        break;
      }
      case SQLITE_FLOAT: {
        double v = sqlite3_column_double(f->st, i);
        size_t k = lb__json_fmt_double(v, out->p + out->len);
        /* the source's 1e400 was read as an infinity: send a number that
        ** reads back as one (JSON has no infinity literal) */
        if (k == 0) { if (v > 0) ADD("1e999", 5); else ADD("-1e999", 6); }
        out->len += k;
        break;
      }
      default:
        /* object/array columns hold the source's JSON text; a string the
        ** source put there (against its schema) is held decoded and goes
        ** out as a string again */
        if (kind == F_JSON && n > 0 && (txt[0] == '{' || txt[0] == '[') &&
            lb_jskim_validate((const char *)txt, (size_t)n, NULL, NULL) == 0)
          ADD(txt, (size_t)n);
        /* big integers are stored as a BLOB of their digits, in any
        ** numeric column: they go out as the number they were */
        else if ((t == SQLITE_BLOB || kind == F_BIGINT) && is_digits(txt, n))
          ADD(txt, (size_t)n);
        /* cache text was valid UTF-8 when it was read: not checked again */
        else out->len += (size_t)lb__json_quote((const char *)txt, (size_t)n, out->p + out->len, 0);
        break;
    }
  }
  if (ROOM(64) != 0) goto oom;
  ADD("},\"emitted_at\":", 15);
  out->len += lb__json_fmt_int(ms, out->p + out->len);
  ADD("}}\n", 3);
  return 1;
oom:
  lb__sq_seterr(c, "out of memory");
  return LB_ENOMEM;
}

#undef ADD
#undef ROOM

/* --- ad-hoc SQL ------------------------------------------------------------------------------ */

static int query_err(sq_cache *c, const char *why, const char *sql, size_t len);

/* The statements one at a time, as sqlite3_exec runs them; on a lock
** (LB_CACHE_EBUSY) base.exec_ran says how many bytes of sql ran. */
static int sq_exec(lb_cache *base, const char *sql, size_t len) {
  sq_cache *c = SQ(base);
  const char *p, *tail;
  char *z;
  int rc = 0;
  lb__sq_barrier(c);
  if ((z = lb__sq_dupstr(sql, len)) == NULL) { lb__sq_seterr(c, "out of memory"); return LB_ENOMEM; }
  for (p = z; *p && rc == 0; p = tail) {
    sqlite3_stmt *st = NULL;
    int ec = sqlite3_prepare_v2(c->db, p, -1, &st, &tail);
    if (ec == SQLITE_OK && st != NULL) {
      while ((ec = sqlite3_step(st)) == SQLITE_ROW) {}
      if (ec == SQLITE_DONE) ec = SQLITE_OK;
    }
    if (ec != SQLITE_OK) {
      rc = query_err(c, sqlite3_errmsg(c->db), z, len);
      base->exec_ran = (size_t)(p - z);
    }
    sqlite3_finalize(st);
  }
  free(z);
  return rc;
}

static long long sq_changes(lb_cache *base) {
  sq_cache *c = SQ(base);
  lb__sq_barrier(c);
  return sqlite3_changes64(c->db);
}

struct sq_query {
  lb_cache_query base;
  sq_query *prev, *next;        /* open queries of the cache, closed with it */
  sqlite3_stmt *st;
  int ncols;
  lb_cache_value *row;
};

static void sq_query_close(lb_cache_query *qb) {
  sq_query *q = (sq_query *)(void *)qb;
  sq_cache *c = SQ(qb->c);
  if (q->st) {
    lb__sq_barrier(c);                  /* the writer thread may hold the connection */
    sqlite3_finalize(q->st);
  }
  if (q->prev) q->prev->next = q->next;
  else if (c->queries == q) c->queries = q->next;
  if (q->next) q->next->prev = q->prev;
  free(q->row);
  free(q);
}

static int bind_value(sqlite3_stmt *st, int i, const lb_cache_value *v) {
  switch (v ? v->type : LB_VAL_NULL) {
    case LB_VAL_INT: case LB_VAL_BOOL: return sqlite3_bind_int64(st, i, v->i);
    case LB_VAL_FLOAT: return sqlite3_bind_double(st, i, v->d);
    case LB_VAL_TEXT: case LB_VAL_JSON: case LB_VAL_BIGINT:
      return sqlite3_bind_text64(st, i, v->s ? v->s : "", v->s ? v->n : 0, SQLITE_TRANSIENT,
                                 SQLITE_UTF8);
    default: return sqlite3_bind_null(st, i);
  }
}

/* A statement's SQL for messages: cut to 200 bytes. */
static int query_err(sq_cache *c, const char *why, const char *sql, size_t len) {
  size_t n = len > 200 ? 200 : len;
  lb__sq_seterr(c, "%s (in: %.*s%s)", why, (int)n, sql, len > 200 ? "..." : "");
  return lb__sq_fail_code(c, sqlite3_errcode(c->db), sql, len);
}

/* Parameters: "?" and "?NNN" take the positional values in order (the
** NNN-th), ":name", "@name" and "$name" the value of that name (missing:
** NULL). params NULL = none given: a statement with parameters fails. */
static lb_cache_query *sq_query_open(lb_cache *base, const char *sql, size_t len,
                                     const lb_cache_value *params, int nparams) {
  sq_cache *c = SQ(base);
  sq_query *q;
  const char *tail = NULL;
  int i, n, rc;
  lb__sq_barrier(c);
  if ((q = calloc(1, sizeof *q)) == NULL) { lb__sq_seterr(c, "out of memory"); return NULL; }
  q->base.c = base;
  q->next = c->queries;
  if (c->queries) c->queries->prev = q;
  c->queries = q;
  if (sqlite3_prepare_v2(c->db, sql, (int)len, &q->st, &tail) != SQLITE_OK) {
    query_err(c, sqlite3_errmsg(c->db), sql, len);
    goto fail;
  }
  if (q->st == NULL) { query_err(c, "no SQL statement", sql, len); goto fail; }
  if (tail && tail < sql + len) {
    sqlite3_stmt *more = NULL;
    rc = sqlite3_prepare_v2(c->db, tail, (int)(sql + len - tail), &more, NULL);
    sqlite3_finalize(more);
    if (rc != SQLITE_OK || more != NULL) {
      query_err(c, "only one SQL statement is allowed here (use exec for several)", sql, len);
      goto fail;
    }
  }
  n = sqlite3_bind_parameter_count(q->st);
  if (n > 0 && params == NULL) {
    char why[96];
    snprintf(why, sizeof why, "the statement has %d parameters and none were given", n);
    query_err(c, why, sql, len);
    goto fail;
  }
  for (i = 1; i <= n; i++) {
    const char *name = sqlite3_bind_parameter_name(q->st, i);
    const lb_cache_value *v = NULL;
    int k, pos = 0;
    if (name && name[0] != '?') {
      for (k = 0; k < nparams; k++)
        if (params[k].name && strcmp(params[k].name, name + 1) == 0) { v = &params[k]; break; }
    } else {
      for (k = 0; k < nparams; k++)
        if (params[k].name == NULL && ++pos == i) { v = &params[k]; break; }
    }
    if ((rc = bind_value(q->st, i, v)) != SQLITE_OK) {
      char why[160];
      snprintf(why, sizeof why, "binding parameter %d: %s", i, sqlite3_errstr(rc));
      query_err(c, why, sql, len);
      goto fail;
    }
  }
  q->ncols = sqlite3_column_count(q->st);
  if ((q->row = calloc((size_t)q->ncols + 1, sizeof *q->row)) == NULL) {
    lb__sq_seterr(c, "out of memory");
    goto fail;
  }
  return &q->base;
fail:
  sq_query_close(&q->base);
  return NULL;
}

static int sq_query_ncols(lb_cache_query *qb) { return ((sq_query *)(void *)qb)->ncols; }

static const char *sq_query_col_name(lb_cache_query *qb, int i) {
  sq_query *q = (sq_query *)(void *)qb;
  const char *name = i >= 0 && i < q->ncols ? sqlite3_column_name(q->st, i) : NULL;
  return name ? name : "?";
}

/* The kind of a declared type (ours, and what SQLite's affinity rules
** make of others); -1 for none. */
static int decl_kind(const char *decl) {
  size_t i;
  if (decl == NULL || decl[0] == '\0') return -1;
  for (i = 0; i < sizeof kind_sql / sizeof kind_sql[0]; i++)
    if (sqlite3_stricmp(decl, kind_sql[i]) == 0) return (int)i;
  if (sqlite3_strnicmp(decl, "DECIMAL", 7) == 0 || sqlite3_strnicmp(decl, "NUMERIC", 7) == 0)
    return LB_COL_NUMBER;
  return -1;
}

static int sq_query_col_kind(lb_cache_query *qb, int i) {
  sq_query *q = (sq_query *)(void *)qb;
  return i >= 0 && i < q->ncols ? decl_kind(sqlite3_column_decltype(q->st, i)) : -1;
}

static int sq_query_next(lb_cache_query *qb, const lb_cache_value **row) {
  sq_query *q = (sq_query *)(void *)qb;
  sq_cache *c = SQ(qb->c);
  int rc, i;
  *row = NULL;
  if (q->st == NULL) return 0;
  /* records written since the last row are queued for the writer thread,
  ** which must be done with the connection before we use it */
  lb__sq_barrier(c);
  rc = sqlite3_step(q->st);
  if (rc == SQLITE_DONE) {
    sqlite3_finalize(q->st);
    q->st = NULL;
    return 0;
  }
  if (rc != SQLITE_ROW) {
    const char *sql = sqlite3_sql(q->st);
    rc = query_err(c, sqlite3_errmsg(c->db), sql ? sql : "", sql ? strlen(sql) : 0);
    sqlite3_finalize(q->st);
    q->st = NULL;
    return rc;
  }
  for (i = 0; i < q->ncols; i++) {
    lb_cache_value *v = &q->row[i];
    switch (sqlite3_column_type(q->st, i)) {
      case SQLITE_INTEGER: v->type = LB_VAL_INT; v->i = sqlite3_column_int64(q->st, i); break;
      case SQLITE_FLOAT: v->type = LB_VAL_FLOAT; v->d = sqlite3_column_double(q->st, i); break;
      case SQLITE_TEXT:
        v->type = LB_VAL_TEXT;
        v->s = (const char *)sqlite3_column_text(q->st, i);
        v->n = (size_t)sqlite3_column_bytes(q->st, i);
        break;
      case SQLITE_BLOB:       /* big integers are kept as a BLOB of their digits */
        v->type = LB_VAL_TEXT;
        v->s = sqlite3_column_blob(q->st, i);
        v->n = (size_t)sqlite3_column_bytes(q->st, i);
        if (v->s == NULL) v->s = "";
        break;
      default: v->type = LB_VAL_NULL; break;
    }
  }
  *row = q->row;
  return 1;
}

/* --- introspection -------------------------------------------------------------------------------- */

static int sq_has_table(lb_cache *base, const char *table) {
  sq_cache *c = SQ(base);
  sqlite3_stmt *st = NULL;
  const char *sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1";
  int rc;
  lb__sq_barrier(c);
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  if (rc == SQLITE_ROW) return 1;
  if (rc == SQLITE_DONE) return 0;
  return sqlerr(c, sql);
}

static int sq_columns(lb_cache *base, const char *table, lb_cache_column_cb cb, void *ud) {
  sq_cache *c = SQ(base);
  sqlite3_stmt *st = NULL;
  const char *sql = "SELECT name, type FROM pragma_table_info(?1)";
  int rc, r = 0;
  lb__sq_barrier(c);
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
  while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    const char *decl = (const char *)sqlite3_column_text(st, 1);
    r = cb(ud, name ? name : "", decl_kind(decl), decl ? decl : "");
  }
  if (r == 0 && rc != SQLITE_DONE) r = sqlerr(c, sql);
  sqlite3_finalize(st);
  return r;
}

static int sq_streams(lb_cache *base, const char *prefix, lb_cache_streams_cb cb, void *ud) {
  sq_cache *c = SQ(base);
  sqlite3_stmt *st = NULL;
  const char *sql =
    "SELECT " STREAM_ROW_COLS " FROM _airbyte_streams"
    " WHERE table_prefix = ?1 AND table_name IN (SELECT name FROM sqlite_master WHERE type = 'table')"
    " ORDER BY stream_name, stream_namespace";
  lb__sq_barrier(c);
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  sqlite3_bind_text(st, 1, prefix, -1, SQLITE_STATIC);
  return each_stream_row(c, st, cb, ud);
}

static const char *const sqlite_reserved[] = { "sqlite_", NULL };

static const lb_cache_ops sqlite_ops = {
  .kind = "sqlite", .reserved = sqlite_reserved, .max_ident = 0,
  .close = sq_close,
  .begin = sq_begin, .commit = sq_commit, .rollback = sq_rollback,
  .in_transaction = lb__sq_in_transaction,
  .set_async = lb__sq_set_async, .sync = lb__sq_sync, .wait_room = lb__sq_wait_room, .wait_idle = lb__sq_wait_idle,
  .stream_rows = sq_stream_rows, .table_owner = sq_table_owner,
  .stream_open = sq_stream_open, .stream_write = sq_stream_write, .stream_finish = sq_stream_finish,
  .stream_abort = sq_stream_abort, .stream_close = sq_stream_close,
  .put_state = sq_put_state, .get_states = sq_get_states,
  .put_destination_state = sq_put_destination_state,
  .get_destination_states = sq_get_destination_states,
  .get_delivered = sq_get_delivered, .put_delivered = sq_put_delivered,
  .move_destination = sq_move_destination, .put_quarantine = sq_put_quarantine,
  .lock_stream = sq_lock_stream, .unlock_stream = sq_unlock_stream,
  .cursor_open = sq_cursor_open, .cursor_next = sq_cursor_next, .cursor_close = sq_cursor_close,
  .exec = sq_exec, .changes = sq_changes, .query_open = sq_query_open,
  .query_ncols = sq_query_ncols, .query_col_name = sq_query_col_name,
  .query_col_kind = sq_query_col_kind, .query_next = sq_query_next, .query_close = sq_query_close,
  .has_table = sq_has_table, .columns = sq_columns, .streams = sq_streams,
  .begin_queued = lb__sq_op_begin_queued, .commit_queued = lb__sq_op_commit_queued
};
