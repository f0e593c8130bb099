// Efficiency: what dropping the policy from the prompt saves (the paper: −93.9% prompt tokens,
// −85.7% prefill time). Prompt tokens are counted for every setting and depth (host only, from the
// generators); the prefill time is measured on a run's own test prompts: one forward over the
// batch of prompts, last position's logits only, under noGrad, up to the awaited readback.
import { PolicyMode, clevrQuery, policyText, targetPolicies } from '../data/clevr_policy.js';
import { rng } from '../data/rng.js';
import { sampleScene } from '../data/scene.js';
import type { Tokenizer } from '../data/tokenizer.js';
import { toolPolicyText, toolPrompt, toolSample } from '../data/tool_policy.js';
import type { VisionLanguageModel } from '../../nn/vlm.js';
import { noGrad } from '../../tensor/autograd.js';
import { tidy } from '../../tensor/memory.js';
import type { MpiData } from '../stages/mpi_data.js';

/** Mean prompt size of a setting (and depth) without and with its policy in context. */
export interface TokenRow {
  /** 'clevr-t', 'clevr-m' or 'tool'. */
  setting: string;
  /** Policy depth (null for tool). */
  depth: number | null;
  /** Text tokens (`<image>` counts 1). */
  tokens: { without: number; with: number };
  /** Decoder positions (each image expanded to its patch tokens). */
  positions: { without: number; with: number };
  /** 1 − without / with, for tokens and positions. */
  tokenReduction: number;
  positionReduction: number;
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

function row(setting: string, depth: number | null, tokens: [number, number], images: [number, number], patches: number): TokenRow {
  const positions: [number, number] = [tokens[0] + images[0] * (patches - 1), tokens[1] + images[1] * (patches - 1)];
  return {
    setting, depth, tokens: { without: tokens[0], with: tokens[1] }, positions: { without: positions[0], with: positions[1] },
    tokenReduction: 1 - tokens[0] / tokens[1], positionReduction: 1 - positions[0] / positions[1],
  };
}

/**
 * Prompt tokens with vs without the policy for ClevrPolicy-T/-M at depths 2, 4, 6 (the seed's 10
 * target policies) and ToolPolicy (`toolSamples` generated prompts); `patches`: positions per image.
 */
export function promptTokenRows(tok: Tokenizer, o: { seed: number; patches: number; toolSamples?: number }): TokenRow[] {
  const rows: TokenRow[] = [];
  for (const mode of ['T', 'M'] as PolicyMode[]) {
    for (const depth of [2, 4, 6]) {
      const ps = targetPolicies(o.seed, mode, depth);
      const without = ps.map((p) => tok.encode(`<image>\n${clevrQuery(p.name)}`).length);
      const withP = ps.map((p) => tok.encode(`${policyText(p)}\n<image>\n${clevrQuery(p.name)}`).length);
      rows.push(row(`clevr-${mode.toLowerCase()}`, depth, [mean(without), mean(withP)], [1, 1 + mean(ps.map((p) => p.crops.length))], o.patches));
    }
  }
  const r = rng(o.seed, 'efficiency-tool');
  const policy = tok.encode(toolPolicyText('default')).length;
  const prompts = Array.from({ length: o.toolSamples ?? 20 }, (_, i) => {
    const images = Array.from({ length: r.bool(0.35) ? 2 : 1 }, (_, k) => ({ name: `image/image_${2 * i + k + 1}.png`, objects: sampleScene(r).objects }));
    const s = toolSample(r, images);
    return { tokens: tok.encode(toolPrompt(s)).length, images: images.length };
  });
  const t = mean(prompts.map((p) => p.tokens));
  const im = mean(prompts.map((p) => p.images));
  // the policy text, a joining newline, then the prompt
  rows.push(row('tool', null, [t, policy + 1 + t], [im, im], o.patches));
  return rows;
}

/** Prefill of one batch of prompts: mean tokens and positions per prompt, median seconds per forward. */
export interface PrefillTiming {
  tokens: number;
  positions: number;
  seconds: number;
}

/** Prefill with vs without the policy in context on one batch of a setting's test prompts. */
export interface PrefillResult {
  prompts: number;
  repeats: number;
  without: PrefillTiming;
  /** null when the prompts with the policy do not fit in the model's positions. */
  with: PrefillTiming | null;
  tokenReduction: number | null;
  timeReduction: number | null;
}

async function timePrefill(model: VisionLanguageModel, tok: Tokenizer, data: MpiData, withPolicy: boolean, n: number, repeats: number): Promise<PrefillTiming | null> {
  const prompts = data.test.slice(0, n).map((r) => data.prompt(r, withPolicy));
  const ids = prompts.map((p) => tok.encode(p.prompt));
  const layouts = ids.map((s) => model.layout(s));
  if (Math.max(...layouts.map((l) => l.ids.length)) > model.config.maxPositions) return null;
  const batch = model.prepareBatch(ids, { padSide: 'left' });
  const images = data.imageTensor(prompts.flatMap((p) => p.images));
  const times: number[] = [];
  try {
    // the first forward compiles the pipelines: not timed
    for (let k = 0; k <= repeats; k++) {
      const t0 = performance.now();
      const logits = noGrad(() => tidy(() => model.forward(model.toInputs(batch, images), { lastOnly: true })));
      await logits.toArray();
      logits.dispose();
      if (k > 0) times.push((performance.now() - t0) / 1000);
    }
  } finally {
    images?.dispose();
  }
  times.sort((a, b) => a - b);
  return { tokens: mean(ids.map((s) => s.length)), positions: mean(layouts.map((l) => l.ids.length)), seconds: times[Math.floor(times.length / 2)] };
}

/**
 * Prefill time with vs without the policy in context: the first `prompts` test prompts of `data` as one
 * batch, one forward (lastOnly, noGrad) each, timed to the awaited readback; the median of `repeats`
 * after one untimed warm-up.
 */
export async function measurePrefill(model: VisionLanguageModel, tok: Tokenizer, data: MpiData, o: { prompts: number; repeats: number }): Promise<PrefillResult> {
  const n = Math.min(o.prompts, data.test.length);
  const wasTraining = model.training;
  model.eval();
  try {
    const without = (await timePrefill(model, tok, data, false, n, o.repeats))!;
    const withP = await timePrefill(model, tok, data, true, n, o.repeats);
    return {
      prompts: n, repeats: o.repeats, without, with: withP,
      tokenReduction: withP ? 1 - without.tokens / withP.tokens : null,
      timeReduction: withP ? 1 - without.seconds / withP.seconds : null,
    };
  } finally {
    model.train(wasTraining);
  }
}
