// Links, iterators, and the program queries the agent and its tests need.
#include "common.h"
#include "netns.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

namespace socklb {
namespace {

// linkUpdate(linkFd, programFd) -> 0 | -errno: swaps the program without a detached window.
Napi::Value LinkUpdate(const Napi::CallbackInfo &info)
{
	int link_fd = ArgInt(info, 0), prog_fd = ArgInt(info, 1);
	return Status(info.Env(), bpf_link_update(link_fd, prog_fd, nullptr));
}

// linkInfo(fd) -> { id, progId, type, cgroupId? } | -errno
Napi::Value LinkInfo(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	bpf_link_info li{};
	uint32_t len = sizeof(li);
	int rc = bpf_obj_get_info_by_fd(ArgInt(info, 0), &li, &len);
	if (rc < 0)
		return Status(env, rc);
	Napi::Object o = Napi::Object::New(env);
	o.Set("id", li.id);
	o.Set("progId", li.prog_id);
	o.Set("type", li.type);
	if (li.type == BPF_LINK_TYPE_CGROUP)
		o.Set("cgroupId", Napi::Number::New(env, static_cast<double>(li.cgroup.cgroup_id)));
	return o;
}

// Creates an iterator from the link and reads it to EOF; -errno on failure.
int ReadIterator(int link_fd, std::string *out)
{
	int fd = bpf_iter_create(link_fd);
	if (fd < 0)
		return fd;
	char buf[16384];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
		if (n > 0)
			out->append(buf, static_cast<size_t>(n));
	}
	int rc = n < 0 ? -errno : 0;
	close(fd);
	return rc;
}

// A socket iterator walks the netns of whoever creates the iterator fd: netns_path (if not empty)
// is entered by RunInNetns's own thread.
int ReadIteratorIn(int link_fd, const std::string &netns_path, std::string *out)
{
	if (netns_path.empty())
		return ReadIterator(link_fd, out);
	return RunInNetns(netns_path, [&] { return ReadIterator(link_fd, out); });
}

Napi::Value StringOrStatus(Napi::Env env, int rc, const std::string &out)
{
	if (rc < 0)
		return Status(env, rc);
	return Napi::String::New(env, out);
}

// iterRead(linkFd, netnsPath?) -> string | -errno
Napi::Value IterRead(const Napi::CallbackInfo &info)
{
	int link_fd = ArgInt(info, 0);
	std::string out;
	int rc = ReadIteratorIn(link_fd, ArgNetns(info, 1), &out);
	return StringOrStatus(info.Env(), rc, out);
}

// iterReadAsync(linkFd, netnsPath?) -> Promise<string | -errno>: iterRead on a libuv worker
// thread. The worker reads through its own dup of the link fd, so the link may be closed
// meanwhile (close() neither waits nor refuses): the link lives until the worker closes the dup.
Napi::Value IterReadAsync(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int link_fd = ArgInt(info, 0);
	struct Call {
		int fd;
		std::string netns, out;
		int rc = 0;
	};
	auto call = std::make_shared<Call>();
	call->netns = ArgNetns(info, 1);
	call->fd = fcntl(link_fd, F_DUPFD_CLOEXEC, 0);
	if (call->fd < 0)
		return Resolved(env, Status(env, -errno));
	return RunAsync(
		env,
		[call] {
			call->rc = ReadIteratorIn(call->fd, call->netns, &call->out);
			close(call->fd);
		},
		[call](Napi::Env env) { return StringOrStatus(env, call->rc, call->out); });
}

// The attach type whose libbpf name ("cgroup_inet4_connect", ...) is name, or -1.
int AttachTypeByName(const std::string &name)
{
	for (int t = 0;; t++) {
		const char *s = libbpf_bpf_attach_type_str(static_cast<enum bpf_attach_type>(t));
		if (!s)
			return -1;
		if (name == s)
			return t;
	}
}

// progQuery(cgroupPath, attachType) -> ids of the programs attached directly there | -errno
Napi::Value ProgQuery(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	std::string path = ArgString(info, 0);
	int type = AttachTypeByName(ArgString(info, 1));
	if (type < 0)
		return Status(env, -EINVAL);
	int cgroup_fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgroup_fd < 0)
		return Status(env, -errno);
	// 64 is the kernel's own cap on programs per cgroup and attach type (BPF_CGROUP_MAX_PROGS).
	std::vector<uint32_t> ids(64);
	uint32_t count = ids.size(), flags = 0;
	int rc = bpf_prog_query(cgroup_fd, static_cast<enum bpf_attach_type>(type), 0, &flags,
				ids.data(), &count);
	close(cgroup_fd);
	if (rc < 0)
		return Status(env, rc);
	Napi::Array result = Napi::Array::New(env, count);
	for (uint32_t i = 0; i < count; i++)
		result.Set(i, ids[i]);
	return result;
}

// progInfo(fd) -> { id, type, name, tag, runTimeNs, runCount } | -errno
Napi::Value ProgInfo(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	bpf_prog_info pi{};
	uint32_t len = sizeof(pi);
	int rc = bpf_obj_get_info_by_fd(ArgInt(info, 0), &pi, &len);
	if (rc < 0)
		return Status(env, rc);
	char tag[2 * BPF_TAG_SIZE + 1];
	for (int i = 0; i < BPF_TAG_SIZE; i++)
		snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
	Napi::Object o = Napi::Object::New(env);
	o.Set("id", pi.id);
	o.Set("type", pi.type);
	o.Set("name", std::string(pi.name, strnlen(pi.name, sizeof(pi.name))));
	o.Set("tag", tag);
	o.Set("runTimeNs", Napi::Number::New(env, static_cast<double>(pi.run_time_ns)));
	o.Set("runCount", Napi::Number::New(env, static_cast<double>(pi.run_cnt)));
	return o;
}

// progGetFdById(id) -> Fd | -errno
Napi::Value ProgGetFdById(const Napi::CallbackInfo &info)
{
	return FdOrStatus(info.Env(), bpf_prog_get_fd_by_id(ArgUint(info, 0)));
}

// enableRunTimeStats() -> Fd | -errno: run_time_ns/run_cnt count while any such fd is open.
Napi::Value EnableRunTimeStats(const Napi::CallbackInfo &info)
{
	return FdOrStatus(info.Env(), bpf_enable_stats(BPF_STATS_RUN_TIME));
}

} // namespace

void InitLink(Napi::Env env, Napi::Object exports)
{
	exports.Set("linkUpdate", Napi::Function::New<LinkUpdate>(env, "linkUpdate"));
	exports.Set("linkInfo", Napi::Function::New<LinkInfo>(env, "linkInfo"));
	exports.Set("iterRead", Napi::Function::New<IterRead>(env, "iterRead"));
	exports.Set("iterReadAsync", Napi::Function::New<IterReadAsync>(env, "iterReadAsync"));
	exports.Set("progQuery", Napi::Function::New<ProgQuery>(env, "progQuery"));
	exports.Set("progInfo", Napi::Function::New<ProgInfo>(env, "progInfo"));
	exports.Set("progGetFdById", Napi::Function::New<ProgGetFdById>(env, "progGetFdById"));
	exports.Set("enableRunTimeStats",
		    Napi::Function::New<EnableRunTimeStats>(env, "enableRunTimeStats"));
}

} // namespace socklb
