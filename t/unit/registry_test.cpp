// Registry: the group registry of the shared-memory zone, exercised over a
// counting malloc Allocator that proves every operation frees exactly what
// it should and can refuse allocations to simulate a full zone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/group_name.h"
#include "core/registry.h"
#include "test_alloc.h"

namespace realtime {
namespace {

using test::CountingAllocator;
using Status = Registry::Status;

void ExpectHistoryConsistent(const RegistryRoot* root);

// A root, its registry and the allocator under it. The destructor checks
// the history's links and every message's references, releases every slot
// (which must take every subscriber, connection and queued message with
// it), then has a publish that can allocate nothing evict whatever history
// is left (which must take the groups and messages only it held), and
// checks that nothing else is left, so every test also proves the registry
// can be torn down completely.
class Env {
public:
    explicit Env(size_t buckets = 64)
        : root(Registry::create(alloc, buckets)), reg(root, alloc), baseline(alloc.live()),
          baseline_bytes(alloc.live_bytes()) {}

    ~Env() {
        if (root == nullptr) {
            return;
        }
        alloc.stop_failing();
        ExpectHistoryConsistent(root);
        for (uint32_t s = 0; s < kMaxWorkerSlots; ++s) {
            reg.release_slot(s);
        }
        ExpectHistoryConsistent(root);
        const uint64_t entries = root->hist_entries;
        const uint64_t evicted = root->stats.history_evicted;
        alloc.fail_after(0);
        const std::string_view teardown = "env-teardown";
        Registry::PublishOptions keep;
        keep.history_size = 1;
        EXPECT_EQ(reg.publish(&teardown, 1, nullptr, 0, keep).status, Registry::Status::kNoMemory);
        alloc.stop_failing();
        EXPECT_EQ(root->stats.history_evicted, evicted + entries);
        EXPECT_EQ(root->hist_entries, 0u);
        EXPECT_EQ(root->hist_head, nullptr);
        EXPECT_EQ(root->hist_tail, nullptr);
        EXPECT_EQ(root->groups, 0u) << "groups left after releasing every slot and history";
        EXPECT_EQ(alloc.live(), baseline) << "blocks left after releasing every slot";
        EXPECT_EQ(alloc.live_bytes(), baseline_bytes);
        alloc.deallocate(root->presence_buckets);
        alloc.deallocate(root->buckets);
        alloc.deallocate(root);
        EXPECT_EQ(alloc.live(), 0u);
    }

    CountingAllocator alloc;
    RegistryRoot* root;
    Registry reg;
    size_t baseline;  // root + both bucket arrays
    size_t baseline_bytes;
};

struct Delivered {
    std::string group;
    std::string frame;
    bool operator==(const Delivered& o) const { return group == o.group && frame == o.frame; }
};

std::ostream& operator<<(std::ostream& os, const Delivered& d) {
    return os << "{" << d.group << ": " << d.frame.size() << " bytes}";
}

uint32_t CountOf(const Env& e, std::string_view group, uint32_t slot);

// A queue as (groups, frame) pairs, where groups are the message's groups
// that slot serves, joined with "+" (a message is queued once per worker).
std::vector<Delivered> Walk(const Env& e, const QueueNode* q, uint32_t slot) {
    std::vector<Delivered> out;
    for (; q; q = q->next) {
        const ShmMessage* m = q->message;
        std::string groups;
        for (uint16_t k = 0; k < m->ngroups; ++k) {
            if (CountOf(e, m->group(k), slot) > 0) {
                groups += (groups.empty() ? "" : "+") + std::string(m->group(k));
            }
        }
        out.push_back({groups,
                       std::string(reinterpret_cast<const char*>(m->frame()), m->frame_size)});
    }
    return out;
}

// What slot's worker would deliver, without taking it.
std::vector<Delivered> Peek(const Env& e, uint32_t slot) {
    return Walk(e, e.root->slots[slot].head, slot);
}

// Takes and gives back slot's queue, returning what it held.
std::vector<Delivered> Drain(Env& e, uint32_t slot) {
    QueueNode* q = e.reg.take_queue(slot);
    std::vector<Delivered> out = Walk(e, q, slot);
    e.reg.finish_drain(slot);
    return out;
}

// The low 64 slots of a wake set, which must hold every member.
uint64_t Wake64(const SlotSet& w) {
    for (size_t i = 1; i < kMaxWorkerSlots / 64; ++i) {
        EXPECT_EQ(w.bits[i], 0u) << "a slot above 63 is woken";
    }
    return w.bits[0];
}

Registry::Published Publish(Env& e, std::string_view group, std::string_view frame) {
    return e.reg.publish(group, reinterpret_cast<const uint8_t*>(frame.data()), frame.size());
}

// The count slot holds in group, 0 when it has no entry.
uint32_t CountOf(const Env& e, std::string_view group, uint32_t slot) {
    const GroupNode* g = e.reg.find(group);
    if (g == nullptr) {
        return 0;
    }
    uint32_t n = 0;
    int entries = 0;
    for (uint16_t i = 0; i < g->nslots; ++i) {
        if (g->slots[i].slot == slot) {
            n = g->slots[i].count;
            ++entries;
        }
    }
    EXPECT_LE(entries, 1) << "slot " << slot << " listed twice in group " << group;
    return n;
}

// Checks a group node's internal consistency: the total is the sum of the
// per-slot counts, no entry is zero or duplicated, and it is in its bucket.
void ExpectConsistent(const Env& e, std::string_view group) {
    const GroupNode* g = e.reg.find(group);
    ASSERT_NE(g, nullptr) << group;
    EXPECT_EQ(g->name(), group);
    EXPECT_EQ(g->hash, hash_group_name(group));
    EXPECT_LE(g->nslots, g->capacity);
    uint64_t sum = 0;
    std::vector<uint32_t> seen;
    for (uint16_t i = 0; i < g->nslots; ++i) {
        EXPECT_GT(g->slots[i].count, 0u) << group << " keeps a zero entry";
        EXPECT_LT(g->slots[i].slot, kMaxWorkerSlots);
        sum += g->slots[i].count;
        seen.push_back(g->slots[i].slot);
    }
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end()) << group;
    EXPECT_EQ(sum, g->subscribers) << group;
    EXPECT_GT(g->subscribers, 0u) << group << " kept with no subscribers";
}

// Walks every chain: each node sits in the bucket of its hash; returns the
// number of nodes.
size_t CountNodes(const Env& e) {
    size_t n = 0;
    for (uint32_t b = 0; b <= e.root->bucket_mask; ++b) {
        for (const GroupNode* g = e.root->buckets[b]; g; g = g->next) {
            EXPECT_EQ(g->hash & e.root->bucket_mask, b) << g->name();
            ++n;
        }
    }
    return n;
}

uint64_t Bit(uint32_t slot) {
    return uint64_t{1} << slot;
}

// ---------------------------------------------------------------------------
// create

TEST(RegistryCreate, RoundsBucketsUpToAPowerOfTwo) {
    struct Case {
        size_t requested;
        size_t expected;
    };
    const Case cases[] = {{0, 16},      {1, 16},      {15, 16},     {16, 16},
                          {17, 32},     {31, 32},     {32, 32},     {33, 64},
                          {100, 128},   {1000, 1024}, {1024, 1024}, {1025, 2048},
                          {65535, 65536}, {65536, 65536}, {65537, 131072}};
    for (const Case& c : cases) {
        SCOPED_TRACE("requested " + std::to_string(c.requested));
        CountingAllocator alloc;
        RegistryRoot* root = Registry::create(alloc, c.requested);
        ASSERT_NE(root, nullptr);
        EXPECT_EQ(size_t{root->bucket_mask} + 1, c.expected);
        EXPECT_EQ(root->bucket_mask & (root->bucket_mask + 1), 0u) << "not a power of two";
        EXPECT_EQ(alloc.live(), 3u);  // root and both bucket arrays
        EXPECT_EQ(alloc.live_bytes(), sizeof(RegistryRoot) + c.expected * sizeof(GroupNode*) +
                                          c.expected * sizeof(PresenceNode*));
        for (size_t b = 0; b < c.expected; ++b) {
            ASSERT_EQ(root->buckets[b], nullptr) << "bucket " << b << " not cleared";
            ASSERT_EQ(root->presence_buckets[b], nullptr) << "presence bucket " << b;
        }
        alloc.deallocate(root->presence_buckets);
        alloc.deallocate(root->buckets);
        alloc.deallocate(root);
    }
}

TEST(RegistryCreate, StartsEmpty) {
    CountingAllocator alloc;  // fills blocks with garbage: create must clear
    RegistryRoot* root = Registry::create(alloc, 64);
    ASSERT_NE(root, nullptr);
    EXPECT_EQ(root->groups, 0u);
    EXPECT_EQ(root->generation, 0u);
    for (uint32_t s = 0; s < kMaxWorkerSlots; ++s) {
        const WorkerSlot& w = root->slots[s];
        EXPECT_EQ(w.pid, 0);
        EXPECT_EQ(w.notified, 0u);
        EXPECT_EQ(w.head, nullptr);
        EXPECT_EQ(w.tail, nullptr);
        EXPECT_EQ(w.queued, 0u);
        EXPECT_EQ(w.connections, 0u);
    }
    EXPECT_EQ(root->stats.messages_published, 0u);
    EXPECT_EQ(root->stats.frames_delivered, 0u);
    EXPECT_EQ(root->stats.slow_consumer_closes, 0u);
    EXPECT_EQ(root->stats.connections_opened, 0u);
    EXPECT_EQ(root->stats.publish_rejected_full, 0u);
    EXPECT_EQ(root->stats.presence_joins, 0u);
    EXPECT_EQ(root->stats.presence_leaves, 0u);
    EXPECT_EQ(root->stats.presence_events_lost, 0u);
    EXPECT_EQ(root->conn_ids, 0u);
    EXPECT_EQ(root->leaving, nullptr);
    alloc.deallocate(root->presence_buckets);
    alloc.deallocate(root->buckets);
    alloc.deallocate(root);
}

TEST(RegistryCreate, CapsTheBucketCountAt2To24) {
    // Refuse the bucket array (the second allocation) so the test can see
    // the size asked for without allocating 128 MiB.
    for (size_t requested : {(size_t{1} << 24) + 1, size_t{1} << 30, SIZE_MAX}) {
        CountingAllocator alloc;
        alloc.fail_after(1);
        EXPECT_EQ(Registry::create(alloc, requested), nullptr);
        ASSERT_EQ(alloc.requested().size(), 2u);
        EXPECT_EQ(alloc.requested()[1], (size_t{1} << 24) * sizeof(GroupNode*));
        EXPECT_EQ(alloc.live(), 0u) << "root leaked when the bucket array failed";
    }
}

TEST(RegistryCreate, ReturnsNullWhenTheZoneIsFull) {
    for (size_t n = 0; n < 3; ++n) {
        CountingAllocator alloc;
        alloc.fail_after(n);
        EXPECT_EQ(Registry::create(alloc, 64), nullptr) << "after " << n;
        EXPECT_EQ(alloc.live(), 0u) << "after " << n;
    }
}

// ---------------------------------------------------------------------------
// worker slots

TEST(RegistrySlots, ClaimGivesDistinctSlotsUntilAllAreTaken) {
    Env e;
    std::vector<int> got;
    for (uint32_t i = 0; i < kMaxWorkerSlots; ++i) {
        int s = e.reg.claim_slot(static_cast<int32_t>(1000 + i));
        ASSERT_GE(s, 0);
        ASSERT_LT(s, static_cast<int>(kMaxWorkerSlots));
        EXPECT_EQ(e.root->slots[s].pid, static_cast<int32_t>(1000 + i));
        got.push_back(s);
    }
    std::sort(got.begin(), got.end());
    EXPECT_EQ(std::adjacent_find(got.begin(), got.end()), got.end()) << "a slot given twice";
    EXPECT_EQ(e.reg.claim_slot(5000), -1);
    EXPECT_EQ(e.reg.claim_slot(5001), -1);
    EXPECT_EQ(e.alloc.live(), e.baseline) << "slots must not allocate";
}

TEST(RegistrySlots, ReleaseMakesTheSlotReusable) {
    Env e;
    for (uint32_t i = 0; i < kMaxWorkerSlots; ++i) {
        ASSERT_GE(e.reg.claim_slot(static_cast<int32_t>(100 + i)), 0);
    }
    ASSERT_EQ(e.reg.claim_slot(999), -1);

    e.reg.release_slot(17);
    EXPECT_EQ(e.root->slots[17].pid, 0);
    EXPECT_EQ(e.reg.claim_slot(4242), 17);
    EXPECT_EQ(e.root->slots[17].pid, 4242);
    EXPECT_EQ(e.reg.claim_slot(999), -1);

    e.reg.release_slot(3);
    e.reg.release_slot(40);
    int a = e.reg.claim_slot(1);
    int b = e.reg.claim_slot(2);
    EXPECT_EQ(std::min(a, b), 3);
    EXPECT_EQ(std::max(a, b), 40);
    EXPECT_EQ(e.reg.claim_slot(999), -1);
}

TEST(RegistrySlots, AReclaimedSlotStartsClean) {
    Env e;
    int s = e.reg.claim_slot(10);
    ASSERT_EQ(s, 0);
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    ASSERT_EQ(Publish(e, "g", "hello").status, Status::kOk);
    e.root->slots[0].connections = 7;
    e.reg.release_slot(0);

    ASSERT_EQ(e.reg.claim_slot(11), 0);
    const WorkerSlot& w = e.root->slots[0];
    EXPECT_EQ(w.pid, 11);
    EXPECT_EQ(w.notified, 0u);
    EXPECT_EQ(w.head, nullptr);
    EXPECT_EQ(w.tail, nullptr);
    EXPECT_EQ(w.queued, 0u);
    EXPECT_EQ(w.connections, 0u);
    EXPECT_EQ(e.reg.subscribers("g"), 0u);
    EXPECT_EQ(e.alloc.live(), e.baseline);
}

// ---------------------------------------------------------------------------
// subscriptions

TEST(RegistrySubscribe, CountsPerGroupAcrossSlots) {
    Env e;
    EXPECT_EQ(e.reg.subscribers("chat:lobby"), 0u);
    EXPECT_EQ(e.reg.find("chat:lobby"), nullptr);

    ASSERT_EQ(e.reg.subscribe("chat:lobby", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("chat:lobby", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("chat:lobby", 3), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("chat:lobby", 63), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("news", 3), Status::kOk);

    EXPECT_EQ(e.reg.subscribers("chat:lobby"), 4u);
    EXPECT_EQ(e.reg.subscribers("news"), 1u);
    EXPECT_EQ(e.reg.subscribers("chat"), 0u);
    EXPECT_EQ(e.reg.subscribers("chat:lobby2"), 0u);
    EXPECT_EQ(CountOf(e, "chat:lobby", 0), 2u);
    EXPECT_EQ(CountOf(e, "chat:lobby", 3), 1u);
    EXPECT_EQ(CountOf(e, "chat:lobby", 63), 1u);
    EXPECT_EQ(CountOf(e, "chat:lobby", 1), 0u);
    EXPECT_EQ(CountOf(e, "news", 3), 1u);
    EXPECT_EQ(e.root->groups, 2u);
    ExpectConsistent(e, "chat:lobby");
    ExpectConsistent(e, "news");

    const GroupNode* g = e.reg.find("chat:lobby");
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->name(), "chat:lobby");
    EXPECT_EQ(g->nslots, 3u);

    e.reg.unsubscribe("chat:lobby", 0);
    EXPECT_EQ(e.reg.subscribers("chat:lobby"), 3u);
    EXPECT_EQ(CountOf(e, "chat:lobby", 0), 1u);
    e.reg.unsubscribe("chat:lobby", 63);
    EXPECT_EQ(e.reg.subscribers("chat:lobby"), 2u);
    EXPECT_EQ(CountOf(e, "chat:lobby", 63), 0u);
    EXPECT_EQ(e.reg.find("chat:lobby")->nslots, 2u);
    ExpectConsistent(e, "chat:lobby");
    EXPECT_EQ(e.root->groups, 2u);
}

TEST(RegistrySubscribe, GroupVanishesWithItsLastSubscriber) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("a", 1), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("a", 2), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("a", 2), Status::kOk);
    EXPECT_EQ(e.root->groups, 1u);
    EXPECT_GT(e.alloc.live(), e.baseline);

    e.reg.unsubscribe("a", 2);
    e.reg.unsubscribe("a", 1);
    EXPECT_NE(e.reg.find("a"), nullptr);
    EXPECT_EQ(e.root->groups, 1u);
    e.reg.unsubscribe("a", 2);

    EXPECT_EQ(e.reg.find("a"), nullptr);
    EXPECT_EQ(e.reg.subscribers("a"), 0u);
    EXPECT_EQ(e.root->groups, 0u);
    EXPECT_EQ(e.alloc.live(), e.baseline);
    EXPECT_EQ(e.alloc.live_bytes(), e.baseline_bytes);
    EXPECT_EQ(CountNodes(e), 0u);

    // and it comes back from nothing
    ASSERT_EQ(e.reg.subscribe("a", 5), Status::kOk);
    EXPECT_EQ(e.reg.subscribers("a"), 1u);
    EXPECT_EQ(e.root->groups, 1u);
}

TEST(RegistrySubscribe, GroupsCounterTracksLiveGroups) {
    Env e;
    const std::vector<std::string> names = {"a", "b", "c", "d", "e"};
    for (size_t i = 0; i < names.size(); ++i) {
        ASSERT_EQ(e.reg.subscribe(names[i], 0), Status::kOk);
        ASSERT_EQ(e.reg.subscribe(names[i], 1), Status::kOk);  // same group: no new one
        EXPECT_EQ(e.root->groups, i + 1);
    }
    for (size_t i = 0; i < names.size(); ++i) {
        e.reg.unsubscribe(names[i], 0);
        EXPECT_EQ(e.root->groups, names.size() - i);
        e.reg.unsubscribe(names[i], 1);
        EXPECT_EQ(e.root->groups, names.size() - i - 1);
    }
    EXPECT_EQ(e.alloc.live(), e.baseline);
}

TEST(RegistrySubscribe, UnsubscribeWithoutASubscriptionChangesNothing) {
    Env e;
    e.reg.unsubscribe("nobody", 0);  // unknown group
    EXPECT_EQ(e.root->groups, 0u);

    ASSERT_EQ(e.reg.subscribe("g", 1), Status::kOk);
    size_t live = e.alloc.live();
    e.reg.unsubscribe("g", 2);  // the group exists, the slot has no share
    e.reg.unsubscribe("g", 0);
    EXPECT_EQ(e.reg.subscribers("g"), 1u);
    EXPECT_EQ(CountOf(e, "g", 1), 1u);
    EXPECT_EQ(e.alloc.live(), live);
    ExpectConsistent(e, "g");

    e.reg.unsubscribe("g", 1);
    e.reg.unsubscribe("g", 1);  // one more than subscribed
    EXPECT_EQ(e.reg.find("g"), nullptr);
    EXPECT_EQ(e.alloc.live(), e.baseline);
}

TEST(RegistrySubscribe, OneGroupInEveryWorkerSlot) {
    Env e;
    for (uint32_t s = 0; s < kMaxWorkerSlots; ++s) {
        ASSERT_EQ(e.reg.subscribe("all", s), Status::kOk);
    }
    EXPECT_EQ(e.reg.subscribers("all"), kMaxWorkerSlots);
    EXPECT_EQ(e.reg.find("all")->nslots, kMaxWorkerSlots);
    ExpectConsistent(e, "all");

    Registry::Published r = Publish(e, "all", "x");
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(r.subscribers, kMaxWorkerSlots);
    for (uint64_t word : r.wake.bits) {
        EXPECT_EQ(word, ~uint64_t{0}) << "every slot is woken";
    }
    for (uint32_t s = 0; s < kMaxWorkerSlots; ++s) {
        EXPECT_EQ(Drain(e, s), (std::vector<Delivered>{{"all", "x"}})) << "slot " << s;
    }
    for (uint32_t s = kMaxWorkerSlots; s-- > 0;) {
        e.reg.unsubscribe("all", s);
    }
    EXPECT_EQ(e.alloc.live(), e.baseline);
}

TEST(RegistrySubscribe, TenThousandGroupsInSixteenBuckets) {
    Env e(1);
    ASSERT_EQ(e.root->bucket_mask, 15u);
    const int kGroups = 10000;
    auto name = [](int i) { return "group-" + std::to_string(i); };
    for (int i = 0; i < kGroups; ++i) {
        ASSERT_EQ(e.reg.subscribe(name(i), static_cast<uint32_t>(i % 4)), Status::kOk) << i;
        if (i % 3 == 0) {
            ASSERT_EQ(e.reg.subscribe(name(i), 7), Status::kOk) << i;
        }
    }
    EXPECT_EQ(e.root->groups, static_cast<uint32_t>(kGroups));
    EXPECT_EQ(CountNodes(e), static_cast<size_t>(kGroups));
    for (int i = 0; i < kGroups; ++i) {
        ASSERT_EQ(e.reg.subscribers(name(i)), i % 3 == 0 ? 2u : 1u) << name(i);
        ASSERT_EQ(CountOf(e, name(i), static_cast<uint32_t>(i % 4)), 1u) << name(i);
    }
    EXPECT_EQ(e.reg.find("group-10000"), nullptr);
    EXPECT_EQ(e.reg.find("group-"), nullptr);

    // A publish reaches exactly the right slots.
    Registry::Published r = Publish(e, name(4242), "m");  // 4242 % 4 == 2, % 3 == 0
    EXPECT_EQ(r.subscribers, 2u);
    EXPECT_EQ(Wake64(r.wake), Bit(2) | Bit(7));
    EXPECT_EQ(Drain(e, 2), (std::vector<Delivered>{{"group-4242", "m"}}));
    EXPECT_EQ(Drain(e, 7), (std::vector<Delivered>{{"group-4242", "m"}}));

    // Remove the odd ones, newest first (the heads of the chains).
    for (int i = kGroups - 1; i >= 0; --i) {
        if (i % 2) {
            e.reg.unsubscribe(name(i), static_cast<uint32_t>(i % 4));
            if (i % 3 == 0) {
                e.reg.unsubscribe(name(i), 7);
            }
        }
    }
    EXPECT_EQ(e.root->groups, static_cast<uint32_t>(kGroups / 2));
    EXPECT_EQ(CountNodes(e), static_cast<size_t>(kGroups / 2));
    for (int i = 0; i < kGroups; ++i) {
        ASSERT_EQ(e.reg.find(name(i)) != nullptr, i % 2 == 0) << name(i);
    }
    // Then the even ones, oldest first (the tails).
    for (int i = 0; i < kGroups; i += 2) {
        if (i % 3 == 0) {
            e.reg.unsubscribe(name(i), 7);
        }
        e.reg.unsubscribe(name(i), static_cast<uint32_t>(i % 4));
    }
    EXPECT_EQ(e.root->groups, 0u);
    EXPECT_EQ(CountNodes(e), 0u);
    EXPECT_EQ(e.alloc.live(), e.baseline);
}

