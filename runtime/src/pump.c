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
#include "lua_bindings.h"
#include "cache.h"
#include "proc.h"
#include "protocol.h"
#include "jsonenc.h"
#include "record.h"
#include "jsonschema.h"

#define PUMP_MT "airbyte.Pump"
#define YIELD_CHECK 512              /* records between budget checks */
#define BUDGET_CHECK 32              /* ... while a step has a budget (hooks: every record) */
#define WBUF_SIZE (120 * 1024)       /* batched writes; under malloc's mmap threshold */

typedef struct pump_stream {
  lb_cache_stream *cs;          /* to_cache only */
  const char *name;             /* owned by the names table (stack slot) */
  size_t len;
  const char *ns;               /* to_cache: the cache stream's namespace ("" = none) */
  size_t nslen;
  const char *key;              /* the key in `streams` (names totals) */
  size_t keylen;
  int has_hook;
  const lb_schema *schema;      /* validate: the stream's JSON schema, or NULL */
  int has_rule;                 /* validate: a Lua validator for the stream */
  long long seen;               /* records of the stream read so far (record numbers) */
  long long total, since_state, dropped, replaced, bytes;
  long long invalid;            /* validate: records that failed a check */
  long long clamped;            /* to_cache: emitted_at outside the cache's range */
} pump_stream;

typedef struct pump {
  lb_proc *p;                   /* the source */
  lb_proc *dst;                 /* to_process: the destination, else NULL */
  char *wbuf;                   /* to_process: lines waiting to be written */
  size_t wlen;
  char *prefix;                 /* to_process: stream prefix, JSON-escaped, no quotes */
  size_t prefix_len;
  int nstreams;
  int last;                     /* index of the last stream hit */
  long long records, ignored, messages, since_global, bytes, clamped;
  long long by_type[LB_MSG__COUNT];
  uint64_t next_progress, progress_ns;
  unsigned check;
  int classify_only;            /* pump.count: no stream is selected, none is invalid */
  lb_cache *cache;              /* to_cache: the cache of the streams */
  int policy;                   /* validate: what an invalid record becomes (V_*) */
  long long invalid, max_invalid;
  pump_stream s[1];             /* nstreams entries */
} pump;

/* Stack slots, kept across yields. */
enum { S_PROC = 1, S_OPTS, S_STATE, S_HOOKS, S_ONREC, S_ONMSG, S_ONPROG, S_NAMES, S_INVALID,
       S_VALIDATE, S_TOP = S_VALIDATE };

