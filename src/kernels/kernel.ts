// Shared pieces of every launcher: loading a kernel family's .wgsl file, filling its {{PLACEHOLDERS}},
// packing the uniform parameter block, and splitting large 1-D grids into 2-D dispatches.
import { readFileSync } from 'node:fs';
import type { DType } from '../gpu/dtype.js';
import type { Device } from '../gpu/device.js';
import { TrimpiError } from '../gpu/errors.js';

/** A strided view of a buffer, as the kernels see a tensor. Strides and offset are in elements. */
export interface View {
  readonly buffer: GPUBuffer;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
}

const sources = new Map<string, string>();

/** The text of src/kernels/wgsl/<family>.wgsl (copied next to the compiled launchers by the build). */
export function wgslSource(family: string): string {
  let s = sources.get(family);
  if (s === undefined) {
    s = readFileSync(new URL(`./wgsl/${family}.wgsl`, import.meta.url), 'utf8');
    sources.set(family, s);
  }
  return s;
}

/** Replaces every {{NAME}} in `src`; throws if one is left unfilled (a launcher bug). */
export function fill(src: string, vars: Record<string, string | number>): string {
  const out = src.replace(/\{\{(\w+)\}\}/g, (m, k: string) => (k in vars ? String(vars[k]) : m));
  const left = out.match(/\{\{\w+\}\}/);
  if (left) throw new Error(`kernel template: placeholder ${left[0]} was not filled`);
  return out;
}

// f32 -> u32 bit casts for Params.f (shared: a Params is built per dispatch)
const f32Scratch = new Float32Array(1);
const u32OfF32 = new Uint32Array(f32Scratch.buffer);
/** The bits of x rounded to f32, as a u32 word (a float among a kernel's u32 parameter words). */
export function f32Bits(x: number): number {
  f32Scratch[0] = x;
  return u32OfF32[0];
}

/** Builds the uniform block: u32 words, read in WGSL through `word(i)` from array<vec4<u32>, N>. */
export class Params {
  private words: number[] = [];
  /**
   * u32 words. Negative values down to -2^31 wrap (flipped views pass negative strides on purpose:
   * u32 offset arithmetic wraps back); anything else outside u32 would wrap silently, so it throws:
   * the ops refuse such sizes first with a message naming the op.
   */
  u(...values: number[]): this {
    for (const v of values) {
      if (!(Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 32)) {
        throw new TrimpiError('kernel', `the parameter ${v} does not fit the kernels' 32-bit index math (a size or offset of 2^32 or more)`);
      }
      this.words.push(v >>> 0);
    }
    return this;
  }
  i(...values: number[]): this {
    for (const v of values) this.words.push(v | 0);
    return this;
  }
  f(...values: number[]): this {
    for (const v of values) this.words.push(f32Bits(v));
    return this;
  }
  /** Pads to a multiple of 4 words (one vec4). */
  align4(): this {
    while (this.words.length % 4) this.words.push(0);
    return this;
  }
  get length(): number {
    return this.words.length;
  }
  /** The u32 words as set (Device.dispatch pads them to whole vec4s). */
  get u32s(): readonly number[] {
    return this.words;
  }
  /** Number of vec4<u32> the WGSL struct must declare. */
  get vec4s(): number {
    return Math.max(1, Math.ceil(this.words.length / 4));
  }
  bytes(): Uint8Array {
    const n = this.vec4s * 4;
    const a = new Uint32Array(n);
    a.set(this.words);
    return new Uint8Array(a.buffer);
  }
}

/** WGSL accessor for the uniform block; every template includes it via {{PARAMS}}. */
export function paramsDecl(vec4s: number): string {
  return `struct Params { w: array<vec4<u32>, ${vec4s}> }
@group(0) @binding(0) var<uniform> params: Params;
fn word(i: u32) -> u32 { return params.w[i / 4u][i % 4u]; }
fn wordf(i: u32) -> f32 { return bitcast<f32>(word(i)); }`;
}

/**
 * Grid for `n` invocations at `wg` per workgroup, folded into 2-D when it exceeds the per-dimension
 * limit. Kernels recover the linear id as gid.x + gid.y * nwg.x * wg.
 */
export function grid1d(n: number, wg: number, maxPerDim = 65535): [number, number, number] {
  const groups = Math.ceil(n / wg);
  if (groups <= maxPerDim) return [groups, 1, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y, 1];
}

/** Binding declarations: `bindings` in order from @binding(1). */
export function bindingDecls(bindings: { name: string; type: string; write?: boolean; atomic?: boolean }[]): string {
  return bindings
    .map((b, i) => {
      const elem = b.atomic ? `atomic<${b.type}>` : b.type;
      return `@group(0) @binding(${i + 1}) var<storage, ${b.write ? 'read_write' : 'read'}> ${b.name}: array<${elem}>;`;
    })
    .join('\n');
}

/**
 * The adapter's subgroup size when it is fixed (min == max) and the `subgroups` feature is on, else 0.
 * Row kernels then run one subgroup per row and reduce with subgroup operations: no workgroup
 * barriers, which on lavapipe (CPU SIMD, subgroup = 8 lanes) cost a coroutine switch each.
 */
export function fixedSubgroupSize(dev: Device): number {
  if (adapterOverride?.subgroups === false) return 0;
  const { subgroupMinSize: lo, subgroupMaxSize: hi } = dev.adapter;
  return dev.features.has('subgroups') && lo > 0 && lo === hi ? hi : 0;
}

/** A CPU implementation of WebGPU (lavapipe, SwiftShader): kernels then prefer shapes that compile short. */
export function isCpuAdapter(dev: Device): boolean {
  if (adapterOverride?.cpu !== undefined) return adapterOverride.cpu;
  const a = dev.adapter;
  return a.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader|cpu/i.test(`${a.vendor} ${a.architecture} ${a.device} ${a.description}`);
}

let adapterOverride: { subgroups?: false; cpu?: boolean } | null = null;
/**
 * @internal Tests: make the launchers choose as if the adapter had no fixed subgroup size
 * (`subgroups: false`: the workgroup-memory reductions) and/or were (not) a CPU adapter (`cpu`), so
 * the code paths other adapters take run here too. null restores the real adapter.
 */
export function setAdapterOverride(o: { subgroups?: false; cpu?: boolean } | null): void {
  adapterOverride = o;
}
