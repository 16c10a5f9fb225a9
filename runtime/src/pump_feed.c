/*
** pump_feed.c - pump.from_cache: a cache stream's rows as RECORD lines into
** a destination's stdin, in large writes, yielding while its pipe is full.
*/
#include <stdlib.h>
#include <string.h>
#include "pump.h"

/* --- from_cache: cache rows as RECORD lines ------------------------------- */

/* feed state: a cache cursor over a stream's table and the write batch */
typedef struct feed {
  lb_cache_cursor *cur;
  lb_proc *dst;
  lb_cache_buf out;              /* RECORD lines not yet written */
  long long records, bytes;
  char last_raw_id[64];
  uint64_t next_progress, progress_ns;
} feed;

enum { F_DB = 1, F_DST, F_OPTS, F_STATE, F_STREAM, F_ONPROG, F_TOP = F_ONPROG };

static int feed_gc(lua_State *L) {
  feed *f = lua_touserdata(L, 1);
  lb_cache_cursor_close(f->cur);
  f->cur = NULL;
  free(f->out.p);
  f->out.p = NULL;
  return 0;
}

/* id[0..n) sorts after the NUL-terminated last (ids of one cache have one
** length; a longer one with the same start sorts after). */
static int raw_id_above(const char *id, size_t n, const char *last) {
  size_t ln = strlen(last);
  int cmp = memcmp(id, last, n < ln ? n : ln);
  return cmp > 0 || (cmp == 0 && n > ln);
}

static int feed_k(lua_State *L, int status, lua_KContext ctx);

static int feed_loop(lua_State *L) {
  feed *f = lua_touserdata(L, F_STATE);
  lb_runtime *rt = lb__rt(L);
  int rc;
  unsigned n = 0;
  lua_settop(L, F_TOP);
  for (;;) {
    if (lb__proc_write_blocked(f->dst)) {
      if (lb__proc_write_error(f->dst)) break;
      lb__proc_set_waiter(f->dst, LB_PROC_WAIT_WRITE, lb__current(L, "pump.from_cache"));
      return lb__wait(L, lb__pump_cleanup_write, f->dst, 0, feed_k);
    }
    if (f->out.len >= WBUF_SIZE) {
      ssize_t w = lb__proc_write(f->dst, f->out.p, f->out.len);
      if (w < 0) break;
      f->out.len = 0;
      continue;
    }
    {
      size_t before = f->out.len, idlen;
      const char *id;
      rc = lb_cache_cursor_next(f->cur, &f->out, &id, &idlen);
      if (rc > 0) {
        f->bytes += (long long)(f->out.len - before);
        f->records++;
        /* UUIDv7 text sorts by time: the highest id is the watermark */
        if (id && idlen < sizeof f->last_raw_id && raw_id_above(id, idlen, f->last_raw_id)) {
          memcpy(f->last_raw_id, id, idlen);
          f->last_raw_id[idlen] = '\0';
        }
      }
    }
    if (rc > 0) {
      if (++n % (rt->deadline ? BUDGET_CHECK : YIELD_CHECK) == 0) {
        uint64_t now;
        if (f->progress_ns && !lua_isnil(L, F_ONPROG) && (now = uv_hrtime()) >= f->next_progress) {
          f->next_progress = now + f->progress_ns;
          lua_pushvalue(L, F_ONPROG);
          lua_createtable(L, 0, 2);
          lua_pushinteger(L, f->records); lua_setfield(L, -2, "records");
          lua_pushinteger(L, f->bytes); lua_setfield(L, -2, "bytes");
          lb__pump_call_lua(L, 1, 0, "on_progress failed");
        }
        if (lb__budget_spent(rt) && rt->current && lua_isyieldable(L)) {
          lb__wake(rt->current);
          return lb__wait(L, NULL, NULL, 0, feed_k);
        }
      }
      continue;
    }
    if (rc < 0) return luaL_error(L, "%s", lb_cache_errmsg(lb__cache_check(L, F_DB)));
    if (f->out.len && lb__proc_write(f->dst, f->out.p, f->out.len) < 0) break;
    f->out.len = 0;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, f->records); lua_setfield(L, -2, "records");
    lua_pushinteger(L, f->bytes); lua_setfield(L, -2, "bytes");
    if (f->last_raw_id[0]) { lua_pushstring(L, f->last_raw_id); lua_setfield(L, -2, "last_raw_id"); }
    return 1;
  }
  lb__pump_raise_write_error(L, f->dst, lb__proc_write_error(f->dst));
  return 0;
}

static int feed_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return feed_loop(L);
}

/* from_cache(db, dst, {stream =, table =, after = raw_id, on_progress =})
** -> {records =, bytes =, last_raw_id =}: the rows of a cache table (those
** whose _airbyte_raw_id is above `after`, or all) as RECORD lines, in table
** order; last_raw_id is the highest id sent. */
static const char *const from_cache_options[] = {
  "stream", "table", "after", "on_progress", "progress_ms", NULL };

int lb__pump_from_cache(lua_State *L) {
  lb_cache *c = lb__cache_check(L, 1);
  lb_proc *dst = lb__proc_check(L, 2);
  lb_cache_cursor_spec spec;
  feed *f;
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lb__check_options(L, 3, "pump.from_cache", from_cache_options);
  memset(&spec, 0, sizeof spec);
  lua_getfield(L, 3, "stream");
  spec.stream = luaL_checklstring(L, -1, &spec.stream_len);
  lua_getfield(L, 3, "table");
  spec.table = luaL_checkstring(L, -1);
  lua_getfield(L, 3, "after");
  if (!lua_isnil(L, -1)) spec.after_raw_id = luaL_checkstring(L, -1);
  if (!lb__proc_has_stdin(dst)) return luaL_error(L, "from_cache: the destination was started without stdin");
  f = lua_newuserdatauv(L, sizeof *f, 0);             /* stack: db, dst, opts, s, t, a, feed */
  memset(f, 0, sizeof *f);
  f->dst = dst;
  if (luaL_newmetatable(L, "airbyte.Feed")) {
    lua_pushcfunction(L, feed_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if ((f->cur = lb_cache_cursor_open(c, &spec)) == NULL)
    return luaL_error(L, "%s", lb_cache_errmsg(c));
  lua_getfield(L, 3, "on_progress");
  lua_getfield(L, 3, "progress_ms");
  f->progress_ns = (uint64_t)(luaL_optnumber(L, -1, 500) * 1e6);
  f->next_progress = uv_hrtime() + f->progress_ns;
  lua_pop(L, 1);                      /* stack: db, dst, opts, s, t, a, feed, onprog */
  lua_replace(L, 6);                  /* onprog -> 6 */
  lua_replace(L, 4);                  /* feed -> 4 (the stream name stays alive in opts) */
  lua_settop(L, F_TOP);
  return feed_loop(L);
}
