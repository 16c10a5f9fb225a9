/*
** log.c - the runtime's messages: the host's log sink (lb_options.log) or
** stderr, and, with a sink, a Lua `io.stderr` that hands it every line the
** Lua side prints there (progress, "Completed ..." summaries, connector
** failures, warnings), so a host's stderr stays its own; and the runtime's
** error message (lb__set_error), also that of host code that raised
** (lb__host_call). A leaf but for hostcall.c, which runs the sink protected.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lb_internal.h"

#define STREAM_MT "airbyte.LogStream"

typedef struct sink_call {
  lb_runtime *rt;
  int level;
  const char *msg;
  size_t len;
} sink_call;

static void call_sink(void *ud) {
  sink_call *c = ud;
  c->rt->log(c->rt->log_ud, c->level, c->msg, c->len);
}

static void emit(lb_runtime *rt, int level, const char *msg, size_t len) {
  sink_call c;
  if (rt->log == NULL) {
    fprintf(stderr, "luabyte: %.*s\n", (int)len, msg);
    return;
  }
  c.rt = rt;
  c.level = level;
  c.msg = msg;
  c.len = len;
  if (lb__host_pcall(rt, call_sink, &c) != LUA_OK) {   /* the sink is broken: stderr is left */
    const char *e = lua_tostring(rt->L, -1);
    fprintf(stderr, "luabyte: the host's log sink raised a Lua error (%s) on: %.*s\n",
            e ? e : "not a string", (int)len, msg);
    lua_pop(rt->L, 1);
    rt->panicked = 1;
  }
}

/* Host code run protected (hostcall.c) whose Lua error becomes the
** runtime's error: in lb_last_error and the log, rt->panicked set. */
int lb__host_call(lb_runtime *rt, lb_host_fn fn, void *ud, const char *what) {
  const char *e;
  if (lb__host_pcall(rt, fn, ud) == LUA_OK) return 0;
  e = lua_tostring(rt->L, -1);
  lb__set_error(rt, "Lua error in the host's %s: %s", what, e ? e : "(not a string)");
  lua_pop(rt->L, 1);
  rt->panicked = 1;
  lb__log(rt, LB_LOG_ERROR, "%s", rt->errmsg);
  return LB_ELUA;
}

void lb__log(lb_runtime *rt, int level, const char *fmt, ...) {
  char buf[2048];
  int n;
  va_list ap;
  va_start(ap, fmt);
  n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
  emit(rt, level, buf, (size_t)n);
}

void lb__set_error(lb_runtime *rt, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rt->errmsg, sizeof rt->errmsg, fmt, ap);
  va_end(ap);
}

/* The level of a line as the Lua side words them. */
static int line_level(const char *s, size_t len) {
  if ((len >= 5 && (memcmp(s, "ERROR", 5) == 0 || memcmp(s, "error", 5) == 0)) ||
      (len >= 8 && memcmp(s, "luabyte:", 8) == 0))
    return LB_LOG_ERROR;
  if (len >= 7 && (memcmp(s, "warning", 7) == 0 || memcmp(s, "Warning", 7) == 0))
    return LB_LOG_WARN;
  return LB_LOG_INFO;
}

typedef struct stream {
  lb_runtime *rt;
  char *part;        /* a line not ended yet */
  size_t len, cap;
} stream;

static int stream_append(stream *st, const char *s, size_t n) {
  if (st->len + n > st->cap) {
    size_t cap = st->cap ? st->cap : 256;
    char *p;
    while (cap < st->len + n) cap *= 2;
    if ((p = realloc(st->part, cap)) == NULL) return -1;
    st->part = p;
    st->cap = cap;
  }
  memcpy(st->part + st->len, s, n);
  st->len += n;
  return 0;
}

/* Hands the pending line over; of a terminal's redrawn line (\r) only the
** last drawing counts. */
static void stream_emit(stream *st) {
  size_t i = st->len, start = 0;
  while (i > 0) {
    if (st->part[i - 1] == '\r') { start = i; break; }
    i--;
  }
  if (st->len > start) emit(st->rt, line_level(st->part + start, st->len - start),
                            st->part + start, st->len - start);
  st->len = 0;
}

static int stream_add(stream *st, const char *s, size_t len) {
  const char *end = s + len;
  while (s < end) {
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
    if (stream_append(st, s, n) != 0) return -1;
    if (nl == NULL) break;
    stream_emit(st);
    s = nl + 1;
  }
  return 0;
}

/* file:write(...) as io.stderr's, for strings and numbers */
static int l_stream_write(lua_State *L) {
  stream *st = luaL_checkudata(L, 1, STREAM_MT);
  int i, n = lua_gettop(L);
  for (i = 2; i <= n; i++) {
    size_t len;
    const char *s = luaL_checklstring(L, i, &len);
    if (stream_add(st, s, len) != 0) return luaL_error(L, "not enough memory");
  }
  lua_settop(L, 1);
  return 1;
}

static int l_stream_flush(lua_State *L) {
  luaL_checkudata(L, 1, STREAM_MT);
  lua_settop(L, 1);
  return 1;
}

static int l_stream_noop(lua_State *L) {
  lua_pushboolean(L, 1);
  return 1;
}

static int l_stream_gc(lua_State *L) {
  stream *st = luaL_checkudata(L, 1, STREAM_MT);
  if (st->len) stream_emit(st);
  free(st->part);
  st->part = NULL;
  st->cap = st->len = 0;
  return 0;
}

static int l_stream_tostring(lua_State *L) {
  lua_pushliteral(L, "file (luabyte log sink)");
  return 1;
}

/* With a host log sink: io.stderr becomes the sink's stream. */
void lb__log_install(lua_State *L, lb_runtime *rt) {
  static const luaL_Reg methods[] = {
    {"write", l_stream_write}, {"flush", l_stream_flush},
    {"setvbuf", l_stream_noop}, {"close", l_stream_noop}, {NULL, NULL}
  };
  stream *st;
  if (rt->log == NULL) return;
  st = lua_newuserdatauv(L, sizeof *st, 0);
  memset(st, 0, sizeof *st);
  st->rt = rt;
  if (luaL_newmetatable(L, STREAM_MT)) {
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_stream_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_stream_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_setmetatable(L, -2);
  lua_getglobal(L, "io");
  if (lua_istable(L, -1)) {
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "stderr");
  }
  lua_pop(L, 2);
}
