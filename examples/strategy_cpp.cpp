// A C++ strategy in its own process, built from the header alone: `kftools replay --order-journal`.
//
//   g++ -O2 -std=c++17 -Icpp/include -o strategy_cpp examples/strategy_cpp.cpp      (or: make -C cpp)
//   kftools replay rec.dat --max -o out.dat --order-journal cpp.orders.dat &
//   ./strategy_cpp out.dat cpp.orders.dat
//
// The mean-reversion trader of examples/strategy_example.py, line for line: a moving average of each
// symbol's last price over `kWindow` tickers; below it by more than `kThreshold` buy at the ask, above it
// sell at the bid, up to `kMaxPosition` either way; an order not done after `kPatience` tickers of its
// symbol is canceled. The position comes only from the Fill frames the replay sends back.
//
// The protocol (docs/backtest.md): follow the replay's output; write Order and CancelRequest frames
// (trigger_time = the recording time of the frame being handled) into our own order journal; each time
// we have caught up with the output, an Ack frame saying how many output frames we have handled (a
// lockstep replay waits for it). Answers are OrderUpdate and Fill frames whose dest is our source id.
// We stop when the replay has closed its output and we have read all of it.
#include <time.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <string>
#include <utility>

#include "kftools/journal.hpp"

namespace {

constexpr size_t kWindow = 20;
constexpr double kThreshold = 0.0005;
constexpr double kQuantity = 10.0;
constexpr double kMaxPosition = 10.0;
constexpr long kPatience = 5;

struct SymbolState {
    std::deque<double> hist;
    double sum = 0.0;
    long seen = 0;
    uint64_t working = 0;  // order id of the working order, 0 if none
    long sent_at = 0;      // tickers of the symbol when it was sent
    double position = 0.0;
};

class MeanReversion {
   public:
    MeanReversion(kftools::Writer& orders, uint32_t source) : orders_(orders), source_(source) {}

    void on_frame(const kftools::Frame& f) {
        switch (f.msg_type()) {
            case kftools::kTicker: on_ticker(f.as<kftools::Ticker>(), f.header->trigger_time); break;
            case kftools::kOrderUpdate:
                if (f.header->dest == source_) on_order_update(f.as<kftools::OrderUpdate>());
                break;
            case kftools::kFill:
                if (f.header->dest == source_) on_fill(f.as<kftools::Fill>());
                break;
            default: break;  // trades, other types: the exchange uses them, this strategy does not
        }
    }

    uint64_t orders_sent() const { return next_id_ - 1; }
    long fills() const { return fills_; }
    const std::map<std::string, SymbolState>& symbols() const { return syms_; }

   private:
    kftools::Writer& orders_;
    uint32_t source_;
    std::map<std::string, SymbolState> syms_;
    uint64_t next_id_ = 1;
    long fills_ = 0;

    static std::string text(const char* s, size_t n) { return std::string(s, strnlen(s, n)); }

    void on_ticker(const kftools::Ticker& t, int64_t now) {
        std::string sym = text(t.symbol, sizeof t.symbol);
        SymbolState& s = syms_[sym];
        long n = ++s.seen;
        double px = t.last_price;
        if (s.hist.size() == kWindow) {
            s.sum -= s.hist.front();
            s.hist.pop_front();
        }
        s.hist.push_back(px);
        s.sum += px;
        if (s.working) {
            if (n - s.sent_at == kPatience) cancel(sym, s.working, now);  // the answer comes as an update
            return;
        }
        if (s.hist.size() < kWindow) return;
        double avg = s.sum / double(kWindow);
        double pos = s.position;
        if (px < avg * (1 - kThreshold) && pos < kMaxPosition && t.ask_price > 0) {
            s.working = send(sym, kftools::kBuy, t.ask_price, std::min(kQuantity, kMaxPosition - pos), now);
            s.sent_at = n;
        } else if (px > avg * (1 + kThreshold) && pos > -kMaxPosition && t.bid_price > 0) {
            s.working = send(sym, kftools::kSell, t.bid_price, std::min(kQuantity, kMaxPosition + pos), now);
            s.sent_at = n;
        }
    }

