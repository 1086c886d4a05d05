// For --diag: loads socklb's BPF objects the way the agent does and prints the libbpf/verifier
// log of any that fails, so a kernel's refusal can be read without a debugger in the guest.
//   node tools/lab/verifier-log.ts [--refuse-errno N]

import { DESTROY_OBJECT, SOCK_OBJECT } from '../../src/agent/datapath.ts';
import { BpfError, BpfObject } from '../../src/bpf/binding.ts';
import { ABI_VERSION, encode, Layouts } from '../../src/datapath/abi.ts';

const i = process.argv.indexOf('--refuse-errno');
const refuseErrno = i > 0 ? Number(process.argv[i + 1]) : 111;
for (const path of [SOCK_OBJECT, DESTROY_OBJECT]) {
  const obj = BpfObject.open(path);
  try {
    if (path === SOCK_OBJECT)
      obj.setInitialValue('.rodata', encode(Layouts.config, { abi_version: ABI_VERSION, refuse_errno: refuseErrno }));
    obj.load();
    console.log(`${path}: loaded (refuse_errno=${refuseErrno})`);
  } catch (err) {
    console.log(`${path}: ${(err as Error).message}`);
    if (err instanceof BpfError && err.log) console.log(err.log.split('\n').slice(-40).join('\n'));
  } finally {
    obj.close();
  }
}
