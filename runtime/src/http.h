/*
** http.h - HTTP(S) requests through libcurl's multi-socket API, driven by
** a libuv loop. One lb_http (a curl multi handle: connection cache, DNS
** cache) per runtime; no globals, so several runtimes can share a process.
**
** libuv callbacks only move bytes into the request's buffers and call the
** request's done callback, which must not run Lua (it wakes a task).
**
** A request is owned by its creator (the Lua binding keeps it in a box):
** lb__http_req_free frees it whether it is in flight, done or detached.
*/
#ifndef LB_HTTP_H
#define LB_HTTP_H

#include <stddef.h>
#include <uv.h>
#include <curl/curl.h>

typedef struct lb_http lb_http;
typedef struct lb_http_req lb_http_req;
typedef void (*lb_http_done_fn)(lb_http_req *r, void *ud);

typedef struct lb_http_buf {
  char  *p;
  size_t len, cap;
} lb_http_buf;

struct lb_http_req {
  lb_http         *h;            /* NULL once detached (lb_http closed) */
  CURL            *easy;
  struct curl_slist *headers;
  char            *body;         /* the request body (curl does not copy it) */
  size_t           body_len;
  int              in_multi;     /* added to h's multi handle */
  int              done;         /* finished: result, status and buffers are set */
  int              too_large;    /* the response body went over max_body */
  size_t           max_body;
  CURLcode         result;
  long             status;
  char            *effective_url;/* after redirects; NULL if unknown */
  lb_http_buf      resp_body;
  lb_http_buf      resp_head;    /* header lines of the last response */
  char             errbuf[CURL_ERROR_SIZE];
  lb_http_done_fn  done_cb;
  void            *done_ud;
  lb_http_req     *prev, *next;  /* h->reqs */
};

typedef struct lb_http_opts {
  const char *method;            /* "GET", "POST", ... (upper case) */
  const char *url;
  const char *body;              /* NULL = no body */
  size_t      body_len;
  long        timeout_ms;        /* overall, 0 = none */
  long        connect_timeout_ms;/* 0 = curl's default */
  size_t      max_body;          /* response body limit in bytes, 0 = none */
  int         follow_redirects;
  const char *user_agent;        /* NULL = none unless a header sets it */
  const char *ca_file;           /* PEM bundle to trust, NULL = the system's */
} lb_http_opts;

/* A new multi handle on loop, or NULL with a message in err. */
lb_http *lb__http_new(uv_loop_t *loop, char *err, size_t errlen);
/* Detaches the requests still in flight (their done callbacks never run),
** closes the handles; the memory goes when libuv has closed them. */
void lb__http_close(lb_http *h);
/* Requests in flight (started, not done, not aborted). */
int lb__http_inflight(const lb_http *h);

lb_http_req *lb__http_req_new(lb_http *h);            /* NULL: out of memory */
/* Adds one request header; an empty value is sent as an empty header.
** 0, or LB_ENOMEM. */
int  lb__http_req_header(lb_http_req *r, const char *name, size_t nlen,
                         const char *value, size_t vlen);
/* Starts the transfer; done_cb(r, ud) runs from a libuv callback when it
** ends (r->done is set, r->result says how). 0, or a negative code with a
** message in r->errbuf. */
int  lb__http_req_start(lb_http_req *r, const lb_http_opts *o,
                        lb_http_done_fn done_cb, void *ud);
/* Stops a transfer in flight without calling its done callback. */
void lb__http_req_abort(lb_http_req *r);
void lb__http_req_free(lb_http_req *r);

#endif
