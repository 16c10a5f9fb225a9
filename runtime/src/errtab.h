/*
** errtab.h - the texts and names of the runtime's one error-code table
** (LB_ERRNO_MAP in luabyte.h), for every file that reports a code: the
** parts (jskim, the schema validator) as well as lb_strerror. A leaf.
*/
#ifndef LB_ERRTAB_H
#define LB_ERRTAB_H

#include "luabyte.h"

/* "out of memory", ...; "success" for 0, "unknown error" outside the table. */
const char *lb__err_text(int code);

/* "LB_ENOMEM", ...; "OK" for 0, "LB_EUNKNOWN" outside the table. */
const char *lb__err_name(int code);

#endif
