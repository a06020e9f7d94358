// latency: the C++ half of `kftools bench latency --cpp` (driven by kftools/bench/cpp.py).
//
//   latency write PATH N INTERVAL_NS [--delay-ms D] [--page-size B]
//       paced writer: N Tickers, one every INTERVAL_NS, after D ms so the follower
//       is already spinning; gen_time is CLOCK_REALTIME ns. The pacing busy-waits:
//       a sleeping writer gets woken on the follower's core and measures the
//       scheduler instead (p50 ~8 us on a 2-core VM).
//   latency follow PATH N [--skip K]
//       busy-poll follower: prints {"samples":..,"p50_ns":..,"p99_ns":..,"p999_ns":..}
//       of now - gen_time at decode, ignoring the first K frames (warm-up).
//   latency throughput PATH N [--pad-to P]
//       unpaced append of N Tickers: prints {"frames":..,"seconds":..,"per_s":..}.
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <string>
#include <vector>

#include "../tools/args.hpp"

using namespace kftools;

static int64_t pct(std::vector<int64_t>& v, double q) {
    if (v.empty()) return -1;
    size_t k = std::min(v.size() - 1, size_t(q * double(v.size())));
    std::nth_element(v.begin(), v.begin() + long(k), v.end());
    return v[k];
}

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: latency write|follow|throughput PATH N [INTERVAL_NS] [options]\n");
        return 2;
    }
    std::string mode = argv[1];
    const char* path = argv[2];
    uint64_t n = std::strtoull(argv[3], nullptr, 0);
    // options start after the positionals; args.hpp looks from argv[2] on, which is harmless here
    try {
        if (mode == "write") {
            int64_t interval = argc > 4 ? std::strtoll(argv[4], nullptr, 0) : 15000;
            Writer::Options o;
            o.page_size = uint32_t(kfcli::num(argc, argv, "--page-size", 0));
            Writer w(path, o);
            ::usleep(useconds_t(kfcli::num(argc, argv, "--delay-ms", 300) * 1000));
            Ticker t = make_ticker("BTCUSDT", 100, 99.5, 100.5, 1);
            int64_t next = now_ns();
            for (uint64_t i = 0; i < n; ++i) {
                kfcli::spin_until(next);
                t.last_price = 100 + double(i % 100);
                t.volume = double(i);
                // pace from the actual write: after a preemption the writer does not
                // burst to catch up, so followers measure latency, not backlog
                next = w.write_ticker(t) + interval;
            }
            w.close();
        } else if (mode == "follow") {
            uint64_t skip = kfcli::num(argc, argv, "--skip", 0), seen = 0;
            std::vector<int64_t> lat;
            lat.reserve(n);
            Reader r(path);
            r.follow(
                [&](const Frame& f) {
                    int64_t d = now_ns() - f.gen_time();
                    if (seen++ >= skip) lat.push_back(d);
                    return seen < n;
                },
                int64_t(10) * 1000000000);
            size_t samples = lat.size();
            int64_t p50 = pct(lat, 0.5), p99 = pct(lat, 0.99), p999 = pct(lat, 0.999);
            std::printf("{\"samples\":%zu,\"p50_ns\":%" PRId64 ",\"p99_ns\":%" PRId64 ",\"p999_ns\":%" PRId64 "}\n",
                        samples, p50, p99, p999);
            if (!r.damage().empty()) std::fprintf(stderr, "latency: %s\n", r.damage().c_str());
        } else if (mode == "throughput") {
            Writer::Options o;
            o.pad_to = uint32_t(kfcli::num(argc, argv, "--pad-to", 0));
            Writer w(path, o);
            Ticker t = make_ticker("BTCUSDT", 100, 99.5, 100.5, 1);
            int64_t t0 = now_ns();
            for (uint64_t i = 0; i < n; ++i) {
                t.volume = double(i);
                w.write_ticker(t);
            }
            double secs = double(now_ns() - t0) / 1e9;
            w.close();
            std::printf("{\"frames\":%" PRIu64 ",\"seconds\":%.6f,\"per_s\":%.0f}\n", n, secs, double(n) / secs);
        } else {
            std::fprintf(stderr, "latency: unknown mode %s\n", mode.c_str());
            return 2;
        }
    } catch (const std::exception& e) {
        return kfcli::report("latency", e);
    }
    return 0;
}
