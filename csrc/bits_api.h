// The BITS declarations winbits compiles against: the Windows SDK's headers where they
// exist (MSVC), and our own IBackgroundCopyFile3/4/5 and IBackgroundCopyJobHttpOptions2
// where they do not (mingw-w64 ships neither bits4_0.h nor bits10_2.h).
#pragma once

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <objbase.h>
#include <windows.h>

#if __has_include(<bits4_0.h>)
#include <bits4_0.h>  // bits3_0.h (Job4, File3) and File4
#else
#include <bits3_0.h>  // mingw: Job4 only

// Slots 8-11 (docs/bits.md); declared here with the SDK's names so that code reads the same.
MIDL_INTERFACE("659cdeaa-489e-11d9-a9cd-000d56965251")
IBackgroundCopyFile3 : public IBackgroundCopyFile2 {
    virtual HRESULT STDMETHODCALLTYPE GetTemporaryName(LPWSTR * pFilename) = 0;
    virtual HRESULT STDMETHODCALLTYPE SetValidationState(BOOL state) = 0;
    virtual HRESULT STDMETHODCALLTYPE GetValidationState(BOOL * pState) = 0;
    virtual HRESULT STDMETHODCALLTYPE IsDownloadedFromPeer(BOOL * pVal) = 0;
};
__CRT_UUID_DECL(IBackgroundCopyFile3, 0x659cdeaa, 0x489e, 0x11d9, 0xa9, 0xcd, 0x00, 0x0d, 0x56,
                0x96, 0x52, 0x51)

// Slot 12.
MIDL_INTERFACE("ef7e0655-7888-4960-b0e5-730846e03492")
IBackgroundCopyFile4 : public IBackgroundCopyFile3 {
    virtual HRESULT STDMETHODCALLTYPE GetPeerDownloadStats(PUINT64 pFromOrigin,
                                                           PUINT64 pFromPeers) = 0;
};
__CRT_UUID_DECL(IBackgroundCopyFile4, 0xef7e0655, 0x7888, 0x4960, 0xb0, 0xe5, 0x73, 0x08, 0x46,
                0xe0, 0x34, 0x92)

// BITS 4.0: a job's helper token (slots 3-7), asked of the job with QueryInterface.
MIDL_INTERFACE("9a2584c3-f7d2-457a-9a5e-22b67bffc7d2")
IBitsTokenOptions : public IUnknown {
    virtual HRESULT STDMETHODCALLTYPE SetHelperTokenFlags(DWORD UsageFlags) = 0;
    virtual HRESULT STDMETHODCALLTYPE GetHelperTokenFlags(DWORD * pFlags) = 0;
    virtual HRESULT STDMETHODCALLTYPE SetHelperToken() = 0;
    virtual HRESULT STDMETHODCALLTYPE ClearHelperToken() = 0;
    virtual HRESULT STDMETHODCALLTYPE GetHelperTokenSid(LPWSTR * pSid) = 0;
};
__CRT_UUID_DECL(IBitsTokenOptions, 0x9a2584c3, 0xf7d2, 0x457a, 0x9a, 0x5e, 0x22, 0xb6, 0x7b, 0xff,
                0xc7, 0xd2)
#endif

#include <bits5_0.h>  // IBackgroundCopyJob5 (both the SDK and mingw have it)

#if !__has_include(<bits4_0.h>)
// mingw's bits5_0.h has Job5 but not File5 (slots 13-14; docs/bits.md).
typedef enum { BITS_FILE_PROPERTY_ID_HTTP_RESPONSE_HEADERS = 1 } BITS_FILE_PROPERTY_ID;
typedef union {
    LPWSTR String;
} BITS_FILE_PROPERTY_VALUE;

MIDL_INTERFACE("85c1657f-dafc-40e8-8834-df18ea25717e")
IBackgroundCopyFile5 : public IBackgroundCopyFile4 {
    virtual HRESULT STDMETHODCALLTYPE SetProperty(BITS_FILE_PROPERTY_ID id,
                                                  BITS_FILE_PROPERTY_VALUE value) = 0;
    virtual HRESULT STDMETHODCALLTYPE GetProperty(BITS_FILE_PROPERTY_ID id,
                                                  BITS_FILE_PROPERTY_VALUE * value) = 0;
};
__CRT_UUID_DECL(IBackgroundCopyFile5, 0x85c1657f, 0xdafc, 0x40e8, 0x88, 0x34, 0xdf, 0x18, 0xea,
                0x25, 0x71, 0x7e)
#endif

#if __has_include(<bits10_1.h>)
#include <bits10_1.h>  // IBackgroundCopyFile6
#else
// BITS 10.1 (Windows 10 1703): on-demand ranges, slots 15-17 after File5's 13-14.
MIDL_INTERFACE("cf6784f7-d677-49fd-9368-cb47aee9d1ad")
IBackgroundCopyFile6 : public IBackgroundCopyFile5 {
    virtual HRESULT STDMETHODCALLTYPE UpdateDownloadPosition(UINT64 offset) = 0;
    virtual HRESULT STDMETHODCALLTYPE RequestFileRanges(DWORD rangeCount,
                                                        const BG_FILE_RANGE* ranges) = 0;
    virtual HRESULT STDMETHODCALLTYPE GetFilledFileRanges(DWORD * rangeCount,
                                                          BG_FILE_RANGE * *ranges) = 0;
};
__CRT_UUID_DECL(IBackgroundCopyFile6, 0xcf6784f7, 0xd677, 0x49fd, 0x93, 0x68, 0xcb, 0x47, 0xae,
                0xe9, 0xd1, 0xad)
