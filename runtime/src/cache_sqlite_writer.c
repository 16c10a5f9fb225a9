/*
** cache_sqlite_writer.c - the SQLite backend's threads: the writer thread
** that inserts batches of rows and runs queued transaction steps, the
** turnstile that makes writers of one file take turns at its write lock,
** the busy handler, and the checkpointer (cache.h, "Async mode").
*/
#define _GNU_SOURCE        /* O_CLOEXEC under -std=c99 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include "background.h"
#include "cache_sqlite_int.h"

/* --- async mode: the writer thread ------------------------------------------------ */

static int run_job(sq_cache *c, batch *b, char *msg, size_t msglen);
static void job_free(batch *b);

static void batch_free(batch *b) {
  if (b == NULL) return;
  free(b->rows);
  free(b->text);
  free(b);
}

/* The writer's first failure is kept (sticky) until the caller hears of it. */
static void writer_failed(sq_cache *c, int code, const char *msg, size_t msglen) {
  uv_mutex_lock(&c->mu);
  if (c->async_err == 0) {
    c->async_err = code;
    memcpy(c->async_msg, msg, msglen);
  }
  uv_mutex_unlock(&c->mu);
}

static void writer_main(void *arg) {
  sq_cache *c = arg;
  lb__background_thread(&c->base.background);   /* below the loop thread */
  uv_mutex_lock(&c->mu);
  for (;;) {
    batch *b;
    size_t off;
    int i, failed, begin;
    while (c->queue == NULL && !c->stop) uv_cond_wait(&c->cv, &c->mu);
    if (c->queue == NULL) break;               /* stopping, nothing left */
    b = c->queue;
    c->queue = b->next;
    if (c->queue == NULL) c->queue_tail = NULL;
    c->queued--;
    if (b->job == JOB_BEGIN && b->lazy) {      /* the lock is taken by what comes next */
      c->begin_pending = c->async_err == 0;
      job_free(b);
      uv_cond_broadcast(&c->cv);
      continue;
    }
    c->busy = 1;
    failed = c->async_err != 0;
    begin = c->begin_pending && !failed;
    c->begin_pending = 0;
    uv_cond_broadcast(&c->cv);                 /* room in the queue */
    uv_mutex_unlock(&c->mu);
    c->writer_step = 1;                        /* until the lock below */
    if (begin && b->job != JOB_BEGIN) {        /* the lazy BEGIN, first */
      char msg[sizeof c->async_msg];
      batch bb;
      int code;
      memset(&bb, 0, sizeof bb);
      bb.job = JOB_BEGIN;
      if ((code = run_job(c, &bb, msg, sizeof msg)) != 0) {
        writer_failed(c, code, msg, sizeof msg);
        failed = 1;
      }
    }
    if (b->job) {                              /* a transaction step, in order with the rows */
      char msg[sizeof c->async_msg];
      int code = failed ? 0 : run_job(c, b, msg, sizeof msg);
      job_free(b);
      c->writer_step = 0;
      uv_mutex_lock(&c->mu);
      if (code && c->async_err == 0) {
        c->async_err = code;
        memcpy(c->async_msg, msg, sizeof msg);
      }
      c->busy = 0;
      uv_cond_broadcast(&c->cv);
      continue;
    }
    /* after a failure, rows are dropped until the caller hears of it */
    for (i = 0, off = 0; i < b->nrows && !failed;) {
      row_head *h = (row_head *)(void *)(b->rows + off);
      sq_stream *s = h->s;
      size_t rowsz = sizeof *h + (size_t)s->sch.ncols * sizeof(wval);
      int rc, k = 0;
      /* the next `multi` rows, when they all belong to this stream, go in
      ** with one statement */
      if (s->ins_multi && b->nrows - i >= s->multi) {
        size_t o = off;
        for (k = 0; k < s->multi && ((row_head *)(void *)(b->rows + o))->s == s; k++) o += rowsz;
        if (k < s->multi) k = 0;
      }
      if (k) {
        int r, ntot = s->sch.ncols + 3;
        rc = SQLITE_OK;
        for (r = 0; r < k && rc == SQLITE_OK; r++, off += rowsz) {
          h = (row_head *)(void *)(b->rows + off);
          rc = lb__sq_bind_row(s->ins_multi, r * ntot, s->sch.ncols, (const wval *)(void *)(h + 1), h->uuid,
                        h->ts, h->ts_len, h->meta);
        }
        rc = lb__sq_step_reset(s->ins_multi, rc);
        i += k;
      } else {
        rc = lb__sq_bind_step(s, (const wval *)(void *)(h + 1), h->uuid, h->ts, h->ts_len, h->meta);
        off += rowsz;
        i++;
      }
      /* a statement is a piece of at most MULTI_ROWS rows (~0.1 ms): a loop
      ** thread that waits for this CPU gets it now, not at the next tick */
      lb__background_yield();
      if (rc != SQLITE_OK) {
        char msg[sizeof c->async_msg];
        writer_failed(c, lb__sq_write_failed(s, rc, msg, sizeof msg), msg, sizeof msg);
        failed = 1;
      }
    }
    b->nrows = 0;
    b->rows_n = b->text_n = 0;
    c->writer_step = 0;
    uv_mutex_lock(&c->mu);
    b->next = c->spare;
    c->spare = b;
    c->busy = 0;
    uv_cond_broadcast(&c->cv);
  }
  uv_mutex_unlock(&c->mu);
}

