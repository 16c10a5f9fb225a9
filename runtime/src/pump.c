/*
** pump.c - the hot paths: a connector's stdout into the cache, or straight
** into a destination's stdin.
**
**   local pump = require "airbyte.pump"
**   local totals = pump.to_cache(src, {
**     streams = { users = cache_stream, ... },   -- selected streams (others dropped)
**     on_record = function(record, stream) end,  -- optional, all streams
**     hooks = { users = fn },                    -- optional, per stream
**     on_message = function(msg, since) end,     -- STATE, TRACE, CONTROL, ...
**     on_progress = function(totals) end, progress_ms = 500,
**   })
**   local totals = pump.to_process(src, dst, {
**     streams = { users = true, ... }, on_record =, hooks =, on_message =, on_progress = })
**   local totals = pump.count(src)             -- classify every line, store nothing
**   local sent = pump.from_cache(db, dst, { stream =, table =, after = raw_id })
**
** With no hook, a RECORD goes from the pipe buffer to SQLite binds, or to
** the destination's stdin byte for byte, without becoming a Lua value. A
** hook gets the decoded data; returning nil or true keeps the original
** bytes, false drops the record, a table replaces it (only then is the
** record re-encoded). Hooks must not wait (they run under lua_pcall).
** on_message gets STATE messages with `since`, the number of records of
** that stream (of all streams for GLOBAL/LEGACY) since the previous STATE,
** so the caller can check sourceStats and commit. to_process forwards
** RECORD, STATE and stream-status TRACE lines in order, and writes with
** backpressure: a full destination pipe pauses the source.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include "cache.h"
#include "proc.h"
#include "protocol.h"
#include "record.h"

#define PUMP_MT "airbyte.Pump"
#define YIELD_CHECK 512              /* records between budget checks */
#define BUDGET_CHECK 32              /* ... while a step has a budget (hooks: every record) */
#define WBUF_SIZE (120 * 1024)       /* batched writes; under malloc's mmap threshold */

typedef struct pump_stream {
  lb_cache_stream *cs;          /* to_cache only */
  const char *name;             /* owned by the names table (stack slot) */
  size_t len;
  int has_hook;
  long long total, since_state, dropped, replaced, bytes;
} pump_stream;

typedef struct pump {
  lb_proc *p;                   /* the source */
  lb_proc *dst;                 /* to_process: the destination, else NULL */
  char *wbuf;                   /* to_process: lines waiting to be written */
  size_t wlen;
  int nstreams;
  int last;                     /* index of the last stream hit */
  long long records, ignored, messages, since_global, bytes;
  long long by_type[LB_MSG__COUNT];
  uint64_t next_progress, progress_ns;
  unsigned check;
  lb_cache *cache;              /* to_cache: the cache of the streams */
  pump_stream s[1];             /* nstreams entries */
} pump;

/* Stack slots, kept across yields. */
enum { S_PROC = 1, S_OPTS, S_STATE, S_HOOKS, S_ONREC, S_ONMSG, S_ONPROG, S_NAMES, S_TOP = S_NAMES };

static int pump_gc(lua_State *L) {
  pump *pm = lua_touserdata(L, 1);
  free(pm->wbuf);
  pm->wbuf = NULL;
  return 0;
}

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

/* Calls the function below nargs values; raises with `what` in front. */
static void call_lua(lua_State *L, int nargs, int nres, const char *what) {
  if (lua_pcall(L, nargs, nres, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL) lua_error(L);    /* an error object: pass it on as is */
    luaL_error(L, "%s: %s%s", what, msg,
               strstr(msg, "yield across") ? " (record hooks cannot wait)" : "");
  }
}

