/*
** lua_cache.c - the `airbyte.sqlite` module: a thin binding of the SQLite
** cache (cache.h) plus ad-hoc SQL.
**
**   local sqlite = require "airbyte.sqlite"
**   local db = sqlite.open(path)            -- nil, msg on failure (environment)
**   db:exec(sql)                            -- one or more statements
**   local rows, cols = db:query(sql [, params [, max_records]])
**   for row in db:rows(sql [, params]) do ... end
**   db:begin(); db:commit(); db:rollback(); db:in_transaction()
**   local s = db:stream_open{ source = "source-faker", stream = "users", namespace = nil,
**                             schema = json_text_or_table,
**                             strategy = "append"|"merge"|"replace"|"auto",
**                             primary_key = {"id"}, cursor_field = {...} }
**   s:write(data_json_or_table [, emitted_at_ms [, meta_json]])
**   s:finish(); s:abort(); s:close(); s:rows_written(); s:table_name()
**   db:put_state(source, stream_or_"", state_json_or_table)
**   db:get_states(source) -> { json, ... }, { key name, ... }, { namespace or "", ... }
**   -- destination: a name, or its identity { name =, config_hash = }
**   db:put_destination_state(destination, source, stream_or_"", state_json)
**   db:get_destination_states(destination [, source]) -> same three arrays
**     (a bare name: every identity of that name)
**   db:get_delivered(destination, source, namespace_or_nil, stream) -> raw_id | nil
**   db:put_delivered(destination, source, namespace_or_nil, stream, raw_id)
**   db:move_destination(name, from_config_hash, to_config_hash)
**   sqlite.state_key(state_json_or_table) -> "STREAM"|"GLOBAL"|"LEGACY", name, namespace|nil
**   db:table_name(stream [, namespace]) -> the stream's table (cache.h "Stream
**       names"; namespace nil = the one it was cached under); raises on a clash
**   db:set_table_prefix(prefix); db:table_prefix(); db:path(); db:close()
**   db:set_async(bool)   -- writer/checkpointer threads (default on, cache.h)
**   sqlite.normalize(name) -> PyAirbyte's normalized name (raises if none)
**   sqlite.mkdir_p(path) -> true | nil, msg, errno
**   sqlite.ulid() -> a new ULID (26 characters, time-ordered)
**
** Rows are tables keyed by column name: INTEGER -> integer, REAL -> float,
** TEXT and BLOB -> string, NULL -> no key. Parameters: an array (positional
** `?`, `?NNN`; `n` field honoured for trailing nils) or a table of names for
** `:name`, `@name`, `$name`; values nil / json.null -> NULL, booleans -> 1/0,
** integers, floats, strings, BigInt -> its digits as TEXT.
**
** Errors: misuse and SQL errors raise (SQL errors with SQLite's message and
** the statement cut to 200 bytes); only open and mkdir_p, which depend on the
** file system, return nil, msg.
*/
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
# include <sys/random.h>
#endif
#include <sqlite3.h>
#include "lb_internal.h"
#include "cache.h"
#include "jskim.h"
#include "record.h"
#include "protocol.h"

#define DB_MT "airbyte.SQLiteDB"
#define STREAM_MT "airbyte.SQLiteStream"
#define STMT_MT "airbyte.SQLiteStatement"
#define SQL_CUT 200

typedef struct db_ud {
  lb_cache *c;              /* NULL once closed */
} db_ud;                    /* user value 1: the path */

typedef struct stream_ud {
  lb_cache_stream *s;       /* NULL once closed */
  db_ud *db;                /* kept alive by user value 1 */
} stream_ud;

/* A statement owned by a userdata, so that an error raised while rows are
** being built (memory) never leaks it. User values: 1 the db, 2 the array
** of column names. */
typedef struct stmt_ud {
  sqlite3_stmt *st;
  db_ud *db;
  int ncols;
} stmt_ud;

/* --- helpers --------------------------------------------------------------------- */

static db_ud *checkdb(lua_State *L, int idx) {
  db_ud *d = luaL_checkudata(L, idx, DB_MT);
  if (d->c == NULL) luaL_error(L, "attempt to use a closed SQLite cache");
  return d;
}

lb_cache *lb__cache_check(lua_State *L, int idx) {
  return checkdb(L, idx)->c;
}

static stream_ud *checkstream(lua_State *L, int idx) {
  stream_ud *u = luaL_checkudata(L, idx, STREAM_MT);
  if (u->s == NULL || u->db->c == NULL) luaL_error(L, "attempt to use a closed cache stream");
  return u;
}

lb_cache_stream *lb__cache_stream_check(lua_State *L, int idx) {
  return checkstream(L, idx)->s;
}

/* Raises SQLite's (or the cache's) message, with the SQL cut to SQL_CUT. */
static int sql_error(lua_State *L, const char *msg, const char *sql) {
  size_t n;
  if (sql == NULL) return luaL_error(L, "%s", msg);
  n = strlen(sql);
  return luaL_error(L, "%s (in: %s%s)", msg,
                    lua_pushlstring(L, sql, n > SQL_CUT ? SQL_CUT : n), n > SQL_CUT ? "..." : "");
}

/* The JSON text of argument idx: a string as is, anything else encoded. */
static const char *json_arg(lua_State *L, int idx, size_t *len) {
  char err[160];
  if (lua_type(L, idx) == LUA_TSTRING) return lua_tolstring(L, idx, len);
  luaL_checkany(L, idx);
  lua_pushvalue(L, idx);
  if (lb__json_encode_push(L, lua_gettop(L), err, sizeof err) != 0) {
    luaL_argerror(L, idx, err);
    return NULL;
  }
  lua_replace(L, idx);
  lua_pop(L, 1);
  return lua_tolstring(L, idx, len);
}

