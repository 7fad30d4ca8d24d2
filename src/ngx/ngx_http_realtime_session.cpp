/*
 * ngx_realtime_module: the WebSocket connection loop after the 101.
 *
 * The connection's read and write handlers are replaced by ours, as
 * ngx_http_upstream_upgrade() does for proxied WebSockets. Once the 101 is
 * out, the session detaches from the HTTP request: the request is logged
 * and freed (its pool and header buffers are most of an idle connection's
 * memory) and the session, allocated on its own, owns the connection.
 * Input is read into one per-worker buffer and parsed in place, so an idle
 * connection holds no read buffer; output is a queue of shared frames
 * written with one send_chain() (writev) per batch.
 */

#include "ngx_http_realtime_session.h"

#include "core/publish_request.h"
#include "core/sse.h"


#define NGX_HTTP_REALTIME_READ_BUDGET   16      /* reads per event, fairness */
#define NGX_HTTP_REALTIME_PAUSE_READING 65536   /* own replies pending */
#define NGX_HTTP_REALTIME_IOVS          64


static void ngx_http_realtime_upgrade_handler(ngx_event_t *ev) noexcept;
static void ngx_http_realtime_detach(ngx_http_realtime_session_t *s);
static void ngx_http_realtime_session_cleanup(void *data) noexcept;
static void ngx_http_realtime_read_handler(ngx_event_t *rev) noexcept;
static void ngx_http_realtime_write_handler(ngx_event_t *wev) noexcept;
static void ngx_http_realtime_close_wait_handler(ngx_event_t *ev) noexcept;
static void ngx_http_realtime_shutdown(ngx_http_realtime_session_t *s);
static bool ngx_http_realtime_reloaded(void);
static void ngx_http_realtime_restart_handler(ngx_event_t *ev) noexcept;
static void ngx_http_realtime_eventsource_end(ngx_http_realtime_session_t *s,
    uint16_t code);
static void ngx_http_realtime_process(ngx_http_realtime_session_t *s,
    u_char *data, size_t len);
static void ngx_http_realtime_write(ngx_http_realtime_session_t *s);
static bool ngx_http_realtime_queue(ngx_http_realtime_session_t *s,
    realtime::SharedFrame *f, bool reply);
static void ngx_http_realtime_check_backlog(ngx_http_realtime_session_t *s);


ngx_http_realtime_session_t::ngx_http_realtime_session_t(
    ngx_http_request_t *r, ngx_http_realtime_loc_conf_t *lc,
    const ngx_http_realtime_session_handlers_t *h) noexcept
    : request(r), connection(r->connection), conf(lc), handlers(h),
      flush_link{{NULL, NULL}, this}, last_data(ngx_current_msec),
      parser(lc->max_message_size, true), timer(),
      last_rx(ngx_current_msec), zone(lc->zone)
{
    ngx_queue_init(&members);

    /* the close wait until someone (the heartbeat) takes the timer over */
    timer.handler = ngx_http_realtime_close_wait_handler;
    timer.data = this;
    timer.log = r->connection->log;
    timer.cancelable = 1;   /* pings must not keep an exiting worker */
}


ngx_http_realtime_session_t::~ngx_http_realtime_session_t()
{
    if (in_flush) {
        ngx_queue_remove(&flush_link.queue);
        in_flush = false;
    }

    if (handlers && handlers->release) {
        handlers->release(this);
    }

    if (timer.timer_set) {
        ngx_del_timer(&timer);
    }

    if (timer.posted) {
        ngx_delete_posted_event(&timer);
    }
}


