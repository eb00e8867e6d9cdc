// The module functions of eventlog.cpp: the Bits-Client event log, read through the
// Windows Event Log API (wevtapi).
#pragma once

#include "binding.h"

namespace winbits::py {

// event_log_read(channel, xpath, limit, reverse) -> [event XML, ...]: at most `limit`
// events of the channel that match the XPath filter, oldest first (newest first with
// `reverse`). OSError with the Windows error where the query fails; winerror
// ERROR_CALL_NOT_IMPLEMENTED where the API answers nothing and gives no reason (Wine).
PyObject* native_event_log_read(PyObject* module, PyObject* args);
// event_log_enabled(channel) -> bool: whether Windows writes new events to the channel.
PyObject* native_event_log_enabled(PyObject* module, PyObject* arg);

}  // namespace winbits::py
