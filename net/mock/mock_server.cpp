#include "net/mock/mock_server.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace bp::mock {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
// Client bytes can reach error messages: invalid UTF-8 is replaced when serialising, never thrown on.
constexpr auto kReplaceBadUtf8 = json::error_handler_t::replace;
using clock_type = std::chrono::steady_clock;

namespace {

const char* kWords[] = {"The",    "intent", "is",      "card",    "activation", "balance", "transfer",
                        "request", "with",   "high",    "confidence", "and",     "a",       "short",
                        "reason", "about",  "payment", "status",  "for",        "account", "fees"};
constexpr std::size_t kWordCount = sizeof(kWords) / sizeof(kWords[0]);

struct shared_state {
  options opts;
  clock_type::time_point ready_at;
  std::atomic<long> completed{0};
  std::atomic<long> started{0};
  std::atomic<long> cancelled{0};
  std::atomic<long> active{0};
  std::atomic<long> seq{0};
  std::atomic<long> fail_counter{0};
  std::atomic<long> error_counter{0};
  std::atomic<long> resets{0};
  // The queueing model (--slots, --batch-cost): requests generating now, and those waiting for a
  // slot (each a continuation posted to its own session's strand when a slot frees).
  std::mutex slot_mu;
  long running = 0;
  std::deque<std::function<void()>> waiting;
  std::atomic<long> generating{0};
  std::atomic<long> queued{0};
  double pace = 1;           ///< the lifecycle's pace factor (--pace-cv), drawn once at startup
  double itl_added_ms = 0;   ///< MOCK_EXTRA_ITL_MS, plus --interaction-delay-ms when both MOCK_SLOW_* are set
  // Event stamps: CLOCK_REALTIME at startup plus CLOCK_MONOTONIC elapsed since, in whole microseconds
  // (comparable with other processes' wall-clock records; differences are monotonic differences).
  clock_type::time_point origin;
  std::int64_t origin_wall_us = 0;

