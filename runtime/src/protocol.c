/*
** protocol.c - classify one stdout line of a connector as an Airbyte message.
**
** One pass: the outer object (and, for a "record" payload, the record
** object) is walked here, member by member, and every member value is
** validated by lb_jskim_value() as it is met. So a RECORD line is read once:
** no separate validation pass, and the record's `data` is never skipped
** again to find the keys after it. Duplicate keys: the last one wins, as
** when the line is decoded into a Lua table.
*/
#include <string.h>

#include "protocol.h"

typedef struct name { const char *s; size_t n; } name;
#define NAME(s) { s, sizeof(s) - 1 }

/* Indexed by lb_msg_type. */
static const name type_names[LB_MSG__COUNT] = {
  NAME("NONE"), NAME("RECORD"), NAME("STATE"), NAME("LOG"), NAME("SPEC"),
  NAME("CONNECTION_STATUS"), NAME("CATALOG"), NAME("TRACE"), NAME("CONTROL"),
  NAME("DESTINATION_CATALOG")
};

/* Top-level keys: 0 is "type", the others are the payload keys, indexed by
** lb_msg_type. */
static const name top_keys[LB_MSG__COUNT] = {
  NAME("type"), NAME("record"), NAME("state"), NAME("log"), NAME("spec"),
  NAME("connectionStatus"), NAME("catalog"), NAME("trace"), NAME("control"),
  NAME("destination_catalog")
};

enum { RK_STREAM, RK_NAMESPACE, RK_EMITTED_AT, RK_DATA, RK__COUNT };
static const name record_keys[RK__COUNT] = {
  NAME("stream"), NAME("namespace"), NAME("emitted_at"), NAME("data")
};

const char *lb_msg_type_name(lb_msg_type t) {
  if ((unsigned)t >= LB_MSG__COUNT) return "NONE";
  return type_names[t].s;
}

const char *lb_msg_payload_key(lb_msg_type t) {
  if (t == LB_MSG_NONE || (unsigned)t >= LB_MSG__COUNT) return NULL;
  return top_keys[t].s;
}

/* Index of the string span s in tab[0..count), or -1. The longest name is
** 19 bytes, so an escaped key is decoded into a small buffer; one that
** decodes to more cannot match. */
static int match(const lb_jval *s, const name *tab, int count) {
  char buf[24];
  const char *p = s->p + 1;
  size_t n = s->n - 2;
  int i;
  if (memchr(p, '\\', n)) {
    n = lb_jstr_decode(s, buf, sizeof buf);
    if (n > sizeof buf) return -1;
    p = buf;
  }
  for (i = 0; i < count; i++)
    if (tab[i].n == n && memcmp(tab[i].s, p, n) == 0) return i;
  return -1;
}

static const char *invalid_why(int rc) {
  switch (rc) {
    case LB_JSKIM_ETRUNC: return "invalid JSON: unexpected end of line";
    case LB_JSKIM_EUTF8: return "invalid JSON: invalid UTF-8 in a string";
    case LB_JSKIM_EESCAPE: return "invalid JSON: bad escape in a string";
    case LB_JSKIM_EDEPTH: return "invalid JSON: nesting too deep";
    case LB_JSKIM_ETRAIL: return "invalid JSON: bytes after the value";
    case LB_JSKIM_ECTRL: return "invalid JSON: control character in a string";
    default: return "invalid JSON: unexpected character";
  }
}

#define SKIP_WS(s, n, pos)                                                 \
  while ((pos) < (n) && ((s)[pos] == ' ' || (s)[pos] == '\t' ||           \
                         (s)[pos] == '\n' || (s)[pos] == '\r'))            \
    (pos)++

/* The record fields of one "record" object. */
typedef struct rec_fields { lb_jval f[RK__COUNT]; } rec_fields;

/* Walk and validate the object at s[*pos] == '{' that is nested in `depth`
** containers. For each member, `pick` tells where to store the value span
** (NULL: validate only). */
typedef lb_jval *(*pick_fn)(void *ctx, const lb_jval *key);

