// winbits._native.File: a file of a job (IBackgroundCopyFile and its richer interfaces,
// up to the peer statistics of IBackgroundCopyFile4).
#include "binding.h"

namespace winbits::py {

namespace {

using File = IBackgroundCopyFile;
using File2 = IBackgroundCopyFile2;
using File3 = IBackgroundCopyFile3;

// A getter through the file's interface I: a number, enum or struct; a string.
template <class I, class T, HRESULT (STDMETHODCALLTYPE I::*Get)(T*), PyObject* (*Build)(const T&)>
constexpr PyCFunction file_get = get<FileObject, I, T, Get, Build>;
template <class I, HRESULT (STDMETHODCALLTYPE I::*Get)(LPWSTR*),
          PyObject* (*Build)(const CoTaskString&) = py_string_or_none>
constexpr PyCFunction file_string = get_string<FileObject, I, Get, Build>;

PyObject* py_file_progress(const BG_FILE_PROGRESS& p) {
    return Py_BuildValue("(KKN)", p.BytesTotal, p.BytesTransferred, PyBool_FromLong(p.Completed));
}

// The peer reads: None, not an error, where the server lacks File3 or File4.
HRESULT read_from_peer(IBackgroundCopyFile3* f3, BOOL* v) {
    return f3->IsDownloadedFromPeer(v);
}
HRESULT read_peer_stats(IBackgroundCopyFile4* f4, PeerStats* s) {
    return f4->GetPeerDownloadStats(&s->from_origin, &s->from_peers);
}

PyObject* file_set_remote_name(PyObject* self, PyObject* arg) {
    WideArg url;
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "url must be str");
        return nullptr;
    }
    if (!url.set(arg, "url"))
        return nullptr;
    FileObject* f = as_file(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyFile2>(
            f, [&](IBackgroundCopyFile2* f2) { return f2->SetRemoteName(url.get()); });
    });
}

PyObject* file_set_validation_state(PyObject* self, PyObject* arg) {
    int valid = PyObject_IsTrue(arg);
    if (valid < 0)
        return nullptr;
    FileObject* f = as_file(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyFile3>(
            f, [&](IBackgroundCopyFile3* f3) { return f3->SetValidationState(valid); });
    });
}

// File2::GetFileRanges: [(offset, length)], length 2^64-1 for "to the end".
struct FileRanges {
    DWORD count = 0;
    CoTaskPtr<BG_FILE_RANGE> ranges;
};
PyObject* py_file_ranges(const FileRanges& r) {
    return py_ranges(r.ranges.get(), r.count);
}
PyObject* file_ranges(PyObject* self, PyObject*) {
    FileObject* f = as_file(self);
    return read_property<FileRanges>(
        self,
        [&](FileRanges& r) {
            return through<IBackgroundCopyFile2>(f, [&](IBackgroundCopyFile2* f2) {
                return f2->GetFileRanges(&r.count, r.ranges.put());
            });
        },
        py_file_ranges);
}

// File6 (on-demand jobs, BITS 10.1): the ranges downloaded so far, merged and in order.
PyObject* file_filled_file_ranges(PyObject* self, PyObject*) {
    FileObject* f = as_file(self);
    return read_property<FileRanges>(
        self,
        [&](FileRanges& r) {
            return through<IBackgroundCopyFile6>(f, [&](IBackgroundCopyFile6* f6) {
                return f6->GetFilledFileRanges(&r.count, r.ranges.put());
            });
        },
        py_file_ranges);
}

// File6::RequestFileRanges([(offset, length)]): these first.
PyObject* file_request_file_ranges(PyObject* self, PyObject* arg) {
    std::vector<BG_FILE_RANGE> ranges;
    if (!read_ranges(arg, ranges))
        return nullptr;
    FileObject* f = as_file(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyFile6>(f, [&](IBackgroundCopyFile6* f6) {
            return f6->RequestFileRanges(static_cast<DWORD>(ranges.size()), ranges.data());
        });
    });
}

