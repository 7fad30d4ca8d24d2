/*
 * ngx_realtime_module: a link to Redis on nginx's event loop (hiredis'
 * async API), and the realtime_redis directive.
 *
 * A link connects without blocking (the address was resolved at
 * configuration time), sends AUTH and SELECT first, and is declared down
 * when a command waits longer than the timeout or the server goes away;
 * it then reconnects by itself with exponential backoff. Its owner is
 * told when it is up and when it is down, and logs nothing per command.
 */

#pragma once

#include "ngx_http_realtime_module.h"

extern "C" {
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
}

#include <deque>

#include "core/redis_url.h"


/* realtime_redis URL [zone=NAME] [prefix=STRING] [timeout=TIME]
   [node_expiry=TIME]; */
struct ngx_http_realtime_redis_conf_t {
    ngx_str_t                   display;   /* the URL without its password */
    ngx_str_t                   prefix;    /* of every channel name */
    ngx_msec_t                  timeout;   /* per command, and to connect */
    ngx_str_t                   path;      /* unix socket (NUL-terminated),
                                              or empty: TCP */
    ngx_str_t                   ip;        /* resolved at configuration
                                              time (NUL-terminated) */
    in_port_t                   port;
    ngx_str_t                   user;      /* AUTH [user] password */
    ngx_str_t                   password;
    ngx_uint_t                  db;        /* SELECT db, when not 0 */
    ngx_msec_t                  node_expiry; /* a silent node's users
                                                leave after it */
};


typedef enum {
    NGX_HTTP_REALTIME_REDIS_IDLE = 0,      /* never connected */
    NGX_HTTP_REALTIME_REDIS_CONNECTING,    /* commands are queued */
    NGX_HTTP_REALTIME_REDIS_UP,
    NGX_HTTP_REALTIME_REDIS_DOWN           /* waiting to reconnect: commands
                                              are refused at once */
} ngx_http_realtime_redis_state_e;


struct ngx_http_realtime_redis_link_t;

/* A reply, or NULL: none will come (link down, timeout). */
typedef void (*ngx_http_realtime_redis_reply_pt)(
    ngx_http_realtime_redis_link_t *link, redisReply *reply, void *data);


struct ngx_http_realtime_redis_link_t {
    const ngx_http_realtime_redis_conf_t  *conf;
    const char                  *name;       /* "command", "subscriber" */
    ngx_log_t                   *log;
    redisAsyncContext           *ac;
    ngx_uint_t                   state;

    ngx_event_t                  timeout_ev; /* the oldest command's */
    ngx_event_t                  reconnect_ev;
    ngx_msec_t                   connect_at;
    ngx_msec_t                   backoff;
    ngx_msec_t                   down_at;    /* the outage began (logged) */
    ngx_uint_t                   outage;     /* "lost" logged, not "back" */
    ngx_uint_t                   setup;      /* AUTH/SELECT without reply */
    ngx_uint_t                   reconnects; /* not yet counted in the zone */
    ngx_msec_t                   used_at;    /* the last command sent */
    ngx_msec_t                   up_at;      /* it was last declared up */
    std::deque<ngx_msec_t>      *sent;       /* when each command waiting
                                                for its reply was sent */

    /* loaded (SCRIPT LOAD) on every connect, before anything else, so
       EVALSHA never meets a server without them */
    const ngx_str_t             *scripts;
    ngx_uint_t                   nscripts;

    void                        *data;       /* the owner's */
    void                       (*on_up)(ngx_http_realtime_redis_link_t *l);
    void                       (*on_down)(ngx_http_realtime_redis_link_t *l);
    /* subscribed mode: every push (message, subscribe, ...) goes here */
    ngx_http_realtime_redis_reply_pt  on_push;
};


char *ngx_http_realtime_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;

/* For the directives that make links (realtime_redis,
   realtime_channels_redis): rc's address from url, the host resolved now
   (errors said, naming directive). */
char *ngx_http_realtime_redis_conf_address(ngx_conf_t *cf,
    const realtime::RedisUrl &url, ngx_http_realtime_redis_conf_t *rc,
    const char *directive) noexcept;

/* The zone of zone=NAME (empty: the only one declared so far); NULL
   (said) when there is none such. */
ngx_http_realtime_zone_t *ngx_http_realtime_redis_conf_zone(ngx_conf_t *cf,
    ngx_str_t *zone_name, const char *directive) noexcept;

/* Sets a link up (not connected); NGX_ERROR: out of memory. */
ngx_int_t ngx_http_realtime_redis_init(ngx_http_realtime_redis_link_t *link,
    const ngx_http_realtime_redis_conf_t *conf, const char *name,
    ngx_log_t *log) noexcept;

/* Connects it now if it is idle (first use); a link down reconnects on
   its own schedule. */
void ngx_http_realtime_redis_connect(ngx_http_realtime_redis_link_t *link)
    noexcept;

/* Whether a command sent now can be answered (up, or connecting). */
bool ngx_http_realtime_redis_usable(ngx_http_realtime_redis_link_t *link)
    noexcept;

/*
 * Sends a command; fn gets its reply (or NULL) later, never during this
 * call. NGX_DECLINED: the link is down (fn is not called).
 */
ngx_int_t ngx_http_realtime_redis_command(ngx_http_realtime_redis_link_t *link,
    ngx_http_realtime_redis_reply_pt fn, void *data, int argc,
    const char **argv, const size_t *argvlen) noexcept;

/* SUBSCRIBE / UNSUBSCRIBE (argv[0]) channels: what comes back, replies
   and messages, goes to on_push. */
ngx_int_t ngx_http_realtime_redis_subscribe(
    ngx_http_realtime_redis_link_t *link, int argc, const char **argv,
    const size_t *argvlen) noexcept;

/* Declares the link down (reason logged if the outage is new), drops
   what it waits for (their callbacks get NULL) and reconnects later. */
void ngx_http_realtime_redis_fail(ngx_http_realtime_redis_link_t *link,
    const char *reason) noexcept;

/* Closes it for good (worker exit, lost subscription): no reconnect. */
void ngx_http_realtime_redis_close(ngx_http_realtime_redis_link_t *link)
    noexcept;
