/*
 * ngx_realtime_module: realtime_channels_redis (see the header).
 *
 * The worker that holds the role (ngx_http_realtime_election.h, lease 3 s)
 * has, for layer=core, a command link (ZADD/EXPIRE/ZREM of the group
 * registrations) and a pop link that always has one BZPOPMIN (or, while the
 * inbox has more, ZPOPMIN) on its way; for layer=pubsub, a subscriber link.
 * Every 100 ms it looks at the zone's counter of groups gaining their first
 * subscriber or losing their last (ClusterState::group_changes) and, when
 * it moved, walks the groups and sends the difference. It never takes the
 * zone's list of changed groups: realtime_redis' subscriber consumes that.
 *
 * The client prefix (32 hex) is kept in the zone, so a reload's workers
 * keep the registrations and the inbox of the last ones; a worker that
 * gives the role up because nginx quits (not because of a reload) removes
 * the registrations first (best effort, on a short blocking connection).
 *
 * Channel-layer messages are published on this node only (each node takes
 * part in the layer itself), without history.
 */

#include "ngx_http_realtime_channels.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include <openssl/rand.h>
#include <sys/time.h>

#include "core/channels_event.h"
#include "core/msgpack.h"
#include "core/ws_frame.h"
#include "ngx_http_realtime_election.h"
#include "ngx_http_realtime_worker.h"


#define NGX_HTTP_REALTIME_CHANNELS_LEASE    3000  /* ms */
#define NGX_HTTP_REALTIME_CHANNELS_CHECK    100   /* ms between looks */
#define NGX_HTTP_REALTIME_CHANNELS_BATCH    256   /* names per SUBSCRIBE */
#define NGX_HTTP_REALTIME_CHANNELS_LOG_GAP  1000  /* ms between info lines */


struct ngx_http_realtime_channels_t {
    ngx_http_realtime_zone_t                  *zone;
    const ngx_http_realtime_channels_conf_t   *conf;
    const std::vector<realtime::channels::EventRule>  *rules;
    ngx_log_t                                 *log;

    ngx_http_realtime_redis_link_t             cmd;   /* core: registrations */
    ngx_http_realtime_redis_link_t             pop;   /* core: the inbox */
    ngx_http_realtime_redis_link_t             sub;   /* pubsub */

    bool                                       holder;
    uint64_t                                   seen_changes;
    bool                                       walked;  /* since link up */

    /* core: group -> when it was last ZADDed (ms); pubsub: subscribed */
    std::map<std::string, ngx_msec_t>         *groups;

    std::string                               *client_prefix;
    std::string                               *channel_prefix; /* specific.
                                                                   <cp>! */
    std::string                               *inbox;

    ngx_event_t                                check;

    /* the pop link's command on its way: 0 none, 1 BZPOPMIN, 2 ZPOPMIN */
    ngx_uint_t                                 popping;
    uint64_t                                   popped;  /* since BZPOPMIN */
    bool                                       full_logged;

    /* counted here, added to the zone's at each save */
    uint64_t                                   received;
    uint64_t                                   delivered;
    uint64_t                                   dropped;
    uint64_t                                   ignored;
    uint64_t                                   inbox_full;

    ngx_msec_t                                 logged_at;
    uint64_t                                   unlogged;
};


static void ngx_http_realtime_channels_sync(ngx_http_realtime_channels_t *ch,
    bool all);
static void ngx_http_realtime_channels_pop(ngx_http_realtime_channels_t *ch);
static void ngx_http_realtime_channels_save(ngx_http_realtime_channels_t *ch);


static ngx_array_t *
ngx_http_realtime_channels_zones(void)
{
    ngx_http_realtime_main_conf_t  *rmcf = ngx_http_realtime_worker.main_conf;

    return rmcf ? &rmcf->zones : NULL;
}


/* ----------------------------------------------------------- directives */