TEST(RegistrySubscribe, FullHashCollisionsAreToldApart) {
    // Known FNV-1a 32-bit collisions: same hash, so the same bucket at any
    // table size, told apart only by the name.
    ASSERT_EQ(hash_group_name("costarring"), hash_group_name("liquid"));
    ASSERT_EQ(hash_group_name("declinate"), hash_group_name("macallums"));
    Env e;
    ASSERT_EQ(e.reg.subscribe("costarring", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("costarring", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("liquid", 1), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("declinate", 2), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("macallums", 2), Status::kOk);
    EXPECT_EQ(e.root->groups, 4u);
    EXPECT_EQ(e.reg.subscribers("costarring"), 2u);
    EXPECT_EQ(e.reg.subscribers("liquid"), 1u);
    EXPECT_EQ(e.reg.find("costarring")->name(), "costarring");
    EXPECT_EQ(e.reg.find("liquid")->name(), "liquid");

    Registry::Published r = Publish(e, "liquid", "L");
    EXPECT_EQ(r.subscribers, 1u);
    EXPECT_EQ(Wake64(r.wake), Bit(1));
    EXPECT_TRUE(Peek(e, 0).empty());
    EXPECT_EQ(Drain(e, 1), (std::vector<Delivered>{{"liquid", "L"}}));

    // Remove the chain's tail, then its head, with the other still found.
    e.reg.unsubscribe("costarring", 0);
    e.reg.unsubscribe("costarring", 0);
    EXPECT_EQ(e.reg.find("costarring"), nullptr);
    EXPECT_EQ(e.reg.subscribers("liquid"), 1u);
    e.reg.unsubscribe("macallums", 2);
    EXPECT_EQ(e.reg.find("macallums"), nullptr);
    EXPECT_EQ(e.reg.subscribers("declinate"), 1u);
    e.reg.unsubscribe("liquid", 1);
    e.reg.unsubscribe("declinate", 2);
    EXPECT_EQ(e.alloc.live(), e.baseline);
}

// ---------------------------------------------------------------------------
// publish

TEST(RegistryPublish, NobodyListeningStoresNothing) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("other", 0), Status::kOk);
    size_t live = e.alloc.live();
    size_t allocations = e.alloc.allocations();

    Registry::Published r = Publish(e, "empty", "payload");
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(r.subscribers, 0u);
    EXPECT_EQ(Wake64(r.wake), 0u);
    EXPECT_EQ(e.alloc.live(), live);
    EXPECT_EQ(e.alloc.allocations(), allocations);
    EXPECT_EQ(e.reg.find("empty"), nullptr) << "publish must not create groups";
    EXPECT_EQ(e.root->groups, 1u);
    for (uint32_t s = 0; s < kMaxWorkerSlots; ++s) {
        EXPECT_EQ(e.root->slots[s].head, nullptr);
        EXPECT_EQ(e.root->slots[s].queued, 0u);
        EXPECT_EQ(e.root->slots[s].notified, 0u);
    }
}

TEST(RegistryPublish, QueuesForEverySubscribedSlotAndWakesOnce) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("g", 3), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("g", 3), Status::kOk);

    Registry::Published r1 = Publish(e, "g", "one");
    EXPECT_EQ(r1.status, Status::kOk);
    EXPECT_EQ(r1.subscribers, 3u);
    EXPECT_EQ(Wake64(r1.wake), Bit(0) | Bit(3));
    EXPECT_EQ(e.root->slots[0].notified, 1u);
    EXPECT_EQ(e.root->slots[3].notified, 1u);
    EXPECT_EQ(e.root->slots[1].notified, 0u);

    // The wake-ups are pending: nobody is woken again.
    Registry::Published r2 = Publish(e, "g", "two");
    EXPECT_EQ(r2.status, Status::kOk);
    EXPECT_EQ(r2.subscribers, 3u);
    EXPECT_EQ(Wake64(r2.wake), 0u);
    EXPECT_EQ(e.root->slots[0].queued, 2u);
    EXPECT_EQ(e.root->slots[3].queued, 2u);

    // Worker 0 takes its queue: its flag clears, so the next publish wakes
    // it (and only it: worker 3 still has its wake-up pending).
    EXPECT_EQ(Drain(e, 0), (std::vector<Delivered>{{"g", "one"}, {"g", "two"}}));
    EXPECT_EQ(e.root->slots[0].notified, 0u);
    EXPECT_EQ(e.root->slots[0].queued, 0u);
    Registry::Published r3 = Publish(e, "g", "three");
    EXPECT_EQ(Wake64(r3.wake), Bit(0));

    EXPECT_EQ(Drain(e, 3),
              (std::vector<Delivered>{{"g", "one"}, {"g", "two"}, {"g", "three"}}));
    EXPECT_EQ(Drain(e, 0), (std::vector<Delivered>{{"g", "three"}}));
    Registry::Published r4 = Publish(e, "g", "four");
    EXPECT_EQ(Wake64(r4.wake), Bit(0) | Bit(3));

    // Other slots saw nothing.
    for (uint32_t s = 0; s < kMaxWorkerSlots; ++s) {
        if (s != 0 && s != 3) {
            EXPECT_EQ(e.root->slots[s].head, nullptr) << s;
        }
    }
}

TEST(RegistryPublish, WakeBitForTheLastSlot) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 63), Status::kOk);
    EXPECT_EQ(Wake64(Publish(e, "g", "x").wake), Bit(63));
    EXPECT_EQ(Wake64(Publish(e, "g", "y").wake), 0u);
}

TEST(RegistryPublish, TakeQueueOfAnEmptySlot) {
    Env e;
    e.root->slots[4].notified = 1;  // woken, but another take got there first
    EXPECT_EQ(e.reg.take_queue(4), nullptr);
    EXPECT_EQ(e.root->slots[4].notified, 0u);
    e.reg.finish_drain(4);
    EXPECT_EQ(e.alloc.live(), e.baseline);
}

TEST(RegistryPublish, MessagesComeOutInPublishOrder) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("a", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("b", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("a", 3), Status::kOk);

    std::vector<Delivered> want0, want3;
    for (int i = 0; i < 200; ++i) {
        std::string group = (i % 3 == 1) ? "b" : "a";
        std::string frame = "message " + std::to_string(i);
        ASSERT_EQ(Publish(e, group, frame).status, Status::kOk);
        want0.push_back({group, frame});
        if (group == "a") {
            want3.push_back({group, frame});
        }
        if (i == 120) {  // a take in the middle: order continues after it
            EXPECT_EQ(Drain(e, 3), want3);
            want3.clear();
        }
    }
    EXPECT_EQ(e.root->slots[0].queued, want0.size());
    EXPECT_EQ(Peek(e, 0), want0);
    EXPECT_EQ(Drain(e, 0), want0);
    EXPECT_EQ(Drain(e, 3), want3);
}

TEST(RegistryPublish, FrameBytesAndGroupNameAreIntact) {
    Env e;
    const std::string group(100, 'G');
    ASSERT_EQ(e.reg.subscribe(group, 2), Status::kOk);
    ASSERT_EQ(e.reg.subscribe(group, 9), Status::kOk);

    std::string frame;
    for (int i = 0; i < 70000; ++i) {
        frame.push_back(static_cast<char>((i * 7 + i / 256) & 0xFF));  // every byte, NULs too
    }
    ASSERT_EQ(Publish(e, group, frame).status, Status::kOk);
    ASSERT_EQ(Publish(e, group, "").status, Status::kOk);  // empty frame

    QueueNode* q2 = e.reg.take_queue(2);
    QueueNode* q9 = e.reg.take_queue(9);
    ASSERT_NE(q2, nullptr);
    ASSERT_NE(q9, nullptr);
    const ShmMessage* m = q2->message;
    EXPECT_EQ(q9->message, m) << "the message must be stored once and shared";
    EXPECT_EQ(m->refs, 2u);
    EXPECT_EQ(m->group(), group);
    ASSERT_EQ(m->frame_size, frame.size());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->frame()), m->frame_size), frame);
    ASSERT_NE(q2->next, nullptr);
    EXPECT_EQ(q2->next->message->frame_size, 0u);
    EXPECT_EQ(q2->next->message->group(), group);
    EXPECT_EQ(q2->next->next, nullptr);
    e.reg.finish_drain(2);
    e.reg.finish_drain(9);
}

TEST(RegistryPublish, AMessageIsFreedWhenTheLastWorkerReleasesIt) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("g", 3), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("h", 3), Status::kOk);
    const size_t before = e.alloc.live();

    ASSERT_EQ(Publish(e, "g", "shared").status, Status::kOk);  // message + 2 nodes
    EXPECT_EQ(e.alloc.live(), before + 3);
    ASSERT_EQ(Publish(e, "h", "only3").status, Status::kOk);  // message + 1 node
    EXPECT_EQ(e.alloc.live(), before + 5);

    const ShmMessage* shared = e.root->slots[0].head->message;
    ASSERT_NE(e.reg.take_queue(0), nullptr);
    e.reg.finish_drain(0);
    EXPECT_EQ(e.alloc.live(), before + 4) << "only worker 0's node may go";
    EXPECT_TRUE(e.alloc.is_live(shared));
    EXPECT_EQ(shared->refs, 1u);

    QueueNode* q3 = e.reg.take_queue(3);
    EXPECT_EQ(Walk(e, q3, 3), (std::vector<Delivered>{{"g", "shared"}, {"h", "only3"}}));
    e.reg.finish_drain(3);
    EXPECT_EQ(e.alloc.live(), before);
    EXPECT_FALSE(e.alloc.is_live(shared));
}

TEST(RegistryPublish, ReleaseInEitherOrder) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("g", 1), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("g", 2), Status::kOk);
    const size_t before = e.alloc.live();
    for (int i = 0; i < 5; ++i) {
        ASSERT_EQ(Publish(e, "g", "m" + std::to_string(i)).status, Status::kOk);
    }
    EXPECT_EQ(e.alloc.live(), before + 5 * 4);
    QueueNode* q1 = e.reg.take_queue(1);
    ASSERT_NE(e.reg.take_queue(2), nullptr);
    ASSERT_NE(e.reg.take_queue(0), nullptr);
    e.reg.finish_drain(2);
    EXPECT_EQ(e.alloc.live(), before + 5 * 3);
    e.reg.finish_drain(0);
    EXPECT_EQ(e.alloc.live(), before + 5 * 2);
    EXPECT_EQ(Walk(e, q1, 1).size(), 5u);  // still readable
    e.reg.finish_drain(1);
    EXPECT_EQ(e.alloc.live(), before);
}

// ---------------------------------------------------------------------------
// all or nothing when the zone is full

struct SlotState {
    QueueNode* head;
    QueueNode* tail;
    uint32_t queued;
    uint32_t notified;
    bool operator==(const SlotState& o) const {
        return head == o.head && tail == o.tail && queued == o.queued && notified == o.notified;
    }
};

struct GroupState {
    bool exists = false;
    uint32_t subscribers = 0;
    const SlotCount* slots = nullptr;
    uint16_t nslots = 0;
    uint16_t capacity = 0;
    std::map<uint32_t, uint32_t> counts;
    bool operator==(const GroupState& o) const {
        return exists == o.exists && subscribers == o.subscribers &&
               slots == o.slots && nslots == o.nslots && capacity == o.capacity &&
               counts == o.counts;
    }
};

struct Snapshot {
    std::vector<SlotState> slots;
    std::map<std::string, GroupState> groups;
    uint32_t ngroups;
    size_t live;
    size_t live_bytes;
    uint64_t messages_published;
    std::vector<std::vector<Delivered>> queues;
};

Snapshot Take(const Env& e, const std::vector<std::string>& groups) {
    Snapshot s;
    for (uint32_t i = 0; i < kMaxWorkerSlots; ++i) {
        const WorkerSlot& w = e.root->slots[i];
        s.slots.push_back({w.head, w.tail, w.queued, w.notified});
        s.queues.push_back(Peek(e, i));
    }
    for (const std::string& name : groups) {
        GroupState gs;
        if (const GroupNode* g = e.reg.find(name)) {
            gs.exists = true;
            gs.subscribers = g->subscribers;
            gs.slots = g->slots;
            gs.nslots = g->nslots;
            gs.capacity = g->capacity;
            for (uint16_t i = 0; i < g->nslots; ++i) {
                gs.counts[g->slots[i].slot] = g->slots[i].count;
            }
        }
        s.groups[name] = gs;
    }
    s.ngroups = e.root->groups;
    s.live = e.alloc.live();
    s.live_bytes = e.alloc.live_bytes();
    s.messages_published = e.root->stats.messages_published;
    return s;
}

void ExpectUnchanged(const Snapshot& before, const Snapshot& after) {
    for (uint32_t i = 0; i < kMaxWorkerSlots; ++i) {
        EXPECT_TRUE(before.slots[i] == after.slots[i]) << "slot " << i << " changed";
        EXPECT_EQ(before.queues[i], after.queues[i]) << "slot " << i << "'s queue changed";
    }
    for (const auto& [name, gs] : before.groups) {
        EXPECT_TRUE(gs == after.groups.at(name)) << "group " << name << " changed";
    }
    EXPECT_EQ(before.ngroups, after.ngroups);
    EXPECT_EQ(before.live, after.live) << "leaked or freed blocks";
    EXPECT_EQ(before.live_bytes, after.live_bytes);
    EXPECT_EQ(before.messages_published, after.messages_published);
}

// Fails the publish at every possible allocation, both with the zone staying
// full and with just one refusal, and checks each failure left no trace.
void PublishFailsCleanlyAtEveryAllocation(Env& e, std::string_view group,
                                          size_t expected_allocations,
                                          const std::vector<std::string>& groups) {
    for (bool once : {false, true}) {
        SCOPED_TRACE(once ? "one refusal" : "zone stays full");
        size_t n = 0;
        for (;; ++n) {
            ASSERT_LE(n, expected_allocations) << "more allocations than expected";
            Snapshot before = Take(e, groups);
            uint64_t rejected = e.root->stats.publish_rejected_full;
            e.alloc.fail_after(n, once);
            Registry::Published r = Publish(e, group, "frame-after-" + std::to_string(n));
            e.alloc.stop_failing();
            if (r.status == Status::kOk) {
                EXPECT_EQ(e.root->stats.publish_rejected_full, rejected);
                break;
            }
            SCOPED_TRACE("failing allocation #" + std::to_string(n + 1));
            EXPECT_EQ(r.status, Status::kNoMemory);
            EXPECT_EQ(Wake64(r.wake), 0u) << "nothing queued, so nobody to wake";
            ExpectUnchanged(before, Take(e, groups));
            EXPECT_EQ(e.root->stats.publish_rejected_full, rejected + 1);
        }
        EXPECT_EQ(n, expected_allocations);
    }
}

TEST(RegistryFull, PublishIsAllOrNothing) {
    Env e;
    for (uint32_t s : {0u, 3u, 5u}) {
        ASSERT_EQ(e.reg.subscribe("g", s), Status::kOk);
    }
    ASSERT_EQ(e.reg.subscribe("g", 5), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("other", 3), Status::kOk);
    // Non-empty queues, and worker 5 with no wake-up pending.
    ASSERT_EQ(Publish(e, "g", "earlier").status, Status::kOk);
    ASSERT_EQ(Publish(e, "other", "other").status, Status::kOk);
    e.reg.take_queue(5);
    e.reg.finish_drain(5);
    const std::vector<std::string> groups = {"g", "other"};

    // message + one node per subscribed slot
    PublishFailsCleanlyAtEveryAllocation(e, "g", 4, groups);

    // The two successful publishes (one per mode) arrived whole.
    std::vector<Delivered> fresh = {{"g", "frame-after-4"}, {"g", "frame-after-4"}};
    EXPECT_EQ(Drain(e, 5), fresh);
    std::vector<Delivered> want0 = {{"g", "earlier"}};
    want0.insert(want0.end(), fresh.begin(), fresh.end());
    EXPECT_EQ(Drain(e, 0), want0);
    std::vector<Delivered> want3 = {{"g", "earlier"}, {"other", "other"}};
    want3.insert(want3.end(), fresh.begin(), fresh.end());
    EXPECT_EQ(Drain(e, 3), want3);
}

TEST(RegistryFull, PublishToEverySlotIsAllOrNothing) {
    Env e;
    std::vector<std::string> groups = {"all"};
    for (uint32_t s = 0; s < kMaxWorkerSlots; ++s) {
        ASSERT_EQ(e.reg.subscribe("all", s), Status::kOk);
    }
    PublishFailsCleanlyAtEveryAllocation(e, "all", 1 + kMaxWorkerSlots, groups);
    for (uint32_t s = 0; s < kMaxWorkerSlots; ++s) {
        EXPECT_EQ(Drain(e, s).size(), 2u) << s;
    }
}

// Fails subscribe at every possible allocation, both with the zone staying
// full and with just one refusal (each mode on a registry freshly set up),
// and checks each failure left the registry as it was.
template <typename Setup>
void SubscribeFailsCleanlyAtEveryAllocation(size_t buckets, Setup setup, std::string_view group,
                                            uint32_t slot, size_t expected_allocations,
                                            const std::vector<std::string>& groups) {
    for (bool once : {false, true}) {
        SCOPED_TRACE(once ? "one refusal" : "zone stays full");
        Env e(buckets);
        setup(e);
        if (::testing::Test::HasFatalFailure()) {
            return;
        }
        GroupState start = Take(e, groups).groups.at(std::string(group));
        size_t n = 0;
        for (;; ++n) {
            ASSERT_LE(n, expected_allocations) << "more allocations than expected";
            Snapshot before = Take(e, groups);
            e.alloc.fail_after(n, once);
            Status st = e.reg.subscribe(group, slot);
            e.alloc.stop_failing();
            if (st == Status::kOk) {
                break;
            }
            SCOPED_TRACE("failing allocation #" + std::to_string(n + 1));
            EXPECT_EQ(st, Status::kNoMemory);
            ExpectUnchanged(before, Take(e, groups));
        }
        EXPECT_EQ(n, expected_allocations);
        EXPECT_EQ(e.reg.subscribers(group), start.subscribers + 1);
        EXPECT_EQ(CountOf(e, group, slot), start.counts[slot] + 1);
        ExpectConsistent(e, group);
    }
}

TEST(RegistryFull, SubscribeToANewGroupIsAllOrNothing) {
    // group node + its slot array
    SubscribeFailsCleanlyAtEveryAllocation(
        64, [](Env& e) { ASSERT_EQ(e.reg.subscribe("existing", 1), Status::kOk); }, "fresh", 2,
        2, {"fresh", "existing"});
}

TEST(RegistryFull, SubscribeThatGrowsTheSlotArrayIsAllOrNothing) {
    SubscribeFailsCleanlyAtEveryAllocation(
        64,
        [](Env& e) {
            ASSERT_EQ(e.reg.subscribe("g", 1), Status::kOk);
            ASSERT_EQ(e.reg.subscribe("g", 2), Status::kOk);
            ASSERT_EQ(e.reg.find("g")->capacity, e.reg.find("g")->nslots) << "array not full";
        },
        "g", 3, 1, {"g"});
}

TEST(RegistryFull, SubscribeThatNeedsNoMemoryNeverFails) {
    // Another subscriber in a slot already listed.
    SubscribeFailsCleanlyAtEveryAllocation(
        64, [](Env& e) { ASSERT_EQ(e.reg.subscribe("g", 1), Status::kOk); }, "g", 1, 0, {"g"});
    // A new slot while the array has room.
    SubscribeFailsCleanlyAtEveryAllocation(
        64,
        [](Env& e) {
            ASSERT_EQ(e.reg.subscribe("g", 1), Status::kOk);
            ASSERT_EQ(e.reg.subscribe("g", 2), Status::kOk);
            ASSERT_EQ(e.reg.subscribe("g", 3), Status::kOk);  // grows to 4
            ASSERT_LT(e.reg.find("g")->nslots, e.reg.find("g")->capacity);
        },
        "g", 4, 0, {"g"});
}

TEST(RegistryFull, SubscribeNextToACollidingGroupIsAllOrNothing) {
    SubscribeFailsCleanlyAtEveryAllocation(
        1,
        [](Env& e) {
            ASSERT_EQ(e.reg.subscribe("costarring", 0), Status::kOk);
            ASSERT_EQ(e.reg.subscribe("group-1", 0), Status::kOk);
        },
        "liquid", 1, 2, {"costarring", "liquid", "group-1"});
}

