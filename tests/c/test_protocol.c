/*
** test_protocol.c - classifying connector stdout lines as Airbyte messages:
** the examples of the protocol summary, real fixture lines, non-messages,
** and agreement with the plain validator on what is valid JSON.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "lbtest.h"

static lb_msg_type parse(const char *s, lb_msg *m) {
  return lb_msg_parse(s, strlen(s), m);
}

/* Is span v exactly the text s? */
static int span_is(const lb_jval *v, const char *s) {
  return v->n == strlen(s) && memcmp(v->p, s, v->n) == 0;
}

static void test_names(void) {
  CHECK_EQ_STR(lb_msg_type_name(LB_MSG_NONE), "NONE");
  CHECK_EQ_STR(lb_msg_type_name(LB_MSG_RECORD), "RECORD");
  CHECK_EQ_STR(lb_msg_type_name(LB_MSG_CONNECTION_STATUS), "CONNECTION_STATUS");
  CHECK_EQ_STR(lb_msg_type_name(LB_MSG_DESTINATION_CATALOG), "DESTINATION_CATALOG");
  CHECK_EQ_STR(lb_msg_type_name((lb_msg_type)99), "NONE");
  CHECK_EQ_STR(lb_msg_payload_key(LB_MSG_RECORD), "record");
  CHECK_EQ_STR(lb_msg_payload_key(LB_MSG_CONNECTION_STATUS), "connectionStatus");
  CHECK_EQ_STR(lb_msg_payload_key(LB_MSG_DESTINATION_CATALOG), "destination_catalog");
  CHECK_EQ_STR(lb_msg_payload_key(LB_MSG_TRACE), "trace");
  CHECK(lb_msg_payload_key(LB_MSG_NONE) == NULL);
}

static void test_record(void) {
  lb_msg m;
  const char *l = "{\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"data\":{\"id\":1,\"name\":\"Reda\"},\"emitted_at\":1669682107441}}";
  CHECK_EQ_INT(parse(l, &m), LB_MSG_RECORD);
  CHECK_EQ_INT(m.type, LB_MSG_RECORD);
  CHECK(m.whole.p == l && m.whole.n == strlen(l));
  CHECK_EQ_INT(m.payload.type, LB_JOBJECT);
  CHECK(m.payload.p == strstr(l, "{\"stream\""));
  CHECK(m.payload.p + m.payload.n == l + strlen(l) - 1);
  CHECK(span_is(&m.stream, "\"users\""));
  CHECK(lb_jstr_eq(&m.stream, "users", 5));
  CHECK(span_is(&m.data, "{\"id\":1,\"name\":\"Reda\"}"));
  CHECK(span_is(&m.emitted_at, "1669682107441"));
  CHECK_EQ_INT(m.emitted_at.type, LB_JNUMBER);
  CHECK_EQ_INT(m.ns.type, LB_JNONE);
  CHECK(m.why == NULL);

  /* keys in any order, white space, namespace, unknown fields kept out */
  l = "  { \"record\" : { \"namespace\" : \"public\", \"meta\": {\"changes\": []},"
      " \"data\" : { } , \"stream\" : \"s\\u00e9\" }, \"x\": [1], \"type\" : \"RECORD\" }\r";
  CHECK_EQ_INT(parse(l, &m), LB_MSG_RECORD);
  CHECK(span_is(&m.ns, "\"public\""));
  CHECK(span_is(&m.data, "{ }"));
  CHECK(lb_jstr_eq(&m.stream, "s\xc3\xa9", 3));
  CHECK_EQ_INT(m.emitted_at.type, LB_JNONE);
  CHECK(m.whole.p == l + 2 && m.whole.p[m.whole.n - 1] == '}');

  /* namespace null, float emitted_at */
  l = "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"namespace\":null,\"data\":{},\"emitted_at\":1.5e12}}";
  CHECK_EQ_INT(parse(l, &m), LB_MSG_RECORD);
  CHECK_EQ_INT(m.ns.type, LB_JNULL);
  CHECK_EQ_INT(m.emitted_at.type, LB_JNUMBER);

  /* escaped keys and type value */
  l = "{\"t\\u0079pe\":\"REC\\u004fRD\",\"rec\\u006frd\":{\"str\\u0065am\":\"a\",\"d\\u0061ta\":{\"k\":1}}}";
  CHECK_EQ_INT(parse(l, &m), LB_MSG_RECORD);
  CHECK(span_is(&m.data, "{\"k\":1}"));

  /* duplicate keys: the last wins */
  l = "{\"type\":\"LOG\",\"record\":{\"stream\":\"a\",\"data\":{\"v\":1}},\"type\":\"RECORD\","
      "\"record\":{\"stream\":\"b\",\"data\":{\"v\":2},\"data\":{\"v\":3}}}";
  CHECK_EQ_INT(parse(l, &m), LB_MSG_RECORD);
  CHECK(lb_jstr_eq(&m.stream, "b", 1));
  CHECK(span_is(&m.data, "{\"v\":3}"));
  /* a later non-object "record" wins too, and is not a message */
  l = "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":{}},\"record\":7}";
  CHECK_EQ_INT(parse(l, &m), LB_MSG_NONE);
  CHECK_EQ_STR(m.why, "payload is not an object");
  CHECK_EQ_INT(m.stream.type, LB_JNONE);
  /* and an earlier non-object one is replaced by a later object */
  l = "{\"type\":\"RECORD\",\"record\":7,\"record\":{\"stream\":\"a\",\"data\":{}}}";
  CHECK_EQ_INT(parse(l, &m), LB_MSG_RECORD);
}

