/*
 * ngx_realtime_module: local fan-out lists and delivery.
 *
 * The zone counts each group's subscribers per worker; each worker keeps
 * the list of its own connections per group. A drain takes the worker's
 * queue under the lock, copies each message once into a frame shared by
 * all its local subscribers, and writes each connection's batch with one
 * system call, in time slices so other events are served in between.
 */

#include "ngx_http_realtime_groups.h"

#include <string>
#include <unordered_map>
#include <vector>

#include "ngx_http_realtime_history.h"
#include "ngx_http_realtime_worker.h"


struct ngx_http_realtime_member_t;

/* An entry of a group's fan-out array: the session, read by every
   delivery, and its membership, to fix the index when entries move. */
struct ngx_http_realtime_member_ref_t {
    ngx_http_realtime_session_t        *session;
    ngx_http_realtime_member_t         *member;
};

struct ngx_http_realtime_local_group_t {
    std::string                   name;
    /*
     * An array rather than a linked list: a delivery walks it in order and
     * asks for the sessions ahead of use; a list made every step wait for
     * the previous node to come from memory (bench/RESULTS.md, the paced
     * fan-out). A leave moves the last entry into the hole.
     */
    std::vector<ngx_http_realtime_member_ref_t>  members;
};


/* This worker's subscribers of one zone, by group name. */
struct ngx_http_realtime_local_groups_t {
    std::unordered_map<std::string_view,
                       ngx_http_realtime_local_group_t *>  map;
};


/* A connection's membership of a group: in its session's list and at
   index in the group's array. */
struct ngx_http_realtime_member_t {
    ngx_queue_t                         in_session;  /* session's list */
    ngx_http_realtime_session_t        *session;
    ngx_http_realtime_local_group_t    *group;
    size_t                              index;       /* in group->members */
};


/*
 * Time spent writing connections per turn of the event loop (by the
 * delivery's direct writes, then by each flush). A fan-out to many
 * connections is written in slices, so publish requests and other events
 * are served in between (a publish is answered in well under a
 * millisecond), and messages published meanwhile join the pending
 * connections' queues, so they go out in the same write.
 */
#define NGX_HTTP_REALTIME_FLUSH_SLICE_NS  300000
#define NGX_HTTP_REALTIME_FLUSH_CHECK     16      /* connections per clock read */
#define NGX_HTTP_REALTIME_PREFETCH_AHEAD  8       /* members, in a delivery */


static void ngx_http_realtime_deliver(ngx_http_realtime_zone_t *z);
static realtime::SharedFrame *ngx_http_realtime_envelope_frame(
    const realtime::ShmMessage *m, uint16_t k);
static realtime::SharedFrame *ngx_http_realtime_stream_frame(
    const realtime::ShmMessage *m, uint16_t k, bool envelope, bool chunked);
static void ngx_http_realtime_flush_slice(void);

/* The delivery's direct writes (see ngx_http_realtime_give()). */
typedef struct {
    bool                                on;
    ngx_uint_t                          n;       /* written so far */
    uint64_t                            start;   /* ns */
} ngx_http_realtime_direct_t;

static uint64_t ngx_http_realtime_clock_ns(void);
static bool ngx_http_realtime_give(ngx_http_realtime_session_t *s,
    realtime::SharedFrame *f, ngx_http_realtime_direct_t *direct);
static void ngx_http_realtime_prefetch_ahead(ngx_queue_t *list,
    size_t link_offset);


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
        if (z->local == NULL) {
            z->local = new ngx_http_realtime_local_groups_t();
        }

        auto it = z->local->map.find(name);

        if (it == z->local->map.end()) {
            g = new ngx_http_realtime_local_group_t();
            g->name.assign(name);

            try {
                z->local->map.emplace(std::string_view(g->name), g);
            } catch (...) {
                delete g;
                throw;
            }

        } else {
            g = it->second;
        }

        g->members.push_back({s, member});

    } catch (...) {
        /* a group just made for s is empty: it is not left behind */
        if (z->local) {
            auto  it = z->local->map.find(name);

            if (it != z->local->map.end() && it->second->members.empty()) {
                g = it->second;
                z->local->map.erase(it);
                delete g;
            }
        }

        ngx_free(member);
        return NGX_ERROR;
    }

    member->session = s;
    member->group = g;
    member->index = g->members.size() - 1;
    ngx_queue_insert_tail(&s->members, &member->in_session);

    return NGX_OK;
}