TEST(RegistryFull, WorkContinuesAfterTheZoneFrees) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    e.alloc.fail_after(0);
    EXPECT_EQ(Publish(e, "g", "lost").status, Status::kNoMemory);
    EXPECT_EQ(e.reg.subscribe("h", 0), Status::kNoMemory);
    e.alloc.stop_failing();
    EXPECT_EQ(Publish(e, "g", "kept").status, Status::kOk);
    EXPECT_EQ(e.reg.subscribe("h", 0), Status::kOk);
    EXPECT_EQ(Drain(e, 0), (std::vector<Delivered>{{"g", "kept"}}));
}

// ---------------------------------------------------------------------------
// one message for several groups

Registry::Published PublishMany(Env& e, const std::vector<std::string_view>& groups,
                                std::string_view frame) {
    return e.reg.publish(groups.data(), groups.size(),
                         reinterpret_cast<const uint8_t*>(frame.data()), frame.size());
}

TEST(RegistryPublishMany, StoredOnceQueuedOncePerWorker) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("a", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("b", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("b", 3), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("b", 3), Status::kOk);
    const size_t before = e.alloc.live();
    const uint64_t published = e.root->stats.messages_published;

    Registry::Published r = PublishMany(e, {"a", "nobody", "b"}, "frame");
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(r.subscribers, 4u);
    EXPECT_EQ(Wake64(r.wake), Bit(0) | Bit(3));
    EXPECT_EQ(e.alloc.live(), before + 1 + 2) << "one message, a node per worker";
    EXPECT_EQ(e.root->stats.messages_published, published + 1);
    EXPECT_EQ(e.reg.find("nobody"), nullptr);

    const ShmMessage* m = e.root->slots[0].head->message;
    EXPECT_EQ(m->refs, 2u);
    EXPECT_EQ(m->group(0), "a");
    EXPECT_EQ(m->group(1), "nobody");
    EXPECT_EQ(m->group(2), "b");
    // worker 0 serves both groups: it gets the message once, for both
    EXPECT_EQ(Peek(e, 0), (std::vector<Delivered>{{"a+b", "frame"}}));
    EXPECT_EQ(Peek(e, 3), (std::vector<Delivered>{{"b", "frame"}}));

    e.reg.take_queue(0);
    e.reg.finish_drain(0);
    EXPECT_TRUE(e.alloc.is_live(m));
    EXPECT_EQ(m->refs, 1u);
    EXPECT_EQ(Drain(e, 3), (std::vector<Delivered>{{"b", "frame"}}));
    EXPECT_FALSE(e.alloc.is_live(m));
    EXPECT_EQ(e.alloc.live(), before);
}

TEST(RegistryPublishMany, NobodyListeningStoresNothing) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("other", 0), Status::kOk);
    const size_t allocations = e.alloc.allocations();
    Registry::Published r = PublishMany(e, {"x", "y"}, "frame");
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(r.subscribers, 0u);
    EXPECT_EQ(Wake64(r.wake), 0u);
    EXPECT_EQ(e.alloc.allocations(), allocations);
    EXPECT_EQ(PublishMany(e, {}, "frame").subscribers, 0u);
    EXPECT_EQ(e.alloc.allocations(), allocations);
}

TEST(RegistryPublishMany, LongNamesAndTheMostGroups) {
    Env e;
    std::vector<std::string> names;
    for (size_t i = 0; i < kMaxGroupsPerMessage; ++i) {
        std::string n = std::to_string(i) + ":";
        n += std::string(kMaxGroupName - n.size(), 'x');
        names.push_back(n);
    }
    std::vector<std::string_view> views(names.begin(), names.end());
    ASSERT_EQ(e.reg.subscribe(names.back(), 1), Status::kOk);
    ASSERT_EQ(e.reg.subscribe(names.front(), 2), Status::kOk);
    Registry::Published r = PublishMany(e, views, "f");
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(r.subscribers, 2u);
    EXPECT_EQ(Drain(e, 1), (std::vector<Delivered>{{names.back(), "f"}}));
    EXPECT_EQ(Drain(e, 2), (std::vector<Delivered>{{names.front(), "f"}}));
}

TEST(RegistryPublishMany, TooManyGroupsStoresNothing) {
    Env e;
    std::vector<std::string> names;
    for (size_t i = 0; i <= kMaxGroupsPerMessage; ++i) {
        names.push_back("g" + std::to_string(i));
    }
    std::vector<std::string_view> views(names.begin(), names.end());
    ASSERT_EQ(e.reg.subscribe("g0", 0), Status::kOk);
    Snapshot before = Take(e, {"g0"});
    Registry::Published r = PublishMany(e, views, "f");
    EXPECT_NE(r.status, Status::kOk);
    EXPECT_EQ(Wake64(r.wake), 0u);
    ExpectUnchanged(before, Take(e, {"g0"}));
}

TEST(RegistryFull, PublishToSeveralGroupsIsAllOrNothing) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("a", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("a", 3), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("b", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("b", 5), Status::kOk);
    ASSERT_EQ(Publish(e, "a", "earlier").status, Status::kOk);
    const std::vector<std::string> groups = {"a", "b"};
    for (bool once : {false, true}) {
        SCOPED_TRACE(once ? "one refusal" : "zone stays full");
        size_t n = 0;
        for (;; ++n) {
            ASSERT_LE(n, 5u);
            Snapshot before = Take(e, groups);
            e.alloc.fail_after(n, once);
            Registry::Published r = PublishMany(e, {"a", "b"}, "both");
            e.alloc.stop_failing();
            if (r.status == Status::kOk) {
                break;
            }
            SCOPED_TRACE("failing allocation #" + std::to_string(n + 1));
            EXPECT_EQ(r.status, Status::kNoMemory);
            EXPECT_EQ(Wake64(r.wake), 0u);
            ExpectUnchanged(before, Take(e, groups));
        }
        EXPECT_EQ(n, 4u) << "message + a node for each of 3 workers";
    }
    EXPECT_EQ(Drain(e, 0), (std::vector<Delivered>{{"a", "earlier"}, {"a+b", "both"},
                                                   {"a+b", "both"}}));
    EXPECT_EQ(Drain(e, 3), (std::vector<Delivered>{{"a", "earlier"}, {"a", "both"},
                                                   {"a", "both"}}));
    EXPECT_EQ(Drain(e, 5), (std::vector<Delivered>{{"b", "both"}, {"b", "both"}}));
}

// ---------------------------------------------------------------------------
// a worker dies

TEST(RegistryReleaseSlot, ADeadWorkersShareAndQueueGo) {
    Env e;
    ASSERT_EQ(e.reg.claim_slot(100), 0);
    ASSERT_EQ(e.reg.claim_slot(101), 1);
    ASSERT_EQ(e.reg.claim_slot(102), 2);

    // "only1" is worker 1's alone; "shared" has all three; "other" lacks 1.
    ASSERT_EQ(e.reg.subscribe("only1", 1), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("only1", 1), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("shared", 0), Status::kOk);
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(e.reg.subscribe("shared", 1), Status::kOk);
    }
    ASSERT_EQ(e.reg.subscribe("shared", 2), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("other", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("other", 2), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("other", 2), Status::kOk);

    ASSERT_EQ(Publish(e, "only1", "a").status, Status::kOk);   // msg + 1 node
    ASSERT_EQ(Publish(e, "shared", "b").status, Status::kOk);  // msg + 3 nodes
    ASSERT_EQ(Publish(e, "other", "c").status, Status::kOk);   // msg + 2 nodes
    const ShmMessage* only1_msg = e.root->slots[1].head->message;
    const ShmMessage* shared_msg = e.root->slots[0].head->message;
    const std::vector<std::string> kept = {"shared", "other"};
    Snapshot before = Take(e, kept);
    const size_t only1_blocks = 2;  // its group node and slot array

    e.reg.release_slot(1);

    // Worker 1's queue: its 2 nodes and the message only it held.
    EXPECT_FALSE(e.alloc.is_live(only1_msg));
    EXPECT_TRUE(e.alloc.is_live(shared_msg));
    EXPECT_EQ(shared_msg->refs, 2u);
    EXPECT_EQ(e.alloc.live(), before.live - 3 - only1_blocks);
    const WorkerSlot& w = e.root->slots[1];
    EXPECT_EQ(w.pid, 0);
    EXPECT_EQ(w.head, nullptr);
    EXPECT_EQ(w.tail, nullptr);
    EXPECT_EQ(w.queued, 0u);
    EXPECT_EQ(w.notified, 0u);

    // Its share of the groups.
    EXPECT_EQ(e.reg.find("only1"), nullptr);
    EXPECT_EQ(e.root->groups, 2u);
    EXPECT_EQ(e.reg.subscribers("shared"), 2u);
    EXPECT_EQ(CountOf(e, "shared", 1), 0u);
    EXPECT_EQ(CountOf(e, "shared", 0), 1u);
    EXPECT_EQ(CountOf(e, "shared", 2), 1u);
    EXPECT_EQ(e.reg.subscribers("other"), 3u);
    ExpectConsistent(e, "shared");
    ExpectConsistent(e, "other");

    // Nobody else's queue moved.
    Snapshot after = Take(e, kept);
    for (uint32_t s : {0u, 2u}) {
        EXPECT_TRUE(before.slots[s] == after.slots[s]) << s;
        EXPECT_EQ(before.queues[s], after.queues[s]) << s;
    }
    EXPECT_TRUE(before.groups.at("other") == after.groups.at("other"));

    // New publishes skip the dead worker, and its slot can be claimed again.
    Registry::Published r = Publish(e, "shared", "d");
    EXPECT_EQ(r.subscribers, 2u);
    EXPECT_EQ(Wake64(r.wake), 0u);  // 0 and 2 still have wake-ups pending
    EXPECT_EQ(Publish(e, "only1", "e").subscribers, 0u);
    EXPECT_EQ(e.reg.claim_slot(103), 1);
    EXPECT_EQ(e.root->slots[1].head, nullptr);

    EXPECT_EQ(Drain(e, 0), (std::vector<Delivered>{{"shared", "b"}, {"other", "c"},
                                                   {"shared", "d"}}));
    EXPECT_EQ(Drain(e, 2), (std::vector<Delivered>{{"shared", "b"}, {"other", "c"},
                                                   {"shared", "d"}}));
}

TEST(RegistryReleaseSlot, RemovesGroupsAnywhereInTheChains) {
    // Many groups in few buckets, so removed groups sit at chain heads,
    // middles and tails, next to each other and next to kept ones.
    Env e(1);
    const int kGroups = 600;
    auto name = [](int i) { return "g" + std::to_string(i); };
    for (int i = 0; i < kGroups; ++i) {
        switch (i % 5) {
        case 0:  // worker 1 only
        case 1:
            ASSERT_EQ(e.reg.subscribe(name(i), 1), Status::kOk);
            break;
        case 2:  // both
            ASSERT_EQ(e.reg.subscribe(name(i), 1), Status::kOk);
            ASSERT_EQ(e.reg.subscribe(name(i), 0), Status::kOk);
            break;
        default:  // worker 0 only
            ASSERT_EQ(e.reg.subscribe(name(i), 0), Status::kOk);
        }
    }
    e.reg.release_slot(1);
    EXPECT_EQ(CountNodes(e), static_cast<size_t>(kGroups * 3 / 5));
    EXPECT_EQ(e.root->groups, static_cast<uint32_t>(kGroups * 3 / 5));
    for (int i = 0; i < kGroups; ++i) {
        bool kept = i % 5 >= 2;
        ASSERT_EQ(e.reg.find(name(i)) != nullptr, kept) << name(i);
        if (kept) {
            ASSERT_EQ(e.reg.subscribers(name(i)), 1u) << name(i);
            ASSERT_EQ(CountOf(e, name(i), 0), 1u) << name(i);
        }
    }
    e.reg.release_slot(0);
    EXPECT_EQ(e.root->groups, 0u);
    EXPECT_EQ(CountNodes(e), 0u);
    EXPECT_EQ(e.alloc.live(), e.baseline);
}

TEST(RegistryReleaseSlot, OfAnUnusedSlotChangesNothing) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    ASSERT_EQ(Publish(e, "g", "m").status, Status::kOk);
    Snapshot before = Take(e, {"g"});
    e.reg.release_slot(9);
    ExpectUnchanged(before, Take(e, {"g"}));
}

// ---------------------------------------------------------------------------
// stats

TEST(RegistryStats, CountPublishedAndRejectedMessages) {
    Env e;
    const RegistryStats& st = e.root->stats;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);

    ASSERT_EQ(Publish(e, "g", "1").status, Status::kOk);
    EXPECT_EQ(st.messages_published, 1u);
    EXPECT_EQ(st.publish_rejected_full, 0u);

    // Accepted with nobody listening still counts as published.
    ASSERT_EQ(Publish(e, "nobody", "2").status, Status::kOk);
    EXPECT_EQ(st.messages_published, 2u);
    EXPECT_EQ(st.publish_rejected_full, 0u);

    // Refused: the message itself, then a queue node.
    e.alloc.fail_after(0);
    EXPECT_EQ(Publish(e, "g", "3").status, Status::kNoMemory);
    e.alloc.fail_after(1);
    EXPECT_EQ(Publish(e, "g", "4").status, Status::kNoMemory);
    EXPECT_EQ(st.messages_published, 2u);
    EXPECT_EQ(st.publish_rejected_full, 2u);
    // A full zone refuses nothing when nothing has to be stored.
    EXPECT_EQ(Publish(e, "nobody", "5").status, Status::kOk);
    e.alloc.stop_failing();
    EXPECT_EQ(st.messages_published, 3u);
    EXPECT_EQ(st.publish_rejected_full, 2u);

    ASSERT_EQ(Publish(e, "g", "6").status, Status::kOk);
    EXPECT_EQ(st.messages_published, 4u);
    EXPECT_EQ(st.publish_rejected_full, 2u);

    // The registry leaves the counters the nginx side owns alone.
    EXPECT_EQ(st.frames_delivered, 0u);
    EXPECT_EQ(st.slow_consumer_closes, 0u);
    EXPECT_EQ(st.connections_opened, 0u);

    // Subscriptions, takes and releases do not count.
    ASSERT_EQ(e.reg.subscribe("h", 1), Status::kOk);
    Drain(e, 0);
    e.reg.release_slot(1);
    EXPECT_EQ(st.messages_published, 4u);
    EXPECT_EQ(st.publish_rejected_full, 2u);
}

TEST(RegistryHash, IsFnv1a) {
    EXPECT_EQ(hash_group_name(""), 2166136261u);
    EXPECT_EQ(hash_group_name("a"), 0xe40c292cu);
    EXPECT_EQ(hash_group_name("foobar"), 0xbf9cf968u);
}

// ---------------------------------------------------------------------------
// hardening: duplicates, claims, deliveries cut short, lost wake-ups

TEST(RegistryPublishMany, AGroupNamedTwiceCountsOnce) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("a", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("a", 1), Status::kOk);
    Registry::Published r = PublishMany(e, {"a", "a"}, "x");
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(r.subscribers, 2u);
    // one node per worker (the names are kept as given; the worker's
    // delivery stamp gives each connection the message once)
    EXPECT_EQ(Drain(e, 0), (std::vector<Delivered>{{"a+a", "x"}}));
    EXPECT_EQ(Drain(e, 1), (std::vector<Delivered>{{"a+a", "x"}}));
}

TEST(RegistrySlots, OwnersAreUniqueAndALateReleaseSparesTheNewClaim) {
    Env e;
    int s = e.reg.claim_slot(100);
    ASSERT_GE(s, 0);
    uint64_t first = e.root->slots[s].owner;
    ASSERT_EQ(e.reg.subscribe("g", static_cast<uint32_t>(s)), Status::kOk);
    SlotSet wake;

    // the slot is reclaimed (its worker died) and claimed again
    EXPECT_TRUE(e.reg.release_slot_of(static_cast<uint32_t>(s), first, 0, wake));
    ASSERT_EQ(e.reg.claim_slot(200), s);
    uint64_t second = e.root->slots[s].owner;
    EXPECT_NE(first, second);
    ASSERT_EQ(e.reg.subscribe("g", static_cast<uint32_t>(s)), Status::kOk);

    // the first claim's release comes late: it must not touch the new one
    EXPECT_FALSE(e.reg.release_slot_of(static_cast<uint32_t>(s), first, 0, wake));
    EXPECT_EQ(e.root->slots[s].pid, 200);
    EXPECT_EQ(e.reg.subscribers("g"), 1u);
    EXPECT_TRUE(e.reg.release_slot_of(static_cast<uint32_t>(s), second, 0, wake));
    EXPECT_EQ(e.reg.subscribers("g"), 0u);
    EXPECT_FALSE(e.reg.release_slot_of(static_cast<uint32_t>(s), second, 0, wake));
}

TEST(RegistrySlots, AWorkerKilledMidDeliveryLeaksNothing) {
    Env e;
    ASSERT_EQ(e.reg.claim_slot(1), 0);
    ASSERT_EQ(e.reg.claim_slot(2), 1);
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("g", 1), Status::kOk);
    const size_t before = e.alloc.live();
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(Publish(e, "g", "m" + std::to_string(i)).status, Status::kOk);
    }
    // worker 0 takes its queue, then dies before giving it back
    ASSERT_NE(e.reg.take_queue(0), nullptr);
    ASSERT_EQ(Publish(e, "g", "after").status, Status::kOk);
    e.reg.release_slot(0);
    // worker 1 still gets everything; then nothing is left at all
    EXPECT_EQ(Drain(e, 1).size(), 4u);
    e.reg.release_slot(1);
    EXPECT_EQ(e.alloc.live(), before - 2) << "the groups' nodes went with the slots";
}

TEST(RegistryWake, AFailedWakeUpIsRetriedByTheNextPublish) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 4), Status::kOk);
    EXPECT_EQ(Wake64(Publish(e, "g", "1").wake), Bit(4));
    EXPECT_EQ(Wake64(Publish(e, "g", "2").wake), 0u) << "one is pending";
    e.reg.wake_failed(4);
    EXPECT_EQ(Wake64(Publish(e, "g", "3").wake), Bit(4)) << "the lost one is sent again";
    EXPECT_EQ(Drain(e, 4).size(), 3u);
}

TEST(RegistryWake, SlotSetVisitsMembersInOrder) {
    SlotSet s;
    for (uint32_t i : {1023u, 0u, 64u, 63u, 500u}) {
        s.set(i);
    }
    std::vector<uint32_t> seen;
    s.for_each([&](uint32_t i) { seen.push_back(i); });
    EXPECT_EQ(seen, (std::vector<uint32_t>{0, 63, 64, 500, 1023}));
    EXPECT_FALSE(s.none());
    EXPECT_TRUE(SlotSet{}.none());
}

// ---------------------------------------------------------------------------
// connections that join groups: counted once across a message's groups

ConnNode* Join(Env& e, std::vector<std::string_view> groups, uint32_t slot) {
    return e.reg.join(groups.data(), groups.size(), slot);
}

TEST(RegistryJoin, JoinCountsAndListsLeaveUndoes) {
    Env e;
    const size_t before = e.alloc.live();
    ConnNode* c = Join(e, {"a", "b"}, 2);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(e.reg.subscribers("a"), 1u);
    EXPECT_EQ(e.reg.subscribers("b"), 1u);
    EXPECT_EQ(CountOf(e, "a", 2), 1u);
    EXPECT_EQ(e.reg.find("a")->nmembers, 1u);
    EXPECT_EQ(e.root->slots[2].conns, c);
    e.reg.leave(c);
    EXPECT_EQ(e.reg.find("a"), nullptr);
    EXPECT_EQ(e.reg.find("b"), nullptr);
    EXPECT_EQ(e.root->slots[2].conns, nullptr);
    EXPECT_EQ(e.alloc.live(), before);
}

TEST(RegistryJoin, AllOrNothingAtEveryAllocation) {
    Env e;
    ConnNode* other = Join(e, {"a"}, 1);
    ASSERT_NE(other, nullptr);
    const size_t before = e.alloc.live();
    for (size_t n = 0;; ++n) {
        ASSERT_LT(n, 20u);
        e.alloc.fail_after(n, true);
        ConnNode* c = Join(e, {"a", "b", "c"}, 3);
        e.alloc.stop_failing();
        if (c) {
            EXPECT_EQ(e.reg.subscribers("a"), 2u);
            EXPECT_EQ(e.reg.subscribers("c"), 1u);
            e.reg.leave(c);
            break;
        }
        SCOPED_TRACE("failing allocation #" + std::to_string(n + 1));
        EXPECT_EQ(e.alloc.live(), before) << "a refused join leaves nothing";
        EXPECT_EQ(e.reg.subscribers("a"), 1u);
        EXPECT_EQ(e.reg.find("b"), nullptr);
        EXPECT_EQ(e.reg.find("a")->nmembers, 1u);
    }
    EXPECT_EQ(e.alloc.live(), before);
}

TEST(RegistryJoin, ReleasingASlotTakesItsConnectionsAlong) {
    Env e;
    ASSERT_EQ(e.reg.claim_slot(10), 0);
    ASSERT_EQ(e.reg.claim_slot(11), 1);
    const size_t before = e.alloc.live();
    for (int i = 0; i < 5; ++i) {
        ASSERT_NE(Join(e, {"a", "u" + std::to_string(i)}, 0) , nullptr);
    }
    ConnNode* keep = Join(e, {"a"}, 1);
    ASSERT_NE(keep, nullptr);
    EXPECT_EQ(e.reg.subscribers("a"), 6u);
    e.reg.release_slot(0);  // its worker died
    EXPECT_EQ(e.reg.subscribers("a"), 1u);
    EXPECT_EQ(e.reg.find("a")->nmembers, 1u);
    EXPECT_EQ(e.reg.find("u3"), nullptr);
    e.reg.leave(keep);
    EXPECT_EQ(e.alloc.live(), before);
}

