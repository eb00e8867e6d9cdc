// What `winbits doctor` reads from Windows, beside BITS itself: a service's state and
// start type (the service control manager), this process's account, elevation and logon
// type (its token and its logon session), this user's proxy settings (WinHTTP), and
// BranchCache's client mode (WMI, in the MTA; the blanket is set on winbits' own proxy).
// Each read either answers or raises OSError; the facade turns that into "unknown".
#include "system.h"

#include <ntsecapi.h>
#include <sddl.h>
#include <wbemidl.h>
#include <winhttp.h>

#include <cstdio>
#include <vector>

namespace winbits::py {

namespace {

struct ServiceHandle {
    SC_HANDLE h = nullptr;
    ~ServiceHandle() {
        if (h)
            CloseServiceHandle(h);
    }
};

// A BSTR, freed on every way out.
struct Bstr {
    BSTR s;
    explicit Bstr(const wchar_t* text) : s(SysAllocString(text)) {}
    Bstr(const Bstr&) = delete;
    Bstr& operator=(const Bstr&) = delete;
    ~Bstr() { SysFreeString(s); }
};

struct Handle {
    HANDLE h = nullptr;
    ~Handle() {
        if (h)
            CloseHandle(h);
    }
};

// "DOMAIN\name" of a SID, or empty where it has none.
std::wstring account_of(PSID sid) {
    wchar_t name[256], domain[256];
    DWORD n = 256, d = 256;
    SID_NAME_USE use;
    if (!LookupAccountSidW(nullptr, sid, name, &n, domain, &d, &use))
        return std::wstring();
    return d ? std::wstring(domain) + L"\\" + name : std::wstring(name);
}

PyObject* text_or_none(const wchar_t* s) {
    return s ? to_py(s) : Py_NewRef(Py_None);
}

}  // namespace

PyObject* native_service_status(PyObject*, PyObject* arg) {
    WideArg name;
    if (!name.set(arg, "the service name"))
        return nullptr;
    ServiceHandle scm, service;
    SERVICE_STATUS_PROCESS status{};
    std::vector<BYTE> config;
    DWORD error = 0;
    Py_BEGIN_ALLOW_THREADS
    scm.h = OpenSCManagerW(nullptr, nullptr, SC_MANAGER_CONNECT);
    service.h = scm.h ? OpenServiceW(scm.h, name.get(), SERVICE_QUERY_STATUS | SERVICE_QUERY_CONFIG)
                      : nullptr;
    DWORD size = 0;
    if (!service.h ||
        !QueryServiceStatusEx(service.h, SC_STATUS_PROCESS_INFO, reinterpret_cast<BYTE*>(&status),
                              sizeof status, &size)) {
        error = GetLastError();
    } else {
        QueryServiceConfigW(service.h, nullptr, 0, &size);  // how much room the answer needs
        try {
            config.resize(size ? size : sizeof(QUERY_SERVICE_CONFIGW));
        } catch (const std::bad_alloc&) {
            error = ERROR_NOT_ENOUGH_MEMORY;
        }
        if (!error &&
            !QueryServiceConfigW(service.h, reinterpret_cast<QUERY_SERVICE_CONFIGW*>(config.data()),
                                 static_cast<DWORD>(config.size()), &size))
            error = GetLastError();
    }
    Py_END_ALLOW_THREADS
    if (error)
        return PyErr_SetFromWindowsErr(static_cast<int>(error));
    auto* c = reinterpret_cast<QUERY_SERVICE_CONFIGW*>(config.data());
    return Py_BuildValue("(kk)", status.dwCurrentState, c->dwStartType);
}

PyObject* native_process_identity(PyObject*, PyObject*) {
    Handle token;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token.h))
        return PyErr_SetFromWindowsErr(0);
    BYTE user_buffer[256];
    DWORD size = 0;
    if (!GetTokenInformation(token.h, TokenUser, user_buffer, sizeof user_buffer, &size))
        return PyErr_SetFromWindowsErr(0);
    PSID sid = reinterpret_cast<TOKEN_USER*>(user_buffer)->User.Sid;
    wchar_t* sid_text = nullptr;
    if (!ConvertSidToStringSidW(sid, &sid_text))
        return PyErr_SetFromWindowsErr(0);
    PyRef sid_obj(to_py(sid_text));
    LocalFree(sid_text);
    if (!sid_obj)
        return nullptr;
    std::wstring account = account_of(sid);
    PyRef account_obj(account.empty() ? Py_NewRef(Py_None) : to_py(account));
    TOKEN_ELEVATION elevation{};
    PyRef elevated(GetTokenInformation(token.h, TokenElevation, &elevation, sizeof elevation, &size)
                       ? PyBool_FromLong(elevation.TokenIsElevated != 0)
                       : Py_NewRef(Py_None));
    // The logon type is the logon session's, which the token's statistics name.
    ULONG logon_type = 0;
    bool has_logon = false;
    TOKEN_STATISTICS stats{};
    if (GetTokenInformation(token.h, TokenStatistics, &stats, sizeof stats, &size)) {
        PSECURITY_LOGON_SESSION_DATA data = nullptr;
        if (LsaGetLogonSessionData(&stats.AuthenticationId, &data) == 0 && data) {
            logon_type = data->LogonType;
            has_logon = true;
            LsaFreeReturnBuffer(data);
        }
    }
    PyRef logon(has_logon ? PyLong_FromUnsignedLong(logon_type) : Py_NewRef(Py_None));
    if (!account_obj || !elevated || !logon)
        return nullptr;
    return PyTuple_Pack(4, account_obj.get(), sid_obj.get(), elevated.get(), logon.get());
}

