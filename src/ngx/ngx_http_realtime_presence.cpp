/*
 * ngx_realtime_module: presence.
 *
 *   realtime_presence on [leave_delay=TIME] [info=JSON];
 *   realtime_presence_event join|leave JSON;
 *   realtime_presence_max_list N;
 *
 * Events are rendered for a user when its first connection joins a group
 * (the leave event too: it is stored in the zone with the user's record,
 * so whichever process sees the last connection go, even one reclaiming
 * the slot of a worker killed with SIGKILL, can publish it as it is).
 */

#include "ngx_http_realtime_presence.h"

#include "core/group_name.h"
#include "core/publish_request.h"
#include "core/ws_frame.h"
#include "ngx_http_realtime_groups.h"
#include "ngx_http_realtime_template.h"


/* What a presence event looks like unless realtime_presence_event says. */
static ngx_str_t  ngx_http_realtime_default_event = ngx_string(
    "{\"type\":\"presence\",\"event\":\"$presence_event\","
    "\"group\":\"$presence_group\",\"user\":\"$presence_user\","
    "\"info\":$presence_info}");


/* realtime_presence on|off [leave_delay=TIME] [info=JSON]; */

char *
ngx_http_realtime_presence_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_str_t   *value, s;
    ngx_uint_t   i;
    ngx_msec_t   delay;

    if (rlcf->presence != NGX_CONF_UNSET) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "on") == 0) {
        rlcf->presence = 1;

    } else if (ngx_strcmp(value[1].data, "off") == 0) {
        rlcf->presence = 0;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be \"on\" or "
                           "\"off\"", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "leave_delay=", 12) == 0) {
            s.data = value[i].data + 12;
            s.len = value[i].len - 12;

            delay = ngx_parse_time(&s, 0);
            if (delay == (ngx_msec_t) NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid leave_delay \"%V\"", &s);
                return (char *) NGX_CONF_ERROR;
            }

            rlcf->presence_leave_delay = delay;
            continue;
        }

        if (ngx_strncmp(value[i].data, "info=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            if (ngx_http_realtime_template_compile(cf, &s, false,
                                                   &rlcf->presence_info)
                != NGX_CONF_OK)
            {
                return (char *) NGX_CONF_ERROR;
            }

            if (!rlcf->presence_info->is_object()) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "info= must be a JSON object");
                return (char *) NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* realtime_presence_event join|leave JSON; */

char *
ngx_http_realtime_presence_event(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_str_t                *value;
    realtime::JsonTemplate  **tpl;

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "join") == 0) {
        tpl = &rlcf->presence_join;

    } else if (ngx_strcmp(value[1].data, "leave") == 0) {
        tpl = &rlcf->presence_leave;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid event \"%V\", it must be \"join\" or "
                           "\"leave\"", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    if (*tpl != NULL) {
        return (char *) "is duplicate";
    }

    return ngx_http_realtime_template_compile(cf, &value[2], true, tpl);
}


char *
ngx_http_realtime_merge_presence(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *prev, ngx_http_realtime_loc_conf_t *conf)
{
    ngx_conf_merge_value(conf->presence, prev->presence, 0);
    ngx_conf_merge_msec_value(conf->presence_leave_delay,
                              prev->presence_leave_delay, 0);
    /* templates are NULL until set (the pool is zeroed): inherited so */
    if (conf->presence_info == NULL) {
        conf->presence_info = prev->presence_info;
    }

    if (conf->presence_join == NULL) {
        conf->presence_join = prev->presence_join;
    }

    if (conf->presence_leave == NULL) {
        conf->presence_leave = prev->presence_leave;
    }
    ngx_conf_merge_uint_value(conf->presence_max_list, prev->presence_max_list,
                              1000);

    return NGX_CONF_OK;
}


/* A WebSocket location with presence, once its zone is known. */

