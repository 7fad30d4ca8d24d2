/*
 * ngx_realtime_module: liveness of an open connection: pings, the pong
 * deadline, the idle timeout and the token's expiry, on the session's one
 * timer.
 */

#pragma once

#include "ngx_http_realtime_session.h"


/* Takes over s's timer and arms it for the nearest deadline. */
void ngx_http_realtime_heartbeat_start(ngx_http_realtime_session_t *s)
    noexcept;

/* Re-arms the timer after a deadline moved (token refresh). */
void ngx_http_realtime_heartbeat_reschedule(ngx_http_realtime_session_t *s)
    noexcept;