static void test_other_types(void) {
  static const struct { const char *line; lb_msg_type t; const char *payload_start; } cases[] = {
    { "{\"type\":\"STATE\",\"state\":{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\",\"namespace\":\"public\"},\"stream_state\":{\"updated_at\":\"2024-01-01T00:00:00Z\"}},\"sourceStats\":{\"recordCount\":100.0}}}",
      LB_MSG_STATE, "{\"type\":\"STREAM\"" },
    { "{\"type\":\"STATE\",\"state\":{\"type\":\"GLOBAL\",\"global\":{\"shared_state\":{\"lsn\":123},\"stream_states\":[{\"stream_descriptor\":{\"name\":\"users\"},\"stream_state\":{\"cursor\":\"x\"}}]},\"sourceStats\":{\"recordCount\":42.0}}}",
      LB_MSG_STATE, "{\"type\":\"GLOBAL\"" },
    { "{\"type\":\"STATE\",\"state\":{\"type\":\"LEGACY\",\"data\":{\"users\":{\"cursor\":0}}}}",
      LB_MSG_STATE, "{\"type\":\"LEGACY\"" },
    { "{\"type\":\"LOG\",\"log\":{\"level\":\"INFO\",\"message\":\"Starting syncing\"}}",
      LB_MSG_LOG, "{\"level\"" },
    { "{\"type\":\"SPEC\",\"spec\":{\"documentationUrl\":\"https://docs.airbyte.com\",\"connectionSpecification\":{\"type\":\"object\",\"properties\":{}}}}",
      LB_MSG_SPEC, "{\"documentationUrl\"" },
    { "{\"type\":\"CONNECTION_STATUS\",\"connectionStatus\":{\"status\":\"SUCCEEDED\"}}",
      LB_MSG_CONNECTION_STATUS, "{\"status\"" },
    { "{\"type\":\"CONNECTION_STATUS\",\"connectionStatus\":{\"status\":\"FAILED\",\"message\":\"bad key\"}}",
      LB_MSG_CONNECTION_STATUS, "{\"status\"" },
    { "{\"type\":\"CATALOG\",\"catalog\":{\"streams\":[{\"name\":\"users\",\"json_schema\":{},\"supported_sync_modes\":[\"full_refresh\",\"incremental\"]}]}}",
      LB_MSG_CATALOG, "{\"streams\"" },
    { "{\"type\":\"TRACE\",\"trace\":{\"type\":\"STREAM_STATUS\",\"emitted_at\":1700000000000.0,\"stream_status\":{\"stream_descriptor\":{\"name\":\"users\",\"namespace\":null},\"status\":\"COMPLETE\"}}}",
      LB_MSG_TRACE, "{\"type\":\"STREAM_STATUS\"" },
    { "{\"type\":\"TRACE\",\"trace\":{\"type\":\"ERROR\",\"emitted_at\":1700000000123.456,\"error\":{\"message\":\"boom\",\"failure_type\":\"system_error\"}}}",
      LB_MSG_TRACE, "{\"type\":\"ERROR\"" },
    { "{\"type\":\"CONTROL\",\"control\":{\"type\":\"CONNECTOR_CONFIG\",\"emitted_at\":1700000000000,\"connectorConfig\":{\"config\":{\"api_key\":456}}}}",
      LB_MSG_CONTROL, "{\"type\":\"CONNECTOR_CONFIG\"" },
    { "{\"type\":\"DESTINATION_CATALOG\",\"destination_catalog\":{\"operations\":[{\"object_name\":\"contacts\",\"sync_mode\":\"update\",\"json_schema\":{},\"matching_keys\":[[\"id\"]]}]}}",
      LB_MSG_DESTINATION_CATALOG, "{\"operations\"" },
    /* the payload key may come first; other payload keys are ignored */
    { "{\"log\":{\"level\":\"WARN\",\"message\":\"x\"},\"state\":{},\"type\":\"LOG\"}",
      LB_MSG_LOG, "{\"level\"" },
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lb_msg m;
    lb_msg_type t = parse(cases[i].line, &m);
    if (t != cases[i].t) fprintf(stderr, "  case %zu: %s (%s)\n", i, lb_msg_type_name(t), m.why);
    CHECK_EQ_INT(t, cases[i].t);
    CHECK_EQ_INT(m.payload.type, LB_JOBJECT);
    CHECK(strncmp(m.payload.p, cases[i].payload_start, strlen(cases[i].payload_start)) == 0);
    CHECK(m.payload.p[m.payload.n - 1] == '}');
    CHECK_EQ_INT(m.stream.type, LB_JNONE);
    CHECK_EQ_INT(m.data.type, LB_JNONE);
    CHECK(m.whole.n == strlen(cases[i].line));
  }
}

