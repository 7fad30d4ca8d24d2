// channels::map_event, parse_rule and is_channels_group_name: websocket.send,
// events without a rule, every handler shape of the seeds reproduced byte for
// byte (events as Python's msgpack.packb(use_bin_type=True) writes them), the
// rule options and their order, and what is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "core/channels_event.h"
#include "msgpack_encode.h"
#include "test_util.h"

namespace realtime::channels {
namespace {

namespace mp = test::mp;
using Kind = Outgoing::Kind;

// The decoded event points into its bytes: they are kept for the whole run.
msgpack::Value Event(const std::string& bytes) {
    static std::deque<std::string> kept;
    const std::string& data = kept.emplace_back(bytes);
    msgpack::Value v;
    std::string error;
    EXPECT_TRUE(msgpack::decode(data, &v, &error)) << error;
    return v;
}

msgpack::Value Hex(std::string_view hex) { return Event(mp::FromHex(hex)); }

EventRule Rule(std::vector<std::string_view> args) {
    EventRule rule;
    std::string error;
    EXPECT_TRUE(parse_rule(args, &rule, &error)) << error;
    return rule;
}

// The text frame for event under rules (empty: no rule).
std::string Text(const msgpack::Value& event, const std::vector<EventRule>& rules = {}) {
    Outgoing out;
    std::string error;
    EXPECT_TRUE(map_event(event, rules, &out, &error)) << error;
    EXPECT_EQ(out.kind, Kind::kText);
    return out.payload;
}

std::string Refused(const msgpack::Value& event, const std::vector<EventRule>& rules = {}) {
    Outgoing out;
    std::string error;
    EXPECT_FALSE(map_event(event, rules, &out, &error));
    EXPECT_FALSE(error.empty());
    EXPECT_EQ(out.kind, Kind::kNone);
    return error;
}

// Python: msgpack.packb(event, use_bin_type=True).hex()
// {"type":"send_notification","notification":{"id":42,"title":"Yeni mesaj",
//  "message":"Merhaba dünya \"q\"","read":False,"created_at":"2024-01-01T10:00:00Z",
//  "score":1.5,"ratio":2.0,"tags":["a",None]},"__asgi_channel__":["specific.abc!g1"]}
constexpr std::string_view kSendNotification =
    "83a474797065b173656e645f6e6f74696669636174696f6eac6e6f74696669636174696f6e88a26964"
    "2aa57469746c65aa59656e69206d6573616aa76d657373616765b24d6572686162612064c3bc6e7961"
    "20227122a472656164c2aa637265617465645f6174b4323032342d30312d30315431303a30303a3030"
    "5aa573636f7265cb3ff8000000000000a5726174696fcb4000000000000000a47461677392a161c0b0"
    "5f5f617367695f6368616e6e656c5f5f91af73706563696669632e616263216731";
constexpr std::string_view kNotificationJson =
    "{\"id\":42,\"title\":\"Yeni mesaj\",\"message\":\"Merhaba d\xc3\xbcnya \\\"q\\\"\","
    "\"read\":false,\"created_at\":\"2024-01-01T10:00:00Z\",\"score\":1.5,\"ratio\":2.0,"
    "\"tags\":[\"a\",null]}";
// {"type":"notification_message","data":{"id":7,"text":"hi"},
//  "__asgi_group__":"user_1_notifications"}
constexpr std::string_view kNotificationMessage =
    "83a474797065b46e6f74696669636174696f6e5f6d657373616765a46461746182a2696407a47465787"
    "4a26869ae5f5f617367695f67726f75705f5fb4757365725f315f6e6f74696669636174696f6e73";
// {"type":"chat_message","message":"m","sender":"u"}
constexpr std::string_view kChatMessage =
    "83a474797065ac636861745f6d657373616765a76d657373616765a16da673656e646572a175";
// {"type":"user_event","message":"alice joined","event":"user_joined"}
constexpr std::string_view kUserEvent =
    "83a474797065aa757365725f6576656e74a76d657373616765ac616c696365206a6f696e6564a565766"
    "56e74ab757365725f6a6f696e6564";
// {"type":"ticket_update","action":"created","data":{"id":3,"status":"open","priority":-1}}
constexpr std::string_view kTicketUpdate =
    "83a474797065ad7469636b65745f757064617465a6616374696f6ea763726561746564a46461746183a"
    "2696403a6737461747573a46f70656ea87072696f72697479ff";
// {"type":"chat_message","message":"m","sender":"u","internal_id":9}
constexpr std::string_view kChatInternal =
    "84a474797065ac636861745f6d657373616765a76d657373616765a16da673656e646572a175ab696e7"
    "465726e616c5f696409";

// ---------------------------------------------------------------------------
// websocket.send

TEST(ChannelsEvent, WebsocketSendText) {
    // {"type":"websocket.send","text":"hello é"}
    Outgoing out;
    std::string error;
    ASSERT_TRUE(map_event(Hex("82a474797065ae776562736f636b65742e73656e64a474657874a868656c6c6f"
                              "20c3a9"),
                          {}, &out, &error))
        << error;
    EXPECT_EQ(out.kind, Kind::kText);
    EXPECT_EQ(out.payload, "hello \xc3\xa9");  // verbatim, not JSON
    // {"type":"websocket.send","text":"t","bytes":None}: nil is absent
    EXPECT_EQ(Text(Hex("83a474797065ae776562736f636b65742e73656e64a474657874a174a56279746573c0")),
              "t");
}

TEST(ChannelsEvent, WebsocketSendBytes) {
    // {"type":"websocket.send","bytes":b"\x00\x01\xff"}
    Outgoing out;
    std::string error;
    ASSERT_TRUE(map_event(Hex("82a474797065ae776562736f636b65742e73656e64a56279746573c4030001ff"),
                          {}, &out, &error))
        << error;
    EXPECT_EQ(out.kind, Kind::kBinary);
    EXPECT_EQ(out.payload, std::string("\x00\x01\xff", 3));
}

TEST(ChannelsEvent, WebsocketSendRefusals) {
    std::string ws = mp::FixStr("type") + mp::FixStr("websocket.send");
    Refused(Event(mp::FixMap(1) + ws));                                           // neither
    Refused(Event(mp::FixMap(3) + ws + mp::FixStr("text") + mp::FixStr("t") +      // both
                  mp::FixStr("bytes") + mp::Bin8("b")));
    Refused(Event(mp::FixMap(2) + ws + mp::FixStr("text") + mp::Bin8("t")));       // text as bin
    Refused(Event(mp::FixMap(2) + ws + mp::FixStr("bytes") + mp::FixStr("b")));    // bytes as str
    EXPECT_NE(Refused(Event(mp::FixMap(2) + ws + mp::FixStr("text") + mp::FixStr("\xc3"))).find("UTF-8"),
              std::string::npos);
    // rules never apply to it
    std::string error;
    EventRule rule;
    EXPECT_FALSE(parse_rule({"websocket.send", "type=x"}, &rule, &error));
}

// ---------------------------------------------------------------------------
// Without a rule: the event's JSON minus the channel layer's keys

TEST(ChannelsEvent, UnmappedTypeIsTheEventMinusLayerKeysInOrder) {
    // {"type":"x.y","z":1,"a":[1.5,None],"__asgi_group__":"g","m":"é"}
    EXPECT_EQ(Text(Hex("85a474797065a3782e79a17a01a16192cb3ff8000000000000c0ae5f5f617367695f67726f"
                       "75705f5fa167a16da2c3a9")),
              "{\"type\":\"x.y\",\"z\":1,\"a\":[1.5,null],\"m\":\"\xc3\xa9\"}");
    EXPECT_EQ(Text(Hex(kSendNotification)),
              "{\"type\":\"send_notification\",\"notification\":" + std::string(kNotificationJson) +
                  "}");
    // a rule for another type changes nothing
    EXPECT_EQ(Text(Hex(kChatMessage), {Rule({"other", "type=x"})}),
              "{\"type\":\"chat_message\",\"message\":\"m\",\"sender\":\"u\"}");
    // nested "__asgi" keys are the app's: kept
    EXPECT_EQ(Text(Event(mp::FixMap(2) + mp::FixStr("type") + mp::FixStr("t") + mp::FixStr("d") +
                         mp::FixMap(1) + mp::FixStr("__asgi_x") + mp::FixInt(1))),
              "{\"type\":\"t\",\"d\":{\"__asgi_x\":1}}");
}

// ---------------------------------------------------------------------------
// The seeds' handlers, byte for byte

TEST(ChannelsEventSeeds, SendNotificationRenamesTypeAndKey) {
    // self.send(json.dumps({"type": "notification", "data": event["notification"]}))
    std::vector<EventRule> rules = {
        Rule({"send_notification", "type=notification", "rename=notification:data"})};
    EXPECT_EQ(Text(Hex(kSendNotification), rules),
              "{\"type\":\"notification\",\"data\":" + std::string(kNotificationJson) + "}");
}

TEST(ChannelsEventSeeds, HandlersThatSendTheEventAsItIs) {
    // self.send(json.dumps(event)): no rule needed, or a rule without options
    EXPECT_EQ(Text(Hex(kNotificationMessage)),
              "{\"type\":\"notification_message\",\"data\":{\"id\":7,\"text\":\"hi\"}}");
    EXPECT_EQ(Text(Hex(kNotificationMessage), {Rule({"notification_message"})}),
              "{\"type\":\"notification_message\",\"data\":{\"id\":7,\"text\":\"hi\"}}");
    EXPECT_EQ(Text(Hex(kChatMessage)),
              "{\"type\":\"chat_message\",\"message\":\"m\",\"sender\":\"u\"}");
    EXPECT_EQ(Text(Hex(kUserEvent)),
              "{\"type\":\"user_event\",\"message\":\"alice joined\",\"event\":\"user_joined\"}");
    EXPECT_EQ(Text(Hex(kTicketUpdate)),
              "{\"type\":\"ticket_update\",\"action\":\"created\","
              "\"data\":{\"id\":3,\"status\":\"open\",\"priority\":-1}}");
}

TEST(ChannelsEventSeeds, HandlerThatSendsOnlyData) {
    // self.send(json.dumps(event["data"]))
    std::vector<EventRule> rules = {Rule({"notification_message", "value=data"})};
    EXPECT_EQ(Text(Hex(kNotificationMessage), rules), "{\"id\":7,\"text\":\"hi\"}");
    // a value that is not an object is sent as its JSON too
    EXPECT_EQ(Text(Hex(kChatMessage), {Rule({"chat_message", "value=message"})}), "\"m\"");
    EXPECT_NE(Refused(Hex(kChatMessage), {Rule({"chat_message", "value=nope"})}).find("nope"),
              std::string::npos);
}

TEST(ChannelsEventSeeds, HandlerThatDropsAnInternalKey) {
    EXPECT_EQ(Text(Hex(kChatInternal), {Rule({"chat_message", "drop=internal_id"})}),
              "{\"type\":\"chat_message\",\"message\":\"m\",\"sender\":\"u\"}");
    // dropping a key the event lacks is no error
    EXPECT_EQ(Text(Hex(kChatMessage), {Rule({"chat_message", "drop=internal_id,x"})}),
              "{\"type\":\"chat_message\",\"message\":\"m\",\"sender\":\"u\"}");
}

// ---------------------------------------------------------------------------
// Rule options

TEST(ChannelsEventRules, KeepKeepsTypeAside) {
    EXPECT_EQ(Text(Hex(kTicketUpdate), {Rule({"ticket_update", "keep=data,nope"})}),
              "{\"type\":\"ticket_update\",\"data\":{\"id\":3,\"status\":\"open\",\"priority\":-1}}");
    // the event's order, not the rule's
    EXPECT_EQ(Text(Hex(kUserEvent), {Rule({"user_event", "keep=event,message"})}),
              "{\"type\":\"user_event\",\"message\":\"alice joined\",\"event\":\"user_joined\"}");
}

TEST(ChannelsEventRules, TypeRemovedOrSet) {
    EXPECT_EQ(Text(Hex(kChatMessage), {Rule({"chat_message", "type=-"})}),
              "{\"message\":\"m\",\"sender\":\"u\"}");
    EXPECT_EQ(Text(Hex(kChatMessage), {Rule({"chat_message", "type=chat \"x\""})}),
              "{\"type\":\"chat \\\"x\\\"\",\"message\":\"m\",\"sender\":\"u\"}");
    // dropped then set: "type" comes first
    EXPECT_EQ(Text(Hex(kChatMessage), {Rule({"chat_message", "drop=type", "type=chat"})}),
              "{\"type\":\"chat\",\"message\":\"m\",\"sender\":\"u\"}");
}

TEST(ChannelsEventRules, OrderKeepRenameDropTypeValue) {
    // keep by old names, rename in place, drop by new names, then value
    EXPECT_EQ(Text(Hex(kUserEvent), {Rule({"user_event", "keep=event,message",
                                           "rename=message:text,event:kind", "drop=kind"})}),
              "{\"type\":\"user_event\",\"text\":\"alice joined\"}");
    EXPECT_EQ(Text(Hex(kUserEvent), {Rule({"user_event", "value=text", "rename=message:text",
                                           "type=-"})}),
              "\"alice joined\"");
    // rename=a:b,b:c: each key once, by its original name
    EXPECT_EQ(Text(Hex(kChatMessage),
                   {Rule({"chat_message", "rename=message:sender,sender:from"})}),
              "{\"type\":\"chat_message\",\"sender\":\"m\",\"from\":\"u\"}");
    // a renamed key replaces the key it now names
    EXPECT_EQ(Text(Hex(kChatMessage), {Rule({"chat_message", "rename=sender:message"})}),
              "{\"type\":\"chat_message\",\"message\":\"u\"}");
    // value=type after type=NEW
    EXPECT_EQ(Text(Hex(kChatMessage), {Rule({"chat_message", "type=c", "value=type"})}),
              "\"c\"");
}

TEST(ChannelsEventRules, OffAndFirstMatch) {
    Outgoing out;
    out.payload = "stale";
    std::string error;
    std::vector<EventRule> rules = {Rule({"chat_message", "off"}),
                                    Rule({"chat_message", "type=second"})};
    ASSERT_TRUE(map_event(Hex(kChatMessage), rules, &out, &error)) << error;
    EXPECT_EQ(out.kind, Kind::kNone);
    EXPECT_TRUE(out.payload.empty());
    std::vector<EventRule> swapped = {rules[1], rules[0]};
    EXPECT_EQ(Text(Hex(kChatMessage), swapped),
              "{\"type\":\"second\",\"message\":\"m\",\"sender\":\"u\"}");
}

// ---------------------------------------------------------------------------
// Events that cannot be sent

TEST(ChannelsEventErrors, RefusedEvents) {
    Refused(Event(mp::FixArray(1) + mp::FixInt(1)));                   // not a map
    Refused(Event(mp::FixStr("type")));
    Refused(Event(mp::FixMap(1) + mp::FixStr("a") + mp::FixInt(1)));   // no type
    Refused(Event(mp::FixMap(0)));
    Refused(Event(mp::FixMap(1) + mp::FixStr("type") + mp::FixInt(1)));  // type not a string
    Refused(Event(mp::FixMap(1) + mp::FixStr("type") + mp::Nil()));
    std::string t = mp::FixStr("type") + mp::FixStr("t");
    // bin outside websocket.send, with or without a rule
    Refused(Event(mp::FixMap(2) + t + mp::FixStr("b") + mp::Bin8("x")));
    Refused(Event(mp::FixMap(2) + t + mp::FixStr("b") + mp::Bin8("x")), {Rule({"t", "type=u"})});
    Refused(Event(mp::FixMap(2) + t + mp::FixStr("b") + mp::Bin8("x")), {Rule({"t", "value=b"})});
    // invalid UTF-8 in a value, a key, the type
    Refused(Event(mp::FixMap(2) + t + mp::FixStr("s") + mp::FixStr("\xff")));
    Refused(Event(mp::FixMap(2) + t + mp::FixStr("\xc3(") + mp::FixInt(1)));
    Refused(Event(mp::FixMap(1) + mp::FixStr("type") + mp::FixStr("\xe2\x82")));
    // a key that is not a string, NaN, ext
    Refused(Event(mp::FixMap(2) + t + mp::FixInt(1) + mp::FixInt(1)));
    Refused(Event(mp::FixMap(2) + t + mp::FixStr("f") + mp::F64(std::nan(""))));
    Refused(Event(mp::FixMap(2) + t + mp::FixStr("e") + mp::FixExt(1, "a")));
    // a dropped key is not looked at
    EXPECT_EQ(Text(Event(mp::FixMap(2) + t + mp::FixStr("b") + mp::Bin8("x")),
                   {Rule({"t", "drop=b"})}),
              "{\"type\":\"t\"}");
}

// ---------------------------------------------------------------------------
// parse_rule

std::string RuleError(std::vector<std::string_view> args) {
    EventRule rule;
    std::string error;
    EXPECT_FALSE(parse_rule(args, &rule, &error)) << (args.empty() ? "" : args[0]);
    EXPECT_FALSE(error.empty());
    return error;
}

TEST(ChannelsParseRule, Fields) {
    EventRule r = Rule({"send_notification", "type=notification", "keep=a,b",
                        "rename=notification:data,x:y", "drop=c", "value=data"});
    EXPECT_EQ(r.type, "send_notification");
    EXPECT_FALSE(r.ignore);
    EXPECT_EQ(r.keep, (std::vector<std::string>{"a", "b"}));
    ASSERT_EQ(r.rename.size(), 2u);
    EXPECT_EQ(r.rename[0], (std::pair<std::string, std::string>{"notification", "data"}));
    EXPECT_EQ(r.rename[1], (std::pair<std::string, std::string>{"x", "y"}));
    EXPECT_EQ(r.drop, (std::vector<std::string>{"c"}));
    EXPECT_TRUE(r.set_type);
    EXPECT_EQ(r.new_type, "notification");
    EXPECT_EQ(r.value, "data");

    EventRule off = Rule({"chat_message", "off"});
    EXPECT_TRUE(off.ignore);
    EXPECT_EQ(off.type, "chat_message");
    EventRule removed = Rule({"t", "type=-"});
    EXPECT_TRUE(removed.set_type);
    EXPECT_EQ(removed.new_type, "");
    EventRule plain = Rule({"t"});
    EXPECT_FALSE(plain.set_type);
    EXPECT_TRUE(plain.keep.empty() && plain.rename.empty() && plain.drop.empty());
}

TEST(ChannelsParseRule, Errors) {
    RuleError({});
    RuleError({""});
    RuleError({"\xff"});
    EXPECT_NE(RuleError({"t", "pick=a"}).find("unknown"), std::string::npos);
    RuleError({"t", "keep"});
    RuleError({"t", "of"});
    RuleError({"t", "=a"});
    // empty names
    RuleError({"t", "keep="});
    RuleError({"t", "keep=a,"});
    RuleError({"t", "keep=,a"});
    RuleError({"t", "drop=a,,b"});
    RuleError({"t", "type="});
    RuleError({"t", "value="});
    RuleError({"t", "rename="});
    RuleError({"t", "keep=\xc3"});
    // rename needs old:new
    RuleError({"t", "rename=a"});
    RuleError({"t", "rename=a:"});
    RuleError({"t", "rename=:b"});
    RuleError({"t", "rename=a:b:c"});
    RuleError({"t", "rename=a:b,c"});
    RuleError({"t", "rename=a:b,a:c"});
    // duplicate options
    EXPECT_NE(RuleError({"t", "keep=a", "keep=b"}).find("twice"), std::string::npos);
    RuleError({"t", "type=a", "type=b"});
    RuleError({"t", "value=a", "value=a"});
    RuleError({"t", "rename=a:b", "rename=c:d"});
    RuleError({"t", "drop=a", "drop=b"});
    // off alone
    RuleError({"t", "off", "type=x"});
    RuleError({"t", "type=x", "off"});
    RuleError({"t", "off", "off"});
}

TEST(ChannelsParseRule, ValueMixesWithKeepAndRename) {
    EventRule r = Rule({"t", "value=b", "keep=a", "rename=a:b"});
    EXPECT_EQ(r.value, "b");
    EXPECT_EQ(Text(Event(mp::FixMap(3) + mp::FixStr("type") + mp::FixStr("t") + mp::FixStr("a") +
                         mp::FixInt(1) + mp::FixStr("b") + mp::FixInt(2)),
                   {r}),
              "1");
}

// ---------------------------------------------------------------------------

TEST(ChannelsGroupName, DjangoChannelsRule) {
    EXPECT_TRUE(is_channels_group_name("user_1_notifications"));
    EXPECT_TRUE(is_channels_group_name("a"));
    EXPECT_TRUE(is_channels_group_name("A-z_0.9"));
    EXPECT_TRUE(is_channels_group_name(std::string(99, 'g')));
    EXPECT_FALSE(is_channels_group_name(std::string(100, 'g')));
    EXPECT_FALSE(is_channels_group_name(""));
    EXPECT_FALSE(is_channels_group_name("chat:lobby"));
    EXPECT_FALSE(is_channels_group_name("~user:alice"));
    EXPECT_FALSE(is_channels_group_name("a b"));
    EXPECT_FALSE(is_channels_group_name("caf\xc3\xa9"));
    EXPECT_FALSE(is_channels_group_name(std::string_view("a\0b", 3)));
}

}  // namespace
}  // namespace realtime::channels
