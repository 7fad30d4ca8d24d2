// What one node sends the others through Redis: a message published on
// the channel of one group ("<prefix>:g:<group>"), as a one-line header
// and the payload's text:
//
//   "1 <node id, hex> <flags>\n" <payload>
//
// The version digit comes first so the format can change; flags is "-"
// or letters: s = the payload is a JSON string's text (not a JSON value);
// c = the payload is an instruction for the group's connections (an action
// by user, to "~user:USER"), not a message to send them.
// The node id lets a node drop its own messages (delivered here already).
// Anything else is refused whole: the receiver counts and drops it.
//
// Version 2 adds the message's id in the group (numbered in Redis, so the
// same on every node) and the history its publisher keeps, so every node
// keeps it alike:
//
//   "2 <node> <flags> <epoch, hex> <seq> <history size> <history ttl ms>\n"
//
// (written by the publish script in Redis, which alone knows the id).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace realtime {

struct ClusterMessage {
    uint32_t node = 0;
    bool is_string = false;
    bool is_control = false;
    uint64_t epoch = 0;  // version 2: the id; 0 in version 1
    uint64_t seq = 0;
    uint32_t history_size = 0;
    uint32_t history_ttl = 0;  // ms
    std::string_view payload;  // into the parsed text
};

// The header of a version 2 message up to its id, and after it: the
// publish script puts "<epoch> <seq>" between them. May throw.
std::string cluster_message_head(uint32_t node, bool is_string);
std::string cluster_message_tail(uint32_t history_size, uint32_t history_ttl);

// May throw std::bad_alloc.
std::string encode_cluster_message(uint32_t node, bool is_string, std::string_view payload,
                                   bool is_control = false);

// false: not a message of this format (nothing is read past text).
bool parse_cluster_message(std::string_view text, ClusterMessage* out) noexcept;

// Whether a group's messages go to the other nodes: a valid group name,
// or a user's internal group "~user:USER" (actions by user).
bool is_shared_group(std::string_view group) noexcept;

// "<prefix>:g:<group>"; May throw std::bad_alloc.
std::string cluster_channel(std::string_view prefix, std::string_view group);

// The group of a channel named by cluster_channel(prefix, ...); false when
// channel is not one (another prefix, or another kind of channel).
bool cluster_channel_group(std::string_view prefix, std::string_view channel,
                           std::string_view* group) noexcept;

}  // namespace realtime
