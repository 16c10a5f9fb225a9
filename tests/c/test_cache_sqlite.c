/*
** test_cache_sqlite.c - the SQLite cache (cache.h): layout, typed values,
** schema evolution, write strategies, state, UUIDv7 and timestamps.
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include <uv.h>
#include "cache.h"
#include "jskim.h"
#include "lbtest.h"

static char tmpdir[256];
static int dbseq;
static int async_mode = 1;      /* the cases run twice: async, then sync */

/* A fresh database file in a directory made on first use and removed by
** the last test case. */
static const char *db_path(void) {
  static char path[512];
  if (tmpdir[0] == '\0') {
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lb_test_cache_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); exit(1); }
  }
  snprintf(path, sizeof path, "%s/t%d.sqlite", tmpdir, ++dbseq);
  return path;
}

static lb_cache *open_cache(const char *path) {
  lb_cache *c = NULL;
  char err[256];
  int rc = lb_cache_sqlite_open(path, &c, err, sizeof err);
  if (rc != 0) fprintf(stderr, "  open: %s\n", err);
  CHECK_EQ_INT(rc, 0);
  if (c) lb_cache_set_async(c, async_mode);
  return c;
}

static lb_cache_stream *open_stream(lb_cache *c, const char *stream, const char *schema,
                                    lb_write_strategy st, const char *const *pk) {
  char err[256];
  lb_cache_stream *s = lb_cache_stream_open(c, "source-test", stream, schema, strlen(schema),
                                            st, pk, err, sizeof err);
  if (!s) fprintf(stderr, "  stream_open: %s\n", err);
  CHECK(s != NULL);
  return s;
}

static int write_json(lb_cache_stream *s, const char *json, long long ms) {
  lb_jval v;
  int rc = lb_jskim_validate(json, strlen(json), &v, NULL);
  CHECK_EQ_INT(rc, 0);
  if (rc) return rc;
  rc = lb_cache_stream_write(s, &v, ms, NULL);
  if (rc) fprintf(stderr, "  write: %s\n", lb_cache_errmsg(lb_cache_stream_cache(s)));
  return rc;
}

/* First column of the first row of sql, as text ("NULL" for NULL), in a
** static buffer; with its storage class in *type when type is not NULL. */
static const char *q1(sqlite3 *db, const char *sql, int *type) {
  static char buf[4096];
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  snprintf(buf, sizeof buf, "(no row)");
  if (rc != SQLITE_OK) {
    snprintf(buf, sizeof buf, "(error: %s)", sqlite3_errmsg(db));
    return buf;
  }
  if (sqlite3_step(st) == SQLITE_ROW) {
    int t = sqlite3_column_type(st, 0);
    if (type) *type = t;
    if (t == SQLITE_NULL) snprintf(buf, sizeof buf, "NULL");
    else snprintf(buf, sizeof buf, "%.*s", sqlite3_column_bytes(st, 0),
                  (const char *)sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  return buf;
}

/* The cache's connection: lb_cache_db waits for queued rows (async mode). */
#define DB lb_cache_db(c)

static long long qint(sqlite3 *db, const char *sql) {
  return atoll(q1(db, sql, NULL));
}

static const char *users_schema =
  "{\"type\": \"object\", \"properties\": {"
  "\"id\": {\"type\": \"integer\"},"
  "\"created_at\": {\"type\": \"string\", \"format\": \"date-time\", \"airbyte_type\": \"timestamp_with_timezone\"},"
  "\"name\": {\"type\": \"string\"}, \"age\": {\"type\": \"integer\"},"
  "\"height\": {\"type\": \"string\"}, \"weight\": {\"type\": \"integer\"},"
  "\"address\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}}";

/* --- names -------------------------------------------------------------------- */

static void t_normalize(void) {
  char out[64];
  CHECK_EQ_INT(lb_cache_normalize("Hello World!", 12, out, sizeof out), 12);
  CHECK_EQ_STR(out, "hello_world_");
  CHECK_EQ_INT(lb_cache_normalize("1abc", 4, out, sizeof out), 5);
  CHECK_EQ_STR(out, "_1abc");
  CHECK_EQ_INT(lb_cache_normalize("users", 5, out, sizeof out), 5);
  CHECK_EQ_STR(out, "users");
  CHECK_EQ_INT(lb_cache_normalize("My-Stream.v2", 12, out, sizeof out), 12);
  CHECK_EQ_STR(out, "my_stream_v2");
  CHECK_EQ_INT(lb_cache_normalize("caf\xc3\xa9", 5, out, sizeof out), 4);   /* one code point, one '_' */
  CHECK_EQ_STR(out, "caf_");
  CHECK_EQ_INT(lb_cache_normalize("\xc4\xb0" "D", 3, out, sizeof out), 3);    /* U+0130 -> "i" + dot */
  CHECK_EQ_STR(out, "i_d");
  CHECK_EQ_INT(lb_cache_normalize("\xe2\x84\xaa", 3, out, sizeof out), 1);   /* Kelvin sign -> k */
  CHECK_EQ_STR(out, "k");
  CHECK_EQ_INT(lb_cache_normalize("__", 2, out, sizeof out), -1);
  CHECK_EQ_INT(lb_cache_normalize("!?", 2, out, sizeof out), -1);
  CHECK_EQ_INT(lb_cache_normalize("", 0, out, sizeof out), -1);
  /* too small a buffer: the full length is returned, the output cut */
  CHECK_EQ_INT(lb_cache_normalize("abcdef", 6, out, 4), 6);
  CHECK_EQ_STR(out, "abc");
  /* the length is the name's: a NUL byte is a character like any other */
  CHECK_EQ_INT(lb_cache_normalize("a\0b", 3, out, sizeof out), 3);
  CHECK_EQ_STR(out, "a_b");
  CHECK_EQ_INT(lb_cache_normalize("A\0", 2, out, sizeof out), 2);
  CHECK_EQ_STR(out, "a_");
  CHECK_EQ_INT(lb_cache_normalize("\0", 1, out, sizeof out), -1);
  /* four-byte code points and stray bytes are one '_' each */
  CHECK_EQ_INT(lb_cache_normalize("x\xf0\x9f\x98\x80y", 6, out, sizeof out), 3);
  CHECK_EQ_STR(out, "x_y");
  CHECK_EQ_INT(lb_cache_normalize("a\xff\xfe" "b", 4, out, sizeof out), 4);
  CHECK_EQ_STR(out, "a__b");
  CHECK_EQ_INT(lb_cache_normalize("\xe6\x97\xa5\xe6\x9c\xac", 6, out, sizeof out), -1);
}

/* --- stream names -> tables (cache.h "Stream names") ------------------------- */

static lb_cache_stream *open_named(lb_cache *c, const char *name, size_t nlen, const char *ns,
                                   lb_write_strategy st, char *err, size_t errlen) {
  static const char *const pk[] = {"id", NULL};
  lb_cache_stream_id id;
  id.name = name;
  id.name_len = nlen;
  id.ns = ns;
  id.ns_len = ns ? strlen(ns) : 0;
  err[0] = '\0';
  static const char *schema = "{\"properties\": {\"id\": {\"type\": \"integer\"}}}";
  return lb_cache_stream_open_id(c, "source-test", &id, schema, strlen(schema), st, st == LB_WRITE_MERGE ? pk : NULL, err, errlen);
}

static const char *table_of(lb_cache *c, const char *name, size_t nlen, const char *ns) {
  static char buf[128];
  long n = lb_cache_table_name(c, name, nlen, ns, ns ? strlen(ns) : 0, buf, sizeof buf);
  if (n < 0) snprintf(buf, sizeof buf, "(error %ld: %s)", n, lb_cache_errmsg(c));
  return buf;
}

static void t_reserved_names(void) {
  static const char *const names[] = {
    "_airbyte_state", "_airbyte_streams", "_airbyte_destination_state",
    "_luabyte_destination_progress", "_airbyte_replace_users", "sqlite_master",
    "SQLite_Sequence", "_LUABYTE_Quarantine", "_airbyte_pk_users", NULL };
  lb_write_strategy strategies[3] = { LB_WRITE_REPLACE, LB_WRITE_MERGE, LB_WRITE_APPEND };
  char err[512], want[128];
  int i, k;
  for (k = 0; k < 3; k++) {
    lb_cache *c = open_cache(db_path());
    if (!c) return;
    CHECK_EQ_INT(lb_cache_put_state(c, "source-other", "orders", "{\"type\":\"STREAM\"}", 17), 0);
    for (i = 0; names[i]; i++) {
      lb_cache_stream *s;
      char norm[64];
      lb_cache_normalize(names[i], strlen(names[i]), norm, sizeof norm);
      snprintf(want, sizeof want, "stream_%s", norm);
      CHECK_EQ_STR(table_of(c, names[i], strlen(names[i]), NULL), want);
      CHECK_EQ_INT(lb_cache_begin(c), 0);
      s = open_named(c, names[i], strlen(names[i]), NULL, strategies[k], err, sizeof err);
      if (!s) fprintf(stderr, "  %s: %s\n", names[i], err);
      CHECK(s != NULL);
      if (s) {
        CHECK_EQ_STR(lb_cache_stream_table(s), want);
        CHECK_EQ_INT(write_json(s, "{\"id\": 1}", 0), 0);
        CHECK_EQ_INT(lb_cache_stream_finish(s, err, sizeof err), 0);
        lb_cache_stream_close(s);
      }
      CHECK_EQ_INT(lb_cache_commit(c), 0);
    }
    /* every bookkeeping table is whole, the other source's state still there */
    CHECK_EQ_STR(q1(DB, "SELECT state_json FROM _airbyte_state WHERE source_name = 'source-other'",
                    NULL), "{\"type\":\"STREAM\"}");
    CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM _airbyte_streams"), 9);
    CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM stream__airbyte_state"), 1);
    CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM sqlite_master WHERE name = '_airbyte_destination_state'"
                          " AND sql LIKE '%destination_name%'"), 1);
    lb_cache_close(c);
  }
}

