// Shared by the nn tests: small random VLM examples (one or two images per sequence), batching
// into micro-batches with their images, and the VM-CPT loss of a batch.
import * as t from '../../src/index.js';
import { Rng } from '../reference/ref.js';

const IMG = 4;

export interface Example {
  batch: t.nn.VlmBatch;
  images: t.Tensor | null;
}

/** A few sequences with one or two images each, random words, fixed by `seed`. */
export function makeExamples(model: t.nn.VisionLanguageModel, count: number, seed: number): { tokens: number[][]; images: Float32Array; numImages: number } {
  const rng = new Rng(seed);
  const tokens: number[][] = [];
  let numImages = 0;
  for (let i = 0; i < count; i++) {
    const len = rng.int(6, 10);
    const row = [1];
    const withTwo = i % 2 === 1;
    for (let j = 0; j < len; j++) row.push(rng.int(8, 50));
    // the image comes first: the first word is then predictable from it (after <bos> alone it is not)
    row.splice(1, 0, IMG);
    if (withTwo) row.splice(5, 0, IMG);
    row.push(2);
    numImages += withTwo ? 2 : 1;
    tokens.push(row);
  }
  const S = model.config.imageSize;
  return { tokens, images: Float32Array.from({ length: numImages * 3 * S * S }, () => rng.uniform(0, 1)), numImages };
}

/** The VM-CPT loss of the model on a prepared batch (text tokens only). */
export function vmcptLossOf(model: t.nn.VisionLanguageModel): (ex: Example) => t.Tensor {
  return (ex) => {
    const inputs = model.toInputs(ex.batch, ex.images);
    const logits = model.forward(inputs);
    return t.losses.vmcptLoss(logits, inputs.tokens, t.tensor(model.textMask(ex.batch))).loss;
  };
}

/** Splits examples into micro-batches of `size` sequences, each with its images. */
export function microBatches(model: t.nn.VisionLanguageModel, data: ReturnType<typeof makeExamples>, size: number): Example[] {
  const S = model.config.imageSize;
  const per = 3 * S * S;
  const out: Example[] = [];
  let img = 0;
  for (let i = 0; i < data.tokens.length; i += size) {
    const rows = data.tokens.slice(i, i + size);
    const batch = model.prepareBatch(rows);
    const images = t.tensor(data.images.subarray(img * per, (img + batch.numImages) * per), { shape: [batch.numImages, 3, S, S] });
    img += batch.numImages;
    out.push({ batch, images });
  }
  return out;
}

