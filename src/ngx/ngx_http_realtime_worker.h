/*
 * ngx_realtime_module: this worker's part of cross-worker delivery: its
 * slot in each zone, its wake-up socket and the drain that follows a
 * wake-up. What a drain does is given by the caller (the groups file).
 */

#pragma once

#include "ngx_http_realtime_module.h"


/*
 * init_process / exit_process; drain is called when our queues have work,
 * control for each connection an action by user (a control message) is for,
 * tick once a second (after dead workers' slots were reclaimed).
 */
ngx_int_t ngx_http_realtime_worker_init(ngx_cycle_t *cycle,
    void (*drain)(void),
    void (*control)(ngx_http_realtime_session_t *s, std::string_view what),
    void (*tick)(void)) noexcept;
void ngx_http_realtime_worker_exit(ngx_cycle_t *cycle) noexcept;

/*
 * A slot for this worker in z, claimed now if it has none (a worker that
 * found the table full retries, after reclaiming the slots of workers that
 * died). NGX_OK, or NGX_DECLINED when there is still none.
 */
ngx_int_t ngx_http_realtime_worker_slot(ngx_http_realtime_zone_t *z,
    ngx_log_t *log) noexcept;

/*
 * An old worker (shutting down) whose last connection in z left gives its
 * slot back at once, so a long reload does not hold slots.
 */
void ngx_http_realtime_worker_idle(ngx_http_realtime_zone_t *z) noexcept;

/* Wakes the workers of wake (after a publish, outside the lock). */
void ngx_http_realtime_worker_wake(ngx_http_realtime_zone_t *z,
    const realtime::SlotSet &wake) noexcept;

/*
 * A presence leave falls due at deadline (CLOCK_MONOTONIC ms): this
 * worker's presence timer fires then (or earlier, if set already) and
 * publishes the leaves that are due in every zone.
 */
void ngx_http_realtime_worker_presence_due(uint64_t deadline) noexcept;
