/*
 * ngx_realtime_module: publishing to the other nodes through Redis.
 *
 * The publish API's messages: one PUBLISH per group on the worker's
 * command link, pipelined; the request is answered once Redis took them
 * all (or 503). Order: other nodes' messages reach this node through the
 * subscriber (another process), so the publishing worker also sends a
 * fence, "f <slot> <claim> <n>", on its node's channel right after its
 * messages, and delivers here only once the subscriber saw it come back
 * (polling the zone every millisecond, at most the timeout): everything
 * Redis ordered before the message is delivered here first. Without a
 * subscriber up there is nothing to wait for.
 *
 * Client and relay messages: fire and forget, after the local delivery.
 */

#include "ngx_http_realtime_cluster_state.h"

#include <new>
#include <string>
#include <vector>

#include "core/cluster_message.h"
#include "ngx_http_realtime_cluster_scripts.h"


#define NGX_HTTP_REALTIME_CLUSTER_FENCE   1     /* ms between looks */


static void ngx_http_realtime_cluster_fence_handler(ngx_event_t *ev) noexcept;


ngx_int_t
ngx_http_realtime_cluster_publish_init(ngx_http_realtime_cluster_t *cl,
    ngx_log_t *log) noexcept
{
    cl->waiting = new (std::nothrow)
                      std::deque<ngx_http_realtime_cluster_batch_t *>();
    if (cl->waiting == NULL) {
        return NGX_ERROR;
    }

    /* not cancelable: a shutdown waits for the publishes (timeout) */
    cl->fence_ev.handler = ngx_http_realtime_cluster_fence_handler;
    cl->fence_ev.data = cl;
    cl->fence_ev.log = log;

    return NGX_OK;
}


void
ngx_http_realtime_cluster_publish_exit(ngx_http_realtime_cluster_t *cl)
    noexcept
{
    if (cl->fence_ev.timer_set) {
        ngx_del_timer(&cl->fence_ev);
    }

    /* in Redis already: delivered here without waiting any more */
    cl->flushing = true;
    ngx_http_realtime_cluster_fence_handler(&cl->fence_ev);

    delete cl->waiting;
    cl->waiting = NULL;
}


struct ngx_http_realtime_cluster_batch_t;

/* One numbered message's reply: where its id goes. */
struct ngx_http_realtime_cluster_slot_t {
    ngx_http_realtime_cluster_batch_t  *batch;
    size_t                              index;
};

struct ngx_http_realtime_cluster_batch_t {
    ngx_http_realtime_cluster_t        *cl;
    ngx_http_realtime_cluster_done_pt   done;
    void                               *data;
    ngx_uint_t                          pending;
    int64_t                             nodes;
    bool                                failed;
    uint64_t                            fence;      /* 0: none sent */
    bool                                heard;      /* a subscriber got it */
    ngx_msec_t                          since;
    /* one per message and group, item-major: the ids Redis gave */
    std::vector<realtime::MessageId>    ids;
    std::vector<ngx_http_realtime_cluster_slot_t>  slots;
};


static bool
ngx_http_realtime_cluster_fence_seen(ngx_http_realtime_cluster_t *cl,
    uint64_t fence)
{
    realtime::ClusterState  *cs = &cl->zone->root->cluster;
    ngx_int_t                slot = cl->zone->slot;

    return slot < 0
           || (__atomic_load_n(&cs->fence_owner[slot], __ATOMIC_ACQUIRE)
                   == cl->zone->owner
               && __atomic_load_n(&cs->fence[slot], __ATOMIC_ACQUIRE)
                  >= fence);
}


static void
ngx_http_realtime_cluster_fence_handler(ngx_event_t *ev) noexcept
{
    auto  *cl = (ngx_http_realtime_cluster_t *) ev->data;

    while (!cl->waiting->empty()) {
        ngx_http_realtime_cluster_batch_t  *b = cl->waiting->front();

        /* no fence past the timeout: the subscriber is slow or gone,
           deliver anyway (Redis has the message: it is not lost) */
        if (!ngx_http_realtime_cluster_fence_seen(cl, b->fence)
            && ngx_current_msec - b->since < cl->zone->redis->timeout
            && !cl->flushing)
        {
            ngx_add_timer(&cl->fence_ev, NGX_HTTP_REALTIME_CLUSTER_FENCE);
            return;
        }

        cl->waiting->pop_front();

        b->done(b->data, b->nodes, b->ids.data());

        delete b;
    }
}