#endif

#if __has_include(<bits10_2.h>)
#include <bits10_2.h>  // IBackgroundCopyJobHttpOptions2
#else
// BITS 10.2 (Windows 10 1809): the HTTP verb, slots 11-12 after HttpOptions' 3-10.
MIDL_INTERFACE("b591a192-a405-4fc3-8323-4c5c542578fc")
IBackgroundCopyJobHttpOptions2 : public IBackgroundCopyJobHttpOptions {
    virtual HRESULT STDMETHODCALLTYPE SetHttpMethod(LPCWSTR method) = 0;
    virtual HRESULT STDMETHODCALLTYPE GetHttpMethod(LPWSTR * method) = 0;
};
__CRT_UUID_DECL(IBackgroundCopyJobHttpOptions2, 0xb591a192, 0xa405, 0x4fc3, 0x83, 0x23, 0x4c, 0x5c,
                0x54, 0x25, 0x78, 0xfc)
#endif

#if __has_include(<bits10_3.h>)
#include <bits10_3.h>  // IBackgroundCopyJobHttpOptions3
#else
// BITS 10.3 (Windows 10 1809): slots 13-14 after HttpOptions2's 11-12. After
// MakeCustomHeadersWriteOnly, GetCustomHeaders answers E_ACCESSDENIED for good.
MIDL_INTERFACE("8a9263d3-fd4c-4eda-9b28-30132a4d4e3c")
IBackgroundCopyJobHttpOptions3 : public IBackgroundCopyJobHttpOptions2 {
    virtual HRESULT STDMETHODCALLTYPE SetServerCertificateValidationInterface(IUnknown *
                                                                              validator) = 0;
    virtual HRESULT STDMETHODCALLTYPE MakeCustomHeadersWriteOnly() = 0;
};
__CRT_UUID_DECL(IBackgroundCopyJobHttpOptions3, 0x8a9263d3, 0xfd4c, 0x4eda, 0x9b, 0x28, 0x30, 0x13,
                0x2a, 0x4d, 0x4e, 0x3c)
#endif

namespace winbits {

// BITS' own HRESULTs (bitsmsg.h), named here so no header version matters.
constexpr HRESULT kBgNotFound = static_cast<HRESULT>(0x80200001);
constexpr HRESULT kBgInvalidState = static_cast<HRESULT>(0x80200002);
constexpr HRESULT kBgEmpty = static_cast<HRESULT>(0x80200003);
constexpr HRESULT kBgErrorInformationUnavailable = static_cast<HRESULT>(0x8020000F);
constexpr UINT64 kSizeUnknown = static_cast<UINT64>(-1);

// One manager class per BITS version; libuuid lacks them, so they are defined here.
// Newest first: bits_version() takes the first that can be created.
struct ManagerClass {
    GUID clsid;
    int major;
    int minor;
};
constexpr ManagerClass kManagerClasses[] = {
    {{0x5fd42ad5, 0xc04e, 0x4d36, {0xad, 0xc7, 0xe0, 0x8f, 0xf1, 0x57, 0x37, 0xad}}, 10, 3},
    {{0x4575438f, 0xa6c8, 0x4976, {0xb0, 0xfe, 0x2f, 0x26, 0xb8, 0x0d, 0x95, 0x9e}}, 10, 2},
    {{0x4bd3e4e1, 0x7bd4, 0x4a2b, {0x99, 0x64, 0x49, 0x64, 0x00, 0xde, 0x51, 0x93}}, 10, 1},
    {{0x1ecca34c, 0xe88a, 0x44e3, {0x8d, 0x6a, 0x89, 0x21, 0xbd, 0xe9, 0xe4, 0x52}}, 5, 0},
    {{0xbb6df56b, 0xcace, 0x11dc, {0x99, 0x92, 0x00, 0x19, 0xb9, 0x3a, 0x3a, 0x84}}, 4, 0},
    {{0x659cdea7, 0x489e, 0x11d9, {0xa9, 0xcd, 0x00, 0x0d, 0x56, 0x96, 0x52, 0x51}}, 3, 0},
    {{0x03ca98d6, 0xff5d, 0x49b8, {0xab, 0xc6, 0x03, 0xdd, 0x84, 0x12, 0x70, 0x20}}, 2, 5},
    {{0x6d18ad12, 0xbde3, 0x4393, {0xb3, 0x11, 0x09, 0x9c, 0x34, 0x6e, 0x6d, 0xf9}}, 2, 0},
    {{0xf087771f, 0xd74f, 0x4c1a, {0xbb, 0x8a, 0xe1, 0x6a, 0xca, 0x91, 0x24, 0xea}}, 1, 5},
    {{0x4991d34b, 0x80a1, 0x4291, {0x83, 0xb6, 0x33, 0x28, 0x36, 0x6b, 0x90, 0x97}}, 1, 0},
};
// CLSID_BackgroundCopyManager: BITS 1.0's class, which every BITS registers (newer
// versions answer it with their newest manager); connect() uses it by default.
constexpr GUID kClsidBackgroundCopyManager = kManagerClasses[9].clsid;

}  // namespace winbits
