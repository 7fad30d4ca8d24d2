/*
 * ngx_realtime_module: in-band client messages. Every data message a client
 * sends comes here: rate-limited, then a JSON object with a "type" the
 * module handles goes to that feature; anything else is broadcast
 * (realtime_client_publish), echoed (realtime_echo) or refused with an
 * error (the relay to the app will take it next). Features add a row to
 * the table in ngx_http_realtime_messages.cpp.
 */

#pragma once

#include "ngx_http_realtime_session.h"


/* The session's handler for data messages (given to the session). */
bool ngx_http_realtime_messages_dispatch(ngx_http_realtime_session_t *s,
    realtime::ws::Opcode op, std::string_view payload);