static void check_rc(lua_State *L, lb_cache *c, int rc) {
  if (rc < 0) luaL_error(L, "%s", lb_cache_errmsg(c));
}

/* --- statements -------------------------------------------------------------------- */

static int stmt_gc(lua_State *L) {
  stmt_ud *u = luaL_checkudata(L, 1, STMT_MT);
  if (u->st) {
    if (u->db->c) lb_cache_sync(u->db->c);   /* the writer thread may hold the connection */
    sqlite3_finalize(u->st);
    u->st = NULL;
  }
  return 0;
}

static int stmt_tostring(lua_State *L) {
  stmt_ud *u = luaL_checkudata(L, 1, STMT_MT);
  if (u->st) lua_pushfstring(L, STMT_MT " (%s)", sqlite3_sql(u->st));
  else lua_pushliteral(L, STMT_MT " (finalized)");
  return 1;
}

static int bind_one(lua_State *L, sqlite3_stmt *st, int i, int vidx) {
  switch (lua_type(L, vidx)) {
    case LUA_TNIL:
      return sqlite3_bind_null(st, i);
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, vidx) == NULL) return sqlite3_bind_null(st, i);   /* json.null */
      break;
    case LUA_TBOOLEAN:
      return sqlite3_bind_int(st, i, lua_toboolean(L, vidx));
    case LUA_TNUMBER:
      if (lua_isinteger(L, vidx)) return sqlite3_bind_int64(st, i, (sqlite3_int64)lua_tointeger(L, vidx));
      return sqlite3_bind_double(st, i, lua_tonumber(L, vidx));
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, vidx, &n);
      return sqlite3_bind_text64(st, i, s, n, SQLITE_TRANSIENT, SQLITE_UTF8);
    }
    case LUA_TUSERDATA: {
      size_t n;
      const char *digits = lb__bigint_digits(L, vidx, &n);
      if (digits) return sqlite3_bind_text64(st, i, digits, n, SQLITE_TRANSIENT, SQLITE_UTF8);
      break;
    }
    default:
      break;
  }
  return luaL_error(L, "cannot bind a %s as SQL parameter %d", luaL_typename(L, vidx), i);
}

/* Binds the table at pidx (absent/nil = no parameters). */
static void bind_params(lua_State *L, sqlite3_stmt *st, int pidx) {
  int i, n = sqlite3_bind_parameter_count(st);
  if (lua_isnoneornil(L, pidx)) {
    if (n > 0) luaL_error(L, "the statement has %d parameters and none were given", n);
    return;
  }
  luaL_checktype(L, pidx, LUA_TTABLE);
  for (i = 1; i <= n; i++) {
    const char *name = sqlite3_bind_parameter_name(st, i);
    int rc;
    if (name && name[0] != '?') lua_getfield(L, pidx, name + 1);   /* :name @name $name */
    else lua_geti(L, pidx, i);
    rc = bind_one(L, st, i, lua_gettop(L));
    lua_pop(L, 1);
    if (rc != SQLITE_OK) luaL_error(L, "binding parameter %d: %s", i, sqlite3_errstr(rc));
  }
}

/* Prepares the first statement of sql into a new box pushed on the stack
** (with its column names as user value 2). Raises on SQL errors, on an
** empty sql and, when `single`, on a second statement after the first. */
static stmt_ud *prepare_box(lua_State *L, int dbidx, const char *sql, int single) {
  db_ud *d = checkdb(L, dbidx);
  sqlite3 *db = lb_cache_db(d->c);
  stmt_ud *u = lua_newuserdatauv(L, sizeof *u, 2);
  const char *tail = NULL;
  int i;
  u->st = NULL;
  u->db = d;
  u->ncols = 0;
  luaL_setmetatable(L, STMT_MT);
  lua_pushvalue(L, dbidx);
  lua_setiuservalue(L, -2, 1);
  if (sqlite3_prepare_v2(db, sql, -1, &u->st, &tail) != SQLITE_OK)
    sql_error(L, sqlite3_errmsg(db), sql);
  if (u->st == NULL) luaL_error(L, "no SQL statement in \"%s\"", sql);
  if (single && tail && *tail) {
    sqlite3_stmt *more = NULL;
    int rc = sqlite3_prepare_v2(db, tail, -1, &more, NULL);
    sqlite3_finalize(more);
    if (rc != SQLITE_OK || more != NULL)
      sql_error(L, "only one SQL statement is allowed here (use exec for several)", sql);
  }
  u->ncols = sqlite3_column_count(u->st);
  lua_createtable(L, u->ncols, 0);
  for (i = 0; i < u->ncols; i++) {
    const char *name = sqlite3_column_name(u->st, i);
    lua_pushstring(L, name ? name : "?");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setiuservalue(L, -2, 2);
  return u;
}

/* Pushes the current row of u as a table; names is the index of its
** column-name array. */
static void push_row(lua_State *L, stmt_ud *u, int names) {
  int i;
  lua_createtable(L, 0, u->ncols);
  for (i = 0; i < u->ncols; i++) {
    switch (sqlite3_column_type(u->st, i)) {
      case SQLITE_INTEGER:
        lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(u->st, i));
        break;
      case SQLITE_FLOAT:
        lua_pushnumber(L, (lua_Number)sqlite3_column_double(u->st, i));
        break;
      case SQLITE_TEXT:
        lua_pushlstring(L, (const char *)sqlite3_column_text(u->st, i),
                        (size_t)sqlite3_column_bytes(u->st, i));
        break;
      case SQLITE_BLOB: {
        const void *b = sqlite3_column_blob(u->st, i);
        lua_pushlstring(L, b ? b : "", (size_t)sqlite3_column_bytes(u->st, i));
        break;
      }
      default:
        continue;                     /* NULL: no key */
    }
    lua_rawgeti(L, names, i + 1);
    lua_insert(L, -2);
    lua_rawset(L, -3);
  }
}

