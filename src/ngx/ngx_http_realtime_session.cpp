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


#define NGX_HTTP_REALTIME_READ_BUF      16384
#define NGX_HTTP_REALTIME_READ_BUDGET   16      /* reads per event, fairness */
#define NGX_HTTP_REALTIME_PAUSE_READING 65536   /* own replies pending */
#define NGX_HTTP_REALTIME_IOVS          64


static void ngx_http_realtime_upgrade_handler(ngx_event_t *ev) noexcept;
static void ngx_http_realtime_detach(ngx_http_realtime_session_t *s);
static void ngx_http_realtime_session_cleanup(void *data) noexcept;
static void ngx_http_realtime_read_handler(ngx_event_t *rev) noexcept;
static void ngx_http_realtime_write_handler(ngx_event_t *wev) noexcept;
static void ngx_http_realtime_timer_handler(ngx_event_t *ev) noexcept;
static void ngx_http_realtime_process(ngx_http_realtime_session_t *s,
    u_char *data, size_t len);
static void ngx_http_realtime_flush(ngx_http_realtime_session_t *s);
static void ngx_http_realtime_schedule(ngx_http_realtime_session_t *s);
static void ngx_http_realtime_finish(ngx_http_realtime_session_t *s);
static bool ngx_http_realtime_queue(ngx_http_realtime_session_t *s,
    realtime::SharedFrame *f);
static bool ngx_http_realtime_reply(ngx_http_realtime_session_t *s,
    realtime::ws::Opcode op, std::string_view payload);
static realtime::SharedFrame *ngx_http_realtime_frame(
    realtime::ws::Opcode op, std::string_view payload) noexcept;


/* Per worker: input is parsed in place and never kept between reads. */
static u_char  ngx_http_realtime_read_buf[NGX_HTTP_REALTIME_READ_BUF];

/* Per worker: every connection's pings share one frame. */
static realtime::SharedFrame  *ngx_http_realtime_ping_frame;


ngx_http_realtime_session_t::ngx_http_realtime_session_t(
    ngx_http_request_t *r, ngx_http_realtime_loc_conf_t *lc) noexcept
    : request(r), connection(r->connection), conf(lc),
      parser(lc->max_message_size, true),
      timer(), last_rx(ngx_current_msec), last_data(ngx_current_msec),
      ping_sent(0), zone(lc->zone), jwt_exp(0), user(), flush_link{{NULL, NULL}, this},
      leftover(NULL), leftover_end(NULL),
      awaiting_pong(0), close_sent(0), close_received(0),
      close_after_flush(0), write_shut(0), read_paused(0), done(0),
      in_flush(0), counted(0)
{
    ngx_queue_init(&members);
}


ngx_http_realtime_session_t::~ngx_http_realtime_session_t()
{
    ngx_http_realtime_unlist(this);
    ngx_http_realtime_session_leave_all(this);

    if (timer.timer_set) {
        ngx_del_timer(&timer);
    }

    if (timer.posted) {
        ngx_delete_posted_event(&timer);
    }
}


ngx_http_realtime_session_t *
ngx_http_realtime_session_create(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf) noexcept
{
    ngx_pool_cleanup_t           *cln;
    ngx_http_realtime_session_t  *s;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    /* not from r->pool: the session outlives the request (see detach) */
    s = new (std::nothrow) ngx_http_realtime_session_t(r, rlcf);
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
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = s->request;
    c = r->connection;

    if (r->header_in && r->header_in->pos < r->header_in->last) {
        s->leftover = r->header_in->pos;
        s->leftover_end = r->header_in->last;
    }

    s->timer.handler = ngx_http_realtime_timer_handler;
    s->timer.data = s;
    s->timer.log = c->log;
    s->timer.cancelable = 1;    /* pings must not keep an exiting worker */

    c->log->action = (char *) "serving WebSocket";
    c->read->handler = ngx_http_realtime_upgrade_handler;
    c->write->handler = ngx_http_realtime_upgrade_handler;

    /* nginx -s quit/reload reaches idle connections: we answer with 1001 */
    c->idle = 1;

    /* the request outlives the content phase until we finalize it */
    r->main->count++;

    ngx_http_realtime_schedule(s);

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
        if (s->leftover) {
            u_char *p = s->leftover;
            s->leftover = NULL;
            s->last_rx = ngx_current_msec;
            ngx_http_realtime_process(s, p, s->leftover_end - p);
        }

        ngx_http_realtime_flush(s);

    } catch (...) {
        s->done = 1;
    }

    if (s->done || c->buffered) {
        /* done: finalize the request; buffered: wait for the 101 to go */
        ngx_http_realtime_finish(s);
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

    s->detached = 1;

    /* the access log line is written now, with status 101 */
    ngx_http_free_request(r, 0);

    s->request = NULL;
    c->data = s;
    c->destroyed = 0;
    c->log->action = (char *) "serving WebSocket";

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
        if ((c->close || ngx_exiting) && !s->close_sent) {
            c->close = 0;
            ngx_http_realtime_session_close(s, realtime::ws::close_code::kGoingAway,
                                            "server shutting down");
        }

        for (budget = NGX_HTTP_REALTIME_READ_BUDGET; !s->done; budget--) {

            if (s->out.bytes() >= NGX_HTTP_REALTIME_PAUSE_READING) {
                /* the peer does not read our replies: stop reading too */
                s->read_paused = 1;
                break;
            }

            if (budget == 0) {
                ngx_post_event(rev, &ngx_posted_events);
                break;
            }

            n = c->recv(c, ngx_http_realtime_read_buf,
                        NGX_HTTP_REALTIME_READ_BUF);

            if (n == NGX_AGAIN) {
                if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                    s->done = 1;
                }
                break;
            }

            if (n == 0 || n == NGX_ERROR) {
                if (!s->close_received) {
                    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                                  "realtime: client closed connection%s",
                                  s->close_sent ? " after our close frame"
                                                : " without a close frame");
                }

                c->error = (n == NGX_ERROR);
                s->done = 1;
                break;
            }

            s->last_rx = ngx_current_msec;
            s->awaiting_pong = 0;   /* any traffic proves the peer alive */
            ngx_http_realtime_process(s, ngx_http_realtime_read_buf, n);
        }

        ngx_http_realtime_flush(s);

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "realtime: out of memory while reading");
        s->done = 1;
    }

    ngx_http_realtime_finish(s);
}


