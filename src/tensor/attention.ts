// The attention op: fused scaled-dot-product attention (FlashAttention-2 style) with causal,
// prefix-LM and key-valid (padding) masks, and its gradient. Kernels in src/kernels/attention.ts.
import type { Device } from '../gpu/device.js';
import { TrimpiError, check, fmtShape } from '../gpu/errors.js';
import { isGradEnabled, record } from './autograd.js';
import type { GradContext } from './gradients.js';
import { Tensor } from './tensor.js';
import type { View } from '../kernels/kernel.js';
import { ATTENTION_MAX_D, AttentionMask, AttentionProblem, runAttentionBackward, runAttentionForward } from '../kernels/attention.js';

/** Options of attention(): scale and masks. */
export interface AttentionOptions {
  /** Softmax scale, default 1/sqrt(D). */
  scale?: number;
  /** Causal: query i (of Tq) may attend key j iff j <= i + (Tk - Tq) (queries are the last Tq positions: KV-cache decode works). */
  causal?: boolean;
  /**
   * Prefix-LM mask: keys j < prefixLength[b] are visible to every query of batch b (a bidirectional image
   * prefix); the rest follows `causal`. A number (same for the batch) or an i32 Tensor (B,). Implies causal for j >= prefix.
   */
  prefixLength?: number | Tensor;
  /**
   * Key-valid mask (B, Tk), f32 or i32: nonzero = a real key, 0 = padding (never attended). The
   * opposite polarity of PyTorch's key_padding_mask (true = ignore): name and values say what 1 means.
   */
  keyValid?: Tensor;
}

const OP = 'attention';

const view = (t: Tensor): View => ({ buffer: t.buffer, dtype: t.dtype, shape: t.shape, strides: t.strides, offset: t.offset });

/** The problem as the kernels see it: `causal` implied by a prefix, the masks as views. */
function problem(q: Tensor, k: Tensor, opts: { scale: number; causal: boolean; prefix: number | Tensor | null; pad: Tensor | null }): AttentionProblem {
  const [B, H, Tq, D] = q.shape;
  const Tk = k.shape[2];
  const causal = opts.causal || opts.prefix !== null;
  const mask: AttentionMask = {
    prefix: !causal ? Tk : opts.prefix === null ? 0 : typeof opts.prefix === 'number' ? opts.prefix : view(opts.prefix),
    keyValid: opts.pad ? view(opts.pad) : null,
  };
  return { B, H, Tq, Tk, D, scale: opts.scale, mask };
}

