/*
 * ngx_realtime_module: resuming from Redis (see the header for the steps).
 */

#include "ngx_http_realtime_cluster_resume.h"

#include "core/group_name.h"
#include "ngx_http_realtime_cluster_scripts.h"
#include "ngx_http_realtime_cluster_state.h"
#include "ngx_http_realtime_handshake.h"
#include "ngx_http_realtime_history.h"


#define NGX_HTTP_REALTIME_RESUME_LOOK   10      /* ms between looks at the
                                                   subscription */


struct ngx_http_realtime_resume_wait_t {
    ngx_http_request_t              *r;       /* NULL: the request is gone */
    ngx_http_realtime_session_t     *s;
    ngx_http_realtime_zone_t        *zone;
    ngx_pool_cleanup_t              *cln;
    std::vector<std::string>         held;    /* subscribed for r */
    std::shared_ptr<ngx_http_realtime_fetched_set_t>  set;
    ngx_event_t                      look;
    ngx_msec_t                       started;
    ngx_uint_t                       pending; /* reads without a reply */
    /* one per read sent (a reply's data): which group it is for */
    struct read_t {
        ngx_http_realtime_resume_wait_t  *w;
        size_t                            index;
    };
    std::vector<read_t>              reads;
};


static void ngx_http_realtime_resume_look(ngx_event_t *ev) noexcept;


/* Whether this node's history alone answers a client at id in group. */

static bool
ngx_http_realtime_resume_local(realtime::Registry &reg,
    std::string_view group, realtime::MessageId id)
{
    size_t                      n;
    const realtime::GroupNode  *g = reg.find(group);

    if (g == NULL || !g->cluster_ready) {
        return false;   /* what was published since may not be here */
    }

    std::vector<const realtime::ShmMessage *>  out(g->hist_count + 1);
    std::vector<realtime::MessageId>           ids(g->hist_count + 1);

    return reg.history(group, id, ngx_http_realtime_now_ms(), out.data(),
                       ids.data(), out.size(), &n)
           == realtime::Registry::HistoryStatus::kOk;
}


/*
 * The client's resume points this fetch can serve: "G@EPOCH:SEQ" for a
 * group of the connection, or a bare id on a connection with one group.
 */

static void
ngx_http_realtime_resume_points(ngx_http_realtime_session_t *s,
    const ngx_array_t *groups, ngx_http_realtime_fetched_set_t *set)
{
    size_t               start, end, at;
    ngx_str_t           *name = (ngx_str_t *) groups->elts;
    realtime::MessageId  id;

    std::string_view  all(s->resume_from);

    for (start = 0; start < all.size(); start = end + 1) {
        end = all.find(',', start);
        if (end == std::string_view::npos) {
            end = all.size();
        }

        std::string_view  point = all.substr(start, end - start);
        std::string_view  group;

        at = point.find('@');

        if (at != std::string_view::npos) {
            group = point.substr(0, at);
            point = point.substr(at + 1);

        } else if (groups->nelts == 1) {
            group = ngx_http_realtime_sv(name[0]);

        } else {
            continue;   /* its group is told by the epoch: local only */
        }

        if (!ngx_http_realtime_history_parse_id(point, &id)) {
            continue;
        }

        for (ngx_uint_t i = 0; i < groups->nelts; i++) {
            if (ngx_http_realtime_sv(name[i]) == group) {
                set->groups.emplace_back();
                set->groups.back().group = std::string(group);
                set->groups.back().after = id;
                break;
            }
        }
    }
}


/* Gives back the groups held for the request. */

static void
ngx_http_realtime_resume_release(ngx_http_realtime_resume_wait_t *w)
{
    if (w->held.empty() || w->zone->slot < 0) {
        return;
    }

    {
        ngx_http_realtime_registry_t  reg(w->zone);

        for (const auto &g : w->held) {
            reg->unsubscribe(g, (uint32_t) w->zone->slot);
        }
    }

    w->held.clear();
}


