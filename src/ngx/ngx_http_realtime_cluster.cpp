/*
 * ngx_realtime_module: the nodes of a zone sharing messages through Redis.
 *
 * The subscriber. One worker per node holds it: the zone's ClusterState
 * names its slot's claim and a lease that it renews every second. Another
 * worker takes over when there is no owner, when the owner's slot was
 * released (it exited, or died and was reclaimed) or when the lease is
 * older than 3 s; a worker that is shutting down gives it up at once.
 *
 * What it subscribes to: "<prefix>:g:<group>" for every group with
 * subscribers here (internal "~" groups are never shared). The zone
 * counts the groups gaining or losing their last subscriber and lists
 * them; when the count moved (checked every 100 ms, without the lock),
 * the subscriber takes the list under the lock, O(changes), and sends the
 * difference. It walks every group, O(groups), only after a (re)connect
 * or when the zone was too full to list a change.
 *
 * Liveness. Every second the subscriber PUBLISHes a heartbeat on its own
 * command link to its node's channel "<prefix>:n:<node id>", which its
 * subscriber link is subscribed to: the round trip is the latency shown
 * in the stats, and a heartbeat that does not come back within the
 * timeout (or that nobody received) takes the subscriber link down.
 * hiredis 0.14 cannot PING a subscribed connection (the reply never
 * reaches a callback), hence this. Other workers PING their idle
 * command link once a second.
 *
 * Publishing (and the fences that keep the API's order across nodes) is
 * in ngx_http_realtime_cluster_publish.cpp.
 *
 * Presence across nodes is in ngx_http_realtime_cluster_presence.cpp (its
 * deltas arrive here on the group channels, its snapshots on ours).
 *
 * Not shared in this slice: control messages (actions by user) and the
 * history of remote messages (they are published here
 * without history: the next slice carries ids across nodes).
 */

#include "ngx_http_realtime_cluster.h"

#include <string>
#include <vector>

#include "core/cluster_message.h"
#include "core/group_name.h"
#include "core/ws_frame.h"
#include "ngx_http_realtime_cluster_presence.h"
#include "ngx_http_realtime_cluster_scripts.h"
#include "ngx_http_realtime_cluster_state.h"
#include "ngx_http_realtime_election.h"
#include "ngx_http_realtime_history.h"
#include "ngx_http_realtime_worker.h"


#define NGX_HTTP_REALTIME_CLUSTER_LEASE   3000  /* ms */
#define NGX_HTTP_REALTIME_CLUSTER_CHECK   100   /* ms between looks at the
                                                   group counter */
#define NGX_HTTP_REALTIME_CLUSTER_BATCH   256   /* channels per SUBSCRIBE */


static void ngx_http_realtime_cluster_sync(ngx_http_realtime_cluster_t *cl,
    bool all);
static void ngx_http_realtime_cluster_save(ngx_http_realtime_cluster_t *cl);


static ngx_array_t *
ngx_http_realtime_cluster_zones(void)
{
    ngx_http_realtime_main_conf_t  *rmcf = ngx_http_realtime_worker.main_conf;

    return rmcf ? &rmcf->zones : NULL;
}


/* ------------------------------------------------------ subscriber link */

/* "h <us>": our heartbeat; "f <slot> <claim> <n>": a publisher's fence;
   "s...": a presence snapshot we asked for. */

