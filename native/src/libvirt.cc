// v6agent's libvirt binding (design sections 5 and 7): a small native core, all logic in TypeScript.
//
// - Every call that may block (it can be an RPC to libvirtd) runs on libuv's thread pool through
//   a Napi::AsyncWorker and settles a promise; the JavaScript thread never waits on libvirt.
// - Domains are addressed by UUID: each call looks the domain up, acts and frees the handle on
//   the worker thread, so no virDomainPtr ever outlives a call (no handle leaks to chase).
// - Events use libvirt's default event loop, run forever on one dedicated thread started at
//   module load (it must be registered before any connection is opened), and reach JavaScript
//   through one Napi::ThreadSafeFunction per connection.
// - libvirt errors become JS errors carrying libvirt's numeric `code` and `domain`.

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <napi.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------
// Errors

struct LibvirtError {
  int code = VIR_ERR_INTERNAL_ERROR;
  int domain = VIR_FROM_NONE;
  std::string message;
};

// Must be called right after the failing call: every public libvirt entry point (even
// virDomainFree) resets the thread's last error.
LibvirtError CaptureError(const char* fallback) {
  LibvirtError error;
  virErrorPtr last = virGetLastError();
  if (last != nullptr) {
    error.code = last->code;
    error.domain = last->domain;
    error.message = last->message != nullptr ? last->message : fallback;
  } else {
    error.message = fallback;
  }
  virResetLastError();
  return error;
}

Napi::Value MakeError(Napi::Env env, const LibvirtError& error) {
  Napi::Error js = Napi::Error::New(env, error.message);
  js.Set("name", Napi::String::New(env, "LibvirtError"));
  js.Set("code", Napi::Number::New(env, error.code));
  js.Set("domain", Napi::Number::New(env, error.domain));
  return js.Value();
}

// libvirt prints every error to stderr by default; we report them as JS errors instead.
void SilentErrorHandler(void*, virErrorPtr) {}

// ---------------------------------------------------------------------------------------------
// Event loop: one thread for the life of the process.

std::once_flag event_loop_once;

