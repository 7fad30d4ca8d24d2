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

constexpr uint32_t kMaxWorkerSlots = 64;  // live workers of all generations

// One published message, stored once whatever the number of its groups and
// of the workers that deliver it.
struct ShmMessage {
    uint32_t refs;  // queue nodes that still hold it
    uint32_t frame_size;
    uint16_t ngroups;
    uint16_t names_size;
    // followed by the frame bytes, then each group name as a length byte
    // and the name's bytes

    const uint8_t* frame() const noexcept { return reinterpret_cast<const uint8_t*>(this + 1); }

    std::string_view group(uint16_t index = 0) const noexcept {
        const uint8_t* p = frame() + frame_size;
        for (uint16_t i = 0; i < index; ++i) {
            p += 1 + p[0];
        }
        return std::string_view(reinterpret_cast<const char*>(p + 1), p[0]);
    }
};

// A message in one worker's queue, for one of its groups.
struct QueueNode {
    QueueNode* next;
    ShmMessage* message;
    uint16_t group;  // index into the message's groups
};

struct WorkerSlot {
    int32_t pid;        // 0: free
    uint32_t notified;  // a wake-up was sent and not yet acted upon
    QueueNode* head;
    QueueNode* tail;
    uint32_t queued;
    uint32_t connections;
};

struct SlotCount {
    uint32_t slot;
    uint32_t count;
};

struct GroupNode {
    GroupNode* next;  // hash chain
    uint32_t hash;
    uint32_t subscribers;  // across all workers
    uint64_t published;    // messages published to this group
    SlotCount* slots;      // per-worker counts, nslots used of capacity
    uint16_t nslots;
    uint16_t capacity;
    uint16_t name_len;
    // followed by the name

    std::string_view name() const noexcept {
        return std::string_view(reinterpret_cast<const char*>(this + 1), name_len);
    }
};

struct RegistryStats {
    uint64_t messages_published;  // messages accepted (one per publish, any groups)
    uint64_t frames_delivered;    // frames queued to connections, all workers
    uint64_t slow_consumer_closes;
    uint64_t connections_opened;
    uint64_t publish_rejected_full;  // messages refused: zone full
};

struct RegistryRoot {
    uint32_t magic;
    uint32_t bucket_mask;
    GroupNode** buckets;
    uint32_t groups;
    uint32_t generation;  // bumped on every reload that reuses the zone
    WorkerSlot slots[kMaxWorkerSlots];
    RegistryStats stats;
};

class Registry {
public:
    enum class Status { kOk, kNoMemory, kNoSlot };

    // Allocates a root with buckets rounded up to a power of two.
    static RegistryRoot* create(Allocator& alloc, size_t buckets) noexcept;

    Registry(RegistryRoot* root, Allocator& alloc) noexcept : root_(root), alloc_(alloc) {}

    RegistryRoot* root() const noexcept { return root_; }

    // Worker slots. claim_slot returns the slot index or -1 when all are
    // taken. release_slot frees what the slot held: its queued messages and
    // its share of every group's subscriber count (a dead worker's
    // subscribers are gone with it).
    int claim_slot(int32_t pid) noexcept;
    void release_slot(uint32_t slot) noexcept;

    // Subscriptions, counted per worker slot.
    Status subscribe(std::string_view group, uint32_t slot) noexcept;
    void unsubscribe(std::string_view group, uint32_t slot) noexcept;
    uint32_t subscribers(std::string_view group) const noexcept;
    const GroupNode* find(std::string_view group) const noexcept;

    // Stores one framed message for its groups and queues it for every
    // worker that has subscribers of them (once per group). subscribers is
    // the sum of the groups' counts at this moment; wake has bit i set for
    // each slot that must be woken (it had no wake-up pending). All or
    // nothing: on kNoMemory nothing is stored or queued.
    struct Published {
        Status status;
        uint32_t subscribers;
        uint64_t wake;
    };
    Published publish(const std::string_view* groups, size_t ngroups, const uint8_t* frame,
                      size_t size) noexcept;
    Published publish(std::string_view group, const uint8_t* frame, size_t size) noexcept {
        return publish(&group, 1, frame, size);
    }

    // Detaches a worker's queue (oldest first) and clears its wake-up flag.
    QueueNode* take_queue(uint32_t slot) noexcept;

    // Drops the worker's references to a detached queue, freeing nodes and
    // every message no other worker still holds.
    void release_queue(QueueNode* list) noexcept;

private:
    GroupNode* lookup(std::string_view group, uint32_t hash, GroupNode*** link) const noexcept;
    void remove_group(GroupNode* g, GroupNode** link) noexcept;
    void drop_slot_count(GroupNode* g, GroupNode** link, uint32_t slot, uint32_t n) noexcept;

    RegistryRoot* root_;
    Allocator& alloc_;
};

uint32_t hash_group_name(std::string_view name) noexcept;

}  // namespace realtime
