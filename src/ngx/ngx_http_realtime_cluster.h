/*
 * ngx_realtime_module: several nodes (nginx instances) sharing their
 * groups through Redis (realtime_redis).
 *
 * Every worker has a command link per zone (connected at first need) on
 * which it PUBLISHes; one worker per node, elected through the zone,
 * also holds the subscriber link: it SUBSCRIBEs to the channels of the
 * groups that have subscribers on this node and publishes what other
 * nodes sent into the local zone, as a publish here would.
 */

#pragma once

#include "ngx_http_realtime_module.h"

#include "core/publish_request.h"


/* init_process / exit_process of the zones that have realtime_redis */
ngx_int_t ngx_http_realtime_cluster_init(ngx_cycle_t *cycle) noexcept;
void ngx_http_realtime_cluster_exit(ngx_cycle_t *cycle) noexcept;

/* Once a second (the worker's safety timer): the subscriber's election
   and lease, its heartbeat, idle pings, counters into the zone. */
void ngx_http_realtime_cluster_tick(void) noexcept;

/* nodes: the largest PUBLISH reply (nodes that took the message, this
   one's subscriber included); -1: Redis did not take them all. ids: one
   per message and group of the request, in order (item-major): the id
   Redis gave it, {0, 0} without history. */
typedef void (*ngx_http_realtime_cluster_done_pt)(void *data, int64_t nodes,
    const realtime::MessageId *ids);

/*
 * PUBLISHes every message of req to each of its groups (pipelined) and
 * calls done once, after the last reply, never during this call. With
 * history_size, each message is numbered and kept in Redis (the publish
 * script) and every node keeps it in its history with that id.
 * NGX_DECLINED at once when the link is down (done is not called).
 */
ngx_int_t ngx_http_realtime_cluster_publish(ngx_http_realtime_zone_t *z,
    const realtime::PublishRequest &req, uint32_t history_size,
    uint32_t history_ttl, ngx_http_realtime_cluster_done_pt done, void *data)
    noexcept;

/*
 * A message published here already (a client's, an app's answer) goes to
 * the other nodes too, fire and forget; with the link down it stays here
 * (counted, logged once per outage). Internal groups ("~...") stay here.
 */
void ngx_http_realtime_cluster_forward(ngx_http_realtime_zone_t *z,
    const std::string_view *groups, size_t ngroups, std::string_view payload,
    bool is_string) noexcept;

/* n messages stayed on this node (Redis unavailable): counted, and said
   once per outage. */
void ngx_http_realtime_cluster_local_only(ngx_http_realtime_zone_t *z,
    size_t n) noexcept;

/*
 * This worker's publishes waiting for their fence are answered if it came
 * back (the drain after a wake-up from the subscriber that saw it).
 */
void ngx_http_realtime_cluster_fences(void) noexcept;

/* The subscriber sends the presence changes the zone's outbox holds (the
   drain after a wake-up). */
void ngx_http_realtime_cluster_presence_drain_all(void) noexcept;

/*
 * GET ?presence= with realtime_redis. The zone knows a group's users on
 * every node only when this node follows the group (it has subscribers
 * there, or a snapshot of it was applied): _local says so. Otherwise the
 * answer is built from Redis' hash of the group: done(data, json) later,
 * json NULL when Redis did not answer. NGX_DECLINED: not asked (the link
 * is down); done is not called.
 */
bool ngx_http_realtime_cluster_presence_local(ngx_http_realtime_zone_t *z,
    std::string_view group) noexcept;

typedef void (*ngx_http_realtime_cluster_answer_pt)(void *data,
    const std::string *json);

ngx_int_t ngx_http_realtime_cluster_presence_query(ngx_http_realtime_zone_t *z,
    std::string_view group, ngx_uint_t max,
    ngx_http_realtime_cluster_answer_pt done, void *data) noexcept;

/* ,"redis":{...} for realtime_stats, or "" without realtime_redis. May
   throw std::bad_alloc. */
std::string ngx_http_realtime_cluster_stats(ngx_http_realtime_zone_t *z);