TEST(RegistryJoin, APublishCountsEachConnectionOnce) {
    Env e;
    // worker 0: c1 in a+b, c2 in a; worker 1: c3 in b, c4 in a+b+c
    ASSERT_NE(Join(e, {"a", "b"}, 0), nullptr);
    ASSERT_NE(Join(e, {"a"}, 0), nullptr);
    ASSERT_NE(Join(e, {"b"}, 1), nullptr);
    ASSERT_NE(Join(e, {"a", "b", "c"}, 1), nullptr);
    ASSERT_NE(Join(e, {"d"}, 1), nullptr);

    EXPECT_EQ(PublishMany(e, {"a"}, "x").subscribers, 3u);
    EXPECT_EQ(PublishMany(e, {"a", "b"}, "x").subscribers, 4u);
    EXPECT_EQ(PublishMany(e, {"b", "a"}, "x").subscribers, 4u);
    EXPECT_EQ(PublishMany(e, {"a", "b", "c"}, "x").subscribers, 4u);
    EXPECT_EQ(PublishMany(e, {"c", "b"}, "x").subscribers, 3u);
    EXPECT_EQ(PublishMany(e, {"a", "d"}, "x").subscribers, 4u);
    EXPECT_EQ(PublishMany(e, {"a", "a", "nobody"}, "x").subscribers, 3u);
    // subscriptions made without join are counted as they are
    ASSERT_EQ(e.reg.subscribe("c", 2), Status::kOk);
    EXPECT_EQ(PublishMany(e, {"c", "b"}, "x").subscribers, 4u);
    e.reg.unsubscribe("c", 2);
    for (uint32_t slot : {0u, 1u}) {
        e.reg.take_queue(slot);
        e.reg.finish_drain(slot);
    }
}

// ---------------------------------------------------------------------------
// connection ids, message origin and kind

TEST(RegistryConnIds, AreUniqueAndNeverZero) {
    Env e;
    std::vector<ConnNode*> conns;
    std::vector<uint64_t> ids;
    for (int i = 0; i < 50; ++i) {
        ConnNode* c = Join(e, {"a", "g" + std::to_string(i % 3)}, static_cast<uint32_t>(i % 4));
        ASSERT_NE(c, nullptr);
        EXPECT_NE(c->id, 0u);
        conns.push_back(c);
        ids.push_back(c->id);
    }
    // ids of connections gone are not given again
    for (int i = 0; i < 50; i += 2) {
        e.reg.leave(conns[static_cast<size_t>(i)]);
    }
    for (int i = 0; i < 10; ++i) {
        ConnNode* c = Join(e, {}, 5);
        ASSERT_NE(c, nullptr);
        ids.push_back(c->id);
    }
    std::vector<uint64_t> sorted = ids;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << "an id given twice";
    EXPECT_EQ(e.root->conn_ids, 60u);
}

TEST(RegistryPublish, StoresOriginAndKind) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    const std::string_view g = "g";
    const uint8_t bytes[] = {'x'};
    Registry::PublishOptions control;
    control.origin = 42;
    control.kind = MessageKind::kControl;
    ASSERT_EQ(e.reg.publish(&g, 1, bytes, 1, control).status, Status::kOk);
    ASSERT_EQ(e.reg.publish(&g, 1, bytes, 1).status, Status::kOk);  // the defaults
    Registry::PublishOptions data;
    data.origin = UINT64_MAX;
    ASSERT_EQ(e.reg.publish(&g, 1, bytes, 1, data).status, Status::kOk);

    QueueNode* q = e.reg.take_queue(0);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->message->origin, 42u);
    EXPECT_EQ(q->message->kind, MessageKind::kControl);
    ASSERT_NE(q->next, nullptr);
    EXPECT_EQ(q->next->message->origin, 0u);
    EXPECT_EQ(q->next->message->kind, MessageKind::kData);
    ASSERT_NE(q->next->next, nullptr);
    EXPECT_EQ(q->next->next->message->origin, UINT64_MAX);
    EXPECT_EQ(q->next->next->message->kind, MessageKind::kData);
    e.reg.finish_drain(0);
}

// ---------------------------------------------------------------------------
// presence

// The specs of a test's users, kept alive for the test: user u's join frame
// is "+u" and its leave frame "-u" (unless told otherwise).
class Users {
public:
    const PresenceSpec* operator()(std::string_view user, uint32_t delay = 0,
                                   std::string_view info = "{}") {
        return Make(user, delay, info, "+" + std::string(user), "-" + std::string(user));
    }
    const PresenceSpec* Make(std::string_view user, uint32_t delay, std::string_view info,
                             std::string join, std::string leave) {
        const std::string& u = strings_.emplace_back(user);
        const std::string& i = strings_.emplace_back(info);
        const std::string& j = strings_.emplace_back(std::move(join));
        const std::string& l = strings_.emplace_back(std::move(leave));
        return &specs_.emplace_back(PresenceSpec{u, i, j, l, delay});
    }

private:
    std::deque<std::string> strings_;
    std::deque<PresenceSpec> specs_;
};

ConnNode* JoinP(Env& e, const std::vector<JoinGroup>& groups, uint32_t slot,
                SlotSet* wake = nullptr) {
    SlotSet ignored;
    return e.reg.join(groups.data(), groups.size(), slot, wake ? *wake : ignored);
}

void Leave(Env& e, ConnNode* c, uint64_t now = 0, SlotSet* wake = nullptr) {
    SlotSet ignored;
    e.reg.leave(c, now, wake ? *wake : ignored);
}

uint64_t Sweep(Env& e, uint64_t now, SlotSet* wake = nullptr) {
    SlotSet ignored;
    return e.reg.sweep_presence(now, wake ? *wake : ignored);
}

// Takes and gives back slot's queue, returning its frames.
std::vector<std::string> Frames(Env& e, uint32_t slot) {
    std::vector<std::string> out;
    for (const Delivered& d : Drain(e, slot)) {
        out.push_back(d.frame);
    }
    return out;
}

using Strings = std::vector<std::string>;

// The users present in group, in list order, checking the list's links and
// count against `present`.
Strings Present(const Env& e, std::string_view group) {
    Strings out;
    const GroupNode* g = e.reg.find(group);
    if (g == nullptr) {
        return out;
    }
    const PresenceNode* prev = nullptr;
    for (const PresenceNode* p = g->presence; p; p = p->next) {
        EXPECT_EQ(p->prev, prev) << group;
        EXPECT_EQ(p->group, g) << group;
        EXPECT_EQ(p->hash, hash_presence(group, p->user()));
        EXPECT_EQ(e.reg.presence(group, p->user()), p) << "not found by its key";
        out.emplace_back(p->user());
        prev = p;
    }
    EXPECT_EQ(g->presence_tail, prev) << group;
    EXPECT_EQ(g->present, out.size()) << group;
    return out;
}

// Every presence node: in the bucket of its hash, counted by its group,
// pending exactly when it has no connection, and the pending list intact.
void ExpectPresenceConsistent(const Env& e) {
    size_t nodes = 0;
    size_t zero = 0;
    for (uint32_t b = 0; b <= e.root->bucket_mask; ++b) {
        for (const PresenceNode* p = e.root->presence_buckets[b]; p; p = p->hash_next) {
            EXPECT_EQ(p->hash & e.root->bucket_mask, b);
            ++nodes;
            if (p->connections == 0) {
                ++zero;
                EXPECT_GT(p->leave_delay, 0u) << p->user() << " kept with no delay";
            }
        }
    }
    size_t present = 0;
    for (uint32_t b = 0; b <= e.root->bucket_mask; ++b) {
        for (const GroupNode* g = e.root->buckets[b]; g; g = g->next) {
            present += g->present;
            EXPECT_TRUE(g->subscribers > 0 || g->presence != nullptr || g->hist_head != nullptr)
                << g->name() << " kept with nothing in it";
        }
    }
    EXPECT_EQ(nodes, present);
    size_t leaving = 0;
    const PresenceNode* prev = nullptr;
    for (const PresenceNode* p = e.root->leaving; p; p = p->leaving_next) {
        EXPECT_EQ(p->leaving_prev, prev);
        EXPECT_EQ(p->connections, 0u);
        ++leaving;
        prev = p;
    }
    EXPECT_EQ(leaving, zero);
}

TEST(RegistryPresence, OneJoinAndOneLeavePerUserWhateverItsConnections) {
    Env e;
    Users u;
    const RegistryStats& st = e.root->stats;
    const size_t before = e.alloc.live();
    ConnNode* watcher = Join(e, {"room"}, 2);  // no presence: sees the events
    ASSERT_NE(watcher, nullptr);

    // ann's first connection: one event, which she gets too
    SlotSet wake;
    ConnNode* a1 = JoinP(e, {{"room", u("ann")}}, 0, &wake);
    ASSERT_NE(a1, nullptr);
    EXPECT_EQ(Wake64(wake), Bit(0) | Bit(2));
    EXPECT_EQ(st.presence_joins, 1u);
    EXPECT_EQ(Frames(e, 0), Strings{"+ann"});
    EXPECT_EQ(Frames(e, 2), Strings{"+ann"});
    EXPECT_EQ(Present(e, "room"), Strings{"ann"});

    // two more, on slot 0 and slot 1: nothing published
    SlotSet wake2;
    ConnNode* a2 = JoinP(e, {{"room", u("ann")}}, 0, &wake2);
    ConnNode* a3 = JoinP(e, {{"room", u("ann")}}, 1, &wake2);
    ASSERT_NE(a2, nullptr);
    ASSERT_NE(a3, nullptr);
    EXPECT_EQ(Wake64(wake2), 0u);
    EXPECT_EQ(st.presence_joins, 1u);
    const PresenceNode* p = e.reg.presence("room", "ann");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->connections, 3u);
    EXPECT_EQ(e.reg.find("room")->present, 1u);
    EXPECT_EQ(e.reg.subscribers("room"), 4u);
    for (uint32_t s : {0u, 1u, 2u}) {
        EXPECT_TRUE(Frames(e, s).empty()) << s;
    }

    // leaving: nothing until the last one
    Leave(e, a2, 0, &wake2);
    Leave(e, a1, 0, &wake2);
    EXPECT_EQ(Wake64(wake2), 0u);
    EXPECT_EQ(st.presence_leaves, 0u);
    EXPECT_EQ(e.reg.presence("room", "ann")->connections, 1u);
    EXPECT_TRUE(Frames(e, 2).empty());
    SlotSet wake3;
    Leave(e, a3, 0, &wake3);
    EXPECT_EQ(st.presence_leaves, 1u);
    EXPECT_EQ(Wake64(wake3), Bit(2));
    EXPECT_EQ(Frames(e, 2), Strings{"-ann"});
    EXPECT_TRUE(Frames(e, 0).empty());
    EXPECT_TRUE(Frames(e, 1).empty());
    EXPECT_EQ(e.reg.presence("room", "ann"), nullptr);
    EXPECT_TRUE(Present(e, "room").empty());
    EXPECT_EQ(st.presence_joins, 1u);
    EXPECT_EQ(st.presence_events_lost, 0u);
    ExpectPresenceConsistent(e);
    e.reg.leave(watcher);
    EXPECT_EQ(e.alloc.live(), before);
}

// Presence events are server WebSocket frames: their payload (what an
// envelope or an event stream carries) starts after the frame's header,
// whatever the length's form.
TEST(RegistryPresence, EventPayloadsSkipTheFrameHeader) {
    Env e;
    Users u;
    ConnNode* watcher = Join(e, {"room"}, 0);
    ASSERT_NE(watcher, nullptr);
    const std::string small = "{\"e\":\"join\"}";
    const std::string big(300, 'x');
    const std::string small_frame = std::string("\x81") + char(small.size()) + small;
    const std::string big_frame = std::string("\x81\x7e\x01\x2c") + big;
    ConnNode* a = JoinP(e, {{"room", u.Make("ann", 0, "{}", small_frame, big_frame)}}, 1);
    ASSERT_NE(a, nullptr);
    e.reg.leave(a, 0, *std::make_unique<SlotSet>());
    std::vector<std::string> payloads;
    QueueNode* q = e.reg.take_queue(0);
    for (QueueNode* n = q; n; n = n->next) {
        payloads.emplace_back(n->message->payload());
    }
    e.reg.finish_drain(0);
    EXPECT_EQ(payloads, (std::vector<std::string>{small, big}));
    e.reg.leave(watcher);
}

TEST(RegistryPresence, TheLeaverIsNotToldItsOwnLeaveOthersAre) {
    Env e;
    Users u;
    ConnNode* ann = JoinP(e, {{"room", u("ann")}}, 0);
    ConnNode* bob = JoinP(e, {{"room", u("bob")}}, 1);
    ASSERT_NE(ann, nullptr);
    ASSERT_NE(bob, nullptr);
    EXPECT_EQ(Frames(e, 0), (Strings{"+ann", "+bob"}));
    EXPECT_EQ(Frames(e, 1), Strings{"+bob"});
    EXPECT_EQ(Present(e, "room"), (Strings{"ann", "bob"}));

    // ann alone on her worker: it is neither queued nor woken
    SlotSet wake;
    Leave(e, ann, 0, &wake);
    EXPECT_EQ(Wake64(wake), Bit(1));
    EXPECT_EQ(e.root->slots[0].head, nullptr);
    EXPECT_EQ(Frames(e, 1), Strings{"-ann"});
    EXPECT_EQ(Present(e, "room"), Strings{"bob"});

    // another connection on the leaver's worker is told
    ConnNode* cat = JoinP(e, {{"room", u("cat")}}, 1);
    ConnNode* dan = JoinP(e, {{"room", u("dan")}}, 1);
    ASSERT_NE(cat, nullptr);
    ASSERT_NE(dan, nullptr);
    EXPECT_EQ(Frames(e, 1), (Strings{"+cat", "+dan"}));
    Leave(e, cat);
    EXPECT_EQ(Frames(e, 1), Strings{"-cat"});
    EXPECT_EQ(Present(e, "room"), (Strings{"bob", "dan"}));
    Leave(e, bob);
    EXPECT_EQ(Frames(e, 1), Strings{"-bob"});
    Leave(e, dan);  // the last one: nobody left to tell
    EXPECT_TRUE(Frames(e, 1).empty());
    EXPECT_EQ(e.root->stats.presence_leaves, 4u);
    EXPECT_EQ(e.reg.find("room"), nullptr);
}

TEST(RegistryPresence, EventsOfSeveralGroupsInOneJoin) {
    Env e;
    Users u;
    ConnNode* w = Join(e, {"a", "b", "c"}, 3);
    ASSERT_NE(w, nullptr);
    SlotSet wake;
    ConnNode* ann = JoinP(e, {{"a", u("ann")}, {"b", nullptr}, {"c", u("ann")}}, 0, &wake);
    ASSERT_NE(ann, nullptr);
    EXPECT_EQ(Wake64(wake), Bit(0) | Bit(3));
    EXPECT_EQ(Drain(e, 3), (std::vector<Delivered>{{"a", "+ann"}, {"c", "+ann"}}));
    EXPECT_EQ(Drain(e, 0), (std::vector<Delivered>{{"a", "+ann"}, {"c", "+ann"}}));
    EXPECT_EQ(e.reg.find("b")->present, 0u);
    EXPECT_EQ(e.reg.find("b")->nmembers, 2u);
    for (const MemberNode* m = ann->groups; m; m = m->next_of_conn) {
        EXPECT_EQ(m->presence != nullptr, m->group->name() != "b") << m->group->name();
    }
    Leave(e, ann);
    EXPECT_EQ(Drain(e, 3), (std::vector<Delivered>{{"c", "-ann"}, {"a", "-ann"}}));
    EXPECT_EQ(e.root->stats.presence_joins, 2u);
    EXPECT_EQ(e.root->stats.presence_leaves, 2u);
    e.reg.leave(w);
}

TEST(RegistryPresence, AGroupNamedTwiceIsJoinedOnce) {
    Env e;
    Users u;
    ConnNode* c = JoinP(e, {{"room", u("ann")}, {"room", u("ann")}}, 0);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(e.reg.subscribers("room"), 1u);
    EXPECT_EQ(e.reg.find("room")->nmembers, 1u);
    EXPECT_EQ(e.reg.presence("room", "ann")->connections, 1u);
    EXPECT_EQ(Frames(e, 0), Strings{"+ann"});
    ConnNode* plain = Join(e, {"x", "x"}, 0);
    ASSERT_NE(plain, nullptr);
    EXPECT_EQ(e.reg.subscribers("x"), 1u);
    Leave(e, c);
    e.reg.leave(plain);
    EXPECT_EQ(e.root->groups, 0u);
}

TEST(RegistryPresence, LookupKeepsUserInfoAndLeaveFrame) {
    Env e;
    Users u;
    const PresenceSpec* spec = u.Make("ann", 250, R"({"name":"Ann"})", "J", std::string(300, 'L'));
    ConnNode* c = JoinP(e, {{"room", spec}, {"hall", u("ann", 0, "")}}, 0);
    ASSERT_NE(c, nullptr);
    const PresenceNode* p = e.reg.presence("room", "ann");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->user(), "ann");
    EXPECT_EQ(p->info(), R"({"name":"Ann"})");
    EXPECT_EQ(p->leave_frame(), std::string(300, 'L'));
    EXPECT_EQ(p->leave_delay, 250u);
    EXPECT_EQ(p->connections, 1u);
    EXPECT_EQ(p->group, e.reg.find("room"));
    const PresenceNode* h = e.reg.presence("hall", "ann");
    ASSERT_NE(h, nullptr);
    EXPECT_NE(h, p) << "one node per (group, user)";
    EXPECT_EQ(h->info(), "");
    EXPECT_EQ(e.reg.presence("room", "an"), nullptr);
    EXPECT_EQ(e.reg.presence("room", "anna"), nullptr);
    EXPECT_EQ(e.reg.presence("roo", "ann"), nullptr);
    EXPECT_EQ(e.reg.presence("nowhere", "ann"), nullptr);
    // the block holds the node and its bytes, nothing else
    size_t sizes = 0;
    for (size_t r : e.alloc.requested()) {
        sizes += r == sizeof(PresenceNode) + 3 + 14 + 300 + 1;  // + the join frame
    }
    EXPECT_EQ(sizes, 1u);
    // the key is the pair: "a"+"bc" and "ab"+"c" are told apart
    EXPECT_NE(hash_presence("a", "bc"), hash_presence("ab", "c"));
    Leave(e, c, 0);
    EXPECT_EQ(Sweep(e, 250), 0u);
    EXPECT_EQ(e.reg.find("room"), nullptr);
}

TEST(RegistryPresence, APendingLeaveIsCancelledByARejoinOrToldByTheSweep) {
    Env e;
    Users u;
    const RegistryStats& st = e.root->stats;
    ConnNode* bob = Join(e, {"room"}, 1);
    ASSERT_NE(bob, nullptr);
    ConnNode* ann = JoinP(e, {{"room", u("ann", 1000)}}, 0);
    ASSERT_NE(ann, nullptr);
    EXPECT_EQ(Frames(e, 1), Strings{"+ann"});
    Frames(e, 0);
    EXPECT_EQ(Sweep(e, 0), 0u) << "nothing pending";

    // she leaves at t=5000: nothing told yet, she is still present
    SlotSet wake;
    Leave(e, ann, 5000, &wake);
    EXPECT_EQ(Wake64(wake), 0u);
    const PresenceNode* p = e.reg.presence("room", "ann");
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->connections, 0u);
    EXPECT_EQ(p->leave_at, 6000u);
    EXPECT_EQ(e.root->leaving, p);
    EXPECT_EQ(Present(e, "room"), Strings{"ann"});
    EXPECT_EQ(st.presence_leaves, 0u);
    ExpectPresenceConsistent(e);
    EXPECT_EQ(Sweep(e, 5999, &wake), 6000u);
    EXPECT_EQ(Wake64(wake), 0u);
    EXPECT_TRUE(Frames(e, 1).empty());

    // back before the deadline: the leave is cancelled, no event at all
    const uint64_t joins = st.presence_joins;
    const uint64_t published = st.messages_published;
    ConnNode* again = JoinP(e, {{"room", u("ann", 1000)}}, 2, &wake);
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(Wake64(wake), 0u);
    EXPECT_EQ(e.reg.presence("room", "ann"), p) << "the same node";
    EXPECT_EQ(p->connections, 1u);
    EXPECT_EQ(e.root->leaving, nullptr);
    EXPECT_EQ(st.presence_joins, joins);
    EXPECT_EQ(st.messages_published, published);
    EXPECT_EQ(Sweep(e, 100000, &wake), 0u) << "nothing pending any more";
    EXPECT_EQ(Wake64(wake), 0u);
    for (uint32_t s : {0u, 1u, 2u}) {
        EXPECT_TRUE(Frames(e, s).empty()) << s;
    }
    ExpectPresenceConsistent(e);

    // gone again at t=7000: told by the sweep at its deadline, not before
    Leave(e, again, 7000);
    EXPECT_EQ(Sweep(e, 7999), 8000u);
    EXPECT_TRUE(Frames(e, 1).empty());
    EXPECT_EQ(Sweep(e, 8000, &wake), 0u);
    EXPECT_EQ(Wake64(wake), Bit(1));
    EXPECT_EQ(Frames(e, 1), Strings{"-ann"});
    EXPECT_TRUE(Frames(e, 2).empty()) << "her worker is not told";
    EXPECT_EQ(e.reg.presence("room", "ann"), nullptr);
    EXPECT_EQ(st.presence_leaves, 1u);
    EXPECT_EQ(Sweep(e, 9000), 0u);
    EXPECT_EQ(st.presence_leaves, 1u) << "told once";
    ExpectPresenceConsistent(e);
    e.reg.leave(bob);
}

