/*
 * ngx_realtime_module: client messages.
 *
 *   realtime_client_publish GROUP ... [echo=on|off] [types=T,...] [max_size=SIZE];
 *   realtime_client_stamp FIELD VALUE [as=json] | FIELD off;
 *   realtime_client_rate N r/s [burst=B];
 *   realtime_app_ping on|off;
 *   realtime_welcome JSON;
 *   realtime_allow_subscribe PATTERN ...;
 *
 * Everything a message needs of the handshake (groups, stamps, patterns)
 * is evaluated before the 101 and kept in the session: after it the
 * request and its variables are gone.
 */

#include "ngx_http_realtime_client.h"

#include "core/group_name.h"
#include "core/json_text.h"
#include "core/publish_request.h"
#include "core/ws_frame.h"
#include "ngx_http_realtime_auth.h"
#include "ngx_http_realtime_cluster.h"
#include "ngx_http_realtime_groups.h"
#include "ngx_http_realtime_history.h"
#include "ngx_http_realtime_presence.h"
#include "ngx_http_realtime_publish.h"
#include "ngx_http_realtime_template.h"
#include "ngx_http_realtime_worker.h"


#define NGX_HTTP_REALTIME_CLIENT_MAX_SIZE   16384
#define NGX_HTTP_REALTIME_MAX_DYNAMIC       100   /* groups joined in-band */


/* Types the module answers or sends itself: no client may broadcast them. */
static const char  *ngx_http_realtime_reserved_types[] = {
    "ping", "pong", "refresh", "subscribe", "subscribed", "unsubscribe",
    "unsubscribed", "presence", "error",
};


bool
ngx_http_realtime_client_reserved(std::string_view type) noexcept
{
    for (const char *t : ngx_http_realtime_reserved_types) {
        if (type == t) {
            return true;
        }
    }

    return false;
}


bool
ngx_http_realtime_client_takes(ngx_http_realtime_loc_conf_t *conf,
    json_t *message) noexcept
{
    json_t      *type;
    ngx_str_t   *allowed;
    ngx_uint_t   i;

    if (conf->client_types == NULL) {
        return true;
    }

    type = message ? json_object_get(message, "type") : NULL;

    if (!json_is_string(type)) {
        return false;
    }

    std::string_view  t(json_string_value(type), json_string_length(type));

    allowed = (ngx_str_t *) conf->client_types->elts;

    for (i = 0; i < conf->client_types->nelts; i++) {
        if (ngx_http_realtime_sv(allowed[i]) == t) {
            return true;
        }
    }

    return false;
}


/* realtime_client_publish GROUP ... [echo=on|off] [types=T,...] [max_size=SIZE]; */