static void
ngx_http_realtime_write_handler(ngx_event_t *wev) noexcept
{
    ngx_connection_t             *c;
    ngx_http_realtime_session_t  *s;

    c = (ngx_connection_t *) wev->data;
    s = ngx_http_realtime_get_session(c);

    ngx_http_realtime_flush(s);
    ngx_http_realtime_finish(s);
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
            s->done = 1;
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
    if (close_sent) {
        return true;    /* closing: data is no longer acted upon */
    }

    last_data = ngx_current_msec;

    if (conf->jwt_sources && op == realtime::ws::Opcode::kText
        && payload.size() > 2 && payload.size() <= 16384 && payload[0] == '{')
    {
        realtime::jwt::JsonPtr  msg(json_loadb(payload.data(), payload.size(),
                                               0, NULL));
        json_t  *type = msg ? json_object_get(msg.get(), "type") : NULL;

        if (json_is_string(type)
            && ngx_strcmp(json_string_value(type), "refresh") == 0)
        {
            ngx_http_realtime_session_refresh(this, msg.get());
            return true;
        }
    }

    if (conf->echo) {
        return ngx_http_realtime_reply(this, op, payload);
    }

    return true;
}


bool
ngx_http_realtime_session_t::on_ping(std::string_view payload)
{
    if (close_sent) {
        return true;    /* no control frames after our close (5.5.1) */
    }

    return ngx_http_realtime_reply(this, realtime::ws::Opcode::kPong, payload);
}


/* Sends one frame back; when memory runs out, closes with 1011. */

static bool
ngx_http_realtime_reply(ngx_http_realtime_session_t *s,
    realtime::ws::Opcode op, std::string_view payload)
{
    realtime::SharedFrame  *f;

    f = ngx_http_realtime_frame(op, payload);
    if (f == NULL) {
        ngx_http_realtime_session_close(s,
            realtime::ws::close_code::kInternalError, "out of memory");
        return false;
    }

    ngx_http_realtime_session_send(s, f);
    realtime::release(f);

    return true;
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

    close_received = 1;
    close_after_flush = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, connection->log, 0,
                   "realtime: client close %ui", (ngx_uint_t) code);

    if (close_sent) {
        return false;   /* the reply to our close: done once flushed */
    }

    /* echo the status code back, then close TCP (RFC 6455 5.5.1, 7.1.1) */
    f = ngx_http_realtime_frame(realtime::ws::Opcode::kClose,
            code == realtime::ws::close_code::kNoStatus
                ? std::string()
                : realtime::ws::close_payload(code, std::string_view()));
    if (f == NULL) {
        done = 1;
        return false;
    }

    close_sent = 1;
    ngx_http_realtime_queue(this, f);
    realtime::release(f);

    return false;
}


/* Queues f whatever the state; false when out of memory (s is done). */

static bool
ngx_http_realtime_queue(ngx_http_realtime_session_t *s,
    realtime::SharedFrame *f)
{
    if (s->out.push(f)) {
        return true;
    }

    ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                  "realtime: out of memory queuing a frame");
    s->done = 1;

    return false;
}


