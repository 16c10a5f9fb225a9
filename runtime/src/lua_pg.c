/*
** lua_pg.c - `airbyte.pg`: PostgreSQL connections from Lua, for the
** built-in destination-postgres (a connector process of its own, so the
** calls block: they are not meant for a host's loop thread).
**
**   pg.connect{ host=, port=, database=, username=, password=, dsn=,
**               application_name=, sslmode=, connect_timeout= }   -> conn
**   conn:exec(sql)               simple protocol (several statements allowed)
**                                -> rows affected by the last one
**   conn:query(sql [, params])   one statement, $1.. parameters (params.n
**                                counts trailing nils) -> rows, columns
**                                (rows: { column = text }, NULL absent)
**   conn:copy(sql, data)         COPY ... FROM STDIN; data is a string or
**                                an array of strings -> rows copied
**   conn:close()                 (also on collection)
**   pg.copy_row(list [, n])      list[1..n] as one line of COPY's text format:
**                                fields escaped and joined by tabs, nil and
**                                json.null as \N, NUL bytes dropped (a text
**                                column cannot hold one)
**   pg.name(s)                   s as PostgreSQL keeps an identifier (pg.h)
**   pg.quote_ident(s)            "s" with embedded quotes doubled
**
** Connecting, naming and error text are pg.c's: every error is a Lua error
** saying what the server said, with the password masked.
*/
#include <stdlib.h>
#include <string.h>

#include "lb_internal.h"
#include "pg.h"

#define CONN_MT "airbyte.pg.connection"

typedef struct conn {
  PGconn *pg;
  char *password;     /* kept only to mask it in error messages */
} conn;

static conn *check_conn(lua_State *L) {
  conn *c = luaL_checkudata(L, 1, CONN_MT);
  if (c->pg == NULL) luaL_error(L, "PostgreSQL connection is closed");
  return c;
}

static void params_of(const conn *c, lb_pg_params *p) {
  memset(p, 0, sizeof *p);
  p->password = c->password;
}

/* Raises msg as it is: the server's words are the message, without the
** position of the Lua line that called (luaL_error would prepend it). */
static int raise_plain(lua_State *L, const char *msg) {
  lua_pushstring(L, msg);
  return lua_error(L);
}

/* Raises "PostgreSQL: <server's words> (in: <start of sql>)". */
static int raise_result(lua_State *L, conn *c, PGresult *res, const char *sql) {
  lb_pg_params p;
  char err[1400], what[120], msg[1600];
  params_of(c, &p);
  snprintf(what, sizeof what, "PostgreSQL%s", PQstatus(c->pg) == CONNECTION_BAD ? " (connection lost)" : "");
  if (res && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY))
    lb__pg_result_error(&p, res, what, err, sizeof err);
  else
    lb__pg_error(&p, c->pg, what, NULL, err, sizeof err);
  PQclear(res);
  snprintf(msg, sizeof msg, "%s (in: %.80s%s)", err, sql, strlen(sql) > 80 ? "..." : "");
  return raise_plain(L, msg);
}

static const char *opt_field(lua_State *L, const char *key) {
  const char *s;
  lua_getfield(L, 1, key);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
  if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
    luaL_error(L, "pg.connect: %s must be a string", key);
  s = lua_tostring(L, -1);   /* stays on the stack until connect returns */
  return s;
}

static int l_connect(lua_State *L) {
  lb_pg_params p;
  char err[1200];
  conn *c;
  luaL_checktype(L, 1, LUA_TTABLE);
  memset(&p, 0, sizeof p);
  p.host = opt_field(L, "host");
  p.port = opt_field(L, "port");
  p.database = opt_field(L, "database");
  p.username = opt_field(L, "username");
  p.password = opt_field(L, "password");
  p.dsn = opt_field(L, "dsn");
  p.application_name = opt_field(L, "application_name");
  p.sslmode = opt_field(L, "sslmode");
  lua_getfield(L, 1, "connect_timeout");
  p.connect_timeout_s = (int)luaL_optinteger(L, -1, 0);
  lua_pop(L, 1);
  c = lua_newuserdatauv(L, sizeof *c, 0);
  c->pg = NULL;
  c->password = NULL;
  luaL_setmetatable(L, CONN_MT);
  if (p.password && (c->password = strdup(p.password)) == NULL) return luaL_error(L, "not enough memory");
  c->pg = lb__pg_connect(&p, err, sizeof err);
  if (c->pg == NULL) return raise_plain(L, err);
  return 1;
}

