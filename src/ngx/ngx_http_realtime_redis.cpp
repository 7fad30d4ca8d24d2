/*
 * ngx_realtime_module: the Redis link (see the header) and realtime_redis.
 *
 * hiredis owns the socket and the protocol; nginx owns the events. The
 * adapter below maps hiredis' "watch for reading/writing" onto an
 * ngx_connection_t of the same fd, level-triggered: hiredis reads one
 * buffer per call and expects to be called again while data is there.
 * hiredis 0.14 has no timeouts of its own: the link keeps the time of
 * every command that waits for a reply and a timer on the oldest one.
 */

#include "ngx_http_realtime_redis.h"

#include <new>
#include <string>

#include "core/redis_url.h"


#define NGX_HTTP_REALTIME_REDIS_BACKOFF_MIN  100    /* ms */
#define NGX_HTTP_REALTIME_REDIS_BACKOFF_MAX  5000   /* ms */


static void ngx_http_realtime_redis_start(ngx_http_realtime_redis_link_t *link);
static void ngx_http_realtime_redis_went_down(
    ngx_http_realtime_redis_link_t *link, const char *reason);
static void ngx_http_realtime_redis_went_up(
    ngx_http_realtime_redis_link_t *link);
static void ngx_http_realtime_redis_arm(ngx_http_realtime_redis_link_t *link);


/* realtime_redis URL [zone=NAME] [prefix=STRING] [timeout=TIME]
   [node_expiry=TIME] [password=P] [db=N] (the last two for a unix: URL) */

char *
ngx_http_realtime_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_str_t                       *value, zone_name = ngx_null_string;
    ngx_uint_t                       i;
    ngx_http_realtime_zone_t        *z;
    ngx_http_realtime_redis_conf_t  *rc;

    value = (ngx_str_t *) cf->args->elts;

    rc = (ngx_http_realtime_redis_conf_t *)
             ngx_pcalloc(cf->pool, sizeof(ngx_http_realtime_redis_conf_t));
    if (rc == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    rc->timeout = 1000;
    rc->node_expiry = 15000;
    ngx_str_set(&rc->prefix, "realtime");

    try {
        realtime::RedisUrl  url;
        std::string         error, text((char *) value[1].data, value[1].len);

        if (!realtime::parse_redis_url(text, &url, &error)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid realtime_redis URL: %s", error.c_str());
            return (char *) NGX_CONF_ERROR;
        }

        for (i = 2; i < cf->args->nelts; i++) {
            ngx_str_t  *v = &value[i];

            if (v->len > 5 && ngx_strncmp(v->data, "zone=", 5) == 0) {
                zone_name.data = v->data + 5;
                zone_name.len = v->len - 5;

            } else if (v->len > 7 && ngx_strncmp(v->data, "prefix=", 7) == 0) {
                rc->prefix.data = v->data + 7;
                rc->prefix.len = v->len - 7;

            } else if (v->len > 8 && ngx_strncmp(v->data, "timeout=", 8) == 0)
            {
                ngx_str_t  t = { v->len - 8, v->data + 8 };

                rc->timeout = ngx_parse_time(&t, 0);
                if (rc->timeout == (ngx_msec_t) NGX_ERROR || rc->timeout == 0) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid timeout \"%V\"", &t);
                    return (char *) NGX_CONF_ERROR;
                }

            } else if (v->len > 12
                       && ngx_strncmp(v->data, "node_expiry=", 12) == 0)
            {
                ngx_str_t  t = { v->len - 12, v->data + 12 };

                rc->node_expiry = ngx_parse_time(&t, 0);
                if (rc->node_expiry == (ngx_msec_t) NGX_ERROR
                    || rc->node_expiry < 2000)
                {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "invalid node_expiry \"%V\" (at least "
                                       "2s: nodes check in every second)", &t);
                    return (char *) NGX_CONF_ERROR;
                }

            } else if (url.is_unix && v->len > 9
                       && ngx_strncmp(v->data, "password=", 9) == 0)
            {
                url.password.assign((char *) v->data + 9, v->len - 9);

            } else if (url.is_unix && v->len > 3
                       && ngx_strncmp(v->data, "db=", 3) == 0)
            {
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
                                   "invalid parameter %ui of realtime_redis "
                                   "(zone=, prefix=, timeout=, node_expiry=; "
                                   "password= "
                                   "and db= after a unix: URL)", i);
                return (char *) NGX_CONF_ERROR;
            }
        }

        if (ngx_http_realtime_redis_conf_address(cf, url, rc, "realtime_redis")
            != NGX_CONF_OK)
        {
            return (char *) NGX_CONF_ERROR;
        }

    } catch (...) {
        return (char *) NGX_CONF_ERROR;
    }

    z = ngx_http_realtime_redis_conf_zone(cf, &zone_name, "realtime_redis");
    if (z == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    if (z->redis) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" has a realtime_redis already",
                           &z->name);
        return (char *) NGX_CONF_ERROR;
    }

    z->redis = rc;

    return NGX_CONF_OK;
}


