// floor: the physical-limit reference for bench/run.
//
// A minimal single-threaded epoll server on one port:
//   GET <any path> with Upgrade: websocket  -> RFC 6455 handshake (SHA-1 +
//                                             base64 from OpenSSL), then the
//                                             connection is a subscriber
//   POST /pub  (Content-Length body)        -> frames the body once as a text
//                                             frame and send()s it to every
//                                             subscriber (one send() each),
//                                             then answers 200
//                                             {"subscribers":N}
//   GET /stats                              -> {"subscribers":N}
// No groups, no queues beyond what a short write leaves behind (kept per
// socket and flushed on EPOLLOUT so no frame is ever lost), no pings, no
// UTF-8 checks. Whatever a subscriber sends is read and discarded; EOF
// closes it. This is the least CPU a server can spend per delivered frame
// with plain send() on this kernel.
//
// usage: floor --port P [--host 127.0.0.1] [--max-conns 20000]

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
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
    bool ws = false;
    bool want_out = false;
    bool dead = false;
    size_t sub_index = 0;  // position in subs while ws
    std::string in, out;
};

int ep = -1;
std::vector<Conn *> subs;
std::vector<Conn *> graveyard;  // freed after the current epoll batch
volatile sig_atomic_t stop_flag = 0;

void on_signal(int) { stop_flag = 1; }

void ep_mod(Conn *c) {
    epoll_event ev{};
    ev.events = EPOLLIN | (c->want_out ? uint32_t(EPOLLOUT) : 0u);
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

void drop(Conn *c) {
    if (c->ws) {
        Conn *last = subs.back();
        subs[c->sub_index] = last;
        last->sub_index = c->sub_index;
        subs.pop_back();
    }
    c->ws = false;
    c->dead = true;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, nullptr);
    close(c->fd);
    c->fd = -1;
    graveyard.push_back(c);
}

// Sends or queues; returns false when the connection died (and was dropped).
bool send_or_queue(Conn *c, const char *p, size_t n) {
    if (c->out.empty()) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                drop(c);
                return false;
            }
            w = 0;
        }
        p += w;
        n -= size_t(w);
        if (n == 0) return true;
    }
    c->out.append(p, n);
    if (!c->want_out) {
        c->want_out = true;
        ep_mod(c);
    }
    return true;
}

bool flush(Conn *c) {
    while (!c->out.empty()) {
        ssize_t w = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
            if (errno == EINTR) continue;
            drop(c);
            return false;
        }
        c->out.erase(0, size_t(w));
    }
    c->want_out = false;
    ep_mod(c);
    return true;
}

std::string header_value(const std::string &head, const char *name) {
    size_t nl = std::strlen(name);
    size_t p = head.find("\r\n");
    while (p != std::string::npos && p + 2 < head.size()) {
        p += 2;
        size_t e = head.find("\r\n", p);
        if (e == std::string::npos) e = head.size();
        if (e - p > nl && head[p + nl] == ':' && strncasecmp(head.c_str() + p, name, nl) == 0) {
            size_t v = p + nl + 1;
            while (v < e && (head[v] == ' ' || head[v] == '\t')) v++;
            size_t ve = e;
            while (ve > v && (head[ve - 1] == ' ' || head[ve - 1] == '\t')) ve--;
            return head.substr(v, ve - v);
        }
        p = e;
    }
    return std::string();
}

std::string accept_key(const std::string &key) {
    std::string s = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(s.data(), s.size(), md, &mdlen, EVP_sha1(), nullptr);
    unsigned char b64[64];
    int n = EVP_EncodeBlock(b64, md, int(mdlen));
    return std::string(reinterpret_cast<char *>(b64), size_t(n));
}

void respond(Conn *c, int code, const char *reason, const std::string &body) {
    std::string r = "HTTP/1.1 " + std::to_string(code) + " " + reason +
                    "\r\nContent-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
    send_or_queue(c, r.data(), r.size());
}

// Fans a payload out: framed once, one send() per subscriber.
void fanout(const char *p, size_t n) {
    std::string frame;
    frame.reserve(n + 10);
    frame.push_back(char(0x81));
    if (n < 126) {
        frame.push_back(char(n));
    } else if (n < 65536) {
        frame.push_back(char(126));
        frame.push_back(char(n >> 8));
        frame.push_back(char(n & 0xff));
    } else {
        frame.push_back(char(127));
        for (int i = 7; i >= 0; i--) frame.push_back(char((uint64_t(n) >> (8 * i)) & 0xff));
    }
    frame.append(p, n);
    // iterate backwards: a drop() swaps the last subscriber into the hole
    for (size_t i = subs.size(); i-- > 0;) {
        if (i >= subs.size()) continue;
        send_or_queue(subs[i], frame.data(), frame.size());
    }
}

// Handles complete HTTP requests in c->in. Returns false if c was dropped.
bool handle_http(Conn *c) {
    for (;;) {
        size_t e = c->in.find("\r\n\r\n");
        if (e == std::string::npos) {
            if (c->in.size() > 65536) {
                drop(c);
                return false;
            }
            return true;
        }
        std::string head = c->in.substr(0, e + 2);
        bool is_get = head.compare(0, 4, "GET ") == 0;
        bool is_post = head.compare(0, 5, "POST ") == 0;
        size_t sp = head.find(' ');
        size_t sp2 = head.find(' ', sp + 1);
        std::string path = head.substr(sp + 1, sp2 - sp - 1);
        if (is_get && !header_value(head, "Sec-WebSocket-Key").empty()) {
            std::string r = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
                            accept_key(header_value(head, "Sec-WebSocket-Key")) + "\r\n\r\n";
            c->in.clear();  // a client sends nothing before the 101
            c->ws = true;
            c->sub_index = subs.size();
            subs.push_back(c);
            return send_or_queue(c, r.data(), r.size());
        }
        if (is_post) {
            size_t clen = size_t(std::strtoull(header_value(head, "Content-Length").c_str(), nullptr, 10));
            if (c->in.size() < e + 4 + clen) return true;
            if (path == "/pub") {
                fanout(c->in.data() + e + 4, clen);
                respond(c, 200, "OK", "{\"subscribers\":" + std::to_string(subs.size()) + "}");
            } else {
                respond(c, 404, "Not Found", "{\"error\":\"not found\"}");
            }
            c->in.erase(0, e + 4 + clen);
            continue;
        }
        if (is_get && path == "/stats") {
            respond(c, 200, "OK", "{\"subscribers\":" + std::to_string(subs.size()) + "}");
        } else {
            respond(c, 404, "Not Found", "{\"error\":\"not found\"}");
        }
        c->in.erase(0, e + 4);
    }
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
        std::fprintf(stderr, "usage: floor --port P [--host 127.0.0.1]\n");
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
        std::perror("floor: bind/listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.ptr = nullptr;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);

    std::vector<char> buf(256 * 1024);
    epoll_event evs[1024];
    while (!stop_flag) {
        int n = epoll_wait(ep, evs, 1024, 500);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("floor: epoll_wait");
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
            if (c->dead) continue;  // dropped earlier in this batch
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
                if (c->ws) continue;  // subscribers' frames are discarded
                c->in.append(buf.data(), size_t(r));
                handle_http(c);
            }
        }
        for (Conn *d : graveyard) delete d;
        graveyard.clear();
    }
    return 0;
}
