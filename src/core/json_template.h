// JSON text with variables, as nginx.conf writes it:
//
//   realtime_welcome '{"type":"connection_established","user_id":$jwt_claim_user_id}';
//
// A reference is $name or ${name} (nginx's script syntax). The template
// knows where each reference sits: inside a JSON string literal its value
// is JSON-escaped (so a quote in a claim cannot end the string), outside
// one the value is inserted as a JSON value when it is exactly one (a
// number stays a number, an object stays an object) and as a JSON string
// otherwise, and an empty value is null. So no value can change the shape
// of the document, and every rendering is valid JSON.
//
// Which names exist and what they hold is the caller's business: compile()
// asks resolve(name) for an index, render() asks value(index) for the text.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace realtime {

class JsonTemplate {
public:
    // Compiles text; false with *error (for nginx -t) when a name is
    // unknown (resolve returned -1) or the text is not one JSON value
    // whatever the variables hold.
    static bool compile(std::string_view text,
                        const std::function<int(std::string_view name)>& resolve,
                        JsonTemplate* out, std::string* error);

    // The text with every reference replaced (see above). May throw
    // std::bad_alloc.
    std::string render(const std::function<std::string_view(int index)>& value) const;

    // The indexes referenced, in order of appearance, each once.
    const std::vector<int>& variables() const noexcept { return variables_; }

    // A template without references renders to this constant text.
    bool constant() const noexcept { return variables_.empty(); }

    // Whether what it renders is a JSON object (checked at compile time).
    bool is_object() const noexcept { return is_object_; }

private:
    struct Segment {
        std::string literal;     // text before the reference
        int variable = -1;       // -1: none (the last segment)
        bool in_string = false;  // the reference is inside a string literal
    };

    std::vector<Segment> segments_;
    std::vector<int> variables_;
    bool is_object_ = false;
};

// The JSON escape of s without the surrounding quotes ("\n" for a newline,
// "\u0001" for control characters; other bytes as they are).
std::string json_escape(std::string_view s);

// s as the text of a JSON string, as render() treats a value inside a
// string literal: as it is when it is valid UTF-8 without NUL, else with
// every ill-formed sequence (and NUL) replaced by U+FFFD.
std::string json_string_text(std::string_view s);

// Whether s is exactly one JSON value (surrounding whitespace allowed).
bool is_json_value(std::string_view s);

}  // namespace realtime
