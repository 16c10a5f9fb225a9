/*
** lua_sql.c - the SQL surface of an airbyte.sqlite db (any backend):
** db:exec, db:query, db:rows, their statement userdata, parameter binding
** and rows as Lua tables, over cache.h's lb_cache_query. It defines the db
** userdata's type and check (lua_bindings.h); lua_cache.c makes the db
** and gives it the cache's methods.
**
**   db:exec(sql)                            -- one or more statements
**   local rows, cols = db:query(sql [, params [, max_records]])
**   for row in db:rows(sql [, params]) do ... end   -- 5th value: column kinds
**
** Rows are tables keyed by column name: integers, floats, strings (text,
** JSON text, big-integer digits), booleans (a backend with a boolean
** type), NULL -> no key. Parameters: an array (positional
** `?`, `?NNN`; `n` field honoured for trailing nils) or a table of names for
** `:name`, `@name`, `$name`; values nil / json.null -> NULL, booleans -> 1/0,
** integers, floats, strings, BigInt -> its digits as TEXT. SQL errors raise
** with the database's message and the statement cut to 200 bytes.
*/
#include <string.h>
#include "lua_bindings.h"
#include "lb_internal.h"
#include "cache.h"
#include "record.h"

#define STMT_MT "airbyte.CacheQuery"

typedef lb__cache_db db_ud;

lb__cache_db *lb__sql_check_db(lua_State *L, int idx) {
  db_ud *d = luaL_checkudata(L, idx, LB_CACHE_DB_MT);
  if (d->c == NULL) luaL_error(L, "attempt to use a closed cache");
  return d;
}

static db_ud *checkdb(lua_State *L, int idx) {
  return lb__sql_check_db(L, idx);
}

/* A query owned by a userdata, so that an error raised while rows are
** being built (memory) never leaks it. User values: 1 the db, 2 the array
** of column names. */
typedef struct stmt_ud {
  lb_cache_query *q;
  db_ud *db;
  int ncols;
} stmt_ud;


static void stmt_free(stmt_ud *u) {
  if (u->q) {
    lb_cache_query_close(u->q);
    u->q = NULL;
  }
}

static int stmt_gc(lua_State *L) {
  stmt_ud *u = luaL_checkudata(L, 1, STMT_MT);
  if (u->db->c == NULL) u->q = NULL;   /* closed with its cache */
  stmt_free(u);
  return 0;
}

static int stmt_tostring(lua_State *L) {
  stmt_ud *u = luaL_checkudata(L, 1, STMT_MT);
  lua_pushstring(L, u->q ? STMT_MT : STMT_MT " (finalized)");
  return 1;
}

/* One Lua value as a parameter: nil / json.null -> NULL, booleans, integers,
** floats, strings, BigInt -> its digits as text. */
static void param_of(lua_State *L, int vidx, lb_cache_value *v, int i) {
  memset(v, 0, sizeof *v);
  switch (lua_type(L, vidx)) {
    case LUA_TNIL:
      v->type = LB_VAL_NULL;
      return;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, vidx) == NULL) { v->type = LB_VAL_NULL; return; }   /* json.null */
      break;
    case LUA_TBOOLEAN:
      v->type = LB_VAL_BOOL;
      v->i = lua_toboolean(L, vidx);
      return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, vidx)) { v->type = LB_VAL_INT; v->i = (long long)lua_tointeger(L, vidx); }
      else { v->type = LB_VAL_FLOAT; v->d = (double)lua_tonumber(L, vidx); }
      return;
    case LUA_TSTRING:
      v->type = LB_VAL_TEXT;
      v->s = lua_tolstring(L, vidx, &v->n);
      return;
    case LUA_TUSERDATA:
      if ((v->s = lb__bigint_digits(L, vidx, &v->n)) != NULL) { v->type = LB_VAL_TEXT; return; }
      break;
    default:
      break;
  }
  luaL_error(L, "cannot bind a %s as SQL parameter %d", luaL_typename(L, vidx), i);
}

