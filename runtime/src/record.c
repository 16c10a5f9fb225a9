/*
** record.c - JSON spans to Lua values, Lua values to JSON text, BigInt.
**
** The decoder walks validated bytes once with an explicit stack (the
** containers being filled sit on the Lua stack, a C array keeps each
** array's next index): no recursion, no re-scanning of nested values.
** The encoder recurses, bounded by LB_JSON_MAXDEPTH, and writes into a
** buffer owned by a userdata box so that raising never leaks.
*/
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>

#include "jsonenc.h"
#include "record.h"

/* Registry keys: the addresses of these statics (their values are unused). */
static const char array_mt_key = 'a';
static const char object_mt_key = 'o';
static const char bigint_mt_key = 'b';
static const char jbuf_mt_key = 'j';

#define BIGINT_NAME "airbyte.BigInt"

typedef unsigned char uchar;

#define IS_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')
#define IS_DIGIT(c) ((unsigned)((c) - '0') < 10u)

/* ---------------------------------------------------------------------- */
/* Shared metatables                                                       */
/* ---------------------------------------------------------------------- */

/* Push registry[key], creating it with `init` (which gets the new table on
** top) the first time. */
static void push_meta(lua_State *L, const void *key, const char *name,
                      void (*init)(lua_State *L)) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TTABLE) return;
  lua_pop(L, 1);
  lua_createtable(L, 0, 8);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  if (init) init(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

void lb__json_push_array_mt(lua_State *L) {
  push_meta(L, &array_mt_key, "airbyte.json.array", NULL);
}

void lb__json_push_object_mt(lua_State *L) {
  push_meta(L, &object_mt_key, "airbyte.json.object", NULL);
}

/* ---------------------------------------------------------------------- */
/* BigInt                                                                  */
/* ---------------------------------------------------------------------- */

typedef struct bigint {
  size_t n;
  char d[1];   /* n digits (with a leading '-' when negative) and a NUL */
} bigint;

static bigint *tobig(lua_State *L, int idx) {
  bigint *b = NULL;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &bigint_mt_key);
  if (lua_rawequal(L, -1, -2)) b = (bigint *)lua_touserdata(L, idx);
  lua_pop(L, 2);
  return b;
}

const char *lb__bigint_digits(lua_State *L, int idx, size_t *len) {
  bigint *b = tobig(L, idx);
  if (!b) return NULL;
  if (len) *len = b->n;
  return b->d;
}

/* Compare two canonical decimal integers. */
static int cmp_digits(const char *a, size_t an, const char *b, size_t bn) {
  int na = a[0] == '-', nb = b[0] == '-', c;
  if (na != nb) return na ? -1 : 1;
  an -= (size_t)na; bn -= (size_t)nb; a += na; b += nb;
  if (an != bn) c = an < bn ? -1 : 1;
  else {
    c = memcmp(a, b, an);
    c = (c > 0) - (c < 0);
  }
  return na ? -c : c;
}

/* A comparison operand: a canonical integer plus "and a fraction more"
** (floats that are not integral), or an infinity, or NaN. */
typedef struct operand {
  int kind;            /* 0 finite, 1 +inf, -1 -inf, 2 NaN */
  const char *s;
  size_t n;
  int frac;
  char buf[400];       /* "%.0f" of the largest double has 309 digits */
} operand;

static void get_operand(lua_State *L, int idx, operand *o) {
  bigint *b;
  o->kind = 0; o->frac = 0;
  if ((b = tobig(L, idx)) != NULL) {
    o->s = b->d; o->n = b->n;
  } else if (lua_isinteger(L, idx)) {
    o->n = (size_t)snprintf(o->buf, sizeof o->buf, LUA_INTEGER_FMT,
                            (LUAI_UACINT)lua_tointeger(L, idx));
    o->s = o->buf;
  } else if (lua_type(L, idx) == LUA_TNUMBER) {
    double f = (double)lua_tonumber(L, idx), fl;
    if (f != f) { o->kind = 2; return; }
    if (isinf(f)) { o->kind = f > 0 ? 1 : -1; return; }
    fl = floor(f);
    o->frac = fl != f;
    /* glibc prints integral doubles exactly; "-0" must become "0" */
    o->n = (size_t)snprintf(o->buf, sizeof o->buf, "%.0f", fl == 0 ? 0.0 : fl);
    o->s = o->buf;
  } else {
    luaL_error(L, "attempt to compare a BigInt with a %s", luaL_typename(L, idx));
  }
}