static void t_name_collisions(void) {
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *s;
  char err[512];
  if (!c) return;
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  s = open_named(c, "users", 5, NULL, LB_WRITE_APPEND, err, sizeof err);
  CHECK(s != NULL);
  lb_cache_stream_close(s);
  /* users / Users: the second one is refused, naming both and the table */
  s = open_named(c, "Users", 5, NULL, LB_WRITE_APPEND, err, sizeof err);
  CHECK(s == NULL);
  CHECK(strstr(err, "PyAirbyteNameNormalizationError") == err);
  CHECK(strstr(err, "stream 'Users'") != NULL);
  CHECK(strstr(err, "stream 'users'") != NULL);
  CHECK(strstr(err, "table 'users'") != NULL);
  CHECK_EQ_INT(lb_cache_table_name(c, "Users", 5, NULL, 0, err, sizeof err), LB_EINVAL);
  CHECK_EQ_STR(table_of(c, "users", 5, NULL), "users");
  /* a NUL byte counts: "a\0b" is not "a", but it is "a_b" */
  s = open_named(c, "a\0b", 3, NULL, LB_WRITE_APPEND, err, sizeof err);
  CHECK(s != NULL);
  if (s) {
    size_t n;
    const char *name = lb_cache_stream_name(s, &n);
    CHECK_EQ_INT(n, 3);
    CHECK(memcmp(name, "a\0b", 3) == 0);
    CHECK_EQ_STR(lb_cache_stream_table(s), "a_b");
    lb_cache_stream_close(s);
  }
  CHECK_EQ_STR(table_of(c, "a", 1, NULL), "a");
  CHECK_EQ_STR(table_of(c, "a\0b", 3, NULL), "a_b");
  CHECK_EQ_INT(qint(DB, "SELECT length(CAST(stream_name AS BLOB)) FROM _airbyte_streams"
                        " WHERE table_name = 'a_b'"), 3);
  s = open_named(c, "a_b", 3, NULL, LB_WRITE_APPEND, err, sizeof err);
  CHECK(s == NULL);
  CHECK(strstr(err, "stream 'a\\u0000b'") != NULL);
  /* a name taken by an index or a view is refused too */
  CHECK_EQ_INT(sqlite3_exec(DB, "CREATE VIEW v_users AS SELECT 1", NULL, NULL, NULL), SQLITE_OK);
  s = open_named(c, "V-Users", 7, NULL, LB_WRITE_APPEND, err, sizeof err);
  CHECK(s == NULL);
  CHECK(strstr(err, "an existing view") != NULL);
  /* a table nobody claims is adopted, as PyAirbyte would write into it */
  CHECK_EQ_INT(sqlite3_exec(DB, "CREATE TABLE mine (id BIGINT)", NULL, NULL, NULL), SQLITE_OK);
  s = open_named(c, "Mine", 4, NULL, LB_WRITE_APPEND, err, sizeof err);
  CHECK(s != NULL);
  lb_cache_stream_close(s);
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  lb_cache_close(c);
}

static void t_name_namespaces(void) {
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *s;
  char err[512];
  size_t n;
  int pass;
  if (!c) return;
  for (pass = 0; pass < 2; pass++) {   /* the second time, the rows decide */
    CHECK_EQ_INT(lb_cache_begin(c), 0);
    s = open_named(c, "users", 5, "a", LB_WRITE_MERGE, err, sizeof err);
    CHECK(s != NULL);
    if (s) {
      CHECK_EQ_STR(lb_cache_stream_table(s), "users");
      CHECK_EQ_STR(lb_cache_stream_namespace(s, &n), "a");
      write_json(s, "{\"id\": 1}", 0);
      lb_cache_stream_close(s);
    }
    s = open_named(c, "users", 5, "b", LB_WRITE_MERGE, err, sizeof err);
    CHECK(s != NULL);
    if (s) {
      CHECK_EQ_STR(lb_cache_stream_table(s), "b_users");
      write_json(s, "{\"id\": 2}", 0);
      write_json(s, "{\"id\": 3}", 0);
      lb_cache_stream_close(s);
    }
    CHECK_EQ_INT(lb_cache_commit(c), 0);
  }
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM users"), 1);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM b_users"), 2);
  CHECK_EQ_STR(table_of(c, "users", 5, "a"), "users");
  CHECK_EQ_STR(table_of(c, "users", 5, "b"), "b_users");
  /* no namespace given: ambiguous; a third namespace: its own table */
  CHECK_EQ_INT(lb_cache_table_name(c, "users", 5, NULL, 0, err, sizeof err), LB_EINVAL);
  CHECK(strstr(lb_cache_errmsg(c), "several namespaces") != NULL);
  CHECK_EQ_STR(table_of(c, "users", 5, "c.d"), "c_d_users");
  /* the same name without a namespace cannot be told apart: refused */
  s = open_named(c, "users", 5, NULL, LB_WRITE_APPEND, err, sizeof err);
  CHECK(s == NULL);
  CHECK(strstr(err, "namespace 'a'") != NULL);
  /* a table prefix applies to every table, reserved ones included */
  CHECK_EQ_INT(lb_cache_set_table_prefix(c, "p_"), 0);
  CHECK_EQ_STR(table_of(c, "users", 5, "a"), "p_users");
  CHECK_EQ_INT(lb_cache_set_table_prefix(c, "_airbyte_"), 0);
  CHECK_EQ_STR(table_of(c, "users", 5, NULL), "stream__airbyte_users");
  lb_cache_close(c);
}

/* A file written before the mapping: table_name was prefix + name as given. */
static void t_name_migration(void) {
  const char *path = db_path();
  sqlite3 *db = NULL;
  lb_cache *c;
  lb_cache_stream *s;
  char err[512];
  CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_EQ_INT(sqlite3_exec(db,
    "CREATE TABLE _airbyte_streams (stream_name VARCHAR, source_name VARCHAR,"
    " table_name VARCHAR NOT NULL PRIMARY KEY, catalog_metadata VARCHAR);"
    "INSERT INTO _airbyte_streams VALUES ('Users', 's', 'Users', '{}'), ('users', 's', 'users', '{}'),"
    " ('_airbyte_state', 's', '_airbyte_state', '{}'), ('Orders', 's', 'p_Orders', '{}');"
    "CREATE TABLE users (id BIGINT, _airbyte_raw_id VARCHAR,"
    " _airbyte_extracted_at TIMESTAMP WITH TIME ZONE, _airbyte_meta JSON);"
    "INSERT INTO users VALUES (1, 'r1', NULL, '{}');"
    "CREATE UNIQUE INDEX users_airbyte_pk ON users (id);"
    "CREATE TABLE p_orders (id BIGINT);", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  c = open_cache(path);
  if (!c) return;
  CHECK_EQ_STR(q1(DB, "SELECT group_concat(stream_name || '|' || table_name || '|' || table_prefix"
                      " || '|' || stream_namespace, ' ') FROM (SELECT * FROM _airbyte_streams"
                      " ORDER BY table_name)", NULL), "Orders|p_orders|p_| users|users||");
  CHECK_EQ_STR(table_of(c, "users", 5, NULL), "users");
  CHECK_EQ_INT(lb_cache_table_name(c, "Users", 5, NULL, 0, err, sizeof err), LB_EINVAL);
  CHECK_EQ_INT(lb_cache_set_table_prefix(c, "p_"), 0);
  CHECK_EQ_STR(table_of(c, "Orders", 6, NULL), "p_orders");
  CHECK_EQ_INT(lb_cache_set_table_prefix(c, ""), 0);
  /* the old index name could be a table's: it goes, the new one is ours */
  s = open_named(c, "users", 5, NULL, LB_WRITE_MERGE, err, sizeof err);
  CHECK(s != NULL);
  lb_cache_stream_close(s);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM sqlite_master WHERE name = 'users_airbyte_pk'"), 0);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM sqlite_master WHERE name = '_airbyte_pk_users'"), 1);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM users"), 1);
  lb_cache_close(c);
  /* opening again finds nothing left to migrate */
  c = open_cache(path);
  if (!c) return;
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM _airbyte_streams"), 2);
  lb_cache_close(c);
}

/* --- layout ------------------------------------------------------------------- */