/* Runs the hook on a record; returns 1 to write *data (maybe replaced), 0
** to drop. A replacement's JSON text is left on the stack (*pushed = 1). */
static int run_hook(lua_State *L, pump_stream *ps, const lb_msg *m, lb_jval *data, int *pushed) {
  if (ps->has_hook) lua_getfield(L, S_HOOKS, ps->name);
  else lua_pushvalue(L, S_ONREC);
  lb__json_push(L, &m->data);
  lua_pushlstring(L, ps->name, ps->len);
  call_lua(L, 2, 1, "on_record hook failed");
  if (lua_isnil(L, -1) || (lua_isboolean(L, -1) && lua_toboolean(L, -1))) {
    lua_pop(L, 1);
    return 1;
  }
  if (lua_isboolean(L, -1)) {             /* false: drop */
    lua_pop(L, 1);
    ps->dropped++;
    return 0;
  }
  if (lua_istable(L, -1)) {
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
    return 1;
  }
  return luaL_error(L, "on_record hook for stream '%s' must return nil, true, false or a "
                       "table (got %s)", ps->name, luaL_typename(L, -1));
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

/* --- to_process: batched writes to the destination ------------------------ */

/* Writes the batch; 0, or a libuv error (the destination went away). The
** batch is always taken whole: the caller waited for room first. */
static int flush(pump *pm) {
  ssize_t n;
  if (pm->wlen == 0) return 0;
  n = lb__proc_write(pm->dst, pm->wbuf, pm->wlen);
  if (n < 0) return (int)n;
  pm->wlen = 0;
  return 0;
}

static int forward(pump *pm, const char *a, size_t alen, const char *b, size_t blen,
                   const char *c, size_t clen) {
  size_t need = alen + blen + clen + 1;
  int rc;
  if (pm->wlen + need > WBUF_SIZE && (rc = flush(pm)) != 0) return rc;
  if (need > WBUF_SIZE) {                 /* a huge line: write it as it is */
    if ((rc = (int)lb__proc_write(pm->dst, a, alen)) < 0) return rc;
    if (blen && (rc = (int)lb__proc_write(pm->dst, b, blen)) < 0) return rc;
    if (clen && (rc = (int)lb__proc_write(pm->dst, c, clen)) < 0) return rc;
    return (int)lb__proc_write(pm->dst, "\n", 1) < 0 ? -1 : 0;
  }
  memcpy(pm->wbuf + pm->wlen, a, alen); pm->wlen += alen;
  if (blen) { memcpy(pm->wbuf + pm->wlen, b, blen); pm->wlen += blen; }
  if (clen) { memcpy(pm->wbuf + pm->wlen, c, clen); pm->wlen += clen; }
  pm->wbuf[pm->wlen++] = '\n';
  return 0;
}

static int forward_line(pump *pm, const char *line, size_t len) {
  return forward(pm, line, len, NULL, 0, NULL, 0);
}

static void raise_write_error(lua_State *L, pump *pm, int rc) {
  luaL_error(L, "writing to destination '%s' failed: %s", pm->dst->name,
             rc == UV_EPIPE ? "it stopped reading its input (exited?)" : uv_strerror(rc));
}

/* --- the loop ------------------------------------------------------------ */

static int pump_k(lua_State *L, int status, lua_KContext ctx);

static void cleanup_out(void *data) {
  ((lb_proc *)data)->out_waiter = NULL;
}

static void cleanup_write(void *data) {
  ((lb_proc *)data)->write_waiter = NULL;
}

static void handle_record(lua_State *L, pump *pm, const lb_msg *m, const char *line, size_t len) {
  pump_stream *ps = find_stream(pm, &m->stream);
  lb_jval data = m->data;
  long long ms = 0;
  int pushed = 0, keep = 1, rc;
  if (ps == NULL) { pm->ignored++; return; }
  if (ps->has_hook || !lua_isnil(L, S_ONREC)) keep = run_hook(L, ps, m, &data, &pushed);
  if (keep) {
    if (pm->dst) {
      if (pushed)    /* the line with its data replaced, everything else as printed */
        rc = forward(pm, line, (size_t)(m->data.p - line), data.p, data.n,
                     m->data.p + m->data.n, (size_t)(line + len - (m->data.p + m->data.n)));
      else
        rc = forward_line(pm, line, len);
      if (rc != 0) raise_write_error(L, pm, rc);
    } else {
      if (m->emitted_at.type == LB_JNUMBER && !lb_jnum_to_int64(&m->emitted_at, &ms))
        ms = (long long)lb_jnum_to_double(&m->emitted_at);
      if (lb_cache_stream_write(ps->cs, &data, ms, NULL) != 0)
        luaL_error(L, "writing a record of stream '%s' to the cache failed: %s", ps->name,
                   lb_cache_errmsg(lb_cache_stream_cache(ps->cs)));
    }
    ps->total++;
    pm->records++;
  }
  if (pushed) lua_pop(L, 1);
  ps->since_state++;
  pm->since_global++;
  ps->bytes += (long long)m->data.n;
  pm->bytes += (long long)m->data.n;
}

static int is_stream_status(const lb_msg *m) {
  lb_jval t;
  return lb_jobj_find(&m->payload, "type", 4, &t) && lb_jstr_eq(&t, "STREAM_STATUS", 13);
}

/* Does Lua run per record (a stream hook or on_record)? Then the budget
** is checked after every record: a hook cannot be paused inside. */
static int hooked(lua_State *L, const pump *pm) {
  int i;
  if (!lua_isnil(L, S_ONREC)) return 1;
  for (i = 0; i < pm->nstreams; i++)
    if (pm->s[i].has_hook) return 1;
  return 0;
}

static int pump_loop(lua_State *L) {
  pump *pm = lua_touserdata(L, S_STATE);
  lb_proc *p = pm->p;
  lb_runtime *rt = lb__rt(L);
  const char *line;
  size_t len;
  lb_msg m;
  lb_lines_pos pos;
  int rc;
  lua_settop(L, S_TOP);
  for (;;) {
    if (pm->dst && lb__proc_write_blocked(pm->dst)) {   /* backpressure */
      if (pm->dst->write_error) raise_write_error(L, pm, pm->dst->write_error);
      pm->dst->write_waiter = lb__current(L, "pump.to_process");
      return lb__wait(L, cleanup_write, pm->dst, 0, pump_k);
    }
    pos = lb_lines_tell(&p->outbuf);
    rc = lb_lines_next(&p->outbuf, &line, &len);
    if (rc == LB_LINES_OK) {
      int type = lb_msg_parse(line, len, &m);
      /* A step with a budget never waits for the cache's writer thread
      ** past its deadline: the line goes back and the task resumes at the
      ** next step. A record waits for room before its hook runs (a hook
      ** runs once), a STATE for the rows before it. */
      if (rt->deadline && pm->cache && rt->current && lua_isyieldable(L) &&
          ((type == LB_MSG_RECORD && !lb_cache_wait_room(pm->cache, m.data.n, rt->deadline)) ||
           (type == LB_MSG_STATE && !lb_cache_wait_idle(pm->cache, rt->deadline)))) {
        lb_lines_seek(&p->outbuf, pos);
        lb__wake(rt->current);
        return lb__wait(L, NULL, NULL, 0, pump_k);
      }
      p->stdout_lines++;
      pm->by_type[type]++;
      switch (m.type) {
        case LB_MSG_RECORD:
          handle_record(L, pm, &m, line, len);
          break;
        case LB_MSG_NONE:
          lb__proc_log_line(p, "", line, len);
          p->log_lines++;
          break;
        case LB_MSG_LOG:
          lb__proc_log_message(p, &m);
          break;
        case LB_MSG_STATE:
          pm->messages++;
          if (pm->dst && (rc = forward_line(pm, line, len)) != 0) raise_write_error(L, pm, rc);
          on_state(L, pm, &m, line, len);
          break;
        default:
          pm->messages++;
          if (pm->dst && m.type == LB_MSG_TRACE && is_stream_status(&m) &&
              (rc = forward_line(pm, line, len)) != 0)
            raise_write_error(L, pm, rc);
          if (!lua_isnil(L, S_ONMSG)) {
            lua_pushvalue(L, S_ONMSG);
            lb__push_message(L, &m, line, len);
            call_lua(L, 1, 0, "handling a connector message failed");
          }
          break;
      }
      if (++pm->check % (!rt->deadline ? YIELD_CHECK
                         : hooked(L, pm) ? 1 : BUDGET_CHECK) == 0) {
        uint64_t now;
        if (pm->progress_ns && !lua_isnil(L, S_ONPROG) &&
            (now = uv_hrtime()) >= pm->next_progress) {
          pm->next_progress = now + pm->progress_ns;
          lua_pushvalue(L, S_ONPROG);
          push_totals(L, pm);
          call_lua(L, 1, 0, "on_progress failed");
        }
        if (lb__budget_spent(rt) && rt->current && lua_isyieldable(L)) {
          if (pm->dst && (rc = flush(pm)) != 0) raise_write_error(L, pm, rc);
          lb__wake(rt->current);             /* run again at the next step */
          return lb__wait(L, NULL, NULL, 0, pump_k);
        }
      }
      continue;
    }
    /* nothing buffered: send what we have before waiting for more */
    if (pm->dst && (rc = flush(pm)) != 0) raise_write_error(L, pm, rc);
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
      if (rt->deadline && pm->cache && rt->current && lua_isyieldable(L) &&
          !lb_cache_wait_idle(pm->cache, rt->deadline)) {   /* the finish must not wait */
        lb__wake(rt->current);
        return lb__wait(L, NULL, NULL, 0, pump_k);
      }
      push_totals(L, pm);
      return 1;
    }
    p->out_waiter = lb__current(L, "pump");
    lb__proc_want_output(p);
    return lb__wait(L, cleanup_out, p, 0, pump_k);
  }
}

