/*
 * ngx_realtime_module: this worker's part of cross-worker delivery.
 *
 * Each worker owns a slot in every realtime zone and a datagram socket in
 * the abstract AF_UNIX namespace named after its pid. A publisher queues a
 * message for the slots that have subscribers of its group and sends one
 * byte to a worker only if no wake-up is pending for it already, so under
 * load wake-ups coalesce. The woken worker takes its whole queue under the
 * lock, copies each message once into a frame shared by all its local
 * subscribers, and writes each connection's batch with one send_chain().
 * Pids, not pointers, name workers, so this works across reload
 * generations and a respawned worker can reclaim a killed one's slot.
 */

#include "ngx_http_realtime_session.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <string>
#include <unordered_map>


struct ngx_http_realtime_local_group_t {
    std::string                   name;
    ngx_queue_t                   members;
    ngx_uint_t                    count;
};


/* This worker's subscribers of one zone, by group name. */
struct ngx_http_realtime_local_groups_t {
    std::unordered_map<std::string_view,
                       ngx_http_realtime_local_group_t *>  map;
};


static void ngx_http_realtime_wake_handler(ngx_event_t *rev) noexcept;
static void ngx_http_realtime_drain_handler(ngx_event_t *ev) noexcept;
static void ngx_http_realtime_drain(ngx_http_realtime_zone_t *z);
static void ngx_http_realtime_reclaim_dead(ngx_http_realtime_zone_t *z,
    ngx_log_t *log);
static socklen_t ngx_http_realtime_wake_addr(struct sockaddr_un *sa,
    ngx_pid_t pid);


/* per worker; set in init_process */
static ngx_connection_t               *ngx_http_realtime_wake_conn;
static ngx_event_t                     ngx_http_realtime_drain_event;
static ngx_http_realtime_main_conf_t  *ngx_http_realtime_main_conf;
static ngx_queue_t                     ngx_http_realtime_flush_list;

/*
 * Time spent writing connections per turn of the event loop. A fan-out to
 * many connections is written in slices, so publish requests and other
 * events are served in between (a publish is answered in well under a
 * millisecond), and messages published meanwhile join the pending
 * connections' queues, so they go out in the same writev.
 */
#define NGX_HTTP_REALTIME_FLUSH_SLICE_NS  300000
#define NGX_HTTP_REALTIME_FLUSH_CHECK     16      /* connections per clock read */


ngx_int_t
ngx_http_realtime_init_process(ngx_cycle_t *cycle) noexcept
{
    ngx_int_t                       slot;
    ngx_uint_t                      i;
    ngx_socket_t                    fd;
    socklen_t                       len;
    struct sockaddr_un              sa;
    ngx_connection_t               *c;
    ngx_http_realtime_zone_t      **zones, *z;
    ngx_http_realtime_main_conf_t  *rmcf;

    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    rmcf = (ngx_http_realtime_main_conf_t *)
               ngx_http_cycle_get_module_main_conf(cycle, ngx_realtime_module);

    if (rmcf == NULL || rmcf->zones.nelts == 0) {
        return NGX_OK;
    }

    ngx_http_realtime_main_conf = rmcf;
    ngx_queue_init(&ngx_http_realtime_flush_list);

    ngx_http_realtime_drain_event.handler = ngx_http_realtime_drain_handler;
    ngx_http_realtime_drain_event.log = cycle->log;
    ngx_http_realtime_drain_event.data = rmcf;

    zones = (ngx_http_realtime_zone_t **) rmcf->zones.elts;

    for (i = 0; i < rmcf->zones.nelts; i++) {
        z = zones[i];

        z->local = new (std::nothrow) ngx_http_realtime_local_groups_t();
        if (z->local == NULL) {
            return NGX_ERROR;
        }

        ngx_http_realtime_reclaim_dead(z, cycle->log);

        {
            ngx_http_realtime_registry_t  reg(z);

            slot = reg->claim_slot((int32_t) ngx_pid);
        }

        if (slot < 0) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "realtime: no free worker slot in zone \"%V\" "
                          "(%ui live workers at most); this worker refuses "
                          "connections that join groups", &z->name,
                          (ngx_uint_t) realtime::kMaxWorkerSlots);
        }

        z->slot = slot;
    }

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "realtime: socket(AF_UNIX) failed");
        return NGX_ERROR;
    }

    len = ngx_http_realtime_wake_addr(&sa, ngx_pid);

    if (bind(fd, (struct sockaddr *) &sa, len) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "realtime: bind() of the wake-up socket failed");
        ngx_close_socket(fd);
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        ngx_close_socket(fd);
        return NGX_ERROR;
    }

    c->read->handler = ngx_http_realtime_wake_handler;
    c->read->log = cycle->log;
    c->data = rmcf;

    /* level-triggered: the handler reads until EAGAIN anyway */
    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_close_connection(c);
        return NGX_ERROR;
    }

    ngx_http_realtime_wake_conn = c;

    return NGX_OK;
}


