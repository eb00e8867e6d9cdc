// _bitsdouble: an in-process C++ COM test double of BITS for winbits' tests. It
// implements the manager, both enumerators, jobs, errors and files up to
// IBackgroundCopyFile5 over data the test sets, counts calls per method and live
// objects, and returns a chosen HRESULT from a chosen method. It is registered under
// its own CLSID so that winbits.connect(clsid=...) reaches it by the same code path as
// the real service. Test code only: never shipped in the wheel.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bits_api.h"

#include <sddl.h>

namespace {

// {6E1B1D0A-8F0C-4D57-9C1E-2B5B1F7A9D31}
constexpr GUID kClsidDouble = {
    0x6e1b1d0a, 0x8f0c, 0x4d57, {0x9c, 0x1e, 0x2b, 0x5b, 0x1f, 0x7a, 0x9d, 0x31}};

// --- The world the test describes -----------------------------------------------------

struct FileData {
    std::wstring remote, local;
    UINT64 total = winbits::kSizeUnknown, transferred = 0;
    bool completed = false;
    bool from_peer = false;
    UINT64 from_origin = 0, from_peers = 0;
    std::vector<BG_FILE_RANGE> ranges;     // AddFileWithRanges
    bool valid = false;                    // File3's validation state
    std::wstring response_headers;         // File5's HTTP_RESPONSE_HEADERS; empty: none
    std::vector<BG_FILE_RANGE> requested;  // File6's RequestFileRanges, in order
    UINT64 position = 0;                   // File6's UpdateDownloadPosition
};

struct JobData {
    GUID id{};
    std::wstring name, description, owner;
    BG_JOB_STATE state = BG_JOB_STATE_SUSPENDED;
    BG_JOB_TYPE type = BG_JOB_TYPE_DOWNLOAD;
    BG_JOB_PRIORITY priority = BG_JOB_PRIORITY_NORMAL;
    UINT64 times[3] = {0, 0, 0};
    HRESULT error = S_OK;  // S_OK: no error
    BG_ERROR_CONTEXT error_context = BG_ERROR_CONTEXT_NONE;
    int error_file = -1;
    bool gone = false;  // cancelled or completed: out of the queue
    std::vector<FileData> files;
    IBackgroundCopyJob* object = nullptr;  // the live COM object, reused as servers do
    // Settings, with Windows' defaults.
    ULONG retry_delay = 600, no_progress = 1209600, max_time = 7776000, errors = 0;
    BG_JOB_PROXY_USAGE proxy_usage = BG_JOB_PROXY_USAGE_PRECONFIG;
    std::wstring proxy_list, proxy_bypass, notify_program, notify_params, reply_name, headers,
        http_method;  // empty: the default of the job's type
    bool has_notify = false, has_reply_name = false, has_headers = false,
         headers_write_only = false;
    DWORD peer_flags = 0, security_flags = 0;
    std::vector<std::wstring> credentials;  // "target/scheme/user" of each set; no password
    std::map<int, BITS_JOB_PROPERTY_VALUE> properties;                     // IBackgroundCopyJob5
    ULONG notify_flags = BG_NOTIFY_JOB_TRANSFERRED | BG_NOTIFY_JOB_ERROR;  // Windows' default
    IUnknown* callback = nullptr;  // SetNotifyInterface's, one reference held
    bool has_certificate = false;
    BG_CERT_STORE_LOCATION cert_location = BG_CERT_STORE_LOCATION_CURRENT_USER;
    std::wstring cert_store, cert_subject;
    DWORD acl_flags = 0;      // Job3's file ACL flags
    DWORD token_flags = 0;    // IBitsTokenOptions
    std::wstring helper_sid;  // empty: no helper token
};

struct Fault {
    HRESULT hr;
    long remaining;  // < 0: every call
};

SRWLOCK g_lock = SRWLOCK_INIT;
IUnknown* g_last_callback = nullptr;  // the last callback registered, held until reset()

// Out of the queue (completed, cancelled, removed): BITS lets go of its callback.
void leave_queue(JobData& d) {
    d.gone = true;
    if (d.callback)
        d.callback->Release();
    d.callback = nullptr;
}
std::vector<std::shared_ptr<JobData>> g_jobs;
std::map<std::string, Fault> g_faults;
int g_file_level = 5;  // the highest IBackgroundCopyFileN this "server" implements (6: 10.1)
bool g_lands = true;   // Complete() writes a download's files, as BITS moves them into place

// A file moved into place: `transferred` bytes (zeros) at its local name; nothing where
// that folder does not exist (a test's made-up path).
void land(const FileData& f) {
    HANDLE h = CreateFileW(f.local.c_str(), GENERIC_WRITE, 0, nullptr, CREATE_ALWAYS,
                           FILE_ATTRIBUTE_NORMAL, nullptr);
    if (h == INVALID_HANDLE_VALUE)
        return;
    LARGE_INTEGER size;
    size.QuadPart = static_cast<LONGLONG>(f.transferred);
    if (SetFilePointerEx(h, size, nullptr, FILE_BEGIN))
        SetEndOfFile(h);
    CloseHandle(h);
}
int g_job_level = 5;  // the highest IBackgroundCopyJobN (3 and up: the HTTP options too;
                      // 5: HttpOptions2 too; 6: BITS 10.3, HttpOptions3 too)
bool g_admin = false;
bool g_stable_identity = true;  // hand out the same job object in every enumeration
// restart(): the service stopped and started again. Every object handed out before
// answers RPC_E_DISCONNECTED, as a proxy of a dead server does; the jobs stay queued.
std::atomic<unsigned> g_epoch{0};
constexpr HRESULT kDisconnected = static_cast<HRESULT>(0x80010108);  // RPC_E_DISCONNECTED
std::atomic<long> g_delay_us{0};  // stands in for a round trip on every counted call
std::atomic<long> g_live{0};
std::atomic<long> g_strings{0};  // strings handed out (CoTaskMemAlloc) so far

// Every string the double hands out, until somebody frees it: COM's own allocator hook
// (IMallocSpy) sees each CoTaskMemFree, so a string winbits forgets to free stays here.
SRWLOCK g_spy_lock = SRWLOCK_INIT;
std::set<void*> g_outstanding;

class Spy : public IMallocSpy {
public:
    HRESULT STDMETHODCALLTYPE QueryInterface(REFIID riid, void** out) override {
        if (riid == __uuidof(IUnknown) || riid == __uuidof(IMallocSpy)) {
            *out = static_cast<IMallocSpy*>(this);
            return S_OK;
        }
        *out = nullptr;
        return E_NOINTERFACE;
    }
    ULONG STDMETHODCALLTYPE AddRef() override { return 2; }  // static lifetime
    ULONG STDMETHODCALLTYPE Release() override { return 1; }
    SIZE_T STDMETHODCALLTYPE PreAlloc(SIZE_T cb) override { return cb; }
    void* STDMETHODCALLTYPE PostAlloc(void* p) override { return p; }
    void* STDMETHODCALLTYPE PreFree(void* p, BOOL) override {
        AcquireSRWLockExclusive(&g_spy_lock);
        g_outstanding.erase(p);
        ReleaseSRWLockExclusive(&g_spy_lock);
        return p;
    }
    void STDMETHODCALLTYPE PostFree(BOOL) override {}
    SIZE_T STDMETHODCALLTYPE PreRealloc(void* p, SIZE_T cb, void** out, BOOL) override {
        *out = p;
        return cb;
    }
    void* STDMETHODCALLTYPE PostRealloc(void* p, BOOL) override { return p; }
    void* STDMETHODCALLTYPE PreGetSize(void* p, BOOL) override { return p; }
    SIZE_T STDMETHODCALLTYPE PostGetSize(SIZE_T cb, BOOL) override { return cb; }
    void* STDMETHODCALLTYPE PreDidAlloc(void* p, BOOL) override { return p; }
    int STDMETHODCALLTYPE PostDidAlloc(void*, BOOL, int actual) override { return actual; }
    void STDMETHODCALLTYPE PreHeapMinimize() override {}
    void STDMETHODCALLTYPE PostHeapMinimize() override {}
};

Spy g_spy;

struct Locked {
    Locked() { AcquireSRWLockExclusive(&g_lock); }
    ~Locked() { ReleaseSRWLockExclusive(&g_lock); }
};

// Every counted method starts here: one more call to `method`, and the fault set for it.
void delay() {
    long us = g_delay_us.load();
    if (us <= 0)
        return;
    if (us >= 1000) {
        Sleep(static_cast<DWORD>(us / 1000));  // blocks like a real round trip
        return;
    }
    LARGE_INTEGER freq, start, now;
    QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&start);
    do {
        QueryPerformanceCounter(&now);
    } while ((now.QuadPart - start.QuadPart) * 1000000 / freq.QuadPart < us);
}

// One counter per counted method, found once (a static at the call site) so that the
// double's own cost stays small next to the binding's it is used to measure.
struct Counter {
    const char* name;
    std::atomic<long> calls{0};
    Counter* next;
};
std::atomic<Counter*> g_counters{nullptr};
std::atomic<bool> g_any_fault{false};

Counter* register_counter(const char* name) {
    auto* c = new Counter{name, {0}, g_counters.load()};
    while (!g_counters.compare_exchange_weak(c->next, c)) {
    }
    return c;
}

