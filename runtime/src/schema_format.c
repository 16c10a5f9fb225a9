/*
** schema_format.c - checkers for JSON Schema's "format" values (see
** schema_format.h). Each reads the decoded string and answers valid or not.
*/
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "schema_format.h"
#include "ecma_regex.h"
#include "textbuf.h"

static int digits_at(const char *s, size_t n, size_t at, size_t k, int *v) {
  size_t i;
  *v = 0;
  if (at + k > n) return 0;
  for (i = 0; i < k; i++) {
    if (!isdigit((unsigned char)s[at + i])) return 0;
    *v = *v * 10 + (s[at + i] - '0');
  }
  return 1;
}

static int leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int fmt_date(const char *s, size_t n) {
  static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  int y, m, d;
  if (n != 10 || s[4] != '-' || s[7] != '-') return 0;
  if (!digits_at(s, n, 0, 4, &y) || !digits_at(s, n, 5, 2, &m) || !digits_at(s, n, 8, 2, &d))
    return 0;
  if (m < 1 || m > 12 || d < 1) return 0;
  return d <= mdays[m - 1] + (m == 2 && leap(y));
}

/* RFC 3339 full-time; a leap second only at 23:59:60 UTC. */
static int fmt_time(const char *s, size_t n) {
  int h, mi, sec, oh = 0, om = 0, sign = 0;
  size_t i = 8;
  if (n < 9 || s[2] != ':' || s[5] != ':') return 0;
  if (!digits_at(s, n, 0, 2, &h) || !digits_at(s, n, 3, 2, &mi) || !digits_at(s, n, 6, 2, &sec))
    return 0;
  if (h > 23 || mi > 59 || sec > 60) return 0;
  if (i < n && s[i] == '.') {
    size_t st = ++i;
    while (i < n && isdigit((unsigned char)s[i])) i++;
    if (i == st) return 0;
  }
  if (i == n) return 0;
  if (s[i] == 'z' || s[i] == 'Z') {
    i++;
  } else if (s[i] == '+' || s[i] == '-') {
    sign = s[i] == '+' ? 1 : -1;
    if (i + 6 != n || s[i + 3] != ':' || !digits_at(s, n, i + 1, 2, &oh) ||
        !digits_at(s, n, i + 4, 2, &om) || oh > 23 || om > 59)
      return 0;
    i += 6;
  } else {
    return 0;
  }
  if (i != n) return 0;
  if (sec == 60) {
    int utc = (h * 60 + mi - sign * (oh * 60 + om) + 2 * 1440) % 1440;
    if (utc != 23 * 60 + 59) return 0;
  }
  return 1;
}

static int fmt_datetime(const char *s, size_t n) {
  if (n < 11 || (s[10] != 'T' && s[10] != 't')) return 0;
  return fmt_date(s, 10) && fmt_time(s + 11, n - 11);
}

static int fmt_ipv4(const char *s, size_t n) {
  size_t i = 0;
  int part;
  for (part = 0; part < 4; part++) {
    size_t st = i;
    int v = 0;
    if (part) { if (i >= n || s[i] != '.') return 0; st = ++i; }
    while (i < n && isdigit((unsigned char)s[i]) && i - st < 3) v = v * 10 + (s[i++] - '0');
    if (i == st || v > 255 || (s[st] == '0' && i - st > 1)) return 0;
  }
  return i == n;
}

static int fmt_ipv6(const char *s, size_t n) {
  int groups = 0, dbl = 0;
  size_t i = 0;
  if (n < 2) return 0;
  if (s[0] == ':') {
    if (s[1] != ':') return 0;
    dbl = 1;
    i = 2;
    if (i == n) return 1;
  }
  while (i < n) {
    size_t st = i;
    while (i < n && lb__hexval((unsigned char)s[i]) >= 0 && i - st < 5) i++;
    if (i < n && s[i] == '.') {     /* a trailing IPv4 takes two groups */
      if (!fmt_ipv4(s + st, n - st)) return 0;
      groups += 2;
      i = n;
      break;
    }
    if (i == st || i - st > 4) return 0;
    groups++;
    if (i == n) break;
    if (s[i] != ':') return 0;
    i++;
    if (i < n && s[i] == ':') {
      if (dbl) return 0;
      dbl = 1;
      i++;
      if (i == n) break;
    } else if (i == n) {
      return 0;                      /* a trailing single ':' */
    }
  }
  return dbl ? groups < 8 : groups == 8;
}

