#include "publish_request.h"

#include <jansson.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <utility>

#include "group_name.h"
#include "json_text.h"

namespace realtime {

namespace {

struct JsonDecref {
    void operator()(json_t* j) const noexcept { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDecref>;

struct FreeDeleter {
    void operator()(char* p) const noexcept { std::free(p); }
};

std::string where(bool batch, size_t index) {
    return batch ? "message " + std::to_string(index) + ": " : std::string();
}

bool add_group(const json_t* value, PublishItem& item, std::string& error,
               const std::string& at) {
    if (!json_is_string(value)) {
        error = at + "group names must be strings";
        return false;
    }
    std::string_view name(json_string_value(value), json_string_length(value));
    if (!is_valid_group_name(name)) {
        // Cut a long name for the message at a character boundary: the error
        // is sent as JSON and must stay valid UTF-8.
        size_t cut = name.size() < 120 ? name.size() : 120;
        while (cut > 0 && cut < name.size() &&
               (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) {
            --cut;
        }
        error = at + "invalid group name " + json_quote(name.substr(0, cut)) +
                " (1-100 of A-Z a-z 0-9 - _ . :)";
        return false;
    }
    // a group named twice is one destination: its subscribers get it once
    for (const std::string& g : item.groups) {
        if (g == name) {
            return true;
        }
    }
    item.groups.emplace_back(name);
    return true;
}

bool parse_item(const json_t* obj, PublishItem& item, std::string& error, const std::string& at) {
    if (!json_is_object(obj)) {
        error = at + "a message must be a JSON object";
        return false;
    }
    const json_t* group = json_object_get(obj, "group");
    const json_t* groups = json_object_get(obj, "groups");
    const json_t* data = json_object_get(obj, "data");

    if ((group == nullptr) == (groups == nullptr)) {
        error = at + "exactly one of \"group\" or \"groups\" is required";
        return false;
    }
    if (group) {
        if (!add_group(group, item, error, at)) {
            return false;
        }
    } else {
        if (!json_is_array(groups) || json_array_size(groups) == 0) {
            error = at + "\"groups\" must be a non-empty array of group names";
            return false;
        }
        if (json_array_size(groups) > kMaxGroupsPerMessage) {
            error = at + "at most " + std::to_string(kMaxGroupsPerMessage) +
                    " groups per message";
            return false;
        }
        size_t i;
        const json_t* g;
        json_array_foreach(groups, i, g) {
            if (!add_group(g, item, error, at)) {
                return false;
            }
        }
    }

    if (data == nullptr) {
        error = at + "\"data\" is required";
        return false;
    }
    if (json_is_string(data)) {
        item.payload.assign(json_string_value(data), json_string_length(data));
        item.is_string = true;
    } else {
        // reals in their shortest form: the app's 0.1 stays 0.1
        item.payload = json_compact(data);
    }
    return true;
}

}  // namespace

PublishRequest parse_publish_request_dom(std::string_view body) {
    PublishRequest req;
    json_error_t jerr;
    // JSON_ALLOW_NUL: "\u0000" is valid JSON and a valid payload character;
    // every string is read with its length, and group names refuse it.
    JsonPtr root(json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                            &jerr));
    if (!root) {
        req.error = std::string("malformed JSON: ") + jerr.text + " at line " +
                    std::to_string(jerr.line) + " column " + std::to_string(jerr.column);
        return req;
    }

    if (json_is_array(root.get())) {
        req.batch = true;
        if (json_array_size(root.get()) == 0) {
            req.error = "empty batch";
            return req;
        }
        size_t i;
        const json_t* obj;
        json_array_foreach(root.get(), i, obj) {
            PublishItem item;
            if (!parse_item(obj, item, req.error, where(true, i))) {
                req.items.clear();
                return req;
            }
            req.items.push_back(std::move(item));
        }
    } else {
        PublishItem item;
        if (!parse_item(root.get(), item, req.error, std::string())) {
            return req;
        }
        req.items.push_back(std::move(item));
    }
    req.ok = true;
    return req;
}

// ---------------------------------------------------------------------------
// The fast path: {"group": NAME, "data": VALUE} and {"groups": [...], ...}
// scanned in one pass without building a DOM. It answers only when it is
// sure to produce exactly what the DOM path would; on anything else (an
// error of any kind, a key other than group/groups/data, a duplicate key, a
// number jansson would reformat, nesting deeper than kFastMaxDepth, a batch)
// it gives up and the DOM path runs, which also writes every error text.

namespace {

constexpr int kFastMaxDepth = 32;          // nesting inside data
constexpr size_t kFastMaxKeys = 64;        // keys of one object inside data
constexpr size_t kFastMaxNumber = 40;      // bytes of one number literal

class FastScanner {
public:
    explicit FastScanner(std::string_view body)
        : p_(body.data()), end_(body.data() + body.size()) {}

