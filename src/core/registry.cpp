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

bool valid_spec(const PresenceSpec& s) noexcept {
    return !s.user.empty() && s.user.size() <= kMaxPresenceUser &&
           s.info.size() <= kMaxPresenceInfo && s.leave_frame.size() <= UINT32_MAX;
}

size_t presence_size(const PresenceSpec& s) noexcept {
    return sizeof(PresenceNode) + s.user.size() + s.info.size() + s.leave_frame.size();
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

// Unlists and frees a node that is not pending. Its group stays: the
// caller removes it when nothing else holds it.
void delete_presence(RegistryRoot* root, Allocator& alloc, PresenceNode* p) noexcept {
    GroupNode* g = p->group;
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
    Registry::Published r = reg.publish(&name, 1, reinterpret_cast<const uint8_t*>(frame.data()),
                                        frame.size(), Registry::PublishOptions{});
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
        p->connections++;  // from 0: a pending leave, cancelled at commit
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
    // presence nodes (pending leaves) stays, even with no subscriber.
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
    g->subscribers++;
    if (created) {
        *link = g;
        root_->groups++;
    }
    return Status::kOk;
}

void Registry::remove_group(GroupNode* g, GroupNode** link) noexcept {
    *link = g->next;
    if (g->slots) {
        alloc_.deallocate(g->slots);
    }
    alloc_.deallocate(g);
    root_->groups--;
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
        if (sc.count == 0) {
            g->slots[i] = g->slots[--g->nslots];
        }
        break;
    }
    if (g->subscribers == 0 && g->presence == nullptr) {
        remove_group(g, link);  // pending leaves keep it for their event
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
        if (p == nullptr || --p->connections > 0) {
            continue;
        }
        if (p->leave_delay) {
            p->leave_at = now + p->leave_delay;
            add_pending(root_, p);
            continue;
        }
        // The membership is gone already: the leaver is not told, the
        // group's other connections are.
        publish_event(*this, root_, g, p->leave_frame(), wake, root_->stats.presence_leaves);
        delete_presence(root_, alloc_, p);
        if (g->subscribers == 0 && g->presence == nullptr) {
            lookup(g->name(), g->hash, &link);
            remove_group(g, link);
        }
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
        publish_event(*this, root_, g, p->leave_frame(), wake, root_->stats.presence_leaves);
        delete_presence(root_, alloc_, p);
        if (g->subscribers == 0 && g->presence == nullptr) {
            GroupNode** link;
            lookup(g->name(), g->hash, &link);
            remove_group(g, link);
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
    GroupNode* found[kMaxGroups];
    SlotSet slots;  // workers that get the message, each once
    size_t names_size = 0;
    size_t nodes_needed = 0;
    if (ngroups > kMaxGroups) {
        res.status = Status::kNoMemory;
        return res;
    }
    GroupNode* listened[kMaxGroups];  // found, without repeats
    size_t nlistened = 0;
    for (size_t i = 0; i < ngroups; ++i) {
        found[i] = lookup(groups[i], hash_group_name(groups[i]), nullptr);
        names_size += 1 + groups[i].size();
        for (size_t j = 0; j < i && found[i]; ++j) {
            if (found[j] == found[i]) {
                found[i] = nullptr;  // named twice: counted once
            }
        }
        if (found[i] == nullptr) {
            continue;
        }
        listened[nlistened++] = found[i];
        for (uint16_t j = 0; j < found[i]->nslots; ++j) {
            uint32_t slot = found[i]->slots[j].slot;
            if (!slots.test(slot)) {
                slots.set(slot);
                nodes_needed++;
            }
        }
    }
    if (nodes_needed == 0) {
        root_->stats.messages_published++;
        return res;  // nobody listens: nothing to store
    }
    res.subscribers = nlistened == 1 ? listened[0]->subscribers : distinct(listened, nlistened);

    auto* m = static_cast<ShmMessage*>(alloc_.allocate(sizeof(ShmMessage) + size + names_size));
    if (m == nullptr) {
        root_->stats.publish_rejected_full++;
        res.status = Status::kNoMemory;
        res.subscribers = 0;
        return res;
    }
    m->origin = options.origin;
    m->refs = 0;
    m->kind = options.kind;
    m->frame_size = static_cast<uint32_t>(size);
    m->ngroups = static_cast<uint16_t>(ngroups);
    m->names_size = static_cast<uint16_t>(names_size);
    uint8_t* p = reinterpret_cast<uint8_t*>(m + 1);
    std::memcpy(p, frame, size);
    p += size;
    for (size_t i = 0; i < ngroups; ++i) {
        *p++ = static_cast<uint8_t>(groups[i].size());
        std::memcpy(p, groups[i].data(), groups[i].size());
        p += groups[i].size();
    }

    // Allocate every node first, chained, so a full zone leaves nothing.
    QueueNode* nodes = nullptr;
    for (size_t n = 0; n < nodes_needed; ++n) {
        auto* node = static_cast<QueueNode*>(alloc_.allocate(sizeof(QueueNode)));
        if (node == nullptr) {
            while (nodes) {
                QueueNode* next = nodes->next;
                alloc_.deallocate(nodes);
                nodes = next;
            }
            alloc_.deallocate(m);
            root_->stats.publish_rejected_full++;
            res.status = Status::kNoMemory;
            res.subscribers = 0;
            return res;
        }
        node->next = nodes;
        nodes = node;
    }

    slots.for_each([&](uint32_t slot) {
        WorkerSlot& w = root_->slots[slot];
        QueueNode* node = nodes;
        nodes = nodes->next;
        node->next = nullptr;
        node->message = m;
        m->refs++;
        if (w.tail) {
            w.tail->next = node;
        } else {
            w.head = node;
        }
        w.tail = node;
        w.queued++;
        if (!w.notified) {
            w.notified = 1;
            res.wake.set(slot);
        }
    });
    root_->stats.messages_published++;
    return res;
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