/* Record checks (validate option): what an invalid record becomes. */
enum { V_NONE = 0, V_FAIL, V_DROP, V_NULL, V_QUARANTINE };

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
static void count_invalid(lua_State *L, const lb_jval *stream, const char *reason) {
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
  if (ps->has_hook) {
    lua_pushlstring(L, ps->name, ps->len);
    lua_gettable(L, S_HOOKS);
  } else {
    lua_pushvalue(L, S_ONREC);
  }
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
    call_lua(L, 8, 0, "handling a STATE message failed");
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

#define MAX_SPLICES 64   /* stream names a message may carry, plus its data */

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

static void raise_write_error(lua_State *L, lb_proc *dst, int rc) {
  char msg[512];
  lb__proc_write_failure(dst, rc, msg, sizeof msg);
  luaL_error(L, "%s", msg);
}

/* The prefix at idx as it goes between a JSON string's quotes; the text
** stays on the stack (one slot) until the caller pops it. */
static const char *escaped_prefix(lua_State *L, int idx, size_t *len) {
  char err[128];
  const char *s;
  if (lua_type(L, idx) != LUA_TSTRING) luaL_error(L, "stream_prefix must be a string");
  if (lb__json_encode_push(L, idx, err, sizeof err) != 0)
    luaL_error(L, "stream_prefix cannot be a stream name: %s", err);
  s = lua_tolstring(L, -1, len);
  *len -= 2;
  return s + 1;
}

/* --- the loop ------------------------------------------------------------ */

static int pump_k(lua_State *L, int status, lua_KContext ctx);

static void cleanup_out(void *data) {
  lb__proc_set_waiter(data, LB_PROC_WAIT_OUTPUT, NULL);
}

static void cleanup_write(void *data) {
  lb__proc_set_waiter(data, LB_PROC_WAIT_WRITE, NULL);
}

/* emitted_at (a number span; absent: 0) as epoch milliseconds inside the
** range the cache holds; 1 when it was outside and is clamped to the
** nearest end. A double is cast only once it is known to fit: casting
** 1e30 to long long is undefined. */
static int emitted_ms(const lb_jval *v, long long *ms) {
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

/* --- record checks (the validate option) ---------------------------------
** Before a record's hook, its data is checked against the stream's JSON
** schema (on the bytes: the C validator, verdict only unless it fails) and
** by the stream's Lua rule (function(record, stream) -> ok, message[,
** field], or an airbyte.sandbox validator). A failing record is counted
** (invalid[stream]["schema" | "rule"]) and then, by policy:
**   fail        raises AirbyteRecordValidationError
**   drop        skipped
**   quarantine  handed to on_quarantine(stream, namespace, data_json,
**               reasons, emitted_at_ms), which stores it; skipped
**   null        each failing top-level field becomes null (the others keep
**               their bytes) and _airbyte_meta.changes says so; a failure
**               that names no field (the record as a whole) drops it
** max_invalid > 0 fails the read once more records than that failed. */

#define MAX_REASONS 16

static const char *const validate_options[] = {
  "schemas", "rules", "on_invalid", "max_invalid", "on_quarantine", NULL };

/* Reads the validate table at idx into pm and the streams; it stays in the
** S_VALIDATE slot so the schemas and rules stay alive. */
static void setup_validate(lua_State *L, pump *pm, int idx) {
  static const char *const policies[] = { "fail", "drop", "null", "quarantine", NULL };
  int i;
  luaL_checktype(L, idx, LUA_TTABLE);
  lb__check_options(L, idx, "pump validate", validate_options);
  lua_getfield(L, idx, "on_invalid");
  pm->policy = V_FAIL + luaL_checkoption(L, -1, "fail", policies);
  lua_pop(L, 1);
  lua_getfield(L, idx, "max_invalid");
  pm->max_invalid = lua_isnil(L, -1) ? 0 : (long long)luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, idx, "schemas");
  lua_getfield(L, idx, "rules");
  for (i = 0; i < pm->nstreams; i++) {
    pump_stream *ps = &pm->s[i];
    lua_pushlstring(L, ps->name, ps->len);
    if (lua_istable(L, -3) && lua_gettable(L, -3) != LUA_TNIL) ps->schema = lb__schema_check(L, -1);
    lua_pop(L, 1);
    lua_pushlstring(L, ps->name, ps->len);
    ps->has_rule = lua_istable(L, -2) && lua_gettable(L, -2) != LUA_TNIL;
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  if (pm->policy == V_QUARANTINE) {
    lua_getfield(L, idx, "on_quarantine");
    if (!lua_isfunction(L, -1)) luaL_error(L, "pump: on_invalid = \"quarantine\" needs on_quarantine");
    lua_pop(L, 1);
  }
}

/* The top-level property a validator path ("$.age.x", "$['a b'][0]")
** names, into out; 0 for the record itself ("$"). */
static size_t path_field(const char *path, char *out, size_t cap) {
  size_t n = 0;
  if (path[0] != '$') return 0;
  if (path[1] == '.') {
    const char *p = path + 2;
    while (*p && *p != '.' && *p != '[' && *p != ':' && n < cap) out[n++] = *p++;
  } else if (path[1] == '[' && path[2] == '\'') {
    const char *p = path + 3;
    while (*p && !(p[0] == '\'' && p[1] == ']') && n < cap) {
      if (p[0] == '\\' && p[1]) p++;
      out[n++] = *p++;
    }
  }
  return n;
}

/* reasons[#reasons + 1] = { check =, field =, path =, message = } */
static void add_reason(lua_State *L, int reasons, const char *check, const char *field, size_t flen,
                       const char *path, const char *message) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, check); lua_setfield(L, -2, "check");
  if (flen) { lua_pushlstring(L, field, flen); lua_setfield(L, -2, "field"); }
  if (path) { lua_pushstring(L, path); lua_setfield(L, -2, "path"); }
  lua_pushstring(L, message); lua_setfield(L, -2, "message");
  lua_rawseti(L, reasons, (lua_Integer)lua_rawlen(L, reasons) + 1);
}

