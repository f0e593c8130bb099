// Stage 0's dense perception signal: every image patch that an object covers is asked to name that
// object's four attributes, read against the decoder's own word embeddings.
//
// Why: from answers alone ("There is a large red metal cube."), a from-scratch ViT gets a handful of
// attribute tokens per image, and credit has to flow back through the decoder's attention to find
// which patches they came from. Here each labelled patch gets four targets straight at the ViT's
// output, ~10-40 labelled patches per image. Scoring a patch token h (the decoder's input at that
// image place) against the embeddings e_w of the attribute words puts image tokens of a red cube
// near the words "red" and "cube", which is what the decoder's attention needs to match a question
// or a policy's conditions to the image. The gradient also reaches the word embeddings, on purpose:
// a decoder that cannot yet see shapes learns near-identical embeddings for "cube", "sphere" and
// "cylinder" (they are interchangeable in every context it can tell apart; measured cosine 0.97),
// and against detached, collapsed embeddings the patch loss could not separate them either (a run
// with them detached kept shape at chance, 35-40% of patches, for 480 steps while colour reached
// 97%). The model gets no new parameters and its checkpoint format is unchanged.
import { check } from '../../gpu/errors.js';
import { noGrad } from '../../tensor/autograd.js';
import { argmax, cast, crossEntropy, eq, indexSelect, matmul, mean, reshape, stack, tensor, transpose } from '../../tensor/ops.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkTensor } from '../../tensor/validate.js';
import { ATTRIBUTE_TYPES, ATTRIBUTE_VALUES, Scene } from '../data/scene.js';
import type { LossOutput } from './aggregate.js';

/** The labelled patches of a batch of images (host arrays; see patchAttributeTargets). */
export interface PatchTargets {
  /** (K,) row of each labelled patch in the flattened (N·P) patch tokens. */
  rows: Int32Array;
  /** Per attribute type (size, color, material, shape): (K,) index of the value in ATTRIBUTE_VALUES. */
  labels: Int32Array[];
}

/**
 * The object each patch of a scene shows, or −1: a patch is labelled with the nearest object whose
 * pixel box covers at least `minCover` of the smaller of the patch and the box (a small object of
 * 8 × 8 pixels astride four 8 × 8 patches still labels all four). (P,) in row-major patch order.
 */
export function patchOwners(scene: Scene, patchSize: number, minCover = 0.25): Int32Array {
  check(scene.width % patchSize === 0 && scene.height % patchSize === 0, 'patchOwners',
    () => `the image (${scene.width} × ${scene.height}) must be a multiple of the patch size ${patchSize}`);
  const gx = scene.width / patchSize;
  const gy = scene.height / patchSize;
  const out = new Int32Array(gx * gy).fill(-1);
  for (let py = 0; py < gy; py++) {
    for (let px = 0; px < gx; px++) {
      const [x1, y1, x2, y2] = [px * patchSize, py * patchSize, (px + 1) * patchSize, (py + 1) * patchSize];
      let best = -1;
      scene.objects.forEach((o, i) => {
        const [bx1, by1, bx2, by2] = o.box;
        const overlap = Math.max(0, Math.min(x2, bx2) - Math.max(x1, bx1)) * Math.max(0, Math.min(y2, by2) - Math.max(y1, by1));
        const area = Math.min(patchSize * patchSize, (bx2 - bx1) * (by2 - by1));
        if (area > 0 && overlap >= minCover * area && (best < 0 || o.depth < scene.objects[best].depth)) best = i;
      });
      out[py * gx + px] = best;
    }
  }
  return out;
}

