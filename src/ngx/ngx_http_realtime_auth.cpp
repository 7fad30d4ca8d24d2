/*
 * ngx_realtime_module: authenticated handshakes.
 *
 * A JWT taken from the first non-empty realtime_auth_jwt source is verified
 * in the worker (realtime::jwt, OpenSSL) before the 101; its claims become
 * $jwt_claim_NAME / $jwt_header_NAME, which realtime_subscribe and
 * realtime_user use. Session-cookie apps use nginx's auth_request instead,
 * which runs in the access phase, before our content handler.
 */

#include "ngx_http_realtime_auth.h"

#include "ngx_http_realtime_heartbeat.h"

#include <string>
#include <vector>

#include "core/publish_request.h"


static ngx_int_t ngx_http_realtime_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept;
static ngx_int_t ngx_http_realtime_user_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept;
static ngx_int_t ngx_http_realtime_protocol_token_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data)
    noexcept;
static char *ngx_http_realtime_identity_names(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *conf);
static json_t *ngx_http_realtime_json_member(json_t *object,
    const ngx_str_t *name);
static ngx_int_t ngx_http_realtime_jwt_cache_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept;


static ngx_http_variable_t  ngx_http_realtime_vars[] = {

    { ngx_string("jwt_claim_"), NULL, ngx_http_realtime_claim_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

    { ngx_string("jwt_header_"), NULL, ngx_http_realtime_claim_variable,
      1, NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

    { ngx_string("realtime_user"), NULL, ngx_http_realtime_user_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("realtime_jwt_cache"), NULL,
      ngx_http_realtime_jwt_cache_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("realtime_protocol_token"), NULL,
      ngx_http_realtime_protocol_token_variable,
      0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


#define NGX_HTTP_REALTIME_TOKEN_PROTOCOL  "bearer."


/*
 * This worker's caches of verified tokens, one per location (its keys and
 * policy), made at the location's first token and freed at exit: a reload
 * starts new workers, and so empty caches.
 */

static std::vector<ngx_http_realtime_loc_conf_t *>
    *ngx_http_realtime_jwt_caches;


ngx_int_t
ngx_http_realtime_add_variables(ngx_conf_t *cf) noexcept
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_realtime_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* realtime_auth_jwt source ... | off; */

char *
ngx_http_realtime_auth_jwt(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_str_t  *value;

    if (rlcf->jwt_sources != NGX_CONF_UNSET_PTR) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        rlcf->jwt_sources = NULL;
        return NGX_CONF_OK;
    }

    rlcf->jwt_sources = ngx_http_realtime_compile_args(cf);
    if (rlcf->jwt_sources == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * realtime_auth_jwt_key_file file;  (repeatable: key rotation)
 * Keys are read now, so a bad file fails "nginx -t" with its line.
 */

char *
ngx_http_realtime_auth_jwt_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_str_t  *value, path;

    value = (ngx_str_t *) cf->args->elts;
    path = value[1];

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    if (rlcf->jwt_keys == NULL) {
        rlcf->jwt_keys =
            ngx_http_realtime_pool_new<realtime::jwt::KeySet>(cf->pool);
        if (rlcf->jwt_keys == NULL) {
            return (char *) NGX_CONF_ERROR;
        }
    }

    try {
        std::string  error;

        if (!rlcf->jwt_keys->load_file(
                std::string((char *) path.data, path.len), &error))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid JWT key file \"%V\": %s",
                               &path, error.c_str());
            return (char *) NGX_CONF_ERROR;
        }

    } catch (...) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "out of memory while loading JWT key file \"%V\"",
                           &path);
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * realtime_auth_jwt_cache size | off;
 * How many verified tokens each worker keeps for this location.
 */

char *
ngx_http_realtime_auth_jwt_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (rlcf->jwt_cache_size != NGX_CONF_UNSET) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        rlcf->jwt_cache_size = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR || n == 0 || n > NGX_HTTP_REALTIME_JWT_CACHE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid \"realtime_auth_jwt_cache\" \"%V\": "
                           "give a number of tokens from 1 to %d, or off",
                           &value[1], NGX_HTTP_REALTIME_JWT_CACHE_MAX);
        return (char *) NGX_CONF_ERROR;
    }

    rlcf->jwt_cache_size = n;

    return NGX_CONF_OK;
}


