/*
 * ngx_realtime_module: who may use the publish and stats locations.
 *
 * Both are closed to other hosts unless the location says otherwise
 * (realtime_publish_remote, realtime_stats_remote). "This host" is decided
 * by the address the request came IN ON, never by the client's address:
 * the realip module rewrites c->sockaddr from a header (X-Real-IP,
 * X-Forwarded-For) or from the PROXY protocol line, so a client address
 * of 127.0.0.1 proves nothing. The local address is the socket's own and
 * nothing the client sends can change it.
 *
 * A loopback local address does prove a peer in this network namespace:
 * Linux drops packets for 127.0.0.0/8 (and ::1) that arrive on any other
 * interface as martians (unless route_localnet is turned on), so only a
 * process on this host can reach a loopback address. A unix socket is
 * reachable only through the file system, also from this host.
 */

#include "ngx_http_realtime_module.h"

#include <string>


static ngx_flag_t ngx_http_realtime_is_loopback(struct sockaddr *sa);


/*
 * Returns NGX_DECLINED when r may go on: it came in on a loopback or
 * unix-socket listener, or remote is on. Otherwise refuses r with 403 and
 * a JSON body and returns what a content handler returns.
 *
 * what names the action in the log line and the body ("publishing",
 * "reading stats"); directive is the one that opens it to other hosts.
 */

ngx_int_t
ngx_http_realtime_local_only(ngx_http_request_t *r, ngx_flag_t remote,
    const char *what, const char *directive) noexcept
{
    u_char             text[NGX_SOCKADDR_STRLEN];
    ngx_str_t          local;
    ngx_connection_t  *c;

    if (remote) {
        return NGX_DECLINED;
    }

    c = r->connection;

    /*
     * On a wildcard listener c->local_sockaddr is 0.0.0.0 or ::, and this
     * asks the socket for the real address. The text is for the log line.
     */
    local.data = text;
    local.len = NGX_SOCKADDR_STRLEN;

    if (ngx_connection_local_sockaddr(c, &local, 1) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_realtime_is_loopback(c->local_sockaddr)) {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "realtime: %s refused: the request came in on %V, not on a "
                  "loopback or unix-socket listener; see \"%s\"",
                  what, &local, directive);

    try {
        return ngx_http_realtime_send_error(r, NGX_HTTP_FORBIDDEN,
                   std::string(what) + " is only allowed from this host "
                   "(a loopback or unix-socket listener)");

    } catch (...) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


/* 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104, and unix sockets */

static ngx_flag_t
ngx_http_realtime_is_loopback(struct sockaddr *sa)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    if (sa == NULL) {
        return 0;
    }

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;

        if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) {
            return 1;
        }

        /* a dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d */
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            return sin6->sin6_addr.s6_addr[12] == 127;
        }

        return 0;
#endif

#if (NGX_HAVE_UNIX_DOMAIN)
    case AF_UNIX:
        return 1;
#endif

    default:
        return 0;
    }
}
