// Signs and verifies webhooks with whisperer for the interop test:
//   whisperer_interop_tool sign SECRET... -- ID TIMESTAMP BODY   prints the headers as a JSON object
//   whisperer_interop_tool verify SECRET...                      reads {"headers": {...}, "body": "..."}
//                                                                from stdin; exit 0 only when verified

#include <whisperer/signature.hpp>
#include <whisperer/verify.hpp>

#include <boost/json.hpp>

#include <cstdint>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

namespace json = boost::json;

int main(int argc, char** argv)
{
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() >= 5 && args[0] == "sign") {
        std::vector<std::string> secrets(args.begin() + 1, args.end() - 4);
        if (args[args.size() - 4] != "--" || secrets.empty()) {
            std::cerr << "usage: sign SECRET... -- ID TIMESTAMP BODY\n";
            return 2;
        }
        const std::string& id = args[args.size() - 3];
        const std::int64_t timestamp = std::stoll(args[args.size() - 2]);
        const std::string& body = args.back();
        std::cout << json::serialize(json::object{
                         {"webhook-id", id},
                         {"webhook-timestamp", std::to_string(timestamp)},
                         {"webhook-signature", whisperer::standard_signature_header(secrets, id, timestamp, body)}})
                  << "\n";
        return 0;
    }
    if (args.size() >= 2 && args[0] == "verify") {
        const std::vector<std::string> secrets(args.begin() + 1, args.end());
        const std::string input(std::istreambuf_iterator<char>(std::cin), {});
        const json::value message = json::parse(input);
        std::vector<std::pair<std::string, std::string>> headers;
        for (const auto& [name, value] : message.at("headers").as_object())
            headers.emplace_back(std::string(name), std::string(value.as_string()));
        const whisperer::VerifyResult result =
            whisperer::verify_webhook(headers, message.at("body").as_string(), secrets);
        std::cout << whisperer::to_string(result.status) << " (" << whisperer::to_string(result.scheme) << ")\n";
        return result ? 0 : 1;
    }
    std::cerr << "usage: whisperer_interop_tool sign SECRET... -- ID TIMESTAMP BODY | verify SECRET...\n";
    return 2;
}