    void on_order_update(const kftools::OrderUpdate& u) {
        if (u.status != kftools::kFilled && u.status != kftools::kCanceled && u.status != kftools::kRejected) return;
        auto it = syms_.find(text(u.symbol, sizeof u.symbol));
        if (it != syms_.end() && it->second.working == u.order_id) it->second.working = 0;
    }

    void on_fill(const kftools::Fill& f) {
        ++fills_;
        SymbolState& s = syms_[text(f.symbol, sizeof f.symbol)];
        double d = f.side == kftools::kBuy ? 1.0 : -1.0;
        double pos = s.position, next = pos + d * f.quantity;
        // as kftools' Account: a position closed to within rounding is flat
        bool closing = pos != 0.0 && (pos > 0) != (d > 0);
        if (closing && std::fabs(next) < 1e-12 * std::max(1.0, f.quantity)) next = 0.0;
        s.position = next;
    }

    uint64_t send(const std::string& sym, uint32_t side, double price, double qty, int64_t now) {
        kftools::Order o{};
        kftools::set_text(o.symbol, sym.c_str());
        o.order_id = next_id_++;
        o.side = side;
        o.order_type = kftools::kLimit;
        o.price = price;
        o.quantity = qty;
        kftools::set_text(o.client_order_id, ("bt-" + std::to_string(o.order_id)).c_str());
        orders_.write_order(o, 0, now);
        return o.order_id;
    }

    void cancel(const std::string& sym, uint64_t id, int64_t now) {
        kftools::CancelRequest c{};
        kftools::set_text(c.symbol, sym.c_str());
        c.order_id = id;
        orders_.write(kftools::kCancelRequest, &c, sizeof c, 0, now);
    }
};

void nap(long ns) {
    timespec ts{0, ns};
    nanosleep(&ts, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s OUTPUT ORDERS [SOURCE]\n", argv[0]);
        return 2;
    }
    std::string output = argv[1], orders_path = argv[2];
    uint32_t source = argc > 3 ? uint32_t(std::strtoul(argv[3], nullptr, 10)) : 0;
    if (kftools::detail::exists(orders_path)) {
        std::fprintf(stderr, "kftools: error: %s: exists (an order journal must be new)\n", orders_path.c_str());
        return 2;
    }
    try {
        kftools::Writer::Options opt;
        opt.page_size = 1 << 20;
        opt.source = source;
        kftools::Writer orders(orders_path, opt);
        kftools::Reader out(output);
        MeanReversion strategy(orders, source);
        kftools::Ack ready{0};  // ready (start-up over): a lockstep replay starts once every strategy said so
        orders.write(kftools::kAck, &ready, sizeof ready, 0, 0);
        kftools::Frame f;
        uint64_t handled = 0, acked = 0;
        for (long idle = 0;;) {
            if (out.poll(f)) {
                strategy.on_frame(f);
                ++handled;
                idle = 0;
                continue;
            }
            if (!out.damage().empty()) {
                std::fprintf(stderr, "kftools: error: %s\n", out.damage().c_str());
                return 3;
            }
            if (handled > acked) {  // caught up: tell the replay how far we are
                kftools::Ack a{handled};
                orders.write(kftools::kAck, &a, sizeof a, 0, 0);
                acked = handled;
            }
            if (out.finished()) break;
            // spin a little (the replay answers in microseconds), then let a busy machine have the core
            if (++idle > 2000) nap(idle > 20000 ? 200000 : 20000);
        }
        std::printf("{\"orders_sent\": %llu, \"fills\": %ld, \"positions\": {", (unsigned long long)strategy.orders_sent(),
                    strategy.fills());
        const char* sep = "";
        for (const auto& [sym, s] : strategy.symbols()) {
            if (s.position != 0.0) {
                std::printf("%s\"%s\": %.17g", sep, sym.c_str(), s.position);
                sep = ", ";
            }
        }
        std::printf("}}\n");
    } catch (const kftools::Error& e) {
        std::fprintf(stderr, "kftools: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