/*
 * The address of a link (realtime_redis, realtime_channels_redis): rc's
 * display, user, password, path, db, and for TCP the host resolved now,
 * as nginx resolves upstream servers: hiredis' own connect would call
 * getaddrinfo() in the worker, which blocks. The first address is used.
 */

char *
ngx_http_realtime_redis_conf_address(ngx_conf_t *cf,
    const realtime::RedisUrl &url, ngx_http_realtime_redis_conf_t *rc,
    const char *directive) noexcept
{
    ngx_url_t  u;

    try {
        auto copy = [cf](const std::string &s, ngx_str_t *out) {
            out->len = s.size();
            out->data = (u_char *) ngx_pnalloc(cf->pool, s.size() + 1);
            if (out->data == NULL) {
                return false;
            }
            ngx_memcpy(out->data, s.data(), s.size());
            out->data[s.size()] = '\0';
            return true;
        };

        if (!copy(url.display, &rc->display) || !copy(url.user, &rc->user)
            || !copy(url.password, &rc->password) || !copy(url.path, &rc->path))
        {
            return (char *) NGX_CONF_ERROR;
        }

        rc->db = url.db;

        if (!url.is_unix) {
            std::string  hostport = (url.host.find(':') != std::string::npos
                                     ? "[" + url.host + "]" : url.host)
                                    + ":" + std::to_string(url.port);

            ngx_memzero(&u, sizeof(ngx_url_t));
            u.url.len = hostport.size();
            u.url.data = (u_char *) ngx_pnalloc(cf->pool, hostport.size());
            if (u.url.data == NULL) {
                return (char *) NGX_CONF_ERROR;
            }
            ngx_memcpy(u.url.data, hostport.data(), hostport.size());
            u.default_port = url.port;

            if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "%s: host of \"%V\" not found%s%s",
                                   directive, &rc->display,
                                   u.err ? ": " : "", u.err ? u.err : "");
                return (char *) NGX_CONF_ERROR;
            }

            rc->ip.data = (u_char *) ngx_pnalloc(cf->pool,
                                                 NGX_SOCKADDR_STRLEN + 1);
            if (rc->ip.data == NULL) {
                return (char *) NGX_CONF_ERROR;
            }

            rc->ip.len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                       rc->ip.data, NGX_SOCKADDR_STRLEN, 0);
            rc->ip.data[rc->ip.len] = '\0';
            rc->port = url.port;
        }

    } catch (...) {
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* The zone a directive names (zone=NAME), or the only one declared so
   far; NULL (said) otherwise. */

ngx_http_realtime_zone_t *
ngx_http_realtime_redis_conf_zone(ngx_conf_t *cf, ngx_str_t *zone_name,
    const char *directive) noexcept
{
    ngx_http_realtime_zone_t       *z, **zones;
    ngx_http_realtime_main_conf_t  *rmcf;

    rmcf = (ngx_http_realtime_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_realtime_module);

    /* the zone: named, or the only one declared so far */
    zones = (ngx_http_realtime_zone_t **) rmcf->zones.elts;

    if (zone_name->len) {
        z = ngx_http_realtime_find_zone(cf, zone_name);
        if (z == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s: unknown zone \"%V\" "
                               "(realtime_zone must come first)", directive,
                               zone_name);
            return NULL;
        }

    } else if (rmcf->zones.nelts == 1) {
        z = zones[0];

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s needs zone=NAME after its "
                           "realtime_zone when there is not exactly one",
                           directive);
        return NULL;
    }

    return z;
}