int lb__sq_worker_start(sq_cache *c) {
  if (uv_mutex_init(&c->mu) != 0) return -1;
  if (uv_cond_init(&c->cv) != 0) { uv_mutex_destroy(&c->mu); return -1; }
  c->stop = 0;
  if (uv_thread_create(&c->thread, writer_main, c) != 0) {
    uv_cond_destroy(&c->cv);
    uv_mutex_destroy(&c->mu);
    return -1;
  }
  c->worker = 1;
  return 0;
}

/* With c->mu held: b goes to the end of the writer's queue. */
static void enqueue(sq_cache *c, batch *b) {
  b->next = NULL;
  if (c->queue_tail) c->queue_tail->next = b;
  else c->queue = b;
  c->queue_tail = b;
  c->queued++;
}

/* Hands the filled batch to the writer (waiting while the queue is full)
** and takes a spare one. Returns the writer's sticky error, if any. */
int lb__sq_submit(sq_cache *c) {
  batch *b = c->fill;
  int err;
  c->fill = NULL;
  uv_mutex_lock(&c->mu);
  while (c->queued >= BATCH_QUEUE && c->async_err == 0) uv_cond_wait(&c->cv, &c->mu);
  if (b) {
    if (b->nrows > 0) {
      enqueue(c, b);
      uv_cond_broadcast(&c->cv);
    } else {
      b->next = c->spare;
      c->spare = b;
    }
  }
  if (c->spare) {
    c->fill = c->spare;
    c->spare = c->fill->next;
  }
  err = c->async_err;
  if (err) memcpy(c->base.errmsg, c->async_msg, sizeof c->base.errmsg);
  uv_mutex_unlock(&c->mu);
  if (err) c->failed = err;
  return err;
}

/* Waits until every queued row is in the database. Returns the writer's
** sticky error (its message copied to errmsg). Every function that touches
** the database from the caller's side calls this first. */
int lb__sq_drain(sq_cache *c, int *pending) {
  int err;
  if (c->fill && c->fill->nrows > 0) lb__sq_submit(c);
  uv_mutex_lock(&c->mu);
  while (c->queued > 0 || c->busy) uv_cond_wait(&c->cv, &c->mu);
  err = c->async_err;
  if (err) memcpy(c->base.errmsg, c->async_msg, sizeof c->base.errmsg);
  *pending = c->begin_pending;
  uv_mutex_unlock(&c->mu);
  if (err) c->failed = err;
  return err;
}

/* A lazy BEGIN (commit_queued) is taken now: the caller is about to work
** in the transaction. */
int lb__sq_barrier(sq_cache *c) {
  int err, pending;
  if (!c->worker) return 0;
  err = lb__sq_drain(c, &pending);
  if (err == 0 && pending && (err = lb__sq_begin_queued(c)) == 0) err = lb__sq_drain(c, &pending);
  return err;
}

/* With c->mu held: waits on the writer until deadline_ns (0 = for ever);
** 0 when it was woken, 1 when the deadline passed. */
static int wait_until(sq_cache *c, uint64_t deadline_ns) {
  uint64_t now;
  if (deadline_ns == 0) {
    uv_cond_wait(&c->cv, &c->mu);
    return 0;
  }
  now = uv_hrtime();
  if (now >= deadline_ns) return 1;
  uv_cond_timedwait(&c->cv, &c->mu, deadline_ns - now);
  return 0;
}