char *
ngx_http_realtime_merge_auth(ngx_conf_t *cf, ngx_http_realtime_loc_conf_t *prev,
    ngx_http_realtime_loc_conf_t *conf)
{
    ngx_str_t                         *alg;
    ngx_uint_t                         i;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    ngx_conf_merge_ptr_value(conf->jwt_sources, prev->jwt_sources, NULL);
    ngx_conf_merge_ptr_value(conf->jwt_algorithms, prev->jwt_algorithms, NULL);
    ngx_conf_merge_sec_value(conf->jwt_leeway, prev->jwt_leeway, 0);
    ngx_conf_merge_value(conf->jwt_cache_size, prev->jwt_cache_size,
                         NGX_HTTP_REALTIME_JWT_CACHE_DEFAULT);
    ngx_conf_merge_str_value(conf->jwt_issuer, prev->jwt_issuer, "");
    ngx_conf_merge_str_value(conf->jwt_audience, prev->jwt_audience, "");
    ngx_conf_merge_uint_value(conf->max_connections_per_user,
                              prev->max_connections_per_user, 0);

    if (conf->jwt_keys == NULL) {
        conf->jwt_keys = prev->jwt_keys;
    }

    if (conf->user == NULL) {
        conf->user = prev->user;
    }

    if (!conf->websocket) {
        return NGX_CONF_OK;
    }

    if (conf->jwt_sources) {
        if (conf->jwt_keys == NULL || conf->jwt_keys->empty()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"realtime_auth_jwt\" needs at least one "
                               "\"realtime_auth_jwt_key_file\"");
            return (char *) NGX_CONF_ERROR;
        }

        conf->jwt_policy =
            ngx_http_realtime_pool_new<realtime::jwt::Policy>(cf->pool);
        if (conf->jwt_policy == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        try {
            conf->jwt_policy->leeway = conf->jwt_leeway;
            conf->jwt_policy->issuer.assign((char *) conf->jwt_issuer.data,
                                            conf->jwt_issuer.len);
            conf->jwt_policy->audience.assign(
                (char *) conf->jwt_audience.data, conf->jwt_audience.len);

            if (conf->jwt_algorithms) {
                alg = (ngx_str_t *) conf->jwt_algorithms->elts;

                for (i = 0; i < conf->jwt_algorithms->nelts; i++) {
                    auto a = realtime::jwt::parse_alg(
                                 ngx_http_realtime_sv(alg[i]));
                    if (!a) {
                        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                           "unknown JWT algorithm \"%V\"",
                                           &alg[i]);
                        return (char *) NGX_CONF_ERROR;
                    }

                    conf->jwt_policy->algorithms.push_back(*a);
                }
            }

        } catch (...) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "out of memory while building the JWT policy");
            return (char *) NGX_CONF_ERROR;
        }

        /* the default identity of a JWT connection is its subject */
        if (conf->user == NULL) {
            cv = (ngx_http_complex_value_t *)
                     ngx_pcalloc(cf->pool, sizeof(ngx_http_complex_value_t));
            if (cv == NULL) {
                return (char *) NGX_CONF_ERROR;
            }

            static ngx_str_t  sub = ngx_string("$jwt_claim_sub");

            ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
            ccv.cf = cf;
            ccv.value = &sub;
            ccv.complex_value = cv;

            if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                return (char *) NGX_CONF_ERROR;
            }

            conf->user = cv;
        }

        return ngx_http_realtime_identity_names(cf, conf);
    }

    return NGX_CONF_OK;
}


/*
 * After the 101 the request is gone, so realtime_user and the groups
 * cannot be evaluated again for a refreshed token. Instead a refresh must
 * leave unchanged every claim and header field they name directly, and
 * "sub": then they would evaluate the same. Collected here, per location.
 */