void
ngx_http_realtime_session_send(ngx_http_realtime_session_t *s,
    realtime::SharedFrame *f) noexcept
{
    /* nothing may follow a close frame (RFC 6455 5.5.1) */
    if (s->done || s->close_sent) {
        return;
    }

    if (!ngx_http_realtime_queue(s, f)) {
        return;
    }

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


void
ngx_http_realtime_session_close(ngx_http_realtime_session_t *s, uint16_t code,
    std::string_view reason) noexcept
{
    realtime::SharedFrame  *f;

    if (s->close_sent || s->done) {
        return;
    }

    try {
        f = ngx_http_realtime_frame(realtime::ws::Opcode::kClose,
                                    realtime::ws::close_payload(code, reason));
    } catch (...) {
        f = NULL;
    }

    if (f == NULL) {
        s->done = 1;
        return;
    }

    s->close_sent = 1;
    ngx_http_realtime_queue(s, f);
    realtime::release(f);

    /*
     * Wait a bounded time for the client's close. The timer is not
     * cancelable: a worker that is shutting down lets the handshake end.
     */
    s->timer.cancelable = 0;
    ngx_add_timer(&s->timer, NGX_HTTP_REALTIME_CLOSE_WAIT);
}


/* Writes as much queued output as the socket takes, in batches. */

static void
ngx_http_realtime_flush(ngx_http_realtime_session_t *s)
{
    size_t                 i, n, taken;
    ngx_buf_t              bufs[NGX_HTTP_REALTIME_IOVS];
    ngx_chain_t            links[NGX_HTTP_REALTIME_IOVS], *rest;
    ngx_connection_t      *c;
    realtime::OutSlice     slices[NGX_HTTP_REALTIME_IOVS];

    c = s->connection;

    if (s->done) {
        return;
    }

    if (c->buffered) {
        /*
         * Before detaching: the 101 response is not fully sent yet, and
         * goes first. After: TLS holds bytes it could not write yet.
         */
        if (s->request) {
            if (ngx_http_output_filter(s->request, NULL) == NGX_ERROR) {
                s->done = 1;
                return;
            }

        } else if (c->send_chain(c, NULL, 0) == NGX_CHAIN_ERROR) {
            c->error = 1;
            s->done = 1;
            return;
        }

        if (c->buffered) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                s->done = 1;
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
            s->done = 1;
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

    if (!s->out.empty()) {
        if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
            s->done = 1;
        }

        return;
    }

    if (s->close_after_flush) {
        s->done = 1;
        return;
    }

    if (s->parser.error().code && s->close_sent && !s->write_shut && !c->ssl) {
        /*
         * Failed connection: our close frame is out. A FIN after it lets
         * the client finish at once instead of waiting for our timeout.
         */
        s->write_shut = 1;
        (void) shutdown(c->fd, SHUT_WR);
    }

    if (s->read_paused) {
        s->read_paused = 0;
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/*
 * The one timer of a connection. While open it sends pings and enforces
 * the pong and idle deadlines; once our close frame is out it bounds the
 * wait for the client's reply.
 */

static void
ngx_http_realtime_timer_handler(ngx_event_t *ev) noexcept
{
    ngx_msec_t                     now;
    ngx_http_realtime_session_t   *s;
    ngx_http_realtime_loc_conf_t  *conf;

    s = (ngx_http_realtime_session_t *) ev->data;
    conf = s->conf;
    now = ngx_current_msec;

    if (s->close_sent) {
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "realtime: no close reply from client in time");
        s->done = 1;
        ngx_http_realtime_finish(s);
        return;
    }

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

    if (conf->ping_interval && !s->awaiting_pong
        && now - s->last_rx >= conf->ping_interval)
    {
        if (ngx_http_realtime_ping_frame == NULL) {
            ngx_http_realtime_ping_frame = ngx_http_realtime_frame(
                realtime::ws::Opcode::kPing, std::string_view());
        }

        if (ngx_http_realtime_ping_frame) {
            s->awaiting_pong = 1;
            s->ping_sent = now;
            ngx_http_realtime_session_send(s, ngx_http_realtime_ping_frame);
        }
    }

    ngx_http_realtime_schedule(s);

done:

    ngx_http_realtime_flush(s);
    ngx_http_realtime_finish(s);
}


/* Arms the timer for the nearest of the ping, pong and idle deadlines. */

static void
ngx_http_realtime_schedule(ngx_http_realtime_session_t *s)
{
    ngx_msec_t                     now, at, t;
    ngx_http_realtime_loc_conf_t  *conf;

    conf = s->conf;
    now = ngx_current_msec;
    at = 0;

    if (s->close_sent) {
        return;
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
        return;
    }

    t = (ngx_msec_int_t) (at - now) > 0 ? at - now : 1;

    ngx_add_timer(&s->timer, t);
}


/*
 * Ends the connection once a handler decided so; s is gone afterwards.
 * Before detaching, through the request (pending 101, failed upgrade).
 */

static void
ngx_http_realtime_finish(ngx_http_realtime_session_t *s)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    if (!s->done) {
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
ngx_http_realtime_session_flush(ngx_http_realtime_session_t *s) noexcept
{
    ngx_http_realtime_flush(s);
    ngx_http_realtime_finish(s);
}


void
ngx_http_realtime_session_reschedule(ngx_http_realtime_session_t *s) noexcept
{
    ngx_http_realtime_schedule(s);
}


realtime::SharedFrame *
ngx_http_realtime_text_frame(std::string_view payload) noexcept
{
    return ngx_http_realtime_frame(realtime::ws::Opcode::kText, payload);
}


/* A server frame (never masked) holding payload, with one reference. */

static realtime::SharedFrame *
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
