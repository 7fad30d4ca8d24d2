// The RFC 6455 frame codec: §5.7 examples, split invariance, every framing
// rule with its close code, sink-driven stops, and the encoder.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/utf8.h"
#include "core/ws_frame.h"
#include "test_util.h"

namespace realtime::ws {
namespace {

using test::Binary;
using test::Bytes;
using test::ClientFrame;
using test::Close;
using test::CloseBody;
using test::ClosedOutcome;
using test::Counting;
using test::ErrorOutcome;
using test::Event;
using test::ExpectSameOutcomeForAllSplits;
using test::FeedBytewise;
using test::FeedPieces;
using test::FeedWhole;
using test::Hex;
using test::kRfcMask;
using test::OkOutcome;
using test::Outcome;
using test::ParseOptions;
using test::Ping;
using test::Pong;
using test::RawFrame;
using test::RecordingSink;
using test::SameOutcome;
using test::Text;
using test::UnmaskedFrame;
using Result = FrameParser::Result;

constexpr uint16_t k1002 = close_code::kProtocolError;
constexpr uint16_t k1007 = close_code::kInvalidPayload;
constexpr uint16_t k1009 = close_code::kMessageTooBig;

ParseOptions NoMask() {
    ParseOptions o;
    o.require_mask = false;
    return o;
}

ParseOptions MaxSize(size_t max) {
    ParseOptions o;
    o.max_message_size = max;
    return o;
}

// A valid message in front of every broken frame, so each error test also
// checks that what came before was delivered and that the error is found in
// the middle of a stream.
const std::string& Prefix() {
    static const std::string p = ClientFrame(Opcode::kText, "ok", true, 0x01020304);
    return p;
}

// The broken stream must fail with code however it is split, after
// delivering exactly `before`.
void ExpectError(const std::string& stream, uint16_t code, std::vector<Event> before = {},
                 ParseOptions opt = {}) {
    ExpectSameOutcomeForAllSplits(stream, ErrorOutcome(code, std::move(before)), opt);
}

// Prefix() + bad, failing with code after Text("ok").
void ExpectErrorAfterPrefix(const std::string& bad, uint16_t code, ParseOptions opt = {}) {
    ExpectError(Prefix() + bad, code, {Text("ok")}, opt);
}

// Feeds only the given bytes (e.g. a frame header without its payload) and
// expects the parser to fail already.
void ExpectErrorFromPartialInput(const std::string& partial, uint16_t code,
                                 ParseOptions opt = {}) {
    auto out = FeedWhole(partial, opt);
    EXPECT_EQ(out.result, Result::kError) << "fed " << Hex(partial);
    EXPECT_EQ(out.error_code, code) << "fed " << Hex(partial);
}

std::string Repeat(char c, size_t n) { return std::string(n, c); }

// ===========================================================================
// RFC 6455 §5.7 examples

const std::string kRfcMaskedHello =
    Bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});

TEST(WsFrameParser, TestBuilderMatchesRfcMaskedExample) {
    // The tests' own frame builder must agree with the RFC, or every other
    // test would be checking the wrong bytes.
    EXPECT_EQ(Hex(ClientFrame(Opcode::kText, "Hello")), Hex(kRfcMaskedHello));
    EXPECT_EQ(Hex(UnmaskedFrame(Opcode::kText, "Hello")),
              Hex(Bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f})));
}

TEST(WsFrameParser, ParsesRfcSingleFrameMaskedText) {
    EXPECT_TRUE(SameOutcome(FeedWhole(kRfcMaskedHello), OkOutcome({Text("Hello")}, 11)));
    ExpectSameOutcomeForAllSplits(kRfcMaskedHello, OkOutcome({Text("Hello")}, 11));
}

TEST(WsFrameParser, ParsesRfcSingleFrameUnmaskedTextWhenMaskNotRequired) {
    std::string frame = Bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
    ExpectSameOutcomeForAllSplits(frame, OkOutcome({Text("Hello")}, 7), NoMask());
}

TEST(WsFrameParser, ParsesRfcFragmentedUnmaskedText) {
    std::string stream = Bytes({0x01, 0x03, 0x48, 0x65, 0x6c,   // "Hel", FIN clear
                                0x80, 0x02, 0x6c, 0x6f});       // "lo", continuation
    EXPECT_TRUE(SameOutcome(FeedWhole(stream, NoMask()), OkOutcome({Text("Hello")}, 9)));
    ExpectSameOutcomeForAllSplits(stream, OkOutcome({Text("Hello")}, 9), NoMask());
}

TEST(WsFrameParser, ParsesRfcPingAndPong) {
    std::string unmasked_ping = Bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
    ExpectSameOutcomeForAllSplits(unmasked_ping, OkOutcome({Ping("Hello")}, 7), NoMask());

    std::string masked_ping =
        Bytes({0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    ExpectSameOutcomeForAllSplits(masked_ping, OkOutcome({Ping("Hello")}, 11));

    std::string masked_pong =
        Bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    ExpectSameOutcomeForAllSplits(masked_pong, OkOutcome({Pong("Hello")}, 11));
}

TEST(WsFrameParser, ParsesRfc256ByteBinaryWith16BitLength) {
    std::string payload = Counting(256);
    std::string unmasked = Bytes({0x82, 0x7E, 0x01, 0x00}) + payload;
    ExpectSameOutcomeForAllSplits(unmasked, OkOutcome({Binary(payload)}, 260), NoMask());

    std::string masked = ClientFrame(Opcode::kBinary, payload);
    ASSERT_EQ(Hex(masked.substr(0, 8)), Hex(Bytes({0x82, 0xFE, 0x01, 0x00, 0x37, 0xfa, 0x21, 0x3d})));
    ExpectSameOutcomeForAllSplits(masked, OkOutcome({Binary(payload)}, 264));
}

TEST(WsFrameParser, ParsesRfc64KiBBinaryWith64BitLength) {
    std::string payload = Counting(65536);
    std::string unmasked =
        Bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}) + payload;
    std::string masked = ClientFrame(Opcode::kBinary, payload, true, 0xA1B2C3D4);
    ASSERT_EQ(Hex(masked.substr(0, 14)),
              Hex(Bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 0xA1, 0xB2, 0xC3, 0xD4})));

    struct Case {
        const std::string& stream;
        ParseOptions opt;
    };
    for (const Case& c : {Case{unmasked, NoMask()}, Case{masked, ParseOptions{}}}) {
        Outcome want = OkOutcome({Binary(payload)}, c.stream.size());
        EXPECT_TRUE(SameOutcome(FeedWhole(c.stream, c.opt), want));
        EXPECT_TRUE(SameOutcome(FeedBytewise(c.stream, c.opt), want));
        size_t n = c.stream.size();
        for (size_t cut : {size_t{1}, size_t{2}, size_t{5}, size_t{9}, size_t{10}, size_t{11},
                           size_t{13}, size_t{14}, size_t{15}, size_t{4097}, n / 2, n - 1}) {
            EXPECT_TRUE(SameOutcome(FeedPieces(c.stream, {cut}, c.opt), want)) << "cut at " << cut;
        }
        EXPECT_TRUE(SameOutcome(FeedPieces(c.stream, {3, 1000, 1001, 30000, n - 7}, c.opt), want));
    }
}

// ===========================================================================
// Encoder

