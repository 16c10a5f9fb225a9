/*
** pump.c - the hot path's loop: a connector's stdout into the cache, or
** straight into a destination's stdin; and the airbyte.pump module, whose
** record checks are in pump_validate.c, from_cache in pump_feed.c and the
** stream prefix in pump_rename.c.
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
**     streams = { users = true, ... }, on_record =, hooks =, on_message =, on_progress =,
**     stream_prefix = "mysrc__" })          -- optional: renames streams on the way
**   local line = pump.prefix_streams(line, prefix)     -- one message, renamed
**   local line = pump.unprefix_streams(line, prefix)   -- and back (destination echoes)
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
** so the caller can check sourceStats and commit, and the state's key
** (type, name, namespace: see on_state). to_process forwards
** RECORD, STATE and stream-status TRACE lines in order, and writes with
** backpressure: a full destination pipe pauses the source. With a
** stream_prefix (an Airbyte connection's stream prefix) every stream name
** the forwarded messages carry gets the prefix (lb_msg_stream_names says
** where they are); selection, hooks and on_message see the source's names.
** Records dropped as invalid (not valid JSON, not a valid RECORD, or of a
** stream not in `streams`) are counted in totals.invalid[stream][reason]
** (stream "" when the line broke before its stream) and logged with why.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pump.h"
#include "record.h"

#define PUMP_MT "airbyte.Pump"
static int pump_gc(lua_State *L) {
  pump *pm = lua_touserdata(L, 1);
  free(pm->wbuf);
  pm->wbuf = NULL;
  free(pm->prefix);
  pm->prefix = NULL;
  return 0;
}

/* A stream is (namespace, name): a record goes to the stream of its name
** and namespace; failing that, to one of its name where either side has no
** namespace (sources that leave it out of their records). */
static int ns_exact(const pump_stream *ps, const lb_jval *ns) {
  if (ns->type != LB_JSTRING) return ps->nslen == 0;
  return lb_jstr_eq(ns, ps->ns, ps->nslen);
}

static pump_stream *find_stream(pump *pm, const lb_msg *m) {
  int i, loose = -1;
  pump_stream *ps;
  if (pm->nstreams == 0) return NULL;
  ps = &pm->s[pm->last];
  if (lb_jstr_eq(&m->stream, ps->name, ps->len) && ns_exact(ps, &m->ns)) return ps;
  for (i = 0; i < pm->nstreams; i++) {
    ps = &pm->s[i];
    if (!lb_jstr_eq(&m->stream, ps->name, ps->len)) continue;
    if (ns_exact(ps, &m->ns)) { pm->last = i; return ps; }
    if (loose < 0 && (ps->nslen == 0 || m->ns.type != LB_JSTRING)) loose = i;
  }
  if (loose < 0) return NULL;
  pm->last = loose;
  return &pm->s[loose];
}

static void push_totals(lua_State *L, pump *pm) {
  int i;
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, pm->records); lua_setfield(L, -2, "records");
  lua_pushinteger(L, pm->bytes); lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, pm->ignored); lua_setfield(L, -2, "ignored");
  lua_pushinteger(L, pm->messages); lua_setfield(L, -2, "messages");
  lua_pushinteger(L, pm->clamped); lua_setfield(L, -2, "clamped_emitted_at");
  lua_createtable(L, 0, pm->nstreams);
  for (i = 0; i < pm->nstreams; i++) {
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, pm->s[i].clamped); lua_setfield(L, -2, "clamped_emitted_at");
    lua_pushinteger(L, pm->s[i].total); lua_setfield(L, -2, "records");
    lua_pushinteger(L, pm->s[i].dropped); lua_setfield(L, -2, "dropped");
    lua_pushinteger(L, pm->s[i].replaced); lua_setfield(L, -2, "replaced");
    lua_pushinteger(L, pm->s[i].bytes); lua_setfield(L, -2, "bytes");
    lua_pushinteger(L, pm->s[i].invalid); lua_setfield(L, -2, "invalid");
    lua_pushlstring(L, pm->s[i].key, pm->s[i].keylen);
    lua_insert(L, -2);
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "streams");
  lua_createtable(L, 0, LB_MSG__COUNT);
  for (i = 0; i < LB_MSG__COUNT; i++) {
    if (pm->by_type[i] == 0) continue;
    lua_pushinteger(L, pm->by_type[i]);
    lua_setfield(L, -2, i == LB_MSG_NONE ? "LOG_LINE" : lb_msg_type_name((lb_msg_type)i));
  }
  lua_setfield(L, -2, "by_type");
  lua_pushvalue(L, S_INVALID);
  lua_setfield(L, -2, "invalid");
  lua_pushinteger(L, pm->invalid); lua_setfield(L, -2, "invalid_checked");
}

