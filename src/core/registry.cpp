#include "registry.h"

#include <cstring>

#include "group_name.h"

namespace realtime {

uint32_t hash_group_name(std::string_view name) noexcept {
    // FNV-1a: short keys, no adversarial concern beyond chain length, which
    // is bounded by the bucket count chosen from the zone size.
    uint32_t h = 2166136261u;
    for (char c : name) {
        h ^= static_cast<uint8_t>(c);
        h *= 16777619u;
    }
    return h;
}

uint32_t hash_presence(std::string_view group, std::string_view user) noexcept {
    // FNV-1a over the group, a 0 byte (no valid name holds one), the user.
    uint32_t h = hash_group_name(group);
    h *= 16777619u;  // the 0 byte: h ^= 0 changes nothing
    for (char c : user) {
        h ^= static_cast<uint8_t>(c);
        h *= 16777619u;
    }
    return h;
}

namespace {

// A message's ids follow it: it must end where a MessageId may start, and
// so must the blocks the allocator gives (nginx's slab aligns to 8 or more).
static_assert(sizeof(ShmMessage) % alignof(MessageId) == 0, "ids after ShmMessage misaligned");
static_assert(alignof(ShmMessage) >= alignof(MessageId), "ShmMessage less aligned than its ids");

// PresenceNode::leave_at of a node created by a join still in progress:
// its join event is not published yet (see commit_membership). Never a real
// deadline; every other node with connections holds 0.
constexpr uint64_t kNewPresence = UINT64_MAX;

GroupNode* find_group(const RegistryRoot* root, std::string_view name, uint32_t hash) noexcept {
    for (GroupNode* g = root->buckets[hash & root->bucket_mask]; g; g = g->next) {
        if (g->hash == hash && g->name() == name) {
            return g;
        }
    }
    return nullptr;
}

PresenceNode* find_presence(const RegistryRoot* root, const GroupNode* g, std::string_view user,
                            uint32_t hash) noexcept {
    for (PresenceNode* p = root->presence_buckets[hash & root->bucket_mask]; p;
         p = p->hash_next) {
        if (p->hash == hash && p->group == g && p->user() == user) {
            return p;
        }
    }
    return nullptr;
}

// A group node stays while anything holds it: subscribers, presence
// nodes (pending leaves included) or history entries.
bool group_unused(const GroupNode* g) noexcept {
    return g->subscribers == 0 && g->presence == nullptr && g->hist_head == nullptr;
}

GroupNode** group_link(RegistryRoot* root, const GroupNode* g) noexcept {
    GroupNode** link = &root->buckets[g->hash & root->bucket_mask];
    while (*link != g) {
        link = &(*link)->next;
    }
    return link;
}

void free_group(RegistryRoot* root, Allocator& alloc, GroupNode* g, GroupNode** link) noexcept {
    *link = g->next;
    if (g->slots) {
        alloc.deallocate(g->slots);
    }
    alloc.deallocate(g);
    root->groups--;
}

// Forgets g if nothing holds it any more; true when it did.
bool collect_group(RegistryRoot* root, Allocator& alloc, GroupNode* g) noexcept {
    if (!group_unused(g)) {
        return false;
    }
    free_group(root, alloc, g, group_link(root, g));
    return true;
}

// The epoch of a group node being created (never 0: MessageId{0, ...}
// means no id).
uint64_t next_epoch(RegistryRoot* root) noexcept {
    if (++root->group_epochs == 0) {
        ++root->group_epochs;
    }
    return uint64_t{root->zone_id} << 32 | root->group_epochs;
}

void release_message(Allocator& alloc, ShmMessage* m) noexcept {
    if (--m->refs == 0) {
        alloc.deallocate(m);
    }
}

bool expired(const HistEntry* e, uint64_t now) noexcept {
    return e->expires != 0 && e->expires <= now;
}

// Unlists e (prev: its predecessor in its group's list, nullptr when it is
// the head) from its group and from the zone-wide list, drops its message
// reference and frees it. The group stays: the caller collects it.
void drop_entry(RegistryRoot* root, Allocator& alloc, HistEntry* prev, HistEntry* e) noexcept {
    GroupNode* g = e->group;
    if (prev) {
        prev->next = e->next;
    } else {
        g->hist_head = e->next;
    }
    if (g->hist_tail == e) {
        g->hist_tail = prev;
    }
    g->hist_count--;
    if (e->all_prev) {
        e->all_prev->all_next = e->all_next;
    } else {
        root->hist_head = e->all_next;
    }
    if (e->all_next) {
        e->all_next->all_prev = e->all_prev;
    } else {
        root->hist_tail = e->all_prev;
    }
    root->hist_entries--;
    release_message(alloc, e->message);
    alloc.deallocate(e);
}

// Drops g's oldest entries while it keeps more than size or the oldest has
// expired at now. The group stays: the caller collects it.
void trim_history(RegistryRoot* root, Allocator& alloc, GroupNode* g, uint64_t size,
                  uint64_t now) noexcept {
    while (g->hist_head && (g->hist_count > size || expired(g->hist_head, now))) {
        drop_entry(root, alloc, nullptr, g->hist_head);
    }
}

// Drops every expired entry of g, wherever it is in the list (entries kept
// with different TTLs do not expire in order). The group stays.
void drop_expired(RegistryRoot* root, Allocator& alloc, GroupNode* g, uint64_t now) noexcept {
    HistEntry* prev = nullptr;
    HistEntry* e = g->hist_head;
    while (e) {
        HistEntry* next = e->next;
        if (expired(e, now)) {
            drop_entry(root, alloc, prev, e);
        } else {
            prev = e;
        }
        e = next;
    }
}

// Drops every history entry of g (its epoch changed). The group stays.
void drop_history(RegistryRoot* root, Allocator& alloc, GroupNode* g) noexcept {
    while (g->hist_head) {
        drop_entry(root, alloc, nullptr, g->hist_head);
    }
}

// The id a publish gives g, the i-th of its groups: g's own numbering, the
// one options.ids gives (the cluster's), or none. *fresh: the id is new to
// g, so the message may be kept in its history.
MessageId assign_id(RegistryRoot* root, Allocator& alloc, GroupNode* g,
                    const Registry::PublishOptions& options, size_t i, bool* fresh) noexcept {
    *fresh = false;
    if (options.ids == nullptr) {
        if (root->cluster.external_ids) {
            return MessageId{0, 0};
        }
        *fresh = true;
        return MessageId{g->epoch, ++g->last_seq};
    }
    MessageId id = options.ids[i];
    if (id.epoch == 0 || id.seq == 0) {
        return MessageId{0, 0};
    }
    if (g->epoch != id.epoch) {
        // Another numbering (the cluster's group was new, or its history
        // was lost): what was kept here belongs to the old one.
        drop_history(root, alloc, g);
        g->epoch = id.epoch;
        g->last_seq = id.seq;
        *fresh = true;
        return id;
    }
    if (id.seq <= g->last_seq) {
        return id;  // seen already: delivered, not kept twice
    }
    g->last_seq = id.seq;  // a jump past last_seq + 1 leaves a gap
    *fresh = true;
    return id;
}

bool valid_spec(const PresenceSpec& s) noexcept {
    return !s.user.empty() && s.user.size() <= kMaxPresenceUser &&
           s.info.size() <= kMaxPresenceInfo && s.leave_frame.size() <= UINT32_MAX &&
           s.join_frame.size() <= UINT32_MAX;
}

size_t presence_size(const PresenceSpec& s) noexcept {
    return sizeof(PresenceNode) + s.user.size() + s.info.size() + s.leave_frame.size() +
           s.join_frame.size();
}

// Fills a fresh block (presence_size(spec) bytes) as the node of spec's
// user in g with one connection, and lists it in g and in the table.
PresenceNode* init_presence(RegistryRoot* root, void* block, GroupNode* g,
                            const PresenceSpec& spec, uint32_t hash) noexcept {
    auto* p = static_cast<PresenceNode*>(block);
    std::memset(p, 0, sizeof(PresenceNode));
    p->group = g;
    p->leave_at = kNewPresence;
    p->hash = hash;
    p->connections = 1;
    p->leave_delay = spec.leave_delay;
    p->leave_size = static_cast<uint32_t>(spec.leave_frame.size());
    p->join_size = static_cast<uint32_t>(spec.join_frame.size());
    p->user_len = static_cast<uint16_t>(spec.user.size());
    p->info_len = static_cast<uint16_t>(spec.info.size());
    char* d = reinterpret_cast<char*>(p + 1);
    if (!spec.user.empty()) {
        std::memcpy(d, spec.user.data(), spec.user.size());
    }
    if (!spec.info.empty()) {
        std::memcpy(d + spec.user.size(), spec.info.data(), spec.info.size());
    }
    if (!spec.leave_frame.empty()) {
        std::memcpy(d + spec.user.size() + spec.info.size(), spec.leave_frame.data(),
                    spec.leave_frame.size());
    }
    if (!spec.join_frame.empty()) {
        std::memcpy(d + spec.user.size() + spec.info.size() + spec.leave_frame.size(),
                    spec.join_frame.data(), spec.join_frame.size());
    }

    p->prev = g->presence_tail;
    if (g->presence_tail) {
        g->presence_tail->next = p;
    } else {
        g->presence = p;
    }
    g->presence_tail = p;
    g->present++;

    PresenceNode** bucket = &root->presence_buckets[hash & root->bucket_mask];
    p->hash_next = *bucket;
    *bucket = p;
    return p;
}

bool is_pending(const RegistryRoot* root, const PresenceNode* p) noexcept {
    return p->leaving_prev != nullptr || root->leaving == p;
}

void add_pending(RegistryRoot* root, PresenceNode* p) noexcept {
    // At the head: the list's tail is the oldest (see sweep_presence).
    p->leaving_prev = nullptr;
    p->leaving_next = root->leaving;
    if (root->leaving) {
        root->leaving->leaving_prev = p;
    }
    root->leaving = p;
}

void remove_pending(RegistryRoot* root, PresenceNode* p) noexcept {
    if (p->leaving_prev) {
        p->leaving_prev->leaving_next = p->leaving_next;
    } else {
        root->leaving = p->leaving_next;
    }
    if (p->leaving_next) {
        p->leaving_next->leaving_prev = p->leaving_prev;
    }
    p->leaving_prev = nullptr;
    p->leaving_next = nullptr;
}

// The subscriber drains the outbox: it is woken when the outbox gains its
// first entry (and looks every 100 ms anyway).
void wake_drainer(RegistryRoot* root, SlotSet* wake) noexcept {
    if (wake && root->dirty == nullptr && root->gone == nullptr && root->cluster.election.owner &&
        root->cluster.election.slot < kMaxWorkerSlots) {
        wake->set(root->cluster.election.slot);
    }
}

// p's local state changed: on the outbox (once), when the zone has one.
void mark_dirty(RegistryRoot* root, PresenceNode* p, SlotSet* wake) noexcept {
    if (!root->cluster.presence_outbox || p->dirty) {
        return;
    }
    wake_drainer(root, wake);
    p->dirty = 1;
    p->dirty_prev = nullptr;
    p->dirty_next = root->dirty;
    if (root->dirty) {
        root->dirty->dirty_prev = p;
    }
    root->dirty = p;
}

void unlink_dirty(RegistryRoot* root, PresenceNode* p) noexcept {
    if (!p->dirty) {
        return;
    }
    if (p->dirty_prev) {
        p->dirty_prev->dirty_next = p->dirty_next;
    } else {
        root->dirty = p->dirty_next;
    }
    if (p->dirty_next) {
        p->dirty_next->dirty_prev = p->dirty_prev;
    }
    p->dirty_prev = nullptr;
    p->dirty_next = nullptr;
    p->dirty = 0;
}

// Unlists and frees a node that is not pending (its remote holders too).
// One whose presence here was told to the other nodes leaves a record on
// the outbox so they are told it is gone. Its group stays: the caller
// removes it when nothing else holds it.
void delete_presence(RegistryRoot* root, Allocator& alloc, PresenceNode* p,
                     SlotSet* wake = nullptr) noexcept {
    GroupNode* g = p->group;
    while (RemotePresence* h = p->remote) {
        p->remote = h->next;
        alloc.deallocate(h);
        g->remote--;
        root->stats.presence_remote--;
    }
    unlink_dirty(root, p);
    if (p->announced && root->cluster.presence_outbox) {
        std::string_view name = g->name();
        std::string_view user = p->user();
        auto* r = static_cast<PresenceGone*>(
            alloc.allocate(sizeof(PresenceGone) + name.size() + user.size()));
        if (r == nullptr) {
            root->stats.presence_outbox_lost++;
        } else {
            wake_drainer(root, wake);
            r->group_len = static_cast<uint16_t>(name.size());
            r->user_len = static_cast<uint16_t>(user.size());
            std::memcpy(r + 1, name.data(), name.size());
            std::memcpy(reinterpret_cast<char*>(r + 1) + name.size(), user.data(), user.size());
            r->next = root->gone;
            root->gone = r;
        }
    }
    if (p->prev) {
        p->prev->next = p->next;
    } else {
        g->presence = p->next;
    }
    if (p->next) {
        p->next->prev = p->prev;
    } else {
        g->presence_tail = p->prev;
    }
    g->present--;
    PresenceNode** link = &root->presence_buckets[p->hash & root->bucket_mask];
    while (*link != p) {
        link = &(*link)->hash_next;
    }
    *link = p->hash_next;
    alloc.deallocate(p);
}

// Publishes a presence event to g (data, no origin), adding its wake-ups
// to wake and counting it in counter, or as lost when the zone is full.
// An empty frame is no event: nothing is published or counted.
void publish_event(Registry& reg, RegistryRoot* root, const GroupNode* g, std::string_view frame,
                   SlotSet& wake, uint64_t& counter) noexcept {
    if (frame.empty()) {
        return;
    }
    std::string_view name = g->name();
    // A presence event is a server WebSocket frame (unmasked): its payload,
    // which envelopes and event streams carry, follows a 2, 4 or 10 byte
    // header, as the length's form says.
    Registry::PublishOptions options;
    if (frame.size() >= 2) {
        uint8_t len7 = static_cast<uint8_t>(frame[1]) & 0x7f;
        options.header_size = len7 < 126 ? 2 : len7 == 126 ? 4 : 10;
    }
    Registry::Published r = reg.publish(&name, 1, reinterpret_cast<const uint8_t*>(frame.data()),
                                        frame.size(), options);
    if (r.status != Registry::Status::kOk) {
        root->stats.presence_events_lost++;
        return;
    }
    counter++;
    for (size_t i = 0; i < kMaxWorkerSlots / 64; ++i) {
        wake.bits[i] |= r.wake.bits[i];
    }
}

// Adds one membership of conn (already in its slot's list): the member
// node, the subscription and, with a presence spec, the user's count there
// (a new node is marked kNewPresence; a pending one stays listed as such
// until join_commit). All or nothing: every allocation comes before any
// change, so a refusal leaves nothing to undo. A group conn is already a
// member of through this join (the head of its member list) is skipped.
Registry::Status add_membership(Registry& reg, RegistryRoot* root, Allocator& alloc,
                                ConnNode* conn, const JoinGroup& jg) noexcept {
    const PresenceSpec* spec = jg.presence;
    if (spec && !valid_spec(*spec)) {
        return Registry::Status::kNoMemory;
    }
    uint32_t ghash = hash_group_name(jg.name);
    GroupNode* g = find_group(root, jg.name, ghash);
    if (g && g->members && g->members->conn == conn) {
        return Registry::Status::kOk;  // named twice: joined once
    }
    uint32_t phash = spec ? hash_presence(jg.name, spec->user) : 0;
    PresenceNode* p = (spec && g) ? find_presence(root, g, spec->user, phash) : nullptr;

    auto* m = static_cast<MemberNode*>(alloc.allocate(sizeof(MemberNode)));
    if (m == nullptr) {
        return Registry::Status::kNoMemory;
    }
    void* block = nullptr;
    if (spec && p == nullptr) {
        block = alloc.allocate(presence_size(*spec));
        if (block == nullptr) {
            alloc.deallocate(m);
            return Registry::Status::kNoMemory;
        }
    }
    if (reg.subscribe(jg.name, conn->slot) != Registry::Status::kOk) {
        if (block) {
            alloc.deallocate(block);
        }
        alloc.deallocate(m);
        return Registry::Status::kNoMemory;
    }
    g = find_group(root, jg.name, ghash);  // created by subscribe if it was not there

    if (block) {
        p = init_presence(root, block, g, *spec, phash);
    } else if (p) {
        if (p->connections == 0 && !is_pending(root, p)) {
            p->leave_delay = spec->leave_delay;  // remote-only so far
        }
        p->connections++;  // from 0: a pending leave, cancelled at commit,
                           // or a user held by other nodes only (no event)
    }

    m->group = g;
    m->conn = conn;
    m->presence = p;
    m->prev = nullptr;
    m->next = g->members;
    if (g->members) {
        g->members->prev = m;
    }
    g->members = m;
    g->nmembers++;
    m->next_of_conn = conn->groups;
    conn->groups = m;
    return Registry::Status::kOk;
}

// A join succeeded: for jg's membership (the head of the group's member
// list), cancels the user's pending leave or publishes the user's join.
void commit_membership(Registry& reg, RegistryRoot* root, ConnNode* conn, const JoinGroup& jg,
                       SlotSet& wake) noexcept {
    if (jg.presence == nullptr) {
        return;
    }
    GroupNode* g = find_group(root, jg.name, hash_group_name(jg.name));
    if (g == nullptr || g->members == nullptr || g->members->conn != conn) {
        return;
    }
    PresenceNode* p = g->members->presence;
    if (p == nullptr) {
        return;  // named twice, first without presence: untracked
    }
    mark_dirty(root, p, &wake);
    if (is_pending(root, p)) {
        remove_pending(root, p);  // came back in time: no event at all
        p->leave_at = 0;
    } else if (p->leave_at == kNewPresence) {
        p->leave_at = 0;
        publish_event(reg, root, g, jg.presence->join_frame, wake,
                      root->stats.presence_joins);
    }
}

// A join failed: undoes the presence counts of conn's memberships so that
// dropping them afterwards publishes nothing.
void rollback_presence(RegistryRoot* root, Allocator& alloc, ConnNode* conn) noexcept {
    for (MemberNode* m = conn->groups; m; m = m->next_of_conn) {
        PresenceNode* p = m->presence;
        if (p == nullptr) {
            continue;
        }
        m->presence = nullptr;
        if (p->leave_at == kNewPresence) {
            delete_presence(root, alloc, p);  // the member still holds the group
        } else {
            p->connections--;  // back to 0 for a pending one, still listed
        }
    }
}

template <class Get>
ConnNode* join_impl(Registry& reg, RegistryRoot* root, Allocator& alloc, size_t ngroups, Get get,
                    uint32_t slot, SlotSet& wake) noexcept {
    auto* conn = static_cast<ConnNode*>(alloc.allocate(sizeof(ConnNode)));
    if (conn == nullptr) {
        return nullptr;
    }
    std::memset(conn, 0, sizeof(ConnNode));
    conn->slot = slot;
    WorkerSlot& w = root->slots[slot];
    conn->next = w.conns;
    if (w.conns) {
        w.conns->prev = conn;
    }
    w.conns = conn;

    for (size_t i = 0; i < ngroups; ++i) {
        if (add_membership(reg, root, alloc, conn, get(i)) != Registry::Status::kOk) {
            rollback_presence(root, alloc, conn);
            reg.leave(conn);  // no presence left: no event
            return nullptr;
        }
    }
    conn->id = ++root->conn_ids;
    for (size_t i = 0; i < ngroups; ++i) {
        commit_membership(reg, root, conn, get(i), wake);
    }
    return conn;
}

}  // namespace

RegistryRoot* Registry::create(Allocator& alloc, size_t buckets) noexcept {
    size_t n = 16;
    while (n < buckets && n < (size_t{1} << 24)) {
        n <<= 1;
    }
    auto* root = static_cast<RegistryRoot*>(alloc.allocate(sizeof(RegistryRoot)));
    if (root == nullptr) {
        return nullptr;
    }
    std::memset(root, 0, sizeof(RegistryRoot));
    root->layout = kRegistryLayout;
    root->buckets = static_cast<GroupNode**>(alloc.allocate(sizeof(GroupNode*) * n));
    if (root->buckets == nullptr) {
        alloc.deallocate(root);
        return nullptr;
    }
    std::memset(root->buckets, 0, sizeof(GroupNode*) * n);
    root->presence_buckets =
        static_cast<PresenceNode**>(alloc.allocate(sizeof(PresenceNode*) * n));
    if (root->presence_buckets == nullptr) {
        alloc.deallocate(root->buckets);
        alloc.deallocate(root);
        return nullptr;
    }
    std::memset(root->presence_buckets, 0, sizeof(PresenceNode*) * n);
    root->bucket_mask = static_cast<uint32_t>(n - 1);
    return root;
}

int Registry::claim_slot(int32_t pid) noexcept {
    for (uint32_t i = 0; i < kMaxWorkerSlots; ++i) {
        WorkerSlot& s = root_->slots[i];
        if (s.pid == 0) {
            std::memset(&s, 0, sizeof(s));
            s.pid = pid;
            s.owner = ++root_->claims;
            return static_cast<int>(i);
        }
    }
    return -1;
}

bool Registry::release_slot_of(uint32_t slot, uint64_t owner, uint64_t now,
                               SlotSet& wake) noexcept {
    if (slot >= kMaxWorkerSlots || root_->slots[slot].pid == 0 ||
        root_->slots[slot].owner != owner) {
        return false;
    }
    release_slot(slot, now, wake);
    return true;
}

void Registry::release_slot(uint32_t slot, uint64_t now, SlotSet& wake) noexcept {
    // Its connections leave as if they had closed: their users' leave
    // events go to the other workers (or wait for their delay).
    while (root_->slots[slot].conns) {
        leave(root_->slots[slot].conns, now, wake);
    }
    finish_drain(slot);
    take_queue(slot);
    finish_drain(slot);

    // Remove the slot's share from every group; the walk is over groups,
    // which is rare work (a worker exits or died). A group that keeps
    // presence nodes (pending leaves) or history stays, even with no
    // subscriber.
    for (uint32_t b = 0; b <= root_->bucket_mask; ++b) {
        GroupNode** link = &root_->buckets[b];
        while (*link) {
            GroupNode* g = *link;
            uint32_t n = 0;
            for (uint16_t i = 0; i < g->nslots; ++i) {
                if (g->slots[i].slot == slot) {
                    n = g->slots[i].count;
                }
            }
            if (n) {
                drop_slot_count(g, link, slot, n);
                if (*link != g) {
                    continue;  // g was removed; *link is already the next one
                }
            }
            link = &g->next;
        }
    }
    std::memset(&root_->slots[slot], 0, sizeof(WorkerSlot));
    wake.bits[slot / 64] &= ~(uint64_t{1} << (slot % 64));  // nobody there to wake
}

GroupNode* Registry::lookup(std::string_view group, uint32_t hash,
                            GroupNode*** link) const noexcept {
    GroupNode** l = &root_->buckets[hash & root_->bucket_mask];
    while (*l) {
        GroupNode* g = *l;
        if (g->hash == hash && g->name() == group) {
            if (link) {
                *link = l;
            }
            return g;
        }
        l = &g->next;
    }
    if (link) {
        *link = l;
    }
    return nullptr;
}

const GroupNode* Registry::find(std::string_view group) const noexcept {
    return lookup(group, hash_group_name(group), nullptr);
}

uint32_t Registry::subscribers(std::string_view group) const noexcept {
    const GroupNode* g = find(group);
    return g ? g->subscribers : 0;
}

Registry::Status Registry::subscribe(std::string_view group, uint32_t slot) noexcept {
    uint32_t hash = hash_group_name(group);
    GroupNode** link;
    GroupNode* g = lookup(group, hash, &link);
    bool created = false;

    if (g == nullptr) {
        g = static_cast<GroupNode*>(alloc_.allocate(sizeof(GroupNode) + group.size()));
        if (g == nullptr) {
            return Status::kNoMemory;
        }
        std::memset(g, 0, sizeof(GroupNode));
        g->hash = hash;
        g->name_len = static_cast<uint16_t>(group.size());
        std::memcpy(g + 1, group.data(), group.size());
        created = true;
    }

    SlotCount* sc = nullptr;
    for (uint16_t i = 0; i < g->nslots; ++i) {
        if (g->slots[i].slot == slot) {
            sc = &g->slots[i];
        }
    }
    if (sc == nullptr) {
        if (g->nslots == g->capacity) {
            uint16_t cap = g->capacity ? static_cast<uint16_t>(g->capacity * 2) : 2;
            auto* slots = static_cast<SlotCount*>(alloc_.allocate(sizeof(SlotCount) * cap));
            if (slots == nullptr) {
                if (created) {
                    alloc_.deallocate(g);
                }
                return Status::kNoMemory;
            }
            if (g->nslots) {
                std::memcpy(slots, g->slots, sizeof(SlotCount) * g->nslots);
            }
            if (g->slots) {
                alloc_.deallocate(g->slots);
            }
            g->slots = slots;
            g->capacity = cap;
        }
        sc = &g->slots[g->nslots++];
        sc->slot = slot;
        sc->count = 0;
    }

    sc->count++;
    if (g->subscribers++ == 0) {
        note_group_change(g);
    }
    if (created) {
        g->epoch = next_epoch(root_);
        *link = g;
        root_->groups++;
    }
    return Status::kOk;
}

// g's subscriber count went from 0 to 1 or back: the counter moves, and
// where the node's subscriber asked for it the group is listed (once).
void Registry::note_group_change(GroupNode* g) noexcept {
    __atomic_add_fetch(&root_->cluster.group_changes, 1, __ATOMIC_RELEASE);
    ClusterState& cs = root_->cluster;
    if (!cs.track_changes || g->change_listed) {
        return;
    }
    auto* c = static_cast<ChangedGroup*>(alloc_.allocate(sizeof(ChangedGroup) + g->name_len));
    if (c == nullptr) {
        cs.changes_lost = 1;  // the subscriber walks every group instead
        return;
    }
    c->name_len = g->name_len;
    std::memcpy(c + 1, g->name().data(), g->name_len);
    c->next = cs.changed;
    cs.changed = c;
    g->change_listed = 1;
}

void Registry::remove_group(GroupNode* g, GroupNode** link) noexcept {
    free_group(root_, alloc_, g, link);
}

void Registry::drop_slot_count(GroupNode* g, GroupNode** link, uint32_t slot,
                               uint32_t n) noexcept {
    for (uint16_t i = 0; i < g->nslots; ++i) {
        SlotCount& sc = g->slots[i];
        if (sc.slot != slot) {
            continue;
        }
        if (n > sc.count) {
            n = sc.count;
        }
        sc.count -= n;
        g->subscribers -= n;
        if (n && g->subscribers == 0) {
            note_group_change(g);
        }
        if (sc.count == 0) {
            g->slots[i] = g->slots[--g->nslots];
        }
        break;
    }
    if (group_unused(g)) {
        remove_group(g, link);  // pending leaves keep it for their event,
                                // history for the clients that come back
    }
}

void Registry::unsubscribe(std::string_view group, uint32_t slot) noexcept {
    GroupNode** link;
    GroupNode* g = lookup(group, hash_group_name(group), &link);
    if (g) {
        drop_slot_count(g, link, slot, 1);
    }
}

ConnNode* Registry::join(const JoinGroup* groups, size_t ngroups, uint32_t slot,
                         SlotSet& wake) noexcept {
    return join_impl(*this, root_, alloc_, ngroups, [groups](size_t i) { return groups[i]; },
                     slot, wake);
}

ConnNode* Registry::join(const std::string_view* groups, size_t ngroups,
                         uint32_t slot) noexcept {
    SlotSet wake;  // no presence: no event
    return join_impl(
        *this, root_, alloc_, ngroups, [groups](size_t i) { return JoinGroup{groups[i], nullptr}; },
        slot, wake);
}

void Registry::leave_members(ConnNode* conn, uint64_t now, SlotSet& wake) noexcept {
    while (MemberNode* m = conn->groups) {
        conn->groups = m->next_of_conn;
        GroupNode* g = m->group;
        PresenceNode* p = m->presence;
        if (m->prev) {
            m->prev->next = m->next;
        } else {
            g->members = m->next;
        }
        if (m->next) {
            m->next->prev = m->prev;
        }
        g->nmembers--;
        alloc_.deallocate(m);
        GroupNode** link;
        lookup(g->name(), g->hash, &link);
        drop_slot_count(g, link, conn->slot, 1);  // frees g only if p is null
                                                  // (and g keeps no history)
        if (p == nullptr) {
            continue;
        }
        mark_dirty(root_, p, &wake);
        if (--p->connections > 0) {
            continue;
        }
        if (p->leave_delay) {
            p->leave_at = now + p->leave_delay;
            add_pending(root_, p);
            continue;
        }
        if (p->remote) {
            continue;  // still present on other nodes: no event, remote-only
        }
        // The membership is gone already: the leaver is not told, the
        // group's other connections are.
        publish_event(*this, root_, g, p->leave_frame(), wake, root_->stats.presence_leaves);
        delete_presence(root_, alloc_, p, &wake);
        collect_group(root_, alloc_, g);
    }
}

void Registry::leave(ConnNode* conn, uint64_t now, SlotSet& wake) noexcept {
    leave_members(conn, now, wake);
    WorkerSlot& w = root_->slots[conn->slot];
    if (conn->prev) {
        conn->prev->next = conn->next;
    } else {
        w.conns = conn->next;
    }
    if (conn->next) {
        conn->next->prev = conn->prev;
    }
    alloc_.deallocate(conn);
}

Registry::Status Registry::add_member(ConnNode* conn, const JoinGroup& group, SlotSet& wake,
                                      bool* added) noexcept {
    if (added) {
        *added = false;
    }
    if (is_member(conn, group.name)) {
        return Status::kOk;
    }
    if (add_membership(*this, root_, alloc_, conn, group) != Status::kOk) {
        return Status::kNoMemory;
    }
    commit_membership(*this, root_, conn, group, wake);
    if (added) {
        *added = true;
    }
    return Status::kOk;
}

bool Registry::remove_member(ConnNode* conn, std::string_view group, uint64_t now,
                             SlotSet& wake) noexcept {
    MemberNode** link = &conn->groups;
    while (*link && (*link)->group->name() != group) {
        link = &(*link)->next_of_conn;
    }
    MemberNode* m = *link;
    if (m == nullptr) {
        return false;
    }
    // Drop it alone: leave_members on a list of just m.
    *link = m->next_of_conn;
    MemberNode* rest = conn->groups;
    m->next_of_conn = nullptr;
    conn->groups = m;
    leave_members(conn, now, wake);
    conn->groups = rest;
    return true;
}

bool Registry::is_member(const ConnNode* conn, std::string_view group) const noexcept {
    for (const MemberNode* m = conn->groups; m; m = m->next_of_conn) {
        if (m->group->name() == group) {
            return true;
        }
    }
    return false;
}

uint64_t Registry::sweep_presence(uint64_t now, SlotSet& wake) noexcept {
    // Oldest first: the list grows at its head, so walk back from its tail.
    PresenceNode* p = root_->leaving;
    if (p == nullptr) {
        return 0;
    }
    while (p->leaving_next) {
        p = p->leaving_next;
    }
    uint64_t earliest = 0;
    while (p) {
        PresenceNode* older = p->leaving_prev;
        if (p->leave_at > now) {
            if (earliest == 0 || p->leave_at < earliest) {
                earliest = p->leave_at;
            }
            p = older;
            continue;
        }
        GroupNode* g = p->group;
        remove_pending(root_, p);
        p->leave_at = 0;
        mark_dirty(root_, p, &wake);
        if (p->remote == nullptr) {  // else still present on other nodes
            publish_event(*this, root_, g, p->leave_frame(), wake,
                          root_->stats.presence_leaves);
            delete_presence(root_, alloc_, p, &wake);
            collect_group(root_, alloc_, g);
        }
        p = older;
    }
    return earliest;
}

const PresenceNode* Registry::presence(std::string_view group,
                                       std::string_view user) const noexcept {
    const GroupNode* g = lookup(group, hash_group_name(group), nullptr);
    if (g == nullptr) {
        return nullptr;
    }
    return find_presence(root_, g, user, hash_presence(group, user));
}

// Connections in any of found[0..n) (distinct groups, none null), each
// once. The largest group is taken by its count; the members of the others
// are walked, marked so each is seen once, and counted unless they are in
// the largest one too. Subscriptions made without join() have no member
// record and are counted as they are.
uint32_t Registry::distinct(GroupNode* const* found, size_t n) noexcept {
    size_t largest = 0;
    for (size_t i = 1; i < n; ++i) {
        if (found[i]->subscribers > found[largest]->subscribers) {
            largest = i;
        }
    }
    const GroupNode* big = found[largest];
    uint64_t mark = ++root_->marks;
    uint32_t count = big->subscribers;
    for (size_t i = 0; i < n; ++i) {
        if (i == largest) {
            continue;
        }
        count += found[i]->subscribers - found[i]->nmembers;
        for (MemberNode* m = found[i]->members; m; m = m->next) {
            ConnNode* c = m->conn;
            if (c->mark == mark) {
                continue;
            }
            c->mark = mark;
            bool in_big = false;
            for (MemberNode* o = c->groups; o; o = o->next_of_conn) {
                if (o->group == big) {
                    in_big = true;
                    break;
                }
            }
            if (!in_big) {
                count++;
            }
        }
    }
    return count;
}

Registry::Published Registry::publish(const std::string_view* groups, size_t ngroups,
                                      const uint8_t* frame, size_t size,
                                      const PublishOptions& options) noexcept {
    Published res{Status::kOk, 0, {}};

    constexpr size_t kMaxGroups = kMaxGroupsPerMessage;  // checked by the API
    if (ngroups > kMaxGroups) {
        res.status = Status::kNoMemory;
        return res;
    }
    const bool keep = options.history_size > 0 && ngroups > 0;  // no group: nothing to keep

    // Each name counts once: first[i] is the index of the first occurrence
    // of groups[i], and only that one is looked up, numbered and kept.
    uint32_t hashes[kMaxGroups];
    size_t first[kMaxGroups];
    size_t names_size = 0;
    size_t ndistinct = 0;
    for (size_t i = 0; i < ngroups; ++i) {
        hashes[i] = hash_group_name(groups[i]);
        names_size += 1 + groups[i].size();
        first[i] = i;
        for (size_t j = 0; j < i; ++j) {
            if (first[j] == j && hashes[j] == hashes[i] && groups[j] == groups[i]) {
                first[i] = j;
                break;
            }
        }
        if (first[i] == i) {
            ndistinct++;
        }
    }
    const size_t message_size =
        sizeof(ShmMessage) + sizeof(MessageId) * ngroups + size + names_size;

    // Allocate everything first, linking nothing, so a full zone leaves no
    // trace: the message, one queue node per worker, and with history one
    // entry per group and the nodes of the groups that have none. When an
    // allocation fails, free the attempt, evict the oldest history entry of
    // the zone and try again, until it fits or no history is left. No seq,
    // epoch or number is taken before the attempt succeeds.
    GroupNode* node[kMaxGroups];  // per first occurrence: its node, or nullptr
    bool created[kMaxGroups];     // allocated by this attempt, not linked yet
    SlotSet slots;                // workers that get the message, each once
    size_t nodes_needed;
    ShmMessage* m;
    QueueNode* nodes;
    HistEntry* entries;
    for (;;) {
        slots = SlotSet{};
        nodes_needed = 0;
        m = nullptr;
        nodes = nullptr;
        entries = nullptr;
        bool ok = true;
        for (size_t i = 0; i < ngroups; ++i) {
            node[i] = nullptr;
            created[i] = false;
            if (first[i] != i) {
                continue;
            }
            // Looked up again on every attempt: an eviction may have
            // forgotten a group.
            GroupNode* g = lookup(groups[i], hashes[i], nullptr);
            if (g) {
                node[i] = g;
                for (uint16_t j = 0; j < g->nslots; ++j) {
                    uint32_t slot = g->slots[j].slot;
                    if (!slots.test(slot)) {
                        slots.set(slot);
                        nodes_needed++;
                    }
                }
                continue;
            }
            if (!keep || !ok) {
                continue;
            }
            g = static_cast<GroupNode*>(alloc_.allocate(sizeof(GroupNode) + groups[i].size()));
            if (g == nullptr) {
                ok = false;
                continue;
            }
            std::memset(g, 0, sizeof(GroupNode));
            g->hash = hashes[i];
            g->name_len = static_cast<uint16_t>(groups[i].size());
            std::memcpy(g + 1, groups[i].data(), groups[i].size());
            node[i] = g;
            created[i] = true;
        }
        if (!keep && nodes_needed == 0) {
            // Nobody listens and nothing is kept: nothing to store. A group
            // that has a node still numbers it, so a client of that group
            // that comes back learns that it missed a message.
            for (size_t i = 0; i < ngroups; ++i) {
                if (node[i]) {
                    bool fresh;
                    (void)assign_id(root_, alloc_, node[i], options, i, &fresh);
                }
            }
            root_->stats.messages_published++;
            return res;
        }
        if (ok) {
            m = static_cast<ShmMessage*>(alloc_.allocate(message_size));
            ok = m != nullptr;
        }
        for (size_t k = 0; ok && k < nodes_needed; ++k) {
            auto* q = static_cast<QueueNode*>(alloc_.allocate(sizeof(QueueNode)));
            if (q == nullptr) {
                ok = false;
                break;
            }
            q->next = nodes;
            nodes = q;
        }
        for (size_t k = 0; ok && keep && k < ndistinct; ++k) {
            auto* e = static_cast<HistEntry*>(alloc_.allocate(sizeof(HistEntry)));
            if (e == nullptr) {
                ok = false;
                break;
            }
            e->next = entries;
            entries = e;
        }
        if (ok) {
            break;
        }

        while (nodes) {
            QueueNode* next = nodes->next;
            alloc_.deallocate(nodes);
            nodes = next;
        }
        while (entries) {
            HistEntry* next = entries->next;
            alloc_.deallocate(entries);
            entries = next;
        }
        if (m) {
            alloc_.deallocate(m);
        }
        for (size_t i = 0; i < ngroups; ++i) {
            if (created[i]) {
                alloc_.deallocate(node[i]);
            }
        }

        HistEntry* oldest = root_->hist_head;
        if (oldest == nullptr) {
            // Nothing left to evict. Groups of this message that evictions
            // emptied were kept for it: forget them now.
            for (size_t i = 0; i < ngroups; ++i) {
                if (first[i] == i) {
                    if (GroupNode* g = lookup(groups[i], hashes[i], nullptr)) {
                        collect_group(root_, alloc_, g);
                    }
                }
            }
            root_->stats.publish_rejected_full++;
            res.status = Status::kNoMemory;
            return res;
        }
        GroupNode* g = oldest->group;  // oldest is its group's oldest too
        drop_entry(root_, alloc_, nullptr, oldest);
        root_->stats.history_evicted++;
        if (group_unused(g)) {
            // Kept while this publish may still number it (its epoch and
            // seqs go on); forgotten at the end if it is still unused.
            bool named = false;
            for (size_t i = 0; i < ngroups && !named; ++i) {
                named = groups[i] == g->name();
            }
            if (!named) {
                collect_group(root_, alloc_, g);
            }
        }
    }

    // Everything is there: link the new groups, number and store.
    GroupNode* listened[kMaxGroups];  // the groups that had a node
    size_t nlistened = 0;
    for (size_t i = 0; i < ngroups; ++i) {
        if (created[i]) {
            GroupNode** link;
            lookup(groups[i], hashes[i], &link);
            node[i]->epoch = next_epoch(root_);
            *link = node[i];
            root_->groups++;
        } else if (node[i]) {
            listened[nlistened++] = node[i];
        }
    }
    if (nodes_needed) {
        res.subscribers =
            nlistened == 1 ? listened[0]->subscribers : distinct(listened, nlistened);
    }

    m->origin = options.origin;
    m->number = ++root_->published;
    m->refs = 0;
    m->frame_size = static_cast<uint32_t>(size);
    m->ngroups = static_cast<uint16_t>(ngroups);
    m->names_size = static_cast<uint16_t>(names_size);
    m->kind = options.kind;
    m->flags = options.flags;
    m->header_size = options.header_size <= size ? options.header_size : static_cast<uint8_t>(size);
    auto* ids = reinterpret_cast<MessageId*>(m + 1);
    bool fresh[kMaxGroups];  // per first occurrence: a new id, to keep
    for (size_t i = 0; i < ngroups; ++i) {
        GroupNode* g = node[first[i]];
        fresh[i] = false;
        if (g == nullptr) {
            ids[i] = MessageId{0, 0};
        } else if (first[i] == i) {
            ids[i] = assign_id(root_, alloc_, g, options, i, &fresh[i]);
        } else {
            ids[i] = ids[first[i]];  // named twice: one id
        }
    }
    uint8_t* p = reinterpret_cast<uint8_t*>(ids + ngroups);
    if (size) {
        std::memcpy(p, frame, size);
    }
    p += size;
    for (size_t i = 0; i < ngroups; ++i) {
        *p++ = static_cast<uint8_t>(groups[i].size());
        std::memcpy(p, groups[i].data(), groups[i].size());
        p += groups[i].size();
    }

    slots.for_each([&](uint32_t slot) {
        WorkerSlot& w = root_->slots[slot];
        QueueNode* q = nodes;
        nodes = nodes->next;
        q->next = nullptr;
        q->message = m;
        m->refs++;
        if (w.tail) {
            w.tail->next = q;
        } else {
            w.head = q;
        }
        w.tail = q;
        w.queued++;
        if (!w.notified) {
            w.notified = 1;
            res.wake.set(slot);
        }
    });

    if (keep) {
        const uint64_t ttl = options.history_ttl;
        const uint64_t expires =
            ttl == 0 ? 0 : (options.now > UINT64_MAX - ttl ? UINT64_MAX : options.now + ttl);
        for (size_t i = 0; i < ngroups; ++i) {
            if (first[i] != i || !fresh[i]) {
                continue;
            }
            GroupNode* g = node[i];
            HistEntry* e = entries;
            entries = entries->next;
            e->next = nullptr;
            e->group = g;
            e->message = m;
            m->refs++;
            e->seq = ids[i].seq;
            e->expires = expires;
            e->all_next = nullptr;
            e->all_prev = root_->hist_tail;
            if (root_->hist_tail) {
                root_->hist_tail->all_next = e;
            } else {
                root_->hist_head = e;
            }
            root_->hist_tail = e;
            root_->hist_entries++;
            if (g->hist_tail) {
                g->hist_tail->next = e;
            } else {
                g->hist_head = e;
            }
            g->hist_tail = e;
            g->hist_count++;
            // The new entry stays: history_size >= 1, and it has not expired.
            trim_history(root_, alloc_, g, options.history_size, options.now);
        }
        // Entries for groups whose id was not new (a cluster's repeat) or
        // that took none: unused.
        while (entries) {
            HistEntry* next = entries->next;
            alloc_.deallocate(entries);
            entries = next;
        }
    }
    // Groups whose history this publish evicted (or, given a repeated id,
    // kept nothing for) and that nothing else holds (their ids are in the
    // message all the same).
    for (size_t i = 0; i < ngroups; ++i) {
        if (node[i]) {
            collect_group(root_, alloc_, node[i]);
        }
    }
    if (m->refs == 0) {
        alloc_.deallocate(m);  // nobody listens and nothing was kept
    }
    root_->stats.messages_published++;
    return res;
}

Registry::HistoryStatus Registry::history(std::string_view group, MessageId after, uint64_t now,
                                          const ShmMessage** out, MessageId* ids, size_t max,
                                          size_t* n) noexcept {
    *n = 0;
    GroupNode* g = lookup(group, hash_group_name(group), nullptr);
    if (g == nullptr) {
        return after.epoch == 0 ? HistoryStatus::kOk : HistoryStatus::kLost;
    }
    drop_expired(root_, alloc_, g, now);

    HistoryStatus status = HistoryStatus::kOk;
    const HistEntry* from = g->hist_head;
    if (after.epoch != 0) {
        if (after.epoch != g->epoch || after.seq > g->last_seq) {
            status = HistoryStatus::kLost;
        } else {
            while (from && from->seq <= after.seq) {
                from = from->next;  // it has those
            }
            // It missed after.seq + 1 .. last_seq: all of them must be here.
            uint64_t want = after.seq + 1;
            for (const HistEntry* e = from; e; e = e->next, ++want) {
                if (e->seq != want) {
                    status = HistoryStatus::kLost;
                    break;
                }
            }
            if (want != g->last_seq + 1) {
                status = HistoryStatus::kLost;
            }
        }
    }
    if (status == HistoryStatus::kOk) {
        for (const HistEntry* e = from; e && *n < max; e = e->next) {
            out[*n] = e->message;
            ids[*n] = MessageId{g->epoch, e->seq};
            ++*n;
        }
    }
    collect_group(root_, alloc_, g);  // only when nothing is left: n is 0
    return status;
}

QueueNode* Registry::take_queue(uint32_t slot) noexcept {
    WorkerSlot& w = root_->slots[slot];
    QueueNode* list = w.head;
    if (w.draining) {
        // the previous drain was not given back: keep both, in order
        QueueNode* last = w.draining;
        while (last->next) {
            last = last->next;
        }
        last->next = list;
        list = w.draining;
    }
    w.draining = list;
    w.head = nullptr;
    w.tail = nullptr;
    w.queued = 0;
    w.notified = 0;
    return list;
}

void Registry::finish_drain(uint32_t slot) noexcept {
    WorkerSlot& w = root_->slots[slot];
    QueueNode* list = w.draining;
    w.draining = nullptr;
    release_queue(list);
}

void Registry::release_queue(QueueNode* list) noexcept {
    while (list) {
        QueueNode* next = list->next;
        ShmMessage* m = list->message;
        if (--m->refs == 0) {
            alloc_.deallocate(m);
        }
        alloc_.deallocate(list);
        list = next;
    }
}

}  // namespace realtime

