/*
 * ngx_realtime_module: history and resume.
 *
 *   realtime_history SIZE [ttl=TIME];     publishes through this level keep
 *                                         each group's last SIZE messages
 *   realtime_envelope on;                 subscribers get {"group","id","data"}
 *   realtime_resume_from VALUE;           default $arg_last_id
 *
 * A resume point is "G@EPOCH:SEQ" per group, comma-separated, or a bare
 * "EPOCH:SEQ" (epochs are unique per group, so it names its group; on a
 * connection with one group it is that group's, whatever its epoch).
 */

#include "ngx_http_realtime_history.h"

#include "core/group_name.h"
#include "core/publish_request.h"
#include "core/ws_frame.h"
#include "ngx_http_realtime_cluster_resume.h"




/* realtime_history SIZE [ttl=TIME] | off; */

char *
ngx_http_realtime_history_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_int_t    n;
    ngx_str_t   *value, s;
    ngx_msec_t   ttl;

    if (rlcf->history_size != NGX_CONF_UNSET_UINT) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0 && cf->args->nelts == 2) {
        rlcf->history_size = 0;
        rlcf->history_ttl = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);
    if (n <= 0 || n > NGX_HTTP_REALTIME_HISTORY_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid history size \"%V\" (1-%d)", &value[1],
                           NGX_HTTP_REALTIME_HISTORY_MAX);
        return (char *) NGX_CONF_ERROR;
    }

    rlcf->history_size = (ngx_uint_t) n;
    rlcf->history_ttl = 0;

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "ttl=", 4) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return (char *) NGX_CONF_ERROR;
        }

        s.data = value[2].data + 4;
        s.len = value[2].len - 4;

        ttl = ngx_parse_time(&s, 0);
        if (ttl == (ngx_msec_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid ttl \"%V\"", &s);
            return (char *) NGX_CONF_ERROR;
        }

        rlcf->history_ttl = ttl;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_realtime_merge_history(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *prev, ngx_http_realtime_loc_conf_t *conf)
{
    static ngx_str_t  last_id = ngx_string("$arg_last_id");

    ngx_conf_merge_uint_value(conf->history_size, prev->history_size, 0);
    ngx_conf_merge_msec_value(conf->history_ttl, prev->history_ttl, 0);
    ngx_conf_merge_value(conf->envelope, prev->envelope, 0);

    if (conf->last_id == NGX_CONF_UNSET_PTR) {
        conf->last_id = prev->last_id;
    }

    if (conf->last_id == NGX_CONF_UNSET_PTR && conf->websocket) {
        ngx_http_compile_complex_value_t  ccv;

        conf->last_id = (ngx_http_complex_value_t *)
            ngx_pcalloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (conf->last_id == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
        ccv.cf = cf;
        ccv.value = &last_id;
        ccv.complex_value = conf->last_id;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return (char *) NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


void
ngx_http_realtime_history_options(const ngx_http_realtime_loc_conf_t *conf,
    realtime::Registry::PublishOptions *options) noexcept
{
    if (conf == NULL || conf->history_size == 0) {
        return;
    }

    options->history_size = (uint32_t) conf->history_size;
    options->history_ttl = (uint32_t) conf->history_ttl;
    options->now = ngx_http_realtime_now_ms();
}


std::string
ngx_http_realtime_history_id(realtime::MessageId id)
{
    char  buf[48];

    ngx_snprintf((u_char *) buf, sizeof(buf), "%016xL:%uL%Z", id.epoch, id.seq);

    return std::string(buf);
}


bool
ngx_http_realtime_history_parse_id(std::string_view text,
    realtime::MessageId *id) noexcept
{
    size_t    colon;
    uint64_t  epoch, seq;

    colon = text.find(':');

    if (colon == std::string_view::npos || colon == 0 || colon > 16
        || colon + 1 >= text.size() || text.size() - colon - 1 > 19)
    {
        return false;
    }

    epoch = 0;

    for (size_t i = 0; i < colon; i++) {
        char  c = text[i];
        int   d = (c >= '0' && c <= '9') ? c - '0'
                  : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;

        if (d < 0) {
            return false;
        }

        epoch = epoch << 4 | (uint64_t) d;
    }

    seq = 0;

    for (size_t i = colon + 1; i < text.size(); i++) {
        if (text[i] < '0' || text[i] > '9') {
            return false;
        }

        uint64_t  next = seq * 10 + (uint64_t) (text[i] - '0');

        if (next / 10 != seq) {
            return false;   /* overflow */
        }

        seq = next;
    }

    if (epoch == 0) {
        return false;
    }

    id->epoch = epoch;
    id->seq = seq;

    return true;
}


std::string
ngx_http_realtime_history_envelope(std::string_view group,
    realtime::MessageId id, std::string_view payload, bool is_string)
{
    std::string  out = "{\"group\":" + realtime::json_quote(group);

    if (id.seq) {
        out += ",\"id\":\"" + ngx_http_realtime_history_id(id) + "\"";
    }

    out += ",\"data\":";

    if (is_string) {
        out += realtime::json_quote(payload);

    } else {
        out.append(payload.data(), payload.size());
    }

    out += "}";

    return out;
}


ngx_int_t
ngx_http_realtime_history_prepare(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s) noexcept
{
    ngx_str_t  value;

    if (s->conf->last_id == NULL || s->conf->last_id == NGX_CONF_UNSET_PTR
        || s->zone == NULL)
    {
        return NGX_OK;
    }

    if (ngx_http_complex_value(r, s->conf->last_id, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (value.len == 0 && s->eventsource) {
        /* the browser's EventSource says where it was by itself */
        ngx_http_realtime_each_header(r,
            [&value](std::string_view name, std::string_view v) {
                if (ngx_http_realtime_header_is(name, "Last-Event-ID")) {
                    value.data = (u_char *) v.data();
                    value.len = v.size();
                    return true;
                }

                return false;
            });
    }

    try {
        /* "%40" and "%3A" in a URL: the id as the client's library wrote it */
        u_char  *dst, *src, *buf;

        buf = (u_char *) ngx_pnalloc(r->pool, value.len);
        if (buf == NULL) {
            return NGX_ERROR;
        }

        dst = buf;
        src = value.data;
        ngx_unescape_uri(&dst, &src, value.len, NGX_UNESCAPE_URI);

        s->resume_from.assign((const char *) buf, dst - buf);

    } catch (...) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* Queues text into s (before the 101: first out); id for a stream. */

static void
ngx_http_realtime_history_queue(ngx_http_realtime_session_t *s,
    std::string_view text, std::string_view id = std::string_view())
{
    (void) ngx_http_realtime_session_text(s, text, id);
}


/* One replayed message, as live delivery would give it. */

static void
ngx_http_realtime_history_give(ngx_http_realtime_session_t *s,
    std::string_view group, realtime::MessageId id, std::string_view payload,
    bool is_string)
{
    std::string  sid;

    if (s->eventsource) {
        sid = ngx_http_realtime_history_id(id);
    }

    if (s->conf->envelope) {
        ngx_http_realtime_history_queue(s,
            ngx_http_realtime_history_envelope(group, id, payload, is_string),
            sid);

    } else {
        ngx_http_realtime_history_queue(s, payload, sid);
    }
}


static void
ngx_http_realtime_history_resume(realtime::Registry &reg,
    ngx_http_realtime_session_t *s, std::string_view group,
    realtime::MessageId after)
{
    size_t                                 n;
    realtime::Registry::HistoryStatus      st;
    const realtime::GroupNode             *g;

    const ngx_http_realtime_fetched_t  *f =
        ngx_http_realtime_cluster_fetched(s, group, after);

    if (f && f->state == ngx_http_realtime_fetched_t::kLost) {
        ngx_http_realtime_history_queue(s,
            "{\"type\":\"recovery\",\"group\":" + realtime::json_quote(group)
            + ",\"recovered\":false}");
        return;
    }

    if (f && f->state == ngx_http_realtime_fetched_t::kCovered) {
        /* what Redis kept, then what reached this node past it */
        for (const auto &e : f->entries) {
            ngx_http_realtime_history_give(s, group,
                realtime::MessageId{after.epoch, e.seq}, e.payload,
                e.is_string);
        }

        s->floors.push_back(
            ngx_http_realtime_floor_t{ std::string(group), after.epoch,
                                       f->last });

        g = reg.find(group);

        if (g == NULL || g->epoch != after.epoch || g->last_seq <= f->last) {
            return;     /* nothing newer here yet: it comes live */
        }

        after.seq = f->last;
    }

    g = reg.find(group);

    /* what the group holds bounds what a replay can be */
    size_t  cap = g ? g->hist_count + 1 : 1;

    std::vector<const realtime::ShmMessage *>  out(cap);
    std::vector<realtime::MessageId>           ids(cap);

    st = reg.history(group, after, ngx_http_realtime_now_ms(), out.data(),
                     ids.data(), out.size(), &n);

    if (st != realtime::Registry::HistoryStatus::kOk) {
        ngx_http_realtime_history_queue(s,
            "{\"type\":\"recovery\",\"group\":" + realtime::json_quote(group)
            + ",\"recovered\":false}");
        return;
    }

    for (size_t i = 0; i < n; i++) {
        const realtime::ShmMessage  *m = out[i];

        if (s->eventsource
            && (m->frame()[0] & 0x0f) == (uint8_t) realtime::ws::Opcode::kBinary)
        {
            continue;   /* as live: no text form */
        }

        ngx_http_realtime_history_give(s, group, ids[i], m->payload(),
                                       m->flags & realtime::kPayloadIsString);
    }
}


void
ngx_http_realtime_history_replay(realtime::Registry &reg,
    ngx_http_realtime_session_t *s, const std::string_view *groups,
    size_t ngroups) noexcept
{
    size_t               start, end, at;
    realtime::MessageId  id;

    if (s->resume_from.empty()) {
        return;
    }

    try {
        std::string_view  all(s->resume_from);

        for (start = 0; start < all.size(); start = end + 1) {
            end = all.find(',', start);
            if (end == std::string_view::npos) {
                end = all.size();
            }

            std::string_view  point = all.substr(start, end - start);

            at = point.find('@');

            if (at != std::string_view::npos) {
                /* G@EPOCH:SEQ: only a group the connection is in */
                std::string_view  group = point.substr(0, at);

                if (!ngx_http_realtime_history_parse_id(point.substr(at + 1),
                                                        &id))
                {
                    continue;
                }

                for (size_t i = 0; i < ngroups; i++) {
                    if (groups[i] == group) {
                        ngx_http_realtime_history_resume(reg, s, group, id);
                        break;
                    }
                }

                continue;
            }

            if (!ngx_http_realtime_history_parse_id(point, &id)) {
                continue;
            }

            /* a bare id: its group by the epoch, or the only group */
            bool  found = false;

            for (size_t i = 0; i < ngroups && !found; i++) {
                const realtime::GroupNode  *g = reg.find(groups[i]);

                if (g && g->epoch == id.epoch) {
                    ngx_http_realtime_history_resume(reg, s, groups[i], id);
                    found = true;
                }
            }

            if (!found && ngroups == 1) {
                ngx_http_realtime_history_resume(reg, s, groups[0], id);
            }
        }

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: out of memory replaying history");
    }
}


std::string
ngx_http_realtime_history_list(ngx_http_realtime_zone_t *z,
    std::string_view group, std::string_view since)
{
    size_t                              n;
    realtime::MessageId                 after{0, 0};
    realtime::Registry::HistoryStatus   st;

    bool  recovered = true;

    if (!since.empty() && !ngx_http_realtime_history_parse_id(since, &after)) {
        after = realtime::MessageId{0, 0};
        recovered = false;
    }

    std::string  body = "{\"group\":" + realtime::json_quote(group)
                        + ",\"messages\":[";

    /* the messages are copied out under the lock: entries may go after */
    ngx_http_realtime_registry_t  reg(z);

    uint64_t                    now = ngx_http_realtime_now_ms();
    const realtime::GroupNode  *g = reg->find(group);
    size_t                      cap = g ? g->hist_count + 1 : 1;

    std::vector<const realtime::ShmMessage *>  out(cap);
    std::vector<realtime::MessageId>           ids(cap);

    st = reg->history(group, after, now, out.data(), ids.data(), out.size(), &n);

    if (st != realtime::Registry::HistoryStatus::kOk) {
        recovered = false;
        st = reg->history(group, realtime::MessageId{0, 0}, now, out.data(),
                          ids.data(), out.size(), &n);
    }

    for (size_t i = 0; i < n; i++) {
        const realtime::ShmMessage  *m = out[i];

        body += i ? ",{\"id\":\"" : "{\"id\":\"";
        body += ngx_http_realtime_history_id(ids[i]) + "\",\"data\":";
        body += (m->flags & realtime::kPayloadIsString)
                ? realtime::json_quote(m->payload())
                : std::string(m->payload());
        body += "}";
    }

    body += "],\"recovered\":";
    body += recovered ? "true}" : "false}";

    return body;
}
