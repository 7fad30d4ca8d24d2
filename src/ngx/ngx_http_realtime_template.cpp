/*
 * ngx_realtime_module: JSON templates over nginx variables.
 *
 * Template indexes 0-3 are the $presence_* names; index 4 + i is the i-th
 * entry of the main conf's template_vars, an nginx variable index. One
 * table for the whole http block lets a template written at the server
 * level serve every location below it.
 */

#include "ngx_http_realtime_template.h"


#define NGX_HTTP_REALTIME_TPL_EVENT   0
#define NGX_HTTP_REALTIME_TPL_GROUP   1
#define NGX_HTTP_REALTIME_TPL_USER    2
#define NGX_HTTP_REALTIME_TPL_INFO    3
#define NGX_HTTP_REALTIME_TPL_NGINX   4


char *
ngx_http_realtime_template_compile(ngx_conf_t *cf, ngx_str_t *text,
    bool presence, realtime::JsonTemplate **out) noexcept
{
    realtime::JsonTemplate          *tpl;
    ngx_http_realtime_main_conf_t   *rmcf;

    rmcf = (ngx_http_realtime_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_realtime_module);

    tpl = ngx_http_realtime_pool_new<realtime::JsonTemplate>(cf->pool);
    if (tpl == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    try {
        std::string  error;
        bool         failed = false;

        auto resolve = [&](std::string_view name) -> int {
            if (presence) {
                if (name == "presence_event") {
                    return NGX_HTTP_REALTIME_TPL_EVENT;
                }
                if (name == "presence_group") {
                    return NGX_HTTP_REALTIME_TPL_GROUP;
                }
                if (name == "presence_user") {
                    return NGX_HTTP_REALTIME_TPL_USER;
                }
                if (name == "presence_info") {
                    return NGX_HTTP_REALTIME_TPL_INFO;
                }
            }

            ngx_str_t  n;

            n.len = name.size();
            n.data = (u_char *) ngx_pnalloc(cf->pool, n.len);
            if (n.data == NULL) {
                failed = true;
                return -1;
            }

            ngx_memcpy(n.data, name.data(), n.len);

            /* unknown names are reported by nginx when variables are
               initialised, as for any other directive */
            ngx_int_t index = ngx_http_get_variable_index(cf, &n);
            if (index == NGX_ERROR) {
                failed = true;
                return -1;
            }

            ngx_int_t  *known = (ngx_int_t *) rmcf->template_vars.elts;

            for (ngx_uint_t i = 0; i < rmcf->template_vars.nelts; i++) {
                if (known[i] == index) {
                    return (int) (NGX_HTTP_REALTIME_TPL_NGINX + i);
                }
            }

            ngx_int_t  *slot = (ngx_int_t *) ngx_array_push(&rmcf->template_vars);
            if (slot == NULL) {
                failed = true;
                return -1;
            }

            *slot = index;

            return (int) (NGX_HTTP_REALTIME_TPL_NGINX
                          + rmcf->template_vars.nelts - 1);
        };

        if (!realtime::JsonTemplate::compile(ngx_http_realtime_sv(*text),
                                             resolve, tpl, &error))
        {
            if (!failed) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid JSON template \"%V\": %*s", text,
                                   error.size(), error.data());
            }

            return (char *) NGX_CONF_ERROR;
        }

    } catch (...) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "out of memory compiling \"%V\"", text);
        return (char *) NGX_CONF_ERROR;
    }

    *out = tpl;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_realtime_template_capture(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s, const realtime::JsonTemplate *tpl)
    noexcept
{
    size_t                          i;
    ngx_int_t                      *index;
    ngx_http_variable_value_t      *v;
    ngx_http_realtime_main_conf_t  *rmcf;

    if (tpl == NULL) {
        return NGX_OK;
    }

    rmcf = (ngx_http_realtime_main_conf_t *)
               ngx_http_get_module_main_conf(r, ngx_realtime_module);

    index = (ngx_int_t *) rmcf->template_vars.elts;

    try {
        if (s->vars.size() < rmcf->template_vars.nelts) {
            s->vars.resize(rmcf->template_vars.nelts);
            s->vars_set.resize(rmcf->template_vars.nelts, false);
        }

        for (int t : tpl->variables()) {
            if (t < NGX_HTTP_REALTIME_TPL_NGINX) {
                continue;
            }

            i = (size_t) (t - NGX_HTTP_REALTIME_TPL_NGINX);

            if (s->vars_set[i]) {
                continue;
            }

            v = ngx_http_get_indexed_variable(r, index[i]);

            if (v != NULL && !v->not_found) {
                s->vars[i].assign((const char *) v->data, v->len);
            }

            s->vars_set[i] = true;
        }

    } catch (...) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


std::string
ngx_http_realtime_template_render(const realtime::JsonTemplate *tpl,
    ngx_http_realtime_session_t *s, const ngx_http_realtime_presence_values_t *p)
{
    return tpl->render([s, p](int t) -> std::string_view {
        switch (t) {
        case NGX_HTTP_REALTIME_TPL_EVENT:
            return p ? p->event : std::string_view();
        case NGX_HTTP_REALTIME_TPL_GROUP:
            return p ? p->group : std::string_view();
        case NGX_HTTP_REALTIME_TPL_USER:
            return p ? p->user : std::string_view();
        case NGX_HTTP_REALTIME_TPL_INFO:
            return p ? p->info : std::string_view();
        default:
            size_t i = (size_t) (t - NGX_HTTP_REALTIME_TPL_NGINX);
            return i < s->vars.size() ? std::string_view(s->vars[i])
                                      : std::string_view();
        }
    });
}
