/*
** lua_cache.c - the `airbyte.sqlite` module: a thin binding of the storage
** interface (cache.h). It speaks only cache.h, so a db userdata has the
** same methods whichever backend keeps the data; constructors pick the
** backend (open: SQLite; open_pg: PostgreSQL, cache_pg.c). Its SQL
** surface (exec, query, rows and their statements) is lua_sql.c's.
**
**   local sqlite = require "airbyte.sqlite"
**   local db = sqlite.open(path)            -- nil, msg on failure (environment)
**   db:kind()                               -- "sqlite" | "postgres"
**   db:exec(sql); db:query(sql, ...); db:rows(sql, ...)   -- lua_sql.c
**   db:has_table(name); db:columns(table); db:streams()   -- introspection
**   db:lock_stream(source, stream [, namespace [, timeout_ms]]); db:unlock_stream(...)
**   db:try_lock_stream(source, stream [, namespace]) -> true | false, holder message
**   db:begin(); db:commit(); db:rollback(); db:in_transaction()   -- tasks wait yielding
**   db:settle(); db:commit_state(source, state_json [, begin_again])   -- queued
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
**   sqlite.state_count_mismatch(state, "sourceStats"|"destinationStats", arrived) -> count | nil
**   sqlite.state_identity(state_json_or_table) -> type, name, namespace|nil, digest
**   db:table_name(stream [, namespace]) -> the stream's table (cache.h "Stream
**       names"; namespace nil = the one it was cached under); raises on a clash
**   db:set_table_prefix(prefix); db:table_prefix(); db:path(); db:close()
**   db:set_async(bool)   -- writer/checkpointer threads (default on, cache.h)
**   db:set_lock_timeout(ms)   -- waits for another connection's write lock
**     (default 60000): every method waits for it by yielding (`retrying`)
**   sqlite.normalize(name) -> PyAirbyte's normalized name (raises if none)
**
** Errors: misuse and SQL errors raise (SQL errors with the database's
** message and the statement cut to 200 bytes); only open, which depends
** on the environment, returns nil, msg.
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
#include "lua_bindings.h"
#include "cache_pg.h"
#include "lb_internal.h"
#include "cache.h"
#include "jskim.h"
#include "record.h"
#include "protocol.h"

#define DB_MT LB_CACHE_DB_MT
#define STREAM_MT "airbyte.CacheStream"
#define BUF_MT "airbyte.CacheBuffer"

typedef lb__cache_db db_ud;  /* user value 1: the path */

typedef struct stream_ud {
  lb_cache_stream *s;       /* NULL once closed */
  db_ud *db;                /* kept alive by user value 1 */
} stream_ud;

/* --- helpers --------------------------------------------------------------------- */

static db_ud *checkdb(lua_State *L, int idx) {
  return lb__sql_check_db(L, idx);
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

/* --- db ----------------------------------------------------------------------------- */

/* A new db userdata for any backend; `label` (what tostring and db:path
** show: the file, or the server and schema) is at index label_idx. Fill
** its `c` with the backend's constructor, then finish with open_result. */
static db_ud *new_db(lua_State *L, int label_idx) {
  db_ud *d = lua_newuserdatauv(L, sizeof *d, 1);
  d->c = NULL;
  luaL_setmetatable(L, DB_MT);
  lua_pushvalue(L, label_idx);
  lua_setiuservalue(L, -2, 1);
  return d;
}

/* The db (left on the stack), or nil, msg, code when the backend could
** not open. */
static int open_result(lua_State *L, db_ud *d, int rc, const char *err) {
  if (rc == 0) {
    lb_cache_set_nowait(d->c, 1);              /* waits for the lock yield (retrying) */
    lb_cache_set_background(d->c, &lb__rt(L)->background_cpus);
  }
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    lua_pushinteger(L, rc);
    return 3;
  }
  return 1;
}

static int l_open(lua_State *L);

static int l_open_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return l_open(L);
}

static int l_open(lua_State *L) {
  const char *path;
  char err[512];
  db_ud *d;
  lb__budget_pause(L, 0, l_open_k);    /* a file to open, a schema to read: not past the budget */
  path = luaL_checkstring(L, 1);
  d = new_db(L, 1);
  return open_result(L, d, lb_cache_sqlite_open(path, &d->c, err, sizeof err), err);
}

