/*
** lua_proc.c - the `airbyte.process` module: child processes for Lua.
**
**   local proc = require "airbyte.process"
**   local p, err, code = proc.spawn{ argv = {...}, env = {K = "v"}, cwd = ...,
**                                    name = "source-x", log_file = path,
**                                    stdin = true, max_line = bytes,
**                                    secrets = { "value", ... },   -- masked in logs
**                                    idle_timeout = ms, timeout = ms }
**   for msg in p:messages() do ... end      -- Airbyte messages; log lines kept aside
**   local line, err, code = p:read_line()   -- raw stdout lines
**   p:write(s); p:close_stdin(); local code, signal = p:wait()
**
** Misuse raises; environmental failures (spawn, write) return nil, msg, code.
** messages() raises when the connector breaks the framing (a line over
** max_line) or times out: a loop must not end silently on a failure.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "lua_bindings.h"
#include "proc.h"
#include "protocol.h"
#include "record.h"

#define PROC_MT "airbyte.Process"

extern char **environ;


typedef struct proc_ud {
  lb_proc *p;
} proc_ud;

lb_proc *lb__proc_check(lua_State *L, int idx) {
  proc_ud *u = luaL_checkudata(L, idx, PROC_MT);
  if (u->p == NULL) luaL_error(L, "attempt to use a closed process");
  return u->p;
}

/* --- spawn ----------------------------------------------------------------- */

/* Builds a NULL-terminated array of the strings in table idx (array part),
** stored in a userdata box so nothing leaks if a later step raises. */
static const char **string_array(lua_State *L, int idx, const char *what) {
  lua_Integer n = luaL_len(L, idx), i;
  const char **a;
  if (n < 1) luaL_error(L, "%s must not be empty", what);
  a = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (!lua_isstring(L, -1)) luaL_error(L, "%s[%d] must be a string", what, (int)i);
    a[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1);   /* still referenced by the table */
  }
  a[n] = NULL;
  return a;
}

/* The inherited environment with the table's entries set (false removes). */
static const char **build_env(lua_State *L, int idx) {
  size_t n = 0, k = 0, i;
  const char **a;
  int tbl;
  for (i = 0; environ[i]; i++) n++;
  lua_pushnil(L);
  while (lua_next(L, idx)) { n++; lua_pop(L, 1); }
  a = lua_newuserdatauv(L, sizeof(char *) * (n + 1), 0);
  lua_newtable(L);                 /* keeps the "K=V" strings alive */
  tbl = lua_gettop(L);
  for (i = 0; environ[i]; i++) {
    const char *eq = strchr(environ[i], '=');
    if (eq) {
      lua_pushlstring(L, environ[i], (size_t)(eq - environ[i]));
      lua_gettable(L, idx);
      if (!lua_isnil(L, -1)) { lua_pop(L, 1); continue; }   /* overridden */
      lua_pop(L, 1);
    }
    a[k++] = environ[i];
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "env keys must be strings");
    if (lua_toboolean(L, -1)) {
      if (!lua_isstring(L, -1)) luaL_error(L, "env.%s must be a string", lua_tostring(L, -2));
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
      a[k++] = lua_tostring(L, -1);
      lua_rawseti(L, tbl, (lua_Integer)k);
    }
    lua_pop(L, 1);
  }
  a[k] = NULL;
  return a;
}

static lua_Integer opt_int_field(lua_State *L, int idx, const char *key, lua_Integer def) {
  lua_Integer v;
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) v = def;
  else if (lua_isinteger(L, -1) || lua_type(L, -1) == LUA_TNUMBER) {
    lua_Number d = lua_tonumber(L, -1);
    if (d < 0) luaL_error(L, "'%s' must not be negative", key);
    v = (lua_Integer)d;
  } else return luaL_error(L, "'%s' must be a number", key);
  lua_pop(L, 1);
  return v;
}

