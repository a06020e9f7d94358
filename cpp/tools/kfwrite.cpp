// kfwrite: append a deterministic sequence of frames (for tests and kill -9 drills).
//
//   kfwrite PATH [--frames N] [--start K] [--page-size B] [--pad-to P] [--rate R] [--hold]
//
// Frame k (k = start, start+1, ...) is, by k % 4: a Ticker, an Order, a Trade,
// or a raw frame of unregistered type 200; every field is a function of k, so a
// reader can check that nothing is missing, repeated or altered (the Python
// twin of the formula is expected_frame() in tests/test_cpp.py).
// --frames 0 writes forever; --rate paces frames/s (0: as fast as possible);
// --hold keeps the journal open after writing until stdin closes.
#include <unistd.h>

#include <string>

#include "args.hpp"

using namespace kftools;

static const char* const kSymbols[] = {"BTCUSDT", "ETHUSDT", "600000.SH"};
static constexpr uint32_t kRawType = 200;

static void write_one(Writer& w, uint64_t k) {
    const char* sym = kSymbols[k % 3];
    int64_t trigger = int64_t(k);
    uint32_t source = 7, dest = uint32_t(k % 5);
    double x = double(k);
    switch (k % 4) {
        case 0: {
            Ticker t = make_ticker(sym, x + 0.25, x, x + 0.5, x * 2);
            w.write(kTicker, &t, sizeof t, 0, trigger, source, dest);
            break;
        }
        case 1: {
            Order o{};
            set_text(o.symbol, sym);
            o.order_id = k, o.side = uint32_t(k % 2), o.order_type = uint32_t(k / 2 % 2);
            o.price = x + 0.125, o.quantity = double(k % 100 + 1), o.filled_quantity = double(k % 100) / 2;
            set_text(o.client_order_id, ("c-" + std::to_string(k)).c_str());
            w.write(kOrder, &o, sizeof o, 0, trigger, source, dest);
            break;
        }
        case 2: {
            Trade t{};
            set_text(t.symbol, sym);
            t.trade_id = k, t.order_id = k / 2, t.side = uint32_t(k % 2);
            t.price = x + 0.375, t.volume = double(k % 7) + 0.5;
            w.write(kTrade, &t, sizeof t, 0, trigger, source, dest);
            break;
        }
        default: {
            // 20 bytes: not a multiple of 8, so later frames start unaligned
            unsigned char raw[20];
            uint64_t a = k, b = k * 3;
            uint32_t c = 0xC0FFEE;
            std::memcpy(raw, &a, 8), std::memcpy(raw + 8, &b, 8), std::memcpy(raw + 16, &c, 4);
            w.write(kRawType, raw, sizeof raw, 0, trigger, source, dest);
        }
    }
}

int main(int argc, char** argv) {
    if (argc < 2 || argv[1][0] == '-') {
        std::fprintf(stderr, "usage: kfwrite PATH [--frames N] [--start K] [--page-size B] [--pad-to P] [--rate R] [--hold]\n");
        return 2;
    }
    try {
        Writer::Options o;
        o.page_size = uint32_t(kfcli::num(argc, argv, "--page-size", 0));
        o.pad_to = uint32_t(kfcli::num(argc, argv, "--pad-to", 0));
        uint64_t frames = kfcli::num(argc, argv, "--frames", 1000);
        uint64_t start = kfcli::num(argc, argv, "--start", 0);
        uint64_t rate = kfcli::num(argc, argv, "--rate", 0);
        Writer w(argv[1], o);
        int64_t interval = rate ? int64_t(1000000000 / rate) : 0;
        int64_t next = now_ns();
        for (uint64_t i = 0; frames == 0 || i < frames; ++i) {
            if (interval) {
                kfcli::spin_until(next);
                next += interval;
            }
            write_one(w, start + i);
        }
        if (kfcli::flag(argc, argv, "--hold")) {
            std::printf("ready %d\n", int(::getpid()));
            std::fflush(stdout);
            char buf[256];
            while (::read(0, buf, sizeof buf) > 0) {
            }
        }
        w.close();
    } catch (const std::exception& e) {
        return kfcli::report("kfwrite", e);
    }
    return 0;
}
