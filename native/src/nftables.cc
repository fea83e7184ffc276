// v6agent's libnftables binding: runs nft scripts in-process instead of spawning `nft -f -`.
//
// Why: on a busy hypervisor host, starting a process costs more than the nftables work of a
// one-port change (fork+exec of `nft` alone is ~13 ms here), so the per-port latency target
// cannot be met through the binary. The script language, the single atomic transaction per
// call and the error texts are exactly nft's: this is libnftables, the library `nft` is built on.
//
// - Every call runs, in order, on one thread of this addon's own (started on first use, alive
//   for the process) and settles a promise through a thread-safe function. One thread because
//   libnftables keeps process-wide state (its one-time init, the interface cache), so calls must
//   not overlap anyway (separate `nft` processes would be serialised by the kernel's nfnl mutex
//   too); its own because a whole-table transaction takes a while at thousands of ports and must
//   not hold libuv's pool, which the libvirt addon and Node itself use, and because all of
//   libnftables' allocations then come from one malloc arena instead of one per pool thread.
// - One nft_ctx (and so one netlink socket) per network namespace stays open between calls.
//   Closing a socket that committed a transaction waits for the kernel's deferred release of
//   that transaction, one RCU grace period: 8-20 ms on a preemptible kernel with
//   /sys/kernel/rcu_expedited = 0 (a fresh machine), far more than a one-port change itself
//   (~0.3 ms). A kept context pays it once, when it is closed: after kIdleClose without a call
//   (which also frees the cache libnftables keeps of the last listing), when the namespace's
//   file is gone or names another namespace (checked at each call and each idle tick, so a
//   deleted namespace is not kept alive by our socket for long), or on release().
//   libnftables re-reads its cache whenever the ruleset generation moved, so a kept context
//   never works from a stale view.
// - A network namespace is entered only to open a socket: the thread enters it, creates the
//   context (nft_ctx_new opens the socket there) and returns to its own namespace before doing
//   anything else. The socket stays bound to the namespace it was opened in.

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <malloc.h>
#include <napi.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace {

constexpr std::chrono::milliseconds kTick{500};
constexpr std::chrono::seconds kIdleClose{10};

struct Options {
  std::string netns;  // a path like /run/netns/<name>; empty: the process's namespace
  bool json = false;
  bool dryRun = false;
};

struct Outcome {
  int rc = 0;
  std::string output;
  std::string error;
};

// Runs `open` (which opens a socket) with this thread in `netns` (or where it is), and comes
// back: a socket stays bound to the namespace it was opened in.
template <typename T, typename Open>
T* OpenIn(const std::string& netns, std::string* error, Open open) {
  if (netns.empty()) return open();
  int self = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    *error = std::string("cannot open this thread's network namespace: ") + std::strerror(errno);
    return nullptr;
  }
  int target = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    *error = "cannot open network namespace " + netns + ": " + std::strerror(errno);
    close(self);
    return nullptr;
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    *error = "cannot enter network namespace " + netns + ": " + std::strerror(errno);
    close(target);
    close(self);
    return nullptr;
  }
  T* opened = open();
  if (setns(self, CLONE_NEWNET) != 0) {
    // The thread left in another namespace would run later work there: never continue.
    std::fprintf(stderr, "v6agent nftables addon: cannot return to the thread's network namespace: %s\n",
                 std::strerror(errno));
    std::abort();
  }
  close(target);
  close(self);
  return opened;
}

// A context whose netlink socket lives in `netns` (nft_ctx_new opens it), with buffered output.
nft_ctx* NewContext(const std::string& netns, std::string* error) {
  nft_ctx* ctx = OpenIn<nft_ctx>(netns, error, [] { return nft_ctx_new(NFT_CTX_DEFAULT); });
  if (ctx != nullptr) {
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
  }
  return ctx;
}

// A netfilter netlink socket in `netns`, for the generation requests; -1 and `error` on failure.
int NewGenerationSocket(const std::string& netns, std::string* error) {
  int* fd = OpenIn<int>(netns, error, [] {
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    return s < 0 ? nullptr : new int(s);
  });
  if (fd == nullptr) {
    if (error->empty()) *error = std::string("cannot open a netfilter netlink socket: ") + std::strerror(errno);
    return -1;
  }
  int sock = *fd;
  delete fd;
  return sock;
}

