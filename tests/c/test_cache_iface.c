/*
** test_cache_iface.c - the storage interface (cache.h) beyond writing: the
** read cursor's RECORD lines, ad-hoc queries with typed values,
** introspection, the state rules and the shared name rules
** (cache_names.c), on the SQLite backend; the fallback for a backend
** without queued transactions.
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cache_backend.h"
#include "protocol.h"
#include "jskim.h"
#include "lbtest.h"

static const char *schema =
  "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},"
  "\"name\":{\"type\":\"string\"},\"ok\":{\"type\":\"boolean\"},"
  "\"tags\":{\"type\":\"array\"},\"score\":{\"type\":\"number\"}}}";

static lb_cache *open_mem(void) {
  lb_cache *c = NULL;
  char err[256];
  CHECK_EQ_INT(lb_cache_sqlite_open(":memory:", &c, err, sizeof err), 0);
  return c;
}

static void write_json(lb_cache_stream *s, const char *json, long long ms) {
  lb_jval v;
  CHECK_EQ_INT(lb_jskim_validate(json, strlen(json), &v, NULL), 0);
  CHECK_EQ_INT(lb_cache_stream_write(s, &v, ms, NULL), 0);
}

static lb_cache_stream *users(lb_cache *c) {
  char err[256];
  lb_cache_stream *s = lb_cache_stream_open(c, "src", "users", schema, strlen(schema),
                                            LB_WRITE_APPEND, NULL, err, sizeof err);
  if (!s) fprintf(stderr, "  stream_open: %s\n", err);
  CHECK(s != NULL);
  return s;
}

/* Every line of the cursor, concatenated; the last raw id into last. */
static char *feed(lb_cache *c, const char *after, char *last, size_t cap, int *rows) {
  lb_cache_cursor_spec spec;
  lb_cache_cursor *cur;
  lb_cache_buf out = {NULL, 0, 0};
  const char *id;
  size_t idlen;
  int rc;
  memset(&spec, 0, sizeof spec);
  spec.table = "users";
  spec.stream = "users";
  spec.stream_len = 5;
  spec.after_raw_id = after;
  *rows = 0;
  last[0] = '\0';
  cur = lb_cache_cursor_open(c, &spec);
  CHECK(cur != NULL);
  if (!cur) return NULL;
  while ((rc = lb_cache_cursor_next(cur, &out, &id, &idlen)) > 0) {
    (*rows)++;
    CHECK_EQ_INT(idlen, 36);
    if (idlen < cap) { memcpy(last, id, idlen); last[idlen] = '\0'; }
  }
  CHECK_EQ_INT(rc, 0);
  lb_cache_cursor_close(cur);
  if (lb_cache_buf_reserve(&out, 1) == 0) out.p[out.len] = '\0';
  return out.p;
}

static void test_cursor_lines(void) {
  lb_cache *c = open_mem();
  lb_cache_stream *s = users(c);
  char last[64], none[64];
  char *lines;
  int rows;
  write_json(s, "{\"id\": 1, \"name\": \"a\\\"b\", \"ok\": true, \"tags\": [1, {\"x\": null}],"
                " \"score\": 1.5}", 1669682107441LL);
  write_json(s, "{\"id\": 123456789012345678901234567890, \"ok\": false}", 1000);
  CHECK_EQ_INT(lb_cache_sync(c), 0);
  lines = feed(c, NULL, last, sizeof last, &rows);
  CHECK_EQ_INT(rows, 2);
  CHECK_EQ_STR(lines,
    "{\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"data\":{\"id\":1,\"name\":\"a\\\"b\","
    "\"ok\":true,\"tags\":[1, {\"x\": null}],\"score\":1.5},\"emitted_at\":1669682107441}}\n"
    "{\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"data\":{\"id\":"
    "123456789012345678901234567890,\"name\":null,\"ok\":false,\"tags\":null,\"score\":null},"
    "\"emitted_at\":1000}}\n");
  free(lines);
  /* after the highest id: nothing */
  lines = feed(c, last, none, sizeof none, &rows);
  CHECK_EQ_INT(rows, 0);
  free(lines);
  lb_cache_stream_close(s);
  /* a table that is not there: an error naming the stream */
  {
    lb_cache_cursor_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.table = "missing";
    spec.stream = "gone";
    spec.stream_len = 4;
    CHECK(lb_cache_cursor_open(c, &spec) == NULL);
    CHECK(strstr(lb_cache_errmsg(c), "reading stream 'gone'") != NULL);
    CHECK(lb_cache_cursor_open(c, NULL) == NULL);
  }
  lb_cache_close(c);
}