TEST(WsFrameEncoder, EncodesRfcServerFrames) {
    EXPECT_EQ(Hex(encode_frame(Opcode::kText, "Hello")),
              Hex(Bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f})));
    EXPECT_EQ(Hex(encode_frame(Opcode::kText, "Hel", false)),
              Hex(Bytes({0x01, 0x03, 0x48, 0x65, 0x6c})));
    EXPECT_EQ(Hex(encode_frame(Opcode::kContinuation, "lo")), Hex(Bytes({0x80, 0x02, 0x6c, 0x6f})));
    EXPECT_EQ(Hex(encode_frame(Opcode::kPing, "Hello")),
              Hex(Bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f})));
    EXPECT_EQ(Hex(encode_frame(Opcode::kPong, "Hello")),
              Hex(Bytes({0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f})));

    std::string p256 = Counting(256);
    EXPECT_EQ(encode_frame(Opcode::kBinary, p256), Bytes({0x82, 0x7E, 0x01, 0x00}) + p256);
    std::string p64k = Counting(65536);
    EXPECT_EQ(encode_frame(Opcode::kBinary, p64k),
              Bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00}) + p64k);

    uint8_t h[14];
    ASSERT_EQ(encode_header(h, Opcode::kBinary, 256), 4u);
    EXPECT_EQ(Hex(std::string(reinterpret_cast<char*>(h), 4)), Hex(Bytes({0x82, 0x7E, 0x01, 0x00})));
    ASSERT_EQ(encode_header(h, Opcode::kBinary, 65536), 10u);
    EXPECT_EQ(Hex(std::string(reinterpret_cast<char*>(h), 10)),
              Hex(Bytes({0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00})));
    ASSERT_EQ(encode_header(h, Opcode::kText, 5), 2u);
    EXPECT_EQ(Hex(std::string(reinterpret_cast<char*>(h), 2)), Hex(Bytes({0x81, 0x05})));
    ASSERT_EQ(encode_header(h, Opcode::kText, 3, false), 2u);
    EXPECT_EQ(Hex(std::string(reinterpret_cast<char*>(h), 2)), Hex(Bytes({0x01, 0x03})));
}

TEST(WsFrameEncoder, UsesMinimalLengthEncoding) {
    struct Case {
        uint64_t len;
        std::string header;  // for a FIN binary frame
    };
    const Case cases[] = {
        {0, Bytes({0x82, 0x00})},
        {1, Bytes({0x82, 0x01})},
        {125, Bytes({0x82, 0x7D})},
        {126, Bytes({0x82, 0x7E, 0x00, 0x7E})},
        {127, Bytes({0x82, 0x7E, 0x00, 0x7F})},
        {65535, Bytes({0x82, 0x7E, 0xFF, 0xFF})},
        {65536, Bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0})},
        {0x0123456789ABCDEFull, Bytes({0x82, 0x7F, 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF})},
        {(uint64_t{1} << 63) - 1, Bytes({0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})},
    };
    for (const auto& c : cases) {
        uint8_t h[14];
        size_t n = encode_header(h, Opcode::kBinary, c.len);
        ASSERT_LE(n, kMaxServerHeader);
        EXPECT_EQ(Hex(std::string(reinterpret_cast<char*>(h), n)), Hex(c.header)) << c.len;
    }
}

TEST(WsFrameEncoder, ClientHeaderCarriesMaskBitAndKey) {
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t h[14];
    ASSERT_EQ(encode_header(h, Opcode::kText, 5, true, key), 6u);
    EXPECT_EQ(Hex(std::string(reinterpret_cast<char*>(h), 6)), Hex(kRfcMaskedHello.substr(0, 6)));
    ASSERT_EQ(encode_header(h, Opcode::kBinary, 256, true, key), 8u);
    EXPECT_EQ(Hex(std::string(reinterpret_cast<char*>(h), 8)),
              Hex(Bytes({0x82, 0xFE, 0x01, 0x00, 0x37, 0xfa, 0x21, 0x3d})));
    ASSERT_EQ(encode_header(h, Opcode::kBinary, 65536, true, key), 14u);
    EXPECT_EQ(Hex(std::string(reinterpret_cast<char*>(h), 14)),
              Hex(Bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 0x37, 0xfa, 0x21, 0x3d})));
}

TEST(WsFrameEncoder, ClientFrameMatchesRfcMaskedExample) {
    EXPECT_EQ(Hex(encode_client_frame(Opcode::kText, "Hello", kRfcMask)), Hex(kRfcMaskedHello));
}

TEST(WsFrameEncoder, ClientFrameMatchesIndependentBuilder) {
    for (uint32_t key : {0u, kRfcMask, 0xFFFFFFFFu, 0x01020304u}) {
        for (size_t len : {0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 125, 126, 127, 1000, 65535, 65536,
                           70001}) {
            std::string payload = Counting(len);
            EXPECT_EQ(encode_client_frame(Opcode::kBinary, payload, key),
                      ClientFrame(Opcode::kBinary, payload, true, key))
                << "len " << len << " key " << key;
            EXPECT_EQ(encode_client_frame(Opcode::kText, payload, key, false),
                      ClientFrame(Opcode::kText, payload, false, key))
                << "len " << len << " key " << key;
        }
    }
}

TEST(WsFrameEncoder, ServerFramesRoundTripThroughParser) {
    for (size_t len : {0, 1, 125, 126, 65535, 65536}) {
        std::string payload = Counting(len);
        std::string stream = encode_frame(Opcode::kBinary, payload) +
                             encode_frame(Opcode::kText, "ab", false) +
                             encode_frame(Opcode::kPing, "p") +
                             encode_frame(Opcode::kContinuation, "cd");
        EXPECT_TRUE(SameOutcome(FeedWhole(stream, NoMask()),
                                OkOutcome({Binary(payload), Ping("p"), Text("abcd")}, stream.size())))
            << len;
    }
}

TEST(WsApplyMask, MatchesBytewiseXorAtEveryOffsetAndLength) {
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    for (size_t len = 0; len <= 40; ++len) {
        for (uint64_t offset = 0; offset < 12; ++offset) {
            std::string original = Counting(len + 3).substr(3);
            std::vector<uint8_t> buf(original.begin(), original.end());  // exact size for ASan
            apply_mask(buf.data(), buf.size(), mask, offset);
            for (size_t i = 0; i < len; ++i) {
                uint8_t want = static_cast<uint8_t>(original[i]) ^ mask[(offset + i) % 4];
                ASSERT_EQ(buf[i], want) << "len " << len << " offset " << offset << " byte " << i;
            }
            apply_mask(buf.data(), buf.size(), mask, offset);
            EXPECT_EQ(std::string(buf.begin(), buf.end()), original) << "masking twice is identity";
        }
    }
}

TEST(WsApplyMask, SplitApplicationEqualsWhole) {
    const uint8_t mask[4] = {0xA1, 0xB2, 0xC3, 0xD4};
    std::string original = Counting(37);
    std::vector<uint8_t> whole(original.begin(), original.end());
    apply_mask(whole.data(), whole.size(), mask, 0);
    for (size_t cut = 0; cut <= original.size(); ++cut) {
        std::vector<uint8_t> a(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(cut));
        std::vector<uint8_t> b(original.begin() + static_cast<std::ptrdiff_t>(cut), original.end());
        apply_mask(a.data(), a.size(), mask, 0);
        apply_mask(b.data(), b.size(), mask, cut);
        a.insert(a.end(), b.begin(), b.end());
        EXPECT_EQ(a, whole) << "cut at " << cut;
    }
}

