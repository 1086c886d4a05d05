// SOCK_DESTROY through NETLINK_SOCK_DIAG: ends UDP sockets connected to removed backends on kernels
// without the bpf_sock_destroy kfunc (before 6.5), the way `ss -K` does. Needs
// CONFIG_INET_DIAG_DESTROY (on in Debian's kernels) and CAP_NET_ADMIN in the target netns.
#include "sock_diag.h"
#include "netns.h"

#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <set>
#include <vector>

namespace socklb {
namespace {

// A backend whose connected sockets must go.
struct UdpTarget {
	int family;	  // AF_INET or AF_INET6
	uint8_t addr[16]; // network order; an IPv4 address fills the first 4 bytes
	uint16_t port;	  // network order
};

struct DestroyCounts {
	uint32_t destroyed = 0;
	// Matched sockets whose SOCK_DESTROY failed for a reason other than being gone already.
	uint32_t errors = 0;
};

// What the kernel reads for both the dump and SOCK_DESTROY.
struct DiagRequest {
	nlmsghdr nlh;
	inet_diag_req_v2 req;
};

// A dump answer travels in skbs of at most 32 KiB (the cap on netlink's max_recvmsg_len); twice
// that leaves room, and MSG_TRUNC still catches a kernel that sends more.
constexpr size_t kRecvSize = 64 * 1024;

class FdGuard {
public:
	explicit FdGuard(int fd) : fd_(fd)
	{
	}
	~FdGuard()
	{
		if (fd_ >= 0)
			close(fd_);
	}
	FdGuard(const FdGuard &) = delete;
	FdGuard &operator=(const FdGuard &) = delete;
	int get() const
	{
		return fd_;
	}

private:
	int fd_;
};

int Send(int fd, DiagRequest *r)
{
	sockaddr_nl kernel{};
	kernel.nl_family = AF_NETLINK;
	for (;;) {
		ssize_t n = sendto(fd, r, sizeof(*r), 0, reinterpret_cast<sockaddr *>(&kernel),
				   sizeof(kernel));
		if (n >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

// Reads the replies to request seq until the kernel ends them: NLMSG_DONE after a dump, NLMSG_ERROR
// after a command (error 0 is the ack). Each socket a dump reports goes to on_socket.
template <typename OnSocket>
int ReadReplies(int fd, uint32_t seq, std::vector<char> &buf, OnSocket on_socket)
{
	for (;;) {
		iovec iov{ buf.data(), buf.size() };
		msghdr msg{};
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		ssize_t n = recvmsg(fd, &msg, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (msg.msg_flags & MSG_TRUNC)
			return -EMSGSIZE;
		int len = static_cast<int>(n);
		for (nlmsghdr *h = reinterpret_cast<nlmsghdr *>(buf.data()); NLMSG_OK(h, len);
		     h = NLMSG_NEXT(h, len)) {
			// One request of ours is in flight at a time; anything else is stale.
			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE) {
				// A dump that failed midway says so in the int after the header.
				int err = 0;
				if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(err)))
					memcpy(&err, NLMSG_DATA(h), sizeof(err));
				return err < 0 ? err : 0;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr)))
					return -EPROTO;
				return static_cast<const nlmsgerr *>(NLMSG_DATA(h))->error;
			}
			if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
			    h->nlmsg_len >= NLMSG_LENGTH(sizeof(inet_diag_msg)))
				on_socket(*static_cast<const inet_diag_msg *>(NLMSG_DATA(h)));
		}
	}
}

bool IsV4Mapped(const uint8_t *a)
{
	static const uint8_t prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return memcmp(a, prefix, sizeof(prefix)) == 0;
}

// Whether the socket's peer is the target. A dual-stack AF_INET6 socket that connected to an IPv4
// backend reports ::ffff:a.b.c.d, and it is just as stuck as an AF_INET one.
bool PeerIs(const inet_diag_msg &m, const UdpTarget &t)
{
	if (m.id.idiag_dport != t.port)
		return false;
	const uint8_t *dst = reinterpret_cast<const uint8_t *>(m.id.idiag_dst);
	if (m.idiag_family == AF_INET)
		return t.family == AF_INET && memcmp(dst, t.addr, 4) == 0;
	if (t.family == AF_INET6)
		return memcmp(dst, t.addr, 16) == 0;
	return IsV4Mapped(dst) && memcmp(dst + 12, t.addr, 4) == 0;
}

