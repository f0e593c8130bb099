// LoRA (Hu et al., 2021): low-rank adapters on the Linear layers of a model. TriMPI fine-tunes with
// rank 8 on every linear layer and merges the adapters into the weights before RL.
//
// Each adapted Linear computes y = act(x W + b + (alpha / r) · (dropout(x) A) B), with A (in, r)
// drawn at random and B (r, out) zeros, so a freshly adapted model computes exactly the base model.
// The adapters live on the Linear itself (Linear.attachLora): A and B are its parameters `lora_A`
// and `lora_B`, so namedParameters, checkpoints and the optimizer's state see them under names like
// `decoder.blocks.0.attn.qkv.lora_A`. Every parameter of the base model is frozen (requiresGrad
// false: no gradient is computed for it, and parameterGroups / Trainer leave it out), so a Trainer
// built after applyLora trains the adapters only. The tied output head of the decoder is the token
// embedding, not a Linear: it gets no adapter.
//
// Checkpoints: saveCheckpoint writes the adapters beside the frozen weights and records each adapted
// layer's rank and alpha in config.json; loadCheckpoint loads them into a model adapted the same way
// (applyLora first) and refuses, with the layers named, a model whose adapters differ. To ship a
// plain model, merge() before saving.
import { check } from '../gpu/errors.js';
import { randn, zeros } from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { Linear, Module } from './module.js';
import { stepSeed } from './train.js';

/** Options of applyLora. */
export interface LoraOptions {
  /** r, the adapters' rank: a positive integer <= min(in, out) of every adapted layer (TriMPI: 8). */
  rank: number;
  /**
   * The adapter's output is scaled by alpha / rank. Default 2 · rank (scale 2: the usual alpha 16
   * for rank 8), so changing the rank keeps the scale.
   */
  alpha?: number;
  /** Dropout on each adapter's input in train mode (default 0; eval mode never drops). */
  dropout?: number;
  /**
   * Which Linear layers get an adapter, by dotted module name (e.g. `decoder.blocks.0.mlp.fc`,
   * `vision.patch.proj`, `projector`). Default: all of them.
   */
  include?: (name: string, layer: Linear) => boolean;
  /**
   * Seed of the A initialisation (layer i draws from stepSeed(seed, i), whatever else ran before).
   * Default: the engine's global random stream (set by manualSeed).
   */
  seed?: number;
}

/** The rank and alpha of one adapted layer, as recorded in a checkpoint's config.json. */
export interface LoraLayerConfig {
  rank: number;
  alpha: number;
}

/**
 * Adds low-rank adapters to the Linear layers of `model` and freezes every base parameter.
 *
 * For each selected Linear (in → out): A (in, r) ~ N(0, 1 / (3 · in)) (the variance of the
 * reference implementation's Kaiming-uniform init), B (r, out) = 0; the layer then computes
 * y = act(x W + b + (alpha / r) · (dropout(x) A) B) for x (..., in) → y (..., out). Only A and B
 * require gradients. Throws a TrimpiError (op `applyLora`) for a rank that is not a positive
 * integer <= min(in, out) of some selected layer, when nothing is selected, and when the model
 * already has adapters (merge() or dispose() the first handle before applying again).
 *
 * Build the Trainer (or AdamW over `handle.parameters()`) after this call.
 *
 * @example
 * const model = new nn.VisionLanguageModel(cfg);
 * const lora = nn.applyLora(model, { rank: 8 });   // alpha 16: scale 2
 * const trainer = new nn.Trainer(model, { lr: 1e-3, totalSteps: 100 }); // adapters only
 * for (let s = 0; s < 100; s++) trainer.trainStep(batches, lossOf);
 * trainer.dispose();
 * lora.merge();                                    // W ← W + 2 · A B, adapters freed, base unfrozen
 */
export function applyLora(model: Module, opts: LoraOptions): LoraHandle {
  const op = 'applyLora';
  const { rank } = opts;
  const alpha = opts.alpha ?? 2 * rank;
  const dropout = opts.dropout ?? 0;
  check(Number.isInteger(rank) && rank > 0, op, () => `rank must be a positive integer, got ${rank}`);
  check(Number.isFinite(alpha) && alpha > 0, op, () => `alpha must be a positive number, got ${alpha}`);
  check(dropout >= 0 && dropout < 1, op, () => `dropout must be in [0, 1), got ${dropout}`);
  const linears = model.namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear);
  const adapted = linears.find(([, l]) => l.lora !== null);
  check(adapted === undefined, op,
    () => `the model already has LoRA adapters (e.g. on '${adapted![0]}', rank ${adapted![1].lora!.rank}): merge() or dispose() the first handle before applying again`);
  const selected = linears.filter(([name, l]) => opts.include?.(name, l) ?? true);
  check(selected.length > 0, op, () => `no Linear layer selected (the model has ${linears.length}${opts.include ? ', none passed include' : ''})`);
  for (const [name, l] of selected) {
    check(rank <= Math.min(l.inFeatures, l.outFeatures), op,
      () => `rank ${rank} exceeds min(in, out) = ${Math.min(l.inFeatures, l.outFeatures)} of '${name || '(the model)'}' (${l.inFeatures} → ${l.outFeatures})`);
  }
  // freeze the base model, remembering what to restore
  const frozen = model.namedParameters().map(([, p]) => [p.value, p.value.requiresGrad] as [Tensor, boolean]);
  for (const [t] of frozen) {
    t.requiresGrad_(false);
    t.zeroGrad();
  }
  selected.forEach(([, l], i) => {
    const A = randn([l.inFeatures, rank], { std: 1 / Math.sqrt(3 * l.inFeatures), seed: opts.seed === undefined ? undefined : stepSeed(opts.seed, i) });
    l.attachLora(A, zeros([rank, l.outFeatures]), { alpha, dropout });
  });
  return new LoraHandle(new Map(selected), { rank, alpha, dropout }, frozen);
}

