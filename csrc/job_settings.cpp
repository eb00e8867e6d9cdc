// winbits._native.Job's settings that take more than one number or string: the notify
// command line, the proxy, the client certificate, an upload's reply, credentials and
// IBackgroundCopyJob5's properties. Their lines in the method table are in job.cpp.
#include "job.h"

namespace winbits::py {

// Two strings in one call: the proxy list and bypass list, the notify program and its
// parameters. (first or None, second or None).
struct StringPair {
    CoTaskString first, second;
};
PyObject* py_string_pair(const StringPair& p) {
    return Py_BuildValue("(NN)", py_string_or_none(p.first), py_string_or_none(p.second));
}

PyObject* job_notify_cmd_line(PyObject* self, PyObject*) {
    JobObject* job = as_job(self);
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
    JobObject* job = as_job(self);
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
    JobObject* job = as_job(self);
    return read_property<ProxyInfo>(
        self,
        [&](ProxyInfo& p) {
            return job->handle->job()->GetProxySettings(&p.usage, p.lists.first.put(),
                                                        p.lists.second.put());
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
    JobObject* job = as_job(self);
    return write_property(self, [&] {
        return job->handle->job()->SetProxySettings(static_cast<BG_JOB_PROXY_USAGE>(usage),
                                                    list.get(), bypass.get());
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
    JobObject* job = as_job(self);
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
    JobObject* job = as_job(self);
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
    JobObject* job = as_job(self);
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
    JobObject* job = as_job(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyJob2>(
            job, [&](IBackgroundCopyJob2* j2) { return j2->SetCredentials(&c); });
    });
}

PyObject* job_remove_credentials(PyObject* self, PyObject* args) {
    int target = 0, scheme = 0;
    if (!PyArg_ParseTuple(args, "ii:remove_credentials", &target, &scheme))
        return nullptr;
    JobObject* job = as_job(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyJob2>(job, [&](IBackgroundCopyJob2* j2) {
            return j2->RemoveCredentials(static_cast<BG_AUTH_TARGET>(target),
                                         static_cast<BG_AUTH_SCHEME>(scheme));
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
    JobObject* job = as_job(self);
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
    JobObject* job = as_job(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyJob5>(
            job, [&](IBackgroundCopyJob5* j5) { return j5->SetProperty(p.id, p.value); });
    });
}

}  // namespace winbits::py
