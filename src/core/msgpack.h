// A MessagePack decoder for what Django's channel layers write (channels_redis
// msgpack.packb(use_bin_type=True)): maps, arrays, str, bin, ints, floats,
// bool, nil (ext is decoded and kept as bytes, never interpreted). No I/O, no
// nginx headers; bounded: a count larger than the bytes left can hold, a depth
// past max_depth, truncation or trailing bytes refuse the input whole.
//
// The input comes from Redis, which anybody with access to it can write to,
// so the decoder trusts no count: every element takes at least one byte, so
// an array (map) that claims more elements (pairs) than the bytes left could
// hold is refused before anything is reserved. Memory is thus bounded by the
// input's size (one Value per byte at most).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace realtime::msgpack {

struct Value {
    enum class Type : uint8_t { kNil, kBool, kInt, kFloat, kStr, kBin, kArray, kMap, kExt };
    Type type = Type::kNil;
    bool boolean = false;
    bool is_unsigned = false;  // kInt: a uint64 past INT64_MAX (value in uinteger)
    int64_t integer = 0;
    uint64_t uinteger = 0;
    double real = 0;           // kFloat (float32 widened)
    int8_t ext_type = 0;       // kExt
    std::string_view bytes;    // kStr / kBin / kExt: into the decoded buffer
    std::vector<Value> items;  // kArray: elements; kMap: key, value, key, value, ...

    // kMap with string keys: the value of key, or nullptr (also for
    // another type). With duplicate keys, the first one.
    const Value* find(std::string_view key) const noexcept;
};

// Decodes exactly one value spanning all of data (which must outlive out).
// false with *error set (a short English reason) when data is not that.
// max_depth bounds the nesting of arrays and maps: a value at the top is at
// depth 0, so max_depth 32 allows 32 nested containers and refuses 33; the
// decoder recurses once per level (keep max_depth small).
// May throw std::bad_alloc.
bool decode(std::string_view data, Value* out, std::string* error,
            unsigned max_depth = 32);

// JSON text of v (into *out, replaced; left alone on failure): maps need
// string keys (valid UTF-8, escaped), strings are validated UTF-8, bin/ext
// and non-finite floats cannot be JSON (false, with *error).
// Compact (no spaces), map keys in their order; strings escaped as RFC 8259
// requires: '"', '\\', and control characters (\n \r \t, else \u00XX);
// non-ASCII is written as UTF-8, not \uXXXX (Python's json.dumps escapes
// it by default: the same value once parsed).
// Integers are exact (int64 and uint64). Floats are written so they read
// back the same: the fewest of 15..17 significant digits (%.g), with ".0"
// added to an integral value, so 1.5 -> 1.5, 2.0 -> 2.0, 0.1 -> 0.1,
// 1e100 -> 1e+100, as Python's json.dumps writes them; they differ only in
// where the exponent form starts (1e15: Python 1000000000000000.0, here
// 1e+15), the same number either way.
// May throw std::bad_alloc.
bool to_json(const Value& v, std::string* out, std::string* error);

}  // namespace realtime::msgpack