// ===========================================================================
// Split invariance

// Several frames: a fragmented text message whose code points are split
// across fragments, with a ping and an empty pong interleaved, an empty
// continuation, 16-bit lengths, binary payloads that are not UTF-8, an empty
// message, a close, and bytes after the close that must be ignored.
struct MixedStream {
    std::string bytes;
    std::vector<Event> events;
    size_t close_end = 0;
};

MixedStream MakeMixedStream() {
    MixedStream m;
    std::string binary = Counting(200);
    m.bytes += Bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    // "κόσμε 😀" = CE BA | E1 BD B9 | CF 83 | CE BC | CE B5 | 20 | F0 9F 98 80
    m.bytes += ClientFrame(Opcode::kText, "\xCE\xBA\xE1\xBD", false, 0x11223344);
    m.bytes += ClientFrame(Opcode::kPing, "ping!", true, 0x55667788);
    m.bytes += ClientFrame(Opcode::kContinuation, "\xB9\xCF\x83\xCE", false, 0x99AABBCC);
    m.bytes += ClientFrame(Opcode::kPong, "", true, 0xDDEEFF00);
    m.bytes += ClientFrame(Opcode::kContinuation, "", false, 0x0F0F0F0F);
    m.bytes += ClientFrame(Opcode::kContinuation, "\xBC\xCE\xB5 \xF0\x9F", false, 0);
    m.bytes += ClientFrame(Opcode::kContinuation, "\x98\x80", true, 0xF0F0F0F0);
    m.bytes += ClientFrame(Opcode::kBinary, binary, true, 0x12345678);
    m.bytes += ClientFrame(Opcode::kText, "", true, 0x87654321);
    m.bytes += ClientFrame(Opcode::kBinary, Bytes({0xFF, 0xFE}), false, 0x13579BDF);
    m.bytes += ClientFrame(Opcode::kContinuation, Bytes({0x00}), true, 0x2468ACE0);
    m.bytes += ClientFrame(Opcode::kClose, CloseBody(1000, "bye"), true, 0x0BADF00D);
    m.close_end = m.bytes.size();
    m.bytes += ClientFrame(Opcode::kText, "after close", true, 0x01010101);
    m.events = {Text("Hello"),
                Ping("ping!"),
                Pong(""),
                Text("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5 \xF0\x9F\x98\x80"),
                Binary(binary),
                Text(""),
                Binary(Bytes({0xFF, 0xFE, 0x00})),
                Close(1000, "bye")};
    return m;
}

TEST(WsFrameParser, MixedStreamParsesAsExpected) {
    MixedStream m = MakeMixedStream();
    EXPECT_TRUE(SameOutcome(FeedWhole(m.bytes), ClosedOutcome(m.events, m.close_end)));
}

TEST(WsFrameParser, SameResultForEverySplitOfAMixedStream) {
    MixedStream m = MakeMixedStream();
    ExpectSameOutcomeForAllSplits(m.bytes, ClosedOutcome(m.events, m.close_end), {}, /*pairs=*/true);
}

TEST(WsFrameParser, SameResultForEverySplitWithoutClose) {
    MixedStream m = MakeMixedStream();
    std::string open = m.bytes.substr(0, m.close_end);
    // Drop the close frame: the stream then ends cleanly with kOk.
    size_t close_len = ClientFrame(Opcode::kClose, CloseBody(1000, "bye")).size();
    open.resize(open.size() - close_len);
    std::vector<Event> events(m.events.begin(), m.events.end() - 1);
    ExpectSameOutcomeForAllSplits(open, OkOutcome(events, open.size()));
}

TEST(WsFrameParser, SameErrorForEverySplit) {
    // Valid traffic, then a fragmented text message with a ping interleaved
    // whose second fragment holds a surrogate (invalid UTF-8).
    std::string stream = ClientFrame(Opcode::kText, "caf\xC3\xA9") +
                         ClientFrame(Opcode::kBinary, Bytes({0xC0, 0x80}), true, 0x0A0B0C0D) +
                         ClientFrame(Opcode::kText, "abc\xED", false, 0x11111111) +
                         ClientFrame(Opcode::kPing, "", true, 0x22222222) +
                         ClientFrame(Opcode::kContinuation, "\xA0\x80xyz", true, 0x33333333) +
                         ClientFrame(Opcode::kText, "never", true, 0x44444444);
    Outcome want = ErrorOutcome(k1007, {Text("caf\xC3\xA9"), Binary(Bytes({0xC0, 0x80})), Ping("")});
    ExpectSameOutcomeForAllSplits(stream, want, {}, /*pairs=*/true);

    // And a framing error after the same kind of traffic.
    std::string framing = ClientFrame(Opcode::kText, "Hel", false) + ClientFrame(Opcode::kPong, "x") +
                          ClientFrame(Opcode::kContinuation, "lo") +
                          ClientFrame(Opcode::kContinuation, "!");
    ExpectSameOutcomeForAllSplits(framing, ErrorOutcome(k1002, {Pong("x"), Text("Hello")}), {},
                                  /*pairs=*/true);
}

TEST(WsFrameParser, EmptyFirstFragmentThenWholePayloadInContinuation) {
    // The continuation then carries the whole message (the zero-copy path
    // may apply); the empty start must not be lost or duplicated.
    std::string stream = ClientFrame(Opcode::kText, "", false) + ClientFrame(Opcode::kPing, "p") +
                         ClientFrame(Opcode::kContinuation, "", false) +
                         ClientFrame(Opcode::kContinuation, "w\xC3\xBChole") +
                         ClientFrame(Opcode::kBinary, "", false) + ClientFrame(Opcode::kContinuation, "bin");
    ExpectSameOutcomeForAllSplits(stream, OkOutcome({Ping("p"), Text("w\xC3\xBChole"), Binary("bin")},
                                                    stream.size()),
                                  {}, /*pairs=*/true);
}

TEST(WsFrameParser, ControlPayloadsDoNotDisturbTextValidation) {
    // Non-UTF-8 ping/pong payloads between the halves of a code point.
    std::string stream = ClientFrame(Opcode::kText, "a\xE2\x82", false) +
                         ClientFrame(Opcode::kPing, Bytes({0xFF, 0xC0, 0x80})) +
                         ClientFrame(Opcode::kPong, Bytes({0x41})) +
                         ClientFrame(Opcode::kContinuation, "\xAC!");
    ExpectSameOutcomeForAllSplits(
        stream, OkOutcome({Ping(Bytes({0xFF, 0xC0, 0x80})), Pong("A"), Text("a\xE2\x82\xAC!")}, stream.size()));
}

TEST(WsFrameParser, RoundTripsManyLengthsAndKeys) {
    for (size_t len = 0; len <= 140; ++len) {
        for (uint32_t key : {0u, kRfcMask, 0xFFFFFFFFu}) {
            std::string payload = Counting(len);
            std::string stream = ClientFrame(Opcode::kBinary, payload, true, key);
            Outcome want = OkOutcome({Binary(payload)}, stream.size());
            ASSERT_TRUE(SameOutcome(FeedWhole(stream), want)) << len;
            for (size_t cut : {size_t{1}, size_t{2}, stream.size() / 2, stream.size() - 1}) {
                if (cut > 0 && cut < stream.size()) {
                    ASSERT_TRUE(SameOutcome(FeedPieces(stream, {cut}), want)) << len << " cut " << cut;
                }
            }
        }
    }
}

