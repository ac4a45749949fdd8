#pragma once
/// The fleet's network edge (docs/fleet.md, "The network edge"). CAF 0.17's middleman cannot be
/// bounded: it allocates whatever payload length a BASP header claims, keeps every connection
/// open however idle, and libcaf_openssl re-reads the certificate files for every connection. So
/// CAF never faces the network: it listens (agent) and connects (coordinator) on loopback only,
/// and a guard stands in front of it that
///  - terminates TLS itself, with certificates loaded once at start;
///  - makes both sides prove the token (HMAC over nonces, frame.hpp) before one BASP byte passes,
///    within a deadline, in fixed-size buffers;
///  - caps the connections that have not proven it, closes them after the deadline, and logs every
///    refused peer with its address;
///  - relays only well-formed BASP frames of a bounded size afterwards (basp_checker);
///  - never lets an exception out of its threads, and never spins (EMFILE included).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/fleet/fleet.hpp"
#include "actors/fleet/frame.hpp"

namespace bp::fleet {

struct guard_limits {
  std::size_t max_unauthenticated = 16;  ///< connections at once that have not proven the token
  std::size_t max_connections = 64;      ///< relayed (authenticated) connections at once
  std::chrono::milliseconds handshake_timeout{5000};  ///< TLS and the token proof, together
  std::chrono::milliseconds idle_timeout{30000};      ///< an authenticated connection silent both ways
  std::size_t buffer = 64 * 1024;                     ///< per direction, per relayed connection
  frame_limits frames;
};

/// TLS settings loaded once (certificate, key, CA); empty when TLS is off.
class tls_context {
 public:
  /// Throws std::runtime_error naming the file that cannot be loaded.
  tls_context(const tls_options& o, bool server);
  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;
  void* native() const { return ctx_; }

 private:
  void* ctx_ = nullptr;
};

/// The agent's edge: listens on `host:port`, and relays each peer that proved the token (and,
/// with TLS, presented a certificate of the fleet's CA) to CAF on 127.0.0.1:`backend_port`.
class inbound_guard {
 public:
  struct state;
  /// Binds and starts; throws std::runtime_error when it cannot listen. `tag` prefixes its log
  /// lines ("agent", "agent [INSECURE PLAINTEXT]").
  inbound_guard(const std::string& host, std::uint16_t port, std::uint16_t backend_port, const std::string& token,
                std::shared_ptr<tls_context> tls, guard_limits limits, std::string tag);
  ~inbound_guard();  ///< stops accepting, closes every connection, waits for its threads
  std::uint16_t port() const;

 private:
  std::shared_ptr<state> st_;
};

/// The coordinator's edge for one agent: CAF connects to 127.0.0.1:local_port(); each such
/// connection (from this process only) is relayed to the agent after TLS and the token proof.
class outbound_guard {
 public:
  struct state;
  outbound_guard(const agent_entry& agent, const std::string& token, std::shared_ptr<tls_context> tls,
                 guard_limits limits);
  ~outbound_guard();
  std::uint16_t local_port() const;
  /// Dials the agent now and proves the token both ways; the next connection CAF makes to
  /// local_port() is relayed over it. Returns "" or why not; `refused` is true when the agent
  /// said the token is wrong or did not prove it (retrying does not help).
  std::string prepare(bool& refused);

 private:
  std::shared_ptr<state> st_;
};

}  // namespace bp::fleet
