/*
** cache.c - the storage interface of cache.h, once for every backend.
**
** What is the same whatever keeps the data lives here: argument checks, the
** table prefix, the UUIDv7 generator of _airbyte_raw_id, the error message,
** timestamps, the stream -> table rules (through cache_names.c), the key of
** a state (lb_state_key_of) and the rules of state. The rest is the
** backend's, through its ops table (cache_backend.h).
*/
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cache_backend.h"
#include "digest.h"
#include "ids.h"
#include "protocol.h"

#define NORM_STACK 256

static void copyerr(char *err, size_t errlen, const char *msg) {
  if (err && errlen) snprintf(err, errlen, "%s", msg);
}

static char *dupstr(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) { memcpy(p, s, n); p[n] = '\0'; }
  return p;
}

/* --- strings ------------------------------------------------------------------ */

/* A double-quoted identifier; normalized names never hold quotes, but the
** doubling keeps any other name safe too. */
void lb__sb_ident(lb_sbuf *b, const char *s) {
  const char *q;
  lb__sb_addn(b, "\"", 1);
  while ((q = strchr(s, '"')) != NULL) {
    lb__sb_addn(b, s, (size_t)(q - s) + 1);
    lb__sb_addn(b, "\"", 1);
    s = q + 1;
  }
  lb__sb_add(b, s);
  lb__sb_addn(b, "\"", 1);
}


int lb_cache_buf_reserve(lb_cache_buf *b, size_t more) {
  size_t cap;
  char *p;
  if (b->len + more <= b->cap) return 0;
  cap = b->cap ? b->cap : 64 * 1024;
  while (cap < b->len + more) cap *= 2;
  if ((p = realloc(b->p, cap)) == NULL) return LB_ENOMEM;
  b->p = p;
  b->cap = cap;
  return 0;
}

/* --- UUIDv7 (ids.c) ------------------------------------------------------------- */

void lb_cache_uuid7(lb_cache *c, char out[37]) {
  lb__uuid7(&c->rng, &c->uuid, lb__wall_ms(), out);
}

/* --- timestamps ------------------------------------------------------------------ */

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
void lb__cache_ts(lb_cache_ts *s, long long ms) {
  long long sec;
  int frac;
  /* far outside the range the arithmetic below overflows; inside it the
  ** year has four digits, as readers of the column expect */
  if (ms < LB_CACHE_MIN_MS) ms = LB_CACHE_MIN_MS;
  if (ms > LB_CACHE_MAX_MS) ms = LB_CACHE_MAX_MS;
  sec = floordiv(ms, 1000);
  frac = (int)(ms - sec * 1000);
  if (sec != s->sec || s->len == 0) {
    long long days = floordiv(sec, 86400), y;
    int rem = (int)(sec - days * 86400), m, d;
    civil_from_days(days, &y, &m, &d);
    s->len = snprintf(s->text, sizeof s->text, "%04lld-%02d-%02dT%02d:%02d:%02d.%03d+00:00",
                         y, m, d, rem / 3600, rem / 60 % 60, rem % 60, frac);
    s->sec = sec;
  } else {
    char *p = s->text + s->len - 9;          /* the three digits after '.' */
    p[0] = (char)('0' + frac / 100);
    p[1] = (char)('0' + frac / 10 % 10);
    p[2] = (char)('0' + frac % 10);
  }
}


