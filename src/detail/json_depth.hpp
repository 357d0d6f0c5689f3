// How deep JSON may nest: measuring a value's depth, and reading back JSON whisperer wrote.
#ifndef WHISPERER_SRC_DETAIL_JSON_DEPTH_HPP
#define WHISPERER_SRC_DETAIL_JSON_DEPTH_HPP

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <string_view>
#include <utility>
#include <vector>

namespace whisperer::detail {

/// How deep whisperer parses JSON that it wrote itself (hook columns, event bodies): well beyond
/// the defaults of every input limit (`HookRules::max_config_depth`,
/// `DispatcherOptions::max_data_depth` and the envelope around it, `RouterOptions::max_json_depth`),
/// so that nothing accepted becomes unreadable, yet bounded, because the parser recurses.
inline constexpr std::size_t stored_json_max_depth = 256;

/// Parses JSON that whisperer wrote itself (Boost.JSON's own default depth is only 32).
inline boost::json::value parse_stored_json(std::string_view text, boost::system::error_code& ec)
{
    boost::json::parse_options options;
    options.max_depth = stored_json_max_depth;
    return boost::json::parse(text, ec, {}, options);
}

/// True for arrays and objects, the values that nest.
inline bool is_json_container(const boost::json::value& value) noexcept
{
    return value.is_array() || value.is_object();
}

/// True when the arrays and objects of `pending` (each with its level) or inside them nest more
/// than `limit` levels deep. Walks without recursion, so the depth it checks cannot exhaust the
/// stack.
inline bool any_nested_deeper_than(std::vector<std::pair<const boost::json::value*, std::size_t>> pending,
                                   std::size_t limit)
{
    std::erase_if(pending, [](const auto& entry) { return !is_json_container(*entry.first); });
    while (!pending.empty()) {
        auto [value, depth] = pending.back();
        pending.pop_back();
        if (depth > limit)
            return true;
        auto visit = [&, depth = depth](const boost::json::value& child) {
            if (is_json_container(child))
                pending.emplace_back(&child, depth + 1);
        };
        if (const boost::json::array* array = value->if_array())
            for (const boost::json::value& child : *array)
                visit(child);
        else
            for (const auto& entry : value->get_object())
                visit(entry.value());
    }
    return false;
}

/// True when arrays and objects nest in `value` more than `limit` levels deep (`[]` is one
/// level, a scalar none).
inline bool nested_deeper_than(const boost::json::value& value, std::size_t limit)
{
    std::vector<std::pair<const boost::json::value*, std::size_t>> pending;
    pending.emplace_back(&value, 1);
    return any_nested_deeper_than(std::move(pending), limit);
}

/// True when `object` (level 1) and what it holds nest more than `limit` levels deep.
inline bool nested_deeper_than(const boost::json::object& object, std::size_t limit)
{
    if (limit == 0)
        return true;
    std::vector<std::pair<const boost::json::value*, std::size_t>> pending;
    for (const auto& entry : object)
        pending.emplace_back(&entry.value(), 2);
    return any_nested_deeper_than(std::move(pending), limit);
}

} // namespace whisperer::detail

#endif
