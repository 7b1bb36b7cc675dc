#include "storage/StoreFactory.h"

#include "gateway/core/Clock.h"
#include "storage/MemoryStore.h"

#ifdef IDEM_HAVE_REDIS
#include "storage/RedisStore.h"
#endif
#ifdef IDEM_HAVE_PG
#include "storage/PostgresStore.h"
#endif

#include <stdexcept>

namespace idem::storage {

std::unique_ptr<Store> makeStore(const StoreConfig& config) {
    switch (config.type) {
        case StoreConfig::Type::Memory:
            return std::make_unique<MemoryStore>(config.memory, config.limits, std::make_shared<core::SystemClock>());
        case StoreConfig::Type::Redis:
#ifdef IDEM_HAVE_REDIS
            return makeRedisStore(config.redis, config.limits);
#else
            throw std::runtime_error("this build of idemgate has no Redis store");
#endif
        case StoreConfig::Type::RedisCluster:
#ifdef IDEM_HAVE_REDIS
            return makeRedisClusterStore(config.redis, config.limits);
#else
            throw std::runtime_error("this build of idemgate has no Redis Cluster store");
#endif
        case StoreConfig::Type::Postgres:
#ifdef IDEM_HAVE_PG
            return makePostgresStore(config.postgres, config.limits);
#else
            throw std::runtime_error("this build of idemgate has no PostgreSQL store");
#endif
    }
    throw std::runtime_error("unknown store type");
}

}  // namespace idem::storage
