// What job.cpp's method table takes from job_settings.cpp.
#pragma once

#include "binding.h"

namespace winbits::py {

PyObject* job_notify_cmd_line(PyObject* self, PyObject*);
PyObject* job_set_notify_cmd_line(PyObject* self, PyObject* args);
PyObject* job_proxy(PyObject* self, PyObject*);
PyObject* job_set_proxy(PyObject* self, PyObject* args);
PyObject* job_client_certificate(PyObject* self, PyObject*);
PyObject* job_set_client_certificate(PyObject* self, PyObject* args);
PyObject* py_reply_progress(const BG_JOB_REPLY_PROGRESS& p);
PyObject* job_reply_data(PyObject* self, PyObject*);
PyObject* job_set_credentials(PyObject* self, PyObject* args);
PyObject* job_remove_credentials(PyObject* self, PyObject* args);
PyObject* job_property(PyObject* self, PyObject* arg);
PyObject* job_set_property(PyObject* self, PyObject* args);

}  // namespace winbits::py
