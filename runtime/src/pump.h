/*
** pump.h - what the pump's files share: its state and stack slots, and the
** pieces one file gives the others (pump.c the loop, pump_validate.c the
** record checks, pump_feed.c cache -> destination, pump_rename.c the
** stream prefix).
*/
#ifndef LB_PUMP_H
#define LB_PUMP_H
#include "lua_bindings.h"
#include "cache.h"
#include "proc.h"
#include "protocol.h"

#define YIELD_CHECK 512              /* records between budget checks */
#define BUDGET_CHECK 32              /* ... while a step has a budget (hooks: every record) */
#define WBUF_SIZE (120 * 1024)       /* batched writes; under malloc's mmap threshold */
#define MAX_SPLICES 64               /* stream names a message may carry, plus its data */

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

/* pump.c */
/* Calls the function below nargs values; raises with `what` in front. */
void lb__pump_call_lua(lua_State *L, int nargs, int nres, const char *what);
/* invalid[stream][reason] += 1 (the S_INVALID table) */
void lb__pump_count_invalid(lua_State *L, const lb_jval *stream, const char *reason);
/* emitted_at as epoch ms in the cache's range; 1 when it was clamped */
int  lb__pump_emitted_ms(const lb_jval *v, long long *ms);
/* Raises why a write to the destination failed (proc.c's wording). */
void lb__pump_raise_write_error(lua_State *L, lb_proc *dst, int rc);
void lb__pump_cleanup_write(void *data);   /* a cancelled wait for room in dst's pipe */

/* pump_validate.c: the validate option */
void lb__pump_setup_validate(lua_State *L, pump *pm, int idx);
int  lb__pump_check_record(lua_State *L, pump *pm, pump_stream *ps, const lb_msg *m, lb_jval *data,
                           int *pushed, const char **meta);

/* pump_feed.c: pump.from_cache */
int  lb__pump_from_cache(lua_State *L);

/* pump_rename.c: the stream prefix, pump.prefix_streams / unprefix_streams */
const char *lb__pump_escaped_prefix(lua_State *L, int idx, size_t *len);
int  lb__pump_prefix_streams(lua_State *L);
int  lb__pump_unprefix_streams(lua_State *L);

#endif
