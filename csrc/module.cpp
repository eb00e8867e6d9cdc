// winbits._native: the CPython binding over the COM core. Heap types with module state,
// multi-phase init, stable ABI 3.10. Every batch of COM calls runs with the GIL released
// (and touches no Python object); every failed HRESULT leaves through raise_hresult().
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <csignal>
#include <cstdio>

#include "com_core.h"
#include "poller.h"

using namespace winbits;

namespace {

// The HRESULTs that mean "the service went away", read from winbits._errors.SERVICE_GONE
// at import: the one table, shared with the facade.
constexpr int kMaxServiceGone = 32;

struct ModuleState {
    PyTypeObject* manager_type;
    PyTypeObject* job_type;
    PyTypeObject* file_type;
    PyTypeObject* poller_type;
    PyObject* error_factory;  // winbits._errors.from_hresult(hresult, message or None)
    int n_service_gone;
    unsigned long service_gone[kMaxServiceGone];
    Doorbell* bell;  // where the notifiers of asyncio waits ring (one reference)
};

// Tokens name a wait's notifier when it rings the doorbell: unique in the process.
std::atomic<unsigned long long> g_next_token{1};

struct ManagerObject {
    PyObject_HEAD
    Connection* conn;
};

// Jobs and files hold their manager: its connection keeps the MTA (and so their
// proxies) alive, and its closing is what they check before every call. `generation`
// is the connection's when the object was made: after BITS restarted, its proxy is dead.
// Both begin with the fields of ChildObject, which the shared templates read.
struct ChildObject {
    PyObject_HEAD
    ManagerObject* manager;
    unsigned generation;
};

struct JobObject {
    PyObject_HEAD
    ManagerObject* manager;
    unsigned generation;
    IBackgroundCopyJob* job;
    std::atomic<void*> ifaces[6];  // Job2, Job4, HttpOptions, Job3, Job5, HttpOptions2: once
    // wait()'s registration on this job, if any. The lock guards the fields only, never
    // held across a COM call or the GIL (zeroed memory is SRWLOCK_INIT).
    SRWLOCK listen_lock;
    Listening listening;
    bool listen_busy;
};

struct FileObject {
    PyObject_HEAD
    ManagerObject* manager;
    unsigned generation;
    FileHandle* handle;
};

struct PollerObject {
    PyObject_HEAD
    ManagerObject* manager;
    Poller* poller;
};

// A race with close(): the manager went away between the check and the call.
constexpr HRESULT kClosed = E_HANDLE;

ModuleState* state_of(PyObject* self) {
    return static_cast<ModuleState*>(PyType_GetModuleState(Py_TYPE(self)));
}

ChildObject* as_child(PyObject* self) {
    return reinterpret_cast<ChildObject*>(self);
}

// An owning PyObject reference: released on every path out of the scope that holds it.
class PyRef {
public:
    explicit PyRef(PyObject* p = nullptr) : p_(p) {}
    PyRef(const PyRef&) = delete;
    PyRef& operator=(const PyRef&) = delete;
    ~PyRef() { Py_XDECREF(p_); }
    PyObject* get() const { return p_; }
    explicit operator bool() const { return p_ != nullptr; }
    PyObject* release() {
        PyObject* p = p_;
        p_ = nullptr;
        return p;
    }
    void reset() { Py_CLEAR(p_); }

private:
    PyObject* p_;
};

template <class F>
HRESULT unlocked(F&& fn) {
    HRESULT hr;
    Py_BEGIN_ALLOW_THREADS
    hr = in_mta(fn);
    Py_END_ALLOW_THREADS
    return hr;
}

bool service_gone(const ModuleState* st, HRESULT hr) {
    for (int i = 0; i < st->n_service_gone; ++i)
        if (st->service_gone[i] == static_cast<unsigned long>(hr))
            return true;
    return false;
}

// --- Strings: the one conversion each way -------------------------------------------

PyObject* to_py(const wchar_t* s, size_t n) {
    return PyUnicode_FromWideChar(s, static_cast<Py_ssize_t>(n));
}
PyObject* to_py(const std::wstring& s) {
    return to_py(s.data(), s.size());
}
PyObject* to_py(const wchar_t* s) {
    return to_py(s ? s : L"", s ? wcslen(s) : 0);
}
PyObject* to_py_or_none(bool has, const std::wstring& s) {
    return has ? to_py(s) : Py_NewRef(Py_None);
}

// A str as NUL-terminated UTF-16 for COM (PyUnicode_AsWideCharString: no codec lookup).
// Strict: an embedded NUL or a lone surrogate raises ValueError, before any COM call.
class WideArg {
public:
    WideArg() = default;
    WideArg(const WideArg&) = delete;
    WideArg& operator=(const WideArg&) = delete;
    // Wiped before it is freed: passwords pass through here.
    ~WideArg() {
        if (p_)
            SecureZeroMemory(p_, static_cast<size_t>(n_) * sizeof(wchar_t));
        PyMem_Free(p_);
    }
    bool set(PyObject* text, const char* what) {
        Py_ssize_t& n = n_;
        p_ = PyUnicode_AsWideCharString(text, &n);
        if (!p_)
            return false;
        for (Py_ssize_t i = 0; i < n; ++i) {
            wchar_t c = p_[i];
            if (c >= 0xD800 && c < 0xDC00 && i + 1 < n && p_[i + 1] >= 0xDC00 &&
                p_[i + 1] < 0xE000) {
                ++i;  // a pair: one character beyond the BMP
                continue;
            }
            const char* why = c == 0                        ? "NUL characters"
                              : (c >= 0xD800 && c < 0xE000) ? "lone surrogates"
                                                            : nullptr;
            if (why) {
                PyErr_Format(PyExc_ValueError, "%s must not contain %s", what, why);
                return false;
            }
        }
        return true;
    }
    const wchar_t* get() const { return p_; }
    wchar_t* get() { return p_; }

private:
    wchar_t* p_ = nullptr;
    Py_ssize_t n_ = 0;
};

// --- The one place an HRESULT becomes a Python exception ----------------------------
//
// BITS' own text for it is fetched (GIL released), and winbits._errors.from_hresult picks
// the exception class. Where the service went away, the connection gets a fresh manager
// here, once per outage: `seen` is the generation of the failing job or file (null for
// the manager's own calls). A job or file from before the outage stays dead, and its
// error says to get it again.
PyObject* raise_hresult(ModuleState* st, Connection* conn, HRESULT hr,
                        const unsigned* seen = nullptr) {
    const bool gone = service_gone(st, hr);
    std::wstring text;
    Py_BEGIN_ALLOW_THREADS
    in_mta([&] {
        ComPtr<IBackgroundCopyManager> m;
        if (conn && gone && !conn->closed())
            conn->reconnect(seen ? *seen : conn->generation());
        if (conn && !gone)
            m = conn->manager();
        text = describe_hresult(m.Get(), hr);
        return S_OK;
    });
    Py_END_ALLOW_THREADS
    if (gone && seen) {
        if (text.empty())
            text = L"the BITS service went away";
        text +=
            L" (this object belongs to the BITS service from before: get the job again "
            L"from the manager)";
    }
    PyRef message(text.empty() ? Py_NewRef(Py_None) : to_py(text));
    if (!message)
        return nullptr;
    PyRef exc(PyObject_CallFunction(st->error_factory, "kO", static_cast<unsigned long>(hr),
                                    message.get()));
    if (exc)
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.get())), exc.get());
    return nullptr;
}

PyObject* raise_for(PyObject* self, HRESULT hr) {
    ChildObject* c = as_child(self);
    return raise_hresult(state_of(self), c->manager->conn, hr, &c->generation);
}

bool check_open(ManagerObject* m) {
    if (!m->conn || m->conn->closed()) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed BITS manager");
        return false;
    }
    return true;
}

bool guid_arg(const char* bytes, Py_ssize_t size, GUID* out) {
    if (size != sizeof(GUID)) {
        PyErr_SetString(PyExc_ValueError, "an id must be 16 bytes (uuid.UUID.bytes_le)");
        return false;
    }
    memcpy(out, bytes, sizeof(GUID));
    return true;
}

// --- Values to Python: one builder per shape ------------------------------------------

template <class T>
PyObject* py_int(const T& v) {
    return PyLong_FromLong(static_cast<long>(v));
}
template <class T>
PyObject* py_uint(const T& v) {
    return PyLong_FromUnsignedLongLong(static_cast<unsigned long long>(v));
}
PyObject* py_guid(const GUID& g) {
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(&g), sizeof g);
}
PyObject* py_bool(const BOOL& v) {
    return PyBool_FromLong(v);
}
PyObject* py_job_progress(const BG_JOB_PROGRESS& p) {
    return Py_BuildValue("(KKkk)", p.BytesTotal, p.BytesTransferred, p.FilesTotal,
                         p.FilesTransferred);
}
PyObject* py_file_progress(const BG_FILE_PROGRESS& p) {
    return Py_BuildValue("(KKN)", p.BytesTotal, p.BytesTransferred, PyBool_FromLong(p.Completed));
}
PyObject* py_times(const JobTimes& t) {
    return Py_BuildValue("(KKK)", t.creation, t.modification, t.transfer_completion);
}
PyObject* py_peer_stats(const PeerStats& s) {
    return Py_BuildValue("(KK)", s.from_origin, s.from_peers);
}
PyObject* py_string(const CoTaskString& s) {
    return to_py(s.get());
}
PyObject* py_string_or_none(const CoTaskString& s) {
    return s.empty() ? Py_NewRef(Py_None) : to_py(s.get());
}

// --- Object creation ----------------------------------------------------------------

PyObject* alloc(PyTypeObject* tp) {
    auto a = reinterpret_cast<allocfunc>(PyType_GetSlot(tp, Py_tp_alloc));
    return a(tp, 0);
}

void free_object(PyObject* self) {
    PyTypeObject* tp = Py_TYPE(self);
    auto f = reinterpret_cast<freefunc>(PyType_GetSlot(tp, Py_tp_free));
    f(self);
    Py_DECREF(tp);
}