char *
ngx_http_realtime_channels_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_str_t                          *value, zone_name = ngx_null_string;
    ngx_uint_t                          i;
    ngx_http_realtime_zone_t           *z;
    ngx_http_realtime_channels_conf_t  *cc;

    value = (ngx_str_t *) cf->args->elts;

    cc = (ngx_http_realtime_channels_conf_t *)
             ngx_pcalloc(cf->pool, sizeof(ngx_http_realtime_channels_conf_t));
    if (cc == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    cc->redis.timeout = 1000;
    ngx_str_set(&cc->redis.prefix, "asgi");
    ngx_str_set(&cc->prefix, "asgi");
    cc->layer = NGX_HTTP_REALTIME_CHANNELS_CORE;
    cc->expiry = 60;
    cc->group_expiry = 86400;
    cc->capacity = 100;

    try {
        realtime::RedisUrl  url;
        std::string         error, text((char *) value[1].data, value[1].len);

        if (!realtime::parse_redis_url(text, &url, &error)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid realtime_channels_redis URL: %s",
                               error.c_str());
            return (char *) NGX_CONF_ERROR;
        }

        for (i = 2; i < cf->args->nelts; i++) {
            ngx_str_t  *v = &value[i];

            auto is = [v](const char *name, size_t len) {
                return v->len > len && ngx_strncmp(v->data, name, len) == 0;
            };

            if (ngx_strlcasestrn(v->data, v->data + v->len,
                                 (u_char *) "encrypt", 7 - 1) != NULL)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "realtime_channels_redis: encrypted "
                                   "channel layers are not supported "
                                   "(symmetric_encryption_keys): use a "
                                   "layer without encryption, on a Redis "
                                   "reached over a private network");
                return (char *) NGX_CONF_ERROR;

            } else if (is("zone=", 5)) {
                zone_name.data = v->data + 5;
                zone_name.len = v->len - 5;

            } else if (is("prefix=", 7)) {
                cc->prefix.data = v->data + 7;
                cc->prefix.len = v->len - 7;

            } else if (is("layer=", 6)) {
                ngx_str_t  l = { v->len - 6, v->data + 6 };

                if (l.len == 4 && ngx_strncmp(l.data, "core", 4) == 0) {
                    cc->layer = NGX_HTTP_REALTIME_CHANNELS_CORE;

                } else if (l.len == 6 && ngx_strncmp(l.data, "pubsub", 6) == 0)
                {
                    cc->layer = NGX_HTTP_REALTIME_CHANNELS_PUBSUB;

                } else {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid layer \"%V\" (core or "
                                       "pubsub)", &l);
                    return (char *) NGX_CONF_ERROR;
                }

            } else if (is("expiry=", 7) || is("group_expiry=", 13)) {
                bool       group = v->data[0] == 'g';
                size_t     skip = group ? 13 : 7;
                ngx_str_t  t = { v->len - skip, v->data + skip };
                time_t     s = ngx_parse_time(&t, 1);

                if (s == (time_t) NGX_ERROR || s <= 0) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid %s \"%V\"",
                                       group ? "group_expiry" : "expiry", &t);
                    return (char *) NGX_CONF_ERROR;
                }

                (group ? cc->group_expiry : cc->expiry) = s;

            } else if (is("capacity=", 9)) {
                ngx_int_t  n = ngx_atoi(v->data + 9, v->len - 9);

                if (n == NGX_ERROR || n < 1 || n > 100000) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid capacity \"%V\" (1..100000)",
                                       v);
                    return (char *) NGX_CONF_ERROR;
                }

                cc->capacity = (ngx_uint_t) n;

            } else if (is("timeout=", 8)) {
                ngx_str_t  t = { v->len - 8, v->data + 8 };

                cc->redis.timeout = ngx_parse_time(&t, 0);
                if (cc->redis.timeout == (ngx_msec_t) NGX_ERROR
                    || cc->redis.timeout < 20)
                {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid timeout \"%V\" (at least "
                                       "20ms)", &t);
                    return (char *) NGX_CONF_ERROR;
                }

            } else if (url.is_unix && is("password=", 9)) {
                url.password.assign((char *) v->data + 9, v->len - 9);

            } else if (url.is_unix && is("db=", 3)) {
                if (!realtime::parse_redis_db(
                        std::string_view((char *) v->data + 3, v->len - 3),
                        &url.db))
                {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid database number in \"db=\"");
                    return (char *) NGX_CONF_ERROR;
                }

            } else {
                /* never echo it: it may be a password= where none fits */
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter %ui of "
                                   "realtime_channels_redis (zone=, prefix=, "
                                   "layer=, expiry=, group_expiry=, "
                                   "capacity=, timeout=; password= and db= "
                                   "after a unix: URL)", i);
                return (char *) NGX_CONF_ERROR;
            }
        }

        if (cc->prefix.len == 0 || cc->prefix.len > 100) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid prefix (1 to 100 bytes)");
            return (char *) NGX_CONF_ERROR;
        }

        if (ngx_http_realtime_redis_conf_address(cf, url, &cc->redis,
                                                 "realtime_channels_redis")
            != NGX_CONF_OK)
        {
            return (char *) NGX_CONF_ERROR;
        }

    } catch (...) {
        return (char *) NGX_CONF_ERROR;
    }

    z = ngx_http_realtime_redis_conf_zone(cf, &zone_name,
                                          "realtime_channels_redis");
    if (z == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    if (z->channels_conf) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" has a realtime_channels_redis already",
                           &z->name);
        return (char *) NGX_CONF_ERROR;
    }

    z->channels_conf = cc;

    return NGX_CONF_OK;
}


static void
ngx_http_realtime_channels_rules_cleanup(void *data)
{
    delete (std::vector<realtime::channels::EventRule> *) data;
}


