/*
** errtab.c - lookups over LB_ERRNO_MAP (see errtab.h).
*/
#include "errtab.h"

const char *lb__err_text(int code) {
  switch (code) {
    case 0: return "success";
#define LB__ERRTEXT(name, c, msg) case c: return msg;
    LB_ERRNO_MAP(LB__ERRTEXT)
#undef LB__ERRTEXT
    default: return "unknown error";
  }
}

const char *lb__err_name(int code) {
  switch (code) {
    case 0: return "OK";
#define LB__ERRNAME(name, c, msg) case c: return "LB_" #name;
    LB_ERRNO_MAP(LB__ERRNAME)
#undef LB__ERRNAME
    default: return "LB_EUNKNOWN";
  }
}