/* Every reply is in: answer now, or once the fence came back. */

static void
ngx_http_realtime_cluster_finish(ngx_http_realtime_cluster_batch_t *b)
{
    ngx_http_realtime_cluster_t  *cl = b->cl;

    if (!b->failed && b->fence && b->heard
        && (!cl->waiting->empty()
            || !ngx_http_realtime_cluster_fence_seen(cl, b->fence)))
    {
        try {
            cl->waiting->push_back(b);
            b->since = ngx_current_msec;

            if (!cl->fence_ev.timer_set) {
                ngx_add_timer(&cl->fence_ev, NGX_HTTP_REALTIME_CLUSTER_FENCE);
            }

            return;

        } catch (...) {
            /* answered at once: order is best effort without memory */
        }
    }

    b->done(b->data, b->failed ? -1 : b->nodes, b->ids.data());

    delete b;
}


static void
ngx_http_realtime_cluster_published(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *b = (ngx_http_realtime_cluster_batch_t *) data;

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        b->failed = true;

    } else {
        b->cl->published++;
        b->nodes = ngx_max(b->nodes, (int64_t) reply->integer);
    }

    if (--b->pending == 0) {
        ngx_http_realtime_cluster_finish(b);
    }
}


/* {epoch, seq, receivers} from the publish script */

static void
ngx_http_realtime_cluster_numbered(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *slot = (ngx_http_realtime_cluster_slot_t *) data;
    auto  *b = slot->batch;

    uint64_t  epoch = 0;

    (void) ngx_http_realtime_cluster_noscript(link, reply);

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[1]->type == REDIS_REPLY_INTEGER
        && reply->element[2]->type == REDIS_REPLY_INTEGER)
    {
        epoch = ngx_http_realtime_cluster_parse_epoch(reply->element[0]->str,
                                                      reply->element[0]->len);
    }

    if (epoch == 0 || reply->element[1]->integer <= 0) {
        b->failed = true;

    } else {
        b->cl->published++;
        b->cl->local_logged = false;
        b->ids[slot->index] = realtime::MessageId{
                                  epoch, (uint64_t) reply->element[1]->integer };
        b->nodes = ngx_max(b->nodes, (int64_t) reply->element[2]->integer);
    }

    if (--b->pending == 0) {
        ngx_http_realtime_cluster_finish(b);
    }
}


static void
ngx_http_realtime_cluster_fenced(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *b = (ngx_http_realtime_cluster_batch_t *) data;

    /* 0: no subscriber of ours listens, nothing to wait for */
    b->heard = reply && reply->type == REDIS_REPLY_INTEGER
               && reply->integer > 0;

    if (--b->pending == 0) {
        ngx_http_realtime_cluster_finish(b);
    }
}


/* The fence after a batch, when this node has a subscriber to see it. */

static void
ngx_http_realtime_cluster_send_fence(ngx_http_realtime_cluster_t *cl,
    ngx_http_realtime_cluster_batch_t *b)
{
    char                      text[3 * NGX_INT64_LEN + 8];
    ngx_http_realtime_zone_t *z = cl->zone;

    if (z->slot < 0 || __atomic_load_n(&z->root->cluster.state,
                                       __ATOMIC_RELAXED) != 2)
    {
        return;
    }

    const char  *argv[3] = { "PUBLISH", cl->node_channel->c_str(), text };
    size_t       lens[3] = { 7, cl->node_channel->size(), 0 };

    lens[2] = ngx_sprintf((u_char *) text, "f %i %uL %uL", z->slot, z->owner,
                          cl->fences + 1)
              - (u_char *) text;

    if (ngx_http_realtime_redis_command(&cl->cmd,
            ngx_http_realtime_cluster_fenced, b, 3, argv, lens)
        == NGX_OK)
    {
        b->fence = ++cl->fences;
        b->pending++;
    }
}


