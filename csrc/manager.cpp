// winbits._native.Manager: a connection to one BITS manager (IBackgroundCopyManager),
// and the jobs, pollers and texts it gives.
#include "binding.h"

namespace winbits::py {

namespace {

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

// fn(manager) in the MTA with the GIL released, through the connection's manager of the
// moment; `generation` gets the generation that manager belongs to.
template <class Fn>
HRESULT through_manager(ManagerObject* m, unsigned& generation, Fn fn) {
    return without_gil_in_mta([&] {
        ComPtr<IBackgroundCopyManager> mgr = m->conn->manager(&generation);
        return mgr ? fn(mgr.Get()) : kClosed;
    });
}

PyObject* manager_jobs(PyObject* self, PyObject* args) {
    int all_users = 0;
    if (!PyArg_ParseTuple(args, "p:jobs", &all_users))
        return nullptr;
    auto* m = reinterpret_cast<ManagerObject*>(self);
    if (!check_open(m))
        return nullptr;
    std::vector<ComPtr<IBackgroundCopyJob>> found;
    std::vector<GUID> ids;  // in the same batch: a Job's repr, hash and == need no call
    std::vector<char> has_ids;
    unsigned gen = 0;
    HRESULT hr = through_manager(m, gen, [&](IBackgroundCopyManager* mgr) {
        HRESULT r = list_jobs(mgr, all_users != 0, found);
        ids.resize(found.size());
        has_ids.resize(found.size());
        for (size_t i = 0; SUCCEEDED(r) && i < found.size(); ++i)
            has_ids[i] = SUCCEEDED(found[i]->GetId(&ids[i]));  // one that left: read later
        return r;
    });
    if (FAILED(hr)) {
        release_all(found);
        return raise_hresult(state_of(self), m->conn, hr, &gen);
    }
    size_t next = 0;
    return wrap_all(found, [&](ComPtr<IBackgroundCopyJob>& j) {
        size_t i = next++;
        return new_job(m, j, gen, has_ids[i] ? &ids[i] : nullptr);
    });
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
    unsigned gen = 0;
    HRESULT hr = through_manager(
        m, gen, [&](IBackgroundCopyManager* mgr) { return mgr->GetJob(guid, job.put()); });
    if (FAILED(hr))
        return raise_hresult(state_of(self), m->conn, hr, &gen);
    return new_job(m, job, gen, &guid);
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
    unsigned gen = 0;
    GUID id{};
    HRESULT hr = through_manager(m, gen, [&](IBackgroundCopyManager* mgr) {
        return mgr->CreateJob(name.get(), static_cast<BG_JOB_TYPE>(type), &id, job.put());
    });
    if (FAILED(hr))
        return raise_hresult(state_of(self), m->conn, hr, &gen);
    return new_job(m, job, gen, &id);
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
    without_gil_in_mta([&] {
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

}  // namespace

PyType_Spec manager_spec = {"winbits._native.Manager", sizeof(ManagerObject), 0, kTypeFlags,
                            manager_slots};

}  // namespace winbits::py
