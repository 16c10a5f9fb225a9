/*
** test_jsonschema.c - the draft-07 validator (jsonschema.c) and its Lua
** binding (lua_jsonschema.c).
**
** Part 1, unit cases: error paths and messages, the recursion limit, $ref
** loops, compile errors and warnings, pattern translation, numbers.
** Part 2, the official JSON Schema Test Suite under
** $LB_SOURCE_DIR/../shared/conformance/jsonschema: every test of
** tests/draft7/ (the *.json files) must pass (each is one case); tests/draft7/optional
** are run and reported, without failing the program (format tests with
** format assertion on, as the suite expects).
**
** The last line is "N passed, N failed" over the unit cases and the
** required suite tests, which the top-level test script sums.
*/
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "lb_internal.h"
#include "jskim.h"
#include "jsonschema.h"
#include "lbtest.h"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */
/* ---------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
    fclose(f);
    return NULL;
  }
  buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
  fclose(f);
  if (buf) { buf[n] = '\0'; *len = (size_t)n; }
  return buf;
}

/* Compile, or NULL with the reason printed. */
static lb_schema *compile_opts(const char *text, const lb_schema_opts *o, int *rc) {
  lb_schema *s = NULL;
  char err[256];
  int r = lb_schema_compile(text, strlen(text), o, &s, err, sizeof err);
  if (rc) *rc = r;
  if (r && !rc) fprintf(stderr, "  compile failed: %s\n", err);
  return s;
}

static lb_schema *compile(const char *text) { return compile_opts(text, NULL, NULL); }

/* Validate; returns the code and fills errs (max messages). */
static int check(lb_schema *s, const char *inst, lb_schema_errors *e, int max) {
  memset(e, 0, sizeof *e);
  e->max = max;
  return lb_schema_validate(s, inst, strlen(inst), e);
}

static int valid(const char *schema, const char *inst) {
  lb_schema *s = compile(schema);
  lb_schema_errors e;
  int r;
  if (!s) return -100;
  r = check(s, inst, &e, 0);
  lb_schema_errors_clear(&e);
  lb_schema_free(s);
  return r;
}

/* The first message of validating inst, for comparing (static buffer). */
static const char *first_msg(const char *schema, const char *inst) {
  static char buf[512];
  lb_schema *s = compile(schema);
  lb_schema_errors e;
  buf[0] = '\0';
  if (!s) return "(compile failed)";
  check(s, inst, &e, 8);
  snprintf(buf, sizeof buf, "%s", e.count ? e.msgs[0] : "(none)");
  lb_schema_errors_clear(&e);
  lb_schema_free(s);
  return buf;
}

/* ---------------------------------------------------------------------- */
/* Unit cases                                                              */
/* ---------------------------------------------------------------------- */

static const char *config_schema =
  "{\"type\":\"object\",\"required\":[\"credentials\",\"start_date\"],"
  "\"additionalProperties\":false,"
  "\"properties\":{"
  "\"start_date\":{\"type\":\"string\",\"pattern\":\"^\\\\d{4}-\\\\d{2}-\\\\d{2}$\"},"
  "\"page size\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000},"
  "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"uniqueItems\":true},"
  "\"credentials\":{\"type\":\"object\",\"oneOf\":["
  "{\"title\":\"API key\",\"required\":[\"auth_type\",\"api_key\"],"
  "\"properties\":{\"auth_type\":{\"const\":\"api_key\"},\"api_key\":{\"type\":\"string\",\"airbyte_secret\":true}}},"
  "{\"title\":\"OAuth\",\"required\":[\"auth_type\",\"client_id\",\"client_secret\"],"
  "\"properties\":{\"auth_type\":{\"const\":\"oauth2\"},\"client_id\":{\"type\":\"string\"},"
  "\"client_secret\":{\"type\":\"string\"}}}]}}}";

