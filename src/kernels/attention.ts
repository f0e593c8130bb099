// Launcher for attention.wgsl: fused scaled-dot-product attention, forward (O and the logsumexp L)
// and the FlashAttention-2 backward (Delta, dQ, dK/dV), all recomputing scores from q and k.
import type { Device } from '../gpu/device.js';
import { TrimpiError } from '../gpu/errors.js';
import { Params, View, bindingDecls, fill, fixedSubgroupSize, grid1d, isCpuAdapter, paramsDecl, wgslSource } from './kernel.js';

type Stage = 'fwd' | 'dec' | 'dq' | 'dkv' | 'delta' | 'pack';
type Pipe = ReturnType<Device['pipeline']>;
type Bindings = Parameters<typeof bindingDecls>[0];

/** Head dimension D up to this. */
export const ATTENTION_MAX_D = 128;

/**
 * How fwd/dq/dkv are split (see attention.wgsl): WG invocations per workgroup owning R rows each; the
 * streamed side in blocks of BLK rows. 'sg': BLK = WG = the subgroup size, blocks passed around with
 * subgroup shuffles (needs the `subgroups` feature and a fixed subgroup size); 'plain': BLK = 1,
 * portable. `runtimeBounds`: the load/store loops' bounds are read at run time (CPU adapters, where
 * each access site compiles to a per-lane loop: fewer sites, much shorter compiles). A shared-memory
 * variant for real GPUs would be a third, picked here per adapter.
 */
interface Tiling {
  variant: 'sg' | 'plain';
  WG: number;
  BLK: number;
  R: number;
  runtimeBounds: boolean;
}

/** The subgroup size of the 'sg' variant (its WG): the adapter's fixed size, within the kernel's range. */
function sgWidth(dev: Device): number | null {
  const sg = fixedSubgroupSize(dev);
  return sg >= 4 && sg <= 128 ? sg : null;
}

let override: Partial<Pick<Tiling, 'variant' | 'WG' | 'R' | 'runtimeBounds'>> | null = null;

/**
 * @internal Forces parts of the tiling of fwd/dq/dkv (tests and benchmarks): variant 'sg' is taken
 * only where the device supports it (its WG is the subgroup size), WG applies to 'plain'. null restores
 * the automatic choice.
 */
export function setAttentionTiling(o: Partial<Pick<Tiling, 'variant' | 'WG' | 'R' | 'runtimeBounds'>> | null): void {
  override = o;
}

let decodeOff = false;

/** @internal Turns the one-row decode kernel off (tests compare it with the row-tiled forward). */
export function setAttentionDecodeKernel(on: boolean): void {
  decodeOff = !on;
}

/** The tiling of `stage` for head size D on this device. */
function tiling(dev: Device, stage: Stage, D: number): Tiling {
  const cpu = isCpuAdapter(dev);
  if (stage === 'delta' || stage === 'pack') return { variant: 'plain', WG: 64, BLK: 1, R: 1, runtimeBounds: cpu };
  // dec: lanes split the keys of one row; its merge buffer (WG · D4 vec4s) stays within 8 KiB
  if (stage === 'dec') {
    // CPU adapters with subgroups: lanes split the head dimension (the decsg section); elsewhere the
    // lanes split the keys, and the merge buffer (WG · D4 vec4s) stays within 8 KiB
    const sgDec = override?.variant === 'plain' ? null : sgWidth(dev);
    if (sgDec !== null && (override?.variant === 'sg' || cpu)) return { variant: 'sg', WG: sgDec, BLK: 1, R: 1, runtimeBounds: false };
    return { variant: 'plain', WG: override?.WG ?? (cpu ? 8 : Math.ceil(D / 4) <= 16 ? 32 : 16), BLK: 1, R: 1, runtimeBounds: override?.runtimeBounds ?? cpu };
  }
  const sg = override?.variant === 'plain' ? null : sgWidth(dev);
  const D4 = Math.ceil(D / 4) * 4;
  // rows per invocation: more rows reuse each loaded block more, fewer keep the registers (and, on
  // CPUs, the compile) small; measured best on lavapipe: 4 (D <= 64), 2 (D = 128). On GPUs one row
  // keeps the grid large.
  const R = override?.R ?? (!cpu ? 1 : D4 <= 64 ? 4 : 2);
  const runtimeBounds = override?.runtimeBounds ?? cpu;
  if (sg !== null) return { variant: 'sg', WG: sg, BLK: sg, R, runtimeBounds };
  return { variant: 'plain', WG: override?.WG ?? (cpu ? 8 : 64), BLK: 1, R, runtimeBounds };
}

