/*
 * ngx_realtime_module: the types every glue file shares (configuration,
 * zone, per-worker state) and small helpers. It declares no function of a
 * higher layer: each file's own header does that, and the files call
 * downwards only (module -> handshake -> groups/auth -> messages ->
 * heartbeat -> session -> zone; worker and publish beside them).
 */

#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <new>
#include <string_view>
#include <vector>

#include "core/json_template.h"
#include "core/jwt.h"
#include "core/jwt_cache.h"
#include "core/registry.h"
#include "core/send_queue.h"
#include "core/ws_handshake.h"


#define NGX_HTTP_REALTIME_CLOSE_WAIT  3000  /* ms to wait for the peer's close */
#define NGX_HTTP_REALTIME_READ_BUF    16384

/*
 * The longest realtime_user, in bytes. The per-user connection limit is
 * counted in the zone under the key "~user:" + user, next to group names
 * of at most 100 bytes; 200 leaves room for e-mail addresses and
 * "tenant.sub" identities. A longer user is refused (403), never cut:
 * two users sharing a prefix would share a limit.
 */
#define NGX_HTTP_REALTIME_USER_MAX    200
#define NGX_HTTP_REALTIME_JWT_CACHE_DEFAULT  10000  /* verified tokens */
#define NGX_HTTP_REALTIME_JWT_CACHE_MAX      1000000


struct ngx_http_realtime_local_groups_t;
struct ngx_http_realtime_session_t;
struct ngx_http_realtime_relay_target_t;
struct ngx_http_realtime_redis_conf_t;
struct ngx_http_realtime_cluster_t;
struct ngx_http_realtime_channels_conf_t;
struct ngx_http_realtime_channels_t;

namespace realtime::channels { struct EventRule; }


/*
 * A realtime_zone, one per configuration cycle (shm_zone->data). The slab
 * pool and registry root live in shared memory; slot and local are this
 * worker's own (each worker has its private copy of this struct).
 */
typedef struct {
    ngx_str_t                   name;
    ngx_shm_zone_t             *shm_zone;
    ngx_slab_pool_t            *shpool;
    realtime::RegistryRoot     *root;

    /* this worker's own (every process has its private copy of this struct) */
    ngx_int_t                   slot;     /* this worker's slot, or -1 */
    uint64_t                    owner;    /* the claim that slot belongs to */
    uint32_t                    generation;  /* root->generation when this
                                                worker started: a new one
                                                later means a reload */
    ngx_http_realtime_local_groups_t  *local;

    /* realtime_redis (configuration), and this worker's links for it */
    ngx_http_realtime_redis_conf_t    *redis;
    ngx_http_realtime_cluster_t       *cluster;

    /* realtime_channels_redis (configuration), and this worker's links */
    ngx_http_realtime_channels_conf_t *channels_conf;
    ngx_http_realtime_channels_t      *channels;
} ngx_http_realtime_zone_t;


typedef struct {
    ngx_array_t                 zones;    /* of ngx_http_realtime_zone_t * */

    /* nginx variable indexes the JSON templates refer to (template.cpp) */
    ngx_array_t                 template_vars;     /* of ngx_int_t */

    /* every realtime_relay, resolved at postconfiguration (relay.cpp) */
    ngx_array_t                 relay_targets;

    /* realtime_channels_event, in order (channels.cpp); NULL: none */
    std::vector<realtime::channels::EventRule>  *channels_rules;
} ngx_http_realtime_main_conf_t;


/* realtime_client_stamp FIELD VALUE [as=json] | FIELD off; */
typedef struct {
    ngx_str_t                   field;
    realtime::JsonTemplate     *value;      /* NULL: "off", the field is
                                               removed */
} ngx_http_realtime_stamp_t;


