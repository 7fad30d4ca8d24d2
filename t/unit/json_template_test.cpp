// JsonTemplate, json_escape and is_json_value: where references sit (in a
// string or not), escaping, values inserted raw or quoted, compile errors,
// and a fuzz check that every rendering is JSON jansson accepts and that a
// value never changes the document's shape.
#include <gtest/gtest.h>
#include <jansson.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/json_template.h"
#include "core/utf8.h"
#include "test_util.h"

namespace realtime {
namespace {

using namespace std::string_view_literals;
using test::Bytes;

struct JsonDecref {
    void operator()(json_t* j) const noexcept { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDecref>;

JsonPtr Parse(std::string_view s) {
    json_error_t err;
    return JsonPtr(json_loadb(s.data(), s.size(), JSON_DECODE_ANY, &err));
}

// Variables a, b, c, user_id, name, x, "a b" (for ${a b}), "a.b"
// with indexes 0..; anything else is unknown.
const std::vector<std::string> kNames = {"a", "b", "c", "user_id", "name", "x", "a b", "a.b"};

int Resolve(std::string_view name) {
    for (size_t i = 0; i < kNames.size(); ++i) {
        if (kNames[i] == name) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

JsonTemplate Compile(std::string_view text) {
    JsonTemplate t;
    std::string error;
    EXPECT_TRUE(JsonTemplate::compile(text, Resolve, &t, &error)) << text << ": " << error;
    return t;
}

std::string CompileError(std::string_view text) {
    JsonTemplate t;
    std::string error;
    EXPECT_FALSE(JsonTemplate::compile(text, Resolve, &t, &error)) << text;
    EXPECT_FALSE(error.empty()) << text;
    return error;
}

// Renders with values by name; names not given are empty.
std::string Render(const JsonTemplate& t, const std::map<std::string, std::string>& values) {
    return t.render([&](int index) -> std::string_view {
        auto it = values.find(kNames.at(static_cast<size_t>(index)));
        return it == values.end() ? std::string_view() : std::string_view(it->second);
    });
}

std::string Render(std::string_view text, const std::map<std::string, std::string>& values) {
    return Render(Compile(text), values);
}

// The string value of key in the object s.
std::string StringAt(const std::string& s, const char* key) {
    JsonPtr root = Parse(s);
    EXPECT_TRUE(root) << s;
    if (!root) {
        return "<invalid>";
    }
    json_t* v = json_object_get(root.get(), key);
    EXPECT_TRUE(json_is_string(v)) << s;
    if (!json_is_string(v)) {
        return "<not a string>";
    }
    return std::string(json_string_value(v), json_string_length(v));
}

// value with each NUL byte as U+FFFD, as render() puts it
std::string NulReplaced(std::string_view value) {
    std::string out;
    for (char c : value) {
        if (c == '\0') {
            out += "\xEF\xBF\xBD";
        } else {
            out.push_back(c);
        }
    }
    return out;
}

// ---------------------------------------------------------------------------
// json_escape

TEST(JsonEscape, PlainTextUnchanged) {
    EXPECT_EQ(json_escape(""), "");
    EXPECT_EQ(json_escape("hello world"), "hello world");
    EXPECT_EQ(json_escape("<script>&amp;</script>'/"), "<script>&amp;</script>'/");
    EXPECT_EQ(json_escape("caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80"),
              "caf\xC3\xA9 \xE2\x9C\x93 \xF0\x9F\x98\x80");
    EXPECT_EQ(json_escape("\x7f"), "\x7f");
    EXPECT_EQ(json_escape("\xE2\x80\xA8"), "\xE2\x80\xA8");  // U+2028 is fine in JSON
}

TEST(JsonEscape, QuotesAndBackslashes) {
    EXPECT_EQ(json_escape("\""), "\\\"");
    EXPECT_EQ(json_escape("\\"), "\\\\");
    EXPECT_EQ(json_escape("a\"b\\c"), "a\\\"b\\\\c");
    EXPECT_EQ(json_escape("\\\""), "\\\\\\\"");
    EXPECT_EQ(json_escape("\\u0041"), "\\\\u0041");  // not decoded, kept as text
}

TEST(JsonEscape, ShortControlEscapes) {
    EXPECT_EQ(json_escape("\n"), "\\n");
    EXPECT_EQ(json_escape("\r"), "\\r");
    EXPECT_EQ(json_escape("\t"), "\\t");
    EXPECT_EQ(json_escape("\b"), "\\b");
    EXPECT_EQ(json_escape("\f"), "\\f");
    EXPECT_EQ(json_escape("a\r\nb"), "a\\r\\nb");
}

TEST(JsonEscape, OtherControlsAsU00XX) {
    EXPECT_EQ(json_escape("\0"sv), "\\u0000");
    EXPECT_EQ(json_escape("\x01"), "\\u0001");
    EXPECT_EQ(json_escape("\x0b"), "\\u000b");
    EXPECT_EQ(json_escape("\x1f"), "\\u001f");
    EXPECT_EQ(json_escape("\x1b[0m"), "\\u001b[0m");
}

TEST(JsonEscape, EveryByteValue) {
    for (int c = 0; c < 256; ++c) {
        std::string in(1, static_cast<char>(c));
        std::string out = json_escape(in);
        if (c == '"' || c == '\\') {
            EXPECT_EQ(out, "\\" + in) << c;
        } else if (c < 0x20) {
            EXPECT_EQ(out[0], '\\') << c;
            EXPECT_TRUE(out.size() == 2 || out.size() == 6) << c;
        } else {
            EXPECT_EQ(out, in) << c;
        }
        if (c < 0x80) {
            // ASCII: the quoted escape reads back as the byte (\u0000 aside,
            // which jansson refuses without JSON_ALLOW_NUL).
            json_error_t err;
            std::string doc = "\"" + out + "\"";
            JsonPtr v(json_loadb(doc.data(), doc.size(), JSON_DECODE_ANY | JSON_ALLOW_NUL, &err));
            ASSERT_TRUE(v) << c << ": " << err.text;
            EXPECT_EQ(std::string(json_string_value(v.get()), json_string_length(v.get())), in);
        }
    }
}

// ---------------------------------------------------------------------------
// is_json_value

TEST(IsJsonValue, Values) {
    for (std::string_view s :
         {"0"sv, "-0"sv, "42"sv, "-17"sv, "3.25"sv, "1e10"sv, "-1.5E-3"sv, "true"sv, "false"sv,
          "null"sv, "\"\""sv, "\"text\""sv, "\"a\\\"b\""sv, "\"\\u00e9\""sv, "[]"sv, "{}"sv,
          "[1,2,[3]]"sv, "{\"a\":{\"b\":[null]}}"sv, " 1 "sv, "\n\t{}\r\n"sv,
          "\"caf\xC3\xA9\""sv, "\"\\ud83d\\ude00\""sv}) {
        EXPECT_TRUE(is_json_value(s)) << s;
    }
}

TEST(IsJsonValue, NotValues) {
    for (std::string_view s :
         {""sv, " "sv, "\t\n"sv, "abc"sv, "01"sv, "+1"sv, ".5"sv, "1."sv, "0x10"sv, "NaN"sv,
          "Infinity"sv, "True"sv, "nul"sv, "'a'"sv, "\"a"sv, "a\""sv, "[1,]"sv, "{\"a\":1,}"sv,
          "{a:1}"sv, "1 2"sv, "1, 2"sv, "1, \"admin\": true"sv, "{} {}"sv, "[] x"sv,
          "\"a\" \"b\""sv,
          "1 // c"sv, "\"\\x41\""sv, "\"\\ud800\""sv, "\"\\u0000\""sv, "\"a\nb\""sv,
          "\"\xFF\""sv, "\"\xC3\""sv, "1\0"sv, "\0"sv, "1\0garbage"sv, "{}\0 {}"sv, "\v1"sv,
          "123456789012345678901234567890"sv,  // more than jansson holds
          "1e999"sv}) {
        EXPECT_FALSE(is_json_value(s)) << test::Hex(s);
    }
}

// ---------------------------------------------------------------------------
// Compiling

TEST(JsonTemplateCompile, ConstantTemplates) {
    JsonTemplate t = Compile(R"({"type":"hello"})");
    EXPECT_TRUE(t.constant());
    EXPECT_TRUE(t.variables().empty());
    EXPECT_TRUE(t.is_object());
    EXPECT_EQ(Render(t, {}), R"({"type":"hello"})");

    EXPECT_FALSE(Compile("[1,2]").is_object());
    EXPECT_FALSE(Compile("\"s\"").is_object());
    EXPECT_FALSE(Compile("42").is_object());
    EXPECT_TRUE(Compile("  {}  ").is_object());
    EXPECT_EQ(Render(Compile(" { } "), {}), " { } ");  // text kept as written
}

TEST(JsonTemplateCompile, IsObject) {
    EXPECT_TRUE(Compile(R"({"id":$user_id})").is_object());
    EXPECT_TRUE(Compile(R"({"n":"$name"})").is_object());
    EXPECT_FALSE(Compile(R"([$a])").is_object());
    EXPECT_FALSE(Compile(R"("$a")").is_object());
    // A bare reference may render an object or not: not known to be one.
    EXPECT_FALSE(Compile("$a").is_object());
}

TEST(JsonTemplateCompile, VariablesInOrderOfFirstAppearanceOnce) {
    JsonTemplate t = Compile(R"({"x":"$c $a","y":$b,"z":"$c","w":[$a,${b},$c]})");
    EXPECT_FALSE(t.constant());
    EXPECT_EQ(t.variables(), (std::vector<int>{2, 0, 1}));
    EXPECT_EQ(Compile(R"(["$x$x$x"])").variables(), std::vector<int>{5});
}

TEST(JsonTemplateCompile, UnknownVariable) {
    EXPECT_EQ(CompileError(R"({"a":$foo})"), "unknown variable \"$foo\"");
    EXPECT_EQ(CompileError(R"({"a":"${foo}"})"), "unknown variable \"$foo\"");
    // the first unknown one, names are case-sensitive
    EXPECT_EQ(CompileError(R"({"a":$A,"b":$B})"), "unknown variable \"$A\"");
    // $ab is one name, not $a followed by b
    EXPECT_EQ(CompileError(R"({"a":"$ab"})"), "unknown variable \"$ab\"");
}

TEST(JsonTemplateCompile, BraceErrors) {
    std::string e = CompileError(R"(["${a"])");
    EXPECT_NE(e.find("missing \"}\""), std::string::npos) << e;
    e = CompileError(R"({"a":"${}"})");
    EXPECT_NE(e.find("empty variable name"), std::string::npos) << e;
}

TEST(JsonTemplateCompile, InvalidJson) {
    for (std::string_view text :
         {""sv, " "sv, "{"sv, "}"sv, "{\"a\":}"sv, "{\"a\":1,}"sv, "{a:1}"sv, "{'a':1}"sv,
          "{\"a\":1} x"sv, "{} {}"sv, "{\"a\":$a"sv, "{\"a\":\"$a}"sv, "[$a,]"sv,
          "{$a:1}"sv,                  // a reference cannot be a key
          "{\"a\":1,$a}"sv, "[$a $b]"sv, "[$a$b]"sv, "{\"a\":\"x\\$a\"}"sv,  // \$ is no escape
          "{\"a\":\"\\u00$a\"}"sv, "{\"a\":\"\\ud83d$a\"}"sv, "{\"a\":\"\xFF\"}"sv,
          "{\"a\":\"\n\"}"sv, "{\"a\":$}"sv, "{\"a\":tru$a}"sv}) {
        std::string e = CompileError(text);
        EXPECT_FALSE(e.empty()) << text;
    }
}

TEST(JsonTemplateCompile, InvalidJsonMessage) {
    std::string e = CompileError(R"({"a":1,})");
    EXPECT_EQ(e.rfind("not valid JSON: ", 0), 0u) << e;
    EXPECT_NE(e.find("(at byte 8)"), std::string::npos) << e;  // the '}'

    // Positions are in the template, not in the placeholder rendering.
    e = CompileError(R"({"a":"${user_id}" "b":1})");
    EXPECT_EQ(e.rfind("not valid JSON: ", 0), 0u) << e;
    EXPECT_NE(e.find("(at byte 21)"), std::string::npos) << e;  // the end of "b"
}

TEST(JsonTemplateCompile, ReferenceGluedToAValueIsRefused) {
    // These render as JSON with the placeholder 0 but not with other values.
    for (std::string_view text :
         {"{\"a\":1$a}"sv, "{\"a\":-$a}"sv, "{\"a\":${a}.5}"sv, "{\"a\":${a}e5}"sv,
          "[1.$a]"sv, "[1e$a]"sv, "-$a"sv, "[0.${a}]"sv}) {
        std::string e = CompileError(text);
        EXPECT_NE(e.find("must be a whole value"), std::string::npos) << text << ": " << e;
    }
    // These are not JSON even with the placeholder: refused as such.
    for (std::string_view text : {"${a}0"sv, "{\"a\":\"s\"$a}"sv, "[$a\"s\"]"sv, "[$a$b]"sv}) {
        std::string e = CompileError(text);
        EXPECT_EQ(e.rfind("not valid JSON: ", 0), 0u) << text << ": " << e;
    }
}

TEST(JsonTemplateCompile, ReferenceAsWholeValueEverywhere) {
    for (std::string_view text :
         {"$a"sv, " $a "sv, "[$a]"sv, "[ $a , $b ]"sv, "[$a,$b,$c]"sv, "{\"k\":$a}"sv,
          "{\"k\" : $a , \"l\" :\n\t$b\r\n}"sv, "[[$a],{\"k\":[$b]}]"sv}) {
        Compile(text);
    }
}

TEST(JsonTemplateCompile, NulByteInTemplate) {
    // jansson would stop reading at the NUL and accept the text before it
    std::string e = CompileError("{\"a\":1}\0garbage"sv);
    EXPECT_EQ(e, "not valid JSON: NUL byte (at byte 8)");
    CompileError("{\"a\":\"\0\"}"sv);
}

TEST(JsonTemplateCompile, FailureLeavesOutputAlone) {
    JsonTemplate t = Compile(R"({"a":$a})");
    std::string error;
    EXPECT_FALSE(JsonTemplate::compile("{", Resolve, &t, &error));
    EXPECT_EQ(t.variables(), std::vector<int>{0});
    EXPECT_TRUE(t.is_object());
}

// ---------------------------------------------------------------------------
// Rendering: in strings

TEST(JsonTemplateRender, InStringEscaped) {
    const char* text = R"({"msg":"hi $name!"})";
    EXPECT_EQ(Render(text, {{"name", "Ann"}}), R"({"msg":"hi Ann!"})");
    EXPECT_EQ(Render(text, {{"name", "a\"b"}}), R"({"msg":"hi a\"b!"})");
    EXPECT_EQ(Render(text, {{"name", "a\\b"}}), R"({"msg":"hi a\\b!"})");
    EXPECT_EQ(Render(text, {{"name", "l1\nl2\t\x01"}}), R"({"msg":"hi l1\nl2\t\u0001!"})");
    EXPECT_EQ(Render(text, {{"name", "caf\xC3\xA9 \xF0\x9F\x98\x80"}}),
              "{\"msg\":\"hi caf\xC3\xA9 \xF0\x9F\x98\x80!\"}");
    EXPECT_EQ(Render(text, {}), R"({"msg":"hi !"})");
    // numbers and JSON in a string stay text
    EXPECT_EQ(Render(text, {{"name", "42"}}), R"({"msg":"hi 42!"})");
    EXPECT_EQ(Render(text, {{"name", "{\"a\":1}"}}), R"({"msg":"hi {\"a\":1}!"})");
}

TEST(JsonTemplateRender, InjectionInStringStaysInside) {
    const char* text = R"({"name":"$name","admin":false})";
    for (std::string value :
         {std::string("\",\"admin\":true,\"x\":\""), std::string("\\\",\"admin\":true}"),
          std::string("\\"), std::string("\\\\\""), std::string("\"}"), std::string("\n\"}{\""),
          std::string("\\u0022,\"admin\":true"), Bytes({0x5c}) + "\"", std::string("\0\"", 2)}) {
        std::string out = Render(text, {{"name", value}});
        JsonPtr root = Parse(out);
        ASSERT_TRUE(root) << out;
        EXPECT_EQ(json_object_size(root.get()), 2u) << out;
        EXPECT_TRUE(json_is_false(json_object_get(root.get(), "admin"))) << out;
        json_t* name = json_object_get(root.get(), "name");
        ASSERT_TRUE(json_is_string(name)) << out;
        EXPECT_EQ(std::string(json_string_value(name), json_string_length(name)),
                  NulReplaced(value));
    }
}

TEST(JsonTemplateRender, EscapeStateOfTheTemplate) {
    // "a\"$x": the \" does not end the string, so $x is in it
    JsonTemplate t = Compile(R"({"k":"a\"$x"})");
    EXPECT_EQ(Render(t, {{"x", "\"q"}}), R"({"k":"a\"\"q"})");
    EXPECT_EQ(StringAt(Render(t, {{"x", "1"}}), "k"), "a\"1");
    // "a\\" ends the string: $x after it is outside
    t = Compile(R"(["a\\",$x])");
    EXPECT_EQ(Render(t, {{"x", "1"}}), R"(["a\\",1])");
    EXPECT_EQ(Render(t, {{"x", "a b"}}), R"(["a\\","a b"])");
    // "\\\"$x" is still in the string
    t = Compile(R"(["\\\"$x"])");
    EXPECT_EQ(Render(t, {{"x", "1"}}), R"(["\\\"1"])");
    // a key with a reference: in a string, escaped
    t = Compile(R"({"$x":1})");
    EXPECT_EQ(Render(t, {{"x", "k\"ey"}}), R"({"k\"ey":1})");
    // braces and brackets in strings do not confuse the scan
    t = Compile(R"({"a":"}]{[:,","b":$x})");
    EXPECT_EQ(Render(t, {{"x", "2"}}), R"({"a":"}]{[:,","b":2})");
}

TEST(JsonTemplateRender, NulByteReplaced) {
    // "\u0000" would be valid JSON, but jansson refuses it by default (and
    // in keys always), so a NUL byte in a value becomes U+FFFD.
    JsonTemplate t = Compile(R"({"s":"$x","$x":1,"o":$x})");
    std::string out = Render(t, {{"x", std::string("a\0b", 3)}});
    const std::string v = "\"a\xEF\xBF\xBD" "b\"";
    EXPECT_EQ(out, "{\"s\":" + v + "," + v + ":1,\"o\":" + v + "}");
    EXPECT_TRUE(Parse(out));
    // a number followed by a NUL is not a number
    out = Render(t, {{"x", std::string("1\0", 2)}});
    EXPECT_TRUE(Parse(out)) << out;
    EXPECT_EQ(StringAt(out, "o"), "1\xEF\xBF\xBD");
}

TEST(JsonTemplateRender, InvalidUtf8Replaced) {
    const char* text = R"({"s":"$x","o":$x})";
    const std::string fffd = "\xEF\xBF\xBD";
    struct Case {
        std::string in, out;
    } cases[] = {
        {Bytes({0xFF}), fffd},
        {Bytes({0x80}), fffd},
        {Bytes({0xC0, 0x80}), fffd + fffd},                // overlong: both bytes bad
        {Bytes({0xC3}), fffd},                             // truncated at the end
        {"a" + Bytes({0xC3}) + "b", "a" + fffd + "b"},     // truncated, then ASCII
        {Bytes({0xE2, 0x9C}), fffd},                       // one maximal subpart
        {Bytes({0xE2, 0x9C, 0x41}), fffd + "A"},
        {Bytes({0xED, 0xA0, 0x80}), fffd + fffd + fffd},   // surrogate D800
        {Bytes({0xF0, 0x9F, 0x98}), fffd},
        {Bytes({0xF4, 0x90, 0x80, 0x80}), fffd + fffd + fffd + fffd},  // > U+10FFFF
        {Bytes({0xF8, 0x88, 0x80, 0x80, 0x80}), fffd + fffd + fffd + fffd + fffd},
        {"ok \xC3\xA9" + Bytes({0xFE}) + "\xE2\x9C\x93", "ok \xC3\xA9" + fffd + "\xE2\x9C\x93"},
        {Bytes({0xC3, 0xC3, 0xA9}), fffd + "\xC3\xA9"},
    };
    for (const Case& c : cases) {
        std::string out = Render(text, {{"x", c.in}});
        EXPECT_TRUE(is_valid_utf8(out)) << test::Hex(c.in);
        EXPECT_EQ(StringAt(out, "s"), c.out) << test::Hex(c.in);
        EXPECT_EQ(StringAt(out, "o"), c.out) << test::Hex(c.in);
    }
}

// ---------------------------------------------------------------------------
// Rendering: outside strings

TEST(JsonTemplateRender, NumbersStayNumbers) {
    const char* text = R"({"user_id":$user_id})";
    EXPECT_EQ(Render(text, {{"user_id", "42"}}), R"({"user_id":42})");
    EXPECT_EQ(Render(text, {{"user_id", "-7"}}), R"({"user_id":-7})");
    EXPECT_EQ(Render(text, {{"user_id", "3.5e2"}}), R"({"user_id":3.5e2})");
    EXPECT_EQ(Render(text, {{"user_id", "0"}}), R"({"user_id":0})");
    // trimmed
    EXPECT_EQ(Render(text, {{"user_id", " 42\n"}}), R"({"user_id":42})");
    // not JSON numbers: strings
    EXPECT_EQ(Render(text, {{"user_id", "042"}}), R"({"user_id":"042"})");
    EXPECT_EQ(Render(text, {{"user_id", "+1"}}), R"({"user_id":"+1"})");
    EXPECT_EQ(Render(text, {{"user_id", "0x1F"}}), R"({"user_id":"0x1F"})");
    EXPECT_EQ(Render(text, {{"user_id", "NaN"}}), R"({"user_id":"NaN"})");
    EXPECT_EQ(Render(text, {{"user_id", "123456789012345678901234567890"}}),
              R"({"user_id":"123456789012345678901234567890"})");
}

TEST(JsonTemplateRender, JsonValuesInsertedRaw) {
    const char* text = R"({"v":$x})";
    EXPECT_EQ(Render(text, {{"x", "true"}}), R"({"v":true})");
    EXPECT_EQ(Render(text, {{"x", "false"}}), R"({"v":false})");
    EXPECT_EQ(Render(text, {{"x", "null"}}), R"({"v":null})");
    EXPECT_EQ(Render(text, {{"x", "\"s\""}}), R"({"v":"s"})");
    EXPECT_EQ(Render(text, {{"x", "{\"a\": [1, {\"b\": null}]}"}}),
              R"({"v":{"a": [1, {"b": null}]}})");
    EXPECT_EQ(Render(text, {{"x", "[1,2,3]"}}), R"({"v":[1,2,3]})");
    EXPECT_EQ(Render(text, {{"x", "\t{}\r\n"}}), R"({"v":{}})");
}

TEST(JsonTemplateRender, OtherTextQuoted) {
    const char* text = R"({"v":$x})";
    EXPECT_EQ(Render(text, {{"x", "alice"}}), R"({"v":"alice"})");
    EXPECT_EQ(Render(text, {{"x", "a\"b\\c\n"}}), R"({"v":"a\"b\\c\n"})");
    EXPECT_EQ(Render(text, {{"x", "True"}}), R"({"v":"True"})");
    EXPECT_EQ(Render(text, {{"x", "'single'"}}), R"({"v":"'single'"})");
    EXPECT_EQ(Render(text, {{"x", "{\"a\":1"}}), R"({"v":"{\"a\":1"})");
    // quoted as given, surrounding spaces included
    EXPECT_EQ(Render(text, {{"x", " two words "}}), R"({"v":" two words "})");
}

