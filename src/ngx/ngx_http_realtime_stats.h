/*
 * ngx_realtime_module: the content handler of realtime_stats.
 */

#pragma once

#include "ngx_http_realtime_module.h"


ngx_int_t ngx_http_realtime_stats_handler(ngx_http_request_t *r) noexcept;
