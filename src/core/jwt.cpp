#include "jwt.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <array>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace realtime::jwt {

namespace {

struct AlgInfo {
    Alg alg;
    std::string_view name;
};

constexpr AlgInfo kAlgs[] = {
    {Alg::HS256, "HS256"}, {Alg::HS384, "HS384"}, {Alg::HS512, "HS512"},
    {Alg::RS256, "RS256"}, {Alg::RS384, "RS384"}, {Alg::RS512, "RS512"},
    {Alg::PS256, "PS256"}, {Alg::PS384, "PS384"}, {Alg::PS512, "PS512"},
    {Alg::ES256, "ES256"}, {Alg::ES384, "ES384"}, {Alg::EdDSA, "EdDSA"},
};

// Digests fetched once (an implicit fetch per use costs a lookup under a
// lock each time); the legacy objects if a fetch fails.
const EVP_MD* digest_of(Alg alg) noexcept {
    static EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    static EVP_MD* sha384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
    static EVP_MD* sha512 = EVP_MD_fetch(nullptr, "SHA512", nullptr);
    switch (alg) {
    case Alg::HS256: case Alg::RS256: case Alg::PS256: case Alg::ES256:
        return sha256 ? sha256 : EVP_sha256();
    case Alg::HS384: case Alg::RS384: case Alg::PS384: case Alg::ES384:
        return sha384 ? sha384 : EVP_sha384();
    case Alg::HS512: case Alg::RS512: case Alg::PS512:
        return sha512 ? sha512 : EVP_sha512();
    case Alg::EdDSA: return nullptr;
    }
    return nullptr;
}

const char* digest_name(Alg alg) noexcept {
    switch (alg) {
    case Alg::HS256: case Alg::RS256: case Alg::PS256: case Alg::ES256: return "SHA256";
    case Alg::HS384: case Alg::RS384: case Alg::PS384: case Alg::ES384: return "SHA384";
    case Alg::HS512: case Alg::RS512: case Alg::PS512: return "SHA512";
    case Alg::EdDSA: return nullptr;
    }
    return nullptr;
}

// The one key type each algorithm may use: no HS/RS confusion.
bool fits(Alg alg, Key::Kind kind) noexcept {
    switch (alg) {
    case Alg::HS256: case Alg::HS384: case Alg::HS512: return kind == Key::Kind::kHmac;
    case Alg::RS256: case Alg::RS384: case Alg::RS512:
    case Alg::PS256: case Alg::PS384: case Alg::PS512: return kind == Key::Kind::kRsa;
    case Alg::ES256: return kind == Key::Kind::kEcP256;
    case Alg::ES384: return kind == Key::Kind::kEcP384;
    case Alg::EdDSA: return kind == Key::Kind::kEd25519;
    }
    return false;
}

struct BioFree {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* c) const noexcept { EVP_PKEY_CTX_free(c); }
};
struct BnFree {
    void operator()(BIGNUM* b) const noexcept { BN_free(b); }
};
struct ParamBldFree {
    void operator()(OSSL_PARAM_BLD* b) const noexcept { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
    void operator()(OSSL_PARAM* p) const noexcept { OSSL_PARAM_free(p); }
};
struct EcSigFree {
    void operator()(ECDSA_SIG* s) const noexcept { ECDSA_SIG_free(s); }
};

std::optional<Key::Kind> kind_of(EVP_PKEY* pkey) {
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
        return Key::Kind::kRsa;
    case EVP_PKEY_ED25519:
        return Key::Kind::kEd25519;
    case EVP_PKEY_EC: {
        char group[64];
        size_t len = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &len) != 1) {
            return std::nullopt;
        }
        std::string_view g(group, len);
        if (g == "prime256v1" || g == "P-256") {
            return Key::Kind::kEcP256;
        }
        if (g == "secp384r1" || g == "P-384") {
            return Key::Kind::kEcP384;
        }
        return std::nullopt;
    }
    default:
        return std::nullopt;
    }
}