TEST(JsonTemplateRender, MoreThanOneValueIsAString) {
    const char* text = R"({"id":$x,"admin":false})";
    std::string out = Render(text, {{"x", "1, \"admin\": true"}});
    EXPECT_EQ(out, R"({"id":"1, \"admin\": true","admin":false})");
    for (std::string value : {"1, \"admin\": true", "1}, {\"admin\": true", "1] [", "{} {}",
                              "null, \"admin\": true", "1 2", "{\"a\":1}, \"admin\": true",
                              "\"x\", \"admin\": true", "1 /*", "]", "}", ","}) {
        out = Render(text, {{"x", value}});
        JsonPtr root = Parse(out);
        ASSERT_TRUE(root) << out;
        EXPECT_EQ(json_object_size(root.get()), 2u) << out;
        EXPECT_TRUE(json_is_false(json_object_get(root.get(), "admin"))) << out;
        EXPECT_EQ(StringAt(out, "id"), value);
    }
}

TEST(JsonTemplateRender, EmptyIsNull) {
    const char* text = R"({"v":$x,"s":"$x"})";
    EXPECT_EQ(Render(text, {}), R"({"v":null,"s":""})");
    EXPECT_EQ(Render(text, {{"x", ""}}), R"({"v":null,"s":""})");
    EXPECT_EQ(Render(text, {{"x", " \t\r\n"}}), "{\"v\":null,\"s\":\" \\t\\r\\n\"}");
    EXPECT_EQ(Render("$x", {}), "null");
}

