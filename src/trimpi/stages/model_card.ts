// The base model's card: what a user of models/base-cpu needs to know (recipe, data, steps, wall
// time, device, held-out accuracies against their targets), written beside the weights.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { currentDevice } from '../../gpu/device.js';
import type { EvalSummary } from './generation.js';
import type { LookupForm } from './examples.js';
import { LOOKUP_TASKS, type ResponseWeighting, type Stage0Config } from './stage0.js';

const WEIGHTING_WORDS: Record<ResponseWeighting, string> = {
  'micro-batch': 'the token mean of each length-sorted micro-batch, micro-batches weighed equally',
  token: 'every token of the step weighed equally',
  example: 'every example weighed equally (the token mean within an example)',
};
const pct = (x: number | undefined): string => (x === undefined ? 'n/a' : `${(100 * x).toFixed(1)}%`);

/** How the card names each lookup drill form (LookupCurriculum.form). */
const ANSWER_FORM = '"Is there a metal object?" → \\boxed{yes|no}';
const OBSERVATION_FORM = '"Condition 1: check if there is any metal object." answered as the CoT observes';
const LOOKUP_FORM_WORDS: Record<LookupForm | 'mixed', string> = {
  answer: ANSWER_FORM,
  observation: `${OBSERVATION_FORM} ("… There is a … / There is no metal object.")`,
  bridge: '"Is there a metal object?" answered in the CoT\'s words ("There is a … / There is no metal object.")',
  mixed: `${ANSWER_FORM}, or (at even odds) ${OBSERVATION_FORM}`,
};

