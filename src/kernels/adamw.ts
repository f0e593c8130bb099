// Launcher for adamw.wgsl (one fused, in-place AdamW step per parameter tensor).
import type { Device } from '../gpu/device.js';
import { Params, View, fill, grid1d, paramsDecl, wgslSource } from './kernel.js';

/** The host-side hyperparameters of one AdamW update (baked into the kernel's uniforms). */
export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/**
 * The per-step GPU controls shared by every parameter's update (f32 buffer views at offset 0):
 * `clip` (1 element) scales the gradient; `skip` (1 element) non-zero makes the update a no-op;
 * `biasCorrection` (2 elements) holds 1 - beta1^n and 1 - beta2^n for the n updates applied.
 */
export interface AdamWControls {
  clip: View;
  skip: View;
  biasCorrection: View;
}

/** p, m, v, grad: contiguous views of the same numel at offset 0. */
export function runAdamW(dev: Device, op: string, p: View, m: View, v: View, grad: View, ctl: AdamWControls, s: AdamWStep): void {
  const n = p.shape.reduce((a, b) => a * b, 1);
  if (n === 0) return;
  // vec4 elements when n allows (the update is component-wise; a per-lane vec4 load costs what a
  // scalar one does on CPU adapters)
  const width = n % 4 === 0 ? 4 : 1;
  const prm = new Params().u(n / width, 0).f(s.lr, s.beta1, s.beta2, s.eps, s.weightDecay);
  const pipe = dev.pipeline(`adamw|${width}`, op, () => fill(wgslSource('adamw'), { PARAMS: paramsDecl(prm.vec4s), V: width === 4 ? 'vec4<f32>' : 'f32' }));
  dev.dispatch(op, pipe, prm.u32s, [p.buffer, m.buffer, v.buffer, grad.buffer, ctl.clip.buffer, ctl.skip.buffer, ctl.biasCorrection.buffer],
    grid1d(n / width, 256 * 4, dev.limits.maxComputeWorkgroupsPerDimension));
}
