// net/http.cpp — libcurl easy handles behind the retry and download policies of http.h.
#include "net/http.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <thread>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "core/atomic_file.h"
#include "core/error.h"

namespace kindred::net {
namespace {

void ensure_curl_initialised() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) fail("libcurl could not be initialised");
    });
}

bool equal_ignoring_case(const std::string& a, const std::string& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

bool retryable_status(long status) {
    return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

// Failures where asking again cannot help (our URL, our disk, our callbacks).
bool retryable_transport(CURLcode code) {
    switch (code) {
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_WRITE_ERROR:
        case CURLE_ABORTED_BY_CALLBACK:
        case CURLE_TOO_MANY_REDIRECTS:
        case CURLE_LOGIN_DENIED:
        case CURLE_OUT_OF_MEMORY:
        case CURLE_FILESIZE_EXCEEDED:
            return false;
        default:
            return true;
    }
}

void pause_before_retry(const HttpOptions& options, int attempt, const HttpResponse* response) {
    double seconds = std::min(options.backoff_max_s, options.backoff_initial_s * std::ldexp(1.0, attempt - 1));
    if (response != nullptr) {
        const std::string retry_after = response->header("Retry-After");
        char* end = nullptr;
        const double asked = std::strtod(retry_after.c_str(), &end);
        if (!retry_after.empty() && end != nullptr && *end == '\0' && std::isfinite(asked) && asked >= 0)
            seconds = std::min(options.backoff_max_s, asked);
    }
    if (options.sleep) {
        options.sleep(seconds);
    } else {
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    }
}

struct CurlDeleter {
    void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct SlistDeleter {
    void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// Where an attempt's body goes: a string (bounded) or, for downloads, a file descriptor that
// receives only a successful response's body.
struct BodySink {
    std::string* text = nullptr;
    std::size_t max_text_bytes = 0;
    bool text_too_long = false;

    int fd = -1;                 // download target (O_APPEND)
    std::int64_t on_disk = 0;    // bytes in the file so far
    bool body_started = false;   // this attempt has written body bytes
    std::int64_t range_start = -1;  // first byte of a 206's Content-Range
    bool wrong_range = false;    // a 206 that does not continue the part
    int write_errno = 0;
    std::string error_body;      // a failed download's body, for the message
    CURL* handle = nullptr;
    std::int64_t total = -1;     // full size when known
    const std::function<void(std::int64_t, std::int64_t)>* progress = nullptr;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
    auto& sink = *static_cast<BodySink*>(user);
    const std::size_t bytes = size * count;
    if (sink.fd < 0) {
        if (sink.text->size() + bytes > sink.max_text_bytes) {
            sink.text_too_long = true;
            return 0;
        }
        sink.text->append(data, bytes);
        return bytes;
    }
    long status = 0;
    curl_easy_getinfo(sink.handle, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 && status != 206) {
        if (sink.error_body.size() < 4096) sink.error_body.append(data, std::min<std::size_t>(bytes, 4096));
        return bytes;
    }
    if (status == 206 && !sink.body_started && sink.range_start != sink.on_disk) {
        sink.wrong_range = true;  // not the bytes that follow the part: appending would corrupt it
        return 0;
    }
    if (status == 200 && sink.on_disk > 0 && !sink.body_started) {
        // A range was asked for and the whole file is coming: it replaces the part.
        if (::ftruncate(sink.fd, 0) != 0) {
            sink.write_errno = errno;
            return 0;
        }
        sink.on_disk = 0;
    }
    sink.body_started = true;
    for (std::size_t written = 0; written < bytes;) {
        const ssize_t n = ::write(sink.fd, data + written, bytes - written);
        if (n < 0) {
            if (errno == EINTR) continue;
            sink.write_errno = errno;
            return 0;
        }
        written += static_cast<std::size_t>(n);
    }
    sink.on_disk += static_cast<std::int64_t>(bytes);
    if (sink.progress != nullptr && *sink.progress) (*sink.progress)(sink.on_disk, sink.total);
    return bytes;
}

struct HeaderSink {
    HttpResponse* response;
    BodySink* body;
};

std::string trim(std::string text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return {};
    const auto last = text.find_last_not_of(" \t\r\n");
    return text.substr(first, last - first + 1);
}

std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
    auto& sink = *static_cast<HeaderSink*>(user);
    const std::size_t bytes = size * count;
    const std::string line(data, bytes);
    if (line.rfind("HTTP/", 0) == 0) {
        sink.response->headers.clear();  // a redirect's or 100-continue's headers end here
        return bytes;
    }
    const auto colon = line.find(':');
    if (colon == std::string::npos) return bytes;
    std::string name = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    if (sink.body != nullptr) {
        if (equal_ignoring_case(name, "Content-Range")) {
            const auto slash = value.rfind('/');
            if (value.rfind("bytes ", 0) == 0) {
                char* end = nullptr;
                const long long start = std::strtoll(value.c_str() + 6, &end, 10);
                if (end != nullptr && *end == '-' && start >= 0) sink.body->range_start = start;
            }
            if (slash != std::string::npos) {
                char* end = nullptr;
                const long long total = std::strtoll(value.c_str() + slash + 1, &end, 10);
                if (end != nullptr && *end == '\0' && total > 0) sink.body->total = total;
            }
        } else if (equal_ignoring_case(name, "Content-Length") && sink.body->total < 0) {
            char* end = nullptr;
            const long long length = std::strtoll(value.c_str(), &end, 10);
            if (end != nullptr && *end == '\0' && length >= 0) sink.body->total = length;
        }
    }
    sink.response->headers.emplace_back(std::move(name), std::move(value));
    return bytes;
}

struct Attempt {
    CURLcode code = CURLE_OK;
    std::string curl_message;
    HttpResponse response;
};

struct RequestSpec {
    const char* method;
    const std::string& url;
    const std::string* post_body;  // null: GET
    std::vector<std::string> headers;
    std::int64_t range_from = 0;   // > 0: ask for bytes from here on
};

Attempt perform(const RequestSpec& spec, const HttpOptions& options, BodySink& body) {
    ensure_curl_initialised();
    std::unique_ptr<CURL, CurlDeleter> handle(curl_easy_init());
    if (!handle) fail("{} {}: libcurl could not create a handle", spec.method, spec.url);
    CURL* curl = handle.get();
    Attempt attempt;
    char error_buffer[CURL_ERROR_SIZE] = {};
    body.handle = curl;
    if (body.fd < 0) body.text = &attempt.response.body;
    HeaderSink headers{&attempt.response, body.fd >= 0 ? &body : nullptr};

    curl_slist* raw_list = nullptr;
    for (const std::string& header : spec.headers) raw_list = curl_slist_append(raw_list, header.c_str());
    std::unique_ptr<curl_slist, SlistDeleter> list(raw_list);

    curl_easy_setopt(curl, CURLOPT_URL, spec.url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout_s * 1000));
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options.timeout_s * 1000));
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, options.low_speed_bytes);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, static_cast<long>(std::ceil(options.low_speed_time_s)));
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "kindred/0.1");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &headers);
    if (list) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list.get());
    const std::string range = spec.range_from > 0 ? std::to_string(spec.range_from) + "-" : "";
    if (!range.empty()) curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
    if (spec.post_body != nullptr) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, spec.post_body->data());
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(spec.post_body->size()));
    }

    attempt.code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &attempt.response.status);
    if (attempt.code != CURLE_OK) {
        attempt.curl_message = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(attempt.code);
    }
    body.handle = nullptr;
    return attempt;
}

