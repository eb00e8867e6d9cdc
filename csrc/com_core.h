// The COM core of winbits: RAII for COM, the apartment rule, plain records, and the
// functions that walk the BITS object model. HRESULTs in, HRESULTs out; no Python here.
#pragma once

#include "bits_api.h"

#include <atomic>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace winbits {

// An owning COM pointer. Ours rather than WRL's ComPtr: mingw-w64's ComPtr::Attach
// AddRefs (MSVC's does not), which leaked every enumerated object here, and one pointer
// type must mean the same under both compilers.
template <class T>
class ComPtr {
public:
    ComPtr() = default;
    ComPtr(const ComPtr& o) : p_(o.p_) {
        if (p_)
            p_->AddRef();
    }
    ComPtr(ComPtr&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
    ComPtr& operator=(ComPtr o) noexcept {
        std::swap(p_, o.p_);
        return *this;
    }
    ~ComPtr() { Reset(); }
    T* Get() const { return p_; }
    T* operator->() const { return p_; }
    explicit operator bool() const { return p_ != nullptr; }
    // For out-parameters: releases what is held, then lends the slot.
    T** put() {
        Reset();
        return &p_;
    }
    void** put_void() { return reinterpret_cast<void**>(put()); }
    // Takes over a reference the caller owns (no AddRef).
    void Attach(T* p) {
        Reset();
        p_ = p;
    }
    T* Detach() {
        T* p = p_;
        p_ = nullptr;
        return p;
    }
    void Reset() {
        T* p = p_;
        p_ = nullptr;
        if (p)
            p->Release();
    }

private:
    T* p_ = nullptr;
};

// A buffer that BITS allocated with CoTaskMemAlloc (a reply, ranges, a hash); freed when
// it goes out of scope.
template <class T>
class CoTaskPtr {
public:
    CoTaskPtr() = default;
    CoTaskPtr(const CoTaskPtr&) = delete;
    CoTaskPtr& operator=(const CoTaskPtr&) = delete;
    ~CoTaskPtr() { CoTaskMemFree(p_); }
    T** put() {
        CoTaskMemFree(p_);
        p_ = nullptr;
        return &p_;
    }
    const T* get() const { return p_; }

private:
    T* p_ = nullptr;
};

// A string that BITS allocated with CoTaskMemAlloc; freed when it goes out of scope.
class CoTaskString {
public:
    CoTaskString() = default;
    CoTaskString(const CoTaskString&) = delete;
    CoTaskString& operator=(const CoTaskString&) = delete;
    ~CoTaskString() { CoTaskMemFree(p_); }
    LPWSTR* put() {
        CoTaskMemFree(p_);
        p_ = nullptr;
        return &p_;
    }
    const wchar_t* get() const { return p_ ? p_ : L""; }
    bool empty() const { return p_ == nullptr || p_[0] == L'\0'; }

private:
    LPWSTR p_ = nullptr;
};

// Slim reader/writer lock; std::mutex is missing from mingw's win32 thread model.
class SrwLock {
public:
    void lock_shared() { AcquireSRWLockShared(&lock_); }
    void unlock_shared() { ReleaseSRWLockShared(&lock_); }
    void lock() { AcquireSRWLockExclusive(&lock_); }
    void unlock() { ReleaseSRWLockExclusive(&lock_); }

private:
    SRWLOCK lock_ = SRWLOCK_INIT;
};

// --- The apartment rule -------------------------------------------------------------
//
// Every BITS proxy winbits holds lives in the process's multithreaded apartment (MTA),
// which each Connection keeps alive with CoIncrementMTAUsage. A batch of COM calls runs:
//  - on the calling thread when it is in the MTA: explicitly, or implicitly (a thread
//    that never initialized COM, while the MTA exists). That costs one
//    CoGetApartmentType and leaves the thread's apartment exactly as it was;
//  - on the calling thread entered into the MTA for the batch (CoInitializeEx, then
//    CoUninitialize) where there is no MTA yet (no connection open);
//  - on winbits' own MTA worker thread (one, started on first need, kept for the life of
//    the process) when the caller sits in a single-threaded (or the neutral) apartment
//    the application chose, as `import pythoncom` does: MTA proxies cannot be called
//    from there (RPC_E_WRONG_THREAD), and changing the caller's apartment is not ours
//    to do. Such callers' batches run one at a time, and the caller dispatches its
//    messages while it waits (CoWaitForMultipleHandles).
// winbits never calls CoInitializeSecurity: that is process-wide and the application's.

HRESULT run_on_mta_thread(HRESULT (*call)(void*), void* context) noexcept;

// Whether this thread is waiting for its own batch on the MTA worker, and so is running
// a window message or COM call dispatched during that wait. A lock held across a batch
// must not be taken then (poller_poll checks).
bool waiting_for_mta_worker() noexcept;

// Calls fn(); no C++ exception leaves: out of memory becomes E_OUTOFMEMORY, anything
// else E_UNEXPECTED.
template <class F>
HRESULT guarded(F& fn) noexcept {
    try {
        return fn();
    } catch (const std::bad_alloc&) {
        return E_OUTOFMEMORY;
    } catch (...) {
        return E_UNEXPECTED;
    }
}

// Calls fn() in the MTA (see above).
template <class F>
HRESULT in_mta(F&& fn) noexcept {
    APTTYPE type;
    APTTYPEQUALIFIER qualifier;
    HRESULT hr = CoGetApartmentType(&type, &qualifier);
    if (SUCCEEDED(hr) && type == APTTYPE_MTA)
        return guarded(fn);
    if (hr == CO_E_NOTINITIALIZED) {
        hr = CoInitializeEx(nullptr, COINIT_MULTITHREADED);
        if (FAILED(hr))
            return hr;
        hr = guarded(fn);
        CoUninitialize();
        return hr;
    }
    using Fn = std::remove_reference_t<F>;
    return run_on_mta_thread([](void* c) { return in_mta(*static_cast<Fn*>(c)); }, &fn);
}

// Runs fn(arg) in the MTA: now, or, on a thread that is waiting for its own batch on
// the worker (a window message or COM call dispatched during that wait), once that batch
// ends. For releases, which must never be refused nor run on the waiting thread.
void run_or_defer_in_mta(void (*fn)(void*), void* arg) noexcept;

// Releases a COM pointer from inside the MTA (its proxy may need a round trip).
void release_in_mta(IUnknown* p) noexcept;

// Deletes a handle (whose destructor releases proxies) from inside the MTA, in one batch.
template <class T>
void delete_in_mta(T* p) noexcept {
    if (p)
        run_or_defer_in_mta([](void* x) { delete static_cast<T*>(x); }, p);
}

// An interface of `from`, asked for once and kept in `slot` (released by the slot's
// owner); another thread that asked meanwhile keeps its own and releases this one.
// With `lacks`, a server known to lack the interface is not asked again. S_OK with a
// borrowed pointer, or the QueryInterface's failure.
template <class I, class Slot>
HRESULT query_cached(IUnknown* from, std::atomic<Slot*>& slot, std::atomic<bool>* lacks,
                     I** out) noexcept {
    Slot* have = slot.load(std::memory_order_acquire);
    if (!have) {
        if (lacks && lacks->load(std::memory_order_relaxed))
            return E_NOINTERFACE;
        I* got = nullptr;
        HRESULT hr = from->QueryInterface(__uuidof(I), reinterpret_cast<void**>(&got));
        if (hr == E_NOINTERFACE && lacks)
            lacks->store(true, std::memory_order_relaxed);
        if (FAILED(hr))
            return hr;
        Slot* expected = nullptr;
        if (slot.compare_exchange_strong(expected, got, std::memory_order_acq_rel)) {
            have = got;
        } else {
            got->Release();  // another thread stored the same interface first
            have = expected;
        }
    }
    *out = static_cast<I*>(have);
    return S_OK;
}

// --- Records ------------------------------------------------------------------------

struct JobTimes {
    UINT64 creation = 0, modification = 0, transfer_completion = 0;  // FILETIME ticks
};

struct JobErrorInfo {
    HRESULT code = S_OK;
    int context = 0;  // BG_ERROR_CONTEXT
    bool has_description = false, has_context_description = false, has_protocol = false,
         has_file = false;
    std::wstring description, context_description, protocol, remote_name, local_name;
};

struct PeerStats {
    UINT64 from_origin = 0, from_peers = 0;
};

// --- The connection to one BITS manager ---------------------------------------------

class Connection {
public:
    // Creates the manager of class clsid (BITS itself, or a test double registered
    // in-process) and keeps the MTA alive for as long as the connection lives.
    static HRESULT open(const GUID& clsid, Connection** out) noexcept;
    ~Connection();

