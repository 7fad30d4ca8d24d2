/*
 * ngx_realtime_module: presence across nodes (realtime_redis).
 *
 * Each node keeps its own users in the zone as without Redis; the other
 * nodes' users are mirrored there as remote holders (core/registry.h), so
 * lists, counts and events cover the whole cluster. The node's subscriber
 * worker does all the talking, on its command link (so a node's changes
 * stay in order):
 *
 * - Out: every change of a user's presence here marks it on the zone's
 *   outbox (the registry wakes the subscriber; its 100 ms check looks too).
 *   Each change is one EVAL: HSET (or HDEL) of "<node>\n<user>" in the
 *   group's hash "<prefix>:p:<group>", SADD of the group to our node's set
 *   "<prefix>:pg:<node>", and PUBLISH of the delta on the group's channel,
 *   atomically, so a snapshot and the stream of deltas never disagree.
 * - In: deltas arrive on the group channels we are subscribed to. When
 *   Redis confirms a SUBSCRIBE, an EVAL PUBLISHes the group's hash (the
 *   snapshot) on our own node channel: it reaches the subscriber link in
 *   order with the group's deltas, and replaces the group's remote holders.
 * - Expiry: each second the subscriber's EVAL scores our node in the sorted
 *   set "<prefix>:nodes" with Redis' clock, and reaps the nodes not seen
 *   for node_expiry: their fields are deleted and a "gone" delta published
 *   for each, as if they had sent it (at most 1000 fields a second).
 * - Redis away: the outbox keeps what changed (bounded: one mark per user
 *   and group, one record per forgotten one); the other nodes' users stay
 *   as they were. When the subscriber link is up again our whole presence
 *   is sent again and every group's snapshot replaces what we had.
 */

#include "ngx_http_realtime_cluster_presence.h"

#include <deque>
#include <map>

#include "core/cluster_message.h"
#include "core/cluster_presence.h"
#include "core/group_name.h"
#include "core/json_template.h"
#include "core/publish_request.h"
#include "core/ws_frame.h"
#include "ngx_http_realtime_worker.h"


#define NGX_HTTP_REALTIME_PRESENCE_REAP   1000  /* fields per second */
#define NGX_HTTP_REALTIME_PRESENCE_BATCH  1024  /* changes in flight at most:
                                                   the lock is held for one
                                                   batch, and no pile of
                                                   commands outlives the
                                                   timeout */


/*
 * KEYS: hash, node's groups, nodes; ARGV: field, + or -, group, channel,
 * delta, node. A node with fields is in the node set, even one that dies
 * before its first heartbeat.
 */
static const char  ngx_http_realtime_presence_delta_lua[] =
    "local t = redis.call('TIME')\n"
    "redis.call('ZADD', KEYS[3],\n"
    "           tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),\n"
    "           ARGV[6])\n"
    "if ARGV[2] == '+' then\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], ARGV[5])\n"
    "  redis.call('SADD', KEYS[2], ARGV[3])\n"
    "else\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "end\n"
    "return redis.call('PUBLISH', ARGV[4], ARGV[5])\n";

/* KEYS: hash; ARGV: group, node channel */
static const char  ngx_http_realtime_presence_snapshot_lua[] =
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "local parts = {'s1 ', tostring(#ARGV[1]), '\\n', ARGV[1]}\n"
    "for i = 2, #all, 2 do\n"
    "  parts[#parts + 1] = tostring(#all[i])\n"
    "  parts[#parts + 1] = '\\n'\n"
    "  parts[#parts + 1] = all[i]\n"
    "end\n"
    "return redis.call('PUBLISH', ARGV[2], table.concat(parts))\n";

