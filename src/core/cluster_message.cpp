#include "cluster_message.h"

#include "group_name.h"

namespace realtime {

std::string encode_cluster_message(uint32_t node, bool is_string, std::string_view payload,
                                   bool is_control) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(14 + payload.size());
    out += "1 ";
    for (int shift = 28; shift >= 0; shift -= 4) {
        out += hex[(node >> shift) & 0xf];
    }
    out += is_control ? (is_string ? " cs\n" : " c\n") : is_string ? " s\n" : " -\n";
    out.append(payload.data(), payload.size());
    return out;
}

std::string cluster_message_head(uint32_t node, bool is_string) {
    std::string out = encode_cluster_message(node, is_string, std::string_view());
    out[0] = '2';
    out.back() = ' ';  // the id follows
    return out;
}

std::string cluster_message_tail(uint32_t history_size, uint32_t history_ttl) {
    return " " + std::to_string(history_size) + " " + std::to_string(history_ttl) + "\n";
}

namespace {

// A number of at most max_digits digits in base (10 or 16) at text[*i],
// followed by a space (skipped) or, when last, by '\n' (left).
bool parse_field(std::string_view text, size_t* i, unsigned base, size_t max_digits,
                 uint64_t* value, bool last) noexcept {
    uint64_t v = 0;
    size_t digits = 0;
    for (; *i < text.size(); ++*i, ++digits) {
        char c = text[*i];
        int d = c >= '0' && c <= '9'                ? c - '0'
                : base == 16 && c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                     : -1;
        if (d < 0) {
            break;
        }
        if (digits == max_digits) {
            return false;
        }
        v = v * base + static_cast<uint64_t>(d);
    }
    if (digits == 0 || *i == text.size() || text[*i] != (last ? '\n' : ' ')) {
        return false;
    }
    if (!last) {
        ++*i;
    }
    *value = v;
    return true;
}

}  // namespace

bool parse_cluster_message(std::string_view text, ClusterMessage* out) noexcept {
    if (text.size() < 6 || (text[0] != '1' && text[0] != '2') || text[1] != ' ') {
        return false;
    }
    const bool with_id = text[0] == '2';
    size_t i = 2;
    uint64_t node = 0;
    size_t digits = 0;
    for (; i < text.size() && text[i] != ' '; ++i, ++digits) {
        char c = text[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0 || digits == 8) {
            return false;
        }
        node = node << 4 | static_cast<uint64_t>(v);
    }
    if (digits == 0 || i == text.size()) {
        return false;
    }
    ++i;  // the space
    bool is_string = false;
    bool is_control = false;
    size_t flags = 0;
    for (; i < text.size() && text[i] != '\n' && !(with_id && text[i] == ' '); ++i, ++flags) {
        if (text[i] == 's') {
            is_string = true;
        } else if (text[i] == 'c') {
            is_control = true;
        } else if (text[i] != '-') {
            return false;  // a flag this version does not know
        }
    }
    if (flags == 0 || i == text.size()) {
        return false;
    }
    ClusterMessage m;
    if (with_id) {
        if (text[i] != ' ') {
            return false;
        }
        ++i;
        uint64_t size = 0, ttl = 0;
        if (!parse_field(text, &i, 16, 16, &m.epoch, false) ||
            !parse_field(text, &i, 10, 19, &m.seq, false) ||
            !parse_field(text, &i, 10, 10, &size, false) ||
            !parse_field(text, &i, 10, 10, &ttl, true) || m.epoch == 0 || m.seq == 0 ||
            size > UINT32_MAX || ttl > UINT32_MAX) {
            return false;
        }
        m.history_size = static_cast<uint32_t>(size);
        m.history_ttl = static_cast<uint32_t>(ttl);
    }
    m.node = static_cast<uint32_t>(node);
    m.is_string = is_string;
    m.is_control = is_control;
    m.payload = text.substr(i + 1);
    *out = m;
    return true;
}

bool is_shared_group(std::string_view group) noexcept {
    constexpr std::string_view kUser = "~user:";
    if (group.size() > kUser.size() && group.substr(0, kUser.size()) == kUser) {
        return group.size() <= 255;  // what a message can name
    }
    return is_valid_group_name(group);
}

std::string cluster_channel(std::string_view prefix, std::string_view group) {
    std::string out;
    out.reserve(prefix.size() + 3 + group.size());
    out.append(prefix.data(), prefix.size());
    out += ":g:";
    out.append(group.data(), group.size());
    return out;
}

bool cluster_channel_group(std::string_view prefix, std::string_view channel,
                           std::string_view* group) noexcept {
    if (channel.size() <= prefix.size() + 3 || channel.substr(0, prefix.size()) != prefix
        || channel.substr(prefix.size(), 3) != ":g:") {
        return false;
    }
    *group = channel.substr(prefix.size() + 3);
    return true;
}

}  // namespace realtime
