// PostgresDueListener: wake-ups from other processes' commits, through LISTEN.
#include "postgres/postgres_listener.hpp"
#include "postgres/postgres_store_impl.hpp"

namespace whisperer {

struct PostgresDueListener::State {
    State(boost::asio::any_io_executor executor, detail::PostgresListenerOptions options)
        : listener(std::move(executor), std::move(options))
    {
    }
    detail::PostgresListener listener;
};

PostgresDueListener::PostgresDueListener(boost::asio::any_io_executor executor, const PostgresStore& store,
                                         std::function<void()> on_due, LogHandler log)
    : state_(std::make_unique<State>(std::move(executor),
                                     detail::PostgresListenerOptions{.conninfo = store.impl_->conninfo_,
                                                                     .channel = store.impl_->schema_ + ".due",
                                                                     .on_wake = std::move(on_due),
                                                                     .log = std::move(log)}))
{
    state_->listener.start();
}

PostgresDueListener::~PostgresDueListener()
{
    state_->listener.stop();
}

bool PostgresDueListener::listening() const noexcept
{
    return state_->listener.listening();
}

} // namespace whisperer