TEST(WsFrameParser, ParsesLengthEncodingBoundaries) {
    for (size_t len : {0, 1, 125, 126, 127, 65535, 65536, 65537}) {
        std::string payload = Counting(len);
        std::string stream = ClientFrame(Opcode::kBinary, payload) + ClientFrame(Opcode::kText, "end");
        Outcome want = OkOutcome({Binary(payload), Text("end")}, stream.size());
        size_t header = len < 126 ? 6 : len <= 0xFFFF ? 8 : 14;
        EXPECT_TRUE(SameOutcome(FeedWhole(stream), want)) << len;
        for (size_t cut : {size_t{1}, size_t{2}, header - 1, header, header + 1, header + len,
                           stream.size() - 1}) {
            if (cut > 0 && cut < stream.size()) {
                EXPECT_TRUE(SameOutcome(FeedPieces(stream, {cut}), want)) << len << " cut " << cut;
            }
        }
    }
}

TEST(WsFrameParser, AcceptsMaskedFramesWhenMaskNotRequired) {
    std::string stream = kRfcMaskedHello + UnmaskedFrame(Opcode::kBinary, "raw");
    ExpectSameOutcomeForAllSplits(stream, OkOutcome({Text("Hello"), Binary("raw")}, stream.size()),
                                  NoMask());
}

TEST(WsFrameParser, EmptyFeedDoesNothing) {
    FrameParser parser(1024);
    RecordingSink sink;
    uint8_t dummy = 0;
    size_t consumed = 99;
    EXPECT_EQ(parser.feed(&dummy, 0, sink, &consumed), Result::kOk);
    EXPECT_EQ(consumed, 0u);
    EXPECT_TRUE(sink.events.empty());
    EXPECT_FALSE(parser.mid_message());
}

// ===========================================================================
// Protocol violations

TEST(WsFrameParser, RejectsUnmaskedClientFrame) {
    for (Opcode op : {Opcode::kText, Opcode::kBinary, Opcode::kPing, Opcode::kPong, Opcode::kClose}) {
        SCOPED_TRACE(static_cast<int>(op));
        std::string frame = UnmaskedFrame(op, op == Opcode::kClose ? CloseBody(1000) : "Hello");
        ExpectError(frame, k1002);
        ExpectErrorAfterPrefix(frame, k1002);
    }
    // An unmasked continuation of a masked start.
    ExpectError(ClientFrame(Opcode::kText, "Hel", false) + UnmaskedFrame(Opcode::kContinuation, "lo"),
                k1002);
    // The same unmasked frames are fine when masking is not required.
    ExpectSameOutcomeForAllSplits(UnmaskedFrame(Opcode::kText, "Hello"), OkOutcome({Text("Hello")}, 7),
                                  NoMask());
}

TEST(WsFrameParser, RejectsReservedBits) {
    for (uint8_t rsv : {0x40, 0x20, 0x10, 0x70}) {
        for (Opcode op : {Opcode::kText, Opcode::kBinary, Opcode::kPing, Opcode::kClose}) {
            SCOPED_TRACE("rsv " + std::to_string(rsv) + " opcode " + std::to_string(static_cast<int>(op)));
            uint8_t first = static_cast<uint8_t>(0x80 | rsv | static_cast<uint8_t>(op));
            std::string payload = op == Opcode::kClose ? CloseBody(1000) : "x";
            ExpectErrorAfterPrefix(RawFrame(first, payload, kRfcMask), k1002);
        }
        // On a continuation frame too.
        std::string cont = RawFrame(static_cast<uint8_t>(0x80 | rsv), "lo", kRfcMask);
        ExpectError(ClientFrame(Opcode::kText, "Hel", false) + cont, k1002);
    }
}

