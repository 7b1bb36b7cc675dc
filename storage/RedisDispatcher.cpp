#include "storage/RedisDispatcher.h"

#include <array>

namespace idem::storage {
namespace {

bool isNoScript(const RedisReply& r) {
    return r.isError() && classifyErrorReply(r.errorText()).kind == RedisErrorClass::Kind::NoScript;
}

Result<RedisReply> send(RedisConnection& conn, const RedisArgv& argv, bool asking) {
    if (!asking) return conn.command(argv);
    const std::array<RedisArgv, 2> commands{RedisArgv{"ASKING"}, argv};
    auto replies = conn.pipeline(commands);
    if (!replies) return std::unexpected(replies.error());
    // ASKING answers +OK; the command's own reply is what counts.
    return std::move((*replies)[1]);
}

}  // namespace

RedisConnectionOptions connectionOptions(const RedisStoreConfig& config) {
    return RedisConnectionOptions{config.connectTimeout, config.commandTimeout, config.password};
}

Result<RedisReply> runOnConnection(RedisConnection& conn, const RedisCommand& command, bool asking) {
    auto reply = send(conn, command.argv, asking);
    if (reply && isNoScript(*reply) && !command.onNoScript.empty()) return send(conn, command.onNoScript, asking);
    return reply;
}

RedisStandaloneDispatcher::RedisStandaloneDispatcher(const RedisStoreConfig& config)
    : pool_(RedisPool::create(RedisEndpoint{config.address.host, config.address.port}, connectionOptions(config),
                              config.poolSize)),
      poolWait_(config.poolWaitTimeout) {}

Result<RedisReply> RedisStandaloneDispatcher::runRaw(const RedisCommand& command) {
    auto lease = pool_->acquire(RedisPool::Clock::now() + poolWait_);
    if (!lease) return std::unexpected(lease.error());
    (*lease)->setCommandTimeout(pool_->options().commandTimeout);
    return runOnConnection(**lease, command, false);
}

Result<RedisReply> RedisStandaloneDispatcher::execute(std::string_view, const RedisCommand& command) {
    auto reply = runRaw(command);
    if (reply && reply->isError()) return std::unexpected(mapErrorReply(reply->errorText()));
    return reply;
}

Result<std::vector<RedisNodeReply>> RedisStandaloneDispatcher::executeOnMasters(const RedisArgv& argv) {
    std::vector<RedisNodeReply> out;
    out.push_back(RedisNodeReply{pool_->endpoint(), runRaw(RedisCommand{argv, {}})});
    return out;
}

}  // namespace idem::storage