static void test_not_messages(void) {
  static const struct { const char *line; const char *why; } cases[] = {
    { "Starting source...", "invalid JSON: unexpected character" },
    { "", "empty line" },
    { "   ", "empty line" },
    { "[{\"type\":\"RECORD\"}]", "not a JSON object" },
    { "\"RECORD\"", "not a JSON object" },
    { "42", "not a JSON object" },
    { "null", "not a JSON object" },
    { "{}", "no \"type\"" },
    { "{\"record\":{\"stream\":\"a\",\"data\":{}}}", "no \"type\"" },
    { "{\"type\":\"RECORDS\",\"records\":{}}", "unknown \"type\"" },
    { "{\"type\":\"record\",\"record\":{}}", "unknown \"type\"" },
    { "{\"type\":\"NONE\",\"record\":{}}", "unknown \"type\"" },
    { "{\"type\":\"\",\"record\":{}}", "unknown \"type\"" },
    { "{\"type\":1,\"record\":{}}", "\"type\" is not a string" },
    { "{\"type\":null}", "\"type\" is not a string" },
    { "{\"type\":\"STATE\"}", "no payload for the \"type\"" },
    { "{\"type\":\"STATE\",\"record\":{}}", "no payload for the \"type\"" },
    { "{\"type\":\"STATE\",\"state\":null}", "payload is not an object" },
    { "{\"type\":\"LOG\",\"log\":[\"x\"]}", "payload is not an object" },
    { "{\"type\":\"CONNECTION_STATUS\",\"connection_status\":{\"status\":\"FAILED\"}}", "no payload for the \"type\"" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\"}}", "RECORD without an object \"data\"" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":[1]}}", "RECORD without an object \"data\"" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":null}}", "RECORD without an object \"data\"" },
    { "{\"type\":\"RECORD\",\"record\":{\"data\":{}}}", "RECORD without a string \"stream\"" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":7,\"data\":{}}}", "RECORD without a string \"stream\"" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":{},\"emitted_at\":\"now\"}}", "RECORD with a non-numeric \"emitted_at\"" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":{},\"namespace\":1}}", "RECORD with a \"namespace\" that is not a string or null" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":{}}", "invalid JSON: unexpected end of line" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":{}}}}", "invalid JSON: bytes after the value" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":{\"x\":01}}}", "invalid JSON: unexpected character" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"\xff\",\"data\":{}}}", "invalid JSON: invalid UTF-8 in a string" },
    { "{\"type\":\"LOG\",\"log\":{\"message\":\"a\\qb\"}}", "invalid JSON: bad escape in a string" },
    { "{\"type\":\"LOG\",\"log\":{\"message\":\"a\tb\"}}", "invalid JSON: control character in a string" },
    { "{\"type\":\"LOG\" \"log\":{}}", "invalid JSON: unexpected character" },
    { "{type:\"LOG\"}", "invalid JSON: unexpected character" },
    { "{\"type\":\"LOG\",}", "invalid JSON: unexpected character" },
    { "{\"a\":1} trailing", "invalid JSON: bytes after the value" },
    { "// a comment", "invalid JSON: unexpected character" },
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lb_msg m;
    lb_msg_type t = parse(cases[i].line, &m);
    CHECK_EQ_INT(t, LB_MSG_NONE);
    CHECK_EQ_INT(m.type, LB_MSG_NONE);
    CHECK_EQ_STR(m.why, cases[i].why);
    CHECK_EQ_INT(m.data.type, LB_JNONE);
    /* a broken RECORD keeps its stream (test_bad_records) */
    if (m.bad_record == NULL) CHECK_EQ_INT(m.stream.type, LB_JNONE);
  }
  /* the line is not NUL-terminated: nothing past n is read */
  {
    const char *l = "{\"type\":\"LOG\",\"log\":{}}garbage";
    lb_msg m;
    CHECK_EQ_INT(lb_msg_parse(l, 23, &m), LB_MSG_LOG);
    CHECK_EQ_INT(lb_msg_parse(l, 22, &m), LB_MSG_NONE);
  }
}

