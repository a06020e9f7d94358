// kfread: print a journal's frames as JSON lines (the keys of Python's Frame.to_dict()
// plus page, offset and length), to check that C++ reads what Python wrote.
//
//   kfread PATH [--follow] [--count N] [--idle-ms M]
//
// Without --follow it reads to the current end and exits (3 on damage).
// With --follow it busy-polls, crossing pages, until N frames or M ms idle.
#include <sys/stat.h>

#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <string>

#include "args.hpp"

using namespace kftools;

template <size_t N>
static void put_text(std::string& out, const char* key, const char (&s)[N]) {
    out += ",\"";
    out += key;
    out += "\":\"";
    for (size_t i = 0; i < N && s[i]; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            out += b;
        } else {
            out += char(c);  // UTF-8 passes through
        }
    }
    out += '"';
}

static void put_num(std::string& out, const char* key, double v) {
    char b[64];
    std::snprintf(b, sizeof b, ",\"%s\":%.17g", key, v);
    out += b;
}

static void put_int(std::string& out, const char* key, uint64_t v) {
    char b[64];
    std::snprintf(b, sizeof b, ",\"%s\":%" PRIu64, key, v);
    out += b;
}

static std::string to_json(const Frame& f) {
    const FrameHeader& h = *f.header;
    static const char* const names[] = {"", "Ticker", "Order", "Trade"};
    std::string type = h.msg_type <= 3 ? names[h.msg_type] : "type" + std::to_string(h.msg_type);
    char b[256];
    std::snprintf(b, sizeof b,
                  "{\"page\":%u,\"offset\":%u,\"length\":%u,\"type\":\"%s\",\"msg_type\":%u,\"gen_time\":%" PRId64
                  ",\"trigger_time\":%" PRId64 ",\"source\":%u,\"dest\":%u",
                  f.page, f.offset, h.length, type.c_str(), h.msg_type, h.gen_time, h.trigger_time, h.source, h.dest);
    std::string out = b;
    switch (h.msg_type) {
        case kTicker: {
            const Ticker& t = f.as<Ticker>();
            put_text(out, "symbol", t.symbol);
            put_num(out, "last_price", t.last_price), put_num(out, "bid_price", t.bid_price);
            put_num(out, "ask_price", t.ask_price), put_num(out, "volume", t.volume);
            break;
        }
        case kOrder: {
            const Order& o = f.as<Order>();
            put_text(out, "symbol", o.symbol);
            put_int(out, "order_id", o.order_id), put_int(out, "side", o.side);
            put_int(out, "order_type", o.order_type), put_num(out, "price", o.price);
            put_num(out, "quantity", o.quantity), put_num(out, "filled_quantity", o.filled_quantity);
            put_text(out, "client_order_id", o.client_order_id);
            break;
        }
        case kTrade: {
            const Trade& t = f.as<Trade>();
            put_text(out, "symbol", t.symbol);
            put_int(out, "trade_id", t.trade_id), put_int(out, "order_id", t.order_id);
            put_int(out, "side", t.side), put_int(out, "reserved", t.reserved);
            put_num(out, "price", t.price), put_num(out, "volume", t.volume);
            break;
        }
        default: {
            out += ",\"payload\":\"";
            static const char hex[] = "0123456789abcdef";
            for (uint32_t i = 0; i < h.length; ++i) {
                out += hex[f.payload[i] >> 4];
                out += hex[f.payload[i] & 15];
            }
            out += '"';
        }
    }
    out += "}\n";
    return out;
}

int main(int argc, char** argv) {
    if (argc < 2 || argv[1][0] == '-') {
        std::fprintf(stderr, "usage: kfread PATH [--follow] [--count N] [--idle-ms M]\n");
        return 2;
    }
    // The Reader maps pages lazily and treats a missing page as "nothing yet": say what is wrong with
    // the path itself (as `kftools cat` does), rather than print nothing and exit 0.
    bool follow = kfcli::flag(argc, argv, "--follow");
    struct stat st;
    if (stat(argv[1], &st) != 0) {
        if (errno != ENOENT) {
            std::fprintf(stderr, "kfread: error: %s: %s\n", argv[1], std::strerror(errno));
            return 2;
        }
        if (!follow) {  // a follower waits for the journal to appear, as `kftools cat -f` does
            std::fprintf(stderr, "kfread: error: %s: no such journal\n", argv[1]);
            return 2;
        }
    } else if (S_ISDIR(st.st_mode)) {
        std::fprintf(stderr, "kfread: error: %s: is a directory, not a journal\n", argv[1]);
        return 2;
    } else if (!S_ISREG(st.st_mode)) {
        std::fprintf(stderr, "kfread: error: %s: not a regular file, not a journal\n", argv[1]);
        return 2;
    }
    try {
        Reader r(argv[1]);
        uint64_t count = kfcli::num(argc, argv, "--count", 0), n = 0;
        Frame f;
        if (follow) {
            int64_t idle = int64_t(kfcli::num(argc, argv, "--idle-ms", 5000)) * 1000000;
            r.follow(
                [&](const Frame& fr) {
                    std::fputs(to_json(fr).c_str(), stdout);
                    return !count || ++n < count;
                },
                idle);
        } else {
            while ((!count || n < count) && r.poll(f, true)) {
                std::fputs(to_json(f).c_str(), stdout);
                ++n;
            }
        }
        std::fflush(stdout);
        if (!r.damage().empty()) {
            std::fprintf(stderr, "kfread: %s\n", r.damage().c_str());
            return 3;
        }
    } catch (const std::exception& e) {
        return kfcli::report("kfread", e);
    }
    return 0;
}
