// The group registry that lives in the realtime shared-memory zone.
//
// It holds, for every group, how many subscribers each worker has, and for
// every worker a FIFO of messages to deliver. A message is stored once,
// framed, and referenced by the queue of each worker that has subscribers
// of its group; the last worker to take it frees it. Workers are named by
// slot number, never by pointer, so nothing here points into a process.
//
// Contract: every structure is trivially copyable and allocated through the
// Allocator; a Registry is a process-side handle over the shared root and
// the caller holds the zone lock around every call (nothing here blocks or
// does I/O). Sizes and counts are bounded: no call loops over subscribers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "allocator.h"

namespace realtime {

// Live workers of all generations. nginx's master keeps at most
// NGX_MAX_PROCESSES (1024) children, so a table this size cannot run out as
// long as the slots of exited workers are given back (the glue checks this
// bound at compile time).
constexpr uint32_t kMaxWorkerSlots = 1024;

// The longest wake-up address a worker may publish in its slot.
constexpr size_t kWakeNameMax = 40;

// A set of worker slots (the ones a publish must wake).
struct SlotSet {
    uint64_t bits[kMaxWorkerSlots / 64] = {};

    void set(uint32_t slot) noexcept { bits[slot / 64] |= uint64_t{1} << (slot % 64); }
    bool test(uint32_t slot) const noexcept { return bits[slot / 64] >> (slot % 64) & 1; }
    bool none() const noexcept {
        for (uint64_t b : bits) {
            if (b) {
                return false;
            }
        }
        return true;
    }
    // Calls f(slot) for each member, in increasing order.
    template <class F>
    void for_each(F f) const {
        for (uint32_t word = 0; word < kMaxWorkerSlots / 64; ++word) {
            for (uint64_t b = bits[word]; b; b &= b - 1) {
                f(word * 64 + static_cast<uint32_t>(__builtin_ctzll(b)));
            }
        }
    }
    bool operator==(const SlotSet& o) const noexcept {
        for (size_t i = 0; i < kMaxWorkerSlots / 64; ++i) {
            if (bits[i] != o.bits[i]) {
                return false;
            }
        }
        return true;
    }
};

// What a queued message is for the workers that deliver it.
enum class MessageKind : uint8_t {
    kData = 0,     // a framed WebSocket message for the groups' connections
    kControl = 1,  // an instruction for the groups' connections (the glue's
                   // format, e.g. JSON {"action":...}); never sent as is
};

// A message's place in one group's history: the group's epoch (which
// changes only when the group's history is lost: a new zone, or the group
// forgotten) and its sequence number there (monotonic, from 1).
struct MessageId {
    uint64_t epoch;
    uint64_t seq;
};

// ShmMessage::flags
constexpr uint8_t kPayloadIsString = 1;  // the payload is a JSON string's text

// One published message, stored once whatever the number of its groups and
// of the workers that deliver it.
struct ShmMessage {
    uint64_t origin;  // ConnNode::id of the connection that sent it, 0: none
                      // (echo=off skips it at delivery)
    uint64_t number;  // RegistryRoot::published when it was published: a
                      // connection that joined after it never gets it live
    uint32_t refs;    // queue nodes and history entries that still hold it
    uint32_t frame_size;
    uint16_t ngroups;
    uint16_t names_size;
    MessageKind kind;
    uint8_t flags;        // kPayloadIsString
    uint8_t header_size;  // the frame's header: the payload follows it
    // followed by ngroups MessageIds (one per group, in order; seq 0: the
    // group had no node, so no id), the frame bytes, then each group name
    // as a length byte and the name's bytes

    const MessageId* ids() const noexcept { return reinterpret_cast<const MessageId*>(this + 1); }
    const uint8_t* frame() const noexcept {
        return reinterpret_cast<const uint8_t*>(ids() + ngroups);
    }
    std::string_view payload() const noexcept {
        return std::string_view(reinterpret_cast<const char*>(frame()) + header_size,
                                frame_size - header_size);
    }

