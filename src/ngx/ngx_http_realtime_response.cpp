/*
 * ngx_realtime_module: JSON responses and response headers shared by the
 * handshake, publish and stats handlers.
 */

#include "ngx_http_realtime_module.h"

#include "core/publish_request.h"


ngx_int_t
ngx_http_realtime_add_header(ngx_http_request_t *r, const char *name,
    std::string_view value) noexcept
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


/*
 * Sends body as an application/json response and returns what a content
 * handler returns. The body is copied to the request pool.
 */

ngx_int_t
ngx_http_realtime_send_json(ngx_http_request_t *r, ngx_uint_t status,
    std::string_view body) noexcept
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_create_temp_buf(r->pool, body.size() + 1);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, body.data(), body.size());
    *b->last++ = '\n';
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    switch (status) {
    case 426:
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");
        break;
    case 507:
        ngx_str_set(&r->headers_out.status_line, "507 Insufficient Storage");
        break;
    default:
        break;
    }

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_realtime_send_error(ngx_http_request_t *r, ngx_uint_t status,
    std::string_view message) noexcept
{
    try {
        std::string  body = "{\"error\":" + realtime::json_quote(message) + "}";

        return ngx_http_realtime_send_json(r, status, body);

    } catch (...) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