TEST(JsonTemplateRender, BareReference) {
    JsonTemplate t = Compile("$x");
    EXPECT_EQ(Render(t, {{"x", "{\"a\":1}"}}), R"({"a":1})");
    EXPECT_EQ(Render(t, {{"x", "hi"}}), R"("hi")");
    EXPECT_EQ(Render(t, {{"x", "7"}}), "7");
}

// ---------------------------------------------------------------------------
// Reference syntax

TEST(JsonTemplateSyntax, BracedNameAdjacentToText) {
    JsonTemplate t = Compile(R"({"k":"${a}b"})");
    EXPECT_EQ(t.variables(), std::vector<int>{0});
    EXPECT_EQ(Render(t, {{"a", "A"}, {"b", "B"}}), R"({"k":"Ab"})");
    // without braces the name runs on: $ab is another name
    EXPECT_EQ(Render(R"({"k":"$a-b"})", {{"a", "A"}}), R"({"k":"A-b"})");
    EXPECT_EQ(Render(R"({"k":"$a.b"})", {{"a", "A"}}), R"({"k":"A.b"})");
    EXPECT_EQ(Render(R"({"k":"${a}${b}$c"})", {{"a", "1"}, {"b", "2"}, {"c", "3"}}),
              R"({"k":"123"})");
    EXPECT_EQ(Render(R"({"k":"$a$b"})", {{"a", "1"}, {"b", "2"}}), R"({"k":"12"})");
}

