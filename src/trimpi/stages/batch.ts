// From token sequences to a training batch: the one place where (prompt, response, images) records
// become padded GPU inputs with the positions whose logits the loss needs.
//
// A sequence is prompt ++ response (token ids, one `<image>` per image). Target token i is predicted
// from the logits of token i − 1's LAST expanded slot (an `<image>` before it spans P slots). The
// batch keeps, per row, the R target slots packed left to right: rows (B·R) slot indices for
// `model.forward(inputs, { logitsAt })`, targets (B, R) and a 0/1 mask (B, R). So the output head
// runs on targets only, and every loss reads (B, R) log-probs.
import { check } from '../../gpu/errors.js';
import { exp, logSoftmax, mul, neg, reshape, sum, tensor, tokenLogProbs } from '../../tensor/ops.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { VisionLanguageModel, VlmBatch, VlmInputs } from '../../nn/vlm.js';

/** A token sequence: the prompt (context, not trained on) and the response (trained on). */
export interface SequenceExample {
  prompt: readonly number[];
  response: readonly number[];
}

/** Decoder positions a sequence takes: its tokens, each `<image>` expanded to the model's P patch positions (model.layout). */
export function sequencePositions(model: VisionLanguageModel, seq: SequenceExample): number {
  return model.layout([...seq.prompt, ...seq.response]).ids.length;
}

/** Which tokens are targets: 'response' (SFT, RL) or every text token after the first (VM-CPT). */
export type TargetKind = 'response' | 'text';

/** A host batch: the padded VlmBatch plus the packed target slots. */
export interface TargetBatch {
  batch: VlmBatch;
  /** Targets per row at most (R ≥ 1). */
  R: number;
  /** (B·R) slot in the flattened (B·T) batch whose logits predict each target (0 on padding). */
  rows: Int32Array;
  /** (B·R) target ids (pad id on padding). */
  targets: Int32Array;
  /** (B·R) 1 on real targets. */
  mask: Float32Array;
  /** Per row: the number of targets. */
  counts: number[];
}

/**
 * Pads `examples` (right padding) and packs their targets. imageTokenId marks visual tokens, never a
 * target; kind 'text' makes every non-image token after the first a target (VM-CPT's m_t).
 */
export function targetBatch(model: VisionLanguageModel, examples: readonly SequenceExample[], kind: TargetKind = 'response'): TargetBatch {
  const op = 'targetBatch';
  check(examples.length > 0, op, () => 'no examples given');
  const img = model.config.imageTokenId;
  const seqs = examples.map((e, i) => {
    check(e.response.length > 0 || kind === 'text', op, () => `example ${i} has an empty response`);
    return [...e.prompt, ...e.response];
  });
  const batch = model.prepareBatch(seqs, { padSide: 'right' });
  const targetIdx = examples.map((e, b) => {
    const seq = seqs[b];
    const from = kind === 'response' ? Math.max(1, e.prompt.length) : 1;
    const out: number[] = [];
    for (let i = from; i < seq.length; i++) if (seq[i] !== img) out.push(i);
    return out;
  });
  const R = Math.max(1, ...targetIdx.map((t) => t.length));
  const B = batch.B;
  const rows = new Int32Array(B * R);
  const targets = new Int32Array(B * R).fill(model.config.padId);
  const mask = new Float32Array(B * R);
  targetIdx.forEach((idx, b) => {
    const l = batch.layouts[b];
    idx.forEach((i, j) => {
      // the last expanded slot of token i − 1 (its first slot is positionOf[i − 1])
      const lastSlot = l.positionOf[i] - 1;
      rows[b * R + j] = b * batch.T + batch.padBefore[b] + lastSlot;
      targets[b * R + j] = seqs[b][i];
      mask[b * R + j] = 1;
    });
  });
  return { batch, R, rows, targets, mask, counts: targetIdx.map((t) => t.length) };
}

/** The GPU side of a TargetBatch (create inside the caller's tidy()). */
export interface TargetInputs {
  inputs: VlmInputs;
  /** (B·R) i32 */
  rows: Tensor;
  /** (B, R) i32 */
  targets: Tensor;
  /** (B, R) f32 */
  mask: Tensor;
}

/** Uploads a TargetBatch (ids, positions, padding, image rows, target slots) with its images. */
export function toTargetInputs(model: VisionLanguageModel, tb: TargetBatch, images: Tensor | null): TargetInputs {
  const B = tb.batch.B;
  return {
    inputs: model.toInputs(tb.batch, images),
    rows: tensor(tb.rows, { shape: [B * tb.R], dtype: 'i32' }),
    targets: tensor(tb.targets, { shape: [B, tb.R], dtype: 'i32' }),
    mask: tensor(tb.mask, { shape: [B, tb.R] }),
  };
}

/**
 * log π(target | prefix) of every packed target, (B, R): the model's logits on the target slots only,
 * then the fused log-softmax gather. Padding holds the log-prob of the pad id at slot 0 (masked).
 */
export function targetLogProbs(model: VisionLanguageModel, ti: TargetInputs): Tensor {
  return targetLogProbsAndEntropy(model, ti, false).logp;
}

/**
 * targetLogProbs and, with `entropy`, the entropy of the model's next-token distribution at every
 * target slot, H = −Σ_v p_v log p_v, (B, R) (RL reports it; it is not optimized).
 */
export function targetLogProbsAndEntropy(model: VisionLanguageModel, ti: TargetInputs, entropy = true): { logp: Tensor; entropy: Tensor | null } {
  const [B, R] = ti.targets.shape;
  const logits = reshape(model.forward(ti.inputs, { logitsAt: ti.rows }), [B, R, -1]); // (B, R, V)
  const logp = tokenLogProbs(logits, ti.targets);
  if (!entropy) return { logp, entropy: null };
  const lsm = logSoftmax(logits, -1);
  return { logp, entropy: neg(sum(mul(exp(lsm), lsm), -1)) };
}

/**
 * Sorts sequences by expanded length and groups them so that each group, padded to its longest, has
 * at most `budget` positions (a long policy example does not pad fifteen short questions); `extras`
 * (images, examples) travel with their sequence.
 */
export function microBatches<E>(model: VisionLanguageModel, seqs: readonly SequenceExample[], extras: readonly E[], target: TargetKind, budget: number): { tb: TargetBatch; extras: E[] }[] {
  const P = model.patchesPerImage;
  const img = model.config.imageTokenId;
  const len = (s: SequenceExample): number => s.prompt.length + s.response.length + (P - 1) * [...s.prompt, ...s.response].filter((id) => id === img).length;
  const items = seqs.map((s, i) => ({ s, e: extras[i], n: len(s) })).sort((a, b) => a.n - b.n);
  const out: { tb: TargetBatch; extras: E[] }[] = [];
  let cur: typeof items = [];
  const flush = (): void => {
    if (cur.length) out.push({ tb: targetBatch(model, cur.map((c) => c.s), target), extras: cur.map((c) => c.e) });
    cur = [];
  };
  for (const it of items) {
    if (cur.length > 0 && (cur.length + 1) * it.n > budget) flush();
    cur.push(it);
  }
  flush();
  return out;
}
