/*
 * ngx_realtime_module: relaying client messages and connection events to
 * the app over HTTP (realtime_relay), and acting on its answers.
 *
 * Each connection has a stream: its messages, in order, one request in
 * flight, a bounded queue behind it (a full queue holds the socket's
 * input). A stream outlives its connection until the messages it holds and
 * the disconnect event have reached the app.
 */

#pragma once

#include "ngx_http_realtime_session.h"


#define NGX_HTTP_REALTIME_RELAY_CONNECT     0x01
#define NGX_HTTP_REALTIME_RELAY_DISCONNECT  0x02


/* configuration */
char *ngx_http_realtime_relay_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_relay_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_relay_events(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf) noexcept;
char *ngx_http_realtime_merge_relay(ngx_conf_t *cf,
    ngx_http_realtime_loc_conf_t *prev, ngx_http_realtime_loc_conf_t *conf);

/* postconfiguration: every realtime_relay's addresses, upstream{} blocks
   included (they may come after the locations that name them) */
ngx_int_t ngx_http_realtime_relay_init(ngx_conf_t *cf) noexcept;

/* Before the 101: the stream and its request headers. NGX_OK, or an HTTP
   status to refuse the handshake with. */
ngx_int_t ngx_http_realtime_relay_prepare(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s) noexcept;

/* After the 101 and the welcome: the connect event, if asked for. */
void ngx_http_realtime_relay_open(ngx_http_realtime_session_t *s) noexcept;

/* Relays one client text message (json: it parsed as JSON). */
void ngx_http_realtime_relay_message(ngx_http_realtime_session_t *s,
    std::string_view payload, bool json) noexcept;

/* The connection is going: the disconnect event, if asked for; the stream
   finishes what it holds on its own. */
void ngx_http_realtime_relay_close(ngx_http_realtime_session_t *s) noexcept;
