// parse_publish_request and json_quote: the publish API's body shapes, how
// data becomes the frame payload, every refusal, and string quoting.
#include <gtest/gtest.h>
#include <jansson.h>

#include <string>
#include <string_view>
#include <vector>

#include "core/group_name.h"
#include "core/publish_request.h"
#include "core/utf8.h"

namespace realtime {
namespace {

using Groups = std::vector<std::string>;

// Parses a body that must be accepted with exactly one item.
PublishItem One(std::string_view body) {
    PublishRequest req = parse_publish_request(body);
    EXPECT_TRUE(req.ok) << body << "\n  error: " << req.error;
    EXPECT_TRUE(req.error.empty()) << body;
    EXPECT_FALSE(req.batch) << body;
    EXPECT_EQ(req.items.size(), 1u) << body;
    return req.items.empty() ? PublishItem{} : req.items[0];
}

std::string Payload(std::string_view data_json) {
    return One(R"({"group": "g", "data": )" + std::string(data_json) + "}").payload;
}

// ---------------------------------------------------------------------------
// body shapes

TEST(PublishRequest, SingleGroup) {
    PublishItem item = One(R"({"group": "chat:lobby", "data": "hello"})");
    EXPECT_EQ(item.groups, (Groups{"chat:lobby"}));
    EXPECT_EQ(item.payload, "hello");
}

TEST(PublishRequest, SeveralGroupsInOrder) {
    PublishItem item = One(R"({"groups": ["b", "a", "user-1", "x_y.z"], "data": {"n": 1}})");
    EXPECT_EQ(item.groups, (Groups{"b", "a", "user-1", "x_y.z"}));
    EXPECT_EQ(item.payload, R"({"n":1})");
}

TEST(PublishRequest, KeyOrderAndExtraKeysDoNotMatter) {
    PublishItem item = One(R"({"data": 1, "extra": [true], "group": "g"})");
    EXPECT_EQ(item.groups, (Groups{"g"}));
    EXPECT_EQ(item.payload, "1");
}

TEST(PublishRequest, BatchInOrder) {
    PublishRequest req = parse_publish_request(R"([
        {"group": "a", "data": "first"},
        {"groups": ["b", "c"], "data": [1, 2]},
        {"group": "a", "data": null}
    ])");
    ASSERT_TRUE(req.ok) << req.error;
    EXPECT_TRUE(req.batch);
    EXPECT_TRUE(req.error.empty());
    ASSERT_EQ(req.items.size(), 3u);
    EXPECT_EQ(req.items[0].groups, (Groups{"a"}));
    EXPECT_EQ(req.items[0].payload, "first");
    EXPECT_EQ(req.items[1].groups, (Groups{"b", "c"}));
    EXPECT_EQ(req.items[1].payload, "[1,2]");
    EXPECT_EQ(req.items[2].groups, (Groups{"a"}));
    EXPECT_EQ(req.items[2].payload, "null");
}

TEST(PublishRequest, BatchOfOneIsStillABatch) {
    PublishRequest req = parse_publish_request(R"([{"group": "a", "data": 1}])");
    ASSERT_TRUE(req.ok) << req.error;
    EXPECT_TRUE(req.batch);
    ASSERT_EQ(req.items.size(), 1u);
    EXPECT_EQ(req.items[0].payload, "1");
}

TEST(PublishRequest, WhitespaceAroundTheBodyIsFine) {
    PublishItem item = One(" \r\n\t{\"group\":\"g\",\"data\":\"x\"}\n ");
    EXPECT_EQ(item.payload, "x");
}

// ---------------------------------------------------------------------------
// data → payload

TEST(PublishRequestData, AStringIsSentVerbatim) {
    EXPECT_EQ(Payload(R"("hello")"), "hello");
    EXPECT_EQ(Payload(R"("")"), "");
    EXPECT_EQ(Payload(R"("say \"hi\"")"), "say \"hi\"");
    EXPECT_EQ(Payload(R"("back\\slash \/ tab\t nl\n")"), "back\\slash / tab\t nl\n");
    EXPECT_EQ(Payload(R"("{\"looks\": \"like json\"}")"), "{\"looks\": \"like json\"}");
    // UTF-8 as is, and \u escapes (with a surrogate pair) decoded to UTF-8.
    EXPECT_EQ(Payload("\"h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80\""),
              "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80");
    EXPECT_EQ(Payload(R"("\u00e9\u2713\ud83d\ude00")"), "\xC3\xA9\xE2\x9C\x93\xF0\x9F\x98\x80");
    EXPECT_EQ(Payload(R"("  spaces kept  ")"), "  spaces kept  ");
}

TEST(PublishRequestData, AStringWithANulByteIsKept) {
    // "\u0000" is valid JSON; the payload (a WebSocket text message) may
    // carry U+0000, so it must not be refused or cut short.
    EXPECT_EQ(Payload(R"("a\u0000b")"), std::string("a\0b", 3));
    EXPECT_EQ(Payload(R"({"k": "a\u0000b"})"), R"({"k":"a\u0000b"})");
}

TEST(PublishRequestData, EverythingElseIsCompactJson) {
    EXPECT_EQ(Payload(R"({"b": [1, 2]})"), R"({"b":[1,2]})");
    EXPECT_EQ(Payload(R"({ "z" : 1 , "a" : { "y" : [ ] , "x" : { } } })"),
              R"({"z":1,"a":{"y":[],"x":{}}})");  // key order kept
    EXPECT_EQ(Payload("[1, \"two\", [3], {}]"), R"([1,"two",[3],{}])");
    EXPECT_EQ(Payload("[]"), "[]");
    EXPECT_EQ(Payload("{}"), "{}");
    EXPECT_EQ(Payload("42"), "42");
    EXPECT_EQ(Payload("-7"), "-7");
    EXPECT_EQ(Payload("0"), "0");
    EXPECT_EQ(Payload("1.5"), "1.5");
    EXPECT_EQ(Payload("-2.25"), "-2.25");
    EXPECT_EQ(Payload("true"), "true");
    EXPECT_EQ(Payload("false"), "false");
    EXPECT_EQ(Payload("null"), "null");
    // Strings inside are re-escaped; UTF-8 stays UTF-8.
    EXPECT_EQ(Payload(R"({"q": "a\"b\\c\nd"})"), R"({"q":"a\"b\\c\nd"})");
    EXPECT_EQ(Payload(R"(["\u00e9"])"), "[\"\xC3\xA9\"]");
}

TEST(PublishRequestData, PayloadIsValidUtf8) {
    for (const char* data : {R"("\ud83d\ude00 x")", R"({"e": "\u00e9"})", R"("\u0001\u001f")"}) {
        EXPECT_TRUE(is_valid_utf8(Payload(data))) << data;
    }
}

// ---------------------------------------------------------------------------
// refusals

struct Refusal {
    const char* name;
    std::string body;
    std::string error_contains;  // "" to check only that there is an error
};

void PrintTo(const Refusal& r, std::ostream* os) {
    *os << r.name;
}

class PublishRequestRefused : public ::testing::TestWithParam<Refusal> {};

TEST_P(PublishRequestRefused, WithAnErrorAndNoItems) {
    const Refusal& r = GetParam();
    PublishRequest req = parse_publish_request(r.body);
    EXPECT_FALSE(req.ok) << r.body;
    EXPECT_FALSE(req.error.empty()) << r.body;
    EXPECT_TRUE(req.items.empty()) << r.body;
    EXPECT_NE(req.error.find(r.error_contains), std::string::npos)
        << "body:  " << r.body << "\nerror: " << req.error << "\nwant:  " << r.error_contains;
    // The error goes out inside {"error": ...}: it must be valid UTF-8.
    EXPECT_TRUE(is_valid_utf8(req.error)) << req.error;
}

const std::string k100(100, 'a');
const std::string k101(101, 'a');

INSTANTIATE_TEST_SUITE_P(
    Bodies, PublishRequestRefused,
    ::testing::Values(
        // not JSON, or not an object or array
        Refusal{"Empty", "", "malformed JSON"},
        Refusal{"Blank", "  \n", "malformed JSON"},
        Refusal{"Truncated", R"({"group": "g", "data": )", "malformed JSON"},
        Refusal{"TrailingComma", R"({"group": "g", "data": 1,})", "malformed JSON"},
        Refusal{"TrailingGarbage", R"({"group": "g", "data": 1} x)", "malformed JSON"},
        Refusal{"TwoDocuments", R"({"group": "g", "data": 1}{"group": "g", "data": 1})",
                "malformed JSON"},
        Refusal{"SingleQuotes", "{'group': 'g', 'data': 1}", "malformed JSON"},
        Refusal{"InvalidUtf8", "{\"group\": \"g\", \"data\": \"\xC3\x28\"}", "malformed JSON"},
        Refusal{"LoneSurrogate", R"({"group": "g", "data": "\ud800"})", "malformed JSON"},
        Refusal{"TopLevelString", R"("hello")", ""},
        Refusal{"TopLevelNumber", "42", ""},
        Refusal{"TopLevelNull", "null", ""},
        Refusal{"TopLevelTrue", "true", ""},
        Refusal{"DuplicateData", R"({"group": "g", "data": 1, "data": 2})", "duplicate"},
        Refusal{"DuplicateGroup", R"({"group": "a", "group": "b", "data": 1})", "duplicate"},
        Refusal{"DuplicateInsideData", R"({"group": "g", "data": {"k": 1, "k": 2}})",
                "duplicate"},
        // missing or conflicting fields
        Refusal{"EmptyObject", "{}", "exactly one of \"group\" or \"groups\""},
        Refusal{"MissingData", R"({"group": "g"})", "\"data\" is required"},
        Refusal{"MissingDataWithGroups", R"({"groups": ["g"]})", "\"data\" is required"},
        Refusal{"MissingGroup", R"({"data": 1})", "exactly one of \"group\" or \"groups\""},
        Refusal{"BothGroupAndGroups", R"({"group": "a", "groups": ["b"], "data": 1})",
                "exactly one of \"group\" or \"groups\""},
        Refusal{"BothWithNullGroups", R"({"group": "a", "groups": null, "data": 1})",
                "exactly one of"},
        // groups
        Refusal{"GroupsEmpty", R"({"groups": [], "data": 1})", "non-empty array"},
        Refusal{"GroupsString", R"({"groups": "a", "data": 1})", "non-empty array"},
        Refusal{"GroupsObject", R"({"groups": {"a": 1}, "data": 1})", "non-empty array"},
        Refusal{"GroupsNull", R"({"groups": null, "data": 1})", "non-empty array"},
        Refusal{"GroupsWithNumber", R"({"groups": ["a", 1], "data": 1})",
                "group names must be strings"},
        Refusal{"GroupsWithNull", R"({"groups": ["a", null], "data": 1})",
                "group names must be strings"},
        Refusal{"GroupsNested", R"({"groups": [["a"]], "data": 1})",
                "group names must be strings"},
        Refusal{"GroupNumber", R"({"group": 7, "data": 1})", "group names must be strings"},
        Refusal{"GroupNull", R"({"group": null, "data": 1})", "group names must be strings"},
        Refusal{"GroupArray", R"({"group": ["a"], "data": 1})", "group names must be strings"},
        // invalid names
        Refusal{"NameEmpty", R"({"group": "", "data": 1})", "invalid group name \"\""},
        Refusal{"Name101", R"({"group": ")" + k101 + R"(", "data": 1})", "invalid group name"},
        Refusal{"NameSpace", R"({"group": "a b", "data": 1})", "invalid group name \"a b\""},
        Refusal{"NameSlash", R"({"group": "a/b", "data": 1})", "invalid group name \"a/b\""},
        Refusal{"NameUnicode", "{\"group\": \"caf\xC3\xA9\", \"data\": 1}", "invalid group name"},
        Refusal{"NameEscapedUnicode", R"({"group": "caf\u00e9", "data": 1})",
                "invalid group name"},
        Refusal{"NameNul", R"({"group": "a\u0000b", "data": 1})", ""},
        Refusal{"NameControl", R"({"group": "a\u0001", "data": 1})",
                "invalid group name \"a\\u0001\""},
        Refusal{"NameInGroupsList", R"({"groups": ["ok", "not ok"], "data": 1})",
                "invalid group name \"not ok\""},
        Refusal{"Name101InGroupsList", R"({"groups": [")" + k100 + R"(", ")" + k101 +
                                           R"("], "data": 1})",
                "invalid group name"},
        // A long name is cut in the message, never inside a UTF-8 character.
        Refusal{"LongNameCutMidCharacter",
                R"({"group": ")" + std::string(119, 'a') + "\xC3\xA9" + std::string(20, 'b') +
                    R"(", "data": 1})",
                "invalid group name \"" + std::string(119, 'a')},
        Refusal{"LongName4ByteCharacter",
                R"({"group": ")" + std::string(118, 'a') + "\xF0\x9F\x98\x80" +
                    std::string(20, 'b') + R"(", "data": 1})",
                "invalid group name \"" + std::string(118, 'a')},
        // batches
        Refusal{"EmptyBatch", "[]", "empty batch"},
        Refusal{"BatchItemNumber", "[1]", "message 0: a message must be a JSON object"},
        Refusal{"BatchItemString", R"(["x"])", "message 0: a message must be a JSON object"},
        Refusal{"BatchItemNull", R"([null])", "message 0: a message must be a JSON object"},
        Refusal{"BatchItemArray", R"([[{"group": "g", "data": 1}]])",
                "message 0: a message must be a JSON object"},
        Refusal{"BatchSecondNotObject", R"([{"group": "g", "data": 1}, 2])",
                "message 1: a message must be a JSON object"},
        Refusal{"BatchSecondMissingData", R"([{"group": "g", "data": 1}, {"group": "g"}])",
                "message 1: \"data\" is required"},
        Refusal{"BatchThirdBadName",
                R"([{"group": "g", "data": 1}, {"group": "h", "data": 2}, {"group": "x y", "data": 3}])",
                "message 2: invalid group name \"x y\""},
        Refusal{"BatchFirstBad", R"([{"data": 1}, {"group": "g", "data": 1}])",
                "message 0: exactly one of"},
        Refusal{"BatchDuplicateKey", R"([{"group": "g", "data": 1}, {"group": "g", "group": "h", "data": 1}])",
                "duplicate"}),
    [](const ::testing::TestParamInfo<Refusal>& info) { return std::string(info.param.name); });

