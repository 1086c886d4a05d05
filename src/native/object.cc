// A libbpf bpf_object: open, configure before load, load, then hand out fds and attach programs.
#include "common.h"

#include <bpf/libbpf.h>

#include <fcntl.h>
#include <unistd.h>

#include <memory>

namespace socklb {
namespace {

// libbpf's bpf_link frees our fd with itself; JS owns links as plain fds (so a pinned link can
// outlive the object and be reopened from its pin). Disconnect keeps the fd open, destroy frees the
// struct.
Napi::Value AdoptLink(Napi::Env env, struct bpf_link *link)
{
	if (!link)
		return Status(env, NegErrno());
	int fd = bpf_link__fd(link);
	bpf_link__disconnect(link);
	bpf_link__destroy(link);
	return NewFd(env, fd);
}

// What loadAsync() resolves with: [status, what libbpf printed].
Napi::Value LoadResult(Napi::Env env, int rc, const std::string &log)
{
	Napi::Array result = Napi::Array::New(env, 2);
	result.Set(0u, Status(env, rc));
	result.Set(1u, log);
	return result;
}

class BpfObject : public Napi::ObjectWrap<BpfObject> {
public:
	static Napi::Function Define(Napi::Env env)
	{
		return DefineClass(
			env, "BpfObject",
			{
				InstanceMethod<&BpfObject::Open>("open"),
				InstanceMethod<&BpfObject::MapNames>("mapNames"),
				InstanceMethod<&BpfObject::ProgramNames>("programNames"),
				InstanceMethod<&BpfObject::SetMaxEntries>("setMaxEntries"),
				InstanceMethod<&BpfObject::SetPinPath>("setPinPath"),
				InstanceMethod<&BpfObject::ReuseMapFd>("reuseMapFd"),
				InstanceMethod<&BpfObject::InitialValue>("initialValue"),
				InstanceMethod<&BpfObject::SetInitialValue>("setInitialValue"),
				InstanceMethod<&BpfObject::Load>("load"),
				InstanceMethod<&BpfObject::LoadAsync>("loadAsync"),
				InstanceMethod<&BpfObject::MapFd>("mapFd"),
				InstanceMethod<&BpfObject::ProgramFd>("programFd"),
				InstanceMethod<&BpfObject::AttachCgroup>("attachCgroup"),
				InstanceMethod<&BpfObject::AttachIter>("attachIter"),
				InstanceMethod<&BpfObject::Close>("close"),
			});
	}

	explicit BpfObject(const Napi::CallbackInfo &info) : Napi::ObjectWrap<BpfObject>(info)
	{
	}

	~BpfObject() override
	{
		// Never while loading: the worker holds a reference (Ref()) until it settles.
		bpf_object__close(obj_);
	}

private:
	// open(path) -> 0 | -errno; an object opens once.
	Napi::Value Open(const Napi::CallbackInfo &info)
	{
		std::string path = ArgString(info, 0);
		if (loading_)
			return Status(info.Env(), -EBUSY);
		if (obj_)
			return Status(info.Env(), -EALREADY);
		obj_ = bpf_object__open_file(path.c_str(), nullptr);
		if (!obj_)
			return Status(info.Env(), NegErrno());
		return Status(info.Env(), 0);
	}

	Napi::Value MapNames(const Napi::CallbackInfo &info)
	{
		Napi::Array names = Napi::Array::New(info.Env());
		struct bpf_map *map;
		uint32_t i = 0;
		if (loading_)
			return Status(info.Env(), -EBUSY);
		if (obj_) {
			bpf_object__for_each_map(map, obj_)
				names.Set(i++, bpf_map__name(map));
		}
		return names;
	}

	Napi::Value ProgramNames(const Napi::CallbackInfo &info)
	{
		Napi::Array names = Napi::Array::New(info.Env());
		struct bpf_program *prog;
		uint32_t i = 0;
		if (loading_)
			return Status(info.Env(), -EBUSY);
		if (obj_) {
			bpf_object__for_each_program(prog, obj_)
				names.Set(i++, bpf_program__name(prog));
		}
		return names;
	}

	// The object, or nullptr with the status in *rc: -EBADF once closed, -EBUSY while a
	// loadAsync() worker is inside libbpf with it (libbpf objects are not thread-safe).
	struct bpf_object *Usable(int *rc)
	{
		*rc = loading_ ? -EBUSY : -EBADF;
		return loading_ ? nullptr : obj_;
	}

	// Finds the map named by argument 0; on failure stores the status to return in *rc.
	struct bpf_map *FindMap(const Napi::CallbackInfo &info, int *rc)
	{
		std::string name = ArgString(info, 0);
		struct bpf_object *obj = Usable(rc);
		if (!obj)
			return nullptr;
		*rc = -ENOENT;
		return bpf_object__find_map_by_name(obj, name.c_str());
	}

	struct bpf_program *FindProgram(const Napi::CallbackInfo &info, int *rc)
	{
		std::string name = ArgString(info, 0);
		struct bpf_object *obj = Usable(rc);
		if (!obj)
			return nullptr;
		*rc = -ENOENT;
		return bpf_object__find_program_by_name(obj, name.c_str());
	}

	// setMaxEntries(map, n) -> 0 | -errno
	Napi::Value SetMaxEntries(const Napi::CallbackInfo &info)
	{
		int rc;
		struct bpf_map *map = FindMap(info, &rc);
		uint32_t n = ArgUint(info, 1);
		if (map)
			rc = bpf_map__set_max_entries(map, n);
		return Status(info.Env(), rc);
	}

	// setPinPath(map, path) -> 0 | -errno
	Napi::Value SetPinPath(const Napi::CallbackInfo &info)
	{
		int rc;
		struct bpf_map *map = FindMap(info, &rc);
		std::string path = ArgString(info, 1);
		if (map)
			rc = bpf_map__set_pin_path(map, path.c_str());
		return Status(info.Env(), rc);
	}

