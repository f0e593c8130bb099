#!/usr/bin/env node
// Pre-step of `npm start` and `npm test` on a fresh clone (plain Node, no dependencies):
//  1. installs the node dependencies when they are missing (npm ci from the lock file);
//  2. checks that WebGPU works here: an adapter AND a compute dispatch that reads back right;
//  3. on Linux without a working adapter, installs Mesa's software Vulkan driver (lavapipe) from
//     bookworm-backports when running as root on Debian (bookworm's own Mesa 22 is too old for
//     Dawn), otherwise prints the exact commands and exits 1.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const log = (msg) => console.error(`[ensure-env] ${msg}`);

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with exit code ${r.status}`);
}

// ---- 1. node dependencies -----------------------------------------------------------------------
const needed = ['webgpu', 'typescript', 'vitest', '@webgpu/types'];
if (needed.some((p) => !existsSync(join(root, 'node_modules', p, 'package.json')))) {
  // `npm install` follows package-lock.json's versions; `npm ci` is not used because npm 11 writes
  // lock files without other platforms' optional packages (rollup's) and then refuses them in ci.
  log('installing node dependencies (npm install)');
  run('npm', ['install', '--no-audit', '--no-fund']);
}

// ---- 2. does WebGPU work? -------------------------------------------------------------------------
if (process.platform === 'linux' && !process.env.XDG_RUNTIME_DIR) {
  const dir = `/tmp/xdg-runtime-${process.getuid?.() ?? 0}`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}

const PROBE = `
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) { console.log('NO_ADAPTER'); process.exit(0); }
const device = await adapter.requestDevice();
const buf = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
const rb = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const module = device.createShaderModule({ code: '@group(0) @binding(0) var<storage, read_write> o: array<f32>; @compute @workgroup_size(4) fn main(@builtin(global_invocation_id) g: vec3u) { o[g.x] = f32(g.x) * 2.0 + 1.0; }' });
const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
const enc = device.createCommandEncoder();
const pass = enc.beginComputePass();
pass.setPipeline(pipeline);
pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: buf } }] }));
pass.dispatchWorkgroups(1);
pass.end();
enc.copyBufferToBuffer(buf, 0, rb, 0, 16);
device.queue.submit([enc.finish()]);
await rb.mapAsync(GPUMapMode.READ);
const v = [...new Float32Array(rb.getMappedRange())].join(',');
const info = adapter.info;
console.log(v === '1,3,5,7' ? 'OK ' + (info.description || info.device || info.vendor) : 'BAD_RESULT ' + v);
device.destroy();
gpu.adapter = adapter; // keep the instance reachable until the end
`;

function probe() {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', PROBE], {
    cwd: root, encoding: 'utf8', timeout: 120_000, env: process.env,
  });
  const out = `${r.stdout ?? ''}`.trim().split('\n').pop() ?? '';
  return { ok: r.status === 0 && out.startsWith('OK'), detail: out || `exit ${r.status} ${String(r.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}` };
}

const stamp = join(root, 'node_modules', '.trimpi-webgpu-ok');
let p = probe();
if (p.ok) {
  if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== p.detail) log(`WebGPU works: ${p.detail.slice(3)}`);
  writeFileSync(stamp, p.detail);
  process.exit(0);
}
log(`no working WebGPU adapter (${p.detail})`);

// ---- 3. install lavapipe where we can ------------------------------------------------------------
const commands = [
  `mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)`,
  'echo "deb $mirror bookworm-backports main" > /etc/apt/sources.list.d/backports.list',
  'apt-get update && apt-get install -y -t bookworm-backports mesa-vulkan-drivers',
];
const isRoot = process.getuid?.() === 0;
const osRelease = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
const isBookworm = /VERSION_CODENAME=bookworm/.test(osRelease);
const isDebian = /^ID=debian/m.test(osRelease);
if (process.platform !== 'linux') {
  log('install a GPU driver with Vulkan, Metal or D3D12 support, then rerun.');
  process.exit(1);
}
if (!(isRoot && isDebian && existsSync('/etc/apt/sources.list.d/debian.sources'))) {
  log('install Mesa\'s software Vulkan driver (lavapipe), as root on Debian bookworm:');
  for (const c of commands) console.error(`  ${c}`);
  if (!isDebian) log('(on other distributions: install Mesa >= 24 with its Vulkan drivers, e.g. mesa-vulkan-drivers)');
  process.exit(1);
}
try {
  if (isBookworm) {
    log('installing mesa-vulkan-drivers from bookworm-backports (Mesa 22 in bookworm is too old for Dawn)');
    run('bash', ['-c', commands.join(' && ')]);
  } else {
    log('installing mesa-vulkan-drivers');
    run('bash', ['-c', 'apt-get update && apt-get install -y mesa-vulkan-drivers']);
  }
} catch (e) {
  log(`installation failed: ${e.message}`);
  process.exit(1);
}
p = probe();
if (!p.ok) {
  log(`WebGPU still does not work after installing Mesa (${p.detail}); run \`npx trimpi doctor\` for details.`);
  process.exit(1);
}
writeFileSync(stamp, p.detail);
log(`WebGPU works: ${p.detail.slice(3)}`);
