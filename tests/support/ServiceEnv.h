#pragma once
// Reads what a service fixture (tests/support/*.sh, run by CTest) wrote to
// $IDEM_SERVICES_DIR/<fixture>/env. A missing file or variable throws: tests fail, never skip.

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

namespace idem::test {

inline std::string serviceEnv(const std::string& fixture, const std::string& key) {
    const char* dir = std::getenv("IDEM_SERVICES_DIR");
    if (!dir || !*dir)
        throw std::runtime_error("IDEM_SERVICES_DIR is not set: run this test through ctest, which starts the '" +
                                 fixture + "' service fixture");
    const std::string path = std::string(dir) + "/" + fixture + "/env";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("service '" + fixture + "' is not running: " + path + " is missing");
    std::string line;
    while (std::getline(in, line)) {
        const auto eq = line.find('=');
        if (eq != std::string::npos && line.compare(0, eq, key) == 0 && eq == key.size()) return line.substr(eq + 1);
    }
    throw std::runtime_error("service '" + fixture + "' wrote no " + key + " to " + path);
}

}  // namespace idem::test