/* One PUBLISH; false when it could not be sent. */

static bool
ngx_http_realtime_cluster_send_one(ngx_http_realtime_cluster_t *cl,
    std::string_view group, const std::string &wire,
    ngx_http_realtime_redis_reply_pt fn, void *data)
{
    std::string  channel = realtime::cluster_channel(
                               ngx_http_realtime_sv(cl->zone->redis->prefix),
                               group);

    const char  *argv[3] = { "PUBLISH", channel.data(), wire.data() };
    size_t       lens[3] = { 7, channel.size(), wire.size() };

    return ngx_http_realtime_redis_command(&cl->cmd, fn, data, 3, argv, lens)
           == NGX_OK;
}


/*
 * The publish script for one message and group (a group with history):
 * Redis numbers it, keeps it and PUBLISHes it with its id.
 */

static bool
ngx_http_realtime_cluster_send_numbered(ngx_http_realtime_cluster_t *cl,
    std::string_view group, const std::string &head, const std::string &tail,
    const realtime::PublishItem &item, uint32_t size, uint32_t ttl,
    ngx_http_realtime_cluster_slot_t *slot)
{
    char                       nsize[NGX_INT_T_LEN], nttl[NGX_INT_T_LEN];
    char                       epoch[17];
    uint64_t                   proposal;
    ngx_http_realtime_zone_t  *z = cl->zone;

    std::string  channel = realtime::cluster_channel(
                               ngx_http_realtime_sv(z->redis->prefix), group);
    std::string  seq_key = ngx_http_realtime_cluster_key(z, 's', group);
    std::string  stream_key = ngx_http_realtime_cluster_key(z, 'h', group);

    /* the group's epoch if it has none yet: unlikely to repeat */
    proposal = ((uint64_t) ngx_random() << 33 ^ (uint64_t) ngx_random() << 11
                ^ ngx_http_realtime_now_us()) | (uint64_t) 1 << 60;

    ngx_sprintf((u_char *) epoch, "%016xL", proposal);

    const char  *argv[13] = {
        "EVALSHA", ngx_http_realtime_cluster_publish_sha(), "2",
        seq_key.data(), stream_key.data(),
        channel.data(), head.data(), tail.data(), item.payload.data(),
        nsize, nttl, epoch, item.is_string ? "s" : "-" };
    size_t       lens[13] = {
        7, ngx_strlen(argv[1]), 1,
        seq_key.size(), stream_key.size(),
        channel.size(), head.size(), tail.size(), item.payload.size(),
        0, 0, 16, 1 };

    lens[9] = ngx_sprintf((u_char *) nsize, "%uD", size) - (u_char *) nsize;
    lens[10] = ngx_sprintf((u_char *) nttl, "%uD", ttl) - (u_char *) nttl;

    return ngx_http_realtime_redis_command(&cl->cmd,
               ngx_http_realtime_cluster_numbered, slot, 13, argv, lens)
           == NGX_OK;
}


