/*
** errtab.c - lookups over LB_ERRNO_MAP (see errtab.h), and their public
** face, lb_strerror and lb_err_name.
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

LB_API const char *lb_strerror(int err) {
  return lb__err_text(err);
}

LB_API const char *lb_err_name(int err) {
  return lb__err_name(err);
}
