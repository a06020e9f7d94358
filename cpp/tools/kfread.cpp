// kfread: print a journal's frames as JSON lines, to check that C++ reads what Python wrote: page,
// offset and length, then exactly the line `kftools cat -F jsonl` prints (kftools/render.py's rule:
// named values as names, an unset trigger_time as null, floats as the shortest text that reads back
// to the same double, laid out as Python's repr, text \u-escaped as Python's json.dumps).
//
//   kfread PATH [--follow] [--count N] [--idle-ms M]
//
// Without --follow it reads to the current end and exits (3 on damage).
// With --follow it busy-polls, crossing pages, until N frames or M ms idle.
#include <sys/stat.h>

#include <charconv>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <string>

#include "args.hpp"

using namespace kftools;

static void put_u(std::string& out, unsigned c) {
    char b[16];
    std::snprintf(b, sizeof b, "\\u%04x", c);
    out += b;
}

// One code point of UTF-8 at s[i..n), as Python's decode("utf-8", "replace") reads it: a bad or cut sequence
// is U+FFFD for its longest valid prefix (at least one byte). Returns the bytes used.
static size_t utf8_next(const unsigned char* s, size_t i, size_t n, unsigned& cp) {
    unsigned c = s[i];
    if (c < 0x80) return cp = c, 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) need = 2, cp = c & 0x0F, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) need = 3, cp = c & 0x07, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return cp = 0xFFFD, 1;
    size_t k = 1;
    for (; k <= need; ++k) {
        if (i + k >= n) return cp = 0xFFFD, k;
        unsigned b = s[i + k];
        if (b < lo || b > hi) return cp = 0xFFFD, k;
        lo = 0x80, hi = 0xBF;
        cp = (cp << 6) | (b & 0x3F);
    }
    return k;
}

template <size_t N>
static void put_text(std::string& out, const char* key, const char (&s)[N]) {
    out += ",\"";
    out += key;
    out += "\":\"";
    size_t n = 0;
    while (n < N && s[n]) ++n;  // up to the first NUL
    const unsigned char* u = reinterpret_cast<const unsigned char*>(s);
    for (size_t i = 0; i < n;) {
        unsigned c;
        i += utf8_next(u, i, n, c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c == '\b') {
            out += "\\b";
        } else if (c == '\f') {
            out += "\\f";
        } else if (c < 0x20 || c > 0x7e) {
            if (c >= 0x10000) {  // a surrogate pair, as json.dumps writes it
                c -= 0x10000;
                put_u(out, 0xD800 | (c >> 10));
                put_u(out, 0xDC00 | (c & 0x3FF));
            } else {
                put_u(out, c);
            }
        } else {
            out += char(c);
        }
    }
    out += '"';
}

// A double as Python's repr writes it: the shortest digits that read back to the same double
// (std::to_chars), fixed notation for 1e-4 <= |v| < 1e16 (".0" when whole), else d.ddde+XX.
static void put_double(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";  // json.dumps
        return;
    }
    if (std::isinf(v)) {
        out += v < 0 ? "-Infinity" : "Infinity";
        return;
    }
    char b[64];
    auto r = std::to_chars(b, b + sizeof b, v, std::chars_format::scientific);
    *r.ptr = 0;
    const char* p = b;
    if (*p == '-') out += '-', ++p;
    std::string digits;
    for (; *p && *p != 'e'; ++p)
        if (*p != '.') digits += *p;
    int decpt = std::atoi(p + 1) + 1;  // v = 0.DIGITS x 10^decpt
    int nd = int(digits.size());
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            out += "0.";
            out.append(size_t(-decpt), '0');
            out += digits;
        } else if (decpt >= nd) {
            out += digits;
            out.append(size_t(decpt - nd), '0');
            out += ".0";
        } else {
            out.append(digits, 0, size_t(decpt));
            out += '.';
            out.append(digits, size_t(decpt), std::string::npos);
        }
        return;
    }
    out += digits[0];
    if (nd > 1) {
        out += '.';
        out.append(digits, 1, std::string::npos);
    }
    std::snprintf(b, sizeof b, "e%c%02d", decpt - 1 < 0 ? '-' : '+', std::abs(decpt - 1));
    out += b;
}

static void put_int(std::string& out, const char* key, uint64_t v) {
    char b[64];
    std::snprintf(b, sizeof b, ",\"%s\":%" PRIu64, key, v);
    out += b;
}

static void put_num(std::string& out, const char* key, double v) {
    out += ",\"";
    out += key;
    out += "\":";
    put_double(out, v);
}

// A named value as its display name (kftools/journal/format.py's enums, lower case), else its number.
template <size_t N>
static void put_label(std::string& out, const char* key, uint32_t v, const char* const (&names)[N]) {
    if (v < N) {
        out += ",\"";
        out += key;
        out += "\":\"";
        out += names[v];
        out += '"';
    } else {
        put_int(out, key, v);
    }
}
static const char* const kSideNames[] = {"buy", "sell"};
static const char* const kOrderTypeNames[] = {"limit", "market", "limit_ioc", "limit_fok", "post_only"};
static const char* const kStatusNames[] = {"accepted", "partially_filled", "filled", "canceled", "rejected",
                                           "cancel_rejected", "expired", "modified", "modify_rejected"};
