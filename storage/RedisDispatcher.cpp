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

Result<RedisReply> runOnMultiplexer(RedisMultiplexer& mux, const RedisCommand& command,
                                    std::chrono::milliseconds sendWait, std::chrono::milliseconds timeout) {
    auto reply = mux.execute(command.argv, RedisMultiplexer::Clock::now() + sendWait, timeout);
    if (reply && isNoScript(*reply) && !command.onNoScript.empty())
        return mux.execute(command.onNoScript, RedisMultiplexer::Clock::now() + sendWait, timeout);
    return reply;
}

std::unique_ptr<RedisMultiplexer> makeMultiplexer(const RedisEndpoint& endpoint, const RedisStoreConfig& config) {
    if (config.pipelineConnections == 0) return nullptr;
    return std::make_unique<RedisMultiplexer>(endpoint, connectionOptions(config), config.pipelineConnections);
}

RedisStandaloneDispatcher::RedisStandaloneDispatcher(const RedisStoreConfig& config)
    : pool_(RedisPool::create(RedisEndpoint{config.address.host, config.address.port}, connectionOptions(config),
                              config.poolSize)),
      mux_(makeMultiplexer(RedisEndpoint{config.address.host, config.address.port}, config)),
      poolWait_(config.poolWaitTimeout) {}

Result<RedisReply> RedisStandaloneDispatcher::runLeased(const RedisCommand& command) {
    auto lease = pool_->acquire(RedisPool::Clock::now() + poolWait_);
    if (!lease) return std::unexpected(lease.error());
    (*lease)->setCommandTimeout(pool_->options().commandTimeout);
    return runOnConnection(**lease, command, false);
}

Result<RedisReply> RedisStandaloneDispatcher::execute(std::string_view, const RedisCommand& command) {
    auto reply = mux_ ? runOnMultiplexer(*mux_, command, poolWait_, pool_->options().commandTimeout)
                      : runLeased(command);
    if (reply && reply->isError()) return std::unexpected(mapErrorReply(reply->errorText()));
    return reply;
}

Result<std::vector<RedisNodeReply>> RedisStandaloneDispatcher::executeOnMasters(const RedisArgv& argv) {
    std::vector<RedisNodeReply> out;
    out.push_back(RedisNodeReply{pool_->endpoint(), runLeased(RedisCommand{argv, {}})});
    return out;
}

}  // namespace idem::storage
