/*
** test_jskim.c - the strict JSON scanner: grammar, strings, UTF-8, depth,
** truncation, iterators, conversions, and a differential fuzz against a
** plain recursive validator written here from RFC 8259 / RFC 3629.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jskim.h"
#include "lbtest.h"

static int val(const char *s) {
  return lb_jskim_validate(s, strlen(s), NULL, NULL);
}

static int valn(const char *s, size_t n) {
  return lb_jskim_validate(s, n, NULL, NULL);
}

static int ok(const char *s) { return val(s) == 0; }

/* ---------------------------------------------------------------------- */
/* A reference validator: recursive, byte by byte, code points decoded    */
/* ---------------------------------------------------------------------- */

typedef struct ref { const unsigned char *p, *e; int depth; } ref;

static void ref_ws(ref *r) {
  while (r->p < r->e && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
    r->p++;
}

static int ref_hex4(ref *r, long *out) {
  long v = 0;
  int i;
  for (i = 0; i < 4; i++) {
    int c;
    if (r->p >= r->e) return 0;
    c = *r->p++;
    if (c >= '0' && c <= '9') v = v * 16 + (c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + (c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v = v * 16 + (c - 'A' + 10);
    else return 0;
  }
  *out = v;
  return 1;
}

static int ref_string(ref *r) {
  if (r->p >= r->e || *r->p != '"') return 0;
  r->p++;
  for (;;) {
    unsigned c;
    if (r->p >= r->e) return 0;
    c = *r->p++;
    if (c == '"') return 1;
    if (c < 0x20) return 0;
    if (c == '\\') {
      long u, lo;
      if (r->p >= r->e) return 0;
      c = *r->p++;
      if (strchr("\"\\/bfnrt", (int)c) && c) continue;
      if (c != 'u' || !ref_hex4(r, &u)) return 0;
      if (u >= 0xdc00 && u <= 0xdfff) return 0;
      if (u >= 0xd800 && u <= 0xdbff) {
        if (r->e - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u') return 0;
        r->p += 2;
        if (!ref_hex4(r, &lo) || lo < 0xdc00 || lo > 0xdfff) return 0;
      }
      continue;
    }
    if (c >= 0x80) {
      /* decode a code point and check it the long way */
      int len, i;
      unsigned long cp;
      if (c >= 0xf0 && c <= 0xf7) { len = 4; cp = c & 0x07; }
      else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
      else if (c >= 0xc0 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
      else return 0;
      for (i = 1; i < len; i++) {
        if (r->p >= r->e || (*r->p & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (*r->p++ & 0x3f);
      }
      if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
          (len == 4 && cp < 0x10000)) return 0;          /* overlong */
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    }
  }
}

static int ref_digits(ref *r) {
  const unsigned char *s = r->p;
  while (r->p < r->e && *r->p >= '0' && *r->p <= '9') r->p++;
  return r->p > s;
}

static int ref_value(ref *r) {
  ref_ws(r);
  if (r->p >= r->e) return 0;
  switch (*r->p) {
    case '{':
      if (++r->depth > LB_JSKIM_MAXDEPTH) return 0;
      r->p++;
      ref_ws(r);
      if (r->p < r->e && *r->p == '}') { r->p++; r->depth--; return 1; }
      for (;;) {
        ref_ws(r);
        if (!ref_string(r)) return 0;
        ref_ws(r);
        if (r->p >= r->e || *r->p++ != ':') return 0;
        if (!ref_value(r)) return 0;
        ref_ws(r);
        if (r->p >= r->e) return 0;
        if (*r->p == ',') { r->p++; continue; }
        if (*r->p == '}') { r->p++; r->depth--; return 1; }
        return 0;
      }
    case '[':
      if (++r->depth > LB_JSKIM_MAXDEPTH) return 0;
      r->p++;
      ref_ws(r);
      if (r->p < r->e && *r->p == ']') { r->p++; r->depth--; return 1; }
      for (;;) {
        if (!ref_value(r)) return 0;
        ref_ws(r);
        if (r->p >= r->e) return 0;
        if (*r->p == ',') { r->p++; continue; }
        if (*r->p == ']') { r->p++; r->depth--; return 1; }
        return 0;
      }
    case '"':
      return ref_string(r);
    case 't':
      if (r->e - r->p < 4 || memcmp(r->p, "true", 4)) return 0;
      r->p += 4; return 1;
    case 'f':
      if (r->e - r->p < 5 || memcmp(r->p, "false", 5)) return 0;
      r->p += 5; return 1;
    case 'n':
      if (r->e - r->p < 4 || memcmp(r->p, "null", 4)) return 0;
      r->p += 4; return 1;
    default:
      if (*r->p == '-') r->p++;
      if (r->p >= r->e) return 0;
      if (*r->p == '0') r->p++;
      else if (!ref_digits(r)) return 0;
      if (r->p < r->e && *r->p == '.') { r->p++; if (!ref_digits(r)) return 0; }
      if (r->p < r->e && (*r->p == 'e' || *r->p == 'E')) {
        r->p++;
        if (r->p < r->e && (*r->p == '+' || *r->p == '-')) r->p++;
        if (!ref_digits(r)) return 0;
      }
      return 1;
  }
}

static int ref_validate(const char *s, size_t n) {
  ref r;
  r.p = (const unsigned char *)s;
  r.e = r.p + n;
  r.depth = 0;
  if (!ref_value(&r)) return 0;
  ref_ws(&r);
  return r.p == r.e;
}

/* ---------------------------------------------------------------------- */

static void test_literals(void) {
  CHECK(ok("true"));
  CHECK(ok("false"));
  CHECK(ok("null"));
  CHECK(ok(" \t\r\n null \t\r\n"));
  CHECK_EQ_INT(val("tru"), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("nul"), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("True"), LB_JSKIM_ESYNTAX);
  CHECK_EQ_INT(val("trux"), LB_JSKIM_ESYNTAX);
  CHECK_EQ_INT(val("nulll"), LB_JSKIM_ETRAIL);
  CHECK_EQ_INT(val("[truex]"), LB_JSKIM_ESYNTAX);
  CHECK_EQ_INT(val("NaN"), LB_JSKIM_ESYNTAX);
  CHECK_EQ_INT(val("Infinity"), LB_JSKIM_ESYNTAX);
  CHECK_EQ_INT(val(""), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("   "), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("\f1"), LB_JSKIM_ESYNTAX);   /* form feed is not white space */
  CHECK_EQ_INT(val("\xc2\xa0" "1"), LB_JSKIM_ESYNTAX);
}

static void test_numbers(void) {
  static const char *good[] = {
    "0", "-0", "1", "-1", "123", "1.5", "-1.5e10", "1E5", "1e-5", "1E+5",
    "0.0", "0e0", "0E-0", "-0.0e+00", "99999999999999999999999999",
    "1.7976931348623157e308", "5e-324", "[0,-0,1.25,3e2]", "{\"a\":-12.5E-3}",
    NULL
  };
  static const char *bad[] = {
    "01", "-01", "00", "+1", ".5", "-.5", "1.", "1.e5", "1e", "1e+", "1e-",
    "--1", "0x1", "1ee5", "1.5.3", "-", "1e5.0", "[01]", "[1.]", "[.1]",
    "[-]", "{\"a\":+1}", "1 2", "- 1", "1_000", "0.", "[1e]", "2.e3", NULL
  };
  int i;
  for (i = 0; good[i]; i++) {
    if (!ok(good[i])) fprintf(stderr, "  rejected good number %s\n", good[i]);
    CHECK(ok(good[i]));
  }
  for (i = 0; bad[i]; i++) {
    if (ok(bad[i])) fprintf(stderr, "  accepted bad number %s\n", bad[i]);
    CHECK(!ok(bad[i]));
    CHECK(!ref_validate(bad[i], strlen(bad[i])));
  }
  CHECK_EQ_INT(val("1."), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("-"), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("1e+"), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("01"), LB_JSKIM_ESYNTAX);
  CHECK_EQ_INT(val("+1"), LB_JSKIM_ESYNTAX);
  CHECK_EQ_INT(val(".5"), LB_JSKIM_ESYNTAX);
  CHECK_EQ_INT(val("1.x"), LB_JSKIM_ESYNTAX);
}

static void test_escapes(void) {
  lb_jval v;
  char out[64];
  size_t n;
  const char *all = "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0041 \\u00e9 \\u20AC \\ud83d\\ude00 \\u0000\"";
  CHECK_EQ_INT(lb_jskim_validate(all, strlen(all), &v, NULL), 0);
  CHECK_EQ_INT(v.type, LB_JSTRING);
  CHECK_EQ_INT(v.n, strlen(all));
  CHECK(lb_jstr_has_escapes(&v));
  n = lb_jstr_decode(&v, out, sizeof out);
  {
    static const char want[] = "\" \\ / \b \f \n \r \t A \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 ";
    CHECK_EQ_INT(n, sizeof want);   /* includes the decoded NUL */
    CHECK(memcmp(out, want, sizeof want - 1) == 0);
    CHECK(out[n - 1] == '\0');
  }
  /* a buffer too small: the length is still reported, nothing overflows */
  {
    char small[4] = { 'x', 'x', 'x', 'x' };
    CHECK_EQ_INT(lb_jstr_decode(&v, small, 3), n);
    CHECK(small[0] == '"' && small[1] == ' ' && small[2] == '\\' && small[3] == 'x');
  }
  CHECK_EQ_INT(val("\"\\x\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\'\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\U0041\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\u00G1\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\u12\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\u12"), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("\"\\"), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("\"\\ \""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"abc"), LB_JSKIM_ETRUNC);
  {
    lb_jval s;
    CHECK_EQ_INT(lb_jskim_validate("\"plain\"", 7, &s, NULL), 0);
    CHECK(!lb_jstr_has_escapes(&s));
    CHECK(lb_jstr_eq(&s, "plain", 5));
    CHECK(!lb_jstr_eq(&s, "plai", 4));
  }
}

static void test_surrogates(void) {
  size_t off = 0;
  lb_jval v;
  char out[8];
  CHECK(ok("\"\\uD83D\\uDE00\""));
  CHECK(ok("\"\\udbff\\udfff\""));                /* U+10FFFF */
  CHECK(ok("\"\\ud800\\udc00\""));                /* U+10000 */
  CHECK(ok("\"\\ud7ff\\ue000\""));                /* just outside the range */
  CHECK_EQ_INT(val("\"\\uD83D\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\uDE00\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\uDE00\\uD83D\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\uD83Dx\\uDE00\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\uD83D\\u0041\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\uD83D\\uD83D\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\uD83D\\n\""), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(val("\"\\uD83D\\uDE0"), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("\"\\uD83D\\"), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("\"\\uD83D"), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("\"\\uD83D\\uDEx"), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(lb_jskim_validate("[\"ab\\uDE00\"]", 12, NULL, &off), LB_JSKIM_EESCAPE);
  CHECK_EQ_INT(off, 4);
  CHECK_EQ_INT(lb_jskim_validate("\"\\ud83d\\ude00\"", 14, &v, NULL), 0);
  CHECK_EQ_INT(lb_jstr_decode(&v, out, sizeof out), 4);
  CHECK(memcmp(out, "\xf0\x9f\x98\x80", 4) == 0);
}

static void test_control_chars(void) {
  char buf[8];
  int c;
  for (c = 0; c < 0x20; c++) {
    size_t off = 99;
    buf[0] = '"'; buf[1] = 'a'; buf[2] = (char)c; buf[3] = '"';
    CHECK_EQ_INT(lb_jskim_validate(buf, 4, NULL, &off), LB_JSKIM_ECTRL);
    CHECK_EQ_INT(off, 2);
  }
  CHECK(ok("\"\x7f\""));                            /* DEL is allowed */
  CHECK(ok("[\"a\\tb\"]"));
  /* a control character far into a long string (the vector loop) */
  {
    char s[80];
    size_t off = 0;
    memset(s, 'x', sizeof s);
    s[0] = '"'; s[79] = '"'; s[37] = '\n';
    CHECK_EQ_INT(lb_jskim_validate(s, 80, NULL, &off), LB_JSKIM_ECTRL);
    CHECK_EQ_INT(off, 37);
  }
}

static void test_utf8(void) {
  static const char *good[] = {
    "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
    "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xf3\xbf\xbf\xbf",
    "\xc3\xa9t\xc3\xa9", "\xe2\x88\x92", "\xf0\x9f\x98\x80", NULL
  };
  static const char *bad[] = {
    "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xc2", "\xc2\x41", "\xe0\x80\x80",
    "\xe0\x9f\xbf", "\xe2\x82", "\xe2\x28\xa1", "\xed\xa0\x80", "\xed\xbf\xbf",
    "\xf0\x80\x80\x80", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80",
    "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80", "\xfe", "\xff", "\xf0\x9f\x98",
    "\xf0\x9f\x98\x41", "\xc3\xa9\xa9", NULL
  };
  int i, pre;
  /* every position relative to the 16-byte vector loop */
  for (pre = 0; pre < 40; pre++) {
    char s[128];
    for (i = 0; good[i]; i++) {
      size_t l = strlen(good[i]), n = 0;
      s[n++] = '"';
      memset(s + n, 'a', (size_t)pre); n += (size_t)pre;
      memcpy(s + n, good[i], l); n += l;
      memcpy(s + n, "bcdefghijklmnopqrstu\"", 21); n += 21;
      CHECK_EQ_INT(valn(s, n), 0);
    }
    for (i = 0; bad[i]; i++) {
      size_t l = strlen(bad[i]), n = 0, off = 0;
      int rc;
      s[n++] = '"';
      memset(s + n, 'a', (size_t)pre); n += (size_t)pre;
      memcpy(s + n, bad[i], l); n += l;
      memcpy(s + n, "bcdefghijklmnopqrstu\"", 21); n += 21;
      rc = lb_jskim_validate(s, n, NULL, &off);
      if (rc != LB_JSKIM_EUTF8)
        fprintf(stderr, "  bad utf8 #%d at %d: rc %d\n", i, pre, rc);
      CHECK_EQ_INT(rc, LB_JSKIM_EUTF8);
      CHECK(off >= (size_t)pre + 1 && off < (size_t)pre + 1 + l);
      CHECK(!ref_validate(s, n));
    }
  }
  /* cut by the end of input inside a sequence */
  CHECK_EQ_INT(valn("\"\xe2\x82", 3), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(valn("\"\xf0\x9f\x98", 4), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(valn("\"\xe0\x80", 3), LB_JSKIM_EUTF8);
  /* non-ASCII outside strings */
  CHECK_EQ_INT(val("[\xc3\xa9]"), LB_JSKIM_ESYNTAX);
  /* every single byte >= 0x80 alone in a string is invalid */
  for (i = 0x80; i < 0x100; i++) {
    char s[4] = { '"', (char)i, '"', 0 };
    CHECK(valn(s, 3) != 0);
  }
}

static void nested(char *buf, int depth, int obj, size_t *n) {
  int i;
  size_t k = 0;
  for (i = 0; i < depth; i++) {
    if (obj && (i & 1)) { memcpy(buf + k, "{\"a\":", 5); k += 5; }
    else buf[k++] = '[';
  }
  buf[k++] = '1';
  for (i = depth - 1; i >= 0; i--) buf[k++] = (obj && (i & 1)) ? '}' : ']';
  *n = k;
}

static void test_depth(void) {
  static char buf[8192];
  size_t n, off;
  lb_jval v;
  nested(buf, LB_JSKIM_MAXDEPTH, 0, &n);
  CHECK_EQ_INT(lb_jskim_validate(buf, n, &v, NULL), 0);
  CHECK_EQ_INT(v.n, n);
  CHECK(ref_validate(buf, n));
  nested(buf, LB_JSKIM_MAXDEPTH + 1, 0, &n);
  CHECK_EQ_INT(lb_jskim_validate(buf, n, NULL, &off), LB_JSKIM_EDEPTH);
  CHECK_EQ_INT(off, LB_JSKIM_MAXDEPTH);
  CHECK(!ref_validate(buf, n));
  nested(buf, LB_JSKIM_MAXDEPTH, 1, &n);
  CHECK_EQ_INT(valn(buf, n), 0);
  nested(buf, LB_JSKIM_MAXDEPTH + 1, 1, &n);
  CHECK_EQ_INT(valn(buf, n), LB_JSKIM_EDEPTH);
  nested(buf, 2000, 1, &n);
  CHECK_EQ_INT(valn(buf, n), LB_JSKIM_EDEPTH);
  /* depth counts back down: many siblings at the limit are fine */
  {
    size_t k = 0;
    int i;
    for (i = 0; i < LB_JSKIM_MAXDEPTH - 1; i++) buf[k++] = '[';
    for (i = 0; i < 100; i++) { memcpy(buf + k, "[],{},", 6); k += 6; }
    buf[k++] = '0';
    for (i = 0; i < LB_JSKIM_MAXDEPTH - 1; i++) buf[k++] = ']';
    CHECK_EQ_INT(valn(buf, k), 0);
  }
  /* lb_jskim_value counts the enclosing containers */
  nested(buf, 10, 0, &n);
  {
    size_t pos = 0;
    CHECK_EQ_INT(lb_jskim_value(buf, n, &pos, LB_JSKIM_MAXDEPTH - 10, &v, NULL), 0);
    CHECK_EQ_INT(pos, n);
    pos = 0;
    CHECK_EQ_INT(lb_jskim_value(buf, n, &pos, LB_JSKIM_MAXDEPTH - 9, &v, NULL),
                 LB_JSKIM_EDEPTH);
  }
}

static const char *const docs[] = {
  "{\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"data\":{\"id\":1,\"name\":\"Reda\"},\"emitted_at\":1669682107441}}",
  "[1,-2.5e-3,true,false,null,\"a\\u00e9\\n\",{},[],{\"k\":[{}]}]",
  "{\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\",\"e\":\"\\ud83d\\ude00\"}",
  "[\"0123456789abcdef0123456789abcdef\",{\"a\" : [ 1 , 2 ] }]",
  NULL
};

static void test_truncation(void) {
  int d;
  for (d = 0; docs[d]; d++) {
    size_t n = strlen(docs[d]), i;
    CHECK_EQ_INT(valn(docs[d], n), 0);
    for (i = 0; i < n; i++) {
      /* a copy of exactly i bytes, so ASan catches any read past it */
      char *cut = malloc(i ? i : 1);
      int rc;
      memcpy(cut, docs[d], i);
      rc = valn(cut, i);
      if (rc == 0) fprintf(stderr, "  prefix %zu of doc %d accepted\n", i, d);
      CHECK(rc != 0);
      free(cut);
    }
  }
  CHECK_EQ_INT(val("{\"a\":1"), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("{\"a\":"), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("{\"a\""), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("["), LB_JSKIM_ETRUNC);
  CHECK_EQ_INT(val("[1,"), LB_JSKIM_ETRUNC);
}

static void test_trailing_and_syntax(void) {
  static const char *bad[] = {
    "{,}", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "[1 2]",
    "{1:2}", "{'a':1}", "{\"a\":1,}", "[}", "{]", "{\"a\":1]", "[1}",
    "{\"a\"::1}", "{\"a\":1 \"b\":2}", "'a'", "[\"a\",]", "{\"a\",1}", NULL
  };
  int i;
  size_t off = 0;
  for (i = 0; bad[i]; i++) {
    if (ok(bad[i])) fprintf(stderr, "  accepted %s\n", bad[i]);
    CHECK(!ok(bad[i]));
  }
  CHECK_EQ_INT(val("{} x"), LB_JSKIM_ETRAIL);
  CHECK_EQ_INT(val("1 2"), LB_JSKIM_ETRAIL);
  CHECK_EQ_INT(val("[]]"), LB_JSKIM_ETRAIL);
  CHECK_EQ_INT(val("{}{}"), LB_JSKIM_ETRAIL);
  CHECK_EQ_INT(lb_jskim_validate("{}  ,", 5, NULL, &off), LB_JSKIM_ETRAIL);
  CHECK_EQ_INT(off, 4);
  CHECK_EQ_INT(val("{} \r\n"), 0);
  CHECK_EQ_INT(valn("{}\0", 3), LB_JSKIM_ETRAIL);
  CHECK_EQ_INT(lb_jskim_validate("[1,x]", 5, NULL, &off), LB_JSKIM_ESYNTAX);
  CHECK_EQ_INT(off, 3);
  CHECK(lb_jskim_strerror(LB_JSKIM_EUTF8) != NULL);
  CHECK(strlen(lb_jskim_strerror(-100)) > 0);
}

static void test_iterators(void) {
  const char *doc = " { \"a\" : [ 1 , \"x\\\"]\" , {\"b\":null} , [ ] ] , \"b\\\\\":true,"
                    "\"c\":-1.5e3 , \"d\" : \"}\" , \"e\":{ } } ";
  lb_jval top, k, v, e;
  lb_jiter it, ai;
  int count = 0;
  CHECK_EQ_INT(lb_jskim_validate(doc, strlen(doc), &top, NULL), 0);
  CHECK_EQ_INT(top.type, LB_JOBJECT);
  CHECK(top.p == doc + 1);
  CHECK(top.p[top.n - 1] == '}');
  lb_jiter_init(&it, &top);
  CHECK(lb_jobj_next(&it, &k, &v));
  CHECK(lb_jstr_eq(&k, "a", 1));
  CHECK_EQ_INT(v.type, LB_JARRAY);
  lb_jiter_init(&ai, &v);
  while (lb_jarr_next(&ai, &e)) {
    switch (count++) {
      case 0: CHECK_EQ_INT(e.type, LB_JNUMBER); CHECK(e.n == 1 && e.p[0] == '1'); break;
      case 1: CHECK_EQ_INT(e.type, LB_JSTRING); CHECK(lb_jstr_eq(&e, "x\"]", 3)); break;
      case 2: CHECK_EQ_INT(e.type, LB_JOBJECT); CHECK_EQ_INT(e.n, 10); break;
      case 3: CHECK_EQ_INT(e.type, LB_JARRAY); CHECK_EQ_INT(e.n, 3); break;
    }
  }
  CHECK_EQ_INT(count, 4);
  CHECK(!lb_jarr_next(&ai, &e));                  /* stays at the end */
  CHECK(lb_jobj_next(&it, &k, &v));
  CHECK(lb_jstr_eq(&k, "b\\", 2));
  CHECK_EQ_INT(v.type, LB_JTRUE);
  CHECK_EQ_INT(v.n, 4);
  CHECK(lb_jobj_next(&it, &k, &v));
  CHECK_EQ_INT(v.type, LB_JNUMBER);
  CHECK_EQ_INT(v.n, 6);
  CHECK(lb_jnum_to_double(&v) == -1500.0);
  CHECK(!lb_jnum_is_integer(&v));
  CHECK(lb_jobj_next(&it, &k, &v));
  CHECK(lb_jstr_eq(&k, "d", 1));
  CHECK(lb_jstr_eq(&v, "}", 1));
  CHECK(lb_jobj_next(&it, &k, &v));
  CHECK_EQ_INT(v.type, LB_JOBJECT);
  lb_jiter_init(&ai, &v);
  CHECK(!lb_jobj_next(&ai, &k, &e));              /* empty object */
  CHECK(!lb_jobj_next(&it, &k, &v));
  CHECK(!lb_jobj_next(&it, &k, &v));
  /* a scalar is not iterable */
  {
    lb_jval s;
    CHECK_EQ_INT(lb_jskim_validate("12", 2, &s, NULL), 0);
    lb_jiter_init(&it, &s);
    CHECK(!lb_jarr_next(&it, &e));
  }
  /* lb_jskim_skip on each kind */
  {
    const char *s = "\"a\\\\\"x";
    CHECK(lb_jskim_skip(s, s + strlen(s), &e) == s + 5);
    CHECK_EQ_INT(e.type, LB_JSTRING);
    s = "[\"]\",[[]],{\"}\":\"\\\"\"}]x";
    CHECK(lb_jskim_skip(s, s + strlen(s), &e) == s + strlen(s) - 1);
    s = "-1.5e+3,";
    CHECK(lb_jskim_skip(s, s + strlen(s), &e) == s + 7);
    s = "false]";
    CHECK(lb_jskim_skip(s, s + strlen(s), &e) == s + 5);
    CHECK_EQ_INT(e.type, LB_JFALSE);
  }
}

static void test_find(void) {
  const char *doc = "{\"a\\u0062c\":1,\"x\\\"y\":2,\"\\u00e9\":3,\"\xc3\xa9t\xc3\xa9\":4,"
                    "\"dup\":5,\"ab\":6,\"dup\":7,\"\\ud83d\\ude00\":8,\"\":9,\"a\\/b\":10}";
  lb_jval top, v;
  long long i = 0;
  CHECK_EQ_INT(lb_jskim_validate(doc, strlen(doc), &top, NULL), 0);
  CHECK(lb_jobj_find(&top, "abc", 3, &v) && lb_jnum_to_int64(&v, &i) && i == 1);
  CHECK(lb_jobj_find(&top, "x\"y", 3, &v) && lb_jnum_to_int64(&v, &i) && i == 2);
  CHECK(lb_jobj_find(&top, "\xc3\xa9", 2, &v) && lb_jnum_to_int64(&v, &i) && i == 3);
  CHECK(lb_jobj_find(&top, "\xc3\xa9t\xc3\xa9", 5, &v) && lb_jnum_to_int64(&v, &i) && i == 4);
  CHECK(lb_jobj_find(&top, "dup", 3, &v) && lb_jnum_to_int64(&v, &i) && i == 7);
  CHECK(lb_jobj_find(&top, "ab", 2, &v) && lb_jnum_to_int64(&v, &i) && i == 6);
  CHECK(lb_jobj_find(&top, "\xf0\x9f\x98\x80", 4, &v) && lb_jnum_to_int64(&v, &i) && i == 8);
  CHECK(lb_jobj_find(&top, "", 0, &v) && lb_jnum_to_int64(&v, &i) && i == 9);
  CHECK(lb_jobj_find(&top, "a/b", 3, &v) && lb_jnum_to_int64(&v, &i) && i == 10);
  CHECK(!lb_jobj_find(&top, "a", 1, &v));
  CHECK(!lb_jobj_find(&top, "a\\u0062c", 8, &v));  /* compares decoded keys */
  CHECK(!lb_jobj_find(&top, "abcd", 4, &v));
  CHECK(!lb_jobj_find(&top, "x\"", 2, &v));
  /* not an object */
  {
    lb_jval arr;
    CHECK_EQ_INT(lb_jskim_validate("[\"abc\"]", 7, &arr, NULL), 0);
    CHECK(!lb_jobj_find(&arr, "abc", 3, &v));
  }
}

static lb_jval num(const char *s) {
  lb_jval v;
  v.type = LB_JNUMBER;
  v.p = s;
  v.n = strlen(s);
  return v;
}

static void test_int64(void) {
  long long i = 42;
  lb_jval v;
  v = num("9223372036854775807");
  CHECK(lb_jnum_is_integer(&v));
  CHECK(lb_jnum_to_int64(&v, &i) && i == 9223372036854775807LL);
  v = num("9223372036854775808");
  CHECK(lb_jnum_is_integer(&v));
  CHECK(!lb_jnum_to_int64(&v, &i));
  v = num("-9223372036854775808");
  CHECK(lb_jnum_to_int64(&v, &i) && i == -9223372036854775807LL - 1);
  v = num("-9223372036854775809");
  CHECK(!lb_jnum_to_int64(&v, &i));
  v = num("18446744073709551616");
  CHECK(!lb_jnum_to_int64(&v, &i));
  v = num("99999999999999999999");
  CHECK(!lb_jnum_to_int64(&v, &i));
  v = num("-0");
  CHECK(lb_jnum_to_int64(&v, &i) && i == 0);
  v = num("0");
  CHECK(lb_jnum_to_int64(&v, &i) && i == 0);
  v = num("1669682107441");
  CHECK(lb_jnum_to_int64(&v, &i) && i == 1669682107441LL);
  v = num("1.0");
  CHECK(!lb_jnum_is_integer(&v));
  CHECK(!lb_jnum_to_int64(&v, &i));
  v = num("1e2");
  CHECK(!lb_jnum_is_integer(&v));
  CHECK(!lb_jnum_to_int64(&v, &i));
  v = num("1E2");
  CHECK(!lb_jnum_is_integer(&v));
  /* the span ends where the number ends, not at a NUL */
  {
    lb_jval w = num("12345");
    w.n = 3;
    CHECK(lb_jnum_to_int64(&w, &i) && i == 123);
    CHECK(lb_jnum_to_double(&w) == 123.0);
  }
}

static void test_double(void) {
  lb_jval v;
  static char big[1200];
  v = num("0.1");
  CHECK(lb_jnum_to_double(&v) == 0.1);
  v = num("1e300");
  CHECK(lb_jnum_to_double(&v) == 1e300);
  v = num("-0.0");
  CHECK(lb_jnum_to_double(&v) == 0.0 && signbit(lb_jnum_to_double(&v)));
  v = num("1e400");
  CHECK(isinf(lb_jnum_to_double(&v)));
  v = num("1e-400");
  CHECK(lb_jnum_to_double(&v) == 0.0);
  v = num("5e-324");
  CHECK(lb_jnum_to_double(&v) == 4.9406564584124654e-324);
  v = num("2.2250738585072014e-308");
  CHECK(lb_jnum_to_double(&v) == 2.2250738585072014e-308);
  v = num("123456789012345678901234567890");
  CHECK(lb_jnum_to_double(&v) == 123456789012345678901234567890.0);
  v = num("0.1000000000000000055511151231257827021181583404541015625");
  CHECK(lb_jnum_to_double(&v) == 0.1);
  v = num("0.000001234e10");
  CHECK(lb_jnum_to_double(&v) == 12340.0);
  v = num("1E+2");
  CHECK(lb_jnum_to_double(&v) == 100.0);
  v = num("1e99999999999999999999");
  CHECK(isinf(lb_jnum_to_double(&v)));
  /* 1000 digits: "1" then 999 zeros, as a fraction of 10^999 */
  memset(big, '0', sizeof big);
  big[0] = '1'; big[1000] = 'e'; big[1001] = '-'; big[1002] = '9';
  big[1003] = '9'; big[1004] = '9'; big[1005] = 0;
  v = num(big);
  CHECK(lb_jnum_to_double(&v) == 1.0);
  /* 1 + 2^-53 is halfway between 1 and the next double: rounds to even
  ** (1.0); anything above it, however far down, rounds up */
  {
    const char *half = "1.00000000000000011102230246251565404236316680908203125";
    size_t hl = strlen(half);
    memcpy(big, half, hl);
    memset(big + hl, '0', 900);
    big[hl + 900] = 0;
    v = num(big);
    CHECK(lb_jnum_to_double(&v) == 1.0);
    big[hl + 899] = '1';
    v = num(big);
    CHECK(lb_jnum_to_double(&v) == 1.0000000000000002);
  }
}

/* Leaves '-' bytes where the next call's locals will be, as a previous
** negative number would. */
static void __attribute__((noinline)) dirty_stack(void) {
  volatile char junk[2048];
  size_t i;
  for (i = 0; i < sizeof junk; i++) junk[i] = '-';
}

/* A zero's sign comes from its text, never from a byte left on the stack:
** "0.0" once read as -0.0 when the previous number was negative. */
static void test_double_zero_sign(void) {
  static const char *pos[] = { "0", "0.0", "0e0", "0.000e-5", "0E+10", "0.0e400", "1e-400", NULL };
  static const char *neg[] = { "-0", "-0.0", "-0e0", "-0.000E-5", "-1e-400", NULL };
  lb_jval v;
  int i;
  for (i = 0; pos[i]; i++) {
    double d;
    v = num("-1.5");
    CHECK(lb_jnum_to_double(&v) == -1.5);        /* a '-' in the buffer */
    v = num(pos[i]);
    d = lb_jnum_to_double(&v);
    if (d != 0.0 || signbit(d)) fprintf(stderr, "  %s read as %g\n", pos[i], d);
    CHECK(d == 0.0 && !signbit(d));
    dirty_stack();
    d = lb_jnum_to_double(&v);
    CHECK(d == 0.0 && !signbit(d));
  }
  for (i = 0; neg[i]; i++) {
    v = num(neg[i]);
    CHECK(lb_jnum_to_double(&v) == 0.0 && signbit(lb_jnum_to_double(&v)));
  }
}

/* Exponents: signs, leading zeros, case, saturation both ways, and the
** ends of the double range. */
static void test_double_exponents(void) {
  static const struct { const char *s; double d; } cases[] = {
    { "1e0", 1.0 }, { "1E+0", 1.0 }, { "1e-0", 1.0 }, { "1e007", 1e7 }, { "25E-1", 2.5 },
    { "0.5e1", 5.0 }, { "-2.5e-3", -0.0025 }, { "123.456e2", 12345.6 }, { "1e22", 1e22 },
    { "1e23", 1e23 }, { "1.7976931348623157e308", 1.7976931348623157e308 },
    { "17976931348623157e292", 1.7976931348623157e308 }, { "2.2250738585072014e-308", 2.2250738585072014e-308 },
    { "1e-308", 1e-308 }, { "4.9406564584124654e-324", 5e-324 }, { "2.5e-324", 5e-324 },
    { "2e-324", 0.0 }, { "0.00000000000000000000001e23", 1.0 }, { "100000000000000000000e-20", 1.0 },
    { "9007199254740993", 9007199254740992.0 }, { "9007199254740995", 9007199254740996.0 },
    { "1e-99999999999999999999", 0.0 }, { NULL, 0 }
  };
  lb_jval v;
  int i;
  for (i = 0; cases[i].s; i++) {
    double d;
    v = num(cases[i].s);
    d = lb_jnum_to_double(&v);
    if (d != cases[i].d) fprintf(stderr, "  %s read as %.17g\n", cases[i].s, d);
    CHECK(d == cases[i].d);
  }
  v = num("1.8e308");
  CHECK(isinf(lb_jnum_to_double(&v)) && lb_jnum_to_double(&v) > 0);
  v = num("-1e99999999999999999999");
  CHECK(isinf(lb_jnum_to_double(&v)) && lb_jnum_to_double(&v) < 0);
}

/* Differential fuzz: mutate valid documents and compare with the reference. */
static unsigned long rng_state = 88172645463325252UL;
static unsigned long rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void test_fuzz(void) {
  static const char interesting[] = "{}[],:\"\\/ 0123456789-+.eEtfnulrubu";
  static const unsigned char hi[] = { 0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed,
                                      0xef, 0xf0, 0xf4, 0xf5, 0xff, 0x00, 0x1f, 0x7f };
  char buf[512];
  int iter, mismatches = 0, accepted = 0;
  for (iter = 0; iter < 300000; iter++) {
    const char *seed = docs[rnd() % 4];
    size_t n = strlen(seed), m, k;
    int a, b;
    memcpy(buf, seed, n);
    m = 1 + rnd() % 3;
    for (k = 0; k < m; k++) {
      size_t at = rnd() % (n + 1);
      unsigned long op = rnd() % 4;
      char c = (rnd() & 1) ? interesting[rnd() % (sizeof interesting - 1)]
                           : (char)hi[rnd() % sizeof hi];
      if (op == 0 && at < n) buf[at] = c;                           /* replace */
      else if (op == 1 && n < sizeof buf - 1) {                     /* insert */
        memmove(buf + at + 1, buf + at, n - at); buf[at] = c; n++;
      } else if (op == 2 && at < n) {                               /* delete */
        memmove(buf + at, buf + at + 1, n - at - 1); n--;
      } else if (at < n) {                                          /* swap */
        size_t o = rnd() % n; char t = buf[at]; buf[at] = buf[o]; buf[o] = t;
      }
    }
    a = valn(buf, n) == 0;
    b = ref_validate(buf, n);
    accepted += a;
    if (a != b) {
      if (mismatches++ < 5)
        fprintf(stderr, "  fuzz mismatch (jskim %d, ref %d): %.*s\n", a, b, (int)n, buf);
    }
  }
  CHECK_EQ_INT(mismatches, 0);
  CHECK(accepted > 1000);    /* the fuzz does reach valid documents */
}

TEST_LIST {
  {"literals", test_literals},
  {"numbers", test_numbers},
  {"escapes", test_escapes},
  {"surrogates", test_surrogates},
  {"control_chars", test_control_chars},
  {"utf8", test_utf8},
  {"depth", test_depth},
  {"truncation", test_truncation},
  {"trailing_and_syntax", test_trailing_and_syntax},
  {"iterators", test_iterators},
  {"find", test_find},
  {"int64", test_int64},
  {"double", test_double},
  {"double_zero_sign", test_double_zero_sign},
  {"double_exponents", test_double_exponents},
  {"fuzz", test_fuzz},
  {NULL, NULL}
};
LBTEST_MAIN
