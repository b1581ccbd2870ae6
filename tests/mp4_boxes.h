#pragma once
// A reader of just enough of the ISO BMFF box structure to see how a fragmented MP4 arrives: which top-level boxes
// are complete, and how many samples (video frames) each complete fragment (moof followed by its mdat) carries.
// Independent of FFmpeg, so a test can look at the bytes that reached a pipe so far, cut anywhere.
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

namespace lf::test {

struct Mp4Fragments {
  std::vector<std::string> boxes;             // types of the complete top-level boxes, in order
  std::vector<int64_t> samples_per_fragment;  // one entry per complete moof + mdat pair
  int64_t samples() const {
    return std::accumulate(samples_per_fragment.begin(), samples_per_fragment.end(), int64_t(0));
  }
};

namespace mp4_detail {

inline uint64_t big_endian(const std::string& bytes, size_t at, int count) {
  uint64_t value = 0;
  for (int i = 0; i < count; ++i) value = value << 8 | uint8_t(bytes[at + size_t(i)]);
  return value;
}

struct Box {
  std::string type;
  size_t payload = 0, end = 0;  // [payload, end) inside the buffer
};

// The complete boxes in [begin, end); stops at the first one cut off.
inline std::vector<Box> boxes_in(const std::string& bytes, size_t begin, size_t end) {
  std::vector<Box> boxes;
  size_t at = begin;
  while (at + 8 <= end) {
    uint64_t size = big_endian(bytes, at, 4);
    size_t header = 8;
    if (size == 1) {
      if (at + 16 > end) break;
      size = big_endian(bytes, at + 8, 8);
      header = 16;
    } else if (size == 0) {
      break;  // "to the end of the file": never complete while the writer may still append
    }
    if (size < header || size > end - at) break;
    boxes.push_back({bytes.substr(at + 4, 4), at + header, at + size_t(size)});
    at += size_t(size);
  }
  return boxes;
}

// Sum of trun sample_count inside a moof (moof > traf > trun; trun: version+flags 4 bytes, then sample_count).
inline int64_t moof_samples(const std::string& bytes, const Box& moof) {
  int64_t samples = 0;
  for (const Box& traf : boxes_in(bytes, moof.payload, moof.end)) {
    if (traf.type != "traf") continue;
    for (const Box& trun : boxes_in(bytes, traf.payload, traf.end))
      if (trun.type == "trun" && trun.payload + 8 <= trun.end)
        samples += int64_t(big_endian(bytes, trun.payload + 4, 4));
  }
  return samples;
}

}  // namespace mp4_detail

inline Mp4Fragments read_mp4_fragments(const std::string& bytes) {
  Mp4Fragments result;
  const std::vector<mp4_detail::Box> top = mp4_detail::boxes_in(bytes, 0, bytes.size());
  for (size_t i = 0; i < top.size(); ++i) {
    result.boxes.push_back(top[i].type);
    if (top[i].type == "moof" && i + 1 < top.size() && top[i + 1].type == "mdat")
      result.samples_per_fragment.push_back(mp4_detail::moof_samples(bytes, top[i]));
  }
  return result;
}

}  // namespace lf::test