TEST(WsFrameParser, RejectsReservedOpcodes) {
    for (int op : {0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
        SCOPED_TRACE("opcode " + std::to_string(op));
        ExpectErrorAfterPrefix(RawFrame(static_cast<uint8_t>(0x80 | op), "data", kRfcMask), k1002);
        ExpectErrorAfterPrefix(RawFrame(static_cast<uint8_t>(0x80 | op), "", kRfcMask), k1002);
        ExpectErrorAfterPrefix(RawFrame(static_cast<uint8_t>(op), "x", kRfcMask), k1002);
        // Detected from the first two bytes plus mask: no payload needed.
        ExpectErrorFromPartialInput(RawFrame(static_cast<uint8_t>(0x80 | op), "data", kRfcMask).substr(0, 6),
                                    k1002);
    }
}

TEST(WsFrameParser, RejectsControlFrameOver125Bytes) {
    for (Opcode op : {Opcode::kPing, Opcode::kPong, Opcode::kClose}) {
        SCOPED_TRACE(static_cast<int>(op));
        std::string payload = op == Opcode::kClose ? CloseBody(1000, Repeat('r', 124)) : Repeat('p', 126);
        ASSERT_EQ(payload.size(), 126u);
        std::string frame = ClientFrame(op, payload);
        ExpectErrorAfterPrefix(frame, k1002);
        ExpectErrorFromPartialInput(frame.substr(0, 8), k1002);  // header only
    }
    // 64-bit length on a control frame.
    std::string big_ping = Bytes({0x89, 0xFF, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x37, 0xfa, 0x21, 0x3d});
    ExpectErrorFromPartialInput(big_ping, k1002);
}

TEST(WsFrameParser, AcceptsControlFrameOf125Bytes) {
    std::string p125 = Repeat('p', 125);
    std::string reason = Repeat('r', 123);
    std::string stream = ClientFrame(Opcode::kPing, p125) + ClientFrame(Opcode::kPong, p125) +
                         ClientFrame(Opcode::kClose, CloseBody(1001, reason));
    ExpectSameOutcomeForAllSplits(stream, ClosedOutcome({Ping(p125), Pong(p125), Close(1001, reason)},
                                                        stream.size()));
}

TEST(WsFrameParser, RejectsFragmentedControlFrame) {
    for (Opcode op : {Opcode::kPing, Opcode::kPong, Opcode::kClose}) {
        SCOPED_TRACE(static_cast<int>(op));
        std::string frame = ClientFrame(op, op == Opcode::kClose ? CloseBody(1000) : "x", false);
        ExpectErrorAfterPrefix(frame, k1002);
        // Inside a fragmented data message as well.
        ExpectError(ClientFrame(Opcode::kText, "Hel", false) + frame +
                        ClientFrame(Opcode::kContinuation, "lo"),
                    k1002);
    }
}

TEST(WsFrameParser, RejectsContinuationWithoutStart) {
    ExpectError(ClientFrame(Opcode::kContinuation, "lo"), k1002);
    ExpectError(ClientFrame(Opcode::kContinuation, "lo", false), k1002);
    ExpectError(ClientFrame(Opcode::kContinuation, ""), k1002);
    // After a complete message the next continuation has nothing to continue.
    ExpectErrorAfterPrefix(ClientFrame(Opcode::kContinuation, "more"), k1002);
    ExpectError(ClientFrame(Opcode::kText, "Hel", false) + ClientFrame(Opcode::kContinuation, "lo") +
                    ClientFrame(Opcode::kContinuation, "!"),
                k1002, {Text("Hello")});
}

TEST(WsFrameParser, RejectsNewMessageInsideFragmentedMessage) {
    struct Case {
        Opcode first, second;
    };
    for (auto c : {Case{Opcode::kText, Opcode::kText}, Case{Opcode::kText, Opcode::kBinary},
                   Case{Opcode::kBinary, Opcode::kText}, Case{Opcode::kBinary, Opcode::kBinary}}) {
        for (bool second_fin : {true, false}) {
            ExpectErrorAfterPrefix(ClientFrame(c.first, "a", false) + ClientFrame(c.second, "b", second_fin),
                                   k1002);
        }
    }
    // Also after continuations and an interleaved ping.
    ExpectError(ClientFrame(Opcode::kText, "a", false) + ClientFrame(Opcode::kContinuation, "b", false) +
                    ClientFrame(Opcode::kPing, "p") + ClientFrame(Opcode::kBinary, "c"),
                k1002, {Ping("p")});
}

TEST(WsFrameParser, Rejects64BitLengthWithHighBitSet) {
    ParseOptions unlimited = MaxSize(std::numeric_limits<size_t>::max());
    for (uint8_t first : {0x82, 0x81, 0x02}) {
        std::string header = Bytes({first, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0x05, 0x37, 0xfa, 0x21, 0x3d});
        ExpectErrorAfterPrefix(header + "Hello", k1002, unlimited);
        ExpectErrorFromPartialInput(header, k1002, unlimited);
        std::string all_ones = Bytes({first, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                      0x37, 0xfa, 0x21, 0x3d});
        ExpectErrorFromPartialInput(all_ones, k1002, unlimited);
    }
}

TEST(WsFrameParser, RejectsSingleFrameOverMaxMessageSize) {
    ParseOptions max100 = MaxSize(100);
    for (Opcode op : {Opcode::kText, Opcode::kBinary}) {
        SCOPED_TRACE(static_cast<int>(op));
        ExpectErrorAfterPrefix(ClientFrame(op, Repeat('a', 101)), k1009, max100);
        // 64-bit length (too long to try every split).
        std::string big = Prefix() + ClientFrame(op, Repeat('a', 70000));
        EXPECT_TRUE(SameOutcome(FeedWhole(big, max100), ErrorOutcome(k1009, {Text("ok")})));
        EXPECT_TRUE(SameOutcome(FeedPieces(big, {Prefix().size() + 3, Prefix().size() + 12}, max100),
                                ErrorOutcome(k1009, {Text("ok")})));
        // Refused from the header alone, before any payload is buffered.
        ExpectErrorFromPartialInput(ClientFrame(op, Repeat('a', 101)).substr(0, 6), k1009, max100);
        ExpectErrorFromPartialInput(ClientFrame(op, Repeat('a', 70000)).substr(0, 14), k1009, max100);
    }
    // A declared length of 2^40 (high bit clear) is too big, not a protocol error.
    std::string huge = Bytes({0x82, 0xFF, 0, 0, 0x01, 0, 0, 0, 0, 0, 0x37, 0xfa, 0x21, 0x3d});
    ExpectErrorFromPartialInput(huge, k1009, MaxSize(1 << 20));
}

TEST(WsFrameParser, AcceptsMessageExactlyAtMaxMessageSize) {
    std::string p100 = Counting(100);
    std::string t100 = Repeat('t', 100);
    std::string stream = ClientFrame(Opcode::kBinary, p100) + ClientFrame(Opcode::kText, t100) +
                         ClientFrame(Opcode::kText, Repeat('x', 40), false) +
                         ClientFrame(Opcode::kContinuation, "", false) +
                         ClientFrame(Opcode::kContinuation, Repeat('y', 60));
    ExpectSameOutcomeForAllSplits(
        stream, OkOutcome({Binary(p100), Text(t100), Text(Repeat('x', 40) + Repeat('y', 60))}, stream.size()),
        MaxSize(100));
    // With a limit of 0 only empty messages pass.
    ExpectSameOutcomeForAllSplits(ClientFrame(Opcode::kText, ""), OkOutcome({Text("")}, 6), MaxSize(0));
    ExpectError(ClientFrame(Opcode::kText, "a"), k1009, {}, MaxSize(0));
}

TEST(WsFrameParser, RejectsFragmentedMessageOverMaxMessageSize) {
    ParseOptions max100 = MaxSize(100);
    for (Opcode op : {Opcode::kText, Opcode::kBinary}) {
        SCOPED_TRACE(static_cast<int>(op));
        std::string stream = ClientFrame(op, Repeat('a', 40), false) + ClientFrame(Opcode::kPing, "p") +
                             ClientFrame(Opcode::kContinuation, Repeat('b', 40), false) +
                             ClientFrame(Opcode::kContinuation, Repeat('c', 21), true);
        ExpectError(stream, k1009, {Ping("p")}, max100);
        // Same when the fragment that crosses the limit is not the last one.
        std::string early = ClientFrame(op, Repeat('a', 60), false) +
                            ClientFrame(Opcode::kContinuation, Repeat('b', 41), false) +
                            ClientFrame(Opcode::kContinuation, "c");
        ExpectError(early, k1009, {}, max100);
    }
}

TEST(WsFrameParser, ControlFramesDoNotCountTowardsMessageSize) {
    std::string ping = Repeat('p', 100);
    std::string stream = ClientFrame(Opcode::kText, "12345", false) + ClientFrame(Opcode::kPing, ping) +
                         ClientFrame(Opcode::kContinuation, "67890") + ClientFrame(Opcode::kPong, ping);
    ExpectSameOutcomeForAllSplits(stream, OkOutcome({Ping(ping), Text("1234567890"), Pong(ping)}, stream.size()),
                                  MaxSize(10));
}

TEST(WsFrameParser, MessageSizeLimitIsPerMessage) {
    std::string stream = ClientFrame(Opcode::kBinary, Repeat('a', 10)) +
                         ClientFrame(Opcode::kText, Repeat('b', 6), false) +
                         ClientFrame(Opcode::kContinuation, Repeat('c', 4)) +
                         ClientFrame(Opcode::kText, Repeat('d', 10));
    ExpectSameOutcomeForAllSplits(
        stream,
        OkOutcome({Binary(Repeat('a', 10)), Text(Repeat('b', 6) + Repeat('c', 4)), Text(Repeat('d', 10))},
                  stream.size()),
        MaxSize(10));
}

TEST(WsFrameParser, RejectsInvalidUtf8InTextMessage) {
    for (const std::string& bad :
         {Bytes({0xFF}), Bytes({0x80}), Bytes({0xC0, 0x80}), Bytes({0xED, 0xA0, 0x80}),
          Bytes({0xF4, 0x90, 0x80, 0x80}), "Hello" + Bytes({0xC2, 0x41}) + "World"}) {
        SCOPED_TRACE(Hex(bad));
        ExpectErrorAfterPrefix(ClientFrame(Opcode::kText, bad), k1007);
        // In a continuation frame, whether or not it is the last one.
        ExpectError(ClientFrame(Opcode::kText, "ok ", false) + ClientFrame(Opcode::kContinuation, bad),
                    k1007);
        ExpectError(ClientFrame(Opcode::kText, "ok ", false) +
                        ClientFrame(Opcode::kContinuation, bad, false) +
                        ClientFrame(Opcode::kContinuation, "end"),
                    k1007);
    }
}

TEST(WsFrameParser, FailsFastOnInvalidUtf8MidFrame) {
    // Only the header and the first payload bytes up to the bad one arrive:
    // the parser must not wait for the rest of the frame.
    std::string frame = ClientFrame(Opcode::kText, "abc\xFF" + Repeat('a', 1000));
    ExpectErrorFromPartialInput(frame.substr(0, 8 + 4), k1007);
    std::string bad_surrogate = ClientFrame(Opcode::kText, "abc\xED\xA0" + Repeat('a', 50));
    ExpectErrorFromPartialInput(bad_surrogate.substr(0, 6 + 5), k1007);
    // And without waiting for the final fragment.
    std::string first = ClientFrame(Opcode::kText, "abc\xC0\xAF", false);
    ExpectErrorFromPartialInput(first, k1007);
}

TEST(WsFrameParser, RejectsTextEndingInsideUtf8Sequence) {
    ExpectErrorAfterPrefix(ClientFrame(Opcode::kText, "Hello" + Bytes({0xE2, 0x82})), k1007);
    ExpectErrorAfterPrefix(ClientFrame(Opcode::kText, Bytes({0xF0, 0x9F, 0x98})), k1007);
    // Truncated in the final fragment.
    ExpectError(ClientFrame(Opcode::kText, "ab", false) + ClientFrame(Opcode::kContinuation, Bytes({0xC3})),
                k1007);
    // A partial sequence ends the message when the final fragment is empty.
    ExpectError(ClientFrame(Opcode::kText, Bytes({0xE2, 0x82}), false) +
                    ClientFrame(Opcode::kContinuation, ""),
                k1007);
    // Not an error while more fragments may follow: the parser waits.
    auto out = FeedWhole(ClientFrame(Opcode::kText, Bytes({0xE2, 0x82}), false));
    EXPECT_EQ(out.result, Result::kOk);
    EXPECT_TRUE(out.events.empty());
}

TEST(WsFrameParser, RejectsInvalidUtf8SplitAcrossFragments) {
    // Each fragment is fine on its own; together they are not.
    ExpectError(ClientFrame(Opcode::kText, "x\xE2", false) + ClientFrame(Opcode::kContinuation, "Ay"),
                k1007);
    ExpectError(ClientFrame(Opcode::kText, "x\xED", false) + ClientFrame(Opcode::kPing, "") +
                    ClientFrame(Opcode::kContinuation, "\xA0\x80"),
                k1007, {Ping("")});
    ExpectError(ClientFrame(Opcode::kText, "\xF0", false) + ClientFrame(Opcode::kContinuation, "\x80\x80\x80"),
                k1007);
}

TEST(WsFrameParser, DoesNotCheckUtf8InBinaryMessages) {
    std::vector<std::string> payloads = {Bytes({0xFF}), Bytes({0xC0, 0x80}), Bytes({0xED, 0xA0, 0x80}),
                                         Bytes({0xE2, 0x82}), Counting(256)};
    std::string stream;
    std::vector<Event> events;
    for (const auto& p : payloads) {
        stream += ClientFrame(Opcode::kBinary, p);
        events.push_back(Binary(p));
    }
    stream += ClientFrame(Opcode::kBinary, Bytes({0xE2}), false) +
              ClientFrame(Opcode::kContinuation, Bytes({0x41, 0xFF}));
    events.push_back(Binary(Bytes({0xE2, 0x41, 0xFF})));
    ExpectSameOutcomeForAllSplits(stream, OkOutcome(events, stream.size()));
}

TEST(WsFrameParser, RejectsOneByteClosePayload) {
    ExpectErrorAfterPrefix(ClientFrame(Opcode::kClose, Bytes({0x03})), k1002);
}

TEST(WsFrameParser, RejectsInvalidCloseCodes) {
    for (uint16_t code : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
        SCOPED_TRACE(code);
        ExpectErrorAfterPrefix(ClientFrame(Opcode::kClose, CloseBody(code)), k1002);
        ExpectErrorAfterPrefix(ClientFrame(Opcode::kClose, CloseBody(code, "reason")), k1002);
    }
}

TEST(WsFrameParser, AcceptsValidCloseCodes) {
    for (uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
                          3999, 4000, 4999}) {
        SCOPED_TRACE(code);
        std::string frame = ClientFrame(Opcode::kClose, CloseBody(code));
        ExpectSameOutcomeForAllSplits(Prefix() + frame,
                                      ClosedOutcome({Text("ok"), Close(code)}, Prefix().size() + frame.size()));
        std::string with_reason = ClientFrame(Opcode::kClose, CloseBody(code, "d\xC3\xA9j\xC3\xA0 vu"));
        EXPECT_TRUE(SameOutcome(FeedWhole(with_reason),
                                ClosedOutcome({Close(code, "d\xC3\xA9j\xC3\xA0 vu")}, with_reason.size())));
    }
}

