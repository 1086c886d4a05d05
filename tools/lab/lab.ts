// The QEMU kernel matrix: boots Debian cloud kernels under TCG, runs the agent's feature probe and
// the kernel tests (test/kernel) inside each, and prints kernel x test.
//
//   node tools/lab/lab.ts [--kernels 5.10,6.1,6.12,host] [--tests REGEX] [--timeout S] [--refresh]
//
// Everything it fetches or builds lives under lab/cache (git-ignored):
//   apt/<suite>/       a private sources list, lists dir and apt cache (the machine's own stay untouched)
//   kernels/<name>/    the kernel .deb unpacked (boot/vmlinuz-*, lib/modules/*)
//   root/, root.img    the guest's root: a copy of the repo, node and the tools the tests run (ext4)
//   initrd/<name>.cpio busybox, tools/lab/guest/init and the modules that kernel has as modules
//   runs/<name>/       console.log (ttyS0) and results.log (ttyS1) of the last boot
//
// Debian's cloud kernels have no 9p (CONFIG_NET_9P is off), so the host's files reach the guest as
// a throwaway ext4 image on virtio-blk (booted with snapshot=on: the guest may write, the image
// stays as built).

import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CACHE = path.join(REPO, 'lab/cache');
const GUEST_DIR = path.join(REPO, 'tools/lab/guest');

interface KernelSpec {
  /** Column name: the kernel's major.minor. */
  name: string;
  /** [suite, archive] pairs of the private sources list; archive 'security' is the security mirror. */
  suites: [string, 'main' | 'security'][];
  /** The metapackage whose dependency names the current image package. */
  meta: string;
}

export const KERNELS: KernelSpec[] = [
  {
    name: '5.10',
    suites: [
      ['bullseye', 'main'],
      ['bullseye-security', 'security'],
    ],
    meta: 'linux-image-cloud-amd64',
  },
  {
    name: '6.1',
    suites: [
      ['bookworm', 'main'],
      ['bookworm-security', 'security'],
    ],
    meta: 'linux-image-cloud-amd64',
  },
  { name: '6.12', suites: [['bookworm-backports', 'main']], meta: 'linux-image-cloud-amd64' },
];

/**
 * Modules the guest loads when its kernel has them as modules (built-in or absent ones are
 * skipped): the virtio disk, then what the tests' namespaces, links and socket tools use.
 */
const WANTED_MODULES = [
  'virtio_pci',
  'virtio_blk',
  'veth',
  'bridge',
  'tun',
  'sch_ingress',
  'cls_bpf',
  'act_bpf',
  'inet_diag',
  'tcp_diag',
  'udp_diag',
  'raw_diag',
  'overlay',
  'nf_tables',
  'nft_numgen',
  'nft_chain_nat',
  'nf_nat',
  'nft_ct',
  'ip_tables',
  'iptable_nat',
  'iptable_filter',
  'xt_conntrack',
  'xt_MASQUERADE',
  'xt_statistic',
  'xt_comment',
  'xt_mark',
  'xt_nat',
];

/** Debian packages whose files (and their libraries) go into the guest root. */
const GUEST_PACKAGES = [
  'bash',
  'dash',
  'coreutils',
  'util-linux',
  'mount',
  'iproute2',
  'procps',
  'sed',
  'grep',
  'mawk',
  'findutils',
  'kmod',
  'bpftool',
  'ethtool',
  'iptables',
  'nftables',
  'libc-bin',
  'diffutils',
  'gzip',
  'tar',
  'iputils-ping',
  'psmisc',
  'libc6',
  'libgcc-s1',
  'libstdc++6',
  'libelf1',
  'zlib1g',
];

/** Host packages the lab needs: QEMU, the initramfs, the image, module metadata. */
const HOST_PACKAGES = ['qemu-system-x86', 'busybox-static', 'cpio', 'kmod', 'e2fsprogs', 'xz-utils'];

// ---------------------------------------------------------------------------------------------
// Small helpers

function log(msg: string): void {
  process.stderr.write(`lab: ${msg}\n`);
}

