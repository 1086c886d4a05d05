// `socklb agent`: the agent with its sources (manifest file or API server), the kube-proxy
// compatible health server, the debug endpoint and metrics, running until SIGINT/SIGTERM.

import type { Logger } from 'pino';
import { Agent } from '../agent/agent.ts';
import { checkAgentCapabilities } from '../agent/capabilities.ts';
import type { DatapathOptions } from '../agent/datapath.ts';
import { checkDebugListen, startDebugServer } from '../debug/server.ts';
import { agentSource } from '../debug/source.ts';
import { HealthServer } from '../health/health-server.ts';
import { SocklbMetrics } from '../metrics/metrics.ts';
import type { ParsedCidr } from '../model/ip.ts';
import type { SchedulerDefaults } from '../reconcile/plan.ts';
import type { Backoff } from '../sources/k8s-informer.ts';
import type { KubernetesSource } from '../sources/kubernetes.ts';
import { ManifestSource } from '../sources/manifest.ts';

export interface AgentRunOptions extends DatapathOptions {
  nodeName: string;
  minSyncPeriodMs: number;
  /** A manifest file; without it the agent watches the API server. */
  manifests?: string;
  /** A kubeconfig; without it (and without manifests) the in-cluster config. */
  kubeconfig?: string;
  healthAddress: string;
  /** How long a queued change may wait before /healthz turns 503. */
  healthTimeoutMs: number;
  debug: { address: string; allowRemote: boolean; tokenFile?: string };
  /** Export socklb_backend_connects_total, one series per backend (--metrics-per-backend). */
  metricsPerBackend?: boolean;
  /** The scheduler of Services that name none (--scheduler, --maglev-table-size); absent: random. */
  schedulerDefaults?: SchedulerDefaults;
  log: Logger;
  /** kube-proxy's --nodeport-addresses. */
  nodePortCidrs: ParsedCidr[];
  /** The node's addresses before a Node object says otherwise (manifest mode: the devices'). */
  nodeAddresses: string[];
}

interface Source {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** Health follows every sync: the proxy is up to date, and the health-check listeners match the table. */
export function wireHealth(agent: Agent, health: HealthServer, log: Logger): void {
  agent.onSync(() => {
    health.updated();
    void health.syncHealthChecks(agent.healthChecks()).then((problems) => {
      for (const p of problems) log.error(p, 'health check listener');
    });
  });
}

export interface KubernetesWiring {
  nodeName: string;
  kubeconfig?: string;
  log: Logger;
  backoff?: Partial<Backoff>;
  onError?: (err: Error) => void;
  /** Called before each snapshot or batch of events is handed to the agent. */
  onHandOver?: () => void;
  /** Watch every Node (DSR needs each backend's node address), not only this one. */
  allNodes?: boolean;
}

/**
 * A KubernetesSource feeding the agent and the health server. Imported here, not at start-up:
 * @kubernetes/client-node takes about a second to load, which an agent reading a manifest never needs.
 */
export async function kubernetesSourceFor(agent: Agent, health: HealthServer, o: KubernetesWiring): Promise<KubernetesSource> {
  const { KubernetesSource } = await import('../sources/kubernetes.ts');
  return new KubernetesSource({
    nodeName: o.nodeName,
    ...(o.kubeconfig ? { kubeconfigPath: o.kubeconfig } : {}),
    ...(o.backoff ? { backoff: o.backoff } : {}),
    ...(o.allNodes ? { allNodes: true } : {}),
    onChange: (snapshot) => {
      o.onHandOver?.();
      health.queuedUpdate();
      health.syncNode(snapshot.node);
      agent.update(snapshot);
    },
    onEvents: (events) => {
      o.onHandOver?.();
      health.queuedUpdate();
      agent.change(events);
    },
    onSynced: () => o.log.info('kubernetes caches synced'),
    onError: o.onError ?? ((err) => o.log.warn(err.message)),
  });
}

export async function runAgent(o: AgentRunOptions, stopped: Promise<void>): Promise<void> {
  const { log } = o;
  // Options are checked before anything touches the kernel.
  checkDebugListen(o.debug);
  checkAgentCapabilities();
  const health = new HealthServer({ address: o.healthAddress, healthTimeoutMs: o.healthTimeoutMs, log });
  // Listening first lets /livez answer while the programs load and the first sync runs.
  await health.listen();
  const closers: (() => Promise<void> | void)[] = [() => health.close()];
  try {
    const agent = await Agent.create({ ...o, node: { name: o.nodeName, addresses: o.nodeAddresses }, log });
    for (const a of agent.datapath.xdpAttachments) {
      if (a.fallback) log.warn({ device: a.device }, `XDP runs in generic mode on ${a.device}: native was refused (${a.fallback})`);
    }
    closers.unshift(() => agent.close());
    wireHealth(agent, health, log);

    const debugSource = agentSource(agent, {
      config: {
        node: o.nodeName,
        minSyncPeriodMs: o.minSyncPeriodMs,
        manifests: o.manifests,
        debugAddress: o.debug.address,
        metricsPerBackend: o.metricsPerBackend ?? false,
      },
    });
    const metrics = new SocklbMetrics(debugSource, { perBackend: o.metricsPerBackend ?? false });
    agent.observer = metrics;
    const debug = await startDebugServer(debugSource, { ...o.debug, metrics, log });
    closers.unshift(() => debug.server.close());
    log.info({ url: debug.url }, 'debug endpoint listening');

    const source: Source = o.manifests
      ? new ManifestSource(o.manifests, {
          nodeName: o.nodeName,
          onChange: (snapshot) => {
            health.queuedUpdate();
            // Without a Node document of its own, the node is known by its devices' addresses.
            agent.update({ ...snapshot, node: snapshot.node ?? { name: o.nodeName, addresses: o.nodeAddresses } });
          },
          onError: (err) => log.error(err.message),
        })
      : await kubernetesSourceFor(agent, health, {
          nodeName: o.nodeName,
          ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}),
          allNodes: o.xdp?.nodePortMode === 'dsr',
          log,
        });
    closers.unshift(() => source.stop());
    await Promise.race([source.start(), stopped]);
    await Promise.race([agent.whenSynced(), stopped]);
    log.info({ ...agent.status(), objectProblems: undefined, programProblems: undefined }, 'in sync');
    await stopped;
  } finally {
    for (const close of closers) await close();
    log.info('stopped; the pinned datapath keeps balancing (socklb cleanup removes it)');
  }
}
