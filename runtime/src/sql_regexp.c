/*
** sql_regexp.c - regexp(pattern, text) for SQLite (see sql_regexp.h).
*/
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

#include "sql_regexp.h"

static void free_regex(void *p) {
  regfree(p);
  free(p);
}

/* The compiled pattern is kept as auxiliary data of the statement's
** argument, so a query compiles its pattern once, not once per row. */
static void sql_regexp(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  regex_t *re;
  const char *text;
  int len;
  regmatch_t m[1];
  (void)argc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL) return;
  re = sqlite3_get_auxdata(ctx, 0);
  if (re == NULL) {
    const char *pat = (const char *)sqlite3_value_text(argv[0]);
    int rc;
    if (pat == NULL) { sqlite3_result_error_nomem(ctx); return; }
    if ((re = malloc(sizeof *re)) == NULL) { sqlite3_result_error_nomem(ctx); return; }
    rc = regcomp(re, pat, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
      char why[128], msg[400];
      regerror(rc, re, why, sizeof why);
      free(re);
      sqlite3_snprintf((int)sizeof msg, msg, "invalid regular expression '%.200s': %s", pat, why);
      sqlite3_result_error(ctx, msg, -1);
      return;
    }
    sqlite3_set_auxdata(ctx, 0, re, free_regex);
    if ((re = sqlite3_get_auxdata(ctx, 0)) == NULL) { sqlite3_result_error_nomem(ctx); return; }
  }
  text = (const char *)sqlite3_value_text(argv[1]);
  len = sqlite3_value_bytes(argv[1]);
  if (text == NULL) { sqlite3_result_error_nomem(ctx); return; }
  m[0].rm_so = 0;
  m[0].rm_eo = len;                  /* the whole value, NUL bytes included */
  sqlite3_result_int(ctx, regexec(re, text, 1, m, REG_STARTEND) == 0);
}

int lb__sqlite_add_regexp(sqlite3 *db) {
  return sqlite3_create_function_v2(db, "regexp", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                    sql_regexp, NULL, NULL, NULL);
}