/* Steps u: 1 with a row ready, 0 when done (the statement is finalized),
** raises on errors (finalizing first). */
static int step_box(lua_State *L, stmt_ud *u) {
  int rc;
  if (u->db->c == NULL) {
    sqlite3_finalize(u->st);
    u->st = NULL;
    return luaL_error(L, "attempt to use a closed SQLite cache");
  }
  /* records written since the last row are queued for the writer thread,
  ** which must be done with the connection before we use it */
  lb_cache_sync(u->db->c);
  rc = sqlite3_step(u->st);
  if (rc == SQLITE_ROW) return 1;
  if (rc == SQLITE_DONE) {
    sqlite3_finalize(u->st);
    u->st = NULL;
    return 0;
  }
  {
    sqlite3 *db = sqlite3_db_handle(u->st);
    lua_pushstring(L, sqlite3_errmsg(db));
    lua_pushstring(L, sqlite3_sql(u->st));
    sqlite3_finalize(u->st);
    u->st = NULL;
    return sql_error(L, lua_tostring(L, -2), lua_tostring(L, -1));
  }
}

/* --- db ----------------------------------------------------------------------------- */

static int l_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  char err[512];
  db_ud *d = lua_newuserdatauv(L, sizeof *d, 1);
  int rc;
  d->c = NULL;
  luaL_setmetatable(L, DB_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  rc = lb_cache_sqlite_open(path, &d->c, err, sizeof err);
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    lua_pushinteger(L, rc);
    return 3;
  }
  return 1;
}

static int db_close(lua_State *L) {
  db_ud *d = luaL_checkudata(L, 1, DB_MT);
  if (d->c) {
    lb_cache *c = d->c;
    d->c = NULL;                      /* streams and statements see it closed */
    lb_cache_close(c);
  }
  return 0;
}

static int db_tostring(lua_State *L) {
  db_ud *d = luaL_checkudata(L, 1, DB_MT);
  lua_getiuservalue(L, 1, 1);
  lua_pushfstring(L, DB_MT " (%s%s)", lua_tostring(L, -1), d->c ? "" : ", closed");
  return 1;
}

static int db_path(lua_State *L) {
  luaL_checkudata(L, 1, DB_MT);
  lua_getiuservalue(L, 1, 1);
  return 1;
}

static int db_exec(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *sql = luaL_checkstring(L, 2);
  char *msg = NULL;
  if (sqlite3_exec(lb_cache_db(d->c), sql, NULL, NULL, &msg) != SQLITE_OK) {
    lua_pushstring(L, msg ? msg : sqlite3_errmsg(lb_cache_db(d->c)));
    sqlite3_free(msg);
    return sql_error(L, lua_tostring(L, -1), sql);
  }
  return 0;
}

static int db_query(lua_State *L) {
  const char *sql;
  lua_Integer max, n = 0;
  stmt_ud *u;
  int box, names;
  checkdb(L, 1);
  sql = luaL_checkstring(L, 2);
  max = luaL_optinteger(L, 4, -1);
  lua_settop(L, 3);
  u = prepare_box(L, 1, sql, 1);      /* stack: db sql params box */
  box = lua_gettop(L);
  bind_params(L, u->st, 3);
  lua_getiuservalue(L, box, 2);       /* stack: ... box names */
  names = lua_gettop(L);
  lua_newtable(L);                    /* stack: ... box names rows */
  while ((max < 0 || n < max) && step_box(L, u)) {
    push_row(L, u, names);
    lua_rawseti(L, -2, ++n);
  }
  if (u->st) {                        /* stopped by max_records */
    sqlite3_finalize(u->st);
    u->st = NULL;
  }
  lua_pushvalue(L, names);            /* stack: ... rows names */
  return 2;
}

static int rows_iter(lua_State *L) {
  stmt_ud *u = luaL_checkudata(L, lua_upvalueindex(1), STMT_MT);
  if (u->st == NULL) return 0;
  if (!step_box(L, u)) return 0;
  lua_getiuservalue(L, lua_upvalueindex(1), 2);
  push_row(L, u, lua_gettop(L));
  return 1;
}

/* for row in db:rows(sql, params) do ... end: the fourth value closes the
** statement when the loop is left early. */
static int db_rows(lua_State *L) {
  const char *sql;
  stmt_ud *u;
  checkdb(L, 1);
  sql = luaL_checkstring(L, 2);
  lua_settop(L, 3);
  u = prepare_box(L, 1, sql, 1);
  bind_params(L, u->st, 3);
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, rows_iter, 1);  /* stack: ... box iter */
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushvalue(L, -4);               /* stack: ... box iter nil nil box */
  return 4;
}