/* ---------------------------------------------------------------- adapter */

static void
ngx_http_realtime_redis_read_handler(ngx_event_t *rev) noexcept
{
    ngx_connection_t  *c = (ngx_connection_t *) rev->data;

    /* may free the context, and with it c (see cleanup) */
    redisAsyncHandleRead((redisAsyncContext *) c->data);
}


static void
ngx_http_realtime_redis_write_handler(ngx_event_t *wev) noexcept
{
    ngx_connection_t  *c = (ngx_connection_t *) wev->data;

    redisAsyncHandleWrite((redisAsyncContext *) c->data);
}


static void
ngx_http_realtime_redis_add_read(void *data)
{
    ngx_connection_t  *c = (ngx_connection_t *) data;

    if (!c->read->active) {
        (void) ngx_add_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_realtime_redis_del_read(void *data)
{
    ngx_connection_t  *c = (ngx_connection_t *) data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }
}


static void
ngx_http_realtime_redis_add_write(void *data)
{
    ngx_connection_t  *c = (ngx_connection_t *) data;

    if (!c->write->active) {
        (void) ngx_add_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


static void
ngx_http_realtime_redis_del_write(void *data)
{
    ngx_connection_t  *c = (ngx_connection_t *) data;

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
    }
}


/* hiredis is about to close the fd: give the connection back, fd and all */

static void
ngx_http_realtime_redis_cleanup(void *data)
{
    ngx_connection_t  *c = (ngx_connection_t *) data;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->write->active) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->read->closed = 1;
    c->write->closed = 1;

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;   /* closed by hiredis, not by nginx */
}


/* ------------------------------------------------------------------ link */

static void
ngx_http_realtime_redis_timeout_handler(ngx_event_t *ev) noexcept
{
    ngx_http_realtime_redis_link_t *link =
        (ngx_http_realtime_redis_link_t *) ev->data;

    ngx_msec_t  now = ngx_current_msec;

    if (link->state == NGX_HTTP_REALTIME_REDIS_CONNECTING
        && now - link->connect_at >= link->conf->timeout)
    {
        ngx_http_realtime_redis_fail(link, "connect timed out");
        return;
    }

    if (!link->sent->empty()
        && now - link->sent->front() >= link->conf->timeout)
    {
        ngx_http_realtime_redis_fail(link, "no reply within the timeout");
        return;
    }

    ngx_http_realtime_redis_arm(link);
}


/* The timer on the oldest command (or on the connect). */

static void
ngx_http_realtime_redis_arm(ngx_http_realtime_redis_link_t *link)
{
    ngx_msec_t  since, due;

    if (link->ac == NULL) {
        if (link->timeout_ev.timer_set) {
            ngx_del_timer(&link->timeout_ev);
        }
        return;
    }

    if (!link->sent->empty()) {
        since = link->sent->front();

    } else if (link->state == NGX_HTTP_REALTIME_REDIS_CONNECTING) {
        since = link->connect_at;

    } else {
        if (link->timeout_ev.timer_set) {
            ngx_del_timer(&link->timeout_ev);
        }
        return;
    }

    due = since + link->conf->timeout;
    due = due > ngx_current_msec ? due - ngx_current_msec : 1;

    ngx_add_timer(&link->timeout_ev, due);
}


static void
ngx_http_realtime_redis_reconnect_handler(ngx_event_t *ev) noexcept
{
    ngx_http_realtime_redis_start((ngx_http_realtime_redis_link_t *) ev->data);
}


ngx_int_t
ngx_http_realtime_redis_init(ngx_http_realtime_redis_link_t *link,
    const ngx_http_realtime_redis_conf_t *conf, const char *name,
    ngx_log_t *log) noexcept
{
    link->conf = conf;
    link->name = name;
    link->log = log;
    link->state = NGX_HTTP_REALTIME_REDIS_IDLE;
    link->backoff = NGX_HTTP_REALTIME_REDIS_BACKOFF_MIN;

    link->sent = new (std::nothrow) std::deque<ngx_msec_t>();
    if (link->sent == NULL) {
        return NGX_ERROR;
    }

    /*
     * Not cancelable: a worker that is shutting down waits for the
     * replies it expects (at most the timeout) rather than leaving a
     * publisher without an answer.
     */
    link->timeout_ev.handler = ngx_http_realtime_redis_timeout_handler;
    link->timeout_ev.data = link;
    link->timeout_ev.log = log;

    link->reconnect_ev.handler = ngx_http_realtime_redis_reconnect_handler;
    link->reconnect_ev.data = link;
    link->reconnect_ev.log = log;
    link->reconnect_ev.cancelable = 1;

    return NGX_OK;
}


void
ngx_http_realtime_redis_connect(ngx_http_realtime_redis_link_t *link) noexcept
{
    if (link->state == NGX_HTTP_REALTIME_REDIS_IDLE) {
        ngx_http_realtime_redis_start(link);
    }
}


bool
ngx_http_realtime_redis_usable(ngx_http_realtime_redis_link_t *link) noexcept
{
    return link->ac != NULL
           && (link->state == NGX_HTTP_REALTIME_REDIS_UP
               || link->state == NGX_HTTP_REALTIME_REDIS_CONNECTING);
}


static void
ngx_http_realtime_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_realtime_redis_link_t *link =
        (ngx_http_realtime_redis_link_t *) ac->data;

    if (link == NULL) {
        return;
    }

    if (status != REDIS_OK) {
        /* hiredis frees the context after this call */
        link->ac = NULL;
        ngx_http_realtime_redis_went_down(link,
            ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }

    if (link->setup == 0) {
        ngx_http_realtime_redis_went_up(link);
    }
}


static void
ngx_http_realtime_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_http_realtime_redis_link_t *link =
        (ngx_http_realtime_redis_link_t *) ac->data;

    if (link == NULL) {
        return;     /* we let it go ourselves */
    }

    /* hiredis frees the context after this call */
    link->ac = NULL;
    ngx_http_realtime_redis_went_down(link,
        ac->err ? ac->errstr : "connection closed by the server");
}


