#include "send_queue.h"

#include <cstdlib>
#include <cstring>
#include <limits>

namespace realtime {

SharedFrame* SharedFrame::create(size_t size) noexcept {
    if (size > std::numeric_limits<uint32_t>::max()) {
        return nullptr;
    }
    auto* f = static_cast<SharedFrame*>(std::malloc(sizeof(SharedFrame) + size));
    if (f == nullptr) {
        return nullptr;
    }
    f->refs = 1;
    f->size = static_cast<uint32_t>(size);
    return f;
}

void release(SharedFrame* f) noexcept {
    if (--f->refs == 0) {
        std::free(f);
    }
}

bool SendQueue::grow() noexcept {
    uint32_t cap = capacity_ * 2;
    auto* ring = static_cast<uintptr_t*>(std::malloc(sizeof(uintptr_t) * cap));
    if (ring == nullptr) {
        return false;
    }
    for (uint32_t i = 0; i < count_; ++i) {
        ring[i] = ring_[(head_ + i) & (capacity_ - 1)];
    }
    if (on_heap()) {
        std::free(ring_);
    }
    ring_ = ring;
    capacity_ = cap;
    head_ = 0;
    return true;
}

bool SendQueue::push(SharedFrame* f, bool reply) noexcept {
    if (count_ == capacity_ && !grow()) {
        return false;
    }
    ring_[(head_ + count_) & (capacity_ - 1)] = reinterpret_cast<uintptr_t>(f) | (reply ? 1 : 0);
    ++count_;
    retain(f);
    bytes_ += f->size;
    if (reply) {
        reply_bytes_ += f->size;
    }
    return true;
}

size_t SendQueue::gather(OutSlice* out, size_t max) const noexcept {
    size_t n = 0;
    for (uint32_t i = 0; i < count_ && n < max; ++i) {
        const SharedFrame* f = frame_of(ring_[(head_ + i) & (capacity_ - 1)]);
        size_t skip = (i == 0) ? head_offset_ : 0;
        if (f->size == skip) {
            continue;  // empty frame: nothing to send
        }
        out[n].data = f->data() + skip;
        out[n].size = f->size - skip;
        ++n;
    }
    return n;
}

void SendQueue::consume(size_t n) noexcept {
    bytes_ -= n;
    while (count_ > 0) {
        uintptr_t e = ring_[head_];
        SharedFrame* f = frame_of(e);
        size_t left = f->size - head_offset_;
        if (n < left) {
            head_offset_ += static_cast<uint32_t>(n);
            if (is_reply(e)) {
                reply_bytes_ -= n;
            }
            return;
        }
        if (is_reply(e)) {
            reply_bytes_ -= left;
        }
        n -= left;
        head_offset_ = 0;
        head_ = (head_ + 1) & (capacity_ - 1);
        --count_;
        release(f);
    }
    // Fully drained. The ring is kept: a busy connection drains after every
    // message, and freeing here would cost an allocation per message.
    head_ = 0;
}

void SendQueue::drop_unstarted() noexcept {
    uint32_t keep = (count_ > 0 && head_offset_ > 0) ? 1 : 0;
    for (uint32_t i = keep; i < count_; ++i) {
        uintptr_t e = ring_[(head_ + i) & (capacity_ - 1)];
        SharedFrame* f = frame_of(e);
        bytes_ -= f->size;
        if (is_reply(e)) {
            reply_bytes_ -= f->size;
        }
        release(f);
    }
    count_ = keep;
}

void SendQueue::clear() noexcept {
    for (uint32_t i = 0; i < count_; ++i) {
        release(frame_of(ring_[(head_ + i) & (capacity_ - 1)]));
    }
    if (on_heap()) {
        std::free(ring_);
    }
    ring_ = inline_;
    capacity_ = kInline;
    head_ = 0;
    count_ = 0;
    head_offset_ = 0;
    bytes_ = 0;
    reply_bytes_ = 0;
}

}  // namespace realtime
