/*
 * ngx_realtime_module: the publish API (realtime_publish).
 *
 *   POST {"group": "g", "data": ...}    publish; the answer counts receivers
 *   POST {"action": ..., "user": U}     act on every connection of user U
 *   GET  ?group=g                       how many subscribers g has
 *   GET  ?presence=g                    who is in g (realtime_presence)
 *
 * A request is parsed and checked in full before anything is published.
 * Each message is framed once and stored once in the zone; the workers
 * that hold subscribers are woken after the lock is released.
 */

#include "ngx_http_realtime_publish.h"

#include <string>

#include "core/group_name.h"
#include "core/publish_request.h"
#include "core/ws_frame.h"
#include "ngx_http_realtime_cluster.h"
#include "ngx_http_realtime_cluster_resume.h"
#include "ngx_http_realtime_history.h"
#include "ngx_http_realtime_presence.h"
#include "ngx_http_realtime_worker.h"


static void ngx_http_realtime_publish_body(ngx_http_request_t *r) noexcept;
static ngx_int_t ngx_http_realtime_publish_info(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf);
static ngx_int_t ngx_http_realtime_publish(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, std::string_view body);
static ngx_int_t ngx_http_realtime_publish_history_cluster(
    ngx_http_request_t *r, ngx_http_realtime_loc_conf_t *rlcf,
    ngx_str_t *name, ngx_str_t *since);
static ngx_int_t ngx_http_realtime_publish_local(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, const realtime::PublishRequest &req,
    int64_t nodes, const realtime::MessageId *ids);
static ngx_int_t ngx_http_realtime_publish_cluster(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, realtime::PublishRequest &&req);
static ngx_int_t ngx_http_realtime_read_body(ngx_http_request_t *r,
    std::string *body);
static ngx_int_t ngx_http_realtime_publish_action(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, const realtime::ActionRequest &act);
static ngx_int_t ngx_http_realtime_publish_presence(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_str_t *arg);
static ngx_int_t ngx_http_realtime_publish_history(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_str_t *arg);


ngx_int_t
ngx_http_realtime_publish_handler(ngx_http_request_t *r) noexcept
{
    ngx_int_t                      rc;
    ngx_str_t                     *type;
    ngx_http_realtime_loc_conf_t  *rlcf;

    rlcf = (ngx_http_realtime_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_realtime_module);

    /*
     * Closed by default: whoever can publish can send anything to every
     * user. Other hosts are let in only where the operator said so.
     */
    rc = ngx_http_realtime_local_only(r, rlcf->publish_remote, "publishing",
                                      "realtime_publish_remote");
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        try {
            return ngx_http_realtime_publish_info(r, rlcf);

        } catch (...) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (r->method != NGX_HTTP_POST) {
        if (ngx_http_realtime_add_header(r, "Allow", "GET, POST") != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_realtime_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                            "use POST to publish, GET to count");
    }

    type = r->headers_in.content_type ? &r->headers_in.content_type->value
                                      : NULL;

    if (type == NULL
        || type->len < sizeof("application/json") - 1
        || ngx_strncasecmp(type->data, (u_char *) "application/json",
                           sizeof("application/json") - 1) != 0
        || (type->len > sizeof("application/json") - 1
            && type->data[sizeof("application/json") - 1] != ';'
            && type->data[sizeof("application/json") - 1] != ' '))
    {
        return ngx_http_realtime_send_error(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                            "Content-Type must be "
                                            "application/json");
    }

    if (r->headers_in.chunked) {
        return ngx_http_realtime_send_error(r, NGX_HTTP_LENGTH_REQUIRED,
                                            "Content-Length is required");
    }

    if (r->headers_in.content_length_n > (off_t) rlcf->max_body_size) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "realtime: publish body of %O bytes is over the "
                      "%uz-byte limit", r->headers_in.content_length_n,
                      rlcf->max_body_size);

        r->headers_out.status = NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        return ngx_http_realtime_send_error(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                   "body is larger than client_max_body_size");
    }

    /* the body stays in memory: see the publish location's merge */
    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_http_realtime_publish_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_realtime_publish_body(ngx_http_request_t *r) noexcept
{
    ngx_int_t                      rc;
    ngx_http_realtime_loc_conf_t  *rlcf;

    rlcf = (ngx_http_realtime_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_realtime_module);

    try {
        std::string  body;

        rc = ngx_http_realtime_read_body(r, &body);

        if (rc == NGX_OK) {
            rc = ngx_http_realtime_publish(r, rlcf, body);
        }

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "realtime: out of memory while publishing");
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_finalize_request(r, rc);
}


