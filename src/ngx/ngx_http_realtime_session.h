/*
 * ngx_realtime_module: one upgraded WebSocket connection.
 *
 * The session knows the protocol and the socket: reading, parsing, writing
 * shared frames, the close handshake. Everything else reaches it through
 * the handlers it is given (what to do with a client message, what to
 * release when it goes) and through its public fields (group membership,
 * identity), which the files above it own.
 */

#pragma once

#include "ngx_http_realtime_module.h"

#include <memory>
#include <string>
#include <vector>

#include "core/rate_limit.h"
#include "core/send_queue.h"
#include "core/ws_frame.h"


struct ngx_http_realtime_fetched_set_t;

/* A group's messages a resume replayed from Redis, up to seq in epoch. */
struct ngx_http_realtime_floor_t {
    std::string                    group;
    uint64_t                       epoch;
    uint64_t                       seq;
};


struct ngx_http_realtime_session_t;
struct ngx_http_realtime_relay_stream_t;


/* What the layers above the session want to hear about. */
typedef struct {
    /* a complete data message from the client; false: stop processing */
    bool  (*message)(ngx_http_realtime_session_t *s, realtime::ws::Opcode op,
                     std::string_view payload);

    /* the session is going away: give back what it holds (groups, ...) */
    void  (*release)(ngx_http_realtime_session_t *s);
} ngx_http_realtime_session_handlers_t;


/* A link in the worker's list of connections with output to write. */
typedef struct {
    ngx_queue_t                         queue;
    ngx_http_realtime_session_t        *session;
} ngx_http_realtime_flush_link_t;


/* The protocol state of the connection. */
enum class ngx_http_realtime_state_e : uint8_t {
    kOpen,        /* data flows both ways */
    kClosing,     /* our close frame is queued: wait for the peer's */
    kDone         /* finalize at the next opportunity */
};


struct ngx_http_realtime_session_t final : public realtime::ws::FrameSink {

    ngx_http_realtime_session_t(ngx_http_request_t *r,
        ngx_http_realtime_loc_conf_t *conf,
        const ngx_http_realtime_session_handlers_t *handlers) noexcept;
    ~ngx_http_realtime_session_t();

    ngx_http_realtime_session_t(const ngx_http_realtime_session_t &) = delete;
    ngx_http_realtime_session_t &operator=(
        const ngx_http_realtime_session_t &) = delete;

    /* realtime::ws::FrameSink: what the parser decoded from the client */
    bool on_message(realtime::ws::Opcode op, std::string_view payload) override;
    bool on_ping(std::string_view payload) override;
    bool on_pong(std::string_view payload) override;
    bool on_close(uint16_t code, std::string_view reason) override;

    bool closing() const noexcept {
        return state != ngx_http_realtime_state_e::kOpen;
    }

    ngx_http_request_t            *request;     /* NULL once detached */
    ngx_connection_t              *connection;
    ngx_http_realtime_loc_conf_t  *conf;
    const ngx_http_realtime_session_handlers_t  *handlers;

    ngx_http_realtime_state_e      state = ngx_http_realtime_state_e::kOpen;

    /*
     * The transport: a WebSocket, or a Server-Sent Events stream (a plain
     * GET on a realtime_eventsource location), receive-only, whose bytes
     * are events (sse_chunked: each in an HTTP/1.1 chunk) instead of frames.
     */
    bool                           eventsource = false;
    bool                           sse_chunked = false;

    /*
     * Who deletes the session: the request's pool cleanup until the 101 is
     * out and the session detaches, then the session itself.
     */
    bool                           detached = false;

    bool                           close_received = false;
    bool                           close_after_flush = false;
    bool                           write_shut = false;     /* FIN sent */
    bool                           read_paused = false;    /* replies pile up */
    bool                           input_held = false;     /* a feature above
                                                              asks to stop
                                                              reading (relay
                                                              queue full) */

    /* the close code the connection ends with: the first close frame,
       ours or the client's; 0 until then (1006 if none ever comes) */
    uint16_t                       close_code = 0;

