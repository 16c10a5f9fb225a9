/*
** http.c - libcurl's multi-socket API on a libuv loop.
**
** curl tells us which sockets to watch (socket callback -> uv_poll) and when
** to call it back (timer callback -> uv_timer); libuv tells curl when a
** socket is ready or the timer fired (curl_multi_socket_action). Finished
** transfers are collected with curl_multi_info_read and reported through
** the request's done callback. Nothing here blocks the loop: the DNS
** resolver of Debian's libcurl runs in a thread of its own.
*/
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "lb_internal.h"
#include "http.h"

typedef struct sock_ctx {
  uv_poll_t        poll;
  curl_socket_t    fd;
  lb_http         *h;
  struct sock_ctx *prev, *next;
} sock_ctx;

struct lb_http {
  uv_loop_t   *loop;
  CURLM       *multi;
  uv_timer_t   timer;
  sock_ctx    *socks;          /* sockets being watched */
  lb_http_req *reqs;           /* every request not yet freed */
  int          inflight;
};

/* --- buffers --------------------------------------------------------------- */

static int buf_add(lb_http_buf *b, const char *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *np;
    while (cap < b->len + n) cap *= 2;
    np = realloc(b->p, cap);
    if (np == NULL) return LB_ENOMEM;
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return 0;
}

static void buf_free(lb_http_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

/* --- curl callbacks (no Lua) --------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  lb_http_req *r = ud;
  size_t len = size * n;
  if (r->max_body && r->resp_body.len + len > r->max_body) {
    r->too_large = 1;
    return 0;                  /* curl stops with CURLE_WRITE_ERROR */
  }
  if (buf_add(&r->resp_body, p, len) != 0) return 0;
  return len;
}

/* Keeps the header lines of the last response only: a redirect or a
** "100 Continue" starts over with its status line. */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  lb_http_req *r = ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
    r->resp_head.len = 0;
    return len;
  }
  if (buf_add(&r->resp_head, p, len) != 0) return 0;
  return len;
}

static void finish(lb_http *h, lb_http_req *r, CURLcode result) {
  char *url = NULL;
  curl_multi_remove_handle(h->multi, r->easy);
  r->in_multi = 0;
  r->result = result;
  r->done = 1;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
  if (curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url)
    r->effective_url = strdup(url);
  if (--h->inflight == 0) uv_unref((uv_handle_t *)&h->timer);
}

static void check_done(lb_http *h) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
    lb_http_req *r;
    if (m->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    finish(h, r, m->data.result);
    if (r->done_cb) r->done_cb(r, r->done_ud);
  }
}

static void on_poll(uv_poll_t *p, int status, int events) {
  sock_ctx *s = p->data;
  lb_http *h = s->h;
  int flags = 0, running;
  if (status < 0) flags = CURL_CSELECT_ERR;
  else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  curl_multi_socket_action(h->multi, s->fd, flags, &running);
  check_done(h);
}

static void on_timer(uv_timer_t *t) {
  lb_http *h = t->data;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(h);
}

static void on_sock_closed(uv_handle_t *p) {
  free(p->data);
}

static void sock_close(lb_http *h, sock_ctx *s) {
  if (s->prev) s->prev->next = s->next;
  else h->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  lb_http *h = userp;
  sock_ctx *s = socketp;
  int events = 0;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(h->multi, fd, NULL);
      sock_close(h, s);
    }
    return 0;
  }
  if (s == NULL) {
    s = calloc(1, sizeof *s);
    if (s == NULL) return -1;
    if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->fd = fd;
    s->h = h;
    s->poll.data = s;
    s->next = h->socks;
    if (h->socks) h->socks->prev = s;
    h->socks = s;
    curl_multi_assign(h->multi, fd, s);
  }
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  if (uv_poll_start(&s->poll, events, on_poll) != 0) return -1;
  return 0;
}