TEST(RegistryPresence, SweepTellsTheDueOnesOldestFirstAndReturnsTheNextDeadline) {
    Env e;
    Users u;
    ConnNode* w = Join(e, {"room"}, 1);
    ASSERT_NE(w, nullptr);
    std::vector<ConnNode*> c;
    const std::vector<std::pair<std::string, uint32_t>> users = {
        {"a", 300}, {"b", 100}, {"c", 500}, {"d", 100}, {"e", 0}};
    for (const auto& [name, delay] : users) {
        c.push_back(JoinP(e, {{"room", u(name, delay)}}, 0));
        ASSERT_NE(c.back(), nullptr);
    }
    Frames(e, 0);
    Frames(e, 1);
    for (ConnNode* x : c) {
        Leave(e, x, 1000);  // a 1300, b 1100, c 1500, d 1100, e at once
    }
    EXPECT_EQ(Frames(e, 1), Strings{"-e"});
    EXPECT_EQ(Present(e, "room"), (Strings{"a", "b", "c", "d"}));
    EXPECT_EQ(Sweep(e, 1099), 1100u);
    EXPECT_EQ(Sweep(e, 1100), 1300u);
    EXPECT_EQ(Frames(e, 1), (Strings{"-b", "-d"}));
    EXPECT_EQ(Present(e, "room"), (Strings{"a", "c"}));
    EXPECT_EQ(Sweep(e, 1400), 1500u);
    EXPECT_EQ(Frames(e, 1), Strings{"-a"});
    ExpectPresenceConsistent(e);
    EXPECT_EQ(Sweep(e, UINT64_MAX), 0u);
    EXPECT_EQ(Frames(e, 1), Strings{"-c"});
    EXPECT_EQ(e.root->leaving, nullptr);
    e.reg.leave(w);
}

TEST(RegistryPresence, APendingLeaveKeepsItsGroupWithNoSubscriber) {
    Env e;
    Users u;
    const size_t before = e.alloc.live();
    ConnNode* ann = JoinP(e, {{"solo", u("ann", 50)}}, 0);
    ASSERT_NE(ann, nullptr);
    ASSERT_EQ(e.reg.subscribe("solo", 3), Status::kOk);  // a share without join
    Leave(e, ann, 10);
    const GroupNode* g = e.reg.find("solo");
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->subscribers, 1u);

    // the other share goes, by unsubscribe and by a slot release: kept
    e.reg.unsubscribe("solo", 3);
    EXPECT_EQ(e.reg.find("solo"), g);
    EXPECT_EQ(g->subscribers, 0u);
    EXPECT_EQ(g->present, 1u);
    ASSERT_EQ(e.reg.subscribe("solo", 3), Status::kOk);
    e.reg.release_slot(3);
    EXPECT_EQ(e.reg.find("solo"), g);
    e.reg.release_slot(0);
    EXPECT_EQ(e.reg.find("solo"), g);
    EXPECT_EQ(e.root->groups, 1u);
    ExpectPresenceConsistent(e);

    // a publish there finds nobody
    EXPECT_EQ(Publish(e, "solo", "x").subscribers, 0u);

    // the sweep tells nobody and takes the group along
    const uint64_t leaves = e.root->stats.presence_leaves;
    SlotSet wake;
    EXPECT_EQ(Sweep(e, 59, &wake), 60u);
    EXPECT_NE(e.reg.find("solo"), nullptr);
    EXPECT_EQ(Sweep(e, 60, &wake), 0u);
    EXPECT_EQ(Wake64(wake), 0u);
    EXPECT_EQ(e.root->stats.presence_leaves, leaves + 1);
    EXPECT_EQ(e.reg.find("solo"), nullptr);
    EXPECT_EQ(e.root->groups, 0u);
    EXPECT_EQ(e.alloc.live(), before);
}

TEST(RegistryPresence, AGroupWithSubscribersOutlivesItsLastPendingLeave) {
    Env e;
    Users u;
    ASSERT_EQ(e.reg.subscribe("room", 4), Status::kOk);
    ConnNode* ann = JoinP(e, {{"room", u("ann", 10)}}, 0);
    ASSERT_NE(ann, nullptr);
    Leave(e, ann, 0);
    EXPECT_EQ(Sweep(e, 10), 0u);
    EXPECT_NE(e.reg.find("room"), nullptr);
    EXPECT_EQ(Frames(e, 4), (Strings{"+ann", "-ann"}));
    e.reg.unsubscribe("room", 4);
    EXPECT_EQ(e.reg.find("room"), nullptr);
}

TEST(RegistryPresence, ReleasingADeadWorkersSlotMakesItsUsersLeave) {
    Env e;
    Users u;
    ASSERT_EQ(e.reg.claim_slot(10), 0);
    ASSERT_EQ(e.reg.claim_slot(11), 1);
    ASSERT_EQ(e.reg.claim_slot(12), 2);
    const size_t before = e.alloc.live();
    ConnNode* bob = JoinP(e, {{"room", u("bob")}}, 1);
    ASSERT_NE(bob, nullptr);
    // on the worker that dies: ann (no delay), cat (delay), dan (also on 2)
    ASSERT_NE(JoinP(e, {{"room", u("ann")}, {"side", u("ann")}}, 0), nullptr);
    ASSERT_NE(JoinP(e, {{"room", u("ann")}}, 0), nullptr);
    ASSERT_NE(JoinP(e, {{"room", u("cat", 500)}}, 0), nullptr);
    ASSERT_NE(JoinP(e, {{"room", u("dan")}}, 0), nullptr);
    ConnNode* dan2 = JoinP(e, {{"room", u("dan")}}, 2);
    ASSERT_NE(dan2, nullptr);
    ASSERT_EQ(e.reg.subscribe("room", 0), Status::kOk);  // and a share without join
    for (uint32_t s : {0u, 1u, 2u}) {
        Frames(e, s);
    }
    EXPECT_EQ(Present(e, "room"), (Strings{"bob", "ann", "cat", "dan"}));

    SlotSet wake;
    e.reg.release_slot(0, 100, wake);
    EXPECT_EQ(Wake64(wake), Bit(1) | Bit(2)) << "the dead slot is not woken";
    EXPECT_EQ(Frames(e, 1), Strings{"-ann"});
    EXPECT_EQ(Frames(e, 2), Strings{"-ann"});
    EXPECT_EQ(e.reg.find("side"), nullptr);
    EXPECT_EQ(e.reg.subscribers("room"), 2u);
    EXPECT_EQ(Present(e, "room"), (Strings{"bob", "cat", "dan"}));
    EXPECT_EQ(e.reg.presence("room", "dan")->connections, 1u);
    EXPECT_EQ(e.reg.presence("room", "cat")->leave_at, 600u);
    EXPECT_EQ(e.root->slots[0].conns, nullptr);
    ExpectPresenceConsistent(e);

    EXPECT_EQ(Sweep(e, 599), 600u);
    EXPECT_EQ(Sweep(e, 600, &wake), 0u);
    EXPECT_EQ(Frames(e, 1), Strings{"-cat"});
    EXPECT_EQ(Frames(e, 2), Strings{"-cat"});
    EXPECT_EQ(Present(e, "room"), (Strings{"bob", "dan"}));

    // the owner-checked release does the same
    const uint64_t owner = e.root->slots[2].owner;
    SlotSet wake2;
    EXPECT_TRUE(e.reg.release_slot_of(2, owner, 700, wake2));
    EXPECT_EQ(Wake64(wake2), Bit(1));
    EXPECT_EQ(Frames(e, 1), Strings{"-dan"});
    EXPECT_FALSE(e.reg.release_slot_of(2, owner, 700, wake2));
    Leave(e, bob);
    EXPECT_EQ(e.alloc.live(), before);
}

TEST(RegistryPresence, AddAndRemoveMember) {
    Env e;
    Users u;
    const size_t before = e.alloc.live();
    ConnNode* bob = JoinP(e, {{"room", u("bob")}}, 1);
    ConnNode* c = Join(e, {"lobby"}, 0);
    ASSERT_NE(bob, nullptr);
    ASSERT_NE(c, nullptr);
    Frames(e, 1);
    EXPECT_TRUE(e.reg.is_member(c, "lobby"));
    EXPECT_FALSE(e.reg.is_member(c, "room"));
    EXPECT_FALSE(e.reg.is_member(c, "lobb"));

    // added: ann appears, and she is told too
    SlotSet wake;
    bool added = false;
    EXPECT_EQ(e.reg.add_member(c, {"room", u("ann")}, wake, &added), Status::kOk);
    EXPECT_TRUE(added);
    EXPECT_EQ(Wake64(wake), Bit(0) | Bit(1));
    EXPECT_TRUE(e.reg.is_member(c, "room"));
    EXPECT_EQ(e.reg.subscribers("room"), 2u);
    EXPECT_EQ(Present(e, "room"), (Strings{"bob", "ann"}));
    EXPECT_EQ(Frames(e, 0), Strings{"+ann"});
    EXPECT_EQ(Frames(e, 1), Strings{"+ann"});

    // a member already: nothing at all
    SlotSet wake2;
    const size_t live = e.alloc.live();
    EXPECT_EQ(e.reg.add_member(c, {"room", u("ann")}, wake2, &added), Status::kOk);
    EXPECT_FALSE(added);
    EXPECT_EQ(e.reg.add_member(c, {"lobby", nullptr}, wake2), Status::kOk);
    EXPECT_EQ(Wake64(wake2), 0u);
    EXPECT_EQ(e.alloc.live(), live);
    EXPECT_EQ(e.reg.subscribers("room"), 2u);
    EXPECT_EQ(e.reg.presence("room", "ann")->connections, 1u);

    // a second connection of ann: counted, no event
    ConnNode* c2 = Join(e, {}, 2);
    ASSERT_NE(c2, nullptr);
    EXPECT_EQ(e.reg.add_member(c2, {"room", u("ann")}, wake2, &added), Status::kOk);
    EXPECT_TRUE(added);
    EXPECT_EQ(Wake64(wake2), 0u);
    EXPECT_EQ(e.reg.presence("room", "ann")->connections, 2u);

    // removed: the first one quietly, the last one tells the others
    EXPECT_FALSE(e.reg.remove_member(c, "nowhere", 0, wake2));
    EXPECT_TRUE(e.reg.remove_member(c, "room", 0, wake2));
    EXPECT_FALSE(e.reg.remove_member(c, "room", 0, wake2));
    EXPECT_FALSE(e.reg.is_member(c, "room"));
    EXPECT_TRUE(e.reg.is_member(c, "lobby"));
    EXPECT_EQ(Wake64(wake2), 0u);
    EXPECT_EQ(e.reg.subscribers("room"), 2u);
    SlotSet wake3;
    EXPECT_TRUE(e.reg.remove_member(c2, "room", 0, wake3));
    EXPECT_EQ(Wake64(wake3), Bit(1));
    EXPECT_EQ(Frames(e, 1), Strings{"-ann"});
    EXPECT_TRUE(Frames(e, 2).empty());
    EXPECT_EQ(Present(e, "room"), Strings{"bob"});
    EXPECT_EQ(c2->groups, nullptr);

    // a membership in the middle of the connection's list
    ASSERT_EQ(e.reg.add_member(c, {"x", nullptr}, wake3), Status::kOk);
    ASSERT_EQ(e.reg.add_member(c, {"y", u("ann", 100)}, wake3), Status::kOk);
    ASSERT_EQ(e.reg.add_member(c, {"z", nullptr}, wake3), Status::kOk);
    EXPECT_TRUE(e.reg.remove_member(c, "y", 40, wake3));
    EXPECT_EQ(e.reg.presence("y", "ann")->leave_at, 140u);
    EXPECT_TRUE(e.reg.is_member(c, "x"));
    EXPECT_TRUE(e.reg.is_member(c, "z"));
    EXPECT_TRUE(e.reg.is_member(c, "lobby"));
    // ... and added back before the deadline: the leave is cancelled
    const uint64_t joins = e.root->stats.presence_joins;
    ASSERT_EQ(e.reg.add_member(c, {"y", u("ann", 100)}, wake3, &added), Status::kOk);
    EXPECT_TRUE(added);
    EXPECT_EQ(e.root->stats.presence_joins, joins);
    EXPECT_EQ(e.root->leaving, nullptr);
    EXPECT_EQ(Sweep(e, 1000), 0u);
    ExpectPresenceConsistent(e);

    e.reg.leave(c2);
    Leave(e, c, 2000);
    Leave(e, bob);
    EXPECT_EQ(Sweep(e, 2100), 0u);
    for (uint32_t s : {0u, 1u, 2u}) {
        Frames(e, s);
    }
    EXPECT_EQ(e.alloc.live(), before);
}

TEST(RegistryPresence, AddMemberIsAllOrNothing) {
    Env e;
    Users u;
    ConnNode* c = Join(e, {"lobby"}, 0);
    ASSERT_NE(c, nullptr);
    for (size_t n = 0;; ++n) {
        ASSERT_LT(n, 10u);
        const size_t live = e.alloc.live();
        const uint32_t groups = e.root->groups;
        SlotSet wake;
        bool added = true;
        e.alloc.fail_after(n);
        Status st = e.reg.add_member(c, {"room", u("ann")}, wake, &added);
        e.alloc.stop_failing();
        if (st == Status::kOk) {
            EXPECT_EQ(n, 4u) << "member, presence, group, slot array";
            EXPECT_TRUE(added);
            // the zone stayed full: the event is lost, the member is added
            EXPECT_EQ(e.root->stats.presence_events_lost, 1u);
            EXPECT_EQ(e.root->stats.presence_joins, 0u);
            EXPECT_TRUE(e.reg.is_member(c, "room"));
            EXPECT_EQ(Present(e, "room"), Strings{"ann"});
            break;
        }
        SCOPED_TRACE("failing allocation #" + std::to_string(n + 1));
        EXPECT_FALSE(added);
        EXPECT_EQ(Wake64(wake), 0u);
        EXPECT_EQ(e.alloc.live(), live);
        EXPECT_EQ(e.root->groups, groups);
        EXPECT_FALSE(e.reg.is_member(c, "room"));
        EXPECT_EQ(e.reg.presence("room", "ann"), nullptr);
    }
    Leave(e, c);
}

TEST(RegistryPresence, PresentIsExactWithManyUsers) {
    Env e;
    Users u;
    const int kUsers = 5000;
    std::vector<ConnNode*> conns;
    for (int i = 0; i < kUsers; ++i) {
        const PresenceSpec* spec = u("user-" + std::to_string(i));
        conns.push_back(JoinP(e, {{"big", spec}}, static_cast<uint32_t>(i % 4)));
        ASSERT_NE(conns.back(), nullptr) << i;
        if (i % 7 == 0) {  // a second tab on another worker
            conns.push_back(JoinP(e, {{"big", spec}}, static_cast<uint32_t>(i % 4 + 4)));
            ASSERT_NE(conns.back(), nullptr) << i;
        }
        if (i % 500 == 0) {
            for (uint32_t s = 0; s < 8; ++s) {
                Frames(e, s);
            }
        }
    }
    const GroupNode* g = e.reg.find("big");
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->present, static_cast<uint32_t>(kUsers));
    EXPECT_EQ(g->subscribers, conns.size());
    EXPECT_EQ(e.root->stats.presence_joins, static_cast<uint64_t>(kUsers));
    Strings present = Present(e, "big");
    ASSERT_EQ(present.size(), static_cast<size_t>(kUsers));
    for (int i = 0; i < kUsers; ++i) {
        ASSERT_EQ(present[static_cast<size_t>(i)], "user-" + std::to_string(i)) << "join order";
    }
    ExpectPresenceConsistent(e);

    // every other connection leaves: users with a second tab stay
    uint32_t gone = 0;
    for (size_t k = 0; k < conns.size(); k += 2) {
        ConnNode* c = conns[k];
        const PresenceNode* p = c->groups->presence;
        gone += p->connections == 1;
        Leave(e, c);
        conns[k] = nullptr;
    }
    EXPECT_EQ(g->present, kUsers - gone);
    EXPECT_EQ(e.root->stats.presence_leaves, gone);
    EXPECT_EQ(Present(e, "big").size(), kUsers - gone);
    ExpectPresenceConsistent(e);
    for (ConnNode* c : conns) {
        if (c) {
            Leave(e, c);
        }
    }
    EXPECT_EQ(e.reg.find("big"), nullptr);
    EXPECT_EQ(e.root->stats.presence_leaves, static_cast<uint64_t>(kUsers));
}

// Everything a failed join must leave as it was.
struct PresenceState {
    struct Node {
        const PresenceNode* p;
        std::string user;
        uint32_t connections;
        uint64_t leave_at;
        bool operator==(const Node& o) const {
            return p == o.p && user == o.user && connections == o.connections &&
                   leave_at == o.leave_at;
        }
    };
    std::map<std::string, std::vector<Node>> groups;  // by group, in list order
    std::map<std::string, std::pair<uint32_t, uint32_t>> members;  // subscribers, nmembers
    std::vector<const PresenceNode*> leaving;
    std::vector<const ConnNode*> conns;  // every slot's, in order
    uint64_t conn_ids, joins, leaves, lost, published, marks;
    uint32_t ngroups;
    size_t live, live_bytes;
    std::vector<std::vector<Delivered>> queues;

    bool operator==(const PresenceState& o) const {
        return groups == o.groups && members == o.members && leaving == o.leaving &&
               conns == o.conns && conn_ids == o.conn_ids && joins == o.joins &&
               leaves == o.leaves && lost == o.lost && published == o.published &&
               ngroups == o.ngroups && live == o.live && live_bytes == o.live_bytes &&
               queues == o.queues;
    }
};

PresenceState TakePresence(const Env& e, const std::vector<std::string>& names) {
    PresenceState s;
    for (const std::string& name : names) {
        const GroupNode* g = e.reg.find(name);
        if (g == nullptr) {
            continue;
        }
        std::vector<PresenceState::Node>& nodes = s.groups[name];
        for (const PresenceNode* p = g->presence; p; p = p->next) {
            nodes.push_back({p, std::string(p->user()), p->connections, p->leave_at});
        }
        s.members[name] = {g->subscribers, g->nmembers};
    }
    for (const PresenceNode* p = e.root->leaving; p; p = p->leaving_next) {
        s.leaving.push_back(p);
    }
    for (uint32_t i = 0; i < 8; ++i) {
        for (const ConnNode* c = e.root->slots[i].conns; c; c = c->next) {
            s.conns.push_back(c);
        }
        s.queues.push_back(Peek(e, i));
    }
    const RegistryStats& st = e.root->stats;
    s.conn_ids = e.root->conn_ids;
    s.joins = st.presence_joins;
    s.leaves = st.presence_leaves;
    s.lost = st.presence_events_lost;
    s.published = st.messages_published;
    s.ngroups = e.root->groups;
    s.live = e.alloc.live();
    s.live_bytes = e.alloc.live_bytes();
    return s;
}

TEST(RegistryPresence, AJoinIsAllOrNothingAtEveryAllocation) {
    for (bool once : {false, true}) {
        SCOPED_TRACE(once ? "one refusal" : "zone stays full");
        Env e;
        Users u;
        // zed is connected in "here", pending in "back"; bob is in "room";
        // worker 0 is counted in every existing group already, so no slot
        // array grows (and the bytes must match too).
        ConnNode* watch = Join(e, {"room", "here", "back", "plain"}, 0);
        ConnNode* bob = JoinP(e, {{"room", u("bob")}}, 1);
        ConnNode* zhere = JoinP(e, {{"here", u("zed")}}, 0);
        ConnNode* zback = JoinP(e, {{"back", u("zed", 1000)}}, 0);
        ASSERT_NE(watch, nullptr);
        ASSERT_NE(bob, nullptr);
        ASSERT_NE(zhere, nullptr);
        ASSERT_NE(zback, nullptr);
        Leave(e, zback, 500);
        for (uint32_t s : {0u, 1u}) {
            Frames(e, s);
        }
        const std::vector<std::string> names = {"fresh", "room", "here", "back", "plain"};
        const PresenceSpec* zed = u("zed", 1000);
        const std::vector<JoinGroup> groups = {
            {"fresh", zed}, {"room", zed}, {"here", zed}, {"back", zed}, {"plain", nullptr}};
        ExpectPresenceConsistent(e);
        size_t n = 0;
        ConnNode* c = nullptr;
        for (;; ++n) {
            ASSERT_LE(n, 20u);
            PresenceState before = TakePresence(e, names);
            SlotSet wake;
            e.alloc.fail_after(n, once);
            c = JoinP(e, groups, 0, &wake);
            e.alloc.stop_failing();
            if (c) {
                break;
            }
            SCOPED_TRACE("failing allocation #" + std::to_string(n + 1));
            EXPECT_EQ(Wake64(wake), 0u);
            EXPECT_TRUE(before == TakePresence(e, names)) << "a refused join changed something";
            ExpectPresenceConsistent(e);
        }
        // conn; fresh: member, presence, group, slot array; room: member,
        // presence; here, back, plain: a member each
        EXPECT_EQ(n, 10u);
        EXPECT_EQ(c->id, e.root->conn_ids);
        EXPECT_EQ(c->id, 5u) << "refused joins take no id";
        EXPECT_EQ(Present(e, "fresh"), Strings{"zed"});
        EXPECT_EQ(Present(e, "room"), (Strings{"bob", "zed"}));
        EXPECT_EQ(e.reg.presence("here", "zed")->connections, 2u);
        EXPECT_EQ(e.reg.presence("back", "zed")->connections, 1u);
        EXPECT_EQ(e.root->leaving, nullptr) << "the pending leave is cancelled";
        // The join's events come after it succeeded, from a zone that is
        // still full (both lost) or refused one allocation (the first lost).
        const RegistryStats& st = e.root->stats;
        if (once) {
            EXPECT_EQ(st.presence_joins, 3u + 1u);
            EXPECT_EQ(st.presence_events_lost, 1u);
            EXPECT_EQ(Drain(e, 0), (std::vector<Delivered>{{"room", "+zed"}}));
            EXPECT_EQ(Drain(e, 1), (std::vector<Delivered>{{"room", "+zed"}}));
        } else {
            EXPECT_EQ(st.presence_joins, 3u);
            EXPECT_EQ(st.presence_events_lost, 2u);
            EXPECT_TRUE(Drain(e, 0).empty());
            EXPECT_TRUE(Drain(e, 1).empty());
        }
        ExpectPresenceConsistent(e);

        Leave(e, c, 600);
        Leave(e, zhere, 600);
        Leave(e, bob);
        e.reg.leave(watch);
        EXPECT_EQ(Sweep(e, 1599), 1600u);
        EXPECT_EQ(Sweep(e, 1600), 0u);
        EXPECT_EQ(e.root->groups, 0u);
    }
}