// Releases COM pointers from Python code: in the MTA, with the GIL released.
template <class I>
void release_all(std::vector<ComPtr<I>>& items) {
    Py_BEGIN_ALLOW_THREADS
    in_mta([&] {
        items.clear();
        return S_OK;
    });
    Py_END_ALLOW_THREADS
}

// Takes over the reference in job; on failure it is released in the MTA.
PyObject* new_job(ManagerObject* m, ComPtr<IBackgroundCopyJob>& job) {
    PyObject* o = alloc(state_of(reinterpret_cast<PyObject*>(m))->job_type);
    if (!o) {
        IBackgroundCopyJob* orphan = job.Detach();
        Py_BEGIN_ALLOW_THREADS
        release_in_mta(orphan);
        Py_END_ALLOW_THREADS
        return nullptr;
    }
    auto* j = reinterpret_cast<JobObject*>(o);
    j->manager = reinterpret_cast<ManagerObject*>(Py_NewRef(reinterpret_cast<PyObject*>(m)));
    j->generation = m->conn->generation();
    j->job = job.Detach();
    return o;
}

PyObject* new_file(ManagerObject* m, ComPtr<IBackgroundCopyFile>& file) {
    auto* handle = new (std::nothrow) FileHandle(std::move(file));  // moved only if allocated
    if (!handle)
        return PyErr_NoMemory();
    PyObject* o = alloc(state_of(reinterpret_cast<PyObject*>(m))->file_type);
    if (!o) {
        Py_BEGIN_ALLOW_THREADS
        delete handle;
        Py_END_ALLOW_THREADS
        return nullptr;
    }
    auto* f = reinterpret_cast<FileObject*>(o);
    f->manager = reinterpret_cast<ManagerObject*>(Py_NewRef(reinterpret_cast<PyObject*>(m)));
    f->generation = m->conn->generation();
    f->handle = handle;
    return o;
}

// A list of objects made by make() from what an enumeration found; whatever is not
// wrapped (all of it, on failure) is released in the MTA.
template <class I, class Make>
PyObject* wrap_all(std::vector<ComPtr<I>>& items, Make make) {
    PyRef list(PyList_New(0));
    for (size_t i = 0; list && i < items.size(); ++i) {
        PyRef o(make(items[i]));
        if (!o || PyList_Append(list.get(), o.get()) < 0)
            list.reset();
    }
    release_all(items);
    return list.release();
}

// A job's or file's dealloc: what it holds is released with the GIL released (the
// proxies may need a round trip), then its manager.
template <class Obj, void (*Release)(Obj*)>
void child_dealloc(PyObject* self) {
    Obj* o = reinterpret_cast<Obj*>(self);
    Py_BEGIN_ALLOW_THREADS
    Release(o);
    Py_END_ALLOW_THREADS
    Py_XDECREF(reinterpret_cast<PyObject*>(o->manager));
    free_object(self);
}

// --- The shapes of a method: each a template put straight into a method table --------

// One read: read(value) runs in the MTA with the GIL released. A property the server does
// not implement (E_NOTIMPL, as Wine's owner, times or priority) reads as None.
template <class T, class Read>
PyObject* read_property(PyObject* self, Read read, PyObject* (*build)(const T&)) {
    if (!check_open(as_child(self)->manager))
        return nullptr;
    T value{};
    HRESULT hr = unlocked([&] { return read(value); });
    if (hr == E_NOTIMPL)
        Py_RETURN_NONE;
    if (FAILED(hr))
        return raise_for(self, hr);
    return build(value);
}

// The COM object behind a wrapper.
IBackgroundCopyJob* com_of(JobObject* o) {
    return o->job;
}
IBackgroundCopyFile* com_of(FileObject* o) {
    return o->handle->file();
}

// A getter of a number, enum or struct: (iface->*Get)(&value), built by Build.
template <class Obj, class I, class T, HRESULT (STDMETHODCALLTYPE I::*Get)(T*),
          PyObject* (*Build)(const T&)>
PyObject* getter(PyObject* self, PyObject*) {
    I* iface = com_of(reinterpret_cast<Obj*>(self));
    return read_property<T>(self, [&](T& v) { return (iface->*Get)(&v); }, Build);
}

// A getter of a string that BITS allocates; freed with CoTaskMemFree.
template <class Obj, class I, HRESULT (STDMETHODCALLTYPE I::*Get)(LPWSTR*)>
PyObject* string_getter(PyObject* self, PyObject*) {
    I* iface = com_of(reinterpret_cast<Obj*>(self));
    return read_property<CoTaskString>(
        self, [&](CoTaskString& s) { return (iface->*Get)(s.put()); }, py_string);
}

template <class T, HRESULT (STDMETHODCALLTYPE IBackgroundCopyJob::*Get)(T*),
          PyObject* (*Build)(const T&) = py_int<T>>
constexpr PyCFunction job_get = getter<JobObject, IBackgroundCopyJob, T, Get, Build>;
template <HRESULT (STDMETHODCALLTYPE IBackgroundCopyJob::*Get)(LPWSTR*)>
constexpr PyCFunction job_string = string_getter<JobObject, IBackgroundCopyJob, Get>;
template <class T, HRESULT (STDMETHODCALLTYPE IBackgroundCopyFile::*Get)(T*),
          PyObject* (*Build)(const T&)>
constexpr PyCFunction file_get = getter<FileObject, IBackgroundCopyFile, T, Get, Build>;
template <HRESULT (STDMETHODCALLTYPE IBackgroundCopyFile::*Get)(LPWSTR*)>
constexpr PyCFunction file_string = string_getter<FileObject, IBackgroundCopyFile, Get>;

// A control verb; returns its HRESULT, which may be a BITS success code
// (BG_S_PARTIAL_COMPLETE, BG_S_UNABLE_TO_DELETE_FILES) for the facade to act on.
template <HRESULT (STDMETHODCALLTYPE IBackgroundCopyJob::*Verb)()>
PyObject* job_verb(PyObject* self, PyObject*) {
    JobObject* j = reinterpret_cast<JobObject*>(self);
    if (!check_open(j->manager))
        return nullptr;
    HRESULT hr = unlocked([&] { return (j->job->*Verb)(); });
    if (FAILED(hr))
        return raise_for(self, hr);
    return PyLong_FromLong(hr);
}

// One write: write() runs in the MTA with the GIL released; None, or the error raised.
template <class Write>
PyObject* write_property(PyObject* self, Write write) {
    if (!check_open(as_child(self)->manager))
        return nullptr;
    HRESULT hr = unlocked(write);
    if (FAILED(hr))
        return raise_for(self, hr);
    Py_RETURN_NONE;
}

// The job as one of its richer interfaces, asked for once per job object: in the MTA,
// where the proxy lives, and kept (released with the job). fn(iface), or E_NOINTERFACE
// where this BITS lacks the interface.
template <class I>
constexpr int kJobSlot = -1;
template <>
constexpr int kJobSlot<IBackgroundCopyJob2> = 0;
template <>
constexpr int kJobSlot<IBackgroundCopyJob4> = 1;
template <>
constexpr int kJobSlot<IBackgroundCopyJobHttpOptions> = 2;
template <>
constexpr int kJobSlot<IBackgroundCopyJob3> = 3;
template <>
constexpr int kJobSlot<IBackgroundCopyJob5> = 4;
template <>
constexpr int kJobSlot<IBackgroundCopyJobHttpOptions2> = 5;

template <class I, class Fn>
HRESULT through(JobObject* j, Fn fn) {
    if constexpr (std::is_same_v<I, IBackgroundCopyJob>) {
        return fn(j->job);
    } else {
        std::atomic<void*>& slot = j->ifaces[kJobSlot<I>];
        void* have = slot.load(std::memory_order_acquire);
        if (!have) {
            I* got = nullptr;
            HRESULT hr = j->job->QueryInterface(__uuidof(I), reinterpret_cast<void**>(&got));
            if (FAILED(hr))
                return hr;
            void* expected = nullptr;
            if (slot.compare_exchange_strong(expected, got, std::memory_order_acq_rel)) {
                have = got;
            } else {
                got->Release();  // another thread kept the same interface first
                have = expected;
            }
        }
        return fn(static_cast<I*>(have));
    }
}

JobObject* job_of(PyObject* self) {
    return reinterpret_cast<JobObject*>(self);
}

// A method without arguments through one of the job's interfaces; None, or the error.
template <class I, HRESULT (STDMETHODCALLTYPE I::*Verb)()>
PyObject* job_verb_through(PyObject* self, PyObject*) {
    JobObject* job = job_of(self);
    return write_property(self,
                          [&] { return through<I>(job, [&](I* i) { return (i->*Verb)(); }); });
}

// A getter of a number, enum or struct through the job or one of its interfaces.
template <class I, class T, HRESULT (STDMETHODCALLTYPE I::*Get)(T*),
          PyObject* (*Build)(const T&) = py_uint<T>>
PyObject* job_iface_get(PyObject* self, PyObject*) {
    JobObject* job = job_of(self);
    return read_property<T>(
        self, [&](T& v) { return through<I>(job, [&](I* i) { return (i->*Get)(&v); }); }, Build);
}

// A setter of a number or enum through the job or one of its interfaces; the facade has
// checked the value's range.
template <class I, class T, HRESULT (STDMETHODCALLTYPE I::*Set)(T)>
PyObject* job_set_number(PyObject* self, PyObject* arg) {
    unsigned long v = PyLong_AsUnsignedLong(arg);
    if (v == static_cast<unsigned long>(-1) && PyErr_Occurred())
        return nullptr;
    JobObject* job = job_of(self);
    return write_property(
        self, [&] { return through<I>(job, [&](I* i) { return (i->*Set)(static_cast<T>(v)); }); });
}

