#include "ws_frame.h"

#include <algorithm>
#include <cstring>

namespace realtime::ws {

namespace {

bool is_control(Opcode op) noexcept { return (static_cast<uint8_t>(op) & 0x8) != 0; }

bool is_known_opcode(uint8_t op) noexcept {
    return op <= 0x2 || (op >= 0x8 && op <= 0xA);
}

// Header length once the first two bytes are known.
size_t full_header_len(const uint8_t* h) noexcept {
    size_t n = 2;
    uint8_t len7 = h[1] & 0x7F;
    if (len7 == 126) {
        n += 2;
    } else if (len7 == 127) {
        n += 8;
    }
    if (h[1] & 0x80) {
        n += 4;
    }
    return n;
}

}  // namespace

bool is_valid_close_code(uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

void apply_mask(uint8_t* data, size_t len, const uint8_t mask[4], uint64_t offset) noexcept {
    size_t i = 0;
    // Align to the mask so the bulk can be done a word at a time.
    while (i < len && ((offset + i) & 3) != 0) {
        data[i] ^= mask[(offset + i) & 3];
        ++i;
    }
    uint32_t m32;
    std::memcpy(&m32, mask, 4);
    uint64_t m64 = (static_cast<uint64_t>(m32) << 32) | m32;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        std::memcpy(&w, data + i, 8);
        w ^= m64;
        std::memcpy(data + i, &w, 8);
    }
    for (; i < len; ++i) {
        data[i] ^= mask[(offset + i) & 3];
    }
}

FrameParser::Result FrameParser::fail(uint16_t code, std::string_view reason) noexcept {
    state_ = State::kFailed;
    error_.code = code;
    error_.reason = reason;
    return Result::kError;
}

bool FrameParser::header_complete() noexcept {
    return header_len_ >= 2 && header_len_ == full_header_len(header_);
}

FrameParser::Result FrameParser::start_frame() {
    const uint8_t* h = header_;
    fin_ = (h[0] & 0x80) != 0;
    uint8_t op = h[0] & 0x0F;
    bool masked = (h[1] & 0x80) != 0;

    if (h[0] & 0x70) {
        return fail(close_code::kProtocolError, "reserved bits set without an extension");
    }
    if (!is_known_opcode(op)) {
        return fail(close_code::kProtocolError, "reserved opcode");
    }
    opcode_ = static_cast<Opcode>(op);
    if (require_mask_ && !masked) {
        return fail(close_code::kProtocolError, "client frame not masked");
    }

    uint8_t len7 = h[1] & 0x7F;
    size_t pos = 2;
    uint64_t len = len7;
    if (len7 == 126) {
        len = (uint64_t{h[2]} << 8) | h[3];
        pos = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; ++i) {
            len = (len << 8) | h[2 + i];
        }
        pos = 10;
        if (len >> 63) {
            return fail(close_code::kProtocolError, "64-bit length with the high bit set");
        }
    }
    if (masked) {
        std::memcpy(mask_, h + pos, 4);
    } else {
        std::memset(mask_, 0, 4);
    }

    if (is_control(opcode_)) {
        if (!fin_) {
            return fail(close_code::kProtocolError, "fragmented control frame");
        }
        if (len > kMaxControlPayload) {
            return fail(close_code::kProtocolError, "control frame payload over 125 bytes");
        }
        control_len_ = 0;
    } else if (opcode_ == Opcode::kContinuation) {
        if (!in_message_) {
            return fail(close_code::kProtocolError, "continuation frame without a message");
        }
    } else {
        if (in_message_) {
            return fail(close_code::kProtocolError, "new message inside a fragmented message");
        }
        in_message_ = true;
        message_opcode_ = opcode_;
        message_size_ = 0;
        utf8_.reset();
    }

    if (!is_control(opcode_)) {
        if (len > max_message_size_ || message_size_ + len > max_message_size_) {
            return fail(close_code::kMessageTooBig, "message too big");
        }
        message_size_ += len;
    }

    frame_len_ = len;
    remaining_ = len;
    header_len_ = 0;
    state_ = State::kPayload;
    return Result::kOk;
}

FrameParser::Result FrameParser::take_payload(uint8_t* p, size_t n, FrameSink& /*sink*/) {
    apply_mask(p, n, mask_, frame_len_ - remaining_);
    remaining_ -= n;
    if (is_control(opcode_)) {
        std::memcpy(control_ + control_len_, p, n);
        control_len_ = static_cast<uint8_t>(control_len_ + n);
        return Result::kOk;
    }
    if (message_opcode_ == Opcode::kText && !utf8_.write(p, n)) {
        return fail(close_code::kInvalidPayload, "invalid UTF-8 in text message");
    }
    if (direct_) {
        return Result::kOk;  // delivered from the caller's buffer in feed()
    }
    message_.append(reinterpret_cast<const char*>(p), n);
    return Result::kOk;
}

FrameParser::Result FrameParser::dispatch_control(std::string_view payload, FrameSink& sink) {
    switch (opcode_) {
    case Opcode::kPing:
        return sink.on_ping(payload) ? Result::kOk : Result::kStopped;
    case Opcode::kPong:
        return sink.on_pong(payload) ? Result::kOk : Result::kStopped;
    default:
        break;
    }

    // Close: empty, or a valid code and an optional UTF-8 reason.
    uint16_t code = close_code::kNoStatus;
    std::string_view reason;
    if (payload.size() == 1) {
        return fail(close_code::kProtocolError, "close frame with a 1-byte payload");
    }
    if (payload.size() >= 2) {
        code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                     static_cast<uint8_t>(payload[1]));
        if (!is_valid_close_code(code)) {
            return fail(close_code::kProtocolError, "invalid close code");
        }
        reason = payload.substr(2);
        if (!is_valid_utf8(reason)) {
            return fail(close_code::kInvalidPayload, "invalid UTF-8 in close reason");
        }
    }
    state_ = State::kClosed;
    sink.on_close(code, reason);
    return Result::kStopped;
}