TEST(RegistryPresence, AFullZoneLosesEventsNotJoinsOrLeaves) {
    Env e;
    Users u;
    ConnNode* w = Join(e, {"room"}, 1);
    ASSERT_NE(w, nullptr);
    const RegistryStats& st = e.root->stats;
    // conn + member + presence: the event's message is refused
    e.alloc.fail_after(3);
    SlotSet wake;
    ConnNode* ann = JoinP(e, {{"room", u("ann")}}, 0, &wake);
    e.alloc.stop_failing();
    ASSERT_NE(ann, nullptr);
    EXPECT_EQ(Wake64(wake), 0u);
    EXPECT_EQ(st.presence_joins, 0u);
    EXPECT_EQ(st.presence_events_lost, 1u);
    EXPECT_EQ(Present(e, "room"), Strings{"ann"});
    EXPECT_TRUE(Frames(e, 1).empty());

    e.alloc.fail_after(0);
    Leave(e, ann, 0, &wake);
    e.alloc.stop_failing();
    EXPECT_EQ(Wake64(wake), 0u);
    EXPECT_EQ(st.presence_leaves, 0u);
    EXPECT_EQ(st.presence_events_lost, 2u);
    EXPECT_TRUE(Present(e, "room").empty());

    // a pending leave told by a sweep in a full zone: lost, still forgotten
    ConnNode* bob = JoinP(e, {{"room", u("bob", 5)}}, 0);
    ASSERT_NE(bob, nullptr);
    Leave(e, bob, 0);
    e.alloc.fail_after(0);
    EXPECT_EQ(Sweep(e, 5), 0u);
    e.alloc.stop_failing();
    EXPECT_EQ(st.presence_events_lost, 3u);
    EXPECT_EQ(e.reg.presence("room", "bob"), nullptr);
    EXPECT_EQ(Frames(e, 1), Strings{"+bob"});
    e.reg.leave(w);
}

TEST(RegistryPresence, EmptyFramesAreNoEvents) {
    Env e;
    Users u;
    ConnNode* w = Join(e, {"room"}, 1);
    ASSERT_NE(w, nullptr);
    const PresenceSpec* quiet = u.Make("ann", 0, "", "", "");
    ConnNode* ann = JoinP(e, {{"room", quiet}}, 0);
    ASSERT_NE(ann, nullptr);
    EXPECT_EQ(Present(e, "room"), Strings{"ann"});
    Leave(e, ann);
    EXPECT_TRUE(Present(e, "room").empty());
    EXPECT_TRUE(Frames(e, 1).empty());
    EXPECT_EQ(e.root->stats.presence_joins, 0u);
    EXPECT_EQ(e.root->stats.presence_leaves, 0u);
    EXPECT_EQ(e.root->stats.presence_events_lost, 0u);
    e.reg.leave(w);
}

TEST(RegistryPresence, AnInvalidSpecFailsTheJoinAndChangesNothing) {
    Env e;
    Users u;
    ConnNode* w = Join(e, {"room"}, 0);
    ASSERT_NE(w, nullptr);
    const std::vector<std::string> names = {"room", "other"};
    const PresenceState before = TakePresence(e, names);
    for (const PresenceSpec* bad :
         {u.Make("", 0, "", "+", "-"), u.Make(std::string(kMaxPresenceUser + 1, 'u'), 0, "", "+", "-"),
          u.Make("ann", 0, std::string(kMaxPresenceInfo + 1, 'i'), "+", "-")}) {
        EXPECT_EQ(JoinP(e, {{"other", nullptr}, {"room", bad}}, 0), nullptr);
        EXPECT_TRUE(before == TakePresence(e, names));
    }
    const PresenceSpec* longest =
        u.Make(std::string(kMaxPresenceUser, 'u'), 0, std::string(kMaxPresenceInfo, 'i'), "+", "-");
    ConnNode* ok = JoinP(e, {{"room", longest}}, 0);
    ASSERT_NE(ok, nullptr);
    EXPECT_EQ(e.reg.presence("room", std::string(kMaxPresenceUser, 'u'))->info().size(),
              kMaxPresenceInfo);
    Leave(e, ok);
    e.reg.leave(w);
}

// ---------------------------------------------------------------------------
// message ids and history

using Id = std::pair<uint64_t, uint64_t>;  // epoch, seq

Id IdOf(const MessageId& id) {
    return {id.epoch, id.seq};
}

std::string FrameOf(const ShmMessage* m) {
    return std::string(reinterpret_cast<const char*>(m->frame()), m->frame_size);
}

Registry::PublishOptions Keep(uint32_t size, uint32_t ttl = 0, uint64_t now = 0) {
    Registry::PublishOptions o;
    o.history_size = size;
    o.history_ttl = ttl;
    o.now = now;
    return o;
}

Registry::Published PublishTo(Env& e, std::vector<std::string_view> groups,
                              std::string_view frame,
                              const Registry::PublishOptions& o = Registry::PublishOptions{}) {
    return e.reg.publish(groups.data(), groups.size(),
                         reinterpret_cast<const uint8_t*>(frame.data()), frame.size(), o);
}

uint64_t EpochOf(const Env& e, std::string_view group) {
    const GroupNode* g = e.reg.find(group);
    EXPECT_NE(g, nullptr) << group;
    return g ? g->epoch : 0;
}

// The seqs group keeps, oldest first.
std::vector<uint64_t> Retained(const Env& e, std::string_view group) {
    std::vector<uint64_t> out;
    if (const GroupNode* g = e.reg.find(group)) {
        for (const HistEntry* h = g->hist_head; h; h = h->next) {
            out.push_back(h->seq);
        }
    }
    return out;
}

struct Hist {
    Registry::HistoryStatus status;
    Strings frames;
    std::vector<Id> ids;
};

constexpr auto kOk = Registry::HistoryStatus::kOk;
constexpr auto kLost = Registry::HistoryStatus::kLost;

// history(), checking that it wrote no more than it said and no more than
// max, that a kLost gives nothing, and that the zone stays consistent.
Hist History(Env& e, std::string_view group, Id after, uint64_t now = 0, size_t max = 1000) {
    std::vector<const ShmMessage*> out(max + 1, nullptr);
    std::vector<MessageId> ids(max + 1, MessageId{0, 0});
    size_t n = 12345;
    Hist h;
    h.status = e.reg.history(group, MessageId{after.first, after.second}, now, out.data(),
                             ids.data(), max, &n);
    EXPECT_LE(n, max);
    if (n > max) {
        return h;
    }
    if (h.status == kLost) {
        EXPECT_EQ(n, 0u) << "a lost history gives nothing";
    }
    for (size_t i = 0; i < n; ++i) {
        EXPECT_TRUE(e.alloc.is_live(out[i]));
        h.frames.push_back(FrameOf(out[i]));
        h.ids.push_back(IdOf(ids[i]));
    }
    EXPECT_EQ(out[n], nullptr) << "written past n";
    ExpectHistoryConsistent(e.root);
    return h;
}

// Every history entry is on both lists, in the same order, counted; every
// group's seqs grow and none is past last_seq; every group has an epoch and
// is held by something; every message's refs are exactly the queue nodes
// (queued or draining) and history entries that point to it.
void ExpectHistoryConsistent(const RegistryRoot* root) {
    std::map<const HistEntry*, size_t> position;
    const HistEntry* prev = nullptr;
    for (const HistEntry* h = root->hist_head; h; h = h->all_next) {
        EXPECT_EQ(h->all_prev, prev);
        ASSERT_TRUE(position.emplace(h, position.size()).second) << "a loop in the zone's list";
        prev = h;
    }
    EXPECT_EQ(root->hist_tail, prev);
    EXPECT_EQ(position.size(), root->hist_entries);

    std::map<const ShmMessage*, uint32_t> refs;
    size_t in_groups = 0;
    for (uint32_t b = 0; b <= root->bucket_mask; ++b) {
        for (const GroupNode* g = root->buckets[b]; g; g = g->next) {
            EXPECT_NE(g->epoch, 0u) << g->name();
            EXPECT_EQ(g->epoch >> 32, root->zone_id) << g->name();
            EXPECT_TRUE(g->subscribers > 0 || g->presence != nullptr || g->hist_head != nullptr)
                << g->name() << " kept with nothing in it";
            uint32_t count = 0;
            const HistEntry* last = nullptr;
            for (const HistEntry* h = g->hist_head; h; h = h->next) {
                EXPECT_EQ(h->group, g);
                EXPECT_GT(h->seq, 0u);
                EXPECT_LE(h->seq, g->last_seq) << g->name();
                auto at = position.find(h);
                EXPECT_NE(at, position.end()) << g->name() << ": an entry not on the zone's list";
                if (last) {
                    EXPECT_GT(h->seq, last->seq) << g->name();
                    if (at != position.end() && position.count(last)) {
                        EXPECT_GT(at->second, position[last]) << "the lists disagree on age";
                    }
                }
                refs[h->message]++;
                last = h;
                ++count;
            }
            EXPECT_EQ(g->hist_tail, last) << g->name();
            EXPECT_EQ(g->hist_count, count) << g->name();
            in_groups += count;
        }
    }
    EXPECT_EQ(in_groups, root->hist_entries) << "an entry on the zone's list but no group's";

    for (uint32_t s = 0; s < kMaxWorkerSlots; ++s) {
        for (const QueueNode* q : {root->slots[s].head, root->slots[s].draining}) {
            for (; q; q = q->next) {
                refs[q->message]++;
            }
        }
    }
    for (const auto& [m, n] : refs) {
        EXPECT_EQ(m->refs, n) << "message " << m->number << " counts the wrong references";
        EXPECT_EQ(reinterpret_cast<uintptr_t>(m->ids()) % alignof(MessageId), 0u);
    }
}

TEST(RegistryIds, MonotonicPerGroupAndNumberedAcrossTheZone) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("h", 1), Status::kOk);
    const uint64_t eg = EpochOf(e, "g");
    const uint64_t eh = EpochOf(e, "h");
    EXPECT_NE(eg, 0u);
    EXPECT_NE(eh, 0u);
    EXPECT_NE(eg, eh);
    EXPECT_EQ(e.reg.find("g")->last_seq, 0u);

    const std::vector<std::pair<std::string, std::string>> publishes = {
        {"g", "g1"}, {"h", "h1"}, {"g", "g2"}, {"g", "g3"}, {"h", "h2"}};
    for (const auto& [group, frame] : publishes) {
        ASSERT_EQ(Publish(e, group, frame).status, Status::kOk);
    }
    EXPECT_EQ(e.reg.find("g")->last_seq, 3u);
    EXPECT_EQ(e.reg.find("h")->last_seq, 2u);
    EXPECT_EQ(e.root->published, 5u);
    ExpectHistoryConsistent(e.root);

    std::vector<Id> ids;
    std::vector<uint64_t> numbers;
    for (const QueueNode* q = e.reg.take_queue(0); q; q = q->next) {
        ASSERT_EQ(q->message->ngroups, 1u);
        ids.push_back(IdOf(q->message->ids()[0]));
        numbers.push_back(q->message->number);
    }
    EXPECT_EQ(ids, (std::vector<Id>{{eg, 1}, {eg, 2}, {eg, 3}}));
    EXPECT_EQ(numbers, (std::vector<uint64_t>{1, 3, 4}));
    ids.clear();
    numbers.clear();
    for (const QueueNode* q = e.reg.take_queue(1); q; q = q->next) {
        ids.push_back(IdOf(q->message->ids()[0]));
        numbers.push_back(q->message->number);
    }
    EXPECT_EQ(ids, (std::vector<Id>{{eh, 1}, {eh, 2}}));
    EXPECT_EQ(numbers, (std::vector<uint64_t>{2, 5}));
    e.reg.finish_drain(0);
    e.reg.finish_drain(1);
}

TEST(RegistryIds, AMultiGroupMessageHasOneIdPerGroupAndKeepsItsLayout) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("a", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("b", 1), Status::kOk);
    ASSERT_EQ(Publish(e, "a", "first").status, Status::kOk);
    Drain(e, 0);
    const uint64_t ea = EpochOf(e, "a");
    const uint64_t eb = EpochOf(e, "b");

    Registry::PublishOptions o;
    o.origin = 9;
    o.kind = MessageKind::kControl;
    o.flags = kPayloadIsString;
    o.header_size = 2;
    const std::string name(kMaxGroupName, 'n');
    ASSERT_EQ(PublishTo(e, {"a", "nobody", "b", "a", name}, "frame", o).status, Status::kOk);
    const ShmMessage* m = e.root->slots[0].head->message;
    EXPECT_EQ(e.root->slots[1].head->message, m);
    EXPECT_EQ(m->refs, 2u);
    ASSERT_EQ(m->ngroups, 5u);
    EXPECT_EQ(IdOf(m->ids()[0]), Id(ea, 2));
    EXPECT_EQ(IdOf(m->ids()[1]), Id(0, 0)) << "a group with no node has no id";
    EXPECT_EQ(IdOf(m->ids()[2]), Id(eb, 1));
    EXPECT_EQ(IdOf(m->ids()[3]), Id(ea, 2)) << "named twice: one id";
    EXPECT_EQ(IdOf(m->ids()[4]), Id(0, 0));
    EXPECT_EQ(e.reg.find("a")->last_seq, 2u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(m->ids()) % 8, 0u);
    EXPECT_EQ(reinterpret_cast<const uint8_t*>(m->ids()), reinterpret_cast<const uint8_t*>(m + 1));
    EXPECT_EQ(m->frame(), reinterpret_cast<const uint8_t*>(m->ids() + 5));
    EXPECT_EQ(FrameOf(m), "frame");
    EXPECT_EQ(m->payload(), "ame");
    EXPECT_EQ(m->group(0), "a");
    EXPECT_EQ(m->group(1), "nobody");
    EXPECT_EQ(m->group(2), "b");
    EXPECT_EQ(m->group(3), "a");
    EXPECT_EQ(m->group(4), name);
    EXPECT_EQ(m->names_size, 2 + 7 + 2 + 2 + 1 + kMaxGroupName);
    EXPECT_EQ(m->origin, 9u);
    EXPECT_EQ(m->kind, MessageKind::kControl);
    EXPECT_EQ(m->flags, kPayloadIsString);
    EXPECT_EQ(m->header_size, 2u);
    EXPECT_EQ(m->number, 2u);
    EXPECT_EQ(e.reg.find("nobody"), nullptr) << "no history: no group created";
    EXPECT_EQ(e.alloc.requested().back(),
              sizeof(QueueNode));  // the last of message + 2 nodes
    ExpectHistoryConsistent(e.root);

    // A header longer than the frame is clamped: the payload is empty.
    o.header_size = 10;
    ASSERT_EQ(PublishTo(e, {"a"}, "ab", o).status, Status::kOk);
    const ShmMessage* short_one = e.root->slots[0].tail->message;
    EXPECT_EQ(short_one->header_size, 2u);
    EXPECT_EQ(short_one->payload(), "");
    Drain(e, 0);
    Drain(e, 1);
}

TEST(RegistryIds, TheMessageSizeCountsItsIds) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("a", 0), Status::kOk);
    const size_t before = e.alloc.requested().size();
    ASSERT_EQ(PublishTo(e, {"a", "bb"}, "xyz").status, Status::kOk);
    ASSERT_EQ(e.alloc.requested().size(), before + 2);
    EXPECT_EQ(e.alloc.requested()[before],
              sizeof(ShmMessage) + 2 * sizeof(MessageId) + 3 + (1 + 1) + (1 + 2));
    EXPECT_EQ(sizeof(ShmMessage) % 8, 0u);
    Drain(e, 0);
}

TEST(RegistryIds, EpochsDifferPerGroupAndChangeWhenAGroupIsForgotten) {
    Env e;
    e.root->zone_id = 0xABCD1234u;
    ASSERT_EQ(e.reg.subscribe("a", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("b", 0), Status::kOk);
    const uint64_t a1 = EpochOf(e, "a");
    EXPECT_EQ(a1 >> 32, 0xABCD1234u);
    EXPECT_EQ(EpochOf(e, "b") >> 32, 0xABCD1234u);
    EXPECT_NE(a1, EpochOf(e, "b"));
    EXPECT_EQ(e.root->group_epochs, 2u);
    ASSERT_EQ(Publish(e, "a", "1").status, Status::kOk);
    ASSERT_EQ(Publish(e, "a", "2").status, Status::kOk);
    EXPECT_EQ(e.reg.find("a")->last_seq, 2u);

    e.reg.unsubscribe("a", 0);
    ASSERT_EQ(e.reg.find("a"), nullptr);
    ASSERT_EQ(e.reg.subscribe("a", 0), Status::kOk);
    EXPECT_NE(EpochOf(e, "a"), a1) << "a forgotten group comes back in a new epoch";
    EXPECT_EQ(e.reg.find("a")->last_seq, 0u);
    ASSERT_EQ(Publish(e, "a", "3").status, Status::kOk);
    EXPECT_EQ(e.reg.find("a")->last_seq, 1u);
    // a failed subscribe creates nothing and takes no epoch
    e.alloc.fail_after(0);
    EXPECT_EQ(e.reg.subscribe("c", 0), Status::kNoMemory);
    e.alloc.stop_failing();
    EXPECT_EQ(e.root->group_epochs, 3u);
    Drain(e, 0);
}

TEST(RegistryIds, TheEpochCounterSkipsZeroWhenItWraps) {
    Env e;
    e.root->group_epochs = UINT32_MAX - 1;
    ASSERT_EQ(e.reg.subscribe("a", 0), Status::kOk);
    EXPECT_EQ(EpochOf(e, "a"), UINT32_MAX);
    ASSERT_EQ(e.reg.subscribe("b", 0), Status::kOk);
    EXPECT_EQ(EpochOf(e, "b"), 1u) << "epoch 0 means no id";
    EXPECT_EQ(e.root->group_epochs, 1u);
}

TEST(RegistryIds, APublishNobodyGetsTakesASeqButStoresNothing) {
    Env e;
    ASSERT_EQ(PublishTo(e, {"g"}, "kept", Keep(5)).status, Status::kOk);
    const uint64_t ep = EpochOf(e, "g");
    const size_t live = e.alloc.live();
    const size_t allocations = e.alloc.allocations();
    const uint64_t published = e.root->stats.messages_published;

    // Without history and with nobody listening: nothing is stored, but the
    // group numbers it, so a client that was at seq 1 learns it missed one.
    Registry::Published r = Publish(e, "g", "gone");
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(r.subscribers, 0u);
    EXPECT_EQ(e.alloc.live(), live);
    EXPECT_EQ(e.alloc.allocations(), allocations);
    EXPECT_EQ(e.reg.find("g")->last_seq, 2u);
    EXPECT_EQ(e.root->published, 1u) << "only stored messages are numbered";
    EXPECT_EQ(e.root->stats.messages_published, published + 1);

    EXPECT_EQ(History(e, "g", {ep, 1}).status, kLost);
    EXPECT_EQ(History(e, "g", {ep, 0}).status, kLost);
    Hist all = History(e, "g", {0, 0});
    EXPECT_EQ(all.status, kOk);
    EXPECT_EQ(all.frames, Strings{"kept"});
    EXPECT_EQ(History(e, "g", {ep, 2}).status, kOk);

    // The next kept one: a client at 2 gets it, one at 1 still lost 2.
    ASSERT_EQ(PublishTo(e, {"g"}, "third", Keep(5)).status, Status::kOk);
    Hist h = History(e, "g", {ep, 2});
    EXPECT_EQ(h.status, kOk);
    EXPECT_EQ(h.frames, Strings{"third"});
    EXPECT_EQ(h.ids, (std::vector<Id>{{ep, 3}}));
    EXPECT_EQ(History(e, "g", {ep, 1}).status, kLost) << "seq 2 is missing in the middle";
}

TEST(RegistryIds, PresenceEventsAreNumberedButNeverKept) {
    Env e;
    Users u;
    ConnNode* watcher = Join(e, {"room"}, 2);
    ASSERT_NE(watcher, nullptr);
    ConnNode* ann = JoinP(e, {{"room", u("ann")}}, 0);
    ASSERT_NE(ann, nullptr);
    const QueueNode* q = e.reg.take_queue(2);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(FrameOf(q->message), "+ann");
    EXPECT_EQ(IdOf(q->message->ids()[0]), Id(EpochOf(e, "room"), 1));
    EXPECT_EQ(q->message->number, 1u);
    e.reg.finish_drain(2);
    EXPECT_EQ(e.root->hist_entries, 0u);
    EXPECT_EQ(e.reg.find("room")->hist_head, nullptr);
    Leave(e, ann);
    EXPECT_EQ(Frames(e, 2), Strings{"-ann"});
    EXPECT_EQ(e.reg.find("room")->last_seq, 2u);
    EXPECT_EQ(e.root->hist_entries, 0u);
    Drain(e, 0);
    e.reg.leave(watcher);
    EXPECT_EQ(e.root->groups, 0u);
}

TEST(RegistryHistory, KeepsTheLastSizeMessagesOfEachGroup) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    for (int i = 1; i <= 5; ++i) {
        ASSERT_EQ(PublishTo(e, {"g"}, "g" + std::to_string(i), Keep(3)).status, Status::kOk);
        ASSERT_EQ(PublishTo(e, {"h"}, "h" + std::to_string(i), Keep(1)).status, Status::kOk);
        ExpectHistoryConsistent(e.root);
    }
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{3, 4, 5}));
    EXPECT_EQ(Retained(e, "h"), (std::vector<uint64_t>{5}));
    EXPECT_EQ(e.root->hist_entries, 4u);
    EXPECT_EQ(e.root->stats.history_evicted, 0u) << "trimming is no eviction";

    std::vector<const ShmMessage*> queued;
    for (const QueueNode* q = e.root->slots[0].head; q; q = q->next) {
        queued.push_back(q->message);
    }
    ASSERT_EQ(queued.size(), 5u);
    EXPECT_EQ(queued[0]->refs, 1u);
    EXPECT_EQ(queued[1]->refs, 1u);
    EXPECT_EQ(queued[2]->refs, 2u);
    Drain(e, 0);
    EXPECT_FALSE(e.alloc.is_live(queued[0]));
    EXPECT_FALSE(e.alloc.is_live(queued[1]));
    for (size_t i = 2; i < 5; ++i) {
        EXPECT_TRUE(e.alloc.is_live(queued[i]));
        EXPECT_EQ(queued[i]->refs, 1u);
    }
    const uint64_t ep = EpochOf(e, "g");
    Hist h = History(e, "g", {0, 0});
    EXPECT_EQ(h.status, kOk);
    EXPECT_EQ(h.frames, (Strings{"g3", "g4", "g5"}));
    EXPECT_EQ(h.ids, (std::vector<Id>{{ep, 3}, {ep, 4}, {ep, 5}}));

    // A smaller size from another configuration trims to it.
    ASSERT_EQ(PublishTo(e, {"g"}, "g6", Keep(1)).status, Status::kOk);
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{6}));
    Drain(e, 0);
}

