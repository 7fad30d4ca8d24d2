// The server side of the RFC 6455 §4.2 opening handshake, decided from the
// request's facts alone: the glue collects headers, this decides the answer.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace realtime::ws {

// What the handshake needs from an HTTP request. Header fields that may occur
// more than once (or carry comma lists) are given as every value seen.
struct HandshakeRequest {
    std::string_view method;
    int http_major = 1;
    int http_minor = 1;
    std::vector<std::string_view> upgrade;     // Upgrade header values
    std::vector<std::string_view> connection;  // Connection header values
    std::vector<std::string_view> key;         // Sec-WebSocket-Key values
    std::vector<std::string_view> version;     // Sec-WebSocket-Version values
    std::vector<std::string_view> protocols;   // Sec-WebSocket-Protocol values
    bool has_origin = false;
    std::string_view origin;
    std::string_view host;                     // Host header value; empty: none
};

struct HandshakePolicy {
    std::vector<std::string> subprotocols;     // server's list; empty: none
    std::vector<std::string> allowed_origins;  // empty: see same_origin
    // With an empty allowed_origins: a present Origin must be the page the
    // request's Host names (same_origin() below), else any origin is allowed.
    // Set where the browser sends the credential by itself (cookies), so a
    // foreign page cannot open the socket as its visitor.
    bool same_origin = false;
};

struct HandshakeResult {
    int status = 0;                // 101 on success, else the HTTP error status
    std::string_view reason;       // why it failed (static text), for the log and body
    std::string accept;            // Sec-WebSocket-Accept, on success
    std::string_view subprotocol;  // chosen protocol (view into the policy), maybe empty
};

// Decides whether a plain GET (no Upgrade) may open a Server-Sent Events
// stream on a location that offers them: method GET (405), HTTP/1.0 or 1.1
// (505: the stream takes the connection over, which HTTP/2 multiplexes),
// then the same Origin rules as the WebSocket handshake (403). Status 200
// on success.
HandshakeResult check_eventsource(const HandshakeRequest& req, const HandshakePolicy& policy);

// Decides the handshake. Order of checks: method (405), HTTP version (400),
// Upgrade: websocket (426), Connection: upgrade (400), version 13 (426),
// key (400), Origin (403: not in allowed_origins, or with same_origin and an
// empty list, not the Host's origin).
HandshakeResult check_handshake(const HandshakeRequest& req, const HandshakePolicy& policy);

// base64(SHA-1(key + GUID)) per RFC 6455 §4.2.2.
std::string compute_accept(std::string_view key);

// A key is the base64 encoding of exactly 16 bytes: 24 characters ending "==".
bool is_valid_key(std::string_view key) noexcept;

// Whether a comma-separated header value contains token (case-insensitive,
// optional whitespace around elements).
bool has_token(std::string_view value, std::string_view token) noexcept;

// The first protocol the client offered that the server supports; empty if
// none. Never a protocol the client did not offer.
std::string_view select_subprotocol(const std::vector<std::string_view>& offered,
                                    const std::vector<std::string>& supported);

// The rest of the first element of a comma-separated value that starts
// with prefix (case-insensitive), e.g. the token in "chat, bearer.<JWT>"
// for prefix "bearer."; empty if none.
std::string_view find_prefixed_element(std::string_view value, std::string_view prefix) noexcept;

// Origin is compared as a whole serialized origin ("https://example.com:8443"),
// case-insensitively, with "*" in the list allowing any.
bool origin_allowed(std::string_view origin, const std::vector<std::string>& allowed) noexcept;

// Whether the serialized origin ("https://Example.com[:port]") names the
// host and port of the Host header ("example.com[:port]"): hosts compared
// case-insensitively, a missing port being the default of the Origin's
// scheme (http/ws 80, https/wss 443) on both sides. An origin that is not
// scheme://host[:port] with one of those schemes ("null", file://, a path)
// never matches, nor does an empty or malformed Host.
bool same_origin(std::string_view origin, std::string_view host) noexcept;

}  // namespace realtime::ws
