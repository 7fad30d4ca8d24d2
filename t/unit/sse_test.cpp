#include <gtest/gtest.h>

#include "core/sse.h"

using namespace realtime;

TEST(Sse, EventWithIdAndOneLine) {
    EXPECT_EQ(sse::event("00000001deadbeef:7", "{\"a\":1}"),
              "id: 00000001deadbeef:7\ndata: {\"a\":1}\n\n");
}

TEST(Sse, EventWithoutId) {
    EXPECT_EQ(sse::event("", "hello"), "data: hello\n\n");
}

TEST(Sse, EmptyDataIsOneEmptyDataLine) {
    // the browser dispatches an event with data "" (not nothing)
    EXPECT_EQ(sse::event("", ""), "data: \n\n");
}

TEST(Sse, EveryLineEndStartsADataLine) {
    EXPECT_EQ(sse::event("", "a\nb\r\nc\rd"), "data: a\ndata: b\ndata: c\ndata: d\n\n");
    EXPECT_EQ(sse::event("", "a\n"), "data: a\ndata: \n\n");
    EXPECT_EQ(sse::event("", "\r\n"), "data: \ndata: \n\n");
    EXPECT_EQ(sse::event("", "a\n\nb"), "data: a\ndata: \ndata: b\n\n");
    EXPECT_EQ(sse::event("", "a\r\rb"), "data: a\ndata: \ndata: b\n\n");
}

TEST(Sse, AnIdThatCouldEndTheFieldIsLeftOut) {
    EXPECT_EQ(sse::event("1\n2", "x"), "data: x\n\n");
    EXPECT_EQ(sse::event("1\r2", "x"), "data: x\n\n");
    EXPECT_EQ(sse::event(std::string_view("1\0" "2", 3), "x"), "data: x\n\n");
}

TEST(Sse, DataMayHoldColonsAndUtf8) {
    EXPECT_EQ(sse::event("", "id: no\xc3\xa9"), "data: id: no\xc3\xa9\n\n");
}

TEST(Sse, CommentIsOneLine) {
    EXPECT_EQ(sse::comment(""), ":\n\n");
    EXPECT_EQ(sse::comment(" hb"), ": hb\n\n");
    EXPECT_EQ(sse::comment(" a\ndata: forged"), ": a\n\n");
}

TEST(Sse, ChunkFraming) {
    EXPECT_EQ(sse::chunk("abc"), "3\r\nabc\r\n");
    EXPECT_EQ(sse::chunk(std::string(255, 'x')), "ff\r\n" + std::string(255, 'x') + "\r\n");
    EXPECT_EQ(sse::chunk(std::string(4096, 'x')).substr(0, 6), "1000\r\n");
    EXPECT_EQ(sse::chunk(""), "");
    EXPECT_EQ(sse::kLastChunk, "0\r\n\r\n");
}