char *
ngx_http_realtime_channels_event_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_realtime_main_conf_t *rmcf =
        (ngx_http_realtime_main_conf_t *) conf;

    ngx_str_t           *value = (ngx_str_t *) cf->args->elts;
    ngx_pool_cleanup_t  *cln;

    try {
        std::vector<std::string_view>  args;
        realtime::channels::EventRule  rule;
        std::string                    error;

        for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
            args.push_back(ngx_http_realtime_sv(value[i]));
        }

        if (!realtime::channels::parse_rule(args, &rule, &error)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid realtime_channels_event: %s",
                               error.c_str());
            return (char *) NGX_CONF_ERROR;
        }

        if (rmcf->channels_rules == NULL) {
            cln = ngx_pool_cleanup_add(cf->pool, 0);
            if (cln == NULL) {
                return (char *) NGX_CONF_ERROR;
            }

            rmcf->channels_rules =
                new std::vector<realtime::channels::EventRule>();
            cln->handler = ngx_http_realtime_channels_rules_cleanup;
            cln->data = rmcf->channels_rules;
        }

        for (const auto &r : *rmcf->channels_rules) {
            if (r.type == rule.type) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "realtime_channels_event \"%V\" is "
                                   "duplicate", &value[1]);
                return (char *) NGX_CONF_ERROR;
            }
        }

        rmcf->channels_rules->push_back(std::move(rule));

    } catch (...) {
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* ------------------------------------------------------------- messages */

/* An info line at most once a second; the ones in between are counted. */

static void
ngx_http_realtime_channels_log(ngx_http_realtime_channels_t *ch,
    const char *what, const std::string &why)
{
    if (ch->logged_at
        && ngx_current_msec - ch->logged_at < NGX_HTTP_REALTIME_CHANNELS_LOG_GAP)
    {
        ch->unlogged++;
        return;
    }

    if (ch->unlogged) {
        ngx_log_error(NGX_LOG_INFO, ch->log, 0,
                      "realtime: channel layer message of zone \"%V\" "
                      "dropped (%s: %s), and %uL more since the last such "
                      "line", &ch->zone->name, what, why.c_str(),
                      ch->unlogged);
    } else {
        ngx_log_error(NGX_LOG_INFO, ch->log, 0,
                      "realtime: channel layer message of zone \"%V\" "
                      "dropped (%s: %s)", &ch->zone->name, what, why.c_str());
    }

    ch->logged_at = ngx_current_msec;
    ch->unlogged = 0;
}


/* The group a channel name of ours stands for (the part after '!'). */

static bool
ngx_http_realtime_channels_group_of(std::string_view name,
    std::string_view *group)
{
    size_t  bang = name.find('!');

    if (bang == std::string_view::npos) {
        return false;
    }

    *group = name.substr(bang + 1);

    return realtime::channels::is_channels_group_name(*group);
}


/*
 * One message of the layer: data is msgpack (after 12 random bytes for
 * the core layer); group: the pubsub layer's, or empty (core: the
 * message's __asgi_channel__ says).
 */

static void
ngx_http_realtime_channels_message(ngx_http_realtime_channels_t *ch,
    std::string_view data, std::string_view group)
{
    realtime::msgpack::Value         event;
    realtime::channels::Outgoing     out;
    std::string                      error;
    std::vector<std::string_view>    groups;

    ch->received++;

    try {
        if (group.empty()) {
            if (data.size() < 12) {
                ch->dropped++;
                ngx_http_realtime_channels_log(ch, "too short",
                                               "under 12 bytes");
                return;
            }

            data.remove_prefix(12);
        }

        if (!realtime::msgpack::decode(data, &event, &error)) {
            ch->dropped++;
            ngx_http_realtime_channels_log(ch, "not msgpack", error);
            return;
        }

        if (!group.empty()) {
            groups.push_back(group);

        } else {
            const realtime::msgpack::Value  *names =
                event.type == realtime::msgpack::Value::Type::kMap
                ? event.find("__asgi_channel__") : nullptr;
            std::string_view                 g;

            if (names && names->type == realtime::msgpack::Value::Type::kStr) {
                if (ngx_http_realtime_channels_group_of(names->bytes, &g)) {
                    groups.push_back(g);
                }

            } else if (names
                       && names->type == realtime::msgpack::Value::Type::kArray)
            {
                for (const auto &n : names->items) {
                    if (n.type == realtime::msgpack::Value::Type::kStr
                        && ngx_http_realtime_channels_group_of(n.bytes, &g))
                    {
                        bool  seen = false;

                        for (const auto &h : groups) {
                            seen = seen || h == g;
                        }

                        if (!seen) {
                            groups.push_back(g);
                        }
                    }
                }
            }

            if (groups.empty()) {
                ch->dropped++;
                ngx_http_realtime_channels_log(ch, "no group",
                    "no channel of this node in __asgi_channel__");
                return;
            }
        }

        if (!realtime::channels::map_event(event, *ch->rules, &out, &error)) {
            ch->dropped++;
            ngx_http_realtime_channels_log(ch, "cannot be sent", error);
            return;
        }

        if (out.kind == realtime::channels::Outgoing::Kind::kNone) {
            ch->ignored++;
            return;
        }

        bool  binary = out.kind == realtime::channels::Outgoing::Kind::kBinary;
        const realtime::msgpack::Value  *type = event.find("type");
        bool  verbatim = type
                         && type->type == realtime::msgpack::Value::Type::kStr
                         && type->bytes == "websocket.send";

        std::string  frame = realtime::ws::encode_frame(
                                 binary ? realtime::ws::Opcode::kBinary
                                        : realtime::ws::Opcode::kText,
                                 out.payload);

        realtime::Registry::PublishOptions  options;

        options.header_size = (uint8_t) (frame.size() - out.payload.size());
        /* text sent verbatim is a string in an envelope, not JSON */
        options.flags = (verbatim && !binary) ? realtime::kPayloadIsString : 0;

        realtime::Registry::Published  res;

        {
            ngx_http_realtime_registry_t  reg(ch->zone);

            res = reg->publish(groups.data(), groups.size(),
                               (const uint8_t *) frame.data(), frame.size(),
                               options);
        }

        if (res.status != realtime::Registry::Status::kOk) {
            ch->dropped++;
            ngx_http_realtime_channels_log(ch, "zone full",
                                           "the zone cannot hold it");
            return;
        }

        ch->delivered++;

        if (!res.wake.none()) {
            ngx_http_realtime_worker_wake(ch->zone, res.wake);
        }

    } catch (...) {
        ch->dropped++;
        ngx_http_realtime_channels_log(ch, "out of memory", "");
    }
}


/* ---------------------------------------------------------- core: inbox */

static void
ngx_http_realtime_channels_full(ngx_http_realtime_channels_t *ch)
{
    ch->inbox_full++;

    if (!ch->full_logged) {
        ch->full_logged = true;

        ngx_log_error(NGX_LOG_WARN, ch->log, 0,
                      "realtime: the channel layer inbox \"%s\" of zone "
                      "\"%V\" was full (capacity %ui): Django dropped what "
                      "did not fit; raise capacity (in Django's CHANNEL_LAYERS "
                      "and here)", ch->inbox->c_str(), &ch->zone->name,
                      ch->conf->capacity);
    }
}


static void
ngx_http_realtime_channels_pop_reply(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto        *ch = (ngx_http_realtime_channels_t *) data;
    ngx_uint_t   was = ch->popping;

    ch->popping = 0;

    if (reply == NULL || !ch->holder) {
        return;     /* down: popping again when it is up */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_realtime_redis_fail(link, "the inbox could not be read");
        return;
    }

    if (was == 1) {
        /* BZPOPMIN: [key, member, score], or nil when it timed out */
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3
            && reply->element[1]->type == REDIS_REPLY_STRING)
        {
            ngx_http_realtime_channels_message(ch,
                std::string_view(reply->element[1]->str,
                                 reply->element[1]->len),
                std::string_view());
            ngx_http_realtime_channels_save(ch);

            /* the rest at once, in batches */
            ch->popped = 1;
            ngx_http_realtime_channels_pop(ch);     /* ZPOPMIN */
            return;
        }

        /* the inbox stayed empty: an outage of its capacity is over */
        ch->full_logged = false;
        ngx_http_realtime_channels_pop(ch);
        return;
    }

    /* ZPOPMIN: member, score, member, score, ... */
    size_t  n = 0;

    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < reply->elements; i += 2) {
            if (reply->element[i]->type == REDIS_REPLY_STRING) {
                ngx_http_realtime_channels_message(ch,
                    std::string_view(reply->element[i]->str,
                                     reply->element[i]->len),
                    std::string_view());
            }

            n++;
        }
    }

    /* what the inbox held when it was read: at its capacity, Django
       dropped what did not fit */
    if (ch->popped + n >= ch->conf->capacity) {
        ngx_http_realtime_channels_full(ch);
    }

    ngx_http_realtime_channels_save(ch);

    /* a full batch: there may be more; otherwise block again */
    ch->popped = n >= ch->conf->capacity ? 0 : (uint64_t) -1;
    ngx_http_realtime_channels_pop(ch);
}