static ngx_int_t
ngx_http_realtime_read_body(ngx_http_request_t *r, std::string *body)
{
    ngx_chain_t  *cl;

    if (r->request_body == NULL) {
        return NGX_OK;
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (cl->buf->in_file) {
            /* cannot happen: the buffer is sized to the body limit */
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "realtime: publish body was buffered to a file");
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        body->append((const char *) cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_realtime_publish(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, std::string_view body)
{
    realtime::PublishRequest  req;

    /*
     * The common body first, without a DOM: a body the fast path answers
     * is a publish (an action's "action" key makes it give up). Else an
     * action by user, when the body names one, then the full parser.
     */
    if (!realtime::parse_publish_request_fast(body, req)) {
        if (body.find("\"action\"") != std::string_view::npos) {
            realtime::ActionRequest  act = realtime::parse_action_request(body);

            if (act.is_action) {
                return ngx_http_realtime_publish_action(r, rlcf, act);
            }
        }

        req = realtime::parse_publish_request_dom(body);
    }

    if (!req.ok) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "realtime: publish refused with 400: %*s",
                      req.error.size(), req.error.data());

        return ngx_http_realtime_send_error(r, NGX_HTTP_BAD_REQUEST, req.error);
    }

    if (rlcf->zone->redis) {
        return ngx_http_realtime_publish_cluster(r, rlcf, std::move(req));
    }

    return ngx_http_realtime_publish_local(r, rlcf, req, -1, nullptr);
}


/*
 * Publishes in this node's zone and answers; nodes >= 0: Redis took the
 * messages first (the answer says how many nodes did).
 */

static ngx_int_t
ngx_http_realtime_publish_local(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, const realtime::PublishRequest &req,
    int64_t nodes, const realtime::MessageId *ids)
{
    size_t                     published;
    uint64_t                   total;
    ngx_http_realtime_zone_t  *z;
    bool                       full;

    z = rlcf->zone;

    std::vector<uint64_t>  counts(req.items.size(), 0);

    /* in Redis already (nodes >= 0): not sent again */
    full = ngx_http_realtime_publish_items(z, rlcf, req, &published, &total,
                                           counts.data(), nodes < 0, ids)
           != NGX_OK;

    if (full) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "realtime: zone \"%V\" is full, publish refused "
                      "after %uz of %uz messages", &z->name, published,
                      req.items.size());

        std::string  out = "{\"error\":\"realtime zone is full\","
                           "\"published\":" + std::to_string(published) + "}";

        return ngx_http_realtime_send_json(r, 507, out);
    }

    std::string  out = "{\"messages\":" + std::to_string(published)
                       + ",\"subscribers\":" + std::to_string(total);

    if (req.batch) {
        out += ",\"results\":[";

        for (size_t m = 0; m < counts.size(); m++) {
            out += (m ? ",{\"subscribers\":" : "{\"subscribers\":")
                   + std::to_string(counts[m]) + "}";
        }

        out += "]";
    }

    if (nodes >= 0) {
        out += ",\"nodes\":" + std::to_string(nodes);
    }

    out += "}";

    return ngx_http_realtime_send_json(r, NGX_HTTP_OK, out);
}


