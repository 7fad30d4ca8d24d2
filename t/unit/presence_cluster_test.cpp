// Presence across nodes: the registry's remote holders, snapshots and
// outbox, and the wire format of deltas and snapshots.
#include <gtest/gtest.h>

#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/cluster_presence.h"
#include "core/registry.h"
#include "test_alloc.h"

namespace realtime {
namespace {

using test::CountingAllocator;
using Status = Registry::Status;

constexpr uint32_t kSelf = 0x1111;
constexpr uint32_t kA = 0xaaaa;
constexpr uint32_t kB = 0xbbbb;

// A zone with an observer (an untracked connection in slot 0) in "room",
// so the events published to it can be read.
class Env {
public:
    Env() : root(Registry::create(alloc, 64)), reg(root, alloc), baseline(alloc.live()) {
        std::string_view room = "room";
        observer = reg.join(&room, 1, 0);
    }
    ~Env() {
        alloc.stop_failing();
        SlotSet wake;
        for (uint32_t s = 0; s < 8; ++s) {
            reg.release_slot(s, 1u << 30, wake);
        }
        reg.sweep_presence(UINT64_MAX / 2, wake);
        for (const char* g : {"room", "hall", "other"}) {
            reg.drop_remote_group(g);
        }
        reg.take_presence_outbox([](const PresenceDelta&) {});
        for (uint32_t s = 0; s < 8; ++s) {
            reg.take_queue(s);
            reg.finish_drain(s);
        }
        EXPECT_EQ(root->stats.presence_remote, 0u);
        EXPECT_EQ(root->groups, 0u);
        EXPECT_EQ(alloc.live(), baseline) << "blocks left";
        alloc.deallocate(root->presence_buckets);
        alloc.deallocate(root->buckets);
        alloc.deallocate(root);
    }

    // The frames queued for the observer since the last call.
    std::vector<std::string> Events() {
        std::vector<std::string> out;
        for (QueueNode* q = reg.take_queue(0); q; q = q->next) {
            out.emplace_back(reinterpret_cast<const char*>(q->message->frame()),
                             q->message->frame_size);
        }
        reg.finish_drain(0);
        return out;
    }

    Status Remote(std::string_view user, uint32_t node, bool present, uint32_t conns,
                  std::string_view group = "room") {
        SlotSet wake;
        std::string join = "+" + std::string(user), leave = "-" + std::string(user);
        return reg.remote_presence(group, user, node, present, conns, "{}", join, leave, 0,
                                   wake);
    }

    ConnNode* Join(std::string_view user, uint32_t slot, uint32_t delay = 0,
                   std::string_view group = "room", SlotSet* wake = nullptr) {
        specs.push_back({});
        Spec& s = specs.back();
        s.user = std::string(user);
        s.join = "+" + s.user;
        s.leave = "-" + s.user;
        s.spec = PresenceSpec{s.user, "{}", s.join, s.leave, delay};
        groups.push_back(JoinGroup{group, &s.spec});
        SlotSet ignored;
        return reg.join(&groups.back(), 1, slot, wake ? *wake : ignored);
    }

    uint64_t Total(std::string_view user, std::string_view group = "room") {
        const PresenceNode* p = reg.presence(group, user);
        return p ? p->total_connections() : 0;
    }

    uint32_t Present(std::string_view group = "room") {
        const GroupNode* g = reg.find(group);
        return g ? g->present : 0;
    }

