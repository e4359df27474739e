// net/http.h — the one HTTP client of Kindred (libcurl underneath): requests with bounded,
// backed-off retries, and downloads that resume, verify and land atomically.
//
// Retries. A transport failure (connection refused or reset, timeout, truncated body) and the
// statuses that mean "try later" (408, 429, 500, 502, 503, 504) are retried up to
// max_attempts in all, sleeping backoff_initial_s · 2^(attempt-1) (capped at backoff_max_s)
// between attempts, or the server's Retry-After seconds when it sends one (capped likewise).
// Any other status is returned to the caller at once: a 400 or 404 does not get better by asking
// again. Every Error names the method and the URL.
//
// Downloads. Bytes go to `<path>.part`, which survives an interrupted run: the next attempt (or
// the next run) asks for the rest with a Range request and appends, or starts over when the
// server ignores the range. The finished file's sha256 is checked before it is renamed over
// `path` (and the folder fsynced), so `path` is either absent or complete and verified. A file
// already at `path` whose sha256 matches is used as it is, without any network access.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace kindred::net {

struct HttpOptions {
    double connect_timeout_s = 10.0;
    // Limit on one whole attempt; 0 = none (downloads rely on the low-speed limit instead).
    double timeout_s = 600.0;
    // An attempt that moves fewer than low_speed_bytes per second for low_speed_time_s is abandoned
    // (and retried): a stalled server cannot hang the caller.
    long low_speed_bytes = 1;
    double low_speed_time_s = 60.0;
    int max_attempts = 5;
    double backoff_initial_s = 1.0;
    double backoff_max_s = 60.0;
    // "Name: value" lines added to every request.
    std::vector<std::string> headers;
    // Replaceable for tests (default: sleeps the thread).
    std::function<void(double seconds)> sleep;
};

struct HttpResponse {
    long status = 0;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // in arrival order, names as sent

    // The first header named `name` (case-insensitive), or "" when absent.
    std::string header(const std::string& name) const;
    bool ok() const { return status >= 200 && status < 300; }
};

// One request with the retry policy above. Returns the last response whatever its status; throws
// Error when no attempt got a response at all ("POST http://…: connection refused (5 attempts)").
HttpResponse http_get(const std::string& url, const HttpOptions& options = {});
HttpResponse http_post(const std::string& url, const std::string& body, const std::string& content_type,
                       const HttpOptions& options = {});

// Throws Error naming the method, URL and status (with the start of the body) unless 2xx.
void require_ok(const HttpResponse& response, const std::string& method, const std::string& url);

// Downloads have no limit on a whole attempt (HttpOptions::timeout_s = 0): a large file on a slow
// link is fine as long as bytes keep arriving (the low-speed limit).
HttpOptions download_http_options();

struct DownloadOptions {
    HttpOptions http = download_http_options();
    std::string sha256;  // expected lowercase hex digest; empty = not checked (say so to the user)
    // Called as bytes arrive: bytes on disk so far (resumed part included) and the total when
    // the server told it (else -1).
    std::function<void(std::int64_t done, std::int64_t total)> progress;
};

enum class DownloadOutcome { AlreadyPresent, Downloaded, Resumed };

// Fetches `url` into `path` as described at the top. Throws Error naming the URL (and the path)
// on a non-2xx status, on exhausted retries, and on a checksum mismatch (the part file is
// removed then, so the next run starts clean).
DownloadOutcome download_file(const std::string& url, const std::string& path, const DownloadOptions& options = {});

// Lowercase hex sha256 of bytes or of a file (streamed; Error naming the file when unreadable).
std::string sha256_hex(const std::string& bytes);
std::string sha256_file(const std::string& path);

}  // namespace kindred::net
