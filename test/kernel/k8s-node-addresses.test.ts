// Backends' node addresses from the API server: an in-process agent watching every Node (as
// `--nodeport-mode dsr` makes it) writes a remote endpoint's node address into its backend entry,
// and rewrites that entry in place, under the same id, when the Node's address changes.

import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BpfMap } from '../../src/bpf/binding.ts';
import { decode, Layouts, MapNames } from '../../src/datapath/abi.ts';
import { fixture, type KubeObject } from '../support/fake-apiserver.ts';
import { K8sLab, OTHER_NODE } from '../support/k8s-lab.ts';
import { service, slice } from '../support/objects.ts';

interface Ctx {
  k: K8sLab;
}

const POD = '10.244.0.11';

function otherNode(internalIp: string): KubeObject {
  const node = fixture('node');
  node.metadata!.name = OTHER_NODE;
  node.status.addresses = [
    { address: OTHER_NODE, type: 'Hostname' },
    { address: internalIp, type: 'InternalIP' },
  ];
  return node;
}

/** The pod's backend entries as the kernel map holds them: id -> node_address. */
function podEntries(k: K8sLab): Map<number, string> {
  const map = BpfMap.fromPin(join(k.bpffs, 'maps', MapNames.lb4Backends));
  try {
    const out = new Map<number, string>();
    for (const key of map.keys()) {
      const b = decode(Layouts.lb4Backend, map.lookup(key)!);
      if (b.address === POD) out.set(Number(decode(Layouts.backendId, key).backend_id), String(b.node_address));
    }
    return out;
  } finally {
    map.close();
  }
}

const nodes = suite<Ctx>('node addresses from the API server');

nodes.before(async (ctx) => {
  ctx.k = await K8sLab.create('nodeaddr', {
    pods: 1,
    allNodes: true,
    seed: [
      otherNode('192.168.99.2') as KubeObject,
      service({ name: 'web', clusterIPs: ['10.96.0.10'], ports: [{ port: 80, targetPort: 8080 }] }) as KubeObject,
      slice({ service: 'web', ports: [{ port: 8080 }], endpoints: [{ address: POD, nodeName: OTHER_NODE }] }) as KubeObject,
    ],
  });
});

nodes.after(async (ctx) => {
  await ctx.k?.close();
});

nodes("a remote endpoint's backend entry carries its Node's InternalIP", async ({ k }) => {
  await k.until('the backend', () => k.programmed('TCP/10.96.0.10:80')?.length === 1);
  assert.equal([...podEntries(k).values()], ['192.168.99.2']);
  const r = await k.probe('10.96.0.10:80', 3);
  assert.is(r.failed, 0, JSON.stringify(r.errors));
});

nodes('a Node address change rewrites the entry in place, under the same id', async ({ k }) => {
  const [id] = [...podEntries(k).keys()];
  await k.settle(k.api.modify(otherNode('192.168.99.22')));
  assert.equal([...podEntries(k).entries()], [[id, '192.168.99.22']]);
  const r = await k.probe('10.96.0.10:80', 3);
  assert.is(r.failed, 0, JSON.stringify(r.errors));
});

nodes.run();
