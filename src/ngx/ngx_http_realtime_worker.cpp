/*
 * ngx_realtime_module: slots and wake-ups.
 *
 * Each worker owns a slot in every realtime zone and a datagram socket in
 * the abstract AF_UNIX namespace whose name it picks at random and writes
 * into its slot. A publisher queues a message for the slots that have
 * subscribers of its group and sends one byte to a worker only if no
 * wake-up is pending for it already, so under load wake-ups coalesce.
 *
 * Random names cannot collide with another nginx sharing the network
 * namespace (pids repeat across PID namespaces) nor be bound first by a
 * process that predicts them. Nothing here is fatal to a worker: without a
 * wake-up socket it drains on a short timer, and every worker drains on a
 * slow timer anyway, so a lost wake-up delays a message but never strands
 * a queue.
 */

#include "ngx_http_realtime_worker.h"

#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>


#define NGX_HTTP_REALTIME_SAFETY_DRAIN     1000   /* ms, with wake-ups */
#define NGX_HTTP_REALTIME_DEGRADED_DRAIN   50     /* ms, without */
#define NGX_HTTP_REALTIME_RECLAIM          1000   /* ms between checks for
                                                     dead workers */
#define NGX_HTTP_REALTIME_BIND_TRIES       8


static_assert(NGX_MAX_PROCESSES <= realtime::kMaxWorkerSlots,
              "a slot for every process nginx can run");


ngx_http_realtime_worker_t  ngx_http_realtime_worker;


static ngx_connection_t *ngx_http_realtime_wake_socket(ngx_cycle_t *cycle);
static void ngx_http_realtime_wake_handler(ngx_event_t *rev) noexcept;
static void ngx_http_realtime_drain_handler(ngx_event_t *ev) noexcept;
static void ngx_http_realtime_safety_handler(ngx_event_t *ev) noexcept;
static void ngx_http_realtime_reclaim_dead(ngx_http_realtime_zone_t *z,
    ngx_log_t *log);
static ngx_int_t ngx_http_realtime_claim(ngx_http_realtime_zone_t *z,
    ngx_log_t *log);
static void ngx_http_realtime_presence_handler(ngx_event_t *ev) noexcept;
static void ngx_http_realtime_sweep(ngx_http_realtime_worker_t *w) noexcept;


ngx_int_t
ngx_http_realtime_worker_init(ngx_cycle_t *cycle, void (*drain)(void),
    void (*control)(ngx_http_realtime_session_t *s, std::string_view what),
    void (*tick)(void)) noexcept
{
    ngx_uint_t                      i;
    ngx_http_realtime_zone_t      **zones, *z;
    ngx_http_realtime_worker_t     *w;
    ngx_http_realtime_main_conf_t  *rmcf;

    w = &ngx_http_realtime_worker;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    /* the flush list serves every session, with or without a zone */
    w->drain = drain;
    w->control = control;
    w->tick = tick;
    ngx_queue_init(&w->flush_list);

    w->drain_event.handler = ngx_http_realtime_drain_handler;
    w->drain_event.log = cycle->log;
    w->drain_event.data = w;

    rmcf = (ngx_http_realtime_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle, ngx_realtime_module);

    if (rmcf == NULL || rmcf->zones.nelts == 0) {
        return NGX_OK;
    }

    w->main_conf = rmcf;

    w->presence_timer.handler = ngx_http_realtime_presence_handler;
    w->presence_timer.log = cycle->log;
    w->presence_timer.data = w;
    w->presence_timer.cancelable = 1;
    w->reclaimed_at = ngx_current_msec;

    w->wake_conn = ngx_http_realtime_wake_socket(cycle);
    if (w->wake_conn == NULL) {
        w->wake_name_len = 0;
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                      "realtime: no wake-up socket, this worker delivers "
                      "published messages every %d ms instead",
                      NGX_HTTP_REALTIME_DEGRADED_DRAIN);
    }

    /* a periodic drain: a lost wake-up only delays, never strands */
    w->safety_interval = w->wake_conn ? NGX_HTTP_REALTIME_SAFETY_DRAIN
                                      : NGX_HTTP_REALTIME_DEGRADED_DRAIN;
    w->safety_timer.handler = ngx_http_realtime_safety_handler;
    w->safety_timer.log = cycle->log;
    w->safety_timer.data = w;
    w->safety_timer.cancelable = 1;     /* must not delay a shutdown */
    ngx_add_timer(&w->safety_timer, w->safety_interval);

    zones = (ngx_http_realtime_zone_t **) rmcf->zones.elts;

    for (i = 0; i < rmcf->zones.nelts; i++) {
        z = zones[i];
        z->slot = -1;
        z->generation = z->root->generation;

        ngx_http_realtime_reclaim_dead(z, cycle->log);

        if (ngx_http_realtime_claim(z, cycle->log) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "realtime: no free worker slot in zone \"%V\" "
                          "(%ui live workers at most); retrying at the next "
                          "connection that joins groups", &z->name,
                          (ngx_uint_t) realtime::kMaxWorkerSlots);
        }
    }

    return NGX_OK;
}