/* Inside a task, begin, commit and rollback never hold the loop thread
** while the writer thread works or waits for the write lock (another
** connection, in this process or another, holds it): the task waits until
** the writer is idle, yielding whenever the step's budget is spent (with
** no budget, every millisecond), then runs its step, then waits the same
** way for its outcome. Outside a task they wait as lb_cache_begin does. */
#define WAIT_SLICE_NS 1000000u

uint64_t lb__cache_wait_deadline(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  if (rt->current == NULL || !lua_isyieldable(L)) return 0;
  return rt->deadline ? rt->deadline : uv_hrtime() + WAIT_SLICE_NS;
}

/* The retry: with a budget, the task runs again at the next step (the
** step ends at its deadline); without one, after a 1 ms timer, so that
** the loop polls meanwhile (a task that is ready at once would keep the
** loop from reading the pipes the other tasks wait for). */
int lb__cache_retry(lua_State *L, lua_KContext ctx, lua_KFunction k) {
  lb_runtime *rt = lb__rt(L);
  if (rt->deadline) {
    lb__wake(rt->current);
    return lb__wait(L, NULL, NULL, ctx, k);
  }
  return lb__sleep(L, 1, ctx, k);
}

enum { TX_BEGIN, TX_COMMIT, TX_ROLLBACK, TX_SETTLE };

/* ctx: the step (TX_*) * 2 + 1 once it has been handed over */
static int txn_k(lua_State *L, int status, lua_KContext ctx) {
  db_ud *d = checkdb(L, 1);
  (void)status;
  for (;;) {
    uint64_t deadline = lb__cache_wait_deadline(L);
    int step = (int)(ctx >> 1);
    if (!lb_cache_wait_idle(d->c, deadline)) return lb__cache_retry(L, ctx, txn_k);
    if (ctx & 1) break;                   /* handed over and done */
    switch (step) {
      case TX_BEGIN:
        check_rc(L, d->c, lb_cache_begin_queued(d->c));
        break;
      case TX_COMMIT:
        check_rc(L, d->c, lb_cache_sync(d->c));   /* rows were lost: roll back instead */
        check_rc(L, d->c, lb_cache_commit_queued(d->c, NULL, NULL, 0, 0));
        break;
      case TX_ROLLBACK:
        check_rc(L, d->c, lb_cache_rollback(d->c));   /* quick, and never waits for a lock */
        return 0;
      default:
        break;
    }
    ctx |= 1;
  }
  check_rc(L, d->c, lb_cache_sync(d->c));
  return 0;
}

static int txn_step(lua_State *L, int step) {
  checkdb(L, 1);
  lua_settop(L, 1);
  return txn_k(L, LUA_OK, (lua_KContext)step << 1);
}

static int db_begin(lua_State *L) { return txn_step(L, TX_BEGIN); }
static int db_commit(lua_State *L) { return txn_step(L, TX_COMMIT); }
static int db_rollback(lua_State *L) { return txn_step(L, TX_ROLLBACK); }
/* db:settle(): waits (as above) for everything queued; raises its error */
static int db_settle(lua_State *L) { return txn_step(L, TX_SETTLE); }

/* db:commit_state(source, state_json [, begin_again]): stores the state
** and commits, then begins again when asked, all queued behind the rows
** written so far (lb_cache_commit_queued): returns at once, so it may be
** called where a task cannot wait (the pump's on_message). */
static int db_commit_state(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *source = luaL_checkstring(L, 2);
  size_t len;
  const char *state = luaL_checklstring(L, 3, &len);
  check_rc(L, d->c, lb_cache_commit_queued(d->c, source, state, len, lua_toboolean(L, 4)));
  return 0;
}

static void stream_id_args(lua_State *L, int idx, lb_cache_stream_id *id) {
  id->name = luaL_checklstring(L, idx, &id->name_len);
  id->ns = luaL_optlstring(L, idx + 1, NULL, &id->ns_len);
}

/* db:try_lock_stream(source, name [, namespace]) -> true, or false and
** the message naming the stream and its holder (the caller retries after
** yielding: lb_cache_lock_stream with no wait). */
static int db_try_lock_stream(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *source = luaL_checkstring(L, 2);
  lb_cache_stream_id id;
  char err[600];
  int rc;
  stream_id_args(L, 3, &id);
  rc = lb_cache_lock_stream(d->c, source, &id, 0, err, sizeof err);
  if (rc == LB_CACHE_EBUSY) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, err);
    return 2;
  }
  if (rc < 0) return luaL_error(L, "%s", err);
  lua_pushboolean(L, 1);
  return 1;
}

static int db_unlock_stream(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *source = luaL_checkstring(L, 2);
  lb_cache_stream_id id;
  stream_id_args(L, 3, &id);
  lb_cache_unlock_stream(d->c, source, &id);
  return 0;
}

static int db_in_transaction(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  lua_pushboolean(L, lb_cache_in_transaction(d->c));
  return 1;
}

/* db:set_async(false) keeps every insert on the calling thread (no writer
** or checkpointer thread); true (the default) turns them back on. Raises the
** error of a queued insert, if one failed. */
static int db_set_async(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  check_rc(L, d->c, lb_cache_set_async(d->c, lua_toboolean(L, 2)));
  return 0;
}

static int db_changes(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  lua_pushinteger(L, (lua_Integer)sqlite3_changes64(lb_cache_db(d->c)));
  return 1;
}

static int db_set_table_prefix(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  check_rc(L, d->c, lb_cache_set_table_prefix(d->c, luaL_optstring(L, 2, "")));
  return 0;
}

static int db_table_prefix(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  lua_pushstring(L, lb_cache_table_prefix(d->c));
  return 1;
}

