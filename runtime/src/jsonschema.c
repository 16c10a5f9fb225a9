/*
** jsonschema.c - JSON Schema draft-07: compile once into nodes, then
** validate jskim spans against them.
**
** Compiling is a work list, not a recursion: a node is created (and queued)
** for each schema value the first time it is reached, keyed by the address
** of its first byte, so a subschema reached by several routes ($ref and
** inline) is one node and cycles cost nothing. Building a node registers its
** $id, pre-parses its keywords and queues its subschemas. $refs are resolved
** between rounds, once every reachable $id is known: a $ref to a document
** not yet seen asks the loader for it and its root joins the queue.
**
** Validation recurses over nodes with a depth limit. Each call carries, on
** the C stack, its instance path (only formatted when a message is written)
** and its frame (node, instance) so that a $ref that comes back to the same
** node for the same instance location is reported as a loop instead of
** recursing until the limit.
*/
#if !defined(_POSIX_C_SOURCE) && !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _POSIX_C_SOURCE 200809L   /* newlocale/uselocale */
#endif

#include <ctype.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jskim.h"
#include "jsonschema.h"
#include "errtab.h"
#include "textbuf.h"
#include "uri.h"
#include "ecma_regex.h"
#include "schema_format.h"

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

typedef unsigned char uchar;

/* ====================================================================== */
/* Error codes                                                              */
/* ====================================================================== */

const char *lb_schema_strerror(int code) {
  return lb__err_text(code);
}

/* Append the JSON text of a schema value (enum, const, pattern) for a
** message: white space outside strings dropped, so that a pretty-printed
** schema still gives a one-line message, and at most about max bytes, cut
** at a UTF-8 boundary and marked "...". */
static void sb_add_clip(lb_sbuf *b, const char *s, size_t n, size_t max) {
  size_t i, start = b->n;
  int in_str = 0;
  for (i = 0; i < n; i++) {
    char c = s[i];
    if (b->n - start >= max && ((uchar)c & 0xc0) != 0x80) {
      lb__sb_add(b, "...");
      return;
    }
    if (in_str) {
      if (c == '\\' && i + 1 < n) { lb__sb_addn(b, s + i, 2); i++; continue; }
      if (c == '"') in_str = 0;
    } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      continue;
    } else if (c == '"') {
      in_str = 1;
    }
    lb__sb_addc(b, c);
  }
}

/* ====================================================================== */
/* Types                                                                    */
/* ====================================================================== */

typedef struct node node;

/* A number keyword: exact when it is an integer that fits int64. */
typedef struct num {
  int       isint;
  long long i;
  double    d;
  lb_jval   v;       /* the schema's text, for messages */
} num;

typedef struct prop {        /* properties / dependencies member */
  const char *name;          /* decoded key */
  size_t      len;
  lb_jval     key;           /* raw key span, for messages */
  node       *sch;           /* schema (NULL for an array dependency) */
  lb_jval     req;           /* array dependency: its array span */
} prop;

typedef struct patprop {
  regex_t *re;               /* NULL: pattern could not be translated */
  node    *sch;
} patprop;

/* Type bits */
enum { T_NULL = 1, T_BOOL = 2, T_OBJECT = 4, T_ARRAY = 8, T_NUMBER = 16,
       T_STRING = 32, T_INTEGER = 64 };

/* Presence bits for the scalar keywords */
enum { H_ENUM = 1, H_CONST = 2, H_MULT = 4, H_MAX = 8, H_MIN = 16,
       H_XMAX = 32, H_XMIN = 64, H_UNIQUE = 128 };


struct node {
  lb_jval     v;             /* the schema value; v.p is the hash key */
  const char *base;          /* base URI of this schema (after its $id) */
  const char *loc;           /* "uri#/pointer", for warnings */
  node       *hnext;         /* hash chain */
  node       *qnext;         /* build queue */
  node       *rnext;         /* list of nodes with a $ref */
  signed char boolean;       /* 1 true, 0 false, -1 an object schema */
  unsigned    types;         /* T_* bits, 0 = any type */
  unsigned    has;           /* H_* bits */
  const char *ref;           /* absolute $ref, or NULL */
  node       *ref_to;
  lb_jval     enum_v, const_v;
  num         mult, max, min, xmax, xmin;
  long long   max_len, min_len, max_items, min_items, max_props, min_props;
  regex_t    *pattern;
  lb_jval     pattern_v;
  int         format;
  int         content_b64;   /* contentEncoding "base64" */
  int         content_json;  /* contentMediaType "application/json" */
  node       *items;         /* items as one schema */
  node      **items_arr;     /* items as an array */
  size_t      n_items;
  node       *add_items, *contains, *add_props, *prop_names;
  node       *if_, *then_, *else_, *not_;
  lb_jval    *req;           /* required: string spans */
  const char **req_name;
  size_t     *req_len;
  size_t      n_req;
  prop       *props;         /* sorted by name */
  size_t      n_props;
  patprop    *pprops;
  size_t      n_pprops;
  prop       *deps;
  size_t      n_deps;
  node      **all_of, **any_of, **one_of;
  size_t      n_all, n_any, n_one;
};

/* A document: the root text or one a $ref loaded. */
typedef struct doc {
  struct doc *next;
  const char *uri;           /* retrieval URI ("" for an anonymous root) */
  char       *text;          /* owned unless builtin */
  size_t      len;
  int         owned;
  lb_jval     top;
} doc;

/* A URI that names a schema: a document, an $id, or an "#anchor" $id. */
typedef struct res {
  struct res *next;
  const char *uri;
  node       *n;
} res;

/* URIs already given to the loader (found or not), so each is asked once. */
typedef struct tried {
  struct tried *next;
  const char   *uri;
} tried;

typedef struct rxlist {
  struct rxlist *next;
  regex_t        re;
} rxlist;

typedef struct ablock {
  struct ablock *next;
  size_t used, cap;
  /* data follows, aligned like max_align_t through the union below */
} ablock;

struct lb_schema {
  ablock      *arena;
  doc         *docs;
  int          ndocs;
  res         *res;
  tried       *tried;
  node       **htab;
  size_t       hcap, hcount;
  node        *qhead, *qtail;
  node        *refs;
  node        *root;
  rxlist      *rx;
  char       **warn;
  int          nwarn, warncap;
  unsigned     flags;
  int          max_depth;
  lb_schema_loader loader;
  void        *loader_ud;
  locale_t     cloc;         /* "C": regexes work on bytes, whatever the host's locale */
  int          err;          /* first compile error */
  char        *errbuf;
  size_t       errlen;
};

/* ====================================================================== */
/* Arena: every compile-time allocation, freed at once                     */
/* ====================================================================== */

#define ABLOCK 8192
#define AALIGN 16
#define AHDR (((sizeof(ablock) + AALIGN - 1) / AALIGN) * AALIGN)

static void *amalloc(lb_schema *s, size_t n) {
  ablock *b = s->arena;
  void *p;
  n = (n + AALIGN - 1) & ~(size_t)(AALIGN - 1);
  if (!b || b->cap - b->used < n) {
    size_t cap = n > ABLOCK ? n : ABLOCK;
    b = malloc(AHDR + cap);
    if (!b) return NULL;
    b->next = s->arena;
    b->used = 0;
    b->cap = cap;
    s->arena = b;
  }
  p = (char *)b + AHDR + b->used;
  b->used += n;
  return p;
}

static void *acalloc(lb_schema *s, size_t n) {
  void *p = amalloc(s, n ? n : 1);
  if (p) memset(p, 0, n);
  return p;
}

static char *astrndup(lb_schema *s, const char *p, size_t n) {
  char *d = amalloc(s, n + 1);
  if (!d) return NULL;
  if (n) memcpy(d, p, n);
  d[n] = '\0';
  return d;
}

/* ====================================================================== */
/* Compile errors and warnings                                             */
/* ====================================================================== */

static int set_err(lb_schema *s, int code, const char *fmt, ...) {
  va_list ap;
  if (s->err) return s->err;         /* the first error is the one to tell */
  s->err = code;
  if (s->errbuf && s->errlen) {
    va_start(ap, fmt);
    vsnprintf(s->errbuf, s->errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}

static void warn(lb_schema *s, const node *n, const char *fmt, ...) {
  lb_sbuf b = { NULL, 0, 0, 0 };
  va_list ap;
  if (s->nwarn == s->warncap) {
    int cap = s->warncap ? s->warncap * 2 : 8;
    char **nw = realloc(s->warn, (size_t)cap * sizeof *nw);
    if (!nw) { set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); return; }
    s->warn = nw;
    s->warncap = cap;
  }
  lb__sb_add(&b, n && n->loc ? n->loc : "#");
  lb__sb_add(&b, ": ");
  va_start(ap, fmt);
  lb__sb_vprintf(&b, fmt, ap);
  va_end(ap);
  if (b.oom) { free(b.p); set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); return; }
  s->warn[s->nwarn++] = b.p;
}

int lb_schema_nwarnings(const lb_schema *s) { return s ? s->nwarn : 0; }

const char *lb_schema_warning(const lb_schema *s, int i) {
  if (!s || i < 0 || i >= s->nwarn) return NULL;
  return s->warn[i];
}

/* ====================================================================== */
/* Strings in spans                                                         */
/* ====================================================================== */

/* Decoded bytes of a string span: its own bytes when it has no escapes
** (no copy), else a malloc'd copy in *heap. Returns NULL only on ENOMEM. */
static const char *str_bytes(const lb_jval *v, size_t *len, char **heap) {
  size_t n;
  *heap = NULL;
  if (!lb_jstr_has_escapes(v)) {
    *len = v->n - 2;
    return v->p + 1;
  }
  n = lb_jstr_decode(v, NULL, 0);
  *heap = malloc(n + 1);
  if (!*heap) return NULL;
  lb_jstr_decode(v, *heap, n);
  (*heap)[n] = '\0';
  *len = n;
  return *heap;
}

/* Decoded copy of a string span in the arena, NUL-terminated. */
static char *astr_decode(lb_schema *s, const lb_jval *v, size_t *len) {
  size_t n = lb_jstr_decode(v, NULL, 0);
  char *d = amalloc(s, n + 1);
  if (!d) return NULL;
  lb_jstr_decode(v, d, n);
  d[n] = '\0';
  if (len) *len = n;
  return d;
}

