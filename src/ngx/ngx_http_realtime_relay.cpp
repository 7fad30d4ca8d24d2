/*
 * ngx_realtime_module: the relay to the app.
 *
 *   realtime_relay http://127.0.0.1:8000/realtime/relay;
 *   realtime_relay http://unix:/run/app.sock:/realtime/relay;
 *   realtime_relay http://app_servers/realtime/relay;   (an upstream{} block)
 *   realtime_relay_header NAME VALUE;
 *   realtime_relay_events connect disconnect;
 *   realtime_relay_queue N;
 *   realtime_relay_timeout TIME;
 *
 * Why not nginx's upstream module: ngx_http_upstream runs for an HTTP
 * request (its subrequests, filters and finalization all hang on one), and
 * a WebSocket session has detached from its request after the 101, while
 * the disconnect event is sent after the connection is gone. So the relay
 * is a small client built from the pieces nginx offers below the upstream
 * module: ngx_event_connect_peer() for non-blocking connects, the
 * connection's send/recv, nginx's own HTTP response parsers
 * (ngx_http_parse_status_line, ngx_http_parse_header_line,
 * ngx_http_parse_chunked, fed through a private request object that holds
 * only their state), its timers, and a per-worker pool of keepalive
 * connections per target (as ngx_http_upstream_keepalive keeps them: an
 * idle connection closes on any event). Addresses are resolved when the
 * configuration is read, as proxy_pass with a literal address does; an
 * upstream{} block gives its servers, taken in turn.
 */

#include "ngx_http_realtime_relay.h"

#include <sys/random.h>

#include <deque>

#include "core/publish_request.h"
#include "ngx_http_realtime_groups.h"
#include "ngx_http_realtime_publish.h"


#define NGX_HTTP_REALTIME_RELAY_HEADER_BUF  8192     /* status + headers */
#define NGX_HTTP_REALTIME_RELAY_MAX_BODY    (1024 * 1024)
#define NGX_HTTP_REALTIME_RELAY_IDLE        256      /* kept per target and
                                                        worker, by default */


/* Where realtime_relay sends: resolved at postconfiguration. */
struct ngx_http_realtime_relay_target_t {
    ngx_str_t       url;          /* as written, for logs */
    ngx_str_t       authority;    /* host[:port] or upstream name */
    ngx_str_t       host;
    in_port_t       port;
    ngx_str_t       uri;
    bool            unix_socket;
    ngx_addr_t     *addrs;
    ngx_uint_t      naddrs;
    ngx_uint_t      keepalive;    /* idle connections kept, at most */

    /* this worker's own (each process has its copy of the configuration) */
    ngx_uint_t      next;         /* round robin */
    ngx_queue_t     idle;         /* of ngx_http_realtime_relay_idle_t */
    ngx_uint_t      nidle;
    time_t          failed_at;    /* the last connect failure logged */
    ngx_uint_t      failed_quiet; /* failures not logged since */
};


typedef struct {
    ngx_str_t                   name;
    ngx_http_complex_value_t    value;
} ngx_http_realtime_relay_header_t;


typedef struct {
    ngx_queue_t                          queue;
    ngx_connection_t                    *connection;
    ngx_http_realtime_relay_target_t    *target;
} ngx_http_realtime_relay_idle_t;


/* One thing to tell the app: a client message or an event. */
struct ngx_http_realtime_relay_job_t {
    std::string     body;
    std::string     groups;       /* X-Realtime-Groups at that moment */
    bool            json;
};


enum class ngx_http_realtime_relay_phase_e : uint8_t {
    kIdle, kConnecting, kSending, kStatus, kHeaders, kBody
};


struct ngx_http_realtime_relay_stream_t {
    ngx_http_realtime_relay_stream_t() noexcept = default;
    ~ngx_http_realtime_relay_stream_t();

    ngx_http_realtime_session_t         *session = nullptr;  /* NULL: gone */
    ngx_http_realtime_relay_target_t    *target = nullptr;
    ngx_http_realtime_zone_t            *zone = nullptr;
    ngx_http_realtime_loc_conf_t        *conf = nullptr;  /* publishes go
                                                             through it */
    ngx_msec_t                           timeout = 0;
    size_t                               limit = 0;
    ngx_uint_t                           events = 0;
    bool                                 opened = false;  /* after the 101 */
    bool                                 starting = false;  /* in _next() */
    bool                                 again = false;     /* ... once more */
    std::string                          headers;   /* fixed per connection */
    std::deque<ngx_http_realtime_relay_job_t>  queue;

    /* the request in flight */
    ngx_http_realtime_relay_phase_e      phase =
        ngx_http_realtime_relay_phase_e::kIdle;
    ngx_http_realtime_relay_job_t        job;
    ngx_peer_connection_t                peer{};
    bool                                 reused = false;    /* from the pool */
    bool                                 retried = false;
    ngx_uint_t                           tries = 0;   /* addresses tried */
    bool                                 got_bytes = false;
    std::string                          out;
    size_t                               sent = 0;
    u_char                              *hbuf = nullptr;
    ngx_buf_t                            hb{};
    ngx_http_request_t                  *parser = nullptr; /* parsers' state */
    ngx_http_status_t                    status{};
    off_t                                content_length = -1;
    bool                                 chunked = false;
    bool                                 keepalive = true;
    ngx_http_chunked_t                   chunk{};
    std::string                          body;
    ngx_event_t                          timer{};
};


static void ngx_http_realtime_relay_enqueue(ngx_http_realtime_relay_stream_t *st,
    ngx_http_realtime_relay_job_t &&job);
static void ngx_http_realtime_relay_next(ngx_http_realtime_relay_stream_t *st);
static void ngx_http_realtime_relay_connect(
    ngx_http_realtime_relay_stream_t *st);
static void ngx_http_realtime_relay_connect_failed(
    ngx_http_realtime_relay_stream_t *st);
static void ngx_http_realtime_relay_log_failure(
    ngx_http_realtime_relay_stream_t *st, ngx_err_t err, ngx_str_t *addr);