/*
 * The next command on the pop link: ZPOPMIN while the inbox may hold more
 * (popped != -1), else BZPOPMIN blocking for half the link's timeout (a
 * reply always comes within it).
 */

static void
ngx_http_realtime_channels_pop(ngx_http_realtime_channels_t *ch)
{
    if (!ch->holder || ch->popping
        || ch->pop.state != NGX_HTTP_REALTIME_REDIS_UP)
    {
        return;
    }

    if (ch->popped != (uint64_t) -1) {
        char         count[NGX_INT_T_LEN];
        const char  *argv[3] = { "ZPOPMIN", ch->inbox->c_str(), count };
        size_t       lens[3] = { 7, ch->inbox->size(), 0 };

        lens[2] = ngx_sprintf((u_char *) count, "%ui", ch->conf->capacity)
                  - (u_char *) count;

        if (ngx_http_realtime_redis_command(&ch->pop,
                ngx_http_realtime_channels_pop_reply, ch, 3, argv, lens)
            == NGX_OK)
        {
            ch->popping = 2;
        }

        return;
    }

    char         secs[32];
    ngx_msec_t   block = ngx_max(ch->conf->redis.timeout / 2, (ngx_msec_t) 10);
    const char  *argv[3] = { "BZPOPMIN", ch->inbox->c_str(), secs };
    size_t       lens[3] = { 8, ch->inbox->size(), 0 };

    lens[2] = ngx_sprintf((u_char *) secs, "%ui.%03ui",
                          (ngx_uint_t) (block / 1000),
                          (ngx_uint_t) (block % 1000))
              - (u_char *) secs;

    if (ngx_http_realtime_redis_command(&ch->pop,
            ngx_http_realtime_channels_pop_reply, ch, 3, argv, lens) == NGX_OK)
    {
        ch->popping = 1;
    }
}


static void
ngx_http_realtime_channels_pop_up(ngx_http_realtime_redis_link_t *link)
{
    auto  *ch = (ngx_http_realtime_channels_t *) link->data;

    ch->popping = 0;
    ch->popped = 0;     /* what waited meanwhile first */
    ngx_http_realtime_channels_pop(ch);
    ngx_http_realtime_channels_save(ch);
}


static void
ngx_http_realtime_channels_link_down(ngx_http_realtime_redis_link_t *link)
{
    auto  *ch = (ngx_http_realtime_channels_t *) link->data;

    if (link == &ch->pop) {
        ch->popping = 0;
    }

    if (link == &ch->sub) {
        /* a new connection has no subscription: all again on reconnect */
        ch->groups->clear();
    }

    /* core: the registrations are kept, and all made again on reconnect
       (Redis may have lost them), those of groups left meanwhile removed */

    ngx_http_realtime_channels_save(ch);
}


/* ---------------------------------------------------- core: registration */

static void
ngx_http_realtime_channels_cmd_reply(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *ch = (ngx_http_realtime_channels_t *) data;

    if (reply && reply->type == REDIS_REPLY_ERROR) {
        ngx_http_realtime_channels_log(ch, "registration failed",
                                       std::string(reply->str, reply->len));
    }
}


static double
ngx_http_realtime_channels_wall(void)
{
    struct timeval  tv;

    ngx_gettimeofday(&tv);

    return (double) tv.tv_sec + (double) tv.tv_usec / 1e6;
}


/* ZADD (and EXPIRE) or ZREM the channel of group; false: the link is down. */