/* Code points in a validated string span, without decoding: a \u escape
** is one (a surrogate pair too), other escapes one, raw bytes are counted
** at their UTF-8 lead bytes. */
static size_t str_codepoints(const lb_jval *v) {
  const uchar *p = (const uchar *)v->p + 1, *e = (const uchar *)v->p + v->n - 1;
  size_t k = 0;
  while (p < e) {
    if (*p == '\\') {
      if (p[1] == 'u') {
        int hi = (p[2] == 'd' || p[2] == 'D') && strchr("89abAB", p[3]) != NULL;
        p += (hi && p + 7 < e && p[6] == '\\') ? 12 : 6;
      } else {
        p += 2;
      }
      k++;
    } else {
      if ((*p & 0xc0) != 0x80) k++;
      p++;
    }
  }
  return k;
}

/* Next decoded byte run of a string span: for comparing two strings
** without decoding either into a buffer. */
typedef struct sit {
  const uchar *p, *e;
  uchar  tmp[4];
  size_t tn, ti;
} sit;

static void sit_init(sit *it, const lb_jval *v) {
  it->p = (const uchar *)v->p + 1;
  it->e = (const uchar *)v->p + v->n - 1;
  it->tn = it->ti = 0;
}

static unsigned hex4v(const uchar *p) {
  return (unsigned)(lb__hexval(p[0]) << 12 | lb__hexval(p[1]) << 8 | lb__hexval(p[2]) << 4 | lb__hexval(p[3]));
}

/* Next decoded byte, or -1 at the end. */
static int sit_next(sit *it) {
  if (it->ti < it->tn) return it->tmp[it->ti++];
  if (it->p >= it->e) return -1;
  if (*it->p != '\\') return *it->p++;
  it->ti = 0;
  it->tn = 1;
  switch (it->p[1]) {
    case 'b': it->tmp[0] = '\b'; break;
    case 'f': it->tmp[0] = '\f'; break;
    case 'n': it->tmp[0] = '\n'; break;
    case 'r': it->tmp[0] = '\r'; break;
    case 't': it->tmp[0] = '\t'; break;
    case 'u': {
      unsigned cp = hex4v(it->p + 2);
      it->p += 6;
      if (cp >= 0xd800 && cp <= 0xdbff) {
        cp = 0x10000 + ((cp - 0xd800) << 10) + (hex4v(it->p + 2) - 0xdc00);
        it->p += 6;
      }
      it->tn = lb__utf8_put(cp, it->tmp);
      return it->tmp[it->ti++];
    }
    default: it->tmp[0] = it->p[1]; break;
  }
  it->p += 2;
  return it->tmp[it->ti++];
}

static int str_eq_spans(const lb_jval *a, const lb_jval *b) {
  sit x, y;
  int c;
  if (!lb_jstr_has_escapes(a) && !lb_jstr_has_escapes(b))
    return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
  sit_init(&x, a);
  sit_init(&y, b);
  do {
    c = sit_next(&x);
    if (c != sit_next(&y)) return 0;
  } while (c >= 0);
  return 1;
}

/* ====================================================================== */
/* Numbers and equality                                                     */
/* ====================================================================== */

static void num_from(num *x, const lb_jval *v) {
  x->v = *v;
  x->isint = lb_jnum_to_int64(v, &x->i);
  x->d = x->isint ? (double)x->i : lb_jnum_to_double(v);
}

/* -1, 0, 1; exact for two int64 values. */
static int num_cmp(const num *a, const num *b) {
  if (a->isint && b->isint) return (a->i > b->i) - (a->i < b->i);
  return (a->d > b->d) - (a->d < b->d);
}

/* Digits of an integer span without sign and leading zeros, for comparing
** integers too big for int64 exactly. */
static void int_digits(const lb_jval *v, const char **d, size_t *n, int *neg) {
  const char *p = v->p, *e = v->p + v->n;
  *neg = 0;
  if (p < e && *p == '-') { *neg = 1; p++; }
  while (p + 1 < e && *p == '0') p++;
  *d = p;
  *n = (size_t)(e - p);
  if (*n == 1 && *p == '0') *neg = 0;
}

static int num_eq_spans(const lb_jval *a, const lb_jval *b) {
  num x, y;
  if (lb_jnum_is_integer(a) && lb_jnum_is_integer(b)) {
    const char *da, *db;
    size_t na, nb;
    int ga, gb;
    int_digits(a, &da, &na, &ga);
    int_digits(b, &db, &nb, &gb);
    return ga == gb && na == nb && memcmp(da, db, na) == 0;
  }
  num_from(&x, a);
  num_from(&y, b);
  return x.d == y.d;
}

/* Is a number span integral (1.0 and 1e2 are)? */
static int num_integral(const lb_jval *v) {
  double d;
  if (lb_jnum_is_integer(v)) return 1;
  d = lb_jnum_to_double(v);
  return isfinite(d) && d == floor(d);
}

static int members(const lb_jval *v) {
  lb_jiter it;
  lb_jval k, x;
  int n = 0;
  lb_jiter_init(&it, v);
  if (v->type == LB_JOBJECT) while (lb_jobj_next(&it, &k, &x)) n++;
  else while (lb_jarr_next(&it, &x)) n++;
  return n;
}

/* Deep equality: numbers by value, objects in any key order. The depth is
** bounded by jskim's nesting limit. */
static int json_eq(const lb_jval *a, const lb_jval *b) {
  lb_jiter ia, ib;
  lb_jval ka, va, kb, vb;
  if (a->type != b->type) return 0;
  switch (a->type) {
    case LB_JNUMBER: return num_eq_spans(a, b);
    case LB_JSTRING: return str_eq_spans(a, b);
    case LB_JARRAY:
      lb_jiter_init(&ia, a);
      lb_jiter_init(&ib, b);
      for (;;) {
        int ma = lb_jarr_next(&ia, &va), mb = lb_jarr_next(&ib, &vb);
        if (ma != mb) return 0;
        if (!ma) return 1;
        if (!json_eq(&va, &vb)) return 0;
      }
    case LB_JOBJECT:
      if (members(a) != members(b)) return 0;
      lb_jiter_init(&ia, a);
      while (lb_jobj_next(&ia, &ka, &va)) {
        int found = 0;
        lb_jiter_init(&ib, b);
        while (lb_jobj_next(&ib, &kb, &vb))
          if (str_eq_spans(&ka, &kb)) { found = json_eq(&va, &vb); break; }
        if (!found) return 0;
      }
      return 1;
    default: return 1;                  /* null, true, false */
  }
}

/* ====================================================================== */
/* The draft-07 meta-schema, built in so that $ref to it needs no loader    */
/* ====================================================================== */

#define META_URI "http://json-schema.org/draft-07/schema"

static const char meta_schema[] =
  "{\"$schema\":\"http://json-schema.org/draft-07/schema#\","
  "\"$id\":\"http://json-schema.org/draft-07/schema#\","
  "\"title\":\"Core schema meta-schema\","
  "\"definitions\":{"
  "\"schemaArray\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"$ref\":\"#\"}},"
  "\"nonNegativeInteger\":{\"type\":\"integer\",\"minimum\":0},"
  "\"nonNegativeIntegerDefault0\":{\"allOf\":[{\"$ref\":\"#/definitions/nonNegativeInteger\"},{\"default\":0}]},"
  "\"simpleTypes\":{\"enum\":[\"array\",\"boolean\",\"integer\",\"null\",\"number\",\"object\",\"string\"]},"
  "\"stringArray\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true,\"default\":[]}},"
  "\"type\":[\"object\",\"boolean\"],"
  "\"properties\":{"
  "\"$id\":{\"type\":\"string\",\"format\":\"uri-reference\"},"
  "\"$schema\":{\"type\":\"string\",\"format\":\"uri\"},"
  "\"$ref\":{\"type\":\"string\",\"format\":\"uri-reference\"},"
  "\"$comment\":{\"type\":\"string\"},"
  "\"title\":{\"type\":\"string\"},"
  "\"description\":{\"type\":\"string\"},"
  "\"default\":true,"
  "\"readOnly\":{\"type\":\"boolean\",\"default\":false},"
  "\"writeOnly\":{\"type\":\"boolean\",\"default\":false},"
  "\"examples\":{\"type\":\"array\",\"items\":true},"
  "\"multipleOf\":{\"type\":\"number\",\"exclusiveMinimum\":0},"
  "\"maximum\":{\"type\":\"number\"},"
  "\"exclusiveMaximum\":{\"type\":\"number\"},"
  "\"minimum\":{\"type\":\"number\"},"
  "\"exclusiveMinimum\":{\"type\":\"number\"},"
  "\"maxLength\":{\"$ref\":\"#/definitions/nonNegativeInteger\"},"
  "\"minLength\":{\"$ref\":\"#/definitions/nonNegativeIntegerDefault0\"},"
  "\"pattern\":{\"type\":\"string\",\"format\":\"regex\"},"
  "\"additionalItems\":{\"$ref\":\"#\"},"
  "\"items\":{\"anyOf\":[{\"$ref\":\"#\"},{\"$ref\":\"#/definitions/schemaArray\"}],\"default\":true},"
  "\"maxItems\":{\"$ref\":\"#/definitions/nonNegativeInteger\"},"
  "\"minItems\":{\"$ref\":\"#/definitions/nonNegativeIntegerDefault0\"},"
  "\"uniqueItems\":{\"type\":\"boolean\",\"default\":false},"
  "\"contains\":{\"$ref\":\"#\"},"
  "\"maxProperties\":{\"$ref\":\"#/definitions/nonNegativeInteger\"},"
  "\"minProperties\":{\"$ref\":\"#/definitions/nonNegativeIntegerDefault0\"},"
  "\"required\":{\"$ref\":\"#/definitions/stringArray\"},"
  "\"additionalProperties\":{\"$ref\":\"#\"},"
  "\"definitions\":{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#\"},\"default\":{}},"
  "\"properties\":{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#\"},\"default\":{}},"
  "\"patternProperties\":{\"type\":\"object\",\"additionalProperties\":{\"$ref\":\"#\"},"
  "\"propertyNames\":{\"format\":\"regex\"},\"default\":{}},"
  "\"dependencies\":{\"type\":\"object\",\"additionalProperties\":{\"anyOf\":[{\"$ref\":\"#\"},"
  "{\"$ref\":\"#/definitions/stringArray\"}]}},"
  "\"propertyNames\":{\"$ref\":\"#\"},"
  "\"const\":true,"
  "\"enum\":{\"type\":\"array\",\"items\":true},"
  "\"type\":{\"anyOf\":[{\"$ref\":\"#/definitions/simpleTypes\"},{\"type\":\"array\","
  "\"items\":{\"$ref\":\"#/definitions/simpleTypes\"},\"minItems\":1,\"uniqueItems\":true}]},"
  "\"format\":{\"type\":\"string\"},"
  "\"contentMediaType\":{\"type\":\"string\"},"
  "\"contentEncoding\":{\"type\":\"string\"},"
  "\"if\":{\"$ref\":\"#\"},"
  "\"then\":{\"$ref\":\"#\"},"
  "\"else\":{\"$ref\":\"#\"},"
  "\"allOf\":{\"$ref\":\"#/definitions/schemaArray\"},"
  "\"anyOf\":{\"$ref\":\"#/definitions/schemaArray\"},"
  "\"oneOf\":{\"$ref\":\"#/definitions/schemaArray\"},"
  "\"not\":{\"$ref\":\"#\"}},"
  "\"default\":true}";

