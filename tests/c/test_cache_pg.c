/* test_cache_pg.c - the PostgreSQL cache backend against a real server
** (scripts/pg.sh start; the libpq environment PGHOST, PGPORT, ... names
** it): the layout, values that read back exactly (widening columns rather
** than losing a value), the three write strategies, records and state in
** one transaction, the read side, ad-hoc SQL, stream locks between two
** caches, and the failure paths (refused, wrong password, a backend killed
** mid-read). Without a reachable server every case is skipped, with the
** reason. */
#include <stdlib.h>
#include <unistd.h>
#include "lbtest.h"
#include "cache.h"
#include "cache_pg.h"

static char schema[64];

static lb_cache *open_cache(void) {
  lb_pg_params p;
  lb_cache *c = NULL;
  char err[512];
  memset(&p, 0, sizeof p);
  if (lb_cache_pg_open(&p, schema, &c, err, sizeof err) != 0) {
    fprintf(stderr, "  open: %s\n", err);
    return NULL;
  }
  return c;
}

static void quiet(void *arg, const char *msg) { (void)arg; (void)msg; }

static PGconn *admin(void) {
  PGconn *conn = PQconnectdb("");
  PQsetNoticeProcessor(conn, quiet, NULL);
  return PQstatus(conn) == CONNECTION_OK ? conn : (PQfinish(conn), NULL);
}

static int server_ok(void) {
  PGconn *conn = admin();
  if (conn == NULL) return 0;
  PQfinish(conn);
  return 1;
}

static long long count(lb_cache *c, const char *sql) {
  lb_cache_query *q = lb_cache_query_open(c, sql, strlen(sql), NULL, 0);
  const lb_cache_value *row;
  long long n = -1;
  if (q == NULL) { fprintf(stderr, "  query: %s\n", lb_cache_errmsg(c)); return -1; }
  if (lb_cache_query_next(q, &row) == 1) n = row[0].i;
  lb_cache_query_close(q);
  return n;
}

static int write_json_at(lb_cache_stream *s, const char *json, long long ms) {
  lb_jval v;
  if (lb_jskim_validate(json, strlen(json), &v, NULL) != 0) return -999;
  return lb_cache_stream_write(s, &v, ms, NULL);
}

static int write_json(lb_cache_stream *s, const char *json) {
  return write_json_at(s, json, 1669682107441LL);
}

static const char *users_schema =
  "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"n\":{\"type\":\"number\"},"
  "\"b\":{\"type\":\"boolean\"},\"o\":{\"type\":\"object\"},\"s\":{\"type\":\"string\"}}}";

/* Every line the cursor gives for table, concatenated. */
static char *feed(lb_cache *c, const char *table, const char *after) {
  lb_cache_cursor_spec sp;
  lb_cache_cursor *cur;
  lb_cache_buf out = {NULL, 0, 0};
  const char *rid;
  size_t rlen;
  int rc;
  memset(&sp, 0, sizeof sp);
  sp.table = table; sp.stream = table; sp.stream_len = strlen(table); sp.after_raw_id = after;
  if ((cur = lb_cache_cursor_open(c, &sp)) == NULL) { fprintf(stderr, "  cursor: %s\n", lb_cache_errmsg(c)); return NULL; }
  while ((rc = lb_cache_cursor_next(cur, &out, &rid, &rlen)) == 1) {}
  lb_cache_cursor_close(cur);
  if (rc < 0) { free(out.p); return NULL; }
  if (lb_cache_buf_reserve(&out, 1) != 0) { free(out.p); return NULL; }
  out.p[out.len] = '\0';
  return out.p;
}