/* AUTH and SELECT: the link is up when both said OK. */

static void
ngx_http_realtime_redis_setup_reply(ngx_http_realtime_redis_link_t *link,
    redisReply *reply, void *data)
{
    if (reply == NULL) {
        return;     /* the link is down already */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        std::string  why = std::string((const char *) data) + " failed: "
                           + std::string(reply->str, reply->len);

        /* a configuration error: said once per outage, as "lost" is */
        if (!link->outage) {
            ngx_log_error(NGX_LOG_ERR, link->log, 0,
                          "realtime: redis %s link to %V: %s", link->name,
                          &link->conf->display, why.c_str());
        }

        ngx_http_realtime_redis_fail(link, why.c_str());
        return;
    }

    if (--link->setup == 0
        && link->state == NGX_HTTP_REALTIME_REDIS_CONNECTING)
    {
        ngx_http_realtime_redis_went_up(link);
    }
}


static void
ngx_http_realtime_redis_start(ngx_http_realtime_redis_link_t *link)
{
    redisAsyncContext  *ac;
    ngx_connection_t   *c;

    if (link->ac) {
        return;
    }

    if (link->conf->path.len) {
        ac = redisAsyncConnectUnix((const char *) link->conf->path.data);

    } else {
        ac = redisAsyncConnect((const char *) link->conf->ip.data,
                               link->conf->port);
    }

    if (ac == NULL) {
        ngx_http_realtime_redis_went_down(link, "out of memory");
        return;
    }

    if (ac->err) {
        std::string  why;

        try {
            why = ac->errstr;
        } catch (...) {
        }

        redisAsyncFree(ac);
        ngx_http_realtime_redis_went_down(link, why.c_str());
        return;
    }

    c = ngx_get_connection(ac->c.fd, link->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_http_realtime_redis_went_down(link, "no free connection");
        return;
    }

    c->data = ac;
    c->read->handler = ngx_http_realtime_redis_read_handler;
    c->write->handler = ngx_http_realtime_redis_write_handler;
    c->read->log = link->log;
    c->write->log = link->log;

    ac->data = link;
    ac->ev.data = c;
    ac->ev.addRead = ngx_http_realtime_redis_add_read;
    ac->ev.delRead = ngx_http_realtime_redis_del_read;
    ac->ev.addWrite = ngx_http_realtime_redis_add_write;
    ac->ev.delWrite = ngx_http_realtime_redis_del_write;
    ac->ev.cleanup = ngx_http_realtime_redis_cleanup;

    link->ac = ac;
    link->state = NGX_HTTP_REALTIME_REDIS_CONNECTING;
    link->connect_at = ngx_current_msec;
    link->setup = 0;
    link->sent->clear();

    /* after the adapter: it watches for the connect's completion */
    redisAsyncSetConnectCallback(ac, ngx_http_realtime_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_http_realtime_redis_on_disconnect);

    /* queued before anything else: they go first once connected */
    if (link->conf->password.len) {
        const char  *argv[3];
        size_t       lens[3];
        int          argc = 0;

        argv[argc] = "AUTH";
        lens[argc++] = 4;

        if (link->conf->user.len) {
            argv[argc] = (const char *) link->conf->user.data;
            lens[argc++] = link->conf->user.len;
        }

        argv[argc] = (const char *) link->conf->password.data;
        lens[argc++] = link->conf->password.len;

        if (ngx_http_realtime_redis_command(link,
                ngx_http_realtime_redis_setup_reply, (void *) "AUTH", argc,
                argv, lens) == NGX_OK)
        {
            link->setup++;
        }
    }

    if (link->conf->db && link->ac) {
        char         db[NGX_INT_T_LEN];
        const char  *argv[2] = { "SELECT", db };
        size_t       lens[2] = { 6, 0 };

        lens[1] = ngx_sprintf((u_char *) db, "%ui", link->conf->db)
                  - (u_char *) db;

        if (ngx_http_realtime_redis_command(link,
                ngx_http_realtime_redis_setup_reply, (void *) "SELECT", 2,
                argv, lens) == NGX_OK)
        {
            link->setup++;
        }
    }

    for (ngx_uint_t i = 0; i < link->nscripts && link->ac; i++) {
        const char  *argv[3] = { "SCRIPT", "LOAD",
                                 (const char *) link->scripts[i].data };
        size_t       lens[3] = { 6, 4, link->scripts[i].len };

        if (ngx_http_realtime_redis_command(link,
                ngx_http_realtime_redis_setup_reply, (void *) "SCRIPT LOAD",
                3, argv, lens) == NGX_OK)
        {
            link->setup++;
        }
    }

    ngx_http_realtime_redis_arm(link);
}