/* The parameters at pidx (absent/nil = none given): the array part
** (honouring an `n` field for trailing nils) as positional values, string
** keys as named ones. Their strings live in the table; the array in a
** userdata pushed on the stack. */
static lb_cache_value *params_of(lua_State *L, int pidx, int *count) {
  lb_cache_value *v;
  lua_Integer npos, i;
  int n = 0, k = 0;
  *count = 0;
  if (lua_isnoneornil(L, pidx)) { lua_pushnil(L); return NULL; }
  luaL_checktype(L, pidx, LUA_TTABLE);
  npos = (lua_Integer)lua_rawlen(L, pidx);
  lua_getfield(L, pidx, "n");
  if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > npos) npos = lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (npos > 32766) luaL_error(L, "too many SQL parameters");
  lua_pushnil(L);
  while (lua_next(L, pidx)) {
    if (lua_type(L, -2) == LUA_TSTRING) n++;
    lua_pop(L, 1);
  }
  v = lua_newuserdatauv(L, sizeof *v * (size_t)(npos + n + 1), 0);
  for (i = 1; i <= npos; i++) {
    lua_geti(L, pidx, i);
    param_of(L, lua_gettop(L), &v[k++], (int)i);
    lua_pop(L, 1);                    /* a string stays alive in the table */
  }
  lua_pushnil(L);
  while (lua_next(L, pidx)) {
    if (lua_type(L, -2) == LUA_TSTRING) {
      param_of(L, lua_gettop(L), &v[k], k + 1);
      v[k++].name = lua_tostring(L, -2);
    }
    lua_pop(L, 1);
  }
  *count = k;
  return v;
}

/* Opens sql with the parameters at pidx into a new statement userdata
** (pushed). */
static stmt_ud *prepare_box(lua_State *L, int dbidx, const char *sql, size_t len, int pidx) {
  db_ud *d = checkdb(L, dbidx);
  stmt_ud *u;
  lb_cache_value *params;
  int nparams, i;
  params = params_of(L, pidx, &nparams);           /* stack: ... params_ud */
  u = lua_newuserdatauv(L, sizeof *u, 2);
  u->q = NULL;
  u->db = d;
  u->ncols = 0;
  luaL_setmetatable(L, STMT_MT);
  lua_pushvalue(L, dbidx);
  lua_setiuservalue(L, -2, 1);
  lua_remove(L, -2);                               /* the parameters are bound */
  if ((u->q = lb_cache_query_open(d->c, sql, len, params, nparams)) == NULL)
    luaL_error(L, "%s", lb_cache_errmsg(d->c));
  u->ncols = lb_cache_query_ncols(u->q);
  lua_createtable(L, u->ncols, 0);
  for (i = 0; i < u->ncols; i++) {
    lua_pushstring(L, lb_cache_query_col_name(u->q, i));
    lua_rawseti(L, -2, i + 1);
  }
  lua_setiuservalue(L, -2, 2);
  return u;
}

/* Pushes row as a table keyed by the names at index names: integers,
** floats, strings (text, JSON text, big-integer digits), booleans; NULL
** leaves no key. */
static void push_row(lua_State *L, stmt_ud *u, const lb_cache_value *row, int names) {
  int i;
  lua_createtable(L, 0, u->ncols);
  for (i = 0; i < u->ncols; i++) {
    const lb_cache_value *v = &row[i];
    switch (v->type) {
      case LB_VAL_INT: lua_pushinteger(L, (lua_Integer)v->i); break;
      case LB_VAL_FLOAT: lua_pushnumber(L, (lua_Number)v->d); break;
      case LB_VAL_BOOL: lua_pushboolean(L, (int)v->i); break;
      case LB_VAL_TEXT: case LB_VAL_JSON: case LB_VAL_BIGINT: lua_pushlstring(L, v->s, v->n); break;
      default: continue;              /* NULL: no key */
    }
    lua_rawgeti(L, names, i + 1);
    lua_insert(L, -2);
    lua_rawset(L, -3);
  }
}

