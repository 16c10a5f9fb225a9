/* test_mask.c - the secret masker: every JSON spelling of a secret, the
** short-secret rule, longest first, and nothing done when nothing is there. */
#include <stdlib.h>
#include "lbtest.h"
#include "luabyte.h"
#include "mask.h"

/* text masked by m, as a string (a static buffer: one at a time) */
static const char *masked(const lb_masker *m, const char *text) {
  static char buf[65536];
  char *out;
  size_t n, len = strlen(text);
  int rc = lb__mask(m, text, len, &out, &n);
  if (rc == 0) return text;
  if (rc < 0) return "(error)";
  if (n > len) { free(out); return "(longer than the input)"; }
  memcpy(buf, out, n);
  buf[n] = '\0';
  free(out);
  return buf;
}

static lb_masker *with(const char *const *values) {
  lb_masker *m = lb__masker_new();
  for (; *values; values++) lb__masker_add(m, *values, strlen(*values));
  return m;
}

static void nothing_registered(void) {
  lb_masker *m = lb__masker_new();
  char *out = NULL;
  size_t n = 0, end;
  CHECK_EQ_INT(lb__mask(m, "anything at all", 15, &out, &n), 0);
  CHECK_EQ_INT(lb__mask(NULL, "anything at all", 15, &out, &n), 0);
  CHECK(out == NULL);
  CHECK_EQ_INT(lb__mask_next(m, "abc", 3, 0, &end), 3);
  CHECK_EQ_INT(lb__masker_count(m), 0);
  CHECK_EQ_INT(lb__masker_count(NULL), 0);
  lb__masker_free(m);
}

static void short_secrets_and_duplicates(void) {
  lb_masker *m = lb__masker_new();
  size_t len;
  CHECK_EQ_INT(lb__masker_add(m, "abc", 3), 0);        /* too short: never masked */
  CHECK_EQ_INT(lb__masker_add(m, "", 0), 0);
  CHECK_EQ_INT(lb__masker_add(m, "abcd", 4), 1);
  CHECK_EQ_INT(lb__masker_add(m, "abcd", 4), 0);       /* known */
  CHECK_EQ_INT(lb__masker_add(m, "abcdefgh", 8), 1);
  CHECK_EQ_INT(lb__masker_count(m), 2);
  CHECK_EQ_STR(lb__masker_value(m, 0, &len), "abcdefgh");   /* longest first */
  CHECK_EQ_INT(len, 8);
  CHECK(lb__masker_value(m, 2, &len) == NULL);
  CHECK_EQ_STR(masked(m, "abc abcd abcdefgh abcdefg"), "abc **** **** ****efg");
  lb__masker_clear(m);
  CHECK_EQ_INT(lb__masker_count(m), 0);
  CHECK_EQ_STR(masked(m, "abcd"), "abcd");
  lb__masker_free(m);
}

static void plain_and_longest_first(void) {
  static const char *const v[] = {"zq-secret-zq", "zq-secret-zq-longer", NULL};
  lb_masker *m = with(v);
  CHECK_EQ_STR(masked(m, "zq-secret-zq-longer, zq-secret-zq, zq-secret-z"),
               "****, ****, zq-secret-z");
  CHECK_EQ_STR(masked(m, "zq-secret-zqzq-secret-zq"), "********");
  CHECK_EQ_STR(masked(m, "nothing here"), "nothing here");
  lb__masker_free(m);
}

static void unicode_escapes(void) {
  static const char *const v[] = {"w\xc3\xb6rd-4711", "k\xf0\x9f\x98\x80" "ey-99", NULL};
  lb_masker *m = with(v);
  /* Python's json.dumps (ensure_ascii): lower hex; other encoders: upper */
  CHECK_EQ_STR(masked(m, "pw=w\\u00f6rd-4711."), "pw=****.");
  CHECK_EQ_STR(masked(m, "pw=w\\u00F6rd-4711."), "pw=****.");
  CHECK_EQ_STR(masked(m, "pw=w\xc3\xb6rd-4711."), "pw=****.");
  /* every character escaped, in a mix of cases */
  CHECK_EQ_STR(masked(m, "\\u0077\\u00f6\\u0072\\u0064\\u002D\\u00347\\u00311"), "****");
  /* beyond the BMP: a surrogate pair, either case */
  CHECK_EQ_STR(masked(m, "[k\\ud83d\\ude00ey-99]"), "[****]");
  CHECK_EQ_STR(masked(m, "[k\\uD83D\\uDE00ey-99]"), "[****]");
  CHECK_EQ_STR(masked(m, "[k\xf0\x9f\x98\x80" "ey-99]"), "[****]");
  /* not a spelling: a broken or different escape, a lone half of the pair */
  CHECK_EQ_STR(masked(m, "w\\u00f7rd-4711 w\\u00frd-4711 k\\ud83dey-99"),
               "w\\u00f7rd-4711 w\\u00frd-4711 k\\ud83dey-99");
  lb__masker_free(m);
}

