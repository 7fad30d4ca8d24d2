/*
 * ngx_realtime_module: the Lua scripts of a zone with realtime_redis that
 * number, keep and read back the messages of groups with history (see the
 * .cpp for the keys), and the names they use.
 */

#pragma once

#include "ngx_http_realtime_module.h"

#include <string>
#include <string_view>


/* The scripts every command link loads when it connects. */
void ngx_http_realtime_cluster_scripts(const ngx_str_t **scripts,
    ngx_uint_t *n) noexcept;

/* Their SHA1s for EVALSHA (after the call above). */
const char *ngx_http_realtime_cluster_publish_sha(void) noexcept;
const char *ngx_http_realtime_cluster_read_sha(void) noexcept;

/* "PREFIX:<kind>:GROUP": 's' the seq hash, 'h' the stream. May throw. */
std::string ngx_http_realtime_cluster_key(ngx_http_realtime_zone_t *z,
    char kind, std::string_view group);

/* An epoch as the scripts write it (hex); 0: not one. */
uint64_t ngx_http_realtime_cluster_parse_epoch(const char *s, size_t len)
    noexcept;

/* A reply that says the server lost our scripts (SCRIPT FLUSH, a failover
   to a server that never had them): the link is made again, which loads
   them. True when it was one. */
bool ngx_http_realtime_cluster_noscript(struct ngx_http_realtime_redis_link_t *link,
    const struct redisReply *reply) noexcept;