function run(cmd: string, args: string[], opts: { cwd?: string; input?: string; quiet?: boolean } = {}): string {
  return execFileSync(cmd, args, {
    cwd: opts.cwd,
    input: opts.input,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['pipe', 'pipe', opts.quiet ? 'pipe' : 'inherit'],
  });
}

function tryRun(cmd: string, args: string[]): string | undefined {
  try {
    return run(cmd, args, { quiet: true });
  } catch {
    return undefined;
  }
}

function installed(pkg: string): boolean {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax, not a template
  return (tryRun('dpkg-query', ['-W', '-f=${Status}', pkg]) ?? '').includes('install ok installed');
}

export function ensureHostPackages(): void {
  const missing = HOST_PACKAGES.filter((p) => !installed(p));
  if (missing.length === 0) return;
  log(`installing ${missing.join(' ')}`);
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

// ---------------------------------------------------------------------------------------------
// Kernels through apt, with a private sources list per suite

/** The Debian mirror and security mirror this machine already uses (deb822 or one-line sources). */
export function machineMirrors(): { main: string; security: string } {
  const env = { main: process.env.SOCKLB_LAB_MIRROR, security: process.env.SOCKLB_LAB_SECURITY_MIRROR };
  const uris: string[] = [];
  const files = ['/etc/apt/sources.list'];
  try {
    for (const f of fs.readdirSync('/etc/apt/sources.list.d')) {
      if (f.endsWith('.sources') || f.endsWith('.list')) files.push(path.join('/etc/apt/sources.list.d', f));
    }
  } catch {
    /* no sources.list.d */
  }
  for (const f of files) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const m of text.matchAll(/^URIs:\s*(.+)$/gm)) uris.push(...m[1]!.trim().split(/\s+/));
    for (const m of text.matchAll(/^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/gm)) uris.push(m[1]!);
  }
  const main = env.main ?? uris.find((u) => /\/debian\/?$/.test(u));
  const security = env.security ?? uris.find((u) => /\/debian-security\/?$/.test(u));
  if (!main) throw new Error('no Debian mirror in /etc/apt sources (set SOCKLB_LAB_MIRROR)');
  return { main: main.replace(/\/$/, ''), security: (security ?? main.replace(/\/debian$/, '/debian-security')).replace(/\/$/, '') };
}

function aptDir(suite: string): string {
  return path.join(CACHE, 'apt', suite);
}

function aptOptions(dir: string): string[] {
  return [
    '-o',
    `Dir::Etc::sourcelist=${path.join(dir, 'sources.list')}`,
    '-o',
    'Dir::Etc::sourceparts=-',
    '-o',
    `Dir::State::Lists=${path.join(dir, 'lists')}`,
    '-o',
    `Dir::Cache=${path.join(dir, 'cache')}`,
    '-o',
    'Dir::State::status=/dev/null',
    '-o',
    'APT::Sandbox::User=root',
  ];
}

const LISTS_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

