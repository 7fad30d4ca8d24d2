#include "channels_event.h"

#include <algorithm>
#include <utility>

#include "publish_request.h"
#include "utf8.h"

namespace realtime::channels {

using msgpack::Value;

namespace {

bool fail(std::string* error, std::string reason) {
    if (error) {
        *error = std::move(reason);
    }
    return false;
}

// ---------------------------------------------------------------------------
// parse_rule

// "a,b,c" into names; each non-empty and valid UTF-8 (it becomes a JSON key).
bool split_names(std::string_view list, std::string_view option, std::vector<std::string>* out,
                 std::string* error) {
    size_t start = 0;
    for (;;) {
        size_t comma = list.find(',', start);
        std::string_view name = list.substr(start, comma == std::string_view::npos
                                                       ? std::string_view::npos
                                                       : comma - start);
        if (name.empty()) {
            return fail(error, "empty name in \"" + std::string(option) + "\"");
        }
        if (!is_valid_utf8(name)) {
            return fail(error, "a name in \"" + std::string(option) + "\" is not valid UTF-8");
        }
        out->emplace_back(name);
        if (comma == std::string_view::npos) {
            return true;
        }
        start = comma + 1;
    }
}

bool parse_rename(std::string_view list, std::string_view option, EventRule* rule,
                  std::string* error) {
    std::vector<std::string> pairs;
    if (!split_names(list, option, &pairs, error)) {
        return false;
    }
    for (const std::string& pair : pairs) {
        size_t colon = pair.find(':');
        if (colon == std::string::npos || colon == 0 || colon + 1 == pair.size() ||
            pair.find(':', colon + 1) != std::string::npos) {
            return fail(error, "\"" + pair + "\" in \"" + std::string(option) +
                                   "\" is not old:new");
        }
        std::string old_name = pair.substr(0, colon);
        for (const auto& [seen, unused] : rule->rename) {
            if (seen == old_name) {
                return fail(error, "\"" + old_name + "\" is renamed twice in \"" +
                                       std::string(option) + "\"");
            }
        }
        rule->rename.emplace_back(std::move(old_name), pair.substr(colon + 1));
    }
    return true;
}

// One "name=..." option; *seen guards against giving it twice.
bool parse_option(std::string_view arg, EventRule* rule, std::string* seen, std::string* error) {
    size_t eq = arg.find('=');
    if (eq == std::string_view::npos) {
        return fail(error, "unknown option \"" + std::string(arg) + "\"");
    }
    std::string_view name = arg.substr(0, eq);
    std::string_view v = arg.substr(eq + 1);
    // one letter per option already given (k, r, d, t, v)
    char letter = name == "keep"     ? 'k'
                  : name == "rename" ? 'r'
                  : name == "drop"   ? 'd'
                  : name == "type"   ? 't'
                  : name == "value"  ? 'v'
                                     : 0;
    if (!letter) {
        return fail(error, "unknown option \"" + std::string(arg) + "\"");
    }
    if (seen->find(letter) != std::string::npos) {
        return fail(error, "\"" + std::string(name) + "=\" given twice");
    }
    seen->push_back(letter);
    switch (letter) {
    case 'k': return split_names(v, arg, &rule->keep, error);
    case 'r': return parse_rename(v, arg, rule, error);
    case 'd': return split_names(v, arg, &rule->drop, error);
    default: break;
    }
    if (v.empty()) {
        return fail(error, "empty name in \"" + std::string(arg) + "\"");
    }
    if (!is_valid_utf8(v)) {
        return fail(error, "\"" + std::string(name) + "=\" is not valid UTF-8");
    }
    if (letter == 'v') {
        rule->value = std::string(v);
        return true;
    }
    rule->set_type = true;
    rule->new_type = v == "-" ? std::string() : std::string(v);
    return true;
}

// ---------------------------------------------------------------------------
// map_event

bool is_layer_key(std::string_view key) { return key.substr(0, 6) == "__asgi"; }

bool contains(const std::vector<std::string>& names, std::string_view name) {
    return std::find(names.begin(), names.end(), name) != names.end();
}

// One key of the object being reshaped: its (maybe new) name and value;
// value nullptr: the "type" that type=NEW sets (rule->new_type).
struct Member {
    std::string_view name;
    const Value* value = nullptr;
    bool renamed = false;
};

bool websocket_send(const Value& event, Outgoing* out, std::string* error) {
    const Value* text = event.find("text");
    const Value* bytes = event.find("bytes");
    bool has_text = text && text->type != Value::Type::kNil;
    bool has_bytes = bytes && bytes->type != Value::Type::kNil;
    if (has_text == has_bytes) {
        return fail(error, "websocket.send needs exactly one of \"text\" and \"bytes\"");
    }
    if (has_text) {
        if (text->type != Value::Type::kStr) {
            return fail(error, "websocket.send: \"text\" is not a string");
        }
        if (!is_valid_utf8(text->bytes)) {
            return fail(error, "websocket.send: \"text\" is not valid UTF-8");
        }
        out->kind = Outgoing::Kind::kText;
        out->payload.assign(text->bytes);
        return true;
    }
    if (bytes->type != Value::Type::kBin) {
        return fail(error, "websocket.send: \"bytes\" is not bytes");
    }
    out->kind = Outgoing::Kind::kBinary;
    out->payload.assign(bytes->bytes);
    return true;
}

// The event's keys in order, minus the channel layer's; keys must be strings
// (JSON object keys).
bool members_of(const Value& event, std::vector<Member>* members, std::string* error) {
    for (size_t i = 0; i + 1 < event.items.size(); i += 2) {
        const Value& key = event.items[i];
        if (key.type != Value::Type::kStr) {
            return fail(error, "an event key is not a string");
        }
        if (!is_layer_key(key.bytes)) {
            members->push_back(Member{key.bytes, &event.items[i + 1]});
        }
    }
    return true;
}

void apply_keep(const EventRule& rule, std::vector<Member>* m) {
    if (rule.keep.empty()) {
        return;
    }
    m->erase(std::remove_if(m->begin(), m->end(),
                            [&](const Member& x) {
                                return x.name != "type" && !contains(rule.keep, x.name);
                            }),
             m->end());
}

void apply_rename(const EventRule& rule, std::vector<Member>* m) {
    for (Member& x : *m) {
        for (const auto& [old_name, new_name] : rule.rename) {
            if (x.name == old_name) {
                x.name = new_name;
                x.renamed = true;
                break;
            }
        }
    }
    // a key that a renamed one now names is overwritten by it
    m->erase(std::remove_if(m->begin(), m->end(),
                            [&](const Member& x) {
                                return !x.renamed &&
                                       std::any_of(m->begin(), m->end(), [&](const Member& y) {
                                           return y.renamed && y.name == x.name;
                                       });
                            }),
             m->end());
}

void apply_drop(const EventRule& rule, std::vector<Member>* m) {
    m->erase(std::remove_if(m->begin(), m->end(),
                            [&](const Member& x) { return contains(rule.drop, x.name); }),
             m->end());
}

// type=NEW: a member without a value (written from rule.new_type).
void apply_type(const EventRule& rule, std::vector<Member>* m) {
    if (!rule.set_type) {
        return;
    }
    auto it = std::find_if(m->begin(), m->end(), [](const Member& x) { return x.name == "type"; });
    if (rule.new_type.empty()) {
        if (it != m->end()) {
            m->erase(it);
        }
        return;
    }
    if (it == m->end()) {
        it = m->insert(m->begin(), Member{"type", nullptr});
    }
    it->value = nullptr;
}

bool object_json(const EventRule* rule, const std::vector<Member>& members, std::string* out,
                 std::string* error) {
    std::string text = "{";
    std::string member_json;
    for (const Member& x : members) {
        if (text.size() > 1) {
            text.push_back(',');
        }
        text += json_quote(x.name);  // UTF-8 checked: an event key or a rule's name
        text.push_back(':');
        if (!x.value) {
            text += json_quote(rule->new_type);
            continue;
        }
        if (!msgpack::to_json(*x.value, &member_json, error)) {
            return false;
        }
        text += member_json;
    }
    text.push_back('}');
    *out = std::move(text);
    return true;
}

bool reshape(const EventRule* rule, const Value& event, Outgoing* out, std::string* error) {
    std::vector<Member> members;
    if (!members_of(event, &members, error)) {
        return false;
    }
    for (const Member& x : members) {
        if (!is_valid_utf8(x.name)) {
            return fail(error, "an event key is not valid UTF-8");
        }
    }
    if (rule) {
        apply_keep(*rule, &members);
        apply_rename(*rule, &members);
        apply_drop(*rule, &members);
        apply_type(*rule, &members);
    }
    if (rule && !rule->value.empty()) {
        auto it = std::find_if(members.begin(), members.end(),
                               [&](const Member& x) { return x.name == rule->value; });
        if (it == members.end()) {
            return fail(error, "the event has no \"" + rule->value + "\" for value=");
        }
        if (!it->value) {  // value=type after type=NEW
            out->payload = json_quote(rule->new_type);
        } else if (!msgpack::to_json(*it->value, &out->payload, error)) {
            return false;
        }
    } else if (!object_json(rule, members, &out->payload, error)) {
        return false;
    }
    out->kind = Outgoing::Kind::kText;
    return true;
}

}  // namespace

bool parse_rule(const std::vector<std::string_view>& args, EventRule* out, std::string* error) {
    if (args.empty() || args[0].empty()) {
        return fail(error, "an event type is needed");
    }
    if (!is_valid_utf8(args[0])) {
        return fail(error, "the event type is not valid UTF-8");
    }
    if (args[0] == "websocket.send") {
        return fail(error, "websocket.send is always sent as it is (its text or bytes)");
    }
    EventRule rule;
    rule.type = std::string(args[0]);
    if (args.size() >= 2 && args[1] == "off") {
        if (args.size() > 2) {
            return fail(error, "\"off\" takes no other option");
        }
        rule.ignore = true;
        *out = std::move(rule);
        return true;
    }
    std::string seen;
    for (size_t i = 1; i < args.size(); ++i) {
        if (args[i] == "off") {
            return fail(error, "\"off\" takes no other option");
        }
        if (!parse_option(args[i], &rule, &seen, error)) {
            return false;
        }
    }
    *out = std::move(rule);
    return true;
}

bool map_event(const Value& event, const std::vector<EventRule>& rules, Outgoing* out,
               std::string* error) {
    *out = Outgoing();
    if (event.type != Value::Type::kMap) {
        return fail(error, "the event is not a map");
    }
    const Value* type = event.find("type");
    if (!type) {
        return fail(error, "the event has no \"type\"");
    }
    if (type->type != Value::Type::kStr) {
        return fail(error, "the event's \"type\" is not a string");
    }
    if (type->bytes == "websocket.send") {
        return websocket_send(event, out, error);
    }
    const EventRule* rule = nullptr;
    for (const EventRule& r : rules) {
        if (r.type == type->bytes) {
            rule = &r;
            break;
        }
    }
    if (rule && rule->ignore) {
        return true;  // kNone
    }
    return reshape(rule, event, out, error);
}

bool is_channels_group_name(std::string_view name) noexcept {
    if (name.empty() || name.size() >= 100) {
        return false;
    }
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok) {
            return false;
        }
    }
    return true;
}

}  // namespace realtime::channels