// The ruleset generation (NFT_MSG_GETGEN) asked on `sock`: it changes with every committed
// transaction of any table in the socket's namespace, and not with packets (a dynamic set
// growing). Returns -1 and sets `error` on failure.
int64_t RulesetGeneration(int sock, uint32_t sequence, std::string* error) {
  struct {
    nlmsghdr header;
    nfgenmsg nfgen;
  } request{};
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof(nfgenmsg));
  request.header.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
  request.header.nlmsg_flags = NLM_F_REQUEST;
  request.header.nlmsg_seq = sequence;
  request.nfgen.nfgen_family = AF_UNSPEC;
  request.nfgen.version = NFNETLINK_V0;
  alignas(nlmsghdr) char buffer[8192];
  if (send(sock, &request, request.header.nlmsg_len, 0) < 0) {
    *error = std::string("cannot ask for the ruleset generation: ") + std::strerror(errno);
    return -1;
  }
  // A kept socket may hold an answer to an earlier request that failed half-way: skip answers
  // to other sequence numbers.
  for (;;) {
    ssize_t length = recv(sock, buffer, sizeof(buffer), 0);
    auto* reply = reinterpret_cast<nlmsghdr*>(buffer);
    if (length < 0) {
      *error = std::string("no answer with the ruleset generation: ") + std::strerror(errno);
      return -1;
    }
    if (!NLMSG_OK(reply, static_cast<unsigned>(length))) {
      *error = "a truncated answer to the ruleset generation request";
      return -1;
    }
    if (reply->nlmsg_seq != sequence) continue;
    if (reply->nlmsg_type == NLMSG_ERROR) {
      auto* failure = static_cast<nlmsgerr*>(NLMSG_DATA(reply));
      *error = std::string("the ruleset generation request failed: ") + std::strerror(-failure->error);
      return -1;
    }
    // Attributes follow the nfgenmsg header; NFTA_GEN_ID is a big-endian u32.
    auto* attribute = reinterpret_cast<nlattr*>(static_cast<char*>(NLMSG_DATA(reply)) + NLMSG_ALIGN(sizeof(nfgenmsg)));
    int remaining = static_cast<int>(reply->nlmsg_len) - NLMSG_LENGTH(sizeof(nfgenmsg));
    while (remaining >= static_cast<int>(sizeof(nlattr)) && attribute->nla_len >= sizeof(nlattr) && attribute->nla_len <= remaining) {
      if ((attribute->nla_type & NLA_TYPE_MASK) == NFTA_GEN_ID && attribute->nla_len >= NLA_HDRLEN + sizeof(uint32_t)) {
        uint32_t id;
        std::memcpy(&id, reinterpret_cast<char*>(attribute) + NLA_HDRLEN, sizeof(id));
        return ntohl(id);
      }
      remaining -= NLA_ALIGN(attribute->nla_len);
      attribute = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(attribute) + NLA_ALIGN(attribute->nla_len));
    }
    *error = "the answer carries no ruleset generation";
    return -1;
  }
}

// Runs the script as a file, as `nft -f` does: an error then quotes the offending line of a
// multi-line script (from a buffer, libnftables can quote only the first line). The file is an
// anonymous in-memory one (memfd), named in messages as /proc/self/fd/<n>.
int RunFromMemoryFile(nft_ctx* ctx, const std::string& script, std::string* error) {
  int fd = memfd_create("v6agent-nft", MFD_CLOEXEC);
  if (fd < 0) {
    *error = std::string("cannot create an in-memory file for the script: ") + std::strerror(errno);
    return -1;
  }
  size_t written = 0;
  while (written < script.size()) {
    ssize_t n = write(fd, script.data() + written, script.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *error = std::string("cannot write the script to an in-memory file: ") + std::strerror(errno);
      close(fd);
      return -1;
    }
    written += static_cast<size_t>(n);
  }
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  int rc = nft_run_cmd_from_filename(ctx, path.c_str());
  close(fd);
  return rc;
}

Outcome RunScript(nft_ctx* ctx, const std::string& script, const Options& options) {
  Outcome outcome;
  nft_ctx_output_set_flags(ctx, options.json ? NFT_CTX_OUTPUT_JSON : 0);
  nft_ctx_set_dry_run(ctx, options.dryRun);
  outcome.rc = RunFromMemoryFile(ctx, script, &outcome.error);
  // Reading a buffer also rewinds it for the next call on this context.
  const char* out = nft_ctx_get_output_buffer(ctx);
  const char* err = nft_ctx_get_error_buffer(ctx);
  outcome.output = out == nullptr ? "" : out;
  if (err != nullptr && *err != '\0') outcome.error = err;
  return outcome;
}

// The kept sockets of one network namespace.
struct Namespace {
  nft_ctx* ctx = nullptr;
  int generationSocket = -1;
  uint32_t sequence = 0;
  // The namespace file's identity when the sockets were opened ("" = the thread's own).
  dev_t device = 0;
  ino_t inode = 0;
  std::chrono::steady_clock::time_point lastUse;
};