static void t_create_users(void) {
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *s;
  sqlite3_stmt *st;
  const char *expect[][2] = {
    {"id", "BIGINT"}, {"created_at", "VARCHAR"}, {"name", "VARCHAR"}, {"age", "BIGINT"},
    {"height", "VARCHAR"}, {"weight", "BIGINT"}, {"address", "JSON"},
    {"_airbyte_raw_id", "VARCHAR"}, {"_airbyte_extracted_at", "TIMESTAMP WITH TIME ZONE"},
    {"_airbyte_meta", "JSON"}
  };
  int i = 0;
  if (!c) return;
  CHECK_EQ_STR(q1(DB, "PRAGMA journal_mode", NULL), "wal");
  CHECK_EQ_STR(q1(DB, "PRAGMA synchronous", NULL), "1");
  s = open_stream(c, "Users", users_schema, LB_WRITE_APPEND, NULL);
  if (!s) { lb_cache_close(c); return; }
  CHECK_EQ_STR(lb_cache_stream_table(s), "users");
  sqlite3_prepare_v2(DB, "SELECT name, type FROM pragma_table_info('users')", -1, &st, NULL);
  while (sqlite3_step(st) == SQLITE_ROW && i < 10) {
    CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), expect[i][0]);
    CHECK_EQ_STR((const char *)sqlite3_column_text(st, 1), expect[i][1]);
    i++;
  }
  sqlite3_finalize(st);
  CHECK_EQ_INT(i, 10);
  CHECK_EQ_STR(q1(DB, "SELECT stream_name || '|' || source_name || '|' || table_name"
                      " FROM _airbyte_streams", NULL), "Users|source-test|users");
  CHECK_EQ_STR(q1(DB, "SELECT json_extract(catalog_metadata, '$.properties.id.type')"
                      " FROM _airbyte_streams", NULL), "integer");
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM sqlite_master WHERE name IN"
                        " ('_airbyte_state', '_airbyte_destination_state', '_airbyte_streams')"), 3);
  CHECK_EQ_INT(write_json(s, "{\"id\": 1, \"name\": \"Reda\", \"age\": 47, \"height\": \"1.55\","
                             " \"created_at\": \"2009-08-12T18:57:58+00:00\", \"weight\": 58}",
                          1669682107441LL), 0);
  CHECK_EQ_INT(lb_cache_stream_rows_written(s), 1);
  CHECK_EQ_STR(q1(DB, "SELECT _airbyte_extracted_at FROM users", NULL), "2022-11-29T00:35:07.441+00:00");
  CHECK_EQ_STR(q1(DB, "SELECT _airbyte_meta FROM users", NULL), "{}");
  CHECK_EQ_STR(q1(DB, "SELECT height || typeof(height) FROM users", NULL), "1.55text");
  CHECK_EQ_STR(q1(DB, "SELECT address FROM users", NULL), "NULL");
  lb_cache_stream_close(s);
  lb_cache_close(c);
}

static void t_types_roundtrip(void) {
  static const char *schema =
    "{\"properties\": {\"i\": {\"type\": [\"null\", \"integer\"]}, \"n\": {\"type\": \"number\"},"
    " \"b\": {\"type\": \"boolean\"}, \"s\": {\"type\": \"string\"}, \"o\": {\"type\": \"object\"},"
    " \"a\": {\"type\": \"array\"}, \"u\": {}, \"m\": {\"type\": [\"string\", \"integer\"]},"
    " \"ai\": {\"type\": \"number\", \"airbyte_type\": \"integer\"},"
    " \"Mixed Case\": {\"type\": \"string\"}}}";
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *s;
  int t = -1;
  if (!c) return;
  s = open_stream(c, "t", schema, LB_WRITE_APPEND, NULL);
  if (!s) { lb_cache_close(c); return; }
  CHECK_EQ_STR(q1(DB, "SELECT group_concat(type, ',') FROM pragma_table_info('t')", NULL),
               "BIGINT,DECIMAL(38,9),BOOLEAN,VARCHAR,JSON,JSON,VARCHAR,VARCHAR,BIGINT,VARCHAR,"
               "VARCHAR,TIMESTAMP WITH TIME ZONE,JSON");
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  /* row 1: limits and plain values */
  CHECK_EQ_INT(write_json(s, "{\"i\": 9223372036854775807, \"n\": 1.5, \"b\": true, \"s\": \"plain\","
                             " \"o\": {\"k\": [1, 2, {\"x\": null}]}, \"a\": [1, \"two\"], \"u\": 5,"
                             " \"m\": 7, \"ai\": 3, \"Mixed Case\": \"mc\"}", 1000), 0);
  /* row 2: int64 min, escapes, false, text spelled numbers */
  CHECK_EQ_INT(write_json(s, "{\"i\": -9223372036854775808, \"n\": -0.25e2, \"b\": false,"
                             " \"s\": \"q\\\"b\\\\s\\/\\u00e9\\ud83d\\ude00\\n\", \"u\": 1.50,"
                             " \"m\": true, \"o\": null}", 2000), 0);
  /* row 3: too big for int64, huge and integral floats, missing columns */
  CHECK_EQ_INT(write_json(s, "{\"i\": 123456789012345678901234567890, \"n\": 1e400, \"ai\": 2.0,"
                             " \"u\": -98765432109876543210}", 3000), 0);
  /* row 4: keys not in the schema, keys that normalize to a column, escaped keys,
  ** a key repeated, whitespace everywhere */
  CHECK_EQ_INT(write_json(s, " { \"extra\" : 1 , \"S\" : \"via normalize\" , \"mixed_case\" : \"norm\","
                             " \"\\u0069\" : 42 , \"b\" : true , \"b\" : false , \"n\" : 10 } ", 4000), 0);
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  CHECK_EQ_INT(lb_cache_stream_rows_written(s), 4);

  CHECK_EQ_STR(q1(DB, "SELECT i FROM t WHERE rowid = 1", &t), "9223372036854775807");
  CHECK_EQ_INT(t, SQLITE_INTEGER);
  CHECK_EQ_STR(q1(DB, "SELECT n FROM t WHERE rowid = 1", &t), "1.5");
  CHECK_EQ_INT(t, SQLITE_FLOAT);
  CHECK_EQ_STR(q1(DB, "SELECT b FROM t WHERE rowid = 1", &t), "1");
  CHECK_EQ_INT(t, SQLITE_INTEGER);
  CHECK_EQ_STR(q1(DB, "SELECT s FROM t WHERE rowid = 1", NULL), "plain");
  CHECK_EQ_STR(q1(DB, "SELECT o FROM t WHERE rowid = 1", &t), "{\"k\": [1, 2, {\"x\": null}]}");
  CHECK_EQ_INT(t, SQLITE_TEXT);
  CHECK_EQ_STR(q1(DB, "SELECT a FROM t WHERE rowid = 1", NULL), "[1, \"two\"]");
  CHECK_EQ_STR(q1(DB, "SELECT u FROM t WHERE rowid = 1", &t), "5");      /* VARCHAR: JSON text */
  CHECK_EQ_INT(t, SQLITE_TEXT);
  CHECK_EQ_STR(q1(DB, "SELECT m FROM t WHERE rowid = 1", &t), "7");
  CHECK_EQ_INT(t, SQLITE_TEXT);
  CHECK_EQ_STR(q1(DB, "SELECT ai FROM t WHERE rowid = 1", &t), "3");
  CHECK_EQ_INT(t, SQLITE_INTEGER);
  CHECK_EQ_STR(q1(DB, "SELECT mixed_case FROM t WHERE rowid = 1", NULL), "mc");

  CHECK_EQ_STR(q1(DB, "SELECT i FROM t WHERE rowid = 2", &t), "-9223372036854775808");
  CHECK_EQ_INT(t, SQLITE_INTEGER);
  /* DECIMAL has NUMERIC affinity: an integral float is stored as an integer */
  CHECK_EQ_STR(q1(DB, "SELECT n FROM t WHERE rowid = 2", &t), "-25");
  CHECK_EQ_INT(t, SQLITE_INTEGER);
  CHECK_EQ_STR(q1(DB, "SELECT b FROM t WHERE rowid = 2", NULL), "0");
  CHECK_EQ_STR(q1(DB, "SELECT s FROM t WHERE rowid = 2", NULL),
               "q\"b\\s/\xc3\xa9\xf0\x9f\x98\x80\n");
  CHECK_EQ_STR(q1(DB, "SELECT u FROM t WHERE rowid = 2", NULL), "1.50");  /* spelling kept */
  CHECK_EQ_STR(q1(DB, "SELECT m FROM t WHERE rowid = 2", NULL), "true");
  CHECK_EQ_STR(q1(DB, "SELECT o FROM t WHERE rowid = 2", NULL), "NULL");
  CHECK_EQ_STR(q1(DB, "SELECT a FROM t WHERE rowid = 2", NULL), "NULL");  /* missing */

  CHECK_EQ_STR(q1(DB, "SELECT i FROM t WHERE rowid = 3", &t), "123456789012345678901234567890");
  CHECK_EQ_INT(t, SQLITE_BLOB);                  /* every digit kept */
  CHECK_EQ_STR(q1(DB, "SELECT n FROM t WHERE rowid = 3", &t), "Inf");
  CHECK_EQ_INT(t, SQLITE_FLOAT);
  CHECK_EQ_STR(q1(DB, "SELECT ai FROM t WHERE rowid = 3", &t), "2");       /* 2.0 cast to BIGINT */
  CHECK_EQ_INT(t, SQLITE_INTEGER);
  CHECK_EQ_STR(q1(DB, "SELECT u FROM t WHERE rowid = 3", &t), "-98765432109876543210");
  CHECK_EQ_INT(t, SQLITE_TEXT);
  CHECK_EQ_STR(q1(DB, "SELECT b FROM t WHERE rowid = 3", NULL), "NULL");

  CHECK_EQ_STR(q1(DB, "SELECT s FROM t WHERE rowid = 4", NULL), "via normalize");
  CHECK_EQ_STR(q1(DB, "SELECT mixed_case FROM t WHERE rowid = 4", NULL), "norm");
  CHECK_EQ_STR(q1(DB, "SELECT i FROM t WHERE rowid = 4", NULL), "42");
  CHECK_EQ_STR(q1(DB, "SELECT b FROM t WHERE rowid = 4", NULL), "0");      /* last duplicate wins */
  CHECK_EQ_STR(q1(DB, "SELECT n FROM t WHERE rowid = 4", &t), "10");
  CHECK_EQ_INT(t, SQLITE_INTEGER);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM pragma_table_info('t') WHERE name = 'extra'"), 0);
  lb_cache_stream_close(s);
  lb_cache_close(c);
}