/* Values go in and come out as the source wrote them (numbers compared
** as text: NUMERIC keeps every digit). */
static void values_round_trip(void) {
  lb_cache *c = open_cache();
  lb_cache_stream *s;
  char err[256], *lines;
  if (!c) { CHECK(0); return; }
  s = lb_cache_stream_open(c, "src", "values", users_schema, strlen(users_schema), LB_WRITE_APPEND, NULL,
                           err, sizeof err);
  CHECK(s != NULL);
  if (!s) { fprintf(stderr, "  %s\n", err); lb_cache_close(c); return; }
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\":1,\"n\":0.1,\"b\":true,\"o\":{\"x\":1.10, \"y\":[1,\"a\\tb\"]},"
                             "\"s\":\"tab\\there\\nnew \\\\ back \\\"q\\\" \\u00e9\"}"), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\":2,\"n\":123456789012345678901234567890.5,\"b\":false,\"s\":\"\"}"), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\":3,\"n\":1e308,\"unknown\":5,\"S\":\"by normalized name\"}"), 0);
  /* emitted_at comes back to the millisecond, whatever PostgreSQL prints */
  CHECK_EQ_INT(write_json_at(s, "{\"id\":4}", 1669682107440LL), 0);
  CHECK_EQ_INT(write_json_at(s, "{\"id\":5}", 1669682107000LL), 0);
  CHECK_EQ_INT(write_json_at(s, "{\"id\":6}", -62135596800000LL), 0);
  {
    const char *st = "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"values\"},"
                     "\"stream_state\":{\"c\":3}}}";
    CHECK_EQ_INT(lb_cache_put_state(c, "src", "values", st, strlen(st)), 0);
  }
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  lb_cache_stream_close(s);
  CHECK_EQ_INT(count(c, "SELECT count(*) FROM \"values\""), 6);
  lines = feed(c, "values", NULL);
  CHECK(lines != NULL);
  if (lines) {
    CHECK(strstr(lines, "\"data\":{\"id\":1,\"n\":0.1,\"b\":true,\"o\":{\"x\":1.10, \"y\":[1,\"a\\tb\"]},"
                        "\"s\":\"tab\\there\\nnew \\\\ back \\\"q\\\" \xc3\xa9\"},\"emitted_at\":1669682107441}") != NULL);
    CHECK(strstr(lines, "\"n\":1.2345678901234568e+29,\"b\":false") != NULL);   /* floats: as doubles */
    CHECK(strstr(lines, "\"s\":\"by normalized name\"") != NULL);
    CHECK(strstr(lines, "\"id\":3,\"n\":1") != NULL);
    CHECK(strstr(lines, "unknown") == NULL);
    CHECK(strstr(lines, "{\"id\":4,\"n\":null,\"b\":null,\"o\":null,\"s\":null},\"emitted_at\":1669682107440}") != NULL);
    CHECK(strstr(lines, "\"emitted_at\":1669682107000}") != NULL);
    CHECK(strstr(lines, "\"emitted_at\":-62135596800000}") != NULL);
    free(lines);
  }
  lb_cache_close(c);
}

/* A value its column's type cannot hold widens the column; nothing is lost. */
static void columns_widen(void) {
  lb_cache *c = open_cache();
  lb_cache_stream *s;
  char err[256], *lines;
  if (!c) { CHECK(0); return; }
  s = lb_cache_stream_open(c, "src", "widen", users_schema, strlen(users_schema), LB_WRITE_APPEND, NULL,
                           err, sizeof err);
  CHECK(s != NULL);
  if (!s) { lb_cache_close(c); return; }
  CHECK_EQ_INT(write_json(s, "{\"id\":1,\"b\":true,\"s\":\"plain\"}"), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\":123456789012345678901234567890}"), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\":2.5,\"b\":\"yes\",\"s\":\"nul \\u0000 inside\"}"), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\":\"seven\",\"n\":\"NaN\"}"), 0);
  CHECK_EQ_INT(lb_cache_sync(c), 0);
  lb_cache_stream_close(s);
  lines = feed(c, "widen", NULL);
  CHECK(lines != NULL);
  if (lines) {
    CHECK(strstr(lines, "{\"id\":1,\"n\":null,\"b\":true,\"o\":null,\"s\":\"plain\"}") != NULL);
    CHECK(strstr(lines, "\"id\":123456789012345678901234567890,") != NULL);
    CHECK(strstr(lines, "\"id\":2.5,\"n\":null,\"b\":\"yes\",\"o\":null,\"s\":\"nul \\u0000 inside\"") != NULL);
    CHECK(strstr(lines, "\"id\":\"seven\",\"n\":\"NaN\"") != NULL);
    free(lines);
  }
  lb_cache_close(c);
}