static void test_cursor_after(void) {
  lb_cache *c = open_mem();
  lb_cache_stream *s = users(c);
  char last[64], last2[64];
  char *lines;
  int rows;
  write_json(s, "{\"id\": 1}", 1);
  CHECK_EQ_INT(lb_cache_sync(c), 0);
  free(feed(c, NULL, last, sizeof last, &rows));
  CHECK_EQ_INT(rows, 1);
  write_json(s, "{\"id\": 2}", 2);
  CHECK_EQ_INT(lb_cache_sync(c), 0);
  lines = feed(c, last, last2, sizeof last2, &rows);
  CHECK_EQ_INT(rows, 1);
  CHECK(lines && strstr(lines, "\"id\":2") != NULL);
  CHECK(strcmp(last2, last) > 0);
  free(lines);
  lb_cache_stream_close(s);
  lb_cache_close(c);
}

static void test_query_values(void) {
  lb_cache *c = open_mem();
  lb_cache_stream *s = users(c);
  lb_cache_query *q;
  const lb_cache_value *row;
  lb_cache_value p[2];
  const char *sql = "SELECT id, name, score, tags, id + 1 AS next FROM users"
                    " WHERE id = ?1 AND name = :name";
  write_json(s, "{\"id\": 7, \"name\": \"x\", \"ok\": true, \"tags\": [], \"score\": 0.25}", 1);
  memset(p, 0, sizeof p);
  p[0].type = LB_VAL_INT;
  p[0].i = 7;
  p[1].type = LB_VAL_TEXT;
  p[1].s = "x";
  p[1].n = 1;
  p[1].name = "name";
  q = lb_cache_query_open(c, sql, strlen(sql), p, 2);
  CHECK(q != NULL);
  if (q) {
    CHECK_EQ_INT(lb_cache_query_ncols(q), 5);
    CHECK_EQ_STR(lb_cache_query_col_name(q, 4), "next");
    CHECK_EQ_INT(lb_cache_query_col_kind(q, 0), LB_COL_INTEGER);
    CHECK_EQ_INT(lb_cache_query_col_kind(q, 1), LB_COL_STRING);
    CHECK_EQ_INT(lb_cache_query_col_kind(q, 2), LB_COL_NUMBER);
    CHECK_EQ_INT(lb_cache_query_col_kind(q, 3), LB_COL_JSON);
    CHECK_EQ_INT(lb_cache_query_col_kind(q, 4), -1);          /* an expression */
    CHECK_EQ_INT(lb_cache_query_next(q, &row), 1);
    CHECK_EQ_INT(row[0].type, LB_VAL_INT);
    CHECK_EQ_INT(row[0].i, 7);
    CHECK_EQ_INT(row[1].type, LB_VAL_TEXT);
    CHECK(row[1].n == 1 && row[1].s[0] == 'x');
    CHECK_EQ_INT(row[2].type, LB_VAL_FLOAT);
    CHECK(row[2].d == 0.25);
    CHECK_EQ_INT(row[4].i, 8);
    CHECK_EQ_INT(lb_cache_query_next(q, &row), 0);
    lb_cache_query_close(q);
  }
  /* failures say what the database said, with the statement */
  CHECK(lb_cache_query_open(c, "SELECT 1; SELECT 2", 18, NULL, 0) == NULL);
  CHECK(strstr(lb_cache_errmsg(c), "one SQL statement") != NULL);
  CHECK(lb_cache_query_open(c, "SELECT ?", 8, NULL, 0) == NULL);
  CHECK(strstr(lb_cache_errmsg(c), "parameters and none were given") != NULL);
  CHECK(lb_cache_query_open(c, "SELECT * FROM nope", 18, p, 0) == NULL);
  CHECK(strstr(lb_cache_errmsg(c), "no such table: nope (in: SELECT * FROM nope)") != NULL);
  {
    const char *two = "CREATE TABLE t (a); INSERT INTO t VALUES (1), (2)";
    CHECK_EQ_INT(lb_cache_exec(c, two, strlen(two)), 0);
  }
  CHECK_EQ_INT(lb_cache_changes(c), 2);
  CHECK_EQ_INT(lb_cache_exec(c, "BROKEN", 6), LB_CACHE_ESQL);
  CHECK(strstr(lb_cache_errmsg(c), "(in: BROKEN)") != NULL);
  lb_cache_stream_close(s);
  lb_cache_close(c);
}

