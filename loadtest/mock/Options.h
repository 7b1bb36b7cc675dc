// Command-line options of idemgate-mock-upstream.
#pragma once

#include <chrono>
#include <cstddef>
#include <expected>
#include <string>

namespace idem::mock {

struct Options {
    std::string host = "127.0.0.1";
    int port = -1;                                   // required; 0 picks a free port
    int threads = 256;                               // one per concurrently open connection
    std::string portFile;                            // written atomically once listening
    bool quiet = false;                              // no stderr notes (the listening line stays)
    bool verbose = false;                            // one stderr line per execution
    std::chrono::seconds keepAliveTimeout{75};       // idle keep-alive; longer than a typical client pool idle
    std::size_t maxKeys = 1'000'000;                 // distinct keys counted one by one; later ones only in total
    bool help = false;
};

// Parses argv; the error names the offending flag.
std::expected<Options, std::string> parseOptions(int argc, char** argv);

// Usage text for --help and errors.
const char* usageText();

}  // namespace idem::mock
