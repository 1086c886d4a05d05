// Map syscalls, one binding per libbpf call, all on fds owned by JS Fd objects.
//
// The kernel reads and writes key_size/value_size bytes whatever a Buffer's length, so every call
// checks each Buffer against the map's sizes first and throws a BpfError (EINVAL) on a mismatch:
// no short Buffer reaches the kernel, and no long one hides a caller's layout bug.
#include "common.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstring>

namespace socklb {
namespace {

std::string Describe(const MapShape &map)
{
	std::string name = map.name.empty() ? "" : map.name + " ";
	return "map " + name + "id " + std::to_string(map.id);
}

// Why a value Buffer holds map.value_bytes, for the error message.
std::string ValueSizeWhy(const MapShape &map)
{
	if (!map.per_cpu)
		return "value_size";
	return "value_size " + std::to_string(map.value_size) +
	       " rounded up to 8, times the possible CPUs";
}

// Throws unless given is expected bytes (or, with at_least, no fewer), naming the call, the map,
// the Buffer and both sizes.
void CheckSize(Napi::Env env, const char *operation, const MapShape &map, const char *what,
	       size_t given, size_t expected, const std::string &why, bool at_least = false)
{
	if (given == expected || (at_least && given > expected))
		return;
	ThrowBpfError(env, operation, -EINVAL,
		      Describe(map) + ": " + what + " is " + std::to_string(given) +
			      " bytes, expected " + (at_least ? "at least " : "") +
			      std::to_string(expected) + " (" + why + ")");
}

void CheckKey(Napi::Env env, const char *operation, const MapShape &map, size_t given,
	      const char *what = "key")
{
	CheckSize(env, operation, map, what, given, map.key_size, "key_size");
}

// A key and a value of one element (lookup, update).
void CheckElement(Napi::Env env, const char *operation, const MapShape &map, size_t key,
		  size_t value)
{
	CheckKey(env, operation, map, key);
	CheckSize(env, operation, map, "value", value, map.value_bytes, ValueSizeWhy(map));
}

// A batch of count elements of size bytes each.
void CheckBatch(Napi::Env env, const char *operation, const MapShape &map, const char *what,
		size_t given, uint32_t count, uint32_t size, const std::string &why)
{
	CheckSize(env, operation, map, what, given, static_cast<size_t>(count) * size,
		  std::to_string(count) + " x " + why);
}

// A batch cursor: the kernel keeps a u32 bucket index in it for hash maps, a key for arrays.
void CheckCursor(Napi::Env env, const char *operation, const MapShape &map, const char *what,
		 size_t given)
{
	size_t need = std::max<size_t>(map.key_size, sizeof(uint32_t));
	CheckSize(env, operation, map, what, given, need, "the larger of key_size and 4", true);
}

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

// mapLookup(map, key, valueOut) -> 0 | -errno
Napi::Value MapLookup(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	MapShape map;
	auto key = ArgBuffer(info, 1), value = ArgBuffer(info, 2);
	if (int rc = ArgMap(info, 0, &map); rc < 0)
		return Status(env, rc);
	CheckElement(env, "bpf_map_lookup_elem", map, key.Length(), value.Length());
	return Status(env, bpf_map_lookup_elem(map.fd, key.Data(), value.Data()));
}

// mapUpdate(map, key, value, flags) -> 0 | -errno
Napi::Value MapUpdate(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	MapShape map;
	auto key = ArgBuffer(info, 1), value = ArgBuffer(info, 2);
	uint32_t flags = ArgUint(info, 3);
	if (int rc = ArgMap(info, 0, &map); rc < 0)
		return Status(env, rc);
	CheckElement(env, "bpf_map_update_elem", map, key.Length(), value.Length());
	return Status(env, bpf_map_update_elem(map.fd, key.Data(), value.Data(), flags));
}

// mapDelete(map, key) -> 0 | -errno
Napi::Value MapDelete(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	MapShape map;
	auto key = ArgBuffer(info, 1);
	if (int rc = ArgMap(info, 0, &map); rc < 0)
		return Status(env, rc);
	CheckKey(env, "bpf_map_delete_elem", map, key.Length());
	return Status(env, bpf_map_delete_elem(map.fd, key.Data()));
}

// mapGetNextKey(map, key | null, nextOut) -> 0 | -errno (-ENOENT after the last key)
Napi::Value MapGetNextKey(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	MapShape map;
	auto key = ArgOptBuffer(info, 1), next = ArgBuffer(info, 2);
	if (int rc = ArgMap(info, 0, &map); rc < 0)
		return Status(env, rc);
	const char *op = "bpf_map_get_next_key";
	if (!key.IsEmpty())
		CheckKey(env, op, map, key.Length());
	CheckKey(env, op, map, next.Length(), "next key");
	return Status(env, bpf_map_get_next_key(map.fd, key.IsEmpty() ? nullptr : key.Data(),
						next.Data()));
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

// mapLookupBatch(map, inBatch | null, outBatch, keysOut, valuesOut, count) -> [status, count]
Napi::Value MapLookupBatch(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	MapShape map;
	auto in_batch = ArgOptBuffer(info, 1), out_batch = ArgBuffer(info, 2);
	auto keys = ArgBuffer(info, 3), values = ArgBuffer(info, 4);
	uint32_t count = ArgUint(info, 5);
	if (int rc = ArgMap(info, 0, &map); rc < 0)
		return BatchResult(env, rc, 0);
	const char *op = "bpf_map_lookup_batch";
	if (!in_batch.IsEmpty())
		CheckCursor(env, op, map, "in_batch", in_batch.Length());
	CheckCursor(env, op, map, "out_batch", out_batch.Length());
	CheckBatch(env, op, map, "keys", keys.Length(), count, map.key_size, "key_size");
	CheckBatch(env, op, map, "values", values.Length(), count, map.value_bytes,
		   ValueSizeWhy(map));
	bpf_map_batch_opts opts = BatchOpts(0);
	int rc = bpf_map_lookup_batch(map.fd, in_batch.IsEmpty() ? nullptr : in_batch.Data(),
				      out_batch.Data(), keys.Data(), values.Data(), &count, &opts);
	return BatchResult(env, rc, count);
}

// mapUpdateBatch(map, keys, values, count, elemFlags) -> [status, count]
Napi::Value MapUpdateBatch(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	MapShape map;
	auto keys = ArgBuffer(info, 1), values = ArgBuffer(info, 2);
	uint32_t count = ArgUint(info, 3);
	bpf_map_batch_opts opts = BatchOpts(ArgUint(info, 4));
	if (int rc = ArgMap(info, 0, &map); rc < 0)
		return BatchResult(env, rc, 0);
	const char *op = "bpf_map_update_batch";
	CheckBatch(env, op, map, "keys", keys.Length(), count, map.key_size, "key_size");
	CheckBatch(env, op, map, "values", values.Length(), count, map.value_bytes,
		   ValueSizeWhy(map));
	int rc = bpf_map_update_batch(map.fd, keys.Data(), values.Data(), &count, &opts);
	return BatchResult(env, rc, count);
}

// mapDeleteBatch(map, keys, count) -> [status, count]
Napi::Value MapDeleteBatch(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	MapShape map;
	auto keys = ArgBuffer(info, 1);
	uint32_t count = ArgUint(info, 2);
	if (int rc = ArgMap(info, 0, &map); rc < 0)
		return BatchResult(env, rc, 0);
	CheckBatch(env, "bpf_map_delete_batch", map, "keys", keys.Length(), count, map.key_size,
		   "key_size");
	bpf_map_batch_opts opts = BatchOpts(0);
	int rc = bpf_map_delete_batch(map.fd, keys.Data(), &count, &opts);
	return BatchResult(env, rc, count);
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