typedef struct seen { int n; char text[512]; } seen;

static int on_col(void *ud, const char *name, int kind, const char *decl) {
  seen *s = ud;
  size_t len = strlen(s->text);
  snprintf(s->text + len, sizeof s->text - len, "%s%s:%d:%s", s->n++ ? "," : "", name, kind, decl);
  return 0;
}

static int on_stream(void *ud, const lb_cache_stream_row *r) {
  seen *s = ud;
  size_t len = strlen(s->text);
  snprintf(s->text + len, sizeof s->text - len, "%s%.*s/%.*s/%s/%s/%d", s->n++ ? "," : "",
           (int)r->name_len, r->name, (int)r->ns_len, r->ns, r->table, r->source_name,
           r->catalog_len == strlen(schema));
  return 0;
}

static void test_introspection(void) {
  lb_cache *c = open_mem();
  lb_cache_stream *s = users(c);
  seen sn;
  CHECK_EQ_STR(lb_cache_kind(c), "sqlite");
  CHECK_EQ_INT(lb_cache_has_table(c, "users"), 1);
  CHECK_EQ_INT(lb_cache_has_table(c, "nope"), 0);
  memset(&sn, 0, sizeof sn);
  CHECK_EQ_INT(lb_cache_columns(c, "users", on_col, &sn), 0);
  CHECK_EQ_STR(sn.text, "id:1:BIGINT,name:0:VARCHAR,ok:3:BOOLEAN,tags:4:JSON,score:2:DECIMAL(38,9),"
                        "_airbyte_raw_id:0:VARCHAR,_airbyte_extracted_at:-1:TIMESTAMP WITH TIME ZONE,"
                        "_airbyte_meta:4:JSON");
  memset(&sn, 0, sizeof sn);
  CHECK_EQ_INT(lb_cache_columns(c, "nope", on_col, &sn), 0);
  CHECK_EQ_INT(sn.n, 0);
  memset(&sn, 0, sizeof sn);
  CHECK_EQ_INT(lb_cache_streams(c, on_stream, &sn), 0);
  CHECK_EQ_STR(sn.text, "users//users/src/1");
  /* a stream whose table was dropped is not listed; another prefix sees none */
  lb_cache_stream_close(s);
  CHECK_EQ_INT(lb_cache_set_table_prefix(c, "p_"), 0);
  memset(&sn, 0, sizeof sn);
  CHECK_EQ_INT(lb_cache_streams(c, on_stream, &sn), 0);
  CHECK_EQ_INT(sn.n, 0);
  CHECK_EQ_INT(lb_cache_set_table_prefix(c, ""), 0);
  CHECK_EQ_INT(lb_cache_exec(c, "DROP TABLE users", 16), 0);
  memset(&sn, 0, sizeof sn);
  CHECK_EQ_INT(lb_cache_streams(c, on_stream, &sn), 0);
  CHECK_EQ_INT(sn.n, 0);
  lb_cache_close(c);
}