TEST(JsonTemplateSyntax, BracedNameAnyCharacters) {
    EXPECT_EQ(Render(R"({"k":"${a b}|${a.b}"})", {{"a b", "1"}, {"a.b", "2"}}),
              R"({"k":"1|2"})");
    EXPECT_EQ(Render(R"({"k":${a.b}})", {{"a.b", "5"}}), R"({"k":5})");
}

TEST(JsonTemplateSyntax, LiteralDollar) {
    EXPECT_EQ(Render(R"({"price":"$ 5","p":"5$","q":"$$","r":"$-","s":"$"})", {}),
              R"({"price":"$ 5","p":"5$","q":"$$","r":"$-","s":"$"})");
    JsonTemplate t = Compile(R"({"p":"$$a"})");
    EXPECT_EQ(t.variables(), std::vector<int>{0});
    EXPECT_EQ(Render(t, {{"a", "9"}}), R"({"p":"$9"})");
    EXPECT_TRUE(Compile(R"({"p":"US$"})").constant());
}

TEST(JsonTemplateSyntax, DollarInValueNotExpanded) {
    EXPECT_EQ(Render(R"({"k":"$a"})", {{"a", "$b"}, {"b", "no"}}), R"({"k":"$b"})");
    EXPECT_EQ(Render(R"({"k":$a})", {{"a", "${b}"}, {"b", "no"}}), R"({"k":"${b}"})");
}