    std::string_view group(uint16_t index = 0) const noexcept {
        const uint8_t* p = frame() + frame_size;
        for (uint16_t i = 0; i < index; ++i) {
            p += 1 + p[0];
        }
        return std::string_view(reinterpret_cast<const char*>(p + 1), p[0]);
    }
};

struct ConnNode;

// A message in one worker's queue: once per worker whatever the number of
// its groups that worker serves, so a connection in several of them can be
// given the message once.
struct QueueNode {
    QueueNode* next;
    ShmMessage* message;
};

struct WorkerSlot {
    int32_t pid;        // 0: free
    uint32_t notified;  // a wake-up was sent and not yet acted upon
    uint64_t owner;     // unique per claim: a release names the claim it ends
    QueueNode* head;
    QueueNode* tail;
    // Taken by the worker and being delivered. It stays reachable from the
    // slot until the worker gives it back, so a worker killed mid-delivery
    // leaks nothing: releasing its slot frees these too.
    QueueNode* draining;
    ConnNode* conns;  // connections that joined groups through this slot
    uint32_t queued;
    uint32_t connections;
    // Where to send this worker's wake-up datagram (an abstract AF_UNIX
    // name chosen at random by the worker); empty: it drains on a timer.
    uint8_t wake_len;
    char wake_name[kWakeNameMax];
};

struct SlotCount {
    uint32_t slot;
    uint32_t count;
};

struct MemberNode;
struct PresenceNode;
struct HistEntry;

struct GroupNode {
    GroupNode* next;  // hash chain
    uint32_t hash;
    uint32_t subscribers;  // across all workers
    uint32_t nmembers;     // of them, connections listed in members
    MemberNode* members;   // connections that joined (see Registry::join)
    SlotCount* slots;      // per-worker counts, nslots used of capacity
    // Presence: one node per user with connections in the group (or whose
    // leave is pending), in join order. A group stays while it has any,
    // even with no subscriber left, so a pending leave can still be told.
    PresenceNode* presence;
    PresenceNode* presence_tail;
    uint32_t present;      // nodes in that list: the exact member count
    // Presence across nodes (realtime_redis): RemotePresence records of
    // the users in this group, and whether a snapshot of the other nodes'
    // presence here was applied since the group was last dropped (see
    // Registry::replace_remote_presence).
    uint32_t remote;
    uint32_t remote_synced;
    // History (realtime_history): the group's last messages, oldest first.
    // A group stays while it has any, even with no subscriber, so a client
    // that comes back finds what it missed.
    uint64_t epoch;        // root->zone_id << 32 | ++root->group_epochs
    uint64_t last_seq;     // the last sequence number given (0: none yet)
    HistEntry* hist_head;
    HistEntry* hist_tail;
    uint32_t hist_count;
    uint16_t nslots;
    uint16_t capacity;
    uint16_t name_len;
    // realtime_redis: this node's subscription to the group's channel is
    // confirmed (set and cleared by the subscriber, read by a resume that
    // needs everything published from now on to reach this node)
    uint8_t cluster_ready;
    // realtime_redis: listed on ClusterState::changed since its subscriber
    // count last went from 0 to 1 or back (listed once)
    uint8_t change_listed;
    // followed by the name

