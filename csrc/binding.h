// What every file of the CPython binding shares: the module state, the objects' layouts,
// owned references and string arguments, the one HRESULT-to-exception function, the
// builders of Python values, and the method shapes that the types' tables are made of.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "com_core.h"
#include "poller.h"

namespace winbits::py {

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

ModuleState* state_of(PyObject* self);  // from an object of one of the module's types
ModuleState* module_state(PyObject* module);

struct ManagerObject {
    PyObject_HEAD
    Connection* conn;
};

// Jobs and files hold their manager: its connection keeps the MTA (and so their
// proxies) alive, and its closing is what they check before every call. `generation`
// is the connection's when the object was made: after BITS restarted, its proxy is dead.
// Both begin with the fields of ChildObject, which the shared shapes read.
struct ChildObject {
    PyObject_HEAD
    ManagerObject* manager;
    unsigned generation;
};

struct JobObject {
    PyObject_HEAD
    ManagerObject* manager;
    unsigned generation;
    JobHandle* handle;  // owned; deleted in the MTA
    GUID id;            // read when it was made (it never changes), where has_id
    bool has_id;
};

struct FileObject {
    PyObject_HEAD
    ManagerObject* manager;
    unsigned generation;
    FileHandle* handle;  // owned; deleted in the MTA
};

struct PollerObject {
    PyObject_HEAD
    ManagerObject* manager;
    Poller* poller;  // owned; deleted in the MTA
};

// The types, each in a file of its own (manager.cpp, job.cpp, file.cpp, poller_type.cpp).
extern PyType_Spec manager_spec, job_spec, file_spec, poller_spec;
// No Py_TPFLAGS_HAVE_GC: these objects hold no Python object but their manager (and the
// manager none), so they cannot be part of a reference cycle.
constexpr unsigned long kTypeFlags =
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION;

// A race with close(): the manager went away between the check and the call.
constexpr HRESULT kClosed = E_HANDLE;

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

// fn() with the GIL released, in the MTA (in_mta): a batch of COM calls. Inside it no
// Python object may be touched.
template <class F>
HRESULT without_gil_in_mta(F&& fn) {
    HRESULT hr;
    Py_BEGIN_ALLOW_THREADS
    hr = in_mta(fn);
    Py_END_ALLOW_THREADS
    return hr;
}

// --- Strings: the one conversion each way -------------------------------------------

PyObject* to_py(const wchar_t* s, size_t n);
PyObject* to_py(const std::wstring& s);
PyObject* to_py(const wchar_t* s);
PyObject* to_py_or_none(bool has, const std::wstring& s);

// A str as NUL-terminated UTF-16 for COM (PyUnicode_AsWideCharString: no codec lookup).
// Strict: an embedded NUL or a lone surrogate raises ValueError, before any COM call.
// Wiped before it is freed: passwords pass through here.
class WideArg {
public:
    WideArg() = default;
    WideArg(const WideArg&) = delete;
    WideArg& operator=(const WideArg&) = delete;
    ~WideArg();
    bool set(PyObject* text, const char* what);
    const wchar_t* get() const { return p_; }
    wchar_t* get() { return p_; }

private:
    wchar_t* p_ = nullptr;
    Py_ssize_t n_ = 0;
};

// str or None into a WideArg: null for None, where the method takes a null string.
bool optional_text(PyObject* arg, WideArg& out, const char* what);

// A list of (offset, length) as BG_FILE_RANGEs (AddFileWithRanges, RequestFileRanges);
// the facade has checked them. False with the exception set.
bool read_ranges(PyObject* list, std::vector<BG_FILE_RANGE>& out);
// BG_FILE_RANGEs as a list of (offset, length).
PyObject* py_ranges(const BG_FILE_RANGE* ranges, DWORD count);

// --- Errors: the one place an HRESULT becomes a Python exception ----------------------

// BITS' own text for hr is fetched (GIL released), and winbits._errors.from_hresult picks
// the exception class. Where the service went away, the connection gets a fresh manager
// here, once per outage: `seen` is the generation the failing call went to (read with
// the manager when the call started, or the failing job's or file's), so that calls
// failing together in one outage reconnect once. A job or file (`from_object`) from
// before the outage stays dead, and its error says to get it again. Returns null.
PyObject* raise_hresult(ModuleState* st, Connection* conn, HRESULT hr,
                        const unsigned* seen = nullptr, bool from_object = false);
// raise_hresult for a job or file.
PyObject* raise_for(PyObject* self, HRESULT hr);
// ValueError, false, once the manager was closed.
bool check_open(ManagerObject* m);
bool guid_arg(const char* bytes, Py_ssize_t size, GUID* out);

inline ChildObject* as_child(PyObject* self) {
    return reinterpret_cast<ChildObject*>(self);
}
inline JobObject* as_job(PyObject* self) {
    return reinterpret_cast<JobObject*>(self);
}
inline FileObject* as_file(PyObject* self) {
    return reinterpret_cast<FileObject*>(self);
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
PyObject* py_guid(const GUID& g);
PyObject* py_bool(const BOOL& v);
PyObject* py_times(const JobTimes& t);
PyObject* py_peer_stats(const PeerStats& s);
PyObject* py_string(const CoTaskString& s);          // "" for a null string
PyObject* py_string_or_none(const CoTaskString& s);  // None for a null or empty one

// --- Objects ---------------------------------------------------------------------------

PyObject* alloc(PyTypeObject* tp);
void free_object(PyObject* self);  // and the reference to its heap type
// A Job or File wrapper of what an enumeration or a call found, stamped with the
// generation of the service it came from; takes over `job` or `file`, which is released
// in the MTA when no wrapper can be made.
PyObject* new_job(ManagerObject* m, ComPtr<IBackgroundCopyJob>& job, unsigned generation,
                  const GUID* id = nullptr);
PyObject* new_file(ManagerObject* m, ComPtr<IBackgroundCopyFile>& file, unsigned generation);

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

// A job's or file's dealloc: its handle deleted in the MTA with the GIL released (one
// batch of releases), then its manager.
template <class Obj>
void child_dealloc(PyObject* self) {
    Obj* o = reinterpret_cast<Obj*>(self);
    auto* handle = o->handle;
    Py_BEGIN_ALLOW_THREADS
    delete_in_mta(handle);
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
    HRESULT hr = without_gil_in_mta([&] { return read(value); });
    if (hr == E_NOTIMPL)
        Py_RETURN_NONE;
    if (FAILED(hr))
        return raise_for(self, hr);
    return build(value);
}

// One write: write() runs in the MTA with the GIL released; None, or the error raised.
template <class Write>
PyObject* write_property(PyObject* self, Write write) {
    if (!check_open(as_child(self)->manager))
        return nullptr;
    HRESULT hr = without_gil_in_mta(write);
    if (FAILED(hr))
        return raise_for(self, hr);
    Py_RETURN_NONE;
}

// The job or file as its interface I (each richer one asked for once per object, and
// kept): S_OK with a borrowed pointer, or E_NOINTERFACE where this BITS lacks it.
template <class I>
HRESULT reach(JobObject* o, I** out) noexcept {
    return o->handle->as<I>(out);
}
template <class I>
HRESULT reach(FileObject* o, I** out) noexcept {
    return o->handle->as<I>(*o->manager->conn, out);
}

// fn(iface) with the object as interface I; reach()'s failure otherwise.
template <class I, class Obj, class Fn>
HRESULT through(Obj* o, Fn fn) {
    I* iface = nullptr;
    HRESULT hr = reach<I>(o, &iface);
    return FAILED(hr) ? hr : fn(iface);
}

// What a read with no interface to call reads as: an error that names the BITS version
// (the facade's NotSupportedError), or None (the peer statistics: absent where the
// server lacks File3/File4, which is what a caller asks about).
enum class Lacking { raises, is_none };

// Adapters from a COM getter to Read(iface, value).
template <class I, class T, HRESULT (STDMETHODCALLTYPE I::*Get)(T*)>
HRESULT call_get(I* i, T* v) {
    return (i->*Get)(v);
}
template <class I, HRESULT (STDMETHODCALLTYPE I::*Get)(LPWSTR*)>
HRESULT call_get_string(I* i, CoTaskString* s) {
    return (i->*Get)(s->put());
}

// The one getter: Read(iface, &value) through the object's interface I, built by Build.
template <class Obj, class I, class T, HRESULT (*Read)(I*, T*), PyObject* (*Build)(const T&),
          Lacking lacking = Lacking::raises>
PyObject* getter(PyObject* self, PyObject*) {
    Obj* o = reinterpret_cast<Obj*>(self);
    return read_property<T>(
        self,
        [&](T& v) {
            HRESULT hr = through<I>(o, [&](I* i) { return Read(i, &v); });
            return lacking == Lacking::is_none && hr == E_NOINTERFACE ? E_NOTIMPL : hr;
        },
        Build);
}

// A getter of a number, enum or struct, and of a string BITS allocates (freed with
// CoTaskMemFree), through interface I of a job or file.
template <class Obj, class I, class T, HRESULT (STDMETHODCALLTYPE I::*Get)(T*),
          PyObject* (*Build)(const T&) = py_uint<T>>
constexpr PyCFunction get = getter<Obj, I, T, call_get<I, T, Get>, Build>;
template <class Obj, class I, HRESULT (STDMETHODCALLTYPE I::*Get)(LPWSTR*),
          PyObject* (*Build)(const CoTaskString&) = py_string_or_none>
constexpr PyCFunction get_string = getter<Obj, I, CoTaskString, call_get_string<I, Get>, Build>;

}  // namespace winbits::py
