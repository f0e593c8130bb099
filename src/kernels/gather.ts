// Launchers for gather.wgsl (torch.gather and the destination keys of a gather) and scatter.wgsl
// (the deterministic segment sum by key behind the backward of gather, indexSelect and embedding).
import type { AssertSlot, Device } from '../gpu/device.js';
import { check, fmtShape } from '../gpu/errors.js';
import { contiguousStrides, isContiguous, normAxis, numel } from '../gpu/shape.js';
import { Params, View, bindingDecls, fill, fixedSubgroupSize, grid1d, paramsDecl, wgslSource } from './kernel.js';

const WG = 256;

type Pipe = ReturnType<Device['pipeline']>;

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, k) => d === b[k]);
}

function checkIndexView(op: string, index: View, S: readonly number[]): void {
  check(index.dtype === 'i32', op, () => `the index must be i32, got ${index.dtype}`);
  check(sameShape(index.shape, S), op, () => `the index (shape ${fmtShape(index.shape)}) must be broadcast to the output shape ${fmtShape(S)}`);
}

function checkOtherDims(op: string, xShape: readonly number[], S: readonly number[], axis: number): void {
  check(xShape.length === S.length, op, () => `the source has rank ${xShape.length} but the output ${fmtShape(S)} has rank ${S.length}`);
  check(xShape.every((d, k) => k === axis || d === S[k]), op,
    () => `source shape ${fmtShape(xShape)} and output shape ${fmtShape(S)} must agree on every dimension but axis ${axis}`);
}

/**
 * Shared launch of gather.wgsl. `xStrides`/`xOffset` address the source (x's own, or xShape's
 * contiguous strides for keys); `xBuf` is bound only for the gather variant.
 */
function launchGather(
  dev: Device, op: string, kind: 'gather' | 'keys', out: View, xShape: readonly number[], xStrides: readonly number[],
  xOffset: number, xBuf: GPUBuffer | null, index: View, axis: number, errorFlag: AssertSlot | undefined,
): void {
  let S = out.shape;
  const n = numel(S);
  if (n === 0) return;
  let iStrides = index.strides;
  let axisSize = S.length === 0 ? 1 : xShape[axis];
  if (S.length === 0) {
    // a 0-d gather reads its only element: run it as rank 1 of size 1
    S = [1];
    xStrides = [0];
    iStrides = [0];
    axisSize = 1;
  }
  const rank = S.length;
  const prm = new Params().u(n, axisSize, out.offset, errorFlag?.word ?? 0).u(...S).u(...xStrides, xOffset).u(...iStrides, index.offset);
  const withErr = errorFlag !== undefined;
  const bindings: Parameters<typeof bindingDecls>[0] = [{ name: 'out', type: out.dtype, write: true }];
  const buffers: GPUBuffer[] = [out.buffer];
  if (xBuf) {
    bindings.push({ name: 'x', type: out.dtype });
    buffers.push(xBuf);
  }
  bindings.push({ name: 'index', type: 'i32' });
  buffers.push(index.buffer);
  if (errorFlag) {
    bindings.push({ name: 'err', type: 'u32', write: true, atomic: true });
    buffers.push(errorFlag.buffer);
  }
  const storeOk = kind === 'gather' ? 'out[o] = x[ox];' : 'out[o] = i32(ox);';
  const storeBad = (kind === 'gather' ? `out[o] = ${out.dtype}(0);` : 'out[o] = -1;') + (withErr ? ' atomicStore(&err[word(3u)], 1u);' : '');
  const key = `gather|${kind}|${out.dtype}|r${rank}|a${axis}|e${withErr ? 1 : 0}|${prm.vec4s}`;
  const pipe = dev.pipeline(key, op, () =>
    fill(wgslSource('gather'), {
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls(bindings),
      RANK: rank,
      AXIS: axis,
      STORE_OK: storeOk,
      STORE_BAD: storeBad,
    }),
  );
  dev.dispatch(op, pipe, prm.u32s, buffers, grid1d(n, WG, dev.limits.maxComputeWorkgroupsPerDimension));
}

/**
 * torch.gather along `axis`: out[pos] = x[pos with pos[axis] := index[pos]].
 * out: contiguous view (dtype = x.dtype) of shape S; index: i32 view already broadcast to S (strides may be 0,
 * e.g. indexSelect passes a 1-D index viewed with stride 0 on every other dim); x: any strided view with
 * the same rank as S, x.shape[d] == S[d] for d != axis. Indices outside [0, x.shape[axis]) yield 0 in out
 * (negative indices are NOT wrapped) and set the errorFlag's word to 1 when one is given (Device.assertFlag: the
 * next readback reports it).
 */
export function runGather(dev: Device, op: string, out: View, x: View, index: View, axis: number, errorFlag?: AssertSlot): void {
  const S = out.shape;
  const ax = normAxis(axis, S.length, op);
  checkOtherDims(op, x.shape, S, ax);
  checkIndexView(op, index, S);
  check(out.dtype === x.dtype, op, () => `the output dtype ${out.dtype} must match the source dtype ${x.dtype}`);
  check(isContiguous(S, out.strides), op, () => 'the output view must be contiguous');
  check(out.buffer !== x.buffer && out.buffer !== index.buffer, op, () => 'the output must not share a buffer with its inputs');
  launchGather(dev, op, 'gather', out, x.shape, x.strides, x.offset, x.buffer, index, ax, errorFlag);
}

/**
 * The destination linear indices of a gather, for its backward: keys[i] = contiguous linear index into a tensor
 * of shape xShape of the element that out[i] read (i over S in row-major order); out-of-range → 0xffffffff (skipped,
 * and reported through `errorFlag` when one is given: scatterAdd).
 * keys: contiguous i32 buffer view of shape S.
 */
