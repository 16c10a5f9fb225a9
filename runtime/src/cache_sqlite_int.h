/*
** cache_sqlite_int.h - what the SQLite backend's two files share (internal):
** the cache and stream structs, the batches, and the functions each file
** gives the other (cache_sqlite.c: the backend; cache_sqlite_writer.c: the
** writer thread, queued transactions, the turnstile and the checkpointer).
*/
#ifndef LB_CACHE_SQLITE_INT_H
#define LB_CACHE_SQLITE_INT_H

#include <stdint.h>
#include <sqlite3.h>
#include <uv.h>
#include "cache_backend.h"

#define BUSY_TIMEOUT_MS 5000

typedef struct sq_cache sq_cache;
typedef struct sq_stream sq_stream;
typedef struct sq_query sq_query;
#define SQ(b) ((sq_cache *)(void *)(b))     /* the head is the first member */
#define SQS(b) ((sq_stream *)(void *)(b))

/* A value of a record, scanned by lb__cache_scan_row and ready to bind.
** Text points into the record (sync mode) or into a batch's copy of it
** (async mode). */
typedef lb_cache_wval wval;
enum { V_NULL = LB_WV_NULL, V_INT = LB_WV_INT, V_DBL = LB_WV_DBL, V_TEXT = LB_WV_TEXT,
       V_BLOB = LB_WV_BIGINT };

/* Async mode: rows travel from the caller to the writer thread in batches.
** A row is a row_head followed by one wval per column of its stream; the
** text it points to lives in the batch's text area, which never moves
** while the batch holds rows (room is checked before a row is added). */
typedef struct row_head {
  sq_stream *s;
  const char *meta;             /* in the text area, NUL-terminated; NULL = {} */
  int ts_len;
  char uuid[37];                /* made by the caller, like the rest */
  char ts[48];
} row_head;

typedef struct state_job state_job;

typedef struct batch {
  struct batch *next;
  int job;                      /* JOB_ROWS, or a transaction step (see run_job) */
  int lazy;                     /* JOB_BEGIN: only once something is written */
  state_job *state;             /* JOB_STATE: what to store */
  char *rows;
  size_t rows_n, rows_cap;
  char *text;
  size_t text_n, text_cap;
  int nrows;
} batch;

#define BATCH_ROWS 1024         /* hand a batch over after this many rows */
#define BATCH_TEXT (1u << 20)   /* ... or this many bytes of text */
#define BATCH_QUEUE 2           /* batches waiting for the writer at most */
#define GIVE_WAY_MS 2000        /* after a commit, waits this long for a waiting writer's turn */

enum { JOB_ROWS = 0, JOB_BEGIN, JOB_COMMIT, JOB_STATE };

struct sq_cache {
  lb_cache base;                /* first: the head of every backend (cache_backend.h) */
  sqlite3 *db;
  sq_stream *streams;           /* open streams, closed with the cache */
  sqlite3_stmt *put_state, *get_state, *put_dstate, *get_ledger, *put_ledger;
  sq_query *queries;            /* open ad-hoc queries, closed with the cache */
  lb_sbuf owner;                /* the strings of the last table_owner answer */
  char owner_what[32];
  /* async mode (see lb_cache_set_async): the fields after `mu` are shared
  ** with the writer thread and only touched with mu held */
  int async;                    /* wanted */
  int worker;                   /* the writer thread runs */
  int failed;                   /* async_err was seen by the caller */
  uv_thread_t thread;
  batch *fill;                  /* being filled by the caller */
  uv_mutex_t mu;
  uv_cond_t cv;
  batch *queue, *queue_tail;
  int queued;
  int busy;                     /* the writer is inserting a batch */
  int stop;
  batch *spare;                 /* free batches */
  int async_err;                /* first failure of the writer, sticky */
  char async_msg[512];
  /* the write lock: whoever runs a transaction step (the writer thread,
  ** or the caller in sync mode) waits for it in on_busy; turn_fd is the
  ** turnstile beside the file that makes writers take turns (turn_enter) */
  int lock_wait;                /* a transaction step runs: wait up to the lock timeout */
  int writer_step;              /* the writer thread has the connection (set and read there) */
  uint64_t busy_since;          /* when the current wait for a lock began */
  int turn_fd;                  /* -1 = not open (yet), -2 = none (":memory:") */
  int quit;                     /* closing: a wait for the lock gives up (under mu) */
  int begin_pending;            /* a lazy BEGIN waits for something to write (under mu) */
  struct stream_lock *locks;    /* stream locks held through this cache */
  /* the checkpointer: a thread with its own connection that copies the WAL
  ** into the database file when it has grown, instead of the connection
  ** that commits (see ckpt_start) */
  char *path;
  int ckpt;                     /* the checkpointer runs */
  uv_thread_t ckpt_thread;
  sqlite3 *ckpt_db;
  uv_mutex_t ckpt_mu;
  uv_cond_t ckpt_cv;
  int ckpt_pending, ckpt_stop;  /* under ckpt_mu */
  int ckpt_busy;                /* a pass is running (under ckpt_mu) */
  int wal_frames;               /* WAL size at the last commit (under ckpt_mu) */
  int ckpt_complete;            /* the last pass copied the whole WAL (under ckpt_mu) */
};

