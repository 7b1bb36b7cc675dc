#pragma once
// Minimal structured logging to stderr: one line per event, "ts level msg". Thread-safe; a line is
// written with one write(2) so lines from many threads never interleave. Never pass secrets here:
// keys are redacted (core::redactKey), tenants hashed, bodies never logged.

#include <string_view>

namespace idem::http {

enum class LogLevel { Error = 0, Warning = 1, Information = 2, Debug = 3 };

void setLogLevel(LogLevel level);
bool logEnabled(LogLevel level);
void logLine(LogLevel level, std::string_view message);

inline void logError(std::string_view m) { logLine(LogLevel::Error, m); }
inline void logWarning(std::string_view m) { if (logEnabled(LogLevel::Warning)) logLine(LogLevel::Warning, m); }
inline void logInfo(std::string_view m) { if (logEnabled(LogLevel::Information)) logLine(LogLevel::Information, m); }

}  // namespace idem::http