/*
 * With realtime_redis the publish is asynchronous: every message goes to
 * Redis first, and only when Redis took them all are they published here
 * and answered. So a publisher that waits for its 200 has its message in
 * Redis, in order, before its next one, whichever node that one reaches.
 * Redis down or slow: 503 and nothing delivered anywhere, so the app can
 * retry without duplicates.
 */

/*
 * A request suspended until Redis answers. Not in the request's pool: a
 * reply may come after the request went (terminated, the worker exiting),
 * and must then read nothing freed. The pool's cleanup only says so.
 */

struct ngx_http_realtime_request_wait_t {
    ngx_http_request_t  *r = NULL;     /* NULL: the request is gone */
    ngx_pool_cleanup_t  *cln = NULL;

    virtual ~ngx_http_realtime_request_wait_t() = default;
};


static void
ngx_http_realtime_request_wait_cleanup(void *data) noexcept
{
    ((ngx_http_realtime_request_wait_t *) data)->r = NULL;
}


/* Before the command goes: NGX_ERROR when out of memory. */

static ngx_int_t
ngx_http_realtime_request_wait_arm(ngx_http_request_t *r,
    ngx_http_realtime_request_wait_t *w)
{
    w->cln = ngx_pool_cleanup_add(r->pool, 0);
    if (w->cln == NULL) {
        return NGX_ERROR;
    }

    w->r = r;
    w->cln->handler = ngx_http_realtime_request_wait_cleanup;
    w->cln->data = w;

    return NGX_OK;
}


/* The answer came: the request, or NULL when it went (w is then freed). */

static ngx_http_request_t *
ngx_http_realtime_request_wait_take(ngx_http_realtime_request_wait_t *w)
{
    ngx_http_request_t  *r = w->r;

    if (r == NULL) {
        delete w;
        return NULL;
    }

    w->cln->handler = NULL;

    return r;
}


/* The command could not go: the request goes on without w. */

static void
ngx_http_realtime_request_wait_drop(ngx_http_realtime_request_wait_t *w)
{
    if (w->cln) {
        w->cln->handler = NULL;
    }

    delete w;
}


/* Finishes a request that waited (w freed): as the content phase would. */

