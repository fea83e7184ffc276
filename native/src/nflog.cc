// v6agent's NFLOG reader: receives the packets that nft `log group N` and ebtables' NFLOG
// watcher hand to nfnetlink_log, in-process, for the DHCPv6 identity evidence (src/dhcp-observe).
//
// Why raw netlink and not libnetfilter_log: the protocol is two configuration messages (bind the
// group, ask for packet copies) and one kind of message back, all stable kernel ABI described by
// <linux/netfilter/nfnetlink_log.h>; every attribute's length has to be checked here anyway.
// libnetfilter_log (and libnfnetlink under it) would be two more libraries on every hypervisor
// host for what is about a hundred lines.
//
// - No thread: the socket is non-blocking and watched by a uv_poll on Node's own loop. The rules
//   rate-limit what they log per port, so each wakeup reads a bounded batch (kMaxBatch datagrams)
//   and hands it to JavaScript as one array.
// - The kernel never waits for us: when the socket buffer is full nfnetlink_log drops the copy
//   (recv then reports ENOBUFS, counted in stats().dropped) and the packet itself goes on.
// - queue threshold 1: every packet is sent at once, not batched for up to a second.
// - A network namespace is entered only to open the sockets (as in nftables.cc); they stay
//   bound to it. Port names are looked up (SIOCGIFNAME) in that namespace too.

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <napi.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kMaxBatch = 256;                 // datagrams read per wakeup of the loop
constexpr size_t kBufferSize = 256 * 1024;     // one datagram: nfnetlink_log's largest batch
constexpr uint32_t kDefaultCopyRange = 2048;   // bytes of each packet copied (a DHCPv6 client message fits)
constexpr int kDefaultReceiveBuffer = 1 << 20; // what may wait in the socket before copies are dropped

// Opens a socket with this thread in `netns` (empty: where it is) and comes back. -1 and
// `error` on failure.
int SocketIn(const std::string& netns, int domain, int type, int protocol, std::string* error) {
  int self = -1;
  if (!netns.empty()) {
    self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int target = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) != 0) {
      *error = "cannot enter network namespace " + netns + ": " + std::strerror(errno);
      if (self >= 0) close(self);
      if (target >= 0) close(target);
      return -1;
    }
    close(target);
  }
  int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
  int saved = errno;
  if (self >= 0) {
    if (setns(self, CLONE_NEWNET) != 0) {
      // The thread left in another namespace would run later work there: never continue.
      std::fprintf(stderr, "v6agent nflog addon: cannot return to the thread's network namespace: %s\n", std::strerror(errno));
      std::abort();
    }
    close(self);
  }
  if (fd < 0) *error = std::string("cannot open a socket: ") + std::strerror(saved);
  return fd;
}

// Appends one netlink attribute to `message`.
void PutAttribute(std::vector<char>* message, uint16_t type, const void* data, size_t length) {
  nlattr header{static_cast<uint16_t>(NLA_HDRLEN + length), type};
  size_t at = message->size();
  message->resize(at + NLA_ALIGN(NLA_HDRLEN + length), 0);
  std::memcpy(message->data() + at, &header, sizeof(header));
  std::memcpy(message->data() + at + NLA_HDRLEN, data, length);
}