static void t_bad_input(void) {
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *s;
  char err[256];
  lb_jval v;
  const char *const pk[] = {"nope", NULL};
  if (!c) return;
  s = lb_cache_stream_open(c, "src", "x", "{not json", 9, LB_WRITE_APPEND, NULL, err, sizeof err);
  CHECK(s == NULL);
  CHECK(strstr(err, "invalid JSON schema") != NULL);
  s = lb_cache_stream_open(c, "src", "x", "{}", 2, LB_WRITE_MERGE, NULL, err, sizeof err);
  CHECK(s == NULL);
  CHECK(strstr(err, "Cannot use merge strategy") != NULL);
  s = lb_cache_stream_open(c, "src", "x", users_schema, strlen(users_schema), LB_WRITE_MERGE,
                           pk, err, sizeof err);
  CHECK(s == NULL);
  CHECK(strstr(err, "primary key 'nope'") != NULL);
  s = lb_cache_stream_open(c, "src", "--", "{}", 2, LB_WRITE_APPEND, NULL, err, sizeof err);
  CHECK(s == NULL);
  CHECK(strstr(err, "PyAirbyteNameNormalizationError") != NULL);
  s = lb_cache_stream_open(c, "src", "x", "{\"properties\": {\"??\": {}}}", 25, LB_WRITE_APPEND,
                           NULL, err, sizeof err);
  CHECK(s == NULL);
  s = open_stream(c, "x", "{}", LB_WRITE_APPEND, NULL);   /* no properties: internal columns only */
  if (s) {
    CHECK_EQ_INT(lb_jskim_validate("[1]", 3, &v, NULL), 0);
    CHECK_EQ_INT(lb_cache_stream_write(s, &v, 0, NULL), LB_EINVAL);
    CHECK_EQ_INT(write_json(s, "{\"a\": 1}", 0), 0);
    CHECK_EQ_INT(qint(lb_cache_db(c), "SELECT count(*) FROM x"), 1);
    lb_cache_stream_close(s);
  }
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  CHECK_EQ_INT(lb_cache_begin(c), LB_EINVAL);
  CHECK(lb_cache_in_transaction(c));
  CHECK_EQ_INT(lb_cache_rollback(c), 0);
  CHECK_EQ_INT(lb_cache_commit(c), LB_EINVAL);
  CHECK_EQ_INT(lb_cache_put_state(c, "src", "x", "{bad", 4), LB_EINVAL);
  lb_cache_close(c);
  CHECK(lb_cache_sqlite_open("/nonexistent-dir/x/y.sqlite", &c, err, sizeof err) < 0);
  CHECK(c == NULL);
  CHECK(strstr(err, "cannot open") != NULL);
}

/* --- schema evolution ------------------------------------------------------------ */

static void t_schema_grows(void) {
  const char *path = db_path();
  static const char *v1 = "{\"properties\": {\"id\": {\"type\": \"integer\"}, \"a\": {\"type\": \"string\"}}}";
  static const char *v2 = "{\"properties\": {\"id\": {\"type\": \"integer\"}, \"a\": {\"type\": \"integer\"},"
                          " \"b\": {\"type\": \"boolean\"}, \"c\": {\"type\": \"object\"}}}";
  lb_cache *c = open_cache(path);
  lb_cache_stream *s;
  if (!c) return;
  s = open_stream(c, "evo", v1, LB_WRITE_APPEND, NULL);
  if (s) { write_json(s, "{\"id\": 1, \"a\": \"x\"}", 0); lb_cache_stream_close(s); }
  lb_cache_close(c);
  c = open_cache(path);                   /* a later run, a bigger schema */
  if (!c) return;
  s = open_stream(c, "evo", v2, LB_WRITE_APPEND, NULL);
  if (s) {
    write_json(s, "{\"id\": 2, \"a\": 5, \"b\": true, \"c\": {\"z\": 1}}", 0);
    lb_cache_stream_close(s);
  }
  CHECK_EQ_STR(q1(DB, "SELECT group_concat(name || ':' || type, ',') FROM pragma_table_info('evo')", NULL),
               "id:BIGINT,a:VARCHAR,_airbyte_raw_id:VARCHAR,"
               "_airbyte_extracted_at:TIMESTAMP WITH TIME ZONE,_airbyte_meta:JSON,b:BOOLEAN,c:JSON");
  CHECK_EQ_STR(q1(DB, "SELECT b FROM evo WHERE id = 1", NULL), "NULL");
  CHECK_EQ_STR(q1(DB, "SELECT b || c FROM evo WHERE id = 2", NULL), "1{\"z\": 1}");
  /* the existing VARCHAR column keeps its type: 5 is stored as text */
  CHECK_EQ_STR(q1(DB, "SELECT typeof(a) FROM evo WHERE id = 2", NULL), "text");
  /* a smaller schema later: columns stay, missing ones are NULL */
  s = open_stream(c, "evo", "{\"properties\": {\"id\": {\"type\": \"integer\"}}}", LB_WRITE_APPEND, NULL);
  if (s) { write_json(s, "{\"id\": 3, \"a\": \"dropped\"}", 0); lb_cache_stream_close(s); }
  CHECK_EQ_STR(q1(DB, "SELECT coalesce(a, 'null') FROM evo WHERE id = 3", NULL), "null");
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM evo"), 3);
  lb_cache_close(c);
}

/* --- strategies ---------------------------------------------------------------- */

static const char *kv_schema =
  "{\"properties\": {\"id\": {\"type\": \"integer\"}, \"v\": {\"type\": \"string\"}}}";

static void t_append_merge(void) {
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *s;
  const char *const pk[] = {"ID", NULL};
  if (!c) return;
  s = open_stream(c, "kv", kv_schema, LB_WRITE_APPEND, NULL);
  if (!s) { lb_cache_close(c); return; }
  write_json(s, "{\"id\": 1, \"v\": \"a\"}", 0);
  write_json(s, "{\"id\": 1, \"v\": \"b\"}", 0);
  write_json(s, "{\"id\": 2, \"v\": \"c\"}", 0);
  write_json(s, "{\"v\": \"no key\"}", 0);
  write_json(s, "{\"v\": \"no key either\"}", 0);
  lb_cache_stream_close(s);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM kv"), 5);
  /* merge: duplicates left by append are reduced to the last row first */
  s = open_stream(c, "kv", kv_schema, LB_WRITE_MERGE, pk);
  if (!s) { lb_cache_close(c); return; }
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM kv"), 4);
  CHECK_EQ_STR(q1(DB, "SELECT v FROM kv WHERE id = 1", NULL), "b");
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM sqlite_master WHERE name = '_airbyte_pk_kv'"), 1);
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  write_json(s, "{\"id\": 1, \"v\": \"merged\"}", 0);
  write_json(s, "{\"id\": 3, \"v\": \"new\"}", 0);
  write_json(s, "{\"id\": 3, \"v\": \"newer\"}", 0);
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  CHECK_EQ_INT(lb_cache_stream_rows_written(s), 3);
  lb_cache_stream_close(s);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM kv"), 5);
  CHECK_EQ_STR(q1(DB, "SELECT v FROM kv WHERE id = 1", NULL), "merged");
  CHECK_EQ_STR(q1(DB, "SELECT v FROM kv WHERE id = 3", NULL), "newer");
  CHECK_EQ_STR(q1(DB, "SELECT v FROM kv WHERE id = 2", NULL), "c");
  /* append again: the unique index goes, duplicates are legal again */
  s = open_stream(c, "kv", kv_schema, LB_WRITE_APPEND, NULL);
  if (s) {
    CHECK_EQ_INT(write_json(s, "{\"id\": 1, \"v\": \"dup\"}", 0), 0);
    lb_cache_stream_close(s);
  }
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM kv WHERE id = 1"), 2);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM sqlite_master WHERE name = '_airbyte_pk_kv'"), 0);
  lb_cache_close(c);
}

