// SendQueue and SharedFrame: ordering, partial sends at every offset,
// reference counting (ASan/LSan catch early frees and leaks), ring growth.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <string>
#include <vector>

#include "core/send_queue.h"

namespace realtime {
namespace {

SharedFrame* MakeFrame(std::string_view bytes) {
    SharedFrame* f = SharedFrame::create(bytes.size());
    EXPECT_NE(f, nullptr);
    if (f && !bytes.empty()) {
        std::memcpy(f->data(), bytes.data(), bytes.size());
    }
    return f;
}

// Everything gather() reports, concatenated.
std::string Pending(const SendQueue& q, size_t max_slices = 1024) {
    std::vector<OutSlice> slices(max_slices);
    size_t n = q.gather(slices.data(), slices.size());
    EXPECT_LE(n, max_slices);
    std::string out;
    for (size_t i = 0; i < n; ++i) {
        EXPECT_GT(slices[i].size, 0u) << "gather must skip empty frames";
        out.append(reinterpret_cast<const char*>(slices[i].data), slices[i].size);
    }
    return out;
}

// Frames the test keeps an extra reference to, so it can watch their counts.
class Held {
public:
    explicit Held(const std::vector<std::string>& contents) {
        for (const auto& c : contents) {
            frames_.push_back(MakeFrame(c));
        }
    }
    ~Held() {
        for (auto* f : frames_) {
            release(f);
        }
    }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;

    SharedFrame* operator[](size_t i) const { return frames_[i]; }
    size_t size() const { return frames_.size(); }
    // Queue references (the test's own reference not counted) of frame i.
    uint32_t queued_refs(size_t i) const { return frames_[i]->refs - 1; }

private:
    std::vector<SharedFrame*> frames_;
};

TEST(SharedFrame, CreateGivesOneReferenceAndTheSize) {
    SharedFrame* f = SharedFrame::create(5);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->refs, 1u);
    EXPECT_EQ(f->size, 5u);
    std::memcpy(f->data(), "hello", 5);  // ASan: the room is really there
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), 5), "hello");
    const SharedFrame* cf = f;
    EXPECT_EQ(cf->data(), f->data());
    retain(f);
    EXPECT_EQ(f->refs, 2u);
    release(f);
    EXPECT_EQ(f->refs, 1u);
    release(f);  // freed; LSan reports a leak otherwise
}

TEST(SharedFrame, CreateEmptyFrame) {
    SharedFrame* f = SharedFrame::create(0);
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->size, 0u);
    EXPECT_EQ(f->refs, 1u);
    release(f);
}

TEST(SharedFrame, RefusesSizesOver32Bits) {
    if (sizeof(size_t) <= 4) {
        GTEST_SKIP() << "size_t cannot exceed 32 bits here";
    }
    EXPECT_EQ(SharedFrame::create(size_t{std::numeric_limits<uint32_t>::max()} + 1), nullptr);
}

TEST(SendQueue, StartsEmpty) {
    SendQueue q;
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.frames(), 0u);
    EXPECT_EQ(q.bytes(), 0u);
    OutSlice s[4];
    EXPECT_EQ(q.gather(s, 4), 0u);
    q.consume(0);
    EXPECT_TRUE(q.empty());
    q.clear();
    EXPECT_TRUE(q.empty());
}

TEST(SendQueue, PushTakesAReferenceAndGathersInOrder) {
    Held h({"abc", "de", "fghij"});
    SendQueue q;
    for (size_t i = 0; i < h.size(); ++i) {
        ASSERT_TRUE(q.push(h[i]));
        EXPECT_EQ(h.queued_refs(i), 1u);
    }
    EXPECT_FALSE(q.empty());
    EXPECT_EQ(q.frames(), 3u);
    EXPECT_EQ(q.bytes(), 10u);

    OutSlice s[8];
    ASSERT_EQ(q.gather(s, 8), 3u);
    EXPECT_EQ(s[0].data, h[0]->data());
    EXPECT_EQ(s[0].size, 3u);
    EXPECT_EQ(s[1].data, h[1]->data());
    EXPECT_EQ(s[1].size, 2u);
    EXPECT_EQ(s[2].data, h[2]->data());
    EXPECT_EQ(s[2].size, 5u);
    EXPECT_EQ(Pending(q), "abcdefghij");
}

