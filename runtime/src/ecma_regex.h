/*
** ecma_regex.h - ECMA 262 patterns (JSON Schema's "pattern") translated to
** POSIX extended regexes that regcomp runs over UTF-8 bytes.
*/
#ifndef LB_ECMA_REGEX_H
#define LB_ECMA_REGEX_H

#include <stddef.h>
#include "textbuf.h"

/* Translate pat[0..n) (valid UTF-8) into o. Returns 0, or -1 with *why set
** and *unsupported = 1 when the pattern is valid ECMA that POSIX cannot
** express (lookarounds, backreferences, \p{...}), 0 when it is invalid. */
int lb__ecma_to_posix(const char *pat, size_t n, lb_sbuf *o, const char **why, int *unsupported);

#endif