/* Would the next write hand a batch over (reserve or its end)? */
static int write_submits(const sq_cache *c, size_t data_len) {
  const batch *b = c->fill;
  return b && b->nrows > 0 &&
         (b->nrows + 1 >= BATCH_ROWS || b->text_cap - b->text_n < 2 * data_len);
}

int lb__sq_wait_room(lb_cache *base, size_t data_len, uint64_t deadline_ns) {
  sq_cache *c = SQ(base);
  int room = 1;
  if (!c->worker || !write_submits(c, data_len)) return 1;
  uv_mutex_lock(&c->mu);
  while (c->queued >= BATCH_QUEUE && c->async_err == 0)
    if (wait_until(c, deadline_ns)) { room = 0; break; }
  uv_mutex_unlock(&c->mu);
  return room;
}

int lb__sq_wait_idle(lb_cache *base, uint64_t deadline_ns) {
  sq_cache *c = SQ(base);
  int idle = 1;
  if (!c->worker) return 1;
  if (c->fill && c->fill->nrows > 0) {
    if (!lb__sq_wait_room(base, (size_t)-1 / 4, deadline_ns)) return 0;
    lb__sq_submit(c);                      /* room in the queue: does not wait */
  }
  uv_mutex_lock(&c->mu);
  for (;;) {
    while ((c->queued > 0 || c->busy) && c->async_err == 0)
      if (wait_until(c, deadline_ns)) { idle = 0; break; }
    if (!idle || !c->begin_pending || c->async_err) break;
    /* a lazy BEGIN is taken now: the caller goes on in the transaction */
    uv_mutex_unlock(&c->mu);
    if (lb__sq_begin_queued(c) != 0) return 1;   /* the error is the caller's next */
    uv_mutex_lock(&c->mu);
  }
  uv_mutex_unlock(&c->mu);
  return idle;
}

void lb__sq_clear_async_err(sq_cache *c) {
  c->failed = 0;
  if (!c->worker) return;
  uv_mutex_lock(&c->mu);
  c->async_err = 0;
  uv_mutex_unlock(&c->mu);
}

void lb__sq_worker_stop(sq_cache *c) {
  batch *b;
  int pending;
  if (!c->worker) return;
  lb__sq_drain(c, &pending);           /* a lazy BEGIN is dropped: close rolls back anyway */
  uv_mutex_lock(&c->mu);
  c->stop = 1;
  uv_cond_broadcast(&c->cv);
  uv_mutex_unlock(&c->mu);
  uv_thread_join(&c->thread);
  c->worker = 0;
  batch_free(c->fill);
  c->fill = NULL;
  while ((b = c->spare) != NULL) { c->spare = b->next; batch_free(b); }
  uv_cond_destroy(&c->cv);
  uv_mutex_destroy(&c->mu);
}

int lb__sq_set_async(lb_cache *base, int on) {
  sq_cache *c = SQ(base);
  if (!on) {
    int err = lb__sq_barrier(c);
    lb__sq_worker_stop(c);
    lb__sq_ckpt_stop(c);
    c->async = 0;
    return err;
  }
  c->async = 1;
  lb__sq_ckpt_start(c);
  return 0;
}

/* --- the checkpointer ---------------------------------------------------------------- */

/* Pages in the WAL after which it is copied back, as SQLite's own
** wal_autocheckpoint default. */
#define CKPT_FRAMES 1000
/* WAL pages after which begin waits for a complete checkpoint. A WAL only
** starts over from its beginning when a transaction starts after every
** frame was copied back; a checkpointer that runs beside a busy writer is
** never done at that moment, so without this wait the WAL would grow for
** the whole sync. Past this size begin lets it finish (nothing writes
** meanwhile), at most the tail of the WAL is left to copy by then. */
#define WAL_LIMIT_FRAMES 16384

/* Runs after every commit of the cache's connection, in the committing
** thread (caller or writer). */
static int wal_hook(void *ud, sqlite3 *db, const char *name, int frames) {
  sq_cache *c = ud;
  (void)db;
  (void)name;
  uv_mutex_lock(&c->ckpt_mu);
  c->wal_frames = frames;
  c->ckpt_complete = 0;
  if (frames >= CKPT_FRAMES) {
    c->ckpt_pending = 1;
    uv_cond_broadcast(&c->ckpt_cv);
  }
  uv_mutex_unlock(&c->ckpt_mu);
  return SQLITE_OK;
}