/* Compile an ECMA pattern: the regex, or NULL with *why set. */
static regex_t *rx_compile(lb_schema *s, const char *pat, size_t n, const char **why,
                           int *unsupported) {
  lb_sbuf o = { NULL, 0, 0, 0 };
  rxlist *r;
  int rc;
  locale_t old = (locale_t)0;
  *unsupported = 0;
  if (memchr(pat, '\0', n)) { *why = "NUL in a pattern"; *unsupported = 1; return NULL; }
  if (lb__ecma_to_posix(pat, n, &o, why, unsupported)) {
    free(o.p);
    return NULL;
  }
  r = amalloc(s, sizeof *r);
  if (!r) { free(o.p); *why = "out of memory"; return NULL; }
  if (s->cloc) old = uselocale(s->cloc);
  rc = regcomp(&r->re, o.p, REG_EXTENDED | REG_NOSUB);
  if (s->cloc) uselocale(old);
  free(o.p);
  if (rc) {
    *why = rc == REG_ESPACE ? "out of memory" : "rejected by regcomp";
    *unsupported = 1;
    return NULL;
  }
  r->next = s->rx;
  s->rx = r;
  return &r->re;
}

/* Does the regex find a match in str[0..len)? (search, not anchored) */
static int rx_search(const lb_schema *s, const regex_t *re, const char *str, size_t len) {
  regmatch_t m[1];
  locale_t old = (locale_t)0;
  int rc;
  m[0].rm_so = 0;
  m[0].rm_eo = (regoff_t)len;
  if (s->cloc) old = uselocale(s->cloc);
  rc = regexec(re, str, 1, m, REG_STARTEND);
  if (s->cloc) uselocale(old);
  return rc == 0;
}

/* ====================================================================== */
/* Nodes, resources, documents                                              */
/* ====================================================================== */

static size_t hash_ptr(const char *p, size_t cap) {
  uintptr_t x = (uintptr_t)p;
  x ^= x >> 17;
  x *= (uintptr_t)0x9e3779b97f4a7c15ULL;
  return (size_t)(x >> 7) & (cap - 1);
}

static node *find_node(const lb_schema *s, const char *p) {
  node *n;
  if (!s->hcap) return NULL;
  for (n = s->htab[hash_ptr(p, s->hcap)]; n; n = n->hnext)
    if (n->v.p == p) return n;
  return NULL;
}

static int grow_htab(lb_schema *s) {
  size_t cap = s->hcap ? s->hcap * 2 : 64, i;
  node **t = calloc(cap, sizeof *t);
  if (!t) return -1;
  for (i = 0; i < s->hcap; i++) {
    node *n = s->htab[i], *next;
    for (; n; n = next) {
      size_t h = hash_ptr(n->v.p, cap);
      next = n->hnext;
      n->hnext = t[h];
      t[h] = n;
    }
  }
  free(s->htab);
  s->htab = t;
  s->hcap = cap;
  return 0;
}

/* The node of a schema value, created and queued the first time. */
static node *get_node(lb_schema *s, const lb_jval *v, const char *base, const char *loc) {
  node *n = find_node(s, v->p);
  size_t h;
  if (n) return n;
  if (s->hcount >= s->hcap && grow_htab(s)) {
    set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
    return NULL;
  }
  n = acalloc(s, sizeof *n);
  if (!n) { set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); return NULL; }
  n->v = *v;
  n->base = base;
  n->loc = loc;
  n->boolean = 1;
  n->max_len = n->max_items = n->max_props = -1;
  h = hash_ptr(v->p, s->hcap);
  n->hnext = s->htab[h];
  s->htab[h] = n;
  s->hcount++;
  if (s->qtail) s->qtail->qnext = n; else s->qhead = n;
  s->qtail = n;
  return n;
}

/* A subschema of parent, its loc being parent's + "/kw[/key|/idx]" with
** the key escaped like a JSON pointer token. */
static node *child(lb_schema *s, node *parent, const lb_jval *v, const char *kw,
                   const lb_jval *key, long idx) {
  node *n = find_node(s, v->p);
  lb_sbuf b = { NULL, 0, 0, 0 };
  const char *loc;
  if (n) return n;
  lb__sb_add(&b, parent->loc);
  lb__sb_addc(&b, '/');
  lb__sb_add(&b, kw);
  if (key) {
    char *heap;
    size_t len, i;
    const char *name = str_bytes(key, &len, &heap);
    if (!name) b.oom = 1;
    lb__sb_addc(&b, '/');
    for (i = 0; name && i < len; i++) {
      if (name[i] == '~') lb__sb_add(&b, "~0");
      else if (name[i] == '/') lb__sb_add(&b, "~1");
      else lb__sb_addc(&b, name[i]);
    }
    free(heap);
  } else if (idx >= 0) {
    lb__sb_printf(&b, "/%ld", idx);
  }
  loc = b.oom ? NULL : astrndup(s, b.p, b.n);
  free(b.p);
  if (!loc) { set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); return NULL; }
  /* a value that is no schema gets a node too: build() warns, takes it as true */
  return get_node(s, v, parent->base, loc);
}

static res *find_res(const lb_schema *s, const char *uri) {
  res *r;
  for (r = s->res; r; r = r->next)
    if (!strcmp(r->uri, uri)) return r;
  return NULL;
}

static int add_res(lb_schema *s, const char *uri, node *n) {
  res *r;
  if (find_res(s, uri)) return 0;      /* the first definition wins */
  r = amalloc(s, sizeof *r);
  if (!r || !(r->uri = astrndup(s, uri, strlen(uri))))
    return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
  r->n = n;
  r->next = s->res;
  s->res = r;
  return 0;
}

static int was_tried(const lb_schema *s, const char *uri) {
  const tried *t;
  for (t = s->tried; t; t = t->next) if (!strcmp(t->uri, uri)) return 1;
  return 0;
}

/* Add a document (text copied unless builtin) with its root node. */
static int add_doc(lb_schema *s, const char *uri, const char *text, size_t len,
                   int copy, char *owned, node **root) {
  doc *d = acalloc(s, sizeof *d);
  size_t off = 0;
  int rc;
  const char *loc;
  if (!d) { free(owned); return set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); }
  d->uri = astrndup(s, uri, strlen(uri));
  if (!d->uri) { free(owned); return set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); }
  if (owned) {
    d->text = owned;
    d->owned = 1;
  } else if (copy) {
    d->text = malloc(len ? len : 1);
    if (!d->text) return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
    memcpy(d->text, text, len);
    d->owned = 1;
  } else {
    d->text = (char *)(uintptr_t)text;   /* builtin, never written */
  }
  d->len = len;
  d->next = s->docs;
  s->docs = d;
  s->ndocs++;
  rc = lb_jskim_validate(d->text, len, &d->top, &off);
  if (rc)
    return set_err(s, LB_SCHEMA_EJSON, "%s%sinvalid JSON at offset %lu: %s",
                   *uri ? uri : "", *uri ? ": " : "", (unsigned long)off,
                   lb_jskim_strerror(rc));
  {
    lb_sbuf b = { NULL, 0, 0, 0 };
    lb__sb_add(&b, uri);
    lb__sb_addc(&b, '#');
    loc = b.oom ? NULL : astrndup(s, b.p, b.n);
    free(b.p);
  }
  if (!loc) return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
  *root = get_node(s, &d->top, d->uri, loc);
  if (!*root) return s->err;
  return add_res(s, d->uri, *root);
}

/* Fetch a document for a $ref: the built-in meta-schema or the loader. */
static int load_doc(lb_schema *s, const char *uri) {
  tried *t = amalloc(s, sizeof *t);
  char *text = NULL;
  size_t len = 0;
  node *root;
  if (!t || !(t->uri = astrndup(s, uri, strlen(uri))))
    return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
  t->next = s->tried;
  s->tried = t;
  if (!strcmp(uri, META_URI) || !strcmp(uri, "https://json-schema.org/draft-07/schema"))
    return add_doc(s, uri, meta_schema, sizeof meta_schema - 1, 0, NULL, &root);
  if (!s->loader || s->loader(s->loader_ud, uri, &text, &len) || !text) {
    free(text);
    return set_err(s, LB_SCHEMA_ELOAD, "cannot load %s", uri);
  }
  return add_doc(s, uri, text, len, 0, text, &root);
}

/* ====================================================================== */
/* Building nodes                                                           */
/* ====================================================================== */

static int kw_is(const lb_jval *k, const char *name) {
  size_t n = strlen(name);
  return k->n == n + 2 && memcmp(k->p + 1, name, n) == 0;
}

static const struct { const char *name; unsigned bit; } type_names[] = {
  { "null", T_NULL }, { "boolean", T_BOOL }, { "object", T_OBJECT },
  { "array", T_ARRAY }, { "number", T_NUMBER }, { "string", T_STRING },
  { "integer", T_INTEGER }, { NULL, 0 }
};

static unsigned type_bit(const lb_jval *v) {
  int i;
  for (i = 0; type_names[i].name; i++)
    if (lb_jstr_eq(v, type_names[i].name, strlen(type_names[i].name))) return type_names[i].bit;
  return 0;
}

/* A non-negative integer keyword (2.0 counts); -1 when it is not one. */
static long long nonneg(const lb_jval *v) {
  long long i;
  double d;
  if (v->type != LB_JNUMBER || !num_integral(v)) return -1;
  if (lb_jnum_to_int64(v, &i)) return i < 0 ? -1 : i;
  d = lb_jnum_to_double(v);
  if (d < 0) return -1;
  return d >= 9.2e18 ? LLONG_MAX : (long long)d;
}

static node **schema_array(lb_schema *s, node *n, const lb_jval *v, const char *kw, size_t *count) {
  lb_jiter it;
  lb_jval x;
  node **arr;
  size_t k = 0, m = (size_t)members(v);
  arr = acalloc(s, (m ? m : 1) * sizeof *arr);
  if (!arr) { set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); return NULL; }
  lb_jiter_init(&it, v);
  while (lb_jarr_next(&it, &x)) {
    arr[k] = child(s, n, &x, kw, NULL, (long)k);
    if (!arr[k]) return NULL;
    k++;
  }
  *count = k;
  return arr;
}

