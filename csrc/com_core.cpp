// The COM core: the MTA helper thread, the connection, enumerator walks and reads.
#include "com_core.h"

#include <algorithm>

namespace winbits {

namespace {

// The MTA worker: one thread of winbits' own, in the MTA for the life of the process,
// that runs the batches of callers sitting in a single-threaded apartment. One request
// at a time; a request that itself needs the MTA runs inline (the worker is in it).
struct MtaWorker {
    SRWLOCK submit = SRWLOCK_INIT;  // held by the caller whose request is in flight
    HANDLE wake = nullptr;          // auto-reset: a request is there
    HANDLE done = nullptr;          // manual-reset: reset before a request, set after it
    HRESULT (*call)(void*) = nullptr;
    void* context = nullptr;
    HRESULT result = E_UNEXPECTED;
};
MtaWorker g_worker;

DWORD WINAPI worker_main(void*) {
    CoInitializeEx(nullptr, COINIT_MULTITHREADED);  // our own thread: never left
    for (;;) {
        if (WaitForSingleObject(g_worker.wake, INFINITE) != WAIT_OBJECT_0)
            return 1;  // cannot happen once start_worker has made the events
        g_worker.result = g_worker.call(g_worker.context);
        SetEvent(g_worker.done);
    }
}

// With g_worker.submit held: the worker's thread and events, made on first use.
HRESULT start_worker() {
    if (g_worker.done)
        return S_OK;
    // The events are in place before the thread starts: it waits on g_worker.wake at
    // once, and a wait on a handle not yet stored fails, after which it would run a
    // request that is not there (seen under Wine: a call through null).
    g_worker.wake = CreateEventW(nullptr, FALSE, FALSE, nullptr);
    g_worker.done = CreateEventW(nullptr, TRUE, FALSE, nullptr);
    HANDLE thread = (g_worker.wake && g_worker.done)
                        ? CreateThread(nullptr, 0, worker_main, nullptr, 0, nullptr)
                        : nullptr;
    if (!thread) {
        HRESULT hr = HRESULT_FROM_WIN32(GetLastError());
        for (HANDLE* h : {&g_worker.wake, &g_worker.done}) {
            if (*h)
                CloseHandle(*h);
            *h = nullptr;
        }
        return hr;
    }
    CloseHandle(thread);  // it runs until the process ends
    return S_OK;
}

}  // namespace

namespace {

// Set on a thread while its batch runs on the worker. The thread dispatches its window
// messages and incoming COM calls meanwhile, and what they run may call winbits again:
// such a call cannot run before the one it interrupted ends (the worker is busy with
// it), so it fails with ERROR_POSSIBLE_DEADLOCK rather than wait forever. Releases are
// not refused: they wait in t_deferred until the interrupted batch ends.
struct Deferred {
    void (*fn)(void*);
    void* arg;
};
thread_local bool t_waiting = false;
thread_local std::vector<Deferred> t_deferred;

HRESULT submit(HRESULT (*call)(void*), void* context) noexcept {
    AcquireSRWLockExclusive(&g_worker.submit);
    HRESULT hr = start_worker();
    if (SUCCEEDED(hr)) {
        g_worker.call = call;
        g_worker.context = context;
        ResetEvent(g_worker.done);
        SetEvent(g_worker.wake);
        // A thread in a single-threaded apartment must keep dispatching while it waits,
        // or its windows freeze and COM calls into it block. Where these flags are not
        // known (before Windows 8), a plain wait.
        DWORD index;
        t_waiting = true;
        if (FAILED(CoWaitForMultipleHandles(COWAIT_DISPATCH_CALLS | COWAIT_DISPATCH_WINDOW_MESSAGES,
                                            INFINITE, 1, &g_worker.done, &index)))
            WaitForSingleObject(g_worker.done, INFINITE);
        t_waiting = false;
        hr = g_worker.result;
    }
    ReleaseSRWLockExclusive(&g_worker.submit);
    return hr;
}

}  // namespace

bool waiting_for_mta_worker() noexcept {
    return t_waiting;
}

HRESULT run_on_mta_thread(HRESULT (*call)(void*), void* context) noexcept {
    if (t_waiting)
        return HRESULT_FROM_WIN32(ERROR_POSSIBLE_DEADLOCK);
    HRESULT hr = submit(call, context);
    while (!t_deferred.empty()) {  // released by what ran during the wait
        std::vector<Deferred> batch;
        batch.swap(t_deferred);
        submit(
            [](void* c) {
                for (const Deferred& d : *static_cast<std::vector<Deferred>*>(c))
                    d.fn(d.arg);
                return S_OK;
            },
            &batch);
    }
    return hr;
}

namespace {

// Fetches a whole enumerator in batches: one Next(n) round trip per batch, never
// GetCount + Next(1) loops. Item pointers arrive with a reference we take over.
template <class Enum, class Item>
HRESULT drain(Enum* e, std::vector<ComPtr<Item>>& out) {
    constexpr ULONG kBatch = 64;
    Item* batch[kBatch];
    for (;;) {
        ULONG fetched = 0;
        HRESULT hr = e->Next(kBatch, batch, &fetched);
        if (FAILED(hr))
            return hr;
        if (fetched > kBatch)
            return E_UNEXPECTED;  // a broken server; do not overrun
        for (ULONG i = 0; i < fetched; ++i) {
            ComPtr<Item> item;
            item.Attach(batch[i]);
            try {
                out.push_back(std::move(item));  // `item` releases its own if this throws
            } catch (...) {
                for (ULONG rest = i + 1; rest < fetched; ++rest)
                    batch[rest]->Release();
                throw;  // in_mta turns it into E_OUTOFMEMORY
            }
        }
        if (hr == S_FALSE || fetched < kBatch)
            return S_OK;
    }
}

std::wstring trimmed(const wchar_t* text) {
    std::wstring s = text ? text : L"";
    while (!s.empty() &&
           (s.back() == L'\r' || s.back() == L'\n' || s.back() == L' ' || s.back() == L'.'))
        s.pop_back();
    return s;
}

}  // namespace

void run_or_defer_in_mta(void (*fn)(void*), void* arg) noexcept {
    if (t_waiting) {
        try {
            t_deferred.push_back(Deferred{fn, arg});
            return;
        } catch (const std::bad_alloc&) {
            // no room to defer: run here, from the waiting thread, as a last resort
            fn(arg);
            return;
        }
    }
    in_mta([&] {
        fn(arg);
        return S_OK;
    });
}

void release_in_mta(IUnknown* p) noexcept {
    if (p)
        run_or_defer_in_mta([](void* x) { static_cast<IUnknown*>(x)->Release(); }, p);
}

// --- Connection ---------------------------------------------------------------------

HRESULT Connection::open(const GUID& clsid, Connection** out) noexcept {
    *out = nullptr;
    Connection* c = new (std::nothrow) Connection();
    if (!c)
        return E_OUTOFMEMORY;
    c->clsid_ = clsid;
    HRESULT hr = CoIncrementMTAUsage(&c->cookie_);
    if (SUCCEEDED(hr)) {
        hr = in_mta([&] {
            return CoCreateInstance(clsid, nullptr, CLSCTX_LOCAL_SERVER | CLSCTX_INPROC_SERVER,
                                    __uuidof(IBackgroundCopyManager), c->manager_.put_void());
        });
    }
    if (FAILED(hr)) {
        delete c;
        return hr;
    }
    *out = c;
    return S_OK;
}

Connection::~Connection() {
    close();
    if (cookie_)
        CoDecrementMTAUsage(cookie_);
}

ComPtr<IBackgroundCopyManager> Connection::manager(unsigned* generation) {
    lock_.lock_shared();
    ComPtr<IBackgroundCopyManager> m = manager_;
    if (generation)
        *generation = this->generation();  // bumped only under the exclusive lock
    lock_.unlock_shared();
    return m;
}

void Connection::close() noexcept {
    lock_.lock();
    IBackgroundCopyManager* m = manager_.Detach();
    closed_.store(true, std::memory_order_release);
    lock_.unlock();
    release_in_mta(m);
}

void Connection::reconnect(unsigned seen) noexcept {
    // One reconnect at a time: calls that failed together in one outage wait here for
    // the first one's fresh manager, then find the generation past theirs.
    reconnect_lock_.lock();
    ComPtr<IBackgroundCopyManager> fresh;
    if (generation() == seen && !closed()) {
        HRESULT hr = CoCreateInstance(clsid_, nullptr, CLSCTX_LOCAL_SERVER | CLSCTX_INPROC_SERVER,
                                      __uuidof(IBackgroundCopyManager), fresh.put_void());
        if (SUCCEEDED(hr)) {  // else still gone: the next call fails, and tries again
            lock_.lock();
            if (!closed_.load(std::memory_order_acquire)) {
                std::swap(manager_, fresh);
                generation_.fetch_add(1, std::memory_order_acq_rel);
            }
            lock_.unlock();
        }
    }
    reconnect_lock_.unlock();
    // `fresh` now holds the dead manager (or the unused new one) and releases it here.
}

// --- FileHandle ---------------------------------------------------------------------

// In the MTA: released here, all in one batch.
FileHandle::~FileHandle() {
    for (IUnknown* p :
         {static_cast<IUnknown*>(file6_.load()), static_cast<IUnknown*>(file5_.load()),
          static_cast<IUnknown*>(file4_.load()), static_cast<IUnknown*>(file3_.load()),
          static_cast<IUnknown*>(file2_.load())})
        if (p)
            p->Release();
}

HRESULT FileHandle::file2(Connection& c, IBackgroundCopyFile2** out) noexcept {
    return query_cached(file_.Get(), file2_, &c.lacks_file2, out);
}

HRESULT FileHandle::file3(Connection& c, IBackgroundCopyFile3** out) noexcept {
    return query_cached(file_.Get(), file3_, &c.lacks_file3, out);
}

HRESULT FileHandle::file4(Connection& c, IBackgroundCopyFile4** out) noexcept {
    return query_cached(file_.Get(), file4_, &c.lacks_file4, out);
}

HRESULT FileHandle::file5(Connection& c, IBackgroundCopyFile5** out) noexcept {
    return query_cached(file_.Get(), file5_, &c.lacks_file5, out);
}

HRESULT FileHandle::file6(Connection& c, IBackgroundCopyFile6** out) noexcept {
    return query_cached(file_.Get(), file6_, &c.lacks_file6, out);
}

// --- JobHandle ----------------------------------------------------------------------

// In the MTA: a wait that never ended puts the job back, then every proxy is released.
JobHandle::~JobHandle() {
    unlisten();
    for (auto& iface : ifaces_)
        if (IUnknown* p = iface.exchange(nullptr))
            p->Release();
}

// --- Notifications -------------------------------------------------------------------

namespace {
std::atomic<long> g_live_notifiers{0};
}  // namespace

Doorbell* Doorbell::create() noexcept {
    HANDLE event = CreateEventW(nullptr, FALSE, FALSE, nullptr);  // auto-reset
    if (!event)
        return nullptr;
    Doorbell* d = new (std::nothrow) Doorbell(event);
    if (!d)
        CloseHandle(event);
    return d;
}

Doorbell::~Doorbell() {
    CloseHandle(event_);
}

void Doorbell::Release() noexcept {
    if (--refs_ == 0)
        delete this;
}

void Doorbell::ring(unsigned long long token) noexcept {
    // Each token once, and a bounded list: a wait whose ring finds it full (or memory
    // short) learns of the change by its own poll. BITS can call a forgotten notifier for
    // as long as the job is in the queue, and nothing takes a token nobody waits for.
    constexpr size_t kMaxRung = 1024;
    AcquireSRWLockExclusive(&lock_);
    try {
        if (rung_.size() < kMaxRung && std::find(rung_.begin(), rung_.end(), token) == rung_.end())
            rung_.push_back(token);
    } catch (...) {
    }
    ReleaseSRWLockExclusive(&lock_);
    SetEvent(event_);
}

std::vector<unsigned long long> Doorbell::take(DWORD ms) noexcept {
    WaitForSingleObject(event_, ms);
    std::vector<unsigned long long> out;
    AcquireSRWLockExclusive(&lock_);
    out.swap(rung_);
    ReleaseSRWLockExclusive(&lock_);
    return out;
}

Notifier::Notifier(HANDLE event, Doorbell* bell, unsigned long long token) noexcept
    : event_(event), token_(token) {
    if (bell) {
        bell->AddRef();
        bell_.Attach(bell);
    }
    ++g_live_notifiers;
}

Notifier::~Notifier() {
    CloseHandle(event_);
    --g_live_notifiers;
}

Notifier* Notifier::create(Doorbell* bell, unsigned long long token) noexcept {
    HANDLE event = CreateEventW(nullptr, FALSE, FALSE, nullptr);  // auto-reset
    if (!event)
        return nullptr;
    Notifier* n = new (std::nothrow) Notifier(event, bell, token);
    if (!n)
        CloseHandle(event);
    return n;
}

long Notifier::live() noexcept {
    return g_live_notifiers.load();
}

HRESULT STDMETHODCALLTYPE Notifier::QueryInterface(REFIID riid, void** out) {
    if (!out)
        return E_POINTER;
    *out = nullptr;
    if (riid == __uuidof(IUnknown) || riid == __uuidof(IBackgroundCopyCallback) ||
        riid == __uuidof(IBackgroundCopyCallback2))
        *out = static_cast<IBackgroundCopyCallback2*>(this);
    else if (riid == __uuidof(IAgileObject))  // free-threaded: any thread may call it
        *out = static_cast<IUnknown*>(this);
    if (!*out)
        return E_NOINTERFACE;
    AddRef();
    return S_OK;
}

ULONG STDMETHODCALLTYPE Notifier::AddRef() {
    return ++refs_;
}

ULONG STDMETHODCALLTYPE Notifier::Release() {
    ULONG r = --refs_;
    if (r == 0)
        delete this;
    return r;
}

HRESULT Notifier::signal() noexcept {
    SetEvent(event_);
    if (bell_)
        bell_->ring(token_);
    return S_OK;
}

HRESULT STDMETHODCALLTYPE Notifier::JobTransferred(IBackgroundCopyJob*) {
    return signal();
}
HRESULT STDMETHODCALLTYPE Notifier::JobError(IBackgroundCopyJob*, IBackgroundCopyError*) {
    return signal();
}
HRESULT STDMETHODCALLTYPE Notifier::JobModification(IBackgroundCopyJob*, DWORD) {
    return signal();
}
HRESULT STDMETHODCALLTYPE Notifier::FileTransferred(IBackgroundCopyJob*, IBackgroundCopyFile*) {
    return signal();
}

HRESULT JobHandle::listen(Doorbell* bell, unsigned long long token) noexcept {
    lock_.lock();
    bool busy = registering_ || notifier_;
    registering_ = true;
    lock_.unlock();
    if (busy)
        return kListenBusy;
    IBackgroundCopyJob* job = job_.Get();
    // BITS runs a job's notify command line only while no callback is registered (and
    // answers success either way): a job that has one is polled, so that it still runs.
    IBackgroundCopyJob2* job2 = nullptr;
    CoTaskString program, parameters;
    const bool has_program = SUCCEEDED(as(&job2)) &&
                             SUCCEEDED(job2->GetNotifyCmdLine(program.put(), parameters.put())) &&
                             !program.empty();
    ComPtr<Notifier> n;
    if (!has_program)
        n.Attach(Notifier::create(bell, token));
    HRESULT hr = has_program ? kListenCommandLine : n ? S_OK : E_OUTOFMEMORY;
    ULONG old = 0;
    bool restore = false;
    if (n) {
        restore = SUCCEEDED(job->GetNotifyFlags(&old));
        hr = job->SetNotifyInterface(static_cast<IBackgroundCopyCallback2*>(n.Get()));
        if (SUCCEEDED(hr)) {
            hr = job->SetNotifyFlags(BG_NOTIFY_JOB_TRANSFERRED | BG_NOTIFY_JOB_ERROR |
                                     BG_NOTIFY_JOB_MODIFICATION);
            if (FAILED(hr))
                job->SetNotifyInterface(nullptr);
        }
        if (FAILED(hr))
            n.Reset();
    }
    lock_.lock();
    notifier_ = std::move(n);
    old_flags_ = old;
    restore_flags_ = restore;
    registering_ = false;
    lock_.unlock();
    return hr;
}

ComPtr<Notifier> JobHandle::notifier() noexcept {
    lock_.lock();
    ComPtr<Notifier> n = notifier_;
    lock_.unlock();
    return n;
}

namespace {

// What undoing a registration needs, owned: the job's proxy and the notifier.
struct Unregistration {
    ComPtr<IBackgroundCopyJob> job;
    ComPtr<Notifier> notifier;
    bool restore;
    ULONG old_flags;

