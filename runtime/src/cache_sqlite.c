/*
** cache_sqlite.c - the SQLite cache (see cache.h for the layout and types).
**
** The hot path is lb_cache_stream_write. scan_row makes one pass over the
** members of a record's data object: each key is matched to a column (first
** against the property that followed the previous match, since records
** usually list their keys in schema order, then through a small hash
** table), and each value becomes a wval, pointing at its bytes in the input
** (strings with escapes are decoded next to it). bind_row then binds them
** all SQLITE_STATIC and the stream's one prepared INSERT is stepped.
**
** In async mode (the default) the record is first copied into a batch and
** scanned there; full batches go to a writer thread that binds and steps
** them, 32 rows per INSERT statement when they belong to one stream, while
** the caller parses the next records. A checkpointer thread with its own
** connection copies the WAL back into the database file, so that neither
** the commit nor the writer waits for it. Nothing is allocated per record:
** batches, arenas and value arrays are reused.
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
#include "cache.h"
#include "sql_regexp.h"
#include "protocol.h"

#define RAW_ID_COL "_airbyte_raw_id"
#define EXTRACTED_AT_COL "_airbyte_extracted_at"
#define META_COL "_airbyte_meta"
#define SHADOW_PREFIX "_airbyte_replace_"
#define PK_INDEX_PREFIX "_airbyte_pk_"
#define LEGACY_PK_INDEX_SUFFIX "_airbyte_pk"   /* older files: "<table>_airbyte_pk" */
#define REMAP_PREFIX "stream_"                 /* for names in the reserved space */
#define BUSY_TIMEOUT_MS 5000
#define NORM_STACK 256

/* Column kinds, from the JSON schema (or the declared type of an existing
** column). Only K_TEXT changes how values are bound (see cache.h). */
enum { K_TEXT, K_INT, K_NUM, K_BOOL, K_JSON };

static const char *const kind_sql[] = {
  "VARCHAR", "BIGINT", "DECIMAL(38,9)", "BOOLEAN", "JSON"
};

typedef struct col {
  const char *name;       /* normalized, in the stream's string pool */
  size_t namelen;
  int kind;
  int is_text;            /* the table's column has TEXT affinity */
} col;

/* A schema property: its raw name maps to a column. Several properties may
** map to one column when their names normalize alike. */
typedef struct prop {
  const char *name;
  size_t len;
  int col;
} prop;

/* A value of a record, scanned and ready to bind. Text points into the
** record (sync mode) or into a batch's copy of it (async mode). */
enum { V_NULL, V_INT, V_DBL, V_TEXT, V_BLOB };
typedef struct wval {
  int kind;
  int len;
  const char *p;
  union { long long i; double d; } u;
} wval;

/* Async mode: rows travel from the caller to the writer thread in batches.
** A row is a row_head followed by one wval per column of its stream; the
** text it points to lives in the batch's text area, which never moves
** while the batch holds rows (room is checked before a row is added). */
typedef struct row_head {
  lb_cache_stream *s;
  const char *meta;             /* in the text area, NUL-terminated; NULL = {} */
  int ts_len;
  char uuid[37];                /* made by the caller, like the rest */
  char ts[48];
} row_head;

typedef struct state_job state_job;

typedef struct batch {
  struct batch *next;
  int job;                      /* JOB_ROWS, or a transaction step (see run_job) */
  int lazy;                     /* JOB_BEGIN: only once something is written */
  state_job *state;             /* JOB_STATE: what to store */
  char *rows;
  size_t rows_n, rows_cap;
  char *text;
  size_t text_n, text_cap;
  int nrows;
} batch;

#define BATCH_ROWS 1024         /* hand a batch over after this many rows */
#define BATCH_TEXT (1u << 20)   /* ... or this many bytes of text */
#define BATCH_QUEUE 2           /* batches waiting for the writer at most */
#define LOCK_WAIT_MS 60000      /* the writer thread waits this long for the write lock */
#define GIVE_WAY_MS 2000        /* after a commit, waits this long for a waiting writer's turn */

enum { JOB_ROWS = 0, JOB_BEGIN, JOB_COMMIT, JOB_STATE };

struct lb_cache {
  sqlite3 *db;
  lb_cache_stream *streams;     /* open streams, closed with the cache */
  sqlite3_stmt *put_state, *put_dstate, *get_ledger, *put_ledger;
  char *prefix;
  uint64_t rng[2];              /* xorshift128+ state, never all zero */
  uint64_t uuid_ms;             /* timestamp of the last UUID */
  uint64_t uuid_hi, uuid_lo;    /* its 12 + 62 counter bits */
  /* async mode (see lb_cache_set_async): the fields after `mu` are shared
  ** with the writer thread and only touched with mu held */
  int async;                    /* wanted */
  int worker;                   /* the writer thread runs */
  int failed;                   /* async_err was seen by the caller */
  uv_thread_t thread;
  batch *fill;                  /* being filled by the caller */
  uv_mutex_t mu;
  uv_cond_t cv;
  batch *queue, *queue_tail;
  int queued;
  int busy;                     /* the writer is inserting a batch */
  int stop;
  batch *spare;                 /* free batches */
  int async_err;                /* first failure of the writer, sticky */
  char async_msg[512];
  /* the write lock: whoever runs a transaction step (the writer thread,
  ** or the caller in sync mode) waits for it in on_busy; turn_fd is the
  ** turnstile beside the file that makes writers take turns (turn_enter) */
  int lock_wait;                /* a transaction step runs: wait up to LOCK_WAIT_MS */
  uint64_t busy_since;          /* when the current wait for a lock began */
  int turn_fd;                  /* -1 = not open (yet), -2 = none (":memory:") */
  int quit;                     /* closing: a wait for the lock gives up (under mu) */
  int begin_pending;            /* a lazy BEGIN waits for something to write (under mu) */
  struct stream_lock *locks;    /* stream locks held through this cache */
  /* the checkpointer: a thread with its own connection that copies the WAL
  ** into the database file when it has grown, instead of the connection
  ** that commits (see ckpt_start) */
  char *path;
  int ckpt;                     /* the checkpointer runs */
  uv_thread_t ckpt_thread;
  sqlite3 *ckpt_db;
  uv_mutex_t ckpt_mu;
  uv_cond_t ckpt_cv;
  int ckpt_pending, ckpt_stop;  /* under ckpt_mu */
  int ckpt_busy;                /* a pass is running (under ckpt_mu) */
  int wal_frames;               /* WAL size at the last commit (under ckpt_mu) */
  int ckpt_complete;            /* the last pass copied the whole WAL (under ckpt_mu) */
  char errmsg[512];
};

struct lb_cache_stream {
  lb_cache *c;
  lb_cache_stream *prev, *next;
  sqlite3_stmt *ins;
  sqlite3_stmt *ins_multi;      /* the writer thread's, `multi` rows at once */
  int multi;
  lb_write_strategy strategy;
  char *name, *ns;              /* the stream's identity (ns "" = none) */
  size_t name_len, ns_len;
  char *table;                  /* final table name */
  char *target;                 /* table written to: final or shadow */
  char *pool;                   /* names of columns and properties */
  col *cols;
  int ncols;
  prop *props;
  int nprops;
  int *pht;                     /* property hash table: index + 1, 0 = empty */
  unsigned pmask;
  int *cht;                     /* column-name hash table */
  unsigned cmask;
  int guess;                    /* property expected next */
  wval *vals;                   /* sync mode: the values of the current record */
  char *arena;                  /* sync mode: its decoded strings */
  size_t arena_cap;
  long long rows;
  long long ts_sec;             /* second that ts currently spells */
  int ts_len;
  int finished;
  char uuid[37];
  char ts[48];
};

/* --- small helpers -------------------------------------------------------- */

static void seterr(lb_cache *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
  va_end(ap);
}

static void copyerr(char *err, size_t errlen, const char *msg) {
  if (err && errlen) snprintf(err, errlen, "%s", msg);
}

/* SQLite's message for the last failed call on db. "database or disk is
** full" does not say which disk: a full disk and a failed write name the
** cache file (its -wal and -journal files live beside it). */
static void sqlite_why(lb_cache *c, sqlite3 *db, char *out, size_t len) {
  int ec = sqlite3_errcode(db);
  if (ec == SQLITE_FULL)
    snprintf(out, len, "the disk is full: cannot write the cache file %.300s (%s)", c->path,
             sqlite3_errmsg(db));
  else if (ec == SQLITE_IOERR)
    snprintf(out, len, "%s (cache file %.300s)", sqlite3_errmsg(db), c->path);
  else
    snprintf(out, len, "%s", sqlite3_errmsg(db));
}

/* Records SQLite's message for a failed call on sql (cut to 200 bytes). */
static int sqlerr(lb_cache *c, const char *sql) {
  int n = sql ? (int)strlen(sql) : 0;
  char why[400];
  if (n > 200) n = 200;
  sqlite_why(c, c->db, why, sizeof why);
  if (sql)
    seterr(c, "%s (in: %.*s%s)", why, n, sql, strlen(sql) > 200 ? "..." : "");
  else
    seterr(c, "%s", why);
  return sqlite3_errcode(c->db) == SQLITE_NOMEM ? LB_ENOMEM : LB_CACHE_ESQL;
}

static int exec_sql(lb_cache *c, const char *sql) {
  if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK) return sqlerr(c, sql);
  return 0;
}

static char *dupstr(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) { memcpy(p, s, n); p[n] = '\0'; }
  return p;
}

/* A growable string for building SQL; `oom` latches allocation failure. */
typedef struct sbuf {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_addn(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    char *p;
    while (cap < b->n + n + 1) cap *= 2;
    if ((p = realloc(b->p, cap)) == NULL) { b->oom = 1; return; }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

static void sb_add(sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }

/* A double-quoted identifier; normalized names never hold quotes, but the
** doubling keeps any other name safe too. */
static void sb_ident(sbuf *b, const char *s) {
  const char *q;
  sb_addn(b, "\"", 1);
  while ((q = strchr(s, '"')) != NULL) {
    sb_addn(b, s, (size_t)(q - s) + 1);
    sb_addn(b, "\"", 1);
    s = q + 1;
  }
  sb_add(b, s);
  sb_addn(b, "\"", 1);
}

static void sb_reset(sbuf *b) {
  b->n = 0;
  b->oom = 0;
  if (b->p) b->p[0] = '\0';
}

static unsigned hash_bytes(const char *s, size_t n) {
  unsigned h = 2166136261u;               /* FNV-1a */
  size_t i;
  for (i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 16777619u; }
  return h;
}

/* --- random numbers, UUIDv7, timestamps ------------------------------------ */

static uint64_t rng_next(lb_cache *c) {
  uint64_t s1 = c->rng[0];
  const uint64_t s0 = c->rng[1];
  c->rng[0] = s0;
  s1 ^= s1 << 23;
  c->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
  return c->rng[1] + s0;
}

/* Seeds from the kernel; falls back on time and addresses, which is enough
** for ids that only need to be unique, not secret. */
static void rng_seed(lb_cache *c) {
  uint64_t seed[2] = {0, 0};
  int got = 0;
#if defined(__linux__)
  if (getrandom(seed, sizeof seed, GRND_NONBLOCK) == (ssize_t)sizeof seed) got = 1;
#endif
  if (!got) {
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (read(fd, seed, sizeof seed) == (ssize_t)sizeof seed) got = 1;
      close(fd);
    }
  }
  if (!got) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed[0] = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec;
    seed[1] = (uint64_t)(uintptr_t)c ^ ((uint64_t)getpid() << 32);
  }
  if (seed[0] == 0 && seed[1] == 0) seed[0] = 0x9e3779b97f4a7c15ull;
  c->rng[0] = seed[0];
  c->rng[1] = seed[1];
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* RFC 9562 UUIDv7 with method 1 of its section 6.2: the 74 bits after the
** timestamp are a counter that starts at a random value (top bit clear, so
** it has room to grow) each new millisecond and is incremented within one.
** A clock that steps back keeps the last timestamp. So ids of one cache are
** strictly increasing, as text too. */
static void uuid7_gen(lb_cache *c, char out[37]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char b[16];
  uint64_t ms = now_ms();
  int i, j;
  if (ms > c->uuid_ms) {
    uint64_t r = rng_next(c);
    c->uuid_ms = ms;
    c->uuid_hi = (r >> 53) & 0x7ff;          /* 11 bits: top bit stays 0 */
    c->uuid_lo = rng_next(c) >> 2;           /* 62 bits */
  } else if (++c->uuid_lo >> 62) {
    c->uuid_lo = 0;
    if (++c->uuid_hi > 0xfff) {              /* 2^74 ids in one ms: move on */
      c->uuid_ms++;
      c->uuid_hi = 0;
    }
  }
  ms = c->uuid_ms;
  for (i = 0; i < 6; i++) b[i] = (unsigned char)(ms >> (40 - 8 * i));
  b[6] = (unsigned char)(0x70 | ((c->uuid_hi >> 8) & 0x0f));
  b[7] = (unsigned char)(c->uuid_hi & 0xff);
  b[8] = (unsigned char)(0x80 | ((c->uuid_lo >> 56) & 0x3f));
  for (i = 9; i < 16; i++) b[i] = (unsigned char)(c->uuid_lo >> (8 * (15 - i)));
  for (i = 0, j = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[j++] = '-';
    out[j++] = hex[b[i] >> 4];
    out[j++] = hex[b[i] & 15];
  }
  out[36] = '\0';
}

static int barrier(lb_cache *c);
static int drain(lb_cache *c, int *pending);
static void clear_async_err(lb_cache *c);
static void worker_stop(lb_cache *c);
static void ckpt_start(lb_cache *c);
static void ckpt_stop(lb_cache *c);
static void ckpt_bound_wal(lb_cache *c);
static int on_busy(void *ud, int n);
static void locks_release_all(lb_cache *c);

void lb_cache_uuid7(lb_cache *c, char out[37]) {
  uuid7_gen(c, out);
}

static long long floordiv(long long a, long long b) {
  long long q = a / b;
  if ((a % b) != 0 && ((a < 0) != (b < 0))) q--;
  return q;
}

/* Days since 1970-01-01 to a proleptic Gregorian date (era arithmetic:
** 400-year eras of 146097 days make the leap rules exact). */
static void civil_from_days(long long z, long long *y, int *m, int *d) {
  long long era, yoe, doy, mp;
  z += 719468;
  era = floordiv(z, 146097);
  doy = z - era * 146097;                                  /* day of era */
  yoe = (doy - doy / 1460 + doy / 36524 - doy / 146096) / 365;
  *y = yoe + era * 400;
  doy = doy - (365 * yoe + yoe / 4 - yoe / 100);           /* day of year */
  mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  if (*m <= 2) (*y)++;
}

/* _airbyte_extracted_at text for emitted_at: the seconds part is only
** formatted again when the second changes (records of a batch share it). */
static void format_ts(lb_cache_stream *s, long long ms) {
  long long sec;
  int frac;
  /* far outside the range the arithmetic below overflows; inside it the
  ** year has four digits, as readers of the column expect */
  if (ms < LB_CACHE_MIN_MS) ms = LB_CACHE_MIN_MS;
  if (ms > LB_CACHE_MAX_MS) ms = LB_CACHE_MAX_MS;
  sec = floordiv(ms, 1000);
  frac = (int)(ms - sec * 1000);
  if (sec != s->ts_sec || s->ts_len == 0) {
    long long days = floordiv(sec, 86400), y;
    int rem = (int)(sec - days * 86400), m, d;
    civil_from_days(days, &y, &m, &d);
    s->ts_len = snprintf(s->ts, sizeof s->ts, "%04lld-%02d-%02dT%02d:%02d:%02d.%03d+00:00",
                         y, m, d, rem / 3600, rem / 60 % 60, rem % 60, frac);
    s->ts_sec = sec;
  } else {
    char *p = s->ts + s->ts_len - 9;          /* the three digits after '.' */
    p[0] = (char)('0' + frac / 100);
    p[1] = (char)('0' + frac / 10 % 10);
    p[2] = (char)('0' + frac % 10);
  }
}

/* --- names ------------------------------------------------------------------ */

long lb_cache_normalize(const char *name, size_t len, char *out, size_t cap) {
  const unsigned char *p = (const unsigned char *)name, *end = p + len;
  size_t n = 0;
  int lead_digit = len > 0 && name[0] >= '0' && name[0] <= '9', only_us = 1;
#define PUT(ch) do { char ch_ = (ch);                                          \
    if (ch_ != '_') only_us = 0;                                               \
    if (n + 1 < cap) out[n] = ch_;                                             \
    n++;                                                                       \
  } while (0)
  if (lead_digit) PUT('_');
  while (p < end) {
    unsigned char ch = *p;
    if (ch < 0x80) {
      if (ch >= 'A' && ch <= 'Z') PUT((char)(ch + 32));
      else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) PUT((char)ch);
      else PUT('_');
      p++;
      continue;
    }
    /* Python lower-cases before substituting: U+0130 becomes "i" plus a
    ** combining dot and the Kelvin sign becomes "k"; every other non-ASCII
    ** code point stays non-ASCII and becomes one '_'. */
    if (ch == 0xC4 && end - p >= 2 && p[1] == 0xB0) { PUT('i'); PUT('_'); p += 2; continue; }
    if (ch == 0xE2 && end - p >= 3 && p[1] == 0x84 && p[2] == 0xAA) { PUT('k'); p += 3; continue; }
    {
      int k = ch >= 0xF0 ? 4 : ch >= 0xE0 ? 3 : ch >= 0xC0 ? 2 : 1, i;
      for (i = 1; i < k && p + i < end && (p[i] & 0xC0) == 0x80; i++) {}
      p += i;
      PUT('_');
    }
  }
