// The module functions of account.cpp: who an account is.
#pragma once

#include "binding.h"

namespace winbits::py {

// account_sid(name) -> the SID of an account name (alice, DOMAIN\alice) as S-1-5-...;
// OSError where there is no such account.
PyObject* native_account_sid(PyObject* module, PyObject* arg);

}  // namespace winbits::py
