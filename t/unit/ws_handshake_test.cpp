// The server side of the RFC 6455 §4.2 opening handshake.
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/ws_handshake.h"

namespace realtime::ws {
namespace {

constexpr std::string_view kRfcKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view kRfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// A request every check accepts; tests break one thing at a time.
HandshakeRequest GoodRequest() {
    HandshakeRequest r;
    r.method = "GET";
    r.http_major = 1;
    r.http_minor = 1;
    r.upgrade = {"websocket"};
    r.connection = {"Upgrade"};
    r.key = {kRfcKey};
    r.version = {"13"};
    return r;
}

HandshakePolicy Origins(std::vector<std::string> allowed) {
    HandshakePolicy p;
    p.allowed_origins = std::move(allowed);
    return p;
}

int Status(const HandshakeRequest& r, const HandshakePolicy& p = {}) {
    HandshakeResult res = check_handshake(r, p);
    if (res.status != 101) {
        EXPECT_FALSE(res.reason.empty()) << "a refusal must say why";
        EXPECT_TRUE(res.accept.empty()) << "no accept value on a refusal";
    }
    return res.status;
}

// ---------------------------------------------------------------------------
// Accept value and key

TEST(WsHandshake, ComputesRfcAcceptValue) {
    EXPECT_EQ(compute_accept(kRfcKey), kRfcAccept);
    // Second known pair (checked with `openssl sha1 -binary | base64`).
    EXPECT_EQ(compute_accept("x3JJHMbDL1EzLkh9GBhXDw=="), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

TEST(WsHandshake, AcceptsSixteenByteBase64Keys) {
    for (std::string_view key :
         {kRfcKey, std::string_view("x3JJHMbDL1EzLkh9GBhXDw=="), std::string_view("AAAAAAAAAAAAAAAAAAAAAA=="),
          std::string_view("/////////////////////w=="), std::string_view("+/+/+/+/+/+/+/+/+/+/+g=="),
          std::string_view("0123456789abcdefABCDEQ==")}) {
        EXPECT_TRUE(is_valid_key(key)) << key;
    }
}

TEST(WsHandshake, RejectsKeysOfWrongLength) {
    for (std::string_view key :
         {std::string_view(""), std::string_view("=="), std::string_view("dGhlIHNhbXBsZSBub25jZQ="),
          std::string_view("dGhlIHNhbXBsZSBub25jZQ==="), std::string_view("AdGhlIHNhbXBsZSBub25jZQ=="),
          // 20 bytes (a SHA-1 sized key) and 15 bytes.
          std::string_view("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), std::string_view("AAAAAAAAAAAAAAAAAAAA")}) {
        EXPECT_FALSE(is_valid_key(key)) << key;
    }
}

TEST(WsHandshake, RejectsKeysWithMissingPadding) {
    EXPECT_FALSE(is_valid_key("dGhlIHNhbXBsZSBub25jZQ"));    // 22 chars, no padding
    EXPECT_FALSE(is_valid_key("dGhlIHNhbXBsZSBub25jZQAA"));  // 24 chars, no '='
    EXPECT_FALSE(is_valid_key("dGhlIHNhbXBsZSBub25jZQA="));  // one '=' only (17 bytes)
    EXPECT_FALSE(is_valid_key("dGhlIHNhbXBsZSBub25jZ==="));  // three '='
}

TEST(WsHandshake, RejectsKeysWithBadCharacters) {
    std::string good(kRfcKey);
    for (char bad : {'!', ' ', '-', '_', '.', '=', '\0', '\t', '\x80', '\xff'}) {
        for (size_t pos : {0, 5, 20}) {
            std::string key = good;
            key[pos] = bad;
            EXPECT_FALSE(is_valid_key(key)) << "char " << static_cast<int>(bad) << " at " << pos;
        }
    }
}

TEST(WsHandshake, RejectsKeysWithNonZeroTrailingBits) {
    // 16 bytes use only the top 2 bits of the 22nd character: its index in
    // the alphabet must be a multiple of 16 (A, Q, g, w).
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < alphabet.size(); ++i) {
        std::string key = "dGhlIHNhbXBsZSBub25jZ" + std::string(1, alphabet[i]) + "==";
        EXPECT_EQ(is_valid_key(key), i % 16 == 0) << key;
    }
}

TEST(WsHandshake, HasTokenMatchesCommaListElements) {
    EXPECT_TRUE(has_token("Upgrade", "upgrade"));
    EXPECT_TRUE(has_token("upgrade", "upgrade"));
    EXPECT_TRUE(has_token("UPGRADE", "upgrade"));
    EXPECT_TRUE(has_token("keep-alive, Upgrade", "upgrade"));
    EXPECT_TRUE(has_token("keep-alive,upgrade", "upgrade"));
    EXPECT_TRUE(has_token("  upgrade\t", "upgrade"));
    EXPECT_TRUE(has_token("foo,\tUpgrade ,bar", "upgrade"));
    EXPECT_TRUE(has_token(",,upgrade,,", "upgrade"));
    EXPECT_FALSE(has_token("", "upgrade"));
    EXPECT_FALSE(has_token("keep-alive", "upgrade"));
    EXPECT_FALSE(has_token("upgrade2", "upgrade"));
    EXPECT_FALSE(has_token("upgradex, foo", "upgrade"));
    EXPECT_FALSE(has_token("up grade", "upgrade"));
    EXPECT_FALSE(has_token("Upgrade-Insecure", "upgrade"));
}

// ---------------------------------------------------------------------------
// check_handshake

TEST(WsHandshake, AcceptsGoodRequest) {
    HandshakeResult r = check_handshake(GoodRequest(), {});
    EXPECT_EQ(r.status, 101);
    EXPECT_EQ(r.accept, kRfcAccept);
    EXPECT_TRUE(r.subprotocol.empty());
}

TEST(WsHandshake, RejectsNonGetWith405) {
    for (std::string_view m : {"POST", "HEAD", "PUT", "OPTIONS", "CONNECT", "", "get", "GET "}) {
        HandshakeRequest r = GoodRequest();
        r.method = m;
        EXPECT_EQ(Status(r), 405) << "'" << m << "'";
    }
}

TEST(WsHandshake, RejectsHttpVersionsOtherThan11With400) {
    struct V {
        int major, minor;
    };
    for (V v : {V{1, 0}, V{0, 9}, V{2, 0}, V{3, 0}}) {
        HandshakeRequest r = GoodRequest();
        r.http_major = v.major;
        r.http_minor = v.minor;
        EXPECT_EQ(Status(r), 400) << v.major << "." << v.minor;
    }
}

TEST(WsHandshake, RequiresUpgradeWebsocketWith426) {
    HandshakeRequest r = GoodRequest();
    r.upgrade = {};
    EXPECT_EQ(Status(r), 426) << "no Upgrade header";
    r.upgrade = {"h2c"};
    EXPECT_EQ(Status(r), 426);
    r.upgrade = {"websocket2"};
    EXPECT_EQ(Status(r), 426);
    r.upgrade = {""};
    EXPECT_EQ(Status(r), 426);

    for (std::vector<std::string_view> ok : {std::vector<std::string_view>{"WebSocket"},
                                             {"h2c, websocket"},
                                             {"h2c", "WEBSOCKET"},
                                             {" websocket "}}) {
        r.upgrade = ok;
        EXPECT_EQ(Status(r), 101) << ok.back();
    }
}

TEST(WsHandshake, RequiresConnectionUpgradeWith400) {
    HandshakeRequest r = GoodRequest();
    for (std::vector<std::string_view> bad : {std::vector<std::string_view>{},
                                              {"keep-alive"},
                                              {"close"},
                                              {"upgraded"},
                                              {""}}) {
        r.connection = bad;
        EXPECT_EQ(Status(r), 400) << (bad.empty() ? "(none)" : bad[0]);
    }
    for (std::vector<std::string_view> ok : {std::vector<std::string_view>{"keep-alive, Upgrade"},
                                             {"Upgrade, keep-alive"},
                                             {"upgrade"},
                                             {"keep-alive", "Upgrade"}}) {
        r.connection = ok;
        EXPECT_EQ(Status(r), 101) << ok[0];
    }
}

TEST(WsHandshake, RequiresVersion13With426) {
    HandshakeRequest r = GoodRequest();
    for (std::vector<std::string_view> bad : {std::vector<std::string_view>{},
                                              {"12"},
                                              {"14"},
                                              {"8"},
                                              {""},
                                              {"13", "13"},
                                              {"13", "8"},
                                              {"130"}}) {
        r.version = bad;
        EXPECT_EQ(Status(r), 426) << bad.size();
    }
    r.version = {" 13 "};
    EXPECT_EQ(Status(r), 101) << "whitespace around the value is allowed";
}

TEST(WsHandshake, RequiresOneValidKeyWith400) {
    HandshakeRequest r = GoodRequest();
    r.key = {};
    EXPECT_EQ(Status(r), 400) << "missing";
    r.key = {"not a key"};
    EXPECT_EQ(Status(r), 400);
    r.key = {"dGhlIHNhbXBsZSBub25jZR=="};
    EXPECT_EQ(Status(r), 400) << "trailing bits";
    r.key = {kRfcKey, kRfcKey};
    EXPECT_EQ(Status(r), 400) << "duplicate";
    r.key = {kRfcKey, "x3JJHMbDL1EzLkh9GBhXDw=="};
    EXPECT_EQ(Status(r), 400) << "two different keys";
}

TEST(WsHandshake, TrimsKeyBeforeComputingAccept) {
    HandshakeRequest r = GoodRequest();
    r.key = {" dGhlIHNhbXBsZSBub25jZQ==\t"};
    HandshakeResult res = check_handshake(r, {});
    EXPECT_EQ(res.status, 101);
    EXPECT_EQ(res.accept, kRfcAccept);
}

TEST(WsHandshake, ChecksInDocumentedOrder) {
    // Each request breaks two rules; the earlier check decides the status.
    HandshakeRequest r = GoodRequest();
    r.method = "POST";
    r.http_minor = 0;
    EXPECT_EQ(Status(r), 405) << "method before HTTP version";

    r = GoodRequest();
    r.http_minor = 0;
    r.upgrade = {};
    EXPECT_EQ(Status(r), 400) << "HTTP version before Upgrade";

    r = GoodRequest();
    r.upgrade = {};
    r.connection = {};
    EXPECT_EQ(Status(r), 426) << "Upgrade before Connection";

    r = GoodRequest();
    r.connection = {"keep-alive"};
    r.version = {"8"};
    EXPECT_EQ(Status(r), 400) << "Connection before version";

    r = GoodRequest();
    r.version = {"8"};
    r.key = {};
    EXPECT_EQ(Status(r), 426) << "version before key";

    r = GoodRequest();
    r.key = {};
    r.has_origin = true;
    r.origin = "https://evil.example";
    EXPECT_EQ(Status(r, Origins({"https://good.example"})), 400) << "key before Origin";
}

TEST(WsHandshake, RejectsOriginNotInListWith403) {
    HandshakePolicy policy = Origins({"https://example.com", "http://localhost:8080"});
    HandshakeRequest r = GoodRequest();
    r.has_origin = true;
    for (std::string_view bad : {"https://evil.com", "http://example.com", "https://example.com:8443",
                                 "https://example.com.evil.com", "https://sub.example.com", "null", "",
                                 "http://localhost:8081", "https://example.co"}) {
        r.origin = bad;
        EXPECT_EQ(Status(r, policy), 403) << "'" << bad << "'";
    }
}

TEST(WsHandshake, AcceptsListedOriginCaseInsensitively) {
    HandshakePolicy policy = Origins({"https://example.com", "http://localhost:8080"});
    HandshakeRequest r = GoodRequest();
    r.has_origin = true;
    for (std::string_view ok : {"https://example.com", "HTTPS://EXAMPLE.COM", "https://Example.Com",
                                "http://localhost:8080"}) {
        r.origin = ok;
        EXPECT_EQ(Status(r, policy), 101) << ok;
    }
}

TEST(WsHandshake, AllowsRequestWithoutOriginWhenListIsSet) {
    HandshakeRequest r = GoodRequest();
    r.has_origin = false;
    EXPECT_EQ(Status(r, Origins({"https://example.com"})), 101);
}

TEST(WsHandshake, StarOrEmptyListAllowsAnyOrigin) {
    HandshakeRequest r = GoodRequest();
    r.has_origin = true;
    for (std::string_view o : {"https://anything.example", "null", ""}) {
        r.origin = o;
        EXPECT_EQ(Status(r, Origins({"*"})), 101) << o;
        EXPECT_EQ(Status(r, Origins({"https://example.com", "*"})), 101) << o;
        EXPECT_EQ(Status(r, Origins({})), 101) << o;
    }
    EXPECT_TRUE(origin_allowed("https://x.example", {}));
    EXPECT_TRUE(origin_allowed("https://x.example", {"*"}));
    EXPECT_FALSE(origin_allowed("https://x.example", {"https://y.example"}));
    EXPECT_FALSE(origin_allowed("*", {"https://y.example"})) << "a '*' Origin is not a wildcard";
}

// ---------------------------------------------------------------------------
// Same-origin default (cookie or auth_request credentials)

HandshakePolicy SameOrigin(std::vector<std::string> allowed = {}) {
    HandshakePolicy p = Origins(std::move(allowed));
    p.same_origin = true;
    return p;
}

TEST(WsHandshake, SameOriginMatchesHostAndPort) {
    EXPECT_TRUE(same_origin("https://app.example", "app.example"));
    EXPECT_TRUE(same_origin("http://app.example", "app.example"));
    EXPECT_TRUE(same_origin("HTTPS://App.Example", "app.EXAMPLE")) << "case-insensitive";
    EXPECT_TRUE(same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
    EXPECT_TRUE(same_origin("wss://app.example", "app.example"));
    EXPECT_TRUE(same_origin("http://[::1]:8080", "[::1]:8080"));
    EXPECT_TRUE(same_origin("http://[::1]", "[::1]"));
    EXPECT_TRUE(same_origin("https://app.example", " app.example ")) << "Host is trimmed";

    EXPECT_FALSE(same_origin("https://evil.example", "app.example"));
    EXPECT_FALSE(same_origin("https://app.example.evil", "app.example"));
    EXPECT_FALSE(same_origin("https://evilapp.example", "app.example"));
    EXPECT_FALSE(same_origin("http://127.0.0.1:8081", "127.0.0.1:8080")) << "other port";
    EXPECT_FALSE(same_origin("http://127.0.0.1", "127.0.0.1:8080"));
    EXPECT_FALSE(same_origin("http://127.0.0.1:8080", "127.0.0.1"));
    EXPECT_FALSE(same_origin("http://[::1]:8080", "[::1]:8081"));
}

TEST(WsHandshake, SameOriginNormalisesDefaultPorts) {
    // a port spelled out equals the scheme's default on either side
    EXPECT_TRUE(same_origin("https://app.example:443", "app.example"));
    EXPECT_TRUE(same_origin("https://app.example", "app.example:443"));
    EXPECT_TRUE(same_origin("http://app.example:80", "app.example:80"));
    EXPECT_TRUE(same_origin("http://app.example", "app.example:80"));
    // ... but it is the Origin's scheme that says which default applies
    EXPECT_FALSE(same_origin("https://app.example", "app.example:80"));
    EXPECT_FALSE(same_origin("http://app.example", "app.example:443"));
    EXPECT_FALSE(same_origin("https://app.example:80", "app.example"));
}

TEST(WsHandshake, SameOriginRefusesWhatIsNotAnOrigin) {
    for (std::string_view o : {"null", "", "app.example", "file://app.example", "ftp://app.example",
                               "https://", "https://app.example/", "https://app.example/path",
                               "https://user@app.example", "https://app.example?x",
                               "https://app.example:", "https://app.example:0",
                               "https://app.example:65536", "https://app.example:8x",
                               "https://app.example:123456", "https://[::1", "https://:443"}) {
        EXPECT_FALSE(same_origin(o, "app.example")) << o;
    }
    for (std::string_view h : {"", ":443", "app.example:", "app.example:abc", "[::1"}) {
        EXPECT_FALSE(same_origin("https://app.example", h)) << h;
    }
}

TEST(WsHandshake, SameOriginPolicyRefusesCrossOriginWith403) {
    HandshakeRequest r = GoodRequest();
    r.host = "127.0.0.1:8080";
    r.has_origin = true;
    r.origin = "https://evil.example";
    HandshakeResult res = check_handshake(r, SameOrigin());
    EXPECT_EQ(res.status, 403);
    EXPECT_NE(res.reason.find("Origin"), std::string_view::npos) << res.reason;
    r.origin = "null";
    EXPECT_EQ(Status(r, SameOrigin()), 403);
    r.origin = "http://127.0.0.1:8080";
    EXPECT_EQ(Status(r, SameOrigin()), 101);
    // without the flag any origin is allowed, as before
    r.origin = "https://evil.example";
    EXPECT_EQ(Status(r, Origins({})), 101);
}

TEST(WsHandshake, SameOriginPolicyAllowsRequestsWithoutOrigin) {
    HandshakeRequest r = GoodRequest();
    r.host = "app.example";
    r.has_origin = false;
    EXPECT_EQ(Status(r, SameOrigin()), 101) << "non-browser clients send no Origin";
    r.host = "";
    EXPECT_EQ(Status(r, SameOrigin()), 101);
}

TEST(WsHandshake, ExplicitOriginListOverridesSameOrigin) {
    HandshakeRequest r = GoodRequest();
    r.host = "app.example";
    r.has_origin = true;
    r.origin = "https://other.example";
    EXPECT_EQ(Status(r, SameOrigin({"https://other.example"})), 101);
    EXPECT_EQ(Status(r, SameOrigin({"*"})), 101) << "'*' allows any origin explicitly";
    r.origin = "https://app.example";
    EXPECT_EQ(Status(r, SameOrigin({"https://other.example"})), 403)
        << "the list replaces the default, it does not add to it";
}

// ---------------------------------------------------------------------------
// Subprotocols

TEST(WsHandshake, SelectsFirstClientOfferedProtocolTheServerSupports) {
    const std::vector<std::string> server = {"a", "b"};
    EXPECT_EQ(select_subprotocol({"b, a"}, server), "b") << "client preference wins";
    EXPECT_EQ(select_subprotocol({"a, b"}, server), "a");
    EXPECT_EQ(select_subprotocol({"c, b"}, server), "b");
    EXPECT_EQ(select_subprotocol({"c"}, server), "");
    EXPECT_EQ(select_subprotocol({}, server), "");
    EXPECT_EQ(select_subprotocol({"a"}, {}), "") << "server supports none";
}

TEST(WsHandshake, NeverSelectsAProtocolTheClientDidNotOffer) {
    const std::vector<std::string> server = {"chat.v2", "chat", "json"};
    EXPECT_EQ(select_subprotocol({"chat.v1"}, server), "");
    EXPECT_EQ(select_subprotocol({"cha"}, server), "") << "no prefix matching";
    EXPECT_EQ(select_subprotocol({"chat.v2.beta"}, server), "");
    EXPECT_EQ(select_subprotocol({"chat"}, server), "chat");
    EXPECT_EQ(select_subprotocol({"xml, chat.v1, json"}, server), "json");
}

TEST(WsHandshake, SubprotocolsFromSeveralHeaderValuesAndWhitespace) {
    const std::vector<std::string> server = {"a", "b"};
    EXPECT_EQ(select_subprotocol({"c", "b, a"}, server), "b");
    EXPECT_EQ(select_subprotocol({"b", "a"}, server), "b") << "an earlier header value wins";
    EXPECT_EQ(select_subprotocol({"x, b", "a"}, server), "b");
    EXPECT_EQ(select_subprotocol({"c, d", "x", " a "}, server), "a");
    EXPECT_EQ(select_subprotocol({" \tb\t ,a"}, server), "b");
    EXPECT_EQ(select_subprotocol({",, ,a"}, server), "a");
    EXPECT_EQ(select_subprotocol({"", "b"}, server), "b");
}

TEST(WsHandshake, SubprotocolsAreCaseSensitive) {
    EXPECT_EQ(select_subprotocol({"B"}, {"b"}), "");
    EXPECT_EQ(select_subprotocol({"Chat, chat"}, {"chat"}), "chat");
    EXPECT_EQ(select_subprotocol({"MQTT"}, {"mqtt", "MQTT"}), "MQTT");
}

TEST(WsHandshake, SelectedSubprotocolViewsThePolicy) {
    const std::vector<std::string> server = {"a", "b"};
    std::string offered = "b, a";  // a temporary header value
    std::string_view chosen = select_subprotocol({offered}, server);
    EXPECT_EQ(chosen.data(), server[1].data()) << "must not point into the request";
    offered.assign(offered.size(), 'x');
    EXPECT_EQ(chosen, "b");
}

TEST(WsHandshake, CheckHandshakeSelectsSubprotocol) {
    HandshakePolicy policy;
    policy.subprotocols = {"a", "b"};
    HandshakeRequest r = GoodRequest();
    r.protocols = {"b, a"};
    HandshakeResult res = check_handshake(r, policy);
    EXPECT_EQ(res.status, 101);
    EXPECT_EQ(res.subprotocol, "b");
    EXPECT_EQ(res.subprotocol.data(), policy.subprotocols[1].data());

    r.protocols = {"c"};
    res = check_handshake(r, policy);
    EXPECT_EQ(res.status, 101) << "no common protocol is not an error";
    EXPECT_TRUE(res.subprotocol.empty());

    r.protocols = {};
    EXPECT_TRUE(check_handshake(r, policy).subprotocol.empty());
}

// ---------------------------------------------------------------------------
// Server-Sent Events on the same location: a plain GET

HandshakeRequest PlainGet() {
    HandshakeRequest r;
    r.method = "GET";
    r.http_major = 1;
    r.http_minor = 1;
    r.host = "app.example";
    return r;
}

TEST(WsHandshake, EventSourceAcceptsAPlainGetOnHttp1) {
    HandshakeRequest r = PlainGet();
    EXPECT_EQ(check_eventsource(r, {}).status, 200);
    r.http_minor = 0;
    EXPECT_EQ(check_eventsource(r, {}).status, 200) << "HTTP/1.0: a stream ended by close";
}

TEST(WsHandshake, EventSourceRefusesOtherMethodsAndHttp2) {
    HandshakeRequest r = PlainGet();
    r.method = "POST";
    EXPECT_EQ(check_eventsource(r, {}).status, 405);
    r = PlainGet();
    r.http_major = 2;
    r.http_minor = 0;
    EXPECT_EQ(check_eventsource(r, {}).status, 505);
}

TEST(WsHandshake, EventSourceFollowsTheOriginRules) {
    HandshakeRequest r = PlainGet();
    r.has_origin = true;
    r.origin = "https://evil.example";
    EXPECT_EQ(check_eventsource(r, SameOrigin()).status, 403);
    EXPECT_EQ(check_eventsource(r, Origins({"https://app.example"})).status, 403);
    EXPECT_EQ(check_eventsource(r, Origins({"https://evil.example"})).status, 200);
    EXPECT_EQ(check_eventsource(r, {}).status, 200) << "no credential the browser adds by itself";
    r.origin = "https://app.example";
    EXPECT_EQ(check_eventsource(r, SameOrigin()).status, 200);
    r.has_origin = false;
    EXPECT_EQ(check_eventsource(r, SameOrigin()).status, 200) << "no Origin: not a browser's cross-site request";
}

}  // namespace
}  // namespace realtime::ws
