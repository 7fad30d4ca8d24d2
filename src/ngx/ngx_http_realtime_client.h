/*
 * ngx_realtime_module: what a client's own messages do. Broadcasting them
 * to groups with fields stamped by the server (realtime_client_publish,
 * realtime_client_stamp), the rate limit, the app-level ping, the greeting
 * (realtime_welcome), subscribing on the fly (realtime_allow_subscribe),
 * and the actions the app takes on a user's connections (control
 * messages delivered here).
 */

#pragma once

#include "ngx_http_realtime_session.h"


/* configuration */
char *ngx_http_realtime_client_publish_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf) noexcept;
char *ngx_http_realtime_client_stamp(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_client_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_welcome(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_allow_subscribe(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_merge_client(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *prev, ngx_http_realtime_loc_conf_t *conf);

/*
 * Before the 101: evaluates what client messages need of the handshake
 * (their groups, the stamps, the subscribe patterns). NGX_OK, or an HTTP
 * status to refuse with (400: a group name is invalid).
 */
ngx_int_t ngx_http_realtime_client_prepare(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s) noexcept;

/* Queues the realtime_welcome message, the first frame after the 101. */
ngx_int_t ngx_http_realtime_client_welcome(ngx_http_realtime_session_t *s)
    noexcept;

/* Whether s may send another message now (realtime_client_rate); false:
   it was answered with an error, or is being closed. */
bool ngx_http_realtime_client_admit(ngx_http_realtime_session_t *s) noexcept;

/* Dispatcher rows: {"type":"ping"}, "subscribe", "unsubscribe". */
void ngx_http_realtime_client_ping(ngx_http_realtime_session_t *s,
    json_t *message) noexcept;
void ngx_http_realtime_client_subscribe(ngx_http_realtime_session_t *s,
    json_t *message) noexcept;
void ngx_http_realtime_client_unsubscribe(ngx_http_realtime_session_t *s,
    json_t *message) noexcept;

/*
 * Broadcasts a client message to the location's realtime_client_publish
 * groups. message is the payload parsed (NULL when it is not JSON).
 */
void ngx_http_realtime_client_publish(ngx_http_realtime_session_t *s,
    realtime::ws::Opcode op, std::string_view payload, json_t *message)
    noexcept;

/* Whether realtime_client_publish broadcasts this message (any message
   without types=; with it, an object of a listed type). */
bool ngx_http_realtime_client_takes(ngx_http_realtime_loc_conf_t *conf,
    json_t *message) noexcept;

/* Whether a message type is one the module handles or sends itself. */
bool ngx_http_realtime_client_reserved(std::string_view type) noexcept;

/* An action by user for s (the worker's control handler). */
void ngx_http_realtime_client_control(ngx_http_realtime_session_t *s,
    std::string_view instruction) noexcept;
