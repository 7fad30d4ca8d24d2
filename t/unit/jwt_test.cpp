// JWT verification (src/core/jwt.*): base64url, every algorithm with keys
// made here by OpenSSL (PEM and JWK forms), every refusal reason, the time
// claims at their boundaries with and without leeway, audience/issuer, key
// file and JWKS loading errors, and key-type confusion. The clock is fixed.
#include <gtest/gtest.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/jwt.h"

namespace realtime::jwt {
namespace {

constexpr int64_t kNow = 1700000000;  // the fixed clock of every test

// ---------------------------------------------------------------------------
// base64url, independently of the code under test (OpenSSL's base64, then
// the URL alphabet and no padding).

std::string B64(std::string_view in) {
    std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    out.resize(static_cast<size_t>(n));
    while (!out.empty() && out.back() == '=') {
        out.pop_back();
    }
    for (char& c : out) {
        c = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    return out;
}

// ---------------------------------------------------------------------------
// Keys made by OpenSSL: the private key signs, the public key is offered to
// the KeySet as PEM or as a JWK.

using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct BnFree {
    void operator()(BIGNUM* b) const noexcept { BN_free(b); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
struct EcSigFree {
    void operator()(ECDSA_SIG* s) const noexcept { ECDSA_SIG_free(s); }
};

enum class KeyType { kRsa, kP256, kP384, kEd25519 };

PkeyPtr Generate(KeyType type) {
    EVP_PKEY* k = nullptr;
    switch (type) {
    case KeyType::kRsa: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)); break;
    case KeyType::kP256: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
    case KeyType::kP384: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"); break;
    case KeyType::kEd25519: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"); break;
    }
    EXPECT_NE(k, nullptr) << "key generation failed";
    return PkeyPtr(k);
}

std::string PublicPem(EVP_PKEY* k) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    EXPECT_EQ(PEM_write_bio_PUBKEY(bio.get(), k), 1);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

std::string PrivatePem(EVP_PKEY* k) {
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr), 1);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<size_t>(len));
}

std::string BnBytes(EVP_PKEY* k, const char* param, int pad = 0) {
    BIGNUM* raw = nullptr;
    EXPECT_EQ(EVP_PKEY_get_bn_param(k, param, &raw), 1) << param;
    std::unique_ptr<BIGNUM, BnFree> bn(raw);
    int len = pad ? pad : BN_num_bytes(bn.get());
    std::string out(static_cast<size_t>(len), '\0');
    if (pad) {
        EXPECT_EQ(BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), pad), pad);
    } else {
        BN_bn2bin(bn.get(), reinterpret_cast<unsigned char*>(out.data()));
    }
    return out;
}

// The public half of k as a JWK object (JSON text); extra is spliced in.
std::string Jwk(EVP_PKEY* k, KeyType type, const std::string& extra = "") {
    std::string body;
    switch (type) {
    case KeyType::kRsa:
        body = R"("kty":"RSA","n":")" + B64(BnBytes(k, OSSL_PKEY_PARAM_RSA_N)) + R"(","e":")" +
               B64(BnBytes(k, OSSL_PKEY_PARAM_RSA_E)) + "\"";
        break;
    case KeyType::kP256:
    case KeyType::kP384: {
        int size = type == KeyType::kP256 ? 32 : 48;
        body = std::string(R"("kty":"EC","crv":")") + (size == 32 ? "P-256" : "P-384") +
               R"(","x":")" + B64(BnBytes(k, OSSL_PKEY_PARAM_EC_PUB_X, size)) + R"(","y":")" +
               B64(BnBytes(k, OSSL_PKEY_PARAM_EC_PUB_Y, size)) + "\"";
        break;
    }
    case KeyType::kEd25519: {
        unsigned char raw[32];
        size_t len = sizeof(raw);
        EXPECT_EQ(EVP_PKEY_get_raw_public_key(k, raw, &len), 1);
        body = R"("kty":"OKP","crv":"Ed25519","x":")" +
               B64(std::string_view(reinterpret_cast<char*>(raw), len)) + "\"";
        break;
    }
    }
    return "{" + body + (extra.empty() ? "" : "," + extra) + "}";
}

const EVP_MD* Digest(Alg alg) {
    switch (alg) {
    case Alg::HS256: case Alg::RS256: case Alg::PS256: case Alg::ES256: return EVP_sha256();
    case Alg::HS384: case Alg::RS384: case Alg::PS384: case Alg::ES384: return EVP_sha384();
    case Alg::HS512: case Alg::RS512: case Alg::PS512: return EVP_sha512();
    case Alg::EdDSA: return nullptr;
    }
    return nullptr;
}

bool IsHmac(Alg a) { return a == Alg::HS256 || a == Alg::HS384 || a == Alg::HS512; }
bool IsPss(Alg a) { return a == Alg::PS256 || a == Alg::PS384 || a == Alg::PS512; }
bool IsEs(Alg a) { return a == Alg::ES256 || a == Alg::ES384; }

// What signs a token: an HMAC secret, or a private key.
struct Signer {
    std::string secret;
    EVP_PKEY* pkey = nullptr;
};

Signer Secret(std::string s) { return Signer{std::move(s), nullptr}; }
Signer Private(EVP_PKEY* k) { return Signer{std::string(), k}; }

