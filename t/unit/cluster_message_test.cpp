// The wire format of messages between nodes, and the group counter the
// subscriber watches.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/cluster_message.h"
#include "core/registry.h"
#include "test_alloc.h"

namespace realtime {
namespace {

TEST(ClusterMessage, RoundTrip) {
    std::string wire = encode_cluster_message(0x1234abcd, false, "{\"a\":1}");
    EXPECT_EQ(wire, "1 1234abcd -\n{\"a\":1}");
    ClusterMessage m;
    ASSERT_TRUE(parse_cluster_message(wire, &m));
    EXPECT_EQ(m.node, 0x1234abcdu);
    EXPECT_FALSE(m.is_string);
    EXPECT_EQ(m.payload, "{\"a\":1}");
}

TEST(ClusterMessage, StringPayloadAndBinarySafe) {
    std::string payload("line1\nline2\0x", 13);
    std::string wire = encode_cluster_message(1, true, payload);
    ClusterMessage m;
    ASSERT_TRUE(parse_cluster_message(wire, &m));
    EXPECT_EQ(m.node, 1u);
    EXPECT_TRUE(m.is_string);
    EXPECT_EQ(m.payload, payload);
}

TEST(ClusterMessage, EmptyPayload) {
    ClusterMessage m;
    ASSERT_TRUE(parse_cluster_message("1 0 -\n", &m));
    EXPECT_EQ(m.payload, "");
}

TEST(ClusterMessage, MalformedIsRefused) {
    ClusterMessage m;
    for (const char* bad : {"", "1", "1 ", "2 abc -\nx", "1abc -\nx", "1  -\nx", "1 abc\nx",
                            "1 abc -", "1 abc \nx", "1 ABC -\nx", "1 abcz -\nx",
                            "1 123456789 -\nx", "1 abc x\nx", "1 abc s-q\nx", "hello world"}) {
        EXPECT_FALSE(parse_cluster_message(bad, &m)) << bad;
    }
    // every prefix of a valid message is refused or parses within bounds
    std::string wire = encode_cluster_message(0xffffffff, true, "p");
    for (size_t n = 0; n < wire.size(); ++n) {
        if (parse_cluster_message(std::string_view(wire.data(), n), &m)) {
            EXPECT_LE(m.payload.data() + m.payload.size(), wire.data() + n);
        }
    }
}

TEST(ClusterMessage, Version2CarriesTheIdAndTheHistory) {
    // What the publish script writes: head + "<epoch> <seq>" + tail + payload.
    std::string wire = cluster_message_head(0xab, true) + "1f2e 42" +
                       cluster_message_tail(100, 60000) + "hi";
    EXPECT_EQ(wire, "2 000000ab s 1f2e 42 100 60000\nhi");
    ClusterMessage m;
    ASSERT_TRUE(parse_cluster_message(wire, &m));
    EXPECT_EQ(m.node, 0xabu);
    EXPECT_TRUE(m.is_string);
    EXPECT_EQ(m.epoch, 0x1f2eu);
    EXPECT_EQ(m.seq, 42u);
    EXPECT_EQ(m.history_size, 100u);
    EXPECT_EQ(m.history_ttl, 60000u);
    EXPECT_EQ(m.payload, "hi");

    ASSERT_TRUE(parse_cluster_message("2 1 - ffffffffffffffff 9223372036854775807 0 0\n", &m));
    EXPECT_EQ(m.epoch, UINT64_MAX);
    EXPECT_EQ(m.seq, uint64_t{INT64_MAX}) << "what HINCRBY can reach";
    EXPECT_EQ(m.payload, "");

    // Version 1 has no id.
    ASSERT_TRUE(parse_cluster_message("1 1 -\nx", &m));
    EXPECT_EQ(m.epoch, 0u);
    EXPECT_EQ(m.seq, 0u);
}

TEST(ClusterMessage, MalformedVersion2IsRefused) {
    ClusterMessage m;
    for (const char* bad :
         {"2 1 -\nx", "2 1 - 1 1 1\nx", "2 1 - 0 1 1 1\nx", "2 1 - 1 0 1 1\nx",
          "2 1 - 1 1 1 1 1\nx", "2 1 - 1f 1x 1 1\nx", "2 1 - 1F 1 1 1\nx",
          "2 1 - 1 1 1 1 \nx", "2 1 -  1 1 1 1\nx", "2 1 - 11111111111111111 1 1 1\nx",
          "2 1 - 1 99999999999999999999 1 1\nx", "2 1 - 1 1 4294967296 1\nx",
          "2 1 - 1 1 1 4294967296\nx", "2 1 - 1 1 1 1", "2 1 1 1 1 1\nx"}) {
        EXPECT_FALSE(parse_cluster_message(bad, &m)) << bad;
    }
    std::string wire = cluster_message_head(0xffffffff, false) + "abc 7" +
                       cluster_message_tail(1, 2) + "p";
    for (size_t n = 0; n < wire.size(); ++n) {
        std::string cut = wire.substr(0, n);  // its own buffer: ASan sees overreads
        if (parse_cluster_message(cut, &m)) {
            EXPECT_LE(m.payload.data() + m.payload.size(), cut.data() + cut.size());
        }
    }
}

TEST(ClusterMessage, ControlFlagForActions) {
    std::string wire = encode_cluster_message(5, false, "{\"action\":\"disconnect\"}", true);
    EXPECT_EQ(wire, "1 00000005 c\n{\"action\":\"disconnect\"}");
    ClusterMessage m;
    ASSERT_TRUE(parse_cluster_message(wire, &m));
    EXPECT_TRUE(m.is_control);
    EXPECT_FALSE(m.is_string);
    ASSERT_TRUE(parse_cluster_message(encode_cluster_message(5, true, "x", true), &m));
    EXPECT_TRUE(m.is_control && m.is_string);
    ASSERT_TRUE(parse_cluster_message(encode_cluster_message(5, true, "x"), &m));
    EXPECT_FALSE(m.is_control);
    EXPECT_FALSE(parse_cluster_message("1 5 cx\nx", &m));
}

TEST(ClusterChannel, SharedGroupsAreValidNamesAndUsersInternalGroups) {
    EXPECT_TRUE(is_shared_group("room:1"));
    EXPECT_TRUE(is_shared_group("~user:alice"));
    EXPECT_TRUE(is_shared_group("~user:any bytes \xff at all"));
    EXPECT_FALSE(is_shared_group("~user:"));
    EXPECT_FALSE(is_shared_group("~other:x"));
    EXPECT_FALSE(is_shared_group("bad name"));
    EXPECT_FALSE(is_shared_group(""));
    EXPECT_FALSE(is_shared_group("~user:" + std::string(250, 'u')));
}

TEST(ClusterChannel, NamesAndBack) {
    EXPECT_EQ(cluster_channel("realtime", "room:1"), "realtime:g:room:1");
    std::string_view g;
    ASSERT_TRUE(cluster_channel_group("realtime", "realtime:g:room:1", &g));
    EXPECT_EQ(g, "room:1");
    EXPECT_FALSE(cluster_channel_group("realtime", "realtime:g:", &g));
    EXPECT_FALSE(cluster_channel_group("realtime", "other:g:x", &g));
    EXPECT_FALSE(cluster_channel_group("realtime", "realtime:n:abc", &g));
    EXPECT_FALSE(cluster_channel_group("rt", "realtime:g:x", &g));
}

TEST(ClusterGroupChanges, MovesOnlyWhenAGroupGainsOrLosesItsLastSubscriber) {
    test::CountingAllocator alloc;
    RegistryRoot* root = Registry::create(alloc, 16);
    ASSERT_NE(root, nullptr);
    Registry reg(root, alloc);
    auto changes = [root] { return root->cluster.group_changes; };

    EXPECT_EQ(changes(), 0u);
    ASSERT_EQ(reg.subscribe("a", 0), Registry::Status::kOk);
    EXPECT_EQ(changes(), 1u);
    ASSERT_EQ(reg.subscribe("a", 1), Registry::Status::kOk);  // second: no change
    EXPECT_EQ(changes(), 1u);
    reg.unsubscribe("a", 1);
    EXPECT_EQ(changes(), 1u);
    reg.unsubscribe("a", 0);
    EXPECT_EQ(changes(), 2u);

    const std::string_view names[] = {"b", "c"};
    ConnNode* conn = reg.join(names, 2, 0);
    ASSERT_NE(conn, nullptr);
    EXPECT_EQ(changes(), 4u);
    int seen = 0;
    reg.each_group([&](const GroupNode& g) {
        seen++;
        EXPECT_TRUE(g.name() == "b" || g.name() == "c");
        EXPECT_EQ(g.subscribers, 1u);
    });
    EXPECT_EQ(seen, 2);
    reg.leave(conn);
    EXPECT_EQ(changes(), 6u);

    // a released slot takes its subscribers: their groups change too
    ASSERT_EQ(reg.subscribe("d", 3), Registry::Status::kOk);
    EXPECT_EQ(changes(), 7u);
    reg.release_slot(3);
    EXPECT_EQ(changes(), 8u);
}

TEST(ClusterGroupChanges, ListsTheGroupsThatChangedOnceEach) {
    test::CountingAllocator alloc;
    RegistryRoot* root = Registry::create(alloc, 16);
    ASSERT_NE(root, nullptr);
    Registry reg(root, alloc);
    using Seen = std::vector<std::pair<std::string, bool>>;
    auto take = [&reg](bool* complete = nullptr) {
        Seen seen;
        bool c = reg.take_group_changes(
            [&seen](std::string_view g, bool on) { seen.emplace_back(std::string(g), on); });
        if (complete) {
            *complete = c;
        }
        std::sort(seen.begin(), seen.end());
        return seen;
    };

    // not tracked: nothing listed, nothing allocated for it
    ASSERT_EQ(reg.subscribe("a", 0), Registry::Status::kOk);
    EXPECT_EQ(take(), Seen{});
    reg.unsubscribe("a", 0);

    root->cluster.track_changes = 1;
    ASSERT_EQ(reg.subscribe("a", 0), Registry::Status::kOk);
    ASSERT_EQ(reg.subscribe("a", 1), Registry::Status::kOk);
    ASSERT_EQ(reg.subscribe("b", 0), Registry::Status::kOk);
    reg.unsubscribe("b", 0);  // gone again: listed once, not subscribed now
    ASSERT_EQ(reg.subscribe("c", 0), Registry::Status::kOk);
    reg.unsubscribe("c", 0);
    ASSERT_EQ(reg.subscribe("c", 0), Registry::Status::kOk);  // back: a second entry
    bool complete = false;
    Seen seen = take(&complete);
    EXPECT_TRUE(complete);
    EXPECT_EQ(seen, (Seen{{"a", true}, {"b", false}, {"c", true}, {"c", true}}));
    EXPECT_EQ(take(), Seen{}) << "emptied";

    // listed again after being taken
    reg.unsubscribe("a", 0);
    EXPECT_EQ(take(), Seen{}) << "a still has a subscriber";
    reg.unsubscribe("a", 1);
    EXPECT_EQ(take(), (Seen{{"a", false}}));

    // a full zone: the group node and its counts fit, its record not:
    // the subscription holds, and the taker is told to walk
    alloc.fail_after(2, /*once=*/true);
    ASSERT_EQ(reg.subscribe("d", 0), Registry::Status::kOk);
    EXPECT_EQ(take(&complete), Seen{});
    EXPECT_FALSE(complete);
    EXPECT_EQ(reg.subscribers("d"), 1u);
    take(&complete);
    EXPECT_TRUE(complete) << "said once";

    // a record outlives its group node
    const size_t live = alloc.live();
    ASSERT_EQ(reg.subscribe("c", 1), Registry::Status::kOk);   // no change: c has one
    reg.unsubscribe("c", 0);
    reg.unsubscribe("c", 1);  // c: 1 -> 0, its node goes; the record stays
    EXPECT_EQ(take(&complete), (Seen{{"c", false}}));
    EXPECT_TRUE(complete);
    EXPECT_LT(alloc.live(), live);
}

}  // namespace
}  // namespace realtime