static void ngx_http_realtime_relay_write_handler(ngx_event_t *wev) noexcept;
static void ngx_http_realtime_relay_read_handler(ngx_event_t *rev) noexcept;
static void ngx_http_realtime_relay_timeout(ngx_event_t *ev) noexcept;
static void ngx_http_realtime_relay_send(ngx_http_realtime_relay_stream_t *st);
static void ngx_http_realtime_relay_read(ngx_http_realtime_relay_stream_t *st);
static ngx_int_t ngx_http_realtime_relay_parse(
    ngx_http_realtime_relay_stream_t *st, u_char *data, size_t len);
static void ngx_http_realtime_relay_done(ngx_http_realtime_relay_stream_t *st,
    ngx_uint_t status);
static void ngx_http_realtime_relay_release_connection(
    ngx_http_realtime_relay_stream_t *st, bool keep);
static void ngx_http_realtime_relay_answer(ngx_http_realtime_relay_stream_t *st,
    ngx_uint_t status);
static void ngx_http_realtime_relay_idle_handler(ngx_event_t *ev) noexcept;
static ngx_log_t *ngx_http_realtime_relay_log(
    ngx_http_realtime_relay_stream_t *st);


/* ---------------------------------------------------------------- config */


/* realtime_relay http://host[:port][/uri] | http://unix:/path:/uri
       [keepalive=N] | off; */

char *
ngx_http_realtime_relay_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_url_t                           u;
    ngx_str_t                          *value;
    ngx_http_realtime_relay_target_t   *t, **slot;
    ngx_http_realtime_main_conf_t      *rmcf;

    if (rlcf->relay != NGX_CONF_UNSET_PTR) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        rlcf->relay = NULL;
        return NGX_CONF_OK;
    }

    t = (ngx_http_realtime_relay_target_t *)
            ngx_pcalloc(cf->pool, sizeof(ngx_http_realtime_relay_target_t));
    if (t == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    t->keepalive = NGX_HTTP_REALTIME_RELAY_IDLE;

    for (ngx_uint_t i = 2; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "keepalive=", 10) == 0) {
            ngx_int_t  n = ngx_atoi(value[i].data + 10, value[i].len - 10);

            if (n == NGX_ERROR) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid keepalive \"%V\"", &value[i]);
                return (char *) NGX_CONF_ERROR;
            }

            t->keepalive = (ngx_uint_t) n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                           &value[i]);
        return (char *) NGX_CONF_ERROR;
    }

    if (value[1].len <= 7 || ngx_strncasecmp(value[1].data,
                                             (u_char *) "http://", 7) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid URL \"%V\": it must start with "
                           "\"http://\"", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url.data = value[1].data + 7;
    u.url.len = value[1].len - 7;
    u.uri_part = 1;
    u.no_resolve = 1;
    u.default_port = 80;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in \"%V\"",
                           u.err ? u.err : "invalid URL", &value[1]);
        return (char *) NGX_CONF_ERROR;
    }

    t->url = value[1];
    t->host = u.host;
    t->port = u.port;
    t->uri = u.uri;
    t->unix_socket = (u.family == AF_UNIX);

    if (t->uri.len == 0) {
        ngx_str_set(&t->uri, "/");
    }

    if (t->unix_socket) {
        t->addrs = u.addrs;
        t->naddrs = u.naddrs;
        ngx_str_set(&t->authority, "localhost");

    } else {
        t->authority = u.host;  /* Host when the client sent none */
    }

    ngx_queue_init(&t->idle);

    rmcf = (ngx_http_realtime_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_realtime_module);

    slot = (ngx_http_realtime_relay_target_t **)
               ngx_array_push(&rmcf->relay_targets);
    if (slot == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    *slot = t;
    rlcf->relay = t;

    return NGX_CONF_OK;
}


/* realtime_relay_header NAME VALUE; */