/* -1, 0, 1, or 2 for unordered (NaN). */
static int big_compare(lua_State *L) {
  operand a, b;
  int c;
  get_operand(L, 1, &a);
  get_operand(L, 2, &b);
  if (a.kind == 2 || b.kind == 2) return 2;
  if (a.kind || b.kind) return a.kind == b.kind ? 0 : (a.kind < b.kind ? -1 : 1);
  c = cmp_digits(a.s, a.n, b.s, b.n);
  if (c == 0) c = a.frac - b.frac;
  return c;
}

static int big_eq(lua_State *L) {
  bigint *a = tobig(L, 1), *b = tobig(L, 2);
  lua_pushboolean(L, a && b && a->n == b->n && memcmp(a->d, b->d, a->n) == 0);
  return 1;
}

static int big_lt(lua_State *L) {
  int c = big_compare(L);
  lua_pushboolean(L, c == -1);
  return 1;
}

static int big_le(lua_State *L) {
  int c = big_compare(L);
  lua_pushboolean(L, c == -1 || c == 0);
  return 1;
}

static int big_tostring(lua_State *L) {
  bigint *b = tobig(L, 1);
  if (!b) return luaL_typeerror(L, 1, BIGINT_NAME);
  lua_pushlstring(L, b->d, b->n);
  return 1;
}

static int big_tonumber(lua_State *L) {
  bigint *b = tobig(L, 1);
  if (!b) return luaL_typeerror(L, 1, BIGINT_NAME);
  /* digits only, no decimal point: strtod's locale does not matter */
  lua_pushnumber(L, (lua_Number)strtod(b->d, NULL));
  return 1;
}

static void bigint_init(lua_State *L) {
  static const luaL_Reg meta[] = {
    { "__eq", big_eq }, { "__lt", big_lt }, { "__le", big_le },
    { "__tostring", big_tostring }, { NULL, NULL }
  };
  static const luaL_Reg methods[] = {
    { "tonumber", big_tonumber }, { "tostring", big_tostring }, { NULL, NULL }
  };
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  /* also under its name, so other C code may use luaL_testudata */
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, BIGINT_NAME);
}

/* Push a BigInt with room for n digits (the caller fills them). */
static bigint *big_new(lua_State *L, size_t n) {
  bigint *b = (bigint *)lua_newuserdatauv(L, offsetof(bigint, d) + n + 1, 0);
  b->n = n;
  b->d[n] = '\0';
  push_meta(L, &bigint_mt_key, BIGINT_NAME, bigint_init);
  lua_setmetatable(L, -2);
  return b;
}

void lb__bigint_push(lua_State *L, const char *s, size_t n) {
  memcpy(big_new(L, n)->d, s, n);
}

