// Running a call inside another network namespace without moving any thread Node owns.
#pragma once

#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

namespace socklb {

// Runs fn() in the netns at netns_path (/proc/PID/ns/net, /run/netns/NAME) and returns its status,
// or -errno when the netns cannot be entered. setns() moves only the calling thread, so a
// throwaway thread enters the netns and dies there: neither the JS thread nor a libuv pool thread
// ever changes namespace. A pool thread that entered and failed to return would leave every later
// dns.lookup() or socket call queued on it resolving in a pod's netns; a fresh thread costs about
// as much as one setns() and cannot fail that way.
template <typename Fn> int RunInNetns(const std::string &netns_path, Fn fn)
{
	int rc = 0;
	std::thread worker([&] {
		int ns = open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
		if (ns < 0) {
			rc = -errno;
			return;
		}
		if (setns(ns, CLONE_NEWNET) < 0) {
			rc = -errno;
			close(ns);
			return;
		}
		close(ns);
		rc = fn();
	});
	worker.join();
	return rc;
}

// The optional netns path argument i: "" for null/undefined (the caller's own netns).
inline std::string ArgNetns(const Napi::CallbackInfo &info, size_t i)
{
	if (info[i].IsUndefined() || info[i].IsNull())
		return "";
	return ArgString(info, i);
}

} // namespace socklb