static lb_state_disposition disp(const char *msg, int replaced, int any, int failed) {
  lb_jval top, st;
  lb_state_key k;
  CHECK_EQ_INT(lb_jskim_validate(msg, strlen(msg), &top, NULL), 0);
  CHECK(lb_jobj_find(&top, "state", 5, &st));
  lb_state_key_of(&st, &k);
  return lb_cache_state_disposition(&top, &k, replaced, any, failed);
}

static void test_state_rules(void) {
  const char *stream = "{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"stream\":"
                       "{\"stream_descriptor\":{\"name\":\"users\"},\"stream_state\":{}}}}";
  const char *in_ns = "{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"stream\":"
                      "{\"stream_descriptor\":{\"name\":\"users\",\"namespace\":\"n\"}}}}";
  const char *global = "{\"type\":\"STATE\",\"state\":{\"type\":\"GLOBAL\",\"global\":{}}}";
  const char *legacy = "{\"type\":\"STATE\",\"state\":{\"data\":{\"x\":1}}}";
  const char *side = "{\"type\":\"STATE\",\"state\":{\"data\":{}},\"redactedConfig\":{}}";
  const char *logs = "{\"type\":\"STATE\",\"state\":{\"data\":{}},\"logs\":[]}";
  CHECK_EQ_INT(disp(stream, 0, 0, 0), LB_STATE_COMMIT);
  CHECK_EQ_INT(disp(stream, 0, 1, 0), LB_STATE_COMMIT);        /* another stream is replaced */
  CHECK_EQ_INT(disp(stream, 1, 1, 0), LB_STATE_HOLD_STREAM);
  CHECK_EQ_INT(disp(in_ns, 1, 1, 0), LB_STATE_COMMIT);         /* not the replaced stream */
  CHECK_EQ_INT(disp(global, 0, 0, 0), LB_STATE_COMMIT);
  CHECK_EQ_INT(disp(global, 0, 1, 0), LB_STATE_HOLD_GLOBAL);
  CHECK_EQ_INT(disp(legacy, 0, 1, 0), LB_STATE_HOLD_GLOBAL);
  CHECK_EQ_INT(disp(side, 0, 0, 0), LB_STATE_SKIP);
  CHECK_EQ_INT(disp(logs, 0, 0, 0), LB_STATE_SKIP);
  CHECK_EQ_INT(disp(stream, 0, 0, 1), LB_STATE_SKIP);          /* the read failed */
  {
    const char *cases[][2] = {
      { "{\"sourceStats\":{\"recordCount\":3}}", "0" },
      { "{\"sourceStats\":{\"recordCount\":3.0}}", "0" },
      { "{\"sourceStats\":{\"recordCount\":2}}", "2" },
      { "{\"sourceStats\":{}}", "0" },
      { "{\"sourceStats\":{\"recordCount\":\"3\"}}", "0" },
      { "{\"destinationStats\":{\"recordCount\":4}}", "0" },   /* the other field */
    };
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      lb_jval st;
      long long expected = -1;
      CHECK_EQ_INT(lb_jskim_validate(cases[i][0], strlen(cases[i][0]), &st, NULL), 0);
      CHECK_EQ_INT(lb_cache_state_count_mismatch(&st, "sourceStats", 3, &expected),
                   cases[i][1][0] != '0');
      if (cases[i][1][0] != '0') CHECK_EQ_INT(expected, 2);
    }
  }
}

/* The identity of a state (lb_cache_state_identity): its key, and a digest
** of its blob that does not depend on spelling or on what a destination
** adds beside the blob. */
typedef struct ident { int rc; lb_state_key k; lb_jval st; char digest[65]; char name[64], ns[64]; } ident;