// Identity of a namespace file; false when it is gone.
bool Identify(const std::string& path, dev_t* device, ino_t* inode) {
  struct stat st{};
  if (path.empty()) return true;
  if (stat(path.c_str(), &st) != 0) return false;
  *device = st.st_dev;
  *inode = st.st_ino;
  return true;
}

void Close(Namespace& ns) {
  if (ns.ctx != nullptr) nft_ctx_free(ns.ctx);  // waits for the kernel if it committed (see top)
  if (ns.generationSocket >= 0) close(ns.generationSocket);
  ns.ctx = nullptr;
  ns.generationSocket = -1;
}

// One call: its input, its outcome, and the way back to JavaScript.
struct Job {
  enum class Kind { Script, Generation, Release } kind;
  std::string script;
  Options options;
  Outcome outcome;
  int64_t generation = -1;
  Napi::Promise::Deferred deferred;
  Napi::ThreadSafeFunction done;
};

// Settles a job's promise (on the JavaScript thread).
void Settle(Napi::Env env, Napi::Function, Job* job) {
  if (env != nullptr) {
    if (job->outcome.rc != 0) {
      std::string message = job->outcome.error.empty() ? "nft: the transaction failed" : job->outcome.error;
      Napi::Error error = Napi::Error::New(env, message);
      error.Set("name", Napi::String::New(env, "NftError"));
      error.Set("stderr", Napi::String::New(env, job->outcome.error));
      job->deferred.Reject(error.Value());
    } else if (job->kind == Job::Kind::Generation) {
      job->deferred.Resolve(Napi::Number::New(env, static_cast<double>(job->generation)));
    } else if (job->kind == Job::Kind::Release) {
      job->deferred.Resolve(env.Undefined());
    } else {
      Napi::Object result = Napi::Object::New(env);
      result.Set("output", Napi::String::New(env, job->outcome.output));
      result.Set("error", Napi::String::New(env, job->outcome.error));
      job->deferred.Resolve(result);
    }
  }
  delete job;
}

// The addon's thread: runs queued jobs one after the other, for the life of the process, and
// owns the kept sockets of every namespace (nothing else touches them).
class NftThread {
 public:
  static NftThread& Instance() {
    static NftThread* instance = new NftThread();  // never destroyed: the thread outlives exit paths
    return *instance;
  }

  void Submit(Job* job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(job);
    }
    ready_.notify_one();
  }

  // Namespaces with kept sockets now (read from any thread: tests check that none is kept).
  size_t Kept() const { return kept_.load(); }

 private:
  NftThread() : thread_([this] { Loop(); }) { thread_.detach(); }

  void Loop() {
    bool allocated = false;
    for (;;) {
      Job* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        auto pending = [this] { return !queue_.empty(); };
        if (allocated || !namespaces_.empty()) {
          if (!ready_.wait_for(lock, kTick, pending)) {
            lock.unlock();
            Tidy(allocated);
            allocated = false;
            continue;
          }
        } else {
          ready_.wait(lock, pending);
        }
        job = queue_.front();
        queue_.pop_front();
      }
      allocated = true;
      Execute(job);
      Napi::ThreadSafeFunction done = job->done;
      done.BlockingCall(job, Settle);
      done.Release();
    }
  }

  void Execute(Job* job) {
    if (job->kind == Job::Kind::Release) {
      ReleaseNamespaces(job->options.netns, job->script == "all");
      return;
    }
    Namespace* ns = Open(job->options.netns, &job->outcome.error);
    if (ns == nullptr) {
      job->outcome.rc = -1;
      if (job->outcome.error.empty()) job->outcome.error = "libnftables: cannot create a context";
      return;
    }
    if (job->kind == Job::Kind::Generation) {
      job->generation = RulesetGeneration(ns->generationSocket, ++ns->sequence, &job->outcome.error);
      job->outcome.rc = job->generation < 0 ? -1 : 0;
      // A socket that failed half-way is not trusted with the next request.
      if (job->generation < 0) Forget(job->options.netns);
    } else {
      job->outcome = RunScript(ns->ctx, job->script, job->options);
    }
  }

  // The kept sockets of `path`, opened (again) when missing or when the file now names
  // another namespace; nullptr and `error` when they cannot be opened.
  Namespace* Open(const std::string& path, std::string* error) {
    dev_t device = 0;
    ino_t inode = 0;
    if (!Identify(path, &device, &inode)) {
      Forget(path);
      *error = "cannot open network namespace " + path + ": " + std::strerror(errno);
      return nullptr;
    }
    auto found = namespaces_.find(path);
    if (found != namespaces_.end() && (found->second.device != device || found->second.inode != inode)) {
      Forget(path);
      found = namespaces_.end();
    }
    if (found == namespaces_.end()) {
      Namespace ns;
      ns.device = device;
      ns.inode = inode;
      ns.ctx = NewContext(path, error);
      if (ns.ctx == nullptr) return nullptr;
      ns.generationSocket = NewGenerationSocket(path, error);
      if (ns.generationSocket < 0) {
        Close(ns);
        return nullptr;
      }
      found = namespaces_.emplace(path, ns).first;
      kept_ = namespaces_.size();
    }
    found->second.lastUse = std::chrono::steady_clock::now();
    return &found->second;
  }

  void Forget(const std::string& path) {
    auto found = namespaces_.find(path);
    if (found == namespaces_.end()) return;
    Close(found->second);
    namespaces_.erase(found);
    kept_ = namespaces_.size();
  }

  void ReleaseNamespaces(const std::string& path, bool all) {
    if (!all) {
      Forget(path);
      return;
    }
    while (!namespaces_.empty()) Forget(namespaces_.begin()->first);
  }

  // On an idle tick: closes the sockets of namespaces that are gone, replaced or idle, and,
  // after some calls, gives back what they allocated on this thread's malloc arena (a large
  // listing takes megabytes) rather than keep it as RSS. Not after every call: malloc_trim
  // walks every arena of the process and would slow a burst of changes down (2-12 ms each).
  void Tidy(bool allocated) {
    auto now = std::chrono::steady_clock::now();
    for (auto it = namespaces_.begin(); it != namespaces_.end();) {
      dev_t device = 0;
      ino_t inode = 0;
      bool same = Identify(it->first, &device, &inode) && (it->first.empty() || (device == it->second.device && inode == it->second.inode));
      if (!same || now - it->second.lastUse >= kIdleClose) {
        Close(it->second);
        it = namespaces_.erase(it);
        allocated = true;
      } else {
        ++it;
      }
    }
    kept_ = namespaces_.size();
    if (allocated) malloc_trim(0);
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Job*> queue_;
  std::map<std::string, Namespace> namespaces_;  // by namespace path; only this thread touches it
  std::atomic<size_t> kept_{0};
  std::thread thread_;
};