/* KEYS: nodes; ARGV: our node, node_expiry (ms), prefix, budget */
static const char  ngx_http_realtime_presence_tick_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "redis.call('ZADD', KEYS[1], now, ARGV[1])\n"
    "local budget = tonumber(ARGV[4])\n"
    "local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf',\n"
    "                        '(' .. (now - tonumber(ARGV[2])), 'LIMIT', 0, 10)\n"
    "local reaped = 0\n"
    "for _, node in ipairs(dead) do\n"
    "  if node ~= ARGV[1] then\n"
    "    local pg = ARGV[3] .. ':pg:' .. node\n"
    "    local mine = node .. '\\n'\n"
    "    for _, group in ipairs(redis.call('SMEMBERS', pg)) do\n"
    "      if reaped >= budget then return reaped end\n"
    "      local hash = ARGV[3] .. ':p:' .. group\n"
    "      for _, field in ipairs(redis.call('HKEYS', hash)) do\n"
    "        if string.sub(field, 1, #mine) == mine then\n"
    "          local v = redis.call('HGET', hash, field)\n"
    "          redis.call('HDEL', hash, field)\n"
    "          local nl = string.find(v, '\\n', 1, true)\n"
    "          if nl then\n"
    "            redis.call('PUBLISH', ARGV[3] .. ':g:' .. group,\n"
    "                       'p1 ' .. node .. ' - 0' .. string.sub(v, nl))\n"
    "          end\n"
    "          reaped = reaped + 1\n"
    "        end\n"
    "      end\n"
    "      redis.call('SREM', pg, group)\n"
    "    end\n"
    "    redis.call('DEL', pg)\n"
    "    redis.call('ZREM', KEYS[1], node)\n"
    "  end\n"
    "end\n"
    "return reaped\n";


static ngx_int_t
ngx_http_realtime_presence_eval(ngx_http_realtime_cluster_t *cl,
    const char *script, const std::vector<std::string> &keys,
    const std::vector<std::string> &args,
    ngx_http_realtime_redis_reply_pt fn)
{
    std::vector<const char *>  argv;
    std::vector<size_t>        lens;
    std::string                nkeys = std::to_string(keys.size());

    argv.reserve(3 + keys.size() + args.size());
    lens.reserve(3 + keys.size() + args.size());

    argv.push_back("EVAL");
    lens.push_back(4);
    argv.push_back(script);
    lens.push_back(ngx_strlen(script));
    argv.push_back(nkeys.data());
    lens.push_back(nkeys.size());

    for (const auto &k : keys) {
        argv.push_back(k.data());
        lens.push_back(k.size());
    }

    for (const auto &a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }

    return ngx_http_realtime_redis_command(&cl->cmd, fn, cl, (int) argv.size(),
                                           argv.data(), lens.data());
}


static bool
ngx_http_realtime_presence_following(ngx_http_realtime_cluster_t *cl,
    std::string_view group)
{
    return cl->subscriber && cl->groups
           && cl->groups->count(std::string(group)) != 0;
}


void
ngx_http_realtime_cluster_presence_init(ngx_http_realtime_cluster_t *cl)
    noexcept
{
    ngx_http_realtime_registry_t  reg(cl->zone);

    cl->zone->root->cluster.presence_outbox = 1;
}


/* ------------------------------------------------------------------ in */

void
ngx_http_realtime_cluster_presence_delta(ngx_http_realtime_cluster_t *cl,
    std::string_view channel, std::string_view text) noexcept
{
    std::string_view           group;
    realtime::PresenceWire     d;
    ngx_http_realtime_zone_t  *z = cl->zone;

    try {
        if (!realtime::cluster_channel_group(
                ngx_http_realtime_sv(z->redis->prefix), channel, &group)
            || !realtime::is_valid_group_name(group)
            || !realtime::parse_presence_delta(text, &d))
        {
            if (text.substr(0, 2) != "p1") {
                return;     /* another version: not for us */
            }

            cl->dropped++;
            return;
        }

        if (d.node == z->root->zone_id
            || !ngx_http_realtime_presence_following(cl, group))
        {
            return;     /* ours, or a group we no longer follow */
        }

        std::string  join, leave;

        if (!d.join.empty()) {
            join = realtime::ws::encode_frame(realtime::ws::Opcode::kText,
                                              d.join);
        }

        if (!d.leave.empty()) {
            leave = realtime::ws::encode_frame(realtime::ws::Opcode::kText,
                                               d.leave);
        }

        realtime::SlotSet          wake;
        realtime::Registry::Status rc;

        {
            ngx_http_realtime_registry_t  reg(z);

            rc = reg->remote_presence(group, d.user, d.node, d.present,
                                      d.connections, d.info, join, leave,
                                      ngx_http_realtime_now_ms(), wake);
        }

        if (rc != realtime::Registry::Status::kOk) {
            cl->dropped++;
        }

        if (!wake.none()) {
            ngx_http_realtime_worker_wake(z, wake);
        }

    } catch (...) {
        cl->dropped++;
    }
}