static void t_merge_composite_pk(void) {
  static const char *schema = "{\"properties\": {\"a\": {\"type\": \"integer\"},"
                              " \"b\": {\"type\": \"string\"}, \"v\": {\"type\": \"integer\"}}}";
  const char *const pk[] = {"a", "b", NULL};
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *s;
  if (!c) return;
  s = open_stream(c, "cpk", schema, LB_WRITE_MERGE, pk);
  if (s) {
    write_json(s, "{\"a\": 1, \"b\": \"x\", \"v\": 1}", 0);
    write_json(s, "{\"a\": 1, \"b\": \"y\", \"v\": 2}", 0);
    write_json(s, "{\"b\": \"x\", \"a\": 1, \"v\": 3}", 0);
    lb_cache_stream_close(s);
  }
  CHECK_EQ_INT(qint(lb_cache_db(c), "SELECT count(*) FROM cpk"), 2);
  CHECK_EQ_INT(qint(lb_cache_db(c), "SELECT v FROM cpk WHERE a = 1 AND b = 'x'"), 3);
  lb_cache_close(c);
}

static void t_replace(void) {
  const char *path = db_path();
  lb_cache *c = open_cache(path);
  lb_cache_stream *s;
  sqlite3 *reader = NULL;
  char err[256];
  if (!c) return;
  s = open_stream(c, "rp", kv_schema, LB_WRITE_APPEND, NULL);
  if (!s) { lb_cache_close(c); return; }
  write_json(s, "{\"id\": 1, \"v\": \"old1\"}", 0);
  write_json(s, "{\"id\": 2, \"v\": \"old2\"}", 0);
  lb_cache_stream_close(s);
  CHECK_EQ_INT(sqlite3_open_v2(path, &reader, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);

  /* replace, then abort: the old table stays */
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  s = open_stream(c, "rp", kv_schema, LB_WRITE_REPLACE, NULL);
  if (!s) { lb_cache_close(c); sqlite3_close(reader); return; }
  write_json(s, "{\"id\": 9, \"v\": \"new\"}", 0);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM rp"), 2);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM _airbyte_replace_rp"), 1);
  CHECK_EQ_INT(lb_cache_stream_abort(s, err, sizeof err), 0);
  lb_cache_stream_close(s);
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM rp"), 2);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM sqlite_master WHERE name = '_airbyte_replace_rp'"), 0);

  /* replace for real: readers see the old rows until the commit after finish */
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  s = open_stream(c, "rp", kv_schema, LB_WRITE_REPLACE, NULL);
  if (!s) { lb_cache_close(c); sqlite3_close(reader); return; }
  write_json(s, "{\"id\": 10, \"v\": \"n1\"}", 0);
  write_json(s, "{\"id\": 11, \"v\": \"n2\"}", 0);
  write_json(s, "{\"id\": 12, \"v\": \"n3\"}", 0);
  CHECK_EQ_INT(qint(reader, "SELECT count(*) FROM rp"), 2);
  CHECK_EQ_INT(lb_cache_stream_finish(s, err, sizeof err), 0);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM rp"), 3);         /* the writer sees the swap */
  CHECK_EQ_INT(qint(reader, "SELECT count(*) FROM rp"), 2);     /* others do not, yet */
  CHECK_EQ_STR(q1(reader, "SELECT group_concat(v) FROM rp", NULL), "old1,old2");
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  CHECK_EQ_INT(qint(reader, "SELECT count(*) FROM rp"), 3);
  CHECK_EQ_STR(q1(reader, "SELECT group_concat(v) FROM rp", NULL), "n1,n2,n3");
  CHECK_EQ_INT(lb_cache_stream_write(s, NULL, 0, NULL), LB_EINVAL);    /* finished */
  lb_cache_stream_close(s);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%replace%'"), 0);

  /* a rollback after finish undoes the swap too */
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  s = open_stream(c, "rp", kv_schema, LB_WRITE_REPLACE, NULL);
  if (s) {
    write_json(s, "{\"id\": 20, \"v\": \"gone\"}", 0);
    CHECK_EQ_INT(lb_cache_stream_finish(s, err, sizeof err), 0);
    lb_cache_stream_close(s);
  }
  CHECK_EQ_INT(lb_cache_rollback(c), 0);
  CHECK_EQ_STR(q1(DB, "SELECT group_concat(v) FROM rp", NULL), "n1,n2,n3");

  /* a shadow left by a crashed run is dropped by the next replace */
  CHECK_EQ_INT(sqlite3_exec(DB, "CREATE TABLE _airbyte_replace_rp (junk)", NULL, NULL, NULL), SQLITE_OK);
  s = open_stream(c, "rp", kv_schema, LB_WRITE_REPLACE, NULL);
  if (s) {
    CHECK_EQ_INT(write_json(s, "{\"id\": 30, \"v\": \"fresh\"}", 0), 0);
    CHECK_EQ_INT(lb_cache_stream_finish(s, err, sizeof err), 0);
    lb_cache_stream_close(s);
  }
  CHECK_EQ_STR(q1(DB, "SELECT group_concat(v) FROM rp", NULL), "fresh");
  /* a replace of a stream that never had a table */
  s = open_stream(c, "fresh_stream", kv_schema, LB_WRITE_REPLACE, NULL);
  if (s) {
    write_json(s, "{\"id\": 1}", 0);
    CHECK_EQ_INT(lb_cache_stream_finish(s, err, sizeof err), 0);
    lb_cache_stream_close(s);
  }
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM fresh_stream"), 1);
  sqlite3_close(reader);
  lb_cache_close(c);
}

static void t_close_with_open_streams(void) {
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *a, *b;
  if (!c) return;
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  a = open_stream(c, "a", kv_schema, LB_WRITE_APPEND, NULL);
  b = open_stream(c, "b", kv_schema, LB_WRITE_REPLACE, NULL);
  if (a) write_json(a, "{\"id\": 1}", 0);
  if (b) write_json(b, "{\"id\": 1}", 0);
  lb_cache_close(c);            /* closes both streams, rolls back */
}

/* --- state ----------------------------------------------------------------------- */

typedef struct collect { int n; char names[8][64], ns[8][64]; char json[8][256]; } collect;

static int collect_cb(void *ud, const char *stream, const char *ns, const char *json, size_t len) {
  collect *cl = ud;
  if (cl->n < 8) {
    snprintf(cl->names[cl->n], sizeof cl->names[0], "%s", stream);
    snprintf(cl->ns[cl->n], sizeof cl->ns[0], "%s", ns);
    snprintf(cl->json[cl->n], sizeof cl->json[0], "%.*s", (int)len, json);
  }
  cl->n++;
  return 0;
}

static int stop_cb(void *ud, const char *stream, const char *ns, const char *json, size_t len) {
  (void)ud; (void)stream; (void)ns; (void)json; (void)len;
  return 7;
}

static void t_state(void) {
  lb_cache *c = open_cache(db_path());
  collect cl;
  const char *s1 = "{\"type\": \"STREAM\", \"stream\": {\"stream_descriptor\": {\"name\": \"users\"},"
                   " \"stream_state\": {\"updated_at\": 1}}}";
  const char *s2 = "{\"type\": \"STREAM\", \"stream\": {\"stream_descriptor\": {\"name\": \"users\"},"
                   " \"stream_state\": {\"updated_at\": 2}}}";
  const char *p1 = "{\"type\": \"STREAM\", \"stream\": {\"stream_descriptor\": {\"name\": \"products\"},"
                   " \"stream_state\": {\"id\": 5}}}";
  const char *g = "{\"type\": \"GLOBAL\", \"global\": {\"shared_state\": {\"lsn\": 9}}}";
  const char *leg = "{\"data\": {\"users\": 1}}";
  if (!c) return;
  CHECK_EQ_INT(lb_cache_put_state(c, "source-faker", "users", s1, strlen(s1)), 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "source-faker", "users", s2, strlen(s2)), 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "source-faker", "products", s2, strlen(s2)), LB_EINVAL);  /* not its stream */
  CHECK_EQ_INT(lb_cache_put_state(c, "source-faker", "", p1, strlen(p1)), 0);   /* name from the message */
  CHECK_EQ_INT(lb_cache_put_state(c, "source-faker", NULL, g, strlen(g)), 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "source-faker", "", leg, strlen(leg)), 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "source-other", "users", s1, strlen(s1)), 0);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM _airbyte_state"), 5);
  CHECK_EQ_STR(q1(DB, "SELECT table_name FROM _airbyte_state WHERE stream_name = '_GLOBAL'", NULL), "_GLOBAL");
  CHECK(strncmp(q1(DB, "SELECT last_updated FROM _airbyte_state LIMIT 1", NULL), "20", 2) == 0);
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_states(c, "source-faker", collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 4);
  CHECK_EQ_STR(cl.names[0], "_GLOBAL");
  CHECK_EQ_STR(cl.names[1], "_LEGACY");
  CHECK_EQ_STR(cl.names[2], "products");
  CHECK_EQ_STR(cl.names[3], "users");
  CHECK_EQ_STR(cl.json[3], s2);                  /* the last one wins */
  CHECK_EQ_INT(lb_cache_get_states(c, "source-faker", stop_cb, NULL), 7);
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_states(c, "nobody", collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 0);

  /* a table prefix isolates state, as in PyAirbyte */
  CHECK_EQ_INT(lb_cache_set_table_prefix(c, "pre_"), 0);
  CHECK_EQ_STR(lb_cache_table_prefix(c), "pre_");
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_states(c, "source-faker", collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "source-faker", "users", s1, strlen(s1)), 0);
  CHECK_EQ_STR(q1(DB, "SELECT table_name FROM _airbyte_state WHERE table_name LIKE 'pre%'", NULL), "pre_users");
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_states(c, "source-faker", collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 1);
  CHECK_EQ_INT(lb_cache_set_table_prefix(c, NULL), 0);

  /* destination state: keyed by identity (name + config hash) */
  CHECK_EQ_INT(lb_cache_put_destination_state(c, "destination-duckdb", "h1", "source-faker", "users", s1, strlen(s1)), 0);
  CHECK_EQ_INT(lb_cache_put_destination_state(c, "destination-duckdb", "h1", "source-faker", NULL, s2, strlen(s2)), 0);
  CHECK_EQ_INT(lb_cache_put_destination_state(c, "destination-duckdb", "h1", "source-faker", NULL, g, strlen(g)), 0);
  CHECK_EQ_INT(lb_cache_put_destination_state(c, "destination-duckdb", "h1", "source-x", "users", s1, strlen(s1)), 0);
  CHECK_EQ_INT(lb_cache_put_destination_state(c, "destination-duckdb", "h2", "source-faker", "users", s1, strlen(s1)), 0);
  CHECK_EQ_INT(lb_cache_put_destination_state(c, "destination-csv", NULL, "source-faker", "users", s1, strlen(s1)), 0);
  CHECK_EQ_INT(lb_cache_put_destination_state(c, "destination-csv", NULL, "source-faker", "products", s1, strlen(s1)), LB_EINVAL);
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_destination_states(c, "destination-duckdb", "h1", "source-faker", collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 2);
  CHECK_EQ_STR(cl.names[0], "_GLOBAL");
  CHECK_EQ_STR(cl.json[1], s2);
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_destination_states(c, "destination-duckdb", "h2", "source-faker", collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 1);
  CHECK_EQ_STR(cl.json[0], s1);                  /* the other identity's own */
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_destination_states(c, "destination-duckdb", "h1", NULL, collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 3);
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_destination_states(c, "destination-duckdb", NULL, NULL, collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 4);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM _airbyte_destination_state"), 5);

  /* state written inside a transaction that rolls back is gone */
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "source-faker", "users", s1, strlen(s1)), 0);
  CHECK_EQ_INT(lb_cache_rollback(c), 0);
  CHECK_EQ_STR(q1(DB, "SELECT state_json FROM _airbyte_state WHERE source_name = 'source-faker'"
                      " AND stream_name = 'users' AND table_name = 'users'", NULL), s2);
  lb_cache_close(c);
}

