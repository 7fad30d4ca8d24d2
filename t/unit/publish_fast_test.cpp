// The publish API's fast path (issue 14, part 5): which bodies it answers
// itself, and a differential fuzz showing that parse_publish_request() (fast
// path, then the DOM path when it gives up) returns exactly what the DOM
// path alone returns, for generated and mutated bodies.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/group_name.h"
#include "core/json_text.h"
#include "core/publish_request.h"

namespace realtime {
namespace {

std::string Describe(const PublishRequest& r) {
    std::string s = "ok=" + std::to_string(r.ok) + " batch=" + std::to_string(r.batch) +
                    " error=" + json_quote(r.error) + " items=[";
    for (const PublishItem& item : r.items) {
        s += "{groups:";
        for (const std::string& g : item.groups) {
            s += json_quote(g) + ",";
        }
        s += " payload=" + json_quote(item.payload) +
             " is_string=" + std::to_string(item.is_string) +
             " is_control=" + std::to_string(item.is_control) + "}";
    }
    return s + "]";
}

bool Same(const PublishRequest& a, const PublishRequest& b) {
    if (a.ok != b.ok || a.error != b.error || a.batch != b.batch ||
        a.items.size() != b.items.size()) {
        return false;
    }
    for (size_t i = 0; i < a.items.size(); ++i) {
        const PublishItem& x = a.items[i];
        const PublishItem& y = b.items[i];
        if (x.groups != y.groups || x.payload != y.payload || x.is_string != y.is_string ||
            x.is_control != y.is_control) {
            return false;
        }
    }
    return true;
}

// The fast path answers body, with what the DOM path says.
void ExpectFast(std::string_view body) {
    PublishRequest fast;
    EXPECT_TRUE(parse_publish_request_fast(body, fast)) << body;
    PublishRequest dom = parse_publish_request_dom(body);
    EXPECT_TRUE(dom.ok) << body << "\n  " << dom.error;
    EXPECT_TRUE(Same(fast, dom)) << body << "\n  fast: " << Describe(fast)
                                 << "\n  dom:  " << Describe(dom);
    PublishRequest both = parse_publish_request(body);
    EXPECT_TRUE(Same(both, dom)) << body;
}

// The fast path gives up on body, and parse_publish_request() is the DOM's.
void ExpectFallback(std::string_view body) {
    PublishRequest fast;
    EXPECT_FALSE(parse_publish_request_fast(body, fast)) << body;
    EXPECT_FALSE(fast.ok) << body;  // untouched
    EXPECT_TRUE(fast.items.empty()) << body;
    PublishRequest dom = parse_publish_request_dom(body);
    PublishRequest both = parse_publish_request(body);
    EXPECT_TRUE(Same(both, dom)) << body << "\n  both: " << Describe(both)
                                 << "\n  dom:  " << Describe(dom);
}

TEST(PublishFastPath, TakesTheCommonShapes) {
    ExpectFast(R"({"group":"ch1","data":"1 2 xxxxxxxxxxxxxxxx"})");  // the bench's body
    ExpectFast(R"({"group": "chat:lobby", "data": "hello"})");
    ExpectFast(" \r\n\t{ \"data\" : \"x\" , \"group\" : \"g\" } \n");
    ExpectFast(R"({"groups":["b","a","user-1","x_y.z"],"data":{"n":1}})");
    ExpectFast(R"({"groups":["a","b","a"],"data":1})");  // named twice: once
    ExpectFast(R"({"data":[1,-2,0,true,false,null,"s",{},[]],"group":"g"})");
    ExpectFast(R"({"group":"g","data":{"a":{"b":[{"c":0.1}]},"d":-1.5e+20,"e":""}})");
    ExpectFast(R"({"group":"g","data":"caf\u00e9 \"quoted\" \\ \/ \n\t\ud83d\ude00 \u0000"})");
    ExpectFast(R"({"group":"g","data":{"k\n":"\u00e9\u001f\"","":"x"}})");
    ExpectFast("{\"group\":\"g\",\"data\":\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"}");
    ExpectFast(R"({"group":"g","data":123456789012345678})");
    ExpectFast(R"({"group":"g","data":-0.0})");
    ExpectFast(R"({"group":"g","data":1.0})");  // json_compact() prints 1.0 back
    ExpectFast(R"({"group":"g","data":null})");
    ExpectFast(R"({"group":"g\u0041","data":"x"})");  // an escaped name that is valid
    ExpectFast(R"({"gr\u006fup":"g","data":"x"})");   // and an escaped key
}

