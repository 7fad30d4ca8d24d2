#include "ws_handshake.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace realtime::ws {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (lower(a[i]) != lower(b[i])) {
            return false;
        }
    }
    return true;
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

// Calls f(element) for each trimmed, non-empty element of a comma list;
// stops early when f returns true and reports whether it did.
template <class F>
bool any_element(std::string_view value, F f) {
    while (true) {
        size_t comma = value.find(',');
        std::string_view item = trim(value.substr(0, comma));
        if (!item.empty() && f(item)) {
            return true;
        }
        if (comma == std::string_view::npos) {
            return false;
        }
        value.remove_prefix(comma + 1);
    }
}

bool any_has_token(const std::vector<std::string_view>& values, std::string_view token) {
    for (auto v : values) {
        if (has_token(v, token)) {
            return true;
        }
    }
    return false;
}

bool is_base64_char(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

// Splits "host[:port]" or "[v6]:port"; port 0 when absent. False when
// malformed (empty host, a port that is not 1-65535 in digits).
bool split_host_port(std::string_view in, std::string_view* host, unsigned* port) noexcept {
    std::string_view rest;
    if (!in.empty() && in.front() == '[') {
        size_t end = in.find(']');
        if (end == std::string_view::npos) {
            return false;
        }
        *host = in.substr(0, end + 1);
        rest = in.substr(end + 1);
    } else {
        size_t colon = in.find(':');
        *host = in.substr(0, colon);
        rest = colon == std::string_view::npos ? std::string_view() : in.substr(colon);
    }
    if (host->empty()) {
        return false;
    }
    *port = 0;
    if (rest.empty()) {
        return true;
    }
    if (rest.front() != ':' || rest.size() < 2 || rest.size() > 6) {
        return false;
    }
    unsigned n = 0;
    for (char c : rest.substr(1)) {
        if (c < '0' || c > '9') {
            return false;
        }
        n = n * 10 + static_cast<unsigned>(c - '0');
    }
    if (n == 0 || n > 65535) {
        return false;
    }
    *port = n;
    return true;
}

HandshakeResult refuse(int status, std::string_view reason) {
    HandshakeResult r;
    r.status = status;
    r.reason = reason;
    return r;
}

}  // namespace

bool has_token(std::string_view value, std::string_view token) noexcept {
    return any_element(value, [&](std::string_view item) { return iequals(item, token); });
}

bool is_valid_key(std::string_view key) noexcept {
    if (key.size() != 24 || key[22] != '=' || key[23] != '=') {
        return false;
    }
    for (size_t i = 0; i < 22; ++i) {
        if (!is_base64_char(key[i])) {
            return false;
        }
    }
    // 16 bytes leave the last character's low 4 bits unused: they must be 0.
    static constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    return (kAlphabet.find(key[21]) & 0x0F) == 0;
}

std::string compute_accept(std::string_view key) {
    std::string input(key);
    input.append(kGuid);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
    unsigned char out[32];  // base64 of 20 bytes is 28 chars + NUL
    int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
    return std::string(reinterpret_cast<char*>(out), static_cast<size_t>(n));
}

std::string_view find_prefixed_element(std::string_view value, std::string_view prefix) noexcept {
    std::string_view found;
    any_element(value, [&](std::string_view item) {
        if (item.size() > prefix.size() && iequals(item.substr(0, prefix.size()), prefix)) {
            found = item.substr(prefix.size());
            return true;
        }
        return false;
    });
    return found;
}

std::string_view select_subprotocol(const std::vector<std::string_view>& offered,
                                    const std::vector<std::string>& supported) {
    std::string_view chosen;
    for (auto value : offered) {
        bool found = any_element(value, [&](std::string_view item) {
            for (const auto& s : supported) {
                if (item == s) {  // subprotocol names are case-sensitive tokens
                    chosen = s;
                    return true;
                }
            }
            return false;
        });
        if (found) {
            break;
        }
    }
    return chosen;
}

bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed) noexcept {
    if (allowed.empty()) {
        return true;
    }
    for (const auto& a : allowed) {
        if (a == "*" || iequals(a, origin)) {
            return true;
        }
    }
    return false;
}

bool same_origin(std::string_view origin, std::string_view host) noexcept {
    size_t sep = origin.find("://");
    if (sep == std::string_view::npos) {
        return false;  // "null" (sandboxed pages, file://) is nobody's origin
    }
    std::string_view scheme = origin.substr(0, sep);
    unsigned default_port;
    if (iequals(scheme, "http") || iequals(scheme, "ws")) {
        default_port = 80;
    } else if (iequals(scheme, "https") || iequals(scheme, "wss")) {
        default_port = 443;
    } else {
        return false;
    }
    std::string_view authority = origin.substr(sep + 3);
    if (authority.find_first_of("/?#@ \t") != std::string_view::npos) {
        return false;  // a serialized origin has no path, query or user
    }
    std::string_view ohost, hhost;
    unsigned oport, hport;
    if (!split_host_port(authority, &ohost, &oport) ||
        !split_host_port(trim(host), &hhost, &hport)) {
        return false;
    }
    // Browsers leave the default port out of both headers; a port spelled
    // out equals the default one.
    return iequals(ohost, hhost) && (oport ? oport : default_port) == (hport ? hport : default_port);
}

namespace {

// A present Origin must be allowed: listed, or (same_origin, no list) the
// page of the Host. A request without Origin comes from a non-browser
// client, which cross-site hijacking cannot use, so only a present one is
// checked.
HandshakeResult check_origin(const HandshakeRequest& req, const HandshakePolicy& policy,
                             std::string_view what) {
    if (req.has_origin && !origin_allowed(req.origin, policy.allowed_origins)) {
        return refuse(403, "Origin not allowed");
    }
    if (req.has_origin && policy.allowed_origins.empty() && policy.same_origin &&
        !same_origin(req.origin, req.host)) {
        return refuse(403, what);
    }
    return HandshakeResult{};
}

}  // namespace

HandshakeResult check_eventsource(const HandshakeRequest& req, const HandshakePolicy& policy) {
    if (req.method != "GET") {
        return refuse(405, "an event stream must use GET");
    }
    if (req.http_major != 1) {
        return refuse(505, "an event stream needs HTTP/1.x here");
    }
    HandshakeResult r = check_origin(req, policy, "cross-origin event stream not allowed (Origin does not match Host)");
    if (r.status) {
        return r;
    }
    r.status = 200;
    return r;
}

HandshakeResult check_handshake(const HandshakeRequest& req, const HandshakePolicy& policy) {
    if (req.method != "GET") {
        return refuse(405, "WebSocket handshake must use GET");
    }
    if (req.http_major != 1 || req.http_minor < 1) {
        return refuse(400, "WebSocket handshake needs HTTP/1.1");
    }
    if (!any_has_token(req.upgrade, "websocket")) {
        return refuse(426, "this location only speaks WebSocket (Upgrade: websocket)");
    }
    if (!any_has_token(req.connection, "upgrade")) {
        return refuse(400, "Connection header lacks 'upgrade'");
    }
    if (req.version.size() != 1 || trim(req.version[0]) != "13") {
        return refuse(426, "unsupported Sec-WebSocket-Version (need 13)");
    }
    if (req.key.size() != 1 || !is_valid_key(trim(req.key[0]))) {
        return refuse(400, "missing or invalid Sec-WebSocket-Key");
    }
    HandshakeResult r = check_origin(req, policy, "cross-origin WebSocket not allowed (Origin does not match Host)");
    if (r.status) {
        return r;
    }
    r.status = 101;
    r.accept = compute_accept(trim(req.key[0]));
    r.subprotocol = select_subprotocol(req.protocols, policy.subprotocols);
    return r;
}

}  // namespace realtime::ws
