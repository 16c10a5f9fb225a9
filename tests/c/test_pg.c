/* test_pg.c - PostgreSQL connection rules that need no server: long
** identifiers cut without collisions, quoting, errors that name what failed
** with the password masked, and a refused connection reported, not raised. */
#include <stdlib.h>
#include "lbtest.h"
#include "pg.h"

static void short_names_unchanged(void) {
  char out[LB_PG_NAMEDATALEN + 1], name[64];
  memset(name, 'a', 63);
  CHECK_EQ_INT(lb__pg_name("users", 5, out), 5);
  CHECK_EQ_STR(out, "users");
  CHECK_EQ_INT(lb__pg_name(name, 63, out), 63);
  CHECK(memcmp(out, name, 63) == 0 && out[63] == '\0');
}

static void long_names_cut_without_collisions(void) {
  char a[LB_PG_NAMEDATALEN + 1], b[LB_PG_NAMEDATALEN + 1], again[LB_PG_NAMEDATALEN + 1];
  char n1[100], n2[100];
  memset(n1, 'x', 99); n1[99] = '\0';
  memcpy(n2, n1, 100); n2[98] = 'y';     /* same first 98 bytes */
  CHECK_EQ_INT(lb__pg_name(n1, 99, a), 63);
  CHECK_EQ_INT(lb__pg_name(n2, 99, b), 63);
  CHECK(strcmp(a, b) != 0);
  CHECK(memcmp(a, n1, 54) == 0 && a[54] == '_');
  lb__pg_name(n1, 99, again);
  CHECK_EQ_STR(again, a);                /* deterministic */
}

static void utf8_not_cut(void) {
  char name[80], out[LB_PG_NAMEDATALEN + 1];
  size_t i, n;
  for (i = 0; i < 78; i += 2) { name[i] = (char)0xc3; name[i + 1] = (char)0xa4; }   /* "ä" x 39 */
  n = lb__pg_name(name, 78, out);
  CHECK(n <= 63);
  CHECK(out[n - 9] == '_');
  CHECK((n - 9) % 2 == 0);               /* whole characters before the digest */
}

static void quoting(void) {
  char out[64];
  CHECK_EQ_INT(lb__pg_quote_ident("a\"b", 3, out, sizeof out), 6);
  CHECK_EQ_STR(out, "\"a\"\"b\"");
  CHECK_EQ_INT(lb__pg_quote_ident("abcdef", 6, out, 4), 8);   /* truncated, still terminated */
  CHECK_EQ_STR(out, "\"ab");
}

static void errors_mask_the_password(void) {
  lb_pg_params p;
  char err[256];
  memset(&p, 0, sizeof p);
  p.password = "s3cr\"et-pw";
  lb__pg_error(&p, NULL, "opening the cache", "FATAL: bad password s3cr\\\"et-pw and s3cr\"et-pw\n",
               err, sizeof err);
  CHECK_EQ_STR(err, "opening the cache: FATAL: bad password **** and ****");
}

static void refused_connection(void) {
  lb_pg_params p;
  char err[512];
  PGconn *c;
  memset(&p, 0, sizeof p);
  p.host = "127.0.0.1";
  p.port = "1";                          /* nothing listens there */
  p.password = "hunter22";
  p.database = "nowhere";
  c = lb__pg_connect(&p, err, sizeof err);
  CHECK(c == NULL);
  CHECK(strstr(err, "connecting to PostgreSQL (127.0.0.1:1/nowhere) failed: ") == err);
  CHECK(strstr(err, "hunter22") == NULL);
}

TEST_LIST {
  {"short_names_unchanged", short_names_unchanged},
  {"long_names_cut_without_collisions", long_names_cut_without_collisions},
  {"utf8_not_cut", utf8_not_cut},
  {"quoting", quoting},
  {"errors_mask_the_password", errors_mask_the_password},
  {"refused_connection", refused_connection},
  {NULL, NULL}
};
LBTEST_MAIN