static bool
ngx_http_realtime_channels_register(ngx_http_realtime_channels_t *ch,
    const std::string &group, bool add)
{
    std::string  key = std::string(ngx_http_realtime_sv(ch->conf->prefix))
                       + ":group:" + group;
    std::string  member = *ch->channel_prefix + group;

    if (!add) {
        const char  *argv[3] = { "ZREM", key.c_str(), member.c_str() };
        size_t       lens[3] = { 4, key.size(), member.size() };

        return ngx_http_realtime_redis_command(&ch->cmd,
                   ngx_http_realtime_channels_cmd_reply, ch, 3, argv, lens)
               == NGX_OK;
    }

    char         score[64], expiry[NGX_TIME_T_LEN];
    const char  *zadd[4] = { "ZADD", key.c_str(), score, member.c_str() };
    size_t       zlens[4] = { 4, key.size(), 0, member.size() };
    const char  *exp[3] = { "EXPIRE", key.c_str(), expiry };
    size_t       elens[3] = { 6, key.size(), 0 };

    /* Django's time.time(): group_send drops members older than
       group_expiry by this score */
    zlens[2] = (size_t) snprintf(score, sizeof(score), "%.6f",
                                 ngx_http_realtime_channels_wall());
    elens[2] = ngx_sprintf((u_char *) expiry, "%T", ch->conf->group_expiry)
               - (u_char *) expiry;

    return ngx_http_realtime_redis_command(&ch->cmd,
               ngx_http_realtime_channels_cmd_reply, ch, 4, zadd, zlens)
           == NGX_OK
           && ngx_http_realtime_redis_command(&ch->cmd,
                  ngx_http_realtime_channels_cmd_reply, ch, 3, exp, elens)
              == NGX_OK;
}


/* pubsub: SUBSCRIBE or UNSUBSCRIBE group channels, in batches */

static void
ngx_http_realtime_channels_subscribe(ngx_http_realtime_channels_t *ch,
    const char *verb, const std::vector<std::string> &names)
{
    std::string  prefix = std::string(ngx_http_realtime_sv(ch->conf->prefix))
                          + "__group__";

    for (size_t i = 0; i < names.size(); i += NGX_HTTP_REALTIME_CHANNELS_BATCH)
    {
        size_t  n = ngx_min(names.size() - i,
                            (size_t) NGX_HTTP_REALTIME_CHANNELS_BATCH);

        std::vector<std::string>   channels;
        std::vector<const char *>  argv;
        std::vector<size_t>        lens;

        argv.push_back(verb);
        lens.push_back(ngx_strlen(verb));

        for (size_t j = 0; j < n; j++) {
            channels.push_back(prefix + names[i + j]);
        }

        for (const auto &c : channels) {
            argv.push_back(c.data());
            lens.push_back(c.size());
        }

        if (ngx_http_realtime_redis_subscribe(&ch->sub, (int) argv.size(),
                                              argv.data(), lens.data())
            != NGX_OK)
        {
            return;     /* down: all of them again on reconnect */
        }
    }
}


/*
 * Registers (core) or subscribes (pubsub) the groups that gained
 * subscribers here, undoes it for those that lost their last. A walk of
 * every group, done only when the zone's counter moved (or all: after a
 * reconnect).
 */

static void
ngx_http_realtime_channels_sync(ngx_http_realtime_channels_t *ch, bool all)
{
    uint64_t                   changes;
    ngx_http_realtime_zone_t  *z = ch->zone;
    bool                       core = ch->conf->layer
                                      == NGX_HTTP_REALTIME_CHANNELS_CORE;
    ngx_http_realtime_redis_link_t  *link = core ? &ch->cmd : &ch->sub;

    if (!ch->holder || link->state != NGX_HTTP_REALTIME_REDIS_UP) {
        return;
    }

    changes = __atomic_load_n(&z->root->cluster.group_changes,
                              __ATOMIC_ACQUIRE);

    if (!all && ch->walked && changes == ch->seen_changes) {
        return;
    }

    try {
        std::set<std::string>     want;
        std::vector<std::string>  add, remove;

        {
            ngx_http_realtime_registry_t  reg(z);

            changes = z->root->cluster.group_changes;

            reg->each_group([&want](const realtime::GroupNode &g) {
                if (g.subscribers
                    && realtime::channels::is_channels_group_name(g.name()))
                {
                    want.emplace(g.name());
                }
            });
        }

        for (const auto &g : want) {
            /* after a reconnect (all), the core layer's again */
            if (ch->groups->count(g) == 0 || (all && core)) {
                add.push_back(g);
            }
        }

        for (const auto &kv : *ch->groups) {
            if (want.count(kv.first) == 0) {
                remove.push_back(kv.first);
            }
        }

        if (core) {
            for (const auto &g : add) {
                if (!ngx_http_realtime_channels_register(ch, g, true)) {
                    return;     /* down: all again on reconnect */
                }

                (*ch->groups)[g] = ngx_current_msec;
            }

            for (const auto &g : remove) {
                if (!ngx_http_realtime_channels_register(ch, g, false)) {
                    return;
                }

                ch->groups->erase(g);
            }

        } else {
            ngx_http_realtime_channels_subscribe(ch, "SUBSCRIBE", add);
            ngx_http_realtime_channels_subscribe(ch, "UNSUBSCRIBE", remove);

            for (const auto &g : add) {
                (*ch->groups)[g] = ngx_current_msec;
            }

            for (const auto &g : remove) {
                ch->groups->erase(g);
            }
        }

        ch->seen_changes = changes;
        ch->walked = true;

        if (!add.empty() || !remove.empty()) {
            ngx_http_realtime_channels_save(ch);
        }

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, ch->log, 0,
                      "realtime: out of memory updating the channel layer "
                      "groups of zone \"%V\"", &z->name);
        ch->walked = false;
    }
}


