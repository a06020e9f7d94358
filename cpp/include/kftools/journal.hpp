// kftools journal: header-only C++17 writer and reader for the page/frame format
// declared in kftools/journal/format.py (the single source of truth; the structs
// below are checked against it by tests/test_cpp.py).
//
//   kftools::Writer w("/tmp/md.journal", {.page_size = 64 << 20, .pad_to = 64});
//   w.write_ticker(kftools::make_ticker("BTCUSDT", 101.5, 101.4, 101.6, 3.0));
//
//   kftools::Reader r("/tmp/md.journal");
//   r.follow([](const kftools::Frame& f) { ...; return true; });
//
// Linux only: the single-writer lock is an open-file-description lock
// (F_OFD_SETLK), the same lock kftools/journal/lock.py takes, so C++ and Python
// writers exclude each other.
#pragma once

#include <fcntl.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

namespace kftools {

inline constexpr uint32_t kVersion = 1;
inline constexpr uint32_t kMagic = 0x314A464B;  // "KFJ1" little-endian
inline constexpr uint32_t kPageHeaderSize = 64;
inline constexpr uint32_t kFrameHeaderSize = 32;
inline constexpr uint32_t kDefaultPageSize = 128u * 1024 * 1024;
inline constexpr uint32_t kMinPageSize = 4096;

// ---- file names (format.py's FILE_NAMES; tests/test_structure.py fails on drift) ----
// Page n > 0 of journal P is `P.<n>` (decimal, no leading zero); a page being made is `<page>.tmp`;
// `kftools archive` replaces a sealed page by `<page>.zst`; beside P sit `P.checksums` and `P.readers`.
inline constexpr char kTmpSuffix[] = ".tmp";
inline constexpr char kArchiveSuffix[] = ".zst";
inline constexpr char kChecksumsSuffix[] = ".checksums";
inline constexpr char kReadersSuffix[] = ".readers";

enum PageFlag : uint32_t { kSealed = 1, kClosed = 2 };
enum MsgType : uint32_t {
    kTicker = 1, kOrder = 2, kTrade = 3,
    // a backtest's gateway (docs/backtest.md): requests a strategy writes, answers the replay writes
    kCancelRequest = 4, kOrderUpdate = 5, kFill = 6, kAck = 7, kModifyRequest = 8,
    kDepth = 9,  // a market-by-price snapshot
    kTimer = 10,
};
enum Side : uint32_t { kBuy = 0, kSell = 1 };
enum OrderType : uint32_t { kLimit = 0, kMarket = 1, kLimitIOC = 2, kLimitFOK = 3, kPostOnly = 4 };
enum OrderStatus : uint32_t {
    kAccepted = 0, kPartiallyFilled = 1, kFilled = 2, kCanceled = 3, kRejected = 4, kCancelRejected = 5,
    kExpired = 6, kModified = 7, kModifyRejected = 8,
};

// ---- layouts (generated from format.py's Layout.c_struct(), keep in sync) ----
#pragma pack(push, 1)
struct PageHeader {
    uint32_t write_cursor;
    uint32_t read_cursor;
    uint32_t capacity;
    uint32_t version;
    uint32_t magic;
    uint32_t page_index;
    uint32_t writer_pid;
    uint32_t flags;
    uint32_t waiters;
    char reserved[28];
};  // 64 bytes, packed
struct FrameHeader {
    uint32_t length;
    uint32_t msg_type;
    int64_t gen_time;
    int64_t trigger_time;
    uint32_t source;
    uint32_t dest;
};  // 32 bytes, packed
struct Ticker {
    char symbol[16];
    double last_price;
    double bid_price;
    double ask_price;
    double volume;
};  // 48 bytes, packed
struct Order {
    char symbol[16];
    uint64_t order_id;
    uint32_t side;
    uint32_t order_type;
    double price;
    double quantity;
    double filled_quantity;
    char client_order_id[32];
};  // 88 bytes, packed
struct Trade {
    char symbol[16];
    uint64_t trade_id;
    uint64_t order_id;
    uint32_t side;
    uint32_t reserved;
    double price;
    double volume;
};  // 56 bytes, packed
struct CancelRequest {
    char symbol[16];
    uint64_t order_id;
};  // 24 bytes, packed
struct OrderUpdate {
    char symbol[16];
    uint64_t order_id;
    uint32_t status;
    uint32_t reject_reason;
    uint32_t side;
    uint32_t order_type;
    double price;
    double quantity;
    double filled_quantity;
    double remaining_quantity;
    double avg_price;
};  // 80 bytes, packed
struct Fill {
    char symbol[16];
    uint64_t fill_id;
    uint64_t order_id;
    uint32_t side;
    uint32_t liquidity;
    double price;
    double quantity;
    double fee;
    uint32_t flags;
    uint32_t reserved;
};  // 72 bytes, packed
struct Ack {
    uint64_t frames;
};  // 8 bytes, packed
struct ModifyRequest {
    char symbol[16];
    uint64_t order_id;
    double price;
    double quantity;
};  // 40 bytes, packed
struct Depth {
    char symbol[16];
    double bid_price[10];
    double bid_volume[10];
    double ask_price[10];
    double ask_volume[10];
};  // 336 bytes, packed
struct Timer {
    uint64_t timer_id;
    int64_t at;
};  // 16 bytes, packed
#pragma pack(pop)

static_assert(sizeof(PageHeader) == kPageHeaderSize);
static_assert(offsetof(PageHeader, write_cursor) == 0 && offsetof(PageHeader, read_cursor) == 4);
static_assert(offsetof(PageHeader, capacity) == 8 && offsetof(PageHeader, version) == 12);
static_assert(offsetof(PageHeader, magic) == 16 && offsetof(PageHeader, page_index) == 20);
static_assert(offsetof(PageHeader, writer_pid) == 24 && offsetof(PageHeader, flags) == 28);
static_assert(offsetof(PageHeader, waiters) == 32 && offsetof(PageHeader, reserved) == 36);
static_assert(sizeof(FrameHeader) == kFrameHeaderSize);
static_assert(offsetof(FrameHeader, msg_type) == 4 && offsetof(FrameHeader, gen_time) == 8);
static_assert(offsetof(FrameHeader, trigger_time) == 16 && offsetof(FrameHeader, source) == 24);
static_assert(offsetof(FrameHeader, dest) == 28);
static_assert(sizeof(Ticker) == 48);
static_assert(offsetof(Ticker, last_price) == 16 && offsetof(Ticker, volume) == 40);
static_assert(sizeof(Order) == 88);
static_assert(offsetof(Order, order_id) == 16 && offsetof(Order, side) == 24 && offsetof(Order, price) == 32);
static_assert(offsetof(Order, filled_quantity) == 48 && offsetof(Order, client_order_id) == 56);
static_assert(sizeof(Trade) == 56);
static_assert(offsetof(Trade, trade_id) == 16 && offsetof(Trade, order_id) == 24 && offsetof(Trade, side) == 32);
static_assert(offsetof(Trade, price) == 40 && offsetof(Trade, volume) == 48);
static_assert(sizeof(CancelRequest) == 24 && offsetof(CancelRequest, order_id) == 16);
static_assert(sizeof(OrderUpdate) == 80 && offsetof(OrderUpdate, status) == 24 && offsetof(OrderUpdate, side) == 32);
static_assert(offsetof(OrderUpdate, price) == 40 && offsetof(OrderUpdate, avg_price) == 72);
static_assert(sizeof(Fill) == 72 && offsetof(Fill, order_id) == 24 && offsetof(Fill, liquidity) == 36);
static_assert(offsetof(Fill, price) == 40 && offsetof(Fill, fee) == 56 && offsetof(Fill, flags) == 64);
static_assert(sizeof(Ack) == 8);
static_assert(sizeof(ModifyRequest) == 40 && offsetof(ModifyRequest, price) == 24);
static_assert(sizeof(Depth) == 336 && offsetof(Depth, bid_volume) == 96 && offsetof(Depth, ask_price) == 176);
static_assert(sizeof(Timer) == 16 && offsetof(Timer, at) == 8);

// ---- errors (names mirror kftools.errors) ----
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct NotAJournal : Error {
    using Error::Error;
};
struct CorruptJournal : Error {
    using Error::Error;
};
struct JournalLocked : Error {
    using Error::Error;
};
struct FrameTooLarge : Error {
    using Error::Error;
};
struct UsageError : Error {  // a bad argument: nothing was written
    using Error::Error;
};
struct OutputError : Error {  // a path that cannot be written as asked (not a regular file, a stale page)
    using Error::Error;
};
struct ArchivedPage : NotAJournal {  // a page `kftools archive` compressed (<page>.zst)
    using NotAJournal::NotAJournal;
};

// Wall clock in ns, the clock Python's time.time_ns() reads: gen_time must be
// comparable across languages for latency measurements.
inline int64_t now_ns() noexcept {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

inline std::string page_path(const std::string& first, uint32_t index) {
    return index == 0 ? first : first + "." + std::to_string(index);
}

// Fill a fixed-width, NUL-padded text field (truncates; the Python writer refuses instead).
template <size_t N>
inline void set_text(char (&dst)[N], const char* s) noexcept {
    size_t n = s ? strnlen(s, N) : 0;
    std::memcpy(dst, s, n);
    std::memset(dst + n, 0, N - n);
}

inline Ticker make_ticker(const char* symbol, double last, double bid = 0, double ask = 0, double volume = 0) {
    Ticker t{};
    set_text(t.symbol, symbol);
    t.last_price = last, t.bid_price = bid, t.ask_price = ask, t.volume = volume;
    return t;
}

// Smallest payload a reader accepts for a built-in type (padding may follow).
inline uint32_t min_payload(uint32_t msg_type) noexcept {
    switch (msg_type) {
        case kTicker: return sizeof(Ticker);
        case kOrder: return sizeof(Order);
        case kTrade: return sizeof(Trade);
        case kCancelRequest: return sizeof(CancelRequest);
        case kOrderUpdate: return sizeof(OrderUpdate);
        case kFill: return sizeof(Fill);
        case kAck: return sizeof(Ack);
        case kModifyRequest: return sizeof(ModifyRequest);
        case kDepth: return sizeof(Depth);
        case kTimer: return sizeof(Timer);
        default: return 0;
    }
}

namespace detail {

// The cursor and flags live at fixed offsets of a page-aligned mapping, so they
// are naturally aligned even though PageHeader is packed.
inline uint32_t* u32_at(uint8_t* base, size_t off) { return reinterpret_cast<uint32_t*>(base + off); }
inline const uint32_t* u32_at(const uint8_t* base, size_t off) { return reinterpret_cast<const uint32_t*>(base + off); }
inline uint32_t load_acquire(const uint8_t* base, size_t off) { return __atomic_load_n(u32_at(base, off), __ATOMIC_ACQUIRE); }
inline void store_release(uint8_t* base, size_t off, uint32_t v) { __atomic_store_n(u32_at(base, off), v, __ATOMIC_RELEASE); }

constexpr size_t kCursorOff = offsetof(PageHeader, write_cursor);
constexpr size_t kPidOff = offsetof(PageHeader, writer_pid);
constexpr size_t kFlagsOff = offsetof(PageHeader, flags);
constexpr size_t kWaitersOff = offsetof(PageHeader, waiters);

// Publish a page's write cursor (kftools/journal/cursor.h is the C twin, and says why the store is a
// release store, not seq_cst): then wake the followers parked on it, if the header counts any.
inline void publish_cursor(uint8_t* base, uint32_t end) {
    __atomic_store_n(u32_at(base, kCursorOff), end, __ATOMIC_RELEASE);
    if (__atomic_load_n(u32_at(base, kWaitersOff), __ATOMIC_RELAXED))
        ::syscall(SYS_futex, u32_at(base, kCursorOff), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}
inline uint32_t load_cursor(const uint8_t* base) { return load_acquire(base, kCursorOff); }

inline std::string sys_error(const std::string& what) { return what + ": " + std::strerror(errno); }

inline bool exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

// `kftools archive` replaces sealed middle pages by <page>.zst: they still count, so a
// resuming writer lands on the true last page, never behind an archived one.
inline uint32_t last_page_index(const std::string& path) {
    uint32_t i = 0;
    while (exists(page_path(path, i + 1)) || exists(page_path(path, i + 1) + kArchiveSuffix)) ++i;
    return i;
}

// Why a header cannot be trusted (empty string: fine). `unwritten` is set for
// an all-zero header, which a follower waits on rather than reports.
inline std::string header_problem(const PageHeader& h, uint32_t index, bool* unwritten = nullptr) {
    if (unwritten) *unwritten = false;
    // The creator writes the version last, so a header without one is still being
    // written (Python's check_header only waits on an all-zero header).
    if (h.version == 0 && (h.magic == 0 || h.magic == kMagic)) {
        if (unwritten) *unwritten = true;
        return "page header not written yet (version 0)";
    }
    if (h.magic != 0 && h.magic != kMagic) return "not a journal (bad magic at offset 16)";
    if (h.version != kVersion) return "unsupported journal version " + std::to_string(h.version);
    if (h.capacity < kPageHeaderSize) return "page capacity is smaller than its own header";
    if (h.magic == kMagic && h.page_index != index)
        return "page header says page " + std::to_string(h.page_index) + ", expected page " + std::to_string(index);
    return {};
}

// Why the frame at `off` is invalid given committed end `end` (nullptr: valid).
inline const char* frame_problem(const uint8_t* base, uint32_t off, uint32_t end) {
    if (end - off < kFrameHeaderSize) return "frame header runs past the write cursor";
    FrameHeader h;
    std::memcpy(&h, base + off, sizeof h);
    if (h.length > end - off - kFrameHeaderSize) return "frame length runs past the write cursor";
    if (h.msg_type == 0) return "msg_type 0 (zeroed or garbage bytes)";
    if (h.length < min_payload(h.msg_type)) return "payload shorter than its type's layout";
    return nullptr;
}

inline uint32_t read_writer_pid(const std::string& path) {
    int fd = ::open(page_path(path, last_page_index(path)).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    PageHeader h{};
    ssize_t n = ::pread(fd, &h, sizeof h, 0);
    ::close(fd);
    return n == sizeof h ? h.writer_pid : 0;
}

inline bool try_lock(int fd) {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
    return ::fcntl(fd, F_OFD_SETLK, &fl) == 0;
}

// A mapped page file.
struct Mapping {
    uint8_t* base = nullptr;
    size_t size = 0;
    uint32_t index = 0;
    uint32_t limit = 0;  // min(capacity, file size): a bad cursor never reads past the file

    void unmap() {
        if (base) ::munmap(base, size);
        base = nullptr;
        size = 0;
    }
};

inline void map_fd(int fd, size_t size, bool writable, uint32_t capacity, uint32_t index, Mapping& m,
                   const std::string& path) {
    int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
    void* p = ::mmap(nullptr, size, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) throw Error(sys_error(path + ": mmap"));
    m.base = static_cast<uint8_t*>(p);
    m.size = size;
    m.index = index;
    m.limit = capacity < size ? capacity : uint32_t(size);
}

}  // namespace detail

// A committed frame, pointing into the reader's mapping (valid until the reader
// moves two pages on; copy what you keep).
struct Frame {
    const FrameHeader* header = nullptr;
    const uint8_t* payload = nullptr;
    uint32_t page = 0;
    uint32_t offset = 0;

    uint32_t msg_type() const { return header->msg_type; }
    uint32_t length() const { return header->length; }
    int64_t gen_time() const { return header->gen_time; }
    // The payload as T; packed structs have alignment 1, so this is always safe.
    template <class T>
    const T& as() const {
        static_assert(alignof(T) == 1, "use a packed struct");
        return *reinterpret_cast<const T*>(payload);
    }
};

// The single writer of a journal. Opening takes the OFD write lock on the
// first page and resumes after the last committed frame; it never truncates.
class Writer {
   public:
    struct Options {
        uint32_t page_size = 0;  // pages this writer creates; 0: the last page's capacity, else 128 MiB
        uint32_t pad_to = 0;     // round payloads up to a multiple of this (64, 128: cache-line structs)
        uint32_t source = 0;
        uint32_t dest = 0;
    };

    explicit Writer(std::string path) : Writer(std::move(path), Options{}) {}
    Writer(std::string path, Options opt) : path_(std::move(path)), opt_(opt) { open(); }
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    ~Writer() {
        try {
            close();
        } catch (...) {
        }
    }

    // Append one frame; gen_time 0 means now. Returns the frame's gen_time.
    int64_t write(uint32_t msg_type, const void* payload, uint32_t len, int64_t gen_time, int64_t trigger_time,
                  uint32_t source, uint32_t dest) {
        if (!page_.base) throw UsageError(path_ + ": write after close(): the writer is closed");
        if (msg_type == 0) throw UsageError("msg_type 0 is never valid (it marks damage)");
        // readers would call such a frame damage (and this writer would refuse to reopen): never write one
        if (len < min_payload(msg_type))
            throw UsageError("a " + std::to_string(len) + "-byte payload of msg_type " + std::to_string(msg_type) +
                             " is shorter than its layout (" + std::to_string(min_payload(msg_type)) + " bytes)");
        uint32_t n = padded(len);
        uint64_t total = uint64_t(kFrameHeaderSize) + n;
        if (pos_ + total > cap_) roll(total);
        uint8_t* p = page_.base + pos_;
        FrameHeader h{n, msg_type, gen_time ? gen_time : now_ns(), trigger_time, source, dest};
        std::memcpy(p, &h, sizeof h);
        std::memcpy(p + kFrameHeaderSize, payload, len);
        // resumed pages may hold bytes of a frame a killed writer never committed
        if (n > len) std::memset(p + kFrameHeaderSize + len, 0, n - len);
        commit(uint32_t(pos_ + total));
        return h.gen_time;
    }
    int64_t write(uint32_t msg_type, const void* payload, uint32_t len, int64_t gen_time = 0,
                  int64_t trigger_time = 0) {
        return write(msg_type, payload, len, gen_time, trigger_time, opt_.source, opt_.dest);
    }
    int64_t write_ticker(const Ticker& t, int64_t gen_time = 0, int64_t trigger_time = 0) {
        return write(kTicker, &t, sizeof t, gen_time, trigger_time);
    }
    int64_t write_order(const Order& o, int64_t gen_time = 0, int64_t trigger_time = 0) {
        return write(kOrder, &o, sizeof o, gen_time, trigger_time);
    }
    int64_t write_trade(const Trade& t, int64_t gen_time = 0, int64_t trigger_time = 0) {
        return write(kTrade, &t, sizeof t, gen_time, trigger_time);
    }

    uint32_t page_index() const { return page_.index; }
    uint32_t position() const { return pos_; }
    uint64_t frames_written() const { return frames_; }
    const std::string& path() const { return path_; }

    // msync the current page: committed frames survive a power loss.
    void sync() {
        if (page_.base) ::msync(page_.base, page_.size, MS_SYNC);
    }

    // Set CLOSED, msync, unmap and release the lock.
    void close() {
        if (page_.base) {
            uint32_t flags = detail::load_acquire(page_.base, detail::kFlagsOff);
            detail::store_release(page_.base, detail::kFlagsOff, flags | kClosed);
            detail::publish_cursor(page_.base, uint32_t(pos_));  // parked followers wake and see CLOSED
            sync();
            page_.unmap();
        }
        if (lock_fd_ >= 0) {
            ::close(lock_fd_);  // closing the open file releases the OFD lock
            lock_fd_ = -1;
        }
    }

   private:
    std::string path_;
    Options opt_;
    int lock_fd_ = -1;
    detail::Mapping page_;
    uint64_t pos_ = 0, cap_ = 0;
    uint32_t page_size_ = 0;
    uint64_t frames_ = 0;

    uint32_t padded(uint32_t len) const {
        if (opt_.pad_to <= 1) return len;
        return (len + opt_.pad_to - 1) / opt_.pad_to * opt_.pad_to;
    }

    void commit(uint32_t end) {
        // release: a reader that acquires the cursor sees every byte of the frame; parked followers wake
        detail::publish_cursor(page_.base, end);
        pos_ = end;
        ++frames_;
    }

    static void init_page(int fd, uint32_t capacity, uint32_t index, const std::string& path) {
        // a full disk must fail here, not as SIGBUS on a later store (posix_fallocate would
        // reserve the blocks, but see kftools/journal/writer.py: it cost cursors under kill -9)
        struct statvfs vfs;
        if (::fstatvfs(fd, &vfs) == 0 && uint64_t(vfs.f_bavail) * vfs.f_frsize < capacity) {
            errno = ENOSPC;
            throw Error(detail::sys_error(path + ": page of " + std::to_string(capacity) + " bytes"));
        }
        if (::ftruncate(fd, capacity) != 0) throw Error(detail::sys_error(path + ": ftruncate"));
        PageHeader h{};
        h.write_cursor = kPageHeaderSize;
        h.capacity = capacity;
        h.magic = kMagic;
        h.page_index = index;
        h.writer_pid = uint32_t(::getpid());
        if (::pwrite(fd, &h, sizeof h, 0) != ssize_t(sizeof h))
            throw Error(detail::sys_error(path + ": write header"));
        // version last: a reader treats a header without it as not yet written
        uint32_t v = kVersion;
        if (::pwrite(fd, &v, 4, offsetof(PageHeader, version)) != 4)
            throw Error(detail::sys_error(path + ": write header"));
    }

    void open() {
        if (opt_.page_size && opt_.page_size < kMinPageSize)
            throw Error("page size " + std::to_string(opt_.page_size) + " is below " + std::to_string(kMinPageSize));
        if (!detail::exists(path_)) refuse_stale_pages();  // before creating anything
        // O_NONBLOCK: a FIFO at the path must not block the open
        int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NONBLOCK, 0644);
        if (fd < 0) throw OutputError(detail::sys_error(path_ + ": cannot open for writing"));
        bool locked = false;
        for (int i = 0; i < 5 && !(locked = detail::try_lock(fd)); ++i) ::usleep(10000);
        if (!locked) {
            ::close(fd);
            uint32_t pid = detail::read_writer_pid(path_);
            throw JournalLocked(path_ + ": journal is locked by a writer (" +
                                (pid ? "pid " + std::to_string(pid) : std::string("another process")) + ")");
        }
        lock_fd_ = fd;
        try {
            struct stat st;
            PageHeader h{}, zero{};
            if (::fstat(fd, &st) != 0) throw Error(detail::sys_error(path_));
            bool got = st.st_size >= kPageHeaderSize && ::pread(fd, &h, sizeof h, 0) == ssize_t(sizeof h);
            // all zero, or a kftools header whose creator died before writing the version:
            // no frame was ever committed, so (re)initializing loses nothing
            bool fresh = std::memcmp(&h, &zero, sizeof h) == 0 ||
                         (h.version == 0 && h.magic == kMagic && h.write_cursor == kPageHeaderSize);
            if (!S_ISREG(st.st_mode))
                throw OutputError(path_ + ": not a regular file (a FIFO, device or socket is never a journal)");
            if (st.st_size == 0 || (got && fresh)) {
                refuse_stale_pages();
                init_page(fd, opt_.page_size ? opt_.page_size : kDefaultPageSize, 0, path_);
            }
            remove_own_next_page(detail::last_page_index(path_) + 1);  // a page a killed writer was making
            verify_before_last();
            adopt(open_last());
        } catch (...) {
            close();
            throw;
        }
    }

    // Delete `<page index>.tmp` only if it is provably a page of this journal a killed writer left
    // (as the Python Writer): the lock is held, so no live writer of this journal is making it; it must
    // be a regular file of this user whose header is unwritten (all zero) or names this page index.
    // Anything else (a note, a link, another journal's page) is left alone.
    void remove_own_next_page(uint32_t index) const {
        std::string tmp = page_path(path_, index) + kTmpSuffix;
        struct stat st;
        if (::lstat(tmp.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::getuid()) return;
        int fd = ::open(tmp.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) return;
        uint8_t head[kPageHeaderSize];
        ssize_t got = ::pread(fd, head, sizeof head, 0);
        ::close(fd);
        if (got < 0) return;
        bool zero = true;
        for (ssize_t i = 0; i < got; ++i) zero = zero && head[i] == 0;
        bool ours = zero;
        if (!zero && got == ssize_t(kPageHeaderSize)) {
            PageHeader h;
            std::memcpy(&h, head, sizeof h);
            ours = h.magic == kMagic && h.page_index == index;
        }
        if (ours) ::unlink(tmp.c_str());
    }

    // A new journal never inherits pages it did not write.
    void refuse_stale_pages() const {
        if (uint32_t stale = later_page(0))
            throw OutputError(path_ + ": " + page_path(path_, stale) + " exists but " + path_ +
                        " is a new journal: it is a page of another journal; remove it before writing here");
    }

    // The lowest page number above `index` whose file exists (0: none), by the naming rule.
    uint32_t later_page(uint32_t index) const {
        auto slash = path_.rfind('/');
        std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
        std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
        uint32_t best = 0;
        DIR* d = ::opendir(dir.c_str());
        if (!d) return 0;
        while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name.size() <= base.size() + 1 || name.compare(0, base.size() + 1, base + ".") != 0) continue;
            std::string tail = name.substr(base.size() + 1);
            constexpr size_t zst = sizeof kArchiveSuffix - 1;
            if (tail.size() > zst && tail.compare(tail.size() - zst, zst, kArchiveSuffix) == 0)
                tail.resize(tail.size() - zst);  // an archived page counts as the page
            if (tail.empty() || tail.size() > 9 || tail[0] == '0' ||
                tail.find_first_not_of("0123456789") != std::string::npos)
                continue;
            uint32_t n = uint32_t(std::stoul(tail));
            if (n > index && (best == 0 || n < best)) best = n;
        }
        ::closedir(d);
        return best;
    }

    // Never append to a journal `kftools verify` would not call clean: every page before the
    // last is walked as the last one is, and a gap before a later page is damage too.
    void verify_before_last() {
        uint32_t last = detail::last_page_index(path_);
        if (uint32_t later = later_page(last + 1))
            throw CorruptJournal(page_path(path_, last + 1) + " is missing but " + page_path(path_, later) +
                                 " exists; run `kftools recover` before writing to it");
        for (uint32_t i = 0; i < last; ++i) {
            std::string p = page_path(path_, i);
            int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
            if (fd < 0) throw NotAJournal(detail::sys_error(p));
            detail::Mapping m;
            try {
                struct stat st;
                PageHeader h{};
                if (::fstat(fd, &st) != 0) throw Error(detail::sys_error(p));
                if (!S_ISREG(st.st_mode)) throw CorruptJournal(p + ": not a regular file; run `kftools recover`");
                if (st.st_size < kPageHeaderSize || ::pread(fd, &h, sizeof h, 0) != ssize_t(sizeof h))
                    throw CorruptJournal(p + ": too small for a 64-byte page header; run `kftools recover`");
                std::string problem = detail::header_problem(h, i);
                if (!problem.empty()) throw CorruptJournal(p + ": " + problem + "; run `kftools recover`");
                detail::map_fd(fd, size_t(st.st_size), false, h.capacity, i, m, p);
            } catch (...) {
                ::close(fd);
                throw;
            }
            ::close(fd);
            validate(m, p);  // unmaps and throws on damage
            m.unmap();
        }
    }

    detail::Mapping open_last() {
        uint32_t index = detail::last_page_index(path_);
        std::string p = page_path(path_, index);
        int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0) throw NotAJournal(detail::sys_error(p));
        detail::Mapping m;
        try {
            struct stat st;
            PageHeader h{};
            if (::fstat(fd, &st) != 0) throw Error(detail::sys_error(p));
            if (st.st_size < kPageHeaderSize || ::pread(fd, &h, sizeof h, 0) != ssize_t(sizeof h))
                throw NotAJournal(p + ": too small for a 64-byte page header");
            std::string problem = detail::header_problem(h, index);
            if (!problem.empty()) throw NotAJournal(p + ": " + problem);
            detail::map_fd(fd, size_t(st.st_size), true, h.capacity, index, m, p);
        } catch (...) {
            ::close(fd);
            throw;
        }
        ::close(fd);  // the mapping keeps the file referenced
        validate(m, p);
        if (detail::load_acquire(m.base, detail::kFlagsOff) & kSealed) {
            m.unmap();
            throw CorruptJournal(p + ": page is sealed but the next page " + page_path(path_, index + 1) +
                                 " is missing; run `kftools recover` before writing to it");
        }
        return m;
    }

    // Walk every committed frame of the page: never append after damage.
    static void validate(detail::Mapping& m, const std::string& p) {
        uint32_t cur = detail::load_cursor(m.base);
        std::string why;
        uint32_t off = kPageHeaderSize;
        if (cur < kPageHeaderSize) why = "write cursor is below the 64-byte page header";
        if (cur > m.limit) why = "write cursor is past the page capacity or the end of the file";
        for (uint32_t end = why.empty() ? cur : 0; off < end;) {
            if (const char* bad = detail::frame_problem(m.base, off, end)) {
                why = bad;
                break;
            }
            uint32_t len;
            std::memcpy(&len, m.base + off, 4);  // frames need not be 4-aligned
            off += kFrameHeaderSize + len;
        }
        if (!why.empty()) {
            m.unmap();
            throw CorruptJournal(p + ": page " + std::to_string(m.index) + " offset " + std::to_string(off) + ": " +
                                 why + "; run `kftools recover` before writing to it");
        }
    }

    void adopt(detail::Mapping m) {
        page_ = m;
        cap_ = m.limit;
        pos_ = detail::load_cursor(m.base);
        auto* hdr = reinterpret_cast<const PageHeader*>(m.base);
        if (!page_size_) page_size_ = opt_.page_size ? opt_.page_size : hdr->capacity;
        detail::store_release(m.base, detail::kPidOff, uint32_t(::getpid()));
        uint32_t flags = detail::load_acquire(m.base, detail::kFlagsOff);
        detail::store_release(m.base, detail::kFlagsOff, flags & ~uint32_t(kClosed));
    }

    void roll(uint64_t total) {
        if (kPageHeaderSize + total > page_size_)
            throw FrameTooLarge(path_ + ": a " + std::to_string(total) + "-byte frame does not fit in a " +
                                std::to_string(page_size_) + "-byte page");
        uint32_t next = page_.index + 1;
        std::string final_path = page_path(path_, next), tmp = final_path + kTmpSuffix;
        remove_own_next_page(next);
        // never through a link, never over a file that is not provably ours
        int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) throw OutputError(detail::sys_error(tmp + ": cannot create the next page"));
        detail::Mapping m;
        try {
            init_page(fd, page_size_, next, tmp);
            detail::map_fd(fd, page_size_, true, page_size_, next, m, tmp);
        } catch (...) {
            ::close(fd);
            ::unlink(tmp.c_str());
            throw;
        }
        ::close(fd);
        // rename makes the page appear whole: a follower never maps a half-made page
        if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
            m.unmap();
            throw Error(detail::sys_error("rename " + tmp));
        }
        uint32_t flags = detail::load_acquire(page_.base, detail::kFlagsOff);
        detail::store_release(page_.base, detail::kFlagsOff, flags | kSealed);
        detail::publish_cursor(page_.base, uint32_t(pos_));  // parked followers wake and roll over
        page_.unmap();
        adopt(m);
    }
};

