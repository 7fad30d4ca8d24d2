// A bounded cache of verified JWTs, one per worker, so that a token seen
// again (a reconnect storm, a refresh) skips the signature check.
//
// An entry is keyed by (scope, SHA-256 of the token): the token itself is
// never kept, and a scope names the keys and policy that verified it (one
// per location), so a token verified in one location never hits in another
// with other keys, issuer or audience. Only successes are cached; the time
// claims (exp, nbf, with the policy's leeway) are checked again on every
// hit, and an entry no longer valid is a miss and is evicted. The verified
// header and claims are kept and shared, by jansson's reference count, with
// the connections that hit. Least recently used entries go first once the
// capacity is reached. The clock is an argument, so tests can fix it.
//
// Not thread-safe: each worker (a single thread) has its own.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "core/jwt.h"

namespace realtime::jwt {

class VerifiedCache {
public:
    using Digest = std::array<unsigned char, 32>;

    explicit VerifiedCache(size_t capacity) : capacity_(capacity) {}
    ~VerifiedCache();
    VerifiedCache(const VerifiedCache&) = delete;
    VerifiedCache& operator=(const VerifiedCache&) = delete;

    // A verified token's entry (ok, header and claims shared), or a
    // Verified with ok false when the cache does not hold it valid now.
    Verified lookup(uint64_t scope, std::string_view token, const Policy& policy, int64_t now);

    // Keeps a successful verification (failures are ignored).
    void insert(uint64_t scope, std::string_view token, const Verified& v);

    // verify() through the cache: a hit is returned as is, a miss is
    // verified and, when it succeeds, kept.
    Verified verify(std::string_view token, uint64_t scope, const KeySet& keys, const Policy& policy,
                    int64_t now);

    size_t size() const noexcept { return map_.size(); }
    size_t capacity() const noexcept { return capacity_; }
    void clear() noexcept;

    uint64_t hits() const noexcept { return hits_; }
    uint64_t misses() const noexcept { return misses_; }

private:
    struct Key {
        uint64_t scope;
        Digest digest;
        bool operator==(const Key& o) const noexcept {
            return scope == o.scope && digest == o.digest;
        }
    };
    struct KeyHash {
        size_t operator()(const Key& k) const noexcept;
    };
    struct Entry {
        Key key;
        json_t* header;  // one reference each, released on eviction
        json_t* claims;
        int64_t exp;     // as in Verified
        bool has_exp;
        std::optional<int64_t> nbf;
    };
    using List = std::list<Entry>;

    static Key make_key(uint64_t scope, std::string_view token);
    Verified lookup(const Key& key, const Policy& policy, int64_t now);
    void insert(const Key& key, const Verified& v);
    void erase(List::iterator it) noexcept;

    size_t capacity_;
    List lru_;  // most recently used first
    std::unordered_map<Key, List::iterator, KeyHash> map_;
    uint64_t hits_ = 0;
    uint64_t misses_ = 0;
};

// cache->verify(), or verify() when cache is null.
Verified verify_cached(VerifiedCache* cache, uint64_t scope, std::string_view token,
                       const KeySet& keys, const Policy& policy, int64_t now);

}  // namespace realtime::jwt