    std::string_view name() const noexcept {
        return std::string_view(reinterpret_cast<const char*>(this + 1), name_len);
    }
};

// A connection that joined groups (Registry::join): who it is in the zone,
// so a publish to several groups can count each connection once.
struct ConnNode {
    ConnNode* prev;  // its worker slot's list
    ConnNode* next;
    MemberNode* groups;  // its memberships, chained by next_of_conn
    uint64_t mark;       // the last multi-group count that saw it
    uint64_t id;         // unique in the zone's life, never 0
    uint32_t slot;
};

// A connection in one group: in the group's list and in the connection's.
struct MemberNode {
    MemberNode* prev;  // the group's list
    MemberNode* next;
    MemberNode* next_of_conn;
    GroupNode* group;
    ConnNode* conn;
    PresenceNode* presence;  // the user it counts for there; nullptr: untracked
};

// Another node's hold on a user in a group (realtime_redis): that node
// has connections of the user there (connections > 0) or a pending leave
// (connections == 0).
struct RemotePresence {
    RemotePresence* next;
    uint32_t node;         // the other node's zone_id
    uint32_t connections;
    uint32_t seen;         // replace_remote_presence's mark
};

// One user present in one group, whatever the number of its connections
// (tabs) and of the workers holding them. Keyed by (group, user) in the
// root's presence table, so a node-wide backend can mirror it as such. The
// leave event is framed when the user first joins and stored here, so any
// process can publish it: the worker that served the last connection, a
// worker that reclaims a dead one's slot, or a sweep after leave_delay.
struct PresenceNode {
    PresenceNode* prev;  // the group's list
    PresenceNode* next;
    PresenceNode* hash_next;     // root->presence_buckets chain
    PresenceNode* leaving_prev;  // root->leaving, while connections == 0
    PresenceNode* leaving_next;
    GroupNode* group;
    // Presence across nodes: the other nodes holding this user here. A
    // node with connections == 0, not pending and remote != nullptr is
    // remote-only: listed and counted, but no connection here.
    RemotePresence* remote;
    // The outbox (ClusterState::presence_outbox): on root->dirty while its
    // local state changed since the last drain; announced: the last state
    // drained said "present here" (its removal must be told).
    PresenceNode* dirty_prev;
    PresenceNode* dirty_next;
    uint64_t leave_at;   // connections == 0: when the leave is published (ms)
    uint32_t hash;       // hash_presence(group name, user)
    uint32_t connections;  // on this node
    uint32_t leave_delay;  // ms, as the first join asked
    uint32_t leave_size;
    uint32_t join_size;
    uint16_t user_len;
    uint16_t info_len;
    uint8_t dirty;
    uint8_t announced;
    // followed by the user, the info (JSON text), the leave frame and the
    // join frame (for the other nodes)

    std::string_view user() const noexcept {
        return std::string_view(reinterpret_cast<const char*>(this + 1), user_len);
    }
    std::string_view info() const noexcept {
        return std::string_view(reinterpret_cast<const char*>(this + 1) + user_len, info_len);
    }
    std::string_view leave_frame() const noexcept {
        return std::string_view(reinterpret_cast<const char*>(this + 1) + user_len + info_len,
                                leave_size);
    }
    std::string_view join_frame() const noexcept {
        return std::string_view(
            reinterpret_cast<const char*>(this + 1) + user_len + info_len + leave_size, join_size);
    }
    // Connections here and on every other node.
    uint64_t total_connections() const noexcept {
        uint64_t n = connections;
        for (const RemotePresence* r = remote; r; r = r->next) {
            n += r->connections;
        }
        return n;
    }
};

// A (group, user) whose presence here was told to the other nodes and was
// then forgotten here: the outbox still has to tell them it is gone.
struct PresenceGone {
    PresenceGone* next;
    uint16_t group_len;
    uint16_t user_len;
    // followed by the group name and the user
};

// What the outbox gives for one (group, user): its presence on this node
// now (present: connections here or a pending leave), with what the other
// nodes need to show it. gone (present false) carries no payloads.
struct PresenceDelta {
    std::string_view group;
    std::string_view user;
    std::string_view info;
    std::string_view join_frame;
    std::string_view leave_frame;
    bool present;
    uint32_t connections;
};

// One other node's state of a user in a snapshot (replace_remote_presence).
struct RemoteEntry {
    uint32_t node;
    uint32_t connections;
    std::string_view user;
    std::string_view info;
    std::string_view join_frame;
    std::string_view leave_frame;
};

// One message kept in a group's history. Also on the root's list of all
// entries, oldest first, so a full zone evicts the oldest anywhere.
struct HistEntry {
    HistEntry* next;       // the group's list
    HistEntry* all_prev;   // root->hist_head/hist_tail
    HistEntry* all_next;
    GroupNode* group;
    ShmMessage* message;   // one reference
    uint64_t seq;
    uint64_t expires;      // ms (the publish's now + ttl); 0: never
};

// What joining a group asks for: its name and, when the group tracks
// presence, the user and that user's events there.
struct PresenceSpec {
    std::string_view user;         // 1..kMaxPresenceUser bytes
    std::string_view info;         // JSON text kept for queries; "" is none
    std::string_view join_frame;   // published when the user's first
                                   // connection joins the group
    std::string_view leave_frame;  // kept, published when the last leaves
    uint32_t leave_delay;          // ms between the last leaving and the
                                   // leave event; a join in between cancels
};

struct JoinGroup {
    std::string_view name;
    const PresenceSpec* presence = nullptr;  // nullptr: no presence here
};

constexpr size_t kMaxPresenceUser = 255;
constexpr size_t kMaxPresenceInfo = 4096;

struct RegistryStats {
    uint64_t messages_published;  // messages accepted (one per publish, any groups)
    uint64_t frames_delivered;    // frames queued to connections, all workers
    uint64_t slow_consumer_closes;
    uint64_t connections_opened;
    uint64_t publish_rejected_full;  // messages refused: zone full
    uint64_t presence_joins;         // join events published
    uint64_t presence_leaves;        // leave events published
    uint64_t presence_events_lost;   // events not published: zone full
    uint64_t history_evicted;        // entries dropped early: zone full
    uint64_t presence_remote;        // RemotePresence records held now
    uint64_t presence_outbox_lost;   // "gone" records not kept: zone full
};

// The layout of everything in the zone. A zone survives `nginx -s reload`,
// and a reload may bring a new build of the module: one with another layout
// must not read the zone (the glue refuses the reload instead). Bump it on
// any change to the structures above or below.
constexpr uint32_t kRegistryLayout = 0x52540007;  // "RT", version 7

// A group whose subscriber count went from 0 to 1 or back, for the node's
// Redis subscriber (ClusterState::changed).
struct ChangedGroup {
    ChangedGroup* next;
    uint16_t name_len;
    // followed by the name

