// Launcher for adamw.wgsl (one fused, in-place AdamW step per parameter tensor).
import type { Device } from '../tensor/device.js';
import { Params, View, fill, grid1d, paramsDecl, wgslSource } from './kernel.js';

export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count (for the bias corrections). */
  step: number;
}

/** p, m, v, grad: contiguous views of the same numel at offset 0; clip: a 1-element f32 buffer view. */
export function runAdamW(dev: Device, op: string, p: View, m: View, v: View, grad: View, clip: View, s: AdamWStep): void {
  const n = p.shape.reduce((a, b) => a * b, 1);
  if (n === 0) return;
  // vec4 elements when n allows (the update is component-wise; a per-lane vec4 load costs what a
  // scalar one does on CPU adapters)
  const width = n % 4 === 0 ? 4 : 1;
  const prm = new Params().u(n / width, 0).f(s.lr, s.beta1, s.beta2, s.eps, s.weightDecay, 1 - s.beta1 ** s.step, 1 - s.beta2 ** s.step);
  const pipe = dev.pipeline(`adamw|${width}`, op, () => fill(wgslSource('adamw'), { PARAMS: paramsDecl(prm.vec4s), V: width === 4 ? 'vec4<f32>' : 'f32' }));
  dev.dispatch(op, pipe, prm.bytes(), [p.buffer, m.buffer, v.buffer, grad.buffer, clip.buffer], grid1d(n / width, 256 * 4, dev.limits.maxComputeWorkgroupsPerDimension));
}
