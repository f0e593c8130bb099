// Modules: named parameters, train/eval mode, state dicts; and the basic layers (Linear, Embedding,
// LayerNorm, Dropout, MLP). llm.c style: each forward composes engine ops, whose autograd records what
// the backward needs, so no module writes a backward pass.
//
// Memory: parameters are created once, keep()-ed (they survive every tidy()) and freed by
// Module.dispose(). A forward creates only intermediates: call it inside the caller's tidy().
// Constructors check their arguments before creating any parameter, and a constructor that throws
// anyway (e.g. a buffer too large for the device) frees what it had created: `catch (e) { throw
// this.abandon(e); }` around its body, so a failed `new` leaks no GPU memory.
import { noGrad } from '../tensor/autograd.js';
import { check, checkNumber, fmtShape } from '../gpu/errors.js';
import { keep, tidy } from '../tensor/memory.js';
import { add, addLayerNorm, assign, dropout, embedding, full, gelu, layerNorm, linear, matmul, mul, randn, tensor, zeros } from '../tensor/ops.js';
import { Tensor } from '../tensor/tensor.js';
import type { DType } from '../gpu/dtype.js';
import { checkTensor } from '../tensor/validate.js';

/**
 * A trainable tensor and whether AdamW decays it (no decay on norms, biases and embeddings). A
 * parameter whose tensor has `requiresGrad` false is frozen: it gets no gradient and
 * `parameterGroups` / `Trainer` leave it out (applyLora freezes the base model this way).
 */
export class Parameter {
  constructor(
    readonly value: Tensor,
    readonly decay: boolean,
  ) {}

  /** True when the tensor does not require gradients (not trained). */
  get frozen(): boolean {
    return !this.value.requiresGrad;
  }
}

/** Host-side tensor data, as read from a checkpoint (row-major). */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: Float32Array | Int32Array;
}

/**
 * The base of every layer: named parameters and submodules (registered with addParameter /
 * addModule), train()/eval() mode, state export and import, dispose().
 */
export abstract class Module {
  /** Train mode (dropout on) or eval mode (dropout off); set with train()/eval(). */
  training = true;
  private readonly ownParameters = new Map<string, Parameter>();
  private readonly childModules = new Map<string, Module>();
  private disposed = false;

  /** Registers a parameter: keep()s it (it outlives the caller's tidy) and marks it trainable. */
  protected addParameter(name: string, value: Tensor, opts: { decay: boolean }): Tensor {
    check(!this.ownParameters.has(name) && !this.childModules.has(name), `${this.constructor.name}.addParameter`, () => `the name '${name}' is already used`);
    keep(value);
    value.requiresGrad_(true);
    value.name = name;
    this.ownParameters.set(name, new Parameter(value, opts.decay));
    return value;
  }

  /** Unregisters a parameter without freeing it: the caller owns (and must dispose) the tensor. */
  protected removeParameter(name: string): Parameter {
    const p = this.ownParameters.get(name);
    check(p !== undefined, `${this.constructor.name}.removeParameter`, () => `there is no parameter '${name}'`);
    this.ownParameters.delete(name);
    return p;
  }

  /** Registers a child module (its parameters are named `name.<param>`). */
  protected addModule<M extends Module>(name: string, module: M): M {
    check(!this.ownParameters.has(name) && !this.childModules.has(name), `${this.constructor.name}.addModule`, () => `the name '${name}' is already used`);
    this.childModules.set(name, module);
    return module;
  }