/** The masks of one attention call, as the kernels read them. */
export interface AttentionMask {
  /**
   * Causal with a prefix: keys j < prefix are visible to every query. A number (Tk when the attention
   * is not causal, 0 for plain causal) or an i32 view of shape (B,) read on the GPU.
   */
  prefix: number | View;
  /** Key-valid mask: (B, Tk) view, f32 or i32, nonzero = a real key; null = no padding. */
  keyValid: View | null;
}

/** Shapes and options of one attention call: q (B, H, Tq, D), k and v (B, H, Tk, D). */
export interface AttentionProblem {
  B: number;
  H: number;
  Tq: number;
  Tk: number;
  D: number;
  scale: number;
  mask: AttentionMask;
}

// ---- the template ---------------------------------------------------------------------------------

type Node = { kind: 'line'; text: string } | { kind: 'rep'; indent: string; vars: string; text: string } | { kind: 'block'; indent: string; vars: string; body: Node[] };

function parse(lines: string[], at: { i: number }, nested: boolean): Node[] {
  const out: Node[] = [];
  while (at.i < lines.length) {
    const line = lines[at.i++];
    const m = /^(\s*)@(for|end|[dcer]+)(?:[ \t]+(.*))?$/.exec(line);
    if (!m) {
      out.push({ kind: 'line', text: line });
    } else if (m[2] === 'end') {
      if (!nested) throw new Error('attention.wgsl: @end without @for');
      return out;
    } else if (m[2] === 'for') {
      out.push({ kind: 'block', indent: m[1], vars: (m[3] ?? '').trim(), body: parse(lines, at, true) });
    } else {
      out.push({ kind: 'rep', indent: m[1], vars: m[2], text: m[3] ?? '' });
    }
  }
  if (nested) throw new Error('attention.wgsl: @for without @end');
  return out;
}

type Env = Record<string, number>;

/** Every assignment of the loop letters `vars` (first outermost). */
function combos(vars: string, env: Env, ranges: Record<string, number>): Env[] {
  let list: Env[] = [env];
  for (const v of vars) {
    if (!(v in ranges)) throw new Error(`attention.wgsl: unknown loop letter '${v}'`);
    list = list.flatMap((e) => Array.from({ length: ranges[v] }, (_, k) => (v === 'd' ? { ...e, d: k, c: k >> 2, e: k & 3 } : { ...e, [v]: k })));
  }
  return list;
}

const subst = (text: string, env: Env): string => text.replace(/\$([a-z])/g, (m, v: string) => (v in env ? String(env[v]) : m));

function emit(nodes: Node[], env: Env, ranges: Record<string, number>, out: string[]): void {
  for (const n of nodes) {
    if (n.kind === 'line') out.push(subst(n.text, env));
    else if (n.kind === 'rep') for (const e of combos(n.vars, env, ranges)) out.push(n.indent + subst(n.text, e));
    else {
      for (const e of combos(n.vars, env, ranges)) {
        out.push(`${n.indent}{`);
        emit(n.body, e, ranges, out);
        out.push(`${n.indent}}`);
      }
    }
  }
}

/** The prelude of attention.wgsl plus the section of `name`, unrolled (see the file's header). */
function stageSource(name: string, D: number, tl: Tiling): string {
  const parts = wgslSource('attention').split(/^\/\/@stage (\w+)[ \t]*$/m);
  const section = (s: string): string => {
    for (let k = 1; k < parts.length; k += 2) if (parts[k] === s) return parts[k + 1];
    throw new Error(`attention.wgsl: no section for stage '${s}'`);
  };
  const src = parts[0] + (name === 'pack' || name === 'delta' ? '' : section('masks')) + section(name === 'dec' && tl.variant === 'sg' ? 'decsg' : name);
  const out: string[] = [];
  emit(parse(src.split('\n'), { i: 0 }, false), {}, { d: D, c: Math.ceil(D / 4), e: 4, r: tl.R }, out);
  return out.join('\n');
}

// ---- launches -------------------------------------------------------------------------------------

/** Offset and strides of a 4-D view in `unit` elements (1, or 4 for vec4 views). */
function strided(v: View | null, unit: number): number[] {
  return v ? [v.offset / unit, ...v.strides.slice(0, 3).map((s) => s / unit), v.strides[3]] : [0, 0, 0, 0, 0];
}

