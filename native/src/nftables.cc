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
//   too); its own because a whole-table transaction takes ~0.5 s at 1,000 ports and must not
//   hold libuv's pool, which the libvirt addon and Node itself use, and because all of
//   libnftables' allocations then come from one malloc arena instead of one per pool thread
//   (measured: ~10 MB less RSS at 1,000 ports).
// - Each call gets a fresh nft_ctx, freed at the end: no cache (it can hold the whole table)
//   outlives a call, and nothing stale is ever reused.
// - A network namespace is entered only to open the context's netlink socket: the thread
//   enters it, creates the context (nft_ctx_new opens the socket there) and returns to its own
//   namespace before doing anything else. The socket stays bound to the namespace it was opened
//   in.

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <malloc.h>
#include <napi.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace {

constexpr std::chrono::milliseconds kTrimAfterIdle{500};

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

// A context whose netlink socket lives in `netns` (nft_ctx_new opens it).
nft_ctx* NewContext(const std::string& netns, std::string* error) {
  return OpenIn<nft_ctx>(netns, error, [] { return nft_ctx_new(NFT_CTX_DEFAULT); });
}

// The ruleset generation of `netns` (NFT_MSG_GETGEN): it changes with every committed
// transaction of any table there, and not with packets (a dynamic set growing). Returns -1 and
// sets `error` on failure.
int64_t RulesetGeneration(const std::string& netns, std::string* error) {
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
  struct {
    nlmsghdr header;
    nfgenmsg nfgen;
  } request{};
  request.header.nlmsg_len = NLMSG_LENGTH(sizeof(nfgenmsg));
  request.header.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
  request.header.nlmsg_flags = NLM_F_REQUEST;
  request.header.nlmsg_seq = 1;
  request.nfgen.nfgen_family = AF_UNSPEC;
  request.nfgen.version = NFNETLINK_V0;
  int64_t generation = -1;
  alignas(nlmsghdr) char buffer[8192];
  if (send(sock, &request, request.header.nlmsg_len, 0) < 0) {
    *error = std::string("cannot ask for the ruleset generation: ") + std::strerror(errno);
  } else {
    ssize_t length = recv(sock, buffer, sizeof(buffer), 0);
    auto* reply = reinterpret_cast<nlmsghdr*>(buffer);
    if (length < 0) {
      *error = std::string("no answer with the ruleset generation: ") + std::strerror(errno);
    } else if (!NLMSG_OK(reply, static_cast<unsigned>(length))) {
      *error = "a truncated answer to the ruleset generation request";
    } else if (reply->nlmsg_type == NLMSG_ERROR) {
      auto* failure = static_cast<nlmsgerr*>(NLMSG_DATA(reply));
      *error = std::string("the ruleset generation request failed: ") + std::strerror(-failure->error);
    } else {
      // Attributes follow the nfgenmsg header; NFTA_GEN_ID is a big-endian u32.
      auto* attribute = reinterpret_cast<nlattr*>(static_cast<char*>(NLMSG_DATA(reply)) + NLMSG_ALIGN(sizeof(nfgenmsg)));
      int remaining = static_cast<int>(reply->nlmsg_len) - NLMSG_LENGTH(sizeof(nfgenmsg));
      while (remaining >= static_cast<int>(sizeof(nlattr)) && attribute->nla_len >= sizeof(nlattr) &&
             attribute->nla_len <= remaining) {
        if ((attribute->nla_type & NLA_TYPE_MASK) == NFTA_GEN_ID && attribute->nla_len >= NLA_HDRLEN + sizeof(uint32_t)) {
          uint32_t id;
          std::memcpy(&id, reinterpret_cast<char*>(attribute) + NLA_HDRLEN, sizeof(id));
          generation = ntohl(id);
          break;
        }
        remaining -= NLA_ALIGN(attribute->nla_len);
        attribute = reinterpret_cast<nlattr*>(reinterpret_cast<char*>(attribute) + NLA_ALIGN(attribute->nla_len));
      }
      if (generation < 0) *error = "the answer carries no ruleset generation";
    }
  }
  close(sock);
  return generation;
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

Outcome RunScript(const std::string& script, const Options& options) {
  Outcome outcome;
  nft_ctx* ctx = NewContext(options.netns, &outcome.error);
  if (ctx == nullptr) {
    outcome.rc = -1;
    if (outcome.error.empty()) outcome.error = "libnftables: cannot create a context";
    return outcome;
  }
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  if (options.json) nft_ctx_output_set_flags(ctx, nft_ctx_output_get_flags(ctx) | NFT_CTX_OUTPUT_JSON);
  nft_ctx_set_dry_run(ctx, options.dryRun);
  outcome.rc = RunFromMemoryFile(ctx, script, &outcome.error);
  const char* out = nft_ctx_get_output_buffer(ctx);
  const char* err = nft_ctx_get_error_buffer(ctx);
  outcome.output = out == nullptr ? "" : out;
  if (err != nullptr && *err != '\0') outcome.error = err;
  nft_ctx_free(ctx);
  return outcome;
}

// One call: its input, its outcome, and the way back to JavaScript.
struct Job {
  enum class Kind { Script, Generation } kind;
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
    } else {
      Napi::Object result = Napi::Object::New(env);
      result.Set("output", Napi::String::New(env, job->outcome.output));
      result.Set("error", Napi::String::New(env, job->outcome.error));
      job->deferred.Resolve(result);
    }
  }
  delete job;
}

// The addon's thread: runs queued jobs one after the other, for the life of the process.
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

 private:
  NftThread() : thread_([this] { Loop(); }) { thread_.detach(); }

  void Loop() {
    bool allocated = false;
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        auto pending = [this] { return !queue_.empty(); };
        if (allocated && !ready_.wait_for(lock, kTrimAfterIdle, pending)) {
          // Idle for a while after some calls: give back what they allocated on this thread's
          // malloc arena (a whole-table listing takes tens of MB, a one-port change at 1,000
          // ports a few) rather than keep it as RSS. Not after every call: malloc_trim walks
          // every arena of the process and would slow a burst of changes down (2-12 ms each).
          lock.unlock();
          malloc_trim(0);
          allocated = false;
          continue;
        }
        ready_.wait(lock, pending);
        job = queue_.front();
        queue_.pop_front();
      }
      allocated = true;
      if (job->kind == Job::Kind::Generation) {
        job->generation = RulesetGeneration(job->options.netns, &job->outcome.error);
        job->outcome.rc = job->generation < 0 ? -1 : 0;
      } else {
        job->outcome = RunScript(job->script, job->options);
      }
      Napi::ThreadSafeFunction done = job->done;
      done.BlockingCall(job, Settle);
      done.Release();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Job*> queue_;
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("run", Napi::Function::New(env, Run, "run"));
  exports.Set("generation", Napi::Function::New(env, Generation, "generation"));
  return exports;
}

}  // namespace

NODE_API_MODULE(v6agent_nftables, Init)