TEST(PublishFastPath, GivesUpWhereItCannotBeSure) {
    // numbers jansson reformats
    ExpectFallback(R"({"group":"g","data":1.50})");
    ExpectFallback(R"({"group":"g","data":1.0e0})");
    ExpectFallback(R"({"group":"g","data":1e5})");
    ExpectFallback(R"({"group":"g","data":-0})");
    ExpectFallback(R"({"group":"g","data":0.10})");
    ExpectFallback(R"({"group":"g","data":1234567890123456789})");
    ExpectFallback(R"({"group":"g","data":99999999999999999999})");
    ExpectFallback(R"({"group":"g","data":1e400})");
    // duplicate keys, at the top or inside data
    ExpectFallback(R"({"group":"g","group":"h","data":1})");
    ExpectFallback(R"({"group":"g","data":1,"data":2})");
    ExpectFallback(R"({"group":"g","data":{"a":1,"a":2}})");
    ExpectFallback(R"({"group":"g","data":{"a":1,"\u0061":2}})");
    ExpectFallback(R"({"group":"g","data":{"a\u0000":1}})");
    // other keys, batches, other roots
    ExpectFallback(R"({"group":"g","data":1,"extra":true})");
    ExpectFallback(R"([{"group":"g","data":1}])");
    ExpectFallback(R"("x")");
    ExpectFallback("");
    // deep nesting
    ExpectFallback(R"({"group":"g","data":)" + std::string(40, '[') + std::string(40, ']') + "}");
    // every refusal
    ExpectFallback(R"({"group":"g"})");
    ExpectFallback(R"({"data":1})");
    ExpectFallback(R"({"group":"g","groups":["h"],"data":1})");
    ExpectFallback(R"({"group":"bad name","data":1})");
    ExpectFallback(R"({"group":1,"data":1})");
    ExpectFallback(R"({"groups":[],"data":1})");
    ExpectFallback(R"({"groups":"g","data":1})");
    ExpectFallback(R"({"groups":["g",1],"data":1})");
    // malformed JSON and UTF-8
    ExpectFallback(R"({"group":"g","data":1)");
    ExpectFallback(R"({"group":"g","data":1} x)");
    ExpectFallback(R"({"group":"g","data":01})");
    ExpectFallback(R"({"group":"g","data":truex})");
    ExpectFallback(R"({"group":"g","data":"\x"})");
    ExpectFallback(R"({"group":"g","data":"\ud800"})");
    ExpectFallback(R"({"group":"g","data":"\udc00"})");
    ExpectFallback("{\"group\":\"g\",\"data\":\"a\tb\"}");
    ExpectFallback("{\"group\":\"g\",\"data\":\"\xC0\xAF\"}");
    ExpectFallback("{\"group\":\"g\",\"data\":\"\xED\xA0\x80\"}");
    ExpectFallback("{\"group\":\"g\",\"data\":\"\xF4\x90\x80\x80\"}");
    ExpectFallback("{\"group\":\"g\",\"data\":\"\xE2\x82\"}");
    ExpectFallback(std::string("{\"group\":\"g\",\"data\":1}\0", 24));

    std::string many = R"({"groups":[)";
    for (size_t i = 0; i <= kMaxGroupsPerMessage; ++i) {
        many += (i ? ",\"g" : "\"g") + std::to_string(i) + "\"";
    }
    ExpectFallback(many + R"(],"data":1})");
}

// ---------------------------------------------------------------------------
// differential fuzz

class BodyGen {
public:
    explicit BodyGen(uint64_t seed) : rng_(seed) {}