/** The uniform block (see attention.wgsl). */
function params(p: AttentionProblem, unit: number, tl: Tiling, q: View, k: View, v: View, g: View | null): Params {
  const { mask } = p;
  const pad = mask.keyValid;
  const pre = typeof mask.prefix === 'number' ? Math.min(Math.max(Math.trunc(mask.prefix), 0), p.Tk) : 0;
  const prefixView = typeof mask.prefix === 'number' ? null : mask.prefix;
  return new Params()
    .u(p.B, p.H, p.Tq, p.Tk).f(p.scale).i(pre, p.Tk - p.Tq).u(Math.ceil(p.D / 4))
    .u(...strided(q, unit), ...strided(k, unit), ...strided(v, unit), ...strided(g, unit))
    .u(...(pad ? [pad.offset, pad.strides[0], pad.strides[1], pad.dtype === 'f32' ? 1 : 2] : [0, 0, 0, 0]))
    .u(...(prefixView ? [prefixView.offset, prefixView.strides[0], 1] : [0, 0, 0]), tl.BLK, tl.R)
    .align4();
}

/** The mask and prefix bindings (always there: one pipeline serves every mask combination). */
const MASK_BINDINGS: Bindings = [{ name: 'mask', type: 'u32' }, { name: 'prefix', type: 'i32' }];

/** Buffers for MASK_BINDINGS: the mask tensors, or `dummy` (never read) where absent. */
function maskBuffers(mask: AttentionMask, dummy: GPUBuffer): GPUBuffer[] {
  return [mask.keyValid?.buffer ?? dummy, typeof mask.prefix === 'number' ? dummy : mask.prefix.buffer];
}

function pipe(dev: Device, op: string, stage: Stage, D: number, tl: Tiling, prm: Params, bindings: Bindings): Pipe {
  const key = `attention|${stage}|${tl.variant}|D${D}|WG${tl.WG}|BLK${tl.BLK}|R${tl.R}|${tl.runtimeBounds ? 'rt' : 'ct'}|${prm.vec4s}`;
  return dev.pipeline(key, `${op} (${stage})`, () => {
    const src = stageSource(stage, D, tl).replace(/SHUFFLE\(([^,]+), t\)/g, tl.variant === 'sg' ? 'subgroupShuffle($1, t)' : '($1)');
    return fill(src, {
      ENABLE: tl.variant === 'sg' ? 'enable subgroups;' : '',
      PARAMS: paramsDecl(prm.vec4s), BINDINGS: bindingDecls(bindings), D, WG: tl.WG, BLK: tl.BLK, R: tl.R,
      N_D4: tl.runtimeBounds ? 'word(7u)' : 'D4', N_BLK: tl.runtimeBounds ? 'word(35u)' : 'BLK', N_R: tl.runtimeBounds ? 'word(36u)' : 'R',
    });
  });
}

/** Grid for `rows` rows per (b, h) in tiles of WG*R, with B*H folded into y/z. */
function tileGrid(dev: Device, op: string, p: AttentionProblem, rows: number, tl: Tiling): [number, number, number] {
  const maxWg = dev.limits.maxComputeWorkgroupsPerDimension;
  const tiles = Math.ceil(rows / (tl.WG * tl.R));
  if (tiles > maxWg) throw new TrimpiError(op, `sequence length ${rows} needs ${tiles} workgroups, over the dispatch limit ${maxWg}`);
  const bh = p.B * p.H;
  const y = Math.min(bh, maxWg);
  const z = Math.ceil(bh / y);
  if (z > maxWg) throw new TrimpiError(op, `B*H = ${bh} exceeds the dispatch limit`);
  return [tiles, y, z];
}

/** True if the sg kernels can read `v` as vec4s in place (rows contiguous and 16-byte aligned). */
function vec4Ready(v: View, D: number): boolean {
  return D % 4 === 0 && v.strides[3] === 1 && v.offset % 4 === 0 && v.strides.slice(0, 3).every((s) => s % 4 === 0);
}

/**
 * `v` as the sg kernels read it: itself if vec4-ready, else a zero-padded contiguous (B, H, T, D4*4)
 * copy in a pool buffer, pushed on `temps` (released after the dispatches that read it are recorded).
 */
function vec4View(dev: Device, op: string, v: View, D: number, temps: GPUBuffer[]): View {
  if (vec4Ready(v, D)) return v;
  const [B, H, T] = v.shape;
  const Dp = Math.ceil(D / 4) * 4;
  const n = B * H * T * Dp;
  const buffer = dev.alloc(Math.max(n, 4) * 4, `${op} packed`);
  temps.push(buffer);
  if (n > 0) {
    const prm = new Params().u(n, H, T, D, 0, 0, 0, 0).u(...strided(v, 1)).align4();
    const tl = tiling(dev, 'pack', D);
    const p = pipe(dev, op, 'pack', D, tl, prm, [{ name: 'dst', type: 'f32', write: true }, { name: 'src', type: 'f32' }]);
    dev.dispatch(op, p, prm.u32s, [buffer, v.buffer], grid1d(n, tl.WG, dev.limits.maxComputeWorkgroupsPerDimension));
  }
  return { buffer, dtype: 'f32', shape: [B, H, T, Dp], strides: [H * T * Dp, T * Dp, Dp, 1], offset: 0 };
}