static void
ngx_http_realtime_cluster_node_message(ngx_http_realtime_cluster_t *cl,
    std::string_view text)
{
    uint64_t  v[3];
    size_t    i, n;

    if (!text.empty() && text[0] == 's') {
        ngx_http_realtime_cluster_presence_snapshot(cl, text);
        return;
    }

    if (text.size() < 3 || text[1] != ' ') {
        cl->dropped++;
        return;
    }

    n = 0;
    v[0] = v[1] = v[2] = 0;

    for (i = 2; i < text.size() && n < 3; i++) {
        if (text[i] == ' ') {
            n++;
            continue;
        }

        if (text[i] < '0' || text[i] > '9') {
            cl->dropped++;
            return;
        }

        v[n] = v[n] * 10 + (uint64_t) (text[i] - '0');
    }

    if (text[0] == 'h') {
        if (cl->hb_sent) {
            uint64_t  now = ngx_http_realtime_now_us();

            cl->latency_us = now > v[0] ? now - v[0] : 1;
            cl->hb_sent = 0;
        }

        return;
    }

    if (text[0] != 'f' || n != 2 || v[0] >= realtime::kMaxWorkerSlots) {
        cl->dropped++;
        return;
    }

    {
        ngx_http_realtime_registry_t  reg(cl->zone);

        realtime::ClusterState  *cs = &cl->zone->root->cluster;

        /* the claim's own counter: a slot's next worker starts anew */
        if (cs->fence_owner[v[0]] != v[1]) {
            cs->fence_owner[v[0]] = v[1];
            __atomic_store_n(&cs->fence[v[0]], v[2], __ATOMIC_RELEASE);

        } else if (v[2] > cs->fence[v[0]]) {
            __atomic_store_n(&cs->fence[v[0]], v[2], __ATOMIC_RELEASE);
        }
    }

    /*
     * The publishing worker answers now rather than at its next look (its
     * drain looks at its fences): a wake-up, or a posted drain when it is
     * this worker. Outside the lock: the answer publishes here.
     */
    realtime::SlotSet  wake;

    wake.set((uint32_t) v[0]);
    ngx_http_realtime_worker_wake(cl->zone, wake);
}

static void
ngx_http_realtime_cluster_receive(ngx_http_realtime_cluster_t *cl,
    std::string_view channel, std::string_view text)
{
    realtime::ClusterMessage  m;
    std::string_view          group;
    ngx_http_realtime_zone_t *z = cl->zone;

    if (channel == *cl->node_channel) {
        ngx_http_realtime_cluster_node_message(cl, text);
        return;
    }

    if (!text.empty() && text[0] == 'p') {
        /* presence, not a message: ngx_http_realtime_cluster_presence.cpp */
        ngx_http_realtime_cluster_presence_delta(cl, channel, text);
        return;
    }

    if (!realtime::cluster_channel_group(
            ngx_http_realtime_sv(z->redis->prefix), channel, &group)
        || !realtime::is_shared_group(group)
        || !realtime::parse_cluster_message(text, &m)
        || m.is_control != (group[0] == '~'))   /* actions to users only */
    {
        cl->dropped++;
        return;
    }

    if (m.node == z->root->zone_id) {
        return;     /* ours: delivered here when it was published */
    }

    std::string  frame;

    try {
        /* an action by user is an instruction as it is, not a frame */
        frame = m.is_control ? std::string(m.payload)
                             : realtime::ws::encode_frame(
                                   realtime::ws::Opcode::kText, m.payload);
    } catch (...) {
        cl->dropped++;
        return;
    }

    realtime::Registry::PublishOptions  options;
    realtime::MessageId                 id{m.epoch, m.seq};

    options.header_size = (uint8_t) (frame.size() - m.payload.size());
    options.flags = m.is_string ? realtime::kPayloadIsString : 0;

    if (m.is_control) {
        options.kind = realtime::MessageKind::kControl;
    }

    if (m.seq) {
        /* kept here as its publisher keeps it, with the id Redis gave */
        options.ids = &id;
        options.history_size = ngx_min(m.history_size,
                                       (uint32_t) NGX_HTTP_REALTIME_HISTORY_MAX);
        options.history_ttl = m.history_ttl;
        options.now = ngx_http_realtime_now_ms();
    }

    realtime::Registry::Published  res;

    {
        ngx_http_realtime_registry_t  reg(z);

        res = reg->publish(&group, 1, (const uint8_t *) frame.data(),
                           frame.size(), options);
    }

    if (res.status != realtime::Registry::Status::kOk) {
        cl->dropped++;      /* the zone is full: counted in its stats too */
        return;
    }

    cl->received++;

    if (!res.wake.none()) {
        ngx_http_realtime_worker_wake(z, res.wake);
    }
}


/*
 * Redis confirmed a (un)subscription: from now on every message of the
 * group reaches this node (or no longer does). A resume that needs the
 * whole stream of a group waits for this (see cluster_resume.cpp).
 */

