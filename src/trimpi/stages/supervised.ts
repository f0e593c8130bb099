// The supervised stages of the paper's table, one loop for all three:
//   direct SFT   (Q, I) → A             answer-only targets, every train record
//   CoT SFT      (Q, I) → [C; A]        the CoT subset (1/8 of train, as the paper)
//   VM-CPT       (P_T, P_I, I, Q, C, A) every text token a target, visual tokens masked (Eq. 2)
// Losses, as in losses/sft.ts and losses/vmcpt.ts, on the packed target log-probs (stages/batch.ts):
//   SFT     L = −(1/Σ m) Σ m·log p(o_t | Q, I, o_<t)                          token mean
//   VM-CPT  L = −E_x[(1/Σ_t m_t) Σ_t m_t log p(x_t | x_<t)], m_t = 1[x_t ∉ P_I ∪ I]   per-sequence mean
import { aggregateLoss, microBatchScales } from '../losses/aggregate.js';
import { mul, neg } from '../../tensor/ops.js';
import type { Tensor } from '../../tensor/tensor.js';
import { check } from '../../gpu/errors.js';
import { Trainer } from '../../nn/train.js';
import type { VisionLanguageModel } from '../../nn/vlm.js';
import { Tokenizer } from '../data/tokenizer.js';
import { rng } from '../data/rng.js';
import { SequenceExample, TargetBatch, TargetKind, microBatches, sequencePositions, targetLogProbs, toTargetInputs } from './batch.js';
import { MpiData, MpiRecord } from './mpi_data.js';

/** The supervised stages of the table: direct SFT, CoT SFT, VM-CPT. */
export type SupervisedKind = 'direct-sft' | 'cot-sft' | 'vm-cpt';

/** One supervised stage: kind, epochs, batch, lr and warmup, seed and the micro-batch budget. */
export interface SupervisedConfig {
  kind: SupervisedKind;
  epochs: number;
  /** Sequences per optimizer step. */
  batchSize: number;
  lr: number;
  /** Warmup as a fraction of the steps (the paper: 0.1 ratio is common; default 0.05). */
  warmupFraction: number;
  seed: number;
  /** Padded positions per micro-batch at most. */
  microBatchPositions: number;
}

/** A supervised stage's training sequences (those that fit the context), their image keys and target. */
export interface SupervisedSequences {
  kind: SupervisedKind;
  seqs: SequenceExample[];
  images: string[][];
  target: TargetKind;
  /** Sequences left out for not fitting the context, and the longest sequence's positions. */
  dropped: number;
  longest: number;
}

/**
 * The records a kind trains on, and how its sequences are built. Sequences longer than the model's
 * context (a depth-4 policy with its image and CoT for VM-CPT can pass 1,024 positions) are left out
 * and counted in `dropped`, so a stage never fails on one long record an hour in; none fitting is an error.
 */
export function supervisedSequences(kind: SupervisedKind, data: MpiData, tok: Tokenizer, model: VisionLanguageModel): SupervisedSequences {
  const records: MpiRecord[] = kind === 'direct-sft' ? data.train : data.train.filter((r) => r.task !== 'clevr' || r.cot);
  check(records.length > 0, 'supervisedSequences', () => `${kind}: no training records in ${data.dir}`);
  const s = data.sequences(tok, records, { withPolicy: kind === 'vm-cpt', target: kind === 'direct-sft' ? 'direct' : 'cot' });
  const lengths = s.seqs.map((q) => sequencePositions(model, q));
  const keep = lengths.map((n) => n <= model.config.maxPositions);
  const kept = keep.filter(Boolean).length;
  const longest = Math.max(...lengths);
  check(kept > 0, 'supervisedSequences',
    () => `${kind}: none of the ${records.length} training sequences fits the decoder's ${model.config.maxPositions} positions (the shortest needs ${Math.min(...lengths)})`);
  return {
    kind, seqs: s.seqs.filter((_, i) => keep[i]), images: s.images.filter((_, i) => keep[i]),
    target: kind === 'vm-cpt' ? 'text' : 'response', dropped: records.length - kept, longest,
  };
}

/** A finished supervised step. */
export interface SupervisedProgress {
  step: number;
  steps: number;
  /** The step's mean loss when it was read back (every logEvery steps), else NaN. */
  loss: number;
  /** Padded positions trained on by this call so far (for positions/s). */
  positions: number;
}

/**
 * Trains `model` in place for cfg.epochs over the stage's sequences (shuffled per epoch by the seed),
 * from optimizer step `trainer.step` (resume). `onStep` runs after every step with the step index; it
 * may save a checkpoint. `sequences` (from supervisedSequences for cfg.kind and this model) saves
 * building them again when the caller already has them.
 */
export async function trainSupervised(
  model: VisionLanguageModel, trainer: Trainer<{ tb: TargetBatch; keys: string[] }>, data: MpiData, tok: Tokenizer, cfg: SupervisedConfig,
  hooks: { onStep?: (p: SupervisedProgress) => Promise<void> | void; logEvery?: number; sequences?: SupervisedSequences } = {},
): Promise<void> {
  const prepared = hooks.sequences ?? supervisedSequences(cfg.kind, data, tok, model);
  check(prepared.kind === cfg.kind, 'trainSupervised', () => `the sequences given are ${prepared.kind}'s, the stage trains ${cfg.kind}`);
  const { seqs, images, target } = prepared;
  const steps = supervisedSteps(cfg, seqs.length);
  const perEpoch = Math.ceil(seqs.length / cfg.batchSize);
  // VM-CPT (Eq. 2) weighs each sequence the same, SFT each response token; the step's batch is
  // aggregated as one however microBatches splits it (microBatchScales)
  const agg = cfg.kind === 'vm-cpt' ? 'seq-mean-token-mean' : 'token-mean';
  const lossOf = (mb: { tb: TargetBatch; keys: string[] }): Tensor => {
    const ti = toTargetInputs(model, mb.tb, data.imageTensor(mb.keys));
    return aggregateLoss(neg(targetLogProbs(model, ti)), ti.mask, agg);
  };
  const logEvery = hooks.logEvery ?? 10;
  let positions = 0;
  while (trainer.step < steps) {
    const step = trainer.step;
    const epoch = Math.floor(step / perEpoch);
    const order = rng(cfg.seed, 'supervised', cfg.kind, epoch).shuffle(seqs.map((_, i) => i));
    const idx = order.slice((step % perEpoch) * cfg.batchSize, (step % perEpoch + 1) * cfg.batchSize);
    const micro = microBatches(model, idx.map((i) => seqs[i]), idx.map((i) => images[i]), target, cfg.microBatchPositions)
      .map((m) => ({ tb: m.tb, keys: m.extras.flat() }));
    for (const m of micro) positions += m.tb.batch.B * m.tb.batch.T;
    const scales = microBatchScales(agg, micro.map((m) => m.tb.counts));
    const res = trainer.trainStep(micro, (mb) => mul(lossOf(mb), scales[micro.indexOf(mb)]));
    res.gradNorm.dispose();
    res.skipped.dispose();
    let loss = NaN;
    if (step % logEvery === logEvery - 1 || step === steps - 1) {
      loss = await res.loss.item();
      await trainer.checkNonFinite(); // throws after too many skipped (non-finite) steps in a row
    }
    res.loss.dispose();
    await hooks.onStep?.({ step: step + 1, steps, loss, positions });
  }
}

/** Optimizer steps of a supervised stage over n sequences. */
export function supervisedSteps(cfg: SupervisedConfig, n: number): number {
  return Math.max(1, Math.round(cfg.epochs * Math.ceil(n / cfg.batchSize)));
}