  /** Every parameter with its dotted name (e.g. `decoder.blocks.0.attn.qkv.weight`), in registration order. */
  namedParameters(prefix = ''): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [n, p] of this.ownParameters) out.push([prefix + n, p]);
    for (const [n, m] of this.childModules) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /**
   * This module and every descendant with its dotted name (this one is `prefix` without its final
   * dot, '' at the root; e.g. `decoder.blocks.0.attn.qkv`), depth first in registration order.
   */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix.endsWith('.') ? prefix.slice(0, -1) : prefix, this]];
    for (const [n, m] of this.childModules) out.push(...m.namedModules(`${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p.value);
  }

  /** Number of scalar parameters. */
  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.numel, 0);
  }

  /** Sets train mode (dropout on) here and in every child. */
  train(on = true): this {
    this.training = on;
    for (const m of this.childModules.values()) m.train(on);
    return this;
  }

  /** Eval mode: dropout off. */
  eval(): this {
    return this.train(false);
  }

  /** The parameter tensors by name (the live tensors, not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map(this.namedParameters().map(([n, p]) => [n, p.value]));
  }

  /**
   * Copies host tensors into the parameters in place (optimizer references stay valid). Every
   * parameter must be present with its exact shape and dtype; with `strict` (default) no extra
   * names are allowed. `source` names the origin in error messages (e.g. a file path).
   */
  loadStateDict(state: ReadonlyMap<string, HostTensor>, opts: { strict?: boolean; source?: string } = {}): void {
    const op = `${this.constructor.name}.loadStateDict`;
    const from = opts.source ? ` in ${opts.source}` : '';
    const params = this.namedParameters();
    const expected = new Set(params.map(([n]) => n));
    const missing = params.map(([n]) => n).filter((n) => !state.has(n));
    check(missing.length === 0, op, () => `missing ${missing.length} tensor(s)${from}: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
    if (opts.strict ?? true) {
      const extra = [...state.keys()].filter((n) => !expected.has(n));
      check(extra.length === 0, op, () => `unexpected tensor(s)${from} that the model does not have: ${extra.slice(0, 8).join(', ')}${extra.length > 8 ? ', ...' : ''}`);
    }
    for (const [name, p] of params) {
      const h = state.get(name)!;
      check(h.dtype === p.value.dtype, op, () => `tensor ${name}${from} has dtype ${h.dtype} but the model expects ${p.value.dtype}`);
      check(h.shape.length === p.value.ndim && h.shape.every((d, i) => d === p.value.shape[i]), op,
        () => `tensor ${name}${from} has shape ${fmtShape(h.shape)} but the model expects ${fmtShape(p.value.shape)}`);
    }
    noGrad(() => tidy(() => {
      for (const [name, p] of params) {
        const h = state.get(name)!;
        assign(p.value, tensor(h.data, { shape: h.shape, dtype: h.dtype, device: p.value.device }));
      }
    }));
  }

  /**
   * For constructors: frees what this module created before an error (its registered parameters
   * and submodules) and returns the error to rethrow, `catch (e) { throw this.abandon(e); }`.
   */
  protected abandon(error: unknown): unknown {
    this.dispose();
    return error;
  }

  /** Frees every parameter (and its gradient). The module cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const p of this.ownParameters.values()) p.value.dispose();
    for (const m of this.childModules.values()) m.dispose();
  }
}

/** The most transformer blocks a ViTEncoder or DecoderLM takes (each holds a dozen GPU buffers). */
export const MAX_LAYERS = 4096;

/** Checks a layer size: a positive integer. */
export function checkSize(op: string, name: string, v: unknown): void {
  checkNumber(op, name, v, { integer: true, min: 1 });
}

/** Checks an optional initialisation standard deviation: a finite number >= 0. */
export function checkStd(op: string, name: string, v: unknown): void {
  checkNumber(op, name, v, { min: 0, optional: true });
}

/** Weight initialisation: N(0, std²) for matrices, zeros for biases. */
export interface InitOptions {
  /** Standard deviation of the weight (default 0.02, GPT-2). */
  std?: number;
}

/**
 * The low-rank adapter of a Linear (see applyLora in lora.ts): the layer computes
 * y = x W + b + scale · (dropout(x) A) B, scale = alpha / rank.
 */
export interface LoraAdapter {
  /** (in, rank), the parameter `lora_A`. */
  readonly A: Tensor;
  /** (rank, out), the parameter `lora_B` (zeros when applied: the layer starts as the base layer). */
  readonly B: Tensor;
  readonly rank: number;
  readonly alpha: number;
  /** alpha / rank. */
  readonly scale: number;
  /** Dropout on the adapter's input in train mode (0: none). */
  readonly dropout: number;
}

/**
 * y = x @ W + b, with an optional fused GELU. W is (in, out): the engine's `linear` layout.
 * With a LoRA adapter attached (applyLora), y = act(x W + b + scale · (dropout(x) A) B).
 */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  private adapter: LoraAdapter | null = null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: InitOptions & { bias?: boolean } = {},
  ) {
    super();
    checkSize('Linear', 'inFeatures', inFeatures);
    checkSize('Linear', 'outFeatures', outFeatures);
    checkStd('Linear', 'std', opts?.std);
    try {
      this.weight = this.addParameter('weight', randn([inFeatures, outFeatures], { std: opts.std ?? 0.02 }), { decay: true });
      this.bias = opts.bias === false ? null : this.addParameter('bias', zeros([outFeatures]), { decay: false });
    } catch (e) {
      throw this.abandon(e);
    }
  }

  /** The attached LoRA adapter, or null. */
  get lora(): LoraAdapter | null {
    return this.adapter;
  }

  /**
   * Attaches a low-rank adapter: A (in, rank) and B (rank, out) become the parameters `lora_A` and
   * `lora_B` of this layer (kept, trainable, weight-decayed like W). Use applyLora rather than this.
   */
  attachLora(A: Tensor, B: Tensor, opts: { alpha: number; dropout?: number }): LoraAdapter {
    const op = 'Linear.attachLora';
    check(this.adapter === null, op, () => `the layer already has a LoRA adapter (rank ${this.adapter!.rank})`);
    const rank = A.shape[1];
    check(A.ndim === 2 && B.ndim === 2 && A.shape[0] === this.inFeatures && B.shape[0] === rank && B.shape[1] === this.outFeatures, op,
      () => `expected A (${this.inFeatures}, r) and B (r, ${this.outFeatures}), got ${A.describe()} and ${B.describe()}`);
    const dropout = opts.dropout ?? 0;
    check(dropout >= 0 && dropout < 1, op, () => `dropout must be in [0, 1), got ${dropout}`);
    this.addParameter('lora_A', A, { decay: true });
    this.addParameter('lora_B', B, { decay: true });
    this.adapter = { A, B, rank, alpha: opts.alpha, scale: opts.alpha / rank, dropout };
    return this.adapter;
  }

  /**
   * Removes the adapter and frees A and B (and their gradients). With `merge`, first folds it into
   * the weight in place: W ← W + scale · A B (the layer then computes what the adapted layer did).
   */
  detachLora(opts: { merge: boolean }): void {
    const a = this.adapter;
    check(a !== null, 'Linear.detachLora', () => 'the layer has no LoRA adapter');
    if (opts.merge) noGrad(() => tidy(() => assign(this.weight, add(this.weight, mul(matmul(a.A, a.B), a.scale)))));
    this.removeParameter('lora_A');
    this.removeParameter('lora_B');
    this.adapter = null;
    a.A.dispose();
    a.B.dispose();
  }

  /** x is (..., in) → (..., out). */
  forward(x: Tensor, activation: 'none' | 'gelu' = 'none'): Tensor {
    checkTensor('Linear.forward', 'x', x);
    const a = this.adapter;
    if (!a) return linear(x, this.weight, this.bias, activation);
    // the low-rank path through the rank-r bottleneck, scaled there (r values a row, not out)
    const xa = linear(this.training && a.dropout > 0 ? dropout(x, a.dropout, true) : x, a.A);
    const y = add(linear(x, this.weight, this.bias), linear(mul(xa, a.scale), a.B));
    return activation === 'gelu' ? gelu(y) : y;
  }
}