char *
ngx_http_realtime_relay_header(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_str_t                          *value;
    ngx_http_realtime_relay_header_t   *h;
    ngx_http_compile_complex_value_t    ccv;

    value = (ngx_str_t *) cf->args->elts;

    for (size_t i = 0; i < value[1].len; i++) {
        u_char  ch = value[1].data[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
              || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid header name \"%V\"", &value[1]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    if (rlcf->relay_headers == NGX_CONF_UNSET_PTR) {
        rlcf->relay_headers = ngx_array_create(cf->pool, 4,
                                  sizeof(ngx_http_realtime_relay_header_t));
        if (rlcf->relay_headers == NULL) {
            return (char *) NGX_CONF_ERROR;
        }
    }

    h = (ngx_http_realtime_relay_header_t *)
            ngx_array_push(rlcf->relay_headers);
    if (h == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    h->name = value[1];

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &h->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* realtime_relay_events connect | disconnect ...; */

char *
ngx_http_realtime_relay_events(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (rlcf->relay_events != NGX_CONF_UNSET_UINT) {
        return (char *) "is duplicate";
    }

    value = (ngx_str_t *) cf->args->elts;
    rlcf->relay_events = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strcmp(value[i].data, "connect") == 0) {
            rlcf->relay_events |= NGX_HTTP_REALTIME_RELAY_CONNECT;

        } else if (ngx_strcmp(value[i].data, "disconnect") == 0) {
            rlcf->relay_events |= NGX_HTTP_REALTIME_RELAY_DISCONNECT;

        } else if (ngx_strcmp(value[i].data, "off") == 0 && cf->args->nelts == 2)
        {
            rlcf->relay_events = 0;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid event \"%V\": \"connect\", "
                               "\"disconnect\" or \"off\"", &value[i]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


char *
ngx_http_realtime_merge_relay(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *prev, ngx_http_realtime_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->relay, prev->relay, NULL);
    ngx_conf_merge_ptr_value(conf->relay_headers, prev->relay_headers, NULL);
    ngx_conf_merge_uint_value(conf->relay_events, prev->relay_events, 0);
    ngx_conf_merge_uint_value(conf->relay_queue, prev->relay_queue, 16);
    ngx_conf_merge_msec_value(conf->relay_timeout, prev->relay_timeout, 10000);

    if (conf->relay_events && conf->relay == NULL && conf->websocket) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_relay_events\" needs "
                           "\"realtime_relay\"");
        return (char *) NGX_CONF_ERROR;
    }

    if (conf->relay_queue == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_relay_queue\" must be at least 1");
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* The servers of an upstream{} block named name, if there is one. */

static ngx_int_t
ngx_http_realtime_relay_upstream(ngx_conf_t *cf,
    ngx_http_realtime_relay_target_t *t)
{
    ngx_uint_t                      i, j, n;
    ngx_array_t                    *addrs;
    ngx_addr_t                     *a;
    ngx_http_upstream_server_t     *server;
    ngx_http_upstream_srv_conf_t  **uscfp;
    ngx_http_upstream_main_conf_t  *umcf;

    umcf = (ngx_http_upstream_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);
    if (umcf == NULL) {
        return NGX_DECLINED;
    }

    uscfp = (ngx_http_upstream_srv_conf_t **) umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {

        if (uscfp[i]->srv_conf == NULL || uscfp[i]->servers == NULL
            || uscfp[i]->host.len != t->host.len
            || ngx_strncasecmp(uscfp[i]->host.data, t->host.data, t->host.len)
               != 0)
        {
            continue;   /* not an upstream{} block, or another one */
        }

        addrs = ngx_array_create(cf->pool, 4, sizeof(ngx_addr_t));
        if (addrs == NULL) {
            return NGX_ERROR;
        }

        server = (ngx_http_upstream_server_t *) uscfp[i]->servers->elts;
        n = 0;

        for (j = 0; j < uscfp[i]->servers->nelts; j++) {
            if (server[j].down || server[j].backup) {
                continue;
            }

            for (ngx_uint_t k = 0; k < server[j].naddrs; k++) {
                a = (ngx_addr_t *) ngx_array_push(addrs);
                if (a == NULL) {
                    return NGX_ERROR;
                }

                *a = server[j].addrs[k];
                n++;
            }
        }

        if (n == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "upstream \"%V\" of realtime_relay \"%V\" has "
                               "no usable server", &t->host, &t->url);
            return NGX_ERROR;
        }

        t->addrs = (ngx_addr_t *) addrs->elts;
        t->naddrs = n;

        return NGX_OK;
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_realtime_relay_init(ngx_conf_t *cf) noexcept
{
    ngx_int_t                            rc;
    ngx_url_t                            u;
    ngx_uint_t                           i;
    ngx_http_realtime_relay_target_t   **targets, *t;
    ngx_http_realtime_main_conf_t       *rmcf;

    rmcf = (ngx_http_realtime_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_realtime_module);

    targets = (ngx_http_realtime_relay_target_t **) rmcf->relay_targets.elts;

    for (i = 0; i < rmcf->relay_targets.nelts; i++) {
        t = targets[i];

        if (t->unix_socket) {
            continue;
        }

        rc = ngx_http_realtime_relay_upstream(cf, t);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {
            continue;
        }

        /* a host: resolved now, as proxy_pass does with a literal one */
        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url.data = t->url.data + 7;
        u.url.len = t->url.len - 7;
        u.uri_part = 1;
        u.default_port = 80;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "realtime_relay \"%V\": %s", &t->url,
                          u.err ? u.err : "host not found");
            return NGX_ERROR;
        }

        t->addrs = u.addrs;
        t->naddrs = u.naddrs;
    }

    return NGX_OK;
}


/* ---------------------------------------------------------- per session */


/* A name for the connection, unique on this host for its life. */

static std::string
ngx_http_realtime_relay_connection_id()
{
    static ngx_pid_t  pid;
    static uint64_t   prefix, counter;
    char              buf[48];

    if (pid != ngx_pid) {
        /* per process, chosen in the worker (not inherited from the master) */
        if (getrandom(&prefix, sizeof(prefix), GRND_NONBLOCK)
            != (ssize_t) sizeof(prefix))
        {
            prefix = ((uint64_t) ngx_random() << 32) ^ (uint64_t) ngx_random()
                     ^ (uint64_t) ngx_pid;
        }

        pid = ngx_pid;
        counter = 0;
    }

    ngx_snprintf((u_char *) buf, sizeof(buf), "%016xL-%uL%Z", prefix,
                 ++counter);

    return std::string(buf);
}


/* Header values go into the request as they are: no CR, LF or NUL. */

static bool
ngx_http_realtime_relay_safe(std::string_view v)
{
    for (char ch : v) {
        if (ch == '\r' || ch == '\n' || ch == '\0') {
            return false;
        }
    }

    return true;
}


ngx_int_t
ngx_http_realtime_relay_prepare(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s) noexcept
{
    ngx_str_t                          value;
    ngx_uint_t                         i;
    ngx_http_realtime_loc_conf_t      *conf = s->conf;
    ngx_http_realtime_relay_header_t  *h;
    ngx_http_realtime_relay_stream_t  *st;

    if (conf->relay == NULL) {
        return NGX_OK;
    }

    st = new (std::nothrow) ngx_http_realtime_relay_stream_t();
    if (st == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    st->session = s;
    st->target = conf->relay;
    st->zone = conf->zone;
    st->conf = conf;
    st->timeout = conf->relay_timeout;
    st->limit = conf->relay_queue;
    st->events = conf->relay_events;
    s->relay = st;      /* freed by ngx_http_realtime_relay_close() */

    try {
        std::string_view  host = r->headers_in.host
                                 ? ngx_http_realtime_sv(r->headers_in.host->value)
                                 : ngx_http_realtime_sv(conf->relay->authority);

        st->headers = "Host: " + std::string(host) + "\r\n"
                      "X-Realtime-Connection: "
                      + ngx_http_realtime_relay_connection_id() + "\r\n";

        if (!s->user.empty()) {
            if (!ngx_http_realtime_relay_safe(s->user)) {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "realtime: handshake refused with 403: the "
                              "user cannot be sent to the app in a header");
                return NGX_HTTP_FORBIDDEN;
            }

            st->headers += "X-Realtime-User: " + s->user + "\r\n";
        }

        if (conf->relay_headers) {
            h = (ngx_http_realtime_relay_header_t *) conf->relay_headers->elts;

            for (i = 0; i < conf->relay_headers->nelts; i++) {
                if (ngx_http_complex_value(r, &h[i].value, &value) != NGX_OK) {
                    return NGX_HTTP_INTERNAL_SERVER_ERROR;
                }

                if (value.len == 0) {
                    continue;   /* as proxy_set_header: empty is not sent */
                }

                if (!ngx_http_realtime_relay_safe(ngx_http_realtime_sv(value))) {
                    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                                  "realtime: handshake refused with 400: "
                                  "realtime_relay_header \"%V\" would hold "
                                  "a line break", &h[i].name);
                    return NGX_HTTP_BAD_REQUEST;
                }

                st->headers += std::string(ngx_http_realtime_sv(h[i].name))
                               + ": " + std::string(ngx_http_realtime_sv(value))
                               + "\r\n";
            }
        }

    } catch (...) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


static ngx_http_realtime_relay_job_t
ngx_http_realtime_relay_job(ngx_http_realtime_session_t *s,
    std::string_view body, bool json)
{
    ngx_http_realtime_relay_job_t  job;

    job.body.assign(body);
    job.json = json;
    ngx_http_realtime_groups_names(s, &job.groups);

    return job;
}


void
ngx_http_realtime_relay_open(ngx_http_realtime_session_t *s) noexcept
{
    ngx_http_realtime_relay_stream_t  *st = s->relay;

    if (st == NULL) {
        return;
    }

    st->opened = true;

    if (!(st->events & NGX_HTTP_REALTIME_RELAY_CONNECT)) {
        return;
    }

    try {
        ngx_http_realtime_relay_enqueue(st,
            ngx_http_realtime_relay_job(s, "{\"type\":\"connect\"}", true));

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: out of memory relaying a connect event");
    }
}


void
ngx_http_realtime_relay_message(ngx_http_realtime_session_t *s,
    std::string_view payload, bool json) noexcept
{
    ngx_http_realtime_relay_stream_t  *st = s->relay;

    try {
        ngx_http_realtime_relay_enqueue(st,
            ngx_http_realtime_relay_job(s, payload, json));

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                      "realtime: out of memory relaying a message");
        ngx_http_realtime_session_error(s, "internal_error");
    }
}


void
ngx_http_realtime_relay_close(ngx_http_realtime_session_t *s) noexcept
{
    ngx_http_realtime_relay_stream_t  *st = s->relay;

    if (st == NULL) {
        return;
    }

    s->relay = NULL;

    /* only a connection that was served (after the 101) disconnects */
    if ((st->events & NGX_HTTP_REALTIME_RELAY_DISCONNECT) && st->opened) {
        try {
            std::string  body = "{\"type\":\"disconnect\",\"code\":"
                                + std::to_string(s->close_code
                                                 ? s->close_code : 1006)
                                + "}";

            st->queue.push_back(ngx_http_realtime_relay_job(s, body, true));

        } catch (...) {
            ngx_log_error(NGX_LOG_ERR, s->connection->log, 0,
                          "realtime: out of memory relaying a disconnect "
                          "event");
        }
    }

    st->session = NULL;

    if (st->phase == ngx_http_realtime_relay_phase_e::kIdle) {
        if (st->queue.empty()) {
            delete st;
            return;
        }

        ngx_http_realtime_relay_next(st);
    }
}


/* ------------------------------------------------------------ the stream */


ngx_http_realtime_relay_stream_t::~ngx_http_realtime_relay_stream_t()
{
    if (timer.timer_set) {
        ngx_del_timer(&timer);
    }

    if (peer.connection) {
        ngx_close_connection(peer.connection);
        peer.connection = NULL;
    }

    ngx_free(hbuf);
    ngx_free(parser);
}


static ngx_log_t *
ngx_http_realtime_relay_log(ngx_http_realtime_relay_stream_t *st)
{
    return st->session ? st->session->connection->log : ngx_cycle->log;
}


static void
ngx_http_realtime_relay_enqueue(ngx_http_realtime_relay_stream_t *st,
    ngx_http_realtime_relay_job_t &&job)
{
    st->queue.push_back(std::move(job));

    /*
     * Backpressure: past the bound the client's socket is not read until
     * the app catches up. Frames already read are queued all the same (a
     * read can hold several): nothing is dropped.
     */
    if (st->session && st->queue.size() >= st->limit) {
        ngx_http_realtime_session_hold_input(st->session, true);
    }

    if (st->phase == ngx_http_realtime_relay_phase_e::kIdle) {
        ngx_http_realtime_relay_next(st);
    }
}


/*
 * Starts the next request, if any; deletes an orphan stream that is done.
 * A request that fails at once (the app refuses connections) comes back
 * here through ngx_http_realtime_relay_done(): that is turned into the
 * next turn of this loop, not a deeper call, however long the queue.
 */

static void
ngx_http_realtime_relay_next(ngx_http_realtime_relay_stream_t *st)
{
    if (st->starting) {
        st->again = true;
        return;
    }

    st->starting = true;

    do {
        st->again = false;

        if (st->session && st->queue.size() < st->limit) {
            ngx_http_realtime_session_hold_input(st->session, false);
        }

        if (st->queue.empty()) {
            st->phase = ngx_http_realtime_relay_phase_e::kIdle;
            st->starting = false;

            if (st->session == NULL) {
                delete st;
            }

            return;
        }

        st->job = std::move(st->queue.front());
        st->queue.pop_front();

        try {
            const ngx_http_realtime_relay_job_t  &job = st->job;

            st->out.clear();
            st->out += "POST "
                       + std::string(ngx_http_realtime_sv(st->target->uri))
                       + " HTTP/1.1\r\n" + st->headers;

            if (!job.groups.empty()) {
                st->out += "X-Realtime-Groups: " + job.groups + "\r\n";
            }

            st->out += job.json ? "Content-Type: application/json\r\n"
                                : "Content-Type: text/plain; charset=utf-8\r\n";
            st->out += "Content-Length: " + std::to_string(job.body.size())
                       + "\r\nConnection: keep-alive\r\n\r\n";
            st->out += job.body;

        } catch (...) {
            ngx_log_error(NGX_LOG_ERR, ngx_http_realtime_relay_log(st), 0,
                          "realtime: out of memory building a relay request");
            st->phase = ngx_http_realtime_relay_phase_e::kConnecting;
            ngx_http_realtime_relay_done(st, NGX_HTTP_INTERNAL_SERVER_ERROR);
            continue;
        }

        st->retried = false;
        st->tries = 0;

        /* one timer for the whole exchange; not cancelable: a worker that
           is shutting down waits for it (disconnect events still go out) */
        st->timer.handler = ngx_http_realtime_relay_timeout;
        st->timer.data = st;
        st->timer.log = ngx_cycle->log;
        st->timer.cancelable = 0;
        ngx_add_timer(&st->timer, st->timeout);

        ngx_http_realtime_relay_connect(st);

    } while (st->again);

    st->starting = false;
}


/* A keepalive connection from the pool, or a new one. */

static void
ngx_http_realtime_relay_connect(ngx_http_realtime_relay_stream_t *st)
{
    ngx_int_t                          rc;
    ngx_queue_t                       *q;
    ngx_connection_t                  *c;
    ngx_http_realtime_relay_idle_t    *idle;
    ngx_http_realtime_relay_target_t  *t = st->target;

    st->sent = 0;
    st->got_bytes = false;
    st->reused = false;
    c = NULL;

    while (!ngx_queue_empty(&t->idle) && !st->retried) {
        q = ngx_queue_last(&t->idle);     /* the most recently used */
        ngx_queue_remove(q);
        t->nidle--;

        idle = ngx_queue_data(q, ngx_http_realtime_relay_idle_t, queue);
        c = idle->connection;
        ngx_free(idle);

        /*
         * An app may close a kept connection without saying so: its FIN
         * can be here before the event loop told us. Such a connection is
         * not used, so a request is never sent where nobody reads it (and
         * never sent twice: see the read path).
         */
        u_char   byte;
        ssize_t  n = recv(c->fd, &byte, 1, MSG_PEEK);

        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            break;
        }

        ngx_close_connection(c);
        c = NULL;
    }

    if (c) {
        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        c->idle = 0;
        st->peer.connection = c;
        st->reused = true;
        rc = NGX_OK;

    } else {
        ngx_memzero(&st->peer, sizeof(ngx_peer_connection_t));

        ngx_addr_t  *a = &t->addrs[t->next++ % t->naddrs];

        st->tries++;
        st->peer.sockaddr = a->sockaddr;
        st->peer.socklen = a->socklen;
        st->peer.name = &a->name;
        st->peer.get = ngx_event_get_peer;
        st->peer.log = ngx_cycle->log;
        st->peer.log_error = NGX_ERROR_ERR;

        rc = ngx_event_connect_peer(&st->peer);

        if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
            ngx_http_realtime_relay_log_failure(st, 0, &a->name);

            if (st->peer.connection) {
                ngx_close_connection(st->peer.connection);
                st->peer.connection = NULL;
            }

            ngx_http_realtime_relay_connect_failed(st);
            return;
        }
    }

    c = st->peer.connection;

    /*
     * A request goes out in one write, but a kept connection sends the
     * next while the app may still delay its ACK of the last: without
     * TCP_NODELAY, Nagle would hold it back (tens of ms per message).
     */
    if (!st->reused && st->peer.sockaddr->sa_family != AF_UNIX
        && ngx_tcp_nodelay(c) != NGX_OK)
    {
        ngx_close_connection(c);
        st->peer.connection = NULL;
        st->phase = ngx_http_realtime_relay_phase_e::kConnecting;
        ngx_http_realtime_relay_done(st, NGX_HTTP_BAD_GATEWAY);
        return;
    }

    c->data = st;
    c->log = ngx_cycle->log;
    c->read->log = c->log;
    c->write->log = c->log;
    c->read->handler = ngx_http_realtime_relay_read_handler;
    c->write->handler = ngx_http_realtime_relay_write_handler;

    if (rc == NGX_AGAIN) {
        st->phase = ngx_http_realtime_relay_phase_e::kConnecting;
        return;     /* the write event says when it is connected */
    }

    st->phase = ngx_http_realtime_relay_phase_e::kSending;
    ngx_http_realtime_relay_send(st);
}