TEST(SendQueue, GatherHonoursMax) {
    Held h({"a", "b", "c", "d"});
    SendQueue q;
    for (size_t i = 0; i < h.size(); ++i) {
        q.push(h[i]);
    }
    OutSlice s[4];
    EXPECT_EQ(q.gather(s, 0), 0u);
    ASSERT_EQ(q.gather(s, 2), 2u);
    EXPECT_EQ(s[0].data, h[0]->data());
    EXPECT_EQ(s[1].data, h[1]->data());
    EXPECT_EQ(Pending(q, 3), "abc");
    EXPECT_EQ(q.frames(), 4u) << "gather does not consume";
}

// After consuming k bytes (in one call or in two), exactly the frames that
// end at or before k are released, empty frames included.
TEST(SendQueue, ConsumeAtEveryByteOffsetReleasesExactlyTheSentFrames) {
    const std::vector<std::string> contents = {"abc", "", "defgh", "i", "", "jk"};
    std::string all;
    std::vector<size_t> end;  // end offset of each frame in the stream
    for (const auto& c : contents) {
        all += c;
        end.push_back(all.size());
    }
    for (size_t k = 0; k <= all.size(); ++k) {
        for (size_t first = 0; first <= k; ++first) {
            SCOPED_TRACE("consume " + std::to_string(first) + " then " + std::to_string(k - first));
            Held h(contents);
            SendQueue q;
            for (size_t i = 0; i < h.size(); ++i) {
                ASSERT_TRUE(q.push(h[i]));
            }
            q.consume(first);
            EXPECT_EQ(q.bytes(), all.size() - first);
            EXPECT_EQ(Pending(q), all.substr(first));
            q.consume(k - first);
            EXPECT_EQ(q.bytes(), all.size() - k);
            EXPECT_EQ(Pending(q), all.substr(k));
            size_t still_queued = 0;
            for (size_t i = 0; i < h.size(); ++i) {
                // A frame is released once every byte up to its end is sent;
                // an empty frame therefore once everything before it is.
                bool sent = end[i] <= k;
                EXPECT_EQ(h.queued_refs(i), sent ? 0u : 1u) << "frame " << i;
                if (h.queued_refs(i)) {
                    ++still_queued;
                }
            }
            EXPECT_EQ(q.frames(), still_queued);
            EXPECT_EQ(q.empty(), still_queued == 0);
        }
    }
}

TEST(SendQueue, ReleasesFrameOnlyWhenItsLastByteIsSent) {
    Held h({"0123456789"});
    SendQueue q;
    q.push(h[0]);
    for (int i = 0; i < 9; ++i) {
        q.consume(1);
        EXPECT_EQ(h.queued_refs(0), 1u) << "after " << i + 1 << " bytes";
        EXPECT_EQ(q.frames(), 1u);
        EXPECT_EQ(Pending(q), std::string("0123456789").substr(static_cast<size_t>(i) + 1));
    }
    q.consume(1);
    EXPECT_EQ(h.queued_refs(0), 0u);
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.bytes(), 0u);
}

TEST(SendQueue, PartialSendsDeliverTheExactByteStream) {
    // Simulates writev() with a limited iovec count and byte budget.
    std::vector<std::string> contents;
    std::string all;
    for (int i = 0; i < 23; ++i) {
        std::string c(static_cast<size_t>((i * 7) % 13), static_cast<char>('A' + i));
        contents.push_back(c);
        all += c;
    }
    for (size_t budget = 1; budget <= 40; ++budget) {
        for (size_t max_slices : {1, 2, 3, 16}) {
            Held h(contents);
            SendQueue q;
            for (size_t i = 0; i < h.size(); ++i) {
                ASSERT_TRUE(q.push(h[i]));
            }
            std::string sent;
            for (int rounds = 0; !q.empty() && rounds < 10000; ++rounds) {
                std::vector<OutSlice> s(max_slices);
                size_t n = q.gather(s.data(), s.size());
                size_t take = 0;
                for (size_t i = 0; i < n && take < budget; ++i) {
                    size_t part = std::min(budget - take, s[i].size);
                    sent.append(reinterpret_cast<const char*>(s[i].data), part);
                    take += part;
                }
                q.consume(take);
                ASSERT_EQ(q.bytes(), all.size() - sent.size());
            }
            EXPECT_EQ(sent, all) << "budget " << budget << " slices " << max_slices;
            EXPECT_TRUE(q.empty());
            for (size_t i = 0; i < h.size(); ++i) {
                EXPECT_EQ(h.queued_refs(i), 0u);
            }
        }
    }
}

