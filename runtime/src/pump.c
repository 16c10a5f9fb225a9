/*
** pump.c - the hot path from a connector's stdout into the cache.
**
**   local pump = require "airbyte.pump"
**   local totals = pump.to_cache(proc, {
**     streams = { users = cache_stream, ... },   -- selected streams (others dropped)
**     on_record = function(record, stream) end,  -- optional, all streams
**     hooks = { users = fn },                    -- optional, per stream
**     on_message = function(msg, since) end,     -- STATE, TRACE, CONTROL, ...
**     on_progress = function(totals) end, progress_ms = 500,
**   })
**   local totals = pump.count(proc)   -- classify every line, store nothing
**
** With no hook, a RECORD goes from the pipe buffer to SQLite binds without
** becoming a Lua value. A hook gets the decoded data; returning nil or true
** keeps the original bytes, false drops the record, a table replaces it
** (only then is the record re-encoded). Hooks must not wait (they run under
** lua_pcall). on_message gets STATE messages with `since`, the number of
** records of that stream (all streams for GLOBAL/LEGACY) since the
** previous STATE, so the caller can check sourceStats and commit.
*/
#include <string.h>
#include "cache.h"
#include "proc.h"
#include "protocol.h"
#include "record.h"

#define PUMP_MT "airbyte.Pump"
#define YIELD_CHECK 512         /* records between budget checks */

typedef struct pump_stream {
  lb_cache_stream *cs;
  const char *name;             /* owned by the names table (stack slot) */
  size_t len;
  int has_hook;
  long long total, since_state, dropped, replaced;
  long long bytes;
} pump_stream;

typedef struct pump {
  lb_proc *p;
  int nstreams;
  int last;                     /* index of the last stream hit */
  long long records, ignored, messages, since_global, bytes;
  long long by_type[LB_MSG__COUNT];   /* every line, by message type */
  uint64_t next_progress, progress_ns;
  unsigned check;
  pump_stream s[1];             /* nstreams entries */
} pump;

/* Stack slots of to_cache, kept across yields. */
enum { S_PROC = 1, S_OPTS, S_STATE, S_HOOKS, S_ONREC, S_ONMSG, S_ONPROG, S_NAMES, S_TOP = S_NAMES };

static pump_stream *find_stream(pump *pm, const lb_jval *name) {
  int i;
  if (pm->nstreams == 0) return NULL;
  if (lb_jstr_eq(name, pm->s[pm->last].name, pm->s[pm->last].len)) return &pm->s[pm->last];
  for (i = 0; i < pm->nstreams; i++) {
    if (lb_jstr_eq(name, pm->s[i].name, pm->s[i].len)) {
      pm->last = i;
      return &pm->s[i];
    }
  }
  return NULL;
}

static void push_totals(lua_State *L, pump *pm) {
  int i;
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, pm->records); lua_setfield(L, -2, "records");
  lua_pushinteger(L, pm->bytes); lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, pm->ignored); lua_setfield(L, -2, "ignored");
  lua_pushinteger(L, pm->messages); lua_setfield(L, -2, "messages");
  lua_createtable(L, 0, pm->nstreams);
  for (i = 0; i < pm->nstreams; i++) {
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, pm->s[i].total); lua_setfield(L, -2, "records");
    lua_pushinteger(L, pm->s[i].dropped); lua_setfield(L, -2, "dropped");
    lua_pushinteger(L, pm->s[i].replaced); lua_setfield(L, -2, "replaced");
    lua_pushinteger(L, pm->s[i].bytes); lua_setfield(L, -2, "bytes");
    lua_setfield(L, -2, pm->s[i].name);
  }
  lua_setfield(L, -2, "streams");
  lua_createtable(L, 0, LB_MSG__COUNT);
  for (i = 0; i < LB_MSG__COUNT; i++) {
    if (pm->by_type[i] == 0) continue;
    lua_pushinteger(L, pm->by_type[i]);
    lua_setfield(L, -2, i == LB_MSG_NONE ? "LOG_LINE" : lb_msg_type_name((lb_msg_type)i));
  }
  lua_setfield(L, -2, "by_type");
}

/* Calls fn (at stack index fnidx) with the values above it; raises with
** `what` in front of the error. */
static void call_lua(lua_State *L, int nargs, int nres, const char *what) {
  if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL) lua_error(L);    /* an error object: pass it on as is */
    luaL_error(L, "%s: %s%s", what, msg,
               strstr(msg, "yield across") ? " (record hooks cannot wait)" : "");
  }
}