const VEC4 = (name: string): Bindings[number] => ({ name, type: 'vec4<f32>' });

/**
 * Forward: out (contiguous (B, H, Tq, D)) = attention; stats[0 .. B*H*Tq) = logsumexp of each row's
 * scaled, masked scores (-inf for a row that sees no key). q, k, v: strided views.
 */
export function runAttentionForward(dev: Device, op: string, p: AttentionProblem, out: View, stats: View, q: View, k: View, v: View): void {
  if (p.B * p.H * p.Tq === 0) return;
  // one query row (a decode step): split the keys across the lanes instead of tiling the rows
  const stage = p.Tq === 1 && !decodeOff ? 'dec' : 'fwd';
  const tl = tiling(dev, stage, p.D);
  const temps: GPUBuffer[] = [];
  [q, k, v] = [q, k, v].map((x) => vec4View(dev, op, x, p.D, temps));
  const prm = params(p, 4, tl, q, k, v, null);
  const bindings: Bindings = [
    { name: 'out', type: 'f32', write: true }, { name: 'stats', type: 'f32', write: true },
    VEC4('q'), VEC4('k'), VEC4('v'), ...MASK_BINDINGS,
  ];
  dev.dispatch(op, pipe(dev, op, stage, p.D, tl, prm, bindings), prm.u32s,
    [out.buffer, stats.buffer, q.buffer, k.buffer, v.buffer, ...maskBuffers(p.mask, q.buffer)], tileGrid(dev, op, p, p.Tq, tl));
  for (const b of temps) dev.pool.release(b);
}

/**
 * Backward. stats: the forward's (2, B, H, Tq) buffer (row 0: logsumexp; row 1 is overwritten with
 * Delta = rowsum(dO * O)). o: the forward output (contiguous), g = dO (strided).
 * dq: contiguous (B, H, Tq, D) or null; dkv: contiguous (2, B, H, Tk, D) = [dk, dv] or null.
 */
export function runAttentionBackward(dev: Device, op: string, p: AttentionProblem, stats: View, o: View, g: View,
  q: View, k: View, v: View, dq: View | null, dkv: View | null): void {
  if (p.B * p.H * p.Tq === 0 || (!dq && !dkv)) return;
  const maxWg = dev.limits.maxComputeWorkgroupsPerDimension;

  const tlD = tiling(dev, 'delta', p.D);
  const prmD = params(p, 1, tlD, q, k, v, g);
  const deltaPipe = pipe(dev, op, 'delta', p.D, tlD, prmD,
    [{ name: 'stats', type: 'f32', write: true }, { name: 'o', type: 'f32' }, { name: 'dout', type: 'f32' }]);
  dev.dispatch(op, deltaPipe, prmD.u32s, [stats.buffer, o.buffer, g.buffer], grid1d(p.B * p.H * p.Tq, tlD.WG, maxWg));

  const tq = tiling(dev, 'dq', p.D);
  const tk = tiling(dev, 'dkv', p.D);
  const temps: GPUBuffer[] = [];
  [q, k, v, g] = [q, k, v, g].map((x) => vec4View(dev, op, x, p.D, temps));
  const prm = params(p, 4, tq, q, k, v, g);
  const prmK = params(p, 4, tk, q, k, v, g);
  const common: Bindings = [{ name: 'stats', type: 'f32' }, VEC4('q'), VEC4('k'), VEC4('v'), VEC4('dout'), ...MASK_BINDINGS];
  const commonBuffers = [stats.buffer, q.buffer, k.buffer, v.buffer, g.buffer, ...maskBuffers(p.mask, q.buffer)];
  if (dq) {
    dev.dispatch(op, pipe(dev, op, 'dq', p.D, tq, prm, [{ name: 'dq_out', type: 'f32', write: true }, ...common]),
      prm.u32s, [dq.buffer, ...commonBuffers], tileGrid(dev, op, p, p.Tq, tq));
  }
  if (dkv && p.Tk > 0) {
    dev.dispatch(op, pipe(dev, op, 'dkv', p.D, tk, prmK, [{ name: 'dkv', type: 'f32', write: true }, ...common]),
      prmK.u32s, [dkv.buffer, ...commonBuffers], tileGrid(dev, op, p, p.Tk, tk));
  }
  for (const b of temps) dev.pool.release(b);
}