static void
ngx_http_realtime_request_wait_finish(ngx_http_realtime_request_wait_t *w,
    ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_connection_t  *c = r->connection;

    delete w;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * A publish or an action through Redis: sent there first, answered here
 * once Redis took it all (done here then, with "nodes"), or 503.
 */

struct ngx_http_realtime_redis_wait_t : ngx_http_realtime_request_wait_t {
    ngx_http_realtime_loc_conf_t  *rlcf = NULL;
    realtime::PublishRequest       req;     /* what goes to Redis */
    const char                    *what = "publish";

    /* here, after Redis; may throw */
    virtual ngx_int_t local(ngx_http_request_t *r, int64_t nodes,
        const realtime::MessageId *ids) = 0;
};


struct ngx_http_realtime_publish_wait_t final : ngx_http_realtime_redis_wait_t {
    ngx_int_t local(ngx_http_request_t *r, int64_t nodes,
        const realtime::MessageId *ids) override
    {
        return ngx_http_realtime_publish_local(r, rlcf, req, nodes, ids);
    }
};


static void
ngx_http_realtime_redis_done(void *data, int64_t nodes,
    const realtime::MessageId *ids)
{
    ngx_int_t           rc;
    auto               *w = (ngx_http_realtime_redis_wait_t *) data;
    ngx_http_request_t *r = ngx_http_realtime_request_wait_take(w);

    if (r == NULL) {
        return;
    }

    if (nodes < 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "realtime: %s refused with 503: redis did not take it",
                      w->what);

        rc = ngx_http_realtime_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "{\"error\":\"redis unavailable\"}");

    } else {
        try {
            rc = w->local(r, nodes, ids);

        } catch (...) {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_http_realtime_request_wait_finish(w, r, rc);
}


/* Sends w->req to Redis; w is the request's from now on (armed here). */

static ngx_int_t
ngx_http_realtime_redis_send(ngx_http_request_t *r,
    ngx_http_realtime_redis_wait_t *w, uint32_t history_size,
    uint32_t history_ttl)
{
    if (ngx_http_realtime_request_wait_arm(r, w) != NGX_OK) {
        delete w;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_realtime_cluster_publish(w->rlcf->zone, w->req, history_size,
            history_ttl, ngx_http_realtime_redis_done, w)
        != NGX_OK)
    {
        ngx_http_realtime_request_wait_drop(w);
        return ngx_http_realtime_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "{\"error\":\"redis unavailable\"}");
    }

    /* answered by the last reply (or the link's failure) */
    r->main->count++;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_realtime_publish_cluster(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, realtime::PublishRequest &&req)
{
    auto  *w = new (std::nothrow) ngx_http_realtime_publish_wait_t();

    if (w == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    w->rlcf = rlcf;
    w->req = std::move(req);

    return ngx_http_realtime_redis_send(r, w, (uint32_t) rlcf->history_size,
                                        (uint32_t) rlcf->history_ttl);
}


/* GET ?group=NAME: the group's subscriber count across all workers. */

static ngx_int_t
ngx_http_realtime_publish_info(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf)
{
    u_char     *dst, *src;
    uint32_t    n;
    ngx_str_t   arg, name;

    if (ngx_http_arg(r, (u_char *) "presence", 8, &arg) == NGX_OK) {
        return ngx_http_realtime_publish_presence(r, rlcf, &arg);
    }

    if (ngx_http_arg(r, (u_char *) "history", 7, &arg) == NGX_OK) {
        return ngx_http_realtime_publish_history(r, rlcf, &arg);
    }

    if (ngx_http_arg(r, (u_char *) "group", 5, &arg) != NGX_OK) {
        return ngx_http_realtime_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "the \"group\" or \"presence\" "
                                            "argument is required");
    }

    name.data = (u_char *) ngx_pnalloc(r->pool, arg.len);
    if (name.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    dst = name.data;
    src = arg.data;
    ngx_unescape_uri(&dst, &src, arg.len, NGX_UNESCAPE_URI);
    name.len = dst - name.data;

    if (!realtime::is_valid_group_name(ngx_http_realtime_sv(name))) {
        return ngx_http_realtime_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid group name (1-100 of A-Z a-z 0-9 - _ . :)");
    }

    {
        ngx_http_realtime_registry_t  reg(rlcf->zone);

        n = reg->subscribers(ngx_http_realtime_sv(name));
    }

    std::string  out = "{\"group\":\"" + std::string((char *) name.data,
                                                      name.len)
                       + "\",\"subscribers\":" + std::to_string(n) + "}";

    return ngx_http_realtime_send_json(r, NGX_HTTP_OK, out);
}


/*
 * An action on every connection of a user, on every worker: a control
 * message to the user's internal group "~user:U", which each of its
 * connections joined at its handshake. The answer counts them.
 */

static ngx_int_t ngx_http_realtime_publish_action_local(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, const realtime::ActionRequest &act,
    int64_t nodes);


/*
 * With realtime_redis an action reaches the user's connections on every
 * node: it goes first to Redis on the channel of "~user:U" (which each
 * node follows while it has connections of U), then here, as a publish
 * does (503 and nothing done anywhere when Redis is unavailable).
 */

struct ngx_http_realtime_action_wait_t final : ngx_http_realtime_redis_wait_t {
    realtime::ActionRequest        act;

    ngx_int_t local(ngx_http_request_t *r, int64_t nodes,
        const realtime::MessageId *ids) override
    {
        return ngx_http_realtime_publish_action_local(r, rlcf, act, nodes);
    }
};


static ngx_int_t
ngx_http_realtime_publish_action(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, const realtime::ActionRequest &act)
{
    if (!act.ok) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "realtime: action refused with 400: %*s",
                      act.error.size(), act.error.data());

        return ngx_http_realtime_send_error(r, NGX_HTTP_BAD_REQUEST, act.error);
    }

    if (rlcf->zone->redis == NULL) {
        return ngx_http_realtime_publish_action_local(r, rlcf, act, -1);
    }

    auto  *w = new (std::nothrow) ngx_http_realtime_action_wait_t();

    if (w == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    w->rlcf = rlcf;
    w->what = "action";
    w->act = act;
    w->req.ok = true;
    w->req.items.emplace_back();
    w->req.items.back().groups.push_back("~user:" + act.user);
    w->req.items.back().payload = act.instruction;
    w->req.items.back().is_control = true;

    return ngx_http_realtime_redis_send(r, w, 0, 0);
}


/* Here: a control message to "~user:U"; nodes >= 0: Redis took it first. */

static ngx_int_t
ngx_http_realtime_publish_action_local(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, const realtime::ActionRequest &act,
    int64_t nodes)
{
    realtime::Registry::Published  res;

    std::string       key = "~user:" + act.user;
    std::string_view  name(key);

    realtime::Registry::PublishOptions  options;

    options.kind = realtime::MessageKind::kControl;

    {
        ngx_http_realtime_registry_t  reg(rlcf->zone);

        res = reg->publish(&name, 1, (const uint8_t *) act.instruction.data(),
                           act.instruction.size(), options);
    }

    if (res.status != realtime::Registry::Status::kOk) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "realtime: zone \"%V\" is full, action refused",
                      &rlcf->zone->name);

        return ngx_http_realtime_send_json(r, 507,
                   "{\"error\":\"realtime zone is full\"}");
    }

    if (!res.wake.none()) {
        ngx_http_realtime_worker_wake(rlcf->zone, res.wake);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "realtime: action \"%*s\" for %uD connection(s) of a user",
                  act.action.size(), act.action.data(), res.subscribers);

    std::string  out = "{\"action\":" + realtime::json_quote(act.action)
                       + ",\"user\":" + realtime::json_quote(act.user)
                       + ",\"connections\":" + std::to_string(res.subscribers);

    if (nodes >= 0) {
        out += ",\"nodes\":" + std::to_string(nodes);
    }

    out += "}";

    return ngx_http_realtime_send_json(r, NGX_HTTP_OK, out);
}