/*
 * The app down must not flood the log with a line per message: the first
 * failure of each second is logged, with how many were not since.
 */

static void
ngx_http_realtime_relay_log_failure(ngx_http_realtime_relay_stream_t *st,
    ngx_err_t err, ngx_str_t *addr)
{
    ngx_http_realtime_relay_target_t  *t = st->target;

    if (t->failed_at == ngx_time()) {
        t->failed_quiet++;
        return;
    }

    t->failed_at = ngx_time();

    ngx_log_error(NGX_LOG_ERR, ngx_http_realtime_relay_log(st), err,
                  "realtime: relay to \"%V\" (%V) could not connect "
                  "(%ui more failures not logged since the last line)",
                  &t->url, addr, t->failed_quiet);

    t->failed_quiet = 0;
}


/*
 * No connection to that address: nothing was sent, so the next server of
 * the target is tried, each at most once per message, before giving up.
 */

static void
ngx_http_realtime_relay_connect_failed(ngx_http_realtime_relay_stream_t *st)
{
    if (st->tries < st->target->naddrs) {
        st->retried = true;     /* a new connection, not one from the pool */
        ngx_http_realtime_relay_connect(st);
        return;
    }

    st->phase = ngx_http_realtime_relay_phase_e::kConnecting;
    ngx_http_realtime_relay_done(st, NGX_HTTP_BAD_GATEWAY);
}


