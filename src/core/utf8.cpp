#include "utf8.h"

namespace realtime {

bool Utf8Validator::write(const uint8_t* p, size_t len) noexcept {
    if (failed_) {
        return false;
    }
    const uint8_t* end = p + len;
    while (p < end) {
        if (need_ == 0) {
            // Fast path: skip ASCII eight bytes at a time when aligned runs allow.
            while (end - p >= 8) {
                uint64_t w;
                __builtin_memcpy(&w, p, 8);
                if (w & 0x8080808080808080ULL) {
                    break;
                }
                p += 8;
            }
            if (p == end) {
                break;
            }
            uint8_t b = *p++;
            if (b < 0x80) {
                continue;
            }
            lower_ = 0x80;
            upper_ = 0xBF;
            if (b >= 0xC2 && b <= 0xDF) {
                need_ = 1;
            } else if (b >= 0xE0 && b <= 0xEF) {
                need_ = 2;
                if (b == 0xE0) {
                    lower_ = 0xA0;  // no overlong 3-byte forms
                } else if (b == 0xED) {
                    upper_ = 0x9F;  // no UTF-16 surrogates
                }
            } else if (b >= 0xF0 && b <= 0xF4) {
                need_ = 3;
                if (b == 0xF0) {
                    lower_ = 0x90;  // no overlong 4-byte forms
                } else if (b == 0xF4) {
                    upper_ = 0x8F;  // nothing above U+10FFFF
                }
            } else {
                failed_ = true;  // 80..C1 (continuation, overlong 2-byte) or F5..FF
                return false;
            }
        } else {
            uint8_t b = *p++;
            if (b < lower_ || b > upper_) {
                failed_ = true;
                return false;
            }
            lower_ = 0x80;
            upper_ = 0xBF;
            --need_;
        }
    }
    return true;
}

bool is_valid_utf8(std::string_view s) noexcept {
    Utf8Validator v;
    return v.write(s) && v.finish();
}

} // namespace realtime
