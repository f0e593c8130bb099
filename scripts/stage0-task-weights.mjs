#!/usr/bin/env node
// `node scripts/stage0-task-weights.mjs STAGE0_JSON [STEPS] [WEIGHTING]` (after `npm run build`): each
// task's share of a stage-0 step's examples and of its response loss (the weight its answer tokens get
// in the gradient) under the run's `weighting` (or WEIGHTING: micro-batch, token or example), at the
// given steps (default 0, a third, two thirds and the last; 4 consecutive steps averaged at each).
// docs/stage0.md ("Run 9") found SceneQA and the lookup drill at 1-6% of the loss under 'micro-batch'.
import { readFileSync } from 'node:fs';
import * as t from '../dist/src/index.js';

const [configPath, stepsArg, weightingArg] = process.argv.slice(2);
if (!configPath) {
  console.error('usage: node scripts/stage0-task-weights.mjs STAGE0_JSON [STEPS, e.g. 0,300,600] [micro-batch|token|example]');
  process.exit(2);
}
await t.init();
const S = t.stages;
// a recipe file (fields over the defaults, as `trimpi pretrain --recipe`) or a run's full stage0.json
const config = { ...S.STAGE0_DEFAULTS, ...JSON.parse(readFileSync(configPath, 'utf8')) };
const weighting = weightingArg ?? config.weighting ?? 'micro-batch';
const last = config.steps - 4;
const steps = stepsArg ? stepsArg.split(',').map(Number) : [0, Math.round(last / 3), Math.round((2 * last) / 3), last];
const tok = t.data.defaultTokenizer();
// the preset's shapes only (patches per image, context length): no weights are read
const model = new t.nn.VisionLanguageModel(t.nn.preset(config.preset, tok.size, { seed: config.seed, ...(config.model ?? {}) }).model);
const pool = new S.PolicyPool(config.seed, config.poolSize, 0, config.pruning ?? 'strict');
const reps = 4;
console.log(`weighting: ${weighting}`);
for (const step of steps) {
  const loss = {}, share = {}, tokens = {};
  for (let k = 0; k < reps; k++) {
    // the step's examples as trainStage0 trains them (those past the context left out)
    const examples = S.stage0Examples(config, pool, step + k).filter((e) => S.fitsContext(model, tok, e));
    const mbs = S.microBatches(model, examples.map((e) => S.encodeExample(tok, e)), examples, config.targets ?? 'response', config.microBatchPositions);
    const { agg, scales } = S.microBatchWeights(weighting, mbs.map((mb) => mb.tb.counts));
    for (const [m, mb] of mbs.entries()) {
      const total = mb.tb.counts.reduce((a, b) => a + b, 0);
      const seqsIn = mb.tb.counts.filter((c) => c > 0).length;
      mb.extras.forEach((e, i) => {
        const w = (agg === 'token-mean' ? mb.tb.counts[i] / total : mb.tb.counts[i] > 0 ? 1 / seqsIn : 0) * scales[m] / mbs.length / reps;
        loss[e.group] = (loss[e.group] ?? 0) + w;
        share[e.group] = (share[e.group] ?? 0) + 1 / examples.length / reps;
        tokens[e.group] = (tokens[e.group] ?? 0) + mb.tb.counts[i];
      });
    }
  }
  console.log(`step ${step}:  group, share of examples, share of the response loss, answer tokens an example`);
  for (const g of Object.keys(loss).sort()) {
    console.log(`  ${g.padEnd(16)} ${(100 * share[g]).toFixed(1).padStart(5)}%  ${(100 * loss[g]).toFixed(1).padStart(5)}%  ${(tokens[g] / (share[g] * reps * config.batchSize)).toFixed(0).padStart(4)}`);
  }
}
model.dispose();