void StartEventLoop() {
  std::call_once(event_loop_once, [] {
    virEventRegisterDefaultImpl();
    std::thread([] {
      for (;;) {
        if (virEventRunDefaultImpl() < 0) {
          virResetLastError();
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
    }).detach();
  });
}

// ---------------------------------------------------------------------------------------------
// Events

struct EventData {
  std::string kind;  // lifecycle | device-added | device-removed | closed
  std::string uuid;
  std::string name;
  int event = 0;
  int detail = 0;
  std::string alias;
  int reason = 0;
};

void DeliverEvent(Napi::Env env, Napi::Function listener, EventData* data) {
  if (env != nullptr && listener != nullptr) {
    Napi::Object event = Napi::Object::New(env);
    event.Set("kind", data->kind);
    if (data->kind == "closed") {
      event.Set("reason", data->reason);
    } else {
      event.Set("uuid", data->uuid);
      event.Set("name", data->name);
      if (data->kind == "lifecycle") {
        event.Set("event", data->event);
        event.Set("detail", data->detail);
      } else {
        event.Set("alias", data->alias);
      }
    }
    listener.Call({event});
  }
  delete data;
}

// One per connection. The thread-safe function's thread count is 1 for the connection itself
// plus 1 for every libvirt registration still holding `this` as its opaque pointer; libvirt's
// free callbacks release theirs, so the sink is freed only after libvirt is done with it.
std::atomic<int64_t> live_sinks{0};

struct EventSink {
  Napi::ThreadSafeFunction tsfn;

  EventSink() { live_sinks++; }
  ~EventSink() { live_sinks--; }

  void Post(EventData* data) {
    if (tsfn.NonBlockingCall(data, DeliverEvent) != napi_ok) delete data;
  }
};

void ReleaseSink(void* opaque) { static_cast<EventSink*>(opaque)->tsfn.Release(); }

void FillDomain(EventData* data, virDomainPtr dom) {
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (virDomainGetUUIDString(dom, uuid) == 0) data->uuid = uuid;
  const char* name = virDomainGetName(dom);
  if (name != nullptr) data->name = name;
}

int OnLifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) {
  auto* data = new EventData();
  data->kind = "lifecycle";
  FillDomain(data, dom);
  data->event = event;
  data->detail = detail;
  static_cast<EventSink*>(opaque)->Post(data);
  return 0;
}

void OnDevice(const char* kind, virDomainPtr dom, const char* alias, void* opaque) {
  auto* data = new EventData();
  data->kind = kind;
  FillDomain(data, dom);
  if (alias != nullptr) data->alias = alias;
  static_cast<EventSink*>(opaque)->Post(data);
}

void OnDeviceAdded(virConnectPtr, virDomainPtr dom, const char* alias, void* opaque) {
  OnDevice("device-added", dom, alias, opaque);
}

void OnDeviceRemoved(virConnectPtr, virDomainPtr dom, const char* alias, void* opaque) {
  OnDevice("device-removed", dom, alias, opaque);
}

void OnClosed(virConnectPtr, int reason, void* opaque) {
  auto* data = new EventData();
  data->kind = "closed";
  data->reason = reason;
  static_cast<EventSink*>(opaque)->Post(data);
}

// ---------------------------------------------------------------------------------------------
// Domain summaries

struct DomainSummary {
  std::string name;
  std::string uuid;
  int id = -1;
  int state = VIR_DOMAIN_NOSTATE;
  int reason = 0;
};

bool Summarize(virDomainPtr dom, DomainSummary& out) {
  const char* name = virDomainGetName(dom);
  char uuid[VIR_UUID_STRING_BUFLEN];
  if (name == nullptr || virDomainGetUUIDString(dom, uuid) < 0) return false;
  out.name = name;
  out.uuid = uuid;
  unsigned int id = virDomainGetID(dom);
  out.id = id == static_cast<unsigned int>(-1) ? -1 : static_cast<int>(id);
  if (virDomainGetState(dom, &out.state, &out.reason, 0) < 0) return false;
  return true;
}

Napi::Object SummaryToJs(Napi::Env env, const DomainSummary& summary) {
  Napi::Object object = Napi::Object::New(env);
  object.Set("name", summary.name);
  object.Set("uuid", summary.uuid);
  object.Set("id", summary.id);
  object.Set("state", summary.state);
  object.Set("reason", summary.reason);
  return object;
}

// ---------------------------------------------------------------------------------------------
// Workers

class Worker : public Napi::AsyncWorker {
 public:
  Worker(Napi::Env env, virConnectPtr conn)
      : Napi::AsyncWorker(env, "v6agent:libvirt"), deferred_(Napi::Promise::Deferred::New(env)), conn_(conn) {
    // Our own reference: a close() issued while this call is queued cannot free the connection.
    if (conn_ != nullptr) virConnectRef(conn_);
  }

  Napi::Promise Queue() {
    Napi::Promise promise = deferred_.Promise();
    Napi::AsyncWorker::Queue();
    return promise;
  }

 protected:
  virtual bool Run() = 0;
  virtual Napi::Value Result(Napi::Env env) { return env.Undefined(); }

  bool Fail(const char* fallback) {
    error_ = CaptureError(fallback);
    return false;
  }

  void Execute() override {
    ok_ = Run();
    if (conn_ != nullptr) {
      virConnectClose(conn_);  // drops the reference taken in the constructor
      conn_ = nullptr;
    }
  }

  void OnOK() override {
    Napi::HandleScope scope(Env());
    if (ok_) {
      deferred_.Resolve(Result(Env()));
    } else {
      deferred_.Reject(MakeError(Env(), error_));
    }
  }

  Napi::Promise::Deferred deferred_;
  virConnectPtr conn_;
  LibvirtError error_;
  bool ok_ = false;
};

class HostWorker : public Worker {
 public:
  HostWorker(Napi::Env env, virConnectPtr conn) : Worker(env, conn) {}

 protected:
  bool Run() override {
    char* hostname = virConnectGetHostname(conn_);
    if (hostname == nullptr) return Fail("virConnectGetHostname failed");
    hostname_ = hostname;
    free(hostname);
    const char* type = virConnectGetType(conn_);
    if (type == nullptr) return Fail("virConnectGetType failed");
    type_ = type;
    if (virConnectGetVersion(conn_, &hypervisor_) < 0) return Fail("virConnectGetVersion failed");
    if (virConnectGetLibVersion(conn_, &library_) < 0) return Fail("virConnectGetLibVersion failed");
    char* uri = virConnectGetURI(conn_);
    if (uri == nullptr) return Fail("virConnectGetURI failed");
    uri_ = uri;
    free(uri);
    return true;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object object = Napi::Object::New(env);
    object.Set("hostname", hostname_);
    object.Set("type", type_);
    object.Set("uri", uri_);
    object.Set("hypervisorVersion", static_cast<double>(hypervisor_));
    object.Set("libraryVersion", static_cast<double>(library_));
    return object;
  }

 private:
  std::string hostname_, type_, uri_;
  unsigned long hypervisor_ = 0, library_ = 0;
};

class ListWorker : public Worker {
 public:
  ListWorker(Napi::Env env, virConnectPtr conn) : Worker(env, conn) {}

 protected:
  bool Run() override {
    virDomainPtr* domains = nullptr;
    int count = virConnectListAllDomains(conn_, &domains, 0);
    if (count < 0) return Fail("virConnectListAllDomains failed");
    bool ok = true;
    for (int i = 0; i < count; i++) {
      DomainSummary summary;
      // A domain undefined between the listing and this call is simply left out.
      if (Summarize(domains[i], summary)) summaries_.push_back(summary);
      virResetLastError();
      virDomainFree(domains[i]);
    }
    free(domains);
    return ok;
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Array array = Napi::Array::New(env, summaries_.size());
    for (size_t i = 0; i < summaries_.size(); i++) array.Set(static_cast<uint32_t>(i), SummaryToJs(env, summaries_[i]));
    return array;
  }

 private:
  std::vector<DomainSummary> summaries_;
};

class DefineWorker : public Worker {
 public:
  DefineWorker(Napi::Env env, virConnectPtr conn, std::string xml) : Worker(env, conn), xml_(std::move(xml)) {}

 protected:
  bool Run() override {
    virDomainPtr dom = virDomainDefineXML(conn_, xml_.c_str());
    if (dom == nullptr) return Fail("virDomainDefineXML failed");
    bool ok = Summarize(dom, summary_);
    if (!ok) Fail("reading the defined domain failed");
    virDomainFree(dom);
    return ok;
  }

  Napi::Value Result(Napi::Env env) override { return SummaryToJs(env, summary_); }

 private:
  std::string xml_;
  DomainSummary summary_;
};

enum class DomainOp { Info, Xml, Create, Destroy, Shutdown, Undefine, Attach, Detach };

class DomainWorker : public Worker {
 public:
  DomainWorker(Napi::Env env, virConnectPtr conn, DomainOp op, std::string uuid, std::string xml, unsigned int flags)
      : Worker(env, conn), op_(op), uuid_(std::move(uuid)), xml_(std::move(xml)), flags_(flags) {}

 protected:
  bool Run() override {
    virDomainPtr dom = virDomainLookupByUUIDString(conn_, uuid_.c_str());
    if (dom == nullptr) return Fail("virDomainLookupByUUIDString failed");
    int rc = 0;
    switch (op_) {
      case DomainOp::Info:
        rc = Summarize(dom, summary_) ? 0 : -1;
        break;
      case DomainOp::Xml: {
        char* xml = virDomainGetXMLDesc(dom, flags_);
        if (xml == nullptr) {
          rc = -1;
        } else {
          text_ = xml;
          free(xml);
        }
        break;
      }
      case DomainOp::Create:
        rc = virDomainCreate(dom);
        break;
      case DomainOp::Destroy:
        rc = virDomainDestroy(dom);
        break;
      case DomainOp::Shutdown:
        rc = virDomainShutdown(dom);
        break;
      case DomainOp::Undefine:
        rc = virDomainUndefineFlags(dom, flags_);
        break;
      case DomainOp::Attach:
        rc = virDomainAttachDeviceFlags(dom, xml_.c_str(), flags_);
        break;
      case DomainOp::Detach:
        rc = virDomainDetachDeviceFlags(dom, xml_.c_str(), flags_);
        break;
    }
    bool ok = rc >= 0;
    if (!ok) Fail("libvirt domain call failed");
    virDomainFree(dom);
    return ok;
  }

  Napi::Value Result(Napi::Env env) override {
    if (op_ == DomainOp::Info) return SummaryToJs(env, summary_);
    if (op_ == DomainOp::Xml) return Napi::String::New(env, text_);
    return env.Undefined();
  }

 private:
  DomainOp op_;
  std::string uuid_, xml_, text_;
  unsigned int flags_;
  DomainSummary summary_;
};

// ---------------------------------------------------------------------------------------------
// Connection

struct Registrations {
  std::vector<int> callback_ids;
  bool close_callback = false;
};

class CloseWorker : public Worker {
 public:
  // Takes over the connection's own reference (not a new one) and drops it.
  CloseWorker(Napi::Env env, virConnectPtr conn, EventSink* sink, Registrations registrations)
      : Worker(env, nullptr), owned_(conn), sink_(sink), registrations_(std::move(registrations)) {}

 protected:
  bool Run() override {
    for (int id : registrations_.callback_ids) virConnectDomainEventDeregisterAny(owned_, id);
    if (registrations_.close_callback) virConnectUnregisterCloseCallback(owned_, OnClosed);
    virResetLastError();
    if (virConnectClose(owned_) < 0) return Fail("virConnectClose failed");
    return true;
  }

  void OnOK() override {
    // The connection's own share of the sink and the close callback's; domain event
    // registrations release theirs through libvirt's free callbacks.
    if (sink_ != nullptr) {
      if (registrations_.close_callback) sink_->tsfn.Release();
      sink_->tsfn.Release();
    }
    Worker::OnOK();
  }

 private:
  virConnectPtr owned_;
  EventSink* sink_;
  Registrations registrations_;
};

class Connection : public Napi::ObjectWrap<Connection> {
 public:
  static Napi::FunctionReference* constructor;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Connection",
                       {
                           InstanceMethod<&Connection::Close>("close"),
                           InstanceMethod<&Connection::IsAlive>("isAlive"),
                           InstanceMethod<&Connection::Host>("host"),
                           InstanceMethod<&Connection::ListDomains>("listDomains"),
                           InstanceMethod<&Connection::LookupDomain>("lookupDomain"),
                           InstanceMethod<&Connection::DomainXml>("domainXml"),
                           InstanceMethod<&Connection::DefineDomain>("defineDomain"),
                           InstanceMethod<&Connection::CreateDomain>("createDomain"),
                           InstanceMethod<&Connection::DestroyDomain>("destroyDomain"),
                           InstanceMethod<&Connection::ShutdownDomain>("shutdownDomain"),
                           InstanceMethod<&Connection::UndefineDomain>("undefineDomain"),
                           InstanceMethod<&Connection::AttachDevice>("attachDevice"),
                           InstanceMethod<&Connection::DetachDevice>("detachDevice"),
                       });
  }

  // Only `open()` constructs connections: it passes the opened handle as externals.
  explicit Connection(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Connection>(info) {
    if (info.Length() != 3 || !info[0].IsExternal() || !info[1].IsExternal() || !info[2].IsExternal()) {
      Napi::TypeError::New(info.Env(), "Connection cannot be constructed directly; use open(uri, listener)")
          .ThrowAsJavaScriptException();
      return;
    }
    conn_ = info[0].As<Napi::External<virConnect>>().Data();
    sink_ = info[1].As<Napi::External<EventSink>>().Data();
    auto* registrations = info[2].As<Napi::External<Registrations>>().Data();
    registrations_ = *registrations;
    delete registrations;
  }

  ~Connection() override {
    // Garbage-collected without close(): free what we can without blocking for long.
    if (conn_ != nullptr) {
      for (int id : registrations_.callback_ids) virConnectDomainEventDeregisterAny(conn_, id);
      if (registrations_.close_callback) virConnectUnregisterCloseCallback(conn_, OnClosed);
      virConnectClose(conn_);
      conn_ = nullptr;
      if (sink_ != nullptr) {
        if (registrations_.close_callback) sink_->tsfn.Release();
        sink_->tsfn.Release();
      }
    }
  }

 private:
  virConnectPtr conn_ = nullptr;
  EventSink* sink_ = nullptr;
  Registrations registrations_;

  bool Check(const Napi::CallbackInfo& info) {
    if (conn_ == nullptr) {
      LibvirtError error;
      error.code = VIR_ERR_INVALID_CONN;
      error.message = "the libvirt connection is closed";
      Napi::Error(info.Env(), MakeError(info.Env(), error)).ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }

  static bool StringArg(const Napi::CallbackInfo& info, size_t index, const char* what, std::string& out) {
    if (info.Length() <= index || !info[index].IsString()) {
      Napi::TypeError::New(info.Env(), std::string(what) + " must be a string").ThrowAsJavaScriptException();
      return false;
    }
    out = info[index].As<Napi::String>().Utf8Value();
    return true;
  }

  static bool FlagsArg(const Napi::CallbackInfo& info, size_t index, unsigned int& out) {
    out = 0;
    if (info.Length() <= index || info[index].IsUndefined()) return true;
    if (!info[index].IsNumber()) {
      Napi::TypeError::New(info.Env(), "flags must be a number").ThrowAsJavaScriptException();
      return false;
    }
    out = info[index].As<Napi::Number>().Uint32Value();
    return true;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (conn_ == nullptr) {
      auto deferred = Napi::Promise::Deferred::New(info.Env());
      deferred.Resolve(info.Env().Undefined());
      return deferred.Promise();
    }
    virConnectPtr conn = conn_;
    EventSink* sink = sink_;
    conn_ = nullptr;
    sink_ = nullptr;
    return (new CloseWorker(info.Env(), conn, sink, registrations_))->Queue();
  }

  Napi::Value IsAlive(const Napi::CallbackInfo& info) {
    // virConnectIsAlive only reads the client's state; it does not talk to the daemon.
    if (conn_ == nullptr) return Napi::Boolean::New(info.Env(), false);
    int alive = virConnectIsAlive(conn_);
    virResetLastError();
    return Napi::Boolean::New(info.Env(), alive == 1);
  }

  Napi::Value Host(const Napi::CallbackInfo& info) {
    if (!Check(info)) return info.Env().Undefined();
    return (new HostWorker(info.Env(), conn_))->Queue();
  }

  Napi::Value ListDomains(const Napi::CallbackInfo& info) {
    if (!Check(info)) return info.Env().Undefined();
    return (new ListWorker(info.Env(), conn_))->Queue();
  }

  Napi::Value DefineDomain(const Napi::CallbackInfo& info) {
    std::string xml;
    if (!Check(info) || !StringArg(info, 0, "xml", xml)) return info.Env().Undefined();
    return (new DefineWorker(info.Env(), conn_, xml))->Queue();
  }

  Napi::Value DomainCall(const Napi::CallbackInfo& info, DomainOp op, bool takes_xml, bool takes_flags) {
    std::string uuid, xml;
    unsigned int flags = 0;
    if (!Check(info) || !StringArg(info, 0, "uuid", uuid)) return info.Env().Undefined();
    size_t next = 1;
    if (takes_xml && !StringArg(info, next++, "xml", xml)) return info.Env().Undefined();
    if (takes_flags && !FlagsArg(info, next, flags)) return info.Env().Undefined();
    return (new DomainWorker(info.Env(), conn_, op, uuid, xml, flags))->Queue();
  }

  Napi::Value LookupDomain(const Napi::CallbackInfo& info) { return DomainCall(info, DomainOp::Info, false, false); }
  Napi::Value DomainXml(const Napi::CallbackInfo& info) { return DomainCall(info, DomainOp::Xml, false, true); }
  Napi::Value CreateDomain(const Napi::CallbackInfo& info) { return DomainCall(info, DomainOp::Create, false, false); }
  Napi::Value DestroyDomain(const Napi::CallbackInfo& info) { return DomainCall(info, DomainOp::Destroy, false, false); }
  Napi::Value ShutdownDomain(const Napi::CallbackInfo& info) { return DomainCall(info, DomainOp::Shutdown, false, false); }
  Napi::Value UndefineDomain(const Napi::CallbackInfo& info) { return DomainCall(info, DomainOp::Undefine, false, true); }
  Napi::Value AttachDevice(const Napi::CallbackInfo& info) { return DomainCall(info, DomainOp::Attach, true, true); }
  Napi::Value DetachDevice(const Napi::CallbackInfo& info) { return DomainCall(info, DomainOp::Detach, true, true); }
};

Napi::FunctionReference* Connection::constructor = nullptr;

class OpenWorker : public Worker {
 public:
  OpenWorker(Napi::Env env, std::string uri, Napi::Function listener) : Worker(env, nullptr), uri_(std::move(uri)) {
    sink_ = new EventSink();
    sink_->tsfn = Napi::ThreadSafeFunction::New(env, listener, "v6agent:libvirt-events", 0, 1, sink_,
                                                [](Napi::Env, EventSink* sink) { delete sink; });
    // Events alone must not keep the process alive; an open connection the user forgot is theirs.
    sink_->tsfn.Unref(env);
  }

 protected:
  bool Register(int event_id, virConnectDomainEventGenericCallback callback) {
    sink_->tsfn.Acquire();
    int id = virConnectDomainEventRegisterAny(conn_opened_, nullptr, event_id, callback, sink_, ReleaseSink);
    if (id < 0) {
      sink_->tsfn.Release();
      return false;
    }
    registrations_.callback_ids.push_back(id);
    return true;
  }

  bool Run() override {
    conn_opened_ = virConnectOpen(uri_.c_str());
    if (conn_opened_ == nullptr) return Fail("virConnectOpen failed");
    // Keepalive (5 s, 3 misses) notices a dead daemon even when no call is in flight. Drivers
    // without a daemon (test:///) do not support it, which is fine.
    virConnectSetKeepAlive(conn_opened_, 5, 3);
    virResetLastError();
    bool ok = Register(VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle)) &&
              Register(VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, VIR_DOMAIN_EVENT_CALLBACK(OnDeviceAdded)) &&
              Register(VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, VIR_DOMAIN_EVENT_CALLBACK(OnDeviceRemoved));
    if (!ok) {
      Fail("registering domain events failed");
      Cleanup();
      return false;
    }
    // No free callback here: drivers without a daemon (test:///) accept the registration but
    // keep nothing and never free it. The close path releases this share itself, after
    // unregistering, which waits for a running callback (both hold libvirt's callback lock).
    sink_->tsfn.Acquire();
    if (virConnectRegisterCloseCallback(conn_opened_, OnClosed, sink_, nullptr) < 0) {
      sink_->tsfn.Release();
      virResetLastError();
    } else {
      registrations_.close_callback = true;
    }
    return true;
  }

  void Cleanup() {
    for (int id : registrations_.callback_ids) virConnectDomainEventDeregisterAny(conn_opened_, id);
    virConnectClose(conn_opened_);
    conn_opened_ = nullptr;
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (!ok_) {
      sink_->tsfn.Release();
      deferred_.Reject(MakeError(env, error_));
      return;
    }
    Napi::Object connection = constructor_()->New({Napi::External<virConnect>::New(env, conn_opened_),
                                                   Napi::External<EventSink>::New(env, sink_),
                                                   Napi::External<Registrations>::New(env, new Registrations(registrations_))});
    deferred_.Resolve(connection);
  }

 private:
  static Napi::FunctionReference* constructor_() { return Connection::constructor; }

  std::string uri_;
  EventSink* sink_;
  virConnectPtr conn_opened_ = nullptr;
  Registrations registrations_;
};

