// Utf8Validator and is_valid_utf8: tables in the style of Markus Kuhn's
// UTF-8 stress test and Autobahn §6, incremental splitting, fail-fast
// positions, and exhaustive comparison with a plain reference decoder.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/utf8.h"
#include "test_util.h"

namespace realtime {
namespace {

using test::Bytes;
using test::Hex;

// RFC 3629 decoder written the obvious way, used as the oracle.
bool ReferenceValid(std::string_view s) {
    static const uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t i = 0;
    while (i < s.size()) {
        auto b = static_cast<uint8_t>(s[i]);
        size_t len;
        uint32_t cp;
        if (b < 0x80) {
            len = 1;
            cp = b;
        } else if ((b & 0xE0) == 0xC0) {
            len = 2;
            cp = b & 0x1F;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3;
            cp = b & 0x0F;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4;
            cp = b & 0x07;
        } else {
            return false;
        }
        if (i + len > s.size()) {
            return false;
        }
        for (size_t k = 1; k < len; ++k) {
            auto c = static_cast<uint8_t>(s[i + k]);
            if ((c & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (c & 0x3F);
        }
        if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}

// Whether some continuation makes prefix valid. A missing first continuation
// byte is one of 80, 90, A0 (these cover the narrowed ranges after E0, ED,
// F0, F4), later ones may be 80.
bool ReferenceViablePrefix(std::string_view prefix) {
    static const char* const kCompletions[] = {
        "", "\x80", "\x80\x80", "\x80\x80\x80", "\x90", "\x90\x80",
        "\x90\x80\x80", "\xA0", "\xA0\x80", "\xA0\x80\x80"};
    for (const char* c : kCompletions) {
        if (ReferenceValid(std::string(prefix) + c)) {
            return true;
        }
    }
    return false;
}

// Index of the first byte after which s can no longer be valid, or npos.
size_t ReferenceFailIndex(std::string_view s) {
    for (size_t i = 0; i < s.size(); ++i) {
        if (!ReferenceViablePrefix(s.substr(0, i + 1))) {
            return i;
        }
    }
    return std::string::npos;
}

// Feeds s one byte at a time (each byte in its own heap buffer) and returns
// the index of the first write() that returned false, or npos.
size_t FailIndexBytewise(std::string_view s) {
    Utf8Validator v;
    for (size_t i = 0; i < s.size(); ++i) {
        std::vector<uint8_t> one(1, static_cast<uint8_t>(s[i]));
        if (!v.write(one.data(), 1)) {
            return i;
        }
    }
    return std::string::npos;
}

std::string Encode(uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
    return s;
}

struct ValidCase {
    const char* name;
    std::string bytes;
};

std::vector<ValidCase> ValidCases() {
    std::string all_ascii;
    for (int c = 0; c < 0x80; ++c) {
        all_ascii.push_back(static_cast<char>(c));
    }
    return {
        {"empty", ""},
        {"ASCII", "Hello, World!"},
        {"all ASCII including NUL", all_ascii},
        {"U+0080 first 2-byte", Bytes({0xC2, 0x80})},
        {"U+07FF last 2-byte", Bytes({0xDF, 0xBF})},
        {"U+0800 first 3-byte", Bytes({0xE0, 0xA0, 0x80})},
        {"U+D7FF before surrogates", Bytes({0xED, 0x9F, 0xBF})},
        {"U+E000 after surrogates", Bytes({0xEE, 0x80, 0x80})},
        {"U+FFFD replacement char", Bytes({0xEF, 0xBF, 0xBD})},
        {"U+FFFE noncharacter", Bytes({0xEF, 0xBF, 0xBE})},
        {"U+FFFF last 3-byte", Bytes({0xEF, 0xBF, 0xBF})},
        {"U+10000 first 4-byte", Bytes({0xF0, 0x90, 0x80, 0x80})},
        {"U+10FFFF last code point", Bytes({0xF4, 0x8F, 0xBF, 0xBF})},
        {"kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5"},
        {"mixed widths", "a\xC2\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 z"},
        {"long ASCII then emoji", std::string(37, 'x') + "\xF0\x9F\x98\x80" + std::string(19, 'y')},
    };
}

struct InvalidCase {
    const char* name;
    std::string bytes;
    // Index of the first byte that makes the input impossible, or npos when
    // the input is only truncated (every write succeeds, finish() fails).
    size_t fail_at;
};

constexpr size_t kTruncated = std::string::npos;

std::vector<InvalidCase> InvalidCases() {
    std::vector<InvalidCase> v = {
        // Unexpected continuation bytes.
        {"lone 80", Bytes({0x80}), 0},
        {"lone BF", Bytes({0xBF}), 0},
        {"ASCII then lone 80", "ab" + Bytes({0x80}), 2},
        {"80 BF 80", Bytes({0x80, 0xBF, 0x80}), 0},
        {"2-byte plus extra continuation", Bytes({0xC2, 0x80, 0x80}), 2},
        {"3-byte plus extra continuation", Bytes({0xE2, 0x82, 0xAC, 0xAC}), 3},
        // Lead byte followed by a non-continuation.
        {"C2 then ASCII", Bytes({0xC2, 0x41}), 1},
        {"E2 82 then ASCII", Bytes({0xE2, 0x82, 0x41}), 2},
        {"F0 9F 98 then lead byte", Bytes({0xF0, 0x9F, 0x98, 0xC2}), 3},
        {"two lead bytes", Bytes({0xC2, 0xC2}), 1},
        // Overlong forms.
        {"overlong NUL C0 80", Bytes({0xC0, 0x80}), 0},
        {"overlong C1 BF", Bytes({0xC1, 0xBF}), 0},
        {"overlong '/' C0 AF", Bytes({0xC0, 0xAF}), 0},
        {"overlong NUL E0 80 80", Bytes({0xE0, 0x80, 0x80}), 1},
        {"overlong U+07FF E0 9F BF", Bytes({0xE0, 0x9F, 0xBF}), 1},
        {"overlong NUL F0 80 80 80", Bytes({0xF0, 0x80, 0x80, 0x80}), 1},
        {"overlong U+FFFF F0 8F BF BF", Bytes({0xF0, 0x8F, 0xBF, 0xBF}), 1},
        // UTF-16 surrogates, single and paired.
        {"U+D800 ED A0 80", Bytes({0xED, 0xA0, 0x80}), 1},
        {"U+DB7F ED AD BF", Bytes({0xED, 0xAD, 0xBF}), 1},
        {"U+DB80 ED AE 80", Bytes({0xED, 0xAE, 0x80}), 1},
        {"U+DBFF ED AF BF", Bytes({0xED, 0xAF, 0xBF}), 1},
        {"U+DC00 ED B0 80", Bytes({0xED, 0xB0, 0x80}), 1},
        {"U+DF80 ED BE 80", Bytes({0xED, 0xBE, 0x80}), 1},
        {"U+DFFF ED BF BF", Bytes({0xED, 0xBF, 0xBF}), 1},
        {"paired surrogates", Bytes({0xED, 0xA0, 0x80, 0xED, 0xB0, 0x80}), 1},
        {"surrogate after valid text", "ok" + Bytes({0xED, 0xA0, 0x80}), 3},
        // Beyond U+10FFFF.
        {"U+110000 F4 90 80 80", Bytes({0xF4, 0x90, 0x80, 0x80}), 1},
        {"F4 BF BF BF", Bytes({0xF4, 0xBF, 0xBF, 0xBF}), 1},
        {"F7 BF BF BF", Bytes({0xF7, 0xBF, 0xBF, 0xBF}), 0},
        {"5-byte F8 88 80 80 80", Bytes({0xF8, 0x88, 0x80, 0x80, 0x80}), 0},
        {"6-byte FC 84 80 80 80 80", Bytes({0xFC, 0x84, 0x80, 0x80, 0x80, 0x80}), 0},
        // Truncated sequences: impossible only at the end.
        {"truncated C2", Bytes({0xC2}), kTruncated},
        {"truncated E0 A0", Bytes({0xE0, 0xA0}), kTruncated},
        {"truncated E2 82 (euro)", "price " + Bytes({0xE2, 0x82}), kTruncated},
        {"truncated F0", Bytes({0xF0}), kTruncated},
        {"truncated F0 90 80", Bytes({0xF0, 0x90, 0x80}), kTruncated},
        {"truncated F4 8F BF", Bytes({0xF4, 0x8F, 0xBF}), kTruncated},
        {"kosme missing last byte", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE", kTruncated},
    };
    for (int b = 0xF5; b <= 0xFF; ++b) {
        v.push_back({"byte F5..FF", "x" + Bytes({b}), 1});
        v.push_back({"byte F5..FF + continuations", Bytes({b, 0x80, 0x80, 0x80}), 0});
    }
    return v;
}

TEST(Utf8Validator, AcceptsValidTable) {
    for (const auto& c : ValidCases()) {
        SCOPED_TRACE(c.name);
        EXPECT_TRUE(is_valid_utf8(c.bytes)) << Hex(c.bytes);
        Utf8Validator v;
        EXPECT_TRUE(v.write(c.bytes));
        EXPECT_TRUE(v.finish());
        EXPECT_FALSE(v.failed());
        ASSERT_TRUE(ReferenceValid(c.bytes)) << "bad test table";
    }
}

TEST(Utf8Validator, RejectsInvalidTable) {
    for (const auto& c : InvalidCases()) {
        SCOPED_TRACE(std::string(c.name) + ": " + Hex(c.bytes));
        ASSERT_FALSE(ReferenceValid(c.bytes)) << "bad test table";
        EXPECT_FALSE(is_valid_utf8(c.bytes));
        Utf8Validator v;
        bool wrote = v.write(c.bytes);
        EXPECT_FALSE(v.finish());
        if (c.fail_at == kTruncated) {
            EXPECT_TRUE(wrote) << "a merely truncated sequence is not yet impossible";
            EXPECT_FALSE(v.failed());
        } else {
            EXPECT_FALSE(wrote);
            EXPECT_TRUE(v.failed());
        }
    }
}

TEST(Utf8Validator, FailsFastAtFirstImpossibleByte) {
    for (const auto& c : InvalidCases()) {
        SCOPED_TRACE(std::string(c.name) + ": " + Hex(c.bytes));
        ASSERT_EQ(ReferenceFailIndex(c.bytes), c.fail_at) << "bad test table";
        EXPECT_EQ(FailIndexBytewise(c.bytes), c.fail_at);
        if (c.fail_at != kTruncated) {
            // Everything before the bad byte is still acceptable as a prefix.
            Utf8Validator v;
            EXPECT_TRUE(v.write(std::string_view(c.bytes).substr(0, c.fail_at)));
            EXPECT_FALSE(v.write(std::string_view(c.bytes).substr(c.fail_at, 1)));
        }
    }
}

TEST(Utf8Validator, ValidSequencesSplitAtEveryPositionStayValid) {
    std::vector<std::string> inputs;
    for (const auto& c : ValidCases()) {
        inputs.push_back(c.bytes);
    }
    for (uint32_t cp : {0x80u, 0x7FFu, 0x800u, 0xD7FFu, 0xE000u, 0xFFFFu, 0x10000u, 0x10FFFFu}) {
        inputs.push_back("a" + Encode(cp) + "b");
    }
    for (const auto& s : inputs) {
        for (size_t i = 0; i <= s.size(); ++i) {
            SCOPED_TRACE(Hex(s) + " split at " + std::to_string(i));
            std::vector<uint8_t> a(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(i));
            std::vector<uint8_t> b(s.begin() + static_cast<std::ptrdiff_t>(i), s.end());
            Utf8Validator v;
            EXPECT_TRUE(v.write(a.data(), a.size()));
            EXPECT_EQ(v.finish(), ReferenceValid(std::string_view(s).substr(0, i)))
                << "finish() must say whether the first part alone is complete";
            EXPECT_TRUE(v.write(b.data(), b.size()));
            EXPECT_TRUE(v.finish());
        }
        // One byte at a time.
        Utf8Validator v;
        for (char ch : s) {
            std::vector<uint8_t> one(1, static_cast<uint8_t>(ch));
            ASSERT_TRUE(v.write(one.data(), 1)) << Hex(s);
        }
        EXPECT_TRUE(v.finish()) << Hex(s);
    }
}

TEST(Utf8Validator, FinishIsFalseMidSequenceAndTrueWhenComplete) {
    std::string euro = Bytes({0xE2, 0x82, 0xAC});
    Utf8Validator v;
    EXPECT_TRUE(v.finish()) << "nothing written is complete";
    EXPECT_TRUE(v.write(euro.substr(0, 1)));
    EXPECT_FALSE(v.finish());
    EXPECT_TRUE(v.write(euro.substr(1, 1)));
    EXPECT_FALSE(v.finish());
    EXPECT_TRUE(v.write(euro.substr(2, 1)));
    EXPECT_TRUE(v.finish());
    EXPECT_FALSE(v.failed());
}

TEST(Utf8Validator, InvalidInputSplitAcrossWritesFailsAtTheBadByte) {
    // Overlong and surrogate forms detected when the second byte arrives in a
    // separate write.
    for (const auto& s : {Bytes({0xE0, 0x80, 0x80}), Bytes({0xED, 0xA0, 0x80}),
                          Bytes({0xF0, 0x80, 0x80, 0x80}), Bytes({0xF4, 0x90, 0x80, 0x80})}) {
        SCOPED_TRACE(Hex(s));
        Utf8Validator v;
        EXPECT_TRUE(v.write(s.substr(0, 1)));
        EXPECT_FALSE(v.write(s.substr(1)));
        EXPECT_TRUE(v.failed());
    }
}

TEST(Utf8Validator, StaysFailedUntilReset) {
    Utf8Validator v;
    EXPECT_FALSE(v.write(Bytes({0xFF})));
    EXPECT_TRUE(v.failed());
    EXPECT_FALSE(v.write("perfectly fine ASCII"));
    EXPECT_FALSE(v.write(std::string_view()));
    EXPECT_FALSE(v.finish());
    v.reset();
    EXPECT_FALSE(v.failed());
    EXPECT_TRUE(v.finish());
    EXPECT_TRUE(v.write("ok \xE2\x82\xAC"));
    EXPECT_TRUE(v.finish());
}

TEST(Utf8Validator, ResetForgetsAPendingSequence) {
    Utf8Validator v;
    EXPECT_TRUE(v.write(Bytes({0xE2, 0x82})));
    EXPECT_FALSE(v.finish());
    v.reset();
    EXPECT_TRUE(v.finish());
    EXPECT_TRUE(v.write("A"));  // would be invalid as the third byte of E2 82 ..
    EXPECT_TRUE(v.finish());
}

TEST(Utf8Validator, EmptyWritesChangeNothing) {
    Utf8Validator v;
    EXPECT_TRUE(v.write(nullptr, 0));
    EXPECT_TRUE(v.write(Bytes({0xF0, 0x9F})));
    EXPECT_TRUE(v.write(nullptr, 0));
    EXPECT_FALSE(v.finish());
    EXPECT_TRUE(v.write(Bytes({0x98, 0x80})));
    EXPECT_TRUE(v.finish());
}

// The ASCII fast path reads eight bytes at a time: a non-ASCII byte at any
// position of any word, in exactly-sized buffers (ASan checks the reads).
TEST(Utf8Validator, AsciiFastPathSeesEveryNonAsciiByte) {
    for (size_t len = 1; len <= 40; ++len) {
        for (size_t pos = 0; pos < len; ++pos) {
            SCOPED_TRACE("length " + std::to_string(len) + ", bad byte at " + std::to_string(pos));
            std::vector<uint8_t> buf(len, 'a');
            buf[pos] = 0x80;  // lone continuation
            Utf8Validator bad;
            EXPECT_FALSE(bad.write(buf.data(), buf.size()));

            buf[pos] = 0xC3;  // lead byte: valid only if a continuation follows
            Utf8Validator trunc;
            bool ok = trunc.write(buf.data(), buf.size());
            if (pos + 1 == len) {
                EXPECT_TRUE(ok);
                EXPECT_FALSE(trunc.finish());
            } else {
                EXPECT_FALSE(ok) << "C3 followed by 'a'";
            }
            if (pos + 1 < len) {
                buf[pos + 1] = 0xA9;  // U+00E9
                Utf8Validator good;
                EXPECT_TRUE(good.write(buf.data(), buf.size()));
                EXPECT_TRUE(good.finish());
            }
        }
    }
}

TEST(Utf8Validator, UnalignedStartsAreHandled) {
    std::string text = std::string(50, 'q') + "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5" +
                       std::string(50, 'r');
    std::vector<uint8_t> buf(text.begin(), text.end());
    for (size_t off = 0; off < 16; ++off) {
        Utf8Validator v;
        EXPECT_TRUE(v.write(buf.data() + off, buf.size() - off));
        EXPECT_TRUE(v.finish()) << off;
    }
}

TEST(Utf8Validator, EveryCodePointIsValidExceptSurrogates) {
    for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (is_valid_utf8(Encode(cp)) == surrogate) {
            ADD_FAILURE() << "code point U+" << std::hex << cp << " judged wrongly";
            break;
        }
    }
}

// Every 1- and 2-byte input: validity and the fail-fast position agree with
// the reference.
TEST(Utf8Validator, AgreesWithReferenceOnAllOneAndTwoByteInputs) {
    int failures = 0;
    for (int a = 0; a < 256 && failures < 5; ++a) {
        std::string s1 = Bytes({a});
        if (is_valid_utf8(s1) != ReferenceValid(s1) ||
            FailIndexBytewise(s1) != ReferenceFailIndex(s1)) {
            ADD_FAILURE() << Hex(s1);
            ++failures;
        }
        for (int b = 0; b < 256 && failures < 5; ++b) {
            std::string s = Bytes({a, b});
            if (is_valid_utf8(s) != ReferenceValid(s)) {
                ADD_FAILURE() << "validity of " << Hex(s);
                ++failures;
            } else if (FailIndexBytewise(s) != ReferenceFailIndex(s)) {
                ADD_FAILURE() << "fail position of " << Hex(s);
                ++failures;
            }
        }
    }
}

// Every 3-byte input with a 3-byte lead, and a sample of 4-byte inputs.
TEST(Utf8Validator, AgreesWithReferenceOnThreeAndFourByteInputs) {
    int failures = 0;
    for (int a = 0xE0; a <= 0xEF && failures < 5; ++a) {
        for (int b = 0; b < 256 && failures < 5; ++b) {
            for (int c = 0; c < 256 && failures < 5; ++c) {
                std::string s = Bytes({a, b, c});
                if (is_valid_utf8(s) != ReferenceValid(s)) {
                    ADD_FAILURE() << Hex(s);
                    ++failures;
                }
            }
        }
    }
    const int kEdges[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
    for (int a = 0xF0; a <= 0xFF && failures < 5; ++a) {
        for (int b = 0; b < 256 && failures < 5; ++b) {
            for (int c : kEdges) {
                for (int d : kEdges) {
                    std::string s = Bytes({a, b, c, d});
                    if (is_valid_utf8(s) != ReferenceValid(s) ||
                        FailIndexBytewise(s) != ReferenceFailIndex(s)) {
                        ADD_FAILURE() << Hex(s);
                        ++failures;
                    }
                }
            }
        }
    }
}

}  // namespace
}  // namespace realtime
