// Accounts: an account name's SID (LookupAccountNameW), for the filters that choose jobs
// by owner, since BITS names a job's owner by its SID.
#include "account.h"

#include <sddl.h>

#include <vector>

namespace winbits::py {

PyObject* native_account_sid(PyObject*, PyObject* arg) {
    WideArg name;
    if (!name.set(arg, "the account name"))
        return nullptr;
    DWORD sid_size = 0, domain_size = 0;
    SID_NAME_USE use;
    std::vector<BYTE> sid;
    std::vector<wchar_t> domain;
    BOOL ok;
    Py_BEGIN_ALLOW_THREADS
    // The first call says how much room the SID and the domain name need.
    ok = LookupAccountNameW(nullptr, name.get(), nullptr, &sid_size, nullptr, &domain_size, &use);
    Py_END_ALLOW_THREADS
    if (!ok && GetLastError() != ERROR_INSUFFICIENT_BUFFER)
        return PyErr_SetFromWindowsErr(0);
    try {
        sid.resize(sid_size);
        domain.resize(domain_size + 1);
    } catch (const std::bad_alloc&) {
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    ok = LookupAccountNameW(nullptr, name.get(), sid.data(), &sid_size, domain.data(), &domain_size,
                            &use);
    Py_END_ALLOW_THREADS
    if (!ok)
        return PyErr_SetFromWindowsErr(0);
    wchar_t* text = nullptr;
    if (!ConvertSidToStringSidW(sid.data(), &text))
        return PyErr_SetFromWindowsErr(0);
    PyObject* result = to_py(text);
    LocalFree(text);
    return result;
}

}  // namespace winbits::py
