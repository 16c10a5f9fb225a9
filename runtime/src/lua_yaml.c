/*
** lua_yaml.c - the airbyte.libyaml module: one YAML document into Lua values
** with libyaml's parser.
**
**   libyaml.load(text [, name]) -> value | raises "name:line:col: problem"
**
** Scalars are typed the way PyYAML's safe_load types them (YAML 1.1, which
** is how Airbyte's CDK reads manifests): plain `yes`/`no`/`on`/`off`/
** `true`/`false` (three capitalisations) are booleans, `~`, `null` and the
** empty scalar are null (json.null), ints may be 0x/0o-less octal
** (`017`), binary (`0b1`), sexagesimal (`1:30`) or carry `_`, floats need a
** dot (`1e5` stays a string). Quoted scalars are strings; explicit `!!str`,
** `!!int`, `!!float`, `!!bool`, `!!null` tags are honoured. Timestamps stay
** strings (PyYAML would build date objects, which JSON cannot carry anyway).
** Sequences get airbyte.json's array metatable so that empty ones stay
** arrays; anchors, aliases and `<<` merge keys work as in PyYAML.
*/
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include <lua.h>
#include <lauxlib.h>

#include "lb_internal.h"
#include "record.h"

#define MAX_DEPTH 256

typedef struct loader {
  lua_State *L;
  yaml_parser_t parser;
  yaml_event_t ev;
  int have_ev;
  int live;             /* the parser is initialised and not yet deleted */
  int anchors;          /* stack index of the anchor table */
  const char *name;
} loader;

static int fail(loader *ld, const char *what, yaml_mark_t mark) {
  return luaL_error(ld->L, "%s:%d:%d: %s", ld->name, (int)mark.line + 1,
                    (int)mark.column + 1, what);
}

static void next_event(loader *ld) {
  if (ld->have_ev) { yaml_event_delete(&ld->ev); ld->have_ev = 0; }
  if (!yaml_parser_parse(&ld->parser, &ld->ev)) {
    const char *p = ld->parser.problem ? ld->parser.problem : "YAML syntax error";
    yaml_mark_t m = ld->parser.problem_mark;
    if (ld->parser.context) {
      lua_pushfstring(ld->L, "%s %s", ld->parser.context, p);
      p = lua_tostring(ld->L, -1);
    }
    fail(ld, p, m);
  }
  ld->have_ev = 1;
}

/* --- scalar resolution (PyYAML's implicit resolvers) -------------------- */

static int is_one_of(const char *s, const char *const *list) {
  for (; *list; list++)
    if (strcmp(s, *list) == 0) return 1;
  return 0;
}

