#include "json_text.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "publish_request.h"

namespace realtime {

std::string json_real_text(double d) {
    char buf[40];
    for (int precision = 15; precision <= 17; ++precision) {
        std::snprintf(buf, sizeof(buf), "%.*g", precision, d);
        if (precision == 17 || std::strtod(buf, nullptr) == d) {
            break;
        }
    }
    std::string out(buf);
    if (out.find_first_of(".eEn") == std::string::npos) {
        out += ".0";  // 100.0 stays a real, as jansson prints it
    }
    return out;
}

namespace {

void append(std::string& out, const json_t* v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        out.push_back('{');
        const char* key;
        size_t key_len;
        json_t* member;
        bool first = true;
        // with its length: a key may hold a NUL byte ("\u0000")
        json_object_keylen_foreach(const_cast<json_t*>(v), key, key_len, member) {
            if (!first) {
                out.push_back(',');
            }
            first = false;
            out += json_quote(std::string_view(key, key_len));
            out.push_back(':');
            append(out, member);
        }
        out.push_back('}');
        return;
    }
    case JSON_ARRAY: {
        out.push_back('[');
        for (size_t i = 0; i < json_array_size(v); ++i) {
            if (i) {
                out.push_back(',');
            }
            append(out, json_array_get(v, i));
        }
        out.push_back(']');
        return;
    }
    case JSON_STRING:
        out += json_quote(std::string_view(json_string_value(v), json_string_length(v)));
        return;
    case JSON_INTEGER:
        out += std::to_string(static_cast<long long>(json_integer_value(v)));
        return;
    case JSON_REAL:
        out += json_real_text(json_real_value(v));
        return;
    case JSON_TRUE:
        out += "true";
        return;
    case JSON_FALSE:
        out += "false";
        return;
    case JSON_NULL:
        out += "null";
        return;
    }
}

}  // namespace

std::string json_compact(const json_t* value) {
    std::string out;
    append(out, value);
    return out;
}

}  // namespace realtime
