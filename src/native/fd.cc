// The one owner of every fd the addon hands to JS.
#include "common.h"

#include <unistd.h>

namespace socklb {
namespace {

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
};

struct FdClass {
	Napi::FunctionReference ctor;
};

} // namespace

Napi::Object NewFd(Napi::Env env, int fd)
{
	return env.GetInstanceData<FdClass>()->ctor.New({ Napi::Number::New(env, fd) });
}

void InitFd(Napi::Env env)
{
	// Not exported: owners are made only by the addon, for fds it has just opened.
	env.SetInstanceData(new FdClass{ Napi::Persistent(Fd::Define(env)) });
}

} // namespace socklb