ngx_http_realtime_session_t *
ngx_http_realtime_session_create(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf,
    const ngx_http_realtime_session_handlers_t *handlers) noexcept
{
    ngx_pool_cleanup_t           *cln;
    ngx_http_realtime_session_t  *s;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    /* not from r->pool: the session outlives the request (see detach) */
    s = new (std::nothrow) ngx_http_realtime_session_t(r, rlcf, handlers);
    if (s == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_realtime_session_cleanup;
    cln->data = s;

    ngx_http_set_ctx(r, s, ngx_realtime_module);

    return s;
}


ngx_int_t
ngx_http_realtime_session_start(ngx_http_realtime_session_t *s) noexcept
{
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = s->request;
    c = r->connection;

    if (r->header_in && r->header_in->pos < r->header_in->last) {
        s->leftover = r->header_in->pos;
        s->leftover_end = r->header_in->last;
    }

    c->log->action = s->eventsource ? (char *) "serving event stream"
                                    : (char *) "serving WebSocket";

    /*
     * Messages are small and must go out at once: without TCP_NODELAY a
     * frame written while an earlier one is unacknowledged waits for that
     * ACK (Nagle). nginx sets it for keepalive and, as here, for upgraded
     * proxied connections (ngx_http_upstream_upgrade()), per tcp_nodelay.
     */
    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        return NGX_ERROR;
    }

    c->read->handler = ngx_http_realtime_upgrade_handler;
    c->write->handler = ngx_http_realtime_upgrade_handler;

    /* nginx -s quit/reload reaches idle connections: we answer with 1001,
       or 1012 in a spread window on a reload (see shutdown) */
    c->idle = 1;

    /* the request outlives the content phase until we finalize it */
    r->main->count++;

    /*
     * Data may already wait in the socket (edge-triggered epoll will not
     * report it again) or in the header buffer; the read handler takes it
     * once the HTTP request has finished its content phase.
     */
    ngx_post_event(c->read, &ngx_posted_events);

    return NGX_DONE;
}


/* The request's pool goes: the session goes too, unless it detached. */

static void
ngx_http_realtime_session_cleanup(void *data) noexcept
{
    ngx_http_realtime_session_t  *s = (ngx_http_realtime_session_t *) data;

    if (!s->detached) {
        delete s;
    }
}


/*
 * The first event after the upgrade (and any before the 101 is fully
 * sent): handshake leftovers are parsed while the request's buffers still
 * exist, then the session detaches and the steady-state handlers take over.
 */

static void
ngx_http_realtime_upgrade_handler(ngx_event_t *ev) noexcept
{
    ngx_connection_t             *c;
    ngx_http_request_t           *r;
    ngx_http_realtime_session_t  *s;

    c = (ngx_connection_t *) ev->data;
    r = (ngx_http_request_t *) c->data;
    s = (ngx_http_realtime_session_t *)
            ngx_http_get_module_ctx(r, ngx_realtime_module);

    if (ev->posted) {
        ngx_delete_posted_event(ev);
    }

    try {
        if (s->leftover && s->eventsource) {
            s->leftover = NULL;     /* a one-way stream ignores input */

        } else if (s->leftover) {
            u_char *p = s->leftover;
            s->leftover = NULL;
            s->last_rx = ngx_current_msec;
            ngx_http_realtime_process(s, p, s->leftover_end - p);
        }

        ngx_http_realtime_write(s);

    } catch (...) {
        s->state = ngx_http_realtime_state_e::kDone;
    }

    if (s->state == ngx_http_realtime_state_e::kDone || c->buffered) {
        /* done: finalize the request; buffered: wait for the 101 to go */
        ngx_http_realtime_session_finish(s);
        return;
    }

    ngx_http_realtime_detach(s);

    c->read->handler = ngx_http_realtime_read_handler;
    c->write->handler = ngx_http_realtime_write_handler;

    ngx_http_realtime_read_handler(c->read);
}


static void
ngx_http_realtime_detach(ngx_http_realtime_session_t *s)
{
    ngx_buf_t               *b;
    ngx_chain_t             *cl;
    ngx_connection_t        *c;
    ngx_http_request_t      *r;
    ngx_http_connection_t   *hc;

    r = s->request;
    c = s->connection;
    hc = r->http_connection;

    s->detached = true;

    /* the access log line is written now, with status 101 */
    ngx_http_free_request(r, 0);

    s->request = NULL;
    c->data = s;
    c->destroyed = 0;
    c->log->action = s->eventsource ? (char *) "serving event stream"
                                    : (char *) "serving WebSocket";

    /* header buffers are not needed any more, as for a keepalive */

    b = c->buffer;

    if (b && ngx_pfree(c->pool, b->start) == NGX_OK) {
        b->pos = NULL;
        b->start = NULL;
        b->last = NULL;
        b->end = NULL;
    }

    if (hc->free) {
        for (cl = hc->free; cl; cl = cl->next) {
            ngx_pfree(c->pool, cl->buf->start);
        }

        hc->free = NULL;
    }

    if (hc->busy) {
        for (cl = hc->busy; cl; cl = cl->next) {
            ngx_pfree(c->pool, cl->buf->start);
        }

        hc->busy = NULL;
        hc->nbusy = 0;
    }
}