// str or None into a WideArg: null for None where the method takes a null string.
bool optional_text(PyObject* arg, WideArg& out, const char* what) {
    if (arg == Py_None)
        return true;
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s must be str or None", what);
        return false;
    }
    return out.set(arg, what);
}

// A setter of a string through the job or one of its interfaces. None passes a null
// string (custom headers: remove them all).
template <class I, HRESULT (STDMETHODCALLTYPE I::*Set)(LPCWSTR)>
PyObject* job_set_string(PyObject* self, PyObject* arg) {
    WideArg text;
    if (!optional_text(arg, text, "the value"))
        return nullptr;
    JobObject* job = job_of(self);
    return write_property(
        self, [&] { return through<I>(job, [&](I* i) { return (i->*Set)(text.get()); }); });
}

// A string getter through the job or one of its interfaces; a null string reads as None.
template <class I, HRESULT (STDMETHODCALLTYPE I::*Get)(LPWSTR*)>
PyObject* job_iface_string(PyObject* self, PyObject*) {
    JobObject* job = job_of(self);
    return read_property<CoTaskString>(
        self,
        [&](CoTaskString& s) { return through<I>(job, [&](I* i) { return (i->*Get)(s.put()); }); },
        py_string_or_none);
}

// Two strings in one call: the proxy list and bypass list, the notify program and its
// parameters. (first or None, second or None).
struct StringPair {
    CoTaskString first, second;
};
PyObject* py_string_pair(const StringPair& p) {
    return Py_BuildValue("(NN)", py_string_or_none(p.first), py_string_or_none(p.second));
}

PyObject* job_notify_cmd_line(PyObject* self, PyObject*) {
    JobObject* job = job_of(self);
    return read_property<StringPair>(
        self,
        [&](StringPair& p) {
            return through<IBackgroundCopyJob2>(job, [&](IBackgroundCopyJob2* j2) {
                return j2->GetNotifyCmdLine(p.first.put(), p.second.put());
            });
        },
        py_string_pair);
}

PyObject* job_set_notify_cmd_line(PyObject* self, PyObject* args) {
    PyObject *program_obj = nullptr, *params_obj = nullptr;
    if (!PyArg_ParseTuple(args, "OO:set_notify_cmd_line", &program_obj, &params_obj))
        return nullptr;
    WideArg program, params;
    if (!optional_text(program_obj, program, "program") ||
        !optional_text(params_obj, params, "parameters"))
        return nullptr;
    JobObject* job = job_of(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyJob2>(job, [&](IBackgroundCopyJob2* j2) {
            return j2->SetNotifyCmdLine(program.get(), params.get());
        });
    });
}

// (usage, proxy list or None, bypass list or None)
struct ProxyInfo {
    BG_JOB_PROXY_USAGE usage = BG_JOB_PROXY_USAGE_PRECONFIG;
    StringPair lists;
};
PyObject* py_proxy(const ProxyInfo& p) {
    return Py_BuildValue("(kNN)", static_cast<unsigned long>(p.usage),
                         py_string_or_none(p.lists.first), py_string_or_none(p.lists.second));
}

PyObject* job_proxy(PyObject* self, PyObject*) {
    JobObject* job = job_of(self);
    return read_property<ProxyInfo>(
        self,
        [&](ProxyInfo& p) {
            return job->job->GetProxySettings(&p.usage, p.lists.first.put(), p.lists.second.put());
        },
        py_proxy);
}

PyObject* job_set_proxy(PyObject* self, PyObject* args) {
    unsigned long usage = 0;
    PyObject *list_obj = nullptr, *bypass_obj = nullptr;
    if (!PyArg_ParseTuple(args, "kOO:set_proxy", &usage, &list_obj, &bypass_obj))
        return nullptr;
    WideArg list, bypass;
    if (!optional_text(list_obj, list, "the proxy list") ||
        !optional_text(bypass_obj, bypass, "the bypass list"))
        return nullptr;
    JobObject* job = job_of(self);
    return write_property(self, [&] {
        return job->job->SetProxySettings(static_cast<BG_JOB_PROXY_USAGE>(usage), list.get(),
                                          bypass.get());
    });
}

// The client certificate (HttpOptions): (store location, store name, SHA-1 hash, subject)
struct ClientCertificate {
    BG_CERT_STORE_LOCATION location = BG_CERT_STORE_LOCATION_CURRENT_USER;
    CoTaskString store, subject;
    CoTaskPtr<BYTE> hash;  // 20 bytes
};
PyObject* py_client_certificate(const ClientCertificate& c) {
    PyRef hash(c.hash.get()
                   ? PyBytes_FromStringAndSize(reinterpret_cast<const char*>(c.hash.get()), 20)
                   : Py_NewRef(Py_None));
    if (!hash)
        return nullptr;
    return Py_BuildValue("(kNNN)", static_cast<unsigned long>(c.location),
                         py_string_or_none(c.store), hash.release(), py_string_or_none(c.subject));
}

PyObject* job_client_certificate(PyObject* self, PyObject*) {
    JobObject* job = job_of(self);
    return read_property<ClientCertificate>(
        self,
        [&](ClientCertificate& c) {
            return through<IBackgroundCopyJobHttpOptions>(
                job, [&](IBackgroundCopyJobHttpOptions* h) {
                    return h->GetClientCertificate(&c.location, c.store.put(), c.hash.put(),
                                                   c.subject.put());
                });
        },
        py_client_certificate);
}

PyObject* job_set_client_certificate(PyObject* self, PyObject* args) {
    unsigned long location = 0;
    PyObject *store_obj = nullptr, *subject_obj = nullptr;
    if (!PyArg_ParseTuple(args, "kUU:set_client_certificate", &location, &store_obj, &subject_obj))
        return nullptr;
    WideArg store, subject;
    if (!store.set(store_obj, "store") || !subject.set(subject_obj, "subject"))
        return nullptr;
    JobObject* job = job_of(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyJobHttpOptions>(job, [&](IBackgroundCopyJobHttpOptions* h) {
            return h->SetClientCertificateByName(static_cast<BG_CERT_STORE_LOCATION>(location),
                                                 store.get(), subject.get());
        });
    });
}

PyObject* py_reply_progress(const BG_JOB_REPLY_PROGRESS& p) {
    return Py_BuildValue("(KK)", p.BytesTotal, p.BytesTransferred);
}

// The reply of an upload-reply job, as bytes (BITS allocates it; freed here).
struct ReplyData {
    CoTaskPtr<byte> data;
    UINT64 size = 0;
};
PyObject* py_reply_data(const ReplyData& r) {
    if (r.size > static_cast<UINT64>(PY_SSIZE_T_MAX))
        return PyErr_NoMemory();
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(r.data.get()),
                                     r.data.get() ? static_cast<Py_ssize_t>(r.size) : 0);
}

PyObject* job_reply_data(PyObject* self, PyObject*) {
    JobObject* job = job_of(self);
    return read_property<ReplyData>(
        self,
        [&](ReplyData& r) {
            return through<IBackgroundCopyJob2>(job, [&](IBackgroundCopyJob2* j2) {
                return j2->GetReplyData(r.data.put(), &r.size);
            });
        },
        py_reply_data);
}

// IBackgroundCopyJob2::SetCredentials(target, scheme, user, password). The password's
// copy is wiped by WideArg as soon as the call returns; nothing of it is kept.
PyObject* job_set_credentials(PyObject* self, PyObject* args) {
    int target = 0, scheme = 0;
    PyObject *user_obj = nullptr, *password_obj = nullptr;
    if (!PyArg_ParseTuple(args, "iiUU:set_credentials", &target, &scheme, &user_obj, &password_obj))
        return nullptr;
    WideArg user, password;
    if (!user.set(user_obj, "the user name") || !password.set(password_obj, "the password"))
        return nullptr;
    BG_AUTH_CREDENTIALS c{};
    c.Target = static_cast<BG_AUTH_TARGET>(target);
    c.Scheme = static_cast<BG_AUTH_SCHEME>(scheme);
    c.Credentials.Basic.UserName = user.get();
    c.Credentials.Basic.Password = password.get();
    JobObject* job = job_of(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyJob2>(
            job, [&](IBackgroundCopyJob2* j2) { return j2->SetCredentials(&c); });
    });
}

PyObject* job_remove_credentials(PyObject* self, PyObject* args) {
    int target = 0, scheme = 0;
    if (!PyArg_ParseTuple(args, "ii:remove_credentials", &target, &scheme))
        return nullptr;
    JobObject* job = job_of(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyJob2>(job, [&](IBackgroundCopyJob2* j2) {
            return j2->RemoveCredentials(static_cast<BG_AUTH_TARGET>(target),
                                         static_cast<BG_AUTH_SCHEME>(scheme));
        });
    });
}

// --- Manager ------------------------------------------------------------------------

void manager_dealloc(PyObject* self) {
    Connection* c = reinterpret_cast<ManagerObject*>(self)->conn;
    Py_BEGIN_ALLOW_THREADS
    delete c;
    Py_END_ALLOW_THREADS
    free_object(self);
}

