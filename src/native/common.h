// Shared helpers of the libbpf addon: argument checks and the status convention.
//
// Convention: every binding returns a negative errno on failure (the TS wrapper turns it into a
// BpfError) and throws only when JS passed the wrong argument types, which is a programming error.
#pragma once

#include <napi.h>

#include <cerrno>
#include <string>

namespace socklb {

void InitFd(Napi::Env env);
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

// A Buffer, or nullptr for null/undefined (libbpf's "start from the beginning").
inline void *ArgOptBuffer(const Napi::CallbackInfo &info, size_t i)
{
	if (info[i].IsNull() || info[i].IsUndefined())
		return nullptr;
	return ArgBuffer(info, i).Data();
}

} // namespace socklb
