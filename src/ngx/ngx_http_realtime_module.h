/*
 * ngx_realtime_module: declarations shared by the nginx glue files.
 * The only place (with the other src/ngx files) that sees nginx headers.
 */

#pragma once

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <new>
#include <string_view>

#include "core/jwt.h"
#include "core/registry.h"
#include "core/ws_handshake.h"


#define NGX_HTTP_REALTIME_CLOSE_WAIT  3000  /* ms to wait for the peer's close */

/*
 * The longest realtime_user, in bytes. The per-user connection limit is
 * counted in the zone under the key "~user:" + user, next to group names
 * of at most 100 bytes; 200 leaves room for e-mail addresses and
 * "tenant.sub" identities. A longer user is refused (403), never cut:
 * two users sharing a prefix would share a limit.
 */
#define NGX_HTTP_REALTIME_USER_MAX    200


struct ngx_http_realtime_local_groups_t;


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

    ngx_int_t                   slot;     /* this worker's slot, or -1 */
    ngx_http_realtime_local_groups_t  *local;
} ngx_http_realtime_zone_t;


typedef struct {
    ngx_array_t                 zones;    /* of ngx_http_realtime_zone_t * */
} ngx_http_realtime_main_conf_t;


typedef struct {
    ngx_flag_t                  websocket;
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
    ngx_flag_t                  echo;
    size_t                      max_body_size;     /* publish bodies */
    ngx_flag_t                  publish_remote;

    /* built at merge time from the arrays above */
    realtime::ws::HandshakePolicy  *policy;
} ngx_http_realtime_loc_conf_t;


extern "C" ngx_module_t  ngx_realtime_module;


ngx_int_t ngx_http_realtime_ws_handler(ngx_http_request_t *r) noexcept;
ngx_int_t ngx_http_realtime_publish_handler(ngx_http_request_t *r) noexcept;
ngx_int_t ngx_http_realtime_stats_handler(ngx_http_request_t *r) noexcept;

/* configuration */
ngx_array_t *ngx_http_realtime_compile_args(ngx_conf_t *cf) noexcept;

/* responses */
ngx_int_t ngx_http_realtime_add_header(ngx_http_request_t *r, const char *name,
    std::string_view value) noexcept;
ngx_int_t ngx_http_realtime_send_json(ngx_http_request_t *r, ngx_uint_t status,
    std::string_view body) noexcept;
ngx_int_t ngx_http_realtime_send_error(ngx_http_request_t *r,
    ngx_uint_t status, std::string_view message) noexcept;

/* authentication */
char *ngx_http_realtime_auth_jwt(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_auth_jwt_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_merge_auth(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *prev, ngx_http_realtime_loc_conf_t *conf);
ngx_int_t ngx_http_realtime_add_variables(ngx_conf_t *cf) noexcept;
ngx_flag_t ngx_http_realtime_ambient_credentials(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *conf);
ngx_int_t ngx_http_realtime_token_source(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *token);

/* tokens kept out of the logs (ngx_http_realtime_redact.cpp) */
ngx_int_t ngx_http_realtime_redact_init(ngx_conf_t *cf) noexcept;
ngx_int_t ngx_http_realtime_redact(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf) noexcept;

/* zone: directive, shared memory setup, locking */
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


/* worker: slots, wake-ups and delivery to this worker's connections */
ngx_int_t ngx_http_realtime_init_process(ngx_cycle_t *cycle) noexcept;
void ngx_http_realtime_exit_process(ngx_cycle_t *cycle) noexcept;
void ngx_http_realtime_wake(ngx_http_realtime_zone_t *zone, uint64_t slots,
    const int32_t *pids) noexcept;



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