char *
ngx_http_realtime_check_presence(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *conf)
{
    if (!conf->presence || !conf->websocket) {
        return NGX_CONF_OK;
    }

    if (conf->zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_presence\" needs a \"realtime_zone\"");
        return (char *) NGX_CONF_ERROR;
    }

    if (conf->presence_join == NULL
        && ngx_http_realtime_template_compile(cf,
               &ngx_http_realtime_default_event, true, &conf->presence_join)
           != NGX_CONF_OK)
    {
        return (char *) NGX_CONF_ERROR;
    }

    if (conf->presence_leave == NULL
        && ngx_http_realtime_template_compile(cf,
               &ngx_http_realtime_default_event, true, &conf->presence_leave)
           != NGX_CONF_OK)
    {
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_realtime_presence_prepare(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s) noexcept
{
    ngx_http_realtime_loc_conf_t  *conf = s->conf;

    if (!conf->presence || conf->zone == NULL || s->user.empty()) {
        return NGX_OK;
    }

    if (ngx_http_realtime_template_capture(r, s, conf->presence_info) != NGX_OK
        || ngx_http_realtime_template_capture(r, s, conf->presence_join)
           != NGX_OK
        || ngx_http_realtime_template_capture(r, s, conf->presence_leave)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    try {
        if (conf->presence_info) {
            s->presence_info = ngx_http_realtime_template_render(
                                   conf->presence_info, s);

            if (s->presence_info.size() > realtime::kMaxPresenceInfo) {
                ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                              "realtime: presence info of %uz bytes is over "
                              "the %uz-byte limit, not kept",
                              s->presence_info.size(),
                              realtime::kMaxPresenceInfo);
                s->presence_info.clear();
            }
        }

    } catch (...) {
        return NGX_ERROR;
    }

    s->presence = true;

    return NGX_OK;
}


const realtime::PresenceSpec *
ngx_http_realtime_presence_spec(ngx_http_realtime_session_t *s,
    std::string_view group, ngx_http_realtime_presence_spec_t *holder)
{
    ngx_http_realtime_presence_values_t  v;

    if (!s->presence) {
        return nullptr;
    }

    v.group = group;
    v.user = s->user;
    v.info = s->presence_info;

    v.event = "join";
    holder->join = realtime::ws::encode_frame(realtime::ws::Opcode::kText,
                       ngx_http_realtime_template_render(s->conf->presence_join,
                                                         s, &v));
    v.event = "leave";
    holder->leave = realtime::ws::encode_frame(realtime::ws::Opcode::kText,
                        ngx_http_realtime_template_render(
                            s->conf->presence_leave, s, &v));

    holder->spec.user = s->user;
    holder->spec.info = s->presence_info;
    holder->spec.join_frame = holder->join;
    holder->spec.leave_frame = holder->leave;
    holder->spec.leave_delay = (uint32_t) s->conf->presence_leave_delay;

    return &holder->spec;
}


std::string
ngx_http_realtime_presence_list(ngx_http_realtime_zone_t *z,
    std::string_view group, ngx_uint_t max, std::string_view prefix)
{
    ngx_uint_t                      n;
    const realtime::GroupNode      *g;
    const realtime::PresenceNode   *p;

    std::string  out = "{";

    out += prefix;
    out += "\"group\":" + realtime::json_quote(group);

    /* the zone is locked while the list is copied: max bounds the time */
    ngx_http_realtime_registry_t  reg(z);

    g = reg->find(group);

    out += ",\"count\":" + std::to_string(g ? g->present : 0) + ",\"users\":[";

    n = 0;

    for (p = g ? g->presence : nullptr; p && n < max; p = p->next, n++) {
        out += n ? ",{\"user\":" : "{\"user\":";
        /* like the events' "$presence_user": valid UTF-8 (a text frame) */
        out += realtime::json_quote(realtime::json_string_text(p->user()));
        out += ",\"info\":";
        out += p->info_len ? p->info() : std::string_view("null");
        /* here and on the other nodes (realtime_redis) */
        out += ",\"connections\":" + std::to_string(p->total_connections())
               + "}";
    }

    out += "]";

    if (p) {
        out += ",\"truncated\":true";
    }

    out += "}";

    return out;
}


void
ngx_http_realtime_presence_query(ngx_http_realtime_session_t *s,
    json_t *message) noexcept
{
    json_t  *group;

    group = json_object_get(message, "group");

    if (!json_is_string(group)
        || !realtime::is_valid_group_name(
               std::string_view(json_string_value(group),
                                json_string_length(group))))
    {
        ngx_http_realtime_session_error(s, "invalid_group");
        return;
    }

    std::string_view  name(json_string_value(group), json_string_length(group));

    if (!ngx_http_realtime_groups_member(s, name)) {
        ngx_http_realtime_session_error(s, "not_member");
        return;
    }

    try {
        std::string  reply = ngx_http_realtime_presence_list(s->zone, name,
                                 s->conf->presence_max_list,
                                 "\"type\":\"presence\",");

        ngx_http_realtime_session_reply(s, realtime::ws::Opcode::kText, reply);

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: out of memory answering a presence query");
    }
}