// ---------------------------------------------------------------------------
// Fuzz: random values, including bytes that are not UTF-8, always render to
// JSON jansson accepts, with the shape of the document unchanged.

std::string RandomValue(std::mt19937& rng) {
    static const std::string_view kPieces[] = {
        "\"", "\\", "{", "}", "[", "]", ",", ":", " ", "\n", "1", "-", "0", ".", "e",
        "true", "null", "\"a\"", "{}", "[]", "\\u0000", "\\ud800", "\xC3\xA9", "\xF0\x9F\x98\x80",
        "\xED\xA0\x80", "\xC0\xAF", "\xFF", "$a", "${b}"};
    std::uniform_int_distribution<int> kind(0, 3);
    std::uniform_int_distribution<int> len(0, 24);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<size_t> piece(0, std::size(kPieces) - 1);
    std::string s;
    int n = len(rng);
    switch (kind(rng)) {
    case 0:  // any bytes
        for (int i = 0; i < n; ++i) {
            s.push_back(static_cast<char>(byte(rng)));
        }
        break;
    case 1:  // JSON-ish fragments
        for (int i = 0; i < n; ++i) {
            s += kPieces[piece(rng)];
        }
        break;
    case 2:  // a mix
        for (int i = 0; i < n; ++i) {
            if (byte(rng) & 1) {
                s.push_back(static_cast<char>(byte(rng)));
            } else {
                s += kPieces[piece(rng)];
            }
        }
        break;
    default:  // numbers, sometimes broken
        s = std::to_string(static_cast<int>(rng()));
        if (byte(rng) < 64) {
            s += kPieces[piece(rng)];
        }
        break;
    }
    return s;
}