/* MERGE: one row per key, the last record of a key wins, within a batch
** and across batches; rows with a NULL key are kept. */
static void merge_upserts(void) {
  lb_cache *c = open_cache();
  lb_cache_stream *s;
  const char *pk[] = { "id", NULL };
  char err[256];
  int i;
  if (!c) { CHECK(0); return; }
  s = lb_cache_stream_open(c, "src", "merged", users_schema, strlen(users_schema), LB_WRITE_APPEND, NULL,
                           err, sizeof err);
  CHECK(s != NULL);
  if (!s) { lb_cache_close(c); return; }
  CHECK_EQ_INT(write_json(s, "{\"id\":1,\"s\":\"appended twice\"}"), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\":1,\"s\":\"appended twice\"}"), 0);
  lb_cache_stream_close(s);
  s = lb_cache_stream_open(c, "src", "merged", users_schema, strlen(users_schema), LB_WRITE_MERGE, pk,
                           err, sizeof err);
  CHECK(s != NULL);
  if (!s) { fprintf(stderr, "  %s\n", err); lb_cache_close(c); return; }
  CHECK_EQ_INT(count(c, "SELECT count(*) FROM merged"), 1);   /* the duplicates went with the index */
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  for (i = 0; i < 3000; i++) {
    char rec[128];
    snprintf(rec, sizeof rec, "{\"id\":%d,\"s\":\"v%d\"}", i % 1000, i);
    CHECK_EQ_INT(write_json(s, rec), 0);
  }
  CHECK_EQ_INT(write_json(s, "{\"s\":\"no key\"}"), 0);
  CHECK_EQ_INT(write_json(s, "{\"s\":\"no key\"}"), 0);
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  if (lb_cache_in_transaction(c)) { fprintf(stderr, "  %s\n", lb_cache_errmsg(c)); lb_cache_rollback(c); }
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\":5,\"s\":\"later batch\"}"), 0);
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  lb_cache_stream_close(s);
  CHECK_EQ_INT(count(c, "SELECT count(*) FROM merged"), 1002);
  CHECK_EQ_INT(count(c, "SELECT count(*) FROM merged WHERE id = 999 AND s = 'v2999'"), 1);
  CHECK_EQ_INT(count(c, "SELECT count(*) FROM merged WHERE id = 5 AND s = 'later batch'"), 1);
  CHECK_EQ_INT(count(c, "SELECT count(*) FROM merged WHERE id IS NULL"), 2);
  /* a key of another type widens the key column and keeps the upsert working */
  s = lb_cache_stream_open(c, "src", "merged", users_schema, strlen(users_schema), LB_WRITE_MERGE, pk,
                           err, sizeof err);
  CHECK(s != NULL);
  if (s) {
    CHECK_EQ_INT(write_json(s, "{\"id\":\"k\",\"s\":\"first\"}"), 0);
    CHECK_EQ_INT(write_json(s, "{\"id\":\"k\",\"s\":\"second\"}"), 0);
    CHECK_EQ_INT(lb_cache_sync(c), 0);
    lb_cache_stream_close(s);
    CHECK_EQ_INT(count(c, "SELECT count(*) FROM merged WHERE id = '\"k\"' AND s = 'second'"), 1);
    CHECK_EQ_INT(count(c, "SELECT count(*) FROM merged"), 1003);
  }
  lb_cache_close(c);
}

/* REPLACE: readers see the old table until the swap commits. */
static void replace_swaps_at_commit(void) {
  lb_cache *c = open_cache(), *other = open_cache();
  lb_cache_stream *s;
  char err[256];
  if (!c || !other) { CHECK(0); lb_cache_close(c); lb_cache_close(other); return; }
  s = lb_cache_stream_open(c, "src", "replaced", users_schema, strlen(users_schema), LB_WRITE_APPEND,
                           NULL, err, sizeof err);
  CHECK_EQ_INT(write_json(s, "{\"id\":1}"), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\":2}"), 0);
  lb_cache_stream_close(s);
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  s = lb_cache_stream_open(c, "src", "replaced", users_schema, strlen(users_schema), LB_WRITE_REPLACE,
                           NULL, err, sizeof err);
  CHECK(s != NULL);
  if (!s) { lb_cache_close(c); lb_cache_close(other); return; }
  CHECK_EQ_INT(write_json(s, "{\"id\":3}"), 0);
  CHECK_EQ_INT(lb_cache_stream_finish(s, err, sizeof err), 0);
  CHECK_EQ_INT(count(other, "SELECT count(*) FROM replaced"), 2);     /* readers never wait on the swap */
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  CHECK_EQ_INT(count(other, "SELECT count(*) FROM replaced WHERE id = 3"), 1);
  CHECK_EQ_INT(count(other, "SELECT count(*) FROM replaced"), 1);
  lb_cache_stream_close(s);
  lb_cache_close(c);
  lb_cache_close(other);
}

static int collect(void *ud, const char *name, const char *ns, const char *json, size_t len) {
  int *n = ud;
  (void)name; (void)ns; (void)json; (void)len;
  (*n)++;
  return 0;
}