// Raw signature bytes as JWS wants them (ECDSA: r || s, each half-size).
// der_ecdsa keeps OpenSSL's DER form, which a verifier must not accept.
std::string SignBytes(Alg alg, const Signer& signer, std::string_view input, bool der_ecdsa = false) {
    if (IsHmac(alg)) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        EXPECT_NE(HMAC(Digest(alg), signer.secret.data(), static_cast<int>(signer.secret.size()),
                       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len),
                  nullptr);
        return std::string(reinterpret_cast<char*>(mac), len);
    }
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> md(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    EXPECT_EQ(EVP_DigestSignInit(md.get(), &pctx, Digest(alg), nullptr, signer.pkey), 1);
    if (IsPss(alg)) {
        EXPECT_EQ(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        EXPECT_EQ(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
    }
    size_t len = 0;
    EXPECT_EQ(EVP_DigestSign(md.get(), nullptr, &len,
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()), 1);
    std::string sig(len, '\0');
    EXPECT_EQ(EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()), 1);
    sig.resize(len);
    if (!IsEs(alg) || der_ecdsa) {
        return sig;
    }
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    std::unique_ptr<ECDSA_SIG, EcSigFree> es(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
    EXPECT_NE(es, nullptr);
    int half = alg == Alg::ES256 ? 32 : 48;
    std::string raw(static_cast<size_t>(2 * half), '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    EXPECT_EQ(BN_bn2binpad(ECDSA_SIG_get0_r(es.get()), out, half), half);
    EXPECT_EQ(BN_bn2binpad(ECDSA_SIG_get0_s(es.get()), out + half, half), half);
    return raw;
}

std::string HeaderJson(Alg alg, const std::string& kid = "") {
    std::string h = R"({"alg":")" + std::string(alg_name(alg)) + R"(","typ":"JWT")";
    if (!kid.empty()) {
        h += R"(,"kid":")" + kid + "\"";
    }
    return h + "}";
}

const std::string kClaims = R"({"sub":"alice","exp":1700003600,"groups":["a","b"]})";

// header.payload.signature from JSON texts, signed with signer under alg.
std::string Token(Alg alg, const Signer& signer, const std::string& header_json,
                  const std::string& claims_json = kClaims) {
    std::string input = B64(header_json) + "." + B64(claims_json);
    return input + "." + B64(SignBytes(alg, signer, input));
}

std::string Token(Alg alg, const Signer& signer) {
    return Token(alg, signer, HeaderJson(alg));
}

// Generated once: RSA keys are slow to make under the sanitizers.
struct Keys {
    PkeyPtr rsa = Generate(KeyType::kRsa), rsa2 = Generate(KeyType::kRsa);
    PkeyPtr p256 = Generate(KeyType::kP256), p256b = Generate(KeyType::kP256);
    PkeyPtr p384 = Generate(KeyType::kP384), p384b = Generate(KeyType::kP384);
    PkeyPtr ed = Generate(KeyType::kEd25519), ed2 = Generate(KeyType::kEd25519);
};

const Keys& K() {
    static const Keys* keys = new Keys();  // never freed: lives as long as the tests
    return *keys;
}

const std::string kSecret = "0123456789abcdef0123456789abcdef-hmac-secret";
const std::string kSecret2 = "another secret, also at least thirty-two bytes";

KeySet SecretSet(const std::string& secret = kSecret) {
    KeySet ks;
    ks.add_hmac_secret(secret);
    return ks;
}

KeySet PemSet(EVP_PKEY* k) {
    KeySet ks;
    std::string error;
    EXPECT_TRUE(ks.load_pem(PublicPem(k), &error)) << error;
    return ks;
}

KeySet JwkSet(const std::string& json) {
    KeySet ks;
    std::string error;
    EXPECT_TRUE(ks.load_jwk_json(json, &error)) << error << " in " << json;
    return ks;
}

std::string Reason(std::string_view token, const KeySet& ks, const Policy& policy = {},
                   int64_t now = kNow) {
    Verified v = verify(token, ks, policy, now);
    if (v.ok) {
        EXPECT_TRUE(v.reason.empty());
        return "ok";
    }
    EXPECT_FALSE(v.claims) << "no claims on a refusal";
    return std::string(v.reason);
}

// ---------------------------------------------------------------------------
// base64url

TEST(Base64Url, Rfc4648Vectors) {
    const std::pair<std::string, std::string> vectors[] = {
        {"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [plain, encoded] : vectors) {
        EXPECT_EQ(base64url_encode(plain), encoded);
        auto back = base64url_decode(encoded);
        ASSERT_TRUE(back.has_value()) << encoded;
        EXPECT_EQ(*back, plain);
    }
}

TEST(Base64Url, UrlAlphabet) {
    std::string bytes("\xfb\xff\xbf", 3);
    EXPECT_EQ(base64url_encode(bytes), "-_-_");
    EXPECT_EQ(base64url_decode("-_-_"), bytes);
    EXPECT_EQ(base64url_encode(std::string("\x3e\x3f", 2)), "Pj8");
}

TEST(Base64Url, RoundTripsEveryByteAndLength) {
    std::string all;
    for (int i = 0; i < 256; ++i) {
        all.push_back(static_cast<char>(i));
    }
    for (size_t n = 0; n <= all.size(); ++n) {
        std::string in = all.substr(all.size() - n);
        std::string enc = base64url_encode(in);
        ASSERT_EQ(enc, B64(in)) << "length " << n;
        ASSERT_EQ(base64url_decode(enc), in) << "length " << n;
    }
}

TEST(Base64Url, RejectsCharactersOutsideTheUrlAlphabet) {
    for (std::string_view bad : {"Zm9v+A", "Zm9v/A", "Zg==", "Zm8=", "Zm9v YmFy", "Zm9v\nYmFy",
                                 "Zm9v\tYg", "Zm.v", "Zm9v*mFy", "Zm9v\xc3\xa9"}) {
        EXPECT_FALSE(base64url_decode(bad).has_value()) << bad;
    }
    EXPECT_FALSE(base64url_decode(std::string_view("Zm\0v", 4)).has_value());
    for (int c = 0; c < 256; ++c) {
        bool url = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_';
        std::string s = "AAA";
        s.push_back(static_cast<char>(c));
        EXPECT_EQ(base64url_decode(s).has_value(), url) << "char " << c;
    }
}

TEST(Base64Url, RejectsImpossibleLengths) {
    // 4k+1 characters cannot encode whole bytes
    for (std::string_view bad : {"Z", "Zm9vY", "Zm9vYmFyZ", "AAAAAAAAA"}) {
        EXPECT_FALSE(base64url_decode(bad).has_value()) << bad;
    }
}

TEST(Base64Url, RejectsNonZeroTrailingBits) {
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // 2 characters: 12 bits, one byte, the last 4 bits must be 0
    // 3 characters: 18 bits, two bytes, the last 2 bits must be 0
    for (size_t i = 0; i < 64; ++i) {
        std::string two = std::string("Z") + alphabet[i];
        EXPECT_EQ(base64url_decode(two).has_value(), (i & 0xF) == 0) << two;
        std::string three = std::string("Zm") + alphabet[i];
        EXPECT_EQ(base64url_decode(three).has_value(), (i & 0x3) == 0) << three;
        std::string four = std::string("Zm9") + alphabet[i];  // no leftover bits
        EXPECT_TRUE(base64url_decode(four).has_value()) << four;
    }
    EXPECT_FALSE(base64url_decode("Zh").has_value());
    EXPECT_FALSE(base64url_decode("Zm9").has_value());
    EXPECT_FALSE(base64url_decode("Zm9vYmFyZm9vYh").has_value());
}

// ---------------------------------------------------------------------------
// algorithm names

TEST(Algorithms, ParseAndNameEveryOne) {
    const std::pair<std::string_view, Alg> all[] = {
        {"HS256", Alg::HS256}, {"HS384", Alg::HS384}, {"HS512", Alg::HS512},
        {"RS256", Alg::RS256}, {"RS384", Alg::RS384}, {"RS512", Alg::RS512},
        {"PS256", Alg::PS256}, {"PS384", Alg::PS384}, {"PS512", Alg::PS512},
        {"ES256", Alg::ES256}, {"ES384", Alg::ES384}, {"EdDSA", Alg::EdDSA},
    };
    for (const auto& [name, alg] : all) {
        EXPECT_EQ(parse_alg(name), alg) << name;
        EXPECT_EQ(alg_name(alg), name);
    }
    for (std::string_view bad : {"none", "None", "NONE", "", "hs256", "ES512", "RS1", "HS256 ",
                                 "EDDSA", "Ed25519"}) {
        EXPECT_FALSE(parse_alg(bad).has_value()) << bad;
    }
}

// ---------------------------------------------------------------------------
// every algorithm, with its key as PEM and as a JWK

class EveryAlgorithm : public ::testing::TestWithParam<Alg> {};

EVP_PKEY* KeyFor(Alg alg, bool second = false) {
    const Keys& k = K();
    switch (alg) {
    case Alg::RS256: case Alg::RS384: case Alg::RS512:
    case Alg::PS256: case Alg::PS384: case Alg::PS512: return (second ? k.rsa2 : k.rsa).get();
    case Alg::ES256: return (second ? k.p256b : k.p256).get();
    case Alg::ES384: return (second ? k.p384b : k.p384).get();
    case Alg::EdDSA: return (second ? k.ed2 : k.ed).get();
    default: return nullptr;
    }
}

KeyType TypeFor(Alg alg) {
    switch (alg) {
    case Alg::ES256: return KeyType::kP256;
    case Alg::ES384: return KeyType::kP384;
    case Alg::EdDSA: return KeyType::kEd25519;
    default: return KeyType::kRsa;
    }
}

Signer SignerFor(Alg alg, bool second = false) {
    return IsHmac(alg) ? Secret(second ? kSecret2 : kSecret) : Private(KeyFor(alg, second));
}

// The verifying key in every form the module loads.
std::vector<std::pair<std::string, KeySet>> KeySetsFor(Alg alg) {
    std::vector<std::pair<std::string, KeySet>> sets;
    if (IsHmac(alg)) {
        sets.emplace_back("secret", SecretSet());
        sets.emplace_back("jwk oct", JwkSet(R"({"kty":"oct","k":")" + B64(kSecret) + "\"}"));
        sets.emplace_back("jwks oct", JwkSet(R"({"keys":[{"kty":"oct","k":")" + B64(kSecret) + "\"}]}"));
    } else {
        EVP_PKEY* k = KeyFor(alg);
        sets.emplace_back("pem", PemSet(k));
        sets.emplace_back("jwk", JwkSet(Jwk(k, TypeFor(alg))));
        sets.emplace_back("jwks", JwkSet(R"({"keys":[)" + Jwk(k, TypeFor(alg), R"("use":"sig")") + "]}"));
    }
    return sets;
}

TEST_P(EveryAlgorithm, ValidTokenVerifiesWithEveryKeyForm) {
    Alg alg = GetParam();
    std::string token = Token(alg, SignerFor(alg));
    for (const auto& [form, ks] : KeySetsFor(alg)) {
        SCOPED_TRACE(std::string(alg_name(alg)) + " with " + form);
        ASSERT_EQ(ks.keys().size(), 1u);
        Verified v = verify(token, ks, Policy{}, kNow);
        ASSERT_TRUE(v.ok) << v.reason;
        EXPECT_EQ(v.exp, 1700003600);
        EXPECT_EQ(value_text(v.claims.get(), "sub"), "alice");
        EXPECT_EQ(value_text(v.header.get(), "alg"), alg_name(alg));

        Policy only;
        only.algorithms = {alg};
        EXPECT_EQ(Reason(token, ks, only), "ok");
    }
}

// Each key is loaded with a prepared context per algorithm it fits (none
// for the others), and verifications copy it: it is not used up, and a
// refused token does not spoil it for the next one.
TEST_P(EveryAlgorithm, PreparedContextsAreCopiedNotConsumed) {
    Alg alg = GetParam();
    std::string token = Token(alg, SignerFor(alg));
    std::string other = Token(alg, SignerFor(alg, true));
    for (const auto& [form, ks] : KeySetsFor(alg)) {
        SCOPED_TRACE(std::string(alg_name(alg)) + " with " + form);
        ASSERT_EQ(ks.keys().size(), 1u);
        const Key& key = ks.keys()[0];
        for (size_t i = 0; i < kAlgCount; ++i) {
            bool mac = key.macs[i] != nullptr, pkey = key.verifiers[i] != nullptr;
            if (static_cast<Alg>(i) == alg) {
                EXPECT_TRUE(IsHmac(alg) ? mac && !pkey : pkey && !mac) << i;
            } else if (static_cast<Alg>(i) != alg && (mac || pkey)) {
                // only algorithms of the same key type may have one
                EXPECT_EQ(IsHmac(static_cast<Alg>(i)), IsHmac(alg)) << i;
            }
        }
        for (int round = 0; round < 3; ++round) {
            EXPECT_EQ(Reason(token, ks), "ok") << round;
            EXPECT_EQ(Reason(other, ks), "bad signature") << round;
        }
    }
}

TEST_P(EveryAlgorithm, AnotherKeyOfTheSameTypeIsABadSignature) {
    Alg alg = GetParam();
    std::string token = Token(alg, SignerFor(alg, /*second=*/true));
    for (const auto& [form, ks] : KeySetsFor(alg)) {
        EXPECT_EQ(Reason(token, ks), "bad signature") << form;
    }
}

TEST_P(EveryAlgorithm, TamperingIsABadSignature) {
    Alg alg = GetParam();
    std::string token = Token(alg, SignerFor(alg));
    size_t dot1 = token.find('.'), dot2 = token.rfind('.');
    KeySet ks = IsHmac(alg) ? SecretSet() : PemSet(KeyFor(alg));

    // another payload under the same signature
    std::string forged = token.substr(0, dot1 + 1) +
                         B64(R"({"sub":"admin","exp":1700003600,"groups":["a","b"]})") +
                         token.substr(dot2);
    EXPECT_EQ(Reason(forged, ks), "bad signature");

    // every byte of the signature matters (flip one bit in a few places)
    std::string sig = *base64url_decode(token.substr(dot2 + 1));
    for (size_t pos : {size_t(0), sig.size() / 2, sig.size() - 1}) {
        std::string bad = sig;
        bad[pos] = static_cast<char>(bad[pos] ^ 0x01);
        EXPECT_EQ(Reason(token.substr(0, dot2 + 1) + B64(bad), ks), "bad signature") << pos;
    }

    // a signature one byte short
    EXPECT_EQ(Reason(token.substr(0, dot2 + 1) + B64(sig.substr(0, sig.size() - 1)), ks),
              "bad signature");
}

TEST_P(EveryAlgorithm, ANarrowedListWithoutItRefuses) {
    Alg alg = GetParam();
    Policy policy;
    for (Alg a : {Alg::HS256, Alg::HS384, Alg::HS512, Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256,
                  Alg::PS384, Alg::PS512, Alg::ES256, Alg::ES384, Alg::EdDSA}) {
        if (a != alg) {
            policy.algorithms.push_back(a);
        }
    }
    KeySet ks = IsHmac(alg) ? SecretSet() : PemSet(KeyFor(alg));
    EXPECT_EQ(Reason(Token(alg, SignerFor(alg)), ks, policy), "algorithm not allowed");
}

INSTANTIATE_TEST_SUITE_P(Jwt, EveryAlgorithm,
                         ::testing::Values(Alg::HS256, Alg::HS384, Alg::HS512, Alg::RS256, Alg::RS384,
                                           Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512, Alg::ES256,
                                           Alg::ES384, Alg::EdDSA),
                         [](const ::testing::TestParamInfo<Alg>& info) {
                             return std::string(alg_name(info.param));
                         });

// ---------------------------------------------------------------------------
// every refusal reason

TEST(Refusals, Structure) {
    KeySet ks = SecretSet();
    EXPECT_EQ(Reason("", ks), "no token");
    for (std::string_view bad : {"abc", "a.b", "a.b.c.d", "..", "...", "a..b.c"}) {
        std::string r = Reason(bad, ks);
        if (bad == "..") {
            EXPECT_EQ(r, "malformed token header") << bad;  // empty header part
        } else {
            EXPECT_EQ(r, "malformed token (need header.payload.signature)") << bad;
        }
    }
    std::string good = Token(Alg::HS256, Secret(kSecret));
    EXPECT_EQ(Reason(good + ".", ks), "malformed token (need header.payload.signature)");
    EXPECT_EQ(Reason(good + ".x", ks), "malformed token (need header.payload.signature)");
}

TEST(Refusals, SizeLimitIsEightKilobytes) {
    KeySet ks = SecretSet();
    // Grow a padding claim (and the header) until the token is exactly 8192 bytes.
    std::string exact;
    for (size_t hpad = 0; hpad < 4 && exact.empty(); ++hpad) {
        for (size_t n = 6000; n < 6300; ++n) {
            std::string header = R"({"alg":"HS256","x":")" + std::string(hpad, 'h') + "\"}";
            std::string claims = R"({"sub":"alice","pad":")" + std::string(n, 'p') + "\"}";
            std::string t = Token(Alg::HS256, Secret(kSecret), header, claims);
            if (t.size() == kMaxTokenSize) {
                exact = t;
                break;
            }
        }
    }
    ASSERT_EQ(exact.size(), 8192u);
    EXPECT_EQ(Reason(exact, ks), "ok");

    std::string big = Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256),
                            R"({"sub":"alice","pad":")" + std::string(12000, 'p') + "\"}");
    ASSERT_GT(big.size(), 16000u);
    EXPECT_EQ(Reason(big, ks), "token too long");
    EXPECT_EQ(Reason(std::string(8193, 'a'), ks), "token too long");
}

