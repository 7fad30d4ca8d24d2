// echo_app: the trivial upstream of bench/run's relay_rtt scenario.
//
// The least an app behind `realtime_relay` can do: a single-threaded epoll
// HTTP/1.1 keep-alive server on one port that answers every
//   POST <any path>  (Content-Length body)  -> 200, Content-Type
//                                              application/json, Content-Length,
//                                              body {"reply":<the request body>}
// (a text/plain body is sent back as a JSON string, so the answer is always
// JSON), and
//   GET /stats                              -> {"requests":N,"connections":N,"open":N}
// requests: POSTs answered; connections: connections accepted that sent at
// least one POST (so the runner's /stats probes are not counted); open: those
// still open. Pipelined requests are answered with one send() per read.
// TCP_NODELAY on every connection. No chunked request bodies (411, close).
//
// The module relays to it (ours), and the load generator posts to it directly
// (the baseline "direct"): the difference is what the module adds.
//
// usage: echo_app --port P [--host 127.0.0.1]

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Conn {
    int fd = -1;
    bool want_out = false;
    bool posted = false;      // sent at least one POST
    bool close_after = false; // Connection: close
    std::string in, out;
};

int ep = -1;
volatile sig_atomic_t stop_flag = 0;
unsigned long long n_requests = 0, n_posting_conns = 0, n_open_posting = 0;

void on_signal(int) { stop_flag = 1; }

void ep_mod(Conn *c) {
    epoll_event ev{};
    ev.events = EPOLLIN | (c->want_out ? uint32_t(EPOLLOUT) : 0u);
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

void drop(Conn *c) {
    if (c->posted) n_open_posting--;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, nullptr);
    close(c->fd);
    delete c;
}

// Writes c->out; false when the connection was dropped.
bool flush(Conn *c) {
    while (!c->out.empty()) {
        ssize_t w = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (!c->want_out) {
                    c->want_out = true;
                    ep_mod(c);
                }
                return true;
            }
            drop(c);
            return false;
        }
        c->out.erase(0, size_t(w));
    }
    if (c->want_out) {
        c->want_out = false;
        ep_mod(c);
    }
    if (c->close_after) {
        drop(c);
        return false;
    }
    return true;
}

// The value of header name in head (the request line and headers), or "".
std::string header_value(const char *head, size_t hlen, const char *name) {
    size_t nl = std::strlen(name);
    const char *p = static_cast<const char *>(std::memchr(head, '\n', hlen));
    const char *end = head + hlen;
    while (p && p + 1 < end) {
        p++;
        const char *e = static_cast<const char *>(std::memchr(p, '\n', size_t(end - p)));
        if (!e) e = end;
        if (size_t(e - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            while (v < e && (*v == ' ' || *v == '\t')) v++;
            const char *ve = e;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            return std::string(v, size_t(ve - v));
        }
        p = e;
    }
    return std::string();
}

void append_response(Conn *c, int code, const char *reason, const std::string &body) {
    char head[160];
    int n = std::snprintf(head, sizeof head,
                          "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          code, reason, body.size());
    c->out.append(head, size_t(n));
    c->out += body;
}

void append_json_string(std::string &out, const char *p, size_t n) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = static_cast<unsigned char>(p[i]);
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += char(ch);
        } else if (ch < 0x20) {
            out += "\\u00";
            out += hex[ch >> 4];
            out += hex[ch & 15];
        } else {
            out += char(ch);
        }
    }
    out += '"';
}

// Answers every complete request in c->in; false when c was dropped.
bool handle(Conn *c) {
    size_t off = 0;
    for (;;) {
        const char *base = c->in.data() + off;
        size_t avail = c->in.size() - off;
        const char *hend = static_cast<const char *>(memmem(base, avail, "\r\n\r\n", 4));
        if (!hend) {
            if (avail > 65536) {
                drop(c);
                return false;
            }
            break;
        }
        size_t hlen = size_t(hend - base) + 2;
        bool is_post = avail >= 5 && std::memcmp(base, "POST ", 5) == 0;
        if (strcasestr(header_value(base, hlen, "Connection").c_str(), "close"))
            c->close_after = true;
        if (is_post) {
            if (!header_value(base, hlen, "Transfer-Encoding").empty()) {
                append_response(c, 411, "Length Required", "{\"error\":\"length required\"}");
                c->close_after = true;
                off = c->in.size();
                break;
            }
            size_t clen = size_t(std::strtoull(header_value(base, hlen, "Content-Length").c_str(),
                                               nullptr, 10));
            size_t total = hlen + 2 + clen;
            if (avail < total) break;
            const char *body = base + hlen + 2;
            if (!c->posted) {
                c->posted = true;
                n_posting_conns++;
                n_open_posting++;
            }
            n_requests++;
            std::string reply;
            reply.reserve(clen + 12);
            reply = "{\"reply\":";
            if (strncasecmp(header_value(base, hlen, "Content-Type").c_str(), "text/plain", 10) == 0)
                append_json_string(reply, body, clen);
            else if (clen == 0)
                reply += "null";
            else
                reply.append(body, clen);
            reply += '}';
            append_response(c, 200, "OK", reply);
            off += total;
        } else {
            bool stats = avail >= 11 && std::memcmp(base, "GET /stats ", 11) == 0;
            if (stats) {
                char b[160];
                std::snprintf(b, sizeof b, "{\"requests\":%llu,\"connections\":%llu,\"open\":%llu}",
                              n_requests, n_posting_conns, n_open_posting);
                append_response(c, 200, "OK", b);
            } else {
                append_response(c, 404, "Not Found", "{\"error\":\"not found\"}");
            }
            off += hlen + 2;
        }
        if (c->close_after) {
            off = c->in.size();
            break;
        }
    }
    c->in.erase(0, off);
    return c->out.empty() ? true : flush(c);
}

}  // namespace

int main(int argc, char **argv) {
    int port = 0;
    std::string host = "127.0.0.1";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--port")) port = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--host")) host = argv[i + 1];
    }
    if (port <= 0) {
        std::fprintf(stderr, "usage: echo_app --port P [--host 127.0.0.1]\n");
        return 2;
    }
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(uint16_t(port));
    inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    if (bind(ls, reinterpret_cast<sockaddr *>(&a), sizeof a) < 0 || listen(ls, 4096) < 0) {
        std::perror("echo_app: bind/listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.ptr = nullptr;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);

    std::vector<char> buf(64 * 1024);
    epoll_event evs[512];
    while (!stop_flag) {
        int n = epoll_wait(ep, evs, 512, 500);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("echo_app: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            Conn *c = static_cast<Conn *>(evs[i].data.ptr);
            if (c == nullptr) {
                for (;;) {
                    int fd = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) break;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    Conn *nc = new Conn;
                    nc->fd = fd;
                    epoll_event ev{};
                    ev.events = EPOLLIN;
                    ev.data.ptr = nc;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            // a Conn is only ever dropped while handling its own event, so
            // no later event of this batch can point to a freed one
            uint32_t e = evs[i].events;
            if (e & EPOLLOUT) {
                if (!flush(c)) continue;
            }
            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                ssize_t r = recv(c->fd, buf.data(), buf.size(), 0);
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                    drop(c);
                    continue;
                }
                if (r < 0) continue;
                c->in.append(buf.data(), size_t(r));
                handle(c);
            }
        }
    }
    return 0;
}
