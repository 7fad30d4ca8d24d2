/*
 * ngx_realtime_module: the content handler that answers the WebSocket
 * opening handshake. The decision itself is made by the core
 * (realtime::ws::check_handshake); this file gathers the request's headers,
 * sends either the 101 or a JSON error, and hands the connection over.
 */

#include "ngx_http_realtime_handshake.h"

#include "core/group_name.h"
#include "ngx_http_realtime_auth.h"
#include "ngx_http_realtime_client.h"
#include "ngx_http_realtime_cluster_resume.h"
#include "ngx_http_realtime_groups.h"
#include "ngx_http_realtime_heartbeat.h"
#include "ngx_http_realtime_history.h"
#include "ngx_http_realtime_messages.h"
#include "ngx_http_realtime_presence.h"
#include "ngx_http_realtime_redact.h"
#include "ngx_http_realtime_relay.h"


static void ngx_http_realtime_release(ngx_http_realtime_session_t *s)
    noexcept;


/* What an accepted connection's session calls back into. */
static const ngx_http_realtime_session_handlers_t  ngx_http_realtime_handlers = {
    ngx_http_realtime_messages_dispatch,
    ngx_http_realtime_release,
};


/* The connection goes: the app hears of it (with its groups), then the
   groups let it go. */

static void
ngx_http_realtime_release(ngx_http_realtime_session_t *s) noexcept
{
    ngx_http_realtime_relay_close(s);
    ngx_http_realtime_groups_leave_all(s);
}


static void ngx_http_realtime_collect(ngx_http_request_t *r,
    realtime::ws::HandshakeRequest *hr);
static ngx_int_t ngx_http_realtime_groups(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_http_realtime_session_t *s,
    ngx_array_t *groups);
static ngx_int_t ngx_http_realtime_add_group(ngx_http_request_t *r,
    ngx_array_t *groups, ngx_str_t *value);
static ngx_int_t ngx_http_realtime_join(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_http_realtime_session_t *s,
    ngx_array_t *groups);
static ngx_int_t ngx_http_realtime_refuse(ngx_http_request_t *r,
    const realtime::ws::HandshakeResult &res);
static bool ngx_http_realtime_stream_chunked(ngx_http_request_t *r);
static ngx_int_t ngx_http_realtime_stream_headers(ngx_http_request_t *r,
    const realtime::ws::HandshakeRequest &hr);