/*
 * A datagram socket bound to a random abstract name, which is kept in the
 * worker's state (and copied into every slot it claims). A name already
 * taken (by chance or by a squatter) is simply replaced by another one.
 */

static ngx_connection_t *
ngx_http_realtime_wake_socket(ngx_cycle_t *cycle)
{
    u_char              *p, rnd[16];
    socklen_t            len;
    ngx_uint_t           i, tries;
    ngx_socket_t         fd;
    ngx_connection_t    *c;
    struct sockaddr_un   sa;

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_socket_errno,
                      "realtime: socket(AF_UNIX) failed");
        return NULL;
    }

    for (tries = 0; /* void */; tries++) {

        if (tries == NGX_HTTP_REALTIME_BIND_TRIES) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_socket_errno,
                          "realtime: bind() of the wake-up socket failed");
            ngx_close_socket(fd);
            return NULL;
        }

        if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t) sizeof(rnd))
        {
            /* no entropy yet (early boot): unique, if not unpredictable */
            for (i = 0; i < sizeof(rnd); i++) {
                rnd[i] = (u_char) (ngx_random() ^ ngx_pid ^ (ngx_time() >> i));
            }
        }

        ngx_memzero(&sa, sizeof(struct sockaddr_un));
        sa.sun_family = AF_UNIX;

        /* abstract namespace: leading NUL, no file, no permissions to manage */
        p = ngx_cpymem((u_char *) sa.sun_path + 1, "ngx_rt.", 7);
        p = ngx_hex_dump(p, rnd, sizeof(rnd));

        len = (socklen_t) (offsetof(struct sockaddr_un, sun_path)
                           + (p - (u_char *) sa.sun_path));

        if (bind(fd, (struct sockaddr *) &sa, len) == 0) {
            break;
        }

        if (ngx_socket_errno != NGX_EADDRINUSE) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, ngx_socket_errno,
                          "realtime: bind() of the wake-up socket failed");
            ngx_close_socket(fd);
            return NULL;
        }
    }

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        ngx_close_socket(fd);
        return NULL;
    }

    /* "ngx_rt." and 32 hex digits after the NUL: 40 bytes, always fits */
    ngx_http_realtime_worker.wake_name_len =
        ngx_min((size_t) (p - (u_char *) sa.sun_path),
                realtime::kWakeNameMax);
    ngx_memcpy(ngx_http_realtime_worker.wake_name, sa.sun_path,
               ngx_http_realtime_worker.wake_name_len);

    c->read->handler = ngx_http_realtime_wake_handler;
    c->read->log = cycle->log;
    c->data = &ngx_http_realtime_worker;

    /* level-triggered: the handler reads until EAGAIN anyway */
    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NULL;
    }

    return c;
}


/* Claims a slot in z and publishes our wake-up address in it. */

static ngx_int_t
ngx_http_realtime_claim(ngx_http_realtime_zone_t *z, ngx_log_t *log)
{
    int                        slot;
    realtime::WorkerSlot      *w;

    ngx_http_realtime_registry_t  reg(z);

    slot = reg->claim_slot((int32_t) ngx_pid);
    if (slot < 0) {
        return NGX_DECLINED;
    }

    w = &z->root->slots[slot];

    ngx_memcpy(w->wake_name, ngx_http_realtime_worker.wake_name,
               ngx_http_realtime_worker.wake_name_len);
    w->wake_len = (uint8_t) ngx_http_realtime_worker.wake_name_len;

    z->slot = slot;
    z->owner = w->owner;

    return NGX_OK;
}