static const char *opt_str_field(lua_State *L, int idx, const char *key) {
  const char *s;
  lua_getfield(L, idx, key);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
  if (!lua_isstring(L, -1)) luaL_error(L, "'%s' must be a string", key);
  s = lua_tostring(L, -1);
  lua_pop(L, 1);   /* the options table keeps it alive */
  return s;
}

static const char *const spawn_options[] = {
  "argv", "env", "cwd", "name", "log_file", "max_line", "idle_timeout", "timeout", "stdin",
  "secrets", NULL };

static int l_spawn(lua_State *L);

static int l_spawn_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return l_spawn(L);
}

static int l_spawn(lua_State *L) {
  lb_runtime *rt;
  lb_proc_opts o;
  lb_proc *p;
  proc_ud *u;
  char err[512];
  int rc;
  lb__budget_pause(L, 0, l_spawn_k);   /* a fork and an exec: not past the budget */
  rt = lb__rt(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lb__check_options(L, 1, "process.spawn", spawn_options);
  memset(&o, 0, sizeof o);
  lua_getfield(L, 1, "argv");
  if (!lua_istable(L, -1)) return luaL_error(L, "spawn: 'argv' must be a table of strings");
  o.argv = string_array(L, lua_gettop(L), "argv");
  lua_getfield(L, 1, "env");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) return luaL_error(L, "spawn: 'env' must be a table");
    o.env = build_env(L, lua_gettop(L));
  }
  o.cwd = opt_str_field(L, 1, "cwd");
  o.name = opt_str_field(L, 1, "name");
  o.log_path = opt_str_field(L, 1, "log_file");
  o.max_line = (size_t)opt_int_field(L, 1, "max_line", 0);
  o.idle_timeout_ms = (uint64_t)opt_int_field(L, 1, "idle_timeout", 0);
  o.timeout_ms = (uint64_t)opt_int_field(L, 1, "timeout", 0);
  lua_getfield(L, 1, "stdin");
  o.pipe_stdin = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "secrets");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) return luaL_error(L, "spawn: 'secrets' must be a table of strings");
    if (luaL_len(L, -1) > 0) o.secrets = string_array(L, lua_gettop(L), "secrets");
  }
  u = lua_newuserdatauv(L, sizeof *u, 0);
  u->p = NULL;
  luaL_setmetatable(L, PROC_MT);
  rc = lb__proc_spawn(rt, &o, &p, err, sizeof err);
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    lua_pushstring(L, uv_err_name(rc));
    return 3;
  }
  u->p = p;
  return 1;
}

/* --- reading --------------------------------------------------------------- */

static void cleanup_out(void *data) {
  lb__proc_set_waiter(data, LB_PROC_WAIT_OUTPUT, NULL);
}

static void cleanup_exit(void *data) {
  lb__proc_set_waiter(data, LB_PROC_WAIT_EXIT, NULL);
}

static void cleanup_write(void *data) {
  lb__proc_set_waiter(data, LB_PROC_WAIT_WRITE, NULL);
}

static int wait_output(lua_State *L, lb_proc *p, lua_KContext ctx, lua_KFunction k) {
  lb__proc_set_waiter(p, LB_PROC_WAIT_OUTPUT, lb__current(L, "reading a connector's output"));
  lb__proc_want_output(p);
  return lb__wait(L, cleanup_out, p, ctx, k);
}

/* Pushes the reason output ended early (nil, msg, code), or returns 0 when
** the stream simply ended. */
static int push_read_failure(lua_State *L, lb_proc *p) {
  char msg[512];
  const char *code;
  if (!lb__proc_output_failure(p, msg, sizeof msg, &code)) return 0;
  luaL_pushfail(L);
  lua_pushstring(L, msg);
  lua_pushstring(L, code);
  return 3;
}

static int push_too_long(lua_State *L, lb_proc *p) {
  lb__proc_stats(p)->too_long_lines++;
  luaL_pushfail(L);
  lua_pushfstring(L, "connector '%s' printed a line longer than the limit of %I bytes "
                     "(max_line); the line was dropped", lb__proc_name(p),
                  (lua_Integer)lb__proc_output(p)->max_line);
  lua_pushliteral(L, "ELINE");
  return 3;
}