static void
ngx_http_realtime_redis_went_up(ngx_http_realtime_redis_link_t *link)
{
    link->state = NGX_HTTP_REALTIME_REDIS_UP;
    link->backoff = NGX_HTTP_REALTIME_REDIS_BACKOFF_MIN;
    link->up_at = ngx_current_msec;

    if (link->outage) {
        link->outage = 0;
        link->reconnects++;

        ngx_log_error(NGX_LOG_NOTICE, link->log, 0,
                      "realtime: redis %s link to %V back after %M ms",
                      link->name, &link->conf->display,
                      ngx_current_msec - link->down_at);
    }

    ngx_http_realtime_redis_arm(link);

    if (link->on_up) {
        link->on_up(link);
    }
}


/*
 * The context is gone or going (link->ac is NULL already): log once per
 * outage, tell the owner, and schedule the next try.
 */

static void
ngx_http_realtime_redis_went_down(ngx_http_realtime_redis_link_t *link,
    const char *reason)
{
    ngx_msec_t  delay;

    link->state = NGX_HTTP_REALTIME_REDIS_DOWN;
    link->sent->clear();
    link->setup = 0;

    if (link->timeout_ev.timer_set) {
        ngx_del_timer(&link->timeout_ev);
    }

    if (!link->outage) {
        link->outage = 1;
        link->down_at = ngx_current_msec;

        ngx_log_error(NGX_LOG_WARN, link->log, 0,
                      "realtime: redis %s link to %V lost: %s; reconnecting",
                      link->name, &link->conf->display, reason);
    }

    if (link->on_down) {
        link->on_down(link);
    }

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    /* half the backoff, plus up to as much again at random */
    delay = link->backoff / 2
            + (ngx_msec_t) ngx_random() % (link->backoff / 2 + 1);
    link->backoff = ngx_min(link->backoff * 2,
                            (ngx_msec_t) NGX_HTTP_REALTIME_REDIS_BACKOFF_MAX);

    if (!link->reconnect_ev.timer_set) {
        ngx_add_timer(&link->reconnect_ev, delay);
    }
}