static void
ngx_http_realtime_relay_write_handler(ngx_event_t *wev) noexcept
{
    int                                err;
    socklen_t                          len;
    ngx_connection_t                  *c;
    ngx_http_realtime_relay_stream_t  *st;

    c = (ngx_connection_t *) wev->data;
    st = (ngx_http_realtime_relay_stream_t *) c->data;

    if (st->phase == ngx_http_realtime_relay_phase_e::kConnecting) {
        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
            err = ngx_socket_errno;
        }

        if (err) {
            ngx_http_realtime_relay_log_failure(st, err, st->peer.name);
            ngx_close_connection(c);
            st->peer.connection = NULL;
            ngx_http_realtime_relay_connect_failed(st);
            return;
        }

        st->phase = ngx_http_realtime_relay_phase_e::kSending;
    }

    if (st->phase == ngx_http_realtime_relay_phase_e::kSending) {
        ngx_http_realtime_relay_send(st);
    }
}


static void
ngx_http_realtime_relay_send(ngx_http_realtime_relay_stream_t *st)
{
    ssize_t            n;
    ngx_connection_t  *c = st->peer.connection;

    while (st->sent < st->out.size()) {
        n = c->send(c, (u_char *) st->out.data() + st->sent,
                    st->out.size() - st->sent);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
                ngx_http_realtime_relay_done(st, NGX_HTTP_BAD_GATEWAY);
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            if (st->reused && !st->retried) {
                goto retry;
            }

            ngx_http_realtime_relay_done(st, NGX_HTTP_BAD_GATEWAY);
            return;
        }

        st->sent += (size_t) n;
    }

    /* the whole request is out: read the answer */
    st->phase = ngx_http_realtime_relay_phase_e::kStatus;
    st->content_length = -1;
    st->chunked = false;
    st->keepalive = true;
    st->body.clear();
    ngx_memzero(&st->status, sizeof(ngx_http_status_t));
    ngx_memzero(&st->chunk, sizeof(ngx_http_chunked_t));

    if (st->hbuf == NULL) {
        st->hbuf = (u_char *) ngx_alloc(NGX_HTTP_REALTIME_RELAY_HEADER_BUF,
                                        ngx_cycle->log);
        st->parser = (ngx_http_request_t *)
                         ngx_calloc(sizeof(ngx_http_request_t), ngx_cycle->log);

        if (st->hbuf == NULL || st->parser == NULL) {
            ngx_http_realtime_relay_done(st, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_memzero(st->parser, sizeof(ngx_http_request_t));
    st->parser->connection = c;     /* debug logging in the parsers */

    ngx_memzero(&st->hb, sizeof(ngx_buf_t));
    st->hb.start = st->hbuf;
    st->hb.pos = st->hbuf;
    st->hb.last = st->hbuf;
    st->hb.end = st->hbuf + NGX_HTTP_REALTIME_RELAY_HEADER_BUF;

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_http_realtime_relay_done(st, NGX_HTTP_BAD_GATEWAY);
        return;
    }

    ngx_http_realtime_relay_read(st);
    return;

retry:

    /*
     * A keepalive connection the app had closed meanwhile: once, on a
     * fresh connection (the app saw nothing of this request).
     */
    st->retried = true;
    ngx_close_connection(c);
    st->peer.connection = NULL;
    ngx_http_realtime_relay_connect(st);
}


static void
ngx_http_realtime_relay_read_handler(ngx_event_t *rev) noexcept
{
    ngx_connection_t                  *c;
    ngx_http_realtime_relay_stream_t  *st;

    c = (ngx_connection_t *) rev->data;
    st = (ngx_http_realtime_relay_stream_t *) c->data;

    if (st->phase == ngx_http_realtime_relay_phase_e::kConnecting
        || st->phase == ngx_http_realtime_relay_phase_e::kSending)
    {
        /* an early answer or a close while sending: read it then */
        if (ngx_handle_read_event(rev, 0) != NGX_OK) {
            ngx_http_realtime_relay_done(st, NGX_HTTP_BAD_GATEWAY);
        }

        return;
    }

    ngx_http_realtime_relay_read(st);
}


static void
ngx_http_realtime_relay_read(ngx_http_realtime_relay_stream_t *st)
{
    u_char            *p;
    size_t             size;
    ssize_t            n;
    ngx_int_t          rc;
    ngx_connection_t  *c = st->peer.connection;

    for ( ;; ) {
        if (st->phase == ngx_http_realtime_relay_phase_e::kBody) {
            p = ngx_http_realtime_worker.read_buf;
            size = NGX_HTTP_REALTIME_READ_BUF;

        } else {
            p = st->hb.last;
            size = st->hb.end - st->hb.last;

            if (size == 0) {
                ngx_log_error(NGX_LOG_ERR, ngx_http_realtime_relay_log(st), 0,
                              "realtime: relay to \"%V\": the answer's "
                              "headers are too large", &st->target->url);
                ngx_http_realtime_relay_done(st, NGX_HTTP_BAD_GATEWAY);
                return;
            }
        }

        n = c->recv(c, p, size);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_realtime_relay_done(st, NGX_HTTP_BAD_GATEWAY);
            }

            return;
        }

        if (n == NGX_ERROR || n == 0) {
            /*
             * A kept connection the app had reset is retried once on a
             * fresh one. Not a clean close after the request went out: the
             * app may have acted on it (a POST is not sent twice).
             */
            if (n == NGX_ERROR && ngx_socket_errno == NGX_ECONNRESET
                && !st->got_bytes && st->reused && !st->retried)
            {
                st->retried = true;
                ngx_close_connection(c);
                st->peer.connection = NULL;
                ngx_http_realtime_relay_connect(st);
                return;
            }

            if (n == 0 && st->phase == ngx_http_realtime_relay_phase_e::kBody
                && st->content_length < 0 && !st->chunked)
            {
                /* HTTP/1.0 style: the body ends with the connection */
                st->keepalive = false;
                ngx_http_realtime_relay_done(st, st->status.code);
                return;
            }

            ngx_log_error(NGX_LOG_ERR, ngx_http_realtime_relay_log(st), 0,
                          "realtime: relay to \"%V\": the app closed the "
                          "connection before answering in full",
                          &st->target->url);
            ngx_http_realtime_relay_done(st, NGX_HTTP_BAD_GATEWAY);
            return;
        }

        st->got_bytes = true;

        rc = ngx_http_realtime_relay_parse(st, p, (size_t) n);

        if (rc == NGX_AGAIN) {
            continue;
        }

        if (rc == NGX_OK) {
            ngx_http_realtime_relay_done(st, st->status.code);
            return;
        }

        ngx_log_error(NGX_LOG_ERR, ngx_http_realtime_relay_log(st), 0,
                      "realtime: relay to \"%V\": invalid answer",
                      &st->target->url);
        st->keepalive = false;
        ngx_http_realtime_relay_done(st, NGX_HTTP_BAD_GATEWAY);
        return;
    }
}


