// The readable table dump: golden tests compare against it and the debug endpoint serves it.

import { formatProblem } from '../errors.ts';
import { sameBackends } from './backends.ts';
import { type Backend, type DesiredFrontend, type DesiredTable, endpointKey, type HealthCheck } from './types.ts';

/**
 * One line per frontend, then the health checks, then the problems:
 *
 *     ClusterIP TCP/10.96.0.10:80 default/web:http -> 10.244.0.11:8080 10.244.1.12:8080
 *     NodePort TCP/192.168.0.2:30080 default/web:http affinity=10800s -> 10.244.0.11:8080 10.244.1.12:8080 | from outside -> 10.244.0.11:8080
 *     ClusterIP TCP/10.96.0.11:80 default/idle -> (no backends)
 *
 *     health checks:
 *     default/web port 32000: 1 local endpoint
 *
 *     problems:
 *     SOCKLB_ERR_PORT_RANGE: Service default/bad: spec.ports[0].port: 70000 is outside 1-65535
 *
 * A frontend's line names its kind first; an unnamed service port prints without the `:name`; the
 * backends traffic from outside gets follow `| from outside ->` only when they differ from those of
 * a client on this node. A backend on another node whose Node is known ends with `@` and that
 * node's address (`10.244.1.12:8080@192.168.0.3`), where direct server return sends its packets.
 * Empty sections say `(none)`.
 */
export function formatTable(table: DesiredTable): string {
  const lines = table.frontends.map(formatFrontend);
  lines.push('', 'health checks:');
  const checks = table.healthChecks ?? [];
  if (checks.length === 0) lines.push('(none)');
  else lines.push(...checks.map(formatHealthCheck));
  lines.push('', 'problems:');
  if (table.problems.length === 0) lines.push('(none)');
  else lines.push(...table.problems.map(formatProblem));
  return `${lines.join('\n')}\n`;
}

export function formatFrontend(f: DesiredFrontend): string {
  const port = f.portName ? `:${f.portName}` : '';
  const affinity = f.affinityTimeoutSeconds === undefined ? '' : ` affinity=${f.affinityTimeoutSeconds}s`;
  let line = `${f.kind ?? 'ClusterIP'} ${endpointKey(f.frontend)} ${f.service.namespace}/${f.service.name}${port}${affinity} -> ${formatBackends(f.backends)}`;
  if (f.externalBackends && !sameBackends(f.externalBackends, f.backends)) {
    line += ` | from outside -> ${formatBackends(f.externalBackends)}`;
  }
  return line;
}

export function formatHealthCheck(h: HealthCheck): string {
  const s = h.localEndpoints === 1 ? '' : 's';
  return `${h.service.namespace}/${h.service.name} port ${h.port}: ${h.localEndpoints} local endpoint${s}`;
}

function formatBackends(backends: Backend[]): string {
  return backends.length ? backends.map(formatBackend).join(' ') : '(no backends)';
}

function formatBackend(b: Backend): string {
  const at = b.node === undefined ? '' : `@${b.node}`;
  return b.family === 6 ? `[${b.address}]:${b.port}${at}` : `${b.address}:${b.port}${at}`;
}