static void
ngx_http_realtime_cluster_confirmed(ngx_http_realtime_cluster_t *cl,
    std::string_view channel, bool subscribed)
{
    std::string_view  group;

    if (!realtime::cluster_channel_group(
            ngx_http_realtime_sv(cl->zone->redis->prefix), channel, &group))
    {
        return;     /* the node channel */
    }

    ngx_http_realtime_registry_t  reg(cl->zone);

    reg->set_cluster_ready(group, subscribed);
}


/* The subscription is gone (link down, another subscriber): no group is
   known to be complete here any more. */

static void
ngx_http_realtime_cluster_unready(ngx_http_realtime_cluster_t *cl)
{
    ngx_http_realtime_registry_t  reg(cl->zone);

    reg->clear_cluster_ready();
}


static void
ngx_http_realtime_cluster_push(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *cl = (ngx_http_realtime_cluster_t *) data;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    std::string_view  kind(reply->element[0]->str, reply->element[0]->len);

    if (kind == "subscribe" || kind == "unsubscribe") {
        std::string_view  channel(reply->element[1]->str,
                                  reply->element[1]->len);

        ngx_http_realtime_cluster_confirmed(cl, channel, kind == "subscribe");

        if (kind == "subscribe") {
            /* the group's presence snapshot comes after this, in order */
            ngx_http_realtime_cluster_presence_subscribed(cl, channel);
        }

        return;
    }

    if (kind != "message") {
        return;
    }

    if (reply->element[2]->type != REDIS_REPLY_STRING) {
        cl->dropped++;
        return;
    }

    ngx_http_realtime_cluster_receive(cl,
        std::string_view(reply->element[1]->str, reply->element[1]->len),
        std::string_view(reply->element[2]->str, reply->element[2]->len));
}


static void
ngx_http_realtime_cluster_sub_up(ngx_http_realtime_redis_link_t *link)
{
    auto  *cl = (ngx_http_realtime_cluster_t *) link->data;

    const char  *argv[2] = { "SUBSCRIBE", cl->node_channel->c_str() };
    size_t       lens[2] = { 9, cl->node_channel->size() };

    (void) ngx_http_realtime_redis_subscribe(link, 2, argv, lens);

    /* a new connection has no subscription: all of them again */
    cl->groups->clear();
    cl->hb_sent = 0;

    ngx_http_realtime_cluster_sync(cl, true);
    ngx_http_realtime_cluster_save(cl);

    /* our presence again (Redis may have lost it, or our changes) */
    ngx_http_realtime_cluster_presence_resync(cl);
    ngx_http_realtime_cluster_presence_tick(cl);

    if (!cl->check.timer_set) {
        ngx_add_timer(&cl->check, NGX_HTTP_REALTIME_CLUSTER_CHECK);
    }
}


static void
ngx_http_realtime_cluster_sub_down(ngx_http_realtime_redis_link_t *link)
{
    auto  *cl = (ngx_http_realtime_cluster_t *) link->data;

    cl->groups->clear();
    cl->hb_sent = 0;

    ngx_http_realtime_cluster_unready(cl);
    ngx_http_realtime_cluster_save(cl);
}


/* SUBSCRIBE or UNSUBSCRIBE names, in batches. */

static void
ngx_http_realtime_cluster_send(ngx_http_realtime_cluster_t *cl,
    const char *verb, const std::vector<std::string> &names)
{
    std::string_view  prefix = ngx_http_realtime_sv(cl->zone->redis->prefix);

    for (size_t i = 0; i < names.size(); i += NGX_HTTP_REALTIME_CLUSTER_BATCH)
    {
        size_t  n = ngx_min(names.size() - i,
                            (size_t) NGX_HTTP_REALTIME_CLUSTER_BATCH);

        std::vector<std::string>   channels;
        std::vector<const char *>  argv;
        std::vector<size_t>        lens;

        channels.reserve(n);
        argv.push_back(verb);
        lens.push_back(ngx_strlen(verb));

        for (size_t j = 0; j < n; j++) {
            channels.push_back(realtime::cluster_channel(prefix, names[i + j]));
        }

        for (const auto &ch : channels) {
            argv.push_back(ch.data());
            lens.push_back(ch.size());
        }

        if (ngx_http_realtime_redis_subscribe(&cl->sub, (int) argv.size(),
                                              argv.data(), lens.data())
            != NGX_OK)
        {
            return;     /* down: a reconnect subscribes to all again */
        }
    }
}