std::string_view json_str(json_t* obj, const char* name) {
    json_t* v = json_object_get(obj, name);
    if (!json_is_string(v)) {
        return std::string_view();
    }
    return std::string_view(json_string_value(v), json_string_length(v));
}

EVP_PKEY* pkey_from_params(const char* type, OSSL_PARAM_BLD* bld) {
    std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* pkey = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        ERR_clear_error();
        return nullptr;
    }
    return pkey;
}

std::unique_ptr<BIGNUM, BnFree> bn_from_b64(std::string_view b64) {
    auto bytes = base64url_decode(b64);
    if (!bytes || bytes->empty()) {
        return nullptr;
    }
    return std::unique_ptr<BIGNUM, BnFree>(
        BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes->data()),
                  static_cast<int>(bytes->size()), nullptr));
}

size_t index_of(Alg alg) noexcept { return static_cast<size_t>(alg); }

EVP_MAC* hmac_method() noexcept {
    static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    return mac;
}

// An HMAC context keyed with the secret for alg's digest, to be copied.
std::shared_ptr<EVP_MAC_CTX> mac_template(Alg alg, const std::string& secret) {
    if (secret.empty() || hmac_method() == nullptr) {
        return nullptr;
    }
    std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx(EVP_MAC_CTX_new(hmac_method()));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>(digest_name(alg)), 0),
        OSSL_PARAM_construct_end(),
    };
    if (!ctx || EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()),
                             secret.size(), params) != 1) {
        ERR_clear_error();
        return nullptr;
    }
    return std::shared_ptr<EVP_MAC_CTX>(ctx.release(), MacCtxFree());
}

bool verify_hmac(Alg alg, const Key& key, std::string_view input, std::string_view sig) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t len = 0;
    const auto& tmpl = key.macs[index_of(alg)];
    std::unique_ptr<EVP_MAC_CTX, MacCtxFree> ctx(tmpl ? EVP_MAC_CTX_dup(tmpl.get()) : nullptr);
    if (ctx) {
        if (EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(input.data()),
                           input.size()) != 1 ||
            EVP_MAC_final(ctx.get(), mac, &len, sizeof(mac)) != 1) {
            ERR_clear_error();
            return false;
        }
    } else {
        unsigned int n = 0;
        if (HMAC(digest_of(alg), key.secret.data(), static_cast<int>(key.secret.size()),
                 reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &n) ==
            nullptr) {
            ERR_clear_error();
            return false;
        }
        len = n;
    }
    return sig.size() == len && CRYPTO_memcmp(mac, sig.data(), len) == 0;
}

// DigestVerifyInit for alg (PSS: salt as long as the digest) into md.
bool init_verifier(EVP_MD_CTX* md, Alg alg, EVP_PKEY* pkey) {
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestVerifyInit(md, &pctx, digest_of(alg), nullptr, pkey) != 1) {
        ERR_clear_error();
        return false;
    }
    if (alg == Alg::PS256 || alg == Alg::PS384 || alg == Alg::PS512) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1) {
            ERR_clear_error();
            return false;
        }
    }
    return true;
}

std::shared_ptr<EVP_MD_CTX> verifier_template(Alg alg, EVP_PKEY* pkey) {
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> md(EVP_MD_CTX_new());
    if (!md || !init_verifier(md.get(), alg, pkey)) {
        return nullptr;
    }
    return std::shared_ptr<EVP_MD_CTX>(md.release(), MdCtxFree());
}

// JWS carries ECDSA signatures as r || s of fixed size; OpenSSL wants DER.
std::optional<std::string> ecdsa_der(std::string_view sig, size_t half) {
    if (sig.size() != 2 * half) {
        return std::nullopt;
    }
    std::unique_ptr<ECDSA_SIG, EcSigFree> es(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), static_cast<int>(half), nullptr);
    BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data() + half), static_cast<int>(half), nullptr);
    if (!es || !r || !s || ECDSA_SIG_set0(es.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        return std::nullopt;
    }
    unsigned char* der = nullptr;
    int len = i2d_ECDSA_SIG(es.get(), &der);
    if (len <= 0) {
        return std::nullopt;
    }
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return out;
}