TEST(RegistryHistory, AMessageIsFreedWhenItsLastQueueNodeOrEntryLetsGo) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    const size_t before = e.alloc.live();

    ASSERT_EQ(PublishTo(e, {"g"}, "a", Keep(1)).status, Status::kOk);
    EXPECT_EQ(e.alloc.live(), before + 3) << "message, queue node, history entry";
    const ShmMessage* a = e.root->slots[0].head->message;
    EXPECT_EQ(a->refs, 2u);
    Drain(e, 0);  // the queue lets go first
    EXPECT_TRUE(e.alloc.is_live(a));
    EXPECT_EQ(a->refs, 1u);
    EXPECT_EQ(e.alloc.live(), before + 2);

    ASSERT_EQ(PublishTo(e, {"g"}, "b", Keep(1)).status, Status::kOk);
    EXPECT_FALSE(e.alloc.is_live(a)) << "its entry was its last reference";
    EXPECT_EQ(e.alloc.live(), before + 3);
    const ShmMessage* b = e.root->slots[0].head->message;

    ASSERT_EQ(PublishTo(e, {"g"}, "c", Keep(1)).status, Status::kOk);  // history first
    EXPECT_TRUE(e.alloc.is_live(b)) << "still queued";
    EXPECT_EQ(b->refs, 1u);
    ExpectHistoryConsistent(e.root);
    EXPECT_EQ(Drain(e, 0).size(), 2u);
    EXPECT_FALSE(e.alloc.is_live(b));
    EXPECT_EQ(e.alloc.live(), before + 2);  // c and its entry
}

TEST(RegistryHistory, ExpiresAfterItsTtlAtPublish) {
    Env e;
    ASSERT_EQ(PublishTo(e, {"g"}, "a", Keep(10, 100, 1000)).status, Status::kOk);  // until 1100
    ASSERT_EQ(PublishTo(e, {"g"}, "b", Keep(10, 100, 1050)).status, Status::kOk);  // 1150
    EXPECT_EQ(e.reg.find("g")->hist_head->expires, 1100u);
    ASSERT_EQ(PublishTo(e, {"g"}, "c", Keep(10, 100, 1099)).status, Status::kOk);  // 1199
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{1, 2, 3}));
    ASSERT_EQ(PublishTo(e, {"g"}, "d", Keep(10, 100, 1100)).status, Status::kOk);
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{2, 3, 4})) << "expires <= now is gone";
    ASSERT_EQ(PublishTo(e, {"g"}, "e", Keep(10, 0, 5000)).status, Status::kOk);  // no limit
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{5}));
    EXPECT_EQ(e.reg.find("g")->hist_head->expires, 0u);
    ASSERT_EQ(PublishTo(e, {"g"}, "f", Keep(10, 100, UINT64_MAX - 10)).status, Status::kOk);
    EXPECT_EQ(e.reg.find("g")->hist_tail->expires, UINT64_MAX) << "saturates";
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{5, 6}));
    EXPECT_EQ(e.root->stats.history_evicted, 0u);
}

TEST(RegistryHistory, ExpiresAtHistoryWhereverTheEntryIs) {
    Env e;
    ASSERT_EQ(PublishTo(e, {"g"}, "a", Keep(10, 100, 0)).status, Status::kOk);  // until 100
    ASSERT_EQ(PublishTo(e, {"g"}, "b", Keep(10, 0, 0)).status, Status::kOk);    // never
    ASSERT_EQ(PublishTo(e, {"g"}, "c", Keep(10, 50, 10)).status, Status::kOk);  // until 60
    const uint64_t ep = EpochOf(e, "g");
    EXPECT_EQ(History(e, "g", {0, 0}, 59).frames, (Strings{"a", "b", "c"}));

    // c expires first, behind entries that have not.
    Hist h = History(e, "g", {ep, 1}, 60);
    EXPECT_EQ(h.status, kLost) << "c is lost";
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{1, 2}));
    EXPECT_EQ(History(e, "g", {ep, 3}, 60).status, kOk) << "caught up: nothing missed";
    EXPECT_EQ(History(e, "g", {0, 0}, 60).frames, (Strings{"a", "b"}));
    EXPECT_EQ(History(e, "g", {ep, 0}, 100).status, kLost);
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{2}));
    EXPECT_EQ(History(e, "g", {0, 0}, UINT64_MAX).frames, Strings{"b"});

    // A group left with nothing once its entries expire is forgotten, after
    // the answer (a caught-up client still gets kOk).
    ASSERT_EQ(PublishTo(e, {"short"}, "x", Keep(10, 10, 0)).status, Status::kOk);
    const uint64_t es = EpochOf(e, "short");
    const uint32_t groups = e.root->groups;
    const ShmMessage* x = e.root->hist_tail->message;
    Hist caught_up = History(e, "short", {es, 1}, 10);
    EXPECT_EQ(caught_up.status, kOk);
    EXPECT_TRUE(caught_up.frames.empty());
    EXPECT_EQ(e.reg.find("short"), nullptr);
    EXPECT_EQ(e.root->groups, groups - 1);
    EXPECT_FALSE(e.alloc.is_live(x));
    EXPECT_EQ(History(e, "short", {es, 1}, 10).status, kLost) << "no such group";

    ASSERT_EQ(PublishTo(e, {"short"}, "y", Keep(10, 10, 0)).status, Status::kOk);
    EXPECT_NE(EpochOf(e, "short"), es);
    EXPECT_EQ(History(e, "short", {es, 1}, 0).status, kLost) << "another epoch";
    Hist fresh = History(e, "short", {0, 0}, 20);
    EXPECT_EQ(fresh.status, kOk);
    EXPECT_TRUE(fresh.frames.empty());
    EXPECT_EQ(e.reg.find("short"), nullptr);
}

TEST(RegistryHistory, APublishNobodyListensToIsKeptWithItsGroup) {
    Env e;
    const size_t before = e.alloc.live();
    const uint64_t published = e.root->stats.messages_published;
    Registry::Published r = PublishTo(e, {"lonely"}, "hello", Keep(5));
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(r.subscribers, 0u);
    EXPECT_EQ(Wake64(r.wake), 0u);
    EXPECT_EQ(e.alloc.live(), before + 3) << "group, message, entry";
    EXPECT_EQ(e.root->stats.messages_published, published + 1);
    EXPECT_EQ(e.root->published, 1u);
    EXPECT_EQ(e.root->groups, 1u);
    const GroupNode* g = e.reg.find("lonely");
    ASSERT_NE(g, nullptr);
    EXPECT_EQ(g->subscribers, 0u);
    EXPECT_EQ(g->hist_count, 1u);
    EXPECT_EQ(g->last_seq, 1u);
    const uint64_t ep = g->epoch;
    EXPECT_EQ(g->hist_head->message->refs, 1u);
    for (uint32_t s = 0; s < kMaxWorkerSlots; ++s) {
        EXPECT_EQ(e.root->slots[s].head, nullptr);
    }
    Hist h = History(e, "lonely", {0, 0});
    EXPECT_EQ(h.frames, Strings{"hello"});
    EXPECT_EQ(h.ids, (std::vector<Id>{{ep, 1}}));

    // The same node serves its subscribers later, in the same epoch.
    ASSERT_EQ(e.reg.subscribe("lonely", 4), Status::kOk);
    EXPECT_EQ(e.reg.find("lonely"), g);
    ASSERT_EQ(PublishTo(e, {"lonely"}, "again", Keep(5)).status, Status::kOk);
    EXPECT_EQ(Drain(e, 4), (std::vector<Delivered>{{"lonely", "again"}}));
    EXPECT_EQ(History(e, "lonely", {ep, 1}).frames, Strings{"again"});
}

TEST(RegistryHistory, APublishToNoGroupKeepsNothing) {
    Env e;
    const size_t allocations = e.alloc.allocations();
    const uint8_t byte = 'x';
    Registry::Published r = e.reg.publish(nullptr, 0, &byte, 1, Keep(5));
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(e.alloc.allocations(), allocations);
    EXPECT_EQ(e.root->published, 0u);
}

TEST(RegistryHistory, HistoryOkOrLostInEveryCase) {
    Env e;
    for (int i = 1; i <= 5; ++i) {
        ASSERT_EQ(PublishTo(e, {"g"}, "m" + std::to_string(i), Keep(3)).status, Status::kOk);
    }
    const uint64_t ep = EpochOf(e, "g");
    ASSERT_EQ(Retained(e, "g"), (std::vector<uint64_t>{3, 4, 5}));

    struct Case {
        Id after;
        Registry::HistoryStatus status;
        Strings frames;
    };
    const Case cases[] = {
        {{0, 0}, kOk, {"m3", "m4", "m5"}},  // no id: all that is kept
        {{0, 7}, kOk, {"m3", "m4", "m5"}},  // no epoch: the seq means nothing
        {{ep, 5}, kOk, {}},                 // caught up
        {{ep, 4}, kOk, {"m5"}},
        {{ep, 3}, kOk, {"m4", "m5"}},
        {{ep, 2}, kOk, {"m3", "m4", "m5"}},  // the oldest kept is the next one
        {{ep, 1}, kLost, {}},                // 2 was trimmed
        {{ep, 0}, kLost, {}},
        {{ep, 6}, kLost, {}},  // ahead of the group: not this group's history
        {{ep + 1, 4}, kLost, {}},
        {{ep ^ (uint64_t{1} << 40), 5}, kLost, {}},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(std::to_string(c.after.first) + ":" + std::to_string(c.after.second));
        Hist h = History(e, "g", c.after);
        EXPECT_EQ(h.status, c.status);
        EXPECT_EQ(h.frames, c.frames);
        for (size_t i = 0; i < h.ids.size(); ++i) {
            EXPECT_EQ(h.ids[i], Id(ep, 6 - c.frames.size() + i));
        }
    }
    EXPECT_EQ(History(e, "none", {0, 0}).status, kOk);
    EXPECT_EQ(History(e, "none", {ep, 1}).status, kLost) << "no such group";
    EXPECT_EQ(e.reg.find("none"), nullptr) << "history() creates nothing";

    // max: the first max, then from the last one given.
    Hist first = History(e, "g", {ep, 2}, 0, 2);
    EXPECT_EQ(first.status, kOk);
    EXPECT_EQ(first.frames, (Strings{"m3", "m4"}));
    Hist rest = History(e, "g", first.ids.back(), 0, 2);
    EXPECT_EQ(rest.status, kOk);
    EXPECT_EQ(rest.frames, Strings{"m5"});
    Hist none = History(e, "g", {ep, 2}, 0, 0);
    EXPECT_EQ(none.status, kOk);
    EXPECT_TRUE(none.frames.empty());
    EXPECT_EQ(History(e, "g", {ep, 1}, 0, 1).status, kLost) << "max does not hide a gap";
    EXPECT_EQ(History(e, "g", {0, 0}, 0, 1).frames, Strings{"m3"});
    EXPECT_EQ(e.root->hist_entries, 3u) << "history() takes nothing away";

    // Nothing kept while the client is behind: lost.
    ASSERT_EQ(PublishTo(e, {"t"}, "x", Keep(3, 5, 0)).status, Status::kOk);
    ASSERT_EQ(e.reg.subscribe("t", 0), Status::kOk);  // keeps the group
    const uint64_t et = EpochOf(e, "t");
    EXPECT_EQ(History(e, "t", {et, 0}, 5).status, kLost);
    EXPECT_EQ(Retained(e, "t"), std::vector<uint64_t>{});
    EXPECT_EQ(History(e, "t", {et, 1}, 5).status, kOk);
    ASSERT_NE(e.reg.find("t"), nullptr);
}

TEST(RegistryHistory, AGroupNamedTwiceKeepsOneEntry) {
    Env e;
    ASSERT_EQ(PublishTo(e, {"g", "h", "g"}, "both", Keep(5)).status, Status::kOk);
    EXPECT_EQ(e.root->groups, 2u);
    EXPECT_EQ(e.root->hist_entries, 2u);
    EXPECT_EQ(Retained(e, "g"), std::vector<uint64_t>{1});
    EXPECT_EQ(Retained(e, "h"), std::vector<uint64_t>{1});
    const ShmMessage* m = e.root->hist_head->message;
    EXPECT_EQ(m->refs, 2u);
    EXPECT_EQ(IdOf(m->ids()[0]), IdOf(m->ids()[2]));
    EXPECT_EQ(IdOf(m->ids()[0]), Id(EpochOf(e, "g"), 1));
    EXPECT_EQ(IdOf(m->ids()[1]), Id(EpochOf(e, "h"), 1));
    EXPECT_NE(EpochOf(e, "g"), EpochOf(e, "h"));
}

TEST(RegistryHistory, AGroupWithHistoryOutlivesItsSubscribersAndGoesWithIt) {
    Env e;
    Users u;
    ConnNode* c = Join(e, {"g"}, 0);
    ASSERT_NE(c, nullptr);
    ASSERT_EQ(PublishTo(e, {"g"}, "a", Keep(2, 1000, 0)).status, Status::kOk);  // until 1000
    const GroupNode* g = e.reg.find("g");
    const uint64_t ep = g->epoch;

    e.reg.leave(c);  // its last member
    EXPECT_EQ(e.reg.find("g"), g);
    EXPECT_EQ(g->subscribers, 0u);
    ASSERT_EQ(e.reg.subscribe("g", 1), Status::kOk);
    e.reg.unsubscribe("g", 1);
    EXPECT_EQ(e.reg.find("g"), g);
    ASSERT_EQ(e.reg.subscribe("g", 2), Status::kOk);
    e.reg.release_slot(2);
    EXPECT_EQ(e.reg.find("g"), g);
    ConnNode* p = JoinP(e, {{"g", u("ann", 50)}}, 3);  // a pending leave, then none
    ASSERT_NE(p, nullptr);
    Leave(e, p, 10);
    EXPECT_EQ(Sweep(e, 100), 0u);
    EXPECT_EQ(e.reg.find("g"), g);
    ConnNode* q = JoinP(e, {{"g", u("bob")}}, 3);  // leaves at once
    ASSERT_NE(q, nullptr);
    Leave(e, q);
    ExpectPresenceConsistent(e);
    ASSERT_EQ(e.reg.find("g"), g);
    EXPECT_EQ(g->epoch, ep);
    EXPECT_EQ(g->last_seq, 5u) << "a, then ann's and bob's joins and leaves";
    EXPECT_EQ(Retained(e, "g"), std::vector<uint64_t>{1});
    Hist h = History(e, "g", {0, 0}, 999);
    EXPECT_EQ(h.frames, Strings{"a"});
    EXPECT_NE(e.reg.find("g"), nullptr);
    Drain(e, 0);
    Drain(e, 3);

    EXPECT_EQ(History(e, "g", {0, 0}, 1000).status, kOk);
    EXPECT_EQ(e.reg.find("g"), nullptr) << "forgotten with its last entry";
    EXPECT_EQ(e.root->groups, 0u);
}

TEST(RegistryHistory, AReleasedSlotsQueueLeavesTheHistoryIntact) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("g", 3), Status::kOk);
    ASSERT_EQ(PublishTo(e, {"g"}, "a", Keep(5)).status, Status::kOk);
    const ShmMessage* a = e.root->hist_head->message;
    EXPECT_EQ(a->refs, 2u);
    ASSERT_NE(e.reg.take_queue(3), nullptr);  // killed mid-delivery
    e.reg.release_slot(3);
    EXPECT_TRUE(e.alloc.is_live(a));
    EXPECT_EQ(a->refs, 1u);
    EXPECT_EQ(e.reg.subscribers("g"), 0u);
    EXPECT_EQ(History(e, "g", {0, 0}).frames, Strings{"a"});
}

TEST(RegistryHistory, AFullZoneEvictsTheOldestEntriesAnywhere) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("live", 0), Status::kOk);
    ASSERT_EQ(PublishTo(e, {"a"}, "a1", Keep(10)).status, Status::kOk);
    ASSERT_EQ(PublishTo(e, {"b"}, "b1", Keep(10)).status, Status::kOk);
    ASSERT_EQ(PublishTo(e, {"a"}, "a2", Keep(10)).status, Status::kOk);
    ASSERT_EQ(PublishTo(e, {"live"}, "x", Keep(10)).status, Status::kOk);
    Drain(e, 0);
    const ShmMessage* a1 = e.root->hist_head->message;
    const ShmMessage* b1 = e.root->hist_head->all_next->message;
    const uint64_t rejected = e.root->stats.publish_rejected_full;

    e.alloc.fail_after(0, true);  // the message's allocation, once
    Registry::Published r = PublishTo(e, {"live"}, "y", Keep(10));
    e.alloc.stop_failing();
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(r.subscribers, 1u);
    EXPECT_EQ(e.root->stats.history_evicted, 1u);
    EXPECT_FALSE(e.alloc.is_live(a1));
    EXPECT_EQ(Retained(e, "a"), std::vector<uint64_t>{2});
    EXPECT_EQ(Retained(e, "live"), (std::vector<uint64_t>{1, 2}));

    e.alloc.fail_after(1, true);  // the queue node, once
    r = PublishTo(e, {"live"}, "z", Keep(10));
    e.alloc.stop_failing();
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(e.root->stats.history_evicted, 2u);
    EXPECT_FALSE(e.alloc.is_live(b1));
    EXPECT_EQ(e.reg.find("b"), nullptr) << "b had nothing else";
    EXPECT_EQ(Retained(e, "live"), (std::vector<uint64_t>{1, 2, 3}));

    e.alloc.fail_after(3, true);  // new's node, the message, the queue node, then
    r = PublishTo(e, {"live", "new"}, "w", Keep(10));  // the first history entry
    e.alloc.stop_failing();
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(e.root->stats.history_evicted, 3u);
    EXPECT_EQ(e.reg.find("a"), nullptr);
    EXPECT_EQ(Retained(e, "new"), std::vector<uint64_t>{1});
    EXPECT_EQ(Retained(e, "live"), (std::vector<uint64_t>{1, 2, 3, 4}));
    EXPECT_EQ(e.root->stats.publish_rejected_full, rejected);
    EXPECT_EQ(Drain(e, 0), (std::vector<Delivered>{{"live", "y"}, {"live", "z"}, {"live", "w"}}));
}

TEST(RegistryHistory, EvictionKeepsTheGroupsOfThePublishThatEvicts) {
    Env e;
    ASSERT_EQ(PublishTo(e, {"solo"}, "s1", Keep(5)).status, Status::kOk);
    const uint64_t ep = EpochOf(e, "solo");
    e.alloc.fail_after(0, true);
    ASSERT_EQ(PublishTo(e, {"solo"}, "s2", Keep(5)).status, Status::kOk);
    e.alloc.stop_failing();
    EXPECT_EQ(e.root->stats.history_evicted, 1u);
    EXPECT_EQ(EpochOf(e, "solo"), ep) << "its only entry was evicted, yet it goes on";
    EXPECT_EQ(Retained(e, "solo"), std::vector<uint64_t>{2});
    Hist h = History(e, "solo", {ep, 1});
    EXPECT_EQ(h.status, kOk);
    EXPECT_EQ(h.frames, Strings{"s2"});

    // Without history the group is still numbered, then forgotten when
    // nothing holds it.
    ASSERT_EQ(e.reg.subscribe("live", 0), Status::kOk);
    e.alloc.fail_after(0, true);
    ASSERT_EQ(PublishTo(e, {"solo", "live"}, "both").status, Status::kOk);
    e.alloc.stop_failing();
    EXPECT_EQ(e.root->stats.history_evicted, 2u);
    EXPECT_EQ(e.reg.find("solo"), nullptr);
    const ShmMessage* m = e.root->slots[0].head->message;
    EXPECT_EQ(IdOf(m->ids()[0]), Id(ep, 3));
    EXPECT_EQ(IdOf(m->ids()[1]), Id(EpochOf(e, "live"), 1));
    Drain(e, 0);
}