struct sq_stream {
  lb_cache_stream base;         /* first: name, namespace, table, rows */
  sq_cache *c;
  sq_stream *prev, *next;
  sqlite3_stmt *ins;
  sqlite3_stmt *ins_multi;      /* the writer thread's, `multi` rows at once */
  int multi;
  lb_write_strategy strategy;
  char *target;                 /* table written to: final or shadow */
  lb_cache_schema sch;          /* the columns (cache_columns.c) */
  int guess;                    /* property expected next */
  wval *vals;                   /* sync mode: the values of the current record */
  char *arena;                  /* sync mode: its decoded strings */
  size_t arena_cap;
  lb_cache_ts ts;               /* _airbyte_extracted_at of the current record */
  int finished;
  char uuid[37];
};

/* --- from cache_sqlite.c ------------------------------------------------------- */

int lb__sq_bind_row(sqlite3_stmt *st, int base, int ncols, const wval *vals, const char *uuid,
                    const char *ts, int ts_len, const char *meta_json);
int lb__sq_bind_step(sq_stream *s, const wval *vals, const char *uuid, const char *ts, int ts_len,
                     const char *meta_json);
char *lb__sq_dupstr(const char *s, size_t n);
int lb__sq_fail_code(sq_cache *c, int ec, const char *sql, size_t len);
int lb__sq_nowait_busy(sq_cache *c, int ec);
void lb__sq_seterr(sq_cache *c, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;
int lb__sq_in_transaction(const lb_cache *base);
void lb__sq_sqlite_why(sq_cache *c, sqlite3 *db, char *out, size_t len);
int lb__sq_step_reset(sqlite3_stmt *st, int rc);
int lb__sq_store_state(sq_cache *c, const char *source, const char *name, size_t nlen,
                       const char *ns, size_t nslen, const char *json, size_t jlen,
                       const char **sql);
int lb__sq_write_failed(sq_stream *s, int rc, char *msg, size_t msglen);

/* --- from cache_sqlite_writer.c --------------------------------------------------- */

int lb__sq_barrier(sq_cache *c);
int lb__sq_begin_queued(sq_cache *c);
void lb__sq_ckpt_start(sq_cache *c);
void lb__sq_ckpt_stop(sq_cache *c);
void lb__sq_clear_async_err(sq_cache *c);
int lb__sq_commit_queued(sq_cache *c, const lb_cache_state_row *r, int begin_again);
int lb__sq_drain(sq_cache *c, int *pending);
int lb__sq_on_busy(void *ud, int n);
int lb__sq_reserve(sq_cache *c, int ncols, size_t text);
int lb__sq_submit(sq_cache *c);
int lb__sq_worker_start(sq_cache *c);
void lb__sq_worker_stop(sq_cache *c);
int lb__sq_op_begin_queued(lb_cache *base);
int lb__sq_op_commit_queued(lb_cache *base, const lb_cache_state_row *r, int begin_again);
int lb__sq_set_async(lb_cache *base, int on);
int lb__sq_sync(lb_cache *base);
int lb__sq_wait_idle(lb_cache *base, uint64_t deadline_ns);
int lb__sq_wait_room(lb_cache *base, size_t data_len, uint64_t deadline_ns);

#endif
