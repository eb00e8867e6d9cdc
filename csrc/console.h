// The module functions of console.cpp.
#pragma once

#include "binding.h"

namespace winbits::py {

// hold_console_close(on): console close, logoff and shutdown become SIGBREAK, and the
// process waits for the program to exit.
PyObject* native_hold_console_close(PyObject* module, PyObject* arg);
// _console_event(event): what the system does on a console event (for the tests).
PyObject* native_console_event(PyObject* module, PyObject* arg);
// stdin_is_console() -> whether standard input is a console (not a pipe, file or NUL).
PyObject* native_stdin_is_console(PyObject* module, PyObject*);
// vt_output() -> whether standard output is a console that now interprets VT sequences.
PyObject* native_vt_output(PyObject* module, PyObject*);

}  // namespace winbits::py