    bool parse(PublishItem& item);

private:
    const char* p_;
    const char* end_;

    void skip_ws() noexcept {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) {
            ++p_;
        }
    }

    bool eat(char c) noexcept {
        skip_ws();
        if (p_ < end_ && *p_ == c) {
            ++p_;
            return true;
        }
        return false;
    }

    // One UTF-8 sequence of 2 to 4 bytes at p_ (RFC 3629: no overlong
    // forms, no surrogates, nothing past U+10FFFF), as jansson checks it.
    bool utf8_sequence() noexcept;
    bool hex4(unsigned& v) noexcept;
    // The string whose opening quote is at p_, decoded into out (appended).
    // escaped: whether it held any escape.
    bool string(std::string& out, bool& escaped);
    bool number(std::string& out);
    bool literal(std::string& out);
    // The compact JSON of the value at p_, as json_compact() writes it.
    bool value(std::string& out, int depth);
    bool object(std::string& out, int depth);
    bool array(std::string& out, int depth);
    bool groups(PublishItem& item);
};

bool FastScanner::utf8_sequence() noexcept {
    auto c = static_cast<unsigned char>(*p_);
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 2;
        if (c == 0xE0) {
            lo = 0xA0;  // overlong
        } else if (c == 0xED) {
            hi = 0x9F;  // surrogates
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 3;
        if (c == 0xF0) {
            lo = 0x90;  // overlong
        } else if (c == 0xF4) {
            hi = 0x8F;  // past U+10FFFF
        }
    } else {
        return false;
    }
    if (static_cast<size_t>(end_ - p_) <= n) {
        return false;
    }
    auto c1 = static_cast<unsigned char>(p_[1]);
    if (c1 < lo || c1 > hi) {
        return false;
    }
    for (size_t i = 2; i <= n; ++i) {
        if ((static_cast<unsigned char>(p_[i]) & 0xC0) != 0x80) {
            return false;
        }
    }
    p_ += n + 1;
    return true;
}

bool FastScanner::hex4(unsigned& v) noexcept {
    if (end_ - p_ < 4) {
        return false;
    }
    v = 0;
    for (int i = 0; i < 4; ++i) {
        char c = *p_++;
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = static_cast<unsigned>(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = static_cast<unsigned>(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = static_cast<unsigned>(c - 'A' + 10);
        } else {
            return false;
        }
        v = v << 4 | d;
    }
    return true;
}

void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | cp >> 6));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | cp >> 12));
        out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | cp >> 18));
        out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

bool FastScanner::string(std::string& out, bool& escaped) {
    // p_ is at the opening quote
    ++p_;
    escaped = false;
    const char* run = p_;
    for (;;) {
        if (p_ >= end_) {
            return false;
        }
        auto c = static_cast<unsigned char>(*p_);
        if (c == '"') {
            out.append(run, static_cast<size_t>(p_ - run));
            ++p_;
            return true;
        }
        if (c < 0x20) {
            return false;  // a control character must be escaped
        }
        if (c < 0x80 && c != '\\') {
            ++p_;
            continue;
        }
        if (c >= 0x80) {
            if (!utf8_sequence()) {
                return false;
            }
            continue;
        }
        // an escape
        escaped = true;
        out.append(run, static_cast<size_t>(p_ - run));
        ++p_;
        if (p_ >= end_) {
            return false;
        }
        char e = *p_++;
        switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
            unsigned cp;
            if (!hex4(cp)) {
                return false;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return false;  // a low surrogate alone
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned low;
                if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') {
                    return false;
                }
                p_ += 2;
                if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) {
                    return false;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            append_utf8(out, cp);
            break;
        }
        default:
            return false;
        }
        run = p_;
    }
}

