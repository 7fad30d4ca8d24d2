/*
 * ngx_realtime_module: presence (realtime_presence): which users are in a
 * group, deduplicated across tabs and workers, their join and leave
 * events, and the queries (in-band and at the publish location).
 *
 * The zone keeps one record per (group, user) (realtime::PresenceNode);
 * this file decides what the events look like and renders them for a
 * connection, from the values captured at its handshake.
 */

#pragma once

#include "ngx_http_realtime_session.h"


/* A group's presence spec for one connection, with the storage it uses. */
struct ngx_http_realtime_presence_spec_t {
    std::string               join;    /* framed events */
    std::string               leave;
    realtime::PresenceSpec    spec;
};


/* configuration */
char *ngx_http_realtime_presence_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_presence_event(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_merge_presence(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *prev, ngx_http_realtime_loc_conf_t *conf);
char *ngx_http_realtime_check_presence(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *conf);

/* Before the 101: captures what the events of s need (s->presence says
   whether its groups are tracked: the location asks and s has a user). */
ngx_int_t ngx_http_realtime_presence_prepare(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s) noexcept;

/* The spec of group for s; NULL when s is not tracked. May throw. */
const realtime::PresenceSpec *ngx_http_realtime_presence_spec(
    ngx_http_realtime_session_t *s, std::string_view group,
    ngx_http_realtime_presence_spec_t *holder);

/*
 * {"group":G,"count":N,"users":[{"user":U,"info":...,"connections":K},...]}
 * (with "truncated":true past max entries), prefixed by prefix inside the
 * object (e.g. "\"type\":\"presence\","). May throw.
 */
std::string ngx_http_realtime_presence_list(ngx_http_realtime_zone_t *z,
    std::string_view group, ngx_uint_t max, std::string_view prefix);

/* {"type":"presence","group":G} from a client (a dispatcher row). */
void ngx_http_realtime_presence_query(ngx_http_realtime_session_t *s,
    json_t *message) noexcept;