static int l_exec(lua_State *L) {
  conn *c = check_conn(L);
  const char *sql = luaL_checkstring(L, 2);
  PGresult *res = PQexec(c->pg, sql);
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return raise_result(L, c, res, sql);
  lua_pushinteger(L, atoll(PQcmdTuples(res)));
  PQclear(res);
  return 1;
}

/* Parameter i of the table at idx as text (NULL for nil / json null). */
static const char *param_text(lua_State *L, int idx, int i) {
  int t = lua_geti(L, idx, i);
  if (t == LUA_TNIL || t == LUA_TLIGHTUSERDATA) return NULL;   /* cjson.null is a lightuserdata */
  if (t == LUA_TBOOLEAN) {
    int b = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_pushstring(L, b ? "true" : "false");
    return lua_tostring(L, -1);
  }
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    luaL_error(L, "query parameter %d is a %s (strings, numbers, booleans or nil)", i, luaL_typename(L, -1));
  return lua_tostring(L, -1);
}

static int l_query(lua_State *L) {
  conn *c = check_conn(L);
  const char *sql = luaL_checkstring(L, 2);
  const char **values = NULL;
  int n = 0, i, rows, cols, r;
  PGresult *res;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "n");
    n = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : (int)luaL_len(L, 3);
    lua_pop(L, 1);
    luaL_checkstack(L, n + 4, "too many query parameters");
    values = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n > 0 ? n : 1), 0);
    for (i = 0; i < n; i++) values[i] = param_text(L, 3, i + 1);   /* texts stay on the stack */
  }
  res = PQexecParams(c->pg, sql, n, NULL, values, NULL, NULL, 0);
  if (PQresultStatus(res) == PGRES_COMMAND_OK) {
    PQclear(res);
    lua_newtable(L);
    lua_newtable(L);
    return 2;
  }
  if (PQresultStatus(res) != PGRES_TUPLES_OK) return raise_result(L, c, res, sql);
  rows = PQntuples(res);
  cols = PQnfields(res);
  lua_createtable(L, rows, 0);
  for (r = 0; r < rows; r++) {
    lua_createtable(L, 0, cols);
    for (i = 0; i < cols; i++) {
      if (PQgetisnull(res, r, i)) continue;
      lua_pushlstring(L, PQgetvalue(res, r, i), (size_t)PQgetlength(res, r, i));
      lua_setfield(L, -2, PQfname(res, i));
    }
    lua_rawseti(L, -2, r + 1);
  }
  lua_createtable(L, cols, 0);
  for (i = 0; i < cols; i++) {
    lua_pushstring(L, PQfname(res, i));
    lua_rawseti(L, -2, i + 1);
  }
  PQclear(res);
  return 2;
}

static int put(conn *c, const char *s, size_t len) {
  /* PQputCopyData takes an int length: feed big strings in pieces */
  while (len > 0) {
    int n = len > (1u << 30) ? (1 << 30) : (int)len;
    if (PQputCopyData(c->pg, s, n) != 1) return -1;
    s += n;
    len -= (size_t)n;
  }
  return 0;
}

static int l_copy(lua_State *L) {
  conn *c = check_conn(L);
  const char *sql = luaL_checkstring(L, 2);
  PGresult *res;
  int failed = 0;
  size_t len;
  if (lua_type(L, 3) != LUA_TSTRING) luaL_checktype(L, 3, LUA_TTABLE);
  res = PQexec(c->pg, sql);
  if (PQresultStatus(res) != PGRES_COPY_IN) return raise_result(L, c, res, sql);
  PQclear(res);
  if (lua_type(L, 3) == LUA_TSTRING) {
    const char *s = lua_tolstring(L, 3, &len);
    failed = put(c, s, len);
  } else {
    lua_Integer i, n = luaL_len(L, 3);
    for (i = 1; i <= n && !failed; i++) {
      const char *s;
      lua_geti(L, 3, i);
      s = lua_tolstring(L, -1, &len);
      if (s == NULL) {
        PQputCopyEnd(c->pg, "bad COPY data");
        while ((res = PQgetResult(c->pg)) != NULL) PQclear(res);
        return luaL_error(L, "COPY data item %d is not a string", (int)i);
      }
      failed = put(c, s, len);
      lua_pop(L, 1);
    }
  }
  if (failed || PQputCopyEnd(c->pg, NULL) != 1) {
    res = PQgetResult(c->pg);
    return raise_result(L, c, res, sql);
  }
  /* the result of the COPY, then NULL; an error (a bad row) comes here */
  res = PQgetResult(c->pg);
  if (PQresultStatus(res) != PGRES_COMMAND_OK) {
    PGresult *more;
    while ((more = PQgetResult(c->pg)) != NULL) PQclear(more);
    return raise_result(L, c, res, sql);
  }
  lua_pushinteger(L, atoll(PQcmdTuples(res)));
  PQclear(res);
  while ((res = PQgetResult(c->pg)) != NULL) PQclear(res);
  return 1;
}