/* A PASSIVE checkpoint from another connection runs while the cache's
** connection goes on writing (WAL allows it): the copy and its fsyncs leave
** the path of commit, where SQLite's automatic checkpoint would put them
** (about 0.1 s per 100,000 faker records on a plain disk). Durability is
** unchanged: a commit is as durable as before, the checkpoint only moves
** committed pages from the WAL into the database file. */
static void ckpt_main(void *arg) {
  sq_cache *c = arg;
  lb__background_thread(&c->base.background);
  uv_mutex_lock(&c->ckpt_mu);
  for (;;) {
    while (!c->ckpt_pending && !c->ckpt_stop) uv_cond_wait(&c->ckpt_cv, &c->ckpt_mu);
    int nlog = -1, nckpt = -1;
    if (c->ckpt_stop) break;
    c->ckpt_pending = 0;
    c->ckpt_busy = 1;
    uv_mutex_unlock(&c->ckpt_mu);
    sqlite3_wal_checkpoint_v2(c->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &nlog, &nckpt);
    uv_mutex_lock(&c->ckpt_mu);
    c->ckpt_busy = 0;
    if (nlog >= 0 && nckpt == nlog && !c->ckpt_pending) c->ckpt_complete = 1;
    uv_cond_broadcast(&c->ckpt_cv);
  }
  uv_mutex_unlock(&c->ckpt_mu);
}

/* Starts the checkpointer when the database is a file in WAL mode; when it
** cannot, SQLite's automatic checkpoint stays in charge. */
void lb__sq_ckpt_start(sq_cache *c) {
  sqlite3_stmt *st = NULL;
  int wal = 0;
  if (c->ckpt || !c->async) return;
  if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    wal = mode && strcmp(mode, "wal") == 0;
  }
  sqlite3_finalize(st);
  if (!wal) return;
  /* the main connection's file name is absolute: a chdir since open is fine */
  {
    const char *fn = sqlite3_db_filename(c->db, "main");
    if (fn && *fn) {
      char *abs = lb__sq_dupstr(fn, strlen(fn));
      if (abs) { free(c->path); c->path = abs; }
    }
  }
  if (sqlite3_open_v2(c->path, &c->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL)
      != SQLITE_OK) {
    sqlite3_close_v2(c->ckpt_db);
    c->ckpt_db = NULL;
    return;
  }
  sqlite3_busy_timeout(c->ckpt_db, BUSY_TIMEOUT_MS);
  /* a connection learns that the file is in WAL mode on its first read;
  ** until then its checkpoints do nothing */
  if (sqlite3_exec(c->ckpt_db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK)
    goto fail_db;
  if (uv_mutex_init(&c->ckpt_mu) != 0) goto fail_db;
  if (uv_cond_init(&c->ckpt_cv) != 0) goto fail_mu;
  c->ckpt_pending = c->ckpt_stop = c->ckpt_busy = c->wal_frames = c->ckpt_complete = 0;
  if (uv_thread_create(&c->ckpt_thread, ckpt_main, c) != 0) goto fail_cv;
  c->ckpt = 1;
  sqlite3_wal_hook(c->db, wal_hook, c);   /* replaces the automatic checkpoint */
  return;
fail_cv:
  uv_cond_destroy(&c->ckpt_cv);
fail_mu:
  uv_mutex_destroy(&c->ckpt_mu);
fail_db:
  sqlite3_close_v2(c->ckpt_db);
  c->ckpt_db = NULL;
}

/* Before a write transaction: when the WAL has grown past the limit, wait
** for a checkpoint that copies all of it, so that the transaction starts
** the WAL over. */
static void ckpt_bound_wal(sq_cache *c) {
  int tries;
  if (!c->ckpt) return;
  uv_mutex_lock(&c->ckpt_mu);
  for (tries = 0; tries < 3 && c->wal_frames >= WAL_LIMIT_FRAMES && !c->ckpt_complete; tries++) {
    while (c->ckpt_busy || c->ckpt_pending) uv_cond_wait(&c->ckpt_cv, &c->ckpt_mu);
    if (c->ckpt_complete) break;
    c->ckpt_pending = 1;              /* one more pass, now that nothing writes */
    uv_cond_broadcast(&c->ckpt_cv);
    while (c->ckpt_busy || c->ckpt_pending) uv_cond_wait(&c->ckpt_cv, &c->ckpt_mu);
  }
  uv_mutex_unlock(&c->ckpt_mu);
}