/* Lines that are RECORDs but not valid ones: a reason code and, when it
** was read before the fault, the stream, so the pump can count them. */
static void test_bad_records(void) {
  static const struct { const char *line, *bad, *stream; } cases[] = {
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":[1]}}", "data_not_object", "a" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\"}}", "data_not_object", "a" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":7,\"data\":{}}}", "stream_not_string", NULL },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":{},\"emitted_at\":\"now\"}}", "emitted_at_not_number", "a" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":{},\"namespace\":1}}", "invalid_namespace", "a" },
    { "{\"type\":\"RECORD\",\"record\":[]}", "record_not_object", NULL },
    { "{\"type\":\"RECORD\"}", "record_not_object", NULL },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":{}}", "invalid_json", "a" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":{\"x\":01}}}", "invalid_json", "a" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"\xff\",\"data\":{}}}", "invalid_utf8", NULL },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"b\",\"data\":{\"x\":\"\xc3\"}}}", "invalid_utf8", "b" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"b\",\"data\":{\"x\":NaN}}}", "not_a_number", "b" },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"b\",\"data\":{\"x\":[-Infinity]}}}", "not_a_number", "b" },
    /* the "record" member says it before "type" does */
    { "{\"record\":{\"stream\":\"b\",\"data\":{\"x\":Infinity}},\"type\":\"RECORD\"}", "not_a_number", "b" },
    { "{\"type\":\"RECORD\",\"record\":{\"data\":{\"x\":NaN},\"stream\":\"b\"}}", "not_a_number", NULL },
    { "{\"type\":\"RECORD\",\"record\":{\"stream\":\"b\",\"data\":{\"x\":Nope}}}", "invalid_json", "b" },
  };
  /* not RECORDs: only log lines */
  static const char *const others[] = {
    "{\"type\":\"LOG\",\"log\":{\"message\":\"\xff\"}}",
    "{\"type\":\"STATE\",\"state\":{\"x\":NaN}}",
    "Starting source...",
    "{\"type\":\"STATE\",\"state\":null}",
  };
  size_t i;
  char deep[2200];
  lb_msg m;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    CHECK_EQ_INT(parse(cases[i].line, &m), LB_MSG_NONE);
    CHECK_EQ_STR(m.bad_record, cases[i].bad);
    if (cases[i].stream) {
      CHECK_EQ_INT(m.stream.type, LB_JSTRING);
      CHECK(m.stream.n == strlen(cases[i].stream) + 2 &&
            memcmp(m.stream.p + 1, cases[i].stream, m.stream.n - 2) == 0);
    } else {
      CHECK_EQ_INT(m.stream.type, LB_JNONE);
    }
  }
  for (i = 0; i < sizeof others / sizeof others[0]; i++) {
    CHECK_EQ_INT(parse(others[i], &m), LB_MSG_NONE);
    CHECK(m.bad_record == NULL);
  }
  /* nesting over the limit */
  strcpy(deep, "{\"type\":\"RECORD\",\"record\":{\"stream\":\"d\",\"data\":{\"x\":");
  memset(deep + strlen(deep), '[', 1000);
  deep[strlen("{\"type\":\"RECORD\",\"record\":{\"stream\":\"d\",\"data\":{\"x\":") + 1000] = '\0';
  CHECK_EQ_INT(lb_msg_parse(deep, strlen(deep), &m), LB_MSG_NONE);
  CHECK_EQ_STR(m.bad_record, "too_deep");
  CHECK_EQ_INT(m.stream.type, LB_JSTRING);
  /* a valid record has none */
  CHECK_EQ_INT(parse("{\"type\":\"RECORD\",\"record\":{\"stream\":\"a\",\"data\":{}}}", &m), LB_MSG_RECORD);
  CHECK(m.bad_record == NULL);
}

