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

#endif