static void test_messages(void) {
  lb_schema *s = compile(config_schema);
  lb_schema_errors e;
  int r, i;
  CHECK(s != NULL);
  if (!s) return;
  r = check(s, "{\"credentials\":{\"auth_type\":\"api_key\",\"api_key\":\"k\"},\"start_date\":\"2024-01-01\"}", &e, 8);
  CHECK_EQ_INT(r, 0);
  CHECK_EQ_INT(e.count, 0);
  lb_schema_errors_clear(&e);

  r = check(s, "{\"credentials\":{\"auth_type\":\"api_key\",\"api_key\":123},\"start_date\":\"2024-01-01\"}", &e, 8);
  CHECK_EQ_INT(r, 1);
  CHECK(e.count >= 2);
  if (e.count >= 2) {
    CHECK_EQ_STR(e.msgs[0], "$.credentials: value does not match any of the 2 schemas in oneOf (closest: #0)");
    CHECK_EQ_STR(e.msgs[1], "$.credentials.api_key: expected string, got number");
  }
  lb_schema_errors_clear(&e);

  /* every failure at once, in instance order; secrets never quoted */
  r = check(s, "{\"credentials\":{\"auth_type\":\"oauth2\",\"client_id\":\"id\"},"
               "\"start_date\":\"sup3rs3cret\",\"page size\":0,\"tags\":[\"a\",\"b\",\"a\"],"
               "\"extra\":1}", &e, 20);
  CHECK_EQ_INT(r, 1);
  {
    static const char *want[] = {
      "$.credentials: value does not match any of the 2 schemas in oneOf (closest: #1)",
      "$.credentials: missing required property \"client_secret\"",
      "$.start_date: string does not match the pattern \"^\\\\d{4}-\\\\d{2}-\\\\d{2}$\"",
      "$[\"page size\"]: 0 is less than the minimum 1",
      "$.tags: items 0 and 2 are equal, but items must be unique",
      "$.extra: property is not allowed (additionalProperties is false)",
    };
    CHECK_EQ_INT(e.count, 6);
    for (i = 0; i < e.count && i < 6; i++) CHECK_EQ_STR(e.msgs[i], want[i]);
    for (i = 0; i < e.count; i++) CHECK(strstr(e.msgs[i], "sup3rs3cret") == NULL);
  }
  lb_schema_errors_clear(&e);

  r = check(s, "{}", &e, 8);
  CHECK_EQ_INT(r, 1);
  CHECK_EQ_INT(e.count, 2);
  if (e.count == 2) {
    CHECK_EQ_STR(e.msgs[0], "$: missing required property \"credentials\"");
    CHECK_EQ_STR(e.msgs[1], "$: missing required property \"start_date\"");
  }
  lb_schema_errors_clear(&e);

  /* max: collection stops, truncated tells */
  r = check(s, "{}", &e, 1);
  CHECK_EQ_INT(r, 1);
  CHECK_EQ_INT(e.count, 1);
  CHECK_EQ_INT(e.truncated, 1);
  lb_schema_errors_clear(&e);
  r = check(s, "[]", &e, 0);
  CHECK_EQ_INT(r, 1);
  CHECK_EQ_INT(e.count, 0);
  lb_schema_errors_clear(&e);
  /* errs may be NULL */
  CHECK_EQ_INT(lb_schema_validate(s, "{}", 2, NULL), 1);
  lb_schema_free(s);

  CHECK_EQ_STR(first_msg("{\"items\":{\"type\":\"integer\"}}", "[1,2,3.5]"),
               "$[2]: expected integer, got number");
  CHECK_EQ_STR(first_msg("{\"items\":[{},{}],\"additionalItems\":false}", "[1,2,3]"),
               "$[2]: additional item is not allowed (additionalItems is false)");
  CHECK_EQ_STR(first_msg("{\"properties\":{\"a\":{\"properties\":{\"b\\\"c\":{\"type\":[\"string\",\"null\"]}}}}}",
                         "{\"a\":{\"b\\\"c\":true}}"),
               "$.a[\"b\\\"c\"]: expected null or string, got boolean");
  CHECK_EQ_STR(first_msg("{\"enum\":[\"a\",\"b\"]}", "\"c\""), "$: value is not one of [\"a\",\"b\"]");
  CHECK_EQ_STR(first_msg("{\"enum\": [ \"a b\" ,\n  \"\\\" c\" ]}", "1"),
               "$: value is not one of [\"a b\",\"\\\" c\"]");
  CHECK_EQ_STR(first_msg("{\"const\":{\"x\":1}}", "{\"x\":2}"), "$: value must be {\"x\":1}");
  CHECK_EQ_STR(first_msg("{\"maxLength\":2}", "\"\\u00e9\\u00e9\\u00e9\""), "$: string is longer than 2 characters");
  CHECK_EQ_STR(first_msg("{\"not\":{\"type\":\"string\"}}", "\"x\""), "$: value must not match the schema in \"not\"");
  CHECK_EQ_STR(first_msg("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":0}]}", "1"),
               "$: value matches more than one schema in oneOf (#0 and #1)");
  CHECK_EQ_STR(first_msg("{\"dependencies\":{\"a\":[\"b\"]}}", "{\"a\":1}"),
               "$: property \"b\" is required when \"a\" is present");
  CHECK_EQ_STR(first_msg("{\"contains\":{\"const\":1}}", "[2]"), "$: no item matches the contains schema");
  CHECK_EQ_STR(first_msg("false", "1"), "$: no value is allowed here (schema is false)");
  CHECK_EQ_STR(first_msg("{\"multipleOf\":0.01}", "0.125"), "$: 0.125 is not a multiple of 0.01");
  CHECK_EQ_STR(first_msg("{\"if\":{\"minimum\":10},\"then\":{\"multipleOf\":5},\"else\":{\"const\":3}}", "12"),
               "$: 12 is not a multiple of 5");
  CHECK_EQ_STR(first_msg("{\"propertyNames\":{\"maxLength\":2}}", "{\"abc\":1}"),
               "$.abc: string is longer than 2 characters");
}