static char *
ngx_http_realtime_identity_names(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *conf)
{
    bool                       failed;
    ngx_str_t                 *name;
    ngx_uint_t                 i;
    ngx_http_complex_value_t  *cv;

    static ngx_str_t  sub = ngx_string("sub");

    conf->identity_claims = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
    conf->identity_headers = ngx_array_create(cf->pool, 1, sizeof(ngx_str_t));

    if (conf->identity_claims == NULL || conf->identity_headers == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    name = (ngx_str_t *) ngx_array_push(conf->identity_claims);
    if (name == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    *name = sub;

    failed = false;

    auto add = [cf, conf, &failed](std::string_view var) {
        size_t        n;
        ngx_str_t    *name;
        ngx_array_t  *a;

        /* nginx matches variable names case-insensitively */
        n = sizeof("jwt_claim_") - 1;

        if (var.size() > n
            && ngx_strncasecmp((u_char *) var.data(), (u_char *) "jwt_claim_",
                               n) == 0)
        {
            a = conf->identity_claims;

        } else {
            n = sizeof("jwt_header_") - 1;

            if (var.size() <= n
                || ngx_strncasecmp((u_char *) var.data(),
                                   (u_char *) "jwt_header_", n) != 0)
            {
                return false;
            }

            a = conf->identity_headers;
        }

        name = (ngx_str_t *) ngx_array_push(a);
        if (name == NULL) {
            failed = true;
            return true;
        }

        /* lowercased, as the variable's name: looked up the same way */
        name->len = var.size() - n;
        name->data = (u_char *) ngx_pnalloc(cf->pool, name->len);
        if (name->data == NULL) {
            failed = true;
            return true;
        }

        ngx_strlow(name->data, (u_char *) var.data() + n, name->len);

        return false;
    };

    ngx_http_realtime_each_variable(conf->user->value, add);

    if (conf->subscribe) {
        cv = (ngx_http_complex_value_t *) conf->subscribe->elts;

        for (i = 0; i < conf->subscribe->nelts && !failed; i++) {
            ngx_http_realtime_each_variable(cv[i].value, add);
        }
    }

    return failed ? (char *) NGX_CONF_ERROR : NGX_CONF_OK;
}


/*
 * Whether the browser sends this location's credential by itself, so that
 * any page the user visits could open the socket as the user (cross-site
 * WebSocket hijacking): a JWT source that reads a cookie, or auth_request,
 * which asks the app about the request's cookies. There the Origin must be
 * this host's unless realtime_allowed_origins says otherwise.
 */

ngx_flag_t
ngx_http_realtime_ambient_credentials(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *conf)
{
    bool                       cookie, seen_self;
    ngx_str_t                 *uri;
    ngx_uint_t                 i;
    ngx_module_t             **modules;
    ngx_http_conf_ctx_t       *ctx;
    ngx_http_complex_value_t  *cv;

    cookie = false;

    if (conf->jwt_sources) {
        cv = (ngx_http_complex_value_t *) conf->jwt_sources->elts;

        for (i = 0; i < conf->jwt_sources->nelts && !cookie; i++) {
            ngx_http_realtime_each_variable(cv[i].value,
                [&cookie](std::string_view var) {

                cookie = (var.size() > 7
                          && ngx_strncasecmp((u_char *) var.data(),
                                             (u_char *) "cookie_", 7) == 0)
                         || ngx_http_realtime_header_is(var, "http_cookie");
                return cookie;
            });
        }
    }

    if (cookie) {
        return 1;
    }

    /*
     * auth_request: its configuration is private to the module, but its
     * location configuration has begun with "ngx_str_t uri" (empty: off)
     * since nginx 1.5.4. The module is found by name, as it may be absent.
     * It cannot be built as a dynamic module, so it comes before us in
     * cycle->modules and its configuration for this location is merged
     * already (merging goes module by module): inherited values count.
     */

    modules = cf->cycle->modules;
    ctx = (ngx_http_conf_ctx_t *) cf->ctx;
    seen_self = false;

    for (i = 0; modules[i]; i++) {
        if (modules[i] == &ngx_realtime_module) {
            seen_self = true;
            continue;
        }

        if (modules[i]->type != NGX_HTTP_MODULE
            || ngx_strcmp(modules[i]->name,
                          "ngx_http_auth_request_module") != 0)
        {
            continue;
        }

        if (seen_self) {
            /*
             * Not merged yet, so not known: assume it is on, which only
             * means Origin must match Host where no list is given.
             */
            return 1;
        }

        uri = (ngx_str_t *) ctx->loc_conf[modules[i]->ctx_index];

        return uri != NULL && uri->len != 0;
    }

    return 0;
}


/* One realtime_auth_jwt source's value, "Bearer " stripped. */

ngx_int_t
ngx_http_realtime_token_source(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *token)
{
    if (ngx_http_complex_value(r, cv, token) != NGX_OK) {
        return NGX_ERROR;
    }

    if (token->len > 7
        && ngx_strncasecmp(token->data, (u_char *) "Bearer ", 7) == 0)
    {
        token->data += 7;
        token->len -= 7;
    }

    while (token->len && token->data[0] == ' ') {
        token->data++;
        token->len--;
    }

    return NGX_OK;
}


/*
 * The token: the first non-empty source. Returns NGX_DECLINED when every
 * source is empty.
 */

static ngx_int_t
ngx_http_realtime_token(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_str_t *token)
{
    ngx_uint_t                 i;
    ngx_http_complex_value_t  *cv;

    cv = (ngx_http_complex_value_t *) rlcf->jwt_sources->elts;

    for (i = 0; i < rlcf->jwt_sources->nelts; i++) {
        if (ngx_http_realtime_token_source(r, &cv[i], token) != NGX_OK) {
            return NGX_ERROR;
        }

        if (token->len) {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/*
 * The one way a token is verified (handshake and refresh): through this
 * worker's cache for the location, made now if it is the first token.
 * May throw std::bad_alloc.
 */

static realtime::jwt::Verified
ngx_http_realtime_jwt_verify(ngx_http_realtime_loc_conf_t *rlcf,
    std::string_view token, ngx_log_t *log)
{
    if (rlcf->jwt_cache == NULL && rlcf->jwt_cache_size > 0) {
        try {
            if (ngx_http_realtime_jwt_caches == NULL) {
                ngx_http_realtime_jwt_caches =
                    new std::vector<ngx_http_realtime_loc_conf_t *>();
            }

            ngx_http_realtime_jwt_caches->reserve(
                ngx_http_realtime_jwt_caches->size() + 1);
            rlcf->jwt_cache = new realtime::jwt::VerifiedCache(
                                  (size_t) rlcf->jwt_cache_size);
            ngx_http_realtime_jwt_caches->push_back(rlcf);

        } catch (...) {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "realtime: no memory for the JWT cache, "
                          "verifying every token");
            rlcf->jwt_cache_size = 0;
        }
    }

    /* the location is the scope: its keys and policy verified the entry */
    return realtime::jwt::verify_cached(rlcf->jwt_cache, (uintptr_t) rlcf,
                                        token, *rlcf->jwt_keys,
                                        *rlcf->jwt_policy,
                                        (int64_t) ngx_time());
}


void
ngx_http_realtime_auth_exit() noexcept
{
    if (ngx_http_realtime_jwt_caches == NULL) {
        return;
    }

    for (ngx_http_realtime_loc_conf_t *rlcf : *ngx_http_realtime_jwt_caches) {
        delete rlcf->jwt_cache;
        rlcf->jwt_cache = NULL;
    }

    delete ngx_http_realtime_jwt_caches;
    ngx_http_realtime_jwt_caches = NULL;
}


/*
 * Verifies the handshake's token into s. Returns NGX_OK, or the HTTP
 * status to refuse with and, in *refusal, the reason to answer.
 */

ngx_int_t
ngx_http_realtime_authenticate(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_http_realtime_session_t *s,
    std::string_view *refusal)
{
    ngx_int_t  rc;
    ngx_str_t  token;

    if (rlcf->jwt_sources == NULL) {
        return NGX_OK;
    }

    rc = ngx_http_realtime_token(r, rlcf, &token);

    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    realtime::jwt::Verified  v;

    if (rc == NGX_DECLINED) {
        v.reason = "no token";

    } else {
        v = ngx_http_realtime_jwt_verify(rlcf, ngx_http_realtime_sv(token),
                                         r->connection->log);
        s->jwt_cache_status = rlcf->jwt_cache == NULL ? 3 : v.cached ? 1 : 2;
    }

    if (!v.ok) {
        /* the reason only: a token is a credential and never logged */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "realtime: handshake refused with 401: %*s",
                      v.reason.size(), v.reason.data());

        /* RFC 6750 3.1: no error code when no token was presented */
        if (ngx_http_realtime_add_header(r, "WWW-Authenticate",
                                         rc == NGX_DECLINED
                                         ? "Bearer"
                                         : "Bearer error=\"invalid_token\"")
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        *refusal = v.reason;
        return NGX_HTTP_UNAUTHORIZED;
    }

    s->jwt_header = std::move(v.header);
    s->jwt_claims = std::move(v.claims);
    s->jwt_exp = v.exp;

    return NGX_OK;
}


/*
 * The connection's identity from realtime_user, copied into s->user: the
 * value lives in the request's pool, which is freed after the 101 while
 * the session goes on. Returns NGX_DECLINED for an empty user and
 * NGX_ABORT for one over NGX_HTTP_REALTIME_USER_MAX bytes (both 403).
 * May throw std::bad_alloc.
 */

ngx_int_t
ngx_http_realtime_identify(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_http_realtime_session_t *s)
{
    ngx_str_t  user;

    if (rlcf->user == NULL) {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, rlcf->user, &user) != NGX_OK) {
        return NGX_ERROR;
    }

    if (user.len > NGX_HTTP_REALTIME_USER_MAX) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "realtime: handshake refused with 403: "
                      "realtime_user is too long (%uz bytes, at most %d)",
                      user.len, NGX_HTTP_REALTIME_USER_MAX);
        return NGX_ABORT;
    }

    if (user.len == 0) {
        /*
         * Authenticated, but nobody named (a token without "sub", an auth
         * answer without the user header): groups built from the identity
         * (user_${jwt_claim_sub}_...) would be shared by all such clients.
         */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "realtime: handshake refused with 403: "
                      "realtime_user is empty");
        return NGX_DECLINED;
    }

    s->user.assign((const char *) user.data, user.len);

    return NGX_OK;
}