    struct Spec {
        std::string user, join, leave;
        PresenceSpec spec;
    };
    CountingAllocator alloc;
    RegistryRoot* root;
    Registry reg;
    size_t baseline;
    ConnNode* observer;
    std::deque<Spec> specs;
    std::deque<JoinGroup> groups;
};

using Events = std::vector<std::string>;

TEST(RemotePresence, FirstHolderJoinsOnceSecondTabElsewhereIsSilent) {
    Env e;
    ASSERT_EQ(e.Remote("ann", kA, true, 1), Status::kOk);
    EXPECT_EQ(e.Events(), Events{"+ann"});
    ASSERT_EQ(e.Remote("ann", kA, true, 2), Status::kOk);  // a second tab on A
    ASSERT_EQ(e.Remote("ann", kB, true, 1), Status::kOk);  // a tab on B
    EXPECT_EQ(e.Events(), Events{});
    EXPECT_EQ(e.Total("ann"), 3u);
    EXPECT_EQ(e.Present(), 1u);
    // a local tab: no join event either
    ConnNode* c = e.Join("ann", 1);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(e.Events(), Events{});
    EXPECT_EQ(e.Total("ann"), 4u);
    EXPECT_EQ(e.Present(), 1u);
    EXPECT_EQ(e.root->stats.presence_remote, 2u);
    EXPECT_EQ(e.reg.find("room")->remote, 2u);
}

TEST(RemotePresence, LeaveOnlyWhenTheLastHolderGoes) {
    Env e;
    e.Remote("ann", kA, true, 1);
    e.Remote("ann", kB, true, 1);
    e.Events();
    e.Remote("ann", kA, false, 0);
    EXPECT_EQ(e.Events(), Events{});
    EXPECT_EQ(e.Total("ann"), 1u);
    e.Remote("ann", kA, false, 0);  // twice: nothing
    e.Remote("zed", kA, false, 0);  // never there: nothing
    EXPECT_EQ(e.Events(), Events{});
    e.Remote("ann", kB, false, 0);
    EXPECT_EQ(e.Events(), Events{"-ann"});
    EXPECT_EQ(e.reg.presence("room", "ann"), nullptr);
    EXPECT_EQ(e.Present(), 0u);
}

TEST(RemotePresence, LocalLeaveWhileHeldElsewhereIsSilent) {
    Env e;
    ConnNode* c = e.Join("ann", 1);
    EXPECT_EQ(e.Events(), Events{"+ann"});
    e.Remote("ann", kA, true, 1);
    EXPECT_EQ(e.Events(), Events{});
    SlotSet wake;
    e.reg.leave(c, 0, wake);
    EXPECT_EQ(e.Events(), Events{});
    const PresenceNode* p = e.reg.presence("room", "ann");
    ASSERT_NE(p, nullptr) << "remote-only now";
    EXPECT_EQ(p->connections, 0u);
    EXPECT_EQ(e.Present(), 1u);
    // back here: still no event
    ConnNode* c2 = e.Join("ann", 2);
    EXPECT_EQ(e.Events(), Events{});
    e.Remote("ann", kA, false, 0);
    EXPECT_EQ(e.Events(), Events{});
    e.reg.leave(c2, 0, wake);
    EXPECT_EQ(e.Events(), Events{"-ann"});
    EXPECT_EQ(e.Present(), 0u);
}

TEST(RemotePresence, RemoteOnlyThenLocalTakesTheLocalLeaveDelay) {
    Env e;
    e.Remote("ann", kA, true, 1);
    e.Events();
    ConnNode* c = e.Join("ann", 1, 500);
    e.Remote("ann", kA, false, 0);
    EXPECT_EQ(e.Events(), Events{});
    SlotSet wake;
    e.reg.leave(c, 1000, wake);
    EXPECT_EQ(e.Events(), Events{}) << "the leave waits for its delay";
    EXPECT_EQ(e.reg.sweep_presence(1499, wake), 1500u);
    EXPECT_EQ(e.Events(), Events{});
    e.reg.sweep_presence(1500, wake);
    EXPECT_EQ(e.Events(), Events{"-ann"});
}

TEST(RemotePresence, PendingLocalLeaveAndARemoteHolder) {
    Env e;
    SlotSet wake;
    // the remote holder goes first: the pending leave still tells it
    ConnNode* c = e.Join("ann", 1, 100);
    e.reg.leave(c, 0, wake);
    e.Remote("ann", kA, true, 1);
    e.Remote("ann", kA, false, 0);
    EXPECT_EQ(e.Events(), Events{"+ann"});
    e.reg.sweep_presence(100, wake);
    EXPECT_EQ(e.Events(), Events{"-ann"});
    // the pending leave is due first: no event, remote-only, then the holder
    c = e.Join("bob", 1, 100);
    e.reg.leave(c, 0, wake);
    e.Remote("bob", kA, true, 2);
    EXPECT_EQ(e.Events(), Events{"+bob"});
    EXPECT_EQ(e.reg.sweep_presence(100, wake), 0u);
    EXPECT_EQ(e.Events(), Events{});
    ASSERT_NE(e.reg.presence("room", "bob"), nullptr);
    EXPECT_EQ(e.Total("bob"), 2u);
    e.Remote("bob", kA, false, 0);
    EXPECT_EQ(e.Events(), Events{"-bob"});
}

RemoteEntry Entry(uint32_t node, std::string_view user, uint32_t conns,
                  std::deque<std::string>& keep) {
    const std::string& j = keep.emplace_back("+" + std::string(user));
    const std::string& l = keep.emplace_back("-" + std::string(user));
    return RemoteEntry{node, conns, user, "{}", j, l};
}

TEST(RemotePresence, SnapshotsReplaceWithEventsForTheDifferences) {
    Env e;
    std::deque<std::string> keep;
    SlotSet wake;
    std::vector<RemoteEntry> s1 = {Entry(kA, "ann", 1, keep), Entry(kB, "bob", 2, keep),
                                   Entry(kSelf, "carl", 1, keep)};
    ASSERT_EQ(e.reg.replace_remote_presence("room", s1.data(), s1.size(), kSelf, 0, wake),
              Status::kOk);
    EXPECT_EQ(e.Events(), Events{}) << "the first snapshot tells the present users quietly";
    EXPECT_EQ(e.Total("ann"), 1u);
    EXPECT_EQ(e.Total("bob"), 2u);
    EXPECT_EQ(e.reg.presence("room", "carl"), nullptr) << "our own entries are ignored";
    e.Remote("dave", kA, true, 1);
    EXPECT_EQ(e.Events(), Events{"+dave"});
    std::vector<RemoteEntry> s2 = {Entry(kA, "ann", 3, keep), Entry(kB, "eve", 1, keep)};
    e.reg.replace_remote_presence("room", s2.data(), s2.size(), kSelf, 0, wake);
    Events got = e.Events();
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (Events{"+eve", "-bob", "-dave"}));
    EXPECT_EQ(e.Total("ann"), 3u);
    EXPECT_EQ(e.Present(), 2u);
    // a snapshot does not touch local presence
    e.Join("fay", 1);
    e.Events();
    e.reg.replace_remote_presence("room", nullptr, 0, kSelf, 0, wake);
    got = e.Events();
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (Events{"-ann", "-eve"}));
    EXPECT_EQ(e.Present(), 1u);
    EXPECT_EQ(e.root->stats.presence_remote, 0u);
}

