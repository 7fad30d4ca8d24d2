#include "jwt_cache.h"

#include <cstring>
#include <iterator>
#include <new>

namespace realtime::jwt {

namespace {

// SHA-256 fetched once: an implicit fetch per digest costs more than the
// digest of a short token.
const EVP_MD* sha256() noexcept {
    static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md != nullptr ? md : EVP_sha256();
}

}  // namespace

size_t VerifiedCache::KeyHash::operator()(const Key& k) const noexcept {
    // the digest is uniform already: its first bytes, mixed with the scope
    uint64_t h;
    std::memcpy(&h, k.digest.data(), sizeof(h));
    return static_cast<size_t>(h ^ (k.scope * 0x9E3779B97F4A7C15ull));
}

VerifiedCache::~VerifiedCache() { clear(); }

void VerifiedCache::clear() noexcept {
    for (Entry& e : lru_) {
        json_decref(e.header);
        json_decref(e.claims);
    }
    map_.clear();
    lru_.clear();
}

VerifiedCache::Key VerifiedCache::make_key(uint64_t scope, std::string_view token) {
    Key key{scope, {}};
    unsigned int len = 0;
    if (EVP_Digest(token.data(), token.size(), key.digest.data(), &len, sha256(), nullptr) != 1 ||
        len != key.digest.size()) {
        throw std::bad_alloc();  // only on allocation failure
    }
    return key;
}

void VerifiedCache::erase(List::iterator it) noexcept {
    json_decref(it->header);
    json_decref(it->claims);
    map_.erase(it->key);
    lru_.erase(it);
}

Verified VerifiedCache::lookup(uint64_t scope, std::string_view token, const Policy& policy,
                               int64_t now) {
    if (capacity_ == 0 || map_.empty()) {
        ++misses_;
        return Verified();
    }
    return lookup(make_key(scope, token), policy, now);
}

Verified VerifiedCache::lookup(const Key& key, const Policy& policy, int64_t now) {
    Verified v;
    auto found = map_.find(key);
    if (found == map_.end()) {
        ++misses_;
        return v;
    }
    List::iterator it = found->second;
    // The same time checks as verify(), at every hit.
    if ((it->has_exp && now >= it->exp + policy.leeway) ||
        (it->nbf && now + policy.leeway < *it->nbf)) {
        erase(it);
        ++misses_;
        return v;
    }
    lru_.splice(lru_.begin(), lru_, it);
    ++hits_;
    v.ok = true;
    v.cached = true;
    v.header.reset(json_incref(it->header));
    v.claims.reset(json_incref(it->claims));
    v.exp = it->exp;
    v.has_exp = it->has_exp;
    v.nbf = it->nbf;
    return v;
}

void VerifiedCache::insert(uint64_t scope, std::string_view token, const Verified& v) {
    if (v.ok && capacity_ != 0) {
        insert(make_key(scope, token), v);
    }
}

void VerifiedCache::insert(const Key& key, const Verified& v) {
    if (!v.ok || capacity_ == 0 || !v.header || !v.claims) {
        return;
    }
    auto found = map_.find(key);
    if (found != map_.end()) {
        erase(found->second);
    }
    while (map_.size() >= capacity_) {
        erase(std::prev(lru_.end()));
    }
    lru_.push_front(Entry{key, nullptr, nullptr, v.exp, v.has_exp, v.nbf});
    try {
        map_.emplace(key, lru_.begin());
    } catch (...) {
        lru_.pop_front();
        throw;
    }
    lru_.front().header = json_incref(v.header.get());
    lru_.front().claims = json_incref(v.claims.get());
}

Verified VerifiedCache::verify(std::string_view token, uint64_t scope, const KeySet& keys,
                               const Policy& policy, int64_t now) {
    // what verify() refuses before reading the token is not worth a digest
    if (capacity_ == 0 || token.empty() || token.size() > kMaxTokenSize) {
        return jwt::verify(token, keys, policy, now);
    }
    Key key = make_key(scope, token);
    Verified v = lookup(key, policy, now);
    if (v.ok) {
        return v;
    }
    v = jwt::verify(token, keys, policy, now);
    insert(key, v);
    return v;
}

Verified verify_cached(VerifiedCache* cache, uint64_t scope, std::string_view token,
                       const KeySet& keys, const Policy& policy, int64_t now) {
    return cache != nullptr ? cache->verify(token, scope, keys, policy, now)
                            : verify(token, keys, policy, now);
}

}  // namespace realtime::jwt
