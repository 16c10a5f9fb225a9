/*
** rtstate.c - which runtime a Lua state belongs to: a light userdata in
** the state's registry, read by every C function of the core. A leaf, so
** the scheduler and the loop can ask without depending on runtime.c.
*/
#include "lb_internal.h"

static const char rt_key = 0;   /* registry key: its address */

lb_runtime *lb__rt(lua_State *L) {
  lb_runtime *rt;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &rt_key);
  rt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return rt;
}

void lb__rt_set(lua_State *L, lb_runtime *rt) {
  if (rt) lua_pushlightuserdata(L, rt);
  else lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &rt_key);
}