ngx_int_t
ngx_http_realtime_worker_slot(ngx_http_realtime_zone_t *z, ngx_log_t *log)
    noexcept
{
    if (z->slot >= 0) {
        return NGX_OK;
    }

    if (ngx_exiting || ngx_http_realtime_worker.main_conf == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_realtime_reclaim_dead(z, log);

    return ngx_http_realtime_claim(z, log);
}


static void
ngx_http_realtime_release_own_slot(ngx_http_realtime_zone_t *z)
{
    if (z->slot < 0) {
        return;
    }

    realtime::SlotSet  wake;

    {
        ngx_http_realtime_registry_t  reg(z);

        /* only our own claim: another worker may have reclaimed it */
        (void) reg->release_slot_of((uint32_t) z->slot, z->owner,
                                    ngx_http_realtime_now_ms(), wake);
    }

    z->slot = -1;
    z->owner = 0;

    /* presence leaves of the connections that went with the slot */
    ngx_http_realtime_worker_wake(z, wake);
}


void
ngx_http_realtime_worker_idle(ngx_http_realtime_zone_t *z) noexcept
{
    if (!ngx_exiting || z->slot < 0) {
        return;
    }

    {
        ngx_http_realtime_registry_t  reg(z);

        if (z->root->slots[z->slot].connections) {
            return;
        }
    }

    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                  "realtime: last connection gone, giving back slot %i "
                  "of zone \"%V\"", z->slot, &z->name);

    ngx_http_realtime_release_own_slot(z);
}


void
ngx_http_realtime_worker_exit(ngx_cycle_t *cycle) noexcept
{
    ngx_uint_t                   i;
    ngx_http_realtime_zone_t   **zones;
    ngx_http_realtime_worker_t  *w;

    w = &ngx_http_realtime_worker;

    if (w->drain_event.posted) {
        ngx_delete_posted_event(&w->drain_event);
    }

    if (w->main_conf == NULL) {
        return;
    }

    if (w->safety_timer.timer_set) {
        ngx_del_timer(&w->safety_timer);
    }

    if (w->presence_timer.timer_set) {
        ngx_del_timer(&w->presence_timer);
    }

    zones = (ngx_http_realtime_zone_t **) w->main_conf->zones.elts;

    /* connections still open are gone with us: so are their counts */
    for (i = 0; i < w->main_conf->zones.nelts; i++) {
        ngx_http_realtime_release_own_slot(zones[i]);
    }

    /* after the slots: a wake-up to us now fails and finds nothing */
    if (w->wake_conn) {
        ngx_close_connection(w->wake_conn);
        w->wake_conn = NULL;
    }

    if (w->ping_frame) {
        realtime::release(w->ping_frame);
        w->ping_frame = NULL;
    }

    for (realtime::SharedFrame *&f : w->comment_frame) {
        if (f) {
            realtime::release(f);
            f = NULL;
        }
    }

    w->main_conf = NULL;
}


/*
 * A slot whose process no longer exists (killed with SIGKILL, crashed)
 * still counts its subscribers and holds messages; free it. Workers of one
 * nginx share a PID namespace, so kill(pid, 0) speaks of the right process.
 */

static void
ngx_http_realtime_reclaim_dead(ngx_http_realtime_zone_t *z, ngx_log_t *log)
{
    uint32_t  i, n;
    int32_t   pid;
    uint64_t  owner;
    struct {
        uint32_t  slot;
        int32_t   pid;
        uint64_t  owner;
    } live[realtime::kMaxWorkerSlots];

    n = 0;

    {
        ngx_http_realtime_registry_t  reg(z);

        for (i = 0; i < realtime::kMaxWorkerSlots; i++) {
            if (z->root->slots[i].pid != 0) {
                live[n].slot = i;
                live[n].pid = z->root->slots[i].pid;
                live[n].owner = z->root->slots[i].owner;
                n++;
            }
        }
    }

    for (i = 0; i < n; i++) {
        pid = live[i].pid;
        owner = live[i].owner;

        if (pid == (int32_t) ngx_pid || kill(pid, 0) == 0 || errno != ESRCH) {
            continue;
        }

        bool               released;
        realtime::SlotSet  wake;

        {
            ngx_http_realtime_registry_t  reg(z);

            released = reg->release_slot_of(live[i].slot, owner,
                                            ngx_http_realtime_now_ms(), wake);
        }

        /* its users left: their leave events go out */
        ngx_http_realtime_worker_wake(z, wake);

        if (released) {
            ngx_log_error(NGX_LOG_NOTICE, log, 0,
                          "realtime: reclaimed slot %ui of exited worker %P "
                          "in zone \"%V\"", (ngx_uint_t) live[i].slot,
                          (ngx_pid_t) pid, &z->name);
        }
    }
}


