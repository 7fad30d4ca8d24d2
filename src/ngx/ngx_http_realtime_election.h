/*
 * ngx_realtime_module: a role that one worker of the node holds (the
 * Redis subscriber of realtime_redis, the links of realtime_channels_redis),
 * elected through the zone.
 *
 * The holder renews its lease every second. Another worker takes the role
 * when there is no holder, when the holder's slot was released (it exited,
 * or died and was reclaimed) or when the lease is older than the given
 * one; a worker that is shutting down gives it up at once.
 */

#pragma once

#include "ngx_http_realtime_module.h"


typedef enum {
    NGX_HTTP_REALTIME_ELECT_OTHER = 0,   /* another worker holds it, or none */
    NGX_HTTP_REALTIME_ELECT_KEPT,        /* ours, lease renewed */
    NGX_HTTP_REALTIME_ELECT_TAKEN,       /* ours from now on */
    NGX_HTTP_REALTIME_ELECT_RELEASED     /* was ours: given up (exiting) */
} ngx_http_realtime_elect_e;


/* Under the zone's lock. now: ngx_http_realtime_now_ms(). */
static inline ngx_http_realtime_elect_e
ngx_http_realtime_elect(ngx_http_realtime_zone_t *z, realtime::Election *e,
    uint64_t now, uint64_t lease)
{
    bool  mine = z->slot >= 0 && e->owner != 0 && e->owner == z->owner;

    if (ngx_exiting) {
        if (mine) {
            e->owner = 0;
            e->pid = 0;
            return NGX_HTTP_REALTIME_ELECT_RELEASED;
        }

        return NGX_HTTP_REALTIME_ELECT_OTHER;
    }

    if (mine) {
        e->lease = now;
        return NGX_HTTP_REALTIME_ELECT_KEPT;
    }

    if (z->slot < 0) {
        return NGX_HTTP_REALTIME_ELECT_OTHER;
    }

    const realtime::WorkerSlot  &held = z->root->slots[e->slot];

    if (e->owner == 0 || held.pid == 0 || held.owner != e->owner
        || now - e->lease > lease)
    {
        e->owner = z->owner;
        e->slot = (uint32_t) z->slot;
        e->pid = (int32_t) ngx_pid;
        e->lease = now;
        return NGX_HTTP_REALTIME_ELECT_TAKEN;
    }

    return NGX_HTTP_REALTIME_ELECT_OTHER;
}


/* Under the lock: gives the role up if this worker's claim still holds it
   (a successor may hold it already). Returns whether it did. */
static inline bool
ngx_http_realtime_election_release(ngx_http_realtime_zone_t *z,
    realtime::Election *e)
{
    if (z->slot >= 0 && e->owner != 0 && e->owner == z->owner) {
        e->owner = 0;
        e->pid = 0;
        return true;
    }

    return false;
}