static void test_numbers(void) {
  CHECK_EQ_INT(valid("{\"type\":\"integer\"}", "1.0"), 0);
  CHECK_EQ_INT(valid("{\"type\":\"integer\"}", "1e2"), 0);
  CHECK_EQ_INT(valid("{\"type\":\"integer\"}", "1.5"), 1);
  CHECK_EQ_INT(valid("{\"type\":\"integer\"}", "123456789012345678901234567890"), 0);
  CHECK_EQ_INT(valid("{\"const\":1}", "1.0"), 0);
  CHECK_EQ_INT(valid("{\"const\":12345678901234567890123}", "12345678901234567890123"), 0);
  CHECK_EQ_INT(valid("{\"const\":12345678901234567890123}", "12345678901234567890124"), 1);
  CHECK_EQ_INT(valid("{\"enum\":[{\"a\":[1,{\"b\":2}],\"c\":\"\\u0041\"}]}",
                     "{\"c\":\"A\",\"a\":[1.0,{\"b\":2e0}]}"), 0);
  /* int64 bounds compare exactly: as doubles these two are equal */
  CHECK_EQ_INT(valid("{\"maximum\":9007199254740992}", "9007199254740993"), 1);
  CHECK_EQ_INT(valid("{\"exclusiveMinimum\":9223372036854775806}", "9223372036854775807"), 0);
  CHECK_EQ_INT(valid("{\"multipleOf\":0.0001}", "0.0075"), 0);
  CHECK_EQ_INT(valid("{\"multipleOf\":0.0001}", "0.00751"), 1);
  CHECK_EQ_INT(valid("{\"multipleOf\":3}", "-9"), 0);
  CHECK_EQ_INT(valid("{\"uniqueItems\":true}", "[1,1.0]"), 1);
  CHECK_EQ_INT(valid("{\"uniqueItems\":true}", "[{\"a\":1,\"b\":2},{\"b\":2,\"a\":1}]"), 1);
  CHECK_EQ_INT(valid("{\"uniqueItems\":true}", "[[1],[true]]"), 0);
  /* draft-04 boolean exclusiveMinimum is honoured (with a warning) */
  CHECK_EQ_INT(valid("{\"minimum\":0,\"exclusiveMinimum\":true}", "0"), 1);
}

/* A deep array for the nesting limit: [[[...1...]]] */
static char *nested(int depth) {
  char *p = malloc((size_t)depth * 2 + 2);
  int i;
  for (i = 0; i < depth; i++) p[i] = '[';
  p[depth] = '1';
  for (i = 0; i < depth; i++) p[depth + 1 + i] = ']';
  p[2 * depth + 1] = '\0';
  return p;
}

static void test_limits(void) {
  lb_schema *s = compile("{\"items\":{\"$ref\":\"#\"},\"type\":[\"array\",\"integer\"]}");
  lb_schema_errors e;
  char *deep = nested(500), *shallow = nested(100);
  lb_schema_opts o;
  int r;
  CHECK(s != NULL);
  if (!s) return;
  CHECK_EQ_INT(check(s, shallow, &e, 4), 0);
  lb_schema_errors_clear(&e);
  /* two evaluations per level (items, then the $ref): 500 levels > 512 */
  r = check(s, deep, &e, 4);
  CHECK_EQ_INT(r, LB_SCHEMA_EDEPTH);
  CHECK(e.count >= 1 && strstr(e.msgs[e.count - 1], "more than 512 nested evaluations") != NULL);
  /* long paths keep their innermost 64 segments */
  if (e.count) CHECK(strncmp(e.msgs[e.count - 1], "$...[0][0][0]", 13) == 0);
  lb_schema_errors_clear(&e);
  /* the verdict-only mode reports it the same way */
  CHECK_EQ_INT(lb_schema_validate(s, deep, strlen(deep), NULL), LB_SCHEMA_EDEPTH);
  lb_schema_free(s);

  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  o.max_depth = 10;
  s = compile_opts("{\"items\":{\"$ref\":\"#\"}}", &o, NULL);
  CHECK(s != NULL);
  if (s) {
    CHECK_EQ_INT(check(s, "[[[1]]]", &e, 4), 0);
    lb_schema_errors_clear(&e);
    CHECK_EQ_INT(check(s, shallow, &e, 4), LB_SCHEMA_EDEPTH);
    lb_schema_errors_clear(&e);
    lb_schema_free(s);
  }
  free(deep);
  free(shallow);
}

