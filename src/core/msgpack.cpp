#include "msgpack.h"

#include <cmath>
#include <cstring>

#include "json_text.h"
#include "publish_request.h"
#include "utf8.h"

namespace realtime::msgpack {

const Value* Value::find(std::string_view key) const noexcept {
    if (type != Type::kMap) {
        return nullptr;
    }
    for (size_t i = 0; i + 1 < items.size(); i += 2) {
        if (items[i].type == Type::kStr && items[i].bytes == key) {
            return &items[i + 1];
        }
    }
    return nullptr;
}

namespace {

// Reads one value at a time from [p, end); every read checks what is left
// first, so nothing past end is ever touched.
class Decoder {
public:
    Decoder(std::string_view data, unsigned max_depth, std::string* error)
        : p_(reinterpret_cast<const uint8_t*>(data.data())),
          end_(p_ + data.size()),
          max_depth_(max_depth),
          error_(error) {}

    bool at_end() const noexcept { return p_ == end_; }
    size_t left() const noexcept { return static_cast<size_t>(end_ - p_); }

    bool fail(const char* reason) {
        if (error_) {
            *error_ = reason;
        }
        return false;
    }

    bool value(Value* v, unsigned depth);

private:
    // Big-endian unsigned of n bytes (1, 2, 4 or 8).
    bool uint(size_t n, uint64_t* out) {
        if (left() < n) {
            return fail("truncated");
        }
        uint64_t x = 0;
        for (size_t i = 0; i < n; ++i) {
            x = (x << 8) | p_[i];
        }
        p_ += n;
        *out = x;
        return true;
    }

    bool take(size_t n, std::string_view* out) {
        if (left() < n) {
            return fail("truncated");
        }
        *out = std::string_view(reinterpret_cast<const char*>(p_), n);
        p_ += n;
        return true;
    }

    // str or bin: a length of len_size bytes, then the bytes.
    bool sized(Value* v, Value::Type type, size_t len_size) {
        uint64_t n;
        if (!uint(len_size, &n)) {
            return false;
        }
        v->type = type;
        return take(static_cast<size_t>(n), &v->bytes);
    }

    bool unsigned_int(Value* v, size_t n) {
        uint64_t x;
        if (!uint(n, &x)) {
            return false;
        }
        set_unsigned(v, x);
        return true;
    }

    static void set_unsigned(Value* v, uint64_t x) {
        v->type = Value::Type::kInt;
        v->uinteger = x;
        if (x > static_cast<uint64_t>(INT64_MAX)) {
            v->is_unsigned = true;
        } else {
            v->integer = static_cast<int64_t>(x);
        }
    }

    bool signed_int(Value* v, size_t n) {
        uint64_t x;
        if (!uint(n, &x)) {
            return false;
        }
        // sign-extend the n-byte two's complement
        int64_t s;
        switch (n) {
        case 1: s = static_cast<int8_t>(x); break;
        case 2: s = static_cast<int16_t>(x); break;
        case 4: s = static_cast<int32_t>(x); break;
        default: s = static_cast<int64_t>(x); break;
        }
        v->type = Value::Type::kInt;
        v->integer = s;
        v->uinteger = static_cast<uint64_t>(s);
        return true;
    }

    bool float32(Value* v) {
        uint64_t x;
        if (!uint(4, &x)) {
            return false;
        }
        auto bits = static_cast<uint32_t>(x);
        float f;
        std::memcpy(&f, &bits, sizeof f);
        v->type = Value::Type::kFloat;
        v->real = f;
        return true;
    }

    bool float64(Value* v) {
        uint64_t bits;
        if (!uint(8, &bits)) {
            return false;
        }
        v->type = Value::Type::kFloat;
        std::memcpy(&v->real, &bits, sizeof v->real);
        return true;
    }

    // ext: the type byte, then n bytes (fixext) or a length of len_size bytes.
    bool ext(Value* v, size_t fixed, size_t len_size) {
        uint64_t n = fixed;
        if (len_size && !uint(len_size, &n)) {
            return false;
        }
        uint64_t t;
        if (!uint(1, &t)) {
            return false;
        }
        v->type = Value::Type::kExt;
        v->ext_type = static_cast<int8_t>(static_cast<uint8_t>(t));
        return take(static_cast<size_t>(n), &v->bytes);
    }

    bool container(Value* v, Value::Type type, uint64_t count, unsigned depth);
    bool counted(Value* v, Value::Type type, size_t len_size, unsigned depth) {
        uint64_t n;
        return uint(len_size, &n) && container(v, type, n, depth);
    }

