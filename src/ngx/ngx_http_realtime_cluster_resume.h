/*
 * ngx_realtime_module: a resume that this node's history cannot answer
 * (realtime_redis), answered from the group's stream in Redis.
 *
 * This node's history of a group is complete only from the moment its
 * subscription to the group's channel was confirmed: a client that comes
 * back here after being served by another node, or to a group this node
 * did not follow, needs Redis. The handshake then waits (the request is
 * suspended, nothing is sent yet):
 *
 *   1. the groups are held (subscribed on the request's behalf) until
 *      Redis confirms this node's subscription: from then on every new
 *      message of the group reaches this node;
 *   2. the messages after the client's id are read from the stream;
 *   3. the handshake runs again, joins, and replays what Redis gave, then
 *      what reached this node since (the local history past the last id
 *      read). Messages up to that id that reach this node later are not
 *      given again (the session's floors).
 *
 * Redis down, or not answering within realtime_redis timeout=: the resume
 * is answered from this node alone, as without realtime_redis.
 */

#pragma once

#include "ngx_http_realtime_session.h"


/* One group's messages after the client's id, as Redis had them. */
struct ngx_http_realtime_fetched_t {
    struct entry_t {
        uint64_t     seq;
        bool         is_string;
        std::string  payload;
    };

    std::string               group;
    realtime::MessageId       after;      /* epoch 0: everything kept */
    uint64_t                  epoch = 0;  /* the group's in Redis */
    enum { kUnknown, kCovered, kLost }  state = kUnknown;
    uint64_t                  last = 0;   /* the last seq Redis gave */
    std::vector<entry_t>      entries;
};

struct ngx_http_realtime_fetched_set_t {
    std::vector<ngx_http_realtime_fetched_t>  groups;
};


/*
 * Before the join. NGX_OK: go on (nothing to fetch, or fetched already);
 * NGX_AGAIN: suspended (the request's count is taken), the content handler
 * runs again when Redis answered; NGX_ERROR.
 */
ngx_int_t ngx_http_realtime_cluster_resume(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s, const ngx_array_t *groups) noexcept;

/* What the fetch gave for group and after, or NULL. */
const ngx_http_realtime_fetched_t *ngx_http_realtime_cluster_fetched(
    ngx_http_realtime_session_t *s, std::string_view group,
    realtime::MessageId after) noexcept;


/*
 * Reads group's stream in Redis after after (epoch 0: everything kept);
 * done gets it once, later (state kUnknown: no answer). NGX_DECLINED at
 * once when the link is down (done is not called).
 */
typedef void (*ngx_http_realtime_cluster_read_pt)(void *data,
    const ngx_http_realtime_fetched_t *f);

ngx_int_t ngx_http_realtime_cluster_read(ngx_http_realtime_zone_t *z,
    std::string_view group, realtime::MessageId after,
    ngx_http_realtime_cluster_read_pt done, void *data) noexcept;
