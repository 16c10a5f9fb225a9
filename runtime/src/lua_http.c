/*
** lua_http.c - the `airbyte.http` module: HTTP(S) requests for Lua.
**
**   local http = require "airbyte.http"
**   local resp = http.request{ method = "GET", url = "https://host/p?x=1",
**                              query = { page = 2 },        -- appended to url
**                              headers = { Authorization = "Bearer x" },
**                              body = "...", timeout_ms = 30000,
**                              connect_timeout_ms = 10000,
**                              max_body = 64 * 1024 * 1024,
**                              follow_redirects = true,
**                              ca_file = "ca.pem" }   -- trusted instead of the system CAs
**   resp.status, resp.headers (lower-case names), resp.body, resp.url
**   http.url_encode(s), http.query{ a = 1, b = { "x", "y" } }
**
** Inside a task a request yields to the loop; outside any task (a host
** calling Lua directly) it runs the runtime's own loop until it is done.
** An HTTP status is a response, not an error; a transport failure raises
** an AirbyteConnectorError with url (userinfo masked), method, curl_code
** and reason. Misuse raises a plain error.
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "lb_internal.h"
#include "http.h"

#define STATE_MT "airbyte.http.State"
#define REQ_MT "airbyte.http.Request"
#define DEFAULT_MAX_BODY ((size_t)64 * 1024 * 1024)

typedef struct state_ud {
  lb_http *h;
} state_ud;

/* Owns the request, so an error raised anywhere frees it (__gc). Its user
** value is the final URL, for error messages. */
typedef struct req_ud {
  lb_http_req *r;
  lb_runtime  *rt;
  lb_task     *waiter;
  char         method[24];
} req_ud;

static int state_gc(lua_State *L) {
  state_ud *s = luaL_checkudata(L, 1, STATE_MT);
  if (s->h) {
    lb__http_close(s->h);
    s->h = NULL;
  }
  return 0;
}

static int req_gc(lua_State *L) {
  req_ud *u = luaL_checkudata(L, 1, REQ_MT);
  lb__http_req_free(u->r);
  u->r = NULL;
  return 0;
}

/* --- helpers --------------------------------------------------------------- */

static int is_tchar(int c) {   /* RFC 9110 token characters */
  return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int is_unreserved(int c) {   /* RFC 3986 */
  return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void add_encoded(luaL_Buffer *b, const char *s, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_unreserved(c)) luaL_addchar(b, (char)c);
    else {
      luaL_addchar(b, '%');
      luaL_addchar(b, hex[c >> 4]);
      luaL_addchar(b, hex[c & 15]);
    }
  }
}

/* The text of a query value: strings and numbers as Lua writes them,
** booleans as true/false. */
static const char *query_value(lua_State *L, int idx, size_t *len, const char *key) {
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
    case LUA_TNUMBER:
      return lua_tolstring(L, idx, len);
    case LUA_TBOOLEAN:
      *len = lua_toboolean(L, idx) ? 4 : 5;
      return lua_toboolean(L, idx) ? "true" : "false";
    default:
      luaL_error(L, "query value of '%s' must be a string, number, boolean or a list of them",
                 key);
      return NULL;
  }
}

typedef struct qpair {
  const char *key;
  size_t      klen;
  lua_Integer slot;   /* the value is at anchor[slot] */
} qpair;