static long long days_from_civil(long long y, int m, int d) {
  long long era, yoe, doy, doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n) {
  int v = 0, i;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

long long lb__cache_parse_ts(const char *s, size_t len) {
  int y, mo, d, h, mi, sec, ms = 0, n = len > 64 ? 64 : (int)len;
  if (n < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':') return 0;
  y = digits(s, 4); mo = digits(s + 5, 2); d = digits(s + 8, 2);
  h = digits(s + 11, 2); mi = digits(s + 14, 2); sec = digits(s + 17, 2);
  if (y < 0 || mo < 1 || d < 1 || h < 0 || mi < 0 || sec < 0) return 0;
  if (n >= 21 && s[19] == '.') {
    /* 1 to 6 digits: PostgreSQL drops trailing zeros (".44" is 440 ms) */
    int i, scale = 100;
    for (i = 20; i < n && i < 23 && s[i] >= '0' && s[i] <= '9'; i++, scale /= 10) ms += (s[i] - '0') * scale;
  }
  return (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000 + ms;
}
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
    lb__cache_seterr(c, "invalid state JSON: %s at byte %zu", lb_jskim_strerror(rc), erroff);
    return LB_EINVAL;
  }
  lb_state_key_of(&top, &sk);
  if (lb_state_key_text(&sk, k->name, sizeof k->name, &k->nlen, k->ns, sizeof k->ns, &k->nslen) != 0) {
    lb__cache_seterr(c, "state key too long");
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
    lb__cache_seterr(c, "the state is for stream '%.200s', not '%.200s'", k->name, stream_name);
    return LB_EINVAL;
  }
  return 0;
}


/* --- the GLOBAL merge ----------------------------------------------------------- */

/* The stream of a GLOBAL state's stream_states entry, as a state key
** (lb_state_key_of's rule: a missing, null or "" namespace is none). */
static int entry_key(const lb_jval *entry, lb_state_key *k) {
  lb_jval desc, v;
  memset(k, 0, sizeof *k);
  if (entry->type != LB_JOBJECT || !lb_jobj_find(entry, "stream_descriptor", 17, &desc) ||
      desc.type != LB_JOBJECT || !lb_jobj_find(&desc, "name", 4, &v) || v.type != LB_JSTRING)
    return 0;
  k->type = LB_STATE_STREAM;
  k->name = v;
  if (lb_jobj_find(&desc, "namespace", 9, &v) && v.type == LB_JSTRING && v.n > 2) k->ns = v;
  return 1;
}

static int same_string(const lb_jval *a, const lb_jval *b) {
  char buf[1024];
  size_t n;
  if (a->type != b->type) return 0;
  if (a->type != LB_JSTRING) return 1;                 /* both none */
  if ((n = lb_jstr_decode(a, buf, sizeof buf)) >= sizeof buf)
    return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
  return lb_jstr_eq(b, buf, n);
}

/* Does the array of entries hold one for the stream of key k? */
static int has_entry(const lb_jval *states, const lb_state_key *k) {
  lb_jiter it;
  lb_jval e;
  lb_state_key ek;
  lb_jiter_init(&it, states);
  while (lb_jarr_next(&it, &e))
    if (entry_key(&e, &ek) && same_string(&ek.name, &k->name) && same_string(&ek.ns, &k->ns))
      return 1;
  return 0;
}

static int global_states(const char *json, size_t len, lb_jval *states) {
  lb_jval top, t, g;
  if (json == NULL || lb_jskim_validate(json, len, &top, NULL) != 0 || top.type != LB_JOBJECT ||
      !lb_jobj_find(&top, "type", 4, &t) || !lb_jstr_eq(&t, "GLOBAL", 6) ||
      !lb_jobj_find(&top, "global", 6, &g) || g.type != LB_JOBJECT ||
      !lb_jobj_find(&g, "stream_states", 13, states) || states->type != LB_JARRAY)
    return 0;
  return 1;
}

