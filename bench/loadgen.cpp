// loadgen: WebSocket fan-out / publish load generator for bench/run.
//
// One process, one thread, one epoll loop, non-blocking sockets; no
// interpreter anywhere in the measuring path. Five modes:
//
//   loadgen fanout  --target T --port P --subs N --messages M [--rate R] ...
//       opens N WebSocket subscribers to /sub/<channel> (spread over source
//       addresses 127.0.0.2..), waits until every one has received a probe
//       message, settles, then publishes M messages on one keep-alive HTTP
//       connection back to back (--rate 0) or paced at R msg/s (a small pool
//       of connections so a slow answer never delays the schedule), and
//       counts what arrives. --open-loop 1 (with --rate): message k goes out at
//       its slot t0 + k/rate whatever the answers (on an idle publisher, else
//       pipelined behind the least busy one) and carries its slot time, so a
//       server that falls behind shows it as latency; latency per 1-s bucket
//       of slot time in "buckets".
//   loadgen publish --target T --port P --conns C --duration-s D [--subs S]
//       publish requests/s with C keep-alive connections (optionally with S
//       subscribers attached and reading).
//   loadgen connect --target T --port P --subs N
//       opens N idle subscribers, measures handshakes/s, prints a "ready"
//       JSON line, holds them until a line (or EOF) arrives on stdin or
//       --hold-s passes, then prints the result line. While holding, the
//       stdin lines "probe", "publish" and "expect" publish a probe / one
//       measured message / count the next message's frames (several such
//       processes, --src-ip-base apart, make bench/run's connect_100k).
//   loadgen room    --target T --port P --subs N --senders S --rate R --messages M
//       a chat room: N member WebSockets to /room/<channel>, of which the
//       first S also send: each sender sends M messages at R msg/s over its
//       own WebSocket on a fixed schedule (open loop; senders staggered by
//       1/(R*S) s), every member (senders too) should receive every message.
//   loadgen rtt     --target T --port P --conns C --duration-s D [--path /relay]
//       request/answer round trips, closed loop: C connections, each sends
//       {"type":"m","seq":<n>,"t":<send_ns>} and waits for the answer that
//       carries the same seq and t before it sends the next, for D seconds
//       (after every connection has had one answer and --warmup-s). Targets:
//         ours    WebSocket to <path>, text frames; the module relays each to
//                 the app and sends back the app's "reply" (the message)
//         django  WebSocket to <path>; the consumer answers {"reply":<message>}
//         direct  HTTP/1.1 keep-alive POST <path> with the message as body,
//                 straight to the app; it answers {"reply":<message>}
//       Latency is receive time minus the "t" found in the answer. Server CPU
//       is reported for --cpu-pids (the relaying server) and --app-pids (the
//       app behind it) separately.
//
// Subscribers connect to <sub-prefix><channel>[?<query>]. The query is
// --query Q, and/or "token=<T>" with T taken from --token-file (one token a
// line; subscriber i uses line i mod lines), e.g. to measure handshakes that
// carry a JWT.
//
// Targets differ only in the publish request:
//   ours   POST /pub            {"group":"<ch>","data":"<text>"}  (application/json)
//   nchan  POST /pub/<ch>       <text>                             (text/plain)
//   floor  POST /pub            <text>                             (text/plain)
// Every subscriber receives <text> verbatim: "<seq> <send_ns> " padded with
// 'x' to --size bytes (probes: "probe <k> <send_ns> ..."). send_ns is
// CLOCK_MONOTONIC at the publish send(), so publish->receive latency is
// measured from the frame itself.
//
// Room mode: the server relays what a member sends, wrapped or not, so the
// text carries a marker: "#m<sender> <seq> <sched_ns> " padded with 'x'
// (probes "#p<k> <ns> ..."), found wherever it sits in the received frame.
// sched_ns is the message's slot in the schedule (not the send() time), so a
// late send counts against latency. What a member sends, per target:
//   ours   {"message":"<text>"}                 receives {"message":"<text>","sender":null}
//   django {"message":"<text>"}                 receives the same as ours
//   nchan  {"message":"<text>","sender":null}   receives it verbatim
// so every member receives the same --size bytes per frame from every peer.
//
// Server CPU: --cpu-pids a,b,c (nginx master + workers, or the floor server)
// are sampled at the start and end of the measuring window: on-CPU time from
// /proc/PID/task/*/schedstat (nanoseconds; = utime+stime at full precision)
// and utime+stime from /proc/PID/stat (clock ticks) as a cross-check.
//
// Output: one JSON object per line on stdout. Diagnostics go to stderr.

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <cinttypes>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

namespace {

// ------------------------------------------------------------------ utilities

int64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

[[noreturn]] void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::fprintf(stderr, "loadgen: ");
    std::vfprintf(stderr, fmt, ap);
    std::fprintf(stderr, "\n");
    va_end(ap);
    std::exit(2);
}

void warnf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::fprintf(stderr, "loadgen: ");
    std::vfprintf(stderr, fmt, ap);
    std::fprintf(stderr, "\n");
    va_end(ap);
}

uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
uint32_t rnd32() {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return uint32_t(rng_state >> 16);
}

// Percentile (0..100) of a sample vector (reordered in place); -1 if empty.
double percentile(std::vector<uint32_t> &v, double p) {
    if (v.empty()) return -1;
    size_t k = size_t(p / 100.0 * double(v.size() - 1) + 0.5);
    if (k >= v.size()) k = v.size() - 1;
    std::nth_element(v.begin(), v.begin() + k, v.end());
    return v[k];
}

uint32_t sat_us(int64_t ns) {
    if (ns < 0) return 0;
    int64_t us = ns / 1000;
    return us > 0xffffffffLL ? 0xffffffffU : uint32_t(us);
}

// A flat JSON object writer (numbers, strings, raw fragments).
class Json {
  public:
    Json &num(const char *k, double v) {
        char b[64];
        if (v == double(int64_t(v)) && v > -1e15 && v < 1e15)
            std::snprintf(b, sizeof b, "%" PRId64, int64_t(v));
        else
            std::snprintf(b, sizeof b, "%.6g", v);
        return raw(k, b);
    }
    Json &str(const char *k, const std::string &v) {
        std::string q = "\"";
        for (char c : v) {
            if (c == '"' || c == '\\') q += '\\';
            if ((unsigned char)c < 0x20) continue;
            q += c;
        }
        q += '"';
        return raw(k, q);
    }
    Json &raw(const char *k, const std::string &v) {
        s_ += s_.empty() ? "{" : ",";
        s_ += "\"";
        s_ += k;
        s_ += "\":";
        s_ += v;
        return *this;
    }
    std::string done() const { return (s_.empty() ? "{" : s_) + "}"; }

  private:
    std::string s_;
};

// ------------------------------------------------------------------ server CPU

struct CpuSample {
    double sched_s = 0;  // sum of on-CPU ns of every thread, in seconds
    double ticks_s = 0;  // utime+stime from /proc/PID/stat, in seconds
    bool ok = true;
};

bool read_file(const std::string &path, std::string &out) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    out.clear();
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, size_t(n));
    }
    close(fd);
    return true;
}

CpuSample read_cpu(const std::vector<int> &pids) {
    static const double hz = double(sysconf(_SC_CLK_TCK));
    CpuSample s;
    std::string txt;
    for (int pid : pids) {
        std::string base = "/proc/" + std::to_string(pid);
        if (!read_file(base + "/stat", txt)) {
            s.ok = false;
            continue;
        }
        size_t rp = txt.rfind(')');
        if (rp != std::string::npos) {
            // fields after ") ": state(3) ppid(4) ... utime(14) stime(15)
            const char *p = txt.c_str() + rp + 2;
            int field = 3;
            unsigned long long ut = 0, st = 0;
            while (*p && field <= 15) {
                if (field == 14) ut = std::strtoull(p, nullptr, 10);
                if (field == 15) st = std::strtoull(p, nullptr, 10);
                while (*p && *p != ' ') p++;
                while (*p == ' ') p++;
                field++;
            }
            s.ticks_s += double(ut + st) / hz;
        }
        DIR *d = opendir((base + "/task").c_str());
        if (!d) continue;
        while (dirent *e = readdir(d)) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
            if (read_file(base + "/task/" + e->d_name + "/schedstat", txt))
                s.sched_s += double(std::strtoull(txt.c_str(), nullptr, 10)) / 1e9;
        }
        closedir(d);
    }
    return s;
}

// ------------------------------------------------------------------ options

struct Opts {
    std::string mode;
    std::string target = "ours";
    std::string host = "127.0.0.1";
    int port = 0;
    std::string channel = "bench";
    std::string sub_prefix = "/sub/"; // room mode: "/room/" unless given
    std::string query;                // --query: appended after '?'
    std::string token_file;           // --token-file: one token a line
    std::vector<std::string> tokens;  // its lines
    int subs = 0;
    int src_ips = 16;      // 127.0.0.2 .. 127.0.0.(1+src_ips)
    int concurrency = 256; // handshakes in flight
    int messages = 50;
    double rate = 0;       // msg/s, 0 = back to back (room: per sender)
    int senders = 10;      // room mode: members that also send
    int pub_pool = 4;      // publisher connections in paced mode
    bool open_loop = false; // fanout --open-loop 1: every message at its slot, pipelined if busy
    double bucket_s = 1;   // open loop: latency over time in buckets of this many seconds
    int src_ip_base = 0;   // first source address: 127.0.0.(2 + base)
    int size = 100;        // payload bytes
    int conns = 16;        // publish mode
    double duration_s = 3;
    double warmup_s = 0.5;
    int settle_ms = 300;
    int quiet_ms = 2000;   // end of delivery: this long without frames after the last publish
    double timeout_s = 60; // hard bound of every phase
    double hold_s = 120;   // connect mode
    int max_probes = 400;
    std::vector<int> cpu_pids;
    std::vector<int> app_pids;        // rtt: the app behind the relaying server
    std::vector<int> sub_ports;       // fanout: subscriber i connects to sub_ports[i % n]
    // fanout: --cpu-group NAME=PID,...: CPU and memory of each group reported apart
    std::vector<std::pair<std::string, std::vector<int>>> cpu_groups;
    std::string path = "/relay";      // rtt: WebSocket path / POST target
    std::string label;
};

void usage() {
    std::fprintf(stderr,
        "usage: loadgen fanout|publish|connect|room|rtt --port P\n"
        "  [--target ours|nchan|floor|django|direct]\n"
        "  [--host 127.0.0.1] [--channel NAME] [--subs N] [--src-ips 16] [--concurrency 256]\n"
        "  [--messages M] [--rate R] [--pub-pool 4] [--size 100] [--conns C] [--duration-s D]\n"
        "  [--warmup-s 0.5] [--settle-ms 300] [--quiet-ms 2000] [--timeout-s 60] [--hold-s 120]\n"
        "  [--cpu-pids PID,PID,...] [--label TEXT] [--sub-prefix /sub/] [--query Q]\n"
        "  [--token-file FILE]  (subscriber i sends ?token=<line i mod lines>)\n"
        "  fanout: [--sub-ports P1,P2] (subscriber i on P[i mod n]; publishes go to --port;\n"
        "       frames and latency per node) [--cpu-group NAME=PID,...] (repeatable)\n"
        "  fanout: [--open-loop 1] (with --rate: message k is sent at t0 + k/rate on an idle\n"
        "       publisher of --pub-pool, else pipelined on the least busy one, stamped with its\n"
        "       slot time)\n"
        "       [--bucket-s 1] (latency over time, by slot)\n"
        "  connect: [--src-ip-base B] (sources 127.0.0.(2+B) ..); stdin lines: probe, publish\n"
        "       (one publish each), expect (count the next message's frames; publish implies it),\n"
        "       anything else or EOF: stop holding\n"
        "  room: [--senders 10] (--rate and --messages per sender; --size = received frame)\n"
        "  rtt: --target ours|django|direct [--conns C] [--duration-s D] [--path /relay]\n"
        "       [--app-pids PID,...] (closed loop: one message in flight per connection)\n");
    std::exit(2);
}

