// winbits._native.Job: a BITS job (IBackgroundCopyJob and its richer interfaces). Its
// method table has a line per BITS method; the shapes come from binding.h, the settings
// that take more than one value from job_settings.cpp.
#include <algorithm>

#include "job.h"

namespace winbits::py {

namespace {

using Job = IBackgroundCopyJob;
using Job2 = IBackgroundCopyJob2;
using Job4 = IBackgroundCopyJob4;
using HttpOptions = IBackgroundCopyJobHttpOptions;
using HttpOptions2 = IBackgroundCopyJobHttpOptions2;
using HttpOptions3 = IBackgroundCopyJobHttpOptions3;
using Job3 = IBackgroundCopyJob3;
using Tokens = IBitsTokenOptions;

// Tokens name a wait's notifier when it rings the doorbell: unique in the process.
std::atomic<unsigned long long> g_next_token{1};

// A getter through the job's interface I: a number, enum or struct; a string.
template <class I, class T, HRESULT (STDMETHODCALLTYPE I::*Get)(T*),
          PyObject* (*Build)(const T&) = py_uint<T>>
constexpr PyCFunction job_get = get<JobObject, I, T, Get, Build>;
template <class I, HRESULT (STDMETHODCALLTYPE I::*Get)(LPWSTR*),
          PyObject* (*Build)(const CoTaskString&) = py_string_or_none>
constexpr PyCFunction job_string = get_string<JobObject, I, Get, Build>;

PyObject* py_job_progress(const BG_JOB_PROGRESS& p) {
    return Py_BuildValue("(KKkk)", p.BytesTotal, p.BytesTransferred, p.FilesTotal,
                         p.FilesTransferred);
}

// A control verb; returns its HRESULT, which may be a BITS success code
// (BG_S_PARTIAL_COMPLETE, BG_S_UNABLE_TO_DELETE_FILES) for the facade to act on.
template <HRESULT (STDMETHODCALLTYPE Job::*Verb)()>
PyObject* job_verb(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    if (!check_open(j->manager))
        return nullptr;
    IBackgroundCopyJob* job = j->handle->job();
    HRESULT hr = without_gil_in_mta([&] { return (job->*Verb)(); });
    if (FAILED(hr))
        return raise_for(self, hr);
    return PyLong_FromLong(hr);
}

// A method without arguments through one of the job's interfaces; None, or the error.
template <class I, HRESULT (STDMETHODCALLTYPE I::*Verb)()>
PyObject* job_verb_through(PyObject* self, PyObject*) {
    JobObject* job = as_job(self);
    return write_property(self,
                          [&] { return through<I>(job, [&](I* i) { return (i->*Verb)(); }); });
}

// A setter of a number or enum through the job or one of its interfaces; the facade has
// checked the value's range.
template <class I, class T, HRESULT (STDMETHODCALLTYPE I::*Set)(T)>
PyObject* job_set_number(PyObject* self, PyObject* arg) {
    unsigned long v = PyLong_AsUnsignedLong(arg);
    if (v == static_cast<unsigned long>(-1) && PyErr_Occurred())
        return nullptr;
    JobObject* job = as_job(self);
    return write_property(
        self, [&] { return through<I>(job, [&](I* i) { return (i->*Set)(static_cast<T>(v)); }); });
}

// A setter of a string through the job or one of its interfaces. None passes a null
// string (custom headers: remove them all).
template <class I, HRESULT (STDMETHODCALLTYPE I::*Set)(LPCWSTR)>
PyObject* job_set_string(PyObject* self, PyObject* arg) {
    WideArg text;
    if (!optional_text(arg, text, "the value"))
        return nullptr;
    JobObject* job = as_job(self);
    return write_property(
        self, [&] { return through<I>(job, [&](I* i) { return (i->*Set)(text.get()); }); });
}

// --- Waiting: wait()'s registration on the job ----------------------------------------

// listen(ring=False) -> a token (> 0) with winbits' notifier registered on the job (for a
// job this process created), 0 where it is not registered (then wait() polls). With `ring`,
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
    JobHandle* handle = j->handle;
    HRESULT hr = without_gil_in_mta([&] { return handle->listen(bell, token); });
    if (SUCCEEDED(hr))
        return PyLong_FromUnsignedLongLong(token);
    // Another wait on this object listens already (it keeps the registration; this one
    // polls), the job has a notify command line, or BITS refuses the callback.
    if (hr == kListenBusy || hr == kListenCommandLine || hr == E_NOTIMPL || hr == E_ACCESSDENIED ||
        hr == E_NOINTERFACE || hr == kBgInvalidState)
        return PyLong_FromLong(0);
    return raise_for(self, hr);
}

// How often a long wait looks for Ctrl-C and Ctrl-Break: a signal handler only runs when
// the main thread comes back to Python.
constexpr DWORD kSignalSliceMs = 100;

// Waits up to `ms` for the event; a thread in a single-threaded apartment dispatches its
// messages meanwhile. No GIL here.
bool wait_for_event(HANDLE event, DWORD ms) {
    DWORD index = 0;
    HRESULT hr = CoWaitForMultipleHandles(COWAIT_DISPATCH_CALLS | COWAIT_DISPATCH_WINDOW_MESSAGES,
                                          ms, 1, &event, &index);
    if (hr == RPC_S_CALLPENDING)
        return false;
    if (SUCCEEDED(hr))
        return true;
    // no COM on this thread, or flags this Windows does not know: a plain wait
    return WaitForSingleObject(event, ms) == WAIT_OBJECT_0;
}

// notified(milliseconds) -> whether BITS called back within that time. The GIL is
// released, in slices: between them a signal (Ctrl-C) raises at once, as in time.sleep().
PyObject* job_notified(PyObject* self, PyObject* arg) {
    unsigned long ms = PyLong_AsUnsignedLong(arg);
    if (ms == static_cast<unsigned long>(-1) && PyErr_Occurred())
        return nullptr;
    ComPtr<Notifier> n = as_job(self)->handle->notifier();  // ours, whatever else happens
    if (!n) {
        PyErr_SetString(PyExc_RuntimeError, "not listening: call listen() first");
        return nullptr;
    }
    const ULONGLONG end = GetTickCount64() + ms;
    bool signalled = false;
    for (;;) {
        const ULONGLONG now = GetTickCount64();
        const DWORD slice =
            now >= end ? 0 : static_cast<DWORD>(std::min<ULONGLONG>(end - now, kSignalSliceMs));
        Py_BEGIN_ALLOW_THREADS
        signalled = wait_for_event(n->event(), slice);
        Py_END_ALLOW_THREADS
        if (signalled || slice == 0 || GetTickCount64() >= end)
            break;
        if (PyErr_CheckSignals() < 0)
            return nullptr;
    }
    return PyBool_FromLong(signalled);
}

// known_id() -> the id read when the job object was made (16 bytes), or None; no call.
PyObject* job_known_id(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    if (!j->has_id)
        Py_RETURN_NONE;
    return py_guid(j->id);
}

// unlisten(): the job's notify interface taken away and its flags put back.
PyObject* job_unlisten(PyObject* self, PyObject*) {
    JobHandle* handle = as_job(self)->handle;
    if (waiting_for_mta_worker()) {  // a message handled during this thread's own batch:
        handle->unlisten();          // BITS is told once that batch ends
        Py_RETURN_NONE;
    }
    without_gil_in_mta([&] {
        handle->unlisten();
        return S_OK;
    });
    Py_RETURN_NONE;
}

// --- Reads and files ------------------------------------------------------------------

PyObject* job_times(PyObject* self, PyObject*) {
    IBackgroundCopyJob* job = as_job(self)->handle->job();
    return read_property<JobTimes>(
        self, [&](JobTimes& t) { return read_job_times(job, t); }, py_times);
}

// (hresult, context, description, context_description, protocol, remote_name, local_name)
// or None when the job has no error.
PyObject* job_error(PyObject* self, PyObject*) {
    JobObject* j = as_job(self);
    if (!check_open(j->manager))
        return nullptr;
    IBackgroundCopyJob* job = j->handle->job();
    JobErrorInfo e;
    HRESULT hr = without_gil_in_mta([&] { return read_job_error(job, e); });
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
    IBackgroundCopyJob* job = j->handle->job();
    std::vector<ComPtr<IBackgroundCopyFile>> found;
    HRESULT hr = without_gil_in_mta([&] { return list_files(job, found); });
    if (FAILED(hr)) {
        release_all(found);
        return raise_for(self, hr);
    }
    ManagerObject* m = j->manager;
    const unsigned generation = j->generation;  // its files come from the job's service
    return wrap_all(found, [m, generation](ComPtr<IBackgroundCopyFile>& f) {
        return new_file(m, f, generation);
    });
}

PyObject* job_add_file(PyObject* self, PyObject* args) {
    PyObject *url_obj = nullptr, *path_obj = nullptr;
    if (!PyArg_ParseTuple(args, "UU:add_file", &url_obj, &path_obj))
        return nullptr;
    WideArg url, path;
    if (!url.set(url_obj, "url") || !path.set(path_obj, "path"))
        return nullptr;
    IBackgroundCopyJob* job = as_job(self)->handle->job();
    return write_property(self, [&] { return job->AddFile(url.get(), path.get()); });
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
    std::vector<BG_FILE_RANGE> ranges;
    if (!read_ranges(ranges_obj, ranges))
        return nullptr;
    JobObject* job = as_job(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyJob3>(job, [&](IBackgroundCopyJob3* j3) {
            return j3->AddFileWithRanges(url.get(), path.get(), static_cast<DWORD>(ranges.size()),
                                         ranges.data());
        });
    });
}