/** The labelled patches of `scenes` (the images of a batch, in order), P = (size / patchSize)² each. */
export function patchAttributeTargets(scenes: readonly Scene[], patchSize: number): PatchTargets {
  const rows: number[] = [];
  const labels: number[][] = ATTRIBUTE_TYPES.map(() => []);
  let base = 0;
  for (const scene of scenes) {
    const owners = patchOwners(scene, patchSize);
    owners.forEach((o, p) => {
      if (o < 0) return;
      rows.push(base + p);
      const obj = scene.objects[o];
      ATTRIBUTE_TYPES.forEach((a, j) => labels[j].push(ATTRIBUTE_VALUES[a].indexOf(obj[a])));
    });
    base += owners.length;
  }
  return { rows: Int32Array.from(rows), labels: labels.map((l) => Int32Array.from(l)) };
}

/** The metrics of patchAttributeLoss (cut from the graph). */
export interface PatchAttributeMetrics {
  /** (4,) fraction of labelled patches whose top-scoring word is right, per attribute type (size, color, material, shape). */
  accuracy: Tensor;
  /** Number of labelled patches K. */
  patches: number;
}

/**
 * Cross-entropy of each labelled patch's four attributes, scored against the attribute words:
 *
 *   L = (1/4) Σ_a (1/K) Σ_k −log softmax_j( h_k · e_{a,j} )[y_{k,a}]
 *
 * k over the K labelled patches, a over size / color / material / shape, e_{a,j} the embedding of
 * the j-th word of type a ("small", "large"; "gray" … "yellow"; …), y_{k,a} the patch's value.
 *
 * patchTokens (N, P, C): projected image tokens; wordEmbedding (V, C): the decoder's token
 * embedding (both get gradients); wordIds: per attribute type, the token id of each value in
 * ATTRIBUTE_VALUES order; targets from patchAttributeTargets. Create inside the caller's tidy().
 */
export function patchAttributeLoss(patchTokens: Tensor, wordEmbedding: Tensor, wordIds: readonly (readonly number[])[], targets: PatchTargets): LossOutput<PatchAttributeMetrics> {
  const op = 'patchAttributeLoss';
  checkTensor(op, 'patchTokens', patchTokens);
  checkTensor(op, 'wordEmbedding', wordEmbedding);
  check(patchTokens.ndim === 3 && wordEmbedding.ndim === 2 && patchTokens.shape[2] === wordEmbedding.shape[1], op,
    () => `patchTokens must be (N, P, C) and wordEmbedding (V, C) with one C, got ${patchTokens.describe()} and ${wordEmbedding.describe()}`);
  check(wordIds.length === ATTRIBUTE_TYPES.length && targets.labels.length === ATTRIBUTE_TYPES.length, op,
    () => `expected word ids and labels for the ${ATTRIBUTE_TYPES.length} attribute types (${ATTRIBUTE_TYPES.join(', ')})`);
  const K = targets.rows.length;
  check(K > 0, op, () => 'no labelled patch (every image is background)');
  const [N, P, C] = patchTokens.shape;
  check(targets.rows.every((r) => r >= 0 && r < N * P), op, () => `a labelled row is outside the ${N} × ${P} patch tokens`);
  const h = indexSelect(reshape(patchTokens, [N * P, C]), 0, tensor(targets.rows, { shape: [K], dtype: 'i32' })); // (K, C)
  const E = wordEmbedding;
  const losses: Tensor[] = [];
  const hits: Tensor[] = [];
  ATTRIBUTE_TYPES.forEach((a, j) => {
    const ids = wordIds[j];
    check(ids.length === ATTRIBUTE_VALUES[a].length, op, () => `${a} has ${ATTRIBUTE_VALUES[a].length} values, got ${ids.length} word ids`);
    const words = indexSelect(E, 0, tensor(ids, { shape: [ids.length], dtype: 'i32' })); // (n_a, C)
    const logits = matmul(h, transpose(words, 0, 1)); // (K, n_a)
    const y = tensor(targets.labels[j], { shape: [K], dtype: 'i32' });
    losses.push(crossEntropy(logits, y));
    hits.push(noGrad(() => mean(cast(eq(argmax(logits, 1), y), 'f32'))));
  });
  const loss = mean(stack(losses));
  return { loss, metrics: { accuracy: noGrad(() => stack(hits)), patches: K } };
}