TEST(SendQueue, ConsumeAcrossSeveralFramesAtOnce) {
    Held h({"ab", "cd", "ef", "gh"});
    SendQueue q;
    for (size_t i = 0; i < h.size(); ++i) {
        q.push(h[i]);
    }
    q.consume(5);
    EXPECT_EQ(h.queued_refs(0), 0u);
    EXPECT_EQ(h.queued_refs(1), 0u);
    EXPECT_EQ(h.queued_refs(2), 1u);
    EXPECT_EQ(q.frames(), 2u);
    EXPECT_EQ(q.bytes(), 3u);
    OutSlice s[4];
    ASSERT_EQ(q.gather(s, 4), 2u);
    EXPECT_EQ(s[0].data, h[2]->data() + 1);
    EXPECT_EQ(s[0].size, 1u);
    EXPECT_EQ(Pending(q), "fgh");
}

TEST(SendQueue, EmptyFramesAreSkippedAndReleased) {
    Held h({"", "", "x", "", ""});
    SendQueue q;
    for (size_t i = 0; i < h.size(); ++i) {
        q.push(h[i]);
    }
    EXPECT_EQ(q.frames(), 5u);
    EXPECT_EQ(q.bytes(), 1u);
    OutSlice s[8];
    ASSERT_EQ(q.gather(s, 8), 1u);
    EXPECT_EQ(s[0].data, h[2]->data());
    ASSERT_EQ(q.gather(s, 1), 1u) << "empty frames do not use up slices";
    q.consume(0);
    EXPECT_EQ(h.queued_refs(0), 0u) << "nothing to send: released at once";
    EXPECT_EQ(h.queued_refs(1), 0u);
    EXPECT_EQ(h.queued_refs(2), 1u);
    EXPECT_EQ(q.frames(), 3u);
    q.consume(1);
    EXPECT_TRUE(q.empty());
    for (size_t i = 0; i < h.size(); ++i) {
        EXPECT_EQ(h.queued_refs(i), 0u) << i;
    }
}

TEST(SendQueue, OnlyEmptyFrames) {
    Held h({"", "", ""});
    SendQueue q;
    for (size_t i = 0; i < h.size(); ++i) {
        q.push(h[i]);
    }
    EXPECT_FALSE(q.empty());
    EXPECT_EQ(q.bytes(), 0u);
    OutSlice s[4];
    EXPECT_EQ(q.gather(s, 4), 0u);
    q.consume(0);
    EXPECT_TRUE(q.empty());
    for (size_t i = 0; i < h.size(); ++i) {
        EXPECT_EQ(h.queued_refs(i), 0u);
    }
}

TEST(SendQueue, ClearReleasesEverythingAndQueueIsReusable) {
    Held h({"abc", "", "defg", "h", "ij", "k"});
    SendQueue q;
    for (size_t i = 0; i < h.size(); ++i) {
        q.push(h[i]);
    }
    q.consume(4);  // mid-frame: a head offset is pending
    q.clear();
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.frames(), 0u);
    EXPECT_EQ(q.bytes(), 0u);
    OutSlice s[4];
    EXPECT_EQ(q.gather(s, 4), 0u);
    for (size_t i = 0; i < h.size(); ++i) {
        EXPECT_EQ(h.queued_refs(i), 0u) << i;
    }
    // The head offset is forgotten too.
    q.push(h[0]);
    EXPECT_EQ(Pending(q), "abc");
    EXPECT_EQ(q.bytes(), 3u);
    q.consume(3);
    EXPECT_TRUE(q.empty());
}

TEST(SendQueue, DestructorReleasesQueuedFrames) {
    Held h({"abc", "de"});
    {
        SendQueue q;
        q.push(h[0]);
        q.push(h[1]);
        q.consume(1);
        EXPECT_EQ(h.queued_refs(0), 1u);
    }
    EXPECT_EQ(h.queued_refs(0), 0u);
    EXPECT_EQ(h.queued_refs(1), 0u);
}

TEST(SendQueue, DrainingAndRefillingKeepsWorking) {
    SendQueue q;
    for (int round = 0; round < 50; ++round) {
        Held h({"r" + std::to_string(round), "", "xyz"});
        for (size_t i = 0; i < h.size(); ++i) {
            ASSERT_TRUE(q.push(h[i]));
        }
        std::string want = "r" + std::to_string(round) + "xyz";
        ASSERT_EQ(Pending(q), want);
        q.consume(want.size());
        ASSERT_TRUE(q.empty());
        ASSERT_EQ(h.queued_refs(0) + h.queued_refs(1) + h.queued_refs(2), 0u);
    }
}