/* core: a registration is refreshed well before group_expiry (Django
   drops members whose score is older). */

static void
ngx_http_realtime_channels_refresh(ngx_http_realtime_channels_t *ch)
{
    ngx_msec_t  every = (ngx_msec_t) ngx_min(ch->conf->group_expiry / 4,
                                             (time_t) 3600) * 1000;

    if (every == 0) {
        every = 500;
    }

    if (ch->conf->layer != NGX_HTTP_REALTIME_CHANNELS_CORE
        || !ch->holder || ch->cmd.state != NGX_HTTP_REALTIME_REDIS_UP)
    {
        return;
    }

    try {
        for (auto &kv : *ch->groups) {
            if (ngx_current_msec - kv.second >= every) {
                if (!ngx_http_realtime_channels_register(ch, kv.first, true)) {
                    return;
                }

                kv.second = ngx_current_msec;
            }
        }

    } catch (...) {
    }
}


static void
ngx_http_realtime_channels_sync_up(ngx_http_realtime_redis_link_t *link)
{
    auto  *ch = (ngx_http_realtime_channels_t *) link->data;

    if (link == &ch->sub) {
        ch->groups->clear();
    }

    ngx_http_realtime_channels_sync(ch, true);
    ngx_http_realtime_channels_save(ch);

    if (!ch->check.timer_set) {
        ngx_add_timer(&ch->check, NGX_HTTP_REALTIME_CHANNELS_CHECK);
    }
}


/* ------------------------------------------------------------- pubsub */

static void
ngx_http_realtime_channels_push(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *ch = (ngx_http_realtime_channels_t *) data;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    std::string_view  kind(reply->element[0]->str, reply->element[0]->len);

    if (kind != "message") {
        return;
    }

    std::string_view  channel(reply->element[1]->str, reply->element[1]->len);
    std::string       prefix = std::string(ngx_http_realtime_sv(
                                               ch->conf->prefix))
                               + "__group__";

    if (reply->element[2]->type != REDIS_REPLY_STRING
        || channel.substr(0, prefix.size()) != prefix
        || !realtime::channels::is_channels_group_name(
               channel.substr(prefix.size())))
    {
        ch->received++;
        ch->dropped++;
        ngx_http_realtime_channels_log(ch, "unexpected", "not a group channel");
        return;
    }

    ngx_http_realtime_channels_message(ch,
        std::string_view(reply->element[2]->str, reply->element[2]->len),
        channel.substr(prefix.size()));
    ngx_http_realtime_channels_save(ch);
}


/* ------------------------------------------------------------- election */

static void
ngx_http_realtime_channels_check_handler(ngx_event_t *ev) noexcept
{
    auto  *ch = (ngx_http_realtime_channels_t *) ev->data;

    if (!ch->holder) {
        return;
    }

    ngx_http_realtime_channels_sync(ch, false);

    ngx_add_timer(&ch->check, NGX_HTTP_REALTIME_CHANNELS_CHECK);
}


/*
 * Before nginx quits (not a reload: the next workers keep the client
 * prefix, hence the registrations), Django stops sending to this node:
 * ZREM of every registration, on a short blocking connection (the worker
 * is on its way out; at most the timeout).
 */

static void
ngx_http_realtime_channels_unregister_all(ngx_http_realtime_channels_t *ch)
{
    const ngx_http_realtime_redis_conf_t  *rc = &ch->conf->redis;

    if (ch->conf->layer != NGX_HTTP_REALTIME_CHANNELS_CORE
        || ch->groups->empty())
    {
        return;
    }

    if (ch->zone->root->generation != ch->zone->generation) {
        return;     /* a reload: the next workers take over */
    }

    struct timeval  tv;

    tv.tv_sec = (time_t) (rc->timeout / 1000);
    tv.tv_usec = (suseconds_t) (rc->timeout % 1000) * 1000;

    redisContext  *c = rc->path.len
                       ? redisConnectUnixWithTimeout((const char *)
                                                     rc->path.data, tv)
                       : redisConnectWithTimeout((const char *) rc->ip.data,
                                                 rc->port, tv);

    if (c == NULL) {
        return;
    }

    if (c->err || redisSetTimeout(c, tv) != REDIS_OK) {
        redisFree(c);
        return;
    }

    try {
        size_t  n = 0;

        if (rc->password.len) {
            if (rc->user.len) {
                redisAppendCommand(c, "AUTH %b %b", rc->user.data,
                                   rc->user.len, rc->password.data,
                                   rc->password.len);
            } else {
                redisAppendCommand(c, "AUTH %b", rc->password.data,
                                   rc->password.len);
            }

            n++;
        }

        if (rc->db) {
            redisAppendCommand(c, "SELECT %u", (unsigned) rc->db);
            n++;
        }

        for (const auto &kv : *ch->groups) {
            std::string  key = std::string(ngx_http_realtime_sv(
                                               ch->conf->prefix))
                               + ":group:" + kv.first;
            std::string  member = *ch->channel_prefix + kv.first;

            redisAppendCommand(c, "ZREM %b %b", key.data(), key.size(),
                               member.data(), member.size());
            n++;
        }

        for (size_t i = 0; i < n; i++) {
            void  *r = NULL;

            if (redisGetReply(c, &r) != REDIS_OK) {
                break;
            }

            freeReplyObject(r);
        }

    } catch (...) {
    }

    redisFree(c);
    ch->groups->clear();
}