static int read_line_k(lua_State *L, int status, lua_KContext ctx);

static int l_read_line(lua_State *L) {
  lb_proc *p = lb__proc_check(L, 1);
  const char *line;
  size_t len;
  int rc;
  lua_settop(L, 1);
  rc = lb_lines_next(lb__proc_output(p), &line, &len);
  if (rc == LB_LINES_OK) {
    lb__proc_stats(p)->stdout_lines++;
    lua_pushlstring(L, line, len);
    return 1;
  }
  if (rc == LB_LINES_TOOLONG) return push_too_long(L, p);
  if ((rc = push_read_failure(L, p)) != 0) return rc;
  if (lb__proc_output_ended(p)) {
    luaL_pushfail(L);
    lua_pushliteral(L, "eof");
    lua_pushliteral(L, "EOF");
    return 3;
  }
  return wait_output(L, p, 0, read_line_k);
}

static int read_line_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return l_read_line(L);
}

/* --- messages -------------------------------------------------------------- */

static int messages_next_k(lua_State *L, int status, lua_KContext ctx);

/* upvalues: 1 = process, 2 = type names, 3 = include log lines? */
static int messages_next(lua_State *L) {
  proc_ud *u = lua_touserdata(L, lua_upvalueindex(1));
  int with_logs = lua_toboolean(L, lua_upvalueindex(3));
  lb_proc *p = u->p;
  const char *line;
  size_t len;
  lb_msg m;
  int rc;
  if (p == NULL) return luaL_error(L, "attempt to use a closed process");
  lua_settop(L, 0);
  for (;;) {
    rc = lb_lines_next(lb__proc_output(p), &line, &len);
    if (rc == LB_LINES_OK) {
      lb__proc_stats(p)->stdout_lines++;
      if (lb_msg_parse(line, len, &m) == LB_MSG_NONE) {
        lb__proc_log_line(p, "", line, len);
        lb__proc_stats(p)->log_lines++;
        if (!with_logs) continue;
      } else if (m.type == LB_MSG_LOG) {
        lb__proc_log_message(p, &m);
      }
      lb__push_message(L, &m, line, len);
      return 1;
    }
    if (rc == LB_LINES_TOOLONG) {
      push_too_long(L, p);     /* nil, message, code */
      lua_pop(L, 1);
      return lua_error(L);
    }
    if (push_read_failure(L, p)) {
      lua_pop(L, 1);
      return lua_error(L);
    }
    if (lb__proc_output_ended(p)) return 0;
    return wait_output(L, p, 0, messages_next_k);
  }
}

static int messages_next_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return messages_next(L);
}

static const char *const messages_options[] = { "logs", NULL };

static int l_messages(lua_State *L) {
  int with_logs = 0;
  lb__proc_check(L, 1);
  lb__check_options(L, 2, "messages", messages_options);
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "logs");
    with_logs = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  lua_settop(L, 1);
  lua_pushnil(L);   /* upvalue 2: unused */
  lua_pushboolean(L, with_logs);
  lua_pushcclosure(L, messages_next, 3);
  return 1;
}

/* --- writing ------------------------------------------------------------- */

static int write_k(lua_State *L, int status, lua_KContext ctx);