PyObject* manager_close(PyObject* self, PyObject*) {
    Connection* c = reinterpret_cast<ManagerObject*>(self)->conn;
    Py_BEGIN_ALLOW_THREADS
    c->close();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyObject* manager_closed(PyObject* self, void*) {
    return PyBool_FromLong(reinterpret_cast<ManagerObject*>(self)->conn->closed());
}

PyObject* manager_jobs(PyObject* self, PyObject* args) {
    int all_users = 0;
    if (!PyArg_ParseTuple(args, "p:jobs", &all_users))
        return nullptr;
    auto* m = reinterpret_cast<ManagerObject*>(self);
    if (!check_open(m))
        return nullptr;
    std::vector<ComPtr<IBackgroundCopyJob>> found;
    HRESULT hr = unlocked([&] {
        ComPtr<IBackgroundCopyManager> mgr = m->conn->manager();
        return mgr ? list_jobs(mgr.Get(), all_users != 0, found) : kClosed;
    });
    if (FAILED(hr)) {
        release_all(found);
        return raise_hresult(state_of(self), m->conn, hr);
    }
    return wrap_all(found, [m](ComPtr<IBackgroundCopyJob>& j) { return new_job(m, j); });
}

PyObject* manager_get_job(PyObject* self, PyObject* args) {
    const char* id = nullptr;
    Py_ssize_t size = 0;
    GUID guid;
    if (!PyArg_ParseTuple(args, "y#:get_job", &id, &size) || !guid_arg(id, size, &guid))
        return nullptr;
    auto* m = reinterpret_cast<ManagerObject*>(self);
    if (!check_open(m))
        return nullptr;
    ComPtr<IBackgroundCopyJob> job;
    HRESULT hr = unlocked([&] {
        ComPtr<IBackgroundCopyManager> mgr = m->conn->manager();
        return mgr ? mgr->GetJob(guid, job.put()) : kClosed;
    });
    if (FAILED(hr))
        return raise_hresult(state_of(self), m->conn, hr);
    return new_job(m, job);
}

PyObject* manager_create_job(PyObject* self, PyObject* args) {
    PyObject* name_obj = nullptr;
    int type = 0;
    if (!PyArg_ParseTuple(args, "Ui:create_job", &name_obj, &type))
        return nullptr;
    WideArg name;
    if (!name.set(name_obj, "name"))
        return nullptr;
    auto* m = reinterpret_cast<ManagerObject*>(self);
    if (!check_open(m))
        return nullptr;
    ComPtr<IBackgroundCopyJob> job;
    HRESULT hr = unlocked([&] {
        ComPtr<IBackgroundCopyManager> mgr = m->conn->manager();
        GUID id;
        return mgr ? mgr->CreateJob(name.get(), static_cast<BG_JOB_TYPE>(type), &id, job.put())
                   : kClosed;
    });
    if (FAILED(hr))
        return raise_hresult(state_of(self), m->conn, hr);
    return new_job(m, job);
}

PyObject* manager_poller(PyObject* self, PyObject* args) {
    int all_users = 0;
    if (!PyArg_ParseTuple(args, "p:poller", &all_users))
        return nullptr;
    auto* m = reinterpret_cast<ManagerObject*>(self);
    if (!check_open(m))
        return nullptr;
    auto* poller = new (std::nothrow) Poller(*m->conn, all_users != 0);
    if (!poller)
        return PyErr_NoMemory();
    PyObject* o = alloc(state_of(self)->poller_type);
    if (!o) {
        delete poller;  // holds no COM pointer yet
        return nullptr;
    }
    auto* p = reinterpret_cast<PollerObject*>(o);
    p->manager = reinterpret_cast<ManagerObject*>(Py_NewRef(self));
    p->poller = poller;
    return o;
}

PyObject* manager_describe(PyObject* self, PyObject* args) {
    unsigned long code = 0;
    if (!PyArg_ParseTuple(args, "k:describe", &code))
        return nullptr;
    auto* m = reinterpret_cast<ManagerObject*>(self);
    std::wstring text;
    unlocked([&] {
        ComPtr<IBackgroundCopyManager> mgr;
        if (!m->conn->closed())
            mgr = m->conn->manager();
        text = describe_hresult(mgr.Get(), static_cast<HRESULT>(code));
        return S_OK;
    });
    if (text.empty())
        Py_RETURN_NONE;
    return to_py(text);
}

PyMethodDef manager_methods[] = {
    {"close", manager_close, METH_NOARGS, "Release the BITS manager."},
    {"jobs", manager_jobs, METH_VARARGS, "jobs(all_users) -> list of Job"},
    {"get_job", manager_get_job, METH_VARARGS, "get_job(id_bytes_le) -> Job"},
    {"create_job", manager_create_job, METH_VARARGS, "create_job(name, type) -> Job"},
    {"describe", manager_describe, METH_VARARGS, "describe(hresult) -> str or None"},
    {"poller", manager_poller, METH_VARARGS, "poller(all_users) -> Poller"},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef manager_getset[] = {
    {"closed", manager_closed, nullptr, "True once close() was called.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot manager_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(manager_dealloc)},
    {Py_tp_methods, manager_methods},
    {Py_tp_getset, manager_getset},
    {Py_tp_doc, const_cast<char*>("A connection to a BITS manager.")},
    {0, nullptr},
};

// --- Job ----------------------------------------------------------------------------

JobObject* as_job(PyObject* self) {
    return reinterpret_cast<JobObject*>(self);
}

// The job's registration, if any, taken out of it under its lock (no COM call there),
// then undone in the MTA: the notify interface taken away and the flags put back.
void end_listening(JobObject* j) {
    AcquireSRWLockExclusive(&j->listen_lock);
    Listening l = j->listening;
    j->listening = Listening{};
    ReleaseSRWLockExclusive(&j->listen_lock);
    if (!l.notifier)
        return;
    IBackgroundCopyJob* job = j->job;
    in_mta([&] {
        stop_listening(job, l);
        return S_OK;
    });
}

void release_job(JobObject* j) {
    end_listening(j);  // a wait that never ended: put the job back
    for (auto& iface : j->ifaces)
        release_in_mta(static_cast<IUnknown*>(iface.exchange(nullptr)));
    release_in_mta(j->job);
}

// listen(ring=False) -> a token (> 0) with winbits' notifier registered on the job (for a
// job this process created), 0 where BITS refuses it (then wait() polls). With `ring`,
// every call from BITS also rings the module's doorbell with the token (asyncio waits).
PyObject* job_listen(PyObject* self, PyObject* args) {
    int ring = 0;
    if (!PyArg_ParseTuple(args, "|p:listen", &ring))
        return nullptr;
    JobObject* j = as_job(self);
    if (!check_open(j->manager))
        return nullptr;
    Doorbell* bell = ring ? state_of(self)->bell : nullptr;
    unsigned long long token = g_next_token++;
    AcquireSRWLockExclusive(&j->listen_lock);
    bool busy = j->listen_busy || j->listening.notifier;
    j->listen_busy = true;
    ReleaseSRWLockExclusive(&j->listen_lock);
    if (busy) {
        PyErr_SetString(PyExc_RuntimeError, "another wait() is listening on this job object");
        return nullptr;
    }
    Listening l;
    IBackgroundCopyJob* job = j->job;
    HRESULT hr = unlocked([&] { return listen(job, l, bell, token); });
    AcquireSRWLockExclusive(&j->listen_lock);
    j->listening = l;
    j->listen_busy = false;
    ReleaseSRWLockExclusive(&j->listen_lock);
    if (SUCCEEDED(hr))
        return PyLong_FromUnsignedLongLong(token);
    if (hr == E_NOTIMPL || hr == E_ACCESSDENIED || hr == E_NOINTERFACE || hr == kBgInvalidState)
        return PyLong_FromLong(0);
    return raise_for(self, hr);
}

// notified(milliseconds) -> whether BITS called back within that time. The GIL is
// released; a thread in a single-threaded apartment dispatches its messages meanwhile.
PyObject* job_notified(PyObject* self, PyObject* arg) {
    unsigned long ms = PyLong_AsUnsignedLong(arg);
    if (ms == static_cast<unsigned long>(-1) && PyErr_Occurred())
        return nullptr;
    JobObject* j = as_job(self);
    AcquireSRWLockExclusive(&j->listen_lock);
    Notifier* n = j->listening.notifier;
    if (n)
        n->AddRef();  // ours for the wait, whatever another thread does meanwhile
    ReleaseSRWLockExclusive(&j->listen_lock);
    if (!n) {
        PyErr_SetString(PyExc_RuntimeError, "not listening: call listen() first");
        return nullptr;
    }
    bool signalled;
    Py_BEGIN_ALLOW_THREADS
    HANDLE event = n->event();
    DWORD index = 0;
    HRESULT hr = CoWaitForMultipleHandles(COWAIT_DISPATCH_CALLS | COWAIT_DISPATCH_WINDOW_MESSAGES,
                                          ms, 1, &event, &index);
    if (hr == RPC_S_CALLPENDING)
        signalled = false;
    else if (SUCCEEDED(hr))
        signalled = true;
    else  // no COM on this thread, or flags this Windows does not know: a plain wait
        signalled = WaitForSingleObject(event, ms) == WAIT_OBJECT_0;
    n->Release();
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(signalled);
}

// unlisten(): the job's notify interface taken away and its flags put back.
PyObject* job_unlisten(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    Py_BEGIN_ALLOW_THREADS
    end_listening(j);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyObject* job_times(PyObject* self, PyObject*) {
    IBackgroundCopyJob* job = as_job(self)->job;
    return read_property<JobTimes>(
        self, [&](JobTimes& t) { return read_job_times(job, t); }, py_times);
}

// (hresult, context, description, context_description, protocol, remote_name, local_name)
// or None when the job has no error.
PyObject* job_error(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    if (!check_open(j->manager))
        return nullptr;
    JobErrorInfo e;
    HRESULT hr = unlocked([&] { return read_job_error(j->job, e); });
    if (hr == S_FALSE || hr == E_NOTIMPL)
        Py_RETURN_NONE;
    if (FAILED(hr))
        return raise_for(self, hr);
    return Py_BuildValue("(kiNNNNN)", static_cast<unsigned long>(e.code), e.context,
                         to_py_or_none(e.has_description, e.description),
                         to_py_or_none(e.has_context_description, e.context_description),
                         to_py_or_none(e.has_protocol, e.protocol),
                         to_py_or_none(e.has_file, e.remote_name),
                         to_py_or_none(e.has_file, e.local_name));
}

PyObject* job_files(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    if (!check_open(j->manager))
        return nullptr;
    std::vector<ComPtr<IBackgroundCopyFile>> found;
    HRESULT hr = unlocked([&] { return list_files(j->job, found); });
    if (FAILED(hr)) {
        release_all(found);
        return raise_for(self, hr);
    }
    ManagerObject* m = j->manager;
    return wrap_all(found, [m](ComPtr<IBackgroundCopyFile>& f) { return new_file(m, f); });
}

PyObject* job_add_file(PyObject* self, PyObject* args) {
    PyObject *url_obj = nullptr, *path_obj = nullptr;
    if (!PyArg_ParseTuple(args, "UU:add_file", &url_obj, &path_obj))
        return nullptr;
    WideArg url, path;
    if (!url.set(url_obj, "url") || !path.set(path_obj, "path"))
        return nullptr;
    JobObject* j = as_job(self);
    if (!check_open(j->manager))
        return nullptr;
    HRESULT hr = unlocked([&] { return j->job->AddFile(url.get(), path.get()); });
    if (FAILED(hr))
        return raise_for(self, hr);
    Py_RETURN_NONE;
}

// IBackgroundCopyJob3::AddFileWithRanges(url, path, [(offset, length)]); the facade has
// checked the ranges.
PyObject* job_add_file_ranges(PyObject* self, PyObject* args) {
    PyObject *url_obj = nullptr, *path_obj = nullptr, *ranges_obj = nullptr;
    if (!PyArg_ParseTuple(args, "UUO!:add_file_ranges", &url_obj, &path_obj, &PyList_Type,
                          &ranges_obj))
        return nullptr;
    WideArg url, path;
    if (!url.set(url_obj, "url") || !path.set(path_obj, "path"))
        return nullptr;
    Py_ssize_t n = PyList_Size(ranges_obj);
    std::vector<BG_FILE_RANGE> ranges;
    try {
        ranges.resize(static_cast<size_t>(n));
    } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* item = PyList_GetItem(ranges_obj, i);  // borrowed
        if (!PyArg_ParseTuple(item, "KK:range", &ranges[i].InitialOffset, &ranges[i].Length))
            return nullptr;
    }
    JobObject* job = job_of(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyJob3>(job, [&](IBackgroundCopyJob3* j3) {
            return j3->AddFileWithRanges(url.get(), path.get(), static_cast<DWORD>(n),
                                         ranges.data());
        });
    });
}

// IBackgroundCopyJob5's properties: one union, its member chosen by the property's id.
struct JobProperty {
    BITS_JOB_PROPERTY_ID id{};
    BITS_JOB_PROPERTY_VALUE value{};
};
PyObject* py_job_property(const JobProperty& p) {
    switch (p.id) {
        case BITS_JOB_PROPERTY_ID_COST_FLAGS:
        case BITS_JOB_PROPERTY_MINIMUM_NOTIFICATION_INTERVAL_MS:
            return PyLong_FromUnsignedLong(p.value.Dword);
        case BITS_JOB_PROPERTY_USE_STORED_CREDENTIALS:
            return PyLong_FromUnsignedLong(static_cast<unsigned long>(p.value.Target));
        case BITS_JOB_PROPERTY_MAX_DOWNLOAD_SIZE:
            return PyLong_FromUnsignedLongLong(p.value.Uint64);
        case BITS_JOB_PROPERTY_DYNAMIC_CONTENT:
        case BITS_JOB_PROPERTY_HIGH_PERFORMANCE:
        case BITS_JOB_PROPERTY_ON_DEMAND_MODE:
            return PyBool_FromLong(p.value.Enable);
        default:
            PyErr_Format(PyExc_ValueError, "no job property %d", static_cast<int>(p.id));
            return nullptr;
    }
}

bool property_id(PyObject* arg, BITS_JOB_PROPERTY_ID* id) {
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred())
        return false;
    switch (v) {
        case 1:
        case 3:
        case 4:
        case 5:
        case 7:
        case 9:
        case 10:
            *id = static_cast<BITS_JOB_PROPERTY_ID>(v);
            return true;
        default:
            PyErr_Format(PyExc_ValueError, "no job property %ld", v);
            return false;
    }
}

PyObject* job_property(PyObject* self, PyObject* arg) {
    JobProperty p;
    if (!property_id(arg, &p.id))
        return nullptr;
    JobObject* job = job_of(self);
    return read_property<JobProperty>(
        self,
        [&](JobProperty& out) {
            out.id = p.id;
            return through<IBackgroundCopyJob5>(
                job, [&](IBackgroundCopyJob5* j5) { return j5->GetProperty(out.id, &out.value); });
        },
        py_job_property);
}

PyObject* job_set_property(PyObject* self, PyObject* args) {
    PyObject *id_obj = nullptr, *value_obj = nullptr;
    if (!PyArg_ParseTuple(args, "OO:set_property", &id_obj, &value_obj))
        return nullptr;
    JobProperty p;
    if (!property_id(id_obj, &p.id))
        return nullptr;
    unsigned long long v = PyLong_AsUnsignedLongLong(value_obj);
    if (v == static_cast<unsigned long long>(-1) && PyErr_Occurred())
        return nullptr;
    switch (p.id) {
        case BITS_JOB_PROPERTY_MAX_DOWNLOAD_SIZE:
            p.value.Uint64 = v;
            break;
        case BITS_JOB_PROPERTY_DYNAMIC_CONTENT:
        case BITS_JOB_PROPERTY_HIGH_PERFORMANCE:
        case BITS_JOB_PROPERTY_ON_DEMAND_MODE:
            p.value.Enable = v ? TRUE : FALSE;
            break;
        case BITS_JOB_PROPERTY_USE_STORED_CREDENTIALS:
            p.value.Target = static_cast<BG_AUTH_TARGET>(v);
            break;
        default:
            if (v > 0xFFFFFFFFull) {
                PyErr_SetString(PyExc_OverflowError, "the value does not fit 32 bits");
                return nullptr;
            }
            p.value.Dword = static_cast<DWORD>(v);
    }
    JobObject* job = job_of(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyJob5>(
            job, [&](IBackgroundCopyJob5* j5) { return j5->SetProperty(p.id, p.value); });
    });
}