static int l_close(lua_State *L) {
  conn *c = luaL_checkudata(L, 1, CONN_MT);
  if (c->pg) PQfinish(c->pg);
  c->pg = NULL;
  if (c->password) {
    memset(c->password, 0, strlen(c->password));
    free(c->password);
  }
  c->password = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  conn *c = luaL_checkudata(L, 1, CONN_MT);
  if (c->pg == NULL) lua_pushliteral(L, "pg.connection (closed)");
  else lua_pushfstring(L, "pg.connection (%s:%s/%s)", PQhost(c->pg), PQport(c->pg), PQdb(c->pg));
  return 1;
}

/* Escapes s[0..len) into b for COPY's text format. Plain runs are added
** whole: most fields have nothing to escape. */
static void add_copy_field(luaL_Buffer *b, const char *s, size_t len) {
  size_t i, run = 0;
  for (i = 0; i < len; i++) {
    const char *esc;
    switch (s[i]) {
      case '\\': esc = "\\\\"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      case '\0': esc = ""; break;
      default: continue;
    }
    luaL_addlstring(b, s + run, i - run);
    luaL_addstring(b, esc);
    run = i + 1;
  }
  luaL_addlstring(b, s + run, len - run);
}

static int l_copy_row(lua_State *L) {
  lua_Integer i, n;
  luaL_Buffer b;
  luaL_checktype(L, 1, LUA_TTABLE);
  n = luaL_opt(L, luaL_checkinteger, 2, luaL_len(L, 1));
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    const char *s = NULL;
    size_t len = 0;
    int t = lua_geti(L, 1, i);
    if (t == LUA_TSTRING) s = lua_tolstring(L, -1, &len);
    else if (t != LUA_TNIL && !(t == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL))
      return luaL_error(L, "COPY field %d is a %s (strings, nil or json.null)", (int)i, luaL_typename(L, -1));
    /* the string stays alive in the list: pop before the buffer grows */
    lua_pop(L, 1);
    if (i > 1) luaL_addchar(&b, '\t');
    if (s) add_copy_field(&b, s, len);
    else luaL_addstring(&b, "\\N");
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  return 1;
}

static int l_name(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char out[LB_PG_NAMEDATALEN + 1];
  size_t n = lb__pg_name(s, len, out);
  lua_pushlstring(L, out, n);
  return 1;
}

static int l_quote_ident(lua_State *L) {
  size_t len, need;
  const char *s = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  char *out;
  need = lb__pg_quote_ident(s, len, NULL, 0);
  out = luaL_buffinitsize(L, &b, need + 1);
  lb__pg_quote_ident(s, len, out, need + 1);
  luaL_pushresultsize(&b, need);
  return 1;
}

static const luaL_Reg conn_methods[] = {
  {"exec", l_exec},
  {"query", l_query},
  {"copy", l_copy},
  {"close", l_close},
  {NULL, NULL}
};

static const luaL_Reg functions[] = {
  {"connect", l_connect},
  {"name", l_name},
  {"quote_ident", l_quote_ident},
  {"copy_row", l_copy_row},
  {NULL, NULL}
};

int luaopen_airbyte_pg(lua_State *L) {
  if (luaL_newmetatable(L, CONN_MT)) {
    luaL_newlib(L, conn_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  luaL_newlib(L, functions);
  return 1;
}
