// json_compact: the JSON the module sends, reals in their shortest form.
#include <gtest/gtest.h>
#include <jansson.h>

#include <cmath>
#include <random>
#include <string>

#include "core/json_text.h"

namespace realtime {
namespace {

std::string Compact(const char* text) {
    json_error_t err;
    json_t* v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    EXPECT_NE(v, nullptr) << err.text;
    std::string out = v ? json_compact(v) : "";
    json_decref(v);
    return out;
}

TEST(JsonCompact, RealsKeepTheirShortestForm) {
    EXPECT_EQ(Compact("0.1"), "0.1");
    EXPECT_EQ(Compact("[1732900000.123, -2.5, 3.0, 1e2, 1e-7, 6.02214076e23]"),
              "[1732900000.123,-2.5,3.0,100.0,1e-07,6.02214076e+23]");
    EXPECT_EQ(Compact("0.30000000000000004"), "0.30000000000000004");
}

TEST(JsonCompact, KeyOrderAndEveryType) {
    EXPECT_EQ(Compact(R"({"z": 1, "a": [true, false, null], "m": {"k": "v\"\n"}, "i": -9007199254740993})"),
              R"({"z":1,"a":[true,false,null],"m":{"k":"v\"\n"},"i":-9007199254740993})");
}

TEST(JsonCompact, StringsWithNul) {
    // jansson refuses NUL in keys; in values (JSON_ALLOW_NUL) it is kept and escaped
    EXPECT_EQ(Compact(R"({"ab": "c\u0000d"})"), R"({"ab":"c\u0000d"})");
}

TEST(JsonCompact, RealsRoundTrip) {
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> exp(-300, 300);
    std::uniform_real_distribution<double> mant(-10, 10);
    for (int i = 0; i < 20000; ++i) {
        double d = mant(rng) * std::pow(10.0, exp(rng));
        std::string text = json_real_text(d);
        EXPECT_EQ(std::strtod(text.c_str(), nullptr), d) << text;
        EXPECT_NE(text.find_first_of(".e"), std::string::npos) << text;
        json_t* back = json_loads(text.c_str(), JSON_DECODE_ANY, nullptr);
        ASSERT_NE(back, nullptr) << text;
        EXPECT_TRUE(json_is_real(back)) << text;
        json_decref(back);
    }
}

}  // namespace
}  // namespace realtime