static void test_loops(void) {
  static const char *loops[] = {
    "{\"$ref\":\"#\"}",
    "{\"definitions\":{\"a\":{\"$ref\":\"#/definitions/b\"},\"b\":{\"$ref\":\"#/definitions/a\"}},"
    "\"allOf\":[{\"$ref\":\"#/definitions/a\"}]}",
    "{\"allOf\":[{\"$ref\":\"#\"}]}",
    "{\"anyOf\":[{\"not\":{\"$ref\":\"#\"}}]}",
    "{\"properties\":{\"a\":{\"$ref\":\"#/definitions/x\"}},"
    "\"definitions\":{\"x\":{\"if\":{\"$ref\":\"#/definitions/x\"},\"then\":true}}}",
    NULL
  };
  int i;
  for (i = 0; loops[i]; i++) {
    lb_schema *s = compile(loops[i]);
    lb_schema_errors e;
    CHECK(s != NULL);
    if (!s) continue;
    CHECK_EQ_INT(check(s, "{\"a\":1}", &e, 4), LB_SCHEMA_ELOOP);
    CHECK(e.count == 1 && strstr(e.msgs[0], "infinite $ref loop") != NULL);
    lb_schema_errors_clear(&e);
    lb_schema_free(s);
  }
  /* the same schema for the same data twice, not nested: no loop */
  CHECK_EQ_INT(valid("{\"definitions\":{\"i\":{\"type\":\"integer\"}},"
                     "\"allOf\":[{\"$ref\":\"#/definitions/i\"},{\"$ref\":\"#/definitions/i\"}]}", "1"), 0);
}

static int test_loader_calls;
static int fake_loader(void *ud, const char *uri, char **text, size_t *len) {
  const char *t;
  (void)ud;
  test_loader_calls++;
  if (!strcmp(uri, "http://x.test/int.json")) t = "{\"type\":\"integer\"}";
  else if (!strcmp(uri, "http://x.test/bad.json")) t = "{\"type\":";
  else return -1;
  *len = strlen(t);
  *text = malloc(*len);
  memcpy(*text, t, *len);
  return 0;
}

static void test_compile_errors(void) {
  lb_schema *s = NULL;
  char err[200];
  lb_schema_opts o;
  int rc;
#define COMPILE(text) lb_schema_compile(text, strlen(text), NULL, &s, err, sizeof err)
  rc = COMPILE("{\"type\":");
  CHECK_EQ_INT(rc, LB_SCHEMA_EJSON);
  CHECK(s == NULL);
  CHECK(strstr(err, "invalid JSON at offset 8") != NULL);
  rc = COMPILE("{\"$ref\":\"#/definitions/nope\"}");
  CHECK_EQ_INT(rc, LB_SCHEMA_EREF);
  CHECK_EQ_STR(err, "#: $ref #/definitions/nope: no such location");
  rc = COMPILE("{\"$ref\":\"#nope\"}");
  CHECK_EQ_INT(rc, LB_SCHEMA_EREF);
  CHECK_EQ_STR(err, "#: $ref #nope: no such anchor");
  rc = COMPILE("{\"items\":{\"$ref\":\"http://x.test/none.json\"}}");
  CHECK_EQ_INT(rc, LB_SCHEMA_ELOAD);
  CHECK_EQ_STR(err, "cannot load http://x.test/none.json");
  CHECK_EQ_STR(lb_schema_strerror(LB_SCHEMA_ELOOP), "infinite $ref loop");

  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  o.loader = fake_loader;
  o.base_uri = "http://x.test/root.json";
  test_loader_calls = 0;
  s = compile_opts("{\"properties\":{\"a\":{\"$ref\":\"int.json\"},\"b\":{\"$ref\":\"int.json#\"}}}", &o, NULL);
  CHECK(s != NULL);
  CHECK_EQ_INT(test_loader_calls, 1);
  if (s) {
    CHECK_EQ_INT(lb_schema_validate(s, "{\"a\":1,\"b\":2}", 13, NULL), 0);
    CHECK_EQ_INT(lb_schema_validate(s, "{\"a\":1,\"b\":\"2\"}", 15, NULL), 1);
    lb_schema_free(s);
  }
  s = compile_opts("{\"$ref\":\"bad.json\"}", &o, &rc);
  CHECK_EQ_INT(rc, LB_SCHEMA_EJSON);
  CHECK(s == NULL);

  /* the meta-schema is built in: a schema can be checked against it */
  s = compile("{\"$ref\":\"http://json-schema.org/draft-07/schema#\"}");
  CHECK(s != NULL);
  if (s) {
    CHECK_EQ_INT(lb_schema_validate(s, "{\"type\":\"object\",\"properties\":{\"a\":{\"minLength\":1}}}", 52, NULL), 0);
    CHECK_EQ_INT(lb_schema_validate(s, "{\"properties\":{\"a\":{\"minLength\":-1}}}", 37, NULL), 1);
    lb_schema_free(s);
  }
  /* an instance that is not JSON */
  s = compile("{}");
  if (s) {
    lb_schema_errors e;
    CHECK_EQ_INT(check(s, "{\"a\":", &e, 0), LB_SCHEMA_EJSON);
    CHECK(e.count == 1 && strstr(e.msgs[0], "invalid JSON") != NULL);
    lb_schema_errors_clear(&e);
    lb_schema_free(s);
  }
}