/*
 * Why a verified token may not replace the connection's: empty when it
 * may. It must name the same identity and groups (every claim and header
 * field in identity_claims/identity_headers JSON-equal, or absent from
 * both), and must not lift an expiry.
 */

static std::string
ngx_http_realtime_refresh_changes(ngx_http_realtime_session_t *s,
    realtime::jwt::Verified *v)
{
    json_t                        *was, *now;
    ngx_str_t                     *name;
    ngx_uint_t                     i, k;
    ngx_array_t                   *names;
    ngx_http_realtime_loc_conf_t  *rlcf;

    rlcf = s->conf;

    for (k = 0; k < 2; k++) {
        names = k == 0 ? rlcf->identity_claims : rlcf->identity_headers;

        if (names == NULL) {
            continue;
        }

        name = (ngx_str_t *) names->elts;

        for (i = 0; i < names->nelts; i++) {
            was = ngx_http_realtime_json_member(
                      k == 0 ? s->jwt_claims.get() : s->jwt_header.get(),
                      &name[i]);
            now = ngx_http_realtime_json_member(
                      k == 0 ? v->claims.get() : v->header.get(), &name[i]);

            if (was == NULL && now == NULL) {
                continue;
            }

            if (was && now && json_equal(was, now)) {
                continue;
            }

            if (k == 0 && name[i].len == 3
                && ngx_strncmp(name[i].data, "sub", 3) == 0)
            {
                return "the new token is for another subject";
            }

            return std::string(k == 0 ? "the new token changes claim \""
                                      : "the new token changes header \"")
                   + std::string((char *) name[i].data, name[i].len) + "\"";
        }
    }

    if (s->jwt_exp && v->exp == 0) {
        return "the new token does not expire";
    }

    return std::string();
}