void
ngx_http_realtime_exit_process(ngx_cycle_t *cycle) noexcept
{
    ngx_uint_t                 i;
    ngx_http_realtime_zone_t **zones, *z;

    if (ngx_http_realtime_main_conf == NULL) {
        return;
    }

    if (ngx_http_realtime_drain_event.posted) {
        ngx_delete_posted_event(&ngx_http_realtime_drain_event);
    }

    if (ngx_http_realtime_wake_conn) {
        ngx_close_connection(ngx_http_realtime_wake_conn);
        ngx_http_realtime_wake_conn = NULL;
    }

    zones = (ngx_http_realtime_zone_t **) ngx_http_realtime_main_conf->zones.elts;

    for (i = 0; i < ngx_http_realtime_main_conf->zones.nelts; i++) {
        z = zones[i];

        /* connections still open are gone with us: so are their counts */
        if (z->slot >= 0) {
            ngx_http_realtime_registry_t  reg(z);

            reg->release_slot((uint32_t) z->slot);
            z->slot = -1;
        }
    }
}


/*
 * A slot whose process no longer exists (killed with SIGKILL, crashed)
 * still counts its subscribers and collects messages; free it.
 */

static void
ngx_http_realtime_reclaim_dead(ngx_http_realtime_zone_t *z, ngx_log_t *log)
{
    uint32_t  i;
    int32_t   pids[realtime::kMaxWorkerSlots];

    {
        ngx_http_realtime_registry_t  reg(z);

        for (i = 0; i < realtime::kMaxWorkerSlots; i++) {
            pids[i] = z->root->slots[i].pid;
        }
    }

    for (i = 0; i < realtime::kMaxWorkerSlots; i++) {
        if (pids[i] == 0 || kill(pids[i], 0) == 0 || errno != ESRCH) {
            continue;
        }

        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "realtime: reclaiming slot %ui of exited worker %P "
                      "in zone \"%V\"", (ngx_uint_t) i, (ngx_pid_t) pids[i],
                      &z->name);

        ngx_http_realtime_registry_t  reg(z);

        if (z->root->slots[i].pid == pids[i]) {
            reg->release_slot(i);
        }
    }
}


static socklen_t
ngx_http_realtime_wake_addr(struct sockaddr_un *sa, ngx_pid_t pid)
{
    u_char  *p;

    ngx_memzero(sa, sizeof(struct sockaddr_un));
    sa->sun_family = AF_UNIX;

    /* abstract namespace: leading NUL, no file, no permissions to manage */
    p = ngx_sprintf((u_char *) sa->sun_path + 1, "ngx_realtime.%P", pid);

    return (socklen_t) (offsetof(struct sockaddr_un, sun_path)
                        + (p - (u_char *) sa->sun_path));
}


void
ngx_http_realtime_wake(ngx_http_realtime_zone_t *z, uint64_t slots,
    const int32_t *pids) noexcept
{
    uint32_t            i;
    socklen_t           len;
    ngx_err_t           err;
    struct sockaddr_un  sa;

    for (i = 0; slots; i++, slots >>= 1) {

        if (!(slots & 1)) {
            continue;
        }

        if (pids[i] == (int32_t) ngx_pid) {
            ngx_post_event(&ngx_http_realtime_drain_event, &ngx_posted_events);
            continue;
        }

        if (ngx_http_realtime_wake_conn == NULL) {
            continue;
        }

        len = ngx_http_realtime_wake_addr(&sa, pids[i]);

        if (sendto(ngx_http_realtime_wake_conn->fd, "", 1, 0,
                   (struct sockaddr *) &sa, len) != -1)
        {
            continue;
        }

        err = ngx_socket_errno;

        if (err == NGX_EAGAIN) {
            continue;   /* its socket is full of wake-ups: it will wake */
        }

        if (err == NGX_ECONNREFUSED || err == NGX_ENOENT) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "realtime: worker %P is gone, reclaiming its slot",
                          (ngx_pid_t) pids[i]);

            ngx_http_realtime_registry_t  reg(z);

            if (z->root->slots[i].pid == pids[i]) {
                reg->release_slot(i);
            }

            continue;
        }

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, err,
                      "realtime: sendto() wake-up to worker %P failed",
                      (ngx_pid_t) pids[i]);
    }
}


