/*
 * ngx_realtime_module: the in-band message dispatcher.
 *
 * Each row names a "type", says in which locations it is on, and gives the
 * handler. A message is parsed only when some row is on in its location
 * and it looks like a JSON object, so plain traffic costs nothing.
 */

#include "ngx_http_realtime_messages.h"

#include <string>

#include "core/publish_request.h"
#include "ngx_http_realtime_auth.h"


/* The largest in-band message parsed; bigger ones are plain data. */
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


static const ngx_http_realtime_message_type_t  ngx_http_realtime_types[] = {
    { "refresh", ngx_http_realtime_jwt_enabled,
      ngx_http_realtime_auth_refresh },
};


bool
ngx_http_realtime_messages_dispatch(ngx_http_realtime_session_t *s,
    realtime::ws::Opcode op, std::string_view payload)
{
    bool                                     any;
    json_t                                  *type;
    const ngx_http_realtime_message_type_t  *t;

    any = false;

    for (const auto &row : ngx_http_realtime_types) {
        any = any || row.enabled(s->conf);
    }

    if (any && op == realtime::ws::Opcode::kText && payload.size() > 2
        && payload.size() <= NGX_HTTP_REALTIME_MAX_CONTROL_MESSAGE
        && payload[0] == '{')
    {
        realtime::jwt::JsonPtr  msg(json_loadb(payload.data(), payload.size(),
                                               0, NULL));

        type = msg ? json_object_get(msg.get(), "type") : NULL;

        if (json_is_string(type)) {
            for (const auto &row : ngx_http_realtime_types) {
                t = &row;

                if (t->enabled(s->conf)
                    && ngx_strcmp(json_string_value(type), t->type) == 0)
                {
                    t->handle(s, msg.get());
                    return true;
                }
            }
        }
    }

    if (s->conf->echo) {
        return ngx_http_realtime_session_reply(s, op, payload);
    }

    return true;
}


void
ngx_http_realtime_messages_error(ngx_http_realtime_session_t *s,
    std::string_view error) noexcept
{
    try {
        std::string  reply = "{\"type\":\"error\",\"error\":"
                             + realtime::json_quote(error) + "}";

        ngx_http_realtime_session_reply(s, realtime::ws::Opcode::kText, reply);

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: out of memory answering a client message");
    }
}