    /*
     * What a fan-out reads and writes for every connection it reaches
     * (groups.cpp's delivery, the flush list, write()), kept together
     * right after the fields above: a walk over thousands of connections
     * whose state has left the CPU's caches then misses on two or three
     * lines per connection instead of one per field (bench/RESULTS.md,
     * the paced fan-out).
     */
    uint64_t                       delivered = 0; /* last message stamp */
    uint64_t                       conn_id = 0;   /* shm_conn->id */
    uint64_t                       joined_at = 0; /* root->published when it
                                                     joined: older messages
                                                     come by replay, if at all */
    bool                           in_flush = false;
    ngx_http_realtime_flush_link_t flush_link;    /* worker's flush list */
    ngx_msec_t                     last_data;     /* data message either way */
    realtime::SendQueue            out;
    /* realtime_redis: per group the last id a resume replayed from Redis
       (cluster_resume.cpp): a message up to it that reaches this node
       later is not given again */
    std::vector<ngx_http_realtime_floor_t>            floors;

    realtime::ws::FrameParser      parser;

    /*
     * The one timer: ping, pong, idle and expiry deadlines (heartbeat), or
     * the wait for the peer's close frame.
     */
    ngx_event_t                    timer;
    ngx_msec_t                     last_rx;       /* any bytes from the client */
    ngx_msec_t                     ping_sent = 0;
    bool                           awaiting_pong = false;
    bool                           restart_pending = false;  /* a reload's
                                                     1012 is due on the timer */

    /* identity: owned copies, valid for the whole life of the session */
    realtime::jwt::JsonPtr         jwt_header;
    realtime::jwt::JsonPtr         jwt_claims;
    int64_t                        jwt_exp = 0;   /* 0: never expires */
    ngx_uint_t                     jwt_cache_status = 0;  /* of the handshake:
                                                     0 none, 1 HIT, 2 MISS,
                                                     3 BYPASS (cache off) */
    std::string                    user;          /* realtime_user */

    /* groups (ngx_http_realtime_groups.cpp) */
    ngx_http_realtime_zone_t      *zone;          /* NULL: no groups */
    ngx_queue_t                    members;       /* of ..._member_t */
    bool                           counted = false;  /* in the slot's count */
    realtime::ConnNode            *shm_conn = nullptr;  /* its zone record */
    ngx_uint_t                     handshake_groups = 0;  /* joined before
                                                             the 101 */

    /*
     * What the features above need of the handshake after it is gone
     * (client.cpp, presence.cpp), captured before the 101: the values of
     * the variables the location's JSON templates use (by index into the
     * main conf's template_vars), the groups client messages go to, the
     * subscribe patterns, and the fields stamped on client messages.
     */
    std::vector<std::string>       vars;
    std::vector<bool>              vars_set;
    std::vector<std::string>       client_groups;
    std::vector<std::string>       allow_patterns;
    realtime::jwt::JsonPtr         stamps;
    realtime::RateLimiter          rate;
    std::string                    presence_info; /* JSON, "" none */
    std::string                    resume_from;   /* realtime_resume_from */
    /* realtime_redis: what a resume read from Redis (cluster_resume.cpp) */
    std::shared_ptr<ngx_http_realtime_fetched_set_t>  fetched;
    ngx_http_realtime_relay_stream_t  *relay = nullptr;  /* relay.cpp */
    bool                           presence = false;  /* tracked (has user) */

    /* bytes that arrived with the handshake, not yet parsed (they live in
       the request's header buffer, so they are parsed before detaching) */
    u_char                        *leftover = nullptr;
    u_char                        *leftover_end = nullptr;
};


/*
 * Asks the CPU to load, ahead of use, what a fan-out touches of a session
 * (its first three lines: the fields above up to floors) or of its
 * connection (fd, write event, sent, buffered). A prefetch never faults;
 * the caller passes pointers it may read.
 */
static inline void
ngx_http_realtime_prefetch_session(const ngx_http_realtime_session_t *s)
{
    __builtin_prefetch((const char *) s);
    __builtin_prefetch((const char *) s + 64);
    __builtin_prefetch((const char *) s + 128);
}


static inline void
ngx_http_realtime_prefetch_connection(const ngx_connection_t *c)
{
    /* fd and write at the start, sent, ssl, buffered near the end */
    for (size_t off = 0; off < sizeof(ngx_connection_t); off += 64) {
        __builtin_prefetch((const char *) c + off);
    }
}


