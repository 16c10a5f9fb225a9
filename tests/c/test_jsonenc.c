/*
** test_jsonenc.c - the one JSON writer for numbers and strings: shortest
** round-trip floats (known spellings, random bit patterns, a comma
** locale), integers at the int64 ends, string escapes, strict and lenient
** UTF-8, and that the announced lengths are the written ones.
*/
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonenc.h"
#include "jskim.h"
#include "lbtest.h"

static const char *fmt_d(double d) {
  static char out[LB_JSON_NUM_ROOM + 1];
  size_t n = lb__json_fmt_double(d, out);
  out[n] = '\0';
  return out;
}

static const char *fmt_i(long long v) {
  static char out[LB_JSON_NUM_ROOM + 1];
  size_t n = lb__json_fmt_int(v, out);
  out[n] = '\0';
  return out;
}

static void test_float_spellings(void) {
  CHECK_EQ_STR(fmt_d(1.1), "1.1");
  CHECK_EQ_STR(fmt_d(0.1), "0.1");
  CHECK_EQ_STR(fmt_d(0.1 + 0.2), "0.30000000000000004");
  CHECK_EQ_STR(fmt_d(1.0), "1.0");
  CHECK_EQ_STR(fmt_d(-1.0), "-1.0");
  CHECK_EQ_STR(fmt_d(0.0), "0.0");
  CHECK_EQ_STR(fmt_d(-0.0), "-0.0");
  CHECK_EQ_STR(fmt_d(2.5), "2.5");
  CHECK_EQ_STR(fmt_d(100.0), "100.0");
  CHECK_EQ_STR(fmt_d(1e15), "1e+15");
  CHECK_EQ_STR(fmt_d(999999999999999.0), "999999999999999.0");
  CHECK_EQ_STR(fmt_d(1e16), "1e+16");
  CHECK_EQ_STR(fmt_d(1234567890123456.0), "1234567890123456.0");
  CHECK_EQ_STR(fmt_d(9007199254740993.0), "9007199254740992.0");
  CHECK_EQ_STR(fmt_d(1e308), "1e+308");
  CHECK_EQ_STR(fmt_d(1.7976931348623157e308), "1.7976931348623157e+308");
  CHECK_EQ_STR(fmt_d(1e-308), "1e-308");
  CHECK_EQ_STR(fmt_d(2.2250738585072014e-308), "2.2250738585072014e-308");
  CHECK_EQ_STR(fmt_d(5e-324), "4.94065645841247e-324");
  CHECK_EQ_STR(fmt_d(-5e-324), "-4.94065645841247e-324");
  CHECK_EQ_STR(fmt_d(1.0000000000000002), "1.0000000000000002");
  CHECK_EQ_STR(fmt_d(-1.5e-7), "-1.5e-07");
  CHECK_EQ_STR(fmt_d(123456789.123456789), "123456789.12345679");
  CHECK_EQ_STR(fmt_d(6.02214076e23), "6.02214076e+23");
  CHECK_EQ_INT(lb__json_fmt_double(NAN, (char[LB_JSON_NUM_ROOM]){0}), 0);
  CHECK_EQ_INT(lb__json_fmt_double(INFINITY, (char[LB_JSON_NUM_ROOM]){0}), 0);
  CHECK_EQ_INT(lb__json_fmt_double(-INFINITY, (char[LB_JSON_NUM_ROOM]){0}), 0);
}

/* Significant digits of a spelling (leading zeros and the exponent out). */
static int sig_digits(const char *s) {
  int n = 0, seen = 0;
  size_t len = strlen(s), i;
  /* the ".0" that keeps an integral float a float is not a digit of it */
  if (len > 2 && strcmp(s + len - 2, ".0") == 0) len -= 2;
  for (i = 0; i < len && s[i] != 'e'; i++) {
    if (s[i] < '0' || s[i] > '9') continue;
    if (s[i] == '0' && !seen) continue;
    seen = 1;
    n++;
  }
  return n;
}

static unsigned long long rng = 0x9E3779B97F4A7C15ULL;
static unsigned long long next_rand(void) {
  rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
  return rng;
}

/* Every finite double reads back as itself, as valid JSON that stays a
** float, and no spelling with one digit less would have. */
static void test_float_round_trip(void) {
  int i, bad = 0;
  for (i = 0; i < 200000; i++) {
    unsigned long long bits = next_rand();
    double d, back;
    const char *s;
    lb_jval top;
    char shorter[40];
    int sd;
    if (i % 4 == 0) bits &= 0x800fffffffffffffULL | ((unsigned long long)(1023 + (int)(next_rand() % 80) - 40) << 52);
    memcpy(&d, &bits, sizeof d);
    if (!isfinite(d)) continue;
    s = fmt_d(d);
    back = strtod(s, NULL);
    if (lb_jskim_validate(s, strlen(s), &top, NULL) != 0 || top.type != LB_JNUMBER ||
        lb_jnum_is_integer(&top) || memcmp(&back, &d, sizeof d) != 0) {
      if (bad++ < 5) fprintf(stderr, "  %.17g written as %s\n", d, s);
      continue;
    }
    sd = sig_digits(s);
    if (sd > 15 && sd <= 17) {
      snprintf(shorter, sizeof shorter, "%.*g", sd - 1, d);
      if (strtod(shorter, NULL) == d) {
        if (bad++ < 5) fprintf(stderr, "  %.17g written as %s, %s is shorter\n", d, s, shorter);
      }
    }
    CHECK(sd <= 17);
  }
  CHECK_EQ_INT(bad, 0);
}