static void
ngx_http_realtime_resume_cleanup(void *data) noexcept
{
    auto  *w = (ngx_http_realtime_resume_wait_t *) data;

    /* the request went (client gone, worker shutting down) */
    w->r = NULL;

    if (w->look.timer_set) {
        ngx_del_timer(&w->look);
    }

    ngx_http_realtime_resume_release(w);

    if (w->pending == 0) {
        delete w;
    }
}


/* Every read is in (or the wait is over): the handshake goes on. */

static void
ngx_http_realtime_resume_done(ngx_http_realtime_resume_wait_t *w)
{
    ngx_int_t            rc;
    ngx_connection_t    *c;
    ngx_http_request_t  *r = w->r;

    if (r == NULL) {
        delete w;
        return;
    }

    c = r->connection;

    w->s->fetched = w->set;

    /* the content handler again: it finds w->s's fetch and joins */
    rc = ngx_http_realtime_ws_handler(r);

    /* joined (or refused) by now: the holds go */
    ngx_http_realtime_resume_release(w);

    if (w->look.timer_set) {
        ngx_del_timer(&w->look);
    }

    w->cln->handler = NULL;
    delete w;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * {epoch, last, (seq, flags, payload)...} from the read script into f:
 * kCovered with every message after f.after (without a gap), or with all
 * kept when f.after.epoch is 0; kLost; kUnknown without a usable reply.
 */

static void
ngx_http_realtime_cluster_parse_read(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, ngx_http_realtime_fetched_t *f)
{
    if (ngx_http_realtime_cluster_noscript(link, reply)) {
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 2 || reply->elements % 3 != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
        return;     /* no reply (timeout, link down): kUnknown */
    }

    bool      all = (f->after.epoch == 0);
    uint64_t  epoch = ngx_http_realtime_cluster_parse_epoch(
                          reply->element[0]->str, reply->element[0]->len);
    uint64_t  last = (uint64_t) reply->element[1]->integer;
    uint64_t  want = f->after.seq + 1;
    bool      whole = all ? epoch != 0
                          : (epoch == f->after.epoch && last >= f->after.seq);

    f->epoch = epoch;

    for (size_t i = 2; whole && i < reply->elements; i += 3) {
        redisReply  *seq = reply->element[i];
        redisReply  *flags = reply->element[i + 1];
        redisReply  *payload = reply->element[i + 2];

        if (seq->type != REDIS_REPLY_STRING || flags->type != REDIS_REPLY_STRING
            || payload->type != REDIS_REPLY_STRING
            || seq->len == 0 || seq->len > 19)
        {
            whole = false;
            break;
        }

        uint64_t  n = 0;

        for (size_t j = 0; j < seq->len; j++) {
            if (seq->str[j] < '0' || seq->str[j] > '9') {
                whole = false;
                break;
            }

            n = n * 10 + (uint64_t) (seq->str[j] - '0');
        }

        /* trimmed (MAXLEN) or expired entries leave a gap */
        if (!whole || (!all && n != want)) {
            whole = false;
            break;
        }

        want = n + 1;

        f->entries.push_back(ngx_http_realtime_fetched_t::entry_t{
            n, flags->len == 1 && flags->str[0] == 's',
            std::string(payload->str, payload->len) });
    }

    if (all && epoch == 0) {
        f->state = ngx_http_realtime_fetched_t::kCovered;   /* no group */
        f->entries.clear();
        return;
    }

    if (whole && (all || want - 1 == last)) {
        f->state = ngx_http_realtime_fetched_t::kCovered;
        f->last = last;

    } else {
        f->state = ngx_http_realtime_fetched_t::kLost;
        f->entries.clear();
    }
}


/* The read script for f's group after f.after, on z's command link. */

static ngx_int_t
ngx_http_realtime_cluster_send_read(ngx_http_realtime_zone_t *z,
    const ngx_http_realtime_fetched_t *f, ngx_http_realtime_redis_reply_pt fn,
    void *data)
{
    char   epoch[17], after[NGX_INT64_LEN];
    ngx_http_realtime_cluster_t  *cl = z->cluster;

    ngx_http_realtime_redis_connect(&cl->cmd);

    std::string  seq_key = ngx_http_realtime_cluster_key(z, 's', f->group);
    std::string  stream_key = ngx_http_realtime_cluster_key(z, 'h', f->group);

    size_t  epoch_len = 0;

    if (f->after.epoch) {
        ngx_sprintf((u_char *) epoch, "%016xL", f->after.epoch);
        epoch_len = 16;
    }

    /* at most what a history can hold */
    const char  *argv[8] = { "EVALSHA", ngx_http_realtime_cluster_read_sha(),
                             "2", seq_key.data(), stream_key.data(), epoch,
                             after, "10000" };
    size_t       lens[8] = { 7, ngx_strlen(argv[1]), 1, seq_key.size(),
                             stream_key.size(), epoch_len, 0, 5 };

    lens[6] = ngx_sprintf((u_char *) after, "%uL",
                          f->after.epoch ? f->after.seq : 0)
              - (u_char *) after;

    return ngx_http_realtime_redis_command(&cl->cmd, fn, data, 8, argv, lens);
}


static void
ngx_http_realtime_resume_read(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *rd = (ngx_http_realtime_resume_wait_t::read_t *) data;
    auto  *w = rd->w;

    if (w->r) {
        ngx_http_realtime_fetched_t  &f = w->set->groups[rd->index];

        try {
            ngx_http_realtime_cluster_parse_read(link, reply, &f);

        } catch (...) {
            f.state = ngx_http_realtime_fetched_t::kUnknown;
            f.entries.clear();
        }
    }

    if (--w->pending == 0) {
        ngx_http_realtime_resume_done(w);
    }
}


/* Every held group is followed here now: read what the client missed. */

static void
ngx_http_realtime_resume_fetch(ngx_http_realtime_resume_wait_t *w)
{
    try {
        w->reads.reserve(w->set->groups.size());    /* never moves */

        for (size_t i = 0; i < w->set->groups.size(); i++) {
            w->reads.push_back(
                ngx_http_realtime_resume_wait_t::read_t{ w, i });

            if (ngx_http_realtime_cluster_send_read(w->zone,
                    &w->set->groups[i], ngx_http_realtime_resume_read,
                    &w->reads.back())
                == NGX_OK)
            {
                w->pending++;
            }
        }

    } catch (...) {
        /* what was sent is answered; the rest is local only */
    }

    if (w->pending == 0) {
        ngx_http_realtime_resume_done(w);
    }
}


static void
ngx_http_realtime_resume_look(ngx_event_t *ev) noexcept
{
    bool   ready = true;
    auto  *w = (ngx_http_realtime_resume_wait_t *) ev->data;

    {
        ngx_http_realtime_registry_t  reg(w->zone);

        for (const auto &g : w->held) {
            const realtime::GroupNode  *node = reg->find(g);

            ready = ready && node && node->cluster_ready;
        }
    }

    if (ready) {
        ngx_http_realtime_resume_fetch(w);
        return;
    }

    if (ngx_current_msec - w->started >= w->zone->redis->timeout
        || ngx_exiting || ngx_terminate)
    {
        ngx_log_error(NGX_LOG_INFO, w->r->connection->log, 0,
                      "realtime: no redis subscription within the timeout, "
                      "resuming from this node's history");

        ngx_http_realtime_resume_done(w);  /* kUnknown: local only */
        return;
    }

    ngx_add_timer(&w->look, NGX_HTTP_REALTIME_RESUME_LOOK);
}


ngx_int_t
ngx_http_realtime_cluster_resume(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s, const ngx_array_t *groups) noexcept
{
    ngx_http_realtime_zone_t         *z = s->zone;
    ngx_http_realtime_resume_wait_t  *w;

    if (s->fetched || z == NULL || z->cluster == NULL || z->slot < 0
        || s->resume_from.empty() || groups->nelts == 0)
    {
        return NGX_OK;
    }

    try {
        auto  set = std::make_shared<ngx_http_realtime_fetched_set_t>();

        ngx_http_realtime_resume_points(s, groups, set.get());

        if (set->groups.empty()) {
            return NGX_OK;
        }

        std::vector<std::string>  hold;

        {
            ngx_http_realtime_registry_t  reg(z);

            const realtime::ClusterState  &cs = z->root->cluster;

            if (cs.election.owner == 0 || cs.state != 2) {
                return NGX_OK;  /* no subscriber up: this node alone */
            }

            auto  &v = set->groups;

            for (auto it = v.begin(); it != v.end(); ) {
                if (ngx_http_realtime_resume_local(reg.get(), it->group,
                                                   it->after))
                {
                    it = v.erase(it);   /* this node has all of it */
                    continue;
                }

                if (reg->subscribe(it->group, (uint32_t) z->slot)
                    != realtime::Registry::Status::kOk)
                {
                    it = v.erase(it);   /* the zone is full: local only */
                    continue;
                }

                hold.push_back(it->group);
                ++it;
            }
        }

        if (set->groups.empty()) {
            return NGX_OK;
        }

        w = new ngx_http_realtime_resume_wait_t();
        w->held.swap(hold);
        w->set = std::move(set);

    } catch (...) {
        return NGX_ERROR;
    }

    w->cln = ngx_pool_cleanup_add(r->pool, 0);
    if (w->cln == NULL) {
        ngx_http_realtime_resume_release(w);
        delete w;
        return NGX_ERROR;
    }

    w->r = r;
    w->s = s;
    w->zone = z;
    w->started = ngx_current_msec;
    w->cln->handler = ngx_http_realtime_resume_cleanup;
    w->cln->data = w;

    w->look.handler = ngx_http_realtime_resume_look;
    w->look.data = w;
    w->look.log = r->connection->log;
    w->look.cancelable = 1;

    r->main->count++;

    ngx_add_timer(&w->look, 1);     /* the subscriber walks the groups */

    return NGX_AGAIN;
}


const ngx_http_realtime_fetched_t *
ngx_http_realtime_cluster_fetched(ngx_http_realtime_session_t *s,
    std::string_view group, realtime::MessageId after) noexcept
{
    if (!s->fetched) {
        return NULL;
    }

    for (const auto &f : s->fetched->groups) {
        if (f.group == group && f.after.epoch == after.epoch
            && f.after.seq == after.seq)
        {
            return &f;
        }
    }

    return NULL;
}


/* ------------------------------------------- a group's stream, for GET */

struct ngx_http_realtime_cluster_read_t {
    ngx_http_realtime_fetched_t        f;
    ngx_http_realtime_cluster_read_pt  done;
    void                              *data;
};


static void
ngx_http_realtime_cluster_read_reply(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    auto  *rd = (ngx_http_realtime_cluster_read_t *) data;

    try {
        ngx_http_realtime_cluster_parse_read(link, reply, &rd->f);

    } catch (...) {
        rd->f.state = ngx_http_realtime_fetched_t::kUnknown;
        rd->f.entries.clear();
    }

    rd->done(rd->data, &rd->f);

    delete rd;
}


ngx_int_t
ngx_http_realtime_cluster_read(ngx_http_realtime_zone_t *z,
    std::string_view group, realtime::MessageId after,
    ngx_http_realtime_cluster_read_pt done, void *data) noexcept
{
    ngx_http_realtime_cluster_read_t  *rd;

    if (z->cluster == NULL) {
        return NGX_DECLINED;
    }

    try {
        rd = new ngx_http_realtime_cluster_read_t();
        rd->f.group.assign(group.data(), group.size());
        rd->f.after = after;
        rd->done = done;
        rd->data = data;

        if (ngx_http_realtime_cluster_send_read(z, &rd->f,
                ngx_http_realtime_cluster_read_reply, rd)
            != NGX_OK)
        {
            delete rd;
            return NGX_DECLINED;
        }

    } catch (...) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}