// A read-only follower. poll() returns the next committed frame without
// blocking and moves to the next page when the current one is final.
class Reader {
   public:
    explicit Reader(std::string path) : path_(std::move(path)) {}
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;
    ~Reader() {
        cur_.unmap();
        prev_.unmap();
    }

    // Next committed frame into `f`; false when there is none yet (or damage).
    // With `eager`, checks for a next page file right away (reading a finished
    // journal); otherwise only on SEALED or every 2^20th empty poll (about a
    // millisecond): a stat() is a syscall, and even one per thousand polls
    // dominated the busy loop's latency.
    bool poll(Frame& f, bool eager = false) {
        for (;;) {
            if (!damage_.empty()) return false;
            if (!cur_.base && !open_page(index_, cur_)) return false;
            uint32_t end = detail::load_cursor(cur_.base);
            if (end > off_) {
                if (end > cur_.limit) return fail("write cursor is past the page capacity or the end of the file");
                if (const char* bad = detail::frame_problem(cur_.base, off_, end)) return fail(bad);
                f.header = reinterpret_cast<const FrameHeader*>(cur_.base + off_);
                f.payload = cur_.base + off_ + kFrameHeaderSize;
                f.page = index_;
                f.offset = off_;
                off_ += kFrameHeaderSize + f.header->length;
                idle_ = 0;
                return true;
            }
            bool sealed = detail::load_acquire(cur_.base, detail::kFlagsOff) & kSealed;
            if (!sealed && !eager && (++idle_ & 0xFFFFF) != 0) return false;
            if (!sealed && !detail::exists(page_path(path_, index_ + 1))) return false;
            // this page is final: take any frame committed before the writer moved on
            if (detail::load_cursor(cur_.base) > off_) continue;
            detail::Mapping next;
            if (!open_page(index_ + 1, next)) {
                if (sealed && eager) return fail("page is sealed but the next page is missing");
                return false;
            }
            prev_.unmap();  // keep one page back so the caller's last Frame stays valid
            prev_ = cur_;
            cur_ = next;
            ++index_;
            off_ = kPageHeaderSize;
        }
    }