typedef struct {
    ngx_flag_t                  websocket;
    ngx_flag_t                  eventsource;       /* a plain GET streams
                                                      Server-Sent Events */
    ngx_flag_t                  publish;
    ngx_flag_t                  stats;
    ngx_str_t                   zone_name;         /* zone=NAME, if given */
    ngx_http_realtime_zone_t   *zone;
    ngx_array_t                *subscribe;   /* of ngx_http_complex_value_t */
    ngx_array_t                *subscribe_claims;  /* of ngx_str_t: the claim
                                                      an argument names alone */

    /* authentication (ngx_http_realtime_auth.cpp) */
    ngx_array_t                *jwt_sources; /* of ngx_http_complex_value_t */
    realtime::jwt::KeySet      *jwt_keys;
    ngx_array_t                *jwt_algorithms;    /* of ngx_str_t */
    time_t                      jwt_leeway;
    ngx_str_t                   jwt_issuer;
    ngx_str_t                   jwt_audience;
    realtime::jwt::Policy      *jwt_policy;        /* built at merge time */
    ngx_int_t                   jwt_cache_size;    /* 0: off */
    realtime::jwt::VerifiedCache *jwt_cache;       /* this worker's, made at
                                                      the first token */
    ngx_http_complex_value_t   *user;
    ngx_array_t                *identity_claims;   /* of ngx_str_t: claims */
    ngx_array_t                *identity_headers;  /* and token header fields
                                                      realtime_user and
                                                      realtime_subscribe use;
                                                      a refresh keeps them */
    ngx_uint_t                  max_connections_per_user;
    ngx_array_t                *subprotocols;      /* of ngx_str_t */
    ngx_array_t                *allowed_origins;   /* of ngx_str_t */
    size_t                      max_message_size;
    size_t                      send_buffer_size;
    ngx_msec_t                  ping_interval;
    ngx_msec_t                  pong_timeout;
    ngx_msec_t                  idle_timeout;
    ngx_msec_t                  reload_spread;     /* 1012 closes spread
                                                      over this window */
    ngx_flag_t                  echo;
    size_t                      max_body_size;     /* publish bodies */
    ngx_flag_t                  publish_remote;
    ngx_flag_t                  stats_remote;

    /* client messages (ngx_http_realtime_client.cpp) */
    ngx_array_t                *client_publish;    /* of complex values */
    ngx_flag_t                  client_echo;       /* echo=on|off */
    ngx_array_t                *client_types;      /* of ngx_str_t, types= */
    size_t                      client_max_size;   /* max_size= */
    ngx_array_t                *client_stamps;     /* of ..._stamp_t */
    ngx_uint_t                  client_rate;       /* r/s, 0: unlimited */
    ngx_uint_t                  client_burst;
    ngx_flag_t                  app_ping;
    realtime::JsonTemplate     *welcome;
    ngx_array_t                *allow_subscribe;   /* of complex values */
    ngx_array_t                *allow_subscribe_claims;  /* of ngx_str_t */

    /* presence (ngx_http_realtime_presence.cpp) */
    ngx_flag_t                  presence;
    ngx_msec_t                  presence_leave_delay;
    realtime::JsonTemplate     *presence_info;
    realtime::JsonTemplate     *presence_join;     /* the event shapes */
    realtime::JsonTemplate     *presence_leave;
    ngx_uint_t                  presence_max_list;

    /* history and resume (ngx_http_realtime_history.cpp) */
    ngx_uint_t                  history_size;      /* 0: none */
    ngx_msec_t                  history_ttl;       /* 0: no limit */
    ngx_flag_t                  envelope;
    ngx_http_complex_value_t   *last_id;           /* where a resume says
                                                      where it was */

    /* relay to the app (ngx_http_realtime_relay.cpp) */
    ngx_http_realtime_relay_target_t  *relay;
    ngx_array_t                *relay_headers;
    ngx_uint_t                  relay_events;
    ngx_uint_t                  relay_queue;
    ngx_msec_t                  relay_timeout;

    /* built at merge time from the arrays above */
    realtime::ws::HandshakePolicy  *policy;
} ngx_http_realtime_loc_conf_t;


/*
 * What one worker process holds for the module: built in init_process,
 * torn down in exit_process (ngx_http_realtime_worker.cpp). Connections
 * read into one buffer and share one ping frame.
 */
typedef struct {
    ngx_http_realtime_main_conf_t  *main_conf;   /* NULL: no zone */
    ngx_connection_t               *wake_conn;   /* NULL: drained on a timer */
    u_char                          wake_name[realtime::kWakeNameMax];
    size_t                          wake_name_len; /* its abstract name */
    ngx_event_t                     drain_event; /* our own queue has work */
    ngx_event_t                     safety_timer;/* periodic drain */
    ngx_msec_t                      safety_interval;
    void                          (*drain)(void);  /* given at init */
    void                          (*tick)(void);   /* once a second, given
                                                      at init (cluster) */
    ngx_queue_t                     flush_list;  /* connections to write */
    uint64_t                        delivery;    /* stamp of the message
                                                    being delivered */
    realtime::SharedFrame          *ping_frame;
    realtime::SharedFrame          *comment_frame[2];  /* SSE heartbeat:
                                                          plain, chunked */
    ngx_event_t                     presence_timer;  /* leaves due */
    ngx_msec_t                      reclaimed_at;  /* last dead-worker check */
    /* what a control message (an action by user) does to a connection;
       given at init (the client file), called by the delivery */
    void                          (*control)(ngx_http_realtime_session_t *s,
                                             std::string_view instruction);
    u_char                          read_buf[NGX_HTTP_REALTIME_READ_BUF];
} ngx_http_realtime_worker_t;

extern ngx_http_realtime_worker_t  ngx_http_realtime_worker;


extern "C" ngx_module_t  ngx_realtime_module;