/*
 * Subscribes to the groups that gained subscribers here, unsubscribes
 * from those that lost their last; all: after a (re)connect.
 */

static void
ngx_http_realtime_cluster_sync(ngx_http_realtime_cluster_t *cl, bool all)
{
    uint64_t                   changes;
    ngx_http_realtime_zone_t  *z = cl->zone;

    if (!cl->subscriber || cl->sub.state != NGX_HTTP_REALTIME_REDIS_UP) {
        return;
    }

    changes = __atomic_load_n(&z->root->cluster.group_changes,
                              __ATOMIC_ACQUIRE);

    if (!all && changes == cl->seen_changes) {
        return;
    }

    try {
        std::set<std::string>     want;
        std::vector<std::string>  add, remove, stale;
        bool                      walk = all;

        {
            ngx_http_realtime_registry_t  reg(z);

            changes = z->root->cluster.group_changes;

            /* the groups that changed, O(changes); all of them when the
               list is incomplete or the subscription is new */
            bool  complete = reg->take_group_changes(
                [&](std::string_view g, bool subscribed) {
                    if (walk || !realtime::is_shared_group(g)) {
                        return;
                    }

                    std::string  name(g);
                    bool         have = cl->groups->count(name) != 0;

                    if (!subscribed) {
                        stale.push_back(name);  /* its remote presence */
                    }

                    if (subscribed && !have) {
                        add.push_back(name);
                        cl->groups->insert(std::move(name));

                    } else if (!subscribed && have) {
                        remove.push_back(name);
                        cl->groups->erase(name);
                    }
                });

            if (!complete) {
                walk = true;
            }

            if (walk) {
                stale.clear();

                reg->each_group([&want, &stale](const realtime::GroupNode &g) {
                    if (g.subscribers && realtime::is_shared_group(g.name())) {
                        want.emplace(g.name());

                    } else if (g.remote) {
                        stale.emplace_back(g.name());   /* not followed now */
                    }
                });
            }

            ngx_http_realtime_cluster_presence_forget(reg.get(), stale);
        }

        if (walk) {
            add.clear();
            remove.clear();

            for (const auto &g : want) {
                if (cl->groups->count(g) == 0) {
                    add.push_back(g);
                }
            }

            for (const auto &g : *cl->groups) {
                if (want.count(g) == 0) {
                    remove.push_back(g);
                }
            }

            cl->groups->swap(want);
        }

        ngx_http_realtime_cluster_send(cl, "SUBSCRIBE", add);
        ngx_http_realtime_cluster_send(cl, "UNSUBSCRIBE", remove);

        cl->seen_changes = changes;

        if (!add.empty() || !remove.empty()) {
            ngx_http_realtime_cluster_save(cl);     /* the channel count */
        }

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, cl->sub.log, 0,
                      "realtime: out of memory updating the redis "
                      "subscriptions of zone \"%V\"", &z->name);

        /* the list may be half taken: walk every group next time */
        ngx_http_realtime_registry_t  reg(z);

        z->root->cluster.changes_lost = 1;
        cl->seen_changes = 0;
    }
}


static void
ngx_http_realtime_cluster_check_handler(ngx_event_t *ev) noexcept
{
    auto  *cl = (ngx_http_realtime_cluster_t *) ev->data;

    if (!cl->subscriber || cl->sub.state != NGX_HTTP_REALTIME_REDIS_UP) {
        return;     /* re-armed when it is up again */
    }

    ngx_http_realtime_cluster_sync(cl, false);
    ngx_http_realtime_cluster_presence_drain(cl);

    ngx_add_timer(&cl->check, NGX_HTTP_REALTIME_CLUSTER_CHECK);
}


/* ------------------------------------------------------------- election */

/*
 * Takes, keeps or gives up the subscription of z. Returns whether this
 * worker holds it.
 */