    // Busy-poll, calling fn(const Frame&) -> bool (false stops) for each frame.
    // Returns when fn stops, on damage, or after `idle_timeout_ns` without a frame (< 0: never).
    template <class F>
    void follow(F&& fn, int64_t idle_timeout_ns = -1) {
        Frame f;
        int64_t idle_since = idle_timeout_ns >= 0 ? now_ns() : 0;
        for (uint64_t spins = 0;;) {
            if (poll(f)) {
                if (!fn(static_cast<const Frame&>(f))) return;
                if (idle_timeout_ns >= 0) idle_since = now_ns();
                continue;
            }
            if (!damage_.empty()) return;
            if (idle_timeout_ns >= 0 && (++spins & 255) == 0 && now_ns() - idle_since > idle_timeout_ns) return;
        }
    }

    // True once the writer closed the journal cleanly (CLOSED on its last page) and every frame was read.
    bool finished() const {
        if (!cur_.base) return false;
        uint32_t flags = detail::load_acquire(cur_.base, detail::kFlagsOff);
        // CLOSED is set after the last commit: loaded first, the cursor read next is the final one
        return (flags & kClosed) && !(flags & kSealed) && detail::load_cursor(cur_.base) == off_;
    }

    // Where the valid data ended and why (empty: no damage seen).
    const std::string& damage() const { return damage_; }
    uint32_t page_index() const { return index_; }
    uint32_t offset() const { return off_; }

