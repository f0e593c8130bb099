#!/usr/bin/env node
// `node scripts/reading-diagnostic.mjs MODEL_DIR [SCENE_TEXT]` (after `npm run build`): where policy reading fails.
// The mean loss of each class of gold-CoT token (teacher forcing) on 32 held-out text-scene -T N=2
// examples (policyTextSceneExample: the scene given as text, so no perception is needed): condition
// ids, the case digit, the observation (is / are after "There", then no / a), the attribute a condition checks,
// copied from the policy ("any *red* object"), and the rest. SCENE_TEXT: how the text scene lists its objects
// ('sentences', the default, or 'list': Stage0Config.sceneText). docs/stage0.md reads the figures.
import * as t from '../dist/src/index.js';
import { STAGE0_DEFAULTS, stage0EvalExamples } from '../dist/src/trimpi/stages/stage0.js';
import { encodeExample } from '../dist/src/trimpi/stages/generation.js';
import { targetBatch, toTargetInputs, targetLogProbs } from '../dist/src/trimpi/stages/batch.js';
await t.init();
const model = t.nn.loadVisionLanguageModel(process.argv[2]);
const tok = t.data.defaultTokenizer();
const only = { crop: 0, describe: 0, sceneqa: 0, policy: 0, policyText: 1 };
const cfg = { ...STAGE0_DEFAULTS, mixStart: only, mixEnd: only, policyKinds: [{ mode: 'T', depth: 2, start: 1, end: 1 }], sceneText: process.argv[3] ?? 'sentences' };
const ex = stage0EvalExamples(cfg, 32).filter((e) => e.task === 'policy-text');
const seqs = ex.map((e) => encodeExample(tok, e));
const tb = targetBatch(model, seqs);
const ti = toTargetInputs(model, tb, null);
const lp = await t.noGrad(() => targetLogProbs(model, ti)).toArray();
const cats = {};
for (let i = 0; i < seqs.length; i++) {
  const resp = seqs[i].response;
  const words = resp.map((id) => tok.decode([id]));
  const line = [];
  for (let j = 0; j < resp.length; j++) {
    const nll = -lp[i * tb.R + j]; // target row j of sequence i
    const prev = words.slice(Math.max(0, j - 3), j).join(' ');
    let c = 'other';
    if (/any$/.test(prev)) c = 'copied attribute (after "any")';
    else if (/Condition$/.test(prev) || /Condition \d+ \.$|Condition \d+\.$/.test(prev)) c = 'condition id';
    else if (/Case$/.test(prev)) c = 'case digit';
    else if (/There$/.test(prev)) c = 'observation (is / are after "There")';
    else if (/There is$/.test(prev)) c = 'observation (no / a after "There is")';
    (cats[c] ??= []).push(nll);
    if (i < 2) line.push(`${words[j]}(${nll.toFixed(1)})`);
  }
  if (i < 2) console.log(line.join(' '), '\n');
}
for (const [c, xs] of Object.entries(cats)) console.log(c.padEnd(34), 'mean NLL', (xs.reduce((a, b) => a + b, 0) / xs.length).toFixed(3), 'n', xs.length);