namespace realtime {

// ------------------------------------------------- presence across nodes

bool Registry::is_pending(const PresenceNode* p) const noexcept {
    return p->leaving_prev != nullptr || root_->leaving == p;
}

void Registry::unmark_dirty(PresenceNode* p) noexcept {
    unlink_dirty(root_, p);
}

PresenceGone* Registry::reverse_gone(PresenceGone* list) noexcept {
    PresenceGone* out = nullptr;
    while (list) {
        PresenceGone* next = list->next;
        list->next = out;
        out = list;
        list = next;
    }
    return out;
}

GroupNode* Registry::obtain_group(std::string_view group) noexcept {
    uint32_t hash = hash_group_name(group);
    GroupNode** link;
    GroupNode* g = lookup(group, hash, &link);
    if (g) {
        return g;
    }
    g = static_cast<GroupNode*>(alloc_.allocate(sizeof(GroupNode) + group.size()));
    if (g == nullptr) {
        return nullptr;
    }
    std::memset(g, 0, sizeof(GroupNode));
    g->hash = hash;
    g->name_len = static_cast<uint16_t>(group.size());
    std::memcpy(g + 1, group.data(), group.size());
    g->epoch = next_epoch(root_);
    *link = g;
    root_->groups++;
    return g;
}

RemotePresence** Registry::find_holder(PresenceNode* p, uint32_t node) noexcept {
    RemotePresence** link = &p->remote;
    while (*link && (*link)->node != node) {
        link = &(*link)->next;
    }
    return link;
}

void Registry::remove_holder(PresenceNode* p, RemotePresence** link) noexcept {
    RemotePresence* h = *link;
    *link = h->next;
    alloc_.deallocate(h);
    p->group->remote--;
    root_->stats.presence_remote--;
}

// p is gone everywhere (no connection here, no pending leave, no holder):
// its leave event (events) and its node go; its group stays for the caller.
bool Registry::end_if_absent(PresenceNode* p, bool events, SlotSet& wake) noexcept {
    if (p->connections > 0 || is_pending(p) || p->remote) {
        return false;
    }
    if (events) {
        publish_event(*this, root_, p->group, p->leave_frame(), wake,
                      root_->stats.presence_leaves);
    }
    delete_presence(root_, alloc_, p, &wake);
    return true;
}

Registry::Status Registry::set_holder(GroupNode* g, std::string_view user, uint32_t node,
                                      uint32_t connections, std::string_view info,
                                      std::string_view join_frame, std::string_view leave_frame,
                                      bool events, uint32_t mark, SlotSet& wake) noexcept {
    uint32_t hash = hash_presence(g->name(), user);
    PresenceNode* p = find_presence(root_, g, user, hash);
    if (p) {
        RemotePresence** link = find_holder(p, node);
        if (*link) {
            (*link)->connections = connections;
            (*link)->seen = mark;
            return Status::kOk;
        }
    }
    PresenceSpec spec{user, info, join_frame, leave_frame, 0};
    if (p == nullptr && !valid_spec(spec)) {
        return Status::kNoMemory;  // nothing a node here could hold
    }
    auto* h = static_cast<RemotePresence*>(alloc_.allocate(sizeof(RemotePresence)));
    if (h == nullptr) {
        return Status::kNoMemory;
    }
    h->node = node;
    h->connections = connections;
    h->seen = mark;
    bool joined = false;
    if (p == nullptr) {
        void* block = alloc_.allocate(presence_size(spec));
        if (block == nullptr) {
            alloc_.deallocate(h);
            return Status::kNoMemory;
        }
        p = init_presence(root_, block, g, spec, hash);
        p->connections = 0;
        p->leave_at = 0;
        joined = true;
    }
    // else present already (here, pending here, or on another node)
    h->next = p->remote;
    p->remote = h;
    g->remote++;
    root_->stats.presence_remote++;
    if (joined && events) {
        publish_event(*this, root_, g, join_frame, wake, root_->stats.presence_joins);
    }
    return Status::kOk;
}

Registry::Status Registry::remote_presence(std::string_view group, std::string_view user,
                                           uint32_t node, bool present, uint32_t connections,
                                           std::string_view info, std::string_view join_frame,
                                           std::string_view leave_frame, uint64_t now,
                                           SlotSet& wake) noexcept {
    (void) now;
    if (!present) {
        GroupNode* g = lookup(group, hash_group_name(group), nullptr);
        if (g == nullptr) {
            return Status::kOk;
        }
        PresenceNode* p = find_presence(root_, g, user, hash_presence(group, user));
        if (p == nullptr) {
            return Status::kOk;
        }
        RemotePresence** link = find_holder(p, node);
        if (*link == nullptr) {
            return Status::kOk;
        }
        remove_holder(p, link);
        if (end_if_absent(p, true, wake)) {
            collect_group(root_, alloc_, g);
        }
        return Status::kOk;
    }
    GroupNode* g = obtain_group(group);
    if (g == nullptr) {
        return Status::kNoMemory;
    }
    Status s = set_holder(g, user, node, connections, info, join_frame, leave_frame, true, 0, wake);
    if (s != Status::kOk) {
        collect_group(root_, alloc_, g);
    }
    return s;
}

Registry::Status Registry::replace_remote_presence(std::string_view group,
                                                   const RemoteEntry* entries, size_t n,
                                                   uint32_t self, uint64_t now,
                                                   SlotSet& wake) noexcept {
    (void) now;
    GroupNode* g = lookup(group, hash_group_name(group), nullptr);
    bool others = false;
    for (size_t i = 0; i < n && !others; ++i) {
        others = entries[i].node != self;
    }
    if (g == nullptr && !others) {
        return Status::kOk;  // nothing held, nothing to hold
    }
    if (g == nullptr && (g = obtain_group(group)) == nullptr) {
        return Status::kNoMemory;
    }
    bool joins = g->remote_synced != 0;
    for (PresenceNode* p = g->presence; p; p = p->next) {
        for (RemotePresence* h = p->remote; h; h = h->next) {
            h->seen = 0;
        }
    }
    Status status = Status::kOk;
    for (size_t i = 0; i < n; ++i) {
        const RemoteEntry& e = entries[i];
        if (e.node == self) {
            continue;  // this node's own state is what it holds here
        }
        if (set_holder(g, e.user, e.node, e.connections, e.info, e.join_frame, e.leave_frame,
                       joins, 1, wake) != Status::kOk) {
            status = Status::kNoMemory;
        }
    }
    PresenceNode* p = g->presence;
    while (p) {
        PresenceNode* next = p->next;
        RemotePresence** link = &p->remote;
        bool removed = false;
        while (*link) {
            if ((*link)->seen == 0) {
                remove_holder(p, link);
                removed = true;
            } else {
                link = &(*link)->next;
            }
        }
        if (removed) {
            end_if_absent(p, true, wake);
        }
        p = next;
    }
    g->remote_synced = 1;
    collect_group(root_, alloc_, g);
    return status;
}

void Registry::drop_remote_group(std::string_view group) noexcept {
    GroupNode* g = lookup(group, hash_group_name(group), nullptr);
    if (g == nullptr) {
        return;
    }
    SlotSet wake;  // no event; the outbox is drained on the timer
    PresenceNode* p = g->presence;
    while (p) {
        PresenceNode* next = p->next;
        if (p->remote) {
            while (p->remote) {
                remove_holder(p, &p->remote);
            }
            if (p->connections == 0 && !is_pending(p)) {
                delete_presence(root_, alloc_, p, &wake);
            }
        }
        p = next;
    }
    g->remote_synced = 0;
    collect_group(root_, alloc_, g);
}

void Registry::mark_all_presence_dirty(SlotSet& wake) noexcept {
    for (uint32_t b = 0; b <= root_->bucket_mask; ++b) {
        for (PresenceNode* p = root_->presence_buckets[b]; p; p = p->hash_next) {
            if (p->connections > 0 || is_pending(p) || p->announced) {
                mark_dirty(root_, p, &wake);
            }
        }
    }
}

}  // namespace realtime