/** A lookup table: ids (...) i32 → (..., dim). Never weight-decayed. */
export class Embedding extends Module {
  readonly weight: Tensor;

  constructor(
    readonly count: number,
    readonly dim: number,
    opts: InitOptions = {},
  ) {
    super();
    checkSize('Embedding', 'count', count);
    checkSize('Embedding', 'dim', dim);
    checkStd('Embedding', 'std', opts?.std);
    this.weight = this.addParameter('weight', randn([count, dim], { std: opts.std ?? 0.02 }), { decay: false });
  }

  forward(ids: Tensor): Tensor {
    checkTensor('Embedding.forward', 'ids', ids);
    return embedding(ids, this.weight);
  }
}

/** Layer normalisation over the last dim, with learned scale and shift (never weight-decayed). */
export class LayerNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    checkSize('LayerNorm', 'dim', dim);
    checkNumber('LayerNorm', 'eps', eps, { min: 0 });
    try {
      this.weight = this.addParameter('weight', full([dim], 1), { decay: false });
      this.bias = this.addParameter('bias', zeros([dim]), { decay: false });
    } catch (e) {
      throw this.abandon(e);
    }
  }

  /** x is (..., dim). */
  forward(x: Tensor): Tensor {
    checkTensor('LayerNorm.forward', 'x', x);
    return layerNorm(x, [this.dim], this.weight, this.bias, this.eps);
  }

  /** x, y are (..., dim) → sum = x + y and out = this norm of sum, from one kernel (addLayerNorm). */
  forwardAdd(x: Tensor, y: Tensor): { sum: Tensor; out: Tensor } {
    checkTensor('LayerNorm.forwardAdd', 'x', x);
    return addLayerNorm(x, y, this.weight, this.bias, this.eps);
  }
}

/** Inverted dropout in train mode (the engine's seeded RNG: manualSeed makes it reproducible), identity in eval. */
export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
    check(typeof p === 'number' && p >= 0 && p < 1, 'Dropout', () => `p must be in [0, 1), got ${String(p)}`);
  }

  forward(x: Tensor): Tensor {
    checkTensor('Dropout.forward', 'x', x);
    return this.training && this.p > 0 ? dropout(x, this.p, true) : x;
  }
}

/** The transformer MLP: Linear(C, hidden) + GELU (fused), Linear(hidden, C), dropout. */
export class MLP extends Module {
  readonly fc: Linear;
  readonly proj: Linear;
  readonly drop: Dropout;

  constructor(dim: number, hidden: number, opts: { dropout?: number; std?: number; projStd?: number } = {}) {
    super();
    checkSize('MLP', 'dim', dim);
    checkSize('MLP', 'hidden', hidden);
    checkStd('MLP', 'std', opts?.std);
    checkStd('MLP', 'projStd', opts?.projStd);
    const drop = new Dropout(opts.dropout ?? 0); // checks p; holds no GPU memory
    try {
      this.fc = this.addModule('fc', new Linear(dim, hidden, { std: opts.std }));
      this.proj = this.addModule('proj', new Linear(hidden, dim, { std: opts.projStd ?? opts.std }));
      this.drop = this.addModule('drop', drop);
    } catch (e) {
      throw this.abandon(e);
    }
  }

  /** x is (B, T, C) → (B, T, C). */
  forward(x: Tensor): Tensor {
    checkTensor('MLP.forward', 'x', x);
    return this.drop.forward(this.proj.forward(this.fc.forward(x, 'gelu')));
  }
}
