#pragma once
// A program run as a separate process, as a user would run it: its arguments, its stderr in a
// file, waiting for it, signalling it.

#include "catch.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

extern char** environ;

namespace whisperer::test {

/// How a process ended.
struct ProcessEnd {
    std::optional<int> exit_code; ///< When it exited.
    std::optional<int> signal;    ///< When a signal ended it.
};

/// A running child process; killed (SIGKILL) and reaped on destruction if still running.
class ChildProcess {
public:
    /// Starts `program` with `arguments`; its stdout and stderr go to `output_file`.
    ChildProcess(const std::string& program, const std::vector<std::string>& arguments, std::string output_file)
        : output_file_(std::move(output_file))
    {
        std::vector<std::string> all{program};
        all.insert(all.end(), arguments.begin(), arguments.end());
        std::vector<char*> argv;
        for (std::string& argument : all)
            argv.push_back(argument.data());
        argv.push_back(nullptr);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, output_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        posix_spawn_file_actions_adddup2(&actions, 1, 2);
        const int rc = posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&actions);
        REQUIRE(rc == 0);
    }
    ~ChildProcess()
    {
        if (!end_) {
            ::kill(pid_, SIGKILL);
            wait();
        }
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const noexcept { return pid_; }

    /// Whether it has ended (reaping it if so).
    bool ended()
    {
        if (end_)
            return true;
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) != pid_)
            return false;
        end_ = decode(status);
        return true;
    }

    /// Waits for it to end.
    ProcessEnd wait()
    {
        if (!end_) {
            int status = 0;
            REQUIRE(::waitpid(pid_, &status, 0) == pid_);
            end_ = decode(status);
        }
        return *end_;
    }

    void signal(int number) const { ::kill(pid_, number); }

    /// What it wrote so far.
    std::string output() const
    {
        std::ifstream file{output_file_, std::ios::binary};
        return {std::istreambuf_iterator<char>{file}, std::istreambuf_iterator<char>{}};
    }

private:
    static ProcessEnd decode(int status)
    {
        ProcessEnd end;
        if (WIFEXITED(status))
            end.exit_code = WEXITSTATUS(status);
        if (WIFSIGNALED(status))
            end.signal = WTERMSIG(status);
        return end;
    }

    std::string output_file_;
    pid_t pid_ = -1;
    std::optional<ProcessEnd> end_;
};

/// Runs `program` to its end and returns its exit code and output.
inline std::pair<ProcessEnd, std::string> run_process(const std::string& program,
                                                      const std::vector<std::string>& arguments,
                                                      const std::string& output_file)
{
    ChildProcess child(program, arguments, output_file);
    ProcessEnd end = child.wait();
    return {end, child.output()};
}

} // namespace whisperer::test
