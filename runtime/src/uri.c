/*
** uri.c - URI reference resolution (RFC 3986 5.2) and percent-decoding,
** for the $id and $ref of JSON Schemas (see uri.h).
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "uri.h"

typedef struct uparts {
  const char *scheme, *auth, *path, *query, *frag;
  size_t scheme_n, auth_n, path_n, query_n, frag_n;
  int has_scheme, has_auth, has_query, has_frag;
} uparts;

static void uri_split(const char *u, uparts *r) {
  const char *p = u;
  memset(r, 0, sizeof *r);
  if (isalpha((unsigned char)*p)) {
    const char *q = p + 1;
    while (isalnum((unsigned char)*q) || *q == '+' || *q == '-' || *q == '.') q++;
    if (*q == ':') {
      r->has_scheme = 1; r->scheme = p; r->scheme_n = (size_t)(q - p);
      p = q + 1;
    }
  }
  if (p[0] == '/' && p[1] == '/') {
    const char *q = p + 2;
    while (*q && *q != '/' && *q != '?' && *q != '#') q++;
    r->has_auth = 1; r->auth = p + 2; r->auth_n = (size_t)(q - p - 2);
    p = q;
  }
  r->path = p;
  while (*p && *p != '?' && *p != '#') p++;
  r->path_n = (size_t)(p - r->path);
  if (*p == '?') {
    r->has_query = 1; r->query = ++p;
    while (*p && *p != '#') p++;
    r->query_n = (size_t)(p - r->query);
  }
  if (*p == '#') {
    r->has_frag = 1; r->frag = p + 1; r->frag_n = strlen(p + 1);
  }
}

/* RFC 3986 5.2.4: remove "." and ".." segments of path[0..n), append to o. */
static void remove_dots(lb_sbuf *o, const char *in, size_t n) {
  size_t start = o->n;
  const char *e = in + n;
  while (in < e) {
    size_t left = (size_t)(e - in);
    if (left >= 3 && !memcmp(in, "../", 3)) in += 3;
    else if (left >= 2 && !memcmp(in, "./", 2)) in += 2;
    else if (left >= 3 && !memcmp(in, "/./", 3)) in += 2;
    else if (left == 2 && !memcmp(in, "/.", 2)) { in += 1; lb__sb_addc(o, '/'); in += 1; }
    else if ((left >= 4 && !memcmp(in, "/../", 4)) || (left == 3 && !memcmp(in, "/..", 3))) {
      in += 3;
      while (o->n > start && o->p[o->n - 1] != '/') o->n--;
      if (o->n > start) o->n--;
      if (in == e) lb__sb_addc(o, '/');
    } else if ((left == 1 && *in == '.') || (left == 2 && !memcmp(in, "..", 2))) {
      in = e;
    } else {
      const char *q = in + (*in == '/');
      while (q < e && *q != '/') q++;
      lb__sb_addn(o, in, (size_t)(q - in));
      in = q;
    }
  }
  if (o->p && !o->oom) o->p[o->n] = '\0';
}

/* Resolve ref against base into o (RFC 3986 5.2.2). */
void lb__uri_resolve(lb_sbuf *o, const char *base, const char *ref) {
  uparts b, r;
  const char *query = NULL;
  size_t query_n = 0;
  int has_query = 0;
  uri_split(base, &b);
  uri_split(ref, &r);
  if (r.has_scheme) {
    lb__sb_addn(o, r.scheme, r.scheme_n); lb__sb_addc(o, ':');
    if (r.has_auth) { lb__sb_add(o, "//"); lb__sb_addn(o, r.auth, r.auth_n); }
    remove_dots(o, r.path, r.path_n);
    has_query = r.has_query; query = r.query; query_n = r.query_n;
  } else {
    if (b.has_scheme) { lb__sb_addn(o, b.scheme, b.scheme_n); lb__sb_addc(o, ':'); }
    if (r.has_auth) {
      lb__sb_add(o, "//"); lb__sb_addn(o, r.auth, r.auth_n);
      remove_dots(o, r.path, r.path_n);
      has_query = r.has_query; query = r.query; query_n = r.query_n;
    } else {
      if (b.has_auth) { lb__sb_add(o, "//"); lb__sb_addn(o, b.auth, b.auth_n); }
      if (r.path_n == 0) {
        lb__sb_addn(o, b.path, b.path_n);
        if (r.has_query) { has_query = 1; query = r.query; query_n = r.query_n; }
        else { has_query = b.has_query; query = b.query; query_n = b.query_n; }
      } else {
        if (r.path[0] == '/') {
          remove_dots(o, r.path, r.path_n);
        } else {
          /* merge: the base path up to its last '/', then the reference */
          lb_sbuf m = { NULL, 0, 0, 0 };
          const char *slash = NULL, *q;
          for (q = b.path; q < b.path + b.path_n; q++) if (*q == '/') slash = q;
          if (b.has_auth && b.path_n == 0) lb__sb_addc(&m, '/');
          else if (slash) lb__sb_addn(&m, b.path, (size_t)(slash - b.path + 1));
          lb__sb_addn(&m, r.path, r.path_n);
          if (m.oom) o->oom = 1;
          else remove_dots(o, m.p, m.n);
          free(m.p);
        }
        has_query = r.has_query; query = r.query; query_n = r.query_n;
      }
    }
  }
  if (has_query) { lb__sb_addc(o, '?'); lb__sb_addn(o, query, query_n); }
  if (r.has_frag) { lb__sb_addc(o, '#'); lb__sb_addn(o, r.frag, r.frag_n); }
  if (!o->p) lb__sb_addn(o, "", 0);
}

/* Percent-decode s[0..n) into o (a fragment is a JSON pointer or a name
** after this). */
void lb__pct_decode(lb_sbuf *o, const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n && lb__hexval((unsigned char)s[i + 1]) >= 0 &&
        lb__hexval((unsigned char)s[i + 2]) >= 0) {
      lb__sb_addc(o, (char)(lb__hexval((unsigned char)s[i + 1]) * 16 + lb__hexval((unsigned char)s[i + 2])));
      i += 2;
    } else {
      lb__sb_addc(o, s[i]);
    }
  }
  if (!o->p) lb__sb_addn(o, "", 0);
}