/** Resolves and unpacks the current cloud kernel of a spec; cached, refreshed weekly or on demand. */
export function fetchKernel(spec: KernelSpec, refresh: boolean): { dir: string; release: string; vmlinuz: string } {
  const dir = path.join(CACHE, 'kernels', spec.name);
  const stamp = path.join(dir, '.package');
  const apt = aptDir(spec.suites[0]![0]);
  const listsStamp = path.join(apt, '.updated');
  const fresh = fs.existsSync(listsStamp) && Date.now() - fs.statSync(listsStamp).mtimeMs < LISTS_MAX_AGE_MS;
  if (fs.existsSync(stamp) && fresh && !refresh) return describeKernel(dir);

  const mirrors = machineMirrors();
  fs.mkdirSync(path.join(apt, 'lists/partial'), { recursive: true });
  fs.mkdirSync(path.join(apt, 'cache/archives/partial'), { recursive: true });
  const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg';
  fs.writeFileSync(
    path.join(apt, 'sources.list'),
    spec.suites.map(([suite, archive]) => `deb [signed-by=${keyring}] ${mirrors[archive]} ${suite} main\n`).join(''),
  );
  const opts = aptOptions(apt);
  try {
    run('apt-get', [...opts, '-qq', 'update'], { quiet: true });
    fs.writeFileSync(listsStamp, new Date().toISOString());
  } catch (err) {
    if (fs.existsSync(stamp)) {
      log(`${spec.name}: apt-get update failed, using the cached kernel (${(err as Error).message.split('\n')[0]})`);
      return describeKernel(dir);
    }
    throw err;
  }
  const depends = run('apt-cache', [...opts, 'depends', spec.meta], { quiet: true });
  const pkg = /Depends:\s*(linux-image-\S+)/.exec(depends)?.[1];
  if (!pkg) throw new Error(`${spec.name}: ${spec.meta} names no image package:\n${depends}`);
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').trim() === pkg) {
    fs.utimesSync(stamp, new Date(), new Date());
    return describeKernel(dir);
  }
  log(`${spec.name}: downloading ${pkg}`);
  const debs = path.join(CACHE, 'debs');
  fs.mkdirSync(debs, { recursive: true });
  run('apt-get', [...opts, '-qq', 'download', pkg], { cwd: debs, quiet: true });
  const deb = fs.readdirSync(debs).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  if (!deb) throw new Error(`${spec.name}: apt-get download ${pkg} left no .deb in ${debs}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  run('dpkg-deb', ['-x', path.join(debs, deb), dir]);
  // The cache keeps one package per kernel.
  for (const f of fs.readdirSync(debs)) {
    if (f !== deb && f.startsWith(pkg.replace(/-\d.*$/, '')) && f.includes(`${spec.name}.`)) fs.rmSync(path.join(debs, f));
  }
  fs.writeFileSync(stamp, `${pkg}\n`);
  return describeKernel(dir);
}

function describeKernel(dir: string): { dir: string; release: string; vmlinuz: string } {
  const release = fs.readdirSync(path.join(dir, 'lib/modules'))[0];
  if (!release) throw new Error(`${dir}: no lib/modules/<release>`);
  return { dir, release, vmlinuz: path.join(dir, 'boot', `vmlinuz-${release}`) };
}

// ---------------------------------------------------------------------------------------------
// The guest: root image (kernel-independent) and initramfs (per kernel)

/** Every file of the installed packages (less docs), as absolute paths. */
function packageFiles(pkgs: string[]): string[] {
  const out: string[] = [];
  for (const p of pkgs) {
    if (!installed(p)) continue;
    for (const f of run('dpkg', ['-L', p], { quiet: true }).split('\n')) {
      if (!f || /^\/usr\/share\/(doc|man|info|locale|lintian|bash-completion)\/|\/gconv\//.test(f)) continue;
      out.push(f);
    }
  }
  return out;
}

/** DT_NEEDED and DT_RUNPATH/DT_RPATH of a 64-bit little-endian ELF file; undefined when it is not one. */
export function elfNeeds(file: string): { needed: string[]; runpath: string[] } | undefined {
  let buf: Buffer;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const head = Buffer.alloc(64);
      if (fs.readSync(fd, head, 0, 64, 0) < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return undefined;
      buf = fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const sec = (i: number) => {
    const o = shoff + i * shentsize;
    return {
      type: buf.readUInt32LE(o + 4),
      offset: Number(buf.readBigUInt64LE(o + 0x18)),
      size: Number(buf.readBigUInt64LE(o + 0x20)),
      link: buf.readUInt32LE(o + 0x28),
    };
  };
  const out = { needed: [] as string[], runpath: [] as string[] };
  for (let i = 0; i < shnum && shoff + (i + 1) * shentsize <= buf.length; i++) {
    const s = sec(i);
    if (s.type !== 6) continue; // SHT_DYNAMIC
    const strtab = sec(s.link);
    const str = (off: number) => buf.toString('latin1', strtab.offset + off, buf.indexOf(0, strtab.offset + off));
    for (let p = s.offset; p + 16 <= s.offset + s.size; p += 16) {
      const tag = Number(buf.readBigInt64LE(p));
      const val = Number(buf.readBigUInt64LE(p + 8));
      if (tag === 0) break;
      if (tag === 1) out.needed.push(str(val));
      else if (tag === 15 || tag === 29) out.runpath.push(...str(val).split(':').filter(Boolean));
    }
  }
  return out;
}

const LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib', '/usr/lib64', '/usr/local/lib'];

/** The shared libraries the given ELF files need, transitively (read from the files, as ld.so would find them). */
function libraryClosure(files: string[]): string[] {
  const libs = new Set<string>();
  const seen = new Set<string>();
  const queue = [...new Set(files)];
  while (queue.length) {
    const f = queue.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    const needs = elfNeeds(f);
    if (!needs) continue;
    const origin = path.dirname(f);
    const dirs = [...needs.runpath.map((d) => d.replace('$ORIGIN', origin)), ...LIB_DIRS];
    for (const n of needs.needed) {
      const hit = dirs.map((d) => path.join(d, n)).find((p) => fs.existsSync(p));
      if (!hit) continue; // e.g. linux-vdso; the guest will say what is missing
      libs.add(hit);
      queue.push(fs.realpathSync(hit));
    }
  }
  return [...libs];
}

/** A path and, when it is a symlink, every link on the way to the file it names. */
function withLinkTargets(p: string, into: Set<string>): void {
  for (let i = 0; i < 16; i++) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return;
    }
    if (!st.isFile() && !st.isSymbolicLink()) return;
    into.add(p);
    if (!st.isSymbolicLink()) return;
    p = path.resolve(path.dirname(p), fs.readlinkSync(p)).replace(/^\/(bin|sbin|lib|lib64)\//, '/usr/$1/');
  }
}

/**
 * Builds lab/cache/root.img: the repo at its own path (with the built addon and BPF objects), the
 * files of GUEST_PACKAGES with their libraries, and the machine's /etc.
 */
export function buildRootImage(): string {
  const stage = path.join(CACHE, 'root');
  const image = path.join(CACHE, 'root.img');
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  for (const d of ['proc', 'sys', 'dev', 'run', 'tmp', 'root', 'var/tmp', 'usr/bin', 'usr/sbin', 'usr/lib', 'usr/lib64']) {
    fs.mkdirSync(path.join(stage, d), { recursive: true });
  }
  fs.chmodSync(path.join(stage, 'tmp'), 0o1777);
  // Debian's merged /usr: the top-level directories are links.
  for (const [link, to] of [
    ['bin', 'usr/bin'],
    ['sbin', 'usr/sbin'],
    ['lib', 'usr/lib'],
    ['lib64', 'usr/lib64'],
  ]) {
    fs.symlinkSync(to!, path.join(stage, link!));
  }

  const files = packageFiles(GUEST_PACKAGES);
  const node = fs.realpathSync(path.join(REPO, 'node_modules/.bin/node'));
  const elfs = files
    .filter((f) => /\/(s?bin|libexec)\/|\.so(\.|$)/.test(f))
    .concat(node, fs.realpathSync(path.join(REPO, 'build/Release/socklb_bpf.node')));
  const all = new Set<string>();
  for (const f of [...files, ...libraryClosure(elfs)]) {
    // Resolve the merged-/usr aliases so the copy lands under usr/ beside the links above.
    withLinkTargets(f.replace(/^\/(bin|sbin|lib|lib64)\//, '/usr/$1/'), all);
  }
  const list = [...all].map((f) => f.slice(1)).join('\n');
  // Plain tar pipes: files, then /etc, then the repo (without the lab cache and .git).
  execFileSync('bash', ['-c', 'tar -C / --no-recursion -cf - -T - | tar -C "$1" -xf -', 'bash', stage], {
    input: list,
    stdio: ['pipe', 'inherit', 'inherit'],
  });
  execFileSync('bash', ['-c', 'tar -C / -cf - etc | tar -C "$1" -xf -', 'bash', stage], { stdio: 'inherit' });
  const rel = REPO.slice(1);
  execFileSync('bash', ['-c', 'tar -C / --exclude="$2/lab" --exclude="$2/.git" -cf - "$2" | tar -C "$1" -xf -', 'bash', stage, rel], {
    stdio: 'inherit',
  });

  const kib = Number(run('du', ['-sk', stage]).split('\t')[0]);
  const sizeMiB = Math.ceil((kib * 1.25) / 1024) + 128;
  fs.rmSync(image, { force: true });
  run(
    'mkfs.ext4',
    ['-q', '-F', '-L', 'socklb-lab', '-O', '^metadata_csum,^orphan_file', '-E', 'root_owner=0:0', '-d', stage, image, `${sizeMiB}M`],
    { quiet: true },
  );
  fs.rmSync(stage, { recursive: true, force: true });
  return image;
}

/** modules.order for a kernel: WANTED_MODULES that are modules there, dependencies first. */
function moduleOrder(kdir: string, release: string): { name: string; file: string }[] {
  const root = path.join(kdir, 'lib/modules', release);
  const byName = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ko(\.xz|\.zst|\.gz)?$/.test(e.name)) byName.set(e.name.replace(/\.ko(\..*)?$/, '').replace(/-/g, '_'), p);
    }
  };
  walk(root);
  const order: { name: string; file: string }[] = [];
  const seen = new Set<string>();
  const visit = (name: string): void => {
    const n = name.replace(/-/g, '_');
    if (seen.has(n)) return;
    seen.add(n);
    const file = byName.get(n);
    if (!file) return; // built in, or not in this kernel
    const deps = run('modinfo', ['-F', 'depends', file], { quiet: true }).trim();
    for (const d of deps.split(',').filter(Boolean)) visit(d);
    order.push({ name: n, file });
  };
  for (const m of WANTED_MODULES) visit(m);
  return order;
}

export interface GuestParams {
  /** Regex of test/kernel file names to run ('' = all). */
  tests: string;
  /** Regex of file names to leave out ('' = none). */
  exclude: string;
  /** A shell command to run in the guest after the probe, its output printed ('' = none). */
  diag: string;
  fileTimeoutS: number;
  /** SOCKLB_TEST_TIME_SCALE in the guest (the host column always runs at 1). */
  timeScale: number;
}

export function buildInitramfs(spec: KernelSpec, kdir: string, release: string, params: GuestParams): string {
  const stage = path.join(CACHE, 'initrd', spec.name);
  const out = path.join(CACHE, 'initrd', `${spec.name}.cpio`);
  fs.rmSync(stage, { recursive: true, force: true });
  for (const d of ['bin', 'dev', 'proc', 'sys', 'root', 'modules']) fs.mkdirSync(path.join(stage, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(stage, 'bin/busybox'));
  fs.chmodSync(path.join(stage, 'bin/busybox'), 0o755);
  fs.copyFileSync(path.join(GUEST_DIR, 'init'), path.join(stage, 'init'));
  fs.chmodSync(path.join(stage, 'init'), 0o755);
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  fs.writeFileSync(
    path.join(stage, 'lab.env'),
    `LAB_REPO=${q(REPO)}\nLAB_TESTS=${q(params.tests)}\nLAB_EXCLUDE=${q(params.exclude)}\nLAB_DIAG=${q(params.diag)}\nLAB_FILE_TIMEOUT=${params.fileTimeoutS}\nLAB_TIME_SCALE=${params.timeScale}\n`,
  );
  const order: string[] = [];
  for (const m of moduleOrder(kdir, release)) {
    const dest = path.join(stage, 'modules', `${m.name}.ko`);
    // busybox insmod takes plain ELF; the kernel checks the signature either way.
    if (m.file.endsWith('.xz')) fs.writeFileSync(dest, execFileSync('xz', ['-dc', m.file], { maxBuffer: 1 << 28 }));
    else if (m.file.endsWith('.zst')) fs.writeFileSync(dest, execFileSync('zstd', ['-dc', m.file], { maxBuffer: 1 << 28 }));
    else fs.copyFileSync(m.file, dest);
    order.push(`${m.name}.ko`);
  }
  fs.writeFileSync(path.join(stage, 'modules.order'), order.map((m) => `${m}\n`).join(''));
  execFileSync('bash', ['-c', 'cd "$1" && find . -print0 | cpio --null -o -H newc --quiet > "$2"', 'bash', stage, out], {
    stdio: 'inherit',
  });
  fs.rmSync(stage, { recursive: true, force: true });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Booting

export interface BootResult {
  kernel: string;
  timedOut: boolean;
  seconds: number;
  results: string;
  consoleLog: string;
}

export async function boot(spec: KernelSpec, vmlinuz: string, initrd: string, image: string, timeoutS: number): Promise<BootResult> {
  const dir = path.join(CACHE, 'runs', spec.name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const consoleLog = path.join(dir, 'console.log');
  const resultsLog = path.join(dir, 'results.log');
  const args = [
    // thread=single: under QEMU 7.2's multi-threaded TCG, Node died of SIGSEGV or a failed V8 check in
    // 4 of 28 short runs in the guest (with or without AVX or PKU exposed); with one TCG thread for
    // both vCPUs, 0 of 28 (the stress runs are in docs/lab.md).
    '-accel',
    'tcg,thread=single',
    // q35: Debian's 6.12 corrupts its slab during ACPI PCI IRQ routing on QEMU 7.2's i440fx under TCG.
    '-machine',
    'q35',
    // cx16=off: Debian's 6.12 SLUB allocates through a gs-relative cmpxchg16b, and under QEMU 7.2's
    // TCG its per-CPU freelist came out corrupt (a panic in kmem_cache_alloc, once at 0.3 s into
    // boot); without CX16 the kernel takes its cmpxchg16b emulation. la57=off: 4-level paging, as
    // on most real machines (the first such panic was under 5-level paging).
    '-cpu',
    'max,la57=off,cx16=off',
    '-smp',
    String(Math.min(2, Math.max(1, navigatorCpus()))),
    '-m',
    '2048',
    '-nographic',
    '-no-reboot',
    '-nodefaults',
    '-kernel',
    vmlinuz,
    '-initrd',
    initrd,
    '-append',
    'console=ttyS0 panic=-1 loglevel=4 rdinit=/init',
    '-drive',
    `file=${image},if=virtio,format=raw,snapshot=on`,
    '-serial',
    `file:${consoleLog}`,
    '-serial',
    `file:${resultsLog}`,
    '-monitor',
    'none',
  ];
  const started = Date.now();
  log(`${spec.name}: booting (timeout ${timeoutS}s)`);
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  qemu.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    qemu.kill('SIGKILL');
  }, timeoutS * 1000);
  // Progress while the guest runs: each finished test file, as it lands in results.log.
  let reported = 0;
  const reportProgress = (): void => {
    const text = readOr(resultsLog);
    const ends = [...text.matchAll(/^@@LAB end (\S+)(?: (\S+))? rc=(\d+) ms=(\d+)/gm)];
    for (const m of ends.slice(reported)) log(`${spec.name}: ${m[2] ?? m[1]} rc=${m[3]} (${(Number(m[4]) / 1000).toFixed(1)}s)`);
    reported = ends.length;
  };
  const ticker = setInterval(reportProgress, 2000);
  const code = await new Promise<number | null>((resolve) => qemu.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  clearInterval(ticker);
  // The last file often ends within the final tick.
  reportProgress();
  if (code !== 0 && !timedOut) log(`${spec.name}: qemu exited ${code}: ${stderr.trim()}`);
  return {
    kernel: spec.name,
    timedOut,
    seconds: (Date.now() - started) / 1000,
    results: readOr(resultsLog),
    consoleLog,
  };
}

function navigatorCpus(): number {
  return Number(tryRun('nproc', [])?.trim() ?? '1') || 1;
}

function readOr(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** The "host" column: the same runner on this machine's kernel, no VM. */
export function runOnHost(params: GuestParams): BootResult {
  const dir = path.join(CACHE, 'runs', 'host');
  fs.mkdirSync(dir, { recursive: true });
  const resultsLog = path.join(dir, 'results.log');
  fs.rmSync(resultsLog, { force: true });
  const started = Date.now();
  execFileSync('bash', [path.join(REPO, 'tools/lab/guest-run.sh')], {
    stdio: 'inherit',
    env: {
      ...process.env,
      LAB_OUT: resultsLog,
      LAB_TESTS: params.tests,
      LAB_EXCLUDE: params.exclude,
      LAB_DIAG: params.diag,
      LAB_FILE_TIMEOUT: String(params.fileTimeoutS),
      LAB_TIME_SCALE: '1',
    },
  });
  return { kernel: 'host', timedOut: false, seconds: (Date.now() - started) / 1000, results: readOr(resultsLog), consoleLog: '' };
}
