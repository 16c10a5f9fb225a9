/*
** hostcall.c - host code run in protected mode: a host function (a log
** sink, an end callback) called inside a protected call on the runtime's
** Lua state, so a Lua error it raises comes back as a status instead of
** reaching Lua's panic, which aborts. A leaf: it uses nothing else of the core.
*/
#include "lb_internal.h"

typedef struct host_call {
  lb_host_fn fn;
  void *ud;
} host_call;

static int host_call_p(lua_State *L) {
  host_call *c = lua_touserdata(L, 1);
  c->fn(c->ud);
  return 0;
}

int lb__host_pcall(lb_runtime *rt, lb_host_fn fn, void *ud) {
  lua_State *L = rt->L;
  host_call c;
  if (L == NULL || !lua_checkstack(L, 2)) {   /* nothing to raise through */
    fn(ud);
    return LUA_OK;
  }
  c.fn = fn;
  c.ud = ud;
  lua_pushcfunction(L, host_call_p);
  lua_pushlightuserdata(L, &c);
  return lua_pcall(L, 1, 0, 0);
}