/* --- streams -------------------------------------------------------------------------- */

#define MAX_PK 64

/* Reads opts.primary_key into pk (pointers into strings the table keeps
** alive). Elements are names or one-element paths ({"id"}), as Airbyte
** catalogs write them; longer paths (nested keys) are refused. */
static int read_pk(lua_State *L, int opts, const char **pk) {
  int n = 0, t;
  lua_Integer i, len;
  t = lua_getfield(L, opts, "primary_key");
  if (t == LUA_TNIL) { lua_pop(L, 1); pk[0] = NULL; return 0; }
  if (t == LUA_TSTRING) {
    pk[n++] = lua_tostring(L, -1);
    pk[n] = NULL;
    lua_setfield(L, opts, "primary_key");   /* keep it referenced */
    return n;
  }
  if (t != LUA_TTABLE) luaL_error(L, "stream_open: primary_key must be a string or an array");
  len = (lua_Integer)lua_rawlen(L, -1);
  if (len >= MAX_PK) luaL_error(L, "stream_open: too many primary key columns");
  for (i = 1; i <= len; i++) {
    int et = lua_rawgeti(L, -1, i);
    if (et == LUA_TTABLE) {
      if (lua_rawlen(L, -1) != 1)
        luaL_error(L, "stream_open: nested primary keys are not supported (primary_key[%d])", (int)i);
      lua_rawgeti(L, -1, 1);
      lua_remove(L, -2);
    }
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "stream_open: primary_key[%d] must be a string", (int)i);
    pk[n++] = lua_tostring(L, -1);      /* the array (on the stack) keeps it */
    lua_pop(L, 1);
  }
  pk[n] = NULL;
  lua_pop(L, 1);
  return n;
}

static int has_elements(lua_State *L, int opts, const char *field) {
  int t = lua_getfield(L, opts, field), yes;
  yes = (t == LUA_TSTRING && lua_rawlen(L, -1) > 0) || (t == LUA_TTABLE && lua_rawlen(L, -1) > 0);
  lua_pop(L, 1);
  return yes;
}

/* A namespace argument: nil or json.null = none. */
static const char *opt_namespace(lua_State *L, int idx, size_t *len) {
  *len = 0;
  if (lua_isnoneornil(L, idx) || (lua_islightuserdata(L, idx) && lua_touserdata(L, idx) == NULL))
    return NULL;
  return luaL_checklstring(L, idx, len);
}

static const char *const stream_open_options[] = {
  "source", "stream", "namespace", "schema", "strategy", "primary_key", "cursor_field", NULL };