// Sends one NFULNL_MSG_CONFIG for `group` and waits for the kernel's acknowledgement.
bool Configure(int fd, uint16_t group, uint32_t seq, const std::vector<char>& attributes, std::string* error) {
  std::vector<char> message(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)), 0);
  message.insert(message.end(), attributes.begin(), attributes.end());
  auto* header = reinterpret_cast<nlmsghdr*>(message.data());
  header->nlmsg_len = static_cast<uint32_t>(message.size());
  header->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  header->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  header->nlmsg_seq = seq;
  auto* nfgen = reinterpret_cast<nfgenmsg*>(message.data() + NLMSG_HDRLEN);
  nfgen->nfgen_family = AF_UNSPEC;
  nfgen->version = NFNETLINK_V0;
  nfgen->res_id = htons(group);
  if (send(fd, message.data(), message.size(), 0) < 0) {
    *error = std::string("cannot configure NFLOG: ") + std::strerror(errno);
    return false;
  }
  alignas(nlmsghdr) char reply[4096];
  for (;;) {
    ssize_t length = recv(fd, reply, sizeof(reply), 0);
    if (length < 0 && errno == EINTR) continue;
    if (length < 0) {
      *error = std::string("no answer from nfnetlink_log: ") + std::strerror(errno);
      return false;
    }
    for (auto* m = reinterpret_cast<nlmsghdr*>(reply); NLMSG_OK(m, static_cast<unsigned>(length)); m = NLMSG_NEXT(m, length)) {
      if (m->nlmsg_seq != seq || m->nlmsg_type != NLMSG_ERROR) continue;  // a logged packet already: not ours
      if (m->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) {
        *error = "a truncated answer from nfnetlink_log";
        return false;
      }
      int code = static_cast<nlmsgerr*>(NLMSG_DATA(m))->error;
      if (code == 0) return true;
      // nfnetlink_log answers EPERM both for a group another socket holds and for a caller
      // without CAP_NET_ADMIN.
      *error = code == -EPERM ? "NFLOG group " + std::to_string(group) +
                                    " already has a listener in this network namespace (or this process lacks CAP_NET_ADMIN)"
                              : std::string("nfnetlink_log refused the configuration: ") + std::strerror(-code);
      return false;
    }
  }
}