static int fmt_hostname_ex(const char *s, size_t n, int idn) {
  size_t i = 0;
  if (n == 0 || n > 253) return 0;
  while (i < n) {
    size_t st = i;
    while (i < n && s[i] != '.') {
      unsigned char c = (unsigned char)s[i];
      if (!(isalnum(c) || c == '-' || (idn && c >= 0x80))) return 0;
      i++;
    }
    if (i == st || i - st > 63) return 0;
    if (s[st] == '-' || s[i - 1] == '-') return 0;
    /* "ab--" in positions 3-4 is reserved for A-labels ("xn--") */
    if (i - st >= 4 && s[st + 2] == '-' && s[st + 3] == '-' &&
        !((s[st] == 'x' || s[st] == 'X') && (s[st + 1] == 'n' || s[st + 1] == 'N')))
      return 0;
    if (i < n) i++;
    if (i == n && s[n - 1] == '.') return 0;   /* no empty last label */
  }
  return 1;
}

static int fmt_email_ex(const char *s, size_t n, int idn) {
  const char *at = NULL;
  size_t i, ln;
  for (i = n; i > 0; i--) if (s[i - 1] == '@') { at = s + i - 1; break; }
  if (!at) return 0;
  ln = (size_t)(at - s);
  if (ln == 0 || ln > 64) return 0;
  if (s[0] == '"') {
    if (ln < 2 || s[ln - 1] != '"') return 0;
  } else {
    if (s[0] == '.' || s[ln - 1] == '.') return 0;
    for (i = 0; i < ln; i++) {
      unsigned char c = (unsigned char)s[i];
      if (c == '.' && s[i + 1] == '.') return 0;
      if (!(isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~.", c) || (idn && c >= 0x80)) || c == 0)
        return 0;
    }
  }
  s = at + 1;
  n -= ln + 1;
  if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
    if (n > 7 && !strncmp(s + 1, "IPv6:", 5)) return fmt_ipv6(s + 6, n - 7);
    return fmt_ipv4(s + 1, n - 2);
  }
  return fmt_hostname_ex(s, n, idn);
}

/* RFC 3986 URI / URI-reference (iri: any non-ASCII allowed too). */
static int uri_chars_ok(const char *s, size_t n, const char *extra, int iri) {
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%') {
      if (i + 2 >= n || lb__hexval((unsigned char)s[i + 1]) < 0 || lb__hexval((unsigned char)s[i + 2]) < 0) return 0;
      i += 2;
    } else if (!(isalnum(c) || strchr("-._~!$&'()*+,;=:@/?", c) || (extra && strchr(extra, c)) ||
                 (iri && c >= 0x80)) || c == 0) {
      return 0;
    }
  }
  return 1;
}