Opts parse_opts(int argc, char **argv) {
    if (argc < 2) usage();
    Opts o;
    o.mode = argv[1];
    if (o.mode != "fanout" && o.mode != "publish" && o.mode != "connect" && o.mode != "room" &&
        o.mode != "rtt")
        usage();
    bool prefix_given = false;
    for (int i = 2; i < argc; i++) {
        std::string k = argv[i];
        if (i + 1 >= argc) usage();
        std::string v = argv[++i];
        if (k == "--target") o.target = v;
        else if (k == "--host") o.host = v;
        else if (k == "--port") o.port = std::atoi(v.c_str());
        else if (k == "--channel") o.channel = v;
        else if (k == "--sub-prefix") { o.sub_prefix = v; prefix_given = true; }
        else if (k == "--query") o.query = v;
        else if (k == "--token-file") o.token_file = v;
        else if (k == "--subs") o.subs = std::atoi(v.c_str());
        else if (k == "--src-ips") o.src_ips = std::atoi(v.c_str());
        else if (k == "--concurrency") o.concurrency = std::atoi(v.c_str());
        else if (k == "--messages") o.messages = std::atoi(v.c_str());
        else if (k == "--senders") o.senders = std::atoi(v.c_str());
        else if (k == "--rate") o.rate = std::atof(v.c_str());
        else if (k == "--pub-pool") o.pub_pool = std::atoi(v.c_str());
        else if (k == "--open-loop") o.open_loop = std::atoi(v.c_str()) != 0;
        else if (k == "--bucket-s") o.bucket_s = std::atof(v.c_str());
        else if (k == "--src-ip-base") o.src_ip_base = std::atoi(v.c_str());
        else if (k == "--size") o.size = std::atoi(v.c_str());
        else if (k == "--conns") o.conns = std::atoi(v.c_str());
        else if (k == "--duration-s") o.duration_s = std::atof(v.c_str());
        else if (k == "--warmup-s") o.warmup_s = std::atof(v.c_str());
        else if (k == "--settle-ms") o.settle_ms = std::atoi(v.c_str());
        else if (k == "--quiet-ms") o.quiet_ms = std::atoi(v.c_str());
        else if (k == "--timeout-s") o.timeout_s = std::atof(v.c_str());
        else if (k == "--hold-s") o.hold_s = std::atof(v.c_str());
        else if (k == "--max-probes") o.max_probes = std::atoi(v.c_str());
        else if (k == "--label") o.label = v;
        else if (k == "--path") o.path = v;
        else if (k == "--cpu-pids" || k == "--app-pids" || k == "--sub-ports" ||
                 k == "--cpu-group") {
            if (k == "--cpu-group") {
                size_t eq = v.find('=');
                if (eq == std::string::npos || eq == 0) die("--cpu-group NAME=PID,PID");
                for (char c : v.substr(0, eq))
                    if (!std::isalnum((unsigned char)c) && c != '_') die("--cpu-group: NAME is \\w+");
                o.cpu_groups.push_back({v.substr(0, eq), {}});
                v = v.substr(eq + 1);
            }
            std::vector<int> &pids = k == "--cpu-pids" ? o.cpu_pids
                                     : k == "--app-pids" ? o.app_pids
                                     : k == "--sub-ports" ? o.sub_ports
                                     : o.cpu_groups.back().second;
            size_t p = 0;
            while (p < v.size()) {
                size_t q = v.find(',', p);
                if (q == std::string::npos) q = v.size();
                if (q > p) pids.push_back(std::atoi(v.substr(p, q - p).c_str()));
                p = q + 1;
            }
        } else usage();
    }
    if (o.port <= 0) usage();
    if (!o.sub_ports.empty() && o.mode != "fanout") die("--sub-ports is for fanout mode only");
    for (int p : o.sub_ports)
        if (p <= 0 || p > 65535) die("--sub-ports: bad port");
    if (o.target != "ours" && o.target != "nchan" && o.target != "floor" && o.target != "django" &&
        o.target != "direct")
        usage();
    if (o.mode == "rtt") {
        if (o.target != "ours" && o.target != "django" && o.target != "direct")
            die("rtt: --target must be ours, django or direct");
        if (o.path.empty() || o.path[0] != '/') die("rtt: --path must start with /");
        for (char c : o.path)
            if ((unsigned char)c <= ' ' || (unsigned char)c >= 0x7f) die("rtt: --path has a space");
        o.subs = o.target == "direct" ? 0 : o.conns;
    } else if (o.target == "direct") {
        die("--target direct is for rtt mode only");
    } else if (o.mode == "room") {
        if (o.target == "floor") die("room: floor has no client publish");
        if (!prefix_given) o.sub_prefix = "/room/";
        if (o.senders < 1 || o.senders > o.subs) die("room: --senders must be 1..--subs");
        if (o.rate <= 0) die("room: --rate (msg/s per sender) must be > 0");
        if (o.messages < 1) die("room: --messages must be > 0");
        if (o.size < 64) o.size = 64;
    } else if (o.target == "django") {
        die("--target django is for room and rtt modes only");
    }
    if (o.size < 48) o.size = 48;
    if (o.src_ips < 1) o.src_ips = 1;
    if (o.src_ips > 200) o.src_ips = 200;
    if (o.src_ip_base < 0 || 2 + o.src_ip_base + o.src_ips > 255)
        die("--src-ip-base + --src-ips must stay within 127.0.0.2 .. 127.0.0.254");
    if (o.open_loop && (o.mode != "fanout" || o.rate <= 0))
        die("--open-loop is for fanout mode with --rate > 0");
    if (o.bucket_s <= 0) o.bucket_s = 1;
    if (o.concurrency < 1) o.concurrency = 1;
    if (o.pub_pool < 1) o.pub_pool = 1;
    if (o.conns < 1) o.conns = 1;
    for (char c : o.channel)
        if (!std::isalnum((unsigned char)c) && c != '_') die("channel must match \\w+");
    for (char c : o.query)
        if ((unsigned char)c <= ' ' || c == '#' || (unsigned char)c >= 0x7f)
            die("--query must be a URL query without spaces");
    if (!o.token_file.empty()) {
        std::string txt;
        if (!read_file(o.token_file, txt)) die("--token-file %s: %s", o.token_file.c_str(), strerror(errno));
        size_t p = 0;
        while (p < txt.size()) {
            size_t q = txt.find('\n', p);
            if (q == std::string::npos) q = txt.size();
            std::string t = txt.substr(p, q - p);
            while (!t.empty() && (t.back() == '\r' || t.back() == ' ')) t.pop_back();
            for (char c : t)
                if (!std::isalnum((unsigned char)c) && c != '-' && c != '_' && c != '.')
                    die("--token-file: line %zu is not a JWT (base64url and dots)", o.tokens.size() + 1);
            if (!t.empty()) o.tokens.push_back(t);
            p = q + 1;
        }
        if (o.tokens.empty()) die("--token-file %s has no token", o.token_file.c_str());
    }
    return o;
}

// ------------------------------------------------------------------ connections

enum class St : uint8_t { Connecting, Handshake, Open, Closed };

struct Conn {
    int fd = -1;
    bool is_pub = false;
    St st = St::Connecting;
    uint32_t id = 0;
    std::string in, out, frag;
    bool want_out = false;
    // subscriber
    int64_t last_seq = -1;
    uint32_t frames = 0;
    bool probed = false;
    int64_t t_connect = 0;
    // publisher
    bool busy = false;
    bool req_probe = false;
    std::deque<int64_t> pipe;  // open loop: slot times of the requests in flight, in order
    // rtt: one request in flight at a time
    bool rtt_waiting = false;
    int64_t rtt_seq = 0;       // seq of the message in flight (or next)
    int64_t rtt_answers = 0;
    int64_t req_sent = 0;
};

struct Stats {
    // handshakes
    int64_t hs_ok = 0, hs_fail = 0, hs_bad_status = 0;
    int64_t hs_first = 0, hs_last = 0;
    std::map<int, int64_t> hs_refused;  // HTTP status of refused handshakes
    std::vector<uint32_t> hs_lat_us;
    // frames
    int64_t frames = 0, frames_unique = 0, dups = 0, out_of_order = 0, bad_frames = 0;
    int64_t probe_frames = 0;
    int64_t last_frame_ns = 0, first_frame_ns = 0;
    std::vector<uint32_t> lat_us;
    int64_t pings = 0;
    int64_t sub_closed = 0;       // subscribers lost after the handshake
    int64_t last_close_ns = 0;    // when the last open subscriber was lost
    std::map<int, int64_t> close_codes;
    // publishing
    int64_t pub_ok = 0, pub_err = 0, pub_reconnects = 0;
    std::map<int, int64_t> pub_status;
    std::vector<uint32_t> pub_lat_us;
    int64_t probes_sent = 0, probes_acked = 0;
};

class Loadgen {
  public:
    explicit Loadgen(const Opts &o) : o_(o) {
        ep_ = epoll_create1(EPOLL_CLOEXEC);
        if (ep_ < 0) die("epoll_create1: %s", strerror(errno));
        rbuf_.resize(256 * 1024);
        std::memset(&dst_, 0, sizeof dst_);
        dst_.sin_family = AF_INET;
        dst_.sin_port = htons(uint16_t(o.port));
        if (inet_pton(AF_INET, o.host.c_str(), &dst_.sin_addr) != 1) die("bad --host");
        for (int p : o.sub_ports) {
            sockaddr_in d = dst_;
            d.sin_port = htons(uint16_t(p));
            sub_dst_.push_back(d);
        }
        size_t nodes = std::max<size_t>(1, o.sub_ports.size());
        node_lat_.resize(nodes);
        node_unique_.assign(nodes, 0);
        node_open_.assign(nodes, 0);
    }

    int run() {
        if (o_.mode == "fanout") return run_fanout();
        if (o_.mode == "publish") return run_publish();
        if (o_.mode == "room") return run_room();
        if (o_.mode == "rtt") return run_rtt();
        return run_connect();
    }

  private:
    const Opts &o_;
    int ep_;
    sockaddr_in dst_;
    std::vector<char> rbuf_;
    std::vector<sockaddr_in> sub_dst_;   // --sub-ports (empty: subscribers go to dst_)
    // per node (index i % sub_ports): latency and unique frames of its subscribers
    std::vector<std::vector<uint32_t>> node_lat_;
    std::vector<int64_t> node_unique_, node_open_;
    std::vector<Conn *> subs_;
    std::vector<Conn *> pubs_;
    Stats st_;
    int in_flight_ = 0;   // handshakes in progress
    int next_sub_ = 0;    // next subscriber to start
    int64_t sub_open_ = 0;

    // delivery tracking
    int64_t track_m_ = 0;                 // messages tracked per subscriber (fanout)
    std::vector<uint8_t> seen_;           // subs x messages, when it fits
    std::vector<uint32_t> per_seq_;       // frames per seq

    // publisher driving
    enum class Drive { None, Burst, Paced, Flood, OpenLoop } drive_ = Drive::None;
    int64_t next_seq_ = 0;
    int64_t total_msgs_ = 0;
    int64_t probe_k_ = 0;
    int64_t flood_stop_ = 0;              // publish mode: no new request after this
    int64_t win_start_ = 0, win_end_ = 0; // publish mode: counted responses window
    int64_t win_ok_ = 0;
    std::vector<uint32_t> win_lat_us_;
    int64_t paced_t0_ = 0;
    int64_t paced_max_late_ns_ = 0;
    int64_t paced_late_ = 0;
    int64_t last_pub_done_ = 0;
    // open loop: latency per bucket of slot time (message seq -> bucket seq*interval/bucket)
    std::vector<std::vector<uint32_t>> ol_bucket_lat_;
    int64_t ol_bucket_ns_ = 0;            // 0: not bucketing
    int64_t ol_interval_ns_ = 0;
    std::vector<uint32_t> ol_late_us_;    // send() after its slot, every message
    int64_t ol_unsent_ = 0;               // due while no publisher connection was open
    // connect mode: stdin commands
    bool cmd_probe_ = false, cmd_publish_ = false, cmd_expect_ = false;
    int64_t pub_send_ns_ = 0;             // connect mode: when the measured publish was sent

    bool stdin_closed_ = false;
    std::string stdin_buf_;
    int max_events_ = 1024;               // per epoll_wait (room: fewer, so the schedule runs often)

    // room mode
    bool room_ = false;

    // rtt mode
    bool rtt_ = false;
    bool rtt_sending_ = false;            // closed loop running
    bool rtt_measuring_ = false;          // inside the window
    int64_t rtt_answers_ = 0;             // answers with seq and t, whole run
    int64_t rtt_win_answers_ = 0;         // of those, received in the window
    std::vector<uint32_t> rtt_lat_us_;    // round trips received in the window
    int64_t rtt_error_replies_ = 0;       // {"type":"error",...} or other "error" answers
    int64_t rtt_http_errors_ = 0;         // direct: non-2xx answers
    std::map<int, int64_t> rtt_status_;   // direct: answers by HTTP status
    int64_t rtt_seq_mismatch_ = 0;        // answer for another seq than the one in flight
    int64_t rtt_unexpected_ = 0;          // answer while nothing was in flight
    int64_t rtt_other_ = 0;               // frames without seq/t and without "error"
    int64_t rtt_lost_ = 0;                // requests in flight on a connection that failed
    int64_t rtt_win_errors_ = 0;          // errors of any kind inside the window
    std::string rtt_first_error_;
    std::vector<Conn *> senders_;         // members 0..S-1
    std::vector<int32_t> room_last_;      // members x senders: last seq received
    int64_t room_sent_ = 0;               // messages sent in the window
    int64_t room_send_failed_ = 0;        // due while the sender was closed
    int64_t room_max_late_ns_ = 0;        // worst send() after its slot
    std::vector<uint32_t> room_late_us_;  // every send() after its slot
    int64_t room_errors_ = 0;             // frames that look like an error reply
    int64_t room_other_ = 0;              // other frames without a marker
    std::string room_first_other_;        // the first of those (diagnostics)
    size_t room_frame_len_ = 0;           // payload bytes of the first message received

