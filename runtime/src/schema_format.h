/*
** schema_format.h - the checkers of JSON Schema's "format" keyword
** (draft-07: dates and times, e-mail, host names, IP addresses, URIs and
** IRIs, URI templates, JSON pointers, regexes). The validator asserts them
** only with LB_SCHEMA_FORMAT_ASSERT.
*/
#ifndef LB_SCHEMA_FORMAT_H
#define LB_SCHEMA_FORMAT_H

#include <stddef.h>
#include "jskim.h"

enum { LB_FMT_NONE = 0, LB_FMT_DATETIME, LB_FMT_DATE, LB_FMT_TIME, LB_FMT_EMAIL, LB_FMT_IDN_EMAIL,
       LB_FMT_HOSTNAME, LB_FMT_IDN_HOSTNAME, LB_FMT_IPV4, LB_FMT_IPV6, LB_FMT_URI, LB_FMT_URI_REF,
       LB_FMT_IRI, LB_FMT_IRI_REF, LB_FMT_URI_TEMPLATE, LB_FMT_JSON_POINTER,
       LB_FMT_REL_JSON_POINTER, LB_FMT_REGEX };

/* The format a JSON string span names, LB_FMT_NONE for one not checked. */
int lb__format_id(const lb_jval *name);

/* Its name ("date-time", ...), "format" for LB_FMT_NONE. */
const char *lb__format_name(int id);

/* Is s[0..n) (decoded text) valid for format id? Always for LB_FMT_NONE. */
int lb__format_ok(int id, const char *s, size_t n);

#endif