/* GET ?presence=NAME: the users in the group, across all workers (and,
   with realtime_redis, all nodes). */

struct ngx_http_realtime_presence_wait_t final
    : ngx_http_realtime_request_wait_t
{
    ngx_http_realtime_loc_conf_t  *rlcf = NULL;
    ngx_str_t                      name;    /* in r's pool: read while r is */
};


static void
ngx_http_realtime_presence_answered(void *data, const std::string *json)
{
    ngx_int_t           rc;
    auto               *w = (ngx_http_realtime_presence_wait_t *) data;
    ngx_http_request_t *r = ngx_http_realtime_request_wait_take(w);

    if (r == NULL) {
        return;
    }

    try {
        if (json) {
            rc = ngx_http_realtime_send_json(r, NGX_HTTP_OK, *json);

        } else {
            /* Redis did not answer: what this node knows */
            rc = ngx_http_realtime_send_json(r, NGX_HTTP_OK,
                     ngx_http_realtime_presence_list(w->rlcf->zone,
                         ngx_http_realtime_sv(w->name),
                         w->rlcf->presence_max_list, std::string_view()));
        }

    } catch (...) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_realtime_request_wait_finish(w, r, rc);
}


static ngx_int_t
ngx_http_realtime_publish_presence(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_str_t *arg)
{
    u_char     *dst, *src;
    ngx_str_t   name;

    name.data = (u_char *) ngx_pnalloc(r->pool, arg->len);
    if (name.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    dst = name.data;
    src = arg->data;
    ngx_unescape_uri(&dst, &src, arg->len, NGX_UNESCAPE_URI);
    name.len = dst - name.data;

    if (!realtime::is_valid_group_name(ngx_http_realtime_sv(name))) {
        return ngx_http_realtime_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid group name (1-100 of A-Z a-z 0-9 - _ . :)");
    }

    /* a group this node does not follow: its users are in Redis */
    if (rlcf->zone->redis
        && !ngx_http_realtime_cluster_presence_local(rlcf->zone,
                                                     ngx_http_realtime_sv(name)))
    {
        auto  *w = new (std::nothrow) ngx_http_realtime_presence_wait_t();

        if (w == NULL || ngx_http_realtime_request_wait_arm(r, w) != NGX_OK) {
            delete w;
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        w->rlcf = rlcf;
        w->name = name;

        if (ngx_http_realtime_cluster_presence_query(rlcf->zone,
                ngx_http_realtime_sv(name), rlcf->presence_max_list,
                ngx_http_realtime_presence_answered, w)
            == NGX_OK)
        {
            r->main->count++;
            return NGX_DONE;
        }

        ngx_http_realtime_request_wait_drop(w);

        /* Redis down: what this node knows */
    }

    std::string  out = ngx_http_realtime_presence_list(rlcf->zone,
                           ngx_http_realtime_sv(name), rlcf->presence_max_list,
                           std::string_view());

    return ngx_http_realtime_send_json(r, NGX_HTTP_OK, out);
}


/*
 * Publishes a checked request's messages in order: each is framed once
 * (before the lock) and stored once; the workers to wake are woken after
 * the lock is released. NGX_OK, or NGX_DECLINED when the zone filled up
 * (*published says how many went out: a message goes to all its groups or
 * to none). counts, when given, gets each message's subscriber count.
 */

ngx_int_t
ngx_http_realtime_publish_items(ngx_http_realtime_zone_t *z,
    const ngx_http_realtime_loc_conf_t *conf,
    const realtime::PublishRequest &req, size_t *published, uint64_t *total,
    uint64_t *counts, bool forward, const realtime::MessageId *ids,
    uint64_t origin)
{
    bool               full;
    size_t             offset;
    realtime::SlotSet  wake;

    if (forward && z->redis && conf && conf->history_size && ids == nullptr) {
        /* numbered by Redis first, then published here (asynchronously) */
        *published = req.items.size();
        *total = 0;

        return ngx_http_realtime_publish_numbered(z, conf, req, origin);
    }

    std::vector<std::string>  frames;
    frames.reserve(req.items.size());

    for (const auto &item : req.items) {
        frames.push_back(realtime::ws::encode_frame(realtime::ws::Opcode::kText,
                                                    item.payload));
    }

    *total = 0;
    *published = 0;
    full = false;
    offset = 0;

    {
        ngx_http_realtime_registry_t  reg(z);

        for (size_t m = 0; m < req.items.size(); m++) {
            const std::string               &f = frames[m];
            std::vector<std::string_view>    names(req.items[m].groups.begin(),
                                                   req.items[m].groups.end());

            realtime::Registry::PublishOptions  options;

            ngx_http_realtime_history_options(conf, &options);
            options.header_size = (uint8_t) (f.size()
                                             - req.items[m].payload.size());
            options.flags = req.items[m].is_string ? realtime::kPayloadIsString
                                                   : 0;
            options.origin = origin;
            options.ids = ids ? ids + offset : nullptr;
            offset += names.size();

            realtime::Registry::Published res =
                reg->publish(names.data(), names.size(),
                             (const uint8_t *) f.data(), f.size(), options);

            if (res.status != realtime::Registry::Status::kOk) {
                full = true;
                break;
            }

            if (counts) {
                counts[m] = res.subscribers;
            }

            *total += res.subscribers;

            for (size_t w = 0; w < realtime::kMaxWorkerSlots / 64; w++) {
                wake.bits[w] |= res.wake.bits[w];
            }

            (*published)++;
        }
    }

    if (!wake.none()) {
        ngx_http_realtime_worker_wake(z, wake);
    }

    if (forward && z->redis) {
        for (size_t m = 0; m < *published; m++) {
            std::vector<std::string_view>  names(req.items[m].groups.begin(),
                                                 req.items[m].groups.end());

            ngx_http_realtime_cluster_forward(z, names.data(), names.size(),
                                              req.items[m].payload,
                                              req.items[m].is_string);
        }
    }

    return full ? NGX_DECLINED : NGX_OK;
}


/*
 * A message published here first (a client's, an app's answer) in a zone
 * with realtime_redis and a location with history: Redis numbers it (so
 * every node keeps it with the same id), then it is published here, in
 * order with the other nodes' messages (the fence). With the link down it
 * is published here at once, unnumbered (counted as local only).
 */

struct ngx_http_realtime_numbered_t {
    ngx_http_realtime_zone_t             *zone;
    const ngx_http_realtime_loc_conf_t   *conf;
    realtime::PublishRequest              req;
    uint64_t                              origin;
};


static void
ngx_http_realtime_numbered_done(void *data, int64_t nodes,
    const realtime::MessageId *ids)
{
    size_t     published;
    uint64_t   total;
    auto      *n = (ngx_http_realtime_numbered_t *) data;

    try {
        if (ngx_http_realtime_publish_items(n->zone, n->conf, n->req,
                &published, &total, nullptr, false, nodes < 0 ? NULL : ids,
                n->origin)
            != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "realtime: zone \"%V\" is full, %uz of %uz "
                          "messages published", &n->zone->name, published,
                          n->req.items.size());
        }

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "realtime: out of memory publishing a message");
    }

    delete n;
}


