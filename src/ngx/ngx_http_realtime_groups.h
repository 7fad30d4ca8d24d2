/*
 * ngx_realtime_module: group membership of this worker's connections (the
 * local fan-out lists and the zone's counts) and delivery of the messages
 * queued for this worker.
 */

#pragma once

#include "ngx_http_realtime_session.h"


/*
 * Joins the groups (ngx_str_t names) in the zone and this worker's fan-out
 * lists, before the 101; specs, when not NULL, gives each group's presence
 * spec (NULL entries: untracked). With user_key, the connection also joins
 * that internal group (its user's connections: actions by user reach them
 * through it), but only while it has fewer than limit members (0: no
 * limit). NGX_OK; NGX_BUSY: over the limit; NGX_DECLINED: the zone is full
 * or this worker has no slot; NGX_ERROR.
 */
ngx_int_t ngx_http_realtime_groups_join(ngx_http_realtime_session_t *s,
    ngx_array_t *groups, const realtime::PresenceSpec *const *specs,
    ngx_str_t *user_key, ngx_uint_t limit) noexcept;

/*
 * One more group for a connection that is serving (subscribe on the fly,
 * a subscribe action): NGX_OK (also when it is a member already: *added
 * says), NGX_DECLINED: the zone is full, NGX_ERROR.
 */
ngx_int_t ngx_http_realtime_groups_add(ngx_http_realtime_session_t *s,
    std::string_view name, const realtime::PresenceSpec *spec, bool *added)
    noexcept;

/* Leaves one group; NGX_DECLINED when it was not a member. */
ngx_int_t ngx_http_realtime_groups_remove(ngx_http_realtime_session_t *s,
    std::string_view name) noexcept;

/* Whether s is in the group (zone's view). */
bool ngx_http_realtime_groups_member(ngx_http_realtime_session_t *s,
    std::string_view name) noexcept;

/* Leaves every group (the session's release handler). */
void ngx_http_realtime_groups_leave_all(ngx_http_realtime_session_t *s)
    noexcept;

/* Delivers what is queued for this worker in every zone (its drain). */
void ngx_http_realtime_groups_drain(void) noexcept;

/* The groups s is in, comma-separated (not the internal "~user:" one). */
void ngx_http_realtime_groups_names(ngx_http_realtime_session_t *s,
    std::string *out);

/* How many groups s is in (not counting the internal "~user:" one). */
ngx_uint_t ngx_http_realtime_groups_count(ngx_http_realtime_session_t *s)
    noexcept;
