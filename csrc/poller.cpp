// The polling walk: match the queue against what was seen, re-read only what moved.
#include "poller.h"

#include <algorithm>
#include <unordered_map>

namespace winbits {

namespace {

// A job that left the queue between the enumeration and the read, or became
// unreadable to us: skipped, not fatal (the listing is a snapshot of a moving queue).
bool vanished(HRESULT hr) {
    return hr == kBgNotFound || hr == E_ACCESSDENIED;
}

bool same(const BG_JOB_PROGRESS& a, const BG_JOB_PROGRESS& b) {
    return a.BytesTotal == b.BytesTotal && a.BytesTransferred == b.BytesTransferred &&
           a.FilesTotal == b.FilesTotal && a.FilesTransferred == b.FilesTransferred;
}

struct GuidHash {
    size_t operator()(const GUID& g) const {
        const auto* p = reinterpret_cast<const UINT64*>(&g);
        return std::hash<UINT64>()(p[0] ^ (p[1] * 0x9E3779B97F4A7C15ULL));
    }
};
struct GuidEq {
    bool operator()(const GUID& a, const GUID& b) const { return IsEqualGUID(a, b) != FALSE; }
};

struct ParallelWork {
    HRESULT (*work)(void*, size_t);
    void* context;
    size_t n;
    std::atomic<size_t> next{0};
    std::atomic<HRESULT> failure{S_OK};