using Job = IBackgroundCopyJob;
using Job2 = IBackgroundCopyJob2;
using Job4 = IBackgroundCopyJob4;
using HttpOptions = IBackgroundCopyJobHttpOptions;
using HttpOptions2 = IBackgroundCopyJobHttpOptions2;

PyMethodDef job_methods[] = {
    {"listen", job_listen, METH_VARARGS,
     "listen(ring=False) -> token: winbits' IBackgroundCopyCallback2 on the job, or 0"},
    {"notified", job_notified, METH_O, "notified(milliseconds) -> bool: BITS called back"},
    {"unlisten", job_unlisten, METH_NOARGS, "unlisten(): SetNotifyInterface(NULL), flags back"},
    {"id", job_get<GUID, &Job::GetId, py_guid>, METH_NOARGS, "GetId -> 16 bytes (uuid bytes_le)"},
    {"name", job_string<&Job::GetDisplayName>, METH_NOARGS, "GetDisplayName"},
    {"description", job_string<&Job::GetDescription>, METH_NOARGS, "GetDescription"},
    {"owner", job_string<&Job::GetOwner>, METH_NOARGS,
     "GetOwner (SID string), None if not implemented"},
    {"type", job_get<BG_JOB_TYPE, &Job::GetType>, METH_NOARGS, "GetType"},
    {"state", job_get<BG_JOB_STATE, &Job::GetState>, METH_NOARGS, "GetState"},
    {"priority", job_get<BG_JOB_PRIORITY, &Job::GetPriority>, METH_NOARGS,
     "GetPriority, None if not implemented"},
    {"progress", job_get<BG_JOB_PROGRESS, &Job::GetProgress, py_job_progress>, METH_NOARGS,
     "GetProgress -> (bytes_total, bytes_transferred, files_total, files_transferred)"},
    {"times", job_times, METH_NOARGS,
     "GetTimes -> FILETIME ticks (creation, modification, transfer_completion)"},
    {"error", job_error, METH_NOARGS, "GetError -> tuple or None"},
    {"files", job_files, METH_NOARGS, "EnumFiles -> list of File"},
    {"add_file", job_add_file, METH_VARARGS, "AddFile(url, path)"},
    {"property", job_property, METH_O, "IBackgroundCopyJob5::GetProperty(id) -> int or bool"},
    {"set_property", job_set_property, METH_VARARGS, "IBackgroundCopyJob5::SetProperty(id, value)"},
    {"add_file_ranges", job_add_file_ranges, METH_VARARGS,
     "IBackgroundCopyJob3::AddFileWithRanges(url, path, [(offset, length)])"},
    {"resume", job_verb<&Job::Resume>, METH_NOARGS, "Resume -> HRESULT"},
    {"suspend", job_verb<&Job::Suspend>, METH_NOARGS, "Suspend -> HRESULT"},
    {"cancel", job_verb<&Job::Cancel>, METH_NOARGS, "Cancel -> HRESULT"},
    {"complete", job_verb<&Job::Complete>, METH_NOARGS, "Complete -> HRESULT"},
    {"take_ownership", job_verb<&Job::TakeOwnership>, METH_NOARGS, "TakeOwnership -> HRESULT"},
    // Settings: a getter and a setter each, one line per BITS method.
    {"set_name", job_set_string<Job, &Job::SetDisplayName>, METH_O, "SetDisplayName(str)"},
    {"set_description", job_set_string<Job, &Job::SetDescription>, METH_O, "SetDescription(str)"},
    {"set_priority", job_set_number<Job, BG_JOB_PRIORITY, &Job::SetPriority>, METH_O,
     "SetPriority(int)"},
    {"minimum_retry_delay", job_iface_get<Job, ULONG, &Job::GetMinimumRetryDelay>, METH_NOARGS,
     "GetMinimumRetryDelay -> seconds"},
    {"set_minimum_retry_delay", job_set_number<Job, ULONG, &Job::SetMinimumRetryDelay>, METH_O,
     "SetMinimumRetryDelay(seconds)"},
    {"no_progress_timeout", job_iface_get<Job, ULONG, &Job::GetNoProgressTimeout>, METH_NOARGS,
     "GetNoProgressTimeout -> seconds"},
    {"set_no_progress_timeout", job_set_number<Job, ULONG, &Job::SetNoProgressTimeout>, METH_O,
     "SetNoProgressTimeout(seconds)"},
    {"error_count", job_iface_get<Job, ULONG, &Job::GetErrorCount>, METH_NOARGS, "GetErrorCount"},
    {"proxy", job_proxy, METH_NOARGS, "GetProxySettings -> (usage, list, bypass)"},
    {"set_proxy", job_set_proxy, METH_VARARGS, "SetProxySettings(usage, list, bypass)"},
    {"maximum_download_time", job_iface_get<Job4, ULONG, &Job4::GetMaximumDownloadTime>,
     METH_NOARGS, "IBackgroundCopyJob4::GetMaximumDownloadTime -> seconds"},
    {"set_maximum_download_time", job_set_number<Job4, ULONG, &Job4::SetMaximumDownloadTime>,
     METH_O, "IBackgroundCopyJob4::SetMaximumDownloadTime(seconds)"},
    {"peer_caching", job_iface_get<Job4, DWORD, &Job4::GetPeerCachingFlags>, METH_NOARGS,
     "IBackgroundCopyJob4::GetPeerCachingFlags"},
    {"set_peer_caching", job_set_number<Job4, DWORD, &Job4::SetPeerCachingFlags>, METH_O,
     "IBackgroundCopyJob4::SetPeerCachingFlags(flags)"},
    {"owner_integrity_level", job_iface_get<Job4, ULONG, &Job4::GetOwnerIntegrityLevel>,
     METH_NOARGS, "IBackgroundCopyJob4::GetOwnerIntegrityLevel"},
    {"owner_elevated", job_iface_get<Job4, BOOL, &Job4::GetOwnerElevationState, py_bool>,
     METH_NOARGS, "IBackgroundCopyJob4::GetOwnerElevationState"},
    {"notify_cmd_line", job_notify_cmd_line, METH_NOARGS,
     "IBackgroundCopyJob2::GetNotifyCmdLine -> (program, parameters)"},
    {"set_notify_cmd_line", job_set_notify_cmd_line, METH_VARARGS,
     "IBackgroundCopyJob2::SetNotifyCmdLine(program, parameters)"},
    {"reply_file_name", job_iface_string<Job2, &Job2::GetReplyFileName>, METH_NOARGS,
     "IBackgroundCopyJob2::GetReplyFileName"},
    {"set_reply_file_name", job_set_string<Job2, &Job2::SetReplyFileName>, METH_O,
     "IBackgroundCopyJob2::SetReplyFileName(str or None)"},
    {"reply_progress",
     job_iface_get<Job2, BG_JOB_REPLY_PROGRESS, &Job2::GetReplyProgress, py_reply_progress>,
     METH_NOARGS, "IBackgroundCopyJob2::GetReplyProgress -> (total, transferred)"},
    {"reply_data", job_reply_data, METH_NOARGS, "IBackgroundCopyJob2::GetReplyData -> bytes"},
    {"set_credentials", job_set_credentials, METH_VARARGS,
     "IBackgroundCopyJob2::SetCredentials(target, scheme, user, password)"},
    {"remove_credentials", job_remove_credentials, METH_VARARGS,
     "IBackgroundCopyJob2::RemoveCredentials(target, scheme)"},
    {"security_flags", job_iface_get<HttpOptions, ULONG, &HttpOptions::GetSecurityFlags>,
     METH_NOARGS, "IBackgroundCopyJobHttpOptions::GetSecurityFlags"},
    {"set_security_flags", job_set_number<HttpOptions, ULONG, &HttpOptions::SetSecurityFlags>,
     METH_O, "IBackgroundCopyJobHttpOptions::SetSecurityFlags(flags)"},
    {"client_certificate", job_client_certificate, METH_NOARGS,
     "IBackgroundCopyJobHttpOptions::GetClientCertificate -> (location, store, hash, subject)"},
    {"set_client_certificate", job_set_client_certificate, METH_VARARGS,
     "IBackgroundCopyJobHttpOptions::SetClientCertificateByName(location, store, subject)"},
    {"remove_client_certificate",
     job_verb_through<HttpOptions, &HttpOptions::RemoveClientCertificate>, METH_NOARGS,
     "IBackgroundCopyJobHttpOptions::RemoveClientCertificate"},
    {"http_method", job_iface_string<HttpOptions2, &HttpOptions2::GetHttpMethod>, METH_NOARGS,
     "IBackgroundCopyJobHttpOptions2::GetHttpMethod -> str"},
    {"set_http_method", job_set_string<HttpOptions2, &HttpOptions2::SetHttpMethod>, METH_O,
     "IBackgroundCopyJobHttpOptions2::SetHttpMethod(str)"},
    {"custom_headers", job_iface_string<HttpOptions, &HttpOptions::GetCustomHeaders>, METH_NOARGS,
     "IBackgroundCopyJobHttpOptions::GetCustomHeaders -> str or None"},
    {"set_custom_headers", job_set_string<HttpOptions, &HttpOptions::SetCustomHeaders>, METH_O,
     "IBackgroundCopyJobHttpOptions::SetCustomHeaders(str or None)"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot job_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(child_dealloc<JobObject, release_job>)},
    {Py_tp_methods, job_methods},
    {Py_tp_doc, const_cast<char*>("A BITS job (IBackgroundCopyJob).")},
    {0, nullptr},
};

