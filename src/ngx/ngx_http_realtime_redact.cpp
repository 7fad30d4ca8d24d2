/*
 * ngx_realtime_module: tokens kept out of the logs.
 *
 * Browsers cannot set headers on a WebSocket, so pages pass the JWT in the
 * query string (?token=). The request line then holds a credential, and
 * nginx logs that line as $request in the access log and as the
 * request: "..." context of every error log line about the request, ours
 * included. Once the location is known, every value its realtime_auth_jwt
 * sources give is replaced in r->request_line by "[redacted]".
 *
 * The preaccess phase is the first one that runs with the final location
 * and before allow/deny, auth_request and our content handler can refuse
 * (and log) anything; the content handler redacts again for requests that
 * did not go through the phases (it costs one search when done already).
 */

#include "ngx_http_realtime_redact.h"

#include "ngx_http_realtime_auth.h"


#define NGX_HTTP_REALTIME_REDACTED  "[redacted]"

/*
 * Shorter values cannot be a signed token (three base64url parts with a
 * signature of 32+ bytes), and replacing them would garble the line.
 */
#define NGX_HTTP_REALTIME_REDACT_MIN  8


static ngx_int_t ngx_http_realtime_redact_handler(ngx_http_request_t *r)
    noexcept;
static ngx_int_t ngx_http_realtime_redact_value(ngx_http_request_t *r,
    std::string_view value) noexcept;


ngx_int_t
ngx_http_realtime_redact_init(ngx_conf_t *cf) noexcept
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = (ngx_http_core_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = (ngx_http_handler_pt *)
            ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_realtime_redact_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_realtime_redact_handler(ngx_http_request_t *r) noexcept
{
    ngx_http_realtime_loc_conf_t  *rlcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    rlcf = (ngx_http_realtime_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_realtime_module);

    if (rlcf->websocket && rlcf->jwt_sources) {
        if (ngx_http_realtime_redact(r, rlcf) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return NGX_DECLINED;
}


/*
 * Replaces every occurrence of every non-empty source value in the request
 * line. Each source is evaluated, not only the one that is used: a later
 * one may hold a token too.
 */

ngx_int_t
ngx_http_realtime_redact(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf) noexcept
{
    ngx_str_t                  token;
    ngx_uint_t                 i;
    ngx_http_complex_value_t  *cv;

    if (rlcf->jwt_sources == NULL || r->request_line.len == 0) {
        return NGX_OK;
    }

    cv = (ngx_http_complex_value_t *) rlcf->jwt_sources->elts;

    for (i = 0; i < rlcf->jwt_sources->nelts; i++) {
        if (ngx_http_realtime_token_source(r, &cv[i], &token) != NGX_OK) {
            return NGX_ERROR;
        }

        if (token.len < NGX_HTTP_REALTIME_REDACT_MIN) {
            continue;
        }

        if (ngx_http_realtime_redact_value(r, ngx_http_realtime_sv(token))
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The new line is a copy in the request's pool: the original buffer stays
 * as it is, because r->args, r->unparsed_uri ($args, $arg_token,
 * $request_uri) and the token itself point into it and are read later.
 */

static ngx_int_t
ngx_http_realtime_redact_value(ngx_http_request_t *r, std::string_view value)
    noexcept
{
    size_t            n, len, at, from;
    u_char           *p, *copy;
    std::string_view  line;

    static const std::string_view  redacted = NGX_HTTP_REALTIME_REDACTED;

    line = ngx_http_realtime_sv(r->request_line);

    n = 0;

    for (at = line.find(value); at != std::string_view::npos;
         at = line.find(value, at + value.size()))
    {
        n++;
    }

    if (n == 0) {
        return NGX_OK;
    }

    len = line.size() - n * value.size() + n * redacted.size();

    copy = (u_char *) ngx_pnalloc(r->pool, len);
    if (copy == NULL) {
        return NGX_ERROR;
    }

    p = copy;
    from = 0;

    for (at = line.find(value); at != std::string_view::npos;
         at = line.find(value, from))
    {
        p = ngx_cpymem(p, line.data() + from, at - from);
        p = ngx_cpymem(p, redacted.data(), redacted.size());
        from = at + value.size();
    }

    p = ngx_cpymem(p, line.data() + from, line.size() - from);

    r->request_line.data = copy;
    r->request_line.len = p - copy;

    return NGX_OK;
}