static int cmp_pairs(const void *a, const void *b) {
  const qpair *x = a, *y = b;
  size_t n = x->klen < y->klen ? x->klen : y->klen;
  int c = memcmp(x->key, y->key, n);
  return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* Pushes "key=value", both percent-encoded; vidx holds the value. */
static void push_pair(lua_State *L, const qpair *q, int vidx) {
  size_t vlen;
  const char *v = query_value(L, vidx, &vlen, q->key);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  add_encoded(&b, q->key, q->klen);
  luaL_addchar(&b, '=');
  add_encoded(&b, v, vlen);
  luaL_pushresult(&b);
}

/* Pushes "k=v&k=v" for table idx, keys sorted bytewise; a list value
** repeats its key in list order. */
static void push_query(lua_State *L, int idx) {
  qpair *pairs;
  lua_Integer n = 0, i, np = 0;
  int anchor, parts;
  luaL_Buffer b;
  idx = lua_absindex(L, idx);
  lua_newtable(L);                    /* anchor: key1, value1, key2, value2, ... */
  anchor = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING && lua_type(L, -2) != LUA_TNUMBER)
      luaL_error(L, "query keys must be strings");
    lua_pushvalue(L, -2);
    lua_tostring(L, -1);              /* converts the copy: lua_next stays valid */
    lua_rawseti(L, anchor, 2 * n + 1);
    lua_rawseti(L, anchor, 2 * n + 2);
    n++;
  }
  pairs = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *pairs, 0);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, anchor, 2 * i + 1);
    pairs[i].key = lua_tolstring(L, -1, &pairs[i].klen);
    pairs[i].slot = 2 * i + 2;
    lua_pop(L, 1);                    /* the anchor keeps the string */
  }
  qsort(pairs, (size_t)n, sizeof *pairs, cmp_pairs);
  lua_newtable(L);
  parts = lua_gettop(L);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, anchor, pairs[i].slot);
    if (lua_istable(L, -1)) {
      lua_Integer j, m = (lua_Integer)lua_rawlen(L, -1);
      for (j = 1; j <= m; j++) {
        lua_rawgeti(L, -1, j);
        push_pair(L, &pairs[i], lua_gettop(L));
        lua_rawseti(L, parts, ++np);
        lua_pop(L, 1);
      }
    } else {
      push_pair(L, &pairs[i], lua_gettop(L));
      lua_rawseti(L, parts, ++np);
    }
    lua_pop(L, 1);
  }
  luaL_buffinit(L, &b);               /* nothing is pushed between its calls */
  for (i = 1; i <= np; i++) {
    if (i > 1) luaL_addchar(&b, '&');
    lua_rawgeti(L, parts, i);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
  lua_replace(L, anchor);             /* result where the anchor was */
  lua_settop(L, anchor);
}

/* Pushes url with the userinfo (user:password@) replaced by "***". */
static void push_masked_url(lua_State *L, const char *url) {
  const char *p = strstr(url, "://"), *host, *end, *at = NULL, *q;
  if (p == NULL) { lua_pushstring(L, url); return; }
  host = p + 3;
  end = host + strcspn(host, "/?#");
  for (q = host; q < end; q++) if (*q == '@') at = q;
  if (at == NULL) { lua_pushstring(L, url); return; }
  lua_pushlstring(L, url, (size_t)(host - url));
  lua_pushliteral(L, "***");
  lua_pushstring(L, at);
  lua_concat(L, 3);
}

/* --- responses and errors ------------------------------------------------ */

/* resp.headers from the raw lines: lower-case names, values trimmed,
** repeated names joined with ", ", folded lines appended. */
static void push_headers(lua_State *L, const lb_http_buf *head) {
  const char *p = head->p, *end = head->p + head->len;
  int tbl;
  lua_newtable(L);
  tbl = lua_gettop(L);
  lua_pushnil(L);                               /* the last name, for folds */
  while (p && p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *le, *colon, *v, *ve;
    if (nl == NULL) nl = end;
    le = nl;
    if (le > p && le[-1] == '\r') le--;
    if (le > p && (*p == ' ' || *p == '\t') && !lua_isnil(L, -1)) {
      for (v = p; v < le && (*v == ' ' || *v == '\t'); v++) {}
      lua_pushvalue(L, -1);
      lua_rawget(L, tbl);
      lua_pushliteral(L, " ");
      lua_pushlstring(L, v, (size_t)(le - v));
      lua_concat(L, 3);
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, tbl);
    } else if ((colon = memchr(p, ':', (size_t)(le - p))) != NULL && colon > p) {
      luaL_Buffer b;
      const char *c;
      lua_pop(L, 1);
      luaL_buffinit(L, &b);
      for (c = p; c < colon; c++) luaL_addchar(&b, (char)tolower((unsigned char)*c));
      luaL_pushresult(&b);                      /* stack: tbl, name */
      for (v = colon + 1; v < le && (*v == ' ' || *v == '\t'); v++) {}
      for (ve = le; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--) {}
      lua_pushvalue(L, -1);
      lua_rawget(L, tbl);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(ve - v));
      } else {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(ve - v));
        lua_concat(L, 3);
      }
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, tbl);                       /* stack: tbl, name */
    }
    p = nl + 1;
  }
  lua_pop(L, 1);
}