/* Runs the hook on a record; returns 1 to write *data (maybe replaced), 0
** to drop. A replacement is encoded into a string left on the stack. */
static int run_hook(lua_State *L, pump *pm, pump_stream *ps, const lb_msg *m,
                    lb_jval *data, int *pushed) {
  int keep = 1;
  (void)pm;
  if (ps->has_hook) {
    lua_getfield(L, S_HOOKS, ps->name);
  } else {
    lua_pushvalue(L, S_ONREC);
  }
  lb__json_push(L, &m->data);
  lua_pushlstring(L, ps->name, ps->len);
  call_lua(L, 2, 1, "on_record hook failed");
  if (lua_isnil(L, -1) || (lua_isboolean(L, -1) && lua_toboolean(L, -1))) {
    lua_pop(L, 1);
  } else if (lua_isboolean(L, -1)) {      /* false: drop */
    lua_pop(L, 1);
    ps->dropped++;
    keep = 0;
  } else if (lua_istable(L, -1)) {
    char err[256];
    size_t len, eoff;
    const char *text;
    if (lb__json_encode_push(L, -1, err, sizeof err) != 0)
      luaL_error(L, "on_record hook for stream '%s' returned a table that is not JSON: %s",
                 ps->name, err);
    lua_remove(L, -2);                    /* stack: ..., text */
    text = lua_tolstring(L, -1, &len);
    if (lb_jskim_validate(text, len, data, &eoff) != 0 || data->type != LB_JOBJECT)
      luaL_error(L, "on_record hook for stream '%s' returned a value that is not an object",
                 ps->name);
    ps->replaced++;
    *pushed = 1;
  } else {
    luaL_error(L, "on_record hook for stream '%s' must return nil, true, false or a table (got %s)",
               ps->name, luaL_typename(L, -1));
  }
  return keep;
}

/* The stream a STATE message is about ("" for GLOBAL / LEGACY), into buf. */
static void state_stream(const lb_msg *m, char *buf, size_t cap) {
  lb_jval typ, st, desc, name;
  buf[0] = '\0';
  if (lb_jobj_find(&m->payload, "type", 4, &typ) && typ.type == LB_JSTRING &&
      !lb_jstr_eq(&typ, "STREAM", 6))
    return;
  if (lb_jobj_find(&m->payload, "stream", 6, &st) && st.type == LB_JOBJECT &&
      lb_jobj_find(&st, "stream_descriptor", 17, &desc) && desc.type == LB_JOBJECT &&
      lb_jobj_find(&desc, "name", 4, &name) && name.type == LB_JSTRING) {
    size_t n = lb_jstr_decode(&name, buf, cap - 1);
    buf[n < cap - 1 ? n : cap - 1] = '\0';
  }
}

static void on_state(lua_State *L, pump *pm, const lb_msg *m, const char *line, size_t len) {
  char name[512];
  long long since;
  int i;
  state_stream(m, name, sizeof name);
  if (name[0]) {
    pump_stream *ps = NULL;
    for (i = 0; i < pm->nstreams; i++)
      if (strcmp(pm->s[i].name, name) == 0) ps = &pm->s[i];
    since = ps ? ps->since_state : 0;
    if (ps) ps->since_state = 0;
  } else {
    since = pm->since_global;
    pm->since_global = 0;
    for (i = 0; i < pm->nstreams; i++) pm->s[i].since_state = 0;
  }
  if (!lua_isnil(L, S_ONMSG)) {
    lua_pushvalue(L, S_ONMSG);
    lb__push_message(L, m, line, len);
    lua_pushinteger(L, since);
    call_lua(L, 2, 0, "handling a STATE message failed");
  }
}

static int to_cache_k(lua_State *L, int status, lua_KContext ctx);

static void cleanup_out(void *data) {
  ((lb_proc *)data)->out_waiter = NULL;
}