static int cmp_prop(const void *a, const void *b) {
  const prop *x = a, *y = b;
  size_t m = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->name, y->name, m);
  if (c) return c;
  return (x->len > y->len) - (x->len < y->len);
}

/* properties / dependencies: an object whose members are schemas (or, for
** dependencies, arrays of names). */
static prop *prop_list(lb_schema *s, node *n, const lb_jval *v, const char *kw,
                       int deps, size_t *count) {
  lb_jiter it;
  lb_jval k, x;
  size_t m = (size_t)members(v), i = 0;
  prop *arr = acalloc(s, (m ? m : 1) * sizeof *arr);
  if (!arr) { set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); return NULL; }
  lb_jiter_init(&it, v);
  while (lb_jobj_next(&it, &k, &x)) {
    prop *p = &arr[i];
    p->key = k;
    if (!(p->name = astr_decode(s, &k, &p->len))) {
      set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
      return NULL;
    }
    if (deps && x.type == LB_JARRAY) {
      p->req = x;
    } else if (x.type == LB_JOBJECT || x.type == LB_JTRUE || x.type == LB_JFALSE) {
      if (!(p->sch = child(s, n, &x, kw, &k, -1))) return NULL;
    } else {
      warn(s, n, "%s member %.*s is not a schema: ignored", kw, (int)k.n, k.p);
      continue;
    }
    i++;
  }
  qsort(arr, i, sizeof *arr, cmp_prop);
  *count = i;
  return arr;
}

static int build_number(lb_schema *s, node *n, const lb_jval *k, const lb_jval *v,
                        num *dst, unsigned bit) {
  if (v->type != LB_JNUMBER) {
    warn(s, n, "%.*s must be a number: ignored", (int)k->n - 2, k->p + 1);
    return 0;
  }
  num_from(dst, v);
  n->has |= bit;
  return 0;
}

static int build(lb_schema *s, node *n) {
  lb_jiter it;
  lb_jval k, v, ref, id;
  if (n->v.type == LB_JTRUE) { n->boolean = 1; return 0; }
  if (n->v.type == LB_JFALSE) { n->boolean = 0; return 0; }
  if (n->v.type != LB_JOBJECT) {
    warn(s, n, "a schema must be an object or a boolean: taken as true");
    n->boolean = 1;
    return 0;
  }
  n->boolean = -1;

  /* draft-07: $ref makes every sibling keyword, $id included, ignored */
  if (lb_jobj_find(&n->v, "$ref", 4, &ref)) {
    if (ref.type == LB_JSTRING) {
      lb_sbuf b = { NULL, 0, 0, 0 };
      char *raw = astr_decode(s, &ref, NULL);
      if (!raw) return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
      lb__uri_resolve(&b, n->base, raw);
      n->ref = b.oom ? NULL : astrndup(s, b.p, b.n);
      free(b.p);
      if (!n->ref) return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
      n->rnext = s->refs;
      s->refs = n;
      return 0;
    }
    warn(s, n, "$ref must be a string: ignored");
  }
  if (lb_jobj_find(&n->v, "$id", 3, &id) && id.type == LB_JSTRING) {
    lb_sbuf b = { NULL, 0, 0, 0 };
    char *raw = astr_decode(s, &id, NULL), *hash;
    if (!raw) return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
    lb__uri_resolve(&b, n->base, raw);
    if (b.oom) { free(b.p); return set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); }
    hash = strchr(b.p, '#');
    if (hash && hash[1] && hash[1] != '/') {
      /* "#name": a plain-name fragment, a location-independent anchor */
      if (add_res(s, b.p, n)) { free(b.p); return s->err; }
      *hash = '\0';
      if (!(n->base = astrndup(s, b.p, strlen(b.p)))) {
        free(b.p);
        return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
      }
    } else {
      if (hash) *hash = '\0';
      if (!(n->base = astrndup(s, b.p, strlen(b.p))) || add_res(s, n->base, n)) {
        free(b.p);
        return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
      }
    }
    free(b.p);
  }

  lb_jiter_init(&it, &n->v);
  while (lb_jobj_next(&it, &k, &v)) {
    if (s->err) return s->err;
    if (k.n < 4) continue;
    switch (k.p[1]) {
      case 'a':
        if (kw_is(&k, "additionalProperties") || kw_is(&k, "additionalItems")) {
          node **dst = k.p[11] == 'P' ? &n->add_props : &n->add_items;
          *dst = child(s, n, &v, k.p[11] == 'P' ? "additionalProperties" : "additionalItems", NULL, -1);
        } else if (kw_is(&k, "allOf") || kw_is(&k, "anyOf")) {
          int all = k.p[2] == 'l';
          if (v.type != LB_JARRAY || members(&v) == 0) {
            warn(s, n, "%s must be a non-empty array of schemas: ignored", all ? "allOf" : "anyOf");
          } else if (all) {
            n->all_of = schema_array(s, n, &v, "allOf", &n->n_all);
          } else {
            n->any_of = schema_array(s, n, &v, "anyOf", &n->n_any);
          }
        }
        break;
      case 'c':
        if (kw_is(&k, "const")) { n->const_v = v; n->has |= H_CONST; }
        else if (kw_is(&k, "contentEncoding")) n->content_b64 = lb_jstr_eq(&v, "base64", 6);
        else if (kw_is(&k, "contentMediaType"))
          n->content_json = lb_jstr_eq(&v, "application/json", 16);
        else if (kw_is(&k, "contains")) n->contains = child(s, n, &v, "contains", NULL, -1);
        break;
      case 'd':
        if (kw_is(&k, "definitions")) {
          lb_jiter di;
          lb_jval dk, dv;
          if (v.type != LB_JOBJECT) break;
          lb_jiter_init(&di, &v);
          while (lb_jobj_next(&di, &dk, &dv))
            if (dv.type == LB_JOBJECT || dv.type == LB_JTRUE || dv.type == LB_JFALSE)
              if (!child(s, n, &dv, "definitions", &dk, -1)) return s->err;
        } else if (kw_is(&k, "dependencies")) {
          if (v.type != LB_JOBJECT) warn(s, n, "dependencies must be an object: ignored");
          else n->deps = prop_list(s, n, &v, "dependencies", 1, &n->n_deps);
        }
        break;
      case 'e':
        if (kw_is(&k, "enum")) {
          if (v.type != LB_JARRAY) warn(s, n, "enum must be an array: ignored");
          else { n->enum_v = v; n->has |= H_ENUM; }
        } else if (kw_is(&k, "else")) {
          n->else_ = child(s, n, &v, "else", NULL, -1);
        } else if (kw_is(&k, "exclusiveMaximum") || kw_is(&k, "exclusiveMinimum")) {
          int isMax = k.p[11] == 'a';
          if (v.type == LB_JTRUE || v.type == LB_JFALSE) {
            /* draft-04 style: a flag on minimum/maximum; honoured, since
            ** hand-written connector specs still use it */
            warn(s, n, "boolean %s is draft-04: applied to %s", isMax ? "exclusiveMaximum" : "exclusiveMinimum",
                 isMax ? "maximum" : "minimum");
            if (v.type == LB_JTRUE) {
              lb_jval b;
              if (lb_jobj_find(&n->v, isMax ? "maximum" : "minimum", 7, &b) && b.type == LB_JNUMBER) {
                num_from(isMax ? &n->xmax : &n->xmin, &b);
                n->has |= isMax ? H_XMAX : H_XMIN;
              }
            }
          } else {
            build_number(s, n, &k, &v, isMax ? &n->xmax : &n->xmin, isMax ? H_XMAX : H_XMIN);
          }
        }
        break;
      case 'f':
        if (kw_is(&k, "format") && v.type == LB_JSTRING) {
          int fid = lb__format_id(&v);
          if (fid != LB_FMT_NONE) n->format = fid;
        }
        break;
      case 'i':
        if (kw_is(&k, "items")) {
          if (v.type == LB_JARRAY) n->items_arr = schema_array(s, n, &v, "items", &n->n_items);
          else n->items = child(s, n, &v, "items", NULL, -1);
        } else if (kw_is(&k, "if")) {
          n->if_ = child(s, n, &v, "if", NULL, -1);
        }
        break;
      case 'm': {
        long long *dst = NULL;
        if (kw_is(&k, "maximum")) build_number(s, n, &k, &v, &n->max, H_MAX);
        else if (kw_is(&k, "minimum")) build_number(s, n, &k, &v, &n->min, H_MIN);
        else if (kw_is(&k, "multipleOf")) {
          if (v.type == LB_JNUMBER && lb_jnum_to_double(&v) > 0)
            build_number(s, n, &k, &v, &n->mult, H_MULT);
          else warn(s, n, "multipleOf must be a number above 0: ignored");
        }
        else if (kw_is(&k, "maxLength")) dst = &n->max_len;
        else if (kw_is(&k, "minLength")) dst = &n->min_len;
        else if (kw_is(&k, "maxItems")) dst = &n->max_items;
        else if (kw_is(&k, "minItems")) dst = &n->min_items;
        else if (kw_is(&k, "maxProperties")) dst = &n->max_props;
        else if (kw_is(&k, "minProperties")) dst = &n->min_props;
        if (dst) {
          long long x = nonneg(&v);
          if (x < 0) warn(s, n, "%.*s must be a non-negative integer: ignored", (int)k.n - 2, k.p + 1);
          else *dst = x;
        }
        break;
      }
      case 'n':
        if (kw_is(&k, "not")) n->not_ = child(s, n, &v, "not", NULL, -1);
        break;
      case 'o':
        if (kw_is(&k, "oneOf")) {
          if (v.type != LB_JARRAY || members(&v) == 0)
            warn(s, n, "oneOf must be a non-empty array of schemas: ignored");
          else n->one_of = schema_array(s, n, &v, "oneOf", &n->n_one);
        }
        break;
      case 'p':
        if (kw_is(&k, "properties")) {
          if (v.type != LB_JOBJECT) warn(s, n, "properties must be an object: ignored");
          else n->props = prop_list(s, n, &v, "properties", 0, &n->n_props);
        } else if (kw_is(&k, "pattern")) {
          if (v.type != LB_JSTRING) {
            warn(s, n, "pattern must be a string: ignored");
          } else {
            size_t pn;
            const char *why = NULL;
            int unsup;
            char *pat = astr_decode(s, &v, &pn);
            if (!pat) return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
            n->pattern = rx_compile(s, pat, pn, &why, &unsup);
            n->pattern_v = v;
            if (!n->pattern)
              warn(s, n, "pattern %.*s not enforced: %s%s", (int)v.n, v.p, why,
                   unsup ? " (not supported)" : "");
          }
        } else if (kw_is(&k, "patternProperties")) {
          lb_jiter pi;
          lb_jval pk, pv;
          size_t m, i = 0;
          if (v.type != LB_JOBJECT) { warn(s, n, "patternProperties must be an object: ignored"); break; }
          m = (size_t)members(&v);
          n->pprops = acalloc(s, (m ? m : 1) * sizeof *n->pprops);
          if (!n->pprops) return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
          lb_jiter_init(&pi, &v);
          while (lb_jobj_next(&pi, &pk, &pv)) {
            size_t pn;
            const char *why = NULL;
            int unsup;
            char *pat = astr_decode(s, &pk, &pn);
            if (!pat) return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
            n->pprops[i].re = rx_compile(s, pat, pn, &why, &unsup);
            if (!n->pprops[i].re)
              warn(s, n, "patternProperties %.*s never matches: %s%s", (int)pk.n, pk.p, why,
                   unsup ? " (not supported)" : "");
            if (!(n->pprops[i].sch = child(s, n, &pv, "patternProperties", &pk, -1))) return s->err;
            i++;
          }
          n->n_pprops = i;
        } else if (kw_is(&k, "propertyNames")) {
          n->prop_names = child(s, n, &v, "propertyNames", NULL, -1);
        }
        break;
      case 'r':
        if (kw_is(&k, "required")) {
          lb_jiter ri;
          lb_jval rv;
          size_t m, i = 0;
          if (v.type != LB_JARRAY) { warn(s, n, "required must be an array of strings: ignored"); break; }
          m = (size_t)members(&v);
          n->req = acalloc(s, (m ? m : 1) * sizeof *n->req);
          n->req_name = acalloc(s, (m ? m : 1) * sizeof *n->req_name);
          n->req_len = acalloc(s, (m ? m : 1) * sizeof *n->req_len);
          if (!n->req || !n->req_name || !n->req_len)
            return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
          lb_jiter_init(&ri, &v);
          while (lb_jarr_next(&ri, &rv)) {
            if (rv.type != LB_JSTRING) { warn(s, n, "required: a member is not a string: ignored"); continue; }
            n->req[i] = rv;
            if (!(n->req_name[i] = astr_decode(s, &rv, &n->req_len[i])))
              return set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
            i++;
          }
          n->n_req = i;
        }
        break;
      case 't':
        if (kw_is(&k, "type")) {
          if (v.type == LB_JSTRING) {
            n->types = type_bit(&v);
            if (!n->types) { warn(s, n, "unknown type %.*s: ignored", (int)v.n, v.p); }
          } else if (v.type == LB_JARRAY) {
            lb_jiter ti;
            lb_jval tv;
            unsigned bits = 0;
            int bad = 0;
            lb_jiter_init(&ti, &v);
            while (lb_jarr_next(&ti, &tv)) {
              unsigned b = tv.type == LB_JSTRING ? type_bit(&tv) : 0;
              if (!b) bad = 1;
              bits |= b;
            }
            if (bad) warn(s, n, "type lists an unknown type: that entry is ignored");
            /* an empty list allows nothing */
            n->types = bits ? bits : 0x80000000u;
          } else {
            warn(s, n, "type must be a string or an array: ignored");
          }
        } else if (kw_is(&k, "then")) {
          n->then_ = child(s, n, &v, "then", NULL, -1);
        }
        break;
      case 'u':
        if (kw_is(&k, "uniqueItems")) {
          if (v.type == LB_JTRUE) n->has |= H_UNIQUE;
          else if (v.type != LB_JFALSE) warn(s, n, "uniqueItems must be a boolean: ignored");
        }
        break;
      default:
        break;
    }
  }
  return s->err;
}