int lb__cache_merge_global(const char *stored, size_t slen, const char *incoming, size_t ilen,
                           lb_sbuf *out) {
  lb_jval olds, news, e;
  lb_jiter it;
  lb_state_key k;
  size_t close;
  int added = 0, empty;
  if (!global_states(incoming, ilen, &news) || !global_states(stored, slen, &olds)) return 0;
  close = (size_t)(news.p + news.n - 1 - incoming);      /* the array's ']' */
  {
    lb_jiter ni;
    lb_jval x;
    lb_jiter_init(&ni, &news);
    empty = !lb_jarr_next(&ni, &x);
  }
  lb_jiter_init(&it, &olds);
  while (lb_jarr_next(&it, &e)) {
    if (!entry_key(&e, &k) || has_entry(&news, &k)) continue;
    if (!added) lb__sb_addn(out, incoming, close);
    if (added || !empty) lb__sb_addc(out, ',');
    lb__sb_addn(out, e.p, e.n);
    added = 1;
  }
  if (!added) return 0;
  lb__sb_addn(out, incoming + close, ilen - close);
  return out->oom ? LB_ENOMEM : 1;
}

/* --- the head ------------------------------------------------------------------- */

int lb__cache_init(lb_cache *c, const lb_cache_ops *ops) {
  c->ops = ops;
  c->errmsg[0] = '\0';
  c->lock_timeout_ms = LB_CACHE_LOCK_TIMEOUT_MS;
  if ((c->prefix = dupstr("", 0)) == NULL) return LB_ENOMEM;
  lb__rng_seed(&c->rng, c);
  return 0;
}

void lb__cache_fini(lb_cache *c) {
  free(c->prefix);
  c->prefix = NULL;
}

int lb__cache_stream_init(lb_cache_stream *s, lb_cache *c, const lb_cache_stream_spec *spec) {
  s->c = c;
  s->strategy = spec->strategy;
  s->name_len = spec->id->name_len;
  s->ns_len = spec->id->ns ? spec->id->ns_len : 0;
  s->name = dupstr(spec->id->name, s->name_len);
  s->ns = dupstr(spec->id->ns ? spec->id->ns : "", s->ns_len);
  s->table = dupstr(spec->table, strlen(spec->table));
  if (!s->name || !s->ns || !s->table) {
    lb__cache_seterr(c, "out of memory");
    return LB_ENOMEM;
  }
  return 0;
}

void lb__cache_stream_fini(lb_cache_stream *s) {
  free(s->name);
  free(s->ns);
  free(s->table);
  s->name = s->ns = s->table = NULL;
}

/* --- opening, closing, transactions, async ---------------------------------------- */

void lb_cache_close(lb_cache *c) {
  if (c) c->ops->close(c);
}

const char *lb_cache_kind(const lb_cache *c) { return c->ops->kind; }
const char *lb_cache_errmsg(lb_cache *c) { return c->errmsg; }
void lb_cache_set_nowait(lb_cache *c, int on) { c->nowait = on != 0; }
void lb_cache_set_background(lb_cache *c, const lb_cpus *cpus) {
  if (cpus) c->background = *cpus;
  else memset(&c->background, 0, sizeof c->background);
}
void lb_cache_busy_reset(lb_cache *c) { c->busy = 0; c->exec_sql = NULL; }
int lb_cache_was_busy(lb_cache *c) {
  int b = c->busy;
  c->busy = 0;
  return b;
}
void lb_cache_set_lock_timeout(lb_cache *c, long ms) { c->lock_timeout_ms = ms < 0 ? 0 : ms; }
long lb_cache_lock_timeout(const lb_cache *c) { return c->lock_timeout_ms; }

int lb_cache_begin(lb_cache *c) { return c->ops->begin(c); }
int lb_cache_commit(lb_cache *c) { return c->ops->commit(c); }
int lb_cache_rollback(lb_cache *c) { return c->ops->rollback(c); }
int lb_cache_in_transaction(const lb_cache *c) { return c->ops->in_transaction(c); }
int lb_cache_set_async(lb_cache *c, int on) { return c->ops->set_async(c, on); }
int lb_cache_sync(lb_cache *c) { return c->ops->sync(c); }
int lb_cache_wait_room(lb_cache *c, size_t data_len, uint64_t deadline_ns) {
  return c->ops->wait_room(c, data_len, deadline_ns);
}
int lb_cache_wait_idle(lb_cache *c, uint64_t deadline_ns) {
  return c->ops->wait_idle(c, deadline_ns);
}

