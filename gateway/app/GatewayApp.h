#pragma once
// The idemgate executable: options, config loading, wiring, signals.
//
//   idemgate --config FILE [--set key.path=value ...]   serve until SIGTERM/SIGINT; SIGHUP reloads
//   idemgate --check-config FILE     validate, print the effective config (secrets masked), exit 0 / 1
//   idemgate migrate --config FILE   create or upgrade the PostgreSQL schema, then exit
//
// Exit codes: 0 ok, 1 invalid configuration, 2 usage error, 3 startup failure (store, port).

#include <Poco/Util/ServerApplication.h>

#include <string>
#include <vector>

namespace idem::app {

class GatewayApp final : public Poco::Util::ServerApplication {
protected:
    void defineOptions(Poco::Util::OptionSet& options) override;
    void handleOption(const std::string& name, const std::string& value) override;
    int main(const std::vector<std::string>& args) override;

private:
    void displayHelp();

    std::string configFile_;
    std::string checkFile_;
    std::vector<std::string> setArguments_;
    bool helpRequested_ = false;
    bool versionRequested_ = false;
};

}  // namespace idem::app