  std::int64_t stamp_us(clock_type::time_point t) const {
    return origin_wall_us + std::chrono::duration_cast<std::chrono::microseconds>(t - origin).count();
  }
};

std::string token_text(std::size_t seed, int i) {
  std::string w = kWords[(seed + static_cast<std::size_t>(i) * 7) % kWordCount];
  return i == 0 ? w : " " + w;
}

std::string http_head(int status, const char* reason, const char* ctype, std::size_t len,
                      bool keep_alive, const char* extra = "") {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nServer: mock-engine\r\n";
  h += "Content-Type: ";
  h += ctype;
  h += "\r\nContent-Length: " + std::to_string(len) + "\r\n";
  if (!keep_alive) h += "Connection: close\r\n";
  h += extra;
  h += "\r\n";
  return h;
}

std::string chunk(const std::string& data) {
  char hex[32];
  std::snprintf(hex, sizeof(hex), "%zx\r\n", data.size());
  return hex + data + "\r\n";
}

class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket s, shared_state& st) : sock_(std::move(s)), st_(st), timer_(sock_.get_executor()) {
    sock_.set_option(tcp::no_delay(true));
  }
  void start() { do_read(); }

 private:
  void do_read() {
    parser_.emplace();
    parser_->body_limit(64u * 1024 * 1024);
    http::async_read(sock_, buf_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_read(ec);
    });
  }

  void on_read(beast::error_code ec) {
    if (ec) return close();
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    std::string target(req.target());
    auto q = target.find('?');
    std::string path = q == std::string::npos ? target : target.substr(0, q);
    if (req.method() == http::verb::get && path == "/health") {
      if (clock_type::now() < st_.ready_at)
        return reply(503, "Service Unavailable",
                     R"({"error":{"code":503,"message":"Loading model","type":"unavailable_error"}})");
      return reply(200, "OK", R"({"status":"ok"})");
    }
    if (req.method() == http::verb::get && path == "/v1/models") {
      json j = {{"object", "list"},
                {"data", json::array({{{"id", st_.opts.model},
                                       {"object", "model"},
                                       {"owned_by", "mock-engine"},
                                       {"root", st_.opts.model},
                                       {"max_model_len", 4096}}})}};
      return reply(200, "OK", j.dump(-1, ' ', false, kReplaceBadUtf8));
    }
    if (req.method() == http::verb::get && path == "/version")
      return reply(200, "OK", json{{"version", std::string("mock-") + BENCH_PROXY_VERSION}}.dump(-1, ' ', false, kReplaceBadUtf8));
    if (req.method() == http::verb::get && path == "/mock/stats") {
      json j = {{"started", st_.started.load()},     {"completed", st_.completed.load()},
                {"cancelled", st_.cancelled.load()}, {"active", st_.active.load()},
                {"prefix_cache_resets", st_.resets.load()}, {"pid", ::getpid()},
                {"pace_factor", st_.pace},  {"itl_added_ms", st_.itl_added_ms},
                {"generating", st_.generating.load()}, {"queued", st_.queued.load()}, {"slots", st_.opts.slots}};
      return reply(200, "OK", j.dump(-1, ' ', false, kReplaceBadUtf8));
    }
    if (req.method() == http::verb::post && path == "/reset_prefix_cache") {
      // As vLLM's (dev mode): empties the (pretend) prefix cache.
      st_.resets++;
      return reply(200, "OK", R"({"reset":true})");
    }
    if (path == "/v1/mock/echo") {
      // Echoes method, target, headers and body: lets tests see exactly what the proxy forwarded.
      json h = json::object();
      for (const auto& f : req) h[std::string(f.name_string())].push_back(std::string(f.value()));
      json j = {{"method", std::string(req.method_string())}, {"target", target}, {"headers", h},
                {"body", req.body()}};
      return reply(200, "OK", j.dump(-1, ' ', false, kReplaceBadUtf8));
    }
    bool chat = path == "/v1/chat/completions";
    if (req.method() == http::verb::post && (chat || path == "/v1/completions"))
      return completion(chat, req.body());
    if (path == "/v1/chat/completions" || path == "/v1/completions" || path == "/health" ||
        path == "/v1/models")
      return reply(405, "Method Not Allowed", R"({"error":{"message":"method not allowed"}})");
    reply(404, "Not Found", json{{"error", {{"message", "no route for " + path}, {"code", 404}}}}.dump(-1, ' ', false, kReplaceBadUtf8));
  }

  void completion(bool chat, const std::string& body) {
    json req;
    try {
      req = json::parse(body);
      if (!req.is_object()) throw std::runtime_error("not an object");
    } catch (const std::exception& e) {
      return reply(400, "Bad Request",
                   json{{"error", {{"message", std::string("invalid JSON body: ") + e.what()},
                                   {"type", "invalid_request_error"}}}}
                       .dump(-1, ' ', false, kReplaceBadUtf8));
    }
    if (chat && (!req.contains("messages") || !req["messages"].is_array()))
      return reply(400, "Bad Request",
                   R"({"error":{"message":"'messages' is required","type":"invalid_request_error"}})");
    if (st_.opts.stall) {
      // Never answer; only notice when the peer goes away (the proxy's and client's timeouts must cope).
      sock_.async_wait(tcp::socket::wait_error, [self = shared_from_this()](beast::error_code) {});
      sock_.async_read_some(asio::buffer(stall_buf_), [self = shared_from_this()](beast::error_code, std::size_t) {
        self->close();
      });
      return;
    }
    if (st_.opts.crash_after >= 0 && st_.completed.load() >= st_.opts.crash_after) {
      // The first N requests were answered in full; the next one takes the engine down.
      std::fprintf(stderr, "mock-engine: crashing after %ld requests (fault switch)\n", st_.completed.load());
      std::fflush(stderr);
      std::abort();
    }
    if (st_.opts.fail_every > 0 && ++st_.fail_counter % st_.opts.fail_every == 0)
      return reply(500, "Internal Server Error",
                   R"x({"error":{"message":"mock-engine: failing this request (--fail-every)","type":"server_error"}})x");
    st_.started++;
    st_.active++;
    in_request_ = true;
    tokens_ = st_.opts.tokens;
    for (const char* k : {"max_tokens", "max_completion_tokens", "mock_tokens"})
      if (req.contains(k) && req[k].is_number_integer()) tokens_ = std::max(0, req[k].get<int>());
    // The lifecycle's pace (--pace-cv) scales every delay, the environment's added ones too: a
    // slower configuration stays slower by the same ratio in every lifecycle.
    ttft_ms_ = req.value("mock_ttft_ms", st_.opts.ttft_ms) * st_.pace;
    itl_ms_ = (req.value("mock_itl_ms", st_.opts.itl_ms) + st_.itl_added_ms) * st_.pace;
    jitter_ = std::max(0.0, req.value("mock_jitter", st_.opts.jitter));
    if (jitter_ > 0) {
      // Each request has its own pace (a lognormal factor on TTFT and ITL), and each token its
      // own delay around it: the request-to-request and token-to-token noise of a real engine.
      double pace = std::exp(jitter_ * noise());
      ttft_ms_ *= pace;
      itl_ms_ *= pace;
    }
    next_at_ = ttft_ms_;
    stream_ = req.value("stream", false);
    role_event_ = false;
    error_after_ = req.contains("mock_error_after") && req["mock_error_after"].is_number_integer()
                       ? req["mock_error_after"].get<int>()
                       : -1;
    if (stream_ && error_after_ < 0 && st_.opts.error_every > 0 && ++st_.error_counter % st_.opts.error_every == 0)
      error_after_ = tokens_ / 2;
    usage_ = stream_ && req.contains("stream_options") && req["stream_options"].is_object() &&
             req["stream_options"].value("include_usage", false);
    chat_ = chat;
    std::string prompt = chat ? req["messages"].dump() : req.value("prompt", json("")).dump();
    prompt_tokens_ = 1;
    for (char ch : prompt)
      if (ch == ' ') ++prompt_tokens_;
    seed_ = std::hash<std::string>{}(prompt);
    // mock_deterministic: identical requests give byte-identical responses (soak comparisons).
    bool det = req.value("mock_deterministic", false);
    id_ = (chat ? "chatcmpl-mock-" : "cmpl-mock-") + std::to_string(det ? seed_ % 1000000007 : ++st_.seq);
    created_ = det ? 0 : static_cast<long>(std::time(nullptr));
    sent_ = 0;
    events_ = 0;
    start_ = clock_type::now();
    stamp_ = st_.opts.stamp_events || req.value("mock_stamp_events", false);
    due_ms_ = 0;
    received_us_ = st_.stamp_us(start_);
    if (stream_) {
      std::string head =
          "HTTP/1.1 200 OK\r\nServer: mock-engine\r\nContent-Type: text/event-stream\r\n"
          "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n";
      if (!keep_alive_) head += "Connection: close\r\n";
      head += "\r\n";
      out_ = std::move(head);
      role_event_ = chat && req.value("mock_role_event", st_.opts.role_event);
      if (role_event_) {
        // vLLM's first event: the role with empty content, sent before any token exists.
        json d = {{"index", 0}, {"delta", {{"role", "assistant"}, {"content", ""}}}, {"finish_reason", nullptr}};
        out_ += chunk("data: " + chunk_json(d).dump(-1, ' ', false, kReplaceBadUtf8) + "\n\n");
      }
      // Headers go out at once, like real engines do before the first token; the first token
      // waits for a slot (--slots) and then for the TTFT.
      write_out([self = shared_from_this()] { self->admit([self] { self->schedule_next(); }); });
    } else {
      admit([self = shared_from_this()] {
        double total = self->tokens_ > 0 ? self->next_at_ + (self->tokens_ - 1) * self->itl_ms_ * self->batch_factor() : 0;
        self->due_ms_ = total;
        self->after_ms(total, [self] { self->finish_plain(); });
      });
    }
  }

  /// Runs `fn` once this request holds a generation slot (at once without --slots); the TTFT
  /// counts from then, so a queued request's wait is part of its TTFT, as in a real engine.
  void admit(std::function<void()> fn) {
    // A request that never waited is due on the schedule from the moment it was taken (not from
    // when its headers finished writing: microseconds the stamps would otherwise show as a shifted
    // schedule); one that queued for a slot starts its TTFT when it gets one.
    auto start_generating = [self = shared_from_this(), fn = std::move(fn)](bool waited) {
      if (!self->in_request_) return self->release_slot();  // the client left while it waited
      self->holds_slot_ = true;
      self->st_.generating++;
      self->next_at_ =
          (waited ? std::chrono::duration<double, std::milli>(clock_type::now() - self->start_).count() : 0.0) +
          self->ttft_ms_;
      fn();
    };
    if (st_.opts.slots <= 0) return start_generating(false);
    std::unique_lock<std::mutex> lock(st_.slot_mu);
    if (st_.running < st_.opts.slots) {
      ++st_.running;
      lock.unlock();
      return start_generating(false);
    }
    st_.queued++;
    st_.waiting.push_back([ex = sock_.get_executor(), go = std::move(start_generating), &st = st_]() mutable {
      st.queued--;
      asio::post(ex, [go = std::move(go)]() mutable { go(true); });
    });
  }

  /// Hands this request's slot to the first waiting request, or frees it.
  void release_slot() {
    if (st_.opts.slots <= 0) return;
    std::function<void()> next;
    {
      std::lock_guard<std::mutex> g(st_.slot_mu);
      if (st_.waiting.empty()) {
        --st_.running;
        return;
      }
      next = std::move(st_.waiting.front());
      st_.waiting.pop_front();
    }
    next();
  }

  /// The batch's slow-down of each inter-token delay (--batch-cost): 1 + cost * (others generating).
  double batch_factor() const {
    if (st_.opts.batch_cost <= 0) return 1;
    return 1 + st_.opts.batch_cost * static_cast<double>(std::max(0L, st_.generating.load() - 1));
  }

  void after_ms(double ms, std::function<void()> fn) {
    if (ms <= 0) return fn();
    timer_.expires_at(start_ + std::chrono::microseconds(static_cast<long>(ms * 1000)));
    timer_.async_wait([fn = std::move(fn)](beast::error_code ec) {
      if (!ec) fn();
    });
  }

  std::string text_all() const {
    std::string t;
    for (int i = 0; i < tokens_; ++i) t += token_text(seed_, i);
    return t;
  }

  json usage_json() const {
    return {{"prompt_tokens", prompt_tokens_},
            {"completion_tokens", tokens_},
            {"total_tokens", prompt_tokens_ + tokens_}};
  }

  void finish_plain() {
    json choice = chat_ ? json{{"index", 0},
                               {"message", {{"role", "assistant"}, {"content", text_all()}}},
                               {"finish_reason", "length"}}
                        : json{{"index", 0}, {"text", text_all()}, {"finish_reason", "length"}};
    json j = {{"id", id_},
              {"object", chat_ ? "chat.completion" : "text_completion"},
              {"created", created_},
              {"model", st_.opts.model},
              {"choices", json::array({choice})},
              {"usage", usage_json()}};
    std::string extra;
    if (stamp_) {
      std::int64_t sent = st_.stamp_us(clock_type::now());
      j["mock_received_us"] = received_us_;
      j["mock_sent_us"] = sent;
      j["mock_due_us"] = due_us();
      extra = "X-Mock-Received-Us: " + std::to_string(received_us_) + "\r\nX-Mock-Sent-Us: " + std::to_string(sent) +
              "\r\nX-Mock-Due-Us: " + std::to_string(due_us()) + "\r\n";
    }
    end_request(false);
    reply(200, "OK", j.dump(-1, ' ', false, kReplaceBadUtf8), extra.c_str());
  }

  json chunk_json(const json& choice, bool token = false) const {
    json j = {{"id", id_},
              {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
              {"created", created_},
              {"model", st_.opts.model},
              {"choices", json::array({choice})}};
    stamp(j, token);
    return j;
  }

  /// With --stamp-events: when the mock took this request and when it sends this event (just
  /// before the write), so a test compares a proxy's or client's records with the engine's own;
  /// a token's event also says when it was due (the timer's expiry: the schedule after pace,
  /// environment and jitter), never after it was sent.
  void stamp(json& j, bool token = false) const {
    if (!stamp_) return;
    j["mock_received_us"] = received_us_;
    j["mock_sent_us"] = st_.stamp_us(clock_type::now());
    if (token) j["mock_due_us"] = due_us();
  }

  /// The stamp of the timer's expiry: start_ plus the truncated microseconds after_ms waits for.
  std::int64_t due_us() const {
    return received_us_ + (due_ms_ > 0 ? static_cast<std::int64_t>(due_ms_ * 1000) : 0);
  }

  void schedule_next() {
    if (stream_ && error_after_ >= 0 && sent_ >= error_after_) {
      // mock_error_after: the engine fails mid-stream the way llama-server does: one error
      // event, then the end of the body, without [DONE].
      out_ = chunk(std::string("data: ") +
                   R"x({"error":{"code":500,"message":"mock-engine: failing mid-stream (mock_error_after)","type":"server_error"}})x" +
                   "\n\n");
      out_ += "0\r\n\r\n";
      end_request(false);
      return write_out([self = shared_from_this()] { self->next_request(); });
    }
    if (sent_ < tokens_) {
      double at = next_at_;
      due_ms_ = at;
      next_at_ += (jitter_ > 0 ? itl_ms_ * std::exp(jitter_ * noise()) : itl_ms_) * batch_factor();
      return after_ms(at, [self = shared_from_this()] { self->send_token(); });
    }
    // Final events: finish_reason, usage, [DONE], then the chunked terminator.
    json fin = chat_ ? json{{"index", 0}, {"delta", json::object()}, {"finish_reason", "length"}}
                     : json{{"index", 0}, {"text", ""}, {"finish_reason", "length"}};
    out_ = chunk("data: " + chunk_json(fin).dump(-1, ' ', false, kReplaceBadUtf8) + "\n\n");
    if (usage_) {
      json u = {{"id", id_},
                {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
                {"created", created_},
                {"model", st_.opts.model},
                {"choices", json::array()},
                {"usage", usage_json()}};
      stamp(u);
      out_ += chunk("data: " + u.dump(-1, ' ', false, kReplaceBadUtf8) + "\n\n");
    }
    out_ += chunk("data: [DONE]\n\n");
    out_ += "0\r\n\r\n";
    end_request(false);
    write_out([self = shared_from_this()] { self->next_request(); });
  }

  void send_token() {
    if (st_.opts.crash_mid_stream >= 0 && events_ >= st_.opts.crash_mid_stream) {
      std::fprintf(stderr, "mock-engine: crashing mid-stream after %d events (fault switch)\n", events_);
      std::fflush(stderr);
      std::abort();
    }
    json delta = json::object();
    if (sent_ == 0 && !role_event_) delta["role"] = "assistant";
    delta["content"] = token_text(seed_, sent_);
    json choice = chat_ ? json{{"index", 0}, {"delta", delta}, {"finish_reason", nullptr}}
                        : json{{"index", 0}, {"text", token_text(seed_, sent_)}, {"finish_reason", nullptr}};
    out_ = chunk("data: " + chunk_json(choice, true).dump(-1, ' ', false, kReplaceBadUtf8) + "\n\n");
    ++sent_;
    ++events_;
    write_out([self = shared_from_this()] { self->schedule_next(); });
  }

  void write_out(std::function<void()> then) {
    asio::async_write(sock_, asio::buffer(out_),
                      [self = shared_from_this(), then = std::move(then)](beast::error_code ec, std::size_t) {
                        if (ec) return self->close();
                        then();
                      });
  }

  void end_request(bool cancelled) {
    if (!in_request_) return;
    in_request_ = false;
    st_.active--;
    if (holds_slot_) {
      holds_slot_ = false;
      st_.generating--;
      release_slot();
    }
    if (cancelled) {
      st_.cancelled++;
      std::fprintf(stderr, "mock-engine: %s: client disconnected, request cancelled after %d of %d tokens\n",
                   id_.c_str(), sent_, tokens_);
      return;
    }
    ++st_.completed;
  }

  void reply(int status, const char* reason, const std::string& body, const char* extra = "") {
    out_ = http_head(status, reason, "application/json", body.size(), keep_alive_, extra) + body;
    write_out([self = shared_from_this()] { self->next_request(); });
  }

  void next_request() {
    if (!keep_alive_) return close();
    do_read();
  }

  void close() {
    end_request(true);
    beast::error_code ec;
    timer_.cancel();
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
  }

  tcp::socket sock_;
  shared_state& st_;
  asio::steady_timer timer_;
  beast::flat_buffer buf_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string out_;
  char stall_buf_[1];
  bool keep_alive_ = true;
  bool in_request_ = false;
  bool holds_slot_ = false;  ///< generating (counted in generating; with --slots, one of the slots)
  bool stream_ = false, usage_ = false, chat_ = true, role_event_ = false, stamp_ = false;
  std::int64_t received_us_ = 0;
  int tokens_ = 0, sent_ = 0, events_ = 0, prompt_tokens_ = 0;
  int error_after_ = -1;  ///< mock_error_after: an error event after this many tokens (-1: none)
  double ttft_ms_ = 0, itl_ms_ = 0, jitter_ = 0, next_at_ = 0, due_ms_ = 0;
  std::size_t seed_ = 0;

  /// A standard normal draw from this thread's generator (seeded once per thread from --seed and
  /// the order in which threads first draw, so one thread's draws repeat from run to run; or from
  /// the random device). Thread i's seed is --seed + i * 2^64/phi, i from 1: never the pace's stream.
  double noise() {
    static std::atomic<std::uint64_t> threads{0};
    thread_local std::mt19937_64 gen(st_.opts.jitter_seed != 0
                                         ? st_.opts.jitter_seed + 0x9E3779B97F4A7C15ull * ++threads
                                         : std::random_device{}());
    return std::normal_distribution<double>(0.0, 1.0)(gen);
  }
  std::string id_;
  long created_ = 0;
  clock_type::time_point start_;
};

void do_accept(tcp::acceptor& acc, shared_state& st) {
  acc.async_accept(asio::make_strand(acc.get_executor()), [&acc, &st](beast::error_code ec, tcp::socket s) {
    if (!ec) std::make_shared<session>(std::move(s), st)->start();
    if (acc.is_open()) do_accept(acc, st);
  });
}

std::vector<pid_t> g_children;

void start_workers(const options& o) {
  // Like a real engine, the mock is not up before its workers are: each writes one byte to this
  // pipe once it has renamed itself, and the engine waits for all of them before it serves.
  int ready[2] = {-1, -1};
  if (o.workers > 0 && ::pipe2(ready, O_CLOEXEC) != 0) ready[0] = ready[1] = -1;
  std::string ready_fd = std::to_string(ready[1]);
  for (int i = 0; i < o.workers; ++i) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::signal(SIGTERM, SIG_DFL);  // --ignore-sigterm is the engine's, not its workers'
      if (ready[1] >= 0) ::fcntl(ready[1], F_SETFD, 0);  // kept across exec
      std::string name = "MOCK::Worker_" + std::to_string(i);
      std::string rank = std::to_string(i);
      if (o.worker_rank_env) ::setenv("CUDA_VISIBLE_DEVICES", rank.c_str(), 1);
      char* argv[] = {const_cast<char*>(name.c_str()), const_cast<char*>("--worker"),
                      const_cast<char*>(rank.c_str()), const_cast<char*>(ready_fd.c_str()), nullptr};
      ::execv("/proc/self/exe", argv);
      _exit(127);
    }
    if (pid > 0) g_children.push_back(pid);
  }
  if (ready[1] >= 0) {
    ::close(ready[1]);
    int got = 0;
    char b;
    while (got < o.workers) {
      ssize_t n = ::read(ready[0], &b, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // a worker died before it was up: serve anyway, the tests will say
      ++got;
    }
    ::close(ready[0]);
  }
  if (o.detached_grandchild) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::setsid();
      if (::fork() == 0) {
        char* argv[] = {const_cast<char*>("MOCK::Detached"), const_cast<char*>("--detached"), nullptr};
        ::execv("/proc/self/exe", argv);
        _exit(127);
      }
      _exit(0);
    }
    if (pid > 0) ::waitpid(pid, nullptr, 0);
  }
}

}  // namespace