void
ngx_http_realtime_cluster_presence_snapshot(ngx_http_realtime_cluster_t *cl,
    std::string_view text) noexcept
{
    bool                       bad;
    std::string_view           group, rest, entry;
    ngx_http_realtime_zone_t  *z = cl->zone;

    try {
        if (!realtime::parse_presence_snapshot(text, &group, &rest)) {
            cl->dropped++;
            return;
        }

        if (!ngx_http_realtime_presence_following(cl, group)) {
            return;     /* unsubscribed since we asked */
        }

        std::vector<realtime::RemoteEntry>  entries;
        std::deque<std::string>             frames;

        while (realtime::next_snapshot_entry(&rest, &entry, &bad)) {
            realtime::PresenceWire  d;

            if (!realtime::parse_presence_delta(entry, &d) || !d.present) {
                cl->dropped++;
                continue;
            }

            realtime::RemoteEntry  e;

            e.node = d.node;
            e.connections = d.connections;
            e.user = d.user;
            e.info = d.info;

            if (!d.join.empty()) {
                e.join_frame = frames.emplace_back(realtime::ws::encode_frame(
                                   realtime::ws::Opcode::kText, d.join));
            }

            if (!d.leave.empty()) {
                e.leave_frame = frames.emplace_back(realtime::ws::encode_frame(
                                    realtime::ws::Opcode::kText, d.leave));
            }

            entries.push_back(e);
        }

        if (bad) {
            cl->dropped++;
            return;     /* not the whole hash: keep what we have */
        }

        realtime::SlotSet          wake;
        realtime::Registry::Status rc;

        {
            ngx_http_realtime_registry_t  reg(z);

            rc = reg->replace_remote_presence(group, entries.data(),
                                              entries.size(),
                                              z->root->zone_id,
                                              ngx_http_realtime_now_ms(),
                                              wake);
        }

        if (rc != realtime::Registry::Status::kOk) {
            cl->dropped++;
        }

        if (!wake.none()) {
            ngx_http_realtime_worker_wake(z, wake);
        }

    } catch (...) {
        cl->dropped++;
    }
}


static void
ngx_http_realtime_presence_published(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *cl = (ngx_http_realtime_cluster_t *) data;

    if (cl->presence_inflight) {
        cl->presence_inflight--;
    }

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        if (reply && !cl->presence_error_logged) {
            cl->presence_error_logged = true;
            ngx_log_error(NGX_LOG_ERR, link->log, 0,
                          "realtime: redis refused a presence script: %*s",
                          (size_t) ngx_min(reply->len, 200), reply->str);
        }

        cl->presence_resync = true;     /* lost: all of it again */
        return;
    }

    cl->presence_sent++;
}


/* A snapshot that could not be asked for (or whose script failed) is asked
   for again at the next drain with the links up. */

static void
ngx_http_realtime_presence_snapshot_later(ngx_http_realtime_cluster_t *cl,
    std::string_view group)
{
    try {
        if (cl->presence_snapshots == NULL) {
            cl->presence_snapshots = new std::set<std::string>();
        }

        cl->presence_snapshots->emplace(group);

    } catch (...) {
        cl->dropped++;
    }
}


struct ngx_http_realtime_presence_asked_t {
    ngx_http_realtime_cluster_t  *cl;
    std::string                   group;
};


static void
ngx_http_realtime_presence_snapshot_sent(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *a = (ngx_http_realtime_presence_asked_t *) data;

    if ((reply == NULL || reply->type == REDIS_REPLY_ERROR)
        && a->cl->subscriber)     /* not exiting, still following */
    {
        ngx_http_realtime_presence_snapshot_later(a->cl, a->group);
    }

    delete a;
}