static ident identity_of(const char *text) {
  ident r;
  size_t nl, nsl;
  memset(&r, 0, sizeof r);
  r.rc = lb_cache_state_identity(text, strlen(text), &r.k, &r.st, r.digest);
  if (r.rc == 0) CHECK_EQ_INT(lb_state_key_text(&r.k, r.name, sizeof r.name, &nl, r.ns, sizeof r.ns, &nsl), 0);
  return r;
}

static void same_identity(const char *a, const char *b) {
  ident x = identity_of(a), y = identity_of(b);
  CHECK_EQ_INT(x.rc, 0);
  CHECK_EQ_INT(y.rc, 0);
  CHECK_EQ_INT(x.k.type, y.k.type);
  CHECK_EQ_STR(x.name, y.name);
  CHECK_EQ_STR(x.ns, y.ns);
  if (strcmp(x.digest, y.digest) != 0) {
    lbt_failed_checks++;
    fprintf(stderr, "  FAIL not one identity:\n    %s\n    %s\n", a, b);
  }
}

static void test_state_identity(void) {
  const char *sent = "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\","
                     "\"namespace\":\"app\"},\"stream_state\":{\"cursor\":1.0,\"ids\":[3,1]}}}";
  ident x, y;
  /* the state object, or the STATE message that carries it */
  same_identity(sent, "{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":"
                      "{\"name\":\"users\",\"namespace\":\"app\"},\"stream_state\":{\"cursor\":1.0,\"ids\":[3,1]}}}}");
  /* member order, white space, escapes, numbers spelled otherwise */
  same_identity(sent, " { \"stream\" : { \"stream_state\" : { \"ids\" : [ 3 , 1 ] , \"cursor\" : 1 } ,"
                      " \"stream_descriptor\" : { \"namespace\" : \"\\u0061pp\" , \"name\" : \"us\\u0065rs\" } } ,"
                      " \"type\" : \"STREAM\" } ");
  /* what a destination adds beside the blob */
  same_identity(sent, "{\"type\":\"STREAM\",\"id\":7,\"sourceStats\":{\"recordCount\":3.0},"
                      "\"destinationStats\":{\"recordCount\":3},\"stream\":{\"stream_descriptor\":{\"name\":\"users\","
                      "\"namespace\":\"app\"},\"stream_state\":{\"cursor\":1.0,\"ids\":[3,1]}}}");
  x = identity_of(sent);
  CHECK_EQ_INT(x.k.type, LB_STATE_STREAM);
  CHECK_EQ_STR(x.name, "users");
  CHECK_EQ_STR(x.ns, "app");
  CHECK_EQ_INT(x.st.type, LB_JOBJECT);
  CHECK_EQ_INT((long long)strlen(x.digest), 64);
  /* another value, another namespace: another identity */
  y = identity_of("{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\","
                  "\"namespace\":\"app\"},\"stream_state\":{\"cursor\":2,\"ids\":[3,1]}}}");
  CHECK(strcmp(x.digest, y.digest) != 0);
  y = identity_of("{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\"},"
                  "\"stream_state\":{\"cursor\":1,\"ids\":[3,1]}}}");
  CHECK_EQ_STR(y.ns, "");
  CHECK(strcmp(x.digest, y.digest) != 0);
  y = identity_of("{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\","
                  "\"namespace\":\"app\"},\"stream_state\":{\"cursor\":1,\"ids\":[1,3]}}}");
  CHECK(strcmp(x.digest, y.digest) != 0);
  /* GLOBAL, LEGACY and typeless LEGACY: keyed by their kind, the blob is
  ** "global" or "data"; a LEGACY state with or without its type is one */
  x = identity_of("{\"type\":\"GLOBAL\",\"global\":{\"shared_state\":{\"lsn\":5},\"stream_states\":[]},"
                  "\"destinationStats\":{\"recordCount\":1}}");
  CHECK_EQ_INT(x.rc, 0);
  CHECK_EQ_INT(x.k.type, LB_STATE_GLOBAL);
  CHECK_EQ_STR(x.name, "_GLOBAL");
  same_identity("{\"type\":\"GLOBAL\",\"global\":{\"shared_state\":{\"lsn\":5},\"stream_states\":[]}}",
                "{\"global\":{\"stream_states\":[],\"shared_state\":{\"lsn\":5.0}},\"type\":\"GLOBAL\"}");
  same_identity("{\"type\":\"LEGACY\",\"data\":{\"last\":\"a\\\"b\"}}", "{\"data\":{\"last\":\"a\\u0022b\"}}");
  x = identity_of("{\"data\":{\"last\":1}}");
  CHECK_EQ_INT(x.k.type, LB_STATE_LEGACY);
  CHECK_EQ_STR(x.name, "_LEGACY");
  y = identity_of("{\"data\":{\"last\":2}}");
  CHECK(strcmp(x.digest, y.digest) != 0);
  /* a STREAM state without a descriptor name is LEGACY by the key rule; with
  ** no blob at all its digest is null's */
  x = identity_of("{\"type\":\"STREAM\"}");
  CHECK_EQ_INT(x.rc, 0);
  CHECK_EQ_INT(x.k.type, LB_STATE_LEGACY);
  same_identity("{\"type\":\"STREAM\"}", "{\"type\":\"STREAM\",\"stream\":null}");
  /* escapes in names: the key is the decoded name */
  x = identity_of("{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"caf\\u00e9 \\\"x\\\"\"}}}");
  CHECK_EQ_STR(x.name, "caf\xc3\xa9 \"x\"");
  /* not a state */
  CHECK_EQ_INT(identity_of("{broken").rc, LB_EINVAL);
  CHECK_EQ_INT(identity_of("[1]").rc, LB_EINVAL);
  CHECK_EQ_INT(identity_of("{\"type\":\"STATE\",\"state\":5}").rc, LB_EINVAL);
}