/* A backend without queued transactions runs them at once. */
int lb_cache_begin_queued(lb_cache *c) {
  return c->ops->begin_queued ? c->ops->begin_queued(c) : c->ops->begin(c);
}

const char *lb_cache_table_prefix(const lb_cache *c) { return c->prefix; }

int lb_cache_set_table_prefix(lb_cache *c, const char *prefix) {
  char *p = dupstr(prefix ? prefix : "", prefix ? strlen(prefix) : 0);
  if (p == NULL) { lb__cache_seterr(c, "out of memory"); return LB_ENOMEM; }
  free(c->prefix);
  c->prefix = p;
  return 0;
}

long lb_cache_table_name(lb_cache *c, const char *name, size_t name_len,
                         const char *ns, size_t ns_len, char *out, size_t cap) {
  char *t;
  size_t n;
  int rc;
  if (name == NULL || name_len == 0) { lb__cache_seterr(c, "a stream name is required"); return LB_EINVAL; }
  if ((rc = lb__cache_resolve_table(c, name, name_len, ns, ns_len, &t)) < 0) return rc;
  n = strlen(t);
  if (cap) { memcpy(out, t, n < cap ? n + 1 : cap - 1); out[n < cap ? n : cap - 1] = '\0'; }
  free(t);
  return (long)n;
}

/* --- streams ------------------------------------------------------------------------ */

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

/* Checks the request, decides the table (cache_names.c), maps the schema
** to columns and the primary key to them; the backend does the rest. */
lb_cache_stream *lb_cache_stream_open_id(lb_cache *c, const char *source_name,
                                         const lb_cache_stream_id *id,
                                         const char *json_schema, size_t schema_len,
                                         lb_write_strategy strategy,
                                         const char *const *primary_key,
                                         char *err, size_t errlen) {
  lb_cache_stream_spec spec;
  lb_cache_stream_id sid;
  lb_cache_schema *sch = NULL;
  lb_cache_stream *s = NULL;
  char *table = NULL;
  int pk[64], npk = 0;
  if (id == NULL || id->name == NULL || id->name_len == 0) {
    lb__cache_seterr(c, "a stream name is required");
    goto fail;
  }
  if (strategy != LB_WRITE_APPEND && strategy != LB_WRITE_MERGE && strategy != LB_WRITE_REPLACE) {
    lb__cache_seterr(c, "unknown write strategy %d", (int)strategy);
    goto fail;
  }
  sid = *id;
  if (sid.ns == NULL) { sid.ns = ""; sid.ns_len = 0; }
  if (lb__cache_resolve_table(c, sid.name, sid.name_len, sid.ns, sid.ns_len, &table) < 0) goto fail;
  if ((sch = calloc(1, sizeof *sch)) == NULL) { lb__cache_seterr(c, "out of memory"); goto fail; }
  if (lb__cache_schema_load(sch, json_schema, schema_len, c->errmsg, sizeof c->errmsg) < 0) goto fail;
  if (primary_key) {
    for (; primary_key[npk]; npk++) {
      char norm[NORM_STACK];
      long n = lb_cache_normalize(primary_key[npk], strlen(primary_key[npk]), norm, sizeof norm);
      int ci = n < 0 || (size_t)n >= sizeof norm ? -1 : lb__cache_schema_col(sch, norm, (size_t)n);
      if (npk >= (int)(sizeof pk / sizeof pk[0])) { lb__cache_seterr(c, "too many primary key columns"); goto fail; }
      if (ci < 0) {
        lb__cache_seterr(c, "primary key '%s' is not a property of stream '%s'", primary_key[npk],
                         sid.name);
        goto fail;
      }
      pk[npk] = ci;
    }
  }
  if (strategy == LB_WRITE_MERGE && npk == 0) {
    lb__cache_seterr(c, "PyAirbyteInputError: Cannot use merge strategy on a stream with no primary keys.");
    goto fail;
  }
  memset(&spec, 0, sizeof spec);
  spec.source_name = source_name ? source_name : "";
  spec.id = &sid;
  spec.table = table;
  spec.json_schema = json_schema;
  spec.schema_len = json_schema ? schema_len : 0;
  spec.schema = sch;
  spec.strategy = strategy;
  spec.pk = pk;
  spec.npk = npk;
  s = c->ops->stream_open(c, &spec);     /* takes sch over, success or not */
  sch = NULL;
  if (s == NULL) goto fail;
  free(table);
  return s;
fail:
  copyerr(err, errlen, c->errmsg);
  if (sch) { lb__cache_schema_free(sch); free(sch); }
  free(table);
  return NULL;
}