static void
ngx_http_realtime_presence_ask_snapshot(ngx_http_realtime_cluster_t *cl,
    std::string_view group)
{
    std::string_view  prefix = ngx_http_realtime_sv(cl->zone->redis->prefix);

    if (cl->cmd.state != NGX_HTTP_REALTIME_REDIS_UP) {
        ngx_http_realtime_presence_snapshot_later(cl, group);
        return;
    }

    auto  *a = new ngx_http_realtime_presence_asked_t{ cl, std::string(group) };

    std::string  key = realtime::presence_hash_key(prefix, group);
    const char  *argv[6] = { "EVAL", ngx_http_realtime_presence_snapshot_lua,
                             "1", key.c_str(), a->group.c_str(),
                             cl->node_channel->c_str() };
    size_t       lens[6] = { 4, sizeof(ngx_http_realtime_presence_snapshot_lua)
                                - 1, 1, key.size(), a->group.size(),
                             cl->node_channel->size() };

    if (ngx_http_realtime_redis_command(&cl->cmd,
            ngx_http_realtime_presence_snapshot_sent, a, 6, argv, lens)
        != NGX_OK)
    {
        delete a;
        ngx_http_realtime_presence_snapshot_later(cl, group);
    }
}


void
ngx_http_realtime_cluster_presence_subscribed(ngx_http_realtime_cluster_t *cl,
    std::string_view channel) noexcept
{
    std::string_view           group;
    ngx_http_realtime_zone_t  *z = cl->zone;
    std::string_view           prefix = ngx_http_realtime_sv(z->redis->prefix);

    try {
        if (!realtime::cluster_channel_group(prefix, channel, &group)
            || !ngx_http_realtime_presence_following(cl, group))
        {
            return;
        }

        ngx_http_realtime_presence_ask_snapshot(cl, group);

    } catch (...) {
        cl->dropped++;
    }
}


void
ngx_http_realtime_cluster_presence_exit(ngx_http_realtime_cluster_t *cl)
    noexcept
{
    delete cl->presence_snapshots;
    cl->presence_snapshots = NULL;
}


void
ngx_http_realtime_cluster_presence_forget(realtime::Registry &reg,
    const std::vector<std::string> &groups) noexcept
{
    for (const auto &g : groups) {
        reg.drop_remote_group(g);
    }
}


/* ----------------------------------------------------------------- out */

void
ngx_http_realtime_cluster_presence_resync(ngx_http_realtime_cluster_t *cl)
    noexcept
{
    realtime::SlotSet  wake;

    {
        ngx_http_realtime_registry_t  reg(cl->zone);

        reg->mark_all_presence_dirty(wake);
    }

    cl->presence_resync = false;

    ngx_http_realtime_cluster_presence_drain(cl);
}


struct ngx_http_realtime_presence_out_t {
    std::string  hash;
    std::string  field;
    std::string  group;
    bool         present;
    std::string  delta;
};


