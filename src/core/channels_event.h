// What a browser receives for an event that Django sent to a group through its
// channel layer (channel_layer.group_send(group, {"type": ..., ...})).
//
// In Django Channels, "type" names the consumer's handler, which usually
// reshapes the event before self.send(); here a rule per type says how
// (realtime_channels_event), so the front-end receives what it did before.
#pragma once
#include <string>
#include <string_view>
#include <vector>
#include "msgpack.h"

namespace realtime::channels {

// One realtime_channels_event line: how events of one "type" are reshaped,
// in the order the fields are applied: keep (only these keys, "type" aside),
// rename (old:new, in the event's key order), drop, then type (rename the
// "type" value, or remove the key when new_type is empty), then value (send
// only that key's value, as JSON, instead of the object).
//
// Precisely, on the event's keys in their order (the channel layer's own,
// "__asgi*", are always gone first):
//  1. keep: when given, only the keys named (and "type") stay.
//  2. rename: each key named as an old name takes its new name, in place
//     (each key is renamed once, by its original name: rename=a:b,b:c
//     turns the event's a into b and its b into c); a key of the new name
//     that is not itself renamed is removed (the renamed value wins, at
//     its own place).
//  3. drop: keys named by their names after renaming are removed.
//  4. type: "type" takes the value NEW where it is ("type" first if it was
//     dropped or renamed away), or is removed for type=-.
//  5. value: the JSON of that key's value (name after renaming) is sent
//     instead of the object; the event without that key cannot be sent.
// So value= mixes with keep/rename/drop (names after renaming), and makes
// type= moot.
struct EventRule {
    std::string type;                                         // the event's "type"
    bool ignore = false;                                      // "off": not sent
    std::vector<std::string> keep;                            // empty: all
    std::vector<std::pair<std::string, std::string>> rename;  // old -> new
    std::vector<std::string> drop;
    bool set_type = false;                                    // type=NEW given
    std::string new_type;                                     // "" with set_type: no "type" key
    std::string value;                                        // value=KEY ("": the object)
};

// A directive argument list into a rule ("TYPE", "type=x", "keep=a,b",
// "rename=a:b,c:d", "drop=a", "value=k", or "TYPE off"). false with *error
// (for nginx -t) on anything else. May throw std::bad_alloc.
// args[0] is TYPE (not "websocket.send", which is always sent verbatim);
// each option at most once; names are non-empty valid UTF-8, comma
// separated, a rename exactly one ':' between two names; "type=-" removes
// the key; "off" stands alone after TYPE. A rule with no option sends the
// event as is (minus "__asgi*"), as no rule does.
bool parse_rule(const std::vector<std::string_view>& args, EventRule* out, std::string* error);

struct Outgoing {
    enum class Kind : uint8_t { kText, kBinary, kNone } kind = Kind::kNone;
    std::string payload;  // the frame's payload
};

// The frame for event (a kMap): "websocket.send" sends its "text" (a text
// frame) or "bytes" (a binary frame) verbatim; another type goes through its
// rule (the first whose type matches), or without one as the JSON of the
// event minus the channel layer's own keys ("__asgi_channel__", and any key
// starting with "__asgi"). false with *error when the event cannot be sent
// (not a map, no string "type", a value JSON cannot hold, text not UTF-8):
// the glue counts and logs it. kNone: a rule says off. May throw.
// websocket.send follows ASGI: exactly one of "text" (a str) and "bytes"
// (a bin) is present and not nil.
bool map_event(const msgpack::Value& event, const std::vector<EventRule>& rules, Outgoing* out,
               std::string* error);

// channels_redis' group name rule (Django Channels' valid_group_name):
// 1..99 bytes of ASCII letters, digits, '-', '_', '.'.
bool is_channels_group_name(std::string_view name) noexcept;

}  // namespace realtime::channels
