// RFC 6455 frame codec: an incremental, I/O-free parser for client frames and
// an encoder for server frames.
//
// The parser is fed whatever bytes a read returned, however they are split,
// and reports complete data messages and control frames to a FrameSink. It
// enforces every framing rule of RFC 6455 §5 and answers a violation with the
// close code the RFC prescribes (1002, 1007, 1009). It unmasks payloads in
// place, so the caller's buffer must be writable; a whole unfragmented frame
// that sits in one buffer is handed to the sink without any copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "utf8.h"

namespace realtime::ws {

enum class Opcode : uint8_t {
    kContinuation = 0x0,
    kText = 0x1,
    kBinary = 0x2,
    kClose = 0x8,
    kPing = 0x9,
    kPong = 0xA,
};

// Close codes (RFC 6455 §7.4.1) and the module's own (4000-4999, private use).
namespace close_code {
constexpr uint16_t kNormal = 1000;
constexpr uint16_t kGoingAway = 1001;
constexpr uint16_t kProtocolError = 1002;
constexpr uint16_t kUnsupportedData = 1003;
constexpr uint16_t kNoStatus = 1005;  // never on the wire: "close had no code"
constexpr uint16_t kInvalidPayload = 1007;
constexpr uint16_t kPolicyViolation = 1008;
constexpr uint16_t kMessageTooBig = 1009;
constexpr uint16_t kInternalError = 1011;
constexpr uint16_t kServiceRestart = 1012;  // reload: come back (to the new workers)
constexpr uint16_t kPongTimeout = 4000;  // no pong or other traffic in time
constexpr uint16_t kIdleTimeout = 4001;  // no data message in realtime_idle_timeout
constexpr uint16_t kTokenExpired = 4003; // the connection's token expired
constexpr uint16_t kSlowConsumer = 4008; // send buffer limit exceeded
}  // namespace close_code

// Whether a peer may put this code in a close frame: 1000-1003, 1007-1014
// (the IANA registry) and 3000-4999. 1004-1006 and 1015 are reserved for
// local use and everything else is unassigned.
bool is_valid_close_code(uint16_t code) noexcept;

constexpr size_t kMaxControlPayload = 125;
constexpr size_t kMaxServerHeader = 10;  // 2 + 8-byte length, never masked

// Why the parser stopped: the close code to send and a short static reason.
struct ParseError {
    uint16_t code = 0;
    std::string_view reason;
};

// Receives what the parser decodes. Views are valid only during the call.
// Returning false stops the parser (feed() returns kStopped).
class FrameSink {
public:
    virtual bool on_message(Opcode op, std::string_view payload) = 0;
    virtual bool on_ping(std::string_view payload) = 0;
    virtual bool on_pong(std::string_view payload) = 0;
    // code is kNoStatus when the close frame carried no payload.
    virtual bool on_close(uint16_t code, std::string_view reason) = 0;

protected:
    ~FrameSink() = default;
};

class FrameParser {
public:
    enum class Result { kOk, kStopped, kError };

    explicit FrameParser(size_t max_message_size, bool require_mask = true) noexcept
        : max_message_size_(max_message_size), require_mask_(require_mask) {}

    // Consumes data[0..len). On kStopped, *consumed tells how far it got;
    // the rest may be fed again later. On kError see error(); the parser
    // refuses further input. After a close frame the parser stops for good.
    Result feed(uint8_t* data, size_t len, FrameSink& sink, size_t* consumed);

    const ParseError& error() const noexcept { return error_; }
    bool closed() const noexcept { return state_ == State::kClosed; }

    // True while a fragmented message is being assembled or a frame is
    // half-read: the peer is mid-message.
    bool mid_message() const noexcept {
        return in_message_ || state_ != State::kHeader || header_len_ != 0;
    }

    // Bytes held for a message being assembled (for memory accounting).
    size_t buffered() const noexcept { return message_.capacity(); }

private:
    enum class State : uint8_t { kHeader, kPayload, kClosed, kFailed };

    Result fail(uint16_t code, std::string_view reason) noexcept;
    bool header_complete() noexcept;
    Result start_frame();
    Result take_payload(uint8_t* p, size_t n, FrameSink& sink);
    Result finish_frame(FrameSink& sink);
    Result dispatch_control(std::string_view payload, FrameSink& sink);

    size_t max_message_size_;
    bool require_mask_;
    State state_ = State::kHeader;

    // Current frame.
    uint8_t header_[14];
    uint8_t header_len_ = 0;
    bool fin_ = false;
    Opcode opcode_ = Opcode::kContinuation;
    uint8_t mask_[4] = {0, 0, 0, 0};
    uint64_t frame_len_ = 0;
    uint64_t remaining_ = 0;
    bool direct_ = false;  // whole frame in the caller's buffer: no copy

    // Current control frame payload (control frames may be split too).
    uint8_t control_[kMaxControlPayload];
    uint8_t control_len_ = 0;

    // Current data message.
    bool in_message_ = false;
    Opcode message_opcode_ = Opcode::kText;
    uint64_t message_size_ = 0;
    std::string message_;
    Utf8Validator utf8_;

    ParseError error_;
};

// XORs data with the mask; offset is the position of data[0] in the payload.
void apply_mask(uint8_t* data, size_t len, const uint8_t mask[4], uint64_t offset) noexcept;

// Writes a frame header to out (at least 14 bytes) and returns its length.
// With mask != nullptr the header is a client header carrying that key.
size_t encode_header(uint8_t* out, Opcode op, uint64_t payload_len, bool fin = true,
                     const uint8_t* mask = nullptr) noexcept;

// A complete unmasked server frame.
std::string encode_frame(Opcode op, std::string_view payload, bool fin = true);

// A complete masked client frame (for clients: the benchmark, tests).
std::string encode_client_frame(Opcode op, std::string_view payload, uint32_t mask_key,
                                bool fin = true);

// Close frame payload: code in network order plus a reason cut to fit the
// 125-byte control limit without splitting a UTF-8 sequence.
std::string close_payload(uint16_t code, std::string_view reason);

}  // namespace realtime::ws