static void test_warnings(void) {
  lb_schema *s = compile("{\"properties\":{\"a\":{\"pattern\":\"^(?=x)\"},\"b\":{\"minLength\":\"3\"}},"
                         "\"patternProperties\":{\"\\\\p{L}\":{}}}");
  CHECK(s != NULL);
  if (!s) return;
  CHECK_EQ_INT(lb_schema_nwarnings(s), 3);
  CHECK_EQ_STR(lb_schema_warning(s, 0),
               "#: patternProperties \"\\\\p{L}\" never matches: \\p{...} Unicode property escapes (not supported)");
  CHECK_EQ_STR(lb_schema_warning(s, 1), "#/properties/a: pattern \"^(?=x)\" not enforced: lookahead (not supported)");
  CHECK_EQ_STR(lb_schema_warning(s, 2), "#/properties/b: minLength must be a non-negative integer: ignored");
  CHECK(lb_schema_warning(s, 3) == NULL);
  /* the pattern that could not be translated is not enforced */
  CHECK_EQ_INT(lb_schema_validate(s, "{\"a\":\"y\",\"b\":\"\"}", 16, NULL), 0);
  lb_schema_free(s);
}

static void test_patterns(void) {
  CHECK_EQ_INT(valid("{\"pattern\":\"^\\\\d+$\"}", "\"123\""), 0);
  CHECK_EQ_INT(valid("{\"pattern\":\"^\\\\d+$\"}", "\"12a\""), 1);
  CHECK_EQ_INT(valid("{\"pattern\":\"^.$\"}", "\"\\u00e9\""), 0);           /* one code point */
  CHECK_EQ_INT(valid("{\"pattern\":\"^.$\"}", "\"\\ud83d\\ude00\""), 0);
  CHECK_EQ_INT(valid("{\"pattern\":\"^[^a]$\"}", "\"\\u00e9\""), 0);
  CHECK_EQ_INT(valid("{\"pattern\":\"^\\u00e9+$\"}", "\"\\u00e9\\u00e9\""), 0);  /* + repeats é */
  CHECK_EQ_INT(valid("{\"pattern\":\"^[\\u00e0-\\u00ff]$\"}", "\"\\u00e9\""), 0);
  CHECK_EQ_INT(valid("{\"pattern\":\"^[\\u00e0-\\u00ff]$\"}", "\"\\u0100\""), 1);
  CHECK_EQ_INT(valid("{\"pattern\":\"^\\\\s$\"}", "\"\\u00a0\""), 0);
  CHECK_EQ_INT(valid("{\"pattern\":\"^\\\\S$\"}", "\"\\u00a0\""), 1);
  CHECK_EQ_INT(valid("{\"pattern\":\"^\\\\w+@[\\\\w.-]+$\"}", "\"a_b@x-y.z\""), 0);
  CHECK_EQ_INT(valid("{\"pattern\":\"^[\\\\]\\\\-^]+$\"}", "\"]-^\""), 0);
  CHECK_EQ_INT(valid("{\"pattern\":\"^[\\\\]\\\\-^]+$\"}", "\"a\""), 1);
  CHECK_EQ_INT(valid("{\"pattern\":\"a{2}\"}", "\"xaax\""), 0);
  CHECK_EQ_INT(valid("{\"pattern\":\"a{\"}", "\"a{\""), 0);                /* a literal brace */
  CHECK_EQ_INT(valid("{\"pattern\":\"^(?:ab)+?$\"}", "\"abab\""), 0);       /* lazy, grouping */
  CHECK_EQ_INT(valid("{\"pattern\":\"^a|b$\"}", "\"xb\""), 0);
  CHECK_EQ_INT(valid("{\"pattern\":\"^abc$\"}", "\"abc\\n\""), 1);          /* $ is the end */
  CHECK_EQ_INT(valid("{\"pattern\":\"^a.c$\"}", "\"a\\nc\""), 1);           /* . skips newlines */
  CHECK_EQ_INT(valid("{\"pattern\":\"b\"}", "\"a\\u0000b\""), 0);           /* NUL inside the string */
  CHECK_EQ_INT(valid("{\"pattern\":\"^\\\\/\\\\.\\\\*$\"}", "\"/.*\""), 0);
  CHECK_EQ_INT(valid("{\"patternProperties\":{\"^x-\":{\"type\":\"string\"}}}", "{\"x-a\":1}"), 1);
  CHECK_EQ_INT(valid("{\"patternProperties\":{\"^x-\":{\"type\":\"string\"}}}", "{\"y-a\":1}"), 0);
}

