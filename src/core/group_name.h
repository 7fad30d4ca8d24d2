// Group names: what a connection subscribes to and the app publishes to.
#pragma once

#include <cstddef>
#include <string_view>

namespace realtime {

constexpr size_t kMaxGroupName = 100;
constexpr size_t kMaxGroupsPerMessage = 256;

// ASCII letters, digits, '-', '_', '.' and ':', 1 to 100 bytes: Django
// Channels' rule plus ':' for namespaced names like "chat:lobby".
constexpr bool is_valid_group_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > kMaxGroupName) {
        return false;
    }
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == ':';
        if (!ok) {
            return false;
        }
    }
    return true;
}

// Whether group is allowed by pattern (realtime_allow_subscribe): equal to
// it, or, when pattern ends with '*', starting with what precedes the '*'
// (which must not be empty) and valid itself. Nothing else is special.
constexpr bool group_matches(std::string_view pattern, std::string_view group) noexcept {
    if (!is_valid_group_name(group)) {
        return false;
    }
    if (!pattern.empty() && pattern.back() == '*') {
        std::string_view prefix = pattern.substr(0, pattern.size() - 1);
        return !prefix.empty() && group.size() > prefix.size() &&
               group.substr(0, prefix.size()) == prefix;
    }
    return pattern == group;
}

}  // namespace realtime