/**
 * The adapters applyLora added to a model: their parameters for an optimizer, and merge() (fold
 * them into the weights) or dispose() (drop them). Either one ends the handle: the adapters are
 * freed and the base parameters require gradients again as before applyLora.
 *
 * @example
 * const lora = nn.applyLora(model, { rank: 8, include: (name) => name.startsWith('decoder.') });
 * const opt = new nn.AdamW(lora.parameters(), { lr: 1e-3 }); // [A0, B0, A1, B1, ...]
 * console.log(lora.numParameters);                          // Σ rank · (in + out)
 * lora.merge();
 */
export class LoraHandle {
  /** The rank r of every adapter. */
  readonly rank: number;
  readonly alpha: number;
  /** alpha / rank, the factor on (x A) B. */
  readonly scale: number;
  readonly dropout: number;
  /** Trainable scalars: Σ rank · (in + out) over the adapted layers. */
  readonly numParameters: number;
  private live = true;

  /** Built by applyLora (`layers`: the adapted Linears by dotted name; `frozen`: each base parameter and its requiresGrad before). */
  constructor(
    readonly layers: ReadonlyMap<string, Linear>,
    opts: { rank: number; alpha: number; dropout: number },
    private readonly frozen: readonly (readonly [Tensor, boolean])[],
  ) {
    this.rank = opts.rank;
    this.alpha = opts.alpha;
    this.scale = opts.alpha / opts.rank;
    this.dropout = opts.dropout;
    this.numParameters = [...layers.values()].reduce((n, l) => n + opts.rank * (l.inFeatures + l.outFeatures), 0);
  }

  /** False once merge() or dispose() ran. */
  get active(): boolean {
    return this.live;
  }

  /** The trainable tensors, A (in, r) then B (r, out) of each layer in module order (for an optimizer). */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** The trainable tensors by their names in the model (`<layer>.lora_A`, `<layer>.lora_B`). */
  namedParameters(): [string, Tensor][] {
    this.ensureLive('LoraHandle.parameters');
    const prefix = (name: string): string => (name ? `${name}.` : '');
    return [...this.layers].flatMap(([name, l]) => [[`${prefix(name)}lora_A`, l.lora!.A], [`${prefix(name)}lora_B`, l.lora!.B]] as [string, Tensor][]);
  }

  /**
   * Folds every adapter into its layer's weight in place, W (in, out) ← W + scale · A B, then frees
   * the adapters and unfreezes the base parameters. The model then computes what the adapted model
   * did (to f32 rounding) and is a plain model again (checkpoints, RL). Dispose any optimizer over
   * the adapters first: it holds freed tensors afterwards.
   */
  merge(): void {
    this.ensureLive('LoraHandle.merge');
    this.release(true);
  }

  /** Drops the adapters without merging (the model is the base model again) and unfreezes it. Idempotent. */
  dispose(): void {
    if (this.live) this.release(false);
  }

  private ensureLive(op: string): void {
    check(this.live, op, () => 'the adapters were already merged or disposed');
  }

  private release(merge: boolean): void {
    this.live = false;
    for (const l of this.layers.values()) if (l.lora) l.detachLora({ merge });
    for (const [t, requiresGrad] of this.frozen) if (!t.isDisposed) t.requiresGrad_(requiresGrad);
  }
}

/**
 * Rank and alpha of every Linear of `model` that has an adapter, by dotted layer name ({} when none);
 * saveCheckpoint records it and loadCheckpoint compares it.
 *
 * @example
 * nn.applyLora(model, { rank: 8 });
 * nn.loraLayers(model)['decoder.blocks.0.attn.qkv']; // { rank: 8, alpha: 16 }
 */
export function loraLayers(model: Module): Record<string, LoraLayerConfig> {
  const out: Record<string, LoraLayerConfig> = {};
  for (const [name, m] of model.namedModules()) {
    if (m instanceof Linear && m.lora) out[name] = { rank: m.lora.rank, alpha: m.lora.alpha };
  }
  return out;
}