static void
ngx_http_realtime_wake_handler(ngx_event_t *rev) noexcept
{
    u_char             buf[256];
    ngx_connection_t  *c = (ngx_connection_t *) rev->data;

    /* many wake-ups may be pending; one drain serves them all */
    while (recv(c->fd, buf, sizeof(buf), 0) > 0) { /* void */ }

    ngx_http_realtime_drain_handler(&ngx_http_realtime_drain_event);
}


/* A monotonic clock in ns (vDSO: no syscall); ngx_current_msec stands still
   within one event handler. */

static uint64_t
ngx_http_realtime_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


static void
ngx_http_realtime_drain_handler(ngx_event_t *ev) noexcept
{
    uint64_t                         start;
    ngx_uint_t                       i, n;
    ngx_queue_t                     *q;
    ngx_http_realtime_zone_t       **zones;
    ngx_http_realtime_session_t     *s;
    ngx_http_realtime_main_conf_t   *rmcf;

    rmcf = ngx_http_realtime_main_conf;
    zones = (ngx_http_realtime_zone_t **) rmcf->zones.elts;

    if (ev->posted) {
        ngx_delete_posted_event(ev);
    }

    for (i = 0; i < rmcf->zones.nelts; i++) {
        if (zones[i]->slot >= 0) {
            ngx_http_realtime_drain(zones[i]);
        }
    }

    /* one send_chain() per connection for everything it got */
    start = ngx_http_realtime_now_ns();

    for (n = 1; /* void */; n++) {

        if (ngx_queue_empty(&ngx_http_realtime_flush_list)) {
            return;
        }

        if (n % NGX_HTTP_REALTIME_FLUSH_CHECK == 0
            && ngx_http_realtime_now_ns() - start
               > NGX_HTTP_REALTIME_FLUSH_SLICE_NS)
        {
            break;
        }

        q = ngx_queue_head(&ngx_http_realtime_flush_list);
        s = ((ngx_http_realtime_flush_link_t *)
                ngx_queue_data(q, ngx_http_realtime_flush_link_t, queue))
            ->session;

        ngx_queue_remove(q);
        s->in_flush = 0;

        ngx_http_realtime_session_flush(s);
    }

    if (!ngx_queue_empty(&ngx_http_realtime_flush_list)) {
        /* the rest after this turn's I/O: not from the posted loop itself */
        ngx_post_event(&ngx_http_realtime_drain_event, &ngx_posted_next_events);
    }
}


void
ngx_http_realtime_unlist(ngx_http_realtime_session_t *s) noexcept
{
    if (s->in_flush) {
        ngx_queue_remove(&s->flush_link.queue);
        s->in_flush = 0;
    }
}


static void
ngx_http_realtime_drain(ngx_http_realtime_zone_t *z)
{
    uint64_t                           delivered;
    ngx_queue_t                       *q;
    realtime::QueueNode               *list, *node;
    realtime::ShmMessage              *m;
    realtime::SharedFrame             *f;
    ngx_http_realtime_member_t        *member;
    ngx_http_realtime_session_t       *s;
    ngx_http_realtime_local_group_t   *g;

    {
        ngx_http_realtime_registry_t  reg(z);

        list = reg->take_queue((uint32_t) z->slot);
    }

    if (list == NULL) {
        return;
    }

    delivered = 0;

    /*
     * Messages are immutable and our queue holds a reference to each, so
     * they are read without the lock.
     */
    for (node = list; node; node = node->next) {
        m = node->message;

        auto it = z->local->map.find(m->group(node->group));
        if (it == z->local->map.end()) {
            continue;   /* its subscribers here left since it was queued */
        }

        g = it->second;

        f = realtime::SharedFrame::create(m->frame_size);
        if (f == NULL) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "realtime: out of memory, a message to \"%*s\" "
                          "was not delivered by this worker",
                          m->group(node->group).size(),
                          m->group(node->group).data());
            continue;
        }

        ngx_memcpy(f->data(), m->frame(), m->frame_size);

        for (q = ngx_queue_head(&g->members);
             q != ngx_queue_sentinel(&g->members);
             q = ngx_queue_next(q))
        {
            member = ngx_queue_data(q, ngx_http_realtime_member_t, in_group);
            s = member->session;

            ngx_http_realtime_session_send(s, f);

            if (!s->in_flush) {
                s->in_flush = 1;
                ngx_queue_insert_tail(&ngx_http_realtime_flush_list,
                                      &s->flush_link.queue);
            }
        }

        delivered += g->count;

        realtime::release(f);
    }

    {
        ngx_http_realtime_registry_t  reg(z);

        reg->release_queue(list);
        z->root->stats.frames_delivered += delivered;
    }
}


/* Links s into this worker's fan-out list of one group. */

