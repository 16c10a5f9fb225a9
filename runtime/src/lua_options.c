/*
** lua_options.c - options tables of the Lua functions written in C.
**
** A misspelt key must fail, not be ignored (issue 8, item 12). The rule and
** its message live once, in airbyte.options (Lua): here the keys are only
** compared with the function's list, and Lua is called to report an
** unknown one. A known key costs a few strcmp, nothing is allocated.
*/
#include <string.h>
#include "lb_internal.h"

/* Raises PyAirbyteInputError when the table at idx (if it is one) has a key
** that is not in allowed (NULL-terminated); `where` names the function. */
void lb__check_options(lua_State *L, int idx, const char *where, const char *const *allowed) {
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) return;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    const char *const *a;
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      for (a = allowed; *a; a++)
        if (strcmp(*a, k) == 0) break;
      if (*a) continue;
    }
    lua_pop(L, 1);
    /* an unknown key: airbyte.options.check(opts, allowed_set, where) raises */
    if (lua_getglobal(L, "require") == LUA_TFUNCTION) {
      lua_pushliteral(L, "airbyte.options");
      lua_call(L, 1, 1);
      lua_getfield(L, -1, "check");
      lua_pushvalue(L, idx);
      lua_newtable(L);
      for (a = allowed; *a; a++) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, *a);
      }
      lua_pushstring(L, where);
      lua_call(L, 3, 0);
    }
    luaL_error(L, "%s got an unknown option", where);   /* no require: a bare state */
    return;
  }
}