TEST(SendQueue, RingGrowthKeepsOrder) {
    for (size_t n : {1, 3, 4, 5, 8, 9, 16, 17, 100, 1000}) {
        SCOPED_TRACE(n);
        std::vector<std::string> contents;
        std::string all;
        for (size_t i = 0; i < n; ++i) {
            contents.push_back(std::to_string(i) + ",");
            all += contents.back();
        }
        Held h(contents);
        SendQueue q;
        for (size_t i = 0; i < n; ++i) {
            ASSERT_TRUE(q.push(h[i]));
            ASSERT_EQ(q.frames(), i + 1);
        }
        EXPECT_EQ(q.bytes(), all.size());
        std::vector<OutSlice> s(n + 1);
        ASSERT_EQ(q.gather(s.data(), s.size()), n);
        for (size_t i = 0; i < n; ++i) {
            ASSERT_EQ(s[i].data, h[i]->data()) << i;
        }
        EXPECT_EQ(Pending(q, n), all);
    }
}

// Growth while the ring has wrapped: head at every position of a full ring.
TEST(SendQueue, RingGrowthWhileWrappedKeepsOrder) {
    // 2: the entries kept inside the queue, moved to the heap when it grows
    for (size_t cap : {2, 4, 8, 16}) {
        for (size_t head = 0; head < cap; ++head) {
            SCOPED_TRACE("capacity " + std::to_string(cap) + " head " + std::to_string(head));
            std::vector<std::string> contents;
            for (size_t i = 0; i < head + cap + 3; ++i) {
                contents.push_back(std::string(1, static_cast<char>('a' + i % 26)) + std::to_string(i));
            }
            Held h(contents);
            SendQueue q;
            // Fill to the capacity, send `head` frames, refill so the ring
            // wraps, then push past the capacity to force growth.
            size_t next = 0;
            while (next < cap) {
                ASSERT_TRUE(q.push(h[next++]));
            }
            std::string all;
            for (size_t i = 0; i < contents.size(); ++i) {
                all += contents[i];
            }
            size_t sent_bytes = 0;
            for (size_t i = 0; i < head; ++i) {
                sent_bytes += contents[i].size();
            }
            q.consume(sent_bytes);
            while (next < contents.size()) {
                ASSERT_TRUE(q.push(h[next++]));
            }
            EXPECT_EQ(q.frames(), contents.size() - head);
            EXPECT_EQ(Pending(q), all.substr(sent_bytes));
            // Partly into the front frame too.
            q.consume(1);
            EXPECT_EQ(Pending(q), all.substr(sent_bytes + 1));
            for (size_t i = 0; i < h.size(); ++i) {
                EXPECT_EQ(h.queued_refs(i), i < head ? 0u : 1u) << i;
            }
        }
    }
}

// Random pushes and partial sends against a simple model.
TEST(SendQueue, MatchesModelUnderRandomOperations) {
    uint32_t seed = 12345;
    auto rnd = [&](uint32_t n) {
        seed = seed * 1103515245u + 12345u;
        return (seed >> 16) % n;
    };
    std::vector<SharedFrame*> mine;  // the test's reference to every frame
    std::deque<size_t> model_frames;  // indexes into mine, still queued
    std::string model;                // unsent bytes
    size_t model_offset = 0;          // sent bytes of the front frame
    SendQueue q;
    for (int step = 0; step < 20000; ++step) {
        if (rnd(3) != 0) {
            std::string c(rnd(12), static_cast<char>('a' + rnd(26)));
            SharedFrame* f = MakeFrame(c);
            mine.push_back(f);
            ASSERT_TRUE(q.push(f));
            model_frames.push_back(mine.size() - 1);
            model += c;
        } else {
            size_t n = model.empty() ? 0 : rnd(static_cast<uint32_t>(model.size()) + 1);
            q.consume(n);
            model.erase(0, n);
            // Retire model frames whose bytes are all sent.
            size_t left = n + model_offset;
            while (!model_frames.empty() && mine[model_frames.front()]->size <= left) {
                left -= mine[model_frames.front()]->size;
                model_frames.pop_front();
            }
            model_offset = left;
        }
        ASSERT_EQ(q.bytes(), model.size()) << step;
        if (step % 97 == 0) {
            ASSERT_EQ(Pending(q, 1 << 16), model) << step;
            std::vector<bool> queued(mine.size(), false);
            for (size_t j : model_frames) {
                queued[j] = true;
            }
            for (size_t i = 0; i < mine.size(); ++i) {
                ASSERT_EQ(mine[i]->refs, queued[i] ? 2u : 1u) << "frame " << i << " step " << step;
            }
        }
    }
    q.clear();
    for (auto* f : mine) {
        EXPECT_EQ(f->refs, 1u);
        release(f);
    }
}