static bool
ngx_http_realtime_cluster_elect(ngx_http_realtime_cluster_t *cl)
{
    ngx_http_realtime_zone_t  *z = cl->zone;

    ngx_http_realtime_registry_t  reg(z);

    realtime::ClusterState  *cs = &z->root->cluster;

    switch (ngx_http_realtime_elect(z, &cs->election,
                                    ngx_http_realtime_now_ms(),
                                    NGX_HTTP_REALTIME_CLUSTER_LEASE))
    {
    case NGX_HTTP_REALTIME_ELECT_KEPT:
        return true;

    case NGX_HTTP_REALTIME_ELECT_TAKEN:
        cs->state = 1;
        cs->channels = 0;
        return true;

    case NGX_HTTP_REALTIME_ELECT_RELEASED:
        cs->state = 0;
        return false;

    default:
        return false;
    }
}


static void
ngx_http_realtime_cluster_heartbeat_reply(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *cl = (ngx_http_realtime_cluster_t *) data;

    if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0
        && cl->subscriber && cl->sub.state == NGX_HTTP_REALTIME_REDIS_UP
        && ngx_current_msec - cl->sub.up_at > cl->zone->redis->timeout)
    {
        /*
         * Nobody listens on our node's channel: our subscription is gone.
         * (Not judged right after a connect: its SUBSCRIBE, on the other
         * connection, may reach Redis after this PUBLISH.)
         */
        ngx_http_realtime_redis_fail(&cl->sub,
                                     "its subscription was lost");
    }
}


static void
ngx_http_realtime_cluster_ping_reply(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    /* nothing to do: a reply that does not come takes the link down */
}


static void
ngx_http_realtime_cluster_tick_zone(ngx_http_realtime_cluster_t *cl)
{
    bool  mine = ngx_http_realtime_cluster_elect(cl);

    if (mine && !cl->subscriber) {
        cl->subscriber = true;
        cl->seen_changes = 0;

        /* what the last subscriber (dead, maybe) confirmed holds no more */
        ngx_http_realtime_cluster_unready(cl);

        ngx_log_error(NGX_LOG_INFO, cl->sub.log, 0,
                      "realtime: this worker subscribes to redis for zone "
                      "\"%V\"", &cl->zone->name);

        ngx_http_realtime_redis_connect(&cl->sub);
        ngx_http_realtime_redis_connect(&cl->cmd);   /* for the heartbeat */

    } else if (!mine && cl->subscriber) {
        cl->subscriber = false;
        cl->groups->clear();
        ngx_http_realtime_redis_close(&cl->sub);
        ngx_http_realtime_cluster_unready(cl);

        if (cl->check.timer_set) {
            ngx_del_timer(&cl->check);
        }
    }

    if (cl->subscriber && cl->sub.state == NGX_HTTP_REALTIME_REDIS_UP) {

        if (cl->hb_sent
            && ngx_current_msec - cl->hb_sent > cl->zone->redis->timeout)
        {
            if (ngx_http_realtime_redis_usable(&cl->cmd)) {
                ngx_http_realtime_redis_fail(&cl->sub,
                                             "no heartbeat within the timeout");
            }

            cl->hb_sent = 0;

        } else if (cl->hb_sent == 0
                   && cl->cmd.state == NGX_HTTP_REALTIME_REDIS_UP)
        {
            char         stamp[NGX_INT64_LEN + 2];
            const char  *argv[3] = { "PUBLISH", cl->node_channel->c_str(),
                                     stamp };
            size_t       lens[3] = { 7, cl->node_channel->size(), 0 };

            cl->hb_sent_us = ngx_http_realtime_now_us();
            lens[2] = ngx_sprintf((u_char *) stamp, "h %uL", cl->hb_sent_us)
                      - (u_char *) stamp;

            if (ngx_http_realtime_redis_command(&cl->cmd,
                    ngx_http_realtime_cluster_heartbeat_reply, cl, 3, argv,
                    lens) == NGX_OK)
            {
                cl->hb_sent = ngx_current_msec;
            }
        }

        /* this node is alive; expired ones are reaped */
        ngx_http_realtime_cluster_presence_tick(cl);

    } else if (cl->cmd.state == NGX_HTTP_REALTIME_REDIS_UP
               && cl->cmd.sent->empty() && !ngx_exiting
               && ngx_current_msec - cl->cmd.used_at >= 1000)
    {
        /* idle for a second: a dead server shows as a PING without reply */
        const char  *argv[1] = { "PING" };
        size_t       lens[1] = { 4 };

        (void) ngx_http_realtime_redis_command(&cl->cmd,
                   ngx_http_realtime_cluster_ping_reply, cl, 1, argv, lens);
    }

    ngx_http_realtime_cluster_save(cl);
}