static const char* const kRejectNames[] = {"none", "bad_quantity", "bad_price", "unknown_symbol", "unknown_order",
                                           "too_late", "no_market", "duplicate_id", "post_only_would_take",
                                           "not_finite"};
static const char* const kLiquidityNames[] = {"maker", "taker"};

static void put_i64(std::string& out, const char* key, int64_t v) {
    out += ",\"";
    out += key;
    out += "\":";
    out += std::to_string(v);
}

template <size_t N>
static void put_nums(std::string& out, const char* key, const double (&v)[N]) {
    out += ",\"";
    out += key;
    out += "\":[";
    for (size_t i = 0; i < N; ++i) {
        if (i) out += ',';
        put_double(out, v[i]);
    }
    out += ']';
}


static std::string to_json(const Frame& f) {
    const FrameHeader& h = *f.header;
    static const char* const names[] = {"", "Ticker", "Order", "Trade", "CancelRequest", "OrderUpdate", "Fill", "Ack",
                                        "ModifyRequest", "Depth", "Timer"};
    std::string type = h.msg_type <= kTimer ? names[h.msg_type] : "type" + std::to_string(h.msg_type);
    char b[256];
    std::snprintf(b, sizeof b,
                  "{\"page\":%u,\"offset\":%u,\"length\":%u,\"type\":\"%s\",\"msg_type\":%u,\"gen_time\":%" PRId64
                  ",\"trigger_time\":",
                  f.page, f.offset, h.length, type.c_str(), h.msg_type, h.gen_time);
    std::string out = b;
    if (h.trigger_time == 0) {
        out += "null";  // unset
    } else {
        out += std::to_string(h.trigger_time);
    }
    std::snprintf(b, sizeof b, ",\"source\":%u,\"dest\":%u", h.source, h.dest);
    out += b;
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
            put_int(out, "order_id", o.order_id), put_label(out, "side", o.side, kSideNames);
            put_label(out, "order_type", o.order_type, kOrderTypeNames), put_num(out, "price", o.price);
            put_num(out, "quantity", o.quantity), put_num(out, "filled_quantity", o.filled_quantity);
            put_text(out, "client_order_id", o.client_order_id);
            break;
        }
        case kTrade: {
            const Trade& t = f.as<Trade>();
            put_text(out, "symbol", t.symbol);
            put_int(out, "trade_id", t.trade_id), put_int(out, "order_id", t.order_id);
            put_label(out, "side", t.side, kSideNames), put_int(out, "reserved", t.reserved);
            put_num(out, "price", t.price), put_num(out, "volume", t.volume);
            break;
        }
        case kCancelRequest: {
            const CancelRequest& c = f.as<CancelRequest>();
            put_text(out, "symbol", c.symbol), put_int(out, "order_id", c.order_id);
            break;
        }
        case kOrderUpdate: {
            const OrderUpdate& u = f.as<OrderUpdate>();
            put_text(out, "symbol", u.symbol), put_int(out, "order_id", u.order_id);
            put_label(out, "status", u.status, kStatusNames), put_label(out, "reject_reason", u.reject_reason, kRejectNames);
            put_label(out, "side", u.side, kSideNames), put_label(out, "order_type", u.order_type, kOrderTypeNames);
            put_num(out, "price", u.price), put_num(out, "quantity", u.quantity);
            put_num(out, "filled_quantity", u.filled_quantity), put_num(out, "remaining_quantity", u.remaining_quantity);
            put_num(out, "avg_price", u.avg_price);
            break;
        }
        case kFill: {
            const Fill& x = f.as<Fill>();
            put_text(out, "symbol", x.symbol), put_int(out, "fill_id", x.fill_id), put_int(out, "order_id", x.order_id);
            put_label(out, "side", x.side, kSideNames), put_label(out, "liquidity", x.liquidity, kLiquidityNames);
            put_num(out, "price", x.price), put_num(out, "quantity", x.quantity), put_num(out, "fee", x.fee);
            put_int(out, "flags", x.flags), put_int(out, "reserved", x.reserved);
            break;
        }
        case kAck: {
            put_int(out, "frames", f.as<Ack>().frames);
            break;
        }
        case kModifyRequest: {
            const ModifyRequest& m = f.as<ModifyRequest>();
            put_text(out, "symbol", m.symbol), put_int(out, "order_id", m.order_id);
            put_num(out, "price", m.price), put_num(out, "quantity", m.quantity);
            break;
        }
        case kDepth: {
            const Depth& d = f.as<Depth>();
            put_text(out, "symbol", d.symbol);
            put_nums(out, "bid_price", d.bid_price), put_nums(out, "bid_volume", d.bid_volume);
            put_nums(out, "ask_price", d.ask_price), put_nums(out, "ask_volume", d.ask_volume);
            break;
        }
        case kTimer: {
            const Timer& t = f.as<Timer>();
            put_int(out, "timer_id", t.timer_id), put_i64(out, "at", t.at);
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
