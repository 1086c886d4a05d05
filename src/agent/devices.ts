// The node's network devices, as the XDP datapath needs them: which devices to attach to and the
// addresses NodePorts listen on. Read with `ip -j addr` in the agent's network namespace (the node's,
// as a DaemonSet with hostNetwork runs it).

import { execFileSync } from 'node:child_process';
import { ErrorCodes, SocklbError } from '../errors.ts';
import { inCidr, type ParsedCidr, parseCidr } from '../model/ip.ts';

export interface Device {
  name: string;
  ifindex: number;
  /** Global-scope addresses, as `ip` prints them. */
  addresses: string[];
  /** A default route (IPv4 or IPv6) leaves through it. */
  defaultRoute: boolean;
}

interface IpLink {
  ifindex: number;
  ifname: string;
  flags?: string[];
  link_type?: string;
  addr_info?: { family?: string; local?: string; scope?: string }[];
}

/**
 * Parses `ip -j addr show` (every device but loopback, with its global addresses) and the devices
 * `ip -j route show default` names, of either family.
 */
export function parseIpAddr(json: string, defaultRoutes: readonly string[] = []): Device[] {
  const links = JSON.parse(json) as IpLink[];
  const viaDefault = new Set(defaultRoutes.flatMap((r) => (JSON.parse(r) as { dev?: string }[]).map((x) => x.dev)));
  return links
    .filter((l) => l.link_type !== 'loopback')
    .map((l) => ({
      name: l.ifname,
      ifindex: l.ifindex,
      addresses: (l.addr_info ?? []).filter((a) => a.scope === 'global' && typeof a.local === 'string').map((a) => a.local!),
      defaultRoute: viaDefault.has(l.ifname),
    }));
}

export function listDevices(): Device[] {
  const ip = (...args: string[]) => execFileSync('ip', ['-j', ...args], { encoding: 'utf8' });
  return parseIpAddr(ip('addr', 'show'), [ip('-4', 'route', 'show', 'default'), ip('-6', 'route', 'show', 'default')]);
}

/**
 * The node's own addresses when no Node object names them (manifest mode): those of the devices a
 * default route leaves through, as kube-proxy takes the primary node IPs; without a default route,
 * every global address.
 */
export function deviceNodeAddresses(devices: readonly Device[]): string[] {
  const routed = devices.filter((d) => d.defaultRoute);
  return (routed.length > 0 ? routed : devices).flatMap((d) => d.addresses);
}

/**
 * The devices XDP attaches to: those named (all must exist), else the devices that hold one of the
 * node's addresses, else every device with a global address.
 */
export function chooseDevices(devices: readonly Device[], named: readonly string[], nodeAddresses: readonly string[]): Device[] {
  if (named.length > 0) {
    return named.map((name) => {
      const d = devices.find((x) => x.name === name);
      if (!d) {
        throw new SocklbError(ErrorCodes.BAD_OPTION, `--devices: no device ${name} here (have ${devices.map((x) => x.name).join(', ')})`);
      }
      return d;
    });
  }
  const holding = devices.filter((d) => d.addresses.some((a) => nodeAddresses.includes(a)));
  return holding.length > 0 ? holding : devices.filter((d) => d.addresses.length > 0);
}

/** --nodeport-addresses CIDR[,CIDR], parsed. */
export function parseNodePortCidrs(texts: readonly string[]): ParsedCidr[] {
  return texts.map((text) => {
    const cidr = parseCidr(text);
    if (!cidr)
      throw new SocklbError(ErrorCodes.BAD_OPTION, `--nodeport-addresses: ${JSON.stringify(text)} is not a CIDR (e.g. 192.168.0.0/16)`);
    return cidr;
  });
}

/** kube-proxy's --nodeport-addresses: the node addresses NodePorts listen on (all, without CIDRs). */
export function nodePortAddresses(addresses: readonly string[], cidrs: readonly ParsedCidr[]): string[] {
  return cidrs.length === 0 ? [...addresses] : addresses.filter((a) => cidrs.some((c) => inCidr(a, c)));
}