/* After detaching, the connection's data is the session itself. */

static ngx_http_realtime_session_t *
ngx_http_realtime_get_session(ngx_connection_t *c)
{
    return (ngx_http_realtime_session_t *) c->data;
}


static void
ngx_http_realtime_read_handler(ngx_event_t *rev) noexcept
{
    ssize_t                       n;
    ngx_uint_t                    budget;
    ngx_connection_t             *c;
    ngx_http_realtime_session_t  *s;

    c = (ngx_connection_t *) rev->data;
    s = ngx_http_realtime_get_session(c);

    try {
        if ((c->close || ngx_exiting) && !s->closing()) {
            ngx_http_realtime_shutdown(s);
        }

        for (budget = NGX_HTTP_REALTIME_READ_BUDGET;
             s->state != ngx_http_realtime_state_e::kDone;
             budget--)
        {
            /*
             * Only our replies (pongs, answers) pause reading: a client
             * that does not read them must not make us buffer more. A
             * backlog of broadcasts does not: its pongs must still be
             * seen, or a live subscriber would be closed as dead.
             */
            if (s->out.reply_bytes() >= NGX_HTTP_REALTIME_PAUSE_READING) {
                s->read_paused = true;
                break;
            }

            if (s->input_held) {
                break;      /* resumed by ngx_http_realtime_session_hold_input */
            }

            if (budget == 0) {
                ngx_post_event(rev, &ngx_posted_events);
                break;
            }

            n = c->recv(c, ngx_http_realtime_worker.read_buf,
                        NGX_HTTP_REALTIME_READ_BUF);

            if (n == NGX_AGAIN) {
                if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                    s->state = ngx_http_realtime_state_e::kDone;
                }
                break;
            }

            if (n == 0 || n == NGX_ERROR) {
                if (s->eventsource) {
                    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                                  "realtime: client closed event stream");

                } else if (!s->close_received) {
                    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                                  "realtime: client closed connection%s",
                                  s->closing() ? " after our close frame"
                                               : " without a close frame");
                }

                c->error = (n == NGX_ERROR);
                s->state = ngx_http_realtime_state_e::kDone;
                break;
            }

            if (s->eventsource) {
                continue;   /* the stream is one way: what comes is ignored */
            }

            s->last_rx = ngx_current_msec;
            s->awaiting_pong = false;   /* any traffic proves the peer alive */
            ngx_http_realtime_process(s, ngx_http_realtime_worker.read_buf, n);
        }

        ngx_http_realtime_write(s);

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "realtime: out of memory while reading");
        s->state = ngx_http_realtime_state_e::kDone;
    }

    ngx_http_realtime_session_finish(s);
}


static void
ngx_http_realtime_write_handler(ngx_event_t *wev) noexcept
{
    ngx_connection_t  *c = (ngx_connection_t *) wev->data;

    ngx_http_realtime_session_flush(ngx_http_realtime_get_session(c));
}


/*
 * The worker is exiting (nginx closes idle connections by calling their
 * read handler with c->close set). On a reload, new workers already serve
 * the same zone: the client is told 1012 (service restart) so it comes back
 * at once and resumes, and the closes are spread at random over
 * realtime_reload_spread so the clients of a big server do not all
 * reconnect in the same millisecond. On quit, it is 1001 at once.
 */

static void
ngx_http_realtime_shutdown(ngx_http_realtime_session_t *s)
{
    ngx_msec_t         spread;
    ngx_connection_t  *c;

    c = s->connection;
    spread = s->conf->reload_spread;

    if (s->restart_pending) {
        if (c->close) {
            /* worker_shutdown_timeout: no more waiting */
            c->close = 0;
            ngx_http_realtime_session_close(s,
                realtime::ws::close_code::kServiceRestart, "service restart");
        }

        return;
    }

    c->close = 0;

    if (!ngx_http_realtime_reloaded()) {
        ngx_http_realtime_session_close(s,
            realtime::ws::close_code::kGoingAway, "server shutting down");
        return;
    }

    if (spread == 0) {
        ngx_http_realtime_session_close(s,
            realtime::ws::close_code::kServiceRestart, "service restart");
        return;
    }

    /*
     * Messages keep flowing until then. The timer is not cancelable: the
     * exiting worker waits for it (worker_shutdown_timeout cuts it short).
     */
    s->restart_pending = true;

    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    s->timer.handler = ngx_http_realtime_restart_handler;
    s->timer.cancelable = 0;
    ngx_add_timer(&s->timer, 1 + (ngx_msec_t) ngx_random() % spread);
}


