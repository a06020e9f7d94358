// A C++ event engine that also journals every event, so Python strategies can
// follow the same stream (see strategy.py beside this file).
//
//   hybrid_engine JOURNAL [FRAMES=100000] [RATE=10000]
//
// put(event) appends to the journal first, then dispatches to the C++
// listeners: a listener that reacts with put(order) then lands after the
// event that caused it, in the journal as in the dispatch.
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kftools/journal.hpp"

struct Event {
    uint32_t type;
    const void* data;
    uint32_t len;
    int64_t trigger_time = 0;  // gen_time of the event that caused this one
    int64_t gen_time = 0;      // set by put(): the journal frame's gen_time
};

class EventEngine {
   public:
    using Listener = std::function<void(const Event&)>;

    explicit EventEngine(kftools::Writer& journal) : journal_(journal) {}

    void on(uint32_t type, Listener cb) { listeners_[type].push_back(std::move(cb)); }

    void put(Event e) {
        e.gen_time = journal_.write(e.type, e.data, e.len, 0, e.trigger_time);
        auto it = listeners_.find(e.type);
        if (it == listeners_.end()) return;
        for (auto& cb : it->second) cb(e);
    }

   private:
    kftools::Writer& journal_;
    std::unordered_map<uint32_t, std::vector<Listener>> listeners_;
};

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: hybrid_engine JOURNAL [FRAMES] [RATE per s]\n");
        return 2;
    }
    uint64_t frames = argc > 2 ? std::strtoull(argv[2], nullptr, 0) : 100000;
    uint64_t rate = argc > 3 ? std::strtoull(argv[3], nullptr, 0) : 10000;
    try {
        kftools::Writer::Options opt;
        opt.pad_to = 64;  // cache-line sized payloads, as many engines use
        opt.source = 1;
        kftools::Writer journal(argv[1], opt);
        EventEngine engine(journal);

        // C++ listener: a toy momentum rule that buys after three up-ticks.
        std::unordered_map<std::string, std::pair<double, int>> last;  // symbol -> (price, up-ticks)
        uint64_t order_id = 0, orders = 0;
        engine.on(kftools::kTicker, [&](const Event& e) {
            const auto& t = *static_cast<const kftools::Ticker*>(e.data);
            auto& [price, ups] = last[std::string(t.symbol, strnlen(t.symbol, sizeof t.symbol))];
            ups = t.last_price > price ? ups + 1 : 0;
            price = t.last_price;
            if (ups == 3) {
                kftools::Order o{};
                kftools::set_text(o.symbol, t.symbol);
                o.order_id = ++order_id, o.side = 0, o.order_type = 0;
                o.price = t.ask_price, o.quantity = 1;
                kftools::set_text(o.client_order_id, ("mom-" + std::to_string(order_id)).c_str());
                engine.put({kftools::kOrder, &o, sizeof o, e.gen_time});
            }
        });
        engine.on(kftools::kOrder, [&](const Event&) { ++orders; });

        // Simulated feed: a seeded random walk per symbol, paced at RATE.
        const char* symbols[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT"};
        double px[] = {60000, 3000, 150};
        uint64_t rng = 88172645463325252ull;
        int64_t interval = rate ? int64_t(1000000000 / rate) : 0, next = kftools::now_ns();
        for (uint64_t i = 0; i < frames; ++i) {
            if (interval) {
                while (kftools::now_ns() < next) {
                }
                next += interval;
            }
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            int s = int(i % 3);
            px[s] *= 1 + (double(rng % 2001) - 1000) * 1e-6;
            kftools::Ticker t = kftools::make_ticker(symbols[s], px[s], px[s] * 0.9999, px[s] * 1.0001,
                                                     double(rng % 100) / 10);
            engine.put({kftools::kTicker, &t, sizeof t});
        }
        std::printf("hybrid_engine: %llu tickers, %llu orders journaled to %s (page %u)\n",
                    (unsigned long long)frames, (unsigned long long)orders, argv[1], journal.page_index());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hybrid_engine: %s\n", e.what());
        return 1;
    }
    return 0;
}
