// parse_redis_url: realtime_redis' URL forms, and what is refused.
#include <gtest/gtest.h>

#include <string>

#include "core/redis_url.h"

namespace realtime {
namespace {

RedisUrl Parse(const std::string& text) {
    RedisUrl url;
    std::string error;
    EXPECT_TRUE(parse_redis_url(text, &url, &error)) << text << ": " << error;
    return url;
}

std::string Refused(const std::string& text) {
    RedisUrl url;
    std::string error;
    EXPECT_FALSE(parse_redis_url(text, &url, &error)) << text;
    EXPECT_FALSE(error.empty()) << text;
    return error;
}

TEST(RedisUrl, HostAloneTakesTheDefaults) {
    RedisUrl u = Parse("redis://127.0.0.1");
    EXPECT_FALSE(u.is_unix);
    EXPECT_EQ(u.host, "127.0.0.1");
    EXPECT_EQ(u.port, 6379);
    EXPECT_EQ(u.db, 0u);
    EXPECT_EQ(u.password, "");
    EXPECT_EQ(u.display, "redis://127.0.0.1");
}

TEST(RedisUrl, PortAndDb) {
    RedisUrl u = Parse("redis://redis.internal:6380/3");
    EXPECT_EQ(u.host, "redis.internal");
    EXPECT_EQ(u.port, 6380);
    EXPECT_EQ(u.db, 3u);
    EXPECT_EQ(Parse("redis://h:1").port, 1);
    EXPECT_EQ(Parse("redis://h:65535").port, 65535);
    EXPECT_EQ(Parse("redis://h/2147483647").db, 2147483647u);
    EXPECT_EQ(Parse("redis://h:7000/0").db, 0u);
}

TEST(RedisUrl, PasswordNeverInTheDisplay) {
    RedisUrl u = Parse("redis://:s3cret@10.0.0.1:6379/1");
    EXPECT_EQ(u.password, "s3cret");
    EXPECT_EQ(u.user, "");
    EXPECT_EQ(u.display, "redis://:***@10.0.0.1:6379/1");
    EXPECT_EQ(u.display.find("s3cret"), std::string::npos);
}

TEST(RedisUrl, UserAndPassword) {
    RedisUrl u = Parse("redis://app:pw@h");
    EXPECT_EQ(u.user, "app");
    EXPECT_EQ(u.password, "pw");
    EXPECT_EQ(u.display, "redis://app:***@h");
}

TEST(RedisUrl, PercentEscapesInThePassword) {
    EXPECT_EQ(Parse("redis://:p%40ss%3Aw%2fd@h").password, "p@ss:w/d");
    EXPECT_EQ(Parse("redis://:100%25@h").password, "100%");
    // an unescaped '@' in the password: the last '@' ends it
    EXPECT_EQ(Parse("redis://:a@b@h").password, "a@b");
    Refused("redis://:bad%4@h");
    Refused("redis://:bad%zz@h");
    Refused("redis://:bad%@h");
}

TEST(RedisUrl, Ipv6InBrackets) {
    RedisUrl u = Parse("redis://[::1]:6390/2");
    EXPECT_EQ(u.host, "::1");
    EXPECT_EQ(u.port, 6390);
    EXPECT_EQ(u.db, 2u);
    EXPECT_EQ(Parse("redis://[::1]").port, 6379);
    Refused("redis://::1:6379");
    Refused("redis://[::1");
    Refused("redis://[::1]x");
}

TEST(RedisUrl, UnixSocket) {
    RedisUrl u = Parse("unix:/run/redis/redis.sock");
    EXPECT_TRUE(u.is_unix);
    EXPECT_EQ(u.path, "/run/redis/redis.sock");
    Refused("unix:relative.sock");
    Refused("unix:");
}

TEST(RedisUrl, TlsIsRefusedWithAReason) {
    std::string why = Refused("rediss://:pw@h:6380");
    EXPECT_NE(why.find("TLS"), std::string::npos);
    EXPECT_EQ(why.find("pw"), std::string::npos);
}

TEST(RedisUrl, InvalidForms) {
    Refused("");
    Refused("http://h");
    Refused("redis://");
    Refused("redis://:6379");
    Refused("redis://h:");
    Refused("redis://h:0");
    Refused("redis://h:65536");
    Refused("redis://h:123456");
    Refused("redis://h:port");
    Refused("redis://h/");
    Refused("redis://h/x");
    Refused("redis://h/-1");
    Refused("redis://h/2147483648");
    Refused("redis://h/99999999999");
    Refused("redis://pw@h");       // no colon: a user without password
    Refused("redis://:@h");        // empty password
    Refused("redis://h o/1");
}

TEST(RedisUrl, PasswordNotQuotedInErrors) {
    std::string why = Refused("redis://:topsecret@h:99999");
    EXPECT_EQ(why.find("topsecret"), std::string::npos);
}

TEST(RedisDb, Range) {
    uint32_t db = 7;
    EXPECT_TRUE(parse_redis_db("0", &db));
    EXPECT_EQ(db, 0u);
    EXPECT_TRUE(parse_redis_db("15", &db));
    EXPECT_EQ(db, 15u);
    EXPECT_FALSE(parse_redis_db("", &db));
    EXPECT_FALSE(parse_redis_db("1a", &db));
    EXPECT_FALSE(parse_redis_db("4294967296", &db));
}

}  // namespace
}  // namespace realtime