TEST(PublishRequest, SingleErrorsHaveNoMessagePrefix) {
    PublishRequest req = parse_publish_request(R"({"group": "g"})");
    ASSERT_FALSE(req.ok);
    EXPECT_EQ(req.error, "\"data\" is required");
    EXPECT_FALSE(req.batch);
}

TEST(PublishRequest, BatchErrorNamesTheMessage) {
    PublishRequest req =
        parse_publish_request(R"([{"group": "g", "data": 1}, {"group": "g", "groups": ["h"], "data": 1}])");
    ASSERT_FALSE(req.ok);
    EXPECT_TRUE(req.batch);
    EXPECT_TRUE(req.items.empty()) << "the good first message must not be kept";
    EXPECT_EQ(req.error.rfind("message 1: ", 0), 0u) << req.error;
}

TEST(PublishRequest, MalformedJsonSaysWhere) {
    PublishRequest req = parse_publish_request("{\"group\": \"g\",\n \"data\": ]}");
    ASSERT_FALSE(req.ok);
    EXPECT_EQ(req.error.rfind("malformed JSON: ", 0), 0u) << req.error;
    EXPECT_NE(req.error.find("line 2"), std::string::npos) << req.error;
}

TEST(PublishRequest, ALongInvalidNameIsCutInTheError) {
    std::string name(500, 'x');
    name += ' ';
    PublishRequest req = parse_publish_request(R"({"group": ")" + name + R"(", "data": 1})");
    ASSERT_FALSE(req.ok);
    EXPECT_NE(req.error.find("\"" + std::string(120, 'x') + "\""), std::string::npos) << req.error;
    EXPECT_LT(req.error.size(), 250u);
}