TEST(RemotePresence, SnapshotOfAGroupWithNothingHereCreatesItAndDropForgetsIt) {
    Env e;
    std::deque<std::string> keep;
    SlotSet wake;
    std::vector<RemoteEntry> s = {Entry(kA, "ann", 1, keep)};
    e.reg.replace_remote_presence("hall", s.data(), s.size(), kSelf, 0, wake);
    ASSERT_NE(e.reg.find("hall"), nullptr);
    EXPECT_EQ(e.Present("hall"), 1u);
    e.reg.drop_remote_group("hall");
    EXPECT_EQ(e.reg.find("hall"), nullptr);
    // an empty snapshot of an unknown group creates nothing
    e.reg.replace_remote_presence("other", nullptr, 0, kSelf, 0, wake);
    EXPECT_EQ(e.reg.find("other"), nullptr);
}

TEST(RemotePresence, DropRemoteGroupKeepsLocalUsersWithoutEvents) {
    Env e;
    e.Join("ann", 1);
    e.Remote("ann", kA, true, 1);
    e.Remote("bob", kA, true, 1);
    e.Events();
    e.reg.drop_remote_group("room");
    EXPECT_EQ(e.Events(), Events{});
    EXPECT_EQ(e.Total("ann"), 1u);
    EXPECT_EQ(e.reg.presence("room", "bob"), nullptr);
    EXPECT_EQ(e.Present(), 1u);
    EXPECT_EQ(e.reg.find("room")->remote, 0u);
}