int run_worker(int rank, int ready_fd) {
  std::string name = rank >= 0 ? "MOCK::Worker_" + std::to_string(rank) : "MOCK::Detached";
  ::prctl(PR_SET_NAME, name.c_str(), 0, 0, 0);
  if (rank >= 0) {
    // Dies with its parent, as vLLM's workers do; the detached grandchild deliberately does not.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) return 0;
    if (ready_fd >= 0) {
      char one = '1';
      ssize_t ignored = ::write(ready_fd, &one, 1);
      (void)ignored;
      ::close(ready_fd);
    }
  } else {
    ::signal(SIGTERM, SIG_IGN);  // it tries hard to outlive the tree: only SIGKILL ends it
    ::signal(SIGHUP, SIG_IGN);
  }
  for (;;) ::pause();
}

int run(const options& o, int argc, char** argv) {
  (void)argc;
  (void)argv;
  if (!o.fail_startup.empty()) {
    std::fprintf(stderr, "mock-engine: loading model %s\n", o.model.c_str());
    std::fprintf(stderr, "mock-engine: fatal: %s\n", o.fail_startup.c_str());
    return 3;
  }
  {
    // A pretend compile cache, as real engines keep one (VLLM_CACHE_ROOT, TRITON_CACHE_DIR, ...):
    // written on the first start, reused afterwards. Only where the environment names a place.
    std::string dir;
    if (const char* d = std::getenv("MOCK_CACHE_DIR"); d && *d) dir = d;
    else if (const char* h = std::getenv("HOME"); h && *h) dir = std::string(h) + "/.cache/mock-engine";
    if (!dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(dir, ec);
      std::string artefact = dir + "/graph-" + o.model + ".bin";
      if (!ec && !std::filesystem::exists(artefact, ec)) {
        std::FILE* f = std::fopen(artefact.c_str(), "wb");
        if (f) {
          std::string bytes(4096, 'g');
          std::fwrite(bytes.data(), 1, bytes.size(), f);
          std::fclose(f);
          std::fprintf(stderr, "mock-engine: compiled %s into the cache %s\n", o.model.c_str(), dir.c_str());
        }
      }
    }
  }
  if (!o.chat_template.empty()) {
    FILE* f = std::fopen(o.chat_template.c_str(), "rb");
    if (!f) {
      std::fprintf(stderr, "mock-engine: cannot read chat template %s\n", o.chat_template.c_str());
      return 2;
    }
    std::fseek(f, 0, SEEK_END);
    std::fprintf(stderr, "mock-engine: chat template %s (%ld bytes)\n", o.chat_template.c_str(), std::ftell(f));
    std::fclose(f);
  }
  if (o.ignore_sigterm) ::signal(SIGTERM, SIG_IGN);
  start_workers(o);

  shared_state st;
  st.opts = o;
  st.origin = clock_type::now();
  st.origin_wall_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  {
    // One pace factor for the whole lifecycle (median 1, log-sd --pace-cv): a real engine's
    // start-to-start spread. Without --seed each lifecycle draws its own (pid and clock).
    std::uint64_t seed = o.jitter_seed != 0
                             ? o.jitter_seed
                             : (static_cast<std::uint64_t>(::getpid()) << 32) ^
                                   static_cast<std::uint64_t>(clock_type::now().time_since_epoch().count());
    std::mt19937_64 gen(seed);
    double z = std::normal_distribution<double>(0.0, 1.0)(gen);
    st.pace = o.pace_cv > 0 ? std::exp(o.pace_cv * z) : 1.0;
    std::fprintf(stderr, "mock-engine: pace factor %.17g (pace-cv %g, seed %llu)\n", st.pace, o.pace_cv,
                 static_cast<unsigned long long>(seed));
    // Delays a configuration changes through its environment.
    if (const char* e = std::getenv("MOCK_EXTRA_ITL_MS"); e && *e) {
      char* end = nullptr;
      double v = std::strtod(e, &end);
      if (end == e || *end != '\0' || !std::isfinite(v) || v < 0 || v > 1e9) {
        std::fprintf(stderr, "mock-engine: MOCK_EXTRA_ITL_MS must be a number of milliseconds >= 0, got '%s'\n", e);
        return 2;
      }
      st.itl_added_ms += v;
    }
    auto on = [](const char* name) {
      const char* v = std::getenv(name);
      return v && std::string(v) == "1";
    };
    bool both = on("MOCK_SLOW_A") && on("MOCK_SLOW_B");
    if (both) st.itl_added_ms += o.interaction_delay_ms;
    if (st.itl_added_ms > 0 || o.interaction_delay_ms > 0)
      std::fprintf(stderr,
                   "mock-engine: inter-token delay +%g ms from the environment (MOCK_EXTRA_ITL_MS; interaction "
                   "%g ms %s)\n",
                   st.itl_added_ms, o.interaction_delay_ms,
                   both ? "on: MOCK_SLOW_A=1 and MOCK_SLOW_B=1" : "off: needs MOCK_SLOW_A=1 and MOCK_SLOW_B=1");
  }
  st.ready_at = clock_type::now() + std::chrono::microseconds(static_cast<long>(o.startup_delay_ms * 1000));

  asio::io_context ioc(o.threads);
  tcp::acceptor acc(ioc);
  try {
    tcp::endpoint ep(asio::ip::make_address(o.host), o.port);
    acc.open(ep.protocol());
    acc.set_option(asio::socket_base::reuse_address(true));
    acc.bind(ep);
    acc.listen(asio::socket_base::max_listen_connections);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mock-engine: cannot listen on %s:%u: %s\n", o.host.c_str(), o.port, e.what());
    return 2;
  }
  std::fprintf(stderr,
               "mock-engine %s: pid %d listening on %s:%u model=%s tokens=%d ttft_ms=%g itl_ms=%g "
               "startup_delay_ms=%g threads=%d workers=%d slots=%d batch_cost=%g\n",
               BENCH_PROXY_VERSION, ::getpid(), o.host.c_str(), acc.local_endpoint().port(), o.model.c_str(),
               o.tokens, o.ttft_ms, o.itl_ms, o.startup_delay_ms, o.threads, o.workers, o.slots, o.batch_cost);
  std::fflush(stderr);

  asio::signal_set sigs(ioc, SIGINT);
  if (!o.ignore_sigterm) sigs.add(SIGTERM);
  sigs.async_wait([&](beast::error_code ec, int sig) {
    if (ec) return;
    std::fprintf(stderr, "mock-engine: received signal %d, shutting down\n", sig);
    beast::error_code ignore;
    acc.close(ignore);
    ioc.stop();
  });
  do_accept(acc, st);

  std::vector<std::thread> threads;
  for (int i = 1; i < o.threads; ++i) threads.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (auto& t : threads) t.join();
  for (pid_t c : g_children) ::kill(c, SIGTERM);
  for (pid_t c : g_children) ::waitpid(c, nullptr, 0);
  return 0;
}

}  // namespace bp::mock