/* --- ids and timestamps ------------------------------------------------------------ */

static void t_uuid7(void) {
  lb_cache *c = open_cache(":memory:");
  char prev[37], cur[37];
  int i, ok_order = 1, ok_shape = 1;
  if (!c) return;
  lb_cache_uuid7(c, prev);
  for (i = 0; i < 20000; i++) {
    lb_cache_uuid7(c, cur);
    if (strcmp(prev, cur) >= 0) ok_order = 0;
    if (strlen(cur) != 36 || cur[8] != '-' || cur[13] != '-' || cur[18] != '-' || cur[23] != '-' ||
        cur[14] != '7' || !strchr("89ab", cur[19]))
      ok_shape = 0;
    memcpy(prev, cur, sizeof cur);
  }
  CHECK(ok_order);
  CHECK(ok_shape);
  lb_cache_close(c);
}

static void t_uuid7_rows(void) {
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *s;
  int i;
  if (!c) return;
  s = open_stream(c, "u", kv_schema, LB_WRITE_APPEND, NULL);
  if (!s) { lb_cache_close(c); return; }
  lb_cache_begin(c);
  for (i = 0; i < 3000; i++) write_json(s, "{\"id\": 1}", 0);
  lb_cache_commit(c);
  lb_cache_stream_close(s);
  /* raw ids sort like insertion order, and the time prefix is now-ish */
  CHECK_EQ_INT(qint(lb_cache_db(c), "SELECT count(*) FROM (SELECT rowid, row_number() OVER "
                                    "(ORDER BY _airbyte_raw_id) AS rn FROM u) WHERE rowid != rn"), 0);
  CHECK_EQ_INT(qint(lb_cache_db(c), "SELECT count(DISTINCT _airbyte_raw_id) FROM u"), 3000);
  lb_cache_close(c);
}

static void t_extracted_at(void) {
  lb_cache *c = open_cache(":memory:");
  lb_cache_stream *s;
  static const struct { long long ms; const char *text; } cases[] = {
    {1669682107441LL, "2022-11-29T00:35:07.441+00:00"},
    {1669682107999LL, "2022-11-29T00:35:07.999+00:00"},   /* same second: ms patched */
    {1669682108000LL, "2022-11-29T00:35:08.000+00:00"},
    {0, "1970-01-01T00:00:00.000+00:00"},
    {-1, "1969-12-31T23:59:59.999+00:00"},
    {951782400123LL, "2000-02-29T00:00:00.123+00:00"},
    {4102444799000LL, "2099-12-31T23:59:59.000+00:00"},
    /* outside years 0001-9999: the nearest end (no overflow on the way) */
    {253402300799999LL, "9999-12-31T23:59:59.999+00:00"},
    {253402300800000LL, "9999-12-31T23:59:59.999+00:00"},
    {-62135596800000LL, "0001-01-01T00:00:00.000+00:00"},
    {-62135596800001LL, "0001-01-01T00:00:00.000+00:00"},
    {9223372036854775807LL, "9999-12-31T23:59:59.999+00:00"},
    {-9223372036854775807LL - 1, "0001-01-01T00:00:00.000+00:00"},
  };
  size_t i;
  char sql[128];
  if (!c) return;
  s = open_stream(c, "ts", kv_schema, LB_WRITE_APPEND, NULL);
  if (!s) { lb_cache_close(c); return; }
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) write_json(s, "{}", cases[i].ms);
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(sql, sizeof sql, "SELECT _airbyte_extracted_at FROM ts WHERE rowid = %d", (int)i + 1);
    CHECK_EQ_STR(q1(DB, sql, NULL), cases[i].text);
  }
  /* SQLite's own date functions understand the format */
  CHECK_EQ_STR(q1(DB, "SELECT strftime('%s', _airbyte_extracted_at) FROM ts WHERE rowid = 1", NULL),
               "1669682107");
  lb_cache_stream_close(s);
  lb_cache_close(c);
}

static void t_meta(void) {
  lb_cache *c = open_cache(":memory:");
  lb_cache_stream *s;
  lb_jval v;
  if (!c) return;
  s = open_stream(c, "m", kv_schema, LB_WRITE_APPEND, NULL);
  if (!s) { lb_cache_close(c); return; }
  lb_jskim_validate("{\"id\": 1}", 9, &v, NULL);
  CHECK_EQ_INT(lb_cache_stream_write(s, &v, 0, "{\"changes\": []}"), 0);
  CHECK_EQ_STR(q1(lb_cache_db(c), "SELECT _airbyte_meta FROM m", NULL), "{\"changes\": []}");
  lb_cache_stream_close(s);
  lb_cache_close(c);
}

/* Records much bigger than the first ones grow the decoding arena. */
static void t_big_records(void) {
  lb_cache *c = open_cache(":memory:");
  lb_cache_stream *s;
  char *json;
  size_t n = 200000, i, k = 0;
  if (!c) return;
  s = open_stream(c, "big", kv_schema, LB_WRITE_APPEND, NULL);
  json = malloc(n / 6 * 8 + 64);
  if (!s || !json) { free(json); lb_cache_close(c); return; }
  write_json(s, "{\"v\": \"small\\n\"}", 0);
  k += (size_t)sprintf(json, "{\"id\": 5, \"v\": \"");
  for (i = 0; i < n / 6; i++) { memcpy(json + k, "ab\\u00e9", 8); k += 8; }
  k += (size_t)sprintf(json + k, "\"}");
  CHECK_EQ_INT(write_json(s, json, 0), 0);
  CHECK_EQ_INT(qint(lb_cache_db(c), "SELECT length(v) FROM big WHERE id = 5"), (long long)(n / 6) * 3);
  free(json);
  lb_cache_stream_close(s);
  lb_cache_close(c);
}

