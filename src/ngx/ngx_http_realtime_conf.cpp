/*
 * ngx_realtime_module: helpers shared by the directive parsers.
 */

#include "ngx_http_realtime_module.h"


/*
 * A directive that takes a list (realtime_subprotocols a b c;): every
 * argument is kept, and repeating the directive adds to the list.
 */

char *
ngx_http_realtime_set_str_list(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_str_t     *value, *s;
    ngx_uint_t     i;
    ngx_array_t  **a;

    a = (ngx_array_t **) ((char *) conf + cmd->offset);

    if (*a == NGX_CONF_UNSET_PTR) {
        *a = ngx_array_create(cf->pool, cf->args->nelts - 1, sizeof(ngx_str_t));
        if (*a == NULL) {
            return (char *) NGX_CONF_ERROR;
        }
    }

    value = (ngx_str_t *) cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        s = (ngx_str_t *) ngx_array_push(*a);
        if (s == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


/* The directive's arguments as complex values (they may hold variables). */

ngx_array_t *
ngx_http_realtime_compile_args(ngx_conf_t *cf) noexcept
{
    ngx_str_t                         *value;
    ngx_uint_t                         i;
    ngx_array_t                       *a;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    a = ngx_array_create(cf->pool, cf->args->nelts - 1,
                         sizeof(ngx_http_complex_value_t));
    if (a == NULL) {
        return NULL;
    }

    value = (ngx_str_t *) cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        cv = (ngx_http_complex_value_t *) ngx_array_push(a);
        if (cv == NULL) {
            return NULL;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
        ccv.cf = cf;
        ccv.value = &value[i];
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NULL;
        }
    }

    return a;
}


/*
 * "$jwt_claim_NAME" or "${jwt_claim_NAME}" alone: the argument may stand
 * for a whole array claim. Sets claim to NAME, or to the empty string.
 */

void
ngx_http_realtime_claim_argument(ngx_str_t *arg, ngx_str_t *claim)
{
    size_t   n;
    u_char  *p, *last;

    p = arg->data;
    last = p + arg->len;
    ngx_str_null(claim);

    if (arg->len > 2 && p[0] == '$' && p[1] == '{' && last[-1] == '}') {
        p += 2;
        last--;

    } else if (arg->len > 1 && p[0] == '$') {
        p++;

    } else {
        return;
    }

    n = sizeof("jwt_claim_") - 1;

    if ((size_t) (last - p) <= n || ngx_strncmp(p, "jwt_claim_", n) != 0) {
        return;
    }

    for (u_char *c = p + n; c < last; c++) {
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
              || (*c >= '0' && *c <= '9') || *c == '_'))
        {
            return;
        }
    }

    claim->data = p + n;
    claim->len = last - p - n;
}