    // ------------------------------------------------------------ epoll

    void ep_set(Conn *c, bool add) {
        epoll_event ev{};
        ev.events = EPOLLIN | (c->want_out ? uint32_t(EPOLLOUT) : 0u);
        ev.data.ptr = c;
        if (epoll_ctl(ep_, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev) < 0)
            die("epoll_ctl: %s", strerror(errno));
    }

    void close_conn(Conn *c) {
        if (c->st == St::Closed) return;
        if (c->fd >= 0) {
            epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
            close(c->fd);
        }
        c->fd = -1;
        bool was_open = c->st == St::Open;
        bool was_hs = c->st == St::Connecting || c->st == St::Handshake;
        c->st = St::Closed;
        if (!c->is_pub) {
            if (was_open) {
                st_.sub_closed++;
                st_.last_close_ns = now_ns();
                sub_open_--;
            } else if (was_hs) {
                st_.hs_fail++;
                in_flight_--;
            }
        }
    }

    void send_data(Conn *c, const char *p, size_t n) {
        if (c->st == St::Closed) return;
        if (c->out.empty()) {
            while (n > 0) {
                ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
                if (w > 0) {
                    p += w;
                    n -= size_t(w);
                    continue;
                }
                if (w < 0 && errno == EINTR) continue;
                if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                on_io_error(c);
                return;
            }
            if (n == 0) return;
        }
        c->out.append(p, n);
        if (!c->want_out) {
            c->want_out = true;
            ep_set(c, false);
        }
    }

    void flush_out(Conn *c) {
        while (!c->out.empty()) {
            ssize_t w = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
            if (w > 0) {
                c->out.erase(0, size_t(w));
                continue;
            }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
            on_io_error(c);
            return;
        }
        if (c->want_out) {
            c->want_out = false;
            ep_set(c, false);
        }
    }

    void on_io_error(Conn *c) {
        if (c->is_pub) {
            pub_lost(c);
        } else {
            close_conn(c);
        }
    }