TEST(PublishRequest, GroupsPerMessageLimit) {
    auto body = [](size_t n) {
        std::string b = R"({"groups": [)";
        for (size_t i = 0; i < n; ++i) {
            b += (i ? ",\"g" : "\"g") + std::to_string(i) + "\"";
        }
        return b + R"(], "data": 1})";
    };
    EXPECT_EQ(One(body(kMaxGroupsPerMessage)).groups.size(), kMaxGroupsPerMessage);
    PublishRequest req = parse_publish_request(body(kMaxGroupsPerMessage + 1));
    EXPECT_FALSE(req.ok);
    EXPECT_TRUE(req.items.empty());
    EXPECT_NE(req.error.find("at most " + std::to_string(kMaxGroupsPerMessage)), std::string::npos)
        << req.error;
}

TEST(PublishRequest, NameLengthBoundary) {
    EXPECT_EQ(One(R"({"group": ")" + k100 + R"(", "data": 1})").groups, (Groups{k100}));
    EXPECT_FALSE(parse_publish_request(R"({"group": ")" + k101 + R"(", "data": 1})").ok);
}

TEST(PublishRequest, BodyIsReadByLengthNotUpToNul) {
    // A body cut before its end is malformed even if the bytes after the
    // view would complete it; a NUL byte is not an end of input.
    std::string full = R"({"group": "g", "data": 1})";
    EXPECT_FALSE(parse_publish_request(std::string_view(full.data(), full.size() - 1)).ok);
    std::string with_nul = R"({"group": "g", "data": 1})" + std::string(1, '\0');
    EXPECT_FALSE(parse_publish_request(with_nul).ok);
    EXPECT_FALSE(parse_publish_request(std::string_view()).ok);
}