FrameParser::Result FrameParser::finish_frame(FrameSink& sink) {
    state_ = State::kHeader;
    if (is_control(opcode_)) {
        return dispatch_control(
            std::string_view(reinterpret_cast<const char*>(control_), control_len_), sink);
    }
    if (!fin_) {
        return Result::kOk;
    }
    if (message_opcode_ == Opcode::kText && !utf8_.finish()) {
        return fail(close_code::kInvalidPayload, "text message ends inside a UTF-8 sequence");
    }
    in_message_ = false;
    if (direct_) {
        return Result::kOk;  // feed() delivers it
    }
    bool go_on = sink.on_message(message_opcode_, message_);
    message_.clear();
    if (message_.capacity() > 4096) {
        std::string().swap(message_);  // an idle connection keeps no big buffer
    }
    return go_on ? Result::kOk : Result::kStopped;
}

FrameParser::Result FrameParser::feed(uint8_t* data, size_t len, FrameSink& sink,
                                      size_t* consumed) {
    size_t pos = 0;
    Result rc = Result::kOk;
    if (state_ == State::kFailed) {
        rc = Result::kError;
    } else if (state_ == State::kClosed) {
        rc = Result::kStopped;
    }

    while (rc == Result::kOk && pos < len) {
        if (state_ == State::kHeader) {
            // Copy header bytes one at a time until the header is complete;
            // the second byte tells the full length.
            while (pos < len && !header_complete()) {
                header_[header_len_++] = data[pos++];
            }
            if (!header_complete()) {
                break;
            }
            rc = start_frame();
            if (rc != Result::kOk) {
                break;
            }
            direct_ = !is_control(opcode_) && fin_ && message_size_ == frame_len_ &&
                      len - pos >= frame_len_;
            if (remaining_ != 0) {
                continue;
            }
            rc = finish_frame(sink);
            if (rc == Result::kOk && direct_) {
                rc = sink.on_message(message_opcode_, std::string_view()) ? Result::kOk
                                                                           : Result::kStopped;
            }
            continue;
        }

        // kPayload
        size_t n = static_cast<size_t>(std::min<uint64_t>(remaining_, len - pos));
        uint8_t* p = data + pos;
        rc = take_payload(p, n, sink);
        pos += n;
        if (rc != Result::kOk || remaining_ != 0) {
            continue;
        }
        rc = finish_frame(sink);
        if (rc == Result::kOk && direct_) {
            std::string_view payload(reinterpret_cast<const char*>(p), n);
            rc = sink.on_message(message_opcode_, payload) ? Result::kOk : Result::kStopped;
        }
    }

    if (consumed) {
        *consumed = pos;
    }
    return rc;
}

size_t encode_header(uint8_t* out, Opcode op, uint64_t payload_len, bool fin,
                     const uint8_t* mask) noexcept {
    out[0] = static_cast<uint8_t>((fin ? 0x80 : 0) | static_cast<uint8_t>(op));
    uint8_t mask_bit = mask ? 0x80 : 0;
    size_t n;
    if (payload_len < 126) {
        out[1] = static_cast<uint8_t>(mask_bit | payload_len);
        n = 2;
    } else if (payload_len <= 0xFFFF) {
        out[1] = mask_bit | 126;
        out[2] = static_cast<uint8_t>(payload_len >> 8);
        out[3] = static_cast<uint8_t>(payload_len);
        n = 4;
    } else {
        out[1] = mask_bit | 127;
        for (int i = 0; i < 8; ++i) {
            out[2 + i] = static_cast<uint8_t>(payload_len >> (56 - 8 * i));
        }
        n = 10;
    }
    if (mask) {
        std::memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

std::string encode_frame(Opcode op, std::string_view payload, bool fin) {
    uint8_t header[14];
    size_t n = encode_header(header, op, payload.size(), fin);
    std::string out;
    out.reserve(n + payload.size());
    out.append(reinterpret_cast<const char*>(header), n);
    out.append(payload);
    return out;
}

std::string encode_client_frame(Opcode op, std::string_view payload, uint32_t mask_key,
                                bool fin) {
    uint8_t mask[4] = {static_cast<uint8_t>(mask_key >> 24), static_cast<uint8_t>(mask_key >> 16),
                       static_cast<uint8_t>(mask_key >> 8), static_cast<uint8_t>(mask_key)};
    uint8_t header[14];
    size_t n = encode_header(header, op, payload.size(), fin, mask);
    std::string out(reinterpret_cast<const char*>(header), n);
    out.append(payload);
    apply_mask(reinterpret_cast<uint8_t*>(&out[n]), payload.size(), mask, 0);
    return out;
}

std::string close_payload(uint16_t code, std::string_view reason) {
    size_t limit = kMaxControlPayload - 2;
    if (reason.size() > limit) {
        size_t cut = limit;
        // Back up over continuation bytes so no code point is split.
        while (cut > 0 && (static_cast<uint8_t>(reason[cut]) & 0xC0) == 0x80) {
            --cut;
        }
        reason = reason.substr(0, cut);
    }
    std::string out;
    out.push_back(static_cast<char>(code >> 8));
    out.push_back(static_cast<char>(code & 0xFF));
    out.append(reason);
    return out;
}

}  // namespace realtime::ws