TEST(Refusals, Header) {
    KeySet ks = SecretSet();
    auto with_header = [&](const std::string& header_json) {
        return Token(Alg::HS256, Secret(kSecret), header_json);
    };
    EXPECT_EQ(Reason(with_header("not json"), ks), "malformed token header");
    EXPECT_EQ(Reason(with_header(R"(["HS256"])"), ks), "malformed token header");
    EXPECT_EQ(Reason(with_header(R"("HS256")"), ks), "malformed token header");
    EXPECT_EQ(Reason(with_header(R"({"alg":"HS256")"), ks), "malformed token header");
    EXPECT_EQ(Reason(with_header(R"({"alg":"HS256","alg":"HS256"})"), ks), "malformed token header");
    // header part not base64url
    std::string good = Token(Alg::HS256, Secret(kSecret));
    EXPECT_EQ(Reason("eyJ*" + good.substr(good.find('.')), ks), "malformed token header");
    EXPECT_EQ(Reason(B64(HeaderJson(Alg::HS256)) + "=" + good.substr(good.find('.')), ks),
              "malformed token header");

    EXPECT_EQ(Reason(with_header(R"({"alg":"HS256","crit":["exp"],"exp":1})"), ks),
              "unsupported critical header");
    EXPECT_EQ(Reason(with_header(R"({"alg":"HS256","crit":[]})"), ks), "unsupported critical header");

    EXPECT_EQ(Reason(with_header(R"({"typ":"JWT"})"), ks), "unsupported algorithm");
    EXPECT_EQ(Reason(with_header(R"({"alg":256})"), ks), "unsupported algorithm");
    EXPECT_EQ(Reason(with_header(R"({"alg":"hs256"})"), ks), "unsupported algorithm");
    EXPECT_EQ(Reason(with_header(R"({"alg":"ES512"})"), ks), "unsupported algorithm");
    EXPECT_EQ(Reason(with_header(R"({"alg":"HS256","kid":5})"), ks), "malformed kid");
}