static void
ngx_http_realtime_channels_stop(ngx_http_realtime_channels_t *ch)
{
    ch->holder = false;
    ch->popping = 0;
    ch->walked = false;
    ch->groups->clear();

    ngx_http_realtime_redis_close(&ch->cmd);
    ngx_http_realtime_redis_close(&ch->pop);
    ngx_http_realtime_redis_close(&ch->sub);

    if (ch->check.timer_set) {
        ngx_del_timer(&ch->check);
    }
}


static void
ngx_http_realtime_channels_tick_zone(ngx_http_realtime_channels_t *ch)
{
    ngx_http_realtime_elect_e   e;
    ngx_http_realtime_zone_t   *z = ch->zone;

    {
        ngx_http_realtime_registry_t  reg(z);

        realtime::ChannelsState  *cs = &z->root->channels;

        e = ngx_http_realtime_elect(z, &cs->election,
                                    ngx_http_realtime_now_ms(),
                                    NGX_HTTP_REALTIME_CHANNELS_LEASE);

        if (e == NGX_HTTP_REALTIME_ELECT_TAKEN) {
            cs->state = 1;
            cs->groups = 0;

        } else if (e == NGX_HTTP_REALTIME_ELECT_RELEASED) {
            cs->state = 0;
            cs->groups = 0;
        }
    }

    if (e == NGX_HTTP_REALTIME_ELECT_RELEASED && ch->holder) {
        ngx_http_realtime_channels_unregister_all(ch);
        ngx_http_realtime_channels_stop(ch);

    } else if ((e == NGX_HTTP_REALTIME_ELECT_TAKEN
                || e == NGX_HTTP_REALTIME_ELECT_KEPT) && !ch->holder)
    {
        ch->holder = true;
        ch->walked = false;
        ch->popped = 0;

        ngx_log_error(NGX_LOG_INFO, ch->log, 0,
                      "realtime: this worker takes part in the channel layer "
                      "for zone \"%V\" (%s, client prefix %s)", &z->name,
                      ch->conf->layer == NGX_HTTP_REALTIME_CHANNELS_CORE
                      ? "core" : "pubsub", ch->client_prefix->c_str());

        if (ch->conf->layer == NGX_HTTP_REALTIME_CHANNELS_CORE) {
            ngx_http_realtime_redis_connect(&ch->cmd);
            ngx_http_realtime_redis_connect(&ch->pop);

        } else {
            ngx_http_realtime_redis_connect(&ch->sub);
        }

    } else if (e == NGX_HTTP_REALTIME_ELECT_OTHER && ch->holder) {
        ngx_http_realtime_channels_stop(ch);
    }

    if (ch->holder) {
        ngx_http_realtime_channels_refresh(ch);
    }

    ngx_http_realtime_channels_save(ch);
}


/* This worker's counters, and as holder the links' state. */

static void
ngx_http_realtime_channels_save(ngx_http_realtime_channels_t *ch)
{
    ngx_http_realtime_zone_t  *z = ch->zone;

    ngx_http_realtime_registry_t  reg(z);

    realtime::ChannelsState  *cs = &z->root->channels;

    cs->received += ch->received;
    cs->delivered += ch->delivered;
    cs->dropped += ch->dropped;
    cs->ignored += ch->ignored;
    cs->inbox_full += ch->inbox_full;
    ch->received = ch->delivered = ch->dropped = ch->ignored = 0;
    ch->inbox_full = 0;

    if (ch->holder && z->slot >= 0 && cs->election.owner == z->owner) {
        ngx_uint_t  s;

        if (ch->conf->layer == NGX_HTTP_REALTIME_CHANNELS_CORE) {
            s = ngx_min(ch->cmd.state, ch->pop.state);
            if (ch->cmd.state == NGX_HTTP_REALTIME_REDIS_DOWN
                || ch->pop.state == NGX_HTTP_REALTIME_REDIS_DOWN)
            {
                s = NGX_HTTP_REALTIME_REDIS_DOWN;
            }

        } else {
            s = ch->sub.state;
        }

        cs->state = s == NGX_HTTP_REALTIME_REDIS_UP ? 2
                    : s == NGX_HTTP_REALTIME_REDIS_DOWN ? 0 : 1;
        cs->groups = (uint32_t) ch->groups->size();
    }
}


void
ngx_http_realtime_channels_tick(void) noexcept
{
    ngx_array_t                *zones;
    ngx_http_realtime_zone_t  **z;

    zones = ngx_http_realtime_channels_zones();
    if (zones == NULL) {
        return;
    }

    z = (ngx_http_realtime_zone_t **) zones->elts;

    for (ngx_uint_t i = 0; i < zones->nelts; i++) {
        if (z[i]->channels) {
            ngx_http_realtime_channels_tick_zone(z[i]->channels);
        }
    }
}


/* ----------------------------------------------------------- lifecycle */

static const std::vector<realtime::channels::EventRule>  no_rules;