/* A locale whose decimal point is a comma still gets '.' (checked where
** such a locale is installed; otherwise the C locale is checked). */
static void test_float_locale(void) {
  const char *names[] = { "de_DE.UTF-8", "fr_FR.UTF-8", "de_DE", "C.UTF-8", NULL };
  int i;
  for (i = 0; names[i]; i++)
    if (setlocale(LC_NUMERIC, names[i])) break;
  CHECK_EQ_STR(fmt_d(1.5), "1.5");
  CHECK_EQ_STR(fmt_d(0.30000000000000004), "0.30000000000000004");
  CHECK_EQ_STR(fmt_d(-2.5e-7), "-2.5e-07");
  setlocale(LC_NUMERIC, "C");
}

static void test_integers(void) {
  CHECK_EQ_STR(fmt_i(0), "0");
  CHECK_EQ_STR(fmt_i(-1), "-1");
  CHECK_EQ_STR(fmt_i(1669682107441LL), "1669682107441");
  CHECK_EQ_STR(fmt_i(9223372036854775807LL), "9223372036854775807");
  CHECK_EQ_STR(fmt_i(-9223372036854775807LL - 1), "-9223372036854775808");
}

static const char *quote(const char *s, size_t n, int strict, long *len) {
  static char out[LB_JSON_QUOTE_ROOM(64) + 1];
  *len = lb__json_quote(s, n, out, strict);
  out[*len >= 0 ? *len : 0] = '\0';
  return out;
}

static void test_strings(void) {
  long n;
  CHECK_EQ_STR(quote("", 0, 1, &n), "\"\"");
  CHECK_EQ_STR(quote("plain", 5, 1, &n), "\"plain\"");
  CHECK_EQ_STR(quote("a\"b\\c/d", 7, 1, &n), "\"a\\\"b\\\\c/d\"");
  CHECK_EQ_STR(quote("\b\f\n\r\t", 5, 1, &n), "\"\\b\\f\\n\\r\\t\"");
  CHECK_EQ_STR(quote("\x00\x01\x1f\x7f", 4, 1, &n), "\"\\u0000\\u0001\\u001f\x7f\"");
  CHECK_EQ_STR(quote("\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80", 9, 1, &n), "\"\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\"");
  CHECK_EQ_INT(n, 11);
  /* strict: invalid UTF-8 is refused */
  quote("\xff", 1, 1, &n); CHECK_EQ_INT(n, -1);
  quote("a\xc3", 2, 1, &n); CHECK_EQ_INT(n, -1);               /* cut */
  quote("\xc0\xaf", 2, 1, &n); CHECK_EQ_INT(n, -1);            /* overlong */
  quote("\xed\xa0\x80", 3, 1, &n); CHECK_EQ_INT(n, -1);        /* surrogate */
  quote("\xf4\x90\x80\x80", 4, 1, &n); CHECK_EQ_INT(n, -1);    /* > U+10FFFF */
  /* lenient: copied as they are, escapes still applied */
  CHECK_EQ_STR(quote("\xff\n", 2, 0, &n), "\"\xff\\n\"");
  CHECK_EQ_INT(lb__json_plain_span("abc\xc3\xa9", 5), 5);
  CHECK_EQ_INT(lb__json_plain_span("ab\"c", 4), 2);
  CHECK_EQ_INT(lb__json_plain_span("\n", 1), 0);
}

/* The announced length is the written one, the worst case bound holds,
** and what is written is a JSON string that decodes to the input. */
static void test_string_lengths(void) {
  static char in[64], out[LB_JSON_QUOTE_ROOM(64)], dec[64];
  int i, bad = 0;
  for (i = 0; i < 20000; i++) {
    size_t n = next_rand() % sizeof in, k, m;
    long w;
    lb_jval v;
    for (k = 0; k < n; k++) {
      unsigned r = (unsigned)next_rand();
      in[k] = (char)(r % 3 == 0 ? (int)(r % 0x20) : r % 3 == 1 ? "\"\\/ab"[r % 5] : (int)('a' + r % 26));
    }
    w = lb__json_quote(in, n, out, 1);
    if (w < 0 || (size_t)w != lb__json_quoted_len(in, n) || (size_t)w > LB_JSON_QUOTE_ROOM(n) ||
        lb_jskim_validate(out, (size_t)w, &v, NULL) != 0 || v.type != LB_JSTRING ||
        (m = lb_jstr_decode(&v, dec, sizeof dec)) != n || memcmp(dec, in, n) != 0)
      bad++;
  }
  CHECK_EQ_INT(bad, 0);
}

TEST_LIST {
  {"float_spellings", test_float_spellings},
  {"float_round_trip", test_float_round_trip},
  {"float_locale", test_float_locale},
  {"integers", test_integers},
  {"strings", test_strings},
  {"string_lengths", test_string_lengths},
  {NULL, NULL}
};
LBTEST_MAIN