TEST(Refusals, AlgNoneIsNeverAccepted) {
    KeySet ks = SecretSet();
    std::string input = B64(R"({"alg":"none","typ":"JWT"})") + "." + B64(kClaims);
    EXPECT_EQ(Reason(input + ".", ks), "unsigned token (alg none)");
    EXPECT_EQ(Reason(input + "." + B64("sig"), ks), "unsigned token (alg none)");
    EXPECT_EQ(Reason(input + "." + B64(SignBytes(Alg::HS256, Secret(kSecret), input)), ks),
              "unsigned token (alg none)");
    Policy p;
    p.algorithms = {Alg::HS256};
    EXPECT_EQ(Reason(input + ".", ks, p), "unsigned token (alg none)");
    for (std::string_view variant : {"None", "NONE", "nOnE"}) {
        std::string t = B64(R"({"alg":")" + std::string(variant) + "\"}") + "." + B64(kClaims) + ".";
        EXPECT_NE(Reason(t, ks), "ok") << variant;
    }
}

TEST(Refusals, PayloadAndSignature) {
    KeySet ks = SecretSet();
    auto with_claims = [&](const std::string& claims_json) {
        return Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256), claims_json);
    };
    EXPECT_EQ(Reason(with_claims("not json"), ks), "malformed token payload");
    EXPECT_EQ(Reason(with_claims(R"(["alice"])"), ks), "malformed token payload");
    EXPECT_EQ(Reason(with_claims(R"({"sub":"alice","sub":"admin"})"), ks), "malformed token payload");
    EXPECT_EQ(Reason(with_claims(""), ks), "malformed token payload");

    std::string good = Token(Alg::HS256, Secret(kSecret));
    size_t dot2 = good.rfind('.');
    std::string head = good.substr(0, dot2 + 1), sig = good.substr(dot2 + 1);
    EXPECT_EQ(Reason(head, ks), "malformed token signature");                     // empty
    EXPECT_EQ(Reason(head + sig + "=", ks), "malformed token signature");         // padding
    EXPECT_EQ(Reason(head + "+" + sig.substr(1), ks), "malformed token signature");
    EXPECT_NE(Reason(head + sig.substr(0, sig.size() - 1), ks), "ok");  // malformed or short
    EXPECT_EQ(Reason(head + sig.substr(0, sig.size() - 3), ks), "bad signature");  // 40 chars: 30 bytes
    std::string p64 = good.substr(good.find('.') + 1, dot2 - good.find('.') - 1);
    EXPECT_EQ(Reason(good.substr(0, good.find('.') + 1) + p64 + "*." + sig, ks),
              "malformed token payload");
}

TEST(Refusals, KeySelection) {
    KeySet ks = JwkSet(R"({"keys":[{"kty":"oct","kid":"one","k":")" + B64(kSecret) +
                       R"("},{"kty":"oct","kid":"two","k":")" + B64(kSecret2) + "\"}]}");
    ASSERT_EQ(ks.keys().size(), 2u);
    EXPECT_EQ(ks.keys()[0].kid, "one");
    EXPECT_EQ(ks.keys()[1].kid, "two");

    EXPECT_EQ(Reason(Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256, "one")), ks), "ok");
    EXPECT_EQ(Reason(Token(Alg::HS256, Secret(kSecret2), HeaderJson(Alg::HS256, "two")), ks), "ok");
    // the kid names the key: no falling back to the other one
    EXPECT_EQ(Reason(Token(Alg::HS256, Secret(kSecret2), HeaderJson(Alg::HS256, "one")), ks),
              "bad signature");
    EXPECT_EQ(Reason(Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256, "three")), ks),
              "no key with the token's kid for its algorithm");
    EXPECT_EQ(Reason(Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256, "ONE")), ks),
              "no key with the token's kid for its algorithm");
    // without a kid every key of the right type is tried
    EXPECT_EQ(Reason(Token(Alg::HS256, Secret(kSecret2)), ks), "ok");
    EXPECT_EQ(Reason(Token(Alg::HS256, Secret("a third secret nobody configured!!")), ks),
              "bad signature");
}

TEST(Refusals, KeyRotationAcrossSources) {
    // An old PEM key and a new JWKS key (with kid) in one set, as two
    // realtime_auth_jwt_key_file lines would load them.
    KeySet ks;
    std::string error;
    ASSERT_TRUE(ks.load_pem(PublicPem(K().rsa.get()), &error)) << error;
    ASSERT_TRUE(ks.load_jwk_json(R"({"keys":[)" + Jwk(K().rsa2.get(), KeyType::kRsa, R"("kid":"2024")") +
                                 "]}", &error)) << error;
    EXPECT_EQ(Reason(Token(Alg::RS256, Private(K().rsa.get())), ks), "ok");
    EXPECT_EQ(Reason(Token(Alg::RS256, Private(K().rsa2.get())), ks), "ok");
    EXPECT_EQ(Reason(Token(Alg::RS256, Private(K().rsa2.get()), HeaderJson(Alg::RS256, "2024")), ks), "ok");
    EXPECT_EQ(Reason(Token(Alg::RS256, Private(K().rsa.get()), HeaderJson(Alg::RS256, "2024")), ks),
              "bad signature");
}

