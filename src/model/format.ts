// The readable table dump: golden tests compare against it and the debug endpoint serves it.

import { formatProblem } from '../errors.ts';
import { endpointKey, type Backend, type DesiredFrontend, type DesiredTable } from './types.ts';

/**
 * One line per frontend, then the problems:
 *
 *     TCP/10.96.0.10:80 default/web:http -> 10.244.0.11:8080 10.244.0.12:8080
 *     TCP/10.96.0.11:80 default/idle -> (no backends)
 *
 *     problems:
 *     SOCKLB_ERR_PORT_RANGE: Service default/bad: spec.ports[0].port: 70000 is outside 1-65535
 *
 * An unnamed service port prints without the `:name`; the problems section says `(none)` when empty.
 */
export function formatTable(table: DesiredTable): string {
  const lines = table.frontends.map(formatFrontend);
  lines.push('', 'problems:');
  if (table.problems.length === 0) lines.push('(none)');
  else lines.push(...table.problems.map(formatProblem));
  return lines.join('\n') + '\n';
}

export function formatFrontend(f: DesiredFrontend): string {
  const port = f.portName ? `:${f.portName}` : '';
  const backends = f.backends.length ? f.backends.map(formatBackend).join(' ') : '(no backends)';
  return `${endpointKey(f.frontend)} ${f.service.namespace}/${f.service.name}${port} -> ${backends}`;
}

function formatBackend(b: Backend): string {
  return b.family === 6 ? `[${b.address}]:${b.port}` : `${b.address}:${b.port}`;
}
