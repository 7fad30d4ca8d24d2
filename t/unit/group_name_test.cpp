// is_valid_group_name: tables of valid and invalid names, the 100/101 byte
// boundary, and every single byte value against an independent rule.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "core/group_name.h"

namespace realtime {
namespace {

using namespace std::string_view_literals;

// It is usable at compile time (the module checks literal names with it).
static_assert(kMaxGroupName == 100);
static_assert(is_valid_group_name("chat:lobby"));
static_assert(!is_valid_group_name(""));
static_assert(!is_valid_group_name("a b"));

TEST(GroupName, Valid) {
    const std::string_view names[] = {
        "a", "Z", "0", "9", "chat", "chat:lobby", "user-42", "user_42", "v1.2.3",
        "ns:sub:leaf", "-", "_", ".", ":", "--", "..", "::", "-_.:",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:",
        "a-b", "a_b", "a.b", "a:b", "-lead", "trail-", ".hidden", "trailing.", ":colon", "colon:",
    };
    for (std::string_view name : names) {
        EXPECT_TRUE(is_valid_group_name(name)) << '"' << name << '"';
    }
}

TEST(GroupName, EachAllowedPunctuationAlone) {
    for (char c : {'-', '_', '.', ':'}) {
        std::string s(1, c);
        EXPECT_TRUE(is_valid_group_name(s)) << s;
        EXPECT_TRUE(is_valid_group_name("a" + s + "b")) << s;
        EXPECT_TRUE(is_valid_group_name(std::string(100, c))) << s;
    }
}

TEST(GroupName, Invalid) {
    const std::string_view names[] = {
        ""sv, " "sv, "a b"sv, " a"sv, "a "sv, "a/b"sv, "/"sv, "a\\b"sv, "a\tb"sv, "a\nb"sv,
        "a\0b"sv, "\0"sv, "a+b"sv, "a@b"sv, "a#b"sv, "a$b"sv, "a%b"sv, "a&b"sv, "a*b"sv,
        "a,b"sv, "a;b"sv, "a=b"sv, "a?b"sv, "a!b"sv, "a~b"sv, "a`b"sv, "a^b"sv, "a|b"sv,
        "a'b"sv, "a\"b"sv, "a<b"sv, "a>b"sv, "a(b)"sv, "a[b]"sv, "a{b}"sv, "\x7f"sv,
        "caf\xC3\xA9"sv,          // é
        "\xE2\x9C\x93"sv,         // ✓
        "\xF0\x9F\x98\x80"sv,     // 😀
        "\xFF"sv, "\x80"sv,       // not UTF-8 at all
        "chat lobby"sv, "chat/lobby"sv,
    };
    for (std::string_view name : names) {
        EXPECT_FALSE(is_valid_group_name(name)) << '"' << name << "\" (" << name.size() << " bytes)";
    }
}

TEST(GroupName, LengthBoundary) {
    EXPECT_TRUE(is_valid_group_name(std::string(1, 'a')));
    EXPECT_TRUE(is_valid_group_name(std::string(99, 'a')));
    EXPECT_TRUE(is_valid_group_name(std::string(100, 'a')));
    EXPECT_FALSE(is_valid_group_name(std::string(101, 'a')));
    EXPECT_FALSE(is_valid_group_name(std::string(1000, 'a')));
    EXPECT_TRUE(is_valid_group_name(std::string(50, 'x') + ":" + std::string(49, 'y')));
    EXPECT_FALSE(is_valid_group_name(std::string(50, 'x') + ":" + std::string(50, 'y')));
    // A bad byte at the very end of a maximal name is still seen.
    EXPECT_FALSE(is_valid_group_name(std::string(99, 'a') + " "));
}

TEST(GroupName, ReadsByLengthNotUpToNul) {
    const std::string buf = "abc def";
    EXPECT_TRUE(is_valid_group_name(std::string_view(buf.data(), 3)));
    EXPECT_FALSE(is_valid_group_name(std::string_view(buf.data(), 4)));
}

TEST(GroupName, EveryByteValue) {
    auto allowed = [](int c) {
        return std::string_view("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789-_.:")
                   .find(static_cast<char>(c)) != std::string_view::npos;
    };
    int valid = 0;
    for (int c = 0; c < 256; ++c) {
        const char ch = static_cast<char>(c);
        std::string alone(1, ch);
        std::string inside = "ab" + alone + "cd";
        EXPECT_EQ(is_valid_group_name(alone), allowed(c)) << "byte " << c;
        EXPECT_EQ(is_valid_group_name(inside), allowed(c)) << "byte " << c;
        valid += allowed(c);
    }
    EXPECT_EQ(valid, 26 + 26 + 10 + 4);
}

// group_matches: realtime_allow_subscribe patterns.

static_assert(group_matches("chat:lobby", "chat:lobby"));
static_assert(group_matches("chat:*", "chat:lobby"));
static_assert(!group_matches("*", "chat"));

TEST(GroupMatches, Exact) {
    EXPECT_TRUE(group_matches("lobby", "lobby"));
    EXPECT_TRUE(group_matches("chat:lobby", "chat:lobby"));
    EXPECT_TRUE(group_matches(std::string(100, 'a'), std::string(100, 'a')));
    EXPECT_FALSE(group_matches("lobby", "lobby2"));
    EXPECT_FALSE(group_matches("lobby2", "lobby"));
    EXPECT_FALSE(group_matches("lobby", "Lobby"));  // case matters
    EXPECT_FALSE(group_matches("lobby", "lobb"));
    EXPECT_FALSE(group_matches("lobby", ""));
    EXPECT_FALSE(group_matches("", "lobby"));
    EXPECT_FALSE(group_matches("", ""));
}

TEST(GroupMatches, Prefix) {
    EXPECT_TRUE(group_matches("chat:*", "chat:lobby"));
    EXPECT_TRUE(group_matches("chat:*", "chat:a"));
    EXPECT_TRUE(group_matches("chat:*", "chat:a:b"));
    EXPECT_TRUE(group_matches("chat*", "chat:lobby"));
    EXPECT_TRUE(group_matches("chat*", "chatroom"));
    EXPECT_TRUE(group_matches("c*", "c-1"));
    EXPECT_TRUE(group_matches("user.42.*", "user.42.inbox"));
    EXPECT_TRUE(group_matches("a*", "a" + std::string(99, 'b')));
    // the group must be longer than the prefix
    EXPECT_FALSE(group_matches("chat:*", "chat:"));
    EXPECT_FALSE(group_matches("chat*", "chat"));
    EXPECT_FALSE(group_matches("chat:*", "chat"));
    // and start with it
    EXPECT_FALSE(group_matches("chat:*", "chatx:lobby"));
    EXPECT_FALSE(group_matches("chat:*", "xchat:lobby"));
    EXPECT_FALSE(group_matches("chat:*", "Chat:lobby"));
    EXPECT_FALSE(group_matches("user.42.*", "user.420.inbox"));
    EXPECT_FALSE(group_matches("chat:*", "lobby"));
}

TEST(GroupMatches, StarAloneMatchesNothing) {
    // an empty prefix is not "everything"
    for (std::string_view g : {"a", "chat", "chat:lobby", "*", "-"}) {
        EXPECT_FALSE(group_matches("*", g)) << g;
    }
}

TEST(GroupMatches, OnlyATrailingStarIsSpecial) {
    // elsewhere '*' is an ordinary byte, which no valid group has
    EXPECT_FALSE(group_matches("*chat", "xchat"));
    EXPECT_FALSE(group_matches("*chat", "*chat"));
    EXPECT_FALSE(group_matches("a*b", "axb"));
    EXPECT_FALSE(group_matches("a*b", "a*b"));
    EXPECT_FALSE(group_matches("a*b*", "axbc"));
    EXPECT_FALSE(group_matches("a**", "ab"));  // prefix "a*": no valid group starts so
    EXPECT_FALSE(group_matches("a**", "a*b"));
    // other pattern characters are literal too
    EXPECT_FALSE(group_matches("a?", "ab"));
    EXPECT_FALSE(group_matches("a.", "ab"));
    EXPECT_TRUE(group_matches("a.*", "a.b"));
    EXPECT_FALSE(group_matches("a.*", "axb"));
}

TEST(GroupMatches, GroupMustBeValid) {
    // a pattern never lets an invalid name through, even an equal one
    EXPECT_FALSE(group_matches("a b", "a b"));
    EXPECT_FALSE(group_matches("chat:*", "chat: lobby"));
    EXPECT_FALSE(group_matches("chat:*", "chat:lobby/x"));
    EXPECT_FALSE(group_matches("chat:*", "chat:caf\xC3\xA9"));
    EXPECT_FALSE(group_matches("chat:*", "chat:a\0b"sv));
    EXPECT_FALSE(group_matches("chat:*", "chat:" + std::string(96, 'a')));  // 101 bytes
    EXPECT_TRUE(group_matches("chat:*", "chat:" + std::string(95, 'a')));   // 100 bytes
    EXPECT_FALSE(group_matches(std::string(101, 'a'), std::string(101, 'a')));
}

TEST(GroupMatches, ReadsByLength) {
    const std::string buf = "chat:lobbyX";
    EXPECT_TRUE(group_matches("chat:lobby", std::string_view(buf.data(), 10)));
    EXPECT_TRUE(group_matches(std::string_view("chat:*Z", 6), std::string_view(buf.data(), 10)));
    EXPECT_FALSE(group_matches("chat:lobby", buf));
}

}  // namespace
}  // namespace realtime
