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

#include <fcntl.h>
#include <malloc.h>
#include <napi.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace {

constexpr size_t kTrimThreshold = 256 * 1024;

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

// Creates a context whose netlink socket lives in `netns` (or the current namespace).
nft_ctx* NewContext(const std::string& netns, std::string* error) {
  if (netns.empty()) return nft_ctx_new(NFT_CTX_DEFAULT);
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    *error = std::string("cannot open this thread's network namespace: ") + std::strerror(errno);
    return nullptr;
  }
  int target = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
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
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (setns(self, CLONE_NEWNET) != 0) {
    // A pool thread left in another namespace would run later work there: never continue.
    std::fprintf(stderr, "v6agent nftables addon: cannot return to the thread's network namespace: %s\n",
                 std::strerror(errno));
    std::abort();
  }
  close(target);
  close(self);
  return ctx;
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
  // A whole-table transaction or listing allocates tens of MB (parse trees, the cache, the
  // output) on this thread's malloc arena; give it back rather than keep it as RSS.
  if (script.size() + outcome.output.size() > kTrimThreshold) malloc_trim(0);
  return outcome;
}

// One call: its input, its outcome, and the way back to JavaScript.
struct Job {
  std::string script;
  Options options;
  Outcome outcome;
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
    for (;;) {
      Job* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return !queue_.empty(); });
        job = queue_.front();
        queue_.pop_front();
      }
      job->outcome = RunScript(job->script, job->options);
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

// run(script: string, options?: { netns?: string; json?: boolean; dryRun?: boolean }): Promise<{output, error}>
Napi::Value Run(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "run(script, options?): script must be a string").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Options options;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Object o = info[1].As<Napi::Object>();
    if (o.Has("netns") && o.Get("netns").IsString()) options.netns = o.Get("netns").As<Napi::String>().Utf8Value();
    if (o.Has("json")) options.json = o.Get("json").ToBoolean().Value();
    if (o.Has("dryRun")) options.dryRun = o.Get("dryRun").ToBoolean().Value();
  }
  auto* job = new Job{info[0].As<Napi::String>().Utf8Value(), std::move(options), Outcome{}, Napi::Promise::Deferred::New(env), {}};
  // Keeps the event loop alive until the job is settled, like any pending I/O.
  job->done = Napi::ThreadSafeFunction::New(env, Napi::Function(), "v6agent:nftables", 0, 1);
  Napi::Promise promise = job->deferred.Promise();
  NftThread::Instance().Submit(job);
  return promise;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("run", Napi::Function::New(env, Run, "run"));
  return exports;
}

}  // namespace

NODE_API_MODULE(v6agent_nftables, Init)