bool FastScanner::number(std::string& out) {
    const char* start = p_;
    bool negative = false;
    if (*p_ == '-') {
        negative = true;
        ++p_;
    }
    if (p_ >= end_) {
        return false;
    }
    if (*p_ == '0') {
        ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
        while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
            ++p_;
        }
    } else {
        return false;
    }
    const char* int_end = p_;
    bool real = false;
    if (p_ < end_ && *p_ == '.') {
        real = true;
        ++p_;
        const char* digits = p_;
        while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
            ++p_;
        }
        if (p_ == digits) {
            return false;
        }
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
        real = true;
        ++p_;
        if (p_ < end_ && (*p_ == '+' || *p_ == '-')) {
            ++p_;
        }
        const char* digits = p_;
        while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
            ++p_;
        }
        if (p_ == digits) {
            return false;
        }
    }
    // jansson would read "0x", "1a" or "01" as an error: the value must be
    // followed by a delimiter (the caller checks which one).
    if (p_ < end_ && ((*p_ >= '0' && *p_ <= '9') || (*p_ >= 'a' && *p_ <= 'z') ||
                      (*p_ >= 'A' && *p_ <= 'Z') || *p_ == '.' || *p_ == '+' || *p_ == '-')) {
        return false;
    }
    auto len = static_cast<size_t>(p_ - start);
    std::string_view text(start, len);
    if (!real) {
        // an integer keeps its text unless jansson would change it: -0
        // becomes 0, and past 18 digits it may not fit in a json_int_t
        size_t digits = static_cast<size_t>(int_end - start) - (negative ? 1 : 0);
        if (digits > 18 || text == "-0") {
            return false;
        }
        out.append(text);
        return true;
    }
    // a real keeps its text only when it is the shortest form that
    // json_compact() prints back: 0.1 stays, 1.0, 1e5 or 0.10 give up
    if (len > kFastMaxNumber) {
        return false;
    }
    char buf[kFastMaxNumber + 1];
    std::memcpy(buf, start, len);
    buf[len] = '\0';
    char* parsed_end = nullptr;
    errno = 0;
    double d = std::strtod(buf, &parsed_end);
    if (parsed_end != buf + len || errno != 0 || !std::isfinite(d)) {
        return false;
    }
    if (json_real_text(d) != text) {
        return false;
    }
    out.append(text);
    return true;
}

bool FastScanner::literal(std::string& out) {
    auto take = [&](std::string_view word) {
        if (static_cast<size_t>(end_ - p_) >= word.size() &&
            std::string_view(p_, word.size()) == word) {
            p_ += word.size();
            // "truex" is an error for jansson
            if (p_ < end_ && ((*p_ >= 'a' && *p_ <= 'z') || (*p_ >= 'A' && *p_ <= 'Z') ||
                              (*p_ >= '0' && *p_ <= '9'))) {
                return false;
            }
            out.append(word);
            return true;
        }
        return false;
    };
    switch (*p_) {
    case 't': return take("true");
    case 'f': return take("false");
    case 'n': return take("null");
    default: return false;
    }
}

bool FastScanner::value(std::string& out, int depth) {
    skip_ws();
    if (p_ >= end_) {
        return false;
    }
    char c = *p_;
    if (c == '"') {
        const size_t at = out.size();
        out.push_back('"');
        bool escaped;
        if (!string(out, escaped)) {
            return false;
        }
        if (escaped) {
            // the decoded text as json_quote() writes it
            std::string decoded = out.substr(at + 1);
            out.resize(at);
            out += json_quote(decoded);
        } else {
            // no escape, no control character: json_quote() keeps it as is
            out.push_back('"');
        }
        return true;
    }
    if (c == '{') {
        return depth < kFastMaxDepth && object(out, depth + 1);
    }
    if (c == '[') {
        return depth < kFastMaxDepth && array(out, depth + 1);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        return number(out);
    }
    return literal(out);
}

