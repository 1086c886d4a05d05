// Packet programs: BPF_PROG_TEST_RUN, and attaching XDP and tc programs to network devices.
//
// Everything here takes a program fd (BpfObject.programFd) rather than a libbpf bpf_program, so it
// works as well for a program reopened from a pin. An ifindex means something only in its own
// network namespace, and BPF_PROG_TEST_RUN uses the caller's (for bpf_fib_lookup and the ingress
// device), so every call can run in another netns, entered on a short-lived thread: the Node
// thread never moves.
#include "common.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <thread>
#include <vector>

namespace socklb {
namespace {

// Not in the bookworm uapi headers libbpf 1.1 is built with; the kernel's enum bpf_attach_type.
constexpr int kAttachTcxIngress = 46;
constexpr int kAttachTcxEgress = 47;

// Runs fn() in the netns at path (or here, for an empty path); returns fn's status or -errno.
template <typename Fn> int InNetns(const std::string &path, Fn fn)
{
	if (path.empty())
		return fn();
	int rc = 0;
	std::thread worker([&] {
		int ns = open(path.c_str(), O_RDONLY | O_CLOEXEC);
		if (ns < 0) {
			rc = -errno;
			return;
		}
		rc = setns(ns, CLONE_NEWNET) < 0 ? -errno : 0;
		close(ns);
		if (rc == 0)
			rc = fn();
	});
	worker.join();
	return rc;
}

// An optional trailing netns path argument: "" when absent.
std::string ArgNetns(const Napi::CallbackInfo &info, size_t i)
{
	if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull())
		return "";
	return ArgString(info, i);
}

// progTestRun(progFd, data, repeat, ctxIn|null, outSize, netns?) ->
//   { retval, data, durationNs, ctx? } | -errno
// data is the packet as it left the program (up to outSize bytes); ctx the context after the run
// when ctxIn was given; durationNs the kernel's average per run.
Napi::Value ProgTestRun(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int prog_fd = ArgInt(info, 0);
	auto data = ArgBuffer(info, 1);
	uint32_t repeat = ArgUint(info, 2);
	bool has_ctx = !(info[3].IsNull() || info[3].IsUndefined());
	std::vector<uint8_t> ctx_in, ctx_out;
	if (has_ctx) {
		auto c = ArgBuffer(info, 3);
		ctx_in.assign(c.Data(), c.Data() + c.Length());
		ctx_out.resize(c.Length());
	}
	std::vector<uint8_t> out(ArgUint(info, 4));
	std::string netns = ArgNetns(info, 5);

	LIBBPF_OPTS(bpf_test_run_opts, opts);
	opts.data_in = data.Data();
	opts.data_size_in = data.Length();
	opts.data_out = out.data();
	opts.data_size_out = out.size();
	opts.repeat = repeat;
	if (has_ctx) {
		opts.ctx_in = ctx_in.data();
		opts.ctx_size_in = ctx_in.size();
		opts.ctx_out = ctx_out.data();
		opts.ctx_size_out = ctx_out.size();
	}
	int rc = InNetns(netns, [&] { return bpf_prog_test_run_opts(prog_fd, &opts); });
	if (rc < 0)
		return Status(env, rc);
	Napi::Object o = Napi::Object::New(env);
	o.Set("retval", opts.retval);
	o.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), opts.data_size_out));
	o.Set("durationNs", opts.duration);
	if (has_ctx)
		o.Set("ctx", Napi::Buffer<uint8_t>::Copy(env, ctx_out.data(), opts.ctx_size_out));
	return o;
}

// xdpAttach(progFd, ifindex, xdpFlags, netns?) -> Fd of the bpf_link | -errno
// xdpFlags: XDP_FLAGS_DRV_MODE (4, native) or XDP_FLAGS_SKB_MODE (2, generic).
Napi::Value XdpAttach(const Napi::CallbackInfo &info)
{
	int prog_fd = ArgInt(info, 0), ifindex = ArgInt(info, 1);
	uint32_t flags = ArgUint(info, 2);
	std::string netns = ArgNetns(info, 3);
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
	int fd = InNetns(netns, [&] { return bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts); });
	return FdOrStatus(info.Env(), fd);
}

// tcxAttach(progFd, ifindex, egress, netns?) -> Fd of the bpf_link | -errno (kernel 6.6+)
Napi::Value TcxAttach(const Napi::CallbackInfo &info)
{
	int prog_fd = ArgInt(info, 0), ifindex = ArgInt(info, 1);
	auto type = static_cast<enum bpf_attach_type>(info[2].ToBoolean() ? kAttachTcxEgress
									  : kAttachTcxIngress);
	std::string netns = ArgNetns(info, 3);
	int fd = InNetns(netns, [&] { return bpf_link_create(prog_fd, ifindex, type, nullptr); });
	return FdOrStatus(info.Env(), fd);
}

// clsactAttach(progFd, ifindex, egress, netns?) -> { handle, priority } | -errno
// The kernels before tcx: a clsact qdisc (made unless there is one) and a direct-action filter.
// Nothing holds it but the device: detach it with clsactDetach.
Napi::Value ClsactAttach(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	int prog_fd = ArgInt(info, 0), ifindex = ArgInt(info, 1);
	auto point = info[2].ToBoolean() ? BPF_TC_EGRESS : BPF_TC_INGRESS;
	std::string netns = ArgNetns(info, 3);
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
	LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd);
	int rc = InNetns(netns, [&] {
		int r = bpf_tc_hook_create(&hook);
		if (r < 0 && r != -EEXIST)
			return r;
		return bpf_tc_attach(&hook, &opts);
	});
	if (rc < 0)
		return Status(env, rc);
	Napi::Object o = Napi::Object::New(env);
	o.Set("handle", opts.handle);
	o.Set("priority", opts.priority);
	return o;
}

// clsactDetach(ifindex, egress, handle, priority, netns?) -> 0 | -errno
Napi::Value ClsactDetach(const Napi::CallbackInfo &info)
{
	int ifindex = ArgInt(info, 0);
	auto point = info[1].ToBoolean() ? BPF_TC_EGRESS : BPF_TC_INGRESS;
	uint32_t handle = ArgUint(info, 2), priority = ArgUint(info, 3);
	std::string netns = ArgNetns(info, 4);
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
	return Status(info.Env(), InNetns(netns, [&] { return bpf_tc_detach(&hook, &opts); }));
}

} // namespace

void InitProg(Napi::Env env, Napi::Object exports)
{
	exports.Set("progTestRun", Napi::Function::New<ProgTestRun>(env, "progTestRun"));
	exports.Set("xdpAttach", Napi::Function::New<XdpAttach>(env, "xdpAttach"));
	exports.Set("tcxAttach", Napi::Function::New<TcxAttach>(env, "tcxAttach"));
	exports.Set("clsactAttach", Napi::Function::New<ClsactAttach>(env, "clsactAttach"));
	exports.Set("clsactDetach", Napi::Function::New<ClsactDetach>(env, "clsactDetach"));
}

} // namespace socklb