void
ngx_http_realtime_cluster_presence_drain(ngx_http_realtime_cluster_t *cl)
    noexcept
{
    bool                       failed;
    uint32_t                   node;
    ngx_http_realtime_zone_t  *z = cl->zone;

    if (!cl->subscriber || cl->sub.state != NGX_HTTP_REALTIME_REDIS_UP
        || cl->cmd.state != NGX_HTTP_REALTIME_REDIS_UP)
    {
        return;     /* kept: sent (all of it) when the links are up */
    }

    if (!cl->presence_resync
        && (cl->presence_snapshots == NULL || cl->presence_snapshots->empty())
        && __atomic_load_n(&z->root->dirty, __ATOMIC_ACQUIRE) == NULL
        && __atomic_load_n(&z->root->gone, __ATOMIC_ACQUIRE) == NULL)
    {
        return;     /* nothing to send: no need for the lock */
    }

    if (cl->presence_resync) {
        cl->presence_resync = false;

        realtime::SlotSet             wake;
        ngx_http_realtime_registry_t  reg(z);

        reg->mark_all_presence_dirty(wake);
    }

    if (cl->presence_snapshots && !cl->presence_snapshots->empty()) {
        std::set<std::string>  asked;

        asked.swap(*cl->presence_snapshots);

        try {
            for (const auto &g : asked) {
                if (ngx_http_realtime_presence_following(cl, g)) {
                    ngx_http_realtime_presence_ask_snapshot(cl, g);
                }
            }

        } catch (...) {
            cl->dropped++;
        }
    }

    std::string_view  prefix = ngx_http_realtime_sv(z->redis->prefix);

    if (cl->presence_inflight >= NGX_HTTP_REALTIME_PRESENCE_BATCH) {
        return;     /* the next look, when replies came back */
    }

    node = z->root->zone_id;
    failed = false;

    std::vector<ngx_http_realtime_presence_out_t>  out;

    {
        ngx_http_realtime_registry_t  reg(z);

        if (reg->presence_outbox_empty()) {
            return;
        }

        reg->take_presence_outbox(
            [&](const realtime::PresenceDelta &d) {
                if (failed || d.group.empty() || d.group[0] == '~') {
                    return;     /* internal groups stay here */
                }

                try {
                    realtime::PresenceWire  w;

                    w.node = node;
                    w.present = d.present;
                    w.connections = d.connections;
                    w.user = d.user;

                    if (d.present) {
                        w.info = d.info;
                        w.join = realtime::ws_frame_payload(d.join_frame);
                        w.leave = realtime::ws_frame_payload(d.leave_frame);
                    }

                    out.push_back({ realtime::presence_hash_key(prefix,
                                                                d.group),
                                    realtime::presence_field(node, d.user),
                                    std::string(d.group), d.present,
                                    realtime::encode_presence_delta(w) });

                } catch (...) {
                    failed = true;
                }
            },
            NGX_HTTP_REALTIME_PRESENCE_BATCH - cl->presence_inflight);
    }

    if (failed) {
        cl->presence_resync = true;     /* out of memory: all of it later */
    }

    try {
        std::string  groups = realtime::presence_groups_key(prefix, node);
        std::string  nodes = realtime::presence_nodes_key(prefix);
        std::string  self = realtime::node_hex(node);

        for (const auto &o : out) {
            if (ngx_http_realtime_presence_eval(cl,
                    ngx_http_realtime_presence_delta_lua,
                    { o.hash, groups, nodes },
                    { o.field, o.present ? "+" : "-", o.group,
                      realtime::cluster_channel(prefix, o.group), o.delta,
                      self },
                    ngx_http_realtime_presence_published)
                != NGX_OK)
            {
                cl->presence_resync = true;
                break;
            }

            cl->presence_inflight++;
        }

    } catch (...) {
        cl->presence_resync = true;
    }
}


/* -------------------------------------------------------------- expiry */

static void
ngx_http_realtime_presence_ticked(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *cl = (ngx_http_realtime_cluster_t *) data;

    if (reply && reply->type == REDIS_REPLY_ERROR
        && !cl->presence_error_logged)
    {
        cl->presence_error_logged = true;
        ngx_log_error(NGX_LOG_ERR, link->log, 0,
                      "realtime: redis refused the presence expiry script: "
                      "%*s", (size_t) ngx_min(reply->len, 200), reply->str);
    }

    cl->presence_tick_sent = false;
}


void
ngx_http_realtime_cluster_presence_tick(ngx_http_realtime_cluster_t *cl)
    noexcept
{
    ngx_http_realtime_zone_t  *z = cl->zone;

    if (!cl->subscriber || cl->presence_tick_sent
        || cl->sub.state != NGX_HTTP_REALTIME_REDIS_UP
        || cl->cmd.state != NGX_HTTP_REALTIME_REDIS_UP)
    {
        return;
    }

    try {
        std::string_view  prefix = ngx_http_realtime_sv(z->redis->prefix);

        if (ngx_http_realtime_presence_eval(cl,
                ngx_http_realtime_presence_tick_lua,
                { realtime::presence_nodes_key(prefix) },
                { realtime::node_hex(z->root->zone_id),
                  std::to_string(z->redis->node_expiry), std::string(prefix),
                  std::to_string(NGX_HTTP_REALTIME_PRESENCE_REAP) },
                ngx_http_realtime_presence_ticked)
            == NGX_OK)
        {
            cl->presence_tick_sent = true;
        }

    } catch (...) {
        /* next second */
    }

    /* what the wake-ups missed */
    ngx_http_realtime_cluster_presence_drain(cl);
}