/* Appends body bytes; NGX_OK when the body is complete. */

static ngx_int_t
ngx_http_realtime_relay_body(ngx_http_realtime_relay_stream_t *st, u_char *pos,
    u_char *last)
{
    size_t     size;
    ngx_int_t  rc;
    ngx_buf_t  b;

    if (st->chunked) {
        ngx_memzero(&b, sizeof(ngx_buf_t));
        b.pos = pos;
        b.last = last;

        for ( ;; ) {
            rc = ngx_http_parse_chunked(st->parser, &b, &st->chunk);

            if (rc == NGX_OK) {
                size = (size_t) ngx_min((off_t) (b.last - b.pos),
                                        st->chunk.size);

                if (st->body.size() + size > NGX_HTTP_REALTIME_RELAY_MAX_BODY) {
                    return NGX_ERROR;
                }

                st->body.append((const char *) b.pos, size);
                b.pos += size;
                st->chunk.size -= size;
                continue;
            }

            if (rc == NGX_DONE) {
                if (b.pos != b.last) {
                    st->keepalive = false;  /* bytes past the answer */
                }

                return NGX_OK;
            }

            return rc == NGX_AGAIN ? NGX_AGAIN : NGX_ERROR;
        }
    }

    size = last - pos;

    if (st->content_length >= 0) {
        if ((off_t) (st->body.size() + size) > st->content_length) {
            st->keepalive = false;  /* more than announced */
            size = (size_t) (st->content_length - (off_t) st->body.size());
        }
    }

    if (st->body.size() + size > NGX_HTTP_REALTIME_RELAY_MAX_BODY) {
        return NGX_ERROR;
    }

    st->body.append((const char *) pos, size);

    if (st->content_length >= 0 && (off_t) st->body.size() == st->content_length)
    {
        return NGX_OK;
    }

    return NGX_AGAIN;
}