void lb__sq_ckpt_stop(sq_cache *c) {
  if (!c->ckpt) return;
  sqlite3_wal_autocheckpoint(c->db, CKPT_FRAMES);   /* back to SQLite's own */
  uv_mutex_lock(&c->ckpt_mu);
  c->ckpt_stop = 1;
  uv_cond_signal(&c->ckpt_cv);
  uv_mutex_unlock(&c->ckpt_mu);
  uv_thread_join(&c->ckpt_thread);
  uv_cond_destroy(&c->ckpt_cv);
  uv_mutex_destroy(&c->ckpt_mu);
  sqlite3_close_v2(c->ckpt_db);
  c->ckpt_db = NULL;
  c->ckpt = 0;
}

int lb__sq_sync(lb_cache *base) {
  return lb__sq_barrier(SQ(base));
}

/* Room for a row of ncols values and `text` bytes in the fill batch: a new
** batch when the current one is full, a bigger text area only while the
** batch is empty (rows point into it). */
int lb__sq_reserve(sq_cache *c, int ncols, size_t text) {
  size_t need = sizeof(row_head) + (size_t)ncols * sizeof(wval);
  batch *b = c->fill;
  int err;
  if (b && b->nrows > 0 && (b->nrows >= BATCH_ROWS || b->text_cap - b->text_n < text)) {
    if ((err = lb__sq_submit(c)) != 0) return err;
    b = c->fill;
  }
  if (b == NULL) {
    if ((b = calloc(1, sizeof *b)) == NULL) goto oom;
    c->fill = b;
  }
  if (b->text_cap - b->text_n < text) {       /* only when empty */
    size_t cap = b->text_cap ? b->text_cap : BATCH_TEXT;
    char *p;
    while (cap < text) cap *= 2;
    if ((p = realloc(b->text, cap)) == NULL) goto oom;
    b->text = p;
    b->text_cap = cap;
  }
  if (b->rows_cap - b->rows_n < need) {
    size_t cap = b->rows_cap ? b->rows_cap : 64 * 1024;
    char *p;
    while (cap - b->rows_n < need) cap *= 2;
    if ((p = realloc(b->rows, cap)) == NULL) goto oom;
    b->rows = p;
    b->rows_cap = cap;
  }
  return 0;
oom:
  lb__sq_seterr(c, "out of memory");
  return LB_ENOMEM;
}

/* --- queued transactions -------------------------------------------------------------
** BEGIN, COMMIT and the state stored before a COMMIT are jobs in the writer's
** queue, run in order with the rows (run_job). The caller hands them over and
** goes on: it never waits for the write lock (another connection holds it),
** for a commit's writes, or for a checkpoint; it asks lb_cache_wait_idle when
** it needs them done, with a deadline, and yields meanwhile. In sync mode
** (no writer thread) they run at once on the caller's thread.
**
** Taking turns.  SQLite's write lock is not fair: a writer that commits and
** begins again at once keeps it, while another one polls for it in its busy
** handler and times out. So writers of one file line up at a turnstile
** beside it ("<file>-lbturn", flock): a writer waiting for the lock holds it
** shared; one that has just committed checks for such a waiter and, if there
** is one, waits (up to GIVE_WAY_MS) until the waiter has the lock before it
** begins again. That works between processes and between connections of one
** process alike, since each connection opens the file itself. */

struct state_job {
  const char *source, *name, *ns, *json;
  size_t name_len, ns_len, json_len;
  char buf[1];                  /* the four texts */
};

static void job_free(batch *b) {
  if (b == NULL) return;
  free(b->state);
  free(b);
}

static int quitting(sq_cache *c) {
  int quit;
  if (!c->worker) return 0;
  uv_mutex_lock(&c->mu);
  quit = c->quit;
  uv_mutex_unlock(&c->mu);
  return quit;
}