// Collects the UDP sockets of family whose peer is one of targets. The kernel's udp_dump filters on
// the destination port itself (id.idiag_dport), so one dump per port avoids copying every socket of
// a busy node; the address is compared here.
int DumpConnected(int fd, int family, const std::vector<UdpTarget> &targets, uint32_t *seq,
		  std::vector<char> &buf, std::vector<inet_diag_msg> *found)
{
	std::set<uint16_t> ports;
	for (const UdpTarget &t : targets)
		if (family == AF_INET6 || t.family == AF_INET)
			ports.insert(t.port);
	for (uint16_t port : ports) {
		DiagRequest r{};
		r.nlh.nlmsg_len = sizeof(r);
		r.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
		r.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
		r.nlh.nlmsg_seq = ++*seq;
		r.req.sdiag_family = family;
		r.req.sdiag_protocol = IPPROTO_UDP;
		// Every state: the port filter already leaves out unconnected sockets (dport 0),
		// so a narrower mask would only add an assumption about UDP's use of TCP states.
		r.req.idiag_states = ~0u;
		r.req.id.idiag_dport = port;
		int rc = Send(fd, &r);
		if (rc < 0)
			return rc;
		rc = ReadReplies(fd, r.nlh.nlmsg_seq, buf, [&](const inet_diag_msg &m) {
			for (const UdpTarget &t : targets) {
				if (PeerIs(m, t)) {
					found->push_back(m);
					return;
				}
			}
		});
		if (rc < 0)
			return rc;
	}
	return 0;
}

// SOCK_DESTROY for one socket. The kernel finds it again by the full id (addresses, ports, bound
// interface) and refuses with ENOENT unless the cookie matches, so a socket that closed since the
// dump, and another that reused its 4-tuple, are both left alone.
int DestroyOne(int fd, const inet_diag_msg &m, uint32_t seq, std::vector<char> &buf)
{
	DiagRequest r{};
	r.nlh.nlmsg_len = sizeof(r);
	r.nlh.nlmsg_type = SOCK_DESTROY;
	r.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	r.nlh.nlmsg_seq = seq;
	r.req.sdiag_family = m.idiag_family;
	r.req.sdiag_protocol = IPPROTO_UDP;
	r.req.id = m.id;
	int rc = Send(fd, &r);
	if (rc < 0)
		return rc;
	return ReadReplies(fd, seq, buf, [](const inet_diag_msg &) {});
}

