/*
 * ngx_realtime_module: history and resume (realtime_history,
 * realtime_envelope, realtime_resume_from) and the history query of the
 * publish location. The messages themselves live in the zone
 * (realtime::HistEntry); this file decides what a client sees of them.
 */

#pragma once

#include "ngx_http_realtime_session.h"


#define NGX_HTTP_REALTIME_HISTORY_MAX     10000   /* realtime_history SIZE */


/* configuration */
char *ngx_http_realtime_history_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_merge_history(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *prev, ngx_http_realtime_loc_conf_t *conf);

/* What a publish through conf keeps (history size, ttl, the time). */
void ngx_http_realtime_history_options(const ngx_http_realtime_loc_conf_t *conf,
    realtime::Registry::PublishOptions *options) noexcept;

/* "<epoch in hex>:<seq>", and back (false: not an id). */
std::string ngx_http_realtime_history_id(realtime::MessageId id);
bool ngx_http_realtime_history_parse_id(std::string_view text,
    realtime::MessageId *id) noexcept;

/* {"group":G,"id":"E:S","data":<payload>} (a string payload quoted; no
   "id" when id.seq is 0: a message without one). */
std::string ngx_http_realtime_history_envelope(std::string_view group,
    realtime::MessageId id, std::string_view payload, bool is_string);

/* Where the client says it was (realtime_resume_from), before the 101. */
ngx_int_t ngx_http_realtime_history_prepare(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s) noexcept;

/*
 * Right after s joined its groups, under the same lock (so nothing is
 * missed or given twice): queues what each group it resumes missed, or a
 * {"type":"recovery","group":G,"recovered":false} where the history does
 * not cover the gap.
 */
void ngx_http_realtime_history_replay(realtime::Registry &reg,
    ngx_http_realtime_session_t *s, const std::string_view *groups,
    size_t ngroups) noexcept;

/* GET <publish>?history=G[&since=ID]: the retained messages as JSON. */
std::string ngx_http_realtime_history_list(ngx_http_realtime_zone_t *z,
    std::string_view group, std::string_view since);