/* Async mode: rows queue up until something needs them; an insert that
** fails is reported by a later call, and commit refuses. */
static void t_async_errors(void) {
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *s;
  char err[256];
  const char *st = "{\"type\": \"STREAM\", \"stream\": {\"stream_descriptor\": {\"name\": \"kv\"}}}";
  int i, rc = 0;
  if (!c) return;
  s = open_stream(c, "kv", kv_schema, LB_WRITE_APPEND, NULL);
  if (!s) { lb_cache_close(c); return; }
  /* a trigger makes the 5th insert fail, in the writer thread when async */
  CHECK_EQ_INT(sqlite3_exec(DB, "CREATE TRIGGER boom BEFORE INSERT ON kv WHEN NEW.id = 5"
                                " BEGIN SELECT RAISE(ABORT, 'id 5 refused'); END", NULL, NULL, NULL), SQLITE_OK);
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  for (i = 1; i <= 3000 && rc == 0; i++) {
    char json[64];
    snprintf(json, sizeof json, "{\"id\": %d}", i);
    rc = write_json(s, json, 0);
  }
  if (async_mode) {
    /* the writes were queued; a later write may or may not have heard of
    ** the failure yet, a sync always has */
    CHECK(rc == 0 || rc == LB_CACHE_ESQL);
    CHECK(i > 6);
    CHECK_EQ_INT(lb_cache_sync(c), LB_CACHE_ESQL);
    CHECK_EQ_INT(write_json(s, "{\"id\": 7000}", 0), LB_CACHE_ESQL);
    CHECK_EQ_INT(lb_cache_put_state(c, "src", "kv", st, strlen(st)), LB_CACHE_ESQL);
    CHECK_EQ_INT(lb_cache_commit(c), LB_CACHE_ESQL);
    CHECK(strstr(lb_cache_errmsg(c), "id 5 refused") != NULL);
    CHECK(lb_cache_in_transaction(c));
  } else {
    CHECK_EQ_INT(rc, LB_CACHE_ESQL);          /* right away */
    CHECK_EQ_INT(i, 6);
    CHECK(strstr(lb_cache_errmsg(c), "id 5 refused") != NULL);
  }
  CHECK_EQ_INT(lb_cache_rollback(c), 0);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM kv"), 0);
  /* after the rollback the cache works again */
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\": 1}", 0), 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "src", "kv", st, strlen(st)), 0);
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM kv"), 1);
  CHECK_EQ_INT(lb_cache_stream_finish(s, err, sizeof err), 0);
  lb_cache_stream_close(s);
  lb_cache_close(c);
}

/* Many records through the batches: all arrive, in order, after a sync. */
static void t_async_volume(void) {
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *a, *b;
  int i;
  if (!c) return;
  a = open_stream(c, "va", kv_schema, LB_WRITE_APPEND, NULL);
  b = open_stream(c, "vb", kv_schema, LB_WRITE_MERGE, (const char *const[]){"id", NULL});
  if (!a || !b) { lb_cache_close(c); return; }
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  for (i = 0; i < 20000; i++) {
    char json[96];
    snprintf(json, sizeof json, "{\"id\": %d, \"v\": \"r\\u00e9%d\"}", i, i);
    if (write_json(i % 2 ? a : b, json, 1000 + i) != 0) break;
    if (i % 2 == 0) write_json(b, "{\"id\": 0, \"v\": \"again\"}", 0);
  }
  CHECK_EQ_INT(lb_cache_sync(c), 0);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM va"), 10000);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM vb"), 10000);
  CHECK_EQ_STR(q1(DB, "SELECT v FROM vb WHERE id = 0", NULL), "again");
  CHECK_EQ_STR(q1(DB, "SELECT v FROM va WHERE id = 19999", NULL), "r\xc3\xa9" "19999");
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM (SELECT rowid, row_number() OVER "
                        "(ORDER BY _airbyte_raw_id) AS rn FROM va) WHERE rowid != rn"), 0);
  CHECK_EQ_INT(lb_cache_stream_rows_written(a), 10000);
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  lb_cache_stream_close(a);
  CHECK_EQ_INT(write_json(b, "{\"id\": 1}", 0), 0);   /* queued, then flushed by close */
  lb_cache_close(c);
}

/* Runs of rows of one stream go in with multi-row statements: merge keeps
** the last row per key, also inside one statement. */
static void t_multi_row_merge(void) {
  lb_cache *c = open_cache(db_path());
  lb_cache_stream *s;
  int i;
  if (!c) return;
  s = open_stream(c, "mm", kv_schema, LB_WRITE_MERGE, (const char *const[]){"id", NULL});
  if (!s) { lb_cache_close(c); return; }
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  for (i = 0; i < 5000; i++) {
    char json[64];
    snprintf(json, sizeof json, "{\"id\": %d, \"v\": \"%d\"}", i % 7, i);
    if (write_json(s, json, 0) != 0) break;
  }
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM mm"), 7);
  CHECK_EQ_STR(q1(DB, "SELECT group_concat(v) FROM (SELECT v FROM mm ORDER BY id)", NULL),
               "4998,4999,4993,4994,4995,4996,4997");
  lb_cache_stream_close(s);
  lb_cache_close(c);
}

static void t_switch_to_sync(void) {
  async_mode = 0;
}

static void t_cleanup(void) {
  char cmd[300];
  if (tmpdir[0] == '\0') return;
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  CHECK_EQ_INT(system(cmd), 0);
}

/* Namespaced STREAM states are states of their own: two streams of one name
** in two namespaces, and out-of-catalog bookkeeping states, are all kept. */
static void t_state_namespaces(void) {
  lb_cache *c = open_cache(db_path());
  collect cl;
  const char *plain = "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"__noop__\"},\"stream_state\":{\"v\":0}}}";
  const char *ns1 = "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"__noop__\",\"namespace\":\"__faros__\"},\"stream_state\":{\"v\":1}}}";
  const char *ns1b = "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"namespace\":\"__faros__\",\"name\":\"__noop__\"},\"stream_state\":{\"v\":2}}}";
  const char *ns2 = "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"__noop__\",\"namespace\":\"other\"},\"stream_state\":{\"v\":3}}}";
  const char *empty_ns = "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"__noop__\",\"namespace\":\"\"},\"stream_state\":{\"v\":4}}}";
  if (!c) return;
  CHECK_EQ_INT(lb_cache_put_state(c, "src", NULL, plain, strlen(plain)), 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "src", NULL, ns1, strlen(ns1)), 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "src", "__noop__", ns1b, strlen(ns1b)), 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "src", NULL, ns2, strlen(ns2)), 0);
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_states(c, "src", collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 3);
  CHECK_EQ_STR(cl.ns[0], "");
  CHECK_EQ_STR(cl.json[0], plain);
  CHECK_EQ_STR(cl.ns[1], "__faros__");
  CHECK_EQ_STR(cl.json[1], ns1b);                /* the last one of that key */
  CHECK_EQ_STR(cl.ns[2], "other");
  /* an empty namespace is no namespace */
  CHECK_EQ_INT(lb_cache_put_state(c, "src", NULL, empty_ns, strlen(empty_ns)), 0);
  CHECK_EQ_INT(qint(DB, "SELECT count(*) FROM _airbyte_state WHERE source_name = 'src'"), 3);
  CHECK_EQ_INT(lb_cache_put_destination_state(c, "d", "h", "src", NULL, ns1, strlen(ns1)), 0);
  CHECK_EQ_INT(lb_cache_put_destination_state(c, "d", "h", "src", NULL, plain, strlen(plain)), 0);
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_destination_states(c, "d", "h", "src", collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 2);
  lb_cache_close(c);
}

/* The ledger: per identity, source and (namespace, stream); never backwards. */
static void t_ledger(void) {
  lb_cache *c = open_cache(db_path());
  lb_cache_delivery a = { "destination-local-json", "hash-a", "src", NULL, "users" };
  lb_cache_delivery b = { "destination-local-json", "hash-b", "src", NULL, "users" };
  lb_cache_delivery ans = { "destination-local-json", "hash-a", "src", "ns", "users" };
  char id[64];
  if (!c) return;
  CHECK_EQ_INT(lb_cache_get_delivered(c, &a, id, sizeof id), 0);
  CHECK_EQ_STR(id, "");
  CHECK_EQ_INT(lb_cache_put_delivered(c, &a, "0190-b"), 0);
  CHECK_EQ_INT(lb_cache_get_delivered(c, &a, id, sizeof id), 1);
  CHECK_EQ_STR(id, "0190-b");
  CHECK_EQ_INT(lb_cache_put_delivered(c, &a, "0190-a"), 0);     /* older: ignored */
  CHECK_EQ_INT(lb_cache_get_delivered(c, &a, id, sizeof id), 1);
  CHECK_EQ_STR(id, "0190-b");
  CHECK_EQ_INT(lb_cache_put_delivered(c, &a, "0190-c"), 0);
  CHECK_EQ_INT(lb_cache_get_delivered(c, &a, id, sizeof id), 1);
  CHECK_EQ_STR(id, "0190-c");
  CHECK_EQ_INT(lb_cache_get_delivered(c, &b, id, sizeof id), 0);   /* another config */
  CHECK_EQ_INT(lb_cache_get_delivered(c, &ans, id, sizeof id), 0); /* another namespace */
  CHECK_EQ_INT(lb_cache_put_delivered(c, &b, ""), LB_EINVAL);
  /* a destination that changed its own config keeps its ledger */
  CHECK_EQ_INT(lb_cache_move_destination(c, "destination-local-json", "hash-a", "hash-c"), 0);
  a.config_hash = "hash-c";
  CHECK_EQ_INT(lb_cache_get_delivered(c, &a, id, sizeof id), 1);
  CHECK_EQ_STR(id, "0190-c");
  a.config_hash = "hash-a";
  CHECK_EQ_INT(lb_cache_get_delivered(c, &a, id, sizeof id), 0);
  lb_cache_close(c);
}