static void
ngx_http_realtime_restart_handler(ngx_event_t *ev) noexcept
{
    ngx_http_realtime_session_t  *s;

    s = (ngx_http_realtime_session_t *) ev->data;

    ngx_http_realtime_session_close(s,
        realtime::ws::close_code::kServiceRestart, "service restart");
    ngx_http_realtime_session_flush(s);
}


/*
 * Whether the configuration was reloaded since this worker started: the
 * new cycle took over one of our zones (the master bumps its generation
 * before it starts the new workers and tells us to quit). Without a zone,
 * or when a reload made the zone anew (another size), nothing tells a
 * reload from a quit, and it is 1001.
 */

static bool
ngx_http_realtime_reloaded(void)
{
    ngx_uint_t                       i;
    ngx_http_realtime_zone_t       **zones;
    ngx_http_realtime_main_conf_t   *rmcf;

    rmcf = ngx_http_realtime_worker.main_conf;

    if (rmcf == NULL) {
        return false;
    }

    zones = (ngx_http_realtime_zone_t **) rmcf->zones.elts;

    for (i = 0; i < rmcf->zones.nelts; i++) {
        if (zones[i]->root->generation != zones[i]->generation) {
            return true;
        }
    }

    return false;
}


/* Feeds client bytes to the parser; acts on what it decodes. */

static void
ngx_http_realtime_process(ngx_http_realtime_session_t *s, u_char *data,
    size_t len)
{
    size_t                               consumed;
    ngx_connection_t                    *c;
    realtime::ws::FrameParser::Result    rc;

    c = s->connection;

    if (s->parser.closed()) {
        return;     /* close frame seen: the rest is ignored (RFC 6455 5.5.1) */
    }

    if (s->parser.error().code) {
        /*
         * We failed the connection and sent our close frame. Whatever
         * the client sends now (usually its close reply) tells it has
         * stopped; it was read, so closing now sends FIN, not RST.
         */
        if (s->out.empty()) {
            s->state = ngx_http_realtime_state_e::kDone;
        }

        return;
    }

    rc = s->parser.feed(data, len, *s, &consumed);

    if (rc == realtime::ws::FrameParser::Result::kError) {
        const realtime::ws::ParseError &e = s->parser.error();

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "realtime: client sent an invalid frame: %*s, "
                      "closing with %ui",
                      e.reason.size(), e.reason.data(), (ngx_uint_t) e.code);

        ngx_http_realtime_session_close(s, e.code, e.reason);
    }
}


bool
ngx_http_realtime_session_t::on_message(realtime::ws::Opcode op,
    std::string_view payload)
{
    if (closing()) {
        return true;    /* closing: data is no longer acted upon */
    }

    last_data = ngx_current_msec;

    return handlers->message(this, op, payload);
}


bool
ngx_http_realtime_session_t::on_ping(std::string_view payload)
{
    if (closing()) {
        return true;    /* no control frames after our close (5.5.1) */
    }

    return ngx_http_realtime_session_reply(this, realtime::ws::Opcode::kPong,
                                           payload);
}


bool
ngx_http_realtime_session_t::on_pong(std::string_view payload)
{
    /* any traffic proves liveness (last_rx); an unsolicited pong is fine */
    return true;
}


bool
ngx_http_realtime_session_t::on_close(uint16_t code, std::string_view reason)
{
    realtime::SharedFrame  *f;

    close_received = true;
    close_after_flush = true;

    if (close_code == 0) {
        close_code = code;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, connection->log, 0,
                   "realtime: client close %ui", (ngx_uint_t) code);

    if (closing()) {
        return false;   /* the reply to our close: done once flushed */
    }

    /* echo the status code back, then close TCP (RFC 6455 5.5.1, 7.1.1) */
    f = ngx_http_realtime_frame(realtime::ws::Opcode::kClose,
            code == realtime::ws::close_code::kNoStatus
                ? std::string()
                : realtime::ws::close_payload(code, std::string_view()));
    if (f == NULL) {
        state = ngx_http_realtime_state_e::kDone;
        return false;
    }

    state = ngx_http_realtime_state_e::kClosing;
    ngx_http_realtime_queue(this, f, true);
    realtime::release(f);

    return false;
}