/* ====================================================================== */
/* $ref resolution                                                          */
/* ====================================================================== */

/* Walk a JSON pointer (already percent-decoded) from a resource: the target
** value and the base URI in force at it (the $ids of the values passed on
** the way apply; the target's own $id is applied when it is built). */
static int walk_pointer(lb_schema *s, node *from, const char *ptr, lb_jval *out,
                        const char **base) {
  lb_jval cur = from->v;
  const char *p = ptr;
  lb_sbuf tok = { NULL, 0, 0, 0 };
  *base = from->base;
  while (*p == '/') {
    const char *q = ++p;
    lb_jval next;
    int found = 0;
    tok.n = 0;
    while (*q && *q != '/') q++;
    for (; p < q; p++) {
      if (*p == '~' && p + 1 < q && (p[1] == '0' || p[1] == '1')) {
        lb__sb_addc(&tok, p[1] == '0' ? '~' : '/');
        p++;
      } else {
        lb__sb_addc(&tok, *p);
      }
    }
    lb__sb_addn(&tok, "", 0);
    if (tok.oom) { free(tok.p); return set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); }
    if (cur.type == LB_JOBJECT) {
      found = lb_jobj_find(&cur, tok.p, tok.n, &next);
    } else if (cur.type == LB_JARRAY && tok.n > 0 && (tok.n == 1 || tok.p[0] != '0')) {
      size_t i, idx = 0;
      lb_jiter it;
      for (i = 0; i < tok.n && isdigit((uchar)tok.p[i]) && idx < 100000000; i++)
        idx = idx * 10 + (size_t)(tok.p[i] - '0');
      if (i == tok.n) {
        lb_jiter_init(&it, &cur);
        while ((found = lb_jarr_next(&it, &next)) && idx--) {}
      }
    }
    if (!found) { free(tok.p); return 1; }
    /* the value we step over: does it change the base? */
    if (cur.type == LB_JOBJECT && cur.p != from->v.p) {
      lb_jval id, r;
      if (lb_jobj_find(&cur, "$id", 3, &id) && id.type == LB_JSTRING &&
          !lb_jobj_find(&cur, "$ref", 4, &r)) {
        node *known = find_node(s, cur.p);
        if (known && known->boolean == -1) {
          *base = known->base;
        } else {
          lb_sbuf b = { NULL, 0, 0, 0 };
          char *raw = astr_decode(s, &id, NULL), *h;
          if (!raw) { free(tok.p); return set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); }
          lb__uri_resolve(&b, *base, raw);
          if (!b.oom && (h = strchr(b.p, '#'))) { *h = '\0'; b.n = (size_t)(h - b.p); }
          *base = b.oom ? NULL : astrndup(s, b.p, b.n);
          free(b.p);
          if (!*base) { free(tok.p); return set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); }
        }
      }
    }
    cur = next;
    p = q;
  }
  free(tok.p);
  *out = cur;
  return 0;
}

/* Try to resolve n->ref: 1 done, 0 not yet (*missing names the document
** to fetch, or is NULL when the target may still appear as queued nodes
** get built), <0 error. With final set, "not yet" is an error. */
static int resolve_one(lb_schema *s, node *n, const char **missing, int final) {
  lb_sbuf docpart = { NULL, 0, 0, 0 }, frag = { NULL, 0, 0, 0 };
  const char *hash = strchr(n->ref, '#');
  res *r;
  node *target = NULL;
  int rc = 1;
  lb__sb_addn(&docpart, n->ref, hash ? (size_t)(hash - n->ref) : strlen(n->ref));
  if (hash) lb__pct_decode(&frag, hash + 1, strlen(hash + 1));
  else lb__sb_addn(&frag, "", 0);
  if (docpart.oom || frag.oom) { rc = set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); goto done; }
  *missing = NULL;
  r = find_res(s, docpart.p);
  if (!r && final) {
    rc = set_err(s, LB_SCHEMA_EREF, "%s: cannot resolve $ref %s", n->loc, n->ref);
    goto done;
  }
  if (!r) {
    *missing = astrndup(s, docpart.p, docpart.n);
    rc = *missing ? 0 : set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
    goto done;
  }
  if (frag.n == 0) {
    target = r->n;
  } else if (frag.p[0] == '/') {
    lb_jval v;
    const char *base;
    const char *loc;
    int w = walk_pointer(s, r->n, frag.p, &v, &base);
    if (w < 0) { rc = w; goto done; }
    if (w > 0) {
      rc = final ? set_err(s, LB_SCHEMA_EREF, "%s: $ref %s: no such location", n->loc, n->ref) : 0;
      goto done;
    }
    target = find_node(s, v.p);
    if (!target) {
      lb_sbuf l = { NULL, 0, 0, 0 };
      lb__sb_add(&l, r->n->loc);
      lb__sb_add(&l, hash + 1);
      loc = l.oom ? NULL : astrndup(s, l.p, l.n);
      free(l.p);
      if (!loc || !(target = get_node(s, &v, base, loc))) {
        rc = set_err(s, LB_SCHEMA_ENOMEM, "out of memory");
        goto done;
      }
    }
  } else {
    lb_sbuf a = { NULL, 0, 0, 0 };
    res *ar;
    lb__sb_addn(&a, docpart.p, docpart.n);
    lb__sb_addc(&a, '#');
    lb__sb_addn(&a, frag.p, frag.n);
    if (a.oom) { free(a.p); rc = set_err(s, LB_SCHEMA_ENOMEM, "out of memory"); goto done; }
    ar = find_res(s, a.p);
    free(a.p);
    if (!ar) {
      rc = final ? set_err(s, LB_SCHEMA_EREF, "%s: $ref %s: no such anchor", n->loc, n->ref) : 0;
      goto done;
    }
    target = ar->n;
  }
  n->ref_to = target;
done:
  free(docpart.p);
  free(frag.p);
  return rc;
}

#define MAX_DOCS 1000

/* Build every queued node, resolve $refs, load missing documents, until
** nothing changes. */
static int compile_all(lb_schema *s) {
  for (;;) {
    node *n;
    const char *missing = NULL;
    int pending = 0, progress = 0;
    while ((n = s->qhead)) {
      s->qhead = n->qnext;
      if (!s->qhead) s->qtail = NULL;
      if (build(s, n)) return s->err;
    }
    for (n = s->refs; n; n = n->rnext) {
      const char *m = NULL;
      int rc;
      if (n->ref_to) continue;
      rc = resolve_one(s, n, &m, 0);
      if (rc < 0) return rc;
      if (rc == 1) progress = 1;
      else { pending = 1; if (!missing && m && !was_tried(s, m)) missing = m; }
    }
    if (s->qhead) continue;            /* new nodes may bring the $ids we lack */
    if (!pending) return 0;
    if (progress) continue;
    if (missing) {                     /* fetch a document nothing here defines */
      if (s->ndocs >= MAX_DOCS) return set_err(s, LB_SCHEMA_ELOAD, "more than %d documents", MAX_DOCS);
      if (load_doc(s, missing)) return s->err;
      continue;
    }
    /* everything is built and loaded: what is left cannot be resolved */
    for (n = s->refs; n; n = n->rnext) {
      const char *m;
      if (!n->ref_to && resolve_one(s, n, &m, 1) < 0) return s->err;
    }
    return set_err(s, LB_SCHEMA_EREF, "cannot resolve a $ref");
  }
}

