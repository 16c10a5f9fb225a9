/*
** mask.h - the one secret masker. Every text that leaves the connector
** layer (log lines and tails in proc.c, error fields, warnings and progress
** lines through the Lua binding in lua_mask.c, task errors in sched.c) is
** cut through it, so the rules live here only:
**   - a secret shorter than LB_MASK_MIN bytes is not registered (it would
**     hide ordinary text: "1", "abc", "true");
**   - each occurrence becomes LB_MASK_TEXT, the longest secret first;
**   - an occurrence is any spelling a JSON encoder may print: every
**     character literal or escaped, in any mix (\uXXXX in either case,
**     surrogate pairs for characters beyond the BMP, \/ and the short
**     escapes \" \\ \b \f \n \r \t). The matcher decodes escapes while it
**     compares; it never lists spellings.
** With no secret registered nothing is scanned; otherwise a 256-entry
** table of the bytes a spelling can start with skips everything else.
*/
#ifndef LB_MASK_H
#define LB_MASK_H

#include <stddef.h>

#define LB_MASK_MIN 4
#define LB_MASK_TEXT "****"

typedef struct lb_masker lb_masker;

lb_masker *lb__masker_new(void);
void lb__masker_free(lb_masker *m);
/* 1 added, 0 ignored (shorter than LB_MASK_MIN, or known), LB_ENOMEM. */
int  lb__masker_add(lb_masker *m, const char *s, size_t len);
void lb__masker_clear(lb_masker *m);
/* The registered values, longest first, each NUL-terminated (NULL m: none). */
int  lb__masker_count(const lb_masker *m);
const char *lb__masker_value(const lb_masker *m, int i, size_t *len);

/* The first spelling of a secret in text[from..len): its start, and its
** end in *end; len when there is none. */
size_t lb__mask_next(const lb_masker *m, const char *text, size_t len, size_t from,
                     size_t *end);
/* 0: no secret in text (nothing allocated). 1: *out is a malloc'd copy with
** every secret masked, *outlen its length (never more than len).
** LB_ENOMEM: text holds a secret but the copy could not be made; callers
** must then not show text at all. */
int  lb__mask(const lb_masker *m, const char *text, size_t len, char **out, size_t *outlen);

/* Registers a secret in the runtime's masker (rt->masker, made on first
** use): what lb__masker_add returns. */
struct lb_runtime;
int  lb__secret_add(struct lb_runtime *rt, const char *s, size_t len);

#endif