ngx_int_t
ngx_http_realtime_publish_numbered(ngx_http_realtime_zone_t *z,
    const ngx_http_realtime_loc_conf_t *conf,
    const realtime::PublishRequest &req, uint64_t origin)
{
    auto  *n = new ngx_http_realtime_numbered_t{ z, conf, req, origin };

    if (ngx_http_realtime_cluster_publish(z, n->req,
            (uint32_t) conf->history_size, (uint32_t) conf->history_ttl,
            ngx_http_realtime_numbered_done, n)
        == NGX_OK)
    {
        return NGX_OK;
    }

    /* Redis is down: here only, at once, unnumbered */
    ngx_http_realtime_cluster_local_only(z, n->req.items.size());

    ngx_http_realtime_numbered_done(n, -1, NULL);

    return NGX_OK;
}


/* An argument, URL-unescaped into r's pool. */

static ngx_int_t
ngx_http_realtime_unescaped_arg(ngx_http_request_t *r, ngx_str_t *arg,
    ngx_str_t *out)
{
    u_char  *dst, *src;

    out->data = (u_char *) ngx_pnalloc(r->pool, arg->len + 1);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    dst = out->data;
    src = arg->data;
    ngx_unescape_uri(&dst, &src, arg->len, NGX_UNESCAPE_URI);
    out->len = dst - out->data;

    return NGX_OK;
}