/* ====================================================================== */
/* Public: compile / free                                                   */
/* ====================================================================== */

void lb_schema_free(lb_schema *s) {
  ablock *b, *nb;
  doc *d;
  rxlist *r;
  int i;
  if (!s) return;
  for (r = s->rx; r; r = r->next) regfree(&r->re);
  for (d = s->docs; d; d = d->next) if (d->owned) free(d->text);
  for (i = 0; i < s->nwarn; i++) free(s->warn[i]);
  free(s->warn);
  free(s->htab);
  if (s->cloc) freelocale(s->cloc);
  for (b = s->arena; b; b = nb) { nb = b->next; free(b); }
  free(s);
}

int lb_schema_compile(const char *text, size_t len, const lb_schema_opts *opts,
                      lb_schema **out, char *err, size_t errlen) {
  lb_schema *s;
  node *root = NULL;
  lb_schema_opts o;
  int rc;
  if (err && errlen) err[0] = '\0';
  if (!out || (!text && len)) {
    if (err && errlen) snprintf(err, errlen, "invalid argument");
    return LB_SCHEMA_EINVAL;
  }
  *out = NULL;
  memset(&o, 0, sizeof o);
  if (opts) memcpy(&o, opts, opts->size && opts->size < sizeof o ? opts->size : sizeof o);
  s = calloc(1, sizeof *s);
  if (!s) {
    if (err && errlen) snprintf(err, errlen, "out of memory");
    return LB_SCHEMA_ENOMEM;
  }
  s->errbuf = err;
  s->errlen = errlen;
  s->flags = o.flags;
  s->max_depth = o.max_depth > 0 ? o.max_depth : LB_SCHEMA_MAXDEPTH;
  s->loader = o.loader;
  s->loader_ud = o.loader_ud;
  s->cloc = newlocale(LC_CTYPE_MASK | LC_COLLATE_MASK, "C", (locale_t)0);
  if (!s->cloc) warn(s, NULL, "no \"C\" locale: patterns run in the current locale");
  rc = add_doc(s, o.base_uri ? o.base_uri : "", text ? text : "", len, 1, NULL, &root);
  if (!rc) {
    s->root = root;
    rc = compile_all(s);
  }
  if (rc) {
    if (!s->err) set_err(s, rc, "%s", lb_schema_strerror(rc));
    rc = s->err;
    lb_schema_free(s);
    return rc;
  }
  s->errbuf = NULL;
  s->errlen = 0;
  *out = s;
  return 0;
}

/* ====================================================================== */
/* Validation                                                               */
/* ====================================================================== */

/* An instance path segment, on the C stack: a key span or an index. */
typedef struct pseg {
  const struct pseg *up;
  const lb_jval     *key;
  size_t             idx;
} pseg;

/* An active evaluation, on the C stack, for $ref loop detection. */
typedef struct vframe {
  const struct vframe *up;
  const node          *n;
  const char          *ip;
} vframe;

typedef struct vctx {
  const lb_schema  *s;
  lb_schema_errors *errs;     /* where messages go (a scratch list while ranking oneOf branches) */
  int               quiet;    /* >0: only the verdict matters */
  int               depth;
  int               fatal;    /* negative code */
  char              fatal_msg[256];
} vctx;

static int collecting(const vctx *c) {
  return !c->quiet && c->errs && c->errs->max > 0 && !c->errs->truncated;
}

static int is_ident(const char *p, size_t n) {
  size_t i;
  if (!n || !(isalpha((uchar)p[0]) || p[0] == '_')) return 0;
  for (i = 1; i < n; i++) if (!(isalnum((uchar)p[i]) || p[i] == '_')) return 0;
  return 1;
}

static void path_fmt(lb_sbuf *b, const pseg *path) {
  const pseg *chain[64];
  size_t n = 0, i;
  int cut = 0;
  const pseg *x;
  for (x = path; x; x = x->up) {
    if (n < 64) chain[n++] = x;
    else cut = 1;
  }
  lb__sb_addc(b, '$');
  if (cut) lb__sb_add(b, "...");
  for (i = n; i-- > 0;) {
    x = chain[i];
    if (x->key) {
      /* the raw span is valid JSON string text: quoted as it came */
      if (is_ident(x->key->p + 1, x->key->n - 2)) {
        lb__sb_addc(b, '.');
        lb__sb_addn(b, x->key->p + 1, x->key->n - 2);
      } else {
        lb__sb_addc(b, '[');
        lb__sb_addn(b, x->key->p, x->key->n);
        lb__sb_addc(b, ']');
      }
    } else {
      lb__sb_printf(b, "[%lu]", (unsigned long)x->idx);
    }
  }
}

/* Append msg (taken over: freed when it cannot be kept). The array's
** capacity is implied by count: 4, then doubled at each power of two. */
static int errs_push(lb_schema_errors *e, char *msg) {
  if (e->count >= e->max) { e->truncated = 1; free(msg); return 0; }
  if (e->count == 0 || (e->count >= 4 && (e->count & (e->count - 1)) == 0)) {
    size_t cap = e->count ? (size_t)e->count * 2 : 4;
    char **m = realloc(e->msgs, cap * sizeof *m);
    if (!m) { free(msg); return -1; }
    e->msgs = m;
  }
  e->msgs[e->count++] = msg;
  return 0;
}

static int set_fatal(vctx *c, int code, const pseg *path, const char *fmt, ...) {
  lb_sbuf b = { NULL, 0, 0, 0 };
  va_list ap;
  if (c->fatal) return c->fatal;
  c->fatal = code;
  path_fmt(&b, path);
  lb__sb_add(&b, ": ");
  va_start(ap, fmt);
  lb__sb_vprintf(&b, fmt, ap);
  va_end(ap);
  snprintf(c->fatal_msg, sizeof c->fatal_msg, "%s", b.oom ? "out of memory" : b.p);
  free(b.p);
  return code;
}

/* Record a failure: returns 1 (invalid) or a negative code. */
static int fail(vctx *c, const pseg *path, const char *fmt, ...) {
  lb_sbuf b = { NULL, 0, 0, 0 };
  va_list ap;
  if (!collecting(c)) return 1;
  if (c->errs->count >= c->errs->max) { c->errs->truncated = 1; return 1; }
  path_fmt(&b, path);
  lb__sb_add(&b, ": ");
  va_start(ap, fmt);
  lb__sb_vprintf(&b, fmt, ap);
  va_end(ap);
  if (b.oom || errs_push(c->errs, b.p)) {
    if (!b.oom) b.p = NULL;
    free(b.p);
    return set_fatal(c, LB_SCHEMA_ENOMEM, path, "out of memory");
  }
  return 1;
}

/* Like fail, quoting a span of the schema (clipped). */
static int fail_span(vctx *c, const pseg *path, const char *pre, const lb_jval *v) {
  lb_sbuf b = { NULL, 0, 0, 0 };
  int r;
  if (!collecting(c)) return 1;
  lb__sb_add(&b, pre);
  sb_add_clip(&b, v->p, v->n, 120);
  r = b.oom ? set_fatal(c, LB_SCHEMA_ENOMEM, path, "out of memory") : fail(c, path, "%s", b.p);
  free(b.p);
  return r;
}

static const char *type_name(const lb_jval *v) {
  switch (v->type) {
    case LB_JNULL: return "null";
    case LB_JTRUE: case LB_JFALSE: return "boolean";
    case LB_JNUMBER: return "number";
    case LB_JSTRING: return "string";
    case LB_JOBJECT: return "object";
    case LB_JARRAY: return "array";
    default: return "nothing";
  }
}

static int validate(vctx *c, const node *n, const lb_jval *inst, const pseg *path,
                    const vframe *up);

/* Evaluate for the verdict only (anyOf branches, not, if, contains). */
static int quietly(vctx *c, const node *n, const lb_jval *inst, const pseg *path,
                   const vframe *up) {
  int r;
  c->quiet++;
  r = validate(c, n, inst, path, up);
  c->quiet--;
  return r;
}

/* Merge rc of a keyword into the running verdict: returns nonzero when
** the caller should stop now. */
#define STEP(rc, bad, c) \
  ((rc) < 0 ? 1 : ((rc) > 0 ? ((bad) = 1, !collecting(c)) : 0))

static void errs_move(lb_schema_errors *to, lb_schema_errors *from) {
  int i;
  for (i = 0; i < from->count; i++) errs_push(to, from->msgs[i]);
  if (from->truncated) to->truncated = 1;
  free(from->msgs);
  from->msgs = NULL;
  from->count = 0;
}

/* No branch of anyOf/oneOf matched: tell it, then the messages of the
** branch that came closest (fewest errors), which for the usual "oneOf
** auth methods" spec is the one the user meant. */
static NOINLINE int explain_branches(vctx *c, node *const *br, size_t nbr, const lb_jval *inst,
                                     const pseg *path, const vframe *up, const char *kw) {
  lb_schema_errors best = { 0, 0, 0, NULL }, *saved = c->errs;
  size_t i, besti = 0;
  int bestscore = INT_MAX, r;
  for (i = 0; i < nbr; i++) {
    lb_schema_errors tmp = { 0, 0, 0, NULL };
    int score;
    tmp.max = saved->max - saved->count - 1;
    if (tmp.max < 1) tmp.max = 1;
    c->errs = &tmp;
    r = validate(c, br[i], inst, path, up);
    c->errs = saved;
    score = tmp.count + (tmp.truncated ? 1000 : 0);
    if (r < 0 || score >= bestscore) {
      lb_schema_errors_clear(&tmp);
      if (r < 0) { lb_schema_errors_clear(&best); return r; }
      continue;
    }
    lb_schema_errors_clear(&best);
    best = tmp;
    bestscore = score;
    besti = i;
  }
  r = fail(c, path, "value does not match any of the %lu schemas in %s (closest: #%lu)",
           (unsigned long)nbr, kw, (unsigned long)besti);
  if (r < 0) { lb_schema_errors_clear(&best); return r; }
  errs_move(c->errs, &best);
  return 1;
}

