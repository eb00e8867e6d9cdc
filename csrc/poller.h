// The fast path for polling BITS: one walk over every job, file and peer count, and
// repeat walks that ask again only for what can have moved. No Python here.
#pragma once

#include "com_core.h"

#include <memory>

namespace winbits {

struct CachedFile {
    std::unique_ptr<FileHandle> handle;
    std::wstring remote, local;  // read once: a file's names do not change
    BG_FILE_PROGRESS progress{};
    bool has_stats = false;  // false where the server lacks IBackgroundCopyFile4
    PeerStats stats;
    bool final = false;  // completed, and its counters read since: never asked again
};

struct CachedJob {
    ComPtr<IBackgroundCopyJob> job;
    GUID id{};
    std::wstring name;  // read once, like the owner and the type
    BG_JOB_TYPE type{};
    bool has_owner = false;
    std::wstring owner;
    BG_JOB_STATE state{};
    BG_JOB_PROGRESS progress{};
    bool has_times = false;
    JobTimes times;
    std::vector<CachedFile> files;
    bool fresh = true;      // never read yet
    bool changed = false;   // read again in the last poll
    bool vanished = false;  // left the queue while being read
};

// Call counts per shape (asserted by the tests against the test double):
//  - every poll: EnumJobs + one Next per 64 jobs;
//  - a job seen before is recognised by its proxy pointer (COM gives one proxy per
//    remote object); where the server hands out new objects, by GetId (+1 call);
//  - a job seen before: GetState + GetProgress; only if either moved, GetTimes and its
//    files: EnumFiles + Next when files were added, and per file not yet final
//    GetProgress + GetPeerDownloadStats;
//  - a new job: GetId, GetDisplayName, GetType, GetOwner (not once the server is known
//    to lack it), GetState, GetProgress, GetTimes (likewise), EnumFiles (none while it has
//    no files),
//    Next, and per file GetRemoteName, GetLocalName, GetProgress, one
//    QueryInterface(IBackgroundCopyFile4) (none once the server is known to lack it)
//    and GetPeerDownloadStats.
class Poller {
public:
    Poller(Connection& connection, bool all_users) : conn_(connection), all_users_(all_users) {}

    // Walks the queue. Afterwards jobs() is the queue in BITS' order, each job marked
    // changed or not (the facade tells removed jobs by their absence). A job
    // that vanishes while being read (BG_E_NOT_FOUND, E_ACCESSDENIED) is left out, not
    // fatal. threads > 1 reads jobs side by side on that many MTA threads.
    HRESULT poll(unsigned threads);

    const std::vector<std::unique_ptr<CachedJob>>& jobs() const { return jobs_; }
    SrwLock& lock() { return lock_; }
    // The connection's generation the last poll went to (for its error's reconnect).
    unsigned generation() const { return generation_; }
    // Forgets what was seen: the next poll is a cold walk that reports every job. For a
    // poll whose results could not be handed over. Call in the MTA.
    void reset() { jobs_.clear(); }

private:
    HRESULT refresh(CachedJob& js);
    HRESULT read_new_files(CachedJob& js);
    HRESULT read_file(CachedFile& fs);

    Connection& conn_;
    bool all_users_;
    SrwLock lock_;  // one poll at a time; held while Python reads the results
    std::vector<std::unique_ptr<CachedJob>> jobs_;
    unsigned generation_ = 0;  // of the service whose proxies jobs_ holds
};

// Runs work(i) for i in [0, n) on up to `threads` MTA threads (the caller's among
// them); returns the first failure.
HRESULT parallel_for(size_t n, unsigned threads, HRESULT (*work)(void*, size_t), void* context);

}  // namespace winbits