static int do_write(lua_State *L, size_t off) {
  lb_proc *p = lb__proc_check(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  while (off < len) {
    ssize_t n = lb__proc_write(p, s + off, len - off);
    if (n < 0) {
      char msg[512];
      lb__proc_write_failure(p, (int)n, msg, sizeof msg);
      luaL_pushfail(L);
      lua_pushstring(L, msg);
      lua_pushstring(L, uv_err_name((int)n));
      return 3;
    }
    off += (size_t)n;
    if (off < len) {
      lua_settop(L, 2);
      lb__proc_set_waiter(p, LB_PROC_WAIT_WRITE, lb__current(L, "writing to a connector"));
      return lb__wait(L, cleanup_write, p, (lua_KContext)off, write_k);
    }
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int write_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lua_settop(L, 2);
  return do_write(L, (size_t)ctx);
}

static int l_write(lua_State *L) {
  return do_write(L, 0);
}

static int l_close_stdin(lua_State *L) {
  lb__proc_close_stdin(lb__proc_check(L, 1));
  return 0;
}

/* --- exit ------------------------------------------------------------------ */

static int wait_k(lua_State *L, int status, lua_KContext ctx);

static int l_wait(lua_State *L) {
  lb_proc *p = lb__proc_check(L, 1);
  int64_t status;
  int signum;
  lua_settop(L, 1);
  /* exited, and its last stderr lines are in the log and the tail */
  if (lb__proc_exit_status(p, &status, &signum)) {
    if (signum) luaL_pushfail(L);
    else lua_pushinteger(L, (lua_Integer)status);
    if (signum) lua_pushinteger(L, signum);
    else lua_pushnil(L);
    return 2;
  }
  lb__proc_set_waiter(p, LB_PROC_WAIT_EXIT, lb__current(L, "waiting for a connector to exit"));
  return lb__wait(L, cleanup_exit, p, 0, wait_k);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return l_wait(L);
}

static int l_kill(lua_State *L) {
  lb_proc *p = lb__proc_check(L, 1);
  int sig = (int)luaL_optinteger(L, 2, SIGTERM);
  int rc = lb__proc_kill(p, sig);
  if (rc < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, uv_strerror(rc));
    lua_pushstring(L, uv_err_name(rc));
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int l_terminate(lua_State *L) {
  lb__proc_terminate(lb__proc_check(L, 1), lua_toboolean(L, 2));
  return 0;
}

static int l_pid(lua_State *L) {
  lua_pushinteger(L, lb__proc_pid(lb__proc_check(L, 1)));
  return 1;
}

static int l_running(lua_State *L) {
  lua_pushboolean(L, lb__proc_running(lb__proc_check(L, 1)));
  return 1;
}

static int l_name(lua_State *L) {
  lua_pushstring(L, lb__proc_name(lb__proc_check(L, 1)));
  return 1;
}

static int l_exit_description(lua_State *L) {
  char buf[128];
  lb__proc_describe_exit(lb__proc_check(L, 1), buf, sizeof buf);
  lua_pushstring(L, buf);
  return 1;
}

static int l_timed_out(lua_State *L) {
  lb_proc *p = lb__proc_check(L, 1);
  if (lb__proc_timed_out(p) == LB_TIMEOUT_IDLE) lua_pushliteral(L, "idle");
  else if (lb__proc_timed_out(p) == LB_TIMEOUT_OVERALL) lua_pushliteral(L, "overall");
  else lua_pushnil(L);
  return 1;
}

static int l_tail(lua_State *L) {
  lb_proc *p = lb__proc_check(L, 1);
  const char *lines[LB_PROC_TAIL];
  int i, n = lb__proc_tail(p, lines);
  lua_createtable(L, n, 0);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, lines[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_stats(lua_State *L) {
  const lb_proc_stats *st = lb__proc_stats(lb__proc_check(L, 1));
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)st->stdout_lines); lua_setfield(L, -2, "stdout_lines");
  lua_pushinteger(L, (lua_Integer)st->stdout_bytes); lua_setfield(L, -2, "stdout_bytes");
  lua_pushinteger(L, (lua_Integer)st->log_lines); lua_setfield(L, -2, "log_lines");
  lua_pushinteger(L, (lua_Integer)st->stderr_lines); lua_setfield(L, -2, "stderr_lines");
  lua_pushinteger(L, (lua_Integer)st->too_long_lines); lua_setfield(L, -2, "too_long_lines");
  return 1;
}

static int l_log_file(lua_State *L) {
  lb_proc *p = lb__proc_check(L, 1);
  if (lb__proc_log_path(p)) lua_pushstring(L, lb__proc_log_path(p));
  else lua_pushnil(L);
  return 1;
}

static int l_log(lua_State *L) {
  lb_proc *p = lb__proc_check(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  lb__proc_log_line(p, luaL_optstring(L, 3, ""), s, len);
  return 0;
}

static int l_close(lua_State *L) {
  proc_ud *u = luaL_checkudata(L, 1, PROC_MT);
  if (u->p) {
    lb_proc *p = u->p;
    u->p = NULL;
    lb__proc_release(p);
  }
  return 0;
}

static int l_tostring(lua_State *L) {
  proc_ud *u = luaL_checkudata(L, 1, PROC_MT);
  if (u->p) lua_pushfstring(L, "airbyte.Process(%s, pid %d)", lb__proc_name(u->p), (int)lb__proc_pid(u->p));
  else lua_pushliteral(L, "airbyte.Process(closed)");
  return 1;
}

static const luaL_Reg proc_methods[] = {
  {"read_line", l_read_line},
  {"messages", l_messages},
  {"write", l_write},
  {"close_stdin", l_close_stdin},
  {"wait", l_wait},
  {"kill", l_kill},
  {"terminate", l_terminate},
  {"pid", l_pid},
  {"running", l_running},
  {"name", l_name},
  {"exit_description", l_exit_description},
  {"timed_out", l_timed_out},
  {"tail", l_tail},
  {"stats", l_stats},
  {"log_file", l_log_file},
  {"log", l_log},
  {"close", l_close},
  {NULL, NULL}
};

static const luaL_Reg proc_meta[] = {
  {"__gc", l_close},
  {"__close", l_close},
  {"__tostring", l_tostring},
  {NULL, NULL}
};

/* parse(line) -> message table, or nil plus why it is not a message. */
static int l_parse(lua_State *L) {
  size_t len;
  const char *line = luaL_checklstring(L, 1, &len);
  lb_msg m;
  if (lb_msg_parse(line, len, &m) == LB_MSG_NONE) {
    luaL_pushfail(L);
    lua_pushstring(L, m.why ? m.why : "not an Airbyte message");
    return 2;
  }
  lb__push_message(L, &m, line, len);
  return 1;
}

/* parse_parts(line) -> type [, stream, namespace, emitted_at, data_json]
** for a RECORD; type alone for other messages; nil, why for a log line.
** The fast path of destinations that write records as they came: no
** message object, no decoding, one copy of the data text. */
static int l_parse_parts(lua_State *L) {
  size_t len;
  const char *line = luaL_checklstring(L, 1, &len);
  lb_msg m;
  long long ms;
  if (lb_msg_parse(line, len, &m) == LB_MSG_NONE) {
    luaL_pushfail(L);
    lua_pushstring(L, m.why ? m.why : "not an Airbyte message");
    return 2;
  }
  lua_pushstring(L, lb_msg_type_name(m.type));
  if (m.type != LB_MSG_RECORD) return 1;
  lb__push_jstring(L, &m.stream);
  if (m.ns.type == LB_JSTRING) lb__push_jstring(L, &m.ns);
  else lua_pushnil(L);
  if (m.emitted_at.type != LB_JNUMBER) lua_pushnil(L);
  else if (lb_jnum_to_int64(&m.emitted_at, &ms)) lua_pushinteger(L, (lua_Integer)ms);
  else lua_pushnumber(L, lb_jnum_to_double(&m.emitted_at));
  lua_pushlstring(L, m.data.p, m.data.n);
  return 5;
}

static const luaL_Reg funcs[] = {
  {"spawn", l_spawn},
  {"parse", l_parse},
  {"parse_parts", l_parse_parts},
  {NULL, NULL}
};

int luaopen_airbyte_process(lua_State *L) {
  luaL_newmetatable(L, PROC_MT);
  luaL_setfuncs(L, proc_meta, 0);
  luaL_newlib(L, proc_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lb__msg_open(L);
  luaL_newlib(L, funcs);
  return 1;
}
