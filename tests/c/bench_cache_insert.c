/*
** bench_cache_insert.c - records/s of the cache hot path: NDJSON RECORD
** messages read in 4 MB chunks -> lb_msg_parse (one validating pass that
** also finds record.data and emitted_at, as pump.c does) ->
** lb_cache_stream_write into the faker `users` table. With --find the
** message is taken apart with lb_jskim_validate + lb_jobj_find instead
** (every lb_jobj_find skips over the values before the one it finds).
**
**   bench_cache_insert FILE [--db PATH] [--batch N] [--strategy append|merge|replace] [--find] [--sync]
**
** --sync turns the cache's writer thread off (lb_cache_set_async(c, 0)).
**   bench_cache_insert --generate OUT N EXPECTED_RECORDS_JSONL
**
** --generate writes N RECORD messages made from the `users` records of
** source-faker's integration_tests/expected_records.jsonl: ids 1..N (so that
** merge has distinct keys), ages and weights varied, and the `address` object
** that newer faker versions emit added (about 650 bytes a line).
** --db PATH is recreated and kept; the default is a file in $TMPDIR (or
** /tmp) removed at the end.
*/
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cache.h"
#include "jskim.h"
#include "protocol.h"
#include "bench_common.h"

#define BUF_SIZE (4 << 20)

/* --- generator ---------------------------------------------------------------- */

static const char *const cities[] = {
  "Port Marcellus", "Lake Evangeline", "South Orrin", "New Carmela", "Kuhnview",
  "West Dayton", "Ortizborough", "Gleasonfurt"
};
static const char *const streets[] = {
  "Hickory Lane", "Bayview Avenue", "Sycamore Court", "Old Mill Road",
  "Chestnut Street", "Winding Way", "Meadow Drive"
};
static const char *const states[] = {
  "Oregon", "Nevada", "Vermont", "Kansas", "Idaho", "Maine", "Ohio"
};

static int generate(const char *out_path, long n, const char *src_path) {
  FILE *in = fopen(src_path, "rb"), *out;
  char *lines[64], buf[8192];
  size_t lens[64];
  int nlines = 0;
  long i;
  if (!in) { perror(src_path); return 1; }
  while (nlines < 64 && fgets(buf, sizeof buf, in)) {
    lb_jval top, stream;
    size_t len = strlen(buf);
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
    if (lb_jskim_validate(buf, len, &top, NULL) < 0 || top.type != LB_JOBJECT) continue;
    if (!lb_jobj_find(&top, "stream", 6, &stream) || !lb_jstr_eq(&stream, "users", 5)) continue;
    lines[nlines] = malloc(len + 1);
    memcpy(lines[nlines], buf, len);
    lines[nlines][len] = '\0';
    lens[nlines++] = len;
  }
  fclose(in);
  if (nlines == 0) { fprintf(stderr, "no users records in %s\n", src_path); return 1; }
  if ((out = fopen(out_path, "wb")) == NULL) { perror(out_path); return 1; }
  for (i = 0; i < n; i++) {
    int li = (int)(i % nlines);
    lb_jval top, data, k, v;
    lb_jiter it;
    long long emitted = 1669682107441LL + i / 50;   /* a new second now and then */
    lb_jskim_validate(lines[li], lens[li], &top, NULL);
    lb_jobj_find(&top, "data", 4, &data);
    fprintf(out, "{\"type\": \"RECORD\", \"record\": {\"stream\": \"users\", \"data\": {\"id\": %ld", i + 1);
    lb_jiter_init(&it, &data);
    while (lb_jobj_next(&it, &k, &v)) {
      if (lb_jstr_eq(&k, "id", 2)) continue;
      if (lb_jstr_eq(&k, "age", 3)) { fprintf(out, ", \"age\": %ld", 18 + (i * 7) % 70); continue; }
      if (lb_jstr_eq(&k, "weight", 6)) { fprintf(out, ", \"weight\": %ld", 40 + (i * 13) % 80); continue; }
      fprintf(out, ", %.*s: %.*s", (int)k.n, k.p, (int)v.n, v.p);
    }
    fprintf(out, ", \"address\": {\"street_number\": \"%ld\", \"street_name\": \"%s\", "
            "\"city\": \"%s\", \"state\": \"%s\", \"province\": \"%s\", "
            "\"postal_code\": \"%05ld\", \"country_code\": \"US\"}}, \"emitted_at\": %lld}}\n",
            1 + (i * 37) % 9999, streets[i % 7], cities[i % 8], states[i % 7],
            states[(i + 3) % 7], (i * 7919) % 100000, emitted);
  }
  for (i = 0; i < nlines; i++) free(lines[i]);
  if (fclose(out) != 0) { perror(out_path); return 1; }
  return 0;
}

