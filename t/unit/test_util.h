// Shared helpers for the unit tests: byte-string builders, an independent
// client-frame builder, a recording FrameSink and drivers that feed a frame
// parser in arbitrary pieces.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/ws_frame.h"

namespace realtime::test {

using ws::Opcode;
using Result = ws::FrameParser::Result;

// ---------------------------------------------------------------------------
// Byte strings

// Bytes(0x81, 0x85) without fighting char signedness.
inline std::string Bytes(std::initializer_list<int> list) {
    std::string s;
    for (int b : list) {
        s.push_back(static_cast<char>(static_cast<uint8_t>(b)));
    }
    return s;
}

// "81 85 37" — for failure messages.
inline std::string Hex(std::string_view s, size_t limit = 64) {
    static const char kDigits[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < s.size() && i < limit; ++i) {
        auto b = static_cast<uint8_t>(s[i]);
        if (i) {
            out.push_back(' ');
        }
        out.push_back(kDigits[b >> 4]);
        out.push_back(kDigits[b & 15]);
    }
    if (s.size() > limit) {
        out += " ... (" + std::to_string(s.size()) + " bytes)";
    }
    return out;
}

// n bytes counting 0, 1, 2, ... (wrapping): every byte value, invalid UTF-8.
inline std::string Counting(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>(i & 0xFF);
    }
    return s;
}

// ---------------------------------------------------------------------------
// Frame builders, written independently of the code under test so that a bug
// in the encoder cannot hide the same bug in the parser.

constexpr uint32_t kRfcMask = 0x37fa213d;  // the key used in RFC 6455 §5.7

// A frame with the given first byte (FIN, RSV, opcode), the minimal length
// encoding and, with a key, a mask.
inline std::string RawFrame(uint8_t first_byte, std::string_view payload,
                            std::optional<uint32_t> key) {
    std::string f;
    f.push_back(static_cast<char>(first_byte));
    uint8_t mask_bit = key ? 0x80 : 0x00;
    uint64_t len = payload.size();
    if (len < 126) {
        f.push_back(static_cast<char>(mask_bit | len));
    } else if (len <= 0xFFFF) {
        f.push_back(static_cast<char>(mask_bit | 126));
        f.push_back(static_cast<char>(len >> 8));
        f.push_back(static_cast<char>(len));
    } else {
        f.push_back(static_cast<char>(mask_bit | 127));
        for (int shift = 56; shift >= 0; shift -= 8) {
            f.push_back(static_cast<char>(len >> shift));
        }
    }
    uint8_t mask[4] = {0, 0, 0, 0};
    if (key) {
        mask[0] = static_cast<uint8_t>(*key >> 24);
        mask[1] = static_cast<uint8_t>(*key >> 16);
        mask[2] = static_cast<uint8_t>(*key >> 8);
        mask[3] = static_cast<uint8_t>(*key);
        f.append(reinterpret_cast<const char*>(mask), 4);
    }
    for (size_t i = 0; i < payload.size(); ++i) {
        f.push_back(static_cast<char>(static_cast<uint8_t>(payload[i]) ^ mask[i % 4]));
    }
    return f;
}

inline uint8_t FirstByte(Opcode op, bool fin) {
    return static_cast<uint8_t>((fin ? 0x80 : 0x00) | static_cast<uint8_t>(op));
}

// A masked client frame.
inline std::string ClientFrame(Opcode op, std::string_view payload, bool fin = true,
                               uint32_t key = kRfcMask) {
    return RawFrame(FirstByte(op, fin), payload, key);
}

// An unmasked frame (what a server sends; a protocol error from a client).
inline std::string UnmaskedFrame(Opcode op, std::string_view payload, bool fin = true) {
    return RawFrame(FirstByte(op, fin), payload, std::nullopt);
}

inline std::string CloseBody(uint16_t code, std::string_view reason = {}) {
    std::string s;
    s.push_back(static_cast<char>(code >> 8));
    s.push_back(static_cast<char>(code & 0xFF));
    s.append(reason);
    return s;
}

// ---------------------------------------------------------------------------
// What a parser reports

struct Event {
    enum class Kind { kMessage, kPing, kPong, kClose };
    Kind kind = Kind::kMessage;
    Opcode opcode = Opcode::kContinuation;  // messages only
    uint16_t code = 0;                      // close only
    std::string payload;                    // message / ping / pong payload, close reason

    bool operator==(const Event& o) const {
        return kind == o.kind && opcode == o.opcode && code == o.code && payload == o.payload;
    }
    bool operator!=(const Event& o) const { return !(*this == o); }
};

