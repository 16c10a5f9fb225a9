/*
** bench_common.h - what bench_cache_insert and bench_sqlite_ceiling share:
** the faker `users` schema (source-faker's schemas/users.json, descriptions
** dropped), the transaction size, a clock and peak memory.
*/
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BENCH_USERS_SCHEMA                                                   \
  "{\"$schema\": \"http://json-schema.org/draft-07/schema#\", \"type\": \"object\","  \
  " \"properties\": {"                                                       \
  "\"id\": {\"type\": \"integer\"},"                                         \
  "\"created_at\": {\"type\": \"string\", \"format\": \"date-time\","        \
  " \"airbyte_type\": \"timestamp_with_timezone\"},"                         \
  "\"updated_at\": {\"type\": \"string\", \"format\": \"date-time\","        \
  " \"airbyte_type\": \"timestamp_with_timezone\"},"                         \
  "\"name\": {\"type\": \"string\"}, \"title\": {\"type\": \"string\"},"     \
  "\"age\": {\"type\": \"integer\"}, \"email\": {\"type\": \"string\"},"     \
  "\"telephone\": {\"type\": \"string\"}, \"gender\": {\"type\": \"string\"},"  \
  "\"language\": {\"type\": \"string\"},"                                    \
  "\"academic_degree\": {\"type\": \"string\"},"                             \
  "\"nationality\": {\"type\": \"string\"},"                                 \
  "\"occupation\": {\"type\": \"string\"}, \"height\": {\"type\": \"string\"}," \
  "\"blood_type\": {\"type\": \"string\"}, \"weight\": {\"type\": \"integer\"}," \
  "\"address\": {\"type\": \"object\", \"properties\": {"                    \
  "\"street_number\": {\"type\": \"string\"}, \"street_name\": {\"type\": \"string\"}," \
  "\"city\": {\"type\": \"string\"}, \"state\": {\"type\": \"string\"},"     \
  "\"province\": {\"type\": \"string\"}, \"postal_code\": {\"type\": \"string\"}," \
  "\"country_code\": {\"type\": \"string\"}}}}}"

/* Records per transaction unless --batch says otherwise: large, as the pump
** commits at STATE messages, and the same in both programs. */
#define BENCH_DEFAULT_BATCH 100000

static double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long bench_peak_rss_kb(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* Removes a SQLite database and its WAL files. */
static void bench_remove_db(const char *path) {
  char buf[4096];
  unlink(path);
  snprintf(buf, sizeof buf, "%s-wal", path);
  unlink(buf);
  snprintf(buf, sizeof buf, "%s-shm", path);
  unlink(buf);
}

#endif