TEST(WsFrameParser, RejectsCloseReasonWithInvalidUtf8) {
    ExpectErrorAfterPrefix(ClientFrame(Opcode::kClose, CloseBody(1000, Bytes({0xFF}))), k1007);
    ExpectErrorAfterPrefix(ClientFrame(Opcode::kClose, CloseBody(1000, "bye" + Bytes({0xED, 0xA0, 0x80}))),
                           k1007);
    ExpectErrorAfterPrefix(ClientFrame(Opcode::kClose, CloseBody(1000, "truncated" + Bytes({0xE2, 0x82}))),
                           k1007);
}

TEST(WsFrameParser, EmptyCloseReportsNoStatus) {
    std::string frame = ClientFrame(Opcode::kClose, "");
    ExpectSameOutcomeForAllSplits(frame, ClosedOutcome({Close(1005, "")}, frame.size()));
    EXPECT_EQ(close_code::kNoStatus, 1005);
}

TEST(WsFrameParser, CloseInsideFragmentedMessageIsDelivered) {
    std::string stream = ClientFrame(Opcode::kText, "Hel", false) +
                         ClientFrame(Opcode::kClose, CloseBody(1001, "gone"));
    ExpectSameOutcomeForAllSplits(stream, ClosedOutcome({Close(1001, "gone")}, stream.size()));
}

TEST(WsFrameParser, StopsForGoodAfterClose) {
    std::string close = ClientFrame(Opcode::kClose, CloseBody(1000));
    std::string after = ClientFrame(Opcode::kText, "late") + ClientFrame(Opcode::kPing, "late");
    std::string stream = Prefix() + close + after;
    std::vector<uint8_t> buf(stream.begin(), stream.end());

    FrameParser parser(1024);
    RecordingSink sink;
    size_t consumed = 0;
    EXPECT_EQ(parser.feed(buf.data(), buf.size(), sink, &consumed), Result::kStopped);
    EXPECT_EQ(consumed, Prefix().size() + close.size()) << "nothing after the close is consumed";
    EXPECT_TRUE(parser.closed());
    ASSERT_EQ(sink.events.size(), 2u);
    EXPECT_EQ(sink.events[1], Close(1000));

    // Further input is refused without being looked at.
    std::vector<uint8_t> rest(buf.begin() + static_cast<std::ptrdiff_t>(consumed), buf.end());
    EXPECT_EQ(std::string(rest.begin(), rest.end()), after) << "bytes after the close were modified";
    consumed = 99;
    EXPECT_EQ(parser.feed(rest.data(), rest.size(), sink, &consumed), Result::kStopped);
    EXPECT_EQ(consumed, 0u);
    EXPECT_TRUE(parser.closed());
    EXPECT_EQ(sink.events.size(), 2u);
}

