// The `kindred serve` binary: a reply equals `kindred generate --json` with the same seed and
// settings, and SIGTERM lets a running stream finish, then exits 0.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace {

using namespace std::chrono_literals;
using nlohmann::json;

// `kindred serve` as a child process whose stderr we read.
class ServeProcess {
public:
    explicit ServeProcess(const std::vector<std::string>& arguments) {
        int pipe_fds[2];
        if (::pipe(pipe_fds) != 0) return;
        pid_ = ::fork();
        if (pid_ == 0) {
            ::dup2(pipe_fds[1], STDERR_FILENO);
            ::close(pipe_fds[0]);
            ::close(pipe_fds[1]);
            std::vector<char*> argv;
            argv.push_back(const_cast<char*>(KINDRED_BINARY));
            for (const std::string& argument : arguments) argv.push_back(const_cast<char*>(argument.c_str()));
            argv.push_back(nullptr);
            ::execv(KINDRED_BINARY, argv.data());
            ::_exit(127);
        }
        ::close(pipe_fds[1]);
        stderr_ = ::fdopen(pipe_fds[0], "r");
    }
    ~ServeProcess() {
        if (pid_ > 0 && !reaped_) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
        if (stderr_ != nullptr) ::fclose(stderr_);
    }

    // Reads stderr until the "listening on http://HOST:PORT" line; returns the port, 0 if none came.
    int port() {
        std::array<char, 1024> line{};
        while (stderr_ != nullptr && std::fgets(line.data(), line.size(), stderr_) != nullptr) {
            log_ += line.data();
            const std::string text = line.data();
            const std::size_t at = text.find("listening on http://127.0.0.1:");
            if (at != std::string::npos) return std::stoi(text.substr(at + 30));
        }
        return 0;
    }
    // Sends `signal`, reads the rest of stderr, returns the exit status (-1 when killed by a signal).
    int stop(int signal) {
        ::kill(pid_, signal);
        std::array<char, 1024> line{};
        while (std::fgets(line.data(), line.size(), stderr_) != nullptr) log_ += line.data();
        int status = 0;
        ::waitpid(pid_, &status, 0);
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    void signal(int signal) const { ::kill(pid_, signal); }
    const std::string& log() const { return log_; }

private:
    pid_t pid_ = -1;
    FILE* stderr_ = nullptr;
    std::string log_;
    bool reaped_ = false;
};

std::string run_generate(const std::string& arguments) {
    const std::string command = std::string(KINDRED_BINARY) + " generate " + arguments + " 2>/dev/null";
    FILE* pipe = ::popen(command.c_str(), "r");
    std::string output;
    std::array<char, 4096> buffer{};
    std::size_t read = 0;
    while (pipe != nullptr && (read = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) output.append(buffer.data(), read);
    if (pipe != nullptr) ::pclose(pipe);
    return output;
}

TEST(ServeCli, ReplyEqualsGenerateAndSigtermIsGraceful) {
    // The grace period must outlast the 48-token stream below however busy the machine is (under a
    // load average of 20 the default 30 s did not, and the stream ended with the shutdown error).
    ServeProcess serve(
        {"serve", "--port", "0", "--parallel", "2", "--ctx", "512", "--model-name", "smol", "--shutdown-grace", "600"});
    const int port = serve.port();
    ASSERT_GT(port, 0) << serve.log();
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(120, 0);

    const json request = {{"model", "smol"},
                          {"messages", {{{"role", "user"}, {"content", "What makes a good friend?"}}}},
                          {"max_tokens", 16},
                          {"temperature", 0.7},
                          {"top_k", 20},
                          {"seed", 31337}};
    const auto reply = client.Post("/v1/chat/completions", request.dump(), "application/json");
    ASSERT_TRUE(reply);
    ASSERT_EQ(reply->status, 200) << reply->body;
    const json generated = json::parse(
        // The same settings as the server's, its default int8 products included.
        run_generate("--prompt 'What makes a good friend?' --max-tokens 16 --temperature 0.7 --top-k 20 --seed 31337 "
                     "--products int8 --json"));
    EXPECT_EQ(json::parse(reply->body)["choices"][0]["message"]["content"], generated["text"]);

    // SIGTERM while a stream runs: the stream still ends properly, then the server exits 0.
    json streaming = request;
    streaming["stream"] = true;
    streaming["max_tokens"] = 48;
    std::atomic<bool> started{false};
    std::string stream;
    std::thread reader([&] {
        httplib::Client stream_client("127.0.0.1", port);
        stream_client.set_read_timeout(120, 0);
        httplib::Request post;
        post.method = "POST";
        post.path = "/v1/chat/completions";
        post.body = streaming.dump();
        post.set_header("Content-Type", "application/json");
        post.content_receiver = [&](const char* data, std::size_t length, std::uint64_t, std::uint64_t) {
            stream.append(data, length);
            started = true;
            return true;
        };
        stream_client.send(post);
    });
    while (!started) std::this_thread::sleep_for(10ms);
    serve.signal(SIGTERM);
    reader.join();
    EXPECT_NE(stream.find("\"finish_reason\":\""), std::string::npos) << stream;
    EXPECT_TRUE(stream.ends_with("data: [DONE]\n\n")) << stream;
    EXPECT_EQ(serve.stop(SIGTERM), 0) << serve.log();
    EXPECT_NE(serve.log().find("SIGTERM received"), std::string::npos) << serve.log();
    EXPECT_NE(serve.log().find("stopped"), std::string::npos) << serve.log();
}

}  // namespace
