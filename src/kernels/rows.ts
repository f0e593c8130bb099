// Launcher for rows.wgsl: the row-in-registers kernels of the softmax and layer-norm families. The
// families write only their bodies (see rows.wgsl for what a body sees).
import type { Device } from '../gpu/device.js';
import { Params, View, bindingDecls, fill, fixedSubgroupSize, grid1d, isCpuAdapter, paramsDecl, wgslSource } from './kernel.js';

/** Workgroup size without a fixed subgroup size (a power of two: the reduction tree halves it). */
const WG = 64;

const REDUCE_SUBGROUP = `
fn row_max(v: f32, t: u32) -> f32 { return subgroupMax(v); }
fn row_sum(v: f32, t: u32) -> f32 { return subgroupAdd(v); }`;
// the leading barrier keeps a lane from overwriting red[t] while another still reads the last result
const REDUCE_WORKGROUP = `
var<workgroup> red: array<f32, WG>;
fn row_max(v: f32, t: u32) -> f32 {
  workgroupBarrier();
  red[t] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) { red[t] = max(red[t], red[t + k]); }
    workgroupBarrier();
  }
  return red[0];
}
fn row_sum(v: f32, t: u32) -> f32 {
  workgroupBarrier();
  red[t] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (t < k) { red[t] += red[t + k]; }
    workgroupBarrier();
  }
  return red[0];
}`;

// one element of type V: horizontal max / sum, component k, and the one-hot of column tg at element i
const ELEMENT_VEC4 = `alias V = vec4<f32>;
const WIDTH = 4u;
fn hmax(v: V) -> f32 { return max(max(v.x, v.y), max(v.z, v.w)); }
fn hsum(v: V) -> f32 { return (v.x + v.y) + (v.z + v.w); }
fn hbad(v: V) -> f32 { return max(max(bad_f(v.x), bad_f(v.y)), max(bad_f(v.z), bad_f(v.w))); }
fn component(v: V, k: u32) -> f32 { return v[k]; }
fn one_hot(i: u32, tg: i32) -> V { return select(V(0.0), V(1.0), vec4<i32>(i32(i * 4u)) + vec4<i32>(0, 1, 2, 3) == vec4<i32>(tg)); }`;
const ELEMENT_F32 = `alias V = f32;
const WIDTH = 1u;
fn hmax(v: V) -> f32 { return v; }
fn hsum(v: V) -> f32 { return v; }
fn hbad(v: V) -> f32 { return bad_f(v); }
fn component(v: V, k: u32) -> f32 { return v; }
fn one_hot(i: u32, tg: i32) -> V { return select(0.0, 1.0, i32(i) == tg); }`;

/** A binding: 'V' views are read or written as V (rows of [rows, n], or [n] vectors); others as scalars. */
export interface RowBinding {
  name: string;
  view: View | GPUBuffer;
  type: 'V' | 'f32' | 'i32' | 'u32';
  write?: boolean;
  atomic?: boolean;
}


const isView = (v: View | GPUBuffer): v is View => 'buffer' in v;

/**
 * Runs `body` once per row (see rows.wgsl). `slots`: the body keeps the row in registers (C slots per
 * lane); false for streaming bodies that loop `for (var i = t; i < nv; i += WG)`. `extra`: words the
 * body reads with extra(i); `helpers`: WGSL functions the body calls. Returns false, launching nothing, when the row does not fit the registers.
 */
export function launchRows(dev: Device, op: string, key: string, body: string, bindings: RowBinding[], rows: number, n: number,
  extra: number[] = [], slots = true, helpers = ''): boolean {
  if (rows === 0 || n === 0) return true;
  const sg = fixedSubgroupSize(dev);
  const wg = sg || WG;
  const vec4 = n % 4 === 0 && bindings.every((b) => b.type !== 'V' || (isView(b.view) && b.view.offset % 4 === 0));
  const width = vec4 ? 4 : 1;
  const nv = n / width;
  const C = slots ? Math.ceil(nv / wg) : 1;
  const cpu = isCpuAdapter(dev);
  // the largest slot count kept in registers: CPUs spill to L1 cheaply, GPUs to slow local memory
  if (C > (cpu ? 64 : 8)) return false;
  // Constant slot loops unroll into registers (measured on lavapipe: softmax [4096, 1024] 1.7x faster
  // than a run-time bound) but compile for seconds on CPU adapters; the scalar rows (n % 4 != 0, the
  // uncommon case) therefore read the bound at run time there, with the array sized to a power of two.
  const runtime = cpu && !vec4;
  const size = runtime ? 2 ** Math.ceil(Math.log2(C)) : C;
  // every slot inside the row: the bounds checks fold away
  const full = nv % wg === 0;
  // rows per workgroup: on CPU adapters a workgroup is a task with a fixed cost, so each one takes
  // up to 16 rows (keeping at least ~16 workgroups for the cores); on GPUs one row keeps the grid wide
  const perGroup = cpu ? Math.min(16, Math.max(1, Math.floor(rows / 16))) : 1;
  const groups = Math.ceil(rows / perGroup);
  const offsets = bindings.map((b) => (isView(b.view) ? b.view.offset / (b.type === 'V' ? width : 1) : 0));
  const prm = new Params().u(rows, n, nv, C, perGroup, ...offsets, ...extra);
  const pipe = dev.pipeline(`rows|${key}|${wg}|${sg ? 'subgroup' : 'workgroup'}|w${width}|C${size}${runtime ? 'rt' : ''}|${full ? 'full' : 'tail'}|${prm.vec4s}`, op, () =>
    fill(wgslSource('rows'), {
      ENABLE: sg ? 'enable subgroups;' : '',
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls(bindings.map((b) => ({ name: b.name, type: b.type === 'V' ? (vec4 ? 'vec4<f32>' : 'f32') : b.type, write: b.write, atomic: b.atomic }))),
      WG: wg, C: size, FULL: String(full), ELEMENT: vec4 ? ELEMENT_VEC4 : ELEMENT_F32, EXTRA: 5 + bindings.length,
      REDUCE: sg ? REDUCE_SUBGROUP : REDUCE_WORKGROUP,
      NC: runtime ? 'let NC = word(3u);' : 'const NC = C;',
      OFFSETS: bindings.map((b, i) => `  let off_${b.name} = word(${5 + i}u);`).join('\n'),
      HELPERS: helpers,
      MAIN: body,
    }));
  const buffers = bindings.map((b) => (isView(b.view) ? b.view.buffer : b.view));
  dev.dispatch(op, pipe, prm.u32s, buffers, grid1d(groups, 1, dev.limits.maxComputeWorkgroupsPerDimension));
  return true;
}