/* SQLite's busy handler for the connection, on whichever thread uses it: in
** nowait mode the caller's thread never waits here (fail_code); on the
** writer thread a transaction step (lock_wait) waits up to the lock
** timeout, anything else the
** plain BUSY_TIMEOUT_MS, polling every millisecond (SQLite's own handler
** sleeps up to 100 ms between tries, and so misses a lock that is free
** only between another writer's commit and its next begin). */
int lb__sq_on_busy(void *ud, int n) {
  sq_cache *c = ud;
  uint64_t now = uv_hrtime();
  uint64_t limit = (uint64_t)(c->lock_wait ? c->base.lock_timeout_ms : BUSY_TIMEOUT_MS) * 1000000u;
  if (c->base.nowait && !c->writer_step) return 0;   /* the caller's thread: it retries yielding */
  if (n == 0) c->busy_since = now;
  if (now - c->busy_since >= limit || (c->lock_wait && quitting(c))) return 0;
  uv_sleep(1);
  return 1;
}

/* The turnstile's descriptor, opened on first use; -1 when there is none
** (an in-memory database, a directory we cannot write: no turns then). */
static int turn_fd(sq_cache *c) {
  if (c->turn_fd == -1) {
    const char *fn = sqlite3_db_filename(c->db, "main");
    char path[4096];
    c->turn_fd = -2;
    if (fn && *fn && snprintf(path, sizeof path, "%s-lbturn", fn) < (int)sizeof path) {
      int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      if (fd >= 0) c->turn_fd = fd;
    }
  }
  return c->turn_fd >= 0 ? c->turn_fd : -1;
}

static void give_way(sq_cache *c) {
  int fd = turn_fd(c);
  uint64_t until;
  if (fd < 0) return;
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {     /* a writer is waiting for the lock */
    until = uv_hrtime() + (uint64_t)GIVE_WAY_MS * 1000000u;
    do uv_sleep(1);
    while (flock(fd, LOCK_EX | LOCK_NB) != 0 && uv_hrtime() < until && !quitting(c));
  }
  flock(fd, LOCK_UN);
}

/* One transaction step; 0 or an error code with its message in msg. */
static int run_job(sq_cache *c, batch *b, char *msg, size_t msglen) {
  char why[256];
  const char *sql = NULL;
  int rc = SQLITE_OK, fd;
  switch (b->job) {
    case JOB_BEGIN:
      if (sqlite3_get_autocommit(c->db) == 0) {
        snprintf(msg, msglen, "a transaction is already open");
        return LB_EINVAL;
      }
      ckpt_bound_wal(c);
      fd = turn_fd(c);
      if (fd >= 0) flock(fd, LOCK_SH);          /* waiting: holders give way */
      c->lock_wait = c->worker;                 /* sync mode: the caller's thread, as before */
      rc = sqlite3_exec(c->db, sql = "BEGIN IMMEDIATE", NULL, NULL, NULL);
      c->lock_wait = 0;
      if (fd >= 0) flock(fd, LOCK_UN);
      break;
    case JOB_COMMIT:
      if (sqlite3_get_autocommit(c->db)) {
        snprintf(msg, msglen, "no transaction is open");
        return LB_EINVAL;
      }
      rc = sqlite3_exec(c->db, sql = "COMMIT", NULL, NULL, NULL);
      /* the caller's thread in nowait mode does not wait to give way */
      if (rc == SQLITE_OK && (c->writer_step || !c->base.nowait)) give_way(c);
      break;
    case JOB_STATE: {
      const state_job *j = b->state;
      rc = lb__sq_store_state(c, j->source, j->name, j->name_len, j->ns, j->ns_len, j->json, j->json_len, &sql);
      break;
    }
    default:
      break;
  }
  if (rc == SQLITE_OK) return 0;
  lb__sq_sqlite_why(c, c->db, why, sizeof why);
  if (lb__sq_nowait_busy(c, rc)) {                      /* sync mode on the caller's thread */
    rc = lb__sq_fail_code(c, rc, sql, strlen(sql));
    snprintf(msg, msglen, "%s", c->base.errmsg);
    return rc;
  }
  if ((rc & 0xff) == SQLITE_BUSY)
    snprintf(msg, msglen, "the cache file %.300s is locked: another process holds its write lock"
             " (in: %s); gave up after %ld ms", c->path, sql, c->base.lock_timeout_ms);
  else
    snprintf(msg, msglen, "%.250s (in: %s)", why, sql);
  return rc == SQLITE_NOMEM ? LB_ENOMEM : LB_CACHE_ESQL;
}