class Reader : public Napi::ObjectWrap<Reader> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NflogReader",
                       {InstanceMethod("close", &Reader::Close), InstanceMethod("stats", &Reader::Stats)});
  }

  // new NflogReader({ group, netns?, copyRange?, receiveBuffer? }, onPackets)
  explicit Reader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Reader>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
      Napi::TypeError::New(env, "new NflogReader(options, onPackets)").ThrowAsJavaScriptException();
      return;
    }
    Napi::Object options = info[0].As<Napi::Object>();
    Napi::Value group = options.Get("group");
    if (!group.IsNumber() || group.As<Napi::Number>().DoubleValue() < 0 || group.As<Napi::Number>().DoubleValue() > 65535 ||
        group.As<Napi::Number>().DoubleValue() != group.As<Napi::Number>().Int32Value()) {
      Napi::RangeError::New(env, "options.group must be an integer 0..65535").ThrowAsJavaScriptException();
      return;
    }
    group_ = static_cast<uint16_t>(group.As<Napi::Number>().Uint32Value());
    std::string netns = options.Get("netns").IsString() ? options.Get("netns").As<Napi::String>().Utf8Value() : "";
    uint32_t copyRange = options.Get("copyRange").IsNumber() ? options.Get("copyRange").As<Napi::Number>().Uint32Value() : kDefaultCopyRange;
    int receiveBuffer =
        options.Get("receiveBuffer").IsNumber() ? options.Get("receiveBuffer").As<Napi::Number>().Int32Value() : kDefaultReceiveBuffer;

    std::string error;
    fd_ = SocketIn(netns, AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER, &error);
    if (fd_ >= 0) names_ = SocketIn(netns, AF_UNIX, SOCK_DGRAM, 0, &error);
    if (fd_ < 0 || names_ < 0 || !Bind(copyRange, receiveBuffer, &error)) {
      Release();
      Napi::Error failure = Napi::Error::New(env, error);
      failure.Set("name", Napi::String::New(env, "NflogError"));
      failure.ThrowAsJavaScriptException();
      return;
    }
    onPackets_ = Napi::Persistent(info[1].As<Napi::Function>());
    context_ = new Napi::AsyncContext(env, "v6agent:nflog");
    buffer_.resize(kBufferSize);
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    uv_poll_init(loop, poll_, fd_);
    poll_->data = this;
    uv_poll_start(poll_, UV_READABLE, OnReadable);
    env_ = env;
  }

  ~Reader() override { Release(); }

 private:
  bool Bind(uint32_t copyRange, int receiveBuffer, std::string* error) {
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof(local)) != 0) {
      *error = std::string("cannot bind the netlink socket: ") + std::strerror(errno);
      return false;
    }
    // SO_RCVBUFFORCE (root) may go beyond rmem_max; fall back to what the limit allows.
    if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &receiveBuffer, sizeof(receiveBuffer)) != 0) {
      setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receiveBuffer, sizeof(receiveBuffer));
    }
    std::vector<char> bind;
    nfulnl_msg_config_cmd command{NFULNL_CFG_CMD_BIND};
    PutAttribute(&bind, NFULA_CFG_CMD, &command, sizeof(command));
    if (!Configure(fd_, group_, 1, bind, error)) return false;
    std::vector<char> mode;
    nfulnl_msg_config_mode copy{htonl(copyRange), NFULNL_COPY_PACKET, 0};
    PutAttribute(&mode, NFULA_CFG_MODE, &copy, sizeof(copy));
    uint32_t threshold = htonl(1);
    PutAttribute(&mode, NFULA_CFG_QTHRESH, &threshold, sizeof(threshold));
    if (!Configure(fd_, group_, 2, mode, error)) return false;
    int flags = fcntl(fd_, F_GETFL);
    fcntl(fd_, F_SETFL, flags | O_NONBLOCK);
    return true;
  }

  static void OnReadable(uv_poll_t* handle, int status, int events) {
    auto* reader = static_cast<Reader*>(handle->data);
    if (reader != nullptr) reader->Drain();
  }

  // Reads what is waiting (at most kMaxBatch datagrams) and hands the packets to JavaScript.
  void Drain() {
    Napi::HandleScope scope(env_);
    Napi::Array packets = Napi::Array::New(env_);
    uint32_t count = 0;
    for (int i = 0; i < kMaxBatch && fd_ >= 0; i++) {
      ssize_t length = recv(fd_, buffer_.data(), buffer_.size(), MSG_DONTWAIT);
      if (length < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {
          dropped_++;  // the kernel dropped copies while the socket was full
          continue;
        }
        break;  // EAGAIN: drained
      }
      for (auto* m = reinterpret_cast<nlmsghdr*>(buffer_.data()); NLMSG_OK(m, static_cast<unsigned>(length)); m = NLMSG_NEXT(m, length)) {
        if (m->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) continue;
        received_++;
        Napi::Value packet = Parse(m);
        if (packet.IsObject()) {
          packets.Set(count++, packet);
        } else {
          malformed_++;
        }
      }
    }
    if (count == 0) return;
    onPackets_.MakeCallback(Value(), {packets}, *context_);
    if (env_.IsExceptionPending()) {
      // The JavaScript side catches its own errors; anything else is a bug to surface loudly.
      napi_fatal_exception(env_, env_.GetAndClearPendingException().Value());
    }
  }

  // One NFULNL_MSG_PACKET as { group, hwProtocol, hook, indev, physindev, indevName, physindevName, hwaddr, prefix, payload }.
  Napi::Value Parse(nlmsghdr* m) {
    if (m->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return env_.Undefined();
    auto* nfgen = static_cast<nfgenmsg*>(NLMSG_DATA(m));
    Napi::Object packet = Napi::Object::New(env_);
    packet.Set("group", Napi::Number::New(env_, ntohs(nfgen->res_id)));
    packet.Set("family", Napi::Number::New(env_, nfgen->nfgen_family));
    bool hasPayload = false;
    char* at = static_cast<char*>(NLMSG_DATA(m)) + NLMSG_ALIGN(sizeof(nfgenmsg));
    int remaining = static_cast<int>(m->nlmsg_len) - NLMSG_LENGTH(sizeof(nfgenmsg));
    while (remaining >= static_cast<int>(NLA_HDRLEN)) {
      auto* attribute = reinterpret_cast<nlattr*>(at);
      if (attribute->nla_len < NLA_HDRLEN || attribute->nla_len > remaining) return env_.Undefined();
      const char* data = at + NLA_HDRLEN;
      size_t length = attribute->nla_len - NLA_HDRLEN;
      switch (attribute->nla_type & NLA_TYPE_MASK) {
        case NFULA_PACKET_HDR:
          if (length >= sizeof(nfulnl_msg_packet_hdr)) {
            nfulnl_msg_packet_hdr header;
            std::memcpy(&header, data, sizeof(header));
            packet.Set("hwProtocol", Napi::Number::New(env_, ntohs(header.hw_protocol)));
            packet.Set("hook", Napi::Number::New(env_, header.hook));
          }
          break;
        case NFULA_IFINDEX_INDEV:
          SetDevice(packet, "indev", "indevName", data, length);
          break;
        case NFULA_IFINDEX_PHYSINDEV:
          SetDevice(packet, "physindev", "physindevName", data, length);
          break;
        case NFULA_HWADDR:
          if (length >= sizeof(nfulnl_msg_packet_hw)) {
            nfulnl_msg_packet_hw hw;
            std::memcpy(&hw, data, sizeof(hw));
            size_t n = ntohs(hw.hw_addrlen);
            if (n > sizeof(hw.hw_addr)) n = sizeof(hw.hw_addr);
            std::string text;
            char byte[4];
            for (size_t i = 0; i < n; i++) {
              std::snprintf(byte, sizeof(byte), i == 0 ? "%02x" : ":%02x", hw.hw_addr[i]);
              text += byte;
            }
            packet.Set("hwaddr", Napi::String::New(env_, text));
          }
          break;
        case NFULA_PREFIX:
          packet.Set("prefix", Napi::String::New(env_, data, strnlen(data, length)));
          break;
        case NFULA_PAYLOAD:
          packet.Set("payload", Napi::Buffer<char>::Copy(env_, data, length));
          hasPayload = true;
          break;
        default:
          break;
      }
      remaining -= NLA_ALIGN(attribute->nla_len);
      at += NLA_ALIGN(attribute->nla_len);
    }
    if (!hasPayload) return env_.Undefined();
    return packet;
  }

  void SetDevice(Napi::Object packet, const char* indexKey, const char* nameKey, const char* data, size_t length) {
    if (length < sizeof(uint32_t)) return;
    uint32_t index;
    std::memcpy(&index, data, sizeof(index));
    index = ntohl(index);
    packet.Set(indexKey, Napi::Number::New(env_, index));
    ifreq request{};
    request.ifr_ifindex = static_cast<int>(index);
    if (ioctl(names_, SIOCGIFNAME, &request) == 0) {
      packet.Set(nameKey, Napi::String::New(env_, request.ifr_name, strnlen(request.ifr_name, IFNAMSIZ)));
    }
  }

  // close(): stops reading and unbinds the group (closing the socket does). Idempotent.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  // stats(): { received, malformed, dropped }
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Object stats = Napi::Object::New(info.Env());
    stats.Set("received", Napi::Number::New(info.Env(), static_cast<double>(received_)));
    stats.Set("malformed", Napi::Number::New(info.Env(), static_cast<double>(malformed_)));
    stats.Set("dropped", Napi::Number::New(info.Env(), static_cast<double>(dropped_)));
    return stats;
  }

  void Release() {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      // The handle's memory must live until libuv is done closing it.
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
      poll_ = nullptr;
    }
    if (fd_ >= 0) {
      // Closing the socket unbinds the group at once (nfnetlink_log drops its instance when the
      // netlink socket is released), so another reader may bind it right after.
      close(fd_);
      fd_ = -1;
    }
    if (names_ >= 0) {
      close(names_);
      names_ = -1;
    }
    if (context_ != nullptr) {
      delete context_;
      context_ = nullptr;
    }
    if (!onPackets_.IsEmpty()) onPackets_.Reset();
  }

  Napi::Env env_{nullptr};
  uint16_t group_ = 0;
  int fd_ = -1;
  int names_ = -1;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference onPackets_;
  Napi::AsyncContext* context_ = nullptr;
  std::vector<char> buffer_;
  uint64_t received_ = 0;
  uint64_t malformed_ = 0;
  uint64_t dropped_ = 0;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NflogReader", Reader::Define(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(v6agent_nflog, Init)
