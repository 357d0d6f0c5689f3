// PostgresStore's rows: reading a result's columns, writing parameters, building WHERE clauses.
#ifndef WHISPERER_POSTGRES_POSTGRES_ROWS_HPP
#define WHISPERER_POSTGRES_POSTGRES_ROWS_HPP

#include "detail/json_depth.hpp"
#include "detail/store_rows.hpp"
#include "postgres/postgres_connection.hpp"

#include <cstdint>
#include <string_view>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace whisperer::detail {

/// Text parameters of a statement (nullopt is NULL).
using PostgresParams = std::vector<std::optional<std::string>>;

inline std::optional<std::string> pg_param(std::int64_t n) { return std::to_string(n); }
inline std::optional<std::string> pg_param(bool b) { return std::string(b ? "t" : "f"); }
inline std::optional<std::string> pg_param(TimePoint t) { return std::to_string(to_micros(t)); }
inline std::optional<std::string> pg_param(std::optional<TimePoint> t)
{
    return t ? pg_param(*t) : std::nullopt;
}

/// A `bigint[]` parameter: `{1,2,3}`.
inline std::optional<std::string> pg_array(std::span<const std::int64_t> ids)
{
    std::string out = "{";
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i > 0)
            out += ',';
        out += std::to_string(ids[i]);
    }
    return out + "}";
}

/// A `text[]` parameter, each element quoted; nullopt elements are NULL.
template <class Text>
std::optional<std::string> pg_text_array(std::span<const Text> texts)
{
    std::string out = "{";
    for (std::size_t i = 0; i < texts.size(); ++i) {
        if (i > 0)
            out += ',';
        const std::optional<std::string> element{texts[i]};
        if (!element) {
            out += "NULL";
            continue;
        }
        out += '"';
        for (char c : *element) {
            if (c == '"' || c == '\\')
                out += '\\';
            out += c;
        }
        out += '"';
    }
    return out + "}";
}

/// A `bigint[]` parameter with NULL elements.
inline std::optional<std::string> pg_optional_array(std::span<const std::optional<std::int64_t>> values)
{
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0)
            out += ',';
        out += values[i] ? std::to_string(*values[i]) : std::string("NULL");
    }
    return out + "}";
}

/// A `boolean[]` parameter.
inline std::optional<std::string> pg_bool_array(const std::vector<bool>& values)
{
    std::string out = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i > 0)
            out += ',';
        out += values[i] ? 't' : 'f';
    }
    return out + "}";
}

/// `text` as PostgreSQL's text accepts it: valid UTF-8 without NUL. Each byte that is not part
/// of a valid sequence, and each NUL, becomes U+FFFD. For what comes from the network (response
/// bodies, error messages), which a receiver may send in any encoding.
inline std::string pg_text(std::string_view text)
{
    std::string out;
    out.reserve(text.size());
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    for (std::size_t i = 0; i < n;) {
        const unsigned char c = p[i];
        std::size_t length = 0;
        std::uint32_t code = 0;
        if (c >= 0x01 && c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            length = 2;
            code = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            length = 3;
            code = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            length = 4;
            code = c & 0x07u;
        }
        bool valid = length != 0 && i + length <= n;
        for (std::size_t k = 1; valid && k < length; ++k) {
            valid = (p[i + k] & 0xC0u) == 0x80u;
            code = (code << 6) | (p[i + k] & 0x3Fu);
        }
        // No overlong forms, no surrogates, nothing past U+10FFFF.
        valid = valid && !(length == 3 && code < 0x800) && !(length == 4 && (code < 0x10000 || code > 0x10FFFF)) &&
                !(code >= 0xD800 && code <= 0xDFFF);
        if (!valid) {
            out += "\xEF\xBF\xBD";
            ++i;
            continue;
        }
        out.append(text.substr(i, length));
        i += length;
    }
    return out;
}

/// Reads the columns of one row of a result from left to right (see `store_rows.hpp`).
class PostgresRow {
public:
    PostgresRow(const PostgresResult& result, int row, int column = 0) noexcept
        : result_(result), row_(row), next_(column)
    {
    }

    std::int64_t int64() { return result_.integer(row_, next_++); }
    int integer() { return static_cast<int>(int64()); }
    unsigned count() { return static_cast<unsigned>(int64()); }
    bool boolean() { return result_.text(row_, next_++) == "t"; }
    std::string text() { return std::string(result_.text(row_, next_++)); }
    TimePoint time() { return from_micros(int64()); }
    bool is_null() const noexcept { return result_.is_null(row_, next_); }
    void skip() noexcept { ++next_; }

    std::optional<TimePoint> optional_time()
    {
        if (result_.is_null(row_, next_)) {
            ++next_;
            return std::nullopt;
        }
        return time();
    }

    /// A JSON object column; throws `StoreError` when the text is not one.
    boost::json::object object()
    {
        boost::system::error_code ec;
        auto value = parse_stored_json(result_.text(row_, next_++), ec);
        if (ec || !value.is_object())
            throw StoreError("PostgreSQL store: column " + std::to_string(next_) + " does not hold a JSON object");
        return std::move(value.as_object());
    }

private:
    const PostgresResult& result_;
    int row_;
    int next_;
};

/// The conditions of a WHERE clause and their parameters, numbered `$1`, `$2`, ... in order.
class PostgresConditions {
public:
    /// Adds `sql`, in which `$?` stands for `value`'s parameter.
    void add(std::string_view sql, std::optional<std::string> value)
    {
        params_.push_back(std::move(value));
        std::string condition{sql};
        condition.replace(condition.find("$?"), 2, "$" + std::to_string(params_.size()));
        sql_ += (sql_.empty() ? "" : " AND ") + condition;
    }

    /// The next parameter's placeholder, for a value after the conditions (a LIMIT).
    std::string next(std::optional<std::string> value)
    {
        params_.push_back(std::move(value));
        return "$" + std::to_string(params_.size());
    }

    const std::string& sql() const noexcept { return sql_; }
    const PostgresParams& params() const noexcept { return params_; }

private:
    std::string sql_;
    PostgresParams params_;
};

} // namespace whisperer::detail

#endif
