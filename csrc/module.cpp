// winbits._native: the CPython binding over the COM core. Heap types with module state,
// multi-phase init, stable ABI 3.10. Every batch of COM calls runs with the GIL released
// (and touches no Python object); every failed HRESULT leaves through raise_hresult().
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdio>

#include "com_core.h"
#include "poller.h"

using namespace winbits;

namespace {

struct ModuleState {
    PyTypeObject* manager_type;
    PyTypeObject* job_type;
    PyTypeObject* file_type;
    PyTypeObject* poller_type;
    PyObject* error_factory;  // winbits._errors.from_hresult(hresult, message or None)
};

struct ManagerObject {
    PyObject_HEAD
    Connection* conn;
};

// Jobs and files hold their manager: its connection keeps the MTA (and so their
// proxies) alive, and its closing is what they check before every call.
struct JobObject {
    PyObject_HEAD
    ManagerObject* manager;
    IBackgroundCopyJob* job;
};

struct FileObject {
    PyObject_HEAD
    ManagerObject* manager;
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

template <class F>
HRESULT unlocked(F&& fn) {
    HRESULT hr;
    Py_BEGIN_ALLOW_THREADS
    hr = in_mta(fn);
    Py_END_ALLOW_THREADS
    return hr;
}

// The one place an HRESULT becomes a Python exception: BITS' own text for it is fetched
// (GIL released), and winbits._errors.from_hresult picks the exception class. Where the
// service went away, the connection gets a fresh manager here, so the next call works.
PyObject* raise_hresult(ModuleState* st, Connection* conn, HRESULT hr) {
    std::wstring text;
    Py_BEGIN_ALLOW_THREADS
    in_mta([&] {
        ComPtr<IBackgroundCopyManager> m;
        if (conn && server_gone(hr) && !conn->closed())
            conn->reconnect();
        if (conn && !server_gone(hr))
            m = conn->manager();
        text = describe_hresult(m.Get(), hr);
        return S_OK;
    });
    Py_END_ALLOW_THREADS
    PyObject* message = text.empty() ? Py_NewRef(Py_None)
                                     : PyUnicode_FromWideChar(text.data(), (Py_ssize_t)text.size());
    if (!message)
        return nullptr;
    PyObject* exc =
        PyObject_CallFunction(st->error_factory, "kO", static_cast<unsigned long>(hr), message);
    Py_DECREF(message);
    if (exc) {
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
        Py_DECREF(exc);
    }
    return nullptr;
}

bool check_open(ManagerObject* m) {
    if (!m->conn || m->conn->closed()) {
        PyErr_SetString(PyExc_ValueError, "operation on a closed BITS manager");
        return false;
    }
    return true;
}

// --- Strings: the one conversion each way -------------------------------------------

PyObject* to_py(const wchar_t* s) {
    return PyUnicode_FromWideChar(s ? s : L"", -1);
}

// A str as NUL-terminated UTF-16 for COM. Strict: a lone surrogate raises
// UnicodeEncodeError and an embedded NUL raises ValueError, before any COM call.
class WideArg {
public:
    WideArg() = default;
    WideArg(const WideArg&) = delete;
    WideArg& operator=(const WideArg&) = delete;
    ~WideArg() { PyMem_Free(p_); }
    bool set(PyObject* text, const char* what) {
        PyObject* utf16 = PyUnicode_AsEncodedString(text, "utf-16-le", "strict");
        if (!utf16)
            return false;
        char* data = nullptr;
        Py_ssize_t bytes = 0;
        bool ok = PyBytes_AsStringAndSize(utf16, &data, &bytes) == 0;
        size_t n = ok ? static_cast<size_t>(bytes) / sizeof(wchar_t) : 0;
        if (ok) {
            p_ = static_cast<wchar_t*>(PyMem_Malloc((n + 1) * sizeof(wchar_t)));
            if (!p_) {
                PyErr_NoMemory();
                ok = false;
            }
        }
        if (ok) {
            memcpy(p_, data, n * sizeof(wchar_t));
            p_[n] = L'\0';
            if (wcslen(p_) != n) {
                PyErr_Format(PyExc_ValueError, "%s must not contain NUL characters", what);
                ok = false;
            }
        }
        Py_DECREF(utf16);
        return ok;
    }
    const wchar_t* get() const { return p_; }

private:
    wchar_t* p_ = nullptr;
};

bool guid_arg(const char* bytes, Py_ssize_t size, GUID* out) {
    if (size != sizeof(GUID)) {
        PyErr_SetString(PyExc_ValueError, "an id must be 16 bytes (uuid.UUID.bytes_le)");
        return false;
    }
    memcpy(out, bytes, sizeof(GUID));
    return true;
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

// Takes over the reference in job.
PyObject* new_job(ManagerObject* m, ComPtr<IBackgroundCopyJob>& job) {
    PyObject* o = alloc(state_of(reinterpret_cast<PyObject*>(m))->job_type);
    if (!o)
        return nullptr;
    auto* j = reinterpret_cast<JobObject*>(o);
    j->manager = reinterpret_cast<ManagerObject*>(Py_NewRef(reinterpret_cast<PyObject*>(m)));
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
    f->handle = handle;
    return o;
}

// A list of objects made by make() from items; what was not wrapped is released in the MTA.
template <class I, class Make>
PyObject* wrap_all(std::vector<ComPtr<I>>& items, Make make) {
    PyObject* list = PyList_New(0);
    for (size_t i = 0; list && i < items.size(); ++i) {
        PyObject* o = make(items[i]);
        if (!o || PyList_Append(list, o) < 0)
            Py_CLEAR(list);
        Py_XDECREF(o);
    }
    unlocked([&] {
        items.clear();
        return S_OK;
    });
    return list;
}

// One property: read(value) runs in the MTA with the GIL released. A property the server
// does not implement (E_NOTIMPL, as Wine's owner, times or priority) reads as None.
template <class T, class Read, class Build>
PyObject* read_property(PyObject* self, ManagerObject* m, Read read, Build build) {
    if (!check_open(m))
        return nullptr;
    T value{};
    HRESULT hr = unlocked([&] { return read(value); });
    if (hr == E_NOTIMPL)
        Py_RETURN_NONE;
    if (FAILED(hr))
        return raise_hresult(state_of(self), m->conn, hr);
    return build(value);
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
        wrap_all(found, [](ComPtr<IBackgroundCopyJob>&) { return nullptr; });
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
    return PyUnicode_FromWideChar(text.data(), (Py_ssize_t)text.size());
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

void job_dealloc(PyObject* self) {
    JobObject* j = as_job(self);
    IBackgroundCopyJob* job = j->job;
    Py_BEGIN_ALLOW_THREADS
    release_in_mta(job);
    Py_END_ALLOW_THREADS
    Py_XDECREF(reinterpret_cast<PyObject*>(j->manager));
    free_object(self);
}

// A string property of a job or file: iface->get(&out), the CoTaskMem string freed.
template <class I>
PyObject* string_property(PyObject* self, ManagerObject* m, I* iface,
                          HRESULT (STDMETHODCALLTYPE I::*get)(LPWSTR*)) {
    return read_property<CoTaskString>(
        self, m, [&](CoTaskString& s) { return (iface->*get)(s.put()); },
        [](CoTaskString& s) { return to_py(s.get()); });
}

PyObject* job_string(PyObject* self,
                     HRESULT (STDMETHODCALLTYPE IBackgroundCopyJob::*get)(LPWSTR*)) {
    return string_property(self, as_job(self)->manager, as_job(self)->job, get);
}

PyObject* job_name(PyObject* self, PyObject*) {
    return job_string(self, &IBackgroundCopyJob::GetDisplayName);
}
PyObject* job_description(PyObject* self, PyObject*) {
    return job_string(self, &IBackgroundCopyJob::GetDescription);
}
PyObject* job_owner(PyObject* self, PyObject*) {
    return job_string(self, &IBackgroundCopyJob::GetOwner);
}

PyObject* job_id(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    return read_property<GUID>(
        self, j->manager, [&](GUID& g) { return j->job->GetId(&g); },
        [](GUID& g) { return PyBytes_FromStringAndSize(reinterpret_cast<char*>(&g), sizeof g); });
}

PyObject* job_state(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    return read_property<BG_JOB_STATE>(
        self, j->manager, [&](BG_JOB_STATE& v) { return j->job->GetState(&v); },
        [](BG_JOB_STATE& v) { return PyLong_FromLong(v); });
}

PyObject* job_type(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    return read_property<BG_JOB_TYPE>(
        self, j->manager, [&](BG_JOB_TYPE& v) { return j->job->GetType(&v); },
        [](BG_JOB_TYPE& v) { return PyLong_FromLong(v); });
}

PyObject* job_priority(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    return read_property<BG_JOB_PRIORITY>(
        self, j->manager, [&](BG_JOB_PRIORITY& v) { return j->job->GetPriority(&v); },
        [](BG_JOB_PRIORITY& v) { return PyLong_FromLong(v); });
}

PyObject* job_progress(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    return read_property<BG_JOB_PROGRESS>(
        self, j->manager, [&](BG_JOB_PROGRESS& p) { return j->job->GetProgress(&p); },
        [](BG_JOB_PROGRESS& p) {
            return Py_BuildValue("(KKkk)", p.BytesTotal, p.BytesTransferred, p.FilesTotal,
                                 p.FilesTransferred);
        });
}

PyObject* job_times(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    return read_property<JobTimes>(
        self, j->manager, [&](JobTimes& t) { return read_job_times(j->job, t); },
        [](JobTimes& t) {
            return Py_BuildValue("(KKK)", t.creation, t.modification, t.transfer_completion);
        });
}

PyObject* optional_text(bool has, const std::wstring& s) {
    if (!has)
        return Py_NewRef(Py_None);
    return PyUnicode_FromWideChar(s.data(), (Py_ssize_t)s.size());
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
        return raise_hresult(state_of(self), j->manager->conn, hr);
    return Py_BuildValue("(kiNNNNN)", static_cast<unsigned long>(e.code), e.context,
                         optional_text(e.has_description, e.description),
                         optional_text(e.has_context_description, e.context_description),
                         optional_text(e.has_protocol, e.protocol),
                         optional_text(e.has_file, e.remote_name),
                         optional_text(e.has_file, e.local_name));
}

PyObject* job_files(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    if (!check_open(j->manager))
        return nullptr;
    std::vector<ComPtr<IBackgroundCopyFile>> found;
    HRESULT hr = unlocked([&] { return list_files(j->job, found); });
    if (FAILED(hr)) {
        wrap_all(found, [](ComPtr<IBackgroundCopyFile>&) { return nullptr; });
        return raise_hresult(state_of(self), j->manager->conn, hr);
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
        return raise_hresult(state_of(self), j->manager->conn, hr);
    Py_RETURN_NONE;
}

using JobVerb = HRESULT (STDMETHODCALLTYPE IBackgroundCopyJob::*)();

// A control verb; returns its HRESULT, which may be a BITS success code
// (BG_S_PARTIAL_COMPLETE, BG_S_UNABLE_TO_DELETE_FILES).
PyObject* job_verb(PyObject* self, JobVerb verb) {
    JobObject* j = as_job(self);
    if (!check_open(j->manager))
        return nullptr;
    HRESULT hr = unlocked([&] { return (j->job->*verb)(); });
    if (FAILED(hr))
        return raise_hresult(state_of(self), j->manager->conn, hr);
    return PyLong_FromLong(hr);
}

PyObject* job_resume(PyObject* self, PyObject*) {
    return job_verb(self, &IBackgroundCopyJob::Resume);
}
PyObject* job_suspend(PyObject* self, PyObject*) {
    return job_verb(self, &IBackgroundCopyJob::Suspend);
}
PyObject* job_cancel(PyObject* self, PyObject*) {
    return job_verb(self, &IBackgroundCopyJob::Cancel);
}
PyObject* job_complete(PyObject* self, PyObject*) {
    return job_verb(self, &IBackgroundCopyJob::Complete);
}

PyMethodDef job_methods[] = {
    {"id", job_id, METH_NOARGS, "GetId -> 16 bytes (uuid bytes_le)"},
    {"name", job_name, METH_NOARGS, "GetDisplayName"},
    {"description", job_description, METH_NOARGS, "GetDescription"},
    {"owner", job_owner, METH_NOARGS, "GetOwner (SID string), None if not implemented"},
    {"type", job_type, METH_NOARGS, "GetType"},
    {"state", job_state, METH_NOARGS, "GetState"},
    {"priority", job_priority, METH_NOARGS, "GetPriority, None if not implemented"},
    {"progress", job_progress, METH_NOARGS,
     "GetProgress -> (bytes_total, bytes_transferred, files_total, files_transferred)"},
    {"times", job_times, METH_NOARGS,
     "GetTimes -> FILETIME ticks (creation, modification, transfer_completion)"},
    {"error", job_error, METH_NOARGS, "GetError -> tuple or None"},
    {"files", job_files, METH_NOARGS, "EnumFiles -> list of File"},
    {"add_file", job_add_file, METH_VARARGS, "AddFile(url, path)"},
    {"resume", job_resume, METH_NOARGS, "Resume -> HRESULT"},
    {"suspend", job_suspend, METH_NOARGS, "Suspend -> HRESULT"},
    {"cancel", job_cancel, METH_NOARGS, "Cancel -> HRESULT"},
    {"complete", job_complete, METH_NOARGS, "Complete -> HRESULT"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot job_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(job_dealloc)},
    {Py_tp_methods, job_methods},
    {Py_tp_doc, const_cast<char*>("A BITS job (IBackgroundCopyJob).")},
    {0, nullptr},
};

// --- File ---------------------------------------------------------------------------

FileObject* as_file(PyObject* self) {
    return reinterpret_cast<FileObject*>(self);
}

void file_dealloc(PyObject* self) {
    FileObject* f = as_file(self);
    FileHandle* handle = f->handle;
    Py_BEGIN_ALLOW_THREADS
    delete handle;
    Py_END_ALLOW_THREADS
    Py_XDECREF(reinterpret_cast<PyObject*>(f->manager));
    free_object(self);
}

PyObject* file_remote_name(PyObject* self, PyObject*) {
    return string_property(self, as_file(self)->manager, as_file(self)->handle->file(),
                           &IBackgroundCopyFile::GetRemoteName);
}
PyObject* file_local_name(PyObject* self, PyObject*) {
    return string_property(self, as_file(self)->manager, as_file(self)->handle->file(),
                           &IBackgroundCopyFile::GetLocalName);
}

PyObject* file_progress(PyObject* self, PyObject*) {
    FileObject* f = as_file(self);
    return read_property<BG_FILE_PROGRESS>(
        self, f->manager, [&](BG_FILE_PROGRESS& p) { return f->handle->file()->GetProgress(&p); },
        [](BG_FILE_PROGRESS& p) {
            return Py_BuildValue("(KKN)", p.BytesTotal, p.BytesTransferred,
                                 PyBool_FromLong(p.Completed));
        });
}

// IBackgroundCopyFile3/4 reads: None where the server lacks the interface.
template <class T, class Read, class Build>
PyObject* optional_interface_read(PyObject* self, Read read, Build build) {
    FileObject* f = as_file(self);
    return read_property<T>(
        self, f->manager,
        [&](T& v) {
            HRESULT hr = read(*f->handle, *f->manager->conn, v);
            return hr == E_NOINTERFACE ? E_NOTIMPL : hr;
        },
        build);
}

PyObject* file_downloaded_from_peer(PyObject* self, PyObject*) {
    return optional_interface_read<BOOL>(
        self,
        [](FileHandle& h, Connection& c, BOOL& v) {
            IBackgroundCopyFile3* f3 = nullptr;
            HRESULT hr = h.file3(c, &f3);
            return FAILED(hr) ? hr : f3->IsDownloadedFromPeer(&v);
        },
        [](BOOL& v) { return PyBool_FromLong(v); });
}

PyObject* file_peer_stats(PyObject* self, PyObject*) {
    return optional_interface_read<PeerStats>(
        self,
        [](FileHandle& h, Connection& c, PeerStats& s) {
            IBackgroundCopyFile4* f4 = nullptr;
            HRESULT hr = h.file4(c, &f4);
            return FAILED(hr) ? hr : f4->GetPeerDownloadStats(&s.from_origin, &s.from_peers);
        },
        [](PeerStats& s) { return Py_BuildValue("(KK)", s.from_origin, s.from_peers); });
}

PyMethodDef file_methods[] = {
    {"remote_name", file_remote_name, METH_NOARGS, "GetRemoteName"},
    {"local_name", file_local_name, METH_NOARGS, "GetLocalName"},
    {"progress", file_progress, METH_NOARGS,
     "GetProgress -> (bytes_total, bytes_transferred, completed)"},
    {"downloaded_from_peer", file_downloaded_from_peer, METH_NOARGS,
     "IBackgroundCopyFile3::IsDownloadedFromPeer, None where absent"},
    {"peer_stats", file_peer_stats, METH_NOARGS,
     "IBackgroundCopyFile4::GetPeerDownloadStats -> (from_origin, from_peers), None where absent"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot file_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(file_dealloc)},
    {Py_tp_methods, file_methods},
    {Py_tp_doc, const_cast<char*>("A file of a BITS job (IBackgroundCopyFile).")},
    {0, nullptr},
};

// --- Poller -------------------------------------------------------------------------

PyObject* wide_to_py(const std::wstring& s) {
    return PyUnicode_FromWideChar(s.data(), static_cast<Py_ssize_t>(s.size()));
}

PyObject* guid_to_py(const GUID& g) {
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(&g), sizeof g);
}

// (remote, local, bytes_total, bytes_transferred, completed, (from_origin, from_peers) or None)
PyObject* file_record(const FileState& f) {
    PyObject* stats = f.has_stats ? Py_BuildValue("(KK)", f.stats.from_origin, f.stats.from_peers)
                                  : Py_NewRef(Py_None);
    if (!stats)
        return nullptr;
    return Py_BuildValue("(NNKKNN)", wide_to_py(f.remote), wide_to_py(f.local),
                         f.progress.BytesTotal, f.progress.BytesTransferred,
                         PyBool_FromLong(f.progress.Completed), stats);
}

// (id, name, owner or None, state, (bytes_total, bytes_transferred, files_total,
// files_transferred), (created, modified, transfer_completed) FILETIMEs or None,
// [file records])
PyObject* job_record(const JobState& j) {
    PyObject* files = PyList_New(static_cast<Py_ssize_t>(j.files.size()));
    for (size_t i = 0; files && i < j.files.size(); ++i) {
        PyObject* f = file_record(j.files[i]);
        if (!f || PyList_SetItem(files, static_cast<Py_ssize_t>(i), f) < 0)
            Py_CLEAR(files);
    }
    if (!files)
        return nullptr;
    const BG_JOB_PROGRESS& p = j.progress;
    PyObject* times = j.has_times ? Py_BuildValue("(KKK)", j.times.creation, j.times.modification,
                                                  j.times.transfer_completion)
                                  : Py_NewRef(Py_None);
    if (!times) {
        Py_DECREF(files);
        return nullptr;
    }
    return Py_BuildValue("(NNNi(KKkk)NN)", guid_to_py(j.id), wide_to_py(j.name),
                         j.has_owner ? wide_to_py(j.owner) : Py_NewRef(Py_None),
                         static_cast<int>(j.state), p.BytesTotal, p.BytesTransferred, p.FilesTotal,
                         p.FilesTransferred, times, files);
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
    HRESULT hr;
    // The poller's lock is only ever taken with the GIL released (no lock-order
    // deadlock), and held until Python has read the results.
    Py_BEGIN_ALLOW_THREADS
    poller->lock().lock();
    hr = in_mta([&] { return poller->poll(threads); });
    Py_END_ALLOW_THREADS
    PyObject* result = nullptr;
    if (SUCCEEDED(hr)) {
        const auto& jobs = poller->jobs();
        PyObject* order = PyList_New(static_cast<Py_ssize_t>(jobs.size()));
        PyObject* changed = PyList_New(0);
        for (size_t i = 0; order && changed && i < jobs.size(); ++i) {
            PyObject* id = guid_to_py(jobs[i]->id);
            if (!id || PyList_SetItem(order, static_cast<Py_ssize_t>(i), id) < 0) {
                Py_CLEAR(order);
                break;
            }
            if (!jobs[i]->changed)
                continue;
            PyObject* record = job_record(*jobs[i]);
            if (!record || PyList_Append(changed, record) < 0)
                Py_CLEAR(changed);
            Py_XDECREF(record);
        }
        if (order && changed)
            result = PyTuple_Pack(2, order, changed);
        Py_XDECREF(order);
        Py_XDECREF(changed);
    }
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
    GUID clsid = kClsidManager10;
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

// The benchmarks' floor: the (from_origin, from_peers) result of File.peer_stats() built
// the same way, without the COM call and its GIL release.
PyObject* native_peer_stats_floor(PyObject*, PyObject*) {
    PeerStats s{1234567, 89};
    return Py_BuildValue("(KK)", s.from_origin, s.from_peers);
}

PyMethodDef module_methods[] = {
    {"connect", native_connect, METH_VARARGS, "connect(clsid_bytes_le=None) -> Manager"},
    {"bits_version", native_bits_version, METH_NOARGS, "bits_version() -> (major, minor)"},
    {"_peer_stats_floor", native_peer_stats_floor, METH_NOARGS, "benchmark floor (no COM call)"},
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
    PyObject* errors = PyImport_ImportModule("winbits._errors");
    if (!errors)
        return -1;
    st->error_factory = PyObject_GetAttrString(errors, "from_hresult");
    Py_DECREF(errors);
    return st->error_factory ? 0 : -1;
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
}

// Slots newer than the 3.10 ABI we build for go only to the Pythons that know them:
// 3.10 and 3.11 refuse a module with an unknown slot id. The module keeps all its
// state in module state, so it is safe in every interpreter, each with its own GIL.
PyModuleDef_Slot slots_310[] = {
    {Py_mod_exec, reinterpret_cast<void*>(module_exec)},
    {0, nullptr},
};
PyModuleDef_Slot slots_312[] = {
    {Py_mod_exec, reinterpret_cast<void*>(module_exec)},
    {3 /* Py_mod_multiple_interpreters */, reinterpret_cast<void*>(2) /* per-GIL ok */},
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