int lb__bigint_from_string(lua_State *L, const char *s, size_t n) {
  size_t i = 0, z;
  int neg = 0;
  bigint *b;
  if (n > 0 && s[0] == '-') { neg = 1; i = 1; }
  if (i == n) return -1;
  for (z = i; z < n; z++)
    if (!IS_DIGIT(s[z])) return -1;
  while (i < n - 1 && s[i] == '0') i++;      /* leading zeros */
  if (n - i == 1 && s[i] == '0') neg = 0;     /* "-0" is 0 */
  b = big_new(L, n - i + (size_t)neg);
  if (neg) b->d[0] = '-';
  memcpy(b->d + neg, s + i, n - i);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* Decoding                                                                */
/* ---------------------------------------------------------------------- */

void lb__push_jstring(lua_State *L, const lb_jval *s) {
  size_t len = s->n - 2;
  if (!lb_jstr_has_escapes(s)) {
    lua_pushlstring(L, s->p + 1, len);
  } else {
    luaL_Buffer b;
    char *dst = luaL_buffinitsize(L, &b, len);
    luaL_pushresultsize(&b, lb_jstr_decode(s, dst, len));
  }
}

static const char *push_string(lua_State *L, const char *p, const char *end) {
  lb_jval s;
  const char *q = lb_jskim_skip(p, end, &s);
  lb__push_jstring(L, &s);
  return q;
}

static const char *push_number(lua_State *L, const char *p, const char *end) {
  lb_jval v;
  const char *q = lb_jskim_skip(p, end, &v);
  long long i;
  if (lb_jnum_to_int64(&v, &i)) lua_pushinteger(L, (lua_Integer)i);
  else if (lb_jnum_is_integer(&v)) lb__bigint_push(L, v.p, v.n);
  else lua_pushnumber(L, (lua_Number)lb_jnum_to_double(&v));
  return q;
}

void lb__json_push(lua_State *L, const lb_jval *v) {
  /* next index of each open array; -1 for an object */
  lua_Integer next[LB_JSKIM_MAXDEPTH + 1];
  const char *p = v->p, *end = v->p + v->n;
  int d = 0, base, amt, omt;

  if (v->type == LB_JNONE || v->n == 0) {   /* an absent value */
    lua_pushnil(L);
    return;
  }
  luaL_checkstack(L, 8, "JSON nesting");
  lb__json_push_array_mt(L);
  lb__json_push_object_mt(L);
  omt = lua_gettop(L);
  amt = omt - 1;
  base = amt;
  /* stack: array_mt object_mt [container (key)]... */

value:
  switch (*p) {
    case '{':
      luaL_checkstack(L, 6, "JSON nesting");
      lua_newtable(L);
      for (p++; IS_WS(*p); p++) {}
      if (*p == '}') {
        p++;
        lua_pushvalue(L, omt);
        lua_setmetatable(L, -2);
        goto after;
      }
      next[d++] = -1;
      goto key;
    case '[':
      luaL_checkstack(L, 6, "JSON nesting");
      lua_newtable(L);
      lua_pushvalue(L, amt);
      lua_setmetatable(L, -2);
      for (p++; IS_WS(*p); p++) {}
      if (*p == ']') { p++; goto after; }
      next[d++] = 0;
      goto value;
    case '"':
      p = push_string(L, p, end);
      goto after;
    case 't': lua_pushboolean(L, 1); p += 4; goto after;
    case 'f': lua_pushboolean(L, 0); p += 5; goto after;
    case 'n': lua_pushlightuserdata(L, NULL); p += 4; goto after;
    default:
      p = push_number(L, p, end);
      goto after;
  }

key:
  /* p is at the key's opening quote */
  p = push_string(L, p, end);
  while (IS_WS(*p)) p++;
  p++;                                     /* ':' */
  while (IS_WS(*p)) p++;
  goto value;

after:
  /* stack: ... container [key] value */
  if (d == 0) {
    lua_replace(L, base);                  /* the value over array_mt */
    lua_settop(L, base);
    return;
  }
  if (next[d - 1] < 0) lua_rawset(L, -3);
  else lua_rawseti(L, -2, ++next[d - 1]);
  /* the span is validated, so the container's closing bracket comes
  ** before `end`: these loops stay inside it */
  while (IS_WS(*p)) p++;
  if (*p == ',') {
    for (p++; IS_WS(*p); p++) {}
    if (next[d - 1] < 0) goto key;
    goto value;
  }
  p++;                                     /* '}' or ']' */
  d--;
  goto after;
}

/* ---------------------------------------------------------------------- */
/* The output buffer                                                       */
/* ---------------------------------------------------------------------- */

static void jbuf_release(lua_State *L, lb_jbuf *b) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  if (b->p) f(ud, b->p, b->cap, 0);
  b->p = NULL;
  b->n = b->cap = 0;
}

static int jbuf_gc(lua_State *L) {
  lb_jbuf *b = (lb_jbuf *)lua_touserdata(L, 1);
  if (b) jbuf_release(L, b);
  return 0;
}

static void jbuf_init(lua_State *L) {
  lua_pushcfunction(L, jbuf_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, jbuf_gc);
  lua_setfield(L, -2, "__close");
}

lb_jbuf *lb__jbuf_new(lua_State *L) {
  lb_jbuf *b = (lb_jbuf *)lua_newuserdatauv(L, sizeof *b, 0);
  b->p = NULL;
  b->n = b->cap = 0;
  push_meta(L, &jbuf_mt_key, "airbyte.json.buffer", jbuf_init);
  lua_setmetatable(L, -2);
  return b;
}

void lb__jbuf_free(lua_State *L, lb_jbuf *b) {
  jbuf_release(L, b);
}

static void jbuf_grow(lua_State *L, lb_jbuf *b, size_t need) {
  size_t cap = b->cap ? b->cap : 256;
  void *ud, *np;
  lua_Alloc f;
  while (cap - b->n < need) {
    if (cap > ((size_t)-1) / 4) luaL_error(L, "JSON text too large");
    cap *= 2;
  }
  f = lua_getallocf(L, &ud);
  np = f(ud, b->p, b->p ? b->cap : 0, cap);
  if (!np) luaL_error(L, "not enough memory");
  b->p = (char *)np;
  b->cap = cap;
}