// hold(method): the next calls of `method` stop there until release(), and held() tells
// a test that one has arrived: a call BITS is slow to answer, at a moment the test picks.
std::string g_hold;  // guarded by g_lock
std::atomic<bool> g_holding{false};
HANDLE g_hold_reached = CreateEventW(nullptr, TRUE, FALSE, nullptr);
HANDLE g_hold_release = CreateEventW(nullptr, TRUE, FALSE, nullptr);

void hold_here(const char* method) {
    bool mine;
    {
        Locked l;
        mine = g_hold == method;
    }
    if (!mine)
        return;
    SetEvent(g_hold_reached);
    WaitForSingleObject(g_hold_release, 60000);  // a test that forgets release() still ends
}

// fail(method, kThrowBadAlloc): the call throws std::bad_alloc instead of answering, as
// an allocation of the caller's own code would on that thread (the core must catch it).
constexpr HRESULT kThrowBadAlloc = static_cast<HRESULT>(0xE0BADA11);

HRESULT enter(Counter& counter) {
    counter.calls.fetch_add(1, std::memory_order_relaxed);
    if (g_holding.load())
        hold_here(counter.name);
    HRESULT hr = S_OK;
    if (g_any_fault.load(std::memory_order_relaxed)) {
        Locked l;
        auto it = g_faults.find(counter.name);
        if (it != g_faults.end()) {
            hr = it->second.hr;
            if (it->second.remaining > 0 && --it->second.remaining == 0)
                g_faults.erase(it);
        }
        g_any_fault = !g_faults.empty();
    }
    delay();
    if (hr == kThrowBadAlloc)
        throw std::bad_alloc();
    return hr;
}

// Counts the call and returns an injected failure. An injected success code (such as
// BG_S_PARTIAL_COMPLETE) is kept in `entered_` for the method to return when it has done
// its work.
#define ENTER(name)                                                                       \
    static Counter* counter_ = register_counter(name);                                    \
    const HRESULT entered_ = this->epoch() != g_epoch ? kDisconnected : enter(*counter_); \
    if (FAILED(entered_))                                                                 \
    return entered_

HRESULT out_string(const std::wstring& s, LPWSTR* out) {
    if (!out)
        return E_POINTER;
    size_t bytes = (s.size() + 1) * sizeof(wchar_t);
    *out = static_cast<LPWSTR>(CoTaskMemAlloc(bytes));
    if (!*out)
        return E_OUTOFMEMORY;
    memcpy(*out, s.c_str(), bytes);
    ++g_strings;
    AcquireSRWLockExclusive(&g_spy_lock);
    g_outstanding.insert(*out);
    ReleaseSRWLockExclusive(&g_spy_lock);
    return S_OK;
}

// --- IUnknown for every object --------------------------------------------------------

template <class I>
class Object : public I {
public:
    Object() { ++g_live; }
    virtual ~Object() { --g_live; }
    unsigned epoch() const { return epoch_; }  // of the service that made it
    ULONG STDMETHODCALLTYPE AddRef() override { return ++refs_; }
    ULONG STDMETHODCALLTYPE Release() override {
        ULONG r = --refs_;
        if (r == 0)
            delete this;
        return r;
    }

protected:
    // AddRef unless the count already reached zero (the object is being destroyed).
    bool try_addref() {
        ULONG n = refs_.load();
        while (n != 0)
            if (refs_.compare_exchange_weak(n, n + 1))
                return true;
        return false;
    }
    std::atomic<ULONG> refs_{1};
    const unsigned epoch_ = g_epoch.load();

    // Answers IUnknown and the interfaces in iids (all of them implemented by this).
    HRESULT query(Counter* counter, REFIID riid, void** out,
                  std::initializer_list<const IID*> iids) {
        if (!out)
            return E_POINTER;
        *out = nullptr;
        if (counter) {
            HRESULT fault = enter(*counter);
            if (FAILED(fault))
                return fault;
        }
        if (riid == __uuidof(IUnknown)) {
            *out = static_cast<IUnknown*>(this);
        } else {
            for (const IID* iid : iids)
                if (riid == *iid)
                    *out = static_cast<I*>(this);
        }
        if (!*out)
            return E_NOINTERFACE;
        AddRef();
        return S_OK;
    }
};

// --- Files ------------------------------------------------------------------------------

class File : public Object<IBackgroundCopyFile6> {
public:
    File(std::shared_ptr<JobData> job, size_t index) : job_(std::move(job)), index_(index) {}