// File6::UpdateDownloadPosition(offset): what is missing from here on, first.
PyObject* file_update_position(PyObject* self, PyObject* arg) {
    unsigned long long offset = PyLong_AsUnsignedLongLong(arg);
    if (offset == static_cast<unsigned long long>(-1) && PyErr_Occurred())
        return nullptr;
    FileObject* f = as_file(self);
    return write_property(self, [&] {
        return through<IBackgroundCopyFile6>(
            f, [&](IBackgroundCopyFile6* f6) { return f6->UpdateDownloadPosition(offset); });
    });
}

// File5::GetProperty(HTTP_RESPONSE_HEADERS): the last response's headers, one string.
HRESULT read_response_headers(IBackgroundCopyFile5* f5, CoTaskString* s) {
    BITS_FILE_PROPERTY_VALUE v{};
    HRESULT hr = f5->GetProperty(BITS_FILE_PROPERTY_ID_HTTP_RESPONSE_HEADERS, &v);
    if (SUCCEEDED(hr))
        *s->put() = v.String;  // ours to free from here on
    return hr;
}

PyObject* file_response_headers(PyObject* self, PyObject*) {
    FileObject* f = as_file(self);
    return read_property<CoTaskString>(
        self,
        [&](CoTaskString& s) {
            return through<IBackgroundCopyFile5>(
                f, [&](IBackgroundCopyFile5* f5) { return read_response_headers(f5, &s); });
        },
        py_string_or_none);
}

PyMethodDef file_methods[] = {
    {"remote_name", file_string<File, &File::GetRemoteName, py_string>, METH_NOARGS,
     "GetRemoteName"},
    {"local_name", file_string<File, &File::GetLocalName, py_string>, METH_NOARGS, "GetLocalName"},
    {"progress", file_get<File, BG_FILE_PROGRESS, &File::GetProgress, py_file_progress>,
     METH_NOARGS, "GetProgress -> (bytes_total, bytes_transferred, completed)"},
    {"downloaded_from_peer",
     getter<FileObject, File3, BOOL, read_from_peer, py_bool, Lacking::is_none>, METH_NOARGS,
     "IBackgroundCopyFile3::IsDownloadedFromPeer, None where absent"},
    {"ranges", file_ranges, METH_NOARGS,
     "IBackgroundCopyFile2::GetFileRanges -> [(offset, length)]"},
    {"set_remote_name", file_set_remote_name, METH_O, "IBackgroundCopyFile2::SetRemoteName(url)"},
    {"filled_file_ranges", file_filled_file_ranges, METH_NOARGS,
     "IBackgroundCopyFile6::GetFilledFileRanges -> [(offset, length)]"},
    {"request_file_ranges", file_request_file_ranges, METH_O,
     "IBackgroundCopyFile6::RequestFileRanges([(offset, length)])"},
    {"update_download_position", file_update_position, METH_O,
     "IBackgroundCopyFile6::UpdateDownloadPosition(offset)"},
    {"temporary_name", file_string<File3, &File3::GetTemporaryName>, METH_NOARGS,
     "IBackgroundCopyFile3::GetTemporaryName"},
    {"validation_state", file_get<File3, BOOL, &File3::GetValidationState, py_bool>, METH_NOARGS,
     "IBackgroundCopyFile3::GetValidationState"},
    {"set_validation_state", file_set_validation_state, METH_O,
     "IBackgroundCopyFile3::SetValidationState(bool)"},
    {"http_response_headers", file_response_headers, METH_NOARGS,
     "IBackgroundCopyFile5::GetProperty(HTTP_RESPONSE_HEADERS) -> str or None"},
    {"peer_stats",
     getter<FileObject, IBackgroundCopyFile4, PeerStats, read_peer_stats, py_peer_stats,
            Lacking::is_none>,
     METH_NOARGS,
     "IBackgroundCopyFile4::GetPeerDownloadStats -> (from_origin, from_peers), None where absent"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot file_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(child_dealloc<FileObject>)},
    {Py_tp_methods, file_methods},
    {Py_tp_doc, const_cast<char*>("A file of a BITS job (IBackgroundCopyFile).")},
    {0, nullptr},
};

}  // namespace

PyType_Spec file_spec = {"winbits._native.File", sizeof(FileObject), 0, kTypeFlags, file_slots};

}  // namespace winbits::py