/* open_pg{ host =, port =, database =, username =, password =, dsn =,
** schema_name = "airbyte_raw", connect_timeout = 10 } -> db | fail, err:
** the same userdata as open, over the PostgreSQL backend (cache_pg.h).
** db:path() is "postgresql://user@host:port/database?schema=..." without
** the password. */
static const char *const open_pg_options[] = {
  "host", "port", "database", "username", "password", "dsn", "schema_name", "connect_timeout", NULL };

static const char *opt_string(lua_State *L, int t, const char *key) {
  int ty = lua_getfield(L, t, key);      /* left on the stack: keeps the string alive */
  if (ty == LUA_TNIL) return NULL;
  if (ty != LUA_TSTRING && ty != LUA_TNUMBER) luaL_error(L, "open_pg: %s must be a string", key);
  return lua_tostring(L, -1);
}

static int l_open_pg(lua_State *L) {
  lb_pg_params p;
  const char *schema;
  char err[1024];
  db_ud *d;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lb__check_options(L, 1, "open_pg", open_pg_options);
  memset(&p, 0, sizeof p);
  p.host = opt_string(L, 1, "host");
  p.port = opt_string(L, 1, "port");
  p.database = opt_string(L, 1, "database");
  p.username = opt_string(L, 1, "username");
  p.password = opt_string(L, 1, "password");
  p.dsn = opt_string(L, 1, "dsn");
  schema = opt_string(L, 1, "schema_name");
  lua_getfield(L, 1, "connect_timeout");
  p.connect_timeout_s = (int)luaL_optinteger(L, -1, 10);
  if (schema == NULL) schema = LB_CACHE_PG_DEFAULT_SCHEMA;
  if (p.dsn)     /* it may hold the password: not shown */
    lua_pushfstring(L, "postgresql (the given dsn)?schema=%s", schema);
  else
    lua_pushfstring(L, "postgresql://%s@%s:%s/%s?schema=%s", p.username ? p.username : "",
                    p.host ? p.host : "", p.port ? p.port : "", p.database ? p.database : "", schema);
  d = new_db(L, lua_gettop(L));
  return open_result(L, d, lb_cache_pg_open(&p, schema, &d->c, err, sizeof err), err);
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

/* Inside a task, begin, commit and rollback never hold the loop thread
** while the writer thread works or waits for the write lock (another
** connection, in this process or another, holds it): the task waits until
** the writer is idle, yielding whenever the step's budget is spent (with
** no budget, every millisecond), then runs its step, then waits the same
** way for its outcome. Outside a task they wait as lb_cache_begin does. */
#define WAIT_SLICE_NS 1000000u

/* 1 when a call here may wait without holding the loop: in a task that can
** yield, or outside any task, where a wait runs the loop (lb__wait). */
static int can_wait(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  if (rt->current) return lua_isyieldable(L);
  return !rt->stepping && !rt->closing && rt->mode != LB_LOOP_SHARED;
}

/* In a step with a budget a task does not sleep on the cache: 1 is a
** deadline already passed, so a writer without room hands the rest of the
** step back (lb__cache_retry). Asleep inside the host's frame, the loop
** thread's wake-up is the kernel's and the hypervisor's: traced at up to
** 3 ms late on an idle vCPU, past the budget it was to keep. */
uint64_t lb__cache_wait_deadline(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  if (!can_wait(L)) return 0;
  return rt->deadline ? 1 : uv_hrtime() + WAIT_SLICE_NS;
}

/* The retry: with a budget, the task runs again at the next step (this
** one ends now: the rest of it is the host's); without one, after a 1 ms timer, so that
** the loop polls meanwhile (a task that is ready at once would keep the
** loop from reading the pipes the other tasks wait for). */
int lb__cache_retry(lua_State *L, lua_KContext ctx, lua_KFunction k) {
  lb_runtime *rt = lb__rt(L);
  if (rt->deadline) {
    rt->handed_back = 1;
    lb__wake(rt->current);
    return lb__wait(L, NULL, NULL, ctx, k);
  }
  return lb__sleep(L, 1, ctx, k);
}

/* --- waiting for the write lock by yielding ---------------------------------------
** The methods of a db and of its streams run through `retrying` (a closure
** over the method, with its wait kind): the cache is in nowait mode
** (lb_cache_set_nowait), so a method that meets the write lock of another
** connection fails at once; retrying then waits by yielding (a timer, 1 ms
** doubling up to 50 ms; outside a task the wait runs the loop) and calls
** it again with the same arguments, until the cache's lock timeout has
** passed since the first refusal; then it raises the cache's message (the
** file, and that another process holds its write lock). Before each try a
** WAIT_IDLE method also waits, the same way, until the writer thread is
** idle, since the method would otherwise wait for it on the loop thread
** (lb_cache_wait_idle). Where nothing may yield (a metamethod, an iterator
** of a C function), the retries sleep on the thread instead. */
enum { WAIT_NONE = 0, WAIT_IDLE = 1 };
#define RETRY_MAX_MS 50

/* ctx: the number of arguments (8 bits), the method's wait kind (1), the
** tries so far (7), the millisecond of the first refusal (0 = none yet) */
#define CTX_NARGS(x) ((int)((x) & 0xff))
#define CTX_TRIES(x) ((int)(((x) >> 9) & 0x7f))
#define CTX_SINCE(x) ((uint64_t)(x) >> 16)
#define CTX_MAKE(n, idle, tries, since) \
  ((lua_KContext)((uint64_t)(n) | (uint64_t)(idle) << 8 | (uint64_t)(tries) << 9 | (uint64_t)(since) << 16))

static lb_cache *cache_arg(lua_State *L) {
  db_ud *d = luaL_testudata(L, 1, DB_MT);
  stream_ud *u;
  if (d) return d->c;
  u = luaL_testudata(L, 1, STREAM_MT);
  return u && u->s && u->db ? u->db->c : NULL;
}

static int retry_k(lua_State *L, int status, lua_KContext ctx);
static int retry_try(lua_State *L, lua_KContext ctx);

#define TRIED ((lua_KContext)1 << 62)       /* in a continuation's ctx: a try ended */

/* After a try: its results (>= 0); or, refused on the lock, a wait and the
** next try (yielding: never returns here in a task; outside one, the wait
** runs the loop and returns the call's results), or -1 where nothing may
** yield: *ctx is the next try's, after a sleep on the thread. */
static int after_try(lua_State *L, int status, lua_KContext *ctx) {
  int n = CTX_NARGS(*ctx), tries = CTX_TRIES(*ctx);
  uint64_t now, since, ms;
  lb_cache *c;
  if (status == LUA_OK || status == LUA_YIELD) return lua_gettop(L) - n;
  c = cache_arg(L);
  if (c == NULL || !lb_cache_was_busy(c)) return lua_error(L);
  now = uv_hrtime() / 1000000u + 1;
  since = CTX_SINCE(*ctx) ? CTX_SINCE(*ctx) : now;
  if (now - since >= (uint64_t)lb_cache_lock_timeout(c))
    return luaL_error(L, "%s; gave up after %d ms", lb_cache_errmsg(c), (int)lb_cache_lock_timeout(c));
  lua_settop(L, n);
  ms = tries < 6 ? (uint64_t)1 << tries : RETRY_MAX_MS;
  if (ms > RETRY_MAX_MS) ms = RETRY_MAX_MS;
  *ctx = CTX_MAKE(n, (*ctx >> 8) & 1, tries < 127 ? tries + 1 : tries, since);
  if (can_wait(L)) return lb__sleep(L, ms, *ctx, retry_k);
  uv_sleep((unsigned)ms);
  return -1;
}

static int retry_try(lua_State *L, lua_KContext ctx) {
  for (;;) {
    int i, r, n = CTX_NARGS(ctx);
    lb_cache *c = cache_arg(L);
    if (c && ((ctx >> 8) & 1) && can_wait(L) && !lb_cache_wait_idle(c, 1))
      return lb__sleep(L, 1, ctx, retry_k);   /* the writer thread works: no refusal yet */
    if (c) {
      if (CTX_SINCE(ctx) == 0) lb_cache_busy_reset(c);
      else lb_cache_was_busy(c);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    for (i = 1; i <= n; i++) lua_pushvalue(L, i);
    if ((r = after_try(L, lua_pcallk(L, n, LUA_MULTRET, 0, ctx | TRIED, retry_k), &ctx)) >= 0)
      return r;
  }
}

/* The end of a try that yielded (ctx with TRIED: status is the method's),
** or the end of a wait (the next try). */
static int retry_k(lua_State *L, int status, lua_KContext ctx) {
  int r;
  if (!(ctx & TRIED)) {
    lua_settop(L, CTX_NARGS(ctx));
    return retry_try(L, ctx);
  }
  ctx &= ~TRIED;
  r = after_try(L, status, &ctx);
  return r >= 0 ? r : retry_try(L, ctx);
}

static int retrying(lua_State *L) {
  int n = lua_gettop(L);
  if (n > 0xff) return luaL_error(L, "too many arguments");
  return retry_try(L, CTX_MAKE(n, lua_toboolean(L, lua_upvalueindex(2)), 0, 0));
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
  lua_pushinteger(L, (lua_Integer)lb_cache_changes(d->c));
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

/* A namespace argument: nil or json.null = none. */
static const char *opt_namespace(lua_State *L, int idx, size_t *len) {
  *len = 0;
  if (lua_isnoneornil(L, idx) || (lua_islightuserdata(L, idx) && lua_touserdata(L, idx) == NULL))
    return NULL;
  return luaL_checklstring(L, idx, len);
}

static const char *const stream_open_options[] = {
  "source", "stream", "namespace", "schema", "strategy", "primary_key", "cursor_field", NULL };

static int db_stream_open(lua_State *L);

static int db_stream_open_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return db_stream_open(L);
}

static int db_stream_open(lua_State *L) {
  db_ud *d;
  const char *source, *schema = "{}", *strategy;
  const char *pk[MAX_PK + 1];
  size_t schema_len = 2;
  lb_cache_stream_id id;
  lb_write_strategy ws;
  stream_ud *u;
  char err[512];
  int npk;
  lb__budget_pause(L, 0, db_stream_open_k);   /* tables to check, INSERTs to prepare */
  d = checkdb(L, 1);
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
  /* "auto" is resolved once, by airbyte.catalog.resolve_write_method */
  else return luaL_error(L, "stream_open: strategy must be append, merge or replace (got '%s'; "
                         "resolve 'auto' with airbyte.catalog.resolve_write_method)", strategy);
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

/* State rows are gathered in C memory owned by a userdata (so that a
** memory error while the Lua arrays are built leaks nothing, and no Lua
** error ever unwinds through the cache's read), then pushed as three
** arrays: json texts, names, namespaces ("" for none). */
static int buf_gc(lua_State *L) {
  lb_cache_buf *b = luaL_checkudata(L, 1, BUF_MT);
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
  return 0;
}

static lb_cache_buf *new_buf(lua_State *L) {
  lb_cache_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, BUF_MT);
  return b;
}

static int buf_piece(lb_cache_buf *b, const char *s, size_t n) {
  if (lb_cache_buf_reserve(b, sizeof n + n) != 0) return LB_ENOMEM;
  memcpy(b->p + b->len, &n, sizeof n);
  memcpy(b->p + b->len + sizeof n, s, n);
  b->len += sizeof n + n;
  return 0;
}

static int gather_state(void *ud, const char *name, const char *ns, const char *json, size_t len) {
  lb_cache_buf *b = ud;
  if (buf_piece(b, json, len) || buf_piece(b, name, strlen(name)) || buf_piece(b, ns, strlen(ns)))
    return LB_ENOMEM;
  return 0;
}

static int push_states(lua_State *L, lb_cache *c, lb_cache_buf *b, int rc) {
  size_t off = 0;
  lua_Integer k = 0;
  int top;
  if (rc == LB_ENOMEM) return luaL_error(L, "out of memory");
  check_rc(L, c, rc);
  lua_newtable(L);
  lua_newtable(L);
  lua_newtable(L);                    /* stack: ... jsons names namespaces */
  top = lua_gettop(L);
  while (off < b->len) {
    int i;
    k++;
    for (i = 0; i < 3; i++) {
      size_t n;
      memcpy(&n, b->p + off, sizeof n);
      lua_pushlstring(L, b->p + off + sizeof n, n);
      lua_rawseti(L, top - 2 + i, k);
      off += sizeof n + n;
    }
  }
  return 3;
}

static int db_get_states(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *source = luaL_checkstring(L, 2);
  lb_cache_buf *b = new_buf(L);
  return push_states(L, d->c, b, lb_cache_get_states(d->c, source, gather_state, b));
}

static int db_get_destination_states(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *hash, *name = dest_arg(L, 2, &hash), *source = luaL_optstring(L, 3, NULL);
  lb_cache_buf *b = new_buf(L);
  return push_states(L, d->c, b,
                     lb_cache_get_destination_states(d->c, name, hash, source, gather_state, b));
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

/* --- introspection and stream locks ------------------------------------------------------- */

static int db_kind(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  lua_pushstring(L, lb_cache_kind(d->c));
  return 1;
}

static int db_has_table(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  int rc = lb_cache_has_table(d->c, luaL_checkstring(L, 2));
  check_rc(L, d->c, rc);
  lua_pushboolean(L, rc > 0);
  return 1;
}

/* Pieces gathered by the callbacks below, then pushed as an array of
** tables with the given field names. */
static int push_records(lua_State *L, lb_cache *c, lb_cache_buf *b, int rc,
                        const char *const *fields, int nfields) {
  size_t off = 0;
  lua_Integer k = 0;
  if (rc == LB_ENOMEM) return luaL_error(L, "out of memory");
  check_rc(L, c, rc);
  lua_newtable(L);
  while (off < b->len) {
    int i;
    lua_createtable(L, 0, nfields);
    for (i = 0; i < nfields; i++) {
      size_t n;
      memcpy(&n, b->p + off, sizeof n);
      lua_pushlstring(L, b->p + off + sizeof n, n);
      lua_setfield(L, -2, fields[i]);
      off += sizeof n + n;
    }
    lua_rawseti(L, -2, ++k);
  }
  return 1;
}

static int gather_column(void *ud, const char *name, int kind, const char *decl) {
  lb_cache_buf *b = ud;
  const char *kn = lb__sql_kind_name(kind) ? lb__sql_kind_name(kind) : "";
  if (buf_piece(b, name, strlen(name)) || buf_piece(b, kn, strlen(kn)) ||
      buf_piece(b, decl, strlen(decl)))
    return LB_ENOMEM;
  return 0;
}

/* db:columns(table) -> { {name =, kind = "string"|"integer"|"number"|
** "boolean"|"json"|"" (none of ours), type = declared type}, ... } in
** table order; {} for a missing table. */
static int db_columns(lua_State *L) {
  static const char *const fields[] = { "name", "kind", "type" };
  db_ud *d = checkdb(L, 1);
  const char *table = luaL_checkstring(L, 2);
  lb_cache_buf *b = new_buf(L);
  return push_records(L, d->c, b, lb_cache_columns(d->c, table, gather_column, b), fields, 3);
}

static int gather_stream(void *ud, const lb_cache_stream_row *r) {
  lb_cache_buf *b = ud;
  if (buf_piece(b, r->name, r->name_len) || buf_piece(b, r->ns, r->ns_len) ||
      buf_piece(b, r->table, strlen(r->table)) ||
      buf_piece(b, r->source_name, strlen(r->source_name)) ||
      buf_piece(b, r->catalog_json, r->catalog_len))
    return LB_ENOMEM;
  return 0;
}

/* db:streams() -> { {name =, namespace = "" for none, table =, source =,
** catalog = the JSON schema text it was cached with}, ... }: the streams
** cached under the table prefix whose table exists, by name. */
static int db_streams(lua_State *L) {
  static const char *const fields[] = { "name", "namespace", "table", "source", "catalog" };
  db_ud *d = checkdb(L, 1);
  lb_cache_buf *b = new_buf(L);
  return push_records(L, d->c, b, lb_cache_streams(d->c, gather_stream, b), fields, 5);
}

static void stream_id_arg(lua_State *L, int idx, lb_cache_stream_id *id) {
  id->name = luaL_checklstring(L, idx, &id->name_len);
  id->ns = luaL_optlstring(L, idx + 1, "", &id->ns_len);
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
  stream_id_arg(L, 3, &id);
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

/* db:lock_stream(source, stream [, namespace [, timeout_ms]]) -> true, or
** raises the holder's description (cache.h lb_cache_lock_stream). A stream
** another runner holds is waited for by yielding (a timer; outside a task
** the wait runs the loop), never on the loop thread; only where nothing may
** yield does the backend wait itself. ctx: the deadline (uv_hrtime ms). */
#define LOCK_POLL_MS 10

static int lock_stream_k(lua_State *L, int status, lua_KContext ctx) {
  db_ud *d = checkdb(L, 1);
  const char *source = luaL_checkstring(L, 2);
  long timeout = (long)luaL_optinteger(L, 5, 0);
  uint64_t now = uv_hrtime() / 1000000u, deadline = (uint64_t)ctx;
  int yielding = can_wait(L);
  lb_cache_stream_id id;
  char err[512];
  int rc;
  (void)status;
  stream_id_arg(L, 3, &id);
  err[0] = '\0';
  rc = lb_cache_lock_stream(d->c, source, &id, yielding ? 0 : timeout, err, sizeof err);
  if (rc == LB_CACHE_EBUSY && yielding && now < deadline)
    return lb__sleep(L, deadline - now < LOCK_POLL_MS ? deadline - now : LOCK_POLL_MS, ctx, lock_stream_k);
  if (rc < 0) {
    if (rc == LB_CACHE_EBUSY && yielding && timeout > 0)
      return luaL_error(L, "%s (gave up after waiting %d ms)", err[0] ? err : lb_cache_errmsg(d->c), (int)timeout);
    return luaL_error(L, "%s", err[0] ? err : lb_cache_errmsg(d->c));
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int db_lock_stream(lua_State *L) {
  long timeout = (long)luaL_optinteger(L, 5, 0);
  checkdb(L, 1);
  lua_settop(L, 5);
  return lock_stream_k(L, LUA_OK, (lua_KContext)(uv_hrtime() / 1000000u + (uint64_t)(timeout > 0 ? timeout : 0)));
}

static int db_unlock_stream(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *source = luaL_checkstring(L, 2);
  lb_cache_stream_id id;
  stream_id_arg(L, 3, &id);
  lb_cache_unlock_stream(d->c, source, &id);
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

/* sqlite.state_count_mismatch(state, field, arrived) -> the count the
** state claims (field "sourceStats" or "destinationStats") when it differs
** from arrived, else nil (cache.h: the record-count check). */
static int l_state_count_mismatch(lua_State *L) {
  size_t n;
  const char *json, *field;
  lb_jval top;
  long long arrived, expected = 0;
  luaL_checkany(L, 1);
  json = json_arg(L, 1, &n);
  field = luaL_checkstring(L, 2);
  arrived = (long long)luaL_checkinteger(L, 3);
  if (lb_jskim_validate(json, n, &top, NULL) != 0) return luaL_argerror(L, 1, "not a JSON text");
  if (lb_cache_state_count_mismatch(&top, field, arrived, &expected))
    lua_pushinteger(L, (lua_Integer)expected);
  else
    lua_pushnil(L);
  return 1;
}

/* sqlite.state_identity(state) -> type, name, namespace | nil, digest: a
** state's key (as sqlite.state_key) and the digest of its blob whatever its
** spelling and whatever a destination adds (lb_cache_state_identity), for
** a state as JSON text - the state object or its STATE message - or a
** table. What matches an echo to a state sent, without decoding either. */
static int l_state_identity(lua_State *L) {
  size_t n;
  const char *json;
  lb_state_key k;
  char digest[65];
  int rc;
  luaL_checkany(L, 1);
  json = json_arg(L, 1, &n);
  if ((rc = lb_cache_state_identity(json, n, &k, NULL, digest)) != 0)
    return rc == LB_ENOMEM ? luaL_error(L, "out of memory") : luaL_argerror(L, 1, "not a state as JSON");
  lua_pushstring(L, lb_state_type_name(k.type));
  if (k.type == LB_STATE_STREAM) lb__json_push(L, &k.name);
  else lua_pushstring(L, k.type == LB_STATE_GLOBAL ? "_GLOBAL" : "_LEGACY");
  if (k.ns.type == LB_JSTRING) lb__json_push(L, &k.ns); else lua_pushnil(L);
  lua_pushstring(L, digest);
  return 4;
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

/* db:move_destination(name, from_hash, to_hash) */
/* db:set_lock_timeout(ms): how long a wait for another connection's write
** lock lasts before it fails (cache.h, lb_cache_set_lock_timeout). */
static int db_set_lock_timeout(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  lua_Integer ms = luaL_checkinteger(L, 2);
  luaL_argcheck(L, ms >= 0, 2, "a number of milliseconds >= 0");
  lb_cache_set_lock_timeout(d->c, (long)ms);
  return 0;
}

static int db_move_destination(lua_State *L) {
  db_ud *d = checkdb(L, 1);
  const char *name = luaL_checkstring(L, 2), *from = luaL_checkstring(L, 3), *to = luaL_checkstring(L, 4);
  check_rc(L, d->c, lb_cache_move_destination(d->c, name, from, to));
  return 0;
}

static const luaL_Reg db_methods[] = {
  {"begin", db_begin},
  {"commit", db_commit},
  {"rollback", db_rollback},
  {"settle", db_settle},
  {"commit_state", db_commit_state},
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
  {"set_lock_timeout", db_set_lock_timeout},
  {"set_table_prefix", db_set_table_prefix},
  {"table_prefix", db_table_prefix},
  {"table_name", db_table_name},
  {"uuid7", db_uuid7},
  {"put_quarantine", db_put_quarantine},
  {"kind", db_kind},
  {"has_table", db_has_table},
  {"columns", db_columns},
  {"streams", db_streams},
  {"lock_stream", db_lock_stream},
  {"try_lock_stream", db_try_lock_stream},
  {"unlock_stream", db_unlock_stream},
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

static const luaL_Reg buf_meta[] = {
  {"__gc", buf_gc},
  {NULL, NULL}
};

static const luaL_Reg module_funcs[] = {
  {"open", l_open},
  {"open_pg", l_open_pg},
  {"normalize", l_normalize},
  {"state_key", l_state_key},
  {"state_count_mismatch", l_state_count_mismatch},
  {"state_identity", l_state_identity},
  {NULL, NULL}
};

/* Methods that run as they are, without `retrying`: they never use the
** connection (or only queue work for the writer thread). */
static const char *const plain_db_methods[] = {
  "commit_state", "in_transaction", "kind", "path", "table_prefix", "set_table_prefix", "uuid7",
  "lock_stream", "try_lock_stream", "unlock_stream", "set_lock_timeout", NULL
};
static const char *const plain_stream_methods[] = {
  "rows_written", "table_name", "namespace", NULL
};
/* Methods that retry on the lock without a wait for the writer first:
** they wait for it themselves (txn_k), or only queue for it (write, which
** meets the lock itself only in sync mode, outside a transaction). */
static const char *const own_wait_methods[] = { "begin", "commit", "rollback", "settle", "write", NULL };

static int listed(const char *const *list, const char *name) {
  for (; *list; list++)
    if (strcmp(*list, name) == 0) return 1;
  return 0;
}

/* Sets each method into the table on top, through `retrying` unless it is
** listed in plain. */
static void set_methods(lua_State *L, const luaL_Reg *methods, const char *const *plain) {
  for (; methods->name; methods++) {
    lua_pushcfunction(L, methods->func);
    if (!listed(plain, methods->name)) {
      lua_pushboolean(L, !listed(own_wait_methods, methods->name));   /* WAIT_IDLE */
      lua_pushcclosure(L, retrying, 2);
    }
    lua_setfield(L, -2, methods->name);
  }
}

/* A metatable with methods (and more_methods, as lua_sql.c's) as __index. */
static void new_meta(lua_State *L, const char *name, const luaL_Reg *meta,
                     const luaL_Reg *methods, const luaL_Reg *more_methods,
                     const char *const *plain) {
  luaL_newmetatable(L, name);
  luaL_setfuncs(L, meta, 0);
  if (methods) {
    lua_newtable(L);                  /* stack: mt methods */
    set_methods(L, methods, plain);
    if (more_methods) set_methods(L, more_methods, plain);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
}

int luaopen_airbyte_sqlite(lua_State *L) {
  new_meta(L, DB_MT, db_meta, db_methods, lb__sql_methods, plain_db_methods);
  new_meta(L, STREAM_MT, stream_meta, stream_methods, NULL, plain_stream_methods);
  new_meta(L, BUF_MT, buf_meta, NULL, NULL, NULL);
  lb__sql_open(L);                    /* the statement userdata */
  luaL_newlib(L, module_funcs);
  lua_pushliteral(L, SQLITE_VERSION);
  lua_setfield(L, -2, "sqlite_version");
  return 1;
}
