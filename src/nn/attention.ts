// Multi-head self-attention on the fused attention kernel (causal, key-valid and prefix masks; an
// optional KV cache for generation) and the pre-LN transformer block.
import { attention } from '../tensor/attention.js';
import { isGradEnabled } from '../tensor/autograd.js';
import { check, checkNumber, fmtShape } from '../gpu/errors.js';
import { keep } from '../tensor/memory.js';
import { assign, ones, permute, reshape, rope, ropeInto, slice, zeros } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import { Dropout, LayerNorm, Linear, MLP, Module, checkSize, checkStd } from './module.js';
import { checkOptions, checkTensor } from '../tensor/validate.js';

/**
 * Keys and values of every layer for incremental decoding: one (2, B, H, capacity, D) tensor per
 * layer (keys, then values), written in place at [length, length + T) by each forward, plus a
 * (B, capacity) key-valid mask (1 = a real key). Keys and values share a tensor so that a step
 * writes both in one copy; each (b, h) keeps its positions contiguous, the order the decode
 * attention kernel streams them in (a (B, T, 2C) layout, written as the projection emits it, made
 * that kernel slower than the copy it saved). All sequences of a batch share one length: prompts
 * are left-padded, the padding masked out. GPU memory is explicit: dispose() frees it.
 */
export class KVCache {
  /** Per layer: (2, B, H, capacity, D) = [keys, values]. */
  readonly entries: Tensor[];
  /** (B, capacity) f32 key-valid mask: 1 = a real key, 0 = padding (never attended). Starts all ones. */
  readonly keyValid: Tensor;
  /** Positions filled so far (the same for every sequence). */
  length = 0;

  constructor(
    readonly layers: number,
    readonly batch: number,
    readonly heads: number,
    readonly capacity: number,
    readonly headDim: number,
  ) {
    const op = 'KVCache';
    checkNumber(op, 'layers', layers, { integer: true, min: 0 });
    for (const [name, v] of [['batch', batch], ['heads', heads], ['capacity', capacity], ['headDim', headDim]] as const) checkSize(op, name, v);
    const made: Tensor[] = [];
    const make = (t: Tensor): Tensor => {
      made.push(t);
      return keep(t);
    };
    try {
      this.entries = Array.from({ length: layers }, () => make(zeros([2, batch, heads, capacity, headDim])));
      this.keyValid = make(ones([batch, capacity]));
    } catch (e) {
      for (const t of made) t.dispose(); // nothing leaks from a cache that could not be built
      throw e;
    }
  }

  /** The key-valid mask over the filled positions plus `extra` new ones: (B, length + extra). */
  keyValidView(extra: number): Tensor {
    return slice(this.keyValid, 1, 0, this.length + extra);
  }

  dispose(): void {
    for (const t of [...this.entries, this.keyValid]) t.dispose();
  }
}

/** Keys (i = 0) or values (i = 1) of (2, B, H, capacity, D) cache entries over [0, length): a (B, H, length, D) view. */
function cached(entries: Tensor, i: number, length: number): Tensor {
  const [, B, H, , D] = entries.shape;
  return reshape(slice(slice(entries, 0, i, i + 1), 3, 0, length), [B, H, length, D]);
}

/** Where a forward writes into a KV cache: the layer's (2, B, H, capacity, D) entries and the first position to write. */
export interface LayerCache {
  entries: Tensor;
  start: number;
}

/** The masks of a self-attention forward (passed down the transformer blocks). */
export interface AttentionMasks {
  /** Causal (default true for the decoder, false for the ViT). */
  causal: boolean;
  /** Key-valid mask (B, Tk): nonzero = a real key, 0 = padding (never attended); with a cache, Tk = start + T. */
  keyValid?: Tensor;
  /** Keys j < prefixLength are visible to every query (prefix-LM); a number or an i32 (B,) tensor. */
  prefixLength?: number | Tensor;
  /** Rotary positions of this call's T slots: cos (B, 1, T, D/2) and sinSigned (B, 1, T, 2, D/2) = (−sin, +sin) (rotaryTables in vlm.ts). */
  rotary?: { cos: Tensor; sinSigned: Tensor };
}

/** Multi-head self-attention: fused qkv projection, the fused attention kernel, output projection and dropout. */
export class MultiHeadAttention extends Module {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly drop: Dropout;
  readonly headDim: number;