#undef PUT
  if (cap) out[n < cap ? n : cap - 1] = '\0';
  return only_us ? -1 : (long)n;
}

/* --- the stream -> table mapping ------------------------------------------------ */

/* Tables, indexes and anything else of ours live in these spaces; no stream
** table is ever named in them (see cache.h). SQLite compares names without
** regard to ASCII case; normalized names are lower case already. */
static int is_reserved(const char *t) {
  return strncmp(t, "_airbyte_", 9) == 0 || strncmp(t, "_luabyte_", 9) == 0 ||
         strncmp(t, "sqlite_", 7) == 0;
}

/* A name for messages: quoted, control bytes (NUL...) as \u00XX, cut at
** 100 bytes. */
static void sb_name(sbuf *b, const char *s, size_t n) {
  size_t i;
  sb_addn(b, "'", 1);
  for (i = 0; i < n && i < 100; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", ch);
      sb_add(b, esc);
    } else {
      sb_addn(b, s + i, 1);
    }
  }
  sb_add(b, n > 100 ? "...'" : "'");
}

static void sb_stream(sbuf *b, const char *name, size_t nlen, const char *ns, size_t nslen) {
  sb_add(b, "stream ");
  sb_name(b, name, nlen);
  if (nslen) { sb_add(b, " (namespace "); sb_name(b, ns, nslen); sb_add(b, ")"); }
}

static void bind_len(sqlite3_stmt *st, int i, const char *s, size_t n) {
  sqlite3_bind_text64(st, i, s ? s : "", s ? n : 0, SQLITE_STATIC, SQLITE_UTF8);
}

/* The column as bytes with their length (text may hold NUL). */
static const char *col_bytes(sqlite3_stmt *st, int i, size_t *n) {
  const char *p = (const char *)sqlite3_column_text(st, i);
  *n = p ? (size_t)sqlite3_column_bytes(st, i) : 0;
  return p ? p : "";
}

/* normalize(prefix .. [a .. "_"] .. b) into *res (a fresh string); a
** name that falls in the reserved space gets REMAP_PREFIX in front. */
static int table_candidate(lb_cache *c, const char *a, size_t alen, const char *b, size_t blen,
                           char **res) {
  sbuf raw = {NULL, 0, 0, 0};
  char buf[NORM_STACK], *out;
  long n;
  *res = NULL;
  sb_addn(&raw, c->prefix, strlen(c->prefix));
  if (a) { sb_addn(&raw, a, alen); sb_addn(&raw, "_", 1); }
  sb_addn(&raw, b, blen);
  if (raw.oom) { free(raw.p); seterr(c, "out of memory"); return LB_ENOMEM; }
  n = lb_cache_normalize(raw.p, raw.n, buf, sizeof buf);
  if (n < 0) {
    sbuf m = {NULL, 0, 0, 0};
    sb_stream(&m, b, blen, a, alen);
    seterr(c, "PyAirbyteNameNormalizationError: the table name of %s normalizes to nothing "
           "but underscores", m.p ? m.p : "a stream");
    free(m.p);
    free(raw.p);
    return LB_EINVAL;
  }
  if ((out = malloc((size_t)n + sizeof REMAP_PREFIX)) == NULL) {
    free(raw.p);
    seterr(c, "out of memory");
    return LB_ENOMEM;
  }
  if ((size_t)n < sizeof buf) memcpy(out, buf, (size_t)n + 1);
  else lb_cache_normalize(raw.p, raw.n, out, (size_t)n + 1);
  free(raw.p);
  if (is_reserved(out)) {
    memmove(out + sizeof REMAP_PREFIX - 1, out, (size_t)n + 1);
    memcpy(out, REMAP_PREFIX, sizeof REMAP_PREFIX - 1);
  }
  *res = out;
  return 0;
}

enum { OWN_FREE, OWN_SELF, OWN_STREAM, OWN_OBJECT };

/* Who holds table name t: nobody (or a table no stream row claims, which a
** stream may adopt, as PyAirbyte would write into it), this stream, another
** stream (described into *other; *same_name is set when its prefix and name
** are ours, i.e. only the namespace differs), or another kind of object (an
** index, a view: described into *other). Negative on SQL errors. */
static int table_owner(lb_cache *c, const char *t, const char *name, size_t nlen,
                       const char *ns, size_t nslen, sbuf *other, int *same_name) {
  sqlite3_stmt *st = NULL;
  const char *sql = "SELECT stream_name, stream_namespace, table_prefix FROM _airbyte_streams"
                    " WHERE table_name = ?1";
  const char *sql2 = "SELECT type FROM sqlite_master WHERE name = ?1 COLLATE NOCASE";
  int rc, who = OWN_FREE;
  *same_name = 0;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
  if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    size_t on, onn, opn;
    const char *oname = col_bytes(st, 0, &on), *ons = col_bytes(st, 1, &onn);
    const char *opre = col_bytes(st, 2, &opn);
    int same_prefix = opn == strlen(c->prefix) && memcmp(opre, c->prefix, opn) == 0;
    *same_name = same_prefix && on == nlen && memcmp(oname, name, nlen) == 0;
    if (*same_name && onn == nslen && memcmp(ons, ns, nslen) == 0) who = OWN_SELF;
    else { who = OWN_STREAM; sb_stream(other, oname, on, ons, onn); }
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sqlerr(c, sql);
  if (who != OWN_FREE) return who;
  if (sqlite3_prepare_v2(c->db, sql2, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql2);
  sqlite3_bind_text(st, 1, t, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *type = (const char *)sqlite3_column_text(st, 0);
    if (type == NULL || strcmp(type, "table") != 0) {
      sb_add(other, "an existing ");
      sb_add(other, type ? type : "object");
      who = OWN_OBJECT;
    }
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) return sqlerr(c, sql2);
  return who;
}

/* The table of stream (ns, name) under the cache's table prefix, as a fresh
** string: its row in _airbyte_streams if it has one; else the first free
** of normalize(prefix + name) and, when only the namespace differs from
** the stream holding that, normalize(prefix + ns + "_" + name) (reserved
** names remapped, see table_candidate). Any other clash is a
** PyAirbyteNameNormalizationError naming both streams. Nothing is written:
** register_stream claims the name. ns NULL (lookups only) matches the one
** row of that name in any namespace, and is an error when there are
** several. */
static int resolve_table(lb_cache *c, const char *name, size_t nlen, const char *ns, size_t nslen,
                         char **out) {
  sqlite3_stmt *st = NULL;
  const char *sql =
    "SELECT table_name, stream_namespace FROM _airbyte_streams WHERE table_prefix = ?1"
    " AND stream_name = ?2 AND (?3 IS NULL OR stream_namespace = ?3) ORDER BY stream_namespace";
  sbuf other = {NULL, 0, 0, 0}, self = {NULL, 0, 0, 0};
  char *t = NULL, *t2 = NULL;
  int rc, n = 0, who, same_name;
  *out = NULL;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  sqlite3_bind_text(st, 1, c->prefix, -1, SQLITE_STATIC);
  bind_len(st, 2, name, nlen);
  if (ns) bind_len(st, 3, ns, nslen);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    size_t tn;
    const char *tp = col_bytes(st, 0, &tn);
    if (n++ == 0) t = dupstr(tp, tn);
    else {
      size_t on;
      const char *ons = col_bytes(st, 1, &on);
      sb_add(&other, n == 2 ? "" : ", ");
      sb_name(&other, ons, on);
    }
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) { free(t); return sqlerr(c, sql); }
  if (n > 1) {
    sb_name(&self, name, nlen);
    seterr(c, "PyAirbyteInputError: stream %s exists in several namespaces (the first table is "
           "'%s', others in namespace %s): give the namespace", self.p ? self.p : "",
           t ? t : "", other.p ? other.p : "");
    free(t); free(self.p); free(other.p);
    return LB_EINVAL;
  }
  if (n == 1) {
    if (t == NULL) { seterr(c, "out of memory"); return LB_ENOMEM; }
    *out = t;
    return 0;
  }
  if (ns == NULL) { ns = ""; nslen = 0; }
  if ((rc = table_candidate(c, NULL, 0, name, nlen, &t)) < 0) return rc;
  who = table_owner(c, t, name, nlen, ns, nslen, &other, &same_name);
  if (who == OWN_STREAM && same_name && nslen > 0) {
    /* one name, several namespaces: the later one is namespace-qualified */
    if ((rc = table_candidate(c, ns, nslen, name, nlen, &t2)) < 0) { free(t); free(other.p); return rc; }
    free(t);
    t = t2;
    sb_reset(&other);
    who = table_owner(c, t, name, nlen, ns, nslen, &other, &same_name);
  }
  if (who == OWN_FREE || who == OWN_SELF) { free(other.p); *out = t; return 0; }
  rc = who;
  if (who >= 0) {
    sb_stream(&self, name, nlen, ns, nslen);
    seterr(c, "PyAirbyteNameNormalizationError: %s and %s both need the table '%s' (their names "
           "normalize alike); rename one, read them into separate caches or use a table_prefix",
           self.p ? self.p : "a stream", other.p ? other.p : "another stream", t);
    rc = LB_EINVAL;
  }
  free(t); free(self.p); free(other.p);
  return rc;
}

long lb_cache_table_name(lb_cache *c, const char *name, size_t name_len,
                         const char *ns, size_t ns_len, char *out, size_t cap) {
  char *t;
  size_t n;
  int rc;
  if (name == NULL || name_len == 0) { seterr(c, "a stream name is required"); return LB_EINVAL; }
  barrier(c);
  if ((rc = resolve_table(c, name, name_len, ns, ns_len, &t)) < 0) return rc;
  n = strlen(t);
  if (cap) { memcpy(out, t, n < cap ? n + 1 : cap - 1); out[n < cap ? n : cap - 1] = '\0'; }
  free(t);
  return (long)n;
}

static int is_internal_col(const char *name) {
  return strcmp(name, RAW_ID_COL) == 0 || strcmp(name, EXTRACTED_AT_COL) == 0 ||
         strcmp(name, META_COL) == 0;
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
static int has_column(lb_cache *c, const char *table, const char *column) {
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
static int create_state_tables(lb_cache *c) {
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
      char msg[sizeof c->errmsg];
      memcpy(msg, c->errmsg, sizeof msg);
      exec_sql(c, "ROLLBACK");
      memcpy(c->errmsg, msg, sizeof msg);
      return rc;
    }
    if ((rc = exec_sql(c, "COMMIT")) < 0) return rc;
  }
  return 0;
}

