// Tiny shared helpers for the command-line tools (not part of the library).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kftools/journal.hpp"

namespace kfcli {

// `--name value` lookup; argv[1] is the positional journal path.
inline const char* opt(int argc, char** argv, const char* name, const char* def = nullptr) {
    for (int i = 2; i < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return i + 1 < argc ? argv[i + 1] : "";
    return def;
}
inline bool flag(int argc, char** argv, const char* name) {
    for (int i = 2; i < argc; ++i)
        if (std::strcmp(argv[i], name) == 0) return true;
    return false;
}
inline uint64_t num(int argc, char** argv, const char* name, uint64_t def) {
    const char* v = opt(argc, argv, name);
    return v ? std::strtoull(v, nullptr, 0) : def;
}

// Exit codes follow kftools' EXIT_CODES: 2 bad input (not a journal, a bad argument, an unwritable path),
// 3 corrupt, 4 locked.
inline int report(const char* tool, const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    if (dynamic_cast<const kftools::JournalLocked*>(&e)) return 4;
    if (dynamic_cast<const kftools::CorruptJournal*>(&e)) return 3;
    if (dynamic_cast<const kftools::NotAJournal*>(&e)) return 2;
    if (dynamic_cast<const kftools::UsageError*>(&e) || dynamic_cast<const kftools::OutputError*>(&e)) return 2;
    return 1;
}

// Spin until `deadline` (CLOCK_REALTIME ns): sleeping would add 50+ us of wake-up jitter.
inline void spin_until(int64_t deadline) {
    while (kftools::now_ns() < deadline) {
    }
}

}  // namespace kfcli