static int fmt_uri_ex(const char *s, size_t n, int need_scheme, int iri) {
  size_t i = 0, hash = n;
  const char *p;
  for (i = 0; i < n; i++) if (s[i] == '#') { hash = i; break; }
  if (hash < n && !uri_chars_ok(s + hash + 1, n - hash - 1, NULL, iri)) return 0;
  /* scheme */
  for (i = 0; i < hash && (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.'); i++) {}
  if (i < hash && s[i] == ':' && i > 0 && isalpha((unsigned char)s[0])) {
    i++;
  } else {
    if (need_scheme) return 0;
    i = 0;
    /* a relative reference's first segment has no ':' */
    for (p = s; p < s + hash && *p != '/' && *p != '?'; p++) if (*p == ':') return 0;
  }
  if (hash - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
    size_t a = i + 2, e = a, k, h;
    const char *at;
    while (e < hash && s[e] != '/' && s[e] != '?') e++;
    /* userinfo "@" host [":" port] */
    at = memchr(s + a, '@', e - a);
    h = a;
    if (at) {
      h = (size_t)(at - s) + 1;
      if (memchr(s + h, '@', e - h)) return 0;
      for (k = a; k < h - 1; k++) if (s[k] == '[' || s[k] == ']') return 0;
      if (!uri_chars_ok(s + a, h - 1 - a, NULL, iri)) return 0;
    }
    if (h < e && s[h] == '[') {      /* IP literal: IPv6 or IPvFuture */
      const char *rb = memchr(s + h, ']', e - h);
      size_t in = h + 1, ln;
      if (!rb) return 0;
      ln = (size_t)(rb - s) - in;
      if (ln > 1 && (s[in] == 'v' || s[in] == 'V')) {
        size_t j = in + 1;
        while (j < in + ln && lb__hexval((unsigned char)s[j]) >= 0) j++;
        if (j == in + 1 || j >= in + ln || s[j] != '.' || j + 1 == in + ln) return 0;
        for (j++; j < in + ln; j++)
          if (!(isalnum((unsigned char)s[j]) || strchr("-._~!$&'()*+,;=:", s[j]))) return 0;
      } else if (!fmt_ipv6(s + in, ln)) {
        return 0;
      }
      k = (size_t)(rb - s) + 1;
    } else {
      for (k = h; k < e && s[k] != ':'; k++)
        if (s[k] == '[' || s[k] == ']') return 0;
      if (!uri_chars_ok(s + h, k - h, NULL, iri)) return 0;
    }
    if (k < e) {                     /* the port: digits only */
      if (s[k] != ':') return 0;
      for (k++; k < e; k++) if (!isdigit((unsigned char)s[k])) return 0;
    }
    i = e;
  }
  return uri_chars_ok(s + i, hash - i, NULL, iri);
}

static int fmt_json_pointer(const char *s, size_t n) {
  size_t i;
  if (n && s[0] != '/') return 0;
  for (i = 0; i < n; i++)
    if (s[i] == '~' && (i + 1 >= n || (s[i + 1] != '0' && s[i + 1] != '1'))) return 0;
  return 1;
}

static int fmt_rel_json_pointer(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && isdigit((unsigned char)s[i])) i++;
  if (i == 0 || (s[0] == '0' && i > 1)) return 0;
  if (i < n && (s[i] == '+' || s[i] == '-')) {   /* index adjustment */
    size_t st = ++i;
    while (i < n && isdigit((unsigned char)s[i])) i++;
    if (i == st || (s[st] == '0' && i - st > 1)) return 0;
  }
  if (i == n) return 1;
  if (s[i] == '#') return i + 1 == n;
  return fmt_json_pointer(s + i, n - i);
}

static int pct_ok(const char *s, size_t n, size_t i) {
  return i + 2 < n && lb__hexval((unsigned char)s[i + 1]) >= 0 && lb__hexval((unsigned char)s[i + 2]) >= 0;
}

/* RFC 6570: literals, and expressions "{" [op] varspec *("," varspec) "}" */
static int fmt_uri_template(const char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c == '{') {
      i++;
      if (i < n && strchr("+#./;?&", s[i])) i++;
      for (;;) {
        int chars = 0;
        /* varname: varchar *(["."] varchar) */
        while (i < n) {
          if (isalnum((unsigned char)s[i]) || s[i] == '_') { i++; chars++; }
          else if (s[i] == '%' && pct_ok(s, n, i)) { i += 3; chars++; }
          else if (s[i] == '.' && chars && i + 1 < n && s[i + 1] != '.' && s[i + 1] != '}' &&
                   s[i + 1] != ',' && s[i + 1] != ':' && s[i + 1] != '*') i++;
          else break;
        }
        if (!chars || i >= n) return 0;
        if (s[i] == '*') {
          i++;
        } else if (s[i] == ':') {
          size_t st = ++i;
          while (i < n && isdigit((unsigned char)s[i])) i++;
          if (i == st || i - st > 4 || s[st] == '0') return 0;
        }
        if (i >= n) return 0;
        if (s[i] == ',') { i++; continue; }
        if (s[i] == '}') { i++; break; }
        return 0;
      }
    } else if (c == '%') {
      if (!pct_ok(s, n, i)) return 0;
      i += 3;
    } else {
      if (c <= ' ' || c == 0x7f || strchr("\"<>\\^`|}", c)) return 0;
      i++;
    }
  }
  return 1;
}