TEST(Refusals, Claims) {
    KeySet ks = SecretSet();
    auto with_claims = [&](const std::string& claims_json) {
        return Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256), claims_json);
    };
    EXPECT_EQ(Reason(with_claims(R"({"sub":"a","exp":"1700003600"})"), ks), "exp and nbf must be numbers");
    EXPECT_EQ(Reason(with_claims(R"({"sub":"a","exp":null})"), ks), "exp and nbf must be numbers");
    EXPECT_EQ(Reason(with_claims(R"({"sub":"a","nbf":true})"), ks), "exp and nbf must be numbers");
    EXPECT_EQ(Reason(with_claims(R"({"sub":"a","nbf":[1]})"), ks), "exp and nbf must be numbers");
    EXPECT_EQ(Reason(with_claims(R"({"sub":"a","exp":1699999999})"), ks), "token expired");
    EXPECT_EQ(Reason(with_claims(R"({"sub":"a","nbf":1700000001})"), ks), "token not valid yet (nbf)");
    // no time claims at all: valid, never expires
    Verified v = verify(with_claims(R"({"sub":"a"})"), ks, Policy{}, kNow);
    ASSERT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.exp, 0);
}

// ---------------------------------------------------------------------------
// time claims at their boundaries: expired when now >= exp + leeway; not yet
// valid when now + leeway < nbf

TEST(Time, ExpBoundaryWithoutLeeway) {
    KeySet ks = SecretSet();
    std::string t = Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256), R"({"sub":"a","exp":1700000000})");
    EXPECT_EQ(Reason(t, ks, {}, kNow - 1), "ok");
    EXPECT_EQ(Reason(t, ks, {}, kNow), "token expired");
    EXPECT_EQ(Reason(t, ks, {}, kNow + 1), "token expired");
    EXPECT_EQ(verify(t, ks, {}, kNow - 1).exp, kNow);
}

TEST(Time, ExpBoundaryWithLeeway) {
    KeySet ks = SecretSet();
    Policy p;
    p.leeway = 30;
    std::string t = Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256), R"({"sub":"a","exp":1700000000})");
    EXPECT_EQ(Reason(t, ks, p, kNow), "ok");
    EXPECT_EQ(Reason(t, ks, p, kNow + 29), "ok");
    EXPECT_EQ(Reason(t, ks, p, kNow + 30), "token expired");
    EXPECT_EQ(Reason(t, ks, p, kNow + 31), "token expired");
    // the reported exp is the token's, without the leeway
    EXPECT_EQ(verify(t, ks, p, kNow + 29).exp, kNow);
}

TEST(Time, NbfBoundaryWithAndWithoutLeeway) {
    KeySet ks = SecretSet();
    std::string t = Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256), R"({"sub":"a","nbf":1700000000})");
    EXPECT_EQ(Reason(t, ks, {}, kNow), "ok");
    EXPECT_EQ(Reason(t, ks, {}, kNow + 1000), "ok");
    EXPECT_EQ(Reason(t, ks, {}, kNow - 1), "token not valid yet (nbf)");
    Policy p;
    p.leeway = 30;
    EXPECT_EQ(Reason(t, ks, p, kNow - 30), "ok");
    EXPECT_EQ(Reason(t, ks, p, kNow - 31), "token not valid yet (nbf)");
}

TEST(Time, FractionalNumericDates) {
    KeySet ks = SecretSet();
    std::string t = Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256),
                          R"({"sub":"a","exp":1700000010.0,"nbf":1699999990.0})");
    EXPECT_EQ(Reason(t, ks, {}, kNow), "ok");
    EXPECT_EQ(Reason(t, ks, {}, kNow + 10), "token expired");
    EXPECT_EQ(Reason(t, ks, {}, kNow - 11), "token not valid yet (nbf)");
}

// A NumericDate beyond the range of int64 (legal JSON) must not turn "far in
// the future" into "long ago".
TEST(Time, HugeNbfIsNotValidYet) {
    KeySet ks = SecretSet();
    for (std::string_view nbf : {"1e19", "1e300", "9.3e18"}) {
        std::string t = Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256),
                              R"({"sub":"a","nbf":)" + std::string(nbf) + "}");
        EXPECT_EQ(Reason(t, ks), "token not valid yet (nbf)") << "nbf " << nbf;
    }
}

TEST(Time, HugeExpIsNotExpired) {
    KeySet ks = SecretSet();
    for (std::string_view exp : {"1e19", "1e300", "9.3e18"}) {
        std::string t = Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256),
                              R"({"sub":"a","exp":)" + std::string(exp) + "}");
        EXPECT_EQ(Reason(t, ks), "ok") << "exp " << exp;
    }
}

// exp close to INT64_MAX plus a leeway: the sum must not overflow (signed
// overflow is undefined; under UBSan it aborts). Run in a child process so
// that a failure does not take the whole unit-test binary down.
TEST(TimeDeathTest, ExpNearInt64MaxWithLeewayDoesNotOverflow) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    KeySet ks = SecretSet();
    Policy p;
    p.leeway = 3600;  // "realtime_auth_jwt_leeway 1h;"
    // 2^63 - 1024: an exact double, so it survives the cast; + 3600 does not fit
    std::string t = Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256),
                          R"({"sub":"a","exp":9223372036854774784})");
    EXPECT_EXIT(
        {
            Verified v = verify(t, ks, p, kNow);
            std::exit(v.ok ? 0 : 1);
        },
        ::testing::ExitedWithCode(0), "");
}

// ---------------------------------------------------------------------------
// issuer and audience

