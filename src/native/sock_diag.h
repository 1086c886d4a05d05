// The sock_diag part of the addon: SOCK_DESTROY for UDP sockets connected to given peers.
#pragma once

#include "common.h"

namespace socklb {

// Exports destroyUdpSockets() and destroyUdpSocketsAsync().
void InitSockDiag(Napi::Env env, Napi::Object exports);

} // namespace socklb
