#pragma once
// YAML (or JSON: YAML 1.2 reads it) -> validated, typed Config. Runs once at startup (and, later, on
// reload); throws ConfigError on the first problem, naming the file, the position when known, the full
// key path ("routes.payments.ttl", "routes.payments.release_on[2]") and what is expected. Unknown and
// duplicate keys are errors. Secrets come from password_env / password_file, never from the file.
//
// The loader reads one parsed tree and maps it to the structs in one pass; issue 5's layers
// (--set, IDEMGATE_... environment, defaults) are overlays on that tree before the mapping, and use the
// same key paths as the errors.

#include "gateway/config/Config.h"

#include <stdexcept>
#include <string>
#include <string_view>

namespace idem::config {

/// A configuration problem. what() == "<file>:<line>:<col>: <key.path>: <problem>"; line and column
/// (1-based) are left out when unknown (0), the key path when the problem is not tied to a key.
struct ConfigError : std::runtime_error {
    ConfigError(std::string file, std::string keyPath, std::string problem, int line = 0, int column = 0);

    std::string file;
    std::string keyPath;
    std::string problem;
    int line = 0;
    int column = 0;
};

/// Loads and validates `path`. Throws ConfigError, also when the file cannot be read.
/// Relative password_file paths are resolved against the config file's directory.
Config loadConfigFile(const std::string& path);

/// Loads and validates `text`; `sourceName` names it in errors and becomes Config::sourceFile.
/// Relative password_file paths are resolved against the working directory.
Config loadConfigString(std::string_view text, const std::string& sourceName);

/// The effective configuration, every value including defaults, as YAML in the input's shape (what
/// --check-config prints). Passwords are printed as "********"; everything else loads back unchanged.
std::string describeConfig(const Config& config);

}  // namespace idem::config