/** Writes DIR/README.md from the run's config, metrics.jsonl and evaluation. */
export function writeModelCard(dir: string, config: Stage0Config, ev: Record<string, EvalSummary>, seconds: number): void {
  const metricsPath = join(dir, 'metrics.jsonl');
  const lines = existsSync(metricsPath) ? readFileSync(metricsPath, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as { step: number; loss: number; seconds: number }) : [];
  const last = lines[lines.length - 1];
  const wall = last?.seconds ?? seconds;
  const dev = currentDevice().adapter;
  const pol = ev.policy?.groups ?? {};
  const chance = { ...(ev.policy?.chance ?? {}), ...(ev['policy-text']?.chance ?? {}) };
  const groupRows = Object.entries({ ...ev.sceneqa?.groups, ...ev['sceneqa-text']?.groups, ...ev.lookup?.groups, ...ev.crop?.groups, ...ev.describe?.groups, ...ev.checks?.groups, ...pol, ...ev['policy-text']?.groups, ...ev.tool?.groups })
    .map(([g, v]) => `| ${g} | ${pct(v.accuracy)} | ${v.n} | ${g in chance ? pct(chance[g]) : ''} |`).join('\n');
  const vs = (g: string): string => `${pct(pol[g]?.accuracy)} (chance ${pct(chance[g])})`;
  const text = `# Base model \`${dir.split('/').pop()}\` (stage 0)

The stand-in for the paper's pretrained Qwen2.5-VL: a ${config.preset}-preset vision-language model${config.model && Object.keys(config.model).length ? `
with ${Object.entries(config.model).map(([k, v]) => `${k} = ${String(v)}`).join(', ')}` : ''}
(ViT encoder + linear projector + causal decoder, tied embeddings) trained ${config.init ? `from the weights of \`${config.init}\`` : '**from scratch**'} by
\`trimpi pretrain --out ${dir}\` with the recipe below (src/trimpi/stages/stage0.ts). It has never seen
an MPI target policy: policies come from \`randomPolicies()\` (trees grown under the ${config.pruning ?? 'strict'} rule), which
excludes every target name and every target tree of either rule.

## Recipe
- Tasks, one seeded stream (step s depends only on the seed and s), weights held at their start values for
  the first ${config.perceptionSteps ?? 0} steps${config.mixStart.policy ? '' : ' (no image policies yet)'}, then moving linearly to their end values:
  - crop: one large object filling the frame, described (${config.mixStart.crop} → ${config.mixEnd.crop})
  - describe: \`<image> What objects are there?\` → every object, left to right (${config.mixStart.describe} → ${config.mixEnd.describe})
  - SceneQA: counting, existence (also of conjunctions), attribute queries (${config.mixStart.sceneqa} → ${config.mixEnd.sceneqa})
  - a random policy in context with the gold CoT (${config.mixStart.policy} → ${config.mixEnd.policy}); kinds: ${config.policyKinds.map((k) => `${k.mode}${k.depth} (${k.start} → ${k.end})`).join(', ')}${config.mixStart.policyText || config.mixEnd.policyText ? `
  - a random -T policy in context with the scene given as text, not as an image: policy reading without perception (${config.mixStart.policyText ?? 0} → ${config.mixEnd.policyText ?? 0})` : ''}${config.mixStart.checksText || config.mixEnd.checksText ? `
  - checks on a scene given as text: 2-4 listed conditions checked in order in the CoT's words, the observation step drilled (${config.mixStart.checksText ?? 0} → ${config.mixEnd.checksText ?? 0})` : ''}${config.mixStart.checksImage || config.mixEnd.checksImage ? `
  - the same checks on an image (${config.mixStart.checksImage ?? 0} → ${config.mixEnd.checksImage ?? 0})` : ''}${config.mixStart.sceneqaText || config.mixEnd.sceneqaText ? `
  - SceneQA on a scene given as text, answered at once: the lookup of a filter among listed objects (${config.mixStart.sceneqaText ?? 0} → ${config.mixEnd.sceneqaText ?? 0})` : ''}${config.mixStart.tool || config.mixEnd.tool ? `
  - a random ToolPolicy rule book in context (never the target's rules) and the next tool call with its short CoT (${config.mixStart.tool ?? 0} → ${config.mixEnd.tool ?? 0})` : ''}${(Object.keys(LOOKUP_TASKS) as (keyof typeof LOOKUP_TASKS)[]).some((k) => config.mixStart[k] || config.mixEnd[k]) ? `
  - the lookup drill: ${LOOKUP_FORM_WORDS[config.lookup?.form ?? 'answer']} about a scene given as text (${config.mixStart.lookupText ?? 0} → ${config.mixEnd.lookupText ?? 0}) or as an image (${config.mixStart.lookupImage ?? 0} → ${config.mixEnd.lookupImage ?? 0}), or ${config.lookup?.form === 'observation' ? '"… any object with the same color as <image>."' : '"Is there an object with the same color as <image>?"'} with a crop (${config.mixStart.lookupCrop ?? 0} → ${config.mixEnd.lookupCrop ?? 0}), yes and no at even odds; asked values by step: ${(config.lookup?.phases ?? []).map((p) => `${p.type === '*' ? 'any' : p.value === '*' ? `any ${p.type}` : p.value} ${p.steps}`).join(', ') || 'any'}${config.lookup?.phases.length ? `, then any (re-asking earlier phases ${config.lookup.replay ?? 0} of the time)` : ''}` : ''}${config.sceneText === 'list' ? `
- Text scenes list their objects without "There is" ("large red metal cube; small blue rubber sphere."; \`sceneText: list\`).` : ''}${config.init ? `
- Started from the weights of \`${config.init}\` (optimizer and schedule afresh).` : ''}
- ${config.steps} AdamW steps of ${config.batchSize} sequences (micro-batches of at most ${config.microBatchPositions} padded positions),
  lr ${config.lr} with ${config.warmupSteps} warmup steps and cosine decay to ${config.minLr}; seed ${config.seed}.
- Loss: cross-entropy on the ${config.targets === 'text' ? 'text tokens of prompt and response' : 'response tokens'}, ${WEIGHTING_WORDS[config.weighting ?? 'micro-batch']}${config.patchLoss ? `, plus ${config.patchLoss} × the patch-attribute loss
  (src/trimpi/losses/patch_attributes.ts: every image patch an object covers names that object's size, colour,
  material and shape, scored against the decoder's word embeddings; no extra parameters)` : ''}.
- Full config: \`stage0.json\`; loss per logged step: \`metrics.jsonl\`.

## Run
- Steps: ${last ? last.step + 1 : config.steps} of ${config.steps}; last logged loss ${last ? last.loss.toFixed(3) : 'n/a'}.${last && last.step + 1 < config.steps ? `
- **Stopped before the end of its schedule** (the session's time budget): these weights are step ${last.step + 1}'s, with
  the learning rate still at ${(last as { lr?: number }).lr?.toExponential(2) ?? 'n/a'}. \`checkpoint/\` holds the model and the optimizer: \`trimpi pretrain --out ${dir}\`
  resumes the same run (the data stream of step s depends only on the seed and s) and rewrites these files when it ends.` : ''}
- Wall time: ${(wall / 60).toFixed(1)} min of training on ${dev.description || dev.device} (${dev.backend}), plus the evaluation.

## Held-out accuracy (greedy; fresh scenes; in-context policies from a window of the random-policy stream after the training pool)
| group | accuracy | n | chance (guessing a case) |
|---|---|---|---|
${groupRows}

Targets from the issue: SceneQA ≥ 90% (measured: ${pct(ev.sceneqa?.accuracy)}); following fresh random policies in context
at N = 2 ≥ 70% (measured: T2 ${vs('policy/T2')}, M2 ${vs('policy/M2')}) and at N = 4 ≥ 30% (measured: T4 ${vs('policy/T4')}).
Reported as measured. What was measured on the way, and what to try next: \`docs/stage0.md\`.

## Files
- \`config.json\` and the weights file it names: the model config and weights (\`loadVisionLanguageModel('${dir}')\`).
- \`checkpoint/\`: the run's last checkpoint with the optimizer (what \`trimpi pretrain\` resumes from).
- \`vocab.json\`: the tokenizer's vocabulary (\`Tokenizer.load\`), identical to \`defaultTokenizer()\`.
- \`eval.json\`: the evaluation with example outputs.
`;
  writeFileSync(join(dir, 'README.md'), text);
}
