#include "json_template.h"

#include <jansson.h>

#include <cstdint>
#include <memory>
#include <utility>

#include "utf8.h"

namespace realtime {

namespace {

struct JsonDecref {
    void operator()(json_t* j) const noexcept { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDecref>;

constexpr bool is_json_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

constexpr bool is_name_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_json_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_json_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

// s with every ill-formed UTF-8 sequence replaced by U+FFFD, one per maximal
// subpart (Unicode's "substitution of maximal subparts": a lead byte and the
// continuation bytes that still fit it become one U+FFFD, a stray byte one),
// and every NUL byte too: "\u0000" is valid JSON, but jansson (this module
// and many consumers) refuses it by default, and in object keys always.
std::string repair_text(std::string_view s) {
    static constexpr char kReplacement[] = "\xEF\xBF\xBD";
    std::string out;
    out.reserve(s.size() + 8);
    size_t i = 0;
    while (i < s.size()) {
        auto b = static_cast<uint8_t>(s[i]);
        if (b == 0) {
            out += kReplacement;
            ++i;
            continue;
        }
        if (b < 0x80) {
            out.push_back(static_cast<char>(b));
            ++i;
            continue;
        }
        size_t need;
        uint8_t lower = 0x80;
        uint8_t upper = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            need = 2;
            if (b == 0xE0) {
                lower = 0xA0;  // no overlong forms
            } else if (b == 0xED) {
                upper = 0x9F;  // no surrogates
            }
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3;
            if (b == 0xF0) {
                lower = 0x90;  // no overlong forms
            } else if (b == 0xF4) {
                upper = 0x8F;  // nothing above U+10FFFF
            }
        } else {
            out += kReplacement;  // 80..C1, F5..FF: never valid here
            ++i;
            continue;
        }
        size_t j = i + 1;
        size_t got = 0;
        while (got < need && j < s.size()) {
            auto c = static_cast<uint8_t>(s[j]);
            if (c < lower || c > upper) {
                break;
            }
            lower = 0x80;
            upper = 0xBF;
            ++j;
            ++got;
        }
        if (got == need) {
            out.append(s.data() + i, j - i);
        } else {
            out += kReplacement;  // the byte that broke it starts afresh
        }
        i = j;
    }
    return out;
}

// Text for a JSON string: valid UTF-8 without NUL as it is, else repaired.
std::string string_text(std::string_view s) {
    return is_valid_utf8(s) && s.find('\0') == std::string_view::npos ? std::string(s)
                                                                         : repair_text(s);
}

// One reference found by the scan.
struct Reference {
    size_t begin;  // offset of '$' in the template
    size_t end;    // offset after the reference
};

// Where a piece of the placeholder rendering came from, to report jansson's
// error position in terms of the template.
struct Piece {
    size_t rendered;  // offset in the rendering
    size_t source;    // offset in the template
    bool literal;     // copied byte for byte (else a placeholder)
};

size_t source_offset(const std::vector<Piece>& pieces, size_t rendered, size_t text_size) {
    const Piece* found = nullptr;
    for (const Piece& p : pieces) {
        if (p.rendered > rendered) {
            break;
        }
        found = &p;
    }
    if (found == nullptr) {
        return 0;
    }
    size_t at = found->literal ? found->source + (rendered - found->rendered) : found->source;
    return at < text_size ? at : text_size;
}

}  // namespace

bool JsonTemplate::compile(std::string_view text,
                           const std::function<int(std::string_view name)>& resolve,
                           JsonTemplate* out, std::string* error) {
    size_t nul = text.find('\0');
    if (nul != std::string_view::npos) {
        // jansson would take it for the end of the text
        *error = "not valid JSON: NUL byte (at byte " + std::to_string(nul + 1) + ")";
        return false;
    }
    JsonTemplate t;
    std::vector<Reference> refs;
    std::string structure_error;  // the first misplaced reference, if any

    bool in_string = false;
    bool escape = false;
    size_t literal_start = 0;
    size_t i = 0;
    while (i < text.size()) {
        char c = text[i];
        if (c == '$' && !escape && i + 1 < text.size()) {
            size_t begin = i;
            std::string_view name;
            size_t end;
            if (text[i + 1] == '{') {
                size_t close = text.find('}', i + 2);
                if (close == std::string_view::npos) {
                    *error = "missing \"}\" after \"" + std::string(text.substr(i, 40)) + "\"";
                    return false;
                }
                name = text.substr(i + 2, close - (i + 2));
                end = close + 1;
                if (name.empty()) {
                    *error = "empty variable name \"${}\"";
                    return false;
                }
            } else if (is_name_char(text[i + 1])) {
                end = i + 1;
                while (end < text.size() && is_name_char(text[end])) {
                    ++end;
                }
                name = text.substr(i + 1, end - (i + 1));
            } else {
                // '$' followed by anything else is itself
                ++i;
                continue;
            }
            int index = resolve(name);
            if (index < 0) {
                *error = "unknown variable \"$" + std::string(name) + "\"";
                return false;
            }
            if (!in_string && structure_error.empty()) {
                // Outside a string the value must be a whole JSON value of
                // its own: where one may start and end, not glued to a
                // number ("1$x", "-$x", "${x}.5") or used as a key.
                size_t p = begin;
                while (p > 0 && is_json_space(text[p - 1])) {
                    --p;
                }
                size_t n = end;
                while (n < text.size() && is_json_space(text[n])) {
                    ++n;
                }
                bool before_ok = p == 0 || text[p - 1] == '[' || text[p - 1] == ':' ||
                                 text[p - 1] == ',';
                bool after_ok = n == text.size() || text[n] == ']' || text[n] == '}' ||
                                text[n] == ',';
                if (!before_ok || !after_ok) {
                    structure_error = "\"" + std::string(text.substr(begin, end - begin)) +
                                      "\" outside a JSON string must be a whole value "
                                      "(as in {\"key\": $name} or [$name])";
                }
            }
            Segment seg;
            seg.literal = std::string(text.substr(literal_start, begin - literal_start));
            seg.variable = index;
            seg.in_string = in_string;
            t.segments_.push_back(std::move(seg));
            bool seen = false;
            for (int v : t.variables_) {
                if (v == index) {
                    seen = true;
                    break;
                }
            }
            if (!seen) {
                t.variables_.push_back(index);
            }
            refs.push_back(Reference{begin, end});
            literal_start = end;
            i = end;
            continue;
        }
        if (in_string) {
            if (escape) {
                escape = false;
            } else if (c == '\\') {
                escape = true;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        }
        ++i;
    }
    Segment last;
    last.literal = std::string(text.substr(literal_start));
    t.segments_.push_back(std::move(last));

    // The rendering with placeholders: "x" in strings, 0 outside. Together
    // with the check above, if it is one JSON value, so is every rendering.
    std::string rendered;
    std::vector<Piece> pieces;
    size_t source = 0;
    for (size_t k = 0; k < t.segments_.size(); ++k) {
        const Segment& seg = t.segments_[k];
        pieces.push_back(Piece{rendered.size(), source, true});
        rendered += seg.literal;
        if (seg.variable < 0) {
            break;
        }
        pieces.push_back(Piece{rendered.size(), refs[k].begin, false});
        rendered += seg.in_string ? "x" : "0";
        source = refs[k].end;
    }
    json_error_t jerr;
    JsonPtr root(json_loadb(rendered.data(), rendered.size(), JSON_DECODE_ANY, &jerr));
    if (!root) {
        // jansson's position is just past the offending token
        size_t last = jerr.position > 0 ? static_cast<size_t>(jerr.position) - 1 : 0;
        size_t at = source_offset(pieces, last, text.size());
        *error = "not valid JSON: " + std::string(jerr.text) + " (at byte " +
                 std::to_string(at + 1) + ")";
        return false;
    }
    if (!structure_error.empty()) {
        *error = std::move(structure_error);
        return false;
    }
    t.is_object_ = json_is_object(root.get());
    *out = std::move(t);
    return true;
}

std::string JsonTemplate::render(const std::function<std::string_view(int index)>& value) const {
    std::string out;
    for (const Segment& seg : segments_) {
        out += seg.literal;
        if (seg.variable < 0) {
            continue;
        }
        std::string_view v = value(seg.variable);
        if (seg.in_string) {
            out += json_escape(string_text(v));
            continue;
        }
        std::string_view trimmed = trim(v);
        if (trimmed.empty()) {
            out += "null";
        } else if (is_json_value(trimmed)) {
            out += trimmed;
        } else {
            out.push_back('"');
            out += json_escape(string_text(v));
            out.push_back('"');
        }
    }
    return out;
}

std::string json_escape(std::string_view s) {
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(s.size() + s.size() / 8);
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out.push_back(kHex[c >> 4]);
                out.push_back(kHex[c & 0xF]);
            } else {
                out.push_back(static_cast<char>(c));
            }
        }
    }
    return out;
}

bool is_json_value(std::string_view s) {
    // jansson checks the grammar, UTF-8, \u escapes (no lone surrogates, no
    // \u0000) and that nothing follows the value (JSON_DECODE_ANY: any value
    // at the top, not only objects and arrays); numbers it cannot hold
    // (too big integers, overflowing reals) count as not a value, so what is
    // inserted raw is always something jansson itself reads back.
    // jansson takes a NUL byte for the end of the text: "1\0x" would pass.
    if (trim(s).empty() || s.find('\0') != std::string_view::npos) {
        return false;
    }
    json_error_t jerr;
    JsonPtr root(json_loadb(s.data(), s.size(), JSON_DECODE_ANY, &jerr));
    return root != nullptr;
}

}  // namespace realtime