/* GET ?history=NAME[&since=ID]: the group's retained messages. */

static ngx_int_t
ngx_http_realtime_publish_history(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_str_t *arg)
{
    ngx_str_t  name, since = ngx_null_string, raw;

    if (ngx_http_realtime_unescaped_arg(r, arg, &name) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!realtime::is_valid_group_name(ngx_http_realtime_sv(name))) {
        return ngx_http_realtime_send_error(r, NGX_HTTP_BAD_REQUEST,
                   "invalid group name (1-100 of A-Z a-z 0-9 - _ . :)");
    }

    if (ngx_http_arg(r, (u_char *) "since", 5, &raw) == NGX_OK) {
        realtime::MessageId  id;

        if (ngx_http_realtime_unescaped_arg(r, &raw, &since) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (!ngx_http_realtime_history_parse_id(ngx_http_realtime_sv(since),
                                                &id))
        {
            return ngx_http_realtime_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "\"since\" must be a message id (EPOCH:SEQ)");
        }
    }

    if (rlcf->zone->cluster) {
        /* the whole cluster's history is in Redis: the same on any node */
        ngx_int_t  rc = ngx_http_realtime_publish_history_cluster(r, rlcf,
                            &name, &since);

        if (rc != NGX_DECLINED) {
            return rc;
        }

        /* Redis unavailable: what this node kept */
    }

    std::string  out = ngx_http_realtime_history_list(rlcf->zone,
                           ngx_http_realtime_sv(name),
                           ngx_http_realtime_sv(since));

    return ngx_http_realtime_send_json(r, NGX_HTTP_OK, out);
}


