// winbits._native.Poller: the fast path's Python face. The walk itself is the COM core's
// (poller.cpp); this turns its records into tuples for the facade.
#include "binding.h"

namespace winbits::py {

namespace {

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
// [file records], type)
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
    return Py_BuildValue("(NNNi(KKkk)NNi)", py_guid(j.id), to_py(j.name),
                         to_py_or_none(j.has_owner, j.owner), static_cast<int>(j.state),
                         p.BytesTotal, p.BytesTransferred, p.FilesTotal, p.FilesTransferred,
                         times.release(), files.release(), static_cast<int>(j.type));
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
    delete_in_mta(poller);  // its jobs' and files' proxies, in one batch
    Py_END_ALLOW_THREADS
    Py_XDECREF(reinterpret_cast<PyObject*>(p->manager));
    free_object(self);
}

// Forgets what the poller saw; its proxies are released in the MTA. No GIL here.
void reset_in_mta(Poller* poller) {
    in_mta([poller] {
        poller->reset();
        return S_OK;
    });
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
    if (SUCCEEDED(hr) && !result) {  // the walk is done, but Python never got it: go cold
        Py_BEGIN_ALLOW_THREADS
        reset_in_mta(poller);
        Py_END_ALLOW_THREADS
    }
    const unsigned generation = poller->generation();
    poller->lock().unlock();
    if (FAILED(hr))
        return raise_hresult(state_of(self), p->manager->conn, hr, &generation);
    return result;
}

// reset(): the next poll is cold and reports every job, for a facade that could not take
// in the last poll's results.
PyObject* poller_reset(PyObject* self, PyObject*) {
    Poller* poller = reinterpret_cast<PollerObject*>(self)->poller;
    if (waiting_for_mta_worker())  // its lock may be held by the poll this one interrupted
        return raise_hresult(state_of(self), nullptr, HRESULT_FROM_WIN32(ERROR_POSSIBLE_DEADLOCK));
    Py_BEGIN_ALLOW_THREADS
    poller->lock().lock();
    reset_in_mta(poller);
    poller->lock().unlock();
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

PyMethodDef poller_methods[] = {
    {"poll", poller_poll, METH_VARARGS, "poll(threads) -> (order, changed records)"},
    {"reset", poller_reset, METH_NOARGS, "reset(): the next poll reports every job"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot poller_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(poller_dealloc)},
    {Py_tp_methods, poller_methods},
    {Py_tp_doc, const_cast<char*>("Walks the BITS queue, re-reading only what moved.")},
    {0, nullptr},
};

}  // namespace

PyType_Spec poller_spec = {"winbits._native.Poller", sizeof(PollerObject), 0, kTypeFlags,
                           poller_slots};

}  // namespace winbits::py