bool FastScanner::object(std::string& out, int depth) {
    ++p_;  // '{'
    out.push_back('{');
    // where each key's quoted text is in out: json_quote() is one-to-one,
    // so equal quoted texts are equal keys (JSON_REJECT_DUPLICATES)
    struct Key {
        size_t at, len;
    } keys[kFastMaxKeys];  // not initialized: only keys[0, nkeys) are read
    size_t nkeys = 0;
    if (eat('}')) {
        out.push_back('}');
        return true;
    }
    for (;;) {
        skip_ws();
        if (p_ >= end_ || *p_ != '"' || nkeys == kFastMaxKeys) {
            return false;
        }
        if (nkeys) {
            out.push_back(',');
        }
        const size_t at = out.size();
        if (!value(out, depth)) {
            return false;
        }
        std::string_view key(out.data() + at, out.size() - at);
        if (key.find("\\u0000") != std::string_view::npos) {
            return false;  // a NUL in a key: leave it to jansson
        }
        for (size_t i = 0; i < nkeys; ++i) {
            if (std::string_view(out.data() + keys[i].at, keys[i].len) == key) {
                return false;
            }
        }
        keys[nkeys++] = {at, key.size()};
        if (!eat(':')) {
            return false;
        }
        out.push_back(':');
        if (!value(out, depth)) {
            return false;
        }
        if (eat(',')) {
            continue;
        }
        if (eat('}')) {
            out.push_back('}');
            return true;
        }
        return false;
    }
}

bool FastScanner::array(std::string& out, int depth) {
    ++p_;  // '['
    out.push_back('[');
    if (eat(']')) {
        out.push_back(']');
        return true;
    }
    for (bool first = true;; first = false) {
        if (!first) {
            out.push_back(',');
        }
        if (!value(out, depth)) {
            return false;
        }
        if (eat(',')) {
            continue;
        }
        if (eat(']')) {
            out.push_back(']');
            return true;
        }
        return false;
    }
}

bool FastScanner::groups(PublishItem& item) {
    if (!eat('[')) {
        return false;
    }
    if (eat(']')) {
        return false;  // empty: the DOM path says so
    }
    size_t count = 0;
    std::string name;
    for (;;) {
        skip_ws();
        if (p_ >= end_ || *p_ != '"' || ++count > kMaxGroupsPerMessage) {
            return false;
        }
        name.clear();
        bool escaped;
        if (!string(name, escaped) || !is_valid_group_name(name)) {
            return false;
        }
        bool seen = false;
        for (const std::string& g : item.groups) {
            if (g == name) {
                seen = true;
                break;
            }
        }
        if (!seen) {
            item.groups.push_back(name);
        }
        if (eat(',')) {
            continue;
        }
        return eat(']');
    }
}

bool FastScanner::parse(PublishItem& item) {
    if (!eat('{')) {
        return false;
    }
    bool have_group = false, have_groups = false, have_data = false;
    std::string key;
    for (;;) {
        skip_ws();
        if (p_ >= end_ || *p_ != '"') {
            return false;
        }
        key.clear();
        bool escaped;
        if (!string(key, escaped) || !eat(':')) {
            return false;
        }
        skip_ws();
        if (p_ >= end_) {
            return false;
        }
        if (key == "group") {
            if (have_group || *p_ != '"') {
                return false;
            }
            have_group = true;
            std::string name;
            if (!string(name, escaped) || !is_valid_group_name(name)) {
                return false;
            }
            item.groups.push_back(std::move(name));
        } else if (key == "groups") {
            if (have_groups || !groups(item)) {
                return false;
            }
            have_groups = true;
        } else if (key == "data") {
            if (have_data) {
                return false;
            }
            have_data = true;
            if (*p_ == '"') {
                if (!string(item.payload, escaped)) {
                    return false;
                }
                item.is_string = true;
            } else if (!value(item.payload, 0)) {
                return false;
            }
        } else {
            return false;  // jansson checks what the DOM path ignores
        }
        if (eat(',')) {
            continue;
        }
        if (!eat('}')) {
            return false;
        }
        break;
    }
    skip_ws();
    return p_ == end_ && have_group != have_groups && have_data;
}

}  // namespace

bool parse_publish_request_fast(std::string_view body, PublishRequest& req) {
    PublishItem item;
    if (!FastScanner(body).parse(item)) {
        return false;
    }
    req = PublishRequest();
    req.ok = true;
    req.items.push_back(std::move(item));
    return true;
}

PublishRequest parse_publish_request(std::string_view body) {
    PublishRequest req;
    if (parse_publish_request_fast(body, req)) {
        return req;
    }
    return parse_publish_request_dom(body);
}

