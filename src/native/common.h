// Shared helpers of the libbpf addon: argument checks and the status convention.
//
// Convention: every binding returns a negative errno on failure (the TS wrapper turns it into a
// BpfError) and throws only for a programming error: a TypeError when JS passed the wrong argument
// types, and a BpfError (EINVAL) for a Buffer whose size does not fit the map, since the kernel
// would read or write past it, with a message naming the call, the map and both sizes.
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>

namespace socklb {

// What the addon keeps per Node environment (worker threads each load it anew).
struct AddonData {
	Napi::FunctionReference fd_ctor;
	// The TS BpfError class (setErrorClass), to throw errors the wrapper need not translate.
	Napi::FunctionReference error_class;
};

void InitFd(Napi::Env env, AddonData *data);
void InitMap(Napi::Env env, Napi::Object exports);
void InitObject(Napi::Env env, Napi::Object exports);
void InitLink(Napi::Env env, Napi::Object exports);

// Wraps fd in a JS object that owns it (closes it on close() or when collected).
Napi::Object NewFd(Napi::Env env, int fd);

// The JS result of a call that yields an fd: the owning object, or the negative errno.
inline Napi::Value FdOrStatus(Napi::Env env, int fd)
{
	if (fd < 0)
		return Napi::Number::New(env, fd);
	return NewFd(env, fd);
}

// A map fd with the sizes the kernel reads and writes through a key or value pointer.
struct MapShape {
	int fd;
	uint32_t id;
	std::string name;
	uint32_t key_size;
	uint32_t value_size; // per element (per CPU for per-CPU maps), as bpf_map_info says
	// Bytes behind a value pointer: value_size, or round_up(value_size, 8) * possible CPUs for
	// a per-CPU map, where one lookup or update carries every CPU's copy.
	uint32_t value_bytes;
	bool per_cpu;
};

// The map whose JS Fd object is argument i: 0, -EBADF once closed, -EINVAL if it is not a map.
// The sizes are read from the kernel once per Fd (they never change for a map's life).
int ArgMap(const Napi::CallbackInfo &info, size_t i, MapShape *out);

// Throws new BpfError(operation, status, detail), or a plain Error before setErrorClass.
[[noreturn]] void ThrowBpfError(Napi::Env env, const std::string &operation, int status,
				const std::string &detail);

// Sends what libbpf prints on this thread to *into for the object's lifetime, not to takeLog():
// a load on a worker thread keeps its verifier log apart from the JS thread's calls.
class LogCapture {
public:
	explicit LogCapture(std::string *into);
	~LogCapture();
	LogCapture(const LogCapture &) = delete;
	LogCapture &operator=(const LogCapture &) = delete;

private:
	std::string *previous_;
};

// Runs work on a libuv worker thread, then resolves the returned Promise with done()'s value on
// the JS thread. work must not touch JS; done may, and releases what the call held. Failures
// travel as statuses in the value, as in the sync bindings, so the Promise never rejects.
Napi::Promise RunAsync(Napi::Env env, std::function<void()> work,
		       std::function<Napi::Value(Napi::Env)> done);

// A Promise already resolved with value: an async call that fails before any work starts.
inline Napi::Promise Resolved(Napi::Env env, Napi::Value value)
{
	auto deferred = Napi::Promise::Deferred::New(env);
	deferred.Resolve(value);
	return deferred.Promise();
}

// libbpf 1.x reports failures of pointer-returning calls through errno; never let a stale 0
// through.
inline int NegErrno()
{
	return errno ? -errno : -EINVAL;
}

inline Napi::Number Status(Napi::Env env, int rc)
{
	return Napi::Number::New(env, rc);
}

[[noreturn]] inline void ThrowArg(const Napi::CallbackInfo &info, size_t i, const char *what)
{
	throw Napi::TypeError::New(info.Env(),
				   "argument " + std::to_string(i) + " must be " + what);
}

inline int32_t ArgInt(const Napi::CallbackInfo &info, size_t i)
{
	if (!info[i].IsNumber())
		ThrowArg(info, i, "a number");
	return info[i].As<Napi::Number>().Int32Value();
}

inline uint32_t ArgUint(const Napi::CallbackInfo &info, size_t i)
{
	if (!info[i].IsNumber())
		ThrowArg(info, i, "a number");
	return info[i].As<Napi::Number>().Uint32Value();
}

inline std::string ArgString(const Napi::CallbackInfo &info, size_t i)
{
	if (!info[i].IsString())
		ThrowArg(info, i, "a string");
	return info[i].As<Napi::String>().Utf8Value();
}

inline Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo &info, size_t i)
{
	if (!info[i].IsBuffer())
		ThrowArg(info, i, "a Buffer");
	return info[i].As<Napi::Buffer<uint8_t>>();
}

// A Buffer, or an empty handle (IsEmpty()) for null/undefined: libbpf's "start from the beginning".
inline Napi::Buffer<uint8_t> ArgOptBuffer(const Napi::CallbackInfo &info, size_t i)
{
	if (info[i].IsNull() || info[i].IsUndefined())
		return Napi::Buffer<uint8_t>();
	return ArgBuffer(info, i);
}

} // namespace socklb
