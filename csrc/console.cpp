// The console, for the command line's long loops: closing its window, logging off and
// shutting down end them after their write (SIGBREAK), and whether standard input is a
// console someone can type a password at. Nothing here is BITS.
#include "console.h"

#include <csignal>

namespace winbits::py {

namespace {

// Closing the console window, logging off and shutting down reach a console program as
// CTRL_CLOSE_EVENT, CTRL_LOGOFF_EVENT and CTRL_SHUTDOWN_EVENT, on a thread the system
// makes; the process is ended as soon as the handler returns (and after a few seconds
// anyway). The C runtime's own handler turns them into SIGBREAK and returns at once,
// before Python's handler can run. This one asks for SIGBREAK the same way and then holds
// the system's thread, so that the main thread can finish its write and exit (exiting ends
// the held thread). Ctrl-C and Ctrl-Break go on to the C runtime's handler as before.
std::atomic<bool> g_console_held{false};

BOOL WINAPI console_closing(DWORD event) {
    if (event != CTRL_CLOSE_EVENT && event != CTRL_LOGOFF_EVENT && event != CTRL_SHUTDOWN_EVENT)
        return FALSE;
    PyErr_SetInterruptEx(SIGBREAK);  // callable without the GIL, from any thread
    Sleep(INFINITE);
    return TRUE;
}

}  // namespace

PyObject* native_hold_console_close(PyObject*, PyObject* arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return nullptr;
    if (!SetConsoleCtrlHandler(console_closing, on ? TRUE : FALSE))
        return PyErr_SetFromWindowsErr(0);
    g_console_held.store(on != 0);
    Py_RETURN_NONE;
}

// What the system does when the console closes (event 2, 5 or 6), for the tests, which
// cannot close a console under Wine: with the handler set, runs it on a thread that is
// not Python's; without it, ends the process as the system then does.
PyObject* native_console_event(PyObject*, PyObject* arg) {
    unsigned long event = PyLong_AsUnsignedLong(arg);
    if (event == static_cast<unsigned long>(-1) && PyErr_Occurred())
        return nullptr;
    if (!g_console_held.load())
        ExitProcess(static_cast<UINT>(STATUS_CONTROL_C_EXIT));
    HANDLE thread = CreateThread(
        nullptr, 0,
        [](void* e) -> DWORD {
            return console_closing(static_cast<DWORD>(reinterpret_cast<uintptr_t>(e)));
        },
        reinterpret_cast<void*>(static_cast<uintptr_t>(event)), 0, nullptr);
    if (!thread)
        return PyErr_SetFromWindowsErr(0);
    CloseHandle(thread);
    Py_RETURN_NONE;
}

// Whether standard input is a console someone can type a password at. isatty() is not
// enough on Windows: it is true for the NUL device too (a character device), where a
// password prompt would wait for ever.
PyObject* native_stdin_is_console(PyObject*, PyObject*) {
    DWORD mode = 0;
    return PyBool_FromLong(GetConsoleMode(GetStdHandle(STD_INPUT_HANDLE), &mode) ? 1 : 0);
}

// The console of standard output interprets VT sequences (a screen clear): on by default
// in Windows Terminal, off in classic conhost until asked (Windows 10 1511 and later).
PyObject* native_vt_output(PyObject*, PyObject*) {
    HANDLE out = GetStdHandle(STD_OUTPUT_HANDLE);
    DWORD mode = 0;
    if (!GetConsoleMode(out, &mode))
        Py_RETURN_FALSE;  // not a console: a pipe, a file
    if (mode & ENABLE_VIRTUAL_TERMINAL_PROCESSING)
        Py_RETURN_TRUE;
    return PyBool_FromLong(SetConsoleMode(out, mode | ENABLE_VIRTUAL_TERMINAL_PROCESSING) ? 1 : 0);
}

}  // namespace winbits::py