/* configuration helpers (ngx_http_realtime_conf.cpp) */
ngx_array_t *ngx_http_realtime_compile_args(ngx_conf_t *cf) noexcept;
char *ngx_http_realtime_set_str_list(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
void ngx_http_realtime_claim_argument(ngx_str_t *arg, ngx_str_t *claim);

/* responses */
ngx_int_t ngx_http_realtime_add_header(ngx_http_request_t *r, const char *name,
    std::string_view value) noexcept;
ngx_int_t ngx_http_realtime_send_json(ngx_http_request_t *r, ngx_uint_t status,
    std::string_view body) noexcept;
ngx_int_t ngx_http_realtime_send_error(ngx_http_request_t *r,
    ngx_uint_t status, std::string_view message) noexcept;

/* access: publish and stats are for this host unless opened */
ngx_int_t ngx_http_realtime_local_only(ngx_http_request_t *r,
    ngx_flag_t remote, const char *what, const char *directive) noexcept;

/* zone: directive, shared memory setup, locking, snapshot for stats */
char *ngx_http_realtime_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept;
ngx_http_realtime_zone_t *ngx_http_realtime_find_zone(ngx_conf_t *cf,
    ngx_str_t *name);

/* The core's Allocator over the zone's slab pool; the zone must be locked. */
class ngx_http_realtime_slab_allocator_t final : public realtime::Allocator {
public:
    explicit ngx_http_realtime_slab_allocator_t(ngx_slab_pool_t *pool) noexcept
        : pool_(pool) {}
    void *allocate(size_t size) noexcept override;
    void deallocate(void *p) noexcept override;

private:
    ngx_slab_pool_t  *pool_;
};


/* The zone's registry, locked for the lifetime of this object. */
class ngx_http_realtime_registry_t {
public:
    explicit ngx_http_realtime_registry_t(ngx_http_realtime_zone_t *zone)
        noexcept;
    ~ngx_http_realtime_registry_t();

    ngx_http_realtime_registry_t(const ngx_http_realtime_registry_t &) = delete;
    ngx_http_realtime_registry_t &operator=(
        const ngx_http_realtime_registry_t &) = delete;

    realtime::Registry *operator->() noexcept { return &registry_; }
    realtime::Registry &get() noexcept { return registry_; }

private:
    ngx_http_realtime_zone_t            *zone_;
    ngx_http_realtime_slab_allocator_t   alloc_;
    realtime::Registry                   registry_;
};


/* A copy of what realtime_stats shows, taken under the lock. */
struct ngx_http_realtime_zone_snapshot_t {
    struct worker_t {
        int32_t   pid;
        uint32_t  connections;
        uint32_t  queued;
    };

    size_t                   size;
    size_t                   used;
    size_t                   free;
    uint32_t                 generation;
    uint32_t                 groups;
    realtime::RegistryStats  stats;
    std::vector<worker_t>    workers;
};

/* May throw std::bad_alloc. */
void ngx_http_realtime_zone_snapshot(ngx_http_realtime_zone_t *zone,
    ngx_http_realtime_zone_snapshot_t *snap);



/*
 * Milliseconds of CLOCK_MONOTONIC: one clock for every process of the
 * machine, so a deadline one worker stores in the zone means the same to
 * another (presence leave delays).
 */
static inline uint64_t
ngx_http_realtime_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


static inline std::string_view
ngx_http_realtime_sv(const ngx_str_t &s)
{
    return std::string_view((const char *) s.data, s.len);
}


/*
 * Calls f(name) for every variable a configuration text refers to, as
 * "$name" or "${name}" (nginx's script syntax), until f returns true.
 */
template <class F>
void
ngx_http_realtime_each_variable(const ngx_str_t &text, F f)
{
    u_char  *p, *last, *start;

    p = text.data;
    last = p + text.len;

    while (p < last) {
        if (*p++ != '$' || p == last) {
            continue;
        }

        if (*p == '{') {
            start = ++p;

            while (p < last && *p != '}') {
                p++;
            }

            if (p == last) {
                return;
            }

        } else {
            start = p;

            while (p < last
                   && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
                       || (*p >= '0' && *p <= '9') || *p == '_'))
            {
                p++;
            }
        }

        if (p > start
            && f(std::string_view((const char *) start, p - start)))
        {
            return;
        }
    }
}


/*
 * Calls f(name, value) for every request header, in order, until f returns
 * true (found).
 */
template <class F>
void
ngx_http_realtime_each_header(ngx_http_request_t *r, F f)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_in.headers.part;
    h = (ngx_table_elt_t *) part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return;
            }

            part = part->next;
            h = (ngx_table_elt_t *) part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        if (f(ngx_http_realtime_sv(h[i].key), ngx_http_realtime_sv(h[i].value))) {
            return;
        }
    }
}


static inline bool
ngx_http_realtime_header_is(std::string_view name, std::string_view want)
{
    return name.size() == want.size()
           && ngx_strncasecmp((u_char *) name.data(), (u_char *) want.data(),
                              want.size()) == 0;
}


/*
 * Constructs a T in pool memory and registers its destructor as a pool
 * cleanup, so C++ objects live exactly as long as the nginx object they
 * belong to. Returns NULL on allocation failure; T's constructor must not
 * throw.
 */
template <class T, class... Args>
T *
ngx_http_realtime_pool_new(ngx_pool_t *pool, Args &&...args) noexcept
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(pool, sizeof(T));
    if (cln == NULL) {
        return NULL;
    }

    T *obj = new (cln->data) T(static_cast<Args &&>(args)...);

    cln->handler = [](void *data) { static_cast<T *>(data)->~T(); };

    return obj;
}
