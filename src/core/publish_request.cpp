#include "publish_request.h"

#include <jansson.h>

#include <cstdlib>
#include <memory>
#include <new>

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

PublishRequest parse_publish_request(std::string_view body) {
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
