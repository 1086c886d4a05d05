// The one owner of every fd the addon hands to JS, and what the map calls learn from it.
#include "common.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <unistd.h>

#include <cstring>
#include <memory>

namespace socklb {
namespace {

bool IsPerCpu(uint32_t type)
{
	return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

// Whether fd is a map: bpf_obj_get_info_by_fd would fill a map's info from a program or link
// too, and a pin may hold any of them.
bool IsMapFd(int fd)
{
	char path[32], target[32];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strcmp(target, "anon_inode:bpf-map") == 0;
}

int ReadShape(int fd, MapShape *out)
{
	if (!IsMapFd(fd))
		return -EINVAL;
	bpf_map_info mi{};
	uint32_t len = sizeof(mi);
	int rc = bpf_obj_get_info_by_fd(fd, &mi, &len);
	if (rc < 0)
		return rc;
	out->id = mi.id;
	out->name.assign(mi.name, strnlen(mi.name, sizeof(mi.name)));
	out->key_size = mi.key_size;
	out->value_size = mi.value_size;
	out->per_cpu = IsPerCpu(mi.type);
	out->value_bytes = mi.value_size;
	if (out->per_cpu) {
		int cpus = libbpf_num_possible_cpus();
		if (cpus < 0)
			return cpus;
		out->value_bytes = ((mi.value_size + 7) / 8 * 8) * static_cast<uint32_t>(cpus);
	}
	return 0;
}

class Fd : public Napi::ObjectWrap<Fd> {
public:
	static Napi::Function Define(Napi::Env env)
	{
		return DefineClass(env, "Fd",
				   {
					   InstanceAccessor<&Fd::GetFd>("fd"),
					   InstanceMethod<&Fd::Close>("close"),
				   });
	}

	explicit Fd(const Napi::CallbackInfo &info)
	    : Napi::ObjectWrap<Fd>(info), fd_(ArgInt(info, 0))
	{
	}

	~Fd() override
	{
		// The finalizer: an fd the program forgot to close must not outlive its owner.
		if (fd_ >= 0)
			close(fd_);
	}

	int Map(MapShape *out)
	{
		if (fd_ < 0)
			return -EBADF;
		if (!shape_) {
			auto shape = std::make_unique<MapShape>();
			int rc = ReadShape(fd_, shape.get());
			if (rc < 0)
				return rc;
			shape_ = std::move(shape);
		}
		*out = *shape_;
		out->fd = fd_;
		return 0;
	}

private:
	Napi::Value GetFd(const Napi::CallbackInfo &info)
	{
		return Napi::Number::New(info.Env(), fd_);
	}

	void Close(const Napi::CallbackInfo &info)
	{
		if (fd_ >= 0)
			close(fd_);
		fd_ = -1;
	}

	int fd_;
	// Read on the first map call; an fd number is never reused for another map by this
	// object, since close() makes it -1 for good.
	std::unique_ptr<MapShape> shape_;
};

} // namespace

Napi::Object NewFd(Napi::Env env, int fd)
{
	return env.GetInstanceData<AddonData>()->fd_ctor.New({ Napi::Number::New(env, fd) });
}

int ArgMap(const Napi::CallbackInfo &info, size_t i, MapShape *out)
{
	Napi::Value v = info[i];
	if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(
				     info.Env().GetInstanceData<AddonData>()->fd_ctor.Value()))
		ThrowArg(info, i, "a map's Fd");
	return Fd::Unwrap(v.As<Napi::Object>())->Map(out);
}

void InitFd(Napi::Env env, AddonData *data)
{
	// Not exported: owners are made only by the addon, for fds it has just opened.
	data->fd_ctor = Napi::Persistent(Fd::Define(env));
}

} // namespace socklb
