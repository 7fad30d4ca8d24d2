/*
 * ngx_realtime_module: declarations shared by the nginx glue files.
 * The only place (with the other src/ngx files) that sees nginx headers.
 */

#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <new>
#include <string_view>

#include "core/ws_handshake.h"


#define NGX_HTTP_REALTIME_CLOSE_WAIT  3000  /* ms to wait for the peer's close */


typedef struct {
    ngx_flag_t                  websocket;
    ngx_array_t                *subprotocols;      /* of ngx_str_t */
    ngx_array_t                *allowed_origins;   /* of ngx_str_t */
    size_t                      max_message_size;
    size_t                      send_buffer_size;
    ngx_msec_t                  ping_interval;
    ngx_msec_t                  pong_timeout;
    ngx_msec_t                  idle_timeout;
    ngx_flag_t                  echo;

    /* built at merge time from the arrays above */
    realtime::ws::HandshakePolicy  *policy;
} ngx_http_realtime_loc_conf_t;


extern "C" ngx_module_t  ngx_realtime_module;


ngx_int_t ngx_http_realtime_ws_handler(ngx_http_request_t *r) noexcept;

/* Takes over r's connection after the 101 has been queued. */
ngx_int_t ngx_http_realtime_session_start(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf) noexcept;


static inline std::string_view
ngx_http_realtime_sv(const ngx_str_t &s)
{
    return std::string_view((const char *) s.data, s.len);
}


/*
 * Constructs a T in pool memory and registers its destructor as a pool
 * cleanup, so C++ objects live exactly as long as the nginx object they
 * belong to. Returns NULL on allocation failure; T's constructor must not
 * throw.
 */
template <class T, class... Args>
T *
ngx_http_realtime_pool_new(ngx_pool_t *pool, Args &&...args) noexcept
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, sizeof(T));
    if (cln == NULL) {
        return NULL;
    }

    T *obj = new (cln->data) T(static_cast<Args &&>(args)...);

    cln->handler = [](void *data) { static_cast<T *>(data)->~T(); };

    return obj;
}