static int count_rows(lb_cache *c, const char *sql) {
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
static int migrate_streams(lb_cache *c) {
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
      char buf[NORM_STACK];
      long n = lb_cache_normalize(old, tn, buf, sizeof buf);
      if (n < 0 || (size_t)n >= sizeof buf || is_reserved(buf)) continue;
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
  if (rc < 0) { char msg[sizeof c->errmsg]; memcpy(msg, c->errmsg, sizeof msg);
                sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
                memcpy(c->errmsg, msg, sizeof msg); return rc; }
  return exec_sql(c, "COMMIT");
}

int lb_cache_sqlite_open(const char *path, lb_cache **out, char *err, size_t errlen) {
  lb_cache *c;
  int rc;
  *out = NULL;
  if (path == NULL) { copyerr(err, errlen, "no database path"); return LB_EINVAL; }
  if ((c = calloc(1, sizeof *c)) == NULL) { copyerr(err, errlen, "out of memory"); return LB_ENOMEM; }
  if ((c->prefix = dupstr("", 0)) == NULL) {
    free(c);
    copyerr(err, errlen, "out of memory");
    return LB_ENOMEM;
  }
  rng_seed(c);
  c->async = 1;
  c->turn_fd = -1;
  /* NOMUTEX: a connection is only ever used by one thread at a time. */
  rc = sqlite3_open_v2(path, &c->db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    snprintf(c->errmsg, sizeof c->errmsg, "cannot open %.200s: %s", path,
             c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    goto fail;
  }
  sqlite3_extended_result_codes(c->db, 1);
  sqlite3_busy_handler(c->db, on_busy, c);
  if ((rc = lb__sqlite_add_regexp(c->db)) != SQLITE_OK) {
    snprintf(c->errmsg, sizeof c->errmsg, "cannot open %.200s: %s", path, sqlite3_errstr(rc));
    goto fail;
  }
  /* WAL + synchronous=NORMAL: see cache.h for why this is crash-safe. The
  ** WAL pragma answers "memory" for :memory: databases, which is fine. */
  if (exec_sql(c, "PRAGMA journal_mode=WAL") < 0 ||
      exec_sql(c, "PRAGMA synchronous=NORMAL") < 0 ||
      exec_sql(c, internal_tables_sql) < 0 || migrate_streams(c) < 0 || create_state_tables(c) < 0) {
    char msg[sizeof c->errmsg];
    memcpy(msg, c->errmsg, sizeof msg);
    snprintf(c->errmsg, sizeof c->errmsg, "cannot open %.200s: %.280s", path, msg);
    goto fail;
  }
  if ((c->path = dupstr(path, strlen(path))) == NULL) {
    snprintf(c->errmsg, sizeof c->errmsg, "out of memory");
    sqlite3_close_v2(c->db);
    free(c->prefix);
    free(c);
    copyerr(err, errlen, "out of memory");
    return LB_ENOMEM;
  }
  ckpt_start(c);
  *out = c;
  return 0;
fail:
  copyerr(err, errlen, c->errmsg);
  rc = sqlite3_errcode(c->db) == SQLITE_NOMEM ? LB_ENOMEM : LB_CACHE_ESQL;
  sqlite3_close_v2(c->db);
  free(c->prefix);
  free(c);
  return rc;
}

void lb_cache_close(lb_cache *c) {
  if (c == NULL) return;
  if (c->worker) {              /* a wait for the write lock ends now */
    uv_mutex_lock(&c->mu);
    c->quit = 1;
    uv_mutex_unlock(&c->mu);
  }
  worker_stop(c);               /* queued rows go in first */
  ckpt_stop(c);
  locks_release_all(c);
  if (c->turn_fd >= 0) close(c->turn_fd);
  while (c->streams) lb_cache_stream_close(c->streams);
  sqlite3_finalize(c->put_state);
  sqlite3_finalize(c->put_dstate);
  sqlite3_finalize(c->get_ledger);
  sqlite3_finalize(c->put_ledger);
  /* sqlite3_close_v2 rolls back an open transaction; statements the Lua
  ** binding has not finalized yet keep the connection alive until they are
  ** (it finalizes them before calling us, so this is immediate). */
  sqlite3_close_v2(c->db);
  free(c->prefix);
  free(c->path);
  free(c);
}

int lb_cache_in_transaction(const lb_cache *c) {
  return sqlite3_get_autocommit(c->db) == 0;
}

/* Both run as the queued steps do (see "queued transactions"), and wait. */
int lb_cache_begin(lb_cache *c) {
  int rc;
  barrier(c);
  clear_async_err(c);           /* a failure belongs to the transaction it broke */
  if (lb_cache_in_transaction(c)) { seterr(c, "a transaction is already open"); return LB_EINVAL; }
  if ((rc = lb_cache_begin_queued(c)) != 0) return rc;
  return barrier(c);
}

int lb_cache_commit(lb_cache *c) {
  int err = barrier(c);
  if (err) return err;          /* rows were lost: the caller must roll back */
  if (!lb_cache_in_transaction(c)) { seterr(c, "no transaction is open"); return LB_EINVAL; }
  if ((err = lb_cache_commit_queued(c, NULL, NULL, 0, 0)) != 0) return err;
  return barrier(c);
}

int lb_cache_rollback(lb_cache *c) {
  int pending;
  if (c->worker) {              /* a lazy BEGIN not taken yet has nothing to undo */
    drain(c, &pending);
    uv_mutex_lock(&c->mu);
    c->begin_pending = 0;
    uv_mutex_unlock(&c->mu);
  }
  clear_async_err(c);
  /* SQLite rolls back by itself on some errors (a full disk, an I/O
  ** error): nothing is left to undo, and failing here would hide why */
  if (!lb_cache_in_transaction(c)) return 0;
  return exec_sql(c, "ROLLBACK");
}

const char *lb_cache_errmsg(lb_cache *c) { return c->errmsg; }
struct sqlite3 *lb_cache_db(lb_cache *c) {
  barrier(c);                   /* the caller is about to use the connection */
  return c->db;
}
const char *lb_cache_table_prefix(const lb_cache *c) { return c->prefix; }

int lb_cache_set_table_prefix(lb_cache *c, const char *prefix) {
  char *p = dupstr(prefix ? prefix : "", prefix ? strlen(prefix) : 0);
  if (p == NULL) { seterr(c, "out of memory"); return LB_ENOMEM; }
  free(c->prefix);
  c->prefix = p;
  return 0;
}

/* --- the JSON schema ------------------------------------------------------- */

static int kind_of_name(const lb_jval *t) {
  static const struct { const char *s; int k; } map[] = {
    {"string", K_TEXT}, {"integer", K_INT}, {"number", K_NUM},
    {"boolean", K_BOOL}, {"object", K_JSON}, {"array", K_JSON}
  };
  size_t i;
  for (i = 0; i < sizeof map / sizeof map[0]; i++)
    if (lb_jstr_eq(t, map[i].s, strlen(map[i].s))) return map[i].k;
  return K_TEXT;        /* null, unknown names: VARCHAR like PyAirbyte */
}

/* PyAirbyte's type resolution (airbyte/types.py): airbyte_type wins, then
** "type" (a list minus "null" must leave exactly one), then nothing ->
** VARCHAR. A $ref to one of the protocol's well-known types is understood
** too (PyAirbyte would fall back to VARCHAR). */
static int prop_kind(const lb_jval *def) {
  lb_jval t;
  if (def->type != LB_JOBJECT) return K_TEXT;
  if (lb_jobj_find(def, "airbyte_type", 12, &t) && t.type == LB_JSTRING) {
    if (lb_jstr_eq(&t, "integer", 7)) return K_INT;
    if (lb_jstr_eq(&t, "number", 6)) return K_NUM;
    if (lb_jstr_eq(&t, "boolean", 7)) return K_BOOL;
    if (lb_jstr_eq(&t, "object", 6) || lb_jstr_eq(&t, "array", 5)) return K_JSON;
    return K_TEXT;      /* dates, times, timestamps, big_integer */
  }
  if (lb_jobj_find(def, "type", 4, &t)) {
    if (t.type == LB_JSTRING) return kind_of_name(&t);
    if (t.type == LB_JARRAY) {
      lb_jiter it;
      lb_jval e, one;
      int n = 0;
      lb_jiter_init(&it, &t);
      while (lb_jarr_next(&it, &e)) {
        if (e.type == LB_JSTRING && lb_jstr_eq(&e, "null", 4)) continue;
        one = e;
        n++;
      }
      if (n == 1 && one.type == LB_JSTRING) return kind_of_name(&one);
    }
    return K_TEXT;
  }
  if (lb_jobj_find(def, "$ref", 4, &t) && t.type == LB_JSTRING) {
    static const struct { const char *s; int k; } wk[] = {
      {"\"WellKnownTypes.json#/definitions/Integer\"", K_INT},
      {"\"WellKnownTypes.json#/definitions/Number\"", K_NUM},
      {"\"WellKnownTypes.json#/definitions/Boolean\"", K_BOOL}
    };
    size_t i;
    for (i = 0; i < sizeof wk / sizeof wk[0]; i++) {
      size_t n = strlen(wk[i].s);
      if (t.n == n && memcmp(t.p, wk[i].s, n) == 0) return wk[i].k;
    }
  }
  return K_TEXT;
}

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

static int find_col(const lb_cache_stream *s, const char *name, size_t len) {
  unsigned h = hash_bytes(name, len) & s->cmask;
  int i;
  while ((i = s->cht[h]) != 0) {
    const col *cl = &s->cols[i - 1];
    if (cl->namelen == len && memcmp(cl->name, name, len) == 0) return i - 1;
    h = (h + 1) & s->cmask;
  }
  return -1;
}

static int find_prop_hash(const lb_cache_stream *s, const char *name, size_t len) {
  unsigned h = hash_bytes(name, len) & s->pmask;
  int i;
  while ((i = s->pht[h]) != 0) {
    const prop *pr = &s->props[i - 1];
    if (pr->len == len && memcmp(pr->name, name, len) == 0) return i - 1;
    h = (h + 1) & s->pmask;
  }
  return -1;
}

static unsigned table_mask(int n) {
  unsigned size = 8;
  while (size < (unsigned)n * 2u) size *= 2;
  return size - 1;
}

/* Reads the properties of the schema into s->props/s->cols (normalized,
** deduplicated, internal column names skipped) and builds the hash tables. */
static int load_schema(lb_cache_stream *s, const char *schema, size_t len) {
  lb_cache *c = s->c;
  lb_jval top, props, k, v;
  lb_jiter it;
  size_t erroff = 0, poolsz = 0, used = 0;
  int nprops = 0, rc;
  if (schema == NULL || len == 0) { schema = "{}"; len = 2; }
  rc = lb_jskim_validate(schema, len, &top, &erroff);
  if (rc < 0) {
    seterr(c, "invalid JSON schema: %s at byte %zu", lb_jskim_strerror(rc), erroff);
    return LB_EINVAL;
  }
  if (top.type != LB_JOBJECT || !lb_jobj_find(&top, "properties", 10, &props) ||
      props.type != LB_JOBJECT) {
    props.type = LB_JNONE;
  } else {
    lb_jiter_init(&it, &props);
    while (lb_jobj_next(&it, &k, &v)) { nprops++; poolsz += 2 * k.n + 2; }
  }
  s->props = calloc((size_t)nprops + 1, sizeof *s->props);
  s->cols = calloc((size_t)nprops + 1, sizeof *s->cols);
  s->pool = malloc(poolsz + 1);
  s->pmask = table_mask(nprops);
  s->cmask = table_mask(nprops);
  s->pht = calloc((size_t)s->pmask + 1, sizeof *s->pht);
  s->cht = calloc((size_t)s->cmask + 1, sizeof *s->cht);
  if (!s->props || !s->cols || !s->pool || !s->pht || !s->cht) {
    seterr(c, "out of memory");
    return LB_ENOMEM;
  }
  if (props.type == LB_JNONE) return 0;
  lb_jiter_init(&it, &props);
  while (lb_jobj_next(&it, &k, &v)) {
    char *raw = s->pool + used, *norm;
    size_t rawlen = lb_jstr_decode(&k, raw, k.n), normlen;
    long n;
    int ci;
    used += rawlen + 1;
    raw[rawlen] = '\0';
    if (find_prop_hash(s, raw, rawlen) >= 0) continue;     /* duplicate key */
    norm = s->pool + used;
    n = lb_cache_normalize(raw, rawlen, norm, poolsz - used);
    if (n < 0) {
      seterr(c, "PyAirbyteNameNormalizationError: property '%.*s' normalizes to "
             "nothing but underscores", (int)(rawlen > 200 ? 200 : rawlen), raw);
      return LB_EINVAL;
    }
    normlen = (size_t)n;           /* <= 2 * rawlen + 1: always fits the pool */
    if (is_internal_col(norm)) continue;
    ci = find_col(s, norm, normlen);
    if (ci < 0) {
      unsigned h = hash_bytes(norm, normlen) & s->cmask;
      col *cl = &s->cols[s->ncols];
      used += normlen + 1;
      cl->name = norm;
      cl->namelen = normlen;
      cl->kind = prop_kind(&v);
      cl->is_text = cl->kind == K_TEXT;
      while (s->cht[h]) h = (h + 1) & s->cmask;
      s->cht[h] = ++s->ncols;
      ci = s->ncols - 1;
    }
    {
      unsigned h = hash_bytes(raw, rawlen) & s->pmask;
      prop *pr = &s->props[s->nprops];
      pr->name = raw;
      pr->len = rawlen;
      pr->col = ci;
      while (s->pht[h]) h = (h + 1) & s->pmask;
      s->pht[h] = ++s->nprops;
    }
  }
  return 0;
}

/* --- opening a stream ------------------------------------------------------- */

/* The declared types of the table's columns: 0 and *exists = 0 when the
** table is missing. Marks schema columns found and their real affinity;
** returns the names of internal columns present in *have_internal (bits). */
static int inspect_table(lb_cache_stream *s, const char *table, int *exists,
                         char *found, int *have_internal) {
  lb_cache *c = s->c;
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
    else if ((ci = find_col(s, name, strlen(name))) >= 0) {
      found[ci] = 1;
      s->cols[ci].is_text = decl_is_text(decl ? decl : "");
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

static int create_table(lb_cache_stream *s, sbuf *b, const char *table) {
  int i;
  sb_reset(b);
  sb_add(b, "CREATE TABLE ");
  sb_ident(b, table);
  sb_add(b, " (");
  for (i = 0; i < s->ncols; i++) {
    sb_ident(b, s->cols[i].name);
    sb_add(b, " ");
    sb_add(b, kind_sql[s->cols[i].kind]);
    sb_add(b, ", ");
  }
  sb_add(b, internal_cols_sql[0]);
  sb_add(b, ", ");
  sb_add(b, internal_cols_sql[1]);
  sb_add(b, ", ");
  sb_add(b, internal_cols_sql[2]);
  sb_add(b, ")");
  if (b->oom) { seterr(s->c, "out of memory"); return LB_ENOMEM; }
  return exec_sql(s->c, b->p);
}

/* Schema evolution: add the columns that are new (PyAirbyte never changes
** the type of an existing column, nor drops one). */
static int add_columns(lb_cache_stream *s, sbuf *b, const char *table,
                       const char *found, int have_internal) {
  int i, rc;
  for (i = 0; i < s->ncols + 3; i++) {
    if (i < s->ncols ? found[i] : (have_internal & (1 << (i - s->ncols)))) continue;
    sb_reset(b);
    sb_add(b, "ALTER TABLE ");
    sb_ident(b, table);
    sb_add(b, " ADD COLUMN ");
    if (i < s->ncols) {
      sb_ident(b, s->cols[i].name);
      sb_add(b, " ");
      sb_add(b, kind_sql[s->cols[i].kind]);
    } else {
      sb_add(b, internal_cols_sql[i - s->ncols]);
    }
    if (b->oom) { seterr(s->c, "out of memory"); return LB_ENOMEM; }
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
static int drop_legacy_pk_index(lb_cache_stream *s, sbuf *b) {
  const char *sql = "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                    " AND name = ?1 || '" LEGACY_PK_INDEX_SUFFIX "' AND tbl_name = ?1";
  sqlite3_stmt *st = NULL;
  int n = 0;
  if (sqlite3_prepare_v2(s->c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(s->c, sql);
  sqlite3_bind_text(st, 1, s->table, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (n == 0) return 0;
  sb_reset(b);
  sb_add(b, "DROP INDEX ");
  sb_add(b, "\"");
  sb_add(b, s->table);
  sb_add(b, LEGACY_PK_INDEX_SUFFIX "\"");
  if (b->oom) { seterr(s->c, "out of memory"); return LB_ENOMEM; }
  return exec_sql(s->c, b->p);
}

static int ensure_pk_index(lb_cache_stream *s, sbuf *b, const int *pk, int npk) {
  lb_cache *c = s->c;
  sqlite3_stmt *st = NULL;
  const char *sql = "SELECT name FROM pragma_index_info(?1) ORDER BY seqno";
  char *idx;
  int rc, n = 0, same = 1, i;
  if ((rc = drop_legacy_pk_index(s, b)) < 0) return rc;
  sb_reset(b);
  sb_add(b, PK_INDEX_PREFIX);
  sb_add(b, s->table);
  if (b->oom || (idx = dupstr(b->p, b->n)) == NULL) { seterr(c, "out of memory"); return LB_ENOMEM; }
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) { free(idx); return sqlerr(c, sql); }
  sqlite3_bind_text(st, 1, idx, -1, SQLITE_STATIC);
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    if (n >= npk || name == NULL || strcmp(name, s->cols[pk[n]].name) != 0) same = 0;
    n++;
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) { free(idx); return sqlerr(c, sql); }
  if (n == npk && same) { free(idx); return 0; }
  if (n > 0) {
    sb_reset(b);
    sb_add(b, "DROP INDEX ");
    sb_ident(b, idx);
    if (b->oom) { free(idx); seterr(c, "out of memory"); return LB_ENOMEM; }
    if ((rc = exec_sql(c, b->p)) < 0) { free(idx); return rc; }
  }
  sb_reset(b);
  sb_add(b, "DELETE FROM ");
  sb_ident(b, s->table);
  sb_add(b, " WHERE ");
  for (i = 0; i < npk; i++) { sb_ident(b, s->cols[pk[i]].name); sb_add(b, " IS NOT NULL AND "); }
  sb_add(b, "rowid NOT IN (SELECT max(rowid) FROM ");
  sb_ident(b, s->table);
  sb_add(b, " GROUP BY ");
  for (i = 0; i < npk; i++) { if (i) sb_add(b, ", "); sb_ident(b, s->cols[pk[i]].name); }
  sb_add(b, ")");
  if (b->oom) { free(idx); seterr(c, "out of memory"); return LB_ENOMEM; }
  if ((rc = exec_sql(c, b->p)) < 0) { free(idx); return rc; }
  sb_reset(b);
  sb_add(b, "CREATE UNIQUE INDEX ");
  sb_ident(b, idx);
  sb_add(b, " ON ");
  sb_ident(b, s->table);
  sb_add(b, " (");
  for (i = 0; i < npk; i++) { if (i) sb_add(b, ", "); sb_ident(b, s->cols[pk[i]].name); }
  sb_add(b, ")");
  free(idx);
  if (b->oom) { seterr(c, "out of memory"); return LB_ENOMEM; }
  return exec_sql(c, b->p);
}

static int drop_pk_index(lb_cache_stream *s, sbuf *b) {
  int rc;
  if ((rc = drop_legacy_pk_index(s, b)) < 0) return rc;
  sb_reset(b);
  sb_add(b, "DROP INDEX IF EXISTS ");
  sb_addn(b, "\"", 1);
  sb_add(b, PK_INDEX_PREFIX);
  sb_add(b, s->table);
  sb_addn(b, "\"", 1);
  if (b->oom) { seterr(s->c, "out of memory"); return LB_ENOMEM; }
  return exec_sql(s->c, b->p);
}

/* Claims s->table for the stream in _airbyte_streams (resolve_table made
** sure it is free or already the stream's). */
static int register_stream(lb_cache_stream *s, const char *source_name,
                           const char *schema, size_t len) {
  lb_cache *c = s->c;
  sqlite3_stmt *st = NULL;
  const char *sql =
    "INSERT INTO _airbyte_streams (stream_name, source_name, table_name, catalog_metadata,"
    " stream_namespace, table_prefix) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    " ON CONFLICT (table_name) DO UPDATE SET source_name = excluded.source_name,"
    " catalog_metadata = excluded.catalog_metadata";
  int rc;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  bind_len(st, 1, s->name, s->name_len);
  sqlite3_bind_text(st, 2, source_name ? source_name : "", -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, s->table, -1, SQLITE_STATIC);
  if (schema && len) sqlite3_bind_text(st, 4, schema, (int)len, SQLITE_STATIC);
  else sqlite3_bind_text(st, 4, "{}", 2, SQLITE_STATIC);
  bind_len(st, 5, s->ns, s->ns_len);
  sqlite3_bind_text(st, 6, c->prefix, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? 0 : sqlerr(c, sql);
}

/* Rows per INSERT of the writer thread: one statement with many VALUES
** rows runs SQLite's per-statement work (transaction check, cursor open,
** reset) once for all of them, about a third less SQLite time per row. */
#define MULTI_ROWS 32

/* Prepares INSERT ... VALUES (?...) with `rows` rows (parameters numbered
** row after row) into *out. */
static int prepare_insert(lb_cache_stream *s, sbuf *b, const int *pk, int npk, int rows,
                          sqlite3_stmt **out) {
  int i, j, r, ntot = s->ncols + 3;
  char num[16];
  static const char *const internal[3] = { RAW_ID_COL, EXTRACTED_AT_COL, META_COL };
  sb_reset(b);
  sb_add(b, "INSERT INTO ");
  sb_ident(b, s->target);
  sb_add(b, " (");
  for (i = 0; i < ntot; i++) {
    if (i) sb_add(b, ", ");
    sb_ident(b, i < s->ncols ? s->cols[i].name : internal[i - s->ncols]);
  }
  sb_add(b, ") VALUES ");
  for (r = 0; r < rows; r++) {
    sb_add(b, r ? ", (" : "(");
    for (i = 0; i < ntot; i++) {
      snprintf(num, sizeof num, "%s?%d", i ? ", " : "", r * ntot + i + 1);
      sb_add(b, num);
    }
    sb_add(b, ")");
  }
  if (s->strategy == LB_WRITE_MERGE) {
    int first = 1;
    sb_add(b, " ON CONFLICT (");
    for (i = 0; i < npk; i++) { if (i) sb_add(b, ", "); sb_ident(b, s->cols[pk[i]].name); }
    sb_add(b, ") DO UPDATE SET ");
    for (i = 0; i < ntot; i++) {
      const char *name = i < s->ncols ? s->cols[i].name : internal[i - s->ncols];
      int is_pk = 0;
      for (j = 0; j < npk; j++) if (pk[j] == i) is_pk = 1;
      if (is_pk) continue;
      if (!first) sb_add(b, ", ");
      first = 0;
      sb_ident(b, name);
      sb_add(b, " = excluded.");
      sb_ident(b, name);
    }
  }
  if (b->oom) { seterr(s->c, "out of memory"); return LB_ENOMEM; }
  if (sqlite3_prepare_v3(s->c->db, b->p, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK)
    return sqlerr(s->c, b->p);
  return 0;
}

static void stream_free(lb_cache_stream *s) {
  sqlite3_finalize(s->ins);
  sqlite3_finalize(s->ins_multi);
  free(s->name);
  free(s->ns);
  free(s->table);
  free(s->target);
  free(s->pool);
  free(s->cols);
  free(s->props);
  free(s->pht);
  free(s->cht);
  free(s->arena);
  free(s->vals);
  free(s);
}

lb_cache_stream *lb_cache_stream_open(lb_cache *c, const char *source_name,
                                      const char *stream_name,
                                      const char *json_schema, size_t schema_len,
                                      lb_write_strategy strategy,
                                      const char *const *primary_key,
                                      char *err, size_t errlen) {
  lb_cache_stream_id id;
  id.name = stream_name;
  id.name_len = stream_name ? strlen(stream_name) : 0;
  id.ns = NULL;
  id.ns_len = 0;
  return lb_cache_stream_open_id(c, source_name, &id, json_schema, schema_len, strategy,
                                 primary_key, err, errlen);
}

lb_cache_stream *lb_cache_stream_open_id(lb_cache *c, const char *source_name,
                                         const lb_cache_stream_id *id,
                                         const char *json_schema, size_t schema_len,
                                         lb_write_strategy strategy,
                                         const char *const *primary_key,
                                         char *err, size_t errlen) {
  lb_cache_stream *s = NULL;
  sbuf b = {NULL, 0, 0, 0};
  char *found = NULL;
  const char *stream_name = id ? id->name : NULL;
  int pk[64], npk = 0, exists, have_internal, rc;
  if (stream_name == NULL || id->name_len == 0) {
    seterr(c, "a stream name is required");
    goto fail;
  }
  if (strategy != LB_WRITE_APPEND && strategy != LB_WRITE_MERGE && strategy != LB_WRITE_REPLACE) {
    seterr(c, "unknown write strategy %d", (int)strategy);
    goto fail;
  }
  if ((rc = barrier(c)) != 0) goto fail;
  if ((s = calloc(1, sizeof *s)) == NULL) { seterr(c, "out of memory"); goto fail; }
  s->c = c;
  s->strategy = strategy;
  s->ts_sec = 0;
  s->name_len = id->name_len;
  s->ns_len = id->ns ? id->ns_len : 0;
  if ((s->name = dupstr(stream_name, s->name_len)) == NULL ||
      (s->ns = dupstr(id->ns ? id->ns : "", s->ns_len)) == NULL) {
    seterr(c, "out of memory");
    goto fail;
  }
  if (resolve_table(c, s->name, s->name_len, s->ns, s->ns_len, &s->table) < 0) goto fail;
  if (load_schema(s, json_schema, schema_len) < 0) goto fail;
  if (primary_key) {
    for (; primary_key[npk]; npk++) {
      char norm[NORM_STACK];
      long n = lb_cache_normalize(primary_key[npk], strlen(primary_key[npk]), norm, sizeof norm);
      int ci = n < 0 || (size_t)n >= sizeof norm ? -1 : find_col(s, norm, (size_t)n);
      if (npk >= (int)(sizeof pk / sizeof pk[0])) { seterr(c, "too many primary key columns"); goto fail; }
      if (ci < 0) {
        seterr(c, "primary key '%s' is not a property of stream '%s'", primary_key[npk], stream_name);
        goto fail;
      }
      pk[npk] = ci;
    }
  }
  if (strategy == LB_WRITE_MERGE && npk == 0) {
    seterr(c, "PyAirbyteInputError: Cannot use merge strategy on a stream with no primary keys.");
    goto fail;
  }
  if ((found = calloc((size_t)s->ncols + 1, 1)) == NULL ||
      (s->vals = calloc((size_t)s->ncols + 1, sizeof *s->vals)) == NULL) {
    seterr(c, "out of memory");
    goto fail;
  }

  if (strategy == LB_WRITE_REPLACE) {
    sb_reset(&b);
    sb_add(&b, SHADOW_PREFIX);
    sb_add(&b, s->table);
    if (b.oom || (s->target = dupstr(b.p, b.n)) == NULL) { seterr(c, "out of memory"); goto fail; }
    /* A shadow table left by a run that died is stale: start afresh. */
    sb_reset(&b);
    sb_add(&b, "DROP TABLE IF EXISTS ");
    sb_ident(&b, s->target);
    if (b.oom) { seterr(c, "out of memory"); goto fail; }
    if (exec_sql(c, b.p) < 0 || create_table(s, &b, s->target) < 0) goto fail;
  } else {
    if ((s->target = dupstr(s->table, strlen(s->table))) == NULL) { seterr(c, "out of memory"); goto fail; }
    if (inspect_table(s, s->table, &exists, found, &have_internal) < 0) goto fail;
    if (!exists) rc = create_table(s, &b, s->table);
    else rc = add_columns(s, &b, s->table, found, have_internal);
    if (rc < 0) goto fail;
    if (strategy == LB_WRITE_MERGE) rc = ensure_pk_index(s, &b, pk, npk);
    else rc = drop_pk_index(s, &b);
    if (rc < 0) goto fail;
  }
  if (register_stream(s, source_name, json_schema, schema_len) < 0) goto fail;
  if (prepare_insert(s, &b, pk, npk, 1, &s->ins) < 0) goto fail;
  {
    /* as many rows as SQLite's parameter limit allows, up to MULTI_ROWS */
    int maxp = sqlite3_limit(c->db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
    s->multi = maxp / (s->ncols + 3);
    if (s->multi > MULTI_ROWS) s->multi = MULTI_ROWS;
    if (s->multi > 1 && prepare_insert(s, &b, pk, npk, s->multi, &s->ins_multi) < 0) goto fail;
  }
  s->next = c->streams;
  if (c->streams) c->streams->prev = s;
  c->streams = s;
  free(b.p);
  free(found);
  return s;
fail:
  copyerr(err, errlen, c->errmsg);
  free(b.p);
  free(found);
  if (s) stream_free(s);
  return NULL;
}

/* --- writing ----------------------------------------------------------------- */

/* The record scanner. The data object was validated by jskim, so it only
** has to find where things end; it does that in one pass that also notes
** what binding needs (escapes in strings, integer-ness and value of
** numbers), instead of skipping each value with the generic iterator and
** then looking at it again. Bounds are still checked, so bytes that were not
** validated fail cleanly instead of being read past their end. */

#define IS_WS(ch) ((ch) == ' ' || (ch) == '\n' || (ch) == '\r' || (ch) == '\t')

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
# define SWAR_STRINGS 1
#endif

/* p is just past an opening quote; returns the closing quote, or NULL.
** *esc is set when a backslash shows up. */
static const char *string_close(const char *p, const char *end, int *esc) {
#if defined(SWAR_STRINGS)
  /* 8 bytes at a time: a byte equal to '"' or '\\' makes its lane zero in
  ** w ^ pattern, and the classic has-zero-byte trick finds the first one. */
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  while (end - p >= 8) {
    uint64_t w, q, b, m;
    memcpy(&w, p, 8);
    q = w ^ (ones * '"');
    b = w ^ (ones * '\\');
    m = ((q - ones) & ~q & highs) | ((b - ones) & ~b & highs);
    if (m == 0) { p += 8; continue; }
    p += __builtin_ctzll(m) >> 3;
    if (*p == '"') return p;
    *esc = 1;
    p += 2;
  }
#endif
  while (p < end) {
    if (*p == '"') return p;
    if (*p == '\\') { *esc = 1; p += 2; continue; }
    p++;
  }
  return NULL;
}

/* Scans the members of a validated object (p just after '{', end at '}')
** into vals (one per column, all set here). Decoded strings and keys go to
** dec, which has room for end - p bytes. 0, or -1 when the bytes are not
** the JSON they should be. */
static int scan_row(lb_cache_stream *s, const char *p, const char *end, wval *vals, char *dec) {
  size_t used = 0;
  int i, ncols = s->ncols;
  for (i = 0; i < ncols; i++) vals[i].kind = V_NULL;
  for (;;) {
    const char *kp, *vp, *q;
    size_t kl;
    int kesc = 0, vesc = 0, pi, ci;
    wval *w;
    while (p < end && (IS_WS(*p) || *p == ',')) p++;
    if (p >= end) break;
    if (*p != '"') return -1;
    pi = s->guess;
    if (pi < s->nprops && (size_t)(end - p) > s->props[pi].len + 1 &&
        p[1 + s->props[pi].len] == '"' && memcmp(p + 1, s->props[pi].name, s->props[pi].len) == 0) {
      /* the key the schema order predicts: its bytes are the name and a
      ** quote follows (a name needing escapes never matches here) */
      kp = p + 1;
      kl = s->props[pi].len;
      q = kp + kl;
    } else if ((q = string_close(p + 1, end, &kesc)) == NULL) {
      return -1;
    } else {
      kp = p + 1;
      kl = (size_t)(q - kp);
    }
    p = q + 1;
    while (p < end && IS_WS(*p)) p++;
    if (p >= end || *p != ':') return -1;
    p++;
    while (p < end && IS_WS(*p)) p++;
    if (p >= end) return -1;
    vp = p;
    /* find the end of the value */
    switch (*p) {
      case '"':
        if ((q = string_close(p + 1, end, &vesc)) == NULL) return -1;
        p = q + 1;
        break;
      case '{': case '[': {
        lb_jval v;
        p = lb_jskim_skip(p, end, &v);
        break;
      }
      case 't': case 'n': p += 4; break;
      case 'f': p += 5; break;
      default:
        while (p < end && ((*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' ||
                           *p == 'e' || *p == 'E'))
          p++;
        if (p == vp) return -1;
        break;
    }
    if (p > end) return -1;
    /* which column */
    if (kesc) {
      lb_jval kv;
      kv.type = LB_JSTRING;
      kv.p = kp - 1;
      kv.n = kl + 2;
      /* decoded keys go where the next decoded value will go: they are only
      ** needed for the lookup */
      kl = lb_jstr_decode(&kv, dec + used, kl);
      kp = dec + used;
    }
    pi = s->guess;
    if (pi < s->nprops && s->props[pi].len == kl && memcmp(s->props[pi].name, kp, kl) == 0) {
      ci = s->props[pi].col;
    } else if ((pi = find_prop_hash(s, kp, kl)) >= 0) {
      ci = s->props[pi].col;
    } else {
      char norm[NORM_STACK];
      long n = lb_cache_normalize(kp, kl, norm, sizeof norm);
      if (n < 0 || (size_t)n >= sizeof norm || (ci = find_col(s, norm, (size_t)n)) < 0) continue;
      pi = s->guess - 1;
    }
    s->guess = pi + 1;
    w = &vals[ci];
    /* what to bind (see cache.h for the rules) */
    switch (*vp) {
      case '"':
        w->kind = V_TEXT;
        if (!vesc) {
          w->p = vp + 1;
          w->len = (int)(p - vp - 2);
        } else {
          lb_jval v;
          v.type = LB_JSTRING;
          v.p = vp;
          v.n = (size_t)(p - vp);
          w->p = dec + used;
          w->len = (int)lb_jstr_decode(&v, dec + used, v.n);
          used += (size_t)w->len;
        }
        break;
      case '{': case '[':
        w->kind = V_TEXT;
        w->p = vp;
        w->len = (int)(p - vp);
        break;
      case 'n':
        w->kind = V_NULL;
        break;
      case 't': case 'f':
        if (s->cols[ci].is_text) {
          w->kind = V_TEXT;
          w->p = vp;
          w->len = (int)(p - vp);
        } else {
          w->kind = V_INT;
          w->u.i = *vp == 't';
        }
        break;
      default: {
        const char *d = vp + (*vp == '-');
        lb_jval v;
        if (s->cols[ci].is_text) {
          w->kind = V_TEXT;
          w->p = vp;
          w->len = (int)(p - vp);
          break;
        }
        if (p - d <= 18) {           /* up to 18 digits cannot overflow */
          const char *x = d;
          long long i64 = 0;
          while (x < p && *x >= '0' && *x <= '9') i64 = i64 * 10 + (*x++ - '0');
          if (x == p) {
            w->kind = V_INT;
            w->u.i = *vp == '-' ? -i64 : i64;
            break;
          }
        }
        v.type = LB_JNUMBER;
        v.p = vp;
        v.n = (size_t)(p - vp);
        if (lb_jnum_to_int64(&v, &w->u.i)) {
          w->kind = V_INT;
        } else if (lb_jnum_is_integer(&v)) {   /* too big for int64: keep every digit */
          w->kind = V_BLOB;
          w->p = vp;
          w->len = (int)(p - vp);
        } else {
          w->kind = V_DBL;
          w->u.d = lb_jnum_to_double(&v);
        }
        break;
      }
    }
  }
  s->guess = 0;
  return 0;
}

/* Binds vals and the internal columns, steps and resets. Runs on the
** caller's thread (sync mode) or the writer thread (async mode): it only
** touches the statement, which the caller leaves alone meanwhile. */
static int bind_row(sqlite3_stmt *st, int base, int ncols, const wval *vals, const char *uuid,
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

static int step_reset(sqlite3_stmt *st, int rc) {
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  sqlite3_reset(st);
  return rc;
}

static int bind_step(lb_cache_stream *s, const wval *vals, const char *uuid, const char *ts,
                     int ts_len, const char *meta_json) {
  return step_reset(s->ins, bind_row(s->ins, 0, s->ncols, vals, uuid, ts, ts_len, meta_json));
}

static int write_failed(lb_cache_stream *s, int rc, char *msg, size_t msglen) {
  char why[384];
  sqlite_why(s->c, s->c->db, why, sizeof why);
  snprintf(msg, msglen, "writing to table '%.100s': %s", s->target, why);
  return rc == SQLITE_NOMEM ? LB_ENOMEM : LB_CACHE_ESQL;
}

/* --- async mode: the writer thread ------------------------------------------------ */

static int run_job(lb_cache *c, batch *b, char *msg, size_t msglen);
static void job_free(batch *b);

static void batch_free(batch *b) {
  if (b == NULL) return;
  free(b->rows);
  free(b->text);
  free(b);
}

/* The writer's first failure is kept (sticky) until the caller hears of it. */
static void writer_failed(lb_cache *c, int code, const char *msg, size_t msglen) {
  uv_mutex_lock(&c->mu);
  if (c->async_err == 0) {
    c->async_err = code;
    memcpy(c->async_msg, msg, msglen);
  }
  uv_mutex_unlock(&c->mu);
}

static void writer_main(void *arg) {
  lb_cache *c = arg;
  uv_mutex_lock(&c->mu);
  for (;;) {
    batch *b;
    size_t off;
    int i, failed, begin;
    while (c->queue == NULL && !c->stop) uv_cond_wait(&c->cv, &c->mu);
    if (c->queue == NULL) break;               /* stopping, nothing left */
    b = c->queue;
    c->queue = b->next;
    if (c->queue == NULL) c->queue_tail = NULL;
    c->queued--;
    if (b->job == JOB_BEGIN && b->lazy) {      /* the lock is taken by what comes next */
      c->begin_pending = c->async_err == 0;
      job_free(b);
      uv_cond_broadcast(&c->cv);
      continue;
    }
    c->busy = 1;
    failed = c->async_err != 0;
    begin = c->begin_pending && !failed;
    c->begin_pending = 0;
    uv_cond_broadcast(&c->cv);                 /* room in the queue */
    uv_mutex_unlock(&c->mu);
    if (begin && b->job != JOB_BEGIN) {        /* the lazy BEGIN, first */
      char msg[sizeof c->async_msg];
      batch bb;
      int code;
      memset(&bb, 0, sizeof bb);
      bb.job = JOB_BEGIN;
      if ((code = run_job(c, &bb, msg, sizeof msg)) != 0) {
        writer_failed(c, code, msg, sizeof msg);
        failed = 1;
      }
    }
    if (b->job) {                              /* a transaction step, in order with the rows */
      char msg[sizeof c->async_msg];
      int code = failed ? 0 : run_job(c, b, msg, sizeof msg);
      job_free(b);
      uv_mutex_lock(&c->mu);
      if (code && c->async_err == 0) {
        c->async_err = code;
        memcpy(c->async_msg, msg, sizeof msg);
      }
      c->busy = 0;
      uv_cond_broadcast(&c->cv);
      continue;
    }
    /* after a failure, rows are dropped until the caller hears of it */
    for (i = 0, off = 0; i < b->nrows && !failed;) {
      row_head *h = (row_head *)(void *)(b->rows + off);
      lb_cache_stream *s = h->s;
      size_t rowsz = sizeof *h + (size_t)s->ncols * sizeof(wval);
      int rc, k = 0;
      /* the next `multi` rows, when they all belong to this stream, go in
      ** with one statement */
      if (s->ins_multi && b->nrows - i >= s->multi) {
        size_t o = off;
        for (k = 0; k < s->multi && ((row_head *)(void *)(b->rows + o))->s == s; k++) o += rowsz;
        if (k < s->multi) k = 0;
      }
      if (k) {
        int r, ntot = s->ncols + 3;
        rc = SQLITE_OK;
        for (r = 0; r < k && rc == SQLITE_OK; r++, off += rowsz) {
          h = (row_head *)(void *)(b->rows + off);
          rc = bind_row(s->ins_multi, r * ntot, s->ncols, (const wval *)(void *)(h + 1), h->uuid,
                        h->ts, h->ts_len, h->meta);
        }
        rc = step_reset(s->ins_multi, rc);
        i += k;
      } else {
        rc = bind_step(s, (const wval *)(void *)(h + 1), h->uuid, h->ts, h->ts_len, h->meta);
        off += rowsz;
        i++;
      }
      if (rc != SQLITE_OK) {
        char msg[sizeof c->async_msg];
        writer_failed(c, write_failed(s, rc, msg, sizeof msg), msg, sizeof msg);
        failed = 1;
      }
    }
    b->nrows = 0;
    b->rows_n = b->text_n = 0;
    uv_mutex_lock(&c->mu);
    b->next = c->spare;
    c->spare = b;
    c->busy = 0;
    uv_cond_broadcast(&c->cv);
  }
  uv_mutex_unlock(&c->mu);
}

static int worker_start(lb_cache *c) {
  if (uv_mutex_init(&c->mu) != 0) return -1;
  if (uv_cond_init(&c->cv) != 0) { uv_mutex_destroy(&c->mu); return -1; }
  c->stop = 0;
  if (uv_thread_create(&c->thread, writer_main, c) != 0) {
    uv_cond_destroy(&c->cv);
    uv_mutex_destroy(&c->mu);
    return -1;
  }
  c->worker = 1;
  return 0;
}

/* With c->mu held: b goes to the end of the writer's queue. */
static void enqueue(lb_cache *c, batch *b) {
  b->next = NULL;
  if (c->queue_tail) c->queue_tail->next = b;
  else c->queue = b;
  c->queue_tail = b;
  c->queued++;
}

/* Hands the filled batch to the writer (waiting while the queue is full)
** and takes a spare one. Returns the writer's sticky error, if any. */
static int submit(lb_cache *c) {
  batch *b = c->fill;
  int err;
  c->fill = NULL;
  uv_mutex_lock(&c->mu);
  while (c->queued >= BATCH_QUEUE && c->async_err == 0) uv_cond_wait(&c->cv, &c->mu);
  if (b) {
    if (b->nrows > 0) {
      enqueue(c, b);
      uv_cond_broadcast(&c->cv);
    } else {
      b->next = c->spare;
      c->spare = b;
    }
  }
  if (c->spare) {
    c->fill = c->spare;
    c->spare = c->fill->next;
  }
  err = c->async_err;
  if (err) memcpy(c->errmsg, c->async_msg, sizeof c->errmsg);
  uv_mutex_unlock(&c->mu);
  if (err) c->failed = err;
  return err;
}

/* Waits until every queued row is in the database. Returns the writer's
** sticky error (its message copied to errmsg). Every function that touches
** the database from the caller's side calls this first. */
static int drain(lb_cache *c, int *pending) {
  int err;
  if (c->fill && c->fill->nrows > 0) submit(c);
  uv_mutex_lock(&c->mu);
  while (c->queued > 0 || c->busy) uv_cond_wait(&c->cv, &c->mu);
  err = c->async_err;
  if (err) memcpy(c->errmsg, c->async_msg, sizeof c->errmsg);
  *pending = c->begin_pending;
  uv_mutex_unlock(&c->mu);
  if (err) c->failed = err;
  return err;
}

/* A lazy BEGIN (lb_cache_commit_queued) is taken now: the caller is about
** to work in the transaction. */
static int barrier(lb_cache *c) {
  int err, pending;
  if (!c->worker) return 0;
  err = drain(c, &pending);
  if (err == 0 && pending && (err = lb_cache_begin_queued(c)) == 0) err = drain(c, &pending);
  return err;
}

/* With c->mu held: waits on the writer until deadline_ns (0 = for ever);
** 0 when it was woken, 1 when the deadline passed. */
static int wait_until(lb_cache *c, uint64_t deadline_ns) {
  uint64_t now;
  if (deadline_ns == 0) {
    uv_cond_wait(&c->cv, &c->mu);
    return 0;
  }
  now = uv_hrtime();
  if (now >= deadline_ns) return 1;
  uv_cond_timedwait(&c->cv, &c->mu, deadline_ns - now);
  return 0;
}

/* Would the next write hand a batch over (reserve or its end)? */
static int write_submits(const lb_cache *c, size_t data_len) {
  const batch *b = c->fill;
  return b && b->nrows > 0 &&
         (b->nrows + 1 >= BATCH_ROWS || b->text_cap - b->text_n < 2 * data_len);
}

int lb_cache_wait_room(lb_cache *c, size_t data_len, uint64_t deadline_ns) {
  int room = 1;
  if (!c->worker || !write_submits(c, data_len)) return 1;
  uv_mutex_lock(&c->mu);
  while (c->queued >= BATCH_QUEUE && c->async_err == 0)
    if (wait_until(c, deadline_ns)) { room = 0; break; }
  uv_mutex_unlock(&c->mu);
  return room;
}

int lb_cache_wait_idle(lb_cache *c, uint64_t deadline_ns) {
  int idle = 1;
  if (!c->worker) return 1;
  if (c->fill && c->fill->nrows > 0) {
    if (!lb_cache_wait_room(c, (size_t)-1 / 4, deadline_ns)) return 0;
    submit(c);                      /* room in the queue: does not wait */
  }
  uv_mutex_lock(&c->mu);
  for (;;) {
    while ((c->queued > 0 || c->busy) && c->async_err == 0)
      if (wait_until(c, deadline_ns)) { idle = 0; break; }
    if (!idle || !c->begin_pending || c->async_err) break;
    /* a lazy BEGIN is taken now: the caller goes on in the transaction */
    uv_mutex_unlock(&c->mu);
    if (lb_cache_begin_queued(c) != 0) return 1;   /* the error is the caller's next */
    uv_mutex_lock(&c->mu);
  }
  uv_mutex_unlock(&c->mu);
  return idle;
}

static void clear_async_err(lb_cache *c) {
  c->failed = 0;
  if (!c->worker) return;
  uv_mutex_lock(&c->mu);
  c->async_err = 0;
  uv_mutex_unlock(&c->mu);
}

static void worker_stop(lb_cache *c) {
  batch *b;
  int pending;
  if (!c->worker) return;
  drain(c, &pending);           /* a lazy BEGIN is dropped: close rolls back anyway */
  uv_mutex_lock(&c->mu);
  c->stop = 1;
  uv_cond_broadcast(&c->cv);
  uv_mutex_unlock(&c->mu);
  uv_thread_join(&c->thread);
  c->worker = 0;
  batch_free(c->fill);
  c->fill = NULL;
  while ((b = c->spare) != NULL) { c->spare = b->next; batch_free(b); }
  uv_cond_destroy(&c->cv);
  uv_mutex_destroy(&c->mu);
}

int lb_cache_set_async(lb_cache *c, int on) {
  if (!on) {
    int err = barrier(c);
    worker_stop(c);
    ckpt_stop(c);
    c->async = 0;
    return err;
  }
  c->async = 1;
  ckpt_start(c);
  return 0;
}

/* --- the checkpointer ---------------------------------------------------------------- */

/* Pages in the WAL after which it is copied back, as SQLite's own
** wal_autocheckpoint default. */
#define CKPT_FRAMES 1000
/* WAL pages after which begin waits for a complete checkpoint. A WAL only
** starts over from its beginning when a transaction starts after every
** frame was copied back; a checkpointer that runs beside a busy writer is
** never done at that moment, so without this wait the WAL would grow for
** the whole sync. Past this size begin lets it finish (nothing writes
** meanwhile), at most the tail of the WAL is left to copy by then. */
#define WAL_LIMIT_FRAMES 16384

/* Runs after every commit of the cache's connection, in the committing
** thread (caller or writer). */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames) {
  lb_cache *c = ud;
  (void)db;
  (void)name;
  uv_mutex_lock(&c->ckpt_mu);
  c->wal_frames = frames;
  c->ckpt_complete = 0;
  if (frames >= CKPT_FRAMES) {
    c->ckpt_pending = 1;
    uv_cond_broadcast(&c->ckpt_cv);
  }
  uv_mutex_unlock(&c->ckpt_mu);
  return SQLITE_OK;
}

/* A PASSIVE checkpoint from another connection runs while the cache's
** connection goes on writing (WAL allows it): the copy and its fsyncs leave
** the path of commit, where SQLite's automatic checkpoint would put them
** (about 0.1 s per 100,000 faker records on a plain disk). Durability is
** unchanged: a commit is as durable as before, the checkpoint only moves
** committed pages from the WAL into the database file. */
static void ckpt_main(void *arg) {
  lb_cache *c = arg;
  uv_mutex_lock(&c->ckpt_mu);
  for (;;) {
    while (!c->ckpt_pending && !c->ckpt_stop) uv_cond_wait(&c->ckpt_cv, &c->ckpt_mu);
    int nlog = -1, nckpt = -1;
    if (c->ckpt_stop) break;
    c->ckpt_pending = 0;
    c->ckpt_busy = 1;
    uv_mutex_unlock(&c->ckpt_mu);
    sqlite3_wal_checkpoint_v2(c->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
    uv_mutex_lock(&c->ckpt_mu);
    c->ckpt_busy = 0;
    if (nlog >= 0 && nckpt == nlog && !c->ckpt_pending) c->ckpt_complete = 1;
    uv_cond_broadcast(&c->ckpt_cv);
  }
  uv_mutex_unlock(&c->ckpt_mu);
}

/* Starts the checkpointer when the database is a file in WAL mode; when it
** cannot, SQLite's automatic checkpoint stays in charge. */
static void ckpt_start(lb_cache *c) {
  sqlite3_stmt *st = NULL;
  int wal = 0;
  if (c->ckpt || !c->async) return;
  if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    wal = mode && strcmp(mode, "wal") == 0;
  }
  sqlite3_finalize(st);
  if (!wal) return;
  /* the main connection's file name is absolute: a chdir since open is fine */
  {
    const char *fn = sqlite3_db_filename(c->db, "main");
    if (fn && *fn) {
      char *abs = dupstr(fn, strlen(fn));
      if (abs) { free(c->path); c->path = abs; }
    }
  }
  if (sqlite3_open_v2(c->path, &c->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL)
      != SQLITE_OK) {
    sqlite3_close_v2(c->ckpt_db);
    c->ckpt_db = NULL;
    return;
  }
  sqlite3_busy_timeout(c->ckpt_db, BUSY_TIMEOUT_MS);
  /* a connection learns that the file is in WAL mode on its first read;
  ** until then its checkpoints do nothing */
  if (sqlite3_exec(c->ckpt_db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK)
    goto fail_db;
  if (uv_mutex_init(&c->ckpt_mu) != 0) goto fail_db;
  if (uv_cond_init(&c->ckpt_cv) != 0) goto fail_mu;
  c->ckpt_pending = c->ckpt_stop = c->ckpt_busy = c->wal_frames = c->ckpt_complete = 0;
  if (uv_thread_create(&c->ckpt_thread, ckpt_main, c) != 0) goto fail_cv;
  c->ckpt = 1;
  sqlite3_wal_hook(c->db, wal_hook, c);   /* replaces the automatic checkpoint */
  return;
fail_cv:
  uv_cond_destroy(&c->ckpt_cv);
fail_mu:
  uv_mutex_destroy(&c->ckpt_mu);
fail_db:
  sqlite3_close_v2(c->ckpt_db);
  c->ckpt_db = NULL;
}

/* Before a write transaction: when the WAL has grown past the limit, wait
** for a checkpoint that copies all of it, so that the transaction starts
** the WAL over. */
static void ckpt_bound_wal(lb_cache *c) {
  int tries;
  if (!c->ckpt) return;
  uv_mutex_lock(&c->ckpt_mu);
  for (tries = 0; tries < 3 && c->wal_frames >= WAL_LIMIT_FRAMES && !c->ckpt_complete; tries++) {
    while (c->ckpt_busy || c->ckpt_pending) uv_cond_wait(&c->ckpt_cv, &c->ckpt_mu);
    if (c->ckpt_complete) break;
    c->ckpt_pending = 1;              /* one more pass, now that nothing writes */
    uv_cond_broadcast(&c->ckpt_cv);
    while (c->ckpt_busy || c->ckpt_pending) uv_cond_wait(&c->ckpt_cv, &c->ckpt_mu);
  }
  uv_mutex_unlock(&c->ckpt_mu);
}

static void ckpt_stop(lb_cache *c) {
  if (!c->ckpt) return;
  sqlite3_wal_autocheckpoint(c->db, CKPT_FRAMES);   /* back to SQLite's own */
  uv_mutex_lock(&c->ckpt_mu);
  c->ckpt_stop = 1;
  uv_cond_signal(&c->ckpt_cv);
  uv_mutex_unlock(&c->ckpt_mu);
  uv_thread_join(&c->ckpt_thread);
  uv_cond_destroy(&c->ckpt_cv);
  uv_mutex_destroy(&c->ckpt_mu);
  sqlite3_close_v2(c->ckpt_db);
  c->ckpt_db = NULL;
  c->ckpt = 0;
}

int lb_cache_sync(lb_cache *c) {
  return barrier(c);
}

/* Room for a row of ncols values and `text` bytes in the fill batch: a new
** batch when the current one is full, a bigger text area only while the
** batch is empty (rows point into it). */
static int reserve(lb_cache *c, int ncols, size_t text) {
  size_t need = sizeof(row_head) + (size_t)ncols * sizeof(wval);
  batch *b = c->fill;
  int err;
  if (b && b->nrows > 0 && (b->nrows >= BATCH_ROWS || b->text_cap - b->text_n < text)) {
    if ((err = submit(c)) != 0) return err;
    b = c->fill;
  }
  if (b == NULL) {
    if ((b = calloc(1, sizeof *b)) == NULL) goto oom;
    c->fill = b;
  }
  if (b->text_cap - b->text_n < text) {       /* only when empty */
    size_t cap = b->text_cap ? b->text_cap : BATCH_TEXT;
    char *p;
    while (cap < text) cap *= 2;
    if ((p = realloc(b->text, cap)) == NULL) goto oom;
    b->text = p;
    b->text_cap = cap;
  }
  if (b->rows_cap - b->rows_n < need) {
    size_t cap = b->rows_cap ? b->rows_cap : 64 * 1024;
    char *p;
    while (cap - b->rows_n < need) cap *= 2;
    if ((p = realloc(b->rows, cap)) == NULL) goto oom;
    b->rows = p;
    b->rows_cap = cap;
  }
  return 0;
oom:
  seterr(c, "out of memory");
  return LB_ENOMEM;
}

/* --- writing ---------------------------------------------------------------------------- */

int lb_cache_stream_write(lb_cache_stream *s, const lb_jval *data,
                          long long emitted_at_ms, const char *meta_json) {
  lb_cache *c = s->c;
  size_t n;
  int rc;
  if (s->ins == NULL) { seterr(c, "stream '%s' is finished", s->table); return LB_EINVAL; }
  if (data == NULL || data->type != LB_JOBJECT || data->n < 2 || data->p[0] != '{' ||
      data->p[data->n - 1] != '}') {
    seterr(c, "record data of stream '%s' is not a JSON object", s->table);
    return LB_EINVAL;
  }
  n = data->n;
  if (c->async && !c->worker && worker_start(c) != 0) c->async = 0;   /* no thread: stay sync */
  if (c->failed) return c->failed;   /* errmsg still holds the writer's message */
  if (c->worker) {
    size_t mlen = meta_json ? strlen(meta_json) + 1 : 0;
    batch *b;
    row_head *h;
    char *copy;
    /* the record is copied (decoded strings follow it, never longer than
    ** it), so the caller's buffer may change as soon as we return */
    if ((rc = reserve(c, s->ncols, 2 * n + mlen)) != 0) return rc;
    b = c->fill;
    h = (row_head *)(void *)(b->rows + b->rows_n);
    copy = b->text + b->text_n;
    memcpy(copy, data->p, n);
    if (scan_row(s, copy + 1, copy + n - 1, (wval *)(void *)(h + 1), copy + n) != 0) {
      s->guess = 0;
      seterr(c, "record data of stream '%s' is not valid JSON", s->table);
      return LB_EINVAL;
    }
    b->text_n += 2 * n;
    h->s = s;
    uuid7_gen(c, h->uuid);
    format_ts(s, emitted_at_ms);
    memcpy(h->ts, s->ts, (size_t)s->ts_len);
    h->ts_len = s->ts_len;
    h->meta = NULL;
    if (meta_json) {
      memcpy(b->text + b->text_n, meta_json, mlen);
      h->meta = b->text + b->text_n;
      b->text_n += mlen;
    }
    b->rows_n += sizeof *h + (size_t)s->ncols * sizeof(wval);
    b->nrows++;
    s->rows++;
    if (b->nrows >= BATCH_ROWS) return submit(c);
    return 0;
  }
  if (s->arena_cap < n) {
    size_t cap = s->arena_cap ? s->arena_cap : 1024;
    char *np;
    while (cap < n) cap *= 2;
    if ((np = realloc(s->arena, cap)) == NULL) { seterr(c, "out of memory"); return LB_ENOMEM; }
    s->arena = np;
    s->arena_cap = cap;
  }
  if (scan_row(s, data->p + 1, data->p + n - 1, s->vals, s->arena) != 0) {
    s->guess = 0;
    seterr(c, "record data of stream '%s' is not valid JSON", s->table);
    return LB_EINVAL;
  }
  uuid7_gen(c, s->uuid);
  format_ts(s, emitted_at_ms);
  if ((rc = bind_step(s, s->vals, s->uuid, s->ts, s->ts_len, meta_json)) != SQLITE_OK)
    return write_failed(s, rc, c->errmsg, sizeof c->errmsg);
  s->rows++;
  return 0;
}

int lb_cache_stream_finish(lb_cache_stream *s, char *err, size_t errlen) {
  sbuf b = {NULL, 0, 0, 0};
  int rc;
  if (s->finished) return 0;
  if ((rc = barrier(s->c)) != 0) {
    copyerr(err, errlen, s->c->errmsg);
    return rc;
  }
  sqlite3_finalize(s->ins);          /* statements on the shadow table must go */
  sqlite3_finalize(s->ins_multi);
  s->ins = s->ins_multi = NULL;
  s->finished = 1;
  if (s->strategy != LB_WRITE_REPLACE) return 0;
  sb_add(&b, "DROP TABLE IF EXISTS ");
  sb_ident(&b, s->table);
  sb_add(&b, "; ALTER TABLE ");
  sb_ident(&b, s->target);
  sb_add(&b, " RENAME TO ");
  sb_ident(&b, s->table);
  if (b.oom) { seterr(s->c, "out of memory"); rc = LB_ENOMEM; }
  else rc = exec_sql(s->c, b.p);
  free(b.p);
  if (rc < 0) copyerr(err, errlen, s->c->errmsg);
  return rc;
}

int lb_cache_stream_abort(lb_cache_stream *s, char *err, size_t errlen) {
  sbuf b = {NULL, 0, 0, 0};
  int rc = 0;
  if (s->finished) return 0;
  barrier(s->c);                /* its rows are being dropped anyway */
  sqlite3_finalize(s->ins);
  sqlite3_finalize(s->ins_multi);
  s->ins = s->ins_multi = NULL;
  s->finished = 1;
  if (s->strategy != LB_WRITE_REPLACE) return 0;
  sb_add(&b, "DROP TABLE IF EXISTS ");
  sb_ident(&b, s->target);
  if (b.oom) { seterr(s->c, "out of memory"); rc = LB_ENOMEM; }
  else rc = exec_sql(s->c, b.p);
  free(b.p);
  if (rc < 0) copyerr(err, errlen, s->c->errmsg);
  return rc;
}

void lb_cache_stream_close(lb_cache_stream *s) {
  if (s == NULL) return;
  barrier(s->c);                /* the writer may still hold rows of it */
  if (s->prev) s->prev->next = s->next;
  else s->c->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  stream_free(s);
}

long long lb_cache_stream_rows_written(const lb_cache_stream *s) { return s->rows; }
const char *lb_cache_stream_table(const lb_cache_stream *s) { return s->table; }
const char *lb_cache_stream_name(const lb_cache_stream *s, size_t *len) {
  if (len) *len = s->name_len;
  return s->name;
}
const char *lb_cache_stream_namespace(const lb_cache_stream *s, size_t *len) {
  if (len) *len = s->ns_len;
  return s->ns;
}
lb_cache *lb_cache_stream_cache(const lb_cache_stream *s) { return s->c; }

/* --- state ------------------------------------------------------------------- */

/* The key of a state (lb_state_key_of): its name and namespace, into
** k->name / k->ns. A stream_name given by the caller must agree with the
** message (it is there for PyAirbyte's signature; the message decides),
** except for a STREAM state without a stream name, which it names.
** LB_EINVAL for invalid JSON, a disagreeing name, a key too long. */
typedef struct key_text { char name[512], ns[512]; size_t nlen, nslen; } key_text;

static int state_key(lb_cache *c, const char *stream_name, const char *json, size_t len,
                     key_text *k) {
  lb_jval top;
  lb_state_key sk;
  size_t erroff = 0;
  int rc = lb_jskim_validate(json, len, &top, &erroff);
  if (rc < 0) {
    seterr(c, "invalid state JSON: %s at byte %zu", lb_jskim_strerror(rc), erroff);
    return LB_EINVAL;
  }
  lb_state_key_of(&top, &sk);
  if (lb_state_key_text(&sk, k->name, sizeof k->name, &k->nlen, k->ns, sizeof k->ns, &k->nslen) != 0) {
    seterr(c, "state key too long");
    return LB_EINVAL;
  }
  if (stream_name && stream_name[0] && sk.type == LB_STATE_LEGACY) {
    lb_jval t;   /* a STREAM state that does not name its stream: the caller does */
    if (lb_jobj_find(&top, "type", 4, &t) && lb_jstr_eq(&t, "STREAM", 6) &&
        (k->nlen = strlen(stream_name)) < sizeof k->name) {
      memcpy(k->name, stream_name, k->nlen + 1);
      return 0;
    }
  }
  if (stream_name && stream_name[0] &&
      (strlen(stream_name) != k->nlen || memcmp(stream_name, k->name, k->nlen) != 0)) {
    seterr(c, "the state is for stream '%.200s', not '%.200s'", k->name, stream_name);
    return LB_EINVAL;
  }
  return 0;
}

static int prep(lb_cache *c, sqlite3_stmt **st, const char *sql) {
  if (*st) return 0;
  if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
    return sqlerr(c, sql);
  return 0;
}

static int step_done(lb_cache *c, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  if (rc != SQLITE_DONE) return sqlerr(c, sqlite3_sql(st));
  return 0;
}

#define NOW_SQL "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')"
#define PUT_STATE_SQL "INSERT OR REPLACE INTO _airbyte_state (" STATE_COLS ", stream_namespace)" \
                      " VALUES (?1, ?3, ?2 || ?3, ?4, " NOW_SQL ", ?5)"

int lb_cache_put_state(lb_cache *c, const char *source_name, const char *stream_name,
                       const char *state_json, size_t len) {
  key_text k;
  int rc;
  if (source_name == NULL || state_json == NULL) { seterr(c, "source name and state required"); return LB_EINVAL; }
  if ((rc = barrier(c)) != 0) return rc;         /* state must not run ahead of data */
  if ((rc = state_key(c, stream_name, state_json, len, &k)) < 0) return rc;
  if ((rc = prep(c, &c->put_state, PUT_STATE_SQL)) < 0)
    return rc;
  sqlite3_bind_text(c->put_state, 1, source_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(c->put_state, 2, c->prefix, -1, SQLITE_STATIC);
  sqlite3_bind_text(c->put_state, 3, k.name, (int)k.nlen, SQLITE_STATIC);
  sqlite3_bind_text(c->put_state, 4, state_json, (int)len, SQLITE_STATIC);
  sqlite3_bind_text(c->put_state, 5, k.ns, (int)k.nslen, SQLITE_STATIC);
  return step_done(c, c->put_state);
}

/* --- queued transactions -------------------------------------------------------------
** BEGIN, COMMIT and the state stored before a COMMIT are jobs in the writer's
** queue, run in order with the rows (run_job). The caller hands them over and
** goes on: it never waits for the write lock (another connection holds it),
** for a commit's writes, or for a checkpoint; it asks lb_cache_wait_idle when
** it needs them done, with a deadline, and yields meanwhile. In sync mode
** (no writer thread) they run at once on the caller's thread.
**
** Taking turns.  SQLite's write lock is not fair: a writer that commits and
** begins again at once keeps it, while another one polls for it in its busy
** handler and times out. So writers of one file line up at a turnstile
** beside it ("<file>-lbturn", flock): a writer waiting for the lock holds it
** shared; one that has just committed checks for such a waiter and, if there
** is one, waits (up to GIVE_WAY_MS) until the waiter has the lock before it
** begins again. That works between processes and between connections of one
** process alike, since each connection opens the file itself. */

struct state_job {
  const char *source, *name, *ns, *json;
  size_t name_len, ns_len, json_len;
  char buf[1];                  /* the four texts */
};

static void job_free(batch *b) {
  if (b == NULL) return;
  free(b->state);
  free(b);
}

static int quitting(lb_cache *c) {
  int quit;
  if (!c->worker) return 0;
  uv_mutex_lock(&c->mu);
  quit = c->quit;
  uv_mutex_unlock(&c->mu);
  return quit;
}

/* SQLite's busy handler for the connection, on whichever thread uses it: a
** transaction step (lock_wait) waits up to LOCK_WAIT_MS, anything else the
** plain BUSY_TIMEOUT_MS, polling every millisecond (SQLite's own handler
** sleeps up to 100 ms between tries, and so misses a lock that is free
** only between another writer's commit and its next begin). */
static int on_busy(void *ud, int n) {
  lb_cache *c = ud;
  uint64_t now = uv_hrtime();
  uint64_t limit = (uint64_t)(c->lock_wait ? LOCK_WAIT_MS : BUSY_TIMEOUT_MS) * 1000000u;
  if (n == 0) c->busy_since = now;
  if (now - c->busy_since >= limit || (c->lock_wait && quitting(c))) return 0;
  uv_sleep(1);
  return 1;
}

/* The turnstile's descriptor, opened on first use; -1 when there is none
** (an in-memory database, a directory we cannot write: no turns then). */
static int turn_fd(lb_cache *c) {
  if (c->turn_fd == -1) {
    const char *fn = sqlite3_db_filename(c->db, "main");
    char path[4096];
    c->turn_fd = -2;
    if (fn && *fn && snprintf(path, sizeof path, "%s-lbturn", fn) < (int)sizeof path) {
      int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd >= 0) c->turn_fd = fd;
    }
  }
  return c->turn_fd >= 0 ? c->turn_fd : -1;
}

static void give_way(lb_cache *c) {
  int fd = turn_fd(c);
  uint64_t until;
  if (fd < 0) return;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {     /* a writer is waiting for the lock */
    until = uv_hrtime() + (uint64_t)GIVE_WAY_MS * 1000000u;
    do uv_sleep(1);
    while (flock(fd, LOCK_EX | LOCK_NB) != 0 && uv_hrtime() < until && !quitting(c));
  }
  flock(fd, LOCK_UN);
}

/* One transaction step; 0 or an error code with its message in msg. */
static int run_job(lb_cache *c, batch *b, char *msg, size_t msglen) {
  char why[256];
  const char *sql = NULL;
  int rc = SQLITE_OK, fd;
  switch (b->job) {
    case JOB_BEGIN:
      if (sqlite3_get_autocommit(c->db) == 0) {
        snprintf(msg, msglen, "a transaction is already open");
        return LB_EINVAL;
      }
      ckpt_bound_wal(c);
      fd = turn_fd(c);
      if (fd >= 0) flock(fd, LOCK_SH);          /* waiting: holders give way */
      c->lock_wait = c->worker;                 /* sync mode: the caller's thread, as before */
      rc = sqlite3_exec(c->db, sql = "BEGIN IMMEDIATE", NULL, NULL, NULL);
      c->lock_wait = 0;
      if (fd >= 0) flock(fd, LOCK_UN);
      break;
    case JOB_COMMIT:
      if (sqlite3_get_autocommit(c->db)) {
        snprintf(msg, msglen, "no transaction is open");
        return LB_EINVAL;
      }
      rc = sqlite3_exec(c->db, sql = "COMMIT", NULL, NULL, NULL);
      if (rc == SQLITE_OK) give_way(c);
      break;
    case JOB_STATE: {
      const state_job *j = b->state;
      sql = "INSERT OR REPLACE INTO _airbyte_state";
      if (c->put_state == NULL &&
          (rc = sqlite3_prepare_v3(c->db, PUT_STATE_SQL, -1, SQLITE_PREPARE_PERSISTENT, &c->put_state,
                                   NULL)) != SQLITE_OK)
        break;
      sqlite3_bind_text(c->put_state, 1, j->source, -1, SQLITE_STATIC);
      sqlite3_bind_text(c->put_state, 2, c->prefix, -1, SQLITE_STATIC);
      sqlite3_bind_text(c->put_state, 3, j->name, (int)j->name_len, SQLITE_STATIC);
      sqlite3_bind_text(c->put_state, 4, j->json, (int)j->json_len, SQLITE_STATIC);
      sqlite3_bind_text(c->put_state, 5, j->ns, (int)j->ns_len, SQLITE_STATIC);
      rc = sqlite3_step(c->put_state);
      if (rc == SQLITE_DONE) rc = SQLITE_OK;
      else rc = sqlite3_errcode(c->db);
      sqlite3_reset(c->put_state);
      sqlite3_clear_bindings(c->put_state);
      break;
    }
    default:
      break;
  }
  if (rc == SQLITE_OK) return 0;
  sqlite_why(c, c->db, why, sizeof why);
  if ((rc & 0xff) == SQLITE_BUSY)
    snprintf(msg, msglen, "%.200s: another writer held the cache file %.200s for more than %d s (in: %s)",
             why, c->path, LOCK_WAIT_MS / 1000, sql);
  else
    snprintf(msg, msglen, "%.250s (in: %s)", why, sql);
  return rc == SQLITE_NOMEM ? LB_ENOMEM : LB_CACHE_ESQL;
}

/* Hands a job to the writer after the rows filled so far (neither waits for
** room: a job is small, and the pump waits for room before a STATE), or runs
** it now in sync mode. Takes b. Returns the writer's sticky error, if any. */
static int queue_job(lb_cache *c, batch *b) {
  int err;
  if (c->async && !c->worker && worker_start(c) != 0) c->async = 0;   /* no thread: stay sync */
  if (!c->worker) {
    char msg[sizeof c->errmsg];
    err = run_job(c, b, msg, sizeof msg);
    job_free(b);
    if (err) memcpy(c->errmsg, msg, sizeof msg);
    return err;
  }
  uv_mutex_lock(&c->mu);
  if (c->fill && c->fill->nrows > 0) {
    enqueue(c, c->fill);
    c->fill = c->spare;
    if (c->spare) c->spare = c->spare->next;
  }
  enqueue(c, b);
  uv_cond_broadcast(&c->cv);
  err = c->async_err;
  if (err) memcpy(c->errmsg, c->async_msg, sizeof c->errmsg);
  uv_mutex_unlock(&c->mu);
  if (err) c->failed = err;
  return err;
}

static batch *job_new(lb_cache *c, int kind) {
  batch *b = calloc(1, sizeof *b);
  if (b == NULL) { seterr(c, "out of memory"); return NULL; }
  b->job = kind;
  return b;
}

/* Nothing queued or running: the caller has seen every outcome. */
static int writer_idle(lb_cache *c) {
  int idle;
  if (!c->worker) return 1;
  if (c->fill && c->fill->nrows > 0) return 0;
  uv_mutex_lock(&c->mu);
  idle = c->queued == 0 && !c->busy && !c->begin_pending;
  uv_mutex_unlock(&c->mu);
  return idle;
}

int lb_cache_begin_queued(lb_cache *c) {
  batch *b;
  if (writer_idle(c)) {         /* as lb_cache_begin: a new transaction forgets the failed one */
    clear_async_err(c);
    if (lb_cache_in_transaction(c)) { seterr(c, "a transaction is already open"); return LB_EINVAL; }
  } else if (c->failed) {
    return c->failed;
  }
  if ((b = job_new(c, JOB_BEGIN)) == NULL) return LB_ENOMEM;
  return queue_job(c, b);
}

int lb_cache_commit_queued(lb_cache *c, const char *source_name, const char *state_json, size_t len,
                           int begin_again) {
  batch *st = NULL, *cm, *bg = NULL;
  int rc;
  if (c->failed) return c->failed;      /* rows were lost: the caller must roll back */
  if (state_json) {
    key_text k;
    size_t slen;
    state_job *j;
    char *p;
    if (source_name == NULL) { seterr(c, "source name and state required"); return LB_EINVAL; }
    if ((rc = state_key(c, NULL, state_json, len, &k)) < 0) return rc;
    slen = strlen(source_name);
    if ((st = job_new(c, JOB_STATE)) == NULL) return LB_ENOMEM;
    if ((j = malloc(sizeof *j + slen + k.nlen + k.nslen + len + 4)) == NULL) {
      free(st);
      seterr(c, "out of memory");
      return LB_ENOMEM;
    }
    p = j->buf;
    j->source = p; memcpy(p, source_name, slen + 1); p += slen + 1;
    j->name = p; memcpy(p, k.name, k.nlen); p[k.nlen] = '\0'; p += k.nlen + 1; j->name_len = k.nlen;
    j->ns = p; memcpy(p, k.ns, k.nslen); p[k.nslen] = '\0'; p += k.nslen + 1; j->ns_len = k.nslen;
    j->json = p; memcpy(p, state_json, len); p[len] = '\0'; j->json_len = len;
    st->state = j;
  }
  if ((cm = job_new(c, JOB_COMMIT)) == NULL || (begin_again && (bg = job_new(c, JOB_BEGIN)) == NULL)) {
    job_free(st);
    free(cm);
    return LB_ENOMEM;
  }
  if (bg) bg->lazy = 1;
  if (st && (rc = queue_job(c, st)) != 0) { free(cm); free(bg); return rc; }
  if ((rc = queue_job(c, cm)) != 0) { free(bg); return rc; }
  return bg ? queue_job(c, bg) : 0;
}

static int each_state(lb_cache *c, sqlite3_stmt *st, lb_cache_state_cb cb, void *ud) {
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
const char *const lb__cache_get_states_sql =
  "SELECT stream_name, state_json, stream_namespace FROM _airbyte_state WHERE source_name = ?1"
  " AND substr(table_name, 1, length(?2)) = ?2 ORDER BY stream_namespace, stream_name";

int lb_cache_get_states(lb_cache *c, const char *source_name, lb_cache_state_cb cb, void *ud) {
  sqlite3_stmt *st = NULL;
  if (source_name == NULL || cb == NULL) { seterr(c, "source name and callback required"); return LB_EINVAL; }
  barrier(c);
  if (sqlite3_prepare_v2(c->db, lb__cache_get_states_sql, -1, &st, NULL) != SQLITE_OK)
    return sqlerr(c, lb__cache_get_states_sql);
  sqlite3_bind_text(st, 1, source_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, c->prefix, -1, SQLITE_STATIC);
  return each_state(c, st, cb, ud);
}

int lb_cache_put_destination_state(lb_cache *c, const char *destination_name,
                                   const char *config_hash, const char *source_name,
                                   const char *stream_name, const char *state_json, size_t len) {
  key_text k;
  int rc;
  if (destination_name == NULL || source_name == NULL || state_json == NULL) {
    seterr(c, "destination name, source name and state required");
    return LB_EINVAL;
  }
  if ((rc = barrier(c)) != 0) return rc;
  if ((rc = state_key(c, stream_name, state_json, len, &k)) < 0) return rc;
  if ((rc = prep(c, &c->put_dstate,
                 "INSERT OR REPLACE INTO _airbyte_destination_state (" DSTATE_COLS ","
                 " stream_namespace, destination_config_hash)"
                 " VALUES (?1, ?2, ?3, ?4, " NOW_SQL ", ?5, ?6)")) < 0)
    return rc;
  sqlite3_bind_text(c->put_dstate, 1, destination_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(c->put_dstate, 2, source_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(c->put_dstate, 3, k.name, (int)k.nlen, SQLITE_STATIC);
  sqlite3_bind_text(c->put_dstate, 4, state_json, (int)len, SQLITE_STATIC);
  sqlite3_bind_text(c->put_dstate, 5, k.ns, (int)k.nslen, SQLITE_STATIC);
  sqlite3_bind_text(c->put_dstate, 6, config_hash ? config_hash : "", -1, SQLITE_STATIC);
  return step_done(c, c->put_dstate);
}

/* ?1 destination name, ?2 config hash (NULL: any), ?3 source (NULL: any) */
const char *const lb__cache_get_destination_states_sql =
  "SELECT stream_name, state_json, stream_namespace FROM _airbyte_destination_state"
  " WHERE destination_name = ?1 AND (?2 IS NULL OR destination_config_hash = ?2)"
  " AND (?3 IS NULL OR source_name = ?3)"
  " ORDER BY destination_config_hash, source_name, stream_namespace, stream_name";

int lb_cache_get_destination_states(lb_cache *c, const char *destination_name,
                                    const char *config_hash, const char *source_name,
                                    lb_cache_state_cb cb, void *ud) {
  sqlite3_stmt *st = NULL;
  const char *sql = lb__cache_get_destination_states_sql;
  if (destination_name == NULL || cb == NULL) { seterr(c, "destination name and callback required"); return LB_EINVAL; }
  barrier(c);
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

static int ledger_args(lb_cache *c, const lb_cache_delivery *d) {
  if (d == NULL || d->destination_name == NULL || d->source_name == NULL || d->stream_name == NULL) {
    seterr(c, "destination name, source name and stream name required");
    return LB_EINVAL;
  }
  return 0;
}

int lb_cache_get_delivered(lb_cache *c, const lb_cache_delivery *d, char *raw_id, size_t cap) {
  int rc;
  if ((rc = ledger_args(c, d)) < 0) return rc;
  if (raw_id == NULL || cap == 0) { seterr(c, "no buffer for the raw id"); return LB_EINVAL; }
  if ((rc = barrier(c)) != 0) return rc;
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

int lb_cache_put_delivered(lb_cache *c, const lb_cache_delivery *d, const char *raw_id) {
  int rc;
  if ((rc = ledger_args(c, d)) < 0) return rc;
  if (raw_id == NULL || raw_id[0] == '\0') { seterr(c, "no raw id"); return LB_EINVAL; }
  if ((rc = barrier(c)) != 0) return rc;
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

int lb_cache_put_quarantine(lb_cache *c, const char *source_name, const char *stream, size_t stream_len,
                            const char *ns, size_t ns_len, const char *record_json, size_t record_len,
                            const char *reasons_json, size_t reasons_len, long long emitted_at_ms) {
  static const char *const sql =
    "INSERT INTO _airbyte_quarantine (source_name, stream_name, stream_namespace, record_json,"
    " reasons, _airbyte_extracted_at, quarantined_at) VALUES (?1, ?2, ?3, ?4, ?5,"
    " strftime('%Y-%m-%dT%H:%M:%f+00:00', ?6 / 1000.0, 'unixepoch'), " NOW_SQL ")";
  sqlite3_stmt *st = NULL;
  int rc;
  if (source_name == NULL || stream == NULL || record_json == NULL || reasons_json == NULL) {
    seterr(c, "quarantine: source, stream, record and reasons required");
    return LB_EINVAL;
  }
  if (emitted_at_ms < LB_CACHE_MIN_MS) emitted_at_ms = LB_CACHE_MIN_MS;
  if (emitted_at_ms > LB_CACHE_MAX_MS) emitted_at_ms = LB_CACHE_MAX_MS;
  if ((rc = barrier(c)) != 0) return rc;   /* after the rows queued before it, in their transaction */
  if ((rc = exec_sql(c, "CREATE TABLE IF NOT EXISTS _airbyte_quarantine (source_name VARCHAR NOT NULL,"
                        " stream_name VARCHAR NOT NULL, stream_namespace VARCHAR NOT NULL DEFAULT '',"
                        " record_json JSON NOT NULL, reasons JSON NOT NULL,"
                        " _airbyte_extracted_at TIMESTAMP WITH TIME ZONE,"
                        " quarantined_at TIMESTAMP WITH TIME ZONE)")) < 0)
    return rc;
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) return sqlerr(c, sql);
  sqlite3_bind_text(st, 1, source_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, stream, (int)stream_len, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, ns ? ns : "", ns ? (int)ns_len : 0, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, record_json, (int)record_len, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, reasons_json, (int)reasons_len, SQLITE_STATIC);
  sqlite3_bind_int64(st, 6, emitted_at_ms);
  rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sqlerr(c, sql);
  sqlite3_finalize(st);
  return rc;
}

int lb_cache_move_destination(lb_cache *c, const char *destination_name, const char *from_hash,
                              const char *to_hash) {
  static const char *const sql[] = {
    "UPDATE OR REPLACE _airbyte_destination_state SET destination_config_hash = ?3"
    " WHERE destination_name = ?1 AND destination_config_hash = ?2",
    "UPDATE OR REPLACE _luabyte_destination_progress SET destination_config_hash = ?3"
    " WHERE destination_name = ?1 AND destination_config_hash = ?2",
  };
  size_t i;
  int rc;
  if (destination_name == NULL || from_hash == NULL || to_hash == NULL) {
    seterr(c, "destination name and both config hashes required");
    return LB_EINVAL;
  }
  if ((rc = barrier(c)) != 0) return rc;
  /* both tables or neither, inside a transaction of the caller's or not */
  if ((rc = exec_sql(c, "SAVEPOINT lb_move_destination")) < 0) return rc;
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
  if (rc < 0) {
    char msg[sizeof c->errmsg];
    memcpy(msg, c->errmsg, sizeof msg);
    exec_sql(c, "ROLLBACK TO lb_move_destination");
    exec_sql(c, "RELEASE lb_move_destination");
    memcpy(c->errmsg, msg, sizeof msg);
    return rc;
  }
  return exec_sql(c, "RELEASE lb_move_destination");
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

static uint64_t stream_lock_key(lb_cache *c, const char *source_name, const lb_cache_stream_id *id) {
  uint64_t h = 14695981039346656037ULL;
  h = fnv_add(h, c->prefix, strlen(c->prefix));
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

int lb_cache_lock_stream(lb_cache *c, const char *source_name, const lb_cache_stream_id *id,
                         long timeout_ms, char *err, size_t errlen) {
  char path[4200], what[400], who[300];
  const char *fn;
  stream_lock *l;
  uint64_t key, until;
  int fd, held_here = 0;
  if (source_name == NULL || id == NULL || id->name == NULL || id->name_len == 0) {
    seterr(c, "a source and a stream name are required");
    copyerr(err, errlen, c->errmsg);
    return LB_EINVAL;
  }
  describe_stream(what, sizeof what, source_name, id);
  key = stream_lock_key(c, source_name, id);
  fn = sqlite3_db_filename(c->db, "main");
  if (fn == NULL || *fn == '\0') return 0;      /* in memory: no other runner can see it */
  if (snprintf(path, sizeof path, "%s-lbstreams", fn) >= (int)sizeof path) {
    seterr(c, "the cache path is too long for its stream locks");
    copyerr(err, errlen, c->errmsg);
    return LB_EINVAL;
  }
  if (mkdir(path, 0755) != 0 && errno != EEXIST) {
    seterr(c, "cannot lock %s: cannot create %.300s: %s", what, path, strerror(errno));
    copyerr(err, errlen, c->errmsg);
    return LB_CACHE_ESQL;
  }
  snprintf(path + strlen(path), sizeof path - strlen(path), "/%016llx", (unsigned long long)key);
  if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
    seterr(c, "cannot lock %s: cannot open %.300s: %s", what, path, strerror(errno));
    copyerr(err, errlen, c->errmsg);
    return LB_CACHE_ESQL;
  }
  until = uv_hrtime() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
  for (;;) {
    for (l = c->locks; l && l->key != key; l = l->next) {}
    held_here = l != NULL;                      /* this cache holds it: a flock would not refuse */
    if (!held_here && flock(fd, LOCK_EX | LOCK_NB) == 0) break;
    if (!held_here && errno != EWOULDBLOCK && errno != EINTR) {
      seterr(c, "cannot lock %s: %s", what, strerror(errno));
      close(fd);
      copyerr(err, errlen, c->errmsg);
      return LB_CACHE_ESQL;
    }
    if (uv_hrtime() >= until) {
      if (held_here) snprintf(who, sizeof who, "another reader in this process (pid %ld)", (long)getpid());
      else holder_text(fd, who, sizeof who);
      seterr(c, "%s is being read into this cache by %s", what, who);
      close(fd);
      copyerr(err, errlen, c->errmsg);
      return LB_CACHE_EBUSY;
    }
    uv_sleep(10);
  }
  if ((l = malloc(sizeof *l)) == NULL) {
    close(fd);                                  /* closing drops the lock */
    seterr(c, "out of memory");
    copyerr(err, errlen, c->errmsg);
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

void lb_cache_unlock_stream(lb_cache *c, const char *source_name, const lb_cache_stream_id *id) {
  stream_lock **pp, *l;
  uint64_t key;
  if (source_name == NULL || id == NULL || id->name == NULL) return;
  key = stream_lock_key(c, source_name, id);
  for (pp = &c->locks; *pp && (*pp)->key != key; pp = &(*pp)->next) {}
  if ((l = *pp) == NULL) return;                /* not held (an in-memory cache): nothing to do */
  *pp = l->next;
  if (ftruncate(l->fd, 0) != 0) {}              /* nobody holds it now */
  close(l->fd);                                 /* drops the flock */
  free(l);
}

static void locks_release_all(lb_cache *c) {
  while (c->locks) {
    stream_lock *l = c->locks;
    c->locks = l->next;
    close(l->fd);
    free(l);
  }
}
