/*
** modules.c - what a runtime's Lua state can require: the C modules and the
** embedded Lua modules in package.preload, and before them, with a Lua
** directory (LUABYTE_LUA_DIR), a searcher of its files.
*/
#include <stdio.h>
#include "lb_internal.h"

typedef struct lb_embedded {
  const char *name;
  const char *file;
  const unsigned char *src;
  size_t len;
  const unsigned char *code;              /* compiled by lb_embed, debug info kept */
  size_t code_len;
} lb_embedded;
extern const lb_embedded lb_embedded_modules[];   /* generated: lb_embedded.c */

static int load_embedded(lua_State *L) {
  const lb_embedded *m = lua_touserdata(L, lua_upvalueindex(1));
  char chunkname[256];
  snprintf(chunkname, sizeof chunkname, "@%s", m->file);
  /* the bytecode, or the source for a Lua whose binary format differs */
  if (luaL_loadbufferx(L, (const char *)m->code, m->code_len, chunkname, "b") != LUA_OK) {
    lua_pop(L, 1);
    if (luaL_loadbufferx(L, (const char *)m->src, m->len, chunkname, "t") != LUA_OK)
      return lua_error(L);
  }
  lua_pushstring(L, m->name);
  lua_call(L, 1, 1);
  return 1;
}

/* Searcher placed before package.preload when a Lua directory is set, so a
** developer's edits under lua/ win over the embedded copies. */
static int dir_searcher(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  const char *dir = lua_tostring(L, lua_upvalueindex(1));
  luaL_Buffer b;
  const char *path;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchpath");
  lua_pushstring(L, name);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, dir); luaL_addstring(&b, "/?.lua;");
  luaL_addstring(&b, dir); luaL_addstring(&b, "/?/init.lua");
  luaL_pushresult(&b);
  lua_call(L, 2, 2);
  path = lua_tostring(L, -2);
  if (path == NULL) {
    lua_pushfstring(L, "no file in LUABYTE_LUA_DIR for '%s'", name);
    return 1;
  }
  if (luaL_loadfilex(L, path, "t") != LUA_OK)
    return luaL_error(L, "error loading module '%s' from '%s':\n\t%s", name, path,
                      lua_tostring(L, -1));
  lua_pushstring(L, path);
  return 2;
}

/* Pushes a searcher of dir's files (a function of a module name). */
void lb__push_dir_searcher(lua_State *L, const char *dir) {
  lua_pushstring(L, dir);
  lua_pushcclosure(L, dir_searcher, 1);
}

static const luaL_Reg c_modules[] = {
  {"airbyte.core", luaopen_airbyte_core},
  {"airbyte.process", luaopen_airbyte_process},
  {"airbyte.json", luaopen_airbyte_json},
  {"airbyte.sqlite", luaopen_airbyte_sqlite},
  {"airbyte.pump", luaopen_airbyte_pump},
  {"airbyte.jsonschema", luaopen_airbyte_jsonschema},
  {"airbyte.sandbox", luaopen_airbyte_sandbox},
  {"airbyte.libyaml", luaopen_airbyte_libyaml},
  {"airbyte.http", luaopen_airbyte_http},
  {"airbyte.pg", luaopen_airbyte_pg},
  {"cjson", luaopen_cjson},
  {NULL, NULL}
};

void lb__modules_install(lua_State *L, const char *lua_dir) {
  const lb_embedded *m;
  const luaL_Reg *r;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (r = c_modules; r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
  for (m = lb_embedded_modules; m->name; m++) {
    lua_pushlightuserdata(L, (void *)m);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 1);                          /* stack: package */
  if (lua_dir) {
    lua_getfield(L, -1, "searchers");
    lb__push_dir_searcher(L, lua_dir);
    /* insert at position 1 */
    {
      lua_Integer i, n = (lua_Integer)luaL_len(L, -2);
      for (i = n; i >= 1; i--) {
        lua_rawgeti(L, -2, i);
        lua_rawseti(L, -3, i + 1);
      }
      lua_rawseti(L, -2, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}
