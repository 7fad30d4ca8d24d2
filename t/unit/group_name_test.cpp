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

}  // namespace
}  // namespace realtime