/* A session for r, owned by r's pool until it detaches; not yet serving. */
ngx_http_realtime_session_t *ngx_http_realtime_session_create(
    ngx_http_request_t *r, ngx_http_realtime_loc_conf_t *rlcf,
    const ngx_http_realtime_session_handlers_t *handlers) noexcept;

/* Takes over the connection once the 101 is queued; returns NGX_DONE. */
ngx_int_t ngx_http_realtime_session_start(ngx_http_realtime_session_t *s)
    noexcept;

/*
 * Queues a frame (taking a reference) and enforces the send buffer limit.
 * A data frame counts as activity for realtime_idle_timeout; a reply
 * (caused by the client's own input) counts towards pausing its reading.
 */
enum class ngx_http_realtime_frame_kind_e : uint8_t { kData, kReply, kControl };

void ngx_http_realtime_session_send(ngx_http_realtime_session_t *s,
    realtime::SharedFrame *f,
    ngx_http_realtime_frame_kind_e kind =
        ngx_http_realtime_frame_kind_e::kData) noexcept;

/*
 * A data frame written at once where nothing waits before it: an open,
 * detached, plain (no TLS) WebSocket whose queue is empty and whose socket
 * takes more. kWritten: all of it went out (nothing to flush); kQueued:
 * part went out, the rest is queued and the session must be flushed (its
 * socket is full: the flush waits for it); kNotTaken: nothing was done,
 * send and flush it as usual (the socket was full, or the session is not
 * in that state; a failed socket ends the session, as a write would).
 */
enum class ngx_http_realtime_send_now_e : uint8_t {
    kWritten, kQueued, kNotTaken
};

ngx_http_realtime_send_now_e ngx_http_realtime_session_send_now(
    ngx_http_realtime_session_t *s, realtime::SharedFrame *f) noexcept;

/*
 * Queues a text message the module itself sends (welcome, recovery notice,
 * a replayed message with its id) in the session's transport: a text frame,
 * or an SSE event with id (id is used by SSE only). False when out of
 * memory (the session is closing then).
 */
bool ngx_http_realtime_session_text(ngx_http_realtime_session_t *s,
    std::string_view text, std::string_view id = std::string_view(),
    ngx_http_realtime_frame_kind_e kind =
        ngx_http_realtime_frame_kind_e::kData) noexcept;

/* Frames payload and queues it as a reply; false when out of memory. An
   event stream gets text as an event and nothing else (it has no pongs). */
bool ngx_http_realtime_session_reply(ngx_http_realtime_session_t *s,
    realtime::ws::Opcode op, std::string_view payload) noexcept;

/*
 * Answers {"type":"error","error":code[,"group":group]} to the client, as
 * features do for a message they refuse (codes are listed in README).
 */
void ngx_http_realtime_session_error(ngx_http_realtime_session_t *s,
    std::string_view code, std::string_view group = std::string_view())
    noexcept;

/* Queues a close frame and waits (bounded) for the peer's reply. */
void ngx_http_realtime_session_close(ngx_http_realtime_session_t *s,
    uint16_t code, std::string_view reason) noexcept;

/*
 * Stops (hold) or resumes reading the client's socket for a feature above
 * (the relay's queue): what the client sends meanwhile waits in the
 * kernel, and TCP slows it down.
 */
void ngx_http_realtime_session_hold_input(ngx_http_realtime_session_t *s,
    bool hold) noexcept;

/* Writes what is queued at the worker's next flush, from outside the
   session's own handlers (s stays valid until then). */
void ngx_http_realtime_session_flush_later(ngx_http_realtime_session_t *s)
    noexcept;

/* Writes what is queued; ends the connection if the session is done
   (s may be gone afterwards). */
void ngx_http_realtime_session_flush(ngx_http_realtime_session_t *s) noexcept;

/* Ends the connection if the session is done; s may be gone afterwards. */
void ngx_http_realtime_session_finish(ngx_http_realtime_session_t *s)
    noexcept;

/* An SSE event (id, data), chunk-framed when chunked, with one
   reference; NULL when out of memory. */
realtime::SharedFrame *ngx_http_realtime_event_frame(bool chunked,
    std::string_view id, std::string_view data) noexcept;

/* A server frame (never masked) holding payload, with one reference;
   NULL when out of memory. */
realtime::SharedFrame *ngx_http_realtime_frame(realtime::ws::Opcode op,
    std::string_view payload) noexcept;