    // The manager, or null once closed. The copy holds its own reference, so a
    // concurrent close() cannot pull it away mid-call. With `generation`, the generation
    // it belongs to, read together with it: what a failure of a call through it compares
    // (reconnect), and what the jobs it gives are stamped with.
    ComPtr<IBackgroundCopyManager> manager(unsigned* generation = nullptr);
    void close() noexcept;
    // After the service went away, a fresh manager for the next call: the failed call
    // still fails, the connection itself recovers. Only the first failure of an outage
    // reconnects: `seen` is the generation the failing object came from, and a
    // connection already past it (reconnected since) does nothing. Call in the MTA.
    void reconnect(unsigned seen) noexcept;
    // Bumped by each successful reconnect: jobs and files made before it hold proxies
    // of the old service, which stay dead.
    unsigned generation() const noexcept { return generation_.load(std::memory_order_acquire); }
    bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

    // Interfaces this server lacks, learnt once and not asked for again.
    std::atomic<bool> lacks_file2{false};
    std::atomic<bool> lacks_file3{false};
    std::atomic<bool> lacks_file4{false};
    std::atomic<bool> lacks_file5{false};
    std::atomic<bool> lacks_file6{false};
    std::atomic<bool> lacks_owner{false};  // GetOwner is E_NOTIMPL (Wine)
    std::atomic<bool> lacks_times{false};  // GetTimes is E_NOTIMPL (Wine)

private:
    Connection() = default;
    GUID clsid_{};
    SrwLock lock_;
    SrwLock reconnect_lock_;  // held across a reconnect's CoCreateInstance
    ComPtr<IBackgroundCopyManager> manager_;
    CO_MTA_USAGE_COOKIE cookie_ = nullptr;
    std::atomic<bool> closed_{false};
    std::atomic<unsigned> generation_{0};
};

// A file with the richer interfaces it was asked for, each asked for once. Destroyed in
// the MTA (delete_in_mta, or by the poller, which runs there).
class FileHandle {
public:
    explicit FileHandle(ComPtr<IBackgroundCopyFile> file) : file_(std::move(file)) {}
    FileHandle(const FileHandle&) = delete;
    FileHandle& operator=(const FileHandle&) = delete;
    ~FileHandle();
    IBackgroundCopyFile* file() const { return file_.Get(); }
    // The file as interface I: S_OK with a borrowed pointer, or E_NOINTERFACE when the
    // server lacks it (then remembered on the connection, for every file).
    template <class I>
    HRESULT as(Connection& c, I** out) noexcept {
        if constexpr (std::is_same_v<I, IBackgroundCopyFile>) {
            *out = file_.Get();
            return S_OK;
        } else if constexpr (std::is_same_v<I, IBackgroundCopyFile2>) {
            return file2(c, out);
        } else if constexpr (std::is_same_v<I, IBackgroundCopyFile3>) {
            return file3(c, out);
        } else if constexpr (std::is_same_v<I, IBackgroundCopyFile4>) {
            return file4(c, out);
        } else if constexpr (std::is_same_v<I, IBackgroundCopyFile5>) {
            return file5(c, out);
        } else {
            static_assert(std::is_same_v<I, IBackgroundCopyFile6>, "not a file interface");
            return file6(c, out);
        }
    }
    // S_OK with a borrowed pointer, or E_NOINTERFACE when the server lacks it.
    HRESULT file2(Connection& c, IBackgroundCopyFile2** out) noexcept;
    HRESULT file3(Connection& c, IBackgroundCopyFile3** out) noexcept;
    HRESULT file4(Connection& c, IBackgroundCopyFile4** out) noexcept;
    HRESULT file5(Connection& c, IBackgroundCopyFile5** out) noexcept;
    HRESULT file6(Connection& c, IBackgroundCopyFile6** out) noexcept;

private:
    ComPtr<IBackgroundCopyFile> file_;
    std::atomic<IBackgroundCopyFile2*> file2_{nullptr};
    std::atomic<IBackgroundCopyFile3*> file3_{nullptr};
    std::atomic<IBackgroundCopyFile4*> file4_{nullptr};
    std::atomic<IBackgroundCopyFile5*> file5_{nullptr};
    std::atomic<IBackgroundCopyFile6*> file6_{nullptr};
};

// --- Notifications -------------------------------------------------------------------

// The callback wait() registers on a job this process created (never on another
// program's: the last SetNotifyInterface wins, and would steal the owner's). BITS calls
// it on an RPC thread of this process's MTA, however late: after the wait, after the
// manager is closed, during interpreter shutdown. So it touches no Python object and
// takes no GIL: it sets its event and, for an asyncio wait, rings the doorbell (a short
// SRW lock around a list). It owns what it touches (the event, a doorbell reference) and
// lives while anybody holds a reference.
// Where the notifiers of asyncio waits ring as well: one per interpreter (the module's),
// waited on by one thread of winbits' that wakes the event loops. A ring adds the
// notifier's token to a list and sets the event; take() hands the list over. It is
// reference-counted, held by the module and by every notifier that rings it, so a late
// call from BITS finds it alive after the module is gone.
class Doorbell {
public:
    static Doorbell* create() noexcept;  // one reference; null when no event can be made
    // COM's names, so that ComPtr<Doorbell> holds one (it is not a COM object).
    void AddRef() noexcept { ++refs_; }
    void Release() noexcept;
    void ring(unsigned long long token) noexcept;
    // Waits up to `ms` for a ring (call without the GIL); -> the tokens rung since the
    // last take, none when the time passed first.
    std::vector<unsigned long long> take(DWORD ms) noexcept;

private:
    explicit Doorbell(HANDLE event) noexcept : event_(event) {}
    ~Doorbell();
    std::atomic<ULONG> refs_{1};
    SRWLOCK lock_ = SRWLOCK_INIT;
    std::vector<unsigned long long> rung_;  // guarded by lock_
    HANDLE event_;
};

class Notifier final : public IBackgroundCopyCallback2 {
public:
    // A new notifier, one reference (the caller's); null when no event can be made.
    // With a doorbell, every call from BITS also rings it with `token`.
    static Notifier* create(Doorbell* bell = nullptr, unsigned long long token = 0) noexcept;
    HANDLE event() const noexcept { return event_; }
    static long live() noexcept;  // notifiers alive in this process (for the tests)