/* Takes member out of its group's array (and the group out of the map
   when it was the last) and frees it. */

static void
ngx_http_realtime_unlink_member(ngx_http_realtime_zone_t *z,
    ngx_http_realtime_member_t *member)
{
    ngx_http_realtime_local_group_t  *g;

    g = member->group;

    ngx_queue_remove(&member->in_session);

    if (member->index + 1 != g->members.size()) {
        g->members[member->index] = g->members.back();
        g->members[member->index].member->index = member->index;
    }

    g->members.pop_back();

    /* a crowd that left gives its room back (a shrink that fails keeps it) */
    if (g->members.capacity() > 64
        && g->members.size() < g->members.capacity() / 4)
    {
        try {
            g->members.shrink_to_fit();
        } catch (...) {
        }
    }

    if (g->members.empty()) {
        z->local->map.erase(std::string_view(g->name));
        delete g;
    }

    ngx_free(member);
}


/* Unlinks every membership of s in this worker's fan-out lists. */

static void
ngx_http_realtime_leave_local(ngx_http_realtime_session_t *s)
{
    ngx_queue_t  *q;

    while (!ngx_queue_empty(&s->members)) {
        q = ngx_queue_head(&s->members);

        ngx_http_realtime_unlink_member(s->zone,
            ngx_queue_data(q, ngx_http_realtime_member_t, in_session));
    }
}


/* Unlinks s from this worker's fan-out list of one group. */

static bool
ngx_http_realtime_leave_local_one(ngx_http_realtime_session_t *s,
    std::string_view name)
{
    ngx_queue_t                 *q;
    ngx_http_realtime_member_t  *member;

    for (q = ngx_queue_head(&s->members);
         q != ngx_queue_sentinel(&s->members);
         q = ngx_queue_next(q))
    {
        member = ngx_queue_data(q, ngx_http_realtime_member_t, in_session);

        if (member->group->name != name) {
            continue;
        }

        ngx_http_realtime_unlink_member(s->zone, member);
        return true;
    }

    return false;
}


/*
 * After a leave: a user whose leave waits for its delay needs some worker
 * to publish it; this one arms its presence timer.
 */

static void
ngx_http_realtime_leave_done(ngx_http_realtime_session_t *s,
    const realtime::SlotSet &wake)
{
    if (!wake.none()) {
        ngx_http_realtime_worker_wake(s->zone, wake);
    }

    if (s->presence && s->conf->presence_leave_delay) {
        ngx_http_realtime_worker_presence_due(
            ngx_http_realtime_now_ms() + s->conf->presence_leave_delay);
    }
}