int lb_cache_stream_write(lb_cache_stream *s, const lb_jval *data,
                          long long emitted_at_ms, const char *meta_json) {
  if (data == NULL || data->type != LB_JOBJECT || data->n < 2 || data->p[0] != '{' ||
      data->p[data->n - 1] != '}') {
    lb__cache_seterr(s->c, "record data of stream '%s' is not a JSON object", s->table);
    return LB_EINVAL;
  }
  return s->c->ops->stream_write(s, data, emitted_at_ms, meta_json);
}

int lb_cache_stream_finish(lb_cache_stream *s, char *err, size_t errlen) {
  int rc = s->c->ops->stream_finish(s);
  if (rc < 0) copyerr(err, errlen, s->c->errmsg);
  return rc;
}

int lb_cache_stream_abort(lb_cache_stream *s, char *err, size_t errlen) {
  int rc = s->c->ops->stream_abort(s);
  if (rc < 0) copyerr(err, errlen, s->c->errmsg);
  return rc;
}

void lb_cache_stream_close(lb_cache_stream *s) {
  if (s) s->c->ops->stream_close(s);
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
lb_write_strategy lb_cache_stream_strategy(const lb_cache_stream *s) { return s->strategy; }

/* --- stream locks ---------------------------------------------------------------------- */

int lb_cache_lock_stream(lb_cache *c, const char *source_name, const lb_cache_stream_id *id,
                         long timeout_ms, char *err, size_t errlen) {
  if (source_name == NULL || id == NULL || id->name == NULL || id->name_len == 0) {
    lb__cache_seterr(c, "lock_stream: a source and a stream name are required");
    copyerr(err, errlen, c->errmsg);
    return LB_EINVAL;
  }
  return c->ops->lock_stream(c, source_name, id, timeout_ms < 0 ? 0 : timeout_ms, err, errlen);
}

void lb_cache_unlock_stream(lb_cache *c, const char *source_name, const lb_cache_stream_id *id) {
  if (source_name && id && id->name) c->ops->unlock_stream(c, source_name, id);
}

/* --- state ------------------------------------------------------------------------------- */

static int state_row(lb_cache *c, const char *stream_name, const char *json, size_t len,
                     key_text *k, lb_cache_state_row *row) {
  int rc;
  if ((rc = state_key(c, stream_name, json, len, k)) < 0) return rc;
  memset(row, 0, sizeof *row);
  row->key_name = k->name;
  row->key_name_len = k->nlen;
  row->key_ns = k->ns;
  row->key_ns_len = k->nslen;
  row->state_json = json;
  row->len = len;
  return 0;
}

int lb_cache_put_state(lb_cache *c, const char *source_name, const char *stream_name,
                       const char *state_json, size_t len) {
  key_text k;
  lb_cache_state_row row;
  int rc;
  if (source_name == NULL || state_json == NULL) {
    lb__cache_seterr(c, "source name and state required");
    return LB_EINVAL;
  }
  if ((rc = state_row(c, stream_name, state_json, len, &k, &row)) < 0) return rc;
  row.source_name = source_name;
  return c->ops->put_state(c, &row);
}

int lb_cache_commit_queued(lb_cache *c, const char *source_name, const char *state_json,
                           size_t len, int begin_again) {
  key_text k;
  lb_cache_state_row row;
  int rc;
  if (state_json) {
    if (source_name == NULL) { lb__cache_seterr(c, "source name and state required"); return LB_EINVAL; }
    if ((rc = state_row(c, NULL, state_json, len, &k, &row)) < 0) return rc;
    row.source_name = source_name;
  }
  if (c->ops->commit_queued) return c->ops->commit_queued(c, state_json ? &row : NULL, begin_again);
  if (state_json && (rc = c->ops->put_state(c, &row)) < 0) return rc;
  if ((rc = c->ops->commit(c)) < 0) return rc;
  return begin_again ? c->ops->begin(c) : 0;
}

int lb_cache_get_states(lb_cache *c, const char *source_name, lb_cache_state_cb cb, void *ud) {
  if (source_name == NULL || cb == NULL) {
    lb__cache_seterr(c, "source name and callback required");
    return LB_EINVAL;
  }
  return c->ops->get_states(c, source_name, c->prefix, cb, ud);
}

int lb_cache_put_destination_state(lb_cache *c, const char *destination_name,
                                   const char *config_hash, const char *source_name,
                                   const char *stream_name, const char *state_json, size_t len) {
  key_text k;
  lb_cache_state_row row;
  int rc;
  if (destination_name == NULL || source_name == NULL || state_json == NULL) {
    lb__cache_seterr(c, "destination name, source name and state required");
    return LB_EINVAL;
  }
  if ((rc = state_row(c, stream_name, state_json, len, &k, &row)) < 0) return rc;
  row.source_name = source_name;
  row.destination_name = destination_name;
  row.config_hash = config_hash ? config_hash : "";
  return c->ops->put_destination_state(c, &row);
}

int lb_cache_get_destination_states(lb_cache *c, const char *destination_name,
                                    const char *config_hash, const char *source_name,
                                    lb_cache_state_cb cb, void *ud) {
  if (destination_name == NULL || cb == NULL) {
    lb__cache_seterr(c, "destination name and callback required");
    return LB_EINVAL;
  }
  return c->ops->get_destination_states(c, destination_name, config_hash, source_name, cb, ud);
}

static int ledger_args(lb_cache *c, const lb_cache_delivery *d) {
  if (d == NULL || d->destination_name == NULL || d->source_name == NULL || d->stream_name == NULL) {
    lb__cache_seterr(c, "destination name, source name and stream name required");
    return LB_EINVAL;
  }
  return 0;
}

int lb_cache_get_delivered(lb_cache *c, const lb_cache_delivery *d, char *raw_id, size_t cap) {
  int rc;
  if ((rc = ledger_args(c, d)) < 0) return rc;
  if (raw_id == NULL || cap == 0) { lb__cache_seterr(c, "no buffer for the raw id"); return LB_EINVAL; }
  raw_id[0] = '\0';
  return c->ops->get_delivered(c, d, raw_id, cap);
}

int lb_cache_put_delivered(lb_cache *c, const lb_cache_delivery *d, const char *raw_id) {
  int rc;
  if ((rc = ledger_args(c, d)) < 0) return rc;
  if (raw_id == NULL || raw_id[0] == '\0') { lb__cache_seterr(c, "no raw id"); return LB_EINVAL; }
  return c->ops->put_delivered(c, d, raw_id);
}

int lb_cache_move_destination(lb_cache *c, const char *destination_name, const char *from_hash,
                              const char *to_hash) {
  if (destination_name == NULL || from_hash == NULL || to_hash == NULL) {
    lb__cache_seterr(c, "destination name and both config hashes required");
    return LB_EINVAL;
  }
  return c->ops->move_destination(c, destination_name, from_hash, to_hash);
}

int lb_cache_put_quarantine(lb_cache *c, const char *source_name, const char *stream, size_t stream_len,
                            const char *ns, size_t ns_len, const char *record_json, size_t record_len,
                            const char *reasons_json, size_t reasons_len, long long emitted_at_ms) {
  lb_cache_quarantine q;
  if (source_name == NULL || stream == NULL || record_json == NULL || reasons_json == NULL) {
    lb__cache_seterr(c, "quarantine: source, stream, record and reasons required");
    return LB_EINVAL;
  }
  if (emitted_at_ms < LB_CACHE_MIN_MS) emitted_at_ms = LB_CACHE_MIN_MS;
  if (emitted_at_ms > LB_CACHE_MAX_MS) emitted_at_ms = LB_CACHE_MAX_MS;
  q.source_name = source_name;
  q.stream = stream;
  q.stream_len = stream_len;
  q.ns = ns ? ns : "";
  q.ns_len = ns ? ns_len : 0;
  q.record_json = record_json;
  q.record_len = record_len;
  q.reasons_json = reasons_json;
  q.reasons_len = reasons_len;
  q.emitted_at_ms = emitted_at_ms;
  return c->ops->put_quarantine(c, &q);
}

/* --- the rules of state ------------------------------------------------------------------------ */

lb_state_disposition lb_cache_state_disposition(const lb_jval *state_msg, const lb_state_key *key,
                                                int stream_replaced, int any_replaced, int failed) {
  lb_jval v;
  if (state_msg && state_msg->type == LB_JOBJECT &&
      (lb_jobj_find(state_msg, "redactedConfig", 14, &v) || lb_jobj_find(state_msg, "logs", 4, &v)))
    return LB_STATE_SKIP;                /* a side channel, not a checkpoint */
  if (failed) return LB_STATE_SKIP;      /* nothing after a failure commits */
  if (key->type == LB_STATE_STREAM) {
    if (stream_replaced && key->ns.type == LB_JNONE) return LB_STATE_HOLD_STREAM;
    return LB_STATE_COMMIT;
  }
  return any_replaced ? LB_STATE_HOLD_GLOBAL : LB_STATE_COMMIT;
}

int lb_cache_state_count_mismatch(const lb_jval *state, const char *field, long long arrived,
                                  long long *expected) {
  lb_jval stats, n;
  double d;
  if (state == NULL || state->type != LB_JOBJECT || field == NULL ||
      !lb_jobj_find(state, field, strlen(field), &stats) || stats.type != LB_JOBJECT ||
      !lb_jobj_find(&stats, "recordCount", 11, &n) || n.type != LB_JNUMBER)
    return 0;
  d = lb_jnum_to_double(&n);
  if (!(d >= -9.2e18 && d <= 9.2e18)) return 0;
  {
    long long whole = (long long)d;                /* Lua's math.floor for counts >= 0 */
    if ((double)whole > d) whole--;
    if (whole == arrived) return 0;
    if (expected) *expected = whole;
  }
  return 1;
}

int lb_cache_state_identity(const char *json, size_t len, lb_state_key *key, lb_jval *state,
                            char digest[65]) {
  static const lb_jval null = { LB_JNULL, "null", 4 };
  lb_jval top, st, t, blob;
  if (json == NULL || lb_jskim_validate(json, len, &top, NULL) != 0 || top.type != LB_JOBJECT)
    return LB_EINVAL;
  st = top;                            /* a STATE message: its payload */
  if (lb_jobj_find(&top, "type", 4, &t) && lb_jstr_eq(&t, "STATE", 5) &&
      (!lb_jobj_find(&top, "state", 5, &st) || st.type != LB_JOBJECT))
    return LB_EINVAL;
  lb_state_key_of(&st, key);
  if (state) *state = st;
  /* the first blob present (false counts as absent, as in Lua's `or`) */
  if (!((lb_jobj_find(&st, "stream", 6, &blob) && blob.type != LB_JFALSE) ||
        (lb_jobj_find(&st, "global", 6, &blob) && blob.type != LB_JFALSE) ||
        (lb_jobj_find(&st, "data", 4, &blob) && blob.type != LB_JFALSE)))
    blob = null;
  return lb__json_digest_value(&blob, digest);
}

/* --- the read side -------------------------------------------------------------------------------- */

lb_cache_cursor *lb_cache_cursor_open(lb_cache *c, const lb_cache_cursor_spec *spec) {
  if (spec == NULL || spec->table == NULL || spec->stream == NULL) {
    lb__cache_seterr(c, "cursor: a table and a stream name are required");
    return NULL;
  }
  return c->ops->cursor_open(c, spec);
}

int lb_cache_cursor_next(lb_cache_cursor *cur, lb_cache_buf *out, const char **raw_id,
                         size_t *raw_id_len) {
  return cur->c->ops->cursor_next(cur, out, raw_id, raw_id_len);
}

void lb_cache_cursor_close(lb_cache_cursor *cur) {
  if (cur) cur->ops->cursor_close(cur);     /* the cache may be gone already */
}

/* --- ad-hoc SQL and introspection ---------------------------------------------------------------- */

/* A call again with the same text after LB_CACHE_EBUSY goes on after the
** statements that ran (lb_cache_set_nowait). */
int lb_cache_exec(lb_cache *c, const char *sql, size_t len) {
  size_t done = 0;
  int rc;
  if (sql == NULL) { lb__cache_seterr(c, "exec: no SQL"); return LB_EINVAL; }
  if (c->exec_sql == sql && c->exec_len == len) done = c->exec_done;
  c->exec_sql = NULL;
  c->exec_ran = 0;
  rc = c->ops->exec(c, sql + done, len - done);
  if (rc == LB_CACHE_EBUSY) {
    c->exec_sql = sql;
    c->exec_len = len;
    c->exec_done = done + c->exec_ran;
  }
  return rc;
}

long long lb_cache_changes(lb_cache *c) { return c->ops->changes(c); }

lb_cache_query *lb_cache_query_open(lb_cache *c, const char *sql, size_t len,
                                    const lb_cache_value *params, int nparams) {
  if (sql == NULL || nparams < 0 || (nparams > 0 && params == NULL)) {
    lb__cache_seterr(c, "query: no SQL");
    return NULL;
  }
  return c->ops->query_open(c, sql, len, params, nparams);
}

int lb_cache_query_ncols(lb_cache_query *q) { return q->c->ops->query_ncols(q); }
const char *lb_cache_query_col_name(lb_cache_query *q, int i) {
  return q->c->ops->query_col_name(q, i);
}
int lb_cache_query_col_kind(lb_cache_query *q, int i) { return q->c->ops->query_col_kind(q, i); }
int lb_cache_query_next(lb_cache_query *q, const lb_cache_value **row) {
  return q->c->ops->query_next(q, row);
}
void lb_cache_query_close(lb_cache_query *q) {
  if (q) q->c->ops->query_close(q);
}

int lb_cache_has_table(lb_cache *c, const char *table) {
  if (table == NULL) { lb__cache_seterr(c, "has_table: no table name"); return LB_EINVAL; }
  return c->ops->has_table(c, table);
}

int lb_cache_columns(lb_cache *c, const char *table, lb_cache_column_cb cb, void *ud) {
  if (table == NULL || cb == NULL) { lb__cache_seterr(c, "columns: table and callback required"); return LB_EINVAL; }
  return c->ops->columns(c, table, cb, ud);
}

int lb_cache_streams(lb_cache *c, lb_cache_streams_cb cb, void *ud) {
  if (cb == NULL) { lb__cache_seterr(c, "streams: no callback"); return LB_EINVAL; }
  return c->ops->streams(c, c->prefix, cb, ud);
}