bool verify_pkey(Alg alg, const Key& key, std::string_view input, std::string_view sig) {
    std::string der;
    if (alg == Alg::ES256 || alg == Alg::ES384) {
        auto d = ecdsa_der(sig, alg == Alg::ES256 ? 32 : 48);
        if (!d) {
            return false;
        }
        der = std::move(*d);
        sig = der;
    }
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> md(EVP_MD_CTX_new());
    if (!md) {
        return false;
    }
    // a copy of the key's prepared context, else a fresh one
    const auto& tmpl = key.verifiers[index_of(alg)];
    if (!tmpl || EVP_MD_CTX_copy_ex(md.get(), tmpl.get()) != 1) {
        ERR_clear_error();
        md.reset(EVP_MD_CTX_new());
        if (!md || !init_verifier(md.get(), alg, key.pkey.get())) {
            return false;
        }
    }
    int rc = EVP_DigestVerify(md.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                              reinterpret_cast<const unsigned char*>(input.data()), input.size());
    ERR_clear_error();
    return rc == 1;
}

JsonPtr parse_object(std::string_view b64) {
    auto text = base64url_decode(b64);
    if (!text) {
        return nullptr;
    }
    JsonPtr j(json_loadb(text->data(), text->size(), JSON_REJECT_DUPLICATES, nullptr));
    if (!j || !json_is_object(j.get())) {
        return nullptr;
    }
    return j;
}

Verified refuse(std::string_view reason) {
    Verified v;
    v.reason = reason;
    return v;
}

bool audience_matches(json_t* aud, const std::string& want) {
    if (json_is_string(aud)) {
        return want == json_string_value(aud);
    }
    if (json_is_array(aud)) {
        size_t i;
        json_t* a;
        json_array_foreach(aud, i, a) {
            if (json_is_string(a) && want == json_string_value(a)) {
                return true;
            }
        }
    }
    return false;
}

// A NumericDate claim: absent, a number, or an error.
bool numeric_claim(json_t* claims, const char* name, std::optional<int64_t>* out) {
    json_t* v = json_object_get(claims, name);
    if (v == nullptr) {
        return true;
    }
    if (!json_is_number(v)) {
        return false;
    }
    // Clamp far-off dates: a cast of a double at or past 2^63 is undefined,
    // and sums with the leeway must not overflow either.
    double d = json_number_value(v);
    constexpr double kLimit = 4e18;
    *out = d >= kLimit ? static_cast<int64_t>(kLimit)
         : d <= -kLimit ? -static_cast<int64_t>(kLimit)
         : static_cast<int64_t>(d);
    return true;
}

}  // namespace

std::optional<Alg> parse_alg(std::string_view name) noexcept {
    for (const auto& a : kAlgs) {
        if (a.name == name) {
            return a.alg;
        }
    }
    return std::nullopt;
}

std::string_view alg_name(Alg alg) noexcept {
    for (const auto& a : kAlgs) {
        if (a.alg == alg) {
            return a.name;
        }
    }
    return "?";
}

std::optional<std::string> base64url_decode(std::string_view in) {
    static const auto table = [] {
        std::array<int8_t, 256> t{};
        t.fill(-1);
        const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for (int i = 0; i < 64; ++i) {
            t[static_cast<uint8_t>(alphabet[i])] = static_cast<int8_t>(i);
        }
        return t;
    }();
    if (in.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(in.size() * 3 / 4);
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        int8_t v = table[static_cast<uint8_t>(c)];
        if (v < 0) {
            return std::nullopt;
        }
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xFF));
        }
    }
    // Leftover bits must be zero: one encoding per byte string.
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
        return std::nullopt;
    }
    return out;
}