/* Schema failures of the record into reasons. */
static void schema_reasons(lua_State *L, const pump_stream *ps, const lb_jval *data, int reasons) {
  lb_schema_errors errs;
  int i;
  memset(&errs, 0, sizeof errs);
  errs.max = MAX_REASONS;
  lb_schema_validate_span(ps->schema, data, &errs);
  for (i = 0; i < errs.count; i++) {
    const char *msg = errs.msgs[i], *colon = strstr(msg, ": ");
    char path[512], field[256];
    size_t plen = colon ? (size_t)(colon - msg) : 0, flen;
    if (plen >= sizeof path) plen = sizeof path - 1;
    memcpy(path, msg, plen);
    path[plen] = '\0';
    flen = path_field(path, field, sizeof field);
    add_reason(L, reasons, "schema", field, flen, plen ? path : NULL, colon ? colon + 2 : msg);
  }
  if (errs.count == 0) add_reason(L, reasons, "schema", NULL, 0, NULL, "does not match the stream's schema");
  lb_schema_errors_clear(&errs);
}

/* Runs the stream's rule; adds a reason when it says no (or fails). */
static void rule_reasons(lua_State *L, const pump_stream *ps, const lb_jval *data, int reasons) {
  size_t flen = 0;
  const char *field = NULL;
  lua_getfield(L, S_VALIDATE, "rules");
  lua_pushlstring(L, ps->name, ps->len);
  lua_gettable(L, -2);
  lua_remove(L, -2);
  lb__json_push(L, data);
  lua_pushlstring(L, ps->name, ps->len);
  if (lua_pcall(L, 2, 3, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    lua_pushfstring(L, "the rule failed: %s", msg ? msg : luaL_typename(L, -1));
    add_reason(L, reasons, "rule", NULL, 0, NULL, lua_tostring(L, -1));
    lua_pop(L, 2);
    return;
  }
  if (lua_isboolean(L, -3) && !lua_toboolean(L, -3)) {
    if (lua_type(L, -1) == LUA_TSTRING) field = lua_tolstring(L, -1, &flen);
    add_reason(L, reasons, "rule", field, flen, NULL,
               lua_type(L, -2) == LUA_TSTRING || lua_type(L, -2) == LUA_TNUMBER ? lua_tostring(L, -2)
                                                                            : "rejected by the rule");
  }
  lua_pop(L, 3);
}

/* Raises errors.raise(kind, message, fields) with the fields table and the
** message on top of the stack (in that order), when airbyte.errors is
** loaded (it is, under read and write); else a plain error. */
static void raise_kind(lua_State *L, const char *kind) {
  int msg = lua_gettop(L);
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  if (lua_getfield(L, -1, "airbyte.errors") == LUA_TTABLE && lua_getfield(L, -1, "raise") == LUA_TFUNCTION) {
    lua_pushstring(L, kind);
    lua_pushvalue(L, msg);
    lua_pushvalue(L, msg - 1);
    lua_call(L, 3, 0);
  }
  luaL_error(L, "%s (%s)", lua_tostring(L, msg), kind);
}

/* The data with the named top-level fields set to null, pushed as JSON
** text (its span in *out); the other members keep their bytes. */
static void push_nulled(lua_State *L, const lb_jval *data, int reasons, lb_jval *out) {
  luaL_Buffer b;
  lb_jiter it;
  lb_jval key, val;
  int first = 1, n = (int)lua_rawlen(L, reasons), i;
  const char *names[MAX_REASONS * 2];
  size_t lens[MAX_REASONS * 2];
  int k = 0;
  for (i = 1; i <= n && k < MAX_REASONS * 2; i++) {   /* the strings live in reasons */
    lua_rawgeti(L, reasons, i);
    if (lua_getfield(L, -1, "field") == LUA_TSTRING) { names[k] = lua_tolstring(L, -1, &lens[k]); k++; }
    lua_pop(L, 2);
  }
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '{');
  lb_jiter_init(&it, data);
  while (lb_jobj_next(&it, &key, &val)) {
    int nulled = 0;
    for (i = 0; i < k && !nulled; i++) nulled = lb_jstr_eq(&key, names[i], lens[i]);
    if (!first) luaL_addchar(&b, ',');
    first = 0;
    luaL_addlstring(&b, key.p, key.n);
    luaL_addchar(&b, ':');
    if (nulled) luaL_addstring(&b, "null"); else luaL_addlstring(&b, val.p, val.n);
  }
  luaL_addchar(&b, '}');
  luaL_pushresult(&b);
  {
    size_t len, eoff;
    const char *text = lua_tolstring(L, -1, &len);
    lb_jskim_validate(text, len, out, &eoff);
  }
}