// ---------------------------------------------------------------------------
// json_quote

TEST(JsonQuote, Escapes) {
    EXPECT_EQ(json_quote(""), R"("")");
    EXPECT_EQ(json_quote("plain text"), R"("plain text")");
    EXPECT_EQ(json_quote(R"(say "hi")"), R"("say \"hi\"")");
    EXPECT_EQ(json_quote(R"(a\b)"), R"("a\\b")");
    EXPECT_EQ(json_quote("\\\""), R"("\\\"")");
    EXPECT_EQ(json_quote("l1\nl2\r\tx"), R"("l1\nl2\r\tx")");
    EXPECT_EQ(json_quote("\x01"), R"("\u0001")");
    EXPECT_EQ(json_quote("\x08\x0c\x1f"), R"("\u0008\u000c\u001f")");
    EXPECT_EQ(json_quote(std::string_view("a\0b", 3)), R"("a\u0000b")");
    EXPECT_EQ(json_quote("\x7f"), "\"\x7f\"");  // DEL needs no escape
    EXPECT_EQ(json_quote("/"), R"("/")");
}

TEST(JsonQuote, LeavesUtf8Alone) {
    const std::string s = "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80";
    EXPECT_EQ(json_quote(s), "\"" + s + "\"");
}

TEST(JsonQuote, RoundTripsThroughAJsonParser) {
    std::string s;
    for (int c = 0; c < 0x80; ++c) {
        s.push_back(static_cast<char>(c));
    }
    s += "\xC3\xA9\xE2\x9C\x93\xF0\x9F\x98\x80\"\\";
    std::string quoted = json_quote(s);
    json_error_t err;
    json_t* j = json_loadb(quoted.data(), quoted.size(), JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    ASSERT_NE(j, nullptr) << err.text << "\n" << quoted;
    ASSERT_TRUE(json_is_string(j));
    EXPECT_EQ(std::string(json_string_value(j), json_string_length(j)), s);
    json_decref(j);
}

TEST(PublishRequest, AGroupNamedTwiceIsOneDestination) {
    EXPECT_EQ(One(R"({"groups": ["a", "b", "a", "b", "a"], "data": 1})").groups,
              (Groups{"a", "b"}));
}


TEST(ActionRequest, PublishBodiesAreNotActions) {
    EXPECT_FALSE(parse_action_request(R"({"group": "a", "data": {"action": 1}})").is_action);
    EXPECT_FALSE(parse_action_request(R"([{"action": "subscribe"}])").is_action);
    EXPECT_FALSE(parse_action_request("not json").is_action);
}

TEST(ActionRequest, SubscribeAndUnsubscribe) {
    for (const char* a : {"subscribe", "unsubscribe"}) {
        ActionRequest r = parse_action_request(std::string(R"({"action": ")") + a +
                                               R"(", "user": "alice", "group": "project_7"})");
        ASSERT_TRUE(r.is_action);
        ASSERT_TRUE(r.ok) << r.error;
        EXPECT_EQ(r.action, a);
        EXPECT_EQ(r.user, "alice");
        EXPECT_EQ(r.group, "project_7");
        // what each connection is told names no user
        EXPECT_EQ(r.instruction,
                  std::string(R"({"action":")") + a + R"(","group":"project_7"})");
    }
}

TEST(ActionRequest, DisconnectDefaultsToANormalClose) {
    ActionRequest r = parse_action_request(R"({"action": "disconnect", "user": "bob"})");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.code, 1000);
    EXPECT_EQ(r.instruction, R"({"action":"disconnect","code":1000,"reason":""})");
}

