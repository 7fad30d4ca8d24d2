// The per-connection limit on client messages (realtime_client_rate).
//
// Allows `rate` messages per second on average and bursts of up to
// burst + 1 at once, as nginx's limit_req with burst=B nodelay: each
// message adds one to an excess that drains at `rate` per second, and a
// message that would push it past the burst is refused (and not counted).
// A client that keeps sending while refused is not slowed down by this,
// it is misbehaving: after more refusals in a row than one second's worth
// (max(rate, burst + 1)), take() says to close the connection.
#pragma once

#include <cstdint>

namespace realtime {

class RateLimiter {
public:
    enum class Verdict { kAllow, kRefuse, kClose };

    RateLimiter() noexcept = default;  // no limit: always kAllow
    RateLimiter(uint32_t rate_per_second, uint32_t burst) noexcept
        : rate_(rate_per_second), burst_(burst) {}

    // One message at now (milliseconds, monotonic).
    Verdict take(uint64_t now_ms) noexcept;

    bool limited() const noexcept { return rate_ != 0; }

private:
    uint32_t rate_ = 0;     // 0: unlimited
    uint32_t burst_ = 0;
    uint64_t excess_ = 0;   // in 1/1000 of a message
    uint64_t last_ = 0;     // ms of the last accepted message
    uint32_t refused_ = 0;  // refusals in a row
    bool started_ = false;
};

}  // namespace realtime
