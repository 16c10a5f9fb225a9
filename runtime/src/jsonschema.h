/*
** jsonschema.h - a JSON Schema draft-07 validator over jskim spans.
**
** A schema is compiled once: its text is validated, every subschema that
** can be reached (through keywords, $ref and remote documents) gets a node
** with its keywords pre-parsed, $refs are resolved to nodes and patterns are
** translated from ECMA 262 to POSIX regexes. Validation then only walks
** nodes and the instance's spans: it does not parse the schema again and
** allocates only for error messages and long strings given to regexec.
**
** Error messages name the failing instance location as a path:
**   $.credentials.api_key: expected string, got number
** They never quote instance strings (a config holds secrets); they may
** quote numbers and the schema's own text (enum, const, pattern).
**
** A compiled schema is read-only during validation: several threads may
** validate against one schema at the same time.
*/
#ifndef LB_JSONSCHEMA_H
#define LB_JSONSCHEMA_H

#include <stddef.h>
#include "luabyte.h"
#include "jskim.h"

/* Error codes (negative), in the runtime's one table (luabyte.h):
** LB_SCHEMA_EJSON, _EREF, _ELOAD, _EDEPTH, _ELOOP there, and out of memory
** and bad arguments as the runtime's own codes. The map lists the codes the
** validator returns, by the short names its Lua binding reports. */
#define LB_SCHEMA_ENOMEM LB_ENOMEM
#define LB_SCHEMA_EINVAL LB_EINVAL
#define LB_SCHEMA_ERRNO_MAP(XX)                                              \
  XX(EJSON)  XX(ENOMEM)  XX(EREF)  XX(ELOAD)  XX(EDEPTH)  XX(ELOOP)  XX(EINVAL)

/* Text of an LB_SCHEMA_E* code ("unknown error" for others). */
const char *lb_schema_strerror(int code);

typedef struct lb_schema lb_schema;

/* Fetch the document at an absolute URI (without fragment). Return 0 and a
** malloc'd text in *text / *len (the schema frees it), or non-zero when it
** cannot be had. Called only during lb_schema_compile. */
typedef int (*lb_schema_loader)(void *ud, const char *uri, char **text,
                                size_t *len);

/* Flags */
#define LB_SCHEMA_FORMAT_ASSERT  1  /* "format" fails invalid strings (default: annotation) */
#define LB_SCHEMA_CONTENT_ASSERT 2  /* contentEncoding base64 / contentMediaType
                                    ** application/json are checked (default: annotation) */

#define LB_SCHEMA_MAXDEPTH 512      /* default limit on nested evaluations */

/* Compile options; the struct may grow: set size to sizeof(lb_schema_opts).
** A NULL opts means all defaults. */
typedef struct lb_schema_opts {
  size_t           size;
  lb_schema_loader loader;     /* NULL: only the built-in draft-07 meta-schema */
  void            *loader_ud;
  const char      *base_uri;   /* retrieval URI of the root document, or NULL */
  unsigned         flags;      /* LB_SCHEMA_* flags */
  int              max_depth;  /* nested evaluations before EDEPTH; 0 = default */
} lb_schema_opts;

/* Compile text[0..len). Returns 0 and *out, or a negative code with a
** message in err[0..errlen) (err may be NULL). Keywords of the wrong type
** and patterns that cannot be translated do not fail: they are ignored and
** listed as warnings (lb_schema_warning). */
int lb_schema_compile(const char *text, size_t len, const lb_schema_opts *opts,
                      lb_schema **out, char *err, size_t errlen);

/* Number of compile warnings, and the i-th one ("where: what"), or NULL. */
int lb_schema_nwarnings(const lb_schema *s);
const char *lb_schema_warning(const lb_schema *s, int i);

void lb_schema_free(lb_schema *s);

/* Errors found by a validation: fill max (0 = only the verdict, which is
** faster: evaluation stops at the first failure), zero the rest. */
typedef struct lb_schema_errors {
  int    max;        /* in: how many messages to collect */
  int    count;      /* out: messages in msgs */
  int    truncated;  /* out: there were more than max */
  char **msgs;       /* out: "path: message", each malloc'd */
} lb_schema_errors;

/* Validate the JSON text instance[0..len) (errs may be NULL). Returns 0 when
** valid, 1 when invalid (messages in errs), or a negative code when the
** validation could not be completed (EJSON: the instance is not JSON;
** EDEPTH, ELOOP, ENOMEM) with the reason as the last message in errs. */
int lb_schema_validate(const lb_schema *s, const char *instance, size_t len,
                       lb_schema_errors *errs);

/* The same for a span that lb_jskim_validate (or lb_jskim_value) accepted,
** such as a record's data inside a protocol message: no second scan. */
int lb_schema_validate_span(const lb_schema *s, const lb_jval *v,
                            lb_schema_errors *errs);

/* Free the messages and reset count / truncated (max is kept). */
void lb_schema_errors_clear(lb_schema_errors *errs);

#endif