    std::string_view name() const noexcept {
        return std::string_view(reinterpret_cast<const char*>(this + 1), name_len);
    }
};

// The node's link to the other nodes (realtime_redis): which worker holds
// the subscription, and what realtime_stats shows of the links. The glue
// reads and writes it under the lock; nothing in the core but the counter
// of subscribed groups touches it.
// A role one worker of the node holds (the Redis subscriber, the channel
// layer's links): elected through the zone by the glue, under the lock.
struct Election {
    uint64_t owner;      // WorkerSlot::owner of the holder's claim, 0: none
    uint64_t lease;      // ms (CLOCK_MONOTONIC) the holder last renewed it
    uint32_t slot;       // its slot
    int32_t pid;         // its process
};

struct ClusterState {
    Election election;   // the subscriber's
    // Bumped (atomically, under the lock) each time a group's subscriber
    // count goes from 0 to 1 or back: the subscriber reads it without the
    // lock and walks the groups only when it moved.
    uint64_t group_changes;
    // With track_changes (set by the glue), the groups behind those
    // changes, so the subscriber need not walk every group; changes_lost:
    // some could not be listed (the zone was full), walk them all.
    ChangedGroup* changed;
    uint8_t track_changes;
    uint8_t changes_lost;
    uint8_t state;       // the subscriber link: 0 down, 1 connecting, 2 up
    uint32_t channels;   // group channels it is subscribed to
    uint64_t latency_us; // the last round trip measured through Redis
    uint64_t reconnects; // connections (re)made by any link of this node
    uint64_t published;  // messages sent to Redis (one per group)
    uint64_t received;   // messages from other nodes, published here
    uint64_t dropped;    // messages from Redis that could not be used
    uint64_t local_only; // client messages that stayed here: link down
    // Message ids come from the cluster (Registry::PublishOptions::ids):
    // a publish without them takes none (set by the glue at start).
    uint8_t external_ids;
    // Presence across nodes: set by the glue for a zone with realtime_redis,
    // so that every change of a user's local presence goes to the outbox.
    uint8_t presence_outbox;
    uint64_t presence_sent;  // deltas the subscriber sent to Redis
    // Per worker slot: the last fence of that slot's claim (owner) that
    // the subscriber saw come back from Redis. A publish waits for its
    // fence before it is delivered here, so everything Redis ordered
    // before it (other nodes' messages) is delivered here first.
    uint64_t fence_owner[kMaxWorkerSlots];
    uint64_t fence[kMaxWorkerSlots];
};

// The node's part in a Django Channels layer (realtime_channels_redis):
// which worker holds its links, and what realtime_stats shows. The glue
// reads and writes it under the lock; the core never touches it.
struct ChannelsState {
    Election election;
    char client_prefix[33];  // 32 hex, NUL-terminated; "": not picked yet
    uint8_t state;           // its links: 0 down, 1 connecting, 2 up
    uint32_t groups;         // groups registered (core) or subscribed (pubsub)
    uint64_t received;       // messages taken from Redis
    uint64_t delivered;      // published into the zone
    uint64_t dropped;        // could not be decoded, mapped or published
    uint64_t ignored;        // a rule says off
    uint64_t inbox_full;     // times the inbox was found at its capacity
};

struct RegistryRoot {
    uint32_t layout;  // kRegistryLayout; first, so any version can read it
    uint32_t bucket_mask;
    GroupNode** buckets;
    uint32_t groups;
    uint32_t generation;  // bumped on every reload that reuses the zone
    uint64_t claims;      // slot claims so far: the source of owner tags
    uint64_t marks;       // multi-group counts so far (ConnNode::mark)
    uint64_t conn_ids;    // ConnNode ids so far
    PresenceNode** presence_buckets;  // bucket_mask + 1 of them
    PresenceNode* leaving;            // users whose leave event is pending
    // Message ids and history. zone_id is the high half of every group
    // epoch: create() leaves it 0 and the zone's creator sets it at once to
    // a value another zone (a restart's) is unlikely to have had, e.g. from
    // the clock. group_epochs counts the group nodes created (the low half;
    // it skips 0 when it wraps).
    uint32_t zone_id;
    uint32_t group_epochs;
    uint64_t published;     // messages stored so far (ShmMessage::number)
    HistEntry* hist_head;   // every group's history entries, oldest first
    HistEntry* hist_tail;
    uint64_t hist_entries;  // entries on that list
    // The presence outbox (ClusterState::presence_outbox): nodes whose
    // local state changed, and records of forgotten ones.
    PresenceNode* dirty;
    PresenceGone* gone;
    WorkerSlot slots[kMaxWorkerSlots];
    RegistryStats stats;
    ClusterState cluster;
    ChannelsState channels;
};

uint32_t hash_group_name(std::string_view name) noexcept;

class Registry {
public:
    enum class Status { kOk, kNoMemory, kNoSlot };