/* Records and their state commit together, or neither does. */
static void rollback_drops_records_and_state(void) {
  lb_cache *c = open_cache();
  lb_cache_stream *s;
  char err[256];
  int n = 0;
  const char *st = "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"rolled\"},\"stream_state\":{}}}";
  if (!c) { CHECK(0); return; }
  s = lb_cache_stream_open(c, "rb", "rolled", users_schema, strlen(users_schema), LB_WRITE_APPEND, NULL,
                           err, sizeof err);
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  CHECK_EQ_INT(write_json(s, "{\"id\":1}"), 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "rb", NULL, st, strlen(st)), 0);
  CHECK_EQ_INT(lb_cache_rollback(c), 0);
  CHECK_EQ_INT(count(c, "SELECT count(*) FROM rolled"), 0);
  CHECK_EQ_INT(lb_cache_get_states(c, "rb", collect, &n), 0);
  CHECK_EQ_INT(n, 0);
  /* a statement error inside the transaction: the message is the server's */
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  CHECK(lb_cache_exec(c, "SELECT * FROM no_such_table", 27) < 0);
  CHECK(strstr(lb_cache_errmsg(c), "no_such_table") != NULL);
  CHECK(strstr(lb_cache_errmsg(c), "does not exist") != NULL);
  CHECK_EQ_INT(lb_cache_rollback(c), 0);
  lb_cache_stream_close(s);
  lb_cache_close(c);
}