/* Hands a job to the writer after the rows filled so far (neither waits for
** room: a job is small, and the pump waits for room before a STATE), or runs
** it now in sync mode. Takes b. Returns the writer's sticky error, if any. */
static int queue_job(sq_cache *c, batch *b) {
  int err;
  if (c->async && !c->worker && lb__sq_worker_start(c) != 0) c->async = 0;   /* no thread: stay sync */
  if (!c->worker) {
    char msg[sizeof c->base.errmsg];
    err = run_job(c, b, msg, sizeof msg);
    job_free(b);
    if (err) memcpy(c->base.errmsg, msg, sizeof msg);
    return err;
  }
  uv_mutex_lock(&c->mu);
  if (c->fill && c->fill->nrows > 0) {
    enqueue(c, c->fill);
    c->fill = c->spare;
    if (c->spare) c->spare = c->spare->next;
  }
  enqueue(c, b);
  uv_cond_broadcast(&c->cv);
  err = c->async_err;
  if (err) memcpy(c->base.errmsg, c->async_msg, sizeof c->base.errmsg);
  uv_mutex_unlock(&c->mu);
  if (err) c->failed = err;
  return err;
}

static batch *job_new(sq_cache *c, int kind) {
  batch *b = calloc(1, sizeof *b);
  if (b == NULL) { lb__sq_seterr(c, "out of memory"); return NULL; }
  b->job = kind;
  return b;
}

/* Nothing queued or running: the caller has seen every outcome. */
static int writer_idle(sq_cache *c) {
  int idle;
  if (!c->worker) return 1;
  if (c->fill && c->fill->nrows > 0) return 0;
  uv_mutex_lock(&c->mu);
  idle = c->queued == 0 && !c->busy && !c->begin_pending;
  uv_mutex_unlock(&c->mu);
  return idle;
}

int lb__sq_begin_queued(sq_cache *c) {
  batch *b;
  if (writer_idle(c)) {         /* as lb_cache_begin: a new transaction forgets the failed one */
    lb__sq_clear_async_err(c);
    if (lb__sq_in_transaction(&c->base)) { lb__sq_seterr(c, "a transaction is already open"); return LB_EINVAL; }
  } else if (c->failed) {
    return c->failed;
  }
  if ((b = job_new(c, JOB_BEGIN)) == NULL) return LB_ENOMEM;
  return queue_job(c, b);
}

/* r: the state to store first (its key derived by cache.c), NULL = none. */
int lb__sq_commit_queued(sq_cache *c, const lb_cache_state_row *r, int begin_again) {
  batch *st = NULL, *cm, *bg = NULL;
  int rc;
  if (c->failed) return c->failed;      /* rows were lost: the caller must roll back */
  if (r) {
    size_t slen = strlen(r->source_name);
    state_job *j;
    char *p;
    if ((st = job_new(c, JOB_STATE)) == NULL) return LB_ENOMEM;
    if ((j = malloc(sizeof *j + slen + r->key_name_len + r->key_ns_len + r->len + 4)) == NULL) {
      free(st);
      lb__sq_seterr(c, "out of memory");
      return LB_ENOMEM;
    }
    p = j->buf;
    j->source = p; memcpy(p, r->source_name, slen + 1); p += slen + 1;
    j->name = p; memcpy(p, r->key_name, r->key_name_len); p[r->key_name_len] = '\0';
    p += r->key_name_len + 1; j->name_len = r->key_name_len;
    j->ns = p; memcpy(p, r->key_ns, r->key_ns_len); p[r->key_ns_len] = '\0';
    p += r->key_ns_len + 1; j->ns_len = r->key_ns_len;
    j->json = p; memcpy(p, r->state_json, r->len); p[r->len] = '\0'; j->json_len = r->len;
    st->state = j;
  }
  if ((cm = job_new(c, JOB_COMMIT)) == NULL || (begin_again && (bg = job_new(c, JOB_BEGIN)) == NULL)) {
    job_free(st);
    free(cm);
    return LB_ENOMEM;
  }
  if (bg) bg->lazy = 1;
  if (st && (rc = queue_job(c, st)) != 0) { free(cm); free(bg); return rc; }
  if ((rc = queue_job(c, cm)) != 0) { free(bg); return rc; }
  return bg ? queue_job(c, bg) : 0;
}

int lb__sq_op_begin_queued(lb_cache *base) { return lb__sq_begin_queued(SQ(base)); }

int lb__sq_op_commit_queued(lb_cache *base, const lb_cache_state_row *r, int begin_again) {
  return lb__sq_commit_queued(SQ(base), r, begin_again);
}