static NOINLINE int check_number(vctx *c, const node *n, const lb_jval *inst, const pseg *path) {
  num x;
  int bad = 0, r;
  num_from(&x, inst);
  if (n->has & H_MAX && num_cmp(&x, &n->max) > 0) {
    r = fail(c, path, "%.*s is greater than the maximum %.*s", (int)inst->n, inst->p,
             (int)n->max.v.n, n->max.v.p);
    if (STEP(r, bad, c)) return r;
  }
  if (n->has & H_XMAX && num_cmp(&x, &n->xmax) >= 0) {
    r = fail(c, path, "%.*s is not less than the exclusive maximum %.*s", (int)inst->n, inst->p,
             (int)n->xmax.v.n, n->xmax.v.p);
    if (STEP(r, bad, c)) return r;
  }
  if (n->has & H_MIN && num_cmp(&x, &n->min) < 0) {
    r = fail(c, path, "%.*s is less than the minimum %.*s", (int)inst->n, inst->p,
             (int)n->min.v.n, n->min.v.p);
    if (STEP(r, bad, c)) return r;
  }
  if (n->has & H_XMIN && num_cmp(&x, &n->xmin) <= 0) {
    r = fail(c, path, "%.*s is not greater than the exclusive minimum %.*s", (int)inst->n, inst->p,
             (int)n->xmin.v.n, n->xmin.v.p);
    if (STEP(r, bad, c)) return r;
  }
  if (n->has & H_MULT) {
    int ok;
    if (x.isint && n->mult.isint) {
      ok = n->mult.i == 0 || x.i % n->mult.i == 0;
    } else {
      /* floats: a quotient within rounding of an integer passes (0.0075 is
      ** a multiple of 0.0001); past 2^53 every double is an integer, so
      ** fmod decides, exactly, and an overflowing quotient is no error */
      double q = x.d / n->mult.d;
      if (isfinite(q) && fabs(q) < 9007199254740992.0) {
        double tol = 1e-9 * (fabs(q) > 1 ? fabs(q) : 1);
        ok = fabs(q - nearbyint(q)) <= tol;
      } else {
        /* an integer is a multiple of any 1/k (1e-8 included, which fmod
        ** would miss: 1e-8 is not exact in binary) */
        double inv = 1.0 / n->mult.d;
        ok = isfinite(x.d) && (fmod(x.d, n->mult.d) == 0 ||
             (x.d == floor(x.d) && fabs(inv - nearbyint(inv)) <= 1e-9 * inv));
      }
    }
    if (!ok) {
      r = fail(c, path, "%.*s is not a multiple of %.*s", (int)inst->n, inst->p,
               (int)n->mult.v.n, n->mult.v.p);
      if (STEP(r, bad, c)) return r;
    }
  }
  return bad;
}

/* Decode RFC 4648 base64 (padding required when the length needs it) into
** out (at least n * 3 / 4 bytes). Returns the length, or -1. */
static long b64_decode(const char *s, size_t n, uchar *out) {
  unsigned acc = 0;
  size_t i, k = 0, pad = 0;
  int bits = 0;
  if (n % 4) return -1;
  for (i = 0; i < n; i++) {
    int v;
    char ch = s[i];
    if (ch == '=') { pad++; if (pad > 2 || i + 3 - pad < n - 1) return -1; continue; }
    if (pad) return -1;
    if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
    else if (ch == '+') v = 62;
    else if (ch == '/') v = 63;
    else return -1;
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) { bits -= 8; out[k++] = (uchar)(acc >> bits); }
  }
  return (long)k;
}

/* contentEncoding / contentMediaType (asserted with LB_SCHEMA_CONTENT_ASSERT) */
static int check_content(vctx *c, const node *n, const char *str, size_t len, const pseg *path) {
  uchar *dec = NULL;
  const char *body = str;
  size_t dn = len;
  int r = 0;
  if (n->content_b64) {
    long k;
    dec = malloc(len / 4 * 3 + 1);
    if (!dec) return set_fatal(c, LB_SCHEMA_ENOMEM, path, "out of memory");
    k = b64_decode(str, len, dec);
    if (k < 0) { free(dec); return fail(c, path, "string is not valid base64"); }
    body = (const char *)dec;
    dn = (size_t)k;
  }
  if (n->content_json && lb_jskim_validate(body, dn, NULL, NULL))
    r = fail(c, path, "content is not valid JSON");
  free(dec);
  return r;
}

static NOINLINE int check_string(vctx *c, const node *n, const lb_jval *inst, const pseg *path) {
  int bad = 0, r;
  if (n->max_len >= 0 || n->min_len > 0) {
    size_t len = str_codepoints(inst);
    if (n->max_len >= 0 && (unsigned long long)len > (unsigned long long)n->max_len) {
      r = fail(c, path, "string is longer than %lld characters", n->max_len);
      if (STEP(r, bad, c)) return r;
    }
    if ((unsigned long long)len < (unsigned long long)n->min_len) {
      r = fail(c, path, "string is shorter than %lld characters", n->min_len);
      if (STEP(r, bad, c)) return r;
    }
  }
  if (n->pattern || (n->format && (c->s->flags & LB_SCHEMA_FORMAT_ASSERT)) ||
      ((n->content_b64 || n->content_json) && (c->s->flags & LB_SCHEMA_CONTENT_ASSERT))) {
    char *heap;
    size_t len;
    const char *str = str_bytes(inst, &len, &heap);
    if (!str) return set_fatal(c, LB_SCHEMA_ENOMEM, path, "out of memory");
    if (n->pattern && !rx_search(c->s, n->pattern, str, len)) {
      r = fail_span(c, path, "string does not match the pattern ", &n->pattern_v);
      if (STEP(r, bad, c)) { free(heap); return r; }
    }
    if (n->format && (c->s->flags & LB_SCHEMA_FORMAT_ASSERT) && !lb__format_ok(n->format, str, len)) {
      r = fail(c, path, "string is not a valid %s", lb__format_name(n->format));
      if (STEP(r, bad, c)) { free(heap); return r; }
    }
    if ((n->content_b64 || n->content_json) && (c->s->flags & LB_SCHEMA_CONTENT_ASSERT)) {
      r = check_content(c, n, str, len, path);
      if (STEP(r, bad, c)) { free(heap); return r; }
    }
    free(heap);
  }
  return bad;
}

static NOINLINE int check_array(vctx *c, const node *n, const lb_jval *inst, const pseg *path,
                                const vframe *up) {
  lb_jiter it;
  lb_jval v;
  pseg seg;
  size_t i = 0, count;
  int bad = 0, r;
  seg.up = path;
  seg.key = NULL;
  if (n->items || n->items_arr) {
    lb_jiter_init(&it, inst);
    while (lb_jarr_next(&it, &v)) {
      const node *sch = n->items;
      seg.idx = i;
      if (n->items_arr) sch = i < n->n_items ? n->items_arr[i] : n->add_items;
      i++;
      if (!sch) { if (n->items_arr) break; continue; }
      if (sch->boolean == 0 && n->items_arr && i > n->n_items)
        r = fail(c, &seg, "additional item is not allowed (additionalItems is false)");
      else
        r = validate(c, sch, &v, &seg, up);
      if (STEP(r, bad, c)) return r;
    }
  }
  count = (size_t)members(inst);
  if (n->max_items >= 0 && (unsigned long long)count > (unsigned long long)n->max_items) {
    r = fail(c, path, "array has %lu items, more than the maximum %lld", (unsigned long)count,
             n->max_items);
    if (STEP(r, bad, c)) return r;
  }
  if ((unsigned long long)count < (unsigned long long)n->min_items) {
    r = fail(c, path, "array has %lu items, fewer than the minimum %lld", (unsigned long)count,
             n->min_items);
    if (STEP(r, bad, c)) return r;
  }
  if (n->has & H_UNIQUE && count > 1) {
    lb_jiter a, b;
    lb_jval x, y;
    size_t ia = 0, ib;
    int dup = 0;
    lb_jiter_init(&a, inst);
    while (!dup && lb_jarr_next(&a, &x)) {
      b = a;
      ib = ia + 1;
      while (lb_jarr_next(&b, &y)) {
        if (json_eq(&x, &y)) { dup = 1; break; }
        ib++;
      }
      if (!dup) ia++;
      else {
        r = fail(c, path, "items %lu and %lu are equal, but items must be unique",
                 (unsigned long)ia, (unsigned long)ib);
        if (STEP(r, bad, c)) return r;
      }
    }
  }
  if (n->contains) {
    int found = 0;
    lb_jiter_init(&it, inst);
    i = 0;
    while (lb_jarr_next(&it, &v)) {
      seg.idx = i++;
      r = quietly(c, n->contains, &v, &seg, up);
      if (r < 0) return r;
      if (r == 0) { found = 1; break; }
    }
    if (!found) {
      r = fail(c, path, "no item matches the contains schema");
      if (STEP(r, bad, c)) return r;
    }
  }
  return bad;
}

static const prop *find_prop(const prop *arr, size_t n, const char *name, size_t len) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    size_t m = arr[mid].len < len ? arr[mid].len : len;
    int cmp = memcmp(arr[mid].name, name, m);
    if (!cmp) cmp = (arr[mid].len > len) - (arr[mid].len < len);
    if (!cmp) return &arr[mid];
    if (cmp < 0) lo = mid + 1; else hi = mid;
  }
  return NULL;
}

static int has_key(const lb_jval *obj, const char *name, size_t len) {
  lb_jval v;
  return lb_jobj_find(obj, name, len, &v);
}

