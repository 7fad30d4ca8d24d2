// A malloc-backed Allocator for the shared-memory structures' unit tests.
//
// It records every live block and its size, so a test can prove that an
// operation leaked nothing (live() back to the baseline) or freed exactly
// what it should, and it can be told to refuse allocations after a number of
// successful ones, to simulate a full nginx zone.
//
// Fresh blocks are filled with garbage (the slab allocator does not zero
// memory either) and freed blocks are scribbled before free(), so code that
// relies on zeroed memory or reads after freeing fails loudly, even without
// the sanitizers.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"

namespace realtime::test {

class CountingAllocator final : public Allocator {
public:
    CountingAllocator() = default;
    CountingAllocator(const CountingAllocator&) = delete;
    CountingAllocator& operator=(const CountingAllocator&) = delete;

    ~CountingAllocator() {
        // Free whatever a failed test left behind so LeakSanitizer reports
        // the test failure, not a leak in the harness.
        for (auto& [p, size] : live_) {
            std::free(p);
        }
    }

    void* allocate(size_t size) noexcept override {
        ++attempts_;
        requested_.push_back(size);
        if (fail_armed_) {
            if (successes_left_ == 0) {
                ++refused_;
                if (fail_once_) {
                    fail_armed_ = false;
                }
                return nullptr;
            }
            --successes_left_;
        }
        void* p = std::malloc(size ? size : 1);
        if (p == nullptr) {
            return nullptr;
        }
        std::memset(p, 0xA5, size);
        live_.emplace(p, size);
        live_bytes_ += size;
        ++allocations_;
        return p;
    }

    void deallocate(void* p) noexcept override {
        auto it = live_.find(p);
        if (it == live_.end()) {
            ADD_FAILURE() << "deallocate(" << p << "): not a live block of this allocator";
            return;
        }
        std::memset(p, 0xDD, it->second);
        live_bytes_ -= it->second;
        live_.erase(it);
        ++deallocations_;
        std::free(p);
    }

    // The next n allocations succeed, every later one fails until
    // stop_failing(); with once, only the (n+1)-th fails and later ones
    // succeed again.
    void fail_after(size_t n, bool once = false) noexcept {
        fail_armed_ = true;
        fail_once_ = once;
        successes_left_ = n;
    }
    void stop_failing() noexcept { fail_armed_ = false; }

    size_t live() const noexcept { return live_.size(); }
    size_t live_bytes() const noexcept { return live_bytes_; }
    bool is_live(const void* p) const noexcept { return live_.count(const_cast<void*>(p)) != 0; }
    size_t allocations() const noexcept { return allocations_; }      // successful
    size_t deallocations() const noexcept { return deallocations_; }
    size_t attempts() const noexcept { return attempts_; }            // incl. refused
    size_t refused() const noexcept { return refused_; }
    const std::vector<size_t>& requested() const noexcept { return requested_; }  // sizes asked

private:
    std::unordered_map<void*, size_t> live_;
    size_t live_bytes_ = 0;
    size_t allocations_ = 0;
    size_t deallocations_ = 0;
    size_t attempts_ = 0;
    size_t refused_ = 0;
    std::vector<size_t> requested_;
    bool fail_armed_ = false;
    bool fail_once_ = false;
    size_t successes_left_ = 0;
};

}  // namespace realtime::test
