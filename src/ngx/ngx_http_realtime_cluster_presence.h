/*
 * ngx_realtime_module: presence across nodes (realtime_redis), the
 * subscriber's part. Private to the cluster files; see
 * ngx_http_realtime_cluster_presence.cpp.
 */

#pragma once

#include "ngx_http_realtime_cluster_state.h"

#include <string>
#include <vector>


/* init_process: the zone's outbox is on */
void ngx_http_realtime_cluster_presence_init(ngx_http_realtime_cluster_t *cl)
    noexcept;

/* a "p..." message on a group channel (another node's delta) */
void ngx_http_realtime_cluster_presence_delta(ngx_http_realtime_cluster_t *cl,
    std::string_view channel, std::string_view text) noexcept;

/* an "s..." message on our node channel (a snapshot we asked for) */
void ngx_http_realtime_cluster_presence_snapshot(
    ngx_http_realtime_cluster_t *cl, std::string_view text) noexcept;

/* Redis confirmed a SUBSCRIBE: asks for the group's snapshot */
void ngx_http_realtime_cluster_presence_subscribed(
    ngx_http_realtime_cluster_t *cl, std::string_view channel) noexcept;

/* exit_process */
void ngx_http_realtime_cluster_presence_exit(ngx_http_realtime_cluster_t *cl)
    noexcept;

/* the subscriber link is up (again): our whole state goes out again */
void ngx_http_realtime_cluster_presence_resync(ngx_http_realtime_cluster_t *cl)
    noexcept;

/* under the lock, from the subscription walk: groups no longer followed
   here forget their remote holders */
void ngx_http_realtime_cluster_presence_forget(realtime::Registry &reg,
    const std::vector<std::string> &groups) noexcept;

/* the subscriber's second: heartbeat in the node set, expired nodes reaped */
void ngx_http_realtime_cluster_presence_tick(ngx_http_realtime_cluster_t *cl)
    noexcept;

/* sends what the outbox holds (the subscriber only) */
void ngx_http_realtime_cluster_presence_drain(ngx_http_realtime_cluster_t *cl)
    noexcept;
