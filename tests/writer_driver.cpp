// The C++ Writer (cpp/include/kftools/journal.hpp) driven by the writer contract suite
// (tests/test_writer_contract.py), whose Python twin runs the same steps on kftools.Writer.
//
//   writer_driver PATH PAGE_SIZE STEP...
//
// Steps, in order: `@K` sets the frame number of the next frame; `T:L:N` writes N frames of
// msg_type T with L payload bytes; `hold` prints "ready PID" and keeps the journal open until
// stdin closes. Frame k has gen_time 1000000 + k, trigger_time k, source 7, dest k % 5, and
// payload byte i = (7k + 13i + 1) mod 256. Prints "ok FRAMES" or "error CLASS: message",
// the class named as in kftools.errors.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kftools/journal.hpp"

using namespace kftools;

static const char* class_of(const std::exception& e) {
    if (dynamic_cast<const JournalLocked*>(&e)) return "JournalLocked";
    if (dynamic_cast<const CorruptJournal*>(&e)) return "CorruptJournal";
    if (dynamic_cast<const NotAJournal*>(&e)) return "NotAJournal";
    if (dynamic_cast<const FrameTooLarge*>(&e)) return "FrameTooLarge";
    if (dynamic_cast<const UsageError*>(&e)) return "UsageError";
    if (dynamic_cast<const OutputError*>(&e)) return "OutputError";
    if (dynamic_cast<const Error*>(&e)) return "KftoolsError";
    return "unexpected";
}

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: writer_driver PATH PAGE_SIZE STEP...\n");
        return 2;
    }
    uint64_t k = 0;
    try {
        Writer::Options o;
        o.page_size = uint32_t(std::strtoul(argv[2], nullptr, 0));
        o.source = 7;
        Writer w(argv[1], o);
        for (int a = 3; a < argc; ++a) {
            std::string step = argv[a];
            if (step == "hold") {
                std::printf("ready %d\n", int(::getpid()));
                std::fflush(stdout);
                char buf[64];
                while (::read(0, buf, sizeof buf) > 0) {
                }
            } else if (step[0] == '@') {
                k = std::strtoull(step.c_str() + 1, nullptr, 10);
            } else {
                char* end = nullptr;
                uint32_t type = uint32_t(std::strtoul(step.c_str(), &end, 10));
                uint32_t len = uint32_t(std::strtoul(end + 1, &end, 10));
                uint64_t n = std::strtoull(end + 1, nullptr, 10);
                std::vector<uint8_t> payload(len);
                for (uint64_t j = 0; j < n; ++j, ++k) {
                    for (uint32_t i = 0; i < len; ++i) payload[i] = uint8_t(7 * k + 13 * i + 1);
                    w.write(type, payload.data(), len, int64_t(1000000 + k), int64_t(k), 7, uint32_t(k % 5));
                }
            }
        }
        w.close();
        std::printf("ok %llu\n", static_cast<unsigned long long>(k));
    } catch (const std::exception& e) {
        std::printf("error %s: %s\n", class_of(e), e.what());
        return 1;
    }
    return 0;
}