TEST(WsFrameParser, RefusesInputAfterAnError) {
    std::string bad = UnmaskedFrame(Opcode::kText, "x");
    std::vector<uint8_t> buf(bad.begin(), bad.end());
    FrameParser parser(1024);
    RecordingSink sink;
    size_t consumed = 0;
    ASSERT_EQ(parser.feed(buf.data(), buf.size(), sink, &consumed), Result::kError);
    EXPECT_EQ(parser.error().code, k1002);
    EXPECT_FALSE(parser.error().reason.empty());
    EXPECT_FALSE(parser.closed());

    std::string good = ClientFrame(Opcode::kText, "fine") + ClientFrame(Opcode::kClose, "");
    std::vector<uint8_t> more(good.begin(), good.end());
    consumed = 99;
    EXPECT_EQ(parser.feed(more.data(), more.size(), sink, &consumed), Result::kError);
    EXPECT_EQ(consumed, 0u);
    EXPECT_TRUE(sink.events.empty());
    EXPECT_EQ(parser.error().code, k1002) << "the first error is kept";
    EXPECT_EQ(std::string(more.begin(), more.end()), good) << "refused input was modified";
}

TEST(WsFrameParser, ErrorCodeSurvivesLaterFeeds) {
    FrameParser parser(1024);
    RecordingSink sink;
    std::string bad = ClientFrame(Opcode::kText, Bytes({0xFF}));
    std::vector<uint8_t> buf(bad.begin(), bad.end());
    ASSERT_EQ(parser.feed(buf.data(), buf.size(), sink, nullptr), Result::kError);
    EXPECT_EQ(parser.error().code, k1007);
    std::string unmasked = UnmaskedFrame(Opcode::kText, "x");
    std::vector<uint8_t> buf2(unmasked.begin(), unmasked.end());
    EXPECT_EQ(parser.feed(buf2.data(), buf2.size(), sink, nullptr), Result::kError);
    EXPECT_EQ(parser.error().code, k1007);
}

// ===========================================================================
// The sink stopping the parser

TEST(WsFrameParser, StopsWhenSinkReturnsFalseAndReportsConsumed) {
    std::vector<std::string> frames = {
        ClientFrame(Opcode::kText, "one"),           // direct (whole frame in the buffer)
        ClientFrame(Opcode::kPing, "p"),
        ClientFrame(Opcode::kBinary, "two", false),  // assembled
        ClientFrame(Opcode::kContinuation, "!"),
        ClientFrame(Opcode::kPong, ""),
        ClientFrame(Opcode::kText, ""),
    };
    std::vector<Event> want = {Text("one"), Ping("p"), Binary("two!"), Pong(""), Text("")};
    std::vector<size_t> stop_after = {frames[0].size(), frames[1].size(), frames[2].size() + frames[3].size(),
                                      frames[4].size(), frames[5].size()};
    std::string stream;
    for (const auto& f : frames) {
        stream += f;
    }
    std::vector<uint8_t> buf(stream.begin(), stream.end());

    FrameParser parser(1024);
    RecordingSink sink;
    sink.stop_every = true;
    size_t off = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        SCOPED_TRACE("event " + std::to_string(i));
        // What has not been consumed yet is untouched (still masked).
        EXPECT_EQ(std::string(buf.begin() + static_cast<std::ptrdiff_t>(off), buf.end()), stream.substr(off));
        size_t consumed = 0;
        ASSERT_EQ(parser.feed(buf.data() + off, buf.size() - off, sink, &consumed), Result::kStopped);
        EXPECT_EQ(consumed, stop_after[i]);
        EXPECT_FALSE(parser.closed());
        ASSERT_EQ(sink.events.size(), i + 1);
        EXPECT_EQ(sink.events[i], want[i]);
        off += consumed;
    }
    EXPECT_EQ(off, buf.size());
    size_t consumed = 99;
    EXPECT_EQ(parser.feed(buf.data() + off, 0, sink, &consumed), Result::kOk);
    EXPECT_EQ(consumed, 0u);
    EXPECT_FALSE(parser.mid_message());
}

TEST(WsFrameParser, ResumesAfterStopInsideFragmentedMessage) {
    std::string first = ClientFrame(Opcode::kText, "H\xC3", false);
    std::string ping = ClientFrame(Opcode::kPing, "are you there");
    std::string last = ClientFrame(Opcode::kContinuation, "\xA9llo");
    std::string stream = first + ping + last;
    std::vector<uint8_t> buf(stream.begin(), stream.end());

    FrameParser parser(1024);
    RecordingSink sink;
    sink.stop_every = true;
    size_t consumed = 0;
    ASSERT_EQ(parser.feed(buf.data(), buf.size(), sink, &consumed), Result::kStopped);
    EXPECT_EQ(consumed, first.size() + ping.size());
    EXPECT_TRUE(parser.mid_message());
    ASSERT_EQ(sink.events.size(), 1u);
    EXPECT_EQ(sink.events[0], Ping("are you there"));

    // Feed the rest later, from a different buffer.
    std::vector<uint8_t> rest(buf.begin() + static_cast<std::ptrdiff_t>(consumed), buf.end());
    size_t consumed2 = 0;
    ASSERT_EQ(parser.feed(rest.data(), rest.size(), sink, &consumed2), Result::kStopped);
    EXPECT_EQ(consumed2, rest.size());
    ASSERT_EQ(sink.events.size(), 2u);
    EXPECT_EQ(sink.events[1], Text("H\xC3\xA9llo"));
}

TEST(WsFrameParser, StopOnZeroLengthMessageReportsConsumed) {
    std::string empty = ClientFrame(Opcode::kBinary, "");
    std::string next = ClientFrame(Opcode::kText, "next");
    std::string stream = empty + next;
    std::vector<uint8_t> buf(stream.begin(), stream.end());
    FrameParser parser(1024);
    RecordingSink sink;
    sink.stop_every = true;
    size_t consumed = 0;
    ASSERT_EQ(parser.feed(buf.data(), buf.size(), sink, &consumed), Result::kStopped);
    EXPECT_EQ(consumed, empty.size());
    ASSERT_EQ(sink.events.size(), 1u);
    EXPECT_EQ(sink.events[0], Binary(""));
    ASSERT_EQ(parser.feed(buf.data() + consumed, buf.size() - consumed, sink, &consumed), Result::kStopped);
    EXPECT_EQ(consumed, next.size());
    EXPECT_EQ(sink.events.back(), Text("next"));
}

// ===========================================================================
// State queries