void
ngx_http_realtime_worker_wake(ngx_http_realtime_zone_t *z,
    const realtime::SlotSet &wake) noexcept
{
    ngx_err_t            err;
    socklen_t            len;
    struct sockaddr_un   sa;
    struct {
        uint32_t  slot;
        int32_t   pid;
        uint64_t  owner;
        uint8_t   name_len;
        char      name[realtime::kWakeNameMax];
    } to[64];
    ngx_uint_t           n, i;
    bool                 self;

    /* in batches of 64 slots: addresses are copied under the lock */
    for (uint32_t word = 0; word < realtime::kMaxWorkerSlots / 64; word++) {

        if (wake.bits[word] == 0) {
            continue;
        }

        n = 0;
        self = false;

        {
            ngx_http_realtime_registry_t  reg(z);

            for (uint64_t b = wake.bits[word]; b; b &= b - 1) {
                uint32_t slot = word * 64 + (uint32_t) __builtin_ctzll(b);
                const realtime::WorkerSlot &w = z->root->slots[slot];

                if ((ngx_int_t) slot == z->slot) {
                    self = true;
                    continue;
                }

                if (w.pid == 0 || w.wake_len == 0) {
                    continue;   /* gone, or drains on its timer */
                }

                to[n].slot = slot;
                to[n].pid = w.pid;
                to[n].owner = w.owner;
                to[n].name_len = w.wake_len;
                ngx_memcpy(to[n].name, w.wake_name, w.wake_len);
                n++;
            }
        }

        if (self) {
            ngx_post_event(&ngx_http_realtime_worker.drain_event,
                           &ngx_posted_events);
        }

        for (i = 0; i < n; i++) {

            ngx_memzero(&sa, sizeof(struct sockaddr_un));
            sa.sun_family = AF_UNIX;
            ngx_memcpy(sa.sun_path, to[i].name, to[i].name_len);
            len = (socklen_t) (offsetof(struct sockaddr_un, sun_path)
                               + to[i].name_len);

            if (ngx_http_realtime_worker.wake_conn == NULL) {
                err = NGX_EBADF;

            } else if (sendto(ngx_http_realtime_worker.wake_conn->fd, "", 1, 0,
                              (struct sockaddr *) &sa, len) != -1)
            {
                continue;

            } else {
                err = ngx_socket_errno;
            }

            if (err == NGX_EAGAIN) {
                continue;   /* its socket is full of wake-ups: it will wake */
            }

            realtime::SlotSet             left;
            ngx_http_realtime_registry_t  reg(z);

            if (err == NGX_ECONNREFUSED
                && reg->release_slot_of(to[i].slot, to[i].owner,
                                        ngx_http_realtime_now_ms(), left))
            {
                /* nobody holds its name: the worker is gone */
                ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                              "realtime: worker %P is gone, reclaimed its "
                              "slot in zone \"%V\"", (ngx_pid_t) to[i].pid,
                              &z->name);

                /*
                 * Its users' leave events were queued for the workers in
                 * left; those not woken by this call already get them at
                 * their periodic drain (no recursion under the lock).
                 */
                for (uint32_t b = 0; b < realtime::kMaxWorkerSlots / 64; b++) {
                    uint64_t  more = left.bits[b] & ~wake.bits[b];

                    for (; more; more &= more - 1) {
                        reg->wake_failed(b * 64
                                         + (uint32_t) __builtin_ctzll(more));
                    }
                }

                continue;
            }

            /*
             * The flag says a wake-up is pending: it is not. Cleared, the
             * next publish tries again; until then the target's periodic
             * drain delivers.
             */
            if (z->root->slots[to[i].slot].owner == to[i].owner) {
                reg->wake_failed(to[i].slot);
            }

            if (err != NGX_ECONNREFUSED) {
                ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, err,
                              "realtime: wake-up of worker %P failed",
                              (ngx_pid_t) to[i].pid);
            }
        }
    }
}


