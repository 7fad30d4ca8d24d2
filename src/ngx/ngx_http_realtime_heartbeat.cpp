/*
 * ngx_realtime_module: pings, pong and idle deadlines, token expiry.
 *
 * Any bytes from the client prove it alive (last_rx), so a busy client is
 * never pinged; a data message either way resets the idle timeout
 * (last_data). One timer per connection, armed for the nearest deadline.
 */

#include "ngx_http_realtime_heartbeat.h"

#include "core/sse.h"


static void ngx_http_realtime_heartbeat_handler(ngx_event_t *ev) noexcept;
static void ngx_http_realtime_heartbeat_comment(ngx_http_realtime_session_t *s);


void
ngx_http_realtime_heartbeat_start(ngx_http_realtime_session_t *s) noexcept
{
    s->timer.handler = ngx_http_realtime_heartbeat_handler;
    s->timer.cancelable = 1;    /* pings must not keep an exiting worker */

    ngx_http_realtime_heartbeat_reschedule(s);
}


static void
ngx_http_realtime_heartbeat_handler(ngx_event_t *ev) noexcept
{
    ngx_msec_t                     now;
    ngx_http_realtime_session_t   *s;
    ngx_http_realtime_loc_conf_t  *conf;

    s = (ngx_http_realtime_session_t *) ev->data;
    conf = s->conf;
    now = ngx_current_msec;

    if (s->jwt_exp && ngx_time() >= s->jwt_exp + conf->jwt_leeway) {
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "realtime: token expired, closing with %ui",
                      (ngx_uint_t) realtime::ws::close_code::kTokenExpired);
        ngx_http_realtime_session_close(s,
            realtime::ws::close_code::kTokenExpired, "token expired");
        goto done;
    }

    if (s->awaiting_pong && now - s->ping_sent >= conf->pong_timeout) {
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "realtime: no pong from client in %M ms, closing with %ui",
                      conf->pong_timeout,
                      (ngx_uint_t) realtime::ws::close_code::kPongTimeout);
        ngx_http_realtime_session_close(s,
            realtime::ws::close_code::kPongTimeout, "pong timeout");
        goto done;
    }

    if (conf->idle_timeout && now - s->last_data >= conf->idle_timeout) {
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "realtime: idle for %M ms, closing with %ui",
                      conf->idle_timeout,
                      (ngx_uint_t) realtime::ws::close_code::kIdleTimeout);
        ngx_http_realtime_session_close(s,
            realtime::ws::close_code::kIdleTimeout, "idle timeout");
        goto done;
    }

    if (s->eventsource) {
        /*
         * A stream has no pong: a comment keeps proxies from timing it
         * out, and a dead peer shows as a write error (or a send buffer
         * that fills up). last_rx marks when the last one went.
         */
        if (conf->ping_interval && now - s->last_rx >= conf->ping_interval) {
            ngx_http_realtime_heartbeat_comment(s);
            s->last_rx = now;
        }

    } else if (conf->ping_interval && !s->awaiting_pong
        && now - s->last_rx >= conf->ping_interval)
    {
        /* every connection of the worker shares one ping frame */
        if (ngx_http_realtime_worker.ping_frame == NULL) {
            ngx_http_realtime_worker.ping_frame = ngx_http_realtime_frame(
                realtime::ws::Opcode::kPing, std::string_view());
        }

        if (ngx_http_realtime_worker.ping_frame) {
            s->awaiting_pong = true;
            s->ping_sent = now;
            ngx_http_realtime_session_send(s,
                ngx_http_realtime_worker.ping_frame,
                ngx_http_realtime_frame_kind_e::kControl);
        }
    }

    ngx_http_realtime_heartbeat_reschedule(s);

done:

    ngx_http_realtime_session_flush(s);
}


/* Queues the worker's shared heartbeat comment (one per framing). */

static void
ngx_http_realtime_heartbeat_comment(ngx_http_realtime_session_t *s)
{
    realtime::SharedFrame  **f;

    f = &ngx_http_realtime_worker.comment_frame[s->sse_chunked];

    if (*f == NULL) {
        try {
            std::string  bytes = realtime::sse::comment(" heartbeat");

            if (s->sse_chunked) {
                bytes = realtime::sse::chunk(bytes);
            }

            *f = realtime::SharedFrame::create(bytes.size());
            if (*f) {
                ngx_memcpy((*f)->data(), bytes.data(), bytes.size());
            }

        } catch (...) {
            *f = NULL;
        }
    }

    if (*f) {
        ngx_http_realtime_session_send(s, *f,
                                       ngx_http_realtime_frame_kind_e::kControl);
    }
}


/* Arms the timer for the nearest of the ping, pong, idle and expiry
   deadlines. */

void
ngx_http_realtime_heartbeat_reschedule(ngx_http_realtime_session_t *s)
    noexcept
{
    ngx_msec_t                     now, at, t;
    ngx_http_realtime_loc_conf_t  *conf;

    conf = s->conf;
    now = ngx_current_msec;
    at = 0;

    if (s->closing() || s->restart_pending) {
        return;     /* the timer waits for the peer's close, or a reload's
                       1012, now */
    }

    if (s->awaiting_pong) {
        at = s->ping_sent + conf->pong_timeout;

    } else if (conf->ping_interval) {
        at = s->last_rx + conf->ping_interval;
    }

    if (conf->idle_timeout) {
        t = s->last_data + conf->idle_timeout;
        if (at == 0 || (ngx_msec_int_t) (t - at) < 0) {
            at = t;
        }
    }

    if (s->jwt_exp) {
        int64_t  left = s->jwt_exp + conf->jwt_leeway - (int64_t) ngx_time();

        /*
         * Whole seconds, +1 s so the timer never fires just before exp;
         * a day at most: a far-off expiry is looked at again then.
         */
        if (left > 86400) {
            left = 86400;
        }

        t = left > 0 ? now + (ngx_msec_t) left * 1000 + 1000 : now;

        if (at == 0 || (ngx_msec_int_t) (t - at) < 0) {
            at = t;
        }
    }

    if (at == 0) {
        if (s->timer.timer_set) {
            ngx_del_timer(&s->timer);
        }

        return;
    }

    t = (ngx_msec_int_t) (at - now) > 0 ? at - now : 1;

    ngx_add_timer(&s->timer, t);
}