/* _airbyte_meta of a nulled record, pushed as JSON text: Airbyte's
** changes format, with the validator's message beside the reason. */
static const char *push_meta(lua_State *L, int reasons) {
  char err[128];
  int n = (int)lua_rawlen(L, reasons), i, k = 0;
  lua_createtable(L, 0, 1);
  lua_createtable(L, n, 0);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, reasons, i);
    if (lua_getfield(L, -1, "field") == LUA_TSTRING) {
      lua_createtable(L, 0, 4);
      lua_insert(L, -2);
      lua_setfield(L, -2, "field");
      lua_pushliteral(L, "NULLED"); lua_setfield(L, -2, "change");
      lua_pushliteral(L, "SOURCE_RETRIEVAL_ERROR"); lua_setfield(L, -2, "reason");
      lua_getfield(L, -2, "message"); lua_setfield(L, -2, "message");
      lua_rawseti(L, -3, ++k);                /* stack: meta, changes, reason, change */
    } else {
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_setfield(L, -2, "changes");
  if (lb__json_encode_push(L, -1, err, sizeof err) != 0) luaL_error(L, "_airbyte_meta: %s", err);
  lua_remove(L, -2);
  return lua_tostring(L, -1);
}

/* Does every reason name a field (so that nulling fields fixes it)? */
static int all_fields(lua_State *L, int reasons) {
  int n = (int)lua_rawlen(L, reasons), i, ok = n > 0;
  for (i = 1; i <= n && ok; i++) {
    lua_rawgeti(L, reasons, i);
    ok = lua_getfield(L, -1, "field") == LUA_TSTRING;
    lua_pop(L, 2);
  }
  return ok;
}