/* A file made before namespaces and identities: its tables are rebuilt with
** the new keys and keep their rows. */
/* Transactions queued for the writer thread never make the caller wait
** for the write lock: with another connection holding it, begin, rows, a
** state and the commit are all handed over at once, and go in, in order,
** once the lock is free. (Async mode only: in sync mode they run at once.) */
static void t_queued_transactions(void) {
  const char *path = db_path();
  lb_cache *c = open_cache(path);
  lb_cache_stream *s;
  sqlite3 *other = NULL;
  const char *st = "{\"type\": \"STREAM\", \"stream\": {\"stream_descriptor\": {\"name\": \"q\"},"
                   " \"stream_state\": {\"id\": 2}}}";
  if (!c) return;
  s = open_stream(c, "q", "{\"properties\": {\"id\": {\"type\": \"integer\"}}}", LB_WRITE_APPEND, NULL);
  CHECK_EQ_INT(sqlite3_open(path, &other), SQLITE_OK);
  CHECK_EQ_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
  CHECK_EQ_INT(lb_cache_begin_queued(c), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\": 1}", 0), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\": 2}", 0), 0);
  CHECK_EQ_INT(lb_cache_commit_queued(c, "source-test", st, strlen(st), 1), 0);
  /* the lock is still taken: nothing could have gone in, and nobody waited */
  CHECK_EQ_INT(qint(other, "SELECT count(*) FROM q"), 0);
  CHECK_EQ_INT(lb_cache_wait_idle(c, uv_hrtime() + 20 * 1000000u), 0);
  CHECK_EQ_INT(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
  CHECK_EQ_INT(lb_cache_wait_idle(c, 0), 1);
  CHECK_EQ_INT(lb_cache_sync(c), 0);
  CHECK_EQ_INT(qint(other, "SELECT count(*) FROM q"), 2);
  CHECK_EQ_STR(q1(other, "SELECT state_json FROM _airbyte_state WHERE stream_name = 'q'", NULL), st);
  CHECK(lb_cache_in_transaction(c));             /* begin_again */
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  CHECK_EQ_INT(lb_cache_commit_queued(c, "source-test", "{", 1, 0), LB_EINVAL);   /* checked here */
  sqlite3_close(other);
  lb_cache_stream_close(s);
  lb_cache_close(c);
}

/* Stream locks: one holder per (source, stream) across connections, the
** refusal names the stream and the holder, other streams never wait, and
** unlock and close give the lock back. */
static void t_stream_locks(void) {
  const char *path = db_path();
  lb_cache *a = open_cache(path), *b = open_cache(path);
  lb_cache_stream_id users = { "users", 5, NULL, 0 }, items = { "items", 5, "shop", 4 };
  char err[600], want[64];
  if (!a || !b) return;
  CHECK_EQ_INT(lb_cache_lock_stream(a, "src", &users, 0, err, sizeof err), 0);
  CHECK_EQ_INT(lb_cache_lock_stream(b, "src", &users, 30, err, sizeof err), LB_CACHE_EBUSY);
  CHECK(strstr(err, "stream 'users' of source 'src'") != NULL);
  snprintf(want, sizeof want, "pid %ld@", (long)getpid());
  CHECK(strstr(err, want) != NULL);
  CHECK(strstr(err, " since 20") != NULL);
  CHECK_EQ_INT(lb_cache_lock_stream(b, "other-src", &users, 0, err, sizeof err), 0);   /* another source */
  CHECK_EQ_INT(lb_cache_lock_stream(b, "src", &items, 0, err, sizeof err), 0);         /* another stream */
  CHECK_EQ_INT(lb_cache_lock_stream(a, "src", &items, 0, err, sizeof err), LB_CACHE_EBUSY);
  CHECK(strstr(err, "stream 'shop.items' of source 'src'") != NULL);
  CHECK_EQ_INT(lb_cache_lock_stream(a, "src", &users, 0, err, sizeof err), LB_CACHE_EBUSY);  /* held here */
  CHECK(strstr(err, "this process") != NULL);
  lb_cache_unlock_stream(a, "src", &users);
  CHECK_EQ_INT(lb_cache_lock_stream(b, "src", &users, 0, err, sizeof err), 0);
  lb_cache_close(b);                             /* gives back all three */
  CHECK_EQ_INT(lb_cache_lock_stream(a, "src", &users, 0, err, sizeof err), 0);
  CHECK_EQ_INT(lb_cache_lock_stream(a, "src", &items, 0, err, sizeof err), 0);
  lb_cache_close(a);
}

static void t_state_migration(void) {
  const char *path = db_path();
  sqlite3 *db;
  lb_cache *c;
  collect cl;
  const char *s1 = "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\"},\"stream_state\":{\"v\":1}}}";
  const char *ns = "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\",\"namespace\":\"n\"},\"stream_state\":{\"v\":2}}}";
  CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_EQ_INT(sqlite3_exec(db,
    "CREATE TABLE _airbyte_state (source_name VARCHAR NOT NULL, stream_name VARCHAR,"
    " table_name VARCHAR NOT NULL, state_json VARCHAR, last_updated TIMESTAMP WITH TIME ZONE,"
    " PRIMARY KEY (source_name, table_name));"
    "INSERT INTO _airbyte_state VALUES ('src', 'users', 'users', '{\"type\":\"STREAM\",\"stream\":"
    "{\"stream_descriptor\":{\"name\":\"users\"},\"stream_state\":{\"v\":1}}}', NULL);"
    "CREATE TABLE _airbyte_destination_state (destination_name VARCHAR NOT NULL,"
    " source_name VARCHAR NOT NULL, stream_name VARCHAR NOT NULL, state_json VARCHAR,"
    " last_updated TIMESTAMP WITH TIME ZONE, PRIMARY KEY (destination_name, source_name, stream_name));"
    "INSERT INTO _airbyte_destination_state VALUES ('d', 'src', 'users', '{}', NULL);"
    "CREATE TABLE _luabyte_destination_progress (destination_name VARCHAR NOT NULL,"
    " source_name VARCHAR NOT NULL, stream_name VARCHAR NOT NULL, last_raw_id VARCHAR NOT NULL,"
    " last_updated TIMESTAMP WITH TIME ZONE, PRIMARY KEY (destination_name, source_name, stream_name));"
    "INSERT INTO _luabyte_destination_progress VALUES ('d', 'src', 'users', 'x', NULL);",
    NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  c = open_cache(path);
  if (!c) return;
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_states(c, "src", collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 1);
  CHECK_EQ_STR(cl.json[0], s1);
  CHECK_EQ_INT(lb_cache_put_state(c, "src", NULL, ns, strlen(ns)), 0);   /* the new key works */
  memset(&cl, 0, sizeof cl);
  CHECK_EQ_INT(lb_cache_get_states(c, "src", collect_cb, &cl), 0);
  CHECK_EQ_INT(cl.n, 2);
  CHECK_EQ_INT(qint(lb_cache_db(c), "SELECT count(*) FROM _airbyte_destination_state"
                                    " WHERE destination_config_hash = ''"), 1);
  CHECK_EQ_INT(qint(lb_cache_db(c), "SELECT count(*) FROM _luabyte_destination_progress"), 1);
  lb_cache_close(c);
  c = open_cache(path);                          /* a second open changes nothing */
  if (!c) return;
  CHECK_EQ_INT(qint(lb_cache_db(c), "SELECT count(*) FROM _airbyte_state"), 2);
  lb_cache_close(c);
}

TEST_LIST {
  {"normalize", t_normalize},
  {"reserved_names", t_reserved_names},
  {"name_collisions", t_name_collisions},
  {"name_namespaces", t_name_namespaces},
  {"name_migration", t_name_migration},
  {"create_users", t_create_users},
  {"types_roundtrip", t_types_roundtrip},
  {"bad_input", t_bad_input},
  {"schema_grows", t_schema_grows},
  {"append_merge", t_append_merge},
  {"merge_composite_pk", t_merge_composite_pk},
  {"replace", t_replace},
  {"close_with_open_streams", t_close_with_open_streams},
  {"state", t_state},
  {"state_namespaces", t_state_namespaces},
  {"ledger", t_ledger},
  {"state_migration", t_state_migration},
  {"uuid7", t_uuid7},
  {"uuid7_rows", t_uuid7_rows},
  {"extracted_at", t_extracted_at},
  {"meta", t_meta},
  {"big_records", t_big_records},
  {"async_errors", t_async_errors},
  {"async_volume", t_async_volume},
  {"multi_row_merge", t_multi_row_merge},
  {"queued_transactions", t_queued_transactions},
  {"stream_locks", t_stream_locks},
  {"switch_to_sync", t_switch_to_sync},
  {"create_users_sync", t_create_users},
  {"types_roundtrip_sync", t_types_roundtrip},
  {"bad_input_sync", t_bad_input},
  {"schema_grows_sync", t_schema_grows},
  {"append_merge_sync", t_append_merge},
  {"merge_composite_pk_sync", t_merge_composite_pk},
  {"replace_sync", t_replace},
  {"close_with_open_streams_sync", t_close_with_open_streams},
  {"state_sync", t_state},
  {"state_namespaces_sync", t_state_namespaces},
  {"ledger_sync", t_ledger},
  {"uuid7_sync", t_uuid7},
  {"uuid7_rows_sync", t_uuid7_rows},
  {"extracted_at_sync", t_extracted_at},
  {"meta_sync", t_meta},
  {"big_records_sync", t_big_records},
  {"async_errors_sync", t_async_errors},
  {"async_volume_sync", t_async_volume},
  {"multi_row_merge_sync", t_multi_row_merge},
  {"cleanup", t_cleanup},
  {NULL, NULL}
};

LBTEST_MAIN