static void
ngx_http_realtime_wake_handler(ngx_event_t *rev) noexcept
{
    u_char             buf[256];
    ngx_connection_t  *c = (ngx_connection_t *) rev->data;

    /* many wake-ups may be pending; one drain serves them all */
    while (recv(c->fd, buf, sizeof(buf), 0) > 0) { /* void */ }

    ngx_http_realtime_drain_handler(&ngx_http_realtime_worker.drain_event);
}


static void
ngx_http_realtime_drain_handler(ngx_event_t *ev) noexcept
{
    if (ev->posted) {
        ngx_delete_posted_event(ev);
    }

    if (ngx_http_realtime_worker.drain) {
        ngx_http_realtime_worker.drain();
    }
}


/*
 * The periodic drain; once a second it also reclaims the slots of workers
 * that died (their users leave presence) and publishes the presence leaves
 * that are due, whoever deferred them (an exited worker cannot).
 */

static void
ngx_http_realtime_safety_handler(ngx_event_t *ev) noexcept
{
    ngx_uint_t                   i;
    ngx_http_realtime_zone_t   **zones;
    ngx_http_realtime_worker_t  *w = &ngx_http_realtime_worker;

    if (w->main_conf
        && ngx_current_msec - w->reclaimed_at >= NGX_HTTP_REALTIME_RECLAIM)
    {
        w->reclaimed_at = ngx_current_msec;

        if (!ngx_exiting) {
            zones = (ngx_http_realtime_zone_t **) w->main_conf->zones.elts;

            for (i = 0; i < w->main_conf->zones.nelts; i++) {
                ngx_http_realtime_reclaim_dead(zones[i], ev->log);
            }

            ngx_http_realtime_sweep(w);
        }

        /* after the reclaim: a dead subscriber's slot is free by now */
        if (w->tick) {
            w->tick();
        }
    }

    ngx_http_realtime_drain_handler(&w->drain_event);

    if (w->main_conf) {
        ngx_add_timer(&w->safety_timer, w->safety_interval);
    }
}


void
ngx_http_realtime_worker_presence_due(uint64_t deadline) noexcept
{
    uint64_t                     now;
    ngx_msec_t                   delay;
    ngx_http_realtime_worker_t  *w = &ngx_http_realtime_worker;

    if (w->main_conf == NULL) {
        return;
    }

    now = ngx_http_realtime_now_ms();
    delay = deadline > now ? (ngx_msec_t) (deadline - now) : 0;

    /* +1: a timer fires at its millisecond, the deadline may be later in it */
    delay += 1;

    if (w->presence_timer.timer_set
        && w->presence_timer.timer.key <= ngx_current_msec + delay)
    {
        return;     /* it fires sooner anyway */
    }

    ngx_add_timer(&w->presence_timer, delay);
}


static void
ngx_http_realtime_presence_handler(ngx_event_t *ev) noexcept
{
    ngx_http_realtime_sweep((ngx_http_realtime_worker_t *) ev->data);
}


/* Publishes the presence leaves that are due; re-arms for the next one. */

static void
ngx_http_realtime_sweep(ngx_http_realtime_worker_t *w) noexcept
{
    uint64_t                    next, earliest;
    ngx_uint_t                  i;
    realtime::SlotSet           wake;
    ngx_http_realtime_zone_t  **zones;

    if (w->main_conf == NULL) {
        return;
    }

    zones = (ngx_http_realtime_zone_t **) w->main_conf->zones.elts;
    earliest = 0;

    for (i = 0; i < w->main_conf->zones.nelts; i++) {
        realtime::SlotSet  zone_wake;

        {
            ngx_http_realtime_registry_t  reg(zones[i]);

            next = reg->sweep_presence(ngx_http_realtime_now_ms(), zone_wake);
        }

        if (!zone_wake.none()) {
            ngx_http_realtime_worker_wake(zones[i], zone_wake);
        }

        if (next && (earliest == 0 || next < earliest)) {
            earliest = next;
        }
    }

    /*
     * Any worker may fire the next one (the sweep is under the lock, the
     * others find nothing): a leave deferred by a worker that exited since
     * is told on time. A worker that is exiting waits for nobody.
     */
    if (earliest && !ngx_exiting) {
        ngx_http_realtime_worker_presence_due(earliest);
    }
}
