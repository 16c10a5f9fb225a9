/*
** protocol.h - Airbyte protocol messages over jskim.
**
** lb_msg_parse() validates one stdout line and classifies it. A line that is
** not JSON, or JSON that is not an Airbyte message (not an object, no known
** "type", or the payload field missing / not an object), is LB_MSG_NONE: the
** caller treats it as a connector log line.
*/
#ifndef LB_PROTOCOL_H
#define LB_PROTOCOL_H

#include <stddef.h>
#include "jskim.h"

typedef enum lb_msg_type {
  LB_MSG_NONE = 0,          /* not a protocol message: a log line */
  LB_MSG_RECORD,
  LB_MSG_STATE,
  LB_MSG_LOG,
  LB_MSG_SPEC,
  LB_MSG_CONNECTION_STATUS,
  LB_MSG_CATALOG,
  LB_MSG_TRACE,
  LB_MSG_CONTROL,
  LB_MSG_DESTINATION_CATALOG,
  LB_MSG__COUNT
} lb_msg_type;

typedef struct lb_msg {
  lb_msg_type type;
  lb_jval whole;            /* the top-level object */
  lb_jval payload;          /* "record", "state", ... object */
  /* RECORD only (type LB_JNONE when absent / not applicable): */
  lb_jval stream;           /* string span */
  lb_jval ns;               /* "namespace": string or null span */
  lb_jval emitted_at;       /* number span */
  lb_jval data;             /* object span */
  const char *why;          /* for LB_MSG_NONE: why it is not a message */
  /* For LB_MSG_NONE: when the line is recognisably a RECORD that is not
  ** valid, a reason code ("invalid_utf8", "not_a_number", "too_deep",
  ** "invalid_json", "record_not_object", "stream_not_string",
  ** "data_not_object", "emitted_at_not_number", "invalid_namespace"), and
  ** `stream` holds its stream when that was read before the fault; else NULL. */
  const char *bad_record;
} lb_msg;

/* "RECORD", "STATE", ... ; "NONE" for LB_MSG_NONE. */
const char *lb_msg_type_name(lb_msg_type t);

/* Name of the payload field for a type ("record", "connectionStatus", ...). */
const char *lb_msg_payload_key(lb_msg_type t);

/* Parse one line (no trailing newline). Always fills *m; returns m->type.
** A RECORD without a string "stream" or an object "data" is LB_MSG_NONE
** (why = "RECORD without ...", bad_record set). */
lb_msg_type lb_msg_parse(const char *line, size_t n, lb_msg *m);

/* The spans of every stream name a parsed message carries (the strings an
** Airbyte connection's stream prefix renames): a RECORD's "stream"; a STREAM
** state's stream_descriptor.name; each stream_states[i].stream_descriptor.name
** of a GLOBAL state; a TRACE's stream_status.stream_descriptor.name,
** error.stream_descriptor.name and estimate.name. Fills up to max spans into
** out, in the order they appear in the line, and returns how many there are
** (which may exceed max: call again with room for that many). */
int lb_msg_stream_names(const lb_msg *m, lb_jval *out, int max);

/* The key a state is kept under: the one rule for every place that stores,
** matches or passes back states (the cache's state tables, the delivery
** ledger, echo matching, the --state file). A state is
**   STREAM  ("type":"STREAM" with a stream_descriptor name): its stream,
**           (namespace, name); a missing, null or "" namespace is none;
**   GLOBAL  ("type":"GLOBAL"): one per source;
**   LEGACY  ("type":"LEGACY", no "type" at all, which the protocol says
**           means LEGACY, or a STREAM state without a descriptor name): one
**           per source.
** GLOBAL and LEGACY are named "_GLOBAL" and "_LEGACY", as PyAirbyte names
** their rows. */
typedef enum lb_state_type { LB_STATE_STREAM, LB_STATE_GLOBAL, LB_STATE_LEGACY } lb_state_type;

typedef struct lb_state_key {
  lb_state_type type;
  lb_jval name;             /* STREAM: the name's string span, else LB_JNONE */
  lb_jval ns;               /* STREAM with a namespace: its string span, else LB_JNONE */
} lb_state_key;

/* Key of a validated AirbyteStateMessage object (the "state" payload). */
void lb_state_key_of(const lb_jval *state, lb_state_key *k);

/* "STREAM", "GLOBAL", "LEGACY". */
const char *lb_state_type_name(lb_state_type t);

/* The key's name ("_GLOBAL" / "_LEGACY" for those) and namespace ("" for
** none), decoded and NUL-terminated into name[ncap] and ns[nscap], their
** lengths into *nlen and *nslen (a name may hold a NUL: bind by length).
** Returns 0, or -1 when one does not fit. */
int lb_state_key_text(const lb_state_key *k, char *name, size_t ncap, size_t *nlen,
                      char *ns, size_t nscap, size_t *nslen);

#endif
