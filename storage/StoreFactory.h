#pragma once
// StoreConfig -> a ready Store. Throws std::runtime_error with a clear message when the store cannot
// be set up at start (bad address, fatal maxmemory-policy, failed migration): startup errors only.

#include "storage/Store.h"
#include "storage/StoreConfig.h"

#include <memory>

namespace idem::storage {

std::unique_ptr<Store> makeStore(const StoreConfig& config);

}  // namespace idem::storage