/*
 * nginx's parsers, fed with what arrived: the status line and headers from
 * the header buffer, the body appended. NGX_OK: the answer is complete;
 * NGX_AGAIN: more is needed; NGX_ERROR: invalid.
 */

static ngx_int_t
ngx_http_realtime_relay_parse(ngx_http_realtime_relay_stream_t *st, u_char *data,
    size_t len)
{
    ngx_int_t            rc;
    ngx_str_t            name, value;
    ngx_http_request_t  *r = st->parser;

    if (st->phase == ngx_http_realtime_relay_phase_e::kBody) {
        try {
            return ngx_http_realtime_relay_body(st, data, data + len);

        } catch (...) {
            return NGX_ERROR;
        }
    }

    st->hb.last += len;

    if (st->phase == ngx_http_realtime_relay_phase_e::kStatus) {
        rc = ngx_http_parse_status_line(r, &st->hb, &st->status);

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        /* HTTP/1.0 answers close the connection unless told otherwise */
        st->keepalive = st->status.http_version >= NGX_HTTP_VERSION_11;
        st->phase = ngx_http_realtime_relay_phase_e::kHeaders;
        r->state = 0;
    }

    for ( ;; ) {
        rc = ngx_http_parse_header_line(r, &st->hb, 1);

        if (rc == NGX_AGAIN) {
            return NGX_AGAIN;
        }

        if (rc == NGX_HTTP_PARSE_HEADER_DONE) {
            break;
        }

        if (rc != NGX_OK) {
            return NGX_ERROR;
        }

        name.data = r->header_name_start;
        name.len = r->header_name_end - r->header_name_start;
        value.data = r->header_start;
        value.len = r->header_end - r->header_start;

        if (name.len == sizeof("Content-Length") - 1
            && ngx_strncasecmp(name.data, (u_char *) "Content-Length",
                               name.len) == 0)
        {
            st->content_length = ngx_atoof(value.data, value.len);
            if (st->content_length < 0) {
                return NGX_ERROR;
            }

        } else if (name.len == sizeof("Transfer-Encoding") - 1
                   && ngx_strncasecmp(name.data, (u_char *) "Transfer-Encoding",
                                      name.len) == 0)
        {
            if (value.len != 7
                || ngx_strncasecmp(value.data, (u_char *) "chunked", 7) != 0)
            {
                return NGX_ERROR;
            }

            st->chunked = true;

        } else if (name.len == sizeof("Connection") - 1
                   && ngx_strncasecmp(name.data, (u_char *) "Connection",
                                      name.len) == 0)
        {
            if (ngx_strlcasestrn(value.data, value.data + value.len,
                                 (u_char *) "close", 5 - 1))
            {
                st->keepalive = false;

            } else if (ngx_strlcasestrn(value.data, value.data + value.len,
                                        (u_char *) "keep-alive", 10 - 1))
            {
                st->keepalive = true;
            }
        }
    }

    if (st->chunked) {
        st->content_length = -1;
    }

    if (st->status.code == NGX_HTTP_NO_CONTENT
        || st->status.code == NGX_HTTP_NOT_MODIFIED
        || (st->content_length == 0 && !st->chunked))
    {
        if (st->hb.pos != st->hb.last) {
            st->keepalive = false;
        }

        return NGX_OK;
    }

    if (st->content_length < 0 && !st->chunked) {
        st->keepalive = false;  /* the body ends when the app closes */
    }

    st->phase = ngx_http_realtime_relay_phase_e::kBody;

    try {
        return ngx_http_realtime_relay_body(st, st->hb.pos, st->hb.last);

    } catch (...) {
        return NGX_ERROR;
    }
}