constexpr std::size_t kMaxResponseBytes = std::size_t{256} << 20;

HttpResponse request(const RequestSpec& spec, const HttpOptions& options) {
    const int attempts = std::max(1, options.max_attempts);
    std::string last_failure;
    for (int attempt_number = 1;; ++attempt_number) {
        BodySink body;
        body.max_text_bytes = kMaxResponseBytes;
        Attempt attempt = perform(spec, options, body);
        if (body.text_too_long)
            fail("{} {}: the response is larger than {} MiB", spec.method, spec.url, kMaxResponseBytes >> 20);
        if (attempt.code == CURLE_OK) {
            if (!retryable_status(attempt.response.status) || attempt_number >= attempts) return std::move(attempt.response);
            pause_before_retry(options, attempt_number, &attempt.response);
            continue;
        }
        last_failure = attempt.curl_message;
        if (!retryable_transport(attempt.code) || attempt_number >= attempts)
            fail("{} {}: {} ({} attempt{})", spec.method, spec.url, last_failure, attempt_number,
                 attempt_number == 1 ? "" : "s");
        pause_before_retry(options, attempt_number, nullptr);
    }
}

std::string first_bytes(const std::string& body) {
    constexpr std::size_t kShown = 300;
    std::string shown = body.substr(0, kShown);
    for (char& c : shown) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    return body.size() > kShown ? shown + "..." : shown;
}

std::int64_t file_size_or_zero(const std::string& path) {
    std::error_code error;
    const auto size = std::filesystem::file_size(path, error);
    return error ? 0 : static_cast<std::int64_t>(size);
}

}  // namespace

std::string HttpResponse::header(const std::string& name) const {
    for (const auto& [key, value] : headers) {
        if (equal_ignoring_case(key, name)) return value;
    }
    return {};
}

HttpOptions download_http_options() {
    HttpOptions options;
    options.timeout_s = 0.0;
    return options;
}

HttpResponse http_get(const std::string& url, const HttpOptions& options) {
    return request({"GET", url, nullptr, options.headers}, options);
}

HttpResponse http_post(const std::string& url, const std::string& body, const std::string& content_type,
                       const HttpOptions& options) {
    std::vector<std::string> headers = options.headers;
    headers.push_back("Content-Type: " + content_type);
    headers.emplace_back("Expect:");  // no 100-continue round trip for large bodies
    return request({"POST", url, &body, std::move(headers)}, options);
}

void require_ok(const HttpResponse& response, const std::string& method, const std::string& url) {
    if (!response.ok()) fail("{} {}: HTTP {}: {}", method, url, response.status, first_bytes(response.body));
}

