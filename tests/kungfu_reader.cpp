// A reader of Kungfu journals written independently of kftools, from Kungfu's public header layouts and its
// reader's rules (kungfu-origin/kungfu v2.4.77: longfist/types.h frame_header / page_header, journal/frame.h
// has_data, journal/journal.cpp next page on PageEnd; kungfu-systems/kungfu libyijinjing schema/core.h for
// journal wire v1). It is what the tests use to check that `kftools replay --format kungfu-*` writes journals
// Kungfu's reader accepts: it shares no code with kftools.
//
//   kungfu_reader FOLDER [DEST_HEX]   prints one line per frame a Kungfu reader hands out:
//   page offset msg_type gen_time trigger_time source dest data_length fnv1a64(data)
//
// Exit 0 when the walk ends where the writer is (a header with length 0); 3 when it meets bytes no Kungfu
// writer leaves (a page header it does not know, a frame running past the page, a frame after PageEnd).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace kf24 {
#pragma pack(push, 1)
struct frame_header {  // Kungfu 2.4, packed (KF_DEFINE_PACK_TYPE is __attribute__((packed)) there)
  uint32_t length;
  uint32_t header_length;
  int64_t gen_time;
  int64_t trigger_time;
  int32_t msg_type;
  uint32_t source;
  uint32_t dest;
};
struct page_header {
  uint32_t version;
  uint32_t page_header_length;
  uint32_t page_size;
  uint32_t frame_header_length;
  uint64_t last_frame_position;
};
#pragma pack(pop)
static_assert(sizeof(frame_header) == 36, "Kungfu 2.4 frame_header is 36 bytes");
static_assert(sizeof(page_header) == 24, "Kungfu 2.4 page_header is 24 bytes");
constexpr uint32_t version = 4;
constexpr int32_t page_end = 10000;
}  // namespace kf24

namespace wire1 {
struct alignas(8) frame_header {  // Kungfu v4 journal wire v1: naturally aligned (aligned(8)), 72 bytes
  uint32_t length;
  uint32_t header_length;
  int64_t gen_time;
  int64_t trigger_time;
  int32_t carrier_type;
  uint32_t source;
  uint32_t dest;
  int8_t data_type;
  uint32_t initial_source;
  uint64_t journal_frame_uid;
  uint64_t trigger_frame_uid;
  uint64_t stream_id;
};
struct alignas(8) page_header {
  uint32_t version;
  uint32_t page_header_length;
  uint64_t page_size;
  uint32_t frame_header_length;
  int8_t status;
  uint64_t last_frame_position;
};
static_assert(sizeof(frame_header) == 72 && offsetof(frame_header, journal_frame_uid) == 48, "wire v1 frame");
static_assert(sizeof(page_header) == 32 && offsetof(page_header, last_frame_position) == 24, "wire v1 page");
constexpr uint32_t epoch = 0xe3b24c8du;
constexpr int32_t page_end = 10051;
}  // namespace wire1

static uint64_t fnv1a64(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static bool read_file(const std::string &path, std::vector<unsigned char> &out) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  out.clear();
  unsigned char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.insert(out.end(), buf, buf + n);
  std::fclose(f);
  return true;
}

// the frame fields a Kungfu reader hands out, whatever the generation
struct view {
  uint32_t length, header_length, source, dest;
  int64_t gen_time, trigger_time;
  int32_t msg_type;
};

template <typename F> static view view_of(const unsigned char *p) {
  F h;
  std::memcpy(&h, p, sizeof h);
  view v{};
  v.length = h.length;
  v.header_length = h.header_length;
  v.gen_time = h.gen_time;
  v.trigger_time = h.trigger_time;
  v.source = h.source;
  v.dest = h.dest;
  if constexpr (sizeof(F) == 72) {
    v.msg_type = h.carrier_type;
  } else {
    v.msg_type = h.msg_type;
  }
  return v;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: kungfu_reader FOLDER [DEST_HEX]\n");
    return 2;
  }
  std::string folder = argv[1];
  uint32_t dest = argc > 2 ? uint32_t(std::stoul(argv[2], nullptr, 16)) : 0;
  std::vector<unsigned char> page;
  for (uint32_t page_id = 1;; page_id++) {
    char name[64];
    std::snprintf(name, sizeof name, "/%08x.%u.journal", dest, page_id);
    if (!read_file(folder + name, page)) return page_id == 1 ? 2 : 0;
    if (page.size() < 8) return 3;
    uint32_t version;
    std::memcpy(&version, page.data(), 4);
    size_t phl, fhl, page_size;
    int32_t page_end;
    bool v1 = version == wire1::epoch;
    if (v1) {
      wire1::page_header ph;
      std::memcpy(&ph, page.data(), sizeof ph);
      phl = ph.page_header_length, fhl = ph.frame_header_length, page_size = ph.page_size, page_end = wire1::page_end;
      if (phl != sizeof(wire1::page_header) || fhl != sizeof(wire1::frame_header)) return 3;
    } else if (version == kf24::version) {
      kf24::page_header ph;
      std::memcpy(&ph, page.data(), sizeof ph);
      phl = ph.page_header_length, fhl = ph.frame_header_length, page_size = ph.page_size, page_end = kf24::page_end;
      if (phl != sizeof(kf24::page_header) || fhl != sizeof(kf24::frame_header)) return 3;
    } else {
      return 3;
    }
    if (page.size() < page_size) return 3;
    size_t off = phl;
    bool next_page = false;
    while (off + fhl <= page_size) {
      view v = v1 ? view_of<wire1::frame_header>(&page[off]) : view_of<kf24::frame_header>(&page[off]);
      if (!(v.length > 0 && v.msg_type > 0)) return 0;  // frame::has_data(): where the writer is
      if (v.header_length != fhl || v.length < fhl || off + v.length > page_size) return 3;
      if (v.msg_type == page_end) {
        size_t after = off + v.length;
        uint32_t more = 0;
        if (after + 4 <= page_size) std::memcpy(&more, &page[after], 4);
        if (more != 0) return 3;  // PageEnd is a page's last frame
        next_page = true;
        break;
      }
      uint32_t n = v.length - v.header_length;
      std::printf("%u %zu %d %lld %lld %u %u %u %016llx\n", page_id, off, v.msg_type, (long long)v.gen_time,
                  (long long)v.trigger_time, v.source, v.dest, n,
                  (unsigned long long)fnv1a64(&page[off + v.header_length], n));
      off += v.length;
    }
    if (!next_page) return 3;  // a full page without PageEnd
  }
}
