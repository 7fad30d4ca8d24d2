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
    std::string payload;  // the text frame's payload (valid UTF-8)
};

struct PublishRequest {
    bool ok = false;
    std::string error;  // when !ok: what is wrong, for {"error": ...}
    bool batch = false;
    std::vector<PublishItem> items;
};

PublishRequest parse_publish_request(std::string_view body);

// Serializes s as a JSON string literal (quotes included).
std::string json_quote(std::string_view s);

}  // namespace realtime
