#include "gateway/app/GatewayApp.h"

#include "gateway/config/ConfigLoader.h"
#include "gateway/http/Gateway.h"
#include "gateway/http/Log.h"
#include "storage/StoreFactory.h"

#include <Poco/Util/HelpFormatter.h>
#include <Poco/Util/Option.h>
#include <Poco/Util/OptionSet.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <pthread.h>
#include <thread>

#ifdef IDEM_HAVE_PG
#include "storage/PostgresStore.h"
#endif

namespace idem::app {
namespace {

constexpr int kExitConfig = 1;
constexpr int kExitUsage = 2;
constexpr int kExitStartup = 3;
constexpr const char* kVersion = "0.1.0";

}  // namespace

void GatewayApp::defineOptions(Poco::Util::OptionSet& options) {
    ServerApplication::defineOptions(options);
    options.addOption(Poco::Util::Option("config", "c", "serve with this configuration file")
                          .required(false).repeatable(false).argument("FILE"));
    options.addOption(Poco::Util::Option("check-config", "t", "validate a configuration file, print the effective configuration and exit")
                          .required(false).repeatable(false).argument("FILE"));
    options.addOption(Poco::Util::Option("set", "s", "override one configuration key (repeatable): --set routes.payments.ttl=48h")
                          .required(false).repeatable(true).argument("KEY=VALUE"));
    options.addOption(Poco::Util::Option("help", "h", "show this help").required(false).repeatable(false));
    options.addOption(Poco::Util::Option("version", "v", "print the version").required(false).repeatable(false));
}

void GatewayApp::handleOption(const std::string& name, const std::string& value) {
    ServerApplication::handleOption(name, value);
    if (name == "config") configFile_ = value;
    else if (name == "check-config") checkFile_ = value;
    else if (name == "set") setArguments_.push_back(value);
    else if (name == "help") {
        helpRequested_ = true;
        stopOptionsProcessing();
    } else if (name == "version") versionRequested_ = true;
}

void GatewayApp::displayHelp() {
    Poco::Util::HelpFormatter help(options());
    help.setCommand(commandName());
    help.setUsage("--config FILE | --check-config FILE | migrate --config FILE");
    help.setHeader("idemgate: an idempotency-key gateway (HTTP reverse proxy) for payment APIs.");
    help.format(std::cout);
}

int GatewayApp::main(const std::vector<std::string>& args) {
    if (helpRequested_) {
        displayHelp();
        return 0;
    }
    if (versionRequested_) {
        std::cout << "idemgate " << kVersion << "\n";
        return 0;
    }
    const bool migrate = !args.empty() && args[0] == "migrate";
    if ((!args.empty() && !migrate) || args.size() > 1) {
        std::cerr << "idemgate: unexpected argument '" << args[migrate ? 1 : 0] << "' (see --help)\n";
        return kExitUsage;
    }

    config::ConfigOverrides overrides;
    try {
        for (const auto& a : setArguments_) overrides.set.push_back(config::parseSetArgument(a));
    } catch (const config::ConfigError& e) {
        std::cerr << "idemgate: invalid --set: " << e.what() << "\n";
        return kExitUsage;
    }

    if (!checkFile_.empty()) {
        try {
            auto cfg = config::loadConfigFile(checkFile_, overrides);
            std::cout << config::describeConfig(cfg);
            std::cout << "idemgate: configuration file " << checkFile_ << " is valid\n";
            return 0;
        } catch (const config::ConfigError& e) {
            std::cerr << "idemgate: invalid configuration: " << e.what() << "\n";
            return kExitConfig;
        }
    }
    if (configFile_.empty()) {
        std::cerr << "idemgate: --config FILE is required (see --help)\n";
        return kExitUsage;
    }

    config::Config cfg;
    try {
        cfg = config::loadConfigFile(configFile_, overrides);
    } catch (const config::ConfigError& e) {
        std::cerr << "idemgate: invalid configuration: " << e.what() << "\n";
        return kExitConfig;
    }
    http::setLogLevel(http::toLogLevel(cfg.log.level));

    if (migrate) {
#ifdef IDEM_HAVE_PG
        if (cfg.store.type != storage::StoreConfig::Type::Postgres) {
            std::cerr << "idemgate: migrate: " << configFile_ << ": store.type is not postgres; nothing to migrate\n";
            return kExitUsage;
        }
        try {
            storage::migratePostgres(cfg.store.postgres);
            std::cout << "idemgate: schema is up to date\n";
            return 0;
        } catch (const std::exception& e) {
            std::cerr << "idemgate: migrate failed: " << e.what() << "\n";
            return kExitStartup;
        }
#else
        std::cerr << "idemgate: this build has no PostgreSQL store\n";
        return kExitStartup;
#endif
    }

    // SIGHUP reloads the configuration. Block it here, before any server thread exists, so that
    // every thread inherits the mask and only the reload thread below receives it.
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, nullptr);

    std::unique_ptr<http::Gateway> gateway;
    try {
        auto store = storage::makeStore(cfg.store);
        const auto host = cfg.server.host;
        const auto routes = cfg.routes.size();
        const auto storeName = store->name();
        gateway = std::make_unique<http::Gateway>(std::move(cfg), std::move(store));
        gateway->start();
        http::logInfo("idemgate " + std::string(kVersion) + " listening on " + host + ":" + std::to_string(gateway->port()) +
                      " routes=" + std::to_string(routes) + " store=" + storeName + " config=" + configFile_);
    } catch (const std::exception& e) {
        std::cerr << "idemgate: cannot start: " << e.what() << "\n";
        return kExitStartup;
    }

    std::atomic<bool> stopping{false};
    std::thread reloader([&] {
        const timespec tick{0, 250'000'000};
        while (!stopping.load()) {
            if (sigtimedwait(&hup, nullptr, &tick) != SIGHUP) continue;
            try {
                auto next = config::loadConfigFile(configFile_, overrides);
                const auto notApplied = gateway->reload(std::move(next));
                std::string msg = "idemgate: configuration reloaded from " + configFile_;
                for (const auto& n : notApplied) msg += "; " + n + " changed but needs a restart (kept the running value)";
                if (notApplied.empty()) http::logInfo(msg);
                else http::logWarning(msg);
            } catch (const config::ConfigError& e) {
                http::logError(std::string("idemgate: reload rejected, still serving the previous configuration: ") + e.what());
            } catch (const std::exception& e) {
                http::logError(std::string("idemgate: reload failed, still serving the previous configuration: ") + e.what());
            }
        }
    });

    waitForTerminationRequest();
    stopping.store(true);
    reloader.join();
    http::logInfo("idemgate: termination requested; draining requests in flight");
    gateway->stop(std::chrono::seconds(10));
    http::logInfo("idemgate: stopped");
    return 0;
}

}  // namespace idem::app