/* This worker's counters and, as subscriber, the link's state. */

static void
ngx_http_realtime_cluster_save(ngx_http_realtime_cluster_t *cl)
{
    ngx_http_realtime_zone_t  *z = cl->zone;

    ngx_http_realtime_registry_t  reg(z);

    realtime::ClusterState  *cs = &z->root->cluster;

    cs->published += cl->published;
    cs->received += cl->received;
    cs->dropped += cl->dropped;
    cs->local_only += cl->local_only;
    cs->reconnects += cl->cmd.reconnects + cl->sub.reconnects;
    cs->presence_sent += cl->presence_sent;
    cl->presence_sent = 0;

    cl->published = cl->received = cl->dropped = cl->local_only = 0;
    cl->cmd.reconnects = cl->sub.reconnects = 0;

    if (cl->subscriber && z->slot >= 0 && cs->election.owner == z->owner) {
        cs->state = cl->sub.state == NGX_HTTP_REALTIME_REDIS_UP ? 2
                    : cl->sub.state == NGX_HTTP_REALTIME_REDIS_CONNECTING ? 1
                    : 0;
        cs->channels = (uint32_t) cl->groups->size();

        if (cl->latency_us) {
            cs->latency_us = cl->latency_us;
            cl->latency_us = 0;
        }
    }
}


void
ngx_http_realtime_cluster_tick(void) noexcept
{
    ngx_uint_t                  i;
    ngx_array_t                *zones;
    ngx_http_realtime_zone_t  **z;

    zones = ngx_http_realtime_cluster_zones();
    if (zones == NULL) {
        return;
    }

    z = (ngx_http_realtime_zone_t **) zones->elts;

    for (i = 0; i < zones->nelts; i++) {
        if (z[i]->cluster) {
            ngx_http_realtime_cluster_tick_zone(z[i]->cluster);
        }
    }
}


/* ----------------------------------------------------------- lifecycle */