static void test_depth(void) {
  /* the outer object and the record count toward the limit */
  static char buf[4096];
  int extra;
  for (extra = 0; extra <= 1; extra++) {
    int levels = 512 - 3 + extra, i;     /* top, record, data, then arrays */
    size_t k = 0;
    lb_msg m;
    k += (size_t)sprintf(buf + k, "{\"type\":\"RECORD\",\"record\":{\"stream\":\"s\",\"data\":{\"a\":");
    for (i = 0; i < levels; i++) buf[k++] = '[';
    for (i = 0; i < levels; i++) buf[k++] = ']';
    k += (size_t)sprintf(buf + k, "}}}");
    CHECK_EQ_INT(lb_jskim_validate(buf, k, NULL, NULL), extra ? LB_JSKIM_EDEPTH : 0);
    CHECK_EQ_INT(lb_msg_parse(buf, k, &m), extra ? LB_MSG_NONE : LB_MSG_RECORD);
    if (extra) CHECK_EQ_STR(m.why, "invalid JSON: nesting too deep");
    /* same in another payload, and in an unknown top-level key */
    k = 0;
    k += (size_t)sprintf(buf + k, "{\"type\":\"STATE\",\"zz\":{\"data\":{\"x\":");
    for (i = 0; i < levels; i++) buf[k++] = '[';
    for (i = 0; i < levels; i++) buf[k++] = ']';
    k += (size_t)sprintf(buf + k, "}},\"state\":{}}");
    CHECK_EQ_INT(lb_jskim_validate(buf, k, NULL, NULL), extra ? LB_JSKIM_EDEPTH : 0);
    CHECK_EQ_INT(lb_msg_parse(buf, k, &m), extra ? LB_MSG_NONE : LB_MSG_STATE);
  }
}

/* Does protocol.c call a line invalid JSON exactly when jskim does? (an
** empty line is its own case) */
static int agrees(const char *s, size_t n) {
  lb_msg m;
  int v = lb_jskim_validate(s, n, NULL, NULL) == 0;
  lb_msg_parse(s, n, &m);
  return v == !(m.type == LB_MSG_NONE && m.why &&
                (strncmp(m.why, "invalid JSON", 12) == 0 || strcmp(m.why, "empty line") == 0));
}

static unsigned long rng_state = 2463534242UL;
static unsigned long rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void test_agrees_with_validator(void) {
  static const char *seeds[] = {
    "{\"type\":\"RECORD\",\"record\":{\"stream\":\"users\",\"namespace\":null,\"data\":{\"id\":1,\"s\":\"\\u00e9x\",\"a\":[1.5,{}]},\"emitted_at\":1669682107441}}",
    "{\"type\": \"STATE\", \"state\": {\"type\": \"STREAM\", \"stream\": {\"stream_descriptor\": {\"name\": \"users\"}}}}",
  };
  static const char alphabet[] = "{}[],:\" \\0-1.eE\xc3\xa9\xff\x01tnr";
  char buf[256];
  int iter, bad = 0;
  for (iter = 0; iter < 100000; iter++) {
    const char *seed = seeds[iter & 1];
    size_t n = strlen(seed), at;
    int k, m = 1 + (int)(rnd() % 2);
    memcpy(buf, seed, n);
    for (k = 0; k < m; k++) {
      at = rnd() % n;
      switch (rnd() % 3) {
        case 0: buf[at] = alphabet[rnd() % (sizeof alphabet - 1)]; break;
        case 1: memmove(buf + at, buf + at + 1, n - at - 1); n--; break;
        default:
          if (n + 1 < sizeof buf) {
            memmove(buf + at + 1, buf + at, n - at);
            buf[at] = alphabet[rnd() % (sizeof alphabet - 1)];
            n++;
          }
      }
    }
    if (!agrees(buf, n) && bad++ < 5) fprintf(stderr, "  disagree: %.*s\n", (int)n, buf);
  }
  CHECK_EQ_INT(bad, 0);
  /* every prefix of a message is invalid and says so */
  {
    const char *s = seeds[0];
    size_t n = strlen(s), i;
    for (i = 0; i < n; i++) {
      lb_msg m;
      char *cut = malloc(i ? i : 1);
      memcpy(cut, s, i);
      CHECK_EQ_INT(lb_msg_parse(cut, i, &m), LB_MSG_NONE);
      CHECK(agrees(cut, i));
      free(cut);
    }
  }
}

