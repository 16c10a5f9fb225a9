/*
** pg.h - PostgreSQL connections as luabyte opens them, shared by the
** Postgres cache (cache_pg.c) and the Lua binding the built-in
** destination-postgres uses (lua_pg.c), so both connect, name and report
** errors by one set of rules:
**   - parameters are PyAirbyte's / Airbyte's names (host, port, database,
**     username, password) or a libpq connection string or URI (dsn); a
**     parameter left NULL falls back to libpq's environment (PGHOST, ...);
**   - every error names what failed and what the server said, with the
**     password masked in any spelling (mask.h);
**   - identifiers longer than PostgreSQL's 63 bytes are cut
**     deterministically, with a digest of the whole name so two long names
**     never collide;
**   - server NOTICEs never reach stderr (a library does not write there).
*/
#ifndef LB_PG_H
#define LB_PG_H

#include <stddef.h>
#include <libpq-fe.h>

#define LB_PG_NAMEDATALEN 63   /* the longest identifier PostgreSQL keeps */

typedef struct lb_pg_params {
  const char *host, *port, *database, *username, *password;
  const char *dsn;                /* libpq "key=value ..." or postgresql:// URI */
  const char *application_name;   /* NULL = "luabyte" */
  const char *sslmode;            /* libpq's sslmode (disable ... verify-full); NULL = libpq's default */
  int connect_timeout_s;          /* 0 = 10 */
} lb_pg_params;

/* A connected PGconn (the caller PQfinish-es it), or NULL with err set to
** "connecting to PostgreSQL (<where>) failed: <server's words>". */
PGconn *lb__pg_connect(const lb_pg_params *p, char *err, size_t errlen);

/* err = "<what>: <msg>" with the password of p (may be NULL) masked and
** libpq's trailing newline dropped. msg NULL = PQerrorMessage(conn). */
void lb__pg_error(const lb_pg_params *p, PGconn *conn, const char *what, const char *msg,
                  char *err, size_t errlen);
/* The text of a failed result: its primary message, its detail and hint. */
void lb__pg_result_error(const lb_pg_params *p, PGresult *res, const char *what,
                         char *err, size_t errlen);

/* name[0..len) as PostgreSQL keeps it: unchanged up to 63 bytes, else its
** first bytes (never cutting a UTF-8 character), "_" and the first 8 hex
** digits of its SHA-256. Writes a NUL-terminated name (out holds 64 bytes)
** and returns its length. */
size_t lb__pg_name(const char *name, size_t len, char out[LB_PG_NAMEDATALEN + 1]);

/* Appends "name" quoted as an identifier (embedded quotes doubled) to out
** (cap bytes, NUL-terminated); returns the length it needs, like snprintf. */
size_t lb__pg_quote_ident(const char *name, size_t len, char *out, size_t cap);

#endif
