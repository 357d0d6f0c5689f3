// Registers an event, stores a hook in SQLite and writes one event: proof that the package links.
#include <whisperer/whisperer.hpp>

#include <boost/asio/io_context.hpp>

#include <iostream>

struct Ping {
    int id;
};

void tag_invoke(boost::json::value_from_tag, boost::json::value& v, const Ping& p)
{
    v = {{"id", p.id}};
}

class PingEvent : public whisperer::WhispererEvent<Ping> {
public:
    static constexpr std::string_view event_type = "ping";
};

int main()
{
    whisperer::Registry registry;
    registry.register_event<PingEvent>();
    whisperer::SqliteStore store(":memory:");
    whisperer::Hook hook;
    hook.owner = "consumer";
    hook.target_url = "https://example.com/hook";
    hook.event_type = "ping";
    hook.retry_countdown_config = {{"choice", "fixed"}, {"kwargs", {{"seconds", 5}}}};
    whisperer::validate_hook(hook, {.registry = &registry});
    store.create_hook(hook);

    boost::asio::io_context io;
    whisperer::Dispatcher dispatcher(io.get_executor(), registry, store);
    auto result = dispatcher.deliver_event(Ping{7}, "ping");
    bool ok = result.hook_count == 1 && whisperer::is_event_uuid(result.event_uuid);
    std::cout << (ok ? "consumer ok " : "consumer FAILED ") << result.event_uuid << "\n";
    return ok ? 0 : 1;
}