static NOINLINE int check_object(vctx *c, const node *n, const lb_jval *inst, const pseg *path,
                                 const vframe *up) {
  lb_jiter it;
  lb_jval k, v;
  pseg seg;
  size_t i, count = 0;
  int bad = 0, r;
  seg.up = path;
  seg.idx = 0;
  lb_jiter_init(&it, inst);
  while (lb_jobj_next(&it, &k, &v)) {
    count++;
    seg.key = &k;
    if (n->props || n->pprops || n->add_props || n->prop_names) {
      char *heap;
      size_t len;
      const char *name = str_bytes(&k, &len, &heap);
      int matched = 0;
      const prop *p;
      if (!name) return set_fatal(c, LB_SCHEMA_ENOMEM, path, "out of memory");
      if (n->prop_names) {
        r = validate(c, n->prop_names, &k, &seg, up);
        if (STEP(r, bad, c)) { free(heap); return r; }
      }
      if ((p = find_prop(n->props, n->n_props, name, len))) {
        matched = 1;
        r = validate(c, p->sch, &v, &seg, up);
        if (STEP(r, bad, c)) { free(heap); return r; }
      }
      for (i = 0; i < n->n_pprops; i++) {
        if (!n->pprops[i].re || !rx_search(c->s, n->pprops[i].re, name, len)) continue;
        matched = 1;
        r = validate(c, n->pprops[i].sch, &v, &seg, up);
        if (STEP(r, bad, c)) { free(heap); return r; }
      }
      free(heap);
      if (!matched && n->add_props) {
        if (n->add_props->boolean == 0)
          r = fail(c, &seg, "property is not allowed (additionalProperties is false)");
        else
          r = validate(c, n->add_props, &v, &seg, up);
        if (STEP(r, bad, c)) return r;
      }
    }
  }
  if (n->max_props >= 0 && (unsigned long long)count > (unsigned long long)n->max_props) {
    r = fail(c, path, "object has %lu properties, more than the maximum %lld",
             (unsigned long)count, n->max_props);
    if (STEP(r, bad, c)) return r;
  }
  if ((unsigned long long)count < (unsigned long long)n->min_props) {
    r = fail(c, path, "object has %lu properties, fewer than the minimum %lld",
             (unsigned long)count, n->min_props);
    if (STEP(r, bad, c)) return r;
  }
  for (i = 0; i < n->n_req; i++) {
    if (has_key(inst, n->req_name[i], n->req_len[i])) continue;
    r = fail(c, path, "missing required property %.*s", (int)n->req[i].n, n->req[i].p);
    if (STEP(r, bad, c)) return r;
  }
  for (i = 0; i < n->n_deps; i++) {
    const prop *d = &n->deps[i];
    if (!has_key(inst, d->name, d->len)) continue;
    if (d->sch) {
      r = validate(c, d->sch, inst, path, up);
      if (STEP(r, bad, c)) return r;
    } else {
      lb_jiter di;
      lb_jval dv;
      lb_jiter_init(&di, &d->req);
      while (lb_jarr_next(&di, &dv)) {
        char *heap;
        size_t len;
        const char *name;
        int present;
        if (dv.type != LB_JSTRING) continue;
        name = str_bytes(&dv, &len, &heap);
        if (!name) return set_fatal(c, LB_SCHEMA_ENOMEM, path, "out of memory");
        present = has_key(inst, name, len);
        free(heap);
        if (present) continue;
        r = fail(c, path, "property %.*s is required when %.*s is present", (int)dv.n, dv.p,
                 (int)d->key.n, d->key.p);
        if (STEP(r, bad, c)) return r;
      }
    }
  }
  return bad;
}

static NOINLINE int check_combinators(vctx *c, const node *n, const lb_jval *inst,
                                      const pseg *path, const vframe *up) {
  size_t i;
  int bad = 0, r;
  for (i = 0; i < n->n_all; i++) {
    r = validate(c, n->all_of[i], inst, path, up);
    if (STEP(r, bad, c)) return r;
  }
  if (n->n_any) {
    int ok = 0;
    for (i = 0; i < n->n_any && !ok; i++) {
      r = quietly(c, n->any_of[i], inst, path, up);
      if (r < 0) return r;
      ok = r == 0;
    }
    if (!ok) {
      r = collecting(c) ? explain_branches(c, n->any_of, n->n_any, inst, path, up, "anyOf") : 1;
      if (STEP(r, bad, c)) return r;
    }
  }
  if (n->n_one) {
    size_t first = 0, matches = 0;
    for (i = 0; i < n->n_one && matches < 2; i++) {
      r = quietly(c, n->one_of[i], inst, path, up);
      if (r < 0) return r;
      if (r == 0) { if (!matches) first = i; matches++; }
    }
    if (matches == 0) {
      r = collecting(c) ? explain_branches(c, n->one_of, n->n_one, inst, path, up, "oneOf") : 1;
      if (STEP(r, bad, c)) return r;
    } else if (matches > 1) {
      r = fail(c, path, "value matches more than one schema in oneOf (#%lu and #%lu)",
               (unsigned long)first, (unsigned long)(i - 1));
      if (STEP(r, bad, c)) return r;
    }
  }
  if (n->not_) {
    r = quietly(c, n->not_, inst, path, up);
    if (r < 0) return r;
    if (r == 0) {
      r = fail(c, path, "value must not match the schema in \"not\"");
      if (STEP(r, bad, c)) return r;
    }
  }
  if (n->if_ && (n->then_ || n->else_)) {
    r = quietly(c, n->if_, inst, path, up);
    if (r < 0) return r;
    r = r == 0 ? (n->then_ ? validate(c, n->then_, inst, path, up) : 0)
               : (n->else_ ? validate(c, n->else_, inst, path, up) : 0);
    if (STEP(r, bad, c)) return r;
  }
  return bad;
}

static int validate_node(vctx *c, const node *n, const lb_jval *inst, const pseg *path,
                         const vframe *frame) {
  int bad = 0, r;
  if (n->boolean == 1) return 0;
  if (n->boolean == 0) return fail(c, path, "no value is allowed here (schema is false)");
  if (n->ref_to) {
    const vframe *f;
    /* the frames of this instance location are the innermost ones */
    for (f = frame; f && f->ip == inst->p; f = f->up)
      if (f->n == n->ref_to)
        return set_fatal(c, LB_SCHEMA_ELOOP, path, "infinite $ref loop through %s", n->ref);
    return validate(c, n->ref_to, inst, path, frame);
  }
  if (n->types) {
    unsigned t = n->types, ok;
    switch (inst->type) {
      case LB_JNULL: ok = t & T_NULL; break;
      case LB_JTRUE: case LB_JFALSE: ok = t & T_BOOL; break;
      case LB_JOBJECT: ok = t & T_OBJECT; break;
      case LB_JARRAY: ok = t & T_ARRAY; break;
      case LB_JSTRING: ok = t & T_STRING; break;
      case LB_JNUMBER: ok = (t & T_NUMBER) || ((t & T_INTEGER) && num_integral(inst)); break;
      default: ok = 0; break;
    }
    if (!ok) {
      if (collecting(c)) {
        lb_sbuf b = { NULL, 0, 0, 0 };
        int i, k = 0;
        for (i = 0; type_names[i].name; i++)
          if (t & type_names[i].bit) {
            if (k++) lb__sb_add(&b, " or ");
            lb__sb_add(&b, type_names[i].name);
          }
        if (!k) lb__sb_add(&b, "nothing");
        r = b.oom ? set_fatal(c, LB_SCHEMA_ENOMEM, path, "out of memory")
                  : fail(c, path, "expected %s, got %s", b.p, type_name(inst));
        free(b.p);
      } else {
        r = 1;
      }
      if (STEP(r, bad, c)) return r;
    }
  }
  if (n->has & H_ENUM) {
    lb_jiter it;
    lb_jval e;
    int found = 0;
    lb_jiter_init(&it, &n->enum_v);
    while (!found && lb_jarr_next(&it, &e)) found = json_eq(inst, &e);
    if (!found) {
      r = fail_span(c, path, "value is not one of ", &n->enum_v);
      if (STEP(r, bad, c)) return r;
    }
  }
  if (n->has & H_CONST && !json_eq(inst, &n->const_v)) {
    r = fail_span(c, path, "value must be ", &n->const_v);
    if (STEP(r, bad, c)) return r;
  }
  switch (inst->type) {
    case LB_JNUMBER:
      if (n->has & (H_MAX | H_MIN | H_XMAX | H_XMIN | H_MULT)) {
        r = check_number(c, n, inst, path);
        if (STEP(r, bad, c)) return r;
      }
      break;
    case LB_JSTRING:
      r = check_string(c, n, inst, path);
      if (STEP(r, bad, c)) return r;
      break;
    case LB_JARRAY:
      r = check_array(c, n, inst, path, frame);
      if (STEP(r, bad, c)) return r;
      break;
    case LB_JOBJECT:
      r = check_object(c, n, inst, path, frame);
      if (STEP(r, bad, c)) return r;
      break;
    default:
      break;
  }
  if (n->n_all || n->n_any || n->n_one || n->not_ || n->if_) {
    r = check_combinators(c, n, inst, path, frame);
    if (STEP(r, bad, c)) return r;
  }
  return bad;
}

static int validate(vctx *c, const node *n, const lb_jval *inst, const pseg *path,
                    const vframe *up) {
  vframe frame;
  int r;
  if (c->fatal) return c->fatal;
  if (c->depth >= c->s->max_depth)
    return set_fatal(c, LB_SCHEMA_EDEPTH, path, "more than %d nested evaluations",
                     c->s->max_depth);
  frame.up = up;
  frame.n = n;
  frame.ip = inst->p;
  c->depth++;
  r = validate_node(c, n, inst, path, &frame);
  c->depth--;
  if (c->fatal) return c->fatal;
  return r;
}

void lb_schema_errors_clear(lb_schema_errors *errs) {
  int i;
  if (!errs) return;
  for (i = 0; i < errs->count; i++) free(errs->msgs[i]);
  free(errs->msgs);
  errs->msgs = NULL;
  errs->count = 0;
  errs->truncated = 0;
}

int lb_schema_validate_span(const lb_schema *s, const lb_jval *v, lb_schema_errors *errs) {
  vctx c;
  int r;
  if (!s || !v) return LB_SCHEMA_EINVAL;
  memset(&c, 0, sizeof c);
  c.s = s;
  c.errs = errs;
  r = validate(&c, s->root, v, NULL, NULL);
  /* messages were wanted but none could be kept */
  if (r == 1 && errs && errs->count == 0) errs->truncated = 1;
  if (r < 0 && errs) {
    char *m = malloc(strlen(c.fatal_msg) + 1);
    int saved = errs->max;
    if (m) {
      strcpy(m, c.fatal_msg);
      /* the reason is always kept, even past max */
      errs->max = errs->count + 1;
      if (errs_push(errs, m) < 0) {}
      errs->max = saved;
    }
  }
  return r;
}

int lb_schema_validate(const lb_schema *s, const char *instance, size_t len,
                       lb_schema_errors *errs) {
  lb_jval top;
  size_t off = 0;
  int rc;
  if (!s || (!instance && len)) return LB_SCHEMA_EINVAL;
  rc = lb_jskim_validate(instance ? instance : "", len, &top, &off);
  if (rc) {
    if (errs) {
      lb_sbuf b = { NULL, 0, 0, 0 };
      int saved = errs->max;
      lb__sb_printf(&b, "$: invalid JSON at offset %lu: %s", (unsigned long)off,
                lb_jskim_strerror(rc));
      if (!b.oom) {
        errs->max = errs->count + 1;
        if (errs_push(errs, b.p) < 0) {}
        errs->max = saved;
      } else {
        free(b.p);
      }
    }
    return LB_SCHEMA_EJSON;
  }
  return lb_schema_validate_span(s, &top, errs);
}