static int walk_object(const char *s, size_t n, size_t *pos, int depth,
                       pick_fn pick, void *ctx, lb_jval *obj, size_t *erroff) {
  size_t p = *pos, start = p;
  int rc;
  p++;
  SKIP_WS(s, n, p);
  if (p == n) return LB_JSKIM_ETRUNC;
  if (s[p] != '}') {
    for (;;) {
      lb_jval key, scratch, *dst;
      if (s[p] != '"') return LB_JSKIM_ESYNTAX;
      rc = lb_jskim_value(s, n, &p, depth + 1, &key, erroff);
      if (rc) return rc;
      SKIP_WS(s, n, p);
      if (p == n) return LB_JSKIM_ETRUNC;
      if (s[p] != ':') return LB_JSKIM_ESYNTAX;
      p++;
      SKIP_WS(s, n, p);
      if (p == n) return LB_JSKIM_ETRUNC;
      /* written in place: copying a just-written lb_jval costs a
      ** store-forwarding stall per member */
      dst = pick(ctx, &key);
      rc = lb_jskim_value(s, n, &p, depth + 1, dst ? dst : &scratch, erroff);
      if (rc) return rc;
      SKIP_WS(s, n, p);
      if (p == n) return LB_JSKIM_ETRUNC;
      if (s[p] == ',') {
        p++;
        SKIP_WS(s, n, p);
        if (p == n) return LB_JSKIM_ETRUNC;
        continue;
      }
      if (s[p] == '}') break;
      return LB_JSKIM_ESYNTAX;
    }
  }
  p++;
  if (obj) { obj->type = LB_JOBJECT; obj->p = s + start; obj->n = p - start; }
  *pos = p;
  return 0;
}

static lb_msg_type none(lb_msg *m, const char *why) {
  m->type = LB_MSG_NONE;
  m->payload.type = LB_JNONE;
  m->stream.type = m->ns.type = m->emitted_at.type = m->data.type = LB_JNONE;
  m->why = why;
  return LB_MSG_NONE;
}

/* The state of one parse: the spans of "type" and of each payload key,
** and the record fields of the last "record" object. */
typedef struct top_state {
  lb_jval keys[LB_MSG__COUNT];
  rec_fields rec;
} top_state;

static lb_jval *pick_record(void *ctx, const lb_jval *key) {
  int i = match(key, record_keys, RK__COUNT);
  return i < 0 ? NULL : &((rec_fields *)ctx)->f[i];
}

static void clear_record(rec_fields *rf) {
  int i;
  for (i = 0; i < RK__COUNT; i++) rf->f[i].type = LB_JNONE;
}

static int walk_record(const char *s, size_t n, size_t *pos, rec_fields *rf,
                       lb_jval *obj, size_t *erroff) {
  clear_record(rf);
  return walk_object(s, n, pos, 1, pick_record, rf, obj, erroff);
}

/* The reason code of a RECORD line that is not valid JSON; off is the
** offending byte (NaN and Infinity, which Python's json.dumps prints, are
** named apart from other syntax errors). */
static const char *bad_json_code(int rc, const char *s, size_t n, size_t off) {
  switch (rc) {
    case LB_JSKIM_EUTF8: return "invalid_utf8";
    case LB_JSKIM_EDEPTH: return "too_deep";
    case LB_JSKIM_ESYNTAX:
      if (off < n && s[off] == '-') off++;
      if ((off + 3 <= n && memcmp(s + off, "NaN", 3) == 0) ||
          (off + 8 <= n && memcmp(s + off, "Infinity", 8) == 0))
        return "not_a_number";
      return "invalid_json";
    default: return "invalid_json";
  }
}

/* A line that is not a message; when the part read so far says it is a
** RECORD (its "type", or the "record" member being walked), that is noted
** with its stream, so the caller can count it rather than only log it. */
static lb_msg_type fail(lb_msg *m, int rc, const top_state *st, int in_record,
                        const char *s, size_t n, size_t off) {
  const lb_jval *t = &st->keys[0];
  none(m, invalid_why(rc));
  if (in_record ||
      (t->type == LB_JSTRING && match(t, type_names, LB_MSG__COUNT) == LB_MSG_RECORD)) {
    m->bad_record = bad_json_code(rc, s, n, off);
    if (st->rec.f[RK_STREAM].type == LB_JSTRING) m->stream = st->rec.f[RK_STREAM];
  }
  return LB_MSG_NONE;
}

/* A RECORD that is valid JSON but not a valid record. */
static lb_msg_type bad_record(lb_msg *m, const char *why, const char *code,
                              const lb_jval *stream) {
  none(m, why);
  m->bad_record = code;
  if (stream && stream->type == LB_JSTRING) m->stream = *stream;
  return LB_MSG_NONE;
}