   private:
    std::string path_;
    detail::Mapping cur_, prev_;
    uint32_t index_ = 0, off_ = kPageHeaderSize;
    uint32_t idle_ = 0;
    std::string damage_;

    bool fail(const char* why) {
        damage_ = page_path(path_, index_) + ": page " + std::to_string(index_) + " offset " +
                  std::to_string(off_) + ": " + why;
        return false;
    }

    // Map page `index`; false if it is not there yet (missing, empty, unwritten header).
    bool open_page(uint32_t index, detail::Mapping& out) {
        std::string p = page_path(path_, index);
        int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            // `kftools archive` compressed this page: zstd is not a dependency of this header, so say so
            if (errno == ENOENT && detail::exists(p + kArchiveSuffix))
                throw ArchivedPage(p + kArchiveSuffix + ": page " + std::to_string(index) +
                                   " is archived; the C++ reader reads plain pages (`kftools unarchive " + path_ +
                                   "` restores them; kftools' Python reader reads archived pages as they are)");
            if (errno == ENOENT) return false;
            throw NotAJournal(detail::sys_error(p));
        }
        struct stat st;
        PageHeader h{};
        bool ok = ::fstat(fd, &st) == 0 && st.st_size >= kPageHeaderSize &&
                  ::pread(fd, &h, sizeof h, 0) == ssize_t(sizeof h);
        bool unwritten = true;
        std::string problem = ok ? detail::header_problem(h, index, &unwritten) : std::string();
        if (!ok || unwritten) {
            ::close(fd);
            return false;
        }
        if (!problem.empty()) {
            ::close(fd);
            throw NotAJournal(p + ": " + problem);
        }
        try {
            detail::map_fd(fd, size_t(st.st_size), false, h.capacity, index, out, p);
        } catch (...) {
            ::close(fd);
            throw;
        }
        ::close(fd);
        return true;
    }
};

}  // namespace kftools