/* Sends one frame back; when memory runs out, closes with 1011. */

bool
ngx_http_realtime_session_reply(ngx_http_realtime_session_t *s,
    realtime::ws::Opcode op, std::string_view payload) noexcept
{
    realtime::SharedFrame  *f;

    if (s->eventsource) {
        return op != realtime::ws::Opcode::kText
               || ngx_http_realtime_session_text(s, payload, std::string_view(),
                      ngx_http_realtime_frame_kind_e::kReply);
    }

    f = ngx_http_realtime_frame(op, payload);
    if (f == NULL) {
        ngx_http_realtime_session_close(s,
            realtime::ws::close_code::kInternalError, "out of memory");
        return false;
    }

    ngx_http_realtime_session_send(s, f,
                                   ngx_http_realtime_frame_kind_e::kReply);
    realtime::release(f);

    return true;
}


void
ngx_http_realtime_session_error(ngx_http_realtime_session_t *s,
    std::string_view code, std::string_view group) noexcept
{
    try {
        std::string  reply = "{\"type\":\"error\",\"error\":"
                             + realtime::json_quote(code);

        if (!group.empty()) {
            reply += ",\"group\":" + realtime::json_quote(group);
        }

        reply += "}";

        ngx_http_realtime_session_reply(s, realtime::ws::Opcode::kText, reply);

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: out of memory answering a client message");
    }
}


/* Queues f whatever the state; false when out of memory (s is done). */

static bool
ngx_http_realtime_queue(ngx_http_realtime_session_t *s,
    realtime::SharedFrame *f, bool reply)
{
    if (s->out.push(f, reply)) {
        return true;
    }

    ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                  "realtime: out of memory queuing a frame");
    s->state = ngx_http_realtime_state_e::kDone;

    return false;
}


void
ngx_http_realtime_session_send(ngx_http_realtime_session_t *s,
    realtime::SharedFrame *f, ngx_http_realtime_frame_kind_e kind) noexcept
{
    /* nothing may follow a close frame (RFC 6455 5.5.1) */
    if (s->closing()) {
        return;
    }

    if (!ngx_http_realtime_queue(s, f,
                                 kind == ngx_http_realtime_frame_kind_e::kReply))
    {
        return;
    }

    if (kind == ngx_http_realtime_frame_kind_e::kData) {
        s->last_data = ngx_current_msec;    /* idle counts both ways */
    }

    ngx_http_realtime_check_backlog(s);
}


/* Closes s with 4008 when its queue holds more than the send buffer. */

static void
ngx_http_realtime_check_backlog(ngx_http_realtime_session_t *s)
{
    if (s->out.bytes() > s->conf->send_buffer_size) {
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "realtime: client reads too slowly, %uz bytes pending, "
                      "closing with %ui", s->out.bytes(),
                      (ngx_uint_t) realtime::ws::close_code::kSlowConsumer);

        /* frames not yet started are dropped so the close can go out */
        s->out.drop_unstarted();

        if (s->zone) {
            ngx_http_realtime_registry_t  reg(s->zone);

            s->zone->root->stats.slow_consumer_closes++;
        }

        ngx_http_realtime_session_close(s,
            realtime::ws::close_code::kSlowConsumer, "send buffer full");
    }
}


