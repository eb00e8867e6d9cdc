// winbits._native: the CPython binding over the COM core. This file is the module itself:
// its functions, its state (exec, traverse, clear, free) and its slots. The types are in
// manager.cpp, job.cpp (+ job_settings.cpp), file.cpp and poller_type.cpp; what they
// share is in binding.h. Heap types with module state, multi-phase init, stable ABI 3.10.
#include <cstdio>

#include "account.h"
#include "binding.h"
#include "console.h"
#include "eventlog.h"
#include "system.h"

using namespace winbits;
using namespace winbits::py;

namespace {

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
    {"account_sid", native_account_sid, METH_O,
     "account_sid(name) -> the SID of an account name, as S-1-5-..."},
    {"service_status", native_service_status, METH_O,
     "service_status(name) -> (state, start_type)"},
    {"process_identity", native_process_identity, METH_NOARGS,
     "process_identity() -> (account or None, SID, elevated or None, logon type or None)"},
    {"ie_proxy", native_ie_proxy, METH_NOARGS,
     "ie_proxy() -> (auto_detect, auto_config_url, proxy, bypass) of this user"},
    {"branchcache_mode", native_branchcache_mode, METH_NOARGS,
     "branchcache_mode() -> int, str or None: BranchCache's client mode (WMI)"},
    {"event_log_read", native_event_log_read, METH_VARARGS,
     "event_log_read(channel, xpath, limit, reverse) -> [event XML, ...]"},
    {"event_log_enabled", native_event_log_enabled, METH_O, "event_log_enabled(channel) -> bool"},
    {"vt_output", native_vt_output, METH_NOARGS,
     "vt_output() -> whether standard output is a console that interprets VT sequences "
     "(turned on where it can be)"},
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
        st->bell->Release();
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