TEST(WsFrameParser, ReportsMidMessage) {
    FrameParser parser(1024);
    RecordingSink sink;
    EXPECT_FALSE(parser.mid_message());

    auto feed = [&](const std::string& s) {
        std::vector<uint8_t> buf(s.begin(), s.end());
        size_t consumed = 0;
        EXPECT_EQ(parser.feed(buf.data(), buf.size(), sink, &consumed), Result::kOk);
        EXPECT_EQ(consumed, buf.size());
    };
    std::string frame = ClientFrame(Opcode::kText, "Hello");
    feed(frame.substr(0, 1));
    EXPECT_TRUE(parser.mid_message()) << "half a header";
    feed(frame.substr(1, 7));
    EXPECT_TRUE(parser.mid_message()) << "half a payload";
    feed(frame.substr(8));
    EXPECT_FALSE(parser.mid_message());

    feed(ClientFrame(Opcode::kText, "a", false));
    EXPECT_TRUE(parser.mid_message()) << "fragmented message open";
    feed(ClientFrame(Opcode::kPing, ""));
    EXPECT_TRUE(parser.mid_message()) << "ping inside a fragmented message";
    feed(ClientFrame(Opcode::kContinuation, "b"));
    EXPECT_FALSE(parser.mid_message());
    EXPECT_EQ(sink.events, (std::vector<Event>{Text("Hello"), Ping(""), Text("ab")}));
}

TEST(WsFrameParser, BufferedTracksAssemblyAndShrinksAfterBigMessage) {
    FrameParser parser(1 << 20);
    RecordingSink sink;
    std::string big = Counting(100000);
    std::string stream = ClientFrame(Opcode::kBinary, big.substr(0, 60000), false);
    std::vector<uint8_t> buf(stream.begin(), stream.end());
    ASSERT_EQ(parser.feed(buf.data(), buf.size(), sink, nullptr), Result::kOk);
    EXPECT_GE(parser.buffered(), 60000u);
    std::string rest = ClientFrame(Opcode::kContinuation, big.substr(60000));
    std::vector<uint8_t> buf2(rest.begin(), rest.end());
    ASSERT_EQ(parser.feed(buf2.data(), buf2.size(), sink, nullptr), Result::kOk);
    ASSERT_EQ(sink.events.size(), 1u);
    EXPECT_EQ(sink.events[0], Binary(big));
    EXPECT_LE(parser.buffered(), 4096u) << "an idle parser keeps no big buffer";
}

// A whole unfragmented frame in one buffer is delivered without a copy.
TEST(WsFrameParser, DeliversWholeFrameFromCallersBuffer) {
    struct PointerSink final : FrameSink {
        const char* data = nullptr;
        std::string payload;
        bool on_message(Opcode, std::string_view p) override {
            data = p.data();
            payload = std::string(p);
            return true;
        }
        bool on_ping(std::string_view) override { return true; }
        bool on_pong(std::string_view) override { return true; }
        bool on_close(uint16_t, std::string_view) override { return true; }
    };
    std::string frame = ClientFrame(Opcode::kText, "zero copy please");
    std::vector<uint8_t> buf(frame.begin(), frame.end());
    FrameParser parser(1024);
    PointerSink sink;
    ASSERT_EQ(parser.feed(buf.data(), buf.size(), sink, nullptr), Result::kOk);
    EXPECT_EQ(sink.payload, "zero copy please");
    EXPECT_EQ(sink.data, reinterpret_cast<const char*>(buf.data()) + 6);
}

// ===========================================================================
// Close codes and close payloads

TEST(WsCloseCode, ValidityTable) {
    for (uint32_t c = 0; c <= 0xFFFF; ++c) {
        bool want = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
        ASSERT_EQ(is_valid_close_code(static_cast<uint16_t>(c)), want) << c;
    }
    for (uint16_t c : {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535}) {
        EXPECT_FALSE(is_valid_close_code(c)) << c;
    }
    for (uint16_t c : {1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4000, 4999}) {
        EXPECT_TRUE(is_valid_close_code(c)) << c;
    }
    // The module's own codes must be sendable.
    for (uint16_t c : {close_code::kNormal, close_code::kGoingAway, close_code::kProtocolError,
                       close_code::kUnsupportedData, close_code::kInvalidPayload,
                       close_code::kPolicyViolation, close_code::kMessageTooBig,
                       close_code::kInternalError, close_code::kPongTimeout, close_code::kIdleTimeout,
                       close_code::kSlowConsumer}) {
        EXPECT_TRUE(is_valid_close_code(c)) << c;
    }
    EXPECT_FALSE(is_valid_close_code(close_code::kNoStatus));
}

TEST(WsClosePayload, EncodesCodeInNetworkOrderThenReason) {
    EXPECT_EQ(Hex(close_payload(1000, "")), Hex(Bytes({0x03, 0xE8})));
    EXPECT_EQ(close_payload(1001, "bye"), Bytes({0x03, 0xE9}) + "bye");
    EXPECT_EQ(close_payload(4008, "slow"), Bytes({0x0F, 0xA8}) + "slow");
    EXPECT_EQ(close_payload(65535, "x"), Bytes({0xFF, 0xFF}) + "x");
}

TEST(WsClosePayload, KeepsReasonsThatFit) {
    std::string r123 = Repeat('r', 123);
    EXPECT_EQ(close_payload(1000, r123), CloseBody(1000, r123));
    std::string exact = Repeat('a', 120) + "\xE2\x82\xAC";  // 123 bytes ending in a 3-byte char
    EXPECT_EQ(close_payload(1000, exact), CloseBody(1000, exact));
}

TEST(WsClosePayload, TruncatesLongReasonsTo123Bytes) {
    EXPECT_EQ(close_payload(1000, Repeat('r', 124)), CloseBody(1000, Repeat('r', 123)));
    EXPECT_EQ(close_payload(1000, Repeat('r', 5000)), CloseBody(1000, Repeat('r', 123)));
}

TEST(WsClosePayload, NeverSplitsAUtf8Sequence) {
    const std::string chars[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
    for (const auto& ch : chars) {
        for (size_t lead = 0; lead < 8; ++lead) {
            std::string reason = Repeat('a', lead);
            while (reason.size() < 200) {
                reason += ch;
            }
            std::string p = close_payload(1011, reason);
            ASSERT_GE(p.size(), 2u);
            std::string got = p.substr(2);
            SCOPED_TRACE(Hex(ch) + " after " + std::to_string(lead) + " ASCII bytes");
            EXPECT_EQ(p.substr(0, 2), Bytes({0x03, 0xF3}));
            EXPECT_LE(p.size(), kMaxControlPayload);
            EXPECT_TRUE(is_valid_utf8(got)) << Hex(got);
            EXPECT_EQ(reason.compare(0, got.size(), got), 0) << "not a prefix";
            // As long as possible: one more code point would not fit.
            EXPECT_GT(got.size() + ch.size(), 123u) << "cut too much: " << got.size();
        }
    }
}

TEST(WsClosePayload, TruncatedPayloadParsesAsValidCloseFrame) {
    std::string reason;
    while (reason.size() < 300) {
        reason += "d\xC3\xA9j\xC3\xA0 \xE2\x82\xAC\xF0\x9F\x98\x80 ";
    }
    std::string payload = close_payload(1001, reason);
    std::string frame = ClientFrame(Opcode::kClose, payload);
    auto out = FeedWhole(frame);
    EXPECT_EQ(out.result, Result::kStopped);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].code, 1001);
    EXPECT_EQ(out.events[0].payload, payload.substr(2));
}

}  // namespace
}  // namespace realtime::ws