ngx_http_realtime_send_now_e
ngx_http_realtime_session_send_now(ngx_http_realtime_session_t *s,
    realtime::SharedFrame *f) noexcept
{
    ssize_t            sent;
    ngx_connection_t  *c;

    c = s->connection;

    if (s->closing() || s->request || s->in_flush || !s->out.empty()
        || s->eventsource || c->ssl || c->buffered || !c->write->ready)
    {
        return ngx_http_realtime_send_now_e::kNotTaken;
    }

    sent = send(c->fd, f->data(), f->size, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (sent == -1) {
        ngx_err_t  err = ngx_socket_errno;

        if (err == NGX_EAGAIN) {
            c->write->ready = 0;

        } else if (err != NGX_EINTR) {
            c->error = 1;
            ngx_connection_error(c, err, (char *) "send() failed");
            s->state = ngx_http_realtime_state_e::kDone;
        }

        return ngx_http_realtime_send_now_e::kNotTaken;
    }

    c->sent += sent;
    s->last_data = ngx_current_msec;    /* idle counts both ways */

    if ((size_t) sent == f->size) {
        return ngx_http_realtime_send_now_e::kWritten;
    }

    /* the rest waits in the queue for the socket */
    c->write->ready = 0;

    if (!ngx_http_realtime_queue(s, f, false)) {
        return ngx_http_realtime_send_now_e::kQueued;   /* session closing */
    }

    s->out.consume((size_t) sent);
    ngx_http_realtime_check_backlog(s);     /* the limit of any queue */

    return ngx_http_realtime_send_now_e::kQueued;
}


void
ngx_http_realtime_session_close(ngx_http_realtime_session_t *s, uint16_t code,
    std::string_view reason) noexcept
{
    realtime::SharedFrame  *f;

    if (s->closing()) {
        return;
    }

    if (s->close_code == 0) {
        s->close_code = code;
    }

    if (s->eventsource) {
        ngx_http_realtime_eventsource_end(s, code);
        return;
    }

    try {
        f = ngx_http_realtime_frame(realtime::ws::Opcode::kClose,
                                    realtime::ws::close_payload(code, reason));
    } catch (...) {
        f = NULL;
    }

    if (f == NULL) {
        s->state = ngx_http_realtime_state_e::kDone;
        return;
    }

    s->state = ngx_http_realtime_state_e::kClosing;
    ngx_http_realtime_queue(s, f, false);
    realtime::release(f);

    /*
     * Wait a bounded time for the client's close. The timer is not
     * cancelable: a worker that is shutting down lets the handshake end.
     */
    s->timer.handler = ngx_http_realtime_close_wait_handler;
    s->timer.cancelable = 0;
    ngx_add_timer(&s->timer, NGX_HTTP_REALTIME_CLOSE_WAIT);
}


/*
 * An event stream has no close frame: the stream ends (the last chunk, when
 * chunked), and the connection closes once that is written. The browser's
 * EventSource reconnects by itself with Last-Event-ID. The code the
 * WebSocket would have had is logged, for the same reasons.
 */

static void
ngx_http_realtime_eventsource_end(ngx_http_realtime_session_t *s,
    uint16_t code)
{
    realtime::SharedFrame  *f;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, s->connection->log, 0,
                   "realtime: event stream ends (%ui)", (ngx_uint_t) code);

    s->state = ngx_http_realtime_state_e::kClosing;
    s->close_after_flush = true;

    if (s->sse_chunked) {
        f = realtime::SharedFrame::create(realtime::sse::kLastChunk.size());
        if (f == NULL) {
            s->state = ngx_http_realtime_state_e::kDone;
            return;
        }

        ngx_memcpy(f->data(), realtime::sse::kLastChunk.data(),
                   realtime::sse::kLastChunk.size());
        ngx_http_realtime_queue(s, f, false);
        realtime::release(f);
    }

    /* a client that reads nothing more does not hold the worker */
    if (s->timer.timer_set) {
        ngx_del_timer(&s->timer);
    }

    s->timer.handler = ngx_http_realtime_close_wait_handler;
    s->timer.cancelable = 0;
    ngx_add_timer(&s->timer, NGX_HTTP_REALTIME_CLOSE_WAIT);
}


static void
ngx_http_realtime_close_wait_handler(ngx_event_t *ev) noexcept
{
    ngx_http_realtime_session_t  *s;

    s = (ngx_http_realtime_session_t *) ev->data;

    ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                  s->eventsource
                      ? "realtime: client did not take the end of the event "
                        "stream in time"
                      : "realtime: no close reply from client in time");

    s->state = ngx_http_realtime_state_e::kDone;
    ngx_http_realtime_session_finish(s);
}


/* Writes as much queued output as the socket takes, in batches. */