char *
ngx_http_realtime_client_publish_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    u_char                            *p, *last, *start;
    ssize_t                            size;
    ngx_str_t                         *value, *type, s;
    ngx_uint_t                         i;
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    if (rlcf->client_publish != NGX_CONF_UNSET_PTR) {
        return (char *) "is duplicate";
    }

    rlcf->client_publish = ngx_array_create(cf->pool, 2,
                                            sizeof(ngx_http_complex_value_t));
    if (rlcf->client_publish == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    rlcf->client_echo = 1;
    rlcf->client_max_size = NGX_HTTP_REALTIME_CLIENT_MAX_SIZE;

    value = (ngx_str_t *) cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strcmp(value[i].data, "echo=on") == 0) {
            rlcf->client_echo = 1;
            continue;
        }

        if (ngx_strcmp(value[i].data, "echo=off") == 0) {
            rlcf->client_echo = 0;
            continue;
        }

        if (ngx_strncmp(value[i].data, "types=", 6) == 0) {
            rlcf->client_types = ngx_array_create(cf->pool, 4,
                                                  sizeof(ngx_str_t));
            if (rlcf->client_types == NULL) {
                return (char *) NGX_CONF_ERROR;
            }

            p = value[i].data + 6;
            last = value[i].data + value[i].len;

            while (p < last) {
                start = p;

                while (p < last && *p != ',') {
                    p++;
                }

                if (p > start) {
                    type = (ngx_str_t *) ngx_array_push(rlcf->client_types);
                    if (type == NULL) {
                        return (char *) NGX_CONF_ERROR;
                    }

                    type->data = start;
                    type->len = p - start;

                    if (ngx_http_realtime_client_reserved(
                            ngx_http_realtime_sv(*type)))
                    {
                        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                           "type \"%V\" is handled by the "
                                           "module and cannot be broadcast",
                                           type);
                        return (char *) NGX_CONF_ERROR;
                    }
                }

                p++;
            }

            if (rlcf->client_types->nelts == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "types= names no type");
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "max_size=", 9) == 0) {
            s.data = value[i].data + 9;
            s.len = value[i].len - 9;

            size = ngx_parse_size(&s);
            if (size <= 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid max_size \"%V\"", &s);
                return (char *) NGX_CONF_ERROR;
            }

            rlcf->client_max_size = (size_t) size;
            continue;
        }

        cv = (ngx_http_complex_value_t *) ngx_array_push(rlcf->client_publish);
        if (cv == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
        ccv.cf = cf;
        ccv.value = &value[i];
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return (char *) NGX_CONF_ERROR;
        }

        if (cv->lengths == NULL
            && !realtime::is_valid_group_name(ngx_http_realtime_sv(value[i])))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid group name \"%V\" (1-100 of "
                               "A-Z a-z 0-9 - _ . :)", &value[i]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    if (rlcf->client_publish->nelts == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_client_publish\" names no group");
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* realtime_client_stamp FIELD VALUE [as=json]; (repeatable) */

