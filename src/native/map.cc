// Map syscalls, one binding per libbpf call, all on raw fds owned by JS Fd objects.
//
// Buffer sizes are the caller's contract (the TS wrapper checks them against the map's info):
// the kernel reads and writes key_size/value_size bytes whatever the Buffer's length.
#include "common.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>

namespace socklb {
namespace {

// The map type whose libbpf name ("hash", "lru_hash", ...) is name, or -1.
int MapTypeByName(const std::string &name)
{
	for (int t = 0;; t++) {
		const char *s = libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(t));
		if (!s)
			return -1;
		if (name == s)
			return t;
	}
}

// mapCreate(type, name, keySize, valueSize, maxEntries, mapFlags) -> Fd | -errno
Napi::Value MapCreate(const Napi::CallbackInfo &info)
{
	int type = MapTypeByName(ArgString(info, 0));
	std::string name = ArgString(info, 1);
	uint32_t key_size = ArgUint(info, 2), value_size = ArgUint(info, 3);
	uint32_t max_entries = ArgUint(info, 4);
	bpf_map_create_opts opts{};
	opts.sz = sizeof(opts);
	opts.map_flags = ArgUint(info, 5);
	if (type < 0)
		return Status(info.Env(), -EINVAL);
	int fd = bpf_map_create(static_cast<enum bpf_map_type>(type),
				name.empty() ? nullptr : name.c_str(), key_size, value_size,
				max_entries, &opts);
	return FdOrStatus(info.Env(), fd);
}

// mapLookup(fd, key, valueOut) -> 0 | -errno
Napi::Value MapLookup(const Napi::CallbackInfo &info)
{
	int fd = ArgInt(info, 0);
	auto key = ArgBuffer(info, 1), value = ArgBuffer(info, 2);
	return Status(info.Env(), bpf_map_lookup_elem(fd, key.Data(), value.Data()));
}

// mapUpdate(fd, key, value, flags) -> 0 | -errno
Napi::Value MapUpdate(const Napi::CallbackInfo &info)
{
	int fd = ArgInt(info, 0);
	auto key = ArgBuffer(info, 1), value = ArgBuffer(info, 2);
	return Status(info.Env(),
		      bpf_map_update_elem(fd, key.Data(), value.Data(), ArgUint(info, 3)));
}

// mapDelete(fd, key) -> 0 | -errno
Napi::Value MapDelete(const Napi::CallbackInfo &info)
{
	int fd = ArgInt(info, 0);
	return Status(info.Env(), bpf_map_delete_elem(fd, ArgBuffer(info, 1).Data()));
}

// mapGetNextKey(fd, key | null, nextOut) -> 0 | -errno (-ENOENT after the last key)
Napi::Value MapGetNextKey(const Napi::CallbackInfo &info)
{
	int fd = ArgInt(info, 0);
	void *key = ArgOptBuffer(info, 1);
	return Status(info.Env(), bpf_map_get_next_key(fd, key, ArgBuffer(info, 2).Data()));
}

// The batch calls report how many elements they did even when they fail part way.
Napi::Value BatchResult(Napi::Env env, int rc, uint32_t count)
{
	Napi::Array result = Napi::Array::New(env, 2);
	result.Set(0u, Status(env, rc));
	result.Set(1u, Napi::Number::New(env, count));
	return result;
}

bpf_map_batch_opts BatchOpts(uint64_t elem_flags)
{
	bpf_map_batch_opts opts{};
	opts.sz = sizeof(opts);
	opts.elem_flags = elem_flags;
	return opts;
}

// mapLookupBatch(fd, inBatch | null, outBatch, keysOut, valuesOut, count) -> [status, count]
Napi::Value MapLookupBatch(const Napi::CallbackInfo &info)
{
	int fd = ArgInt(info, 0);
	void *in_batch = ArgOptBuffer(info, 1);
	auto out_batch = ArgBuffer(info, 2), keys = ArgBuffer(info, 3), values = ArgBuffer(info, 4);
	uint32_t count = ArgUint(info, 5);
	bpf_map_batch_opts opts = BatchOpts(0);
	int rc = bpf_map_lookup_batch(fd, in_batch, out_batch.Data(), keys.Data(), values.Data(),
				      &count, &opts);
	return BatchResult(info.Env(), rc, count);
}

// mapUpdateBatch(fd, keys, values, count, elemFlags) -> [status, count]
Napi::Value MapUpdateBatch(const Napi::CallbackInfo &info)
{
	int fd = ArgInt(info, 0);
	auto keys = ArgBuffer(info, 1), values = ArgBuffer(info, 2);
	uint32_t count = ArgUint(info, 3);
	bpf_map_batch_opts opts = BatchOpts(ArgUint(info, 4));
	int rc = bpf_map_update_batch(fd, keys.Data(), values.Data(), &count, &opts);
	return BatchResult(info.Env(), rc, count);
}

// mapDeleteBatch(fd, keys, count) -> [status, count]
Napi::Value MapDeleteBatch(const Napi::CallbackInfo &info)
{
	int fd = ArgInt(info, 0);
	auto keys = ArgBuffer(info, 1);
	uint32_t count = ArgUint(info, 2);
	bpf_map_batch_opts opts = BatchOpts(0);
	int rc = bpf_map_delete_batch(fd, keys.Data(), &count, &opts);
	return BatchResult(info.Env(), rc, count);
}

// mapInfo(fd) -> { id, type, typeName, name, keySize, valueSize, maxEntries, flags } | -errno
Napi::Value MapInfo(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	bpf_map_info mi{};
	uint32_t len = sizeof(mi);
	int rc = bpf_obj_get_info_by_fd(ArgInt(info, 0), &mi, &len);
	if (rc < 0)
		return Status(env, rc);
	const char *type_name = libbpf_bpf_map_type_str(static_cast<enum bpf_map_type>(mi.type));
	Napi::Object o = Napi::Object::New(env);
	o.Set("id", mi.id);
	o.Set("type", mi.type);
	o.Set("typeName", type_name ? type_name : "unknown");
	o.Set("name", std::string(mi.name, strnlen(mi.name, sizeof(mi.name))));
	o.Set("keySize", mi.key_size);
	o.Set("valueSize", mi.value_size);
	o.Set("maxEntries", mi.max_entries);
	o.Set("flags", mi.map_flags);
	return o;
}

// objPin(fd, path) -> 0 | -errno
Napi::Value ObjPin(const Napi::CallbackInfo &info)
{
	int fd = ArgInt(info, 0);
	return Status(info.Env(), bpf_obj_pin(fd, ArgString(info, 1).c_str()));
}

// objGet(path) -> Fd | -errno
Napi::Value ObjGet(const Napi::CallbackInfo &info)
{
	return FdOrStatus(info.Env(), bpf_obj_get(ArgString(info, 0).c_str()));
}

} // namespace