// --- File ---------------------------------------------------------------------------

FileObject* as_file(PyObject* self) {
    return reinterpret_cast<FileObject*>(self);
}

void release_file(FileObject* f) {
    delete f->handle;  // its proxies are released in the MTA
}

// A read through IBackgroundCopyFile3 or 4, asked for once per file: None where the
// server lacks the interface.
template <class I, HRESULT (FileHandle::*Query)(Connection&, I**) noexcept, class T,
          HRESULT (*Read)(I*, T*), PyObject* (*Build)(const T&)>
PyObject* file_extra(PyObject* self, PyObject*) {
    FileObject* f = as_file(self);
    return read_property<T>(
        self,
        [&](T& v) {
            I* iface = nullptr;
            HRESULT hr = (f->handle->*Query)(*f->manager->conn, &iface);
            if (hr == E_NOINTERFACE)
                return E_NOTIMPL;
            return FAILED(hr) ? hr : Read(iface, &v);
        },
        Build);
}

HRESULT read_from_peer(IBackgroundCopyFile3* f3, BOOL* v) {
    return f3->IsDownloadedFromPeer(v);
}
HRESULT read_peer_stats(IBackgroundCopyFile4* f4, PeerStats* s) {
    return f4->GetPeerDownloadStats(&s->from_origin, &s->from_peers);
}

// fn(iface) with the file as one of its richer interfaces (asked for once per file);
// E_NOINTERFACE, for the facade to name the BITS version, where the server lacks it.
template <class I, HRESULT (FileHandle::*Query)(Connection&, I**) noexcept, class Fn>
HRESULT file_through(FileObject* f, Fn fn) {
    I* iface = nullptr;
    HRESULT hr = (f->handle->*Query)(*f->manager->conn, &iface);
    return FAILED(hr) ? hr : fn(iface);
}

template <class I, HRESULT (FileHandle::*Query)(Connection&, I**) noexcept, class T,
          HRESULT (STDMETHODCALLTYPE I::*Get)(T*), PyObject* (*Build)(const T&)>
PyObject* file_iface_get(PyObject* self, PyObject*) {
    FileObject* f = as_file(self);
    return read_property<T>(
        self, [&](T& v) { return file_through<I, Query>(f, [&](I* i) { return (i->*Get)(&v); }); },
        Build);
}

template <class I, HRESULT (FileHandle::*Query)(Connection&, I**) noexcept,
          HRESULT (STDMETHODCALLTYPE I::*Get)(LPWSTR*)>
PyObject* file_iface_string(PyObject* self, PyObject*) {
    FileObject* f = as_file(self);
    return read_property<CoTaskString>(
        self,
        [&](CoTaskString& s) {
            return file_through<I, Query>(f, [&](I* i) { return (i->*Get)(s.put()); });
        },
        py_string_or_none);
}

PyObject* file_set_remote_name(PyObject* self, PyObject* arg) {
    WideArg url;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "url must be str");
        return nullptr;
    }
    if (!url.set(arg, "url"))
        return nullptr;
    FileObject* f = as_file(self);
    return write_property(self, [&] {
        return file_through<IBackgroundCopyFile2, &FileHandle::file2>(
            f, [&](IBackgroundCopyFile2* f2) { return f2->SetRemoteName(url.get()); });
    });
}

PyObject* file_set_validation_state(PyObject* self, PyObject* arg) {
    int valid = PyObject_IsTrue(arg);
    if (valid < 0)
        return nullptr;
    FileObject* f = as_file(self);
    return write_property(self, [&] {
        return file_through<IBackgroundCopyFile3, &FileHandle::file3>(
            f, [&](IBackgroundCopyFile3* f3) { return f3->SetValidationState(valid); });
    });
}

// File2::GetFileRanges: [(offset, length)], length 2^64-1 for "to the end".
struct FileRanges {
    DWORD count = 0;
    CoTaskPtr<BG_FILE_RANGE> ranges;
};
PyObject* py_file_ranges(const FileRanges& r) {
    PyRef list(PyList_New(0));
    if (!list)
        return nullptr;
    const BG_FILE_RANGE* ranges = r.ranges.get();
    for (DWORD i = 0; ranges && i < r.count; ++i) {
        PyRef item(Py_BuildValue("(KK)", ranges[i].InitialOffset, ranges[i].Length));
        if (!item || PyList_Append(list.get(), item.get()) < 0)
            return nullptr;
    }
    return list.release();
}
PyObject* file_ranges(PyObject* self, PyObject*) {
    FileObject* f = as_file(self);
    return read_property<FileRanges>(
        self,
        [&](FileRanges& r) {
            return file_through<IBackgroundCopyFile2, &FileHandle::file2>(
                f, [&](IBackgroundCopyFile2* f2) {
                    return f2->GetFileRanges(&r.count, r.ranges.put());
                });
        },
        py_file_ranges);
}