static int db_stream_open(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *source, *schema = "{}", *strategy;
  const char *pk[MAX_PK + 1];
  size_t schema_len = 2;
  lb_cache_stream_id id;
  lb_write_strategy ws;
  stream_ud *u;
  char err[512];
  int npk;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lb__check_options(L, 2, "stream_open", stream_open_options);
  lua_getfield(L, 2, "source");         /* 3 */
  lua_getfield(L, 2, "stream");         /* 4 */
  lua_getfield(L, 2, "schema");         /* 5 */
  lua_getfield(L, 2, "strategy");       /* 6 */
  lua_getfield(L, 2, "namespace");      /* 7 */
  source = luaL_optstring(L, 3, "");
  if (lua_type(L, 4) != LUA_TSTRING) return luaL_error(L, "stream_open: 'stream' (a name) is required");
  id.name = lua_tolstring(L, 4, &id.name_len);
  id.ns = opt_namespace(L, 7, &id.ns_len);
  if (!lua_isnil(L, 5)) schema = json_arg(L, 5, &schema_len);
  strategy = luaL_optstring(L, 6, "append");
  npk = read_pk(L, 2, pk);
  if (strcmp(strategy, "append") == 0) ws = LB_WRITE_APPEND;
  else if (strcmp(strategy, "merge") == 0) ws = LB_WRITE_MERGE;
  else if (strcmp(strategy, "replace") == 0) ws = LB_WRITE_REPLACE;
  else if (strcmp(strategy, "auto") == 0)   /* PyAirbyte: PK -> merge, cursor -> append */
    ws = npk > 0 ? LB_WRITE_MERGE : has_elements(L, 2, "cursor_field") ? LB_WRITE_APPEND
                                                                       : LB_WRITE_REPLACE;
  else return luaL_error(L, "stream_open: unknown strategy '%s'", strategy);
  u = lua_newuserdatauv(L, sizeof *u, 1);
  u->s = NULL;
  u->db = d;
  luaL_setmetatable(L, STREAM_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  u->s = lb_cache_stream_open_id(d->c, source, &id, schema, schema_len, ws, npk ? pk : NULL,
                                 err, sizeof err);
  if (u->s == NULL) return luaL_error(L, "%s", err);
  return 1;
}

static int stream_write(lua_State *L) {
  stream_ud *u = checkstream(L, 1);
  size_t n, erroff = 0;
  const char *json = json_arg(L, 2, &n), *meta = NULL;
  long long ms;
  lb_jval v;
  int rc;
  if (lua_isnoneornil(L, 3)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  } else {
    ms = (long long)luaL_checkinteger(L, 3);
  }
  if (!lua_isnoneornil(L, 4)) {
    size_t mn;
    meta = json_arg(L, 4, &mn);
    if (lb_jskim_validate(meta, mn, NULL, &erroff) != 0)
      return luaL_argerror(L, 4, "meta is not valid JSON");
  }
  rc = lb_jskim_validate(json, n, &v, &erroff);
  if (rc != 0)
    return luaL_error(L, "record data is not valid JSON: %s at byte %d", lb_jskim_strerror(rc),
                      (int)erroff);
  if (v.type != LB_JOBJECT) return luaL_error(L, "record data must be a JSON object");
  check_rc(L, u->db->c, lb_cache_stream_write(u->s, &v, ms, meta));
  return 0;
}

static int stream_finish(lua_State *L) {
  stream_ud *u = checkstream(L, 1);
  char err[512];
  if (lb_cache_stream_finish(u->s, err, sizeof err) < 0) return luaL_error(L, "%s", err);
  return 0;
}

static int stream_abort(lua_State *L) {
  stream_ud *u = checkstream(L, 1);
  char err[512];
  if (lb_cache_stream_abort(u->s, err, sizeof err) < 0) return luaL_error(L, "%s", err);
  return 0;
}

static int stream_close(lua_State *L) {
  stream_ud *u = luaL_checkudata(L, 1, STREAM_MT);
  if (u->s && u->db->c) lb_cache_stream_close(u->s);   /* else the cache freed it */
  u->s = NULL;
  return 0;
}

static int stream_rows_written(lua_State *L) {
  stream_ud *u = checkstream(L, 1);
  lua_pushinteger(L, (lua_Integer)lb_cache_stream_rows_written(u->s));
  return 1;
}

static int stream_table_name(lua_State *L) {
  stream_ud *u = checkstream(L, 1);
  lua_pushstring(L, lb_cache_stream_table(u->s));
  return 1;
}

static int stream_namespace(lua_State *L) {
  stream_ud *u = checkstream(L, 1);
  size_t n;
  const char *ns = lb_cache_stream_namespace(u->s, &n);
  if (n == 0) lua_pushnil(L);
  else lua_pushlstring(L, ns, n);
  return 1;
}

/* db:uuid7() -> the next _airbyte_raw_id of this cache's generator: every
** row written after it has a greater id (a "rows of this read" mark). */
static int db_uuid7(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  char id[37];
  lb_cache_uuid7(d->c, id);
  lua_pushstring(L, id);
  return 1;
}

/* db:put_quarantine(source, stream, namespace|nil, record_json, reasons_json, emitted_at_ms) */
static int db_put_quarantine(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  size_t sl, nl = 0, rl, el;
  const char *source = luaL_checkstring(L, 2);
  const char *stream = luaL_checklstring(L, 3, &sl);
  const char *ns = luaL_optlstring(L, 4, NULL, &nl);
  const char *record = luaL_checklstring(L, 5, &rl);
  const char *reasons = luaL_checklstring(L, 6, &el);
  lua_Integer ms = luaL_optinteger(L, 7, 0);
  if (lb_cache_put_quarantine(d->c, source, stream, sl, ns, nl, record, rl, reasons, el, (long long)ms) != 0)
    return luaL_error(L, "%s", lb_cache_errmsg(d->c));
  return 0;
}

static int db_table_name(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  size_t n, nslen;
  const char *name = luaL_checklstring(L, 2, &n);
  const char *ns = opt_namespace(L, 3, &nslen);
  char buf[256];
  long m = lb_cache_table_name(d->c, name, n, ns, nslen, buf, sizeof buf);
  if (m < 0) return luaL_error(L, "%s", lb_cache_errmsg(d->c));
  if ((size_t)m < sizeof buf) {
    lua_pushlstring(L, buf, (size_t)m);
  } else {
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)m + 1);
    lb_cache_table_name(d->c, name, n, ns, nslen, p, (size_t)m + 1);
    luaL_pushresultsize(&b, (size_t)m);
  }
  return 1;
}

static int stream_tostring(lua_State *L) {
  stream_ud *u = luaL_checkudata(L, 1, STREAM_MT);
  if (u->s && u->db->c) lua_pushfstring(L, STREAM_MT " (%s)", lb_cache_stream_table(u->s));
  else lua_pushliteral(L, STREAM_MT " (closed)");
  return 1;
}

/* --- state ------------------------------------------------------------------------------ */

static int db_put_state(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *source = luaL_checkstring(L, 2), *stream = luaL_optstring(L, 3, "");
  size_t n;
  const char *json;
  luaL_checkany(L, 4);
  json = json_arg(L, 4, &n);
  check_rc(L, d->c, lb_cache_put_state(d->c, source, stream, json, n));
  return 0;
}

/* A destination argument: its name (any identity of that name where that
** makes sense, else config hash "") or { name =, config_hash = }. */
static const char *dest_arg(lua_State *L, int idx, const char **hash) {
  const char *name;
  *hash = NULL;
  if (lua_type(L, idx) != LUA_TTABLE) return luaL_checkstring(L, idx);
  lua_getfield(L, idx, "name");
  name = lua_tostring(L, -1);
  lua_getfield(L, idx, "config_hash");
  *hash = lua_tostring(L, -1);
  lua_pop(L, 2);                      /* the strings stay alive in the table */
  if (name == NULL) luaL_argerror(L, idx, "a destination needs a name");
  if (*hash == NULL) *hash = "";
  return name;
}

static int db_put_destination_state(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *hash, *dest = dest_arg(L, 2, &hash), *source = luaL_checkstring(L, 3);
  const char *stream = luaL_optstring(L, 4, "");
  size_t n;
  const char *json;
  luaL_checkany(L, 5);
  json = json_arg(L, 5, &n);
  check_rc(L, d->c, lb_cache_put_destination_state(d->c, dest, hash, source, stream, json, n));
  return 0;
}