std::string base64url_encode(std::string_view in) {
    static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        acc = (acc << 8) | static_cast<uint8_t>(c);
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(alphabet[(acc >> bits) & 0x3F]);
        }
    }
    if (bits > 0) {
        out.push_back(alphabet[(acc << (6 - bits)) & 0x3F]);
    }
    return out;
}

// The contexts each verification copies, for every algorithm the key fits.
static void prepare(Key* k) {
    for (const auto& a : kAlgs) {
        if (!fits(a.alg, k->kind)) {
            continue;
        }
        if (k->kind == Key::Kind::kHmac) {
            k->macs[index_of(a.alg)] = mac_template(a.alg, k->secret);
        } else if (k->pkey) {
            k->verifiers[index_of(a.alg)] = verifier_template(a.alg, k->pkey.get());
        }
    }
}

void KeySet::add_hmac_secret(std::string secret, std::string kid) {
    Key k;
    k.kind = Key::Kind::kHmac;
    k.kid = std::move(kid);
    k.secret = std::move(secret);
    prepare(&k);
    keys_.push_back(std::move(k));
}

bool KeySet::load_pem(std::string_view pem_in, std::string* error) {
    // Indented blocks are read too (OpenSSL wants "-----BEGIN" at a line's
    // start), and every block must load: a key silently skipped would fail
    // only when a token needs it, e.g. during a key rotation.
    std::string pem;
    size_t blocks = 0;
    for (size_t pos = 0; pos < pem_in.size();) {
        size_t eol = pem_in.find('\n', pos);
        std::string_view line = pem_in.substr(pos, eol == std::string_view::npos ? eol : eol - pos + 1);
        size_t start = line.find_first_not_of(" \t");
        line = start == std::string_view::npos ? std::string_view() : line.substr(start);
        if (line.substr(0, 10) == "-----BEGIN") {
            ++blocks;
        }
        pem.append(line);
        if (eol == std::string_view::npos) {
            break;
        }
        pos = eol + 1;
    }
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) {
        *error = "out of memory";
        return false;
    }
    size_t loaded = 0;
    while (true) {
        EVP_PKEY* pkey = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
        if (pkey == nullptr) {
            break;
        }
        std::shared_ptr<EVP_PKEY> owned(pkey, PkeyFree());
        auto kind = kind_of(pkey);
        if (!kind) {
            *error = "unsupported public key type (need RSA, EC P-256/P-384 or Ed25519)";
            return false;
        }
        Key k;
        k.kind = *kind;
        k.pkey = std::move(owned);
        prepare(&k);
        keys_.push_back(std::move(k));
        ++loaded;
    }
    ERR_clear_error();
    if (loaded == 0 || loaded != blocks) {
        *error = "a PEM block could not be read as a public key (" + std::to_string(loaded) +
                 " of " + std::to_string(blocks) +
                 " loaded; give \"-----BEGIN PUBLIC KEY-----\" blocks, not private keys or "
                 "certificates)";
        return false;
    }
    return true;
}