/* A backend with short identifiers and reserved names of its own, to see
** that the shared rules apply them; its lookups find nothing. */
static int no_rows(lb_cache *c, const char *prefix, const char *name, size_t nlen, const char *ns,
                   size_t nslen, lb_cache_streams_cb cb, void *ud) {
  (void)c; (void)prefix; (void)name; (void)nlen; (void)ns; (void)nslen; (void)cb; (void)ud;
  return 0;
}

static int no_owner(lb_cache *c, const char *t, lb_cache_name_owner *o) {
  (void)c; (void)t;
  o->kind = LB_NAME_FREE;
  return 0;
}

static void test_name_rules(void) {
  static const char *const reserved[] = { "pg_", NULL };
  lb_cache_ops ops;
  lb_cache c;
  char out[128], out2[128];
  long n;
  memset(&ops, 0, sizeof ops);
  ops.kind = "test";
  ops.reserved = reserved;
  ops.max_ident = 24;
  ops.stream_rows = no_rows;
  ops.table_owner = no_owner;
  CHECK_EQ_INT(lb__cache_init(&c, &ops), 0);
  n = lb_cache_table_name(&c, "short", 5, NULL, 0, out, sizeof out);
  CHECK_EQ_STR(out, "short");
  CHECK_EQ_INT(n, 5);
  lb_cache_table_name(&c, "pg_class", 8, NULL, 0, out, sizeof out);
  CHECK_EQ_STR(out, "stream_pg_class");                     /* the backend's reserved space */
  lb_cache_table_name(&c, "_airbyte_state", 14, NULL, 0, out, sizeof out);
  CHECK_EQ_STR(out, "stream__airbyte_state");
  /* long names: cut to 24 bytes, deterministically, two names two tables */
  n = lb_cache_table_name(&c, "a_very_long_stream_name_one", 27, NULL, 0, out, sizeof out);
  CHECK_EQ_INT(n, 24);
  lb_cache_table_name(&c, "a_very_long_stream_name_two", 27, NULL, 0, out2, sizeof out2);
  CHECK_EQ_INT(strlen(out2), 24);
  CHECK(strcmp(out, out2) != 0);
  CHECK(strncmp(out, "a_very_long_str_", 16) == 0);      /* 15 bytes, '_', 8 hex digits */
  lb_cache_table_name(&c, "a_very_long_stream_name_two", 27, NULL, 0, out, sizeof out);
  CHECK_EQ_STR(out, out2);
  lb__cache_fini(&c);
}

