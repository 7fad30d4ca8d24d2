/*
 * ngx_realtime_module: the content handler of realtime_websocket, which
 * answers the opening handshake and hands the connection to a session.
 */

#pragma once

#include "ngx_http_realtime_module.h"


ngx_int_t ngx_http_realtime_ws_handler(ngx_http_request_t *r) noexcept;