/* ---------------------------------------------------------------------- */
/* Encoding                                                                */
/* ---------------------------------------------------------------------- */

typedef struct enc {
  lua_State *L;
  lb_jbuf *b;
  char *err;
  size_t errlen;
  int depth;
  int amt;                          /* stack index of the array metatable */
  int open[LB_JSON_MAXDEPTH];       /* stack indices of the tables being written */
} enc;

static void put(enc *e, const void *s, size_t n) {
  lb_jbuf *b = e->b;
  if (b->cap - b->n < n) jbuf_grow(e->L, b, n);
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

static void putc_(enc *e, char c) {
  lb_jbuf *b = e->b;
  if (b->cap == b->n) jbuf_grow(e->L, b, 1);
  b->p[b->n++] = c;
}

static int fail(enc *e, const char *msg) {
  if (e->errlen) snprintf(e->err, e->errlen, "%s", msg);
  return -1;
}

/* Strings, integers and floats are written by jsonenc.c, the one writer
** the cache feed and the Lua kit use too. */
static int enc_string(enc *e, const char *s, size_t n) {
  /* reserving the worst case (6n+2) is cheap for the usual short string;
  ** a long one gets its exact length first instead */
  size_t need = n <= 4096 ? LB_JSON_QUOTE_ROOM(n) : lb__json_quoted_len(s, n);
  long w;
  if (e->b->cap - e->b->n < need) jbuf_grow(e->L, e->b, need);
  w = lb__json_quote(s, n, e->b->p + e->b->n, 1);
  if (w < 0) return fail(e, "cannot encode a string that is not valid UTF-8");
  e->b->n += (size_t)w;
  return 0;
}

static void enc_integer(enc *e, lua_Integer v) {
  if (e->b->cap - e->b->n < LB_JSON_NUM_ROOM) jbuf_grow(e->L, e->b, LB_JSON_NUM_ROOM);
  e->b->n += lb__json_fmt_int((long long)v, e->b->p + e->b->n);
}

static int enc_float(enc *e, double d) {
  size_t w;
  if (e->b->cap - e->b->n < LB_JSON_NUM_ROOM) jbuf_grow(e->L, e->b, LB_JSON_NUM_ROOM);
  w = lb__json_fmt_double(d, e->b->p + e->b->n);
  if (w == 0) return fail(e, "cannot encode NaN or infinity");
  e->b->n += w;
  return 0;
}

typedef struct keyent {
  const char *s;
  size_t n;
  int slot;                         /* value at 2*slot in the pairs table */
} keyent;

static int keycmp(const void *a, const void *b) {
  const keyent *x = (const keyent *)a, *y = (const keyent *)b;
  size_t m = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->s, y->s, m);
  if (c) return c;
  return (x->n > y->n) - (x->n < y->n);
}

static int enc_value(enc *e, int idx);

static int enc_array(enc *e, int t, lua_Integer len) {
  lua_State *L = e->L;
  lua_Integer i;
  putc_(e, '[');
  for (i = 1; i <= len; i++) {
    if (i > 1) putc_(e, ',');
    lua_rawgeti(L, t, i);
    if (enc_value(e, lua_gettop(L))) return -1;
    lua_pop(L, 1);
  }
  putc_(e, ']');
  return 0;
}

static int enc_object(enc *e, int t, lua_Integer count) {
  lua_State *L = e->L;
  keyent small[32], *ks = small;
  int pairs, i, k = 0;
  if (count == 0) { put(e, "{}", 2); return 0; }
  if (count > 0x3fffffff) return fail(e, "table too large");
  /* stack: ... pairs [keys]: pairs[2i-1] = key as a string, pairs[2i] = value;
  ** the strings stay anchored there while their pointers are sorted */
  lua_createtable(L, (int)count * 2, 0);
  pairs = lua_gettop(L);
  if (count > (lua_Integer)(sizeof small / sizeof small[0]))
    ks = (keyent *)lua_newuserdatauv(L, sizeof(keyent) * (size_t)count, 0);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    /* stack: ... key value */
    if (k >= count) { lua_pop(L, 2); break; }   /* cannot happen: counted */
    if (lua_type(L, -2) == LUA_TSTRING) {
      lua_pushvalue(L, -2);
    } else if (lua_isinteger(L, -2)) {
      lua_pushfstring(L, "%I", (lua_Integer)lua_tointeger(L, -2));
    } else {
      lua_pop(L, 2);
      return fail(e, "cannot encode a table key that is not a string or an integer");
    }
    lua_rawseti(L, pairs, 2 * k + 1);
    lua_rawseti(L, pairs, 2 * k + 2);
    k++;
  }
  for (i = 0; i < k; i++) {
    lua_rawgeti(L, pairs, 2 * i + 1);
    ks[i].s = lua_tolstring(L, -1, &ks[i].n);
    ks[i].slot = i;
    lua_pop(L, 1);                   /* still anchored in pairs */
  }
  qsort(ks, (size_t)k, sizeof *ks, keycmp);
  putc_(e, '{');
  for (i = 0; i < k; i++) {
    if (i > 0) {
      if (keycmp(&ks[i - 1], &ks[i]) == 0)
        return fail(e, "cannot encode a table with both an integer key and the same key as a string");
      putc_(e, ',');
    }
    if (enc_string(e, ks[i].s, ks[i].n)) return -1;
    putc_(e, ':');
    lua_rawgeti(L, pairs, 2 * ks[i].slot + 2);
    if (enc_value(e, lua_gettop(L))) return -1;
    lua_pop(L, 1);
  }
  putc_(e, '}');
  lua_settop(L, pairs - 1);
  return 0;
}

