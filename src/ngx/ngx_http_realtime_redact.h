/*
 * ngx_realtime_module: tokens kept out of the logs. In locations with
 * realtime_auth_jwt, the token's value is replaced by [redacted] in the
 * request line nginx logs (a copy: the request's own buffers are intact).
 */

#pragma once

#include "ngx_http_realtime_module.h"


/* Registers the preaccess handler (postconfiguration). */
ngx_int_t ngx_http_realtime_redact_init(ngx_conf_t *cf) noexcept;

/* Redacts r's logged request line now (the WebSocket handler). */
ngx_int_t ngx_http_realtime_redact(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf) noexcept;