static ngx_int_t
ngx_http_realtime_join_local(ngx_http_realtime_session_t *s,
    std::string_view name)
{
    ngx_http_realtime_zone_t         *z;
    ngx_http_realtime_member_t       *member;
    ngx_http_realtime_local_group_t  *g;

    z = s->zone;

    member = (ngx_http_realtime_member_t *)
                 ngx_alloc(sizeof(ngx_http_realtime_member_t),
                           s->connection->log);
    if (member == NULL) {
        return NGX_ERROR;
    }

    try {
        auto it = z->local->map.find(name);

        if (it == z->local->map.end()) {
            g = new ngx_http_realtime_local_group_t();
            g->name.assign(name);
            g->count = 0;
            ngx_queue_init(&g->members);

            try {
                z->local->map.emplace(std::string_view(g->name), g);
            } catch (...) {
                delete g;
                throw;
            }

        } else {
            g = it->second;
        }

    } catch (...) {
        ngx_free(member);
        return NGX_ERROR;
    }

    member->session = s;
    member->group = g;
    ngx_queue_insert_tail(&g->members, &member->in_group);
    ngx_queue_insert_tail(&s->members, &member->in_session);
    g->count++;

    return NGX_OK;
}


/* Unlinks every membership of s here; with reg, leaves the zone too. */

static void
ngx_http_realtime_leave_local(ngx_http_realtime_session_t *s,
    ngx_http_realtime_registry_t *reg)
{
    ngx_queue_t                      *q;
    ngx_http_realtime_zone_t         *z;
    ngx_http_realtime_member_t       *member;
    ngx_http_realtime_local_group_t  *g;

    z = s->zone;

    while (!ngx_queue_empty(&s->members)) {
        q = ngx_queue_head(&s->members);
        member = ngx_queue_data(q, ngx_http_realtime_member_t, in_session);
        g = member->group;

        ngx_queue_remove(&member->in_session);
        ngx_queue_remove(&member->in_group);

        if (reg) {
            (*reg)->unsubscribe(g->name, (uint32_t) z->slot);
        }

        if (--g->count == 0) {
            z->local->map.erase(std::string_view(g->name));
            delete g;
        }

        ngx_free(member);
    }
}


/*
 * With limit_key, the connection also joins that internal group, but only
 * while it has fewer than limit members: a per-user connection limit that
 * holds across workers and is cleaned up like any subscription.
 */

ngx_int_t
ngx_http_realtime_session_subscribe(ngx_http_realtime_session_t *s,
    ngx_array_t *groups, ngx_str_t *limit_key, ngx_uint_t limit) noexcept
{
    ngx_uint_t                  i, j;
    ngx_str_t                  *name;
    ngx_http_realtime_zone_t   *z;
    realtime::Registry::Status  rc;

    z = s->zone;
    name = (ngx_str_t *) groups->elts;

    if (z->slot < 0) {
        return NGX_DECLINED;
    }

    if (limit_key) {
        ngx_str_t  *key = (ngx_str_t *) ngx_array_push(groups);
        if (key == NULL) {
            return NGX_ERROR;
        }

        *key = *limit_key;
        name = (ngx_str_t *) groups->elts;
    }

    /* local lists first: they can fail without touching the zone */
    for (i = 0; i < groups->nelts; i++) {
        if (ngx_http_realtime_join_local(s, ngx_http_realtime_sv(name[i]))
            != NGX_OK)
        {
            ngx_http_realtime_leave_local(s, NULL);
            return NGX_ERROR;
        }
    }

    ngx_http_realtime_registry_t  reg(z);

    if (limit_key
        && reg->subscribers(ngx_http_realtime_sv(*limit_key)) >= limit)
    {
        ngx_http_realtime_leave_local(s, NULL);
        return NGX_BUSY;
    }

    for (i = 0; i < groups->nelts; i++) {
        rc = reg->subscribe(ngx_http_realtime_sv(name[i]), (uint32_t) z->slot);

        if (rc != realtime::Registry::Status::kOk) {
            for (j = 0; j < i; j++) {
                reg->unsubscribe(ngx_http_realtime_sv(name[j]),
                                 (uint32_t) z->slot);
            }

            ngx_http_realtime_leave_local(s, NULL);
            return NGX_DECLINED;
        }
    }

    z->root->slots[z->slot].connections++;
    z->root->stats.connections_opened++;
    s->counted = 1;

    return NGX_OK;
}


void
ngx_http_realtime_session_leave_all(ngx_http_realtime_session_t *s) noexcept
{
    ngx_http_realtime_zone_t  *z;

    z = s->zone;

    if (z == NULL || z->slot < 0 || !s->counted) {
        return;
    }

    ngx_http_realtime_registry_t  reg(z);

    z->root->slots[z->slot].connections--;
    s->counted = 0;

    ngx_http_realtime_leave_local(s, &reg);
}