void InitMap(Napi::Env env, Napi::Object exports)
{
	exports.Set("mapCreate", Napi::Function::New<MapCreate>(env, "mapCreate"));
	exports.Set("mapLookup", Napi::Function::New<MapLookup>(env, "mapLookup"));
	exports.Set("mapUpdate", Napi::Function::New<MapUpdate>(env, "mapUpdate"));
	exports.Set("mapDelete", Napi::Function::New<MapDelete>(env, "mapDelete"));
	exports.Set("mapGetNextKey", Napi::Function::New<MapGetNextKey>(env, "mapGetNextKey"));
	exports.Set("mapLookupBatch", Napi::Function::New<MapLookupBatch>(env, "mapLookupBatch"));
	exports.Set("mapUpdateBatch", Napi::Function::New<MapUpdateBatch>(env, "mapUpdateBatch"));
	exports.Set("mapDeleteBatch", Napi::Function::New<MapDeleteBatch>(env, "mapDeleteBatch"));
	exports.Set("mapInfo", Napi::Function::New<MapInfo>(env, "mapInfo"));
	exports.Set("objPin", Napi::Function::New<ObjPin>(env, "objPin"));
	exports.Set("objGet", Napi::Function::New<ObjGet>(env, "objGet"));
}

} // namespace socklb