inline Event Text(std::string_view s) { return {Event::Kind::kMessage, Opcode::kText, 0, std::string(s)}; }
inline Event Binary(std::string_view s) { return {Event::Kind::kMessage, Opcode::kBinary, 0, std::string(s)}; }
inline Event Ping(std::string_view s) { return {Event::Kind::kPing, Opcode::kContinuation, 0, std::string(s)}; }
inline Event Pong(std::string_view s) { return {Event::Kind::kPong, Opcode::kContinuation, 0, std::string(s)}; }
inline Event Close(uint16_t code, std::string_view reason = {}) {
    return {Event::Kind::kClose, Opcode::kContinuation, code, std::string(reason)};
}

inline void PrintTo(const Event& e, std::ostream* os) {
    switch (e.kind) {
    case Event::Kind::kMessage:
        *os << (e.opcode == Opcode::kText ? "Text(" : e.opcode == Opcode::kBinary ? "Binary(" : "Message?(");
        break;
    case Event::Kind::kPing: *os << "Ping("; break;
    case Event::Kind::kPong: *os << "Pong("; break;
    case Event::Kind::kClose: *os << "Close(" << e.code << ", "; break;
    }
    *os << '[' << Hex(e.payload, 24) << "])";
}

// Records every callback. With stop_every, every callback returns false
// (asks the parser to stop) so callers can test resumption.
class RecordingSink final : public ws::FrameSink {
public:
    std::vector<Event> events;
    bool stop_every = false;

    bool on_message(Opcode op, std::string_view payload) override {
        events.push_back({Event::Kind::kMessage, op, 0, std::string(payload)});
        return !stop_every;
    }
    bool on_ping(std::string_view payload) override {
        events.push_back(Ping(payload));
        return !stop_every;
    }
    bool on_pong(std::string_view payload) override {
        events.push_back(Pong(payload));
        return !stop_every;
    }
    bool on_close(uint16_t code, std::string_view reason) override {
        events.push_back(Close(code, reason));
        return !stop_every;
    }
};

// ---------------------------------------------------------------------------
// Feeding a parser

struct ParseOptions {
    size_t max_message_size = 1 << 20;
    bool require_mask = true;
    bool stop_every = false;  // the sink asks to stop after every callback
};

// The result of feeding a whole stream.
struct Outcome {
    std::vector<Event> events;
    Result result = Result::kOk;  // of the last feed() call
    uint16_t error_code = 0;      // error().code when result is kError
    bool closed = false;          // parser.closed() at the end
    size_t consumed = 0;          // total bytes consumed (not compared on errors)
    std::string problem;          // a broken feed() contract, if any
};

inline const char* ResultName(Result r) {
    switch (r) {
    case Result::kOk: return "kOk";
    case Result::kStopped: return "kStopped";
    case Result::kError: return "kError";
    }
    return "?";
}

inline void PrintTo(const Outcome& o, std::ostream* os) {
    *os << "{result=" << ResultName(o.result) << " error_code=" << o.error_code
        << " closed=" << o.closed << " consumed=" << o.consumed << " events=[";
    for (size_t i = 0; i < o.events.size(); ++i) {
        if (i) {
            *os << ", ";
        }
        PrintTo(o.events[i], os);
    }
    *os << "]";
    if (!o.problem.empty()) {
        *os << " problem=" << o.problem;
    }
    *os << "}";
}

// Feeds stream cut at the given (ascending) positions. Every piece is copied
// into its own exactly-sized heap buffer, so ASan catches any read or write
// outside the piece. On kStopped with the sink asking to stop, the rest of
// the same piece is fed again. Feeding ends at a close or an error.
inline Outcome FeedPieces(std::string_view stream, const std::vector<size_t>& cuts,
                          const ParseOptions& opt = {}) {
    ws::FrameParser parser(opt.max_message_size, opt.require_mask);
    RecordingSink sink;
    sink.stop_every = opt.stop_every;
    Outcome out;
    size_t start = 0;
    bool done = false;
    for (size_t i = 0; i <= cuts.size() && !done; ++i) {
        size_t end = i < cuts.size() ? cuts[i] : stream.size();
        if (end <= start) {
            continue;
        }
        std::vector<uint8_t> buf(stream.begin() + static_cast<std::ptrdiff_t>(start),
                                 stream.begin() + static_cast<std::ptrdiff_t>(end));
        size_t len = buf.size();
        size_t off = 0;
        while (true) {
            size_t events_before = sink.events.size();
            size_t consumed = 12345678;
            Result r = parser.feed(buf.data() + off, len - off, sink, &consumed);
            out.result = r;
            if (consumed > len - off) {
                out.problem = "consumed more than given";
                done = true;
                break;
            }
            off += consumed;
            out.consumed += consumed;
            if (r == Result::kError) {
                out.error_code = parser.error().code;
                if (out.error_code == 0 || parser.error().reason.empty()) {
                    out.problem = "kError without a close code and reason";
                }
                done = true;
                break;
            }
            if (r == Result::kOk) {
                if (off != len) {
                    out.problem = "kOk without consuming everything";
                    done = true;
                }
                break;
            }
            // kStopped: a close frame, or the sink asked to stop.
            if (parser.closed()) {
                done = true;
                break;
            }
            if (!opt.stop_every || sink.events.size() != events_before + 1) {
                out.problem = "kStopped without a close or a sink refusal";
                done = true;
                break;
            }
            if (off == len) {
                break;
            }
        }
        start = end;
    }
    if (!done && out.result == Result::kStopped) {
        // The sink stopped the parser at the very end of the input: nothing is
        // pending, so an empty feed must simply succeed.
        uint8_t dummy = 0;
        size_t consumed = 1;
        out.result = parser.feed(&dummy, 0, sink, &consumed);
        if (consumed != 0) {
            out.problem = "empty feed consumed something";
        }
    }
    out.events = std::move(sink.events);
    out.closed = parser.closed();
    return out;
}

