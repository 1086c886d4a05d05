// `node bench/xdp-packet.ts [--repeat N] [--rounds N]`: the XDP program's cost per packet, timed
// by BPF_PROG_TEST_RUN (the kernel's own average over `repeat` runs), for a balanced IPv4 TCP
// packet (a new flow every run, picked at random and by lc, and an established flow) next to a program that only returns
// XDP_PASS, in one run, in a namespace it makes and removes. The timed programs
// (test/fixtures/xdp_bench.bpf.c) put the client's frame back before each run; that copy is timed
// alone too, and subtracted.

import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Schedulers } from '../src/datapath/abi.ts';
import { PROTO, packet, TCP_FLAGS } from '../test/support/packets.ts';
import { MAC, XDP, XdpFixture } from '../test/support/xdp-fixture.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
const BENCH_OBJECT = resolve(HERE, '../bpf/out/xdp_bench.bpf.o');

/** Backends of the timed service: each gives the SNAT port range again, so new flows never run out. */
const BACKENDS = 64;
const FLOW_ENTRIES = 1 << 20;

export interface XdpPacketPoint {
  /** 'pass': a program returning XDP_PASS; 'copy': the frame restore alone; the others: restore + xdp_lb. */
  program: 'pass' | 'copy' | 'established' | 'new_flow' | 'new_flow_lc';
  /** Per round: the kernel's average ns per run. */
  rounds: number[];
  /** Median over the rounds. */
  ns: number;
  /** ns less the copy's median (for the balanced programs): the program's own cost. */
  netNs: number | null;
  verdict: string;
}

