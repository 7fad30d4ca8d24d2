/*
 * ngx_realtime_module: authenticated handshakes (JWT in the worker, or
 * auth_request before us), the identity they give a connection, and the
 * in-band token refresh.
 */

#pragma once

#include "ngx_http_realtime_session.h"


/* configuration */
char *ngx_http_realtime_auth_jwt(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_auth_jwt_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_auth_jwt_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_merge_auth(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *prev, ngx_http_realtime_loc_conf_t *conf);
ngx_int_t ngx_http_realtime_add_variables(ngx_conf_t *cf) noexcept;

/* Whether the browser sends this location's credential by itself (a cookie
   JWT source, or auth_request): then origins default to the same origin. */
ngx_flag_t ngx_http_realtime_ambient_credentials(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *conf);

/* One realtime_auth_jwt source's token, "Bearer " stripped. */
ngx_int_t ngx_http_realtime_token_source(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_str_t *token);

/*
 * Verifies the handshake's token into s. Returns NGX_OK, or the HTTP
 * status to refuse with and, in *refusal, the reason to answer.
 */
ngx_int_t ngx_http_realtime_authenticate(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_http_realtime_session_t *s,
    std::string_view *refusal);

/* Sets s->user from realtime_user; NGX_DECLINED when it is empty. */
ngx_int_t ngx_http_realtime_identify(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_http_realtime_session_t *s);

/*
 * Evaluates a list of names (realtime_subscribe, realtime_allow_subscribe)
 * compiled as complex values, with the claim each argument names alone
 * (ngx_http_realtime_claim_argument): an array claim gives one name per
 * element. add() takes each; a result other than NGX_OK stops and is
 * returned.
 */
ngx_int_t ngx_http_realtime_auth_names(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s, ngx_array_t *args, ngx_array_t *claims,
    ngx_int_t (*add)(ngx_http_request_t *r, void *ctx, ngx_str_t *value),
    void *ctx);

/* Frees this worker's caches of verified tokens (exit_process). */
void ngx_http_realtime_auth_exit() noexcept;

/* {"type":"refresh","token":"..."} (a row of the message dispatcher). */
void ngx_http_realtime_auth_refresh(ngx_http_realtime_session_t *s,
    json_t *message) noexcept;
