#pragma once
// YAML (or JSON: YAML 1.2 reads it) -> validated, typed Config. Runs at startup and on reload; throws
// ConfigError on the first problem, naming the source, the position when known, the full key path
// ("routes.payments.ttl", "routes.payments.release_on[2]") and what is expected. Unknown and duplicate
// keys are errors. Secrets come from password_env / password_file, never from the file or an override.
//
// Layers, highest first (issue 5):
//  1. command line: `--set key.path=value` (ConfigOverrides::set, in order; a later one wins);
//  2. environment: IDEMGATE_<PATH>, where PATH is the key path with "__" between keys, matched ASCII
//     case-insensitively, '_' also matching '-' in route, upstream and version names:
//     IDEMGATE_ROUTES__PAYMENTS__TTL=48h, IDEMGATE_SERVER__LISTEN=127.0.0.1:9000. Only variables whose
//     name holds "__" after the prefix are overrides, so a password variable such as
//     IDEMGATE_REDIS_PASSWORD (named by password_env) is not one;
//  3. the file;
//  4. defaults in code (Config.h, core/Policy.h).
// Overrides are applied to the parsed tree before the typed mapping, so they are validated like the file.
// A value is parsed as YAML ("48h", "true", "[POST, PATCH]", "{body: json}"; quote text YAML would read
// otherwise, e.g. '"[::1]:9000"') and replaces the value at its path (a mapping replaces the whole
// section). The path must name a known key, and routes, upstreams and versions named in it must exist in
// the file: an override changes a configuration, it does not add entries. Errors in an override, and
// errors found at or under a path it set, name it as the source: ConfigError::file is "--set" or
// "environment IDEMGATE_...", with the key path and no line.

#include "gateway/config/Config.h"

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

/// The layers above the file.
struct ConfigOverrides {
    std::vector<std::pair<std::string, std::string>> set;  ///< (key path, value) from --set, in order
    bool environment = true;                                ///< apply IDEMGATE_<KEY>__<KEY>... variables
};

/// Splits one --set argument "key.path=value" at the first '='. Throws ConfigError (source "--set")
/// when there is no '=' or the key path is empty.
std::pair<std::string, std::string> parseSetArgument(std::string_view argument);

/// Loads and validates `path` under `overrides`. Throws ConfigError, also when the file cannot be read.
/// Relative password_file paths are resolved against the config file's directory.
Config loadConfigFile(const std::string& path, const ConfigOverrides& overrides = {});

/// Loads and validates `text` under `overrides` (the environment too, by default); `sourceName` names it
/// in errors and becomes Config::sourceFile. Relative password_file paths are resolved against the
/// working directory.
Config loadConfigString(std::string_view text, const std::string& sourceName, const ConfigOverrides& overrides = {});

/// The effective configuration after every layer, every value including defaults, as YAML in the input's
/// shape (what --check-config prints): also each route's enabled/disabled flag and versions. Passwords
/// are printed as "********"; everything else loads back unchanged.
std::string describeConfig(const Config& config);

}  // namespace idem::config
