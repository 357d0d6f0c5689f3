#ifndef WHISPERER_IMPL_DISPATCHER_HPP
#define WHISPERER_IMPL_DISPATCHER_HPP

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>

namespace whisperer {

template <class T, class CompletionToken>
auto Dispatcher::async_deliver_event(const T& instance, std::string_view event_type, DeliverOptions options,
                                     CompletionToken&& token)
{
    return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code, DeliverResult)>(
        [this, &instance, event_type](auto handler, DeliverOptions opts) {
            auto shared = std::make_shared<decltype(handler)>(std::move(handler));
            auto complete = [shared, ex = executor_](boost::system::error_code ec, DeliverResult result) {
                auto target = boost::asio::get_associated_executor(*shared, ex);
                boost::asio::dispatch(target, [shared, ec, result = std::move(result)]() mutable {
                    (*shared)(ec, std::move(result));
                });
            };
            boost::json::value data;
            try {
                if (opts.event_uuid.empty())
                    data = serialize(instance, event_type);
            } catch (const Error& e) {
                complete(boost::system::error_code(e.error_code()), DeliverResult{});
                return;
            }
            async_deliver_data(std::move(data), event_type, std::move(opts), std::move(complete));
        },
        token, std::move(options));
}

} // namespace whisperer

#endif