ActionRequest parse_action_request(std::string_view body) {
    ActionRequest req;
    json_error_t err;
    JsonPtr root(json_loadb(body.data(), body.size(), 0, &err));
    if (!root || !json_is_object(root.get())) {
        return req;
    }
    const json_t* action = json_object_get(root.get(), "action");
    if (action == nullptr) {
        return req;
    }
    req.is_action = true;
    if (!json_is_string(action)) {
        req.error = "\"action\" must be a string";
        return req;
    }
    req.action.assign(json_string_value(action), json_string_length(action));
    if (req.action != "subscribe" && req.action != "unsubscribe" && req.action != "disconnect") {
        req.error = "\"action\" must be \"subscribe\", \"unsubscribe\" or \"disconnect\"";
        return req;
    }
    const json_t* user = json_object_get(root.get(), "user");
    if (!json_is_string(user) || json_string_length(user) == 0 ||
        json_string_length(user) > kMaxActionUser) {
        req.error = "\"user\" must be a string of 1 to 200 bytes";
        return req;
    }
    req.user.assign(json_string_value(user), json_string_length(user));

    JsonPtr out(json_object());
    if (!out) {
        throw std::bad_alloc();
    }
    json_object_set_new(out.get(), "action", json_string(req.action.c_str()));

    if (req.action == "disconnect") {
        const json_t* code = json_object_get(root.get(), "code");
        if (code) {
            if (!json_is_integer(code) ||
                (json_integer_value(code) != 1000 &&
                 (json_integer_value(code) < 4000 || json_integer_value(code) > 4999))) {
                req.error = "\"code\" must be 1000 or 4000-4999";
                return req;
            }
            req.code = static_cast<int>(json_integer_value(code));
        }
        const json_t* reason = json_object_get(root.get(), "reason");
        if (reason) {
            if (!json_is_string(reason) || json_string_length(reason) > kMaxCloseReason) {
                req.error = "\"reason\" must be a string of at most 123 bytes";
                return req;
            }
            req.reason.assign(json_string_value(reason), json_string_length(reason));
        }
        json_object_set_new(out.get(), "code", json_integer(req.code));
        json_object_set_new(out.get(), "reason",
                            json_stringn(req.reason.data(), req.reason.size()));
    } else {
        const json_t* group = json_object_get(root.get(), "group");
        if (!json_is_string(group) ||
            !is_valid_group_name(
                std::string_view(json_string_value(group), json_string_length(group)))) {
            req.error = "\"group\" must be a valid group name (1-100 of A-Z a-z 0-9 - _ . :)";
            return req;
        }
        req.group.assign(json_string_value(group), json_string_length(group));
        json_object_set_new(out.get(), "group", json_string(req.group.c_str()));
    }

    std::unique_ptr<char, FreeDeleter> text(json_dumps(out.get(), JSON_COMPACT));
    if (!text) {
        throw std::bad_alloc();
    }
    req.instruction = text.get();
    req.ok = true;
    return req;
}

RelayAnswer parse_relay_answer(std::string_view body) {
    RelayAnswer ans;
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        ans.ok = true;
        ans.publish.ok = true;
        return ans;
    }
    json_error_t err;
    JsonPtr root(json_loadb(body.data(), body.size(), 0, &err));
    if (!root || !json_is_object(root.get())) {
        ans.error = "the answer is not a JSON object";
        return ans;
    }
    const json_t* reply = json_object_get(root.get(), "reply");
    if (reply) {
        ans.has_reply = true;
        ans.reply = json_is_string(reply)
                        ? std::string(json_string_value(reply), json_string_length(reply))
                        : json_compact(reply);
    }
    const json_t* publish = json_object_get(root.get(), "publish");
    if (publish == nullptr || (json_is_array(publish) && json_array_size(publish) == 0)) {
        ans.publish.ok = true;
        ans.ok = true;
        return ans;
    }
    if (!json_is_array(publish) && !json_is_object(publish)) {
        ans.error = "\"publish\" must be an array of messages";
        return ans;
    }
    ans.publish = parse_publish_request(json_compact(publish));
    if (!ans.publish.ok) {
        ans.error = "\"publish\": " + ans.publish.error;
        return ans;
    }
    ans.ok = true;
    return ans;
}

std::string json_quote(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out.push_back('"');
    static const char kHex[] = "0123456789abcdef";
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
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
    out.push_back('"');
    return out;
}

}  // namespace realtime