TEST(RemotePresence, ZoneFullNeverCorrupts) {
    for (size_t n = 0; n < 6; ++n) {
        Env e;
        e.Remote("ann", kA, true, 1);
        e.Events();
        size_t live = e.alloc.live();
        e.alloc.fail_after(n);
        Status s1 = e.Remote("bob", kA, true, 1, "hall");  // a group, a node, a holder
        Status s2 = e.Remote("ann", kB, true, 1);           // a holder
        std::deque<std::string> keep;
        std::vector<RemoteEntry> snap = {Entry(kA, "ann", 1, keep), Entry(kB, "cid", 1, keep)};
        SlotSet wake;
        Status s3 = e.reg.replace_remote_presence("room", snap.data(), snap.size(), kSelf, 0,
                                                  wake);
        e.alloc.stop_failing();
        if (s1 != Status::kOk) {
            EXPECT_EQ(e.reg.find("hall"), nullptr) << n;
        }
        if (s2 != Status::kOk && s3 != Status::kOk) {
            EXPECT_LE(e.Total("ann"), 2u) << n;
        }
        // everything still works and is freed at teardown
        e.Remote("ann", kB, false, 0);
        e.Remote("ann", kA, false, 0);
        e.Remote("cid", kB, false, 0);
        e.Remote("bob", kA, false, 0, "hall");
        EXPECT_EQ(e.reg.presence("room", "ann"), nullptr) << n;
        EXPECT_EQ(e.alloc.live(), live) << n;
    }
}

TEST(RemotePresence, InvalidUsersAreRefused) {
    Env e;
    EXPECT_EQ(e.Remote("", kA, true, 1), Status::kNoMemory);
    EXPECT_EQ(e.Remote(std::string(kMaxPresenceUser + 1, 'u'), kA, true, 1), Status::kNoMemory);
    EXPECT_EQ(e.Present(), 0u);
}

// ------------------------------------------------------------- outbox

struct Seen {
    std::string group, user, join, leave;
    bool present;
    uint32_t connections;
    bool operator==(const Seen& o) const {
        return group == o.group && user == o.user && present == o.present &&
               connections == o.connections;
    }
};
std::ostream& operator<<(std::ostream& os, const Seen& s) {
    return os << s.group << "/" << s.user << (s.present ? "+" : "-") << s.connections;
}

std::vector<Seen> Take(Env& e) {
    std::vector<Seen> out;
    e.reg.take_presence_outbox([&out](const PresenceDelta& d) {
        out.push_back({std::string(d.group), std::string(d.user), std::string(d.join_frame),
                       std::string(d.leave_frame), d.present, d.connections});
    });
    return out;
}

void Outbox(Env& e) {
    e.root->cluster.presence_outbox = 1;
    e.root->cluster.election.owner = 42;
    e.root->cluster.election.slot = 5;
}

TEST(PresenceOutbox, OffByDefault) {
    Env e;
    e.Join("ann", 1);
    EXPECT_TRUE(e.reg.presence_outbox_empty());
    EXPECT_TRUE(Take(e).empty());
}

