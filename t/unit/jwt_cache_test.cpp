// The cache of verified JWTs (src/core/jwt_cache.*): hits and misses, the
// time claims checked again on every hit (with the leeway), LRU eviction
// and its bound, a forged token with the same claims, scope separation and
// failures never kept. Tokens are HS256, signed here; the clock is fixed.
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <string>

#include "core/jwt.h"
#include "core/jwt_cache.h"

namespace realtime::jwt {
namespace {

constexpr int64_t kNow = 1700000000;
const std::string kSecret = "0123456789abcdef0123456789abcdef";
const std::string kOtherSecret = "fedcba9876543210fedcba9876543210";

std::string Sign(const std::string& secret, const std::string& input) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    return std::string(reinterpret_cast<char*>(mac), len);
}

std::string Token(const std::string& claims, const std::string& secret = kSecret) {
    std::string input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                        base64url_encode(claims);
    return input + "." + base64url_encode(Sign(secret, input));
}

std::string Claims(const std::string& sub, const std::string& extra = "") {
    return R"({"sub":")" + sub + "\"" + extra + "}";
}

struct Fixture : ::testing::Test {
    Fixture() { keys.add_hmac_secret(kSecret); }
    Verified Check(VerifiedCache& cache, const std::string& token, int64_t now = kNow,
                   uint64_t scope = 1) {
        return cache.verify(token, scope, keys, policy, now);
    }
    KeySet keys;
    Policy policy;
};

using JwtCache = Fixture;

TEST_F(JwtCache, MissThenHitSharesTheClaims) {
    VerifiedCache cache(8);
    std::string token = Token(Claims("alice"));
    EXPECT_FALSE(cache.lookup(1, token, policy, kNow).ok);

    Verified first = Check(cache, token);
    ASSERT_TRUE(first.ok);
    EXPECT_EQ(cache.size(), 1u);
    EXPECT_EQ(cache.hits(), 0u);

    EXPECT_FALSE(first.cached);
    Verified second = Check(cache, token);
    ASSERT_TRUE(second.ok);
    EXPECT_TRUE(second.cached);
    EXPECT_EQ(cache.hits(), 1u);
    EXPECT_EQ(second.claims.get(), first.claims.get());  // shared, not copied
    EXPECT_EQ(second.header.get(), first.header.get());
    EXPECT_STREQ(json_string_value(json_object_get(second.claims.get(), "sub")), "alice");
    EXPECT_EQ(second.exp, 0);
    EXPECT_FALSE(second.has_exp);

    // the cache's reference outlives the connections'
    first = Verified();
    second = Verified();
    Verified third = cache.lookup(1, token, policy, kNow);
    ASSERT_TRUE(third.ok);
    EXPECT_STREQ(json_string_value(json_object_get(third.claims.get(), "sub")), "alice");
}

TEST_F(JwtCache, AnotherTokenIsAMiss) {
    VerifiedCache cache(8);
    ASSERT_TRUE(Check(cache, Token(Claims("alice"))).ok);
    EXPECT_FALSE(cache.lookup(1, Token(Claims("bob")), policy, kNow).ok);
    EXPECT_TRUE(cache.lookup(1, Token(Claims("alice")), policy, kNow).ok);
}

TEST_F(JwtCache, ExpiredEntryIsAMissAndEvicted) {
    VerifiedCache cache(8);
    std::string token = Token(Claims("alice", R"(,"exp":1700000010)"));
    Verified v = Check(cache, token);
    ASSERT_TRUE(v.ok);
    EXPECT_TRUE(v.has_exp);
    EXPECT_EQ(v.exp, 1700000010);

    EXPECT_TRUE(cache.lookup(1, token, policy, 1700000009).ok);
    EXPECT_FALSE(cache.lookup(1, token, policy, 1700000010).ok);  // exp: expired from then on
    EXPECT_EQ(cache.size(), 0u);
    // and verify() refuses it too, without keeping anything
    Verified late = Check(cache, token, 1700000010);
    EXPECT_FALSE(late.ok);
    EXPECT_EQ(late.reason, "token expired");
    EXPECT_EQ(cache.size(), 0u);
}

TEST_F(JwtCache, LeewayAppliesAtEveryHit) {
    VerifiedCache cache(8);
    policy.leeway = 5;
    std::string token = Token(Claims("alice", R"(,"exp":1700000010)"));
    ASSERT_TRUE(Check(cache, token).ok);
    EXPECT_TRUE(cache.lookup(1, token, policy, 1700000014).ok);
    EXPECT_FALSE(cache.lookup(1, token, policy, 1700000015).ok);
    EXPECT_EQ(cache.size(), 0u);
}

TEST_F(JwtCache, NotBeforeIsCheckedAtEveryHit) {
    VerifiedCache cache(8);
    policy.leeway = 5;
    std::string token = Token(Claims("alice", R"(,"nbf":1700000000)"));
    ASSERT_TRUE(Check(cache, token).ok);                            // nbf == now
    EXPECT_TRUE(cache.lookup(1, token, policy, kNow - 5).ok);       // within the leeway
    EXPECT_FALSE(cache.lookup(1, token, policy, kNow - 6).ok);      // the clock went back
    EXPECT_EQ(cache.size(), 0u);
    // a token not valid yet is refused and not kept
    policy.leeway = 0;
    std::string later = Token(Claims("bob", R"(,"nbf":1700000100)"));
    EXPECT_FALSE(Check(cache, later).ok);
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_TRUE(Check(cache, later, 1700000100).ok);
    EXPECT_EQ(cache.size(), 1u);
}