static int pump_loop(lua_State *L) {
  pump *pm = lua_touserdata(L, S_STATE);
  lb_proc *p = pm->p;
  lb_runtime *rt = lb__rt(L);
  const char *line;
  size_t len;
  lb_msg m;
  int rc;
  lua_settop(L, S_TOP);
  for (;;) {
    rc = lb_lines_next(&p->outbuf, &line, &len);
    if (rc == LB_LINES_OK) {
      p->stdout_lines++;
      pm->by_type[lb_msg_parse(line, len, &m)]++;
      switch (m.type) {
        case LB_MSG_RECORD: {
          pump_stream *ps = find_stream(pm, &m.stream);
          lb_jval data = m.data;
          long long ms = 0;
          int pushed = 0, keep = 1;
          if (ps == NULL) { pm->ignored++; break; }
          if (ps->has_hook || !lua_isnil(L, S_ONREC)) keep = run_hook(L, pm, ps, &m, &data, &pushed);
          if (keep) {
            if (m.emitted_at.type == LB_JNUMBER && !lb_jnum_to_int64(&m.emitted_at, &ms))
              ms = (long long)lb_jnum_to_double(&m.emitted_at);
            if (lb_cache_stream_write(ps->cs, &data, ms, NULL) != 0)
              luaL_error(L, "writing a record of stream '%s' to the cache failed: %s", ps->name,
                         lb_cache_errmsg(lb_cache_stream_cache(ps->cs)));
            ps->total++;
            pm->records++;
          }
          if (pushed) lua_pop(L, 1);
          ps->since_state++;
          pm->since_global++;
          ps->bytes += (long long)m.data.n;
          pm->bytes += (long long)m.data.n;
          break;
        }
        case LB_MSG_NONE:
          lb__proc_log_line(p, "", line, len);
          p->log_lines++;
          break;
        case LB_MSG_LOG:
          lb__proc_log_message(p, &m);
          break;
        case LB_MSG_STATE:
          pm->messages++;
          on_state(L, pm, &m, line, len);
          break;
        default:
          pm->messages++;
          if (!lua_isnil(L, S_ONMSG)) {
            lua_pushvalue(L, S_ONMSG);
            lb__push_message(L, &m, line, len);
            call_lua(L, 1, 0, "handling a connector message failed");
          }
          break;
      }
      if (++pm->check % YIELD_CHECK == 0) {
        uint64_t now;
        if (pm->progress_ns && !lua_isnil(L, S_ONPROG) &&
            (now = uv_hrtime()) >= pm->next_progress) {
          pm->next_progress = now + pm->progress_ns;
          lua_pushvalue(L, S_ONPROG);
          push_totals(L, pm);
          call_lua(L, 1, 0, "on_progress failed");
        }
        if (lb__budget_spent(rt) && rt->current && lua_isyieldable(L)) {
          lb__wake(rt->current);             /* run again at the next step */
          return lb__wait(L, NULL, NULL, 0, to_cache_k);
        }
      }
      continue;
    }
    if (rc == LB_LINES_TOOLONG) {
      p->too_long_lines++;
      return luaL_error(L, "connector '%s' printed a line longer than the limit of %I bytes "
                           "(max_line)", p->name, (lua_Integer)p->outbuf.max_line);
    }
    if (p->timed_out)
      return luaL_error(L, "connector '%s' timed out: %s", p->name,
                        p->timed_out == LB_TIMEOUT_IDLE ? "no output for too long"
                                                        : "still running past its time limit");
    if (p->out_error)
      return luaL_error(L, "reading the output of connector '%s' failed: %s", p->name,
                        uv_strerror(p->out_error));
    if (p->out_eof) {
      push_totals(L, pm);
      return 1;
    }
    p->out_waiter = lb__current(L, "pump.to_cache");
    lb__proc_want_output(p);
    return lb__wait(L, cleanup_out, p, 0, to_cache_k);
  }
}

static int to_cache_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return pump_loop(L);
}

static int l_to_cache(lua_State *L) {
  lb_proc *p = lb__proc_check(L, 1);
  pump *pm;
  int n = 0, i = 0;
  lua_Number progress_ms;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_getfield(L, 2, "streams");
  if (!lua_istable(L, -1)) return luaL_error(L, "to_cache: 'streams' must be a table");
  lua_pushnil(L);
  while (lua_next(L, -2)) { n++; lua_pop(L, 1); }
  pm = lua_newuserdatauv(L, sizeof *pm + sizeof(pump_stream) * (size_t)(n > 0 ? n : 1), 0);
  memset(pm, 0, sizeof *pm);
  pm->p = p;
  lua_insert(L, S_STATE);                  /* stack: proc, opts, state, streams */
  lua_newtable(L);                         /* names: keeps stream name strings */
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    pump_stream *ps = &pm->s[i];
    if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "to_cache: stream names must be strings");
    memset(ps, 0, sizeof *ps);
    ps->cs = lb__cache_stream_check(L, -1);
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawseti(L, 5, i + 1);
    ps->name = lua_tolstring(L, -1, &ps->len);
    i++;
  }
  pm->nstreams = n;
  lua_remove(L, 4);                        /* stack: proc, opts, state, names */
  lua_getfield(L, 2, "hooks");
  if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_newtable(L); }
  luaL_checktype(L, -1, LUA_TTABLE);
  for (i = 0; i < n; i++) {
    lua_getfield(L, -1, pm->s[i].name);
    pm->s[i].has_hook = lua_isfunction(L, -1);
    lua_pop(L, 1);
  }
  lua_insert(L, S_HOOKS);                  /* stack: proc, opts, state, hooks, names */
  lua_getfield(L, 2, "on_record");
  lua_insert(L, S_ONREC);
  lua_getfield(L, 2, "on_message");
  lua_insert(L, S_ONMSG);
  lua_getfield(L, 2, "on_progress");
  lua_insert(L, S_ONPROG);                 /* names now at S_NAMES */
  lua_getfield(L, 2, "progress_ms");
  progress_ms = luaL_optnumber(L, -1, 500);
  lua_pop(L, 1);
  pm->progress_ns = (uint64_t)(progress_ms * 1e6);
  pm->next_progress = uv_hrtime() + pm->progress_ns;
  return pump_loop(L);
}

/* count(proc) -> totals: reads a connector's output to the end, classifying
** every line (totals.by_type), storing nothing. For benchmarks and for
** checking what a connector prints. */
static int l_count(lua_State *L) {
  lb__proc_check(L, 1);
  lua_settop(L, 1);
  lua_createtable(L, 0, 1);
  lua_newtable(L);
  lua_setfield(L, -2, "streams");
  return l_to_cache(L);
}

static const luaL_Reg funcs[] = {
  {"to_cache", l_to_cache},
  {"count", l_count},
  {NULL, NULL}
};

int luaopen_airbyte_pump(lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
