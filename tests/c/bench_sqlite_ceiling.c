/*
** bench_sqlite_ceiling.c - the "SQLite ceiling": how fast this machine's
** SQLite takes rows shaped like faker `users` records when nothing else
** happens. The table is made by lb_cache_stream_open (so its layout and
** the PRAGMAs are exactly the cache's); then one prepared INSERT with
** constant values, bound once with SQLITE_STATIC, is stepped N times, with
** the same transaction size as bench_cache_insert. The values have the
** sizes of a generated record (see bench_cache_insert --generate).
**
**   bench_sqlite_ceiling [N [PATH]] [--db PATH] [--batch N] [--sync]
**
** PATH (or --db) is recreated and kept; the default is a file in $TMPDIR
** (or /tmp) removed at the end. --sync turns the cache's threads off (its
** checkpointer thread is the only one this program would use).
** Prints "... <rate> records/s, ..." (scripts/bench.sh reads that field).
*/
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sqlite3.h>
#include "cache.h"
#include "bench_common.h"

static const char *const text_cols[][2] = {
  {"created_at", "2009-08-12T18:57:58+00:00"},
  {"updated_at", "2012-07-02T08:32:31+00:00"},
  {"name", "Tristan"},
  {"title", "M.Sc.Tech."},
  {"email", "locations1983@protonmail.com"},
  {"telephone", "+1-(110)-795-7610"},
  {"gender", "Female"},
  {"language", "Armenian"},
  {"academic_degree", "Bachelor"},
  {"nationality", "Estonian"},
  {"occupation", "Word Processing Operator"},
  {"height", "1.55"},
  {"blood_type", "AB\xe2\x88\x92"},
  {"address", "{\"street_number\": \"4521\", \"street_name\": \"Sycamore Court\", "
              "\"city\": \"Lake Evangeline\", \"state\": \"Vermont\", \"province\": \"Idaho\", "
              "\"postal_code\": \"48213\", \"country_code\": \"US\"}"},
  {"_airbyte_raw_id", "0184c1b2-5f31-7a3c-8d2e-4b6f1a9c0e77"},
  {"_airbyte_extracted_at", "2022-11-29T00:35:07.441+00:00"},
  {"_airbyte_meta", "{}"}
};
static const char *const int_cols[][2] = { {"id", "1"}, {"age", "47"}, {"weight", "58"} };

int main(int argc, char **argv) {
  long n = 1000000, batch = BENCH_DEFAULT_BATCH, i;
  const char *db_path = NULL;
  char tmp_db[4096], err[512], sql[4096];
  size_t off = 0, k;
  lb_cache *c = NULL;
  lb_cache_stream *s;
  sqlite3_stmt *st;
  sqlite3 *db;
  double t0, t1;
  int a, p = 1, positional = 0, sync_mode = 0;
  for (a = 1; a < argc; a++) {
    if (strcmp(argv[a], "--db") == 0 && a + 1 < argc) db_path = argv[++a];
    else if (strcmp(argv[a], "--batch") == 0 && a + 1 < argc) batch = atol(argv[++a]);
    else if (strcmp(argv[a], "--sync") == 0) sync_mode = 1;
    else if (positional++ == 0) n = atol(argv[a]);
    else db_path = argv[a];
  }
  if (batch <= 0) batch = 1;
  if (!db_path) {
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_db, sizeof tmp_db, "%s/lb_bench_ceiling_%ld.sqlite", dir && *dir ? dir : "/tmp",
             (long)getpid());
    db_path = tmp_db;
  }
  bench_remove_db(db_path);
  if (lb_cache_sqlite_open(db_path, &c, err, sizeof err) < 0) { fprintf(stderr, "%s\n", err); return 1; }
  if (sync_mode) lb_cache_set_async(c, 0);
  s = lb_cache_stream_open(c, "source-faker", "users", BENCH_USERS_SCHEMA,
                           strlen(BENCH_USERS_SCHEMA), LB_WRITE_APPEND, NULL, err, sizeof err);
  if (!s) { fprintf(stderr, "%s\n", err); return 1; }
  lb_cache_stream_close(s);
  db = lb_cache_db(c);

  off += (size_t)snprintf(sql + off, sizeof sql - off, "INSERT INTO users (");
  for (k = 0; k < sizeof int_cols / sizeof int_cols[0]; k++)
    off += (size_t)snprintf(sql + off, sizeof sql - off, "%s\"%s\"", k ? ", " : "", int_cols[k][0]);
  for (k = 0; k < sizeof text_cols / sizeof text_cols[0]; k++)
    off += (size_t)snprintf(sql + off, sizeof sql - off, ", \"%s\"", text_cols[k][0]);
  off += (size_t)snprintf(sql + off, sizeof sql - off, ") VALUES (");
  for (k = 0; k < sizeof int_cols / sizeof int_cols[0] + sizeof text_cols / sizeof text_cols[0]; k++)
    off += (size_t)snprintf(sql + off, sizeof sql - off, "%s?", k ? ", " : "");
  snprintf(sql + off, sizeof sql - off, ")");
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "%s\n", sqlite3_errmsg(db));
    return 1;
  }
  for (k = 0; k < sizeof int_cols / sizeof int_cols[0]; k++)
    sqlite3_bind_int64(st, p++, atoll(int_cols[k][1]));
  for (k = 0; k < sizeof text_cols / sizeof text_cols[0]; k++)
    sqlite3_bind_text(st, p++, text_cols[k][1], -1, SQLITE_STATIC);

  t0 = bench_now();
  if (lb_cache_begin(c) < 0) { fprintf(stderr, "%s\n", lb_cache_errmsg(c)); return 1; }
  for (i = 1; i <= n; i++) {
    if (sqlite3_step(st) != SQLITE_DONE) { fprintf(stderr, "%s\n", sqlite3_errmsg(db)); return 1; }
    sqlite3_reset(st);
    if (i % batch == 0 && (lb_cache_commit(c) < 0 || lb_cache_begin(c) < 0)) {
      fprintf(stderr, "%s\n", lb_cache_errmsg(c));
      return 1;
    }
  }
  if (lb_cache_commit(c) < 0) { fprintf(stderr, "%s\n", lb_cache_errmsg(c)); return 1; }
  t1 = bench_now();
  sqlite3_finalize(st);
  printf("bench_sqlite_ceiling: %ld rows in %.3f s: %.0f records/s, batch %ld, %s, peak RSS %ld kB\n",
         n, t1 - t0, n / (t1 - t0), batch, sync_mode ? "sync" : "async", bench_peak_rss_kb());
  lb_cache_close(c);
  if (db_path == tmp_db) bench_remove_db(db_path);
  return 0;
}
