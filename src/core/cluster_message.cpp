#include "cluster_message.h"

namespace realtime {

std::string encode_cluster_message(uint32_t node, bool is_string, std::string_view payload) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(14 + payload.size());
    out += "1 ";
    for (int shift = 28; shift >= 0; shift -= 4) {
        out += hex[(node >> shift) & 0xf];
    }
    out += is_string ? " s\n" : " -\n";
    out.append(payload.data(), payload.size());
    return out;
}

bool parse_cluster_message(std::string_view text, ClusterMessage* out) noexcept {
    if (text.size() < 6 || text[0] != '1' || text[1] != ' ') {
        return false;
    }
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
    size_t flags = 0;
    for (; i < text.size() && text[i] != '\n'; ++i, ++flags) {
        if (text[i] == 's') {
            is_string = true;
        } else if (text[i] != '-') {
            return false;  // a flag this version does not know
        }
    }
    if (flags == 0 || i == text.size()) {
        return false;
    }
    out->node = static_cast<uint32_t>(node);
    out->is_string = is_string;
    out->payload = text.substr(i + 1);
    return true;
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
