#include "rate_limit.h"

#include <limits>

namespace realtime {

RateLimiter::Verdict RateLimiter::take(uint64_t now_ms) noexcept {
    if (rate_ == 0) {
        return Verdict::kAllow;
    }

    // As limit_req: the excess after this message is what there was plus one
    // message, less what drained since the last accepted one (rate per
    // second is rate thousandths per millisecond), and never below zero, so
    // the first message and the first after a quiet spell count as none.
    uint64_t excess = 0;
    if (started_) {
        if (now_ms < last_) {
            // The clock went back: no time has passed; measure from here on.
            last_ = now_ms;
        }
        uint64_t elapsed = now_ms - last_;
        uint64_t cost = excess_ + 1000;
        // elapsed * rate >= cost, without overflowing the product
        excess = elapsed > cost / rate_ ? 0 : cost - elapsed * rate_;
    }

    if (excess > static_cast<uint64_t>(burst_) * 1000) {
        // Refused and not counted. More refusals in a row than a second's
        // worth of messages is a client that ignores the limit.
        uint64_t allowed = rate_ > static_cast<uint64_t>(burst_) + 1
                               ? rate_
                               : static_cast<uint64_t>(burst_) + 1;
        if (refused_ < std::numeric_limits<uint32_t>::max()) {
            ++refused_;
        }
        return refused_ > allowed ? Verdict::kClose : Verdict::kRefuse;
    }

    started_ = true;
    excess_ = excess;
    last_ = now_ms;
    refused_ = 0;
    return Verdict::kAllow;
}

}  // namespace realtime