    HRESULT STDMETHODCALLTYPE QueryInterface(REFIID riid, void** out) override;
    ULONG STDMETHODCALLTYPE AddRef() override;
    ULONG STDMETHODCALLTYPE Release() override;
    HRESULT STDMETHODCALLTYPE JobTransferred(IBackgroundCopyJob*) override;
    HRESULT STDMETHODCALLTYPE JobError(IBackgroundCopyJob*, IBackgroundCopyError*) override;
    HRESULT STDMETHODCALLTYPE JobModification(IBackgroundCopyJob*, DWORD) override;
    HRESULT STDMETHODCALLTYPE FileTransferred(IBackgroundCopyJob*, IBackgroundCopyFile*) override;

private:
    Notifier(HANDLE event, Doorbell* bell, unsigned long long token) noexcept;
    ~Notifier();
    HRESULT signal() noexcept;
    std::atomic<ULONG> refs_{1};
    HANDLE event_;
    ComPtr<Doorbell> bell_;  // or null
    unsigned long long token_;
};

// The richer interfaces of a job that the binding asks for, each with its slot in
// JobHandle's cache.
template <class I>
constexpr int kJobSlot = -1;
template <>
constexpr int kJobSlot<IBackgroundCopyJob2> = 0;
template <>
constexpr int kJobSlot<IBackgroundCopyJob3> = 1;
template <>
constexpr int kJobSlot<IBackgroundCopyJob4> = 2;
template <>
constexpr int kJobSlot<IBackgroundCopyJob5> = 3;
template <>
constexpr int kJobSlot<IBackgroundCopyJobHttpOptions> = 4;
template <>
constexpr int kJobSlot<IBackgroundCopyJobHttpOptions2> = 5;
template <>
constexpr int kJobSlot<IBackgroundCopyJobHttpOptions3> = 6;
template <>
constexpr int kJobSlot<IBitsTokenOptions> = 7;
constexpr int kJobSlots = 8;

// listen() while another wait of the same handle listens, or is registering.
constexpr HRESULT kListenBusy = HRESULT_FROM_WIN32(ERROR_BUSY);
// listen() on a job with a notify command line, which a registered callback would keep
// BITS from running: not registered, the wait polls.
constexpr HRESULT kListenCommandLine = HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED);