ngx_int_t
ngx_http_realtime_ws_handler(ngx_http_request_t *r) noexcept
{
    ngx_int_t                      rc;
    ngx_array_t                    groups;
    ngx_http_realtime_session_t   *s;
    ngx_http_realtime_loc_conf_t  *rlcf;

    if (r != r->main) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rlcf = (ngx_http_realtime_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_realtime_module);

    /* before anything is logged; a no-op when the preaccess phase did it */
    if (ngx_http_realtime_redact(r, rlcf) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    realtime::ws::HandshakeRequest  hr;

    try {
        ngx_http_realtime_collect(r, &hr);

        realtime::ws::HandshakeResult res =
            realtime::ws::check_handshake(hr, *rlcf->policy);

        /*
         * A plain GET (no Upgrade at all) is an event stream where the
         * location offers one. Elsewhere it is still told who it is before
         * the 426: a page whose WebSocket failed (the browser hides the
         * status) asks this way whether its token is the reason.
         */
        bool  plain = (res.status == 426 && hr.upgrade.empty());
        bool  stream = false;

        /*
         * HEAD asks the same without opening anything (a probe that joins
         * no group and makes no presence flap): the answer of a GET,
         * header only.
         */
        bool  probe = (r->method == NGX_HTTP_HEAD && hr.upgrade.empty());

        if (probe) {
            realtime::ws::HandshakeRequest  get = hr;

            get.method = "GET";
            res = realtime::ws::check_eventsource(get, *rlcf->policy);

            if (res.status == NGX_HTTP_OK && !rlcf->eventsource) {
                res.status = 426;
                res.reason = "this location only speaks WebSocket "
                             "(Upgrade: websocket)";
            }

            plain = (res.status == NGX_HTTP_OK || res.status == 426);

        } else if (hr.upgrade.empty() && rlcf->eventsource) {
            res = realtime::ws::check_eventsource(hr, *rlcf->policy);
            stream = (res.status == NGX_HTTP_OK);
            plain = false;
        }

        if ((res.status == 101 || stream)
            && (r->headers_in.content_length_n > 0 || r->headers_in.chunked))
        {
            res.status = 400;
            res.reason = stream ? "an event stream request must not have a body"
                                : "WebSocket handshake must not have a body";
            stream = false;
        }

        if (res.status != 101 && !stream && !plain) {
            return ngx_http_realtime_refuse(r, res);
        }

        /* a handshake run again after a resume's fetch (cluster_resume) */
        auto  *fetching = (ngx_http_realtime_session_t *)
                              ngx_http_get_module_ctx(r, ngx_realtime_module);

        s = ngx_http_realtime_session_create(r, rlcf,
                                             &ngx_http_realtime_handlers);
        if (s == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (fetching && fetching->fetched) {
            s->fetched = std::move(fetching->fetched);
        }

        if (stream) {
            s->eventsource = true;
            s->sse_chunked = ngx_http_realtime_stream_chunked(r);
        }

        std::string_view  refusal;

        rc = ngx_http_realtime_authenticate(r, rlcf, s, &refusal);
        if (rc != NGX_OK) {
            return refusal.empty() ? rc
                                   : ngx_http_realtime_send_error(r, rc, refusal);
        }

        rc = ngx_http_realtime_identify(r, rlcf, s);

        if (rc == NGX_DECLINED) {
            return ngx_http_realtime_send_error(r, NGX_HTTP_FORBIDDEN,
                       s->jwt_claims ? "the token names no user"
                                     : "authenticated, but no user");
        }

        if (rc == NGX_ABORT) {
            return ngx_http_realtime_send_error(r, NGX_HTTP_FORBIDDEN,
                                                "realtime_user is too long");
        }

        if (rc != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (plain && res.status == NGX_HTTP_OK) {
            /* a probe of an event stream location, authenticated: the
               stream's header, and the connection may stay */
            unsigned  keepalive = r->keepalive;

            if (ngx_http_realtime_stream_headers(r, hr) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            r->keepalive = keepalive;

            return ngx_http_send_header(r);
        }

        if (plain) {
            return ngx_http_realtime_refuse(r, res);    /* 426, authenticated */
        }

        if (ngx_array_init(&groups, r->pool, 4, sizeof(ngx_str_t)) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_realtime_groups(r, rlcf, s, &groups);
        if (rc == NGX_HTTP_BAD_REQUEST) {
            return ngx_http_realtime_send_error(r, rc,
                       "invalid group name (1-100 of A-Z a-z 0-9 - _ . :)");
        }

        if (rc != NGX_OK) {
            return rc;
        }

        rc = ngx_http_realtime_client_prepare(r, s);
        if (rc == NGX_HTTP_BAD_REQUEST) {
            return ngx_http_realtime_send_error(r, rc,
                       "invalid group name (1-100 of A-Z a-z 0-9 - _ . :)");
        }

        if (rc != NGX_OK) {
            return rc;
        }

        if (ngx_http_realtime_presence_prepare(r, s) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ngx_http_realtime_history_prepare(r, s) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /*
         * The greeting is the first frame after the 101: queued before the
         * join, which queues what a resume missed.
         */
        if (ngx_http_realtime_client_welcome(s) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* an event stream sends nothing to relay */
        rc = s->eventsource ? NGX_OK : ngx_http_realtime_relay_prepare(r, s);
        if (rc != NGX_OK) {
            return (rc == NGX_HTTP_FORBIDDEN || rc == NGX_HTTP_BAD_REQUEST)
                   ? ngx_http_realtime_send_error(r, rc,
                         "the connection's identity cannot be relayed")
                   : rc;
        }

        if (rlcf->zone) {
            /* what this node's history cannot answer, Redis may */
            rc = ngx_http_realtime_cluster_resume(r, s, &groups);

            if (rc == NGX_AGAIN) {
                return NGX_DONE;    /* this handler runs again */
            }

            if (rc != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            rc = ngx_http_realtime_join(r, rlcf, s, &groups);

            if (rc == NGX_BUSY) {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "realtime: handshake refused with 429: user "
                              "\"%*s\" has %ui connections already",
                              s->user.size(), s->user.data(),
                              rlcf->max_connections_per_user);
                return ngx_http_realtime_send_error(r,
                           NGX_HTTP_TOO_MANY_REQUESTS,
                           "too many connections for this user");
            }

            if (rc == NGX_DECLINED) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "realtime: zone \"%V\" is full or this worker "
                              "has no slot in it, handshake refused",
                              &rlcf->zone->name);
                return ngx_http_realtime_send_error(r,
                           NGX_HTTP_SERVICE_UNAVAILABLE,
                           "realtime zone is full, try again later");
            }

            if (rc != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }
        }

        if (s->eventsource) {
            if (ngx_http_realtime_stream_headers(r, hr) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            goto send;
        }

        r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
        ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
        r->headers_out.content_length_n = -1;
        r->keepalive = 0;

        if (ngx_http_realtime_add_header(r, "Upgrade", "websocket") != NGX_OK
            || ngx_http_realtime_add_header(r, "Sec-WebSocket-Accept",
                                            res.accept) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (!res.subprotocol.empty()
            && ngx_http_realtime_add_header(r, "Sec-WebSocket-Protocol",
                                            res.subprotocol) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "realtime: handshake failed: out of memory");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

send:

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    if (s->eventsource && (bool) r->chunked != s->sse_chunked) {
        /* the events queued so far are framed for the other way */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "realtime: the event stream's chunking is not what "
                      "was expected, closing");
        return NGX_ERROR;
    }

    /* push the 101 to the socket now, as ngx_http_upstream_upgrade() does */
    if (ngx_http_send_special(r, NGX_HTTP_FLUSH) == NGX_ERROR) {
        return NGX_ERROR;
    }

    /* after the greeting (queued before the join): the app hears */
    ngx_http_realtime_relay_open(s);

    ngx_http_realtime_heartbeat_start(s);

    return ngx_http_realtime_session_start(s);
}


/*
 * Evaluates realtime_subscribe: one group per argument, empty values
 * skipped, duplicates joined once; an invalid name refuses the handshake.
 * An argument that is just $jwt_claim_NAME, where the claim is an array,
 * gives one group per element (tokens that list their groups).
 */

static ngx_int_t
ngx_http_realtime_groups(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_http_realtime_session_t *s,
    ngx_array_t *groups)
{
    if (rlcf->subscribe == NULL) {
        return NGX_OK;
    }

    return ngx_http_realtime_auth_names(r, s, rlcf->subscribe,
               rlcf->subscribe_claims,
               [](ngx_http_request_t *r, void *ctx, ngx_str_t *value) {
                   return ngx_http_realtime_add_group(r, (ngx_array_t *) ctx,
                                                      value);
               }, groups);
}


/*
 * Joins the groups in the zone, with presence where the location tracks
 * it. A connection with a user also joins "~user:USER" (a name no client
 * can use: "~" is not allowed), through which the app's actions by user
 * reach it, and which realtime_max_connections_per_user counts.
 */

static ngx_int_t
ngx_http_realtime_join(ngx_http_request_t *r,
    ngx_http_realtime_loc_conf_t *rlcf, ngx_http_realtime_session_t *s,
    ngx_array_t *groups)
{
    ngx_uint_t   i;
    ngx_str_t    user_key = ngx_null_string, *name;

    if (!s->user.empty()) {
        user_key.len = sizeof("~user:") - 1 + s->user.size();
        user_key.data = (u_char *) ngx_pnalloc(r->pool, user_key.len);
        if (user_key.data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(ngx_cpymem(user_key.data, "~user:", 6), s->user.data(),
                   s->user.size());
    }

    std::vector<ngx_http_realtime_presence_spec_t>  holders;
    std::vector<const realtime::PresenceSpec *>      specs;

    if (s->presence) {
        name = (ngx_str_t *) groups->elts;
        holders.resize(groups->nelts);

        for (i = 0; i < groups->nelts; i++) {
            specs.push_back(ngx_http_realtime_presence_spec(s,
                                ngx_http_realtime_sv(name[i]), &holders[i]));
        }
    }

    return ngx_http_realtime_groups_join(s, groups,
               specs.empty() ? NULL : specs.data(),
               user_key.len ? &user_key : NULL,
               rlcf->max_connections_per_user);
}


static ngx_int_t
ngx_http_realtime_add_group(ngx_http_request_t *r, ngx_array_t *groups,
    ngx_str_t *value)
{
    u_char      *copy;
    ngx_str_t   *name;
    ngx_uint_t   j;

    if (value->len == 0) {
        return NGX_OK;
    }

    if (!realtime::is_valid_group_name(ngx_http_realtime_sv(*value))) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "realtime: handshake refused with 400: "
                      "invalid group name \"%V\"", value);

        return NGX_HTTP_BAD_REQUEST;
    }

    name = (ngx_str_t *) groups->elts;

    for (j = 0; j < groups->nelts; j++) {
        if (name[j].len == value->len
            && ngx_memcmp(name[j].data, value->data, value->len) == 0)
        {
            return NGX_OK;
        }
    }

    /* claim strings live in the token's JSON: copy to the request pool */
    copy = (u_char *) ngx_pnalloc(r->pool, value->len);
    if (copy == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(copy, value->data, value->len);

    name = (ngx_str_t *) ngx_array_push(groups);
    if (name == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    name->data = copy;
    name->len = value->len;

    return NGX_OK;
}


/* Gathers what check_handshake() needs; every occurrence of a header counts. */

static void
ngx_http_realtime_collect(ngx_http_request_t *r,
    realtime::ws::HandshakeRequest *hr)
{
    hr->method = ngx_http_realtime_sv(r->method_name);
    hr->http_major = (int) (r->http_version / 1000);
    hr->http_minor = (int) (r->http_version % 1000);

    ngx_http_realtime_each_header(r,
        [hr](std::string_view name, std::string_view value) {

        if (ngx_http_realtime_header_is(name, "Upgrade")) {
            hr->upgrade.push_back(value);

        } else if (ngx_http_realtime_header_is(name, "Connection")) {
            hr->connection.push_back(value);

        } else if (ngx_http_realtime_header_is(name, "Sec-WebSocket-Key")) {
            hr->key.push_back(value);

        } else if (ngx_http_realtime_header_is(name, "Sec-WebSocket-Version")) {
            hr->version.push_back(value);

        } else if (ngx_http_realtime_header_is(name, "Sec-WebSocket-Protocol")) {
            hr->protocols.push_back(value);

        } else if (ngx_http_realtime_header_is(name, "Origin")) {
            hr->has_origin = true;
            hr->origin = value;

        } else if (ngx_http_realtime_header_is(name, "Host")) {
            hr->host = value;
        }

        return false;
    });
}


/* The answer to a handshake the core refused, with the headers it needs. */

static ngx_int_t
ngx_http_realtime_refuse(ngx_http_request_t *r,
    const realtime::ws::HandshakeResult &res)
{
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "realtime: handshake refused with %d: %*s",
                  res.status, res.reason.size(), res.reason.data());

    if (res.status == NGX_HTTP_NOT_ALLOWED) {
        if (ngx_http_realtime_add_header(r, "Allow", "GET") != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (res.status == 426) {
        if (ngx_http_realtime_add_header(r, "Upgrade", "websocket") != NGX_OK
            || ngx_http_realtime_add_header(r, "Sec-WebSocket-Version", "13")
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    return ngx_http_realtime_send_error(r, res.status, res.reason);
}


/*
 * Whether nginx's chunked filter will frame the stream: it does for an
 * HTTP/1.1 response of unknown length where chunked_transfer_encoding is
 * on. Known before the header goes, because the greeting and a resume's
 * replay are queued before it.
 */

static bool
ngx_http_realtime_stream_chunked(ngx_http_request_t *r)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = (ngx_http_core_loc_conf_t *)
               ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    return r->http_version >= NGX_HTTP_VERSION_11
           && clcf->chunked_transfer_encoding;
}


/* The response header of an event stream. */

static ngx_int_t
ngx_http_realtime_stream_headers(ngx_http_request_t *r,
    const realtime::ws::HandshakeRequest &hr)
{
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    ngx_str_set(&r->headers_out.content_type, "text/event-stream");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.charset.len = 0;

    /* one response per connection: the stream ends when the connection
       does */
    r->keepalive = 0;

#if (NGX_HTTP_GZIP)
    /* the events bypass the body filters: nothing may transform them */
    r->gzip_tested = 1;
    r->gzip_ok = 0;
#endif

    /* X-Accel-Buffering: a proxying nginx in front passes events at once */
    if (ngx_http_realtime_add_header(r, "Cache-Control", "no-cache")
            != NGX_OK
        || ngx_http_realtime_add_header(r, "X-Accel-Buffering", "no") != NGX_OK)
    {
        return NGX_ERROR;
    }

    /*
     * An Origin the rules let through (check_eventsource) may read the
     * stream with the visitor's credentials, as it may open the WebSocket.
     */
    if (hr.has_origin && !hr.origin.empty()) {
        if (ngx_http_realtime_add_header(r, "Access-Control-Allow-Origin",
                                         hr.origin) != NGX_OK
            || ngx_http_realtime_add_header(r,
                   "Access-Control-Allow-Credentials", "true") != NGX_OK
            || ngx_http_realtime_add_header(r, "Vary", "Origin") != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