ngx_int_t
ngx_http_realtime_groups_join(ngx_http_realtime_session_t *s,
    ngx_array_t *groups, const realtime::PresenceSpec *const *specs,
    ngx_str_t *user_key, ngx_uint_t limit) noexcept
{
    ngx_uint_t                  i, n;
    ngx_str_t                  *name;
    realtime::SlotSet           wake;
    realtime::JoinGroup        *join;
    ngx_http_realtime_zone_t   *z;

    z = s->zone;

    if (ngx_http_realtime_worker_slot(z, s->connection->log) != NGX_OK) {
        return NGX_DECLINED;
    }

    n = groups->nelts;

    if (user_key) {
        ngx_str_t  *key = (ngx_str_t *) ngx_array_push(groups);
        if (key == NULL) {
            return NGX_ERROR;
        }

        *key = *user_key;
    }

    name = (ngx_str_t *) groups->elts;

    /* local lists first: they can fail without touching the zone */
    for (i = 0; i < groups->nelts; i++) {
        if (ngx_http_realtime_join_local(s, ngx_http_realtime_sv(name[i]))
            != NGX_OK)
        {
            ngx_http_realtime_leave_local(s);
            return NGX_ERROR;
        }
    }

    /* the names as the zone takes them; the request's pool holds them */
    join = (realtime::JoinGroup *)
        ngx_palloc(s->request->pool,
                   (groups->nelts + 1) * sizeof(realtime::JoinGroup));
    if (join == NULL) {
        ngx_http_realtime_leave_local(s);
        return NGX_ERROR;
    }

    for (i = 0; i < groups->nelts; i++) {
        new (&join[i]) realtime::JoinGroup();
        join[i].name = ngx_http_realtime_sv(name[i]);
        join[i].presence = (specs && i < n) ? specs[i] : nullptr;
    }

    {
        ngx_http_realtime_registry_t  reg(z);

        if (user_key && limit
            && reg->subscribers(ngx_http_realtime_sv(*user_key)) >= limit)
        {
            ngx_http_realtime_leave_local(s);
            return NGX_BUSY;
        }

        /*
         * Messages published before this moment are not its live ones
         * (some may still wait in this worker's queue): a resume gets them
         * from the history, under this same lock, so none is missed or
         * given twice. What the join itself publishes (the user's presence
         * join event) comes after, and reaches it.
         */
        s->joined_at = z->root->published;

        s->shm_conn = reg->join(join, groups->nelts, (uint32_t) z->slot, wake);

        if (s->shm_conn == NULL) {
            ngx_http_realtime_leave_local(s);
            return NGX_DECLINED;
        }

        s->conn_id = s->shm_conn->id;
        s->handshake_groups = n;

        std::string_view  *names = (std::string_view *)
            ngx_palloc(s->request->pool, (n + 1) * sizeof(std::string_view));

        if (names) {
            for (i = 0; i < n; i++) {
                new (&names[i]) std::string_view(join[i].name);
            }

            /* under the same lock as the join: no gap, no duplicate */
            ngx_http_realtime_history_replay(reg.get(), s, names, n);
        }
        z->root->slots[z->slot].connections++;
        z->root->stats.connections_opened++;
        s->counted = true;
    }

    if (!wake.none()) {
        ngx_http_realtime_worker_wake(z, wake);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_realtime_groups_add(ngx_http_realtime_session_t *s,
    std::string_view name, const realtime::PresenceSpec *spec, bool *added)
    noexcept
{
    bool                       fresh;
    realtime::SlotSet          wake;
    realtime::JoinGroup        join;
    realtime::Registry::Status rc;
    ngx_http_realtime_zone_t  *z;

    z = s->zone;
    *added = false;

    if (z == NULL || s->shm_conn == NULL || s->closing()) {
        return NGX_ERROR;
    }

    join.name = name;
    join.presence = spec;

    {
        ngx_http_realtime_registry_t  reg(z);

        if (reg->is_member(s->shm_conn, name)) {
            return NGX_OK;
        }
    }

    if (ngx_http_realtime_join_local(s, name) != NGX_OK) {
        return NGX_ERROR;
    }

    {
        ngx_http_realtime_registry_t  reg(z);

        rc = reg->add_member(s->shm_conn, join, wake, &fresh);
    }

    if (rc != realtime::Registry::Status::kOk) {
        (void) ngx_http_realtime_leave_local_one(s, name);
        return NGX_DECLINED;
    }

    if (!wake.none()) {
        ngx_http_realtime_worker_wake(z, wake);
    }

    *added = fresh;

    return NGX_OK;
}


ngx_int_t
ngx_http_realtime_groups_remove(ngx_http_realtime_session_t *s,
    std::string_view name) noexcept
{
    bool                       was;
    realtime::SlotSet          wake;
    ngx_http_realtime_zone_t  *z;

    z = s->zone;

    if (z == NULL || s->shm_conn == NULL) {
        return NGX_DECLINED;
    }

    {
        ngx_http_realtime_registry_t  reg(z);

        was = reg->remove_member(s->shm_conn, name, ngx_http_realtime_now_ms(),
                                 wake);
    }

    if (!was) {
        return NGX_DECLINED;
    }

    (void) ngx_http_realtime_leave_local_one(s, name);

    ngx_http_realtime_leave_done(s, wake);

    return NGX_OK;
}


bool
ngx_http_realtime_groups_member(ngx_http_realtime_session_t *s,
    std::string_view name) noexcept
{
    if (s->zone == NULL || s->shm_conn == NULL) {
        return false;
    }

    ngx_http_realtime_registry_t  reg(s->zone);

    return reg->is_member(s->shm_conn, name);
}


ngx_uint_t
ngx_http_realtime_groups_count(ngx_http_realtime_session_t *s) noexcept
{
    ngx_uint_t                   n;
    ngx_queue_t                 *q;
    ngx_http_realtime_member_t  *member;

    n = 0;

    for (q = ngx_queue_head(&s->members);
         q != ngx_queue_sentinel(&s->members);
         q = ngx_queue_next(q))
    {
        member = ngx_queue_data(q, ngx_http_realtime_member_t, in_session);
        n += (member->group->name[0] != '~');
    }

    return n;
}


void
ngx_http_realtime_groups_names(ngx_http_realtime_session_t *s, std::string *out)
{
    ngx_queue_t                 *q;
    ngx_http_realtime_member_t  *member;

    out->clear();

    for (q = ngx_queue_head(&s->members);
         q != ngx_queue_sentinel(&s->members);
         q = ngx_queue_next(q))
    {
        member = ngx_queue_data(q, ngx_http_realtime_member_t, in_session);

        if (member->group->name[0] == '~') {
            continue;
        }

        if (!out->empty()) {
            out->push_back(',');
        }

        *out += member->group->name;
    }
}


void
ngx_http_realtime_groups_leave_all(ngx_http_realtime_session_t *s) noexcept
{
    realtime::SlotSet          wake;
    ngx_http_realtime_zone_t  *z;

    z = s->zone;

    if (z == NULL || z->slot < 0 || !s->counted) {
        return;
    }

    {
        ngx_http_realtime_registry_t  reg(z);

        z->root->slots[z->slot].connections--;
        s->counted = false;

        if (s->shm_conn) {
            reg->leave(s->shm_conn, ngx_http_realtime_now_ms(), wake);
            s->shm_conn = NULL;
        }
    }

    ngx_http_realtime_leave_local(s);

    ngx_http_realtime_leave_done(s, wake);

    ngx_http_realtime_worker_idle(z);
}


void
ngx_http_realtime_groups_drain(void) noexcept
{
    ngx_uint_t                       i;
    ngx_http_realtime_zone_t       **zones;
    ngx_http_realtime_main_conf_t   *rmcf;

    rmcf = ngx_http_realtime_worker.main_conf;

    if (rmcf) {
        zones = (ngx_http_realtime_zone_t **) rmcf->zones.elts;

        for (i = 0; i < rmcf->zones.nelts; i++) {
            if (zones[i]->slot >= 0) {
                ngx_http_realtime_deliver(zones[i]);
            }
        }
    }

    /* also sessions given output from outside their handlers (relay) */
    ngx_http_realtime_flush_slice();
}


/* A monotonic clock in ns (vDSO: no system call); ngx_current_msec stands
   still within one event handler. */

static uint64_t
ngx_http_realtime_clock_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


/*
 * Gives s a data frame: written at once where direct allows and nothing
 * waits before it on s (ngx_http_realtime_session_send_now()), queued
 * otherwise. Direct writes stop for the rest of the drain once they took
 * a time slice: the remaining connections are queued and flushed in
 * slices, so that other events are served in between. Returns whether s
 * needs a flush.
 */

static bool
ngx_http_realtime_give(ngx_http_realtime_session_t *s,
    realtime::SharedFrame *f, ngx_http_realtime_direct_t *direct)
{
    ngx_http_realtime_send_now_e  rc;

    if (direct->on) {
        rc = ngx_http_realtime_session_send_now(s, f);

        if (rc != ngx_http_realtime_send_now_e::kNotTaken) {
            if (++direct->n % NGX_HTTP_REALTIME_FLUSH_CHECK == 0
                && ngx_http_realtime_clock_ns() - direct->start
                   > NGX_HTTP_REALTIME_FLUSH_SLICE_NS)
            {
                direct->on = false;
            }

            return rc == ngx_http_realtime_send_now_e::kQueued;
        }
    }

    ngx_http_realtime_session_send(s, f);

    return true;
}


/* What the flush loop below asks the CPU to load, see there. */

static void
ngx_http_realtime_prefetch_ahead(ngx_queue_t *list, size_t link_offset)
{
    ngx_queue_t                  *q;
    ngx_http_realtime_session_t  *s;

    q = ngx_queue_head(list);

    if (q == ngx_queue_sentinel(list)) {
        return;
    }

    s = (ngx_queue_data(q, ngx_http_realtime_flush_link_t, queue))->session;
    __builtin_prefetch(s->connection->write);

    q = ngx_queue_next(q);

    if (q == ngx_queue_sentinel(list)) {
        return;
    }

    s = (ngx_queue_data(q, ngx_http_realtime_flush_link_t, queue))->session;
    ngx_http_realtime_prefetch_connection(s->connection);

    q = ngx_queue_next(q);

    if (q == ngx_queue_sentinel(list)) {
        return;
    }

    ngx_http_realtime_prefetch_session((const ngx_http_realtime_session_t *)
                                       ((const u_char *) q - link_offset));
}


/* One write per connection for everything it got, in time slices. */

static void
ngx_http_realtime_flush_slice(void)
{
    size_t                        link_offset;
    uint64_t                      start;
    ngx_uint_t                    n;
    ngx_queue_t                  *q, *list;
    ngx_http_realtime_session_t  *s;

    list = &ngx_http_realtime_worker.flush_list;

    if (ngx_queue_empty(list)) {
        return;
    }

    /* where a session's flush link is, from the session's start */
    s = (ngx_queue_data(ngx_queue_head(list), ngx_http_realtime_flush_link_t,
                        queue))->session;
    link_offset = (const u_char *) &s->flush_link.queue - (const u_char *) s;

    start = ngx_http_realtime_clock_ns();

    for (n = 1; /* void */; n++) {

        if (ngx_queue_empty(list)) {
            return;
        }

        if (n % NGX_HTTP_REALTIME_FLUSH_CHECK == 0
            && ngx_http_realtime_clock_ns() - start
               > NGX_HTTP_REALTIME_FLUSH_SLICE_NS)
        {
            break;
        }

        q = ngx_queue_head(list);
        s = ((ngx_http_realtime_flush_link_t *)
                ngx_queue_data(q, ngx_http_realtime_flush_link_t, queue))
            ->session;

        ngx_queue_remove(q);
        s->in_flush = false;

        /*
         * Ahead of use, loading while this one's system call runs, each
         * from lines asked for one turn ago so that nothing here waits:
         * the next session's write event, the connection of the one after,
         * and the session after that, found from its link without reading
         * it (the link sits at the same place in every session).
         */
        ngx_http_realtime_prefetch_ahead(list, link_offset);

        ngx_http_realtime_session_flush(s);
    }

    /* the rest after this turn's I/O: not from the posted loop itself */
    ngx_post_event(&ngx_http_realtime_worker.drain_event,
                   &ngx_posted_next_events);
}


/* Whether a resume replayed m (group k) from Redis to s already. */

static bool
ngx_http_realtime_groups_replayed(ngx_http_realtime_session_t *s,
    const realtime::ShmMessage *m, uint16_t k)
{
    const realtime::MessageId  &id = m->ids()[k];

    for (const auto &f : s->floors) {
        if (id.seq && id.epoch == f.epoch && id.seq <= f.seq
            && m->group(k) == f.group)
        {
            return true;
        }
    }

    return false;
}


/*
 * Delivers this worker's queue of z. A message queued once for this worker
 * may be for several of its groups: a connection in more than one of them
 * gets it once (the delivery stamp says it already has).
 */

static void
ngx_http_realtime_deliver(ngx_http_realtime_zone_t *z)
{
    bool                               control;
    uint16_t                           k;
    ngx_http_realtime_direct_t         direct;
    realtime::SharedFrame             *fe, *fs[4];
    uint64_t                           delivered, stamp;
    size_t                             i;
    realtime::QueueNode               *list, *node;
    realtime::ShmMessage              *m;
    realtime::SharedFrame             *f;
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
     * Messages are immutable and stay on our slot's draining list until
     * finish_drain(), so they are read without the lock.
     */
    for (node = list; node; node = node->next) {
        m = node->message;
        f = NULL;
        stamp = ++ngx_http_realtime_worker.delivery;
        control = (m->kind == realtime::MessageKind::kControl);

        /*
         * When this worker has nothing left to write (a paced fan-out: the
         * last message was out before this one came), the drain's last
         * message is written straight away to the connections with nothing
         * queued: its first frames leave before the last connection is
         * reached, with one pass and one send() each. Otherwise (a burst:
         * earlier messages still wait in queues, or come before it in this
         * drain) it is queued, so that the burst's messages leave together
         * in one write per connection.
         */
        direct.on = (node->next == NULL
                     && ngx_queue_empty(&ngx_http_realtime_worker.flush_list));

        if (direct.on) {
            direct.n = 0;
            direct.start = ngx_http_realtime_clock_ns();
        }

        for (k = 0; k < m->ngroups && z->local; k++) {

            auto it = z->local->map.find(m->group(k));
            if (it == z->local->map.end()) {
                continue;   /* its subscribers here left since it was queued */
            }

            g = it->second;

            if (f == NULL && !control) {
                f = realtime::SharedFrame::create(m->frame_size);
                if (f == NULL) {
                    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                                  "realtime: out of memory, a message to "
                                  "\"%*s\" was not delivered by this worker",
                                  m->group(k).size(), m->group(k).data());
                    break;
                }

                ngx_memcpy(f->data(), m->frame(), m->frame_size);
            }

            fe = NULL;
            fs[0] = fs[1] = fs[2] = fs[3] = NULL;

            /*
             * The array does not change during the walk: the control branch
             * below acts on other groups only ("~" names are internal), and
             * a slow consumer's close leaves its groups later. Its size is
             * read again at each step all the same.
             */
            for (i = 0; i < NGX_HTTP_REALTIME_PREFETCH_AHEAD
                        && i < g->members.size(); i++)
            {
                ngx_http_realtime_prefetch_session(g->members[i].session);
            }

            for (i = 0; i < g->members.size(); i++) {
                s = g->members[i].session;

                /*
                 * The session NGX_HTTP_REALTIME_PREFETCH_AHEAD entries on is
                 * asked for now, so that it is in the caches when its turn
                 * comes: thousands of connections do not fit them, and one
                 * miss after another was most of this loop's time
                 * (bench/RESULTS.md, the paced fan-out).
                 */
                if (i + NGX_HTTP_REALTIME_PREFETCH_AHEAD < g->members.size()) {
                    ngx_http_realtime_prefetch_session(
                        g->members[i + NGX_HTTP_REALTIME_PREFETCH_AHEAD].session);
                }

                if (s->delivered == stamp) {
                    continue;   /* in two of the message's groups */
                }

                s->delivered = stamp;

                if (m->origin && s->conn_id == m->origin) {
                    continue;   /* its sender, which asked for no echo */
                }

                if (m->number <= s->joined_at) {
                    continue;   /* published before it joined */
                }

                if (!s->floors.empty()
                    && ngx_http_realtime_groups_replayed(s, m, k))
                {
                    continue;   /* its resume gave it from Redis */
                }

                if (control) {
                    /* before the next member: the action may close s or
                       change its groups, never the list walked here */
                    if (ngx_http_realtime_worker.control) {
                        ngx_http_realtime_worker.control(s,
                            std::string_view((const char *) m->frame(),
                                             m->frame_size));
                    }

                } else if (s->eventsource) {
                    /* an event per message, group and kind of stream:
                       with or without the envelope, chunked or not; a
                       binary message (from a WebSocket client) has no text
                       form, and streams do not get it */
                    uint16_t  v = (s->conf->envelope ? 2 : 0) + s->sse_chunked;

                    if ((m->frame()[0] & 0x0f)
                        == (uint8_t) realtime::ws::Opcode::kBinary)
                    {
                        continue;
                    }

                    if (fs[v] == NULL) {
                        fs[v] = ngx_http_realtime_stream_frame(m, k,
                                    v & 2, v & 1);
                    }

                    if (fs[v]) {
                        delivered++;
                        ngx_http_realtime_session_send(s, fs[v]);
                    }

                } else if (s->conf->envelope
                           && (m->frame()[0] & 0x0f)
                              != (uint8_t) realtime::ws::Opcode::kBinary)
                {
                    /* {"group","id","data"}: one frame per message and
                       group, shared by its subscribers here (no "id"
                       where it has none: realtime_redis without history);
                       binary data has no JSON form: sent as it is */
                    if (fe == NULL) {
                        fe = ngx_http_realtime_envelope_frame(m, k);
                    }

                    if (fe) {
                        delivered++;

                        if (!ngx_http_realtime_give(s, fe, &direct)) {
                            continue;   /* written: nothing to flush */
                        }
                    }

                } else {
                    delivered++;

                    if (!ngx_http_realtime_give(s, f, &direct)) {
                        continue;       /* written: nothing to flush */
                    }
                }

                if (!s->in_flush) {
                    s->in_flush = true;
                    ngx_queue_insert_tail(&ngx_http_realtime_worker.flush_list,
                                          &s->flush_link.queue);
                }
            }

            if (fe) {
                realtime::release(fe);
            }

            for (realtime::SharedFrame *e : fs) {
                if (e) {
                    realtime::release(e);
                }
            }
        }

        if (f) {
            realtime::release(f);
        }
    }

    {
        ngx_http_realtime_registry_t  reg(z);

        reg->finish_drain((uint32_t) z->slot);
        z->root->stats.frames_delivered += delivered;
    }
}


/* The envelope of m for its k-th group, framed; NULL when out of memory. */

static realtime::SharedFrame *
ngx_http_realtime_envelope_frame(const realtime::ShmMessage *m, uint16_t k)
{
    try {
        return ngx_http_realtime_frame(realtime::ws::Opcode::kText,
                   ngx_http_realtime_history_envelope(m->group(k), m->ids()[k],
                       m->payload(), m->flags & realtime::kPayloadIsString));

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "realtime: out of memory framing an envelope");
        return NULL;
    }
}


/*
 * m for an event stream: its id in the k-th group (when it has one) and
 * the text a WebSocket would get (the envelope where asked for).
 */

static realtime::SharedFrame *
ngx_http_realtime_stream_frame(const realtime::ShmMessage *m, uint16_t k,
    bool envelope, bool chunked)
{
    realtime::MessageId  id = m->ids()[k];

    try {
        std::string  sid = id.seq ? ngx_http_realtime_history_id(id)
                                  : std::string();

        if (envelope) {
            return ngx_http_realtime_event_frame(chunked, sid,
                       ngx_http_realtime_history_envelope(m->group(k), id,
                           m->payload(),
                           m->flags & realtime::kPayloadIsString));
        }

        return ngx_http_realtime_event_frame(chunked, sid, m->payload());

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "realtime: out of memory framing an event");
        return NULL;
    }
}
