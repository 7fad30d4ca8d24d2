// The memory interface of the shared-memory data structures.
//
// In nginx it is the slab allocator of the realtime zone (called with the
// zone locked); in unit tests it is malloc with accounting. Pointers it
// returns must be valid in every process that maps the memory, which holds
// for nginx zones: they are mapped before the workers fork.
#pragma once

#include <cstddef>

namespace realtime {

class Allocator {
public:
    // nullptr when the memory is exhausted; never throws.
    virtual void* allocate(size_t size) noexcept = 0;
    virtual void deallocate(void* p) noexcept = 0;

protected:
    ~Allocator() = default;
};

}  // namespace realtime
