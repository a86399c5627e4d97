// One byte stream of a connection, plain TCP or TLS over it, behind one type: the request path
// (head reading, bodies, local pages, forwarding) is written once against duplex_stream and
// runs unchanged on a client's plain connection, inside a decrypted (inspected) tunnel, and
// towards plain or TLS origins.
//
// - Reads and writes go to the TLS stream when there is one, else to the TCP stream.
// - Deadlines are always set on the TCP stream (tcp()): a TLS read is a series of TCP reads,
//   so the TCP stream's timer bounds it.
// - splice(2) needs both ends plain: callers ask is_tls() (body_relay.hpp, byte_relay.hpp).
//
// The TLS layer reads through a prefixed_stream, so bytes already read off the socket
// (the ClientHello the tunnel peeked at) are handed to OpenSSL first.
//
// Not owning: the connection that holds the streams holds this too. Used only on the owning
// worker's thread.
#pragma once

#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/bind_handler.hpp>

#include "proxy/net.hpp"

namespace hallpass {

// The layer under a TLS stream: reads first from prefix() (bytes already read off the socket:
// the ClientHello the tunnel peeked at), then from the TCP stream, whose deadline applies.
class prefixed_stream {
 public:
  using lowest_layer_type = tcp::socket;
  using executor_type = beast::tcp_stream::executor_type;

  explicit prefixed_stream(beast::tcp_stream& s) : s_(&s) {}
  executor_type get_executor() { return s_->get_executor(); }
  lowest_layer_type& lowest_layer() { return s_->socket(); }
  const lowest_layer_type& lowest_layer() const { return s_->socket(); }
  beast::flat_buffer& prefix() { return prefix_; }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return net::async_initiate<Token, void(error_code, std::size_t)>(read_initiation{this}, token, buffers);
  }
  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return s_->async_write_some(buffers, std::forward<Token>(token));
  }

 private:
  struct read_initiation {
    prefixed_stream* self;
    template <class Handler, class Buffers>
    void operator()(Handler&& h, const Buffers& b) const {
      if (self->prefix_.size() == 0) {
        self->s_->async_read_some(b, std::forward<Handler>(h));
        return;
      }
      const std::size_t n = net::buffer_copy(b, self->prefix_.data());
      self->prefix_.consume(n);
      if (self->prefix_.size() == 0) self->prefix_.shrink_to_fit();
      net::post(self->s_->get_executor(), beast::bind_front_handler(std::forward<Handler>(h), error_code{}, n));
    }
  };

  beast::tcp_stream* s_;
  beast::flat_buffer prefix_;
};

using tls_stream = net::ssl::stream<prefixed_stream>;

// The peer closed its side: a TCP EOF, or on TLS a close_notify (eof) or a TCP close without
// one (stream_truncated), which many servers do. Where the framing says the message ends at
// the close (a close-delimited body) or nothing was expected (an idle pooled connection), both
// mean "closed".
inline bool closed_by_peer(const error_code& ec) {
  return ec == net::error::eof || ec == net::ssl::error::stream_truncated;
}

class duplex_stream {
 public:
  using executor_type = beast::tcp_stream::executor_type;

  explicit duplex_stream(beast::tcp_stream& tcp) : tcp_(&tcp) {}

  executor_type get_executor() { return tcp_->get_executor(); }
  beast::tcp_stream& tcp() { return *tcp_; }
  tcp::socket& socket() { return tcp_->socket(); }
  bool is_tls() const { return tls_ != nullptr; }
  tls_stream* tls() { return tls_; }
  // From now on reads and writes go through `s` (whose lowest layer is tcp()).
  void use_tls(tls_stream& s) { tls_ = &s; }

  template <class Timeout>
  void expires_after(Timeout t) {
    tcp_->expires_after(t);
  }
  void expires_never() { tcp_->expires_never(); }

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return net::async_initiate<Token, void(error_code, std::size_t)>(read_initiation{this}, token, buffers);
  }
  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return net::async_initiate<Token, void(error_code, std::size_t)>(write_initiation{this}, token, buffers);
  }

 private:
  struct read_initiation {
    duplex_stream* self;
    template <class Handler, class Buffers>
    void operator()(Handler&& h, const Buffers& b) const {
      if (self->tls_) {
        self->tls_->async_read_some(b, std::forward<Handler>(h));
      } else {
        self->tcp_->async_read_some(b, std::forward<Handler>(h));
      }
    }
  };
  struct write_initiation {
    duplex_stream* self;
    template <class Handler, class Buffers>
    void operator()(Handler&& h, const Buffers& b) const {
      if (self->tls_) {
        self->tls_->async_write_some(b, std::forward<Handler>(h));
      } else {
        self->tcp_->async_write_some(b, std::forward<Handler>(h));
      }
    }
  };

  beast::tcp_stream* tcp_;
  tls_stream* tls_ = nullptr;
};

}  // namespace hallpass
