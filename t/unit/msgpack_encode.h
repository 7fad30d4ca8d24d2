// A tiny MessagePack encoder for the unit tests, written from the spec and
// independent of src/core/msgpack.cpp: each function writes one explicit
// form (the test names the size class), so every class can be exercised.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace realtime::test::mp {

// marker then x as n big-endian bytes
inline std::string BE(int marker, uint64_t x, int n) {
    std::string s;
    if (marker >= 0) {
        s.push_back(static_cast<char>(marker));
    }
    for (int i = n - 1; i >= 0; --i) {
        s.push_back(static_cast<char>((x >> (8 * i)) & 0xFF));
    }
    return s;
}

inline std::string Nil() { return std::string(1, '\xc0'); }
inline std::string Bool(bool b) { return std::string(1, b ? '\xc3' : '\xc2'); }
inline std::string FixInt(int v) { return std::string(1, static_cast<char>(v)); }  // -32..127
inline std::string U8(uint8_t v) { return BE(0xcc, v, 1); }
inline std::string U16(uint16_t v) { return BE(0xcd, v, 2); }
inline std::string U32(uint32_t v) { return BE(0xce, v, 4); }
inline std::string U64(uint64_t v) { return BE(0xcf, v, 8); }
inline std::string I8(int8_t v) { return BE(0xd0, static_cast<uint8_t>(v), 1); }
inline std::string I16(int16_t v) { return BE(0xd1, static_cast<uint16_t>(v), 2); }
inline std::string I32(int32_t v) { return BE(0xd2, static_cast<uint32_t>(v), 4); }
inline std::string I64(int64_t v) { return BE(0xd3, static_cast<uint64_t>(v), 8); }

inline std::string F32(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    return BE(0xca, bits, 4);
}
inline std::string F64(double d) {
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    return BE(0xcb, bits, 8);
}

// Strings and bins: the head for n bytes in the named class, then s.
inline std::string FixStr(std::string_view s) {
    return std::string(1, static_cast<char>(0xa0 | s.size())) + std::string(s);
}
inline std::string Str8(std::string_view s) { return BE(0xd9, s.size(), 1) + std::string(s); }
inline std::string Str16(std::string_view s) { return BE(0xda, s.size(), 2) + std::string(s); }
inline std::string Str32(std::string_view s) { return BE(0xdb, s.size(), 4) + std::string(s); }
inline std::string Bin8(std::string_view s) { return BE(0xc4, s.size(), 1) + std::string(s); }
inline std::string Bin16(std::string_view s) { return BE(0xc5, s.size(), 2) + std::string(s); }
inline std::string Bin32(std::string_view s) { return BE(0xc6, s.size(), 4) + std::string(s); }

// The smallest str form, as msgpack-python writes it.
inline std::string Str(std::string_view s) {
    if (s.size() < 32) {
        return FixStr(s);
    }
    if (s.size() < 256) {
        return Str8(s);
    }
    return s.size() < 65536 ? Str16(s) : Str32(s);
}

// Containers: the head for n elements (n pairs for maps); the elements follow.
inline std::string FixArray(size_t n) { return std::string(1, static_cast<char>(0x90 | n)); }
inline std::string Array16(size_t n) { return BE(0xdc, n, 2); }
inline std::string Array32(size_t n) { return BE(0xdd, n, 4); }
inline std::string FixMap(size_t n) { return std::string(1, static_cast<char>(0x80 | n)); }
inline std::string Map16(size_t n) { return BE(0xde, n, 2); }
inline std::string Map32(size_t n) { return BE(0xdf, n, 4); }

// ext: fixext for 1, 2, 4, 8, 16 bytes when fixed, else ext8/16/32 by size.
inline std::string FixExt(int8_t type, std::string_view data) {
    static const int kMarker[17] = {0, 0xd4, 0xd5, 0, 0xd6, 0, 0, 0, 0xd7,
                                    0, 0,    0,    0, 0,    0, 0, 0xd8};
    return std::string(1, static_cast<char>(kMarker[data.size()])) +
           std::string(1, static_cast<char>(type)) + std::string(data);
}
inline std::string Ext(int marker, int len_size, int8_t type, std::string_view data) {
    return BE(marker, data.size(), len_size) + std::string(1, static_cast<char>(type)) +
           std::string(data);
}

// "0a ff" / "0aff" into bytes (what Python's .hex() prints).
inline std::string FromHex(std::string_view hex) {
    auto nibble = [](char c) {
        return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    };
    std::string out;
    for (size_t i = 0; i + 1 < hex.size();) {
        if (hex[i] == ' ') {
            ++i;
            continue;
        }
        out.push_back(static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
        i += 2;
    }
    return out;
}

}  // namespace realtime::test::mp
