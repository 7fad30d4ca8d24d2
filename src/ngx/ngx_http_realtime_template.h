/*
 * ngx_realtime_module: JSON templates in nginx.conf (realtime_welcome,
 * realtime_client_stamp, realtime_presence info= and its event shapes).
 *
 * A template names nginx variables; their values are captured once, at
 * the handshake, into the session (the request is gone after the 101), so
 * a template can be rendered at any later time: a presence event when the
 * user subscribes on the fly, a leave when the connection closes.
 */

#pragma once

#include "ngx_http_realtime_session.h"


/* What a presence event template may name besides nginx variables. */
typedef struct {
    std::string_view  event;     /* $presence_event: "join" or "leave" */
    std::string_view  group;     /* $presence_group */
    std::string_view  user;      /* $presence_user */
    std::string_view  info;      /* $presence_info (JSON) */
} ngx_http_realtime_presence_values_t;


/*
 * Compiles text (a directive argument) into *out, allocated in cf->pool.
 * presence: the $presence_* names are allowed. An error is logged with
 * the directive's line and NGX_CONF_ERROR returned.
 */
char *ngx_http_realtime_template_compile(ngx_conf_t *cf, ngx_str_t *text,
    bool presence, realtime::JsonTemplate **out) noexcept;

/* Evaluates the variables of tpl for s (before the 101). */
ngx_int_t ngx_http_realtime_template_capture(ngx_http_request_t *r,
    ngx_http_realtime_session_t *s, const realtime::JsonTemplate *tpl)
    noexcept;

/* Renders tpl with the values captured in s (and p for presence events).
   May throw std::bad_alloc. */
std::string ngx_http_realtime_template_render(
    const realtime::JsonTemplate *tpl, ngx_http_realtime_session_t *s,
    const ngx_http_realtime_presence_values_t *p = nullptr);