/* The next row of u (NULL when done: the query is closed), raises on
** errors (closing first). */
static const lb_cache_value *step_box(lua_State *L, stmt_ud *u) {
  const lb_cache_value *row;
  int rc;
  if (u->db->c == NULL) {
    u->q = NULL;                      /* closed with its cache */
    luaL_error(L, "attempt to use a closed cache");
    return NULL;
  }
  rc = lb_cache_query_next(u->q, &row);
  if (rc > 0) return row;
  stmt_free(u);
  if (rc < 0) luaL_error(L, "%s", lb_cache_errmsg(u->db->c));
  return NULL;
}

static int db_exec(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  if (lb_cache_exec(d->c, sql, len) < 0) luaL_error(L, "%s", lb_cache_errmsg(d->c));
  return 0;
}

static int db_query(lua_State *L) {
  const char *sql;
  size_t len;
  lua_Integer max, n = 0;
  stmt_ud *u;
  const lb_cache_value *row;
  int names;
  checkdb(L, 1);
  sql = luaL_checklstring(L, 2, &len);
  max = luaL_optinteger(L, 4, -1);
  lua_settop(L, 3);
  u = prepare_box(L, 1, sql, len, 3); /* stack: db sql params box */
  lua_getiuservalue(L, 4, 2);         /* stack: ... box names */
  names = lua_gettop(L);
  lua_newtable(L);                    /* stack: ... box names rows */
  while ((max < 0 || n < max) && (row = step_box(L, u)) != NULL) {
    push_row(L, u, row, names);
    lua_rawseti(L, -2, ++n);
  }
  stmt_free(u);                       /* stopped by max_records */
  lua_pushvalue(L, names);            /* stack: ... rows names */
  return 2;
}

static int rows_iter(lua_State *L) {
  stmt_ud *u = luaL_checkudata(L, lua_upvalueindex(1), STMT_MT);
  const lb_cache_value *row;
  if (u->q == NULL) return 0;
  if ((row = step_box(L, u)) == NULL) return 0;
  lua_getiuservalue(L, lua_upvalueindex(1), 2);
  push_row(L, u, row, lua_gettop(L));
  return 1;
}

static const char *const kind_names[] = { "string", "integer", "number", "boolean", "json" };

/* for row in db:rows(sql, params) do ... end: the fourth value closes the
** statement when the loop is left early; the fifth maps the result columns
** that come from table columns to their kind ("string", "integer",
** "number", "boolean", "json"), for callers that type the values. */
static int db_rows(lua_State *L) {
  const char *sql;
  size_t len;
  stmt_ud *u;
  int i;
  checkdb(L, 1);
  sql = luaL_checklstring(L, 2, &len);
  lua_settop(L, 3);
  u = prepare_box(L, 1, sql, len, 3); /* stack: db sql params box */
  lua_pushvalue(L, 4);
  lua_pushcclosure(L, rows_iter, 1);  /* stack: ... box iter */
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushvalue(L, 4);                /* stack: ... box iter nil nil box */
  lua_createtable(L, 0, u->ncols);
  lua_getiuservalue(L, 4, 2);
  for (i = 0; i < u->ncols; i++) {
    int k = lb_cache_query_col_kind(u->q, i);
    if (k < 0 || k >= (int)(sizeof kind_names / sizeof kind_names[0])) continue;
    lua_rawgeti(L, -1, i + 1);
    lua_pushstring(L, kind_names[k]);
    lua_rawset(L, -4);
  }
  lua_pop(L, 1);                      /* stack: ... box iter nil nil box kinds */
  return 5;
}

const char *lb__sql_kind_name(int kind) {
  if (kind < 0 || kind >= (int)(sizeof kind_names / sizeof kind_names[0])) return NULL;
  return kind_names[kind];
}

const luaL_Reg lb__sql_methods[] = {
  {"exec", db_exec},
  {"query", db_query},
  {"rows", db_rows},
  {NULL, NULL}
};

static const luaL_Reg stmt_meta[] = {
  {"__gc", stmt_gc},
  {"__close", stmt_gc},
  {"__tostring", stmt_tostring},
  {NULL, NULL}
};

void lb__sql_open(lua_State *L) {
  luaL_newmetatable(L, STMT_MT);
  luaL_setfuncs(L, stmt_meta, 0);
  lua_pop(L, 1);
}