Napi::Value Open(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsFunction()) {
    Napi::TypeError::New(info.Env(), "open(uri: string, listener: (event) => void)").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return (new OpenWorker(info.Env(), info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::Function>()))->Queue();
}

Napi::Value LibraryVersion(const Napi::CallbackInfo& info) {
  unsigned long version = 0;
  virGetVersion(&version, nullptr, nullptr);
  return Napi::Number::New(info.Env(), static_cast<double>(version));
}

// Diagnostics for leak tests: event sinks not yet freed (one per open connection).
Napi::Value LiveEventSinks(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live_sinks.load()));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (virInitialize() < 0) {
    Napi::Error::New(env, "virInitialize failed").ThrowAsJavaScriptException();
    return exports;
  }
  virSetErrorFunc(nullptr, SilentErrorHandler);
  StartEventLoop();
  Napi::Function connection = Connection::Define(env);
  Connection::constructor = new Napi::FunctionReference(Napi::Persistent(connection));
  exports.Set("Connection", connection);
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("libraryVersion", Napi::Function::New(env, LibraryVersion, "libraryVersion"));
  exports.Set("liveEventSinks", Napi::Function::New(env, LiveEventSinks, "liveEventSinks"));
  return exports;
}

}  // namespace

NODE_API_MODULE(v6agent_libvirt, Init)
