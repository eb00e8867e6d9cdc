// The binding's shared pieces: strings each way, the one HRESULT-to-exception function,
// value builders, and making the Job and File wrappers.
#include "binding.h"

namespace winbits::py {

ModuleState* state_of(PyObject* self) {
    return static_cast<ModuleState*>(PyType_GetModuleState(Py_TYPE(self)));
}

ModuleState* module_state(PyObject* module) {
    return static_cast<ModuleState*>(PyModule_GetState(module));
}

// --- Strings ------------------------------------------------------------------------

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

WideArg::~WideArg() {
    if (p_)
        SecureZeroMemory(p_, static_cast<size_t>(n_) * sizeof(wchar_t));
    PyMem_Free(p_);
}

bool WideArg::set(PyObject* text, const char* what) {
    Py_ssize_t& n = n_;
    p_ = PyUnicode_AsWideCharString(text, &n);
    if (!p_)
        return false;
    for (Py_ssize_t i = 0; i < n; ++i) {
        wchar_t c = p_[i];
        if (c >= 0xD800 && c < 0xDC00 && i + 1 < n && p_[i + 1] >= 0xDC00 && p_[i + 1] < 0xE000) {
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

bool optional_text(PyObject* arg, WideArg& out, const char* what) {
    if (arg == Py_None)
        return true;
    if (!PyUnicode_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "%s must be str or None", what);
        return false;
    }
    return out.set(arg, what);
}

bool read_ranges(PyObject* list, std::vector<BG_FILE_RANGE>& out) {
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "ranges must be a list of (offset, length)");
        return false;
    }
    Py_ssize_t n = PyList_Size(list);
    try {
        out.resize(static_cast<size_t>(n));
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
        return false;
    }
    for (Py_ssize_t i = 0; i < n && i < PyList_Size(list); ++i) {
        // Held while it is read: a number's __index__ may change the list under us.
        PyRef item(Py_NewRef(PyList_GetItem(list, i)));
        if (!PyArg_ParseTuple(item.get(), "KK:range", &out[i].InitialOffset, &out[i].Length))
            return false;
    }
    if (PyList_Size(list) != n) {
        PyErr_SetString(PyExc_RuntimeError, "the ranges changed while they were read");
        return false;
    }
    return true;
}

PyObject* py_ranges(const BG_FILE_RANGE* ranges, DWORD count) {
    PyRef list(PyList_New(0));
    if (!list)
        return nullptr;
    for (DWORD i = 0; ranges && i < count; ++i) {
        PyRef item(Py_BuildValue("(KK)", ranges[i].InitialOffset, ranges[i].Length));
        if (!item || PyList_Append(list.get(), item.get()) < 0)
            return nullptr;
    }
    return list.release();
}

// --- Errors -------------------------------------------------------------------------

namespace {

bool service_gone(const ModuleState* st, HRESULT hr) {
    for (int i = 0; i < st->n_service_gone; ++i)
        if (st->service_gone[i] == static_cast<unsigned long>(hr))
            return true;
    return false;
}

}  // namespace

PyObject* raise_hresult(ModuleState* st, Connection* conn, HRESULT hr, const unsigned* seen,
                        bool from_object) {
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
    if (gone && from_object) {
        try {
            if (text.empty())
                text = L"the BITS service went away";
            text +=
                L" (this object belongs to the BITS service from before: get the job again "
                L"from the manager)";
        } catch (const std::bad_alloc&) {
            return PyErr_NoMemory();
        }
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
    return raise_hresult(state_of(self), c->manager->conn, hr, &c->generation, true);
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

// --- Values -------------------------------------------------------------------------

PyObject* py_guid(const GUID& g) {
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(&g), sizeof g);
}
PyObject* py_bool(const BOOL& v) {
    return PyBool_FromLong(v);
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

// --- Objects ------------------------------------------------------------------------

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

namespace {

// A wrapper of type tp around a new handle of `com` (moved only once the handle is
// made); the handle is deleted in the MTA, and com released, when no wrapper can be made.
template <class Obj, class Handle, class I>
PyObject* wrap(ManagerObject* m, PyTypeObject* tp, ComPtr<I>& com, unsigned generation) {
    auto* handle = new (std::nothrow) Handle(std::move(com));
    if (!handle) {
        IUnknown* orphan = com.Detach();
        Py_BEGIN_ALLOW_THREADS
        release_in_mta(orphan);
        Py_END_ALLOW_THREADS
        return PyErr_NoMemory();
    }
    PyObject* o = alloc(tp);
    if (!o) {
        Py_BEGIN_ALLOW_THREADS
        delete_in_mta(handle);
        Py_END_ALLOW_THREADS
        return nullptr;
    }
    auto* w = reinterpret_cast<Obj*>(o);
    w->manager = reinterpret_cast<ManagerObject*>(Py_NewRef(reinterpret_cast<PyObject*>(m)));
    w->generation = generation;
    w->handle = handle;
    return o;
}

}  // namespace

PyObject* new_job(ManagerObject* m, ComPtr<IBackgroundCopyJob>& job, unsigned generation,
                  const GUID* id) {
    ModuleState* st = state_of(reinterpret_cast<PyObject*>(m));
    PyObject* o = wrap<JobObject, JobHandle>(m, st->job_type, job, generation);
    if (o && id) {
        as_job(o)->id = *id;
        as_job(o)->has_id = true;
    }
    return o;
}

PyObject* new_file(ManagerObject* m, ComPtr<IBackgroundCopyFile>& file, unsigned generation) {
    ModuleState* st = state_of(reinterpret_cast<PyObject*>(m));
    return wrap<FileObject, FileHandle>(m, st->file_type, file, generation);
}

}  // namespace winbits::py