ngx_int_t
ngx_http_realtime_cluster_init(ngx_cycle_t *cycle) noexcept
{
    ngx_uint_t                    i;
    ngx_array_t                  *zones;
    ngx_http_realtime_zone_t    **z;
    ngx_http_realtime_cluster_t  *cl;

    zones = ngx_http_realtime_cluster_zones();
    if (zones == NULL) {
        return NGX_OK;
    }

    z = (ngx_http_realtime_zone_t **) zones->elts;

    for (i = 0; i < zones->nelts; i++) {
        {
            /*
             * With realtime_redis the cluster numbers the groups (history,
             * resume); a reload that drops it gives numbering back here.
             */
            ngx_http_realtime_registry_t  reg(z[i]);

            z[i]->root->cluster.external_ids = z[i]->redis ? 1 : 0;
            z[i]->root->cluster.track_changes = z[i]->redis ? 1 : 0;

            if (z[i]->redis == NULL) {
                z[i]->root->cluster.presence_outbox = 0;    /* set below */
            }
        }

        if (z[i]->redis == NULL) {
            continue;
        }

        cl = (ngx_http_realtime_cluster_t *)
                 ngx_pcalloc(cycle->pool, sizeof(ngx_http_realtime_cluster_t));
        if (cl == NULL) {
            return NGX_ERROR;
        }

        cl->zone = z[i];

        try {
            char  node[16];

            ngx_sprintf((u_char *) node, "%08xD%Z", z[i]->root->zone_id);

            cl->groups = new std::set<std::string>();
            cl->node_channel = new std::string(
                std::string(ngx_http_realtime_sv(z[i]->redis->prefix))
                + ":n:" + node);

        } catch (...) {
            return NGX_ERROR;
        }

        if (ngx_http_realtime_redis_init(&cl->cmd, z[i]->redis, "command",
                                         cycle->log) != NGX_OK
            || ngx_http_realtime_redis_init(&cl->sub, z[i]->redis,
                                            "subscriber", cycle->log)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        cl->sub.data = cl;
        cl->sub.on_up = ngx_http_realtime_cluster_sub_up;
        cl->sub.on_down = ngx_http_realtime_cluster_sub_down;
        cl->sub.on_push = ngx_http_realtime_cluster_push;
        cl->cmd.data = cl;
        ngx_http_realtime_cluster_scripts(&cl->cmd.scripts, &cl->cmd.nscripts);

        cl->check.handler = ngx_http_realtime_cluster_check_handler;
        cl->check.data = cl;
        cl->check.log = cycle->log;
        cl->check.cancelable = 1;

        if (ngx_http_realtime_cluster_publish_init(cl, cycle->log) != NGX_OK) {
            return NGX_ERROR;
        }

        z[i]->cluster = cl;

        ngx_http_realtime_cluster_presence_init(cl);

        /* a node without a subscriber misses messages: elect at once */
        ngx_http_realtime_cluster_tick_zone(cl);
    }

    return NGX_OK;
}


void
ngx_http_realtime_cluster_exit(ngx_cycle_t *cycle) noexcept
{
    ngx_uint_t                    i;
    ngx_array_t                  *zones;
    ngx_http_realtime_zone_t    **z;
    ngx_http_realtime_cluster_t  *cl;

    zones = ngx_http_realtime_cluster_zones();
    if (zones == NULL) {
        return;
    }

    z = (ngx_http_realtime_zone_t **) zones->elts;

    for (i = 0; i < zones->nelts; i++) {
        cl = z[i]->cluster;

        if (cl == NULL) {
            continue;
        }

        if (cl->subscriber) {
            ngx_http_realtime_registry_t  reg(z[i]);

            realtime::ClusterState  *cs = &z[i]->root->cluster;

            /* only our own claim: a successor may hold it already */
            if (ngx_http_realtime_election_release(z[i], &cs->election)) {
                cs->state = 0;
            }
        }

        cl->subscriber = false;

        if (cl->check.timer_set) {
            ngx_del_timer(&cl->check);
        }

        ngx_http_realtime_cluster_publish_exit(cl);

        /* before nginx looks for sockets left open */
        if (cl->sub.state == NGX_HTTP_REALTIME_REDIS_UP) {
            ngx_http_realtime_cluster_unready(cl);
        }

        ngx_http_realtime_redis_close(&cl->sub);
        ngx_http_realtime_redis_close(&cl->cmd);

        ngx_http_realtime_cluster_save(cl);
        ngx_http_realtime_cluster_presence_exit(cl);   /* after the links */

        delete cl->groups;
        delete cl->node_channel;
        delete cl->cmd.sent;
        delete cl->sub.sent;
        cl->groups = NULL;
        cl->node_channel = NULL;
        cl->cmd.sent = cl->sub.sent = NULL;

        z[i]->cluster = NULL;
    }
}


/* ---------------------------------------------------------------- stats */

std::string
ngx_http_realtime_cluster_stats(ngx_http_realtime_zone_t *z)
{
    realtime::ClusterState  cs;
    uint64_t                remote;

    if (z->redis == NULL) {
        return std::string();
    }

    {
        ngx_http_realtime_registry_t  reg(z);

        cs = z->root->cluster;
        remote = z->root->stats.presence_remote;
    }

    const char  *state = cs.election.owner == 0 ? "down"
                         : cs.state == 2 ? "up"
                         : cs.state == 1 ? "connecting" : "down";

    return ",\"redis\":{\"state\":\"" + std::string(state)
           + "\",\"subscriber_pid\":" + std::to_string(cs.election.owner ? cs.election.pid : 0)
           + ",\"reconnects\":" + std::to_string(cs.reconnects)
           + ",\"latency_us\":" + std::to_string(cs.latency_us)
           + ",\"channels\":" + std::to_string(cs.channels)
           + ",\"published\":" + std::to_string(cs.published)
           + ",\"received\":" + std::to_string(cs.received)
           + ",\"dropped\":" + std::to_string(cs.dropped)
           + ",\"local_only\":" + std::to_string(cs.local_only)
           + ",\"presence_remote\":" + std::to_string(remote)
           + ",\"presence_sent\":" + std::to_string(cs.presence_sent) + "}";
}
