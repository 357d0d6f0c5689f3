// Query-string filters and cursor pagination of the listing routes. Every parse error is an
// `HttpError` 400 naming the parameter.
#ifndef WHISPERER_SRC_HTTP_DETAIL_QUERY_HPP
#define WHISPERER_SRC_HTTP_DETAIL_QUERY_HPP

#include <whisperer/hook.hpp>
#include <whisperer/http/hooks_router.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/url/params_view.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace whisperer::http::detail {

/// Where a listing starts and how long it is: `cursor` (the previous page's `next`) and `limit`.
struct PageRequest {
    std::int64_t after = 0;
    std::size_t limit = 50;
};

/// The decoded query parameters of a request; the first of repeated parameters counts.
class Query {
public:
    explicit Query(boost::urls::params_view params) noexcept : params_(params) {}

    std::optional<std::string> text(std::string_view name) const;
    /// `true`/`false` (also `True`/`False`, `1`/`0`).
    std::optional<bool> boolean(std::string_view name) const;
    /// A decimal integer in [min, max].
    std::optional<std::int64_t> integer(std::string_view name, std::int64_t min, std::int64_t max) const;
    /// An ISO 8601 date or date-time (see `parse_time`).
    std::optional<TimePoint> time(std::string_view name) const;
    /// `cursor` and `limit` (default and maximum from `options`; a larger limit is cut).
    PageRequest page(const RouterOptions& options) const;

private:
    boost::urls::params_view params_;
};

/// `{"results": [...], "next": "<cursor>" | null}`.
boost::json::object page_json(boost::json::array results, std::optional<std::int64_t> next);

} // namespace whisperer::http::detail

#endif
