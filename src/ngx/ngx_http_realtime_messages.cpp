/*
 * ngx_realtime_module: the in-band message dispatcher.
 *
 * Every data message from a client comes here, once: the rate limit is
 * applied, a JSON object whose "type" a row of the table handles (and is
 * on in the location) goes to that row, and anything else is broadcast
 * (realtime_client_publish), echoed (realtime_echo), or answered with an
 * error saying nothing handles it. Features add a row to the table.
 */

#include "ngx_http_realtime_messages.h"

#include "ngx_http_realtime_auth.h"
#include "ngx_http_realtime_client.h"
#include "ngx_http_realtime_presence.h"
#include "ngx_http_realtime_relay.h"


/* The largest in-band message parsed unless client messages allow more. */
#define NGX_HTTP_REALTIME_MAX_CONTROL_MESSAGE  16384


typedef struct {
    const char  *type;
    bool       (*enabled)(ngx_http_realtime_loc_conf_t *conf);
    void       (*handle)(ngx_http_realtime_session_t *s, json_t *message);
} ngx_http_realtime_message_type_t;


static bool
ngx_http_realtime_jwt_enabled(ngx_http_realtime_loc_conf_t *conf)
{
    return conf->jwt_sources != NULL;
}


static bool
ngx_http_realtime_ping_enabled(ngx_http_realtime_loc_conf_t *conf)
{
    return conf->app_ping;
}


static bool
ngx_http_realtime_subscribe_enabled(ngx_http_realtime_loc_conf_t *conf)
{
    return conf->allow_subscribe != NULL && conf->zone != NULL;
}


static bool
ngx_http_realtime_presence_enabled(ngx_http_realtime_loc_conf_t *conf)
{
    return conf->presence && conf->zone != NULL;
}


static const ngx_http_realtime_message_type_t  ngx_http_realtime_types[] = {
    { "ping", ngx_http_realtime_ping_enabled,
      ngx_http_realtime_client_ping },
    { "refresh", ngx_http_realtime_jwt_enabled,
      ngx_http_realtime_auth_refresh },
    { "subscribe", ngx_http_realtime_subscribe_enabled,
      ngx_http_realtime_client_subscribe },
    { "unsubscribe", ngx_http_realtime_subscribe_enabled,
      ngx_http_realtime_client_unsubscribe },
    { "presence", ngx_http_realtime_presence_enabled,
      ngx_http_realtime_presence_query },
};


bool
ngx_http_realtime_messages_dispatch(ngx_http_realtime_session_t *s,
    realtime::ws::Opcode op, std::string_view payload)
{
    size_t                          limit;
    json_t                         *type;
    realtime::jwt::JsonPtr          msg;
    ngx_http_realtime_loc_conf_t   *conf;

    conf = s->conf;

    if (!ngx_http_realtime_client_admit(s)) {
        return !s->closing();
    }

    limit = NGX_HTTP_REALTIME_MAX_CONTROL_MESSAGE;

    if (conf->client_publish && conf->client_max_size > limit) {
        limit = conf->client_max_size;
    }

    if (op == realtime::ws::Opcode::kText && !payload.empty()
        && payload.size() <= limit)
    {
        /* any JSON value: "42" is JSON, just not an object (not_object) */
        msg.reset(json_loadb(payload.data(), payload.size(), JSON_DECODE_ANY,
                             NULL));

        type = msg ? json_object_get(msg.get(), "type") : NULL;

        if (json_is_string(type)) {
            for (const auto &row : ngx_http_realtime_types) {
                if (row.enabled(conf)
                    && ngx_strcmp(json_string_value(type), row.type) == 0)
                {
                    row.handle(s, msg.get());
                    return true;
                }
            }
        }
    }

    /*
     * What realtime_client_publish takes it broadcasts (with types=, only
     * the listed types); the rest of the clients' text goes to the app when
     * the location relays, except the module's own types.
     */
    if (conf->client_publish
        && (conf->relay == NULL
            || ngx_http_realtime_client_takes(conf, msg.get())))
    {
        ngx_http_realtime_client_publish(s, op, payload, msg.get());
        return true;
    }

    if (conf->relay && s->relay && op == realtime::ws::Opcode::kText) {
        type = msg ? json_object_get(msg.get(), "type") : NULL;

        if (!json_is_string(type)
            || !ngx_http_realtime_client_reserved(
                   std::string_view(json_string_value(type),
                                    json_string_length(type))))
        {
            ngx_http_realtime_relay_message(s, payload, msg != nullptr);
            return true;
        }
    }

    if (conf->client_publish) {
        ngx_http_realtime_client_publish(s, op, payload, msg.get());
        return true;
    }

    if (conf->echo) {
        return ngx_http_realtime_session_reply(s, op, payload);
    }

    ngx_http_realtime_session_error(s, "unhandled");

    return true;
}
