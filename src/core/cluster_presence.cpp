#include "cluster_presence.h"

namespace realtime {

namespace {

const char kHex[] = "0123456789abcdef";

// A decimal number up to max, then sep; advances text.
bool read_number(std::string_view* text, char sep, uint64_t max, uint64_t* out) noexcept {
    size_t i = 0;
    uint64_t v = 0;
    while (i < text->size() && (*text)[i] >= '0' && (*text)[i] <= '9') {
        v = v * 10 + static_cast<uint64_t>((*text)[i] - '0');
        if (v > max || i >= 19) {
            return false;
        }
        ++i;
    }
    if (i == 0 || i >= text->size() || (*text)[i] != sep) {
        return false;
    }
    *out = v;
    text->remove_prefix(i + 1);
    return true;
}

bool read_hex8(std::string_view* text, uint32_t* out) noexcept {
    if (text->size() < 9 || (*text)[8] != ' ') {
        return false;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < 8; ++i) {
        char c = (*text)[i];
        uint32_t d;
        if (c >= '0' && c <= '9') {
            d = static_cast<uint32_t>(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = static_cast<uint32_t>(c - 'a' + 10);
        } else {
            return false;
        }
        v = v << 4 | d;
    }
    *out = v;
    text->remove_prefix(9);
    return true;
}

}  // namespace

std::string node_hex(uint32_t node) {
    std::string s(8, '0');
    for (int i = 7; i >= 0; --i) {
        s[static_cast<size_t>(i)] = kHex[node & 15];
        node >>= 4;
    }
    return s;
}

std::string encode_presence_delta(const PresenceWire& d) {
    std::string s = "p1 " + node_hex(d.node) + (d.present ? " + " : " - ") +
                    std::to_string(d.connections) + "\n" + std::to_string(d.user.size()) + " " +
                    std::to_string(d.info.size()) + " " + std::to_string(d.join.size()) + " " +
                    std::to_string(d.leave.size()) + "\n";
    s.reserve(s.size() + d.user.size() + d.info.size() + d.join.size() + d.leave.size());
    s.append(d.user).append(d.info).append(d.join).append(d.leave);
    return s;
}

bool parse_presence_delta(std::string_view text, PresenceWire* out) noexcept {
    if (text.substr(0, 3) != "p1 ") {
        return false;
    }
    text.remove_prefix(3);
    if (!read_hex8(&text, &out->node) || text.size() < 2 ||
        (text[0] != '+' && text[0] != '-') || text[1] != ' ') {
        return false;
    }
    out->present = text[0] == '+';
    text.remove_prefix(2);
    uint64_t conns, lens[4];
    if (!read_number(&text, '\n', UINT32_MAX, &conns) ||
        !read_number(&text, ' ', text.size(), &lens[0]) ||
        !read_number(&text, ' ', text.size(), &lens[1]) ||
        !read_number(&text, ' ', text.size(), &lens[2]) ||
        !read_number(&text, '\n', text.size(), &lens[3])) {
        return false;
    }
    uint64_t total = lens[0] + lens[1] + lens[2] + lens[3];
    if (total != text.size()) {
        return false;
    }
    out->connections = static_cast<uint32_t>(conns);
    out->user = text.substr(0, lens[0]);
    out->info = text.substr(lens[0], lens[1]);
    out->join = text.substr(lens[0] + lens[1], lens[2]);
    out->leave = text.substr(lens[0] + lens[1] + lens[2], lens[3]);
    return !out->user.empty();
}

std::string presence_field(uint32_t node, std::string_view user) {
    std::string s = node_hex(node);
    s += '\n';
    s.append(user);
    return s;
}

std::string presence_hash_key(std::string_view prefix, std::string_view group) {
    std::string s(prefix);
    s += ":p:";
    s.append(group);
    return s;
}

std::string presence_groups_key(std::string_view prefix, uint32_t node) {
    std::string s(prefix);
    s += ":pg:";
    s += node_hex(node);
    return s;
}

std::string presence_nodes_key(std::string_view prefix) {
    std::string s(prefix);
    s += ":nodes";
    return s;
}

bool parse_presence_snapshot(std::string_view text, std::string_view* group,
                             std::string_view* rest) noexcept {
    if (text.substr(0, 3) != "s1 ") {
        return false;
    }
    text.remove_prefix(3);
    uint64_t len;
    if (!read_number(&text, '\n', text.size(), &len) || len > text.size() || len == 0) {
        return false;
    }
    *group = text.substr(0, len);
    *rest = text.substr(len);
    return true;
}

bool next_snapshot_entry(std::string_view* rest, std::string_view* entry, bool* bad) noexcept {
    *bad = false;
    if (rest->empty()) {
        return false;
    }
    uint64_t len;
    std::string_view t = *rest;
    if (!read_number(&t, '\n', t.size(), &len) || len > t.size()) {
        *bad = true;
        return false;
    }
    *entry = t.substr(0, len);
    *rest = t.substr(len);
    return true;
}

std::string encode_presence_snapshot(std::string_view group, const std::string* entries,
                                     size_t n) {
    std::string s = "s1 " + std::to_string(group.size()) + "\n";
    s.append(group);
    for (size_t i = 0; i < n; ++i) {
        s += std::to_string(entries[i].size());
        s += '\n';
        s += entries[i];
    }
    return s;
}

std::string_view ws_frame_payload(std::string_view frame) noexcept {
    if (frame.size() < 2 || (static_cast<uint8_t>(frame[1]) & 0x80)) {
        return {};
    }
    uint8_t len7 = static_cast<uint8_t>(frame[1]) & 0x7f;
    size_t header = len7 < 126 ? 2 : len7 == 126 ? 4 : 10;
    if (frame.size() < header) {
        return {};
    }
    return frame.substr(header);
}

}  // namespace realtime