export function runGatherKeys(dev: Device, op: string, keys: View, xShape: readonly number[], index: View, axis: number, errorFlag?: AssertSlot): void {
  const S = keys.shape;
  const ax = normAxis(axis, S.length, op);
  checkOtherDims(op, xShape, S, ax);
  checkIndexView(op, index, S);
  check(keys.dtype === 'i32', op, () => `the keys must be i32, got ${keys.dtype}`);
  check(isContiguous(S, keys.strides), op, () => 'the keys view must be contiguous');
  check(keys.buffer !== index.buffer, op, () => 'the keys must not share a buffer with the index');
  launchGather(dev, op, 'keys', keys, xShape, contiguousStrides(xShape), 0, null, index, ax, errorFlag);
}

// ---- scatter-add by key -------------------------------------------------------------------------

type Stage = 'zero' | 'count' | 'scan' | 'scan_sg' | 'place' | 'sum';

/** The prelude of scatter.wgsl (before the first `//@stage`) plus the section of `stage`. */
function stageSource(stage: Stage): string {
  const src = wgslSource('scatter');
  const parts = src.split(/^\/\/@stage (\w+)[ \t]*$/m);
  for (let k = 1; k < parts.length; k += 2) if (parts[k] === stage) return parts[0] + parts[k + 1];
  throw new Error(`scatter.wgsl: no section for stage '${stage}'`);
}

function stagePipe(dev: Device, op: string, stage: Stage, prm: Params, vars: Record<string, string | number> = {}): Pipe {
  const key = `scatter|${stage}|${Object.entries(vars).map(([k, v]) => `${k}=${v}`).join(',')}|${prm.vec4s}`;
  return dev.pipeline(key, `${op} (${stage})`, () => fill(stageSource(stage), { ENABLE: stage === 'scan_sg' ? 'enable subgroups;' : '', PARAMS: paramsDecl(prm.vec4s), ...vars }));
}

/** Records buf[offset .. offset + n) = 0 (u32 words; also f32 zeros). */
function zeroWords(dev: Device, op: string, buf: GPUBuffer, offset: number, n: number): void {
  const prm = new Params().u(n, offset);
  dev.dispatch(op, stagePipe(dev, op, 'zero', prm), prm.u32s, [buf], grid1d(n, WG, dev.limits.maxComputeWorkgroupsPerDimension));
}

/**
 * Deterministic segment sum (the scatter-add behind the backward of gather/indexSelect/embedding):
 * out[k] = sum over i with keys[i] == k of values[i], for k in [0, outNumel), summed in increasing i order
 * so the result is bit-identical run to run (no float atomics). out: contiguous f32 view with numel outNumel
 * (fully overwritten; positions with no key get 0). keys: contiguous i32 [M] (0xffffffff = skip); values: f32 view
 * of M elements in row-major order (may be strided: pass shape/strides, e.g. a broadcast gradient).
 */
export function runScatterAddByKey(dev: Device, op: string, out: View, keys: View, values: View): void {
  const K = numel(out.shape);
  const M = numel(values.shape);
  check(out.dtype === 'f32' && values.dtype === 'f32', op, () => `scatter-add sums f32 values into an f32 output, got ${values.dtype} -> ${out.dtype}`);
  check(keys.dtype === 'i32', op, () => `the keys must be i32, got ${keys.dtype}`);
  check(numel(keys.shape) === M, op, () => `${numel(keys.shape)} keys for ${M} values`);
  check(isContiguous(out.shape, out.strides), op, () => 'the output view must be contiguous');
  check(isContiguous(keys.shape, keys.strides), op, () => 'the keys view must be contiguous');
  check(out.buffer !== keys.buffer && out.buffer !== values.buffer, op, () => 'the output must not share a buffer with its inputs');
  if (K === 0) return;
  const maxWg = dev.limits.maxComputeWorkgroupsPerDimension;
  if (M === 0) {
    zeroWords(dev, op, out.buffer, out.offset, K);
    return;
  }
  const offs = dev.alloc(K * 4, `${op} offsets`);
  const list = dev.alloc(M * 4, `${op} list`);

  zeroWords(dev, op, offs, 0, K);
  const cnt = new Params().u(M, K, keys.offset);
  dev.dispatch(op, stagePipe(dev, op, 'count', cnt), cnt.u32s, [keys.buffer, offs], grid1d(M, WG, maxWg));
  const scan = new Params().u(K);
  const sg = fixedSubgroupSize(dev);
  dev.dispatch(op, sg ? stagePipe(dev, op, 'scan_sg', scan, { SG: sg }) : stagePipe(dev, op, 'scan', scan), scan.u32s, [offs], [1, 1, 1]);
  dev.dispatch(op, stagePipe(dev, op, 'place', cnt), cnt.u32s, [keys.buffer, offs, list], grid1d(M, WG, maxWg));

  // values: contiguous → direct index; otherwise walk its shape (size-1 dims dropped)
  const vContig = isContiguous(values.shape, values.strides);
  const vDims = vContig ? [] : values.shape.map((d, k) => [d, values.strides[k]] as const).filter(([d]) => d !== 1);
  const sum = new Params().u(K, out.offset, values.offset, 0).u(...vDims.map(([d]) => d)).u(...vDims.map(([, s]) => s));
  const sumPipe = stagePipe(dev, op, 'sum', sum, { VRANK: vDims.length, VCONTIG: vContig ? 'true' : 'false' });
  dev.dispatch(op, sumPipe, sum.u32s, [out.buffer, offs, list, values.buffer], grid1d(K, WG, maxWg));

  // the pool hands them to later dispatches only, which run after these
  dev.pool.release(offs);
  dev.pool.release(list);
}
