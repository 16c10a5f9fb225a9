/*
** sql_regexp.h - the REGEXP operator in the cache's SQL.
**
** SQLite parses "x REGEXP p" as regexp(p, x) but ships no such function.
** lb__sqlite_add_regexp defines it on a connection: POSIX extended regular
** expressions (regcomp), searched anywhere in the text (anchor with ^ $),
** NULL when either side is NULL, an SQL error naming the pattern when it
** does not compile. Dataset checks (`matches`) and users' own SQL use it.
*/
#ifndef LB_SQL_REGEXP_H
#define LB_SQL_REGEXP_H

struct sqlite3;

/* SQLITE_OK or an SQLite error code. */
int lb__sqlite_add_regexp(struct sqlite3 *db);

#endif
