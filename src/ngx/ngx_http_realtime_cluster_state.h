/*
 * ngx_realtime_module: what a worker holds for a zone with realtime_redis,
 * shared by the subscriber's file (cluster) and the publisher's
 * (cluster_publish). Private to them.
 */

#pragma once

#include "ngx_http_realtime_cluster.h"

#include <deque>
#include <set>
#include <string>

#include "ngx_http_realtime_redis.h"


struct ngx_http_realtime_cluster_batch_t;


struct ngx_http_realtime_cluster_t {
    ngx_http_realtime_zone_t          *zone;
    ngx_http_realtime_redis_link_t     cmd;
    ngx_http_realtime_redis_link_t     sub;
    bool                               subscriber;
    uint64_t                           seen_changes;
    std::set<std::string>             *groups;     /* subscribed to */
    std::string                       *node_channel;
    ngx_event_t                        check;
    ngx_msec_t                         hb_sent;    /* 0: none on its way */
    uint64_t                           hb_sent_us;

    /* publishes waiting for their fence, oldest (lowest fence) first */
    uint64_t                           fences;
    std::deque<ngx_http_realtime_cluster_batch_t *>  *waiting;
    ngx_event_t                        fence_ev;
    bool                               flushing;   /* exiting: no waiting */

    /* counted here, added to the zone's once a second */
    uint64_t                           published;
    uint64_t                           received;
    uint64_t                           dropped;
    uint64_t                           local_only;
    uint64_t                           latency_us; /* 0: nothing new */
    bool                               local_logged;

    /* presence across nodes (ngx_http_realtime_cluster_presence.cpp) */
    uint64_t                           presence_sent;
    ngx_uint_t                         presence_inflight;
    std::set<std::string>             *presence_snapshots; /* to ask for */
    bool                               presence_resync;
    bool                               presence_tick_sent;
    bool                               presence_error_logged;
};


/* the publisher's part of init_process / exit_process */
ngx_int_t ngx_http_realtime_cluster_publish_init(
    ngx_http_realtime_cluster_t *cl, ngx_log_t *log) noexcept;
void ngx_http_realtime_cluster_publish_exit(ngx_http_realtime_cluster_t *cl)
    noexcept;


static inline uint64_t
ngx_http_realtime_now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}