TEST(Claims, Issuer) {
    KeySet ks = SecretSet();
    Policy p;
    p.issuer = "https://issuer.test";
    auto with = [&](const std::string& claims_json) {
        return Reason(Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256), claims_json), ks, p);
    };
    EXPECT_EQ(with(R"({"iss":"https://issuer.test"})"), "ok");
    EXPECT_EQ(with(R"({"iss":"https://issuer.test/"})"), "wrong issuer");
    EXPECT_EQ(with(R"({"iss":"https://ISSUER.test"})"), "wrong issuer");
    EXPECT_EQ(with(R"({"iss":["https://issuer.test"]})"), "wrong issuer");
    EXPECT_EQ(with(R"({"sub":"a"})"), "wrong issuer");
    // not required when not configured
    EXPECT_EQ(Reason(Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256), R"({"iss":"x"})"), ks), "ok");
}

TEST(Claims, AudienceStringAndArray) {
    KeySet ks = SecretSet();
    Policy p;
    p.audience = "rt-api";
    auto with = [&](const std::string& claims_json) {
        return Reason(Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256), claims_json), ks, p);
    };
    EXPECT_EQ(with(R"({"aud":"rt-api"})"), "ok");
    EXPECT_EQ(with(R"({"aud":["other","rt-api"]})"), "ok");
    EXPECT_EQ(with(R"({"aud":["rt-api"]})"), "ok");
    EXPECT_EQ(with(R"({"aud":[1,null,{"a":"rt-api"},"rt-api"]})"), "ok");
    EXPECT_EQ(with(R"({"aud":"rt-api2"})"), "wrong audience");
    EXPECT_EQ(with(R"({"aud":"rt"})"), "wrong audience");
    EXPECT_EQ(with(R"({"aud":["other","rt-apix"]})"), "wrong audience");
    EXPECT_EQ(with(R"({"aud":[]})"), "wrong audience");
    EXPECT_EQ(with(R"({"aud":[["rt-api"]]})"), "wrong audience");
    EXPECT_EQ(with(R"({"aud":42})"), "wrong audience");
    EXPECT_EQ(with(R"({"sub":"a"})"), "wrong audience");
    // not required when not configured
    EXPECT_EQ(Reason(Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256), R"({"aud":"x"})"), ks), "ok");
}

TEST(Claims, RefusalOrderTimeBeforeIssuerBeforeAudience) {
    KeySet ks = SecretSet();
    Policy p;
    p.issuer = "i";
    p.audience = "a";
    std::string t = Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256),
                          R"({"exp":1,"iss":"x","aud":"y"})");
    EXPECT_EQ(Reason(t, ks, p), "token expired");
    t = Token(Alg::HS256, Secret(kSecret), HeaderJson(Alg::HS256), R"({"iss":"x","aud":"y"})");
    EXPECT_EQ(Reason(t, ks, p), "wrong issuer");
    // a bad signature is reported before any claim is looked at
    t = Token(Alg::HS256, Secret(kSecret2), HeaderJson(Alg::HS256), R"({"exp":1,"iss":"x","aud":"y"})");
    EXPECT_EQ(Reason(t, ks, p), "bad signature");
}

TEST(Claims, ValueText) {
    JsonPtr obj(json_loads(R"({"sub":"alice","n":42,"f":1.5,"b":true,"a":["x",1],"o":{"k":"v"},"z":null,"e":""})",
                           0, nullptr));
    ASSERT_TRUE(obj);
    EXPECT_EQ(value_text(obj.get(), "sub"), "alice");
    EXPECT_EQ(value_text(obj.get(), "n"), "42");
    EXPECT_EQ(value_text(obj.get(), "f"), "1.5");
    EXPECT_EQ(value_text(obj.get(), "b"), "true");
    EXPECT_EQ(value_text(obj.get(), "a"), R"(["x",1])");
    EXPECT_EQ(value_text(obj.get(), "o"), R"({"k":"v"})");
    EXPECT_EQ(value_text(obj.get(), "z"), "null");
    EXPECT_EQ(value_text(obj.get(), "e"), "");
    EXPECT_FALSE(value_text(obj.get(), "missing").has_value());
    EXPECT_FALSE(value_text(obj.get(), "SUB").has_value());  // exact here; nginx matches case-insensitively
}

// ---------------------------------------------------------------------------
// key-type confusion: an algorithm only ever uses its own kind of key

TEST(KeyConfusion, Hs256SignedWithThePublicKeyPem) {
    std::string pem = PublicPem(K().rsa.get());
    std::string forged = Token(Alg::HS256, Secret(pem));
    KeySet rsa_only = PemSet(K().rsa.get());
    EXPECT_EQ(Reason(forged, rsa_only), "no key for the token's algorithm");
    EXPECT_EQ(Reason(Token(Alg::HS512, Secret(pem)), rsa_only), "no key for the token's algorithm");

    // with an HMAC secret configured too, the PEM is still not a secret
    KeySet both = PemSet(K().rsa.get());
    both.add_hmac_secret(kSecret);
    EXPECT_EQ(Reason(forged, both), "bad signature");
    EXPECT_EQ(Reason(Token(Alg::HS256, Secret(kSecret)), both), "ok");
    EXPECT_EQ(Reason(Token(Alg::RS256, Private(K().rsa.get())), both), "ok");

    // the same with the JWK form of the RSA key, and with an EC public key
    KeySet jwk = JwkSet(Jwk(K().rsa.get(), KeyType::kRsa));
    EXPECT_EQ(Reason(forged, jwk), "no key for the token's algorithm");
    std::string ec_pem = PublicPem(K().p256.get());
    EXPECT_EQ(Reason(Token(Alg::HS256, Secret(ec_pem)), PemSet(K().p256.get())),
              "no key for the token's algorithm");
}

TEST(KeyConfusion, AsymmetricAlgorithmsNeedTheirCurveAndType) {
    KeySet rsa = PemSet(K().rsa.get()), p256 = PemSet(K().p256.get()), p384 = PemSet(K().p384.get()),
           ed = PemSet(K().ed.get()), secret = SecretSet();
    const std::string none = "no key for the token's algorithm";
    EXPECT_EQ(Reason(Token(Alg::ES256, Private(K().p256.get())), rsa), none);
    EXPECT_EQ(Reason(Token(Alg::ES256, Private(K().p256.get())), p384), none);
    EXPECT_EQ(Reason(Token(Alg::ES384, Private(K().p384.get())), p256), none);
    EXPECT_EQ(Reason(Token(Alg::RS256, Private(K().rsa.get())), p256), none);
    EXPECT_EQ(Reason(Token(Alg::PS256, Private(K().rsa.get())), ed), none);
    EXPECT_EQ(Reason(Token(Alg::EdDSA, Private(K().ed.get())), p256), none);
    EXPECT_EQ(Reason(Token(Alg::EdDSA, Private(K().ed.get())), secret), none);
    EXPECT_EQ(Reason(Token(Alg::RS256, Private(K().rsa.get())), secret), none);

    // an ES256 signature relabelled ES384 (and the reverse) with both curves loaded
    KeySet both_curves = PemSet(K().p256.get());
    std::string error;
    ASSERT_TRUE(both_curves.load_pem(PublicPem(K().p384.get()), &error)) << error;
    std::string es256 = Token(Alg::ES256, Private(K().p256.get()));
    std::string relabelled = B64(HeaderJson(Alg::ES384)) + es256.substr(es256.find('.'));
    EXPECT_EQ(Reason(es256, both_curves), "ok");
    EXPECT_EQ(Reason(relabelled, both_curves), "bad signature");
}

TEST(KeyConfusion, RsaPaddingsAreNotInterchangeable) {
    KeySet rsa = PemSet(K().rsa.get());
    for (auto [signed_as, labelled_as] : {std::pair{Alg::RS256, Alg::PS256}, std::pair{Alg::PS256, Alg::RS256},
                                          std::pair{Alg::RS256, Alg::RS384}, std::pair{Alg::PS384, Alg::PS512}}) {
        std::string input = B64(HeaderJson(labelled_as)) + "." + B64(kClaims);
        std::string sig = SignBytes(signed_as, Private(K().rsa.get()), input);
        EXPECT_EQ(Reason(input + "." + B64(sig), rsa), "bad signature")
            << alg_name(signed_as) << " labelled " << alg_name(labelled_as);
    }
}

TEST(KeyConfusion, EcdsaSignatureMustBeRawNotDer) {
    for (Alg alg : {Alg::ES256, Alg::ES384}) {
        KeySet ks = PemSet(KeyFor(alg));
        std::string input = B64(HeaderJson(alg)) + "." + B64(kClaims);
        std::string der = SignBytes(alg, Private(KeyFor(alg)), input, /*der_ecdsa=*/true);
        EXPECT_EQ(Reason(input + "." + B64(der), ks), "bad signature") << alg_name(alg);
        std::string raw = SignBytes(alg, Private(KeyFor(alg)), input);
        EXPECT_EQ(Reason(input + "." + B64(raw), ks), "ok") << alg_name(alg);
        // r || s with one extra byte, or r only
        EXPECT_EQ(Reason(input + "." + B64(raw + std::string(1, '\0')), ks), "bad signature");
        EXPECT_EQ(Reason(input + "." + B64(raw.substr(0, raw.size() / 2)), ks), "bad signature");
        // all zero r and s
        EXPECT_EQ(Reason(input + "." + B64(std::string(raw.size(), '\0')), ks), "bad signature");
    }
}