TEST(ActionRequest, DisconnectWithAnApplicationCodeAndReason) {
    ActionRequest r = parse_action_request(
        R"({"action": "disconnect", "user": "bob", "code": 4001, "reason": "logged \"out\""})");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.code, 4001);
    EXPECT_EQ(r.reason, "logged \"out\"");
    EXPECT_EQ(r.instruction,
              R"({"action":"disconnect","code":4001,"reason":"logged \"out\""})");
}

TEST(ActionRequest, Refusals) {
    const char* bad[] = {
        R"({"action": 1, "user": "a"})",
        R"({"action": "ban", "user": "a"})",
        R"({"action": "subscribe", "group": "g"})",
        R"({"action": "subscribe", "user": "", "group": "g"})",
        R"({"action": "subscribe", "user": 5, "group": "g"})",
        R"({"action": "subscribe", "user": "a"})",
        R"({"action": "subscribe", "user": "a", "group": "~user:b"})",
        R"({"action": "subscribe", "user": "a", "group": "no spaces"})",
        R"({"action": "disconnect", "user": "a", "code": 1234})",
        R"({"action": "disconnect", "user": "a", "code": 1001})",
        R"({"action": "disconnect", "user": "a", "code": 5000})",
        R"({"action": "disconnect", "user": "a", "code": "4001"})",
        R"({"action": "disconnect", "user": "a", "reason": 7})",
    };
    for (const char* body : bad) {
        ActionRequest r = parse_action_request(body);
        EXPECT_TRUE(r.is_action) << body;
        EXPECT_FALSE(r.ok) << body;
        EXPECT_FALSE(r.error.empty()) << body;
        // the error goes back as JSON: it must be valid UTF-8
        EXPECT_TRUE(is_valid_utf8(r.error)) << body;
    }
}