static void
ngx_http_realtime_relay_timeout(ngx_event_t *ev) noexcept
{
    ngx_http_realtime_relay_stream_t *st =
        (ngx_http_realtime_relay_stream_t *) ev->data;

    ngx_log_error(NGX_LOG_ERR, ngx_http_realtime_relay_log(st), NGX_ETIMEDOUT,
                  "realtime: relay to \"%V\" timed out", &st->target->url);

    st->keepalive = false;
    ngx_http_realtime_relay_done(st, NGX_HTTP_GATEWAY_TIME_OUT);
}


/* The exchange is over (status 0: never); acts on it, goes on. */

static void
ngx_http_realtime_relay_done(ngx_http_realtime_relay_stream_t *st,
    ngx_uint_t status)
{
    bool  complete;

    complete = (st->phase == ngx_http_realtime_relay_phase_e::kBody
                || st->phase == ngx_http_realtime_relay_phase_e::kHeaders)
               && status == st->status.code;

    if (st->timer.timer_set) {
        ngx_del_timer(&st->timer);
    }

    ngx_http_realtime_relay_release_connection(st, complete && st->keepalive);

    ngx_http_realtime_relay_answer(st, status);

    st->body.clear();
    st->job.body.clear();
    st->phase = ngx_http_realtime_relay_phase_e::kIdle;

    ngx_http_realtime_relay_next(st);
}


/* Back to the target's pool (a complete keepalive exchange), or closed. */

static void
ngx_http_realtime_relay_release_connection(ngx_http_realtime_relay_stream_t *st,
    bool keep)
{
    ngx_queue_t                       *q;
    ngx_connection_t                  *c = st->peer.connection;
    ngx_http_realtime_relay_idle_t    *idle;
    ngx_http_realtime_relay_target_t  *t = st->target;

    if (c == NULL) {
        return;
    }

    st->peer.connection = NULL;

    idle = NULL;

    if (keep && !ngx_exiting && !ngx_terminate && t->keepalive) {
        idle = (ngx_http_realtime_relay_idle_t *)
                   ngx_alloc(sizeof(ngx_http_realtime_relay_idle_t),
                             ngx_cycle->log);
    }

    if (idle == NULL) {
        ngx_close_connection(c);
        return;
    }

    if (t->nidle >= t->keepalive) {
        q = ngx_queue_head(&t->idle);     /* the least recently used */
        ngx_queue_remove(q);
        t->nidle--;

        ngx_http_realtime_relay_idle_t *old =
            ngx_queue_data(q, ngx_http_realtime_relay_idle_t, queue);

        ngx_close_connection(old->connection);
        ngx_free(old);
    }

    idle->connection = c;
    idle->target = t;
    ngx_queue_insert_tail(&t->idle, &idle->queue);
    t->nidle++;

    /* any event on an idle connection (the app closing it) closes it;
       c->idle lets a shutting down worker close it too */
    c->data = idle;
    c->idle = 1;
    c->read->handler = ngx_http_realtime_relay_idle_handler;
    c->write->handler = ngx_http_realtime_relay_idle_handler;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_queue_remove(&idle->queue);
        t->nidle--;
        ngx_free(idle);
        ngx_close_connection(c);
    }
}


static void
ngx_http_realtime_relay_idle_handler(ngx_event_t *ev) noexcept
{
    ngx_connection_t                *c = (ngx_connection_t *) ev->data;
    ngx_http_realtime_relay_idle_t  *idle;

    if (ev->write) {
        return;
    }

    idle = (ngx_http_realtime_relay_idle_t *) c->data;

    ngx_queue_remove(&idle->queue);
    idle->target->nidle--;
    ngx_free(idle);

    ngx_close_connection(c);
}


/* Tells the connection (if still there) and publishes what the app said. */

static void
ngx_http_realtime_relay_answer(ngx_http_realtime_relay_stream_t *st,
    ngx_uint_t status)
{
    size_t                        published;
    uint64_t                      total;
    ngx_http_realtime_session_t  *s = st->session;

    if (s && s->closing()) {
        s = NULL;   /* nothing more may be sent to it */
    }

    try {
        if (status >= 200 && status < 300) {
            realtime::RelayAnswer  ans = realtime::parse_relay_answer(st->body);

            if (!ans.ok) {
                ngx_log_error(NGX_LOG_ERR, ngx_http_realtime_relay_log(st), 0,
                              "realtime: relay to \"%V\": %*s",
                              &st->target->url, ans.error.size(),
                              ans.error.data());
                status = NGX_HTTP_BAD_GATEWAY;

            } else {
                if (!ans.publish.items.empty()) {
                    if (st->zone == NULL) {
                        ngx_log_error(NGX_LOG_ERR,
                                      ngx_http_realtime_relay_log(st), 0,
                                      "realtime: the app's answer publishes, "
                                      "but the location has no zone");

                    } else if (ngx_http_realtime_publish_items(st->zone,
                                   st->conf, ans.publish, &published, &total)
                               != NGX_OK)
                    {
                        ngx_log_error(NGX_LOG_ERR,
                                      ngx_http_realtime_relay_log(st), 0,
                                      "realtime: zone \"%V\" is full, %uz of "
                                      "the app's %uz messages published",
                                      &st->zone->name, published,
                                      ans.publish.items.size());
                    }
                }

                if (s && ans.has_reply) {
                    ngx_http_realtime_session_reply(s,
                        realtime::ws::Opcode::kText, ans.reply);
                    ngx_http_realtime_session_flush_later(s);
                }

                return;
            }
        }

        if (s) {
            std::string  reply = "{\"type\":\"error\",\"error\":\"relay_failed\","
                                 "\"status\":" + std::to_string(status) + "}";

            ngx_http_realtime_session_reply(s, realtime::ws::Opcode::kText,
                                            reply);
            ngx_http_realtime_session_flush_later(s);
        }

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, ngx_http_realtime_relay_log(st), 0,
                      "realtime: out of memory acting on the app's answer");
    }
}