// The counts of a publish that failed: nothing of it may be anywhere.
struct PublishTrace {
    std::map<std::string, Id> groups;  // epoch, last_seq of those that exist
    uint64_t published;
    uint64_t messages_published;
    std::vector<std::vector<Delivered>> queues;
};

PublishTrace TraceOf(const Env& e, const std::vector<std::string>& names) {
    PublishTrace t;
    for (const std::string& n : names) {
        if (const GroupNode* g = e.reg.find(n)) {
            t.groups[n] = {g->epoch, g->last_seq};
        }
    }
    t.published = e.root->published;
    t.messages_published = e.root->stats.messages_published;
    for (uint32_t s = 0; s < 8; ++s) {
        t.queues.push_back(Peek(e, s));
    }
    return t;
}

void ExpectNoTrace(const PublishTrace& before, const PublishTrace& after) {
    EXPECT_EQ(before.groups, after.groups) << "a group created, or a seq or epoch taken";
    EXPECT_EQ(before.published, after.published);
    EXPECT_EQ(before.messages_published, after.messages_published);
    EXPECT_EQ(before.queues, after.queues);
}

TEST(RegistryHistory, AllOrNothingAtEveryAllocationWhenNothingCanBeEvicted) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("sub", 0), Status::kOk);
    ASSERT_EQ(e.reg.subscribe("sub", 3), Status::kOk);
    ASSERT_EQ(Publish(e, "sub", "earlier").status, Status::kOk);
    const std::vector<std::string> names = {"sub", "new1", "new2"};
    for (bool once : {false, true}) {
        const uint64_t evicted = e.root->stats.history_evicted;
        SCOPED_TRACE(once ? "one refusal" : "zone stays full");
        size_t n = 0;
        for (;; ++n) {
            ASSERT_LE(n, 8u);
            Snapshot before = Take(e, names);
            PublishTrace trace = TraceOf(e, names);
            const uint64_t rejected = e.root->stats.publish_rejected_full;
            e.alloc.fail_after(n, once);
            Registry::Published r = PublishTo(e, {"sub", "new1", "new2", "new1"},
                                              "frame-" + std::to_string(n), Keep(4));
            e.alloc.stop_failing();
            if (r.status == Status::kOk) {
                break;
            }
            SCOPED_TRACE("failing allocation #" + std::to_string(n + 1));
            EXPECT_EQ(r.status, Status::kNoMemory);
            EXPECT_EQ(r.subscribers, 0u);
            EXPECT_EQ(Wake64(r.wake), 0u);
            ExpectUnchanged(before, Take(e, names));
            ExpectNoTrace(trace, TraceOf(e, names));
            EXPECT_EQ(e.root->stats.publish_rejected_full, rejected + 1);
            EXPECT_EQ(e.root->hist_entries, 0u);
            EXPECT_EQ(e.root->stats.history_evicted, evicted);
        }
        EXPECT_EQ(n, 8u) << "2 groups, the message, 2 queue nodes, 3 entries";
        // Clear what the success kept, for the next round.
        EXPECT_EQ(Drain(e, 0).size(), once ? 1u : 2u);
        Drain(e, 3);
        EXPECT_EQ(History(e, "sub", {0, 0}).status, kOk);
        e.alloc.fail_after(0);
        EXPECT_EQ(PublishTo(e, {"x"}, "", Keep(1)).status, Status::kNoMemory);  // evicts all
        e.alloc.stop_failing();
        EXPECT_EQ(e.root->hist_entries, 0u);
        EXPECT_EQ(e.reg.find("new1"), nullptr);
        EXPECT_EQ(e.reg.find("new2"), nullptr);
    }
}

TEST(RegistryHistory, AZoneThatStaysFullEvictsEverythingThenRefuses) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("live", 0), Status::kOk);
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(PublishTo(e, {"a"}, "a", Keep(5)).status, Status::kOk);
    }
    ASSERT_EQ(PublishTo(e, {"b"}, "b", Keep(5)).status, Status::kOk);
    ASSERT_EQ(PublishTo(e, {"live"}, "l1", Keep(5)).status, Status::kOk);
    Drain(e, 0);
    const uint64_t el = EpochOf(e, "live");
    const uint64_t published = e.root->published;
    const uint64_t rejected = e.root->stats.publish_rejected_full;

    e.alloc.fail_after(0);
    Registry::Published r = PublishTo(e, {"live", "a", "new"}, "x", Keep(5));
    e.alloc.stop_failing();
    EXPECT_EQ(r.status, Status::kNoMemory);
    EXPECT_EQ(r.subscribers, 0u);
    EXPECT_EQ(Wake64(r.wake), 0u);
    EXPECT_EQ(e.root->stats.history_evicted, 5u);
    EXPECT_EQ(e.root->stats.publish_rejected_full, rejected + 1);
    EXPECT_EQ(e.root->hist_entries, 0u);
    EXPECT_EQ(e.reg.find("a"), nullptr) << "kept while the publish tried, then forgotten";
    EXPECT_EQ(e.reg.find("b"), nullptr);
    EXPECT_EQ(e.reg.find("new"), nullptr);
    ASSERT_NE(e.reg.find("live"), nullptr);
    EXPECT_EQ(EpochOf(e, "live"), el);
    EXPECT_EQ(e.reg.find("live")->last_seq, 1u) << "no seq taken";
    EXPECT_EQ(e.root->published, published);
    EXPECT_EQ(e.root->slots[0].head, nullptr);
    EXPECT_EQ(e.root->groups, 1u);
    EXPECT_EQ(e.alloc.live(), 3u + 2u) << "the root, its buckets and live's node and slots";
}

// Refuses what would take its parent's live bytes past a limit, as a full
// nginx zone does: freeing makes room again.
class BudgetAllocator final : public Allocator {
public:
    BudgetAllocator(CountingAllocator& a, size_t limit) : a_(a), limit_(limit) {}
    void* allocate(size_t size) noexcept override {
        if (a_.live_bytes() + size > limit_) {
            ++refused_;
            return nullptr;
        }
        return a_.allocate(size);
    }
    void deallocate(void* p) noexcept override { a_.deallocate(p); }
    size_t refused() const noexcept { return refused_; }

private:
    CountingAllocator& a_;
    size_t limit_;
    size_t refused_ = 0;
};

TEST(RegistryHistory, APublishNeverFailsBecauseHistoryIsFull) {
    Env e;
    ASSERT_EQ(e.reg.subscribe("live", 0), Status::kOk);
    const size_t limit = e.alloc.live_bytes() + 16384;
    BudgetAllocator budget(e.alloc, limit);
    Registry reg(e.root, budget);  // another process's handle on the zone

    uint64_t entries_made = 0;
    std::map<std::string, uint64_t> seqs;
    for (int i = 0; i < 2000; ++i) {
        std::string group = "g" + std::to_string(i % 7);
        std::vector<std::string_view> groups = {group};
        if (i % 10 == 0) {
            groups.push_back("live");
        }
        std::string frame(50 + i % 300, static_cast<char>('a' + i % 26));
        Registry::PublishOptions o = Keep(100);
        Registry::Published r = reg.publish(groups.data(), groups.size(),
                                            reinterpret_cast<const uint8_t*>(frame.data()),
                                            frame.size(), o);
        ASSERT_EQ(r.status, Status::kOk) << "publish " << i;
        entries_made += groups.size();
        for (std::string_view g : groups) {
            const GroupNode* node = e.reg.find(g);
            ASSERT_NE(node, nullptr);
            EXPECT_EQ(node->hist_tail->message->number, e.root->published);
        }
        if (i % 10 == 0) {
            Drain(e, 0);
        }
        ASSERT_LE(e.alloc.live_bytes(), limit);
    }
    ExpectHistoryConsistent(e.root);
    EXPECT_GT(budget.refused(), 0u);
    EXPECT_GT(e.root->stats.history_evicted, 0u);
    EXPECT_EQ(e.root->hist_entries + e.root->stats.history_evicted, entries_made)
        << "every entry is kept or counted as evicted (none trimmed: size 100 never reached)";
    EXPECT_EQ(e.root->stats.publish_rejected_full, 0u);

    // What is kept is the newest: the message numbers on the zone's list
    // never go down and end with the last one.
    uint64_t last = 0;
    for (const HistEntry* h = e.root->hist_head; h; h = h->all_next) {
        EXPECT_GE(h->message->number, last);
        last = h->message->number;
    }
    EXPECT_EQ(last, e.root->published);
    // Each group's history is a run up to its last seq: a client that was
    // just before the oldest kept one recovers, one before that is lost.
    for (int k = 0; k < 7; ++k) {
        std::string group = "g" + std::to_string(k);
        const GroupNode* g = e.reg.find(group);
        if (g == nullptr) {
            continue;
        }
        ASSERT_NE(g->hist_head, nullptr);
        EXPECT_EQ(g->hist_tail->seq, g->last_seq);
        EXPECT_EQ(g->hist_tail->seq - g->hist_head->seq + 1, g->hist_count);
        EXPECT_EQ(History(e, group, {g->epoch, g->hist_head->seq - 1}).status, kOk);
        if (g->hist_head->seq > 1) {
            EXPECT_EQ(History(e, group, {g->epoch, g->hist_head->seq - 2}).status, kLost);
        }
    }

    // A message larger than the zone evicts everything, then is refused.
    std::string huge(20000, 'h');
    const std::string_view live = "live";
    const uint64_t live_seq = e.reg.find("live")->last_seq;
    Registry::Published r = reg.publish(&live, 1, reinterpret_cast<const uint8_t*>(huge.data()),
                                        huge.size(), Keep(100));
    EXPECT_EQ(r.status, Status::kNoMemory);
    EXPECT_EQ(e.root->stats.publish_rejected_full, 1u);
    EXPECT_EQ(e.root->hist_entries, 0u);
    EXPECT_EQ(e.root->stats.history_evicted, entries_made);
    EXPECT_EQ(e.root->groups, 1u) << "only live, which has a subscriber";
    EXPECT_EQ(e.reg.find("live")->last_seq, live_seq);
    EXPECT_EQ(e.root->slots[0].head, nullptr);
}

// Random publishes (with and without history, sizes, TTLs, several
// groups), subscriptions, drains and history queries against a model of
// what each group keeps.
TEST(RegistryHistory, MatchesAModelUnderRandomOperations) {
    Env e;
    struct Kept {
        uint64_t seq;
        std::string frame;
        uint64_t expires;
    };
    struct Model {
        uint64_t last_seq = 0;
        std::deque<Kept> kept;
        int subscribers = 0;
    };
    std::map<std::string, Model> model;
    const std::vector<std::string> names = {"a", "b", "c", "d"};
    uint64_t rng = 12345;
    auto next = [&rng](uint64_t n) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        return (rng >> 33) % n;
    };
    auto forget_if_unused = [&](const std::string& name) {
        Model& m = model[name];
        if (m.subscribers == 0 && m.kept.empty()) {
            m.last_seq = 0;
        }
    };
    uint64_t now = 1000;
    for (int step = 0; step < 3000; ++step) {
        SCOPED_TRACE("step " + std::to_string(step));
        now += next(20);
        const std::string& name = names[next(names.size())];
        switch (next(6)) {
            case 0:
            case 1:
            case 2: {
                std::vector<std::string_view> groups = {name};
                if (next(3) == 0) {
                    groups.push_back(names[next(names.size())]);
                }
                const uint32_t size = static_cast<uint32_t>(next(4));  // 0: no history
                const uint32_t ttl = static_cast<uint32_t>(next(3) * 30);
                const std::string frame = "f" + std::to_string(step);
                ASSERT_EQ(PublishTo(e, groups, frame, Keep(size, ttl, now)).status, Status::kOk);
                for (size_t i = 0; i < groups.size(); ++i) {
                    std::string g(groups[i]);
                    if (i == 1 && groups[1] == groups[0]) {
                        continue;
                    }
                    Model& m = model[g];
                    const bool has_node = e.reg.find(g) != nullptr;
                    if (!has_node) {
                        EXPECT_EQ(size, 0u);
                        continue;
                    }
                    ++m.last_seq;
                    if (size == 0) {
                        continue;
                    }
                    m.kept.push_back({m.last_seq, frame, ttl ? now + ttl : 0});
                    while (m.kept.size() > size ||
                           (m.kept.front().expires && m.kept.front().expires <= now)) {
                        m.kept.pop_front();
                    }
                }
                break;
            }
            case 3:
                if (model[name].subscribers < 3 && next(2)) {
                    ASSERT_EQ(e.reg.subscribe(name, 1), Status::kOk);
                    model[name].subscribers++;
                } else if (model[name].subscribers > 0) {
                    e.reg.unsubscribe(name, 1);
                    model[name].subscribers--;
                    forget_if_unused(name);
                }
                break;
            case 4:
                Drain(e, 1);
                break;
            case 5: {
                Model& m = model[name];
                const GroupNode* g = e.reg.find(name);
                const uint64_t epoch = g ? g->epoch : 0;
                const uint64_t from = m.last_seq ? next(m.last_seq + 2) : 0;
                Hist h = History(e, name, {epoch ? epoch : 1, from}, now);
                for (auto it = m.kept.begin(); it != m.kept.end();) {
                    it = (it->expires && it->expires <= now) ? m.kept.erase(it) : it + 1;
                }
                Strings want;
                bool lost = epoch == 0 || from > m.last_seq;
                uint64_t expect = from + 1;
                for (const Kept& k : m.kept) {
                    if (k.seq <= from) {
                        continue;
                    }
                    lost = lost || k.seq != expect;
                    ++expect;
                    want.push_back(k.frame);
                }
                lost = lost || expect != m.last_seq + 1;
                EXPECT_EQ(h.status, lost ? kLost : kOk) << name << " from " << from;
                if (!lost) {
                    EXPECT_EQ(h.frames, want);
                }
                forget_if_unused(name);
                break;
            }
        }
        for (const std::string& n : names) {
            const Model& m = model[n];
            const GroupNode* g = e.reg.find(n);
            ASSERT_EQ(g != nullptr, m.subscribers > 0 || !m.kept.empty()) << n;
            if (g) {
                EXPECT_EQ(g->last_seq, m.last_seq) << n;
                EXPECT_EQ(g->subscribers, static_cast<uint32_t>(m.subscribers)) << n;
                std::vector<uint64_t> want;
                for (const Kept& k : m.kept) {
                    want.push_back(k.seq);
                }
                EXPECT_EQ(Retained(e, n), want) << n;
            }
        }
        ExpectHistoryConsistent(e.root);
    }
}

// --- ids given by the cluster (realtime_redis) ---------------------------

Registry::PublishOptions KeepWithIds(uint32_t size, const MessageId* ids) {
    Registry::PublishOptions o = Keep(size);
    o.ids = ids;
    return o;
}

TEST(RegistryClusterIds, AGroupAdoptsTheClustersEpochAndSeqs) {
    Env e;
    e.root->cluster.external_ids = 1;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    const MessageId first[1] = {{0xabc, 41}};
    ASSERT_EQ(PublishTo(e, {"g"}, "m41", KeepWithIds(10, first)).status, Status::kOk);
    EXPECT_EQ(EpochOf(e, "g"), 0xabcu);
    EXPECT_EQ(e.reg.find("g")->last_seq, 41u);
    const MessageId next[1] = {{0xabc, 42}};
    ASSERT_EQ(PublishTo(e, {"g"}, "m42", KeepWithIds(10, next)).status, Status::kOk);

    // The queued message carries the given id.
    const QueueNode* q = e.reg.take_queue(0);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(IdOf(q->message->ids()[0]), Id(0xabc, 41));
    e.reg.finish_drain(0);

    Hist h = History(e, "g", {0xabc, 40});
    EXPECT_EQ(h.status, kOk) << "a client at 40 misses 41 and 42, both here";
    EXPECT_EQ(h.frames, (Strings{"m41", "m42"}));
    EXPECT_EQ(h.ids, (std::vector<Id>{{0xabc, 41}, {0xabc, 42}}));
    EXPECT_EQ(History(e, "g", {0xabc, 39}).status, kLost) << "40 was never here";
}

TEST(RegistryClusterIds, ARepeatedSeqIsDeliveredButNotKeptTwice) {
    Env e;
    e.root->cluster.external_ids = 1;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    const MessageId a[1] = {{7, 1}};
    ASSERT_EQ(PublishTo(e, {"g"}, "one", KeepWithIds(10, a)).status, Status::kOk);
    Registry::Published r = PublishTo(e, {"g"}, "one again", KeepWithIds(10, a));
    EXPECT_EQ(r.status, Status::kOk);
    EXPECT_EQ(r.subscribers, 1u);
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{1}));
    EXPECT_EQ(Frames(e, 0), (Strings{"one", "one again"}));
    ExpectHistoryConsistent(e.root);
}

TEST(RegistryClusterIds, AGapIsReportedAsLostAcrossIt) {
    Env e;
    e.root->cluster.external_ids = 1;
    const MessageId a[1] = {{7, 1}}, c[1] = {{7, 3}};
    ASSERT_EQ(PublishTo(e, {"g"}, "one", KeepWithIds(10, a)).status, Status::kOk);
    ASSERT_EQ(PublishTo(e, {"g"}, "three", KeepWithIds(10, c)).status, Status::kOk);
    EXPECT_EQ(History(e, "g", {7, 1}).status, kLost) << "2 never reached this node";
    Hist h = History(e, "g", {7, 2});
    EXPECT_EQ(h.status, kOk);
    EXPECT_EQ(h.frames, Strings{"three"});
}

TEST(RegistryClusterIds, ANewEpochDropsTheOldHistory) {
    Env e;
    e.root->cluster.external_ids = 1;
    const MessageId a[1] = {{7, 5}}, b[1] = {{9, 1}};
    ASSERT_EQ(PublishTo(e, {"g"}, "old", KeepWithIds(10, a)).status, Status::kOk);
    const size_t live = e.alloc.live();
    ASSERT_EQ(PublishTo(e, {"g"}, "new", KeepWithIds(10, b)).status, Status::kOk);
    EXPECT_EQ(e.alloc.live(), live) << "the old entry and message went, the new came";
    EXPECT_EQ(EpochOf(e, "g"), 9u);
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{1}));
    EXPECT_EQ(History(e, "g", {7, 5}).status, kLost);
    EXPECT_EQ(History(e, "g", {9, 0}).frames, Strings{"new"});
}

TEST(RegistryClusterIds, LocalPublishesTakeNoIdInAClusterZone) {
    Env e;
    e.root->cluster.external_ids = 1;
    ASSERT_EQ(e.reg.subscribe("g", 0), Status::kOk);
    const MessageId a[1] = {{7, 1}}, b[1] = {{7, 2}};
    ASSERT_EQ(PublishTo(e, {"g"}, "one", KeepWithIds(10, a)).status, Status::kOk);
    // A client message or presence event published here without Redis ids.
    ASSERT_EQ(PublishTo(e, {"g"}, "local", Keep(10)).status, Status::kOk);
    EXPECT_EQ(e.reg.find("g")->last_seq, 1u) << "the cluster's numbering is not disturbed";
    ASSERT_EQ(PublishTo(e, {"g"}, "two", KeepWithIds(10, b)).status, Status::kOk);
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{1, 2}));
    const QueueNode* q = e.reg.take_queue(0);
    ASSERT_NE(q, nullptr);
    ASSERT_NE(q->next, nullptr);
    EXPECT_EQ(IdOf(q->next->message->ids()[0]), Id(0, 0)) << "no id";
    e.reg.finish_drain(0);
    Hist h = History(e, "g", {7, 0});
    EXPECT_EQ(h.frames, (Strings{"one", "two"}));
}

TEST(RegistryClusterIds, NothingLeaksWhenNothingIsKeptOrListened) {
    Env e;
    e.root->cluster.external_ids = 1;
    const MessageId a[1] = {{7, 1}};
    ASSERT_EQ(PublishTo(e, {"g"}, "one", KeepWithIds(10, a)).status, Status::kOk);
    const size_t live = e.alloc.live();
    // The same id again with nobody listening: kept once already.
    ASSERT_EQ(PublishTo(e, {"g"}, "again", KeepWithIds(10, a)).status, Status::kOk);
    EXPECT_EQ(e.alloc.live(), live);
    // No id, history asked, nobody listening, in a cluster zone: nothing.
    ASSERT_EQ(PublishTo(e, {"h"}, "local", Keep(10)).status, Status::kOk);
    EXPECT_EQ(e.alloc.live(), live);
    EXPECT_EQ(e.reg.find("h"), nullptr);
    // Two groups, one id new, one not.
    const MessageId two[2] = {{7, 1}, {8, 1}};
    ASSERT_EQ(PublishTo(e, {"g", "k"}, "both", KeepWithIds(10, two)).status, Status::kOk);
    EXPECT_EQ(Retained(e, "g"), (std::vector<uint64_t>{1}));
    EXPECT_EQ(Retained(e, "k"), (std::vector<uint64_t>{1}));
    ExpectHistoryConsistent(e.root);
}

}  // namespace
}  // namespace realtime