// Runs in the netns whose sockets are to go: a NETLINK_SOCK_DIAG socket sees only the netns it was
// created in.
int DestroyUdp(const std::vector<UdpTarget> &targets, DestroyCounts *counts)
{
	FdGuard nl(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
	if (nl.get() < 0)
		return -errno;
	std::vector<char> buf(kRecvSize);
	uint32_t seq = 0;

	// The whole list first: destroying while a dump is still being read on the same socket
	// would interleave the ack with the dump's pages.
	std::vector<inet_diag_msg> found;
	bool any_v4 = false;
	for (const UdpTarget &t : targets)
		any_v4 |= t.family == AF_INET;
	if (any_v4) {
		int rc = DumpConnected(nl.get(), AF_INET, targets, &seq, buf, &found);
		if (rc < 0)
			return rc;
	}
	// AF_INET6 always: IPv6 targets, and dual-stack sockets connected to IPv4 targets.
	int rc = DumpConnected(nl.get(), AF_INET6, targets, &seq, buf, &found);
	if (rc < 0)
		return rc;

	for (const inet_diag_msg &m : found) {
		rc = DestroyOne(nl.get(), m, ++seq, buf);
		if (rc == 0)
			counts->destroyed++;
		else if (rc == -ENOENT)
			continue; // closed (or reconnected) since the dump: nothing left to end
		else if (rc == -EOPNOTSUPP || rc == -EPERM)
			// Not built in (CONFIG_INET_DIAG_DESTROY off), or no CAP_NET_ADMIN over
			// this netns: every other socket would fail alike; the caller must know.
			return rc;
		else
			counts->errors++;
	}
	return 0;
}

// DestroyUdp in the netns at netns_path, or in the caller's for "".
int DestroyUdpIn(const std::vector<UdpTarget> &targets, const std::string &netns_path,
		 DestroyCounts *counts)
{
	if (targets.empty())
		return 0;
	if (netns_path.empty())
		return DestroyUdp(targets, counts);
	return RunInNetns(netns_path, [&] { return DestroyUdp(targets, counts); });
}

// Reads [{ family: 4 | 6, address: Buffer (4 or 16 bytes), port }]; -EINVAL for a bad value.
int ParseTargets(const Napi::CallbackInfo &info, std::vector<UdpTarget> *out)
{
	if (!info[0].IsArray())
		ThrowArg(info, 0, "an array of { family, address, port }");
	Napi::Array list = info[0].As<Napi::Array>();
	for (uint32_t i = 0; i < list.Length(); i++) {
		Napi::Value v = list.Get(i);
		if (!v.IsObject())
			ThrowArg(info, 0, "an array of { family, address, port }");
		Napi::Object o = v.As<Napi::Object>();
		Napi::Value family = o.Get("family"), address = o.Get("address");
		Napi::Value port = o.Get("port");
		if (!family.IsNumber() || !address.IsBuffer() || !port.IsNumber())
			ThrowArg(info, 0, "an array of { family, address: Buffer, port }");
		UdpTarget t{};
		int fam = family.As<Napi::Number>().Int32Value();
		auto bytes = address.As<Napi::Buffer<uint8_t>>();
		double p = port.As<Napi::Number>().DoubleValue();
		size_t want = fam == 4 ? 4 : 16;
		if ((fam != 4 && fam != 6) || bytes.Length() != want || !(p >= 1 && p <= 65535) ||
		    p != static_cast<int>(p))
			return -EINVAL;
		t.family = fam == 4 ? AF_INET : AF_INET6;
		memcpy(t.addr, bytes.Data(), want);
		t.port = htons(static_cast<uint16_t>(p));
		out->push_back(t);
	}
	return 0;
}

Napi::Value CountsOrStatus(Napi::Env env, int rc, const DestroyCounts &counts)
{
	if (rc < 0)
		return Status(env, rc);
	Napi::Object o = Napi::Object::New(env);
	o.Set("destroyed", counts.destroyed);
	o.Set("errors", counts.errors);
	return o;
}

// destroyUdpSockets(targets, netnsPath?) -> { destroyed, errors } | -errno
Napi::Value DestroyUdpSockets(const Napi::CallbackInfo &info)
{
	std::vector<UdpTarget> targets;
	int rc = ParseTargets(info, &targets);
	DestroyCounts counts;
	if (rc == 0)
		rc = DestroyUdpIn(targets, ArgNetns(info, 1), &counts);
	return CountsOrStatus(info.Env(), rc, counts);
}

// destroyUdpSocketsAsync(targets, netnsPath?) -> Promise<{ destroyed, errors } | -errno>: the
// dumps and SOCK_DESTROYs on a libuv worker thread. The targets are copied first, so the caller's
// array and Buffers may change meanwhile.
Napi::Value DestroyUdpSocketsAsync(const Napi::CallbackInfo &info)
{
	struct Call {
		std::vector<UdpTarget> targets;
		std::string netns;
		DestroyCounts counts;
		int rc = 0;
	};
	auto call = std::make_shared<Call>();
	int rc = ParseTargets(info, &call->targets);
	call->netns = ArgNetns(info, 1);
	if (rc < 0)
		return Resolved(info.Env(), Status(info.Env(), rc));
	return RunAsync(
		info.Env(),
		[call] { call->rc = DestroyUdpIn(call->targets, call->netns, &call->counts); },
		[call](Napi::Env env) { return CountsOrStatus(env, call->rc, call->counts); });
}

} // namespace

void InitSockDiag(Napi::Env env, Napi::Object exports)
{
	exports.Set("destroyUdpSockets",
		    Napi::Function::New<DestroyUdpSockets>(env, "destroyUdpSockets"));
	exports.Set("destroyUdpSocketsAsync",
		    Napi::Function::New<DestroyUdpSocketsAsync>(env, "destroyUdpSocketsAsync"));
}

} // namespace socklb