    // Failures are of no use here: a job completed or cancelled meanwhile is gone, and
    // with it BITS' reference to the notifier.
    void run() noexcept {
        job->SetNotifyInterface(nullptr);
        if (restore)
            job->SetNotifyFlags(old_flags);
    }
};

}  // namespace

void JobHandle::unlisten() noexcept {
    lock_.lock();
    Unregistration undo{{}, std::move(notifier_), restore_flags_, old_flags_};
    lock_.unlock();
    if (!undo.notifier)
        return;
    undo.job = job_;
    if (!waiting_for_mta_worker()) {
        undo.run();
        return;
    }
    auto* later = new (std::nothrow) Unregistration(std::move(undo));
    if (!later) {  // no room to defer: the handle keeps it, for its destructor
        lock_.lock();
        notifier_ = std::move(undo.notifier);
        lock_.unlock();
        return;
    }
    run_or_defer_in_mta(
        [](void* p) {
            auto* u = static_cast<Unregistration*>(p);
            u->run();
            delete u;
        },
        later);
}

// --- Walks and reads ----------------------------------------------------------------

HRESULT list_jobs(IBackgroundCopyManager* manager, bool all_users,
                  std::vector<ComPtr<IBackgroundCopyJob>>& out) {
    ComPtr<IEnumBackgroundCopyJobs> e;
    HRESULT hr = manager->EnumJobs(all_users ? BG_JOB_ENUM_ALL_USERS : 0, e.put());
    if (FAILED(hr))
        return hr;
    return drain(e.Get(), out);
}

HRESULT list_files(IBackgroundCopyJob* job, std::vector<ComPtr<IBackgroundCopyFile>>& out) {
    ComPtr<IEnumBackgroundCopyFiles> e;
    HRESULT hr = job->EnumFiles(e.put());
    if (FAILED(hr))
        return hr;
    return drain(e.Get(), out);
}

HRESULT read_job_times(IBackgroundCopyJob* job, JobTimes& out) {
    BG_JOB_TIMES t{};
    HRESULT hr = job->GetTimes(&t);
    if (FAILED(hr))
        return hr;
    auto ticks = [](const FILETIME& f) {
        return (static_cast<UINT64>(f.dwHighDateTime) << 32) | f.dwLowDateTime;
    };
    out.creation = ticks(t.CreationTime);
    out.modification = ticks(t.ModificationTime);
    out.transfer_completion = ticks(t.TransferCompletionTime);
    return S_OK;
}

HRESULT read_job_error(IBackgroundCopyJob* job, JobErrorInfo& out) {
    ComPtr<IBackgroundCopyError> err;
    HRESULT hr = job->GetError(err.put());
    if (hr == kBgErrorInformationUnavailable)
        return S_FALSE;
    if (FAILED(hr))
        return hr;
    BG_ERROR_CONTEXT context = BG_ERROR_CONTEXT_NONE;
    hr = err->GetError(&context, &out.code);
    if (FAILED(hr))
        return hr;
    out.context = static_cast<int>(context);
    // The texts are extras: a server that cannot give one still gives the code.
    const DWORD lang = GetThreadUILanguage();
    CoTaskString text;
    if (SUCCEEDED(err->GetErrorDescription(lang, text.put())) && !text.empty()) {
        out.description = trimmed(text.get());
        out.has_description = true;
    }
    if (SUCCEEDED(err->GetErrorContextDescription(lang, text.put())) && !text.empty()) {
        out.context_description = trimmed(text.get());
        out.has_context_description = true;
    }
    if (SUCCEEDED(err->GetProtocol(text.put())) && !text.empty()) {
        out.protocol = text.get();
        out.has_protocol = true;
    }
    ComPtr<IBackgroundCopyFile> file;
    if (SUCCEEDED(err->GetFile(file.put())) && file) {
        CoTaskString remote, local;
        if (SUCCEEDED(file->GetRemoteName(remote.put())) &&
            SUCCEEDED(file->GetLocalName(local.put()))) {
            out.remote_name = remote.get();
            out.local_name = local.get();
            out.has_file = true;
        }
    }
    return S_OK;
}

namespace {

// FormatMessage's text for `id` from the system's table, or from `module`'s.
std::wstring message_text(HMODULE module, DWORD id) {
    wchar_t* buffer = nullptr;
    DWORD from = module ? FORMAT_MESSAGE_FROM_HMODULE : FORMAT_MESSAGE_FROM_SYSTEM;
    DWORD n = FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | from | FORMAT_MESSAGE_IGNORE_INSERTS,
                             module, id, 0, reinterpret_cast<LPWSTR>(&buffer), 0, nullptr);
    std::wstring s = n ? trimmed(buffer) : std::wstring();
    LocalFree(buffer);
    return s;
}

// WinHTTP's errors (HRESULT_FROM_WIN32 of 12001-12185) have their texts in winhttp.dll's
// own table, which the system's does not hold; loaded as data, only for such a code.
std::wstring winhttp_text(HRESULT hr) {
    DWORD code = HRESULT_CODE(hr);
    if (HRESULT_FACILITY(hr) != FACILITY_WIN32 || code < 12001 || code > 12185)
        return std::wstring();
    HMODULE module = LoadLibraryExW(L"winhttp.dll", nullptr,
                                    LOAD_LIBRARY_AS_DATAFILE | LOAD_LIBRARY_SEARCH_SYSTEM32);
    if (!module)
        return std::wstring();
    std::wstring s = message_text(module, code);
    FreeLibrary(module);
    return s;
}

}  // namespace

std::wstring describe_hresult(IBackgroundCopyManager* manager, HRESULT hr) noexcept {
    try {
        if (manager) {
            CoTaskString text;
            if (SUCCEEDED(manager->GetErrorDescription(hr, GetThreadUILanguage(), text.put())) &&
                !text.empty())
                return trimmed(text.get());
        }
        std::wstring s = message_text(nullptr, static_cast<DWORD>(hr));
        return s.empty() ? winhttp_text(hr) : s;
    } catch (...) {
        return std::wstring();
    }
}

HRESULT detect_version(int* major, int* minor) noexcept {
    HRESULT hr = REGDB_E_CLASSNOTREG;
    for (const ManagerClass& mc : kManagerClasses) {
        hr = in_mta([&] {
            ComPtr<IBackgroundCopyManager> m;
            return CoCreateInstance(mc.clsid, nullptr, CLSCTX_LOCAL_SERVER,
                                    __uuidof(IBackgroundCopyManager), m.put_void());
        });
        if (SUCCEEDED(hr)) {
            *major = mc.major;
            *minor = mc.minor;
            return S_OK;
        }
    }
    return hr;
}

}  // namespace winbits