  constructor(
    readonly dim: number,
    readonly heads: number,
    opts: { dropout?: number; std?: number; projStd?: number } = {},
  ) {
    super();
    checkSize('MultiHeadAttention', 'dim', dim);
    checkSize('MultiHeadAttention', 'heads', heads);
    check(dim % heads === 0, 'MultiHeadAttention', () => `width ${dim} must be a multiple of the number of heads ${heads}`);
    checkStd('MultiHeadAttention', 'std', opts?.std);
    checkStd('MultiHeadAttention', 'projStd', opts?.projStd);
    this.headDim = dim / heads;
    const drop = new Dropout(opts.dropout ?? 0); // checks p; holds no GPU memory
    try {
      this.qkv = this.addModule('qkv', new Linear(dim, 3 * dim, { std: opts.std }));
      this.proj = this.addModule('proj', new Linear(dim, dim, { std: opts.projStd ?? opts.std }));
      this.drop = this.addModule('drop', drop);
    } catch (e) {
      throw this.abandon(e);
    }
  }

  /**
   * x is (B, T, C) → (B, T, C). With `cache`, this call's keys and values are written at
   * [start, start + T) of the layer's cache and the queries attend to all of [0, start + T)
   * (causal with Tq < Tk treats the queries as the last T positions). The cache path runs without
   * gradients (generation only).
   */
  forward(x: Tensor, masks: AttentionMasks, cache?: LayerCache): Tensor {
    checkTensor('MultiHeadAttention.forward', 'x', x);
    checkOptions('MultiHeadAttention.forward', masks);
    const op = 'MultiHeadAttention.forward';
    check(x.ndim === 3 && x.shape[2] === this.dim, op, () => `x must be (B, T, ${this.dim}), got ${x.describe()}`);
    const [B, T, C] = x.shape;
    const H = this.heads;
    const D = this.headDim;
    const qkv = this.qkv.forward(x); // (B, T, 3C)
    // (B, T, C) slices viewed as (B, T, H, D) then (B, H, T, D): no copies, the kernel reads strides
    const heads = (i: number): Tensor => permute(reshape(slice(qkv, 2, i * C, (i + 1) * C), [B, T, H, D]), [0, 2, 1, 3]);
    const r = masks.rotary;
    const q = r ? rope(heads(0), r.cos, r.sinSigned) : heads(0);
    const kProj = heads(1);
    // with a cache, the rotated keys are written to it (ropeInto below) and read back from there
    let k = r && !cache ? rope(kProj, r.cos, r.sinSigned) : kProj;
    let v = heads(2);
    if (cache) {
      check(!isGradEnabled() || !x.requiresGrad, op, () => 'the KV-cache path is for generation: run it under noGrad()');
      const e = cache.entries;
      check(e.ndim === 5 && e.shape[0] === 2 && e.shape[1] === B && e.shape[2] === H && e.shape[4] === D && cache.start + T <= e.shape[3], op,
        () => `cache ${fmtShape(e.shape)} cannot take positions [${cache.start}, ${cache.start + T}) of a (2, B, H, T, D) = ${fmtShape([2, B, H, T, D])} input`);
      const at = slice(e, 3, cache.start, cache.start + T);
      if (r) {
        // keys rotated straight into their slots (from the projection), values copied
        ropeInto(reshape(slice(at, 0, 0, 1), [B, H, T, D]), kProj, r.cos, r.sinSigned);
        assign(slice(at, 0, 1, 2), reshape(v, [1, B, H, T, D]));
      } else {
        // this call's keys and values, (B, T, 2C) in the projection, as (2, B, H, T, D): one copy
        assign(at, permute(reshape(slice(qkv, 2, C, 3 * C), [B, T, 2, H, D]), [2, 0, 3, 1, 4]));
      }
      k = cached(e, 0, cache.start + T);
      v = cached(e, 1, cache.start + T);
    }
    const y = attention(q, k, v, { causal: masks.causal, keyValid: masks.keyValid, prefixLength: masks.prefixLength }); // (B, H, T, D)
    const merged = reshape(permute(y, [0, 2, 1, 3]), [B, T, C]); // re-assemble the heads side by side
    return this.drop.forward(this.proj.forward(merged));
  }
}

/**
 * The `layers` blocks of a pre-LN stack (the ViT's and the decoder's). GPT-2 initialisation: residual
 * projections at std / sqrt(2·layers), so the residual stream's variance stays put. Each block is
 * handed to `register` (the owner's addModule, as `blocks.i`) as soon as it exists, so an owner whose
 * constructor fails half-way frees what it had made.
 */