TEST(ActionRequest, LimitsOnUserAndReason) {
    std::string user(kMaxActionUser, 'u');
    EXPECT_TRUE(parse_action_request(R"({"action":"disconnect","user":")" + user + "\"}").ok);
    EXPECT_FALSE(parse_action_request(R"({"action":"disconnect","user":")" + user + "u\"}").ok);

    std::string reason(kMaxCloseReason, 'r');
    EXPECT_TRUE(parse_action_request(R"({"action":"disconnect","user":"a","reason":")" +
                                     reason + "\"}").ok);
    EXPECT_FALSE(parse_action_request(R"({"action":"disconnect","user":"a","reason":")" +
                                      reason + "r\"}").ok);
}


TEST(RelayAnswer, EmptyMeansNothing) {
    for (const char* body : {"", "  \r\n"}) {
        RelayAnswer a = parse_relay_answer(body);
        EXPECT_TRUE(a.ok);
        EXPECT_FALSE(a.has_reply);
        EXPECT_TRUE(a.publish.items.empty());
    }
}

TEST(RelayAnswer, ReplyAndPublish) {
    RelayAnswer a = parse_relay_answer(
        R"({"reply": {"type": "unread", "count": 2.5},
            "publish": [{"group": "user_5", "data": {"unread": 2}},
                        {"groups": ["a", "b"], "data": "plain"}]})");
    ASSERT_TRUE(a.ok) << a.error;
    EXPECT_TRUE(a.has_reply);
    EXPECT_EQ(a.reply, R"({"type":"unread","count":2.5})");
    ASSERT_EQ(a.publish.items.size(), 2u);
    EXPECT_EQ(a.publish.items[0].groups, (Groups{"user_5"}));
    EXPECT_EQ(a.publish.items[0].payload, R"({"unread":2})");
    EXPECT_EQ(a.publish.items[1].groups, (Groups{"a", "b"}));
    EXPECT_EQ(a.publish.items[1].payload, "plain");
}

TEST(RelayAnswer, AStringReplyIsItsText) {
    RelayAnswer a = parse_relay_answer(R"({"reply": "pong \"x\""})");
    ASSERT_TRUE(a.ok);
    EXPECT_EQ(a.reply, "pong \"x\"");
}

TEST(RelayAnswer, OnePublishObjectAndEmptyList) {
    RelayAnswer a = parse_relay_answer(R"({"publish": {"group": "g", "data": 1}})");
    ASSERT_TRUE(a.ok) << a.error;
    ASSERT_EQ(a.publish.items.size(), 1u);
    RelayAnswer b = parse_relay_answer(R"({"publish": []})");
    ASSERT_TRUE(b.ok);
    EXPECT_TRUE(b.publish.items.empty());
}

TEST(RelayAnswer, RefusalsPublishNothing) {
    for (const char* body : {"not json", "[1]", "42",
                             R"({"publish": "g"})",
                             R"({"publish": [{"group": "ok", "data": 1}, {"group": "bad name", "data": 2}]})",
                             R"({"publish": [{"group": "g"}]})"}) {
        RelayAnswer a = parse_relay_answer(body);
        EXPECT_FALSE(a.ok) << body;
        EXPECT_FALSE(a.error.empty()) << body;
        EXPECT_TRUE(is_valid_utf8(a.error)) << body;
    }
}

}  // namespace
}  // namespace realtime
