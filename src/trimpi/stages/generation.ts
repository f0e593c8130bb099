// Examples → model: tokenize, render their scenes into one image tensor, and evaluate by batched
// greedy (or sampled) generation with the KV cache.
import { EOS, Tokenizer } from '../data/tokenizer.js';
import { renderScenes } from '../data/render.js';
import type { Scene } from '../data/scene.js';
import { generate, GenerateResult } from '../../nn/generate.js';
import type { VisionLanguageModel } from '../../nn/vlm.js';
import type { Tensor } from '../../tensor/tensor.js';
import { check } from '../../gpu/errors.js';
import type { SequenceExample } from './batch.js';
import type { TextExample } from './examples.js';

/** Token ids of an example: the prompt, and the response followed by `<eos>`. */
export function encodeExample(tok: Tokenizer, e: Pick<TextExample, 'prompt' | 'response'>): SequenceExample {
  return { prompt: tok.encode(e.prompt), response: [...tok.encode(e.response), EOS] };
}

/** Renders every scene of the examples, in order, as one (N, 3, H, W) tensor (null when none). */
export async function renderExampleScenes(examples: readonly { scenes: readonly Scene[] }[]): Promise<Tensor | null> {
  const scenes = examples.flatMap((e) => e.scenes);
  if (scenes.length === 0) return null;
  const r = await renderScenes(scenes, { tensor: true });
  return r.tensor!;
}

/** One scored output of an evaluation. */
export interface EvalItem {
  group: string;
  correct: number;
  output: string;
}

/** Accuracy overall and per group, with every item. */
export interface EvalSummary {
  /** Mean score over all items. */
  accuracy: number;
  n: number;
  /** Per group: accuracy and count. */
  groups: Record<string, { accuracy: number; n: number }>;
  /** Per group, the accuracy of guessing uniformly (policy groups: the mean of 1/cases), when known. */
  chance?: Record<string, number>;
  items: EvalItem[];
}

/** Generation settings of an evaluation: length, batch, temperature (0 = greedy) and seed. */
export interface GenerateExamplesOptions {
  maxNewTokens: number;
  /** Prompts per generate() call (default 32). */
  batchSize?: number;
  /** 0 = greedy (default). */
  temperature?: number;
  seed?: number;
}

/** Generates for each example's prompt (batched), returning the decoded outputs and the raw results. */
export async function generateForExamples(model: VisionLanguageModel, tok: Tokenizer, examples: readonly TextExample[], o: GenerateExamplesOptions): Promise<{ outputs: string[]; results: GenerateResult[] }> {
  check(examples.length > 0, 'generateForExamples', () => 'no examples');
  const bs = o.batchSize ?? 32;
  const outputs: string[] = [];
  const results: GenerateResult[] = [];
  for (let i = 0; i < examples.length; i += bs) {
    const chunk = examples.slice(i, i + bs);
    const images = await renderExampleScenes(chunk);
    try {
      const res = await generate(model, chunk.map((e) => tok.encode(e.prompt)), images, {
        maxNewTokens: o.maxNewTokens, temperature: o.temperature ?? 0, eosId: EOS, seed: (o.seed ?? 0) + i,
      });
      results.push(res);
      for (const ids of res.tokens) outputs.push(tok.decode(ids));
    } finally {
      images?.dispose();
    }
  }
  return { outputs, results };
}

/** Scores generated outputs of held-out examples: overall and per group. */
export async function evaluateExamples(model: VisionLanguageModel, tok: Tokenizer, examples: readonly TextExample[], o: GenerateExamplesOptions): Promise<EvalSummary> {
  const { outputs } = await generateForExamples(model, tok, examples, o);
  const items = examples.map((e, i) => ({ group: e.group, correct: e.score(outputs[i]), output: outputs[i] }));
  return summarize(items);
}

/** Accuracy overall and per group of scored items. */
export function summarize(items: EvalItem[]): EvalSummary {
  const groups: Record<string, { accuracy: number; n: number }> = {};
  for (const it of items) {
    const g = (groups[it.group] ??= { accuracy: 0, n: 0 });
    g.accuracy += it.correct;
    g.n++;
  }
  for (const g of Object.values(groups)) g.accuracy /= g.n;
  const total = items.reduce((s, it) => s + it.correct, 0);
  return { accuracy: items.length ? total / items.length : 0, n: items.length, groups, items };
}