    HRESULT STDMETHODCALLTYPE QueryInterface(REFIID riid, void** out) override {
        // Only the interfaces of this server's level exist, as on an older BITS.
        static const IID* const levels[] = {
            &__uuidof(IBackgroundCopyFile),  &__uuidof(IBackgroundCopyFile2),
            &__uuidof(IBackgroundCopyFile3), &__uuidof(IBackgroundCopyFile4),
            &__uuidof(IBackgroundCopyFile5), &__uuidof(IBackgroundCopyFile6)};
        if (!out)
            return E_POINTER;
        *out = nullptr;
        ENTER("File.QueryInterface");
        if (riid == __uuidof(IUnknown))
            *out = static_cast<IUnknown*>(this);
        for (int i = 0; i < g_file_level; ++i)
            if (riid == *levels[i])
                *out = static_cast<IBackgroundCopyFile6*>(this);
        if (!*out)
            return E_NOINTERFACE;
        AddRef();
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetRemoteName(LPWSTR* v) override {
        ENTER("File.GetRemoteName");
        Locked l;
        return out_string(data().remote, v);
    }
    HRESULT STDMETHODCALLTYPE GetLocalName(LPWSTR* v) override {
        ENTER("File.GetLocalName");
        Locked l;
        return out_string(data().local, v);
    }
    HRESULT STDMETHODCALLTYPE GetProgress(BG_FILE_PROGRESS* p) override {
        ENTER("File.GetProgress");
        Locked l;
        const FileData& f = data();
        p->BytesTotal = f.total;
        p->BytesTransferred = f.transferred;
        p->Completed = f.completed;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetFileRanges(DWORD* count, BG_FILE_RANGE** ranges) override {
        ENTER("File.GetFileRanges");
        Locked l;
        const auto& r = data().ranges;
        *count = 0;
        *ranges = nullptr;
        if (r.empty())
            return S_OK;
        *ranges = static_cast<BG_FILE_RANGE*>(CoTaskMemAlloc(r.size() * sizeof(BG_FILE_RANGE)));
        if (!*ranges)
            return E_OUTOFMEMORY;
        std::copy(r.begin(), r.end(), *ranges);
        *count = static_cast<DWORD>(r.size());
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE SetRemoteName(LPCWSTR v) override {
        ENTER("File.SetRemoteName");
        Locked l;
        if (!v || !*v)
            return E_INVALIDARG;
        data().remote = v;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetTemporaryName(LPWSTR* v) override {
        ENTER("File.GetTemporaryName");
        Locked l;
        return out_string(data().local + L".bits.tmp", v);
    }
    HRESULT STDMETHODCALLTYPE SetValidationState(BOOL v) override {
        ENTER("File.SetValidationState");
        Locked l;
        FileData& f = data();
        if (!f.completed)
            return winbits::kBgInvalidState;  // BITS: only once the file is transferred
        f.valid = v != FALSE;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetValidationState(BOOL* v) override {
        ENTER("File.GetValidationState");
        Locked l;
        *v = data().valid;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE IsDownloadedFromPeer(BOOL* v) override {
        ENTER("File.IsDownloadedFromPeer");
        Locked l;
        *v = data().from_peer;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetPeerDownloadStats(PUINT64 origin, PUINT64 peers) override {
        ENTER("File.GetPeerDownloadStats");
        Locked l;
        *origin = data().from_origin;
        *peers = data().from_peers;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE SetProperty(BITS_FILE_PROPERTY_ID,
                                          BITS_FILE_PROPERTY_VALUE) override {
        ENTER("File.SetProperty");
        return E_INVALIDARG;  // BITS: the response headers are read-only
    }
    HRESULT STDMETHODCALLTYPE GetProperty(BITS_FILE_PROPERTY_ID id,
                                          BITS_FILE_PROPERTY_VALUE* v) override {
        ENTER("File.GetProperty");
        Locked l;
        v->String = nullptr;
        if (id != BITS_FILE_PROPERTY_ID_HTTP_RESPONSE_HEADERS)
            return E_INVALIDARG;
        const std::wstring& h = data().response_headers;
        return h.empty() ? S_OK : out_string(h, &v->String);  // none yet: a null string
    }
    // File6: the requested ranges are kept; "filled" is the file's first `transferred`
    // bytes, one range (the double transfers in order).
    HRESULT STDMETHODCALLTYPE UpdateDownloadPosition(UINT64 offset) override {
        ENTER("File.UpdateDownloadPosition");
        Locked l;
        if (data().total != winbits::kSizeUnknown && offset > data().total)
            return static_cast<HRESULT>(0x8020002C);  // BG_E_INVALID_RANGE
        data().position = offset;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE RequestFileRanges(DWORD count, const BG_FILE_RANGE* r) override {
        ENTER("File.RequestFileRanges");
        Locked l;
        if (count && !r)
            return E_INVALIDARG;
        for (DWORD i = 0; i < count; ++i)
            if (data().total != winbits::kSizeUnknown &&
                (r[i].InitialOffset > data().total ||
                 (r[i].Length != BG_LENGTH_TO_EOF &&
                  r[i].Length > data().total - r[i].InitialOffset)))
                return static_cast<HRESULT>(0x8020002C);  // BG_E_INVALID_RANGE
        data().requested.insert(data().requested.end(), r, r + count);
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetFilledFileRanges(DWORD* count, BG_FILE_RANGE** r) override {
        ENTER("File.GetFilledFileRanges");
        Locked l;
        *count = 0;
        *r = nullptr;
        if (!data().transferred)
            return S_OK;
        *r = static_cast<BG_FILE_RANGE*>(CoTaskMemAlloc(sizeof(BG_FILE_RANGE)));
        if (!*r)
            return E_OUTOFMEMORY;
        (*r)[0] = BG_FILE_RANGE{0, data().transferred};
        *count = 1;
        return S_OK;
    }

private:
    FileData& data() { return job_->files[index_]; }
    std::shared_ptr<JobData> job_;
    size_t index_;
};

// --- Enumerators ----------------------------------------------------------------------

template <class Enum, class Item>
class Enumerator : public Object<Enum> {
public:
    Enumerator(Counter* next, Counter* count, std::vector<Item*> items)
        : next_(next), count_(count), items_(std::move(items)) {}
    ~Enumerator() override {
        for (Item* i : items_)
            i->Release();
    }
    HRESULT STDMETHODCALLTYPE QueryInterface(REFIID riid, void** out) override {
        return this->query(nullptr, riid, out, {&__uuidof(Enum)});
    }
    HRESULT STDMETHODCALLTYPE Next(ULONG celt, Item** out, ULONG* fetched) override {
        HRESULT fault = enter(*next_);
        if (FAILED(fault))
            return fault;
        ULONG n = 0;
        while (n < celt && pos_ < items_.size()) {
            out[n] = items_[pos_++];
            out[n]->AddRef();
            ++n;
        }
        if (fetched)
            *fetched = n;
        return n == celt ? S_OK : S_FALSE;
    }
    HRESULT STDMETHODCALLTYPE Skip(ULONG celt) override {
        pos_ = std::min(items_.size(), pos_ + celt);
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE Reset() override {
        pos_ = 0;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE Clone(Enum**) override { return E_NOTIMPL; }
    HRESULT STDMETHODCALLTYPE GetCount(ULONG* count) override {
        HRESULT fault = enter(*count_);
        if (FAILED(fault))
            return fault;
        *count = static_cast<ULONG>(items_.size());
        return S_OK;
    }

private:
    Counter* next_;
    Counter* count_;
    std::vector<Item*> items_;
    size_t pos_ = 0;
};

using FileEnum = Enumerator<IEnumBackgroundCopyFiles, IBackgroundCopyFile>;

// --- Errors and jobs -------------------------------------------------------------------

class Error : public Object<IBackgroundCopyError> {
public:
    explicit Error(std::shared_ptr<JobData> job) : job_(std::move(job)) {}
    HRESULT STDMETHODCALLTYPE QueryInterface(REFIID riid, void** out) override {
        return query(nullptr, riid, out, {&__uuidof(IBackgroundCopyError)});
    }
    HRESULT STDMETHODCALLTYPE GetError(BG_ERROR_CONTEXT* context, HRESULT* code) override {
        ENTER("Error.GetError");
        Locked l;
        *context = job_->error_context;
        *code = job_->error;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetFile(IBackgroundCopyFile** out) override {
        ENTER("Error.GetFile");
        Locked l;
        if (job_->error_file < 0)
            return static_cast<HRESULT>(0x80200013);  // BG_E_FILE_NOT_AVAILABLE
        *out = new File(job_, static_cast<size_t>(job_->error_file));
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetErrorDescription(DWORD, LPWSTR* out) override {
        ENTER("Error.GetErrorDescription");
        return out_string(L"The double's description of the job error.", out);
    }
    HRESULT STDMETHODCALLTYPE GetErrorContextDescription(DWORD, LPWSTR* out) override {
        ENTER("Error.GetErrorContextDescription");
        return out_string(L"The error occurred while the remote file was being processed.", out);
    }
    HRESULT STDMETHODCALLTYPE GetProtocol(LPWSTR* out) override {
        ENTER("Error.GetProtocol");
        return out_string(L"http", out);
    }

private:
    std::shared_ptr<JobData> job_;
};

// A part of the job with its own vtable (interface I), whose IUnknown is the job's.
template <class I>
class JobPart : public I {
public:
    JobPart(IBackgroundCopyJob* outer, std::shared_ptr<JobData> data)
        : outer_(outer), data_(std::move(data)) {}
    HRESULT STDMETHODCALLTYPE QueryInterface(REFIID riid, void** out) override {
        return outer_->QueryInterface(riid, out);
    }
    ULONG STDMETHODCALLTYPE AddRef() override { return outer_->AddRef(); }
    ULONG STDMETHODCALLTYPE Release() override { return outer_->Release(); }
    unsigned epoch() const { return epoch_; }

protected:
    IBackgroundCopyJob* outer_;
    std::shared_ptr<JobData> data_;
    const unsigned epoch_ = g_epoch.load();
};

// The job's IBackgroundCopyJobHttpOptions (up to 3).
class HttpPart : public JobPart<IBackgroundCopyJobHttpOptions3> {
public:
    using JobPart::JobPart;
#define HTTP_ENTER(name) \
    ENTER("Http." name); \
    Locked l;            \
    if (data_->gone)     \
    return winbits::kBgNotFound
    HRESULT STDMETHODCALLTYPE SetCustomHeaders(LPCWSTR v) override {
        HTTP_ENTER("SetCustomHeaders");
        data_->has_headers = v != nullptr;
        data_->headers = v ? v : L"";
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetCustomHeaders(LPWSTR* v) override {
        HTTP_ENTER("GetCustomHeaders");
        *v = nullptr;
        if (data_->headers_write_only)
            return E_ACCESSDENIED;  // as Windows, once MakeCustomHeadersWriteOnly was called
        if (!data_->has_headers) {
            *v = nullptr;
            return S_FALSE;  // as Windows: none set
        }
        return out_string(data_->headers, v);
    }
    HRESULT STDMETHODCALLTYPE SetSecurityFlags(ULONG v) override {
        HTTP_ENTER("SetSecurityFlags");
        data_->security_flags = v;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetSecurityFlags(ULONG* v) override {
        HTTP_ENTER("GetSecurityFlags");
        *v = data_->security_flags;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE SetHttpMethod(LPCWSTR v) override {
        HTTP_ENTER("SetHttpMethod");
        if (!v || !*v)
            return E_INVALIDARG;
        data_->http_method = v;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetHttpMethod(LPWSTR* v) override {
        HTTP_ENTER("GetHttpMethod");
        if (!data_->http_method.empty())
            return out_string(data_->http_method, v);
        return out_string(data_->type == BG_JOB_TYPE_DOWNLOAD ? L"GET" : L"BITS_POST", v);
    }
    HRESULT STDMETHODCALLTYPE MakeCustomHeadersWriteOnly() override {
        HTTP_ENTER("MakeCustomHeadersWriteOnly");
        data_->headers_write_only = true;
        return S_OK;  // "always S_OK"
    }
#undef HTTP_ENTER
    HRESULT STDMETHODCALLTYPE SetServerCertificateValidationInterface(IUnknown*) override {
        return E_NOTIMPL;
    }
    HRESULT STDMETHODCALLTYPE SetClientCertificateByID(BG_CERT_STORE_LOCATION, LPCWSTR,
                                                       BYTE*) override {
        return E_NOTIMPL;
    }
#define HTTP_ENTER(name) \
    ENTER("Http." name); \
    Locked l;            \
    if (data_->gone)     \
    return winbits::kBgNotFound
    HRESULT STDMETHODCALLTYPE SetClientCertificateByName(BG_CERT_STORE_LOCATION location,
                                                         LPCWSTR store, LPCWSTR subject) override {
        HTTP_ENTER("SetClientCertificateByName");
        if (location > BG_CERT_STORE_LOCATION_LOCAL_MACHINE_ENTERPRISE || !store || !subject)
            return E_INVALIDARG;
        data_->has_certificate = true;
        data_->cert_location = location;
        data_->cert_store = store;
        data_->cert_subject = subject;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE RemoveClientCertificate() override {
        HTTP_ENTER("RemoveClientCertificate");
        bool had = data_->has_certificate;
        data_->has_certificate = false;
        return had ? S_OK : S_FALSE;
    }
    HRESULT STDMETHODCALLTYPE GetClientCertificate(BG_CERT_STORE_LOCATION* location, LPWSTR* store,
                                                   BYTE** hash, LPWSTR* subject) override {
        HTTP_ENTER("GetClientCertificate");
        *store = *subject = nullptr;
        *hash = nullptr;
        if (!data_->has_certificate)
            return HRESULT_FROM_WIN32(RPC_X_BAD_STUB_DATA);  // none set, as Windows answers
        *location = data_->cert_location;
        *hash = static_cast<BYTE*>(CoTaskMemAlloc(20));
        if (!*hash)
            return E_OUTOFMEMORY;
        for (int i = 0; i < 20; ++i)
            (*hash)[i] = static_cast<BYTE>(i);
        HRESULT hr = out_string(data_->cert_store, store);
        if (SUCCEEDED(hr))
            hr = out_string(data_->cert_subject, subject);
        return hr;
    }
#undef HTTP_ENTER
};

// The job's IBitsTokenOptions (BITS 4.0; answered from job level 5). SetHelperToken
// keeps the SID of the calling thread's token (the double runs on the caller's thread).
class TokenPart : public JobPart<IBitsTokenOptions> {
public:
    using JobPart::JobPart;
#define TOKEN_ENTER(name) \
    ENTER("Token." name); \
    Locked l;             \
    if (data_->gone)      \
    return winbits::kBgNotFound
    HRESULT STDMETHODCALLTYPE SetHelperTokenFlags(DWORD flags) override {
        TOKEN_ENTER("SetHelperTokenFlags");
        if (flags & ~0x3u)  // BG_TOKEN_LOCAL_FILE | BG_TOKEN_NETWORK
            return E_INVALIDARG;
        data_->token_flags = flags;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetHelperTokenFlags(DWORD* flags) override {
        TOKEN_ENTER("GetHelperTokenFlags");
        *flags = data_->token_flags;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE SetHelperToken() override {
        TOKEN_ENTER("SetHelperToken");
        HANDLE token = nullptr;
        if (!OpenThreadToken(GetCurrentThread(), TOKEN_QUERY, TRUE, &token) &&
            !OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
            return HRESULT_FROM_WIN32(GetLastError());
        BYTE buffer[256];
        DWORD size = 0;
        BOOL ok = GetTokenInformation(token, TokenUser, buffer, sizeof buffer, &size);
        CloseHandle(token);
        wchar_t* sid = nullptr;
        if (!ok || !ConvertSidToStringSidW(reinterpret_cast<TOKEN_USER*>(buffer)->User.Sid, &sid))
            return HRESULT_FROM_WIN32(GetLastError());
        data_->helper_sid = sid;
        LocalFree(sid);
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE ClearHelperToken() override {
        TOKEN_ENTER("ClearHelperToken");
        data_->helper_sid.clear();
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetHelperTokenSid(LPWSTR* v) override {
        TOKEN_ENTER("GetHelperTokenSid");
        *v = nullptr;
        return data_->helper_sid.empty() ? S_OK : out_string(data_->helper_sid, v);
    }
#undef TOKEN_ENTER
};

class Job : public Object<IBackgroundCopyJob5> {
public:
    // The job's COM object: the live one where the server keeps identity, else new.
    // Called with g_lock held.
    static IBackgroundCopyJob* of(const std::shared_ptr<JobData>& data) {
        auto* kept = static_cast<Job*>(data->object);
        if (g_stable_identity && kept && kept->epoch() == g_epoch && kept->try_addref())
            return data->object;
        Job* j = new Job(data);
        if (g_stable_identity)
            data->object = j;
        return j;
    }
    ULONG STDMETHODCALLTYPE Release() override {
        ULONG r = --refs_;
        if (r == 0) {
            {
                Locked l;
                if (data_->object == this)
                    data_->object = nullptr;
            }
            delete this;
        }
        return r;
    }
    // Answers the job interfaces up to g_job_level, and the HTTP options from level 3.
    HRESULT STDMETHODCALLTYPE QueryInterface(REFIID riid, void** out) override {
        static Counter* counter = register_counter("Job.QueryInterface");
        const int http_level = riid == __uuidof(IBackgroundCopyJobHttpOptions3)   ? 6
                               : riid == __uuidof(IBackgroundCopyJobHttpOptions2) ? 5
                               : riid == __uuidof(IBackgroundCopyJobHttpOptions)  ? 3
                                                                                  : 0;
        if (out && http_level) {
            HRESULT fault = enter(*counter);
            if (FAILED(fault))
                return fault;
            *out = nullptr;
            if (g_job_level < http_level)
                return E_NOINTERFACE;
            AddRef();
            *out = static_cast<IBackgroundCopyJobHttpOptions3*>(&http_);
            return S_OK;
        }
        if (out && riid == __uuidof(IBitsTokenOptions)) {
            HRESULT fault = enter(*counter);
            if (FAILED(fault))
                return fault;
            *out = nullptr;
            if (g_job_level < 5)
                return E_NOINTERFACE;
            AddRef();
            *out = static_cast<IBitsTokenOptions*>(&token_);
            return S_OK;
        }
        const IID* levels[] = {&__uuidof(IBackgroundCopyJob), &__uuidof(IBackgroundCopyJob2),
                               &__uuidof(IBackgroundCopyJob3), &__uuidof(IBackgroundCopyJob4),
                               &__uuidof(IBackgroundCopyJob5)};
        switch (g_job_level) {
            case 1:
                return query(counter, riid, out, {levels[0]});
            case 2:
                return query(counter, riid, out, {levels[0], levels[1]});
            case 3:
                return query(counter, riid, out, {levels[0], levels[1], levels[2]});
            case 4:
                return query(counter, riid, out, {levels[0], levels[1], levels[2], levels[3]});
            default:
                return query(counter, riid, out,
                             {levels[0], levels[1], levels[2], levels[3], levels[4]});
        }
    }

private:
    explicit Job(std::shared_ptr<JobData> data)
        : data_(data), http_(this, data), token_(this, data) {}

public:
// A counted job method over the job's data, under the lock; a job out of the queue is
// not found, as with BITS.
#define JOB_ENTER(name) \
    ENTER("Job." name); \
    Locked l;           \
    if (data_->gone)    \
    return winbits::kBgNotFound
    HRESULT STDMETHODCALLTYPE AddFileSet(ULONG, BG_FILE_INFO*) override { return E_NOTIMPL; }
    HRESULT STDMETHODCALLTYPE AddFile(LPCWSTR url, LPCWSTR local) override {
        JOB_ENTER("AddFile");
        if (data_->state != BG_JOB_STATE_SUSPENDED && data_->state != BG_JOB_STATE_QUEUED)
            return winbits::kBgInvalidState;
        FileData f;
        f.remote = url;
        f.local = local;
        data_->files.push_back(f);
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE EnumFiles(IEnumBackgroundCopyFiles** out) override {
        JOB_ENTER("EnumFiles");
        std::vector<IBackgroundCopyFile*> files;
        for (size_t i = 0; i < data_->files.size(); ++i)
            files.push_back(new File(data_, i));
        static Counter* next = register_counter("EnumFiles.Next");
        static Counter* count = register_counter("EnumFiles.GetCount");
        *out = new FileEnum(next, count, std::move(files));
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE Suspend() override {
        JOB_ENTER("Suspend");
        data_->state = BG_JOB_STATE_SUSPENDED;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE Resume() override {
        JOB_ENTER("Resume");
        if (data_->files.empty())
            return winbits::kBgEmpty;
        if (data_->state == BG_JOB_STATE_SUSPENDED)
            data_->state = BG_JOB_STATE_QUEUED;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE Cancel() override {
        JOB_ENTER("Cancel");
        if (data_->state == BG_JOB_STATE_ACKNOWLEDGED || data_->state == BG_JOB_STATE_CANCELLED)
            return winbits::kBgInvalidState;  // as BITS: a finished job cannot be cancelled
        data_->state = BG_JOB_STATE_CANCELLED;
        leave_queue(*data_);
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE Complete() override {
        JOB_ENTER("Complete");
        if (data_->state != BG_JOB_STATE_TRANSFERRED)
            return winbits::kBgInvalidState;
        constexpr HRESULT kPartialComplete = 0x00200017;  // BG_S_PARTIAL_COMPLETE: none moved
        if (data_->type == BG_JOB_TYPE_DOWNLOAD && g_lands && entered_ != kPartialComplete)
            for (const FileData& f : data_->files)
                land(f);
        data_->state = BG_JOB_STATE_ACKNOWLEDGED;
        leave_queue(*data_);
        return entered_;
    }
    HRESULT STDMETHODCALLTYPE GetId(GUID* v) override {
        JOB_ENTER("GetId");
        *v = data_->id;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetType(BG_JOB_TYPE* v) override {
        JOB_ENTER("GetType");
        *v = data_->type;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetProgress(BG_JOB_PROGRESS* p) override {
        JOB_ENTER("GetProgress");
        // Summed from the files, as BITS does; unknown while any file's size is.
        *p = BG_JOB_PROGRESS{};
        for (const FileData& f : data_->files) {
            if (f.total == winbits::kSizeUnknown || p->BytesTotal == winbits::kSizeUnknown)
                p->BytesTotal = winbits::kSizeUnknown;
            else
                p->BytesTotal += f.total;
            p->BytesTransferred += f.transferred;
            p->FilesTransferred += f.completed ? 1 : 0;
        }
        p->FilesTotal = static_cast<ULONG>(data_->files.size());
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetTimes(BG_JOB_TIMES* t) override {
        JOB_ENTER("GetTimes");
        FILETIME* ft[3] = {&t->CreationTime, &t->ModificationTime, &t->TransferCompletionTime};
        for (int i = 0; i < 3; ++i) {
            ft[i]->dwLowDateTime = static_cast<DWORD>(data_->times[i]);
            ft[i]->dwHighDateTime = static_cast<DWORD>(data_->times[i] >> 32);
        }
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetState(BG_JOB_STATE* v) override {
        JOB_ENTER("GetState");
        *v = data_->state;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetError(IBackgroundCopyError** out) override {
        JOB_ENTER("GetError");
        if (data_->error == S_OK)
            return winbits::kBgErrorInformationUnavailable;
        *out = new Error(data_);
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetOwner(LPWSTR* v) override {
        JOB_ENTER("GetOwner");
        return out_string(data_->owner, v);
    }
    HRESULT STDMETHODCALLTYPE SetDisplayName(LPCWSTR v) override {
        JOB_ENTER("SetDisplayName");
        data_->name = v;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetDisplayName(LPWSTR* v) override {
        JOB_ENTER("GetDisplayName");
        return out_string(data_->name, v);
    }
    HRESULT STDMETHODCALLTYPE SetDescription(LPCWSTR v) override {
        JOB_ENTER("SetDescription");
        data_->description = v;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetDescription(LPWSTR* v) override {
        JOB_ENTER("GetDescription");
        return out_string(data_->description, v);
    }
    HRESULT STDMETHODCALLTYPE SetPriority(BG_JOB_PRIORITY v) override {
        JOB_ENTER("SetPriority");
        data_->priority = v;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetPriority(BG_JOB_PRIORITY* v) override {
        JOB_ENTER("GetPriority");
        *v = data_->priority;
        return S_OK;
    }

#undef JOB_ENTER
    HRESULT STDMETHODCALLTYPE TakeOwnership() override { return E_NOTIMPL; }

#define JOB_ENTER(name) \
    ENTER("Job." name); \
    Locked l;           \
    if (data_->gone)    \
    return winbits::kBgNotFound
// A counted getter and setter of one field of the job's data.
#define JOB_FIELD(Name, T, field)                        \
    HRESULT STDMETHODCALLTYPE Set##Name(T v) override {  \
        JOB_ENTER("Set" #Name);                          \
        data_->field = v;                                \
        return S_OK;                                     \
    }                                                    \
    HRESULT STDMETHODCALLTYPE Get##Name(T* v) override { \
        JOB_ENTER("Get" #Name);                          \
        *v = data_->field;                               \
        return S_OK;                                     \
    }
    JOB_FIELD(MinimumRetryDelay, ULONG, retry_delay)
    JOB_FIELD(NoProgressTimeout, ULONG, no_progress)
    JOB_FIELD(MaximumDownloadTime, ULONG, max_time)
    JOB_FIELD(PeerCachingFlags, DWORD, peer_flags)
    JOB_FIELD(NotifyFlags, ULONG, notify_flags)
    // Counted: winbits must never call it on others' jobs. The double keeps the callback
    // as BITS does (one reference, until replaced or the job leaves the queue), and one
    // more reference of the last one for fire(late=True), until reset().
    HRESULT STDMETHODCALLTYPE SetNotifyInterface(IUnknown* v) override {
        JOB_ENTER("SetNotifyInterface");
        if (v) {
            v->AddRef();
            v->AddRef();
            if (g_last_callback)
                g_last_callback->Release();
            g_last_callback = v;
        }
        if (data_->callback)
            data_->callback->Release();
        data_->callback = v;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetNotifyInterface(IUnknown** v) override {
        JOB_ENTER("GetNotifyInterface");
        *v = data_->callback;
        if (*v)
            (*v)->AddRef();
        return S_OK;
    }
#undef JOB_FIELD
    HRESULT STDMETHODCALLTYPE GetErrorCount(ULONG* v) override {
        JOB_ENTER("GetErrorCount");
        *v = data_->errors;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE SetProxySettings(BG_JOB_PROXY_USAGE usage, const WCHAR* list,
                                               const WCHAR* bypass) override {
        JOB_ENTER("SetProxySettings");
        if (usage > BG_JOB_PROXY_USAGE_AUTODETECT)
            return E_INVALIDARG;
        data_->proxy_usage = usage;
        data_->proxy_list = list ? list : L"";
        data_->proxy_bypass = bypass ? bypass : L"";
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetProxySettings(BG_JOB_PROXY_USAGE* usage, LPWSTR* list,
                                               LPWSTR* bypass) override {
        JOB_ENTER("GetProxySettings");
        *usage = data_->proxy_usage;
        HRESULT hr = out_string(data_->proxy_list, list);
        if (SUCCEEDED(hr))
            hr = out_string(data_->proxy_bypass, bypass);
        return hr;
    }
    // IBackgroundCopyJob2
    HRESULT STDMETHODCALLTYPE SetNotifyCmdLine(LPCWSTR program, LPCWSTR params) override {
        JOB_ENTER("SetNotifyCmdLine");
        data_->has_notify = program != nullptr;
        data_->notify_program = program ? program : L"";
        data_->notify_params = params ? params : L"";
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetNotifyCmdLine(LPWSTR* program, LPWSTR* params) override {
        JOB_ENTER("GetNotifyCmdLine");
        *program = *params = nullptr;
        if (!data_->has_notify)
            return S_OK;
        HRESULT hr = out_string(data_->notify_program, program);
        if (SUCCEEDED(hr))
            hr = out_string(data_->notify_params, params);
        return hr;
    }
    HRESULT STDMETHODCALLTYPE GetReplyProgress(BG_JOB_REPLY_PROGRESS* v) override {
        JOB_ENTER("GetReplyProgress");
        if (data_->type != BG_JOB_TYPE_UPLOAD_REPLY)
            return winbits::kBgInvalidState;
        v->BytesTotal = 5;
        v->BytesTransferred = 5;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetReplyData(byte** data, UINT64* size) override {
        JOB_ENTER("GetReplyData");
        if (data_->type != BG_JOB_TYPE_UPLOAD_REPLY)
            return winbits::kBgInvalidState;
        *data = static_cast<byte*>(CoTaskMemAlloc(5));
        if (!*data)
            return E_OUTOFMEMORY;
        memcpy(*data, "reply", 5);
        *size = 5;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE SetReplyFileName(LPCWSTR v) override {
        JOB_ENTER("SetReplyFileName");
        if (data_->type != BG_JOB_TYPE_UPLOAD_REPLY)
            return winbits::kBgInvalidState;
        data_->has_reply_name = v != nullptr;
        data_->reply_name = v ? v : L"";
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetReplyFileName(LPWSTR* v) override {
        JOB_ENTER("GetReplyFileName");
        if (!data_->has_reply_name) {
            *v = nullptr;
            return S_OK;
        }
        return out_string(data_->reply_name, v);
    }
    HRESULT STDMETHODCALLTYPE SetCredentials(BG_AUTH_CREDENTIALS* c) override {
        JOB_ENTER("SetCredentials");
        if (!c || c->Target < BG_AUTH_TARGET_SERVER || c->Target > BG_AUTH_TARGET_PROXY ||
            c->Scheme < BG_AUTH_SCHEME_BASIC || c->Scheme > BG_AUTH_SCHEME_PASSPORT)
            return E_INVALIDARG;
        const wchar_t* user = c->Credentials.Basic.UserName;
        data_->credentials.push_back(std::to_wstring(c->Target) + L"/" +
                                     std::to_wstring(c->Scheme) + L"/" + (user ? user : L""));
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE RemoveCredentials(BG_AUTH_TARGET target,
                                                BG_AUTH_SCHEME scheme) override {
        JOB_ENTER("RemoveCredentials");
        std::wstring prefix = std::to_wstring(target) + L"/" + std::to_wstring(scheme) + L"/";
        auto& c = data_->credentials;
        auto before = c.size();
        c.erase(std::remove_if(c.begin(), c.end(),
                               [&](const std::wstring& e) { return e.rfind(prefix, 0) == 0; }),
                c.end());
        return c.size() == before ? S_FALSE : S_OK;
    }
    // IBackgroundCopyJob3
    HRESULT STDMETHODCALLTYPE ReplaceRemotePrefix(LPCWSTR old_prefix, LPCWSTR new_prefix) override {
        JOB_ENTER("ReplaceRemotePrefix");
        if (!old_prefix || !new_prefix || !*old_prefix || !*new_prefix)
            return E_INVALIDARG;
        const std::wstring from = old_prefix;
        for (FileData& f : data_->files)
            if (f.remote.rfind(from, 0) == 0)
                f.remote = new_prefix + f.remote.substr(from.size());
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE AddFileWithRanges(LPCWSTR url, LPCWSTR local, DWORD count,
                                                BG_FILE_RANGE* ranges) override {
        JOB_ENTER("AddFileWithRanges");
        if (!url || !local || (count && !ranges))
            return E_INVALIDARG;
        FileData f;
        f.remote = url;
        f.local = local;
        f.ranges.assign(ranges, ranges + count);
        data_->files.push_back(f);
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE SetFileACLFlags(DWORD v) override {
        JOB_ENTER("SetFileACLFlags");
        if (v & ~0xFu)  // BG_COPY_FILE_OWNER | GROUP | DACL | SACL
            return E_INVALIDARG;
        data_->acl_flags = v;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetFileACLFlags(DWORD* v) override {
        JOB_ENTER("GetFileACLFlags");
        *v = data_->acl_flags;
        return S_OK;
    }
    // IBackgroundCopyJob4
    HRESULT STDMETHODCALLTYPE GetOwnerIntegrityLevel(ULONG* v) override {
        JOB_ENTER("GetOwnerIntegrityLevel");
        *v = 0x2000;  // SECURITY_MANDATORY_MEDIUM_RID
        return S_OK;
    }
    // IBackgroundCopyJob5: the properties BITS 5.0 knows, kept by id.
    HRESULT STDMETHODCALLTYPE SetProperty(BITS_JOB_PROPERTY_ID id,
                                          BITS_JOB_PROPERTY_VALUE v) override {
        JOB_ENTER("SetProperty");
        if (id < BITS_JOB_PROPERTY_ID_COST_FLAGS || id > BITS_JOB_PROPERTY_ON_DEMAND_MODE ||
            id == BITS_JOB_PROPERTY_NOTIFICATION_CLSID)
            return E_INVALIDARG;
        data_->properties[id] = v;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetProperty(BITS_JOB_PROPERTY_ID id,
                                          BITS_JOB_PROPERTY_VALUE* v) override {
        JOB_ENTER("GetProperty");
        auto found = data_->properties.find(id);
        if (found != data_->properties.end()) {
            *v = found->second;
            return S_OK;
        }
        *v = BITS_JOB_PROPERTY_VALUE{};
        if (id == BITS_JOB_PROPERTY_ID_COST_FLAGS)
            v->Dword = BITS_COST_STATE_TRANSFER_ALWAYS;
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetOwnerElevationState(BOOL* v) override {
        JOB_ENTER("GetOwnerElevationState");
        *v = FALSE;
        return S_OK;
    }
#undef JOB_ENTER

private:
    std::shared_ptr<JobData> data_;
    HttpPart http_;
    TokenPart token_;
};

using JobEnum = Enumerator<IEnumBackgroundCopyJobs, IBackgroundCopyJob>;

class Manager : public Object<IBackgroundCopyManager> {
public:
    HRESULT STDMETHODCALLTYPE QueryInterface(REFIID riid, void** out) override {
        return query(nullptr, riid, out, {&__uuidof(IBackgroundCopyManager)});
    }
    HRESULT STDMETHODCALLTYPE CreateJob(LPCWSTR name, BG_JOB_TYPE type, GUID* id,
                                        IBackgroundCopyJob** out) override {
        ENTER("Manager.CreateJob");
        auto job = std::make_shared<JobData>();
        CoCreateGuid(&job->id);
        job->name = name;
        job->type = type;
        Locked l;
        g_jobs.push_back(job);
        *id = job->id;
        *out = Job::of(job);
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetJob(REFGUID id, IBackgroundCopyJob** out) override {
        ENTER("Manager.GetJob");
        Locked l;
        for (auto& job : g_jobs) {
            if (!job->gone && job->id == id) {
                *out = Job::of(job);
                return S_OK;
            }
        }
        return winbits::kBgNotFound;
    }
    HRESULT STDMETHODCALLTYPE EnumJobs(DWORD flags, IEnumBackgroundCopyJobs** out) override {
        ENTER("Manager.EnumJobs");
        Locked l;
        if ((flags & BG_JOB_ENUM_ALL_USERS) && !g_admin)
            return E_ACCESSDENIED;
        std::vector<IBackgroundCopyJob*> jobs;
        for (auto& job : g_jobs)
            if (!job->gone)
                jobs.push_back(Job::of(job));
        static Counter* next = register_counter("EnumJobs.Next");
        static Counter* count = register_counter("EnumJobs.GetCount");
        *out = new JobEnum(next, count, std::move(jobs));
        return S_OK;
    }
    HRESULT STDMETHODCALLTYPE GetErrorDescription(HRESULT hr, DWORD, LPWSTR* out) override {
        ENTER("Manager.GetErrorDescription");
        if (hr == winbits::kBgNotFound)
            return out_string(L"The requested job was not found.\r\n", out);
        return E_NOTIMPL;  // others fall back to the system message table
    }
};

class Factory : public IClassFactory {
public:
    HRESULT STDMETHODCALLTYPE QueryInterface(REFIID riid, void** out) override {
        if (riid == __uuidof(IUnknown) || riid == __uuidof(IClassFactory)) {
            *out = static_cast<IClassFactory*>(this);
            return S_OK;
        }
        *out = nullptr;
        return E_NOINTERFACE;
    }
    ULONG STDMETHODCALLTYPE AddRef() override { return 2; }  // static lifetime
    ULONG STDMETHODCALLTYPE Release() override { return 1; }
    HRESULT STDMETHODCALLTYPE CreateInstance(IUnknown* outer, REFIID riid, void** out) override {
        *out = nullptr;
        if (outer)
            return CLASS_E_NOAGGREGATION;
        static Counter* counter = register_counter("Factory.CreateInstance");
        HRESULT hr = enter(*counter);
        if (FAILED(hr))
            return hr;
        Manager* m = new Manager();
        hr = m->QueryInterface(riid, out);
        m->Release();
        return hr;
    }
    HRESULT STDMETHODCALLTYPE LockServer(BOOL) override { return S_OK; }
};

Factory g_factory;

// The class object lives in the MTA, registered by a thread that stays there for the
// life of the process (a registration ends with its apartment).
DWORD WINAPI registrar(void* ready) {
    CoInitializeEx(nullptr, COINIT_MULTITHREADED);
    DWORD cookie = 0;
    HRESULT hr = CoRegisterClassObject(kClsidDouble, &g_factory, CLSCTX_INPROC_SERVER,
                                       REGCLS_MULTIPLEUSE, &cookie);
    *static_cast<HRESULT*>(ready) = hr;
    for (;;)
        Sleep(INFINITE);
}

// --- Python interface for the tests ---------------------------------------------------

PyObject* py_register(PyObject*, PyObject*) {
    static HRESULT result = E_PENDING;
    if (result == E_PENDING) {
        HRESULT spy = CoRegisterMallocSpy(&g_spy);
        if (FAILED(spy))
            return PyErr_Format(PyExc_OSError, "CoRegisterMallocSpy: 0x%08lX", spy);
        HRESULT ready = E_PENDING;
        HANDLE t = CreateThread(nullptr, 0, registrar, &ready, 0, nullptr);
        if (!t)
            return PyErr_SetFromWindowsErr(0);
        CloseHandle(t);
        Py_BEGIN_ALLOW_THREADS
        while (*static_cast<volatile HRESULT*>(&ready) == E_PENDING)
            Sleep(1);
        Py_END_ALLOW_THREADS
        result = ready;
    }
    if (FAILED(result))
        return PyErr_Format(PyExc_OSError, "CoRegisterClassObject: 0x%08lX", result);
    Py_RETURN_NONE;
}

bool parse_guid(PyObject* text, GUID* out) {
    wchar_t* w = PyUnicode_AsWideCharString(text, nullptr);
    if (!w)
        return false;
    HRESULT hr = CLSIDFromString(w, out);
    PyMem_Free(w);
    if (FAILED(hr)) {
        PyErr_SetString(PyExc_ValueError, "bad GUID string");
        return false;
    }
    return true;
}

PyObject* guid_str(const GUID& g) {
    wchar_t buf[64];
    StringFromGUID2(g, buf, 64);
    return PyUnicode_FromWideChar(buf, -1);
}

std::wstring wide(PyObject* s) {
    Py_ssize_t n = 0;
    wchar_t* w = PyUnicode_AsWideCharString(s, &n);
    std::wstring r = w ? std::wstring(w, static_cast<size_t>(n)) : std::wstring();
    PyMem_Free(w);
    return r;
}

PyObject* py_reset(PyObject*, PyObject* args, PyObject* kw) {
    static const char* names[] = {"file_level", "admin", "stable_identity", "delay_us", "job_level",
                                  "lands",      nullptr};
    int level = 5, admin = 0, stable = 1, job_level = 5, lands = 1;
    long delay_us = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|ipplip", const_cast<char**>(names), &level, &admin,
                                     &stable, &delay_us, &job_level, &lands))
        return nullptr;
    if (level < 1 || level > 6 || job_level < 1 || job_level > 6)
        return PyErr_Format(PyExc_ValueError, "file_level 1..6, job_level 1..6");
    g_job_level = job_level;
    Locked l;
    for (auto& j : g_jobs)
        leave_queue(*j);
    if (g_last_callback)
        g_last_callback->Release();
    g_last_callback = nullptr;
    g_jobs.clear();
    for (Counter* c = g_counters.load(); c; c = c->next)
        c->calls = 0;
    g_faults.clear();
    g_any_fault = false;
    g_hold.clear();
    g_holding = false;
    SetEvent(g_hold_release);
    g_file_level = level;
    g_lands = lands != 0;
    g_admin = admin != 0;
    g_stable_identity = stable != 0;
    g_delay_us = delay_us;
    g_strings = 0;
    AcquireSRWLockExclusive(&g_spy_lock);
    g_outstanding.clear();
    ReleaseSRWLockExclusive(&g_spy_lock);
    Py_RETURN_NONE;
}

std::shared_ptr<JobData> find(const GUID& id) {
    for (auto& j : g_jobs)
        if (j->id == id)
            return j;
    return nullptr;
}

// The job a GUID string names, or null with ValueError or KeyError set. Call with g_lock held.
std::shared_ptr<JobData> job_arg(PyObject* text) {
    GUID id;
    if (!parse_guid(text, &id))
        return nullptr;
    auto job = find(id);
    if (!job)
        PyErr_SetString(PyExc_KeyError, "no such job");
    return job;
}

PyObject* py_add_job(PyObject*, PyObject* args, PyObject* kw) {
    static const char* names[] = {"name",          "state",      "description", "owner",
                                  "priority",      "type",       "times",       "error",
                                  "error_context", "error_file", nullptr};
    PyObject *name, *description = nullptr, *owner = nullptr;
    int state = BG_JOB_STATE_SUSPENDED, priority = BG_JOB_PRIORITY_NORMAL, type = 0;
    unsigned long long t0 = 0, t1 = 0, t2 = 0;
    unsigned long error = 0;
    int context = 0, error_file = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "U|iUUii(KKK)kii", const_cast<char**>(names), &name,
                                     &state, &description, &owner, &priority, &type, &t0, &t1, &t2,
                                     &error, &context, &error_file))
        return nullptr;
    auto job = std::make_shared<JobData>();
    CoCreateGuid(&job->id);
    job->name = wide(name);
    job->description = description ? wide(description) : L"";
    job->owner = owner ? wide(owner) : L"S-1-5-21-1000";
    job->state = static_cast<BG_JOB_STATE>(state);
    job->priority = static_cast<BG_JOB_PRIORITY>(priority);
    job->type = static_cast<BG_JOB_TYPE>(type);
    job->times[0] = t0;
    job->times[1] = t1;
    job->times[2] = t2;
    job->error = static_cast<HRESULT>(error);
    job->error_context = static_cast<BG_ERROR_CONTEXT>(context);
    job->error_file = error_file;
    Locked l;
    g_jobs.push_back(job);
    return guid_str(job->id);
}

PyObject* py_add_file(PyObject*, PyObject* args, PyObject* kw) {
    static const char* names[] = {"job",         "remote",           "local",     "total",
                                  "transferred", "completed",        "from_peer", "from_origin",
                                  "from_peers",  "response_headers", nullptr};
    PyObject *job_id, *remote, *local, *headers = nullptr;
    unsigned long long total = winbits::kSizeUnknown, transferred = 0, origin = 0, peers = 0;
    int completed = 0, from_peer = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "UUU|KKppKKU", const_cast<char**>(names), &job_id,
                                     &remote, &local, &total, &transferred, &completed, &from_peer,
                                     &origin, &peers, &headers))
        return nullptr;
    FileData f;
    f.remote = wide(remote);
    f.local = wide(local);
    f.total = total;
    f.transferred = transferred;
    f.completed = completed != 0;
    f.from_peer = from_peer != 0;
    f.from_origin = origin;
    f.from_peers = peers;
    if (headers)
        f.response_headers = wide(headers);
    Locked l;
    auto job = job_arg(job_id);
    if (!job)
        return nullptr;
    job->files.push_back(f);
    Py_RETURN_NONE;
}

PyObject* py_set_state(PyObject*, PyObject* args) {
    PyObject* job_id;
    int state;
    if (!PyArg_ParseTuple(args, "Ui", &job_id, &state))
        return nullptr;
    Locked l;
    auto job = job_arg(job_id);
    if (!job)
        return nullptr;
    job->state = static_cast<BG_JOB_STATE>(state);
    Py_RETURN_NONE;
}

PyObject* py_job_state(PyObject*, PyObject* args) {
    PyObject* job_id;
    if (!PyArg_ParseTuple(args, "U", &job_id))
        return nullptr;
    Locked l;
    auto job = job_arg(job_id);
    if (!job)
        return nullptr;
    return Py_BuildValue("(iO)", job->state, job->gone ? Py_True : Py_False);
}

// The credentials set on a job, as "target/scheme/user" (the double keeps no password).
PyObject* py_credentials(PyObject*, PyObject* args) {
    PyObject* job_id;
    if (!PyArg_ParseTuple(args, "U", &job_id))
        return nullptr;
    Locked l;
    auto job = job_arg(job_id);
    if (!job)
        return nullptr;
    PyObject* list = PyList_New(0);
    if (!list)
        return nullptr;
    for (const auto& c : job->credentials) {
        PyObject* item = PyUnicode_FromWideChar(c.c_str(), static_cast<Py_ssize_t>(c.size()));
        if (!item || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return nullptr;
        }
        Py_DECREF(item);
    }
    return list;
}

PyObject* py_restart(PyObject*, PyObject*) {
    ++g_epoch;
    Py_RETURN_NONE;
}

PyObject* py_hold(PyObject*, PyObject* args) {
    const char* method;
    if (!PyArg_ParseTuple(args, "s", &method))
        return nullptr;
    ResetEvent(g_hold_reached);
    ResetEvent(g_hold_release);
    Locked l;
    g_hold = method;
    g_holding = true;
    Py_RETURN_NONE;
}

PyObject* py_held(PyObject*, PyObject* args) {
    double seconds;
    if (!PyArg_ParseTuple(args, "d", &seconds))
        return nullptr;
    DWORD got;
    Py_BEGIN_ALLOW_THREADS
    got = WaitForSingleObject(g_hold_reached, static_cast<DWORD>(seconds * 1000));
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(got == WAIT_OBJECT_0);
}

PyObject* py_release(PyObject*, PyObject*) {
    {
        Locked l;
        g_hold.clear();
        g_holding = false;
    }
    SetEvent(g_hold_release);
    Py_RETURN_NONE;
}

PyObject* py_fail(PyObject*, PyObject* args, PyObject* kw) {
    static const char* names[] = {"method", "hresult", "times", nullptr};
    const char* method;
    unsigned long hr;
    long times = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sk|l", const_cast<char**>(names), &method, &hr,
                                     &times))
        return nullptr;
    Locked l;
    g_faults[method] = Fault{static_cast<HRESULT>(hr), times};
    g_any_fault = true;
    Py_RETURN_NONE;
}

// A new IBackgroundCopyFile4* (one reference, the caller's) for benchmarks that call it
// through comtypes or a hand-declared ctypes vtable; give it back with release_pointer.
PyObject* py_file4_pointer(PyObject*, PyObject* args) {
    PyObject* job_id;
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "Un", &job_id, &index))
        return nullptr;
    Locked l;
    auto job = job_arg(job_id);
    if (!job)
        return nullptr;
    if (index < 0 || static_cast<size_t>(index) >= job->files.size())
        return PyErr_Format(PyExc_KeyError, "no such file");
    IBackgroundCopyFile4* f = new File(job, static_cast<size_t>(index));
    return PyLong_FromVoidPtr(f);
}

PyObject* py_release_pointer(PyObject*, PyObject* arg) {
    auto* p = static_cast<IUnknown*>(PyLong_AsVoidPtr(arg));
    if (!p)
        return nullptr;
    p->Release();
    Py_RETURN_NONE;
}

// Updates a file's counters, as a transfer would.
PyObject* py_set_file(PyObject*, PyObject* args, PyObject* kw) {
    static const char* names[] = {"job",         "index",      "transferred", "completed",
                                  "from_origin", "from_peers", "total",       nullptr};
    PyObject* job_id;
    Py_ssize_t index;
    unsigned long long transferred, origin = 0, peers = 0, total = 0;
    int completed = 0;
    int has_total = 0;
    PyObject* total_obj = nullptr;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "UnK|pKKO", const_cast<char**>(names), &job_id,
                                     &index, &transferred, &completed, &origin, &peers, &total_obj))
        return nullptr;
    if (total_obj) {
        total = PyLong_AsUnsignedLongLong(total_obj);
        if (PyErr_Occurred())
            return nullptr;
        has_total = 1;
    }
    Locked l;
    auto job = job_arg(job_id);
    if (!job)
        return nullptr;
    if (index < 0 || static_cast<size_t>(index) >= job->files.size())
        return PyErr_Format(PyExc_KeyError, "no such file");
    FileData& f = job->files[static_cast<size_t>(index)];
    f.transferred = transferred;
    f.completed = completed != 0;
    f.from_origin = origin;
    f.from_peers = peers;
    if (has_total)
        f.total = total;
    Py_RETURN_NONE;
}

// Takes a job out of the queue behind winbits' back, as another program would.
// fire(job, kind, late=False): BITS calls back the job's notify interface (kind:
// "transferred", "error", "modification" or "file"); late: the last one ever registered,
// even after it was taken away. -> whether there was one to call.
PyObject* py_fire(PyObject*, PyObject* args, PyObject* kw) {
    static const char* names[] = {"job", "kind", "late", nullptr};
    PyObject* job_id;
    const char* kind;
    int late = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Us|p", const_cast<char**>(names), &job_id, &kind,
                                     &late))
        return nullptr;
    IBackgroundCopyCallback2* cb = nullptr;
    {
        Locked l;
        auto job = job_arg(job_id);
        if (!job)
            return nullptr;
        IUnknown* target = late ? g_last_callback : job->callback;
        if (target)
            target->QueryInterface(__uuidof(IBackgroundCopyCallback2),
                                   reinterpret_cast<void**>(&cb));
    }
    if (!cb)
        Py_RETURN_FALSE;
    std::string k = kind;
    HRESULT hr;
    Py_BEGIN_ALLOW_THREADS  // as BITS: on another thread than the waiter's, no GIL
    if (k == "transferred")
        hr = cb->JobTransferred(nullptr);
    else if (k == "error")
        hr = cb->JobError(nullptr, nullptr);
    else if (k == "modification")
        hr = cb->JobModification(nullptr, 0);
    else
        hr = cb->FileTransferred(nullptr, nullptr);
    cb->Release();
    Py_END_ALLOW_THREADS
    if (FAILED(hr))
        return PyErr_Format(PyExc_OSError, "the callback returned 0x%08lX", hr);
    Py_RETURN_TRUE;
}

PyObject* py_notify_flags(PyObject*, PyObject* args) {
    PyObject* job_id;
    if (!PyArg_ParseTuple(args, "U", &job_id))
        return nullptr;
    Locked l;
    auto job = job_arg(job_id);
    if (!job)
        return nullptr;
    return Py_BuildValue("(kO)", job->notify_flags, job->callback ? Py_True : Py_False);
}

PyObject* py_remove_job(PyObject*, PyObject* args) {
    PyObject* job_id;
    if (!PyArg_ParseTuple(args, "U", &job_id))
        return nullptr;
    Locked l;
    auto job = job_arg(job_id);
    if (!job)
        return nullptr;
    leave_queue(*job);
    Py_RETURN_NONE;
}

PyObject* py_calls(PyObject*, PyObject*) {
    PyObject* d = PyDict_New();
    if (!d)
        return nullptr;
    for (Counter* c = g_counters.load(); c; c = c->next) {
        long count = c->calls.load();
        if (count == 0)
            continue;
        PyObject* v = PyLong_FromLong(count);
        if (!v || PyDict_SetItemString(d, c->name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return nullptr;
        }
        Py_DECREF(v);
    }
    return d;
}

PyObject* py_clear_calls(PyObject*, PyObject*) {
    for (Counter* c = g_counters.load(); c; c = c->next)
        c->calls = 0;
    Py_RETURN_NONE;
}

PyObject* py_live(PyObject*, PyObject*) {
    return PyLong_FromLong(g_live.load());
}

PyObject* py_clsid(PyObject*, PyObject*) {
    return guid_str(kClsidDouble);
}

// (strings handed out since the last reset, of those not freed yet)
PyObject* py_strings(PyObject*, PyObject*) {
    AcquireSRWLockExclusive(&g_spy_lock);
    size_t outstanding = g_outstanding.size();
    ReleaseSRWLockExclusive(&g_spy_lock);
    return Py_BuildValue("(ln)", g_strings.load(), static_cast<Py_ssize_t>(outstanding));
}

// The benchmarks' floor: the (from_origin, from_peers) tuple that winbits' File.peer_stats()
// builds, built the same way without the COM call and its GIL release.
PyObject* py_peer_stats_floor(PyObject*, PyObject*) {
    UINT64 from_origin = 1234567, from_peers = 89;
    return Py_BuildValue("(KK)", from_origin, from_peers);
}

// --- Allocation failures, as CPython's own _testcapi.set_nomemory does it ---------------
// While on, allocations number [start, stop) of the MEM and OBJ domains made by the thread
// that armed it fail (stop 0: every one from start on), so that a test can fail each allocation of
// a call in turn. The allocator API is not in the limited API this double is built with; it is
// found in the interpreter's DLL (sys.dllhandle), with the layout CPython documents for it.

struct Allocator {  // PyMemAllocatorEx
    void* ctx;
    void* (*malloc)(void*, size_t);
    void* (*calloc)(void*, size_t, size_t);
    void* (*realloc)(void*, void*, size_t);
    void (*free)(void*, void*);
};
enum { kDomainMem = 1, kDomainObj = 2 };  // PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ
using AllocatorFn = void (*)(int, Allocator*);

struct NoMemory {
    AllocatorFn get = nullptr, set = nullptr;
    Allocator base_mem{}, base_obj{};
    std::atomic<long> count{0};
    long start = 0, stop = 0;
    bool on = false;
    DWORD thread = 0;  // only the thread that armed it: another test's server thread
                       // allocating meanwhile must not die of it (seen here)
};
NoMemory g_nomem;

bool allocation_fails() {
    if (GetCurrentThreadId() != g_nomem.thread)
        return false;
    long n = g_nomem.count.fetch_add(1);
    return n >= g_nomem.start && (g_nomem.stop == 0 || n < g_nomem.stop);
}

void* nm_malloc(void* ctx, size_t size) {
    auto* base = static_cast<Allocator*>(ctx);
    return allocation_fails() ? nullptr : base->malloc(base->ctx, size);
}

void* nm_calloc(void* ctx, size_t n, size_t size) {
    auto* base = static_cast<Allocator*>(ctx);
    return allocation_fails() ? nullptr : base->calloc(base->ctx, n, size);
}

void* nm_realloc(void* ctx, void* p, size_t size) {
    auto* base = static_cast<Allocator*>(ctx);
    return allocation_fails() ? nullptr : base->realloc(base->ctx, p, size);
}

void nm_free(void* ctx, void* p) {
    auto* base = static_cast<Allocator*>(ctx);
    base->free(base->ctx, p);
}

bool find_allocator_api() {
    if (g_nomem.set)
        return true;
    PyObject* handle = PySys_GetObject("dllhandle");  // borrowed
    HMODULE dll = handle ? static_cast<HMODULE>(PyLong_AsVoidPtr(handle)) : nullptr;
    if (!dll) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "no sys.dllhandle");
        return false;
    }
    g_nomem.get = reinterpret_cast<AllocatorFn>(
        reinterpret_cast<void (*)()>(GetProcAddress(dll, "PyMem_GetAllocator")));
    g_nomem.set = reinterpret_cast<AllocatorFn>(
        reinterpret_cast<void (*)()>(GetProcAddress(dll, "PyMem_SetAllocator")));
    if (!g_nomem.get || !g_nomem.set) {
        g_nomem.set = nullptr;
        PyErr_SetString(PyExc_RuntimeError, "PyMem_SetAllocator not found");
        return false;
    }
    return true;
}

PyObject* py_nomemory(PyObject*, PyObject* args) {
    long start = 0, stop = 0;
    if (!PyArg_ParseTuple(args, "l|l", &start, &stop) || !find_allocator_api())
        return nullptr;
    g_nomem.start = start;
    g_nomem.stop = stop;
    g_nomem.count = 0;
    g_nomem.thread = GetCurrentThreadId();
    if (!g_nomem.on) {
        g_nomem.get(kDomainMem, &g_nomem.base_mem);
        g_nomem.get(kDomainObj, &g_nomem.base_obj);
        Allocator mem = {&g_nomem.base_mem, nm_malloc, nm_calloc, nm_realloc, nm_free};
        Allocator obj = {&g_nomem.base_obj, nm_malloc, nm_calloc, nm_realloc, nm_free};
        g_nomem.set(kDomainMem, &mem);
        g_nomem.set(kDomainObj, &obj);
        g_nomem.on = true;
    }
    Py_RETURN_NONE;
}

PyObject* py_nomemory_off(PyObject*, PyObject*) {
    if (g_nomem.on) {
        g_nomem.set(kDomainMem, &g_nomem.base_mem);
        g_nomem.set(kDomainObj, &g_nomem.base_obj);
        g_nomem.on = false;
    }
    return PyLong_FromLong(g_nomem.count.load());  // allocations seen while on
}

PyMethodDef methods[] = {
    {"register", py_register, METH_NOARGS, "Register the double's class object (idempotent)."},
    {"clsid", py_clsid, METH_NOARGS, "The double's CLSID as a string."},
    {"reset", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_reset)),
     METH_VARARGS | METH_KEYWORDS, "reset(file_level=5, admin=False, ..., lands=True)"},
    {"add_job", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_add_job)),
     METH_VARARGS | METH_KEYWORDS, "add_job(name, state=3, ...) -> id string"},
    {"add_file", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_add_file)),
     METH_VARARGS | METH_KEYWORDS, "add_file(job, remote, local, total, transferred, ...)"},
    {"set_state", py_set_state, METH_VARARGS, "set_state(job, state)"},
    {"job_state", py_job_state, METH_VARARGS, "job_state(job) -> (state, gone)"},
    {"credentials", py_credentials, METH_VARARGS, "credentials(job) -> ['target/scheme/user']"},
    {"restart", py_restart, METH_NOARGS, "The service restarted: every object is dead."},
    {"hold", py_hold, METH_VARARGS, "hold(method): its calls wait for release()"},
    {"held", py_held, METH_VARARGS, "held(seconds) -> whether a held call arrived"},
    {"release", py_release, METH_NOARGS, "Let the held calls go on."},
    {"fail", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_fail)),
     METH_VARARGS | METH_KEYWORDS, "fail(method, hresult, times=-1)"},
    {"file4_pointer", py_file4_pointer, METH_VARARGS, "file4_pointer(job, index) -> address"},
    {"release_pointer", py_release_pointer, METH_O, "Release a pointer from file4_pointer."},
    {"peer_stats_floor", py_peer_stats_floor, METH_NOARGS, "The benchmarks' floor (no COM call)."},
    {"set_file", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_set_file)),
     METH_VARARGS | METH_KEYWORDS, "set_file(job, index, transferred, completed=False, ...)"},
    {"remove_job", py_remove_job, METH_VARARGS, "remove_job(job): out of the queue"},
    {"fire", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(py_fire)),
     METH_VARARGS | METH_KEYWORDS, "fire(job, kind, late=False) -> whether a callback ran"},
    {"notify_flags", py_notify_flags, METH_VARARGS,
     "notify_flags(job) -> (flags, whether a notify interface is set)"},
    {"calls", py_calls, METH_NOARGS, "Calls per method since the last reset."},
    {"clear_calls", py_clear_calls, METH_NOARGS, "Zero the call counts."},
    {"live", py_live, METH_NOARGS, "COM objects of the double alive now."},
    {"strings", py_strings, METH_NOARGS, "(strings handed out, of those not yet freed)"},
    {"nomemory", py_nomemory, METH_VARARGS, "nomemory(start, stop=0): allocations fail"},
    {"nomemory_off", py_nomemory_off, METH_NOARGS, "Allocations work again; -> how many ran"},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef_Slot slots[] = {{0, nullptr}};
PyModuleDef def = {PyModuleDef_HEAD_INIT,
                   "_bitsdouble",
                   "BITS test double.",
                   0,
                   methods,
                   slots,
                   nullptr,
                   nullptr,
                   nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__bitsdouble(void) {
    return PyModuleDef_Init(&def);
}