/* Counts one record dropped as invalid: invalid[stream][reason] += 1. Rare,
** so a Lua table is cheap enough and is what the caller reports from. */
void lb__pump_count_invalid(lua_State *L, const lb_jval *stream, const char *reason) {
  char name[512];
  size_t n = 0;
  if (stream->type == LB_JSTRING) {
    n = lb_jstr_decode(stream, name, sizeof name);
    if (n > sizeof name) n = sizeof name;
  }
  lua_pushlstring(L, name, n);
  if (lua_rawget(L, S_INVALID) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushlstring(L, name, n);
    lua_pushvalue(L, -2);
    lua_rawset(L, S_INVALID);
  }
  lua_getfield(L, -1, reason);
  lua_pushinteger(L, lua_tointeger(L, -1) + 1);
  lua_setfield(L, -3, reason);
  lua_pop(L, 2);
}

/* Calls the function below nargs values; raises with `what` in front. */
void lb__pump_call_lua(lua_State *L, int nargs, int nres, const char *what) {
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
  if (ps->has_hook) {
    lua_pushlstring(L, ps->name, ps->len);
    lua_gettable(L, S_HOOKS);
  } else {
    lua_pushvalue(L, S_ONREC);
  }
  lb__json_push(L, &m->data);
  lua_pushlstring(L, ps->name, ps->len);
  lb__pump_call_lua(L, 2, 1, "on_record hook failed");
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

/* A STATE: `since` is the records of its stream since that stream's last
** state (of all streams for GLOBAL / LEGACY, which reset every count). The
** key (lb_state_key_of, the one rule) goes to on_message as its third to
** fifth arguments: type, name, namespace (nil for none); then the state
** rules of cache.h, decided here once: the disposition ("commit",
** "hold_stream", "hold_global" or "skip": lb_cache_state_disposition, with
** the strategies of the cache streams), the record count the state
** carries when it differs from `since` (lb_cache_state_count_mismatch on
** sourceStats; nil when it agrees or has none), and the state object's
** JSON text as the source wrote it (to store without decoding it). A
** STREAM state of a stream outside the selection (a source's own
** bookkeeping) counts 0. */
static void on_state(lua_State *L, pump *pm, const lb_msg *m, const char *line, size_t len) {
  static const char *const disposition[] = { "commit", "hold_stream", "hold_global", "skip" };
  lb_state_key k;
  long long since, expected = 0;
  int i, replaced = 0, any_replaced = 0;
  lb_state_key_of(&m->payload, &k);
  for (i = 0; i < pm->nstreams; i++)
    if (pm->s[i].cs && lb_cache_stream_strategy(pm->s[i].cs) == LB_WRITE_REPLACE) any_replaced = 1;
  if (k.type == LB_STATE_STREAM) {
    lb_msg as;                /* the state's stream, as a record of it would name it */
    pump_stream *ps;
    memset(&as, 0, sizeof as);
    as.stream = k.name;
    as.ns = k.ns;
    ps = find_stream(pm, &as);
    if (ps && !ns_exact(ps, &k.ns)) ps = NULL;   /* "items" in another namespace is another stream */
    since = ps ? ps->since_state : 0;
    if (ps) ps->since_state = 0;
    replaced = ps && ps->cs && lb_cache_stream_strategy(ps->cs) == LB_WRITE_REPLACE;
  } else {
    since = pm->since_global;
    pm->since_global = 0;
    for (i = 0; i < pm->nstreams; i++) pm->s[i].since_state = 0;
  }
  if (!lua_isnil(L, S_ONMSG)) {
    lua_pushvalue(L, S_ONMSG);
    lb__push_message(L, m, line, len);
    lua_pushinteger(L, since);
    lua_pushstring(L, lb_state_type_name(k.type));
    if (k.type == LB_STATE_STREAM) lb__json_push(L, &k.name);
    else lua_pushstring(L, k.type == LB_STATE_GLOBAL ? "_GLOBAL" : "_LEGACY");
    if (k.ns.type == LB_JSTRING) lb__json_push(L, &k.ns); else lua_pushnil(L);
    lua_pushstring(L, disposition[lb_cache_state_disposition(&m->whole, &k, replaced, any_replaced, 0)]);
    if (lb_cache_state_count_mismatch(&m->payload, "sourceStats", since, &expected))
      lua_pushinteger(L, (lua_Integer)expected);
    else
      lua_pushnil(L);
    lua_pushlstring(L, m->payload.p, m->payload.n);
    lb__pump_call_lua(L, 8, 0, "handling a STATE message failed");
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

/* An edit of a forwarded line: the `cut` bytes at `at` become text[0..len). */
typedef struct splice {
  const char *at;
  size_t cut;
  const char *text;
  size_t len;
} splice;

/* Queues line[0..len) with the splices applied (sorted by position, not
** overlapping) and a newline. */
static int forward_spliced(pump *pm, const char *line, size_t len, const splice *sp, int n) {
  size_t need = len + 1;
  const char *p = line;
  int i, rc;
  for (i = 0; i < n; i++) need += sp[i].len - sp[i].cut;
  if (pm->wlen + need > WBUF_SIZE && (rc = flush(pm)) != 0) return rc;
  if (need > WBUF_SIZE) {                 /* a huge line: write its pieces as they are */
    for (i = 0; i < n; i++) {
      if (sp[i].at > p && (rc = (int)lb__proc_write(pm->dst, p, (size_t)(sp[i].at - p))) < 0) return rc;
      if (sp[i].len && (rc = (int)lb__proc_write(pm->dst, sp[i].text, sp[i].len)) < 0) return rc;
      p = sp[i].at + sp[i].cut;
    }
    if (line + len > p && (rc = (int)lb__proc_write(pm->dst, p, (size_t)(line + len - p))) < 0) return rc;
    return (int)lb__proc_write(pm->dst, "\n", 1) < 0 ? -1 : 0;
  }
  for (i = 0; i < n; i++) {
    memcpy(pm->wbuf + pm->wlen, p, (size_t)(sp[i].at - p));
    pm->wlen += (size_t)(sp[i].at - p);
    memcpy(pm->wbuf + pm->wlen, sp[i].text, sp[i].len);
    pm->wlen += sp[i].len;
    p = sp[i].at + sp[i].cut;
  }
  memcpy(pm->wbuf + pm->wlen, p, (size_t)(line + len - p));
  pm->wlen += (size_t)(line + len - p);
  pm->wbuf[pm->wlen++] = '\n';
  return 0;
}

/* Forwards a message as printed, except for its data (a RECORD whose hook
** replaced it: *data) and the stream prefix. */
static int forward_message(pump *pm, const lb_msg *m, const char *line, size_t len,
                           const lb_jval *data) {
  splice sp[MAX_SPLICES + 1];
  lb_jval names[MAX_SPLICES];
  int n = 0, k = 0, i, j;
  if (pm->prefix_len) {
    k = lb_msg_stream_names(m, names, MAX_SPLICES);
    if (k > MAX_SPLICES) k = MAX_SPLICES;   /* a GLOBAL state of more streams: the rest as printed */
  }
  for (i = 0; i < k; i++, n++) {            /* after the opening quote */
    sp[n].at = names[i].p + 1; sp[n].cut = 0; sp[n].text = pm->prefix; sp[n].len = pm->prefix_len;
  }
  if (data) {                               /* outside every name: keep the order by position */
    for (j = n; j > 0 && sp[j - 1].at > m->data.p; j--) sp[j] = sp[j - 1];
    sp[j].at = m->data.p; sp[j].cut = m->data.n; sp[j].text = data->p; sp[j].len = data->n;
    n++;
  }
  return forward_spliced(pm, line, len, sp, n);
}

static int forward_line(pump *pm, const lb_msg *m, const char *line, size_t len) {
  return forward_message(pm, m, line, len, NULL);
}

void lb__pump_raise_write_error(lua_State *L, lb_proc *dst, int rc) {
  char msg[512];
  lb__proc_write_failure(dst, rc, msg, sizeof msg);
  luaL_error(L, "%s", msg);
}

/* --- the loop ------------------------------------------------------------ */

static int pump_k(lua_State *L, int status, lua_KContext ctx);

static void cleanup_out(void *data) {
  lb__proc_set_waiter(data, LB_PROC_WAIT_OUTPUT, NULL);
}

void lb__pump_cleanup_write(void *data) {
  lb__proc_set_waiter(data, LB_PROC_WAIT_WRITE, NULL);
}

/* emitted_at (a number span; absent: 0) as epoch milliseconds inside the
** range the cache holds; 1 when it was outside and is clamped to the
** nearest end. A double is cast only once it is known to fit: casting
** 1e30 to long long is undefined. */
int lb__pump_emitted_ms(const lb_jval *v, long long *ms) {
  long long i;
  double d;
  *ms = 0;
  if (v->type != LB_JNUMBER) return 0;
  if (lb_jnum_to_int64(v, &i)) {
    if (i >= LB_CACHE_MIN_MS && i <= LB_CACHE_MAX_MS) { *ms = i; return 0; }
    *ms = i < 0 ? LB_CACHE_MIN_MS : LB_CACHE_MAX_MS;
    return 1;
  }
  d = lb_jnum_to_double(v);           /* a fraction, an exponent or > 19 digits */
  if (d >= (double)LB_CACHE_MIN_MS && d <= (double)LB_CACHE_MAX_MS) {
    *ms = (long long)d;
    return 0;
  }
  *ms = d < 0 ? LB_CACHE_MIN_MS : LB_CACHE_MAX_MS;
  return 1;
}

/* The first clamped emitted_at of a stream goes to the connector's log
** (the caller warns with the count at the end). */
static void clamped(pump *pm, pump_stream *ps, const lb_msg *m) {
  if (ps->clamped++ == 0) {
    char msg[400];
    int n = snprintf(msg, sizeof msg, "stream '%s': emitted_at %.*s is outside the years "
                     "0001-9999 the cache can hold; stored as %s", ps->name,
                     (int)(m->emitted_at.n < 40 ? m->emitted_at.n : 40), m->emitted_at.p,
                     *m->emitted_at.p == '-' ? "0001-01-01T00:00:00.000Z" : "9999-12-31T23:59:59.999Z");
    if (n > 0) lb__proc_log_line(pm->p, "WARN ", msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
  }
  pm->clamped++;
}

static void handle_record(lua_State *L, pump *pm, const lb_msg *m, const char *line, size_t len) {
  pump_stream *ps = find_stream(pm, m);
  lb_jval data = m->data;
  long long ms = 0;
  int pushed = 0, hooked_push = 0, keep = 1, rc;
  const char *meta = NULL;
  if (ps == NULL) {
    pm->ignored++;
    if (!pm->classify_only) {
      lb__pump_count_invalid(L, &m->stream, "stream_not_in_catalog");
      lb__proc_log_line(pm->p, "invalid RECORD dropped (stream_not_in_catalog): ", line, len);
    }
    return;
  }
  ps->seen++;
  /* hooks shape the record, then the checks see what would be written */
  if (ps->has_hook || !lua_isnil(L, S_ONREC)) keep = run_hook(L, ps, m, &data, &hooked_push);
  if (keep && (ps->schema || ps->has_rule) &&
      (keep = lb__pump_check_record(L, pm, ps, m, &data, &pushed, &meta)) == 0) {
    lua_pop(L, hooked_push);
    ps->since_state++;                    /* a record the source counted in its state */
    pm->since_global++;
    return;
  }
  if (keep) {
    if (pm->dst) {
      /* with its data replaced when the hook did, everything else as printed */
      rc = forward_message(pm, m, line, len, pushed || hooked_push ? &data : NULL);
      if (rc != 0) lb__pump_raise_write_error(L, pm->dst, rc);
    } else {
      if (lb__pump_emitted_ms(&m->emitted_at, &ms)) clamped(pm, ps, m);
      if (lb_cache_stream_write(ps->cs, &data, ms, meta) != 0)
        luaL_error(L, "writing a record of stream '%s' to the cache failed: %s", ps->name,
                   lb_cache_errmsg(lb_cache_stream_cache(ps->cs)));
    }
    ps->total++;
    pm->records++;
  }
  lua_pop(L, pushed + hooked_push);   /* texts of a nulled record, its meta, a hook's record */
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
    if (pm->s[i].has_hook || pm->s[i].has_rule) return 1;   /* a validate rule is Lua too */
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
  uint64_t deadline;
  int rc;
  lua_settop(L, S_TOP);
  for (;;) {
    if (pm->dst && lb__proc_write_blocked(pm->dst)) {   /* backpressure */
      if (lb__proc_write_error(pm->dst))
        lb__pump_raise_write_error(L, pm->dst, lb__proc_write_error(pm->dst));
      lb__proc_set_waiter(pm->dst, LB_PROC_WAIT_WRITE, lb__current(L, "pump.to_process"));
      return lb__wait(L, lb__pump_cleanup_write, pm->dst, 0, pump_k);
    }
    pos = lb_lines_tell(lb__proc_output(p));
    rc = lb_lines_next(lb__proc_output(p), &line, &len);
    if (rc == LB_LINES_OK) {
      int type = lb_msg_parse(line, len, &m);
      /* A task never waits for the cache's writer thread past its step's
      ** deadline (with no budget, a millisecond): the line goes back and
      ** the task resumes at its next turn, so other tasks run while the
      ** writer waits for the write lock. A record waits for room before
      ** its hook runs (a hook runs once), a STATE for room for the rows
      ** before it: its commit is queued behind them (read.lua). */
      if (pm->cache && (type == LB_MSG_RECORD || type == LB_MSG_STATE) &&
          (deadline = lb__cache_wait_deadline(L)) != 0 &&
          !lb_cache_wait_room(pm->cache, type == LB_MSG_RECORD ? m.data.n : (size_t)-1 / 4, deadline)) {
        lb_lines_seek(lb__proc_output(p), pos);
        return lb__cache_retry(L, 0, pump_k);
      }
      lb__proc_stats(p)->stdout_lines++;
      pm->by_type[type]++;
      switch (m.type) {
        case LB_MSG_RECORD:
          handle_record(L, pm, &m, line, len);
          break;
        case LB_MSG_NONE:
          if (m.bad_record && !pm->classify_only) {
            char prefix[160];
            lb__pump_count_invalid(L, &m.stream, m.bad_record);
            snprintf(prefix, sizeof prefix, "invalid RECORD dropped (%s: %s): ", m.bad_record, m.why);
            lb__proc_log_line(p, prefix, line, len);
          } else {
            lb__proc_log_line(p, "", line, len);
          }
          lb__proc_stats(p)->log_lines++;
          break;
        case LB_MSG_LOG:
          lb__proc_log_message(p, &m);
          break;
        case LB_MSG_STATE:
          pm->messages++;
          if (pm->dst && (rc = forward_line(pm, &m, line, len)) != 0)
            lb__pump_raise_write_error(L, pm->dst, rc);
          on_state(L, pm, &m, line, len);
          break;
        default:
          pm->messages++;
          if (pm->dst && m.type == LB_MSG_TRACE && is_stream_status(&m) &&
              (rc = forward_line(pm, &m, line, len)) != 0)
            lb__pump_raise_write_error(L, pm->dst, rc);
          if (!lua_isnil(L, S_ONMSG)) {
            lua_pushvalue(L, S_ONMSG);
            lb__push_message(L, &m, line, len);
            lb__pump_call_lua(L, 1, 0, "handling a connector message failed");
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
          lb__pump_call_lua(L, 1, 0, "on_progress failed");
        }
        if (lb__budget_spent(rt) && rt->current && lua_isyieldable(L)) {
          if (pm->dst && (rc = flush(pm)) != 0) lb__pump_raise_write_error(L, pm->dst, rc);
          lb__wake(rt->current);             /* run again at the next step */
          return lb__wait(L, NULL, NULL, 0, pump_k);
        }
      }
      continue;
    }
    /* nothing buffered: send what we have before waiting for more */
    if (pm->dst && (rc = flush(pm)) != 0) lb__pump_raise_write_error(L, pm->dst, rc);
    if (rc == LB_LINES_TOOLONG) {
      lb__proc_stats(p)->too_long_lines++;
      return luaL_error(L, "connector '%s' printed a line longer than the limit of %I bytes "
                           "(max_line)", lb__proc_name(p), (lua_Integer)lb__proc_output(p)->max_line);
    }
    {
      char msg[512];
      const char *code;
      if (lb__proc_output_failure(p, msg, sizeof msg, &code)) return luaL_error(L, "%s", msg);
    }
    if (lb__proc_output_ended(p)) {
      if (pm->cache && (deadline = lb__cache_wait_deadline(L)) != 0 &&
          !lb_cache_wait_idle(pm->cache, deadline)) {   /* the finish must not wait */
        return lb__cache_retry(L, 0, pump_k);
      }
      push_totals(L, pm);
      return 1;
    }
    lb__proc_set_waiter(p, LB_PROC_WAIT_OUTPUT, lb__current(L, "pump"));
    lb__proc_want_output(p);
    return lb__wait(L, cleanup_out, p, 0, pump_k);
  }
}

static int pump_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return pump_loop(L);
}

enum { MODE_PROCESS, MODE_CACHE, MODE_COUNT };

static const char *const pump_options[] = {
  "streams", "hooks", "on_record", "on_message", "on_progress", "progress_ms", "stream_prefix",
  "validate", NULL };

/* Sets up the stack slots; `mode` says whether streams map to cache
** streams (to_cache) or to anything true (to_process), or there are none
** (count). */
static int start(lua_State *L, lb_proc *dst, int mode) {
  lb_proc *p = lb__proc_check(L, 1);
  pump *pm;
  int n = 0, i = 0;
  lua_Number progress_ms;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lb__check_options(L, 2, mode == MODE_CACHE ? "pump.to_cache" : "pump.to_process", pump_options);
  lua_getfield(L, 2, "streams");
  if (!lua_istable(L, -1)) return luaL_error(L, "pump: 'streams' must be a table");
  lua_pushnil(L);
  while (lua_next(L, -2)) { n++; lua_pop(L, 1); }
  pm = lua_newuserdatauv(L, sizeof *pm + sizeof(pump_stream) * (size_t)(n > 0 ? n : 1), 0);
  memset(pm, 0, sizeof *pm);
  pm->p = p;
  pm->dst = dst;
  pm->classify_only = mode == MODE_COUNT;
  if (luaL_newmetatable(L, PUMP_MT)) {
    lua_pushcfunction(L, pump_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if (dst && (pm->wbuf = malloc(WBUF_SIZE)) == NULL) return luaL_error(L, "out of memory");
  lua_getfield(L, 2, "stream_prefix");
  if (dst && !lua_isnil(L, -1)) {
    size_t elen;
    const char *esc = lb__pump_escaped_prefix(L, lua_gettop(L), &elen);
    if (elen && (pm->prefix = malloc(elen)) == NULL) return luaL_error(L, "out of memory");
    memcpy(pm->prefix, esc, elen);
    pm->prefix_len = elen;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_insert(L, S_STATE);                  /* stack: proc, opts, state, streams */
  lua_newtable(L);                         /* names: keeps stream name strings */
  lua_pushnil(L);
  while (lua_next(L, 4)) {
    pump_stream *ps = &pm->s[i];
    if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "pump: stream names must be strings");
    memset(ps, 0, sizeof *ps);
    ps->ns = "";
    if (mode == MODE_CACHE) {
      /* the cache stream says which (namespace, name) it is; keep it alive */
      ps->cs = lb__cache_stream_check(L, -1);
      ps->name = lb_cache_stream_name(ps->cs, &ps->len);
      ps->ns = lb_cache_stream_namespace(ps->cs, &ps->nslen);
      pm->cache = lb_cache_stream_cache(ps->cs);
      lua_rawseti(L, 5, n + i + 1);
    } else {
      lua_pop(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_rawseti(L, 5, i + 1);
    ps->key = lua_tolstring(L, -1, &ps->keylen);
    if (mode != MODE_CACHE) { ps->name = ps->key; ps->len = ps->keylen; }
    i++;
  }
  pm->nstreams = n;
  lua_remove(L, 4);                        /* stack: proc, opts, state, names */
  lua_getfield(L, 2, "hooks");
  if (lua_isnil(L, -1)) { lua_pop(L, 1); lua_newtable(L); }
  luaL_checktype(L, -1, LUA_TTABLE);
  for (i = 0; i < n; i++) {
    lua_pushlstring(L, pm->s[i].name, pm->s[i].len);
    lua_gettable(L, -2);
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
  lua_newtable(L);                         /* S_INVALID */
  lua_getfield(L, 2, "validate");          /* S_VALIDATE */
  if (!lua_isnil(L, -1)) lb__pump_setup_validate(L, pm, lua_gettop(L));
  lua_getfield(L, 2, "progress_ms");
  progress_ms = luaL_optnumber(L, -1, 500);
  lua_pop(L, 1);
  pm->progress_ns = (uint64_t)(progress_ms * 1e6);
  pm->next_progress = uv_hrtime() + pm->progress_ns;
  return pump_loop(L);
}

static int l_to_cache(lua_State *L) {
  return start(L, NULL, MODE_CACHE);
}

static int l_to_process(lua_State *L) {
  lb_proc *dst = lb__proc_check(L, 2);
  if (!lb__proc_has_stdin(dst)) return luaL_error(L, "to_process: the destination was started without stdin");
  lua_remove(L, 2);                        /* stack: src, opts */
  return start(L, dst, MODE_PROCESS);
}

static int l_count(lua_State *L) {
  lb__proc_check(L, 1);
  lua_settop(L, 1);
  lua_createtable(L, 0, 1);
  lua_newtable(L);
  lua_setfield(L, -2, "streams");
  return start(L, NULL, MODE_COUNT);
}

static const luaL_Reg funcs[] = {
  {"prefix_streams", lb__pump_prefix_streams},
  {"unprefix_streams", lb__pump_unprefix_streams},
  {"to_cache", l_to_cache},
  {"from_cache", lb__pump_from_cache},
  {"to_process", l_to_process},
  {"count", l_count},
  {NULL, NULL}
};

int luaopen_airbyte_pump(lua_State *L) {
  luaL_newlib(L, funcs);
  return 1;
}
