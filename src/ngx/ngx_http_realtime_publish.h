/*
 * ngx_realtime_module: the content handler of realtime_publish.
 */

#pragma once

#include "ngx_http_realtime_module.h"

#include "core/publish_request.h"


ngx_int_t ngx_http_realtime_publish_handler(ngx_http_request_t *r) noexcept;

/* Publishes checked messages (the publish API's, or an app's answer to a
   relayed message), with the history of conf (the location published
   through); forward: also to the other nodes (realtime_redis): fire and
   forget, or, where conf keeps history, numbered by Redis first and
   published here when Redis answers (see publish_numbered). ids: the ids
   Redis gave (one per message and group). origin: the sending
   connection (echo off). May throw std::bad_alloc. */
ngx_int_t ngx_http_realtime_publish_items(ngx_http_realtime_zone_t *z,
    const ngx_http_realtime_loc_conf_t *conf,
    const realtime::PublishRequest &req, size_t *published, uint64_t *total,
    uint64_t *counts = nullptr, bool forward = true,
    const realtime::MessageId *ids = nullptr, uint64_t origin = 0);

/* Through Redis (numbered), then here; here at once when Redis is down.
   May throw std::bad_alloc. */
ngx_int_t ngx_http_realtime_publish_numbered(ngx_http_realtime_zone_t *z,
    const ngx_http_realtime_loc_conf_t *conf,
    const realtime::PublishRequest &req, uint64_t origin);
