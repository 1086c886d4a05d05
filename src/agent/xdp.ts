// The XDP side of the datapath (bpf/xdp.bpf.c): balances NodePort, LoadBalancer and externalIP
// traffic that arrives on the node's devices, and turns back the replies of backends on this node
// on the devices' egress. Loaded over the socket hooks' service maps (the same kernel maps, so one
// reconcile serves both), attached when the agent commits, through links pinned like the hooks'.

import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink, type BpfMap, type BpfObject, type XdpMode } from '../bpf/binding.ts';
import { encode, Layouts, NodeConfigFlags } from '../datapath/abi.ts';
import type { Device } from './devices.ts';

export interface XdpOptions {
  /** The devices traffic from outside arrives on. */
  devices: Device[];
  /** native, falling back to generic (with a warning) where the driver has no XDP support. */
  mode: XdpMode;
  /** The node's addresses SNAT rewrites a client's source to, per family (none: no SNAT). */
  snatAddresses: { v4?: string; v6?: string };
  /** SNAT source ports, inclusive: outside ip_local_port_range and the NodePort range. */
  natPorts: [number, number];
  /**
   * --nodeport-mode: 'dsr' sends a remote backend the client's packet encapsulated to its node,
   * which answers the client directly; 'snat' (absent) rewrites the source to this node.
   */
  nodePortMode?: NodePortMode;
}

export type NodePortMode = 'snat' | 'dsr';

/**
 * The UDP port DSR packets travel to between nodes (struct lb_node_config.dsr_port): every node
 * decapsulates on it whatever its own mode, so nodes can switch to DSR one at a time. Below the
 * NodePort range and ip_local_port_range, so no local socket or NodePort meets it.
 */
export const DSR_PORT = 8455;

/** The NAT port range by default: above Linux's ip_local_port_range (32768-60999) and NodePorts. */
export const DEFAULT_NAT_PORTS: [number, number] = [61000, 65535];

export interface XdpAttachment {
  device: string;
  ifindex: number;
  /** The mode the program runs in; 'generic' after a fallback. */
  mode: XdpMode;
  /** Why native mode was refused, when it was. */
  fallback?: string;
  /** How the egress program is attached: 'tcx' (a pinned link) or 'clsact' (a filter). */
  egress: 'tcx' | 'clsact';
}

/**
 * lb_node_config_v1's value: the node's SNAT addresses (also the ones DSR packets from other nodes
 * arrive at), the NAT port range, the DSR flag and port.
 */
export function nodeConfigValue(o: Pick<XdpOptions, 'snatAddresses' | 'natPorts' | 'nodePortMode'>): Buffer {
  return encode(Layouts.nodeConfig, {
    ...(o.snatAddresses.v4 ? { snat_address4: o.snatAddresses.v4 } : {}),
    ...(o.snatAddresses.v6 ? { snat_address6: o.snatAddresses.v6 } : {}),
    nat_port_min: o.natPorts[0],
    nat_port_max: o.natPorts[1],
    flags: o.nodePortMode === 'dsr' ? NodeConfigFlags.dsr : 0,
    dsr_port: DSR_PORT,
  });
}

/** Writes nodeConfigValue(o) into lb_node_config_v1 (key 0); returns what it wrote. */
export function writeNodeConfig(config: BpfMap, o: Pick<XdpOptions, 'snatAddresses' | 'natPorts' | 'nodePortMode'>): Buffer {
  const value = nodeConfigValue(o);
  config.update(Buffer.alloc(4), value);
  return value;
}

/**
 * Puts the XDP program on each device and the egress program behind it. A link an earlier agent
 * pinned for the device gets the new program swapped in (atomically, as for the socket hooks);
 * otherwise a new link is attached and pinned.
 */
export function attachXdp(obj: BpfObject, bpffs: string, o: XdpOptions): XdpAttachment[] {
  return o.devices.map((device) => {
    allowOwnSource(device.name);
    const attached: XdpAttachment = { device: device.name, ifindex: device.ifindex, mode: o.mode, egress: 'tcx' };
    const xdpPin = join(bpffs, 'links', `xdp_${device.name}`);
    if (!swapInto(xdpPin, obj.programFd('xdp_lb'))) {
      let link: BpfLink;
      try {
        link = obj.attachXdp('xdp_lb', device.ifindex, o.mode);
      } catch (err) {
        if (o.mode !== 'native') throw err;
        // A driver without native XDP: generic mode still balances, at the stack's cost.
        attached.mode = 'generic';
        attached.fallback = (err as Error).message;
        link = obj.attachXdp('xdp_lb', device.ifindex, 'generic');
      }
      pinAndClose(link, xdpPin);
    }
    const tcPin = join(bpffs, 'links', `tc_egress_${device.name}`);
    if (!swapInto(tcPin, obj.programFd('tc_lb_egress'))) {
      const tc = obj.attachTc('tc_lb_egress', device.ifindex, 'egress');
      attached.egress = tc.kind;
      // A clsact filter cannot be pinned: the device holds it, and it stays after the agent exits.
      if (tc.link) pinAndClose(tc.link, tcPin);
    }
    return attached;
  });
}

/**
 * A SNAT packet that XDP hands to the stack (neighbour not resolved yet, a VLAN) carries the node's
 * own address as its source; without accept_local the stack drops it as a martian, and the neighbour
 * it needed is never resolved either.
 */
function allowOwnSource(device: string): void {
  writeFileSync(`/proc/sys/net/ipv4/conf/${device}/accept_local`, '1');
}

function swapInto(pin: string, programFd: number): boolean {
  if (!existsSync(pin)) return false;
  const link = BpfLink.fromPin(pin);
  try {
    link.updateProgram(programFd);
    return true;
  } finally {
    link.close();
  }
}

function pinAndClose(link: BpfLink, pin: string): void {
  try {
    link.pin(pin);
  } finally {
    link.close();
  }
}