/*
 * A member of a token's JSON object as $jwt_claim_NAME finds it: by exact
 * (lowercase) name, else case-insensitively (nginx lowercases variable
 * names).
 */

static json_t *
ngx_http_realtime_json_member(json_t *object, const ngx_str_t *name)
{
    const char  *key;
    json_t      *value;

    if (object == NULL) {
        return NULL;
    }

    json_object_foreach(object, key, value) {
        if (ngx_strlen(key) == name->len
            && ngx_strncmp(key, name->data, name->len) == 0)
        {
            return value;
        }
    }

    json_object_foreach(object, key, value) {
        if (ngx_strlen(key) == name->len
            && ngx_strncasecmp((u_char *) key, name->data, name->len) == 0)
        {
            return value;
        }
    }

    return NULL;
}


/*
 * {"type":"refresh","token":"..."} on an open connection: a valid token
 * for the same identity moves the expiry. The answer tells the client.
 */

void
ngx_http_realtime_auth_refresh(ngx_http_realtime_session_t *s,
    json_t *message) noexcept
{
    json_t                        *token;
    ngx_http_realtime_loc_conf_t  *rlcf;

    rlcf = s->conf;

    try {
        std::string  reply;

        token = json_object_get(message, "token");

        realtime::jwt::Verified  v;

        if (rlcf->jwt_sources == NULL) {
            v.reason = "authentication is not enabled here";

        } else if (!json_is_string(token)) {
            v.reason = "no token";

        } else {
            v = ngx_http_realtime_jwt_verify(
                    rlcf, std::string_view(json_string_value(token),
                                           json_string_length(token)),
                    s->connection->log);
        }

        std::string  changed;

        if (v.ok) {
            changed = ngx_http_realtime_refresh_changes(s, &v);

            if (!changed.empty()) {
                v.ok = false;
                v.reason = changed;
            }
        }

        if (v.ok) {
            s->jwt_header = std::move(v.header);
            s->jwt_claims = std::move(v.claims);
            s->jwt_exp = v.exp;

            reply = "{\"type\":\"refresh\",\"ok\":true,\"exp\":"
                    + std::to_string(v.exp) + "}";

            ngx_http_realtime_heartbeat_reschedule(s);

        } else {
            ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                          "realtime: token refresh refused: %*s",
                          v.reason.size(), v.reason.data());

            reply = "{\"type\":\"refresh\",\"ok\":false,\"error\":"
                    + realtime::json_quote(v.reason) + "}";
        }

        ngx_http_realtime_session_reply(s, realtime::ws::Opcode::kText, reply);

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: out of memory during token refresh");
    }
}


