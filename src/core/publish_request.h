// The publish API's request body: what the app POSTs, checked in full
// before anything is published, so a bad request publishes nothing.
//
//   {"group": "g", "data": <any JSON>}
//   {"groups": ["a", "b"], "data": ...}
//   [ {...}, {...} ]                      a batch, published in order
//
// What subscribers receive is the compact JSON of data, or, when data is a
// JSON string, that string's contents verbatim.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace realtime {

struct PublishItem {
    std::vector<std::string> groups;
    std::string payload;     // the text frame's payload (valid UTF-8)
    bool is_string = false;  // data was a JSON string: payload is its text
    bool is_control = false; // (made by the glue, never parsed) payload is
                             // an action's instruction, not a message
};

struct PublishRequest {
    bool ok = false;
    std::string error;  // when !ok: what is wrong, for {"error": ...}
    bool batch = false;
    std::vector<PublishItem> items;
};

PublishRequest parse_publish_request(std::string_view body);

// The two ways parse_publish_request() reads a body (the publish handler
// tries the fast one before it looks for an action), and for tests.
//
// The fast path reads one object {"group"|"groups", "data"} (keys in any
// order) in a single pass without building a DOM. It returns true, with req
// set, only for a valid body whose result it is sure is exactly the DOM
// path's; otherwise (an error of any kind, another key, a batch, a number
// jansson would reformat, deep nesting, ...) false, with req untouched,
// and the DOM path (jansson) runs.
bool parse_publish_request_fast(std::string_view body, PublishRequest& req);
PublishRequest parse_publish_request_dom(std::string_view body);

// An action on every connection of one user (the app's logout, ban, or
// room membership decided server-side), POSTed to the publish location:
//
//   {"action": "subscribe" | "unsubscribe", "user": U, "group": G}
//   {"action": "disconnect", "user": U, "code": 1000 | 4000-4999, "reason": R}
//
// is_action says whether the body is one at all (an object with "action");
// then ok/error say whether it is valid, and instruction is what each of
// the user's connections is told (compact JSON without "user").
struct ActionRequest {
    bool is_action = false;
    bool ok = false;
    std::string error;
    std::string action;
    std::string user;
    std::string group;
    int code = 1000;
    std::string reason;
    std::string instruction;
};

ActionRequest parse_action_request(std::string_view body);

// The app's answer to a relayed client message (realtime_relay):
//
//   (empty)                                     nothing to do
//   {"reply": <any>, "publish": [<message>, ...]}
//
// reply goes to the connection that sent the message: a JSON string as its
// text, anything else as compact JSON. publish holds messages in the
// publish API's shapes, checked in full (all or nothing). Any other body is
// refused with error set.
struct RelayAnswer {
    bool ok = false;
    std::string error;
    bool has_reply = false;
    std::string reply;
    PublishRequest publish;  // publish.items empty: nothing to publish
};

RelayAnswer parse_relay_answer(std::string_view body);

// The longest user an action may name and the longest close reason (a
// close frame's payload is at most 125 bytes, 2 of them the code).
constexpr size_t kMaxActionUser = 200;
constexpr size_t kMaxCloseReason = 123;

// Serializes s as a JSON string literal (quotes included).
std::string json_quote(std::string_view s);

}  // namespace realtime
