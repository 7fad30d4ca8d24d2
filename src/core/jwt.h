// JSON Web Token (JWS compact serialization) verification with OpenSSL 3.
//
// Keys are loaded once, at configuration time, from PEM public keys (RSA,
// EC P-256/P-384, Ed25519), JWKS or single-JWK files (kty RSA, EC, OKP,
// oct) and HMAC secret files. A token is accepted only if its algorithm is
// allowed, fits the type of the key that verifies it (an RSA public key is
// never used as an HMAC secret), its signature verifies, and its time and
// audience claims hold. "none" is never accepted. The clock is an argument,
// so tests can fix it.
#pragma once

#include <jansson.h>
#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace realtime::jwt {

enum class Alg { HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA };
constexpr size_t kAlgCount = 12;

std::optional<Alg> parse_alg(std::string_view name) noexcept;
std::string_view alg_name(Alg alg) noexcept;

struct JsonDecref {
    void operator()(json_t* j) const noexcept { json_decref(j); }
};
using JsonPtr = std::unique_ptr<json_t, JsonDecref>;

struct PkeyFree {
    void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};

struct MdCtxFree {
    void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
struct MacCtxFree {
    void operator()(EVP_MAC_CTX* c) const noexcept { EVP_MAC_CTX_free(c); }
};

struct Key {
    enum class Kind { kHmac, kRsa, kEcP256, kEcP384, kEd25519 };
    Kind kind;
    std::string kid;                    // empty: matches tokens without kid
    std::string secret;                 // kHmac
    std::shared_ptr<EVP_PKEY> pkey;     // the others

    // Per algorithm that fits the key, a context initialised once when the
    // key is loaded (digest fetched, key bound, padding set) that each
    // verification copies: cheaper than fetching and initialising again.
    // Null: verify initialises its own.
    std::array<std::shared_ptr<EVP_MD_CTX>, kAlgCount> verifiers;  // pkey
    std::array<std::shared_ptr<EVP_MAC_CTX>, kAlgCount> macs;      // kHmac
};

class KeySet {
public:
    // Loads every key a file holds. The format is recognised by content:
    // PEM ("-----BEGIN"), JSON (a JWKS {"keys": [...]} or one JWK), or
    // anything else as an HMAC secret (one trailing newline removed).
    // Returns false with a message that names the problem.
    bool load_file(const std::string& path, std::string* error);
    bool load_pem(std::string_view pem, std::string* error);
    bool load_jwk_json(std::string_view json, std::string* error);
    void add_hmac_secret(std::string secret, std::string kid = std::string());

    const std::vector<Key>& keys() const noexcept { return keys_; }
    bool empty() const noexcept { return keys_.empty(); }

private:
    bool add_jwk(json_t* jwk, std::string* error);

    std::vector<Key> keys_;
};

struct Policy {
    std::vector<Alg> algorithms;  // empty: every algorithm that fits a key
    int64_t leeway = 0;           // seconds of clock skew allowed for exp/nbf
    std::string issuer;           // required "iss" when not empty
    std::string audience;         // required in "aud" (string or array) when not empty
};

constexpr size_t kMaxTokenSize = 8192;

struct Verified {
    bool ok = false;
    std::string_view reason;  // static text: why the token was refused
    JsonPtr header;
    JsonPtr claims;
    int64_t exp = 0;  // 0: the token does not expire
    bool has_exp = false;         // the token has an exp claim (then in exp)
    std::optional<int64_t> nbf;   // its nbf claim, if any
    bool cached = false;          // a VerifiedCache hit, not verified now
};

Verified verify(std::string_view token, const KeySet& keys, const Policy& policy, int64_t now);

// base64url without padding (RFC 7515 §2); nullopt on any invalid input.
std::optional<std::string> base64url_decode(std::string_view in);
std::string base64url_encode(std::string_view in);

// A claim or header value as text for nginx variables: strings verbatim,
// other JSON compactly serialized; nullopt when absent.
std::optional<std::string> value_text(const json_t* object, std::string_view name);

}  // namespace realtime::jwt
