/*
** cache_names.c - the stream -> table rules of cache.h ("Stream names"),
** once for every backend: the normalizer, the reserved space, the
** namespace fallback, collisions and identifier length. A backend only
** answers lookups (cache_backend.h: stream_rows, table_owner).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cache_backend.h"

#define LB_CACHE_REMAP_PREFIX "stream_"   /* for names in the reserved space */

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

/* --- the reserved space and identifier length ----------------------------------- */

/* Tables, indexes and anything else of ours (and of the database's own)
** live in these spaces; no stream table is ever named in them. Compared
** without regard to ASCII case, as SQLite compares names; normalized names
** are lower case already. */
int lb__cache_is_reserved(const lb_cache *c, const char *t) {
  const char *const *r;
  if (strncmp(t, "_airbyte_", 9) == 0 || strncmp(t, "_luabyte_", 9) == 0) return 1;
  for (r = c->ops->reserved; r && *r; r++)
    if (strncmp(t, *r, strlen(*r)) == 0) return 1;
  return 0;
}

/* A name longer than the backend's identifiers (Postgres: 63 bytes) keeps
** its first bytes and ends in "_" and 8 hex digits of a digest of the whole
** name: deterministic, and two long names that share their start still get
** two names (a digest collision is caught as a clash by the lookups). */
void lb__cache_fit_ident(const lb_cache *c, char *name) {
  size_t n = strlen(name), max = c->ops->max_ident, i;
  unsigned h = 2166136261u;               /* FNV-1a */
  if (max == 0 || n <= max || max < 16) return;
  for (i = 0; i < n; i++) { h ^= (unsigned char)name[i]; h *= 16777619u; }
  snprintf(name + max - 9, 10, "_%08x", h);
}

/* --- the stream -> table mapping ------------------------------------------------ */

/* A name for messages: quoted, control bytes (NUL...) as \u00XX, cut at
** 100 bytes. */
void lb__sb_name(lb_sbuf *b, const char *s, size_t n) {
  size_t i;
  lb__sb_addn(b, "'", 1);
  for (i = 0; i < n && i < 100; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", ch);
      lb__sb_add(b, esc);
    } else {
      lb__sb_addn(b, s + i, 1);
    }
  }
  lb__sb_add(b, n > 100 ? "...'" : "'");
}

void lb__sb_stream(lb_sbuf *b, const char *name, size_t nlen, const char *ns, size_t nslen) {
  lb__sb_add(b, "stream ");
  lb__sb_name(b, name, nlen);
  if (nslen) { lb__sb_add(b, " (namespace "); lb__sb_name(b, ns, nslen); lb__sb_add(b, ")"); }
}

/* normalize(prefix .. [a .. "_"] .. b) into *res (a fresh string); a
** name that falls in the reserved space gets LB_CACHE_REMAP_PREFIX in front. */
static int table_candidate(lb_cache *c, const char *a, size_t alen, const char *b, size_t blen,
                           char **res) {
  lb_sbuf raw = {NULL, 0, 0, 0};
  char buf[256], *out;
  long n;
  *res = NULL;
  lb__sb_addn(&raw, c->prefix, strlen(c->prefix));
  if (a) { lb__sb_addn(&raw, a, alen); lb__sb_addn(&raw, "_", 1); }
  lb__sb_addn(&raw, b, blen);
  if (raw.oom) { free(raw.p); lb__cache_seterr(c, "out of memory"); return LB_ENOMEM; }
  n = lb_cache_normalize(raw.p, raw.n, buf, sizeof buf);
  if (n < 0) {
    lb_sbuf m = {NULL, 0, 0, 0};
    lb__sb_stream(&m, b, blen, a, alen);
    lb__cache_seterr(c, "PyAirbyteNameNormalizationError: the table name of %s normalizes to nothing "
           "but underscores", m.p ? m.p : "a stream");
    free(m.p);
    free(raw.p);
    return LB_EINVAL;
  }
  if ((out = malloc((size_t)n + sizeof LB_CACHE_REMAP_PREFIX)) == NULL) {
    free(raw.p);
    lb__cache_seterr(c, "out of memory");
    return LB_ENOMEM;
  }
  if ((size_t)n < sizeof buf) memcpy(out, buf, (size_t)n + 1);
  else lb_cache_normalize(raw.p, raw.n, out, (size_t)n + 1);
  free(raw.p);
  if (lb__cache_is_reserved(c, out)) {
    memmove(out + sizeof LB_CACHE_REMAP_PREFIX - 1, out, (size_t)n + 1);
    memcpy(out, LB_CACHE_REMAP_PREFIX, sizeof LB_CACHE_REMAP_PREFIX - 1);
  }
  lb__cache_fit_ident(c, out);
  *res = out;
  return 0;
}