TEST(PresenceOutbox, EveryLocalChangeOnceWithTheSubscriberWoken) {
    Env e;
    Outbox(e);
    SlotSet wake;
    ConnNode* c1 = e.Join("ann", 1, 0, "room", &wake);
    EXPECT_TRUE(wake.test(5)) << "the subscriber is woken";
    SlotSet wake2;
    ConnNode* c2 = e.Join("ann", 2, 0, "room", &wake2);
    EXPECT_FALSE(wake2.test(5)) << "woken once while the outbox is not empty";
    std::vector<Seen> got = Take(e);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], (Seen{"room", "ann", "", "", true, 2}));
    EXPECT_EQ(got[0].join, "+ann");
    EXPECT_EQ(got[0].leave, "-ann");
    EXPECT_TRUE(Take(e).empty());
    SlotSet w;
    e.reg.leave(c1, 0, w);
    EXPECT_TRUE(w.test(5));
    EXPECT_EQ(Take(e), (std::vector<Seen>{{"room", "ann", "", "", true, 1}}));
    e.reg.leave(c2, 0, w);
    EXPECT_EQ(Take(e), (std::vector<Seen>{{"room", "ann", "", "", false, 0}}));
    EXPECT_TRUE(e.reg.presence_outbox_empty());
}

TEST(PresenceOutbox, NeverAnnouncedNeverTold) {
    Env e;
    Outbox(e);
    SlotSet w;
    ConnNode* c = e.Join("ann", 1);
    e.reg.leave(c, 0, w);
    EXPECT_TRUE(Take(e).empty());
    EXPECT_TRUE(e.reg.presence_outbox_empty());
}

TEST(PresenceOutbox, GoneComesBeforeTheNextPresence) {
    Env e;
    Outbox(e);
    SlotSet w;
    ConnNode* c = e.Join("ann", 1);
    Take(e);
    e.reg.leave(c, 0, w);
    ConnNode* c2 = e.Join("ann", 2);
    (void) c2;
    EXPECT_EQ(Take(e), (std::vector<Seen>{{"room", "ann", "", "", false, 0},
                                          {"room", "ann", "", "", true, 1}}));
}

TEST(PresenceOutbox, PendingLeaveIsPresentWithNoConnection) {
    Env e;
    Outbox(e);
    SlotSet w;
    ConnNode* c = e.Join("ann", 1, 100);
    Take(e);
    e.reg.leave(c, 0, w);
    EXPECT_EQ(Take(e), (std::vector<Seen>{{"room", "ann", "", "", true, 0}}));
    e.reg.sweep_presence(100, w);
    EXPECT_EQ(Take(e), (std::vector<Seen>{{"room", "ann", "", "", false, 0}}));
}

TEST(PresenceOutbox, LocalEndWithRemoteHolderIsToldGone) {
    Env e;
    Outbox(e);
    SlotSet w;
    ConnNode* c = e.Join("ann", 1);
    Take(e);
    e.Remote("ann", kA, true, 1);
    EXPECT_TRUE(Take(e).empty()) << "remote changes are not ours to tell";
    e.reg.leave(c, 0, w);
    EXPECT_EQ(Take(e), (std::vector<Seen>{{"room", "ann", "", "", false, 0}}));
    // deleted later, not announced any more: nothing
    e.Remote("ann", kA, false, 0);
    EXPECT_TRUE(Take(e).empty());
}

TEST(PresenceOutbox, DeletedWhileDirtyAndAnnouncedLeavesARecord) {
    Env e;
    Outbox(e);
    SlotSet w;
    ConnNode* c = e.Join("ann", 1);
    ConnNode* c2 = e.Join("ann", 2);
    Take(e);
    e.reg.leave(c, 0, w);     // dirty
    e.reg.leave(c2, 0, w);    // deleted
    EXPECT_EQ(Take(e), (std::vector<Seen>{{"room", "ann", "", "", false, 0}}));
}

TEST(PresenceOutbox, TakenAtMostMaxAtATimeInOrder) {
    Env e;
    Outbox(e);
    SlotSet w;
    std::vector<ConnNode*> conns;
    for (const char* u : {"a", "b", "c"}) {
        conns.push_back(e.Join(u, 1));
    }
    Take(e);
    for (ConnNode* c : conns) {
        e.reg.leave(c, 0, w);  // three records, oldest "a"
    }
    e.Join("a", 2);  // and a dirty node of "a" again
    std::vector<std::string> order;
    auto take = [&](size_t max) {
        return e.reg.take_presence_outbox(
            [&](const PresenceDelta& d) {
                order.push_back(std::string(d.user) + (d.present ? "+" : "-"));
            },
            max);
    };
    EXPECT_EQ(take(2), 2u);
    EXPECT_EQ(take(1), 1u);
    EXPECT_FALSE(e.reg.presence_outbox_empty());
    EXPECT_EQ(take(5), 1u);
    EXPECT_TRUE(e.reg.presence_outbox_empty());
    EXPECT_EQ(order, (std::vector<std::string>{"a-", "b-", "c-", "a+"}));
}