/* Never calls curl from here: curl asks for a zero timeout when it wants
** to be driven at once, and the uv timer does that on the next turn. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  lb_http *h = userp;
  (void)multi;
  if (timeout_ms < 0) uv_timer_stop(&h->timer);
  else uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
  return 0;
}

/* --- the multi handle ------------------------------------------------------ */

lb_http *lb__http_new(uv_loop_t *loop, char *err, size_t errlen) {
  lb_http *h;
  /* reference counted by curl; thread-safe in the Debian build (7.84+) */
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(err, errlen, "libcurl could not be initialised");
    return NULL;
  }
  h = calloc(1, sizeof *h);
  if (h == NULL || (h->multi = curl_multi_init()) == NULL) {
    free(h);
    curl_global_cleanup();
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  h->loop = loop;
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  uv_unref((uv_handle_t *)&h->timer);   /* only requests in flight keep the loop alive */
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  return h;
}

static void on_timer_closed(uv_handle_t *t) {
  free(t->data);
}

void lb__http_close(lb_http *h) {
  if (h == NULL) return;
  /* Their owners free them later: detach them, and let go of the easy
  ** handles now, while libcurl is still initialised. */
  while (h->reqs) {
    lb_http_req *r = h->reqs;
    lb__http_req_abort(r);
    h->reqs = r->next;
    r->prev = r->next = NULL;
    r->h = NULL;
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
  }
  while (h->socks) sock_close(h, h->socks);   /* before curl closes the sockets */
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, NULL);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, NULL);
  curl_multi_cleanup(h->multi);
  h->multi = NULL;
  curl_global_cleanup();
  uv_timer_stop(&h->timer);
  uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}

int lb__http_inflight(const lb_http *h) {
  return h->inflight;
}

/* --- requests -------------------------------------------------------------- */

lb_http_req *lb__http_req_new(lb_http *h) {
  lb_http_req *r = calloc(1, sizeof *r);
  if (r == NULL) return NULL;
  r->h = h;
  r->easy = curl_easy_init();
  if (r->easy == NULL) {
    free(r);
    return NULL;
  }
  r->next = h->reqs;
  if (h->reqs) h->reqs->prev = r;
  h->reqs = r;
  return r;
}

int lb__http_req_header(lb_http_req *r, const char *name, size_t nlen,
                        const char *value, size_t vlen) {
  struct curl_slist *l;
  /* "Name: value"; curl sends "Name;" as a header with an empty value */
  char *line = malloc(nlen + vlen + 3);
  if (line == NULL) return LB_ENOMEM;
  memcpy(line, name, nlen);
  if (vlen == 0) {
    line[nlen] = ';';
    line[nlen + 1] = '\0';
  } else {
    line[nlen] = ':';
    line[nlen + 1] = ' ';
    memcpy(line + nlen + 2, value, vlen);
    line[nlen + 2 + vlen] = '\0';
  }
  l = curl_slist_append(r->headers, line);
  free(line);
  if (l == NULL) return LB_ENOMEM;
  r->headers = l;
  return 0;
}

#define SETOPT(opt, val) \
  do { if ((rc = curl_easy_setopt(e, opt, val)) != CURLE_OK) goto fail; } while (0)

