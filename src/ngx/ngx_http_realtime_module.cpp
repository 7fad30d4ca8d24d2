/*
 * ngx_realtime_module: module definition, directives and configuration.
 */

#include "ngx_http_realtime_module.h"

#include "core/group_name.h"
#include "core/ws_frame.h"
#include "ngx_http_realtime_auth.h"
#include "ngx_http_realtime_channels.h"
#include "ngx_http_realtime_client.h"
#include "ngx_http_realtime_cluster.h"
#include "ngx_http_realtime_groups.h"
#include "ngx_http_realtime_handshake.h"
#include "ngx_http_realtime_history.h"
#include "ngx_http_realtime_presence.h"
#include "ngx_http_realtime_publish.h"
#include "ngx_http_realtime_redact.h"
#include "ngx_http_realtime_redis.h"
#include "ngx_http_realtime_relay.h"
#include "ngx_http_realtime_stats.h"
#include "ngx_http_realtime_worker.h"


static ngx_int_t ngx_http_realtime_preconfiguration(ngx_conf_t *cf) noexcept;
static ngx_int_t ngx_http_realtime_init_process(ngx_cycle_t *cycle) noexcept;
static void ngx_http_realtime_exit_process(ngx_cycle_t *cycle) noexcept;
static ngx_int_t ngx_http_realtime_postconfiguration(ngx_conf_t *cf) noexcept;
static void *ngx_http_realtime_create_main_conf(ngx_conf_t *cf) noexcept;
static void *ngx_http_realtime_create_loc_conf(ngx_conf_t *cf) noexcept;
static char *ngx_http_realtime_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child) noexcept;
static char *ngx_http_realtime_websocket(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
static char *ngx_http_realtime_subscribe(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
static char *ngx_http_realtime_merge_zone(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *conf);
static char *ngx_http_realtime_publish_body_limits(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *conf);


static ngx_command_t  ngx_http_realtime_commands[] = {

    { ngx_string("realtime_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_realtime_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_channels_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_channels_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_channels_event"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_channels_event_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_websocket"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_realtime_websocket,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, websocket),
      NULL },

    { ngx_string("realtime_publish"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_realtime_websocket,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, publish),
      NULL },

    { ngx_string("realtime_stats"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_realtime_websocket,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, stats),
      NULL },

    { ngx_string("realtime_subscribe"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_subscribe,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_subprotocols"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_set_str_list,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, subprotocols),
      NULL },

    { ngx_string("realtime_allowed_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_set_str_list,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, allowed_origins),
      NULL },

    { ngx_string("realtime_max_message_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, max_message_size),
      NULL },

    { ngx_string("realtime_send_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, send_buffer_size),
      NULL },

    { ngx_string("realtime_ping_interval"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, ping_interval),
      NULL },

    { ngx_string("realtime_pong_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, pong_timeout),
      NULL },

    { ngx_string("realtime_eventsource"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, eventsource),
      NULL },

    { ngx_string("realtime_reload_spread"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, reload_spread),
      NULL },

    { ngx_string("realtime_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, idle_timeout),
      NULL },

    { ngx_string("realtime_publish_remote"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, publish_remote),
      NULL },

    { ngx_string("realtime_stats_remote"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, stats_remote),
      NULL },

    { ngx_string("realtime_auth_jwt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_auth_jwt,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_auth_jwt_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_realtime_auth_jwt_key_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_auth_jwt_algorithms"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_set_str_list,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, jwt_algorithms),
      NULL },

    { ngx_string("realtime_auth_jwt_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_realtime_auth_jwt_cache,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_auth_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, jwt_leeway),
      NULL },

    { ngx_string("realtime_auth_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, jwt_issuer),
      NULL },

    { ngx_string("realtime_auth_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, jwt_audience),
      NULL },

    { ngx_string("realtime_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, user),
      NULL },

    { ngx_string("realtime_max_connections_per_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, max_connections_per_user),
      NULL },

    { ngx_string("realtime_echo"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, echo),
      NULL },

    { ngx_string("realtime_client_publish"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_client_publish_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_client_stamp"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE23,
      ngx_http_realtime_client_stamp,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_client_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE123,
      ngx_http_realtime_client_rate,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_app_ping"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, app_ping),
      NULL },

    { ngx_string("realtime_welcome"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_realtime_welcome,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_allow_subscribe"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_allow_subscribe,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_presence"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_presence_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_presence_event"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_realtime_presence_event,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_history"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_realtime_history_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_envelope"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, envelope),
      NULL },

    { ngx_string("realtime_resume_from"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, last_id),
      NULL },

    { ngx_string("realtime_relay"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_realtime_relay_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_relay_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_realtime_relay_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_relay_events"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_realtime_relay_events,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_relay_queue"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, relay_queue),
      NULL },

    { ngx_string("realtime_relay_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, relay_timeout),
      NULL },

    { ngx_string("realtime_presence_max_list"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, presence_max_list),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_realtime_module_ctx = {
    ngx_http_realtime_preconfiguration,    /* preconfiguration */
    ngx_http_realtime_postconfiguration,   /* postconfiguration */

    ngx_http_realtime_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_realtime_create_loc_conf,     /* create location configuration */
    ngx_http_realtime_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_realtime_module = {
    NGX_MODULE_V1,
    &ngx_http_realtime_module_ctx,         /* module context */
    ngx_http_realtime_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_realtime_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_realtime_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_realtime_preconfiguration(ngx_conf_t *cf) noexcept
{
    return ngx_http_realtime_add_variables(cf);
}


/* A wake-up: deliver what is queued, answer the publishes whose fence
   came back. */

static void
ngx_http_realtime_drain(void) noexcept
{
    ngx_http_realtime_groups_drain();
    ngx_http_realtime_cluster_fences();
    ngx_http_realtime_cluster_presence_drain_all();
}


/* Once a second: the elected roles (realtime_redis, the channel layer). */

static void
ngx_http_realtime_tick(void) noexcept
{
    ngx_http_realtime_cluster_tick();
    ngx_http_realtime_channels_tick();
}


/* Each worker joins the zones; its drain delivers to its groups. */

static ngx_int_t
ngx_http_realtime_init_process(ngx_cycle_t *cycle) noexcept
{
    if (ngx_http_realtime_worker_init(cycle, ngx_http_realtime_drain,
                                      ngx_http_realtime_client_control,
                                      ngx_http_realtime_tick)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* after the worker's slots: the elections need one */
    if (ngx_http_realtime_cluster_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_realtime_channels_init(cycle);
}


static void
ngx_http_realtime_exit_process(ngx_cycle_t *cycle) noexcept
{
    /* first: the roles name our slot's claim */
    ngx_http_realtime_channels_exit(cycle);
    ngx_http_realtime_auth_exit();
    ngx_http_realtime_cluster_exit(cycle);
    ngx_http_realtime_worker_exit(cycle);
}


static ngx_int_t
ngx_http_realtime_postconfiguration(ngx_conf_t *cf) noexcept
{
    if (ngx_http_realtime_relay_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_realtime_redact_init(cf);
}


static void *
ngx_http_realtime_create_main_conf(ngx_conf_t *cf) noexcept
{
    ngx_http_realtime_main_conf_t  *conf;

    conf = (ngx_http_realtime_main_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_realtime_main_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&conf->zones, cf->pool, 2,
                       sizeof(ngx_http_realtime_zone_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&conf->template_vars, cf->pool, 4, sizeof(ngx_int_t))
        != NGX_OK
        || ngx_array_init(&conf->relay_targets, cf->pool, 2, sizeof(void *))
           != NGX_OK)
    {
        return NULL;
    }

    return conf;
}


static void *
ngx_http_realtime_create_loc_conf(ngx_conf_t *cf) noexcept
{
    ngx_http_realtime_loc_conf_t  *conf;

    conf = (ngx_http_realtime_loc_conf_t *)
               ngx_pcalloc(cf->pool, sizeof(ngx_http_realtime_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->policy = NULL;
     *     conf->zone_name = { 0, NULL };
     *     conf->zone = NULL;
     *     conf->max_body_size = 0;
     */

    conf->websocket = NGX_CONF_UNSET;
    conf->publish = NGX_CONF_UNSET;
    conf->stats = NGX_CONF_UNSET;
    conf->subscribe = (ngx_array_t *) NGX_CONF_UNSET_PTR;
    conf->subprotocols = (ngx_array_t *) NGX_CONF_UNSET_PTR;
    conf->allowed_origins = (ngx_array_t *) NGX_CONF_UNSET_PTR;
    conf->max_message_size = NGX_CONF_UNSET_SIZE;
    conf->send_buffer_size = NGX_CONF_UNSET_SIZE;
    conf->ping_interval = NGX_CONF_UNSET_MSEC;
    conf->pong_timeout = NGX_CONF_UNSET_MSEC;
    conf->idle_timeout = NGX_CONF_UNSET_MSEC;
    conf->reload_spread = NGX_CONF_UNSET_MSEC;
    conf->eventsource = NGX_CONF_UNSET;
    conf->echo = NGX_CONF_UNSET;
    conf->publish_remote = NGX_CONF_UNSET;
    conf->stats_remote = NGX_CONF_UNSET;
    conf->jwt_sources = (ngx_array_t *) NGX_CONF_UNSET_PTR;
    conf->jwt_algorithms = (ngx_array_t *) NGX_CONF_UNSET_PTR;
    conf->jwt_leeway = NGX_CONF_UNSET;
    conf->jwt_cache_size = NGX_CONF_UNSET;
    conf->max_connections_per_user = NGX_CONF_UNSET_UINT;
    conf->client_publish = (ngx_array_t *) NGX_CONF_UNSET_PTR;
    conf->client_stamps = (ngx_array_t *) NGX_CONF_UNSET_PTR;
    conf->client_rate = NGX_CONF_UNSET_UINT;
    conf->client_burst = NGX_CONF_UNSET_UINT;
    conf->app_ping = NGX_CONF_UNSET;
    conf->allow_subscribe = (ngx_array_t *) NGX_CONF_UNSET_PTR;
    conf->presence = NGX_CONF_UNSET;
    conf->presence_leave_delay = NGX_CONF_UNSET_MSEC;
    conf->presence_max_list = NGX_CONF_UNSET_UINT;
    conf->history_size = NGX_CONF_UNSET_UINT;
    conf->history_ttl = NGX_CONF_UNSET_MSEC;
    conf->envelope = NGX_CONF_UNSET;
    conf->last_id = (ngx_http_complex_value_t *) NGX_CONF_UNSET_PTR;
    conf->relay = (ngx_http_realtime_relay_target_t *) NGX_CONF_UNSET_PTR;
    conf->relay_headers = (ngx_array_t *) NGX_CONF_UNSET_PTR;
    conf->relay_events = NGX_CONF_UNSET_UINT;
    conf->relay_queue = NGX_CONF_UNSET_UINT;
    conf->relay_timeout = NGX_CONF_UNSET_MSEC;

    return conf;
}


static ngx_int_t
ngx_http_realtime_copy_strings(ngx_array_t *from, std::vector<std::string> *to)
{
    ngx_str_t   *s;
    ngx_uint_t   i;

    if (from == NULL) {
        return NGX_OK;
    }

    s = (ngx_str_t *) from->elts;

    for (i = 0; i < from->nelts; i++) {
        to->emplace_back((const char *) s[i].data, s[i].len);
    }

    return NGX_OK;
}


static char *
ngx_http_realtime_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
    noexcept
{
    ngx_http_realtime_loc_conf_t  *prev = (ngx_http_realtime_loc_conf_t *) parent;
    ngx_http_realtime_loc_conf_t  *conf = (ngx_http_realtime_loc_conf_t *) child;

    /* handlers are per location: not inherited */
    if (conf->websocket == NGX_CONF_UNSET) {
        conf->websocket = 0;
    }

    if (conf->publish == NGX_CONF_UNSET) {
        conf->publish = 0;
    }

    if (conf->stats == NGX_CONF_UNSET) {
        conf->stats = 0;
    }

    if (conf->subscribe == NGX_CONF_UNSET_PTR) {
        conf->subscribe = NULL;
    }

    ngx_conf_merge_ptr_value(conf->subprotocols, prev->subprotocols, NULL);
    ngx_conf_merge_ptr_value(conf->allowed_origins, prev->allowed_origins, NULL);
    ngx_conf_merge_size_value(conf->max_message_size, prev->max_message_size,
                              64 * 1024);
    ngx_conf_merge_size_value(conf->send_buffer_size, prev->send_buffer_size,
                              1024 * 1024);
    ngx_conf_merge_msec_value(conf->ping_interval, prev->ping_interval, 30000);
    ngx_conf_merge_msec_value(conf->pong_timeout, prev->pong_timeout, 10000);
    ngx_conf_merge_msec_value(conf->idle_timeout, prev->idle_timeout, 0);
    ngx_conf_merge_msec_value(conf->reload_spread, prev->reload_spread, 2000);
    ngx_conf_merge_value(conf->eventsource, prev->eventsource, 0);
    ngx_conf_merge_value(conf->echo, prev->echo, 0);
    ngx_conf_merge_value(conf->publish_remote, prev->publish_remote, 0);
    ngx_conf_merge_value(conf->stats_remote, prev->stats_remote, 0);

    /* inherited by every level; checked for WebSocket locations */
    if (ngx_http_realtime_merge_auth(cf, prev, conf) != NGX_CONF_OK
        || ngx_http_realtime_merge_client(cf, prev, conf) != NGX_CONF_OK
        || ngx_http_realtime_merge_presence(cf, prev, conf) != NGX_CONF_OK
        || ngx_http_realtime_merge_relay(cf, prev, conf) != NGX_CONF_OK
        || ngx_http_realtime_merge_history(cf, prev, conf) != NGX_CONF_OK)
    {
        return (char *) NGX_CONF_ERROR;
    }

    if (conf->subscribe && !conf->websocket) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_subscribe\" needs \"realtime_websocket\" "
                           "in the same location");
        return (char *) NGX_CONF_ERROR;
    }

    if (conf->websocket + conf->publish + conf->stats > 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_websocket\", \"realtime_publish\" and "
                           "\"realtime_stats\" need separate locations");
        return (char *) NGX_CONF_ERROR;
    }

    if (!conf->websocket && !conf->publish && !conf->stats) {
        return NGX_CONF_OK;
    }

    if (ngx_http_realtime_merge_zone(cf, conf) != NGX_CONF_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    if (ngx_http_realtime_check_presence(cf, conf) != NGX_CONF_OK) {
        return (char *) NGX_CONF_ERROR;
    }

    if (conf->publish
        && ngx_http_realtime_publish_body_limits(cf, conf) != NGX_CONF_OK)
    {
        return (char *) NGX_CONF_ERROR;
    }

    if (conf->max_connections_per_user && conf->zone == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_max_connections_per_user\" needs a "
                           "\"realtime_zone\"");
        return (char *) NGX_CONF_ERROR;
    }

    if (!conf->websocket) {
        return NGX_CONF_OK;
    }

    if (conf->max_message_size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_max_message_size\" must be positive");
        return (char *) NGX_CONF_ERROR;
    }

    /* a message a client may send must fit when it is sent back */
    if (conf->echo
        && conf->send_buffer_size
           < conf->max_message_size + realtime::ws::kMaxServerHeader)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_send_buffer_size\" %uz cannot hold an "
                           "echo of \"realtime_max_message_size\" %uz and "
                           "its frame header (%uz bytes)",
                           conf->send_buffer_size, conf->max_message_size,
                           conf->max_message_size
                           + realtime::ws::kMaxServerHeader);
        return (char *) NGX_CONF_ERROR;
    }

    if (conf->ping_interval && conf->pong_timeout == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_pong_timeout\" must be positive "
                           "when pings are sent");
        return (char *) NGX_CONF_ERROR;
    }

    conf->policy = ngx_http_realtime_pool_new<realtime::ws::HandshakePolicy>(
                       cf->pool);
    if (conf->policy == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    try {
        ngx_http_realtime_copy_strings(conf->subprotocols,
                                       &conf->policy->subprotocols);
        ngx_http_realtime_copy_strings(conf->allowed_origins,
                                       &conf->policy->allowed_origins);

    } catch (...) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "out of memory while building the handshake "
                           "policy");
        return (char *) NGX_CONF_ERROR;
    }

    /*
     * Cookies and auth_request: without a list, only pages of this host
     * may open the socket (a list, or "*", says otherwise).
     */
    conf->policy->same_origin =
        ngx_http_realtime_ambient_credentials(cf, conf) ? true : false;

    return NGX_CONF_OK;
}


/*
 * realtime_websocket [zone=NAME];
 * realtime_publish [zone=NAME];
 * realtime_stats [zone=NAME];
 */

static char *
ngx_http_realtime_websocket(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_str_t                 *value;
    ngx_flag_t                *flag;
    ngx_http_core_loc_conf_t  *clcf;

    flag = (ngx_flag_t *) ((char *) conf + cmd->offset);

    if (*flag != NGX_CONF_UNSET) {
        return (char *) "is duplicate";
    }

    *flag = 1;

    value = (ngx_str_t *) cf->args->elts;

    if (cf->args->nelts == 2) {
        if (value[1].len <= 5
            || ngx_strncmp(value[1].data, "zone=", 5) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[1]);
            return (char *) NGX_CONF_ERROR;
        }

        rlcf->zone_name.data = value[1].data + 5;
        rlcf->zone_name.len = value[1].len - 5;
    }

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /*
     * Content handlers: they run after the access phase, so allow/deny,
     * auth_request and friends decide before any upgrade or publish.
     */
    if (flag == &rlcf->websocket) {
        clcf->handler = ngx_http_realtime_ws_handler;

    } else if (flag == &rlcf->publish) {
        clcf->handler = ngx_http_realtime_publish_handler;

    } else {
        clcf->handler = ngx_http_realtime_stats_handler;
    }

    return NGX_CONF_OK;
}


/* realtime_subscribe GROUP ...; each argument may contain variables */

static char *
ngx_http_realtime_subscribe(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_str_t                 *value, *claim;
    ngx_uint_t                 i;
    ngx_http_complex_value_t  *cv;

    if (rlcf->subscribe != NGX_CONF_UNSET_PTR) {
        return (char *) "is duplicate";
    }

    rlcf->subscribe = ngx_http_realtime_compile_args(cf);
    if (rlcf->subscribe == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    rlcf->subscribe_claims = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                              sizeof(ngx_str_t));
    if (rlcf->subscribe_claims == NULL) {
        return (char *) NGX_CONF_ERROR;
    }

    value = (ngx_str_t *) cf->args->elts;
    cv = (ngx_http_complex_value_t *) rlcf->subscribe->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        claim = (ngx_str_t *) ngx_array_push(rlcf->subscribe_claims);
        if (claim == NULL) {
            return (char *) NGX_CONF_ERROR;
        }

        ngx_http_realtime_claim_argument(&value[i], claim);

        if (cv[i - 1].lengths == NULL
            && !realtime::is_valid_group_name(ngx_http_realtime_sv(value[i])))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid group name \"%V\" (1-100 of "
                               "A-Z a-z 0-9 - _ . :)", &value[i]);
            return (char *) NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/*
 * zone=NAME, or the only realtime_zone. Publishing, stats and groups need
 * a zone; a plain WebSocket location uses one only to count connections.
 */

static char *
ngx_http_realtime_merge_zone(ngx_conf_t *cf, ngx_http_realtime_loc_conf_t *conf)
{
    ngx_http_realtime_main_conf_t  *rmcf;

    rmcf = (ngx_http_realtime_main_conf_t *)
               ngx_http_conf_get_module_main_conf(cf, ngx_realtime_module);

    if (conf->zone_name.len) {
        conf->zone = ngx_http_realtime_find_zone(cf, &conf->zone_name);

        if (conf->zone == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "unknown realtime_zone \"%V\"",
                               &conf->zone_name);
            return (char *) NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (rmcf->zones.nelts == 1) {
        conf->zone = ((ngx_http_realtime_zone_t **) rmcf->zones.elts)[0];
        return NGX_CONF_OK;
    }

    if (!conf->publish && !conf->stats && conf->subscribe == NULL
        && conf->client_publish == NULL && conf->allow_subscribe == NULL)
    {
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       rmcf->zones.nelts == 0
                       ? "groups, publishing and stats need a \"realtime_zone\""
                       : "several realtime zones are defined: "
                         "give \"zone=NAME\"");

    return (char *) NGX_CONF_ERROR;
}


/*
 * The publish handler parses the body in memory: its limit is the
 * location's client_max_body_size, which must be a size (0, "no limit",
 * would let one request take any amount of a worker's memory). The body
 * buffer is sized to the limit so nginx never spools it to a temporary
 * file, and the limit is checked by us so a too large body gets a JSON 413.
 */

static char *
ngx_http_realtime_publish_body_limits(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->client_max_body_size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_publish\" in location \"%V\" needs a "
                           "body limit, but \"client_max_body_size 0\" (no "
                           "limit) applies there: set a size in that location",
                           &clcf->name);
        return (char *) NGX_CONF_ERROR;
    }

    conf->max_body_size = (size_t) clcf->client_max_body_size;

    if (clcf->client_body_buffer_size < conf->max_body_size) {
        clcf->client_body_buffer_size = conf->max_body_size;
    }

    clcf->client_max_body_size = 0;

    return NGX_CONF_OK;
}
