/*
** lua_mask.c - the runtime's secret masker (mask.h) in `airbyte.core`:
**
**   core.mask_add(value)     -- true when registered (false: shorter than
**                            -- core.MASK_MIN bytes, or already known)
**   core.mask(text)          -- text with every spelling of a secret as "****";
**                            -- anything but a string comes back unchanged
**   core.mask_values()       -- the registered values, longest first
**   core.mask_clear()        -- forgets them all (tests)
**
** The masker belongs to the runtime, so the process layer (connector logs
** in proc.c) and Lua (airbyte.secrets, errors, warnings) mask alike.
*/
#include "lb_internal.h"
#include "mask.h"

static int l_mask_add(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int rc = lb__secret_add(lb__rt(L), s, len);
  if (rc < 0) return luaL_error(L, "not enough memory");
  lua_pushboolean(L, rc == 1);
  return 1;
}

static int l_mask(lua_State *L) {
  const lb_masker *m = lb__rt(L)->masker;
  size_t len, at = 0, i, end = 0;
  const char *s;
  luaL_Buffer b;
  if (lua_type(L, 1) != LUA_TSTRING || lb__masker_count(m) == 0) {
    lua_settop(L, 1);
    return 1;
  }
  s = lua_tolstring(L, 1, &len);
  i = lb__mask_next(m, s, len, 0, &end);
  if (i == len) {
    lua_settop(L, 1);
    return 1;
  }
  luaL_buffinit(L, &b);
  while (i < len) {
    luaL_addlstring(&b, s + at, i - at);
    luaL_addstring(&b, LB_MASK_TEXT);
    at = end;
    i = lb__mask_next(m, s, len, at, &end);
  }
  luaL_addlstring(&b, s + at, len - at);
  luaL_pushresult(&b);
  return 1;
}

static int l_mask_values(lua_State *L) {
  const lb_masker *m = lb__rt(L)->masker;
  int i, n = lb__masker_count(m);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    size_t len;
    const char *v = lb__masker_value(m, i, &len);
    lua_pushlstring(L, v, len);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_mask_clear(lua_State *L) {
  lb__masker_clear(lb__rt(L)->masker);
  return 0;
}

static const luaL_Reg funcs[] = {
  {"mask_add", l_mask_add},
  {"mask", l_mask},
  {"mask_values", l_mask_values},
  {"mask_clear", l_mask_clear},
  {NULL, NULL}
};

void lb__open_mask(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
  lua_pushinteger(L, LB_MASK_MIN);
  lua_setfield(L, -2, "MASK_MIN");
}