static void
ngx_http_realtime_write(ngx_http_realtime_session_t *s)
{
    size_t                 i, n, taken;
    ngx_buf_t              bufs[NGX_HTTP_REALTIME_IOVS];
    ngx_chain_t            links[NGX_HTTP_REALTIME_IOVS], *rest;
    ngx_connection_t      *c;
    realtime::OutSlice     slices[NGX_HTTP_REALTIME_IOVS];

    c = s->connection;

    if (s->state == ngx_http_realtime_state_e::kDone) {
        return;
    }

    if (c->buffered) {
        /*
         * Before detaching: the 101 response is not fully sent yet, and
         * goes first. After: TLS holds bytes it could not write yet.
         */
        if (s->request) {
            if (ngx_http_output_filter(s->request, NULL) == NGX_ERROR) {
                s->state = ngx_http_realtime_state_e::kDone;
                return;
            }

        } else if (c->send_chain(c, NULL, 0) == NGX_CHAIN_ERROR) {
            c->error = 1;
            s->state = ngx_http_realtime_state_e::kDone;
            return;
        }

        if (c->buffered) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                s->state = ngx_http_realtime_state_e::kDone;
            }

            return;
        }
    }

    while (!s->out.empty() && c->write->ready) {

        n = s->out.gather(slices, NGX_HTTP_REALTIME_IOVS);
        if (n == 0) {
            s->out.consume(0);
            continue;
        }

        if (c->ssl == NULL && s->request == NULL) {
            /*
             * A plain socket after the upgrade: one sendmsg() of the
             * gathered frames, without nginx's chain (its writev() goes
             * through the VFS layer, fdget_pos and all, which sendmsg()
             * does not: measurable on the paced fan-out, bench/RESULTS).
             */
            ssize_t        sent;
            size_t         total = 0;
            struct iovec   iov[NGX_HTTP_REALTIME_IOVS];
            struct msghdr  mh;

            for (i = 0; i < n; i++) {
                iov[i].iov_base = (void *) slices[i].data;
                iov[i].iov_len = slices[i].size;
                total += slices[i].size;
            }

            if (n == 1) {
                /* one frame (a paced fan-out): send() skips copying an
                   iovec and a msghdr in from user space */
                sent = send(c->fd, iov[0].iov_base, total,
                            MSG_NOSIGNAL | MSG_DONTWAIT);

            } else {
                ngx_memzero(&mh, sizeof(struct msghdr));
                mh.msg_iov = iov;
                mh.msg_iovlen = n;

                sent = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
            }

            if (sent == -1) {
                ngx_err_t  err = ngx_socket_errno;

                if (err == NGX_EINTR) {
                    continue;
                }

                if (err == NGX_EAGAIN) {
                    c->write->ready = 0;
                    break;
                }

                c->error = 1;
                ngx_connection_error(c, err, n == 1 ? (char *) "send() failed"
                                                     : (char *) "sendmsg() failed");
                s->state = ngx_http_realtime_state_e::kDone;
                return;
            }

            c->sent += sent;
            s->out.consume((size_t) sent);

            if ((size_t) sent < total) {
                c->write->ready = 0;    /* the socket is full */
                break;
            }

            continue;
        }

        for (i = 0; i < n; i++) {
            ngx_memzero(&bufs[i], sizeof(ngx_buf_t));
            bufs[i].pos = (u_char *) slices[i].data;
            bufs[i].last = bufs[i].pos + slices[i].size;
            bufs[i].start = bufs[i].pos;
            bufs[i].end = bufs[i].last;
            bufs[i].memory = 1;

            links[i].buf = &bufs[i];
            links[i].next = (i + 1 < n) ? &links[i + 1] : NULL;
        }

        /* TLS buffers up to 16k unless told to flush: a batch goes now */
        bufs[n - 1].flush = 1;

        rest = c->send_chain(c, links, 0);

        if (rest == NGX_CHAIN_ERROR) {
            c->error = 1;
            s->state = ngx_http_realtime_state_e::kDone;
            return;
        }

        /*
         * What send_chain() took: written to the socket, or copied into
         * the TLS buffer (then c->buffered says so and it is pushed out
         * above, on the next write event).
         */
        taken = 0;

        for (i = 0; i < n; i++) {
            taken += bufs[i].pos - bufs[i].start;
        }

        s->out.consume(taken);

        if (rest != NULL || c->buffered) {
            break;      /* the socket is full */
        }
    }

    if (s->read_paused
        && s->out.reply_bytes() < NGX_HTTP_REALTIME_PAUSE_READING)
    {
        s->read_paused = false;
        ngx_post_event(c->read, &ngx_posted_events);
    }

    if (!s->out.empty()) {
        if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
            s->state = ngx_http_realtime_state_e::kDone;
        }

        return;
    }

    if (s->close_after_flush) {
        s->state = ngx_http_realtime_state_e::kDone;
        return;
    }

    if (s->closing() && s->parser.error().code && !s->write_shut && !c->ssl) {
        /*
         * Failed connection: our close frame is out. A FIN after it lets
         * the client finish at once instead of waiting for our timeout.
         */
        s->write_shut = true;
        (void) shutdown(c->fd, SHUT_WR);
    }
}