static void test_formats(void) {
  lb_schema_opts o;
  lb_schema *s;
  memset(&o, 0, sizeof o);
  o.size = sizeof o;
  /* annotation by default */
  CHECK_EQ_INT(valid("{\"format\":\"date\"}", "\"not a date\""), 0);
  o.flags = LB_SCHEMA_FORMAT_ASSERT;
  s = compile_opts("{\"properties\":{\"d\":{\"format\":\"date-time\"},\"e\":{\"format\":\"email\"},"
                   "\"i\":{\"format\":\"ipv4\"}}}", &o, NULL);
  CHECK(s != NULL);
  if (s) {
    lb_schema_errors e;
    CHECK_EQ_INT(check(s, "{\"d\":\"2024-02-29T12:00:00Z\",\"e\":\"a@b.c\",\"i\":\"10.0.0.1\"}", &e, 4), 0);
    lb_schema_errors_clear(&e);
    CHECK_EQ_INT(check(s, "{\"d\":\"2023-02-29T12:00:00Z\",\"e\":\"a.b.c\",\"i\":\"10.0.0.256\"}", &e, 4), 1);
    CHECK_EQ_INT(e.count, 3);
    if (e.count) CHECK_EQ_STR(e.msgs[0], "$.d: string is not a valid date-time");
    lb_schema_errors_clear(&e);
    lb_schema_free(s);
  }
}

/* The Lua binding */
static void test_lua(void) {
  lua_State *L = luaL_newstate();
  static const char *code =
    "local js = require('airbyte.jsonschema')\n"
    "local s = assert(js.compile({type='object', required={'api_key'},"
    "  properties={api_key={type='string'}, n={type='integer'}}}))\n"
    "assert(tostring(s):find('airbyte.jsonschema.Schema', 1, true))\n"
    "assert(s:validate('{\"api_key\":\"x\"}') == true)\n"
    "assert(s:validate({api_key='x', n=3}) == true)\n"
    "local ok, errs, more = s:validate({api_key=1, n=1.5})\n"
    "assert(ok == false and more == false, tostring(ok))\n"
    "assert(errs[1] == '$.api_key: expected string, got number', errs[1])\n"
    "assert(errs[2] == '$.n: expected integer, got number', errs[2])\n"
    "ok, errs, more = s:validate('{}', 0)\n"
    "assert(ok == false and #errs == 0 and more == true)\n"
    "assert(not pcall(s.validate, s, '{not json'))\n"
    "assert(not pcall(s.validate, s, {f=print}))\n"
    "local t = assert(js.compile('{\"type\":\"string\"}'))\n"
    "assert(t:validate_value('abc') == true)\n"
    "assert(t:validate('\"abc\"') == true)\n"
    "assert(t:validate_value(1) == false)\n"
    "local r = assert(js.compile({['$ref']='http://h.test/a.json#/definitions/x'},"
    "  {remotes={['http://h.test/a.json']={definitions={x={type='integer'}}}}}))\n"
    "assert(r:validate('3') == true and r:validate('\"3\"') == false)\n"
    "local r2 = assert(js.compile('{\"$ref\":\"a.json\"}', {base_uri='http://h.test/',"
    "  remotes={['http://h.test/a.json#']='{\"maximum\":3}'}}))\n"
    "assert(r2:validate('3') == true and r2:validate('4') == false)\n"
    "local bad, msg, code = js.compile('{\"$ref\":\"#/nope\"}')\n"
    "assert(bad == nil and code == 'EREF' and msg:find('no such location'), msg)\n"
    "bad, msg, code = js.compile('{')\n"
    "assert(bad == nil and code == 'EJSON')\n"
    "local f = assert(js.compile({format='ipv4'}, {format=true}))\n"
    "assert(f:validate('\"1.2.3.4\"') and not f:validate('\"1.2.3\"'))\n"
    "local w = assert(js.compile({pattern='(?!x)'}))\n"
    "assert(#w:warnings() == 1 and w:warnings()[1]:find('lookahead'))\n"
    "local loop = assert(js.compile({['$ref']='#'}))\n"
    "bad, msg, code = loop:validate('1')\n"
    "assert(bad == nil and code == 'ELOOP' and msg:find('infinite'), msg)\n"
    "local d = assert(js.compile({items={['$ref']='#'}}, {max_depth=5}))\n"
    "bad, msg, code = d:validate('[[[[[[[1]]]]]]]')\n"
    "assert(bad == nil and code == 'EDEPTH')\n"
    "s:close(); s:close()\n"
    "assert(tostring(s):find('closed'))\n"
    "assert(not pcall(s.validate, s, '{}'))\n"
    "do local c <close> = assert(js.compile(true)) end\n"
    "collectgarbage()\n";
  luaL_openlibs(L);
  luaL_requiref(L, "airbyte.jsonschema", luaopen_airbyte_jsonschema, 0);
  lua_pop(L, 1);
  if (luaL_dostring(L, code) != LUA_OK) {
    lbt_failed_checks++;
    fprintf(stderr, "  FAIL %s:%d (%s): %s\n", __FILE__, __LINE__, lbt_current,
            lua_tostring(L, -1));
  }
  lua_close(L);
}

