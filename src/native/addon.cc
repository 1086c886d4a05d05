// Module entry of the libbpf addon, the capture of libbpf's own messages, errors and async work.
#include "common.h"
#include "sock_diag.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace socklb {
namespace {

// Enough for the tail of a verifier log, which is where the reason for a rejection is.
constexpr size_t kLogLimit = 64 * 1024;

std::mutex log_mutex;
std::string log_text;
// Set by a LogCapture on this thread: where libbpf's messages go instead of log_text.
thread_local std::string *thread_log = nullptr;

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

	if (thread_log) {
		*thread_log += line;
		if (thread_log->size() > kLogLimit)
			thread_log->erase(0, thread_log->size() - kLogLimit);
		return n;
	}
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

// setErrorClass(BpfError): the class the addon's own errors are made of.
void SetErrorClass(const Napi::CallbackInfo &info)
{
	if (!info[0].IsFunction())
		ThrowArg(info, 0, "a class");
	info.Env().GetInstanceData<AddonData>()->error_class =
		Napi::Persistent(info[0].As<Napi::Function>());
}

class PromiseWorker : public Napi::AsyncWorker {
public:
	PromiseWorker(Napi::Env env, std::function<void()> work,
		      std::function<Napi::Value(Napi::Env)> done)
	    : Napi::AsyncWorker(env, "socklb_bpf"), deferred_(Napi::Promise::Deferred::New(env)),
	      work_(std::move(work)), done_(std::move(done))
	{
	}

	Napi::Promise Promise() const
	{
		return deferred_.Promise();
	}

protected:
	void Execute() override
	{
		work_();
	}

	void OnOK() override
	{
		deferred_.Resolve(done_(Env()));
	}

private:
	Napi::Promise::Deferred deferred_;
	std::function<void()> work_;
	std::function<Napi::Value(Napi::Env)> done_;
};

} // namespace

void ThrowBpfError(Napi::Env env, const std::string &operation, int status,
		   const std::string &detail)
{
	Napi::FunctionReference &cls = env.GetInstanceData<AddonData>()->error_class;
	if (cls.IsEmpty()) {
		Napi::Error err = Napi::Error::New(env, operation + "(" + detail +
								") failed: " + strerror(-status));
		err.Set("errno", Napi::Number::New(env, -status));
		throw err;
	}
	Napi::Value err =
		cls.New({ Napi::String::New(env, operation), Napi::Number::New(env, status),
			  Napi::String::New(env, detail) });
	throw Napi::Error(env, err);
}

LogCapture::LogCapture(std::string *into) : previous_(thread_log)
{
	thread_log = into;
}

LogCapture::~LogCapture()
{
	thread_log = previous_;
}

Napi::Promise RunAsync(Napi::Env env, std::function<void()> work,
		       std::function<Napi::Value(Napi::Env)> done)
{
	auto *worker = new PromiseWorker(env, std::move(work), std::move(done));
	Napi::Promise promise = worker->Promise();
	worker->Queue(); // deletes itself once done() has run
	return promise;
}

void InitProg(Napi::Env env, Napi::Object exports); // prog.cc
} // namespace socklb

static Napi::Object Init(Napi::Env env, Napi::Object exports)
{
	using namespace socklb;
	libbpf_set_print(CaptureLibbpfPrint);
	auto *data = new AddonData();
	env.SetInstanceData(data);
	InitFd(env, data);
	InitMap(env, exports);
	InitObject(env, exports);
	InitLink(env, exports);
	InitSockDiag(env, exports);
	InitProg(env, exports);
	exports.Set("takeLog", Napi::Function::New<TakeLog>(env, "takeLog"));
	exports.Set("setErrorClass", Napi::Function::New<SetErrorClass>(env, "setErrorClass"));
	exports.Set("possibleCpus", Napi::Function::New<PossibleCpus>(env, "possibleCpus"));
	return exports;
}

NODE_API_MODULE(socklb_bpf, Init)