    // Allocates a root with buckets (groups and presence) rounded up to a
    // power of two.
    static RegistryRoot* create(Allocator& alloc, size_t buckets) noexcept;

    Registry(RegistryRoot* root, Allocator& alloc) noexcept : root_(root), alloc_(alloc) {}

    // Several calls below may publish presence events (a join, a leave).
    // They add the worker slots those events must wake to `wake`; the
    // caller wakes them after releasing the lock, as after publish().
    // `now` is a millisecond clock shared by all processes (monotonic).

    // Worker slots. claim_slot returns the slot index or -1 when all are
    // taken; the slot's owner tag is unique to this claim. release_slot
    // frees what the slot held: its queued and draining messages, its
    // connections (their users leave presence as if they had closed) and
    // its share of every group's subscriber count (a dead worker's
    // subscribers are gone with it). release_slot_of does so only while the
    // slot still belongs to the claim named by owner, so a late release can
    // never wipe a slot that another worker has claimed since.
    int claim_slot(int32_t pid) noexcept;
    void release_slot(uint32_t slot, uint64_t now, SlotSet& wake) noexcept;
    bool release_slot_of(uint32_t slot, uint64_t owner, uint64_t now, SlotSet& wake) noexcept;
    void release_slot(uint32_t slot) noexcept {
        SlotSet wake;
        release_slot(slot, 0, wake);
    }

    // Subscriptions, counted per worker slot.
    Status subscribe(std::string_view group, uint32_t slot) noexcept;
    void unsubscribe(std::string_view group, uint32_t slot) noexcept;