static int pump_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return pump_loop(L);
}

/* Sets up the stack slots; `cache` says whether streams map to cache
** streams (to_cache) or to anything true (to_process). */
static int start(lua_State *L, lb_proc *dst, int cache) {
  lb_proc *p = lb__proc_check(L, 1);
  pump *pm;
  int n = 0, i = 0;
  lua_Number progress_ms;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_getfield(L, 2, "streams");
  if (!lua_istable(L, -1)) return luaL_error(L, "pump: 'streams' must be a table");
  lua_pushnil(L);
  while (lua_next(L, -2)) { n++; lua_pop(L, 1); }
  pm = lua_newuserdatauv(L, sizeof *pm + sizeof(pump_stream) * (size_t)(n > 0 ? n : 1), 0);
  memset(pm, 0, sizeof *pm);
  pm->p = p;
  pm->dst = dst;
  if (luaL_newmetatable(L, PUMP_MT)) {
    lua_pushcfunction(L, pump_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (dst && (pm->wbuf = malloc(WBUF_SIZE)) == NULL) return luaL_error(L, "out of memory");
  lua_insert(L, S_STATE);                  /* stack: proc, opts, state, streams */
  lua_newtable(L);                         /* names: keeps stream name strings */
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    pump_stream *ps = &pm->s[i];
    if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "pump: stream names must be strings");
    memset(ps, 0, sizeof *ps);
    if (cache) {
      ps->cs = lb__cache_stream_check(L, -1);
      pm->cache = lb_cache_stream_cache(ps->cs);
    }
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
  lua_insert(L, S_HOOKS);
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

static int l_to_cache(lua_State *L) {
  return start(L, NULL, 1);
}

static int l_to_process(lua_State *L) {
  lb_proc *dst = lb__proc_check(L, 2);
  if (!dst->has_stdin) return luaL_error(L, "to_process: the destination was started without stdin");
  lua_remove(L, 2);                        /* stack: src, opts */
  return start(L, dst, 0);
}

static int l_count(lua_State *L) {
  lb__proc_check(L, 1);
  lua_settop(L, 1);
  lua_createtable(L, 0, 1);
  lua_newtable(L);
  lua_setfield(L, -2, "streams");
  return start(L, NULL, 0);
}


/* --- from_cache: cache rows as RECORD lines ------------------------------- */

/* feed state: a statement over a stream's table and the write batch */
typedef struct feed {
  sqlite3_stmt *stmt;
  lb_proc *dst;
  char *buf;
  size_t len, cap;
  const char *stream;            /* JSON-encoded stream name, from a stack slot */
  size_t stream_len;
  int ncols, col_raw_id, col_extracted;
  unsigned char kind[256];       /* per column: what its declared type says */
  char *keys;                    /* per column: its JSON key and ':' ("\"id\":"), back to back */
  size_t key_off[257];
  long long records, bytes;
  char last_raw_id[64];
  uint64_t next_progress, progress_ns;
} feed;

enum { K_PLAIN = 0, K_JSON, K_BOOL, K_BIGINT };
enum { F_DB = 1, F_DST, F_OPTS, F_STATE, F_STREAM, F_ONPROG, F_TOP = F_ONPROG };

static int feed_gc(lua_State *L) {
  feed *f = lua_touserdata(L, 1);
  if (f->stmt) sqlite3_finalize(f->stmt);
  f->stmt = NULL;
  free(f->buf);
  f->buf = NULL;
  free(f->keys);
  f->keys = NULL;
  return 0;
}

static int feed_reserve(feed *f, size_t more) {
  if (f->len + more <= f->cap) return 0;
  {
    size_t ncap = f->cap ? f->cap : WBUF_SIZE;
    char *nb;
    while (ncap < f->len + more) ncap *= 2;
    if ((nb = realloc(f->buf, ncap)) == NULL) return -1;
    f->buf = nb;
    f->cap = ncap;
  }
  return 0;
}

static void feed_add(feed *f, const char *s, size_t n) {
  memcpy(f->buf + f->len, s, n);
  f->len += n;
}

/* JSON string of s[0..n) into the buffer (room for 6n+2 reserved). */
static void feed_add_string(feed *f, const unsigned char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i, run = 0;
  char *o = f->buf + f->len;
  *o++ = '"';
  for (i = 0; i < n; i++) {
    unsigned char c = s[i];
    if (c >= 0x20 && c != '"' && c != '\\') { run++; continue; }
    memcpy(o, s + i - run, run); o += run; run = 0;
    *o++ = '\\';
    switch (c) {
      case '"': *o++ = '"'; break;
      case '\\': *o++ = '\\'; break;
      case '\n': *o++ = 'n'; break;
      case '\r': *o++ = 'r'; break;
      case '\t': *o++ = 't'; break;
      default: *o++ = 'u'; *o++ = '0'; *o++ = '0'; *o++ = hex[c >> 4]; *o++ = hex[c & 15];
    }
  }
  memcpy(o, s + n - run, run); o += run;
  *o++ = '"';
  f->len = (size_t)(o - f->buf);
}

/* Decimal text of v at out (room for 21 bytes); returns its length.
** snprintf's format parsing showed in profiles of the cache feed. */
static size_t itoa64(long long v, char *out) {
  char tmp[24];
  size_t n = 0, i;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  do { tmp[n++] = (char)('0' + u % 10); u /= 10; } while (u);
  if (v < 0) tmp[n++] = '-';
  for (i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
  return n;
}

static long long days_from_civil(long long y, int m, int d) {
  long long era, yoe, doy, doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int digits(const unsigned char *s, int n) {
  int v = 0, i;
  for (i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* "YYYY-MM-DDTHH:MM:SS[.mmm][+00:00]", as the cache writes it -> epoch ms
** (0 when unreadable) */
static long long parse_ts(const unsigned char *s, int n) {
  int y, mo, d, h, mi, sec, ms = 0;
  if (n < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':') return 0;
  y = digits(s, 4); mo = digits(s + 5, 2); d = digits(s + 8, 2);
  h = digits(s + 11, 2); mi = digits(s + 14, 2); sec = digits(s + 17, 2);
  if (y < 0 || mo < 1 || d < 1 || h < 0 || mi < 0 || sec < 0) return 0;
  if (n >= 23 && s[19] == '.' && (ms = digits(s + 20, 3)) < 0) ms = 0;
  return (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000 + ms;
}

static int is_digits(const unsigned char *s, int n) {
  int i = (n > 0 && s[0] == '-') ? 1 : 0;
  if (i >= n) return 0;
  for (; i < n; i++) if (s[i] < '0' || s[i] > '9') return 0;
  return 1;
}

/* One row as a RECORD line in the buffer; -1 on out of memory. */
static int feed_row(feed *f) {
  int i;
  size_t start = f->len;
  long long ms = 0;
  if (feed_reserve(f, 64 + f->stream_len) != 0) return -1;
  feed_add(f, "{\"type\":\"RECORD\",\"record\":{\"stream\":", 36);
  feed_add(f, f->stream, f->stream_len);
  feed_add(f, ",\"data\":{", 9);
  for (i = 0; i < f->ncols; i++) {
    int t = sqlite3_column_type(f->stmt, i), n = 0;
    const unsigned char *txt = NULL;
    size_t klen = f->key_off[i + 1] - f->key_off[i];
    if (t == SQLITE_TEXT || t == SQLITE_BLOB) {
      txt = sqlite3_column_text(f->stmt, i);
      n = sqlite3_column_bytes(f->stmt, i);
    }
    if (feed_reserve(f, klen + 40 + 6 * (size_t)n) != 0) return -1;
    feed_add(f, f->keys + f->key_off[i] + (i == 0), klen - (i == 0));   /* the ',' */
    switch (t) {
      case SQLITE_NULL:
        feed_add(f, "null", 4);
        break;
      case SQLITE_INTEGER: {
        long long v = sqlite3_column_int64(f->stmt, i);
        if (f->kind[i & 255] == K_BOOL && (v == 0 || v == 1)) feed_add(f, v ? "true" : "false", v ? 4 : 5);
        else f->len += itoa64(v, f->buf + f->len);
        break;
      }
      case SQLITE_FLOAT: {
        double v = sqlite3_column_double(f->stmt, i);
        int k = snprintf(f->buf + f->len, 32, "%.17g", v);
        if (k > 0 && strspn(f->buf + f->len, "-0123456789") == (size_t)k) {
          memcpy(f->buf + f->len + k, ".0", 2);   /* a float stays a float */
          k += 2;
        }
        f->len += (size_t)k;
        break;
      }
      default:
        if (i == f->col_extracted) ms = parse_ts(txt, n);
        if (i == f->col_raw_id && n < (int)sizeof f->last_raw_id &&
            strcmp((const char *)txt, f->last_raw_id) > 0) {   /* UUIDv7 text sorts by time */
          memcpy(f->last_raw_id, txt, (size_t)n);
          f->last_raw_id[n] = '\0';
        }
        if (f->kind[i & 255] == K_JSON && n > 0) feed_add(f, (const char *)txt, (size_t)n);
        else if (f->kind[i & 255] == K_BIGINT && is_digits(txt, n)) feed_add(f, (const char *)txt, (size_t)n);
        else feed_add_string(f, txt, (size_t)n);
        break;
    }
  }
  if (feed_reserve(f, 64) != 0) return -1;
  feed_add(f, "},\"emitted_at\":", 15);
  f->len += itoa64(ms, f->buf + f->len);
  feed_add(f, "}}\n", 3);
  f->bytes += (long long)(f->len - start);
  f->records++;
  return 0;
}

/* The ",\"name\":" text of every column, built once. */
static int feed_keys(feed *f) {
  size_t total = 0;
  int i;
  for (i = 0; i < f->ncols; i++) total += 6 * strlen(sqlite3_column_name(f->stmt, i)) + 4;
  if ((f->keys = malloc(total + 1)) == NULL) return -1;
  {
    feed tmp;   /* reuse the string escaper on the keys buffer */
    memset(&tmp, 0, sizeof tmp);
    tmp.buf = f->keys;
    tmp.cap = total + 1;
    for (i = 0; i < f->ncols; i++) {
      const char *name = sqlite3_column_name(f->stmt, i);
      f->key_off[i] = tmp.len;
      tmp.buf[tmp.len++] = ',';
      feed_add_string(&tmp, (const unsigned char *)name, strlen(name));
      tmp.buf[tmp.len++] = ':';
    }
    f->key_off[f->ncols] = tmp.len;
  }
  return 0;
}

static int feed_k(lua_State *L, int status, lua_KContext ctx);

static int feed_loop(lua_State *L) {
  feed *f = lua_touserdata(L, F_STATE);
  lb_runtime *rt = lb__rt(L);
  int rc;
  unsigned n = 0;
  lua_settop(L, F_TOP);
  for (;;) {
    if (lb__proc_write_blocked(f->dst)) {
      if (f->dst->write_error) break;
      f->dst->write_waiter = lb__current(L, "pump.from_cache");
      return lb__wait(L, cleanup_write, f->dst, 0, feed_k);
    }
    if (f->len >= WBUF_SIZE) {
      ssize_t w = lb__proc_write(f->dst, f->buf, f->len);
      if (w < 0) break;
      f->len = 0;
      continue;
    }
    rc = sqlite3_step(f->stmt);
    if (rc == SQLITE_ROW) {
      if (feed_row(f) != 0) return luaL_error(L, "out of memory");
      if (++n % (rt->deadline ? BUDGET_CHECK : YIELD_CHECK) == 0) {
        uint64_t now;
        if (f->progress_ns && !lua_isnil(L, F_ONPROG) && (now = uv_hrtime()) >= f->next_progress) {
          f->next_progress = now + f->progress_ns;
          lua_pushvalue(L, F_ONPROG);
          lua_createtable(L, 0, 2);
          lua_pushinteger(L, f->records); lua_setfield(L, -2, "records");
          lua_pushinteger(L, f->bytes); lua_setfield(L, -2, "bytes");
          call_lua(L, 1, 0, "on_progress failed");
        }
        if (lb__budget_spent(rt) && rt->current && lua_isyieldable(L)) {
          lb__wake(rt->current);
          return lb__wait(L, NULL, NULL, 0, feed_k);
        }
      }
      continue;
    }
    if (rc != SQLITE_DONE)
      return luaL_error(L, "reading the cache failed: %s", sqlite3_errmsg(sqlite3_db_handle(f->stmt)));
    if (f->len && lb__proc_write(f->dst, f->buf, f->len) < 0) break;
    f->len = 0;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, f->records); lua_setfield(L, -2, "records");
    lua_pushinteger(L, f->bytes); lua_setfield(L, -2, "bytes");
    if (f->last_raw_id[0]) { lua_pushstring(L, f->last_raw_id); lua_setfield(L, -2, "last_raw_id"); }
    return 1;
  }
  return luaL_error(L, "writing to destination '%s' failed: %s", f->dst->name,
                    f->dst->write_error == UV_EPIPE ? "it stopped reading its input (exited?)"
                                                    : uv_strerror(f->dst->write_error));
}

static int feed_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return feed_loop(L);
}

/* from_cache(db, dst, {stream =, table =, after = raw_id, on_progress =})
** -> {records =, bytes =, last_raw_id =}: the rows of a cache table (those
** whose _airbyte_raw_id is above `after`, or all) as RECORD lines, in table
** order; last_raw_id is the highest id sent. */
static int l_from_cache(lua_State *L) {
  lb_cache *c = lb__cache_check(L, 1);
  lb_proc *dst = lb__proc_check(L, 2);
  const char *stream, *table, *after = NULL;
  luaL_Buffer sql;
  feed *f;
  int i, rc;
  char err[256];
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lua_getfield(L, 3, "stream");
  stream = luaL_checkstring(L, -1);
  lua_getfield(L, 3, "table");
  table = luaL_checkstring(L, -1);
  lua_getfield(L, 3, "after");
  if (!lua_isnil(L, -1)) after = luaL_checkstring(L, -1);
  if (!dst->has_stdin) return luaL_error(L, "from_cache: the destination was started without stdin");
  luaL_buffinit(L, &sql);
  luaL_addstring(&sql, "SELECT * FROM \"");
  for (; *table; table++) {
    if (*table == '"') luaL_addchar(&sql, '"');
    luaL_addchar(&sql, *table);
  }
  /* No ORDER BY: sorting a large table costs more than the whole feed
  ** (there is no index on the raw id, which would slow every insert). The
  ** highest id sent is tracked as rows go by instead. */
  luaL_addstring(&sql, after ? "\" WHERE _airbyte_raw_id > ?1" : "\"");
  luaL_pushresult(&sql);                                /* stack: db, dst, opts, s, t, a, sql */
  f = lua_newuserdatauv(L, sizeof *f, 0);
  memset(f, 0, sizeof *f);
  f->dst = dst;
  f->col_raw_id = f->col_extracted = -1;
  if (luaL_newmetatable(L, "airbyte.Feed")) {
    lua_pushcfunction(L, feed_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  rc = sqlite3_prepare_v2(lb_cache_db(c), lua_tostring(L, -2), -1, &f->stmt, NULL);
  if (rc != SQLITE_OK)
    return luaL_error(L, "reading stream '%s' from the cache failed: %s", stream,
                      sqlite3_errmsg(lb_cache_db(c)));
  if (after) sqlite3_bind_text(f->stmt, 1, after, -1, SQLITE_TRANSIENT);
  f->ncols = sqlite3_column_count(f->stmt);
  if (f->ncols > 256) return luaL_error(L, "stream '%s' has more than 256 columns", stream);
  if (feed_keys(f) != 0) return luaL_error(L, "out of memory");
  for (i = 0; i < f->ncols; i++) {
    const char *name = sqlite3_column_name(f->stmt, i), *decl = sqlite3_column_decltype(f->stmt, i);
    if (strcmp(name, "_airbyte_raw_id") == 0) f->col_raw_id = i;
    if (strcmp(name, "_airbyte_extracted_at") == 0) f->col_extracted = i;
    if (i < 256 && decl) {
      if (strcmp(decl, "JSON") == 0) f->kind[i] = K_JSON;
      else if (strcmp(decl, "BOOLEAN") == 0) f->kind[i] = K_BOOL;
      else if (strcmp(decl, "BIGINT") == 0) f->kind[i] = K_BIGINT;
    }
  }
  /* the stream name, JSON-encoded once */
  lua_pushstring(L, stream);
  if (lb__json_encode_push(L, -1, err, sizeof err) != 0) return luaL_error(L, "bad stream name: %s", err);
  lua_remove(L, -2);
  f->stream = lua_tolstring(L, -1, &f->stream_len);
  lua_getfield(L, 3, "on_progress");
  lua_getfield(L, 3, "progress_ms");
  f->progress_ns = (uint64_t)(luaL_optnumber(L, -1, 500) * 1e6);
  f->next_progress = uv_hrtime() + f->progress_ns;
  lua_pop(L, 1);                      /* stack: db, dst, opts, s, t, a, sql, feed, name, onprog */
  lua_replace(L, 6);                  /* onprog -> 6 */
  lua_replace(L, 5);                  /* name -> 5 */
  lua_replace(L, 4);                  /* feed -> 4 */
  lua_settop(L, F_TOP);
  return feed_loop(L);
}

static const luaL_Reg funcs[] = {
  {"to_cache", l_to_cache},
  {"from_cache", l_from_cache},
  {"to_process", l_to_process},
  {"count", l_count},
  {NULL, NULL}
};

int luaopen_airbyte_pump(lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