/* $jwt_claim_NAME and $jwt_header_NAME: from the connection's token. */

static ngx_int_t
ngx_http_realtime_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept
{
    ngx_str_t                    *var = (ngx_str_t *) data;
    size_t                        prefix;
    json_t                       *object;
    ngx_http_realtime_session_t  *s;

    v->not_found = 1;

    s = (ngx_http_realtime_session_t *)
            ngx_http_get_module_ctx(r->main, ngx_realtime_module);

    if (s == NULL || !s->jwt_claims) {
        return NGX_OK;
    }

    if (var->len > sizeof("jwt_claim_") - 1
        && ngx_strncmp(var->data, "jwt_claim_", sizeof("jwt_claim_") - 1) == 0)
    {
        prefix = sizeof("jwt_claim_") - 1;
        object = s->jwt_claims.get();

    } else {
        prefix = sizeof("jwt_header_") - 1;
        object = s->jwt_header.get();
    }

    try {
        std::string_view  name((char *) var->data + prefix, var->len - prefix);

        auto text = realtime::jwt::value_text(object, name);

        if (!text) {
            /* variable names are lowercased by nginx: match claims so too */
            const char  *key;
            json_t      *value;

            json_object_foreach(object, key, value) {
                size_t n = ngx_strlen(key);

                if (n == name.size()
                    && ngx_strncasecmp((u_char *) key, (u_char *) name.data(),
                                       n) == 0)
                {
                    text = realtime::jwt::value_text(object, key);
                    break;
                }
            }
        }

        if (!text) {
            return NGX_OK;
        }

        v->data = (u_char *) ngx_pnalloc(r->pool, text->size() + 1);
        if (v->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(v->data, text->data(), text->size());
        v->len = text->size();
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;

    } catch (...) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_realtime_user_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept
{
    ngx_http_realtime_session_t  *s;

    s = (ngx_http_realtime_session_t *)
            ngx_http_get_module_ctx(r->main, ngx_realtime_module);

    if (s == NULL || s->user.empty()) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) s->user.data();
    v->len = s->user.size();
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * $realtime_jwt_cache: whether the handshake's token was found in this
 * worker's cache (HIT), verified now (MISS, refused or not) or verified
 * with the cache off (BYPASS); empty without a token to check.
 */

static ngx_int_t
ngx_http_realtime_jwt_cache_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept
{
    static ngx_str_t  names[] = {
        ngx_null_string, ngx_string("HIT"), ngx_string("MISS"),
        ngx_string("BYPASS")
    };

    ngx_http_realtime_session_t  *s;

    s = (ngx_http_realtime_session_t *)
            ngx_http_get_module_ctx(r->main, ngx_realtime_module);

    if (s == NULL || s->jwt_cache_status == 0 || s->jwt_cache_status > 3) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = names[s->jwt_cache_status].data;
    v->len = names[s->jwt_cache_status].len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * Browsers cannot set headers on a WebSocket, but they can offer
 * subprotocols: a token offered as "bearer.<JWT>" is exposed here. (The
 * page must offer a real protocol from realtime_subprotocols too, which
 * the server selects.)
 */

static ngx_int_t
ngx_http_realtime_protocol_token_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data) noexcept
{
    std::string_view  token;

    ngx_http_realtime_each_header(r,
        [&token](std::string_view name, std::string_view value) {

        if (ngx_http_realtime_header_is(name, "Sec-WebSocket-Protocol")) {
            token = realtime::ws::find_prefixed_element(
                        value, NGX_HTTP_REALTIME_TOKEN_PROTOCOL);
        }

        return !token.empty();
    });

    if (token.empty()) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = (u_char *) token.data();
    v->len = token.size();
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * Evaluates a list of names (realtime_subscribe, realtime_allow_subscribe):
 * one per argument, given to add(); an argument that is just
 * $jwt_claim_NAME, where the claim is an array, gives one per element
 * (tokens that list their groups). Stops at the first add() that does not
 * return NGX_OK and returns what it returned.
 */

ngx_int_t
ngx_http_realtime_auth_names(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s, ngx_array_t *args, ngx_array_t *claims,
    ngx_int_t (*add)(ngx_http_request_t *r, void *ctx, ngx_str_t *value),
    void *ctx)
{
    size_t                     k;
    ngx_int_t                  rc;
    ngx_str_t                  value, *claim;
    ngx_uint_t                 i;
    json_t                    *array, *elt;
    ngx_http_complex_value_t  *cv;

    cv = (ngx_http_complex_value_t *) args->elts;
    claim = (ngx_str_t *) claims->elts;

    for (i = 0; i < args->nelts; i++) {

        array = NULL;

        if (claim[i].len && s->jwt_claims) {
            const char  *key;
            json_t      *v;

            /* as $jwt_claim_NAME: nginx lowercases names, so match so too */
            json_object_foreach(s->jwt_claims.get(), key, v) {
                if (ngx_strlen(key) == claim[i].len
                    && ngx_strncasecmp((u_char *) key, claim[i].data,
                                       claim[i].len) == 0)
                {
                    array = v;
                    break;
                }
            }

            if (!json_is_array(array)) {
                array = NULL;
            }
        }

        if (array) {
            json_array_foreach(array, k, elt) {
                if (json_is_string(elt)) {
                    value.data = (u_char *) json_string_value(elt);
                    value.len = json_string_length(elt);

                } else if (json_is_integer(elt)) {
                    value.data = (u_char *) ngx_pnalloc(r->pool, NGX_INT64_LEN);
                    if (value.data == NULL) {
                        return NGX_HTTP_INTERNAL_SERVER_ERROR;
                    }

                    value.len = ngx_sprintf(value.data, "%L",
                                            (int64_t) json_integer_value(elt))
                                - value.data;

                } else {
                    ngx_str_set(&value, "?");   /* invalid: refused below */
                }

                rc = add(r, ctx, &value);
                if (rc != NGX_OK) {
                    return rc;
                }
            }

            continue;
        }

        if (ngx_http_complex_value(r, &cv[i], &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = add(r, ctx, &value);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}
