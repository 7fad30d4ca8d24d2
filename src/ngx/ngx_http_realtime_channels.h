/*
 * ngx_realtime_module: taking part in a Django Channels layer
 * (channels_redis 4) so that Django's unchanged
 * channel_layer.group_send(group, {...}) reaches the browsers connected to
 * this node (realtime_channels_redis, realtime_channels_event).
 *
 * layer=core (RedisChannelLayer): the node is a channel-layer process. For
 * every group with subscribers here it adds the channel
 * "specific.<client_prefix>!<group>" to the group's sorted set
 * "<prefix>:group:<group>", and it drains its inbox, the sorted set
 * "<prefix>specific.<client_prefix>!", with BZPOPMIN/ZPOPMIN.
 *
 * layer=pubsub (RedisPubSubChannelLayer): it SUBSCRIBEs to
 * "<prefix>__group__<group>" for every group with subscribers here.
 *
 * Either way, each message (msgpack) is mapped to a frame
 * (realtime::channels::map_event, with the realtime_channels_event rules)
 * and published into the zone's group(s), on this node only. One worker
 * per node holds the links, elected through the zone.
 */

#pragma once

#include "ngx_http_realtime_module.h"
#include "ngx_http_realtime_redis.h"


#define NGX_HTTP_REALTIME_CHANNELS_CORE    0
#define NGX_HTTP_REALTIME_CHANNELS_PUBSUB  1


/* realtime_channels_redis URL [zone=NAME] [prefix=asgi] [layer=core|pubsub]
   [expiry=60s] [group_expiry=1d] [capacity=100] [timeout=1s]; */
struct ngx_http_realtime_channels_conf_t {
    ngx_http_realtime_redis_conf_t  redis;     /* the links' address and
                                                  per-command timeout */
    ngx_str_t                       prefix;    /* the layer's, "asgi" */
    ngx_uint_t                      layer;
    time_t                          expiry;        /* s */
    time_t                          group_expiry;  /* s */
    ngx_uint_t                      capacity;
};


char *ngx_http_realtime_channels_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;

/* realtime_channels_event TYPE [type=NEW|-] [keep=..] [rename=..] [drop=..]
   [value=KEY]; or TYPE off; */
char *ngx_http_realtime_channels_event_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf) noexcept;

/* init_process / exit_process / the worker's once-a-second tick */
ngx_int_t ngx_http_realtime_channels_init(ngx_cycle_t *cycle) noexcept;
void ngx_http_realtime_channels_exit(ngx_cycle_t *cycle) noexcept;
void ngx_http_realtime_channels_tick(void) noexcept;

/* ,"channels":{...} for realtime_stats, or "". May throw std::bad_alloc. */
std::string ngx_http_realtime_channels_stats(ngx_http_realtime_zone_t *z);