/* Returns 1 to keep the record (with *data nulled: its text and meta stay
** on the stack, *pushed = 2, *meta points at the meta text), 0 when it was
** dropped or quarantined. */
static int check_record(lua_State *L, pump *pm, pump_stream *ps, const lb_msg *m, lb_jval *data,
                        int *pushed, const char **meta) {
  int reasons, top = lua_gettop(L);
  lb_schema_errors verdict;
  memset(&verdict, 0, sizeof verdict);        /* max 0: only the verdict, the fast path */
  if (ps->schema && lb_schema_validate_span(ps->schema, data, &verdict) == 0) {
    if (!ps->has_rule) return 1;
    lua_newtable(L);
    reasons = lua_gettop(L);
  } else {
    lua_newtable(L);
    reasons = lua_gettop(L);
    if (ps->schema) schema_reasons(L, ps, data, reasons);
  }
  lb_schema_errors_clear(&verdict);
  if (ps->has_rule) rule_reasons(L, ps, data, reasons);
  if (lua_rawlen(L, reasons) == 0) { lua_settop(L, top); return 1; }
  ps->invalid++;
  pm->invalid++;
  lua_rawgeti(L, reasons, 1);
  lua_getfield(L, -1, "check");
  count_invalid(L, &m->stream, lua_tostring(L, -1));
  lua_pop(L, 2);
  if (pm->max_invalid > 0 && pm->invalid > pm->max_invalid) {
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, ps->name, ps->len); lua_setfield(L, -2, "stream");
    lua_pushinteger(L, pm->max_invalid); lua_setfield(L, -2, "max_invalid");
    lua_pushfstring(L, "more than %I records failed their checks (max_invalid = %I); "
                       "stream '%s' record %I was the last", (lua_Integer)pm->max_invalid,
                    (lua_Integer)pm->max_invalid, ps->name, (lua_Integer)ps->seen);
    raise_kind(L, "AirbyteRecordValidationError");
  }
  if (pm->policy == V_NULL && all_fields(L, reasons)) {
    lb_jval nulled;
    push_nulled(L, data, reasons, &nulled);
    *meta = push_meta(L, reasons);
    lua_remove(L, reasons);                   /* stack: ..., nulled text, meta text */
    *data = nulled;
    *pushed = 2;
    return 1;
  }
  if (pm->policy == V_FAIL) {
    const char *path, *msg;
    lua_rawgeti(L, reasons, 1);
    lua_getfield(L, -1, "path");
    lua_getfield(L, -2, "message");
    path = lua_tostring(L, -2);
    msg = lua_tostring(L, -1);
    lua_createtable(L, 0, 5);
    lua_pushlstring(L, ps->name, ps->len); lua_setfield(L, -2, "stream");
    lua_pushinteger(L, ps->seen); lua_setfield(L, -2, "record_number");
    if (path) { lua_pushstring(L, path); lua_setfield(L, -2, "path"); }
    lua_pushstring(L, msg); lua_setfield(L, -2, "validation_message");
    lua_pushvalue(L, reasons); lua_setfield(L, -2, "reasons");
    lua_pushfstring(L, "stream '%s' record %I is invalid: %s%s%s", ps->name, (lua_Integer)ps->seen,
                    path ? path : "", path ? ": " : "", msg);
    raise_kind(L, "AirbyteRecordValidationError");
  }
  if (pm->policy == V_QUARANTINE) {
    long long ms = 0;
    emitted_ms(&m->emitted_at, &ms);
    lua_getfield(L, S_VALIDATE, "on_quarantine");
    lua_pushlstring(L, ps->name, ps->len);
    if (ps->nslen) lua_pushlstring(L, ps->ns, ps->nslen); else lua_pushnil(L);
    lua_pushlstring(L, data->p, data->n);
    lua_pushvalue(L, reasons);
    lua_pushinteger(L, ms);
    call_lua(L, 5, 0, "storing a quarantined record failed");
  }
  lua_settop(L, top);                         /* drop, quarantine, null without a field */
  return 0;
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
      count_invalid(L, &m->stream, "stream_not_in_catalog");
      lb__proc_log_line(pm->p, "invalid RECORD dropped (stream_not_in_catalog): ", line, len);
    }
    return;
  }
  ps->seen++;
  /* hooks shape the record, then the checks see what would be written */
  if (ps->has_hook || !lua_isnil(L, S_ONREC)) keep = run_hook(L, ps, m, &data, &hooked_push);
  if (keep && (ps->schema || ps->has_rule) &&
      (keep = check_record(L, pm, ps, m, &data, &pushed, &meta)) == 0) {
    lua_pop(L, hooked_push);
    ps->since_state++;                    /* a record the source counted in its state */
    pm->since_global++;
    return;
  }
  if (keep) {
    if (pm->dst) {
      /* with its data replaced when the hook did, everything else as printed */
      rc = forward_message(pm, m, line, len, pushed || hooked_push ? &data : NULL);
      if (rc != 0) raise_write_error(L, pm->dst, rc);
    } else {
      if (emitted_ms(&m->emitted_at, &ms)) clamped(pm, ps, m);
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
      if (lb__proc_write_error(pm->dst)) raise_write_error(L, pm->dst, lb__proc_write_error(pm->dst));
      lb__proc_set_waiter(pm->dst, LB_PROC_WAIT_WRITE, lb__current(L, "pump.to_process"));
      return lb__wait(L, cleanup_write, pm->dst, 0, pump_k);
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
            count_invalid(L, &m.stream, m.bad_record);
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
          if (pm->dst && (rc = forward_line(pm, &m, line, len)) != 0) raise_write_error(L, pm->dst, rc);
          on_state(L, pm, &m, line, len);
          break;
        default:
          pm->messages++;
          if (pm->dst && m.type == LB_MSG_TRACE && is_stream_status(&m) &&
              (rc = forward_line(pm, &m, line, len)) != 0)
            raise_write_error(L, pm->dst, rc);
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
          if (pm->dst && (rc = flush(pm)) != 0) raise_write_error(L, pm->dst, rc);
          lb__wake(rt->current);             /* run again at the next step */
          return lb__wait(L, NULL, NULL, 0, pump_k);
        }
      }
      continue;
    }
    /* nothing buffered: send what we have before waiting for more */
    if (pm->dst && (rc = flush(pm)) != 0) raise_write_error(L, pm->dst, rc);
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
    const char *esc = escaped_prefix(L, lua_gettop(L), &elen);
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
  if (!lua_isnil(L, -1)) setup_validate(L, pm, lua_gettop(L));
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


