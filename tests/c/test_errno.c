/* The runtime's one error-code space (luabyte.h LB_ERRNO_MAP): every code
** from -1 to LB_ERRNO_MIN has a text and a name of its own, the parts'
** codes (JSON scanner, lines, schema validator, cache) are in it, and no two
** meanings share a number. */
#include <string.h>
#include "lbtest.h"
#include "luabyte.h"
#include "jskim.h"
#include "lines.h"
#include "jsonschema.h"
#include "errtab.h"

static void every_code_has_a_text_and_a_name(void) {
  int c, d;
  CHECK(LB_ERRNO_MIN < LB_ESTATE);
  for (c = -1; c >= LB_ERRNO_MIN; c--) {
    CHECK(strcmp(lb_strerror(c), "unknown error") != 0);
    CHECK(strcmp(lb_err_name(c), "LB_EUNKNOWN") != 0);
    for (d = c - 1; d >= LB_ERRNO_MIN; d--) CHECK(strcmp(lb_err_name(c), lb_err_name(d)) != 0);
  }
  CHECK_EQ_STR(lb_strerror(LB_ERRNO_MIN - 1), "unknown error");
  CHECK_EQ_STR(lb_err_name(LB_ERRNO_MIN - 1), "LB_EUNKNOWN");
}

static void the_parts_codes_are_in_the_space(void) {
  static const int parts[] = { LB_JSKIM_ESYNTAX, LB_JSKIM_ECTRL, LB_LINES_TOOLONG, LB_SCHEMA_EJSON,
                               LB_SCHEMA_ELOOP, LB_CACHE_ESQL, LB_CACHE_EBUSY };
  size_t i;
  for (i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    CHECK(parts[i] >= LB_ERRNO_MIN && parts[i] < LB_ESTATE);
    CHECK(strcmp(lb_strerror(parts[i]), "unknown error") != 0);
  }
  /* -1 meant out of memory, a JSON syntax error and a line too long */
  CHECK(LB_JSKIM_ESYNTAX != LB_ENOMEM);
  CHECK(LB_LINES_TOOLONG != LB_ENOMEM);
  CHECK(LB_SCHEMA_EJSON != LB_ENOMEM);
  CHECK_EQ_INT(LB_LINES_NOMEM, LB_ENOMEM);
  CHECK_EQ_INT(LB_SCHEMA_ENOMEM, LB_ENOMEM);
  CHECK_EQ_STR(lb_err_name(LB_CACHE_ESQL), "LB_CACHE_ESQL");
  CHECK_EQ_STR(lb_err_name(LB_CACHE_EBUSY), "LB_CACHE_EBUSY");
}

/* errtab.c is the lookup the parts use; lb_strerror / lb_err_name say the same. */
static void errtab_and_the_api_agree(void) {
  int c;
  for (c = 1; c >= LB_ERRNO_MIN - 1; c--) {
    CHECK_EQ_STR(lb__err_text(c), lb_strerror(c));
    CHECK_EQ_STR(lb__err_name(c), lb_err_name(c));
  }
}

static void part_texts_are_the_parts_own(void) {
  CHECK_EQ_STR(lb_jskim_strerror(0), "ok");
  CHECK_EQ_STR(lb_jskim_strerror(LB_JSKIM_ESYNTAX), "unexpected character");
  CHECK_EQ_STR(lb_jskim_strerror(LB_JSKIM_ETRUNC), "unexpected end of input");
  CHECK_EQ_STR(lb_schema_strerror(LB_SCHEMA_EREF), "unresolvable $ref");
  CHECK_EQ_STR(lb_schema_strerror(LB_SCHEMA_ENOMEM), "out of memory");
}

TEST_LIST {
  {"every_code_has_a_text_and_a_name", every_code_has_a_text_and_a_name},
  {"the_parts_codes_are_in_the_space", the_parts_codes_are_in_the_space},
  {"errtab_and_the_api_agree", errtab_and_the_api_agree},
  {"part_texts_are_the_parts_own", part_texts_are_the_parts_own},
  {NULL, NULL}
};
LBTEST_MAIN
