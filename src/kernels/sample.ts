// Launcher for sample.wgsl: one decode step's Gumbel-max draw, its log-prob and the generation
// bookkeeping in one dispatch (see the .wgsl header).
import type { Device } from '../gpu/device.js';
import { Params, View, bindingDecls, fill, grid1d, paramsDecl, wgslSource } from './kernel.js';

/** Where a decode step writes: ids (B, S) i32 and logProbs (B, S) f32 (column `step`), done (B,) f32, feed (B, 1) i32. */
export interface SampleTargets {
  ids: View;
  logProbs: View;
  done: View;
  feed: View;
}

/** The draw's settings: temperature (0: argmax), the Threefry key, the column, the pad and end-of-sequence ids. */
export interface SampleSettings {
  step: number;
  temperature: number;
  key: readonly [number, number];
  padId: number;
  eosId?: number;
}

/**
 * x: logits (B, V) with unit stride along V; mask: (V,) added to the scores before the draw (0 or
 * −∞), or null. Writes the targets as sample.wgsl describes.
 */
export function runSampleStep(dev: Device, op: string, x: View, mask: View | null, out: SampleTargets, s: SampleSettings): void {
  const [B, V] = x.shape;
  if (B === 0 || V === 0) return;
  const prm = new Params()
    .u(B, V, x.offset, x.strides[0], s.key[0], s.key[1]).f(s.temperature)
    .u(mask ? 1 : 0, mask?.offset ?? 0, out.ids.offset, out.ids.strides[0], out.logProbs.offset, out.logProbs.strides[0],
      out.done.offset, out.feed.offset, s.padId, s.eosId ?? 0, s.eosId === undefined ? 0 : 1, s.step);
  const pipe = dev.pipeline(`sample|${prm.vec4s}`, op, () =>
    fill(wgslSource('sample'), {
      PARAMS: paramsDecl(prm.vec4s),
      BINDINGS: bindingDecls([
        { name: 'X', type: 'f32' }, { name: 'mask', type: 'f32' }, { name: 'ids', type: 'i32', write: true },
        { name: 'logps', type: 'f32', write: true }, { name: 'done', type: 'f32', write: true }, { name: 'feed', type: 'i32', write: true },
      ]),
      THREEFRY: wgslSource('threefry'),
    }));
  // without a mask the logits' buffer fills its binding (the kernel does not read it)
  dev.dispatch(op, pipe, prm.u32s, [x.buffer, (mask ?? x).buffer, out.ids.buffer, out.logProbs.buffer, out.done.buffer, out.feed.buffer],
    grid1d(B, 1, dev.limits.maxComputeWorkgroupsPerDimension));
}