    std::string body() {
        std::string b;
        if (pick(20) == 0) {
            b = "[";
            size_t n = pick(3);
            for (size_t i = 0; i < n; ++i) {
                b += (i ? "," : "") + object();
            }
            b += "]";
        } else {
            b = object();
        }
        if (pick(4) == 0) {
            mutate(b);
        }
        return b;
    }

private:
    std::mt19937_64 rng_;

    size_t pick(size_t n) { return static_cast<size_t>(rng_() % n); }

    std::string ws() {
        static const char* const kWs[] = {"", "", "", "", " ", "\n", "\t ", "\r\n  "};
        return kWs[pick(8)];
    }

    std::string name() {
        static const char* const kNames[] = {
            "g", "chat:lobby", "user-1", "x_y.z", "a", "b", "bad name", "", "caf\xC3\xA9",
            "g\\u0041", "g\\u0020", "g\\n", "\\u0000"};
        if (pick(20) == 0) {
            return std::string(99 + pick(3), 'n');
        }
        // mostly valid names (the first six), now and then any
        return kNames[pick(8) ? pick(6) : pick(sizeof kNames / sizeof *kNames)];
    }

    std::string str() {
        static const char* const kPieces[] = {
            "hello", " ", "x", "caf\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\x7F",
            "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u00e9", "\\u00E9",
            "\\u0000", "\\u001f", "\\u0041", "\\ud83d\\ude00", "\\uD83D\\uDE00", "\\u20ac",
            "\\ud800", "\\udc00", "\\ud83dx", "\\x", "\\u12", "\t", "\x01", "\xC0\xAF",
            "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE2\x82", "\xFF", "\x80", "\xC3"};
        std::string s = "\"";
        size_t n = pick(5);
        for (size_t i = 0; i < n; ++i) {
            // mostly valid pieces, now and then one that is not
            size_t k = pick(24) ? pick(23) : pick(sizeof kPieces / sizeof *kPieces);
            s += kPieces[k];
        }
        return s + "\"";
    }

    std::string number() {
        static const char* const kNumbers[] = {
            "0", "-0", "1", "-1", "42", "123456789012345678", "-123456789012345678",
            "1234567890123456789", "9223372036854775807", "-9223372036854775808",
            "99999999999999999999", "0.1", "1.0", "1e5", "1E5", "1e+20", "1.5e+20", "1e-07",
            "-0.0", "0.10", "1e400", "-1e400", "1e-400", "2.5", "3.14159",
            "0.30000000000000004", "5e-324", "1.7976931348623157e+308", "100.0", "1e+300",
            "123.456",
            // not JSON
            "01", "1.", "-", ".5", "1e", "+1", "0x10"};
        const size_t kValid = sizeof kNumbers / sizeof *kNumbers - 7;
        switch (pick(4)) {
        case 0:
            return std::to_string(static_cast<int64_t>(rng_()) >> pick(64));
        case 1: {
            std::uniform_real_distribution<double> d(-1e6, 1e6);
            return json_real_text(d(rng_) * (pick(2) ? 1e-10 : 1));
        }
        default:
            return kNumbers[pick(10) ? pick(kValid) : pick(sizeof kNumbers / sizeof *kNumbers)];
        }
    }

    std::string value(int depth) {
        size_t k = depth > 4 ? pick(4) : pick(7);
        switch (k) {
        case 0: return str();
        case 1: return number();
        case 2: {
            static const char* const kLit[] = {"true", "false", "null", "nul", "truex", "True"};
            return pick(10) ? kLit[pick(3)] : kLit[pick(6)];
        }
        case 3: return pick(3) ? str() : number();
        case 4:
        case 5: {
            std::string o = "{" + ws();
            size_t n = pick(4);
            static const char* const kKeys[] = {"\"a\"", "\"b\"", "\"\"", "\"\\u0061\"",
                                                "\"k\\n\"", "\"caf\xC3\xA9\"", "\"\\u0000\""};
            for (size_t i = 0; i < n; ++i) {
                o += (i ? "," + ws() : "") + kKeys[pick(7)] + ws() + ":" + ws() + value(depth + 1) +
                     ws();
            }
            return o + "}";
        }
        default: {
            std::string a = "[" + ws();
            size_t n = pick(4);
            for (size_t i = 0; i < n; ++i) {
                a += (i ? "," + ws() : "") + value(depth + 1) + ws();
            }
            return a + "]";
        }
        }
    }