/* A backend without queued transactions (no writer thread, like
** cache_pg.c): lb_cache_begin_queued / lb_cache_commit_queued run its
** begin, put_state and commit at once, in that order, the state keyed by
** cache.c; a state that is not JSON stops before anything runs. */
static char steps[256];
static char state_key_seen[64];

static int rec_begin(lb_cache *c) { (void)c; strcat(steps, "begin "); return 0; }
static int rec_commit(lb_cache *c) { (void)c; strcat(steps, "commit "); return 0; }
static int rec_put_state(lb_cache *c, const lb_cache_state_row *r) {
  (void)c;
  strcat(steps, "state ");
  snprintf(state_key_seen, sizeof state_key_seen, "%s/%.*s/%.*s", r->source_name, (int)r->key_ns_len,
           r->key_ns, (int)r->key_name_len, r->key_name);
  return 0;
}

static void test_queued_fallback(void) {
  static const char st[] =
    "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\",\"namespace\":\"pub\"},"
    "\"stream_state\":{\"id\":3}}}";
  lb_cache_ops ops;
  lb_cache c;
  memset(&ops, 0, sizeof ops);
  ops.kind = "test";
  ops.begin = rec_begin;
  ops.commit = rec_commit;
  ops.put_state = rec_put_state;
  CHECK_EQ_INT(lb__cache_init(&c, &ops), 0);
  steps[0] = '\0';
  CHECK_EQ_INT(lb_cache_begin_queued(&c), 0);
  CHECK_EQ_STR(steps, "begin ");
  steps[0] = '\0';
  CHECK_EQ_INT(lb_cache_commit_queued(&c, "src", st, strlen(st), 1), 0);
  CHECK_EQ_STR(steps, "state commit begin ");
  CHECK_EQ_STR(state_key_seen, "src/pub/users");
  steps[0] = '\0';
  CHECK_EQ_INT(lb_cache_commit_queued(&c, NULL, NULL, 0, 0), 0);
  CHECK_EQ_STR(steps, "commit ");
  steps[0] = '\0';
  CHECK_EQ_INT(lb_cache_commit_queued(&c, "src", "{nope", 5, 1), LB_EINVAL);
  CHECK_EQ_STR(steps, "");
  CHECK(strstr(lb_cache_errmsg(&c), "invalid state JSON") != NULL);
  CHECK_EQ_INT(lb_cache_commit_queued(&c, NULL, st, strlen(st), 1), LB_EINVAL);
  CHECK_EQ_STR(steps, "");
  lb__cache_fini(&c);
}

TEST_LIST {
  {"cursor: RECORD lines with typed values and raw ids", test_cursor_lines},
  {"cursor: rows after a watermark", test_cursor_after},
  {"query: typed values, kinds, parameters, errors", test_query_values},
  {"introspection: tables, columns, cached streams", test_introspection},
  {"state rules: disposition and the record-count check", test_state_rules},
  {"state identity: key and blob digest, whatever the spelling", test_state_identity},
  {"names: the backend's reserved space and identifier length", test_name_rules},
  {"queued transactions: a backend without them runs them at once", test_queued_fallback},
  {NULL, NULL}
};

LBTEST_MAIN