/*
 * Ends the connection once a handler decided so; s is gone afterwards.
 * Before detaching, through the request (pending 101, failed upgrade).
 */

void
ngx_http_realtime_session_finish(ngx_http_realtime_session_t *s) noexcept
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    if (s->state != ngx_http_realtime_state_e::kDone) {
        return;
    }

    c = s->connection;

    if (!s->detached) {
        r = s->request;
        s->out.clear();

        ngx_http_finalize_request(r, NGX_HTTP_CLOSE);
        ngx_http_run_posted_requests(c);
        return;
    }

    delete s;

    ngx_http_close_connection(c);
}


void
ngx_http_realtime_session_hold_input(ngx_http_realtime_session_t *s, bool hold)
    noexcept
{
    if (s->input_held == hold) {
        return;
    }

    s->input_held = hold;

    if (!hold && s->detached && !s->closing()) {
        /* edge-triggered: what arrived meanwhile is not reported again */
        ngx_post_event(s->connection->read, &ngx_posted_events);
    }
}


void
ngx_http_realtime_session_flush_later(ngx_http_realtime_session_t *s) noexcept
{
    ngx_http_realtime_worker_t  *w = &ngx_http_realtime_worker;

    if (!s->in_flush) {
        s->in_flush = true;
        ngx_queue_insert_tail(&w->flush_list, &s->flush_link.queue);
    }

    ngx_post_event(&w->drain_event, &ngx_posted_events);
}


void
ngx_http_realtime_session_flush(ngx_http_realtime_session_t *s) noexcept
{
    ngx_http_realtime_write(s);
    ngx_http_realtime_session_finish(s);
}


bool
ngx_http_realtime_session_text(ngx_http_realtime_session_t *s,
    std::string_view text, std::string_view id,
    ngx_http_realtime_frame_kind_e kind) noexcept
{
    realtime::SharedFrame  *f;

    f = s->eventsource
        ? ngx_http_realtime_event_frame(s->sse_chunked, id, text)
        : ngx_http_realtime_frame(realtime::ws::Opcode::kText, text);

    if (f == NULL) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: out of memory framing a message");
        ngx_http_realtime_session_close(s,
            realtime::ws::close_code::kInternalError, "out of memory");
        return false;
    }

    ngx_http_realtime_session_send(s, f, kind);
    realtime::release(f);

    return true;
}


realtime::SharedFrame *
ngx_http_realtime_event_frame(bool chunked, std::string_view id,
    std::string_view data) noexcept
{
    realtime::SharedFrame  *f;

    try {
        std::string  bytes = realtime::sse::event(id, data);

        if (chunked) {
            bytes = realtime::sse::chunk(bytes);
        }

        f = realtime::SharedFrame::create(bytes.size());
        if (f) {
            ngx_memcpy(f->data(), bytes.data(), bytes.size());
        }

    } catch (...) {
        f = NULL;
    }

    return f;
}


/* A server frame (never masked) holding payload, with one reference. */

realtime::SharedFrame *
ngx_http_realtime_frame(realtime::ws::Opcode op, std::string_view payload)
    noexcept
{
    size_t                  hlen;
    u_char                  header[realtime::ws::kMaxServerHeader + 4];
    realtime::SharedFrame  *f;

    hlen = realtime::ws::encode_header(header, op, payload.size());

    f = realtime::SharedFrame::create(hlen + payload.size());
    if (f == NULL) {
        return NULL;
    }

    ngx_memcpy(f->data(), header, hlen);
    if (payload.size()) {
        ngx_memcpy(f->data() + hlen, payload.data(), payload.size());
    }

    return f;
}
