/*
 * ngx_realtime_module: module definition, directives and configuration.
 */

#include "ngx_http_realtime_module.h"


static void *ngx_http_realtime_create_loc_conf(ngx_conf_t *cf) noexcept;
static char *ngx_http_realtime_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child) noexcept;
static char *ngx_http_realtime_websocket(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;


static ngx_command_t  ngx_http_realtime_commands[] = {

    { ngx_string("realtime_websocket"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_realtime_websocket,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("realtime_subprotocols"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_conf_set_str_array_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, subprotocols),
      NULL },

    { ngx_string("realtime_allowed_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_conf_set_str_array_slot,
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

    { ngx_string("realtime_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, idle_timeout),
      NULL },

    { ngx_string("realtime_echo"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_realtime_loc_conf_t, echo),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_realtime_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
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
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


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
     */

    conf->websocket = NGX_CONF_UNSET;
    conf->subprotocols = (ngx_array_t *) NGX_CONF_UNSET_PTR;
    conf->allowed_origins = (ngx_array_t *) NGX_CONF_UNSET_PTR;
    conf->max_message_size = NGX_CONF_UNSET_SIZE;
    conf->send_buffer_size = NGX_CONF_UNSET_SIZE;
    conf->ping_interval = NGX_CONF_UNSET_MSEC;
    conf->pong_timeout = NGX_CONF_UNSET_MSEC;
    conf->idle_timeout = NGX_CONF_UNSET_MSEC;
    conf->echo = NGX_CONF_UNSET;

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

    ngx_conf_merge_value(conf->websocket, prev->websocket, 0);
    ngx_conf_merge_ptr_value(conf->subprotocols, prev->subprotocols, NULL);
    ngx_conf_merge_ptr_value(conf->allowed_origins, prev->allowed_origins, NULL);
    ngx_conf_merge_size_value(conf->max_message_size, prev->max_message_size,
                              64 * 1024);
    ngx_conf_merge_size_value(conf->send_buffer_size, prev->send_buffer_size,
                              1024 * 1024);
    ngx_conf_merge_msec_value(conf->ping_interval, prev->ping_interval, 30000);
    ngx_conf_merge_msec_value(conf->pong_timeout, prev->pong_timeout, 10000);
    ngx_conf_merge_msec_value(conf->idle_timeout, prev->idle_timeout, 0);
    ngx_conf_merge_value(conf->echo, prev->echo, 0);

    if (!conf->websocket) {
        return NGX_CONF_OK;
    }

    if (conf->max_message_size == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"realtime_max_message_size\" must be positive");
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
        return (char *) NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_realtime_websocket(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
    noexcept
{
    ngx_http_realtime_loc_conf_t *rlcf = (ngx_http_realtime_loc_conf_t *) conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (rlcf->websocket != NGX_CONF_UNSET) {
        return (char *) "is duplicate";
    }

    rlcf->websocket = 1;

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /*
     * A content handler: it runs after the access phase, so allow/deny,
     * auth_request and friends decide before any upgrade happens.
     */
    clcf->handler = ngx_http_realtime_ws_handler;

    return NGX_CONF_OK;
}