static int enc_table(enc *e, int t) {
  lua_State *L = e->L;
  int i, is_array = 0, rc;
  lua_Integer count = 0, max = 0;
  for (i = 0; i < e->depth; i++)
    if (lua_rawequal(L, e->open[i], t)) return fail(e, "cannot encode a table that contains itself");
  if (e->depth >= LB_JSON_MAXDEPTH) return fail(e, "cannot encode tables nested deeper than 512");
  luaL_checkstack(L, 8, "JSON encode nesting");
  e->open[e->depth++] = t;
  if (lua_getmetatable(L, t)) {
    is_array = lua_rawequal(L, -1, e->amt);
    lua_pop(L, 1);
  }
  if (is_array) {
    rc = enc_array(e, t, (lua_Integer)lua_rawlen(L, t));
  } else {
    /* a sequence 1..n with no other key is an array */
    int seq = 1;
    lua_pushnil(L);
    while (lua_next(L, t)) {
      lua_pop(L, 1);
      count++;
      if (seq && lua_isinteger(L, -1)) {
        lua_Integer k = lua_tointeger(L, -1);
        if (k < 1) seq = 0;
        else if (k > max) max = k;
      } else {
        seq = 0;
      }
    }
    if (seq && count > 0 && max == count) rc = enc_array(e, t, count);
    else rc = enc_object(e, t, count);
  }
  e->depth--;
  return rc;
}

static int enc_value(enc *e, int idx) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      put(e, "null", 4);
      return 0;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx)) put(e, "true", 4);
      else put(e, "false", 5);
      return 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        enc_integer(e, lua_tointeger(L, idx));
        return 0;
      }
      return enc_float(e, (double)lua_tonumber(L, idx));
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      return enc_string(e, s, n);
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) {
        put(e, "null", 4);
        return 0;
      }
      return fail(e, "cannot encode a light userdata other than null");
    case LUA_TUSERDATA: {
      size_t n;
      const char *d = lb__bigint_digits(L, idx, &n);
      if (d) {
        put(e, d, n);
        return 0;
      }
      return fail(e, "cannot encode a userdata");
    }
    case LUA_TTABLE:
      return enc_table(e, idx);
    default: {
      char msg[64];
      snprintf(msg, sizeof msg, "cannot encode a %s", luaL_typename(L, idx));
      return fail(e, msg);
    }
  }
}

int lb__json_encode(lua_State *L, int idx, lb_jbuf *b, char *err, size_t errlen) {
  enc e;
  int top = lua_gettop(L), rc;
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 8, "JSON encode");
  e.L = L;
  e.b = b;
  e.err = err;
  e.errlen = errlen;
  e.depth = 0;
  lb__json_push_array_mt(L);
  e.amt = lua_gettop(L);
  rc = enc_value(&e, idx);
  lua_settop(L, top);
  return rc;
}

int lb__json_encode_push(lua_State *L, int idx, char *err, size_t errlen) {
  lb_jbuf *b;
  idx = lua_absindex(L, idx);
  b = lb__jbuf_new(L);
  if (lb__json_encode(L, idx, b, err, errlen)) {
    lb__jbuf_free(L, b);
    lua_pop(L, 1);
    return -1;
  }
  lua_pushlstring(L, b->p ? b->p : "", b->n);
  lb__jbuf_free(L, b);
  lua_remove(L, -2);                /* the box */
  return 0;
}
