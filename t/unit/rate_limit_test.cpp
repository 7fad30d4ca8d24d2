// RateLimiter: limit_req-like accounting (burst + 1 at once, draining at
// rate per second), refusals not counted, closing a client that keeps
// flooding, recovery over time, clocks that go back, extreme parameters,
// and a randomized check against the bound the limit promises.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/rate_limit.h"

namespace realtime {
namespace {

using V = RateLimiter::Verdict;

// Sends n messages at time t; returns how many were allowed.
int Burst(RateLimiter& r, uint64_t t, int n) {
    int allowed = 0;
    for (int i = 0; i < n; ++i) {
        allowed += r.take(t) == V::kAllow;
    }
    return allowed;
}

TEST(RateLimiter, DefaultIsUnlimited) {
    RateLimiter r;
    EXPECT_FALSE(r.limited());
    for (int i = 0; i < 100000; ++i) {
        ASSERT_EQ(r.take(0), V::kAllow);
    }
    RateLimiter zero(0, 10);
    EXPECT_FALSE(zero.limited());
    EXPECT_EQ(Burst(zero, 5, 1000), 1000);
    EXPECT_TRUE(RateLimiter(1, 0).limited());
}

TEST(RateLimiter, BurstPlusOneAtOnce) {
    for (uint32_t burst : {0u, 1u, 5u, 50u}) {
        RateLimiter r(10, burst);
        for (uint32_t i = 0; i <= burst; ++i) {
            ASSERT_EQ(r.take(1000), V::kAllow) << "burst " << burst << " message " << i;
        }
        EXPECT_EQ(r.take(1000), V::kRefuse) << "burst " << burst;
    }
}

TEST(RateLimiter, FirstMessageAtAnyTime) {
    RateLimiter a(1, 0);
    EXPECT_EQ(a.take(0), V::kAllow);
    RateLimiter b(1, 0);
    EXPECT_EQ(b.take(std::numeric_limits<uint64_t>::max()), V::kAllow);
    EXPECT_EQ(b.take(std::numeric_limits<uint64_t>::max()), V::kRefuse);
}

TEST(RateLimiter, SteadyAtRateAllowed) {
    // exactly at the rate, burst 0: every message
    RateLimiter r(10, 0);
    for (uint64_t t = 0; t < 60000; t += 100) {
        ASSERT_EQ(r.take(t), V::kAllow) << t;
    }
    // under the rate
    RateLimiter s(10, 0);
    for (uint64_t t = 0; t < 60000; t += 137) {
        ASSERT_EQ(s.take(t), V::kAllow) << t;
    }
    // rate 3: one every 333.3 ms; at 334 ms spacing always fine
    RateLimiter u(3, 0);
    for (uint64_t t = 5; t < 100000; t += 334) {
        ASSERT_EQ(u.take(t), V::kAllow) << t;
    }
}

TEST(RateLimiter, JitterAbsorbedByBurst) {
    // average at the rate, but pairs 20 ms apart: burst 1 takes it
    RateLimiter r(10, 1);
    for (uint64_t t = 0; t < 60000; t += 200) {
        ASSERT_EQ(r.take(t), V::kAllow) << t;
        ASSERT_EQ(r.take(t + 20), V::kAllow) << t;
    }
    // without a burst the second of each pair is refused
    RateLimiter s(10, 0);
    EXPECT_EQ(s.take(0), V::kAllow);
    EXPECT_EQ(s.take(20), V::kRefuse);
    EXPECT_EQ(s.take(100), V::kAllow);
}

TEST(RateLimiter, DrainsAtTheRate) {
    RateLimiter r(2, 0);  // one per 500 ms
    EXPECT_EQ(r.take(10000), V::kAllow);
    EXPECT_EQ(r.take(10001), V::kRefuse);
    EXPECT_EQ(r.take(10499), V::kRefuse);
    EXPECT_EQ(r.take(10500), V::kAllow);
    EXPECT_EQ(r.take(10999), V::kRefuse);
    EXPECT_EQ(r.take(11000), V::kAllow);
}

TEST(RateLimiter, RefusedMessagesAreNotCounted) {
    // Refusals do not push the next allowed time further out.
    RateLimiter r(10, 0);
    EXPECT_EQ(r.take(0), V::kAllow);
    for (uint64_t t = 1; t < 100; t += 10) {
        EXPECT_EQ(r.take(t), V::kRefuse) << t;
    }
    EXPECT_EQ(r.take(100), V::kAllow);
}

TEST(RateLimiter, RecoveryOverTime) {
    RateLimiter r(10, 5);
    EXPECT_EQ(Burst(r, 0, 6), 6);  // excess now 5 messages
    EXPECT_EQ(r.take(0), V::kRefuse);
    // after 100 ms one message has drained
    EXPECT_EQ(Burst(r, 100, 2), 1);
    // 500 ms more drain five
    EXPECT_EQ(Burst(r, 600, 10), 5);
    // after a full quiet spell (600 ms drains 6), a whole burst again
    EXPECT_EQ(Burst(r, 1200, 10), 6);
    EXPECT_EQ(Burst(r, 100000, 10), 6);
}

TEST(RateLimiter, LongRunAverageIsTheRate) {
    // 20 messages per second against a limit of 10 with burst 5 for 100 s
    RateLimiter r(10, 5);
    int allowed = 0;
    for (uint64_t t = 0; t < 100000; t += 50) {
        V v = r.take(t);
        ASSERT_NE(v, V::kClose) << t;  // one refusal in a row at most
        allowed += v == V::kAllow;
    }
    EXPECT_GE(allowed, 1000);
    EXPECT_LE(allowed, 1000 + 6);
}

TEST(RateLimiter, CloseAfterASecondsWorthOfRefusalsInARow) {
    // threshold max(rate, burst + 1): here the rate, 10
    RateLimiter r(10, 5);
    EXPECT_EQ(Burst(r, 0, 6), 6);
    for (int i = 1; i <= 10; ++i) {
        ASSERT_EQ(r.take(0), V::kRefuse) << "refusal " << i;
    }
    EXPECT_EQ(r.take(0), V::kClose);
    EXPECT_EQ(r.take(1), V::kClose);  // and stays so while refused

    // threshold burst + 1 when that is larger: 21
    RateLimiter s(2, 20);
    EXPECT_EQ(Burst(s, 0, 21), 21);
    for (int i = 1; i <= 21; ++i) {
        ASSERT_EQ(s.take(0), V::kRefuse) << "refusal " << i;
    }
    EXPECT_EQ(s.take(0), V::kClose);

    // rate 1, burst 0: max(1, 1) = 1 refusal is tolerated
    RateLimiter t(1, 0);
    EXPECT_EQ(t.take(0), V::kAllow);
    EXPECT_EQ(t.take(1), V::kRefuse);
    EXPECT_EQ(t.take(2), V::kClose);
}

TEST(RateLimiter, AcceptedMessageResetsRefusals) {
    RateLimiter r(10, 0);
    EXPECT_EQ(r.take(0), V::kAllow);
    for (int round = 1; round <= 50; ++round) {
        uint64_t t = static_cast<uint64_t>(round) * 100;
        for (int i = 0; i < 10; ++i) {  // ten refusals: at the threshold
            ASSERT_EQ(r.take(t - 50), V::kRefuse) << round;
        }
        ASSERT_EQ(r.take(t), V::kAllow) << round;
    }
}

TEST(RateLimiter, AllowedAgainAfterCloseVerdictIfTimePasses) {
    // kClose is advice; the limiter itself still accounts correctly.
    RateLimiter r(10, 0);
    EXPECT_EQ(r.take(0), V::kAllow);
    for (int i = 0; i < 20; ++i) {
        r.take(1);
    }
    EXPECT_EQ(r.take(2), V::kClose);
    EXPECT_EQ(r.take(100), V::kAllow);
    EXPECT_EQ(r.take(101), V::kRefuse);
}

TEST(RateLimiter, PersistentFloodIsClosed) {
    // a client writing 1000 messages a second against a limit of 10
    RateLimiter r(10, 5);
    uint64_t t = 0;
    V v = V::kAllow;
    int sent = 0;
    for (; sent < 100000 && v != V::kClose; ++sent, ++t) {
        v = r.take(t);
    }
    EXPECT_EQ(v, V::kClose);
    EXPECT_EQ(sent, 6 + 11);  // the burst, ten refusals, then close
}

TEST(RateLimiter, ClockGoingBackGrantsNothing) {
    RateLimiter r(10, 2);
    EXPECT_EQ(Burst(r, 10000, 3), 3);
    EXPECT_EQ(r.take(5000), V::kRefuse);  // earlier: no time has passed
    EXPECT_EQ(r.take(0), V::kRefuse);
    // measured from the earlier time on: 100 ms later one has drained
    EXPECT_EQ(r.take(50), V::kRefuse);
    EXPECT_EQ(r.take(100), V::kAllow);
    EXPECT_EQ(r.take(101), V::kRefuse);
}

TEST(RateLimiter, ClockGoingFarBackDoesNotLockOut) {
    // an hour back: messages at the rate are accepted right away
    RateLimiter r(10, 0);
    EXPECT_EQ(r.take(10000000), V::kAllow);
    EXPECT_EQ(r.take(10000000 - 3600000), V::kRefuse);
    for (uint64_t t = 10000000 - 3600000 + 100; t < 10000000 - 3600000 + 10000; t += 100) {
        ASSERT_EQ(r.take(t), V::kAllow) << t;
    }
}

TEST(RateLimiter, ExtremeParametersDoNotOverflow) {
    const uint32_t kMax = std::numeric_limits<uint32_t>::max();
    const uint64_t kFar = std::numeric_limits<uint64_t>::max();

    RateLimiter fast(kMax, 0);
    EXPECT_EQ(fast.take(0), V::kAllow);
    EXPECT_EQ(fast.take(0), V::kRefuse);
    EXPECT_EQ(fast.take(1), V::kAllow);  // drains 4e12 thousandths in 1 ms
    EXPECT_EQ(fast.take(kFar), V::kAllow);

    RateLimiter big(kMax, kMax);
    EXPECT_EQ(Burst(big, 0, 100000), 100000);
    EXPECT_EQ(big.take(kFar), V::kAllow);

    RateLimiter slow(1, kMax);
    EXPECT_EQ(Burst(slow, 1, 10000), 10000);
    EXPECT_EQ(slow.take(kFar), V::kAllow);

    RateLimiter one(1, 0);
    EXPECT_EQ(one.take(0), V::kAllow);
    EXPECT_EQ(one.take(kFar), V::kAllow);  // a huge gap, no overflow
    EXPECT_EQ(one.take(kFar), V::kRefuse);
    EXPECT_EQ(one.take(kFar - 1), V::kClose);  // the second refusal in a row
}

TEST(RateLimiter, RandomTrafficNeverExceedsTheBound) {
    // In any window [t0, t1], at most burst + 1 + rate * (t1 - t0) / 1000
    // messages are allowed; and a message is never refused when the
    // client has been quiet for a whole burst's drain time.
    std::mt19937 rng(99);
    for (int round = 0; round < 40; ++round) {
        uint32_t rate = 1 + rng() % 50;
        uint32_t burst = rng() % 8;
        RateLimiter r(rate, burst);
        std::vector<uint64_t> allowed;
        uint64_t t = rng() % 1000;
        uint64_t last_any = 0;
        bool first = true;
        for (int i = 0; i < 1500; ++i) {
            int gap_kind = static_cast<int>(rng() % 10);
            t += gap_kind < 6 ? rng() % 5 : gap_kind < 9 ? rng() % 200 : rng() % 5000;
            uint64_t quiet_needed = (static_cast<uint64_t>(burst) + 1) * 1000 / rate + 1;
            bool rested = first || t - last_any >= quiet_needed;
            V v = r.take(t);
            if (rested) {
                ASSERT_EQ(v, V::kAllow) << "rate " << rate << " burst " << burst << " t " << t;
            }
            if (v == V::kAllow) {
                allowed.push_back(t);
            }
            last_any = t;
            first = false;
        }
        for (size_t i = 0; i < allowed.size(); ++i) {
            for (size_t j = i; j < allowed.size(); ++j) {
                uint64_t window = allowed[j] - allowed[i];
                uint64_t count = j - i + 1;
                ASSERT_LE(count * 1000, (static_cast<uint64_t>(burst) + 1) * 1000 + rate * window)
                    << "rate " << rate << " burst " << burst << " window " << window;
            }
        }
    }
}

}  // namespace
}  // namespace realtime