// File5::GetProperty(HTTP_RESPONSE_HEADERS): the last response's headers, one string.
HRESULT read_response_headers(IBackgroundCopyFile5* f5, CoTaskString* s) {
    BITS_FILE_PROPERTY_VALUE v{};
    HRESULT hr = f5->GetProperty(BITS_FILE_PROPERTY_ID_HTTP_RESPONSE_HEADERS, &v);
    if (SUCCEEDED(hr))
        *s->put() = v.String;  // ours to free from here on
    return hr;
}

PyObject* file_response_headers(PyObject* self, PyObject*) {
    FileObject* f = as_file(self);
    return read_property<CoTaskString>(
        self,
        [&](CoTaskString& s) {
            return file_through<IBackgroundCopyFile5, &FileHandle::file5>(
                f, [&](IBackgroundCopyFile5* f5) { return read_response_headers(f5, &s); });
        },
        py_string_or_none);
}

using File = IBackgroundCopyFile;

PyMethodDef file_methods[] = {
    {"remote_name", file_string<&File::GetRemoteName>, METH_NOARGS, "GetRemoteName"},
    {"local_name", file_string<&File::GetLocalName>, METH_NOARGS, "GetLocalName"},
    {"progress", file_get<BG_FILE_PROGRESS, &File::GetProgress, py_file_progress>, METH_NOARGS,
     "GetProgress -> (bytes_total, bytes_transferred, completed)"},
    {"downloaded_from_peer",
     file_extra<IBackgroundCopyFile3, &FileHandle::file3, BOOL, read_from_peer, py_bool>,
     METH_NOARGS, "IBackgroundCopyFile3::IsDownloadedFromPeer, None where absent"},
    {"ranges", file_ranges, METH_NOARGS,
     "IBackgroundCopyFile2::GetFileRanges -> [(offset, length)]"},
    {"set_remote_name", file_set_remote_name, METH_O, "IBackgroundCopyFile2::SetRemoteName(url)"},
    {"temporary_name",
     file_iface_string<IBackgroundCopyFile3, &FileHandle::file3,
                       &IBackgroundCopyFile3::GetTemporaryName>,
     METH_NOARGS, "IBackgroundCopyFile3::GetTemporaryName"},
    {"validation_state",
     file_iface_get<IBackgroundCopyFile3, &FileHandle::file3, BOOL,
                    &IBackgroundCopyFile3::GetValidationState, py_bool>,
     METH_NOARGS, "IBackgroundCopyFile3::GetValidationState"},
    {"set_validation_state", file_set_validation_state, METH_O,
     "IBackgroundCopyFile3::SetValidationState(bool)"},
    {"http_response_headers", file_response_headers, METH_NOARGS,
     "IBackgroundCopyFile5::GetProperty(HTTP_RESPONSE_HEADERS) -> str or None"},
    {"peer_stats",
     file_extra<IBackgroundCopyFile4, &FileHandle::file4, PeerStats, read_peer_stats,
                py_peer_stats>,
     METH_NOARGS,
     "IBackgroundCopyFile4::GetPeerDownloadStats -> (from_origin, from_peers), None where absent"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot file_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(child_dealloc<FileObject, release_file>)},
    {Py_tp_methods, file_methods},
    {Py_tp_doc, const_cast<char*>("A file of a BITS job (IBackgroundCopyFile).")},
    {0, nullptr},
};

// --- Poller -------------------------------------------------------------------------

// (remote, local, bytes_total, bytes_transferred, completed, (from_origin, from_peers) or None)
PyObject* file_record(const CachedFile& f) {
    PyRef stats(f.has_stats ? py_peer_stats(f.stats) : Py_NewRef(Py_None));
    if (!stats)
        return nullptr;
    return Py_BuildValue("(NNKKNN)", to_py(f.remote), to_py(f.local), f.progress.BytesTotal,
                         f.progress.BytesTransferred, PyBool_FromLong(f.progress.Completed),
                         stats.release());
}

// (id, name, owner or None, state, (bytes_total, bytes_transferred, files_total,
// files_transferred), (created, modified, transfer_completed) FILETIMEs or None,
// [file records])
PyObject* job_record(const CachedJob& j) {
    PyRef files(PyList_New(static_cast<Py_ssize_t>(j.files.size())));
    for (size_t i = 0; files && i < j.files.size(); ++i) {
        PyObject* f = file_record(j.files[i]);  // PyList_SetItem takes it, even on failure
        if (!f || PyList_SetItem(files.get(), static_cast<Py_ssize_t>(i), f) < 0)
            files.reset();
    }
    if (!files)
        return nullptr;
    PyRef times(j.has_times ? py_times(j.times) : Py_NewRef(Py_None));
    if (!times)
        return nullptr;
    const BG_JOB_PROGRESS& p = j.progress;
    return Py_BuildValue("(NNNi(KKkk)NN)", py_guid(j.id), to_py(j.name),
                         to_py_or_none(j.has_owner, j.owner), static_cast<int>(j.state),
                         p.BytesTotal, p.BytesTransferred, p.FilesTotal, p.FilesTransferred,
                         times.release(), files.release());
}

// What Python gets from one poll: (order, changed).
PyObject* poll_result(const std::vector<std::unique_ptr<CachedJob>>& jobs) {
    PyRef order(PyList_New(static_cast<Py_ssize_t>(jobs.size())));
    PyRef changed(PyList_New(0));
    if (!order || !changed)
        return nullptr;
    for (size_t i = 0; i < jobs.size(); ++i) {
        PyObject* id = py_guid(jobs[i]->id);  // PyList_SetItem takes it, even on failure
        if (!id || PyList_SetItem(order.get(), static_cast<Py_ssize_t>(i), id) < 0)
            return nullptr;
        if (!jobs[i]->changed)
            continue;
        PyRef record(job_record(*jobs[i]));
        if (!record || PyList_Append(changed.get(), record.get()) < 0)
            return nullptr;
    }
    return PyTuple_Pack(2, order.get(), changed.get());
}

void poller_dealloc(PyObject* self) {
    auto* p = reinterpret_cast<PollerObject*>(self);
    Poller* poller = p->poller;
    Py_BEGIN_ALLOW_THREADS
    in_mta([poller] {
        delete poller;  // its jobs' and files' proxies are released in the MTA
        return S_OK;
    });
    Py_END_ALLOW_THREADS
    Py_XDECREF(reinterpret_cast<PyObject*>(p->manager));
    free_object(self);
}

// poll(threads) -> (order, changed): the ids of the jobs in the queue now, in BITS'
// order, and a record for each job that is new or whose state or progress moved.
PyObject* poller_poll(PyObject* self, PyObject* args) {
    unsigned int threads = 1;
    if (!PyArg_ParseTuple(args, "I:poll", &threads))
        return nullptr;
    auto* p = reinterpret_cast<PollerObject*>(self);
    if (!check_open(p->manager))
        return nullptr;
    Poller* poller = p->poller;
    HRESULT hr = HRESULT_FROM_WIN32(ERROR_POSSIBLE_DEADLOCK);
    if (waiting_for_mta_worker())  // its lock may be held by the poll this one interrupted
        return raise_hresult(state_of(self), p->manager->conn, hr);
    // The poller's lock is only ever taken with the GIL released (no lock-order
    // deadlock), and held until Python has read the results.
    Py_BEGIN_ALLOW_THREADS
    poller->lock().lock();
    hr = in_mta([&] { return poller->poll(threads); });
    Py_END_ALLOW_THREADS
    PyObject* result = SUCCEEDED(hr) ? poll_result(poller->jobs()) : nullptr;
    poller->lock().unlock();
    if (FAILED(hr))
        return raise_hresult(state_of(self), p->manager->conn, hr);
    return result;
}

PyMethodDef poller_methods[] = {
    {"poll", poller_poll, METH_VARARGS, "poll(threads) -> (order, changed records)"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot poller_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(poller_dealloc)},
    {Py_tp_methods, poller_methods},
    {Py_tp_doc, const_cast<char*>("Walks the BITS queue, re-reading only what moved.")},
    {0, nullptr},
};

// --- Module -------------------------------------------------------------------------

// No Py_TPFLAGS_HAVE_GC: these objects hold no Python object but their manager (and the
// manager none), so they cannot be part of a reference cycle.
constexpr unsigned long kTypeFlags =
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION;

PyType_Spec manager_spec = {"winbits._native.Manager", sizeof(ManagerObject), 0, kTypeFlags,
                            manager_slots};
PyType_Spec job_spec = {"winbits._native.Job", sizeof(JobObject), 0, kTypeFlags, job_slots};
PyType_Spec file_spec = {"winbits._native.File", sizeof(FileObject), 0, kTypeFlags, file_slots};
PyType_Spec poller_spec = {"winbits._native.Poller", sizeof(PollerObject), 0, kTypeFlags,
                           poller_slots};

ModuleState* module_state(PyObject* module) {
    return static_cast<ModuleState*>(PyModule_GetState(module));
}

PyObject* native_connect(PyObject* module, PyObject* args) {
    PyObject* clsid_obj = Py_None;
    if (!PyArg_ParseTuple(args, "|O:connect", &clsid_obj))
        return nullptr;
    GUID clsid = kClsidBackgroundCopyManager;
    if (clsid_obj != Py_None) {
        char* bytes = nullptr;
        Py_ssize_t size = 0;
        if (!PyBytes_Check(clsid_obj)) {
            PyErr_SetString(PyExc_TypeError, "clsid must be 16 bytes or None");
            return nullptr;
        }
        if (PyBytes_AsStringAndSize(clsid_obj, &bytes, &size) < 0 || !guid_arg(bytes, size, &clsid))
            return nullptr;
    }
    ModuleState* st = module_state(module);
    PyObject* o = alloc(st->manager_type);
    if (!o)
        return nullptr;
    auto* m = reinterpret_cast<ManagerObject*>(o);
    HRESULT hr;
    Py_BEGIN_ALLOW_THREADS
    hr = Connection::open(clsid, &m->conn);
    Py_END_ALLOW_THREADS
    if (FAILED(hr)) {
        Py_DECREF(o);  // conn is null: the dealloc has nothing to release
        return raise_hresult(st, nullptr, hr);
    }
    return o;
}