static int fmt_regex(const char *s, size_t n) {
  lb_sbuf o = { NULL, 0, 0, 0 };
  const char *why;
  int unsupported;
  int rc = lb__ecma_to_posix(s, n, &o, &why, &unsupported);
  free(o.p);
  /* unsupported constructs are still valid ECMA regexes */
  return rc == 0 || unsupported;
}

static const struct { const char *name; int id; } formats[] = {
  { "date-time", LB_FMT_DATETIME }, { "date", LB_FMT_DATE }, { "time", LB_FMT_TIME },
  { "email", LB_FMT_EMAIL }, { "idn-email", LB_FMT_IDN_EMAIL }, { "hostname", LB_FMT_HOSTNAME },
  { "idn-hostname", LB_FMT_IDN_HOSTNAME }, { "ipv4", LB_FMT_IPV4 }, { "ipv6", LB_FMT_IPV6 },
  { "uri", LB_FMT_URI }, { "uri-reference", LB_FMT_URI_REF }, { "iri", LB_FMT_IRI },
  { "iri-reference", LB_FMT_IRI_REF }, { "uri-template", LB_FMT_URI_TEMPLATE },
  { "json-pointer", LB_FMT_JSON_POINTER }, { "relative-json-pointer", LB_FMT_REL_JSON_POINTER },
  { "regex", LB_FMT_REGEX }, { NULL, 0 }
};

const char *lb__format_name(int id) {
  int i;
  for (i = 0; formats[i].name; i++) if (formats[i].id == id) return formats[i].name;
  return "format";
}

int lb__format_ok(int id, const char *s, size_t n) {
  switch (id) {
    case LB_FMT_DATETIME: return fmt_datetime(s, n);
    case LB_FMT_DATE: return fmt_date(s, n);
    case LB_FMT_TIME: return fmt_time(s, n);
    case LB_FMT_EMAIL: return fmt_email_ex(s, n, 0);
    case LB_FMT_IDN_EMAIL: return fmt_email_ex(s, n, 1);
    case LB_FMT_HOSTNAME: return fmt_hostname_ex(s, n, 0);
    case LB_FMT_IDN_HOSTNAME: return fmt_hostname_ex(s, n, 1);
    case LB_FMT_IPV4: return fmt_ipv4(s, n);
    case LB_FMT_IPV6: return fmt_ipv6(s, n);
    case LB_FMT_URI: return fmt_uri_ex(s, n, 1, 0);
    case LB_FMT_URI_REF: return fmt_uri_ex(s, n, 0, 0);
    case LB_FMT_IRI: return fmt_uri_ex(s, n, 1, 1);
    case LB_FMT_IRI_REF: return fmt_uri_ex(s, n, 0, 1);
    case LB_FMT_URI_TEMPLATE: return fmt_uri_template(s, n);
    case LB_FMT_JSON_POINTER: return fmt_json_pointer(s, n);
    case LB_FMT_REL_JSON_POINTER: return fmt_rel_json_pointer(s, n);
    case LB_FMT_REGEX: return fmt_regex(s, n);
    default: return 1;
  }
}

int lb__format_id(const lb_jval *name) {
  int i;
  for (i = 0; formats[i].name; i++)
    if (lb_jstr_eq(name, formats[i].name, strlen(formats[i].name))) return formats[i].id;
  return LB_FMT_NONE;
}