TEST_LIST {
  { "messages", test_messages },
  { "numbers", test_numbers },
  { "limits", test_limits },
  { "loops", test_loops },
  { "compile_errors", test_compile_errors },
  { "warnings", test_warnings },
  { "patterns", test_patterns },
  { "formats", test_formats },
  { "lua", test_lua },
  { NULL, NULL }
};

/* ---------------------------------------------------------------------- */
/* The JSON Schema Test Suite                                              */
/* ---------------------------------------------------------------------- */

#define REMOTE_BASE "http://localhost:1234/"

typedef struct suite_ctx {
  char remotes[1300];
} suite_ctx;

/* http://localhost:1234/x -> <remotes>/x; nothing else (no network). */
static int suite_loader(void *ud, const char *uri, char **text, size_t *len) {
  const suite_ctx *sc = ud;
  char path[2048];
  size_t n = strlen(REMOTE_BASE);
  if (strncmp(uri, REMOTE_BASE, n) != 0 || strstr(uri, "..")) return -1;
  snprintf(path, sizeof path, "%s/%s", sc->remotes, uri + n);
  *text = read_file(path, len);
  return *text ? 0 : -1;
}

typedef struct tally {
  int pass, fail;
} tally;

/* Run one test file; failures are printed when verbose. */
static void run_file(suite_ctx *sc, const char *path, const char *name, unsigned flags,
                     int verbose, tally *t) {
  size_t len, off = 0;
  char *buf = read_file(path, &len);
  lb_jval top, group;
  lb_jiter gi;
  if (!buf) { printf("  cannot read %s\n", path); t->fail++; return; }
  if (lb_jskim_validate(buf, len, &top, &off) || top.type != LB_JARRAY) {
    printf("  %s: not a JSON array\n", name);
    t->fail++;
    free(buf);
    return;
  }
  lb_jiter_init(&gi, &top);
  while (lb_jarr_next(&gi, &group)) {
    lb_jval schema, tests, gdesc, test, data, want, tdesc;
    lb_jiter ti;
    lb_schema *s = NULL;
    lb_schema_opts o;
    char err[512];
    int rc;
    if (!lb_jobj_find(&group, "schema", 6, &schema) || !lb_jobj_find(&group, "tests", 5, &tests))
      continue;
    if (!lb_jobj_find(&group, "description", 11, &gdesc)) gdesc = schema;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.loader = suite_loader;
    o.loader_ud = sc;
    o.flags = flags;
    rc = lb_schema_compile(schema.p, schema.n, &o, &s, err, sizeof err);
    lb_jiter_init(&ti, &tests);
    while (lb_jarr_next(&ti, &test)) {
      lb_schema_errors e;
      int r1 = -100, r2 = -100, expect, ok;
      if (!lb_jobj_find(&test, "data", 4, &data) || !lb_jobj_find(&test, "valid", 5, &want)) continue;
      if (!lb_jobj_find(&test, "description", 11, &tdesc)) tdesc = data;
      expect = want.type == LB_JTRUE ? 0 : 1;
      if (rc == 0) {
        /* the verdict alone, then with messages: both must agree */
        r1 = lb_schema_validate_span(s, &data, NULL);
        memset(&e, 0, sizeof e);
        e.max = 16;
        r2 = lb_schema_validate(s, data.p, data.n, &e);
        if (r2 == 1 && e.count == 0) r2 = -101;        /* invalid must say why */
        if (r2 == 0 && e.count != 0) r2 = -102;
        lb_schema_errors_clear(&e);
      }
      ok = r1 == expect && r2 == expect;
      if (ok) t->pass++;
      else {
        t->fail++;
        if (verbose)
          printf("  FAIL %s: %.*s / %.*s: got %d/%d, want %s%s%s\n", name, (int)gdesc.n, gdesc.p,
                 (int)tdesc.n, tdesc.p, r1, r2, expect ? "invalid" : "valid",
                 rc ? "; compile: " : "", rc ? err : "");
      }
    }
    if (rc == 0 && lb_schema_nwarnings(s) && verbose > 1)
      printf("  note %s: %.*s: %s\n", name, (int)gdesc.n, gdesc.p, lb_schema_warning(s, 0));
    lb_schema_free(s);
  }
  free(buf);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .json files of a directory, sorted. */
static int list_json(const char *dir, char ***out) {
  DIR *d = opendir(dir);
  struct dirent *de;
  char **v = NULL;
  int n = 0;
  if (!d) return -1;
  while ((de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (l < 6 || strcmp(de->d_name + l - 5, ".json")) continue;
    v = realloc(v, (size_t)(n + 1) * sizeof *v);
    v[n] = malloc(l + 1);
    memcpy(v[n], de->d_name, l + 1);
    n++;
  }
  closedir(d);
  qsort(v, (size_t)n, sizeof *v, cmp_str);
  *out = v;
  return n;
}

static void run_dir(suite_ctx *sc, const char *dir, const char *prefix, unsigned flags,
                    int verbose, tally *total, int per_file) {
  char **files = NULL, path[2048], name[512];
  int n = list_json(dir, &files), i;
  for (i = 0; i < n; i++) {
    tally t = { 0, 0 };
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    snprintf(name, sizeof name, "%s%s", prefix, files[i]);
    /* the content keywords are assertions only on request, as format */
    run_file(sc, path, name, strcmp(files[i], "content.json") ? flags : LB_SCHEMA_CONTENT_ASSERT,
             verbose, &t);
    if (per_file) printf("  optional %-40s %3d passed, %3d failed\n", name, t.pass, t.fail);
    total->pass += t.pass;
    total->fail += t.fail;
    free(files[i]);
  }
  free(files);
}

int main(void) {
  const char *src = getenv("LB_SOURCE_DIR");
  const char *verbose_env = getenv("LB_SCHEMA_VERBOSE");
  int verbose = verbose_env ? atoi(verbose_env) : 1;
  char base[1024], dir[1200];
  suite_ctx sc;
  tally req = { 0, 0 }, opt = { 0, 0 }, fmt = { 0, 0 };
  int i, upass = 0, ufail = 0;
  DIR *probe;

  for (i = 0; lbt_cases[i].name; i++) {
    int before = lbt_failed_checks;
    lbt_current = lbt_cases[i].name;
    lbt_cases[i].fn();
    if (lbt_failed_checks == before) { upass++; printf("ok   %s\n", lbt_current); }
    else { ufail++; printf("FAIL %s\n", lbt_current); }
  }

  snprintf(base, sizeof base, "%s/../shared/conformance/jsonschema", src ? src : ".");
  snprintf(dir, sizeof dir, "%s/tests/draft7", base);
  probe = opendir(dir);
  if (!probe) {
    printf("skip: ../shared/conformance missing\n");
  } else {
    closedir(probe);
    snprintf(sc.remotes, sizeof sc.remotes, "%s/remotes", base);
    run_dir(&sc, dir, "", 0, verbose, &req, 0);
    printf("suite draft7 required: %d passed, %d failed\n", req.pass, req.fail);
    snprintf(dir, sizeof dir, "%s/tests/draft7/optional", base);
    run_dir(&sc, dir, "optional/", 0, verbose > 1, &opt, 1);
    snprintf(dir, sizeof dir, "%s/tests/draft7/optional/format", base);
    run_dir(&sc, dir, "optional/format/", LB_SCHEMA_FORMAT_ASSERT, verbose > 1, &fmt, 1);
    printf("suite draft7 optional (not required): %d passed, %d failed\n", opt.pass, opt.fail);
    printf("suite draft7 optional/format, format asserted (not required): %d passed, %d failed\n",
           fmt.pass, fmt.fail);
    printf("skipped: none (every group of every file is run)\n");
  }
  printf("unit cases: %d passed, %d failed; required suite tests: %d passed, %d failed\n",
         upass, ufail, req.pass, req.fail);
  printf("%d passed, %d failed\n", upass + req.pass, ufail + req.fail);
  return ufail + req.fail ? 1 : 0;
}