TEST(SendQueue, OneFrameSharedByThreeQueues) {
    SharedFrame* f = MakeFrame("broadcast!");
    SendQueue a, b, c;
    ASSERT_TRUE(a.push(f));
    ASSERT_TRUE(b.push(f));
    ASSERT_TRUE(c.push(f));
    EXPECT_EQ(f->refs, 4u);
    release(f);  // the creator is done; only the queues hold it now
    EXPECT_EQ(f->refs, 3u);

    a.consume(10);
    EXPECT_TRUE(a.empty());
    EXPECT_EQ(f->refs, 2u);

    b.consume(4);
    EXPECT_EQ(f->refs, 2u);
    EXPECT_EQ(Pending(b), "dcast!");
    c.consume(9);
    EXPECT_EQ(f->refs, 2u);
    EXPECT_EQ(Pending(c), "!");

    b.consume(6);
    EXPECT_EQ(f->refs, 1u);
    // c still reads the frame: ASan reports it if it was freed early.
    EXPECT_EQ(Pending(c), "!");
    c.consume(1);  // the last reference goes: freed here (LSan checks it is)
    EXPECT_TRUE(c.empty());
}

TEST(SendQueue, SharedFramesAmongQueuesWithClearAndDestruction) {
    std::vector<SharedFrame*> frames;
    for (int i = 0; i < 10; ++i) {
        frames.push_back(MakeFrame("frame" + std::to_string(i)));
    }
    SendQueue a;
    {
        SendQueue b, c;
        for (auto* f : frames) {
            a.push(f);
            b.push(f);
            c.push(f);
            release(f);  // queues own them now
        }
        EXPECT_EQ(frames[3]->refs, 3u);
        c.clear();
        EXPECT_EQ(frames[3]->refs, 2u);
        b.consume(7);  // frame0 (6 bytes) and 1 byte of frame1
        EXPECT_EQ(frames[0]->refs, 1u);
        EXPECT_EQ(frames[1]->refs, 2u);
    }  // b destroyed
    EXPECT_EQ(frames[1]->refs, 1u);
    std::string want;
    for (int i = 0; i < 10; ++i) {
        want += "frame" + std::to_string(i);
    }
    EXPECT_EQ(Pending(a), want) << "a's frames must all still be alive";
    a.consume(want.size());
    EXPECT_TRUE(a.empty());  // all freed now; LSan would report a leak
}

// ---------------------------------------------------------------------------
// replies are counted apart: reading pauses on them, not on broadcasts

TEST(SendQueue, RepliesAreCountedApartAtEveryOffset) {
    Held frames({"broadcast-1", "pong", "broadcast-2", "answer!"});
    const std::string all = "broadcast-1pongbroadcast-2answer!";
    for (size_t cut = 0; cut <= all.size(); ++cut) {
        SCOPED_TRACE("consumed " + std::to_string(cut));
        SendQueue q;
        ASSERT_TRUE(q.push(frames[0]));
        ASSERT_TRUE(q.push(frames[1], true));
        ASSERT_TRUE(q.push(frames[2]));
        ASSERT_TRUE(q.push(frames[3], true));
        EXPECT_EQ(q.bytes(), all.size());
        EXPECT_EQ(q.reply_bytes(), 4u + 7u);

        // one byte at a time up to cut, then the rest at once
        for (size_t i = 0; i < cut; ++i) {
            q.consume(1);
        }
        // replies still unsent: the parts of "pong" and "answer!" after cut
        size_t pong_left = cut <= 11 ? 4 : cut >= 15 ? 0 : 15 - cut;
        size_t answer_left = cut <= 26 ? 7 : 33 - cut;
        EXPECT_EQ(q.reply_bytes(), pong_left + answer_left);
        EXPECT_EQ(Pending(q), all.substr(cut));
        q.consume(all.size() - cut);
        EXPECT_EQ(q.reply_bytes(), 0u);
        EXPECT_TRUE(q.empty());
    }
}

TEST(SendQueue, DroppingAndClearingForgetReplies) {
    Held frames({"abc", "pong", "xyz"});
    SendQueue q;
    ASSERT_TRUE(q.push(frames[0]));
    ASSERT_TRUE(q.push(frames[1], true));
    ASSERT_TRUE(q.push(frames[2], true));
    q.consume(1);
    q.drop_unstarted();  // keeps the started "abc" only
    EXPECT_EQ(q.reply_bytes(), 0u);
    EXPECT_EQ(Pending(q), "bc");
    ASSERT_TRUE(q.push(frames[1], true));
    EXPECT_EQ(q.reply_bytes(), 4u);
    q.clear();
    EXPECT_EQ(q.reply_bytes(), 0u);
    EXPECT_EQ(frames.queued_refs(1), 0u);
}

}  // namespace
}  // namespace realtime