// Queues a job on the addon's thread; its promise settles on the JavaScript thread.
Napi::Promise Submit(Napi::Env env, Job* job) {
  // Keeps the event loop alive until the job is settled, like any pending I/O.
  job->done = Napi::ThreadSafeFunction::New(env, Napi::Function(), "v6agent:nftables", 0, 1);
  Napi::Promise promise = job->deferred.Promise();
  NftThread::Instance().Submit(job);
  return promise;
}

// The options object of a call: { netns?: string; json?: boolean; dryRun?: boolean }.
Options ReadOptions(const Napi::Value& value) {
  Options options;
  if (!value.IsObject()) return options;
  Napi::Object o = value.As<Napi::Object>();
  if (o.Has("netns") && o.Get("netns").IsString()) options.netns = o.Get("netns").As<Napi::String>().Utf8Value();
  if (o.Has("json")) options.json = o.Get("json").ToBoolean().Value();
  if (o.Has("dryRun")) options.dryRun = o.Get("dryRun").ToBoolean().Value();
  return options;
}

// run(script: string, options?: { netns?: string; json?: boolean; dryRun?: boolean }): Promise<{output, error}>
Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "run(script, options?): script must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Options options = ReadOptions(info[1]);
  return Submit(env, new Job{Job::Kind::Script, info[0].As<Napi::String>().Utf8Value(), std::move(options), Outcome{}, -1,
                             Napi::Promise::Deferred::New(env), {}});
}

// generation(options?: { netns?: string }): Promise<number>
Napi::Value Generation(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Options options = ReadOptions(info[0]);
  return Submit(env, new Job{Job::Kind::Generation, "", std::move(options), Outcome{}, -1, Napi::Promise::Deferred::New(env), {}});
}

// release(options?: { netns?: string }): Promise<void>. Closes the kept sockets of that
// namespace, or of every namespace when called without options.
Napi::Value Release(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Options options = ReadOptions(info[0]);
  std::string scope = info.Length() < 1 || !info[0].IsObject() ? "all" : "";
  return Submit(env, new Job{Job::Kind::Release, scope, std::move(options), Outcome{}, -1, Napi::Promise::Deferred::New(env), {}});
}

// keptNamespaces(): number of namespaces whose sockets are kept open now.
Napi::Value KeptNamespaces(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(NftThread::Instance().Kept()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("run", Napi::Function::New(env, Run, "run"));
  exports.Set("generation", Napi::Function::New(env, Generation, "generation"));
  exports.Set("release", Napi::Function::New(env, Release, "release"));
  exports.Set("keptNamespaces", Napi::Function::New(env, KeptNamespaces, "keptNamespaces"));
  return exports;
}

}  // namespace

NODE_API_MODULE(v6agent_nftables, Init)