void
ngx_http_realtime_cluster_presence_drain_all(void) noexcept
{
    ngx_uint_t                       i;
    ngx_http_realtime_zone_t       **zones;
    ngx_http_realtime_main_conf_t   *rmcf;

    rmcf = ngx_http_realtime_worker.main_conf;

    if (rmcf == NULL) {
        return;
    }

    zones = (ngx_http_realtime_zone_t **) rmcf->zones.elts;

    for (i = 0; i < rmcf->zones.nelts; i++) {
        if (zones[i]->cluster && zones[i]->cluster->subscriber) {
            ngx_http_realtime_cluster_presence_drain(zones[i]->cluster);
        }
    }
}


/* ------------------------------------------------ GET ?presence= elsewhere */

bool
ngx_http_realtime_cluster_presence_local(ngx_http_realtime_zone_t *z,
    std::string_view group) noexcept
{
    ngx_http_realtime_registry_t  reg(z);

    const realtime::GroupNode  *g = reg->find(group);

    return g && (g->subscribers || g->remote_synced);
}


struct ngx_http_realtime_presence_query_t {
    ngx_http_realtime_cluster_answer_pt   done;
    void                                 *data;
    std::string                           group;
    ngx_uint_t                            max;
};


static void
ngx_http_realtime_presence_queried(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *q = (ngx_http_realtime_presence_query_t *) data;

    std::string  out;
    bool         ok = false;

    try {
        if (reply && reply->type == REDIS_REPLY_ARRAY) {
            struct user_t {
                std::string_view  user;
                std::string_view  info;
                uint64_t          connections;
            };

            std::vector<user_t>                      users;
            std::map<std::string_view, size_t>       index;

            /* field, value, field, value... */
            for (size_t i = 1; i < reply->elements; i += 2) {
                redisReply              *v = reply->element[i];
                realtime::PresenceWire   d;

                if (v->type != REDIS_REPLY_STRING
                    || !realtime::parse_presence_delta(
                           std::string_view(v->str, v->len), &d)
                    || !d.present || d.user.empty())
                {
                    continue;
                }

                auto  it = index.find(d.user);

                if (it == index.end()) {
                    index.emplace(d.user, users.size());
                    users.push_back({ d.user, d.info, d.connections });

                } else {
                    users[it->second].connections += d.connections;
                }
            }

            out = "{\"group\":" + realtime::json_quote(q->group)
                  + ",\"count\":" + std::to_string(users.size())
                  + ",\"users\":[";

            size_t  n;

            for (n = 0; n < users.size() && n < q->max; n++) {
                out += n ? ",{\"user\":" : "{\"user\":";
                out += realtime::json_quote(
                           realtime::json_string_text(users[n].user));
                out += ",\"info\":";
                out += users[n].info.empty() ? std::string_view("null")
                                             : users[n].info;
                out += ",\"connections\":"
                       + std::to_string(users[n].connections) + "}";
            }

            out += "]";

            if (n < users.size()) {
                out += ",\"truncated\":true";
            }

            out += "}";
            ok = true;
        }

    } catch (...) {
        ok = false;
    }

    q->done(q->data, ok ? &out : NULL);

    delete q;
}


ngx_int_t
ngx_http_realtime_cluster_presence_query(ngx_http_realtime_zone_t *z,
    std::string_view group, ngx_uint_t max,
    ngx_http_realtime_cluster_answer_pt done, void *data) noexcept
{
    ngx_http_realtime_cluster_t  *cl = z->cluster;

    if (cl == NULL) {
        return NGX_DECLINED;
    }

    ngx_http_realtime_redis_connect(&cl->cmd);

    if (!ngx_http_realtime_redis_usable(&cl->cmd)) {
        return NGX_DECLINED;
    }

    try {
        std::string  key = realtime::presence_hash_key(
                               ngx_http_realtime_sv(z->redis->prefix), group);

        auto  *q = new ngx_http_realtime_presence_query_t{
                       done, data, std::string(group), max };

        const char  *argv[2] = { "HGETALL", key.c_str() };
        size_t       lens[2] = { 7, key.size() };

        if (ngx_http_realtime_redis_command(&cl->cmd,
                ngx_http_realtime_presence_queried, q, 2, argv, lens)
            != NGX_OK)
        {
            delete q;
            return NGX_DECLINED;
        }

    } catch (...) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}
