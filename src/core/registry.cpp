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

bool Registry::release_slot_of(uint32_t slot, uint64_t owner) noexcept {
    if (slot >= kMaxWorkerSlots || root_->slots[slot].pid == 0 ||
        root_->slots[slot].owner != owner) {
        return false;
    }
    release_slot(slot);
    return true;
}

void Registry::release_slot(uint32_t slot) noexcept {
    while (root_->slots[slot].conns) {
        leave(root_->slots[slot].conns);
    }
    finish_drain(slot);
    take_queue(slot);
    finish_drain(slot);

    // Remove the slot's share from every group; the walk is over groups,
    // which is rare work (a worker exits or died).
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
    if (g->subscribers == 0) {
        remove_group(g, link);
    }
}

void Registry::unsubscribe(std::string_view group, uint32_t slot) noexcept {
    GroupNode** link;
    GroupNode* g = lookup(group, hash_group_name(group), &link);
    if (g) {
        drop_slot_count(g, link, slot, 1);
    }
}

ConnNode* Registry::join(const std::string_view* groups, size_t ngroups,
                         uint32_t slot) noexcept {
    auto* conn = static_cast<ConnNode*>(alloc_.allocate(sizeof(ConnNode)));
    if (conn == nullptr) {
        return nullptr;
    }
    std::memset(conn, 0, sizeof(ConnNode));
    conn->slot = slot;

    for (size_t i = 0; i < ngroups; ++i) {
        auto* m = static_cast<MemberNode*>(alloc_.allocate(sizeof(MemberNode)));
        if (m == nullptr || subscribe(groups[i], slot) != Status::kOk) {
            if (m) {
                alloc_.deallocate(m);
            }
            leave_members(conn);
            alloc_.deallocate(conn);
            return nullptr;
        }
        GroupNode* g = lookup(groups[i], hash_group_name(groups[i]), nullptr);
        m->group = g;
        m->conn = conn;
        m->prev = nullptr;
        m->next = g->members;
        if (g->members) {
            g->members->prev = m;
        }
        g->members = m;
        g->nmembers++;
        m->next_of_conn = conn->groups;
        conn->groups = m;
    }

    WorkerSlot& w = root_->slots[slot];
    conn->next = w.conns;
    if (w.conns) {
        w.conns->prev = conn;
    }
    w.conns = conn;
    return conn;
}

void Registry::leave_members(ConnNode* conn) noexcept {
    while (MemberNode* m = conn->groups) {
        conn->groups = m->next_of_conn;
        GroupNode* g = m->group;
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
        drop_slot_count(g, link, conn->slot, 1);  // may free g
    }
}

void Registry::leave(ConnNode* conn) noexcept {
    leave_members(conn);
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
                                      const uint8_t* frame, size_t size) noexcept {
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
    m->refs = 0;
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