ngx_int_t
ngx_http_realtime_channels_init(ngx_cycle_t *cycle) noexcept
{
    ngx_array_t                     *zones;
    ngx_http_realtime_zone_t       **z;
    ngx_http_realtime_channels_t    *ch;
    ngx_http_realtime_main_conf_t   *rmcf = ngx_http_realtime_worker.main_conf;

    zones = ngx_http_realtime_channels_zones();
    if (zones == NULL) {
        return NGX_OK;
    }

    z = (ngx_http_realtime_zone_t **) zones->elts;

    for (ngx_uint_t i = 0; i < zones->nelts; i++) {
        if (z[i]->channels_conf == NULL) {
            continue;
        }

        ch = (ngx_http_realtime_channels_t *)
                 ngx_pcalloc(cycle->pool, sizeof(ngx_http_realtime_channels_t));
        if (ch == NULL) {
            return NGX_ERROR;
        }

        ch->zone = z[i];
        ch->conf = z[i]->channels_conf;
        ch->rules = rmcf->channels_rules ? rmcf->channels_rules : &no_rules;
        ch->log = cycle->log;
        ch->popped = 0;

        try {
            char  cp[33];

            {
                ngx_http_realtime_registry_t  reg(z[i]);

                realtime::ChannelsState  *cs = &z[i]->root->channels;

                if (cs->client_prefix[0] == '\0') {
                    u_char  raw[16];

                    if (RAND_bytes(raw, sizeof(raw)) != 1) {
                        for (auto &b : raw) {
                            b = (u_char) ngx_random();
                        }
                    }

                    ngx_hex_dump((u_char *) cs->client_prefix, raw,
                                 sizeof(raw));
                    cs->client_prefix[32] = '\0';
                }

                ngx_memcpy(cp, cs->client_prefix, sizeof(cp));
            }

            ch->groups = new std::map<std::string, ngx_msec_t>();
            ch->client_prefix = new std::string(cp);
            ch->channel_prefix = new std::string(
                std::string("specific.") + cp + "!");
            ch->inbox = new std::string(
                std::string(ngx_http_realtime_sv(ch->conf->prefix))
                + *ch->channel_prefix);

        } catch (...) {
            return NGX_ERROR;
        }

        if (ngx_http_realtime_redis_init(&ch->cmd, &ch->conf->redis,
                                         "channel layer", cycle->log) != NGX_OK
            || ngx_http_realtime_redis_init(&ch->pop, &ch->conf->redis,
                                            "channel layer inbox", cycle->log)
               != NGX_OK
            || ngx_http_realtime_redis_init(&ch->sub, &ch->conf->redis,
                                            "channel layer subscriber",
                                            cycle->log) != NGX_OK)
        {
            return NGX_ERROR;
        }

        ch->cmd.data = ch;
        ch->cmd.on_up = ngx_http_realtime_channels_sync_up;
        ch->cmd.on_down = ngx_http_realtime_channels_link_down;
        ch->pop.data = ch;
        ch->pop.on_up = ngx_http_realtime_channels_pop_up;
        ch->pop.on_down = ngx_http_realtime_channels_link_down;
        ch->sub.data = ch;
        ch->sub.on_up = ngx_http_realtime_channels_sync_up;
        ch->sub.on_down = ngx_http_realtime_channels_link_down;
        ch->sub.on_push = ngx_http_realtime_channels_push;

        ch->check.handler = ngx_http_realtime_channels_check_handler;
        ch->check.data = ch;
        ch->check.log = cycle->log;
        ch->check.cancelable = 1;

        z[i]->channels = ch;

        /* a node without its links misses messages: elect at once */
        ngx_http_realtime_channels_tick_zone(ch);
    }

    return NGX_OK;
}


void
ngx_http_realtime_channels_exit(ngx_cycle_t *cycle) noexcept
{
    ngx_array_t                   *zones;
    ngx_http_realtime_zone_t     **z;
    ngx_http_realtime_channels_t  *ch;

    zones = ngx_http_realtime_channels_zones();
    if (zones == NULL) {
        return;
    }

    z = (ngx_http_realtime_zone_t **) zones->elts;

    for (ngx_uint_t i = 0; i < zones->nelts; i++) {
        ch = z[i]->channels;

        if (ch == NULL) {
            continue;
        }

        if (ch->holder) {
            bool  released;

            {
                ngx_http_realtime_registry_t  reg(z[i]);

                realtime::ChannelsState  *cs = &z[i]->root->channels;

                released = ngx_http_realtime_election_release(z[i],
                                                              &cs->election);
                if (released) {
                    cs->state = 0;
                    cs->groups = 0;
                }
            }

            if (released) {
                ngx_http_realtime_channels_unregister_all(ch);
            }
        }

        ngx_http_realtime_channels_stop(ch);
        ngx_http_realtime_channels_save(ch);

        delete ch->groups;
        delete ch->client_prefix;
        delete ch->channel_prefix;
        delete ch->inbox;
        delete ch->cmd.sent;
        delete ch->pop.sent;
        delete ch->sub.sent;
        ch->cmd.sent = ch->pop.sent = ch->sub.sent = NULL;

        z[i]->channels = NULL;
    }
}


/* ---------------------------------------------------------------- stats */

std::string
ngx_http_realtime_channels_stats(ngx_http_realtime_zone_t *z)
{
    realtime::ChannelsState  cs;

    if (z->channels_conf == NULL) {
        return std::string();
    }

    {
        ngx_http_realtime_registry_t  reg(z);

        cs = z->root->channels;
    }

    const char  *state = cs.election.owner == 0 ? "down"
                         : cs.state == 2 ? "up"
                         : cs.state == 1 ? "connecting" : "down";

    cs.client_prefix[32] = '\0';

    return ",\"channels\":{\"state\":\"" + std::string(state)
           + "\",\"layer\":\""
           + (z->channels_conf->layer == NGX_HTTP_REALTIME_CHANNELS_CORE
              ? "core" : "pubsub")
           + "\",\"holder_pid\":"
           + std::to_string(cs.election.owner ? cs.election.pid : 0)
           + ",\"client_prefix\":\"" + cs.client_prefix
           + "\",\"groups\":" + std::to_string(cs.groups)
           + ",\"received\":" + std::to_string(cs.received)
           + ",\"delivered\":" + std::to_string(cs.delivered)
           + ",\"dropped\":" + std::to_string(cs.dropped)
           + ",\"ignored\":" + std::to_string(cs.ignored)
           + ",\"inbox_full\":" + std::to_string(cs.inbox_full) + "}";
}
