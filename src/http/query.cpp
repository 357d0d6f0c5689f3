#include "detail/query.hpp"
#include "detail/http_error.hpp"
#include "detail/resource_json.hpp"

#include <charconv>
#include <limits>

namespace whisperer::http::detail {

std::optional<std::string> Query::text(std::string_view name) const
{
    auto it = params_.find(name);
    if (it == params_.end())
        return std::nullopt;
    return std::string((*it).value);
}

std::optional<bool> Query::boolean(std::string_view name) const
{
    auto value = text(name);
    if (!value)
        return std::nullopt;
    if (*value == "true" || *value == "True" || *value == "1")
        return true;
    if (*value == "false" || *value == "False" || *value == "0")
        return false;
    throw invalid_field(std::string(name), std::string(name) + " must be true or false.");
}

std::optional<std::int64_t> Query::integer(std::string_view name, std::int64_t min, std::int64_t max) const
{
    auto value = text(name);
    if (!value)
        return std::nullopt;
    std::int64_t n = 0;
    auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
    if (value->empty() || ec != std::errc() || end != value->data() + value->size() || n < min || n > max)
        throw invalid_field(std::string(name), std::string(name) + " must be an integer from " +
                                                   std::to_string(min) + " to " + std::to_string(max) + ".");
    return n;
}

std::optional<TimePoint> Query::time(std::string_view name) const
{
    auto value = text(name);
    if (!value)
        return std::nullopt;
    if (auto t = parse_time(*value))
        return t;
    throw invalid_field(std::string(name), std::string(name) +
                                               " must be an ISO 8601 date or date-time, e.g. 2024-05-01T12:00:00Z.");
}

PageRequest Query::page(const RouterOptions& options) const
{
    PageRequest page;
    page.limit = options.default_page_size;
    constexpr auto no_limit = std::numeric_limits<std::int64_t>::max();
    if (auto limit = integer("limit", 1, no_limit))
        page.limit = std::min<std::size_t>(static_cast<std::size_t>(*limit), options.max_page_size);
    if (auto cursor = integer("cursor", 0, no_limit))
        page.after = *cursor;
    return page;
}

boost::json::object page_json(boost::json::array results, std::optional<std::int64_t> next)
{
    boost::json::object page;
    page["results"] = std::move(results);
    if (next)
        page["next"] = std::to_string(*next);
    else
        page["next"] = nullptr;
    return page;
}

} // namespace whisperer::http::detail
