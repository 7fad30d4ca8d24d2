// msgpack::decode and to_json: every type and size class (built with the
// test encoder), what Python's msgpack.packb(use_bin_type=True) writes,
// malformed inputs (truncations, 0xc1, huge counts, depth, trailing bytes)
// and a fixed-seed mutation fuzz run under ASan/UBSan.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/msgpack.h"
#include "msgpack_encode.h"
#include "test_util.h"

namespace realtime::msgpack {
namespace {

using test::Hex;
using Type = Value::Type;
namespace mp = test::mp;

// The decoded value points into its input: the input is kept for the whole
// run, so a test may decode a temporary.
Value Decode(const std::string& input, unsigned max_depth = 32) {
    static std::deque<std::string> kept;
    const std::string& data = kept.emplace_back(input);
    Value v;
    std::string error;
    EXPECT_TRUE(decode(data, &v, &error, max_depth)) << error << " in " << Hex(data);
    return v;
}

std::string Refused(const std::string& data, unsigned max_depth = 32) {
    Value v;
    std::string error;
    EXPECT_FALSE(decode(data, &v, &error, max_depth)) << Hex(data);
    EXPECT_FALSE(error.empty());
    return error;
}

std::string Json(const std::string& data) {
    Value v = Decode(data);
    std::string out, error;
    EXPECT_TRUE(to_json(v, &out, &error)) << error << " in " << Hex(data);
    return out;
}

std::string JsonRefused(const std::string& data) {
    Value v = Decode(data);
    std::string out = "unchanged", error;
    EXPECT_FALSE(to_json(v, &out, &error)) << Hex(data);
    EXPECT_EQ(out, "unchanged");
    EXPECT_FALSE(error.empty());
    return error;
}

// Samples that exercise every type; the truncation and fuzz tests mutate them.
std::vector<std::string> Samples();

// ---------------------------------------------------------------------------
// Every type and size class

TEST(MsgpackDecode, NilAndBool) {
    EXPECT_EQ(Decode(mp::Nil()).type, Type::kNil);
    Value t = Decode(mp::Bool(true)), f = Decode(mp::Bool(false));
    EXPECT_EQ(t.type, Type::kBool);
    EXPECT_TRUE(t.boolean);
    EXPECT_EQ(f.type, Type::kBool);
    EXPECT_FALSE(f.boolean);
}

void ExpectInt(const std::string& data, int64_t expected) {
    Value v = Decode(data);
    EXPECT_EQ(v.type, Type::kInt) << Hex(data);
    EXPECT_FALSE(v.is_unsigned) << Hex(data);
    EXPECT_EQ(v.integer, expected) << Hex(data);
}

TEST(MsgpackDecode, IntegersOfEveryClass) {
    ExpectInt(mp::FixInt(0), 0);
    ExpectInt(mp::FixInt(127), 127);
    ExpectInt(mp::FixInt(-1), -1);
    ExpectInt(mp::FixInt(-32), -32);
    ExpectInt(mp::U8(0), 0);
    ExpectInt(mp::U8(255), 255);
    ExpectInt(mp::U16(65535), 65535);
    ExpectInt(mp::U32(4294967295u), 4294967295LL);
    ExpectInt(mp::U64(INT64_MAX), INT64_MAX);
    ExpectInt(mp::I8(-128), -128);
    ExpectInt(mp::I8(127), 127);
    ExpectInt(mp::I16(-32768), -32768);
    ExpectInt(mp::I32(INT32_MIN), INT32_MIN);
    ExpectInt(mp::I64(INT64_MIN), INT64_MIN);
    ExpectInt(mp::I64(-1), -1);

    Value big = Decode(mp::U64(UINT64_MAX));
    EXPECT_EQ(big.type, Type::kInt);
    EXPECT_TRUE(big.is_unsigned);
    EXPECT_EQ(big.uinteger, UINT64_MAX);
    Value just_past = Decode(mp::U64(uint64_t{1} << 63));
    EXPECT_TRUE(just_past.is_unsigned);
    EXPECT_EQ(just_past.uinteger, uint64_t{1} << 63);
}

TEST(MsgpackDecode, Floats) {
    Value f = Decode(mp::F32(1.5f));
    EXPECT_EQ(f.type, Type::kFloat);
    EXPECT_EQ(f.real, 1.5);
    Value f2 = Decode(mp::F32(0.1f));
    EXPECT_EQ(f2.real, static_cast<double>(0.1f));  // widened, not rounded to 0.1
    Value d = Decode(mp::F64(-2.25e-300));
    EXPECT_EQ(d.type, Type::kFloat);
    EXPECT_EQ(d.real, -2.25e-300);
    EXPECT_TRUE(std::isnan(Decode(mp::F64(std::nan(""))).real));
    // Python: msgpack.packb(1.5, use_single_float=True) after a bin header
    EXPECT_EQ(Decode(mp::FromHex("ca3fc00000")).real, 1.5);
}

void ExpectBytes(const std::string& data, Type type, const std::string& expected) {
    Value v = Decode(data);
    EXPECT_EQ(v.type, type) << Hex(data);
    EXPECT_EQ(v.bytes, expected) << Hex(data);
    // a view into the input (kept by Decode), not a copy: it ends with it
    EXPECT_EQ(v.bytes.size(), expected.size());
}

TEST(MsgpackDecode, StrAndBinOfEveryClass) {
    std::string big(70000, 'x');
    ExpectBytes(mp::FixStr(""), Type::kStr, "");
    ExpectBytes(mp::FixStr(std::string(31, 'a')), Type::kStr, std::string(31, 'a'));
    ExpectBytes(mp::Str8(""), Type::kStr, "");
    ExpectBytes(mp::Str8(std::string(255, 'b')), Type::kStr, std::string(255, 'b'));
    ExpectBytes(mp::Str16(std::string(300, 'c')), Type::kStr, std::string(300, 'c'));
    ExpectBytes(mp::Str32(big), Type::kStr, big);
    ExpectBytes(mp::Bin8(std::string("\0\1", 2)), Type::kBin, std::string("\0\1", 2));
    ExpectBytes(mp::Bin16(std::string(300, '\xff')), Type::kBin, std::string(300, '\xff'));
    ExpectBytes(mp::Bin32(big), Type::kBin, big);
    ExpectBytes(mp::Bin8(""), Type::kBin, "");
}

TEST(MsgpackDecode, ExtOfEveryClass) {
    for (size_t n : {1, 2, 4, 8, 16}) {
        std::string data(n, 'e');
        Value v = Decode(mp::FixExt(-5, data));
        EXPECT_EQ(v.type, Type::kExt);
        EXPECT_EQ(v.ext_type, -5);
        EXPECT_EQ(v.bytes, data);
    }
    Value e8 = Decode(mp::Ext(0xc7, 1, 7, "abc"));
    EXPECT_EQ(e8.type, Type::kExt);
    EXPECT_EQ(e8.ext_type, 7);
    EXPECT_EQ(e8.bytes, "abc");
    EXPECT_EQ(Decode(mp::Ext(0xc7, 1, 1, "")).bytes, "");
    EXPECT_EQ(Decode(mp::Ext(0xc8, 2, 2, std::string(300, 'z'))).bytes.size(), 300u);
    EXPECT_EQ(Decode(mp::Ext(0xc9, 4, 127, "q")).ext_type, 127);
}

TEST(MsgpackDecode, ArraysOfEveryClass) {
    EXPECT_EQ(Decode(mp::FixArray(0)).type, Type::kArray);
    EXPECT_TRUE(Decode(mp::FixArray(0)).items.empty());
    std::string fifteen = mp::FixArray(15);
    for (int i = 0; i < 15; ++i) {
        fifteen += mp::FixInt(i);
    }
    Value a = Decode(fifteen);
    ASSERT_EQ(a.items.size(), 15u);
    EXPECT_EQ(a.items[14].integer, 14);

    std::string a16 = mp::Array16(3) + mp::Nil() + mp::Bool(true) + mp::FixStr("s");
    Value b = Decode(a16);
    ASSERT_EQ(b.items.size(), 3u);
    EXPECT_EQ(b.items[2].bytes, "s");
    EXPECT_EQ(Decode(mp::Array32(2) + mp::FixInt(1) + mp::FixInt(2)).items.size(), 2u);
    EXPECT_EQ(Decode(mp::Array16(0)).items.size(), 0u);
    EXPECT_EQ(Decode(mp::Array32(0)).items.size(), 0u);

    std::string many = mp::Array32(70000);
    for (int i = 0; i < 70000; ++i) {
        many += mp::Nil();
    }
    EXPECT_EQ(Decode(many).items.size(), 70000u);
}

TEST(MsgpackDecode, MapsOfEveryClassAndFind) {
    std::string m = mp::FixMap(2) + mp::FixStr("a") + mp::FixInt(1) + mp::FixStr("b") +
                    mp::FixMap(0);
    Value v = Decode(m);
    EXPECT_EQ(v.type, Type::kMap);
    ASSERT_EQ(v.items.size(), 4u);
    ASSERT_NE(v.find("a"), nullptr);
    EXPECT_EQ(v.find("a")->integer, 1);
    EXPECT_EQ(v.find("b")->type, Type::kMap);
    EXPECT_EQ(v.find("c"), nullptr);
    EXPECT_EQ(Decode(mp::FixArray(0)).find("a"), nullptr);  // not a map

    // a non-string key is kept (find skips it); duplicate keys: the first
    std::string odd = mp::Map16(3) + mp::FixInt(1) + mp::FixStr("a") + mp::FixStr("k") +
                      mp::FixInt(2) + mp::FixStr("k") + mp::FixInt(3);
    Value o = Decode(odd);
    EXPECT_EQ(o.find("a"), nullptr);
    EXPECT_EQ(o.find("k")->integer, 2);
    EXPECT_EQ(Decode(mp::Map32(1) + mp::FixStr("x") + mp::Nil()).find("x")->type, Type::kNil);
    EXPECT_EQ(Decode(mp::Map16(0)).items.size(), 0u);
}

// ---------------------------------------------------------------------------
// What Python writes (msgpack.packb(obj, use_bin_type=True).hex())

TEST(MsgpackPython, SizeClassesAsPythonWritesThem) {
    EXPECT_EQ(Json(mp::FromHex("d92878787878787878787878787878787878787878787878787878787878"
                               "787878787878787878787878")),
              "\"" + std::string(40, 'x') + "\"");
    EXPECT_EQ(Decode(mp::Str(std::string(300, 'y'))).bytes, std::string(300, 'y'));
    EXPECT_EQ(mp::Str(std::string(300, 'y')).substr(0, 3), mp::FromHex("da012c"));
    EXPECT_EQ(Json(mp::FromHex("dc0014000102030405060708090a0b0c0d0e0f10111213")),
              "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19]");
    EXPECT_EQ(Json(mp::FromHex("de0014a13000a13101a13202a13303a13404a13505a13606a13707a13808a1"
                               "3909a231300aa231310ba231320ca231330da231340ea231350fa2313610a2"
                               "313711a2313812a2313913")),
              "{\"0\":0,\"1\":1,\"2\":2,\"3\":3,\"4\":4,\"5\":5,\"6\":6,\"7\":7,\"8\":8,"
              "\"9\":9,\"10\":10,\"11\":11,\"12\":12,\"13\":13,\"14\":14,\"15\":15,"
              "\"16\":16,\"17\":17,\"18\":18,\"19\":19}");
}

TEST(MsgpackPython, IntegersExactlyAsJsonDumps) {
    // [0, 127, 128, 255, 256, 65535, 65536, 2**32-1, 2**32, 2**63-1, 2**63,
    //  2**64-1, -1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31-1, -2**63]
    EXPECT_EQ(Json(mp::FromHex("dc0016007fcc80ccffcd0100cdffffce00010000ceffffffffcf0000000100"
                               "000000cf7fffffffffffffffcf8000000000000000cfffffffffffffffffff"
                               "e0d0dfd080d1ff7fd18000d2ffff7fffd280000000d3ffffffff7fffffffd3"
                               "8000000000000000")),
              "[0,127,128,255,256,65535,65536,4294967295,4294967296,9223372036854775807,"
              "9223372036854775808,18446744073709551615,-1,-32,-33,-128,-129,-32768,-32769,"
              "-2147483648,-2147483649,-9223372036854775808]");
}

TEST(MsgpackPython, FloatsAsJsonDumpsWritesThem) {
    // [1.5, 2.0, 1e100, 0.1, -0.0, 1e-7]: json.dumps gives
    // 1.5 2.0 1e+100 0.1 -0.0 1e-07
    EXPECT_EQ(Json(mp::FromHex("96cb3ff8000000000000cb4000000000000000cb54b249ad2594c37dcb3fb9"
                               "99999999999acb8000000000000000cb3e7ad7f29abcaf48")),
              "[1.5,2.0,1e+100,0.1,-0.0,1e-07]");
    EXPECT_EQ(Json(mp::F64(123456789.125)), "123456789.125");
    EXPECT_EQ(Json(mp::F64(1e16)), "1e+16");
    EXPECT_EQ(Json(mp::F64(0.30000000000000004)), "0.30000000000000004");
    EXPECT_EQ(Json(mp::F32(0.1f)), "0.10000000149011612");  // the float32's exact value
    // The one documented difference: Python starts exponents at 1e16.
    EXPECT_EQ(Json(mp::F64(1e15)), "1e+15");
}

TEST(MsgpackPython, SeedEventsToJson) {
    // {"type":"send_notification","notification":{...},"__asgi_channel__":[...]}
    EXPECT_EQ(
        Json(mp::FromHex(
            "83a474797065b173656e645f6e6f74696669636174696f6eac6e6f74696669636174696f6e88a2696"
            "42aa57469746c65aa59656e69206d6573616aa76d657373616765b24d6572686162612064c3bc6e79"
            "6120227122a472656164c2aa637265617465645f6174b4323032342d30312d30315431303a30303a3"
            "0305aa573636f7265cb3ff8000000000000a5726174696fcb4000000000000000a47461677392a161"
            "c0b05f5f617367695f6368616e6e656c5f5f91af73706563696669632e616263216731")),
        "{\"type\":\"send_notification\",\"notification\":{\"id\":42,\"title\":\"Yeni "
        "mesaj\",\"message\":\"Merhaba d\xc3\xbcnya \\\"q\\\"\",\"read\":false,"
        "\"created_at\":\"2024-01-01T10:00:00Z\",\"score\":1.5,\"ratio\":2.0,"
        "\"tags\":[\"a\",null]},\"__asgi_channel__\":[\"specific.abc!g1\"]}");
}

// ---------------------------------------------------------------------------
// JSON text

TEST(MsgpackJson, EscapesAsRfc8259) {
    EXPECT_EQ(Json(mp::FixStr(std::string("a\"b\\c\n\r\t\x01\x1f\x7f/", 12))),
              "\"a\\\"b\\\\c\\n\\r\\t\\u0001\\u001f\x7f/\"");
    EXPECT_EQ(Json(mp::FixStr(std::string("\0", 1))), "\"\\u0000\"");
    EXPECT_EQ(Json(mp::FixStr("\xe2\x82\xac \xf0\x9f\x98\x80")),
              "\"\xe2\x82\xac \xf0\x9f\x98\x80\"");  // UTF-8 passed through
    EXPECT_EQ(Json(mp::FixMap(1) + mp::FixStr("k\"") + mp::FixStr("v")), "{\"k\\\"\":\"v\"}");
    EXPECT_EQ(Json(mp::FixArray(3) + mp::Nil() + mp::Bool(true) + mp::Bool(false)),
              "[null,true,false]");
    EXPECT_EQ(Json(mp::FixMap(0)), "{}");
    EXPECT_EQ(Json(mp::FixArray(0)), "[]");
}

TEST(MsgpackJson, RefusesWhatJsonCannotHold) {
    EXPECT_NE(JsonRefused(mp::Bin8("x")).find("bytes"), std::string::npos);
    JsonRefused(mp::FixArray(1) + mp::FixExt(1, "a"));
    JsonRefused(mp::F64(std::numeric_limits<double>::infinity()));
    JsonRefused(mp::F64(-std::numeric_limits<double>::infinity()));
    JsonRefused(mp::F64(std::nan("")));
    JsonRefused(mp::FixMap(1) + mp::FixInt(1) + mp::FixInt(2));  // int key
    JsonRefused(mp::FixMap(1) + mp::Nil() + mp::FixInt(2));
    // invalid UTF-8: a lone continuation, an overlong form, a surrogate, truncated
    for (const char* bad : {"\x80", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\xff"}) {
        JsonRefused(mp::FixStr(bad));
        JsonRefused(mp::FixMap(1) + mp::FixStr(bad) + mp::Nil());
        JsonRefused(mp::FixArray(2) + mp::Nil() + mp::FixStr(bad));
    }
}

// ---------------------------------------------------------------------------
// Malformed inputs

TEST(MsgpackMalformed, EveryTruncationOfEverySampleIsRefused) {
    for (const std::string& s : Samples()) {
        Decode(s);
        for (size_t n = 0; n < s.size(); ++n) {
            Refused(s.substr(0, n));
        }
    }
}

TEST(MsgpackMalformed, TrailingBytes) {
    for (const std::string& s : Samples()) {
        EXPECT_NE(Refused(s + mp::Nil()).find("trailing"), std::string::npos);
    }
    Refused(mp::FixInt(1) + mp::FixInt(2));
}

TEST(MsgpackMalformed, NeverUsedMarker) {
    Refused(std::string(1, '\xc1'));
    Refused(mp::FixArray(2) + mp::Nil() + std::string(1, '\xc1'));
    Refused(mp::FixMap(1) + std::string(1, '\xc1') + mp::Nil());
}

TEST(MsgpackMalformed, CountsLargerThanTheData) {
    // a map16 claiming 65535 pairs with 3 bytes left: refused, nothing reserved
    EXPECT_NE(Refused(mp::Map16(65535) + mp::FixStr("a") + mp::Nil()).find("count"),
              std::string::npos);
    Refused(mp::Map32(0xffffffff) + mp::Nil());
    Refused(mp::Array32(0xffffffff));
    Refused(mp::Array16(2) + mp::Nil());
    Refused(mp::Map16(2) + mp::Nil() + mp::Nil() + mp::Nil());  // 3 of 4 values
    Refused(mp::BE(0xdb, 0xffffffff, 4) + "abc");
    Refused(mp::BE(0xc6, 0xffffffff, 4) + "abc");
    Refused(mp::BE(0xc9, 0xffffffff, 4) + "\x01" + "abc");
    Refused(mp::BE(0xc7, 5, 1) + "\x01" + "abcd");
    // nested claims: each level is checked against what is left
    Refused(mp::FixArray(1) + mp::Array32(0xffffffff) + std::string(100, '\xc0'));
    // exactly as many as the bytes: fine
    EXPECT_EQ(Decode(mp::Array32(3) + mp::Nil() + mp::Nil() + mp::Nil()).items.size(), 3u);
}

std::string Nested(unsigned levels, bool maps) {
    std::string s;
    for (unsigned i = 0; i < levels; ++i) {
        s += maps ? mp::FixMap(1) + mp::FixStr("k") : mp::FixArray(1);
    }
    return s + mp::Nil();
}

TEST(MsgpackMalformed, DepthIsBounded) {
    Decode(Nested(32, false));
    Decode(Nested(32, true));
    EXPECT_NE(Refused(Nested(33, false)).find("deep"), std::string::npos);
    Refused(Nested(33, true));
    Decode(Nested(3, false), 3);
    Refused(Nested(4, false), 3);
    Decode(mp::Nil(), 0);
    Refused(mp::FixArray(0), 0);
    // much deeper than the limit: refused without recursing that deep
    Refused(std::string(1000000, '\x91') + mp::Nil());
}

TEST(MsgpackMalformed, EveryOneAndTwoByteInputIsHandled) {
    int accepted = 0;
    for (int a = 0; a < 256; ++a) {
        std::unique_ptr<char[]> one(new char[1]{static_cast<char>(a)});
        Value v;
        std::string error;
        accepted += decode(std::string_view(one.get(), 1), &v, &error);
        for (int b = 0; b < 256; ++b) {
            std::unique_ptr<char[]> two(new char[2]{static_cast<char>(a), static_cast<char>(b)});
            decode(std::string_view(two.get(), 2), &v, &error);
        }
    }
    // fixint 128+32, fixmap/array/str of 0 (3), nil, true, false
    EXPECT_EQ(accepted, 128 + 32 + 3 + 3);
}

TEST(MsgpackMalformed, EmptyInput) { Refused(""); }

// ---------------------------------------------------------------------------
// Fuzz: fixed-seed mutations of the samples. Each input is copied into a
// heap block of exactly its size, so ASan catches any read past its end;
// whatever decodes must also be convertible (or refused) by to_json, and
// its views must lie inside the input.

void CheckViews(const Value& v, const char* begin, const char* end) {
    if (v.type == Type::kStr || v.type == Type::kBin || v.type == Type::kExt) {
        ASSERT_TRUE(v.bytes.empty() || (v.bytes.data() >= begin &&
                                        v.bytes.data() + v.bytes.size() <= end));
    }
    for (const Value& item : v.items) {
        CheckViews(item, begin, end);
    }
}

std::string Mutate(std::string s, std::mt19937& rng) {
    auto pick = [&](size_t n) { return static_cast<size_t>(rng() % (n ? n : 1)); };
    static const uint8_t kInteresting[] = {0x00, 0x01, 0x7f, 0x80, 0xc1, 0xdc, 0xdd,
                                           0xde, 0xdf, 0xdb, 0xc6, 0xc9, 0xff, 0x9f};
    int steps = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < steps; ++i) {
        switch (rng() % 6) {
        case 0:
            if (!s.empty()) s[pick(s.size())] = static_cast<char>(rng());
            break;
        case 1:
            if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << (rng() % 8));
            break;
        case 2:
            if (!s.empty()) s[pick(s.size())] = static_cast<char>(kInteresting[pick(sizeof kInteresting)]);
            break;
        case 3:
            s.insert(pick(s.size() + 1), 1, static_cast<char>(kInteresting[pick(sizeof kInteresting)]));
            break;
        case 4:
            if (!s.empty()) s.erase(pick(s.size()), 1 + pick(4));
            break;
        default:
            if (!s.empty()) {
                size_t from = pick(s.size());
                s.insert(pick(s.size() + 1), s.substr(from, 1 + pick(8)));
            }
            break;
        }
    }
    return s;
}

TEST(MsgpackFuzz, RandomMutationsNeverCrash) {
    std::mt19937 rng(20240613);
    std::vector<std::string> samples = Samples();
    int decoded = 0;
    for (int i = 0; i < 200000; ++i) {
        std::string input = Mutate(samples[rng() % samples.size()], rng);
        std::unique_ptr<char[]> exact(new char[input.size() ? input.size() : 1]);
        std::memcpy(exact.get(), input.data(), input.size());
        std::string_view data(exact.get(), input.size());
        Value v;
        std::string error, json;
        if (decode(data, &v, &error, 8)) {
            ++decoded;
            CheckViews(v, exact.get(), exact.get() + input.size());
            to_json(v, &json, &error);
        } else {
            ASSERT_FALSE(error.empty());
        }
    }
    // the run means something: many mutations still decode
    EXPECT_GT(decoded, 10000);
}

std::vector<std::string> Samples() {
    return {
        mp::Nil(),
        mp::U64(UINT64_MAX),
        mp::I32(-5) + "",
        mp::F32(1.5f),
        mp::F64(0.1),
        mp::Str8(std::string(40, 's')),
        mp::Str16("x"),
        mp::Bin32("\x01\x02"),
        mp::FixExt(3, "abcd"),
        mp::Ext(0xc8, 2, 9, "ext"),
        mp::Array16(2) + mp::Bool(true) + mp::I16(-300),
        mp::Map32(1) + mp::FixStr("k") + mp::FixArray(2) + mp::Nil() + mp::I8(-7),
        Nested(6, true),
        // Python: the seeds' events
        mp::FromHex("83a474797065b46e6f74696669636174696f6e5f6d657373616765a46461746182a2696407a"
                    "474657874a26869ae5f5f617367695f67726f75705f5fb4757365725f315f6e6f7469666963"
                    "6174696f6e73"),
        mp::FromHex("83a474797065ad7469636b65745f757064617465a6616374696f6ea763726561746564a4646"
                    "1746183a2696403a6737461747573a46f70656ea87072696f72697479ff"),
        mp::FromHex("82a474797065ae776562736f636b65742e73656e64a56279746573c4030001ff"),
    };
}

}  // namespace
}  // namespace realtime::msgpack
