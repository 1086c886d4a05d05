// A debug source over MemoryMaps with one dual-port service, a second service, counters that the
// tests set, and one rejected object: what the endpoint, /metrics and the CLI tests read.

import { type Capacity, MemoryMaps, type ServiceCounters } from '../../../src/datapath/maps.ts';
import { type MemorySource, memorySource } from '../../../src/debug/memory-source.ts';
import { ErrorCodes } from '../../../src/errors.ts';
import type { Backend, DesiredFrontend, DesiredTable, Frontend } from '../../../src/model/types.ts';

export const CAPACITY: Capacity = { services: 64, slots: 4096, backends: 1024, serviceIds: 129, backendIds: 2049 };

/** MemoryMaps whose connect counters a test can set (MemoryMaps itself only zeroes them). */
export class CountingMaps extends MemoryMaps {
  readonly services = new Map<number, ServiceCounters>();
  readonly backendCounts = new Map<number, bigint>();
  override serviceCounters(id: number): ServiceCounters {
    return this.services.get(id) ?? { connects: 0n, refused: 0n };
  }
  override backendConnects(id: number): bigint {
    return this.backendCounts.get(id) ?? 0n;
  }
}

export const WEB_V4: Frontend = { family: 4, address: '10.96.0.10', port: 80, protocol: 'TCP' };
export const WEB_V6: Frontend = { family: 6, address: 'fd00:10:96::10', port: 80, protocol: 'TCP' };
export const DNS: Frontend = { family: 4, address: '10.96.0.53', port: 53, protocol: 'UDP' };

export function pod(n: number, port = 8080, family: 4 | 6 = 4, protocol: 'TCP' | 'UDP' = 'TCP'): Backend {
  return { family, address: family === 4 ? `10.244.${n >> 8}.${n & 255}` : `fd00:10:244::${n.toString(16)}`, port, protocol };
}

export function table(extraBackends = 0): DesiredTable {
  const frontends: DesiredFrontend[] = [
    { frontend: DNS, service: { namespace: 'kube-system', name: 'dns' }, portName: 'dns', backends: [pod(21, 53, 4, 'UDP')] },
    {
      frontend: WEB_V4,
      service: { namespace: 'demo', name: 'web' },
      portName: 'http',
      backends: [pod(11), pod(12), pod(13), ...Array.from({ length: extraBackends }, (_, i) => pod(300 + i))],
    },
    { frontend: WEB_V6, service: { namespace: 'demo', name: 'web' }, portName: 'http', backends: [pod(11, 8080, 6), pod(12, 8080, 6)] },
  ];
  return {
    frontends,
    problems: [
      {
        kind: 'Service',
        namespace: 'demo',
        name: 'broken',
        field: 'spec.ports[0].port',
        code: ErrorCodes.PORT_RANGE,
        message: 'port 0 is outside 1-65535',
      },
    ],
  };
}

export interface Fixture {
  maps: CountingMaps;
  source: MemorySource;
}

/** A synced source; web's IPv4 backends have 5, 3 and 2 connects, its frontend 10. */
export function fixture(extraBackends = 0): Fixture {
  const maps = new CountingMaps(CAPACITY);
  const source = memorySource(maps, { node: 'node-a' });
  source.sync(table(extraBackends));
  const dump = maps.dump();
  const web = dump.services.find((s) => s.frontend.address === WEB_V4.address)!;
  maps.services.set(web.entry.serviceId, { connects: 10n, refused: 1n });
  const idOf = (address: string) => dump.backends.find((b) => b.backend.address === address && b.backend.family === 4)!.id;
  maps.backendCounts.set(idOf('10.244.0.11'), 5n);
  maps.backendCounts.set(idOf('10.244.0.12'), 3n);
  maps.backendCounts.set(idOf('10.244.0.13'), 2n);
  source.setSockStats({ balanced: 10n, not_service: 42n, no_backend: 1n });
  return { maps, source };
}