inline Outcome FeedWhole(std::string_view stream, const ParseOptions& opt = {}) {
    return FeedPieces(stream, {}, opt);
}

inline Outcome FeedBytewise(std::string_view stream, const ParseOptions& opt = {}) {
    std::vector<size_t> cuts;
    for (size_t i = 1; i < stream.size(); ++i) {
        cuts.push_back(i);
    }
    return FeedPieces(stream, cuts, opt);
}

inline ::testing::AssertionResult SameOutcome(const Outcome& got, const Outcome& want) {
    bool same = got.problem.empty() && got.events == want.events && got.result == want.result &&
                got.error_code == want.error_code && got.closed == want.closed &&
                (want.result == Result::kError || got.consumed == want.consumed);
    if (same) {
        return ::testing::AssertionSuccess();
    }
    std::ostringstream os;
    os << "\n   got: ";
    PrintTo(got, &os);
    os << "\n  want: ";
    PrintTo(want, &os);
    return ::testing::AssertionFailure() << os.str();
}

inline std::string CutsName(const std::vector<size_t>& cuts) {
    std::string s = "cuts at {";
    for (size_t i = 0; i < cuts.size(); ++i) {
        s += (i ? ", " : "") + std::to_string(cuts[i]);
    }
    return s + "}";
}

// Feeds stream whole, cut once at every position, one byte at a time and
// (when pairs) cut twice at every pair of positions, also with a sink that
// stops after every callback, and checks every run against want. Reports at
// most a few failures so one bug does not print thousands of lines.
inline void ExpectSameOutcomeForAllSplits(std::string_view stream, const Outcome& want,
                                          ParseOptions opt = {}, bool pairs = false) {
    int failures = 0;
    auto check = [&](const std::vector<size_t>& cuts, bool stop_every) {
        if (failures >= 3) {
            return;
        }
        ParseOptions o = opt;
        o.stop_every = stop_every;
        auto r = SameOutcome(FeedPieces(stream, cuts, o), want);
        if (!r) {
            ++failures;
            ADD_FAILURE() << CutsName(cuts) << (stop_every ? " (sink stops after every event)" : "")
                          << " of " << stream.size() << " bytes" << r.message();
        }
    };
    for (bool stop_every : {false, true}) {
        check({}, stop_every);
        for (size_t i = 1; i < stream.size(); ++i) {
            check({i}, stop_every);
        }
        std::vector<size_t> all;
        for (size_t i = 1; i < stream.size(); ++i) {
            all.push_back(i);
        }
        check(all, stop_every);
    }
    if (pairs) {
        for (size_t i = 1; i < stream.size(); ++i) {
            for (size_t j = i + 1; j < stream.size(); ++j) {
                check({i, j}, false);
            }
        }
    }
}

inline Outcome ErrorOutcome(uint16_t code, std::vector<Event> events_before = {}) {
    Outcome o;
    o.events = std::move(events_before);
    o.result = Result::kError;
    o.error_code = code;
    return o;
}

inline Outcome OkOutcome(std::vector<Event> events, size_t consumed) {
    Outcome o;
    o.events = std::move(events);
    o.result = Result::kOk;
    o.consumed = consumed;
    return o;
}

inline Outcome ClosedOutcome(std::vector<Event> events, size_t consumed) {
    Outcome o;
    o.events = std::move(events);
    o.result = Result::kStopped;
    o.closed = true;
    o.consumed = consumed;
    return o;
}

}  // namespace realtime::test
