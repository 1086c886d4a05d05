// The XDP tests' veth peers: a veth delivers the frames XDP sends into it (XDP_TX, redirects) only
// when its peer runs an XDP program too (PLATFORM.md), so these tests put xdp_pass there.

import { XDP_OBJECT } from '../../src/agent/datapath.ts';
import { type BpfLink, BpfObject } from '../../src/bpf/binding.ts';

/** What the labs offer: a command run in one of their namespaces. */
interface NamespaceExec {
  exec(ns: string, argv: string[]): Promise<{ stdout: string }>;
}

/** A device's ifindex in a lab namespace. */
export async function ifindex(lab: NamespaceExec, ns: string, dev: string): Promise<number> {
  const r = await lab.exec(ns, ['ip', '-j', 'link', 'show', dev]);
  return (JSON.parse(r.stdout) as { ifindex: number }[])[0]!.ifindex;
}

/** Attaches `pass`'s xdp_pass natively on each [namespace, device]; the caller closes the links. */
export async function attachXdpPass(
  lab: NamespaceExec,
  pass: BpfObject,
  devices: readonly (readonly [string, string])[],
): Promise<BpfLink[]> {
  const links: BpfLink[] = [];
  for (const [ns, dev] of devices) links.push(pass.attachXdp('xdp_pass', await ifindex(lab, ns, dev), 'native', `/run/netns/${ns}`));
  return links;
}

/** Loads the XDP object for its xdp_pass and attaches it on each [namespace, device]. */
export async function loadXdpPass(
  lab: NamespaceExec,
  devices: readonly (readonly [string, string])[],
): Promise<{ object: BpfObject; links: BpfLink[] }> {
  const object = BpfObject.open(XDP_OBJECT);
  try {
    object.load();
    return { object, links: await attachXdpPass(lab, object, devices) };
  } catch (err) {
    object.close();
    throw err;
  }
}
