/*
** pg.c - PostgreSQL connections: parameters, errors with the password
** masked, identifier length and quoting (see pg.h).
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pg.h"
#include "digest.h"
#include "mask.h"

static void ignore_notice(void *arg, const char *message) {
  (void)arg; (void)message;
}

/* "host:port/database" for the error message: what a user typed, never
** the password (a dsn is not shown: it may carry one) */
static void describe(const lb_pg_params *p, char *out, size_t cap) {
  if (p->dsn && *p->dsn) { snprintf(out, cap, "the given dsn"); return; }
  snprintf(out, cap, "%s:%s/%s", p->host && *p->host ? p->host : "default host",
           p->port && *p->port ? p->port : "default port",
           p->database && *p->database ? p->database : "default database");
}

PGconn *lb__pg_connect(const lb_pg_params *p, char *err, size_t errlen) {
  const char *keys[11], *vals[11];
  char timeout[16], where[256], what[300];
  int n = 0;
  PGconn *conn;
  snprintf(timeout, sizeof timeout, "%d", p->connect_timeout_s > 0 ? p->connect_timeout_s : 10);
  /* a dsn goes first as "dbname" with expand_dbname: libpq parses it, and
  ** the keywords after it override what it says */
  if (p->dsn && *p->dsn) { keys[n] = "dbname"; vals[n++] = p->dsn; }
  if (p->host && *p->host) { keys[n] = "host"; vals[n++] = p->host; }
  if (p->port && *p->port) { keys[n] = "port"; vals[n++] = p->port; }
  if (p->database && *p->database && !(p->dsn && *p->dsn)) { keys[n] = "dbname"; vals[n++] = p->database; }
  if (p->username && *p->username) { keys[n] = "user"; vals[n++] = p->username; }
  if (p->password && *p->password) { keys[n] = "password"; vals[n++] = p->password; }
  if (p->sslmode && *p->sslmode) { keys[n] = "sslmode"; vals[n++] = p->sslmode; }
  keys[n] = "application_name"; vals[n++] = p->application_name ? p->application_name : "luabyte";
  keys[n] = "connect_timeout"; vals[n++] = timeout;
  keys[n] = NULL; vals[n] = NULL;
  conn = PQconnectdbParams(keys, vals, 1);
  if (conn == NULL) {
    snprintf(err, errlen, "connecting to PostgreSQL failed: out of memory");
    return NULL;
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    describe(p, where, sizeof where);
    snprintf(what, sizeof what, "connecting to PostgreSQL (%s) failed", where);
    lb__pg_error(p, conn, what, NULL, err, errlen);
    PQfinish(conn);
    return NULL;
  }
  PQsetNoticeProcessor(conn, ignore_notice, NULL);
  return conn;
}

/* text with the password (and a dsn's password=/URI password) masked */
static void masked_copy(const lb_pg_params *p, const char *text, char *out, size_t cap) {
  lb_masker *m = NULL;
  char *masked = NULL;
  size_t n = strlen(text), mlen;
  int rc;
  while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ')) n--;   /* libpq ends lines with \n */
  if (p && p->password && *p->password && (m = lb__masker_new()) != NULL)
    lb__masker_add(m, p->password, strlen(p->password));
  rc = m ? lb__mask(m, text, n, &masked, &mlen) : 0;
  if (rc == 1) {
    snprintf(out, cap, "%.*s", (int)mlen, masked);
    free(masked);
  } else if (rc < 0) {
    snprintf(out, cap, "(message withheld: it holds the password and could not be masked)");
  } else {
    snprintf(out, cap, "%.*s", (int)n, text);
  }
  lb__masker_free(m);
}

void lb__pg_error(const lb_pg_params *p, PGconn *conn, const char *what, const char *msg,
                  char *err, size_t errlen) {
  char text[1024];
  if (msg == NULL) msg = conn ? PQerrorMessage(conn) : "no connection";
  if (*msg == '\0') msg = "no message from the server";
  masked_copy(p, msg, text, sizeof text);
  snprintf(err, errlen, "%s: %s", what, text);
}

void lb__pg_result_error(const lb_pg_params *p, PGresult *res, const char *what,
                         char *err, size_t errlen) {
  const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
  const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
  char text[1024];
  if (primary == NULL) {
    lb__pg_error(p, NULL, what, res ? PQresultErrorMessage(res) : "out of memory", err, errlen);
    return;
  }
  snprintf(text, sizeof text, "%s%s%s%s", primary, detail ? " (" : "", detail ? detail : "",
           detail ? ")" : "");
  if (hint) snprintf(text + strlen(text), sizeof text - strlen(text), "; hint: %s", hint);
  lb__pg_error(p, NULL, what, text, err, errlen);
}

size_t lb__pg_name(const char *name, size_t len, char out[LB_PG_NAMEDATALEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char d[32];
  lb__sha256 sh;
  size_t keep = LB_PG_NAMEDATALEN - 9, i;
  if (len <= LB_PG_NAMEDATALEN) {
    memcpy(out, name, len);
    out[len] = '\0';
    return len;
  }
  /* back off to the start of a UTF-8 character */
  while (keep > 0 && ((unsigned char)name[keep] & 0xC0) == 0x80) keep--;
  lb__sha256_init(&sh);
  lb__sha256_update(&sh, name, len);
  lb__sha256_final(&sh, d);
  memcpy(out, name, keep);
  out[keep++] = '_';
  for (i = 0; i < 4; i++) {
    out[keep++] = hex[d[i] >> 4];
    out[keep++] = hex[d[i] & 15];
  }
  out[keep] = '\0';
  return keep;
}

size_t lb__pg_quote_ident(const char *name, size_t len, char *out, size_t cap) {
  size_t n = 0, i;
#define PUT(ch) do { if (n + 1 < cap) out[n] = (ch); n++; } while (0)
  PUT('"');
  for (i = 0; i < len; i++) {
    if (name[i] == '"') PUT('"');
    PUT(name[i]);
  }
  PUT('"');
#undef PUT
  if (cap) out[n < cap ? n : cap - 1] = '\0';
  return n;
}
