// One decode step's draw and its bookkeeping, fused (nn/generate.ts), as a streaming body of the row
// frame (rows.wgsl: one row per lane group, row_max / row_sum over the lanes). For row b of the
// logits x (B, V):
//   s_j  = (x_j + mask_j) / temperature - log(-log(u_j)),  u_j = uniform(key, b * V + j)
//          (temperature 0: s_j = x_j + mask_j, no noise)
//   id   = argmax_j s_j (the lowest j on ties)      the Gumbel-max trick: a draw from
//                                                    softmax((x + mask) / temperature), exactly
//   logp = x_id - logsumexp_j x_j                    the log-prob at temperature 1 (what RL needs)
// then ids[b, step] = id, logps[b, step] = logp, feed[b] = (done[b] != 0 ? pad : id) and, with an
// eos id, done[b] = max(done[b], id == eos). u_j is element b * V + j of the Threefry stream
// (threefry.wgsl) that rand([B, V], { seed }) draws, so the composed form (sampleTokens) picks the
// same ids. Replaces ~15 dispatches of the composed form (mask add, rand, div, log, neg, log, neg,
// add, argmax, token log-prob, three assigns, where, eq, maximum) with one: on lavapipe a dispatch
// costs ~0.2 ms of GPU time whatever its size.
// Lanes stride the row keeping their best (s, j) and max x; the argmax is two row_max reductions
// (the best score, then the lowest index reaching it, as −j); a second pass sums exp(x − max).
// Floor: 2 * B * V * 4 bytes read and B * V Threefry draws (20 rounds each).
// extra words: [0] key0, [1] key1, [2] temperature (f32 bits), [3] 1 if a mask is bound, [4] ids row
// stride, [5] logps row stride, [6] pad id, [7] eos id, [8] 1 if eos is set, [9] step (the column).
import type { Device } from '../gpu/device.js';
import { View, f32Bits, wgslSource } from './kernel.js';
import { launchRows } from './rows.js';

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

const SAMPLE_STEP = `
  let temperature = bitcast<f32>(extra(2u));
  var m = NEG_INF;
  var best = NEG_INF;
  var bi = 0xffffffffu; // no element seen (lanes past the row's end)
  for (var i = t; i < nv; i += WG) {
    let xv = x[off_x + row * nv + i];
    m = max(m, hmax(xv));
    var mv = V(0.0);
    if (extra(3u) != 0u) { mv = mask[off_mask + i]; }
    for (var k = 0u; k < WIDTH; k++) {
      let j = i * WIDTH + k;
      var s = component(xv, k) + component(mv, k);
      if (temperature > 0.0) {
        let r = threefry2x32(row * n + j, 0u, extra(0u), extra(1u));
        s = s / temperature + -log(-log(f32(r.x >> 8u) * 5.9604644775390625e-8));
      }
      // j only grows along a lane: a strict > keeps its lowest index on ties
      if (bi == 0xffffffffu || s > best) { best = s; bi = j; }
    }
  }
  let top = row_max(best, t);
  let id = u32(-row_max(select(NEG_INF, -f32(bi), bi != 0xffffffffu && best == top), t));
  let mx = row_max(m, t);
  var acc = 0.0;
  for (var i = t; i < nv; i += WG) { acc += hsum(exp(x[off_x + row * nv + i] - mx)); }
  let total = row_sum(acc, t);
  if (t == 0u) {
    ids[off_ids + row * extra(4u) + extra(9u)] = i32(id);
    logps[off_logps + row * extra(5u) + extra(9u)] = component(x[off_x + row * nv + id / WIDTH], id % WIDTH) - (mx + log(total));
    let d = done[off_done + row];
    feed[off_feed + row] = select(i32(id), i32(extra(6u)), d != 0.0);
    if (extra(8u) != 0u) { done[off_done + row] = max(d, select(0.0, 1.0, id == extra(7u))); }
  }`;

/**
 * x: logits (B, V), rows contiguous; mask: (V,) added to the scores before the draw (0 or −∞), or
 * null. Writes the targets as the header describes.
 */
export function runSampleStep(dev: Device, op: string, x: View, mask: View | null, out: SampleTargets, s: SampleSettings): void {
  const [B, V] = x.shape;
  launchRows(dev, op, 'sample', SAMPLE_STEP, [
    { name: 'x', view: x, type: 'V' },
    // without a mask the logits fill its binding (the body does not read it)
    { name: 'mask', view: mask ?? x, type: 'V' },
    { name: 'ids', view: out.ids, type: 'i32', write: true },
    { name: 'logps', view: out.logProbs, type: 'f32', write: true },
    { name: 'done', view: out.done, type: 'f32', write: true },
    { name: 'feed', view: out.feed, type: 'i32', write: true },
  ], B, V, [s.key[0], s.key[1], f32Bits(s.temperature), mask ? 1 : 0, out.ids.strides[0], out.logProbs.strides[0], s.padId, s.eosId ?? 0, s.eosId === undefined ? 0 : 1, s.step],
  false, wgslSource('threefry'));
}