    // A connection joins groups (distinct names) through slot, all or
    // nothing: counted as subscribe() does, and listed as a member of each,
    // so a publish to several groups counts it once. A group with a
    // presence spec counts the connection for its user there; the user's
    // first connection publishes the join event (after every membership is
    // in place, so the joiner gets it too), and one joining while its leave
    // is pending cancels that leave instead. nullptr when the zone is full
    // (then nothing changed; events are best effort and never fail a join).
    // leave() undoes it; releasing the slot does too for every connection
    // still there.
    ConnNode* join(const JoinGroup* groups, size_t ngroups, uint32_t slot, SlotSet& wake) noexcept;
    ConnNode* join(const std::string_view* groups, size_t ngroups, uint32_t slot) noexcept;

    // The user's last connection leaving a presence group publishes the
    // stored leave event at once (leave_delay 0) or puts the user on the
    // pending list until now + leave_delay (see sweep_presence).
    void leave(ConnNode* conn, uint64_t now, SlotSet& wake) noexcept;
    void leave(ConnNode* conn) noexcept {
        SlotSet wake;
        leave(conn, 0, wake);
    }

    // One more group for a connection that joined already (subscribe on
    // the fly), or one fewer. add_member: kOk (also when it was a member
    // already: *added says which), kNoMemory (nothing changed).
    // remove_member: false when it was not a member.
    Status add_member(ConnNode* conn, const JoinGroup& group, SlotSet& wake,
                      bool* added = nullptr) noexcept;
    bool remove_member(ConnNode* conn, std::string_view group, uint64_t now,
                       SlotSet& wake) noexcept;
    bool is_member(const ConnNode* conn, std::string_view group) const noexcept;

    // Publishes the leave events that are due at now and forgets those
    // users. Returns the earliest deadline still pending, 0 when none.
    uint64_t sweep_presence(uint64_t now, SlotSet& wake) noexcept;

    // The presence node of user in group, nullptr when not present.
    const PresenceNode* presence(std::string_view group, std::string_view user) const noexcept;

    uint32_t subscribers(std::string_view group) const noexcept;
    const GroupNode* find(std::string_view group) const noexcept;

    // realtime_redis: whether this node's subscription to the group's
    // channel is confirmed (GroupNode::cluster_ready); a group without a
    // node has none. clear_cluster_ready: every group (the link is down).
    void set_cluster_ready(std::string_view group, bool ready) noexcept {
        if (GroupNode* g = lookup(group, hash_group_name(group), nullptr)) {
            g->cluster_ready = ready ? 1 : 0;
        }
    }
    void clear_cluster_ready() noexcept {
        for (uint32_t b = 0; b <= root_->bucket_mask; ++b) {
            for (GroupNode* g = root_->buckets[b]; g; g = g->next) {
                g->cluster_ready = 0;
            }
        }
    }

    // realtime_redis: calls f(name, subscribed) for each group listed on
    // ClusterState::changed (its count went from 0 to 1 or back since the
    // last call; subscribed: whether it has subscribers now) and empties
    // the list. false when some were not listed (then the caller walks
    // every group with each_group). O(changes), under the lock.
    template <class F>
    bool take_group_changes(F f) {
        ClusterState& cs = root_->cluster;
        bool complete = cs.changes_lost == 0;
        cs.changes_lost = 0;
        while (ChangedGroup* c = cs.changed) {
            cs.changed = c->next;
            GroupNode* g = lookup(c->name(), hash_group_name(c->name()), nullptr);
            if (g) {
                g->change_listed = 0;
            }
            f(c->name(), g != nullptr && g->subscribers > 0);
            alloc_.deallocate(c);
        }
        return complete;
    }

    // Calls f(const GroupNode&) for every group node, in no order. It
    // walks the whole table (buckets and chains): O(groups), under the
    // lock; the subscriber calls it only when group_changes moved.
    template <class F>
    void each_group(F f) const {
        for (uint32_t b = 0; b <= root_->bucket_mask; ++b) {
            for (const GroupNode* g = root_->buckets[b]; g; g = g->next) {
                f(*g);
            }
        }
    }

