/*
** lua_bindings.h - what one Lua binding (lua_*.c) gives another: the C
** object behind a userdata, and the push of a protocol message. The core
** headers (cache.h, proc.h, jsonschema.h) declare no Lua functions; the
** bindings and the pump that drives them from Lua meet here.
*/
#ifndef LB_LUA_BINDINGS_H
#define LB_LUA_BINDINGS_H

#include <stddef.h>
#include <lua.h>
#include "cache.h"
#include "jsonschema.h"
#include "proc.h"

struct lb_msg;

/* lua_cache.c: the cache and stream behind "airbyte.CacheDB" and
** "airbyte.CacheStream" (every backend). Raise if the value is not one, or
** is closed. */
lb_cache *lb__cache_check(lua_State *L, int idx);
lb_cache_stream *lb__cache_stream_check(lua_State *L, int idx);

/* lua_sql.c: the "airbyte.CacheDB" userdata itself (c is NULL once
** closed): lua_cache.c makes it and gives it the cache's methods, lua_sql.c
** its SQL ones. lb__sql_check_db raises if the value is not one, or is
** closed. lb__sql_methods are its SQL methods (exec, query, rows), which
** lua_cache.c registers with its own; lb__sql_open registers the statement
** userdata; lb__sql_kind_name
** names a column kind (lb_cache_query_col_kind), NULL for none. */
#define LB_CACHE_DB_MT "airbyte.CacheDB"
typedef struct lb__cache_db {
  lb_cache *c;
} lb__cache_db;
lb__cache_db *lb__sql_check_db(lua_State *L, int idx);
extern const luaL_Reg lb__sql_methods[];
void lb__sql_open(lua_State *L);
const char *lb__sql_kind_name(int kind);

/* lua_jsonschema.c: the schema of an airbyte.jsonschema Schema; raises
** when the value is not one or is closed. */
const lb_schema *lb__schema_check(lua_State *L, int idx);

/* lua_proc.c: the child process behind an airbyte.process userdata. */
lb_proc *lb__proc_check(lua_State *L, int idx);

/* lua_msg.c: pushes the airbyte.Message that p:messages() yields. */
void lb__push_message(lua_State *L, const struct lb_msg *m, const char *line, size_t len);
void lb__msg_open(lua_State *L);

#endif