int lb__http_req_start(lb_http_req *r, const lb_http_opts *o,
                       lb_http_done_fn done_cb, void *ud) {
  lb_http *h = r->h;
  CURL *e = r->easy;
  CURLcode rc;
  CURLMcode mrc;
  struct curl_slist *l;
  if (h == NULL || r->in_multi || r->done) {
    snprintf(r->errbuf, sizeof r->errbuf, "request already started or its runtime is closing");
    return LB_ESTATE;
  }
  SETOPT(CURLOPT_URL, o->url);
#if LIBCURL_VERSION_NUM >= 0x075500
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  SETOPT(CURLOPT_PRIVATE, (char *)r);
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_ERRORBUFFER, r->errbuf);
  SETOPT(CURLOPT_ACCEPT_ENCODING, "");          /* every encoding curl decodes */
  SETOPT(CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(CURLOPT_WRITEDATA, r);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_HEADERDATA, r);
  SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
  SETOPT(CURLOPT_FOLLOWLOCATION, o->follow_redirects ? 1L : 0L);
  SETOPT(CURLOPT_MAXREDIRS, 20L);
  if (o->timeout_ms > 0) SETOPT(CURLOPT_TIMEOUT_MS, o->timeout_ms);
  if (o->connect_timeout_ms > 0) SETOPT(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
  if (o->user_agent) SETOPT(CURLOPT_USERAGENT, o->user_agent);
  if (o->ca_file) SETOPT(CURLOPT_CAINFO, o->ca_file);
  r->max_body = o->max_body;
  /* curl would add these by itself; a header the caller set replaces them
  ** (curl drops its own when the name is already in the list) */
  if ((l = curl_slist_append(r->headers, "Expect:")) == NULL) goto nomem;
  r->headers = l;
  if (strcmp(o->method, "HEAD") == 0) {
    SETOPT(CURLOPT_NOBODY, 1L);
  } else if (o->body || strcmp(o->method, "POST") == 0) {
    r->body_len = o->body ? o->body_len : 0;
    r->body = malloc(r->body_len ? r->body_len : 1);
    if (r->body == NULL) goto nomem;
    if (r->body_len) memcpy(r->body, o->body, r->body_len);
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    SETOPT(CURLOPT_POSTFIELDS, r->body);
    /* POSTFIELDS implies a form Content-Type: send one only when asked */
    {
      struct curl_slist *it;
      int has_ct = 0;
      for (it = r->headers; it; it = it->next)
        if (strncasecmp(it->data, "content-type:", 13) == 0 ||
            strncasecmp(it->data, "content-type;", 13) == 0) has_ct = 1;
      if (!has_ct) {
        if ((l = curl_slist_append(r->headers, "Content-Type:")) == NULL) goto nomem;
        r->headers = l;
      }
    }
    if (strcmp(o->method, "POST") != 0) SETOPT(CURLOPT_CUSTOMREQUEST, o->method);
  } else if (strcmp(o->method, "GET") != 0) {
    SETOPT(CURLOPT_CUSTOMREQUEST, o->method);
  }
  SETOPT(CURLOPT_HTTPHEADER, r->headers);
  r->done_cb = done_cb;
  r->done_ud = ud;
  if ((mrc = curl_multi_add_handle(h->multi, e)) != CURLM_OK) {
    snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_multi_strerror(mrc));
    return LB_ESTATE;
  }
  r->in_multi = 1;
  if (h->inflight++ == 0) uv_ref((uv_handle_t *)&h->timer);
  return 0;
fail:
  snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_easy_strerror(rc));
  return LB_EINVAL;
nomem:
  snprintf(r->errbuf, sizeof r->errbuf, "out of memory");
  return LB_ENOMEM;
}

void lb__http_req_abort(lb_http_req *r) {
  lb_http *h = r->h;
  if (h == NULL || !r->in_multi) return;
  curl_multi_remove_handle(h->multi, r->easy);
  r->in_multi = 0;
  r->done_cb = NULL;
  if (--h->inflight == 0) uv_unref((uv_handle_t *)&h->timer);
}

void lb__http_req_free(lb_http_req *r) {
  lb_http *h;
  if (r == NULL) return;
  lb__http_req_abort(r);
  if ((h = r->h) != NULL) {
    if (r->prev) r->prev->next = r->next;
    else h->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
  }
  if (r->easy) curl_easy_cleanup(r->easy);
  free(r->effective_url);
  curl_slist_free_all(r->headers);
  free(r->body);
  buf_free(&r->resp_body);
  buf_free(&r->resp_head);
  free(r);
}