static const char *const NULLS[] = {"~", "null", "Null", "NULL", "", NULL};
static const char *const TRUES[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", NULL};
static const char *const FALSES[] = {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", NULL};

/* Copies s without '_' into buf (size cap); returns 0 when too long. */
static int strip_underscores(const char *s, char *buf, size_t cap) {
  size_t n = 0;
  for (; *s; s++) {
    if (*s == '_') continue;
    if (n + 1 >= cap) return 0;
    buf[n++] = *s;
  }
  buf[n] = '\0';
  return 1;
}

static int all_in(const char *s, const char *set, int allow_empty) {
  if (!*s) return allow_empty;
  for (; *s; s++)
    if (!strchr(set, *s)) return 0;
  return 1;
}

/* Sexagesimal "1:30:05" (each part after the first 0..59): value or -1. */
static int sexagesimal(const char *s, double *out, int want_float) {
  double v = 0;
  const char *p = s;
  int first = 1;
  while (*p) {
    char *end;
    double part;
    if (!first && (*p < '0' || *p > '9')) return 0;
    part = strtod(p, &end);
    if (end == p) return 0;
    if (!want_float && memchr(p, '.', (size_t)(end - p))) return 0;
    if (!first && (end - p > 2 || part >= 60)) return 0;
    v = v * 60 + part;
    first = 0;
    p = end;
    if (*p == ':') { p++; if (!*p) return 0; }
    else if (*p) return 0;
  }
  *out = v;
  return 1;
}

/* Pushes the typed value of plain scalar s; returns 1, or 0 for "a string". */
static int push_implicit(lua_State *L, const char *raw) {
  char buf[128];
  const char *s;
  int neg = 0;
  if (is_one_of(raw, NULLS)) { lua_pushlightuserdata(L, NULL); return 1; }
  if (is_one_of(raw, TRUES)) { lua_pushboolean(L, 1); return 1; }
  if (is_one_of(raw, FALSES)) { lua_pushboolean(L, 0); return 1; }
  if (!strip_underscores(raw, buf, sizeof buf)) return 0;
  s = buf;
  if (*s == '-' || *s == '+') { neg = *s == '-'; s++; }
  if (!*s) return 0;
  /* special floats */
  if (strcmp(s, ".inf") == 0 || strcmp(s, ".Inf") == 0 || strcmp(s, ".INF") == 0) {
    lua_pushnumber(L, neg ? -HUGE_VAL : HUGE_VAL);
    return 1;
  }
  if (s == buf && (strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0 || strcmp(s, ".NAN") == 0)) {
    lua_pushnumber(L, NAN);
    return 1;
  }
  if (strchr(raw, '_') && raw[0] == '_') return 0;
  /* ints */
  if (s[0] == '0' && s[1] == 'b' && all_in(s + 2, "01", 0)) {
    lua_Integer v = (lua_Integer)strtoull(s + 2, NULL, 2);
    lua_pushinteger(L, neg ? -v : v);
    return 1;
  }
  if (s[0] == '0' && s[1] == 'x' && all_in(s + 2, "0123456789abcdefABCDEF", 0)) {
    lua_Integer v = (lua_Integer)strtoull(s + 2, NULL, 16);
    lua_pushinteger(L, neg ? -v : v);
    return 1;
  }
  if (s[0] == '0' && s[1] && all_in(s + 1, "01234567", 0)) {
    lua_Integer v = (lua_Integer)strtoull(s + 1, NULL, 8);
    lua_pushinteger(L, neg ? -v : v);
    return 1;
  }
  if (all_in(s, "0123456789", 0) && (s[0] != '0' || s[1] == '\0')) {
    char *end;
    unsigned long long u;
    errno = 0;
    u = strtoull(s, &end, 10);
    if (errno == 0 && u <= (unsigned long long)LUA_MAXINTEGER)
      lua_pushinteger(L, neg ? -(lua_Integer)u : (lua_Integer)u);
    else
      lua_pushnumber(L, (neg ? -1 : 1) * strtod(s, NULL));   /* beyond 64 bits */
    return 1;
  }
  if (s[0] >= '1' && s[0] <= '9' && strchr(s, ':') && !strchr(s, '.')) {
    double v;
    if (sexagesimal(s, &v, 0)) { lua_pushinteger(L, (lua_Integer)(neg ? -v : v)); return 1; }
    return 0;
  }
  /* floats: digits '.' digits [e[+-]digits], or '.' digits ..., or sexagesimal with '.' */
  {
    const char *p = s, *dot = strchr(s, '.');
    if (dot && !strchr(s, ':')) {
      if (p == dot) {       /* ".5": needs a digit after the dot */
        if (!(dot[1] >= '0' && dot[1] <= '9')) return 0;
      } else {
        for (; p < dot; p++) if (*p < '0' || *p > '9') return 0;
      }
      p = dot + 1;
      while (*p >= '0' && *p <= '9') p++;
      if (*p == 'e' || *p == 'E') {
        p++;
        if (*p != '+' && *p != '-') return 0;    /* PyYAML wants the sign */
        p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
      }
      if (*p) return 0;
      lua_pushnumber(L, (neg ? -1 : 1) * strtod(s, NULL));
      return 1;
    }
    if (dot && s[0] >= '0' && s[0] <= '9') {
      double v;
      if (sexagesimal(s, &v, 1)) { lua_pushnumber(L, neg ? -v : v); return 1; }
    }
  }
  return 0;
}

/* An explicitly tagged scalar (!!int and friends); 0 = keep the string. */
static int push_tagged(loader *ld, const char *tag, const char *s, yaml_mark_t mark) {
  lua_State *L = ld->L;
  if (strcmp(tag, YAML_STR_TAG) == 0) return 0;
  if (strcmp(tag, YAML_NULL_TAG) == 0) { lua_pushlightuserdata(L, NULL); return 1; }
  if (strcmp(tag, YAML_BOOL_TAG) == 0) {
    if (is_one_of(s, TRUES)) { lua_pushboolean(L, 1); return 1; }
    if (is_one_of(s, FALSES)) { lua_pushboolean(L, 0); return 1; }
    return fail(ld, "!!bool scalar is not a boolean", mark);
  }
  if (strcmp(tag, YAML_INT_TAG) == 0 || strcmp(tag, YAML_FLOAT_TAG) == 0) {
    int want_int = strcmp(tag, YAML_INT_TAG) == 0;
    if (push_implicit(L, s) && lua_type(L, -1) == LUA_TNUMBER) {
      if (!want_int && lua_isinteger(L, -1)) {
        lua_Number n = (lua_Number)lua_tointeger(L, -1);
        lua_pop(L, 1);
        lua_pushnumber(L, n);
      }
      if (want_int && !lua_isinteger(L, -1)) return fail(ld, "!!int scalar is not an integer", mark);
      return 1;
    }
    return fail(ld, want_int ? "!!int scalar is not an integer" : "!!float scalar is not a number", mark);
  }
  return 0;   /* other tags (local ones): the value as if untagged */
}

/* --- the tree -------------------------------------------------------------- */

static void push_node(loader *ld, int depth);

static void remember_anchor(loader *ld, const yaml_char_t *anchor) {
  if (!anchor) return;
  lua_pushvalue(ld->L, -1);
  lua_setfield(ld->L, ld->anchors, (const char *)anchor);
}

/* Copies the keys of the mapping on top into the table at `target` where
** absent (merged keys never override explicit or earlier ones); pops it. */
static void merge_into(loader *ld, int target, yaml_mark_t mark) {
  lua_State *L = ld->L;
  if (lua_type(L, -1) != LUA_TTABLE) fail(ld, "a '<<' merge needs a mapping or a list of mappings", mark);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_pushvalue(L, -2);
    if (lua_rawget(L, target) == LUA_TNIL) {
      lua_pop(L, 1);
      lua_pushvalue(L, -2);
      lua_pushvalue(L, -2);
      lua_rawset(L, target);
    } else {
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

static void push_mapping(loader *ld, int depth) {
  lua_State *L = ld->L;
  yaml_mark_t mark = ld->ev.start_mark;
  lua_Integer merges = 0, i;
  int base;
  lua_newtable(L);
  remember_anchor(ld, ld->ev.data.mapping_start.anchor);
  base = lua_gettop(L);
  lua_newtable(L);                      /* base + 1: mappings to merge, in order */
  for (;;) {
    yaml_mark_t kmark;
    next_event(ld);
    if (ld->ev.type == YAML_MAPPING_END_EVENT) break;
    kmark = ld->ev.start_mark;
    if (ld->ev.type == YAML_SCALAR_EVENT && ld->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE
        && strcmp((const char *)ld->ev.data.scalar.value, "<<") == 0) {
      next_event(ld);
      push_node(ld, depth + 1);
      if (lua_type(L, -1) == LUA_TTABLE && lua_rawlen(L, -1) > 0) {   /* a list of mappings */
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (i = 1; i <= n; i++) {
          lua_rawgeti(L, -1, i);
          lua_rawseti(L, base + 1, ++merges);
        }
        lua_pop(L, 1);
      } else {
        lua_rawseti(L, base + 1, ++merges);
      }
      continue;
    }
    push_node(ld, depth + 1);           /* key */
    if (lua_type(L, -1) == LUA_TTABLE) fail(ld, "a mapping key must be a scalar", kmark);
    if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) { lua_pop(L, 1); lua_pushliteral(L, "null"); }
    next_event(ld);
    push_node(ld, depth + 1);           /* value */
    lua_rawset(L, base);
  }
  for (i = 1; i <= merges; i++) {
    lua_rawgeti(L, base + 1, i);
    merge_into(ld, base, mark);
  }
  lua_pop(L, 1);
  lb__json_push_object_mt(L);
  lua_setmetatable(L, base);
}

static void push_sequence(loader *ld, int depth) {
  lua_State *L = ld->L;
  lua_Integer i = 0;
  lua_newtable(L);
  remember_anchor(ld, ld->ev.data.sequence_start.anchor);
  for (;;) {
    next_event(ld);
    if (ld->ev.type == YAML_SEQUENCE_END_EVENT) break;
    push_node(ld, depth + 1);
    lua_rawseti(L, -2, ++i);
  }
  lb__json_push_array_mt(L);
  lua_setmetatable(L, -2);
}

static void push_scalar(loader *ld) {
  lua_State *L = ld->L;
  const char *s = (const char *)ld->ev.data.scalar.value;
  size_t n = ld->ev.data.scalar.length;
  const char *tag = (const char *)ld->ev.data.scalar.tag;
  int done = 0;
  if (tag && strcmp(tag, "!") != 0) {
    done = push_tagged(ld, tag, s, ld->ev.start_mark);
  } else if (!tag && ld->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n < 128 && strlen(s) == n) {
    done = push_implicit(L, s);
  }
  if (!done) lua_pushlstring(L, s, n);
  remember_anchor(ld, ld->ev.data.scalar.anchor);
}

static void push_node(loader *ld, int depth) {
  lua_State *L = ld->L;
  if (depth > MAX_DEPTH) fail(ld, "nesting too deep", ld->ev.start_mark);
  luaL_checkstack(L, 8, "YAML nesting");
  switch (ld->ev.type) {
    case YAML_SCALAR_EVENT: push_scalar(ld); break;
    case YAML_SEQUENCE_START_EVENT: push_sequence(ld, depth); break;
    case YAML_MAPPING_START_EVENT: push_mapping(ld, depth); break;
    case YAML_ALIAS_EVENT: {
      const char *a = (const char *)ld->ev.data.alias.anchor;
      if (lua_getfield(L, ld->anchors, a) == LUA_TNIL) {
        lua_pushfstring(L, "unknown alias '*%s'", a);
        fail(ld, lua_tostring(L, -1), ld->ev.start_mark);
      }
      break;
    }
    default:
      fail(ld, "unexpected YAML event", ld->ev.start_mark);
  }
}

/* The loader lives in a userdata so an error (longjmp) still frees libyaml's
** memory when the userdata is collected. */
static void loader_gc_now(loader *ld) {
  if (ld->have_ev) yaml_event_delete(&ld->ev);
  ld->have_ev = 0;
  if (ld->live) yaml_parser_delete(&ld->parser);
  ld->live = 0;
}

static int loader_gc(lua_State *L) {
  loader_gc_now((loader *)lua_touserdata(L, 1));
  return 0;
}

static int y_load(lua_State *L) {
  size_t n;
  const char *text = luaL_checklstring(L, 1, &n);
  const char *name = luaL_optstring(L, 2, "<yaml>");
  loader *ld;
  lua_settop(L, 2);
  ld = (loader *)lua_newuserdatauv(L, sizeof *ld, 0);    /* 3 */
  memset(ld, 0, sizeof *ld);
  if (!yaml_parser_initialize(&ld->parser)) return luaL_error(L, "%s: out of memory", name);
  ld->live = 1;
  if (luaL_newmetatable(L, "airbyte.libyaml.loader")) {
    lua_pushcfunction(L, loader_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, 3);
  ld->L = L;
  ld->name = name;
  yaml_parser_set_input_string(&ld->parser, (const unsigned char *)text, n);
  lua_newtable(L);                                         /* 4: anchors */
  ld->anchors = 4;
  next_event(ld);                                          /* STREAM-START */
  next_event(ld);
  if (ld->ev.type == YAML_STREAM_END_EVENT) {
    lua_pushlightuserdata(L, NULL);                        /* an empty document */
    return 1;
  }
  if (ld->ev.type != YAML_DOCUMENT_START_EVENT) fail(ld, "expected a YAML document", ld->ev.start_mark);
  next_event(ld);
  push_node(ld, 0);                                        /* 5 */
  next_event(ld);                                          /* DOCUMENT-END */
  next_event(ld);
  if (ld->ev.type != YAML_STREAM_END_EVENT)
    fail(ld, "more than one YAML document (a manifest is one document)", ld->ev.start_mark);
  loader_gc_now(ld);
  lua_replace(L, 3);                                       /* the value over the loader */
  lua_settop(L, 3);
  return 1;
}

int luaopen_airbyte_libyaml(lua_State *L) {
  static const luaL_Reg funcs[] = { { "load", y_load }, { NULL, NULL } };
  luaL_newlib(L, funcs);
  return 1;
}