PyObject* native_ie_proxy(PyObject*, PyObject*) {
    WINHTTP_CURRENT_USER_IE_PROXY_CONFIG config{};
    BOOL ok;
    Py_BEGIN_ALLOW_THREADS
    ok = WinHttpGetIEProxyConfigForCurrentUser(&config);
    Py_END_ALLOW_THREADS
    if (!ok)
        return PyErr_SetFromWindowsErr(0);
    PyObject* result = Py_BuildValue(
        "(NNNN)", PyBool_FromLong(config.fAutoDetect), text_or_none(config.lpszAutoConfigUrl),
        text_or_none(config.lpszProxy), text_or_none(config.lpszProxyBypass));
    for (wchar_t* s : {config.lpszAutoConfigUrl, config.lpszProxy, config.lpszProxyBypass})
        if (s)
            GlobalFree(s);
    return result;
}

PyObject* native_branchcache_mode(PyObject*, PyObject*) {
    VARIANT value;
    VariantInit(&value);
    HRESULT hr = without_gil_in_mta([&]() -> HRESULT {
        ComPtr<IWbemLocator> locator;
        HRESULT hr = CoCreateInstance(CLSID_WbemLocator, nullptr, CLSCTX_INPROC_SERVER,
                                      IID_IWbemLocator, locator.put_void());
        if (FAILED(hr))
            return hr;
        Bstr ns(L"ROOT\\StandardCimv2"), wql(L"WQL"),
            query(L"SELECT CurrentClientMode FROM MSFT_NetBranchCacheClientSettingData");
        if (!ns.s || !wql.s || !query.s)
            return E_OUTOFMEMORY;
        ComPtr<IWbemServices> services;
        hr = locator->ConnectServer(ns.s, nullptr, nullptr, nullptr, WBEM_FLAG_CONNECT_USE_MAX_WAIT,
                                    nullptr, nullptr, services.put());
        if (FAILED(hr))
            return hr;
        // WMI needs impersonation; this process's default may be identify only, and
        // winbits does not change the process's security: the blanket of this proxy only.
        hr = CoSetProxyBlanket(services.Get(), RPC_C_AUTHN_WINNT, RPC_C_AUTHZ_NONE, nullptr,
                               RPC_C_AUTHN_LEVEL_CALL, RPC_C_IMP_LEVEL_IMPERSONATE, nullptr,
                               EOAC_NONE);
        if (FAILED(hr))
            return hr;
        ComPtr<IEnumWbemClassObject> rows;
        hr = services->ExecQuery(wql.s, query.s,
                                 WBEM_FLAG_FORWARD_ONLY | WBEM_FLAG_RETURN_IMMEDIATELY, nullptr,
                                 rows.put());
        if (FAILED(hr))
            return hr;
        ComPtr<IWbemClassObject> row;
        ULONG n = 0;
        hr = rows->Next(30000, 1, row.put(), &n);  // at most 30 s: never a hang
        if (hr == WBEM_S_TIMEDOUT)
            return HRESULT_FROM_WIN32(ERROR_TIMEOUT);
        if (FAILED(hr))
            return hr;
        if (n == 0 || !row)
            return WBEM_E_NOT_FOUND;
        return row->Get(L"CurrentClientMode", 0, &value, nullptr, nullptr);
    });
    if (FAILED(hr)) {
        VariantClear(&value);
        // formatted here: PyUnicode_FromFormat has no %X before 3.12 (seen on 3.10)
        char text[48];
        std::snprintf(text, sizeof text, "WMI answered HRESULT 0x%08lX",
                      static_cast<unsigned long>(hr));
        PyErr_SetString(PyExc_OSError, text);
        return nullptr;
    }
    PyObject* result;
    if (value.vt == VT_BSTR)
        result = to_py(value.bstrVal ? value.bstrVal : L"");
    else if (value.vt == VT_I4 || value.vt == VT_UI4 || value.vt == VT_INT || value.vt == VT_UINT)
        result = PyLong_FromLong(value.lVal);
    else
        result = Py_NewRef(Py_None);
    VariantClear(&value);
    return result;
}

}  // namespace winbits::py