/* --- benchmark ------------------------------------------------------------------ */

int main(int argc, char **argv) {
  const char *file = NULL, *db_path = NULL, *pk[] = {"id", NULL};
  char tmp_db[4096], err[512];
  lb_write_strategy strategy = LB_WRITE_APPEND;
  long batch = BENCH_DEFAULT_BATCH, n = 0, bad = 0, in_batch = 0;
  lb_cache *c = NULL;
  lb_cache_stream *s;
  struct stat st;
  char *buf;
  size_t have = 0;
  double t0, t1, t_commit = 0;
  int fd, i, rc, use_find = 0, sync_mode = 0;

  if (argc >= 2 && strcmp(argv[1], "--generate") == 0) {
    if (argc != 5) { fprintf(stderr, "usage: %s --generate OUT N EXPECTED_RECORDS_JSONL\n", argv[0]); return 2; }
    return generate(argv[2], atol(argv[3]), argv[4]);
  }
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--db") == 0 && i + 1 < argc) db_path = argv[++i];
    else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atol(argv[++i]);
    else if (strcmp(argv[i], "--find") == 0) use_find = 1;
    else if (strcmp(argv[i], "--sync") == 0) sync_mode = 1;
    else if (strcmp(argv[i], "--strategy") == 0 && i + 1 < argc) {
      const char *sname = argv[++i];
      if (strcmp(sname, "append") == 0) strategy = LB_WRITE_APPEND;
      else if (strcmp(sname, "merge") == 0) strategy = LB_WRITE_MERGE;
      else if (strcmp(sname, "replace") == 0) strategy = LB_WRITE_REPLACE;
      else { fprintf(stderr, "unknown strategy %s\n", sname); return 2; }
    } else if (!file) file = argv[i];
    else { fprintf(stderr, "unexpected argument %s\n", argv[i]); return 2; }
  }
  if (!file) {
    fprintf(stderr, "usage: %s FILE [--db PATH] [--batch N] [--strategy append|merge|replace] [--find] [--sync]\n"
            "       %s --generate OUT N EXPECTED_RECORDS_JSONL\n", argv[0], argv[0]);
    return 2;
  }
  if (batch <= 0) batch = 1;
  if (!db_path) {
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_db, sizeof tmp_db, "%s/lb_bench_cache_%ld.sqlite", dir && *dir ? dir : "/tmp",
             (long)getpid());
    db_path = tmp_db;
  }
  bench_remove_db(db_path);

  if ((fd = open(file, O_RDONLY)) < 0 || fstat(fd, &st) < 0) { perror(file); return 1; }
  /* Read the file once first so the page cache holds it: the benchmark
  ** measures the cache, not the disk. */
  if ((buf = malloc(BUF_SIZE)) == NULL) { fprintf(stderr, "out of memory\n"); return 1; }
  while (read(fd, buf, BUF_SIZE) > 0) {}
  lseek(fd, 0, SEEK_SET);

  if (lb_cache_sqlite_open(db_path, &c, err, sizeof err) < 0) { fprintf(stderr, "%s\n", err); return 1; }
  if (sync_mode) lb_cache_set_async(c, 0);
  s = lb_cache_stream_open(c, "source-faker", "users", BENCH_USERS_SCHEMA,
                           strlen(BENCH_USERS_SCHEMA), strategy,
                           strategy == LB_WRITE_MERGE ? pk : NULL, err, sizeof err);
  if (!s) { fprintf(stderr, "%s\n", err); return 1; }

  t0 = bench_now();
  if (lb_cache_begin(c) < 0) { fprintf(stderr, "%s\n", lb_cache_errmsg(c)); return 1; }
  for (;;) {
    ssize_t got = read(fd, buf + have, BUF_SIZE - have);
    const char *p, *end;
    if (got < 0) { perror(file); return 1; }
    if (got == 0 && have == 0) break;
    have += (size_t)got;
    p = buf;
    end = buf + have;
    for (;;) {
      const char *nl = memchr(p, '\n', (size_t)(end - p)), *line = p;
      size_t len;
      lb_jval data, em;
      long long emitted = 0;
      if (nl == NULL) {
        if (got > 0) break;               /* the rest comes with the next read */
        nl = end;                         /* a last line without a newline */
      }
      len = (size_t)(nl - p);
      p = nl < end ? nl + 1 : end;
      if (len == 0) { if (p == end) break; continue; }
      if (use_find) {
        lb_jval top, rec;
        em.type = LB_JNONE;
        if (lb_jskim_validate(line, len, &top, NULL) < 0 || top.type != LB_JOBJECT ||
            !lb_jobj_find(&top, "record", 6, &rec) || rec.type != LB_JOBJECT ||
            !lb_jobj_find(&rec, "data", 4, &data)) {
          bad++;
          continue;
        }
        lb_jobj_find(&rec, "emitted_at", 10, &em);
      } else {
        lb_msg m;
        if (lb_msg_parse(line, len, &m) != LB_MSG_RECORD) { bad++; continue; }
        data = m.data;
        em = m.emitted_at;
      }
      if (em.type == LB_JNUMBER) lb_jnum_to_int64(&em, &emitted);
      if ((rc = lb_cache_stream_write(s, &data, emitted, NULL)) < 0) {
        fprintf(stderr, "write: %s\n", lb_cache_errmsg(c));
        return 1;
      }
      n++;
      if (++in_batch == batch) {
        double tc = bench_now();
        int crc = lb_cache_commit(c);
        t_commit += bench_now() - tc;
        if (crc < 0 || lb_cache_begin(c) < 0) {
          fprintf(stderr, "%s\n", lb_cache_errmsg(c));
          return 1;
        }
        in_batch = 0;
      }
      if (p == end) break;
    }
    have = (size_t)(end - p);
    if (have == BUF_SIZE) { fprintf(stderr, "a line is longer than %d bytes\n", BUF_SIZE); return 1; }
    memmove(buf, p, have);
    if (got == 0) break;
  }
  if (lb_cache_stream_finish(s, err, sizeof err) < 0) { fprintf(stderr, "%s\n", err); return 1; }
  {
    double tc = bench_now();
    if (lb_cache_commit(c) < 0) { fprintf(stderr, "%s\n", lb_cache_errmsg(c)); return 1; }
    t_commit += bench_now() - tc;
  }
  t1 = bench_now();

  printf("bench_cache_insert: %ld records (%ld invalid lines) in %.3f s: %.0f records/s, "
         "%.1f MB/s of JSON, batch %ld, %s, %s, %.2f s waiting in commit, peak RSS %ld kB\n",
         n, bad, t1 - t0, n / (t1 - t0), st.st_size / (t1 - t0) / 1e6, batch,
         use_find ? "validate+jobj_find" : "lb_msg_parse", sync_mode ? "sync" : "async", t_commit,
         bench_peak_rss_kb());
  lb_cache_stream_close(s);
  lb_cache_close(c);
  free(buf);
  close(fd);
  if (db_path == tmp_db) bench_remove_db(db_path);
  return 0;
}