enum { OWN_FREE, OWN_SELF, OWN_STREAM, OWN_OBJECT };

/* Who holds table name t: nobody (or a table no stream row claims, which a
** stream may adopt, as PyAirbyte would write into it), this stream, another
** stream (described into *other; *same_name is set when its prefix and name
** are ours, i.e. only the namespace differs), or another kind of object (an
** index, a view: described into *other). Negative on lookup errors. */
static int table_owner(lb_cache *c, const char *t, const char *name, size_t nlen,
                       const char *ns, size_t nslen, lb_sbuf *other, int *same_name) {
  lb_cache_name_owner o;
  int rc;
  *same_name = 0;
  memset(&o, 0, sizeof o);
  if ((rc = c->ops->table_owner(c, t, &o)) < 0) return rc;
  if (o.kind == LB_NAME_STREAM) {
    size_t plen = strlen(c->prefix);
    int same_prefix = o.prefix_len == plen && memcmp(o.prefix, c->prefix, plen) == 0;
    *same_name = same_prefix && o.name_len == nlen && memcmp(o.name, name, nlen) == 0;
    if (*same_name && o.ns_len == nslen && memcmp(o.ns, ns, nslen) == 0) return OWN_SELF;
    lb__sb_stream(other, o.name, o.name_len, o.ns, o.ns_len);
    return OWN_STREAM;
  }
  if (o.kind == LB_NAME_OBJECT) {
    lb__sb_add(other, "an existing ");
    lb__sb_add(other, o.what ? o.what : "object");
    return OWN_OBJECT;
  }
  return OWN_FREE;
}

/* The rows of the stream under the prefix: the first one's table, the
** other ones' namespaces (for the message when there are several). */
typedef struct rows_seen {
  int n;
  char *table;
  lb_sbuf others;
} rows_seen;

static int seen_row(void *ud, const lb_cache_stream_row *row) {
  rows_seen *r = ud;
  if (r->n++ == 0) {
    size_t n = strlen(row->table);
    if ((r->table = malloc(n + 1)) == NULL) return LB_ENOMEM;
    memcpy(r->table, row->table, n + 1);
  } else {
    lb__sb_add(&r->others, r->n == 2 ? "" : ", ");
    lb__sb_name(&r->others, row->ns, row->ns_len);
  }
  return 0;
}

/* The table of stream (ns, name) under the cache's table prefix, as a fresh
** string: its row in _airbyte_streams if it has one; else the first free
** of normalize(prefix + name) and, when only the namespace differs from
** the stream holding that, normalize(prefix + ns + "_" + name) (reserved
** names remapped, see table_candidate). Any other clash is a
** PyAirbyteNameNormalizationError naming both streams. Nothing is written:
** the backend's stream_open claims the name. ns NULL (lookups only) matches
** the one row of that name in any namespace, and is an error when there
** are several. */
int lb__cache_resolve_table(lb_cache *c, const char *name, size_t nlen, const char *ns, size_t nslen,
                            char **out) {
  lb_sbuf other = {NULL, 0, 0, 0}, self = {NULL, 0, 0, 0};
  rows_seen seen;
  char *t = NULL, *t2 = NULL;
  int rc, who, same_name;
  *out = NULL;
  memset(&seen, 0, sizeof seen);
  rc = c->ops->stream_rows(c, c->prefix, name, nlen, ns, nslen, seen_row, &seen);
  if (rc == LB_ENOMEM) lb__cache_seterr(c, "out of memory");
  if (rc < 0) { free(seen.table); free(seen.others.p); return rc; }
  if (seen.n > 1) {
    lb__sb_name(&self, name, nlen);
    lb__cache_seterr(c, "PyAirbyteInputError: stream %s exists in several namespaces (the first table is "
           "'%s', others in namespace %s): give the namespace", self.p ? self.p : "",
           seen.table ? seen.table : "", seen.others.p ? seen.others.p : "");
    free(seen.table); free(self.p); free(seen.others.p);
    return LB_EINVAL;
  }
  free(seen.others.p);
  if (seen.n == 1) {
    *out = seen.table;
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
    lb__sb_reset(&other);
    who = table_owner(c, t, name, nlen, ns, nslen, &other, &same_name);
  }
  if (who == OWN_FREE || who == OWN_SELF) { free(other.p); *out = t; return 0; }
  rc = who;
  if (who >= 0) {
    lb__sb_stream(&self, name, nlen, ns, nslen);
    lb__cache_seterr(c, "PyAirbyteNameNormalizationError: %s and %s both need the table '%s' (their names "
           "normalize alike); rename one, read them into separate caches or use a table_prefix",
           self.p ? self.p : "a stream", other.p ? other.p : "another stream", t);
    rc = LB_EINVAL;
  }
  free(t); free(self.p); free(other.p);
  return rc;
}