PyObject* native_bits_version(PyObject* module, PyObject*) {
    int major = 0, minor = 0;
    HRESULT hr;
    Py_BEGIN_ALLOW_THREADS
    hr = detect_version(&major, &minor);
    Py_END_ALLOW_THREADS
    if (FAILED(hr))
        return raise_hresult(module_state(module), nullptr, hr);
    return Py_BuildValue("(ii)", major, minor);
}

// --- closing the console: the command line's long loops end after their write ----------
//
// Closing the console window, logging off and shutting down reach a console program as
// CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT and CTRL_SHUTDOWN_EVENT, on a thread the system
// makes; the process is ended as soon as the handler returns (and after a few seconds
// anyway). The C runtime's own handler turns them into SIGBREAK and returns at once,
// before Python's handler can run. This one asks for SIGBREAK the same way and then holds
// the system's thread, so that the main thread can finish its write and exit (exiting ends
// the held thread). Ctrl-C and Ctrl-Break go on to the C runtime's handler as before.
std::atomic<bool> g_console_held{false};

BOOL WINAPI console_closing(DWORD event) {
    if (event != CTRL_CLOSE_EVENT && event != CTRL_LOGOFF_EVENT && event != CTRL_SHUTDOWN_EVENT)
        return FALSE;
    PyErr_SetInterruptEx(SIGBREAK);  // callable without the GIL, from any thread
    Sleep(INFINITE);
    return TRUE;
}

PyObject* native_hold_console_close(PyObject*, PyObject* arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return nullptr;
    if (!SetConsoleCtrlHandler(console_closing, on ? TRUE : FALSE))
        return PyErr_SetFromWindowsErr(0);
    g_console_held.store(on != 0);
    Py_RETURN_NONE;
}

// What the system does when the console closes (event 2, 5 or 6), for the tests, which
// cannot close a console under Wine: with the handler set, runs it on a thread that is
// not Python's; without it, ends the process as the system then does.
PyObject* native_console_event(PyObject*, PyObject* arg) {
    unsigned long event = PyLong_AsUnsignedLong(arg);
    if (event == static_cast<unsigned long>(-1) && PyErr_Occurred())
        return nullptr;
    if (!g_console_held.load())
        ExitProcess(static_cast<UINT>(STATUS_CONTROL_C_EXIT));
    HANDLE thread = CreateThread(
        nullptr, 0,
        [](void* e) -> DWORD {
            return console_closing(static_cast<DWORD>(reinterpret_cast<uintptr_t>(e)));
        },
        reinterpret_cast<void*>(static_cast<uintptr_t>(event)), 0, nullptr);
    if (!thread)
        return PyErr_SetFromWindowsErr(0);
    CloseHandle(thread);
    Py_RETURN_NONE;
}

// doorbell(milliseconds) -> the tokens of the asyncio waits BITS called back for since
// the last call, waiting up to that long for one (the GIL released); [] when none came.
PyObject* native_doorbell(PyObject* module, PyObject* arg) {
    unsigned long ms = PyLong_AsUnsignedLong(arg);
    if (ms == static_cast<unsigned long>(-1) && PyErr_Occurred())
        return nullptr;
    Doorbell* bell = module_state(module)->bell;
    std::vector<unsigned long long> rung;
    Py_BEGIN_ALLOW_THREADS
    rung = bell->take(ms);
    Py_END_ALLOW_THREADS
    PyRef out(PyList_New(0));
    for (unsigned long long token : rung) {
        PyRef item(out ? PyLong_FromUnsignedLongLong(token) : nullptr);
        if (!item || PyList_Append(out.get(), item.get()) < 0)
            return nullptr;
    }
    return out.release();
}

PyObject* native_live_notifiers(PyObject*, PyObject*) {
    return PyLong_FromLong(Notifier::live());
}

// Whether standard input is a console someone can type a password at. isatty() is not
// enough on Windows: it is true for the NUL device too (a character device), where a
// password prompt would wait for ever.
PyObject* native_stdin_is_console(PyObject*, PyObject*) {
    DWORD mode = 0;
    return PyBool_FromLong(GetConsoleMode(GetStdHandle(STD_INPUT_HANDLE), &mode) ? 1 : 0);
}

PyMethodDef module_methods[] = {
    {"connect", native_connect, METH_VARARGS, "connect(clsid_bytes_le=None) -> Manager"},
    {"bits_version", native_bits_version, METH_NOARGS, "bits_version() -> (major, minor)"},
    {"hold_console_close", native_hold_console_close, METH_O,
     "hold_console_close(on): console close, logoff and shutdown become SIGBREAK, and the "
     "process waits for the program to exit"},
    {"doorbell", native_doorbell, METH_O,
     "doorbell(milliseconds) -> [token]: the asyncio waits BITS called back for"},
    {"_live_notifiers", native_live_notifiers, METH_NOARGS,
     "_live_notifiers() -> wait()'s callback objects alive now (for the tests)"},
    {"stdin_is_console", native_stdin_is_console, METH_NOARGS,
     "stdin_is_console() -> whether standard input is a console (not a pipe, file or NUL)"},
    {"_console_event", native_console_event, METH_O,
     "_console_event(event): what the system does on a console event (for the tests)"},
    {nullptr, nullptr, 0, nullptr},
};

int add_type(PyObject* module, PyType_Spec* spec, PyTypeObject** slot) {
    *slot = reinterpret_cast<PyTypeObject*>(PyType_FromModuleAndSpec(module, spec, nullptr));
    if (!*slot)
        return -1;
    return PyModule_AddType(module, *slot);
}

int module_exec(PyObject* module) {
    ModuleState* st = module_state(module);
    if (add_type(module, &manager_spec, &st->manager_type) < 0 ||
        add_type(module, &job_spec, &st->job_type) < 0 ||
        add_type(module, &file_spec, &st->file_type) < 0 ||
        add_type(module, &poller_spec, &st->poller_type) < 0)
        return -1;
    PyRef errors(PyImport_ImportModule("winbits._errors"));
    if (!errors)
        return -1;
    st->error_factory = PyObject_GetAttrString(errors.get(), "from_hresult");
    PyRef gone(PyObject_GetAttrString(errors.get(), "SERVICE_GONE"));
    PyRef codes(gone ? PySequence_Tuple(gone.get()) : nullptr);
    if (!st->error_factory || !codes)
        return -1;
    Py_ssize_t n = PyTuple_Size(codes.get());
    if (n > kMaxServiceGone) {
        PyErr_SetString(PyExc_ValueError, "winbits._errors.SERVICE_GONE is too long");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; ++i) {
        st->service_gone[i] = PyLong_AsUnsignedLong(PyTuple_GetItem(codes.get(), i));
        if (PyErr_Occurred())
            return -1;
    }
    st->n_service_gone = static_cast<int>(n);
    st->bell = Doorbell::create();
    if (!st->bell) {
        PyErr_SetFromWindowsErr(0);
        return -1;
    }
    return 0;
}

int module_traverse(PyObject* module, visitproc visit, void* arg) {
    ModuleState* st = module_state(module);
    Py_VISIT(st->manager_type);
    Py_VISIT(st->job_type);
    Py_VISIT(st->file_type);
    Py_VISIT(st->poller_type);
    Py_VISIT(st->error_factory);
    return 0;
}

int module_clear(PyObject* module) {
    ModuleState* st = module_state(module);
    Py_CLEAR(st->manager_type);
    Py_CLEAR(st->job_type);
    Py_CLEAR(st->file_type);
    Py_CLEAR(st->poller_type);
    Py_CLEAR(st->error_factory);
    return 0;
}

void module_free(void* module) {
    module_clear(static_cast<PyObject*>(module));
    ModuleState* st = module_state(static_cast<PyObject*>(module));
    if (st->bell)  // notifiers still registered hold their own references
        st->bell->release();
    st->bell = nullptr;
}

// Slots newer than the 3.10 ABI we build for go only to the Pythons that know them:
// 3.10 and 3.11 refuse a module with an unknown slot id. The module keeps all its
// state in module state, so it is safe in every interpreter, each with its own GIL.
PyModuleDef_Slot slots_310[] = {
    {Py_mod_exec, reinterpret_cast<void*>(module_exec)},
    {0, nullptr},
};
// Py_mod_multiple_interpreters and its value Py_MOD_PER_INTERPRETER_GIL_SUPPORTED, as
// 3.12's headers define them; the 3.10 headers we compile against have neither.
constexpr int kPyModMultipleInterpreters = 3;
void* const kPerInterpreterGilSupported = reinterpret_cast<void*>(2);
PyModuleDef_Slot slots_312[] = {
    {Py_mod_exec, reinterpret_cast<void*>(module_exec)},
    {kPyModMultipleInterpreters, kPerInterpreterGilSupported},
#ifdef Py_GIL_DISABLED
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, nullptr},
};

PyModuleDef make_def(PyModuleDef_Slot* slots) {
    return {PyModuleDef_HEAD_INIT, "winbits._native", "The native BITS binding of winbits.",
            sizeof(ModuleState),   module_methods,    slots,
            module_traverse,       module_clear,      module_free};
}
PyModuleDef def_310 = make_def(slots_310);
PyModuleDef def_312 = make_def(slots_312);

}  // namespace

PyMODINIT_FUNC PyInit__native(void) {
    int major = 0, minor = 0;
    std::sscanf(Py_GetVersion(), "%d.%d", &major, &minor);
    bool knows_new_slots = major > 3 || (major == 3 && minor >= 12);
    return PyModuleDef_Init(knows_new_slots ? &def_312 : &def_310);
}