/* Read a fixture file under the shared directory, or NULL (skip). */
static char *read_fixture(const char *rel, size_t *len) {
  const char *src = getenv("LB_SOURCE_DIR");
  char path[1024];
  FILE *f;
  char *buf;
  long n;
  snprintf(path, sizeof path, "%s/../shared/fixtures/%s", src ? src : "..", rel);
  f = fopen(path, "rb");
  if (!f) {
    printf("skip %s: cannot open %s\n", lbt_current, path);
    return NULL;
  }
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
  buf[n] = '\0';
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static void test_fixture_records(void) {
  size_t len, count = 0;
  char *text = read_fixture("source-faker/integration_tests/expected_records.jsonl", &len);
  char *line, *next;
  static char wrapped[65536];
  if (!text) return;
  for (line = text; line < text + len; line = next + 1) {
    lb_msg m;
    lb_jval rec, stream;
    size_t n, w;
    next = memchr(line, '\n', (size_t)(text + len - line));
    if (!next) next = text + len;
    n = (size_t)(next - line);
    if (n == 0) continue;
    /* the file holds AirbyteRecordMessages: a bare one is not a message */
    CHECK_EQ_INT(lb_msg_parse(line, n, &m), LB_MSG_NONE);
    CHECK_EQ_STR(m.why, "no \"type\"");
    CHECK_EQ_INT(lb_jskim_validate(line, n, &rec, NULL), 0);
    CHECK(lb_jobj_find(&rec, "stream", 6, &stream));
    /* wrapped in the envelope it is a RECORD */
    w = (size_t)snprintf(wrapped, sizeof wrapped, "{\"type\": \"RECORD\", \"record\": %.*s}", (int)n, line);
    CHECK_EQ_INT(lb_msg_parse(wrapped, w, &m), LB_MSG_RECORD);
    CHECK(m.stream.n == stream.n && memcmp(m.stream.p, stream.p, stream.n) == 0);
    CHECK_EQ_INT(m.data.type, LB_JOBJECT);
    CHECK_EQ_INT(m.emitted_at.type, LB_JNUMBER);
    CHECK(m.payload.n == n);
    {
      long long at = 0;
      CHECK(lb_jnum_to_int64(&m.emitted_at, &at) && at > 1600000000000LL);
    }
    count++;
  }
  CHECK_EQ_INT(count, 124);
  free(text);
}

/* Lines from destination test fixtures: real messages and comment lines. */
static void test_fixture_messages(void) {
  static const char *files[] = {
    "destination-duckdb/tests/integration_tests/messages.jsonl",
    "destinations-v2-typing-deduping/base-typing-deduping-test/sync1_messages.jsonl",
    "destinations-v2-typing-deduping/java-cdk-typing-deduping/dat/sync1_messages.jsonl",
  };
  size_t f;
  for (f = 0; f < sizeof files / sizeof files[0]; f++) {
    size_t len, records = 0, others = 0;
    char *text = read_fixture(files[f], &len), *line, *next;
    if (!text) return;
    for (line = text; line < text + len; line = next + 1) {
      lb_msg m;
      size_t n;
      next = memchr(line, '\n', (size_t)(text + len - line));
      if (!next) next = text + len;
      n = (size_t)(next - line);
      if (n == 0) continue;
      lb_msg_parse(line, n, &m);
      if (line[0] == '/') {
        CHECK_EQ_INT(m.type, LB_MSG_NONE);
        CHECK_EQ_STR(m.why, "invalid JSON: unexpected character");
        others++;
      } else if (f == 0) {
        CHECK_EQ_INT(m.type, LB_MSG_RECORD);
        CHECK(lb_jstr_eq(&m.stream, "airbyte_acceptance_table", 24));
        records++;
      } else {
        /* the typing-deduping fixtures leave "stream" out */
        CHECK_EQ_INT(m.type, LB_MSG_NONE);
        CHECK_EQ_STR(m.why, "RECORD without a string \"stream\"");
        records++;
      }
    }
    CHECK(records > 0);
    free(text);
    (void)others;
  }
}

/* The one state-key rule: STREAM by (namespace, name), GLOBAL, LEGACY and
** typeless (LEGACY, as the protocol says). */
static void key_of(const char *json, lb_state_type want, const char *name, const char *ns) {
  lb_jval top;
  lb_state_key k;
  char nb[64], nsb[64];
  size_t nl, nsl;
  CHECK_EQ_INT(lb_jskim_validate(json, strlen(json), &top, NULL), 0);
  lb_state_key_of(&top, &k);
  CHECK_EQ_INT(k.type, want);
  CHECK_EQ_INT(lb_state_key_text(&k, nb, sizeof nb, &nl, nsb, sizeof nsb, &nsl), 0);
  CHECK_EQ_STR(nb, name);
  CHECK_EQ_STR(nsb, ns);
  CHECK_EQ_INT((int)nl, (int)strlen(name));
}

static void test_state_key(void) {
  lb_jval top;
  lb_state_key k;
  char nb[4], nsb[64];
  size_t nl, nsl;
  const char *longname = "{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\"}}}";
  key_of("{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"users\"},\"stream_state\":{}}}",
         LB_STATE_STREAM, "users", "");
  key_of("{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"__noop__\",\"namespace\":\"__faros__\"}}}",
         LB_STATE_STREAM, "__noop__", "__faros__");
  key_of("{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"u\\u00e9\",\"namespace\":null}}}",
         LB_STATE_STREAM, "u\xc3\xa9", "");
  key_of("{\"type\":\"STREAM\",\"stream\":{\"stream_descriptor\":{\"name\":\"u\",\"namespace\":\"\"}}}",
         LB_STATE_STREAM, "u", "");
  key_of("{\"type\":\"GLOBAL\",\"global\":{\"shared_state\":{},\"stream_states\":[]}}", LB_STATE_GLOBAL, "_GLOBAL", "");
  key_of("{\"type\":\"LEGACY\",\"data\":{\"users\":1}}", LB_STATE_LEGACY, "_LEGACY", "");
  key_of("{\"data\":{\"format\":\"base64/gzip\",\"data\":\"H4sI\"}}", LB_STATE_LEGACY, "_LEGACY", "");
  key_of("{\"stream\":{\"stream_descriptor\":{\"name\":\"users\"}}}", LB_STATE_LEGACY, "_LEGACY", "");
  key_of("{\"type\":\"STREAM\",\"stream\":{}}", LB_STATE_LEGACY, "_LEGACY", "");
  key_of("[1]", LB_STATE_LEGACY, "_LEGACY", "");
  CHECK_EQ_STR(lb_state_type_name(LB_STATE_GLOBAL), "GLOBAL");
  /* a name that does not fit is refused, not cut */
  CHECK_EQ_INT(lb_jskim_validate(longname, strlen(longname), &top, NULL), 0);
  lb_state_key_of(&top, &k);
  CHECK_EQ_INT(lb_state_key_text(&k, nb, sizeof nb, &nl, nsb, sizeof nsb, &nsl), -1);
}

TEST_LIST {
  {"names", test_names},
  {"record", test_record},
  {"other_types", test_other_types},
  {"not_messages", test_not_messages},
  {"bad_records", test_bad_records},
  {"depth", test_depth},
  {"agrees_with_validator", test_agrees_with_validator},
  {"fixture_records", test_fixture_records},
  {"fixture_messages", test_fixture_messages},
  {"state_key", test_state_key},
  {NULL, NULL}
};
LBTEST_MAIN
