/*
** lbtest.h - a minimal unit-test harness: one file per program, a
** TEST_LIST at the end naming its cases, failures counted and printed.
*/
#ifndef LBTEST_H
#define LBTEST_H
#include <stdio.h>
#include <string.h>

static int lbt_failed_checks;
static const char *lbt_current;

#define CHECK(cond) do { if (!(cond)) { lbt_failed_checks++;                \
  fprintf(stderr, "  FAIL %s:%d (%s): %s\n", __FILE__, __LINE__,            \
          lbt_current, #cond); } } while (0)
#define CHECK_EQ_INT(a, b) do { long long lbt_a = (long long)(a),          \
  lbt_b = (long long)(b); if (lbt_a != lbt_b) { lbt_failed_checks++;        \
  fprintf(stderr, "  FAIL %s:%d (%s): %s == %s (%lld != %lld)\n", __FILE__, \
          __LINE__, lbt_current, #a, #b, lbt_a, lbt_b); } } while (0)
#define CHECK_EQ_STR(a, b) do { const char *lbt_a = (a), *lbt_b = (b);     \
  if (!lbt_a || !lbt_b || strcmp(lbt_a, lbt_b) != 0) { lbt_failed_checks++;\
  fprintf(stderr, "  FAIL %s:%d (%s): %s == \"%s\" (got \"%s\")\n",         \
          __FILE__, __LINE__, lbt_current, #a, lbt_b ? lbt_b : "(null)",    \
          lbt_a ? lbt_a : "(null)"); } } while (0)

typedef struct lbt_case { const char *name; void (*fn)(void); } lbt_case;

#define TEST_LIST static const lbt_case lbt_cases[] =
#define LBTEST_MAIN                                                         \
  int main(void) {                                                          \
    int i, pass = 0, fail = 0;                                              \
    for (i = 0; lbt_cases[i].name; i++) {                                   \
      int before = lbt_failed_checks;                                       \
      lbt_current = lbt_cases[i].name;                                      \
      lbt_cases[i].fn();                                                    \
      if (lbt_failed_checks == before) { pass++; printf("ok   %s\n", lbt_current); } \
      else { fail++; printf("FAIL %s\n", lbt_current); }                    \
    }                                                                       \
    printf("%d passed, %d failed\n", pass, fail);                           \
    return fail ? 1 : 0;                                                    \
  }
#endif