TEST(PresenceOutbox, MarkAllResendsTheLocalState) {
    Env e;
    Outbox(e);
    e.Join("ann", 1);
    e.Join("bob", 1);
    e.Join("bob", 2);
    e.Remote("cid", kA, true, 1);
    Take(e);
    SlotSet w;
    e.reg.mark_all_presence_dirty(w);
    EXPECT_TRUE(w.test(5));
    std::vector<Seen> got = Take(e);
    std::sort(got.begin(), got.end(),
              [](const Seen& a, const Seen& b) { return a.user < b.user; });
    EXPECT_EQ(got, (std::vector<Seen>{{"room", "ann", "", "", true, 1},
                                      {"room", "bob", "", "", true, 2}}));
}

TEST(PresenceOutbox, GoneRecordRefusedWhenTheZoneIsFull) {
    Env e;
    Outbox(e);
    SlotSet w;
    ConnNode* c = e.Join("ann", 1);
    Take(e);
    e.alloc.fail_after(0);
    e.reg.leave(c, 0, w);
    e.alloc.stop_failing();
    EXPECT_EQ(e.root->stats.presence_outbox_lost, 1u);
    EXPECT_TRUE(Take(e).empty());
}

// --------------------------------------------------------------- wire

TEST(PresenceWire, RoundTripsAnyBytes) {
    PresenceWire d;
    d.node = 0xdeadbeef;
    d.present = true;
    d.connections = 4000000000u;
    std::string user("a b\n3 4\0x", 9);
    d.user = user;
    d.info = R"({"n":1})";
    d.join = R"({"event":"join"})";
    d.leave = "";
    std::string text = encode_presence_delta(d);
    EXPECT_EQ(text.substr(0, 14), "p1 deadbeef + ");
    PresenceWire got;
    ASSERT_TRUE(parse_presence_delta(text, &got));
    EXPECT_EQ(got.node, d.node);
    EXPECT_TRUE(got.present);
    EXPECT_EQ(got.connections, d.connections);
    EXPECT_EQ(got.user, user);
    EXPECT_EQ(got.info, d.info);
    EXPECT_EQ(got.join, d.join);
    EXPECT_EQ(got.leave, "");
    d.present = false;
    d.connections = 0;
    ASSERT_TRUE(parse_presence_delta(encode_presence_delta(d), &got));
    EXPECT_FALSE(got.present);
}

TEST(PresenceWire, RefusesEveryTruncationAndExtension) {
    PresenceWire d;
    d.node = 7;
    d.present = true;
    d.connections = 2;
    d.user = "ann";
    d.info = "{}";
    d.join = "J";
    d.leave = "L";
    std::string text = encode_presence_delta(d);
    PresenceWire got;
    for (size_t n = 0; n < text.size(); ++n) {
        EXPECT_FALSE(parse_presence_delta(text.substr(0, n), &got)) << n;
    }
    EXPECT_FALSE(parse_presence_delta(text + "x", &got));
    for (std::string bad : {"p2 00000007 + 2\n3 2 1 1\nann{}JL", "p1 0000007 + 2\n3 2 1 1\nann{}JL",
                            "p1 0000000G + 2\n3 2 1 1\nann{}JL", "p1 00000007 * 2\n3 2 1 1\nann{}JL",
                            "p1 00000007 + 99999999999\n3 2 1 1\nann{}JL",
                            "p1 00000007 + 2\n0 2 1 1\n{}JLx", "p1 00000007 + 2\n3 2 1 1 \nann{}JL",
                            "p1 00000007 + \n3 2 1 1\nann{}JL", "1 00000007 -\nhello"}) {
        EXPECT_FALSE(parse_presence_delta(bad, &got)) << bad;
    }
}

