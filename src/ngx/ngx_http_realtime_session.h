/*
 * ngx_realtime_module: one upgraded WebSocket connection.
 */

#pragma once

#include "ngx_http_realtime_module.h"
#include "core/send_queue.h"
#include "core/ws_frame.h"


struct ngx_http_realtime_local_group_t;
struct ngx_http_realtime_session_t;


/* A connection's membership of a group: linked from both sides. */
typedef struct {
    ngx_queue_t                         in_group;    /* local group's list */
    ngx_queue_t                         in_session;  /* session's list */
    ngx_http_realtime_session_t        *session;
    ngx_http_realtime_local_group_t    *group;
} ngx_http_realtime_member_t;


/* A link in the worker's list of connections with output to write. */
typedef struct {
    ngx_queue_t                         queue;
    ngx_http_realtime_session_t        *session;
} ngx_http_realtime_flush_link_t;


struct ngx_http_realtime_session_t final : public realtime::ws::FrameSink {

    ngx_http_realtime_session_t(ngx_http_request_t *r,
                                ngx_http_realtime_loc_conf_t *conf) noexcept;
    ~ngx_http_realtime_session_t();

    /* realtime::ws::FrameSink: what the parser decoded from the client */
    bool on_message(realtime::ws::Opcode op, std::string_view payload) override;
    bool on_ping(std::string_view payload) override;
    bool on_pong(std::string_view payload) override;
    bool on_close(uint16_t code, std::string_view reason) override;

    ngx_http_request_t            *request;     /* NULL once detached */
    ngx_connection_t              *connection;
    ngx_http_realtime_loc_conf_t  *conf;

    realtime::ws::FrameParser      parser;
    realtime::SendQueue            out;

    /* ping, pong and idle deadlines; then the wait for the peer's close */
    ngx_event_t                    timer;
    ngx_msec_t                     last_rx;     /* any bytes from the client */
    ngx_msec_t                     last_data;   /* data message either way */
    ngx_msec_t                     ping_sent;

    ngx_http_realtime_zone_t      *zone;        /* NULL: no groups */

    /* identity: the verified token, if any, and realtime_user */
    realtime::jwt::JsonPtr         jwt_header;
    realtime::jwt::JsonPtr         jwt_claims;
    int64_t                        jwt_exp;     /* 0: never expires */
    std::string                    user;        /* own copy: outlives r */

    ngx_queue_t                    members;     /* of ..._member_t */
    ngx_http_realtime_flush_link_t flush_link;  /* worker's flush list */

    /* bytes that arrived with the handshake, not yet parsed (they live in
       the request's header buffer, so they are parsed before detaching) */
    u_char                        *leftover;
    u_char                        *leftover_end;

    unsigned                       awaiting_pong:1;
    unsigned                       close_sent:1;      /* close frame queued */
    unsigned                       close_received:1;
    unsigned                       close_after_flush:1;
    unsigned                       write_shut:1;
    unsigned                       read_paused:1;
    unsigned                       done:1;            /* finalize now */
    unsigned                       in_flush:1;
    unsigned                       detached:1;        /* request freed */
    unsigned                       counted:1;         /* in slot's connections */
};


/* Queues a frame (taking a reference) and enforces the send buffer limit. */
void ngx_http_realtime_session_send(ngx_http_realtime_session_t *s,
    realtime::SharedFrame *f) noexcept;

/* Queues a close frame and waits for the peer's reply. */
void ngx_http_realtime_session_close(ngx_http_realtime_session_t *s,
    uint16_t code, std::string_view reason) noexcept;

/* Joins groups in the zone and this worker's fan-out lists (before 101). */
ngx_int_t ngx_http_realtime_session_subscribe(ngx_http_realtime_session_t *s,
    ngx_array_t *groups, ngx_str_t *limit_key, ngx_uint_t limit) noexcept;

/* Writes what is queued and ends the request if the session is done. */
void ngx_http_realtime_session_flush(ngx_http_realtime_session_t *s) noexcept;

/* Leaves every group (destructor, and later unsubscribe). */
void ngx_http_realtime_session_leave_all(ngx_http_realtime_session_t *s)
    noexcept;

/* A session for r, owned by r's pool; not yet serving. */
ngx_http_realtime_session_t *ngx_http_realtime_session_create(
    ngx_http_request_t *r, ngx_http_realtime_loc_conf_t *rlcf) noexcept;

/* Takes over the connection once the 101 is queued; returns NGX_DONE. */
ngx_int_t ngx_http_realtime_session_start(ngx_http_realtime_session_t *s)
    noexcept;

/* Re-arms the timer after a deadline moved (token refresh). */
void ngx_http_realtime_session_reschedule(ngx_http_realtime_session_t *s)
    noexcept;

/* A text frame holding payload, with one reference; NULL when out of memory. */
realtime::SharedFrame *ngx_http_realtime_text_frame(std::string_view payload)
    noexcept;

/* authentication (ngx_http_realtime_auth.cpp) */
ngx_int_t ngx_http_realtime_authenticate(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_http_realtime_session_t *s,
    std::string_view *refusal);
ngx_int_t ngx_http_realtime_identify(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_http_realtime_session_t *s);
void ngx_http_realtime_session_refresh(ngx_http_realtime_session_t *s,
    json_t *message) noexcept;

/* Takes s off the worker's flush list (it is going away). */
void ngx_http_realtime_unlist(ngx_http_realtime_session_t *s) noexcept;