    const uint8_t* p_;
    const uint8_t* end_;
    unsigned max_depth_;
    std::string* error_;
};

bool Decoder::container(Value* v, Value::Type type, uint64_t count, unsigned depth) {
    if (depth >= max_depth_) {
        return fail("nested too deep");
    }
    // Every value takes at least one byte: a count the bytes left cannot
    // hold is refused before anything is reserved for it.
    uint64_t values = type == Value::Type::kMap ? count * 2 : count;  // count < 2^32
    if (values > left()) {
        return fail("count larger than the data");
    }
    v->type = type;
    v->items.resize(static_cast<size_t>(values));
    for (Value& item : v->items) {
        if (!value(&item, depth + 1)) {
            return false;
        }
    }
    return true;
}

bool Decoder::value(Value* v, unsigned depth) {
    *v = Value();
    if (at_end()) {
        return fail("truncated");
    }
    uint8_t m = *p_++;
    if (m <= 0x7f) {  // positive fixint
        set_unsigned(v, m);
        return true;
    }
    if (m >= 0xe0) {  // negative fixint
        v->type = Value::Type::kInt;
        v->integer = static_cast<int8_t>(m);
        v->uinteger = static_cast<uint64_t>(v->integer);
        return true;
    }
    if (m <= 0x8f) {
        return container(v, Value::Type::kMap, m & 0x0f, depth);
    }
    if (m <= 0x9f) {
        return container(v, Value::Type::kArray, m & 0x0f, depth);
    }
    if (m <= 0xbf) {  // fixstr
        v->type = Value::Type::kStr;
        return take(m & 0x1f, &v->bytes);
    }
    switch (m) {
    case 0xc0: v->type = Value::Type::kNil; return true;
    case 0xc2:
    case 0xc3:
        v->type = Value::Type::kBool;
        v->boolean = m == 0xc3;
        return true;
    case 0xc4: return sized(v, Value::Type::kBin, 1);
    case 0xc5: return sized(v, Value::Type::kBin, 2);
    case 0xc6: return sized(v, Value::Type::kBin, 4);
    case 0xc7: return ext(v, 0, 1);
    case 0xc8: return ext(v, 0, 2);
    case 0xc9: return ext(v, 0, 4);
    case 0xca: return float32(v);
    case 0xcb: return float64(v);
    case 0xcc: return unsigned_int(v, 1);
    case 0xcd: return unsigned_int(v, 2);
    case 0xce: return unsigned_int(v, 4);
    case 0xcf: return unsigned_int(v, 8);
    case 0xd0: return signed_int(v, 1);
    case 0xd1: return signed_int(v, 2);
    case 0xd2: return signed_int(v, 4);
    case 0xd3: return signed_int(v, 8);
    case 0xd4: return ext(v, 1, 0);
    case 0xd5: return ext(v, 2, 0);
    case 0xd6: return ext(v, 4, 0);
    case 0xd7: return ext(v, 8, 0);
    case 0xd8: return ext(v, 16, 0);
    case 0xd9: return sized(v, Value::Type::kStr, 1);
    case 0xda: return sized(v, Value::Type::kStr, 2);
    case 0xdb: return sized(v, Value::Type::kStr, 4);
    case 0xdc: return counted(v, Value::Type::kArray, 2, depth);
    case 0xdd: return counted(v, Value::Type::kArray, 4, depth);
    case 0xde: return counted(v, Value::Type::kMap, 2, depth);
    case 0xdf: return counted(v, Value::Type::kMap, 4, depth);
    default: return fail("0xc1 is not a MessagePack type");  // the one unused marker
    }
}

// ---------------------------------------------------------------------------
// JSON

bool json_fail(std::string* error, const char* reason) {
    if (error) {
        *error = reason;
    }
    return false;
}

bool append_string(std::string_view s, std::string& out, std::string* error) {
    if (!is_valid_utf8(s)) {
        return json_fail(error, "a string is not valid UTF-8");
    }
    out += json_quote(s);
    return true;
}

bool append_json(const Value& v, std::string& out, std::string* error);

bool append_map(const Value& v, std::string& out, std::string* error) {
    out.push_back('{');
    for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
        if (i) {
            out.push_back(',');
        }
        if (v.items[i].type != Value::Type::kStr) {
            return json_fail(error, "a map key is not a string");
        }
        if (!append_string(v.items[i].bytes, out, error)) {
            return false;
        }
        out.push_back(':');
        if (!append_json(v.items[i + 1], out, error)) {
            return false;
        }
    }
    out.push_back('}');
    return true;
}

bool append_array(const Value& v, std::string& out, std::string* error) {
    out.push_back('[');
    for (size_t i = 0; i < v.items.size(); ++i) {
        if (i) {
            out.push_back(',');
        }
        if (!append_json(v.items[i], out, error)) {
            return false;
        }
    }
    out.push_back(']');
    return true;
}

bool append_json(const Value& v, std::string& out, std::string* error) {
    switch (v.type) {
    case Value::Type::kNil: out += "null"; return true;
    case Value::Type::kBool: out += v.boolean ? "true" : "false"; return true;
    case Value::Type::kInt:
        out += v.is_unsigned ? std::to_string(v.uinteger) : std::to_string(v.integer);
        return true;
    case Value::Type::kFloat:
        if (!std::isfinite(v.real)) {
            return json_fail(error, "NaN or infinity cannot be JSON");
        }
        out += json_real_text(v.real);
        return true;
    case Value::Type::kStr: return append_string(v.bytes, out, error);
    case Value::Type::kBin: return json_fail(error, "bytes cannot be JSON");
    case Value::Type::kExt: return json_fail(error, "an ext value cannot be JSON");
    case Value::Type::kArray: return append_array(v, out, error);
    case Value::Type::kMap: return append_map(v, out, error);
    }
    return json_fail(error, "unknown type");
}

}  // namespace

bool decode(std::string_view data, Value* out, std::string* error, unsigned max_depth) {
    Decoder d(data, max_depth, error);
    if (!d.value(out, 0)) {
        return false;
    }
    if (!d.at_end()) {
        return d.fail("trailing bytes after the value");
    }
    return true;
}

bool to_json(const Value& v, std::string* out, std::string* error) {
    std::string text;
    if (!append_json(v, text, error)) {
        return false;
    }
    *out = std::move(text);
    return true;
}

}  // namespace realtime::msgpack