	// reuseMapFd(map, fd) -> 0 | -errno: the object uses that map instead of creating its own.
	Napi::Value ReuseMapFd(const Napi::CallbackInfo &info)
	{
		int rc;
		struct bpf_map *map = FindMap(info, &rc);
		int fd = ArgInt(info, 1);
		if (map)
			rc = bpf_map__reuse_fd(map, fd);
		return Status(info.Env(), rc);
	}

	// initialValue(map) -> Buffer (a copy) | -errno; -ENODATA for a map without initial data.
	Napi::Value InitialValue(const Napi::CallbackInfo &info)
	{
		int rc;
		struct bpf_map *map = FindMap(info, &rc);
		if (!map)
			return Status(info.Env(), rc);
		size_t size = 0;
		const void *data = bpf_map__initial_value(map, &size);
		if (!data)
			return Status(info.Env(), -ENODATA);
		return Napi::Buffer<uint8_t>::Copy(info.Env(), static_cast<const uint8_t *>(data),
						   size);
	}

	// setInitialValue(map, data) -> 0 | -errno; data must be exactly the map's value size.
	Napi::Value SetInitialValue(const Napi::CallbackInfo &info)
	{
		int rc;
		struct bpf_map *map = FindMap(info, &rc);
		auto data = ArgBuffer(info, 1);
		if (map)
			rc = bpf_map__set_initial_value(map, data.Data(), data.Length());
		return Status(info.Env(), rc);
	}

	// load() -> 0 | -errno; the reason is in takeLog().
	Napi::Value Load(const Napi::CallbackInfo &info)
	{
		int rc;
		struct bpf_object *obj = Usable(&rc);
		return Status(info.Env(), obj ? bpf_object__load(obj) : rc);
	}

	// loadAsync() -> Promise<[0 | -errno, log]>: bpf_object__load on a libuv worker thread (the
	// verifier may take seconds), with what libbpf printed during this load alone. Until it
	// settles, the JS object is referenced (no finalizer) and every other method returns
	// -EBUSY, close() included.
	Napi::Value LoadAsync(const Napi::CallbackInfo &info)
	{
		Napi::Env env = info.Env();
		int rc;
		struct bpf_object *obj = Usable(&rc);
		if (!obj)
			return Resolved(env, LoadResult(env, rc, ""));
		struct Call {
			int rc = 0;
			std::string log;
		};
		auto call = std::make_shared<Call>();
		loading_ = true;
		Ref();
		return RunAsync(
			env,
			[obj, call] {
				LogCapture capture(&call->log);
				call->rc = bpf_object__load(obj);
			},
			[this, call](Napi::Env env) {
				loading_ = false;
				Unref();
				return LoadResult(env, call->rc, call->log);
			});
	}

	// mapFd(map) -> Fd (a dup, independent of this object) | -errno
	Napi::Value MapFd(const Napi::CallbackInfo &info)
	{
		int rc;
		struct bpf_map *map = FindMap(info, &rc);
		if (!map)
			return Status(info.Env(), rc);
		int fd = bpf_map__fd(map);
		if (fd < 0)
			return Status(info.Env(), -EBADF); // not loaded yet
		fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		return FdOrStatus(info.Env(), fd < 0 ? -errno : fd);
	}

	// programFd(program) -> fd owned by this object | -errno
	Napi::Value ProgramFd(const Napi::CallbackInfo &info)
	{
		int rc;
		struct bpf_program *prog = FindProgram(info, &rc);
		if (!prog)
			return Status(info.Env(), rc);
		int fd = bpf_program__fd(prog);
		return Status(info.Env(), fd < 0 ? -EBADF : fd); // not loaded yet
	}

	// attachCgroup(program, cgroupPath) -> Fd of the bpf_link | -errno
	Napi::Value AttachCgroup(const Napi::CallbackInfo &info)
	{
		int rc;
		struct bpf_program *prog = FindProgram(info, &rc);
		std::string path = ArgString(info, 1);
		if (!prog)
			return Status(info.Env(), rc);
		int cgroup_fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cgroup_fd < 0)
			return Status(info.Env(), -errno);
		struct bpf_link *link = bpf_program__attach_cgroup(prog, cgroup_fd);
		int saved = errno;
		// The link holds its own reference to the cgroup.
		close(cgroup_fd);
		errno = saved;
		return AdoptLink(info.Env(), link);
	}

	// attachIter(program) -> Fd of the bpf_link | -errno
	Napi::Value AttachIter(const Napi::CallbackInfo &info)
	{
		int rc;
		struct bpf_program *prog = FindProgram(info, &rc);
		if (!prog)
			return Status(info.Env(), rc);
		return AdoptLink(info.Env(), bpf_program__attach_iter(prog, nullptr));
	}

	// close() -> 0 | -EBUSY: maps and programs stay alive while other fds (dups, links, pins)
	// hold them. It refuses while loadAsync() runs rather than wait: the worker is inside
	// libbpf with the object, and waiting would block the event loop that loadAsync() keeps
	// free.
	Napi::Value Close(const Napi::CallbackInfo &info)
	{
		if (loading_)
			return Status(info.Env(), -EBUSY);
		bpf_object__close(obj_);
		obj_ = nullptr;
		return Status(info.Env(), 0);
	}

	struct bpf_object *obj_ = nullptr;
	// A loadAsync() worker owns obj_ until it settles.
	bool loading_ = false;
};

} // namespace

void InitObject(Napi::Env env, Napi::Object exports)
{
	exports.Set("BpfObject", BpfObject::Define(env));
}

} // namespace socklb