export interface XdpPacketResult {
  repeat: number;
  newFlowRepeat: number;
  rounds: number;
  points: XdpPacketPoint[];
  /** Counters of xdp_lb over the whole run, to show every run took the path it was meant to. */
  counters: Record<string, string>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function measureXdpPacket(o: { repeat: number; rounds: number }): XdpPacketResult {
  if (!existsSync(BENCH_OBJECT)) throw new Error(`${BENCH_OBJECT} is missing: run make -C bpf`);
  // New flows fill the tables: keep their total under the tables' size so no run pays for eviction.
  // Two new-flow programs share the tables.
  const newFlowRepeat = Math.min(o.repeat, Math.floor(FLOW_ENTRIES / 4 / o.rounds));
  const sizes = {
    lb4_ct_v1: FLOW_ENTRIES,
    lb4_rnat_v1: FLOW_ENTRIES,
    lb4_backends_v2: BACKENDS + 1,
    lb_slots_v1: 2 * BACKENDS + 1,
    lb_be_flows_v1: BACKENDS + 1,
  };
  const fx = XdpFixture.create({ object: BENCH_OBJECT, sizes });
  try {
    fx.config({ snat4: '10.1.0.1', portMin: 10000, portMax: 60000 });
    const ids = Array.from({ length: BACKENDS }, (_, i) => i + 1);
    for (const id of ids) fx.backend({ id, address: `10.244.1.${id}`, port: 8080, proto: PROTO.TCP, node: '10.1.0.2' });
    fx.frontend({ serviceId: 1, address: '192.0.2.1', port: 30080, proto: PROTO.TCP, backends: ids });
    // The same backends under lc: the pick reads two backends' open flows, the flow counts on one.
    fx.frontend({ serviceId: 2, address: '192.0.2.1', port: 30081, proto: PROTO.TCP, scheduler: Schedulers.lc, backends: ids });
    // A new flow starts with a SYN; an established one carries ACKs (a SYN on it would be a
    // retransmission, or a new connection on a closed tuple, which the program checks for).
    const frameOf = (flags: number, dport = 30080): Buffer =>
      packet({ src: MAC.client, dst: MAC.ext0 }, { v: 4, src: '198.51.100.10', dst: '192.0.2.1' }, { tcp: { sport: 40001, dport, flags } });
    const syn = frameOf(TCP_FLAGS.SYN);
    const ack = frameOf(TCP_FLAGS.ACK);
    const frames = { pass: ack, copy: ack, established: ack, new_flow: syn, new_flow_lc: frameOf(TCP_FLAGS.SYN, 30081) };
    // The established flow's first packet, so that it exists from the first timed run on.
    fx.map('bench_frame_v1').update(Buffer.alloc(4), Buffer.concat([syn, Buffer.alloc(2)]));
    fx.run(Buffer.from(syn), 'ext0', 1, 'bench_established');

    const programs = [
      ['pass', 'bench_pass', o.repeat],
      ['copy', 'bench_copy_pass', o.repeat],
      ['established', 'bench_established', o.repeat],
      ['new_flow', 'bench_new_flow', newFlowRepeat],
      ['new_flow_lc', 'bench_new_flow', newFlowRepeat],
    ] as const;
    const rounds = new Map<string, number[]>(programs.map(([name]) => [name, []]));
    const verdicts = new Map<string, string>();
    // Interleaved rounds: a noisy moment of the machine spreads over every program alike.
    for (let round = 0; round < o.rounds; round++) {
      for (const [name, program, repeat] of programs) {
        const frame = frames[name];
        fx.map('bench_frame_v1').update(Buffer.alloc(4), Buffer.concat([frame, Buffer.alloc(2)]));
        const r = fx.run(Buffer.from(frame), 'ext0', repeat, program);
        rounds.get(name)!.push(r.durationNs);
        verdicts.set(name, Object.entries(XDP).find(([, v]) => v === r.retval)?.[0] ?? String(r.retval));
      }
    }
    const copy = median(rounds.get('copy')!);
    const points = programs.map(([name]): XdpPacketPoint => {
      const ns = median(rounds.get(name)!);
      const balanced = name !== 'pass' && name !== 'copy';
      return { program: name, rounds: rounds.get(name)!, ns, netNs: balanced ? ns - copy : null, verdict: verdicts.get(name)! };
    });
    const counters = Object.fromEntries(
      Object.entries(fx.stats())
        .filter(([, v]) => v > 0n)
        .map(([k, v]) => [k, String(v)]),
    );
    return { repeat: o.repeat, newFlowRepeat, rounds: o.rounds, points, counters };
  } finally {
    fx.close();
  }
}

/** The result as a Markdown table, for the bench report. */
export function renderXdpPacket(r: XdpPacketResult): string {
  const label = {
    pass: 'XDP_PASS only (floor)',
    copy: 'frame restore + XDP_PASS',
    established: 'xdp_lb, established flow (SNAT, redirect)',
    new_flow: 'xdp_lb, new flow every run (pick, SNAT port, 2 LRU inserts, redirect)',
    new_flow_lc: 'the same under lc (two backends compared, the flow counted)',
  };
  const lines = [
    `**XDP cost per packet** (IPv4 TCP to a NodePort with ${BACKENDS} remote backends; BPF_PROG_TEST_RUN, median of ${r.rounds} rounds of ${r.repeat} runs, ${r.newFlowRepeat} for new flows)`,
    '',
    '| program | ns/packet | less the restore | verdict |',
    '| --- | ---: | ---: | --- |',
    ...r.points.map((p) => `| ${label[p.program]} | ${p.ns} | ${p.netNs ?? '–'} | ${p.verdict} |`),
    '',
    `Counters: ${Object.entries(r.counters)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}.`,
  ];
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const flag = (name: string, fallback: number): number => {
    const i = argv.indexOf(name);
    const n = i >= 0 ? Number(argv[i + 1]) : fallback;
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} must be a positive integer`);
    return n;
  };
  const r = measureXdpPacket({ repeat: flag('--repeat', 1_000_000), rounds: flag('--rounds', 5) });
  process.stdout.write(renderXdpPacket(r));
  if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