/* Runs sql (result columns: stream name, state json, namespace) with the
** strings at the argument slots of binds[0..n) (0 or nil: NULL) and returns
** three arrays: json texts, names, namespaces ("" for none). */
static int state_rows(lua_State *L, const char *sql, const int *binds, int n) {
  stmt_ud *u = prepare_box(L, 1, sql, 1);
  int box = lua_gettop(L), i;
  lua_Integer k = 0;
  for (i = 0; i < n; i++)
    if (binds[i] && !lua_isnil(L, binds[i]))
      sqlite3_bind_text(u->st, i + 1, lua_tostring(L, binds[i]), -1, SQLITE_TRANSIENT);
  lua_newtable(L);
  lua_newtable(L);
  lua_newtable(L);                    /* stack: box jsons names namespaces */
  while (step_box(L, u)) {
    if (sqlite3_column_type(u->st, 1) == SQLITE_NULL) continue;
    k++;
    lua_pushlstring(L, (const char *)sqlite3_column_text(u->st, 1),
                    (size_t)sqlite3_column_bytes(u->st, 1));
    lua_rawseti(L, box + 1, k);
    lua_pushlstring(L, (const char *)sqlite3_column_text(u->st, 0),
                    (size_t)sqlite3_column_bytes(u->st, 0));
    lua_rawseti(L, box + 2, k);
    lua_pushlstring(L, (const char *)sqlite3_column_text(u->st, 2),
                    (size_t)sqlite3_column_bytes(u->st, 2));
    lua_rawseti(L, box + 3, k);
  }
  return 3;
}

static int db_get_states(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  int binds[2] = { 2, 3 };
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  lua_pushstring(L, lb_cache_table_prefix(d->c));   /* 3 */
  return state_rows(L, lb__cache_get_states_sql, binds, 2);
}

static int db_get_destination_states(lua_State *L) {
  const char *hash, *name;
  int binds[3] = { 4, 5, 3 };
  checkdb(L, 1);
  name = dest_arg(L, 2, &hash);
  luaL_optstring(L, 3, NULL);
  lua_settop(L, 3);
  lua_pushstring(L, name);                          /* 4 */
  if (hash) lua_pushstring(L, hash); else lua_pushnil(L);   /* 5 */
  return state_rows(L, lb__cache_get_destination_states_sql, binds, 3);
}

/* The ledger key from (destination, source, namespace_or_nil, stream). */
static void delivery_arg(lua_State *L, lb_cache_delivery *d) {
  d->destination_name = dest_arg(L, 2, &d->config_hash);
  d->source_name = luaL_checkstring(L, 3);
  d->stream_namespace = luaL_optstring(L, 4, "");
  d->stream_name = luaL_checkstring(L, 5);
}

/* db:get_delivered(destination, source, namespace_or_nil, stream) -> raw_id | nil */
static int db_get_delivered(lua_State *L) {
  db_ud *db = checkdb(L, 1);
  lb_cache_delivery d;
  char id[128];
  int rc;
  delivery_arg(L, &d);
  rc = lb_cache_get_delivered(db->c, &d, id, sizeof id);
  check_rc(L, db->c, rc);
  if (rc == 0) lua_pushnil(L); else lua_pushstring(L, id);
  return 1;
}

/* db:put_delivered(destination, source, namespace_or_nil, stream, raw_id) */
static int db_put_delivered(lua_State *L) {
  db_ud *db = checkdb(L, 1);
  lb_cache_delivery d;
  const char *id;
  delivery_arg(L, &d);
  id = luaL_checkstring(L, 6);
  check_rc(L, db->c, lb_cache_put_delivered(db->c, &d, id));
  return 0;
}

/* --- module functions ------------------------------------------------------------------- */

/* sqlite.state_key(state) -> type, name, namespace | nil: the key a state
** is kept and matched under (lb_state_key_of), for a state message as JSON
** text or a table. type is "STREAM", "GLOBAL" or "LEGACY"; name is the
** stream's or "_GLOBAL" / "_LEGACY". */
static int l_state_key(lua_State *L) {
  size_t n, nlen, nslen;
  const char *json;
  lb_jval top;
  lb_state_key k;
  char name[1024], ns[1024];
  luaL_checkany(L, 1);
  json = json_arg(L, 1, &n);
  if (lb_jskim_validate(json, n, &top, NULL) != 0) return luaL_argerror(L, 1, "not a JSON text");
  lb_state_key_of(&top, &k);
  if (lb_state_key_text(&k, name, sizeof name, &nlen, ns, sizeof ns, &nslen) != 0)
    return luaL_argerror(L, 1, "state key too long");
  lua_pushstring(L, lb_state_type_name(k.type));
  lua_pushlstring(L, name, nlen);
  if (nslen) lua_pushlstring(L, ns, nslen); else lua_pushnil(L);
  return 3;
}

static int l_normalize(lua_State *L) {
  size_t n;
  const char *name = luaL_checklstring(L, 1, &n);
  char buf[256];
  long m = lb_cache_normalize(name, n, buf, sizeof buf);
  if (m < 0)
    return luaL_error(L, "PyAirbyteNameNormalizationError: name '%s' normalizes to nothing "
                         "but underscores", name);
  if ((size_t)m < sizeof buf) {
    lua_pushlstring(L, buf, (size_t)m);
  } else {
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)m + 1);
    lb_cache_normalize(name, n, p, (size_t)m + 1);
    luaL_pushresultsize(&b, (size_t)m);
  }
  return 1;
}