// ---------------------------------------------------------------------------
// loading keys

class TempFile {
public:
    explicit TempFile(const std::string& content) {
        char name[] = "/tmp/jwt_test_XXXXXX";
        int fd = mkstemp(name);
        EXPECT_GE(fd, 0);
        path_ = name;
        EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
        close(fd);
    }
    ~TempFile() { std::remove(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

std::string LoadError(const std::string& content) {
    TempFile f(content);
    KeySet ks;
    std::string error;
    if (ks.load_file(f.path(), &error)) {
        return "ok";
    }
    EXPECT_FALSE(error.empty());
    return error;
}

bool Contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

TEST(LoadFile, HmacSecretFiles) {
    EXPECT_TRUE(Contains(LoadError(std::string(31, 's')), "shorter than 32 bytes"));
    EXPECT_TRUE(Contains(LoadError(std::string(31, 's') + "\n"), "shorter than 32 bytes"));
    EXPECT_TRUE(Contains(LoadError(std::string(31, 's') + "\r\n"), "shorter than 32 bytes"));
    EXPECT_TRUE(Contains(LoadError(""), "shorter than 32 bytes"));
    EXPECT_EQ(LoadError(std::string(32, 's')), "ok");

    // one trailing newline is not part of the secret; other bytes are
    for (std::string_view ending : {"", "\n", "\r\n"}) {
        TempFile f(kSecret + std::string(ending));
        KeySet ks;
        std::string error;
        ASSERT_TRUE(ks.load_file(f.path(), &error)) << error;
        ASSERT_EQ(ks.keys().size(), 1u);
        EXPECT_EQ(ks.keys()[0].kind, Key::Kind::kHmac);
        EXPECT_EQ(ks.keys()[0].secret, kSecret);
        EXPECT_EQ(Reason(Token(Alg::HS256, Secret(kSecret)), ks), "ok");
    }
    TempFile two(kSecret + "\n\n");
    KeySet ks;
    std::string error;
    ASSERT_TRUE(ks.load_file(two.path(), &error)) << error;
    EXPECT_EQ(ks.keys()[0].secret, kSecret + "\n");
}

TEST(LoadFile, MissingFile) {
    KeySet ks;
    std::string error;
    EXPECT_FALSE(ks.load_file("/nonexistent/dir/jwt.key", &error));
    EXPECT_TRUE(Contains(error, "cannot open")) << error;
}

TEST(LoadFile, PemFiles) {
    // several blocks, after blank lines
    std::string pems = "\n\n" + PublicPem(K().rsa.get()) + PublicPem(K().p256.get()) +
                       PublicPem(K().p384.get()) + PublicPem(K().ed.get());
    TempFile f(pems);
    KeySet ks;
    std::string error;
    ASSERT_TRUE(ks.load_file(f.path(), &error)) << error;
    ASSERT_EQ(ks.keys().size(), 4u);
    EXPECT_EQ(ks.keys()[0].kind, Key::Kind::kRsa);
    EXPECT_EQ(ks.keys()[1].kind, Key::Kind::kEcP256);
    EXPECT_EQ(ks.keys()[2].kind, Key::Kind::kEcP384);
    EXPECT_EQ(ks.keys()[3].kind, Key::Kind::kEd25519);
    for (Alg alg : {Alg::RS256, Alg::PS512, Alg::ES256, Alg::ES384, Alg::EdDSA}) {
        EXPECT_EQ(Reason(Token(alg, SignerFor(alg)), ks), "ok") << alg_name(alg);
    }

    // private keys are not public keys
    EXPECT_TRUE(Contains(LoadError(PrivatePem(K().rsa.get())), "could not be read as a public key"));
    EXPECT_TRUE(Contains(LoadError("-----BEGIN PUBLIC KEY-----\nnot base64 !!\n-----END PUBLIC KEY-----\n"),
                         "could not be read as a public key"));
    EXPECT_TRUE(Contains(LoadError("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
                         "could not be read as a public key"));

    // PKCS#1 "RSA PUBLIC KEY" (the type-specific encoding of an RSA public key):
    // either refused or read as the very same key
    {
        OSSL_ENCODER_CTX* ectx = OSSL_ENCODER_CTX_new_for_pkey(K().rsa.get(), EVP_PKEY_PUBLIC_KEY, "PEM",
                                                               "type-specific", nullptr);
        ASSERT_NE(ectx, nullptr);
        unsigned char* data = nullptr;
        size_t len = 0;
        ASSERT_EQ(OSSL_ENCODER_to_data(ectx, &data, &len), 1);
        OSSL_ENCODER_CTX_free(ectx);
        std::string pkcs1(reinterpret_cast<char*>(data), len);
        OPENSSL_free(data);
        ASSERT_TRUE(Contains(pkcs1, "BEGIN RSA PUBLIC KEY")) << pkcs1;
        // OpenSSL 3 reads it as the same RSA key (despite the module's error
        // text saying such blocks are not accepted); it must then verify.
        TempFile f(pkcs1);
        KeySet ks1;
        std::string error1;
        if (ks1.load_file(f.path(), &error1)) {
            ASSERT_EQ(ks1.keys().size(), 1u);
            EXPECT_EQ(ks1.keys()[0].kind, Key::Kind::kRsa);
            EXPECT_EQ(Reason(Token(Alg::RS256, Private(K().rsa.get())), ks1), "ok");
        }
    }

    // curves and types the JWS algorithms here do not cover
    PkeyPtr p521(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521"));
    PkeyPtr k256(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp256k1"));
    PkeyPtr ed448(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED448"));
    for (EVP_PKEY* k : {p521.get(), k256.get(), ed448.get()}) {
        ASSERT_NE(k, nullptr);
        EXPECT_TRUE(Contains(LoadError(PublicPem(k)), "unsupported public key type")) << PublicPem(k);
    }
    // a good key followed by an unsupported one fails the whole file
    EXPECT_TRUE(Contains(LoadError(PublicPem(K().rsa.get()) + PublicPem(p521.get())),
                         "unsupported public key type"));
}

// Key rotation appends keys to a file; a block that cannot be read (a bad
// copy) must fail "nginx -t" rather than silently drop it and every block
// after it.
TEST(LoadFile, PemFileWithAnUnreadableBlockFails) {
    std::string good1 = PublicPem(K().rsa.get()), good2 = PublicPem(K().p256.get());
    std::string corrupt = PublicPem(K().rsa2.get());
    corrupt.replace(corrupt.find('\n') + 10, 8, "********");  // inside the base64 body
    std::string text = good1 + corrupt + good2;
    TempFile f(text);
    KeySet ks;
    std::string error;
    bool ok = ks.load_file(f.path(), &error);
    EXPECT_FALSE(ok) << "loaded " << ks.keys().size() << " of 3 blocks without an error";
}

// A PEM file is recognised after leading whitespace; a BEGIN line that is
// indented is then not read as a block by OpenSSL, so it must not be
// silently skipped either.
TEST(LoadFile, IndentedPemBlockIsNotSilentlySkipped) {
    std::string text = "  " + PublicPem(K().rsa.get()) + PublicPem(K().p256.get());
    TempFile f(text);
    KeySet ks;
    std::string error;
    bool ok = ks.load_file(f.path(), &error);
    EXPECT_TRUE(!ok || ks.keys().size() == 2u)
        << "loaded " << ks.keys().size() << " of 2 blocks without an error";
}

TEST(LoadFile, JwkAndJwksFiles) {
    std::string jwks = R"({"keys":[)" + Jwk(K().rsa.get(), KeyType::kRsa, R"("kid":"r","alg":"RS256")") + "," +
                       Jwk(K().p256.get(), KeyType::kP256, R"("kid":"e")") + "," +
                       Jwk(K().ed.get(), KeyType::kEd25519, R"("kid":"d")") + "," +
                       R"({"kty":"oct","kid":"h","k":")" + B64(kSecret) + "\"}]}";
    TempFile f("  " + jwks + "\n");
    KeySet ks;
    std::string error;
    ASSERT_TRUE(ks.load_file(f.path(), &error)) << error;
    ASSERT_EQ(ks.keys().size(), 4u);
    EXPECT_EQ(ks.keys()[0].kid, "r");
    EXPECT_EQ(ks.keys()[3].kind, Key::Kind::kHmac);
    EXPECT_EQ(Reason(Token(Alg::RS256, SignerFor(Alg::RS256), HeaderJson(Alg::RS256, "r")), ks), "ok");
    EXPECT_EQ(Reason(Token(Alg::ES256, SignerFor(Alg::ES256), HeaderJson(Alg::ES256, "e")), ks), "ok");
    EXPECT_EQ(Reason(Token(Alg::EdDSA, SignerFor(Alg::EdDSA), HeaderJson(Alg::EdDSA, "d")), ks), "ok");
    EXPECT_EQ(Reason(Token(Alg::HS384, SignerFor(Alg::HS384), HeaderJson(Alg::HS384, "h")), ks), "ok");
    // the kid of an EC key does not pick an RSA key
    EXPECT_EQ(Reason(Token(Alg::RS256, SignerFor(Alg::RS256), HeaderJson(Alg::RS256, "e")), ks),
              "no key with the token's kid for its algorithm");

    // a single JWK file
    TempFile single(Jwk(K().p384.get(), KeyType::kP384));
    KeySet one;
    ASSERT_TRUE(one.load_file(single.path(), &error)) << error;
    EXPECT_EQ(Reason(Token(Alg::ES384, SignerFor(Alg::ES384)), one), "ok");
}

TEST(LoadFile, EncryptionKeysAreSkipped) {
    KeySet ks = JwkSet(R"({"keys":[)" + Jwk(K().rsa.get(), KeyType::kRsa, R"("use":"enc","kid":"x")") + "," +
                       Jwk(K().rsa2.get(), KeyType::kRsa, R"("use":"sig","kid":"x")") + "]}");
    ASSERT_EQ(ks.keys().size(), 1u);
    EXPECT_EQ(Reason(Token(Alg::RS256, Private(K().rsa2.get()), HeaderJson(Alg::RS256, "x")), ks), "ok");
    EXPECT_EQ(Reason(Token(Alg::RS256, Private(K().rsa.get()), HeaderJson(Alg::RS256, "x")), ks),
              "bad signature");
    // only encryption keys: loads, but holds nothing (nginx then refuses the config)
    KeySet enc = JwkSet(R"({"keys":[)" + Jwk(K().rsa.get(), KeyType::kRsa, R"("use":"enc")") + "]}");
    EXPECT_TRUE(enc.empty());
}

TEST(LoadFile, JwksErrors) {
    auto err = [](const std::string& json) {
        KeySet ks;
        std::string error;
        EXPECT_FALSE(ks.load_jwk_json(json, &error)) << json;
        return error;
    };
    std::string x32 = B64(std::string(32, '\x01')), x48 = B64(std::string(48, '\x01'));
    EXPECT_TRUE(Contains(err("{\"keys\": [}"), "invalid JSON"));
    EXPECT_TRUE(Contains(err("{"), "invalid JSON"));
    EXPECT_TRUE(Contains(err("[]"), "must be a JSON object"));
    EXPECT_TRUE(Contains(err(R"({"keys":[]})"), "non-empty array"));
    EXPECT_TRUE(Contains(err(R"({"keys":{}})"), "non-empty array"));
    EXPECT_TRUE(Contains(err(R"({"keys":"x"})"), "non-empty array"));
    EXPECT_TRUE(Contains(err(R"({"keys":[1]})"), "key 0: a JWK must be a JSON object"));
    EXPECT_TRUE(Contains(err(R"({"kty":"oct"})"), "kty \"oct\" needs a base64url \"k\""));
    EXPECT_TRUE(Contains(err(R"({"kty":"oct","k":""})"), "kty \"oct\" needs"));
    EXPECT_TRUE(Contains(err(R"({"kty":"oct","k":"a+b/"})"), "kty \"oct\" needs"));
    EXPECT_TRUE(Contains(err(R"({"kty":"RSA","e":"AQAB"})"), "kty \"RSA\" needs base64url \"n\" and \"e\""));
    EXPECT_TRUE(Contains(err(R"({"kty":"RSA","n":"AQAB"})"), "kty \"RSA\" needs"));
    EXPECT_TRUE(Contains(err(R"({"kty":"RSA","n":"AQ=B","e":"AQAB"})"), "kty \"RSA\" needs"));
    EXPECT_TRUE(Contains(err(R"({"kty":"EC","crv":"P-521","x":")" + x32 + R"(","y":")" + x32 + "\"}"),
                         "kty \"EC\" needs crv P-256 or P-384"));
    EXPECT_TRUE(Contains(err(R"({"kty":"EC","crv":"P-256","x":")" + x48 + R"(","y":")" + x48 + "\"}"),
                         "kty \"EC\" needs"));
    EXPECT_TRUE(Contains(err(R"({"kty":"EC","crv":"P-256","x":")" + x32 + "\"}"), "kty \"EC\" needs"));
    // right sizes, but not a point on the curve
    EXPECT_TRUE(Contains(err(R"({"kty":"EC","crv":"P-256","x":")" + x32 + R"(","y":")" + x32 + "\"}"),
                         "public key is invalid"));
    EXPECT_TRUE(Contains(err(R"({"kty":"OKP","crv":"Ed448","x":")" + x32 + "\"}"), "kty \"OKP\" needs crv Ed25519"));
    EXPECT_TRUE(Contains(err(R"({"kty":"OKP","crv":"Ed25519","x":")" + x48 + "\"}"), "32-byte"));
    EXPECT_TRUE(Contains(err(R"({"kty":"DSA"})"), "unsupported JWK kty"));
    EXPECT_TRUE(Contains(err(R"({"n":"AQAB"})"), "unsupported JWK kty"));
    // one bad key fails the set, and names its index
    std::string bad = R"({"keys":[{"kty":"oct","k":")" + B64(kSecret) + R"("},{"kty":"RSA"}]})";
    EXPECT_TRUE(Contains(err(bad), "key 1: ")) << err(bad);

    // through load_file, JSON is recognised by content
    EXPECT_TRUE(Contains(LoadError(R"({"keys":[]})"), "non-empty array"));
    EXPECT_TRUE(Contains(LoadError("{not json at all, but long enough to be a secret}"), "invalid JSON"));
}

}  // namespace
}  // namespace realtime::jwt
