// Presence across nodes (realtime_redis): what one node tells the others
// of a user's presence in a group, and the snapshots a node reads when it
// starts following a group.
//
// A delta, PUBLISHed on the group's channel ("<prefix>:g:<group>", next to
// the messages, whose text starts with a digit) and kept as the value of
// the field "<node hex>\n<user>" of the group's hash "<prefix>:p:<group>":
//
//   "p1 <node, 8 hex> <+|-> <connections>\n"
//   "<user len> <info len> <join len> <leave len>\n" <user><info><join><leave>
//
// "+": the node holds the user in the group (connections 0: its leave is
// pending there); "-": not any more (connections 0, and the payloads may be
// empty). info is the user's JSON object text (or empty); join and leave
// are the events' JSON texts (WebSocket payloads, not frames). Numbers are
// decimal; lengths count bytes, so a user name may hold anything. "p" and
// the version digit come first: a receiver ignores another version.
//
// A snapshot, PUBLISHed by a Lua script on the asking node's own channel
// ("<prefix>:n:<node>"): the group's hash, as
//
//   "s1 <group len>\n" <group> then, per field, "<value len>\n" <value>
//
// Anything else is refused whole (nothing is read past the text).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace realtime {

struct PresenceWire {
    uint32_t node = 0;
    bool present = false;
    uint32_t connections = 0;
    std::string_view user;
    std::string_view info;
    std::string_view join;   // the join event's JSON text
    std::string_view leave;  // the leave event's
};

// May throw std::bad_alloc.
std::string encode_presence_delta(const PresenceWire& d);

// false: not a delta of this version (out is then unspecified).
bool parse_presence_delta(std::string_view text, PresenceWire* out) noexcept;

// The hash field of (node, user): "<node, 8 hex>\n<user>". May throw.
std::string presence_field(uint32_t node, std::string_view user);

// "<prefix>:p:<group>", "<prefix>:pg:<node, 8 hex>", "<prefix>:nodes". May throw.
std::string presence_hash_key(std::string_view prefix, std::string_view group);
std::string presence_groups_key(std::string_view prefix, uint32_t node);
std::string presence_nodes_key(std::string_view prefix);
std::string node_hex(uint32_t node);

// A snapshot's group, and its entries after it (rest).
bool parse_presence_snapshot(std::string_view text, std::string_view* group,
                             std::string_view* rest) noexcept;
// The next entry of rest (a delta's text), advancing it. false at the end
// (rest empty) or when rest is malformed (then *bad is set).
bool next_snapshot_entry(std::string_view* rest, std::string_view* entry, bool* bad) noexcept;

// A snapshot as the Lua script builds it (for the tests). May throw.
std::string encode_presence_snapshot(std::string_view group, const std::string* entries,
                                     size_t n);

// The payload of a server WebSocket frame (unmasked); empty if it is not
// one.
std::string_view ws_frame_payload(std::string_view frame) noexcept;

}  // namespace realtime
