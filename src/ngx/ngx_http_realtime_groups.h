/*
 * ngx_realtime_module: group membership of this worker's connections (the
 * local fan-out lists and the zone's counts) and delivery of the messages
 * queued for this worker.
 */

#pragma once

#include "ngx_http_realtime_session.h"


/*
 * Joins the groups (ngx_str_t names) in the zone and this worker's fan-out
 * lists, before the 101. With limit_key, the connection also joins that
 * internal group, but only while it has fewer than limit members.
 * NGX_OK; NGX_BUSY: over the limit; NGX_DECLINED: the zone is full or this
 * worker has no slot; NGX_ERROR.
 */
ngx_int_t ngx_http_realtime_groups_join(ngx_http_realtime_session_t *s,
    ngx_array_t *groups, ngx_str_t *limit_key, ngx_uint_t limit) noexcept;

/* Leaves every group (the session's release handler). */
void ngx_http_realtime_groups_leave_all(ngx_http_realtime_session_t *s)
    noexcept;

/* Delivers what is queued for this worker in every zone (its drain). */
void ngx_http_realtime_groups_drain(void) noexcept;