ngx_int_t
ngx_http_realtime_cluster_publish(ngx_http_realtime_zone_t *z,
    const realtime::PublishRequest &req, uint32_t history_size,
    uint32_t history_ttl, ngx_http_realtime_cluster_done_pt done, void *data)
    noexcept
{
    ngx_http_realtime_cluster_t  *cl = z->cluster;

    if (cl == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_realtime_redis_connect(&cl->cmd);

    if (!ngx_http_realtime_redis_usable(&cl->cmd)) {
        return NGX_DECLINED;    /* fail fast: no waiting for a dead link */
    }

    auto  *b = new (std::nothrow) ngx_http_realtime_cluster_batch_t{
                   cl, done, data, 0, 0, false, 0, false, 0, {}, {} };
    if (b == NULL) {
        return NGX_DECLINED;
    }

    /* one more than the commands: done cannot run before the last is sent */
    b->pending = 1;

    try {
        size_t  total = 0, index = 0;

        for (const auto &item : req.items) {
            total += item.groups.size();
        }

        b->ids.assign(total, realtime::MessageId{0, 0});
        b->slots.reserve(history_size ? total : 0);     /* never moves */

        for (const auto &item : req.items) {
            std::string  wire, head, tail;

            if (history_size) {
                head = realtime::cluster_message_head(z->root->zone_id,
                                                      item.is_string);
                tail = realtime::cluster_message_tail(history_size,
                                                      history_ttl);

            } else {
                wire = realtime::encode_cluster_message(z->root->zone_id,
                                                        item.is_string,
                                                        item.payload,
                                                        item.is_control);
            }

            for (const auto &g : item.groups) {
                bool  sent;

                if (history_size) {
                    b->slots.push_back(
                        ngx_http_realtime_cluster_slot_t{ b, index });

                    sent = ngx_http_realtime_cluster_send_numbered(cl, g,
                               head, tail, item, history_size, history_ttl,
                               &b->slots.back());

                } else {
                    sent = ngx_http_realtime_cluster_send_one(cl, g, wire,
                               ngx_http_realtime_cluster_published, b);
                }

                index++;

                if (!sent) {
                    b->failed = true;
                    break;
                }

                b->pending++;
            }

            if (b->failed) {
                break;
            }
        }

    } catch (...) {
        b->failed = true;
    }

    if (b->pending == 1) {
        delete b;
        return NGX_DECLINED;    /* nothing went out */
    }

    if (!b->failed) {
        ngx_http_realtime_cluster_send_fence(cl, b);
    }

    b->pending--;   /* the replies will finish it */

    return NGX_OK;
}


static void
ngx_http_realtime_cluster_forwarded(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *cl = (ngx_http_realtime_cluster_t *) data;

    if (reply && reply->type == REDIS_REPLY_INTEGER) {
        cl->published++;

    } else {
        cl->local_only++;
    }
}


void
ngx_http_realtime_cluster_local_only(ngx_http_realtime_zone_t *z, size_t n)
    noexcept
{
    ngx_http_realtime_cluster_t  *cl = z->cluster;

    if (cl == NULL) {
        return;
    }

    cl->local_only += n;

    if (!cl->local_logged) {
        cl->local_logged = true;
        ngx_log_error(NGX_LOG_WARN, cl->cmd.log, 0,
                      "realtime: redis is unavailable, messages of zone "
                      "\"%V\" stay on this node", &z->name);
    }
}


void
ngx_http_realtime_cluster_forward(ngx_http_realtime_zone_t *z,
    const std::string_view *groups, size_t ngroups, std::string_view payload,
    bool is_string) noexcept
{
    size_t                        i;
    ngx_http_realtime_cluster_t  *cl = z->cluster;

    if (cl == NULL) {
        return;
    }

    ngx_http_realtime_redis_connect(&cl->cmd);

    try {
        std::string  wire;

        for (i = 0; i < ngroups; i++) {
            if (groups[i].empty() || groups[i][0] == '~') {
                continue;
            }

            if (wire.empty()) {
                wire = realtime::encode_cluster_message(z->root->zone_id,
                                                        is_string, payload);
            }

            if (!ngx_http_realtime_cluster_send_one(cl, groups[i], wire,
                    ngx_http_realtime_cluster_forwarded, cl))
            {
                ngx_http_realtime_cluster_local_only(z, 1);
                continue;
            }

            cl->local_logged = false;
        }

    } catch (...) {
        cl->local_only++;
    }
}


void
ngx_http_realtime_cluster_fences(void) noexcept
{
    ngx_uint_t                       i;
    ngx_http_realtime_zone_t       **zones;
    ngx_http_realtime_cluster_t     *cl;
    ngx_http_realtime_main_conf_t   *rmcf;

    rmcf = ngx_http_realtime_worker.main_conf;

    if (rmcf == NULL) {
        return;
    }

    zones = (ngx_http_realtime_zone_t **) rmcf->zones.elts;

    for (i = 0; i < rmcf->zones.nelts; i++) {
        cl = zones[i]->cluster;

        if (cl && cl->waiting && !cl->waiting->empty()) {
            ngx_http_realtime_cluster_fence_handler(&cl->fence_ev);
        }
    }
}