char *
ngx_http_realtime_client_stamp(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    u_char                     *p;
    ngx_str_t                  *value, text;
    ngx_uint_t                  i;
    ngx_http_realtime_stamp_t  *stamp;

    value = (ngx_str_t *) cf->args->elts;

    if (cf->args->nelts == 4 && ngx_strcmp(value[3].data, "as=json") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[3]);
        return (char *) NGX_CONF_ERROR;
    }

    if (value[1].len == 0) {
        return (char *) "needs a field name";
    }

    if (rlcf->client_stamps == NGX_CONF_UNSET_PTR) {
        rlcf->client_stamps = ngx_array_create(cf->pool, 4,
                                  sizeof(ngx_http_realtime_stamp_t));
        if (rlcf->client_stamps == NULL) {
            return (char *) NGX_CONF_ERROR;
        }
    }

    stamp = (ngx_http_realtime_stamp_t *) rlcf->client_stamps->elts;

    for (i = 0; i < rlcf->client_stamps->nelts; i++) {
        if (stamp[i].field.len == value[1].len
            && ngx_strncmp(stamp[i].field.data, value[1].data, value[1].len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "field \"%V\" is stamped twice", &value[1]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    stamp = (ngx_http_realtime_stamp_t *) ngx_array_push(rlcf->client_stamps);
    if (stamp == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    stamp->field = value[1];

    if (cf->args->nelts == 3 && ngx_strcmp(value[2].data, "off") == 0) {
        /* the field is removed from client messages (and "sender" is not
           stamped by default) */
        stamp->value = NULL;
        return NGX_CONF_OK;
    }

    if (cf->args->nelts == 4) {
        /* as=json: the value is JSON (numbers stay numbers) */
        text = value[2];

    } else {
        /* a string: the template is the value in quotes, with the quotes
           and backslashes it holds escaped */
        text.data = (u_char *) ngx_pnalloc(cf->pool, value[2].len * 2 + 2);
        if (text.data == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        p = text.data;
        *p++ = '"';

        for (i = 0; i < value[2].len; i++) {
            if (value[2].data[i] == '"' || value[2].data[i] == '\\') {
                *p++ = '\\';
            }

            *p++ = value[2].data[i];
        }

        *p++ = '"';
        text.len = p - text.data;
    }

    return ngx_http_realtime_template_compile(cf, &text, false, &stamp->value);
}


/* realtime_client_rate N r/s [burst=B];  (also "Nr/s") */

char *
ngx_http_realtime_client_rate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    size_t      len;
    ngx_int_t   n;
    ngx_str_t  *value;
    ngx_uint_t  i;

    if (rlcf->client_rate != NGX_CONF_UNSET_UINT) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;
    i = 1;

    len = value[1].len;

    if (len > 3 && ngx_strncmp(value[1].data + len - 3, "r/s", 3) == 0) {
        len -= 3;

    } else if (cf->args->nelts > 2 && ngx_strcmp(value[2].data, "r/s") == 0) {
        i++;

    } else if (ngx_strcmp(value[1].data, "off") == 0 && cf->args->nelts == 2) {
        rlcf->client_rate = 0;
        rlcf->client_burst = 0;
        return NGX_CONF_OK;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\", it must be like \"10 r/s\"",
                           &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    n = ngx_atoi(value[1].data, len);
    if (n <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid rate \"%V\"",
                           &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    rlcf->client_rate = (ngx_uint_t) n;
    rlcf->client_burst = 0;

    for (i++; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            n = ngx_atoi(value[i].data + 6, value[i].len - 6);
            if (n < 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid burst \"%V\"", &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            rlcf->client_burst = (ngx_uint_t) n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                           &value[i]);
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* realtime_welcome JSON; */

char *
ngx_http_realtime_welcome(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_str_t  *value;

    if (rlcf->welcome != NULL) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_http_realtime_template_compile(cf, &value[1], false, &rlcf->welcome)
        != NGX_CONF_OK)
    {
        return (char *) NGX_CONF_ERROR;
    }

    if (!rlcf->welcome->is_object()) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_welcome\" must be a JSON object");
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* realtime_allow_subscribe PATTERN ...; (variables; a trailing "*") */

char *
ngx_http_realtime_allow_subscribe(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_str_t   *value, *claim;
    ngx_uint_t   i;

    if (rlcf->allow_subscribe != NGX_CONF_UNSET_PTR) {
        return (char *) "is duplicate";
    }

    rlcf->allow_subscribe = ngx_http_realtime_compile_args(cf);
    if (rlcf->allow_subscribe == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    rlcf->allow_subscribe_claims = ngx_array_create(cf->pool,
                                       cf->args->nelts - 1, sizeof(ngx_str_t));
    if (rlcf->allow_subscribe_claims == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    value = (ngx_str_t *) cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        claim = (ngx_str_t *) ngx_array_push(rlcf->allow_subscribe_claims);
        if (claim == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        ngx_http_realtime_claim_argument(&value[i], claim);

        if (value[i].len == 1 && value[i].data[0] == '*') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"*\" alone would allow every group: give a "
                               "prefix, such as \"public_*\"");
            return (char *) NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


char *
ngx_http_realtime_merge_client(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *prev, ngx_http_realtime_loc_conf_t *conf)
{
    /* what is broadcast and subscribed is per location, as realtime_subscribe */
    if (conf->client_publish == NGX_CONF_UNSET_PTR) {
        conf->client_publish = NULL;
    }

    if (conf->allow_subscribe == NGX_CONF_UNSET_PTR) {
        conf->allow_subscribe = NULL;
    }

    ngx_conf_merge_ptr_value(conf->client_stamps, prev->client_stamps, NULL);
    ngx_conf_merge_uint_value(conf->client_rate, prev->client_rate, 0);
    ngx_conf_merge_uint_value(conf->client_burst, prev->client_burst, 0);
    ngx_conf_merge_value(conf->app_ping, prev->app_ping, 1);

    if (conf->welcome == NULL) {
        conf->welcome = prev->welcome;
    }

    if ((conf->client_publish || conf->allow_subscribe) && !conf->websocket) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_client_publish\" and "
                           "\"realtime_allow_subscribe\" need "
                           "\"realtime_websocket\" in the same location");
        return (char *) NGX_CONF_ERROR;
    }

    if (conf->client_publish && conf->client_max_size > conf->max_message_size)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "max_size=%uz of \"realtime_client_publish\" is "
                           "over \"realtime_max_message_size\" %uz",
                           conf->client_max_size, conf->max_message_size);
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* realtime_client_publish: one group per argument, valid, each once */

static ngx_int_t
ngx_http_realtime_client_groups(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s)
{
    ngx_str_t                  value;
    ngx_uint_t                 i;
    ngx_http_complex_value_t  *cv;

    cv = (ngx_http_complex_value_t *) s->conf->client_publish->elts;

    for (i = 0; i < s->conf->client_publish->nelts; i++) {

        if (ngx_http_complex_value(r, &cv[i], &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (value.len == 0) {
            continue;
        }

        std::string_view  name = ngx_http_realtime_sv(value);

        if (!realtime::is_valid_group_name(name)) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "realtime: handshake refused with 400: invalid "
                          "realtime_client_publish group \"%V\"", &value);
            return NGX_HTTP_BAD_REQUEST;
        }

        bool  seen = false;

        for (const auto &g : s->client_groups) {
            seen = seen || g == name;
        }

        if (!seen) {
            s->client_groups.emplace_back(name);
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_realtime_add_pattern(ngx_http_request_t *r, void *ctx,
    ngx_str_t *value)
{
    ngx_http_realtime_session_t *s = (ngx_http_realtime_session_t *) ctx;

    if (value->len) {
        s->allow_patterns.emplace_back((const char *) value->data, value->len);
    }

    return NGX_OK;
}


/* The stamps rendered for s, as a JSON object merged into its messages. */

static ngx_int_t
ngx_http_realtime_client_stamps(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s)
{
    bool                        sender;
    ngx_uint_t                  i;
    json_error_t                err;
    ngx_http_realtime_stamp_t  *stamp;

    s->stamps.reset(json_object());
    if (!s->stamps) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sender = false;

    if (s->conf->client_stamps) {
        stamp = (ngx_http_realtime_stamp_t *) s->conf->client_stamps->elts;

        for (i = 0; i < s->conf->client_stamps->nelts; i++) {

            if (stamp[i].value == NULL) {
                sender = sender
                         || ngx_http_realtime_sv(stamp[i].field) == "sender";
                continue;   /* "off": removed at each message */
            }

            if (ngx_http_realtime_template_capture(r, s, stamp[i].value)
                != NGX_OK)
            {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            std::string  text = ngx_http_realtime_template_render(
                                    stamp[i].value, s);

            json_t  *v = json_loadb(text.data(), text.size(), JSON_DECODE_ANY,
                                    &err);
            if (v == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            std::string  field((const char *) stamp[i].field.data,
                               stamp[i].field.len);

            json_object_set_new(s->stamps.get(), field.c_str(), v);

            sender = sender || field == "sender";
        }
    }

    /*
     * The sender, unless configured otherwise: who the server knows the
     * connection to be, so no client can speak for another.
     */
    if (!sender) {
        json_object_set_new(s->stamps.get(), "sender",
                            s->user.empty()
                            ? json_null()
                            : json_stringn(s->user.data(), s->user.size()));
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_realtime_client_prepare(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s) noexcept
{
    ngx_int_t                      rc;
    ngx_http_realtime_loc_conf_t  *conf = s->conf;

    try {
        if (conf->client_publish) {
            rc = ngx_http_realtime_client_groups(r, s);
            if (rc != NGX_OK) {
                return rc;
            }

            rc = ngx_http_realtime_client_stamps(r, s);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        if (conf->allow_subscribe) {
            rc = ngx_http_realtime_auth_names(r, s, conf->allow_subscribe,
                                              conf->allow_subscribe_claims,
                                              ngx_http_realtime_add_pattern, s);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        if (conf->client_rate) {
            s->rate = realtime::RateLimiter((uint32_t) conf->client_rate,
                                            (uint32_t) conf->client_burst);
        }

        if (ngx_http_realtime_template_capture(r, s, conf->welcome) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } catch (...) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_realtime_client_welcome(ngx_http_realtime_session_t *s) noexcept
{
    if (s->conf->welcome == NULL) {
        return NGX_OK;
    }

    try {
        std::string  text = ngx_http_realtime_template_render(s->conf->welcome,
                                                              s);

        return ngx_http_realtime_session_text(s, text) ? NGX_OK : NGX_ERROR;

    } catch (...) {
        return NGX_ERROR;
    }
}


bool
ngx_http_realtime_client_admit(ngx_http_realtime_session_t *s) noexcept
{
    if (!s->rate.limited()) {
        return true;
    }

    switch (s->rate.take(ngx_http_realtime_now_ms())) {

    case realtime::RateLimiter::Verdict::kAllow:
        return true;

    case realtime::RateLimiter::Verdict::kRefuse:
        ngx_http_realtime_session_error(s, "rate_limited");
        return false;

    default: /* kClose */
        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "realtime: client keeps sending over "
                      "realtime_client_rate %ui r/s, closing with 1008",
                      s->conf->client_rate);
        ngx_http_realtime_session_close(s,
            realtime::ws::close_code::kPolicyViolation, "rate limit exceeded");
        return false;
    }
}


void
ngx_http_realtime_client_ping(ngx_http_realtime_session_t *s, json_t *message)
    noexcept
{
    /* the ping's own fields come back (a timestamp to measure with) */
    if (json_object_set_new(message, "type", json_string("pong")) != 0) {
        return;
    }

    try {
        ngx_http_realtime_session_reply(s, realtime::ws::Opcode::kText,
                                        realtime::json_compact(message));

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: out of memory answering a ping");
    }
}


/* The "group" of a subscribe/unsubscribe message, checked; empty: refused. */

static std::string_view
ngx_http_realtime_client_group(ngx_http_realtime_session_t *s,
    json_t *message)
{
    json_t  *group;

    group = json_object_get(message, "group");

    if (!json_is_string(group)) {
        ngx_http_realtime_session_error(s, "invalid_group");
        return std::string_view();
    }

    std::string_view  name(json_string_value(group), json_string_length(group));

    if (!realtime::is_valid_group_name(name)) {
        ngx_http_realtime_session_error(s, "invalid_group");
        return std::string_view();
    }

    for (const auto &pattern : s->allow_patterns) {
        if (realtime::group_matches(pattern, name)) {
            return name;
        }
    }

    ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                  "realtime: subscribe to \"%*s\" refused: no "
                  "realtime_allow_subscribe pattern allows it",
                  name.size(), name.data());

    ngx_http_realtime_session_error(s, "not_allowed", name);

    return std::string_view();
}


static void
ngx_http_realtime_client_confirm(ngx_http_realtime_session_t *s,
    const char *type, std::string_view group)
{
    try {
        std::string  reply = std::string("{\"type\":\"") + type
                             + "\",\"group\":" + realtime::json_quote(group)
                             + "}";

        ngx_http_realtime_session_reply(s, realtime::ws::Opcode::kText, reply);

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: out of memory answering a subscribe");
    }
}


/* Joins group for s (in-band or by an action), presence included. */

static ngx_int_t
ngx_http_realtime_client_join(ngx_http_realtime_session_t *s,
    std::string_view group)
{
    bool       added;
    ngx_int_t  rc;

    /* the bound is on what it is in now, so leaving a group it was given
       at the handshake cannot make room for more than 100 of its own */
    if (ngx_http_realtime_groups_count(s)
            >= s->handshake_groups + NGX_HTTP_REALTIME_MAX_DYNAMIC
        && !ngx_http_realtime_groups_member(s, group))
    {
        return NGX_BUSY;
    }

    try {
        ngx_http_realtime_presence_spec_t  holder;

        rc = ngx_http_realtime_groups_add(s, group,
                 ngx_http_realtime_presence_spec(s, group, &holder), &added);

    } catch (...) {
        rc = NGX_ERROR;
    }

    return rc;
}


void
ngx_http_realtime_client_subscribe(ngx_http_realtime_session_t *s,
    json_t *message) noexcept
{
    ngx_int_t  rc;

    std::string_view  group = ngx_http_realtime_client_group(s, message);
    if (group.empty()) {
        return;
    }

    rc = ngx_http_realtime_client_join(s, group);

    switch (rc) {

    case NGX_OK:
        ngx_http_realtime_client_confirm(s, "subscribed", group);
        return;

    case NGX_BUSY:
        ngx_http_realtime_session_error(s, "too_many_groups", group);
        return;

    case NGX_DECLINED:
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: zone \"%V\" is full, subscribe refused",
                      &s->zone->name);
        ngx_http_realtime_session_error(s, "zone_full", group);
        return;

    default:
        ngx_http_realtime_session_error(s, "internal_error", group);
    }
}


void
ngx_http_realtime_client_unsubscribe(ngx_http_realtime_session_t *s,
    json_t *message) noexcept
{
    std::string_view  group = ngx_http_realtime_client_group(s, message);
    if (group.empty()) {
        return;
    }

    (void) ngx_http_realtime_groups_remove(s, group);

    ngx_http_realtime_client_confirm(s, "unsubscribed", group);
}


void
ngx_http_realtime_client_publish(ngx_http_realtime_session_t *s,
    realtime::ws::Opcode op, std::string_view payload, json_t *message)
    noexcept
{
    json_t                        *type;
    ngx_uint_t                     i;
    ngx_str_t                     *allowed;
    realtime::SlotSet              wake;
    realtime::Registry::Published  res;

    if (payload.size() > s->conf->client_max_size) {
        ngx_http_realtime_session_error(s, "too_large");
        return;
    }

    if (s->client_groups.empty()) {
        /* every group evaluated to "" at the handshake (a missing $arg_) */
        ngx_http_realtime_session_error(s, "no_group");
        return;
    }

    if (op != realtime::ws::Opcode::kText || message == NULL) {
        ngx_http_realtime_session_error(s, "not_json");
        return;
    }

    if (!json_is_object(message)) {
        ngx_http_realtime_session_error(s, "not_object");
        return;
    }

    type = json_object_get(message, "type");

    if (type && json_is_string(type)
        && ngx_http_realtime_client_reserved(
               std::string_view(json_string_value(type),
                                json_string_length(type))))
    {
        ngx_http_realtime_session_error(s, "reserved_type");
        return;
    }

    if (s->conf->client_types) {
        bool  ok = false;

        allowed = (ngx_str_t *) s->conf->client_types->elts;

        for (i = 0; json_is_string(type) && i < s->conf->client_types->nelts;
             i++)
        {
            ok = ok || ngx_http_realtime_sv(allowed[i])
                       == std::string_view(json_string_value(type),
                                           json_string_length(type));
        }

        if (!ok) {
            ngx_http_realtime_session_error(s, "type_not_allowed");
            return;
        }
    }

    /* what the server says overwrites what the client said */
    if (s->stamps && json_object_update(message, s->stamps.get()) != 0) {
        ngx_http_realtime_session_error(s, "internal_error");
        return;
    }

    if (s->conf->client_stamps) {
        ngx_http_realtime_stamp_t  *stamp;

        stamp = (ngx_http_realtime_stamp_t *) s->conf->client_stamps->elts;

        for (i = 0; i < s->conf->client_stamps->nelts; i++) {
            if (stamp[i].value == NULL) {
                std::string_view  field = ngx_http_realtime_sv(stamp[i].field);

                (void) json_object_deln(message, field.data(), field.size());
            }
        }
    }

    std::string                    text;
    std::vector<std::string_view>  forward;

    try {
        text = realtime::json_compact(message);

        if (s->zone->redis && s->conf->history_size) {
            /* kept with ids the whole cluster shares: Redis numbers it */
            realtime::PublishRequest  req;

            req.ok = true;
            req.items.emplace_back();
            req.items.back().groups.assign(s->client_groups.begin(),
                                           s->client_groups.end());
            req.items.back().payload = std::move(text);

            (void) ngx_http_realtime_publish_numbered(s->zone, s->conf, req,
                       s->conf->client_echo ? 0 : s->conn_id);
            return;
        }

        std::string  frame = realtime::ws::encode_frame(
                                 realtime::ws::Opcode::kText, text);

        std::vector<std::string_view>  names(s->client_groups.begin(),
                                             s->client_groups.end());

        realtime::Registry::PublishOptions  options;

        options.origin = s->conf->client_echo ? 0 : s->conn_id;
        ngx_http_realtime_history_options(s->conf, &options);
        options.header_size = (uint8_t) (frame.size() - text.size());

        {
            ngx_http_realtime_registry_t  reg(s->zone);

            res = reg->publish(names.data(), names.size(),
                               (const uint8_t *) frame.data(), frame.size(),
                               options);
        }

        forward.swap(names);

    } catch (...) {
        ngx_http_realtime_session_error(s, "internal_error");
        return;
    }

    if (res.status != realtime::Registry::Status::kOk) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: zone \"%V\" is full, a client message was "
                      "refused", &s->zone->name);
        ngx_http_realtime_session_error(s, "zone_full");
        return;
    }

    if (!res.wake.none()) {
        ngx_http_realtime_worker_wake(s->zone, res.wake);
    }

    /* delivered here at once; the other nodes get it through Redis */
    if (s->zone->redis) {
        ngx_http_realtime_cluster_forward(s->zone, forward.data(),
                                          forward.size(), text, false);
    }
}


/*
 * An action the app took for this connection's user (the publish
 * location's {"action": ...}): {"action":"subscribe","group":G},
 * {"action":"unsubscribe","group":G}, {"action":"disconnect","code":N,
 * "reason":R}. The instruction was checked when it was published.
 */

void
ngx_http_realtime_client_control(ngx_http_realtime_session_t *s,
    std::string_view instruction) noexcept
{
    json_t       *action, *group, *code, *reason;
    json_error_t  err;

    if (s->closing()) {
        return;
    }

    realtime::jwt::JsonPtr  msg(json_loadb(instruction.data(),
                                           instruction.size(), 0, &err));
    if (!msg) {
        return;
    }

    action = json_object_get(msg.get(), "action");
    group = json_object_get(msg.get(), "group");

    if (!json_is_string(action)) {
        return;
    }

    std::string_view  what(json_string_value(action), json_string_length(action));
    std::string_view  name = json_is_string(group)
                             ? std::string_view(json_string_value(group),
                                                json_string_length(group))
                             : std::string_view();

    if (what == "subscribe" && !name.empty()) {
        /* the app decides: no pattern applies, nor the in-band bound */
        bool  added;

        try {
            ngx_http_realtime_presence_spec_t  holder;

            if (ngx_http_realtime_groups_add(s, name,
                    ngx_http_realtime_presence_spec(s, name, &holder), &added)
                == NGX_OK)
            {
                ngx_http_realtime_client_confirm(s, "subscribed", name);
            }

        } catch (...) {
            ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                          "realtime: out of memory subscribing a user");
        }

        return;
    }

    if (what == "unsubscribe" && !name.empty()) {
        if (ngx_http_realtime_groups_remove(s, name) == NGX_OK) {
            ngx_http_realtime_client_confirm(s, "unsubscribed", name);
        }

        return;
    }

    if (what == "disconnect") {
        code = json_object_get(msg.get(), "code");
        reason = json_object_get(msg.get(), "reason");

        ngx_log_error(NGX_LOG_INFO, s->connection->log, 0,
                      "realtime: the app disconnects user \"%*s\"",
                      s->user.size(), s->user.data());

        ngx_http_realtime_session_close(s,
            json_is_integer(code) ? (uint16_t) json_integer_value(code)
                                  : realtime::ws::close_code::kNormal,
            json_is_string(reason) ? std::string_view(json_string_value(reason),
                                                      json_string_length(reason))
                                   : std::string_view());
    }
}