/**
 * Fused scaled-dot-product attention (FlashAttention-2 style).
 * q: (B, H, Tq, D), k and v: (B, H, Tk, D), f32, any strides (read in place when each row is contiguous
 * and 16-byte aligned with D % 4 == 0, else through a zero-padded copy made inside).
 * out: (B, H, Tq, D) = softmax(scale * q k^T + mask) v. D up to 128. Memory O(T): the (Tq, Tk)
 * scores are never materialised; the forward saves only the logsumexp of each row for the backward.
 * A query row whose keys are all masked outputs zeros (and gets zero gradient).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  for (const [name, x] of [['q', q], ['k', k], ['v', v]] as const) {
    check(x instanceof Tensor, OP, () => `${name} must be a tensor`);
    x.assertAlive(OP);
    check(x.dtype === 'f32', OP, () => `${name} must be an f32 tensor, got ${x.describe()}`);
    check(x.ndim === 4, OP, () => `${name} must have shape (B, H, T, D), got ${x.describe()}`);
  }
  const dev: Device = q.device;
  for (const x of [k, v, opts.keyValid, opts.prefixLength]) {
    if (x instanceof Tensor && x.device !== dev) throw new TrimpiError(OP, `tensors are on different devices (${x.describe()} is not on q's device)`);
  }
  const shapes = `q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`;
  const [B, H, Tq, D] = q.shape;
  const Tk = k.shape[2];
  check(k.shape[0] === B && k.shape[1] === H && k.shape[3] === D, OP,
    () => `k must be (B, H, Tk, D) with q's B, H and D: got ${shapes}`);
  check(v.shape.every((d, i) => d === k.shape[i]), OP, () => `v must have k's shape (B, H, Tk, D): got ${shapes}`);
  check(D >= 1 && D <= ATTENTION_MAX_D, OP, () => `head dimension D = ${D} is not supported (1 <= D <= ${ATTENTION_MAX_D}): got ${shapes}`);

  const scale = opts.scale ?? 1 / Math.sqrt(D);
  check(typeof scale === 'number' && Number.isFinite(scale), OP, () => `scale must be a finite number, got ${String(opts.scale)}`);
  const causal = opts.causal ?? false;
  check(typeof causal === 'boolean', OP, () => `causal must be a boolean, got ${String(causal)}`);

  const pad = opts.keyValid ?? null;
  if (pad !== null) {
    check(pad instanceof Tensor, OP, () => 'keyValid must be a tensor of shape (B, Tk)');
    pad.assertAlive(OP);
    check(pad.ndim === 2 && pad.shape[0] === B && pad.shape[1] === Tk, OP,
      () => `keyValid must have shape (B, Tk) = ${fmtShape([B, Tk])}, got ${pad.describe()} (${shapes})`);
  }
  const prefix = opts.prefixLength ?? null;
  if (prefix instanceof Tensor) {
    prefix.assertAlive(OP);
    check(prefix.dtype === 'i32', OP, () => `prefixLength must be a number or an i32 tensor of shape (B,) = ${fmtShape([B])}, got ${prefix.describe()}`);
    check(prefix.ndim === 1 && prefix.shape[0] === B, OP,
      () => `prefixLength must have shape (B,) = ${fmtShape([B])}, got ${prefix.describe()} (${shapes})`);
  } else if (prefix !== null) {
    check(typeof prefix === 'number' && Number.isInteger(prefix) && prefix >= 0, OP,
      () => `prefixLength must be a non-negative integer or an i32 tensor of shape (B,), got ${String(prefix)}`);
  }

  const p = problem(q, k, { scale, causal, prefix, pad });
  const out = Tensor.empty([B, H, Tq, D], 'f32', dev);
  // row 0: logsumexp of each query row (saved for the backward); row 1: Delta, filled by the backward
  const stats = Tensor.empty([2, B, H, Tq], 'f32', dev);
  runAttentionForward(dev, OP, p, view(out), view(stats), view(q), view(k), view(v));
  if (!isGradEnabled() || ![q, k, v].some((x) => x.requiresGrad)) {
    stats.dispose();
    return out;
  }
  return record(OP, [q, k, v, pad, prefix instanceof Tensor ? prefix : null], out, { stats, scale, causal, prefix: typeof prefix === 'number' ? prefix : null });
}

/** [dq, dk, dv, null, null] for attention (the GRAD_RULES entry), by the FlashAttention-2 backward kernels. */
export function attentionBackward(g: Tensor, { inputs, out, saved }: GradContext): (Tensor | null)[] {
  const [q, k, v, pad, prefixT] = inputs as [Tensor, Tensor, Tensor, Tensor | null, Tensor | null];
  const { stats, scale, causal, prefix } = saved as { stats: Tensor; scale: number; causal: boolean; prefix: number | null };
  const op = 'attention.backward';
  for (const x of [g, out, stats]) x.assertAlive(op);
  const dev = q.device;
  const p = problem(q, k, { scale, causal, prefix: prefixT ?? prefix, pad });
  const [B, H, Tq, D] = q.shape;
  const Tk = k.shape[2];
  const dq = q.requiresGrad ? Tensor.empty([B, H, Tq, D], 'f32', dev) : null;
  const needKV = k.requiresGrad || v.requiresGrad;
  const dkv = needKV ? Tensor.empty([2, B, H, Tk, D], 'f32', dev) : null;
  const o = out.isContiguous && out.offset === 0 ? out : null;
  if (!o) throw new TrimpiError(op, `the attention output ${out.describe()} is expected to be contiguous`);
  runAttentionBackward(dev, op, p, view(stats), view(o), view(g), view(q), view(k), view(v), dq ? view(dq) : null, dkv ? view(dkv) : null);
  let dk: Tensor | null = null;
  let dv: Tensor | null = null;
  if (dkv) {
    const n = B * H * Tk * D;
    const strides = dkv.strides.slice(1);
    if (k.requiresGrad) dk = dkv.view_([B, H, Tk, D], strides, 0);
    if (v.requiresGrad) dv = dkv.view_([B, H, Tk, D], strides, n);
    dkv.dispose();
  }
  return [dq, dk, dv, null, null];
}