static void push_response(lua_State *L, lb_http_req *r) {
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, r->status);
  lua_setfield(L, -2, "status");
  push_headers(L, &r->resp_head);
  lua_setfield(L, -2, "headers");
  lua_pushlstring(L, r->resp_body.p ? r->resp_body.p : "", r->resp_body.len);
  lua_setfield(L, -2, "body");
  if (r->effective_url) lua_pushstring(L, r->effective_url);
  else lua_getiuservalue(L, 2, 1);
  lua_setfield(L, -2, "url");
}

static const char *reason_of(const lb_http_req *r, const char **what) {
  switch (r->result) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      *what = "cannot resolve the host"; return "dns";
    case CURLE_COULDNT_CONNECT:
      *what = "cannot connect"; return "connect";
    case CURLE_OPERATION_TIMEDOUT:
      *what = "timed out"; return "timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
      *what = "TLS failed"; return "tls";
    case CURLE_FILESIZE_EXCEEDED:
      *what = "response too large"; return "too_large";
    case CURLE_WRITE_ERROR:
      if (r->too_large) { *what = "response too large"; return "too_large"; }
      break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      *what = "bad URL"; return "url";
    case CURLE_TOO_MANY_REDIRECTS:
      *what = "too many redirects"; return "redirects";
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      *what = "connection failed"; return "connection";
    default:
      break;
  }
  *what = "transfer failed";
  return "transport";
}

/* Raises errors.new("AirbyteConnectorError", message, fields). */
static int raise_transport_error(lua_State *L, req_ud *u) {
  lb_http_req *r = u->r;
  const char *what, *reason = reason_of(r, &what), *detail;
  int murl;
  lua_getiuservalue(L, 2, 1);
  push_masked_url(L, lua_tostring(L, -1));
  murl = lua_gettop(L);
  detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->result);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "airbyte.errors");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_pushliteral(L, "AirbyteConnectorError");
  if (strcmp(reason, "too_large") == 0 && r->too_large)
    lua_pushfstring(L, "HTTP %s %s: %s: the body is larger than max_body (%I bytes) (curl error %d)",
                    u->method, lua_tostring(L, murl), what, (lua_Integer)r->max_body,
                    (int)r->result);
  else
    lua_pushfstring(L, "HTTP %s %s: %s: %s (curl error %d)", u->method, lua_tostring(L, murl),
                    what, detail, (int)r->result);
  lua_createtable(L, 0, 4);
  lua_pushvalue(L, murl);
  lua_setfield(L, -2, "url");
  lua_pushstring(L, u->method);
  lua_setfield(L, -2, "method");
  lua_pushinteger(L, (lua_Integer)r->result);
  lua_setfield(L, -2, "curl_code");
  lua_pushstring(L, reason);
  lua_setfield(L, -2, "reason");
  lua_call(L, 3, 1);
  /* the request is of no more use: free it now, not at the next GC */
  lb__http_req_free(u->r);
  u->r = NULL;
  return lua_error(L);
}

/* Stack: opts, box. */
static int finish_request(lua_State *L, req_ud *u) {
  if (u->r->result != CURLE_OK) return raise_transport_error(L, u);
  push_response(L, u->r);
  lb__http_req_free(u->r);
  u->r = NULL;
  return 1;
}

/* --- request --------------------------------------------------------------- */

static void on_done(lb_http_req *r, void *ud) {
  req_ud *u = ud;
  lb_task *t = u->waiter;
  (void)r;
  u->waiter = NULL;
  /* A transfer can end in a timer callback that uv_run runs before it
  ** polls (curl's zero timeout). A woken task keeps that poll from
  ** blocking (lb__sched_kick); run_until_done, outside any task, has no
  ** task to wake: the runtime's async handle makes the poll return. */
  if (t) lb__wake(t);
  else uv_async_send(&u->rt->async);
}

static void cleanup_request(void *data) {
  req_ud *u = data;
  u->waiter = NULL;
  if (u->r) lb__http_req_abort(u->r);   /* the box frees it when collected */
}