TEST(PresenceWire, GarbageNeverCrashesOrReadsPastTheText) {
    std::mt19937 rng(12);
    const std::string alphabet = "p1 0123456789abcdef+-\n";
    for (int i = 0; i < 20000; ++i) {
        std::string s = i % 2 ? "p1 " : "";
        size_t n = rng() % 40;
        for (size_t k = 0; k < n; ++k) {
            s += i % 3 ? alphabet[rng() % alphabet.size()] : static_cast<char>(rng());
        }
        auto* copy = new char[s.size()];  // ASan catches a read past it
        std::memcpy(copy, s.data(), s.size());
        PresenceWire got;
        std::string_view sv(copy, s.size());
        if (parse_presence_delta(sv, &got)) {
            EXPECT_LE(got.user.size() + got.info.size() + got.join.size() + got.leave.size(),
                      s.size());
        }
        std::string_view group, rest, entry;
        if (parse_presence_snapshot(sv, &group, &rest)) {
            bool bad;
            while (next_snapshot_entry(&rest, &entry, &bad)) {
            }
        }
        delete[] copy;
    }
}

TEST(PresenceWire, Snapshots) {
    PresenceWire d;
    d.node = 1;
    d.present = true;
    d.connections = 1;
    d.user = "ann";
    std::string entries[2] = {encode_presence_delta(d), ""};
    d.user = "bob\n2";
    entries[1] = encode_presence_delta(d);
    std::string text = encode_presence_snapshot("room 1", entries, 2);
    std::string_view group, rest, entry;
    ASSERT_TRUE(parse_presence_snapshot(text, &group, &rest));
    EXPECT_EQ(group, "room 1");
    bool bad;
    std::vector<std::string> got;
    while (next_snapshot_entry(&rest, &entry, &bad)) {
        got.emplace_back(entry);
    }
    EXPECT_FALSE(bad);
    EXPECT_EQ(got, (std::vector<std::string>{entries[0], entries[1]}));
    // an empty hash
    ASSERT_TRUE(parse_presence_snapshot("s1 4\nroom", &group, &rest));
    EXPECT_FALSE(next_snapshot_entry(&rest, &entry, &bad));
    EXPECT_FALSE(bad);
    // truncated: the entry that does not fit is bad
    std::string cut = text.substr(0, text.size() - 1);
    ASSERT_TRUE(parse_presence_snapshot(cut, &group, &rest));
    size_t n = 0;
    while (next_snapshot_entry(&rest, &entry, &bad)) {
        ++n;
    }
    EXPECT_EQ(n, 1u);
    EXPECT_TRUE(bad);
    EXPECT_FALSE(parse_presence_snapshot("s1 10\nroom", &group, &rest));
    EXPECT_FALSE(parse_presence_snapshot("s2 4\nroom", &group, &rest));
    EXPECT_FALSE(parse_presence_snapshot("s1 0\n", &group, &rest));
}

TEST(PresenceWire, KeysAndFrames) {
    EXPECT_EQ(presence_field(0xab, "u\n1"), std::string("000000ab\nu\n1"));
    EXPECT_EQ(presence_hash_key("rt", "room"), "rt:p:room");
    EXPECT_EQ(presence_groups_key("rt", 0x12345678), "rt:pg:12345678");
    EXPECT_EQ(presence_nodes_key("rt"), "rt:nodes");
    std::string frame = "\x81\x05hello";
    EXPECT_EQ(ws_frame_payload(frame), "hello");
    std::string big = std::string("\x81\x7e\x01\x00", 4) + std::string(256, 'x');
    EXPECT_EQ(ws_frame_payload(big).size(), 256u);
    EXPECT_EQ(ws_frame_payload("\x81"), "");
}

}  // namespace
}  // namespace realtime