TEST_F(JwtCache, LeastRecentlyUsedGoesFirstAndTheSizeIsBounded) {
    VerifiedCache cache(3);
    std::string a = Token(Claims("a")), b = Token(Claims("b")), c = Token(Claims("c")),
                d = Token(Claims("d"));
    ASSERT_TRUE(Check(cache, a).ok);
    ASSERT_TRUE(Check(cache, b).ok);
    ASSERT_TRUE(Check(cache, c).ok);
    ASSERT_TRUE(cache.lookup(1, a, policy, kNow).ok);  // a is now the most recent
    ASSERT_TRUE(Check(cache, d).ok);                   // b goes
    EXPECT_EQ(cache.size(), 3u);
    EXPECT_TRUE(cache.lookup(1, a, policy, kNow).ok);
    EXPECT_FALSE(cache.lookup(1, b, policy, kNow).ok);
    EXPECT_TRUE(cache.lookup(1, c, policy, kNow).ok);
    EXPECT_TRUE(cache.lookup(1, d, policy, kNow).ok);

    for (int i = 0; i < 100; ++i) {
        ASSERT_TRUE(Check(cache, Token(Claims("u" + std::to_string(i)))).ok);
        EXPECT_LE(cache.size(), 3u);
    }
    EXPECT_EQ(cache.size(), 3u);
}

TEST_F(JwtCache, ZeroCapacityKeepsNothing) {
    VerifiedCache cache(0);
    std::string token = Token(Claims("alice"));
    EXPECT_TRUE(Check(cache, token).ok);
    EXPECT_TRUE(Check(cache, token).ok);
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_EQ(cache.hits(), 0u);
    EXPECT_TRUE(verify_cached(nullptr, 1, token, keys, policy, kNow).ok);
}

TEST_F(JwtCache, ForgedTokenWithTheSameClaimsIsAnotherKey) {
    VerifiedCache cache(8);
    std::string good = Token(Claims("alice"));
    ASSERT_TRUE(Check(cache, good).ok);
    // same header and claims, signed with a secret we do not hold
    std::string forged = Token(Claims("alice"), kOtherSecret);
    ASSERT_EQ(forged.substr(0, forged.rfind('.')), good.substr(0, good.rfind('.')));
    EXPECT_FALSE(cache.lookup(1, forged, policy, kNow).ok);
    Verified v = Check(cache, forged);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.reason, "bad signature");
    // the good one still hits
    EXPECT_TRUE(cache.lookup(1, good, policy, kNow).ok);
    EXPECT_EQ(cache.size(), 1u);
}

TEST_F(JwtCache, ScopesAreSeparate) {
    VerifiedCache cache(8);
    std::string token = Token(Claims("alice", R"(,"iss":"a")"));
    ASSERT_TRUE(Check(cache, token, kNow, 1).ok);
    EXPECT_FALSE(cache.lookup(2, token, policy, kNow).ok);

    // scope 2 has other keys: the token verified in scope 1 is refused there
    KeySet other;
    other.add_hmac_secret(kOtherSecret);
    Verified v = cache.verify(token, 2, other, policy, kNow);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.reason, "bad signature");

    // scope 3 requires another issuer
    Policy strict;
    strict.issuer = "b";
    v = cache.verify(token, 3, keys, strict, kNow);
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.reason, "wrong issuer");

    EXPECT_EQ(cache.size(), 1u);
    EXPECT_TRUE(cache.lookup(1, token, policy, kNow).ok);
}

TEST_F(JwtCache, FailuresAreNeverKept) {
    VerifiedCache cache(8);
    const std::string bad[] = {
        "", "x", "a.b.c", Token(Claims("alice"), kOtherSecret),
        Token(Claims("alice", R"(,"exp":1)")),
    };
    for (const std::string& token : bad) {
        EXPECT_FALSE(Check(cache, token).ok) << token;
        EXPECT_FALSE(Check(cache, token).ok) << token;  // again: still verified, still refused
    }
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_EQ(cache.hits(), 0u);

    // insert() ignores a failure handed to it
    Verified refused;
    refused.reason = "bad signature";
    cache.insert(1, "a.b.c", refused);
    EXPECT_EQ(cache.size(), 0u);
}

TEST_F(JwtCache, ReinsertKeepsOneEntry) {
    VerifiedCache cache(8);
    std::string token = Token(Claims("alice"));
    Verified v = verify(token, keys, policy, kNow);
    ASSERT_TRUE(v.ok);
    cache.insert(1, token, v);
    cache.insert(1, token, v);
    EXPECT_EQ(cache.size(), 1u);
    cache.clear();
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_FALSE(cache.lookup(1, token, policy, kNow).ok);
}

}  // namespace
}  // namespace realtime::jwt