static int request_k(lua_State *L, int status, lua_KContext ctx) {
  req_ud *u = luaL_checkudata(L, 2, REQ_MT);
  (void)status; (void)ctx;
  if (u->r == NULL || !u->r->done) {    /* woken for something else: wait on */
    if (u->r == NULL) return luaL_error(L, "http.request: the request was aborted");
    u->waiter = lb__current(L, "http.request()");
    return lb__wait(L, cleanup_request, u, 0, request_k);
  }
  return finish_request(L, u);
}

/* Outside any task nothing else can run anyway: drive the loop here. */
static int run_until_done(lua_State *L, lb_runtime *rt, req_ud *u) {
  int alive = 1;
  rt->stepping = 1;                     /* lb_step must not re-enter uv_run */
  while (!u->r->done && !rt->interrupted && alive)
    alive = uv_run(rt->loop, UV_RUN_ONCE);
  rt->stepping = 0;
  if (!u->r->done) {
    lb__http_req_abort(u->r);
    return luaL_error(L, rt->interrupted ? "http.request: interrupted"
                                         : "http.request: the loop stopped before the response");
  }
  return finish_request(L, u);
}

static lua_Integer opt_nonneg(lua_State *L, const char *key, lua_Integer def) {
  lua_Integer v;
  int isnum;
  lua_getfield(L, 1, key);
  if (lua_isnil(L, -1)) v = def;
  else {
    lua_Number d = lua_tonumberx(L, -1, &isnum);
    if (!isnum) return luaL_error(L, "http.request: '%s' must be a number", key);
    if (d < 0) return luaL_error(L, "http.request: '%s' must not be negative", key);
    v = d > (lua_Number)LUA_MAXINTEGER / 2 ? LUA_MAXINTEGER / 2 : (lua_Integer)d;
  }
  lua_pop(L, 1);
  return v;
}

static void add_headers(lua_State *L, req_ud *u, int idx) {
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t nlen, vlen, i;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "http.request: header names must be strings");
    name = lua_tolstring(L, -2, &nlen);
    for (i = 0; i < nlen; i++)
      if (!is_tchar((unsigned char)name[i]))
        luaL_error(L, "http.request: invalid header name '%s'", name);
    if (nlen == 0) luaL_error(L, "http.request: empty header name");
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      luaL_error(L, "http.request: header '%s' must be a string", name);
    lua_pushvalue(L, -1);               /* converting a copy keeps lua_next valid */
    value = lua_tolstring(L, -1, &vlen);
    for (i = 0; i < vlen; i++)
      if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
        luaL_error(L, "http.request: header '%s' contains a line break or NUL", name);
    if (lb__http_req_header(u->r, name, nlen, value, vlen) != 0)
      luaL_error(L, "out of memory");
    lua_pop(L, 2);
  }
}