bool KeySet::add_jwk(json_t* jwk, std::string* error) {
    if (!json_is_object(jwk)) {
        *error = "a JWK must be a JSON object";
        return false;
    }
    std::string_view use = json_str(jwk, "use");
    if (!use.empty() && use != "sig") {
        return true;  // encryption keys are not ours to use
    }
    std::string_view kty = json_str(jwk, "kty");
    Key k;
    k.kid = std::string(json_str(jwk, "kid"));

    if (kty == "oct") {
        auto secret = base64url_decode(json_str(jwk, "k"));
        if (!secret || secret->size() < 32) {
            *error = "JWK of kty \"oct\" needs a base64url \"k\" of at least 32 bytes";
            return false;
        }
        add_hmac_secret(std::move(*secret), k.kid);
        return true;
    }

    EVP_PKEY* pkey = nullptr;
    if (kty == "RSA") {
        auto n = bn_from_b64(json_str(jwk, "n"));
        auto e = bn_from_b64(json_str(jwk, "e"));
        std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
        if (!n || !e || !bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
            *error = "JWK of kty \"RSA\" needs base64url \"n\" and \"e\"";
            return false;
        }
        pkey = pkey_from_params("RSA", bld.get());
    } else if (kty == "EC") {
        std::string_view crv = json_str(jwk, "crv");
        size_t size = crv == "P-256" ? 32 : crv == "P-384" ? 48 : 0;
        auto x = base64url_decode(json_str(jwk, "x"));
        auto y = base64url_decode(json_str(jwk, "y"));
        if (size == 0 || !x || !y || x->size() != size || y->size() != size) {
            *error = "JWK of kty \"EC\" needs crv P-256 or P-384 and matching \"x\", \"y\"";
            return false;
        }
        std::string point = "\x04" + *x + *y;
        std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
        const char* group = size == 32 ? "prime256v1" : "secp384r1";
        if (!bld ||
            OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
            OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                             point.size()) != 1) {
            *error = "out of memory";
            return false;
        }
        pkey = pkey_from_params("EC", bld.get());
    } else if (kty == "OKP") {
        auto x = base64url_decode(json_str(jwk, "x"));
        if (json_str(jwk, "crv") != "Ed25519" || !x || x->size() != 32) {
            *error = "JWK of kty \"OKP\" needs crv Ed25519 and a 32-byte \"x\"";
            return false;
        }
        pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                           reinterpret_cast<const unsigned char*>(x->data()), x->size());
    } else {
        *error = "unsupported JWK kty (need RSA, EC, OKP or oct)";
        return false;
    }

    if (pkey == nullptr) {
        ERR_clear_error();
        *error = "the JWK's public key is invalid";
        return false;
    }
    std::shared_ptr<EVP_PKEY> owned(pkey, PkeyFree());
    auto kind = kind_of(pkey);
    if (!kind) {
        *error = "unsupported key in JWK";
        return false;
    }
    k.kind = *kind;
    k.pkey = std::move(owned);
    prepare(&k);
    keys_.push_back(std::move(k));
    return true;
}

bool KeySet::load_jwk_json(std::string_view text, std::string* error) {
    json_error_t jerr;
    JsonPtr root(json_loadb(text.data(), text.size(), 0, &jerr));
    if (!root) {
        *error = std::string("invalid JSON: ") + jerr.text;
        return false;
    }
    if (!json_is_object(root.get())) {
        *error = "a JWKS or JWK must be a JSON object";
        return false;
    }
    json_t* keys = json_object_get(root.get(), "keys");
    if (keys == nullptr) {
        return add_jwk(root.get(), error);
    }
    if (!json_is_array(keys) || json_array_size(keys) == 0) {
        *error = "JWKS \"keys\" must be a non-empty array";
        return false;
    }
    size_t i;
    json_t* jwk;
    json_array_foreach(keys, i, jwk) {
        if (!add_jwk(jwk, error)) {
            *error = "key " + std::to_string(i) + ": " + *error;
            return false;
        }
    }
    return true;
}

bool KeySet::load_file(const std::string& path, std::string* error) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        *error = "cannot open \"" + path + "\"";
        return false;
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    std::string text = ss.str();

    size_t start = text.find_first_not_of(" \t\r\n");
    if (start != std::string::npos && text.compare(start, 10, "-----BEGIN") == 0) {
        return load_pem(text, error);
    }
    if (start != std::string::npos && text[start] == '{') {
        return load_jwk_json(text, error);
    }
    if (!text.empty() && text.back() == '\n') {
        text.pop_back();
        if (!text.empty() && text.back() == '\r') {
            text.pop_back();
        }
    }
    if (text.size() < 32) {
        *error = "HMAC secret in \"" + path + "\" is shorter than 32 bytes";
        return false;
    }
    add_hmac_secret(std::move(text));
    return true;
}