/* mkdir -p: every missing directory of path, mode 0777 minus the umask. */
static int l_mkdir_p(lua_State *L) {
  size_t n, i;
  const char *path = luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  char *p;
  if (n == 0) return luaL_argerror(L, 1, "empty path");
  p = luaL_buffinitsize(L, &b, n + 1);
  memcpy(p, path, n);
  p[n] = '\0';
  for (i = 1; i <= n; i++) {
    struct stat st;
    if (i < n && p[i] != '/') continue;
    if (i < n) p[i] = '\0';
    if (mkdir(p, 0777) != 0) {
      int e = errno;
      if (e != EEXIST || stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
        luaL_pushfail(L);
        lua_pushfstring(L, "cannot create directory %s: %s", p,
                        e == EEXIST ? "a file of that name exists" : strerror(e));
        lua_pushinteger(L, e);
        return 3;
      }
    }
    if (i < n) p[i] = '/';
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* A ULID: 48 bits of milliseconds and 80 random bits in Crockford's base32,
** as PyAirbyte names new local caches. */
static int l_ulid(lua_State *L) {
  static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  unsigned char r[10];
  char out[26];
  struct timespec ts;
  unsigned long long ms;
  int i, got = 0;
  clock_gettime(CLOCK_REALTIME, &ts);
  ms = (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
#if defined(__linux__)
  got = getrandom(r, sizeof r, GRND_NONBLOCK) == (ssize_t)sizeof r;
#endif
  if (!got) {
    unsigned long long x = ms ^ ((unsigned long long)ts.tv_nsec << 20) ^ (unsigned long long)getpid();
    for (i = 0; i < 10; i++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      r[i] = (unsigned char)x;
    }
  }
  for (i = 9; i >= 0; i--) { out[i] = b32[ms & 31]; ms >>= 5; }
  {
    /* 80 bits -> 16 characters, 5 bits at a time from the top */
    int bit = 0;
    for (i = 0; i < 16; i++, bit += 5) {
      int byte = bit / 8, off = bit % 8, v = (r[byte] << 8 | (byte + 1 < 10 ? r[byte + 1] : 0));
      out[10 + i] = b32[(v >> (11 - off)) & 31];
    }
  }
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

/* db:move_destination(name, from_hash, to_hash) */
static int db_move_destination(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *name = luaL_checkstring(L, 2), *from = luaL_checkstring(L, 3), *to = luaL_checkstring(L, 4);
  check_rc(L, d->c, lb_cache_move_destination(d->c, name, from, to));
  return 0;
}

static const luaL_Reg db_methods[] = {
  {"exec", db_exec},
  {"query", db_query},
  {"rows", db_rows},
  {"begin", db_begin},
  {"commit", db_commit},
  {"rollback", db_rollback},
  {"settle", db_settle},
  {"commit_state", db_commit_state},
  {"try_lock_stream", db_try_lock_stream},
  {"unlock_stream", db_unlock_stream},
  {"in_transaction", db_in_transaction},
  {"changes", db_changes},
  {"set_async", db_set_async},
  {"stream_open", db_stream_open},
  {"put_state", db_put_state},
  {"get_states", db_get_states},
  {"put_destination_state", db_put_destination_state},
  {"get_destination_states", db_get_destination_states},
  {"get_delivered", db_get_delivered},
  {"put_delivered", db_put_delivered},
  {"move_destination", db_move_destination},
  {"set_table_prefix", db_set_table_prefix},
  {"table_prefix", db_table_prefix},
  {"table_name", db_table_name},
  {"uuid7", db_uuid7},
  {"put_quarantine", db_put_quarantine},
  {"path", db_path},
  {"close", db_close},
  {NULL, NULL}
};

static const luaL_Reg db_meta[] = {
  {"__gc", db_close},
  {"__close", db_close},
  {"__tostring", db_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg stream_methods[] = {
  {"write", stream_write},
  {"finish", stream_finish},
  {"abort", stream_abort},
  {"close", stream_close},
  {"rows_written", stream_rows_written},
  {"table_name", stream_table_name},
  {"namespace", stream_namespace},
  {NULL, NULL}
};

static const luaL_Reg stream_meta[] = {
  {"__gc", stream_close},
  {"__close", stream_close},
  {"__tostring", stream_tostring},
  {"__index", NULL},
  {NULL, NULL}
};

static const luaL_Reg stmt_meta[] = {
  {"__gc", stmt_gc},
  {"__close", stmt_gc},
  {"__tostring", stmt_tostring},
  {NULL, NULL}
};

static const luaL_Reg module_funcs[] = {
  {"open", l_open},
  {"normalize", l_normalize},
  {"state_key", l_state_key},
  {"mkdir_p", l_mkdir_p},
  {"ulid", l_ulid},
  {NULL, NULL}
};

static void new_meta(lua_State *L, const char *name, const luaL_Reg *meta,
                     const luaL_Reg *methods) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, meta, 0);
  if (methods) {
    lua_newtable(L);                  /* stack: mt methods */
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

int luaopen_airbyte_sqlite(lua_State *L) {
  new_meta(L, DB_MT, db_meta, db_methods);
  new_meta(L, STREAM_MT, stream_meta, stream_methods);
  new_meta(L, STMT_MT, stmt_meta, NULL);
  luaL_newlib(L, module_funcs);
  lua_pushliteral(L, SQLITE_VERSION);
  lua_setfield(L, -2, "sqlite_version");
  return 1;
}