    // One epoll_wait round; timeout in ms.
    void pump(int timeout_ms) {
        static epoll_event evs[1024];
        int n = epoll_wait(ep_, evs, max_events_, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) return;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            Conn *c = static_cast<Conn *>(evs[i].data.ptr);
            if (c == nullptr) {  // stdin: "probe", "publish", anything else stops
                char b[256];
                ssize_t r = read(0, b, sizeof b);
                if (r > 0) stdin_buf_.append(b, size_t(r));
                size_t nl;
                while (!stdin_closed_ && (nl = stdin_buf_.find('\n')) != std::string::npos) {
                    std::string line = stdin_buf_.substr(0, nl);
                    stdin_buf_.erase(0, nl + 1);
                    if (line == "probe") cmd_probe_ = true;
                    else if (line == "publish") cmd_publish_ = cmd_expect_ = true;
                    else if (line == "expect") cmd_expect_ = true;
                    else stdin_closed_ = true;
                }
                if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) stdin_closed_ = true;
                if (stdin_closed_) epoll_ctl(ep_, EPOLL_CTL_DEL, 0, nullptr);
                continue;
            }
            if (c->st == St::Closed) continue;
            uint32_t e = evs[i].events;
            if (c->st == St::Connecting) {
                if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
                continue;
            }
            if (e & EPOLLOUT) flush_out(c);
            if (c->st == St::Closed) continue;
            if (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        }
    }

    // Pumps until done() or the deadline; tick() runs every round and
    // returns the ms until it wants to run again (-1: no wish).
    bool run_until(const std::function<bool()> &done, int64_t deadline,
                   const std::function<int()> &tick = nullptr, int max_wait_ms = 50) {
        for (;;) {
            if (done()) return true;
            int64_t now = now_ns();
            if (now >= deadline) return false;
            int wait = int(std::min<int64_t>((deadline - now) / 1000000 + 1, max_wait_ms));
            if (tick) {
                int t = tick();
                if (done()) return true;
                if (t >= 0 && t < wait) wait = t;
            }
            pump(wait);
        }
    }

    // ------------------------------------------------------------ subscribers

    void start_sub(int i) {
        Conn *c = subs_[size_t(i)];
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            warnf("socket: %s", strerror(errno));
            st_.hs_fail++;
            c->st = St::Closed;
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (o_.host.rfind("127.", 0) == 0 && o_.src_ips > 0) {
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            sockaddr_in src{};
            src.sin_family = AF_INET;
            src.sin_addr.s_addr =
                htonl(0x7f000000u | uint32_t(2 + o_.src_ip_base + (i % o_.src_ips)));
            if (bind(fd, reinterpret_cast<sockaddr *>(&src), sizeof src) < 0)
                warnf("bind: %s", strerror(errno));
        }
        c->fd = fd;
        c->st = St::Connecting;
        c->t_connect = now_ns();
        in_flight_++;
        const sockaddr_in &dst = sub_dst_.empty() ? dst_ : sub_dst_[size_t(i) % sub_dst_.size()];
        int r = connect(fd, reinterpret_cast<const sockaddr *>(&dst), sizeof dst);
        if (r < 0 && errno != EINPROGRESS) {
            if (st_.hs_fail < 5) warnf("connect: %s", strerror(errno));
            c->want_out = false;
            close(fd);
            c->fd = -1;
            c->st = St::Closed;
            in_flight_--;
            st_.hs_fail++;
            return;
        }
        c->want_out = true;
        ep_set(c, true);
    }

    void on_connected(Conn *c) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            if (c->is_pub) {
                if (st_.pub_reconnects < 3) warnf("publisher connect: %s", strerror(err));
                pub_lost(c);
                return;
            }
            if (st_.hs_fail < 5) warnf("connect: %s", strerror(err));
            close_conn(c);
            return;
        }
        c->want_out = false;
        ep_set(c, false);
        if (c->is_pub) {
            c->st = St::Open;
            on_pub_idle(c, now_ns());  // a reconnected publisher resumes its schedule
            return;
        }
        c->st = St::Handshake;
        std::string target = rtt_ ? o_.path : o_.sub_prefix + o_.channel;
        if (!o_.query.empty() || !o_.tokens.empty()) {
            target += '?';
            target += o_.query;
            if (!o_.tokens.empty()) {
                if (!o_.query.empty()) target += '&';
                target += "token=";
                target += o_.tokens[c->id % o_.tokens.size()];
            }
        }
        std::string req = "GET " + target +
                          " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n";
        send_data(c, req.data(), req.size());
    }

    void on_readable(Conn *c) {
        ssize_t n = recv(c->fd, rbuf_.data(), rbuf_.size(), 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            on_io_error(c);
            return;
        }
        if (n == 0) {
            on_io_error(c);
            return;
        }
        int64_t now = now_ns();
        if (c->is_pub) {
            c->in.append(rbuf_.data(), size_t(n));
            pub_parse(c, now);
            return;
        }
        if (c->st == St::Handshake) {
            c->in.append(rbuf_.data(), size_t(n));
            size_t e = c->in.find("\r\n\r\n");
            if (e == std::string::npos) {
                if (c->in.size() > 16384) close_conn(c);
                return;
            }
            if (c->in.compare(0, 12, "HTTP/1.1 101") != 0) {
                if (st_.hs_bad_status < 3)
                    warnf("handshake refused: %s", c->in.substr(0, c->in.find('\r')).c_str());
                st_.hs_bad_status++;
            st_.hs_refused[c->in.size() > 12 ? std::atoi(c->in.c_str() + 9) : 0]++;
                close_conn(c);
                return;
            }
            c->st = St::Open;
            in_flight_--;
            sub_open_++;
            st_.hs_ok++;
            if (st_.hs_first == 0) st_.hs_first = now;
            st_.hs_last = now;
            st_.hs_lat_us.push_back(sat_us(now - c->t_connect));
            c->in.erase(0, e + 4);
            if (!c->in.empty()) {
                std::string tmp;
                tmp.swap(c->in);
                size_t used = parse_frames(c, reinterpret_cast<const uint8_t *>(tmp.data()),
                                           tmp.size(), now);
                if (c->st != St::Closed) c->in.assign(tmp, used, std::string::npos);
            }
            return;
        }
        if (c->in.empty()) {
            size_t used = parse_frames(c, reinterpret_cast<const uint8_t *>(rbuf_.data()),
                                       size_t(n), now);
            if (c->st != St::Closed && used < size_t(n))
                c->in.assign(rbuf_.data() + used, size_t(n) - used);
        } else {
            c->in.append(rbuf_.data(), size_t(n));
            size_t used = parse_frames(c, reinterpret_cast<const uint8_t *>(c->in.data()),
                                       c->in.size(), now);
            if (c->st != St::Closed) c->in.erase(0, used);
        }
    }

    void send_control(Conn *c, uint8_t op, const uint8_t *p, size_t n) {
        if (n > 125) n = 125;
        char f[2 + 4 + 125];
        f[0] = char(0x80 | op);
        f[1] = char(0x80 | n);
        uint32_t key = rnd32();
        std::memcpy(f + 2, &key, 4);
        const uint8_t *k = reinterpret_cast<const uint8_t *>(f + 2);
        for (size_t i = 0; i < n; i++) f[6 + i] = char(p[i] ^ k[i & 3]);
        send_data(c, f, 6 + n);
    }

    size_t parse_frames(Conn *c, const uint8_t *p, size_t n, int64_t now) {
        size_t off = 0;
        std::string unmasked;
        while (n - off >= 2) {
            uint8_t b0 = p[off], b1 = p[off + 1];
            bool fin = b0 & 0x80;
            uint8_t op = b0 & 0x0f;
            bool masked = b1 & 0x80;
            uint64_t len = b1 & 0x7f;
            size_t h = 2;
            if (len == 126) {
                if (n - off < 4) break;
                len = (uint64_t(p[off + 2]) << 8) | p[off + 3];
                h = 4;
            } else if (len == 127) {
                if (n - off < 10) break;
                len = 0;
                for (int i = 0; i < 8; i++) len = (len << 8) | p[off + 2 + i];
                h = 10;
            }
            if (len > (64u << 20)) {
                st_.bad_frames++;
                close_conn(c);
                return n;
            }
            size_t mk = h;
            if (masked) h += 4;
            if (n - off < h + len) break;
            const uint8_t *pl = p + off + h;
            if (masked) {
                unmasked.assign(reinterpret_cast<const char *>(pl), size_t(len));
                for (size_t i = 0; i < len; i++) unmasked[i] ^= char(p[off + mk + (i & 3)]);
                pl = reinterpret_cast<const uint8_t *>(unmasked.data());
            }
            off += h + size_t(len);
            on_frame(c, fin, op, pl, size_t(len), now);
            if (c->st == St::Closed) return n;
        }
        return off;
    }

    void on_frame(Conn *c, bool fin, uint8_t op, const uint8_t *pl, size_t len, int64_t now) {
        switch (op) {
        case 0x1:
        case 0x2:
            if (fin) {
                on_message(c, pl, len, now);
            } else {
                c->frag.assign(reinterpret_cast<const char *>(pl), len);
            }
            break;
        case 0x0:
            c->frag.append(reinterpret_cast<const char *>(pl), len);
            if (fin) {
                std::string m;
                m.swap(c->frag);
                on_message(c, reinterpret_cast<const uint8_t *>(m.data()), m.size(), now);
            }
            break;
        case 0x8: {
            int code = len >= 2 ? (pl[0] << 8) | pl[1] : 1005;
            st_.close_codes[code]++;
            send_control(c, 0x8, pl, len >= 2 ? 2 : 0);
            close_conn(c);
            break;
        }
        case 0x9:
            st_.pings++;
            send_control(c, 0xA, pl, len);
            break;
        case 0xA:
            break;
        default:
            st_.bad_frames++;
            break;
        }
    }

    void on_message(Conn *c, const uint8_t *pl, size_t len, int64_t now) {
        if (room_) {
            on_room_message(c, pl, len, now);
            return;
        }
        if (rtt_) {
            on_rtt_answer(c, reinterpret_cast<const char *>(pl), len, now);
            return;
        }
        if (len > 0 && pl[0] == 'p') {
            c->probed = true;
            st_.probe_frames++;
            return;
        }
        // "<seq> <send_ns> ..."
        size_t i = 0;
        int64_t seq = 0, ts = 0;
        bool ok = false;
        while (i < len && pl[i] >= '0' && pl[i] <= '9') seq = seq * 10 + (pl[i++] - '0');
        if (i > 0 && i < len && pl[i] == ' ') {
            size_t j = ++i;
            while (i < len && pl[i] >= '0' && pl[i] <= '9') ts = ts * 10 + (pl[i++] - '0');
            ok = i > j;
        }
        if (!ok) {
            st_.bad_frames++;
            return;
        }
        st_.frames++;
        c->frames++;
        if (st_.first_frame_ns == 0) st_.first_frame_ns = now;
        st_.last_frame_ns = now;
        if (st_.lat_us.size() < 50000000) st_.lat_us.push_back(sat_us(now - ts));
        if (ol_bucket_ns_ > 0 && seq >= 0) {
            size_t b = size_t(seq * ol_interval_ns_ / ol_bucket_ns_);
            if (b < ol_bucket_lat_.size()) ol_bucket_lat_[b].push_back(sat_us(now - ts));
        }
        size_t node = sub_dst_.empty() ? 0 : c->id % sub_dst_.size();
        if (!sub_dst_.empty() && node_lat_[node].size() < 50000000)
            node_lat_[node].push_back(sat_us(now - ts));
        if (seq <= c->last_seq) st_.out_of_order++;
        if (seq > c->last_seq) c->last_seq = seq;
        bool unique = true;
        if (track_m_ > 0 && seq >= 0 && seq < track_m_) {
            if (!seen_.empty()) {
                uint8_t &s = seen_[size_t(c->id) * size_t(track_m_) + size_t(seq)];
                if (s) {
                    st_.dups++;
                    unique = false;
                } else {
                    s = 1;
                }
            }
            if (unique) per_seq_[size_t(seq)]++;  // unique frames per message
        }
        if (unique) {
            st_.frames_unique++;
            node_unique_[node]++;
        }
    }

    // Room mode: finds "#m<sender> <seq> <ns> " (or a "#p" probe) wherever the
    // server put the text; anything else is an error reply or another frame.
    void on_room_message(Conn *c, const uint8_t *pl, size_t len, int64_t now) {
        const uint8_t *m = nullptr;
        for (const uint8_t *q = pl; len > 0 && q + 1 < pl + len;) {
            const void *h = std::memchr(q, '#', size_t(pl + len - q - 1));
            if (!h) break;
            q = static_cast<const uint8_t *>(h);
            if (q[1] == 'm' || q[1] == 'p') {
                m = q;
                break;
            }
            q++;
        }
        if (!m) {
            std::string t(reinterpret_cast<const char *>(pl), std::min<size_t>(len, 300));
            if (t.find("\"error\"") != std::string::npos) room_errors_++;
            else room_other_++;
            if (room_first_other_.empty()) room_first_other_ = t;
            return;
        }
        if (m[1] == 'p') {
            c->probed = true;
            st_.probe_frames++;
            return;
        }
        size_t i = size_t(m - pl) + 2, end = len;
        int64_t v[3] = {0, 0, 0};
        bool ok = true;
        for (int f = 0; f < 3 && ok; f++) {
            size_t j = i;
            while (i < end && pl[i] >= '0' && pl[i] <= '9') v[f] = v[f] * 10 + (pl[i++] - '0');
            ok = i > j && i < end && pl[i] == ' ';
            i++;
        }
        int64_t snd = v[0], seq = v[1], ts = v[2];
        if (!ok || snd >= int64_t(senders_.size()) || seq >= o_.messages) {
            st_.bad_frames++;
            return;
        }
        st_.frames++;
        c->frames++;
        if (room_frame_len_ == 0) room_frame_len_ = len;
        if (st_.first_frame_ns == 0) st_.first_frame_ns = now;
        st_.last_frame_ns = now;
        if (st_.lat_us.size() < 50000000) st_.lat_us.push_back(sat_us(now - ts));
        int32_t &last = room_last_[size_t(c->id) * senders_.size() + size_t(snd)];
        if (seq <= last) st_.out_of_order++;
        if (seq > last) last = int32_t(seq);
        int64_t id = snd * o_.messages + seq;
        per_seq_[size_t(id)]++;
        if (!seen_.empty()) {
            uint8_t &s = seen_[size_t(c->id) * size_t(track_m_) + size_t(id)];
            if (s) {
                st_.dups++;
                return;
            }
            s = 1;
        }
        st_.frames_unique++;
    }

    // A masked text frame (a client's frame), any length.
    void send_text(Conn *c, const std::string &m) {
        std::string f;
        f.reserve(m.size() + 14);
        f += char(0x81);
        if (m.size() < 126) {
            f += char(0x80 | m.size());
        } else if (m.size() < 65536) {
            f += char(0x80 | 126);
            f += char(m.size() >> 8);
            f += char(m.size() & 0xff);
        } else {
            f += char(0x80 | 127);
            for (int i = 7; i >= 0; i--) f += char((uint64_t(m.size()) >> (8 * i)) & 0xff);
        }
        uint32_t key = rnd32();
        char k[4];
        std::memcpy(k, &key, 4);
        f.append(k, 4);
        size_t h = f.size();
        f += m;
        for (size_t i = 0; i < m.size(); i++) f[h + i] = char(f[h + i] ^ k[i & 3]);
        send_data(c, f.data(), f.size());
    }

    // What a room member sends: the text padded so that the frame every
    // member receives is --size bytes for every target (see the top).
    std::string room_msg(int64_t snd, int64_t seq, bool probe, int64_t ts) const {
        static const size_t wrap = std::strlen("{\"message\":\"\",\"sender\":null}");
        char head[80];
        int n = probe ? std::snprintf(head, sizeof head, "#p%" PRId64 " %" PRId64 " ", seq, ts)
                      : std::snprintf(head, sizeof head, "#m%" PRId64 " %" PRId64 " %" PRId64 " ",
                                      snd, seq, ts);
        std::string text(head, size_t(n));
        if (text.size() + wrap < size_t(o_.size)) text.append(size_t(o_.size) - wrap - text.size(), 'x');
        if (o_.target == "nchan") return "{\"message\":\"" + text + "\",\"sender\":null}";
        return "{\"message\":\"" + text + "\"}";
    }

    // Opens subscribers [0, n) with at most --concurrency handshakes in flight.
    void connect_subs(int n, int64_t deadline) {
        for (int i = 0; i < n; i++) {
            Conn *c = new Conn;
            c->id = uint32_t(i);
            subs_.push_back(c);
        }
        next_sub_ = 0;
        run_until([&] { return next_sub_ >= n && in_flight_ == 0; }, deadline, [&] {
            while (next_sub_ < n && in_flight_ < o_.concurrency) start_sub(next_sub_++);
            return -1;
        }, 20);
        // anything still in flight at the deadline counts as failed
        for (Conn *c : subs_)
            if (c->st == St::Connecting || c->st == St::Handshake) close_conn(c);
    }

    // ------------------------------------------------------------ publishers

    Conn *new_pub() {
        Conn *c = new Conn;
        c->is_pub = true;
        c->id = uint32_t(pubs_.size());
        pubs_.push_back(c);
        open_pub(c);
        return c;
    }

    void open_pub(Conn *c) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) die("socket: %s", strerror(errno));
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        c->st = St::Connecting;
        c->in.clear();
        c->out.clear();
        c->busy = false;
        int r = connect(fd, reinterpret_cast<sockaddr *>(&dst_), sizeof dst_);
        if (r < 0 && errno != EINPROGRESS) die("publisher connect: %s", strerror(errno));
        c->want_out = true;
        ep_set(c, true);
    }

    // A publisher connection failed or was closed: count the request in
    // flight as an error and reconnect (bounded by the phase deadlines).
    void pub_lost(Conn *c) {
        if (c->fd >= 0) {
            epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
            close(c->fd);
            c->fd = -1;
        }
        bool was_busy = c->busy;
        c->busy = false;
        if (!c->pipe.empty()) {
            // open loop: every pipelined request on it is lost (one counted below)
            int64_t lost = int64_t(c->pipe.size()) - (was_busy ? 1 : 0);
            st_.pub_err += lost;
            st_.pub_status[0] += lost;
            c->pipe.clear();
        }
        if (rtt_ && c->rtt_waiting) {
            rtt_failed(c, "connection to the app lost with a request in flight", 0);
            rtt_lost_++;
        }
        if (was_busy) {
            st_.pub_err++;
            st_.pub_status[0]++;
            if (c->req_probe) st_.probes_acked++;
        }
        st_.pub_reconnects++;
        // a server that closes after each answer is fine; one that refuses is not
        if (st_.pub_reconnects - st_.pub_ok > 1000) die("publisher: too many failed reconnects");
        open_pub(c);
        if (was_busy) on_pub_idle(c, now_ns());
    }

    bool pub_ready(Conn *c) const { return !c->busy && c->st != St::Closed; }

    std::string payload(int64_t seq, bool probe, int64_t ts) const {
        char head[64];
        int n = probe ? std::snprintf(head, sizeof head, "probe %" PRId64 " %" PRId64 " ", seq, ts)
                      : std::snprintf(head, sizeof head, "%" PRId64 " %" PRId64 " ", seq, ts);
        std::string s(head, size_t(n));
        if (int(s.size()) < o_.size) s.append(size_t(o_.size) - s.size(), 'x');
        return s;
    }

    // ts: the time stamped into the message (0: now, just before the send())
    void pub_send(Conn *c, int64_t seq, bool probe, int64_t ts = 0) {
        if (ts == 0) ts = now_ns();
        std::string text = payload(seq, probe, ts);
        std::string body, path, ctype;
        if (o_.target == "ours") {
            body = "{\"group\":\"" + o_.channel + "\",\"data\":\"" + text + "\"}";
            path = "/pub";
            ctype = "application/json";
        } else if (o_.target == "nchan") {
            body = text;
            path = "/pub/" + o_.channel;
            ctype = "text/plain";
        } else {
            body = text;
            path = "/pub";
            ctype = "text/plain";
        }
        std::string req = "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " +
                          ctype + "\r\nContent-Length: " + std::to_string(body.size()) +
                          "\r\n\r\n" + body;
        if (drive_ == Drive::OpenLoop && !probe) c->pipe.push_back(ts);  // pipelined
        c->busy = true;
        c->req_probe = probe;
        c->req_sent = ts;
        if (probe) st_.probes_sent++;
        send_data(c, req.data(), req.size());
    }

    // Parses complete HTTP responses in c->in.
    void pub_parse(Conn *c, int64_t now) {
        for (;;) {
            size_t e = c->in.find("\r\n\r\n");
            if (e == std::string::npos) {
                if (c->in.size() > 65536) pub_lost(c);
                return;
            }
            int status = 0;
            if (c->in.size() >= 12 && c->in.compare(0, 5, "HTTP/") == 0)
                status = std::atoi(c->in.c_str() + 9);
            size_t clen = 0;
            bool chunked = false, conn_close = false, has_len = false;
            size_t p = c->in.find("\r\n") + 2;
            while (p < e) {
                size_t q = c->in.find("\r\n", p);
                std::string line = c->in.substr(p, q - p);
                std::string lower = line;
                for (char &ch : lower) ch = char(std::tolower((unsigned char)ch));
                if (lower.rfind("content-length:", 0) == 0) {
                    clen = size_t(std::strtoull(line.c_str() + 15, nullptr, 10));
                    has_len = true;
                } else if (lower.rfind("transfer-encoding:", 0) == 0 &&
                           lower.find("chunked") != std::string::npos) {
                    chunked = true;
                } else if (lower.rfind("connection:", 0) == 0 &&
                           lower.find("close") != std::string::npos) {
                    conn_close = true;
                }
                p = q + 2;
            }
            size_t total;
            if (chunked) {
                size_t q = e + 4;
                for (;;) {
                    size_t le = c->in.find("\r\n", q);
                    if (le == std::string::npos) return;
                    size_t sz = size_t(std::strtoull(c->in.c_str() + q, nullptr, 16));
                    if (sz == 0) {
                        size_t te = c->in.find("\r\n\r\n", le);
                        if (le + 2 <= c->in.size() && c->in.compare(le, 4, "\r\n\r\n") == 0) te = le;
                        if (te == std::string::npos) return;
                        q = te + 4;
                        break;
                    }
                    q = le + 2 + sz + 2;
                    if (q > c->in.size()) return;
                }
                total = q;
            } else if (has_len) {
                total = e + 4 + clen;
                if (c->in.size() < total) return;
            } else if (status == 204 || status == 304 || (status >= 100 && status < 200)) {
                total = e + 4;
            } else {
                // body until close: not keep-alive; treat as an error
                conn_close = true;
                total = c->in.size();
            }
            if (rtt_ && !(status >= 100 && status < 200)) {
                // the answer's body (raw if chunked: the app sends Content-Length)
                std::string body = c->in.substr(e + 4, total - (e + 4));
                c->in.erase(0, total);
                on_rtt_http(c, status, body, now, !conn_close);
                if (conn_close) {
                    pub_lost(c);
                    return;
                }
                continue;
            }
            c->in.erase(0, total);
            if (status >= 100 && status < 200) continue;
            on_pub_response(c, status, now);
            if (conn_close) {
                pub_lost(c);
                return;
            }
        }
    }

    void on_pub_response(Conn *c, int status, int64_t now) {
        if (!c->busy) return;
        if (!c->pipe.empty()) {  // open loop: answers come in request order
            c->req_sent = c->pipe.front();
            c->req_probe = false;
            c->pipe.pop_front();
        }
        c->busy = false;
        uint32_t lat = sat_us(now - c->req_sent);
        if (c->req_probe) {
            st_.probes_acked++;
        } else {
            st_.pub_status[status]++;
            if (status >= 200 && status < 300) {
                st_.pub_ok++;
                st_.pub_lat_us.push_back(lat);
                if (drive_ == Drive::Flood && now >= win_start_ && now < win_end_ &&
                    c->req_sent >= win_start_) {
                    win_ok_++;
                    win_lat_us_.push_back(lat);
                }
            } else {
                st_.pub_err++;
            }
            last_pub_done_ = now;
        }
        if (!c->pipe.empty()) c->busy = true;
        on_pub_idle(c, now);
    }

    void on_pub_idle(Conn *c, int64_t now) {
        if (rtt_) {
            rtt_send(c);
            return;
        }
        if (c->st != St::Open || c->busy) return;  // a reconnecting one resumes when connected
        if (drive_ == Drive::Burst) {
            if (next_seq_ < total_msgs_) pub_send(c, next_seq_++, false);
        } else if (drive_ == Drive::Flood) {
            if (now < flood_stop_) pub_send(c, next_seq_++, false);
        }
        // Paced: the tick sends.
    }

    bool pubs_idle() const {
        for (Conn *c : pubs_)
            if (c->busy) return false;
        return true;
    }

    // ------------------------------------------------------------ rtt

    // {"type":"m","seq":<n>,"t":<ns>}: the message of every target.
    static std::string rtt_msg(int64_t seq, int64_t ts) {
        char b[96];
        int n = std::snprintf(b, sizeof b, "{\"type\":\"m\",\"seq\":%" PRId64 ",\"t\":%" PRId64 "}",
                              seq, ts);
        return std::string(b, size_t(n));
    }

    // Sends c's next message if the loop runs and nothing is in flight on c.
    void rtt_send(Conn *c) {
        if (!rtt_sending_ || c->rtt_waiting || c->st != St::Open) return;
        if (c->is_pub && c->busy) return;
        int64_t ts = now_ns();
        std::string m = rtt_msg(c->rtt_seq, ts);
        c->rtt_waiting = true;
        if (c->is_pub) {
            std::string req = "POST " + o_.path +
                              " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                              "Content-Length: " + std::to_string(m.size()) + "\r\n\r\n" + m;
            c->busy = true;
            c->req_probe = false;
            c->req_sent = ts;
            send_data(c, req.data(), req.size());
        } else {
            send_text(c, m);
        }
    }

    // The message in flight on c failed (error answer, lost connection):
    // counted, and the loop goes on with the next one.
    void rtt_failed(Conn *c, const std::string &why, int64_t now) {
        if (rtt_first_error_.empty()) rtt_first_error_ = why.substr(0, 300);
        if (rtt_measuring_) rtt_win_errors_++;
        c->rtt_waiting = false;
        c->rtt_seq++;
        (void)now;
    }

    // The integer after "key": (spaces allowed after the colon), or -1.
    static int64_t json_int(const char *p, size_t n, const char *key) {
        size_t kl = std::strlen(key);
        const char *q = static_cast<const char *>(memmem(p, n, key, kl));
        if (!q) return -1;
        const char *e = p + n;
        q += kl;
        while (q < e && *q == ' ') q++;
        if (q >= e || *q < '0' || *q > '9') return -1;
        int64_t v = 0;
        while (q < e && *q >= '0' && *q <= '9') v = v * 10 + (*q++ - '0');
        return v;
    }

    // An answer (a frame, or an HTTP body) on c.
    void on_rtt_answer(Conn *c, const char *p, size_t n, int64_t now) {
        int64_t seq = json_int(p, n, "\"seq\":");
        int64_t ts = json_int(p, n, "\"t\":");
        if (seq < 0 || ts <= 0) {
            std::string t(p, std::min<size_t>(n, 300));
            if (t.find("\"error\"") != std::string::npos) {
                rtt_error_replies_++;
                if (c->rtt_waiting) {
                    rtt_failed(c, t, now);
                    rtt_send(c);
                } else {
                    if (rtt_first_error_.empty()) rtt_first_error_ = t;
                    if (rtt_measuring_) rtt_win_errors_++;
                }
            } else {
                rtt_other_++;
                if (rtt_first_error_.empty()) rtt_first_error_ = "unexpected answer: " + t;
                if (rtt_measuring_) rtt_win_errors_++;
            }
            return;
        }
        if (!c->rtt_waiting) {
            rtt_unexpected_++;
            if (rtt_measuring_) rtt_win_errors_++;
            return;
        }
        if (seq != c->rtt_seq) {
            rtt_seq_mismatch_++;
            if (rtt_measuring_) rtt_win_errors_++;
            if (rtt_first_error_.empty())
                rtt_first_error_ = "answer for seq " + std::to_string(seq) + " while " +
                                   std::to_string(c->rtt_seq) + " was in flight";
        }
        c->rtt_waiting = false;
        c->rtt_seq++;
        c->rtt_answers++;
        rtt_answers_++;
        if (!c->probed) c->probed = true;
        if (rtt_measuring_) {
            rtt_win_answers_++;
            if (rtt_lat_us_.size() < 50000000) rtt_lat_us_.push_back(sat_us(now - ts));
        }
        rtt_send(c);
    }

    // direct: an HTTP answer on c (send_next false: the app closes the
    // connection; pub_lost() reconnects and the loop resumes when connected).
    void on_rtt_http(Conn *c, int status, const std::string &body, int64_t now, bool send_next) {
        c->busy = false;
        rtt_status_[status]++;
        bool was = rtt_sending_;
        if (!send_next) rtt_sending_ = false;
        if (status >= 200 && status < 300) {
            st_.pub_ok++;
            on_rtt_answer(c, body.data(), body.size(), now);
        } else {
            rtt_http_errors_++;
            if (c->rtt_waiting) {
                rtt_failed(c, "HTTP " + std::to_string(status) + ": " + body.substr(0, 200), now);
                rtt_send(c);
            }
        }
        rtt_sending_ = was;
    }

    // ------------------------------------------------------------ phases

    int64_t deadline_in(double s) const { return now_ns() + int64_t(s * 1e9); }

    // Publishes probes until every open subscriber has one, then settles.
    bool wait_ready(Conn *pub, double *ready_s) {
        int64_t t0 = now_ns();
        int64_t deadline = deadline_in(o_.timeout_s);
        int64_t last_probe = 0;
        auto all_probed = [&] {
            for (Conn *c : subs_)
                if (c->st == St::Open && !c->probed) return false;
            return true;
        };
        bool ok = run_until([&] { return all_probed(); }, deadline, [&] {
            int64_t now = now_ns();
            if (pub_ready(pub) && pub->st == St::Open && now - last_probe > 50000000LL) {
                if (probe_k_ >= o_.max_probes) return 50;
                pub_send(pub, probe_k_++, true);
                last_probe = now;
            }
            return 10;
        }, 10);
        *ready_s = double(now_ns() - t0) / 1e9;
        // let the last probe answer arrive, then settle
        run_until([&] { return pubs_idle(); }, deadline_in(5));
        int64_t settle_end = now_ns() + int64_t(o_.settle_ms) * 1000000;
        run_until([] { return false; }, settle_end);
        return ok;
    }

    void emit_common(Json &j) {
        j.str("mode", o_.mode).str("target", o_.target);
        if (!o_.label.empty()) j.str("label", o_.label);
        if (!o_.tokens.empty()) j.num("tokens", double(o_.tokens.size()));
        if (!o_.query.empty() || !o_.tokens.empty()) {
            size_t qlen = o_.query.size();
            for (auto &t : o_.tokens) qlen = std::max(qlen, o_.query.size() + 7 + t.size());
            j.num("query_max_bytes", double(qlen));
        }
        j.num("subs", o_.subs).num("subs_connected", double(st_.hs_ok));
        // hs_fail counts every failed handshake, refused ones (hs_bad_status) included
        j.num("connect_failures", double(st_.hs_fail));
        j.num("handshakes_refused", double(st_.hs_bad_status));
        if (!st_.hs_refused.empty()) {
            std::string codes = "{";
            for (auto &kv : st_.hs_refused)
                codes += (codes.size() > 1 ? "," : "") + std::string("\"") +
                         std::to_string(kv.first) + "\":" + std::to_string(kv.second);
            j.raw("handshake_refused_status", codes + "}");
        }
        double hs_span = st_.hs_last > st_.hs_first ? double(st_.hs_last - st_.hs_first) / 1e9 : 0;
        j.num("handshake_s", hs_span);
        j.num("handshakes_per_s", hs_span > 0 ? double(st_.hs_ok) / hs_span : 0);
        j.num("handshake_p50_us", percentile(st_.hs_lat_us, 50));
        j.num("handshake_p99_us", percentile(st_.hs_lat_us, 99));
    }

    void emit_frames(Json &j, int64_t expected) {
        j.num("frames_expected", double(expected));
        j.num("frames_delivered", double(st_.frames_unique));
        j.num("frames_lost", double(std::max<int64_t>(0, expected - st_.frames_unique)));
        j.num("frames_duplicate", double(st_.dups));
        j.num("frames_out_of_order", double(st_.out_of_order));
        j.num("frames_bad", double(st_.bad_frames));
        j.num("lat_p50_us", percentile(st_.lat_us, 50));
        j.num("lat_p99_us", percentile(st_.lat_us, 99));
        j.num("lat_max_us", st_.lat_us.empty() ? -1 : double(*std::max_element(st_.lat_us.begin(), st_.lat_us.end())));
        j.num("subs_closed_by_server", double(st_.sub_closed));
        std::string codes = "{";
        for (auto &kv : st_.close_codes)
            codes += (codes.size() > 1 ? "," : "") + std::string("\"") + std::to_string(kv.first) +
                     "\":" + std::to_string(kv.second);
        j.raw("close_codes", codes + "}");
        j.num("pings", double(st_.pings));
    }

    void emit_pub(Json &j) {
        j.num("published_ok", double(st_.pub_ok)).num("publish_errors", double(st_.pub_err));
        std::string codes = "{";
        for (auto &kv : st_.pub_status)
            codes += (codes.size() > 1 ? "," : "") + std::string("\"") + std::to_string(kv.first) +
                     "\":" + std::to_string(kv.second);
        j.raw("publish_status", codes + "}");
        j.num("publish_reconnects", double(st_.pub_reconnects));
        j.num("pub_resp_p50_us", percentile(st_.pub_lat_us, 50));
        j.num("pub_resp_p99_us", percentile(st_.pub_lat_us, 99));
    }

    void emit_cpu(Json &j, const CpuSample &a, const CpuSample &b, double units, const char *per) {
        if (o_.cpu_pids.empty()) return;
        double s = b.sched_s - a.sched_s, t = b.ticks_s - a.ticks_s;
        j.num("server_cpu_s", s).num("server_cpu_ticks_s", t);
        j.num("cpu_pids_ok", (a.ok && b.ok) ? 1 : 0);
        std::string k1 = std::string("cpu_s_per_k") + per;
        std::string k2 = std::string("cpu_ticks_s_per_k") + per;
        j.num(k1.c_str(), units > 0 ? s / units * 1000.0 : -1);
        j.num(k2.c_str(), units > 0 ? t / units * 1000.0 : -1);
    }

    static double self_cpu_s() {
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    }

    void emit_client_cpu(Json &j) { j.num("client_cpu_s", self_cpu_s()); }

    // Times this process was preempted (another task wanted its core).
    static int64_t self_preempted() {
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        return ru.ru_nivcsw;
    }

    int run_fanout() {
        Json j;
        int64_t hard = deadline_in(o_.timeout_s * 3);
        connect_subs(o_.subs, deadline_in(o_.timeout_s));
        Conn *probe_pub = new_pub();
        double ready_s = 0;
        bool ready = wait_ready(probe_pub, &ready_s);
        int64_t n_open = sub_open_;

        total_msgs_ = o_.messages;
        track_m_ = total_msgs_;
        per_seq_.assign(size_t(track_m_), 0);
        if (uint64_t(o_.subs) * uint64_t(track_m_) <= (256u << 20))
            seen_.assign(size_t(o_.subs) * size_t(track_m_), 0);
        st_.frames = st_.frames_unique = st_.dups = st_.out_of_order = 0;
        st_.lat_us.clear();
        st_.lat_us.reserve(size_t(n_open) * size_t(total_msgs_));
        st_.first_frame_ns = st_.last_frame_ns = 0;
        for (Conn *c : subs_) c->last_seq = -1;
        int64_t sub_closed_before = st_.sub_closed;
        for (size_t k = 0; k < node_lat_.size(); k++) {
            node_lat_[k].clear();
            node_unique_[k] = node_open_[k] = 0;
        }
        for (Conn *c : subs_)
            if (c->st == St::Open) node_open_[sub_dst_.empty() ? 0 : c->id % sub_dst_.size()]++;

        // paced mode: a pool of connections, opened before the window
        if (o_.rate > 0) {
            for (int i = 1; i < o_.pub_pool; i++) new_pub();
            run_until([&] {
                for (Conn *c : pubs_)
                    if (c->st != St::Open) return false;
                return true;
            }, deadline_in(5));
        }

        int64_t interval = o_.rate > 0 ? int64_t(1e9 / o_.rate) : 0;
        if (o_.open_loop) {
            max_events_ = 64;  // look at the schedule every ~0.5 ms of frames (as room)
            ol_interval_ns_ = interval;
            ol_bucket_ns_ = int64_t(o_.bucket_s * 1e9);
            int64_t span = (total_msgs_ - 1) * interval;
            ol_bucket_lat_.assign(size_t(span / ol_bucket_ns_ + 1), {});
            ol_late_us_.reserve(size_t(total_msgs_));
        }
        std::vector<CpuSample> g0;
        for (auto &g : o_.cpu_groups) g0.push_back(read_cpu(g.second));
        CpuSample c0 = read_cpu(o_.cpu_pids);
        double cl0 = self_cpu_s();
        int64_t pre0 = self_preempted();
        int64_t t0 = now_ns();
        next_seq_ = 0;
        if (o_.rate <= 0) {
            drive_ = Drive::Burst;
            pub_send(probe_pub, next_seq_++, false);
        } else {
            drive_ = o_.open_loop ? Drive::OpenLoop : Drive::Paced;
            paced_t0_ = t0;
        }
        // Open loop: message k is due at t0 + k*interval and goes out then on
        // publisher k mod pool, pipelined behind its unanswered requests, with
        // its slot time as the send time: a server that answers late or
        // delivers late cannot slow the schedule down or hide its delay.
        auto ol_tick = [&]() -> int {
            int64_t now = now_ns();
            while (next_seq_ < total_msgs_) {
                int64_t due = paced_t0_ + next_seq_ * interval;
                if (now < due) return int((due - now) / 1000000);
                // an idle connection (from k mod pool on), else the open one
                // with the fewest requests in flight: pipelined behind them
                Conn *c = nullptr;
                size_t np = pubs_.size();
                for (size_t i = 0; i < np; i++) {
                    Conn *x = pubs_[(size_t(next_seq_) + i) % np];
                    if (x->st != St::Open) continue;
                    if (!x->busy) { c = x; break; }
                    if (!c || x->pipe.size() < c->pipe.size()) c = x;
                }
                if (!c) {
                    ol_unsent_++;  // counted as lost: expected covers every scheduled message
                } else {
                    int64_t late = now - due;
                    if (late > paced_max_late_ns_) paced_max_late_ns_ = late;
                    ol_late_us_.push_back(sat_us(late));
                    pub_send(c, next_seq_, false, due);
                }
                next_seq_++;
                now = now_ns();
            }
            return -1;
        };
        auto tick = [&]() -> int {
            if (drive_ == Drive::OpenLoop) return ol_tick();
            if (drive_ != Drive::Paced) return -1;
            int64_t now = now_ns();
            while (next_seq_ < total_msgs_) {
                int64_t due = paced_t0_ + next_seq_ * interval;
                if (now < due) return int((due - now) / 1000000);
                Conn *free_c = nullptr;
                for (Conn *c : pubs_)
                    if (pub_ready(c) && c->st == St::Open) { free_c = c; break; }
                if (!free_c) { paced_late_++; return 1; }
                int64_t late = now - due;
                if (late > paced_max_late_ns_) paced_max_late_ns_ = late;
                pub_send(free_c, next_seq_++, false);
            }
            return -1;
        };
        int64_t expected_max = n_open * total_msgs_;
        if (o_.open_loop) hard = t0 + (total_msgs_ - 1) * interval + int64_t(o_.timeout_s * 1e9);
        bool complete = run_until([&] {
            if (st_.frames_unique >= expected_max && next_seq_ >= total_msgs_ && pubs_idle())
                return true;
            if (next_seq_ >= total_msgs_ && pubs_idle()) {
                int64_t last = std::max(st_.last_frame_ns, last_pub_done_);
                if (now_ns() - last > int64_t(o_.quiet_ms) * 1000000) return true;
            }
            return false;
        }, hard, tick, 20);
        int64_t t_end = now_ns();
        CpuSample c1 = read_cpu(o_.cpu_pids);
        std::vector<CpuSample> g1;
        for (auto &g : o_.cpu_groups) g1.push_back(read_cpu(g.second));
        double cl1 = self_cpu_s();
        int64_t pre1 = self_preempted();
        drive_ = Drive::None;

        // expected frames: every subscriber open at the start times every accepted message
        // (open loop: every scheduled message, so a refused or unsent publish is loss too)
        int64_t expected = n_open * (o_.open_loop ? total_msgs_ : st_.pub_ok);
        emit_common(j);
        j.num("ready", ready ? 1 : 0).num("ready_s", ready_s).num("probes", double(st_.probes_sent));
        j.num("messages", double(total_msgs_)).num("rate", o_.rate).num("size", o_.size);
        emit_pub(j);
        emit_frames(j, expected);
        j.num("subs_closed_during_window", double(st_.sub_closed - sub_closed_before));
        int64_t last = st_.last_frame_ns ? st_.last_frame_ns : t_end;
        double window = double(last - t0) / 1e9;
        j.num("window_s", window);
        j.num("delivery_rate", window > 0 ? double(st_.frames_unique) / window : 0);
        j.num("complete", complete && st_.frames_unique >= expected ? 1 : 0);
        if (o_.rate > 0) {
            j.num("paced_late_ticks", double(paced_late_));
            j.num("paced_max_late_us", double(paced_max_late_ns_) / 1000);
        }
        if (o_.open_loop) emit_open_loop(j, t0, interval, n_open, t_end, pre1 - pre0);
        // messages that reached fewer than all subscribers
        int64_t partial = 0;
        for (uint32_t n : per_seq_)
            if (int64_t(n) < n_open) partial++;
        j.num("messages_partially_delivered", double(partial));
        emit_cpu(j, c0, c1, double(st_.frames_unique), "frames");
        emit_client_cpu(j);
        // Who was the limit in the window (first publish -> end of delivery):
        // share of one CPU used by the server and by this load generator.
        double span = double(t_end - t0) / 1e9;
        j.num("measure_s", span);
        j.num("client_cpu_window_s", cl1 - cl0);
        j.num("client_busy", span > 0 ? (cl1 - cl0) / span : -1);
        j.num("server_busy", span > 0 && !o_.cpu_pids.empty() ? (c1.sched_s - c0.sched_s) / span : -1);
        j.num("client_us_per_frame",
              st_.frames_unique > 0 ? (cl1 - cl0) * 1e6 / double(st_.frames_unique) : -1);
        emit_nodes(j);
        for (size_t k = 0; k < o_.cpu_groups.size(); k++) {
            // CPU over the same window; memory with every subscriber still open
            const std::string &n = o_.cpu_groups[k].first;
            double s = g1[k].sched_s - g0[k].sched_s;
            j.num(("cpu_" + n + "_s").c_str(), s);
            j.num(("cpu_" + n + "_us_per_frame").c_str(),
                  st_.frames_unique > 0 ? s * 1e6 / double(st_.frames_unique) : -1);
            j.num(("cpu_" + n + "_ok").c_str(), g0[k].ok && g1[k].ok ? 1 : 0);
            long long rss = 0, pss = 0;
            read_mem(o_.cpu_groups[k].second, &rss, &pss);
            j.num(("rss_" + n).c_str(), double(rss)).num(("pss_" + n).c_str(), double(pss));
        }
        std::printf("%s\n", j.done().c_str());
        std::fflush(stdout);
        return 0;
    }

    // Open loop: the schedule's own lateness, what was still in flight at the
    // end, and latency over time: per bucket of slot time, the frames of the
    // messages due in it (delivered / expected) and their p50/p99/max.
    void emit_open_loop(Json &j, int64_t t0, int64_t interval, int64_t n_open, int64_t t_end,
                        int64_t preempted) {
        j.num("open_loop", 1).num("pub_pool", double(pubs_.size()));
        j.num("schedule_s", double((total_msgs_ - 1) * interval) / 1e9);
        j.num("messages_unsent", double(ol_unsent_));
        j.num("send_late_p50_us", percentile(ol_late_us_, 50));
        j.num("send_late_p99_us", percentile(ol_late_us_, 99));
        j.num("send_max_late_us", double(paced_max_late_ns_) / 1000);
        j.num("client_preempted", double(preempted));
        int64_t inflight = 0;
        for (Conn *c : pubs_) inflight += int64_t(c->pipe.size());
        j.num("publishes_unanswered_at_end", double(inflight));
        int64_t sched_end = t0 + (total_msgs_ - 1) * interval;
        j.num("tail_after_schedule_s",
              st_.last_frame_ns > sched_end ? double(st_.last_frame_ns - sched_end) / 1e9 : 0);
        j.num("ended_after_schedule_s", double(t_end - sched_end) / 1e9);
        std::string b = "[";
        for (size_t k = 0; k < ol_bucket_lat_.size(); k++) {
            int64_t lo = int64_t(k) * ol_bucket_ns_, hi = lo + ol_bucket_ns_;
            int64_t msgs = 0, got = 0;
            for (int64_t s = 0; s < total_msgs_; s++) {
                int64_t at = s * interval;
                if (at >= lo && at < hi) {
                    msgs++;
                    got += per_seq_[size_t(s)];
                }
            }
            std::vector<uint32_t> &v = ol_bucket_lat_[k];
            char e[256];
            std::snprintf(e, sizeof e,
                          "%s{\"t_s\":%.6g,\"messages\":%" PRId64 ",\"expected\":%" PRId64
                          ",\"delivered\":%" PRId64 ",\"p50_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f}",
                          k ? "," : "", double(lo) / 1e9, msgs, msgs * n_open, got,
                          percentile(v, 50), percentile(v, 99),
                          v.empty() ? -1.0 : double(*std::max_element(v.begin(), v.end())));
            b += e;
        }
        j.raw("buckets", b + "]");
    }

    // --sub-ports: frames and latency of each node's subscribers (node k: the
    // subscribers i with i mod n = k; expected = its open subscribers x 2xx publishes).
    void emit_nodes(Json &j) {
        if (sub_dst_.empty()) return;
        for (size_t k = 0; k < sub_dst_.size(); k++) {
            std::string n = "node" + std::to_string(k) + "_";
            std::vector<uint32_t> &v = node_lat_[k];
            j.num((n + "port").c_str(), o_.sub_ports[k]);
            j.num((n + "subs_open").c_str(), double(node_open_[k]));
            j.num((n + "frames_expected").c_str(), double(node_open_[k] * st_.pub_ok));
            j.num((n + "frames_delivered").c_str(), double(node_unique_[k]));
            j.num((n + "lat_p50_us").c_str(), percentile(v, 50));
            j.num((n + "lat_p99_us").c_str(), percentile(v, 99));
            j.num((n + "lat_max_us").c_str(), v.empty() ? -1 : double(*std::max_element(v.begin(), v.end())));
        }
    }

    static void read_mem(const std::vector<int> &pids, long long *rss, long long *pss) {
        std::string txt;
        for (int pid : pids) {
            if (!read_file("/proc/" + std::to_string(pid) + "/smaps_rollup", txt)) continue;
            size_t p = txt.find("\nRss:");
            if (p != std::string::npos) *rss += std::atoll(txt.c_str() + p + 5) * 1024;
            p = txt.find("\nPss:");
            if (p != std::string::npos) *pss += std::atoll(txt.c_str() + p + 5) * 1024;
        }
    }

    int run_publish() {
        Json j;
        int64_t n_open = 0;
        if (o_.subs > 0) {
            connect_subs(o_.subs, deadline_in(o_.timeout_s));
            Conn *probe_pub = new_pub();
            double ready_s = 0;
            wait_ready(probe_pub, &ready_s);
            n_open = sub_open_;
        }
        st_.frames = st_.frames_unique = st_.dups = st_.out_of_order = 0;
        st_.lat_us.clear();
        for (Conn *c : subs_) c->last_seq = -1;
        while (int(pubs_.size()) < o_.conns) new_pub();
        run_until([&] {
            for (Conn *c : pubs_)
                if (c->st != St::Open) return false;
            return true;
        }, deadline_in(5));
        int64_t pub_ok_before = st_.pub_ok;
        st_.pub_lat_us.clear();

        int64_t t0 = now_ns();
        win_start_ = t0 + int64_t(o_.warmup_s * 1e9);
        win_end_ = win_start_ + int64_t(o_.duration_s * 1e9);
        flood_stop_ = win_end_;
        drive_ = Drive::Flood;
        next_seq_ = 0;
        for (Conn *c : pubs_)
            if (pub_ready(c)) pub_send(c, next_seq_++, false);
        CpuSample c0, c1;
        bool have_c0 = false;
        run_until([&] { return now_ns() >= win_end_; }, win_end_ + 1000000000LL, [&] {
            int64_t now = now_ns();
            if (!have_c0 && now >= win_start_) {
                c0 = read_cpu(o_.cpu_pids);
                have_c0 = true;
            }
            if (!have_c0) return int((win_start_ - now) / 1000000);
            return int((win_end_ - now) / 1000000);
        }, 20);
        if (!have_c0) c0 = read_cpu(o_.cpu_pids);
        c1 = read_cpu(o_.cpu_pids);
        // let requests in flight finish, then drain subscriber frames
        run_until([&] { return pubs_idle(); }, deadline_in(10));
        drive_ = Drive::None;
        int64_t sent_ok = st_.pub_ok - pub_ok_before;
        int64_t expected = n_open * sent_ok;
        if (n_open > 0) {
            int64_t quiet = int64_t(o_.quiet_ms) * 1000000;
            run_until([&] {
                if (st_.frames_unique >= expected) return true;
                int64_t last = std::max(st_.last_frame_ns, last_pub_done_);
                return now_ns() - last > quiet;
            }, deadline_in(o_.timeout_s));
        }
        emit_common(j);
        j.num("conns", o_.conns).num("duration_s", o_.duration_s).num("size", o_.size);
        j.num("requests", double(win_ok_));
        j.num("req_per_s", double(win_ok_) / o_.duration_s);
        j.num("resp_p50_us", percentile(win_lat_us_, 50));
        j.num("resp_p99_us", percentile(win_lat_us_, 99));
        emit_pub(j);
        if (n_open > 0) emit_frames(j, expected);
        emit_cpu(j, c0, c1, double(win_ok_), "requests");
        emit_client_cpu(j);
        std::printf("%s\n", j.done().c_str());
        std::fflush(stdout);
        return 0;
    }

    // Connect: opens N subscribers, prints {"event":"ready",...}, holds them.
    // While holding, stdin lines "probe" / "publish" make this process publish
    // one probe / one measured message (seq 0) on a publisher connection of
    // its own; it prints {"event":"probed"} once every open subscriber has a
    // probe and {"event":"frames"} once every open subscriber has the message
    // (with first/last receive times, CLOCK_MONOTONIC, comparable across
    // processes). It stops holding on any other line, EOF, --hold-s, or once
    // the server has closed every subscriber ({"event":"closed"}).
    int run_connect() {
        Json j;
        CpuSample c0 = read_cpu(o_.cpu_pids);
        connect_subs(o_.subs, deadline_in(o_.timeout_s));
        CpuSample c1 = read_cpu(o_.cpu_pids);
        int64_t settle_end = now_ns() + int64_t(o_.settle_ms) * 1000000;
        run_until([] { return false; }, settle_end);
        Json r;
        r.str("event", "ready").num("subs_connected", double(st_.hs_ok))
         .num("subs_open", double(sub_open_)).num("connect_failures", double(st_.hs_fail))
         .num("hs_first_ns", double(st_.hs_first)).num("hs_last_ns", double(st_.hs_last));
        std::printf("%s\n", r.done().c_str());
        std::fflush(stdout);
        // hold until a line on stdin (or EOF), bounded by --hold-s
        fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = nullptr;
        if (epoll_ctl(ep_, EPOLL_CTL_ADD, 0, &ev) < 0) stdin_closed_ = true;  // not pollable: do not hold
        int64_t t_hold = now_ns();
        Conn *pub = nullptr;
        bool said_probed = false, said_frames = false, said_closed = false;
        bool published = false;
        int64_t open_at_publish = 0;
        auto all_probed = [&] {
            for (Conn *c : subs_)
                if (c->st == St::Open && !c->probed) return false;
            return true;
        };
        auto tick = [&]() -> int {
            int64_t now = now_ns();
            if (cmd_expect_) {
                // the measured message comes (from this process or another):
                // count its frames from here
                cmd_expect_ = false;
                published = true;
                said_frames = false;
                open_at_publish = sub_open_;
                st_.frames = st_.frames_unique = 0;
                st_.lat_us.clear();
                st_.first_frame_ns = st_.last_frame_ns = 0;
            }
            if ((cmd_probe_ || cmd_publish_) && !pub) pub = new_pub();
            if (pub && pub->st == St::Open && !pub->busy) {
                if (cmd_publish_) {
                    cmd_publish_ = false;
                    pub_send_ns_ = now;
                    pub_send(pub, 0, false, now);
                } else if (cmd_probe_) {
                    cmd_probe_ = false;
                    pub_send(pub, probe_k_++, true);
                }
            }
            if (!said_probed && st_.probe_frames > 0 && all_probed()) {
                said_probed = true;
                Json e;
                e.str("event", "probed").num("subs_open", double(sub_open_));
                std::printf("%s\n", e.done().c_str());
                std::fflush(stdout);
            }
            if (published && !said_frames && st_.frames_unique >= sub_open_) {
                said_frames = true;
                Json e;
                e.str("event", "frames").num("frames", double(st_.frames_unique))
                 .num("subs_open", double(sub_open_))
                 .num("first_frame_ns", double(st_.first_frame_ns))
                 .num("last_frame_ns", double(st_.last_frame_ns))
                 .num("pub_send_ns", double(pub_send_ns_));
                std::printf("%s\n", e.done().c_str());
                std::fflush(stdout);
            }
            if (!said_closed && st_.hs_ok > 0 && sub_open_ == 0) {
                said_closed = true;
                Json e;
                e.str("event", "closed").num("last_close_ns", double(st_.last_close_ns));
                std::printf("%s\n", e.done().c_str());
                std::fflush(stdout);
            }
            (void)now;
            return 20;
        };
        run_until([&] { return stdin_closed_ || said_closed; }, deadline_in(o_.hold_s), tick, 20);
        emit_common(j);
        j.num("held_s", double(now_ns() - t_hold) / 1e9);
        j.num("hs_first_ns", double(st_.hs_first)).num("hs_last_ns", double(st_.hs_last));
        j.num("subs_open_at_end", double(sub_open_));
        j.num("subs_closed_by_server", double(st_.sub_closed));
        j.num("last_close_ns", double(st_.last_close_ns));
        std::string codes = "{";
        for (auto &kv : st_.close_codes)
            codes += (codes.size() > 1 ? "," : "") + std::string("\"") + std::to_string(kv.first) +
                     "\":" + std::to_string(kv.second);
        j.raw("close_codes", codes + "}");
        j.num("pings", double(st_.pings));
        if (published) {
            j.num("pub_send_ns", double(pub_send_ns_)).num("subs_open_at_publish", double(open_at_publish));
            j.num("frames_delivered", double(st_.frames_unique));
            j.num("first_frame_ns", double(st_.first_frame_ns)).num("last_frame_ns", double(st_.last_frame_ns));
            j.num("lat_p50_us", percentile(st_.lat_us, 50));
            j.num("lat_p99_us", percentile(st_.lat_us, 99));
            j.num("lat_max_us", st_.lat_us.empty() ? -1 : double(*std::max_element(st_.lat_us.begin(), st_.lat_us.end())));
        }
        j.num("probes", double(st_.probes_sent));
        emit_pub(j);
        emit_cpu(j, c0, c1, double(st_.hs_ok), "handshakes");
        emit_client_cpu(j);
        std::printf("%s\n", j.done().c_str());
        std::fflush(stdout);
        return 0;
    }

    // Room: a probe from the first open sender every 50 ms until every open
    // member has one, then settles. Gives up after 3 s if no member got any
    // (a server that does not relay client messages).
    bool room_wait_ready(double *ready_s) {
        int64_t t0 = now_ns();
        int64_t give_up = t0 + 3000000000LL;
        int64_t last_probe = 0;
        auto all_probed = [&] {
            for (Conn *c : subs_)
                if (c->st == St::Open && !c->probed) return false;
            return true;
        };
        run_until([&] { return all_probed() || (st_.probe_frames == 0 && now_ns() > give_up); },
                  deadline_in(o_.timeout_s), [&] {
            int64_t now = now_ns();
            if (now - last_probe < 50000000LL) return int((last_probe + 50000000LL - now) / 1000000);
            if (probe_k_ >= o_.max_probes) return 50;
            for (Conn *c : senders_) {
                if (c->st != St::Open) continue;
                send_text(c, room_msg(0, probe_k_++, true, now));
                st_.probes_sent++;
                last_probe = now;
                break;
            }
            return 50;
        }, 10);
        *ready_s = double(now_ns() - t0) / 1e9;
        bool ok = all_probed() && st_.probe_frames > 0;
        if (ok) {
            // the last probes' frames arrive, then settle
            int64_t settle_end = now_ns() + int64_t(o_.settle_ms) * 1000000;
            run_until([] { return false; }, settle_end);
        }
        return ok;
    }

    int run_room() {
        Json j;
        room_ = true;
        max_events_ = 64;  // ~0.5 ms of frames between two looks at the schedule
        connect_subs(o_.subs, deadline_in(o_.timeout_s));
        for (int i = 0; i < o_.senders; i++) senders_.push_back(subs_[size_t(i)]);
        double ready_s = 0;
        bool ready = room_wait_ready(&ready_s);
        int64_t n_open = sub_open_;
        size_t n_send = senders_.size();
        if (st_.probe_frames == 0) {
            // nothing relayed: report why (and nothing to compare), skip the schedule
            j.str("mode", o_.mode).str("target", o_.target);
            j.num("subs", o_.subs).num("subs_connected", double(st_.hs_ok));
            j.num("ready", 0).num("ready_s", ready_s).num("probes", double(st_.probes_sent));
            j.num("server_error_frames", double(room_errors_));
            j.num("other_frames", double(room_other_));
            j.str("error", "no member received any of " + std::to_string(st_.probes_sent) +
                           " probe messages; first other frame from the server: " +
                           (room_first_other_.empty() ? std::string("none") : room_first_other_));
            std::printf("%s\n", j.done().c_str());
            std::fflush(stdout);
            return 0;
        }

        total_msgs_ = int64_t(n_send) * o_.messages;
        track_m_ = total_msgs_;
        per_seq_.assign(size_t(track_m_), 0);
        if (uint64_t(o_.subs) * uint64_t(track_m_) <= (256u << 20))
            seen_.assign(size_t(o_.subs) * size_t(track_m_), 0);
        room_last_.assign(size_t(o_.subs) * n_send, -1);
        st_.frames = st_.frames_unique = st_.dups = st_.out_of_order = st_.bad_frames = 0;
        st_.lat_us.clear();
        st_.lat_us.reserve(size_t(n_open) * size_t(total_msgs_));
        st_.first_frame_ns = st_.last_frame_ns = 0;
        room_errors_ = room_other_ = 0;
        int64_t sub_closed_before = st_.sub_closed;

        // The schedule: sender s sends message k at t0 + s*stagger + k*interval.
        int64_t interval = int64_t(1e9 / o_.rate);
        int64_t stagger = interval / int64_t(n_send);
        std::vector<int64_t> next(n_send, 0);
        int64_t last_send = 0;
        CpuSample c0 = read_cpu(o_.cpu_pids);
        double cl0 = self_cpu_s();
        int64_t pre0 = self_preempted();
        int64_t t0 = now_ns();
        auto slot = [&](size_t s, int64_t k) { return t0 + int64_t(s) * stagger + k * interval; };
        auto tick = [&]() -> int {
            int64_t now = now_ns();
            int64_t wait = -1;
            for (size_t s = 0; s < n_send; s++) {
                while (next[s] < o_.messages && slot(s, next[s]) <= now) {
                    int64_t due = slot(s, next[s]);
                    Conn *c = senders_[s];
                    if (c->st == St::Open) {
                        send_text(c, room_msg(int64_t(s), next[s], false, due));
                        room_sent_++;
                        last_send = now;
                        if (now - due > room_max_late_ns_) room_max_late_ns_ = now - due;
                        room_late_us_.push_back(sat_us(now - due));
                    } else {
                        room_send_failed_++;
                    }
                    next[s]++;
                }
                if (next[s] < o_.messages) {
                    int64_t w = slot(s, next[s]) - now;
                    if (wait < 0 || w < wait) wait = w;
                }
            }
            return wait < 0 ? -1 : int(wait / 1000000);
        };
        auto all_sent = [&] {
            for (int64_t k : next)
                if (k < o_.messages) return false;
            return true;
        };
        int64_t sched_end = slot(n_send - 1, o_.messages - 1);
        int64_t hard = sched_end + int64_t(o_.timeout_s * 1e9);
        bool complete = run_until([&] {
            if (!all_sent()) return false;
            if (st_.frames_unique >= n_open * room_sent_) return true;
            int64_t last = std::max(st_.last_frame_ns, last_send);
            return now_ns() - last > int64_t(o_.quiet_ms) * 1000000;
        }, hard, tick, 20);
        int64_t t_end = now_ns();
        CpuSample c1 = read_cpu(o_.cpu_pids);
        double cl1 = self_cpu_s();
        int64_t pre1 = self_preempted();

        // expected frames: every member open at the start times every message sent
        int64_t expected = n_open * room_sent_;
        emit_common(j);
        j.num("ready", ready ? 1 : 0).num("ready_s", ready_s).num("probes", double(st_.probes_sent));
        j.num("senders", double(n_send)).num("rate_per_sender", o_.rate);
        j.num("messages_per_sender", o_.messages).num("size", o_.size);
        j.num("frame_bytes_received", double(room_frame_len_));
        j.num("messages", double(total_msgs_)).num("messages_sent", double(room_sent_));
        j.num("messages_not_sent", double(room_send_failed_));
        j.num("schedule_s", double(sched_end - t0) / 1e9);
        j.num("send_late_p50_us", percentile(room_late_us_, 50));
        j.num("send_late_p99_us", percentile(room_late_us_, 99));
        j.num("send_max_late_us", double(room_max_late_ns_) / 1000);
        j.num("client_preempted", double(pre1 - pre0));  // involuntary switches in the window
        emit_frames(j, expected);
        j.num("subs_closed_during_window", double(st_.sub_closed - sub_closed_before));
        j.num("server_error_frames", double(room_errors_));
        j.num("other_frames", double(room_other_));
        if (!room_first_other_.empty()) j.str("first_other_frame", room_first_other_);
        int64_t last = st_.last_frame_ns ? st_.last_frame_ns : t_end;
        double window = double(last - t0) / 1e9;
        j.num("window_s", window);
        j.num("delivery_rate", window > 0 ? double(st_.frames_unique) / window : 0);
        j.num("complete", complete && st_.frames_unique >= expected ? 1 : 0);
        int64_t partial = 0;
        for (uint32_t n : per_seq_)
            if (int64_t(n) < n_open) partial++;
        j.num("messages_partially_delivered", double(partial));
        emit_cpu(j, c0, c1, double(st_.frames_unique), "frames");
        j.num("cpu_us_per_frame", st_.frames_unique > 0 && !o_.cpu_pids.empty()
                                      ? (c1.sched_s - c0.sched_s) * 1e6 / double(st_.frames_unique)
                                      : -1);
        emit_client_cpu(j);
        double span = double(t_end - t0) / 1e9;
        j.num("measure_s", span);
        j.num("client_cpu_window_s", cl1 - cl0);
        j.num("client_busy", span > 0 ? (cl1 - cl0) / span : -1);
        j.num("server_busy", span > 0 && !o_.cpu_pids.empty() ? (c1.sched_s - c0.sched_s) / span : -1);
        j.num("client_us_per_frame",
              st_.frames_unique > 0 ? (cl1 - cl0) * 1e6 / double(st_.frames_unique) : -1);
        std::printf("%s\n", j.done().c_str());
        std::fflush(stdout);
        return 0;
    }

    // Closed-loop round trips (see the top): connect, start the loop, wait
    // until every connection has had an answer (gives up after 3 s without
    // any), warm up, measure --duration-s, stop sending, collect what is in
    // flight (5 s at most; what is still missing then is "unanswered").
    int run_rtt() {
        Json j;
        rtt_ = true;
        int n = o_.conns;
        double conn_s = 0;
        int64_t tc = now_ns();
        if (o_.target == "direct") {
            for (int i = 0; i < n; i++) new_pub();
            run_until([&] {
                for (Conn *c : pubs_)
                    if (c->st != St::Open) return false;
                return true;
            }, deadline_in(o_.timeout_s));
        } else {
            connect_subs(n, deadline_in(o_.timeout_s));
        }
        conn_s = double(now_ns() - tc) / 1e9;
        std::vector<Conn *> &conns = o_.target == "direct" ? pubs_ : subs_;
        int64_t n_open = 0;
        for (Conn *c : conns)
            if (c->st == St::Open) n_open++;

        // start: every open connection sends its first message
        rtt_sending_ = true;
        int64_t t_start = now_ns();
        for (Conn *c : conns) rtt_send(c);
        auto all_answered = [&] {
            for (Conn *c : conns)
                if (c->st == St::Open && !c->probed) return false;
            return true;
        };
        int64_t give_up = t_start + 3000000000LL;
        run_until([&] { return all_answered() || (rtt_answers_ == 0 && now_ns() > give_up); },
                  deadline_in(o_.timeout_s));
        double ready_s = double(now_ns() - t_start) / 1e9;
        bool ready = n_open > 0 && all_answered();
        auto emit_head = [&] {
            j.str("mode", o_.mode).str("target", o_.target).str("path", o_.path);
            if (!o_.label.empty()) j.str("label", o_.label);
            j.num("conns", n).num("conns_open", double(n_open)).num("connect_s", conn_s);
            if (o_.target != "direct") {
                j.num("connect_failures", double(st_.hs_fail));
                double hs_span = st_.hs_last > st_.hs_first ? double(st_.hs_last - st_.hs_first) / 1e9 : 0;
                j.num("handshakes_per_s", hs_span > 0 ? double(st_.hs_ok) / hs_span : 0);
            }
            j.num("ready", ready ? 1 : 0).num("ready_s", ready_s);
        };
        if (rtt_answers_ == 0) {
            rtt_sending_ = false;
            emit_head();
            j.num("error_replies", double(rtt_error_replies_)).num("other_frames", double(rtt_other_));
            j.str("error", "no connection got an answer to its first message in " +
                           std::to_string(ready_s).substr(0, 4) + " s; first other answer: " +
                           (rtt_first_error_.empty() ? std::string("none") : rtt_first_error_));
            std::printf("%s\n", j.done().c_str());
            std::fflush(stdout);
            return 0;
        }

        // warm-up, then the window
        int64_t warm_end = now_ns() + int64_t(o_.warmup_s * 1e9);
        run_until([] { return false; }, warm_end);
        int64_t err0 = rtt_error_replies_ + rtt_http_errors_ + rtt_lost_ + rtt_seq_mismatch_ +
                       rtt_unexpected_ + rtt_other_;
        int64_t closed0 = st_.sub_closed + st_.pub_reconnects;
        rtt_lat_us_.reserve(1 << 20);
        CpuSample c0 = read_cpu(o_.cpu_pids), a0 = read_cpu(o_.app_pids);
        double cl0 = self_cpu_s();
        int64_t pre0 = self_preempted();
        std::vector<int64_t> per0;
        for (Conn *c : conns) per0.push_back(c->rtt_answers);
        int64_t t0 = now_ns();
        rtt_measuring_ = true;
        int64_t t_win_end = t0 + int64_t(o_.duration_s * 1e9);
        run_until([] { return false; }, t_win_end, nullptr, 20);
        rtt_measuring_ = false;
        int64_t t1 = now_ns();
        CpuSample c1 = read_cpu(o_.cpu_pids), a1 = read_cpu(o_.app_pids);
        double cl1 = self_cpu_s();
        int64_t pre1 = self_preempted();
        int64_t err1 = rtt_error_replies_ + rtt_http_errors_ + rtt_lost_ + rtt_seq_mismatch_ +
                       rtt_unexpected_ + rtt_other_;
        int64_t closed1 = st_.sub_closed + st_.pub_reconnects;
        // answers per connection in the window: the least and the most
        // served (a connection stuck behind a stall shows as a low minimum)
        int64_t per_min = -1, per_max = 0;
        for (size_t i = 0; i < conns.size(); i++) {
            int64_t k = conns[i]->rtt_answers - per0[i];
            if (per_min < 0 || k < per_min) per_min = k;
            per_max = std::max(per_max, k);
        }

        // stop sending; collect what is in flight
        rtt_sending_ = false;
        auto in_flight = [&] {
            int64_t k = 0;
            for (Conn *c : conns)
                if (c->st == St::Open && c->rtt_waiting) k++;
            return k;
        };
        int64_t at_stop = in_flight();
        run_until([&] { return in_flight() == 0; }, deadline_in(std::min(5.0, o_.timeout_s)));
        int64_t unanswered = in_flight();
        int64_t open_end = 0;
        for (Conn *c : conns)
            if (c->st == St::Open) open_end++;

        double win = double(t1 - t0) / 1e9;
        emit_head();
        j.num("duration_s", o_.duration_s).num("warmup_s", o_.warmup_s).num("window_s", win);
        j.num("message_bytes", double(rtt_msg(1000000, now_ns()).size()));
        j.num("answers", double(rtt_win_answers_));
        j.num("answers_total", double(rtt_answers_));
        j.num("answers_per_s", win > 0 ? double(rtt_win_answers_) / win : 0);
        j.num("rtt_p50_us", percentile(rtt_lat_us_, 50));
        j.num("rtt_p90_us", percentile(rtt_lat_us_, 90));
        j.num("rtt_p99_us", percentile(rtt_lat_us_, 99));
        j.num("rtt_max_us", rtt_lat_us_.empty() ? -1
                            : double(*std::max_element(rtt_lat_us_.begin(), rtt_lat_us_.end())));
        j.num("answers_per_conn_min", double(per_min)).num("answers_per_conn_max", double(per_max));
        j.num("errors_in_window", double(err1 - err0));
        j.num("errors", double(err1 + unanswered));
        j.num("error_replies", double(rtt_error_replies_));
        j.num("http_errors", double(rtt_http_errors_));
        if (o_.target == "direct") {
            std::string codes = "{";
            for (auto &kv : rtt_status_)
                codes += (codes.size() > 1 ? "," : "") + std::string("\"") +
                         std::to_string(kv.first) + "\":" + std::to_string(kv.second);
            j.raw("http_status", codes + "}");
        }
        j.num("lost_in_flight", double(rtt_lost_));
        j.num("seq_mismatch", double(rtt_seq_mismatch_));
        j.num("unexpected_answers", double(rtt_unexpected_));
        j.num("other_frames", double(rtt_other_));
        j.num("in_flight_at_stop", double(at_stop));
        j.num("unanswered", double(unanswered));
        j.num("conns_closed_in_window", double(closed1 - closed0));
        j.num("conns_open_at_end", double(open_end));
        if (o_.target != "direct") {
            std::string codes = "{";
            for (auto &kv : st_.close_codes)
                codes += (codes.size() > 1 ? "," : "") + std::string("\"") +
                         std::to_string(kv.first) + "\":" + std::to_string(kv.second);
            j.raw("close_codes", codes + "}");
            j.num("pings", double(st_.pings));
        }
        if (!rtt_first_error_.empty()) j.str("first_error", rtt_first_error_);
        double units = double(rtt_win_answers_);
        double srv = c1.sched_s - c0.sched_s, app = a1.sched_s - a0.sched_s;
        if (!o_.cpu_pids.empty()) {
            j.num("server_cpu_s", srv).num("server_cpu_ticks_s", c1.ticks_s - c0.ticks_s);
            j.num("server_cpu_us_per_msg", units > 0 ? srv * 1e6 / units : -1);
            j.num("server_busy", win > 0 ? srv / win : -1);
        }
        if (!o_.app_pids.empty()) {
            j.num("app_cpu_s", app).num("app_cpu_ticks_s", a1.ticks_s - a0.ticks_s);
            j.num("app_cpu_us_per_msg", units > 0 ? app * 1e6 / units : -1);
            j.num("app_busy", win > 0 ? app / win : -1);
        }
        j.num("cpu_pids_ok", (c0.ok && c1.ok && a0.ok && a1.ok) ? 1 : 0);
        j.num("total_cpu_us_per_msg", units > 0 ? (srv + app) * 1e6 / units : -1);
        j.num("total_busy", win > 0 ? (srv + app) / win : -1);
        emit_client_cpu(j);
        j.num("client_cpu_window_s", cl1 - cl0);
        j.num("client_busy", win > 0 ? (cl1 - cl0) / win : -1);
        j.num("client_us_per_msg", units > 0 ? (cl1 - cl0) * 1e6 / units : -1);
        j.num("client_preempted", double(pre1 - pre0));
        std::printf("%s\n", j.done().c_str());
        std::fflush(stdout);
        return 0;
    }
};

}  // namespace

int main(int argc, char **argv) {
    Opts o = parse_opts(argc, argv);
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rlim_t(o.subs + o.conns + o.pub_pool + 64) > rl.rlim_cur)
        die("--subs %d needs more file descriptors than the limit %llu", o.subs,
            (unsigned long long)rl.rlim_cur);
    rng_state ^= uint64_t(now_ns()) * 0x2545F4914F6CDD1DULL;
    Loadgen lg(o);
    return lg.run();
}
