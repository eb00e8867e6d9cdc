// The module functions of system.cpp: what `winbits doctor` reads from Windows.
#pragma once

#include "binding.h"

namespace winbits::py {

// service_status(name) -> (state, start_type): SERVICE_RUNNING..., SERVICE_AUTO_START...;
// OSError when the service is not there or cannot be read.
PyObject* native_service_status(PyObject* module, PyObject* arg);
// process_identity() -> (account or None, SID, elevated or None, logon type or None).
PyObject* native_process_identity(PyObject* module, PyObject*);
// ie_proxy() -> (auto_detect, auto_config_url, proxy, bypass): this user's Internet
// settings, which BITS' PRECONFIG proxy usage follows; OSError where they cannot be read.
PyObject* native_ie_proxy(PyObject* module, PyObject*);
// branchcache_mode() -> int, str or None: MSFT_NetBranchCacheClientSettingData's
// CurrentClientMode (0 disabled, 1 local cache, 2 distributed, 3 hosted; some Windows
// give its name); OSError with WMI's HRESULT where it cannot be read (before Windows 8).
PyObject* native_branchcache_mode(PyObject* module, PyObject*);

}  // namespace winbits::py
