#include "core/host_block_cache.h"

#include <cstdlib>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>

namespace lf {

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kBypass = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kBypass = true;
#else
constexpr bool kBypass = false;
#endif
#else
constexpr bool kBypass = false;
#endif

constexpr size_t kAlignment = 64;

struct Cache {
  std::mutex mutex;
  std::unordered_map<void*, size_t> sizes;     // every live or idle block the cache made, by address
  std::multimap<size_t, void*> idle;           // idle blocks by size
  std::list<void*> idle_order;                 // oldest idle first, to drop when over the cap
  size_t idle_bytes = 0;
};

Cache& cache() {
  static Cache* instance = new Cache();  // never destroyed: tensors may be freed during static destruction
  return *instance;
}

size_t rounded(size_t bytes) { return (bytes + 4095) / 4096 * 4096; }

void forget_idle(Cache& c, std::multimap<size_t, void*>::iterator entry) {
  c.idle_bytes -= entry->first;
  c.idle_order.remove(entry->second);
  c.idle.erase(entry);
}

}  // namespace

void* host_block_allocate(size_t bytes) {
  const size_t size = rounded(bytes);  // whole pages: a multiple of the alignment, as aligned_alloc requires
  if (kBypass) return std::aligned_alloc(kAlignment, size);
  Cache& c = cache();
  {
    const std::lock_guard<std::mutex> lock(c.mutex);
    auto found = c.idle.find(size);
    if (found != c.idle.end()) {
      void* block = found->second;
      forget_idle(c, found);
      return block;
    }
  }
  void* block = std::aligned_alloc(kAlignment, size);
  if (block == nullptr) return nullptr;
  const std::lock_guard<std::mutex> lock(c.mutex);
  c.sizes[block] = size;
  return block;
}

void host_block_release(void* block) {
  if (block == nullptr) return;
  if (kBypass) {
    std::free(block);
    return;
  }
  Cache& c = cache();
  const std::lock_guard<std::mutex> lock(c.mutex);
  const size_t size = c.sizes.at(block);
  c.idle.emplace(size, block);
  c.idle_order.push_back(block);
  c.idle_bytes += size;
  // Over the cap: drop the oldest idle blocks (a run whose shapes keep changing does not hoard memory).
  while (c.idle_bytes > kHostBlockIdleCapBytes && !c.idle_order.empty()) {
    void* oldest = c.idle_order.front();
    const size_t oldest_size = c.sizes.at(oldest);
    auto range = c.idle.equal_range(oldest_size);
    for (auto it = range.first; it != range.second; ++it)
      if (it->second == oldest) {
        forget_idle(c, it);
        break;
      }
    c.sizes.erase(oldest);
    std::free(oldest);
  }
}

size_t host_block_cached_bytes() {
  Cache& c = cache();
  const std::lock_guard<std::mutex> lock(c.mutex);
  return c.idle_bytes;
}

}  // namespace lf