    std::string groups() {
        if (pick(30) == 0) {
            return pick(2) ? "\"g\"" : "[]";
        }
        std::string a = "[";
        size_t n = pick(40) == 0 ? 250 + pick(10) : 1 + pick(4);
        for (size_t i = 0; i < n; ++i) {
            a += (i ? "," + ws() : "") + (pick(30) ? "\"" + name() + "\"" : std::string("1"));
        }
        return a + "]";
    }

    std::string object() {
        std::vector<std::string> members;
        if (pick(10)) {
            members.push_back("\"group\"" + ws() + ":" + ws() +
                              (pick(30) ? "\"" + name() + "\"" : std::string("1")));
        } else {
            members.push_back("\"groups\"" + ws() + ":" + ws() + groups());
        }
        if (pick(20)) {
            members.push_back("\"data\"" + ws() + ":" + ws() + value(0));
        }
        if (pick(15) == 0) {
            static const char* const kOther[] = {"\"extra\"", "\"group\"", "\"groups\"",
                                                 "\"data\"", "\"gr\\u006fup\"", "\"dat\\u0061\""};
            members.push_back(std::string(kOther[pick(6)]) + ":" + value(3));
        }
        std::shuffle(members.begin(), members.end(), rng_);
        std::string o = ws() + "{" + ws();
        for (size_t i = 0; i < members.size(); ++i) {
            o += (i ? "," + ws() : "") + members[i] + ws();
        }
        return o + "}" + ws();
    }

    void mutate(std::string& b) {
        static const char kBytes[] = {'"', '\\', '{', '}', '[', ']', ',', ':', ' ', '0', '-', 'e',
                                      '.', 'u', 'n', '\x80', '\xC3', '\xFF', '\0', '\x1f'};
        size_t n = 1 + pick(3);
        for (size_t i = 0; i < n && !b.empty(); ++i) {
            size_t at = pick(b.size());
            switch (pick(5)) {
            case 0: b[at] = static_cast<char>(rng_()); break;
            case 1: b.erase(at, 1); break;
            case 2: b.insert(at, 1, kBytes[pick(sizeof kBytes)]); break;
            case 3: b.resize(at); break;
            default: {
                size_t len = pick(b.size() - at) + 1;
                b.insert(pick(b.size()), b.substr(at, len));
            }
            }
        }
    }
};

TEST(PublishFastPath, DifferentialFuzz) {
    BodyGen gen(14);
    const size_t kBodies = 150000;
    size_t fast_taken = 0, dom_ok = 0, failures = 0;
    for (size_t i = 0; i < kBodies; ++i) {
        std::string body = gen.body();
        PublishRequest dom = parse_publish_request_dom(body);
        PublishRequest fast;
        bool took = parse_publish_request_fast(body, fast);
        PublishRequest both = parse_publish_request(body);
        fast_taken += took;
        dom_ok += dom.ok;
        bool same = Same(both, dom) && (!took || Same(fast, dom));
        if (!same && ++failures <= 10) {
            ADD_FAILURE() << "body #" << i << ": " << json_quote(body) << "\n  fast("
                          << took << "): " << Describe(took ? fast : both)
                          << "\n  dom:     " << Describe(dom);
        }
    }
    EXPECT_EQ(failures, 0u);
    // the fuzz reaches both paths in earnest
    EXPECT_GT(fast_taken, kBodies / 5) << "fast " << fast_taken << " dom ok " << dom_ok;
    EXPECT_GT(dom_ok - fast_taken, kBodies / 100) << "fast " << fast_taken << " dom ok " << dom_ok;
    std::printf("[ fuzz ] %zu bodies: %zu valid, %zu by the fast path\n", kBodies, dom_ok,
                fast_taken);
}

}  // namespace
}  // namespace realtime