void
ngx_http_realtime_redis_fail(ngx_http_realtime_redis_link_t *link,
    const char *reason) noexcept
{
    redisAsyncContext  *ac = link->ac;

    if (ac == NULL) {
        return;
    }

    link->ac = NULL;
    ac->data = NULL;        /* its callbacks now know it is let go */

    ngx_http_realtime_redis_went_down(link, reason);

    /* pending callbacks get NULL (deferred if inside one of them) */
    redisAsyncFree(ac);
}


void
ngx_http_realtime_redis_close(ngx_http_realtime_redis_link_t *link) noexcept
{
    redisAsyncContext  *ac = link->ac;

    if (link->reconnect_ev.timer_set) {
        ngx_del_timer(&link->reconnect_ev);
    }

    if (link->timeout_ev.timer_set) {
        ngx_del_timer(&link->timeout_ev);
    }

    link->state = NGX_HTTP_REALTIME_REDIS_IDLE;
    link->outage = 0;
    link->setup = 0;

    if (link->sent) {
        link->sent->clear();
    }

    if (ac == NULL) {
        return;
    }

    link->ac = NULL;
    ac->data = NULL;

    redisAsyncFree(ac);
}


/* ------------------------------------------------------------- commands */

struct ngx_http_realtime_redis_pending_t {
    ngx_http_realtime_redis_link_t    *link;
    redisAsyncContext                 *ac;
    ngx_http_realtime_redis_reply_pt   fn;
    void                              *data;
};


static void
ngx_http_realtime_redis_replied(redisAsyncContext *ac, void *r, void *privdata)
    noexcept
{
    auto  *p = (ngx_http_realtime_redis_pending_t *) privdata;
    auto  *link = p->link;

    /* replies come in order: this one is the oldest of this context */
    if (link->ac == ac && ac->data == link && !link->sent->empty()) {
        link->sent->pop_front();
        ngx_http_realtime_redis_arm(link);
    }

    /* a context that was let go answers NULL, whatever hiredis has; no
       exception may unwind through hiredis' C frames */
    try {
        p->fn(link, ac->data == link ? (redisReply *) r : NULL, p->data);

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, link->log, 0,
                      "realtime: redis %s link: out of memory handling a "
                      "reply", link->name);
    }

    delete p;
}


ngx_int_t
ngx_http_realtime_redis_command(ngx_http_realtime_redis_link_t *link,
    ngx_http_realtime_redis_reply_pt fn, void *data, int argc,
    const char **argv, const size_t *argvlen) noexcept
{
    if (!ngx_http_realtime_redis_usable(link)) {
        return NGX_DECLINED;
    }

    auto  *p = new (std::nothrow) ngx_http_realtime_redis_pending_t{
                   link, link->ac, fn, data };
    if (p == NULL) {
        return NGX_DECLINED;
    }

    try {
        link->sent->push_back((ngx_msec_t) ngx_current_msec);

    } catch (...) {
        delete p;
        return NGX_DECLINED;
    }

    if (redisAsyncCommandArgv(link->ac, ngx_http_realtime_redis_replied, p,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        link->sent->pop_back();
        delete p;
        return NGX_DECLINED;
    }

    link->used_at = ngx_current_msec;

    if (link->sent->size() == 1) {
        ngx_http_realtime_redis_arm(link);
    }

    return NGX_OK;
}


static void
ngx_http_realtime_redis_pushed(redisAsyncContext *ac, void *r, void *privdata)
    noexcept
{
    auto  *link = (ngx_http_realtime_redis_link_t *) privdata;

    if (ac->data != link || r == NULL || link->on_push == NULL) {
        return;
    }

    try {
        link->on_push(link, (redisReply *) r, link->data);

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, link->log, 0,
                      "realtime: redis %s link: out of memory handling a "
                      "message", link->name);
    }
}


ngx_int_t
ngx_http_realtime_redis_subscribe(ngx_http_realtime_redis_link_t *link,
    int argc, const char **argv, const size_t *argvlen) noexcept
{
    if (!ngx_http_realtime_redis_usable(link)) {
        return NGX_DECLINED;
    }

    if (redisAsyncCommandArgv(link->ac, ngx_http_realtime_redis_pushed, link,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}