// A job: its proxy, the richer interfaces it was asked for (each once), and wait()'s
// registration on it. Destroyed in the MTA (delete_in_mta): the registration undone and
// every proxy released in one batch.
class JobHandle {
public:
    explicit JobHandle(ComPtr<IBackgroundCopyJob> job) : job_(std::move(job)) {}
    JobHandle(const JobHandle&) = delete;
    JobHandle& operator=(const JobHandle&) = delete;
    ~JobHandle();
    IBackgroundCopyJob* job() const { return job_.Get(); }

    // The job as interface I: S_OK with a borrowed pointer, or QueryInterface's failure
    // (E_NOINTERFACE where this BITS lacks it). Call in the MTA.
    template <class I>
    HRESULT as(I** out) noexcept {
        if constexpr (std::is_same_v<I, IBackgroundCopyJob>) {
            *out = job_.Get();
            return S_OK;
        } else {
            static_assert(kJobSlot<I> >= 0, "an interface without a slot in JobHandle");
            return query_cached(job_.Get(), ifaces_[kJobSlot<I>], nullptr, out);
        }
    }

    // Registers winbits' notifier on the job (a job this process created: the last
    // SetNotifyInterface wins), TRANSFERRED | ERROR | MODIFICATION, remembering the flags
    // it found; with a doorbell, each call also rings it with `token`. kListenBusy when
    // this handle listens already, kListenCommandLine when the job has a notify command
    // line. Call in the MTA.
    HRESULT listen(Doorbell* bell, unsigned long long token) noexcept;
    // The registration's notifier (a reference of the caller's own), or null.
    ComPtr<Notifier> notifier() noexcept;
    // Takes the notifier away and puts the flags back; nothing when not listening. In
    // the MTA, at once; on a thread that waits for its own batch (a window message
    // handled meanwhile), the registration is taken off the handle now and BITS is told
    // once that batch ends (run_or_defer_in_mta), with references of its own.
    void unlisten() noexcept;

private:
    ComPtr<IBackgroundCopyJob> job_;
    std::atomic<IUnknown*> ifaces_[kJobSlots] = {};
    // Guards the four fields below, never held across a COM call.
    SrwLock lock_;
    ComPtr<Notifier> notifier_;
    ULONG old_flags_ = 0;
    bool restore_flags_ = false;
    bool registering_ = false;
};

// --- Walks and reads ----------------------------------------------------------------

HRESULT list_jobs(IBackgroundCopyManager* manager, bool all_users,
                  std::vector<ComPtr<IBackgroundCopyJob>>& out);
HRESULT list_files(IBackgroundCopyJob* job, std::vector<ComPtr<IBackgroundCopyFile>>& out);

// S_FALSE and an empty record when the job has no error.
HRESULT read_job_error(IBackgroundCopyJob* job, JobErrorInfo& out);
HRESULT read_job_times(IBackgroundCopyJob* job, JobTimes& out);

// BITS' own text for hr (GetErrorDescription), else the system message table; empty
// when neither knows it. manager may be null.
std::wstring describe_hresult(IBackgroundCopyManager* manager, HRESULT hr) noexcept;

// The newest BITS manager class that can be created here, or the error of the oldest.
HRESULT detect_version(int* major, int* minor) noexcept;

}  // namespace winbits