/* GET ?history with realtime_redis: the group's stream in Redis. */

struct ngx_http_realtime_history_wait_t final
    : ngx_http_realtime_request_wait_t
{
    std::string           group;
    realtime::MessageId   since{0, 0};  /* epoch 0: none */
};


static void
ngx_http_realtime_publish_history_read(void *data,
    const ngx_http_realtime_fetched_t *f)
{
    ngx_int_t            rc;
    auto                *w = (ngx_http_realtime_history_wait_t *) data;
    ngx_http_request_t  *r = ngx_http_realtime_request_wait_take(w);

    if (r == NULL) {
        return;
    }

    try {
        if (f->state == ngx_http_realtime_fetched_t::kUnknown) {
            rc = ngx_http_realtime_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                     "{\"error\":\"redis unavailable\"}");

        } else {
            /* as on one node: after since when it is all there, else all
               that is kept and "recovered": false */
            size_t    from = 0;
            bool      recovered = true;

            if (w->since.epoch) {
                recovered = false;

                if (f->epoch == w->since.epoch) {
                    while (from < f->entries.size()
                           && f->entries[from].seq <= w->since.seq)
                    {
                        from++;
                    }

                    uint64_t  want = w->since.seq + 1;
                    size_t    i = from;

                    for ( /* void */ ; i < f->entries.size(); i++, want++) {
                        if (f->entries[i].seq != want) {
                            break;
                        }
                    }

                    recovered = (i == f->entries.size()
                                 && want - 1 == f->last
                                 && w->since.seq <= f->last);
                }

                if (!recovered) {
                    from = 0;
                }
            }

            std::string  body = "{\"group\":" + realtime::json_quote(w->group)
                                + ",\"messages\":[";

            for (size_t i = from; i < f->entries.size(); i++) {
                const auto  &e = f->entries[i];

                body += i > from ? ",{\"id\":\"" : "{\"id\":\"";
                body += ngx_http_realtime_history_id(
                            realtime::MessageId{ f->epoch, e.seq })
                        + "\",\"data\":";
                body += e.is_string ? realtime::json_quote(e.payload)
                                    : e.payload;
                body += "}";
            }

            body += "],\"recovered\":";
            body += recovered ? "true}" : "false}";

            rc = ngx_http_realtime_send_json(r, NGX_HTTP_OK, body);
        }

    } catch (...) {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_realtime_request_wait_finish(w, r, rc);
}


static ngx_int_t
ngx_http_realtime_publish_history_cluster(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_str_t *name, ngx_str_t *since)
{
    ngx_http_realtime_history_wait_t  *w;

    try {
        w = new ngx_http_realtime_history_wait_t();
        w->group.assign((const char *) name->data, name->len);

    } catch (...) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_realtime_request_wait_arm(r, w) != NGX_OK) {
        delete w;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (since->len) {
        (void) ngx_http_realtime_history_parse_id(ngx_http_realtime_sv(*since),
                                                  &w->since);
    }

    if (ngx_http_realtime_cluster_read(rlcf->zone, w->group,
            realtime::MessageId{0, 0}, ngx_http_realtime_publish_history_read,
            w)
        != NGX_OK)
    {
        ngx_http_realtime_request_wait_drop(w);
        return NGX_DECLINED;
    }

    r->main->count++;

    return NGX_DONE;
}
