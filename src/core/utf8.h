// Incremental UTF-8 validation for WebSocket text messages (RFC 6455 §8.1).
//
// A text message may arrive in many frames and each frame in many TCP reads,
// so a code point can be split anywhere. The validator keeps the few bits of
// state needed to resume, and fails as soon as a byte makes the sequence
// impossible (fail-fast: we close with 1007 without waiting for the rest).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace realtime {

class Utf8Validator {
public:
    // Feeds the next bytes. Returns false once the input so far cannot be a
    // prefix of valid UTF-8; the validator then stays failed until reset().
    bool write(const uint8_t* data, size_t len) noexcept;
    bool write(std::string_view s) noexcept {
        return write(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    }

    // True when everything written so far is complete, valid UTF-8
    // (no code point left half-way).
    bool finish() const noexcept { return !failed_ && need_ == 0; }

    bool failed() const noexcept { return failed_; }

    void reset() noexcept { *this = Utf8Validator(); }

private:
    uint8_t need_ = 0;     // continuation bytes still expected
    uint8_t lower_ = 0x80; // allowed range of the next continuation byte;
    uint8_t upper_ = 0xBF; // narrowed after E0, ED, F0, F4 lead bytes
    bool failed_ = false;
};

// One-shot helper for complete strings (close reasons, names).
bool is_valid_utf8(std::string_view s) noexcept;

} // namespace realtime