    void fail(HRESULT hr) noexcept {
        HRESULT none = S_OK;
        failure.compare_exchange_strong(none, hr);
    }
    // Takes items until none is left. No exception leaves an item (guarded), so every
    // thread runs to the end of the list, and no thread outlives the caller's frame.
    void run() noexcept {
        for (size_t i; (i = next.fetch_add(1)) < n;) {
            auto item = [&] { return work(context, i); };
            HRESULT hr = guarded(item);
            if (FAILED(hr))
                fail(hr);
        }
    }
};

DWORD WINAPI parallel_thread(void* arg) {
    auto* pw = static_cast<ParallelWork*>(arg);
    HRESULT hr = in_mta([pw] {
        pw->run();
        return S_OK;
    });
    if (FAILED(hr))
        pw->fail(hr);
    return 0;
}

// Joins the helper threads, on every way out of parallel_for.
struct Joined {
    std::vector<HANDLE>& threads;
    void join() noexcept {
        for (HANDLE h : threads) {
            WaitForSingleObject(h, INFINITE);
            CloseHandle(h);
        }
        threads.clear();
    }
    ~Joined() { join(); }
};

}  // namespace

HRESULT parallel_for(size_t n, unsigned threads, HRESULT (*work)(void*, size_t), void* context) {
    ParallelWork pw;
    pw.work = work;
    pw.context = context;
    pw.n = n;
    // A thread costs a start (tens of microseconds): each extra one gets 4 items at least.
    size_t extra = std::min<size_t>(threads > 1 ? threads - 1 : 0, n / 4);
    std::vector<HANDLE> handles;
    handles.reserve(extra);  // may throw, before any thread runs: no push_back below can
    Joined joined{handles};
    for (size_t t = 0; t < extra; ++t) {
        HANDLE h = CreateThread(nullptr, 0, parallel_thread, &pw, 0, nullptr);
        if (h)
            handles.push_back(h);  // too few threads only means less overlap
    }
    pw.run();  // the caller's thread works too (it is in the MTA already)
    joined.join();
    return pw.failure.load();
}

HRESULT Poller::read_file(CachedFile& fs) {
    HRESULT hr = fs.handle->file()->GetProgress(&fs.progress);
    if (FAILED(hr))
        return hr;
    IBackgroundCopyFile4* f4 = nullptr;
    hr = fs.handle->file4(conn_, &f4);
    if (SUCCEEDED(hr)) {
        hr = f4->GetPeerDownloadStats(&fs.stats.from_origin, &fs.stats.from_peers);
        if (FAILED(hr) && hr != E_NOTIMPL)
            return hr;
        fs.has_stats = SUCCEEDED(hr);
    } else if (hr != E_NOINTERFACE) {
        return hr;
    }
    // Counters read after completion do not move again.
    fs.final = fs.progress.Completed != FALSE;
    return S_OK;
}

HRESULT Poller::read_new_files(CachedJob& js) {
    std::vector<ComPtr<IBackgroundCopyFile>> listed;
    HRESULT hr = list_files(js.job.Get(), listed);
    if (FAILED(hr))
        return hr;
    // BITS lists files in the order they were added, and never removes one: the
    // first files are those already held.
    for (size_t i = js.files.size(); i < listed.size(); ++i) {
        CachedFile fs;
        fs.handle = std::make_unique<FileHandle>(std::move(listed[i]));
        CoTaskString remote, local;
        hr = fs.handle->file()->GetRemoteName(remote.put());
        if (SUCCEEDED(hr))
            hr = fs.handle->file()->GetLocalName(local.put());
        if (SUCCEEDED(hr))
            hr = read_file(fs);
        if (FAILED(hr))
            return hr;
        fs.remote = remote.get();
        fs.local = local.get();
        js.files.push_back(std::move(fs));
    }
    return S_OK;
}

HRESULT Poller::refresh(CachedJob& js) {
    HRESULT hr;
    if (js.fresh) {
        CoTaskString name, owner;
        hr = js.job->GetDisplayName(name.put());
        if (FAILED(hr))
            return hr;
        js.name = name.get();
        hr = js.job->GetType(&js.type);
        if (FAILED(hr))
            return hr;
        hr = conn_.lacks_owner.load(std::memory_order_relaxed) ? E_NOTIMPL
                                                               : js.job->GetOwner(owner.put());
        if (SUCCEEDED(hr)) {
            js.owner = owner.get();
            js.has_owner = true;
        } else if (hr == E_NOTIMPL) {
            conn_.lacks_owner.store(true, std::memory_order_relaxed);
        } else {
            return hr;
        }
    }
    BG_JOB_STATE state;
    BG_JOB_PROGRESS progress;
    hr = js.job->GetState(&state);
    if (SUCCEEDED(hr))
        hr = js.job->GetProgress(&progress);
    if (FAILED(hr))
        return hr;
    js.changed = js.fresh || state != js.state || !same(progress, js.progress);
    js.state = state;
    js.progress = progress;
    if (!js.changed)
        return S_OK;  // nothing moved: its files did not either
    hr = conn_.lacks_times.load(std::memory_order_relaxed) ? E_NOTIMPL
                                                           : read_job_times(js.job.Get(), js.times);
    if (hr == E_NOTIMPL)
        conn_.lacks_times.store(true, std::memory_order_relaxed);
    else if (FAILED(hr))
        return hr;
    js.has_times = SUCCEEDED(hr);
    const size_t known = js.files.size();
    for (size_t i = 0; i < known; ++i) {
        if (js.files[i].final)
            continue;
        hr = read_file(js.files[i]);
        if (FAILED(hr))
            return hr;
    }
    if (progress.FilesTotal > known) {
        hr = read_new_files(js);
        if (FAILED(hr))
            return hr;
    }
    js.fresh = false;
    return S_OK;
}

HRESULT Poller::poll(unsigned threads) {
    unsigned generation = 0;
    ComPtr<IBackgroundCopyManager> manager = conn_.manager(&generation);
    if (!manager)
        return E_HANDLE;
    if (generation != generation_)
        jobs_.clear();  // proxies of the service from before a restart: dead, start cold
    generation_ = generation;
    std::vector<ComPtr<IBackgroundCopyJob>> listed;
    HRESULT hr = list_jobs(manager.Get(), all_users_, listed);
    if (FAILED(hr)) {
        jobs_.clear();  // whatever failed may have killed them too: the next poll starts cold
        return hr;
    }

    // A job seen before comes back under the same proxy (one per remote object)...
    std::unordered_map<IBackgroundCopyJob*, size_t> by_pointer;
    std::unordered_map<GUID, size_t, GuidHash, GuidEq> by_id;
    for (size_t k = 0; k < jobs_.size(); ++k) {
        by_pointer.emplace(jobs_[k]->job.Get(), k);
        by_id.emplace(jobs_[k]->id, k);
    }
    std::vector<std::unique_ptr<CachedJob>> next(listed.size());
    for (size_t i = 0; i < listed.size(); ++i) {
        auto it = by_pointer.find(listed[i].Get());
        if (it != by_pointer.end() && jobs_[it->second])
            next[i] = std::move(jobs_[it->second]);
    }
    // ...or, where the server made a new object for it, is known by its id.
    for (size_t i = 0; i < listed.size(); ++i) {
        if (next[i])
            continue;
        GUID id;
        hr = listed[i]->GetId(&id);
        if (vanished(hr))
            continue;
        if (FAILED(hr)) {
            jobs_.clear();  // the next poll starts cold
            return hr;
        }
        auto it = by_id.find(id);
        if (it != by_id.end() && jobs_[it->second]) {
            next[i] = std::move(jobs_[it->second]);
        } else {
            next[i] = std::make_unique<CachedJob>();
            next[i]->id = id;
        }
        next[i]->job = std::move(listed[i]);
    }
    listed.clear();
    jobs_.clear();  // what is left are jobs gone from the queue

    struct Context {
        Poller* self;
        std::vector<std::unique_ptr<CachedJob>>* jobs;
    } ctx{this, &next};
    hr = parallel_for(
        next.size(), threads,
        [](void* c, size_t i) -> HRESULT {
            auto* cx = static_cast<Context*>(c);
            CachedJob* js = (*cx->jobs)[i].get();
            if (!js)
                return S_OK;
            HRESULT r = cx->self->refresh(*js);
            if (vanished(r)) {
                js->vanished = true;
                return S_OK;
            }
            return r;
        },
        &ctx);
    if (FAILED(hr))
        return hr;  // jobs_ is empty: the next poll starts cold
    for (auto& js : next)
        if (js && !js->vanished)
            jobs_.push_back(std::move(js));
    return S_OK;
}

}  // namespace winbits