TEST(JsonTemplateFuzz, EveryRenderingIsValidJsonOfTheSameShape) {
    JsonTemplate t = Compile(
        R"({"in":"<$a|${b}>","out":$a,"arr":[$b, $c],"k$c":"\"$a\\","raw":${b}})");
    ASSERT_TRUE(t.is_object());
    std::mt19937 rng(20240607);
    for (int i = 0; i < 10000; ++i) {
        std::string a = RandomValue(rng), b = RandomValue(rng), c = RandomValue(rng);
        std::string out = t.render([&](int index) -> std::string_view {
            switch (index) {
            case 0: return a;
            case 1: return b;
            default: return c;
            }
        });
        json_error_t err;
        JsonPtr root(json_loadb(out.data(), out.size(), 0, &err));
        ASSERT_TRUE(root) << err.text << " in " << test::Hex(out, 400) << "\na=" << test::Hex(a)
                          << "\nb=" << test::Hex(b) << "\nc=" << test::Hex(c);
        ASSERT_TRUE(json_is_object(root.get()));
        ASSERT_EQ(json_object_size(root.get()), 5u) << out;
        ASSERT_TRUE(json_is_string(json_object_get(root.get(), "in")));
        json_t* arr = json_object_get(root.get(), "arr");
        ASSERT_TRUE(json_is_array(arr)) << out;
        ASSERT_EQ(json_array_size(arr), 2u) << out;
        // valid UTF-8 in a string comes back byte for byte
        if (is_valid_utf8(a) && is_valid_utf8(b)) {
            json_t* in = json_object_get(root.get(), "in");
            std::string want = NulReplaced("<" + a + "|" + b + ">");
            EXPECT_EQ(std::string(json_string_value(in), json_string_length(in)), want);
        }
        ASSERT_TRUE(is_valid_utf8(out));
    }
}

