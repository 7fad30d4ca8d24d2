// Outbound frames of one connection, shared by reference.
//
// A broadcast is framed once into a SharedFrame; every connection that must
// send it queues a reference, never a copy. The queue is a ring of frame
// pointers that grows only when needed, so queuing a frame allocates nothing
// in the steady state. The first kInline entries live inside the queue
// itself: the common case (a frame or two between writes) touches no memory
// beyond the connection's own, which matters when a fan-out walks thousands
// of connections whose state is no longer in the CPU's caches.
// Single-threaded by design: one nginx worker owns a queue and its frames.
#pragma once

#include <cstddef>
#include <cstdint>

namespace realtime {

// An immutable, reference-counted byte string (a whole WebSocket frame, or
// several). Allocated with malloc; freed when the last reference goes.
struct SharedFrame {
    uint32_t refs;
    uint32_t size;
    uint8_t* data() noexcept { return reinterpret_cast<uint8_t*>(this + 1); }
    const uint8_t* data() const noexcept { return reinterpret_cast<const uint8_t*>(this + 1); }

    // Returns a frame with one reference and room for size bytes, or nullptr.
    static SharedFrame* create(size_t size) noexcept;
};

inline void retain(SharedFrame* f) noexcept { ++f->refs; }
void release(SharedFrame* f) noexcept;

// A piece of pending output: where it starts and how long it is.
struct OutSlice {
    const uint8_t* data;
    size_t size;
};

class SendQueue {
public:
    SendQueue() = default;
    SendQueue(const SendQueue&) = delete;
    SendQueue& operator=(const SendQueue&) = delete;
    ~SendQueue() { clear(); }

    // Queues f and takes a reference to it. False only if the ring could not
    // grow (out of memory); the frame is then not queued. A reply is a frame
    // the connection's own input caused (a pong, an answer): replies are
    // counted apart, so reading can pause on them alone.
    bool push(SharedFrame* f, bool reply = false) noexcept;

    // Unsent bytes, and the part of them that belongs to replies.
    size_t bytes() const noexcept { return bytes_; }
    size_t reply_bytes() const noexcept { return reply_bytes_; }
    bool empty() const noexcept { return count_ == 0; }
    size_t frames() const noexcept { return count_; }

    // Fills up to max slices of pending output in order; returns how many.
    size_t gather(OutSlice* out, size_t max) const noexcept;

    // Marks n bytes as sent, releasing frames that are fully sent.
    void consume(size_t n) noexcept;

    // Drops every frame not yet partly sent, keeping the framing intact:
    // used to make room for a close frame when a reader is too slow.
    void drop_unstarted() noexcept;

    // Drops everything, releasing every frame, and frees the ring.
    void clear() noexcept;

private:
    bool grow() noexcept;

    // Ring entries are frame pointers with the low bit marking a reply
    // (frames come from malloc, so that bit is always free).
    static SharedFrame* frame_of(uintptr_t e) noexcept {
        return reinterpret_cast<SharedFrame*>(e & ~uintptr_t{1});
    }
    static bool is_reply(uintptr_t e) noexcept { return e & 1; }

    static constexpr uint32_t kInline = 2;  // a power of two

    bool on_heap() const noexcept { return ring_ != inline_; }

    uintptr_t inline_[kInline] = {};
    uintptr_t* ring_ = inline_;
    uint32_t capacity_ = kInline;  // a power of two
    uint32_t head_ = 0;
    uint32_t count_ = 0;
    uint32_t head_offset_ = 0;  // bytes of the front frame already sent
    size_t bytes_ = 0;
    size_t reply_bytes_ = 0;
};

}  // namespace realtime