// Job3::ReplaceRemotePrefix(old, new): every file's URL that starts with old, moved.
PyObject* job_replace_remote_prefix(PyObject* self, PyObject* args) {
    PyObject *old_obj = nullptr, *new_obj = nullptr;
    if (!PyArg_ParseTuple(args, "UU:replace_remote_prefix", &old_obj, &new_obj))
        return nullptr;
    WideArg old_prefix, new_prefix;
    if (!old_prefix.set(old_obj, "old") || !new_prefix.set(new_obj, "new"))
        return nullptr;
    JobObject* job = as_job(self);
    return write_property(self, [&] {
        return through<Job3>(job, [&](Job3* j3) {
            return j3->ReplaceRemotePrefix(old_prefix.get(), new_prefix.get());
        });
    });
}

PyMethodDef job_methods[] = {
    {"listen", job_listen, METH_VARARGS,
     "listen(ring=False) -> token: winbits' IBackgroundCopyCallback2 on the job, or 0"},
    {"notified", job_notified, METH_O, "notified(milliseconds) -> bool: BITS called back"},
    {"unlisten", job_unlisten, METH_NOARGS, "unlisten(): SetNotifyInterface(NULL), flags back"},
    {"id", job_get<Job, GUID, &Job::GetId, py_guid>, METH_NOARGS,
     "GetId -> 16 bytes (uuid bytes_le)"},
    {"known_id", job_known_id, METH_NOARGS, "known_id() -> the id read when made, or None"},
    {"name", job_string<Job, &Job::GetDisplayName, py_string>, METH_NOARGS, "GetDisplayName"},
    {"description", job_string<Job, &Job::GetDescription, py_string>, METH_NOARGS,
     "GetDescription"},
    {"owner", job_string<Job, &Job::GetOwner, py_string>, METH_NOARGS,
     "GetOwner (SID string), None if not implemented"},
    {"type", job_get<Job, BG_JOB_TYPE, &Job::GetType>, METH_NOARGS, "GetType"},
    {"state", job_get<Job, BG_JOB_STATE, &Job::GetState>, METH_NOARGS, "GetState"},
    {"priority", job_get<Job, BG_JOB_PRIORITY, &Job::GetPriority>, METH_NOARGS,
     "GetPriority, None if not implemented"},
    {"progress", job_get<Job, BG_JOB_PROGRESS, &Job::GetProgress, py_job_progress>, METH_NOARGS,
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
    {"minimum_retry_delay", job_get<Job, ULONG, &Job::GetMinimumRetryDelay>, METH_NOARGS,
     "GetMinimumRetryDelay -> seconds"},
    {"set_minimum_retry_delay", job_set_number<Job, ULONG, &Job::SetMinimumRetryDelay>, METH_O,
     "SetMinimumRetryDelay(seconds)"},
    {"no_progress_timeout", job_get<Job, ULONG, &Job::GetNoProgressTimeout>, METH_NOARGS,
     "GetNoProgressTimeout -> seconds"},
    {"set_no_progress_timeout", job_set_number<Job, ULONG, &Job::SetNoProgressTimeout>, METH_O,
     "SetNoProgressTimeout(seconds)"},
    {"error_count", job_get<Job, ULONG, &Job::GetErrorCount>, METH_NOARGS, "GetErrorCount"},
    {"proxy", job_proxy, METH_NOARGS, "GetProxySettings -> (usage, list, bypass)"},
    {"set_proxy", job_set_proxy, METH_VARARGS, "SetProxySettings(usage, list, bypass)"},
    {"maximum_download_time", job_get<Job4, ULONG, &Job4::GetMaximumDownloadTime>, METH_NOARGS,
     "IBackgroundCopyJob4::GetMaximumDownloadTime -> seconds"},
    {"set_maximum_download_time", job_set_number<Job4, ULONG, &Job4::SetMaximumDownloadTime>,
     METH_O, "IBackgroundCopyJob4::SetMaximumDownloadTime(seconds)"},
    {"peer_caching", job_get<Job4, DWORD, &Job4::GetPeerCachingFlags>, METH_NOARGS,
     "IBackgroundCopyJob4::GetPeerCachingFlags"},
    {"set_peer_caching", job_set_number<Job4, DWORD, &Job4::SetPeerCachingFlags>, METH_O,
     "IBackgroundCopyJob4::SetPeerCachingFlags(flags)"},
    {"owner_integrity_level", job_get<Job4, ULONG, &Job4::GetOwnerIntegrityLevel>, METH_NOARGS,
     "IBackgroundCopyJob4::GetOwnerIntegrityLevel"},
    {"owner_elevated", job_get<Job4, BOOL, &Job4::GetOwnerElevationState, py_bool>, METH_NOARGS,
     "IBackgroundCopyJob4::GetOwnerElevationState"},
    {"notify_cmd_line", job_notify_cmd_line, METH_NOARGS,
     "IBackgroundCopyJob2::GetNotifyCmdLine -> (program, parameters)"},
    {"set_notify_cmd_line", job_set_notify_cmd_line, METH_VARARGS,
     "IBackgroundCopyJob2::SetNotifyCmdLine(program, parameters)"},
    {"reply_file_name", job_string<Job2, &Job2::GetReplyFileName>, METH_NOARGS,
     "IBackgroundCopyJob2::GetReplyFileName"},
    {"set_reply_file_name", job_set_string<Job2, &Job2::SetReplyFileName>, METH_O,
     "IBackgroundCopyJob2::SetReplyFileName(str or None)"},
    {"reply_progress",
     job_get<Job2, BG_JOB_REPLY_PROGRESS, &Job2::GetReplyProgress, py_reply_progress>, METH_NOARGS,
     "IBackgroundCopyJob2::GetReplyProgress -> (total, transferred)"},
    {"reply_data", job_reply_data, METH_NOARGS, "IBackgroundCopyJob2::GetReplyData -> bytes"},
    {"set_credentials", job_set_credentials, METH_VARARGS,
     "IBackgroundCopyJob2::SetCredentials(target, scheme, user, password)"},
    {"remove_credentials", job_remove_credentials, METH_VARARGS,
     "IBackgroundCopyJob2::RemoveCredentials(target, scheme)"},
    {"security_flags", job_get<HttpOptions, ULONG, &HttpOptions::GetSecurityFlags>, METH_NOARGS,
     "IBackgroundCopyJobHttpOptions::GetSecurityFlags"},
    {"set_security_flags", job_set_number<HttpOptions, ULONG, &HttpOptions::SetSecurityFlags>,
     METH_O, "IBackgroundCopyJobHttpOptions::SetSecurityFlags(flags)"},
    {"client_certificate", job_client_certificate, METH_NOARGS,
     "IBackgroundCopyJobHttpOptions::GetClientCertificate -> (location, store, hash, subject)"},
    {"set_client_certificate", job_set_client_certificate, METH_VARARGS,
     "IBackgroundCopyJobHttpOptions::SetClientCertificateByName(location, store, subject)"},
    {"remove_client_certificate",
     job_verb_through<HttpOptions, &HttpOptions::RemoveClientCertificate>, METH_NOARGS,
     "IBackgroundCopyJobHttpOptions::RemoveClientCertificate"},
    {"http_method", job_string<HttpOptions2, &HttpOptions2::GetHttpMethod>, METH_NOARGS,
     "IBackgroundCopyJobHttpOptions2::GetHttpMethod -> str"},
    {"set_http_method", job_set_string<HttpOptions2, &HttpOptions2::SetHttpMethod>, METH_O,
     "IBackgroundCopyJobHttpOptions2::SetHttpMethod(str)"},
    {"custom_headers", job_string<HttpOptions, &HttpOptions::GetCustomHeaders>, METH_NOARGS,
     "IBackgroundCopyJobHttpOptions::GetCustomHeaders -> str or None"},
    {"set_custom_headers", job_set_string<HttpOptions, &HttpOptions::SetCustomHeaders>, METH_O,
     "IBackgroundCopyJobHttpOptions::SetCustomHeaders(str or None)"},
    {"replace_remote_prefix", job_replace_remote_prefix, METH_VARARGS,
     "IBackgroundCopyJob3::ReplaceRemotePrefix(old, new)"},
    {"file_acl_flags", job_get<Job3, DWORD, &Job3::GetFileACLFlags>, METH_NOARGS,
     "IBackgroundCopyJob3::GetFileACLFlags"},
    {"set_file_acl_flags", job_set_number<Job3, DWORD, &Job3::SetFileACLFlags>, METH_O,
     "IBackgroundCopyJob3::SetFileACLFlags(flags)"},
    {"helper_token_flags", job_get<Tokens, DWORD, &Tokens::GetHelperTokenFlags>, METH_NOARGS,
     "IBitsTokenOptions::GetHelperTokenFlags"},
    {"set_helper_token_flags", job_set_number<Tokens, DWORD, &Tokens::SetHelperTokenFlags>, METH_O,
     "IBitsTokenOptions::SetHelperTokenFlags(flags)"},
    {"set_helper_token", job_verb_through<Tokens, &Tokens::SetHelperToken>, METH_NOARGS,
     "IBitsTokenOptions::SetHelperToken: the calling thread's token"},
    {"clear_helper_token", job_verb_through<Tokens, &Tokens::ClearHelperToken>, METH_NOARGS,
     "IBitsTokenOptions::ClearHelperToken"},
    {"helper_token_sid", job_string<Tokens, &Tokens::GetHelperTokenSid>, METH_NOARGS,
     "IBitsTokenOptions::GetHelperTokenSid -> str or None"},
    {"make_custom_headers_write_only",
     job_verb_through<HttpOptions3, &HttpOptions3::MakeCustomHeadersWriteOnly>, METH_NOARGS,
     "IBackgroundCopyJobHttpOptions3::MakeCustomHeadersWriteOnly"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot job_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(child_dealloc<JobObject>)},
    {Py_tp_methods, job_methods},
    {Py_tp_doc, const_cast<char*>("A BITS job (IBackgroundCopyJob).")},
    {0, nullptr},
};

}  // namespace

PyType_Spec job_spec = {"winbits._native.Job", sizeof(JobObject), 0, kTypeFlags, job_slots};

}  // namespace winbits::py