TEST(JsonTemplateFuzz, RandomTemplatesCompileOnlyIfEveryRenderingIsValid) {
    // Templates made of JSON fragments and references: whenever compile
    // accepts one, renderings with assorted values are JSON.
    static const std::string_view kPieces[] = {"{", "}", "[", "]", ",", ":", "\"", "\\", " ",
                                               "1", "-", ".", "e", "true", "\"k\"", "$a", "${b}",
                                               "$", "x"};
    static const std::string_view kValues[] = {"", "0", "-1.5", "\"s\"", "{}", "[1]", "true",
                                               "a\"b", "1, 2", "\\", "\xFF", " 7 "};
    std::mt19937 rng(7);
    std::uniform_int_distribution<size_t> piece(0, std::size(kPieces) - 1);
    std::uniform_int_distribution<int> len(1, 12);
    int compiled = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string text;
        for (int n = len(rng); n > 0; --n) {
            text += kPieces[piece(rng)];
        }
        JsonTemplate t;
        std::string error;
        if (!JsonTemplate::compile(text, Resolve, &t, &error)) {
            continue;
        }
        ++compiled;
        for (std::string_view a : kValues) {
            for (std::string_view b : kValues) {
                std::string out = t.render([&](int index) { return index == 0 ? a : b; });
                JsonPtr root = Parse(out);
                ASSERT_TRUE(root) << "template " << text << " renders " << out;
                if (t.is_object()) {
                    EXPECT_TRUE(json_is_object(root.get())) << text << " renders " << out;
                }
            }
        }
    }
    EXPECT_GT(compiled, 100);
}

}  // namespace
}  // namespace realtime