DownloadOutcome download_file(const std::string& url, const std::string& path, const DownloadOptions& options) {
    if (std::filesystem::exists(path)) {
        if (options.sha256.empty() || sha256_file(path) == options.sha256) return DownloadOutcome::AlreadyPresent;
    }
    const std::string part = path + ".part";
    const std::filesystem::path folder = std::filesystem::path(path).parent_path();
    if (!folder.empty()) {
        std::error_code error;
        std::filesystem::create_directories(folder, error);
        if (error) fail("{}: cannot create folder {}: {}", url, folder.string(), error.message());
    }
    const HttpOptions& http = options.http;
    const int attempts = std::max(1, http.max_attempts);
    const bool resumed = file_size_or_zero(part) > 0;
    for (int attempt_number = 1;; ++attempt_number) {
        const std::int64_t offset = file_size_or_zero(part);
        const int fd = ::open(part.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) fail("{}: cannot write {}: {}", url, part, std::strerror(errno));
        BodySink body;
        body.fd = fd;
        body.on_disk = offset;
        body.progress = &options.progress;
        Attempt attempt;
        try {
            attempt = perform({"GET", url, nullptr, http.headers, offset}, http, body);
        } catch (...) {
            ::close(fd);
            throw;
        }
        const bool synced = ::fsync(fd) == 0;
        ::close(fd);
        if (body.write_errno != 0) fail("{}: cannot write {}: {}", url, part, std::strerror(body.write_errno));
        if (!synced) fail("{}: cannot write {}: {}", url, part, std::strerror(errno));

        const long status = attempt.response.status;
        const bool last = attempt_number >= attempts;
        if (body.wrong_range) {
            std::filesystem::remove(part);
            if (last) fail("GET {}: the server answered a range request with other bytes", url);
            continue;
        }
        if (attempt.code != CURLE_OK) {
            if (!retryable_transport(attempt.code) || last)
                fail("{}: {} ({} attempt{}; {} bytes kept in {} for the next run)", url, attempt.curl_message,
                     attempt_number, attempt_number == 1 ? "" : "s", file_size_or_zero(part), part);
            pause_before_retry(http, attempt_number, nullptr);
            continue;
        }
        if (status == 416 && offset > 0) {
            // The part may already hold the whole file (a run stopped between the last byte and
            // the rename); anything else is stale and starts over.
            if (options.sha256.empty() || sha256_file(part) != options.sha256) {
                std::filesystem::remove(part);
                if (last) fail("GET {}: the server refused to resume {} (HTTP 416)", url, part);
                continue;
            }
        } else if (status != 200 && status != 206) {
            if (retryable_status(status) && !last) {
                pause_before_retry(http, attempt_number, &attempt.response);
                continue;
            }
            fail("GET {}: HTTP {}: {}", url, status, first_bytes(body.error_body));
        } else if (status == 200 && offset > 0 && !body.body_started) {
            std::filesystem::resize_file(part, 0);  // range ignored and an empty body: the file is empty
        }
        if (status != 416 && !options.sha256.empty()) {
            const std::string got = sha256_file(part);
            if (got != options.sha256) {
                std::filesystem::remove(part);
                fail("{}: sha256 mismatch: expected {}, got {} (the download was discarded)", url, options.sha256, got);
            }
        }
        std::error_code error;
        std::filesystem::rename(part, path, error);
        if (error) fail("{}: cannot move {} to {}: {}", url, part, path, error.message());
        fsync_directory(folder.empty() ? "." : folder.string());
        return resumed || offset > 0 ? DownloadOutcome::Resumed : DownloadOutcome::Downloaded;
    }
}

namespace {

struct DigestDeleter {
    void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};

class Sha256 {
public:
    Sha256() : context_(EVP_MD_CTX_new()) {
        if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1) fail("sha256: OpenSSL failed to start a digest");
    }
    void update(const void* data, std::size_t bytes) {
        if (EVP_DigestUpdate(context_.get(), data, bytes) != 1) fail("sha256: OpenSSL failed to hash");
    }
    std::string hex() {
        unsigned char digest[EVP_MAX_MD_SIZE];
        unsigned int length = 0;
        if (EVP_DigestFinal_ex(context_.get(), digest, &length) != 1) fail("sha256: OpenSSL failed to finish a digest");
        static constexpr char kDigits[] = "0123456789abcdef";
        std::string text;
        for (unsigned int i = 0; i < length; ++i) {
            text.push_back(kDigits[digest[i] >> 4]);
            text.push_back(kDigits[digest[i] & 15]);
        }
        return text;
    }

private:
    std::unique_ptr<EVP_MD_CTX, DigestDeleter> context_;
};

}  // namespace

std::string sha256_hex(const std::string& bytes) {
    Sha256 digest;
    digest.update(bytes.data(), bytes.size());
    return digest.hex();
}

std::string sha256_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("{}: cannot open for reading", path);
    Sha256 digest;
    std::vector<char> buffer(std::size_t{1} << 20);
    while (in) {
        in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        digest.update(buffer.data(), static_cast<std::size_t>(in.gcount()));
    }
    if (in.bad()) fail("{}: read error", path);
    return digest.hex();
}

}  // namespace kindred::net