/* --- from_cache: cache rows as RECORD lines ------------------------------- */

/* feed state: a cache cursor over a stream's table and the write batch */
typedef struct feed {
  lb_cache_cursor *cur;
  lb_proc *dst;
  lb_cache_buf out;              /* RECORD lines not yet written */
  long long records, bytes;
  char last_raw_id[64];
  uint64_t next_progress, progress_ns;
} feed;

enum { F_DB = 1, F_DST, F_OPTS, F_STATE, F_STREAM, F_ONPROG, F_TOP = F_ONPROG };

static int feed_gc(lua_State *L) {
  feed *f = lua_touserdata(L, 1);
  lb_cache_cursor_close(f->cur);
  f->cur = NULL;
  free(f->out.p);
  f->out.p = NULL;
  return 0;
}

/* id[0..n) sorts after the NUL-terminated last (ids of one cache have one
** length; a longer one with the same start sorts after). */
static int raw_id_above(const char *id, size_t n, const char *last) {
  size_t ln = strlen(last);
  int cmp = memcmp(id, last, n < ln ? n : ln);
  return cmp > 0 || (cmp == 0 && n > ln);
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
      if (lb__proc_write_error(f->dst)) break;
      lb__proc_set_waiter(f->dst, LB_PROC_WAIT_WRITE, lb__current(L, "pump.from_cache"));
      return lb__wait(L, cleanup_write, f->dst, 0, feed_k);
    }
    if (f->out.len >= WBUF_SIZE) {
      ssize_t w = lb__proc_write(f->dst, f->out.p, f->out.len);
      if (w < 0) break;
      f->out.len = 0;
      continue;
    }
    {
      size_t before = f->out.len, idlen;
      const char *id;
      rc = lb_cache_cursor_next(f->cur, &f->out, &id, &idlen);
      if (rc > 0) {
        f->bytes += (long long)(f->out.len - before);
        f->records++;
        /* UUIDv7 text sorts by time: the highest id is the watermark */
        if (id && idlen < sizeof f->last_raw_id && raw_id_above(id, idlen, f->last_raw_id)) {
          memcpy(f->last_raw_id, id, idlen);
          f->last_raw_id[idlen] = '\0';
        }
      }
    }
    if (rc > 0) {
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
    if (rc < 0) return luaL_error(L, "%s", lb_cache_errmsg(lb__cache_check(L, F_DB)));
    if (f->out.len && lb__proc_write(f->dst, f->out.p, f->out.len) < 0) break;
    f->out.len = 0;
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, f->records); lua_setfield(L, -2, "records");
    lua_pushinteger(L, f->bytes); lua_setfield(L, -2, "bytes");
    if (f->last_raw_id[0]) { lua_pushstring(L, f->last_raw_id); lua_setfield(L, -2, "last_raw_id"); }
    return 1;
  }
  raise_write_error(L, f->dst, lb__proc_write_error(f->dst));
  return 0;
}

static int feed_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return feed_loop(L);
}

/* from_cache(db, dst, {stream =, table =, after = raw_id, on_progress =})
** -> {records =, bytes =, last_raw_id =}: the rows of a cache table (those
** whose _airbyte_raw_id is above `after`, or all) as RECORD lines, in table
** order; last_raw_id is the highest id sent. */
static const char *const from_cache_options[] = {
  "stream", "table", "after", "on_progress", "progress_ms", NULL };