static int l_request(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  state_ud *st = lua_touserdata(L, lua_upvalueindex(1));
  lb_http_opts o;
  req_ud *u;
  const char *s;
  size_t len, i;
  int in_task = 0, rc;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (rt->current) {
    lb__current(L, "http.request()");   /* raises where a task cannot wait */
    in_task = 1;
  } else if (rt->stepping || rt->mode == LB_LOOP_SHARED) {
    return luaL_error(L, "http.request() outside a task cannot drive a loop it does not own: "
                         "call it inside a task (airbyte.spawn)");
  }
  if (st->h == NULL) return luaL_error(L, "http.request: the runtime is closing");
  memset(&o, 0, sizeof o);
  u = lua_newuserdatauv(L, sizeof *u, 1);   /* stack: opts, box */
  memset(u, 0, sizeof *u);
  u->rt = rt;
  luaL_setmetatable(L, REQ_MT);
  /* method */
  lua_getfield(L, 1, "method");
  if (lua_isnil(L, -1)) strcpy(u->method, "GET");
  else {
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "http.request: 'method' must be a string");
    s = lua_tolstring(L, -1, &len);
    if (len == 0 || len >= sizeof u->method) return luaL_error(L, "http.request: invalid method '%s'", s);
    for (i = 0; i < len; i++) {
      if (!is_tchar((unsigned char)s[i])) return luaL_error(L, "http.request: invalid method '%s'", s);
      u->method[i] = (char)toupper((unsigned char)s[i]);
    }
    u->method[len] = '\0';
  }
  lua_pop(L, 1);
  o.method = u->method;
  /* url (+ query), kept as the box's user value */
  lua_getfield(L, 1, "url");
  if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "http.request: 'url' must be a string");
  s = lua_tolstring(L, -1, &len);
  if (len == 0) return luaL_error(L, "http.request: 'url' is empty");
  for (i = 0; i < len; i++)
    if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
      return luaL_error(L, "http.request: 'url' contains a space or a control character "
                           "(percent-encode it, e.g. with http.url_encode)");
  lua_getfield(L, 1, "query");
  if (!lua_isnil(L, -1)) {
    int qidx = lua_gettop(L);
    if (!lua_istable(L, qidx)) return luaL_error(L, "http.request: 'query' must be a table");
    push_query(L, qidx);
    if (lua_rawlen(L, -1) > 0) {
      lua_pushvalue(L, qidx - 1);
      if (memchr(s, '?', len) == NULL) lua_pushliteral(L, "?");
      else if (s[len - 1] != '?' && s[len - 1] != '&') lua_pushliteral(L, "&");
      else lua_pushliteral(L, "");
      lua_rotate(L, -3, 2);           /* url, sep, query */
      lua_concat(L, 3);
      lua_replace(L, qidx - 1);
    } else lua_pop(L, 1);
  }
  lua_pop(L, 1);
  lua_setiuservalue(L, 2, 1);
  lua_getiuservalue(L, 2, 1);
  o.url = lua_tostring(L, -1);          /* anchored by the box */
  lua_pop(L, 1);
  /* body */
  lua_getfield(L, 1, "body");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "http.request: 'body' must be a string");
    o.body = lua_tolstring(L, -1, &o.body_len);
  }
  lua_pop(L, 1);                        /* the opts table keeps it alive */
  o.timeout_ms = (long)opt_nonneg(L, "timeout_ms", 0);
  o.connect_timeout_ms = (long)opt_nonneg(L, "connect_timeout_ms", 0);
  o.max_body = (size_t)opt_nonneg(L, "max_body", (lua_Integer)DEFAULT_MAX_BODY);
  lua_getfield(L, 1, "ca_file");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "http.request: 'ca_file' must be a string");
    o.ca_file = lua_tostring(L, -1);
  }
  lua_pop(L, 1);                        /* the opts table keeps it alive */
  lua_getfield(L, 1, "follow_redirects");
  o.follow_redirects = lua_isnil(L, -1) ? 1 : lua_toboolean(L, -1);
  lua_pop(L, 1);
  o.user_agent = "luabyte/" LB_VERSION_STRING;
  u->r = lb__http_req_new(st->h);
  if (u->r == NULL) return luaL_error(L, "out of memory");
  lua_getfield(L, 1, "headers");
  if (!lua_isnil(L, -1)) {
    if (!lua_istable(L, -1)) return luaL_error(L, "http.request: 'headers' must be a table");
    add_headers(L, u, lua_gettop(L));
  }
  lua_pop(L, 1);
  rc = lb__http_req_start(u->r, &o, on_done, u);
  if (rc < 0) return luaL_error(L, "http.request: cannot start %s %s: %s", u->method, o.url,
                                u->r->errbuf);
  if (!in_task) return run_until_done(L, rt, u);
  u->waiter = rt->current;
  return lb__wait(L, cleanup_request, u, 0, request_k);
}

static int l_url_encode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  add_encoded(&b, s, len);
  luaL_pushresult(&b);
  return 1;
}

static int l_query(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  push_query(L, 1);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"request", l_request},
  {"url_encode", l_url_encode},
  {"query", l_query},
  {NULL, NULL}
};

int luaopen_airbyte_http(lua_State *L) {
  lb_runtime *rt = lb__rt(L);
  state_ud *st;
  char err[256];
  if (luaL_newmetatable(L, REQ_MT)) {
    lua_pushcfunction(L, req_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_newlibtable(L, funcs);
  st = lua_newuserdatauv(L, sizeof *st, 0);
  st->h = NULL;
  if (luaL_newmetatable(L, STATE_MT)) {
    lua_pushcfunction(L, state_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  st->h = lb__http_new(rt->loop, err, sizeof err);
  if (st->h == NULL) return luaL_error(L, "airbyte.http: %s", err);
  luaL_setfuncs(L, funcs, 1);           /* the state is every function's upvalue */
  return 1;
}