    // Stores one message for its groups and queues it once for every
    // worker that has subscribers of any of them. subscribers is the
    // number of distinct connections in the groups at this moment (a group
    // named twice counts once; a connection in several of them counts once
    // when it joined them with join(): counting it walks the members of all
    // but the largest group); wake holds each slot that must be woken (it
    // had no wake-up pending). All or nothing: on kNoMemory nothing is
    // stored or queued, and no seq, number or group is taken (history
    // entries may have been evicted trying). options.origin names the
    // sending connection (its ConnNode::id) so delivery can skip it;
    // options.kind says whether the bytes are a frame or a control
    // instruction.
    struct Published {
        Status status;
        uint32_t subscribers;
        SlotSet wake;
    };
    // history_size > 0: each group keeps this message among its last
    // history_size (creating the group if it has no node), for history_ttl
    // ms after now (0: no limit). A full zone evicts the oldest history
    // entries, anywhere, before a publish is refused. header_size: how much
    // of the frame is the WebSocket header (the payload follows).
    struct PublishOptions {
        uint64_t origin = 0;
        MessageKind kind = MessageKind::kData;
        uint8_t flags = 0;
        uint8_t header_size = 0;
        uint32_t history_size = 0;
        uint32_t history_ttl = 0;
        uint64_t now = 0;
        // Ids given by someone else (the node cluster, realtime_redis), one
        // per group in the order of groups: the group adopts the id's epoch
        // (its history restarts when the epoch changes) and its seq (a seq
        // the group has seen already is delivered but not kept again; a
        // jump leaves a gap that a resume across it reports as lost). An
        // id with seq 0 numbers nothing. Without ids, in a zone whose
        // ClusterState::external_ids is set, a message takes no id and is
        // not kept: there the cluster alone numbers the groups.
        const MessageId* ids = nullptr;
    };
    Published publish(const std::string_view* groups, size_t ngroups, const uint8_t* frame,
                      size_t size, const PublishOptions& options) noexcept;
    Published publish(const std::string_view* groups, size_t ngroups, const uint8_t* frame,
                      size_t size) noexcept {
        return publish(groups, ngroups, frame, size, PublishOptions{});
    }
    Published publish(std::string_view group, const uint8_t* frame, size_t size) noexcept {
        return publish(&group, 1, frame, size, PublishOptions{});
    }

    // History of a group for a client that was at id after (same epoch):
    // the retained messages with seq > after.seq, oldest first, at most max
    // of them in out (with their ids in ids). kOk: they are all it missed
    // (none when it missed nothing); kLost: the history does not cover the
    // gap (another epoch, entries evicted or expired, or no such group), out
    // is empty. Expired entries (expires <= now) are dropped first. With
    // after.epoch == 0 every retained message is given (kOk). When more
    // than max are due, the first max are given (kOk): ask again from the
    // last id given. The kept seqs must run without a gap from after.seq + 1
    // to the group's last_seq (a publish made without history consumed a
    // seq too: the client missed it, kLost). The messages stay valid while
    // the caller holds the lock; a group left with nothing is forgotten.
    enum class HistoryStatus { kOk, kLost };
    HistoryStatus history(std::string_view group, MessageId after, uint64_t now,
                          const ShmMessage** out, MessageId* ids, size_t max,
                          size_t* n) noexcept;

    // Presence across nodes (realtime_redis). `node` is another node's
    // zone_id. present: the node holds the user here now with connections
    // (0: a pending leave there); !present: it does not any more. The
    // first holder anywhere publishes join_frame to the group; the last
    // one going, with no presence here, publishes the stored leave frame.
    // kNoMemory: nothing changed (zone full).
    Status remote_presence(std::string_view group, std::string_view user, uint32_t node,
                           bool present, uint32_t connections, std::string_view info,
                           std::string_view join_frame, std::string_view leave_frame,
                           uint64_t now, SlotSet& wake) noexcept;

    // A snapshot of the other nodes' presence in group: entries not from
    // self become its remote holders; holders not in it are removed, with
    // events for the differences (joins only when a snapshot was applied
    // to the group before: the first one after a subscription tells the
    // existing users quietly, as a joiner here is not told of them either).
    // O(group's presence + entries). kNoMemory: some entries were not kept.
    Status replace_remote_presence(std::string_view group, const RemoteEntry* entries,
                                   size_t n, uint32_t self, uint64_t now,
                                   SlotSet& wake) noexcept;