static void states_and_ledger(void) {
  lb_cache *c = open_cache();
  lb_cache_delivery d = { "dst", "h1", "src", NULL, "users" };
  char id[64];
  int n = 0;
  const char *g = "{\"type\":\"GLOBAL\",\"global\":{\"shared_state\":{}}}";
  if (!c) { CHECK(0); return; }
  CHECK_EQ_INT(lb_cache_put_state(c, "st", NULL, g, strlen(g)), 0);
  CHECK_EQ_INT(lb_cache_put_state(c, "st", NULL, g, strlen(g)), 0);   /* last one wins, one row */
  CHECK_EQ_INT(lb_cache_get_states(c, "st", collect, &n), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(lb_cache_get_delivered(c, &d, id, sizeof id), 0);
  CHECK_EQ_INT(lb_cache_put_delivered(c, &d, "0190a000-0000-7000-8000-000000000002"), 0);
  CHECK_EQ_INT(lb_cache_put_delivered(c, &d, "0190a000-0000-7000-8000-000000000001"), 0);   /* never backwards */
  CHECK_EQ_INT(lb_cache_get_delivered(c, &d, id, sizeof id), 1);
  CHECK_EQ_STR(id, "0190a000-0000-7000-8000-000000000002");
  CHECK_EQ_INT(lb_cache_put_destination_state(c, "dst", "h1", "src", NULL, g, strlen(g)), 0);
  CHECK_EQ_INT(lb_cache_move_destination(c, "dst", "h1", "h2"), 0);
  d.config_hash = "h2";
  CHECK_EQ_INT(lb_cache_get_delivered(c, &d, id, sizeof id), 1);
  n = 0;
  CHECK_EQ_INT(lb_cache_get_destination_states(c, "dst", "h2", NULL, collect, &n), 0);
  CHECK_EQ_INT(n, 1);
  lb_cache_close(c);
}

/* Two caches (two runners): the second waits, then fails naming the
** stream and the holder; other streams never wait; close releases. */
static void stream_locks(void) {
  lb_cache *a = open_cache(), *b = open_cache();
  lb_cache_stream_id users = { "users", 5, NULL, 0 }, orders = { "orders", 6, NULL, 0 };
  char err[512] = "", pid[32];
  if (!a || !b) { CHECK(0); lb_cache_close(a); lb_cache_close(b); return; }
  CHECK_EQ_INT(lb_cache_lock_stream(a, "src", &users, 0, err, sizeof err), 0);
  if (err[0]) fprintf(stderr, "  %s\n", err);
  CHECK_EQ_INT(lb_cache_lock_stream(b, "src", &users, 200, err, sizeof err), LB_CACHE_EBUSY);
  snprintf(pid, sizeof pid, "%ld@", (long)getpid());
  CHECK(strstr(err, "'users'") != NULL);
  CHECK(strstr(err, pid) != NULL);
  CHECK_EQ_INT(lb_cache_lock_stream(b, "src", &orders, 0, err, sizeof err), 0);
  CHECK_EQ_INT(lb_cache_lock_stream(b, "other source", &users, 0, err, sizeof err), 0);
  lb_cache_unlock_stream(a, "src", &users);
  CHECK_EQ_INT(lb_cache_lock_stream(b, "src", &users, 0, err, sizeof err), 0);
  lb_cache_close(b);                       /* its locks end with its session... */
  /* ...once its server process has exited: a wait of up to 30 s covers that */
  CHECK_EQ_INT(lb_cache_lock_stream(a, "src", &users, 30000, err, sizeof err), 0);
  lb_cache_close(a);
}

static void refused_and_wrong_password(void) {
  lb_pg_params p;
  lb_cache *c = NULL;
  char err[512];
  memset(&p, 0, sizeof p);
  p.host = "127.0.0.1"; p.port = "1"; p.connect_timeout_s = 2;
  CHECK(lb_cache_pg_open(&p, schema, &c, err, sizeof err) != 0);
  CHECK(c == NULL);
  CHECK(strstr(err, "connecting to PostgreSQL (127.0.0.1:1/") != NULL);
  CHECK(strstr(err, "refused") != NULL);
  memset(&p, 0, sizeof p);
  p.password = "not-the-password-42";
  CHECK(lb_cache_pg_open(&p, schema, &c, err, sizeof err) != 0);
  CHECK(strstr(err, "password authentication failed") != NULL);
  CHECK(strstr(err, "not-the-password-42") == NULL);
}

/* The server ends the session in the middle of a read: the read fails with
** the server's words; what was committed is there for the next cache. */
static void backend_killed_mid_read(void) {
  lb_cache *c = open_cache();
  lb_cache_stream *s;
  lb_cache_cursor_spec sp;
  lb_cache_cursor *cur;
  lb_cache_buf out = {NULL, 0, 0};
  const char *rid;
  size_t rlen;
  PGconn *adm = admin();
  char err[256];
  int i, rc = 1, rows = 0;
  if (!c || !adm) { CHECK(0); lb_cache_close(c); if (adm) PQfinish(adm); return; }
  s = lb_cache_stream_open(c, "src", "killed", users_schema, strlen(users_schema), LB_WRITE_APPEND, NULL,
                           err, sizeof err);
  CHECK_EQ_INT(lb_cache_begin(c), 0);
  for (i = 0; i < 5000; i++) CHECK_EQ_INT(write_json(s, "{\"id\":1,\"s\":\"x\"}"), 0);
  CHECK_EQ_INT(lb_cache_commit(c), 0);
  lb_cache_stream_close(s);
  memset(&sp, 0, sizeof sp);
  sp.table = "killed"; sp.stream = "killed"; sp.stream_len = 6;
  cur = lb_cache_cursor_open(c, &sp);
  CHECK(cur != NULL);
  if (cur) {
    for (i = 0; i < 10 && (rc = lb_cache_cursor_next(cur, &out, &rid, &rlen)) == 1; i++) rows++;
    PQclear(PQexec(adm, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = 'luabyte' AND pid <> pg_backend_pid()"));
    while ((rc = lb_cache_cursor_next(cur, &out, &rid, &rlen)) == 1) rows++;
    CHECK(rc < 0);
    CHECK(rows < 5000);
    CHECK(strstr(lb_cache_errmsg(c), "terminat") != NULL || strstr(lb_cache_errmsg(c), "closed") != NULL);
    lb_cache_cursor_close(cur);
  }
  free(out.p);
  lb_cache_close(c);
  PQfinish(adm);
  c = open_cache();
  CHECK(c != NULL);
  if (c) { CHECK_EQ_INT(count(c, "SELECT count(*) FROM killed"), 5000); lb_cache_close(c); }
}

TEST_LIST {
  { "values_round_trip", values_round_trip },
  { "columns_widen", columns_widen },
  { "merge_upserts", merge_upserts },
  { "replace_swaps_at_commit", replace_swaps_at_commit },
  { "rollback_drops_records_and_state", rollback_drops_records_and_state },
  { "states_and_ledger", states_and_ledger },
  { "stream_locks", stream_locks },
  { "refused_and_wrong_password", refused_and_wrong_password },
  { "backend_killed_mid_read", backend_killed_mid_read },
  { NULL, NULL }
};

int main(void) {
  int i, pass = 0, fail = 0;
  PGconn *adm;
  if (!server_ok()) {
    printf("SKIP: no PostgreSQL server reachable with the libpq environment (scripts/pg.sh start)\n");
    printf("0 passed, 0 failed\n");
    return 0;
  }
  snprintf(schema, sizeof schema, "test_cache_pg_%ld", (long)getpid());
  for (i = 0; lbt_cases[i].name; i++) {
    int before = lbt_failed_checks;
    lbt_current = lbt_cases[i].name;
    lbt_cases[i].fn();
    if (lbt_failed_checks == before) { pass++; printf("ok   %s\n", lbt_current); }
    else { fail++; printf("FAIL %s\n", lbt_current); }
  }
  if ((adm = admin()) != NULL) {
    char sql[128];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", schema);
    PQclear(PQexec(adm, sql));
    PQfinish(adm);
  }
  printf("%d passed, %d failed\n", pass, fail);
  return fail ? 1 : 0;
}