static int l_from_cache(lua_State *L) {
  lb_cache *c = lb__cache_check(L, 1);
  lb_proc *dst = lb__proc_check(L, 2);
  lb_cache_cursor_spec spec;
  feed *f;
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lb__check_options(L, 3, "pump.from_cache", from_cache_options);
  memset(&spec, 0, sizeof spec);
  lua_getfield(L, 3, "stream");
  spec.stream = luaL_checklstring(L, -1, &spec.stream_len);
  lua_getfield(L, 3, "table");
  spec.table = luaL_checkstring(L, -1);
  lua_getfield(L, 3, "after");
  if (!lua_isnil(L, -1)) spec.after_raw_id = luaL_checkstring(L, -1);
  if (!lb__proc_has_stdin(dst)) return luaL_error(L, "from_cache: the destination was started without stdin");
  f = lua_newuserdatauv(L, sizeof *f, 0);             /* stack: db, dst, opts, s, t, a, feed */
  memset(f, 0, sizeof *f);
  f->dst = dst;
  if (luaL_newmetatable(L, "airbyte.Feed")) {
    lua_pushcfunction(L, feed_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  if ((f->cur = lb_cache_cursor_open(c, &spec)) == NULL)
    return luaL_error(L, "%s", lb_cache_errmsg(c));
  lua_getfield(L, 3, "on_progress");
  lua_getfield(L, 3, "progress_ms");
  f->progress_ns = (uint64_t)(luaL_optnumber(L, -1, 500) * 1e6);
  f->next_progress = uv_hrtime() + f->progress_ns;
  lua_pop(L, 1);                      /* stack: db, dst, opts, s, t, a, feed, onprog */
  lua_replace(L, 6);                  /* onprog -> 6 */
  lua_replace(L, 4);                  /* feed -> 4 (the stream name stays alive in opts) */
  lua_settop(L, F_TOP);
  return feed_loop(L);
}

/* prefix_streams(line, prefix) -> the message with every stream name it
** carries prefixed; unprefix_streams(line, prefix) -> the names that begin
** with the prefix without it (the others as they are). A line that is not
** a protocol message comes back unchanged. */
static int rename_streams(lua_State *L, int strip) {
  size_t len, plen, elen;
  const char *line = luaL_checklstring(L, 1, &len);
  const char *prefix = luaL_checklstring(L, 2, &plen);
  const char *esc = escaped_prefix(L, 2, &elen), *p = line;
  lb_jval names[MAX_SPLICES];
  lb_msg m;
  int n, i, pieces = 0;
  lb_msg_parse(line, len, &m);
  n = lb_msg_stream_names(&m, names, MAX_SPLICES);
  if (n > MAX_SPLICES) n = MAX_SPLICES;
  luaL_checkstack(L, 2 * n + 4, "renaming streams");
  for (i = 0; i < n; i++) {
    const lb_jval *nm = &names[i];
    if (!strip) {
      lua_pushlstring(L, p, (size_t)(nm->p + 1 - p));
      lua_pushlstring(L, esc, elen);
      pieces += 2;
      p = nm->p + 1;
    } else if (nm->n - 2 >= elen && memcmp(nm->p + 1, esc, elen) == 0) {
      lua_pushlstring(L, p, (size_t)(nm->p + 1 - p));       /* spelled as we escape it */
      pieces++;
      p = nm->p + 1 + elen;
    } else if (lb_jstr_has_escapes(nm)) {                     /* spelled otherwise: decode */
      char *buf = malloc(nm->n), err[64];
      size_t dn;
      if (buf == NULL) return luaL_error(L, "out of memory");
      dn = lb_jstr_decode(nm, buf, nm->n);
      if (dn >= plen && memcmp(buf, prefix, plen) == 0) {
        lua_pushlstring(L, p, (size_t)(nm->p - p));
        lua_pushlstring(L, buf + plen, dn - plen);
        free(buf);
        if (lb__json_encode_push(L, -1, err, sizeof err) != 0) return luaL_error(L, "%s", err);
        lua_remove(L, -2);
        pieces += 2;
        p = nm->p + nm->n;
      } else {
        free(buf);
      }
    }
  }
  lua_pushlstring(L, p, (size_t)(line + len - p));
  lua_concat(L, pieces + 1);
  return 1;
}

static int l_prefix_streams(lua_State *L) {
  return rename_streams(L, 0);
}

static int l_unprefix_streams(lua_State *L) {
  return rename_streams(L, 1);
}

static const luaL_Reg funcs[] = {
  {"prefix_streams", l_prefix_streams},
  {"unprefix_streams", l_unprefix_streams},
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