static lb_msg_type parse(const char *s, size_t n, size_t p, lb_msg *m) {
  top_state st;
  size_t start = p, off = 0;
  lb_jval *t;
  int rc, in_record = 0;
  lb_msg_type mt;

  /* only the types need clearing: a span is read only when its type is set */
  for (rc = 0; rc < LB_MSG__COUNT; rc++) st.keys[rc].type = LB_JNONE;
  clear_record(&st.rec);
#define FAIL(code, at) do { off = (at); return fail(m, (code), &st, in_record, s, n, off); } while (0)
  p++;
  SKIP_WS(s, n, p);
  if (p == n) FAIL(LB_JSKIM_ETRUNC, p);
  if (s[p] != '}') {
    for (;;) {
      lb_jval key, scratch, *dst;
      int k;
      if (s[p] != '"') FAIL(LB_JSKIM_ESYNTAX, p);
      rc = lb_jskim_value(s, n, &p, 1, &key, &off);
      if (rc) FAIL(rc, off);
      SKIP_WS(s, n, p);
      if (p == n) FAIL(LB_JSKIM_ETRUNC, p);
      if (s[p] != ':') FAIL(LB_JSKIM_ESYNTAX, p);
      p++;
      SKIP_WS(s, n, p);
      if (p == n) FAIL(LB_JSKIM_ETRUNC, p);
      k = match(&key, top_keys, LB_MSG__COUNT);
      dst = k >= 0 ? &st.keys[k] : &scratch;
      if (k == LB_MSG_RECORD) in_record = 1;
      if (k == LB_MSG_RECORD && s[p] == '{') {
        rc = walk_record(s, n, &p, &st.rec, dst, &off);
      } else {
        rc = lb_jskim_value(s, n, &p, 1, dst, &off);
        if (k == LB_MSG_RECORD) clear_record(&st.rec);
      }
      if (rc) FAIL(rc, off);
      SKIP_WS(s, n, p);
      if (p == n) FAIL(LB_JSKIM_ETRUNC, p);
      if (s[p] == ',') {
        p++;
        SKIP_WS(s, n, p);
        if (p == n) FAIL(LB_JSKIM_ETRUNC, p);
        continue;
      }
      if (s[p] == '}') break;
      FAIL(LB_JSKIM_ESYNTAX, p);
    }
  }
  p++;
  m->whole.type = LB_JOBJECT;
  m->whole.p = s + start;
  m->whole.n = p - start;
  SKIP_WS(s, n, p);
  if (p != n) FAIL(LB_JSKIM_ETRAIL, p);
#undef FAIL

  /* the line is valid JSON: now is it a message? */
  t = &st.keys[0];
  if (t->type == LB_JNONE) return none(m, "no \"type\"");
  if (t->type != LB_JSTRING) return none(m, "\"type\" is not a string");
  rc = match(t, type_names, LB_MSG__COUNT);
  if (rc <= 0) return none(m, "unknown \"type\"");
  mt = (lb_msg_type)rc;
  if (st.keys[mt].type == LB_JNONE || st.keys[mt].type != LB_JOBJECT) {
    const char *why = st.keys[mt].type == LB_JNONE ? "no payload for the \"type\""
                                                   : "payload is not an object";
    if (mt == LB_MSG_RECORD) return bad_record(m, why, "record_not_object", NULL);
    return none(m, why);
  }
  m->payload = st.keys[mt];
  if (mt == LB_MSG_RECORD) {
    const lb_jval *f = st.rec.f;
    if (f[RK_STREAM].type != LB_JSTRING)
      return bad_record(m, "RECORD without a string \"stream\"", "stream_not_string", NULL);
    if (f[RK_DATA].type != LB_JOBJECT)
      return bad_record(m, "RECORD without an object \"data\"", "data_not_object", &f[RK_STREAM]);
    if (f[RK_EMITTED_AT].type != LB_JNONE && f[RK_EMITTED_AT].type != LB_JNUMBER)
      return bad_record(m, "RECORD with a non-numeric \"emitted_at\"", "emitted_at_not_number",
                        &f[RK_STREAM]);
    if (f[RK_NAMESPACE].type != LB_JNONE && f[RK_NAMESPACE].type != LB_JSTRING &&
        f[RK_NAMESPACE].type != LB_JNULL)
      return bad_record(m, "RECORD with a \"namespace\" that is not a string or null",
                        "invalid_namespace", &f[RK_STREAM]);
    m->stream = f[RK_STREAM];
    m->ns = f[RK_NAMESPACE];
    m->emitted_at = f[RK_EMITTED_AT];
    m->data = f[RK_DATA];
  }
  m->type = mt;
  return mt;
}

lb_msg_type lb_msg_parse(const char *line, size_t n, lb_msg *m) {
  size_t p = 0;
  int rc;
  memset(m, 0, sizeof *m);
  m->why = NULL;
  SKIP_WS(line, n, p);
  if (p == n) return none(m, "empty line");
  if (line[p] != '{') {
    /* plain text most of the time: only say why */
    rc = lb_jskim_validate(line, n, NULL, NULL);
    return none(m, rc ? invalid_why(rc) : "not a JSON object");
  }
  return parse(line, n, p, m);
}

/* --- stream names in a message ------------------------------------------ */