Verified verify(std::string_view token, const KeySet& keys, const Policy& policy, int64_t now) {
    if (token.empty()) {
        return refuse("no token");
    }
    if (token.size() > kMaxTokenSize) {
        return refuse("token too long");
    }
    size_t dot1 = token.find('.');
    size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
        return refuse("malformed token (need header.payload.signature)");
    }
    std::string_view h64 = token.substr(0, dot1);
    std::string_view p64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
    std::string_view s64 = token.substr(dot2 + 1);

    JsonPtr header = parse_object(h64);
    if (!header) {
        return refuse("malformed token header");
    }
    if (json_object_get(header.get(), "crit")) {
        return refuse("unsupported critical header");
    }
    std::string_view alg_text = json_str(header.get(), "alg");
    auto alg = parse_alg(alg_text);
    if (!alg) {
        return refuse(alg_text == "none" ? "unsigned token (alg none)" : "unsupported algorithm");
    }
    if (!policy.algorithms.empty()) {
        bool allowed = false;
        for (Alg a : policy.algorithms) {
            allowed = allowed || a == *alg;
        }
        if (!allowed) {
            return refuse("algorithm not allowed");
        }
    }

    JsonPtr claims = parse_object(p64);
    if (!claims) {
        return refuse("malformed token payload");
    }
    auto sig = base64url_decode(s64);
    if (!sig || sig->empty()) {
        return refuse("malformed token signature");
    }

    std::string_view input = token.substr(0, dot2);
    json_t* kid_json = json_object_get(header.get(), "kid");
    if (kid_json && !json_is_string(kid_json)) {
        return refuse("malformed kid");
    }
    std::string_view kid = kid_json ? std::string_view(json_string_value(kid_json)) : std::string_view();

    // A token's kid picks the keys that carry it. Keys without a kid (PEM
    // files, secrets) are tried when no key carries it: identity providers
    // put a kid in every token even when the operator configured one key.
    bool candidate = false;
    bool verified = false;
    for (int pass = 0; pass < 2 && !candidate; ++pass) {
        for (const Key& k : keys.keys()) {
            if (!fits(*alg, k.kind)) {
                continue;
            }
            if (kid_json && k.kid != (pass == 0 ? kid : std::string_view())) {
                continue;
            }
            candidate = true;
            verified = k.kind == Key::Kind::kHmac ? verify_hmac(*alg, k, input, *sig)
                                                  : verify_pkey(*alg, k, input, *sig);
            if (verified) {
                break;
            }
        }
        if (!kid_json) {
            break;
        }
    }
    if (!candidate) {
        return refuse(kid_json ? "no key with the token's kid for its algorithm"
                               : "no key for the token's algorithm");
    }
    if (!verified) {
        return refuse("bad signature");
    }

    std::optional<int64_t> exp, nbf;
    if (!numeric_claim(claims.get(), "exp", &exp) || !numeric_claim(claims.get(), "nbf", &nbf)) {
        return refuse("exp and nbf must be numbers");
    }
    if (exp && now >= *exp + policy.leeway) {
        return refuse("token expired");
    }
    if (nbf && now + policy.leeway < *nbf) {
        return refuse("token not valid yet (nbf)");
    }
    if (!policy.issuer.empty() && json_str(claims.get(), "iss") != policy.issuer) {
        return refuse("wrong issuer");
    }
    if (!policy.audience.empty() &&
        !audience_matches(json_object_get(claims.get(), "aud"), policy.audience)) {
        return refuse("wrong audience");
    }

    Verified v;
    v.ok = true;
    v.header = std::move(header);
    v.claims = std::move(claims);
    v.exp = exp ? *exp : 0;
    v.has_exp = exp.has_value();
    v.nbf = nbf;
    return v;
}

std::optional<std::string> value_text(const json_t* object, std::string_view name) {
    const json_t* v = json_object_get(object, std::string(name).c_str());
    if (v == nullptr) {
        return std::nullopt;
    }
    if (json_is_string(v)) {
        return std::string(json_string_value(v), json_string_length(v));
    }
    char* text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == nullptr) {
        return std::nullopt;
    }
    std::string out(text);
    std::free(text);
    return out;
}

}  // namespace realtime::jwt