static void short_escapes_and_solidus(void) {
  static const char *const v[] = {"a/b-secret", "q\"x\\y\nz\tw", NULL};
  lb_masker *m = with(v);
  CHECK_EQ_STR(masked(m, "{\"k\":\"a\\/b-secret\"}"), "{\"k\":\"****\"}");    /* cjson */
  CHECK_EQ_STR(masked(m, "{\"k\":\"a/b-secret\"}"), "{\"k\":\"****\"}");
  CHECK_EQ_STR(masked(m, "{\"k\":\"q\\\"x\\\\y\\nz\\tw\"}"), "{\"k\":\"****\"}");
  CHECK_EQ_STR(masked(m, "q\\u0022x\\u005Cy\\u000az\\u0009w!"), "****!");
  CHECK_EQ_STR(masked(m, "raw: q\"x\\y\nz\tw"), "raw: ****");
  CHECK_EQ_STR(masked(m, "q\\\"x\\\\y\\rz\\tw"), "q\\\"x\\\\y\\rz\\tw");  /* \r is not \n */
  lb__masker_free(m);
}

static void raw_backslashes(void) {
  static const char *const v[] = {"C:\\new\\path", "\\\\\\\\", NULL};
  lb_masker *m = with(v);
  CHECK_EQ_STR(masked(m, "dir C:\\new\\path."), "dir ****.");         /* printed raw */
  CHECK_EQ_STR(masked(m, "dir C:\\\\new\\\\path."), "dir ****.");     /* JSON-escaped */
  CHECK_EQ_STR(masked(m, "dir C:\\\\new\\path."), "dir ****.");       /* a mix */
  /* four backslashes: raw, escaped (eight), and the choice between them */
  CHECK_EQ_STR(masked(m, "<\\\\\\\\>"), "<****>");
  CHECK_EQ_STR(masked(m, "<\\\\\\\\\\\\\\\\>"), "<****>");
  CHECK_EQ_STR(masked(m, "<\\\\\\>"), "<\\\\\\>");
  lb__masker_free(m);
}

/* Many backslashes in both: the search stays bounded and still masks. */
static void pathological_backslashes(void) {
  lb_masker *m = lb__masker_new();
  char secret[41], *text = malloc(20001), *out;
  size_t n;
  int rc;
  memset(secret, '\\', 40);
  secret[40] = '\0';
  secret[39] = 'x';
  memset(text, '\\', 20000);
  text[20000] = '\0';
  CHECK_EQ_INT(lb__masker_add(m, secret, 40), 1);
  rc = lb__mask(m, text, 20000, &out, &n);
  CHECK_EQ_INT(rc, 1);          /* a long piece of the secret is masked */
  if (rc == 1) {
    CHECK(n <= 20000);
    free(out);
  }
  free(text);
  lb__masker_free(m);
}

static void config_line(void) {
  static const char *const v[] = {"p\xc3\xa4/ss\"w\\ord\xf0\x9f\x98\x80", NULL};
  lb_masker *m = with(v);
  CHECK_EQ_STR(masked(m, "{\"api_key\":\"p\\u00e4\\/ss\\\"w\\\\ord\\ud83d\\ude00\",\"region\":\"eu\"}"),
               "{\"api_key\":\"****\",\"region\":\"eu\"}");
  CHECK_EQ_STR(masked(m, "{\"api_key\":\"p\xc3\xa4\\/ss\\\"w\\\\ord\xf0\x9f\x98\x80\"}"),
               "{\"api_key\":\"****\"}");
  lb__masker_free(m);
}

TEST_LIST {
  {"nothing_registered", nothing_registered},
  {"short_secrets_and_duplicates", short_secrets_and_duplicates},
  {"plain_and_longest_first", plain_and_longest_first},
  {"unicode_escapes", unicode_escapes},
  {"short_escapes_and_solidus", short_escapes_and_solidus},
  {"raw_backslashes", raw_backslashes},
  {"pathological_backslashes", pathological_backslashes},
  {"config_line", config_line},
  {NULL, NULL}
};
LBTEST_MAIN
