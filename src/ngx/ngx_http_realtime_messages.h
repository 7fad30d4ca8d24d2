/*
 * ngx_realtime_module: in-band client messages. A text frame holding a JSON
 * object with a "type" the module knows is handled here; anything else
 * goes on (echo, and later relaying to the app). Features add a row to the
 * table in ngx_http_realtime_messages.cpp.
 */

#pragma once

#include "ngx_http_realtime_session.h"


/* The session's handler for data messages (given to the session). */
bool ngx_http_realtime_messages_dispatch(ngx_http_realtime_session_t *s,
    realtime::ws::Opcode op, std::string_view payload);