export function blockStack(register: (name: string, block: TransformerBlock) => TransformerBlock,
  o: { layers: number; dim: number; heads: number; mlpRatio?: number; dropout?: number; std: number; eps?: number }): TransformerBlock[] {
  const residualStd = o.std / Math.sqrt(2 * Math.max(1, o.layers));
  return Array.from({ length: o.layers }, (_, i) =>
    register(`blocks.${i}`, new TransformerBlock(o.dim, o.heads, { mlpRatio: o.mlpRatio, dropout: o.dropout, std: o.std, residualStd, eps: o.eps })));
}

/** Pre-LN transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)). */
export class TransformerBlock extends Module {
  readonly ln1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ln2: LayerNorm;
  readonly mlp: MLP;

  constructor(dim: number, heads: number, opts: { mlpRatio?: number; dropout?: number; std?: number; residualStd?: number; eps?: number } = {}) {
    super();
    const op = 'TransformerBlock';
    // every argument checked before the first parameter exists (the sublayers check theirs again)
    checkSize(op, 'dim', dim);
    checkSize(op, 'heads', heads);
    check(dim % heads === 0, op, () => `width ${dim} must be a multiple of the number of heads ${heads}`);
    const ratio = opts?.mlpRatio;
    check(ratio === undefined || (typeof ratio === 'number' && Number.isFinite(ratio) && ratio > 0), op, () => `mlpRatio must be a finite number > 0, got ${String(ratio)}`);
    const p = opts?.dropout;
    check(p === undefined || (typeof p === 'number' && p >= 0 && p < 1), op, () => `dropout must be in [0, 1), got ${String(p)}`);
    checkStd(op, 'std', opts?.std);
    checkStd(op, 'residualStd', opts?.residualStd);
    checkNumber(op, 'eps', opts?.eps, { min: 0, optional: true });
    const hidden = Math.round((opts.mlpRatio ?? 4) * dim);
    check(hidden >= 1, op, () => `mlpRatio ${opts.mlpRatio} gives an MLP of ${hidden} units for width ${dim}`);
    const init = { dropout: opts.dropout, std: opts.std, projStd: opts.residualStd };
    try {
      this.ln1 = this.addModule('ln1', new LayerNorm(dim, opts.eps));
      this.attn = this.addModule('attn', new MultiHeadAttention(dim, heads, init));
      this.ln2 = this.addModule('ln2', new LayerNorm(dim, opts.eps));
      this.mlp = this.addModule('mlp', new MLP(dim, hidden, init));
    } catch (e) {
      throw this.abandon(e);
    }
  }

  /** x is (B, T, C) → (B, T, C). */
  forward(x: Tensor, masks: AttentionMasks, cache?: LayerCache): Tensor {
    checkTensor('TransformerBlock.forward', 'x', x);
    checkOptions('TransformerBlock.forward', masks);
    return this.forwardNormed(x, this.ln1.forward(x), masks, cache, null).out;
  }

  /**
   * The block with its input norm already applied: x (B, T, C) the residual stream, nx = ln1(x) →
   * out = h + mlp(ln2(h)) with h = x + attn(nx), and `next`(out) (the following block's ln1 or the
   * final norm; null: not computed). Each residual add shares one kernel with the norm after it
   * (addLayerNorm), so a stack of blocks runs no separate add.
   */
  forwardNormed(x: Tensor, nx: Tensor, masks: AttentionMasks, cache: LayerCache | undefined, next: LayerNorm | null): { out: Tensor; normed: Tensor | null } {
    const { sum: h, out: nh } = this.ln2.forwardAdd(x, this.attn.forward(nx, masks, cache));
    const m = this.mlp.forward(nh);
    if (!next) return { out: h.add(m), normed: null };
    const { sum: out, out: normed } = next.forwardAdd(h, m);
    return { out, normed };
  }
}

/**
 * x (B, T, C) through pre-LN blocks and a final norm → final(blocks(x)) (B, T, C); `cacheOf(i)` gives
 * block i its KV-cache slot. Each residual add runs fused with the norm that follows it.
 */
export function runBlocks(blocks: readonly TransformerBlock[], final: LayerNorm, x: Tensor, masks: AttentionMasks, cacheOf: (i: number) => LayerCache | undefined = () => undefined): Tensor {
  let h = x;
  let nh = (blocks[0]?.ln1 ?? final).forward(x);
  blocks.forEach((block, i) => {
    const r = block.forwardNormed(h, nh, masks, cacheOf(i), blocks[i + 1]?.ln1 ?? final);
    h = r.out;
    nh = r.normed as Tensor;
  });
  return nh;
}
