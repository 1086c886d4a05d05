// Module entry of the libbpf addon, and the capture of libbpf's own messages.
#include "common.h"
#include "sock_diag.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace socklb {
namespace {

// Enough for the tail of a verifier log, which is where the reason for a rejection is.
constexpr size_t kLogLimit = 64 * 1024;

std::mutex log_mutex;
std::string log_text;

// libbpf writes to stderr by default; an agent must not spam it, and a failed load must be able
// to report the verifier's explanation in its error. So collect everything but debug chatter.
int CaptureLibbpfPrint(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	va_list measure;
	va_copy(measure, args);
	int n = vsnprintf(nullptr, 0, fmt, measure);
	va_end(measure);
	if (n <= 0)
		return 0;
	std::string line(static_cast<size_t>(n), '\0');
	vsnprintf(line.data(), line.size() + 1, fmt, args);

	std::lock_guard<std::mutex> lock(log_mutex);
	log_text += line;
	if (log_text.size() > kLogLimit)
		log_text.erase(0, log_text.size() - kLogLimit);
	return n;
}

// takeLog(): what libbpf printed since the last call.
Napi::Value TakeLog(const Napi::CallbackInfo &info)
{
	std::string text;
	{
		std::lock_guard<std::mutex> lock(log_mutex);
		text.swap(log_text);
	}
	return Napi::String::New(info.Env(), text);
}

Napi::Value PossibleCpus(const Napi::CallbackInfo &info)
{
	return Status(info.Env(), libbpf_num_possible_cpus());
}

} // namespace
void InitProg(Napi::Env env, Napi::Object exports); // prog.cc
} // namespace socklb

static Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	using namespace socklb;
	libbpf_set_print(CaptureLibbpfPrint);
	InitFd(env);
	InitMap(env, exports);
	InitObject(env, exports);
	InitLink(env, exports);
	InitSockDiag(env, exports);
	InitProg(env, exports);
	exports.Set("takeLog", Napi::Function::New<TakeLog>(env, "takeLog"));
	exports.Set("possibleCpus", Napi::Function::New<PossibleCpus>(env, "possibleCpus"));
	return exports;
}

NODE_API_MODULE(socklb_bpf, Init)
