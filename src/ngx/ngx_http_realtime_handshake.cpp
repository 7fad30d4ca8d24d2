/*
 * ngx_realtime_module: the content handler that answers the WebSocket
 * opening handshake. The decision itself is made by the core
 * (realtime::ws::check_handshake); this file gathers the request's headers,
 * sends either the 101 or a JSON error, and hands the connection over.
 */

#include "ngx_http_realtime_module.h"


static void ngx_http_realtime_collect(ngx_http_request_t *r,
    realtime::ws::HandshakeRequest *hr);
static ngx_int_t ngx_http_realtime_refuse(ngx_http_request_t *r,
    ngx_uint_t status, std::string_view reason);
static ngx_int_t ngx_http_realtime_add_header(ngx_http_request_t *r,
    const char *name, std::string_view value);


ngx_int_t
ngx_http_realtime_ws_handler(ngx_http_request_t *r) noexcept
{
    ngx_int_t                      rc;
    ngx_http_realtime_loc_conf_t  *rlcf;

    if (r != r->main) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rlcf = (ngx_http_realtime_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_realtime_module);

    try {
        realtime::ws::HandshakeRequest  hr;

        ngx_http_realtime_collect(r, &hr);

        realtime::ws::HandshakeResult res =
            realtime::ws::check_handshake(hr, *rlcf->policy);

        if (res.status == 101
            && (r->headers_in.content_length_n > 0 || r->headers_in.chunked))
        {
            res.status = 400;
            res.reason = "WebSocket handshake must not have a body";
        }

        if (res.status != 101) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "realtime: handshake refused with %d: %*s",
                          res.status, res.reason.size(), res.reason.data());

            if (res.status == NGX_HTTP_NOT_ALLOWED) {
                if (ngx_http_realtime_add_header(r, "Allow", "GET") != NGX_OK) {
                    return NGX_HTTP_INTERNAL_SERVER_ERROR;
                }
            }

            if (res.status == 426) {
                if (ngx_http_realtime_add_header(r, "Upgrade", "websocket")
                        != NGX_OK
                    || ngx_http_realtime_add_header(r, "Sec-WebSocket-Version",
                                                    "13") != NGX_OK)
                {
                    return NGX_HTTP_INTERNAL_SERVER_ERROR;
                }
            }

            return ngx_http_realtime_refuse(r, res.status, res.reason);
        }

        r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
        ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
        r->headers_out.content_length_n = -1;
        r->keepalive = 0;

        if (ngx_http_realtime_add_header(r, "Upgrade", "websocket") != NGX_OK
            || ngx_http_realtime_add_header(r, "Sec-WebSocket-Accept",
                                            res.accept) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (!res.subprotocol.empty()
            && ngx_http_realtime_add_header(r, "Sec-WebSocket-Protocol",
                                            res.subprotocol) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "realtime: handshake failed: out of memory");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    /* push the 101 to the socket now, as ngx_http_upstream_upgrade() does */
    if (ngx_http_send_special(r, NGX_HTTP_FLUSH) == NGX_ERROR) {
        return NGX_ERROR;
    }

    return ngx_http_realtime_session_start(r, rlcf);
}


/* Gathers what check_handshake() needs; every occurrence of a header counts. */

static void
ngx_http_realtime_collect(ngx_http_request_t *r,
    realtime::ws::HandshakeRequest *hr)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    hr->method = ngx_http_realtime_sv(r->method_name);
    hr->http_major = (int) (r->http_version / 1000);
    hr->http_minor = (int) (r->http_version % 1000);

    part = &r->headers_in.headers.part;
    h = (ngx_table_elt_t *) part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = (ngx_table_elt_t *) part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        std::string_view  name = ngx_http_realtime_sv(h[i].key);
        std::string_view  value = ngx_http_realtime_sv(h[i].value);

#define ngx_http_realtime_is(n)                                               \
        (name.size() == sizeof(n) - 1                                         \
         && ngx_strncasecmp((u_char *) name.data(), (u_char *) n,             \
                            sizeof(n) - 1) == 0)

        if (ngx_http_realtime_is("Upgrade")) {
            hr->upgrade.push_back(value);

        } else if (ngx_http_realtime_is("Connection")) {
            hr->connection.push_back(value);

        } else if (ngx_http_realtime_is("Sec-WebSocket-Key")) {
            hr->key.push_back(value);

        } else if (ngx_http_realtime_is("Sec-WebSocket-Version")) {
            hr->version.push_back(value);

        } else if (ngx_http_realtime_is("Sec-WebSocket-Protocol")) {
            hr->protocols.push_back(value);

        } else if (ngx_http_realtime_is("Origin")) {
            hr->has_origin = true;
            hr->origin = value;
        }

#undef ngx_http_realtime_is
    }
}


static ngx_int_t
ngx_http_realtime_add_header(ngx_http_request_t *r, const char *name,
    std::string_view value)
{
    ngx_table_elt_t  *h;

    h = (ngx_table_elt_t *) ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);

    h->value.data = (u_char *) ngx_pnalloc(r->pool, value.size());
    if (h->value.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(h->value.data, value.data(), value.size());
    h->value.len = value.size();

    return NGX_OK;
}


/* Answers a refused handshake with {"error": "..."}. */

static ngx_int_t
ngx_http_realtime_refuse(ngx_http_request_t *r, ngx_uint_t status,
    std::string_view reason)
{
    size_t        len;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* reasons are static ASCII text without quotes or backslashes */
    len = sizeof("{\"error\":\"\"}\n") - 1 + reason.size();

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, "{\"error\":\"", sizeof("{\"error\":\"") - 1);
    b->last = ngx_cpymem(b->last, reason.data(), reason.size());
    b->last = ngx_cpymem(b->last, "\"}\n", sizeof("\"}\n") - 1);
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    if (status == 426) {
        /* nginx has no reason phrase for 426 */
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");
    }
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