    // Forgets every remote holder in group, without events (this node no
    // longer follows the group).
    void drop_remote_group(std::string_view group) noexcept;

    // The outbox: f(const PresenceDelta&) for every record then every
    // dirty node, oldest change first where it matters (a record of a
    // forgotten node comes before a new node of the same user), at most max
    // of them (the rest stays for the next call); the marks of those given
    // are cleared. Under the lock; f must not throw. Returns how many.
    template <class F>
    size_t take_presence_outbox(F f, size_t max = SIZE_MAX) noexcept {
        size_t n = 0;
        PresenceGone* list = reverse_gone(root_->gone);  // oldest first
        root_->gone = nullptr;
        while (list && n < max) {
            PresenceGone* next = list->next;
            const char* d = reinterpret_cast<const char*>(list + 1);
            PresenceDelta delta{std::string_view(d, list->group_len),
                                std::string_view(d + list->group_len, list->user_len),
                                {}, {}, {}, false, 0};
            f(delta);
            n++;
            alloc_.deallocate(list);
            list = next;
        }
        if (list) {
            root_->gone = reverse_gone(list);  // newest first again
            return n;
        }
        while (n < max && root_->dirty) {
            PresenceNode* p = root_->dirty;
            unmark_dirty(p);
            bool here = p->connections > 0 || is_pending(p);
            if (!here && !p->announced) {
                continue;
            }
            PresenceDelta delta{p->group->name(), p->user(), p->info(), p->join_frame(),
                                p->leave_frame(), here, p->connections};
            p->announced = here;
            f(delta);
            n++;
        }
        return n;
    }
    bool presence_outbox_empty() const noexcept {
        return root_->dirty == nullptr && root_->gone == nullptr;
    }

    // Marks every (group, user) present here, or announced, as changed: a
    // full resync of this node's presence (after Redis came back). O(all
    // presence).
    void mark_all_presence_dirty(SlotSet& wake) noexcept;

    // Moves a worker's queue (oldest first) to its draining list, clears its
    // wake-up flag and returns the list. The messages stay valid until
    // finish_drain(slot), so the worker reads them without the lock.
    QueueNode* take_queue(uint32_t slot) noexcept;

    // Gives back what take_queue returned: frees the nodes and every
    // message no other worker still holds.
    void finish_drain(uint32_t slot) noexcept;

    // A wake-up could not be sent to slot: clear its flag so the next
    // publish tries again instead of assuming one is pending.
    void wake_failed(uint32_t slot) noexcept { root_->slots[slot].notified = 0; }

private:
    GroupNode* lookup(std::string_view group, uint32_t hash, GroupNode*** link) const noexcept;
    void remove_group(GroupNode* g, GroupNode** link) noexcept;
    void drop_slot_count(GroupNode* g, GroupNode** link, uint32_t slot, uint32_t n) noexcept;
    void release_queue(QueueNode* list) noexcept;
    void leave_members(ConnNode* conn, uint64_t now, SlotSet& wake) noexcept;
    uint32_t distinct(GroupNode* const* found, size_t n) noexcept;
    void note_group_change(GroupNode* g) noexcept;
    GroupNode* obtain_group(std::string_view group) noexcept;
    void unmark_dirty(PresenceNode* p) noexcept;
    bool is_pending(const PresenceNode* p) const noexcept;
    static PresenceGone* reverse_gone(PresenceGone* list) noexcept;
    void remove_holder(PresenceNode* p, RemotePresence** link) noexcept;
    bool end_if_absent(PresenceNode* p, bool events, SlotSet& wake) noexcept;
    RemotePresence** find_holder(PresenceNode* p, uint32_t node) noexcept;
    Status set_holder(GroupNode* g, std::string_view user, uint32_t node, uint32_t connections,
                      std::string_view info, std::string_view join_frame,
                      std::string_view leave_frame, bool events, uint32_t mark,
                      SlotSet& wake) noexcept;

    RegistryRoot* root_;
    Allocator& alloc_;
};

uint32_t hash_group_name(std::string_view name) noexcept;
uint32_t hash_presence(std::string_view group, std::string_view user) noexcept;

}  // namespace realtime
