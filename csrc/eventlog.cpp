// The Bits-Client event log, through the Windows Event Log API: a query's events as their
// XML (the facade reads the fields by name), and whether a channel is enabled. Every
// EVT_HANDLE is owned and closed on every path; the reads run with the GIL released and
// touch no Python object. A read waits at most kNextTimeoutMs for the service to answer.
#include "eventlog.h"

#include <winevt.h>

#include <algorithm>
#include <string>
#include <vector>

namespace winbits::py {

namespace {

constexpr DWORD kBatch = 64;             // events asked of EvtNext at a time
constexpr DWORD kNextTimeoutMs = 30000;  // never a hang on a service that does not answer

struct EvtHandle {
    EVT_HANDLE h = nullptr;
    EvtHandle() = default;
    EvtHandle(const EvtHandle&) = delete;
    EvtHandle& operator=(const EvtHandle&) = delete;
    ~EvtHandle() {
        if (h)
            EvtClose(h);
    }
};

// The events one EvtNext returned, each closed once rendered or on any way out.
struct Batch {
    EVT_HANDLE h[kBatch] = {};
    DWORD n = 0;
    Batch() = default;
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;
    ~Batch() {
        for (DWORD i = 0; i < n; ++i)
            EvtClose(h[i]);
    }
};

// The last error, or ERROR_CALL_NOT_IMPLEMENTED where a call failed without one. Each
// call is preceded by SetLastError(0): Wine's EvtQuery fails without setting one, and what
// was read then was an earlier call's (ERROR_INVALID_HANDLE, seen here).
DWORD last_error() {
    DWORD e = GetLastError();
    return e ? e : ERROR_CALL_NOT_IMPLEMENTED;
}

// One event as XML, into `out`; 0 or the error.
DWORD render_xml(EVT_HANDLE event, std::vector<wchar_t>& buffer, std::wstring& out) {
    DWORD used = 0, count = 0;
    auto render = [&] {
        SetLastError(0);
        return EvtRender(nullptr, event, EvtRenderEventXml,
                         static_cast<DWORD>(buffer.size() * sizeof(wchar_t)), buffer.data(), &used,
                         &count);
    };
    if (!render()) {
        if (DWORD e = last_error(); e != ERROR_INSUFFICIENT_BUFFER)
            return e;
        buffer.resize(used / sizeof(wchar_t) + 1);
        if (!render())
            return last_error();
    }
    buffer.back() = L'\0';
    out.assign(buffer.data());
    return 0;
}

// Runs the query; the events' XML into `events`. 0 or the error. No Python here.
DWORD read_events(const wchar_t* channel, const wchar_t* xpath, size_t limit, bool reverse,
                  std::vector<std::wstring>& events) {
    EvtHandle results;
    SetLastError(0);
    results.h = EvtQuery(
        nullptr, channel, xpath,
        EvtQueryChannelPath | (reverse ? EvtQueryReverseDirection : EvtQueryForwardDirection));
    if (!results.h)
        return last_error();
    std::vector<wchar_t> buffer(4096);
    while (events.size() < limit) {
        Batch batch;
        DWORD want = static_cast<DWORD>(std::min<size_t>(kBatch, limit - events.size()));
        SetLastError(0);
        if (!EvtNext(results.h, want, batch.h, kNextTimeoutMs, 0, &batch.n)) {
            batch.n = 0;  // none returned
            DWORD e = last_error();
            return e == ERROR_NO_MORE_ITEMS ? 0 : e;
        }
        for (DWORD i = 0; i < batch.n; ++i) {
            events.emplace_back();
            if (DWORD e = render_xml(batch.h[i], buffer, events.back()))
                return e;
        }
    }
    return 0;
}

}  // namespace

PyObject* native_event_log_read(PyObject*, PyObject* args) {
    PyObject *channel_obj, *xpath_obj;
    unsigned long limit;
    int reverse;
    if (!PyArg_ParseTuple(args, "UUkp:event_log_read", &channel_obj, &xpath_obj, &limit, &reverse))
        return nullptr;
    WideArg channel, xpath;
    if (!channel.set(channel_obj, "the channel") || !xpath.set(xpath_obj, "the query"))
        return nullptr;
    std::vector<std::wstring> events;
    DWORD error = 0;
    Py_BEGIN_ALLOW_THREADS
    try {
        error = read_events(channel.get(), xpath.get(), limit, reverse != 0, events);
    } catch (const std::bad_alloc&) {
        error = ERROR_NOT_ENOUGH_MEMORY;
    }
    Py_END_ALLOW_THREADS
    if (error)
        return PyErr_SetFromWindowsErr(static_cast<int>(error));
    PyRef list(PyList_New(0));
    if (!list)
        return nullptr;
    for (const std::wstring& event : events) {
        PyRef text(to_py(event));
        if (!text || PyList_Append(list.get(), text.get()) < 0)
            return nullptr;
    }
    return list.release();
}

PyObject* native_event_log_enabled(PyObject*, PyObject* arg) {
    WideArg channel;
    if (!channel.set(arg, "the channel"))
        return nullptr;
    EVT_VARIANT value{};
    DWORD error = 0;
    Py_BEGIN_ALLOW_THREADS
    EvtHandle config;
    SetLastError(0);
    config.h = EvtOpenChannelConfig(nullptr, channel.get(), 0);
    DWORD used = 0;
    if (!config.h || !EvtGetChannelConfigProperty(config.h, EvtChannelConfigEnabled, 0,
                                                  sizeof value, &value, &used))
        error = last_error();
    Py_END_ALLOW_THREADS
    if (error)
        return PyErr_SetFromWindowsErr(static_cast<int>(error));
    return PyBool_FromLong(value.BooleanVal);
}

}  // namespace winbits::py