/* The value at obj.path[0].path[1]..., into *out; NULL when absent. */
static const lb_jval *find_path(const lb_jval *obj, const char *const *path, lb_jval *out) {
  lb_jval cur = *obj;
  for (; *path; path++) {
    if (cur.type != LB_JOBJECT || !lb_jobj_find(&cur, *path, strlen(*path), out)) return NULL;
    cur = *out;
  }
  return out;
}

static int add_name(const lb_jval *v, lb_jval *out, int max, int n) {
  if (v == NULL || v->type != LB_JSTRING) return n;
  if (n < max) out[n] = *v;
  return n + 1;
}

static void sort_by_position(lb_jval *v, int n) {
  int i, j;
  for (i = 1; i < n; i++)
    for (j = i; j > 0 && v[j].p < v[j - 1].p; j--) {
      lb_jval t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
}

int lb_msg_stream_names(const lb_msg *m, lb_jval *out, int max) {
  static const char *const desc_name[] = { "stream_descriptor", "name", NULL };
  static const char *const state_stream[] = { "stream", "stream_descriptor", "name", NULL };
  static const char *const global_states[] = { "global", "stream_states", NULL };
  static const char *const status_name[] = { "stream_status", "stream_descriptor", "name", NULL };
  static const char *const error_name[] = { "error", "stream_descriptor", "name", NULL };
  static const char *const estimate_name[] = { "estimate", "name", NULL };
  lb_jval tmp;
  const lb_jval *v;
  int n = 0;
  switch (m->type) {
    case LB_MSG_RECORD:
      n = add_name(&m->stream, out, max, n);
      break;
    case LB_MSG_STATE:
      n = add_name(find_path(&m->payload, state_stream, &tmp), out, max, n);
      if ((v = find_path(&m->payload, global_states, &tmp)) != NULL && v->type == LB_JARRAY) {
        lb_jiter it;
        lb_jval el, found;
        lb_jiter_init(&it, v);
        while (lb_jarr_next(&it, &el))
          n = add_name(find_path(&el, desc_name, &found), out, max, n);
      }
      break;
    case LB_MSG_TRACE:
      n = add_name(find_path(&m->payload, status_name, &tmp), out, max, n);
      n = add_name(find_path(&m->payload, error_name, &tmp), out, max, n);
      n = add_name(find_path(&m->payload, estimate_name, &tmp), out, max, n);
      break;
    default:
      break;
  }
  sort_by_position(out, n < max ? n : max);
  return n;
}

/* --- state keys ----------------------------------------------------------- */

void lb_state_key_of(const lb_jval *state, lb_state_key *k) {
  lb_jval t, st, desc, v;
  memset(k, 0, sizeof *k);
  k->type = LB_STATE_LEGACY;
  if (state->type != LB_JOBJECT || !lb_jobj_find(state, "type", 4, &t) || t.type != LB_JSTRING)
    return;                               /* no type: LEGACY, as the protocol says */
  if (lb_jstr_eq(&t, "GLOBAL", 6)) {
    k->type = LB_STATE_GLOBAL;
    return;
  }
  if (!lb_jstr_eq(&t, "STREAM", 6)) return;
  if (!lb_jobj_find(state, "stream", 6, &st) || st.type != LB_JOBJECT ||
      !lb_jobj_find(&st, "stream_descriptor", 17, &desc) || desc.type != LB_JOBJECT ||
      !lb_jobj_find(&desc, "name", 4, &v) || v.type != LB_JSTRING)
    return;                               /* no stream to key it by */
  k->type = LB_STATE_STREAM;
  k->name = v;
  if (lb_jobj_find(&desc, "namespace", 9, &v) && v.type == LB_JSTRING && v.n > 2) k->ns = v;
}

const char *lb_state_type_name(lb_state_type t) {
  return t == LB_STATE_STREAM ? "STREAM" : t == LB_STATE_GLOBAL ? "GLOBAL" : "LEGACY";
}

static int key_part(const lb_jval *s, const char *dflt, char *out, size_t cap, size_t *len) {
  size_t n;
  if (s->type != LB_JSTRING) {
    n = strlen(dflt);
    if (n >= cap) return -1;
    memcpy(out, dflt, n + 1);
  } else {
    if (cap == 0 || (n = lb_jstr_decode(s, out, cap)) >= cap) return -1;
    out[n] = '\0';
  }
  *len = n;
  return 0;
}

int lb_state_key_text(const lb_state_key *k, char *nbuf, size_t ncap, size_t *nlen,
                      char *nsbuf, size_t nscap, size_t *nslen) {
  const char *dflt = k->type == LB_STATE_GLOBAL ? "_GLOBAL" : "_LEGACY";
  if (key_part(&k->name, dflt, nbuf, ncap, nlen) != 0) return -1;
  return key_part(&k->ns, "", nsbuf, nscap, nslen);
}
