#ifndef WHISPERER_SRC_DETAIL_HTTP_CAPPED_BODY_HPP
#define WHISPERER_SRC_DETAIL_HTTP_CAPPED_BODY_HPP

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

namespace whisperer::detail {

/// A Beast body (for parsing only) that keeps the first `limit` bytes in a string and
/// consumes the rest without storing it, so a large response never fails the read and the
/// connection stays usable for the next request.
struct CappedBody {
    struct value_type {
        std::string data;
        std::size_t limit = 0;  ///< Set before reading.
        bool truncated = false; ///< Bytes beyond `limit` were discarded.
    };

    class reader {
    public:
        template <bool IsRequest, class Fields>
        reader(boost::beast::http::header<IsRequest, Fields>&, value_type& body) : body_(body)
        {
        }

        void init(const boost::optional<std::uint64_t>& content_length, boost::beast::error_code& ec)
        {
            if (content_length)
                body_.data.reserve(static_cast<std::size_t>(
                    std::min<std::uint64_t>(*content_length, body_.limit)));
            ec = {};
        }

        template <class ConstBufferSequence>
        std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec)
        {
            ec = {};
            std::size_t consumed = 0;
            for (auto it = boost::asio::buffer_sequence_begin(buffers);
                 it != boost::asio::buffer_sequence_end(buffers); ++it) {
                boost::asio::const_buffer b = *it;
                const std::size_t room = body_.limit - body_.data.size();
                const std::size_t keep = std::min(room, b.size());
                body_.data.append(static_cast<const char*>(b.data()), keep);
                if (keep < b.size())
                    body_.truncated = true;
                consumed += b.size();
            }
            return consumed;
        }

        void finish(boost::beast::error_code& ec) { ec = {}; }

    private:
        value_type& body_;
    };
};

} // namespace whisperer::detail

#endif
